//! Socket drivers for the fast-mode machines: the only place where the fast
//! mode touches a socket, a file or the clock.
//!
//! # Why a dedicated thread
//! Each transfer runs on its own OS thread with a non-blocking UDP socket
//! and `poll(2)` for waiting. A transfer is one tight loop (drain every
//! datagram that arrived, feed the machine, send what it allows, sleep until
//! its next timer) and a thread keeps that loop off tokio's worker threads,
//! so a multi-gigabyte transfer never delays the chat, and the loop pays no
//! task wake-up per datagram. The `async` entry points (`send_file`,
//! [`receive_file`]) run the blocking ones ([`send_file_blocking`],
//! [`receive_file_blocking`]) on `spawn_blocking` and stop them when their
//! future is dropped, e.g. on Ctrl-C.
//!
//! # Ending early
//! A [`Cancel`] stops a transfer from outside, with a reason: the machine
//! sends its ABORT (so the peer ends at once instead of on its idle timeout)
//! and the driver returns [`RdtError::Cancelled`]. Cancelling rings a bell
//! (a loopback UDP socket the driver also waits on), so the driver wakes at
//! once rather than within `WAKE`. Dropping [`receive_file`]'s future
//! cancels it as [`AbortReason::Cancelled`] and waits (briefly) until the
//! ABORT is out, so a client that exits right after still told the server.
//!
//! # Datagram size
//! The sender starts at `cfg.max_datagram` bytes per datagram and probes
//! larger sizes (`cfg.probe_datagrams`) with the don't-fragment bit set, so
//! a probe too big for the path is lost rather than fragmented. On a
//! loopback path [`Config::for_path`] starts at `LOOPBACK_DATAGRAM` at
//! once (the loopback MTU is 65536).
//! Socket buffers are raised to 8 MiB (`udp::SOCKET_BUFFER`) so a window of large
//! datagrams is not dropped by the kernel.
//!
//! # Batched and segmented I/O
//! Sockets go through the UDP plumbing shared with the relay (`rdt::udp`):
//! `recvmmsg(2)` with GRO on receipt, each received buffer handed to the
//! receiver whole (`Receiver::handle_segments`); GSO on sending. The sender machine
//! builds batches of equal-size DATA datagrams itself
//! (`Sender::poll_batch`), which leave in one `sendmsg(2)` with
//! `UDP_SEGMENT`. A batch holds at most `max_gso_segments()` datagrams and
//! `GSO_MAX_BYTES`; path-MTU probes and every other kind of datagram are
//! sent alone.

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::files::{Coalesce, ReadAhead};
use super::receiver::{Receiver, RecvError};
use super::sender::{SendError, Sender, State as SendState};
use super::{AbortReason, Config, GSO_MAX_BYTES, ReadWatch, Stats, Watched};
use crate::rdt::endpoint::{self, Step};
use crate::rdt::udp::{self, Io};

/// Largest datagram used on a loopback path (below the 65,507-byte UDP limit over IPv4).
pub(crate) const LOOPBACK_DATAGRAM: usize = 65_000;
/// Longest a driver sleeps before it checks for cancellation.
pub(crate) const WAKE: Duration = Duration::from_millis(100);
/// Longest a sender cancelled after every byte was acknowledged waits for
/// the DONE-ACK (two smoothed RTTs, at most this).
pub(crate) const CLOSING_GRACE: Duration = Duration::from_millis(250);

/// Receive buffers of the receiving driver (64 KiB each, one GRO buffer of
/// up to 45 datagrams of 1452 bytes): 8 read about 360 datagrams per
/// `recvmmsg` and stay in the CPU's L2 cache (512 KiB), where the check,
/// the copy into the file and the hash find them; 32 (2 MiB) did not.
const RECV_SLOTS: usize = 8;

/// Why a fast transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RdtError {
    /// The UDP socket failed.
    #[error("UDP socket: {what}")]
    Socket {
        /// The operation that failed.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The sending machine failed (file read, silent receiver, hash mismatch).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The receiving machine failed (file write, silent sender, hash mismatch).
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// The hello came from an address other than the one allowed.
    #[error("hello from {from}, expected {allowed}")]
    Address {
        /// Where the hello came from.
        from: SocketAddr,
        /// The address that asked for the file.
        allowed: IpAddr,
    },
    /// Stopped from outside ([`Cancel`], or the future dropped), the
    /// peer told so by an ABORT with this reason.
    #[error("transfer cancelled: {0}")]
    Cancelled(AbortReason),
    /// The transfer thread died.
    #[error("transfer thread failed: {0}")]
    Thread(String),
}

