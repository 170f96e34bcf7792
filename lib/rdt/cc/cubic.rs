//! CUBIC (RFC 9438): window growth `W(t) = C·(t − K)³ + W_max` after a
//! reduction by β = 0.7, with the Reno-friendly region of §4.3.

use std::time::{Duration, Instant};

use super::loss_based::{Growth, LossBased, Window};
use super::minimum_window;

/// RFC 9438 §5: C = 0.4 (segments / s³).
const C: f64 = 0.4;
/// RFC 9438 §4.6: multiplicative decrease factor.
const BETA: f64 = 0.7;

/// CUBIC: the shared loss-based rules with the cubic growth.
pub(crate) type Cubic = LossBased<CubicGrowth>;

/// CUBIC's congestion avoidance; the cubic function in segments.
#[derive(Debug, Clone, Default)]
pub(crate) struct CubicGrowth {
    w_max: f64,
    k: f64,
    epoch: Option<Instant>,
    /// Reno-friendly estimate in bytes (§4.3).
    w_est: f64,
}

impl Growth for CubicGrowth {
    fn on_ack(&mut self, w: &mut Window, now: Instant, bytes: u64, srtt: Duration) {
        let seg = w.mss as f64;
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.w_max = w.cwnd as f64 / seg;
            self.k = 0.0;
            self.w_est = w.cwnd as f64;
            now
        });
        let t = (now.saturating_duration_since(epoch) + srtt).as_secs_f64();
        let target = (C * (t - self.k).powi(3) + self.w_max) * seg;
        // Reno-friendly estimate, α = 3(1−β)/(1+β) segments per RTT (§4.3).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * seg * bytes as f64 / w.cwnd as f64;
        let cwnd = w.cwnd as f64;
        let goal = target.max(self.w_est).min(cwnd * 1.5);
        if goal > cwnd {
            // Grow by (goal − cwnd)/cwnd per acked segment (§4.4).
            let inc = (goal - cwnd) / cwnd * bytes as f64;
            w.cwnd += inc.max(0.0) as u64;
        }
    }

    fn reduce(&mut self, w: &mut Window, now: Instant) {
        let seg = w.mss as f64;
        let cwnd = w.cwnd as f64 / seg;
        // Fast convergence (§4.7).
        self.w_max = if cwnd < self.w_max { cwnd * (1.0 + BETA) / 2.0 } else { cwnd };
        w.cwnd = ((cwnd * BETA * seg) as u64).max(minimum_window(w.mss));
        w.ssthresh = w.cwnd;
        self.k = (self.w_max * (1.0 - BETA) / C).cbrt();
        self.epoch = Some(now);
        self.w_est = w.cwnd as f64;
    }

    fn on_rto(&mut self, _w: &Window) {
        // The cubic epoch starts afresh when slow start ends again.
        self.epoch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdt::cc::Controller;

    #[test]
    fn reduces_by_beta_and_regrows_towards_w_max() {
        let t0 = Instant::now();
        let mut c = Cubic::new(1000);
        c.on_ack(t0, t0, 90_000, Duration::ZERO);
        assert_eq!(c.window(), 100_000);
        let t1 = t0 + Duration::from_millis(1);
        c.on_loss(t1, t0);
        assert_eq!(c.window(), 70_000);
        let rtt = Duration::from_millis(50);
        let mut t = t1;
        for _ in 0..400 {
            t += Duration::from_millis(10);
            let w = c.window();
            c.on_ack(t, t, w / 5, rtt);
        }
        // K = cbrt(100·0.3/0.4) ≈ 4.2 s: after 4 s the window is back near W_max.
        assert!(c.window() > 95_000, "window {}", c.window());
    }
}
