//! Downloads: TCP and classic UDP go-back-N, each on its own pool port.
//!
//! Every transfer owns its [`PortGuard`], so the port returns to the pool
//! however the transfer ends. Only the requester's IP may use the port.
//!
//! A transfer ends as soon as its user is gone: a `101` or a closed main
//! connection ends every transfer the user started ([`UserTransfers::end`]),
//! before the `201` is sent, so their ports are free by then. A fast
//! transfer tells the receiver with an ABORT ("the user left the room", or
//! "the server is shutting down" on shutdown); a TCP one resets its
//! connection. A fast transfer whose every byte was acknowledged waits at
//! most two RTTs for its DONE-ACK (which the receiver sent before it left).
//!
//! Fast-mode seam: a UDP transfer starts with the receiver's first datagram.
//! A chatctl fast hello ([`fast::is_fast_hello`]) goes to [`udp_other_hello`],
//! which runs the fast sender; another classic hello ([`classic::parse_window`])
//! runs the classic sender.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::files::{Changed, Stamp, Watch};
use super::logs::{Logs, limited};
use super::ports::PortGuard;
use super::shutdown::Shutdown;
use crate::rdt::classic::{
    self,
    sender::{Outcome, Sender},
};
use crate::rdt::endpoint;
use crate::rdt::fast::driver::{Cancel, RdtError};
use crate::rdt::fast::{self, AbortReason, ReadWatch, Watched, driver::Tracer};

/// Longest a leaving user's `201` waits for their transfers to end (a fast
/// transfer's thread ends within a few milliseconds of its ABORT).
const END_WAIT: Duration = Duration::from_secs(2);

/// The transfers one user (one main connection) has started, to end them
/// when the user leaves.
#[derive(Debug)]
pub(crate) struct UserTransfers {
    gone: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Default for UserTransfers {
    fn default() -> Self {
        Self { gone: watch::channel(false).0, tasks: Vec::new() }
    }
}

impl UserTransfers {
    /// What a new transfer of this user watches.
    pub(crate) fn leaving(&self) -> Leaving {
        Leaving(self.gone.subscribe())
    }

    /// Keeps the task of a transfer just started.
    pub(crate) fn track(&mut self, task: JoinHandle<()>) {
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(task);
    }

