//! The classic go-back-N sender as a pure state machine (no sockets, no clock).
//!
//! Drive it like quinn-proto: feed datagrams from the receiver with
//! [`Sender::handle_datagram`], take datagrams to send with
//! [`Sender::poll_transmit`], sleep until [`Sender::poll_timeout`] and then call
//! [`Sender::handle_timeout`]; stop when [`Sender::is_finished`].
//!
//! Differences from the reference sender, as [protocol](crate::protocol) §5 asks:
//! - the retransmission timeout adapts (RFC 6298: SRTT/RTTVAR, Karn's rule,
//!   exponential backoff) between [`MIN_RTO`] and [`MAX_RTO`] instead of a fixed 2 s;
//! - ACKs are cumulative: any ACK inside the flight slides the window that far,
//!   and [`DUP_ACKS`] repeated ACKs resend from the gap without waiting for the timer;
//! - the window follows RFC 5681: slow start up to a threshold, then one more
//!   packet per window; a fast retransmit halves it, a timeout restarts it
//!   from one packet (the reference halves it on a timeout, so each of the
//!   reference receiver's 2 s sleeps made it resend half a window, and every
//!   resent datagram brings that receiver's next sleep closer);
//! - it ends even when the receiver is gone or the last ACK is lost: after
//!   [`MAX_TIMEOUTS`] consecutive timeouts without progress (or, once
//!   everything was sent, [`FINAL_TIMEOUTS`] and at least [`FINAL_SILENCE`]) it stops, and
//!   [`Sender::outcome`] says whether the end was confirmed.
//!
//! Memory stays bounded whatever the file size: the sender reads each packet
//! from the [`Source`] passed to [`Sender::poll_transmit`] when it (re)sends
//! it, and keeps per-packet state only for the packets in flight (at most the
//! window, 98). A read error ends the transfer as [`Outcome::Failed`] and
//! [`Sender::take_error`] tells why. It meets the shared
//! [`Endpoint`] interface too.

use std::io;
use std::time::{Duration, Instant};

use crate::rdt::endpoint::{Endpoint, Handled, Source, Transmit};
use crate::rdt::rtt::RttEstimator;

use super::{CHUNK, Data, parse_ack};

/// Lowest retransmission timeout (RFC 6298 says 1 s; a LAN needs far less).
pub const MIN_RTO: Duration = Duration::from_millis(200);
/// Highest retransmission timeout, after backoff.
pub const MAX_RTO: Duration = Duration::from_secs(3);
/// Highest retransmission timeout once every packet was sent: the sender
/// then only checks that the receiver is still there, and should notice
/// soon after [`FINAL_SILENCE`] that it is not.
pub const FINAL_MAX_RTO: Duration = Duration::from_secs(1);
/// Initial timeout before any RTT sample.
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Consecutive timeouts, once every packet was sent, after which (and after
/// [`FINAL_SILENCE`]) the sender ends without the final ACK.
pub const FINAL_TIMEOUTS: u32 = 2;
/// Least silence, once every packet was sent, before the sender ends without
/// the final ACK: longer than the reference receiver's 2 s sleep, which can
/// fall on the very last packets.
pub const FINAL_SILENCE: Duration = Duration::from_secs(3);
/// Repeated ACKs that trigger a retransmission before the timer (like TCP's
/// fast retransmit). Fewer than TCP's 3: datagrams of one transfer rarely
/// reorder, and small windows after a loss would otherwise never see 3.
pub const DUP_ACKS: u32 = 2;
/// Consecutive timeouts without progress after which the sender gives up.
pub const MAX_TIMEOUTS: u32 = 6;

/// How a finished transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every packet, the last one included, was acknowledged.
    Confirmed,
    /// All packets were sent but the final ACK never came (the receiver may
    /// well have everything: the reference exits without a further word).
    Unconfirmed,
    /// The receiver stopped answering before the last packet was sent.
    Failed,
}

