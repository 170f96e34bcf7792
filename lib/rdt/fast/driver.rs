//! Socket drivers for the fast-mode machines: the only place where the fast
//! mode touches a socket, a file or the clock.
//!
//! # Why a dedicated thread
//! Each transfer runs on its own OS thread with a non-blocking UDP socket
//! and `poll(2)` for waiting. A transfer is one tight loop (drain every
//! datagram that arrived, feed the machine, send what it allows, sleep until
//! its next timer) and a thread keeps that loop off tokio's worker threads,
//! so a multi-gigabyte transfer never delays the chat, and the loop pays no
//! task wake-up per datagram. The `async` entry points ([`send_file`],
//! [`receive_file`]) run the blocking ones ([`send_file_blocking`],
//! [`receive_file_blocking`]) on `spawn_blocking` and stop them (within
//! [`WAKE`]) when their future is dropped, e.g. on server shutdown.
//!
//! # Datagram size
//! The sender starts at `cfg.max_datagram` bytes per datagram and probes
//! larger sizes (`cfg.probe_datagrams`) with the don't-fragment bit set, so
//! a probe too big for the path is lost rather than fragmented. On a
//! loopback path [`Config::for_path`] starts at [`LOOPBACK_DATAGRAM`] at
//! once (the loopback MTU is 65536).
//! Socket buffers are raised to [`SOCKET_BUFFER`] so a window of large
//! datagrams is not dropped by the kernel.

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::receiver::{Handled, Receiver, RecvError};
use super::sender::{SendError, Sender, State as SendState};
use super::{Config, Stats};

/// Largest datagram used on a loopback path (below the 65,507-byte UDP limit over IPv4).
pub const LOOPBACK_DATAGRAM: usize = 65_000;
/// Send and receive buffer asked of the kernel (it may grant less).
pub const SOCKET_BUFFER: usize = 8 << 20;
/// Longest a driver sleeps before it checks for cancellation.
pub const WAKE: Duration = Duration::from_millis(100);

/// Why a fast transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RdtError {
    /// The UDP socket failed.
    #[error("UDP socket: {what}")]
    Socket {
        what: &'static str,
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
    Address { from: SocketAddr, allowed: IpAddr },
    /// Stopped from outside (future dropped, server shutdown).
    #[error("transfer cancelled")]
    Cancelled,
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
    pub fn labelled(&self, port: u16) -> Self {
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
    /// Datagram size used.
    pub max_datagram: usize,
    /// Congestion controller used.
    pub cc: String,
    /// Final figures.
    #[serde(skip)]
    pub stats: Stats,
}

/// What a receive did.
#[derive(Debug)]
pub enum ReceiveReport {
    /// The fast transfer completed and the BLAKE3 hash was verified.
    Fast {
        /// File size.
        size: u64,
        /// From the hello to the verified hash.
        elapsed: Duration,
        /// Final figures.
        stats: Stats,
    },
    /// The sender answered with classic go-back-N data: it read the hello as
    /// window 98. The caller runs the classic receiver (window
    /// [`crate::rdt::classic::MAX_WINDOW`]), feeding it `first` first; the
    /// socket is handed back for that.
    Classic {
        /// The first classic datagram.
        first: Vec<u8>,
        /// The socket, still bound to the same port.
        sock: UdpSocket,
    },
}

fn sock_err(what: &'static str) -> impl FnOnce(io::Error) -> RdtError {
    move |source| RdtError::Socket { what, source }
}

fn prepare(sock: &UdpSocket) -> Result<(), RdtError> {
    sock.set_nonblocking(true).map_err(sock_err("set non-blocking"))?;
    let s = socket2::SockRef::from(sock);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    #[cfg(target_os = "linux")]
    {
        // With CAP_NET_ADMIN, beyond net.core.rmem_max/wmem_max; harmless without.
        let set = |level: libc::c_int, opt: libc::c_int, v: libc::c_int| {
            // SAFETY: a valid socket and a c_int option value of the right size.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    level,
                    opt,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        };
        set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_BUFFER as libc::c_int);
        set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SOCKET_BUFFER as libc::c_int);
        // Don't fragment, ignore cached path MTU: a path-MTU probe too big
        // for the path must be lost (or refused with EMSGSIZE), not fragmented.
        set(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE);
        set(libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE);
    }
    Ok(())
}

