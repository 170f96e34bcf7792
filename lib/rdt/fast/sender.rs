//! The fast-mode sender: a pure state machine. Feed it datagrams with
//! [`Sender::handle`] and expiries with [`Sender::handle_timeout`]; take
//! datagrams from [`Sender::poll_transmit`] until it returns `false`, then
//! sleep until [`Sender::poll_timeout`]. `now` must never go backwards.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use super::pacer::Pacer;
use super::{
    CHECK_LEN, Config, FileHash, Frame, GSO_MAX_BYTES, HASH_RUN, STATS_INTERVAL, SenderStats, Source, Stats,
    ack_threshold,
};
use crate::rdt::cc::{Controller, RateSample};
use crate::rdt::rangeset::RangeSet;
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

/// The receiver's ACK threshold until it hears an ACK-FREQUENCY.
const DEFAULT_ACK_THRESHOLD: u32 = 2;

/// A larger datagram is probed for and adopted only while the congestion
/// window holds at least this many of them.
const PROBE_WINDOW: u64 = 16;

#[derive(Debug, Clone, Copy)]
struct Sent {
    pn: u64,
    len: u64,
    time: Instant,
    /// A path-MTU probe: its loss says nothing about congestion.
    probe: bool,
    /// Delivery-rate state at send time (see [`crate::rdt::cc::RateSample`]).
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// Sent with nothing more to send behind it (file end or flow control).
    app_limited: bool,
    /// Carries bytes sent before: an acknowledgement may be for the earlier
    /// copy, so its RTT is ambiguous (Karn) and is not given to the controller.
    retransmission: bool,
}

/// The fast-mode sender.
#[derive(Debug)]
pub struct Sender {
    cfg: Config,
    size: u64,
    cookie: u64,
    state: State,
    error: Option<SendError>,
    cc: Box<dyn Controller>,
    rtt: RttEstimator,
    /// Bytes received from / sent to the peer before validation (RFC 9000 §8).
    recv_bytes: u64,
    sent_bytes: u64,
    validated: bool,
    challenge_due: bool,
    challenges: u32,
    challenge_sent: Option<Instant>,
    acked: RangeSet,
    lost: RangeSet,
    /// In flight, keyed by offset.
    in_flight: BTreeMap<u64, Sent>,
    /// (pn, offset) in send order, for loss detection by packet number.
    order: VecDeque<(u64, u64, Instant)>,
    bytes_in_flight: u64,
    next_offset: u64,
    next_pn: u64,
    largest_acked_pn: Option<u64>,
    max_data: u64,
    /// The whole-file BLAKE3, fed in runs of [`HASH_RUN`] as new data goes out.
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
    dones: u32,
    round_end_pn: u64,
    round_min: Duration,
    last_round_min: Duration,
    round_samples: u32,
    /// File bytes per DATA now: `cfg.payload_len()`, raised by acknowledged probes.
    mss: u64,
    /// Delivery-rate estimation: bytes acknowledged so far, when the last
    /// was, and the send time of the newest packet acknowledged.
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// Index into `cfg.probe_datagrams` of the next size to try.
    probe_next: usize,
    probe_outstanding: bool,
    /// When the next STATS may go (`None`: at once, once validated).
    stats_at: Option<Instant>,
    /// An ACK-FREQUENCY goes out after this STATS.
    ack_freq_due: bool,
    /// Sequence number and threshold of the last ACK-FREQUENCY sent.
    ack_freq_seq: u64,
    ack_freq_sent: u32,
    /// The datagram last written may lead a GSO batch: DATA, not a probe.
    batchable: bool,
}

