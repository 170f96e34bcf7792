//! A compact BBR (v1-style) controller: the sender's rate follows a model of
//! the path (bottleneck bandwidth and round-trip propagation time) built from
//! delivery-rate samples, not from loss. Random loss therefore does not
//! shrink the window, which is what a lossy long path needs: a loss-based
//! controller is held to the Mathis limit there (`~ MSS / (RTT √p)`).
//!
//! Model: bottleneck bandwidth = windowed max of delivery-rate samples over
//! [`BW_ROUNDS`] round trips; min RTT over [`MIN_RTT_WINDOW`]. States:
//! startup (gain 2/ln 2 until the bandwidth stops growing 25% for 3
//! rounds), drain (inverse gain until the queue made in startup is gone),
//! probe-bandwidth (pacing gain cycles 1.25, 0.75, then 1 for six phases,
//! one min-RTT each, except that, as in Linux, the 1.25 phase also waits
//! for a loss or its larger flight and the 0.75 phase ends once the flight
//! is down to one BDP), and probe-RTT (when the min RTT is 5 s old, the
//! window drops to half the BDP, as in BBR v2, for 200 ms so queues drain
//! and a fresh minimum is seen; an RTT within a sixteenth of the minimum
//! keeps it fresh without one, and none runs when the rest of the file
//! goes out within [`PROBE_RTT_SKIP`]). Window = 2 × BDP plus 5 ms at the bandwidth plus 3 datagrams; an RTO resets it to
//! the minimum, from where it grows by the bytes acknowledged.

//!
//! Loss rounds (as in BBR v3): each round trip counts its lost and
//! delivered datagrams (short rounds add up to [`LOSS_SAMPLE_MIN`]). A
//! round in startup or in a bandwidth probe (the 1.25 phase and the one
//! after, which sees its losses) that loses more than [`LOSS_THRESHOLD`]
//! of them (at least [`LOSS_EVENTS_MIN`] in startup, 2 after) has overrun
//! a queue, which random loss below the threshold does not: startup ends
//! at once, and an upper bound on the data in flight (`inflight_hi`) is
//! set to [`BETA`] × the round's largest flight, but no lower than one BDP
//! plus the ACK allowance, so the flow keeps its estimated rate. After
//! [`PROBE_UP_WAIT_ROUNDS`] rounds without an overrun the bound probes
//! upward, by one datagram in the first round and twice as much each round
//! after, and is lifted once it passes the usual window. Beside a
//! loss-based flow (CUBIC) this leaves the queue to it in turn instead of
//! holding two BDP there for good. Startup's window gain is 2 (BBR v3):
//! the pacing gain alone doubles the rate each round.
//!
//! Start-up from the handshake: the sender passes on the RTT the handshake
//! measured ([`Controller::on_handshake_rtt`]); the first window is what
//! [`INITIAL_RATE`] fills in it (ten to [`MAX_INITIAL_WINDOW`] datagrams),
//! paced at the startup gain over that RTT, so a long path begins its
//! doubling a few rounds further on. Startup's pacing rate never falls
//! until the pipe is full (as in Linux): the first delivery samples,
//! taken while the first window is still arriving, measure far less than
//! the path carries.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Controller, RateSample, initial_window, minimum_window};

