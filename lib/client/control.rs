//! Shared sessions, in the manner of ssh's ControlMaster: a running `join`
//! for a server and name listens on a Unix socket, and a one-shot
//! `say`/`whisper`/`list`/`fetch` with the same server and name goes through
//! it instead of joining again (no name-taken error, no join/leave notices).
//!
//! - Where: [`runtime_dir`] (`$XDG_RUNTIME_DIR/chatctl`, else
//!   `$TMPDIR/chatctl-UID`), a 0700 directory owned by the user, checked
//!   before use; one socket per server and name ([`socket_path`]), mode 0600.
//!   The host also checks each peer's uid (`SO_PEERCRED`).
//! - The protocol: one JSON object per line each way, a [`Request`] then its
//!   [`Reply`]; requests on one connection are answered in order.
//! - A socket nobody listens on (the session crashed) is stale: connecting is
//!   refused, and the socket is removed ([`Client::connect`], [`Host::bind`]).
//! - [`Link`] is what the one-shot commands use: their own [`Session`], or a
//!   [`Client`] of a live shared one, with the same methods.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, mpsc, watch};

use super::{ClientError, DownloadOptions, DownloadReport, Progress, Session, Transport};
use crate::exit::Exit;
use crate::wire::ErrorCode;

/// The longest request or reply line accepted (a file list of many names).
const MAX_LINE: usize = 1 << 20;

/// A problem with the shared-session socket or its folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The runtime folder cannot be made, or is not private.
    #[error("the session folder {} is not usable: {why}", path.display())]
    Dir {
        /// The folder.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A live session for this server and name already listens.
    #[error("a session for this server and name is already running (socket {})", .0.display())]
    Busy(PathBuf),
    /// No live session for this server and name.
    #[error("no session for this server and name is running (no socket {})", .0.display())]
    NoSession(PathBuf),
    /// A socket operation failed.
    #[error("the session socket {}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The private folder for session sockets: `$XDG_RUNTIME_DIR/chatctl` when
/// that variable names a folder, else `chatctl-UID` in the temporary folder.
/// Created 0700 if missing; refused if it is a symlink, not ours, or open to
/// others.
pub fn runtime_dir() -> Result<PathBuf, ControlError> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(x) if x.is_absolute() && x.is_dir() => x.join("chatctl"),
        _ => std::env::temp_dir().join(format!("chatctl-{}", euid())),
    };
    let bad = |why: String| ControlError::Dir { path: dir.clone(), why };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(bad(e.to_string())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| bad(e.to_string()))?;
    private_dir_problem(meta.is_dir(), meta.uid(), meta.mode(), euid()).map_or(Ok(dir.clone()), |w| Err(bad(w)))
}

/// Why a folder with these properties must not hold our sockets, if it must not.
fn private_dir_problem(is_dir: bool, uid: u32, mode: u32, me: u32) -> Option<String> {
    if !is_dir {
        Some("not a folder (or a symlink)".into())
    } else if uid != me {
        Some(format!("owned by uid {uid}, not by you ({me})"))
    } else if mode & 0o077 != 0 {
        Some(format!("mode {:o}: others can reach it (chmod 700 it)", mode & 0o777))
    } else {
        None
    }
}

/// The socket of the session for `server` and `name` in `dir`: a hash of
/// both, so any name (slashes, spaces, 99 characters) gives a short, safe
/// file name.
pub fn socket_path(dir: &Path, server: SocketAddr, name: &str) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(server.to_string().as_bytes());
    h.update(&[0]);
    h.update(name.as_bytes());
    let hex = h.finalize().to_hex();
    dir.join(format!("{}.sock", &hex[..24]))
}

/// A request from a one-shot command to the session host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `104`, split as [`Session::broadcast`].
    Broadcast {
        /// The text.
        text: String,
    },
    /// `103`, split as [`Session::whisper`].
    Whisper {
        /// The receiver.
        to: String,
        /// The text.
        text: String,
    },
    /// `102`.
    Users,
    /// `105`.
    Files,
    /// `106`: the size and port; the caller then downloads itself.
    Download {
        /// The file.
        file: String,
        /// `true` for TCP, else UDP.
        tcp: bool,
    },
    /// Leave the room and end the session.
    Stop,
}

/// The host's answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Who received each broadcast message.
    Sent(Vec<(String, Vec<String>)>),
    /// The whispered messages.
    Whispered(Vec<String>),
    /// A user or file list.
    List(Vec<String>),
    /// A download's size and port.
    Download {
        /// Bytes.
        size: u64,
        /// The transfer port on the server.
        port: u16,
    },
    /// Done (after `stop`).
    Done,
    /// The request failed.
    Failed {
        /// The message, causes included.
        message: String,
        /// The exit code it has in the host.
        exit: u8,
        /// The server's error code, when it refused (`4TTE`).
        refused: Option<(u8, u8)>,
    },
}

