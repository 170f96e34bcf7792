//! Downloads that end, resume and retry as a curl or wget user expects, in
//! the README's set-up: the real server on a small port range (`serve
//! --ports LO-HI`: update ports and transfer ports), `chatctl fetch` as a
//! process, and `chatctl impair` in front of the transfer port where a
//! download must take a while.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatctl::exit::Exit;
use chatctl::server::{Config, PortSpec};

use crate::common;

/// `n` consecutive ports free for TCP and UDP on 127.0.0.1 (checked, then
/// released: another program could take them in between, which is unlikely).
/// Each call of this process looks in its own stretch, so tests running at
/// once never pick the same ports.
fn free_run(n: u16) -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = 20_000 + (std::process::id() % 20_000) as u16 + call * 2_000;
    (0..150u16)
        .map(|i| start + 11 * i)
        .find(|&p| {
            (p..p + n).all(|q| {
                std::net::TcpListener::bind(("127.0.0.1", q)).is_ok() && UdpSocket::bind(("127.0.0.1", q)).is_ok()
            })
        })
        .expect("no free ports")
}

/// The server on ports `lo..=hi`, serving `dir`, held to 1452-byte datagrams (as `serve --max-datagram 1452`).
fn server(dir: &Path, lo: u16, hi: u16) -> SocketAddr {
    let fast = chatctl::rdt::fast::Config { max_datagram: 1452, probe: false, ..Default::default() };
    common::server_with(Config { ports: PortSpec::Range { lo, hi }, fast, ..common::config(Some(dir)) })
}

/// A child process killed when dropped (a failing test leaves no relay behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `chatctl impair --listen 127.0.0.1:0 --target 127.0.0.1:PORT ARGS`; the
/// child and the address it relays from.
fn impair(port: u16, args: &[&str]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["impair", "--listen", "127.0.0.1:0", "--target", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut first).unwrap();
    let addr = first.split_whitespace().nth(1).unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    (Killed(child), addr.to_string())
}

