//! The fast mode through a lossy, delayed path, in-process: sender and receiver on their own
//! threads, talking over loopback directly or through the impairment relay
//! ([`chatctl::rdt::relay`]), with the production socket drivers.
//!
//! - Through the relay at 1% loss, 50 ms RTT (25 ms each way), 200 Mbit/s
//!   each way (queue of one bandwidth-delay product): fast-mode goodput as a
//!   share of (1 − loss) × rate, per congestion controller.
//! - Classic go-back-N vs fast on the same paths (loopback, and the relay
//!   path above): the speed-up.
//!
//! The drivers pick 65 000-byte datagrams when the peer's address is
//! loopback (`Config::for_path`). A real 200 Mbit/s path carries ~1452-byte
//! datagrams, and 1% loss per datagram is a very different path with 45×
//! more datagrams, so the relay path is run twice: with the loopback default
//! (large datagrams) and with `Config { probe: false, max_datagram: 1452 }`
//! (a 1500-byte-MTU path: no loopback upgrade, no path-MTU probing).
//!
//! Run with `cargo bench --bench rdt`. Env: `BENCH_CAP` seconds per run
//! (default 15: a run still going is cut and its goodput counted up to
//! then), `BENCH_LOOPBACK_MB` (default 256), `BENCH_PATH_MB` (default 256: ~11 s at 200 Mbit/s, so
//! BBR's startup, about 0.5 s plus its queue-overflow losses, weighs little),
//! `BENCH_ONLY` (run only the lines whose "path: mode" contains it),
//! `BENCH_TRACE` (file for the fast sender's JSON-lines trace).
//! Without `--bench` (e.g. `cargo test --all-targets`) it does nothing.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chatctl::rdt::cc::Algorithm;
use chatctl::rdt::classic::{self, receiver::Event, receiver::Receiver, sender::Sender};
use chatctl::rdt::endpoint;
use chatctl::rdt::fast::{self, driver};
use chatctl::rdt::relay::{Impairment, Relay};

const RATE: u64 = 200_000_000;
const LOSS: f64 = 0.01;
const ONE_WAY: Duration = Duration::from_millis(25);
/// The start of a transfer left out of the steady-state figure.
const WARMUP: Duration = Duration::from_secs(2);
const WAN_SMALL: &str = "relay 1% loss, 50 ms RTT, 200 Mbit/s, 1452 B datagrams";
const WAN_LARGE: &str = "relay 1% loss, 50 ms RTT, 200 Mbit/s, loopback-size datagrams";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Classic,
    Fast(Algorithm),
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Classic => "classic go-back-N",
            Mode::Fast(Algorithm::NewReno) => "fast NewReno",
            Mode::Fast(Algorithm::Cubic) => "fast CUBIC",
            Mode::Fast(Algorithm::Bbr) => "fast BBR",
        }
    }
}

/// One path to measure, and the modes to measure on it.
struct PathSpec<'a> {
    label: &'static str,
    imp: Option<(Impairment, Impairment)>,
    file: &'a std::path::Path,
    /// 1452-byte datagrams, no probing (`Config::probe` off).
    small: bool,
    modes: &'a [Mode],
}

/// What one transfer achieved.
struct Run {
    bytes: u64,
    secs: f64,
    /// Goodput after the first [`WARMUP`] (startup and its losses left
    /// out), if the run lasted long enough to say.
    steady_mbps: Option<f64>,
    complete: bool,
    note: String,
}

