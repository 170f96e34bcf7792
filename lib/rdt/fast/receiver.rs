//! The fast-mode receiver: a pure state machine. It sends the hello, echoes
//! the cookie, writes DATA out of order through a [`Sink`], acknowledges with
//! SACK ranges, and verifies the BLAKE3 hash before it calls the download
//! complete. Same call pattern as the sender: `handle`, `handle_timeout`,
//! `poll_transmit` until `false`, `poll_timeout`.

use std::ops::Range;
use std::time::{Duration, Instant};

use super::{Config, FileHash, Frame, HASH_RUN, MAX_ACK_RANGES, Sink, Stats};
use crate::rdt::classic;
use crate::rdt::rangeset::RangeSet;

/// The largest ACK threshold a sender may ask for.
const MAX_ACK_THRESHOLD: u32 = 256;
/// The longest ACK delay a sender may ask for.
const MAX_ACK_DELAY: Duration = Duration::from_millis(25);

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
    /// The file's BLAKE3 hash differs from the sender's.
    #[error("the received file's BLAKE3 hash does not match the sender's")]
    HashMismatch,
    /// The sender announced a size other than the one the caller expected.
    #[error("sender announced {got} bytes, expected {expected}")]
    Size {
        /// The size the caller expected (from `206`).
        expected: u64,
        /// The size in the CHALLENGE.
        got: u64,
    },
}

/// What [`Receiver::handle`] made of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A fast datagram (or noise), consumed.
    Fast,
    /// The first answer was classic go-back-N data: the peer is a classic
    /// sender that read the hello as window 98. Hand this datagram and the
    /// rest of the transfer to the classic receiver.
    Classic,
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
    received: RangeSet,
    largest_pn: Option<u64>,
    largest_at: Instant,
    unacked: u32,
    ack_at: Option<Instant>,
    hello_due: bool,
    hellos: u32,
    hello_sent: Option<Instant>,
    start_due: bool,
    done_ack_due: Option<bool>,
    retry_at: Option<Instant>,
    retry_every: Duration,
    rtt_guess: Duration,
    start_sent: Option<Instant>,
    linger_until: Option<Instant>,
    last_heard: Instant,
    stats: Stats,
    highest_end: u64,
    /// The final hash did not match.
    mismatch: bool,
    /// BLAKE3 of the file's contiguous prefix, fed in runs of [`HASH_RUN`]
    /// from the sink's memory as the prefix grows.
    hasher: FileHash,
    window_start: Instant,
    window_bytes: u64,
    /// Acknowledge once this many DATA datagrams are unacknowledged, or
    /// `ack_delay` after the first: as the sender's ACK-FREQUENCY asks.
    ack_threshold: u32,
    ack_delay: Duration,
    ack_freq_seq: Option<u64>,
}

impl Receiver {
    /// A receiver that already holds the first `resume` bytes (0 for a
    /// fresh download). `expected_size`, when known (from `206`), is checked
    /// against the sender's CHALLENGE.
    pub fn new(cfg: Config, resume: u64, expected_size: Option<u64>, now: Instant) -> Self {
        Self {
            state: State::Hello,
            error: None,
            expected_size,
            size: 0,
            resume,
            cookie: 0,
            received: RangeSet::new(),
            largest_pn: None,
            largest_at: now,
            unacked: 0,
            ack_at: None,
            hello_due: true,
            hellos: 0,
            hello_sent: None,
            start_due: false,
            done_ack_due: None,
            retry_at: None,
            retry_every: Duration::from_millis(250),
            rtt_guess: Duration::from_millis(100),
            start_sent: None,
            linger_until: None,
            last_heard: now,
            stats: Stats::default(),
            highest_end: 0,
            mismatch: false,
            hasher: FileHash::default(),
            window_start: now,
            window_bytes: 0,
            ack_threshold: 2,
            ack_delay: cfg.max_ack_delay,
            ack_freq_seq: None,
            cfg,
        }
    }

    /// Where the transfer stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the machine has nothing more to do (a lingering receiver's file is already verified).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
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
    /// hole late, `datagrams_sent` ACKs sent; `sender` the sender's own
    /// figures from its last STATS.
    pub fn stats(&self) -> Stats {
        Stats { srtt: self.rtt_guess, ..self.stats.clone() }
    }

    fn fail(&mut self, e: RecvError) {
        self.state = State::Failed;
        self.error = Some(e);
    }

    fn max_data(&self) -> u64 {
        self.received.prefix_end().saturating_add(self.cfg.receive_window).min(self.size)
    }

