//! Room server benchmark: messages per second and latency for whispers and
//! broadcasts with 10 users, joins per second, and the server's RSS during a
//! 20,000-message storm while one user never reads.
//!
//! Run: `cargo bench --bench server` (release build). Each scenario runs
//! against a fresh `chatctl serve` child on loopback (`--listen 127.0.0.1:0
//! --ports 0-64`); the clients are raw tokio sockets speaking `chatctl::wire`.
//! `SERVER_BENCH_SECS` sets the length of each timed scenario (default 3).
//!
//! Latency is measured from just before the request is written on the
//! sender's main connection to the moment the update is decoded on the
//! target's update connection (the send time travels in the message text).
//! `window` is how many requests each user keeps outstanding: 1 is a
//! closed loop (latency without queueing), 32 loads the server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatctl::wire::{Confirm, Decoder, Direction, Message, Update};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

mod floor;

const USERS: usize = 10;

/// A `chatctl serve` child (or the floor server) and the address it
/// listens on; the child is killed when this is dropped.
struct ServerProc {
    child: Child,
    addr: SocketAddr,
}

impl ServerProc {
    fn start() -> ServerProc {
        ServerProc::start_with(&["--ports", "0-64"])
    }

    /// A server with `extra` arguments (`--ports` among them).
    fn start_with(extra: &[&str]) -> ServerProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatctl"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start chatctl serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("server exited before listening").unwrap();
            // Plain lines (a warning about the flags) come before the JSON log.
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if let Some(a) = v["fields"]["addr"].as_str() {
                break a.parse().unwrap();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProc { child, addr }
    }

    /// The floor server ([`floor`]) instead: this bench run as a child.
    fn floor() -> ServerProc {
        let mut child = Command::new(std::env::current_exe().expect("the bench's own path"))
            .env("SERVER_BENCH_FLOOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the floor server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("the floor server's address");
        let addr = line.trim().parse().expect("the floor server prints its address");
        ServerProc { child, addr }
    }

    /// Resident set size of the server process, in KiB.
    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

/// Resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) process `pid` has used, in seconds, to the
/// nanosecond: the process's CPU-time clock (`clock_getcpuclockid`), which
/// counts every thread, also those that ended. /proc's user and system
/// times come in 10 ms ticks, too coarse for a few seconds of a server that
/// is idle most of the time.
fn cpu_secs(pid: u32) -> f64 {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid place for the clock id.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return 0.0;
    }
    // SAFETY: an all-zero timespec is valid; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid timespec to write.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Clock ticks (10 ms) process `pid` has spent in user space and in the
/// kernel: only their proportion is used, to split [`cpu_secs`].
fn cpu_ticks(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11), ticks(12))
}

/// Where the load generator and the server under test run, the same for
/// both servers (`SERVER_BENCH_PLACEMENT`). Left free, the scheduler places
/// each server as it likes, and where it puts a server relative to the
/// clients that wake it changes that server's CPU per message by up to
/// 1.8× on a 2-core machine (a wake-up across cores costs an
/// inter-processor interrupt; on one core it does not): `shared` and
/// `apart` fix it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Placement {
    /// Wherever the scheduler puts them.
    Free,
    /// Load generator and server on CPU 0.
    Shared,
    /// Load generator on CPU 0, server on CPU 1.
    Apart,
}

impl Placement {
    fn from_env() -> Placement {
        match std::env::var("SERVER_BENCH_PLACEMENT").as_deref() {
            Ok("shared") => Placement::Shared,
            Ok("apart") => Placement::Apart,
            _ => Placement::Free,
        }
    }

    /// The CPUs of the load generator and of the server, if fixed.
    fn cpus(self) -> Option<(usize, usize)> {
        match self {
            Placement::Free => None,
            Placement::Shared => Some((0, 0)),
            Placement::Apart => Some((0, 1)),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Placement::Free => "placed by the scheduler",
            Placement::Shared => "load generator and server pinned to CPU 0",
            Placement::Apart => "load generator pinned to CPU 0, server to CPU 1",
        }
    }
}

