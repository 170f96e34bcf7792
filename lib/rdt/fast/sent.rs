//! Sent-packet tracking and loss detection for the fast sender (RFC 9002
//! style, over file byte ranges instead of frames).
//!
//! [`SentPackets`] numbers the DATA datagrams, remembers each one in flight
//! (by its file offset, and in send order for the packet-number
//! threshold), keeps the bytes in flight, the file ranges acknowledged and
//! those lost and still to be resent, and the delivery-rate state of
//! draft-cheng-iccrg-delivery-rate-estimation. It calls no congestion
//! controller: acknowledged and lost packets are handed to closures, in
//! order, and the sender reacts to them (window, MTU probing, events).
//!
//! # The packets in flight
//!
//! Packets in flight never overlap (a byte is resent only once lost, that
//! is out of the flight), so each has its own offset, and they are handed
//! out in offset order. A sorted map would do, but at one insertion and
//! one removal per datagram its search and rebalancing were a visible part
//! of the sender's time. The sender's pattern allows cheaper: new data
//! always lies beyond everything sent before (MTU probes included), and
//! only retransmissions, few, go back. So [`InFlight`] keeps
//!
//! - fresh packets in a `VecDeque` in send order, which is also offset
//!   order: pushed at the back, found by binary search on the offset. A
//!   packet that leaves the flight (acknowledged, lost) stays as a
//!   tombstone, so that the positions of the others do not move;
//!   tombstones at the front are popped (in-order ACKs pop each packet in
//!   O(1)), and the rest are compacted away once they outnumber the live
//!   packets (O(1) amortised, and memory stays in proportion to the
//!   flight). Runs of tombstones, say the packets a growing SACK range
//!   covers behind a hole, are stepped over by skip distances kept on the
//!   tombstones and lengthened as they are walked (path compression), so
//!   repeated ACKs of one range do not walk the same tombstones again.
//!   The skips go both ways: an ACK range also looks at the last packet
//!   in flight before it;
//! - retransmissions in a small `BTreeMap` by offset, merged with the
//!   fresh packets wherever offset order matters. (As losses are declared
//!   in send order, retransmissions in flight usually all lie below the
//!   fresh packets in flight; the merge does not count on it.)
//!
//! Which packets each call hands out, and in which order, is exactly what
//! one map by offset gave; the send-order queue for loss detection is
//! unchanged.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::rdt::cc::RateSample;
use crate::rdt::rangeset::RangeSet;
use crate::rdt::rtt::RttEstimator;

/// A packet is lost once a packet sent this many later is acknowledged
/// (RFC 9002 §6.1.1's kPacketThreshold).
const PACKET_THRESHOLD: u64 = 3;
/// The time threshold's floor: RFC 9002's timer granularity. Without it,
/// microsecond loopback RTTs declare spurious losses.
const GRANULARITY: Duration = Duration::from_millis(1);
/// Smallest RTT sample taken from an acknowledgement delay adjustment.
const MIN_SAMPLE: Duration = Duration::from_micros(50);

/// One DATA datagram in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    /// Its packet number.
    pub(crate) pn: u64,
    /// Offset of its bytes in the file.
    pub(crate) offset: u64,
    /// File bytes it carries.
    pub(crate) len: u64,
    /// When it was sent.
    pub(crate) time: Instant,
    /// A path-MTU probe: its loss says nothing about congestion.
    pub(crate) probe: bool,
    /// Carries bytes sent before: an acknowledgement may be for the earlier
    /// copy, so its RTT is ambiguous (Karn) and is not given to the controller.
    pub(crate) retransmission: bool,
    /// Delivery-rate state at send time (see [`RateSample`]).
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// Sent with nothing more to send behind it (file end or flow control).
    app_limited: bool,
}

/// A packet newly acknowledged, as [`SentPackets::on_ack_ranges`] reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acked {
    /// The packet.
    pub(crate) sent: Sent,
    /// Bytes in flight before it left the flight (for "was the window the
    /// limit?", RFC 7661).
    pub(crate) prior_in_flight: u64,
    /// Its delivery-rate sample.
    pub(crate) rate: RateSample,
}

/// A fresh packet in [`InFlight::fresh`], or its tombstone once it left the flight.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sent: Sent,
    live: bool,
    /// A tombstone's distances, forward and backward, to slots no further
    /// than the nearest live ones (1 at first, lengthened as runs are
    /// walked; a live slot's are not used).
    skip: [u32; 2],
}

/// The packets in flight, in offset order (see the module docs).
#[derive(Debug, Default)]
struct InFlight {
    /// Fresh packets, in send and offset order; tombstones among them.
    fresh: VecDeque<Slot>,
    /// Tombstones in `fresh`.
    dead: usize,
    /// End of the fresh data sent so far: a packet from there on is fresh.
    fresh_end: u64,
    /// Retransmissions, by offset.
    retx: BTreeMap<u64, Sent>,
}

