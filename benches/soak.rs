//! Soak: the room server under hostile load.
//!
//! For `SOAK_SECS` seconds (default 60), `SOAK_CLIENTS` clients (default 300)
//! from addresses all over 127.0.0.0/8 join, chat, download, half-close or
//! reset their update connections, vanish mid-join and mid-download, sit
//! idle, send junk and hoard transfer ports, at random (seeded by
//! `SOAK_SEED`, default 1), while a legitimate pair, ALICE and BOB, keeps
//! whispering to each other. Reported: the pair's whisper latency (p50, p99,
//! max: from writing `103` to decoding the `303` on the other's update
//! connection), the server's peak RSS and open file descriptors, and what
//! the clients did. Checked at the end: the room is empty, the port pool is
//! back at 0, no server task panicked, and no whisper of the pair failed.
//!
//! Run: `cargo bench --bench soak` (release build); `SOAK_SECS=10` for a
//! short run. The server runs in a child process (this same executable, with
//! `SOAK_SERVER` set) so that its RSS and descriptors are its own; it answers
//! `stats` on its stdin with its room size, pool use and panic count.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatctl::rdt::sim::Rng;
use chatctl::server::{Config, PortSpec, Server};
use chatctl::wire::{Confirm, Decoder, Direction, Message, Update};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// How long any one step of a chaos client may take.
const STEP: Duration = Duration::from_secs(3);
/// Kinds of chaos, in the order of [`Kind`].
const KINDS: [&str; 9] =
    ["chat", "download", "half-close", "reset", "vanish mid-join", "vanish mid-download", "idle", "junk", "hoard"];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::var_os("SOAK_SERVER").is_some() {
        return server_main();
    }
    // `cargo bench` passes `--bench`; nothing else is expected.
    let secs = env_num("SOAK_SECS", 60);
    let clients = env_num("SOAK_CLIENTS", 300) as usize;
    let seed = env_num("SOAK_SEED", 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.txt"), vec![b's'; 10_000]).unwrap();
    std::fs::write(dir.path().join("mid.bin"), (0..2_000_000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("SOAK_SERVER", "1")
        .env("SOAK_FILES", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the server child");
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line.trim().strip_prefix("ADDR ").expect("no address from the server").parse().unwrap();
    let mut stats = move |stdin: &mut std::process::ChildStdin| -> Stats {
        writeln!(stdin, "stats").unwrap();
        let mut l = String::new();
        stdout.read_line(&mut l).unwrap();
        Stats::parse(&l)
    };

    // Peak RSS and descriptors, sampled every 100 ms.
    let done = Arc::new(AtomicBool::new(false));
    let peak_fds = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, peak_fds) = (done.clone(), peak_fds.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                    peak_fds.fetch_max(d.count(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    eprintln!("soak: {secs} s, {clients} chaos clients, seed {seed}, server pid {pid} on {addr}");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = rt.block_on(run(addr, Duration::from_secs(secs), clients, seed));

    // Everything the clients took must come back by itself.
    let t0 = Instant::now();
    let mut end = stats(&mut stdin);
    while (end.users != 0 || end.ports != 0) && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
        end = stats(&mut stdin);
    }
    let settled = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let hwm_kb = proc_status_kb(pid, "VmHWM:");
    drop(stdin); // the server shuts down
    let status = child.wait().unwrap();

    let mut lat = report.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("soak: {secs} s, {clients} chaos clients, seed {seed}");
    println!("  load average at the end: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!(
        "  legitimate pair: {} whispers, {} failed; latency p50 {} us, p99 {} us, max {} us",
        lat.len(),
        report.pair_failures.load(Ordering::Relaxed),
        pct(0.50).unwrap_or(0),
        pct(0.99).unwrap_or(0),
        lat.last().copied().unwrap_or(0)
    );
    println!("  server: peak RSS {:.1} MB, peak open fds {}", hwm_kb as f64 / 1024.0, peak_fds.load(Ordering::Relaxed));
    let runs: Vec<String> =
        KINDS.iter().zip(&report.runs).map(|(k, n)| format!("{k} {}", n.load(Ordering::Relaxed))).collect();
    println!("  chaos runs: {}", runs.join(", "));
    println!(
        "  refusals seen by chaos clients: {} x 4003, {} x 4062",
        report.full.load(Ordering::Relaxed),
        report.no_port.load(Ordering::Relaxed)
    );
    println!(
        "  after the clients: users {}, ports in use {} (settled in {:.1} s), panics {}; server exit {status}",
        end.users,
        end.ports,
        settled.as_secs_f64(),
        end.panics
    );
    let ok = end.users == 0
        && end.ports == 0
        && end.panics == 0
        && status.success()
        && report.pair_failures.load(Ordering::Relaxed) == 0
        && !lat.is_empty();
    println!("  verdict: {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// The server child's view of itself.
struct Stats {
    users: usize,
    ports: usize,
    panics: usize,
}

impl Stats {
    fn parse(l: &str) -> Stats {
        let field = |k: &str| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX)
        };
        Stats { users: field("users"), ports: field("ports"), panics: field("panics") }
    }
}

/// The server child: the library's server on loopback, with limits that a
/// soak on one machine can meet (many addresses, many users, a wide pool).
fn server_main() {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        prev(info);
    }));
    let files = std::env::var_os("SOAK_FILES").map(Into::into);
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        files,
        ports: PortSpec::Ephemeral { max: 600 },
        max_users: 100,
        join_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        unjoined_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let server = Server::bind(cfg).await.unwrap();
        let handle = server.handle();
        println!("ADDR {}", server.local_addr());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let control = tokio::task::spawn_blocking(move || {
            let stdin = std::io::stdin();
            for l in stdin.lock().lines() {
                let Ok(l) = l else { break };
                if l.trim() == "stats" {
                    println!(
                        "users={} ports={} panics={}",
                        handle.users(),
                        handle.ports_in_use(),
                        PANICS.load(Ordering::SeqCst)
                    );
                }
            }
            let _ = stop_tx.send(());
        });
        server
            .run(async {
                let _ = stop_rx.await;
            })
            .await;
        let _ = control.await;
    });
    if PANICS.load(Ordering::SeqCst) != 0 {
        std::process::exit(101);
    }
}

