//! Shared sessions (a running `join` serves one-shot commands with the same
//! server and name; `join --detach` and `--stop`) and bounded listening
//! (`join --count/--for/--from/--private/--match`), against a real
//! `chatctl serve` child.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use chatctl::exit::Exit;
use chatctl::wire::Update;

use crate::common;
use crate::common::session;

use session::{Lines, Serve, T, Watcher, code, run, spawn, wait_exit};

/// The README's tour: `join` runs, and `whisper`, `say` and `list` under
/// the same name go through it: no name-taken error, no join/leave notices,
/// the same output and exit codes as alone.
#[test]
fn one_shots_go_through_a_running_join() {
    let server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let mut bob = Watcher::join(server.addr, "bob");
    let mut alice = spawn(server.addr, "alice", rt.path(), &["join"]);
    let out = Lines::of(alice.stdout.take().unwrap());
    assert_eq!(bob.next(T), Some(Update::Joined { name: "alice".into() }));
    // The socket appears once the session is offered.
    let dir = rt.path().join("chatctl");
    let deadline = std::time::Instant::now() + T;
    while !std::fs::read_dir(&dir).is_ok_and(|mut d| d.any(|e| e.unwrap().path().extension() == Some("sock".as_ref())))
    {
        assert!(std::time::Instant::now() < deadline, "no socket in {}", dir.display());
        std::thread::sleep(Duration::from_millis(10));
    }

    assert_eq!(run(server.addr, "alice", rt.path(), &["whisper", "bob", "lunch?"]).0, 0);
    assert_eq!(bob.next(T), Some(Update::Whisper { from: "alice".into(), text: "lunch?".into() }));
    let (rc, stdout, _) = run(server.addr, "alice", rt.path(), &["say", "hi", "all"]);
    assert_eq!((rc, stdout.as_str()), (0, "sent to bob\n"));
    assert_eq!(bob.next(T), Some(Update::Broadcast { from: "alice".into(), text: "hi all".into() }));
    let (rc, stdout, _) = run(server.addr, "alice", rt.path(), &["--json", "list"]);
    assert_eq!((rc, stdout.as_str()), (0, "[\"bob\"]\n"));
    // A refusal keeps its exit code and message.
    let (rc, _, stderr) = run(server.addr, "alice", rt.path(), &["whisper", "carol", "x"]);
    assert_eq!(rc, code(Exit::NoSuchUser), "{stderr}");
    assert!(stderr.contains("carol is not in the room; here: bob"), "{stderr}");
    // Streaming stdin goes through it too.
    let mut say = spawn(server.addr, "alice", rt.path(), &["say"]);
    writeln!(say.stdin.take().unwrap(), "one\ntwo").unwrap();
    assert!(wait_exit(&mut say, T).success());
    assert_eq!(bob.broadcasts_from("alice", 2), ["one", "two"]);
    // Nobody joined or left in all that: alice is still there, once.
    assert_eq!(bob.drain(Duration::from_millis(300)), []);
    assert_eq!(bob.users(), ["alice"]);
    // The session's own output saw bob's messages, not its own.
    bob.say("hello alice");
    assert!(out.until(|l| l.contains("hello alice")).contains("bob"));

    drop(alice.stdin.take());
    assert!(wait_exit(&mut alice, T).success());
    assert_eq!(bob.next(T), Some(Update::Left { name: "alice".into() }));
    // Gone with its session: the socket is removed, and a one-shot joins by itself.
    assert_eq!(
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("sock".as_ref()))
            .count(),
        0
    );
    assert_eq!(run(server.addr, "alice", rt.path(), &["list"]).0, 0);
    assert_eq!(bob.next(T), Some(Update::Joined { name: "alice".into() }));
}

