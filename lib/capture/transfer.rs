//! Per-download state: TCP transfer connections and classic go-back-N over
//! UDP, with the counters of the summary and the points of the plot.

use std::net::SocketAddr;

use super::event::{DatagramKind, TransferMode, TransferSummary};
use crate::rdt::classic;

/// Most points kept per transfer for `--plot` (later ones are dropped).
pub const MAX_PLOT_POINTS: usize = 200_000;

/// Receiver window assumed when the capture missed the window datagram
/// (the reference client's default).
pub const DEFAULT_WINDOW: u8 = 20;

/// What a plot point shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    /// A data datagram sent for the first time.
    Data,
    /// A data datagram sent again.
    Retransmission,
    /// An acknowledgement (its packet number is the next one expected).
    Ack,
}

/// One point of a time-sequence graph: time and packet number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlotPoint {
    /// Capture time (ns since the epoch).
    pub ts_ns: i64,
    /// Packet number from the start of the transfer (not modulo the window).
    pub packet: u64,
    /// What the point shows.
    pub kind: PointKind,
}

/// A download being followed.
#[derive(Debug)]
pub struct Transfer {
    /// What is known so far (reported at the end).
    pub summary: TransferSummary,
    /// Points for `--plot` (UDP transfers only).
    pub plot: Vec<PlotPoint>,
    /// Classic: index of the next packet the receiver expects.
    expected: u64,
    /// Classic: highest packet index seen.
    max_seen: Option<u64>,
    /// Classic: per sequence number, the last packet seen with it and a hash
    /// of its payload.
    ring: Vec<Option<(u64, u64)>>,
    /// Classic: the last packet was received in order.
    pub done: bool,
    /// The summary event was already reported.
    pub reported: bool,
    /// Not a transfer after all (a refused connection); never reported.
    pub discarded: bool,
    /// Keep [`plot`](Self::plot) points (only when a plot was asked for).
    pub record_plot: bool,
}

/// What the caller should do with a datagram's payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// File offset where the payload belongs.
    pub offset: u64,
    /// This completes the file.
    pub last: bool,
}

impl Transfer {
    /// A new transfer.
    pub fn new(
        id: u32,
        mode: TransferMode,
        file: Option<String>,
        size: Option<u64>,
        client: SocketAddr,
        server: SocketAddr,
        ts: i64,
    ) -> Self {
        Transfer {
            summary: TransferSummary {
                id,
                mode,
                file,
                client,
                server,
                announced_size: size,
                bytes: 0,
                packets: 0,
                retransmissions: 0,
                out_of_order: 0,
                missing_bytes: 0,
                window: None,
                complete: false,
                first_ns: ts,
                last_ns: ts,
                extracted: None,
            },
            plot: Vec::new(),
            expected: 0,
            max_seen: None,
            ring: Vec::new(),
            done: false,
            reported: false,
            discarded: false,
            record_plot: false,
        }
    }

    fn point(&mut self, ts_ns: i64, packet: u64, kind: PointKind) {
        if self.record_plot && self.plot.len() < MAX_PLOT_POINTS {
            self.plot.push(PlotPoint { ts_ns, packet, kind });
        }
    }

    fn modulus(&self) -> u64 {
        u64::from(self.summary.window.unwrap_or(DEFAULT_WINDOW)) + 1
    }

    /// A classic datagram from the receiver (client): its window, or an ACK.
    pub fn classic_from_client(&mut self, ts: i64, payload: &[u8]) -> DatagramKind {
        self.summary.last_ns = ts;
        if self.max_seen.is_none()
            && let Some(w) = classic::parse_window(payload)
        {
            self.summary.window.get_or_insert(w);
            return DatagramKind::Window { window: w };
        }
        match classic::parse_ack(payload) {
            Some(next) if u64::from(next) < self.modulus() => {
                let m = self.modulus();
                let back = (self.expected % m + m - u64::from(next)) % m;
                self.point(ts, self.expected.saturating_sub(back), PointKind::Ack);
                DatagramKind::Ack { next }
            }
            _ => DatagramKind::Other { len: payload.len() },
        }
    }