#[derive(Default)]
struct Report {
    latencies_us: Mutex<Vec<u64>>,
    pair_failures: AtomicU64,
    runs: [AtomicU64; 9],
    full: AtomicU64,
    no_port: AtomicU64,
}

async fn run(addr: SocketAddr, secs: Duration, clients: usize, seed: u64) -> Arc<Report> {
    let report = Arc::new(Report::default());
    let deadline = tokio::time::Instant::now() + secs;
    // The pair joins first: the chaos fills the room at once.
    let me = IpAddr::from([127, 0, 0, 1]);
    let (Some(alice), Some(bob)) = (join(me, addr, "ALICE", &report).await, join(me, addr, "BOB", &report).await)
    else {
        report.pair_failures.fetch_add(1, Ordering::Relaxed);
        eprintln!("the pair could not join");
        return report;
    };
    let pair = tokio::spawn(legit_pair(alice, bob, deadline, report.clone()));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let report = report.clone();
        tasks.push(tokio::spawn(chaos(addr, deadline, seed.wrapping_mul(1000).wrapping_add(i as u64), i, report)));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = pair.await;
    report
}

/// A main or update connection with a decoder.
struct Conn {
    s: TcpStream,
    d: Decoder,
}

impl Conn {
    async fn connect(from: IpAddr, to: SocketAddr) -> Option<Conn> {
        let sock = TcpSocket::new_v4().ok()?;
        sock.bind(SocketAddr::new(from, 0)).ok()?;
        let s = tokio::time::timeout(STEP, sock.connect(to)).await.ok()?.ok()?;
        let _ = s.set_nodelay(true);
        Some(Conn { s, d: Decoder::new(Direction::ToClient) })
    }
    async fn send(&mut self, b: impl AsRef<[u8]>) -> Option<()> {
        tokio::time::timeout(STEP, self.s.write_all(b.as_ref())).await.ok()?.ok()
    }
    async fn recv(&mut self) -> Option<Message> {
        let mut buf = [0u8; 4096];
        loop {
            match self.d.next_message() {
                Ok(Some(m)) => return Some(m),
                Ok(None) => {}
                Err(_) => return None,
            }
            let n = tokio::time::timeout(STEP, self.s.read(&mut buf)).await.ok()?.ok()?;
            if n == 0 {
                return None;
            }
            self.d.feed(&buf[..n]);
        }
    }
    async fn ask(&mut self, b: impl AsRef<[u8]>) -> Option<Message> {
        self.send(b).await?;
        self.recv().await
    }
}

