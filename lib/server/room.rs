//! The room: who is here, and a bounded update queue per user.
//!
//! [`Room`] is a cheap cloneable handle. Delivering an update never waits on
//! the target: it is put in the target's bounded queue; when that queue is
//! full the user is marked for disconnection (its connection task does the
//! cleanup and logs it) and the sender goes on. The same happens when the
//! user's update connection breaks.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{Notify, mpsc, oneshot};

/// One queued update: its bytes and, optionally, who to tell once written
/// (the sender is dropped unsent if the write failed or never happened).
pub(crate) type Queued = (Vec<u8>, Option<oneshot::Sender<()>>);

/// What the room keeps about one user.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    tx: mpsc::Sender<Queued>,
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
pub struct Room {
    state: Arc<Mutex<State>>,
    max_users: usize,
    queue: usize,
}

impl Room {
    /// An empty room for at most `max_users`, with `queue` updates buffered per user.
    pub fn new(max_users: usize, queue: usize) -> Self {
        Room { state: Arc::default(), max_users, queue: queue.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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

    /// Turns a reservation into a member; returns the member and its queue.
    pub(crate) fn enter(&self, name: &str) -> (Member, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(self.queue);
        let m = Member { tx, kick: Arc::default(), why: Arc::default(), stalled: Arc::default() };
        let mut s = self.lock();
        s.pending.remove(name);
        s.members.insert(name.to_string(), m.clone());
        (m, rx)
    }

    /// Removes a member (idempotent); true if it was there.
    pub(crate) fn remove(&self, name: &str) -> bool {
        self.lock().members.remove(name).is_some()
    }

    /// Members other than `me`, sorted.
    pub(crate) fn others(&self, me: &str) -> Vec<String> {
        let s = self.lock();
        let mut v: Vec<String> = s.members.keys().filter(|n| *n != me).cloned().collect();
        v.sort();
        v
    }

    /// Number of members and reservations (for tests and logs).
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.members.len() + s.pending.len()
    }

    /// True if nobody is here or joining.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The member called `name`, if present.
    pub(crate) fn member(&self, name: &str) -> Option<Member> {
        self.lock().members.get(name).cloned()
    }

    /// Queues `bytes` for `name` without waiting. With `ack`, the returned
    /// receiver fires once the bytes were written, unless the user's writer is
    /// stalled. A full queue disconnects the user.
    pub(crate) fn deliver(&self, name: &str, bytes: Vec<u8>, ack: bool) -> Delivery {
        let Some(m) = self.member(name) else { return Delivery::Dropped };
        let (tx, rx) = if ack && !m.stalled.load(Ordering::Relaxed) {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        match m.tx.try_send((bytes, tx)) {
            Ok(()) => Delivery::Queued(rx),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(user = name, "update queue full: disconnecting a user who does not read");
                self.remove(name);
                m.end("did not read its updates");
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_enforces_names_and_capacity() {
        let room = Room::new(2, 4);
        room.reserve("AL").unwrap();
        assert_eq!(room.reserve("AL"), Err(JoinRefused::Taken));
        let (_m, _rx) = room.enter("AL");
        assert_eq!(room.reserve("AL"), Err(JoinRefused::Taken));
        room.reserve("BO").unwrap();
        assert_eq!(room.reserve("CY"), Err(JoinRefused::Full));
        room.unreserve("BO");
        room.reserve("CY").unwrap();
        assert_eq!(room.others("CY"), vec!["AL".to_string()]);
    }

    #[test]
    fn overflow_disconnects_only_that_user() {
        let room = Room::new(3, 2);
        room.reserve("AL").unwrap();
        let (m, _rx) = room.enter("AL");
        assert!(matches!(room.deliver("AL", b"1".to_vec(), false), Delivery::Queued(_)));
        assert!(matches!(room.deliver("AL", b"2".to_vec(), false), Delivery::Queued(_)));
        assert!(matches!(room.deliver("AL", b"3".to_vec(), false), Delivery::Dropped));
        assert!(room.member("AL").is_none());
        // The kick permit is stored for the connection task.
        let kicked = m.kick.notified();
        futures_poll(kicked);
    }

    fn futures_poll(f: impl std::future::Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(1), f).await.unwrap() });
    }
}
