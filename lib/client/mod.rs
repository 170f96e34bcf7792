//! The client library the `join`, `say`, `whisper`, `list` and `fetch`
//! subcommands are built on.
//!
//! [`Session::join`] opens the main connection, joins the room and opens the
//! update connection; the [`Session`] then sends requests (each with a
//! timeout, since the reference server sometimes never answers) and
//! [`Updates`] yields what the server pushes. Downloads ([`Session::download`])
//! use their own connection, so several can run while the chat goes on.
//!
//! [`chat`] is the session behind `join` (its command language, rejoining);
//! [`forward`] the line forwarder behind `say`; [`control`] the shared
//! sessions one-shot commands go through.
//!
//! Every connection is read through [`wire::Decoder`](crate::wire::Decoder):
//! one `recv` is never assumed to be one message.

pub mod chat;
pub mod control;
mod display;
mod download;
mod error;
pub mod forward;
mod listen;
pub mod reconnect;
pub mod retry;
mod space;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

pub(crate) use display::local_file_name;
pub use display::{escape, rate, thousands};
pub use download::{
    DownloadOptions, DownloadReport, PrepareError, Progress, Transport, UdpMode, prepare_targets, resume_mark_path,
    temp_path_for,
};
pub use error::ClientError;
pub use listen::{Filter, Listen, Outcome, Verdict};

use crate::connection::{self, Connection};
use crate::wire::{Confirm, Decoder, Direction, ErrorCode, MAX_FIELD_CHARS, Message, Request, Update, split_text};

/// How long a connect to an announced port is retried: the reference server
/// announces ports before it listens on them ([protocol](crate::protocol) §8).
const ANNOUNCED_PORT_RETRY: Duration = Duration::from_millis(50);

/// How long a server that let the join time out gets to answer the
/// "is this HTTP?" probe (a blank line) before the timeout is reported.
const PROBE_WAIT: Duration = Duration::from_millis(500);

/// A client's framing of `stream` (the shared [`Connection`]).
fn framed(stream: TcpStream) -> Connection {
    Connection::new(stream, Decoder::new(Direction::ToClient))
}

async fn send(conn: &mut Connection, req: Request) -> Result<(), ClientError> {
    conn.write_message(&Message::Request(req)).await.map_err(client_error)
}

/// The next message; `Ok(None)` at a clean end of stream.
async fn recv(conn: &mut Connection) -> Result<Option<Message>, ClientError> {
    conn.read_message(None, None).await.map_err(client_error)
}

fn client_error(e: connection::Error) -> ClientError {
    match e {
        connection::Error::Decode(e) => ClientError::Decode(e),
        connection::Error::Encode(e) => ClientError::Encode(e),
        connection::Error::Io(e) => ClientError::Io(e),
        e => ClientError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, e)),
    }
}

/// What the peer sent first, for a message: at most
/// [`FIRST_BYTES`](connection::FIRST_BYTES) bytes up to the first line end, escaped.
fn first_answer(conn: &Connection) -> String {
    let first = conn.first_bytes();
    let line = first.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    escape(&String::from_utf8_lossy(line)).into_owned()
}

/// `HOST:PORT` with the default port 13337 added to a bare host: `example.org`,
/// `10.0.0.37`, `::1` and `[::1]` get it; `example.org:99` and `[::1]:99` keep
/// theirs. A bare port, `13337` or `:13337`, means `127.0.0.1:13337`.
fn with_default_port(server: &str) -> String {
    if let Ok(port) = server.strip_prefix(':').unwrap_or(server).parse::<u16>() {
        // A bare port (`13337`, `:13337`) is on this machine; getaddrinfo would read `13337` as the address 0.0.52.25.
        return SocketAddr::from(([127, 0, 0, 1], port)).to_string();
    }
    let bare = server.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(server);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return SocketAddr::new(ip, crate::wire::DEFAULT_PORT).to_string();
    }
    match server.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.is_empty() => server.to_string(),
        _ => format!("{server}:{}", crate::wire::DEFAULT_PORT),
    }
}

