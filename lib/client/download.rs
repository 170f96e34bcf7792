//! Downloads: TCP, and UDP: chatctl's fast mode, falling back to classic
//! go-back-N when the server answers the hello with classic data ([protocol](crate::protocol) §5).
//!
//! Data goes to a temporary file beside the target, renamed into place only
//! when complete and exactly the announced size (and, in fast mode, once its
//! whole-file hash, XXH3-128, matches the sender's). A fast download that fails after data
//! arrived, or is interrupted, keeps its temporary file and a mark beside it
//! ([`resume_mark_path`]: how far the file is good), so `fetch --continue`
//! resumes exactly there. Every output is checked ([`prepare_targets`]) before
//! the server is asked for anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::{ClientError, Session, connect_retry, space};
use crate::rdt::fast::driver::{self, Expect, Tracer};
use crate::rdt::fast::{self, Stats};
use crate::rdt::udp::unspecified_for;

mod target;
mod udp;

use target::{MarkWriter, TempGuard, check_target};
pub use target::{PrepareError, prepare_targets, resume_mark_path, temp_path_for};

/// The transport a download uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP: read until the server closes.
    Tcp,
    /// Reliable UDP (the default, as the original client): the fast mode,
    /// or classic go-back-N with a classic server.
    Udp,
}

impl std::fmt::Display for Transport {
    /// `TCP` or `UDP`, as a user writes them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        })
    }
}

impl Transport {
    pub(super) fn wire(self) -> crate::wire::Transport {
        match self {
            Transport::Tcp => crate::wire::Transport::Tcp,
            Transport::Udp => crate::wire::Transport::Udp,
        }
    }
}

/// What a finished download did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DownloadReport {
    /// The file's name on the server.
    pub file: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Its size in bytes (as announced and as received).
    pub size: u64,
    /// The value of the last byte (the course's check), `None` for an empty file.
    pub last_byte: Option<u8>,
    /// How long the transfer took, from the request.
    pub seconds: f64,
    /// TCP or UDP.
    pub transport: Transport,
    /// For UDP: the mode the server answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_mode: Option<UdpMode>,
    /// Where the download resumed (`--continue`): bytes `0..resumed_from`
    /// were kept from an interrupted one (0: from the start).
    pub resumed_from: u64,
    /// Bytes the interrupted download had received beyond `resumed_from`,
    /// fetched again (at most what was in flight when it stopped).
    pub refetched_bytes: u64,
    /// `--continue` found the file already complete: nothing was fetched.
    pub already_complete: bool,
    /// Fast mode: the sender's last figures (its STATS), when it sent any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<fast::SenderStats>,
}

/// How a UDP download went: the mode the server answered with. Written
/// `fast` or `classic` (in JSON too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UdpMode {
    /// chatctl's fast reliable UDP (selective acknowledgements, congestion control).
    Fast,
    /// The original's go-back-N, which cannot resume.
    Classic,
}

impl std::fmt::Display for UdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UdpMode::Fast => "fast",
            UdpMode::Classic => "classic",
        })
    }
}

/// How [`Session::download_with`] downloads.
#[derive(Debug, Clone, Default)]
pub struct DownloadOptions {
    /// Overwrite an existing target.
    pub force: bool,
    /// Resume from the temporary file an interrupted fast download left.
    pub resume: bool,
    /// Fast-mode settings for UDP; `None` sends the classic hello only.
    pub fast: Option<fast::Config>,
    /// Where to write one JSON line per progress tick of a fast download.
    pub trace: Option<Tracer>,
    /// Send a UDP download's datagrams to this address instead of the port
    /// the server announced, and take its answers from there: a relay such
    /// as `chatctl impair` in front of the server's transfer port.
    pub udp_via: Option<SocketAddr>,
}

/// Live progress of a download.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bytes held.
    pub done: u64,
    /// Announced size.
    pub size: u64,
    /// Receiver-side figures of a fast download (see [`fast::receiver::Receiver::stats`]).
    pub fast: Option<Stats>,
}

/// The temporary output file and what has been written to it.
struct Sink {
    /// Buffered: a classic UDP transfer writes 1000 bytes at a time, and each
    /// unbuffered write of a tokio file is a trip to the blocking pool.
    file: tokio::io::BufWriter<tokio::fs::File>,
    temp: PathBuf,
    written: u64,
    last: Option<u8>,
}

