//! The fast-mode sender: a pure state machine. Feed it datagrams with
//! [`Sender::handle`] and expiries with [`Sender::handle_timeout`]; take
//! datagrams from [`Sender::poll_transmit`] until it returns `false`, then
//! sleep until [`Sender::poll_timeout`]. `now` must never go backwards.
//!
//! # Layout
//! The sender holds the transfer's state (validating, sending, closing),
//! the file's progress and hash, timers and events, and calls pure units
//! that each keep one part of the job and have their own tests, in the
//! manner of quinn-proto:
//! - `fast/validation.rs`: the cookie and the anti-amplification budget
//!   before the receiver's address is validated;
//! - `fast/sent.rs`: packet numbers, the packets in flight, acknowledged
//!   and lost ranges, RTT samples, loss detection by packet and time
//!   threshold, delivery-rate samples;
//! - `fast/mtu.rs`: the datagram size and path-MTU probing;
//! - `fast/control.rs`: when STATS and ACK-FREQUENCY go;
//! - `cc/hystart.rs`: HyStart++'s delay-increase exit from slow start;
//! - `fast/pacer.rs`: the pacing token bucket;
//! - the congestion controller ([`crate::rdt::cc::Controller`]), told of
//!   every packet acknowledged and lost.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use super::control::ControlSchedule;
use super::mtu::MtuDiscovery;
use super::pacer::Pacer;
use super::sent::{Sent, SentPackets};
use super::validation::{AddressValidation, Validated};
use super::{
    ABORT_COPIES, Abort, AbortReason, Config, DATA_OVERHEAD, FileHash, Format, Frame, GSO_MAX_BYTES, HASH_RUN,
    SenderStats, Source, Stats, ack_threshold,
};
use crate::rdt::cc::Controller;
use crate::rdt::cc::hystart::HyStart;
use crate::rdt::rtt::RttEstimator;

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

/// Something the sender did, for traces (`--trace`) and plots. Recorded
/// only after [`Sender::record_events`]; taken with [`Sender::poll_event`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// A DATA datagram left.
    Send {
        /// Its packet number.
        pn: u64,
        /// Offset of its bytes in the file.
        offset: u64,
        /// Bytes of file it carries.
        len: u64,
        /// Whether those bytes were sent before.
        retransmission: bool,
    },
    /// An ACK arrived: bytes acknowledged so far, window and RTT after it.
    Ack {
        /// File bytes acknowledged so far.
        acked: u64,
        /// Congestion window, bytes.
        cwnd: u64,
        /// Smoothed RTT, microseconds.
        srtt_us: u64,
        /// Bytes in flight.
        in_flight: u64,
    },
    /// A packet was declared lost (its bytes will be sent again).
    Loss {
        /// Its packet number.
        pn: u64,
        /// Offset of its bytes in the file.
        offset: u64,
        /// Bytes of file it carried.
        len: u64,
    },
    /// The retransmission timer fired.
    Rto {
        /// The timeout that expired, microseconds.
        rto_us: u64,
    },
    /// The congestion window changed.
    Cwnd {
        /// The new window, bytes.
        cwnd: u64,
        /// Whether the controller is in slow start.
        slow_start: bool,
    },
    /// A path-MTU probe carrying `payload` file bytes was acknowledged (`ok`) or lost.
    Mtu {
        /// File bytes the probe carried.
        payload: u64,
        /// Acknowledged (true) or lost.
        ok: bool,
    },
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
pub struct Batch {
    /// Datagrams in the buffer.
    pub count: usize,
    /// With more than one: the size of each (the last may be shorter).
    pub segment: Option<usize>,
}

/// A paced sender waits for the bytes the pacing rate earns in this long
/// (up to a GSO batch): see [`Sender::pacing_delay`].
const BURST_SPAN: Duration = Duration::from_micros(500);

/// The fast-mode sender.
#[derive(Debug)]
pub struct Sender {
    cfg: Config,
    size: u64,
    state: State,
    error: Option<SendError>,
    cc: Box<dyn Controller>,
    rtt: RttEstimator,
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
    timer: Option<Instant>,
    pace_at: Option<Instant>,
    last_heard: Instant,
    /// Pacing: tokens in bytes, refilled at the pacing rate.
    pacer: Pacer,
    stats: Stats,
    events: Option<VecDeque<Event>>,
    last_cwnd: u64,
    resumed_from: u64,
    hystart: HyStart,
    /// File bytes per DATA now, raised by acknowledged path-MTU probes.
    mtu: MtuDiscovery,
    /// When STATS and ACK-FREQUENCY go.
    control: ControlSchedule,
    /// The datagram last written may lead a GSO batch: DATA, not a probe.
    batchable: bool,
    /// Copies of our ABORT still to send, and its reason and text.
    aborts_due: u32,
    abort: Option<(AbortReason, String)>,
}

impl Sender {
    /// A sender for a file of `size` bytes, answering the fast `hello` (see
    /// [`super::is_fast_hello`]) received at `now` in its format: DONE
    /// carries that format's hash (a `hello` of no known format, which a
    /// driver should not pass, gets [`Format::LATEST`]).
    pub fn new(cfg: Config, size: u64, hello: &[u8], now: Instant) -> Self {
        let mss = cfg.payload_len() as u64;
        let format = Format::of_hello(hello).unwrap_or(Format::LATEST);
        let cookie = splitmix(cfg.seed ^ size.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15);
        Self {
            cc: cfg.cc.build(mss),
            rtt: RttEstimator::new(cfg.min_rto),
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
            timer: None,
            pace_at: None,
            last_heard: now,
            pacer: Pacer::new((cfg.pacing_burst as f64) * mss as f64, now),
            stats: Stats::default(),
            events: None,
            last_cwnd: 0,
            resumed_from: 0,
            hystart: HyStart::default(),
            mtu: MtuDiscovery::new(&cfg),
            control: ControlSchedule::default(),
            batchable: false,
            aborts_due: 0,
            abort: None,
            cfg,
        }
    }

