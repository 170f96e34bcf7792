//! NewReno (RFC 5681 / RFC 6582): slow start, congestion avoidance of one
//! segment per RTT, halving on loss once per recovery episode.

use std::time::{Duration, Instant};

use super::{Controller, initial_window, minimum_window};

/// NewReno state.
#[derive(Debug, Clone)]
pub struct NewReno {
    mss: u64,
    cwnd: u64,
    ssthresh: u64,
    /// Bytes acked in congestion avoidance not yet turned into window growth.
    acked: u64,
    recovery_start: Option<Instant>,
}

impl NewReno {
    /// A controller with the initial window.
    pub fn new(mss: u64) -> Self {
        Self { mss, cwnd: initial_window(mss), ssthresh: u64::MAX, acked: 0, recovery_start: None }
    }
}

impl Controller for NewReno {
    fn window(&self) -> u64 {
        self.cwnd
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    fn exit_slow_start(&mut self) {
        self.ssthresh = self.cwnd;
    }

    fn on_ack(&mut self, _now: Instant, sent: Instant, bytes: u64, _srtt: Duration) {
        if self.recovery_start.is_some_and(|r| sent <= r) {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += bytes;
        } else {
            // RFC 5681 §3.1: cwnd += SMSS·SMSS/cwnd per ACK, done in byte-counting form.
            self.acked += bytes;
            if self.acked >= self.cwnd {
                self.acked -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
    }

    fn on_loss(&mut self, now: Instant, sent: Instant) {
        if self.recovery_start.is_some_and(|r| sent <= r) {
            return;
        }
        self.recovery_start = Some(now);
        self.cwnd = (self.cwnd / 2).max(minimum_window(self.mss));
        self.ssthresh = self.cwnd;
        self.acked = 0;
    }

    fn on_rto(&mut self, now: Instant) {
        self.ssthresh = (self.cwnd / 2).max(minimum_window(self.mss));
        self.cwnd = minimum_window(self.mss);
        self.recovery_start = Some(now);
        self.acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
