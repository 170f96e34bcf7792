//! Per-download state: TCP transfer connections, classic go-back-N and the
//! fast mode over UDP, with the counters of the summary and the points of
//! the plot (the state is crate-private; the plot points are public).
//!
//! A UDP transfer starts as classic and becomes fast at its first valid fast
//! datagram (a chatctl sender answers the hello with a CHALLENGE; a classic
//! one with data). Fast datagrams are parsed by [`crate::rdt::fast::Frame`],
//! the same code the transfer engine uses. The hello gives the fast
//! transfer's format and so the hash in DONE ([`fast::Format::hash_algorithm`]);
//! when the capture missed it, DONE's own field tells: format 3's digest is
//! followed by 16 zero bytes, which a BLAKE3 hash has with odds of 2⁻¹²⁸.

use std::net::SocketAddr;
use std::ops::Range;

use super::event::{DatagramKind, TransferMode, TransferSummary};
use crate::rdt::classic;
use crate::rdt::fast::{self, Format, Frame, HashAlgorithm};
use crate::rdt::rangeset::RangeSet;

/// Most points kept per transfer for `--plot` (later ones are dropped).
pub(super) const MAX_PLOT_POINTS: usize = 200_000;

/// Receiver window assumed when the capture missed the window datagram
/// (the reference client's default).
pub(super) const DEFAULT_WINDOW: u8 = 20;

/// Bytes before the payload of a classic data datagram (flag, 2-digit sequence).
const CLASSIC_HEADER: usize = 3;

/// Packet numbers looked back over to tell a retransmission (a packet
/// reordered further than this is judged by the highest byte seen so far).
pub(super) const PN_WINDOW: u64 = 4096;

/// Most disjoint ranges kept per fast transfer (received bytes, packet
/// numbers): beyond it a hostile capture could grow memory without bound, so
/// new ranges are no longer recorded (counts may then be approximate).
pub(super) const MAX_RANGES: usize = 1 << 16;

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

/// One point of a time-sequence graph: time and position in the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlotPoint {
    /// Capture time (ns since the epoch).
    pub ts_ns: i64,
    /// Classic: packet number from the start of the transfer (not modulo the
    /// window). Fast and TCP: file offset in bytes (data: its first byte;
    /// ACK: every byte below it was received).
    pub packet: u64,
    /// What the point shows.
    pub kind: PointKind,
}

/// A download being followed.
#[derive(Debug)]
pub(crate) struct Transfer {
    /// What is known so far (reported at the end).
    pub summary: TransferSummary,
    /// Points for `--plot`.
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
    /// Fast mode state (once the transfer turned out to be fast).
    fast: Option<Box<FastState>>,
    /// The format of the receiver's fast hello, if one was seen.
    hello_format: Option<Format>,
}

/// What the capture shows of a fast transfer.
#[derive(Debug, Default)]
struct FastState {
    /// File size from CHALLENGE or DONE.
    size: Option<u64>,
    /// DONE's hash field, and the algorithm it holds.
    hash: Option<(HashAlgorithm, [u8; 32])>,
    /// File bytes seen in DATA datagrams.
    covered: RangeSet,
    /// How many bytes `covered` holds.
    bytes: u64,
    /// Packet numbers seen.
    pns: RangeSet,
    /// Highest packet number seen.
    max_pn: Option<u64>,
    /// End of the highest byte range seen.
    max_end: u64,
    /// The last [`PN_WINDOW`] data packets seen, by packet number modulo
    /// the window: (packet number + 1, end offset, was a retransmission);
    /// 0 marks an empty slot.
    recent: Vec<(u64, u64, bool)>,
    /// DONE was seen.
    done: bool,
    /// Longest valid DATA datagram seen: the transfer's datagram size, by
    /// which a GSO super-packet is split first.
    datagram_size: usize,
}

