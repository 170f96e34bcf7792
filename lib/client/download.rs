//! Downloads: TCP, and UDP: chatctl's fast mode, falling back to classic
//! go-back-N when the server answers the hello with classic data ([protocol](crate::protocol) §5).
//!
//! Data goes to a temporary file beside the target, renamed into place only
//! when complete and exactly the announced size (and, in fast mode, once its
//! whole-file hash, XXH3-128, matches the sender's). A fast download that fails after data
//! arrived, or is interrupted, keeps its temporary file and a mark beside it
//! ([`resume_mark_path`]: how far the file is good), so `fetch --continue`
//! resumes exactly there. Every output is checked ([`check_target`]) before
//! the server is asked for anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::{ClientError, Session, connect_retry, escape, space};
use crate::rdt::classic::receiver::Receiver;
use crate::rdt::classic::{CHUNK, MAX_WINDOW};
use crate::rdt::endpoint::{self, Step};
use crate::rdt::fast::driver::{self, Expect, ReceiveReport, Tracer};
use crate::rdt::fast::{self, Stats};

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

/// The temporary file a download of `target` writes before the rename. Its
/// name is stable so `fetch --continue` finds it after an interruption.
pub fn temp_path_for(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.chatctl-part"))
}

/// Removes the temporary file (and its resume mark) if the download ends
/// early (error, or the future dropped on Ctrl-C) instead of being renamed
/// into place.
struct TempGuard(Option<(PathBuf, PathBuf)>);

impl TempGuard {
    /// Guards the temporary file and the resume mark of `target`.
    fn new(target: &Path) -> Self {
        TempGuard(Some((temp_path_for(target), resume_mark_path(target))))
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some((temp, mark)) = self.0.take() {
            let _ = std::fs::remove_file(mark);
            let _ = std::fs::remove_file(temp);
        }
    }
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

/// Where each of `files` goes, planned before anything is asked of the
/// server: `output` names the file of a single download unless it is a
/// folder (existing, or written with a trailing `/`); otherwise each file
/// keeps the server's name (its last component only) in `output` or the
/// current folder. Two files that would land on one path are an error.
pub fn plan_targets(output: Option<&Path>, files: &[String]) -> Result<Vec<(String, PathBuf)>, ClientError> {
    let single = files.len() == 1;
    let mut planned: Vec<(String, PathBuf)> = Vec::new();
    for file in files {
        let path = match output {
            Some(o)
                if single && !o.is_dir() && !o.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR) =>
            {
                o.to_path_buf()
            }
            _ => {
                let Some(base) = super::local_file_name(file) else {
                    return Err(ClientError::Output {
                        path: PathBuf::from(escape(file).into_owned()),
                        reason: "no local file name can be made from it (use -o NAME)".into(),
                    });
                };
                output.unwrap_or(Path::new(".")).join(base)
            }
        };
        if let Some((other, _)) = planned.iter().find(|(_, p)| *p == path) {
            return Err(ClientError::Output {
                path,
                reason: format!("{} and {} would both be written there", escape(other), escape(file)),
            });
        }
        planned.push((file.clone(), path));
    }
    Ok(planned)
}

/// The small file beside the partial download that says how much of it is
/// good: written (by rename) each time the receiver's contiguous prefix is
/// in the partial file, so `--continue` resumes exactly there.
pub fn resume_mark_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.chatctl-resume"))
}

/// What [`resume_mark_path`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ResumeMark {
    /// The file's size, as the server announced it.
    size: u64,
    /// Bytes `0..prefix` of the partial file are the file's.
    prefix: u64,
    /// Bytes held in all (beyond the prefix too: they are fetched again).
    held: u64,
}

impl ResumeMark {
    fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Written to a temporary name and renamed: the mark is old or new, never torn.
    fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap_or_default())?;
        std::fs::rename(&tmp, path)
    }
}