/// Waits until `sock` is readable or `until` (capped at [`WAKE`]), to the
/// microsecond (`ppoll(2)`): pacing waits are often well under a millisecond.
fn wait_readable(sock: &UdpSocket, until: Option<Instant>) {
    let now = Instant::now();
    let d = until.map_or(WAKE, |t| t.saturating_duration_since(now)).min(WAKE);
    if d < Duration::from_micros(10) {
        std::thread::yield_now();
        return;
    }
    let mut fds = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ts = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    // SAFETY: one valid pollfd and a valid timespec for the duration of the call; no signal mask.
    unsafe {
        libc::ppoll(&mut fds, 1, &ts, std::ptr::null());
    }
}

/// Whether a `sendto` error means only "this datagram was lost" (the
/// transfer goes on) rather than a broken socket.
fn send_loss(e: &io::Error) -> bool {
    match e.raw_os_error() {
        // A bad descriptor or address is a bug or a dead socket, not loss.
        Some(libc::EBADF | libc::ENOTSOCK | libc::EINVAL | libc::EFAULT | libc::EAFNOSUPPORT) => false,
        // EPERM (firewall drop), ENOBUFS, ECONNREFUSED, EMSGSIZE, EHOSTUNREACH...
        Some(_) => true,
        None => false,
    }
}

/// Sends `d` to `peer`, waiting briefly when the socket buffer is full.
fn send_one(sock: &UdpSocket, d: &[u8], peer: SocketAddr) -> Result<(), RdtError> {
    loop {
        match sock.send_to(d, peer) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fds = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe {
                    libc::poll(&mut fds, 1, 10);
                }
            }
            // Any other OS error is a lost datagram, not a failed transfer:
            // ICMP feedback (port unreachable, message too long), EPERM from
            // a firewall drop on the OUTPUT hook, ENOBUFS under load. The
            // machine's loss detection and timers deal with it; if the path
            // stays dead the idle timeout ends the transfer.
            Err(e) if send_loss(&e) => return Ok(()),
            Err(e) => return Err(sock_err("send")(e)),
        }
    }
}

