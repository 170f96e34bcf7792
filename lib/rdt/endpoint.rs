//! One interface for every transfer machine, and one loop that drives it.
//!
//! The four sans-IO machines (the [classic](crate::rdt::classic) and
//! [fast] senders and receivers) all meet [`Endpoint`], in
//! the manner of quinn-proto's `Connection`: datagrams and time go in
//! ([`Endpoint::handle_datagram`], [`Endpoint::handle_timeout`]), datagrams
//! come out ([`Endpoint::poll_transmit`], into the caller's buffer), and
//! [`Endpoint::poll_timeout`] says when to wake it. The machines own no file:
//! a sender reads the file's bytes from a [`Source`] and a receiver writes
//! them to a [`Sink`], both passed in by the driver on each call, so the
//! machines stay free of I/O and the same machine runs against a file, a
//! memory buffer or a simulated one.
//!
//! [`step`] is the loop body every driver shares: receive everything that
//! arrived, fire the timer if it is due, transmit everything that may leave.
//! The simulator ([`crate::rdt::sim`]), the server's classic sender and the
//! tests call it (or its halves, [`receive`] and [`transmit`]) instead of
//! writing that sequence out themselves.
//!
//! ```
//! use std::time::Instant;
//! use chatctl::rdt::classic::{receiver::Receiver, sender::Sender};
//! use chatctl::rdt::endpoint::{self, Step};
//!
//! // A classic transfer of 2,500 bytes over a perfect, instant "network":
//! // two queues of datagrams.
//! let file: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
//! let mut rx = Receiver::new(20);
//! let mut tx = Sender::new(file.len() as u64, rx.window());
//! let (mut src, mut sink): (&[u8], Vec<u8>) = (&file, Vec::new());
//! let (mut to_rx, mut to_tx) = (Vec::<Vec<u8>>::new(), Vec::<Vec<u8>>::new());
//! let mut buf = Vec::new();
//! let now = Instant::now();
//! // The receiver speaks first: its hello (the window) starts the sender.
//! endpoint::step(&mut rx, now, &mut sink, endpoint::no_input, &mut buf, 1, |d, _| {
//!     to_tx.push(d.to_vec());
//!     Ok::<_, ()>(())
//! })
//! .unwrap();
//! while !rx.is_complete() {
//!     endpoint::step(&mut tx, now, &mut src, endpoint::drain(&mut to_tx), &mut buf, 1, |d, _| {
//!         to_rx.push(d.to_vec());
//!         Ok::<_, ()>(())
//!     })
//!     .unwrap();
//!     endpoint::step(&mut rx, now, &mut sink, endpoint::drain(&mut to_rx), &mut buf, 1, |d, _| {
//!         to_tx.push(d.to_vec());
//!         Ok::<_, ()>(())
//!     })
//!     .unwrap();
//! }
//! let last = endpoint::step(&mut tx, now, &mut src, endpoint::drain(&mut to_tx), &mut buf, 1, |_, _| Ok::<_, ()>(()));
//! assert_eq!(last, Ok(Step::Finished));
//! assert_eq!(sink, file);
//! ```

use std::time::Instant;

use super::fast;

/// Where a sender reads the file: positioned reads (shared by both senders).
///
/// It is the fast mode's trait; implemented for `&[u8]` (memory, in the
/// simulator and tests) and for [`std::fs::File`] and `&File`.
pub use super::fast::Source;

/// Where a receiver writes the file: positioned writes, possibly out of
/// order (shared by both receivers). Implemented for `Vec<u8>` and for
/// [`std::fs::File`] and `&File`.
pub use super::fast::Sink;

/// What [`Endpoint::poll_transmit`] wrote into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes written: the datagram, or the whole batch of datagrams.
    pub len: usize,
    /// `Some(size)` when the buffer holds several datagrams of `size` bytes
    /// each (the last may be shorter), to go out in one segmented (GSO)
    /// send; `None` for a single datagram.
    pub segment_size: Option<usize>,
}

impl Transmit {
    /// The datagrams in `buf`: the one datagram (even an empty one), or
    /// each segment of a batch.
    pub fn datagrams<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let buf = &buf[..self.len];
        let (one, size) = match self.segment_size {
            None => (Some(buf), buf.len().max(1)),
            Some(size) => (None, size.max(1)),
        };
        let batch = if one.is_some() { &buf[..0] } else { buf };
        one.into_iter().chain(batch.chunks(size))
    }
}