impl FastState {
    /// Whether DATA `pn` carrying `offset..end` repeats bytes sent before.
    /// A sender sends fresh bytes in order, so a fresh packet starts at or
    /// after the end of every fresh packet with a lower number; a packet that
    /// starts before the end of the nearest lower fresh one seen was sent
    /// again (whatever order the capture saw them in). Failing any lower
    /// packet in the window: when it starts below the highest byte seen.
    fn resent(&mut self, pn: u64, offset: u64, end: u64) -> bool {
        if self.recent.is_empty() {
            self.recent = vec![(0, 0, false); PN_WINDOW as usize];
        }
        let slot = |q: u64| (q % PN_WINDOW) as usize;
        let mut verdict = None;
        for q in (pn.saturating_sub(PN_WINDOW - 1)..pn).rev() {
            let (tag, e, retx) = self.recent[slot(q)];
            if tag == q + 1 && !retx {
                verdict = Some(offset < e);
                break;
            }
        }
        let retx = verdict.unwrap_or_else(|| self.max_pn.is_some_and(|m| pn > m) && offset < self.max_end);
        self.recent[slot(pn)] = (pn.saturating_add(1), end, retx);
        retx
    }
}

/// What the analyser should do after a datagram.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Write these bytes of the datagram at this file offset.
    pub write: Option<(u64, Range<usize>)>,
    /// The transfer's file is whole (or will not get more bytes): close it.
    pub finish: bool,
}

/// What the caller should do with a datagram's payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// File offset where the payload belongs.
    pub offset: u64,
    /// This completes the file.
    pub last: bool,
}