impl Config {
    /// This config with its datagram size chosen for a path to `peer`: large
    /// datagrams on loopback, the configured (path-safe) size elsewhere.
    /// With `probe` off, `max_datagram` is kept as is and nothing is probed.
    pub fn for_path(&self, peer: SocketAddr) -> Config {
        let mut c = self.clone();
        if !c.probe {
            c.probe_datagrams.clear();
        } else if peer.ip().is_loopback() {
            c.max_datagram = c.max_datagram.max(LOOPBACK_DATAGRAM);
        }
        c
    }
}

/// Stops a running transfer from another thread or task, with the reason
/// its ABORT carries (see the module docs). The first reason given wins.
#[derive(Debug)]
pub struct Cancel {
    /// 0: running; else the reason's code plus one.
    reason: AtomicU16,
    /// Rung on cancel; the driver waits on it beside its socket.
    bell: Option<UdpSocket>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// Not cancelled. (Without a loopback socket for the bell, the driver
    /// still notices within `WAKE`.)
    pub fn new() -> Self {
        // Connected to itself, so the kernel drops what anyone else sends it:
        // only `cancel` can ring it, and once rung it stays readable.
        let bell = UdpSocket::bind(("127.0.0.1", 0))
            .ok()
            .filter(|b| b.set_nonblocking(true).is_ok() && b.local_addr().is_ok_and(|me| b.connect(me).is_ok()));
        Self { reason: AtomicU16::new(0), bell }
    }

    /// Cancels the transfer for `reason` (a second call changes nothing).
    pub fn cancel(&self, reason: AbortReason) {
        let code = u16::from(reason.code()) + 1;
        if self.reason.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok()
            && let Some(b) = &self.bell
        {
            let _ = b.send(&[0]);
        }
    }

    /// Why the transfer was cancelled; `None` while it is not.
    pub fn reason(&self) -> Option<AbortReason> {
        match self.reason.load(Ordering::Acquire) {
            0 => None,
            c => Some(AbortReason::from_code((c - 1) as u8)),
        }
    }

    /// Waits until `sock` is readable, the bell rings, or `until` (capped at `cap`).
    fn wait(&self, sock: &UdpSocket, until: Option<Instant>, cap: Duration) {
        match &self.bell {
            None => udp::wait_readable_until(sock, until, cap),
            Some(bell) => {
                let d = until.map_or(cap, |t| t.saturating_duration_since(Instant::now())).min(cap);
                if d < Duration::from_micros(10) {
                    std::thread::yield_now();
                } else {
                    udp::wait_readable([sock, bell], d);
                }
            }
        }
    }
}

/// Writes one JSON line per sender event (`--trace FILE`): `t_us` (µs since
/// the transfer began) plus the fields of [`super::sender::Event`].
#[derive(Debug, Clone)]
pub struct Tracer {
    out: Arc<Mutex<io::BufWriter<File>>>,
    port: Option<u16>,
}

impl Tracer {
    /// Creates (truncates) the trace file.
    pub fn create(path: &std::path::Path) -> io::Result<Self> {
        Ok(Self { out: Arc::new(Mutex::new(io::BufWriter::new(File::create(path)?))), port: None })
    }

    /// The same file, each line also carrying `port` (the server's transfer
    /// port), so the lines of simultaneous transfers can be told apart.
    pub(crate) fn labelled(&self, port: u16) -> Self {
        Self { out: self.out.clone(), port: Some(port) }
    }

    /// Writes one record; `what` must serialize to a JSON object.
    pub fn record(&self, t: Duration, what: &impl serde::Serialize) {
        let Ok(serde_json::Value::Object(mut m)) = serde_json::to_value(what) else { return };
        m.insert("t_us".into(), (t.as_micros() as u64).into());
        if let Some(p) = self.port {
            m.insert("port".into(), p.into());
        }
        if let Ok(mut w) = self.out.lock() {
            let _ = serde_json::to_writer(&mut *w, &m);
            let _ = w.write_all(b"\n");
        }
    }

    /// Flushes buffered lines.
    pub fn flush(&self) {
        if let Ok(mut w) = self.out.lock() {
            let _ = w.flush();
        }
    }
}