/// Checks the output of one download before anything is asked of the
/// server: its folder exists and can be written to, the target is not a
/// folder, and it does not exist (unless `force`, or `resume`, which may
/// find it already complete once the size is known).
pub fn check_target(target: &Path, opts: &DownloadOptions) -> Result<(), ClientError> {
    let bad = |reason: String| ClientError::Output { path: target.to_path_buf(), reason };
    let folder = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad(format!("{} is not a folder", folder.display()))),
        Err(e) => return Err(bad(format!("the folder {} cannot be used: {e}", folder.display()))),
    }
    if target.is_dir() {
        return Err(bad("it is a folder (name the file, or end the path with /)".into()));
    }
    if target.exists() && !opts.force && !opts.resume {
        return Err(ClientError::Exists(target.to_path_buf()));
    }
    // Writable: the partial file is created (or opened, to resume) now.
    let temp = temp_path_for(target);
    let existed = temp.exists();
    match std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&temp) {
        Ok(_) if !existed => {
            let _ = std::fs::remove_file(&temp);
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(bad(format!("cannot write in {}: {e}", folder.display()))),
    }
}

/// A download whose `106` answer (size, port) comes from `announce` (this
/// session's own request, or a shared session's), from `server`. The output
/// is checked ([`check_target`]) before `announce` is awaited.
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
    {
        check_target(target, opts)?;
        let started = Instant::now();
        let (size, port) = announce.await?;
        if port == 0 {
            return Err(ClientError::Protocol("the server announced port 0".into()));
        }
        let peer = SocketAddr::new(server.ip(), port);
        let udp_peer = opts.udp_via.unwrap_or(peer);
        let temp = temp_path_for(target);
        let mark_path = resume_mark_path(target);
        if opts.resume
            && !opts.force
            && let Ok(m) = std::fs::metadata(target)
        {
            // `--continue` on a file that is there already (as wget -c).
            if m.len() != size {
                return Err(ClientError::Output {
                    path: target.to_path_buf(),
                    reason: format!(
                        "it exists with {} bytes, the server's file has {}: use --force to download it again",
                        super::thousands(m.len()),
                        super::thousands(size)
                    ),
                });
            }
            decline(transport, opts.fast.is_some(), peer, udp_peer, timeout).await;
            // Whatever an earlier, interrupted run left beside it is of no use.
            let _ = std::fs::remove_file(&temp);
            let _ = std::fs::remove_file(&mark_path);
            return Ok(DownloadReport {
                file: file.to_string(),
                path: target.to_path_buf(),
                size,
                last_byte: last_byte(target, size).await,
                seconds: started.elapsed().as_secs_f64(),
                transport,
                udp_mode: None,
                resumed_from: size,
                refetched_bytes: 0,
                already_complete: true,
                sender: None,
            });
        }
        let fast_cfg = opts.fast.clone().filter(|_| transport == Transport::Udp);
        // What an interrupted fast download left: its mark says how far the
        // file is good. Without a mark (or one for another size), the
        // flow-control window bounds how far past its contiguous prefix it
        // wrote, so everything before `len - window` is good. The final
        // hash checks the rest either way.
        let held_len = std::fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
        let (resume_from, refetched) = match (&fast_cfg, opts.resume) {
            (Some(c), true) => match ResumeMark::read(&mark_path) {
                Some(m) if m.size == size && m.prefix <= held_len.min(size) => {
                    (m.prefix, m.held.saturating_sub(m.prefix))
                }
                _ => (held_len.min(size).saturating_sub(c.receive_window), 0),
            },
            _ => (0, 0),
        };
        let _ = std::fs::remove_file(&mark_path);
        space::before_transfer(&temp, size, resume_from > 0)
            .map_err(|reason| ClientError::Transfer { file: file.to_string(), reason })?;
        let std_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(resume_from == 0)
            .open(&temp)
            .map_err(|source| ClientError::File { path: temp.clone(), source })?;
        let mut guard = TempGuard::new(target);
        if resume_from == 0 && fast_cfg.is_some() {
            space::record_source(&std_file, size);
        }
        let f = tokio::fs::File::from_std(
            std_file.try_clone().map_err(|source| ClientError::File { path: temp.clone(), source })?,
        );
        let mut sink = Sink {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, f),
            temp: temp.clone(),
            written: 0,
            last: None,
        };
        progress(&Progress { done: resume_from, size, fast: None });
        let mut udp_mode = None;
        let mut reported_resume = resume_from;
        let mut sender = None;
        let r = match (transport, fast_cfg) {
            (Transport::Tcp, _) => tcp(peer, size, timeout, &mut sink, &mut progress).await,
            (Transport::Udp, None) => {
                udp_mode = Some(UdpMode::Classic);
                match UdpSocket::bind(unspecified(udp_peer)).await {
                    Ok(sock) => udp_classic(sock, udp_peer, Vec::new(), size, timeout, &mut sink, &mut progress).await,
                    Err(e) => Err(format!("cannot open a UDP socket: {e}")),
                }
            }
            (Transport::Udp, Some(cfg)) => {
                let cfg = fast::Config { idle_timeout: timeout.max(Duration::from_secs(1)), ..cfg };
                let expect = Expect { resume_from, size: Some(size) };
                // Interrupted in here (Ctrl-C drops this future), the partial
                // file and its mark stay for `--continue`.
                guard.0 = None;
                let mark = MarkWriter { path: mark_path.clone(), size, written: None };
                let r = udp_fast(udp_peer, std_file, expect, &cfg, opts.trace.clone(), mark, &mut sink, &mut progress)
                    .await;
                guard = TempGuard::new(target);
                let classic = r.as_ref().is_ok_and(|&(classic, _)| classic);
                if let Ok((_, s)) = &r {
                    sender = s.clone();
                }
                udp_mode = Some(if classic { UdpMode::Classic } else { UdpMode::Fast });
                if classic {
                    reported_resume = 0;
                }
                match r {
                    Ok(_) => Ok(()),
                    Err((reason, resumable)) => {
                        if resumable {
                            guard.0 = None;
                            Err(format!("{reason} {}", space::kept_note(&temp)))
                        } else {
                            Err(reason)
                        }
                    }
                }
            }
        };
        let r = match r {
            Ok(()) if sink.written != size => Err(format!("received {} of {size} bytes", sink.written)),
            Ok(()) => sink.file.flush().await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        drop(sink.file);
        if guard.0.is_some() {
            let _ = std::fs::remove_file(&mark_path);
        }
        if let Err(reason) = r {
            return Err(ClientError::Transfer { file: file.to_string(), reason });
        }
        space::forget_source(&temp);
        place(&temp, target, opts.force).await?;
        guard.0 = None;
        let _ = std::fs::remove_file(&mark_path);
        Ok(DownloadReport {
            file: file.to_string(),
            path: target.to_path_buf(),
            size,
            last_byte: sink.last,
            seconds: started.elapsed().as_secs_f64(),
            transport,
            udp_mode,
            resumed_from: reported_resume,
            refetched_bytes: if reported_resume > 0 { refetched } else { 0 },
            already_complete: false,
            sender,
        })
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
            if let Ok(sock) = std::net::UdpSocket::bind(unspecified(udp_peer)) {
                let wait = timeout.min(Duration::from_secs(2));
                let _ = tokio::task::spawn_blocking(move || driver::decline_blocking(sock, udp_peer, wait)).await;
            }
        }
        Transport::Udp => {}
    }
}

