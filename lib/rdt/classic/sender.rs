//! The classic go-back-N sender as a pure state machine (no sockets, no clock).
//!
//! Drive it like quinn-proto: feed datagrams from the receiver with
//! [`Sender::handle_datagram`], take datagrams to send with
//! [`Sender::poll_transmit`], sleep until [`Sender::poll_timeout`] and then call
//! [`Sender::handle_timeout`]; stop when [`Sender::is_finished`].
//!
//! Differences from the reference sender, as [protocol](crate::protocol) §5 asks:
//! - the retransmission timeout adapts (RFC 6298: SRTT/RTTVAR, Karn's rule,
//!   exponential backoff) between `MIN_RTO` and `MAX_RTO` instead of a fixed 2 s;
//! - ACKs are cumulative: any ACK inside the flight slides the window that far,
//!   and `DUP_ACKS` repeated ACKs resend from the gap without waiting for the timer;
//! - the window follows RFC 5681: slow start up to a threshold, then one more
//!   packet per window; a fast retransmit halves it, a timeout restarts it
//!   from one packet (the reference halves it on a timeout, so each of the
//!   reference receiver's 2 s sleeps made it resend half a window, and every
//!   resent datagram brings that receiver's next sleep closer);
//! - it ends even when the receiver is gone or the last ACK is lost: after
//!   `MAX_TIMEOUTS` consecutive timeouts without progress (or, once
//!   everything was sent, `FINAL_TIMEOUTS` and at least `FINAL_SILENCE`) it stops, and
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
pub(crate) const MIN_RTO: Duration = Duration::from_millis(200);
/// Highest retransmission timeout, after backoff.
pub(crate) const MAX_RTO: Duration = Duration::from_secs(3);
/// Highest retransmission timeout once every packet was sent: the sender
/// then only checks that the receiver is still there, and should notice
/// soon after [`FINAL_SILENCE`] that it is not.
pub(crate) const FINAL_MAX_RTO: Duration = Duration::from_secs(1);
/// Initial timeout before any RTT sample.
pub(crate) const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Consecutive timeouts, once every packet was sent, after which (and after
/// [`FINAL_SILENCE`]) the sender ends without the final ACK.
pub(crate) const FINAL_TIMEOUTS: u32 = 2;
/// Least silence, once every packet was sent, before the sender ends without
/// the final ACK: longer than the reference receiver's 2 s sleep, which can
/// fall on the very last packets.
pub(crate) const FINAL_SILENCE: Duration = Duration::from_secs(3);
/// Repeated ACKs that trigger a retransmission before the timer (like TCP's
/// fast retransmit). Fewer than TCP's 3: datagrams of one transfer rarely
/// reorder, and small windows after a loss would otherwise never see 3.
pub(crate) const DUP_ACKS: u32 = 2;
/// Consecutive timeouts without progress after which the sender gives up.
pub(crate) const MAX_TIMEOUTS: u32 = 6;

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
    /// first unacknowledged packet; give up after `MAX_TIMEOUTS`.
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
mod tests;