impl InFlight {
    /// Packets in flight.
    fn len(&self) -> usize {
        self.fresh.len() - self.dead + self.retx.len()
    }

    /// Adds `s`, fresh if it starts at or beyond the fresh data sent so far.
    fn push(&mut self, s: Sent) {
        if s.offset >= self.fresh_end {
            self.fresh_end = s.offset + s.len;
            self.fresh.push_back(Slot { sent: s, live: true, skip: [1, 1] });
        } else {
            self.retx.insert(s.offset, s);
        }
    }

    /// The packets in flight in offset order.
    fn values(&self) -> impl Iterator<Item = &Sent> {
        let mut fresh = self.fresh.iter().filter(|s| s.live).map(|s| &s.sent).peekable();
        let mut retx = self.retx.values().peekable();
        std::iter::from_fn(move || match (fresh.peek(), retx.peek()) {
            (Some(f), Some(r)) if r.offset < f.offset => retx.next(),
            (Some(_), _) => fresh.next(),
            _ => retx.next(),
        })
    }

    /// Position in `fresh` of the first slot at or beyond `offset`.
    fn position(&self, offset: u64) -> usize {
        match self.fresh.front() {
            Some(f) if f.sent.offset < offset => self.fresh.partition_point(|s| s.sent.offset < offset),
            _ => 0,
        }
    }

    /// The packet in flight at `offset`.
    fn get(&self, offset: u64) -> Option<&Sent> {
        match self.fresh.get(self.position(offset)) {
            Some(s) if s.live && s.sent.offset == offset => Some(&s.sent),
            _ => self.retx.get(&offset),
        }
    }

    /// Takes the packet at `offset` out of the flight.
    fn remove(&mut self, offset: u64) -> Option<Sent> {
        let i = self.position(offset);
        match self.fresh.get(i) {
            Some(s) if s.live && s.sent.offset == offset => Some(self.kill(i)),
            _ => self.retx.remove(&offset),
        }
    }

    /// Takes the live fresh packet at `i` out of the flight, leaving its tombstone.
    fn kill(&mut self, i: usize) -> Sent {
        let s = &mut self.fresh[i];
        debug_assert!(s.live);
        s.live = false;
        s.skip = [1, 1];
        self.dead += 1;
        s.sent
    }

    /// The live slot nearest to `i` in `fresh`, `i` itself or after it
    /// (`forward`) or before it. Shortens the walk for the next time:
    /// each tombstone passed then skips to where this one ended.
    fn nearest_live(&mut self, i: usize, forward: bool) -> Option<usize> {
        let (d, dir) = if forward { (0, 1) } else { (1, -1) };
        let len = self.fresh.len() as isize;
        let mut j = i as isize;
        while (0..len).contains(&j) && !self.fresh[j as usize].live {
            j += dir * self.fresh[j as usize].skip[d] as isize;
        }
        let mut k = i as isize;
        while k != j {
            let skip = &mut self.fresh[k as usize].skip[d];
            let next = k + dir * *skip as isize;
            *skip = ((j - k) * dir) as u32;
            k = next;
        }
        (0..len).contains(&j).then_some(j as usize)
    }

    /// Pops the tombstones at the front, and drops the others once they
    /// outnumber the live packets. Positions in `fresh` change.
    fn tidy(&mut self) {
        while self.fresh.front().is_some_and(|s| !s.live) {
            self.fresh.pop_front();
            self.dead -= 1;
        }
        if self.dead > 32 && 2 * self.dead > self.fresh.len() {
            self.fresh.retain(|s| s.live);
            self.dead = 0;
        }
    }

    /// Takes every packet out of the flight; returns them in offset order.
    fn take_all(&mut self) -> Vec<Sent> {
        let all = self.values().copied().collect();
        self.fresh.clear();
        self.dead = 0;
        self.retx.clear();
        all
    }
}

/// The packets in flight of one transfer, and what became of the rest.
#[derive(Debug)]
pub(crate) struct SentPackets {
    /// File size: acknowledged ranges are clipped to it.
    size: u64,
    /// The packets in flight.
    in_flight: InFlight,
    /// (pn, offset, send time) in send order, for loss detection by packet
    /// number; entries of packets no longer in flight are skipped lazily.
    order: VecDeque<(u64, u64, Instant)>,
    bytes_in_flight: u64,
    next_pn: u64,
    largest_acked_pn: Option<u64>,
    /// File bytes the receiver acknowledged (or had before it started).
    acked: RangeSet,
    /// File bytes lost and not yet resent.
    lost: RangeSet,
    /// Delivery-rate estimation: bytes acknowledged so far, when the last
    /// was, and the send time of the newest packet acknowledged.
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
}

impl SentPackets {
    /// Nothing sent yet of a file of `size` bytes, at `now`.
    pub(crate) fn new(size: u64, now: Instant) -> Self {
        Self {
            size,
            in_flight: InFlight::default(),
            order: VecDeque::new(),
            bytes_in_flight: 0,
            next_pn: 0,
            largest_acked_pn: None,
            acked: RangeSet::new(),
            lost: RangeSet::new(),
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
        }
    }

