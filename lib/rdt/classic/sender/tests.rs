use super::*;
use crate::rdt::classic::encode_ack;
use crate::rdt::sim::{self, Attached, Wire};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// A receiver like the reference's: in-order ACKs, repeats the last ACK on
/// a gap, optionally dropping every 11th datagram and stalling 2 s at every 10th.
struct Receiver {
    w: u8,
    expect: u8,
    got: Vec<u8>,
    count: u64,
    reference_quirks: bool,
    done: bool,
    /// The receiver is single-threaded: it is busy until then.
    busy_until: Option<Instant>,
    /// ACKs and when they leave (once the receiver got to them).
    acks: VecDeque<(Instant, Vec<u8>)>,
}

impl Receiver {
    fn new(w: u8, reference_quirks: bool) -> Self {
        let (expect, got, count, done, busy_until, acks) = (0, Vec::new(), 0, false, None, VecDeque::new());
        Receiver { w, expect, got, count, reference_quirks, done, busy_until, acks }
    }

    /// Returns (ACK, extra delay before it is processed).
    fn recv(&mut self, d: &[u8]) -> (Option<Vec<u8>>, Duration) {
        self.count += 1;
        let mut delay = Duration::ZERO;
        if self.reference_quirks {
            if self.count.is_multiple_of(11) {
                return (None, delay);
            }
            if self.count.is_multiple_of(10) {
                delay = Duration::from_secs(2);
            }
        }
        if self.done {
            return (None, delay); // the reference has exited
        }
        let p = Data::parse(d).unwrap();
        if p.seq == self.expect {
            self.got.extend_from_slice(p.payload);
            self.expect = (self.expect + 1) % (self.w + 1);
            if p.last {
                self.done = true;
            }
        }
        (Some(encode_ack(self.expect)), delay)
    }
}

/// The model as an endpoint, so that the one simulator runs it.
impl Endpoint<()> for Receiver {
    fn handle_datagram(&mut self, now: Instant, d: &[u8], _: &mut ()) -> Handled {
        let at = self.busy_until.map_or(now, |b| b.max(now));
        let (ack, delay) = self.recv(d);
        self.busy_until = Some(at + delay);
        self.acks.extend(ack.map(|a| (at + delay, a)));
        Handled::Taken
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        self.acks.front().map(|a| a.0)
    }
    fn poll_transmit(&mut self, now: Instant, _: &mut (), _: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.acks.front()?.0 > now {
            return None;
        }
        *buf = self.acks.pop_front()?.1;
        Some(Transmit { len: buf.len(), segment_size: None })
    }
    fn is_finished(&self) -> bool {
        false // the simulation ends with the sender
    }
}

/// A model of the reference sender ([protocol](crate::protocol) §5): fixed 2 s timeout,
/// only the expected ACK slides the window (by one, growing it by one),
/// a timeout halves the window and resends from the first unacknowledged
/// packet. Used as the yardstick for "promptly".
struct ReferenceSender {
    len: usize,
    w: u8,
    packets: usize,
    base: usize,
    next: usize,
    cwnd: usize,
    timer: Option<Instant>,
}

impl ReferenceSender {
    fn new(len: usize, w: u8) -> Self {
        let packets = len.div_ceil(CHUNK).max(1);
        ReferenceSender { len, w, packets, base: 0, next: 0, cwnd: usize::from(w), timer: None }
    }
    fn seq(&self, i: usize) -> u8 {
        (i % (usize::from(self.w) + 1)) as u8
    }
    fn done(&self) -> bool {
        self.base == self.packets
    }
}

impl<S: Source> Endpoint<S> for ReferenceSender {
    fn poll_transmit(&mut self, now: Instant, src: &mut S, _: usize, out: &mut Vec<u8>) -> Option<Transmit> {
        if self.done() || self.next >= self.packets || self.next >= self.base + self.cwnd {
            return None;
        }
        let i = self.next;
        let (start, end) = (i * CHUNK, ((i + 1) * CHUNK).min(self.len));
        let mut payload = vec![0; end.saturating_sub(start)];
        src.read_at(start as u64, &mut payload).unwrap();
        out.clear();
        Data { last: i + 1 == self.packets, seq: self.seq(i), payload: &payload }.encode(out);
        self.next += 1;
        self.timer.get_or_insert(now + Duration::from_secs(2));
        Some(Transmit { len: out.len(), segment_size: None })
    }
    fn handle_datagram(&mut self, now: Instant, d: &[u8], _: &mut S) -> Handled {
        if self.done() || self.base == self.next || parse_ack(d) != Some(self.seq(self.base + 1)) {
            return Handled::Taken;
        }
        self.base += 1;
        self.cwnd = (self.cwnd + 1).min(usize::from(self.w));
        self.timer = (self.base < self.next).then(|| now + Duration::from_secs(2));
        Handled::Taken
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_some_and(|t| now >= t) && !self.done() {
            self.cwnd = (self.cwnd / 2).max(1);
            self.next = self.base;
            self.timer = None;
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }
    fn is_finished(&self) -> bool {
        self.done()
    }
}

/// One direction of the test's network: a fixed delay, and `lose`
/// (shared by both directions, told the direction) decides about each
/// datagram. It hands over one datagram per step of the simulation, so
/// that each side handles one, then sends, as both single-threaded
/// reference programs do.
struct Pipe<'a> {
    to_receiver: bool,
    lose: Rc<RefCell<dyn FnMut(bool) -> bool + 'a>>,
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// One was handed over in this step.
    handed: bool,
}

