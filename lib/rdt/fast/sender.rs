//! The fast-mode sender: a pure state machine. Feed it datagrams with
//! [`Sender::handle_datagram`] and expiries with [`Sender::handle_timeout`]; take
//! datagrams from [`Sender::poll_transmit`] until it returns `false`, then
//! sleep until [`Sender::poll_timeout`]. `now` must never go backwards.
//!
//! # Layout
//! The sender holds the transfer's state (validating, sending, closing),
//! the file's progress and hash, and calls pure units that each keep one
//! part of the job and have their own tests, in the manner of quinn-proto:
//! - `fast/validation.rs`: the cookie and the anti-amplification budget
//!   before the receiver's address is validated;
//! - `fast/sent.rs`: packet numbers, the packets in flight, acknowledged
//!   and lost ranges, RTT samples, loss detection by packet and time
//!   threshold, delivery-rate samples;
//! - `fast/path.rs`: the path's state: the congestion controller
//!   (`crate::rdt::cc::Controller`, told of every packet acknowledged and
//!   lost), the RTT estimate, the pacer and `fast/mtu.rs` (the datagram
//!   size and path-MTU probing);
//! - `fast/pacer.rs`: the pacing policy (rate, bucket, when the next burst
//!   may leave) and its token bucket;
//! - `fast/control.rs`: when STATS and ACK-FREQUENCY go;
//! - `cc/hystart.rs`: HyStart++'s delay-increase exit from slow start;
//! - `fast/timer.rs`: the idle, pacing and loss timers;
//! - `fast/events.rs` and `fast/abort.rs`: the trace events and the ABORT
//!   copies to send.
//!
//! The transmit side (what leaves next) is in `sender/transmit.rs`.

use std::ops::Range;
use std::time::{Duration, Instant};

use super::abort::AbortCopies;
use super::control::{ControlSchedule, ack_threshold};
use super::events::EventLog;
use super::mtu::MtuDiscovery;
use super::path::PathData;
use super::sent::{Sent, SentPackets};
use super::timer::{Timer, TimerTable};
use super::validation::{AddressValidation, Validated};
use super::{
    Abort, AbortReason, Config, DATA_OVERHEAD, FileHash, Format, Frame, GSO_MAX_BYTES, HASH_RUN, SenderStats, Source,
    Stats,
};
use crate::rdt::cc::Controller;
use crate::rdt::cc::hystart::HyStart;

pub use super::events::Event;

/// Why a fast send failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Reading the file failed.
    #[error("reading the file at offset {offset}")]
    Read {
        /// Where in the file.
        offset: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The receiver went silent for the idle timeout.
    #[error("receiver silent for {0:?}")]
    Timeout(Duration),
    /// The receiver's hash of the file did not match.
    #[error("receiver reports the file hash does not match")]
    HashMismatch,
    /// The receiver aborted the transfer (its ABORT).
    #[error("the receiver aborted the transfer: {0}")]
    PeerAborted(Abort),
    /// This side aborted the transfer ([`Sender::abort`]).
    #[error("transfer aborted: {0}")]
    Aborted(Abort),
}

/// Where the transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// CHALLENGE sent, waiting for START.
    Validating,
    /// Sending data.
    Sending,
    /// Every byte acknowledged; DONE sent, waiting for DONE-ACK.
    Closing,
    /// Finished. `confirmed` is false when the DONE-ACK never came (all data was still acknowledged).
    Done {
        /// Whether the DONE-ACK came.
        confirmed: bool,
    },
    /// Failed; see [`Sender::take_error`].
    Failed,
}

/// What [`Sender::poll_batch`] wrote: one datagram, or several of one size
/// for one segmented (GSO) send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoBatch {
    /// Datagrams in the buffer.
    pub count: usize,
    /// With more than one: the size of each (the last may be shorter).
    pub segment: Option<usize>,
}

/// The sender's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendTimer {
    /// The receiver has been silent for the idle timeout.
    Idle,
    /// Pacing held DATA back until now.
    Pace,
    /// Nothing was acknowledged for an RTO: the CHALLENGE, DATA in flight
    /// or DONE go again.
    Loss,
}

impl SendTimer {
    /// Which expired timer [`Sender::handle_timeout`] looks at first.
    const ALL: [SendTimer; 3] = [SendTimer::Idle, SendTimer::Pace, SendTimer::Loss];
}

impl Timer for SendTimer {
    fn index(self) -> usize {
        self as usize
    }
}

