//! Set-up shared by the integration tests: a real room server on its own
//! thread, and the leftovers check after downloads. Each test binary uses
//! only part of it, hence `allow(dead_code)`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use chatctl::rdt::sim::{LinkConfig, Rng};
use chatctl::server::{Config, PortSpec, Server};

pub mod capture;
pub mod session;

/// Says plainly that a test cannot run here and why. On a user's clone the
/// test then returns (passes); under CI (`CI` set, as `.ci/run` is run) it
/// fails instead, since CI installs every tool a test needs: a skip there
/// would hide a missing install step.
pub fn skip(why: &str) {
    println!("skipped: {why}");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "a test skipped under CI ({why}): .ci/run must install what it needs");
}

/// A tokio runtime on its own thread running `f`'s future, then idling
/// forever (the thread dies with the test process); returns what the future
/// produced.
pub fn background<R: Send + 'static, F: std::future::Future<Output = R> + Send + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Two workers: a fast-UDP transfer's blocking thread and the chat
        // must not wait on each other.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            tx.send(f().await).unwrap();
            std::future::pending::<()>().await
        })
    });
    rx.recv().unwrap()
}

/// The server configuration the tests use: loopback, a port the OS picks,
/// `files` served (if any), at most 16 transfer ports from the OS.
pub fn config(files: Option<&Path>) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        files: files.map(Path::to_path_buf),
        ports: PortSpec::Ephemeral { max: 16 },
        ..Config::default()
    }
}

/// Starts the real room server with `config` on its own thread; returns its address.
pub fn server_with(config: Config) -> SocketAddr {
    background(move || async move {
        let s = Server::bind(config).await.unwrap();
        let addr = s.local_addr();
        tokio::spawn(s.run(std::future::pending::<()>()));
        addr
    })
}

/// Starts the real room server serving `dir`; returns its address.
pub fn server(dir: &Path) -> SocketAddr {
    server_with(config(Some(dir)))
}

/// Names of the download temporary files (`*.chatctl-part`) left in `dir`.
pub fn part_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".chatctl-part"))
        .collect()
}

/// `len` seeded random bytes (the same for the same seed).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut v: Vec<u8> = (0..len.div_ceil(8)).flat_map(|_| r.next_u64().to_le_bytes()).collect();
    v.truncate(len);
    v
}

/// A simulated link with `delay_ms` one-way delay and random `loss`.
pub fn link(delay_ms: u64, loss: f64) -> LinkConfig {
    LinkConfig { delay: std::time::Duration::from_millis(delay_ms), loss, ..Default::default() }
}

/// How long [`Lines::next`] waits for a line before the test fails.
pub const LINE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The lines a child writes, read by a thread so that a test waits a bounded time.
pub struct Lines(pub std::sync::mpsc::Receiver<String>);

impl Lines {
    pub fn of(r: impl std::io::Read + Send + 'static) -> Lines {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(r);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    /// The next line (with its newline); panics after [`LINE_WAIT`].
    pub fn next(&self) -> String {
        self.0.recv_timeout(LINE_WAIT).expect("no line within the time limit")
    }

    /// The next line within `wait`, if any.
    pub fn next_within(&self, wait: std::time::Duration) -> Option<String> {
        self.0.recv_timeout(wait).ok()
    }

    /// Lines until one satisfies `want` (returned); panics after [`LINE_WAIT`].
    pub fn until(&self, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + LINE_WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now()).unwrap_or_default();
            match self.0.recv_timeout(left) {
                Ok(l) if want(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("no such line within {LINE_WAIT:?}; saw {seen:?}"),
            }
        }
    }
}

/// The chatctl binary this test run built.
pub fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("chatctl")
}

/// `chatctl` with no server or name from the environment and no colour.
pub fn cli() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(bin());
    c.env_remove("CHATCTL_SERVER").env_remove("CHATCTL_NAME").env("NO_COLOR", "1");
    c
}

/// `chatctl --server ADDR --name NAME --timeout 5s`, as [`cli`].
pub fn client(addr: SocketAddr, name: &str) -> assert_cmd::Command {
    client_waiting(addr, name, "5s")
}

/// [`client`] with another `--timeout`.
pub fn client_waiting(addr: SocketAddr, name: &str, timeout: &str) -> assert_cmd::Command {
    let mut c = cli();
    c.args(["--server", &addr.to_string(), "--name", name, "--timeout", timeout]);
    c
}

/// Waits for the child to exit, at most `wait`; kills it and panics otherwise.
pub fn wait_exit(child: &mut std::process::Child, wait: std::time::Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not exit within {wait:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A fake server's read loop: the requests that arrived on `s` with the next
/// read (none when a read ends mid-message); `None` at end of stream or on
/// an error, or at bytes that are not a request.
pub async fn read_requests(
    s: &mut tokio::net::TcpStream,
    dec: &mut chatctl::wire::Decoder,
) -> Option<Vec<chatctl::wire::Request>> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.ok().filter(|&n| n > 0)?;
    dec.feed(&buf[..n]);
    let mut out = Vec::new();
    while let Some(m) = dec.next_message().ok()? {
        match m {
            chatctl::wire::Message::Request(r) => out.push(r),
            _ => return None,
        }
    }
    Some(out)
}
