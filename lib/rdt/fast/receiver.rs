//! The fast-mode receiver: a pure state machine. It sends the hello, echoes
//! the cookie, writes DATA out of order through a [`Sink`], acknowledges with
//! SACK ranges, and verifies the whole-file hash (XXH3-128: it offers
//! [`Format::LATEST`](super::Format::LATEST)) before it calls the download
//! complete. Same call pattern as the sender: `handle_datagram`, `handle_timeout`,
//! `poll_transmit` until `false`, `poll_timeout`.

use std::time::{Duration, Instant};

use super::acks::PendingAcks;
use super::delivery::Delivery;
use super::retry::HelloRetry;
use super::timer::{Timer, TimerTable};
use super::{ABORT_COPIES, Abort, AbortReason, Config, Frame, Sink, Stats};
use crate::rdt::classic;

/// Why a fast receive failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Writing or reading back the file failed.
    #[error("writing the file at offset {offset}")]
    Io {
        /// Where in the file.
        offset: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sender went silent for the idle timeout.
    #[error("sender silent for {0:?}")]
    Timeout(Duration),
    /// The file's hash differs from the sender's (DONE's whole hash field:
    /// format 3's zero padding included).
    #[error("the received file's hash does not match the sender's")]
    HashMismatch,
    /// The sender announced a size other than the one the caller expected.
    #[error("sender announced {got} bytes, expected {expected}")]
    Size {
        /// The size the caller expected (from `206`).
        expected: u64,
        /// The size in the CHALLENGE.
        got: u64,
    },
    /// The sender aborted the transfer (its ABORT).
    #[error("the server aborted the transfer: {0}")]
    PeerAborted(Abort),
    /// This side aborted the transfer ([`Receiver::abort`]).
    #[error("transfer aborted: {0}")]
    Aborted(Abort),
}

/// What [`Receiver::handle_datagram`] made of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A fast datagram (or noise), consumed.
    Fast,
    /// The first answer was classic go-back-N data: the peer is a classic
    /// sender that read the hello as window 98. Hand this datagram and the
    /// rest of the transfer to the classic receiver.
    Classic,
}

/// What [`Receiver::handle_segments`] made of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segments {
    /// Where in the buffer the first classic go-back-N datagram starts (see
    /// [`Received::Classic`]): it and everything after it belong to the
    /// classic receiver. `None`: the whole buffer was consumed.
    pub classic_at: Option<usize>,
}

/// DATA datagrams of one buffer that follow each other (packet numbers and
/// offsets), gathered for [`Receiver::on_data`].
#[derive(Default)]
struct Run<'a> {
    pn: u64,
    offset: u64,
    end: u64,
    parts: Vec<&'a [u8]>,
}

impl Run<'_> {
    fn continues(&self, pn: u64, offset: u64) -> bool {
        !self.parts.is_empty() && pn == self.pn + self.parts.len() as u64 && offset == self.end
    }
}

/// Where the transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Hello sent, waiting for CHALLENGE.
    Hello,
    /// START sent, receiving.
    Receiving,
    /// Hash verified, DONE-ACK sent; lingering to answer a repeated DONE.
    Lingering,
    /// Complete and verified.
    Done,
    /// Failed; see [`Receiver::take_error`].
    Failed,
}

/// The receiver's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvTimer {
    /// The verified file's linger ends.
    Linger,
    /// The sender has been silent for the idle timeout.
    Idle,
    /// The hello or START goes again.
    Retry,
    /// An ACK is due (sent by [`Receiver::poll_transmit`] while receiving).
    Ack,
}

impl RecvTimer {
    /// Which expired timer [`Receiver::handle_timeout`] looks at first.
    const ALL: [RecvTimer; 4] = [RecvTimer::Linger, RecvTimer::Idle, RecvTimer::Retry, RecvTimer::Ack];
}

impl Timer for RecvTimer {
    fn index(self) -> usize {
        self as usize
    }
}