fn field(s: &str) -> String {
    format!("{:02}{s}", s.chars().count())
}

/// Joins as `name` from `from`: the main and update connections.
async fn join(from: IpAddr, addr: SocketAddr, name: &str, report: &Report) -> Option<(Conn, Conn)> {
    let mut main = Conn::connect(from, addr).await?;
    let port = match main.ask(format!("100{}", field(name))).await? {
        Message::Confirm(Confirm::Joined { port, .. }) => port,
        Message::Error(e) if e.code() == 4003 => {
            report.full.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        _ => return None,
    };
    let upd = Conn::connect(from, SocketAddr::new(addr.ip(), port)).await?;
    Some((main, upd))
}

/// ALICE and BOB whisper to each other in turn until `deadline`; every
/// whisper must be confirmed and arrive.
async fn legit_pair(
    (mut a, mut au): (Conn, Conn),
    (mut b, mut bu): (Conn, Conn),
    deadline: tokio::time::Instant,
    report: Arc<Report>,
) {
    let mut n = 0u64;
    while tokio::time::Instant::now() < deadline {
        let (from, to, upd, to_name) =
            if n.is_multiple_of(2) { (&mut a, "BOB", &mut bu, "ALICE") } else { (&mut b, "ALICE", &mut au, "BOB") };
        let text = format!("ping {n}");
        let t0 = Instant::now();
        let ok =
            from.ask(format!("103{}{}", field(to), field(&text))).await == Some(Message::Confirm(Confirm::WhisperSent));
        if ok && arrives(upd, to_name, &text).await {
            report.latencies_us.lock().unwrap().push(t0.elapsed().as_micros() as u64);
        } else {
            report.pair_failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("the pair's whisper {n} failed (confirmed: {ok})");
            return;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in [&mut a, &mut b] {
        let _ = c.ask("101").await;
    }
}

/// Reads `upd` (skipping the chaos's broadcasts, joins and leaves) until the
/// whisper `text` from `from`; false if the connection ends or stalls first.
async fn arrives(upd: &mut Conn, from: &str, text: &str) -> bool {
    loop {
        match upd.recv().await {
            Some(Message::Update(Update::Whisper { from: f, text: t })) if f == from && t == text => return true,
            Some(_) => {}
            None => return false,
        }
    }
}

/// One chaos client: random scenarios from random loopback addresses.
async fn chaos(addr: SocketAddr, deadline: tokio::time::Instant, seed: u64, id: usize, report: Arc<Report>) {
    let mut rng = Rng::new(seed);
    let mut iter = 0;
    while tokio::time::Instant::now() < deadline {
        iter += 1;
        let from = IpAddr::from([127, 0, (rng.next_u64() % 4) as u8, 2 + (rng.next_u64() % 250) as u8]);
        let name = format!("C{id}x{iter}");
        let kind = (rng.next_u64() % KINDS.len() as u64) as usize;
        report.runs[kind].fetch_add(1, Ordering::Relaxed);
        let r = &report;
        let pause = Duration::from_millis(rng.next_u64() % 200);
        match kind {
            0 => {
                if let Some((mut m, _u)) = join(from, addr, &name, r).await {
                    for _ in 0..1 + rng.next_u64() % 5 {
                        let req = match rng.next_u64() % 3 {
                            0 => "102".to_string(),
                            1 => format!("104{}", field("hello all")),
                            _ => format!(
                                "103{}{}",
                                field(if rng.chance(0.5) { "ALICE" } else { "NOBODY" }),
                                field("psst")
                            ),
                        };
                        if m.ask(req).await.is_none() {
                            break;
                        }
                    }
                    let _ = m.ask("101").await;
                }
            }
            1 => {
                if let Some((mut m, _u)) = join(from, addr, &name, r).await
                    && let Some(port) = download(&mut m, "TCP", "small.txt", r).await
                    && let Some(mut t) = Conn::connect(from, SocketAddr::new(addr.ip(), port)).await
                {
                    let mut v = Vec::new();
                    let _ = tokio::time::timeout(STEP, t.s.read_to_end(&mut v)).await;
                }
            }
            2 => {
                if let Some((mut m, mut u)) = join(from, addr, &name, r).await {
                    let _ = u.s.shutdown().await;
                    for _ in 0..3 {
                        let _ = m.ask(format!("104{}", field("half"))).await;
                        tokio::time::sleep(pause).await;
                    }
                    let _ = m.ask("101").await;
                }
            }
            3 => {
                if let Some((m, u)) = join(from, addr, &name, r).await {
                    let _ = socket2::SockRef::from(&u.s).set_linger(Some(Duration::ZERO));
                    drop(u);
                    tokio::time::sleep(pause).await;
                    drop(m);
                }
            }
            4 => {
                if let Some(mut m) = Conn::connect(from, addr).await
                    && let Some(Message::Confirm(Confirm::Joined { .. })) = m.ask(format!("100{}", field(&name))).await
                    && rng.chance(0.5)
                {
                    let _ = m.send("101").await;
                }
            }
            5 => {
                if let Some((mut m, _u)) = join(from, addr, &name, r).await {
                    if rng.chance(0.5) {
                        if let Some(port) = download(&mut m, "TCP", "mid.bin", r).await
                            && let Some(mut t) = Conn::connect(from, SocketAddr::new(addr.ip(), port)).await
                        {
                            let mut buf = vec![0u8; 65536];
                            let _ = tokio::time::timeout(STEP, t.s.read(&mut buf)).await;
                        }
                    } else if let Some(port) = download(&mut m, "UDP", "mid.bin", r).await
                        && let Ok(u) = UdpSocket::bind(SocketAddr::new(from, 0)).await
                    {
                        let _ = u.send_to(b"20", SocketAddr::new(addr.ip(), port)).await;
                        let mut buf = [0u8; 2048];
                        let _ = tokio::time::timeout(STEP, u.recv_from(&mut buf)).await;
                    }
                }
            }
            6 => {
                if let Some(c) = Conn::connect(from, addr).await {
                    tokio::time::sleep(Duration::from_millis(rng.next_u64() % 4000)).await;
                    drop(c);
                }
            }
            7 => {
                if let Some(mut c) = Conn::connect(from, addr).await {
                    let junk: Vec<u8> = (0..rng.next_u64() % 2000).map(|_| rng.next_u64() as u8).collect();
                    let _ = c.send(junk).await;
                    let _ = c.send("\r\n").await;
                }
            }
            _ => {
                if let Some((mut m, _u)) = join(from, addr, &name, r).await {
                    for _ in 0..8 {
                        let _ = download(&mut m, if rng.chance(0.5) { "TCP" } else { "UDP" }, "small.txt", r).await;
                    }
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// Asks for `file` over `transport`; the announced port.
async fn download(m: &mut Conn, transport: &str, file: &str, report: &Report) -> Option<u16> {
    match m.ask(format!("106{transport}{}", field(file))).await? {
        Message::Confirm(Confirm::Download { port, .. }) => Some(port),
        Message::Error(e) if e.code() == 4062 => {
            report.no_port.fetch_add(1, Ordering::Relaxed);
            None
        }
        _ => None,
    }
}