impl Run {
    fn mbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e6
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("rdt bench: skipped (run it with `cargo bench --bench rdt`)");
        return;
    }
    let cap = Duration::from_secs(env_u64("BENCH_CAP", 15));
    let dir = tempfile::Builder::new().prefix("chatctl-rdt-bench").tempdir_in(tmp_dir()).expect("temp dir");
    let make = |name: &str, mb: u64| {
        let path = dir.path().join(name);
        let mut f = File::create(&path).expect("create file");
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mb {
            for b in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            f.write_all(&chunk).expect("write file");
        }
        path
    };
    let big = make("loopback.bin", env_u64("BENCH_LOOPBACK_MB", 256));
    let small = make("path.bin", env_u64("BENCH_PATH_MB", 256));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");

    // BENCH_ONLY: run only the lines whose "path: mode" contains this text.
    let only = std::env::var("BENCH_ONLY").ok();
    let checks = [relay_check(&rt, RATE), relay_check(&rt, RATE * 3 / 2)];
    for c in &checks {
        eprintln!("relay check: {c}");
    }
    let path = || Impairment::path(LOSS, ONE_WAY, RATE, 0);
    let wan = || Some((Impairment { seed: 1, ..path() }, Impairment { seed: 2, ..path() }));
    let all = [Mode::Classic, Mode::Fast(Algorithm::NewReno), Mode::Fast(Algorithm::Cubic), Mode::Fast(Algorithm::Bbr)];
    let paths = [
        PathSpec { label: "loopback", imp: None, file: &big, small: false, modes: &all },
        PathSpec { label: WAN_SMALL, imp: wan(), file: &small, small: true, modes: &all },
        PathSpec { label: WAN_LARGE, imp: wan(), file: &small, small: false, modes: &all[1..] },
    ];
    let mut table = Vec::new();
    for p in &paths {
        let label = p.label;
        for &mode in p.modes {
            let what = format!("{label}: {}", mode.name());
            if !only.as_ref().is_none_or(|o| what.contains(o.as_str())) {
                continue;
            }
            eprint!("{what} ... ");
            let before = udp_counters();
            let r = run(&rt, mode, p.file, p.imp.clone(), p.small, cap, dir.path());
            let after = udp_counters();
            let errs: Vec<String> = after
                .iter()
                .zip(&before)
                .filter(|(a, b)| a.1 != b.1)
                .map(|(a, b)| format!("{} +{}", a.0, a.1 - b.1))
                .collect();
            let steady = r.steady_mbps.map_or(String::new(), |m| format!(" (after 2 s: {m:.1})"));
            eprintln!("{:.1} Mbit/s{steady} {} [kernel UDP: {}]", r.mbps(), r.note, errs.join(", "));
            table.push((label, mode, r));
        }
    }

    println!("\n| path | mode | bytes | seconds | Mbit/s | after 2 s | complete | note |");
    println!("|---|---|---|---|---|---|---|---|");
    for (label, mode, r) in &table {
        let done = if r.complete { "yes" } else { "no (cut)" };
        let steady = r.steady_mbps.map_or("-".to_string(), |m| format!("{m:.1}"));
        println!(
            "| {label} | {} | {} | {:.2} | {:.1} | {steady} | {done} | {} |",
            mode.name(),
            r.bytes,
            r.secs,
            r.mbps(),
            r.note
        );
    }
    println!();
    for c in &checks {
        println!("relay check: {c}");
    }
    let find = |label: &str, name: &str| table.iter().find(|(l, m, _)| *l == label && m.name() == name).map(|t| &t.2);
    println!();
    let ceiling = (1.0 - LOSS) * RATE as f64 / 1e6;
    for label in [WAN_SMALL, WAN_LARGE] {
        for cc in ["fast NewReno", "fast CUBIC", "fast BBR"] {
            if let Some(r) = find(label, cc) {
                let share = 100.0 * r.mbps() / ceiling;
                let steady = r.steady_mbps.map_or(String::new(), |m| {
                    format!("; after the first 2 s {m:.1} Mbit/s = {:.0}%", 100.0 * m / ceiling)
                });
                println!(
                    "3. {label}: {cc}: {:.1} Mbit/s = {share:.0}% of (1 − loss) × rate = {ceiling:.0} Mbit/s{steady}",
                    r.mbps()
                );
            }
        }
    }
    for label in paths.iter().map(|p| p.label) {
        let Some(classic) = find(label, "classic go-back-N").map(Run::mbps) else { continue };
        for cc in ["fast NewReno", "fast CUBIC", "fast BBR"] {
            if let Some(r) = find(label, cc) {
                println!("4. {label}: {cc} / classic = {:.1}x", r.mbps() / classic);
            }
        }
    }
}