impl Sink {
    async fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.file.write_all(data).await.map_err(|source| ClientError::File { path: self.temp.clone(), source })?;
        self.written += data.len() as u64;
        if let Some(&b) = data.last() {
            self.last = Some(b);
        }
        Ok(())
    }
}

impl Session {
    /// Downloads `file` over `transport` into `target`. An existing target is
    /// an error unless `force`. `progress(done, size)` is called as bytes
    /// arrive. UDP uses the fast mode when the server offers it.
    pub async fn download(
        &self,
        file: &str,
        transport: Transport,
        target: &Path,
        force: bool,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<DownloadReport, ClientError> {
        let opts = DownloadOptions { force, fast: Some(fast::Config::default()), ..Default::default() };
        self.download_with(file, transport, target, &opts, |p| progress(p.done, p.size)).await
    }

    /// [`Session::download`] with every option: resume, fast-mode settings, trace.
    pub async fn download_with(
        &self,
        file: &str,
        transport: Transport,
        target: &Path,
        opts: &DownloadOptions,
        progress: impl FnMut(&Progress) + Send,
    ) -> Result<DownloadReport, ClientError> {
        let announce = self.request_download(file, transport);
        download(announce, self.server, self.timeout, file, transport, target, opts, progress).await
    }
}

/// A download whose `106` answer (size, port) comes from `announce` (this
/// session's own request, or a shared session's), from `server`. The output
/// is checked (`check_target`) before `announce` is awaited.
#[allow(clippy::too_many_arguments)]
pub(super) async fn download(
    announce: impl std::future::Future<Output = Result<(u64, u16), ClientError>>,
    server: SocketAddr,
    timeout: Duration,
    file: &str,
    transport: Transport,
    target: &Path,
    opts: &DownloadOptions,
    mut progress: impl FnMut(&Progress) + Send,
) -> Result<DownloadReport, ClientError> {
    check_target(target, opts)?;
    let started = Instant::now();
    let (size, port) = announce.await?;
    if port == 0 {
        return Err(ClientError::Protocol("the server announced port 0".into()));
    }
    let peer = SocketAddr::new(server.ip(), port);
    let answered_in = started.elapsed();
    let udp_peer = opts.udp_via.unwrap_or(peer);
    let job = Job { file, transport, target, size, peer, udp_peer, timeout, started, answered_in };
    if opts.resume
        && !opts.force
        && let Ok(m) = std::fs::metadata(target)
    {
        // `--continue` on a file that is there already (as wget -c).
        return job.already_there(m.len(), opts.fast.is_some()).await;
    }
    let fast_cfg = opts.fast.clone().filter(|_| transport == Transport::Udp);
    let (resume_from, refetched) = target::resume_point(target, size, opts.resume, fast_cfg.as_ref());
    let mark_path = resume_mark_path(target);
    let _ = std::fs::remove_file(&mark_path);
    let temp = temp_path_for(target);
    let std_file = job.open_partial(&temp, resume_from)?;
    let mut guard = TempGuard::new(target);
    if resume_from == 0 && fast_cfg.is_some() {
        space::record_source(&std_file, size);
    }
    let f = tokio::fs::File::from_std(
        std_file.try_clone().map_err(|source| ClientError::File { path: temp.clone(), source })?,
    );
    let mut sink =
        Sink { file: tokio::io::BufWriter::with_capacity(256 * 1024, f), temp: temp.clone(), written: 0, last: None };
    progress(&Progress { done: resume_from, size, fast: None });
    let (r, how) = match fast_cfg {
        Some(cfg) => {
            let expect = Expect { resume_from, size: Some(size) };
            job.fast(std_file, expect, cfg, opts.trace.clone(), &mut guard, &mut sink, &mut progress).await
        }
        None => job.plain(&mut sink, &mut progress).await,
    };
    let r = match r {
        Ok(()) if sink.written != size => Err(format!("received {} of {size} bytes", sink.written)),
        Ok(()) => sink.file.flush().await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    drop(sink.file);
    if guard.is_armed() {
        let _ = std::fs::remove_file(&mark_path);
    }
    if let Err(reason) = r {
        return Err(ClientError::Transfer { file: file.to_string(), reason });
    }
    space::forget_source(&temp);
    place(&temp, target, opts.force).await?;
    guard.disarm();
    let _ = std::fs::remove_file(&mark_path);
    // A classic transfer (no fast hello, or a classic answer to it) sends
    // the whole file.
    let resumed_from = if how.udp_mode == Some(UdpMode::Classic) { 0 } else { resume_from };
    Ok(DownloadReport {
        last_byte: sink.last,
        udp_mode: how.udp_mode,
        resumed_from,
        refetched_bytes: if resumed_from > 0 { refetched } else { 0 },
        sender: how.sender,
        ..job.report(false)
    })
}

/// One download once the server announced it: what is fetched, from where.
struct Job<'a> {
    file: &'a str,
    transport: Transport,
    target: &'a Path,
    /// The announced size.
    size: u64,
    /// The announced port on the server.
    peer: SocketAddr,
    /// Where UDP datagrams go (`udp_via`, else `peer`).
    udp_peer: SocketAddr,
    timeout: Duration,
    started: Instant,
    /// From the request to its `106` answer: the round trip to the server
    /// (and its answer's own time).
    answered_in: Duration,
}

/// How a transfer went, beyond its bytes.
#[derive(Default)]
struct How {
    udp_mode: Option<UdpMode>,
    sender: Option<fast::SenderStats>,
}

impl Job<'_> {
    /// The report of this download, nothing fetched.
    fn report(&self, already_complete: bool) -> DownloadReport {
        DownloadReport {
            file: self.file.to_string(),
            path: self.target.to_path_buf(),
            size: self.size,
            last_byte: None,
            seconds: self.started.elapsed().as_secs_f64(),
            transport: self.transport,
            udp_mode: None,
            resumed_from: 0,
            refetched_bytes: 0,
            already_complete,
            sender: None,
        }
    }

