//! One client's main connection: the request handlers of [protocol](crate::protocol) §3-§5.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Handle;
use super::config::Config;
use super::files;
use super::input::{self, Input};
use super::limits::Unjoined;
use super::logs::{Logs, limited};
use super::ports::{PortGuard, PortPool, Use};
use super::room::{Bytes, Delivery, JoinRefused, Member, Room};
use super::shutdown::{Shutdown, TaskToken};
use super::transfer::{self, Download, UserTransfers};
use crate::connection::Connection;
use crate::text::escape;
use crate::wire::{Confirm, Decoder, Direction, ErrorCode, Limits, Message, Request, Transport, Update, name_ok};

/// How long a sender waits for its update to be written to the target before
/// confirming (`303` before `203`, `304` before `204`); past it the target is
/// marked stalled and later senders do not wait for it.
const DELIVERY_WAIT: Duration = Duration::from_millis(250);

/// Kernel send buffer of a main or update connection, in bytes: it bounds
/// what a client who does not read can pin in the kernel (messages are small).
const SNDBUF: usize = 64 * 1024;

/// Most bytes of answers held back while a client's pipelined requests are
/// handled (see [`Session::send`]).
const PENDING_MAX: usize = 4096;

/// Most requests read ahead while a join waits for its update connection;
/// past it the main connection is only watched again once the join is done.
const BACKLOG: usize = 32;

/// What every connection task shares.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    config: Arc<Config>,
    /// Where downloads run: a runtime of their own, so that a TCP transfer
    /// moving a gigabyte never shares a thread with the chat.
    transfers: tokio::runtime::Handle,
    room: Room,
    pool: PortPool,
    logs: Logs,
    shutdown: Shutdown,
    token: TaskToken,
}

impl Ctx {
    /// What the listener hands every connection task: the server's room
    /// and pool (from its `handle`), its log limiter, the shutdown signal
    /// and a token of the task tracker.
    pub(crate) fn new(
        config: Arc<Config>,
        handle: &Handle,
        transfers: tokio::runtime::Handle,
        logs: Logs,
        shutdown: Shutdown,
        token: TaskToken,
    ) -> Self {
        Ctx { config, transfers, room: handle.room.clone(), pool: handle.pool.clone(), logs, shutdown, token }
    }
}

struct Joined {
    name: String,
    member: Member,
    close: Option<oneshot::Sender<()>>,
    writer: JoinHandle<()>,
}

enum Flow {
    Continue,
    Stop,
}

/// Serves one main connection until it closes, is cut off, or the server
/// stops. `unjoined` holds its place in its address's count of connections
/// that have not joined, until its first join.
pub(crate) async fn run(ctx: Ctx, stream: TcpStream, peer: SocketAddr, unjoined: Unjoined) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SNDBUF);
    let local = stream.local_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let limits = Limits { max_users: ctx.config.max_users.saturating_sub(1), ..Limits::CLASSIC };
    let mut s = Session {
        conn: Connection::new(stream, Decoder::with_limits(Direction::ToServer, limits)),
        ctx,
        peer,
        local,
        joined: None,
        backlog: VecDeque::new(),
        unjoined: Some(unjoined),
        in_flight: Arc::new(()),
        transfers: UserTransfers::default(),
        bad: 0,
        unjoined_since: tokio::time::Instant::now(),
        pending: Vec::new(),
        defer: false,
    };
    s.serve().await;
    let _ = s.flush().await;
    s.leave(false).await;
    s.conn.shutdown().await;
    limited!(s.ctx.logs, peer.ip(), debug!(%peer,), "connection closed");
}

