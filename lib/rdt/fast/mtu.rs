//! Path-MTU probing (DPLPMTUD, RFC 8899, simplified): the datagram size a
//! fast sender uses, and when it tries a larger one.
//!
//! Sizes come from [`Config::probe_datagrams`], tried upwards, one probe
//! in flight at a time, and only after the first RTT sample. A probe is a
//! DATA datagram larger than the current size. Its acknowledgement raises
//! the size (if the congestion window holds [`PROBE_WINDOW`] datagrams of
//! it) and lets the next size be tried; its loss ends probing, and is not
//! taken as congestion by the sender.

use super::{Config, DATA_OVERHEAD};

/// A larger datagram is probed for and adopted only while the congestion
/// window holds at least this many of them: with a window of a few big
/// datagrams, loss recovery degrades to timeouts.
pub(crate) const PROBE_WINDOW: u64 = 16;

/// The current datagram size and the probing state.
#[derive(Debug, Clone)]
pub(crate) struct MtuDiscovery {
    /// File bytes per DATA now.
    payload: u64,
    /// Datagram sizes to try, in order (empty when probing is off).
    sizes: Vec<usize>,
    /// Index into `sizes` of the next to try (`usize::MAX`: probing ended).
    next: usize,
    /// A probe is in flight.
    outstanding: bool,
}

impl MtuDiscovery {
    /// Starts at `cfg.max_datagram`, probing `cfg.probe_datagrams` if `cfg.probe`.
    pub(crate) fn new(cfg: &Config) -> Self {
        let sizes = if cfg.probe { cfg.probe_datagrams.clone() } else { Vec::new() };
        Self { payload: cfg.payload_len() as u64, sizes, next: 0, outstanding: false }
    }

    /// File bytes per DATA datagram now.
    pub(crate) fn payload(&self) -> u64 {
        self.payload
    }

    /// The payload of a probe to send now, if one should go: none is in
    /// flight, an RTT was measured (`has_rtt`), a larger size is left, and
    /// the congestion `window` holds [`PROBE_WINDOW`] datagrams of it.
    pub(crate) fn probe_payload(&self, has_rtt: bool, window: u64) -> Option<u64> {
        if self.outstanding || !has_rtt {
            return None;
        }
        let d = *self.sizes.get(self.next)?;
        let payload = d.saturating_sub(DATA_OVERHEAD) as u64;
        (payload > self.payload && window >= PROBE_WINDOW * payload).then_some(payload)
    }

    /// Whether new DATA of `len` file bytes is a probe (larger than the current size).
    pub(crate) fn is_probe(&self, len: u64) -> bool {
        len > self.payload
    }

    /// A probe went out.
    pub(crate) fn on_probe_sent(&mut self) {
        self.outstanding = true;
    }

    /// A probe of `len` file bytes was acknowledged, with the congestion
    /// `window` after it: the path carries that size; use it from now on
    /// if the window holds enough of them, and try the next size.
    pub(crate) fn on_probe_acked(&mut self, len: u64, window: u64) {
        if window >= PROBE_WINDOW * len {
            self.payload = self.payload.max(len);
        }
        self.outstanding = false;
        self.next = self.next.saturating_add(1);
    }

    /// A probe was lost: too big for the path (or unlucky); stop probing upwards.
    pub(crate) fn on_probe_lost(&mut self) {
        self.outstanding = false;
        self.next = usize::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVERHEAD: u64 = DATA_OVERHEAD as u64;
    const BIG: u64 = u64::MAX / 64;

    fn cfg(sizes: &[usize]) -> Config {
        Config { max_datagram: 1452, probe_datagrams: sizes.to_vec(), probe: true, ..Config::default() }
    }

    #[test]
    fn probes_each_size_upwards_one_at_a_time() {
        let mut m = MtuDiscovery::new(&cfg(&[8972, 16_384, 65_000]));
        assert_eq!(m.payload(), 1452 - OVERHEAD);
        // Nothing before the first RTT sample.
        assert_eq!(m.probe_payload(false, BIG), None);
        let mut adopted = Vec::new();
        for want in [8972, 16_384, 65_000] {
            let p = m.probe_payload(true, BIG).expect("a probe is due");
            assert_eq!(p, want - OVERHEAD);
            assert!(m.is_probe(p) && !m.is_probe(m.payload()));
            m.on_probe_sent();
            // One at a time.
            assert_eq!(m.probe_payload(true, BIG), None);
            m.on_probe_acked(p, BIG);
            adopted.push(m.payload());
        }
        assert_eq!(adopted, [8972 - OVERHEAD, 16_384 - OVERHEAD, 65_000 - OVERHEAD]);
        // No larger size is left.
        assert_eq!(m.probe_payload(true, BIG), None);
    }

    #[test]
    fn a_lost_probe_ends_probing_and_keeps_the_size() {
        let mut m = MtuDiscovery::new(&cfg(&[8972, 16_384, 65_000]));
        let p = m.probe_payload(true, BIG).unwrap();
        m.on_probe_sent();
        m.on_probe_acked(p, BIG);
        assert_eq!(m.probe_payload(true, BIG), Some(16_384 - OVERHEAD));
        m.on_probe_sent();
        m.on_probe_lost();
        assert_eq!(m.payload(), 8972 - OVERHEAD);
        assert_eq!(m.probe_payload(true, BIG), None);
    }

    #[test]
    fn only_while_the_window_holds_sixteen_of_the_new_size() {
        let mut m = MtuDiscovery::new(&cfg(&[8972]));
        let p = 8972 - OVERHEAD;
        assert_eq!(m.probe_payload(true, PROBE_WINDOW * p - 1), None);
        assert_eq!(m.probe_payload(true, PROBE_WINDOW * p), Some(p));
        m.on_probe_sent();
        // Acknowledged after the window shrank: the size is not adopted,
        // but the path did carry it, so the next size (none here) is tried.
        m.on_probe_acked(p, PROBE_WINDOW * p - 1);
        assert_eq!(m.payload(), 1452 - OVERHEAD);
        assert_eq!(m.probe_payload(true, BIG), None);
    }

    #[test]
    fn sizes_not_above_the_current_one_and_disabled_probing_send_nothing() {
        // 1400 is below the 1452 in use: not a probe, and it blocks the list.
        let m = MtuDiscovery::new(&cfg(&[1400, 9000]));
        assert_eq!(m.probe_payload(true, BIG), None);
        let m = MtuDiscovery::new(&Config { probe: false, ..cfg(&[9000]) });
        assert_eq!(m.probe_payload(true, BIG), None);
        assert_eq!(m.payload(), 1452 - OVERHEAD);
    }
}
