//! What a transfer is configured with ([`Config`]).

use std::time::Duration;

use super::*;
use crate::rdt::cc::Algorithm;

/// Settings shared by sender and receiver.
#[derive(Debug, Clone)]
pub struct Config {
    /// Congestion controller of the sender.
    pub cc: Algorithm,
    /// Largest UDP payload sent. 1452 fits IPv6 over a 1500-byte MTU; loopback
    /// and jumbo paths may use more.
    pub max_datagram: usize,
    /// Lower bound of the RTO (RFC 6298 says 1 s; 200 ms like Linux).
    pub min_rto: Duration,
    /// Give up after hearing nothing from the peer for this long.
    pub idle_timeout: Duration,
    /// Receiver: how far beyond the contiguous prefix the sender may send.
    pub receive_window: u64,
    /// Receiver: largest delay before acknowledging (RFC 9000's max_ack_delay).
    pub max_ack_delay: Duration,
    /// Seed for the cookie; drivers take it from the OS.
    pub seed: u64,
    /// Pacing: bursts of at most this many datagrams.
    pub pacing_burst: u32,
    /// Path-MTU probing (DPLPMTUD-style): datagram sizes tried in turn above
    /// `max_datagram`, one DATA probe at a time; an acknowledged probe
    /// raises the datagram size, a lost one stops the probing (and does not
    /// count as congestion). The receiver accepts any size up to 65,507.
    pub probe_datagrams: Vec<usize>,
    /// Whether the path may be probed for larger datagrams: when false,
    /// [`Config::for_path`] keeps `max_datagram` even
    /// on loopback and no sizes in `probe_datagrams` are tried. Turn it off to
    /// emulate a 1500-byte-MTU path through a loopback relay.
    pub probe: bool,
    /// Receiver: the round-trip time to the sender measured before the
    /// transfer, if known (the client times its download request and the
    /// server's answer). The hello and START are then retried after twice
    /// it (at least 25 ms) rather than after 250 ms, so an opening datagram
    /// lost on a 20 ms path costs a few round trips, not a quarter second.
    pub rtt_hint: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cc: Algorithm::default(),
            max_datagram: 1452,
            min_rto: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(10),
            receive_window: 64 << 20,
            max_ack_delay: Duration::from_millis(5),
            seed: 0x5eed,
            pacing_burst: 16,
            probe_datagrams: vec![8972, 16_384, 65_000],
            probe: true,
            rtt_hint: None,
        }
    }
}

impl Config {
    /// File bytes per DATA datagram.
    pub(crate) fn payload_len(&self) -> usize {
        self.max_datagram.saturating_sub(DATA_OVERHEAD).max(1)
    }
}
