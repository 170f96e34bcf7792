//! The client subcommands as a user runs them: streaming stdin, Ctrl-C,
//! every documented exit code, name resolution, `fetch -o` and `join` in pipe
//! mode. Against the real room server on loopback, or against a small
//! recording server when a test must see exactly what the client sent (the
//! `101` on Ctrl-C) or needs a misbehaving peer (a short transfer, silence).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use chatctl::client::{Session, Updates};
use chatctl::exit::Exit;
use chatctl::server::Config;
use chatctl::wire::{Confirm, Decoder, Direction, Message, Request, Update};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common;

use common::{Lines, background, wait_exit};

const T: Duration = Duration::from_secs(5);

/// The real room server serving `files` (if any), at most `max_users` users.
fn server(files: Option<&std::path::Path>, max_users: usize) -> SocketAddr {
    common::server_with(Config { max_users, ..common::config(files) })
}

/// A user held by the test, with its own runtime.
struct Watcher {
    rt: tokio::runtime::Runtime,
    session: Session,
    updates: Updates,
}

impl Watcher {
    fn join(addr: SocketAddr, name: &str) -> Watcher {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (session, updates) = rt.block_on(Session::join(&addr.to_string(), name, T)).unwrap();
        Watcher { rt, session, updates }
    }

    /// The next update within `wait`.
    fn next(&mut self, wait: Duration) -> Option<Update> {
        self.rt.block_on(async { tokio::time::timeout(wait, self.updates.next()).await.ok().flatten()?.ok() })
    }

    /// Waits for `want`, skipping other updates; panics after `wait`.
    fn expect(&mut self, want: &Update, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(u) if &u == want => return,
                Some(u) => seen.push(u),
                None => break,
            }
        }
        panic!("did not see {want:?} within {wait:?}; saw {seen:?}");
    }
}

/// `chatctl ARGS` as a child with piped stdin/stdout/stderr.
fn spawn(addr: SocketAddr, name: &str, args: &[&str]) -> Child {
    std::process::Command::new(common::bin())
        .args(["--server", &addr.to_string(), "--name", name, "--timeout", "5s", "--color", "never"])
        .args(args)
        .env_remove("CHATCTL_NAME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigint(child: &Child) {
    let ok = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -INT failed");
}

fn code(e: Exit) -> i32 {
    i32::from(e.code())
}

// ---- a recording server: classic protocol, remembers every request ----

/// What the recording server was sent, in order, by everyone.
type Log = Arc<Mutex<Vec<Request>>>;

/// A classic server that logs requests. Joins always succeed (the room is
/// just `BOB`); `SHORT` is announced as 100 bytes and only 10 are sent (TCP);
/// `LONG` sends 150; `STALL` is announced and its transfer connection never sends anything;
/// a broadcast `BYE` makes it drop the client's connections.
fn recording_server() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    (fake_server(move |s| record(s, l.clone())), log)
}

/// A fake server on loopback: each connection runs `session` on a background runtime.
fn fake_server<F>(session: impl Fn(TcpStream) -> F + Send + 'static) -> SocketAddr
where
    F: Future<Output = ()> + Send + 'static,
{
    background(move || async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(session(s));
            }
        });
        addr
    })
}

async fn record(s: TcpStream, log: Log) {
    fake_session(s, move |req: Request| {
        log.lock().unwrap().push(req.clone());
        async move {
            match req {
                Request::Users => Reply::Send(Confirm::Users { users: vec!["BOB".into()] }.into()),
                Request::Files => Reply::Send(Confirm::Files { files: vec!["SHORT".into(), "STALL".into()] }.into()),
                Request::Whisper { .. } => Reply::Send(Confirm::WhisperSent.into()),
                Request::Broadcast { text } if text == "BYE" => Reply::HangUp, // the server goes away
                Request::Broadcast { .. } => Reply::Send(Confirm::BroadcastSent { to: vec!["BOB".into()] }.into()),
                Request::Download { file, .. } => {
                    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let port = l.local_addr().unwrap().port();
                    tokio::spawn(async move {
                        let (mut t, _) = l.accept().await.unwrap();
                        if file == "SHORT" {
                            let _ = t.write_all(&[7u8; 10]).await;
                        } else if file == "LONG" {
                            let _ = t.write_all(&[7u8; 150]).await;
                        } else {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    });
                    Reply::Send(Confirm::Download { size: 100, port }.into())
                }
                Request::Join { .. } | Request::Leave => Reply::Standard,
            }
        }
    })
    .await
}

/// What a fake server does with one request.
enum Reply {
    /// `100`: a real update connection, then `200`; `101`: close the update
    /// connection (FIN), then `201`; any other request: no answer.
    Standard,
    Send(Message),
    /// Close the main connection.
    HangUp,
}

/// One connection to a fake server: every request goes to `answer`.
async fn fake_session<F: Future<Output = Reply>>(mut s: TcpStream, mut answer: impl FnMut(Request) -> F) {
    let mut dec = Decoder::new(Direction::ToServer);
    let mut buf = [0u8; 1024];
    let mut update: Option<TcpStream> = None;
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        dec.feed(&buf[..n]);
        while let Ok(Some(Message::Request(req))) = dec.next_message() {
            let reply: Message = match (answer(req.clone()).await, req) {
                (Reply::Send(m), _) => m,
                (Reply::HangUp, _) => return,
                (Reply::Standard, Request::Join { name }) => {
                    let ul = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let port = ul.local_addr().unwrap().port();
                    s.write_all(&Message::from(Confirm::Joined { name, port }).to_bytes().unwrap()).await.unwrap();
                    update = Some(ul.accept().await.unwrap().0);
                    continue;
                }
                (Reply::Standard, Request::Leave) => {
                    update = None;
                    Confirm::Left.into()
                }
                (Reply::Standard, _) => continue,
            };
            let _ = &update;
            if s.write_all(&reply.to_bytes().unwrap()).await.is_err() {
                return;
            }
        }
    }
}