/// Serves one file with the fast sender on `sock`, on this thread.
///
/// `first` is the fast hello already read and where it came from; only that
/// address is answered, and it must be on `allowed_ip` (the requester).
/// Until the receiver echoes the cookie the sender stays within the
/// anti-amplification limit. Returns when the transfer ends, fails, or
/// `cancel` is set.
pub fn send_file_blocking(
    sock: UdpSocket,
    allowed_ip: IpAddr,
    first: (SocketAddr, Vec<u8>),
    file: &File,
    cfg: &Config,
    trace: Option<&Tracer>,
    cancel: &AtomicBool,
) -> Result<SendReport, RdtError> {
    let (peer, hello) = first;
    if peer.ip() != allowed_ip {
        return Err(RdtError::Address { from: peer, allowed: allowed_ip });
    }
    prepare(&sock)?;
    let size = file.metadata().map_err(|source| SendError::Read { offset: 0, source })?.len();
    let cfg = cfg.for_path(peer);
    let t0 = Instant::now();
    let mut s = Sender::new(cfg.clone(), size, &hello, t0);
    if trace.is_some() {
        s.record_events();
    }
    let mut src = file;
    let mut out = Vec::with_capacity(cfg.max_datagram + 64);
    let mut buf = vec![0u8; 65_536];
    while !s.is_finished() {
        if cancel.load(Ordering::Relaxed) {
            return Err(RdtError::Cancelled);
        }
        // Everything that arrived.
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == peer => s.handle(Instant::now(), &buf[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted || e.raw_os_error().is_some() => break,
                Err(e) => return Err(sock_err("receive")(e)),
            }
        }
        let now = Instant::now();
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        while s.poll_transmit(now, &mut src, &mut out) {
            send_one(&sock, &out, peer)?;
        }
        if let Some(t) = trace {
            while let Some(e) = s.poll_event() {
                t.record(now - t0, &e);
            }
        }
        if s.is_finished() {
            break;
        }
        wait_readable(&sock, s.poll_timeout());
    }
    if let Some(t) = trace {
        t.flush();
    }
    let stats = s.stats();
    match s.state() {
        SendState::Done { confirmed } => Ok(SendReport {
            size,
            resumed_from: s.resumed_from(),
            elapsed: t0.elapsed(),
            confirmed,
            max_datagram: cfg.max_datagram,
            cc: cfg.cc.to_string(),
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
pub fn receive_file_blocking(
    sock: UdpSocket,
    server: SocketAddr,
    out: &File,
    expect: Expect,
    cfg: &Config,
    cancel: &AtomicBool,
    mut progress: impl FnMut(&Stats),
) -> Result<ReceiveReport, RdtError> {
    prepare(&sock)?;
    let cfg = cfg.for_path(server);
    let t0 = Instant::now();
    let mut r = Receiver::new(cfg, expect.resume_from, expect.size, t0);
    let mut sink = out;
    let mut buf = vec![0u8; 65_536];
    let mut dgram = Vec::with_capacity(2048);
    let mut last_progress = t0;
    while !r.is_finished() {
        if cancel.load(Ordering::Relaxed) {
            return Err(RdtError::Cancelled);
        }
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == server => {
                    if r.handle(Instant::now(), &buf[..n], &mut sink) == Handled::Classic {
                        return Ok(ReceiveReport::Classic { first: buf[..n].to_vec(), sock });
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP port unreachable before the server binds: keep trying.
                Err(e) if e.raw_os_error().is_some() => break,
                Err(e) => return Err(sock_err("receive")(e)),
            }
        }
        let now = Instant::now();
        if r.poll_timeout().is_some_and(|t| t <= now) {
            r.handle_timeout(now);
        }
        while r.poll_transmit(now, &mut dgram) {
            send_one(&sock, &dgram, server)?;
        }
        if now >= last_progress + WAKE {
            last_progress = now;
            progress(&r.stats());
        }
        if r.is_finished() {
            break;
        }
        if r.is_verified() {
            // The file is complete and verified: the caller may go on. A
            // detached thread lingers to answer a repeated DONE (our DONE-ACK
            // may be lost), then ends when the machine says so.
            progress(&r.stats());
            let report = ReceiveReport::Fast { size: r.size(), elapsed: t0.elapsed(), stats: r.stats() };
            let _ = std::thread::Builder::new().name("rdt-linger".into()).spawn(move || linger(sock, server, r));
            return Ok(report);
        }
        wait_readable(&sock, r.poll_timeout());
    }
    progress(&r.stats());
    if r.is_verified() {
        Ok(ReceiveReport::Fast { size: r.size(), elapsed: t0.elapsed(), stats: r.stats() })
    } else {
        Err(r.take_error().map_or(RdtError::Thread("receiver ended without a result".into()), RdtError::Recv))
    }
}

/// Runs a verified receiver until its linger time ends: it only answers DONE.
fn linger(sock: UdpSocket, server: SocketAddr, mut r: Receiver) {
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    let mut nothing: Vec<u8> = Vec::new(); // a lingering receiver writes nothing
    while !r.is_finished() {
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == server {
                r.handle(Instant::now(), &buf[..n], &mut nothing);
            }
        }
        let now = Instant::now();
        if r.poll_timeout().is_some_and(|t| t <= now) {
            r.handle_timeout(now);
        }
        while r.poll_transmit(now, &mut out) {
            let _ = sock.send_to(&out, server);
        }
        wait_readable(&sock, r.poll_timeout());
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

/// Sets the flag when dropped: stops the transfer thread when its future is dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn joined<T>(r: Result<Result<T, RdtError>, tokio::task::JoinError>) -> Result<T, RdtError> {
    r.map_err(|e| RdtError::Thread(e.to_string()))?
}

/// [`send_file_blocking`] on a blocking thread; dropping the future stops the transfer.
pub async fn send_file(
    sock: tokio::net::UdpSocket,
    allowed_ip: IpAddr,
    first: (SocketAddr, Vec<u8>),
    file: File,
    cfg: &Config,
    trace: Option<Tracer>,
) -> Result<SendReport, RdtError> {
    let sock = sock.into_std().map_err(sock_err("detach from tokio"))?;
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = cancel.0.clone();
    let cfg = cfg.clone();
    joined(
        tokio::task::spawn_blocking(move || {
            send_file_blocking(sock, allowed_ip, first, &file, &cfg, trace.as_ref(), &flag)
        })
        .await,
    )
}

/// [`receive_file_blocking`] on a blocking thread; dropping the future stops the transfer.
pub async fn receive_file(
    sock: tokio::net::UdpSocket,
    server: SocketAddr,
    out: File,
    expect: Expect,
    cfg: &Config,
    progress: impl FnMut(&Stats) + Send + 'static,
) -> Result<ReceiveReport, RdtError> {
    let sock = sock.into_std().map_err(sock_err("detach from tokio"))?;
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = cancel.0.clone();
    let cfg = cfg.clone();
    joined(
        tokio::task::spawn_blocking(move || receive_file_blocking(sock, server, &out, expect, &cfg, &flag, progress))
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_and_buffer_errors_are_loss_not_failure() {
        for errno in [libc::EPERM, libc::ENOBUFS, libc::ECONNREFUSED, libc::EMSGSIZE, libc::EHOSTUNREACH] {
            assert!(send_loss(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        for errno in [libc::EBADF, libc::ENOTSOCK, libc::EINVAL] {
            assert!(!send_loss(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        assert!(!send_loss(&io::Error::other("not an OS error")));
    }

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
