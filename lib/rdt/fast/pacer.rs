//! Pacing for the fast sender: the policy ([`Pacing`]: the rate, the
//! bucket's size and the burst a paced sender waits for, from what the path
//! says now) and the account ([`Pacer`]: a token bucket, in bytes, refilled
//! at the pacing rate up to the bucket's size), each tested alone.

use std::time::{Duration, Instant};

use super::{DATA_OVERHEAD, GSO_MAX_BYTES};

/// A paced sender waits for the bytes the pacing rate earns in this long
/// (up to a GSO batch): see [`Pacing::burst_bytes`].
const BURST_SPAN: Duration = Duration::from_micros(500);

/// What the pacing policy reads of the path now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    /// The rate the controller sets itself (BBR), bytes/s.
    pub(crate) cc_rate: Option<f64>,
    /// Whether the controller is in slow start.
    pub(crate) slow_start: bool,
    /// The congestion window, bytes.
    pub(crate) window: u64,
    /// The smoothed RTT.
    pub(crate) srtt: Duration,
    /// File bytes per DATA datagram.
    pub(crate) payload: u64,
    /// Datagrams per burst at least (the configuration's `pacing_burst`).
    pub(crate) burst: u32,
}

impl Pacing {
    /// The pacing rate in bytes/s: the controller's own (at least a
    /// datagram a second), else the window per smoothed RTT with a gain of
    /// 2 in slow start and 1.25 after.
    pub(crate) fn rate(&self) -> f64 {
        if let Some(rate) = self.cc_rate {
            return rate.max(self.payload as f64);
        }
        let gain = if self.slow_start { 2.0 } else { 1.25 };
        let srtt = self.srtt.as_secs_f64().max(1e-5);
        gain * self.window as f64 / srtt
    }

    /// The bucket's size in bytes: bursts of `burst` datagrams, or 1 ms
    /// worth at the pacing rate when that is more (fast paths: fewer
    /// wake-ups per second). A controller that sets the rate (BBR) measures
    /// the rate it gets: tokens lost to late wake-ups would lower its
    /// estimate round after round, so its bucket holds 4 ms.
    pub(crate) fn bucket_cap(&self) -> f64 {
        let span = if self.cc_rate.is_some() { 4e-3 } else { 1e-3 };
        let cap = ((self.burst as f64) * self.payload as f64).max(self.rate() * span);
        cap.max(self.payload as f64)
    }

    /// Bytes a paced sender waits for: what the pacing rate earns in
    /// [`BURST_SPAN`], between one datagram and one GSO batch of them (and
    /// at most the bucket). Fast paths wake once per batch; slow ones still
    /// pace datagram by datagram, so a small bottleneck queue is not hit
    /// with bursts.
    pub(crate) fn burst_bytes(&self) -> f64 {
        let per_batch = (GSO_MAX_BYTES as u64 / (self.payload + DATA_OVERHEAD as u64)).max(1);
        let span = self.rate() * BURST_SPAN.as_secs_f64();
        span.min((per_batch * self.payload) as f64).min(self.bucket_cap()).max(self.payload as f64)
    }
}

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

    /// Refills the bucket as `pacing` says, and whether `bytes` may leave
    /// now; if not, when the next burst may ([`next_send`](Self::next_send)).
    pub(crate) fn poll_send(&mut self, now: Instant, bytes: f64, pacing: &Pacing) -> Result<(), Option<Instant>> {
        self.refill(now, pacing.rate(), pacing.bucket_cap());
        if self.allows(bytes) { Ok(()) } else { Err(self.next_send(now, pacing)) }
    }

    /// When the next burst may leave, if pacing holds data back now: a
    /// burst is [`Pacing::burst_bytes`], so a paced sender wakes once per
    /// burst, not per datagram.
    pub(crate) fn next_send(&self, now: Instant, pacing: &Pacing) -> Option<Instant> {
        self.ready_at(now, pacing.burst_bytes(), pacing.rate())
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

    fn pacing(cc_rate: Option<f64>, slow_start: bool) -> Pacing {
        let srtt = Duration::from_millis(10);
        Pacing { cc_rate, slow_start, window: 100_000, srtt, payload: 1000, burst: 16 }
    }

    #[test]
    fn the_rate_is_the_controllers_or_the_window_per_rtt_with_a_gain() {
        assert_eq!(pacing(None, true).rate(), 2.0 * 100_000.0 / 0.01);
        assert_eq!(pacing(None, false).rate(), 1.25 * 100_000.0 / 0.01);
        assert_eq!(pacing(Some(5e6), true).rate(), 5e6);
        assert_eq!(pacing(Some(1.0), true).rate(), 1000.0, "at least a datagram a second");
    }

    #[test]
    fn the_bucket_holds_a_burst_or_1_ms_or_4_ms_for_a_rate_setting_controller() {
        assert_eq!(pacing(None, false).bucket_cap(), 16_000.0, "16 datagrams beat 1 ms (12.5 kB)");
        assert_eq!(pacing(Some(1e8), false).bucket_cap(), 400_000.0, "4 ms at 100 MB/s");
        // A paced sender waits for 0.5 ms at the rate, between a datagram and a GSO batch.
        assert_eq!(pacing(Some(1e7), false).burst_bytes(), 5000.0);
        assert_eq!(pacing(Some(1e5), false).burst_bytes(), 1000.0, "at least one datagram");
        assert_eq!(pacing(Some(1e9), false).burst_bytes(), 64_000.0, "at most a GSO batch");
    }

    #[test]
    fn poll_send_refills_then_says_when_the_next_burst_may_leave() {
        let t0 = Instant::now();
        let p = pacing(Some(1e7), false);
        let mut b = Pacer::new(0.0, t0);
        assert_eq!(b.poll_send(t0, 1000.0, &p), Err(Some(t0 + Duration::from_micros(500))));
        assert_eq!(b.poll_send(t0 + Duration::from_micros(500), 1000.0, &p), Ok(()));
    }

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
