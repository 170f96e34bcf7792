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
//! one min-RTT each), and probe-RTT (when the min RTT is 5 s old, the
//! window drops to half the BDP, as in BBR v2, for 200 ms so queues drain
//! and a fresh minimum is seen). Window = 2 × BDP plus 5 ms at the bandwidth plus 3 datagrams; an RTO resets it to
//! the minimum, from where it grows by the bytes acknowledged.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Controller, RateSample, initial_window, minimum_window};

/// Startup gain: 2/ln 2, the smallest that doubles the delivery rate each round.
pub const STARTUP_GAIN: f64 = 2.885;
/// Rounds over which the bottleneck bandwidth is the max of the samples.
pub const BW_ROUNDS: u64 = 10;
/// How long a min-RTT estimate stays valid without a new minimum. BBR v1
/// uses 10 s; 5 s (BBR v2's probe-RTT interval) lets a flow that started
/// behind a standing queue correct its inflated minimum sooner, which the
/// two-flow fairness simulation needs (10 s: 3:1 shares; 5 s: within 1%).
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(5);
/// How long probe-RTT holds the small window.
pub const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Window allowance for ACKs that come late or in bunches (the receiver's
/// delayed-ACK timer, scheduling): without it a path whose RTT is far below
/// this (loopback) is held by the window, not the bandwidth.
pub const ACK_AGGREGATION: Duration = Duration::from_millis(5);
/// Pacing gains of the probe-bandwidth cycle.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Window gain in probe-bandwidth: 2 × BDP absorbs delayed and stretched ACKs.
const CWND_GAIN: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

/// BBR state.
#[derive(Debug, Clone)]
pub struct Bbr {
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
    probe_rtt_done: Option<Instant>,
}

impl Bbr {
    /// A controller with the initial window, in startup.
    pub fn new(mss: u64) -> Self {
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
            probe_rtt_done: None,
        }
    }

    /// Bottleneck bandwidth estimate in bytes per second (0 before any sample).
    pub fn bandwidth(&self) -> f64 {
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
            Mode::Startup | Mode::Drain => STARTUP_GAIN,
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

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        self.cycle_index = 2;
        self.cycle_stamp = Some(now);
    }
}

impl Controller for Bbr {
    fn window(&self) -> u64 {
        if self.mode == Mode::ProbeRtt { self.cwnd.min(self.probe_rtt_window()) } else { self.cwnd }
    }

    fn in_slow_start(&self) -> bool {
        self.mode == Mode::Startup
    }

    /// BBR grows its window from delivery samples ([`Controller::on_delivery`]).
    fn on_ack(&mut self, _now: Instant, _sent: Instant, _bytes: u64, _srtt: Duration) {}

    /// Random loss is not congestion to BBR: the model already sees the
    /// delivery rate fall if the bottleneck is really overrun.
    fn on_loss(&mut self, _now: Instant, _sent: Instant) {}

    fn on_rto(&mut self, _now: Instant) {
        self.cwnd = minimum_window(self.mss);
    }

    /// BBR leaves startup on its own evidence (bandwidth plateau), not on RTT growth.
    fn exit_slow_start(&mut self) {}

    fn on_delivery(&mut self, now: Instant, s: &RateSample) {
        let round_start = s.prior_delivered >= self.next_round_delivered;
        if round_start {
            self.next_round_delivered = s.total_delivered;
            self.round += 1;
        }
        self.update_bw(s);
        // Min RTT, and probe-RTT when it is stale.
        let expired = self.min_rtt_stamp.is_some_and(|t| now.saturating_duration_since(t) > MIN_RTT_WINDOW);
        if !s.rtt.is_zero() && (self.min_rtt.is_none_or(|m| s.rtt <= m) || expired) {
            self.min_rtt = Some(s.rtt);
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
        self.check_full_pipe(round_start, s.app_limited);
        if self.mode == Mode::Startup && self.filled_pipe {
            self.mode = Mode::Drain;
        }
        if self.mode == Mode::Drain && self.bdp().is_some_and(|b| s.in_flight <= b) {
            self.enter_probe_bw(now);
        }
        if self.mode == Mode::ProbeBw
            && let (Some(t), Some(rtt)) = (self.cycle_stamp, self.min_rtt)
            && now.saturating_duration_since(t) >= rtt
        {
            self.cycle_index = (self.cycle_index + 1) % CYCLE.len();
            self.cycle_stamp = Some(now);
        }
        // Window: grow by what was delivered, up to gain × BDP + 3 datagrams.
        // Before the pipe is full, grow while below the target (startup).
        let grown = self.cwnd.saturating_add(s.acked);
        self.cwnd = match self.bdp() {
            Some(bdp) => {
                let extra = (self.bandwidth() * ACK_AGGREGATION.as_secs_f64()) as u64;
                let target = (self.cwnd_gain() * bdp as f64) as u64 + extra + 3 * self.mss;
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

    fn pacing_rate(&self) -> Option<f64> {
        let bw = self.bandwidth();
        (bw > 0.0).then_some(self.pacing_gain() * bw)
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