/// What came out of the relay when a constant-rate blast went in.
struct RelayCheck {
    offered_mbps: f64,
    sent: u64,
    /// Arrival rate at the target over the second half of the blast.
    mbps: f64,
    /// Datagrams the relay's queue dropped.
    dropped: u64,
    /// Datagrams that never reached the target (relay drops included).
    missing: u64,
    /// 99th percentile of the gaps between arrivals, µs (58 µs at 200 Mbit/s).
    gap_p99_us: f64,
}

/// Whether the relay itself carries the benchmark's rate: 1452-byte
/// datagrams offered at `offered_bps`, spaced evenly, for 2 s through a
/// loss-free 200 Mbit/s relay with a 1 MiB queue.
fn relay_check(rt: &tokio::runtime::Runtime, offered_bps: u64) -> RelayCheck {
    const LEN: usize = 1452;
    let target = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let _ = socket2::SockRef::from(&target).set_recv_buffer_size(8 << 20);
    let imp = Impairment {
        link: chatctl::rdt::sim::LinkConfig { rate_bps: Some(RATE), queue_bytes: 1 << 20, ..Default::default() },
        seed: 0,
    };
    let relay = rt
        .block_on(Relay::start(
            "127.0.0.1:0".parse().expect("addr"),
            target.local_addr().expect("addr"),
            imp,
            Impairment::none(),
        ))
        .expect("relay");
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let _ = socket2::SockRef::from(&client).set_send_buffer_size(8 << 20);
    let to = relay.local_addr;
    let t0 = Instant::now();
    let run = Duration::from_secs(2);
    let sender = thread::spawn(move || {
        let d = [0u8; LEN];
        let per_sec = offered_bps as f64 / (LEN * 8) as f64;
        let mut sent = 0u64;
        loop {
            let elapsed = t0.elapsed();
            if elapsed >= run {
                return sent;
            }
            let due = (elapsed.as_secs_f64() * per_sec) as u64;
            while sent < due {
                let _ = client.send_to(&d, to);
                sent += 1;
            }
            thread::sleep(Duration::from_micros(20));
        }
    });
    let _ = target.set_read_timeout(Some(Duration::from_millis(300)));
    let mut buf = [0u8; 2048];
    let (mut bytes, mut count, half) = (0u64, 0u64, t0 + run / 2);
    let mut gaps = Vec::new();
    let mut last: Option<Instant> = None;
    while target.recv(&mut buf).is_ok() {
        let now = Instant::now();
        count += 1;
        if now >= half && now < t0 + run {
            bytes += LEN as u64;
            if let Some(l) = last {
                gaps.push((now - l).as_secs_f64() * 1e6);
            }
            last = Some(now);
        }
    }
    let sent = sender.join().unwrap_or(0);
    let stats = rt.block_on(relay.shutdown());
    gaps.sort_by(f64::total_cmp);
    RelayCheck {
        offered_mbps: offered_bps as f64 / 1e6,
        sent,
        mbps: bytes as f64 * 8.0 / (run / 2).as_secs_f64() / 1e6,
        dropped: stats.up.dropped,
        missing: sent.saturating_sub(count),
        gap_p99_us: gaps.get(gaps.len() * 99 / 100).copied().unwrap_or(0.0),
    }
}

impl std::fmt::Display for RelayCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "offered {:.0} Mbit/s ({} datagrams of 1452 B) through a loss-free 200 Mbit/s relay (1 MiB queue): \
             arrived at {:.1} Mbit/s; queue drops {}, missing {}, p99 gap between arrivals {:.0} µs",
            self.offered_mbps, self.sent, self.mbps, self.dropped, self.missing, self.gap_p99_us
        )
    }
}

/// The kernel's UDP error counters (`/proc/net/snmp`): datagrams dropped
/// because a socket buffer was full, or that could not be sent.
fn udp_counters() -> Vec<(String, u64)> {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return Vec::new() };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter(|(n, _)| n.contains("Errors"))
        .map(|(n, v)| (n.to_string(), v.parse().unwrap_or(0)))
        .collect()
}

