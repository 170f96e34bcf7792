//! Address validation of the fast sender (RFC 9000 §8, in small): until
//! the receiver echoes the cookie of a CHALLENGE in its START, the sender
//! may send at most three times the bytes it received from that address
//! (anti-amplification), so a spoofed hello cannot turn the sender into
//! an amplifier. The CHALLENGE goes again when a hello repeats or its
//! timer fires.

use std::time::{Duration, Instant};

/// The anti-amplification factor (RFC 9000 §8.1).
const AMPLIFICATION: u64 = 3;

/// Whether the peer's address is validated, and the budget until it is.
#[derive(Debug, Clone)]
pub(crate) struct AddressValidation {
    cookie: u64,
    /// Bytes received from / sent to the peer before validation.
    received: u64,
    sent: u64,
    validated: bool,
    /// A CHALLENGE should go (the first, a repeated hello, or a timeout).
    challenge_due: bool,
    /// CHALLENGEs sent, and when the last went.
    challenges: u32,
    challenge_sent: Option<Instant>,
}

impl AddressValidation {
    /// Starts with the `hello_len`-byte hello received; `cookie` is the
    /// secret the receiver must echo.
    pub(crate) fn new(cookie: u64, hello_len: usize) -> Self {
        Self {
            cookie,
            received: hello_len as u64,
            sent: 0,
            validated: false,
            challenge_due: true,
            challenges: 0,
            challenge_sent: None,
        }
    }

    /// The cookie a CHALLENGE carries.
    pub(crate) fn cookie(&self) -> u64 {
        self.cookie
    }

    /// Whether the receiver proved it receives at its address.
    pub(crate) fn is_validated(&self) -> bool {
        self.validated
    }

    /// A datagram of `len` bytes arrived; `hello`: it is a fast hello
    /// (again). Before validation it adds to the budget and a hello asks
    /// for another CHALLENGE.
    pub(crate) fn on_received(&mut self, len: usize, hello: bool) {
        if !self.validated {
            self.received += len as u64;
            self.challenge_due |= hello;
        }
    }

    /// Whether a CHALLENGE should go now.
    pub(crate) fn challenge_due(&self) -> bool {
        self.challenge_due && !self.validated
    }

    /// Whether `len` more bytes may be sent (always, once validated).
    pub(crate) fn may_send(&self, len: usize) -> bool {
        self.validated || self.sent + len as u64 <= AMPLIFICATION * self.received
    }

    /// `len` bytes were sent.
    pub(crate) fn on_sent(&mut self, len: usize) {
        self.sent += len as u64;
    }

    /// A CHALLENGE was sent at `now`.
    pub(crate) fn on_challenge_sent(&mut self, now: Instant) {
        self.challenge_due = false;
        self.challenges += 1;
        self.challenge_sent = Some(now);
    }

    /// The CHALLENGE's timer fired: send it again.
    pub(crate) fn on_timeout(&mut self) {
        self.challenge_due = true;
    }

    /// A START echoing `cookie` arrived at `now`. Returns `None` when the
    /// cookie is wrong (the START is to be ignored), else whether this
    /// START validated the address and, if it did, the RTT sample it gives
    /// (only after a single CHALLENGE: with more, which one it answers is
    /// ambiguous, Karn's rule).
    pub(crate) fn on_start(&mut self, now: Instant, cookie: u64) -> Option<Validated> {
        if cookie != self.cookie {
            return None;
        }
        if self.validated {
            return Some(Validated::Already);
        }
        self.validated = true;
        let rtt = self.challenge_sent.filter(|_| self.challenges == 1).map(|t| now.saturating_duration_since(t));
        Some(Validated::Now { rtt })
    }
}

/// What a START with the right cookie did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validated {
    /// It validated the address; the RTT sample of the CHALLENGE, if unambiguous.
    Now {
        /// Time from the CHALLENGE to the START.
        rtt: Option<Duration>,
    },
    /// The address was validated before: a repeated START.
    Already,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn three_times_the_bytes_received_until_validated() {
        let mut v = AddressValidation::new(7, 100);
        assert!(v.may_send(300) && !v.may_send(301));
        v.on_sent(250);
        assert!(v.may_send(50) && !v.may_send(51));
        // Every datagram from the peer raises the budget.
        v.on_received(20, false);
        assert!(v.may_send(110) && !v.may_send(111));
        assert!(v.on_start(Instant::now(), 7).is_some());
        assert!(v.may_send(1 << 40));
        // After validation nothing is counted any more.
        v.on_received(1, true);
        assert!(!v.challenge_due());
    }

    #[test]
    fn a_wrong_cookie_is_ignored() {
        let mut v = AddressValidation::new(7, 1200);
        let t0 = Instant::now();
        v.on_challenge_sent(t0);
        assert_eq!(v.on_start(t0 + MS, 8), None);
        assert!(!v.is_validated());
        assert!(!v.may_send(3601));
        assert_eq!(v.on_start(t0 + 2 * MS, 7), Some(Validated::Now { rtt: Some(2 * MS) }));
        assert!(v.is_validated());
        assert_eq!(v.on_start(t0 + 3 * MS, 7), Some(Validated::Already));
        assert_eq!(v.on_start(t0 + 3 * MS, 8), None);
    }

    #[test]
    fn the_challenge_goes_again_on_a_hello_or_a_timeout_and_then_gives_no_rtt() {
        let mut v = AddressValidation::new(7, 1200);
        let t0 = Instant::now();
        assert!(v.challenge_due());
        v.on_challenge_sent(t0);
        assert!(!v.challenge_due());
        // Another datagram that is not a hello: no new CHALLENGE.
        v.on_received(50, false);
        assert!(!v.challenge_due());
        v.on_received(1200, true);
        assert!(v.challenge_due());
        v.on_challenge_sent(t0 + 10 * MS);
        v.on_timeout();
        assert!(v.challenge_due());
        v.on_challenge_sent(t0 + 20 * MS);
        // Three CHALLENGEs out: which one the START answers is unknown.
        assert_eq!(v.on_start(t0 + 25 * MS, 7), Some(Validated::Now { rtt: None }));
    }
}