/// Startup gain: 2/ln 2, the smallest that doubles the delivery rate each round.
pub(crate) const STARTUP_GAIN: f64 = 2.885;
/// Window gain in startup and drain (BBR v3's 2): the pacing gain alone
/// doubles the rate each round; a larger window only deepens the overshoot
/// in the round that finds the bottleneck.
pub(crate) const STARTUP_CWND_GAIN: f64 = 2.0;
/// The rate (bytes/s) the first window is sized for: it fills the
/// handshake's RTT at this rate (32 Mbit/s), between the usual ten datagrams
/// and [`MAX_INITIAL_WINDOW`]. A long path starts its doubling from a few
/// more datagrams (quinn's BBR starts every path from 200); a short one
/// keeps ten.
pub(crate) const INITIAL_RATE: f64 = 4e6;
/// The most datagrams the first window holds.
pub(crate) const MAX_INITIAL_WINDOW: u64 = 100;
/// Rounds over which the bottleneck bandwidth is the max of the samples.
pub(crate) const BW_ROUNDS: u64 = 10;
/// How long a min-RTT estimate stays valid without a new minimum. BBR v1
/// uses 10 s; 5 s (BBR v2's probe-RTT interval) lets a flow that started
/// behind a standing queue correct its inflated minimum sooner, which the
/// two-flow fairness simulation needs (10 s: 3:1 shares; 5 s: within 1%).
pub(crate) const MIN_RTT_WINDOW: Duration = Duration::from_secs(5);
/// An RTT sample within `min / MIN_RTT_SLACK` of the minimum keeps the
/// minimum fresh: the flow's own queue is drained, which is what probe-RTT
/// would find out at the cost of half the rate for 200 ms.
pub(crate) const MIN_RTT_SLACK: u32 = 16;
/// Probe-RTT is skipped when the rest of the file goes out sooner than
/// this at the estimated bandwidth: its fresh minimum would serve a flow
/// that is about to end, and half the rate for 200 ms is ~2% of a 5 s
/// transfer.
pub(crate) const PROBE_RTT_SKIP: Duration = Duration::from_secs(1);
/// How long probe-RTT holds the small window.
pub(crate) const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Window allowance for ACKs that come late or in bunches (the receiver's
/// delayed-ACK timer, scheduling): without it a path whose RTT is far below
/// this (loopback) is held by the window, not the bandwidth.
pub(crate) const ACK_AGGREGATION: Duration = Duration::from_millis(5);
/// Pacing gains of the probe-bandwidth cycle.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Window gain in probe-bandwidth: 2 × BDP absorbs delayed and stretched ACKs.
const CWND_GAIN: f64 = 2.0;
/// Share of a round's datagrams lost above which the round overran a
/// queue (BBR v3's 2%): 1% random loss stays under it.
pub(crate) const LOSS_THRESHOLD: f64 = 0.02;
/// Fewest losses in a startup round for [`LOSS_THRESHOLD`] to apply: a
/// handful of losses in a small round is random loss, not an overrun.
pub(crate) const LOSS_EVENTS_MIN: u64 = 8;
/// Fewest datagrams (delivered and lost) a loss round holds: shorter
/// rounds add up.
pub(crate) const LOSS_SAMPLE_MIN: u64 = 100;
/// What an overrun round leaves of the largest flight (BBR v3's 0.7).
pub(crate) const BETA: f64 = 0.7;
/// Rounds after an overrun before `inflight_hi` probes upward again (BBR
/// v3 waits 2 to 3 s, or 63 rounds beside Reno; 100 rounds keeps two BBR
/// flows within 20% of each other on a shallow queue in the simulation,
/// where 32 or 63 do not).
pub(crate) const PROBE_UP_WAIT_ROUNDS: u64 = 100;
const PROBE_UP_GROWTH: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

/// BBR state.
#[derive(Debug, Clone)]
pub(crate) struct Bbr {
    mss: u64,
    mode: Mode,
    cwnd: u64,
    /// Monotone deque of (round, bandwidth in bytes/s) for the windowed max.
    bw: VecDeque<(u64, f64)>,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    /// Round trips counted by delivery: a round ends when a packet sent
    /// after the previous round ended is acknowledged.
    round: u64,
    next_round_delivered: u64,
    full_bw: f64,
    full_bw_rounds: u32,
    filled_pipe: bool,
    cycle_index: usize,
    cycle_stamp: Option<Instant>,
    /// A loss was declared in the current probe-bandwidth phase.
    phase_lost: bool,
    probe_rtt_done: Option<Instant>,
    /// Datagrams lost and delivered in the current round.
    round_lost: u64,
    round_delivered: u64,
    /// Whether the current round saw startup or a bandwidth probe.
    round_probed: bool,
    /// The largest flight (bytes, before an ACK) seen in the current round.
    round_max_inflight: u64,
    /// Upper bound on the data in flight after an overrun round.
    inflight_hi: Option<u64>,
    /// The round of the last overrun.
    overrun_round: u64,
    /// Bytes `inflight_hi` grows by at the next round end while probing up.
    probe_up_step: u64,
    /// Rounds that overran a queue so far.
    overruns: u64,
    /// Startup's pacing rate so far (bytes/s): it never falls before the
    /// pipe is full.
    startup_rate: f64,
    /// Bytes of the file not yet sent once, when the sender says.
    unsent: Option<u64>,
}

impl Bbr {
    /// A controller with the initial window, in startup.
    pub(crate) fn new(mss: u64) -> Self {
        Self {
            mss,
            mode: Mode::Startup,
            cwnd: initial_window(mss),
            bw: VecDeque::new(),
            min_rtt: None,
            min_rtt_stamp: None,
            round: 0,
            next_round_delivered: 0,
            full_bw: 0.0,
            full_bw_rounds: 0,
            filled_pipe: false,
            // Start past the 1.25/0.75 pair, as BBR does, so the first probe
            // follows a min-RTT of steady sending.
            cycle_index: 2,
            cycle_stamp: None,
            phase_lost: false,
            probe_rtt_done: None,
            round_lost: 0,
            round_delivered: 0,
            round_probed: false,
            round_max_inflight: 0,
            inflight_hi: None,
            overrun_round: 0,
            probe_up_step: 0,
            overruns: 0,
            startup_rate: 0.0,
            unsent: None,
        }
    }

    /// The bound on the data in flight that loss rounds set, if any.
    #[cfg(test)]
    pub(crate) fn inflight_hi(&self) -> Option<u64> {
        self.inflight_hi
    }

    /// Whether the controller is in probe-RTT.
    #[cfg(test)]
    pub(crate) fn in_probe_rtt(&self) -> bool {
        self.mode == Mode::ProbeRtt
    }

    /// How many rounds lost more than [`LOSS_THRESHOLD`] of their datagrams.
    #[cfg(test)]
    pub(crate) fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The usual window target: gain × BDP plus the ACK allowance and 3 datagrams.
    fn target_window(&self, gain: f64) -> Option<u64> {
        let bdp = self.bdp()?;
        let extra = (self.bandwidth() * ACK_AGGREGATION.as_secs_f64()) as u64;
        Some((gain * bdp as f64) as u64 + extra + 3 * self.mss)
    }

    /// Whether the current round has lost more than [`LOSS_THRESHOLD`] of
    /// its datagrams. Before its end (startup) a round's size is known from
    /// the flight rather than from what it has delivered so far.
    fn round_overran(&self) -> bool {
        let lost = self.round_lost;
        let size = self.round_delivered.max(self.round_max_inflight / self.mss);
        let min = if self.mode == Mode::Startup { LOSS_EVENTS_MIN } else { 2 };
        lost >= min && lost as f64 > LOSS_THRESHOLD * (lost + size) as f64
    }

    /// The response to an overrun round (once per round): startup ends,
    /// and `inflight_hi` comes down to [`BETA`] × the round's largest
    /// flight (or the bound itself, if lower), but not below one BDP.
    fn on_overrun(&mut self) {
        if self.overruns > 0 && self.overrun_round == self.round {
            return;
        }
        self.overruns += 1;
        self.overrun_round = self.round;
        self.probe_up_step = self.mss;
        self.filled_pipe = true;
        let floor = self.floor();
        let flight = self.round_max_inflight.min(self.inflight_hi.unwrap_or(u64::MAX));
        self.inflight_hi = Some(((BETA * flight as f64) as u64).max(floor));
    }

    /// The lowest `inflight_hi`: one BDP plus the ACK allowance and 3
    /// datagrams, so a bound never holds the flow below its estimated rate.
    fn floor(&self) -> u64 {
        self.target_window(1.0).unwrap_or(0).max(self.min_window())
    }

    /// At a round's end: an overrun sets or lowers `inflight_hi`; a quiet
    /// round after [`PROBE_UP_WAIT_ROUNDS`] raises it.
    fn end_loss_round(&mut self) {
        // A small flow's rounds add up until they hold enough datagrams for
        // the threshold to mean a few losses.
        if self.round_lost + self.round_delivered < LOSS_SAMPLE_MIN {
            return;
        }
        if self.round_probed && self.round_overran() {
            self.on_overrun();
        }
        self.round_probed = false;
        self.round_lost = 0;
        self.round_delivered = 0;
        self.round_max_inflight = 0;
        if self.overrun_round == self.round {
            return;
        }
        let floor = self.floor();
        let Some(hi) = self.inflight_hi else { return };
        if self.round < self.overrun_round + PROBE_UP_WAIT_ROUNDS {
            return;
        }
        let hi = hi.max(floor) + self.probe_up_step;
        self.probe_up_step = self.probe_up_step.saturating_mul(PROBE_UP_GROWTH);
        let lift = self.target_window(self.cwnd_gain()).is_some_and(|t| hi >= t);
        self.inflight_hi = (!lift).then_some(hi);
    }

    /// Bottleneck bandwidth estimate in bytes per second (0 before any sample).
    pub(crate) fn bandwidth(&self) -> f64 {
        self.bw.front().map_or(0.0, |&(_, b)| b)
    }

    /// Estimated bandwidth-delay product in bytes, if both are known.
    fn bdp(&self) -> Option<u64> {
        let rtt = self.min_rtt?;
        let bw = self.bandwidth();
        (bw > 0.0).then_some((bw * rtt.as_secs_f64()) as u64)
    }

    fn pacing_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup => STARTUP_GAIN,
            Mode::Drain => 1.0 / STARTUP_GAIN,
            Mode::ProbeBw => CYCLE[self.cycle_index],
            Mode::ProbeRtt => 1.0,
        }
    }

    fn cwnd_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup | Mode::Drain => STARTUP_CWND_GAIN,
            _ => CWND_GAIN,
        }
    }

    /// The window in probe-RTT: half the BDP (as BBR v2 does), at least
    /// [`Self::min_window`]. Half a BDP in flight empties the bottleneck
    /// queue, which is all probe-RTT needs, and keeps half the rate; BBR
    /// v1's four datagrams stalled the transfer for 200 ms plus an RTT.
    /// On a real path the exact minimum RTT is rarely seen again (timing
    /// jitter), so probe-RTT runs every [`MIN_RTT_WINDOW`]: at four
    /// datagrams that cost ~5% of the goodput on a 50 ms path.
    fn probe_rtt_window(&self) -> u64 {
        (self.bdp().unwrap_or(0) / 2).max(self.min_window())
    }

    /// The smallest window outside an RTO: four datagrams.
    fn min_window(&self) -> u64 {
        4 * self.mss
    }

    fn update_bw(&mut self, s: &RateSample) {
        if s.interval.is_zero() || s.delivered == 0 {
            return;
        }
        // As Linux does: a sample over less than the min RTT comes from
        // bunched ACKs and bursts (compression) and would inflate the max.
        if self.min_rtt.is_some_and(|m| s.interval < m) {
            return;
        }
        let sample = s.delivered as f64 / s.interval.as_secs_f64();
        // An application-limited sample only counts if it raises the estimate.
        if s.app_limited && sample < self.bandwidth() {
            return;
        }
        while self.bw.back().is_some_and(|&(_, b)| b <= sample) {
            self.bw.pop_back();
        }
        self.bw.push_back((self.round, sample));
        while self.bw.front().is_some_and(|&(r, _)| r + BW_ROUNDS <= self.round) {
            self.bw.pop_front();
        }
    }

    fn check_full_pipe(&mut self, round_start: bool, app_limited: bool) {
        if self.filled_pipe || !round_start || app_limited {
            return;
        }
        let bw = self.bandwidth();
        if bw >= self.full_bw * 1.25 {
            self.full_bw = bw;
            self.full_bw_rounds = 0;
            return;
        }
        self.full_bw_rounds += 1;
        if self.full_bw_rounds >= 3 {
            self.filled_pipe = true;
        }
    }

    /// Whether the probe-bandwidth phase ends (as Linux's BBR decides): a
    /// phase lasts a min-RTT; the probing phase (1.25) also until a loss or
    /// until its larger flight is out, and the draining phase (0.75) ends
    /// early once the flight is down to one BDP, so that it takes back the
    /// queue the probe made and no more (a full min-RTT at 0.75 would leave
    /// the link idle when the probe found no queue to make).
    fn next_phase(&self, now: Instant, in_flight: u64) -> bool {
        let (Some(t), Some(rtt)) = (self.cycle_stamp, self.min_rtt) else { return false };
        let full = now.saturating_duration_since(t) >= rtt;
        let gain = CYCLE[self.cycle_index];
        let inflight_at = |g: f64| self.bdp().map(|b| (g * b as f64) as u64);
        if gain > 1.0 {
            full && (self.phase_lost || inflight_at(gain).is_none_or(|w| in_flight >= w))
        } else if gain < 1.0 {
            full || inflight_at(1.0).is_some_and(|w| in_flight <= w)
        } else {
            full
        }
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        self.start_phase(2, now);
    }

    /// Phase `index` of the probe-bandwidth cycle begins at `now`.
    fn start_phase(&mut self, index: usize, now: Instant) {
        self.cycle_index = index;
        self.cycle_stamp = Some(now);
        self.phase_lost = false;
    }
}