/// What a finished send did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SendReport {
    /// File size.
    pub size: u64,
    /// Bytes the receiver already had (resume).
    pub resumed_from: u64,
    /// From the hello to the end.
    pub elapsed: Duration,
    /// Whether the receiver confirmed the hash (DONE-ACK); false when every
    /// byte was acknowledged but the DONE-ACK never came.
    pub confirmed: bool,
    /// Largest DATA datagram size in use at the end: the configured size, or
    /// the larger one path-MTU probing found (e.g. 8,972 on a 9000-byte-MTU path).
    pub max_datagram: usize,
    /// Congestion controller used.
    pub cc: String,
    /// `sendmsg` calls: fewer than `stats.datagrams_sent` when GSO batched datagrams.
    pub send_calls: u64,
    /// Final figures.
    #[serde(skip)]
    pub stats: Stats,
}

/// What a receive did.
#[derive(Debug)]
pub enum ReceiveReport {
    /// The fast transfer completed and the whole-file hash was verified.
    Fast {
        /// File size.
        size: u64,
        /// From the hello to the verified hash.
        elapsed: Duration,
        /// Final figures.
        stats: Stats,
        /// Datagrams the kernel dropped because the socket's receive buffer
        /// was full (`None` where the OS does not count them): a receiver
        /// that does not keep up shows here, not as loss on the path.
        socket_drops: Option<u64>,
    },
    /// The sender answered with classic go-back-N data: it read the hello as
    /// window 98. The caller runs the classic receiver (window
    /// [`crate::rdt::classic::MAX_WINDOW`]), feeding it `first` first; the
    /// socket is handed back for that.
    Classic {
        /// The first classic datagram.
        first: Vec<u8>,
        /// Datagrams from the sender read in the same batch after `first`, in order.
        rest: Vec<Vec<u8>>,
        /// The socket, still bound to the same port.
        sock: UdpSocket,
    },
}

fn sock_err(what: &'static str) -> impl FnOnce(io::Error) -> RdtError {
    move |source| RdtError::Socket { what, source }
}

/// Serves one file with the fast sender on `sock`, on this thread.
///
/// `first` is the fast hello already read and where it came from; only that
/// address is answered, and it must be on `allowed_ip` (the requester).
/// Until the receiver echoes the cookie the sender stays within the
/// anti-amplification limit. `watch`, if any, checks every read of the
/// file (a failed check fails the transfer). Returns when the transfer
/// ends, fails, or is cancelled: then the receiver is sent an ABORT with the
/// reason, unless every byte was already acknowledged (the transfer then
/// ends as soon as the DONE-ACK comes, or after two RTTs at most
/// `CLOSING_GRACE` as sent, unconfirmed, instead of repeating DONE up to
/// the idle timeout).
#[allow(clippy::too_many_arguments)]
pub fn send_file_blocking(
    sock: UdpSocket,
    allowed_ip: IpAddr,
    first: (SocketAddr, Vec<u8>),
    file: &File,
    watch: Option<Box<dyn ReadWatch>>,
    cfg: &Config,
    trace: Option<&Tracer>,
    cancel: &Cancel,
) -> Result<SendReport, RdtError> {
    let (peer, hello) = first;
    if peer.ip() != allowed_ip {
        return Err(RdtError::Address { from: peer, allowed: allowed_ip });
    }
    udp::prepare(&sock).map_err(sock_err("set up the socket"))?;
    let mut io = Io::new(sock, 8).map_err(sock_err("set up batched I/O"))?;
    let size = file.metadata().map_err(|source| SendError::Read { offset: 0, source })?.len();
    let cfg = cfg.for_path(peer);
    let t0 = Instant::now();
    let mut s = Sender::new(cfg.clone(), size, &hello, t0);
    if trace.is_some() {
        s.record_events();
    }
    let mut src = Watched { inner: ReadAhead::new(file, size), watch };
    let mut out = Vec::with_capacity(GSO_MAX_BYTES);
    let max_segments = io.max_segments();
    let mut cancelled = None;
    // Cancelled once every byte was acknowledged: the DONE-ACK is likely on
    // its way (the receiver sent it before it left), so it gets a short
    // grace to arrive.
    let mut grace: Option<Instant> = None;
    loop {
        if let Some(reason) = cancel.reason() {
            if s.state() == SendState::Closing {
                let until = *grace.get_or_insert_with(|| Instant::now() + CLOSING_GRACE.min(s.stats().srtt * 2));
                if Instant::now() >= until {
                    cancelled = Some(reason);
                    break; // every byte acknowledged: sent
                }
            } else {
                s.abort(reason, "");
                let _ = endpoint::transmit(&mut s, Instant::now(), &mut src, &mut out, 1, |b, segment| {
                    io.send(b, segment, peer).map_err(sock_err("send"))
                });
                return Err(RdtError::Cancelled(reason));
            }
        }
        // Everything that arrived, then the timer if due, then one pacing
        // burst: the sender builds GSO batches of equal-size DATA datagrams
        // itself; anything else (probes, DONE, CHALLENGE) alone.
        endpoint::receive(&mut s, Instant::now(), &mut src, |handle| {
            match io.recv_buffers(peer, |buf, stride| {
                handle(buf, stride);
            }) {
                Ok(got) => Ok(got),
                Err(e) if e.kind() == io::ErrorKind::Interrupted || e.raw_os_error().is_some() => Ok(false),
                Err(e) => Err(sock_err("receive")(e)),
            }
        })?;
        let now = Instant::now();
        let step = endpoint::transmit(&mut s, now, &mut src, &mut out, max_segments, |b, segment| {
            io.send(b, segment, peer).map_err(sock_err("send"))
        })?;
        if let Some(t) = trace {
            while let Some(e) = s.poll_event() {
                t.record(now - t0, &e);
            }
        }
        match (step, grace) {
            // The bell has rung already: wait on the socket alone.
            (Step::Wait(wake), Some(until)) => {
                udp::wait_readable_until(&io.sock, Some(wake.map_or(until, |w| w.min(until))), WAKE)
            }
            (Step::Wait(wake), None) => cancel.wait(&io.sock, wake, WAKE),
            (Step::Finished | Step::Foreign, _) => break,
        }
    }
    if let Some(t) = trace {
        t.flush();
    }
    let stats = s.stats();
    let state = match s.state() {
        SendState::Closing if cancelled.is_some() => SendState::Done { confirmed: false },
        state => state,
    };
    match state {
        SendState::Done { confirmed } => Ok(SendReport {
            size,
            resumed_from: s.resumed_from(),
            elapsed: t0.elapsed(),
            confirmed,
            max_datagram: s.max_datagram(),
            cc: cfg.cc.to_string(),
            send_calls: io.sends,
            stats,
        }),
        _ => Err(s.take_error().map_or(RdtError::Thread("sender ended without a result".into()), RdtError::Send)),
    }
}