    /// Ends every transfer started so far and waits (up to [`END_WAIT`])
    /// until they have, so their ports are back in the pool. Transfers
    /// started afterwards (after a new join) are not affected.
    pub(crate) async fn end(&mut self) {
        let _ = self.gone.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(END_WAIT, futures_util::future::join_all(tasks)).await;
        *self = Self::default();
    }
}

/// A transfer's view of its user: [`Leaving::recv`] completes when they leave.
#[derive(Clone, Debug)]
pub(crate) struct Leaving(watch::Receiver<bool>);

impl Leaving {
    /// Completes when the user has left (or their session is gone).
    pub(crate) async fn recv(&mut self) {
        let _ = self.0.wait_for(|gone| *gone).await;
    }
}

/// One download about to start.
#[derive(Debug)]
pub(crate) struct Download {
    /// File name, as listed, escaped for the log.
    pub name: String,
    /// The open file.
    pub file: File,
    /// Its size in bytes, as announced in `206`.
    pub size: u64,
    /// What the file looked like when `206` was sent: every sender stops
    /// before the last byte if it changes ([`Watch`]).
    pub stamp: Stamp,
    /// `file` is a private clone that cannot change.
    pub snapshot: bool,
    /// Who asked: only this IP may connect or send.
    pub peer: IpAddr,
    /// Who asked, for logs.
    pub user: String,
    /// How long the requester has to show up.
    pub wait: Duration,
    /// How long a started transfer may make no progress (a client that
    /// stops reading, or vanishes) before it is abandoned.
    pub stall: Duration,
    /// The pool port, returned on drop.
    pub guard: PortGuard,
    /// Fast UDP mode settings.
    pub fast: crate::rdt::fast::Config,
    /// Where fast-mode events go (`serve --trace`).
    pub trace: Option<Tracer>,
    /// The server's rate-limited log.
    pub logs: Logs,
    /// Counts this transfer against its user's transfers in flight.
    pub _in_flight: std::sync::Arc<()>,
    /// Ends the transfer when its user leaves.
    pub leaving: Leaving,
}

fn log_end(d: &Download, bytes: u64, started: Instant, how: &str) {
    let secs = started.elapsed().as_secs_f64();
    let mbps = if secs > 0.0 { bytes as f64 * 8.0 / secs / 1e6 } else { 0.0 };
    limited!(d.logs, d.peer, "download ended" => info!(
        user = %d.user, file = %d.name, port = d.guard.port(), bytes, secs = format!("{secs:.3}"),
        goodput_mbit_s = format!("{mbps:.1}"), "download {how}"
    ));
}

/// Serves `d` over TCP: accept one connection from the requester's IP, send, close.
pub(super) async fn tcp(d: Download, listener: TcpListener, mut shutdown: Shutdown) {
    let deadline = tokio::time::Instant::now() + d.wait;
    let mut leaving = d.leaving.clone();
    let mut stream = loop {
        tokio::select! {
            r = tokio::time::timeout_at(deadline, listener.accept()) => match r {
                Ok(Ok((s, from))) if from.ip() == d.peer => break s,
                Ok(Ok((_, from))) => limited!(d.logs, from.ip(), warn!(%from, port = d.guard.port(),), "refused transfer connection from another address"),
                Ok(Err(e)) => tracing::warn!(error = %e, "transfer accept failed"),
                Err(_) => {
                    limited!(d.logs, d.peer, warn!(user = %d.user, file = %d.name, port = d.guard.port(),), "download abandoned: nobody connected");
                    return;
                }
            },
            _ = shutdown.recv() => return,
            _ = leaving.recv() => return,
        }
    };
    drop(listener);
    let _ = stream.set_nodelay(true);
    limited!(
        d.logs,
        d.peer,
        info!(user = %d.user, file = %d.name, size = d.size, snapshot = d.snapshot, transport = "TCP",),
        "download started"
    );
    let started = Instant::now();
    let copy = async {
        let mut watch = Watch::new(&d.file, d.stamp)?;
        let mut file = tokio::fs::File::from_std(d.file.try_clone()?);
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        while n < d.size {
            let want = (d.size - n).min(buf.len() as u64) as usize;
            let r = match tokio::io::AsyncReadExt::read(&mut file, &mut buf[..want]).await {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file ended at byte {n} of {}", d.size),
                )),
                r => r,
            };
            let k = *r.as_ref().unwrap_or(&0);
            // Looked at before the bytes leave: the last byte never goes
            // out after a change.
            watch.after_read(n, k, r.map(drop))?;
            // A reader that stops reading must not hold the port forever.
            tokio::time::timeout(d.stall, stream.write_all(&buf[..k]))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading"))??;
            n += k as u64;
        }
        stream.shutdown().await?;
        Ok::<u64, std::io::Error>(n)
    };
    let reset = |stream: &tokio::net::TcpStream| {
        // A reset, not a FIN: the client sees a short transfer that failed,
        // never an end of file (the original client included).
        let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    };
    let ended = tokio::select! {
        r = copy => {
            match r {
                Ok(n) => log_end(&d, n, started, if n == d.size { "finished" } else { "short" }),
                Err(e) => match Changed::within(&e) {
                    Some(c) => {
                        reset(&stream);
                        limited!(d.logs, d.peer, "download failed: the file changed" => warn!(
                            user = %d.user, file = %d.name, reason = %c, "download cut: the file changed while it was sent"
                        ));
                    }
                    None => limited!(d.logs, d.peer, warn!(user = %d.user, file = %d.name, error = %e,), "download failed"),
                },
            }
            None
        }
        _ = shutdown.recv() => Some(AbortReason::ServerShutdown),
        _ = leaving.recv() => Some(AbortReason::UserLeft),
    };
    if let Some(reason) = ended {
        reset(&stream);
        limited!(
            d.logs,
            d.peer,
            info!(user = %d.user, file = %d.name, port = d.guard.port(),),
            "download ended: {reason}"
        );
    }
}