/// What an endpoint did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The datagram was taken (or ignored as junk): go on.
    Taken,
    /// The datagram belongs to another protocol that the driver must
    /// switch to (a fast receiver that gets classic data from a server
    /// that only speaks the reference's go-back-N): stop feeding this endpoint.
    Foreign,
}

/// A sans-IO transfer machine: datagrams and time in, datagrams out.
///
/// `S` is the storage it works on, passed in on each call rather than
/// owned: a [`Source`] for a sender, a [`Sink`] for a receiver.
/// `now` must never go backwards.
pub trait Endpoint<S: ?Sized> {
    /// Handles one datagram from the peer, reading or writing `store` as needed.
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8], store: &mut S) -> Handled;

    /// Handles a whole receive buffer of datagrams of `stride` bytes each
    /// (the last may be shorter), as UDP GRO returns them. By default one
    /// by one; a machine that can do better with a batch overrides it.
    /// Returns the byte offset in `buf` of a [`Handled::Foreign`] datagram,
    /// which was not handled and after which nothing was.
    fn handle_segments(&mut self, now: Instant, buf: &[u8], stride: usize, store: &mut S) -> Option<usize> {
        if buf.is_empty() {
            return (self.handle_datagram(now, buf, store) == Handled::Foreign).then_some(0);
        }
        let stride = if stride == 0 { buf.len() } else { stride };
        for (i, d) in buf.chunks(stride).enumerate() {
            if self.handle_datagram(now, d, store) == Handled::Foreign {
                return Some(i * stride);
            }
        }
        None
    }

    /// Fires the timers that are due at `now` (does nothing otherwise).
    fn handle_timeout(&mut self, now: Instant);

    /// When [`handle_timeout`](Self::handle_timeout) should next be called;
    /// `None` when no timer runs.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Writes what may leave now into `buf` (replacing its contents): one
    /// datagram, or up to `max_datagrams` of one size for one segmented
    /// send. `None` when nothing may be sent now.
    fn poll_transmit(
        &mut self,
        now: Instant,
        store: &mut S,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit>;

    /// True once the machine has nothing more to do (successfully or not:
    /// each machine says how it ended).
    fn is_finished(&self) -> bool;
}

/// The fast sender: the file is read from `S` as DATA is built;
/// `max_datagrams > 1` asks for GSO batches (`fast::sender::Sender::poll_batch`).
impl<S: Source> Endpoint<S> for fast::sender::Sender {
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8], _: &mut S) -> Handled {
        fast::sender::Sender::handle_datagram(self, now, datagram);
        Handled::Taken
    }
    fn handle_timeout(&mut self, now: Instant) {
        fast::sender::Sender::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        fast::sender::Sender::poll_timeout(self)
    }
    fn poll_transmit(
        &mut self,
        now: Instant,
        src: &mut S,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        buf.clear();
        let segment_size = if max_datagrams <= 1 {
            fast::sender::Sender::poll_transmit(self, now, src, buf).then_some(None)?
        } else {
            self.poll_batch(now, src, buf, max_datagrams)?.segment
        };
        Some(Transmit { len: buf.len(), segment_size })
    }
    fn is_finished(&self) -> bool {
        fast::sender::Sender::is_finished(self)
    }
}

/// The fast receiver: the file is written to `K`; classic data before the
/// handshake is refused as [`Handled::Foreign`] (the driver falls back to
/// the classic receiver).
impl<K: Sink> Endpoint<K> for fast::receiver::Receiver {
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8], sink: &mut K) -> Handled {
        match fast::receiver::Receiver::handle_datagram(self, now, datagram, sink) {
            fast::receiver::Received::Fast => Handled::Taken,
            fast::receiver::Received::Classic => Handled::Foreign,
        }
    }
    /// A whole GRO buffer is one unit (`fast::receiver::Receiver::handle_segments`).
    fn handle_segments(&mut self, now: Instant, buf: &[u8], stride: usize, sink: &mut K) -> Option<usize> {
        fast::receiver::Receiver::handle_segments(self, now, buf, stride, sink).classic_at
    }
    fn handle_timeout(&mut self, now: Instant) {
        fast::receiver::Receiver::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        fast::receiver::Receiver::poll_timeout(self)
    }
    fn poll_transmit(&mut self, now: Instant, _: &mut K, _: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        let sent = fast::receiver::Receiver::poll_transmit(self, now, buf);
        sent.then_some(Transmit { len: buf.len(), segment_size: None })
    }
    fn is_finished(&self) -> bool {
        fast::receiver::Receiver::is_finished(self)
    }
}