impl Sender {
    /// A sender for a file of `size` bytes, answering the fast `hello` (see
    /// [`super::is_fast_hello`]) received at `now`.
    pub fn new(cfg: Config, size: u64, hello: &[u8], now: Instant) -> Self {
        let mss = cfg.payload_len() as u64;
        let cookie = splitmix(cfg.seed ^ size.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15);
        Self {
            cc: cfg.cc.build(mss),
            rtt: RttEstimator::new(cfg.min_rto),
            size,
            cookie,
            state: State::Validating,
            error: None,
            recv_bytes: hello.len() as u64,
            sent_bytes: 0,
            validated: false,
            challenge_due: true,
            challenges: 0,
            challenge_sent: None,
            acked: RangeSet::new(),
            lost: RangeSet::new(),
            in_flight: BTreeMap::new(),
            order: VecDeque::new(),
            bytes_in_flight: 0,
            next_offset: 0,
            next_pn: 0,
            largest_acked_pn: None,
            max_data: 0,
            hasher: FileHash::default(),
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
            dones: 0,
            round_end_pn: 0,
            round_min: Duration::MAX,
            last_round_min: Duration::MAX,
            round_samples: 0,
            mss,
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            probe_next: 0,
            probe_outstanding: false,
            stats_at: None,
            ack_freq_due: false,
            ack_freq_seq: 0,
            ack_freq_sent: DEFAULT_ACK_THRESHOLD,
            batchable: false,
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
        if let Some(q) = self.events.as_mut() {
            q.push_back(e());
        }
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

    /// Whether the machine has nothing more to do.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done { .. } | State::Failed)
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
        self.mss
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
        if self.is_finished() {
            return;
        }
        if !self.validated {
            self.recv_bytes += datagram.len() as u64;
            if super::is_fast_hello(datagram) {
                self.challenge_due = true;
                return;
            }
        }
        let Ok(frame) = Frame::decode(datagram) else { return };
        match frame {
            Frame::Start { cookie, resume, max_data } if cookie == self.cookie => {
                self.last_heard = now;
                if !self.validated {
                    if let Some(t) = self.challenge_sent.filter(|_| self.challenges == 1) {
                        self.rtt.sample(now.saturating_duration_since(t)); // Karn: only an unrepeated CHALLENGE
                    }
                    self.validated = true;
                    self.state = State::Sending;
                    let resume = resume.min(self.size);
                    self.resumed_from = resume;
                    self.acked.insert(0..resume);
                    self.next_offset = resume;
                    self.max_data = max_data.min(self.size);
                    self.stats.bytes_done = resume;
                    self.check_complete();
                } else if self.state == State::Sending && self.largest_acked_pn.is_none() {
                    // A repeated START: the receiver has had no DATA yet, so
                    // everything in flight is lost; resend without waiting for the RTO.
                    let srtt = self.rtt.srtt();
                    let old: Vec<u64> =
                        self.in_flight.iter().filter(|(_, s)| s.time + srtt <= now).map(|(&o, _)| o).collect();
                    for off in old {
                        if let Some(s) = self.in_flight.remove(&off) {
                            self.declare_lost(now, off, s);
                        }
                    }
                }
            }
            Frame::Ack { largest_pn, delay_us, max_data, ranges } if self.validated => {
                self.last_heard = now;
                self.on_ack(now, largest_pn, Duration::from_micros(delay_us.into()), max_data, &ranges);
            }
            Frame::DoneAck { ok } if self.validated => {
                if ok {
                    self.state = State::Done { confirmed: true };
                    self.timer = None;
                } else {
                    self.fail(SendError::HashMismatch);
                }
            }
            _ => {}
        }
    }

    fn on_ack(&mut self, now: Instant, largest_pn: u64, delay: Duration, max_data: u64, ranges: &[Range<u64>]) {
        self.max_data = self.max_data.max(max_data.min(self.size));
        // RTT sample from the largest packet number, if it is newly acknowledged.
        if self.largest_acked_pn.is_none_or(|l| largest_pn > l) {
            self.largest_acked_pn = Some(largest_pn);
            let i = self.order.partition_point(|&(pn, _, _)| pn < largest_pn);
            if let Some(&(pn, _, t)) = self.order.get(i)
                && pn == largest_pn
            {
                let rtt = now.saturating_duration_since(t);
                let sample = rtt.saturating_sub(delay.min(rtt / 2)).max(rtt.min(Duration::from_micros(50)));
                self.rtt.sample(sample);
                self.hystart(largest_pn, sample);
            }
        }
        let mut progress = false;
        for r in ranges {
            let r = r.start..r.end.min(self.size);
            if r.start >= r.end || self.acked.contains(r.clone()) {
                continue;
            }
            self.acked.insert(r.clone());
            self.lost.remove(r.clone());
            // In-flight packets inside the range (a packet never straddles an
            // acked range's boundary unless partially acked, handled below).
            let first = self.in_flight.range(..r.start).next_back().map(|(&o, _)| o);
            let keys: Vec<u64> =
                first.into_iter().chain(self.in_flight.range(r.start..r.end).map(|(&o, _)| o)).collect();
            for o in keys {
                let s = self.in_flight[&o];
                if self.acked.contains(o..o + s.len) {
                    self.in_flight.remove(&o);
                    // Grow the window only while it limits the sender
                    // (RFC 7661): not when flow control or the file's end does.
                    let cwnd_limited = 2 * self.bytes_in_flight >= self.cc.window();
                    self.bytes_in_flight -= s.len;
                    self.delivery_sample(now, &s);
                    if cwnd_limited {
                        self.cc.on_ack(now, s.time, s.len, self.rtt.srtt());
                    }
                    if s.probe {
                        // The path carries this size: use it from now on.
                        if self.cc.window() >= PROBE_WINDOW * s.len {
                            self.mss = self.mss.max(s.len);
                        }
                        self.probe_outstanding = false;
                        self.probe_next += 1;
                        self.event(|| Event::Mtu { payload: s.len, ok: true });
                    }
                    progress = true;
                }
            }
        }
        self.stats.bytes_done = self.acked.iter().map(|r| r.end - r.start).sum();
        // Packet-threshold loss detection (RFC 9002 §6.1.1, threshold 3) and
        // time threshold of 9/8 RTT.
        // RFC 9002 §6.1.2: 9/8 of the RTT, at least the 1 ms timer granularity
        // (without that floor, microsecond loopback RTTs declare spurious losses).
        let lat = (self.rtt.srtt().max(self.rtt.latest()) * 9 / 8).max(Duration::from_millis(1));
        while let Some(&(pn, off, t)) = self.order.front() {
            let live = self.in_flight.get(&off).is_some_and(|s| s.pn == pn);
            if !live {
                self.order.pop_front();
                continue;
            }
            if pn + 3 <= largest_pn || (pn < largest_pn && t + lat <= now) {
                self.order.pop_front();
                if let Some(s) = self.in_flight.remove(&off) {
                    self.declare_lost(now, off, s);
                }
            } else {
                break;
            }
        }
        if progress || self.in_flight.is_empty() {
            self.rearm(now);
        }
        if self.events.is_some() {
            let (acked, cwnd, srtt_us, in_flight) =
                (self.stats.bytes_done, self.cc.window(), self.rtt.srtt().as_micros() as u64, self.bytes_in_flight);
            self.event(|| Event::Ack { acked, cwnd, srtt_us, in_flight });
            self.cwnd_event();
        }
        self.check_complete();
    }

    /// Feeds the controller a delivery-rate sample for `s`, just acknowledged.
    fn delivery_sample(&mut self, now: Instant, s: &Sent) {
        self.delivered += s.len;
        let send_elapsed = s.time.saturating_duration_since(s.first_sent_time);
        let ack_elapsed = now.saturating_duration_since(s.delivered_time);
        self.delivered_time = now;
        self.first_sent_time = self.first_sent_time.max(s.time);
        let sample = RateSample {
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
        };
        self.cc.on_delivery(now, &sample);
    }

    /// HyStart++ (RFC 9406 §4.2), simplified: per round trip (a round ends
    /// when a packet sent after it began is acknowledged), the minimum RTT;
    /// in slow start, once 8 samples of a round show the minimum grown by
    /// clamp(min/8, 4 ms, 16 ms) over the previous round's, leave slow start.
    /// Without it a loss-free path (loopback) doubles the window until the
    /// socket buffers overflow in one burst.
    fn hystart(&mut self, largest_pn: u64, sample: Duration) {
        if largest_pn >= self.round_end_pn {
            self.last_round_min = self.round_min;
            self.round_min = Duration::MAX;
            self.round_samples = 0;
            self.round_end_pn = self.next_pn;
        }
        self.round_min = self.round_min.min(sample);
        self.round_samples += 1;
        if self.cc.in_slow_start() && self.round_samples >= 8 && self.last_round_min != Duration::MAX {
            let eta = (self.last_round_min / 8).clamp(Duration::from_millis(4), Duration::from_millis(16));
            if self.round_min >= self.last_round_min + eta {
                self.cc.exit_slow_start();
                self.cwnd_event();
            }
        }
    }

    fn retransmit_all(&mut self, now: Instant) {
        let all: Vec<(u64, Sent)> = std::mem::take(&mut self.in_flight).into_iter().collect();
        self.order.clear();
        for (off, s) in all {
            self.declare_lost(now, off, s);
        }
    }

    fn declare_lost(&mut self, now: Instant, off: u64, s: Sent) {
        self.event(|| Event::Loss { pn: s.pn, offset: off, len: s.len });
        self.bytes_in_flight -= s.len;
        self.stats.packets_lost += 1;
        self.lost.insert(off..off + s.len);
        for r in self.acked.iter().filter(|a| a.start < off + s.len && a.end > off).collect::<Vec<_>>() {
            self.lost.remove(r);
        }
        if s.probe {
            // Too big for the path (or unlucky): stop probing upwards.
            self.probe_outstanding = false;
            self.probe_next = usize::MAX;
            self.event(|| Event::Mtu { payload: s.len, ok: false });
        } else {
            self.cc.on_loss(now, s.time);
        }
    }

    /// The RTO, backed off but capped at a quarter of the idle timeout so a
    /// few losses in a row never look like a dead peer to either side.
    fn rto(&self) -> Duration {
        self.rtt.rto().min(self.cfg.idle_timeout / 4)
    }

    fn rearm(&mut self, now: Instant) {
        self.timer = if self.in_flight.is_empty() && !matches!(self.state, State::Closing | State::Validating) {
            None
        } else {
            Some(now + self.rto())
        };
    }

    fn check_complete(&mut self) {
        if self.state == State::Sending && self.acked.contains(0..self.size) {
            self.state = State::Closing;
            self.done_due = true;
        }
    }

    /// When [`Sender::handle_timeout`] should next be called (timers and pacing).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let idle = self.last_heard + self.cfg.idle_timeout;
        let t = self.timer.map_or(idle, |t| t.min(idle));
        Some(self.pace_at.map_or(t, |p| p.min(t)))
    }