impl Reply {
    /// A [`ClientError`] as a reply, so the one-shot exits as it would have alone.
    pub fn failed(e: &ClientError) -> Reply {
        let refused = match e {
            ClientError::Refused(c) => Some((c.ty, c.digit)),
            _ => None,
        };
        let mut message = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            message = format!("{message}: {s}");
            src = s.source();
        }
        Reply::Failed { message, exit: e.exit().code(), refused }
    }

    /// The error carried by a [`Reply::Failed`], `Ok(self)` otherwise.
    pub(crate) fn into_result(self) -> Result<Reply, ClientError> {
        match self {
            Reply::Failed { refused: Some((ty, digit)), .. } => Err(ClientError::Refused(ErrorCode::new(ty, digit))),
            Reply::Failed { message, exit, .. } => {
                Err(ClientError::Shared { message, exit: Exit::from_code(exit).unwrap_or(Exit::Failure) })
            }
            r => Ok(r),
        }
    }
}

/// How often a request is tried again while its shared session is away
/// (reconnecting).
const AWAY_RETRY: Duration = Duration::from_millis(200);

/// The listening side of a shared session, held by `join`. Dropping it
/// stops serving, closes every control connection and removes the socket.
#[derive(Debug)]
pub struct Host {
    path: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
    listener: Option<UnixListener>,
}