/// `chatctl -s SERVER -n NAME ARGS`, output piped.
fn fetch(server: SocketAddr, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chatctl"));
    c.args(["-s", &server.to_string(), "-n", name, "--timeout", "5s", "fetch"]).args(args);
    c.env_remove("CHATCTL_NAME").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn code(e: Exit) -> i32 {
    i32::from(e.code())
}

fn stop(relay: Killed) {
    drop(relay);
}

/// Ctrl-C in the middle of a fast download through the relay (1% loss,
/// 5 ms, 40 Mbit/s), then the command the note prints, run as printed and
/// at once: the server ended the first transfer on its ABORT and freed the
/// one transfer port, so the resume starts right away; the file is
/// byte-exact, and the summary says where it resumed and what it fetched
/// again: at most what was in flight, far below the 64 MiB window.
#[test]
fn ctrl_c_then_continue_at_once_resumes_exactly() {
    let share = tempfile::tempdir().unwrap();
    let content = common::data(16 << 20, 21);
    std::fs::write(share.path().join("big.bin"), &content).unwrap();
    let lo = free_run(2);
    let addr = server(share.path(), lo, lo + 1);
    let (relay, via) = impair(lo + 1, &["--loss", "1%", "--delay", "5ms", "--rate", "40M", "--seed", "4"]);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("big.bin");
    let o = target.to_str().unwrap();
    let mut child = fetch(addr, "ALICE", &["big.bin", "--udp-via", &via, "-o", o]).spawn().unwrap();
    // Interrupted once a few MB are in.
    let part = chatctl::client::temp_path_for(&target);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 4 << 20 {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            stop(relay);
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("the download never got going: {}", String::from_utf8_lossy(&o.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = common::wait_exit(&mut child, Duration::from_secs(10));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{err}");
    let held = std::fs::metadata(&part).unwrap().len();
    let line = err.lines().find_map(|l| l.strip_prefix("resume with: ")).unwrap_or_else(|| panic!("{err}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..3], ["chatctl", "fetch", "--continue"], "{line}");
    // As printed (only the program's path differs).
    let started = Instant::now();
    let again = Command::new(env!("CARGO_BIN_EXE_chatctl")).args(&words[1..]).stdin(Stdio::null()).output().unwrap();
    let took = started.elapsed();
    stop(relay);
    let (stdout, stderr) = (String::from_utf8_lossy(&again.stdout), String::from_utf8_lossy(&again.stderr));
    assert!(again.status.success(), "{line}\n{stderr}");
    assert!(std::fs::read(&target).unwrap() == content, "the resumed file differs");
    assert!(!part.exists() && !chatctl::client::resume_mark_path(&target).exists());
    // "... (16,777,216 bytes, resumed at X; Y bytes fetched again) ..."
    let number = |after: &str| -> u64 {
        let at = stdout.find(after).unwrap_or_else(|| panic!("no {after:?} in {stdout}")) + after.len();
        stdout[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let resumed = number("resumed at ");
    let refetched = if stdout.contains("fetched again") { number("; ") } else { 0 };
    println!("held {held}, resumed at {resumed}, refetched {refetched}, resume took {took:?}");
    assert!(resumed > 0 && resumed <= held, "{stdout}");
    assert!(refetched <= 4 << 20, "{refetched} bytes fetched again: {stdout}");
    // Everything held past the resume point was counted as fetched again.
    assert!(held - resumed <= refetched + (1 << 20), "held {held}, resumed at {resumed}, refetched {refetched}");
}

/// Ten fetches in a row, each a fresh process on the two-port server,
/// through a relay that delays each datagram 30 ms (so a fetch's `101`,
/// sent straight to the server, overtakes its last DONE-ACK): the one
/// transfer port is free again by the time each fetch has left (the
/// server ends the user's transfers before the `201`, and one whose every
/// byte was acknowledged does not wait for the DONE-ACK): never `4062`.
#[test]
fn ten_fetches_in_a_row() {
    let share = tempfile::tempdir().unwrap();
    let content = common::data(1 << 20, 22);
    std::fs::write(share.path().join("f.bin"), &content).unwrap();
    let lo = free_run(2);
    let addr = server(share.path(), lo, lo + 1);
    let (relay, via) = impair(lo + 1, &["--delay", "30ms"]);
    let out = tempfile::tempdir().unwrap();
    for i in 0..10 {
        let target = out.path().join(format!("f{i}.bin"));
        let o = fetch(addr, "ALICE", &["f.bin", "--udp-via", &via, "-o", target.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "fetch {i}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::read(&target).unwrap() == content, "fetch {i}");
    }
    stop(relay);
}

/// Two users and one transfer port (ports LO..LO+2: two update ports and
/// one for downloads): BOB asks while ALICE's download (slowed by the relay)
/// holds the port, gets `4062`, and with `--retry` tries again until it is
/// free. Both files arrive whole.
#[test]
fn two_users_share_one_transfer_port_with_retry() {
    let share = tempfile::tempdir().unwrap();
    let big = common::data(4 << 20, 23);
    let small = common::data(300_000, 24);
    std::fs::write(share.path().join("big.bin"), &big).unwrap();
    std::fs::write(share.path().join("small.bin"), &small).unwrap();
    let lo = free_run(3);
    let addr = server(share.path(), lo, lo + 2);
    // ALICE joins first: update port LO, her download LO+1 (the lowest free).
    let (relay, via) = impair(lo + 1, &["--rate", "16M", "--seed", "5"]);
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("big.bin"), out.path().join("small.bin"));
    let alice = fetch(addr, "ALICE", &["big.bin", "--udp-via", &via, "-o", a.to_str().unwrap()]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(chatctl::client::temp_path_for(&a)).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "ALICE's download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Without --retry: 4062 at once.
    let once = fetch(addr, "BOB", &["small.bin", "-o", b.to_str().unwrap()]).output().unwrap();
    assert_eq!(once.status.code(), Some(code(Exit::TransferFailed)), "{}", String::from_utf8_lossy(&once.stderr));
    assert!(String::from_utf8_lossy(&once.stderr).contains("4062"));
    let bob = fetch(addr, "BOB", &["small.bin", "--retry", "30", "--retry-delay", "300ms", "-o", b.to_str().unwrap()])
        .output()
        .unwrap();
    let alice = alice.wait_with_output().unwrap();
    stop(relay);
    let bob_err = String::from_utf8_lossy(&bob.stderr);
    assert!(alice.status.success(), "{}", String::from_utf8_lossy(&alice.stderr));
    assert!(bob.status.success(), "{bob_err}");
    assert!(bob_err.contains("4062") && bob_err.contains("retrying in 300ms (1 of 30)"), "{bob_err}");
    assert!(std::fs::read(&a).unwrap() == big);
    assert!(std::fs::read(&b).unwrap() == small);
}

/// `--continue` on a file that is already complete succeeds and says so
/// (as `wget -c`); one of another size is refused with the way out.
#[test]
fn continue_on_a_complete_file_is_success() {
    let share = tempfile::tempdir().unwrap();
    let content = common::data(100_000, 25);
    std::fs::write(share.path().join("f.bin"), &content).unwrap();
    let lo = free_run(2);
    let addr = server(share.path(), lo, lo + 1);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("f.bin");
    let t = target.to_str().unwrap();
    assert!(fetch(addr, "ALICE", &["f.bin", "-o", t]).output().unwrap().status.success());
    let o = fetch(addr, "ALICE", &["--continue", "f.bin", "-o", t]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("is already complete (100,000 bytes)"), "{stdout}");
    let o = fetch(addr, "ALICE", &["--json", "--continue", "f.bin", "-o", t]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((json["already_complete"].as_bool(), json["resumed_from"].as_u64()), (Some(true), Some(100_000)));
    std::fs::write(&target, b"short").unwrap();
    let o = fetch(addr, "ALICE", &["--continue", "f.bin", "-o", t]).output().unwrap();
    assert_eq!(o.status.code(), Some(code(Exit::Failure)));
    assert!(String::from_utf8_lossy(&o.stderr).contains("use --force"), "{}", String::from_utf8_lossy(&o.stderr));
    // The port is not left held: the next fetch goes through at once.
    let again = out.path().join("g.bin");
    assert!(fetch(addr, "ALICE", &["f.bin", "-o", again.to_str().unwrap()]).output().unwrap().status.success());
}

/// `--retry` rides out a server that refuses connections for a while (not
/// started yet, restarting): the fetch succeeds once it is up.
#[test]
fn retry_waits_for_a_server_that_comes_up() {
    let share = tempfile::tempdir().unwrap();
    let content = common::data(200_000, 26);
    std::fs::write(share.path().join("f.bin"), &content).unwrap();
    let lo = free_run(3);
    let addr: SocketAddr = format!("127.0.0.1:{}", lo + 2).parse().unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("f.bin");
    let args = ["f.bin", "--retry", "20", "--retry-delay", "200ms", "-o", target.to_str().unwrap()];
    // Without --retry: refused at once.
    let once = fetch(addr, "ALICE", &args[..1]).output().unwrap();
    assert_eq!(once.status.code(), Some(code(Exit::Connect)));
    let child = fetch(addr, "ALICE", &args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let fast = chatctl::rdt::fast::Config { max_datagram: 1452, probe: false, ..Default::default() };
    common::server_with(Config {
        listen: addr,
        ports: PortSpec::Range { lo, hi: lo + 1 },
        fast,
        ..common::config(Some(share.path()))
    });
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("cannot connect") && err.contains("retrying in 200ms"), "{err}");
    assert!(std::fs::read(&target).unwrap() == content);
}

/// `--retry` never takes a file that was there before the run for one of
/// its own: a first attempt that could not connect checked no output, so
/// the next one still refuses to overwrite, rather than find the file
/// "already complete" and succeed without fetching.
#[test]
fn retry_never_takes_an_existing_file_for_its_own() {
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("f.bin"), common::data(50_000, 27)).unwrap();
    let lo = free_run(3);
    let addr: SocketAddr = format!("127.0.0.1:{}", lo + 2).parse().unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("f.bin");
    let mine = common::data(50_000, 28);
    std::fs::write(&target, &mine).unwrap();
    let args = ["f.bin", "--retry", "20", "--retry-delay", "200ms", "-o", target.to_str().unwrap()];
    let child = fetch(addr, "ALICE", &args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    common::server_with(Config {
        listen: addr,
        ports: PortSpec::Range { lo, hi: lo + 1 },
        ..common::config(Some(share.path()))
    });
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "succeeded over an existing file: {err}");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), mine, "the existing file changed");
}
