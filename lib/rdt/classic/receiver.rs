//! The classic go-back-N receiver ([protocol](crate::protocol) §5) as a pure state machine.
//!
//! Datagrams go in, ACK datagrams and in-order file bytes come out; there are
//! no sockets and no clock, so the socket driver in
//! [`crate::client`] decides about timeouts and where datagrams come from.
//! The receiver never drops anything on purpose (unlike the reference), so a
//! transfer needs no injected faults to pass.
//!
//! Besides [`Receiver::handle_datagram`], it meets the shared
//! [`Endpoint`] interface: there it writes the file to a [`Sink`], queues its
//! ACKs for [`Endpoint::poll_transmit`] and repeats its hello every
//! `HELLO_REPEAT` until data comes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Data, MAX_WINDOW, encode_ack, encode_window};
use crate::rdt::endpoint::{Endpoint, Handled, Sink, Transmit};

/// How often the [`Endpoint`] view repeats its hello until data comes (the
/// reference announces its port before it binds, so the first may be lost).
pub(crate) const HELLO_REPEAT: Duration = Duration::from_millis(200);

/// Copies of the final ACK the [`Endpoint`] view sends: it ends the sender,
/// which otherwise waits seconds before it gives up on it.
pub(crate) const FINAL_ACKS: usize = 3;

/// What one datagram produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The datagram was not a data datagram: ignore it, send nothing.
    Ignored,
    /// In-order data: append `payload` to the file and send `ack`.
    Deliver {
        /// The next bytes of the file.
        payload: &'a [u8],
        /// The ACK datagram to send.
        ack: Vec<u8>,
        /// This was the file's last packet.
        last: bool,
    },
    /// Out of order or a duplicate: send `ack` again (the last one), nothing to write.
    Repeat {
        /// The last ACK, `None` before the first in-order packet.
        ack: Option<Vec<u8>>,
    },
}

/// A classic go-back-N receiver with window `W` (sequence numbers mod `W + 1`).
#[derive(Debug)]
pub struct Receiver {
    window: u8,
    expected: u8,
    any_ack_sent: bool,
    done: bool,
    delivered: u64,
    /// The [`Endpoint`] view's state: its hello is due, or due again then.
    hello_due: bool,
    hello_at: Option<Instant>,
    /// ACK values (next expected sequence numbers) to send, in order.
    acks: VecDeque<u8>,
    /// A write to the sink failed: the transfer is over.
    failed: bool,
    /// That write's error, until taken.
    error: Option<std::io::Error>,
}

impl Receiver {
    /// A receiver with window `window`, clamped to `1..=98`.
    pub fn new(window: u8) -> Self {
        Receiver {
            window: window.clamp(1, MAX_WINDOW),
            expected: 0,
            any_ack_sent: false,
            done: false,
            delivered: 0,
            hello_due: true,
            hello_at: None,
            acks: VecDeque::new(),
            failed: false,
            error: None,
        }
    }

    /// The hello datagram to send first (and to repeat until data arrives).
    pub fn hello(&self) -> Vec<u8> {
        encode_window(self.window)
    }

    /// The window this receiver announces.
    pub fn window(&self) -> u8 {
        self.window
    }

    /// True once the last packet was delivered in order (the machine may
    /// still have ACKs to send: see [`Endpoint::is_finished`]).
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// File bytes delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The ACK to repeat when the sender seems to wait (e.g. the final ACK
    /// was lost); `None` before the first in-order packet.
    pub fn last_ack(&self) -> Option<Vec<u8>> {
        self.any_ack_sent.then(|| encode_ack(self.expected))
    }

    /// Handles one datagram from the sender.
    pub fn handle_datagram<'a>(&mut self, datagram: &'a [u8]) -> Event<'a> {
        let Some(data) = Data::parse(datagram) else { return Event::Ignored };
        if data.seq > self.window {
            return Event::Ignored;
        }
        if self.done || data.seq != self.expected {
            return Event::Repeat { ack: self.last_ack() };
        }
        self.expected = (self.expected + 1) % (self.window + 1);
        self.any_ack_sent = true;
        self.delivered += data.payload.len() as u64;
        self.done = data.last;
        Event::Deliver { payload: data.payload, ack: encode_ack(self.expected), last: data.last }
    }

    /// Takes the write error that ended the transfer, in the [`Endpoint`] view.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }
}

