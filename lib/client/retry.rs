//! `fetch --retry`: which failures are worth another try, and how long to
//! wait before it (as curl's `--retry` and `--retry-delay`).

use std::time::Duration;

use crate::exit::Exit;

/// The longest wait between two tries of the growing backoff.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How often, and after how long, to try again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retry {
    /// Tries after the first (0: none).
    pub tries: u32,
    /// A fixed wait before each retry; `None`: 1 s, doubling each time, at
    /// most `MAX_BACKOFF`.
    pub delay: Option<Duration>,
}

impl Retry {
    /// The wait before retry number `n` (1 for the first retry).
    pub fn wait(&self, n: u32) -> Duration {
        self.delay.unwrap_or_else(|| {
            let secs = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
            Duration::from_secs(secs).min(MAX_BACKOFF)
        })
    }
}

/// Whether a failure that ended with `exit` may go away by itself: no
/// transfer port free (`4062`) or a download lost on the way
/// ([`Exit::TransferFailed`]), the server refusing connections
/// ([`Exit::Connect`]), gone ([`Exit::ServerGone`]) or silent
/// ([`Exit::Timeout`]). A bad name, a missing file, a refused output path or
/// Ctrl-C are not retried.
pub fn retryable(exit: Exit) -> bool {
    matches!(exit, Exit::TransferFailed | Exit::Connect | Exit::ServerGone | Exit::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_a_delay_replaces_it() {
        let r = Retry { tries: 10, delay: None };
        let waits: Vec<u64> = (1..=8).map(|n| r.wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(r.wait(200), MAX_BACKOFF);
        let fixed = Retry { tries: 3, delay: Some(Duration::from_millis(250)) };
        assert!((1..=3).all(|n| fixed.wait(n) == Duration::from_millis(250)));
    }

    #[test]
    fn only_passing_failures_are_retried() {
        for e in [Exit::TransferFailed, Exit::Connect, Exit::ServerGone, Exit::Timeout] {
            assert!(retryable(e), "{e:?}");
        }
        for e in [Exit::NoSuchFile, Exit::NameTaken, Exit::Failure, Exit::Usage, Exit::Interrupted, Exit::Protocol] {
            assert!(!retryable(e), "{e:?}");
        }
    }
}
