//! `chatctl impair`: the impairing UDP relay as a command.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chatctl::rdt::relay::{DirectionStats, Impairment, Relay};
use chatctl::rdt::sim::LinkConfig;
use clap::Args;

use crate::cli::Global;
use crate::common::{note, out};

/// Relay UDP between clients and a target through seeded impairments.
///
/// For trying transfers on a bad path on a machine without netem. With
/// `chatctl serve --ports 55000-55001` one user's update connection gets
/// port 55000 and its download 55001, so
/// `chatctl impair --listen 127.0.0.1:9000 --target 127.0.0.1:55001 --loss 1% --delay 25ms --rate 200M`
/// and `chatctl fetch FILE --udp-via 127.0.0.1:9000` download through the
/// relay (add `serve --max-datagram 1452` for a 1500-byte-MTU path).
/// Serves any number of clients, one after another or at once (each client
/// address gets its own socket towards the target, forgotten after 30 s of
/// silence), so a download can be repeated without restarting the relay.
/// Every impairment applies to both directions, each direction with its own
/// random choices from --seed, the same for every client. Runs until
/// Ctrl-C, then prints what it forwarded and dropped.
#[derive(Debug, Args)]
pub struct ImpairArgs {
    /// Address to listen on for the client (port 0: the OS picks, printed on stderr).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,

    /// Address to forward the client's datagrams to.
    #[arg(long, value_name = "ADDR:PORT")]
    pub target: SocketAddr,

    /// Share of datagrams lost, e.g. `1%` or `0.01`.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    pub loss: f64,

    /// After a loss, the chance the next datagram is lost too (bursts).
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    pub burst: f64,

    /// One-way delay, e.g. `25ms`.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub delay: Duration,

    /// Extra random delay, uniform between 0 and this (it also reorders).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub jitter: Duration,

    /// Share of datagrams held back by half the delay plus 1 ms (reordering).
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    pub reorder: f64,

    /// Share of datagrams delivered twice.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    pub duplicate: f64,

    /// Share of datagrams with one bit flipped.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    pub corrupt: f64,

    /// Bottleneck rate in bits per second, with an optional k, M or G, e.g. `200M` [default: unlimited].
    #[arg(long, value_name = "BITS/S", value_parser = parse_rate)]
    pub rate: Option<u64>,

    /// Bottleneck queue in bytes; beyond it datagrams are dropped [default: one
    /// bandwidth-delay product, at least 64 KiB].
    #[arg(long, value_name = "BYTES")]
    pub queue: Option<u64>,

    /// Seed of the random choices: the same seed and traffic give the same fate.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

/// `1%`, `0.01`: a share between 0 and 1.
fn parse_share(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a share (e.g. 1% or 0.01)"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{s:?} is not between 0 and 100%")) }
}

/// `200M`, `1.5G`, `64k`, `1000000`: bits per second.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("bit/s").trim_end_matches("bps");
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && (v * mult).is_finite() && v * mult >= 8.0 => Ok((v * mult) as u64),
        _ => Err(format!("{s:?} is not a rate in bits per second (e.g. 200M)")),
    }
}

impl ImpairArgs {
    fn impairment(&self, seed: u64) -> Impairment {
        let bdp = self.rate.map_or(0, |r| (r as f64 / 8.0 * self.delay.as_secs_f64() * 2.0) as u64);
        let link = LinkConfig {
            loss: self.loss,
            burst: self.burst,
            delay: self.delay,
            jitter: self.jitter,
            reorder: self.reorder,
            duplicate: self.duplicate,
            corrupt: self.corrupt,
            rate_bps: self.rate,
            queue_bytes: self.queue.unwrap_or(bdp.max(64 << 10)),
            ..Default::default()
        };
        Impairment { link, seed }
    }
}

pub fn run(args: ImpairArgs, global: &Global) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let (up, down) = (args.impairment(args.seed), args.impairment(args.seed.wrapping_add(1)));
        let relay = Relay::start(args.listen, args.target, up, down)
            .await
            .with_context(|| format!("cannot relay from {} to {}", args.listen, args.target))?;
        if !global.quiet {
            note(format_args!("relaying {} -> {} (Ctrl-C stops)", relay.local_addr, args.target));
        }
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
        let stats = relay.shutdown().await;
        let line = |d: &DirectionStats| {
            format!("{} datagrams in, {} out, {} dropped, {} not sent", d.received, d.forwarded, d.dropped, d.send_errors)
        };
        if global.json {
            let dir = |d: &DirectionStats| {
                serde_json::json!({"received": d.received, "forwarded": d.forwarded, "dropped": d.dropped,
                    "received_bytes": d.received_bytes, "forwarded_bytes": d.forwarded_bytes, "send_errors": d.send_errors})
            };
            out(serde_json::json!({"up": dir(&stats.up), "down": dir(&stats.down), "foreign": stats.foreign,
                "clients": stats.clients}))?;
        } else if !global.quiet {
            out(format_args!("clients: {}", stats.clients))?;
            out(format_args!("client -> target: {}", line(&stats.up)))?;
            out(format_args!("target -> client: {}", line(&stats.down)))?;
            if stats.foreign > 0 {
                out(format_args!("dropped {} datagrams from clients beyond the first 64 at once", stats.foreign))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_rates_parse() {
        assert_eq!(parse_share("1%"), Ok(0.01));
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert!(parse_share("150%").is_err());
        assert!(parse_share("x").is_err());
        assert_eq!(parse_rate("200M"), Ok(200_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("64k"), Ok(64_000));
        assert_eq!(parse_rate("1000000"), Ok(1_000_000));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
