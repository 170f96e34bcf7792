//! What the fast sender knows of the path (after quinn-proto's
//! `PathData`): its congestion controller, RTT estimate, pacer and datagram
//! size, kept together because the pacing policy reads them all.

use std::time::Instant;

use super::Config;
use super::mtu::MtuDiscovery;
use super::pacer::{Pacer, Pacing};
use crate::rdt::cc::Controller;
use crate::rdt::rtt::RttEstimator;

/// The sender's view of the path.
#[derive(Debug)]
pub(crate) struct PathData {
    /// Congestion control.
    pub(crate) cc: Box<dyn Controller>,
    /// RTT estimation and the RTO.
    pub(crate) rtt: RttEstimator,
    /// Pacing: tokens in bytes, refilled at the pacing rate.
    pub(crate) pacer: Pacer,
    /// File bytes per DATA now, raised by acknowledged path-MTU probes.
    pub(crate) mtu: MtuDiscovery,
    /// Datagrams per pacing burst at least.
    burst: u32,
}

impl PathData {
    /// The path as `cfg` starts it at `now`: a full bucket of `pacing_burst` datagrams.
    pub(crate) fn new(cfg: &Config, now: Instant) -> Self {
        let mss = cfg.payload_len() as u64;
        Self {
            cc: cfg.cc.build(mss),
            rtt: RttEstimator::new(cfg.min_rto),
            pacer: Pacer::new((cfg.pacing_burst as f64) * mss as f64, now),
            mtu: MtuDiscovery::new(cfg),
            burst: cfg.pacing_burst,
        }
    }

    /// What the pacing policy reads of the path now.
    pub(crate) fn pacing(&self) -> Pacing {
        Pacing {
            cc_rate: self.cc.pacing_rate(),
            slow_start: self.cc.in_slow_start(),
            window: self.cc.window(),
            srtt: self.rtt.srtt(),
            payload: self.mtu.payload(),
            burst: self.burst,
        }
    }
}
