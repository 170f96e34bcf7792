//! TCP reassembly for one direction of one connection.
//!
//! Sequence numbers become 64-bit stream offsets once, relative to the first
//! byte (the SYN's sequence number + 1, or the first sequence number seen when
//! the capture starts mid-connection); every later comparison is between
//! offsets, so wrapping at 2³² is never an issue. In-order data is handed out
//! straight from the packet (no copy); only out-of-order segments are copied,
//! and at most [`Stream::cap`] bytes of them are held. When that cap is
//! exceeded, or at the end, the missing range is reported as a gap and the
//! stream resynchronises on the next held segment.

use std::collections::BTreeMap;

/// Default cap on out-of-order bytes buffered per direction.
pub(super) const DEFAULT_CAP: usize = 4 << 20;

/// What the reassembler hands out, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunk<'a> {
    /// In-order bytes starting at `offset`.
    Data {
        /// Stream offset of the first byte.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// `len` bytes at `offset` that the capture does not hold.
    Gap {
        /// Stream offset of the first missing byte.
        offset: u64,
        /// How many bytes are missing.
        len: u64,
    },
}

/// Counters for one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct StreamStats {
    /// Segments with payload.
    pub segments: u64,
    /// Segments whose payload was entirely delivered already.
    pub retransmissions: u64,
    /// Payload bytes seen again (retransmissions and overlaps).
    pub retransmitted_bytes: u64,
    /// Segments that arrived ahead of a hole.
    pub out_of_order: u64,
    /// Holes that were never filled.
    pub gaps: u64,
    /// Bytes in those holes.
    pub gap_bytes: u64,
}

/// One direction of a TCP connection.
#[derive(Debug)]
pub(super) struct Stream {
    /// Sequence number of stream offset 0.
    isn: Option<u32>,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Out-of-order segments by offset.
    pending: BTreeMap<u64, Vec<u8>>,
    buffered: usize,
    cap: usize,
    fin: Option<u64>,
    /// True once a SYN was seen (the stream starts at its beginning).
    pub saw_syn: bool,
    /// Counters.
    pub stats: StreamStats,
}

impl Default for Stream {
    fn default() -> Self {
        Self::new(DEFAULT_CAP)
    }
}

impl Stream {
    /// A stream that buffers at most `cap` out-of-order bytes.
    pub(super) fn new(cap: usize) -> Self {
        Stream {
            isn: None,
            next: 0,
            pending: BTreeMap::new(),
            buffered: 0,
            cap,
            fin: None,
            saw_syn: false,
            stats: StreamStats::default(),
        }
    }

    /// True when a SYN with this sequence number starts a different
    /// connection than the one this stream follows (the 4-tuple was reused).
    pub(super) fn is_new_syn(&self, seq: u32) -> bool {
        self.isn.is_some_and(|isn| isn != seq.wrapping_add(1)) && (self.saw_syn || self.next > 0)
    }

    /// Bytes delivered (or skipped as gaps) so far.
    pub(super) fn delivered(&self) -> u64 {
        self.next
    }

    /// Bytes held out of order.
    pub(super) fn buffered(&self) -> usize {
        self.buffered
    }

    /// True when a FIN was seen and every byte before it was delivered.
    pub(super) fn finished(&self) -> bool {
        self.fin.is_some_and(|f| self.next >= f)
    }

    /// The stream offset of sequence number `seq` (of a segment, or an
    /// acknowledgement of this stream), taken nearest to what was
    /// delivered; None before the stream's first sequence number is known
    /// or for one before it.
    pub(super) fn offset_of(&self, seq: u32) -> Option<u64> {
        let rel = seq.wrapping_sub(self.isn?);
        let diff = i64::from(rel.wrapping_sub(self.next as u32) as i32);
        u64::try_from(self.next as i64 + diff).ok()
    }