/// `join --detach` returns once the session is in the room, serves
/// one-shots (fifty messages, one presence), and `join --stop` ends it.
#[test]
fn detach_and_stop() {
    let server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let mut bob = Watcher::join(server.addr, "bob");
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join", "--detach"]);
    assert_eq!(rc, 0, "{stderr}");
    assert!(stderr.contains("runs in the background"), "{stderr}");
    // Ready means joined (the room announces it as soon as the server has
    // taken the update connection).
    assert_eq!(bob.next(T), Some(Update::Joined { name: "ci".into() }));
    assert_eq!(bob.users(), ["ci"]);
    // Owner-only: the folder 0700, the socket 0600.
    let dir = rt.path().join("chatctl");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let sock = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension() == Some("sock".as_ref()))
        .expect("a socket");
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);

    for i in 0..50 {
        let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["-q", "say", &format!("build {i}")]);
        assert_eq!(rc, 0, "{stderr}");
    }
    let want: Vec<String> = (0..50).map(|i| format!("build {i}")).collect();
    assert_eq!(bob.broadcasts_from("ci", 50), want);
    assert_eq!(bob.drain(Duration::from_millis(200)), [], "no join/leave notices");

    // The name is held by this user's own session: said so, with how to reach
    // and stop it. A second --detach has nothing to do; a plain join cannot join.
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join", "--detach"]);
    assert_eq!(rc, 0, "{stderr}");
    assert!(stderr.contains("your session of ci") && stderr.contains("runs already (pid "), "{stderr}");
    assert!(stderr.contains("join --stop"), "{stderr}");
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join"]);
    assert_eq!(rc, code(Exit::NameTaken), "{stderr}");
    assert!(stderr.contains("runs already") && !stderr.contains("taken"), "{stderr}");

    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join", "--stop"]);
    assert_eq!(rc, 0, "{stderr}");
    // --stop returns after the session left.
    assert_eq!(bob.users(), Vec::<String>::new());
    assert_eq!(bob.next(T), Some(Update::Left { name: "ci".into() }));
    assert!(!sock.exists(), "the socket is removed");
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join", "--stop"]);
    assert_eq!(rc, code(Exit::Failure));
    assert!(stderr.contains("no session of ci"), "{stderr}");
}

/// `fetch` through a shared session: the session asks for the file, the
/// one-shot downloads it itself (UDP and TCP), into its own folder.
#[test]
fn fetch_goes_through_a_detached_session() {
    let share = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(share.path().join("data.bin"), &data).unwrap();
    let server = Serve::serving(Some(share.path()));
    let rt = tempfile::tempdir().unwrap();
    let mut bob = Watcher::join(server.addr, "bob");
    assert_eq!(run(server.addr, "dl", rt.path(), &["join", "--detach"]).0, 0);
    assert_eq!(bob.next(T), Some(Update::Joined { name: "dl".into() }));
    let out = tempfile::tempdir().unwrap();
    for (flag, name) in [("--udp", "u.bin"), ("--tcp", "t.bin")] {
        let target = out.path().join(name);
        let (rc, stdout, stderr) =
            run(server.addr, "dl", rt.path(), &["fetch", flag, "data.bin", "-o", target.to_str().unwrap()]);
        assert_eq!(rc, 0, "{stderr}");
        assert!(stdout.starts_with("dl downloaded 100% of data.bin"), "{stdout}");
        assert_eq!(std::fs::read(&target).unwrap(), data);
    }
    let (rc, _, _) =
        run(server.addr, "dl", rt.path(), &["fetch", "nope.bin", "-o", out.path().join("n").to_str().unwrap()]);
    assert_eq!(rc, code(Exit::NoSuchFile));
    assert_eq!(bob.drain(Duration::from_millis(200)), [], "no join/leave notices");
    assert_eq!(run(server.addr, "dl", rt.path(), &["join", "--stop"]).0, 0);
}

/// A socket left by a session that died (nobody listens) is detected,
/// removed, and the command joins by itself.
#[test]
fn stale_socket_is_removed() {
    let server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let dir = rt.path().join("chatctl");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = chatctl::client::control::socket_path(&dir, server.addr, "dead");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let mut bob = Watcher::join(server.addr, "bob");
    let (rc, stdout, stderr) = run(server.addr, "dead", rt.path(), &["list"]);
    assert_eq!((rc, stdout.as_str()), (0, "bob\n"), "{stderr}");
    assert!(!path.exists(), "the stale socket is gone");
    assert_eq!(bob.next(T), Some(Update::Joined { name: "dead".into() }));
    // And a new session can take its place.
    let (rc, _, stderr) = run(server.addr, "dead", rt.path(), &["join", "--detach"]);
    assert_eq!(rc, 0, "{stderr}");
    assert!(path.exists());
    assert_eq!(run(server.addr, "dead", rt.path(), &["join", "--stop"]).0, 0);
}