/// Checks the form of a server address as [`resolve`] takes it (`HOST:PORT`,
/// `HOST`, `PORT`, `[IPV6]:PORT`, a bare IPv6 address): the port, when one is
/// written, is a number from 1 to 65535. The host itself is checked when it
/// is resolved.
pub fn check_server(server: &str) -> Result<(), String> {
    let bad_port = |p: &str| format!("bad port {p:?} in {server:?}: a port is a number from 1 to 65535");
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
    if server.trim().is_empty() {
        return Err("the server address is empty".into());
    }
    if let Some(rest) = server.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((_, "")) => Ok(()),
            Some((_, p)) => match p.strip_prefix(':') {
                Some(p) if port_ok(p) => Ok(()),
                Some(p) => Err(bad_port(p)),
                None => Err(format!("{server:?}: write [IPV6]:PORT")),
            },
            None => Err(format!("{server:?}: the [ is not closed")),
        };
    }
    if server.parse::<std::net::IpAddr>().is_ok() || server.matches(':').count() != 1 {
        return Ok(());
    }
    let (host, port) = server.rsplit_once(':').unwrap_or((server, ""));
    let _ = host;
    if port_ok(port) { Ok(()) } else { Err(bad_port(port)) }
}

/// Resolves `HOST:PORT` (a bare host gets the default port 13337, a bare port the host 127.0.0.1).
pub async fn resolve(server: &str) -> Result<SocketAddr, ClientError> {
    let with_port = with_default_port(server);
    let mut addrs = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|source| ClientError::Resolve { addr: server.to_string(), source })?;
    addrs.next().ok_or_else(|| ClientError::Resolve {
        addr: server.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolves to no address"),
    })
}

/// Connects to `addr`, retrying refused connections until `deadline` passes
/// (for ports the server announces before it listens).
async fn connect_retry(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ClientError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(ClientError::Timeout { what: "connecting to an announced port" }),
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if tokio::time::Instant::now() + ANNOUNCED_PORT_RETRY >= deadline {
                    return Err(ClientError::Connect { addr: addr.to_string(), source: e });
                }
                tokio::time::sleep(ANNOUNCED_PORT_RETRY).await;
            }
            Ok(Err(e)) => return Err(ClientError::Connect { addr: addr.to_string(), source: e }),
        }
    }
}

/// Shuts down the sending side of the update connection, which the client
/// only reads. The FIN it sends first makes its own side, not the server's,
/// wait in TIME_WAIT: the reference server binds the same port again for the
/// next join without `SO_REUSEADDR`, and fails while its side of the previous
/// connection is in TIME_WAIT (lib/protocol.md §8). The server closes the update
/// connection only after `101`, long after this. A failure is ignored: the
/// connection still works for reading.
fn half_close(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
}

/// A joined session: owns the main connection; the update connection feeds
/// the [`Updates`] returned with it. Methods take `&self`, so an `Arc<Session>`
/// can serve a chat and background downloads at once (requests are serialized).
#[derive(Debug)]
pub struct Session {
    main: Mutex<Connection>,
    server: SocketAddr,
    name: String,
    timeout: Duration,
}

/// The stream of updates (`3xx`) from the update connection.
#[derive(Debug)]
pub struct Updates {
    rx: mpsc::UnboundedReceiver<Result<Update, ClientError>>,
}

impl Updates {
    /// The next update; `None` when the server closed the update connection.
    pub async fn next(&mut self) -> Option<Result<Update, ClientError>> {
        self.rx.recv().await
    }

    /// Skips updates until the update connection ends, with the error that
    /// ended it ([`ClientError::Closed`] for a clean close). Cancel safe: in
    /// a `select!` loop, no update is lost that was not meant to be skipped.
    pub async fn closed(&mut self) -> ClientError {
        loop {
            match self.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return e,
                None => return ClientError::Closed,
            }
        }
    }
}

