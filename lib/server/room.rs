//! The room: who is here, and a bounded update queue per user.
//!
//! [`Room`] is a cheap cloneable handle. Delivering an update never waits on
//! the target. When nothing is queued for it, the update is written to the
//! target's update connection at once, from the sender's task, without
//! waking any other task (a non-blocking write into the kernel's buffer, as
//! a one-thread server such as ngircd does). Otherwise it joins the target's
//! bounded queue, which the target's own writer task drains; when that queue
//! is full the user is marked for disconnection (its connection task does
//! the cleanup and logs it) and the sender goes on. The same happens when the
//! user's update connection breaks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

/// One encoded update, shared by every target of a broadcast.
pub(crate) type Bytes = Arc<[u8]>;

/// One queued update: its bytes, how many of them are written already, and
/// optionally who to tell once it is all written (the sender is dropped
/// unsent if the write failed or never happened).
struct Queued {
    bytes: Bytes,
    written: usize,
    ack: Option<oneshot::Sender<()>>,
}

/// A user's way out: the update connection and what waits to be written to it.
#[derive(Debug)]
pub(crate) struct Outbox {
    stream: Arc<TcpStream>,
    state: Mutex<OutState>,
    /// Woken when the queue becomes non-empty.
    ready: Notify,
    capacity: usize,
}

#[derive(Default)]
struct OutState {
    queue: VecDeque<Queued>,
    /// Set once a write failed: nothing more is accepted.
    broken: bool,
}

impl std::fmt::Debug for OutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutState").field("queued", &self.queue.len()).field("broken", &self.broken).finish()
    }
}

/// What [`Outbox::push`] did with an update.
enum Pushed {
    Written,
    Queued(Option<oneshot::Receiver<()>>),
    Full,
    Broken,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `bytes` now if nothing is queued and the socket takes them
    /// whole; otherwise queues them (with an acknowledgement if `ack`).
    fn push(&self, bytes: &Bytes, ack: bool) -> Pushed {
        let mut st = self.lock();
        if st.broken {
            return Pushed::Broken;
        }
        let mut written = 0;
        if st.queue.is_empty() {
            match self.stream.try_write(bytes) {
                Ok(n) if n == bytes.len() => return Pushed::Written,
                Ok(n) => written = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    st.broken = true;
                    return Pushed::Broken;
                }
            }
        } else if st.queue.len() >= self.capacity {
            return Pushed::Full;
        }
        let (tx, rx) = if ack {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let was_empty = st.queue.is_empty();
        st.queue.push_back(Queued { bytes: bytes.clone(), written, ack: tx });
        drop(st);
        if was_empty {
            self.ready.notify_one();
        }
        Pushed::Queued(rx)
    }

    /// The update connection (its owner reads it to notice a reset).
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes what is queued, waiting for the socket as needed; returns once
    /// the queue is empty, or with the error that broke the connection.
    /// Cancel-safe: what was not written stays queued.
    pub(crate) async fn drain(&self) -> io::Result<()> {
        loop {
            {
                let mut st = self.lock();
                loop {
                    let Some(front) = st.queue.front_mut() else { return Ok(()) };
                    match self.stream.try_write(&front.bytes[front.written..]) {
                        Ok(n) => {
                            front.written += n;
                            if front.written == front.bytes.len()
                                && let Some(done) = st.queue.pop_front()
                                && let Some(a) = done.ack
                            {
                                let _ = a.send(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            st.broken = true;
                            st.queue.clear();
                            return Err(e);
                        }
                    }
                }
            }
            self.stream.writable().await?;
        }
    }

    /// Completes when something is queued (at once if something already is).
    pub(crate) async fn queued(&self) {
        loop {
            if !self.lock().queue.is_empty() {
                return;
            }
            self.ready.notified().await;
        }
    }

    /// True while updates wait in the queue.
    #[cfg(test)]
    pub(crate) fn is_backlogged(&self) -> bool {
        !self.lock().queue.is_empty()
    }
}

/// What the room keeps about one user.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) out: Arc<Outbox>,
    /// Notified when the user must be disconnected; `why` says why.
    pub(crate) kick: Arc<Notify>,
    why: Arc<OnceLock<&'static str>>,
    /// True while the user's update writer is blocked on a full socket: then
    /// senders do not wait for the write (see [`Delivery`]).
    pub(crate) stalled: Arc<AtomicBool>,
}

impl Member {
    /// Asks the user's connection task to end the session (as a `101`
    /// would); the first reason given is the one logged.
    pub(crate) fn end(&self, why: &'static str) {
        let _ = self.why.set(why);
        self.kick.notify_one();
    }

