//! Pacing for the fast sender: a token bucket, in bytes, refilled at the
//! pacing rate up to a cap. The sender decides the rate and the cap (from
//! its controller and RTT); this unit only keeps the account, so it is
//! tested alone.

use std::time::{Duration, Instant};

/// A token bucket in bytes.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    tokens: f64,
    last_refill: Instant,
}

impl Pacer {
    /// A bucket holding `tokens` bytes at `now`.
    pub(crate) fn new(tokens: f64, now: Instant) -> Self {
        Self { tokens, last_refill: now }
    }

    /// Adds what `rate` bytes/s earned since the last refill, up to `cap` bytes.
    pub(crate) fn refill(&mut self, now: Instant, rate: f64, cap: f64) {
        let dt = now.saturating_duration_since(self.last_refill).as_secs_f64();
        self.last_refill = self.last_refill.max(now);
        self.tokens = (self.tokens + dt * rate).min(cap);
    }

    /// Whether `bytes` may leave now.
    pub(crate) fn allows(&self, bytes: f64) -> bool {
        self.tokens >= bytes
    }

    /// Spends `bytes` (sent).
    pub(crate) fn spend(&mut self, bytes: f64) {
        self.tokens -= bytes;
    }

    /// When the bucket will hold `need` bytes at `rate`, if it does not now.
    /// Rounded up to at least 1 µs: a wait that rounds to zero would wake
    /// the caller at once with still too few tokens, forever.
    pub(crate) fn ready_at(&self, now: Instant, need: f64, rate: f64) -> Option<Instant> {
        if self.tokens >= need {
            return None;
        }
        let wait = (need - self.tokens) / rate.max(1.0);
        let wait = Duration::from_nanos((wait.min(1.0) * 1e9).ceil() as u64).max(Duration::from_micros(1));
        Some(now.max(self.last_refill) + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_up_to_the_cap() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0.0, t0);
        assert!(!p.allows(1.0));
        p.refill(t0 + Duration::from_millis(1), 1e6, 1e9);
        assert!(p.allows(1000.0) && !p.allows(1001.0));
        p.spend(600.0);
        assert!(p.allows(400.0) && !p.allows(401.0));
        p.refill(t0 + Duration::from_secs(10), 1e6, 5000.0);
        assert!(p.allows(5000.0) && !p.allows(5000.5), "capped");
        // Time never runs backwards for the bucket.
        p.refill(t0, 1e6, 1e9);
        assert!(p.allows(5000.0) && !p.allows(5000.5));
    }

    #[test]
    fn ready_at_is_when_the_burst_is_earned() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0.0, t0);
        assert_eq!(p.ready_at(t0, 1000.0, 1e6), Some(t0 + Duration::from_millis(1)));
        // A tiny shortfall still waits at least a microsecond.
        p.refill(t0 + Duration::from_millis(1), 1e6, 1e9);
        p.spend(1e-6);
        assert_eq!(p.ready_at(t0, 1000.0, 1e6), Some(t0 + Duration::from_millis(1) + Duration::from_micros(1)));
        assert_eq!(p.ready_at(t0, 999.0, 1e6), None);
        // A wait is never more than a second (the caller recomputes).
        assert_eq!(Pacer::new(0.0, t0).ready_at(t0, 1e12, 1.0), Some(t0 + Duration::from_secs(1)));
    }
}
