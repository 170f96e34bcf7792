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
