//! Bounded listening: which updates a script waits for, and when it has
//! waited enough (`join --count N --for DURATION --from NAME --private
//! --match REGEX`).
//!
//! [`Listen`] is a pure state machine: the caller hands it each update and
//! the current time, and asks it for the deadline to sleep until. It keeps
//! its budget (matches so far, the deadline) across reconnects because the
//! caller keeps the same value.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use chatctl::client::{Filter, Listen, Verdict};
//! use chatctl::wire::Update;
//!
//! let now = Instant::now();
//! let filter = Filter { from: Some("alice".into()), private: true, pattern: None };
//! let mut l = Listen::new(filter, Some(1), Some(Duration::from_secs(30)), now);
//! let noise = Update::Broadcast { from: "alice".into(), text: "hi all".into() };
//! assert_eq!(l.update(&noise), Verdict::Skip);
//! let reply = Update::Whisper { from: "alice".into(), text: "yes".into() };
//! assert_eq!(l.update(&reply), Verdict::ShowAndStop);
//! ```

use std::time::{Duration, Instant};

use regex::Regex;

use crate::wire::Update;

/// Which updates count. Every set condition must hold; with none set, every
/// update matches.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only messages (private or public) sent by this user.
    pub from: Option<String>,
    /// Only private messages.
    pub private: bool,
    /// Only messages whose text matches.
    pub pattern: Option<Regex>,
}

impl Filter {
    /// True when no condition is set (every update matches).
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && !self.private && self.pattern.is_none()
    }

    /// Whether `u` passes every condition. Joins and leaves have no sender
    /// and no text: they pass only an empty filter.
    pub fn matches(&self, u: &Update) -> bool {
        if self.is_empty() {
            return true;
        }
        let (from, text, private) = match u {
            Update::Whisper { from, text } => (from, text, true),
            Update::Broadcast { from, text } => (from, text, false),
            Update::Joined { .. } | Update::Left { .. } => return false,
        };
        self.from.as_ref().is_none_or(|f| f == from)
            && (!self.private || private)
            && self.pattern.as_ref().is_none_or(|p| p.is_match(text))
    }
}

/// What to do with one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It does not match: do not show it.
    Skip,
    /// Show it and go on.
    Show,
    /// Show it; the `--count` budget is spent, so stop.
    ShowAndStop,
}

/// How a bounded listen ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The count was reached, or the time ran out after at least one match.
    Done,
    /// The time ran out with nothing matched (exit 9).
    NothingInTime,
}

/// A filter with a budget: at most `count` matches, for at most a duration.
#[derive(Clone, Debug)]
pub struct Listen {
    filter: Filter,
    count: Option<u64>,
    deadline: Option<Instant>,
    matched: u64,
}

impl Listen {
    /// Starts listening at `now`: stop after `count` matches (if set) or when
    /// `duration` has passed (if set).
    pub fn new(filter: Filter, count: Option<u64>, duration: Option<Duration>, now: Instant) -> Listen {
        Listen { filter, count, deadline: duration.map(|d| now + d), matched: 0 }
    }

    /// True when a budget is set: then the end of input does not end the
    /// listen, the budget does.
    pub fn bounded(&self) -> bool {
        self.count.is_some() || self.deadline.is_some()
    }

    /// Matches so far.
    pub fn matched(&self) -> u64 {
        self.matched
    }

    /// When the time runs out, if `--for` was given.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Decides about one update.
    pub fn update(&mut self, u: &Update) -> Verdict {
        if !self.filter.matches(u) {
            return Verdict::Skip;
        }
        self.matched += 1;
        if self.count.is_some_and(|c| self.matched >= c) { Verdict::ShowAndStop } else { Verdict::Show }
    }

    /// The outcome once the time has run out (or the listen otherwise ends).
    pub fn outcome(&self) -> Outcome {
        if self.matched == 0 && self.deadline.is_some() { Outcome::NothingInTime } else { Outcome::Done }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whisper(from: &str, text: &str) -> Update {
        Update::Whisper { from: from.into(), text: text.into() }
    }
    fn broadcast(from: &str, text: &str) -> Update {
        Update::Broadcast { from: from.into(), text: text.into() }
    }

    #[test]
    fn empty_filter_matches_everything() {
        let f = Filter::default();
        assert!(f.matches(&Update::Joined { name: "x".into() }));
        assert!(f.matches(&broadcast("a", "b")));
    }

    #[test]
    fn conditions_all_hold() {
        let f = Filter { from: Some("alice".into()), private: true, pattern: Some(Regex::new("^ok").unwrap()) };
        assert!(f.matches(&whisper("alice", "ok then")));
        assert!(!f.matches(&whisper("bob", "ok then")));
        assert!(!f.matches(&broadcast("alice", "ok then")));
        assert!(!f.matches(&whisper("alice", "not ok")));
        assert!(!f.matches(&Update::Joined { name: "alice".into() }));
        let from = Filter { from: Some("alice".into()), ..Filter::default() };
        assert!(from.matches(&broadcast("alice", "x")));
        assert!(!from.matches(&Update::Left { name: "alice".into() }));
    }

    #[test]
    fn count_stops_after_n_matches() {
        let now = Instant::now();
        let mut l = Listen::new(Filter { private: true, ..Filter::default() }, Some(2), None, now);
        assert!(l.bounded());
        assert_eq!(l.update(&broadcast("a", "x")), Verdict::Skip);
        assert_eq!(l.update(&whisper("a", "1")), Verdict::Show);
        assert_eq!(l.update(&whisper("a", "2")), Verdict::ShowAndStop);
        assert_eq!(l.matched(), 2);
        assert_eq!(l.outcome(), Outcome::Done);
    }

    #[test]
    fn time_runs_out_with_or_without_a_match() {
        let now = Instant::now();
        let mut l = Listen::new(Filter::default(), None, Some(Duration::from_secs(5)), now);
        assert_eq!(l.deadline(), Some(now + Duration::from_secs(5)));
        assert_eq!(l.outcome(), Outcome::NothingInTime);
        assert_eq!(l.update(&broadcast("a", "x")), Verdict::Show);
        assert_eq!(l.outcome(), Outcome::Done);
    }

    #[test]
    fn unbounded_without_count_or_time() {
        let l = Listen::new(Filter { private: true, ..Filter::default() }, None, None, Instant::now());
        assert!(!l.bounded());
        assert_eq!(l.deadline(), None);
    }
}
