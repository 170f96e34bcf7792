//! `chatctl serve`: the room server.

use std::path::PathBuf;
use std::time::Duration;

use chatctl::exit::Exit;
use clap::{Args, ValueEnum};

use anyhow::Context;
use chatctl::rdt::cc::Algorithm;
use chatctl::rdt::fast::driver::Tracer;
use chatctl::server::{Config, PortSpec, Server};

use crate::cli::Global;

/// Run the room server.
///
/// Example: `chatctl serve --files ./share`. Above 10 users (--max-users) the
/// server uses the extended list encoding, which classic clients cannot read.
///
/// Limits against hostile or careless clients: a connection must send its
/// join (`100`) within --unjoined-timeout; one address may hold at most
/// --max-unjoined-per-host connections that have not joined, and the server
/// at most --max-connections in all (more are closed at once, so one host
/// cannot lock others out). The port pool keeps one port per room slot for
/// update connections, so `4003` (server full) means the room is full; the
/// room is smaller than the pool (one port at least is left for downloads). A
/// user may have at most --max-transfers-per-user downloads in flight: past
/// it, or when no transfer port is free, a download request is answered
/// `4062` (too many transfers; wait for one to end). Log lines a peer can
/// cause are rate-limited per kind and address: a few every 10 s, then one
/// "N more suppressed" line.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (IPv6 accepted, e.g. `[::]:13337`).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:13337")]
    pub listen: String,

    /// Folder whose regular files can be downloaded [default: none].
    #[arg(long, value_name = "DIR")]
    pub files: Option<PathBuf>,

    /// Pool of ports for update connections and transfers: LO-HI, or `0` for
    /// ports the OS assigns (at most 31 at once; `0-N`: at most N).
    #[arg(long, value_name = "LO-HI", default_value = "55000-55030")]
    pub ports: String,

    /// Most users in the room; above 10, classic clients cannot read the user lists.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_users: usize,

    /// How long a joining client has to open its update connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub join_timeout: Duration,

    /// How long a new connection (or one that left) may stay without joining.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub unjoined_timeout: Duration,

    /// Most connections that have not joined from one IP address.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_unjoined_per_host: u32,

    /// Most connections in all, joined or not.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most downloads one user may have in flight (more: `4062`).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_transfers_per_user: u32,

    /// Congestion controller of fast UDP downloads.
    #[arg(long, value_enum, value_name = "ALGORITHM", default_value_t = Cc::Bbr)]
    pub cc: Cc,

    /// Largest fast-mode datagram, in bytes. Without it the server starts at
    /// 1452 and probes larger sizes (65,000 at once on loopback); with it,
    /// exactly this size and no probing, e.g. `--max-datagram 1452` to behave
    /// as on a 1500-byte-MTU path through `chatctl impair` on loopback.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1200..=65_000))]
    pub max_datagram: Option<u32>,

    /// Write one JSON line per fast-mode sender event (send, ack, loss, rto,
    /// cwnd; with the transfer port) to FILE, for plots.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Log line format on stderr (`--json` is `--log-format json`).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// A congestion controller for `--cc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cc {
    /// RFC 9438 CUBIC.
    Cubic,
    /// RFC 5681/6582 NewReno.
    Newreno,
    /// BBR (v1-style, model based: random loss does not slow it down).
    Bbr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(args: ServeArgs, _global: &Global) -> anyhow::Result<()> {
    let listen = resolve(&args.listen)?;
    // Values that cannot work are usage errors (exit 2), as clap's own.
    let ports: PortSpec = args.ports.parse().context("--ports").context(Exit::Usage)?;
    if args.max_users == 0 {
        return Err(anyhow::anyhow!("--max-users must be at least 1").context(Exit::Usage));
    }
    if let Some(dir) = &args.files {
        let why = match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => None,
            Ok(_) => Some("not a folder".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            return Err(anyhow::anyhow!("--files {}: {why}", dir.display()).context(Exit::Usage));
        }
    }
    if ports.capacity() <= args.max_users {
        let users = ports.room_slots(args.max_users);
        tracing::warn!(
            ports = ports.capacity(),
            max_users = args.max_users,
            "the room holds at most {users} users: the port pool keeps one port per user and one at least for downloads; widen --ports"
        );
    }
    if args.max_users > chatctl::wire::CLASSIC_MAX_USERS {
        tracing::warn!(max_users = args.max_users, "more than 10 users: classic clients cannot read the user lists");
    }
    let mut fast = chatctl::rdt::fast::Config {
        cc: match args.cc {
            Cc::Cubic => Algorithm::Cubic,
            Cc::Newreno => Algorithm::NewReno,
            Cc::Bbr => Algorithm::Bbr,
        },
        ..Default::default()
    };
    if let Some(n) = args.max_datagram {
        fast.max_datagram = n as usize;
        fast.probe = false;
    }
    let config = Config {
        listen,
        files: args.files,
        ports,
        max_users: args.max_users,
        join_timeout: args.join_timeout,
        unjoined_timeout: args.unjoined_timeout,
        max_unjoined_per_host: args.max_unjoined_per_host as usize,
        max_connections: args.max_connections as usize,
        max_transfers_per_user: args.max_transfers_per_user as usize,
        fast,
        trace: match &args.trace {
            Some(p) => {
                Some(Tracer::create(p).with_context(|| format!("--trace {}: cannot create the file", p.display()))?)
            }
            None => None,
        },
        ..Config::default()
    };
    // The chat on one thread: every wake-up between a sender's task and a
    // target's stays on it (downloads get a runtime of their own).
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async {
        let server = Server::bind(config).await?;
        server.run(stop_signal()).await;
        Ok(())
    })
}

/// `ADDR:PORT`, `[v6]:PORT` or `host:PORT`.
fn resolve(s: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .with_context(|| format!("--listen {s}: expected ADDR:PORT, e.g. 0.0.0.0:13337 or [::]:13337"))?
        .next()
        .with_context(|| format!("--listen {s}: the name has no address"))
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