    /// The packet number the next DATA gets.
    pub(crate) fn next_pn(&self) -> u64 {
        self.next_pn
    }

    /// The largest packet number acknowledged, if any.
    pub(crate) fn largest_acked(&self) -> Option<u64> {
        self.largest_acked_pn
    }

    /// File bytes in the packets in flight.
    pub(crate) fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Whether no packet is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.in_flight.len() == 0
    }

    /// File bytes acknowledged so far.
    pub(crate) fn acked_bytes(&self) -> u64 {
        self.acked.iter().map(|r| r.end - r.start).sum()
    }

    /// Whether every byte of the file is acknowledged.
    pub(crate) fn all_acked(&self) -> bool {
        self.acked.contains(0..self.size)
    }

    /// Whether lost bytes wait to be resent.
    pub(crate) fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// The receiver had `0..end` before the transfer began.
    pub(crate) fn acked_before_start(&mut self, end: u64) {
        self.acked.insert(0..end);
    }

    /// The next lost range to resend, at most `max` bytes, skipping what
    /// was acknowledged meanwhile (a late ACK of the lost packet).
    pub(crate) fn next_retransmission(&mut self, max: u64) -> Option<Range<u64>> {
        while let Some(r) = self.lost.pop_front(max) {
            if let Some(g) = first_gap(&self.acked, r.clone()) {
                self.lost.insert(g.end..r.end);
                return Some(g);
            }
        }
        None
    }

    /// A DATA datagram numbered [`SentPackets::next_pn`] left at `now` with
    /// the file bytes `range`. `app_limited`: nothing more was ready to send.
    /// New data (`!retransmission`) lies beyond all sent before, and a
    /// retransmission within it.
    pub(crate) fn on_sent(
        &mut self,
        now: Instant,
        range: Range<u64>,
        probe: bool,
        retransmission: bool,
        app_limited: bool,
    ) {
        let pn = self.next_pn;
        self.next_pn += 1;
        let len = range.end - range.start;
        let sent = Sent {
            pn,
            offset: range.start,
            len,
            time: now,
            probe,
            retransmission,
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited,
        };
        debug_assert!(range.start < range.end, "an empty DATA {range:?}");
        debug_assert!(
            if retransmission {
                range.end <= self.in_flight.fresh_end
            } else {
                range.start >= self.in_flight.fresh_end
            },
            "{range:?} (retransmission {retransmission}) with fresh data sent up to {}",
            self.in_flight.fresh_end
        );
        self.in_flight.push(sent);
        self.order.push_back((pn, range.start, now));
        self.bytes_in_flight += len;
    }

    /// The RTT sample an ACK of `largest_pn` received at `now` gives, if that
    /// packet is newly the largest acknowledged and was still tracked; the
    /// receiver's `ack_delay` is taken off (at most half the RTT, and never
    /// below the smaller of the RTT and 50 µs).
    pub(crate) fn on_ack_largest(&mut self, now: Instant, largest_pn: u64, ack_delay: Duration) -> Option<Duration> {
        if self.largest_acked_pn.is_some_and(|l| largest_pn <= l) {
            return None;
        }
        self.largest_acked_pn = Some(largest_pn);
        let i = self.order.partition_point(|&(pn, _, _)| pn < largest_pn);
        let &(pn, _, t) = self.order.get(i)?;
        if pn != largest_pn {
            return None;
        }
        let rtt = now.saturating_duration_since(t);
        Some(rtt.saturating_sub(ack_delay.min(rtt / 2)).max(rtt.min(MIN_SAMPLE)))
    }

    /// Marks the file ranges of an ACK received at `now` acknowledged, and
    /// hands each packet in flight they now cover wholly to `on_acked`, in
    /// offset order, after taking it out of the flight. Returns whether any
    /// packet was acknowledged.
    pub(crate) fn on_ack_ranges(
        &mut self,
        now: Instant,
        ranges: &[Range<u64>],
        mut on_acked: impl FnMut(&Acked),
    ) -> bool {
        let mut progress = false;
        for r in ranges {
            let r = r.start..r.end.min(self.size);
            if r.start >= r.end || self.acked.contains(r.clone()) {
                continue;
            }
            self.acked.insert(r.clone());
            self.lost.remove(r.clone());
            // The packets inside the range, and the one starting before it
            // (a packet never straddles an acknowledged range's boundary
            // unless partially acknowledged: it stays until wholly covered),
            // in offset order: fresh ones from `fi`, retransmissions from `rn`.
            let f = &mut self.in_flight;
            let i = f.position(r.start);
            let before = i.checked_sub(1).and_then(|j| f.nearest_live(j, false));
            let fresh_before = before.map(|j| f.fresh[j].sent.offset);
            let retx_before = f.retx.range(..r.start).next_back().map(|(&o, _)| o);
            let from = fresh_before.max(retx_before).unwrap_or(r.start);
            let mut fi = before.filter(|_| fresh_before == Some(from)).unwrap_or(i);
            let mut rn = f.retx.range(from..r.end).next().map(|(_, s)| *s);
            loop {
                let f = &mut self.in_flight;
                let fresh = f.nearest_live(fi, true).filter(|&j| {
                    let o = f.fresh[j].sent.offset;
                    o < r.end && rn.is_none_or(|rs| o < rs.offset)
                });
                let s = if let Some(j) = fresh {
                    fi = j + 1;
                    let s = f.fresh[j].sent;
                    if !self.acked.contains(s.offset..s.offset + s.len) {
                        continue;
                    }
                    f.kill(j)
                } else if let Some(s) = rn {
                    rn = f.retx.range(s.offset + 1..r.end).next().map(|(_, s)| *s);
                    if !self.acked.contains(s.offset..s.offset + s.len) {
                        continue;
                    }
                    f.retx.remove(&s.offset);
                    s
                } else {
                    break;
                };
                let prior_in_flight = self.bytes_in_flight;
                self.bytes_in_flight -= s.len;
                let rate = self.delivery_sample(now, &s);
                on_acked(&Acked { sent: s, prior_in_flight, rate });
                progress = true;
            }
        }
        self.in_flight.tidy();
        progress
    }

    /// The delivery-rate sample for `s`, just acknowledged at `now`.
    fn delivery_sample(&mut self, now: Instant, s: &Sent) -> RateSample {
        self.delivered += s.len;
        let send_elapsed = s.time.saturating_duration_since(s.first_sent_time);
        let ack_elapsed = now.saturating_duration_since(s.delivered_time);
        self.delivered_time = now;
        self.first_sent_time = self.first_sent_time.max(s.time);
        RateSample {
            acked: s.len,
            delivered: self.delivered - s.delivered,
            prior_delivered: s.delivered,
            total_delivered: self.delivered,
            interval: send_elapsed.max(ack_elapsed),
            // Zero (unknown) for a retransmission: its ACK may be for the
            // first copy, and a too-small RTT would wreck BBR's min-RTT.
            rtt: if s.retransmission { Duration::ZERO } else { now.saturating_duration_since(s.time) },
            in_flight: self.bytes_in_flight,
            app_limited: s.app_limited,
        }
    }

    /// How long after a later packet was sent an unacknowledged one counts
    /// as lost (RFC 9002 §6.1.2): 9/8 of the larger of the smoothed and the
    /// latest RTT, at least the timer granularity.
    pub(crate) fn loss_delay(rtt: &RttEstimator) -> Duration {
        (rtt.srtt().max(rtt.latest()) * 9 / 8).max(GRANULARITY)
    }

    /// Loss detection after an ACK of `largest_pn` at `now`: a packet in
    /// flight is lost when [`PACKET_THRESHOLD`] later-numbered packets
    /// were sent before the largest acknowledged, or when it was sent
    /// [`SentPackets::loss_delay`] ago and a later one is acknowledged.
    /// Each lost packet goes to `on_lost`, in send order.
    pub(crate) fn detect_lost(
        &mut self,
        now: Instant,
        largest_pn: u64,
        rtt: &RttEstimator,
        mut on_lost: impl FnMut(&Sent),
    ) {
        let delay = Self::loss_delay(rtt);
        while let Some(&(pn, off, t)) = self.order.front() {
            let live = self.in_flight.get(off).is_some_and(|s| s.pn == pn);
            if !live {
                self.order.pop_front();
                continue;
            }
            if !(pn + PACKET_THRESHOLD <= largest_pn || (pn < largest_pn && t + delay <= now)) {
                break;
            }
            self.order.pop_front();
            if let Some(s) = self.in_flight.remove(off) {
                self.lose(&s);
                on_lost(&s);
            }
        }
        self.in_flight.tidy();
    }

    /// Declares every packet in flight lost (the retransmission timer
    /// fired), in offset order.
    pub(crate) fn lose_all(&mut self, mut on_lost: impl FnMut(&Sent)) {
        self.order.clear();
        for s in self.in_flight.take_all() {
            self.lose(&s);
            on_lost(&s);
        }
    }

    /// Declares lost every packet in flight sent at least `age` before
    /// `now`, in offset order (the receiver says it has had no DATA).
    pub(crate) fn lose_older_than(&mut self, now: Instant, age: Duration, mut on_lost: impl FnMut(&Sent)) {
        let old: Vec<u64> = self.in_flight.values().filter(|s| s.time + age <= now).map(|s| s.offset).collect();
        for off in old {
            if let Some(s) = self.in_flight.remove(off) {
                self.lose(&s);
                on_lost(&s);
            }
        }
        self.in_flight.tidy();
    }

    /// `s`, already out of `in_flight`, is lost: its bytes not acknowledged
    /// meanwhile are to be resent.
    fn lose(&mut self, s: &Sent) {
        let r = s.offset..s.offset + s.len;
        self.bytes_in_flight -= s.len;
        self.lost.insert(r.clone());
        for a in self.acked.iter().filter(|a| a.start < r.end && a.end > r.start) {
            self.lost.remove(a);
        }
    }
}