    /// Why [`end`](Self::end) was called.
    pub(crate) fn why(&self) -> &'static str {
        self.why.get().copied().unwrap_or("disconnected")
    }
}

/// Why a join was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinRefused {
    /// `4002`
    Taken,
    /// `4003`
    Full,
}

/// Result of delivering one update.
pub(crate) enum Delivery {
    /// Written to the target's connection already.
    Written,
    /// Queued; the receiver fires once it was written (or is dropped).
    Queued(Option<oneshot::Receiver<()>>),
    /// The user is gone or was just disconnected for not reading.
    Dropped,
}

#[derive(Debug, Default)]
struct State {
    members: HashMap<String, Member>,
    /// Names reserved by joins waiting for their update connection.
    pending: HashSet<String>,
}

/// Shared handle to the room.
#[derive(Clone, Debug)]
pub(crate) struct Room {
    state: Arc<Mutex<State>>,
    max_users: usize,
    queue: usize,
}

impl Room {
    /// An empty room for at most `max_users`, with `queue` updates buffered per user.
    pub(crate) fn new(max_users: usize, queue: usize) -> Self {
        Room { state: Arc::default(), max_users, queue: queue.max(1) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `name` for a join in progress.
    pub(crate) fn reserve(&self, name: &str) -> Result<(), JoinRefused> {
        let mut s = self.lock();
        if s.members.contains_key(name) || s.pending.contains(name) {
            return Err(JoinRefused::Taken);
        }
        if s.members.len() + s.pending.len() >= self.max_users {
            return Err(JoinRefused::Full);
        }
        s.pending.insert(name.to_string());
        Ok(())
    }

    /// Frees a reservation whose join failed.
    pub(crate) fn unreserve(&self, name: &str) {
        self.lock().pending.remove(name);
    }

    /// Turns a reservation into a member whose updates go to `update`.
    pub(crate) fn enter(&self, name: &str, update: TcpStream) -> Member {
        let out =
            Outbox { stream: Arc::new(update), state: Mutex::default(), ready: Notify::new(), capacity: self.queue };
        let m = Member { out: Arc::new(out), kick: Arc::default(), why: Arc::default(), stalled: Arc::default() };
        let mut s = self.lock();
        s.pending.remove(name);
        s.members.insert(name.to_string(), m.clone());
        m
    }

    /// Removes `member` (idempotent): only that member, not a later one who
    /// joined with the same name meanwhile; true if it was there.
    pub(crate) fn remove(&self, name: &str, member: &Member) -> bool {
        let mut s = self.lock();
        let same = s.members.get(name).is_some_and(|m| Arc::ptr_eq(&m.out, &member.out));
        same && s.members.remove(name).is_some()
    }

    /// Members other than `me`, sorted.
    pub(crate) fn others(&self, me: &str) -> Vec<String> {
        let s = self.lock();
        let mut v: Vec<String> = s.members.keys().filter(|n| *n != me).cloned().collect();
        v.sort();
        v
    }

    /// Number of members and reservations (for tests and logs).
    pub(crate) fn len(&self) -> usize {
        let s = self.lock();
        s.members.len() + s.pending.len()
    }

    /// The member called `name`, if present.
    pub(crate) fn member(&self, name: &str) -> Option<Member> {
        self.lock().members.get(name).cloned()
    }

    /// Delivers `bytes` to `name` without waiting: written at once when the
    /// connection takes them, else queued. With `ack`, a queued update's
    /// receiver fires once the bytes were written, unless the user's writer
    /// is stalled. A full queue or a broken connection disconnects the user.
    pub(crate) fn deliver(&self, name: &str, bytes: &Bytes, ack: bool) -> Delivery {
        let Some(m) = self.member(name) else { return Delivery::Dropped };
        match m.out.push(bytes, ack && !m.stalled.load(Ordering::Relaxed)) {
            Pushed::Written => Delivery::Written,
            Pushed::Queued(rx) => Delivery::Queued(rx),
            Pushed::Full => {
                tracing::warn!(user = name, "update queue full: disconnecting a user who does not read");
                self.remove(name, &m);
                m.end("did not read its updates");
                Delivery::Dropped
            }
            Pushed::Broken => {
                self.remove(name, &m);
                m.end("an update could not be written");
                Delivery::Dropped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connected loopback pair: (the server's side, the client's side).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        (l.accept().await.unwrap().0, c)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn bytes(b: &[u8]) -> Bytes {
        Arc::from(b)
    }

    #[test]
    fn reserve_enforces_names_and_capacity() {
        rt().block_on(async {
            let room = Room::new(2, 4);
            room.reserve("AL").unwrap();
            assert_eq!(room.reserve("AL"), Err(JoinRefused::Taken));
            let (s, _c) = pair().await;
            let _m = room.enter("AL", s);
            assert_eq!(room.reserve("AL"), Err(JoinRefused::Taken));
            room.reserve("BO").unwrap();
            assert_eq!(room.reserve("CY"), Err(JoinRefused::Full));
            room.unreserve("BO");
            room.reserve("CY").unwrap();
            assert_eq!(room.others("CY"), vec!["AL".to_string()]);
        });
    }

    /// An update goes out at once while nothing is queued; behind a backlog
    /// it queues, and the writer sends everything in order.
    #[test]
    fn written_at_once_else_queued_in_order() {
        rt().block_on(async {
            let room = Room::new(3, 8);
            room.reserve("AL").unwrap();
            let (s, mut c) = pair().await;
            let m = room.enter("AL", s);
            // The socket's first readiness arrives from the reactor.
            m.out.stream().writable().await.unwrap();
            assert!(matches!(room.deliver("AL", &bytes(b"one,"), true), Delivery::Written));
            // Fill the kernel's buffers so that the next update must queue.
            let big = bytes(&vec![b'x'; 8 << 20]);
            assert!(matches!(room.deliver("AL", &big, false), Delivery::Queued(None)));
            let Delivery::Queued(Some(ack)) = room.deliver("AL", &bytes(b"two"), true) else { panic!("not queued") };
            assert!(m.out.is_backlogged());
            let out = m.out.clone();
            let writer = tokio::spawn(async move { out.drain().await });
            let mut got = Vec::new();
            while !got.ends_with(b"two") {
                let mut buf = vec![0; 1 << 16];
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            writer.await.unwrap().unwrap();
            ack.await.expect("acknowledged once written");
            assert_eq!(got.len(), 4 + (8 << 20) + 3);
            assert!(got.starts_with(b"one,x"));
            assert!(!m.out.is_backlogged());
        });
    }

    #[test]
    fn overflow_disconnects_only_that_user() {
        rt().block_on(async {
            let room = Room::new(3, 2);
            room.reserve("AL").unwrap();
            room.reserve("BO").unwrap();
            let (s, _c) = pair().await;
            let m = room.enter("AL", s);
            let (s2, _c2) = pair().await;
            let _b = room.enter("BO", s2);
            m.out.stream().writable().await.unwrap();
            // Nobody reads AL's side: a large update leaves a backlog.
            let big = bytes(&vec![b'x'; 8 << 20]);
            assert!(matches!(room.deliver("AL", &big, false), Delivery::Queued(_)));
            assert!(matches!(room.deliver("AL", &bytes(b"2"), false), Delivery::Queued(_)));
            assert!(matches!(room.deliver("AL", &bytes(b"3"), false), Delivery::Dropped));
            assert!(room.member("AL").is_none());
            assert!(room.member("BO").is_some());
            // The kick permit is stored for the connection task.
            tokio::time::timeout(std::time::Duration::from_secs(1), m.kick.notified()).await.unwrap();
            assert_eq!(m.why(), "did not read its updates");
        });
    }
}
