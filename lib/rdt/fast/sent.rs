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
mod tests;