/// Receives one file with the fast receiver from `server` into `out` (positioned writes), on this thread.
///
/// `out` already holds `expect.resume_from` valid bytes (0 for a fresh
/// download); `expect.size` (from `206`) is checked against the sender's. The hello
/// is repeated until the server answers (the reference announces its port
/// before it binds). `progress` gets live figures about every 100 ms.
/// Cancelled, it sends the server an ABORT with the reason (once the
/// server's CHALLENGE came) and returns [`RdtError::Cancelled`].
pub fn receive_file_blocking(
    sock: UdpSocket,
    server: SocketAddr,
    out: &File,
    expect: Expect,
    cfg: &Config,
    cancel: &Cancel,
    mut progress: impl FnMut(&Stats),
) -> Result<ReceiveReport, RdtError> {
    udp::prepare(&sock).map_err(sock_err("set up the socket"))?;
    let drops0 = udp::receive_drops(&sock);
    let mut io = Io::new(sock, RECV_SLOTS).map_err(sock_err("set up batched I/O"))?;
    let cfg = cfg.for_path(server);
    let t0 = Instant::now();
    let mut r = Receiver::new(cfg, expect.resume_from, expect.size, t0);
    let mut sink = Coalesce::new(out);
    let mut dgram = Vec::with_capacity(2048);
    let mut last_progress = t0;
    loop {
        if let Some(reason) = cancel.reason() {
            // What arrived is in the file (a resume relies on it), then the ABORT.
            let _ = sink.flush();
            progress(&r.stats());
            r.abort(reason, "");
            let _ = endpoint::transmit(&mut r, Instant::now(), &mut sink, &mut dgram, 1, |b, _| {
                io.send(b, None, server).map_err(sock_err("send"))
            });
            return Err(RdtError::Cancelled(reason));
        }
        // What one `recvmmsg` read: each receive buffer (a GRO buffer of
        // many datagrams) is one unit for the machine. A classic answer
        // (only ever first) takes the rest of what was read along to the
        // classic receiver.
        let (mut classic, mut read) = (None::<Vec<Vec<u8>>>, false);
        // `Ok(false)`: one `recvmmsg` per call of `receive`.
        endpoint::receive(&mut r, Instant::now(), &mut sink, |handle| {
            let got = io.recv_buffers(server, |buf, stride| {
                if let Some(c) = classic.as_mut() {
                    c.extend(udp::segments(buf, stride).map(<[u8]>::to_vec));
                } else if let Some(at) = handle(buf, stride) {
                    classic = Some(udp::segments(&buf[at..], stride).map(<[u8]>::to_vec).collect());
                }
            });
            match got {
                Ok(got) => {
                    read = got;
                    Ok(false)
                }
                // ICMP port unreachable before the server binds: keep trying.
                Err(e) if e.raw_os_error().is_some() => Ok(false),
                Err(e) => Err(sock_err("receive")(e)),
            }
        })?;
        if let Some(mut datagrams) = classic {
            let first = datagrams.remove(0);
            let sock = io.sock;
            udp::gro_off(&sock);
            return Ok(ReceiveReport::Classic { first, rest: datagrams, sock });
        }
        // What arrived is in the file before it is acknowledged; the
        // acknowledgements due go out after every `recvmmsg` rather than
        // only once the socket is drained.
        sink.flush().map_err(|(offset, source)| RdtError::Recv(RecvError::Io { offset, source }))?;
        let now = Instant::now();
        let step = endpoint::transmit(&mut r, now, &mut sink, &mut dgram, 1, |b, _| {
            io.send(b, None, server).map_err(sock_err("send"))
        })?;
        if now >= last_progress + WAKE {
            last_progress = now;
            progress(&r.stats());
        }
        let Step::Wait(wake) = step else { break };
        if r.is_verified() {
            // The file is complete and verified: the caller may go on. A
            // detached thread lingers to answer a repeated DONE (our DONE-ACK
            // may be lost), then ends when the machine says so.
            progress(&r.stats());
            let socket_drops = udp::receive_drops(&io.sock).map(|d| d - drops0.unwrap_or(0));
            let report = ReceiveReport::Fast { size: r.size(), elapsed: t0.elapsed(), stats: r.stats(), socket_drops };
            let _ = std::thread::Builder::new().name("rdt-linger".into()).spawn(move || linger(io, server, r));
            return Ok(report);
        }
        if !read {
            cancel.wait(&io.sock, wake, WAKE);
        }
    }
    progress(&r.stats());
    if r.is_verified() {
        let socket_drops = udp::receive_drops(&io.sock).map(|d| d - drops0.unwrap_or(0));
        Ok(ReceiveReport::Fast { size: r.size(), elapsed: t0.elapsed(), stats: r.stats(), socket_drops })
    } else {
        Err(r.take_error().map_or(RdtError::Thread("receiver ended without a result".into()), RdtError::Recv))
    }
}

