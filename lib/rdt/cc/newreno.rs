//! NewReno (RFC 5681 / RFC 6582): slow start, congestion avoidance of one
//! segment per RTT, halving on loss once per recovery episode.

use std::time::{Duration, Instant};

use super::loss_based::{Growth, LossBased, Window};
use super::minimum_window;

/// NewReno: the shared loss-based rules with Reno's growth.
pub(crate) type NewReno = LossBased<Reno>;

/// Reno's congestion avoidance: one segment per window acknowledged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reno {
    /// Bytes acked in congestion avoidance not yet turned into window growth.
    acked: u64,
}

impl Growth for Reno {
    fn on_ack(&mut self, w: &mut Window, _now: Instant, bytes: u64, _srtt: Duration) {
        // RFC 5681 §3.1: cwnd += SMSS·SMSS/cwnd per ACK, done in byte-counting form.
        self.acked += bytes;
        if self.acked >= w.cwnd {
            self.acked -= w.cwnd;
            w.cwnd += w.mss;
        }
    }

    fn reduce(&mut self, w: &mut Window, _now: Instant) {
        w.cwnd = (w.cwnd / 2).max(minimum_window(w.mss));
        w.ssthresh = w.cwnd;
        self.acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdt::cc::Controller;

    #[test]
    fn halves_once_per_episode() {
        let t0 = Instant::now();
        let mut c = NewReno::new(1000);
        c.on_ack(t0, t0, 10_000, Duration::ZERO);
        assert_eq!(c.window(), 20_000);
        let t1 = t0 + Duration::from_millis(10);
        c.on_loss(t1, t0);
        assert_eq!(c.window(), 10_000);
        c.on_loss(t1, t0); // same episode
        assert_eq!(c.window(), 10_000);
        assert!(!c.in_slow_start());
        let t2 = t1 + Duration::from_millis(1);
        c.on_ack(t2, t2, 10_000, Duration::ZERO);
        assert_eq!(c.window(), 11_000);
    }

    #[test]
    fn rto_collapses_to_the_minimum_with_half_as_threshold() {
        let t0 = Instant::now();
        let mut c = NewReno::new(1000);
        c.on_ack(t0, t0, 30_000, Duration::ZERO);
        assert_eq!(c.window(), 40_000);
        c.on_rto(t0 + Duration::from_millis(300));
        assert_eq!(c.window(), 2_000);
        // Slow start again, up to half the old window.
        let t1 = t0 + Duration::from_millis(400);
        c.on_ack(t1, t1, 18_000, Duration::ZERO);
        assert_eq!(c.window(), 20_000);
        assert!(!c.in_slow_start());
    }
}
