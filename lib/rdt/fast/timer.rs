//! The timers of a fast machine, one slot per kind (after quinn-proto's
//! `TimerTable`): each machine names its timers in an enum, sets and stops
//! them here, and asks the table for the earliest one
//! ([`TimerTable::next_timeout`]) and for those that expired, by kind
//! ([`TimerTable::is_expired`]).

use std::marker::PhantomData;
use std::time::Instant;

/// A machine's timer names: each maps to one slot of a [`TimerTable`] of
/// `N` slots (`index() < N`).
pub(crate) trait Timer: Copy {
    /// The slot of this timer.
    fn index(self) -> usize;
}

/// When each timer of kind `T` expires (`None`: stopped).
#[derive(Debug, Clone)]
pub(crate) struct TimerTable<T, const N: usize> {
    at: [Option<Instant>; N],
    kind: PhantomData<T>,
}

impl<T: Timer, const N: usize> Default for TimerTable<T, N> {
    fn default() -> Self {
        Self { at: [None; N], kind: PhantomData }
    }
}

impl<T: Timer, const N: usize> TimerTable<T, N> {
    /// Sets `timer` to expire at `at` (replacing any earlier setting).
    pub(crate) fn set(&mut self, timer: T, at: Instant) {
        self.at[timer.index()] = Some(at);
    }

    /// Sets `timer` to `at`, or stops it for `None`.
    pub(crate) fn set_or_stop(&mut self, timer: T, at: Option<Instant>) {
        self.at[timer.index()] = at;
    }

    /// When `timer` expires (`None`: stopped).
    pub(crate) fn get(&self, timer: T) -> Option<Instant> {
        self.at[timer.index()]
    }

    /// Whether `timer` runs.
    pub(crate) fn is_set(&self, timer: T) -> bool {
        self.at[timer.index()].is_some()
    }

    /// Stops `timer`.
    pub(crate) fn stop(&mut self, timer: T) {
        self.at[timer.index()] = None;
    }

    /// Whether `timer` runs and has expired by `now`.
    pub(crate) fn is_expired(&self, timer: T, now: Instant) -> bool {
        self.at[timer.index()].is_some_and(|t| now >= t)
    }

    /// The earliest running timer's instant.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Two {
        A,
        B,
    }

    impl Timer for Two {
        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn the_next_timeout_is_the_earliest_running_timer() {
        let t0 = Instant::now();
        let mut t = TimerTable::<Two, 2>::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Two::A, t0 + Duration::from_secs(2));
        t.set(Two::B, t0 + Duration::from_secs(1));
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_secs(1)));
        t.stop(Two::B);
        assert!(!t.is_set(Two::B));
        assert_eq!(t.next_timeout(), t.get(Two::A));
        assert!(!t.is_expired(Two::A, t0 + Duration::from_millis(1999)));
        assert!(t.is_expired(Two::A, t0 + Duration::from_secs(2)));
        assert!(!t.is_expired(Two::B, t0 + Duration::from_secs(9)), "a stopped timer never expires");
        t.set_or_stop(Two::A, None);
        assert_eq!(t.next_timeout(), None);
    }
}