/// Classic go-back-N sender for one file, read on demand from a [`Source`].
#[derive(Debug)]
pub struct Sender {
    /// The file's length, fixed for the whole transfer.
    len: u64,
    /// One packet's payload, reused.
    chunk: Vec<u8>,
    /// Why the transfer failed, if a read did.
    error: Option<io::Error>,
    /// The receiver's window W; sequence numbers are mod W+1.
    w: u8,
    packets: usize,
    /// First unacknowledged packet index.
    base: usize,
    /// Next packet index to send.
    next: usize,
    /// Highest index ever sent + 1 (retransmissions are below it).
    high: usize,
    /// Current window (packets in flight), 1..=W.
    cwnd: usize,
    /// Below it the window grows by one per packet acknowledged (slow
    /// start), above it by one per window (congestion avoidance).
    ssthresh: usize,
    /// Packets acknowledged toward the next congestion-avoidance increase.
    acked_in_window: usize,
    /// Send time of each packet in flight, None if retransmitted (Karn);
    /// indexed by sequence number: packets in flight span at most W + 1 of them.
    sent_at: Vec<Option<Instant>>,
    timer: Option<Instant>,
    /// RFC 6298 estimator shared with the fast mode; `rto` below adds this
    /// sender's own backoff and bounds.
    rtt: RttEstimator,
    rto: Duration,
    timeouts: u32,
    /// Last time an ACK came, even a repeated one (or the first send): a
    /// receiver that still answers is there, even if it makes no progress.
    heard_at: Option<Instant>,
    got_ack: bool,
    outcome: Option<Outcome>,
    retransmits: u64,
    /// Repeated ACKs of the current base.
    dups: u32,
    /// Base at the last fast retransmit (one per base).
    fast_base: Option<usize>,
}

impl Sender {
    /// A sender of a `len`-byte file to a receiver that announced window
    /// `w` (1..=98). The file is read from the [`Source`] given to
    /// [`poll_transmit`](Self::poll_transmit), never beyond `len` even if
    /// the file grows; a file shorter than `len` fails the transfer.
    pub fn new(len: u64, w: u8) -> Self {
        let w = w.clamp(1, super::MAX_WINDOW);
        let packets = usize::try_from(len.div_ceil(CHUNK as u64)).unwrap_or(usize::MAX).max(1);
        Sender {
            len,
            chunk: vec![0; CHUNK],
            error: None,
            w,
            packets,
            base: 0,
            next: 0,
            high: 0,
            cwnd: usize::from(w),
            ssthresh: usize::from(w),
            acked_in_window: 0,
            sent_at: vec![None; usize::from(w) + 1],
            timer: None,
            rtt: RttEstimator::new(MIN_RTO),
            rto: INITIAL_RTO,
            timeouts: 0,
            heard_at: None,
            got_ack: false,
            outcome: None,
            retransmits: 0,
            dups: 0,
            fast_base: None,
        }
    }

    fn seq(&self, index: usize) -> u8 {
        (index % (usize::from(self.w) + 1)) as u8
    }

