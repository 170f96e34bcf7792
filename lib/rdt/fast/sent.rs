//! Sent-packet tracking and loss detection for the fast sender (RFC 9002
//! style, over file byte ranges instead of frames).
//!
//! [`SentPackets`] numbers the DATA datagrams, remembers each one in flight
//! (keyed by its file offset, and in send order for the packet-number
//! threshold), keeps the bytes in flight, the file ranges acknowledged and
//! those lost and still to be resent, and the delivery-rate state of
//! draft-cheng-iccrg-delivery-rate-estimation. It calls no congestion
//! controller: acknowledged and lost packets are handed to closures, in
//! order, and the sender reacts to them (window, MTU probing, events).

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

/// The packets in flight of one transfer, and what became of the rest.
#[derive(Debug)]
pub(crate) struct SentPackets {
    /// File size: acknowledged ranges are clipped to it.
    size: u64,
    /// In flight, keyed by offset (a live packet's range is unique).
    in_flight: BTreeMap<u64, Sent>,
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
            in_flight: BTreeMap::new(),
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
        self.in_flight.is_empty()
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
        self.in_flight.insert(range.start, sent);
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
            // unless partially acknowledged: it stays until wholly covered).
            let mut next = self.in_flight.range(..r.start).next_back().map_or(r.start, |(&o, _)| o);
            while let Some((&o, &s)) = self.in_flight.range(next..r.end).next() {
                next = o + 1;
                if !self.acked.contains(o..o + s.len) {
                    continue;
                }
                self.in_flight.remove(&o);
                let prior_in_flight = self.bytes_in_flight;
                self.bytes_in_flight -= s.len;
                let rate = self.delivery_sample(now, &s);
                on_acked(&Acked { sent: s, prior_in_flight, rate });
                progress = true;
            }
        }
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
            let live = self.in_flight.get(&off).is_some_and(|s| s.pn == pn);
            if !live {
                self.order.pop_front();
                continue;
            }
            if !(pn + PACKET_THRESHOLD <= largest_pn || (pn < largest_pn && t + delay <= now)) {
                break;
            }
            self.order.pop_front();
            if let Some(s) = self.in_flight.remove(&off) {
                self.lose(&s);
                on_lost(&s);
            }
        }
    }

    /// Declares every packet in flight lost (the retransmission timer
    /// fired), in offset order.
    pub(crate) fn lose_all(&mut self, mut on_lost: impl FnMut(&Sent)) {
        self.order.clear();
        for (_, s) in std::mem::take(&mut self.in_flight) {
            self.lose(&s);
            on_lost(&s);
        }
    }

    /// Declares lost every packet in flight sent at least `age` before
    /// `now`, in offset order (the receiver says it has had no DATA).
    pub(crate) fn lose_older_than(&mut self, now: Instant, age: Duration, mut on_lost: impl FnMut(&Sent)) {
        let old: Vec<u64> = self.in_flight.iter().filter(|(_, s)| s.time + age <= now).map(|(&o, _)| o).collect();
        for off in old {
            if let Some(s) = self.in_flight.remove(&off) {
                self.lose(&s);
                on_lost(&s);
            }
        }
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
}