/// The fast-mode receiver.
#[derive(Debug)]
pub struct Receiver {
    cfg: Config,
    state: State,
    error: Option<RecvError>,
    expected_size: Option<u64>,
    size: u64,
    resume: u64,
    cookie: u64,
    /// The hello and START, their retries and the RTT guessed from them.
    opening: HelloRetry,
    /// The bytes held, written and hashed.
    delivery: Delivery,
    /// What is unacknowledged and when the ACK goes.
    acks: PendingAcks,
    timers: TimerTable<RecvTimer, 4>,
    /// A DONE-ACK to send, with its verdict.
    done_ack_due: Option<bool>,
    /// The final hash did not match.
    mismatch: bool,
    stats: Stats,
    /// Copies of our ABORT still to send, and its reason and text.
    aborts_due: u32,
    abort: Option<(AbortReason, String)>,
}

impl Receiver {
    /// A receiver that already holds the first `resume` bytes (0 for a
    /// fresh download). `expected_size`, when known (from `206`), is checked
    /// against the sender's CHALLENGE.
    pub fn new(cfg: Config, resume: u64, expected_size: Option<u64>, now: Instant) -> Self {
        let mut timers = TimerTable::default();
        timers.set(RecvTimer::Idle, now + cfg.idle_timeout);
        Self {
            state: State::Hello,
            error: None,
            expected_size,
            size: 0,
            resume,
            cookie: 0,
            opening: HelloRetry::default(),
            delivery: Delivery::new(now),
            acks: PendingAcks::new(cfg.max_ack_delay, now),
            timers,
            done_ack_due: None,
            mismatch: false,
            stats: Stats::default(),
            aborts_due: 0,
            abort: None,
            cfg,
        }
    }

    /// Where the transfer stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the machine has nothing more to do (a lingering receiver's
    /// file is already verified; an aborting one has sent its ABORTs).
    pub fn is_finished(&self) -> bool {
        self.ended() && self.aborts_due == 0
    }

