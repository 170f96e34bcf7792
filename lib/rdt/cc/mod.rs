//! Pluggable congestion control: a `Controller` trait and one file per
//! algorithm: `bbr` (model based, the default), `cubic` and `newreno`.
//! NewReno and CUBIC share the loss-based rules of
//! `loss_based` and differ only in their `loss_based::Growth`. The fast
//! sender asks the controller for its window and paces at the controller's
//! `Controller::pacing_rate` when it has one (BBR), else at `window / SRTT`
//! (×2 in slow start, ×1.25 after, as Linux does).

use std::fmt;
use std::time::{Duration, Instant};

mod bbr;
mod cubic;
pub(crate) mod hystart;
mod loss_based;
mod newreno;

pub(crate) use bbr::Bbr;
pub(crate) use cubic::Cubic;
pub(crate) use newreno::NewReno;

/// A congestion controller, driven by the sender's loss detection.
pub(crate) trait Controller: Send + fmt::Debug {
    /// Bytes the sender may have in flight.
    fn window(&self) -> u64;
    /// Whether the controller is in slow start (for pacing gain and stats).
    fn in_slow_start(&self) -> bool;
    /// `bytes` sent at `sent` were acknowledged at `now`; `srtt` is the current smoothed RTT.
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, srtt: Duration);
    /// A packet sent at `sent` was declared lost at `now`. Only one reduction
    /// happens per recovery episode (packets sent before the episode began are ignored).
    fn on_loss(&mut self, now: Instant, sent: Instant);
    /// The retransmission timer expired: collapse to the minimum window.
    fn on_rto(&mut self, now: Instant);
    /// The sender saw the RTT climb in slow start (HyStart++, RFC 9406): a
    /// queue is building, so stop doubling and continue in congestion avoidance.
    fn exit_slow_start(&mut self);
    /// A delivery-rate sample for each newly acknowledged packet (for
    /// model-based controllers such as BBR; loss-based ones ignore it).
    fn on_delivery(&mut self, _now: Instant, _sample: &RateSample) {}
    /// The round-trip time the handshake measured, before any data is
    /// sent (a controller may size its first window and rate from it).
    fn on_handshake_rtt(&mut self, _rtt: Duration) {}
    /// How many bytes of the file are still to be sent for the first time
    /// (given before each ACK's samples): a controller may skip a
    /// measurement that pays off only after the transfer has ended.
    fn on_unsent(&mut self, _bytes: u64) {}
    /// The rate (bytes per second) the sender should pace at, if the
    /// controller sets it; `None` leaves pacing to the window / SRTT rule.
    fn pacing_rate(&self) -> Option<f64> {
        None
    }
}

/// One delivery-rate sample (draft-cheng-iccrg-delivery-rate-estimation):
/// taken when a packet is acknowledged, over the interval since the
/// packet it was sent after was delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateSample {
    /// Bytes newly acknowledged by this packet.
    pub acked: u64,
    /// Bytes delivered during `interval` (the rate is `delivered / interval`).
    pub delivered: u64,
    /// Total bytes delivered when the acknowledged packet was sent.
    pub prior_delivered: u64,
    /// Total bytes delivered now, this packet included.
    pub total_delivered: u64,
    /// The longer of the send and the ACK intervals (guards against ACK compression).
    pub interval: Duration,
    /// This packet's round-trip time (send to acknowledgement); zero when
    /// unknown: for a retransmission the ACK may be for the first copy
    /// (Karn), and such a too-small RTT would become BBR's min-RTT.
    pub rtt: Duration,
    /// Bytes in flight after this acknowledgement.
    pub in_flight: u64,
    /// Whether the sender was limited by the file's end or flow control
    /// rather than by the window when the packet was sent.
    pub app_limited: bool,
}

/// Which controller a transfer uses (`serve --cc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 5681/6582, the reference implementation's family.
    NewReno,
    /// RFC 9438, the Linux default.
    Cubic,
    /// BBR v1-style, model based: ignores random loss (see `bbr`). The
    /// default: on lossy long paths it is several times faster than CUBIC
    /// (`cargo bench --bench rdt`), and on par on loopback.
    #[default]
    Bbr,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NewReno => "newreno",
            Self::Cubic => "cubic",
            Self::Bbr => "bbr",
        })
    }
}

impl Algorithm {
    /// A controller for datagrams carrying `mss` bytes of payload.
    pub(crate) fn build(self, mss: u64) -> Box<dyn Controller> {
        match self {
            Self::NewReno => Box::new(NewReno::new(mss)),
            Self::Cubic => Box::new(Cubic::new(mss)),
            Self::Bbr => Box::new(Bbr::new(mss)),
        }
    }
}

/// Initial window: 10 segments (RFC 6928), as QUIC and Linux use.
pub(crate) fn initial_window(mss: u64) -> u64 {
    10 * mss
}

/// Minimum window: 2 segments (RFC 5681 loss window is 1; 2 keeps ACK clocking alive).
pub(crate) fn minimum_window(mss: u64) -> u64 {
    2 * mss
}
