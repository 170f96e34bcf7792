//! The fast receiver's ACK scheduling (after quinn-proto's `PendingAcks`):
//! what is unacknowledged, the sender's ACK-FREQUENCY request, when the
//! next ACK is due and which ranges it carries. The receiver keeps the due
//! instant in its timer table; this unit decides it.

use std::ops::Range;
use std::time::{Duration, Instant};

use super::MAX_ACK_RANGES;
use super::control::DEFAULT_ACK_THRESHOLD;
use crate::rdt::rangeset::RangeSet;

/// The largest ACK threshold a sender may ask for.
pub(crate) const MAX_ACK_THRESHOLD: u32 = 256;
/// The longest ACK delay a sender may ask for.
pub(crate) const MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// DATA received and not yet acknowledged, and the rule for when to acknowledge it.
#[derive(Debug, Clone)]
pub(crate) struct PendingAcks {
    /// The largest packet number received.
    largest_pn: Option<u64>,
    /// When it arrived (at first: when the receiver started).
    largest_at: Instant,
    /// DATA datagrams since the last ACK.
    unacked: u32,
    /// Acknowledge once this many DATA datagrams are unacknowledged, or
    /// `delay` after the first: as the sender's ACK-FREQUENCY asks.
    threshold: u32,
    delay: Duration,
    /// The newest ACK-FREQUENCY's sequence number.
    frequency_seq: Option<u64>,
}

impl PendingAcks {
    /// Every second datagram ([`DEFAULT_ACK_THRESHOLD`]), or `delay` after
    /// the first, until the sender asks otherwise; for a receiver started at
    /// `now`.
    pub(crate) fn new(delay: Duration, now: Instant) -> Self {
        Self {
            largest_pn: None,
            largest_at: now,
            unacked: 0,
            threshold: DEFAULT_ACK_THRESHOLD,
            delay,
            frequency_seq: None,
        }
    }

    /// Whether any DATA has arrived.
    pub(crate) fn any_received(&self) -> bool {
        self.largest_pn.is_some()
    }

    /// The sender's ACK-FREQUENCY: applied if newer than the last one,
    /// bounded so a confused sender cannot silence us for long.
    pub(crate) fn on_frequency(&mut self, seq: u64, threshold: u32, max_delay_us: u32) {
        if self.frequency_seq.is_none_or(|s| seq > s) {
            self.frequency_seq = Some(seq);
            self.threshold = threshold.clamp(1, MAX_ACK_THRESHOLD);
            self.delay = Duration::from_micros(max_delay_us.into()).min(MAX_ACK_DELAY);
        }
    }

    /// Packets `first..=last` arrived at `now`; returns whether they come
    /// next in packet-number order (no loss or reordering before them).
    pub(crate) fn on_packets(&mut self, now: Instant, first: u64, last: u64) -> bool {
        let in_order = self.largest_pn.is_none_or(|l| first == l + 1);
        if self.largest_pn.is_none_or(|l| last > l) {
            self.largest_pn = Some(last);
            self.largest_at = now;
        }
        in_order
    }

    /// Counts `count` more unacknowledged datagrams and returns when the
    /// ACK is due, given when it was due before (`due`): at once on
    /// reordering or loss (`!in_order`) and at the file's end (`complete`);
    /// else once `threshold` datagrams wait, or `delay` after the first.
    pub(crate) fn ack_due(
        &mut self,
        now: Instant,
        count: u64,
        in_order: bool,
        complete: bool,
        due: Option<Instant>,
    ) -> Option<Instant> {
        self.unacked = self.unacked.saturating_add(count as u32);
        if !in_order || self.unacked >= self.threshold || complete {
            Some(now)
        } else if due.is_none() {
            Some(now + self.delay)
        } else {
            due
        }
    }

    /// An ACK goes now: its largest packet number, its delay (since that
    /// packet arrived, or since the start before any) in microseconds, and its ranges of `received`: the
    /// first (the contiguous prefix) and the newest, at most
    /// [`MAX_ACK_RANGES`]. The sender declares unacknowledged packets below
    /// the largest lost, so the newest ranges are never left out (with many
    /// gaps, the oldest went in earlier ACKs).
    pub(crate) fn on_ack_sent(&mut self, now: Instant, received: &RangeSet) -> (u64, u32, Vec<Range<u64>>) {
        self.unacked = 0;
        let skip = received.len().saturating_sub(MAX_ACK_RANGES);
        let ranges = received.iter().take(1).chain(received.iter().skip(1 + skip)).take(MAX_ACK_RANGES).collect();
        let delay = now.saturating_duration_since(self.largest_at);
        (self.largest_pn.unwrap_or(0), u32::try_from(delay.as_micros()).unwrap_or(u32::MAX), ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threshold_datagrams_or_the_delay_after_the_first() {
        let t0 = Instant::now();
        let mut a = PendingAcks::new(Duration::from_millis(5), t0);
        let first = a.on_packets(t0, 0, 0);
        assert!(first, "the first packet is in order");
        let due = a.ack_due(t0, 1, first, false, None);
        assert_eq!(due, Some(t0 + Duration::from_millis(5)));
        let later = t0 + Duration::from_millis(1);
        assert!(a.on_packets(later, 1, 1));
        assert_eq!(a.ack_due(later, 1, true, false, due), Some(later), "the second datagram");
        a.on_ack_sent(later, &RangeSet::new());
        assert_eq!(a.ack_due(later, 1, true, false, None), Some(later + Duration::from_millis(5)));
        // A gap, and the end of the file: at once.
        assert!(!a.on_packets(later, 5, 5));
        assert_eq!(a.ack_due(later, 1, false, false, Some(t0)), Some(later));
        a.on_ack_sent(later, &RangeSet::new());
        assert_eq!(a.ack_due(later, 1, true, true, None), Some(later));
    }

    #[test]
    fn a_wild_or_stale_ack_frequency_is_bounded_or_ignored() {
        let t0 = Instant::now();
        let mut a = PendingAcks::new(Duration::from_millis(5), t0);
        a.on_frequency(2, u32::MAX, u32::MAX);
        assert_eq!((a.threshold, a.delay), (MAX_ACK_THRESHOLD, MAX_ACK_DELAY));
        a.on_frequency(1, 4, 1000);
        assert_eq!(a.threshold, MAX_ACK_THRESHOLD, "an older request changes nothing");
        a.on_frequency(3, 0, 1000);
        assert_eq!((a.threshold, a.delay), (1, Duration::from_millis(1)));
    }

    #[test]
    fn an_ack_carries_the_prefix_and_the_newest_ranges_and_its_delay() {
        let t0 = Instant::now();
        let mut a = PendingAcks::new(Duration::from_millis(5), t0);
        a.on_packets(t0, 0, 9);
        a.on_packets(t0 + Duration::from_millis(1), 3, 4); // older: the largest stays
        let mut received = RangeSet::new();
        for i in 0..MAX_ACK_RANGES as u64 + 5 {
            received.insert(i * 10..i * 10 + 5);
        }
        let (largest, delay_us, ranges) = a.on_ack_sent(t0 + Duration::from_millis(2), &received);
        assert_eq!((largest, delay_us), (9, 2000));
        assert_eq!(ranges.len(), MAX_ACK_RANGES);
        assert_eq!(ranges[0], 0..5);
        assert_eq!(ranges[1], 60..65, "the oldest gaps after the prefix are left out");
        assert_eq!(*ranges.last().unwrap(), received.iter().last().unwrap());
    }
}
