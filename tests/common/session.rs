//! Helpers of the shared-session and reconnect tests: a real `chatctl serve`
//! child that can be stopped and started again on the same port, a user
//! held by the test, children with piped standard streams read line by line,
//! and a private session folder per test (XDG_RUNTIME_DIR).
#![allow(dead_code)]

pub use super::{Lines, bin, wait_exit};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatctl::client::{Session, Updates};
use chatctl::exit::Exit;
use chatctl::wire::Update;

/// How long any single wait may take before a test fails.
pub const T: Duration = Duration::from_secs(10);

pub fn code(e: Exit) -> i32 {
    i32::from(e.code())
}

/// A `chatctl serve` child on a port the OS chose once (bound to 0, then
/// released), so it can be stopped and started again on the same port.
pub struct Serve {
    pub addr: SocketAddr,
    files: Option<PathBuf>,
    child: Option<Child>,
}

impl Serve {
    pub fn start() -> Serve {
        Self::serving(None)
    }

    /// The server, offering the files in `files` (if any).
    pub fn serving(files: Option<&Path>) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = Serve { addr, files: files.map(Path::to_path_buf), child: None };
        s.restart();
        s
    }

    /// Starts the server (again) and waits until it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", &self.addr.to_string(), "--ports", "0", "--color", "never"]);
        if let Some(f) = &self.files {
            cmd.arg("--files").arg(f);
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + T;
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "chatctl serve did not listen on {}", self.addr);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM (an orderly shutdown), then waits for the child to exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        signal(&child, "TERM");
        wait_exit(&mut child, T);
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -{sig} failed");
}

/// A user held by the test, with its own runtime.
pub struct Watcher {
    rt: tokio::runtime::Runtime,
    pub session: Session,
    updates: Updates,
}

impl Watcher {
    pub fn join(addr: SocketAddr, name: &str) -> Watcher {
        Self::try_join(addr, name).unwrap()
    }

    pub fn try_join(addr: SocketAddr, name: &str) -> Result<Watcher, chatctl::client::ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (session, updates) = rt.block_on(Session::join(&addr.to_string(), name, T))?;
        Ok(Watcher { rt, session, updates })
    }

    /// The next update within `wait`.
    pub fn next(&mut self, wait: Duration) -> Option<Update> {
        self.rt.block_on(async { tokio::time::timeout(wait, self.updates.next()).await.ok().flatten()?.ok() })
    }

    /// Every update until `wait` passes with none.
    pub fn drain(&mut self, wait: Duration) -> Vec<Update> {
        std::iter::from_fn(|| self.next(wait)).collect()
    }

    /// The texts `from` broadcast, until `n` of them came (panics after [`T`]).
    pub fn broadcasts_from(&mut self, from: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + T;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_else(|| panic!("got only {got:?}"));
            match self.next(left) {
                Some(Update::Broadcast { from: f, text }) if f == from => got.push(text),
                Some(_) => {}
                None => panic!("got only {got:?}"),
            }
        }
        got
    }

    pub fn say(&self, text: &str) {
        self.rt.block_on(self.session.broadcast(text)).unwrap();
    }

    pub fn whisper(&self, to: &str, text: &str) {
        self.rt.block_on(self.session.whisper(to, text)).unwrap();
    }

    pub fn users(&self) -> Vec<String> {
        self.rt.block_on(self.session.users()).unwrap()
    }

    pub fn leave(self) {
        self.rt.block_on(self.session.leave()).unwrap();
    }
}

/// `chatctl` with the server, a name, a short --timeout, no colour, and the
/// session folder under `runtime`.
pub fn chatctl(addr: SocketAddr, name: &str, runtime: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(["--server", &addr.to_string(), "--name", name, "--timeout", "5s", "--color", "never"])
        .env_remove("CHATCTL_NAME")
        .env("XDG_RUNTIME_DIR", runtime);
    c
}

/// `chatctl ARGS` as a child with piped standard streams.
pub fn spawn(addr: SocketAddr, name: &str, runtime: &Path, args: &[&str]) -> Child {
    chatctl(addr, name, runtime)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `chatctl ARGS` to the end with no input: (exit code, stdout, stderr).
pub fn run(addr: SocketAddr, name: &str, runtime: &Path, args: &[&str]) -> (i32, String, String) {
    let o = chatctl(addr, name, runtime).args(args).stdin(Stdio::null()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}