    /// A datagram from the sender.
    pub fn handle(&mut self, now: Instant, datagram: &[u8], sink: &mut dyn Sink) -> Handled {
        if self.is_finished() {
            return Handled::Fast;
        }
        if self.state == State::Hello && classic::Data::parse(datagram).is_some() {
            return Handled::Classic;
        }
        let Ok(frame) = Frame::decode(datagram) else { return Handled::Fast };
        match frame {
            Frame::Challenge { cookie, size } => {
                self.last_heard = now;
                if self.state == State::Hello {
                    if let Some(expected) = self.expected_size
                        && expected != size
                    {
                        self.fail(RecvError::Size { expected, got: size });
                        return Handled::Fast;
                    }
                    self.cookie = cookie;
                    self.size = size;
                    self.received.insert(0..self.resume.min(size));
                    self.highest_end = self.resume.min(size);
                    self.stats.bytes_done = self.resume.min(size);
                    self.state = State::Receiving;
                    self.retry_at = None;
                    if let Some(t) = self.hello_sent.filter(|_| self.hellos == 1) {
                        self.rtt_guess = now.saturating_duration_since(t);
                        self.retry_every = self.retry_every.max(self.rtt_guess * 2);
                    }
                }
                if self.state == State::Receiving && self.largest_pn.is_none() {
                    self.start_due = true;
                }
            }
            Frame::Data { pn, offset, payload } if self.state != State::Hello => {
                self.last_heard = now;
                if let Some(t) = self.start_sent.take() {
                    self.rtt_guess = now.saturating_duration_since(t);
                }
                self.retry_at = None;
                self.on_data(now, pn, offset, payload, sink);
            }
            Frame::Stats(s) if self.state != State::Hello => {
                // The sender is alive (retransmitting, or limited) even when
                // its DATA does not get through; an ACK in answer (at most one
                // per STATS, so about 10 a second) tells it we are too, so a
                // long streak of lost DATA does not end the transfer on
                // either side's idle timeout.
                self.last_heard = now;
                self.stats.sender = Some(s);
                if self.state == State::Receiving && self.largest_pn.is_some() {
                    self.ack_at = Some(now);
                }
            }
            Frame::AckFrequency { seq, threshold, max_delay_us } if self.state != State::Hello => {
                self.last_heard = now;
                if self.ack_freq_seq.is_none_or(|s| seq > s) {
                    self.ack_freq_seq = Some(seq);
                    // Bounded: a confused sender must not silence us for long.
                    self.ack_threshold = threshold.clamp(1, MAX_ACK_THRESHOLD);
                    self.ack_delay = Duration::from_micros(max_delay_us.into()).min(MAX_ACK_DELAY);
                }
            }
            Frame::Done { size, hash } if self.state != State::Hello => {
                self.last_heard = now;
                if self.state == State::Receiving && size == self.size && self.received.contains(0..size) {
                    match self.hash_to(sink, size).map(|()| self.hasher.finalize() == hash) {
                        Ok(true) => {
                            self.state = State::Lingering;
                            // Long enough to answer the sender's DONE three times
                            // over (its RTO starts at min_rto and doubles).
                            let linger = (self.rtt_guess * 8).max(self.cfg.min_rto * 7).min(self.cfg.idle_timeout);
                            self.linger_until = Some(now + linger);
                            self.done_ack_due = Some(true);
                        }
                        Ok(false) => {
                            self.mismatch = true;
                            self.done_ack_due = Some(false);
                            self.error = Some(RecvError::HashMismatch);
                            self.state = State::Lingering;
                            self.linger_until = Some(now);
                        }
                        Err(e) => self.fail(e),
                    }
                } else if self.state == State::Lingering {
                    self.done_ack_due = Some(!self.mismatch);
                } else {
                    // DONE while bytes are missing: our ACKs were lost; repeat one.
                    self.ack_at = Some(now);
                }
            }
            _ => {}
        }
        Handled::Fast
    }

    fn on_data(&mut self, now: Instant, pn: u64, offset: u64, payload: &[u8], sink: &mut dyn Sink) {
        if self.state != State::Receiving {
            return;
        }
        let end = offset + payload.len() as u64;
        if end > self.size || end > self.max_data() {
            return; // beyond the file or the flow-control limit: drop
        }
        let in_order = self.largest_pn.is_none_or(|l| pn == l + 1);
        if self.largest_pn.is_none_or(|l| pn > l) {
            self.largest_pn = Some(pn);
            self.largest_at = now;
        }
        if !self.received.contains(offset..end) {
            if let Err(source) = sink.write_at(offset, payload) {
                self.fail(RecvError::Io { offset, source });
                return;
            }
            let new = self.received.insert(offset..end);
            self.stats.bytes_done += new;
            if offset > self.highest_end {
                self.stats.packets_lost += 1; // a hole opened: loss or reordering
            } else if end <= self.highest_end {
                self.stats.bytes_retransmitted += new; // a hole filled late
            }
            self.highest_end = self.highest_end.max(end);
            // Hash as the contiguous prefix grows, in runs of HASH_RUN from
            // the sink's memory (read back only what it no longer holds).
            self.hasher.feed_next(offset, payload);
            let prefix = self.received.prefix_end();
            if prefix >= self.hasher.hashed_to() + HASH_RUN
                && let Err((offset, source)) = self.hasher.feed_runs_to(prefix, sink)
            {
                self.fail(RecvError::Io { offset, source });
                return;
            }
            // Delivered bytes per RTT: the sender's window as seen from here.
            self.window_bytes += new;
            if now.saturating_duration_since(self.window_start) >= self.rtt_guess {
                self.stats.cwnd = self.window_bytes;
                self.window_bytes = 0;
                self.window_start = now;
            }
        }
        self.unacked += 1;
        // At once on reordering or loss (a datagram not next in packet
        // number order) and at the end; else every `ack_threshold`
        // datagrams or `ack_delay` after the first unacknowledged one.
        if !in_order || self.unacked >= self.ack_threshold || self.received.contains(0..self.size) {
            self.ack_at = Some(now);
        } else if self.ack_at.is_none() {
            self.ack_at = Some(now + self.ack_delay);
        }
    }