/// Another user cannot use the session even if the folder and socket were
/// opened up: the host checks the peer's uid and answers nothing.
#[test]
fn other_users_are_not_served() {
    let have_python = std::process::Command::new("python3").arg("-V").output().is_ok_and(|o| o.status.success());
    if !have_python || unsafe { libc::geteuid() } != 0 {
        common::skip("needs root and python3 to connect as another user");
        return;
    }
    let server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    assert_eq!(run(server.addr, "own", rt.path(), &["join", "--detach"]).0, 0);
    let dir = rt.path().join("chatctl");
    let sock = chatctl::client::control::socket_path(&dir, server.addr, "own");
    for p in [rt.path(), dir.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Closed without an answer: an empty read, a reset or a broken pipe.
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                  s.settimeout(5)\n\
                  try:\n    s.sendall(b'{\"op\":\"users\"}\\n')\n    print(repr(s.recv(100)))\n\
                  except (ConnectionResetError, BrokenPipeError):\n    print(repr(b''))";
    let o =
        std::process::Command::new("python3").args(["-c", script]).arg(&sock).uid(65534).gid(65534).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "b''\n", "closed without an answer");
    // The owner still is.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (rc, stdout, stderr) = run(server.addr, "own", rt.path(), &["list"]);
    assert_eq!((rc, stdout.as_str()), (0, ""), "{stderr}");
    assert_eq!(run(server.addr, "own", rt.path(), &["join", "--stop"]).0, 0);
}

use std::os::unix::process::CommandExt;

/// The README example: whisper, then wait for the reply (and only the reply).
#[test]
fn wait_for_a_reply_to_a_whisper() {
    let server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let mut alice = Watcher::join(server.addr, "alice");
    let carol = Watcher::join(server.addr, "carol");
    let mut bot =
        spawn(server.addr, "bot", rt.path(), &["join", "--from", "alice", "--private", "--count", "1", "--for", "20s"]);
    let out = Lines::of(bot.stdout.take().unwrap());
    // The input ends at once; with a budget, that does not end the session.
    writeln!(bot.stdin.take().unwrap(), "@alice ping").unwrap();
    alice.expect_whisper("bot", "ping");
    carol.say("noise");
    carol.whisper("bot", "not from alice");
    alice.say("public, not private");
    alice.whisper("bot", "pong");
    let line = out.next();
    assert!(line.contains("[private] alice: pong"), "{line}");
    let status = wait_exit(&mut bot, T);
    assert_eq!(status.code(), Some(0));
    assert_eq!(out.next_within(Duration::from_millis(100)), None, "only the reply was printed");
}

