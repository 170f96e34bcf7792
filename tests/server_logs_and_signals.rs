//! `chatctl serve` as a process: its log lines (text and JSON), SIGTERM, and
//! its `--help`. The server listens on `127.0.0.1:0` with OS-assigned pool
//! ports; the address comes from its "listening on" log line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common;

use chatctl::wire::{Confirm, Decoder, Direction, Message};

const T: Duration = Duration::from_secs(10);

struct Serve {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(json: bool) -> Serve {
        Serve::start_on("127.0.0.1:0", json)
    }

    fn start_on(listen: &str, json: bool) -> Serve {
        Serve::start_with(listen, json, &[])
    }

    fn start_with(listen: &str, json: bool, extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.bin"), vec![7u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("big.bin"), vec![9u8; 64 << 20]).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatctl"));
        cmd.args(["serve", "--listen", listen, "--ports", "0-16", "--files"])
            .arg(dir.path())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if json {
            cmd.args(["--log-format", "json"]);
        }
        cmd.args(extra);
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on ") {
                    let rest = &line[i + "listening on ".len()..];
                    let addr = rest.split([' ', '"']).next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                l.lock().unwrap().push(line);
            }
        });
        let addr = rx.recv_timeout(T).expect("no 'listening on' line").parse().unwrap();
        Serve { child, addr, log, _dir: dir }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let st = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(st.success(), "kill failed");
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(t.elapsed() < T, "serve did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to `T`) for a log line containing every needle.
    fn wait_for(&self, needles: &[&str]) {
        let t = Instant::now();
        while !self.log.lock().unwrap().iter().any(|l| needles.iter().all(|n| l.contains(n))) {
            assert!(t.elapsed() < T, "no log line with {needles:?} in:\n{}", self.log.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> Vec<String> {
        // The reader thread may lag the exit a little.
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    s: TcpStream,
    d: Decoder,
}

impl Conn {
    fn connect(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        Conn { s, d: Decoder::new(Direction::ToClient) }
    }
    fn ask(&mut self, req: &str) -> Message {
        self.s.write_all(req.as_bytes()).unwrap();
        self.recv()
    }
    fn recv(&mut self) -> Message {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = self.d.next_message().unwrap() {
                return m;
            }
            let n = self.s.read(&mut buf).unwrap();
            assert!(n > 0, "closed while waiting for a message");
            self.d.feed(&buf[..n]);
        }
    }
    /// True if the server closed the connection.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                // The read timeout: still open.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false;
                }
                Err(_) => return true,
                Ok(_) => continue,
            }
        }
    }
}

/// A session that produces every kind of log line; returns the connections
/// still open (AL's main and update connections) and the update port.
fn session(addr: SocketAddr) -> (Conn, Conn) {
    let mut al = Conn::connect(addr);
    let Message::Confirm(Confirm::Joined { port, .. }) = al.ask("10002AL") else { panic!("join refused") };
    let al_upd = Conn::connect(SocketAddr::new(addr.ip(), port));
    assert!(matches!(al.ask("102"), Message::Confirm(Confirm::Users { .. })));
    let mut bo = Conn::connect(addr);
    let Message::Confirm(Confirm::Joined { port, .. }) = bo.ask("10002BO") else { panic!("join refused") };
    let _bo_upd = Conn::connect(SocketAddr::new(addr.ip(), port));
    assert_eq!(bo.ask("10302ZZ01x"), Message::Error(chatctl::wire::ErrorCode::NO_SUCH_USER));
    let Message::Confirm(Confirm::Download { size, port }) = bo.ask("106TCP05f.bin") else { panic!("no 206") };
    let mut t = TcpStream::connect((addr.ip(), port)).unwrap();
    let mut v = Vec::new();
    t.read_to_end(&mut v).unwrap();
    assert_eq!(v.len() as u64, size);
    assert_eq!(bo.ask("101"), Message::Confirm(Confirm::Left));
    (al, al_upd)
}

fn find<'a>(log: &'a [String], needles: &[&str]) -> &'a str {
    log.iter()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no log line with {needles:?} in:\n{}", log.join("\n")))
}

