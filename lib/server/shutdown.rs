//! Shutdown: one broadcast every task honours, and a way to wait for them all.
//!
//! As in mini-redis: tasks hold a [`Shutdown`] (a `watch` receiver) and a
//! clone of the tracker's sender; the server waits until every clone is dropped.

use tokio::sync::{mpsc, watch};

/// A task's view of the shutdown signal.
#[derive(Clone, Debug)]
pub(super) struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A signal and its trigger.
    pub(super) fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown { rx })
    }

    /// Completes when shutdown begins (or the trigger is gone).
    pub(super) async fn recv(&mut self) {
        let _ = self.rx.wait_for(|s| *s).await;
    }
}

/// Tracks running tasks: each holds a [`TaskToken`]; [`Tracker::wait`] returns
/// when all tokens are dropped.
#[derive(Debug)]
pub(super) struct Tracker {
    tx: Option<mpsc::Sender<()>>,
    rx: mpsc::Receiver<()>,
}

/// Held by a running task; dropping it tells the [`Tracker`].
#[derive(Clone, Debug)]
pub(super) struct TaskToken {
    _tx: mpsc::Sender<()>,
}

impl Tracker {
    /// A tracker with no tasks.
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::channel(1);
        Tracker { tx: Some(tx), rx }
    }

    /// A token for a new task.
    pub(super) fn token(&self) -> TaskToken {
        TaskToken { _tx: self.tx.clone().expect("token after wait") }
    }

    /// Waits until every token is dropped.
    pub(super) async fn wait(mut self) {
        self.tx = None;
        let _ = self.rx.recv().await;
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}