/// The first part of `r` not in `acked`.
fn first_gap(acked: &RangeSet, r: Range<u64>) -> Option<Range<u64>> {
    let mut start = r.start;
    let mut end = r.end;
    for a in acked.iter() {
        if a.end <= start {
            continue;
        }
        if a.start <= start {
            start = a.end;
            continue;
        }
        end = end.min(a.start);
        break;
    }
    (start < end).then_some(start..end)
}

#[cfg(test)]
// An ACK's ranges are a slice; one range is the common case here.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A tracker of a `size`-byte file that sent `n` packets of 100 bytes
    /// at `t0`, numbered 0.. at offsets 0, 100, …
    fn sent(size: u64, n: u64) -> (SentPackets, Instant) {
        let t0 = Instant::now();
        let mut s = SentPackets::new(size, t0);
        for i in 0..n {
            s.on_sent(t0, i * 100..(i + 1) * 100, false, false, false);
        }
        (s, t0)
    }

    /// An RTT estimator with one sample of `rtt`.
    fn rtt(rtt: Duration) -> RttEstimator {
        let mut e = RttEstimator::new(200 * MS);
        e.sample(rtt);
        e
    }

    /// Packet numbers acknowledged by ranges `r` at `now`.
    fn ack(s: &mut SentPackets, now: Instant, r: &[Range<u64>]) -> Vec<u64> {
        let mut v = Vec::new();
        s.on_ack_ranges(now, r, |a| v.push(a.sent.pn));
        v
    }

    /// Packet numbers declared lost by an ACK of `largest` at `now`.
    fn lost(s: &mut SentPackets, now: Instant, largest: u64, e: &RttEstimator) -> Vec<u64> {
        let mut v = Vec::new();
        s.detect_lost(now, largest, e, |p| v.push(p.pn));
        v
    }

    /// The invariant: bytes in flight are the sum of the packets in flight.
    fn check_in_flight(s: &SentPackets) {
        assert_eq!(s.bytes_in_flight, s.in_flight.values().map(|p| p.len).sum::<u64>());
    }

    #[test]
    fn in_order_acks_take_packets_out_of_flight_with_rate_samples() {
        let (mut s, t0) = sent(500, 5);
        assert_eq!((s.next_pn(), s.bytes_in_flight()), (5, 500));
        let mut got = Vec::new();
        let now = t0 + 10 * MS;
        assert!(s.on_ack_ranges(now, &[0..300], |a| got.push(*a)));
        assert_eq!(got.iter().map(|a| a.sent.pn).collect::<Vec<_>>(), [0, 1, 2]);
        // Each in order: flight before it, delivered so far after it.
        assert_eq!(got.iter().map(|a| a.prior_in_flight).collect::<Vec<_>>(), [500, 400, 300]);
        assert_eq!(got.iter().map(|a| a.rate.total_delivered).collect::<Vec<_>>(), [100, 200, 300]);
        assert!(got.iter().all(|a| a.rate.rtt == 10 * MS && a.rate.acked == 100));
        assert_eq!(got[2].rate.in_flight, 200);
        assert!(!s.all_acked());
        assert_eq!(ack(&mut s, now, &[0..500]), [3, 4]);
        assert!(s.all_acked() && s.is_empty());
        assert_eq!((s.bytes_in_flight(), s.acked_bytes()), (0, 500));
        // Acknowledged again: nothing new.
        assert!(!s.on_ack_ranges(now, &[0..500], |_| panic!("acknowledged twice")));
        assert!(lost(&mut s, now, 4, &rtt(10 * MS)).is_empty());
    }

    #[test]
    fn a_gap_is_lost_once_three_later_packets_are_acked() {
        let (mut s, t0) = sent(1000, 6);
        let e = rtt(100 * MS);
        let now = t0 + MS; // far below the time threshold
        // Packets 1 and 2 acknowledged: 0 is missing, but only 2 later ones are in.
        assert_eq!(ack(&mut s, now, &[100..300]), [1, 2]);
        assert!(lost(&mut s, now, 2, &e).is_empty());
        assert_eq!(s.next_retransmission(100), None);
        // Packet 3 as well: 0 + 3 <= 3, lost; 4 and 5 are not.
        assert_eq!(ack(&mut s, now, &[100..400]), [3]);
        assert_eq!(lost(&mut s, now, 3, &e), [0]);
        check_in_flight(&s);
        assert_eq!(s.bytes_in_flight(), 200);
        assert!(s.has_lost());
        // Resent in pieces of at most `max` bytes, then nothing.
        assert_eq!(s.next_retransmission(60), Some(0..60));
        assert_eq!(s.next_retransmission(60), Some(60..100));
        assert_eq!(s.next_retransmission(60), None);
    }

    #[test]
    fn a_gap_is_lost_after_nine_eighths_of_the_rtt() {
        let t0 = Instant::now();
        let mut s = SentPackets::new(1000, t0);
        let e = rtt(100 * MS);
        assert_eq!(SentPackets::loss_delay(&e), 112_500 * Duration::from_micros(1));
        s.on_sent(t0, 0..100, false, false, false);
        s.on_sent(t0 + 5 * MS, 100..200, false, false, false);
        // Packet 1 acknowledged 100 ms after packet 0 left: too early.
        assert_eq!(ack(&mut s, t0 + 100 * MS, &[100..200]), [1]);
        assert!(lost(&mut s, t0 + 100 * MS, 1, &e).is_empty());
        // The next ACK after 112.5 ms finds it lost.
        assert!(lost(&mut s, t0 + 112 * MS, 1, &e).is_empty());
        assert_eq!(lost(&mut s, t0 + 113 * MS, 1, &e), [0]);
        // The largest acknowledged is never lost by time, however old.
        let (mut s, t0) = sent(1000, 2);
        assert!(lost(&mut s, t0 + 10_000 * MS, 0, &e).is_empty());
        // And the floor: a microsecond RTT still waits 1 ms.
        let e = rtt(Duration::from_micros(20));
        assert_eq!(SentPackets::loss_delay(&e), MS);
    }

    #[test]
    fn a_late_ack_of_a_lost_packet_cancels_its_retransmission() {
        let (mut s, t0) = sent(1000, 5);
        let e = rtt(10 * MS);
        assert_eq!(ack(&mut s, t0, &[100..400]), [1, 2, 3]);
        assert_eq!(lost(&mut s, t0, 3, &e), [0]);
        // The ACK of packet 0 was only late: nothing is in flight to
        // acknowledge, and nothing is left to resend.
        assert!(ack(&mut s, t0, &[0..400]).is_empty());
        assert!(!s.has_lost());
        assert_eq!(s.next_retransmission(100), None);
        check_in_flight(&s);
        assert_eq!(s.bytes_in_flight(), 100);
        // Half of a lost packet acknowledged late: the other half is resent.
        let (mut s, t0) = sent(1000, 5);
        ack(&mut s, t0, &[100..400]);
        lost(&mut s, t0, 3, &e);
        assert!(ack(&mut s, t0, &[0..50]).is_empty());
        assert_eq!(s.next_retransmission(100), Some(50..100));
    }

    #[test]
    fn a_spurious_retransmission_is_acked_without_an_rtt() {
        let (mut s, t0) = sent(1000, 5);
        let e = rtt(10 * MS);
        ack(&mut s, t0, &[100..400]);
        assert_eq!(lost(&mut s, t0, 3, &e), [0]);
        let r = s.next_retransmission(100).unwrap();
        s.on_sent(t0 + MS, r, false, true, false);
        // The original's ACK arrives: it acknowledges the copy in flight (packet 5).
        let mut got = Vec::new();
        s.on_ack_ranges(t0 + 20 * MS, &[0..100], |a| got.push(*a));
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].sent.pn, got[0].sent.retransmission), (5, true));
        // Karn: its RTT is unknown to the controller.
        assert_eq!(got[0].rate.rtt, Duration::ZERO);
        check_in_flight(&s);
        assert_eq!(s.bytes_in_flight(), 100);
    }

    #[test]
    fn the_rtt_sample_comes_only_from_a_newly_acked_largest() {
        let t0 = Instant::now();
        let mut s = SentPackets::new(1000, t0);
        for i in 0..5 {
            s.on_sent(t0 + i * 10 * MS, i as u64 * 100..(i as u64 + 1) * 100, false, false, false);
        }
        // Packet 2 (sent at 20 ms) at 50 ms: 30 ms, less the ACK delay.
        assert_eq!(s.on_ack_largest(t0 + 50 * MS, 2, 4 * MS), Some(26 * MS));
        assert_eq!(s.largest_acked(), Some(2));
        // The same largest again, or a smaller one: no sample.
        assert_eq!(s.on_ack_largest(t0 + 60 * MS, 2, Duration::ZERO), None);
        assert_eq!(s.on_ack_largest(t0 + 60 * MS, 1, Duration::ZERO), None);
        assert_eq!(s.largest_acked(), Some(2));
        // An ACK delay above half the RTT is taken as half.
        assert_eq!(s.on_ack_largest(t0 + 70 * MS, 3, 25 * MS), Some(20 * MS));
        // A packet number never sent: the largest moves, but no sample.
        assert_eq!(s.on_ack_largest(t0 + 80 * MS, 9, Duration::ZERO), None);
        assert_eq!(s.largest_acked(), Some(9));
        // No sample below min(RTT, 50 µs) from the delay.
        let mut s = SentPackets::new(1000, t0);
        s.on_sent(t0, 0..100, false, false, false);
        assert_eq!(s.on_ack_largest(t0 + Duration::from_micros(80), 0, MS), Some(Duration::from_micros(50)));
    }

    #[test]
    fn lose_all_and_lose_older_than() {
        let t0 = Instant::now();
        let mut s = SentPackets::new(1000, t0);
        for i in 0..4u64 {
            s.on_sent(t0 + MS * 10 * i as u32, i * 100..(i + 1) * 100, i == 3, false, false);
        }
        let mut v = Vec::new();
        s.lose_older_than(t0 + 25 * MS, 10 * MS, |p| v.push(p.pn));
        assert_eq!(v, [0, 1]);
        check_in_flight(&s);
        let mut v = Vec::new();
        s.lose_all(|p| v.push((p.pn, p.probe)));
        assert_eq!(v, [(2, false), (3, true)]);
        assert!(s.is_empty());
        assert_eq!(s.bytes_in_flight(), 0);
        // Everything is to be resent, in offset order.
        assert_eq!(s.next_retransmission(1000), Some(0..400));
    }

    #[test]
    fn bytes_in_flight_match_the_packets_through_any_sequence() {
        // A seeded mix of sends, retransmissions, ACKs (in and out of
        // order, partial) and losses; the invariant holds after each step.
        let t0 = Instant::now();
        let size = 20_000;
        let mut s = SentPackets::new(size, t0);
        let e = rtt(10 * MS);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut next, mut now, mut acked_in) = (0u64, t0, 0u64);
        for _ in 0..3000 {
            now += Duration::from_micros(rand(3000));
            match rand(4) {
                0 | 1 => {
                    let len = 1 + rand(300);
                    match s.next_retransmission(len) {
                        Some(r) => s.on_sent(now, r, false, true, false),
                        None if next < size => {
                            let end = (next + len).min(size);
                            s.on_sent(now, next..end, false, false, false);
                            next = end;
                        }
                        None => {}
                    }
                }
                2 => {
                    let start = rand(next.max(1));
                    let r = start..start + rand(800);
                    s.on_ack_ranges(now, &[r], |a| acked_in += a.sent.len);
                    let largest = s.next_pn().saturating_sub(1 + rand(4));
                    s.on_ack_largest(now, largest, Duration::ZERO);
                    s.detect_lost(now, largest, &e, |_| {});
                }
                _ if rand(50) == 0 => s.lose_all(|_| {}),
                _ => {}
            }
            check_in_flight(&s);
            assert!(s.order.len() >= s.in_flight.len());
        }
        // Acknowledging the whole file empties the flight.
        s.on_ack_ranges(now, &[0..size], |a| acked_in += a.sent.len);
        let mut left = Vec::new();
        s.lose_all(|p| left.push(p.pn));
        assert!(left.is_empty(), "still in flight after a full ACK: {left:?}");
        assert_eq!(s.bytes_in_flight(), 0);
        assert!(acked_in > 0);
    }

    /// The reference: the packets in flight in one map by offset, as the
    /// tracker kept them before [`InFlight`], and what each call hands out
    /// (packet numbers, in order).
    #[derive(Default)]
    struct Model {
        size: u64,
        map: BTreeMap<u64, Sent>,
        order: VecDeque<(u64, u64, Instant)>,
        acked: RangeSet,
    }

    impl Model {
        fn ack(&mut self, ranges: &[Range<u64>]) -> Vec<(u64, u64)> {
            let mut out = Vec::new();
            for r in ranges {
                let r = r.start..r.end.min(self.size);
                if r.start >= r.end || self.acked.contains(r.clone()) {
                    continue;
                }
                self.acked.insert(r.clone());
                let mut next = self.map.range(..r.start).next_back().map_or(r.start, |(&o, _)| o);
                while let Some((&o, &s)) = self.map.range(next..r.end).next() {
                    next = o + 1;
                    if self.acked.contains(o..o + s.len) {
                        self.map.remove(&o);
                        out.push((s.pn, self.map.values().map(|p| p.len).sum::<u64>() + s.len));
                    }
                }
            }
            out
        }

        fn detect_lost(&mut self, now: Instant, largest: u64, delay: Duration) -> Vec<u64> {
            let mut out = Vec::new();
            while let Some(&(pn, off, t)) = self.order.front() {
                if self.map.get(&off).is_some_and(|s| s.pn == pn) {
                    if !(pn + PACKET_THRESHOLD <= largest || (pn < largest && t + delay <= now)) {
                        break;
                    }
                    self.map.remove(&off);
                    out.push(pn);
                }
                self.order.pop_front();
            }
            out
        }

        fn lose_where(&mut self, lost: impl Fn(&Sent) -> bool) -> Vec<u64> {
            let out: Vec<Sent> = self.map.values().filter(|s| lost(s)).copied().collect();
            out.iter().for_each(|s| _ = self.map.remove(&s.offset));
            out.iter().map(|s| s.pn).collect()
        }
    }

    #[test]
    fn packets_are_handed_out_as_by_one_map_through_random_steps() {
        // Seeded random sends (new data, MTU-probe-sized, retransmissions),
        // ACKs (a receiver's: the prefix and the newest SACK ranges over
        // datagrams that got through, or any range, unsent bytes too),
        // loss detection, lose_all and lose_older_than: each call hands out
        // the same packets in the same order as the reference model, and
        // the flight is the same after each step. Some seeds seldom detect
        // losses (an old packet stays in flight while later ones are
        // acknowledged: tombstones pile up behind it), and send times
        // jitter, so that lose_older_than also takes packets out of send
        // order (leaving new data in flight below a retransmission).
        let e = rtt(10 * MS);
        let delay = SentPackets::loss_delay(&e);
        for seed in 1..=40u64 {
            let t0 = Instant::now();
            let size = 200_000 + seed * 1_000;
            let mut s = SentPackets::new(size, t0);
            let mut m = Model { size, ..Model::default() };
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut rand = move |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let loss = rand(20); // percent of datagrams the "path" drops
            // One ACK in `detect` detects losses; lose_older_than and
            // lose_all come with one step in `lose`.
            let (detect, lose) = if seed % 3 == 0 { (50, 500) } else { (1, 10) };
            let mut received = RangeSet::new();
            let (mut next, mut now) = (0u64, t0 + 10 * MS);
            for step in 0..4000 {
                let ctx = format!("seed {seed} step {step}");
                now += Duration::from_micros(rand(1500));
                match rand(10) {
                    0..=4 => {
                        let len = if rand(30) == 0 { 1000 + rand(3000) } else { 1 + rand(500) };
                        let (r, retx) = match s.next_retransmission(len) {
                            Some(r) => (r, true),
                            None if next < size => {
                                let start = next;
                                next = (next + len).min(size);
                                (start..next, false)
                            }
                            None => continue,
                        };
                        let pn = s.next_pn();
                        let at = now - Duration::from_micros(rand(2000));
                        s.on_sent(at, r.clone(), false, retx, false);
                        let p = s.in_flight.get(r.start).copied().expect(&ctx);
                        assert_eq!((p.pn, p.offset, p.len), (pn, r.start, r.end - r.start), "{ctx}");
                        m.map.insert(r.start, p);
                        m.order.push_back((pn, r.start, at));
                        if rand(100) >= loss {
                            received.insert(r);
                        }
                    }
                    5..=7 => {
                        let ranges: Vec<Range<u64>> = if rand(4) == 0 {
                            (0..1 + rand(3))
                                .map(|_| {
                                    let start = rand(next + 500);
                                    start..start + rand(2000)
                                })
                                .collect()
                        } else {
                            let skip = received.len().saturating_sub(4);
                            received.iter().take(1).chain(received.iter().skip(1 + skip)).collect()
                        };
                        let mut got = Vec::new();
                        s.on_ack_ranges(now, &ranges, |a| got.push((a.sent.pn, a.prior_in_flight)));
                        assert_eq!(got, m.ack(&ranges), "{ctx}: ACK of {ranges:?}");
                        if rand(detect) == 0 {
                            let largest = s.next_pn().saturating_sub(1 + rand(6));
                            let mut got = Vec::new();
                            s.detect_lost(now, largest, &e, |p| got.push(p.pn));
                            assert_eq!(got, m.detect_lost(now, largest, delay), "{ctx}: loss detection");
                        }
                    }
                    8 if rand(lose) == 0 => {
                        let age = Duration::from_micros(rand(20_000));
                        let mut got = Vec::new();
                        s.lose_older_than(now, age, |p| got.push(p.pn));
                        assert_eq!(got, m.lose_where(|p| p.time + age <= now), "{ctx}: lose_older_than");
                    }
                    9 if rand(2 * lose) == 0 => {
                        let mut got = Vec::new();
                        s.lose_all(|p| got.push(p.pn));
                        m.order.clear();
                        assert_eq!(got, m.lose_where(|_| true), "{ctx}: lose_all");
                    }
                    _ => {}
                }
                let flight: Vec<u64> = s.in_flight.values().map(|p| p.pn).collect();
                assert_eq!(flight, m.map.values().map(|p| p.pn).collect::<Vec<_>>(), "{ctx}: in flight");
                assert_eq!(s.in_flight.len(), flight.len(), "{ctx}");
                check_in_flight(&s);
                // Tombstones never outnumber the live packets by much.
                assert!(s.in_flight.fresh.len() <= 2 * s.in_flight.len() + 32, "{ctx}: {}", s.in_flight.fresh.len());
            }
        }
    }
}