impl Controller for Bbr {
    fn window(&self) -> u64 {
        let w = self.cwnd.min(self.inflight_hi.unwrap_or(u64::MAX));
        if self.mode == Mode::ProbeRtt { w.min(self.probe_rtt_window()) } else { w }
    }

    fn in_slow_start(&self) -> bool {
        self.mode == Mode::Startup
    }

    /// BBR grows its window from delivery samples ([`Controller::on_delivery`]).
    fn on_ack(&mut self, _now: Instant, _sent: Instant, _bytes: u64, _srtt: Duration) {}

    /// A loss counts towards its round's loss rate (see the module's
    /// loss rounds); random loss below [`LOSS_THRESHOLD`] changes nothing.
    fn on_loss(&mut self, _now: Instant, _sent: Instant) {
        self.round_lost += 1;
        self.phase_lost = true;
        // Startup overshoots by up to a round of doubling: end it at once.
        if self.mode == Mode::Startup && self.round_overran() {
            self.on_overrun();
        }
    }

    fn on_unsent(&mut self, bytes: u64) {
        self.unsent = Some(bytes);
    }

    fn on_rto(&mut self, _now: Instant) {
        self.cwnd = minimum_window(self.mss);
    }

    /// Sizes the first window from the handshake's RTT (what
    /// [`INITIAL_RATE`] fills in it, between the usual initial window and
    /// [`MAX_INITIAL_WINDOW`] datagrams) and paces it at the startup gain
    /// over that RTT, as Linux paces its first window from the SYN's RTT.
    fn on_handshake_rtt(&mut self, rtt: Duration) {
        if rtt.is_zero() || self.round > 0 {
            return;
        }
        let secs = rtt.as_secs_f64();
        let iw = ((INITIAL_RATE * secs) as u64).clamp(initial_window(self.mss), MAX_INITIAL_WINDOW * self.mss);
        self.cwnd = self.cwnd.max(iw);
        self.startup_rate = STARTUP_GAIN * self.cwnd as f64 / secs;
    }

