//! IP fragment reassembly, bounded in count, size and time.
//!
//! Fragments are keyed by (source, destination, protocol, identification).
//! A datagram is complete when its pieces cover every byte from 0 to the end
//! given by the last fragment (the one without "more fragments"). Overlaps
//! keep the first copy. At most [`MAX_PENDING`] datagrams are held, each at
//! most 65,535 bytes; the oldest is dropped (and counted) to make room, and a
//! datagram not completed within [`TIMEOUT_NS`] of capture time is dropped.

use std::collections::HashMap;
use std::net::IpAddr;

use super::net::Fragment;

/// Datagrams being reassembled at once.
pub(super) const MAX_PENDING: usize = 256;
/// Give up on a datagram after this much capture time (RFC 791 suggests 15 s, Linux uses 30 s).
pub(super) const TIMEOUT_NS: i64 = 30_000_000_000;
const MAX_DATAGRAM: usize = 65_535;

type Key = (IpAddr, IpAddr, u8, u32);

#[derive(Debug)]
struct Partial {
    first_ts: i64,
    data: Vec<u8>,
    /// Received byte ranges [start, end), kept sorted and merged.
    have: Vec<(u32, u32)>,
    /// Total length, once the last fragment is seen.
    total: Option<u32>,
}

/// The reassembler. Feed fragments with [`push`](Self::push).
#[derive(Debug, Default)]
pub(super) struct Defragmenter {
    pending: HashMap<Key, Partial>,
    /// Datagrams dropped incomplete (timeout, eviction, or too large).
    pub dropped: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
}

impl Defragmenter {
    /// A new, empty reassembler.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Adds one fragment; returns the whole payload when this completes it.
    pub(super) fn push(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        f: Fragment,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let start = f.offset as usize;
        let end = start + payload.len();
        if end > MAX_DATAGRAM {
            self.dropped += 1;
            return None;
        }
        if self.pending.len() >= MAX_PENDING {
            self.expire(ts);
        }
        if self.pending.len() >= MAX_PENDING {
            // Evict the oldest.
            if let Some(k) = self.pending.iter().min_by_key(|(_, p)| p.first_ts).map(|(k, _)| *k) {
                self.pending.remove(&k);
                self.dropped += 1;
            }
        }
        let key = (src, dst, proto, f.id);
        let p = self.pending.entry(key).or_insert_with(|| Partial {
            first_ts: ts,
            data: Vec::new(),
            have: Vec::new(),
            total: None,
        });
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        // Copy only the bytes not yet held (the first copy wins).
        let mut at = start as u32;
        let end32 = end as u32;
        for &(a, b) in &p.have {
            if at >= end32 {
                break;
            }
            if b <= at {
                continue;
            }
            if a > at {
                let stop = a.min(end32);
                p.data[at as usize..stop as usize]
                    .copy_from_slice(&payload[at as usize - start..stop as usize - start]);
            }
            at = at.max(b);
        }
        if at < end32 {
            p.data[at as usize..end].copy_from_slice(&payload[at as usize - start..]);
        }
        insert_range(&mut p.have, (start as u32, end32));
        if !f.more {
            p.total = Some(end32);
        }
        let complete = p.total.is_some_and(|t| p.have.first() == Some(&(0, t)) || (t == 0 && p.have.is_empty()));
        if complete {
            let mut p = self.pending.remove(&key)?;
            p.data.truncate(p.total.unwrap_or(0) as usize);
            self.reassembled += 1;
            return Some(p.data);
        }
        None
    }

    /// Drops datagrams older than [`TIMEOUT_NS`] at capture time `now`.
    pub(super) fn expire(&mut self, now: i64) {
        let before = self.pending.len();
        self.pending.retain(|_, p| now.saturating_sub(p.first_ts) <= TIMEOUT_NS);
        self.dropped += (before - self.pending.len()) as u64;
    }

    /// Datagrams still incomplete.
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }
}

fn insert_range(v: &mut Vec<(u32, u32)>, (mut a, mut b): (u32, u32)) {
    if a == b {
        return;
    }
    let mut out = Vec::with_capacity(v.len() + 1);
    let mut placed = false;
    for &(x, y) in v.iter() {
        if y < a {
            out.push((x, y));
        } else if b < x {
            if !placed {
                out.push((a, b));
                placed = true;
            }
            out.push((x, y));
        } else {
            a = a.min(x);
            b = b.max(y);
        }
    }
    if !placed {
        out.push((a, b));
    }
    *v = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    proptest! {
        #[test]
        fn any_order_and_duplicates_reassemble(len in 1usize..5000, cut in 8usize..1500, seed in any::<u64>(), dups in 0usize..4) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + seed as usize) as u8).collect();
            let cut = cut / 8 * 8;
            let mut frags: Vec<(usize, usize)> = (0..len).step_by(cut).map(|s| (s, (s + cut).min(len))).collect();
            for i in 0..dups { let f = frags[i % frags.len()]; frags.push(f); }
            // Deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..frags.len()).rev() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; frags.swap(i, (s % (i as u64 + 1)) as usize); }
            let mut d = Defragmenter::new();
            let mut got = None;
            for (a, b) in frags {
                let f = Fragment { id: 9, offset: a as u32, more: b < len };
                if let Some(v) = d.push(0, addr(1), addr(2), 17, f, &data[a..b]) { prop_assert!(got.is_none() || v == data); got = Some(v); }
            }
            prop_assert_eq!(got, Some(data));
        }
    }

    #[test]
    fn bounded_and_expiring() {
        let mut d = Defragmenter::new();
        for id in 0..(MAX_PENDING as u32 + 10) {
            d.push(0, addr(1), addr(2), 6, Fragment { id, offset: 0, more: true }, &[1; 8]);
        }
        assert_eq!(d.pending(), MAX_PENDING);
        d.expire(TIMEOUT_NS + 1);
        assert_eq!(d.pending(), 0);
        assert!(d.push(0, addr(1), addr(2), 6, Fragment { id: 1, offset: 65_528, more: false }, &[0; 16]).is_none());
    }
}