/// The fast-mode sender.
#[derive(Debug)]
pub struct Sender {
    cfg: Config,
    size: u64,
    state: State,
    error: Option<SendError>,
    /// Congestion control, RTT, pacing and datagram size.
    path: PathData,
    /// The CHALLENGE's cookie and the anti-amplification budget.
    validation: AddressValidation,
    /// DATA in flight, loss detection, acknowledged and lost bytes.
    sent: SentPackets,
    next_offset: u64,
    max_data: u64,
    /// The whole-file hash (of the answered hello's format), fed in runs of [`HASH_RUN`] as new data goes out.
    hasher: FileHash,
    hash: Option<[u8; 32]>,
    done_due: bool,
    timers: TimerTable<SendTimer, 3>,
    stats: Stats,
    /// Events recorded for traces, if asked for.
    events: EventLog,
    resumed_from: u64,
    hystart: HyStart,
    /// When STATS and ACK-FREQUENCY go.
    control: ControlSchedule,
    /// The datagram last written may lead a GSO batch: DATA, not a probe.
    batchable: bool,
    /// Copies of our ABORT still to send.
    aborts: AbortCopies,
}

impl Sender {
    /// A sender for a file of `size` bytes, answering the fast `hello` (see
    /// [`super::is_fast_hello`]) received at `now` in its format: DONE
    /// carries that format's hash (a `hello` of no known format, which a
    /// driver should not pass, gets [`Format::LATEST`]).
    pub fn new(cfg: Config, size: u64, hello: &[u8], now: Instant) -> Self {
        let format = Format::of_hello(hello).unwrap_or(Format::LATEST);
        let cookie = splitmix(cfg.seed ^ size.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15);
        let mut timers = TimerTable::default();
        timers.set(SendTimer::Idle, now + cfg.idle_timeout);
        Self {
            path: PathData::new(&cfg, now),
            size,
            state: State::Validating,
            error: None,
            validation: AddressValidation::new(cookie, hello.len()),
            sent: SentPackets::new(size, now),
            next_offset: 0,
            max_data: 0,
            hasher: FileHash::new(format.hash_algorithm()),
            hash: None,
            done_due: false,
            timers,
            stats: Stats::default(),
            events: EventLog::default(),
            resumed_from: 0,
            hystart: HyStart::default(),
            control: ControlSchedule::default(),
            batchable: false,
            aborts: AbortCopies::default(),
            cfg,
        }
    }

    /// Starts recording [`Event`]s (off by default: they cost a little per datagram).
    pub fn record_events(&mut self) {
        self.events.record();
    }