    /// Feeds the file's bytes up to `end` (all held) to the hash.
    fn hash_to(&mut self, sink: &mut dyn Sink, end: u64) -> Result<(), RecvError> {
        self.hasher.feed_to(end, sink).map_err(|(offset, source)| RecvError::Io { offset, source })
    }

    /// When [`Receiver::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let mut t = self.last_heard + self.cfg.idle_timeout;
        let ack_at = self.ack_at.filter(|_| self.state == State::Receiving);
        for x in [ack_at, self.retry_at, self.linger_until].into_iter().flatten() {
            t = t.min(x);
        }
        Some(t)
    }

    /// Timers expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        if self.linger_until.is_some_and(|l| now >= l) {
            if self.mismatch {
                self.state = State::Failed;
                self.error.get_or_insert(RecvError::HashMismatch);
            } else {
                self.state = State::Done;
            }
            return;
        }
        if now >= self.last_heard + self.cfg.idle_timeout {
            self.fail(RecvError::Timeout(self.cfg.idle_timeout));
            return;
        }
        if self.retry_at.is_some_and(|r| now >= r) {
            self.retry_at = None;
            match self.state {
                State::Hello => self.hello_due = true,
                State::Receiving if self.largest_pn.is_none() => self.start_due = true,
                _ => {}
            }
            self.retry_every = (self.retry_every * 2).min(Duration::from_secs(2));
        }
    }

    /// Writes the next datagram to send into `out`; `false` when there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.hello_due {
            self.hello_due = false;
            self.hellos += 1;
            self.hello_sent = Some(now);
            *out = super::encode_hello();
            self.retry_at = Some(now + self.retry_every);
            return true;
        }
        if self.start_due {
            self.start_due = false;
            Frame::Start { cookie: self.cookie, resume: self.resume.min(self.size), max_data: self.max_data() }
                .encode(out);
            self.start_sent.get_or_insert(now);
            self.retry_at = Some(now + self.retry_every);
            return true;
        }
        if let Some(ok) = self.done_ack_due.take() {
            Frame::DoneAck { ok }.encode(out);
            return true;
        }
        if self.ack_at.is_some_and(|t| now >= t) && matches!(self.state, State::Receiving) {
            self.ack_at = None;
            self.unacked = 0;
            // The first range (the contiguous prefix) and the newest ones:
            // the sender declares unacknowledged packets below the largest
            // lost, so the newest ranges must never be left out (with many
            // gaps, the oldest were reported in earlier ACKs).
            let skip = self.received.len().saturating_sub(MAX_ACK_RANGES);
            let ranges: Vec<Range<u64>> =
                self.received.iter().take(1).chain(self.received.iter().skip(1 + skip)).take(MAX_ACK_RANGES).collect();
            let delay = now.saturating_duration_since(self.largest_at);
            Frame::Ack {
                largest_pn: self.largest_pn.unwrap_or(0),
                delay_us: u32::try_from(delay.as_micros()).unwrap_or(u32::MAX),
                max_data: self.max_data(),
                ranges,
            }
            .encode(out);
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
        r.handle(t0, &out, &mut Vec::new());
        assert!(r.poll_transmit(t0, &mut out)); // START
        assert_eq!(r.state(), State::Receiving);
        (r, t0)
    }

    fn data(r: &mut Receiver, now: Instant, pn: u64, sink: &mut Vec<u8>) {
        let mut d = Vec::new();
        Frame::Data { pn, offset: pn * 100, payload: &[pn as u8; 100] }.encode(&mut d);
        r.handle(now, &d, sink);
    }

    fn acks(r: &mut Receiver, now: Instant) -> usize {
        let mut out = Vec::new();
        let mut n = 0;
        while r.poll_transmit(now, &mut out) {
            n += usize::from(matches!(Frame::decode(&out), Ok(Frame::Ack { .. })));
        }
        n
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
        r.handle(t0, &d, &mut sink);
        // An older request changes nothing.
        Frame::AckFrequency { seq: 1, threshold: 2, max_delay_us: 1000 }.encode(&mut d);
        r.handle(t0, &d, &mut sink);
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

    #[test]
    fn a_wild_ack_frequency_is_bounded() {
        let (mut r, t0) = receiving(1 << 30);
        let mut d = Vec::new();
        Frame::AckFrequency { seq: 1, threshold: u32::MAX, max_delay_us: u32::MAX }.encode(&mut d);
        r.handle(t0, &d, &mut Vec::new());
        assert_eq!((r.ack_threshold, r.ack_delay), (MAX_ACK_THRESHOLD, MAX_ACK_DELAY));
    }
}