    /// Timers expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_finished() {
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
            State::Validating => self.challenge_due = true,
            State::Closing => self.done_due = true,
            _ => {
                self.retransmit_all(now);
                self.cc.on_rto(now);
                let rto_us = self.rto().as_micros() as u64;
                self.event(|| Event::Rto { rto_us });
                self.cwnd_event();
            }
        }
        self.timer = Some(now + self.rto());
    }

    fn may_send(&self, len: usize) -> bool {
        self.validated || self.sent_bytes + len as u64 <= 3 * self.recv_bytes
    }

    fn note_sent(&mut self, len: usize) {
        self.sent_bytes += len as u64;
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
            return rate.max(self.mss as f64);
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
        let cap = ((self.cfg.pacing_burst as f64) * self.mss as f64).max(self.pacing_rate() * span);
        cap.max(self.mss as f64)
    }

    /// Bytes a paced sender waits for: what the pacing rate earns in
    /// [`BURST_SPAN`], between one datagram and one GSO batch of them (and
    /// at most the bucket). Fast paths wake once per batch; slow ones still
    /// pace datagram by datagram, so a small bottleneck queue is not hit
    /// with bursts.
    fn burst_bytes(&self) -> f64 {
        let per_batch = (GSO_MAX_BYTES as u64 / (self.mss + (super::DATA_HEADER + CHECK_LEN) as u64)).max(1);
        let span = self.pacing_rate() * BURST_SPAN.as_secs_f64();
        span.min((per_batch * self.mss) as f64).min(self.bucket_cap()).max(self.mss as f64)
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
        let payload = (segment - super::DATA_HEADER - CHECK_LEN) as u64;
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
        self.ack_freq_due || (self.validated && self.stats_at.is_none_or(|t| now >= t))
    }

    fn build(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::Validating => {
                if self.challenge_due {
                    Frame::Challenge { cookie: self.cookie, size: self.size }.encode(out);
                    if self.may_send(out.len()) {
                        self.challenge_due = false;
                        self.challenges += 1;
                        self.challenge_sent = Some(now);
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
                if self.validated && self.stats_at.is_none_or(|t| now >= t) {
                    self.stats_at = Some(now + STATS_INTERVAL);
                    Frame::Stats(self.sender_stats()).encode(out);
                    self.note_sent(out.len());
                    self.ack_freq_due = true;
                    return true;
                }
                // ACK-FREQUENCY with each STATS while the threshold differs
                // from the receiver's default (or from what was last asked).
                let threshold = ack_threshold(self.cc.window(), self.mss);
                if std::mem::take(&mut self.ack_freq_due)
                    && (threshold != DEFAULT_ACK_THRESHOLD || threshold != self.ack_freq_sent)
                {
                    self.ack_freq_seq += 1;
                    self.ack_freq_sent = threshold;
                    let max_delay_us = u32::try_from(self.cfg.max_ack_delay.as_micros()).unwrap_or(u32::MAX);
                    Frame::AckFrequency { seq: self.ack_freq_seq, threshold, max_delay_us }.encode(out);
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
                    if let Err(e) = self.hash_to(src, self.size) {
                        self.fail(e);
                        return false;
                    }
                    self.hash = Some(self.hasher.finalize());
                }
                let hash = self.hash.unwrap_or_default();
                Frame::Done { size: self.size, hash }.encode(out);
                self.done_due = false;
                self.dones += 1;
                self.note_sent(out.len());
                self.timer = Some(now + self.rto());
                true
            }
            State::Done { .. } | State::Failed => false,
        }
    }

    /// Feeds the whole-file hash up to `end`, from the source's memory where it can.
    fn hash_to(&mut self, src: &mut dyn Source, end: u64) -> Result<(), SendError> {
        self.hasher.feed_to(end, src).map_err(|(offset, source)| SendError::Read { offset, source })
    }

    /// The payload of the next path-MTU probe, if one should go now
    /// (DPLPMTUD, RFC 8899, simplified): one probe at a time, sizes from
    /// `cfg.probe_datagrams` upwards, after the first RTT sample.
    fn probe_payload(&self) -> Option<u64> {
        if !self.cfg.probe || self.probe_outstanding || !self.rtt.has_sample() {
            return None;
        }
        let d = *self.cfg.probe_datagrams.get(self.probe_next)?;
        let payload = d.saturating_sub(super::DATA_HEADER + CHECK_LEN) as u64;
        // Only where the window holds many datagrams of the new size: with a
        // window of a few big datagrams, loss recovery degrades to timeouts.
        (payload > self.mss && self.cc.window() >= PROBE_WINDOW * payload).then_some(payload)
    }

    /// Writes the next DATA datagram into `out` (cleared first) or, with
    /// `append` (a batch being built), after what `out` holds, carrying at
    /// most `append`'s file bytes and never a path-MTU probe.
    fn poll_data(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>, append: Option<u64>) -> bool {
        let mss = append.unwrap_or(self.mss).min(self.mss);
        if self.bytes_in_flight + mss > self.cc.window() && self.bytes_in_flight > 0 {
            return false;
        }
        self.refill(now);
        if !self.pacer.allows(mss as f64) {
            self.pace_at = self.pacing_delay(now);
            return false;
        }
        self.pace_at = None;
        // Retransmissions first, skipping what was acknowledged meanwhile.
        let (range, retx) = loop {
            match self.lost.pop_front(mss) {
                Some(r) => {
                    if let Some(g) = first_gap(&self.acked, r.clone()) {
                        self.lost.insert(g.end..r.end);
                        break (g, true);
                    }
                }
                None => {
                    let len = if append.is_some() { mss } else { self.probe_payload().unwrap_or(mss) };
                    let end = (self.next_offset + len).min(self.size).min(self.max_data);
                    if end <= self.next_offset {
                        return false;
                    }
                    break (self.next_offset..end, false);
                }
            }
        };
        let probe = !retx && range.end - range.start > self.mss;
        self.probe_outstanding |= probe;
        self.batchable = !probe;
        // The hash lags the new data by up to HASH_RUN and catches up
        // before the source is read further (so what it needs is still in
        // the source's memory): large runs, BLAKE3's fast multi-chunk path.
        if !retx && self.hasher.hashed_to() + HASH_RUN <= range.start {
            let r = self.hasher.feed_runs_to(range.start, src);
            if let Err((offset, source)) = r {
                self.fail(SendError::Read { offset, source });
                return false;
            }
        }
        let len = (range.end - range.start) as usize;
        let pn = self.next_pn;
        if append.is_none() {
            out.clear();
        }
        let at = out.len();
        let r = super::append_data_from(out, pn, range.start, len, src);
        if let Err(source) = r {
            self.fail(SendError::Read { offset: range.start, source });
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
        self.next_pn += 1;
        let app_limited = self.lost.is_empty() && self.next_offset >= self.size.min(self.max_data);
        let sent = Sent {
            pn,
            len: len as u64,
            time: now,
            probe,
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited,
            retransmission: retx,
        };
        self.in_flight.insert(range.start, sent);
        self.order.push_back((pn, range.start, now));
        self.bytes_in_flight += len as u64;
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

/// SplitMix64, for the cookie.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdt::fast::{DATA_HEADER, encode_hello};

    /// A sender of `file` past address validation, and `now`.
    fn validated(cfg: Config, file: &[u8]) -> (Sender, Instant) {
        let t0 = Instant::now();
        let mut s = Sender::new(cfg, file.len() as u64, &encode_hello(), t0);
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
    fn the_file_hash_is_fed_in_runs_and_matches() {
        // Bigger than a few HASH_RUNs, not a multiple of the payload.
        let file: Vec<u8> = (0..300_001u32).map(|i| (i % 251) as u8).collect();
        let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
        let (mut s, mut now) = validated(cfg, &file);
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
            Frame::Ack { largest_pn: s.next_pn.saturating_sub(1), delay_us: 0, max_data, ranges: acked }
                .encode(&mut ack);
            now += Duration::from_millis(1);
            s.handle(now, &ack);
            s.handle_timeout(now);
            // The hash lags the data by less than a run (plus a datagram).
            assert!(
                s.hasher.hashed_to() + HASH_RUN + DATA_HEADER as u64 + 2000 >= s.next_offset.min(file.len() as u64)
            );
        }
        assert_eq!(done, Some(*blake3::hash(&file).as_bytes()));
    }
}