/// The [`Endpoint`] view: the file goes to a [`Sink`] (in order, at the
/// bytes delivered so far), each datagram's ACK is queued, the hello is
/// repeated until data comes. It ends once the last packet is written and
/// its ACKs sent, or when a write fails ([`Receiver::take_error`]); how long to
/// wait for data is the driver's choice.
impl<K: Sink> Endpoint<K> for Receiver {
    fn handle_datagram(&mut self, _: Instant, datagram: &[u8], sink: &mut K) -> Handled {
        if self.failed {
            return Handled::Taken;
        }
        let at = self.delivered;
        match Receiver::handle_datagram(self, datagram) {
            Event::Ignored => {}
            Event::Repeat { ack } => {
                (self.hello_due, self.hello_at) = (false, None);
                if ack.is_some() {
                    self.acks.push_back(self.expected);
                }
            }
            Event::Deliver { payload, last, .. } => {
                (self.hello_due, self.hello_at) = (false, None);
                if let Err(e) = sink.write_at(at, payload) {
                    (self.failed, self.error) = (true, Some(e));
                    self.acks.clear();
                    return Handled::Taken;
                }
                let copies = if last { FINAL_ACKS } else { 1 };
                self.acks.extend(std::iter::repeat_n(self.expected, copies));
            }
        }
        Handled::Taken
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.hello_at.is_some_and(|t| now >= t) {
            (self.hello_due, self.hello_at) = (true, None);
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        if Endpoint::<K>::is_finished(self) { None } else { self.hello_at }
    }
    fn poll_transmit(&mut self, now: Instant, _: &mut K, _: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
        if Endpoint::<K>::is_finished(self) {
            return None;
        }
        if self.hello_due {
            (self.hello_due, self.hello_at) = (false, Some(now + HELLO_REPEAT));
            *buf = self.hello();
        } else {
            *buf = encode_ack(self.acks.pop_front()?);
        }
        Some(Transmit { len: buf.len(), segment_size: None })
    }
    fn is_finished(&self) -> bool {
        self.failed || (self.done && self.acks.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(last: bool, seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        Data { last, seq, payload }.encode(&mut v);
        v
    }

    #[test]
    fn hello_is_the_window() {
        assert_eq!(Receiver::new(98).hello(), b"98");
        assert_eq!(Receiver::new(200).hello(), b"98");
        assert_eq!(Receiver::new(0).hello(), b"1");
    }

    #[test]
    fn in_order_then_wraps() {
        let mut r = Receiver::new(2);
        let mut out = Vec::new();
        for (i, seq) in [0u8, 1, 2, 0, 1].into_iter().enumerate() {
            let d = data(i == 4, seq, &[i as u8]);
            match r.handle_datagram(&d) {
                Event::Deliver { payload, ack, last } => {
                    out.extend_from_slice(payload);
                    assert_eq!(ack, encode_ack((seq + 1) % 3));
                    assert_eq!(last, i == 4);
                }
                e => panic!("unexpected {e:?}"),
            }
        }
        assert!(r.is_complete());
        assert_eq!(out, [0, 1, 2, 3, 4]);
        assert_eq!(r.delivered(), 5);
    }

    #[test]
    fn out_of_order_repeats_last_ack() {
        let mut r = Receiver::new(98);
        assert_eq!(r.handle_datagram(&data(false, 1, b"x")), Event::Repeat { ack: None });
        assert!(matches!(r.handle_datagram(&data(false, 0, b"a")), Event::Deliver { .. }));
        assert_eq!(r.handle_datagram(&data(false, 5, b"x")), Event::Repeat { ack: Some(b"1".to_vec()) });
        assert_eq!(r.handle_datagram(&data(false, 0, b"a")), Event::Repeat { ack: Some(b"1".to_vec()) });
        assert_eq!(r.handle_datagram(b"zz"), Event::Ignored);
        assert_eq!(r.handle_datagram(b"099"), Event::Ignored);
    }

    #[test]
    fn empty_file_is_one_datagram() {
        let mut r = Receiver::new(98);
        assert_eq!(r.handle_datagram(b"100"), Event::Deliver { payload: b"", ack: b"1".to_vec(), last: true });
        assert!(r.is_complete());
        assert_eq!(r.handle_datagram(b"100"), Event::Repeat { ack: Some(b"1".to_vec()) });
    }

    /// The receiver against chatctl's classic sender, both as endpoints of
    /// the one simulator, through a seeded network that loses 5% each way
    /// and reorders and duplicates data: the file arrives exactly, for several sizes (empty, one
    /// chunk, a chunk boundary, many wraps of the sequence numbers) and
    /// windows, and both ends finish.
    #[test]
    fn interoperates_with_the_classic_sender_under_loss() {
        use super::super::CHUNK;
        use super::super::sender::{Outcome, Sender};
        use crate::rdt::sim::{self, Accepting, Attached, Link, LinkConfig, Party, Rng};

        for seed in 1..=24u64 {
            let size = [0, 1, CHUNK, CHUNK + 1, 57_321, 250_000][(seed % 6) as usize];
            let window = [98u8, 20, 2, 1][(seed / 6 % 4) as usize];
            let mut rng = Rng::new(seed);
            let data: Vec<u8> = (0..size).map(|_| rng.next_u64() as u8).collect();
            // Data may be reordered and duplicated; ACKs keep their order:
            // a stale ACK that aliases one of the flight (sequence numbers
            // are mod W + 1) would be taken for progress. At 10% loss each
            // way, three lost round trips in a row once every packet was
            // sent now and then make the sender take the silence for a
            // receiver that exited with everything (as the reference's
            // does): `Unconfirmed` with the file short (seed 4).
            let acks = LinkConfig { loss: 0.05, delay: Duration::from_millis(2), ..LinkConfig::default() };
            let data_path =
                LinkConfig { jitter: Duration::from_millis(1), reorder: 0.1, duplicate: 0.02, ..acks.clone() };
            let (mut fwd, mut back) = (Link::new(data_path, seed), Link::new(acks, seed ^ 0xba));
            let sender = Accepting::new(|_, hello: &[u8]| {
                super::super::parse_window(hello).map(|w| Attached::new(Sender::new(size as u64, w), &data[..]))
            });
            let mut flows = [(sender, Attached::new(Receiver::new(window), Vec::<u8>::new()))];
            let t0 = Instant::now();
            let limit = Duration::from_secs(600);
            let end = sim::run(&mut flows, &mut fwd, &mut back, t0, limit, Duration::ZERO, |_, f| {
                !(Party::is_finished(&f[0].0) && Party::is_finished(&f[0].1))
            });
            let ctx = format!("seed {seed}: size {size} window {window}");
            let [(tx, rx)] = flows;
            let outcome = tx.party.map(|p| p.endpoint.outcome());
            assert!(!end.stuck, "{ctx}: livelock");
            assert!(rx.endpoint.is_complete(), "{ctx}: not finished; sender {outcome:?}, got {}", rx.store.len());
            assert_eq!(rx.store.len(), data.len(), "{ctx}");
            assert!(rx.store == data, "{ctx}: different bytes");
            assert_eq!(rx.endpoint.delivered(), size as u64);
            assert!(matches!(outcome, Some(Some(Outcome::Confirmed | Outcome::Unconfirmed))), "{ctx}: {outcome:?}");
        }
    }

    /// The endpoint view repeats its hello until data comes, then sends one
    /// ACK per datagram and three of the last; a failed write ends it.
    #[test]
    fn the_endpoint_view_says_hello_acks_and_stops_on_a_write_error() {
        let t0 = Instant::now();
        let mut r = Receiver::new(20);
        let mut sink: Vec<u8> = Vec::new();
        let mut buf = Vec::new();
        let mut sent = |r: &mut Receiver, sink: &mut Vec<u8>, now| {
            let mut out = Vec::new();
            while let Some(t) = Endpoint::poll_transmit(r, now, sink, 1, &mut buf) {
                out.push(buf[..t.len].to_vec());
            }
            out
        };
        assert_eq!(sent(&mut r, &mut sink, t0), [b"20".to_vec()]);
        assert_eq!(Endpoint::<Vec<u8>>::poll_timeout(&r), Some(t0 + HELLO_REPEAT));
        assert!(sent(&mut r, &mut sink, t0).is_empty());
        Endpoint::<Vec<u8>>::handle_timeout(&mut r, t0 + HELLO_REPEAT);
        assert_eq!(sent(&mut r, &mut sink, t0 + HELLO_REPEAT), [b"20".to_vec()]);
        let t1 = t0 + HELLO_REPEAT * 2;
        Endpoint::handle_datagram(&mut r, t1, &data(false, 0, b"ab"), &mut sink);
        Endpoint::handle_datagram(&mut r, t1, &data(false, 2, b"zz"), &mut sink);
        assert_eq!(Endpoint::<Vec<u8>>::poll_timeout(&r), None, "no more hellos once data came");
        assert_eq!(sent(&mut r, &mut sink, t1), [b"1".to_vec(), b"1".to_vec()]);
        Endpoint::handle_datagram(&mut r, t1, &data(true, 1, b"cd"), &mut sink);
        assert_eq!(sink, b"abcd");
        assert!(!Endpoint::<Vec<u8>>::is_finished(&r), "the final ACKs are still due");
        assert_eq!(sent(&mut r, &mut sink, t1), vec![b"2".to_vec(); FINAL_ACKS]);
        assert!(Endpoint::<Vec<u8>>::is_finished(&r));

        struct Full;
        impl Sink for Full {
            fn write_at(&mut self, _: u64, _: &[u8]) -> std::io::Result<()> {
                Err(std::io::Error::other("disk full"))
            }
            fn read_at(&mut self, _: u64, _: &mut [u8]) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut r = Receiver::new(20);
        Endpoint::handle_datagram(&mut r, t0, &data(false, 0, b"ab"), &mut Full);
        assert!(Endpoint::<Full>::is_finished(&r));
        assert_eq!(r.take_error().map(|e| e.to_string()), Some("disk full".into()));
        assert_eq!(Endpoint::poll_transmit(&mut r, t0, &mut Full, 1, &mut Vec::new()), None, "no ACK for it");
    }
}
