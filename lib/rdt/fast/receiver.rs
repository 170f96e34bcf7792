//! The fast-mode receiver: a pure state machine. It sends the hello, echoes
//! the cookie, writes DATA out of order through a [`Sink`], acknowledges with
//! SACK ranges, and verifies the whole-file hash (XXH3-128: it offers
//! [`Format::LATEST`](super::Format::LATEST)) before it calls the download
//! complete. Same call pattern as the sender: `handle_datagram`, `handle_timeout`,
//! `poll_transmit` until `false`, `poll_timeout`.
//!
//! # Layout
//! The receiver holds the transfer's state (hello, receiving, lingering)
//! and calls units with their own tests, as the sender does:
//! - `fast/retry.rs`: the hello and START, their retries and the RTT
//!   guessed from them;
//! - `fast/delivery.rs`: the bytes held, their writes, the prefix hash and
//!   the delivery figures;
//! - `fast/acks.rs`: what is unacknowledged, the sender's ACK-FREQUENCY,
//!   when the next ACK goes and its ranges;
//! - `fast/timer.rs`: the linger, idle, retry and ACK timers;
//! - `fast/abort.rs`: the ABORT copies to send.

use std::time::{Duration, Instant};

use super::abort::AbortCopies;
use super::acks::PendingAcks;
use super::delivery::Delivery;
use super::retry::HelloRetry;
use super::timer::{Timer, TimerTable};
use super::{Abort, AbortReason, Config, Frame, Sink, Stats};
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
    /// Copies of our ABORT still to send.
    aborts: AbortCopies,
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
            opening: HelloRetry::new(cfg.rtt_hint),
            delivery: Delivery::new(now),
            acks: PendingAcks::new(cfg.max_ack_delay, now),
            timers,
            done_ack_due: None,
            mismatch: false,
            stats: Stats::default(),
            aborts: AbortCopies::default(),
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
        self.ended() && !self.aborts.is_due()
    }

    /// Whether the transfer is over (ABORTs may still be due).
    fn ended(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// Ends the transfer now for `reason`: once the CHALLENGE came (the
    /// ABORT must echo its cookie), `ABORT_COPIES` ABORTs carrying `text`
    /// (cut to `MAX_ABORT_TEXT` bytes) go in the
    /// next [`poll_transmit`](Self::poll_transmit) calls; then the machine
    /// is finished, failed with [`RecvError::Aborted`]. A lingering receiver
    /// (its file verified) just stops lingering, done; a finished one stays
    /// as it ended.
    pub fn abort(&mut self, reason: AbortReason, text: &str) {
        match self.state {
            State::Done | State::Failed => {}
            State::Lingering => {
                self.timers.stop(RecvTimer::Linger);
                self.end_linger();
            }
            State::Hello | State::Receiving => {
                let text = super::abort_text(text).to_owned();
                if self.state == State::Receiving {
                    self.aborts.start(reason, text.clone());
                }
                self.opening.cancel();
                self.fail(RecvError::Aborted(Abort { reason, text }));
            }
        }
    }

    /// The linger ends: done, or failed if the file's hash did not match.
    fn end_linger(&mut self) {
        if self.mismatch {
            self.state = State::Failed;
            self.error.get_or_insert(RecvError::HashMismatch);
        } else {
            self.state = State::Done;
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
        if self.aborts.is_due() {
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
                    self.end_linger();
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
            if !self.aborts.encode_next(self.cookie, out) {
                return false;
            }
            self.aborts.on_sent();
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
mod tests;