    /// Whether the transfer is over (ABORTs may still be due).
    fn ended(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// Ends the transfer now for `reason`: once the CHALLENGE came (the
    /// ABORT must echo its cookie), [`ABORT_COPIES`] ABORTs carrying `text`
    /// (cut to [`MAX_ABORT_TEXT`](super::MAX_ABORT_TEXT) bytes) go in the
    /// next [`poll_transmit`](Self::poll_transmit) calls; then the machine
    /// is finished, failed with [`RecvError::Aborted`]. A lingering receiver
    /// (its file verified) just stops lingering, done; a finished one stays
    /// as it ended.
    pub fn abort(&mut self, reason: AbortReason, text: &str) {
        match self.state {
            State::Done | State::Failed => {}
            State::Lingering => {
                self.timers.stop(RecvTimer::Linger);
                self.state = if self.mismatch { State::Failed } else { State::Done };
                if self.mismatch {
                    self.error.get_or_insert(RecvError::HashMismatch);
                }
            }
            State::Hello | State::Receiving => {
                let text = super::abort_text(text).to_owned();
                if self.state == State::Receiving {
                    self.abort = Some((reason, text.clone()));
                    self.aborts_due = ABORT_COPIES;
                }
                self.opening.cancel();
                self.fail(RecvError::Aborted(Abort { reason, text }));
            }
        }
    }

    /// Whether the file is complete and its hash verified.
    pub fn is_verified(&self) -> bool {
        matches!(self.state, State::Lingering | State::Done) && !self.mismatch
    }

    /// Takes the error of a failed transfer.
    pub fn take_error(&mut self) -> Option<RecvError> {
        self.error.take()
    }

    /// The file size the sender announced (0 before CHALLENGE).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Live figures as the receiver sees them: `bytes_done` bytes held,
    /// `srtt` the handshake RTT, `cwnd` the bytes delivered in the last RTT
    /// (the sender's window as seen from here), `packets_lost` holes that
    /// opened (loss or reordering), `bytes_retransmitted` bytes that filled a
    /// hole late, `datagrams_sent` ACKs sent, `held_prefix` the end of the
    /// contiguous prefix held; `sender` the sender's own figures from its
    /// last STATS.
    pub fn stats(&self) -> Stats {
        Stats { srtt: self.opening.rtt_guess(), held_prefix: self.delivery.prefix_end(), ..self.stats.clone() }
    }

    fn fail(&mut self, e: RecvError) {
        self.state = State::Failed;
        self.error = Some(e);
    }

    fn max_data(&self) -> u64 {
        self.delivery.prefix_end().saturating_add(self.cfg.receive_window).min(self.size)
    }

    /// The sender was heard from at `now`: the idle timeout starts again.
    fn heard(&mut self, now: Instant) {
        self.timers.set(RecvTimer::Idle, now + self.cfg.idle_timeout);
    }

    /// When the sender was last heard from.
    fn last_heard(&self) -> Instant {
        self.timers.get(RecvTimer::Idle).expect("the idle timer runs from the start") - self.cfg.idle_timeout
    }

    /// The file is verified (`ok`) or not at `now`: answer DONE and linger
    /// until `until` to answer it again.
    fn linger(&mut self, ok: bool, until: Instant) {
        self.state = State::Lingering;
        self.done_ack_due = Some(ok);
        self.timers.set(RecvTimer::Linger, until);
        self.timers.stop(RecvTimer::Ack);
    }

    /// A datagram from the sender.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8], sink: &mut dyn Sink) -> Received {
        if self.ended() {
            return Received::Fast;
        }
        if self.state == State::Hello && classic::Data::parse(datagram).is_some() {
            return Received::Classic;
        }
        let Ok(frame) = Frame::decode(datagram) else { return Received::Fast };
        match frame {
            Frame::Challenge { cookie, size } => {
                self.heard(now);
                if self.state == State::Hello {
                    if let Some(expected) = self.expected_size
                        && expected != size
                    {
                        self.fail(RecvError::Size { expected, got: size });
                        return Received::Fast;
                    }
                    self.cookie = cookie;
                    self.size = size;
                    self.delivery.hold_prefix(self.resume.min(size));
                    self.stats.bytes_done = self.resume.min(size);
                    self.state = State::Receiving;
                    self.timers.stop(RecvTimer::Retry);
                    self.opening.on_challenge(now);
                }
                if self.state == State::Receiving && !self.acks.any_received() {
                    self.opening.start();
                }
            }
            Frame::Data { pn, offset, payload } if self.state != State::Hello => {
                self.on_data(now, pn, offset, &[payload], sink);
            }
            Frame::Stats(s) if self.state != State::Hello => {
                // The sender is alive (retransmitting, or limited) even when
                // its DATA does not get through; an ACK in answer (at most one
                // per STATS, so about 10 a second) tells it we are too, so a
                // long streak of lost DATA does not end the transfer on
                // either side's idle timeout.
                self.heard(now);
                self.stats.sender = Some(s);
                if self.state == State::Receiving && self.acks.any_received() {
                    self.timers.set(RecvTimer::Ack, now);
                }
            }
            Frame::AckFrequency { seq, threshold, max_delay_us } if self.state != State::Hello => {
                self.heard(now);
                self.acks.on_frequency(seq, threshold, max_delay_us);
            }
            Frame::Done { size, hash } if self.state != State::Hello => {
                self.heard(now);
                if self.state == State::Receiving && size == self.size && self.delivery.holds(0..size) {
                    match self.delivery.verify(sink, size, &hash) {
                        Ok(true) => {
                            // Long enough to answer the sender's DONE three times
                            // over (its RTO starts at min_rto and doubles).
                            let rtt = self.opening.rtt_guess();
                            let linger = (rtt * 8).max(self.cfg.min_rto * 7).min(self.cfg.idle_timeout);
                            self.linger(true, now + linger);
                        }
                        Ok(false) => {
                            self.mismatch = true;
                            self.error = Some(RecvError::HashMismatch);
                            self.linger(false, now);
                        }
                        Err(e) => self.fail(e),
                    }
                } else if self.state == State::Lingering {
                    self.done_ack_due = Some(!self.mismatch);
                } else {
                    // DONE while bytes are missing: our ACKs were lost; repeat one.
                    self.timers.set(RecvTimer::Ack, now);
                }
            }
            // Only the sender of our CHALLENGE, and only while the file is
            // not yet verified (a lingering receiver has what it wanted).
            Frame::Abort { cookie, reason, text } if self.state == State::Receiving && cookie == self.cookie => {
                self.fail(RecvError::PeerAborted(Abort { reason, text: text.to_owned() }));
            }
            _ => {}
        }
        Received::Fast
    }