    /// BBR leaves startup on its own evidence (bandwidth plateau), not on RTT growth.
    fn exit_slow_start(&mut self) {}

    fn on_delivery(&mut self, now: Instant, s: &RateSample) {
        let round_start = s.prior_delivered >= self.next_round_delivered;
        if round_start {
            self.end_loss_round();
            self.next_round_delivered = s.total_delivered;
            self.round += 1;
        }
        self.round_delivered += 1;
        // Losses count while the flow pushes: in startup, and in the
        // probing phase of the cycle and the one after (which sees its losses).
        self.round_probed |= match self.mode {
            Mode::Startup => true,
            Mode::ProbeBw => self.cycle_index <= 1,
            Mode::Drain | Mode::ProbeRtt => false,
        };
        self.round_max_inflight = self.round_max_inflight.max(s.in_flight + s.acked);
        self.update_bw(s);
        // Min RTT, and probe-RTT when it is stale.
        let ending = self.unsent.is_some_and(|b| (b as f64) < self.bandwidth() * PROBE_RTT_SKIP.as_secs_f64());
        let expired = !ending && self.min_rtt_stamp.is_some_and(|t| now.saturating_duration_since(t) > MIN_RTT_WINDOW);
        if !s.rtt.is_zero() && (self.min_rtt.is_none_or(|m| s.rtt <= m) || expired) {
            self.min_rtt = Some(s.rtt);
            self.min_rtt_stamp = Some(now);
        } else if self.min_rtt.is_some_and(|m| !s.rtt.is_zero() && s.rtt <= m + m / MIN_RTT_SLACK) {
            // Within a sixteenth of the minimum: no queue to drain, so the
            // estimate stands without a probe-RTT.
            self.min_rtt_stamp = Some(now);
        }
        if expired && self.mode != Mode::ProbeRtt && self.filled_pipe {
            self.mode = Mode::ProbeRtt;
            self.probe_rtt_done = None;
        }
        if self.mode == Mode::ProbeRtt {
            if self.probe_rtt_done.is_none() && s.in_flight <= self.probe_rtt_window() {
                self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
            }
            if self.probe_rtt_done.is_some_and(|d| now >= d) {
                self.min_rtt_stamp = Some(now);
                self.enter_probe_bw(now);
            }
        }
        if self.mode == Mode::Startup {
            self.startup_rate = self.startup_rate.max(STARTUP_GAIN * self.bandwidth());
        }
        self.check_full_pipe(round_start, s.app_limited);
        if self.mode == Mode::Startup && self.filled_pipe {
            self.mode = Mode::Drain;
        }
        if self.mode == Mode::Drain && self.bdp().is_some_and(|b| s.in_flight <= b) {
            self.enter_probe_bw(now);
        }
        if self.mode == Mode::ProbeBw && self.next_phase(now, s.in_flight) {
            self.start_phase((self.cycle_index + 1) % CYCLE.len(), now);
        }
        // Window: grow by what was delivered, up to gain × BDP + 3 datagrams.
        // Before the pipe is full, grow while below the target (startup).
        let grown = self.cwnd.saturating_add(s.acked);
        self.cwnd = match self.target_window(self.cwnd_gain()) {
            Some(target) => {
                if self.filled_pipe {
                    grown.min(target)
                } else if self.cwnd < target {
                    grown
                } else {
                    self.cwnd
                }
            }
            None => grown,
        }
        .max(self.min_window());
    }

