//! The fast receiver's opening: the hello and the START it sends, their
//! retries while the sender stays silent, and the RTT it guesses from them.
//! The receiver keeps the retry instant in its timer table; this unit
//! decides what is due and when.

use std::time::{Duration, Instant};

/// The first retry interval when no RTT is known beforehand.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// The shortest first retry interval from a known RTT: the server's
/// answer also waits on its scheduling, which a LAN's RTT does not show.
const MIN_FIRST_RETRY: Duration = Duration::from_millis(25);
/// The longest retry interval (it doubles up to this).
const MAX_RETRY: Duration = Duration::from_secs(2);

/// The hello and START: whether one is due, how often they are repeated,
/// and the RTT guessed from the first answer.
#[derive(Debug, Clone)]
pub(crate) struct HelloRetry {
    hello_due: bool,
    hellos: u32,
    hello_sent: Option<Instant>,
    start_due: bool,
    start_sent: Option<Instant>,
    every: Duration,
    rtt_guess: Duration,
}

impl Default for HelloRetry {
    /// No RTT known beforehand: see [`HelloRetry::new`].
    fn default() -> Self {
        Self::new(None)
    }
}

impl HelloRetry {
    /// The hello is due at once. With an RTT measured beforehand (`hint`),
    /// retries start after twice it (at least [`MIN_FIRST_RETRY`]) and it
    /// is the RTT guess until an answer comes; without, after
    /// [`FIRST_RETRY`], guessing 100 ms.
    pub(crate) fn new(hint: Option<Duration>) -> Self {
        let every = hint.map_or(FIRST_RETRY, |rtt| (rtt * 2).max(MIN_FIRST_RETRY));
        Self {
            hello_due: true,
            hellos: 0,
            hello_sent: None,
            start_due: false,
            start_sent: None,
            every,
            rtt_guess: hint.unwrap_or(Duration::from_millis(100)),
        }
    }

    /// The round-trip time as the opening measured it: the first hello to
    /// its CHALLENGE (only when a single hello went, so the answer is
    /// surely to it), then the first START to the first DATA.
    pub(crate) fn rtt_guess(&self) -> Duration {
        self.rtt_guess
    }

    /// A hello to send now: returns when to retry it, or `None` if none is due.
    pub(crate) fn poll_hello(&mut self, now: Instant) -> Option<Instant> {
        if !std::mem::take(&mut self.hello_due) {
            return None;
        }
        self.hellos += 1;
        self.hello_sent = Some(now);
        Some(now + self.every)
    }

    /// A START to send now: returns when to retry it, or `None` if none is due.
    pub(crate) fn poll_start(&mut self, now: Instant) -> Option<Instant> {
        if !std::mem::take(&mut self.start_due) {
            return None;
        }
        self.start_sent.get_or_insert(now);
        Some(now + self.every)
    }

    /// The CHALLENGE answered the hello at `now`: the RTT guess, from a single hello.
    pub(crate) fn on_challenge(&mut self, now: Instant) {
        if let Some(t) = self.hello_sent.filter(|_| self.hellos == 1) {
            self.rtt_guess = now.saturating_duration_since(t);
            self.every = self.every.max(self.rtt_guess * 2);
        }
    }

    /// A START is due (a CHALLENGE came, and no DATA yet).
    pub(crate) fn start(&mut self) {
        self.start_due = true;
    }

    /// DATA arrived at `now`: the first one measures the RTT from the first START.
    pub(crate) fn on_data(&mut self, now: Instant) {
        if let Some(t) = self.start_sent.take() {
            self.rtt_guess = now.saturating_duration_since(t);
        }
    }

    /// The retry timer expired: the hello (`hello`) or the START again, the
    /// next retry twice as late (at most [`MAX_RETRY`]).
    pub(crate) fn on_retry(&mut self, hello: bool, start: bool) {
        self.hello_due |= hello;
        self.start_due |= start;
        self.every = (self.every * 2).min(MAX_RETRY);
    }

    /// Nothing more goes (the transfer ended).
    pub(crate) fn cancel(&mut self) {
        self.hello_due = false;
        self.start_due = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_two_seconds() {
        let t0 = Instant::now();
        let mut h = HelloRetry::default();
        assert_eq!(h.poll_hello(t0), Some(t0 + FIRST_RETRY));
        assert_eq!(h.poll_hello(t0), None, "one hello per retry");
        let mut every = Vec::new();
        for _ in 0..6 {
            h.on_retry(true, false);
            every.push(h.poll_hello(t0).map(|t| t - t0));
        }
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(every, [ms(500), ms(1000), ms(2000), ms(2000), ms(2000), ms(2000)]);
    }

    #[test]
    fn the_rtt_guess_comes_from_a_single_hello_then_the_first_start() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut h = HelloRetry::default();
        h.poll_hello(t0);
        h.on_challenge(t0 + ms(300));
        assert_eq!(h.rtt_guess(), ms(300));
        h.start();
        assert_eq!(h.poll_start(t0 + ms(300)), Some(t0 + ms(900)), "retries wait twice the RTT at least");
        h.start();
        h.poll_start(t0 + ms(900)); // a repeated START: the RTT still counts from the first
        h.on_data(t0 + ms(1000));
        assert_eq!(h.rtt_guess(), ms(700));
        h.on_data(t0 + ms(2000));
        assert_eq!(h.rtt_guess(), ms(700), "only the first DATA measures");

        // Two hellos: the CHALLENGE may answer either, so no guess.
        let mut h = HelloRetry::default();
        h.poll_hello(t0);
        h.on_retry(true, false);
        h.poll_hello(t0 + ms(250));
        h.on_challenge(t0 + ms(300));
        assert_eq!(h.rtt_guess(), ms(100));
    }

    #[test]
    fn a_known_rtt_sets_the_first_retries() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut h = HelloRetry::new(Some(ms(20)));
        assert_eq!(h.rtt_guess(), ms(20));
        assert_eq!(h.poll_hello(t0), Some(t0 + ms(40)), "twice the RTT");
        h.on_retry(true, false);
        assert_eq!(h.poll_hello(t0), Some(t0 + ms(80)), "then doubling");
        // A CHALLENGE after a lost hello: the START waits as long.
        h.on_challenge(t0 + ms(100));
        h.start();
        assert_eq!(h.poll_start(t0 + ms(100)), Some(t0 + ms(180)));
        // A LAN's RTT: no sooner than MIN_FIRST_RETRY.
        let mut h = HelloRetry::new(Some(Duration::from_micros(80)));
        assert_eq!(h.poll_hello(t0), Some(t0 + MIN_FIRST_RETRY));
    }

    #[test]
    fn cancel_leaves_nothing_due() {
        let t0 = Instant::now();
        let mut h = HelloRetry::default();
        h.start();
        h.cancel();
        assert_eq!((h.poll_hello(t0), h.poll_start(t0)), (None, None));
    }
}
