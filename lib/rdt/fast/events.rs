//! What the fast sender did, for traces (`--trace`) and plots: [`Event`],
//! and the log that records them only when asked to.

use std::collections::VecDeque;

/// Something the sender did, for traces (`--trace`) and plots. Recorded
/// only after [`Sender::record_events`](super::sender::Sender::record_events);
/// taken with [`Sender::poll_event`](super::sender::Sender::poll_event).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// A DATA datagram left.
    Send {
        /// Its packet number.
        pn: u64,
        /// Offset of its bytes in the file.
        offset: u64,
        /// Bytes of file it carries.
        len: u64,
        /// Whether those bytes were sent before.
        retransmission: bool,
    },
    /// An ACK arrived: bytes acknowledged so far, window and RTT after it.
    Ack {
        /// File bytes acknowledged so far.
        acked: u64,
        /// Congestion window, bytes.
        cwnd: u64,
        /// Smoothed RTT, microseconds.
        srtt_us: u64,
        /// Bytes in flight.
        in_flight: u64,
    },
    /// A packet was declared lost (its bytes will be sent again).
    Loss {
        /// Its packet number.
        pn: u64,
        /// Offset of its bytes in the file.
        offset: u64,
        /// Bytes of file it carried.
        len: u64,
    },
    /// The retransmission timer fired.
    Rto {
        /// The timeout that expired, microseconds.
        rto_us: u64,
    },
    /// The congestion window changed.
    Cwnd {
        /// The new window, bytes.
        cwnd: u64,
        /// Whether the controller is in slow start.
        slow_start: bool,
    },
    /// A path-MTU probe carrying `payload` file bytes was acknowledged (`ok`) or lost.
    Mtu {
        /// File bytes the probe carried.
        payload: u64,
        /// Acknowledged (true) or lost.
        ok: bool,
    },
}

/// The events recorded so far, if recording (off by default: they cost a
/// little per datagram).
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    queue: Option<VecDeque<Event>>,
    /// The window in the last [`Event::Cwnd`], so only changes are recorded.
    last_cwnd: u64,
}

impl EventLog {
    /// Starts recording.
    pub(crate) fn record(&mut self) {
        self.queue.get_or_insert_with(VecDeque::new);
    }

    /// Whether events are recorded.
    pub(crate) fn is_recording(&self) -> bool {
        self.queue.is_some()
    }

    /// Records `e` if recording.
    pub(crate) fn push(&mut self, e: impl FnOnce() -> Event) {
        if let Some(q) = self.queue.as_mut() {
            q.push_back(e());
        }
    }

    /// Records the window `cwnd` if recording and it changed since the last one.
    pub(crate) fn cwnd(&mut self, cwnd: u64, slow_start: impl FnOnce() -> bool) {
        if self.queue.is_some() && cwnd != self.last_cwnd {
            self.last_cwnd = cwnd;
            let slow_start = slow_start();
            self.push(|| Event::Cwnd { cwnd, slow_start });
        }
    }

    /// The oldest event not yet taken.
    pub(crate) fn pop(&mut self) -> Option<Event> {
        self.queue.as_mut()?.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_recorded_until_asked_and_the_window_only_when_it_changes() {
        let mut log = EventLog::default();
        log.push(|| Event::Rto { rto_us: 1 });
        log.cwnd(10, || true);
        assert_eq!(log.pop(), None);
        log.record();
        log.cwnd(10, || true);
        log.cwnd(10, || panic!("not asked: the window did not change"));
        log.push(|| Event::Rto { rto_us: 2 });
        assert_eq!(log.pop(), Some(Event::Cwnd { cwnd: 10, slow_start: true }));
        assert_eq!(log.pop(), Some(Event::Rto { rto_us: 2 }));
        assert_eq!(log.pop(), None);
    }
}
