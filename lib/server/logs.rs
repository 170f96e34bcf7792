//! Rate-limited logging of what a remote peer can trigger.
//!
//! Every log line that a peer can cause (a refused connection, a stray
//! datagram, bad input, a join...) goes through [`Logs::allow`] with its kind
//! (the message) and the peer's address: the first [`BURST`] lines of a kind
//! from one address per period are written, the rest are counted, and
//! [`Logs::flush`] (called once per period by the server) writes one summary
//! line per kind and address: "N more suppressed in the last 10 s". A stranger
//! who sends a thousand datagrams costs a few lines, not a thousand.
//!
//! [`Limiter`] is the pure counting core; [`Logs`] is its shared handle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lines of one kind from one address written per period.
pub(crate) const BURST: u32 = 5;

/// Most (kind, address) pairs tracked per period; past it, new pairs share
/// one entry, so a flood from many addresses cannot grow the table.
const MAX_KEYS: usize = 4096;

/// The counting core: no clock, no I/O. A period ends with [`flush`](Self::flush).
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    seen: HashMap<(&'static str, Option<IpAddr>), (u32, u64)>,
}

impl Limiter {
    /// True if a line of `kind` from `from` may be written now.
    pub(crate) fn allow(&mut self, kind: &'static str, from: IpAddr) -> bool {
        let key = if self.seen.len() >= MAX_KEYS && !self.seen.contains_key(&(kind, Some(from))) {
            (kind, None)
        } else {
            (kind, Some(from))
        };
        let e = self.seen.entry(key).or_default();
        if e.0 < BURST && key.1.is_some() {
            e.0 += 1;
            true
        } else {
            e.1 += 1;
            false
        }
    }

    /// Ends the period: what was suppressed, per kind and address (`None`:
    /// addresses past the table's bound), and a fresh count for everyone.
    pub(crate) fn flush(&mut self) -> Vec<(&'static str, Option<IpAddr>, u64)> {
        let mut out: Vec<_> =
            self.seen.drain().filter(|(_, (_, n))| *n > 0).map(|((k, a), (_, n))| (k, a, n)).collect();
        out.sort();
        out
    }
}

/// Shared handle to the server's [`Limiter`]; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Logs {
    limiter: Arc<Mutex<Limiter>>,
    period: Duration,
}

impl Logs {
    /// A limiter whose period is `period` (the server flushes it that often).
    pub(crate) fn new(period: Duration) -> Self {
        Logs { limiter: Arc::default(), period }
    }

    /// See [`Limiter::allow`].
    pub(crate) fn allow(&self, kind: &'static str, from: IpAddr) -> bool {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner()).allow(kind, from)
    }

    /// Writes the summary lines of the period that ends, then starts the next.
    pub(crate) fn flush(&self) {
        let suppressed = self.limiter.lock().unwrap_or_else(|e| e.into_inner()).flush();
        let period = humantime::format_duration(self.period);
        for (kind, from, n) in suppressed {
            let source = from.map_or_else(|| "many addresses".to_string(), |a| a.to_string());
            tracing::warn!(kind, source = %source, suppressed = n, "{kind}: {n} more suppressed in the last {period}");
        }
    }

    /// Flushes once per period until the future is dropped.
    pub(crate) async fn flush_every_period(self) {
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.flush();
        }
    }
}

/// Logs at `$level` with tracing's field syntax, if [`Logs::allow`] lets this
/// kind (the message, a literal) from `$from` through.
/// With `$kind => $level!(...)`, the kind is given apart from a message
/// that has arguments.
macro_rules! limited {
    ($logs:expr, $from:expr, $level:ident!($($fields:tt)*), $msg:literal) => {
        if $logs.allow($msg, $from) {
            tracing::$level!($($fields)* $msg)
        }
    };
    ($logs:expr, $from:expr, $kind:literal => $level:ident!($($args:tt)*)) => {
        if $logs.allow($kind, $from) {
            tracing::$level!($($args)*)
        }
    };
}
pub(crate) use limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_kind_and_source_then_a_count() {
        let mut l = Limiter::default();
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let allowed = (0..1000).filter(|_| l.allow("stray", a)).count();
        assert_eq!(allowed, BURST as usize);
        // Another kind, or another source, has its own budget.
        assert!(l.allow("other", a));
        assert!(l.allow("stray", b));
        assert_eq!(l.flush(), vec![("stray", Some(a), 1000 - u64::from(BURST))]);
        // A new period: the budget is back, nothing left to report.
        assert!(l.allow("stray", a));
        assert_eq!(l.flush(), vec![]);
    }

    #[test]
    fn many_sources_share_one_entry_past_the_bound() {
        let mut l = Limiter::default();
        for i in 0..MAX_KEYS as u32 + 100 {
            l.allow("stray", IpAddr::from(i.to_be_bytes()));
        }
        assert!(l.seen.len() <= MAX_KEYS + 1);
        assert_eq!(l.flush(), vec![("stray", None, 100)]);
    }
}