    /// A buffer of datagrams from the sender as one unit: `stride` bytes
    /// each, the last possibly shorter (a GRO buffer; a `stride` of 0 means
    /// one datagram). Each datagram is checked on its own (a corrupt one is
    /// dropped alone), and each run of DATA datagrams with consecutive
    /// packet numbers and contiguous offsets is taken at once: one write
    /// (of its parts, in order), one range-set update, one hash step, one
    /// ACK decision. Anything else goes through [`handle_datagram`](Self::handle_datagram),
    /// in order. Before the CHALLENGE (when the sender may be a classic
    /// one) every datagram goes through `handle_datagram`: the result is
    /// [`Received::Classic`] at the first classic datagram, and the caller
    /// hands the rest of the buffer, from [`Segments::classic_at`], to the classic
    /// receiver.
    pub fn handle_segments(&mut self, now: Instant, buf: &[u8], stride: usize, sink: &mut dyn Sink) -> Segments {
        let stride = if stride == 0 { buf.len().max(1) } else { stride };
        let mut run = Run::default();
        for (i, d) in buf.chunks(stride).enumerate() {
            if self.state != State::Receiving {
                self.flush_run(now, &mut run, sink);
                if self.handle_datagram(now, d, sink) == Received::Classic {
                    return Segments { classic_at: Some(i * stride) };
                }
                continue;
            }
            match Frame::decode(d) {
                Ok(Frame::Data { pn, offset, payload }) => {
                    if !run.continues(pn, offset) {
                        self.flush_run(now, &mut run, sink);
                        run.pn = pn;
                        run.offset = offset;
                    }
                    run.end = offset + payload.len() as u64;
                    run.parts.push(payload);
                }
                Ok(_) => {
                    self.flush_run(now, &mut run, sink);
                    self.handle_datagram(now, d, sink);
                }
                Err(_) => {} // corrupt or unknown: dropped, as `handle_datagram` would
            }
        }
        self.flush_run(now, &mut run, sink);
        Segments { classic_at: None }
    }