#[test]
fn text_log_lines_and_sigterm() {
    let mut srv = Serve::start(false);
    let (mut al, mut al_upd) = session(srv.addr);
    // Wait for the download's end line, then stop the server.
    srv.wait_for(&["download finished"]);
    let st = srv.terminate();
    assert!(st.success(), "serve exited with {st:?} after SIGTERM");
    // Every connection was closed.
    assert!(al.closed() && al_upd.closed());
    let log = srv.log();
    find(&log, &["listening on 127.0.0.1:"]);
    find(&log, &["joined", "user=AL"]);
    find(&log, &["joined", "user=BO"]);
    find(&log, &["error sent", "4031"]);
    find(&log, &["download started", "f.bin", "TCP"]);
    find(&log, &["download finished", "bytes=100000", "secs=", "goodput_mbit_s="]);
    find(&log, &["left", "user=BO", "how=\"left\""]);
    find(&log, &["left", "user=AL", "how=\"dropped\""]);
    // Shutdown: every port back in the pool.
    find(&log, &["stopped", "ports_in_use=0"]);
}

#[test]
fn json_log_lines_and_sigterm() {
    let mut srv = Serve::start(true);
    let (mut al, _al_upd) = session(srv.addr);
    srv.wait_for(&["download finished"]);
    // A download still running when SIGTERM comes is cut short.
    let Message::Confirm(Confirm::Download { size, port }) = al.ask("106TCP07big.bin") else { panic!("no 206") };
    let mut big = TcpStream::connect((srv.addr.ip(), port)).unwrap();
    big.set_read_timeout(Some(T)).unwrap();
    let mut head = [0u8; 1000];
    big.read_exact(&mut head).unwrap();
    assert!(srv.terminate().success());
    let mut rest = Vec::new();
    let _ = big.read_to_end(&mut rest);
    assert!(((1000 + rest.len()) as u64) < size, "the transfer was not stopped");
    let log = srv.log();
    let events: Vec<serde_json::Value> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line: {l:?}: {e}")))
        .collect();
    let event = |msg: &str| {
        events
            .iter()
            .find(|e| e["fields"]["message"].as_str().is_some_and(|m| m.starts_with(msg)))
            .unwrap_or_else(|| panic!("no {msg:?} event in {log:#?}"))
    };
    assert!(event("listening on")["fields"]["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(event("joined")["fields"]["user"], "AL");
    assert_eq!(event("error sent")["fields"]["code"], "4031");
    let end = event("download finished");
    assert_eq!(end["fields"]["bytes"], 100_000);
    assert!(end["fields"]["secs"].is_string() && end["fields"]["goodput_mbit_s"].is_string());
    assert_eq!(event("left")["fields"]["user"], "BO");
    assert_eq!(event("stopped")["fields"]["ports_in_use"], 0);
}

#[test]
fn help_says_classic_clients_cannot_read_large_rooms() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatctl")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(help.contains("--max-users"));
    assert!(help.contains("classic clients cannot read"), "{help}");
    assert!(help.contains("--join-timeout") && help.contains("--log-format"));
}

#[test]
fn listens_on_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        common::skip("no IPv6 loopback on this machine");
        return;
    }
    let mut srv = Serve::start_on("[::1]:0", false);
    assert!(srv.addr.is_ipv6(), "{}", srv.addr);
    let (mut al, _upd) = session(srv.addr);
    assert!(matches!(al.ask("102"), Message::Confirm(Confirm::Users { .. })));
    assert!(srv.terminate().success());
}

/// `--max-datagram` fixes the fast-mode datagram size (no probing, no
/// loopback upgrade to 65,000 bytes) and refuses sizes no path-safe hello fits.
#[test]
fn max_datagram_fixes_the_fast_datagram_size() {
    let srv = Serve::start_with("127.0.0.1:0", false, &["--max-datagram", "1452"]);
    let out = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["--server", &srv.addr.to_string(), "--name", "DG", "fetch", "f.bin", "--udp", "-q", "-o"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(out.path().join("f.bin")).unwrap(), vec![7u8; 100_000]);
    srv.wait_for(&["download finished", "f.bin", "datagram=1452"]);
    // The default on loopback, for contrast: 65,000-byte datagrams.
    let dflt = Serve::start(false);
    let st = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["--server", &dflt.addr.to_string(), "--name", "DG", "fetch", "f.bin", "--udp", "-q", "-f", "-o"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(st.success());
    dflt.wait_for(&["download finished", "f.bin", "datagram=65000"]);
    for bad in ["1199", "65001", "big"] {
        let o = Command::new(env!("CARGO_BIN_EXE_chatctl")).args(["serve", "--max-datagram", bad]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "--max-datagram {bad}");
    }
}
