//! Interop with the original implementation (the Python project `lib/protocol.md`
//! describes), run for real: its server against chatctl's one-shot commands,
//! and its client against `chatctl serve`.
//!
//! Runs when `CHATCTL_REFERENCE` names a checkout of the original (the folder
//! holding `Server/` and `Client/`); it needs root and `ip`, and Python 3.9
//! (`CHATCTL_REFERENCE_PYTHON`, default `python` with `PYENV_VERSION=3.9.18`
//! unless already set). Otherwise every test says plainly that it skipped and
//! passes. The original's ports are fixed (13337, 55000–55030), so each test
//! runs its peers in a private network namespace of its own (loopback only,
//! deleted at the end); the tests take turns, since every client that left
//! the original server keeps a CPU core busy until the server is stopped.
//!
//! Nothing of the original is copied into this repository: its files are
//! copied into each test's temporary folder and run from there.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::common;

const CHATCTL: &str = env!("CARGO_BIN_EXE_chatctl");
/// How many times each one-shot command runs in a row.
const RUNS: usize = 20;
/// How many times `fetch --udp` and `fetch --tcp` run in a row.
const FETCH_RUNS: usize = 5;

/// One reference peer at a time (see the module docs).
static TURN: Mutex<()> = Mutex::new(());

/// The original's checkout, or `None` (with the reason printed) when this suite cannot run here.
fn reference() -> Option<PathBuf> {
    let skip = |why: &str| {
        report(&format!("SKIPPED: {why}"));
        None
    };
    let Some(dir) = std::env::var_os("CHATCTL_REFERENCE") else {
        return skip("CHATCTL_REFERENCE is not set (point it at a checkout of the original implementation)");
    };
    let dir = PathBuf::from(dir);
    if !dir.join("Server/Server.py").is_file() || !dir.join("Client/GUI.py").is_file() {
        return skip(&format!("{} holds no Server/Server.py and Client/GUI.py", dir.display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("not root (network namespaces need it)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return skip("no `ip` command");
    }
    if !python().args(["-c", "import sys; assert sys.version_info[:2] == (3, 9)"]).status().is_ok_and(|s| s.success()) {
        return skip("no Python 3.9 (set CHATCTL_REFERENCE_PYTHON)");
    }
    Some(dir)
}

/// A line for whoever runs the suite, shown even when the test harness
/// captures output (it captures `eprintln!`, not direct writes).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "interop: {line}");
}

/// The Python that runs the original (it does not run on 3.11 or later).
fn python_program() -> String {
    std::env::var("CHATCTL_REFERENCE_PYTHON").unwrap_or_else(|_| "python".into())
}

/// Selects Python 3.9 through pyenv unless the caller chose already.
fn pyenv(c: &mut Command) -> &mut Command {
    if std::env::var_os("PYENV_VERSION").is_none() {
        c.env("PYENV_VERSION", "3.9.18");
    }
    c
}

fn python() -> Command {
    let mut c = Command::new(python_program());
    pyenv(&mut c);
    c
}

/// A private network namespace with loopback up; its processes are killed
/// and the namespace deleted on drop.
struct Netns {
    name: String,
    children: Vec<Child>,
    /// The namespace's own `XDG_RUNTIME_DIR`: a `join` here offers its
    /// session only to the one-shots run here (session sockets are files,
    /// not bound to a network namespace).
    runtime: tempfile::TempDir,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("chatctl-interop-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name, children: Vec::new(), runtime: tempfile::tempdir().unwrap() };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// `program` run inside the namespace.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).env("XDG_RUNTIME_DIR", self.runtime.path());
        c
    }

    /// `chatctl -n NAME --timeout 10s ARGS…` against the server in the namespace.
    fn chatctl(&self, name: &str, args: &[&str]) -> Output {
        self.chatctl_env(name, args, ("XDG_RUNTIME_DIR", self.runtime.path()))
    }

    /// [`chatctl`](Self::chatctl) with one more environment variable.
    fn chatctl_env(&self, name: &str, args: &[&str], (key, value): (&str, &std::path::Path)) -> Output {
        let mut c = self.cmd(CHATCTL);
        c.args(["-s", "127.0.0.1:13337", "-n", name, "--timeout", "10s", "--color", "never"]).args(args);
        c.env_remove("CHATCTL_NAME").env_remove("CHATCTL_SERVER").env(key, value);
        c.output().unwrap()
    }

    /// Starts `c` and keeps it until the namespace goes.
    fn spawn(&mut self, c: &mut Command) -> &mut Child {
        self.children.push(c.spawn().unwrap());
        self.children.last_mut().unwrap()
    }

    /// A `chatctl join --json` in pipe mode as the user `name`, joined, its
    /// output read on a thread: `BOB`, whom the other side talks to.
    fn listener(&mut self, name: &str) -> Listener {
        let mut c = self.cmd(CHATCTL);
        c.args(["-s", "127.0.0.1:13337", "-n", name, "--timeout", "10s", "--json", "join"]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut l = Listener::new(self.spawn(&mut c));
        // Input is read once the join is complete: the answer says BOB is in.
        l.send("/users");
        l.until("user list", |v| v["kind"] == "users");
        l
    }

    /// Waits until something listens on TCP `port` in the namespace.
    fn wait_listening(&self, port: u16, log: &Path) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.cmd("ss").args(["-Hltn", &format!("sport = :{port}")]).output().unwrap();
            if !out.stdout.is_empty() {
                return;
            }
            assert!(Instant::now() < end, "nothing listens on {port}; log:\n{}", read_log(log));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn run(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn read_log(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    s[s.len().saturating_sub(4000)..].to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What a test serves: a 200 kB file whose last byte is 130 (not a multiple
/// of the 1000-byte chunk), a short text with spaces in its name, an empty file.
fn served_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut big = common::data(200_001, 13);
    *big.last_mut().unwrap() = 130;
    let files = vec![
        ("data.bin".to_string(), big),
        ("notes with spaces.txt".to_string(), "héllo from the files folder\n".as_bytes().to_vec()),
        ("empty.bin".to_string(), Vec::new()),
    ];
    std::fs::create_dir_all(dir).unwrap();
    for (n, d) in &files {
        std::fs::write(dir.join(n), d).unwrap();
    }
    files
}

/// The original server, from a copy of its `Server/` folder (its files come
/// from `./Files`), in a fresh namespace. Its stdout (a blank line per spin
/// of every departed client's thread) is discarded; stderr is kept.
struct RefServer {
    ns: Netns,
    files: Vec<(String, Vec<u8>)>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RefServer {
    fn start(reference: &Path) -> RefServer {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("Server");
        std::fs::create_dir(&server).unwrap();
        for e in std::fs::read_dir(reference.join("Server")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "py") {
                std::fs::copy(&p, server.join(p.file_name().unwrap())).unwrap();
            }
        }
        let files = served_files(&server.join("Files"));
        let log = dir.path().join("server.log");
        let mut ns = Netns::new();
        let mut c = ns.cmd(&python_program());
        pyenv(&mut c).arg("main.py").current_dir(&server);
        c.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        ns.spawn(&mut c);
        ns.wait_listening(13337, &log);
        RefServer { ns, files, log, _dir: dir }
    }
}

/// A chatctl `join --json` session: its input and its output lines.
struct Listener {
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Listener {
    fn new(child: &mut Child) -> Listener {
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { return };
                let v = serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Listener { stdin: child.stdin.take(), lines }
    }

    /// Output lines until one satisfies `f` (that one included).
    fn until(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let end = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let done = f(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no {what} in the listener's output; got {seen:?}"),
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Ends the session (end of input leaves the room).
    fn leave(&mut self) {
        self.stdin = None;
    }
}

fn is(v: &serde_json::Value, kind: &str, key: &str, value: &str) -> bool {
    v["kind"] == kind && v[key] == value
}

/// Runs `check` `n` times in a row; panics with the count that worked.
fn in_a_row(what: &str, n: usize, log: &Path, mut check: impl FnMut(usize) -> Result<(), String>) {
    for i in 0..n {
        if let Err(e) = check(i) {
            panic!("{what}: {i} of {n} worked, then: {e}\nserver stderr:\n{}", read_log(log));
        }
    }
    report(&format!("{what}: {n} of {n}"));
}

fn ok(out: &Output) -> Result<String, String> {
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!("exit {:?}: {}", out.status.code(), text(&out.stderr)))
    }
}

#[test]
fn list_and_list_files_against_the_reference_server() {
    let Some(reference) = reference() else { return };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut srv = RefServer::start(&reference);
    let _bob = srv.ns.listener("BOB");
    let log = srv.log.clone();
    in_a_row("list", RUNS, &log, |_| {
        let out = ok(&srv.ns.chatctl("ALICE", &["list"]))?;
        if out == "BOB\n" { Ok(()) } else { Err(format!("stdout {out:?}, want BOB")) }
    });
    let mut want: Vec<String> = srv.files.iter().map(|(n, _)| format!("{n}\n")).collect();
    want.sort();
    in_a_row("list --files", RUNS, &log, |_| {
        let out = ok(&srv.ns.chatctl("ALICE", &["list", "--files"]))?;
        let mut got: Vec<String> = out.split_inclusive('\n').map(str::to_string).collect();
        got.sort();
        if got == want { Ok(()) } else { Err(format!("stdout {out:?}, want {want:?}")) }
    });
}

#[test]
fn say_and_whisper_against_the_reference_server() {
    let Some(reference) = reference() else { return };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut srv = RefServer::start(&reference);
    let mut bob = srv.ns.listener("BOB");
    let log = srv.log.clone();
    in_a_row("say", RUNS, &log, |i| {
        let msg = format!("hello {i}, ünïcode ✓");
        let out = ok(&srv.ns.chatctl("ALICE", &["say", "--json", &msg]))?;
        let want = serde_json::json!({ "messages": 1, "text": msg, "to": ["BOB"] }).to_string() + "\n";
        if out != want {
            return Err(format!("stdout {out:?}, want {want:?}"));
        }
        bob.until(&format!("broadcast {i}"), |v| is(v, "broadcast", "text", &msg));
        Ok(())
    });
    in_a_row("whisper", RUNS, &log, |i| {
        let msg = format!("psst {i}");
        ok(&srv.ns.chatctl("ALICE", &["whisper", "BOB", &msg]))?;
        let seen = bob.until(&format!("whisper {i}"), |v| is(v, "whisper", "text", &msg));
        let got = seen.last().unwrap();
        if got["from"] == "ALICE" { Ok(()) } else { Err(format!("whisper from {}", got["from"])) }
    });
    // Refusals come through with their exit codes.
    let out = srv.ns.chatctl("ALICE", &["whisper", "EVE", "anyone?"]);
    assert_eq!(out.status.code(), Some(i32::from(chatctl::exit::Exit::NoSuchUser.code())), "{}", text(&out.stderr));
    // A one-shot under BOB's name goes through BOB's running `join` (a
    // shared session)…
    let out = srv.ns.chatctl("BOB", &["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // …while one that cannot reach that session joins, and the original refuses the name.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = srv.ns.chatctl_env("BOB", &["list"], ("XDG_RUNTIME_DIR", elsewhere.path()));
    assert_eq!(out.status.code(), Some(i32::from(chatctl::exit::Exit::NameTaken.code())), "{}", text(&out.stderr));
    bob.leave();
}

#[test]
fn fetch_against_the_reference_server() {
    let Some(reference) = reference() else { return };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let srv = RefServer::start(&reference);
    let out_dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut fetch = |transport: Option<&str>| -> Result<(), String> {
        n += 1;
        let target = out_dir.path().join(format!("data-{n}.bin"));
        let mut args = vec!["fetch", "--json", "data.bin", "-o", target.to_str().unwrap()];
        args.extend(transport);
        let out = ok(&srv.ns.chatctl("ALICE", &args))?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        let want = &srv.files[0].1;
        if std::fs::read(&target).map_err(|e| e.to_string())? != *want {
            return Err(format!("{} differs from the served file", target.display()));
        }
        let udp = transport != Some("--tcp");
        if v["size"] != want.len() || v["last_byte"] != 130 || (udp && v["udp_mode"] != "classic") {
            return Err(format!("summary {v}"));
        }
        Ok(())
    };
    let log = srv.log.clone();
    in_a_row("fetch", RUNS, &log, |_| fetch(None));
    in_a_row("fetch --udp", FETCH_RUNS, &log, |_| fetch(Some("--udp")));
    in_a_row("fetch --tcp", FETCH_RUNS, &log, |_| fetch(Some("--tcp")));
    // The other files, once over each transport.
    for (name, data) in &srv.files[1..] {
        for transport in ["--udp", "--tcp"] {
            let target = out_dir.path().join(format!("{transport}-{name}"));
            let out = srv.ns.chatctl("ALICE", &["fetch", transport, name, "-o", target.to_str().unwrap()]);
            ok(&out).unwrap_or_else(|e| panic!("fetch {transport} {name}: {e}\nserver stderr:\n{}", read_log(&log)));
            assert_eq!(std::fs::read(&target).unwrap(), *data, "fetch {transport} {name}");
        }
    }
    report("fetch --udp and --tcp of a text with spaces in its name and of an empty file: 4 of 4");
}

/// The original's client (driven through its own GUI methods by
/// `tests/interop/reference_client.py`, as its buttons would) against
/// `chatctl serve`, with BOB in the room as a chatctl `join`.
#[test]
fn reference_client_against_chatctl_serve() {
    let Some(reference) = reference() else { return };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    let mut files = served_files(&share);
    // Its UDP receiver sleeps 2 s every tenth datagram and drops every eleventh: a small file.
    let mut small = common::data(12_345, 7);
    *small.last_mut().unwrap() = 130;
    std::fs::write(share.join("small.bin"), &small).unwrap();
    files.push(("small.bin".into(), small));
    let log = dir.path().join("serve.log");
    let mut ns = Netns::new();
    let mut serve = ns.cmd(CHATCTL);
    serve.args(["serve", "--listen", "0.0.0.0:13337", "--files", share.to_str().unwrap()]);
    serve.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    ns.spawn(&mut serve);
    ns.wait_listening(13337, &log);
    let mut bob = ns.listener("BOB");

    let harness = dir.path().join("reference_client.py");
    std::fs::write(&harness, include_str!("interop/reference_client.py")).unwrap();
    let spec = serde_json::json!({
        "say": "hello everyone, from the original client",
        "whisper": "psst, BOB",
        "expect_whisper": "hello alice, from BOB",
        "downloads": [["data.bin", "TCP"], ["small.bin", "UDP"]],
    });
    let mut c = ns.cmd(&python_program());
    let result = dir.path().join("result.json");
    pyenv(&mut c).arg(&harness).arg(reference.join("Client")).args(["127.0.0.1", "alice", "BOB", &spec.to_string()]);
    c.arg(&result);
    c.current_dir(dir.path()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let client = c.spawn().unwrap();

    bob.until("alice joining", |v| is(v, "joined", "name", "alice"));
    bob.send("@alice hello alice, from BOB");
    let out = client.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the reference client failed: {}\n{stdout}\nserve log:\n{}",
        text(&out.stderr),
        read_log(&log)
    );
    let written = std::fs::read_to_string(&result).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let got: serde_json::Value = serde_json::from_str(&written).unwrap_or_else(|e| panic!("{e}: {written}\n{stdout}"));

    let users: Vec<&str> =
        got["users"].as_array().unwrap().iter().filter_map(|u| u.as_str()).filter(|u| *u != "everyone").collect();
    assert_eq!(users, ["BOB"], "the user list it read");
    let mut listed: Vec<&str> = got["files"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
    listed.sort();
    let mut want: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    want.sort();
    assert_eq!(listed, want, "the files list it read");
    for d in got["downloads"].as_array().unwrap() {
        let name = d["file"].as_str().unwrap();
        let served = &files.iter().find(|(n, _)| n == name).unwrap().1;
        let path = d["path"].as_str().unwrap();
        assert!(std::fs::read(path).unwrap() == *served, "{} download of {name} differs", d["transport"]);
        report(&format!(
            "the original client downloaded {name} over {}: {} bytes, exact",
            d["transport"],
            served.len()
        ));
    }
    assert!(got["files_log"].as_str().unwrap().contains("Last byte of the file is: 130"), "{}", got["files_log"]);
    assert!(got["chat"].as_str().unwrap().contains("hello alice, from BOB"), "{}", got["chat"]);
    assert_eq!(got["shown"], serde_json::json!([["askyesnocancel", "Leave Chat"]]), "message boxes it showed");

    let seen = bob.until("alice leaving", |v| is(v, "left", "name", "alice"));
    assert!(
        seen.iter()
            .any(|v| is(v, "broadcast", "text", "hello everyone, from the original client") && v["from"] == "alice"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|v| is(v, "whisper", "text", "psst, BOB") && v["from"] == "alice"), "{seen:?}");
    report(
        "the original client against chatctl serve: 1 of 1 (join, users, say, whisper, files, TCP and UDP downloads, a whisper received, leave)",
    );
}