impl Session {
    /// Connects to `server`, joins as `name` and opens the update connection.
    /// Every step is bounded by `timeout`.
    pub async fn join(server: &str, name: &str, timeout: Duration) -> Result<(Session, Updates), ClientError> {
        if !crate::wire::name_ok(name) {
            return Err(ClientError::Refused(ErrorCode::INVALID_NAME));
        }
        let addr = resolve(server).await?;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            // A server that does not even accept is one we cannot connect to (exit 3, with the address).
            Err(_) => {
                let why = format!("the connection was not accepted within {}", humantime::format_duration(timeout));
                let source = std::io::Error::new(std::io::ErrorKind::TimedOut, why);
                return Err(ClientError::Connect { addr: addr.to_string(), source });
            }
            Ok(Err(source)) => return Err(ClientError::Connect { addr: addr.to_string(), source }),
            Ok(Ok(s)) => s,
        };
        let mut main = framed(stream);
        send(&mut main, Request::Join { name: name.to_string() }).await?;
        let port = match response(&mut main, timeout, "the answer to join (the connection was accepted)").await {
            Ok(Confirm::Joined { port, .. }) => port,
            Ok(other) => return Err(unexpected(other)),
            Err(ClientError::Decode(_)) => {
                return Err(ClientError::NotChatServer { addr: addr.to_string(), answer: first_answer(&main) });
            }
            Err(e @ ClientError::Timeout { .. }) => return Err(probe(&mut main, addr, e).await),
            Err(e) => return Err(e),
        };
        let update = connect_retry(SocketAddr::new(addr.ip(), port), timeout).await?;
        half_close(&update);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(read_updates(framed(update), tx));
        Ok((Session { main: Mutex::new(main), server: addr, name: name.to_string(), timeout }, Updates { rx }))
    }

    /// The name this session joined with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends `req` and waits (bounded) for its answer.
    async fn request(&self, req: Request, what: &'static str) -> Result<Confirm, ClientError> {
        let mut main = self.main.lock().await;
        send(&mut main, req).await?;
        response(&mut main, self.timeout, what).await
    }

    /// The other users in the room (`102`).
    pub async fn users(&self) -> Result<Vec<String>, ClientError> {
        match self.request(Request::Users, "the user list").await? {
            Confirm::Users { users } => Ok(users),
            other => Err(unexpected(other)),
        }
    }

    /// The files on offer (`105`).
    pub async fn files(&self) -> Result<Vec<String>, ClientError> {
        match self.request(Request::Files, "the file list").await? {
            Confirm::Files { files } => Ok(files),
            other => Err(unexpected(other)),
        }
    }

    /// A private message to `to` (`103`), split into messages of at most 99
    /// characters. A blank text is [`ClientError::Empty`], never sent. Returns the messages sent, each confirmed by `203`.
    pub async fn whisper(&self, to: &str, text: &str) -> Result<Vec<String>, ClientError> {
        if text.trim().is_empty() {
            return Err(ClientError::Empty);
        }
        let pieces = split_text(text, MAX_FIELD_CHARS);
        for piece in &pieces {
            let req = Request::Whisper { to: to.to_string(), text: piece.clone() };
            match self.request(req, "the whisper confirmation").await? {
                Confirm::WhisperSent => {}
                other => return Err(unexpected(other)),
            }
        }
        Ok(pieces)
    }

    /// A message to everyone else (`104`), split as [`whisper`](Self::whisper).
    /// Returns, per message sent, its text and who received it (`204`).
    pub async fn broadcast(&self, text: &str) -> Result<Vec<(String, Vec<String>)>, ClientError> {
        if text.trim().is_empty() {
            return Err(ClientError::Empty);
        }
        let mut out = Vec::new();
        for piece in split_text(text, MAX_FIELD_CHARS) {
            match self.request(Request::Broadcast { text: piece.clone() }, "the broadcast confirmation").await? {
                Confirm::BroadcastSent { to } => out.push((piece, to)),
                other => return Err(unexpected(other)),
            }
        }
        Ok(out)
    }

    /// Asks for `file` over `transport` (`106`): returns its size and port.
    pub(crate) async fn request_download(&self, file: &str, transport: Transport) -> Result<(u64, u16), ClientError> {
        let req = Request::Download { transport: transport.wire(), file: file.to_string() };
        match self.request(req, "the download answer").await? {
            Confirm::Download { size, port } => Ok((size, port)),
            other => Err(unexpected(other)),
        }
    }

    /// Leaves the room (`101` → `201`) and closes the main connection (the
    /// reference server never closes it).
    pub async fn leave(&self) -> Result<(), ClientError> {
        let r = match self.request(Request::Leave, "the answer to leave").await {
            Ok(Confirm::Left) => Ok(()),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e),
        };
        self.main.lock().await.shutdown().await;
        r
    }
}