    /// The oldest recorded event not yet taken.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    fn event(&mut self, e: impl FnOnce() -> Event) {
        self.events.push(e);
    }

    fn cwnd_event(&mut self) {
        let cc = &self.path.cc;
        self.events.cwnd(cc.window(), || cc.in_slow_start());
    }

    /// Where the transfer stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the machine has nothing more to do (an aborting one has
    /// sent its ABORTs).
    pub fn is_finished(&self) -> bool {
        self.ended() && !self.aborts.is_due()
    }

    /// Whether the transfer is over (ABORTs may still be due).
    fn ended(&self) -> bool {
        matches!(self.state, State::Done { .. } | State::Failed)
    }

    /// Ends the transfer now for `reason`: `ABORT_COPIES` ABORTs carrying
    /// `text` (cut to `MAX_ABORT_TEXT` bytes) go in
    /// the next [`poll_transmit`](Self::poll_transmit) calls, then the
    /// machine is finished, failed with [`SendError::Aborted`]. Nothing is
    /// sent beyond the anti-amplification budget before validation. A
    /// finished transfer stays as it ended.
    pub fn abort(&mut self, reason: AbortReason, text: &str) {
        if self.ended() {
            return;
        }
        let text = super::abort_text(text).to_owned();
        self.fail(SendError::Aborted(Abort { reason, text: text.clone() }));
        self.aborts.start(reason, text);
    }

    /// Takes the error of a failed transfer.
    pub fn take_error(&mut self) -> Option<SendError> {
        self.error.take()
    }

    /// Live figures.
    pub fn stats(&self) -> Stats {
        Stats { cwnd: self.path.cc.window(), srtt: self.path.rtt.srtt(), ..self.stats.clone() }
    }

    /// The figures a STATS datagram carries to the receiver.
    pub fn sender_stats(&self) -> SenderStats {
        SenderStats {
            cwnd: self.path.cc.window(),
            srtt: self.path.rtt.srtt(),
            pacing_rate: self.path.pacing().rate() as u64,
            packets_lost: self.stats.packets_lost,
            bytes_retransmitted: self.stats.bytes_retransmitted,
            cc: self.cfg.cc.to_string(),
        }
    }

    /// File bytes per DATA datagram now (raised by path-MTU probes).
    pub fn payload(&self) -> u64 {
        self.path.mtu.payload()
    }

    /// Size of a full DATA datagram now: the configured size, or the larger
    /// one path-MTU probing found.
    pub fn max_datagram(&self) -> usize {
        self.path.mtu.payload() as usize + DATA_OVERHEAD
    }

    /// The file size.
    #[cfg(test)]
    pub(crate) fn file_size(&self) -> u64 {
        self.size
    }

    /// Bytes the receiver already had when it started (its resume offset).
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    fn fail(&mut self, e: SendError) {
        self.state = State::Failed;
        self.error = Some(e);
        self.timers.stop(SendTimer::Loss);
    }

    /// A datagram from the peer.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if self.ended() {
            return;
        }
        if !self.validation.is_validated() {
            let hello = super::is_fast_hello(datagram);
            self.validation.on_received(datagram.len(), hello);
            if hello {
                return;
            }
        }
        let Ok(frame) = Frame::decode(datagram) else { return };
        match frame {
            Frame::Start { cookie, resume, max_data } => {
                let Some(validated) = self.validation.on_start(now, cookie) else { return };
                self.heard(now);
                if let Validated::Now { rtt } = validated {
                    if let Some(rtt) = rtt {
                        self.path.rtt.sample(rtt);
                        self.path.cc.on_handshake_rtt(rtt);
                    }
                    self.state = State::Sending;
                    let resume = resume.min(self.size);
                    self.resumed_from = resume;
                    self.sent.acked_before_start(resume);
                    self.next_offset = resume;
                    self.max_data = max_data.min(self.size);
                    self.stats.bytes_done = resume;
                    self.check_complete();
                } else if self.state == State::Sending && self.sent.largest_acked().is_none() {
                    // A repeated START: the receiver has had no DATA yet, so
                    // everything in flight is lost; resend without waiting for the RTO.
                    let srtt = self.path.rtt.srtt();
                    let Self { sent, path: PathData { cc, mtu, .. }, stats, events, .. } = self;
                    sent.lose_older_than(now, srtt, |s| packet_lost(now, s, cc.as_mut(), mtu, stats, events));
                }
            }
            Frame::Ack { largest_pn, delay_us, max_data, ranges } if self.validation.is_validated() => {
                self.heard(now);
                self.on_ack(now, largest_pn, Duration::from_micros(delay_us.into()), max_data, &ranges);
            }
            Frame::DoneAck { ok } if self.validation.is_validated() => {
                if ok {
                    self.state = State::Done { confirmed: true };
                    self.timers.stop(SendTimer::Loss);
                } else {
                    self.fail(SendError::HashMismatch);
                }
            }
            // Only from a receiver that saw the CHALLENGE (validated or not).
            Frame::Abort { cookie, reason, text } if cookie == self.validation.cookie() => {
                self.fail(SendError::PeerAborted(Abort { reason, text: text.to_owned() }));
            }
            _ => {}
        }
    }

    fn on_ack(&mut self, now: Instant, largest_pn: u64, delay: Duration, max_data: u64, ranges: &[Range<u64>]) {
        self.max_data = self.max_data.max(max_data.min(self.size));
        // RTT sample from the largest packet number, if it is newly acknowledged.
        if let Some(sample) = self.sent.on_ack_largest(now, largest_pn, delay) {
            self.path.rtt.sample(sample);
            self.hystart(largest_pn, sample);
        }
        let srtt = self.path.rtt.srtt();
        self.path.cc.on_unsent(self.size.saturating_sub(self.next_offset));
        let Self { sent, path: PathData { cc, mtu, rtt, .. }, stats, events, .. } = self;
        let progress = sent.on_ack_ranges(now, ranges, |a| {
            // Grow the window only while it limits the sender (RFC 7661):
            // not when flow control or the file's end does.
            let cwnd_limited = 2 * a.prior_in_flight >= cc.window();
            cc.on_delivery(now, &a.rate);
            if cwnd_limited {
                cc.on_ack(now, a.sent.time, a.sent.len, srtt);
            }
            if a.sent.probe {
                // The path carries this size.
                mtu.on_probe_acked(a.sent.len, cc.window());
                events.push(|| Event::Mtu { payload: a.sent.len, ok: true });
            }
        });
        stats.bytes_done = sent.acked_bytes();
        sent.detect_lost(now, largest_pn, rtt, |s| packet_lost(now, s, cc.as_mut(), mtu, stats, events));
        if progress || self.sent.is_empty() {
            self.rearm(now);
        }
        if self.events.is_recording() {
            let (acked, cwnd, srtt_us, in_flight) = (
                self.stats.bytes_done,
                self.path.cc.window(),
                self.path.rtt.srtt().as_micros() as u64,
                self.sent.bytes_in_flight(),
            );
            self.event(|| Event::Ack { acked, cwnd, srtt_us, in_flight });
            self.cwnd_event();
        }
        self.check_complete();
    }

    /// HyStart++ (see [`HyStart`]): leaves slow start when the RTT climbs.
    fn hystart(&mut self, largest_pn: u64, sample: Duration) {
        if self.hystart.on_rtt_sample(largest_pn, self.sent.next_pn(), sample, self.path.cc.in_slow_start()) {
            self.path.cc.exit_slow_start();
            self.cwnd_event();
        }
    }

    /// The RTO, backed off but capped at a quarter of the idle timeout so a
    /// few losses in a row never look like a dead peer to either side.
    fn rto(&self) -> Duration {
        self.path.rtt.rto().min(self.cfg.idle_timeout / 4)
    }

    fn rearm(&mut self, now: Instant) {
        let idle = self.sent.is_empty() && !matches!(self.state, State::Closing | State::Validating);
        self.timers.set_or_stop(SendTimer::Loss, (!idle).then(|| now + self.rto()));
    }

    fn check_complete(&mut self) {
        if self.state == State::Sending && self.sent.all_acked() {
            self.state = State::Closing;
            self.done_due = true;
        }
    }

    /// When [`Sender::handle_timeout`] should next be called (timers and pacing).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.aborts.is_due() {
            return Some(self.last_heard()); // due now
        }
        if self.ended() {
            return None;
        }
        self.timers.next_timeout()
    }

    /// The receiver was heard from at `now`: the idle timeout starts again.
    fn heard(&mut self, now: Instant) {
        self.timers.set(SendTimer::Idle, now + self.cfg.idle_timeout);
    }

    /// When the receiver was last heard from.
    fn last_heard(&self) -> Instant {
        self.timers.get(SendTimer::Idle).expect("the idle timer runs from the start") - self.cfg.idle_timeout
    }

    /// Timers expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended() {
            return;
        }
        for timer in SendTimer::ALL {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            match timer {
                SendTimer::Idle => {
                    if self.state == State::Closing {
                        self.state = State::Done { confirmed: false };
                        self.timers.stop(SendTimer::Loss);
                    } else {
                        self.fail(SendError::Timeout(self.cfg.idle_timeout));
                    }
                    return;
                }
                SendTimer::Pace => self.timers.stop(SendTimer::Pace),
                SendTimer::Loss => self.on_loss_timeout(now),
            }
        }
    }

    /// The loss timer expired: back off the RTO and send again what is
    /// unacknowledged (the CHALLENGE, DATA in flight or DONE).
    fn on_loss_timeout(&mut self, now: Instant) {
        self.stats.rtos += 1;
        self.path.rtt.back_off();
        match self.state {
            State::Validating => self.validation.on_timeout(),
            State::Closing => self.done_due = true,
            _ => {
                let Self { sent, path: PathData { cc, mtu, .. }, stats, events, .. } = self;
                sent.lose_all(|s| packet_lost(now, s, cc.as_mut(), mtu, stats, events));
                self.path.cc.on_rto(now);
                let rto_us = self.rto().as_micros() as u64;
                self.event(|| Event::Rto { rto_us });
                self.cwnd_event();
            }
        }
        self.timers.set(SendTimer::Loss, now + self.rto());
    }

    fn note_sent(&mut self, len: usize) {
        self.validation.on_sent(len);
        self.stats.datagrams_sent += 1;
    }
}

/// What the loss of `s` (declared at `now`, already out of the flight)
/// does beyond its tracking: an event, the count, and either the end of
/// path-MTU probing (a lost probe says nothing about congestion) or a
/// congestion signal.
fn packet_lost(
    now: Instant,
    s: &Sent,
    cc: &mut dyn Controller,
    mtu: &mut MtuDiscovery,
    stats: &mut Stats,
    events: &mut EventLog,
) {
    events.push(|| Event::Loss { pn: s.pn, offset: s.offset, len: s.len });
    stats.packets_lost += 1;
    if s.probe {
        mtu.on_probe_lost();
        events.push(|| Event::Mtu { payload: s.len, ok: false });
    } else {
        cc.on_loss(now, s.time);
    }
}

/// SplitMix64, for the cookie.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

mod transmit;

#[cfg(test)]
// An ACK's ranges are a vector; one range is the common case here.
#[allow(clippy::single_range_in_vec_init)]
mod tests;