    /// Handles a datagram from the receiver; anything but a valid ACK is ignored.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        let Some(ack) = parse_ack(datagram) else { return };
        let modulus = usize::from(self.w) + 1;
        if usize::from(ack) >= modulus {
            return;
        }
        // A repeated hello ("20") before any ACK is not an ACK. With window 1
        // the first real ACK is "1" too, and it can only be taken as an ACK
        // (a hello repeated after data was sent would be misread; a receiver
        // that announces window 1 and repeats its hello is not known).
        if !self.got_ack && self.w > 1 && super::parse_window(datagram) == Some(self.w) {
            return;
        }
        self.heard_at = Some(now);
        let in_flight = self.high.min(self.packets) - self.base;
        let k = (usize::from(ack) + modulus - usize::from(self.seq(self.base))) % modulus;
        if k == 0 && in_flight > 0 && self.got_ack {
            // A repeated ACK: the receiver saw a gap. After DUP_ACKS of them,
            // go back at once instead of waiting for the timer (once per base).
            self.dups += 1;
            if self.dups >= DUP_ACKS && self.fast_base != Some(self.base) {
                self.fast_base = Some(self.base);
                self.ssthresh = (self.cwnd / 2).max(1);
                self.cwnd = self.ssthresh;
                self.next = self.base;
                self.timer = None;
                self.dups = 0;
            }
            return;
        }
        if k == 0 || k > in_flight {
            return; // a wrong ACK
        }
        self.dups = 0;
        self.got_ack = true;
        let newest = self.base + k - 1;
        if let Some(t) = self.sent_at[usize::from(self.seq(newest))] {
            self.sample(now.saturating_duration_since(t));
        }
        self.base += k;
        self.next = self.next.max(self.base);
        self.grow(k);
        self.timeouts = 0;
        self.timer = (self.base < self.next).then(|| now + self.rto);
        if self.base == self.packets {
            self.outcome = Some(Outcome::Confirmed);
            self.timer = None;
        }
    }

    /// Grows the window for `k` newly acknowledged packets (RFC 5681 style).
    fn grow(&mut self, k: usize) {
        if self.cwnd < self.ssthresh {
            self.cwnd += k;
        } else {
            self.acked_in_window += k;
            while self.acked_in_window >= self.cwnd {
                self.acked_in_window -= self.cwnd;
                self.cwnd += 1;
            }
        }
        self.cwnd = self.cwnd.min(usize::from(self.w));
    }

    fn sample(&mut self, r: Duration) {
        self.rtt.sample(r);
        self.rto = self.rtt.rto().clamp(MIN_RTO, MAX_RTO);
    }

    /// Writes the next datagram to send into `out` (cleared first), its
    /// payload read from `src`; returns the packet's index, or `None` if
    /// nothing may be sent now.
    pub fn poll_transmit(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>) -> Option<usize> {
        if self.outcome.is_some() || self.next >= self.packets || self.next >= self.base + self.cwnd {
            return None;
        }
        let i = self.next;
        let n = match self.read_packet(i, src) {
            Ok(n) => n,
            Err(e) => {
                self.error = Some(e);
                self.outcome = Some(Outcome::Failed);
                self.timer = None;
                return None;
            }
        };
        out.clear();
        Data { last: i + 1 == self.packets, seq: self.seq(i), payload: &self.chunk[..n] }.encode(out);
        let slot = usize::from(self.seq(i));
        if i < self.high {
            self.sent_at[slot] = None;
            self.retransmits += 1;
        } else {
            self.sent_at[slot] = Some(now);
            self.high = i + 1;
        }
        self.next += 1;
        if self.timer.is_none() {
            self.timer = Some(now + self.rto);
        }
        self.heard_at.get_or_insert(now);
        Some(i)
    }

    /// Reads packet `i`'s payload into `self.chunk`; returns its length.
    fn read_packet(&mut self, i: usize, src: &mut dyn Source) -> io::Result<usize> {
        let start = (i as u64).saturating_mul(CHUNK as u64);
        let want = usize::try_from(self.len.saturating_sub(start)).unwrap_or(usize::MAX).min(CHUNK);
        src.read_at(start, &mut self.chunk[..want]).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended before byte {} of {}", start + want as u64, self.len),
            ),
            _ => e,
        })?;
        Ok(want)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() { None } else { self.timer }
    }

    /// Handles the retransmission timer: halve the window and go back to the
    /// first unacknowledged packet; give up after [`MAX_TIMEOUTS`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.timer {
            Some(t) if now >= t && self.outcome.is_none() => {}
            _ => return,
        }
        self.timeouts += 1;
        // Once every packet was sent, a long silence most likely means the
        // receiver got it all and exited (the reference does): end sooner.
        let all_sent = self.high == self.packets;
        let silence = self.heard_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if all_sent && self.timeouts >= FINAL_TIMEOUTS && silence >= FINAL_SILENCE {
            self.outcome = Some(Outcome::Unconfirmed);
            self.timer = None;
            return;
        }
        if self.timeouts >= MAX_TIMEOUTS {
            self.outcome = Some(if self.high == self.packets { Outcome::Unconfirmed } else { Outcome::Failed });
            self.timer = None;
            return;
        }
        // Like TCP after a timeout: remember half the window, restart from one
        // packet. A timeout during a receiver stall (the reference sleeps 2 s)
        // then costs one extra datagram, not half a window of them.
        self.ssthresh = (self.cwnd / 2).max(1);
        self.cwnd = 1;
        self.acked_in_window = 0;
        self.next = self.base;
        self.rto = (self.rto * 2).min(if all_sent { FINAL_MAX_RTO } else { MAX_RTO });
        self.timer = None;
    }

    /// True once the transfer ended (see [`outcome`](Self::outcome)).
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// How it ended, once [`is_finished`](Self::is_finished).
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Packets sent more than once so far.
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// File bytes acknowledged so far.
    pub fn acked_bytes(&self) -> u64 {
        (self.base as u64).saturating_mul(CHUNK as u64).min(self.len)
    }

    /// Takes the read error that failed the transfer, if one did.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }
}

/// The [`Endpoint`] view: a [`Source`] is read for each datagram sent.
impl<S: Source> Endpoint<S> for Sender {
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8], _: &mut S) -> Handled {
        Sender::handle_datagram(self, now, datagram);
        Handled::Taken
    }
    fn handle_timeout(&mut self, now: Instant) {
        Sender::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Sender::poll_timeout(self)
    }
    /// One datagram at a time (the classic format has no batches).
    fn poll_transmit(&mut self, now: Instant, src: &mut S, _: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
        Sender::poll_transmit(self, now, src, buf).map(|_| Transmit { len: buf.len(), segment_size: None })
    }
    fn is_finished(&self) -> bool {
        Sender::is_finished(self)
    }
}

#[cfg(test)]
mod tests {
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
        let end = sim::run(&mut flows, &mut fwd, &mut back, start, hour, Duration::ZERO, |_, f| {
            !f[0].0.endpoint.is_finished()
        });
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
        fn poll_transmit(
            &mut self,
            now: Instant,
            src: &mut Recording,
            _: usize,
            out: &mut Vec<u8>,
        ) -> Option<Transmit> {
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
}