/// One-way delay of [`Pipe`].
const ONE_WAY: Duration = Duration::from_millis(5);

impl Wire for Pipe<'_> {
    fn send(&mut self, now: Instant, _: usize, d: Vec<u8>) {
        if !(self.lose.borrow_mut())(self.to_receiver) {
            self.queue.push_back((now + ONE_WAY, d));
        }
    }
    fn recv(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        if std::mem::take(&mut self.handed) || self.queue.front()?.0 > now {
            return None;
        }
        self.handed = true;
        self.queue.pop_front().map(|(_, d)| (0, d))
    }
    fn next_arrival(&self) -> Option<Instant> {
        self.queue.front().map(|e| e.0)
    }
}

/// Runs a whole transfer over a simulated link with a virtual clock.
/// `loss(i)` decides whether the i-th datagram (either way) is lost.
fn simulate(size: usize, w: u8, quirks: bool, loss: impl FnMut(u64, bool) -> bool) -> (Sender, Receiver, Duration) {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    simulate_with(Sender::new(size as u64, w), &data[..], size, w, quirks, loss)
}

/// The same with any sender `s` reading `src` (the file of [`simulate`]).
fn simulate_with<S: Source, M: Endpoint<S>>(
    s: M,
    src: S,
    size: usize,
    w: u8,
    quirks: bool,
    mut loss: impl FnMut(u64, bool) -> bool,
) -> (M, Receiver, Duration) {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let mut n = 0u64;
    let lose: Rc<RefCell<dyn FnMut(bool) -> bool + '_>> = Rc::new(RefCell::new(move |to_r| {
        n += 1;
        loss(n, to_r)
    }));
    let mut fwd = Pipe { to_receiver: true, lose: lose.clone(), queue: VecDeque::new(), handed: false };
    let mut back = Pipe { to_receiver: false, lose, queue: VecDeque::new(), handed: false };
    let mut flows = [(Attached::new(s, src), Attached::new(Receiver::new(w, quirks), ()))];
    let start = Instant::now();
    let hour = Duration::from_secs(3600);
    let end =
        sim::run(&mut flows, &mut fwd, &mut back, start, hour, Duration::ZERO, |_, f| !f[0].0.endpoint.is_finished());
    let [(s, r)] = flows;
    assert!(
        s.endpoint.is_finished(),
        "{} stuck at {:?}: receiver got {} of {size} ({} datagrams)",
        std::any::type_name::<M>(),
        end.now - start,
        r.endpoint.got.len(),
        r.endpoint.count
    );
    let r = r.endpoint;
    assert_eq!(r.got, data[..r.got.len()]);
    (s.endpoint, r, end.now - start)
}

#[test]
fn lossless_transfer_is_confirmed() {
    for size in [0, 1, 999, 1000, 1001, 250_000] {
        let (s, r, t) = simulate(size, 20, false, |_, _| false);
        assert_eq!(s.outcome(), Some(Outcome::Confirmed), "size {size}");
        assert_eq!(r.got.len(), size);
        assert_eq!(s.retransmits(), 0);
        assert!(t < Duration::from_secs(10), "size {size} took {t:?}");
    }
}

#[test]
fn seeded_random_loss_both_ways() {
    for seed in 1..=20u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let (s, r, _) = simulate(60_000, 20, false, |_, _| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 10 == 0
        });
        assert!(s.outcome() != Some(Outcome::Failed), "seed {seed}");
        assert_eq!(r.got.len(), 60_000, "seed {seed}");
    }
}

