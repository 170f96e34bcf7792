//! Downloads: TCP, and classic go-back-N over UDP (PROTOCOL.md §5).
//!
//! Data goes to a temporary file beside the target, renamed into place only
//! when complete and exactly the announced size.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::{ClientError, Session, connect_retry};
use crate::rdt::classic::receiver::{Event, Receiver};
use crate::rdt::classic::{CHUNK, MAX_WINDOW};

/// How often the UDP hello is repeated until data arrives (the reference
/// binds the port only after announcing it).
const HELLO_REPEAT: Duration = Duration::from_millis(200);

/// The transport a download uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP: read until the server closes.
    Tcp,
    /// Reliable UDP (classic go-back-N; the default, as the original client).
    Udp,
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
    pub transport: Transport,
}

/// The temporary file a download of `target` writes before the rename.
pub fn temp_path_for(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.chatctl-part", std::process::id()))
}

/// Removes the temporary file if the download ends early (error, or the
/// future dropped on Ctrl-C) instead of being renamed into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
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
    /// an error unless `force`. `progress(done, size)` is called as bytes arrive.
    pub async fn download(
        &self,
        file: &str,
        transport: Transport,
        target: &Path,
        force: bool,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<DownloadReport, ClientError> {
        if !force && target.exists() {
            return Err(ClientError::Exists(target.to_path_buf()));
        }
        let started = Instant::now();
        let (size, port) = self.request_download(file, transport).await?;
        if port == 0 {
            return Err(ClientError::Protocol("the server announced port 0".into()));
        }
        let peer = SocketAddr::new(self.server.ip(), port);
        let temp = temp_path_for(target);
        let f =
            tokio::fs::File::create(&temp).await.map_err(|source| ClientError::File { path: temp.clone(), source })?;
        let mut guard = TempGuard(Some(temp.clone()));
        let mut sink = Sink {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, f),
            temp: temp.clone(),
            written: 0,
            last: None,
        };
        progress(0, size);
        let r = match transport {
            Transport::Tcp => tcp(peer, size, self.timeout, &mut sink, &mut progress).await,
            Transport::Udp => udp(peer, size, self.timeout, &mut sink, &mut progress).await,
        };
        let r = match r {
            Ok(()) if sink.written != size => Err(format!("received {} of {size} bytes", sink.written)),
            Ok(()) => sink.file.flush().await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        drop(sink.file);
        if let Err(reason) = r {
            return Err(ClientError::Transfer { file: file.to_string(), reason });
        }
        place(&temp, target, force).await?;
        guard.0 = None;
        Ok(DownloadReport {
            file: file.to_string(),
            path: target.to_path_buf(),
            size,
            last_byte: sink.last,
            seconds: started.elapsed().as_secs_f64(),
            transport,
        })
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
    progress: &mut (impl FnMut(u64, u64) + Send),
) -> Result<(), String> {
    let mut stream = connect_retry(peer, timeout).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
            Err(_) => return Err(format!("no data for {}", humantime::format_duration(timeout))),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Ok(());
        }
        if sink.written + n as u64 > size {
            return Err(format!("the server sent more than the announced {size} bytes"));
        }
        sink.write(&buf[..n]).await.map_err(|e| e.to_string())?;
        progress(sink.written, size);
    }
}

/// The seam for the fast mode: which hello to send and which receiver runs
/// the transfer. Today always the classic go-back-N receiver with window 98.
fn udp_receiver() -> Receiver {
    Receiver::new(MAX_WINDOW)
}

async fn udp(
    peer: SocketAddr,
    size: u64,
    timeout: Duration,
    sink: &mut Sink,
    progress: &mut (impl FnMut(u64, u64) + Send),
) -> Result<(), String> {
    let local: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("literal");
    let sock = UdpSocket::bind(local).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let mut rx = udp_receiver();
    let hello = rx.hello();
    let send = |sock: &UdpSocket, d: Vec<u8>| {
        // A lost ACK is repaired by the sender's retransmission.
        let _ = sock.try_send_to(&d, peer);
    };
    send(&sock, hello.clone());
    let mut buf = vec![0u8; CHUNK + 64];
    let mut last_data = tokio::time::Instant::now();
    let mut got_data = false;
    while !rx.is_done() {
        let wait = if got_data { timeout } else { HELLO_REPEAT };
        let (n, from) = match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            Err(_) if !got_data => {
                if last_data.elapsed() >= timeout {
                    return Err(format!("no data for {}", humantime::format_duration(timeout)));
                }
                send(&sock, hello.clone());
                continue;
            }
            Err(_) => return Err(format!("no data for {}", humantime::format_duration(timeout))),
            // ICMP port unreachable before the server binds: keep trying.
            Ok(Err(_)) if !got_data => continue,
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(x)) => x,
        };
        if from != peer {
            continue; // only the server's transfer port may send the file
        }
        match rx.on_datagram(&buf[..n]) {
            Event::Ignored => {}
            Event::Repeat { ack } => {
                got_data = true;
                if let Some(ack) = ack {
                    send(&sock, ack);
                }
            }
            Event::Deliver { payload, ack, last } => {
                got_data = true;
                last_data = tokio::time::Instant::now();
                if sink.written + payload.len() as u64 > size {
                    return Err(format!("the server sent more than the announced {size} bytes"));
                }
                sink.write(payload).await.map_err(|e| e.to_string())?;
                progress(sink.written, size);
                if last {
                    // The final ACK ends the sender; send it a few times in case one is lost.
                    for _ in 0..3 {
                        send(&sock, ack.clone());
                    }
                } else {
                    send(&sock, ack);
                }
            }
        }
    }
    Ok(())
}
