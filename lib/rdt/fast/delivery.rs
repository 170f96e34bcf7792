//! The fast receiver's delivery: which bytes of the file it holds, writing
//! new ones through the [`Sink`], hashing the contiguous prefix as it grows,
//! and the figures of delivery (holes opened and filled, bytes per RTT).

use std::ops::Range;
use std::time::{Duration, Instant};

use super::receiver::RecvError;
use super::{FileHash, HASH_RUN, Sink, Stats};
use crate::rdt::rangeset::RangeSet;

/// The bytes held and the hash of their prefix.
#[derive(Debug)]
pub(crate) struct Delivery {
    received: RangeSet,
    /// Hash of the file's contiguous prefix, fed in runs of [`HASH_RUN`]
    /// from the sink's memory as the prefix grows.
    hasher: FileHash,
    /// Bytes delivered since `window_start`, for the bytes-per-RTT figure.
    window_start: Instant,
    window_bytes: u64,
}

impl Delivery {
    /// Nothing held yet, at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            received: RangeSet::new(),
            hasher: FileHash::new(super::Format::LATEST.hash_algorithm()),
            window_start: now,
            window_bytes: 0,
        }
    }

    /// The receiver already holds `0..held` (a resume).
    pub(crate) fn hold_prefix(&mut self, held: u64) {
        self.received.insert(0..held);
    }

    /// The byte ranges held.
    pub(crate) fn received(&self) -> &RangeSet {
        &self.received
    }

    /// Whether all of `r` is held.
    pub(crate) fn holds(&self, r: Range<u64>) -> bool {
        self.received.contains(r)
    }

    /// The end of the contiguous prefix held.
    pub(crate) fn prefix_end(&self) -> u64 {
        self.received.prefix_end()
    }

    /// Writes `parts`, the file's bytes from `offset` on, unless all are
    /// held already; counts them in `stats` (`bytes_done`, a hole opened in
    /// `packets_lost`, a hole filled late in `bytes_retransmitted`, bytes
    /// per `rtt` in `cwnd`) and hashes the prefix as far as whole runs go.
    pub(crate) fn deliver(
        &mut self,
        now: Instant,
        offset: u64,
        parts: &[&[u8]],
        sink: &mut dyn Sink,
        rtt: Duration,
        stats: &mut Stats,
    ) -> Result<(), RecvError> {
        let end = offset + parts.iter().map(|p| p.len() as u64).sum::<u64>();
        if self.received.contains(offset..end) {
            return Ok(());
        }
        let mut at = offset;
        for p in parts {
            sink.write_at(at, p).map_err(|source| RecvError::Io { offset: at, source })?;
            at += p.len() as u64;
        }
        // The end of the highest range received so far: holes open above it.
        let highest_end = self.received.end();
        let new = self.received.insert(offset..end);
        stats.bytes_done += new;
        if offset > highest_end {
            stats.packets_lost += 1; // a hole opened: loss or reordering
        } else {
            // A hole filled late: the new bytes below the old highest end
            // (everything above it is new).
            stats.bytes_retransmitted += new - end.saturating_sub(highest_end);
        }
        // Hash as the contiguous prefix grows, in runs of HASH_RUN from
        // the sink's memory (read back only what it no longer holds).
        if let [payload] = parts {
            self.hasher.feed_next(offset, payload);
        }
        let prefix = self.received.prefix_end();
        if prefix >= self.hasher.hashed_to() + HASH_RUN {
            self.hasher.feed_runs_to(prefix, sink).map_err(|(offset, source)| RecvError::Io { offset, source })?;
        }
        // Delivered bytes per RTT: the sender's window as seen from here.
        self.window_bytes += new;
        if now.saturating_duration_since(self.window_start) >= rtt {
            stats.cwnd = self.window_bytes;
            self.window_bytes = 0;
            self.window_start = now;
        }
        Ok(())
    }

    /// Whether the file's hash (its first `size` bytes, all held) is `hash`.
    pub(crate) fn verify(&mut self, sink: &mut dyn Sink, size: u64, hash: &[u8; 32]) -> Result<bool, RecvError> {
        self.hasher.feed_to(size, sink).map_err(|(offset, source)| RecvError::Io { offset, source })?;
        Ok(self.hasher.finalize() == *hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(d: &mut Delivery, now: Instant, range: Range<u64>, sink: &mut Vec<u8>, stats: &mut Stats) {
        let bytes: Vec<u8> = range.clone().map(|i| i as u8).collect();
        d.deliver(now, range.start, &[&bytes], sink, Duration::from_millis(10), stats).unwrap();
    }

    #[test]
    fn holes_opened_and_bytes_filling_them_late_are_counted() {
        let t0 = Instant::now();
        let (mut d, mut sink, mut stats) = (Delivery::new(t0), Vec::new(), Stats::default());
        deliver(&mut d, t0, 0..100, &mut sink, &mut stats);
        deliver(&mut d, t0, 200..300, &mut sink, &mut stats);
        assert_eq!((stats.bytes_done, stats.packets_lost, stats.bytes_retransmitted), (200, 1, 0));
        // Half of the hole, and beyond the highest end: only the half is late.
        deliver(&mut d, t0, 150..350, &mut sink, &mut stats);
        assert_eq!((stats.bytes_done, stats.packets_lost, stats.bytes_retransmitted), (300, 1, 50));
        // Bytes held already change nothing.
        deliver(&mut d, t0, 0..50, &mut sink, &mut stats);
        assert_eq!(stats.bytes_done, 300);
        assert_eq!(d.prefix_end(), 100);
        assert!(d.holds(150..350) && !d.holds(99..151));
        assert!(sink[200..300].iter().enumerate().all(|(i, &b)| b == (200 + i) as u8));
    }

    #[test]
    fn bytes_per_rtt_are_counted_once_an_rtt_has_passed() {
        let t0 = Instant::now();
        let (mut d, mut sink, mut stats) = (Delivery::new(t0), Vec::new(), Stats::default());
        deliver(&mut d, t0, 0..100, &mut sink, &mut stats);
        deliver(&mut d, t0 + Duration::from_millis(5), 100..300, &mut sink, &mut stats);
        assert_eq!(stats.cwnd, 0, "less than an RTT (10 ms) went by");
        deliver(&mut d, t0 + Duration::from_millis(10), 300..400, &mut sink, &mut stats);
        assert_eq!(stats.cwnd, 400);
        deliver(&mut d, t0 + Duration::from_millis(25), 400..450, &mut sink, &mut stats);
        assert_eq!(stats.cwnd, 50, "a new window");
    }

    #[test]
    fn a_resumed_prefix_is_held_and_verified_with_the_rest() {
        let t0 = Instant::now();
        let file: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let mut d = Delivery::new(t0);
        let mut sink = file[..1000].to_vec();
        d.hold_prefix(1000);
        let mut stats = Stats::default();
        d.deliver(t0, 1000, &[&file[1000..]], &mut sink, Duration::ZERO, &mut stats).unwrap();
        assert_eq!(stats.packets_lost, 0, "the resume point is no hole");
        let good = super::super::Format::LATEST.hash_algorithm().field(&file);
        assert!(d.verify(&mut sink, 3000, &good).unwrap());
        let mut other = Delivery::new(t0);
        let mut bad = good;
        bad[0] ^= 1;
        assert!(!other.verify(&mut sink, 3000, &bad).unwrap());
    }
}