#[test]
fn reference_receiver_quirks_finish_promptly() {
    // 100 packets to the reference receiver (window 20, drops every 11th
    // datagram, sleeps 2 s at every 10th), 5 ms each way.
    let size = 100_000;
    let (s, r, t) = simulate(size, 20, true, |_, _| false);
    assert_eq!(r.got.len(), size);
    assert_eq!(s.outcome(), Some(Outcome::Confirmed));
    // Every datagram received (retransmissions too) counts toward the
    // stalls; 100 packets need at least 110 datagrams (every 11th is
    // dropped), so 11 stalls: no sender can finish in under 22 s.
    let floor = Duration::from_secs(22);
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let (_, rr, reference) = simulate_with(ReferenceSender::new(size, 20), &data[..], size, 20, true, |_, _| false);
    assert_eq!(rr.got.len(), size);
    eprintln!(
        "reference quirks, 100 kB: chatctl {t:?} ({} datagrams received, {} retransmits), reference sender {reference:?} ({} datagrams), floor {floor:?}",
        r.count,
        s.retransmits(),
        rr.count
    );
    assert!(t >= floor, "faster than possible: {t:?}");
    // Promptly: clearly faster than the reference sender on the same link,
    // and within twice the floor.
    assert!(t * 4 <= reference * 3, "chatctl {t:?} vs reference sender {reference:?}");
    assert!(t <= floor * 2, "took {t:?}, {} retransmits", s.retransmits());
}

/// Regression: the reference receiver's 2 s sleep can fall on the last
/// packets; the sender must not take that silence for the end.
#[test]
fn reference_receiver_quirks_small_files_are_confirmed() {
    for packets in 1..=45 {
        let size = packets * 1000 - 10;
        let (s, r, t) = simulate(size, 20, true, |_, _| false);
        assert_eq!(r.got.len(), size, "{packets} packets");
        assert_eq!(s.outcome(), Some(Outcome::Confirmed), "{packets} packets, {t:?}");
    }
}

#[test]
fn ends_when_the_last_ack_is_lost() {
    let size = 5_500; // 6 packets: every ACK of the last packet is lost
    let mut acks = 0;
    let (s, r, t) = simulate(size, 20, false, |_, to_r| {
        if !to_r {
            acks += 1;
        }
        !to_r && acks >= 6
    });
    assert_eq!(r.got.len(), size);
    assert_eq!(s.outcome(), Some(Outcome::Unconfirmed));
    assert!(t < Duration::from_secs(20), "took {t:?}");
}

#[test]
fn ends_when_the_receiver_vanishes() {
    let (s, _, _) = simulate(50_000, 20, false, |n, _| n > 5);
    assert_eq!(s.outcome(), Some(Outcome::Failed));
}

#[test]
fn ignores_repeated_hello_and_wrong_acks() {
    let file = vec![1; 3000];
    let mut s = Sender::new(3000, 20);
    let now = Instant::now();
    let mut b = Vec::new();
    while s.poll_transmit(now, &mut &file[..], &mut b).is_some() {}
    s.handle_datagram(now, b"20");
    s.handle_datagram(now, b"7");
    s.handle_datagram(now, b"junk");
    assert_eq!(s.acked_bytes(), 0);
    s.handle_datagram(now, b"3");
    assert_eq!(s.outcome(), Some(Outcome::Confirmed));
}

/// A source that remembers its last read and counts them.
struct Recording {
    data: Vec<u8>,
    last: Option<(u64, usize)>,
    reads: u64,
}

impl Source for Recording {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        Source::read_at(&mut &self.data[..], offset, buf)?;
        self.last = Some((offset, buf.len()));
        self.reads += 1;
        Ok(())
    }
}

/// Checks, after every datagram sent, that the sender read only a packet
/// of the current window: never acknowledged bytes, never beyond the window.
struct Watched(Sender);