impl Host {
    /// Binds the socket for `server` and `name` in `dir` (mode 0600). A
    /// stale socket is removed first; a live one is [`ControlError::Busy`].
    pub async fn bind(dir: &Path, server: SocketAddr, name: &str) -> Result<Host, ControlError> {
        let path = socket_path(dir, server, name);
        if path.exists() {
            match UnixStream::connect(&path).await {
                Ok(_) => return Err(ControlError::Busy(path)),
                Err(_) => remove_stale(&path)?,
            }
        }
        let io = |source| ControlError::Io { path: path.clone(), source };
        // The folder is private already; the mode is a second lock.
        let listener = UnixListener::bind(&path).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(Host { path, task: None, listener: Some(listener) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts answering requests with the session in `current` (`None`
    /// while reconnecting: requests then fail as if the server were gone).
    /// A `stop` request is passed on through `stop`; its connection stays
    /// open until the host is dropped, so `join --stop` returns once the
    /// session has left.
    pub fn serve(&mut self, current: watch::Receiver<Option<Arc<Session>>>, stop: mpsc::UnboundedSender<()>) {
        let Some(listener) = self.listener.take() else { return };
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let Ok((stream, _)) = a else { continue };
                        // Only the owner: a second lock behind the folder's mode.
                        if stream.peer_cred().map(|c| c.uid()).ok() != Some(euid()) {
                            continue;
                        }
                        conns.spawn(answer(stream, current.clone(), stop.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        }));
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn remove_stale(path: &Path) -> Result<(), ControlError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ControlError::Io { path: path.to_path_buf(), source }),
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at the end.
async fn read_line(r: &mut BufReader<OwnedReadHalf>) -> io::Result<Option<String>> {
    let mut line = String::new();
    let n = (&mut *r).take(MAX_LINE as u64).read_line(&mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a control line too long or cut off"));
    }
    Ok(Some(line))
}

async fn write_json(w: &mut OwnedWriteHalf, v: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

/// Serves one control connection.
async fn answer(stream: UnixStream, current: watch::Receiver<Option<Arc<Session>>>, stop: mpsc::UnboundedSender<()>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    while let Ok(Some(line)) = read_line(&mut r).await {
        let reply = match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::Failed { message: format!("bad control request: {e}"), exit: 1, refused: None },
            Ok(Request::Stop) => {
                // Answered first: once told, the host may end at once, and
                // this connection with it.
                let _ = write_json(&mut w, &Reply::Done).await;
                let _ = stop.send(());
                // Held open until the host is dropped (the session has left).
                return std::future::pending().await;
            }
            Ok(req) => {
                let session = current.borrow().clone();
                match session {
                    None => Reply::failed(&ClientError::Closed),
                    Some(s) => perform(&s, req).await.unwrap_or_else(|e| Reply::failed(&e)),
                }
            }
        };
        if write_json(&mut w, &reply).await.is_err() {
            return;
        }
    }
}

async fn perform(s: &Session, req: Request) -> Result<Reply, ClientError> {
    Ok(match req {
        Request::Broadcast { text } => Reply::Sent(s.broadcast(&text).await?),
        Request::Whisper { to, text } => Reply::Whispered(s.whisper(&to, &text).await?),
        Request::Users => Reply::List(s.users().await?),
        Request::Files => Reply::List(s.files().await?),
        Request::Download { file, tcp } => {
            let (size, port) = s.request_download(&file, if tcp { Transport::Tcp } else { Transport::Udp }).await?;
            Reply::Download { size, port }
        }
        Request::Stop => Reply::Done,
    })
}

/// A one-shot command's connection to a live shared session.
#[derive(Debug)]
pub struct Client {
    conn: Mutex<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
    /// The session's process, as the socket tells.
    pid: Option<i32>,
    server: SocketAddr,
    name: String,
    timeout: Duration,
}

impl Client {
    /// Connects to the session for `server` and `name` in `dir`: `Ok(None)`
    /// when none runs (a stale socket is removed).
    pub async fn connect(
        dir: &Path,
        server: SocketAddr,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<Client>, ControlError> {
        let path = socket_path(dir, server, name);
        let stream = match UnixStream::connect(&path).await {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                remove_stale(&path)?;
                return Ok(None);
            }
            Err(source) => return Err(ControlError::Io { path, source }),
        };
        let pid = stream.peer_cred().ok().and_then(|c| c.pid());
        let (r, w) = stream.into_split();
        let conn = Mutex::new((BufReader::new(r), w));
        Ok(Some(Client { conn, pid, server, name: name.to_string(), timeout }))
    }

    /// The process id of the session's `join`, when the system tells it.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Sends `req` and waits for its reply. While the session is away (its
    /// `join --reconnect` rejoins a server that went away), the request is
    /// sent again every [`AWAY_RETRY`] until it is back, for at most this
    /// command's --timeout; a session that has ended fails at once.
    async fn call(&self, req: &Request) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match self.call_once(req).await {
                Err(ClientError::Shared { exit: Exit::ServerGone, .. })
                    if tokio::time::Instant::now() + AWAY_RETRY < deadline =>
                {
                    tokio::time::sleep(AWAY_RETRY).await;
                }
                r => return r,
            }
        }
    }

    /// One request and its reply. The host bounds each server request by
    /// its own --timeout; this bound only catches a stuck host.
    async fn call_once(&self, req: &Request) -> Result<Reply, ClientError> {
        let mut conn = self.conn.lock().await;
        let (r, w) = &mut *conn;
        write_json(w, req).await.map_err(ClientError::Io)?;
        let line = match tokio::time::timeout(self.timeout.saturating_mul(4), read_line(r)).await {
            Err(_) => return Err(ClientError::Timeout { what: "the shared session's answer" }),
            Ok(Err(e)) => return Err(ClientError::Io(e)),
            Ok(Ok(None)) => return Err(ClientError::Closed),
            Ok(Ok(Some(l))) => l,
        };
        let reply: Reply = serde_json::from_str(&line)
            .map_err(|e| ClientError::Protocol(format!("bad answer from the shared session: {e}")))?;
        reply.into_result()
    }

    /// Asks the session to leave the room and end; returns once it has (its
    /// socket closes).
    pub async fn stop(&self) -> Result<(), ClientError> {
        self.call(&Request::Stop).await?;
        let mut conn = self.conn.lock().await;
        let wait = self.timeout.saturating_mul(2);
        match tokio::time::timeout(wait, read_line(&mut conn.0)).await {
            Err(_) => Err(ClientError::Timeout { what: "the session to end" }),
            Ok(_) => Ok(()),
        }
    }
}

fn unexpected(r: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected answer from the shared session: {r:?}"))
}

/// A joined room as the one-shot commands use it: their own [`Session`], or
/// a live shared one through its socket. The methods are the session's.
#[derive(Debug)]
pub enum Link {
    /// Joined by this command.
    Own(Session),
    /// Through a running `join`.
    Shared(Client),
}

impl Link {
    /// The name in the room.
    pub fn name(&self) -> &str {
        match self {
            Link::Own(s) => s.name(),
            Link::Shared(c) => &c.name,
        }
    }

    /// See [`Session::users`].
    pub async fn users(&self) -> Result<Vec<String>, ClientError> {
        match self {
            Link::Own(s) => s.users().await,
            Link::Shared(c) => match c.call(&Request::Users).await? {
                Reply::List(l) => Ok(l),
                r => Err(unexpected(r)),
            },
        }
    }

    /// See [`Session::files`].
    pub async fn files(&self) -> Result<Vec<String>, ClientError> {
        match self {
            Link::Own(s) => s.files().await,
            Link::Shared(c) => match c.call(&Request::Files).await? {
                Reply::List(l) => Ok(l),
                r => Err(unexpected(r)),
            },
        }
    }

    /// See [`Session::whisper`].
    pub async fn whisper(&self, to: &str, text: &str) -> Result<Vec<String>, ClientError> {
        match self {
            Link::Own(s) => s.whisper(to, text).await,
            Link::Shared(c) => match c.call(&Request::Whisper { to: to.into(), text: text.into() }).await? {
                Reply::Whispered(p) => Ok(p),
                r => Err(unexpected(r)),
            },
        }
    }

    /// See [`Session::broadcast`].
    pub async fn broadcast(&self, text: &str) -> Result<Vec<(String, Vec<String>)>, ClientError> {
        match self {
            Link::Own(s) => s.broadcast(text).await,
            Link::Shared(c) => match c.call(&Request::Broadcast { text: text.into() }).await? {
                Reply::Sent(p) => Ok(p),
                r => Err(unexpected(r)),
            },
        }
    }

    /// See [`Session::download_with`]: through a shared session, the session
    /// asks for the file and this process downloads it.
    pub async fn download_with(
        &self,
        file: &str,
        transport: Transport,
        target: &Path,
        opts: &DownloadOptions,
        progress: impl FnMut(&Progress) + Send,
    ) -> Result<DownloadReport, ClientError> {
        match self {
            Link::Own(s) => s.download_with(file, transport, target, opts, progress).await,
            Link::Shared(c) => {
                let announce = async {
                    let req = Request::Download { file: file.into(), tcp: transport == Transport::Tcp };
                    match c.call(&req).await? {
                        Reply::Download { size, port } => Ok((size, port)),
                        r => Err(unexpected(r)),
                    }
                };
                super::download::download(announce, c.server, c.timeout, file, transport, target, opts, progress).await
            }
        }
    }

    /// Leaves the room if this command joined it; a shared session stays.
    pub async fn leave(&self) -> Result<(), ClientError> {
        match self {
            Link::Own(s) => s.leave().await,
            Link::Shared(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_per_server_and_name() {
        let dir = Path::new("/run/user/1/chatctl");
        let a: SocketAddr = "127.0.0.1:13337".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:13338".parse().unwrap();
        let p = socket_path(dir, a, "alice");
        assert_eq!(p, socket_path(dir, a, "alice"));
        assert_ne!(p, socket_path(dir, b, "alice"));
        assert_ne!(p, socket_path(dir, a, "alicf"));
        // "ab" + "c" and "a" + "bc" must not collide through the separator.
        assert_ne!(socket_path(dir, a, "x/y"), socket_path(dir, a, "x"));
        let long = "é".repeat(99);
        let s = socket_path(dir, a, &long);
        assert!(s.as_os_str().len() < 100, "{s:?} must fit sun_path");
        assert_eq!(s.parent(), Some(dir));
    }

    #[test]
    fn only_a_private_folder_of_ours() {
        assert_eq!(private_dir_problem(true, 1000, 0o40700, 1000), None);
        assert!(private_dir_problem(true, 1000, 0o40755, 1000).unwrap().contains("chmod 700"));
        assert!(private_dir_problem(true, 0, 0o40700, 1000).unwrap().contains("owned by uid 0"));
        assert!(private_dir_problem(false, 1000, 0o120777, 1000).is_some());
    }

    #[test]
    fn requests_and_replies_round_trip_as_json_lines() {
        let reqs = [
            Request::Broadcast { text: "hi\nthere".into() },
            Request::Whisper { to: "bob".into(), text: "x".into() },
            Request::Users,
            Request::Files,
            Request::Download { file: "a b".into(), tcp: true },
            Request::Stop,
        ];
        for r in reqs {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
        assert_eq!(serde_json::to_string(&Request::Users).unwrap(), r#"{"op":"users"}"#);
        let replies = [
            Reply::Sent(vec![("hi".into(), vec!["bob".into()])]),
            Reply::Whispered(vec!["a".into()]),
            Reply::List(vec![]),
            Reply::Download { size: 3, port: 9 },
            Reply::Done,
        ];
        for r in replies {
            let back: Reply = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(back.clone().into_result().unwrap(), r);
        }
    }

    #[test]
    fn failures_keep_their_exit_code_and_refusal() {
        let r = Reply::failed(&ClientError::Refused(ErrorCode::NO_SUCH_USER));
        let e = r.into_result().unwrap_err();
        assert!(matches!(e, ClientError::Refused(c) if c == ErrorCode::NO_SUCH_USER));
        assert_eq!(e.exit(), Exit::NoSuchUser);
        let e = Reply::failed(&ClientError::Timeout { what: "x" }).into_result().unwrap_err();
        assert_eq!(e.exit(), Exit::Timeout);
        assert_eq!(e.to_string(), "timed out waiting for x");
        let e = Reply::failed(&ClientError::Closed).into_result().unwrap_err();
        assert_eq!(e.exit(), Exit::ServerGone);
    }
}