    /// Feeds one segment; in-order data and gaps go to `out`.
    pub(super) fn segment(&mut self, seq: u32, syn: bool, fin: bool, payload: &[u8], out: &mut impl FnMut(Chunk<'_>)) {
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        if syn && !self.saw_syn && self.next == 0 && self.pending.is_empty() {
            self.saw_syn = true;
            self.isn = Some(data_seq);
        }
        let isn = *self.isn.get_or_insert(data_seq);
        // Nearest 64-bit offset to `next` with these low 32 bits.
        let rel = data_seq.wrapping_sub(isn);
        let diff = i64::from(rel.wrapping_sub(self.next as u32) as i32);
        let mut offset = self.next as i64 + diff;
        let mut payload = payload;
        if offset < 0 {
            // Bytes from before the first one we saw (mid-connection start).
            let skip = (-offset) as usize;
            payload = payload.get(skip..).unwrap_or(&[]);
            offset = 0;
        }
        let offset = offset as u64;
        let end = offset + payload.len() as u64;
        if fin {
            self.fin.get_or_insert(end);
        }
        if payload.is_empty() {
            return;
        }
        self.stats.segments += 1;
        if end <= self.next {
            self.stats.retransmissions += 1;
            self.stats.retransmitted_bytes += payload.len() as u64;
            return;
        }
        if offset < self.next {
            let dup = (self.next - offset) as usize;
            self.stats.retransmitted_bytes += dup as u64;
            payload = &payload[dup..];
            return self.in_order(payload, out);
        }
        if offset == self.next {
            return self.in_order(payload, out);
        }
        self.stats.out_of_order += 1;
        match self.pending.get_mut(&offset) {
            Some(held) if held.len() >= payload.len() => {
                self.stats.retransmitted_bytes += payload.len() as u64;
            }
            Some(held) => {
                self.buffered += payload.len() - held.len();
                self.stats.retransmitted_bytes += held.len() as u64;
                *held = payload.to_vec();
            }
            None => {
                self.buffered += payload.len();
                self.pending.insert(offset, payload.to_vec());
            }
        }
        while self.buffered > self.cap {
            self.skip_hole(out);
        }
    }

    fn in_order(&mut self, payload: &[u8], out: &mut impl FnMut(Chunk<'_>)) {
        out(Chunk::Data { offset: self.next, data: payload });
        self.next += payload.len() as u64;
        self.drain(out);
    }

    /// Delivers held segments that now continue the stream.
    fn drain(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            let at = *entry.key();
            if at > self.next {
                break;
            }
            let data = entry.remove();
            self.buffered -= data.len();
            let end = at + data.len() as u64;
            if end <= self.next {
                self.stats.retransmitted_bytes += data.len() as u64;
                continue;
            }
            let skip = (self.next - at) as usize;
            self.stats.retransmitted_bytes += skip as u64;
            out(Chunk::Data { offset: self.next, data: &data[skip..] });
            self.next = end;
        }
    }

    /// Gives up on the hole before the first held segment.
    fn skip_hole(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        let Some((&at, _)) = self.pending.first_key_value() else { return };
        if at > self.next {
            let len = at - self.next;
            out(Chunk::Gap { offset: self.next, len });
            self.stats.gaps += 1;
            self.stats.gap_bytes += len;
            self.next = at;
        }
        self.drain(out);
    }

    /// End of the connection or of the capture: hands out everything held,
    /// reporting the holes, and a final hole before a FIN.
    pub(super) fn flush(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        while !self.pending.is_empty() {
            self.skip_hole(out);
        }
        if let Some(f) = self.fin
            && f > self.next
        {
            let len = f - self.next;
            out(Chunk::Gap { offset: self.next, len });
            self.stats.gaps += 1;
            self.stats.gap_bytes += len;
            self.next = f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(s: &mut Stream, segs: &[(u32, bool, bool, Vec<u8>)]) -> (Vec<u8>, Vec<(u64, u64)>) {
        let mut data = Vec::new();
        let mut gaps = Vec::new();
        let mut out = |c: Chunk<'_>| match c {
            Chunk::Data { offset, data: d } => {
                assert_eq!(offset, data.len() as u64 + gaps.iter().map(|g: &(u64, u64)| g.1).sum::<u64>());
                data.extend_from_slice(d)
            }
            Chunk::Gap { offset, len } => gaps.push((offset, len)),
        };
        for (seq, syn, fin, p) in segs {
            s.segment(*seq, *syn, *fin, p, &mut out);
        }
        s.flush(&mut out);
        (data, gaps)
    }

    proptest! {
        /// Any segmentation, reordering and duplication (with overlapping
        /// re-segmented retransmissions) reassembles to the stream, across the
        /// 2^32 wrap.
        #[test]
        fn any_segmentation_reassembles(
            len in 0usize..20_000,
            isn in prop_oneof![any::<u32>(), Just(u32::MAX - 3000), Just(u32::MAX)],
            cuts in proptest::collection::vec(1usize..1500, 1..40),
            seed in any::<u64>(),
            extra in proptest::collection::vec((any::<u16>(), 1usize..3000), 0..10),
        ) {
            let stream: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(seed | 1).to_le_bytes()[3]).collect();
            let mut segs = Vec::new();
            let (mut at, mut k) = (0usize, 0usize);
            while at < len {
                let n = cuts[k % cuts.len()].min(len - at);
                segs.push((at, at + n));
                at += n;
                k += 1;
            }
            for (start, n) in extra {
                if len > 0 { let a = start as usize % len; segs.push((a, (a + n).min(len))); }
            }
            let mut s = seed | 1;
            for i in (1..segs.len()).rev() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; segs.swap(i, (s % (i as u64 + 1)) as usize); }
            let mut input = vec![(isn, true, false, Vec::new())];
            for (a, b) in segs {
                input.push((isn.wrapping_add(1).wrapping_add(a as u32), false, false, stream[a..b].to_vec()));
            }
            input.push((isn.wrapping_add(1).wrapping_add(len as u32), false, true, Vec::new()));
            let mut st = Stream::new(usize::MAX);
            let (got, gaps) = collect(&mut st, &input);
            prop_assert!(gaps.is_empty(), "gaps {:?} (seed {})", gaps, seed);
            prop_assert_eq!(got, stream);
            prop_assert!(st.finished());
        }
    }