/// Pins every thread of process `pid` to `cpu`.
fn pin(pid: u32, cpu: usize) -> std::io::Result<()> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<libc::pid_t>().ok()) else { continue };
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
        // inside it (cpu < CPU_SETSIZE, checked by the caller's CPU count).
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            set
        };
        // SAFETY: `set` is a valid cpu_set_t of the size passed.
        if unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Voluntary and involuntary context switches of process `pid` (all threads).
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reader {
    rd: OwnedReadHalf,
    d: Decoder,
    buf: Vec<u8>,
}

impl Reader {
    fn new(rd: OwnedReadHalf) -> Self {
        Reader { rd, d: Decoder::new(Direction::ToClient), buf: vec![0; 65536] }
    }
    async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.d.next_message().expect("bad message from the server") {
                return Some(m);
            }
            let n = self.rd.read(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.d.feed(&self.buf[..n]);
        }
    }
}

struct User {
    main_rd: Reader,
    main_wr: OwnedWriteHalf,
    upd: Option<Reader>,
}

async fn join(addr: SocketAddr, name: &str, upd_rcvbuf: Option<u32>) -> User {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = Reader::new(rd);
    wr.write_all(format!("100{:02}{name}", name.chars().count()).as_bytes()).await.unwrap();
    let Some(Message::Confirm(Confirm::Joined { port, .. })) = rd.recv().await else { panic!("join refused") };
    let sock = TcpSocket::new_v4().unwrap();
    if let Some(b) = upd_rcvbuf {
        sock.set_recv_buffer_size(b).unwrap();
    }
    let upd = sock.connect(SocketAddr::new(addr.ip(), port)).await.unwrap();
    // The join completes once the server saw the update connection: a 102
    // is answered only then.
    wr.write_all(b"102").await.unwrap();
    let Some(Message::Confirm(Confirm::Users { .. })) = rd.recv().await else { panic!("no 202") };
    User { main_rd: rd, main_wr: wr, upd: Some(Reader::new(upd.into_split().0)) }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Row {
    scenario: String,
    sent: u64,
    delivered: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// 10 users; each keeps `window` whispers (to the next user) or broadcasts
/// outstanding for `secs`.
async fn chat(broadcast: bool, window: usize, secs: f64) -> Row {
    let srv = ServerProc::start();
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(join(srv.addr, &format!("U{i}"), None).await);
    }
    // Drain the 300s each user got while the others joined.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (i, mut u) in users.into_iter().enumerate() {
        let mut upd = u.upd.take().unwrap();
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Some(m) = upd.recv().await {
                let text = match m {
                    Message::Update(Update::Whisper { text, .. } | Update::Broadcast { text, .. }) => text,
                    _ => continue,
                };
                let now = base.elapsed().as_micros() as u64;
                if let Ok(t) = text.parse::<u64>() {
                    lat.push(now.saturating_sub(t));
                }
            }
            lat
        }));
        let (stop, sent) = (stop.clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            let target = format!("U{}", (i + 1) % USERS);
            let mut outstanding = 0;
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                if !stopping && outstanding < window {
                    let text = base.elapsed().as_micros().to_string();
                    let msg = if broadcast {
                        format!("104{:02}{text}", text.len())
                    } else {
                        format!("103{:02}{target}{:02}{text}", target.len(), text.len())
                    };
                    u.main_wr.write_all(msg.as_bytes()).await.unwrap();
                    outstanding += 1;
                    continue;
                }
                if outstanding == 0 {
                    break;
                }
                match u.main_rd.recv().await {
                    Some(Message::Confirm(Confirm::WhisperSent | Confirm::BroadcastSent { .. })) => {
                        outstanding -= 1;
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    m => panic!("unexpected {m:?}"),
                }
            }
            u
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut users = Vec::new();
    for s in senders {
        users.push(s.await.unwrap());
    }
    let elapsed = base.elapsed().as_secs_f64();
    // Closing the main connections ends the update connections (and readers).
    drop(users);
    let mut lat = Vec::new();
    for r in readers {
        lat.extend(r.await.unwrap());
    }
    lat.sort_unstable();
    let kind = if broadcast { "broadcast" } else { "whisper" };
    Row {
        scenario: format!("{kind}, window {window}"),
        sent: sent.load(Ordering::Relaxed),
        delivered: lat.len() as u64,
        secs: elapsed,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
    }
}