    /// Starts recording [`Event`]s (off by default: they cost a little per datagram).
    pub fn record_events(&mut self) {
        self.events.get_or_insert_with(VecDeque::new);
    }

    /// The oldest recorded event not yet taken.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.as_mut()?.pop_front()
    }

    fn event(&mut self, e: impl FnOnce() -> Event) {
        push_event(&mut self.events, e);
    }

    fn cwnd_event(&mut self) {
        let cwnd = self.cc.window();
        if self.events.is_some() && cwnd != self.last_cwnd {
            self.last_cwnd = cwnd;
            let slow_start = self.cc.in_slow_start();
            self.event(|| Event::Cwnd { cwnd, slow_start });
        }
    }

    /// Where the transfer stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the machine has nothing more to do (an aborting one has
    /// sent its ABORTs).
    pub fn is_finished(&self) -> bool {
        self.ended() && self.aborts_due == 0
    }

    /// Whether the transfer is over (ABORTs may still be due).
    fn ended(&self) -> bool {
        matches!(self.state, State::Done { .. } | State::Failed)
    }

    /// Ends the transfer now for `reason`: [`ABORT_COPIES`] ABORTs carrying
    /// `text` (cut to [`MAX_ABORT_TEXT`](super::MAX_ABORT_TEXT) bytes) go in
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
        self.abort = Some((reason, text));
        self.aborts_due = ABORT_COPIES;
    }

    /// Takes the error of a failed transfer.
    pub fn take_error(&mut self) -> Option<SendError> {
        self.error.take()
    }

    /// Live figures.
    pub fn stats(&self) -> Stats {
        Stats { cwnd: self.cc.window(), srtt: self.rtt.srtt(), ..self.stats.clone() }
    }

    /// The figures a STATS datagram carries to the receiver.
    pub fn sender_stats(&self) -> SenderStats {
        SenderStats {
            cwnd: self.cc.window(),
            srtt: self.rtt.srtt(),
            pacing_rate: self.pacing_rate() as u64,
            packets_lost: self.stats.packets_lost,
            bytes_retransmitted: self.stats.bytes_retransmitted,
            cc: self.cfg.cc.to_string(),
        }
    }

    /// File bytes per DATA datagram now (raised by path-MTU probes).
    pub fn payload(&self) -> u64 {
        self.mtu.payload()
    }

    /// Size of a full DATA datagram now: the configured size, or the larger
    /// one path-MTU probing found.
    pub fn max_datagram(&self) -> usize {
        self.mtu.payload() as usize + DATA_OVERHEAD
    }

    /// The file size.
    pub fn file_size(&self) -> u64 {
        self.size
    }

    /// Bytes the receiver already had when it started (its resume offset).
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    fn fail(&mut self, e: SendError) {
        self.state = State::Failed;
        self.error = Some(e);
        self.timer = None;
    }

    /// A datagram from the peer.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) {
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
                self.last_heard = now;
                if let Validated::Now { rtt } = validated {
                    if let Some(rtt) = rtt {
                        self.rtt.sample(rtt);
                        self.cc.on_handshake_rtt(rtt);
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
                    let srtt = self.rtt.srtt();
                    let Self { sent, cc, mtu, stats, events, .. } = self;
                    sent.lose_older_than(now, srtt, |s| packet_lost(now, s, cc.as_mut(), mtu, stats, events));
                }
            }
            Frame::Ack { largest_pn, delay_us, max_data, ranges } if self.validation.is_validated() => {
                self.last_heard = now;
                self.on_ack(now, largest_pn, Duration::from_micros(delay_us.into()), max_data, &ranges);
            }
            Frame::DoneAck { ok } if self.validation.is_validated() => {
                if ok {
                    self.state = State::Done { confirmed: true };
                    self.timer = None;
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
            self.rtt.sample(sample);
            self.hystart(largest_pn, sample);
        }
        let srtt = self.rtt.srtt();
        let Self { sent, cc, mtu, stats, events, rtt, .. } = self;
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
                push_event(events, || Event::Mtu { payload: a.sent.len, ok: true });
            }
        });
        stats.bytes_done = sent.acked_bytes();
        sent.detect_lost(now, largest_pn, rtt, |s| packet_lost(now, s, cc.as_mut(), mtu, stats, events));
        if progress || self.sent.is_empty() {
            self.rearm(now);
        }
        if self.events.is_some() {
            let (acked, cwnd, srtt_us, in_flight) = (
                self.stats.bytes_done,
                self.cc.window(),
                self.rtt.srtt().as_micros() as u64,
                self.sent.bytes_in_flight(),
            );
            self.event(|| Event::Ack { acked, cwnd, srtt_us, in_flight });
            self.cwnd_event();
        }
        self.check_complete();
    }

    /// HyStart++ (see [`HyStart`]): leaves slow start when the RTT climbs.
    fn hystart(&mut self, largest_pn: u64, sample: Duration) {
        if self.hystart.on_rtt_sample(largest_pn, self.sent.next_pn(), sample, self.cc.in_slow_start()) {
            self.cc.exit_slow_start();
            self.cwnd_event();
        }
    }

    /// The RTO, backed off but capped at a quarter of the idle timeout so a
    /// few losses in a row never look like a dead peer to either side.
    fn rto(&self) -> Duration {
        self.rtt.rto().min(self.cfg.idle_timeout / 4)
    }

    fn rearm(&mut self, now: Instant) {
        self.timer = if self.sent.is_empty() && !matches!(self.state, State::Closing | State::Validating) {
            None
        } else {
            Some(now + self.rto())
        };
    }

    fn check_complete(&mut self) {
        if self.state == State::Sending && self.sent.all_acked() {
            self.state = State::Closing;
            self.done_due = true;
        }
    }

    /// When [`Sender::handle_timeout`] should next be called (timers and pacing).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.aborts_due > 0 {
            return Some(self.last_heard); // due now
        }
        if self.ended() {
            return None;
        }
        let idle = self.last_heard + self.cfg.idle_timeout;
        let t = self.timer.map_or(idle, |t| t.min(idle));
        Some(self.pace_at.map_or(t, |p| p.min(t)))
    }

    /// Timers expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended() {
            return;
        }
        if now >= self.last_heard + self.cfg.idle_timeout {
            if self.state == State::Closing {
                self.state = State::Done { confirmed: false };
                self.timer = None;
            } else {
                self.fail(SendError::Timeout(self.cfg.idle_timeout));
            }
            return;
        }
        if self.pace_at.is_some_and(|p| now >= p) {
            self.pace_at = None;
        }
        let Some(t) = self.timer else { return };
        if now < t {
            return;
        }
        self.stats.rtos += 1;
        self.rtt.back_off();
        match self.state {
            State::Validating => self.validation.on_timeout(),
            State::Closing => self.done_due = true,
            _ => {
                let Self { sent, cc, mtu, stats, events, .. } = self;
                sent.lose_all(|s| packet_lost(now, s, cc.as_mut(), mtu, stats, events));
                self.cc.on_rto(now);
                let rto_us = self.rto().as_micros() as u64;
                self.event(|| Event::Rto { rto_us });
                self.cwnd_event();
            }
        }
        self.timer = Some(now + self.rto());
    }

    fn note_sent(&mut self, len: usize) {
        self.validation.on_sent(len);
        self.stats.datagrams_sent += 1;
    }

    /// The pacing horizon, if pacing holds data back: when the next burst
    /// may leave. A burst is a full GSO batch (or the bucket's size, if
    /// smaller), so a paced sender wakes once per batch, not per datagram.
    pub fn pacing_delay(&self, now: Instant) -> Option<Instant> {
        self.pacer.ready_at(now, self.burst_bytes(), self.pacing_rate())
    }

    fn pacing_rate(&self) -> f64 {
        if let Some(rate) = self.cc.pacing_rate() {
            return rate.max(self.mtu.payload() as f64);
        }
        let gain = if self.cc.in_slow_start() { 2.0 } else { 1.25 };
        let srtt = self.rtt.srtt().as_secs_f64().max(1e-5);
        gain * self.cc.window() as f64 / srtt
    }

    fn refill(&mut self, now: Instant) {
        // Bursts of `pacing_burst` datagrams, or 1 ms worth at the pacing
        // rate when that is more (fast paths: fewer wake-ups per second).
        // A controller that sets the rate (BBR) measures the rate it gets:
        // tokens lost to late wake-ups would lower its estimate round after
        // round, so its bucket holds 4 ms.
        self.pacer.refill(now, self.pacing_rate(), self.bucket_cap());
    }

    /// The pacing bucket's size in bytes (see [`Sender::refill`]).
    fn bucket_cap(&self) -> f64 {
        let span = if self.cc.pacing_rate().is_some() { 4e-3 } else { 1e-3 };
        let cap = ((self.cfg.pacing_burst as f64) * self.mtu.payload() as f64).max(self.pacing_rate() * span);
        cap.max(self.mtu.payload() as f64)
    }

    /// Bytes a paced sender waits for: what the pacing rate earns in
    /// [`BURST_SPAN`], between one datagram and one GSO batch of them (and
    /// at most the bucket). Fast paths wake once per batch; slow ones still
    /// pace datagram by datagram, so a small bottleneck queue is not hit
    /// with bursts.
    fn burst_bytes(&self) -> f64 {
        let per_batch = (GSO_MAX_BYTES as u64 / (self.mtu.payload() + DATA_OVERHEAD as u64)).max(1);
        let span = self.pacing_rate() * BURST_SPAN.as_secs_f64();
        span.min((per_batch * self.mtu.payload()) as f64).min(self.bucket_cap()).max(self.mtu.payload() as f64)
    }

    /// Writes the next datagram to send into `out`; `false` when there is
    /// nothing to send now (see [`Sender::poll_timeout`] and [`Sender::pacing_delay`]).
    pub fn poll_transmit(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>) -> bool {
        self.batchable = false;
        self.build(now, src, out)
    }

    /// Writes into `out` what may leave now in one send: a single
    /// datagram, or up to `max_segments` DATA datagrams of one size (the
    /// last may be shorter), at most [`GSO_MAX_BYTES`], for one segmented
    /// (GSO) send. Path-MTU probes and control datagrams always go alone.
    /// `None` when there is nothing to send now.
    pub fn poll_batch(
        &mut self,
        now: Instant,
        src: &mut dyn Source,
        out: &mut Vec<u8>,
        max_segments: usize,
    ) -> Option<Batch> {
        if !self.poll_transmit(now, src, out) {
            return None;
        }
        let segment = out.len();
        let mut count = 1;
        // More DATA of this size, built in place after the first, while no
        // control datagram is due (it goes in the next call).
        let payload = (segment - DATA_OVERHEAD) as u64;
        while self.batchable
            && count < max_segments
            && out.len() + segment <= GSO_MAX_BYTES
            && self.state == State::Sending
            && !self.control_due(now)
        {
            let before = out.len();
            if !self.poll_data(now, src, out, Some(payload)) {
                break;
            }
            count += 1;
            if out.len() - before < segment {
                break; // a short datagram ends the batch
            }
        }
        Some(Batch { count, segment: (count > 1).then_some(segment) })
    }

    /// Whether STATS or ACK-FREQUENCY should go before more DATA.
    fn control_due(&self, now: Instant) -> bool {
        self.control.due(now, self.validation.is_validated())
    }

    fn build(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::Validating => {
                if self.validation.challenge_due() {
                    Frame::Challenge { cookie: self.validation.cookie(), size: self.size }.encode(out);
                    if self.validation.may_send(out.len()) {
                        self.validation.on_challenge_sent(now);
                        self.note_sent(out.len());
                        self.timer = Some(now + self.rto());
                        return true;
                    }
                }
                false
            }
            State::Sending => {
                // STATS only once validated (so never within the
                // anti-amplification budget), at most every STATS_INTERVAL.
                if self.validation.is_validated() && self.control.stats_due(now) {
                    self.control.on_stats_sent(now);
                    Frame::Stats(self.sender_stats()).encode(out);
                    self.note_sent(out.len());
                    return true;
                }
                // ACK-FREQUENCY with each STATS while the threshold differs
                // from the receiver's default (or from what was last asked).
                let threshold = ack_threshold(self.cc.window(), self.mtu.payload());
                if let Some((seq, threshold)) = self.control.take_ack_frequency(threshold) {
                    let max_delay_us = u32::try_from(self.cfg.max_ack_delay.as_micros()).unwrap_or(u32::MAX);
                    Frame::AckFrequency { seq, threshold, max_delay_us }.encode(out);
                    self.note_sent(out.len());
                    return true;
                }
                self.poll_data(now, src, out, None)
            }
            State::Closing => {
                if !self.done_due {
                    return false;
                }
                if self.hash.is_none() {
                    if let Err((offset, source)) = self.hasher.feed_to(self.size, src) {
                        self.fail_read(src.abort_reason(), offset, source);
                        return false;
                    }
                    self.hash = Some(self.hasher.finalize());
                }
                let hash = self.hash.unwrap_or_default();
                Frame::Done { size: self.size, hash }.encode(out);
                self.done_due = false;
                self.note_sent(out.len());
                self.timer = Some(now + self.rto());
                true
            }
            State::Done { .. } | State::Failed => self.poll_abort(out),
        }
    }

    /// Writes one of the ABORTs due, if any (within the anti-amplification
    /// budget before validation).
    fn poll_abort(&mut self, out: &mut Vec<u8>) -> bool {
        let Some((reason, text)) = self.abort.as_ref().filter(|_| self.aborts_due > 0) else { return false };
        Frame::Abort { cookie: self.validation.cookie(), reason: *reason, text }.encode(out);
        if !self.validation.is_validated() && !self.validation.may_send(out.len()) {
            self.aborts_due = 0;
            return false;
        }
        self.aborts_due -= 1;
        self.note_sent(out.len());
        true
    }

    /// A read of the file failed: the transfer fails with the read error,
    /// and the receiver hears why at once (ABORT for `reason`, the
    /// source's verdict, with the error's text).
    fn fail_read(&mut self, reason: AbortReason, offset: u64, source: std::io::Error) {
        let full = source.to_string();
        let said = reason.to_string();
        let text = full.strip_prefix(said.as_str()).map_or(full.as_str(), |t| t.trim_start_matches(": "));
        let text = super::abort_text(text).to_owned();
        self.fail(SendError::Read { offset, source });
        self.abort = Some((reason, text));
        self.aborts_due = ABORT_COPIES;
    }

    /// Writes the next DATA datagram into `out` (cleared first) or, with
    /// `append` (a batch being built), after what `out` holds, carrying at
    /// most `append`'s file bytes and never a path-MTU probe.
    fn poll_data(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>, append: Option<u64>) -> bool {
        let mss = append.unwrap_or(self.mtu.payload()).min(self.mtu.payload());
        let in_flight = self.sent.bytes_in_flight();
        if in_flight + mss > self.cc.window() && in_flight > 0 {
            return false;
        }
        self.refill(now);
        if !self.pacer.allows(mss as f64) {
            self.pace_at = self.pacing_delay(now);
            return false;
        }
        self.pace_at = None;
        // Retransmissions first, skipping what was acknowledged meanwhile.
        let (range, retx) = match self.sent.next_retransmission(mss) {
            Some(r) => (r, true),
            None => {
                let len = if append.is_some() {
                    mss
                } else {
                    self.mtu.probe_payload(self.rtt.has_sample(), self.cc.window()).unwrap_or(mss)
                };
                let end = (self.next_offset + len).min(self.size).min(self.max_data);
                if end <= self.next_offset {
                    return false;
                }
                (self.next_offset..end, false)
            }
        };
        let probe = !retx && self.mtu.is_probe(range.end - range.start);
        if probe {
            self.mtu.on_probe_sent();
        }
        self.batchable = !probe;
        // The hash lags the new data by up to HASH_RUN and catches up
        // before the source is read further (so what it needs is still in
        // the source's memory): large runs, the hash's fast path.
        if !retx && self.hasher.hashed_to() + HASH_RUN <= range.start {
            let r = self.hasher.feed_runs_to(range.start, src);
            if let Err((offset, source)) = r {
                self.fail_read(src.abort_reason(), offset, source);
                return false;
            }
        }
        let len = (range.end - range.start) as usize;
        let pn = self.sent.next_pn();
        if append.is_none() {
            out.clear();
        }
        let at = out.len();
        let r = super::append_data_from(out, pn, range.start, len, src);
        if let Err(source) = r {
            self.fail_read(src.abort_reason(), range.start, source);
            return false;
        }
        if !retx {
            self.hasher.feed_next(range.start, &out[at + super::DATA_HEADER..at + super::DATA_HEADER + len]);
        }
        if !retx {
            self.next_offset = range.end;
        } else {
            self.stats.bytes_retransmitted += len as u64;
        }
        let app_limited = !self.sent.has_lost() && self.next_offset >= self.size.min(self.max_data);
        self.sent.on_sent(now, range.clone(), probe, retx, app_limited);
        self.pacer.spend(len as f64);
        self.stats.bytes_sent += len as u64;
        self.event(|| Event::Send { pn, offset: range.start, len: len as u64, retransmission: retx });
        self.note_sent(out.len() - at);
        if self.timer.is_none() {
            self.timer = Some(now + self.rto());
        }
        true
    }
}

