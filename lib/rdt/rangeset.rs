//! A set of disjoint half-open `u64` ranges, used for received and
//! acknowledged byte ranges. Offsets are 64-bit so they never wrap.

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint, non-adjacent half-open ranges keyed by start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `r`, merging with neighbours. Returns the number of bytes that were new.
    pub fn insert(&mut self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            return 0;
        }
        // In-order data extends the last range: no search, no re-insertion.
        if let Some(mut last) = self.map.last_entry()
            && *last.get() == r.start
        {
            *last.get_mut() = r.end;
            return r.end - r.start;
        }
        let (mut start, mut end) = (r.start, r.end);
        let mut covered = 0;
        // Merge a range that starts before and reaches `start`.
        if let Some((&s, &e)) = self.map.range(..=start).next_back()
            && e >= start
        {
            covered += e.min(end) - start;
            start = s;
            end = end.max(e);
            self.map.remove(&s);
        }
        // Merge every range starting inside [start, end].
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            covered += e.min(r.end).saturating_sub(s.max(r.start));
            end = end.max(e);
            self.map.remove(&s);
        }
        self.map.insert(start, end);
        (r.end - r.start) - covered.min(r.end - r.start)
    }

    /// Whether every byte of `r` is in the set.
    pub fn contains(&self, r: Range<u64>) -> bool {
        if r.start >= r.end {
            return true;
        }
        matches!(self.map.range(..=r.start).next_back(), Some((_, &e)) if e >= r.end)
    }

    /// The end of the range starting at 0 (0 if none): every byte below it is present.
    pub(crate) fn prefix_end(&self) -> u64 {
        match self.map.first_key_value() {
            Some((&0, &e)) => e,
            _ => 0,
        }
    }

    /// The end of the highest range (0 if none): no byte at or above it is present.
    pub(crate) fn end(&self) -> u64 {
        self.map.last_key_value().map_or(0, |(_, &e)| e)
    }

    /// Removes and returns the first range, clipped to at most `max` bytes.
    pub(crate) fn pop_front(&mut self, max: u64) -> Option<Range<u64>> {
        let (s, e) = self.map.pop_first()?;
        if e - s > max {
            self.map.insert(s + max, e);
            Some(s..s + max)
        } else {
            Some(s..e)
        }
    }

    /// Removes every byte of `r`.
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let mut put_back = Vec::new();
        let first = self.map.range(..r.start).next_back().map(|(&s, &e)| (s, e));
        if let Some((s, e)) = first
            && e > r.start
        {
            self.map.remove(&s);
            put_back.push((s, r.start));
            if e > r.end {
                put_back.push((r.end, e));
            }
        }
        let inside: Vec<(u64, u64)> = self.map.range(r.start..r.end).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in inside {
            self.map.remove(&s);
            if e > r.end {
                put_back.push((r.end, e));
            }
        }
        for (s, e) in put_back {
            if s < e {
                self.map.insert(s, e);
            }
        }
    }

    /// The ranges in order.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_counts_new_bytes() {
        let mut s = RangeSet::new();
        assert_eq!(s.end(), 0);
        assert_eq!(s.insert(10..20), 10);
        assert_eq!(s.insert(0..5), 5);
        assert_eq!(s.insert(3..12), 5);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..20]);
        assert_eq!(s.insert(30..40), 10);
        assert_eq!(s.insert(20..30), 10);
        assert_eq!(s.prefix_end(), 40);
        assert!(s.contains(5..40));
        assert!(!s.contains(5..41));
        // Appending to the last range (the in-order fast path), also after a gap.
        assert_eq!(s.insert(40..50), 10);
        assert_eq!(s.insert(60..70), 10);
        assert_eq!(s.insert(70..80), 10);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..50, 60..80]);
        assert_eq!((s.prefix_end(), s.end()), (50, 80));
        assert_eq!(s.insert(50..60), 10);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..80]);
    }

    #[test]
    fn remove_splits() {
        let mut s = RangeSet::new();
        s.insert(0..100);
        s.remove(10..20);
        s.remove(90..200);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..10, 20..90]);
        assert_eq!(s.pop_front(4), Some(0..4));
        assert_eq!(s.pop_front(100), Some(4..10));
    }
}