/// What [`step`] left the endpoint waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Call [`step`] again when a datagram arrives or at this instant
    /// (`None`: only when a datagram arrives).
    Wait(Option<Instant>),
    /// The endpoint is finished.
    Finished,
    /// The endpoint refused a datagram as [`Handled::Foreign`]; nothing was
    /// transmitted and nothing after that datagram was handled.
    Foreign,
}

/// The handler [`step`] gives its `incoming` function: one receive buffer
/// (its bytes and its segment stride, 0 or its length for a single
/// datagram) in, the byte offset of a foreign datagram in it out, if there was one.
pub(crate) type Handler<'a> = dyn FnMut(&[u8], usize) -> Option<usize> + 'a;

/// `incoming` for [`step`] when there is nothing to receive this time.
pub fn no_input<X>(_: &mut Handler<'_>) -> Result<bool, X> {
    Ok(false)
}

/// `incoming` for [`step`] over datagrams queued in memory: hands them
/// over in order and empties the queue, except, after a foreign datagram,
/// for that one and those behind it (the simulator and tests use it).
pub fn drain<X, D: AsRef<[u8]>>(queue: &mut Vec<D>) -> impl FnMut(&mut Handler<'_>) -> Result<bool, X> + '_ {
    let (mut i, mut stopped) = (0, false);
    move |handle| {
        if stopped {
            return Ok(false);
        }
        if i >= queue.len() {
            queue.clear();
            return Ok(false);
        }
        let d = queue[i].as_ref();
        i += 1;
        if handle(d, d.len()).is_some() {
            queue.drain(..i - 1);
            stopped = true;
        }
        Ok(true)
    }
}

/// The loop body every driver shares: [`receive`] everything `incoming`
/// has, then [`transmit`]: fire the timer if it is due at `now` and send
/// everything that may leave now.
///
/// A driver that must do something between the two (flush a write cache
/// before acknowledging what it holds) calls them itself.
pub fn step<S, E, X>(
    e: &mut E,
    now: Instant,
    store: &mut S,
    incoming: impl FnMut(&mut Handler<'_>) -> Result<bool, X>,
    buf: &mut Vec<u8>,
    max_datagrams: usize,
    send: impl FnMut(&[u8], Option<usize>) -> Result<(), X>,
) -> Result<Step, X>
where
    S: ?Sized,
    E: Endpoint<S> + ?Sized,
{
    if receive(e, now, store, incoming)? {
        return Ok(Step::Foreign);
    }
    transmit(e, now, store, buf, max_datagrams, send)
}

/// Hands `e` everything `incoming` has: `incoming` is called with a
/// `Handler` until it returns `Ok(false)`; each call gives the handler one
/// receive buffer. Returns `true` if `e` refused a datagram as
/// [`Handled::Foreign`] (nothing after it was handled).
pub fn receive<S, E, X>(
    e: &mut E,
    now: Instant,
    store: &mut S,
    mut incoming: impl FnMut(&mut Handler<'_>) -> Result<bool, X>,
) -> Result<bool, X>
where
    S: ?Sized,
    E: Endpoint<S> + ?Sized,
{
    let mut foreign = false;
    while !foreign
        && incoming(&mut |d, stride| {
            let at = e.handle_segments(now, d, stride, store);
            foreign = at.is_some();
            at
        })?
    {}
    Ok(foreign)
}

/// Fires `e`'s timer if it is due at `now`, then sends everything that may
/// leave now through `send(bytes, segment_size)`: batches of up to
/// `max_datagrams`, written into the scratch buffer `buf`. Returns what `e`
/// waits for next; the first error of `send` ends it.
pub fn transmit<S, E, X>(
    e: &mut E,
    now: Instant,
    store: &mut S,
    buf: &mut Vec<u8>,
    max_datagrams: usize,
    mut send: impl FnMut(&[u8], Option<usize>) -> Result<(), X>,
) -> Result<Step, X>
where
    S: ?Sized,
    E: Endpoint<S> + ?Sized,
{
    if e.poll_timeout().is_some_and(|t| t <= now) {
        e.handle_timeout(now);
    }
    while let Some(t) = e.poll_transmit(now, store, max_datagrams.max(1), buf) {
        send(&buf[..t.len], t.segment_size)?;
    }
    Ok(if e.is_finished() { Step::Finished } else { Step::Wait(e.poll_timeout()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every datagram with its reverse; refuses `b"no"`; finished after `b"end"`.
    #[derive(Default)]
    struct Echo {
        seen: Vec<Vec<u8>>,
        replies: Vec<Vec<u8>>,
        timer: Option<Instant>,
        fired: u32,
        done: bool,
    }

    impl Endpoint<Vec<u8>> for Echo {
        fn handle_datagram(&mut self, _: Instant, d: &[u8], store: &mut Vec<u8>) -> Handled {
            if d == b"no" {
                return Handled::Foreign;
            }
            store.extend_from_slice(d);
            self.seen.push(d.to_vec());
            self.replies.push(d.iter().rev().copied().collect());
            self.done |= d == b"end";
            Handled::Taken
        }
        fn handle_timeout(&mut self, now: Instant) {
            if self.timer.is_some_and(|t| t <= now) {
                self.fired += 1;
                self.timer = None;
            }
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.timer
        }
        fn poll_transmit(&mut self, _: Instant, _: &mut Vec<u8>, max: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
            if self.replies.is_empty() {
                return None;
            }
            buf.clear();
            let n = max.min(self.replies.len());
            for r in self.replies.drain(..n) {
                buf.extend_from_slice(&r);
            }
            Some(Transmit { len: buf.len(), segment_size: (n > 1).then_some(buf.len() / n) })
        }
        fn is_finished(&self) -> bool {
            self.done
        }
    }

    #[test]
    fn the_default_splits_a_gro_buffer_by_its_stride() {
        let mut e = Echo::default();
        let mut store = Vec::new();
        assert_eq!(e.handle_segments(Instant::now(), b"abcdefgh", 3, &mut store), None);
        assert_eq!(e.seen, [&b"abc"[..], b"def", b"gh"]);
        assert_eq!(e.handle_segments(Instant::now(), b"xxnoyy", 2, &mut store), Some(2));
        assert_eq!(e.seen.last().unwrap(), b"xx", "nothing after the foreign datagram is handled");
        assert_eq!(e.handle_segments(Instant::now(), b"", 0, &mut store), None);
        assert_eq!(e.seen.last().unwrap(), b"", "an empty datagram is one datagram too");
    }

    #[test]
    fn a_step_receives_all_then_fires_a_due_timer_then_sends_all() {
        let t0 = Instant::now();
        let mut e = Echo { timer: Some(t0), ..Echo::default() };
        let mut store = Vec::new();
        let mut queue = vec![b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec()];
        let mut sent = Vec::new();
        let mut buf = Vec::new();
        let r = step(&mut e, t0, &mut store, drain(&mut queue), &mut buf, 2, |d, seg| {
            sent.push((d.to_vec(), seg));
            Ok::<_, ()>(())
        });
        assert_eq!(r, Ok(Step::Wait(None)));
        assert!(queue.is_empty());
        assert_eq!(store, b"abcdef");
        assert_eq!(e.fired, 1);
        assert_eq!(sent, [(b"badc".to_vec(), Some(2)), (b"fe".to_vec(), None)]);
        let t = Transmit { len: 4, segment_size: Some(2) };
        assert_eq!(t.datagrams(b"badc").collect::<Vec<_>>(), [b"ba", b"dc"]);

        // A timer not yet due is left alone; the end is reported.
        e.timer = Some(t0 + std::time::Duration::from_secs(1));
        let mut queue = vec![b"end".to_vec()];
        let r = step(&mut e, t0, &mut store, drain(&mut queue), &mut buf, 1, |_, _| Ok::<_, ()>(()));
        assert_eq!(r, Ok(Step::Finished));
        assert_eq!(e.fired, 1);
    }

    #[test]
    fn a_foreign_datagram_stops_the_step_and_stays_queued() {
        let t0 = Instant::now();
        let mut e = Echo::default();
        let mut store = Vec::new();
        let mut queue = vec![b"ab".to_vec(), b"no".to_vec(), b"cd".to_vec()];
        let mut sent = 0;
        let r = step(&mut e, t0, &mut store, drain(&mut queue), &mut Vec::new(), 1, |_, _| {
            sent += 1;
            Ok::<_, ()>(())
        });
        assert_eq!(r, Ok(Step::Foreign));
        assert_eq!(sent, 0, "nothing is sent after a foreign datagram");
        assert_eq!(queue, [b"no".to_vec(), b"cd".to_vec()]);
    }

    #[test]
    fn a_transmit_error_ends_the_step() {
        let t0 = Instant::now();
        let mut e = Echo::default();
        let mut queue = vec![b"ab".to_vec(), b"cd".to_vec()];
        let r = step(&mut e, t0, &mut Vec::new(), drain(&mut queue), &mut Vec::new(), 1, |_, _| Err("no route"));
        assert_eq!(r, Err("no route"));
        assert_eq!(e.replies.len(), 1, "the second reply is still due");
    }
}