/// `workers` clients each join, then leave, as fast as they can.
async fn joins(workers: usize, secs: f64) -> (u64, f64, f64, f64) {
    let srv = ServerProc::start();
    let addr = srv.addr;
    let base = Instant::now();
    let deadline = base + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..workers {
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut u = join(addr, &format!("J{w}"), None).await;
                times.push(t.elapsed().as_micros() as u64);
                u.main_wr.write_all(b"101").await.unwrap();
                let Some(Message::Confirm(Confirm::Left)) = u.main_rd.recv().await else { panic!("no 201") };
            }
            times
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await.unwrap());
    }
    let elapsed = base.elapsed().as_secs_f64();
    times.sort_unstable();
    (times.len() as u64, elapsed, percentile(&times, 0.5), percentile(&times, 0.99))
}

/// 20,000 broadcasts (99 characters each, 100 per write) from one user, one
/// user reading, one never reading. Returns (RSS before, peak, after, secs).
async fn storm() -> (u64, u64, u64, f64, bool) {
    let srv = ServerProc::start();
    let mut slow = join(srv.addr, "SLOW", Some(4096)).await;
    let _slow_upd = slow.upd.take();
    let mut a = join(srv.addr, "AL", None).await;
    let mut b = join(srv.addr, "BO", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = srv.rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let pid = srv.child.id();
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut upd = b.upd.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < 20_000 {
            match upd.recv().await {
                Some(Message::Update(Update::Broadcast { .. })) => n += 1,
                Some(_) => {}
                None => break,
            }
        }
        n
    });
    // Kept open (unread) to the end: a reset update connection ends the session.
    let _a_upd = a.upd.take();
    let msg = format!("10499{}", "x".repeat(99)).repeat(100);
    let started = Instant::now();
    for _ in 0..200 {
        a.main_wr.write_all(msg.as_bytes()).await.unwrap();
        for _ in 0..100 {
            match a.main_rd.recv().await {
                Some(Message::Confirm(Confirm::BroadcastSent { .. })) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
    }
    let got = reader.await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    b.main_wr.write_all(b"102").await.unwrap();
    let slow_gone = matches!(b.main_rd.recv().await, Some(Message::Confirm(Confirm::Users { users })) if !users.contains(&"SLOW".to_string()));
    assert_eq!(got, 20_000, "BO did not get every broadcast");
    let after = srv.rss_kib();
    drop(slow);
    (before, peak.load(Ordering::Relaxed), after, secs, slow_gone)
}

/// A room of `n` users: how long they take to join (`JOIN_PARALLEL` at a
/// time), then one of them broadcasts `rate` messages per second for `secs`
/// to the other `n - 1`, and one more join is refused with `4003`.
async fn room(n: usize, rate: f64, secs: f64) {
    const JOIN_PARALLEL: usize = 50;
    let ports = format!("0-{}", n + 16);
    let max = n.to_string();
    // The users all come from one address here: past the per-address cap
    // on connections that have not joined yet, a connection is reset.
    let srv = ServerProc::start_with(&["--ports", &ports, "--max-users", &max, "--max-unjoined-per-host", "64"]);
    let addr = srv.addr;
    let rss_empty = srv.rss_kib();
    let started = Instant::now();
    let mut users = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(JOIN_PARALLEL) {
        let joins: Vec<_> =
            chunk.iter().map(|&i| tokio::spawn(async move { join(addr, &format!("R{i:04}"), None).await })).collect();
        for j in joins {
            users.push(j.await.unwrap());
        }
    }
    let joined = started.elapsed().as_secs_f64();
    // The join notices of the others: read and dropped before timing.
    let base = Instant::now();
    let mut readers = Vec::new();
    let mut sender = users.remove(0);
    // Kept open (unread): a reset update connection ends the session.
    let _sender_upd = sender.upd.take();
    for mut u in users.drain(..) {
        let mut upd = u.upd.take().unwrap();
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Some(m) = upd.recv().await {
                if let Message::Update(Update::Broadcast { text, .. }) = m
                    && let Ok(t) = text.parse::<u64>()
                {
                    lat.push((base.elapsed().as_micros() as u64).saturating_sub(t));
                }
            }
            drop(u);
            lat
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = cpu_secs(srv.child.id());
    let cs0 = context_switches(srv.child.id());
    let total = (rate * secs) as u64;
    let t0 = Instant::now();
    for k in 0..total {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let text = base.elapsed().as_micros().to_string();
        sender.main_wr.write_all(format!("104{:02}{text}", text.len()).as_bytes()).await.unwrap();
        match sender.main_rd.recv().await {
            Some(Message::Confirm(Confirm::BroadcastSent { .. })) => {}
            m => panic!("unexpected {m:?}"),
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = cpu_secs(srv.child.id()) - cpu0;
    let switches = context_switches(srv.child.id()) - cs0;
    let rss = srv.rss_kib();
    // One more: the room is full.
    let s = TcpStream::connect(addr).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = Reader::new(rd);
    let t = Instant::now();
    wr.write_all(b"10005EXTRA").await.unwrap();
    let full = rd.recv().await;
    let refused_in = t.elapsed().as_secs_f64() * 1000.0;
    drop(sender);
    drop(srv);
    let mut lat = Vec::new();
    for r in readers {
        lat.extend(r.await.unwrap());
    }
    lat.sort_unstable();
    let expected = total * (n as u64 - 1);
    println!(
        "room of {n}: joined in {joined:.2} s; {total} broadcasts at {rate}/s: {} of {expected} delivered ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "  server CPU {:.1} us and {:.4} context switches per delivered message; RSS {} KiB empty, {} KiB with {n} users; the next join: {:?} in {refused_in:.1} ms",
        cpu * 1e6 / lat.len().max(1) as f64,
        switches as f64 / lat.len().max(1) as f64,
        rss_empty,
        rss,
        match full {
            Some(Message::Error(e)) => format!("{:04}", e.code()),
            other => format!("{other:?}"),
        }
    );
}

/// Which server [`paced`] drives: `chatctl serve` (the chat protocol) or
/// ngircd (IRC, the server a user could pick instead).
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Chatctl,
    Ngircd,
}

/// An ngircd child and its configuration directory; the child is killed
/// when this is dropped.
struct Ngircd {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ngircd child on a free loopback port with penalties off (so it does
/// not throttle the load), or `None` when ngircd is not installed or does
/// not listen within 10 s.
fn ngircd() -> Option<Ngircd> {
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let conf = dir.path().join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\nName = bench.local\nListen = 127.0.0.1\nPorts = {port}\nPidFile = {}\nMotdPhrase = bench\n\
             [Limits]\nMaxConnections = 0\nMaxConnectionsIP = 0\nMaxJoins = 0\nMaxPenaltyTime = 0\nPingTimeout = 600\nPongTimeout = 600\n\
             [Options]\nDNS = no\nIdent = no\nPAM = no\n",
            dir.path().join("pid").display()
        ),
    )
    .ok()?;
    let child = Command::new("ngircd")
        .args(["-n", "-f"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let irc = Ngircd { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(irc.addr).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(irc)
}

/// One IRC user: registered, in `#room` when `room`; returns its reader
/// and writer.
async fn irc_user(addr: SocketAddr, name: &str, room: bool) -> (OwnedReadHalf, OwnedWriteHalf) {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(format!("NICK {name}\r\nUSER {name} 0 * :{name}\r\n").as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0; 4096];
    let until = |want: &'static [u8]| {
        let want = want.to_vec();
        move |seen: &[u8]| seen.windows(want.len()).any(|w| w == want)
    };
    let registered = until(b" 001 ");
    while !registered(&seen) {
        let n = rd.read(&mut buf).await.unwrap();
        assert!(n > 0, "ngircd closed the connection");
        seen.extend_from_slice(&buf[..n]);
    }
    if room {
        wr.write_all(b"JOIN #room\r\n").await.unwrap();
        let joined = until(b" 366 ");
        while !joined(&seen) {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "ngircd closed the connection");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    (rd, wr)
}

/// Counts delivered messages of one reader and their latencies (the send
/// time, in µs since `base`, is the text after the last `t`).
async fn read_latencies(mut rd: OwnedReadHalf, base: Instant, irc: bool) -> Vec<u64> {
    let mut lat = Vec::new();
    if irc {
        let mut pending = Vec::new();
        let mut buf = vec![0; 65536];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = pending.drain(..i + 2).collect();
                let line = String::from_utf8_lossy(&line);
                if line.contains(" PRIVMSG ")
                    && let Some(t) = line.trim_end().rsplit(":t").next().and_then(|t| t.parse::<u64>().ok())
                {
                    lat.push((base.elapsed().as_micros() as u64).saturating_sub(t));
                }
            }
        }
    } else {
        let mut r = Reader::new(rd);
        while let Some(m) = r.recv().await {
            if let Message::Update(Update::Whisper { text, .. } | Update::Broadcast { text, .. }) = m
                && let Ok(t) = text.trim_start_matches('t').parse::<u64>()
            {
                lat.push((base.elapsed().as_micros() as u64).saturating_sub(t));
            }
        }
    }
    lat
}

/// Drives `load` against the server `pid` at `addr`: each user sends to
/// the next user (whispers, PRIVMSG to a nick), or with `broadcast` to
/// everyone (`104`, PRIVMSG to `#room`). Requests are written without
/// waiting for their answers (as a client that pipelines); answers are read
/// and dropped. The server is pinned as `load.placement` says once its
/// users have joined.
async fn paced(peer: Peer, pid: u32, addr: SocketAddr, load: Load) -> Paced {
    let Load { users, rate, secs, broadcast, placement } = load;
    let base = Instant::now();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    let mut drains = Vec::new();
    for i in 0..users {
        let name = format!("u{i:03}");
        match peer {
            Peer::Chatctl => {
                let mut u = join(addr, &name, None).await;
                let upd = u.upd.take().unwrap();
                readers.push(tokio::spawn(async move { read_latencies(upd.rd, base, false).await }));
                let mut main = u.main_rd;
                drains.push(tokio::spawn(async move { while main.recv().await.is_some() {} }));
                writers.push(u.main_wr);
            }
            Peer::Ngircd => {
                let (rd, wr) = irc_user(addr, &name, broadcast).await;
                readers.push(tokio::spawn(async move { read_latencies(rd, base, true).await }));
                writers.push(wr);
            }
        }
    }
    if let Some((_, cpu)) = placement.cpus() {
        // Now that every thread of the server exists.
        pin(pid, cpu).expect("cannot pin the server");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = cpu_secs(pid);
    let (user0, sys0) = cpu_ticks(pid);
    let switches0 = context_switches(pid);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        let due = t0 + Duration::from_secs_f64(sent as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let i = sent as usize % users;
        let to = format!("u{:03}", (i + 1) % users);
        let text = format!("t{}", base.elapsed().as_micros());
        let line = match (peer, broadcast) {
            (Peer::Chatctl, false) => format!("103{:02}{to}{:02}{text}", to.len(), text.len()),
            (Peer::Chatctl, true) => format!("104{:02}{text}", text.len()),
            (Peer::Ngircd, false) => format!("PRIVMSG {to} :{text}\r\n"),
            (Peer::Ngircd, true) => format!("PRIVMSG #room :{text}\r\n"),
        };
        writers[i].write_all(line.as_bytes()).await.unwrap();
        sent += 1;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = cpu_secs(pid) - cpu0;
    let (user1, sys1) = cpu_ticks(pid);
    // The precise total, split in the proportion the ticks give.
    let (user, sys) = (user1 - user0, sys1 - sys0);
    let user_share = if user + sys > 0.0 { user / (user + sys) } else { 0.0 };
    let switches = context_switches(pid) - switches0;
    let rss_kib = rss_kib(pid);
    drop(writers);
    let mut lat = Vec::new();
    // Closing the writers ends each user's session, and so its reader.
    for r in readers {
        if let Ok(Ok(l)) = tokio::time::timeout(Duration::from_secs(5), r).await {
            lat.extend(l);
        }
    }
    for d in drains {
        d.abort();
    }
    lat.sort_unstable();
    let delivered = lat.len().max(1) as f64;
    Paced {
        delivered: lat.len(),
        sent,
        p99_ms: percentile(&lat, 0.99),
        user_us: cpu * user_share * 1e6 / delivered,
        sys_us: cpu * (1.0 - user_share) * 1e6 / delivered,
        switches: switches as f64 / delivered,
        rss_kib,
    }
}

impl Paced {
    /// Server CPU per delivered message.
    fn cpu_us(&self) -> f64 {
        self.user_us + self.sys_us
    }
}

/// One row's load: `users` users sending `rate` messages per second in all
/// for `secs`, whispers or broadcasts, with the server placed by `placement`.
#[derive(Clone, Copy)]
struct Load {
    users: usize,
    rate: f64,
    secs: f64,
    broadcast: bool,
    placement: Placement,
}

/// What one paced run measured of a server.
struct Paced {
    delivered: usize,
    /// Requests sent (each broadcast is delivered to every other user).
    sent: u64,
    p99_ms: f64,
    /// Server CPU per delivered message in user space and in the kernel.
    user_us: f64,
    sys_us: f64,
    /// Server context switches per delivered message.
    switches: f64,
    /// Server resident set size at the end of the run.
    rss_kib: u64,
}

/// The room server against ngircd on the same workloads, server CPU per
/// delivered message from its CPU clock (the clients' own cost does not
/// count), and the floor of this protocol ([`floor`]) under the same load.
async fn against_ngircd(secs: f64) {
    let rows: [(&str, usize, f64, bool); 3] = [
        ("10 users whispering, 2,000/s", 10, 2000.0, false),
        ("10 users whispering, 8,000/s", 10, 8000.0, false),
        ("100 users, 300 broadcasts/s", 100, 300.0, true),
    ];
    if ngircd().is_none() {
        println!("skipped: ngircd is not installed (apt-get install ngircd)");
        return;
    }
    let placement = Placement::from_env();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some((me, server)) = placement.cpus() {
        if me.max(server) >= cpus {
            println!("skipped: {placement:?} placement needs {} CPUs, this machine has {cpus}", me.max(server) + 1);
            return;
        }
        pin(std::process::id(), me).expect("cannot pin the load generator");
    }
    println!(
        "server CPU per delivered message (user + kernel), {secs} s per row, {}\n(chatctl serve against ngircd, penalties off; the floor is benches/floor.rs, the protocol's work alone)",
        placement.describe()
    );
    println!(
        "{:<30} {:>22} {:>22} {:>22} {:>7} {:>7} {:>20} {:>18} {:>16}",
        "workload",
        "chatctl",
        "ngircd",
        "floor",
        "ratio",
        "floor/n",
        "p99 chatctl / ngircd",
        "ctx sw/msg c / n",
        "RSS c / n"
    );
    for (what, users, rate, broadcast) in rows {
        let max = users.to_string();
        let ports = format!("0-{}", users + 16);
        let load = Load { users, rate, secs, broadcast, placement };
        let srv = ServerProc::start_with(&["--ports", &ports, "--max-users", &max, "--max-unjoined-per-host", "128"]);
        let c = paced(Peer::Chatctl, srv.child.id(), srv.addr, load).await;
        drop(srv);
        let irc = ngircd().expect("ngircd started once already");
        let n = paced(Peer::Ngircd, irc.child.id(), irc.addr, load).await;
        drop(irc);
        let floor = ServerProc::floor();
        let f = paced(Peer::Chatctl, floor.child.id(), floor.addr, load).await;
        drop(floor);
        let fanout = if broadcast { users as u64 - 1 } else { 1 };
        let cpu = |p: &Paced| format!("{:>5.1} ({:>4.1} + {:>4.1}) µs", p.cpu_us(), p.user_us, p.sys_us);
        println!(
            "{what:<30} {:>22} {:>22} {:>22} {:>6.2}× {:>6.2}× {:>9.2} / {:.2} ms {:>8.2} / {:.2} {:>6.1} / {:.1} MB   (delivered {}/{}, {}/{} and {}/{})",
            cpu(&c),
            cpu(&n),
            cpu(&f),
            c.cpu_us() / n.cpu_us(),
            f.cpu_us() / n.cpu_us(),
            c.p99_ms,
            n.p99_ms,
            c.switches,
            n.switches,
            c.rss_kib as f64 / 1024.0,
            n.rss_kib as f64 / 1024.0,
            c.delivered,
            c.sent * fanout,
            n.delivered,
            n.sent * fanout,
            f.delivered,
            f.sent * fanout
        );
    }
}

fn main() {
    if std::env::var_os("SERVER_BENCH_FLOOR").is_some() {
        floor::serve();
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either: this is not a test, so it only runs under `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("server bench: run with `cargo bench --bench server`");
        return;
    }
    let secs: f64 = std::env::var("SERVER_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let only = std::env::var("SERVER_BENCH_ONLY").unwrap_or_default();
    rt.block_on(async {
        if only == "room" {
            room(1000, 100.0, secs.max(3.0)).await;
            return;
        }
        if only == "ngircd" {
            against_ngircd(secs.max(3.0)).await;
            return;
        }
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        println!("room server benchmark: {USERS} users on loopback, {secs} s per scenario, {cpus} CPUs");
        println!("(clients and server share the machine; figures include client cost)\n");
        println!(
            "{:<22} {:>10} {:>11} {:>13} {:>9} {:>9}",
            "scenario", "requests/s", "delivered", "delivered/s", "p50 ms", "p99 ms"
        );
        for (broadcast, window) in [(false, 1), (false, 32), (true, 1), (true, 32)] {
            let r = chat(broadcast, window, secs).await;
            println!(
                "{:<22} {:>10.0} {:>11} {:>13.0} {:>9.3} {:>9.3}",
                r.scenario,
                r.sent as f64 / r.secs,
                r.delivered,
                r.delivered as f64 / r.secs,
                r.p50_ms,
                r.p99_ms
            );
        }
        for workers in [1, 10] {
            let (n, s, p50, p99) = joins(workers, secs).await;
            println!(
                "{:<22} {:>10.0} {:>11} {:>13} {:>9.3} {:>9.3}",
                format!("join+leave, {workers} clients"),
                n as f64 / s,
                n,
                "-",
                p50,
                p99
            );
        }
        println!("(join+leave rows: p50/p99 are the time from `100` to the completed join)");
        let (before, peak, after, s, slow_gone) = storm().await;
        println!(
            "\nstorm: 20,000 broadcasts of 99 chars, 1 reader, 1 user never reading: {s:.2} s ({:.0} msg/s)",
            20_000.0 / s
        );
        println!(
            "server RSS: {} KiB before, {} KiB peak, {} KiB after; non-reader disconnected: {}",
            before, peak, after, slow_gone
        );
        println!();
        room(1000, 100.0, secs.max(3.0)).await;
    });
}