struct Session {
    ctx: Ctx,
    conn: Connection,
    peer: SocketAddr,
    local: IpAddr,
    joined: Option<Joined>,
    /// Requests read while a join waited for its update connection, to be
    /// handled once it is done (at most [`BACKLOG`]).
    backlog: VecDeque<Input>,
    /// Counts this connection against its address's cap until the first join.
    unjoined: Option<Unjoined>,
    /// One clone per transfer in flight (held by its task): the count of
    /// transfers this user has running is `strong_count - 1`.
    in_flight: Arc<()>,
    /// The transfers this user started, ended when they leave.
    transfers: UserTransfers,
    /// Consecutive inputs answered with `4999` or `4TT9`; too many and the
    /// connection is cut off (a client that floods junk).
    bad: u32,
    /// Since when the connection has been without a user: it must join
    /// within `idle_timeout` of this (requests other than joins don't count).
    unjoined_since: tokio::time::Instant,
    /// Answers not written yet (see [`Session::send`]).
    pending: Vec<u8>,
    /// True while handling a whisper or a broadcast, whose answer may wait
    /// for the answers to the requests pipelined behind it.
    defer: bool,
}

impl Session {
    async fn serve(&mut self) {
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            let idle = self.ctx.config.idle_timeout;
            let unjoined = idle.min(self.ctx.config.unjoined_timeout);
            let deadline = self.joined.is_none().then_some(self.unjoined_since + unjoined);
            let kick = self.joined.as_ref().map(|j| j.member.kick.clone());
            let buffered = match self.backlog.pop_front() {
                Some(i) => Some(i),
                None => input::buffered(&mut self.conn),
            };
            let input = match buffered {
                Some(i) => i,
                None => {
                    // Before waiting for input, the answers held back go out.
                    if let Flow::Stop = self.flush().await {
                        return;
                    }
                    tokio::select! {
                    i = input::read(&mut self.conn, deadline, idle) => i,
                    _ = async { match &kick { Some(k) => k.notified().await, None => std::future::pending().await } } => {
                        let why = self.joined.as_ref().map_or("disconnected", |j| j.member.why());
                        limited!(self.ctx.logs, self.ip(), "disconnected" => warn!(user = %self.name(), peer = %self.peer, "disconnected: {why}"));
                        return;
                    }
                    _ = shutdown.recv() => return,
                    }
                }
            };
            let flow = match input {
                Input::Request(r) => self.handle(r).await,
                Input::Malformed(ty, e) => {
                    limited!(self.ctx.logs, self.ip(), debug!(peer = %self.peer, error = %e,), "malformed request");
                    self.refuse(ErrorCode::malformed(ty)).await
                }
                Input::Bad(e) => {
                    limited!(self.ctx.logs, self.ip(), debug!(peer = %self.peer, error = %e,), "unparseable input");
                    self.refuse(ErrorCode::UNPARSEABLE).await
                }
                Input::Idle => {
                    let what = if self.joined.is_some() { "a half-sent message" } else { "no join in time" };
                    limited!(self.ctx.logs, self.ip(), "closed an idle connection" => info!(peer = %self.peer, user = %self.name(), "closed an idle connection: {what}"));
                    return;
                }
                Input::Closed => return,
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    fn ip(&self) -> IpAddr {
        self.peer.ip()
    }

    fn name(&self) -> &str {
        self.joined.as_ref().map_or("", |j| j.name.as_str())
    }

    /// Sends one message, in one write with any answers held back before it.
    /// The answer to a whisper or a broadcast is held back while the client
    /// has more requests buffered (it pipelines, so it reads a stream), and
    /// goes out with the answers to those: the original client, which takes
    /// each read for one message, never pipelines.
    async fn send(&mut self, m: Message) -> Flow {
        if m.encode(&mut self.pending).is_err() {
            return Flow::Stop;
        }
        if self.defer && self.conn.decoder().has_partial() && self.pending.len() < PENDING_MAX {
            return Flow::Continue;
        }
        self.flush().await
    }

    /// Writes the answers held back. At once if the socket takes them whole
    /// (the usual case): no timer, no task switch. Otherwise the rest is
    /// written with a time limit: a client that stops reading its main
    /// connection (so the write cannot finish within `idle_timeout`) is
    /// disconnected.
    async fn flush(&mut self) -> Flow {
        if self.pending.is_empty() {
            return Flow::Continue;
        }
        let bytes = std::mem::take(&mut self.pending);
        let flow = self.write_all(&bytes).await;
        self.pending = bytes;
        self.pending.clear();
        flow
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Flow {
        let sent = match self.conn.try_write(bytes) {
            Ok(n) if n == bytes.len() => return Flow::Continue,
            Ok(n) => n,
            Err(_) => return Flow::Stop,
        };
        let mut shutdown = self.ctx.shutdown.clone();
        tokio::select! {
            r = tokio::time::timeout(self.ctx.config.idle_timeout, self.conn.write_raw(&bytes[sent..])) => match r {
                Ok(Ok(())) => Flow::Continue,
                Ok(Err(_)) => Flow::Stop,
                Err(_) => {
                    limited!(self.ctx.logs, self.ip(), warn!(peer = %self.peer, user = %self.name(),), "disconnected: did not read its responses");
                    Flow::Stop
                }
            },
            _ = shutdown.recv() => Flow::Stop,
        }
    }

    async fn confirm(&mut self, c: Confirm) -> Flow {
        self.send(Message::Confirm(c)).await
    }

    async fn error(&mut self, e: ErrorCode) -> Flow {
        limited!(
            self.ctx.logs,
            self.ip(),
            info!(peer = %self.peer, user = %self.name(), code = format!("{:04}", e.code()),),
            "error sent"
        );
        self.send(Message::Error(e)).await
    }

    /// Answers bad input (`4999`/`4TT9`), or cuts the connection off after
    /// more than `max_bad_input` of them in a row.
    async fn refuse(&mut self, e: ErrorCode) -> Flow {
        self.bad += 1;
        if self.bad > self.ctx.config.max_bad_input {
            limited!(
                self.ctx.logs,
                self.ip(),
                warn!(peer = %self.peer, user = %self.name(), bad = self.bad,),
                "cut off: too much bad input"
            );
            return Flow::Stop;
        }
        self.error(e).await
    }

    async fn handle(&mut self, r: Request) -> Flow {
        let ty = r.ty();
        // Only a request that is allowed now ends a run of bad input.
        if matches!(r, Request::Join { .. }) == self.joined.is_none() {
            self.bad = 0;
        }
        self.defer = matches!(r, Request::Whisper { .. } | Request::Broadcast { .. });
        match (r, self.joined.is_some()) {
            (Request::Join { name }, false) => self.join(name).await,
            (_, false) | (Request::Join { .. }, true) => self.refuse(ErrorCode::malformed(ty)).await,
            (Request::Leave, true) => {
                self.leave(true).await;
                self.unjoined_since = tokio::time::Instant::now();
                self.confirm(Confirm::Left).await
            }
            (Request::Users, true) => {
                let users = self.ctx.room.others(self.name());
                self.confirm(Confirm::Users { users }).await
            }
            (Request::Whisper { to, text }, true) => self.whisper(to, text).await,
            (Request::Broadcast { text }, true) => self.broadcast(text).await,
            (Request::Files, true) => {
                let dir = self.ctx.config.files.clone();
                let files = off_thread(move || dir.as_deref().map(files::list)).await.flatten().unwrap_or_default();
                self.confirm(Confirm::Files { files }).await
            }
            (Request::Download { transport, file }, true) => self.download(transport, file).await,
        }
    }

    async fn join(&mut self, name: String) -> Flow {
        if !name_ok(&name) {
            return self.error(ErrorCode::INVALID_NAME).await;
        }
        let room = self.ctx.room.clone();
        match room.reserve(&name) {
            Err(JoinRefused::Taken) => return self.error(ErrorCode::NAME_TAKEN).await,
            Err(JoinRefused::Full) => return self.error(ErrorCode::SERVER_FULL).await,
            Ok(()) => {}
        }
        let Some((listener, guard)) = self.ctx.pool.bind_tcp(self.local, Use::Update) else {
            room.unreserve(&name);
            limited!(self.ctx.logs, self.ip(), warn!(user = %name,), "no free port for an update connection");
            return self.error(ErrorCode::SERVER_FULL).await;
        };
        let port = guard.port();
        if let Flow::Stop = self.confirm(Confirm::Joined { name: name.clone(), port }).await {
            room.unreserve(&name);
            return Flow::Stop;
        }
        let update = match self.await_update(&name, &listener, port, &room).await {
            Ok(update) => update,
            Err(flow) => return flow,
        };
        drop(listener);
        let _ = update.set_nodelay(true);
        // A small send buffer bounds what a user who does not read can pin in
        // the kernel; past it, its bounded queue fills and it is disconnected.
        let _ = socket2::SockRef::from(&update).set_send_buffer_size(SNDBUF);
        let member = room.enter(&name, update);
        self.unjoined = None;
        let (close_tx, close_rx) = oneshot::channel();
        let writer = tokio::spawn(update_connection(UpdateTask {
            close: close_rx,
            guard,
            member: member.clone(),
            name: name.clone(),
            room: room.clone(),
            shutdown: self.ctx.shutdown.clone(),
            _token: self.ctx.token.clone(),
        }));
        limited!(self.ctx.logs, self.ip(), info!(user = %name, peer = %self.peer, port, users = room.len(),), "joined");
        let bytes = encode(Message::Update(Update::Joined { name: name.clone() }));
        for other in room.others(&name) {
            room.deliver(&other, &bytes, false);
        }
        self.joined = Some(Joined { name, member, close: Some(close_tx), writer });
        Flow::Continue
    }

    /// Waits for the update connection of the join of `name`, announced on
    /// `listener` (`port`), from the client's own address. `Err` is the
    /// session's flow after the join was rolled back (no connection in
    /// time, a `101` or a close meanwhile, the server shutting down).
    async fn await_update(
        &mut self,
        name: &str,
        listener: &TcpListener,
        port: u16,
        room: &Room,
    ) -> Result<TcpStream, Flow> {
        // Requests sent meanwhile wait for the join (the reference client
        // sends `102` right after `200`), but the main connection is watched:
        // a `101` or a close rolls the join back at once.
        let deadline = tokio::time::Instant::now() + self.ctx.config.join_timeout;
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            let watch_main = self.backlog.len() < BACKLOG;
            let main = async {
                if watch_main {
                    input::read(&mut self.conn, None, self.ctx.config.join_timeout).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                r = tokio::time::timeout_at(deadline, listener.accept()) => match r {
                    Ok(Ok((s, from))) if from.ip() == self.peer.ip() => return Ok(s),
                    Ok(Ok((_, from))) => limited!(self.ctx.logs, from.ip(), warn!(user = %name, %from, port,), "refused update connection from another address"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "update accept failed"),
                    Err(_) => {
                        room.unreserve(name);
                        limited!(self.ctx.logs, self.ip(), warn!(user = %name, port,), "join rolled back: no update connection in time");
                        return Err(Flow::Continue);
                    }
                },
                r = main => match r {
                    Input::Request(Request::Leave) => {
                        room.unreserve(name);
                        limited!(self.ctx.logs, self.ip(), info!(user = %name, peer = %self.peer,), "join rolled back: 101 before the update connection");
                        self.unjoined_since = tokio::time::Instant::now();
                        return Err(self.confirm(Confirm::Left).await);
                    }
                    Input::Closed => {
                        room.unreserve(name);
                        limited!(self.ctx.logs, self.ip(), info!(user = %name, peer = %self.peer,), "join rolled back: the client went away");
                        return Err(Flow::Stop);
                    }
                    input => self.backlog.push_back(input),
                },
                _ = shutdown.recv() => {
                    room.unreserve(name);
                    return Err(Flow::Stop);
                }
            }
        }
    }

    /// Leaves the room if joined: end the user's transfers (their ports are
    /// free before the `201`), close the update connection (FIN before
    /// `201`), tell the others.
    async fn leave(&mut self, asked: bool) {
        let Some(mut j) = self.joined.take() else { return };
        // Out of the room first: nobody is told of, or answered for, a user
        // who is leaving while their transfers end.
        let room = self.ctx.room.clone();
        room.remove(&j.name, &j.member);
        self.transfers.end().await;
        if let Some(c) = j.close.take() {
            let _ = c.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut j.writer).await;
        let bytes = encode(Message::Update(Update::Left { name: j.name.clone() }));
        for other in room.others(&j.name) {
            room.deliver(&other, &bytes, false);
        }
        limited!(
            self.ctx.logs,
            self.ip(),
            info!(user = %j.name, peer = %self.peer, how = if asked { "left" } else { "dropped" },),
            "left"
        );
    }

    async fn whisper(&mut self, to: String, text: String) -> Flow {
        let room = self.ctx.room.clone();
        let from = self.name().to_string();
        let bytes = encode(Message::Update(Update::Whisper { from, text }));
        match room.deliver(&to, &bytes, true) {
            Delivery::Dropped => self.error(ErrorCode::NO_SUCH_USER).await,
            Delivery::Written => self.confirm(Confirm::WhisperSent).await,
            Delivery::Queued(ack) => {
                if let Flow::Stop = self.flush().await {
                    return Flow::Stop;
                }
                if wait_written(&room, vec![(to, ack)]).await.is_empty() {
                    return self.error(ErrorCode::NO_SUCH_USER).await;
                }
                self.confirm(Confirm::WhisperSent).await
            }
        }
    }

    async fn broadcast(&mut self, text: String) -> Flow {
        let room = self.ctx.room.clone();
        let from = self.name().to_string();
        let bytes = encode(Message::Update(Update::Broadcast { from: from.clone(), text }));
        let mut reached = Vec::new();
        for other in room.others(&from) {
            match room.deliver(&other, &bytes, true) {
                Delivery::Written => reached.push((other, None)),
                Delivery::Queued(ack) => reached.push((other, ack)),
                Delivery::Dropped => {}
            }
        }
        if reached.iter().any(|(_, ack)| ack.is_some())
            && let Flow::Stop = self.flush().await
        {
            return Flow::Stop;
        }
        let to = wait_written(&room, reached).await;
        self.confirm(Confirm::BroadcastSent { to }).await
    }

    async fn download(&mut self, transport: Transport, file: String) -> Flow {
        if let Transport::Other(_) = transport {
            return self.error(ErrorCode::UNKNOWN_TRANSPORT).await;
        }
        let dir = self.ctx.config.files.clone();
        let name = file.clone();
        let Some(opened) = off_thread(move || dir.as_deref().and_then(|d| files::open(d, &name))).await.flatten()
        else {
            return self.error(ErrorCode::NO_SUCH_FILE).await;
        };
        if Arc::strong_count(&self.in_flight) > self.ctx.config.max_transfers_per_user {
            return self.error(ErrorCode::NO_TRANSFER_PORT).await;
        }
        let bound = match transport {
            Transport::Tcp => {
                self.ctx.pool.bind_tcp(self.local, Use::Transfer).map(|(l, g)| (l.into_std().map(Socket::Tcp), g))
            }
            _ => self.ctx.pool.bind_udp(self.local).map(|(s, g)| (s.into_std().map(Socket::Udp), g)),
        };
        let Some((socket, d)) = bound else {
            return self.error(ErrorCode::NO_TRANSFER_PORT).await;
        };
        let port = d.port();
        let size = opened.stamp.size;
        let dl = Download {
            name: escape(&file).into_owned(),
            file: opened.file,
            size,
            stamp: opened.stamp,
            snapshot: opened.snapshot,
            peer: self.peer.ip(),
            user: self.name().to_string(),
            wait: self.ctx.config.join_timeout,
            stall: self.ctx.config.idle_timeout,
            guard: d,
            fast: self.ctx.config.fast.clone(),
            trace: self.ctx.config.trace.clone(),
            logs: self.ctx.logs.clone(),
            _in_flight: self.in_flight.clone(),
            leaving: self.transfers.leaving(),
        };
        let token = self.ctx.token.clone();
        let h = self.ctx.transfers.spawn(serve_download(socket, dl, self.ctx.shutdown.clone()));
        self.transfers.track(tokio::spawn(async move {
            let _ = h.await;
            drop(token);
        }));
        self.confirm(Confirm::Download { size, port }).await
    }
}

fn encode(m: Message) -> Bytes {
    // Names and texts come from the decoder, so they always fit their fields.
    m.to_bytes().unwrap_or_default().into()
}

/// Waits (bounded) until the updates were written; a target that takes too
/// long is marked stalled so that later senders do not wait on it. Returns
/// the targets reached, in order: all but those whose write failed or whose
/// update connection ended first.
async fn wait_written(room: &Room, acks: Vec<(String, Option<oneshot::Receiver<()>>)>) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
    let mut reached = Vec::with_capacity(acks.len());
    for (name, ack) in acks {
        let Some(ack) = ack else {
            reached.push(name);
            continue;
        };
        match tokio::time::timeout_at(deadline, ack).await {
            Ok(Ok(())) => reached.push(name),
            Ok(Err(_)) => {} // not written: the update connection is gone
            Err(_) => {
                if let Some(m) = room.member(&name) {
                    m.stalled.store(true, Ordering::Relaxed);
                }
                reached.push(name);
            }
        }
    }
    reached
}

/// What one user's update connection task owns.
struct UpdateTask {
    close: oneshot::Receiver<()>,
    /// The update port, returned when the task ends.
    guard: PortGuard,
    member: Member,
    name: String,
    room: Room,
    shutdown: Shutdown,
    _token: TaskToken,
}

/// Serves one user's update connection until told to close, the user is
/// disconnected, or the server stops. Senders write updates directly while
/// nothing is queued (see [`Room`]); this task writes what had to queue, one
/// message per write, and reads the connection although nothing is expected
/// on it. An orderly half-close by the client is legal and changes nothing;
/// a reset, a read error or a failed write ends the user's session as a
/// `101` would (taken out of the room at once, so that no `203`/`204` names
/// it).
async fn update_connection(mut t: UpdateTask) {
    let out = t.member.out.clone();
    let broken = until_broken(out.stream());
    tokio::pin!(broken);
    let gone = loop {
        tokio::select! {
            biased;
            _ = &mut t.close => break None,
            _ = t.shutdown.recv() => break None,
            _ = &mut broken => break Some("its update connection was reset"),
            _ = out.queued() => {}
        };
        tokio::select! {
            r = out.drain() => if r.is_err() { break Some("an update could not be written") },
            _ = &mut t.close => break None,
            _ = t.shutdown.recv() => break None,
            _ = &mut broken => break Some("its update connection was reset"),
        }
        t.member.stalled.store(false, Ordering::Relaxed);
    };
    if let Some(why) = gone {
        t.room.remove(&t.name, &t.member);
        t.member.end(why);
    }
    let _ = socket2::SockRef::from(out.stream()).shutdown(std::net::Shutdown::Write);
    drop(t.guard);
}

/// Completes when the update connection breaks: a reset or read error, also
/// after an orderly half-close (then an error on the socket, e.g. the reset
/// that answers a write to a client that closed its socket entirely). Input
/// is read and ignored: nothing is expected on this connection.
async fn until_broken(stream: &TcpStream) {
    let mut buf = [0u8; 512];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    match stream.ready(Interest::ERROR).await {
        Ok(r) if !r.is_error() => std::future::pending().await,
        _ => {}
    }
}

/// A download's socket: bound by the chat runtime from the pool, and handed
/// over as a std socket, since a socket belongs to the reactor it was
/// registered with.
enum Socket {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// Registers the download's socket with the transfer runtime it runs on and
/// serves the download.
async fn serve_download(socket: std::io::Result<Socket>, d: Download, shutdown: Shutdown) {
    let moved = match socket {
        Ok(Socket::Tcp(l)) => match tokio::net::TcpListener::from_std(l) {
            Ok(l) => return transfer::tcp(d, l, shutdown).await,
            Err(e) => e,
        },
        Ok(Socket::Udp(s)) => match tokio::net::UdpSocket::from_std(s) {
            Ok(s) => return transfer::udp(d, s, shutdown).await,
            Err(e) => e,
        },
        Err(e) => e,
    };
    tracing::warn!(error = %moved, "download abandoned: cannot move its socket");
}

/// Runs a file-system call (a listing, an open that may clone a large file)
/// on tokio's blocking pool, so a slow disk never stalls the chat thread that
/// every session shares. `None` if the call panicked.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}