    /// The pacing gain × the bottleneck bandwidth; in startup never less
    /// than startup's rate so far (as Linux does: the first samples, taken
    /// while the first window is still out, measure less than the path
    /// carries and would slow the ramp they come from).
    fn pacing_rate(&self) -> Option<f64> {
        let rate = self.pacing_gain() * self.bandwidth();
        let rate = if self.mode == Mode::Startup { rate.max(self.startup_rate) } else { rate };
        (rate > 0.0).then_some(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(prior: u64, total: u64, acked: u64, interval_ms: u64, in_flight: u64) -> RateSample {
        RateSample {
            acked,
            delivered: total - prior,
            prior_delivered: prior,
            total_delivered: total,
            interval: Duration::from_millis(interval_ms),
            rtt: Duration::from_millis(interval_ms),
            in_flight,
            app_limited: false,
        }
    }

    /// Round `r` (from 1) of `n` acknowledged 1000-byte datagrams, 10 ms
    /// each, `in_flight` bytes before each ACK, and `lost` losses declared
    /// after its first ACK.
    fn round(b: &mut Bbr, t0: Instant, r: u64, n: u64, lost: u64, in_flight: u64) {
        let prior = (r - 1) * n * 1000;
        for j in 1..=n {
            let now = t0 + Duration::from_millis(10 * r) + Duration::from_micros(j);
            b.on_delivery(now, &sample(prior, prior + j * 1000, 1000, 10, in_flight - 1000));
            if j == 1 {
                (0..lost).for_each(|_| b.on_loss(now, now));
            }
        }
    }

    /// Rounds 1 to `rounds` of 100 datagrams (10 MB/s), the first three at
    /// the 10 ms minimum RTT, the rest at 15 ms (a standing queue, more
    /// than a sixteenth above it); `unsent` told before each ACK. Returns
    /// the round in which probe-RTT began, if it did.
    fn probe_rtt_round(unsent: impl Fn(u64) -> u64, rounds: u64) -> Option<u64> {
        let mut b = Bbr::new(1000);
        let t0 = Instant::now();
        for r in 1..=rounds {
            let prior = (r - 1) * 100_000;
            for j in 1..=100 {
                let now = t0 + Duration::from_millis(10 * r) + Duration::from_micros(j);
                b.on_unsent(unsent(r));
                let mut s = sample(prior, prior + j * 1000, 1000, 10, 100_000);
                s.rtt = Duration::from_millis(if r <= 3 { 10 } else { 15 });
                b.on_delivery(now, &s);
                if b.in_probe_rtt() {
                    return Some(r);
                }
            }
        }
        None
    }

    #[test]
    fn probe_rtt_comes_when_the_minimum_is_stale_unless_the_file_is_nearly_sent() {
        // MIN_RTT_WINDOW (5 s) after the last minimum, at round 3 (30 ms).
        let r = probe_rtt_round(|_| 100 << 20, 700).expect("no probe-RTT in 7 s");
        assert!((500..=505).contains(&r), "probe-RTT in round {r}");
        // 5 MB left at 10 MB/s is half a second: skipped.
        assert_eq!(probe_rtt_round(|_| 5_000_000, 700), None);
        // The file's end still 2 s away when the minimum went stale: probed.
        let r = probe_rtt_round(|r| (700 - r) * 100_000, 700);
        assert!(r.is_some_and(|r| r <= 505), "probe-RTT in round {r:?}");
    }

    #[test]
    fn random_loss_under_the_threshold_sets_no_bound() {
        let mut b = Bbr::new(1000);
        let t0 = Instant::now();
        // 600 datagrams a round (60 MB/s, 10 ms), 1.5% of them lost every round.
        for r in 1..=200 {
            round(&mut b, t0, r, 600, 9, 600_000);
        }
        assert!(!b.in_slow_start());
        assert_eq!((b.overruns(), b.inflight_hi()), (0, None));
    }

    #[test]
    fn an_overrun_round_ends_startup_and_bounds_the_flight_until_probed_up() {
        let mut b = Bbr::new(1000);
        let t0 = Instant::now();
        for r in 1..=3 {
            round(&mut b, t0, r, 100, 0, 100_000);
        }
        assert!(b.in_slow_start());
        // 10 of 100 lost with 300 kB in flight: startup ends at the loss, not at the round's end.
        round(&mut b, t0, 4, 100, 10, 300_000);
        assert!(!b.in_slow_start());
        assert_eq!(b.overruns(), 1);
        let bdp = 100_000;
        let hi = b.inflight_hi().expect("a bound");
        assert!(hi <= 210_000 && hi >= bdp + 50_000, "inflight_hi {hi}");
        assert!(b.window() <= hi);
        // Losses outside startup and the probing phases of the cycle (a
        // round each here) change nothing; in them they lower the bound, to
        // no less than one BDP plus the ACK allowance.
        for r in 5..=14 {
            round(&mut b, t0, r, 100, 10, bdp);
        }
        // Ten lossy rounds: counted everywhere they would be 11 overruns.
        assert!((2..=5).contains(&b.overruns()), "{} overruns", b.overruns());
        let lower = b.inflight_hi().unwrap();
        assert!(lower < hi && lower >= bdp + 50_000, "inflight_hi {lower} after {hi}");
        // Quiet rounds: held for PROBE_UP_WAIT_ROUNDS, then probed up and lifted.
        for r in 15..12 + PROBE_UP_WAIT_ROUNDS {
            round(&mut b, t0, r, 100, 0, bdp);
        }
        assert_eq!(b.inflight_hi(), Some(lower));
        for r in 12 + PROBE_UP_WAIT_ROUNDS..32 + PROBE_UP_WAIT_ROUNDS {
            round(&mut b, t0, r, 100, 0, bdp);
        }
        assert_eq!(b.inflight_hi(), None, "never lifted");
    }

    #[test]
    fn the_first_window_and_rate_come_from_the_handshake_rtt() {
        // What INITIAL_RATE fills in the RTT: ten datagrams at least (1 ms),
        // MAX_INITIAL_WINDOW at most (200 ms); paced at the startup gain.
        for (rtt_ms, iw) in [(1, 10_000), (10, 40_000), (200, 100_000)] {
            let mut b = Bbr::new(1000);
            b.on_handshake_rtt(Duration::from_millis(rtt_ms));
            assert_eq!(b.window(), iw, "RTT {rtt_ms} ms");
            let rate = b.pacing_rate().expect("a rate before any sample");
            let want = STARTUP_GAIN * iw as f64 / (rtt_ms as f64 / 1e3);
            assert!((rate - want).abs() < 1.0, "RTT {rtt_ms} ms: rate {rate}, want {want}");
        }
    }

    #[test]
    fn startup_pacing_never_falls_below_its_rate_so_far() {
        let mut b = Bbr::new(1000);
        let t0 = Instant::now();
        b.on_handshake_rtt(Duration::from_millis(40));
        let first = b.pacing_rate().expect("a rate from the handshake");
        // The first ACK of the first window: 1 kB over 40 ms (25 kB/s), far
        // below what the window is paced at.
        b.on_delivery(t0 + Duration::from_millis(40), &sample(0, 1000, 1000, 40, 39_000));
        assert!(b.in_slow_start());
        assert!(b.pacing_rate().unwrap() >= first, "{:?} < {first}", b.pacing_rate());
        // A sample above it raises it: 400 kB in 40 ms.
        b.on_delivery(t0 + Duration::from_millis(80), &sample(1000, 401_000, 400_000, 40, 400_000));
        let raised = b.pacing_rate().unwrap();
        assert!((raised - STARTUP_GAIN * 10e6).abs() < 1.0, "{raised}");
    }

    #[test]
    fn loss_does_not_shrink_but_rto_does() {
        let mut b = Bbr::new(1000);
        let now = Instant::now();
        let w = b.window();
        b.on_loss(now, now);
        assert_eq!(b.window(), w);
        b.on_rto(now);
        assert!(b.window() < w);
    }

    #[test]
    fn startup_ends_when_bandwidth_stops_growing() {
        let mut b = Bbr::new(1000);
        let t0 = Instant::now();
        let mut delivered = 0;
        // A 10 MB/s path with a 10 ms RTT: 100 kB per round, whatever the window.
        for round in 1..=20u64 {
            let prior = delivered;
            delivered += 100_000;
            b.on_delivery(t0 + Duration::from_millis(10 * round), &sample(prior, delivered, 100_000, 10, 100_000));
        }
        assert!(!b.in_slow_start(), "still in startup");
        assert!((b.bandwidth() - 10e6).abs() < 1.0, "bw {}", b.bandwidth());
        // 2 × BDP (100 kB) + 5 ms of ACK allowance (50 kB) + 3 datagrams.
        assert_eq!(b.window(), 253_000);
        let rate = b.pacing_rate().unwrap();
        assert!((0.75 * 10e6..=1.25 * 10e6 + 1.0).contains(&rate), "rate {rate}");
    }
}
