//! Surviving a server restart (`say --reconnect`, `join --reconnect`): capped
//! exponential backoff with jitter, a bounded backlog of lines read while the
//! server is away, and [`rejoin`], which tries until the room takes us back.
//!
//! [`Backoff`] and `Backlog` are pure (randomness from a seed, no clock);
//! [`rejoin`] is the thin async loop over them.

use std::collections::VecDeque;
use std::time::Duration;

use crate::exit::Exit;
use crate::rdt::sim::Rng;

use super::{ClientError, Session, Updates};

/// Lines kept while the server is away, by default.
pub const DEFAULT_BACKLOG: usize = 10_000;

/// Capped exponential backoff with "equal jitter": the n-th delay is drawn
/// uniformly from `[b/2, b]` where `b = min(cap, initial * 2^n)`, so clients
/// that lost the same server do not all come back at the same instant.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    /// Delays start near `initial` and double up to `cap`; `seed` drives the jitter.
    pub fn new(initial: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff { initial: initial.min(cap), cap, attempt: 0, rng: Rng::new(seed) }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.initial.saturating_mul(1u32 << self.attempt.min(20)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        base / 2 + base.mul_f64(self.rng.unit() / 2.0)
    }

    /// Attempts since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial delay (after a successful rejoin).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Lines waiting to be sent, oldest first, at most `cap`: past it the oldest
/// is dropped and counted.
#[derive(Clone, Debug)]
pub(crate) struct Backlog {
    lines: VecDeque<String>,
    cap: usize,
    dropped: u64,
}

impl Backlog {
    /// An empty backlog holding at most `cap` lines (at least one).
    pub(crate) fn new(cap: usize) -> Backlog {
        Backlog { lines: VecDeque::new(), cap: cap.max(1), dropped: 0 }
    }

    /// Adds a line at the end, dropping the oldest one if full.
    pub(crate) fn push(&mut self, line: String) {
        if self.lines.len() == self.cap {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    /// The oldest line, still kept until [`pop`](Self::pop) (so a line whose
    /// send failed is sent again after the rejoin).
    pub(crate) fn front(&self) -> Option<&String> {
        self.lines.front()
    }

    /// Removes the oldest line (after it was sent).
    pub(crate) fn pop(&mut self) -> Option<String> {
        self.lines.pop_front()
    }

    /// Lines waiting.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }

    /// Lines dropped so far because the backlog was full; reading resets the count.
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

/// One failed rejoin attempt, for the caller to report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Attempt {
    /// 1 for the first attempt after the loss.
    pub attempt: u32,
    /// Why it failed.
    pub error: String,
    /// How long until the next attempt.
    #[serde(serialize_with = "millis")]
    pub retry_in: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Whether a failed join is worth retrying: everything a restarting server
/// does (refused connections, silence, a name the old session still holds,
/// a full room) is; a name the server calls invalid, or one that cannot be
/// encoded, is not.
pub fn retryable(e: &ClientError) -> bool {
    !matches!(e.exit(), Exit::InvalidName) && !matches!(e, ClientError::Encode(_))
}

/// Joins `server` as `name` again, after waiting per `backoff`, until it
/// works; `report` is called for each failed attempt. Returns the first error
/// that is not [`retryable`]. Cancel it by dropping the future (Ctrl-C).
pub async fn rejoin(
    server: &str,
    name: &str,
    timeout: Duration,
    backoff: &mut Backoff,
    report: impl FnMut(&Attempt),
) -> Result<(Session, Updates), ClientError> {
    tokio::time::sleep(backoff.next_delay()).await;
    join_until(server, name, timeout, backoff, retryable, report).await
}

/// Whether a failed first join is worth waiting for: the server is not up
/// yet (the connection is refused or not answered), as `curl
/// --retry-connrefused` and autossh wait for. A name that does not resolve,
/// a name taken, or a peer that is not a chat server is not.
pub(crate) fn first_retryable(e: &ClientError) -> bool {
    matches!(e, ClientError::Connect { .. } | ClientError::Timeout { .. })
}

/// The first join of a command with reconnection on: tried at once, then
/// again per `backoff` while the server is not up yet (`first_retryable`);
/// `report` is called for each failed attempt. Cancel it by dropping the
/// future (Ctrl-C).
pub async fn first_join(
    server: &str,
    name: &str,
    timeout: Duration,
    backoff: &mut Backoff,
    report: impl FnMut(&Attempt),
) -> Result<(Session, Updates), ClientError> {
    join_until(server, name, timeout, backoff, first_retryable, report).await
}

/// Joins at once, then again per `backoff` after each failure that `retry`
/// accepts (reported as attempt N with the wait before the next).
async fn join_until(
    server: &str,
    name: &str,
    timeout: Duration,
    backoff: &mut Backoff,
    retry: fn(&ClientError) -> bool,
    mut report: impl FnMut(&Attempt),
) -> Result<(Session, Updates), ClientError> {
    for attempt in 1.. {
        match Session::join(server, name, timeout).await {
            Ok(joined) => {
                backoff.reset();
                return Ok(joined);
            }
            Err(e) if retry(&e) => {
                let delay = backoff.next_delay();
                let error = super::error_chain(&e);
                report(&Attempt { attempt, error, retry_in: delay });
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("a join is attempted until it works or fails for good")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 7);
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let base = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(1));
            assert!(*d >= base / 2 && *d <= base, "attempt {n}: {d:?} outside [{:?}, {base:?}]", base / 2);
        }
        assert_eq!(b.attempts(), 8);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn backoff_is_seeded() {
        let run = |seed| {
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30), seed);
            (0..5).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn backlog_drops_the_oldest_and_counts() {
        let mut b = Backlog::new(3);
        for i in 0..5 {
            b.push(i.to_string());
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.take_dropped(), 2);
        assert_eq!(b.take_dropped(), 0);
        assert_eq!(b.front().map(String::as_str), Some("2"));
        assert_eq!(b.pop().as_deref(), Some("2"));
        assert_eq!(b.pop().as_deref(), Some("3"));
        assert_eq!(b.pop().as_deref(), Some("4"));
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn only_a_bad_name_is_fatal() {
        use crate::wire::ErrorCode;
        assert!(!retryable(&ClientError::Refused(ErrorCode::INVALID_NAME)));
        assert!(retryable(&ClientError::Refused(ErrorCode::NAME_TAKEN)));
        assert!(retryable(&ClientError::Closed));
        assert!(retryable(&ClientError::Timeout { what: "x" }));
    }
}