    /// `--continue` found the target there with `len` bytes: complete when
    /// that is the announced size (the server is told it is not wanted),
    /// else an error.
    async fn already_there(&self, len: u64, fast: bool) -> Result<DownloadReport, ClientError> {
        if len != self.size {
            return Err(ClientError::Output {
                path: self.target.to_path_buf(),
                reason: format!(
                    "it exists with {} bytes, the server's file has {}: use --force to download it again",
                    super::thousands(len),
                    super::thousands(self.size)
                ),
            });
        }
        decline(self.transport, fast, self.peer, self.udp_peer, self.timeout).await;
        // Whatever an earlier, interrupted run left beside it is of no use.
        let _ = std::fs::remove_file(temp_path_for(self.target));
        let _ = std::fs::remove_file(resume_mark_path(self.target));
        Ok(DownloadReport {
            last_byte: last_byte(self.target, self.size).await,
            resumed_from: self.size,
            ..self.report(true)
        })
    }

    /// The temporary file, with room for the download, truncated unless it
    /// resumes at `resume_from`.
    fn open_partial(&self, temp: &Path, resume_from: u64) -> Result<std::fs::File, ClientError> {
        space::before_transfer(temp, self.size, resume_from > 0)
            .map_err(|reason| ClientError::Transfer { file: self.file.to_string(), reason })?;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(resume_from == 0)
            .open(temp)
            .map_err(|source| ClientError::File { path: temp.to_path_buf(), source })
    }

    /// TCP, or classic UDP (no fast hello).
    async fn plain(&self, sink: &mut Sink, progress: &mut (impl FnMut(&Progress) + Send)) -> (Result<(), String>, How) {
        let (size, timeout) = (self.size, self.timeout);
        if self.transport == Transport::Tcp {
            return (tcp(self.peer, size, timeout, sink, progress).await, How::default());
        }
        let how = How { udp_mode: Some(UdpMode::Classic), ..How::default() };
        let r = match UdpSocket::bind(unspecified_for(self.udp_peer)).await {
            Ok(sock) => udp::udp_classic(sock, self.udp_peer, Vec::new(), size, timeout, sink, progress).await,
            Err(e) => Err(format!("cannot open a UDP socket: {e}")),
        };
        (r, how)
    }