    #[test]
    fn hole_is_reported_then_resynchronised() {
        let mut st = Stream::new(10);
        let segs = vec![
            (100, true, false, vec![]),
            (101, false, false, b"abc".to_vec()),
            (107, false, false, b"ghijkl".to_vec()),
            (113, false, false, b"mnopq".to_vec()), // exceeds the cap of 10: give up on 104..107
            (104, false, false, b"def".to_vec()),   // too late: a retransmission now
        ];
        let (got, gaps) = collect(&mut st, &segs);
        assert_eq!(got, b"abcghijklmnopq");
        assert_eq!(gaps, vec![(3, 3)]);
        assert_eq!(st.stats.gaps, 1);
        assert_eq!(st.stats.retransmissions, 1);
        assert!(st.buffered() == 0);
    }

    #[test]
    fn mid_connection_start_and_missing_tail_before_fin() {
        let mut st = Stream::new(1000);
        let segs = vec![(5000, false, false, b"hello".to_vec()), (4998, false, false, b"xxhello".to_vec())];
        let (got, gaps) = collect(&mut st, &segs);
        assert_eq!(got, b"hello");
        assert!(gaps.is_empty());
        let mut st = Stream::new(1000);
        let segs = vec![(0, true, false, vec![]), (1, false, false, b"ab".to_vec()), (10, false, true, vec![])];
        let (got, gaps) = collect(&mut st, &segs);
        assert_eq!(got, b"ab");
        assert_eq!(gaps, vec![(2, 7)]);
    }
}