    fn flush_run<'a>(&mut self, now: Instant, run: &mut Run<'a>, sink: &mut dyn Sink) {
        if !run.parts.is_empty() {
            self.on_data(now, run.pn, run.offset, &run.parts, sink);
            run.parts.clear();
        }
    }

    /// A run of DATA: `parts` are the payloads of packets `pn`, `pn + 1`,
    /// ... at contiguous offsets from `offset` (one datagram: one part).
    fn on_data(&mut self, now: Instant, pn: u64, offset: u64, parts: &[&[u8]], sink: &mut dyn Sink) {
        if self.state != State::Receiving {
            return;
        }
        self.heard(now);
        self.opening.on_data(now);
        self.timers.stop(RecvTimer::Retry);
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let end = offset + len;
        if end > self.size || end > self.max_data() {
            if parts.len() > 1 {
                // Part of the run may still fit: datagram by datagram.
                let mut at = offset;
                for (i, p) in parts.iter().enumerate() {
                    self.on_data(now, pn + i as u64, at, std::slice::from_ref(p), sink);
                    at += p.len() as u64;
                }
            }
            return; // beyond the file or the flow-control limit: drop
        }
        let count = parts.len() as u64;
        let in_order = self.acks.on_packets(now, pn, pn + count.saturating_sub(1));
        let rtt = self.opening.rtt_guess();
        if let Err(e) = self.delivery.deliver(now, offset, parts, sink, rtt, &mut self.stats) {
            self.fail(e);
            return;
        }
        let complete = self.delivery.holds(0..self.size);
        let due = self.acks.ack_due(now, count, in_order, complete, self.timers.get(RecvTimer::Ack));
        self.timers.set_or_stop(RecvTimer::Ack, due);
    }

    /// When [`Receiver::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.aborts_due > 0 {
            return Some(self.last_heard()); // due now
        }
        if self.ended() {
            return None;
        }
        self.timers.next_timeout()
    }

    /// Timers expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended() {
            return;
        }
        for timer in RecvTimer::ALL {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            match timer {
                RecvTimer::Linger => {
                    if self.mismatch {
                        self.state = State::Failed;
                        self.error.get_or_insert(RecvError::HashMismatch);
                    } else {
                        self.state = State::Done;
                    }
                    return;
                }
                RecvTimer::Idle => {
                    self.fail(RecvError::Timeout(self.cfg.idle_timeout));
                    return;
                }
                RecvTimer::Retry => {
                    self.timers.stop(RecvTimer::Retry);
                    let hello = self.state == State::Hello;
                    let start = self.state == State::Receiving && !self.acks.any_received();
                    self.opening.on_retry(hello, start);
                }
                RecvTimer::Ack => {} // the ACK goes in poll_transmit
            }
        }
    }

    /// Writes the next datagram to send into `out`; `false` when there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.ended() {
            let Some((reason, text)) = self.abort.as_ref().filter(|_| self.aborts_due > 0) else { return false };
            Frame::Abort { cookie: self.cookie, reason: *reason, text }.encode(out);
            self.aborts_due -= 1;
            return true;
        }
        if let Some(retry) = self.opening.poll_hello(now) {
            *out = super::encode_hello();
            self.timers.set(RecvTimer::Retry, retry);
            return true;
        }
        if let Some(retry) = self.opening.poll_start(now) {
            Frame::Start { cookie: self.cookie, resume: self.resume.min(self.size), max_data: self.max_data() }
                .encode(out);
            self.timers.set(RecvTimer::Retry, retry);
            return true;
        }
        if let Some(ok) = self.done_ack_due.take() {
            Frame::DoneAck { ok }.encode(out);
            return true;
        }
        if self.timers.is_expired(RecvTimer::Ack, now) && matches!(self.state, State::Receiving) {
            self.timers.stop(RecvTimer::Ack);
            let (largest_pn, delay_us, ranges) = self.acks.on_ack_sent(now, self.delivery.received());
            Frame::Ack { largest_pn, delay_us, max_data: self.max_data(), ranges }.encode(out);
            self.stats.datagrams_sent += 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiving receiver of a `size`-byte file, and `now`.
    fn receiving(size: u64) -> (Receiver, Instant) {
        let t0 = Instant::now();
        let mut r = Receiver::new(Config::default(), 0, None, t0);
        let mut out = Vec::new();
        assert!(r.poll_transmit(t0, &mut out)); // hello
        Frame::Challenge { cookie: 1, size }.encode(&mut out);
        r.handle_datagram(t0, &out, &mut Vec::new());
        assert!(r.poll_transmit(t0, &mut out)); // START
        assert_eq!(r.state(), State::Receiving);
        (r, t0)
    }

    fn data(r: &mut Receiver, now: Instant, pn: u64, sink: &mut Vec<u8>) {
        let mut d = Vec::new();
        Frame::Data { pn, offset: pn * 100, payload: &[pn as u8; 100] }.encode(&mut d);
        r.handle_datagram(now, &d, sink);
    }

    fn acks(r: &mut Receiver, now: Instant) -> usize {
        let mut out = Vec::new();
        let mut n = 0;
        while r.poll_transmit(now, &mut out) {
            n += usize::from(matches!(Frame::decode(&out), Ok(Frame::Ack { .. })));
        }
        n
    }

    /// The receiver's DONE-ACK verdict on `file` (all received) and a DONE carrying `hash`.
    fn verdict(file: &[u8], hash: [u8; 32]) -> (Option<bool>, bool) {
        let (mut r, t0) = receiving(file.len() as u64);
        let mut sink = Vec::new();
        let mut d = Vec::new();
        Frame::Data { pn: 0, offset: 0, payload: file }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        Frame::Done { size: file.len() as u64, hash }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        let mut verdict = None;
        let mut out = Vec::new();
        while r.poll_transmit(t0, &mut out) {
            if let Ok(Frame::DoneAck { ok }) = Frame::decode(&out) {
                verdict = Some(ok);
            }
        }
        (verdict, r.is_verified())
    }

    #[test]
    fn done_must_carry_the_xxh3_digest_and_zero_padding() {
        let file: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 256) as u8).collect();
        let good = super::super::tests::xxh3_field(&file);
        assert_eq!(verdict(&file, good), (Some(true), true));
        // A wrong digest.
        let mut bad = good;
        bad[7] ^= 0x10;
        assert_eq!(verdict(&file, bad), (Some(false), false));
        // The right digest, but padding that is not zero.
        for at in [16, 31] {
            let mut bad = good;
            bad[at] = 1;
            assert_eq!(verdict(&file, bad), (Some(false), false), "padding byte {at}");
        }
        // Format 2's hash of the right file: not what a format-3 receiver asked for.
        assert_eq!(verdict(&file, *blake3::hash(&file).as_bytes()), (Some(false), false));
    }

    #[test]
    fn acks_follow_the_senders_ack_frequency() {
        let (mut r, t0) = receiving(100_000);
        let mut sink = Vec::new();
        // By default: every second datagram.
        data(&mut r, t0, 0, &mut sink);
        assert_eq!(acks(&mut r, t0), 0);
        data(&mut r, t0, 1, &mut sink);
        assert_eq!(acks(&mut r, t0), 1);
        let mut d = Vec::new();
        Frame::AckFrequency { seq: 2, threshold: 8, max_delay_us: 3000 }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        // An older request changes nothing.
        Frame::AckFrequency { seq: 1, threshold: 2, max_delay_us: 1000 }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        for pn in 2..9 {
            data(&mut r, t0, pn, &mut sink);
            assert_eq!(acks(&mut r, t0), 0, "pn {pn}");
        }
        data(&mut r, t0, 9, &mut sink);
        assert_eq!(acks(&mut r, t0), 1, "the 8th unacknowledged datagram");
        // Or the delay after the first unacknowledged one.
        data(&mut r, t0, 10, &mut sink);
        assert_eq!(acks(&mut r, t0 + Duration::from_micros(2999)), 0);
        assert_eq!(acks(&mut r, t0 + Duration::from_millis(3)), 1);
        // A gap (pn 11 lost) is acknowledged at once.
        data(&mut r, t0, 12, &mut sink);
        assert_eq!(acks(&mut r, t0), 1);
        // So is its late arrival (out of order again), and the file's end.
        data(&mut r, t0, 11, &mut sink);
        assert_eq!(acks(&mut r, t0), 1);
    }

    /// The file's bytes as the tests send them.
    fn file_bytes(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// A GRO buffer: the DATA datagrams `(pn, offset, len)` one after the
    /// other (all but the last of one size: the stride).
    fn gro(file: &[u8], datagrams: &[(u64, u64, usize)]) -> (Vec<u8>, usize) {
        let mut buf = Vec::new();
        let mut d = Vec::new();
        for &(pn, offset, len) in datagrams {
            let o = offset as usize;
            Frame::Data { pn, offset, payload: &file[o..o + len] }.encode(&mut d);
            buf.extend_from_slice(&d);
        }
        (buf, super::super::DATA_HEADER + datagrams[0].2 + super::super::CHECK_LEN)
    }

    /// What a receiver shows of itself after some input: its sink, figures and next datagrams.
    fn seen(r: &mut Receiver, now: Instant, sink: &[u8]) -> (Vec<u8>, u64, u64, u64, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let mut sent = Vec::new();
        while r.poll_transmit(now, &mut out) {
            sent.push(out.clone());
        }
        let s = r.stats();
        (sink.to_vec(), s.bytes_done, s.packets_lost, s.bytes_retransmitted, sent)
    }

    #[test]
    fn a_gro_buffer_is_one_unit_with_the_same_outcome_as_its_datagrams() {
        const L: usize = 1000;
        let file = file_bytes(10 * L + 300);
        // A gap (pn 3 lost), a duplicate (pn 4 twice), a short last datagram.
        let list = [(0, 0, L), (1, L as u64, L), (2, 2 * L as u64, L), (4, 4 * L as u64, L), (4, 4 * L as u64, L)];
        let mut list = list.to_vec();
        list.extend([(5, 5 * L as u64, L), (6, 6 * L as u64, 300)]);
        let (buf, stride) = gro(&file, &list);
        let (mut one, t0) = receiving(file.len() as u64);
        let (mut each, _) = receiving(file.len() as u64);
        let (mut sink1, mut sink2) = (Vec::new(), Vec::new());
        assert_eq!(one.handle_segments(t0, &buf, stride, &mut sink1), Segments { classic_at: None });
        for d in buf.chunks(stride) {
            each.handle_datagram(t0, d, &mut sink2);
        }
        let got = seen(&mut one, t0, &sink1);
        let want = seen(&mut each, t0, &sink2);
        assert!(got.0 == want.0, "the same bytes written");
        assert_eq!((got.1, got.2, got.3), (want.1, want.2, want.3), "bytes done, holes, late bytes");
        assert_eq!(got.4, want.4, "the same ACK");
        let (sink, done, lost, _, acks) = got;
        assert_eq!(done, 5 * L as u64 + 300);
        assert_eq!(lost, 1, "one hole opened");
        assert_eq!(&sink[..3 * L], &file[..3 * L]);
        assert!(sink[3 * L..4 * L].iter().all(|&b| b == 0), "the gap is not written");
        assert_eq!(&sink[4 * L..6 * L + 300], &file[4 * L..6 * L + 300]);
        // The gap is acknowledged at once (reordering), with both ranges.
        let Ok(Frame::Ack { ranges, .. }) = Frame::decode(&acks[0]) else { panic!("{acks:?}") };
        assert_eq!(ranges, [0..3 * L as u64, 4 * L as u64..6 * L as u64 + 300]);
    }

    #[test]
    fn a_corrupt_datagram_in_a_gro_buffer_is_dropped_alone() {
        const L: usize = 1000;
        let file = file_bytes(8 * L);
        let list: Vec<_> = (0..5).map(|pn| (pn, pn * L as u64, L)).collect();
        let (mut buf, stride) = gro(&file, &list);
        buf[2 * stride + 40] ^= 0x20; // pn 2's payload
        let (mut r, t0) = receiving(file.len() as u64);
        let mut sink = Vec::new();
        r.handle_segments(t0, &buf, stride, &mut sink);
        assert_eq!(r.stats().bytes_done, 4 * L as u64);
        assert_eq!(&sink[..2 * L], &file[..2 * L]);
        assert!(sink[2 * L..3 * L].iter().all(|&b| b == 0), "the corrupt payload is not written");
        assert_eq!(&sink[3 * L..5 * L], &file[3 * L..5 * L]);
        // The rest arrives (pn 2 again, as a retransmission), and the whole
        // file is written and acknowledged.
        let rest: Vec<_> =
            [(5, 2 * L as u64, L)].into_iter().chain((6..9).map(|pn| (pn, (pn - 1) * L as u64, L))).collect();
        let (buf, stride) = gro(&file, &rest);
        r.handle_segments(t0, &buf, stride, &mut sink);
        assert!(sink == file);
        assert_eq!(r.stats().bytes_done, file.len() as u64);
    }

    #[test]
    fn a_classic_answer_in_a_batch_is_handed_over_from_where_it_starts() {
        let t0 = Instant::now();
        let mut r = Receiver::new(Config::default(), 0, None, t0);
        let mut out = Vec::new();
        assert!(r.poll_transmit(t0, &mut out)); // hello
        let mut d = Vec::new();
        classic::Data { last: false, seq: 0, payload: &[7; 100] }.encode(&mut d);
        let buf = [d.clone(), d].concat();
        let b = r.handle_segments(t0, &buf, buf.len() / 2, &mut Vec::new());
        assert_eq!(b.classic_at, Some(0));
    }

    #[test]
    fn abort_sends_its_copies_with_the_cookie_then_the_receiver_is_finished() {
        let (mut r, t0) = receiving(100_000);
        let mut sink = Vec::new();
        data(&mut r, t0, 0, &mut sink);
        r.abort(AbortReason::Cancelled, "interrupted");
        assert!(!r.is_finished());
        let mut out = Vec::new();
        let mut got = Vec::new();
        while r.poll_transmit(t0, &mut out) {
            got.push(Frame::decode(&out).map(|f| format!("{f:?}")).unwrap());
        }
        let want = format!("{:?}", Frame::Abort { cookie: 1, reason: AbortReason::Cancelled, text: "interrupted" });
        assert_eq!(got, vec![want; ABORT_COPIES as usize]);
        assert!(r.is_finished() && r.poll_timeout().is_none());
        assert!(matches!(r.take_error(), Some(RecvError::Aborted(a)) if a.reason == AbortReason::Cancelled));
        // Later DATA is not written.
        data(&mut r, t0, 1, &mut sink);
        assert_eq!(sink.len(), 100);
    }

    #[test]
    fn abort_before_the_challenge_sends_nothing_and_after_verification_keeps_the_file() {
        let t0 = Instant::now();
        let mut r = Receiver::new(Config::default(), 0, None, t0);
        let mut out = Vec::new();
        assert!(r.poll_transmit(t0, &mut out)); // hello
        r.abort(AbortReason::Cancelled, "");
        assert!(!r.poll_transmit(t0, &mut out), "no cookie to echo yet");
        assert!(r.is_finished() && !r.is_verified());
        // A verified, lingering receiver stops lingering and is done.
        let file = file_bytes(500);
        let (mut r, t0) = receiving(file.len() as u64);
        let mut d = Vec::new();
        let mut sink = Vec::new();
        Frame::Data { pn: 0, offset: 0, payload: &file }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        Frame::Done { size: file.len() as u64, hash: super::super::tests::xxh3_field(&file) }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        assert_eq!(r.state(), State::Lingering);
        r.abort(AbortReason::Cancelled, "");
        assert_eq!(r.state(), State::Done);
        assert!(r.is_verified() && r.take_error().is_none());
    }

    #[test]
    fn an_abort_from_the_sender_ends_the_receiver_only_with_the_cookie() {
        let (mut r, t0) = receiving(100_000);
        let mut sink = Vec::new();
        data(&mut r, t0, 0, &mut sink);
        let mut d = Vec::new();
        Frame::Abort { cookie: 2, reason: AbortReason::FileChanged, text: "" }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        assert_eq!(r.state(), State::Receiving, "a wrong cookie is ignored");
        Frame::Abort { cookie: 1, reason: AbortReason::Other(77), text: "x\u{1b}" }.encode(&mut d);
        r.handle_datagram(t0, &d, &mut sink);
        assert!(r.is_finished());
        let mut out = Vec::new();
        assert!(!r.poll_transmit(t0, &mut out), "nothing in answer");
        let Some(RecvError::PeerAborted(a)) = r.take_error() else { panic!("expected PeerAborted") };
        assert_eq!(a.reason, AbortReason::Other(77));
        let shown = RecvError::PeerAborted(a).to_string();
        assert!(shown.starts_with("the server aborted the transfer: aborted (code 77): x"), "{shown}");
        assert!(!shown.contains('\u{1b}'));
    }
}
