//! `chatctl impair`: the impairing UDP relay as a command.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use chatctl::client::thousands as grouped;
use chatctl::rdt::relay::{self, DirectionStats, Impairment, Relay};
use chatctl::rdt::sim::LinkConfig;
use clap::Args;

use crate::cli::Global;
use crate::common::{note, out};

/// Relay UDP between clients and a target through seeded impairments.
///
/// For trying transfers on a bad path on a machine without netem. With
/// `chatctl serve --ports 55000-55001` one user's update connection gets
/// port 55000 and its download 55001, so
/// `chatctl impair --listen 127.0.0.1:9000 --target localhost:55001 --loss 1% --delay 25ms --rate 200Mbit`
/// and `chatctl fetch FILE --udp-via 127.0.0.1:9000` download through the
/// relay (add `serve --max-datagram 1452` for a 1500-byte-MTU path).
/// Serves any number of clients, one after another or at once (each client
/// address gets its own socket towards the target, forgotten after 30 s of
/// silence), so a download can be repeated without restarting the relay.
/// Every impairment applies to both directions, each direction with its own
/// random choices from --seed, the same for every client. Runs until
/// Ctrl-C, then prints what it forwarded and dropped, random loss and
/// queue drops apart.
///
/// Percentages are netem's: `--loss 1` is 1%, as `--loss 1%`. Rates are in
/// bits per second with a decimal prefix (`200M`, `200Mbit`, `1G`), or in
/// bytes per second with a capital B (`25MB/s`).
#[derive(Debug, Args)]
pub struct ImpairArgs {
    /// Address to listen on for the client, `HOST:PORT` (port 0: the OS
    /// picks; the start line on stderr says which).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: String,

    /// Address to forward the client's datagrams to, `HOST:PORT` (a name
    /// such as `localhost:55001` is resolved once, at the start).
    #[arg(long, value_name = "HOST:PORT")]
    pub target: String,

    /// Share of datagrams lost at random, in percent: `1%` or `1` (1%).
    #[arg(long, value_name = "PERCENT", default_value = "0", value_parser = relay::parse_percent)]
    pub loss: f64,

    /// After a loss, the chance the next datagram is lost too (bursts), in percent.
    #[arg(long, value_name = "PERCENT", default_value = "0", value_parser = relay::parse_percent)]
    pub burst: f64,

    /// One-way delay, e.g. `25ms`.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub delay: Duration,

    /// Extra random delay, uniform between 0 and this (it also reorders).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub jitter: Duration,

    /// Share of datagrams held back by half the delay plus 1 ms (reordering), in percent.
    #[arg(long, value_name = "PERCENT", default_value = "0", value_parser = relay::parse_percent)]
    pub reorder: f64,

    /// Share of datagrams delivered twice, in percent.
    #[arg(long, value_name = "PERCENT", default_value = "0", value_parser = relay::parse_percent)]
    pub duplicate: f64,

    /// Share of datagrams with one bit flipped, in percent.
    #[arg(long, value_name = "PERCENT", default_value = "0", value_parser = relay::parse_percent)]
    pub corrupt: f64,

    /// Bottleneck rate: bits per second (`200M`, `200Mbit`, `1G`, `64k`) or
    /// bytes per second (`25MB/s`) [default: unlimited].
    #[arg(long, value_name = "RATE", value_parser = relay::parse_rate)]
    pub rate: Option<u64>,

    /// Bottleneck queue (`100000`, `64kB`, `1MiB`); beyond it datagrams are
    /// dropped [default: one bandwidth-delay product, at least 64 KiB].
    #[arg(long, value_name = "SIZE", value_parser = relay::parse_size)]
    pub queue: Option<u64>,

    /// Seed of the random choices: the same seed and traffic give the same fate.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

impl ImpairArgs {
    fn impairment(&self, seed: u64) -> Impairment {
        let link = LinkConfig {
            loss: self.loss,
            burst: self.burst,
            delay: self.delay,
            jitter: self.jitter,
            reorder: self.reorder,
            duplicate: self.duplicate,
            corrupt: self.corrupt,
            rate_bps: self.rate,
            queue_bytes: self.queue.unwrap_or_else(|| relay::default_queue(self.rate, self.delay)),
            ..Default::default()
        };
        Impairment { link, seed }
    }
}

/// The first address `HOST:PORT` resolves to.
fn resolve(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.to_socket_addrs()
        .with_context(|| format!("--{what} {s:?}: not an address (HOST:PORT, e.g. 127.0.0.1:9000 or localhost:55001)"))?
        .next()
        .with_context(|| format!("--{what} {s:?}: the name has no address"))
}

pub fn run(args: ImpairArgs, global: &Global) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let (listen, target) = (resolve("listen", &args.listen)?, resolve("target", &args.target)?);
        let (up, down) = (args.impairment(args.seed), args.impairment(args.seed.wrapping_add(1)));
        let what = relay::describe(&up.link);
        let relay = Relay::start(listen, target, up, down)
            .await
            .with_context(|| format!("cannot relay from {listen} to {target}"))?;
        if !global.quiet {
            note(format_args!(
                "relaying {} -> {target}: {what}, both ways, seed {} (Ctrl-C stops)",
                relay.local_addr, args.seed
            ));
        }
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
        let stats = relay.shutdown().await;
        let line = |d: &DirectionStats| {
            let other = d.dropped - d.lost - d.queue_dropped;
            format!(
                "{} datagrams in, {} out, {} dropped ({} lost at random, {} by the full queue{}), {} not sent",
                grouped(d.received),
                grouped(d.forwarded),
                grouped(d.dropped),
                grouped(d.lost),
                grouped(d.queue_dropped),
                if other > 0 { format!(", {} too large", grouped(other)) } else { String::new() },
                grouped(d.send_errors)
            )
        };
        if global.json {
            let dir = |d: &DirectionStats| {
                serde_json::json!({"received": d.received, "forwarded": d.forwarded, "dropped": d.dropped,
                    "lost": d.lost, "queue_dropped": d.queue_dropped,
                    "received_bytes": d.received_bytes, "forwarded_bytes": d.forwarded_bytes, "send_errors": d.send_errors})
            };
            out(serde_json::json!({"up": dir(&stats.up), "down": dir(&stats.down), "foreign": stats.foreign,
                "clients": stats.clients}))?;
        } else if !global.quiet {
            out(format_args!("clients: {}", stats.clients))?;
            out(format_args!("client -> target: {}", line(&stats.up)))?;
            out(format_args!("target -> client: {}", line(&stats.down)))?;
            if stats.foreign > 0 {
                out(format_args!("dropped {} datagrams from clients beyond the first 64 at once", grouped(stats.foreign)))?;
            }
        }
        Ok(())
    })
}