/// `--for` with nothing matching exits 9; `--match` picks by text; --json
/// prints the matching updates as objects.
#[test]
fn for_times_out_and_match_filters() {
    let server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let (rc, stdout, stderr) = run(server.addr, "w1", rt.path(), &["join", "--for", "300ms", "--private"]);
    assert_eq!(rc, code(Exit::Timeout), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("nothing matched within --for 300ms"), "{stderr}");

    let alice = Watcher::join(server.addr, "alice");
    let mut w =
        spawn(server.addr, "w2", rt.path(), &["--json", "join", "--match", "^deploy (ok|failed)$", "--count", "2"]);
    let out = Lines::of(w.stdout.take().unwrap());
    // Wait until w2 is in the room.
    while !alice.users().contains(&"w2".to_string()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for t in ["deploy started", "deploy ok", "redeploy ok", "deploy failed", "deploy ok"] {
        alice.say(t);
    }
    let got: Vec<serde_json::Value> = (0..2).map(|_| serde_json::from_str(&out.next()).unwrap()).collect();
    assert_eq!(got[0]["text"], "deploy ok");
    assert_eq!(got[1]["text"], "deploy failed");
    assert_eq!(wait_exit(&mut w, T).code(), Some(0));
    // A bad REGEX is a usage error.
    assert_eq!(run(server.addr, "w3", rt.path(), &["join", "--match", "("]).0, code(Exit::Usage));
}

trait ExpectWhisper {
    fn expect_whisper(&mut self, from: &str, text: &str);
}

impl ExpectWhisper for Watcher {
    fn expect_whisper(&mut self, from: &str, text: &str) {
        let want = Update::Whisper { from: from.into(), text: text.into() };
        let mut seen = Vec::new();
        while let Some(u) = self.next(T) {
            if u == want {
                return;
            }
            seen.push(u);
        }
        panic!("no {want:?}; saw {seen:?}");
    }
}

/// A one-shot through a detached `--reconnect` session while the server
/// restarts: it waits (bounded by its --timeout) until the session is back
/// in the room, instead of failing with exit 12.
#[test]
fn one_shot_waits_for_a_reconnecting_session() {
    let mut server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join", "--detach", "--reconnect"]);
    assert_eq!(rc, 0, "{stderr}");
    server.stop();
    // Sent while the server is down: the session is away.
    let say = spawn(server.addr, "ci", rt.path(), &["say", "after the restart"]);
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    let out = say.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sent to"), "{out:?}");
    // Bounded: with the server gone for good, the one-shot fails after its --timeout.
    server.stop();
    let started = std::time::Instant::now();
    // (The helper's --timeout is 5s.)
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["say", "never"]);
    assert_eq!(rc, code(Exit::ServerGone), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(4), "did not wait: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(15), "waited too long: {:?}", started.elapsed());
    server.restart();
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join", "--stop"]);
    assert_eq!(rc, 0, "{stderr}");
}

/// `--reconnect` covers the first connection too: `say` and `join` wait,
/// with the same backoff, for a server that is not up yet.
#[test]
fn reconnect_waits_for_a_server_not_up_yet() {
    let mut server = Serve::start();
    server.stop();
    let rt = tempfile::tempdir().unwrap();
    let say = spawn(server.addr, "bot", rt.path(), &["say", "--reconnect", "first"]);
    let mut join = spawn(server.addr, "log", rt.path(), &["join", "--reconnect"]);
    let join_err = Lines::of(join.stderr.take().unwrap());
    join_err.until(|l| l.contains("attempt 2 failed") && l.contains("cannot connect"));
    server.restart();
    let out = say.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(stderr.contains("attempt 1 failed"), "{stderr}");
    let mut bob = Watcher::join(server.addr, "bob");
    let deadline = std::time::Instant::now() + T;
    while !bob.users().contains(&"log".to_string()) {
        assert!(std::time::Instant::now() < deadline, "join --reconnect never joined");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(join.stdin.take());
    assert!(wait_exit(&mut join, T).success());
    bob.drain(Duration::from_millis(100));
}

/// `join --detach --reconnect` with the server not up yet waits for it (as
/// `join --reconnect` does) and returns once its session is in the room.
#[test]
fn detach_with_reconnect_waits_for_a_server_not_up_yet() {
    let mut server = Serve::start();
    server.stop();
    let rt = tempfile::tempdir().unwrap();
    let mut detach = spawn(server.addr, "ci", rt.path(), &["join", "--detach", "--reconnect"]);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(detach.try_wait().unwrap().is_none(), "join --detach returned before the server was up");
    server.restart();
    assert!(wait_exit(&mut detach, T).success(), "join --detach --reconnect failed");
    let mut bob = Watcher::join(server.addr, "bob");
    assert!(bob.users().contains(&"ci".to_string()), "the detached session is not in the room");
    let (rc, _, stderr) = run(server.addr, "ci", rt.path(), &["join", "--stop"]);
    assert_eq!(rc, 0, "{stderr}");
    bob.drain(Duration::from_millis(100));
}