/// Keeps the resume mark of a fast download up to date from its progress
/// (on the transfer's thread, after what arrived is in the file).
struct MarkWriter {
    path: PathBuf,
    size: u64,
    written: Option<(u64, u64)>,
}

impl MarkWriter {
    fn update(&mut self, s: &Stats) {
        let now = (s.held_prefix, s.bytes_done);
        if self.written != Some(now) && s.bytes_done > 0 {
            let m = ResumeMark { size: self.size, prefix: s.held_prefix, held: s.bytes_done };
            if m.write(&self.path).is_ok() {
                self.written = Some(now);
            }
        }
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

/// The classic go-back-N receiver, window 98 (the fast hello also reads as 98).
fn udp_receiver() -> Receiver {
    Receiver::new(MAX_WINDOW)
}

fn unspecified(peer: SocketAddr) -> SocketAddr {
    if peer.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], 0)) } else { SocketAddr::from(([0u16; 8], 0)) }
}

/// The fast mode: sends the fast hello and runs the fast receiver on its own
/// thread, with the sender's last figures. `Ok((true, _))` when the server turned out classic and the classic
/// receiver did the transfer instead; `Err((reason, resumable))`.
#[allow(clippy::too_many_arguments)]
async fn udp_fast(
    peer: SocketAddr,
    out: std::fs::File,
    expect: Expect,
    cfg: &fast::Config,
    trace: Option<Tracer>,
    mut mark: MarkWriter,
    sink: &mut Sink,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<(bool, Option<fast::SenderStats>), (String, bool)> {
    let sock =
        UdpSocket::bind(unspecified(peer)).await.map_err(|e| (format!("cannot open a UDP socket: {e}"), false))?;
    let size = expect.size.unwrap_or(0);
    let (tx, mut rx) = tokio::sync::watch::channel(Stats::default());
    let t0 = Instant::now();
    let run = driver::receive_file(sock, peer, out, expect, cfg, move |s: &Stats| {
        if let Some(t) = &trace {
            t.record(t0.elapsed(), &StatsLine::new(s));
        }
        mark.update(s);
        let _ = tx.send(s.clone());
    });
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            r = &mut run => break r,
            Ok(()) = rx.changed() => {
                let s = rx.borrow_and_update().clone();
                progress(&Progress { done: s.bytes_done, size, fast: Some(s) });
            }
        }
    };
    match report {
        Ok(ReceiveReport::Fast { size: got, stats, .. }) => {
            sink.written = got;
            sink.last = last_byte(&sink.temp, got).await;
            let sender = stats.sender.clone();
            progress(&Progress { done: got, size, fast: Some(stats) });
            Ok((false, sender))
        }
        Ok(ReceiveReport::Classic { first, rest, sock }) => {
            // Classic data, from the start: whatever a resume kept is void.
            let restart = async {
                sink.file.get_mut().set_len(0).await?;
                tokio::io::AsyncSeekExt::rewind(&mut sink.file).await?;
                UdpSocket::from_std(sock)
            };
            let sock = restart.await.map_err(|e| (e.to_string(), false))?;
            sink.written = 0;
            udp_classic(
                sock,
                peer,
                std::iter::once(first).chain(rest).collect(),
                size,
                cfg.idle_timeout,
                sink,
                progress,
            )
            .await
            .map_err(|e| (e, false))?;
            Ok((true, None))
        }
        Err(e) => {
            // A file whose hash differs, or that changed or went on the
            // server, is not worth resuming: start afresh next time.
            use fast::receiver::RecvError;
            let bad = match &e {
                driver::RdtError::Recv(RecvError::HashMismatch) => true,
                driver::RdtError::Recv(RecvError::PeerAborted(a)) => {
                    matches!(a.reason, fast::AbortReason::FileChanged | fast::AbortReason::FileUnreadable)
                }
                _ => false,
            };
            if matches!(e, driver::RdtError::Recv(RecvError::HashMismatch)) && expect.resume_from > 0 {
                return Err((format!("{} (the whole-file hash differs)", space::CHANGED_SINCE_PARTIAL), false));
            }
            let held = rx.borrow().bytes_done;
            if space::disk_full(&e) {
                let (keep, note) = space::after_disk_full(&sink.temp, cfg.receive_window);
                return Err((format!("{}{note}", super::error_chain(&e)), keep));
            }
            Err((super::error_chain(&e), !bad && held > expect.resume_from))
        }
    }
}

