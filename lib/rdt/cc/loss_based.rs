//! What NewReno and CUBIC share: slow start, one reduction per recovery
//! episode (RFC 6582), the collapse on a retransmission timeout, and the
//! HyStart++ exit. Each algorithm adds only its [`Growth`]: how the window
//! grows in congestion avoidance and how it shrinks on loss.

use std::fmt;
use std::time::{Duration, Instant};

use super::{Controller, initial_window, minimum_window};

/// The congestion window of a loss-based controller, in bytes.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// Payload bytes per datagram.
    pub mss: u64,
    /// Bytes the sender may have in flight.
    pub cwnd: u64,
    /// Slow start runs while `cwnd < ssthresh`.
    pub ssthresh: u64,
    /// When the current recovery episode began: packets sent before it
    /// neither grow the window nor reduce it again.
    recovery_start: Option<Instant>,
}

/// An algorithm's part of a loss-based controller.
pub(crate) trait Growth: Send + fmt::Debug {
    /// `bytes` sent after the last reduction were acknowledged in congestion
    /// avoidance at `now`; `srtt` is the smoothed RTT.
    fn on_ack(&mut self, w: &mut Window, now: Instant, bytes: u64, srtt: Duration);
    /// A recovery episode begins at `now` (a loss, or a retransmission
    /// timeout): lower `w.cwnd` and set `w.ssthresh`.
    fn reduce(&mut self, w: &mut Window, now: Instant);
    /// After a retransmission timeout's reduction the window is set to the
    /// minimum; the algorithm resets what it must.
    fn on_rto(&mut self, _w: &Window) {}
}

/// A loss-based controller: the shared [`Window`] rules around a [`Growth`].
#[derive(Debug, Clone)]
pub(crate) struct LossBased<G> {
    w: Window,
    growth: G,
}

impl<G: Growth + Default> LossBased<G> {
    /// A controller with the initial window (RFC 6928), in slow start.
    pub(crate) fn new(mss: u64) -> Self {
        let w = Window { mss, cwnd: initial_window(mss), ssthresh: u64::MAX, recovery_start: None };
        Self { w, growth: G::default() }
    }
}

impl<G: Growth> LossBased<G> {
    fn in_recovery(&self, sent: Instant) -> bool {
        self.w.recovery_start.is_some_and(|r| sent <= r)
    }
}

impl<G: Growth> Controller for LossBased<G> {
    fn window(&self) -> u64 {
        self.w.cwnd
    }

    fn in_slow_start(&self) -> bool {
        self.w.cwnd < self.w.ssthresh
    }

    fn exit_slow_start(&mut self) {
        self.w.ssthresh = self.w.cwnd;
    }

    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, srtt: Duration) {
        if self.in_recovery(sent) {
            return;
        }
        if self.in_slow_start() {
            self.w.cwnd += bytes;
        } else {
            self.growth.on_ack(&mut self.w, now, bytes, srtt);
        }
    }

    fn on_loss(&mut self, now: Instant, sent: Instant) {
        if self.in_recovery(sent) {
            return;
        }
        self.w.recovery_start = Some(now);
        self.growth.reduce(&mut self.w, now);
    }

    fn on_rto(&mut self, now: Instant) {
        self.w.recovery_start = Some(now);
        self.growth.reduce(&mut self.w, now);
        self.w.cwnd = minimum_window(self.w.mss);
        self.growth.on_rto(&self.w);
    }
}