impl Endpoint<Recording> for Watched {
    fn poll_transmit(&mut self, now: Instant, src: &mut Recording, _: usize, out: &mut Vec<u8>) -> Option<Transmit> {
        let base = self.0.acked_bytes();
        let before = src.reads;
        let i = self.0.poll_transmit(now, src, out)?;
        let sent = Some(Transmit { len: out.len(), segment_size: None });
        if src.data.is_empty() {
            return sent;
        }
        assert_eq!(src.reads, before + 1, "one read per datagram");
        let (offset, n) = src.last.expect("a read");
        let window = u64::from(self.0.w) * CHUNK as u64;
        assert!(n <= CHUNK, "read {n} bytes at once");
        assert_eq!(offset, i as u64 * CHUNK as u64, "packet {i} read at {offset}");
        assert!(offset >= base, "read acknowledged bytes at {offset} (acked {base})");
        assert!(offset + n as u64 <= base + window, "read {offset}+{n} beyond the window (acked {base})");
        sent
    }
    fn handle_datagram(&mut self, now: Instant, d: &[u8], _: &mut Recording) -> Handled {
        self.0.handle_datagram(now, d);
        Handled::Taken
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

#[test]
fn reads_only_the_packets_in_flight() {
    for (seed, w, quirks) in [(1u64, 20u8, true), (2, 98, false), (3, 5, false), (4, 1, false)] {
        let size = 120_500;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let src = Recording { data, last: None, reads: 0 };
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let (s, r, _) = simulate_with(Watched(Sender::new(size as u64, w)), src, size, w, quirks, |_, _| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 13 == 0
        });
        assert_eq!(r.got.len(), size, "seed {seed}, window {w}");
        assert_ne!(s.0.outcome(), Some(Outcome::Failed), "seed {seed}, window {w}");
    }
}

/// Bytes made up on the fly: a "file" that no memory could hold.
struct Synthetic(u64);

impl Source for Synthetic {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        assert!(offset + buf.len() as u64 <= self.0, "read beyond the end");
        for (k, b) in buf.iter_mut().enumerate() {
            *b = ((offset + k as u64) % 251) as u8;
        }
        Ok(())
    }
}

#[test]
fn state_does_not_grow_with_the_file() {
    // 4 EiB: any per-packet state (2^52 packets) fails to allocate at once.
    let mut file = Synthetic(1 << 62);
    let mut s = Sender::new(file.0, 98);
    let now = Instant::now();
    let mut b = Vec::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    for _ in 0..5 {
        while s.poll_transmit(now, &mut file, &mut b).is_some() {
            let p = Data::parse(&b).unwrap();
            assert_eq!(p.payload.len(), CHUNK);
            assert!(!p.last);
            assert_eq!(p.payload[0], ((sent * CHUNK as u64) % 251) as u8);
            sent += 1;
        }
        assert_eq!(sent, acked + 98);
        // (An ACK of "98" first would read as a repeated hello.)
        acked += 50;
        s.handle_datagram(now, &encode_ack((acked % 99) as u8));
        assert_eq!(s.acked_bytes(), acked * CHUNK as u64);
    }
    assert!(s.sent_at.len() <= 99 && s.chunk.len() == CHUNK);
}

/// Fails every read from `offset` on.
struct Broken(Vec<u8>, u64);

impl Source for Broken {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset >= self.1 {
            return Err(io::Error::other("disk on fire"));
        }
        Source::read_at(&mut &self.0[..], offset, buf)
    }
}

#[test]
fn a_read_error_fails_the_transfer() {
    let mut file = Broken(vec![7; 10_000], 4_000);
    let mut s = Sender::new(10_000, 20);
    let now = Instant::now();
    let mut b = Vec::new();
    let mut sent = 0;
    while s.poll_transmit(now, &mut file, &mut b).is_some() {
        sent += 1;
    }
    assert_eq!(sent, 4);
    assert_eq!(s.outcome(), Some(Outcome::Failed));
    assert_eq!(s.take_error().map(|e| e.to_string()), Some("disk on fire".into()));
    assert_eq!(s.poll_timeout(), None);
    s.handle_datagram(now, b"4");
    assert_eq!(s.outcome(), Some(Outcome::Failed));
}

#[test]
fn a_file_shorter_than_announced_fails_the_transfer() {
    // The file is read as the announced size says, and ends early.
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, &[5u8; 2500]).unwrap();
    let mut s = Sender::new(5000, 20);
    let now = Instant::now();
    let mut b = Vec::new();
    let mut payload = Vec::new();
    while s.poll_transmit(now, &mut f, &mut b).is_some() {
        payload.extend_from_slice(Data::parse(&b).unwrap().payload);
    }
    assert_eq!(payload, vec![5u8; 2000]);
    assert_eq!(s.outcome(), Some(Outcome::Failed));
    let e = s.take_error().expect("the read error");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(e.to_string(), "the file ended before byte 3000 of 5000");
}

#[test]
fn a_file_that_grew_is_sent_at_its_announced_length() {
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, &(0..=255u8).cycle().take(3500).collect::<Vec<_>>()).unwrap();
    let mut s = Sender::new(3200, 20);
    let now = Instant::now();
    let mut b = Vec::new();
    let mut payload = Vec::new();
    while s.poll_transmit(now, &mut f, &mut b).is_some() {
        payload.extend_from_slice(Data::parse(&b).unwrap().payload);
    }
    assert_eq!(payload, (0..=255u8).cycle().take(3200).collect::<Vec<_>>());
    s.handle_datagram(now, b"4");
    assert_eq!(s.outcome(), Some(Outcome::Confirmed));
}
