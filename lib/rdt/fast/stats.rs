//! Live figures of a transfer.

use std::time::Duration;

use super::*;

/// Live figures of a transfer (for `fetch -v` and server logs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Datagrams sent (all kinds).
    pub datagrams_sent: u64,
    /// File bytes sent including retransmissions.
    pub bytes_sent: u64,
    /// File bytes sent again after a loss.
    pub bytes_retransmitted: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Retransmission timeouts.
    pub rtos: u64,
    /// File bytes acknowledged (sender) or received (receiver).
    pub bytes_done: u64,
    /// Receiver: bytes `0..held_prefix` are all held (what a resume keeps:
    /// a resume offset says the receiver holds everything before it).
    pub held_prefix: u64,
    /// Receiver: the sender's own figures from its last STATS (none yet, or
    /// from a sender that does not send STATS).
    pub sender: Option<SenderStats>,
}
