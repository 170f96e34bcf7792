//! The line forwarder behind `say` reading standard input: each line is sent
//! as it arrives, the connection is watched while no line comes (a server
//! that goes away ends it at once), and with reconnection on, lines read
//! while the server is away wait in a bounded `Backlog` and go out in order
//! once [`rejoin`] succeeds. `outage`, the time away, is shared with the
//! chat behind `join` ([`Chat`](super::chat::Chat)).
//!
//! Delivery is at least once across a loss: a line whose confirmation never
//! came is sent again after the rejoin (the old server may have delivered it
//! before it went away).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::reconnect::{Attempt, Backlog, Backoff, rejoin};
use super::{ClientError, Session, Updates};

/// What happened on the way, for the caller to report (one line each on stderr).
#[derive(Debug)]
pub enum Event<'a> {
    /// The server went away; a rejoin starts.
    Lost(&'a ClientError),
    /// One rejoin attempt failed.
    Attempt(&'a Attempt),
    /// Back in the room: `waiting` lines are about to be sent, `dropped` were
    /// lost because the backlog was full.
    Back {
        /// Lines about to be sent.
        waiting: usize,
        /// Lines dropped while away.
        dropped: u64,
    },
}

/// Why forwarding stopped early.
#[derive(Debug)]
pub enum Stop<E> {
    /// The session failed (without reconnection, a lost server is
    /// [`ClientError::Closed`]).
    Client(ClientError),
    /// The caller's own handling of a sent line failed (e.g. stdout closed).
    Sink(E),
    /// The interrupt future completed (Ctrl-C).
    Interrupted,
}

/// Where to rejoin, and how patiently.
#[derive(Debug)]
pub struct Rejoin {
    /// The server, as given on the command line.
    pub server: String,
    /// The name to join with again.
    pub name: String,
    /// Bound of each join step.
    pub timeout: Duration,
    /// Delays between attempts.
    pub backoff: Backoff,
}

/// Forwards `lines` through the joined session until they end (and every
/// waiting line is sent), the session fails (and `rejoin` is `None` or gives
/// up), or `interrupt` completes. `send` sends one line and returns what
/// `sent` reports; `current` always holds the live session (`None` while
/// away), for a shared-session host. Returns the last live session, to
/// leave, and the result.
#[allow(clippy::too_many_arguments)]
pub async fn forward<T, E, F, Fut>(
    joined: (Arc<Session>, Updates),
    mut rejoin_with: Option<Rejoin>,
    backlog_cap: usize,
    mut lines: mpsc::UnboundedReceiver<String>,
    mut send: F,
    mut sent: impl FnMut(T) -> Result<(), E>,
    mut event: impl FnMut(Event<'_>),
    current: &watch::Sender<Option<Arc<Session>>>,
    interrupt: impl Future<Output = ()>,
) -> (Option<Arc<Session>>, Result<(), Stop<E>>)
where
    F: FnMut(Arc<Session>, String) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    tokio::pin!(interrupt);
    let mut backlog = Backlog::new(backlog_cap);
    let mut input_over = false;
    let (mut session, mut updates) = joined;
    loop {
        // Connected: send what waits, then wait for a line or the loss.
        let lost = loop {
            if let Some(line) = backlog.front().cloned() {
                let r = tokio::select! {
                    biased;
                    _ = &mut interrupt => return (Some(session), Err(Stop::Interrupted)),
                    r = send(session.clone(), line) => r,
                };
                match r {
                    Ok(t) => {
                        backlog.pop();
                        if let Err(e) = sent(t) {
                            return (Some(session), Err(Stop::Sink(e)));
                        }
                        continue;
                    }
                    Err(e) if rejoin_with.is_some() && e.exit() == crate::exit::Exit::ServerGone => break e,
                    Err(e) => return (Some(session), Err(Stop::Client(e))),
                }
            }
            if input_over {
                return (Some(session), Ok(()));
            }
            tokio::select! {
                biased;
                _ = &mut interrupt => return (Some(session), Err(Stop::Interrupted)),
                // Updates are not shown by `say`; only their end matters.
                e = updates.closed() => break e,
                l = lines.recv() => match l {
                    Some(l) => backlog.push(l),
                    None => input_over = true,
                },
            }
        };
        let Some(how) = rejoin_with.as_mut() else { return (None, Err(Stop::Client(lost))) };
        let keep = |l| match l {
            Some(l) => backlog.push(l),
            None => input_over = true,
        };
        match outage(how, &lost, &mut lines, keep, current, &mut interrupt, &mut event).await {
            Ok(Some(joined)) => {
                (session, updates) = joined;
                event(Event::Back { waiting: backlog.len(), dropped: backlog.take_dropped() });
            }
            Ok(None) => return (None, Err(Stop::Interrupted)),
            Err(e) => return (None, Err(Stop::Client(e))),
        }
    }
}

/// A lost server, for [`forward`] and the chat alike: reports the loss,
/// shows no live session in `current` while away, and rejoins per `how`
/// ([`away`]: every line read meanwhile goes to `keep`) unless `stop`
/// completes first (`Ok(None)`). Back in the room, the new session is in
/// `current` and returned.
pub(crate) async fn outage<T>(
    how: &mut Rejoin,
    lost: &ClientError,
    lines: &mut mpsc::UnboundedReceiver<T>,
    keep: impl FnMut(Option<T>),
    current: &watch::Sender<Option<Arc<Session>>>,
    stop: impl Future<Output = ()>,
    mut event: impl FnMut(Event<'_>),
) -> Result<Option<(Arc<Session>, Updates)>, ClientError> {
    event(Event::Lost(lost));
    let _ = current.send(None);
    let (session, updates) = tokio::select! {
        biased;
        _ = stop => return Ok(None),
        r = away(how, lines, keep, &mut event) => r?,
    };
    let session = Arc::new(session);
    let _ = current.send(Some(session.clone()));
    Ok(Some((session, updates)))
}

/// The time away: [`rejoin`] per `how`, while every line that arrives is
/// handed to `keep` (`None` once the input has ended) so none is lost or
/// reordered, and each failed attempt to `event`.
pub async fn away<T>(
    how: &mut Rejoin,
    lines: &mut mpsc::UnboundedReceiver<T>,
    mut keep: impl FnMut(Option<T>),
    mut event: impl FnMut(Event<'_>),
) -> Result<(Session, Updates), ClientError> {
    let again = rejoin(&how.server, &how.name, how.timeout, &mut how.backoff, |a| event(Event::Attempt(a)));
    tokio::pin!(again);
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            r = &mut again => return r,
            l = lines.recv(), if open => {
                open = l.is_some();
                keep(l);
            }
        }
    }
}