/// Serves `d` over UDP: wait for the requester's hello (a fast hello or a
/// classic window; other datagrams are ignored), then run the classic
/// sender or hand over to [`udp_other_hello`].
pub(super) async fn udp(d: Download, sock: UdpSocket, mut shutdown: Shutdown) {
    let deadline = tokio::time::Instant::now() + d.wait;
    let mut leaving = d.leaving.clone();
    let mut buf = vec![0u8; 2048];
    let (n, from) = loop {
        tokio::select! {
            r = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)) => match r {
                // Only a hello starts the transfer: anything else is a late
                // datagram of an earlier transfer on this port (its DONE-ACK,
                // held up on the path after that transfer ended) and is ignored.
                Ok(Ok((n, from))) if from.ip() == d.peer && is_hello(&buf[..n]) => break (n, from),
                Ok(Ok((_, from))) if from.ip() == d.peer => limited!(d.logs, d.peer, debug!(%from, port = d.guard.port(),), "ignored a datagram that is no hello"),
                Ok(Ok((_, from))) => limited!(d.logs, from.ip(), warn!(%from, port = d.guard.port(),), "ignored datagram from another address"),
                Ok(Err(e)) => limited!(d.logs, d.peer, debug!(error = %e,), "transfer recv failed"),
                Err(_) => {
                    limited!(d.logs, d.peer, warn!(user = %d.user, file = %d.name, port = d.guard.port(),), "download abandoned: no hello");
                    return;
                }
            },
            _ = shutdown.recv() => return,
            _ = leaving.recv() => return,
        }
    };
    // The fast hello also reads as a classic window (98, for the reference's
    // sake), so it is recognised first.
    let classic_window = if fast::is_fast_hello(&buf[..n]) { None } else { classic::parse_window(&buf[..n]) };
    match classic_window {
        Some(w) => classic_send(&d, sock, from, w, shutdown).await,
        None => udp_other_hello(&d, sock, from, buf[..n].to_vec(), shutdown).await,
    }
}

/// The fast-mode seam: a first datagram that is not a classic hello. A
/// chatctl fast hello ([`fast::is_fast_hello`]) runs the fast sender on its
/// own thread (only `from`, on the requester's IP, is answered; the
/// anti-amplification limit holds until it echoes the cookie); anything else
/// ends the transfer. Shutdown, or the user leaving, ends it with an ABORT.
pub(super) async fn udp_other_hello(
    d: &Download,
    sock: UdpSocket,
    from: SocketAddr,
    hello: Vec<u8>,
    mut shutdown: Shutdown,
) {
    if !fast::is_fast_hello(&hello) {
        limited!(
            d.logs,
            d.peer,
            warn!(user = %d.user, %from, len = hello.len(),),
            "UDP hello is neither classic nor fast: transfer ended"
        );
        return;
    }
    let (file, watch) = match d.file.try_clone().and_then(|f| Ok((Watch::new(&f, d.stamp)?, f))) {
        Ok((w, f)) => (f, w),
        Err(e) => {
            tracing::warn!(file = %d.name, error = %e, "cannot read file");
            return;
        }
    };
    let mut cfg = d.fast.clone();
    cfg.seed = random_seed();
    limited!(
        d.logs,
        d.peer,
        info!(user = %d.user, file = %d.name, size = d.size, snapshot = d.snapshot, transport = "UDP fast", cc = %cfg.cc,),
        "download started"
    );
    let trace = d.trace.as_ref().map(|t| t.labelled(d.guard.port()));
    let cancel = Arc::new(Cancel::new());
    let mut leaving = d.leaving.clone();
    let run =
        fast::driver::send_file(sock, d.peer, (from, hello), file, Some(Box::new(watch)), &cfg, trace, cancel.clone());
    tokio::pin!(run);
    // Cancelled, the sender sends its ABORT and ends at once: awaited, so
    // the port goes back to the pool only once its socket is closed.
    let r = tokio::select! {
        r = &mut run => r,
        _ = shutdown.recv() => {
            cancel.cancel(AbortReason::ServerShutdown);
            run.await
        }
        _ = leaving.recv() => {
            cancel.cancel(AbortReason::UserLeft);
            run.await
        }
    };
    match r {
        Ok(r) => {
            let secs = r.elapsed.as_secs_f64();
            let sent = r.size - r.resumed_from;
            let mbps = if secs > 0.0 { sent as f64 * 8.0 / secs / 1e6 } else { 0.0 };
            limited!(d.logs, d.peer, "download ended" => info!(
                user = %d.user, file = %d.name, port = d.guard.port(), bytes = sent, resumed_from = r.resumed_from,
                secs = format!("{secs:.3}"), goodput_mbit_s = format!("{mbps:.1}"),
                retransmitted_bytes = r.stats.bytes_retransmitted, lost_packets = r.stats.packets_lost,
                rtos = r.stats.rtos, datagram = r.max_datagram, cc = %r.cc, verified = r.confirmed,
                "download {}", if r.confirmed { "finished" } else { "sent (hash verdict never came)" }
            ));
        }
        Err(RdtError::Cancelled(reason)) => {
            limited!(
                d.logs,
                d.peer,
                info!(user = %d.user, file = %d.name, port = d.guard.port(),),
                "download ended: {reason}"
            );
        }
        Err(RdtError::Send(e @ fast::sender::SendError::PeerAborted(_))) => {
            limited!(
                d.logs,
                d.peer,
                info!(user = %d.user, file = %d.name, port = d.guard.port(),),
                "download ended: {e}"
            );
        }
        Err(e) => match Changed::in_chain(&e) {
            Some(c) => limited!(d.logs, d.peer, "download failed: the file changed" => warn!(
                user = %d.user, file = %d.name, reason = %c, "fast download stopped: the file changed while it was sent"
            )),
            None => {
                limited!(d.logs, d.peer, warn!(user = %d.user, file = %d.name, error = %e,), "fast download failed")
            }
        },
    }
}