/// One `--trace` line of a fast download (receiver side).
#[derive(serde::Serialize)]
struct StatsLine {
    event: &'static str,
    bytes: u64,
    cwnd_estimate: u64,
    rtt_us: u64,
    holes: u64,
    late_bytes: u64,
    acks_sent: u64,
}

impl StatsLine {
    fn new(s: &Stats) -> Self {
        Self {
            event: "stats",
            bytes: s.bytes_done,
            cwnd_estimate: s.cwnd,
            rtt_us: s.srtt.as_micros() as u64,
            holes: s.packets_lost,
            late_bytes: s.bytes_retransmitted,
            acks_sent: s.datagrams_sent,
        }
    }
}

async fn last_byte(path: &Path, size: u64) -> Option<u8> {
    let pos = size.checked_sub(1)?;
    let f = std::fs::File::open(path).ok()?;
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, pos).ok()?;
    Some(b[0])
}

/// What one step of the classic receiver delivered. It delivers in order,
/// so the bytes are gathered here and then written to the file with
/// tokio's (asynchronous) file.
#[derive(Default)]
struct Delivered(Vec<u8>);

impl endpoint::Sink for Delivered {
    fn write_at(&mut self, _: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn read_at(&mut self, _: u64, _: &mut [u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("the classic receiver never reads back"))
    }
}

/// The classic receiver on `sock`; `first` holds classic datagrams that already arrived (after a fast hello), in order.
///
/// The machine runs on [`endpoint::step`] like every other transfer: it
/// repeats its hello until data comes, and queues one ACK per datagram and
/// three copies of the final one.
async fn udp_classic(
    sock: UdpSocket,
    peer: SocketAddr,
    first: Vec<Vec<u8>>,
    size: u64,
    timeout: Duration,
    sink: &mut Sink,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<(), String> {
    let mut rx = udp_receiver();
    let mut delivered = Delivered::default();
    let mut incoming = first;
    let (mut out, mut acks) = (Vec::new(), Vec::<Vec<u8>>::new());
    let mut buf = vec![0u8; CHUNK + 64];
    let mut last_data = tokio::time::Instant::now();
    let mut got_data = false;
    loop {
        let step = endpoint::step(
            &mut rx,
            Instant::now(),
            &mut delivered,
            endpoint::drain(&mut incoming),
            &mut out,
            1,
            |d, _| {
                acks.push(d.to_vec());
                Ok::<_, std::convert::Infallible>(())
            },
        );
        let Ok(step) = step;
        // What arrived is in the file before it is acknowledged.
        if !delivered.0.is_empty() {
            (got_data, last_data) = (true, tokio::time::Instant::now());
            if sink.written + delivered.0.len() as u64 > size {
                return Err(format!("the server sent more than the announced {size} bytes"));
            }
            sink.write(&delivered.0).await.map_err(|e| space::write_failed(&e, sink.written))?;
            delivered.0.clear();
            progress(&Progress { done: sink.written, size, fast: None });
        }
        // Every ACK really goes out: `try_send_to` on the socket just handed
        // over from the fast driver fails (tokio has not seen it writable
        // yet), and the reference sender takes only the next ACK in order:
        // the transfer never recovers from a missing one. A failed send is
        // left to the sender's retransmission.
        got_data |= rx.delivered() > 0 || !acks.is_empty();
        for d in acks.drain(..) {
            let _ = sock.send_to(&d, peer).await;
        }
        let Step::Wait(wake) = step else { return Ok(()) };
        // Once data flows, --timeout bounds the time without new data, not
        // between datagrams: a classic sender that lost track (the
        // reference's, after a lost ACK) resends old packets forever.
        let deadline = last_data + timeout;
        let wake = wake.map_or(deadline, |t| tokio::time::Instant::from_std(t).min(deadline));
        match tokio::time::timeout_at(wake, sock.recv_from(&mut buf)).await {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                let what = if got_data { "no new data" } else { "no data" };
                let mut e = format!("{what} for {}", humantime::format_duration(timeout));
                if got_data {
                    e.push_str(&space::stopped_note(sink.written, size));
                }
                return Err(e);
            }
            Err(_) => {} // the hello is due again
            // ICMP port unreachable before the server binds: keep trying.
            Ok(Err(_)) if !got_data => {}
            Ok(Err(e)) => return Err(e.to_string()),
            // Only the server's transfer port may send the file.
            Ok(Ok((n, from))) if from == peer => incoming.push(buf[..n].to_vec()),
            Ok(Ok(_)) => {}
        }
    }
}