/// Tells the sender at `server` that its file is not wanted after all (a
/// `--continue` that found the file complete): the fast hello, then an
/// ABORT ([`AbortReason::Cancelled`]) in answer to its CHALLENGE, so that it
/// frees its port at once instead of waiting for a hello that never comes.
/// Returns once the ABORT is out, when a classic sender answers (nothing to
/// tell it), or after `wait`.
pub fn decline_blocking(sock: UdpSocket, server: SocketAddr, wait: Duration) -> Result<(), RdtError> {
    use super::receiver::{Received, State};
    sock.set_read_timeout(Some(Duration::from_millis(20))).map_err(sock_err("set a read timeout"))?;
    let t0 = Instant::now();
    let mut r = Receiver::new(Config::default(), 0, None, t0);
    let (mut out, mut buf, mut nothing) = (Vec::new(), vec![0u8; 70_000], Vec::<u8>::new());
    while t0.elapsed() < wait {
        let now = Instant::now();
        r.handle_timeout(now);
        while r.poll_transmit(now, &mut out) {
            let _ = sock.send_to(&out, server);
        }
        if r.is_finished() {
            break;
        }
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && from == server
        {
            if r.handle_datagram(Instant::now(), &buf[..n], &mut nothing) == Received::Classic {
                break;
            }
            if r.state() == State::Receiving {
                r.abort(AbortReason::Cancelled, "already complete");
            }
        }
    }
    Ok(())
}