/// Waits until the log holds `n` requests matching `f`.
fn wait_logged(log: &Log, wait: Duration, f: impl Fn(&Request) -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if log.lock().unwrap().iter().any(&f) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

// ---- say ----

/// `tail -f log | chatctl say`: each line is delivered while stdin is still
/// open, and its recipients are printed as it goes.
#[test]
fn say_streams_stdin_line_by_line() {
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let mut child = spawn(addr, "ALICE", &["say"]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = Lines::of(child.stdout.take().unwrap());
    // Nothing to send yet: nobody joins.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bob.next(Duration::from_millis(100)), None, "joined before there was anything to send");
    stdin.write_all(b"first line\n").unwrap();
    stdin.flush().unwrap();
    bob.expect(&Update::Joined { name: "ALICE".into() }, T);
    bob.expect(&Update::Broadcast { from: "ALICE".into(), text: "first line".into() }, T);
    let line = stdout.next();
    assert_eq!(line, "sent to BOB\n", "the recipients are printed per line, before stdin ends");
    // A long line is split; CRLF line ends lose their CR.
    let long = "z".repeat(150);
    stdin.write_all(format!("{long}\r\n").as_bytes()).unwrap();
    drop(stdin);
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
    let mut got = String::new();
    for _ in 0..2 {
        match bob.next(T) {
            Some(Update::Broadcast { text, .. }) => got.push_str(&text),
            u => panic!("unexpected {u:?}"),
        }
    }
    assert_eq!(got, long);
    bob.expect(&Update::Left { name: "ALICE".into() }, T);
}

/// Ctrl-C (SIGINT) while `say` waits for more input: it leaves with `101` and
/// exits 130, without waiting for stdin to close.
#[test]
fn ctrl_c_leaves_with_101_and_exits_130() {
    let (addr, log) = recording_server();
    let mut child = spawn(addr, "ALICE", &["say"]);
    let mut stdin = child.stdin.take().unwrap(); // kept open: the read never ends by itself
    stdin.write_all(b"one\n").unwrap();
    stdin.flush().unwrap();
    assert!(wait_logged(&log, T, |r| matches!(r, Request::Join { .. })), "no join");
    std::thread::sleep(Duration::from_millis(200)); // let the update connection open
    sigint(&child);
    let status = wait_exit(&mut child, T);
    assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{status:?}");
    assert!(wait_logged(&log, Duration::from_secs(1), |r| *r == Request::Leave), "no 101: {:?}", log.lock().unwrap());
    drop(stdin);
}

/// Ctrl-C during a download that stalls: `101`, exit 130, no temporary file left.
#[test]
fn ctrl_c_during_fetch_cleans_up() {
    let (addr, log) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(addr, "ALICE", &["fetch", "--tcp", "STALL", "-o", dir.path().to_str().unwrap()]);
    assert!(wait_logged(&log, T, |r| matches!(r, Request::Download { .. })), "no download request");
    std::thread::sleep(Duration::from_millis(200));
    sigint(&child);
    let status = wait_exit(&mut child, T);
    assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{status:?}");
    assert!(wait_logged(&log, Duration::from_secs(1), |r| *r == Request::Leave), "no 101");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

// ---- exit codes ----

#[test]
fn server_full_exits_6() {
    let addr = server(None, 1);
    let _bob = Watcher::join(addr, "BOB");
    common::client(addr, "ALICE")
        .arg("list")
        .assert()
        .code(code(Exit::ServerFull))
        .stderr(predicates::str::contains("server full"));
}

#[test]
fn silent_server_exits_9() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let mut c = Command::new(common::bin());
    c.args(["--server", &addr.to_string(), "--name", "ALICE", "--timeout", "300ms", "list"])
        .assert()
        .code(code(Exit::Timeout))
        // Connected, then no answer: told apart from a connection never accepted (exit 3).
        .stderr(predicates::str::contains("timed out waiting for the answer to join (the connection was accepted)"));
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    drop(listener);
}

#[test]
fn short_or_long_transfer_exits_10_and_writes_nothing() {
    let (addr, _log) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    common::client(addr, "ALICE")
        .args(["fetch", "--tcp", "SHORT", "-o", dir.path().to_str().unwrap()])
        .assert()
        .code(code(Exit::TransferFailed))
        .stderr(predicates::str::contains("received 10 of 100 bytes"));
    common::client(addr, "ALICE")
        .args(["fetch", "--tcp", "LONG", "-o", dir.path().to_str().unwrap()])
        .assert()
        .code(code(Exit::TransferFailed))
        .stderr(predicates::str::contains("more than the announced 100 bytes"));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn invalid_and_taken_names_say_what_to_do() {
    let addr = server(None, 10);
    let _bob = Watcher::join(addr, "BOB");
    common::client(addr, "BOB")
        .arg("list")
        .assert()
        .code(code(Exit::NameTaken))
        .stderr(predicates::str::contains("--name"));
    common::client(addr, "x")
        .arg("list")
        .assert()
        .code(code(Exit::InvalidName))
        .stderr(predicates::str::contains("2 to 99"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    common::client(closed, "ALICE")
        .arg("list")
        .assert()
        .code(code(Exit::Connect))
        .stderr(predicates::str::contains(closed.to_string()).and(predicates::str::contains("refused")));
}

use predicates::prelude::PredicateBooleanExt;

// ---- the name ----

/// `--name` beats `CHATCTL_NAME`, which beats the login name (`USER`).
#[test]
fn name_from_flag_env_then_login() {
    let (addr, log) = recording_server();
    let joined = |log: &Log| -> Vec<String> {
        log.lock()
            .unwrap()
            .iter()
            .filter_map(|r| match r {
                Request::Join { name } => Some(name.clone()),
                _ => None,
            })
            .collect()
    };
    let base = || {
        let mut c = Command::new(common::bin());
        c.args(["--server", &addr.to_string(), "list"]).env_remove("CHATCTL_NAME").env_remove("LOGNAME");
        c
    };
    base().env("USER", "loginname").assert().success();
    base().env("USER", "loginname").env("CHATCTL_NAME", "ENVNAME").assert().success();
    base().env("USER", "loginname").env("CHATCTL_NAME", "ENVNAME").args(["--name", "FLAG"]).assert().success();
    assert_eq!(joined(&log), ["loginname", "ENVNAME", "FLAG"]);
    let leaves = log.lock().unwrap().iter().filter(|r| **r == Request::Leave).count();
    assert_eq!(leaves, 3, "every one-shot command leaves with 101");
    // No way to tell the name: a clear error before connecting.
    base()
        .env_remove("USER")
        .env_remove("USERNAME")
        .assert()
        .code(code(Exit::Failure))
        .stderr(predicates::str::contains("--name"));
    assert_eq!(joined(&log).len(), 3);
}

// ---- list ----

#[test]
fn list_empty_room_and_no_files_prints_nothing() {
    let addr = server(None, 10);
    // Not on a terminal: not a word on stderr either (scripts).
    common::client(addr, "ALICE").arg("list").assert().success().stdout("").stderr("");
    common::client(addr, "ALICE").arg("list").assert().success().stdout("");
    common::client(addr, "ALICE").args(["list", "--files"]).assert().success().stdout("");
    common::client(addr, "ALICE").args(["list", "--json"]).assert().success().stdout("[]\n");
    common::client(addr, "ALICE").args(["list", "--files", "--json"]).assert().success().stdout("[]\n");
}

// ---- whisper ----

#[test]
fn whisper_stdin_json_and_missing_user() {
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let out = common::client(addr, "ALICE")
        .args(["whisper", "--json", "BOB", "-"])
        .write_stdin(format!("hi\n{}\n", "w".repeat(120)))
        .assert()
        .success();
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.get_output().stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "one object per line sent: {lines:?}");
    assert_eq!(lines[0], serde_json::json!({"to": "BOB", "text": "hi", "messages": 1}));
    assert_eq!(lines[1]["messages"], 2);
    bob.expect(&Update::Whisper { from: "ALICE".into(), text: "hi".into() }, T);
    // No USER and no terminal to pick one: a usage error before connecting.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    common::client(closed, "ALICE")
        .arg("whisper")
        .assert()
        .code(code(Exit::Usage))
        .stderr(predicates::str::contains("USER"));
}

// ---- fetch ----

fn served() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut a: Vec<u8> = (0..123_457u32).map(|i| (i % 253) as u8).collect();
    *a.last_mut().unwrap() = 130;
    std::fs::write(d.path().join("a.bin"), a).unwrap();
    std::fs::write(d.path().join("b.txt"), "bee\n").unwrap();
    std::fs::write(d.path().join("empty"), "").unwrap();
    d
}

#[test]
fn fetch_output_paths_and_final_line() {
    let files = served();
    let addr = server(Some(files.path()), 10);
    let dir = tempfile::tempdir().unwrap();
    // Several files with -o: a folder, created if missing. On a pipe, nothing on stderr.
    let sub = dir.path().join("new/sub");
    let out = common::client(addr, "ALICE")
        .args(["fetch", "a.bin", "b.txt", "empty", "-o", sub.to_str().unwrap()])
        .assert()
        .success()
        .stderr("");
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let a_line = stdout.lines().find(|l| l.contains("of a.bin")).unwrap_or_else(|| panic!("{stdout}"));
    let re_ok = a_line.starts_with("ALICE downloaded 100% of a.bin (123,457 bytes) in ")
        && a_line.contains("s at ")
        && a_line.ends_with("/s. Last byte: 130");
    assert!(re_ok, "{a_line}");
    assert!(stdout.contains("of empty (0 bytes)") && stdout.contains("Last byte: none (empty file)"), "{stdout}");
    for f in ["a.bin", "b.txt", "empty"] {
        assert_eq!(std::fs::read(sub.join(f)).unwrap(), std::fs::read(files.path().join(f)).unwrap(), "{f}");
    }
    // One file with -o: that file's name.
    let named = dir.path().join("renamed.bin");
    common::client(addr, "ALICE").args(["fetch", "--tcp", "a.bin", "-o", named.to_str().unwrap()]).assert().success();
    assert_eq!(std::fs::read(&named).unwrap(), std::fs::read(files.path().join("a.bin")).unwrap());
    // One file, -o an existing folder: inside it.
    common::client(addr, "ALICE").args(["fetch", "b.txt", "-o", dir.path().to_str().unwrap()]).assert().success();
    assert!(dir.path().join("b.txt").is_file());
    // Refuses to overwrite: exit 1, file unchanged, and says --force.
    std::fs::write(&named, "mine").unwrap();
    common::client(addr, "ALICE")
        .args(["fetch", "a.bin", "-o", named.to_str().unwrap()])
        .assert()
        .code(code(Exit::Failure))
        .stderr(predicates::str::contains("--force"));
    assert_eq!(std::fs::read(&named).unwrap(), b"mine");
    // The same file twice into one folder is refused.
    common::client(addr, "ALICE")
        .args(["fetch", "b.txt", "b.txt", "-o", sub.to_str().unwrap(), "--force"])
        .assert()
        .code(code(Exit::Failure))
        .stderr(predicates::str::contains("both be written"));
    // --json: one summary object per file.
    let out = common::client(addr, "ALICE")
        .args(["fetch", "--json", "--force", "a.bin", "-o", named.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["file"], "a.bin");
    assert_eq!(v["size"], 123_457);
    assert_eq!(v["last_byte"], 130);
    assert_eq!(v["transport"], "udp", "UDP is the default");
    assert_eq!(v["name"], "ALICE");
    assert!(v["seconds"].as_f64().unwrap() > 0.0 && v["bytes_per_second"].as_f64().unwrap() > 0.0, "{v}");
    // -v on a pipe says what it does.
    common::client(addr, "ALICE")
        .args(["fetch", "-v", "--force", "b.txt", "-o", dir.path().to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicates::str::contains("fetching b.txt over UDP to"));
    // No FILE and no terminal: a usage error.
    common::client(addr, "ALICE").arg("fetch").assert().code(code(Exit::Usage));
    let names: Vec<String> = walk(dir.path());
    assert!(names.iter().all(|n| !n.ends_with(".chatctl-part")), "{names:?}");
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            v.extend(walk(&e.path()));
        } else {
            v.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    v
}

// ---- join, pipe mode ----

/// A bot: `/get` in the background, EOF waits for it, then leaves; every
/// update is one JSON object.
#[test]
fn join_pipe_get_finishes_before_leaving() {
    let files = served();
    let addr = server(Some(files.path()), 10);
    let mut bob = Watcher::join(addr, "BOB");
    let cwd = tempfile::tempdir().unwrap();
    let out = common::client(addr, "ALICE")
        .current_dir(cwd.path())
        .args(["join", "--json"])
        .write_stdin("/get a.bin --tcp\n/get b.txt\nhello\n")
        .timeout(Duration::from_secs(20))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let objs: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let downloads: Vec<&serde_json::Value> = objs.iter().filter(|o| o["kind"] == "download").collect();
    assert_eq!(downloads.len(), 2, "{stdout}");
    for f in ["a.bin", "b.txt"] {
        assert_eq!(std::fs::read(cwd.path().join(f)).unwrap(), std::fs::read(files.path().join(f)).unwrap());
    }
    bob.expect(&Update::Broadcast { from: "ALICE".into(), text: "hello".into() }, T);
    bob.expect(&Update::Left { name: "ALICE".into() }, T);
}

/// Plain pipe mode: one line per update, with the time; refusals are
/// reported and the session goes on.
#[test]
fn join_pipe_plain_lines() {
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let mut child = spawn(addr, "ALICE", &["join"]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = Lines::of(child.stdout.take().unwrap());
    let stderr = Lines::of(child.stderr.take().unwrap());
    bob.expect(&Update::Joined { name: "ALICE".into() }, T);
    bob.rt.block_on(bob.session.broadcast("hi\u{7}\r\nthere")).unwrap();
    let line = stdout.next();
    // `HH:MM:SS BOB: text`, control characters escaped, one line.
    assert_eq!(line.get(2..3), Some(":"), "{line:?}");
    assert!(line.ends_with(" BOB: hi\\u{7}\\r\\nthere\n"), "{line:?}");
    stdin.write_all(b"@NOBODY hey\n/w BOB psst\n").unwrap();
    stdin.flush().unwrap();
    // A refusal goes to stderr, the session goes on.
    let line = stderr.next();
    assert!(line.contains("NOBODY is not in the room; here: BOB"), "{line:?}");
    bob.expect(&Update::Whisper { from: "ALICE".into(), text: "psst".into() }, T);
    stdin.write_all(b"/quit\n").unwrap();
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
    bob.expect(&Update::Left { name: "ALICE".into() }, T);
}

/// SIGINT in pipe mode: leaves (`101`) and exits 130 even though stdin is open.
#[test]
fn join_pipe_ctrl_c() {
    let (addr, log) = recording_server();
    let mut child = spawn(addr, "ALICE", &["join"]);
    let _stdin = child.stdin.take().unwrap();
    assert!(wait_logged(&log, T, |r| matches!(r, Request::Join { .. })), "no join");
    std::thread::sleep(Duration::from_millis(200));
    sigint(&child);
    let status = wait_exit(&mut child, T);
    assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{status:?}");
    assert!(wait_logged(&log, Duration::from_secs(1), |r| *r == Request::Leave), "no 101");
}

// ---- on a terminal, through util-linux `script` (a pseudo-terminal) ----

fn have_script() -> bool {
    let ok = std::process::Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        common::skip("`script` (util-linux) is not installed");
    }
    ok
}

/// Runs `chatctl ARGS` on a pseudo-terminal in `cwd`; what the test writes is typed.
fn on_pty(addr: SocketAddr, args: &str, cwd: &std::path::Path) -> Child {
    on_pty_as(addr, args, cwd, None)
}

/// [`on_pty`] with the login name `USER` set to `user` (`None`: inherited).
fn on_pty_as(addr: SocketAddr, args: &str, cwd: &std::path::Path, user: Option<&str>) -> Child {
    let cmd = format!("{} --server {addr} --timeout 5s --color never {args}", common::bin().display());
    let mut c = std::process::Command::new("script");
    if let Some(u) = user {
        c.env("USER", u).env_remove("LOGNAME");
    }
    c.args(["-qfec", &cmd, "/dev/null"])
        .current_dir(cwd)
        .env_remove("CHATCTL_NAME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A `chatctl` on a pseudo-terminal: the child, its screen, its keyboard.
struct Pty {
    child: Child,
    screen: Screen,
    stdin: std::process::ChildStdin,
}

impl Pty {
    /// Runs `chatctl ARGS` on a pseudo-terminal in `cwd` (see [`on_pty`]).
    fn start(addr: SocketAddr, args: &str, cwd: &std::path::Path) -> Pty {
        Pty::start_as(addr, args, cwd, None)
    }

    /// [`Pty::start`] with the login name `USER` set to `user` (see [`on_pty_as`]).
    fn start_as(addr: SocketAddr, args: &str, cwd: &std::path::Path, user: Option<&str>) -> Pty {
        let mut child = on_pty_as(addr, args, cwd, user);
        let screen = Screen::of(&mut child);
        let stdin = child.stdin.take().unwrap();
        Pty { child, screen, stdin }
    }

    /// `chatctl --name ZED join` in a fresh folder, once its prompt is up
    /// and has settled: rustyline reads the terminal's answers to its own
    /// queries as the prompt starts, and keys sent in that instant get lost,
    /// so the tests type like a person, a bit later. Returns the terminal,
    /// the folder and where on the screen the prompt ends.
    fn join_as_zed(addr: SocketAddr) -> (Pty, tempfile::TempDir, usize) {
        let cwd = tempfile::tempdir().unwrap();
        let pty = Pty::start(addr, "--name ZED join", cwd.path());
        let at = pty.screen.wait_for("joined as ZED", 0);
        let at = pty.screen.wait_for("ZED> ", at);
        std::thread::sleep(SETTLE);
        (pty, cwd, at)
    }
}

/// How long [`Pty::join_as_zed`] lets the prompt settle before typing.
const SETTLE: Duration = Duration::from_millis(200);

/// Types `keys` one at a time, like a person (rustyline with an external
/// printer may sit on the rest of a burst of keys until the next one arrives).
fn typed(stdin: &mut std::process::ChildStdin, keys: &[u8], then: Duration) {
    for k in keys {
        stdin.write_all(&[*k]).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
    std::thread::sleep(then);
}

fn finish(mut child: Child) -> String {
    let status = wait_exit(&mut child, T);
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{status:?}: {out}");
    out
}

/// No --name on a terminal: the name is asked.
#[test]
fn pty_asks_the_name() {
    if !have_script() {
        return;
    }
    let (addr, log) = recording_server();
    let cwd = tempfile::tempdir().unwrap();
    let mut child = on_pty(addr, "list", cwd.path());
    let mut stdin = child.stdin.take().unwrap();
    typed(&mut stdin, b"PTYNAME\r", Duration::from_millis(100));
    let out = finish(child);
    assert!(out.contains("Your name"), "{out}");
    assert!(log.lock().unwrap().contains(&Request::Join { name: "PTYNAME".into() }), "{out}");
}

/// `whisper` with no USER on a terminal: pick from the room, then type lines
/// until Ctrl-D, told so.
#[test]
fn pty_whisper_picks_the_user() {
    if !have_script() {
        return;
    }
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let cwd = tempfile::tempdir().unwrap();
    let Pty { mut child, screen, mut stdin } = Pty::start(addr, "--name ALICE whisper", cwd.path());
    bob.expect(&Update::Joined { name: "ALICE".into() }, T);
    screen.wait_for("BOB", screen.wait_for("Whisper to", 0));
    std::thread::sleep(Duration::from_millis(100));
    typed(&mut stdin, b"\r", Duration::from_millis(200));
    // Reading the message from the terminal, it says so (`say` shares this).
    screen.wait_for("type the message and press Enter to send it (Ctrl-D when done)", 0);
    typed(&mut stdin, b"hello from the picker\r", Duration::from_millis(100));
    bob.expect(&Update::Whisper { from: "ALICE".into(), text: "hello from the picker".into() }, T);
    typed(&mut stdin, b"\x04", Duration::ZERO);
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
    bob.expect(&Update::Left { name: "ALICE".into() }, T);
}

/// `fetch` with no FILE on a terminal: pick from the server's files.
#[test]
fn pty_fetch_picks_files() {
    if !have_script() {
        return;
    }
    let files = served();
    let addr = server(Some(files.path()), 10);
    let cwd = tempfile::tempdir().unwrap();
    let Pty { mut child, screen, mut stdin } = Pty::start(addr, "--name ALICE fetch --tcp", cwd.path());
    screen.wait_for("empty", screen.wait_for("Files to download", 0));
    std::thread::sleep(Duration::from_millis(100));
    typed(&mut stdin, b" \r", Duration::ZERO); // pick the first one, start
    let status = wait_exit(&mut child, T);
    screen.wait_for("downloaded 100%", 0);
    let out = screen.0.lock().unwrap().clone();
    assert!(status.success(), "{status:?}: {out}");
    let got: Vec<String> = walk(cwd.path());
    assert_eq!(got.len(), 1, "{got:?} {out}");
    assert!(out.contains("ETA"), "no progress bar on the terminal: {out}");
    // The bar's sizes and rate in the final line's decimal units, not MiB/s.
    assert!(!out.contains("iB"), "binary units in the bar: {out}");
    assert!(out.contains(&format!("ALICE downloaded 100% of {} (", got[0])), "{out}");
}

/// The output of a child, collected by a thread, to wait on.
struct Screen(Arc<Mutex<String>>);

impl Screen {
    fn of(child: &mut Child) -> Screen {
        let mut out = child.stdout.take().unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let t = text.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut out, &mut buf) {
                t.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Screen(text)
    }

    /// Waits until the output after byte `from` contains `what`; returns where it ends.
    fn wait_for(&self, what: &str, from: usize) -> usize {
        let deadline = Instant::now() + T;
        loop {
            let s = self.0.lock().unwrap().clone();
            if let Some(i) = s.get(from..).and_then(|tail| tail.find(what)) {
                return from + i + what.len();
            }
            assert!(Instant::now() < deadline, "no {what:?} on the screen: {s}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `join` on a terminal: Tab completes commands and names, `/get` runs in
/// the background and reports above the prompt, updates arrive while
/// typing, Ctrl-D leaves.
#[test]
fn pty_join_completion_get_and_ctrl_d() {
    if !have_script() {
        return;
    }
    let files = served();
    let addr = server(Some(files.path()), 10);
    let mut bob = Watcher::join(addr, "BOB");
    let (Pty { mut child, screen, mut stdin }, cwd, at) = Pty::join_as_zed(addr);
    let settle = SETTLE;
    std::thread::sleep(settle);
    typed(&mut stdin, b"/us\t\r", Duration::ZERO);
    let at = screen.wait_for("/users", at);
    let at = screen.wait_for("ZED (you), BOB\r\n", at);
    let at = screen.wait_for("ZED> ", at);
    std::thread::sleep(settle);
    // Tab completes the name and adds the space: the text follows at once.
    typed(&mut stdin, b"@BO\t", Duration::ZERO);
    let at = screen.wait_for("@BOB ", at);
    typed(&mut stdin, b"psst\r", Duration::ZERO);
    bob.expect(&Update::Whisper { from: "ZED".into(), text: "psst".into() }, T);
    std::thread::sleep(settle);
    typed(&mut stdin, b"/get a.bin --tcp\r", Duration::ZERO);
    let at = screen.wait_for("ZED downloaded 100% of a.bin (123,457 bytes)", at);
    std::thread::sleep(settle);
    // An update while something is half typed: it appears above, the typing is kept.
    typed(&mut stdin, b"half", Duration::ZERO);
    let at = screen.wait_for("half", at);
    bob.rt.block_on(bob.session.broadcast("still here?")).unwrap();
    let at = screen.wait_for("BOB: still here?", at);
    screen.wait_for("ZED> half", at);
    typed(&mut stdin, b"\x15\x04", Duration::ZERO); // Ctrl-U clears the line, Ctrl-D leaves
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read(cwd.path().join("a.bin")).unwrap(), std::fs::read(files.path().join("a.bin")).unwrap());
    bob.expect(&Update::Left { name: "ZED".into() }, T);
}

/// Ctrl-C at the `join` prompt clears the half-typed line (as irssi and
/// bash do) and says how to leave; Ctrl-D leaves (exit 0, the others see `301`).
#[test]
fn pty_join_ctrl_c_clears_the_line() {
    if !have_script() {
        return;
    }
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let (Pty { mut child, screen, mut stdin }, _cwd, at) = Pty::join_as_zed(addr);
    screen.wait_for("joined as ZED; here: BOB", 0);
    bob.expect(&Update::Joined { name: "ZED".into() }, T);
    typed(&mut stdin, b"half typed", Duration::ZERO);
    typed(&mut stdin, b"\x03", Duration::ZERO);
    let at = screen.wait_for("Ctrl-D or /quit leaves the room", at);
    screen.wait_for("ZED> ", at);
    std::thread::sleep(Duration::from_millis(200));
    typed(&mut stdin, b"fresh\r", Duration::ZERO);
    bob.expect(&Update::Broadcast { from: "ZED".into(), text: "fresh".into() }, T);
    assert!(child.try_wait().unwrap().is_none(), "Ctrl-C left the room");
    typed(&mut stdin, b"\x04", Duration::ZERO);
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
    bob.expect(&Update::Left { name: "ZED".into() }, T);
}

/// `join` on a terminal: `/help` lists the commands one per line, an error
/// names who is here or what is on offer, and empty whispers are not sent.
#[test]
fn pty_join_help_and_errors_name_what_exists() {
    if !have_script() {
        return;
    }
    let files = served();
    let addr = server(Some(files.path()), 10);
    let mut bob = Watcher::join(addr, "BOB");
    let (Pty { mut child, screen, mut stdin }, _cwd, at) = Pty::join_as_zed(addr);
    let settle = SETTLE;
    typed(&mut stdin, b"/help\r", Duration::ZERO);
    let at = screen.wait_for("/users", at);
    let at = screen.wait_for("/quit  or  Ctrl-D", at);
    std::thread::sleep(settle);
    typed(&mut stdin, b"@nobody hi\r", Duration::ZERO);
    let at = screen.wait_for("nobody is not in the room; here: BOB", at);
    std::thread::sleep(settle);
    typed(&mut stdin, b"/get nosuch\r", Duration::ZERO);
    let at = screen.wait_for("/get nosuch: no such file; on offer: a.bin", at);
    std::thread::sleep(settle);
    typed(&mut stdin, b"@BOB\r", Duration::ZERO);
    screen.wait_for("nothing to send to BOB", at);
    typed(&mut stdin, b"\x04", Duration::ZERO);
    assert!(wait_exit(&mut child, T).success());
    bob.expect(&Update::Joined { name: "ZED".into() }, T);
    bob.expect(&Update::Left { name: "ZED".into() }, T);
}

/// `seq 1 3 | chatctl say | head -1`: when the reader goes away, `say`
/// still sends every line (its job), then leaves (`101`) and exits 0
/// quietly instead of panicking.
#[test]
fn closed_stdout_leaves_quietly() {
    let (addr, log) = recording_server();
    let mut child = spawn(addr, "ALICE", &["say"]);
    drop(child.stdout.take()); // the reader is gone
    let mut stdin = child.stdin.take().unwrap();
    for line in ["one", "two", "three"] {
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let status = wait_exit(&mut child, T);
    let said: Vec<Request> =
        log.lock().unwrap().iter().filter(|r| matches!(r, Request::Broadcast { .. })).cloned().collect();
    let said: Vec<String> =
        said.into_iter().map(|r| if let Request::Broadcast { text } = r { text } else { unreachable!() }).collect();
    assert_eq!(said, ["one", "two", "three"]);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(wait_logged(&log, Duration::from_secs(1), |r| *r == Request::Leave), "no 101");
}

/// Several files download at once: the second is requested while the first
/// is still stalled.
#[test]
fn fetch_downloads_in_parallel() {
    let (addr, log) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(addr, "ALICE", &["fetch", "--tcp", "STALL", "SHORT", "-o", dir.path().to_str().unwrap()]);
    let both = wait_logged(&log, T, |r| matches!(r, Request::Download { file, .. } if file == "SHORT"));
    sigint(&child);
    let status = wait_exit(&mut child, T);
    assert!(both, "SHORT was not requested while STALL was running: {:?}", log.lock().unwrap());
    assert_eq!(status.code(), Some(code(Exit::Interrupted)));
}

/// Ctrl-C in a picker (a key, since the picker reads the terminal raw):
/// leaves with `101`, exits 130.
#[test]
fn pty_ctrl_c_in_a_picker() {
    if !have_script() {
        return;
    }
    let (addr, log) = recording_server();
    let cwd = tempfile::tempdir().unwrap();
    let Pty { mut child, screen, mut stdin } = Pty::start(addr, "--name ALICE fetch", cwd.path());
    screen.wait_for("STALL", 0);
    std::thread::sleep(Duration::from_millis(200));
    typed(&mut stdin, b"\x03", Duration::ZERO);
    let status = wait_exit(&mut child, T);
    assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{status:?}");
    assert!(wait_logged(&log, Duration::from_secs(1), |r| *r == Request::Leave), "no 101");
    assert!(!log.lock().unwrap().iter().any(|r| matches!(r, Request::Download { .. })));
}

/// The server goes away under `join` on a terminal: the session ends at
/// once (exit 12), with no Enter needed, and the half-typed line stays on
/// the screen.
#[test]
fn pty_join_server_gone_ends_at_once() {
    if !have_script() {
        return;
    }
    let (addr, _log) = recording_server();
    let (Pty { mut child, screen, mut stdin }, _cwd, at) = Pty::join_as_zed(addr);
    // BYE makes the recording server hang up.
    typed(&mut stdin, b"BYE\r", Duration::ZERO);
    let status = wait_exit(&mut child, T);
    assert_eq!(status.code(), Some(code(Exit::ServerGone)), "{status:?}");
    screen.wait_for("the server closed the connection", at);
}

/// Status lines (a lost server, the way back) print above the prompt and
/// keep the half-typed line, which is sent once back in the room.
#[test]
fn pty_join_status_lines_keep_the_typed_line() {
    if !have_script() {
        return;
    }
    let files = served();
    let serve = ServeChild::start(files.path());
    let addr = serve.1;
    let cwd = tempfile::tempdir().unwrap();
    let Pty { mut child, screen, mut stdin } = Pty::start(addr, "--name ZED join --reconnect", cwd.path());
    let at = screen.wait_for("ZED> ", 0);
    std::thread::sleep(Duration::from_millis(200));
    typed(&mut stdin, b"half", Duration::ZERO);
    let at = screen.wait_for("half", at);
    drop(serve); // the server goes away
    let at = screen.wait_for("lost the server", at);
    // The prompt and the typed text come back below the status line.
    screen.wait_for("ZED> half", at);
    let _ = child.kill();
    let _ = child.wait();
}

/// `join --json` events carry the time; `/users` marks yourself.
#[test]
fn join_json_events_have_a_time_and_users_mark_you() {
    let addr = server(None, 10);
    let bob = Watcher::join(addr, "BOB");
    let mut child = spawn(addr, "ZED", &["--json", "join"]);
    let out = Lines::of(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"/users\n").unwrap();
    stdin.flush().unwrap();
    let users: serde_json::Value = serde_json::from_str(&out.until(|l| l.contains("\"users\""))).unwrap();
    assert_eq!(users["me"], "ZED");
    assert_eq!(users["users"], serde_json::json!(["BOB"]));
    bob.rt.block_on(bob.session.broadcast("hello")).unwrap();
    let line = out.until(|l| l.contains("hello"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let time = v["time"].as_str().unwrap_or_default();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{line}");
    drop(stdin);
    assert!(wait_exit(&mut child, T).success());
}

/// `join | head -2`: once the reader of standard output is gone, the next
/// update ends the session cleanly (it leaves the room, exit 0).
#[test]
fn join_ends_when_stdout_closes() {
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let mut child = spawn(addr, "ZED", &["join"]);
    bob.expect(&Update::Joined { name: "ZED".into() }, T);
    drop(child.stdout.take());
    for i in 0..3 {
        bob.rt.block_on(bob.session.broadcast(&format!("line {i}"))).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
    bob.expect(&Update::Left { name: "ZED".into() }, T);
}

/// Nothing empty or blank is sent by any command; `say` with no input does
/// not even join.
#[test]
fn nothing_blank_is_ever_sent() {
    let (addr, log) = recording_server();
    for args in [&["say", ""][..], &["say", "   "], &["whisper", "BOB", ""], &["whisper", "BOB", " "]] {
        common::client(addr, "ALICE")
            .args(args)
            .assert()
            .code(code(Exit::Usage))
            .stderr(predicates::str::contains("nothing to send"));
    }
    common::client(addr, "ALICE").arg("say").write_stdin("\n\n   \nreal\n\t\n").assert().success();
    common::client(addr, "ALICE").arg("say").write_stdin("").assert().success();
    let log = log.lock().unwrap();
    let said: Vec<&Request> =
        log.iter().filter(|r| matches!(r, Request::Broadcast { .. } | Request::Whisper { .. })).collect();
    assert_eq!(said, [&Request::Broadcast { text: "real".into() }]);
    assert_eq!(log.iter().filter(|r| matches!(r, Request::Join { .. })).count(), 1, "{log:?}");
}

/// A long line goes out as 99-character messages with one receipt line; a
/// line over --max-line is refused with an error that names it.
#[test]
fn long_lines_follow_one_policy() {
    let (addr, log) = recording_server();
    let long = "x".repeat(250);
    let out = common::client(addr, "ALICE").args(["say", &long]).assert().success().get_output().stdout.clone();
    assert_eq!(String::from_utf8_lossy(&out), "sent to BOB (3 messages)\n");
    common::client(addr, "ALICE")
        .args(["say", "--max-line", "100", &long])
        .assert()
        .code(code(Exit::Usage))
        .stderr(predicates::str::contains("250 characters, over --max-line 100"));
    let input = format!("{long}\n{}\nlast\n", "y".repeat(2000));
    let o = common::client(addr, "ALICE")
        .arg("say")
        .write_stdin(input)
        .assert()
        .code(code(Exit::Failure))
        .get_output()
        .clone();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "sent to BOB (3 messages)\nsent to BOB\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2 has 2000 characters"), "{o:?}");
    let sent = log.lock().unwrap().iter().filter(|r| matches!(r, Request::Broadcast { .. })).count();
    assert_eq!(sent, 3 + 3 + 1);
}

/// Text that is not UTF-8 is sent the same way from an argument and from
/// standard input: the bad bytes as U+FFFD, with a warning.
#[test]
fn non_utf8_is_replaced_with_a_warning_for_args_and_stdin() {
    use std::os::unix::ffi::OsStrExt;
    let (addr, log) = recording_server();
    let arg = std::ffi::OsStr::from_bytes(b"caf\xe9");
    common::client(addr, "ALICE")
        .arg("say")
        .arg(arg)
        .assert()
        .success()
        .stderr(predicates::str::contains("not valid UTF-8"));
    common::client(addr, "ALICE")
        .arg("say")
        .write_stdin(&b"caf\xe9\n"[..])
        .assert()
        .success()
        .stderr(predicates::str::contains("line 1 is not valid UTF-8"));
    let said: Vec<Request> =
        log.lock().unwrap().iter().filter(|r| matches!(r, Request::Broadcast { .. })).cloned().collect();
    let want = Request::Broadcast { text: "caf\u{fffd}".into() };
    assert_eq!(said, [want.clone(), want]);
}

/// Server addresses and values that cannot work are usage errors (exit 2);
/// a host that does not resolve says so, without "is it running".
#[test]
fn bad_values_are_usage_errors() {
    let bad_port = Command::new(common::bin())
        .args(["-s", "localhost:abc", "-n", "ALICE", "list"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&bad_port.stderr).contains("bad port"), "{bad_port:?}");
    let unresolved = Command::new(common::bin())
        .args(["-s", "nosuch.invalid", "-n", "ALICE", "list"])
        .assert()
        .code(code(Exit::Connect))
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&unresolved.stderr);
    assert!(err.contains("cannot resolve nosuch.invalid") && !err.contains("running"), "{err}");
    for args in [&["serve", "--ports", "60000-59000"][..], &["serve", "--files", "/nonexistent"], &["fetch", ""]] {
        Command::new(common::bin()).args(args).assert().code(2);
    }
}

/// `serve --json` logs JSON, as `--log-format json`.
#[test]
fn serve_json_logs_json() {
    let mut child = std::process::Command::new(common::bin())
        .args(["serve", "--json", "--listen", "127.0.0.1:0", "--ports", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = Lines::of(child.stderr.take().unwrap()).next();
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(v["fields"]["message"].as_str().unwrap().contains("listening on"), "{line}");
}

/// A server whose accept queue is full never completes the connect: that is
/// "cannot connect" (exit 3, with the address), after --timeout.
#[test]
fn connect_that_hangs_is_a_connect_error() {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (never accepted), so further SYNs are dropped.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let mut c = Command::new(common::bin());
    c.args(["--server", &addr.to_string(), "--name", "ALICE", "--timeout", "500ms", "list"]);
    c.assert().code(code(Exit::Connect)).stderr(
        predicates::str::contains(addr.to_string()).and(predicates::str::contains("not accepted within 500ms")),
    );
}

/// IPv6: `--server [::1]:PORT` works end to end (skipped without IPv6 loopback).
#[test]
fn ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        common::skip("no IPv6 loopback");
        return;
    }
    let files = served();
    let addr = common::server_with(Config { listen: "[::1]:0".parse().unwrap(), ..common::config(Some(files.path())) });
    let dir = tempfile::tempdir().unwrap();
    common::client(addr, "ALICE").args(["list", "--files"]).assert().success().stdout("a.bin\nb.txt\nempty\n");
    common::client(addr, "ALICE").args(["fetch", "a.bin", "-o", dir.path().to_str().unwrap()]).assert().success();
    assert_eq!(std::fs::read(dir.path().join("a.bin")).unwrap(), std::fs::read(files.path().join("a.bin")).unwrap());
}

/// A `chatctl serve` child on a port the OS picks, killed when dropped.
struct ServeChild(Child, SocketAddr);

impl ServeChild {
    fn start(files: &std::path::Path) -> ServeChild {
        // CUBIC named explicitly: the test checks the name comes through.
        let child = std::process::Command::new(common::bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--ports", "0", "--cc", "cubic"])
            .arg("--files")
            .arg(files)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Killed by Drop even if the address never comes.
        let mut serve = ServeChild(child, SocketAddr::from(([127, 0, 0, 1], 0)));
        let lines = Lines::of(serve.0.stderr.take().unwrap());
        loop {
            let line = lines.next();
            if let Some(rest) = line.split("listening on ").nth(1) {
                serve.1 = rest.split_whitespace().next().unwrap().parse().unwrap();
                // Keep draining its log so the server never blocks on a full pipe.
                std::thread::spawn(move || while lines.0.recv().is_ok() {});
                return serve;
            }
        }
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fetch --udp -v` against a real `chatctl serve` on a pipe shows the
/// sender's figures (its STATS datagrams): congestion window, RTT, losses,
/// bytes sent again and the controller, at least once at the end.
#[test]
fn fetch_verbose_shows_the_senders_congestion_window() {
    let files = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(files.path().join("big.bin"), &big).unwrap();
    let serve = ServeChild::start(files.path());
    let dir = tempfile::tempdir().unwrap();
    let out = common::client(serve.1, "ALICE")
        .args(["fetch", "--udp", "-v", "big.bin", "-o", dir.path().to_str().unwrap()])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let line = stderr.lines().find(|l| l.contains(" cwnd ")).unwrap_or_else(|| panic!("no cwnd line: {stderr}"));
    // Sizes in the units of every other line: `cwnd 12 kB`.
    let cwnd: Vec<&str> = line.split(" cwnd ").nth(1).unwrap().split_whitespace().take(2).collect();
    assert!(cwnd[0].parse::<f64>().is_ok() && ["B", "kB", "MB"].contains(&cwnd[1]), "{line}");
    for part in [" rtt ", "ms rate ", "/s lost ", " retx ", "(cubic)"] {
        assert!(line.contains(part), "{part:?} missing in {line}");
    }
    println!("{stderr}");
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), big);
    // --json: the sender's last figures in the summary object; none over TCP.
    let out = common::client(serve.1, "ALICE")
        .args(["fetch", "--json", "--force", "big.bin", "-o", dir.path().to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let s = &v["sender"];
    assert!(s["cwnd"].as_u64().is_some_and(|c| c > 0) && s["srtt_us"].is_u64() && s["pacing_rate"].is_u64(), "{v}");
    assert!(s["packets_lost"].is_u64() && s["bytes_retransmitted"].is_u64() && s["cc"] == "cubic", "{v}");
    let out = common::client(serve.1, "ALICE")
        .args(["fetch", "--json", "--tcp", "--force", "big.bin", "-o", dir.path().to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(v.get("sender").is_none(), "{v}");
}

// ---- --continue where the protocol cannot resume ----

/// TCP and classic go-back-N carry no offset: `--continue` with `--tcp` or
/// `--classic` is a usage error before anything is sent.
#[test]
fn continue_needs_the_fast_udp_mode() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for flag in ["--tcp", "--classic"] {
        common::client(closed, "ALICE")
            .args(["fetch", "--continue", flag, "a.bin"])
            .assert()
            .code(code(Exit::Usage))
            .stderr(
                predicates::str::contains("--continue resumes fast UDP downloads only")
                    .and(predicates::str::contains(flag)),
            );
    }
}

/// A classic-only room server (the reference's behaviour): joins, and
/// serves `C.bin` (`content`) over UDP with classic go-back-N whatever the
/// hello says, resending the whole file every 200 ms until it is acknowledged.
fn classic_only_server(content: Vec<u8>) -> SocketAddr {
    let content = Arc::new(content);
    fake_server(move |s| classic_session(s, content.clone()))
}

async fn classic_session(s: TcpStream, content: Arc<Vec<u8>>) {
    fake_session(s, move |req: Request| {
        let content = content.clone();
        async move {
            match req {
                Request::Files => Reply::Send(Confirm::Files { files: vec!["C.bin".into()] }.into()),
                Request::Download { .. } => {
                    let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    let port = u.local_addr().unwrap().port();
                    let size = content.len() as u64;
                    tokio::spawn(classic_send(u, content));
                    Reply::Send(Confirm::Download { size, port }.into())
                }
                _ => Reply::Standard,
            }
        }
    })
    .await
}

async fn classic_send(u: tokio::net::UdpSocket, content: Arc<Vec<u8>>) {
    use chatctl::rdt::classic::{CHUNK, Data, parse_ack};
    let mut buf = vec![0u8; 2048];
    let (_, peer) = u.recv_from(&mut buf).await.unwrap(); // the hello, fast or not
    let chunks: Vec<&[u8]> = content.chunks(CHUNK).collect();
    assert!(chunks.len() < 98, "keep the test file within one window");
    let all = chunks.len() as u8;
    for _ in 0..100 {
        for (i, c) in chunks.iter().enumerate() {
            let mut d = Vec::new();
            Data { last: i + 1 == chunks.len(), seq: i as u8, payload: c }.encode(&mut d);
            u.send_to(&d, peer).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, u.recv_from(&mut buf)).await {
            if parse_ack(&buf[..n]) == Some(all) {
                return;
            }
        }
    }
}

/// `--continue` against a classic server: there is no offset to resume
/// from, so the partial file is discarded, the file comes whole from the
/// start, and a note on stderr says so.
#[test]
fn continue_against_a_classic_server_starts_over_with_a_note() {
    let content: Vec<u8> = (0..4_500u32).map(|i| (i % 241) as u8).collect();
    let addr = classic_only_server(content.clone());
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("C.bin");
    let partial = chatctl::client::temp_path_for(&target);
    std::fs::write(&partial, vec![0xEEu8; 3_000]).unwrap();
    let out = common::client(addr, "ALICE")
        .args(["fetch", "--json", "--continue", "C.bin", "-o", target.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicates::str::contains("classic go-back-N, which cannot resume: downloaded from the start"));
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!((v["udp_mode"].as_str(), v["resumed_from"].as_u64()), (Some("classic"), Some(0)), "{v}");
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert!(!partial.exists());
    // Without a partial file there is nothing to resume and nothing to say.
    let again = dir.path().join("again.bin");
    common::client(addr, "ALICE")
        .args(["fetch", "--continue", "C.bin", "-o", again.to_str().unwrap()])
        .assert()
        .success()
        .stderr("");
    assert_eq!(std::fs::read(&again).unwrap(), content);
}

// ---- what a person sees on a terminal ----

/// Sends `keys` in one write (tmux `send-keys`, expect, a paste without
/// bracketed paste, a slow link), or one key at a time like a person.
fn keys(stdin: &mut std::process::ChildStdin, keys: &[u8], burst: bool) {
    if burst {
        stdin.write_all(keys).unwrap();
        stdin.flush().unwrap();
    } else {
        typed(stdin, keys, Duration::ZERO);
    }
}

/// The next update `who` gets within `wait`, panicking if none comes.
fn next_update(who: &mut Watcher, wait: Duration) -> Update {
    who.next(wait).unwrap_or_else(|| panic!("no update within {wait:?}"))
}

/// `join` on a terminal: a line is sent as soon as its Enter arrives, with
/// no later key needed; a command and blank lines send nothing.
fn join_sends_each_line_at_its_enter(burst: bool) {
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let (Pty { mut child, screen, mut stdin }, _cwd, at) = Pty::join_as_zed(addr);
    assert_eq!(next_update(&mut bob, T), Update::Joined { name: "ZED".into() });
    keys(&mut stdin, b"pasted line one\r", burst);
    // Nothing more is typed: the line must go now, not at the next key.
    assert_eq!(next_update(&mut bob, T), Update::Broadcast { from: "ZED".into(), text: "pasted line one".into() });
    keys(&mut stdin, b"/help\r\r   \rafter\r", burst);
    screen.wait_for("/quit  or  Ctrl-D", at);
    // The two blank lines sent nothing: the next message is `after`.
    assert_eq!(next_update(&mut bob, T), Update::Broadcast { from: "ZED".into(), text: "after".into() });
    // Ctrl-D once the editor is back at its prompt: one typed in the instant
    // between two `readline` calls can be lost (noted, not fixed here).
    let at = screen.wait_for("after", at);
    screen.wait_for("ZED> ", at);
    std::thread::sleep(Duration::from_millis(200));
    keys(&mut stdin, b"\x04", burst);
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
    assert_eq!(next_update(&mut bob, T), Update::Left { name: "ZED".into() });
}

/// Keys in one burst, then one by one.
#[test]
fn pty_join_keys_in_one_burst_or_one_by_one() {
    for burst in [true, false].into_iter().filter(|_| have_script()) {
        join_sends_each_line_at_its_enter(burst);
    }
}

/// `/get` on a terminal: Tab completes file names (quoted when they hold a
/// space), a quoted name downloads, and `--force` (the hint of "exists")
/// downloads again over the file.
fn join_get_completes_files(burst: bool) {
    let files = served();
    std::fs::write(files.path().join("big file.iso"), b"spaces").unwrap();
    let addr = server(Some(files.path()), 10);
    let (Pty { mut child, screen, mut stdin }, cwd, at) = Pty::join_as_zed(addr);
    keys(&mut stdin, b"/get bi\t", burst);
    let at = screen.wait_for("/get 'big file.iso'", at);
    keys(&mut stdin, b" --tcp\r", burst);
    let at = screen.wait_for("ZED downloaded 100% of big file.iso (6 bytes)", at);
    assert_eq!(std::fs::read(cwd.path().join("big file.iso")).unwrap(), b"spaces");
    std::fs::write(cwd.path().join("b.txt"), b"old").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    keys(&mut stdin, b"/get b.\t\r", burst);
    let at = screen.wait_for("exists (use --force to overwrite)", at);
    // The error reads as a sentence, without the exit code's label after it.
    assert!(!screen.0.lock().unwrap().contains("any other error"), "{:?}", screen.0.lock().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    keys(&mut stdin, b"/get b.txt --force\r", burst);
    screen.wait_for("ZED downloaded 100% of b.txt (4 bytes)", at);
    assert_eq!(std::fs::read(cwd.path().join("b.txt")).unwrap(), b"bee\n");
    keys(&mut stdin, b"\x04", burst);
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
}

/// Keys in one burst, then one by one.
#[test]
fn pty_join_get_completes_files_in_one_burst_or_one_by_one() {
    for burst in [true, false].into_iter().filter(|_| have_script()) {
        join_get_completes_files(burst);
    }
}

/// The name prompt offers the login name, says why it asks again, and asks
/// again when the name is taken (with a new default).
#[test]
fn pty_join_name_prompt_default_reason_and_taken() {
    if !have_script() {
        return;
    }
    let addr = server(None, 10);
    let mut bob = Watcher::join(addr, "BOB");
    let cwd = tempfile::tempdir().unwrap();
    let Pty { mut child, screen, mut stdin } = Pty::start_as(addr, "join", cwd.path(), Some("BOB"));
    let at = screen.wait_for("Your name [BOB]", 0);
    std::thread::sleep(Duration::from_millis(100));
    typed(&mut stdin, b"x\r", Duration::ZERO);
    let at = screen.wait_for("a name has 2 to 99 characters", at);
    std::thread::sleep(Duration::from_millis(100));
    typed(&mut stdin, b"\x7f\r", Duration::ZERO); // an empty answer takes the default, BOB
    let at = screen.wait_for("BOB is taken; choose another name", at);
    let at = screen.wait_for("Your name [BOB2]", at);
    std::thread::sleep(Duration::from_millis(100));
    typed(&mut stdin, b"\r", Duration::ZERO);
    let at = screen.wait_for("joined as BOB2", at);
    screen.wait_for("BOB2> ", at);
    assert_eq!(next_update(&mut bob, T), Update::Joined { name: "BOB2".into() });
    std::thread::sleep(Duration::from_millis(200));
    typed(&mut stdin, b"\x04", Duration::ZERO);
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status:?}");
}

/// Ctrl-C at the name prompt exits 130 (the man page's code), joining nothing.
#[test]
fn pty_ctrl_c_at_the_name_prompt_exits_130() {
    if !have_script() {
        return;
    }
    let (addr, log) = recording_server();
    let cwd = tempfile::tempdir().unwrap();
    let Pty { mut child, screen, mut stdin } = Pty::start_as(addr, "join", cwd.path(), Some("ALICE"));
    screen.wait_for("Your name", 0);
    std::thread::sleep(Duration::from_millis(100));
    typed(&mut stdin, b"\x03", Duration::ZERO);
    let status = wait_exit(&mut child, T);
    assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{status:?}");
    assert!(log.lock().unwrap().is_empty());
}

/// The cursor is shown again after the last time it was hidden.
fn cursor_shown_at_the_end(screen: &Screen) {
    let s = screen.0.lock().unwrap().clone();
    let (hide, show) = (s.rfind("\x1b[?25l"), s.rfind("\x1b[?25h"));
    assert!(hide.is_some(), "the picker never hid the cursor: {s:?}");
    assert!(show > hide, "the cursor is left hidden: {s:?}");
}

/// Esc and `q` leave a picker: exit 130 after leaving the room, nothing
/// downloaded or sent, the cursor shown.
#[test]
fn pty_esc_and_q_cancel_the_pickers() {
    if !have_script() {
        return;
    }
    for (args, key) in [("fetch", b"\x1b"), ("fetch", b"q"), ("whisper", b"\x1b"), ("whisper", b"q")] {
        let (addr, log) = recording_server();
        let cwd = tempfile::tempdir().unwrap();
        let Pty { mut child, screen, mut stdin } = Pty::start(addr, &format!("--name ALICE {args}"), cwd.path());
        screen.wait_for(if args == "fetch" { "STALL" } else { "BOB" }, 0);
        std::thread::sleep(Duration::from_millis(200));
        typed(&mut stdin, key, Duration::ZERO);
        let status = wait_exit(&mut child, T);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{args} {key:?}: {status:?}");
        assert!(wait_logged(&log, Duration::from_secs(1), |r| *r == Request::Leave), "no 101");
        let sent = log.lock().unwrap().iter().any(|r| matches!(r, Request::Download { .. } | Request::Whisper { .. }));
        assert!(!sent, "{args} {key:?}: {:?}", log.lock().unwrap());
        cursor_shown_at_the_end(&screen);
    }
}

/// `list` on a terminal in an empty room says so (on stderr; the script
/// case, stdout empty, is `list_empty_room_and_no_files_prints_nothing`).
#[test]
fn pty_list_says_the_room_is_empty() {
    if !have_script() {
        return;
    }
    let addr = server(None, 10);
    let cwd = tempfile::tempdir().unwrap();
    for (args, says) in [("list", "nobody else is in the room"), ("list --files", "the server offers no files")] {
        let Pty { mut child, screen, .. } = Pty::start(addr, &format!("--name ALICE {args}"), cwd.path());
        screen.wait_for(says, 0);
        assert!(wait_exit(&mut child, T).success());
    }
}

/// Ctrl-C during a fast UDP download names the partial file it keeps and
/// the command that resumes it, with the same server, name and output.
#[test]
fn ctrl_c_during_a_fast_fetch_mentions_continue() {
    let (addr, log) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(addr, "ALICE", &["fetch", "STALL", "-o", dir.path().to_str().unwrap()]);
    assert!(wait_logged(&log, T, |r| matches!(r, Request::Download { .. })), "no download request");
    std::thread::sleep(Duration::from_millis(300));
    sigint(&child);
    let status = wait_exit(&mut child, T);
    assert_eq!(status.code(), Some(code(Exit::Interrupted)), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let part = chatctl::client::temp_path_for(&dir.path().join("STALL"));
    assert!(part.exists(), "no partial file: {err}");
    assert!(err.contains(&format!("kept the partial download {}", part.display())), "{err}");
    let resume = format!("resume with: chatctl fetch --continue -s {addr} -n ALICE -o {} STALL", dir.path().display());
    assert!(err.contains(&resume), "{err}");
}

/// An output that cannot be written (no such folder, a folder where the
/// file would go, two files onto one path) is refused before the server is
/// asked for anything: no `106`, so no port held there.
#[test]
fn a_bad_output_never_reaches_the_server() {
    let (addr, log) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/x");
    let folder = dir.path().join("sub");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(dir.path().join("taken"), b"old").unwrap();
    let cases: [(Vec<String>, &str); 4] = [
        (vec!["STALL".into(), "-o".into(), missing.display().to_string()], "cannot be used"),
        (vec!["--tcp".into(), "SHORT".into(), "-o".into(), missing.display().to_string()], "cannot be used"),
        (vec!["STALL".into(), "-o".into(), dir.path().join("taken").display().to_string()], "exists"),
        (
            vec!["a/STALL".into(), "b/STALL".into(), "-o".into(), folder.display().to_string()],
            "would both be written there",
        ),
    ];
    for (args, says) in cases {
        let out = common::client(addr, "ALICE").arg("fetch").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code(Exit::Failure)), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(wait_logged(&log, Duration::from_millis(300), |r| *r == Request::Leave));
    let asked = log.lock().unwrap().iter().any(|r| matches!(r, Request::Download { .. }));
    assert!(!asked, "a download was requested: {:?}", log.lock().unwrap());
    assert!(!missing.parent().unwrap().exists());
    assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"old");
}

/// Every command's output may be cut short by its reader (`| head`), with
/// standard error closed too (`2>&1 | head`): no panic (exit 101), ever.
#[test]
fn closed_output_never_panics() {
    let addr = server(None, 10);
    let _bob = Watcher::join(addr, "BOB");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // A capture cut short (tcpdump killed): a pcap header, then half a record.
    // Decoding it ends with a warning on stderr.
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
    pcap.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&cut, pcap).unwrap();
    let cut = cut.to_str().unwrap();
    let runs: [(SocketAddr, &[&str]); 7] = [
        (addr, &["list"]),
        (addr, &["say", "hi"]),
        (addr, &["whisper", "BOB", "hi"]),
        (closed, &["list"]), // an error message, to a closed stderr
        (addr, &["completions", "bash"]),
        (addr, &["--help"]),
        (addr, &["capture-decode", cut]),
    ];
    for (addr, args) in runs {
        let mut child = std::process::Command::new(common::bin())
            .args(["--server", &addr.to_string(), "--name", "ALICE", "--timeout", "5s"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = wait_exit(&mut child, T);
        assert_ne!(status.code(), Some(101), "{args:?} panicked");
    }
}

// ---- errors a script can read ----

/// With --json, an error is one JSON object on stderr: command, kind, exit, message.
fn json_error(out: &std::process::Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(out.status.code(), v["exit"].as_i64().map(|c| c as i32), "{v}");
    v
}

#[test]
fn json_errors_are_one_object_on_stderr() {
    let addr = server(None, 10);
    let _bob = Watcher::join(addr, "BOB");
    let out = common::client(addr, "BOB").args(["--json", "list"]).output().unwrap();
    let v = json_error(&out);
    assert_eq!(
        (v["command"].as_str(), v["kind"].as_str(), v["exit"].as_i64()),
        (Some("list"), Some("name_taken"), Some(5))
    );
    assert!(v["message"].as_str().unwrap().contains("name already taken"), "{v}");

    let out = common::client(addr, "ALICE").args(["whisper", "--json", "EVE", "hi"]).output().unwrap();
    let v = json_error(&out);
    assert_eq!(
        (v["kind"].as_str(), v["exit"].as_i64()),
        (Some("no_such_user"), Some(i64::from(code(Exit::NoSuchUser))))
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = common::client(closed, "ALICE").args(["--json", "say", "hi"]).output().unwrap();
    let v = json_error(&out);
    assert_eq!(
        (v["command"].as_str(), v["kind"].as_str(), v["exit"].as_i64()),
        (Some("say"), Some("connect"), Some(3))
    );
    assert!(v["message"].as_str().unwrap().contains(&closed.to_string()), "{v}");

    // The command line itself: clap's message, as JSON, with no command.
    let out = common::client(addr, "ALICE").args(["--json", "list", "--no-such-flag"]).output().unwrap();
    let v = json_error(&out);
    assert_eq!((v["command"].as_str(), v["kind"].as_str(), v["exit"].as_i64()), (None, Some("usage"), Some(2)));
    assert!(v["message"].as_str().unwrap().contains("--no-such-flag"), "{v}");

    // Without --json: prose, as before.
    let out = common::client(addr, "BOB").arg("list").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("chatctl list: the server refused: name already taken"));
}

/// `-s 13337` is 127.0.0.1:13337 (getaddrinfo alone reads it as 0.0.52.25).
#[test]
fn a_bare_port_is_on_this_machine() {
    let addr = server(None, 10);
    let _bob = Watcher::join(addr, "BOB");
    let mut c = Command::new(common::bin());
    c.args(["-s", &addr.port().to_string(), "-n", "ALICE", "--timeout", "5s", "list"]).env_remove("CHATCTL_NAME");
    c.assert().success().stdout("BOB\n");
}

/// A fake peer on a loopback port that is not a chat server: `answer` is what
/// it writes once it has read `until` (at once when `until` is empty).
fn not_a_chat_server(until: &'static [u8], answer: &'static [u8]) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                use std::io::Read;
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                while !got.windows(until.len().max(1)).any(|w| w == until) && !until.is_empty() {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer);
                std::thread::sleep(Duration::from_secs(10)); // and says nothing more
            });
        }
    });
    addr
}

#[test]
fn not_a_chat_server_exits_11_with_its_own_message() {
    // An HTTP server waits for a request line's end, then refuses it.
    let http = not_a_chat_server(b"\r\n", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    // Another speaks first, with a terminal escape in its banner.
    let banner = not_a_chat_server(b"", b"SSH-2.0-OpenSSH_9.6\x1b[2J\r\n");
    for (addr, said) in [(http, "HTTP/1.1 400 Bad Request"), (banner, "SSH-2.0-OpenSSH_9.6")] {
        let mut c = Command::new(common::bin());
        c.args(["-s", &addr.to_string(), "-n", "ALICE", "--timeout", "1s", "list"]).env_remove("CHATCTL_NAME");
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code(Exit::Protocol)), "{stderr}");
        assert!(stderr.contains(&format!("{addr} is not a chat server: it answered \"{said}")), "{stderr}");
        assert!(!stderr.contains("--timeout") && !stderr.contains('\x1b'), "{stderr}");
    }
    let out = Command::new(common::bin())
        .args(["-s", &http.to_string(), "-n", "ALICE", "--timeout", "1s", "--json", "list"])
        .output()
        .unwrap();
    let v = json_error(&out);
    assert_eq!((v["kind"].as_str(), v["exit"].as_i64()), (Some("protocol"), Some(11)), "{v}");
}
