//! The classic go-back-N receiver ([protocol](crate::protocol) §5) as a pure state machine.
//!
//! Datagrams go in, ACK datagrams and in-order file bytes come out; there are
//! no sockets and no clock, so the socket driver in
//! [`crate::client`] decides about timeouts and where datagrams come from.
//! The receiver never drops anything on purpose (unlike the reference), so a
//! transfer needs no injected faults to pass.

use super::{Data, MAX_WINDOW, encode_ack, encode_window};

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
#[derive(Debug, Clone)]
pub struct Receiver {
    window: u8,
    expected: u8,
    any_ack_sent: bool,
    done: bool,
    delivered: u64,
}

impl Receiver {
    /// A receiver with window `window`, clamped to `1..=98`.
    pub fn new(window: u8) -> Self {
        Receiver { window: window.clamp(1, MAX_WINDOW), expected: 0, any_ack_sent: false, done: false, delivered: 0 }
    }

    /// The hello datagram to send first (and to repeat until data arrives).
    pub fn hello(&self) -> Vec<u8> {
        encode_window(self.window)
    }

    /// The window this receiver announces.
    pub fn window(&self) -> u8 {
        self.window
    }

    /// True once the last packet was delivered in order.
    pub fn is_done(&self) -> bool {
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
    pub fn on_datagram<'a>(&mut self, datagram: &'a [u8]) -> Event<'a> {
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
            match r.on_datagram(&d) {
                Event::Deliver { payload, ack, last } => {
                    out.extend_from_slice(payload);
                    assert_eq!(ack, encode_ack((seq + 1) % 3));
                    assert_eq!(last, i == 4);
                }
                e => panic!("unexpected {e:?}"),
            }
        }
        assert!(r.is_done());
        assert_eq!(out, [0, 1, 2, 3, 4]);
        assert_eq!(r.delivered(), 5);
    }

    #[test]
    fn out_of_order_repeats_last_ack() {
        let mut r = Receiver::new(98);
        assert_eq!(r.on_datagram(&data(false, 1, b"x")), Event::Repeat { ack: None });
        assert!(matches!(r.on_datagram(&data(false, 0, b"a")), Event::Deliver { .. }));
        assert_eq!(r.on_datagram(&data(false, 5, b"x")), Event::Repeat { ack: Some(b"1".to_vec()) });
        assert_eq!(r.on_datagram(&data(false, 0, b"a")), Event::Repeat { ack: Some(b"1".to_vec()) });
        assert_eq!(r.on_datagram(b"zz"), Event::Ignored);
        assert_eq!(r.on_datagram(b"099"), Event::Ignored);
    }

    #[test]
    fn empty_file_is_one_datagram() {
        let mut r = Receiver::new(98);
        assert_eq!(r.on_datagram(b"100"), Event::Deliver { payload: b"", ack: b"1".to_vec(), last: true });
        assert!(r.is_done());
        assert_eq!(r.on_datagram(b"100"), Event::Repeat { ack: Some(b"1".to_vec()) });
    }

    /// The receiver against chatctl's classic sender through a seeded lossy,
    /// reordering network with a fake clock: the file arrives exactly, for
    /// several sizes (empty, one chunk, a chunk boundary, many wraps of the
    /// sequence numbers) and windows.
    #[test]
    fn interoperates_with_the_classic_sender_under_loss() {
        use super::super::CHUNK;
        use super::super::sender::Sender;
        use std::collections::VecDeque;
        use std::time::{Duration, Instant};

        for seed in 1..=24u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut rand = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let size = [0, 1, CHUNK, CHUNK + 1, 57_321, 250_000][(seed % 6) as usize];
            let window = [98u8, 20, 2, 1][(seed / 6 % 4) as usize];
            let data: Vec<u8> = (0..size).map(|_| rand() as u8).collect();
            let mut rx = Receiver::new(window);
            let mut tx = Sender::new(data.clone(), window);
            let (mut to_rx, mut to_tx) = (VecDeque::<Vec<u8>>::new(), VecDeque::<Vec<u8>>::new());
            let mut now = Instant::now();
            let mut got = Vec::new();
            let mut buf = Vec::new();
            for _step in 0..200_000 {
                if rx.is_done() && to_rx.is_empty() {
                    break;
                }
                while tx.poll_transmit(now, &mut buf).is_some() {
                    if rand() % 10 != 0 {
                        to_rx.push_back(buf.clone()); // 10% lost
                    }
                }
                // Some reordering: now and then the newest datagram overtakes one.
                if to_rx.len() > 1 && rand() % 8 == 0 {
                    let n = to_rx.len();
                    to_rx.swap(n - 1, n - 2);
                }
                if let Some(d) = to_rx.pop_front() {
                    let ack = match rx.on_datagram(&d) {
                        Event::Deliver { payload, ack, .. } => {
                            got.extend_from_slice(payload);
                            Some(ack)
                        }
                        Event::Repeat { ack } => ack,
                        Event::Ignored => None,
                    };
                    if let Some(a) = ack
                        && rand() % 10 != 0
                    {
                        to_tx.push_back(a); // 10% of ACKs lost
                    }
                }
                while let Some(a) = to_tx.pop_front() {
                    tx.handle_datagram(now, &a);
                }
                if to_rx.is_empty()
                    && let Some(t) = tx.poll_timeout()
                {
                    now = now.max(t);
                    tx.handle_timeout(now);
                }
                now += Duration::from_micros(100);
            }
            assert!(
                rx.is_done(),
                "seed {seed}: size {size} window {window}: not finished; sender {:?}, got {}",
                tx.outcome(),
                got.len()
            );
            assert_eq!(got.len(), data.len(), "seed {seed}: size {size} window {window}");
            assert!(got == data, "seed {seed}: size {size} window {window}: different bytes");
            assert_eq!(rx.delivered(), size as u64);
        }
    }
}