    /// A classic datagram from the sender (server). Returns its kind and,
    /// for a packet the receiver takes in order, where its payload goes.
    pub fn classic_from_server(&mut self, ts: i64, payload: &[u8]) -> (DatagramKind, Option<Accepted>) {
        self.summary.last_ns = ts;
        let Some(d) = classic::Data::parse(payload) else {
            return (DatagramKind::Other { len: payload.len() }, None);
        };
        let m = self.modulus();
        let s = u64::from(d.seq);
        if s >= m {
            return (DatagramKind::Other { len: payload.len() }, None);
        }
        self.summary.packets += 1;
        // Which packet is it? The same residue fits one packet behind the
        // expected one (sent again) and one ahead (a hole before it). The
        // payload tells them apart: a packet sent again carries the bytes it
        // carried the first time.
        let exp = self.expected % m;
        let ahead_idx = self.expected + (s + m - exp) % m;
        let behind_idx = ahead_idx.checked_sub(m);
        let hash = payload_hash(payload);
        if self.ring.len() != m as usize {
            self.ring = vec![None; m as usize];
        }
        let slot = &mut self.ring[s as usize];
        let (idx, seen_before) = match *slot {
            Some((seen, h)) if h == hash && (Some(seen) == behind_idx || seen == ahead_idx) => (seen, true),
            _ => (ahead_idx, false),
        };
        if slot.is_none_or(|(seen, _)| seen <= idx) {
            *slot = Some((idx, hash));
        }
        let retransmission = self.done || seen_before;
        let out_of_order = !retransmission && idx > self.expected;
        self.max_seen = Some(self.max_seen.map_or(idx, |hi| hi.max(idx)));
        self.summary.retransmissions += u64::from(retransmission);
        self.summary.out_of_order += u64::from(out_of_order);
        self.point(ts, idx, if retransmission { PointKind::Retransmission } else { PointKind::Data });
        let kind = DatagramKind::Data { seq: d.seq, last: d.last, len: d.payload.len(), retransmission, out_of_order };
        if self.done || idx != self.expected {
            return (kind, None);
        }
        let offset = self.summary.bytes;
        self.summary.bytes += d.payload.len() as u64;
        self.expected += 1;
        if d.last {
            self.done = true;
            self.summary.complete = true;
        }
        (kind, Some(Accepted { offset, last: d.last }))
    }
}

/// A fast 64-bit hash of the payload, 8 bytes at a time: tells a packet
/// sent again from a new one (not cryptographic, not needed here).
fn payload_hash(p: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (p.len() as u64).wrapping_mul(K);
    let mut words = p.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K).rotate_left(29);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn data(last: bool, seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        classic::Data { last, seq, payload }.encode(&mut v);
        v
    }

    #[test]
    fn go_back_n_with_loss_and_wrap() {
        let mut t = Transfer::new(1, TransferMode::Classic, None, Some(0), addr(1), addr(2), 0);
        assert_eq!(t.classic_from_client(0, b"3"), DatagramKind::Window { window: 3 });
        // Packets 0..6 with seq mod 4; packet 2 is lost once, so 3 arrives out of order.
        let mut order: Vec<u64> = vec![0, 1, 3, 2, 3, 4, 5, 4, 5, 6];
        let mut got = Vec::new();
        for (n, idx) in order.drain(..).enumerate() {
            let last = idx == 6;
            let (kind, acc) = t.classic_from_server(n as i64, &data(last, (idx % 4) as u8, &[idx as u8]));
            if let Some(a) = acc {
                assert_eq!(a.offset, got.len() as u64);
                got.push(idx as u8);
            }
            let _ = kind;
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6]);
        assert!(t.summary.complete);
        assert_eq!(t.summary.out_of_order, 1);
        assert_eq!(t.summary.retransmissions, 3);
    }
}
