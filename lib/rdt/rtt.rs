//! Round-trip time estimation and retransmission timeout per RFC 6298.

use std::time::Duration;

/// RFC 6298 estimator: `SRTT`, `RTTVAR`, and `RTO = SRTT + max(G, 4·RTTVAR)`,
/// clamped to `[min_rto, 60 s]`, with exponential backoff on expiry.
#[derive(Debug, Clone)]
pub(super) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    latest: Duration,
    min_rto: Duration,
    backoff: u32,
}

/// Clock granularity `G` of RFC 6298 §2.
const GRANULARITY: Duration = Duration::from_millis(1);
/// Initial RTO before any sample (RFC 6298 §2.1).
const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Upper bound on the RTO (RFC 6298 §2.5 allows 60 s).
const MAX_RTO: Duration = Duration::from_secs(60);

impl RttEstimator {
    /// A fresh estimator. `min_rto` replaces RFC 6298's conservative 1 s
    /// minimum (Linux uses 200 ms), since SACK makes spurious timeouts cheap.
    pub(super) fn new(min_rto: Duration) -> Self {
        Self { srtt: None, rttvar: Duration::ZERO, latest: Duration::ZERO, min_rto, backoff: 0 }
    }

    /// Feeds one sample (RFC 6298 §2.2–2.3, α = 1/8, β = 1/4); resets the backoff.
    pub(super) fn sample(&mut self, rtt: Duration) {
        self.latest = rtt;
        self.backoff = 0;
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// Smoothed RTT (the initial RTO's third before any sample).
    pub(super) fn srtt(&self) -> Duration {
        self.srtt.unwrap_or(INITIAL_RTO / 3)
    }

    /// Most recent sample.
    pub(super) fn latest(&self) -> Duration {
        self.latest
    }

    /// Whether any sample was taken.
    pub(super) fn has_sample(&self) -> bool {
        self.srtt.is_some()
    }

    /// Current RTO including backoff.
    pub(super) fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => INITIAL_RTO,
            Some(srtt) => (srtt + GRANULARITY.max(self.rttvar * 4)).max(self.min_rto),
        };
        base.saturating_mul(1 << self.backoff.min(16)).min(MAX_RTO)
    }

    /// Doubles the RTO after an expiry (RFC 6298 §5.5).
    pub(super) fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_formulas() {
        let mut r = RttEstimator::new(Duration::from_millis(200));
        assert_eq!(r.rto(), INITIAL_RTO);
        r.sample(Duration::from_millis(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 200 = 300 ms.
        assert_eq!(r.rto(), Duration::from_millis(300));
        r.sample(Duration::from_millis(100));
        // RTTVAR = 3/4·50 = 37.5, SRTT = 100: RTO = 250 ms.
        assert_eq!(r.rto(), Duration::from_micros(250_000));
        r.back_off();
        assert_eq!(r.rto(), Duration::from_micros(500_000));
    }
}