    /// The fast mode (or classic, if the server answers the hello that
    /// way). Interrupted in here (Ctrl-C drops this future), the partial
    /// file and its mark stay for `--continue`; so they do after a failure
    /// worth resuming.
    #[allow(clippy::too_many_arguments)]
    async fn fast(
        &self,
        out: std::fs::File,
        expect: Expect,
        cfg: fast::Config,
        trace: Option<Tracer>,
        guard: &mut TempGuard,
        sink: &mut Sink,
        progress: &mut (impl FnMut(&Progress) + Send),
    ) -> (Result<(), String>, How) {
        // The request's round trip times the opening's retries, unless the
        // datagrams take another way (`udp_via`) than the request did.
        let rtt_hint = cfg.rtt_hint.or((self.udp_peer == self.peer).then_some(self.answered_in));
        let cfg = fast::Config { idle_timeout: self.timeout.max(Duration::from_secs(1)), rtt_hint, ..cfg };
        guard.disarm();
        let mark = MarkWriter::new(resume_mark_path(self.target), self.size);
        let r = udp::udp_fast(self.udp_peer, out, expect, &cfg, trace, mark, sink, progress).await;
        *guard = TempGuard::new(self.target);
        let classic = r.as_ref().is_ok_and(|&(classic, _)| classic);
        let how = How {
            udp_mode: Some(if classic { UdpMode::Classic } else { UdpMode::Fast }),
            sender: r.as_ref().ok().and_then(|(_, s)| s.clone()),
        };
        let r = match r {
            Ok(_) => Ok(()),
            Err((reason, true)) => {
                guard.disarm();
                Err(format!("{reason} {}", space::kept_note(&sink.temp)))
            }
            Err((reason, false)) => Err(reason),
        };
        (r, how)
    }
}

/// Tells the server a download it just announced is not wanted (the file
/// is already complete), so its port is free at once: a fast UDP sender gets
/// an ABORT after its CHALLENGE, a TCP transfer a connection reset at once.
/// A classic UDP sender cannot be told; it ends when the user leaves.
async fn decline(transport: Transport, fast: bool, peer: SocketAddr, udp_peer: SocketAddr, timeout: Duration) {
    match transport {
        Transport::Tcp => {
            if let Ok(Ok(s)) = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(peer)).await {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
        Transport::Udp if fast => {
            if let Ok(sock) = std::net::UdpSocket::bind(unspecified_for(udp_peer)) {
                let wait = timeout.min(Duration::from_secs(2));
                let _ = tokio::task::spawn_blocking(move || driver::decline_blocking(sock, udp_peer, wait)).await;
            }
        }
        Transport::Udp => {}
    }
}

/// Moves the complete temporary file to `target`. Without `force` this never
/// replaces a file that appeared meanwhile: a hard link fails if `target`
/// exists (atomically), then the temporary name is removed. A file system
/// without hard links falls back to check-then-rename.
async fn place(temp: &Path, target: &Path, force: bool) -> Result<(), ClientError> {
    let file_err = |source| ClientError::File { path: target.to_path_buf(), source };
    if !force {
        match tokio::fs::hard_link(temp, target).await {
            Ok(()) => {
                let _ = tokio::fs::remove_file(temp).await;
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ClientError::Exists(target.to_path_buf()));
            }
            Err(_) if target.exists() => return Err(ClientError::Exists(target.to_path_buf())),
            Err(_) => {}
        }
    }
    tokio::fs::rename(temp, target).await.map_err(file_err)
}

async fn tcp(
    peer: SocketAddr,
    size: u64,
    timeout: Duration,
    sink: &mut Sink,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<(), String> {
    let mut stream = connect_retry(peer, timeout).await.map_err(|e| e.to_string())?;
    // The server closes first, after the last byte; then the client resets
    // instead of sending its own FIN, which would leave the server's side in
    // TIME_WAIT (the reference binds that port again for the next download
    // and fails, lib/protocol.md §8). A FIN sent right after connecting avoids
    // that only when it beats the server's: the interop suite lost that race
    // on a loaded machine (3 of 5 downloads). The reset comes after the end
    // of the file, so no data is lost.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
            Err(_) => return Err(format!("no data for {}", humantime::format_duration(timeout))),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset && sink.written < size => {
                return Err(space::cut_short(sink.written, size));
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Ok(());
        }
        if sink.written + n as u64 > size {
            return Err(format!("the server sent more than the announced {size} bytes"));
        }
        sink.write(&buf[..n]).await.map_err(|e| space::write_failed(&e, sink.written))?;
        progress(&Progress { done: sink.written, size, fast: None });
    }
}

/// The value of the last byte of the `size`-byte file at `path` (what the
/// original client reports after a download).
async fn last_byte(path: &Path, size: u64) -> Option<u8> {
    let pos = size.checked_sub(1)?;
    let f = std::fs::File::open(path).ok()?;
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, pos).ok()?;
    Some(b[0])
}
