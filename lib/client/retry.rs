//! `fetch --retry`: which failures are worth another try, and how long to
//! wait before it (as curl's `--retry` and `--retry-delay`).

use std::path::PathBuf;
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

/// What one try of a `fetch` planned and did: what the next try fetches,
/// and what an interruption leaves behind.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// The name the session joined with.
    pub name: Option<String>,
    /// Each file and where it goes.
    pub planned: Vec<(String, PathBuf)>,
    /// The planned outputs passed their checks (none was there already,
    /// unless `--continue` or `--force` said so).
    pub checked: bool,
    /// Files fetched (or found complete).
    pub done: Vec<String>,
}

impl Attempt {
    /// Whether anything is left to fetch (a failure after every file
    /// arrived, while leaving, say, is not worth another try).
    pub fn left(&self) -> bool {
        self.planned.is_empty() || self.planned.iter().any(|(f, _)| !self.done.contains(f))
    }

    /// The files the next try fetches, given those this one was asked for
    /// (none: those it planned, as picked): the ones not fetched yet.
    pub fn next_files(&self, asked: &[String]) -> Vec<String> {
        let mut files =
            if asked.is_empty() { self.planned.iter().map(|(f, _)| f.clone()).collect() } else { asked.to_vec() };
        files.retain(|f| !self.done.contains(f));
        files
    }

    /// The planned downloads not fetched that kept a partial file (a fast
    /// download interrupted), to resume with `fetch --continue`.
    pub fn kept(&self) -> Vec<&(String, PathBuf)> {
        self.planned.iter().filter(|(f, path)| !self.done.contains(f) && super::temp_path_for(path).exists()).collect()
    }
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
