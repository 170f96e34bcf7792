//! Server configuration: what `chatctl serve`'s flags turn into.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where update and transfer ports come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSpec {
    /// A fixed range `lo..=hi`, like the reference's 55000-55030.
    Range {
        /// First port of the range.
        lo: u16,
        /// Last port of the range (included).
        hi: u16,
    },
    /// Ports the OS assigns (bind to port 0), at most `max` in use at once.
    /// For tests and for hosts where no fixed range is free.
    Ephemeral {
        /// Most ports in use at once.
        max: usize,
    },
}

impl PortSpec {
    /// Most ports the pool hands out at once.
    pub fn capacity(&self) -> usize {
        match *self {
            PortSpec::Range { lo, hi } => usize::from(hi - lo) + 1,
            PortSpec::Ephemeral { max } => max,
        }
    }

    /// How many users a room of `max_users` holds with this pool. A room
    /// slot without a port could never be used: the pool keeps a port for
    /// every slot, and the room is smaller than the pool so that one port at
    /// least is left for downloads (a pool of one port: one user, no
    /// downloads).
    pub fn room_slots(&self, max_users: usize) -> usize {
        max_users.min(self.capacity().saturating_sub(1)).max(1)
    }
}

impl Default for PortSpec {
    fn default() -> Self {
        PortSpec::Range { lo: 55000, hi: 55030 }
    }
}

/// A `--ports` value that is not `LO-HI`, `0` or `0-N`.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid port range {0:?}: expected LO-HI (e.g. 55000-55030), 0 (ports the OS assigns) or 0-N (at most N of them)"
)]
pub struct PortSpecError(String);

impl FromStr for PortSpec {
    type Err = PortSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PortSpecError(s.to_string());
        let s = s.trim();
        if s == "0" {
            return Ok(PortSpec::Ephemeral { max: 31 });
        }
        let (lo, hi) = s.split_once('-').ok_or_else(err)?;
        let lo: u16 = lo.trim().parse().map_err(|_| err())?;
        let hi: u16 = hi.trim().parse().map_err(|_| err())?;
        if lo == 0 {
            return Ok(PortSpec::Ephemeral { max: if hi == 0 { 31 } else { usize::from(hi) } });
        }
        if hi < lo {
            return Err(err());
        }
        Ok(PortSpec::Range { lo, hi })
    }
}

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of the main listening socket (port 0: the OS picks).
    pub listen: SocketAddr,
    /// Folder whose regular files can be downloaded; `None`: `105` answers `2050`.
    pub files: Option<PathBuf>,
    /// Pool for update and transfer ports.
    pub ports: PortSpec,
    /// Most users in the room (above 10, lists use the extended encoding).
    pub max_users: usize,
    /// How long a joining client has to open its update connection, and a
    /// downloader its transfer connection.
    pub join_timeout: Duration,
    /// Updates queued per user before a user who does not read is disconnected.
    pub update_queue: usize,
    /// How long a connection may sit on half a message, or a started
    /// download make no progress, before it is closed and its resources freed.
    pub idle_timeout: Duration,
    /// How long a connection may stay open without joining (since it
    /// connected or left): it must send its `100` within this (or within
    /// `idle_timeout`, if shorter).
    pub unjoined_timeout: Duration,
    /// Most connections that have not joined, per client IP address; more
    /// from that address are closed at once (one host cannot hold the server).
    pub max_unjoined_per_host: usize,
    /// Most main connections in all, joined or not; more are closed at once.
    /// Well above `max_unjoined_per_host`.
    pub max_connections: usize,
    /// Most transfers one user may have in flight (announced and not yet
    /// ended); past it, `106` is answered `4062`.
    pub max_transfers_per_user: usize,
    /// Log lines a remote peer can trigger are rate-limited per kind and
    /// source address: the first few per period, then one summary line.
    pub log_summary_every: Duration,
    /// Consecutive bad inputs (answered `4999` or `4TT9`) after which a
    /// connection is cut off: a client that floods junk.
    pub max_bad_input: u32,
    /// Fast UDP mode settings (congestion controller, datagram size...).
    pub fast: crate::rdt::fast::Config,
    /// `serve --trace`: one JSON line per fast-mode sender event, all transfers.
    pub trace: Option<crate::rdt::fast::driver::Tracer>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], crate::wire::DEFAULT_PORT)),
            files: None,
            ports: PortSpec::default(),
            max_users: crate::wire::CLASSIC_MAX_USERS,
            join_timeout: Duration::from_secs(10),
            update_queue: 1024,
            idle_timeout: Duration::from_secs(60),
            unjoined_timeout: Duration::from_secs(10),
            max_unjoined_per_host: 16,
            max_connections: 4096,
            max_transfers_per_user: 4,
            log_summary_every: Duration::from_secs(10),
            max_bad_input: 32,
            fast: crate::rdt::fast::Config::default(),
            trace: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_specs() {
        assert_eq!("55000-55030".parse::<PortSpec>().unwrap(), PortSpec::Range { lo: 55000, hi: 55030 });
        assert_eq!("0".parse::<PortSpec>().unwrap(), PortSpec::Ephemeral { max: 31 });
        assert_eq!("0-8".parse::<PortSpec>().unwrap(), PortSpec::Ephemeral { max: 8 });
        assert!("9-3".parse::<PortSpec>().is_err());
        assert!("x".parse::<PortSpec>().is_err());
        assert_eq!(PortSpec::Range { lo: 5, hi: 7 }.capacity(), 3);
    }
}
