//! Pluggable congestion control: a [`Controller`] trait and one file per
//! algorithm. The fast sender asks the controller for its window and paces
//! at `window / SRTT` (×2 in slow start, ×1.25 after, as Linux does).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

pub mod cubic;
pub mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// A congestion controller, driven by the sender's loss detection.
pub trait Controller: Send + fmt::Debug {
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
}

/// Which controller a transfer uses (`serve --cc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 5681/6582, the reference implementation's family.
    NewReno,
    /// RFC 9438, the Linux default.
    #[default]
    Cubic,
}

/// An unknown `--cc` name.
#[derive(Debug, thiserror::Error)]
#[error("unknown congestion controller {0:?} (expected newreno or cubic)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "newreno" | "reno" => Ok(Self::NewReno),
            "cubic" => Ok(Self::Cubic),
            _ => Err(UnknownAlgorithm(s.to_owned())),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NewReno => "newreno",
            Self::Cubic => "cubic",
        })
    }
}

impl Algorithm {
    /// A controller for datagrams carrying `mss` bytes of payload.
    pub fn build(self, mss: u64) -> Box<dyn Controller> {
        match self {
            Self::NewReno => Box::new(NewReno::new(mss)),
            Self::Cubic => Box::new(Cubic::new(mss)),
        }
    }
}

/// Initial window: 10 segments (RFC 6928), as QUIC and Linux use.
pub fn initial_window(mss: u64) -> u64 {
    10 * mss
}

/// Minimum window: 2 segments (RFC 5681 loss window is 1; 2 keeps ACK clocking alive).
pub fn minimum_window(mss: u64) -> u64 {
    2 * mss
}