fn tmp_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
}

/// One transfer of `file` in `mode`, through a relay if `imp` is given.
fn run(
    rt: &tokio::runtime::Runtime,
    mode: Mode,
    file: &std::path::Path,
    imp: Option<(Impairment, Impairment)>,
    small: bool,
    cap: Duration,
    dir: &std::path::Path,
) -> Run {
    let bind = "127.0.0.1:0";
    let at = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    let sender_sock = UdpSocket::bind(bind).expect("bind");
    let sender_addr = at(sender_sock.local_addr().expect("addr").port());
    let relay = imp.map(|(up, down)| {
        rt.block_on(Relay::start(bind.parse().expect("addr"), sender_addr, up, down)).expect("relay")
    });
    let to = relay.as_ref().map_or(sender_addr, |r| at(r.local_addr.port()));
    let receiver_sock = UdpSocket::bind(bind).expect("bind");
    let size = std::fs::metadata(file).expect("file").len();
    let out_path = dir.join("out.bin");
    // Read and write, as the client opens it: the receiver reads back what it hashes.
    let out =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&out_path).expect("output");
    let stop = Arc::new(driver::Cancel::new());
    let received = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let sender = {
        let (stop, file) = (stop.clone(), file.to_path_buf());
        thread::Builder::new()
            .name("bench-send".into())
            .spawn(move || send(mode, small, sender_sock, &file, &stop))
            .expect("thread")
    };
    let receiver = {
        let (stop, received) = (stop.clone(), received.clone());
        thread::Builder::new()
            .name("bench-recv".into())
            .spawn(move || receive(mode, small, receiver_sock, to, out, size, &stop, &received))
            .expect("thread")
    };
    let mut complete = false;
    let mut note = String::new();
    let mut warm: Option<(f64, u64)> = None;
    while t0.elapsed() < cap {
        if receiver.is_finished() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
        if warm.is_none() && t0.elapsed() >= WARMUP {
            warm = Some((t0.elapsed().as_secs_f64(), received.load(Ordering::Relaxed)));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let bytes = received.load(Ordering::Relaxed);
    stop.cancel(chatctl::rdt::fast::AbortReason::Cancelled);
    match receiver.join() {
        Ok(Ok(())) => complete = true,
        Ok(Err(e)) => note = format!("cut after {secs:.0} s ({e})"),
        Err(_) => note = "receiver thread panicked".into(),
    }
    let _ = sender.join();
    if complete {
        let same = std::fs::read(file).ok() == std::fs::read(&out_path).ok();
        note = if same { "complete, verified".into() } else { "complete but the output DIFFERS".into() };
    }
    if let Some(r) = relay {
        let s = rt.block_on(r.shutdown());
        note += &format!(
            "; relay dropped {}/{} up, {}/{} down, send errors {} up, {} down",
            s.up.dropped, s.up.received, s.down.dropped, s.down.received, s.up.send_errors, s.down.send_errors
        );
    }
    let bytes = if complete { size } else { bytes };
    // At least a second after the warm-up, or the figure says little.
    let steady_mbps =
        warm.filter(|&(t, _)| secs - t >= 1.0).map(|(t, b)| (bytes - b.min(bytes)) as f64 * 8.0 / (secs - t) / 1e6);
    Run { bytes, secs, steady_mbps, complete, note }
}

fn send(mode: Mode, small: bool, sock: UdpSocket, file: &std::path::Path, stop: &driver::Cancel) {
    // The receiver's hello comes first, as on a server's transfer port.
    let mut buf = vec![0u8; 65_536];
    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
    let (n, peer) = loop {
        if stop.reason().is_some() {
            return;
        }
        if let Ok(x) = sock.recv_from(&mut buf) {
            break x;
        }
    };
    match mode {
        Mode::Classic => {
            let w = classic::parse_window(&buf[..n]).unwrap_or(classic::MAX_WINDOW);
            let data = std::fs::read(file).unwrap_or_default();
            classic_send(sock, peer, Sender::new(data.len() as u64, w), &data, stop);
        }
        Mode::Fast(cc) => {
            let cfg = fast_config(cc, small);
            let Ok(file) = File::open(file) else { return };
            // BENCH_TRACE=FILE: the sender's events (cwnd, pacing, losses) as JSON lines.
            let trace = std::env::var_os("BENCH_TRACE").and_then(|p| driver::Tracer::create(p.as_ref()).ok());
            let r = driver::send_file_blocking(
                sock,
                peer.ip(),
                (peer, buf[..n].to_vec()),
                &file,
                None,
                &cfg,
                trace.as_ref(),
                stop,
            );
            if let (Ok(r), Some(_)) = (&r, &trace) {
                eprint!("[sender: {:?}] ", r.stats);
            }
        }
    }
}

fn classic_send(sock: UdpSocket, peer: SocketAddr, mut s: Sender, mut data: &[u8], stop: &driver::Cancel) {
    let mut out = Vec::with_capacity(classic::CHUNK + 3);
    let mut buf = [0u8; 2048];
    while stop.reason().is_none() {
        // The timer if due, then all the window allows; one ACK per wait below.
        let now = Instant::now();
        let step = endpoint::transmit(&mut s, now, &mut data, &mut out, 1, |d, _| {
            let _ = sock.send_to(d, peer);
            Ok::<_, std::convert::Infallible>(())
        });
        let Ok(endpoint::Step::Wait(t)) = step else { break };
        let wait = t.map_or(Duration::from_millis(50), |t| t.saturating_duration_since(now));
        let _ = sock.set_read_timeout(Some(wait.clamp(Duration::from_millis(1), Duration::from_millis(50))));
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && from == peer
        {
            s.handle_datagram(Instant::now(), &buf[..n]);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn receive(
    mode: Mode,
    small: bool,
    sock: UdpSocket,
    to: SocketAddr,
    mut out: File,
    size: u64,
    stop: &driver::Cancel,
    received: &AtomicU64,
) -> Result<(), String> {
    match mode {
        Mode::Classic => {
            let mut r = Receiver::new(classic::MAX_WINDOW);
            let mut buf = [0u8; 2048];
            let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
            sock.send_to(&r.hello(), to).map_err(|e| e.to_string())?;
            while stop.reason().is_none() {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => match r.handle_datagram(&buf[..n]) {
                        Event::Deliver { payload, ack, last } => {
                            out.write_all(payload).map_err(|e| e.to_string())?;
                            received.fetch_add(payload.len() as u64, Ordering::Relaxed);
                            let _ = sock.send_to(&ack, from);
                            if last {
                                return Ok(());
                            }
                        }
                        Event::Repeat { ack: Some(ack) } => {
                            let _ = sock.send_to(&ack, from);
                        }
                        _ => {}
                    },
                    Err(_) => {
                        let again = r.last_ack().unwrap_or_else(|| r.hello());
                        let _ = sock.send_to(&again, to);
                    }
                }
            }
            Err("stopped".into())
        }
        Mode::Fast(cc) => {
            let cfg = fast_config(cc, small);
            let expect = driver::Expect { resume_from: 0, size: Some(size) };
            let progress = |s: &fast::Stats| received.store(s.bytes_done, Ordering::Relaxed);
            match driver::receive_file_blocking(sock, to, &out, expect, &cfg, stop, progress) {
                Ok(driver::ReceiveReport::Fast { .. }) => Ok(()),
                Ok(_) => Err("the sender answered classic".into()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// The fast config of a run: the defaults, or a 1500-byte-MTU path emulated
/// over loopback (`small`: 1452-byte datagrams, no probing).
fn fast_config(cc: Algorithm, small: bool) -> fast::Config {
    let c = fast::Config { cc, ..Default::default() };
    if small { fast::Config { probe: false, max_datagram: 1452, ..c } } else { c }
}