/// Records `e` if events are recorded (see [`Sender::record_events`]).
fn push_event(events: &mut Option<VecDeque<Event>>, e: impl FnOnce() -> Event) {
    if let Some(q) = events.as_mut() {
        q.push_back(e());
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
    events: &mut Option<VecDeque<Event>>,
) {
    push_event(events, || Event::Loss { pn: s.pn, offset: s.offset, len: s.len });
    stats.packets_lost += 1;
    if s.probe {
        mtu.on_probe_lost();
        push_event(events, || Event::Mtu { payload: s.len, ok: false });
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

#[cfg(test)]
// An ACK's ranges are a vector; one range is the common case here.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::rdt::fast::{DATA_HEADER, encode_hello};
    use crate::rdt::rangeset::RangeSet;

    /// A sender of `file` past address validation, and `now`.
    fn validated(cfg: Config, file: &[u8]) -> (Sender, Instant) {
        validated_with(cfg, file, &encode_hello())
    }

    /// [`validated`], answering `hello`.
    fn validated_with(cfg: Config, file: &[u8], hello: &[u8]) -> (Sender, Instant) {
        let t0 = Instant::now();
        let mut s = Sender::new(cfg, file.len() as u64, hello, t0);
        let mut out = Vec::new();
        let mut src = file;
        assert!(s.poll_transmit(t0, &mut src, &mut out));
        let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&out) else { panic!("expected CHALLENGE") };
        Frame::Start { cookie, resume: 0, max_data: file.len() as u64 }.encode(&mut out);
        s.handle(t0, &out);
        assert_eq!(s.state(), State::Sending);
        (s, t0)
    }

    /// Every batch `poll_batch` yields at `now`, split into its datagrams.
    fn batches(s: &mut Sender, now: Instant, file: &[u8], max_segments: usize) -> Vec<(Batch, Vec<Vec<u8>>)> {
        let mut src = file;
        let mut out = Vec::new();
        let mut v = Vec::new();
        while let Some(b) = s.poll_batch(now, &mut src, &mut out, max_segments) {
            let parts = out.chunks(b.segment.unwrap_or(out.len())).map(<[u8]>::to_vec).collect::<Vec<_>>();
            assert_eq!(parts.len(), b.count);
            v.push((b, parts));
        }
        v
    }

    #[test]
    fn batches_hold_equal_size_data_and_control_datagrams_go_alone() {
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let mss = cfg.payload_len();
        // The window's worth, with a short last datagram at the file's end.
        let file: Vec<u8> = (0..mss * 5 + 100).map(|i| i as u8).collect();
        let (mut s, now) = validated(cfg, &file);
        let got = batches(&mut s, now, &file, 64);
        // STATS first, alone; then the data in one batch, the short one last.
        assert!(matches!(Frame::decode(&got[0].1[0]), Ok(Frame::Stats(_))));
        assert_eq!(got[0].0, Batch { count: 1, segment: None });
        let (b, parts) = &got[1];
        assert_eq!(*b, Batch { count: 6, segment: Some(1452) });
        let mut next = 0;
        for (i, p) in parts.iter().enumerate() {
            let Ok(Frame::Data { offset, payload, .. }) = Frame::decode(p) else { panic!("datagram {i} is not DATA") };
            assert_eq!(offset, next);
            assert_eq!(payload, &file[next as usize..next as usize + payload.len()]);
            next += payload.len() as u64;
        }
        assert_eq!(next, file.len() as u64);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn batches_respect_the_segment_and_byte_limits() {
        let cfg = Config { max_datagram: 1452, probe: false, pacing_burst: 1000, ..Config::default() };
        let file = vec![7u8; cfg.payload_len() * 8];
        let (mut s, now) = validated(cfg.clone(), &file);
        let got = batches(&mut s, now, &file, 3);
        assert!(got.iter().all(|(b, _)| b.count <= 3));
        assert!(got.iter().any(|(b, _)| b.count == 3));
        // One segment at a time: every datagram alone, without a segment size.
        let (mut s, now) = validated(cfg.clone(), &file);
        assert!(batches(&mut s, now, &file, 1).iter().all(|(b, _)| *b == Batch { count: 1, segment: None }));
        // 65 KB datagrams: one per send (two would exceed GSO_MAX_BYTES).
        let big = Config { max_datagram: 65_000, ..cfg };
        let file = vec![1u8; 65_000 * 3];
        let (mut s, now) = validated(big, &file);
        let got = batches(&mut s, now, &file, 64);
        assert!(got.iter().all(|(b, parts)| b.count == 1 && parts[0].len() <= GSO_MAX_BYTES));
        assert!(got.iter().filter(|(_, p)| matches!(Frame::decode(&p[0]), Ok(Frame::Data { .. }))).count() >= 2);
    }

    #[test]
    fn the_file_hash_is_fed_in_runs_and_matches_the_hellos_format() {
        // Bigger than a few HASH_RUNs, not a multiple of the payload.
        let file: Vec<u8> = (0..300_001u32).map(|i| (i % 251) as u8).collect();
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        // DONE carries the hash of the format the hello asked for.
        for (format, want) in
            [(Format::V3, super::super::tests::xxh3_field(&file)), (Format::V2, *blake3::hash(&file).as_bytes())]
        {
            let (mut s, mut now) = validated_with(cfg.clone(), &file, &format.hello());
            let mut src: &[u8] = &file;
            let mut out = Vec::new();
            let mut ranges = RangeSet::new();
            let mut done = None;
            for _ in 0..100_000 {
                while s.poll_transmit(now, &mut src, &mut out) {
                    match Frame::decode(&out) {
                        Ok(Frame::Data { offset, payload, .. }) => {
                            ranges.insert(offset..offset + payload.len() as u64);
                        }
                        Ok(Frame::Done { hash, .. }) => done = Some(hash),
                        _ => {}
                    }
                }
                if done.is_some() {
                    break;
                }
                // Acknowledge everything sent so far.
                let acked: Vec<Range<u64>> = ranges.iter().collect();
                let mut ack = Vec::new();
                let max_data = file.len() as u64;
                Frame::Ack { largest_pn: s.sent.next_pn().saturating_sub(1), delay_us: 0, max_data, ranges: acked }
                    .encode(&mut ack);
                now += Duration::from_millis(1);
                s.handle(now, &ack);
                s.handle_timeout(now);
                // The hash lags the data by less than a run (plus a datagram).
                assert!(
                    s.hasher.hashed_to() + HASH_RUN + DATA_HEADER as u64 + 2000 >= s.next_offset.min(file.len() as u64)
                );
            }
            assert_eq!(done, Some(want), "{format:?}");
        }
    }

    /// Every datagram the sender writes at `now`, one `poll_transmit` at a time.
    fn drain(s: &mut Sender, now: Instant, file: &[u8]) -> Vec<Vec<u8>> {
        let mut src = file;
        let mut out = Vec::new();
        let mut v = Vec::new();
        while s.poll_transmit(now, &mut src, &mut out) {
            v.push(out.clone());
        }
        v
    }

    /// The (pn, offset, len) of each DATA among `datagrams`.
    fn data(datagrams: &[Vec<u8>]) -> Vec<(u64, u64, u64)> {
        datagrams
            .iter()
            .filter_map(|d| match Frame::decode(d) {
                Ok(Frame::Data { pn, offset, payload }) => Some((pn, offset, payload.len() as u64)),
                _ => None,
            })
            .collect()
    }

    /// An ACK of `ranges`, the largest packet number `largest_pn`, at `now`.
    fn ack(s: &mut Sender, now: Instant, largest_pn: u64, ranges: Vec<Range<u64>>) {
        let mut d = Vec::new();
        Frame::Ack { largest_pn, delay_us: 0, max_data: s.file_size(), ranges }.encode(&mut d);
        s.handle(now, &d);
    }

    #[test]
    fn handshake_then_data_then_done() {
        let file: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let t0 = Instant::now();
        let mut s = Sender::new(cfg, file.len() as u64, &encode_hello(), t0);
        assert_eq!(s.state(), State::Validating);
        // One CHALLENGE and nothing else before the START.
        let got = drain(&mut s, t0, &file);
        assert_eq!(got.len(), 1);
        let Ok(Frame::Challenge { cookie, size }) = Frame::decode(&got[0]) else { panic!("expected CHALLENGE") };
        assert_eq!(size, file.len() as u64);
        let mut d = Vec::new();
        Frame::Start { cookie, resume: 0, max_data: file.len() as u64 }.encode(&mut d);
        let mut now = t0 + Duration::from_millis(10);
        s.handle(now, &d);
        assert_eq!(s.state(), State::Sending);
        // The handshake gave the first RTT sample.
        assert_eq!(s.stats().srtt, Duration::from_millis(10));
        let mut received = vec![0u8; file.len()];
        let mut ranges = RangeSet::new();
        let mut done = None;
        for _ in 0..1000 {
            let got = drain(&mut s, now, &file);
            let mut largest = None;
            for g in &got {
                match Frame::decode(g) {
                    Ok(Frame::Data { pn, offset, payload }) => {
                        received[offset as usize..offset as usize + payload.len()].copy_from_slice(payload);
                        ranges.insert(offset..offset + payload.len() as u64);
                        largest = largest.max(Some(pn));
                    }
                    Ok(Frame::Done { size, hash }) => done = Some((size, hash)),
                    _ => {}
                }
            }
            if done.is_some() {
                break;
            }
            now += Duration::from_millis(10);
            if let Some(l) = largest {
                ack(&mut s, now, l, ranges.iter().collect());
            }
            s.handle_timeout(now);
        }
        assert_eq!(received, file);
        assert_eq!(done, Some((file.len() as u64, super::super::tests::xxh3_field(&file))));
        assert_eq!(s.state(), State::Closing);
        let stats = s.stats();
        assert_eq!((stats.bytes_done, stats.bytes_sent, stats.packets_lost), (50_000, 50_000, 0));
        let mut d = Vec::new();
        Frame::DoneAck { ok: true }.encode(&mut d);
        s.handle(now, &d);
        assert_eq!(s.state(), State::Done { confirmed: true });
        assert!(s.is_finished() && s.poll_timeout().is_none());
        assert!(drain(&mut s, now, &file).is_empty());
    }

    #[test]
    fn a_lost_datagram_is_resent_after_three_later_ones_are_acked() {
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let mss = cfg.payload_len() as u64;
        let file = vec![3u8; 8 * mss as usize];
        let (mut s, t0) = validated(cfg, &file);
        let now = t0 + Duration::from_millis(1);
        let sent = data(&drain(&mut s, now, &file));
        assert_eq!(sent.len(), 8);
        // The first DATA is lost; the next three arrive.
        let (pn0, off0, len0) = sent[0];
        ack(&mut s, now, sent[3].0, vec![sent[1].1..sent[3].1 + sent[3].2]);
        assert_eq!(s.stats().packets_lost, 1);
        // It goes again, under a new packet number, before anything else.
        let again = data(&drain(&mut s, now, &file));
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].1, again[0].2), (off0, len0));
        assert!(again[0].0 > pn0);
        assert_eq!(s.stats().bytes_retransmitted, len0);
        // All acknowledged: the transfer closes.
        ack(&mut s, now, again[0].0, vec![0..file.len() as u64]);
        assert_eq!(s.state(), State::Closing);
    }

    #[test]
    fn unacknowledged_data_goes_again_after_the_rto() {
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let file = vec![5u8; 3 * cfg.payload_len()];
        let (mut s, t0) = validated(cfg, &file);
        let first = data(&drain(&mut s, t0, &file));
        assert_eq!(first.len(), 3);
        let rto = s.poll_timeout().expect("a timer");
        assert!(rto > t0);
        assert!(data(&drain(&mut s, rto - Duration::from_millis(1), &file)).is_empty());
        s.handle_timeout(rto);
        assert_eq!(s.stats().rtos, 1);
        let again = data(&drain(&mut s, rto, &file));
        let offsets = |v: &[(u64, u64, u64)]| v.iter().map(|d| (d.1, d.2)).collect::<Vec<_>>();
        // All three lost; the window collapsed to two datagrams, which go
        // again first.
        assert_eq!(s.stats().packets_lost, 3);
        assert_eq!(s.stats().cwnd, crate::rdt::cc::minimum_window(s.payload()));
        assert_eq!(offsets(&again), offsets(&first[..2]));
    }

    #[test]
    fn a_repeated_start_before_any_ack_resends_what_is_in_flight() {
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let file = vec![4u8; 4 * cfg.payload_len()];
        let t0 = Instant::now();
        let mut s = Sender::new(cfg, file.len() as u64, &encode_hello(), t0);
        let got = drain(&mut s, t0, &file);
        let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&got[0]) else { panic!("expected CHALLENGE") };
        let mut start = Vec::new();
        Frame::Start { cookie, resume: 0, max_data: file.len() as u64 }.encode(&mut start);
        let ms = Duration::from_millis(1);
        s.handle(t0 + 10 * ms, &start); // SRTT 10 ms
        let first = data(&drain(&mut s, t0 + 10 * ms, &file));
        assert_eq!(first.len(), 4);
        // The START again (the receiver saw no DATA) sooner than an SRTT later: nothing yet.
        s.handle(t0 + 15 * ms, &start);
        assert_eq!(s.stats().packets_lost, 0);
        // An SRTT later: everything in flight is lost and goes again, from offset 0.
        s.handle(t0 + 20 * ms, &start);
        assert_eq!(s.stats().packets_lost, 4);
        let again = data(&drain(&mut s, t0 + 20 * ms, &file));
        assert_eq!(again.first().map(|d| d.1), Some(0));
        // Once an ACK came, a stray START changes nothing.
        ack(&mut s, t0 + 25 * ms, again[0].0, vec![0..again[0].2]);
        s.handle(t0 + 60 * ms, &start);
        assert_eq!(s.stats().packets_lost, 4);
    }

    #[test]
    fn a_start_with_a_wrong_cookie_is_ignored() {
        let file = vec![1u8; 10_000];
        let t0 = Instant::now();
        let mut s = Sender::new(Config::default(), file.len() as u64, &encode_hello(), t0);
        let got = drain(&mut s, t0, &file);
        let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&got[0]) else { panic!("expected CHALLENGE") };
        let mut d = Vec::new();
        Frame::Start { cookie: cookie ^ 1, resume: 0, max_data: 10_000 }.encode(&mut d);
        s.handle(t0, &d);
        assert_eq!(s.state(), State::Validating);
        assert!(drain(&mut s, t0, &file).is_empty());
        // An ACK before validation is ignored too.
        ack(&mut s, t0, 0, vec![0..10_000]);
        assert_eq!(s.state(), State::Validating);
        // The right cookie still works.
        Frame::Start { cookie, resume: 0, max_data: 10_000 }.encode(&mut d);
        s.handle(t0, &d);
        assert_eq!(s.state(), State::Sending);
        assert!(!data(&drain(&mut s, t0, &file)).is_empty());
    }

    #[test]
    fn at_most_three_times_the_bytes_received_before_validation() {
        let file = vec![1u8; 10_000];
        let t0 = Instant::now();
        let mut challenge = Vec::new();
        Frame::Challenge { cookie: 0, size: file.len() as u64 }.encode(&mut challenge);
        // A 4-byte "hello" (whatever a driver took as one): 12 bytes of
        // budget, less than a CHALLENGE.
        let mut s = Sender::new(Config::default(), file.len() as u64, b"0098", t0);
        assert!(challenge.len() > 12);
        assert!(drain(&mut s, t0, &file).is_empty());
        // Each datagram from the address raises the budget; the CHALLENGE
        // goes once it fits.
        let mut received = 4;
        while 3 * received < challenge.len() {
            assert!(drain(&mut s, t0, &file).is_empty());
            s.handle(t0, b"x");
            received += 1;
        }
        assert_eq!(drain(&mut s, t0, &file).len(), 1);
        // Its timer does not resend it beyond the budget.
        let mut now = t0;
        for _ in 0..2 {
            now = s.poll_timeout().unwrap();
            s.handle_timeout(now);
            assert!(drain(&mut s, now, &file).is_empty());
        }
        assert_eq!(s.state(), State::Validating);
        // A repeated hello (full size) asks for it again, and pays for it.
        s.handle(now, &encode_hello());
        assert_eq!(drain(&mut s, now, &file).len(), 1);
        assert_eq!(s.stats().datagrams_sent, 2);
    }

    #[test]
    fn silence_for_the_idle_timeout_fails_the_transfer() {
        let cfg =
            Config { max_datagram: 1452, probe: false, idle_timeout: Duration::from_secs(2), ..Config::default() };
        let file = vec![9u8; 20_000];
        let (mut s, t0) = validated(cfg.clone(), &file);
        let mut now = t0;
        // Timeouts resend, but nothing comes back.
        while !s.is_finished() {
            drain(&mut s, now, &file);
            now = s.poll_timeout().expect("a timer while running");
            s.handle_timeout(now);
            assert!(now - t0 <= Duration::from_secs(2));
        }
        assert_eq!(now - t0, Duration::from_secs(2));
        assert_eq!(s.state(), State::Failed);
        assert!(matches!(s.take_error(), Some(SendError::Timeout(d)) if d == Duration::from_secs(2)));
        assert!(s.stats().rtos > 0);
        // Once every byte is acknowledged, a missing DONE-ACK ends it unconfirmed instead.
        let (mut s, t0) = validated(cfg, &file);
        let sent = data(&drain(&mut s, t0, &file));
        ack(&mut s, t0, sent.last().unwrap().0, vec![0..file.len() as u64]);
        assert_eq!(s.state(), State::Closing);
        let mut now = t0;
        while !s.is_finished() {
            drain(&mut s, now, &file);
            now = s.poll_timeout().unwrap();
            s.handle_timeout(now);
        }
        assert_eq!(s.state(), State::Done { confirmed: false });
        assert!(s.take_error().is_none());
    }

    /// The ABORTs among `datagrams`: (cookie, reason, text).
    fn aborts(datagrams: &[Vec<u8>]) -> Vec<(u64, AbortReason, String)> {
        datagrams
            .iter()
            .filter_map(|d| match Frame::decode(d) {
                Ok(Frame::Abort { cookie, reason, text }) => Some((cookie, reason, text.to_owned())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn abort_sends_its_copies_then_the_sender_is_finished() {
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let file = vec![2u8; 20 * cfg.payload_len()];
        let (mut s, t0) = validated(cfg, &file);
        assert!(!data(&drain(&mut s, t0, &file)).is_empty());
        let cookie = s.validation.cookie();
        s.abort(AbortReason::FileChanged, "size 20 → 30");
        assert!(!s.is_finished(), "ABORTs are still due");
        assert_eq!(s.poll_timeout(), Some(t0), "due at once");
        let got = drain(&mut s, t0, &file);
        let want = (cookie, AbortReason::FileChanged, "size 20 → 30".to_owned());
        assert_eq!(aborts(&got), vec![want; ABORT_COPIES as usize]);
        assert_eq!(got.len(), ABORT_COPIES as usize, "nothing but the ABORTs");
        assert!(s.is_finished() && s.poll_timeout().is_none());
        assert_eq!(s.state(), State::Failed);
        assert!(matches!(s.take_error(), Some(SendError::Aborted(a)) if a.reason == AbortReason::FileChanged));
        // An ACK after the abort changes nothing, and nothing more is sent.
        ack(&mut s, t0, 0, vec![0..file.len() as u64]);
        assert_eq!(s.state(), State::Failed);
        assert!(drain(&mut s, t0, &file).is_empty());
        // A finished transfer is not aborted after the fact.
        s.abort(AbortReason::ServerShutdown, "");
        assert!(drain(&mut s, t0, &file).is_empty());
    }

    #[test]
    fn before_validation_an_abort_stays_within_the_budget() {
        let file = vec![1u8; 10_000];
        let t0 = Instant::now();
        // A 4-byte "hello": 12 bytes of budget, less than one ABORT.
        let mut s = Sender::new(Config::default(), file.len() as u64, b"0098", t0);
        s.abort(AbortReason::ServerShutdown, "");
        assert!(drain(&mut s, t0, &file).is_empty());
        assert!(s.is_finished());
        // With a full hello, the CHALLENGE and the ABORTs fit.
        let mut s = Sender::new(Config::default(), file.len() as u64, &encode_hello(), t0);
        assert_eq!(drain(&mut s, t0, &file).len(), 1);
        s.abort(AbortReason::ServerShutdown, "bye");
        assert_eq!(aborts(&drain(&mut s, t0, &file)).len(), ABORT_COPIES as usize);
        assert!(s.is_finished());
    }

    #[test]
    fn an_abort_from_the_receiver_ends_the_sender_only_with_the_cookie() {
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let file = vec![2u8; 20 * cfg.payload_len()];
        let (mut s, t0) = validated(cfg, &file);
        drain(&mut s, t0, &file);
        let cookie = s.validation.cookie();
        let mut d = Vec::new();
        // Another transfer's (or a guessing stranger's) ABORT: ignored.
        Frame::Abort { cookie: cookie ^ 1, reason: AbortReason::Cancelled, text: "" }.encode(&mut d);
        s.handle(t0, &d);
        assert_eq!(s.state(), State::Sending);
        Frame::Abort { cookie, reason: AbortReason::Cancelled, text: "Ctrl-C" }.encode(&mut d);
        s.handle(t0, &d);
        assert!(s.is_finished(), "ends at once, answering nothing");
        assert!(drain(&mut s, t0, &file).is_empty());
        let Some(SendError::PeerAborted(a)) = s.take_error() else { panic!("expected PeerAborted") };
        assert_eq!((a.reason, a.text.as_str()), (AbortReason::Cancelled, "Ctrl-C"));
        assert_eq!(a.to_string(), "cancelled by the receiver: Ctrl-C");
    }
}