/// Whether a transfer's first datagram starts it: a fast hello or a classic window.
fn is_hello(datagram: &[u8]) -> bool {
    fast::is_fast_hello(datagram) || classic::parse_window(datagram).is_some()
}

/// A seed for the cookie that a remote peer cannot guess.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// Drives the classic [`Sender`] over `sock`, talking only to `peer`. The
/// file is read on demand, one packet at a time: memory stays bounded by the
/// window whatever the file size.
async fn classic_send(d: &Download, sock: UdpSocket, peer: SocketAddr, w: u8, mut shutdown: Shutdown) {
    limited!(
        d.logs,
        d.peer,
        info!(user = %d.user, file = %d.name, size = d.size, snapshot = d.snapshot, transport = "UDP", window = w,),
        "download started"
    );
    let started = Instant::now();
    let mut s = Sender::new(d.size, w);
    let mut source = match Watch::new(&d.file, d.stamp) {
        Ok(watch) => Watched { inner: &d.file, watch },
        Err(e) => {
            tracing::warn!(file = %d.name, error = %e, "cannot read file");
            return;
        }
    };
    let mut out = Vec::with_capacity(classic::CHUNK + 3);
    // What the shared step lets leave, sent (awaited) after it.
    let mut due: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let (mut acked, mut progress) = (0, Instant::now());
    let mut leaving = d.leaving.clone();
    loop {
        let now = Instant::now();
        if s.acked_bytes() != acked {
            (acked, progress) = (s.acked_bytes(), now);
        } else if now.duration_since(progress) >= d.stall {
            limited!(d.logs, d.peer, warn!(user = %d.user, file = %d.name, acked,), "download abandoned: no progress");
            return;
        }
        // Timer if due, then every datagram the window allows.
        let step = endpoint::transmit(&mut s, now, &mut source, &mut out, 1, |b, _| {
            due.push(b.to_vec());
            Ok::<_, std::convert::Infallible>(())
        });
        for b in due.drain(..) {
            if let Err(e) = sock.send_to(&b, peer).await {
                limited!(d.logs, d.peer, debug!(error = %e,), "send failed");
            }
        }
        let timeout = match step {
            Ok(endpoint::Step::Wait(t)) => t.map(tokio::time::Instant::from_std),
            _ => break, // finished (a read error ends it while sending)
        };
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r
                    && from == peer
                {
                    s.handle_datagram(Instant::now(), &buf[..n]);
                }
            }
            _ = sleep_until(timeout) => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(progress + d.stall)) => {}
            _ = shutdown.recv() => return,
            _ = leaving.recv() => {
                limited!(d.logs, d.peer, info!(user = %d.user, file = %d.name, port = d.guard.port(),), "download ended: the user left the room");
                return;
            }
        }
    }
    match s.outcome() {
        Some(Outcome::Confirmed) => log_end(d, d.size, started, "finished"),
        Some(Outcome::Unconfirmed) => log_end(d, d.size, started, "sent (last ACK never came)"),
        _ => match s.take_error().as_ref().map(|e| (e, Changed::within(e))) {
            // The final datagram never left: the receiver cannot finish.
            Some((_, Some(c))) => limited!(d.logs, d.peer, "download failed: the file changed" => warn!(
                user = %d.user, file = %d.name, acked = s.acked_bytes(), reason = %c,
                "download stopped before its last datagram: the file changed while it was sent"
            )),
            Some((e, None)) => {
                limited!(
                    d.logs,
                    d.peer,
                    warn!(user = %d.user, file = %d.name, acked = s.acked_bytes(), error = %e,),
                    "download failed: cannot read file"
                )
            }
            None => {
                limited!(
                    d.logs,
                    d.peer,
                    warn!(user = %d.user, file = %d.name, acked = s.acked_bytes(),),
                    "download failed: receiver stopped answering"
                )
            }
        },
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
