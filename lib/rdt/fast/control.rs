//! When the fast sender's control datagrams go: STATS at most every
//! [`STATS_INTERVAL`], and an ACK-FREQUENCY (after
//! draft-ietf-quic-ack-frequency) behind each STATS while the threshold
//! the window calls for differs from the receiver's default, or from what
//! was last asked. Repeating it with every STATS makes a lost request
//! harmless; the sequence number lets the receiver keep the newest.

use std::time::Instant;

use super::STATS_INTERVAL;

/// The receiver's ACK threshold until it hears an ACK-FREQUENCY, and the
/// least a sender asks for.
pub(crate) const DEFAULT_ACK_THRESHOLD: u32 = 2;

/// The ACK threshold a sender asks for with a window of `cwnd` bytes of
/// `mss`-byte datagrams: about 8 ACKs per window, between
/// [`DEFAULT_ACK_THRESHOLD`] and 64 datagrams.
pub(crate) fn ack_threshold(cwnd: u64, mss: u64) -> u32 {
    (cwnd / mss.max(1) / 8).clamp(u64::from(DEFAULT_ACK_THRESHOLD), 64) as u32
}

/// The STATS and ACK-FREQUENCY schedule of one transfer.
#[derive(Debug, Clone)]
pub(crate) struct ControlSchedule {
    /// When the next STATS may go (`None`: at once).
    stats_at: Option<Instant>,
    /// An ACK-FREQUENCY goes out after this STATS.
    ack_freq_due: bool,
    /// Sequence number and threshold of the last ACK-FREQUENCY sent.
    ack_freq_seq: u64,
    ack_freq_sent: u32,
}

impl Default for ControlSchedule {
    fn default() -> Self {
        Self { stats_at: None, ack_freq_due: false, ack_freq_seq: 0, ack_freq_sent: DEFAULT_ACK_THRESHOLD }
    }
}

impl ControlSchedule {
    /// Whether a STATS may go at `now`.
    pub(crate) fn stats_due(&self, now: Instant) -> bool {
        self.stats_at.is_none_or(|t| now >= t)
    }

    /// Whether a control datagram should go before more DATA at `now`
    /// (STATS only once the address is `validated`).
    pub(crate) fn due(&self, now: Instant, validated: bool) -> bool {
        self.ack_freq_due || (validated && self.stats_due(now))
    }

    /// A STATS went at `now`: the next in [`STATS_INTERVAL`], and an
    /// ACK-FREQUENCY may follow it.
    pub(crate) fn on_stats_sent(&mut self, now: Instant) {
        self.stats_at = Some(now + STATS_INTERVAL);
        self.ack_freq_due = true;
    }

    /// The ACK-FREQUENCY to send now, as (sequence number, threshold),
    /// with `threshold` what the window calls for: only right after a
    /// STATS, and not while both it and the last request are the default.
    pub(crate) fn take_ack_frequency(&mut self, threshold: u32) -> Option<(u64, u32)> {
        if !std::mem::take(&mut self.ack_freq_due)
            || (threshold == DEFAULT_ACK_THRESHOLD && self.ack_freq_sent == DEFAULT_ACK_THRESHOLD)
        {
            return None;
        }
        self.ack_freq_seq += 1;
        self.ack_freq_sent = threshold;
        Some((self.ack_freq_seq, threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_threshold_is_an_eighth_of_the_window_within_bounds() {
        assert_eq!(ack_threshold(10 * 1431, 1431), 2);
        assert_eq!(ack_threshold(160 * 1431, 1431), 20);
        assert_eq!(ack_threshold(u64::MAX, 1431), 64);
        assert_eq!(ack_threshold(1 << 20, 0), 64, "a zero mss counts as 1");
    }

    #[test]
    fn stats_at_most_every_interval_and_only_once_validated() {
        let mut c = ControlSchedule::default();
        let t0 = Instant::now();
        assert!(!c.due(t0, false));
        assert!(c.due(t0, true) && c.stats_due(t0));
        c.on_stats_sent(t0);
        // The ACK-FREQUENCY slot is open until taken.
        assert!(c.due(t0, true));
        assert_eq!(c.take_ack_frequency(DEFAULT_ACK_THRESHOLD), None);
        assert!(!c.due(t0, true));
        assert!(!c.due(t0 + STATS_INTERVAL / 2, true));
        assert!(c.due(t0 + STATS_INTERVAL, true));
    }

    #[test]
    fn ack_frequency_follows_each_stats_while_not_the_default() {
        let mut c = ControlSchedule::default();
        let t0 = Instant::now();
        // Not without a STATS before it.
        assert_eq!(c.take_ack_frequency(8), None);
        c.on_stats_sent(t0);
        assert_eq!(c.take_ack_frequency(8), Some((1, 8)));
        // Once per STATS.
        assert_eq!(c.take_ack_frequency(8), None);
        // Repeated with the next STATS even when unchanged (a lost one is harmless).
        c.on_stats_sent(t0 + STATS_INTERVAL);
        assert_eq!(c.take_ack_frequency(8), Some((2, 8)));
        // Back to the default: said once, then no more.
        c.on_stats_sent(t0 + 2 * STATS_INTERVAL);
        assert_eq!(c.take_ack_frequency(DEFAULT_ACK_THRESHOLD), Some((3, DEFAULT_ACK_THRESHOLD)));
        c.on_stats_sent(t0 + 3 * STATS_INTERVAL);
        assert_eq!(c.take_ack_frequency(DEFAULT_ACK_THRESHOLD), None);
        c.on_stats_sent(t0 + 4 * STATS_INTERVAL);
        assert_eq!(c.take_ack_frequency(64), Some((4, 64)));
    }
}
