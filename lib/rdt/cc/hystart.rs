//! HyStart++ (RFC 9406 §4.2), simplified: the delay-increase exit from
//! slow start. Without it a loss-free path (loopback) doubles the window
//! until the socket buffers overflow in one burst.
//!
//! Per round trip (a round ends when a packet sent after it began is
//! acknowledged) it keeps the minimum RTT. In slow start, once
//! [`MIN_SAMPLES`] samples of a round show the minimum grown by
//! `clamp(previous / 8, 4 ms, 16 ms)` over the previous round's, the
//! sender should leave slow start. The controller is told by the sender
//! ([`super::Controller::exit_slow_start`]), so this works for every
//! algorithm alike.

use std::time::Duration;

/// RTT samples a round needs before its minimum is compared (RFC 9406's N_RTT_SAMPLE).
const MIN_SAMPLES: u32 = 8;
/// Bounds of the RTT increase that ends slow start (RFC 9406's MIN_RTT_THRESH, MAX_RTT_THRESH).
const MIN_THRESHOLD: Duration = Duration::from_millis(4);
const MAX_THRESHOLD: Duration = Duration::from_millis(16);

/// Round tracking and the delay-increase test of HyStart++.
#[derive(Debug, Clone)]
pub(crate) struct HyStart {
    /// The round ends once a packet numbered at least this is acknowledged.
    round_end_pn: u64,
    /// Smallest RTT sample of this round (`MAX`: none yet).
    round_min: Duration,
    /// Smallest RTT sample of the previous round (`MAX`: none).
    last_round_min: Duration,
    /// Samples taken in this round.
    round_samples: u32,
}

impl Default for HyStart {
    fn default() -> Self {
        Self { round_end_pn: 0, round_min: Duration::MAX, last_round_min: Duration::MAX, round_samples: 0 }
    }
}

impl HyStart {
    /// An RTT `sample` taken from the acknowledgement of packet
    /// `largest_pn`, while `next_pn` is the number the next packet sent
    /// will get. Returns whether the sender should leave slow start
    /// (`in_slow_start` says whether it is in it).
    pub(crate) fn on_rtt_sample(
        &mut self,
        largest_pn: u64,
        next_pn: u64,
        sample: Duration,
        in_slow_start: bool,
    ) -> bool {
        if largest_pn >= self.round_end_pn {
            self.last_round_min = self.round_min;
            self.round_min = Duration::MAX;
            self.round_samples = 0;
            self.round_end_pn = next_pn;
        }
        self.round_min = self.round_min.min(sample);
        self.round_samples += 1;
        if !in_slow_start || self.round_samples < MIN_SAMPLES || self.last_round_min == Duration::MAX {
            return false;
        }
        let eta = (self.last_round_min / 8).clamp(MIN_THRESHOLD, MAX_THRESHOLD);
        self.round_min >= self.last_round_min + eta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds one round: `samples` acknowledgements of packets `pn..`, each
    /// with RTT `rtt`, while the sender has sent up to `sent`. Returns
    /// whether any of them said to leave slow start.
    fn round(h: &mut HyStart, pn: &mut u64, sent: u64, samples: u32, rtt: Duration) -> bool {
        let mut exit = false;
        for _ in 0..samples {
            exit |= h.on_rtt_sample(*pn, sent, rtt, true);
            *pn += 1;
        }
        exit
    }

    /// After a first round of 10 samples at `rtt` (packets 0..10, ended
    /// by packet 10), and the next packet number to acknowledge.
    fn after_first_round(rtt: Duration) -> (HyStart, u64) {
        let mut h = HyStart::default();
        let mut pn = 0;
        assert!(!round(&mut h, &mut pn, 10, 10, rtt));
        (h, pn)
    }

    #[test]
    fn exits_slow_start_when_the_rtt_grows_by_the_threshold() {
        let (mut h, mut pn) = after_first_round(40 * MS);
        // Round 2: 40/8 = 5 ms more is the threshold; 46 ms crosses it, at
        // the 8th sample and not before.
        for i in 0..7 {
            assert!(!h.on_rtt_sample(pn, 30, 46 * MS, true), "sample {i}");
            pn += 1;
        }
        assert!(h.on_rtt_sample(pn, 30, 46 * MS, true));
    }

    #[test]
    fn noise_below_the_threshold_does_not_exit() {
        let mut h = HyStart::default();
        let mut pn = 0;
        let mut sent = 10;
        assert!(!round(&mut h, &mut pn, sent, 10, 40 * MS));
        // Each round's minimum within 5 ms (the threshold at 40 ms) of the
        // previous one: rises of 4.9 ms, and jitter above the minimum.
        for r in 0..6 {
            sent += 20;
            let base = 40 * MS + Duration::from_micros(4_900) * (r % 2);
            for i in 0..20 {
                let rtt = base + MS * (i % 5) * u32::from(i % 3 != 0);
                assert!(!h.on_rtt_sample(pn, sent, rtt, true), "round {r} sample {i}");
                pn += 1;
            }
        }
    }

    /// Whether a second round of 10 samples at `second` ends slow start
    /// after a first round of 10 at `first`.
    fn second_round_exits(first: Duration, second: Duration) -> bool {
        let (mut h, mut pn) = after_first_round(first);
        round(&mut h, &mut pn, 30, 10, second)
    }

    #[test]
    fn the_threshold_is_clamped_between_4_and_16_ms() {
        // 8 ms RTT: 1 ms would be an eighth, the floor of 4 ms applies.
        assert!(!second_round_exits(8 * MS, 11 * MS + Duration::from_micros(900)));
        assert!(second_round_exits(8 * MS, 12 * MS));
        // 400 ms RTT: 50 ms would be an eighth, the ceiling of 16 ms applies.
        assert!(!second_round_exits(400 * MS, 415 * MS));
        assert!(second_round_exits(400 * MS, 416 * MS));
        // In between, an eighth: 5 ms at 40 ms.
        assert!(!second_round_exits(40 * MS, 44 * MS + Duration::from_micros(900)));
        assert!(second_round_exits(40 * MS, 45 * MS));
    }

    #[test]
    fn no_exit_outside_slow_start_or_in_the_first_round() {
        // The first round has nothing to compare with.
        let mut h = HyStart::default();
        let mut pn = 0;
        assert!(!round(&mut h, &mut pn, 100, 50, 40 * MS));
        // Out of slow start the rounds are still tracked, but never say exit.
        let (mut h, mut pn) = after_first_round(40 * MS);
        for _ in 0..10 {
            assert!(!h.on_rtt_sample(pn, 30, 100 * MS, false));
            pn += 1;
        }
        // (The same samples in slow start would.)
        let (mut h, mut pn) = after_first_round(40 * MS);
        assert!(round(&mut h, &mut pn, 30, 10, 100 * MS));
    }

    #[test]
    fn a_round_ends_only_when_a_packet_sent_after_it_began_is_acked() {
        let mut h = HyStart::default();
        let mut pn = 0;
        // Round 1 ends with packet 10; a huge rise within it is not compared.
        round(&mut h, &mut pn, 10, 5, 40 * MS);
        assert!(!round(&mut h, &mut pn, 10, 5, 200 * MS));
        // Packet 10 starts round 2 (minimum 40 ms before); 200 ms now exits.
        assert!(round(&mut h, &mut pn, 40, 8, 200 * MS));
    }
}