impl Transfer {
    /// A new transfer.
    pub(crate) fn new(
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
                duplicates: 0,
                invalid: 0,
                missing_bytes: 0,
                window: None,
                resume: None,
                hash: None,
                hash_algorithm: None,
                receiver_verified: None,
                complete: false,
                first_ns: ts,
                last_ns: ts,
                data_first_ns: None,
                data_last_ns: None,
                reported_ns: ts,
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
            fast: None,
            hello_format: None,
        }
    }

    /// The size of the datagrams in a payload the sender's side captured:
    /// its whole length, or for a GSO super-packet (or a GRO-merged one) of
    /// DATA the size of each datagram but the last, which may be shorter.
    /// Judged from the transfer's datagram size first (see
    /// [`super_packet_segment`]). Classic transfers are never split.
    pub(crate) fn segment_size(&self, payload: &[u8]) -> usize {
        if self.fast.is_none() && self.max_seen.is_some() {
            return payload.len();
        }
        super_packet_segment(payload, self.fast.as_deref().map_or(0, |f| f.datagram_size))
    }

    /// One UDP datagram of this transfer, from the client (receiver) or the
    /// server (sender): classifies it, updates the counters, and says what to
    /// do with its bytes.
    pub(crate) fn datagram(&mut self, ts: i64, from_client: bool, payload: &[u8]) -> (DatagramKind, Step) {
        // Fast once a valid fast datagram (of any type the engine's parser
        // reads) is seen, unless classic data came first.
        if self.fast.is_none() && self.max_seen.is_none() && Frame::decode(payload).is_ok() {
            self.summary.mode = TransferMode::Fast;
            self.summary.window = None;
            self.fast = Some(Box::default());
        }
        if self.fast.is_some() {
            return self.fast_datagram(ts, from_client, payload);
        }
        if from_client {
            (self.classic_from_client(ts, payload), Step::default())
        } else {
            let (kind, acc) = self.classic_from_server(ts, payload);
            let step = acc.map_or_else(Step::default, |a| Step {
                write: Some((a.offset, CLASSIC_HEADER.min(payload.len())..payload.len())),
                finish: a.last,
            });
            (kind, step)
        }
    }

    fn fast_datagram(&mut self, ts: i64, from_client: bool, payload: &[u8]) -> (DatagramKind, Step) {
        self.summary.last_ns = ts;
        let mut step = Step::default();
        let Some(f) = self.fast.as_deref_mut() else { return (DatagramKind::Other { len: payload.len() }, step) };
        if from_client && let Some(format) = Format::of_hello(payload) {
            self.hello_format.get_or_insert(format);
            return (DatagramKind::FastHello { len: payload.len() }, step);
        }
        let frame = match Frame::decode(payload) {
            Ok(frame) => frame,
            Err(e) => {
                self.summary.invalid += 1;
                return (DatagramKind::Invalid { len: payload.len(), reason: e.to_string() }, step);
            }
        };
        let mut point = None;
        let kind = match frame {
            Frame::Challenge { cookie, size } => {
                f.size.get_or_insert(size);
                DatagramKind::Challenge { cookie, size }
            }
            Frame::Start { cookie, resume, max_data } => {
                self.summary.resume.get_or_insert(resume);
                DatagramKind::Start { cookie, resume, max_data }
            }
            Frame::Data { pn, offset, payload: data } => {
                let data = Data { pn, offset, len: data.len(), datagram: payload.len() };
                let (kind, p) = f.data(&mut self.summary, ts, data, &mut step);
                point = Some(p);
                kind
            }
            Frame::Ack { largest_pn, delay_us, max_data, ranges } => {
                let acked = ranges.first().filter(|r| r.start == 0).map_or(0, |r| r.end);
                point = Some((acked, PointKind::Ack));
                let ranges = ranges.iter().map(|r| [r.start, r.end]).collect();
                DatagramKind::FastAck { largest_pn, delay_us, max_data, ranges }
            }
            Frame::Done { size, hash } => {
                // Without the hello, format 3's zero padding tells.
                let format = self.hello_format.unwrap_or(if hash[16..] == [0; 16] { Format::V3 } else { Format::V2 });
                f.done(&mut self.summary, format.hash_algorithm(), size, hash)
            }
            Frame::DoneAck { ok } => {
                self.summary.receiver_verified = Some(ok);
                DatagramKind::DoneAck { ok }
            }
            // The sender's informative figures: valid, not counted.
            Frame::Stats(st) => DatagramKind::Stats {
                cwnd: st.cwnd,
                srtt_us: u64::try_from(st.srtt.as_micros()).unwrap_or(u64::MAX),
                pacing_rate: st.pacing_rate,
                packets_lost: st.packets_lost,
                bytes_retransmitted: st.bytes_retransmitted,
                cc: st.cc,
            },
            Frame::AckFrequency { seq, threshold, max_delay_us } => {
                DatagramKind::AckFrequency { seq, threshold, max_delay_us }
            }
            Frame::Abort { reason, text, .. } => {
                DatagramKind::Abort { code: reason.code(), reason: reason.to_string(), text: text.to_string() }
            }
        };
        if let Some((at, kind)) = point {
            self.point(ts, at, kind);
        }
        self.fast_totals();
        // DONE comes once every byte was acknowledged: nothing new follows.
        let whole = self.fast.as_deref().is_some_and(|f| f.done && self.summary.missing_bytes == 0);
        step.finish = whole || self.summary.receiver_verified.is_some();
        if step.finish
            && let Some(f) = self.fast.as_deref_mut()
        {
            // Nothing new is expected: give the look-back window's memory back.
            f.recent = Vec::new();
        }
        (kind, step)
    }

    /// Fast mode: bytes, missing bytes and completeness from what was seen.
    fn fast_totals(&mut self) {
        let Some(f) = self.fast.as_deref() else { return };
        let s = &mut self.summary;
        if s.announced_size.is_none() {
            s.announced_size = f.size;
        }
        s.bytes = f.bytes;
        s.missing_bytes = s.announced_size.map_or(0, |n| n.saturating_sub(f.bytes));
        s.complete = f.done && s.announced_size.is_some() && s.missing_bytes == 0;
    }

    /// A packet carrying file bytes was captured at `ts` (the duration
    /// measures these).
    pub(crate) fn data_seen(&mut self, ts: i64) {
        self.summary.data_first_ns.get_or_insert(ts);
        self.summary.data_last_ns = Some(ts);
    }

    /// Whether the transfer is over: the receiver's fast DONE-ACK, or the
    /// classic last packet taken in order (TCP ends with its connection).
    pub(crate) fn ended(&self) -> bool {
        match self.summary.mode {
            TransferMode::Fast => self.summary.receiver_verified.is_some(),
            TransferMode::Classic => self.done,
            TransferMode::Tcp => false,
        }
    }

    /// The file's hash field as the fast sender announced it (DONE), and
    /// the algorithm that fills it.
    pub(crate) fn expected_hash(&self) -> Option<(HashAlgorithm, [u8; 32])> {
        self.fast.as_deref().and_then(|f| f.hash)
    }

    /// Records a point of the plot (when one is asked for).
    pub(crate) fn point(&mut self, ts_ns: i64, packet: u64, kind: PointKind) {
        if self.record_plot && self.plot.len() < MAX_PLOT_POINTS {
            self.plot.push(PlotPoint { ts_ns, packet, kind });
        }
    }

    fn modulus(&self) -> u64 {
        u64::from(self.summary.window.unwrap_or(DEFAULT_WINDOW)) + 1
    }

    /// A classic datagram from the receiver (client): its window, or an ACK.
    pub(crate) fn classic_from_client(&mut self, ts: i64, payload: &[u8]) -> DatagramKind {
        self.summary.last_ns = ts;
        if self.max_seen.is_none()
            && let Some(w) = classic::parse_window(payload)
        {
            self.summary.window.get_or_insert(w);
            if let Some(format) = Format::of_hello(payload) {
                self.hello_format.get_or_insert(format);
                return DatagramKind::FastHello { len: payload.len() };
            }
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
    pub(crate) fn classic_from_server(&mut self, ts: i64, payload: &[u8]) -> (DatagramKind, Option<Accepted>) {
        self.summary.last_ns = ts;
        let Some(d) = classic::Data::parse(payload) else {
            return (DatagramKind::Other { len: payload.len() }, None);
        };
        let m = self.modulus();
        let s = u64::from(d.seq);
        if s >= m {
            return (DatagramKind::Other { len: payload.len() }, None);
        }
        self.data_seen(ts);
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

/// Where the second datagram of a GSO super-packet of fast DATA starts, which
/// is the size of every datagram in it but the last; `payload.len()` when the
/// payload is one datagram.
///
/// Linux hands tcpdump a UDP packet sent with GSO (or merged by GRO on
/// receipt) whole: one captured packet of 65,340 bytes carrying 45 datagrams
/// of 1,452. DATA has no length field, so the boundary is found from its
/// content: the next datagram starts with the DATA type and a packet number a
/// little above the first's (packet numbers grow by one per datagram sent; a
/// GRO merge on the receiver may skip the lost ones), and the first datagram
/// must pass its check. `datagram_size`, the transfer's size so far, is tried
/// first; a payload no longer than it is one datagram and costs nothing.
pub(crate) fn super_packet_segment(payload: &[u8], datagram_size: usize) -> usize {
    const MIN: usize = fast::DATA_HEADER + fast::CHECK_LEN;
    let len = payload.len();
    if len <= datagram_size.max(MIN) || payload[0] != fast::T_DATA {
        return len;
    }
    let pn = |at: usize| payload.get(at + 1..at + 9).map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
    let first = pn(0).unwrap_or(0);
    let starts_next =
        |at: usize| payload[at] == fast::T_DATA && pn(at).is_some_and(|p| p > first && p - first <= PN_WINDOW);
    if datagram_size >= MIN && starts_next(datagram_size) && Frame::decode(&payload[..datagram_size]).is_ok() {
        return datagram_size;
    }
    (MIN..len).find(|&at| starts_next(at) && Frame::decode(&payload[..at]).is_ok()).unwrap_or(len)
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

/// One DATA frame, as [`FastState::data`] counts it.
#[derive(Clone, Copy)]
struct Data {
    pn: u64,
    offset: u64,
    /// Its payload's length.
    len: usize,
    /// The whole datagram's length.
    datagram: usize,
}

impl FastState {
    /// Counts a DATA frame seen at `ts` (new, sent again, out of order or a
    /// duplicate) into `s`; new bytes are marked for extraction in `step`.
    /// Returns its description and its plot point.
    fn data(&mut self, s: &mut TransferSummary, ts: i64, d: Data, step: &mut Step) -> (DatagramKind, (u64, PointKind)) {
        let Data { pn, offset, len, datagram } = d;
        s.data_first_ns.get_or_insert(ts);
        s.data_last_ns = Some(ts);
        self.datagram_size = self.datagram_size.max(datagram);
        let end = offset + len as u64;
        let duplicate = self.pns.contains(pn..pn.saturating_add(1));
        let retransmission = !duplicate && self.resent(pn, offset, end);
        let out_of_order = !duplicate && self.max_pn.is_some_and(|m| pn < m);
        if self.pns.len() < MAX_RANGES {
            self.pns.insert(pn..pn.saturating_add(1));
        }
        self.max_pn = Some(self.max_pn.map_or(pn, |m| m.max(pn)));
        self.max_end = self.max_end.max(end);
        s.packets += 1;
        s.retransmissions += u64::from(retransmission);
        s.out_of_order += u64::from(out_of_order);
        s.duplicates += u64::from(duplicate);
        if !self.covered.contains(offset..end) && (self.covered.len() < MAX_RANGES || len == 0) {
            self.bytes += self.covered.insert(offset..end);
            step.write = Some((offset, fast::DATA_HEADER..fast::DATA_HEADER + len));
        }
        let kind = if retransmission || duplicate { PointKind::Retransmission } else { PointKind::Data };
        (DatagramKind::FastData { pn, offset, len, retransmission, out_of_order, duplicate }, (offset, kind))
    }

    /// The sender's DONE: the file's size and hash (by `algorithm`), kept in `s`.
    fn done(&mut self, s: &mut TransferSummary, algorithm: HashAlgorithm, size: u64, hash: [u8; 32]) -> DatagramKind {
        self.size.get_or_insert(size);
        self.hash.get_or_insert((algorithm, hash));
        self.done = true;
        let hex = algorithm.hex(&hash);
        if s.hash.is_none() {
            (s.hash, s.hash_algorithm) = (Some(hex.clone()), Some(algorithm));
        }
        DatagramKind::Done { size, hash: hex, hash_algorithm: algorithm }
    }
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

    fn fast_data(pn: u64, offset: u64, len: usize) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7) ^ pn as u8).collect();
        let mut v = Vec::new();
        Frame::Data { pn, offset, payload: &payload }.encode(&mut v);
        v
    }

    #[test]
    fn super_packets_split_at_the_datagram_size() {
        let one = fast_data(7, 0, 1427);
        let size = one.len();
        // Not a super-packet: one datagram, of any size, whatever the hint.
        assert_eq!(super_packet_segment(&one, 0), size);
        assert_eq!(super_packet_segment(&one, size), size);
        let probe = fast_data(8, 0, 8947);
        assert_eq!(super_packet_segment(&probe, size), probe.len());
        // GSO: equal datagrams and a short last one, with or without the hint.
        let mut gso = [fast_data(9, 0, 1427), fast_data(10, 1427, 1427), fast_data(11, 2854, 100)].concat();
        assert_eq!(super_packet_segment(&gso, size), size);
        assert_eq!(super_packet_segment(&gso, 0), size);
        // GRO on the receiver: a lost datagram leaves a packet-number gap.
        let gro = [fast_data(9, 0, 1427), fast_data(12, 4281, 1427)].concat();
        assert_eq!(super_packet_segment(&gro, 0), size);
        // A first datagram that fails its check is not split (nothing to trust).
        gso[100] ^= 1;
        assert_eq!(super_packet_segment(&gso, 0), gso.len());
        // Not DATA: never split.
        let mut ack = Vec::new();
        Frame::Ack { largest_pn: 1, delay_us: 0, max_data: 9, ranges: vec![0..4, 5..9] }.encode(&mut ack);
        let two = [ack.clone(), ack].concat();
        assert_eq!(super_packet_segment(&two, 0), two.len());
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