/// The join got no answer in time (`timeout`): is this a chat server at
/// all? An HTTP server waits for the end of a request line, so send one (a
/// CR LF, which a chat server ignores between messages, and which cannot
/// spoil a join that has failed anyway) and see if anything that is not the
/// protocol comes back within [`PROBE_WAIT`].
async fn probe(main: &mut Connection, addr: SocketAddr, timeout: ClientError) -> ClientError {
    if main.write_raw(b"\r\n").await.is_err() {
        return timeout;
    }
    match tokio::time::timeout(PROBE_WAIT, recv(main)).await {
        Ok(Err(ClientError::Decode(_))) => {
            ClientError::NotChatServer { addr: addr.to_string(), answer: first_answer(main) }
        }
        _ => timeout,
    }
}

/// Waits for one confirm on the main connection; an error code becomes
/// [`ClientError::Refused`].
async fn response(main: &mut Connection, timeout: Duration, what: &'static str) -> Result<Confirm, ClientError> {
    match tokio::time::timeout(timeout, recv(main)).await {
        Err(_) => Err(ClientError::Timeout { what }),
        Ok(Err(e)) => Err(e),
        Ok(Ok(None)) => Err(ClientError::Closed),
        Ok(Ok(Some(Message::Confirm(c)))) => Ok(c),
        Ok(Ok(Some(Message::Error(code)))) => Err(ClientError::Refused(code)),
        Ok(Ok(Some(m))) => {
            Err(ClientError::Protocol(format!("unexpected message {} on the main connection", m.code())))
        }
    }
}

fn unexpected(c: Confirm) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {}", 200 + u16::from(c.ty())))
}

async fn read_updates(mut conn: Connection, tx: mpsc::UnboundedSender<Result<Update, ClientError>>) {
    loop {
        let item = match recv(&mut conn).await {
            Ok(None) => return,
            Ok(Some(Message::Update(u))) => Ok(u),
            Ok(Some(m)) => {
                Err(ClientError::Protocol(format!("unexpected message {} on the update connection", m.code())))
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if tx.send(item).is_err() {
            return;
        }
    }
}

/// An error and its causes as `error: cause: cause`, leaving out a cause
/// whose text the line already ends with (wrappers that repeat their source).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut at = e.source();
    while let Some(s) = at {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        at = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_with_a_bad_port_are_refused() {
        for good in ["example.org", "example.org:99", "10.0.0.37", "::1", "[::1]", "[::1]:99", "13337", ":99"] {
            assert_eq!(check_server(good), Ok(()), "{good}");
        }
        for bad in ["localhost:abc", "localhost:", "h:0", "h:70000", "[::1]:x", "[::1", ""] {
            assert!(check_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_port_only_for_a_bare_host() {
        for (given, want) in [
            ("example.org", "example.org:13337"),
            ("example.org:99", "example.org:99"),
            ("10.0.0.37", "10.0.0.37:13337"),
            ("10.0.0.37:1", "10.0.0.37:1"),
            ("::1", "[::1]:13337"),
            ("[::1]", "[::1]:13337"),
            ("[::1]:99", "[::1]:99"),
            ("13337", "127.0.0.1:13337"),
            (":99", "127.0.0.1:99"),
        ] {
            assert_eq!(with_default_port(given), want, "{given}");
        }
    }
}