/// Runs a verified receiver until its linger time ends: it only answers DONE.
fn linger(mut io: Io, server: SocketAddr, mut r: Receiver) {
    let mut out = Vec::new();
    let mut nothing: Vec<u8> = Vec::new(); // a lingering receiver writes nothing
    loop {
        let _ = endpoint::receive(&mut r, Instant::now(), &mut nothing, |handle| {
            Ok::<_, ()>(matches!(
                io.recv_buffers(server, |buf, stride| {
                    handle(buf, stride);
                }),
                Ok(true)
            ))
        });
        let step = endpoint::transmit(&mut r, Instant::now(), &mut nothing, &mut out, 1, |b, _| {
            let _ = io.send(b, None, server);
            Ok::<_, ()>(())
        });
        match step {
            Ok(Step::Wait(wake)) => udp::wait_readable_until(&io.sock, wake, WAKE),
            _ => break,
        }
    }
}

/// What the receiver already knows about the file it fetches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    /// The output already holds this many valid bytes (0 for a fresh download).
    pub resume_from: u64,
    /// The size announced in `206`, checked against the sender's.
    pub size: Option<u64>,
}

/// Cancels the transfer thread for `reason` when its future is dropped;
/// with `wait`, then waits (up to [`DROP_WAIT`]) until the thread has ended.
struct CancelOnDrop {
    cancel: Arc<Cancel>,
    reason: AbortReason,
    ended: Option<Arc<Ended>>,
}

/// Longest a dropped [`receive_file`] waits for its thread to send the ABORT.
const DROP_WAIT: Duration = Duration::from_millis(500);

/// Set by a transfer thread when it ends.
#[derive(Default)]
struct Ended(Mutex<bool>, Condvar);

impl Ended {
    fn set(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.1.notify_all();
    }
}

/// Sets [`Ended`] when dropped: however the thread ends.
struct SetOnDrop(Arc<Ended>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.cancel.cancel(self.reason);
        if let Some(e) = &self.ended {
            let g = e.0.lock().unwrap_or_else(|e| e.into_inner());
            let _ = e.1.wait_timeout_while(g, DROP_WAIT, |ended| !*ended);
        }
    }
}

fn joined<T>(r: Result<Result<T, RdtError>, tokio::task::JoinError>) -> Result<T, RdtError> {
    r.map_err(|e| RdtError::Thread(e.to_string()))?
}

/// [`send_file_blocking`] on a blocking thread. `cancel` ends it with an
/// ABORT of its reason (await the future to see it end); dropping the future
/// cancels it as [`AbortReason::ServerShutdown`] without waiting.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_file(
    sock: tokio::net::UdpSocket,
    allowed_ip: IpAddr,
    first: (SocketAddr, Vec<u8>),
    file: File,
    watch: Option<Box<dyn ReadWatch>>,
    cfg: &Config,
    trace: Option<Tracer>,
    cancel: Arc<Cancel>,
) -> Result<SendReport, RdtError> {
    let sock = sock.into_std().map_err(sock_err("detach from tokio"))?;
    let _on_drop = CancelOnDrop { cancel: cancel.clone(), reason: AbortReason::ServerShutdown, ended: None };
    let flag = cancel;
    let cfg = cfg.clone();
    joined(
        tokio::task::spawn_blocking(move || {
            send_file_blocking(sock, allowed_ip, first, &file, watch, &cfg, trace.as_ref(), &flag)
        })
        .await,
    )
}

/// [`receive_file_blocking`] on a blocking thread. Dropping the future
/// (Ctrl-C) cancels it as [`AbortReason::Cancelled`] and waits briefly
/// (at most half a second) until the thread has sent its ABORT and ended.
pub async fn receive_file(
    sock: tokio::net::UdpSocket,
    server: SocketAddr,
    out: File,
    expect: Expect,
    cfg: &Config,
    progress: impl FnMut(&Stats) + Send + 'static,
) -> Result<ReceiveReport, RdtError> {
    let sock = sock.into_std().map_err(sock_err("detach from tokio"))?;
    let ended = Arc::new(Ended::default());
    let cancel = Arc::new(Cancel::new());
    let _on_drop = CancelOnDrop { cancel: cancel.clone(), reason: AbortReason::Cancelled, ended: Some(ended.clone()) };
    let cfg = cfg.clone();
    joined(
        tokio::task::spawn_blocking(move || {
            let _ended = SetOnDrop(ended);
            receive_file_blocking(sock, server, &out, expect, &cfg, &cancel, progress)
        })
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_off_keeps_the_configured_datagram_on_loopback() {
        let lo: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let on = Config::default().for_path(lo);
        assert_eq!(on.max_datagram, LOOPBACK_DATAGRAM);
        let off = Config { probe: false, max_datagram: 1452, ..Config::default() }.for_path(lo);
        assert_eq!(off.max_datagram, 1452);
        assert!(off.probe_datagrams.is_empty());
    }
}
