//! `say` and `join` against a real `chatctl serve` child that is
//! stopped (SIGTERM) and started again on the same port: without
//! --reconnect they exit at once with exit 12; with it, nothing written
//! before, during or after the restart is lost, reordered or sent twice.

use std::io::Write;
use std::time::{Duration, Instant};

use chatctl::exit::Exit;
use chatctl::wire::Update;

use crate::common::session;

use session::{Lines, Serve, T, Watcher, code, signal, spawn, wait_exit};

/// Regression: `say` reading a quiet, open stdin noticed a
/// stopped server only at the next line, then exited 11. Now: within 2 s,
/// exit 12, with a message that says so.
#[test]
fn say_on_quiet_stdin_exits_when_the_server_stops() {
    let mut server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let mut bob = Watcher::join(server.addr, "bob");
    let mut say = spawn(server.addr, "log", rt.path(), &["say"]);
    let mut stdin = say.stdin.take().unwrap();
    let err = Lines::of(say.stderr.take().unwrap());
    writeln!(stdin, "first").unwrap();
    assert_eq!(bob.broadcasts_from("log", 1), ["first"]);
    let stopped = Instant::now();
    server.stop();
    let status = wait_exit(&mut say, Duration::from_secs(5));
    assert!(stopped.elapsed() < Duration::from_secs(2), "took {:?}", stopped.elapsed());
    assert_eq!(status.code(), Some(code(Exit::ServerGone)));
    let msg = err.next();
    assert!(msg.contains("the server closed the connection"), "{msg}");
    drop(stdin);
}

/// `join` in pipe mode, ended by the server's shutdown: exit 12, not 11.
#[test]
fn join_exits_12_when_the_server_stops() {
    let mut server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let bob = Watcher::join(server.addr, "bob");
    let mut join = spawn(server.addr, "pipe", rt.path(), &["join"]);
    let _stdin = join.stdin.take().unwrap();
    while !bob.users().contains(&"pipe".to_string()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopped = Instant::now();
    server.stop();
    let status = wait_exit(&mut join, Duration::from_secs(5));
    assert!(stopped.elapsed() < Duration::from_secs(2), "took {:?}", stopped.elapsed());
    assert_eq!(status.code(), Some(code(Exit::ServerGone)));
}

/// Reads JSON reconnect events from stderr until an attempt that will wait
/// at least `min` before the next one (so the test can restart the server
/// and take its places in the room first).
fn wait_for_slow_attempt(err: &Lines, min: Duration) {
    err.until(|l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
            v["event"] == "attempt" && v["retry_in"].as_u64().is_some_and(|ms| ms >= min.as_millis() as u64)
        })
    });
}

/// `say --reconnect`: lines before the stop reach the old room, lines
/// written while the server is down and after it is back reach the new
/// room, in order, none twice; the name, still held on the new server when
/// `say` comes back, is retried until free.
#[test]
fn say_reconnect_loses_nothing() {
    let mut server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let mut before = Watcher::join(server.addr, "old");
    let mut say = spawn(server.addr, "log", rt.path(), &["--json", "say", "--reconnect", "--reconnect-max", "2s"]);
    let mut stdin = say.stdin.take().unwrap();
    let out = Lines::of(say.stdout.take().unwrap());
    let err = Lines::of(say.stderr.take().unwrap());
    writeln!(stdin, "before 1\nbefore 2").unwrap();
    assert_eq!(before.broadcasts_from("log", 2), ["before 1", "before 2"]);

    server.stop();
    let lost = err.next();
    assert!(lost.contains("\"event\":\"lost\""), "{lost}");
    writeln!(stdin, "during 1\nduring 2").unwrap();
    wait_for_slow_attempt(&err, Duration::from_secs(1));
    writeln!(stdin, "during 3").unwrap();
    server.restart();
    let mut after = Watcher::join(server.addr, "new");
    // The name is taken when `say` comes back: it must retry, not give up.
    let holder = Watcher::join(server.addr, "log");
    let taken = err.until(|l| l.contains("\"event\":\"attempt\""));
    assert!(taken.contains("taken"), "{taken}");
    holder.leave();
    let back = err.until(|l| l.contains("\"event\":\"back\""));
    let back: serde_json::Value = serde_json::from_str(&back).unwrap();
    assert_eq!((back["waiting"].as_u64(), back["dropped"].as_u64()), (Some(3), Some(0)));
    writeln!(stdin, "after 1").unwrap();
    drop(stdin);
    let got = after.broadcasts_from("log", 4);
    assert_eq!(got, ["during 1", "during 2", "during 3", "after 1"]);
    assert!(wait_exit(&mut say, T).success());
    // Nothing twice: no more broadcasts after the four.
    let more: Vec<Update> = after.drain(Duration::from_millis(200));
    assert!(!more.iter().any(|u| matches!(u, Update::Broadcast { .. })), "{more:?}");
    // One JSON object per line sent, in order.
    let sent: Vec<String> = std::iter::from_fn(|| out.next_within(Duration::from_millis(200)))
        .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, ["before 1", "before 2", "during 1", "during 2", "during 3", "after 1"]);
}

/// `join --reconnect --count 2`: one match before the restart and one after
/// end it (the budget is kept); Ctrl-C while away ends another at once.
#[test]
fn join_reconnect_keeps_the_budget() {
    let mut server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let alice = Watcher::join(server.addr, "alice");
    let mut join = spawn(
        server.addr,
        "bot",
        rt.path(),
        &["join", "--reconnect", "--reconnect-max", "300ms", "--from", "alice", "--count", "2"],
    );
    let _stdin = join.stdin.take().unwrap();
    let out = Lines::of(join.stdout.take().unwrap());
    let err = Lines::of(join.stderr.take().unwrap());
    while !alice.users().contains(&"bot".to_string()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    alice.say("one");
    assert!(out.next().contains("alice: one"));
    drop(alice);
    server.stop();
    assert!(err.next().contains("lost the server"));
    server.restart();
    err.until(|l| l.contains("back in the room"));
    let alice = Watcher::join(server.addr, "alice");
    alice.say("two");
    assert!(out.next().contains("alice: two"));
    assert_eq!(wait_exit(&mut join, T).code(), Some(0));

    // Ctrl-C while the server is away: at once, exit 130.
    let mut join = spawn(server.addr, "bot2", rt.path(), &["join", "--reconnect"]);
    let _stdin = join.stdin.take().unwrap();
    let err = Lines::of(join.stderr.take().unwrap());
    while !alice.users().contains(&"bot2".to_string()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
    assert!(err.next().contains("lost the server"));
    signal(&join, "INT");
    assert_eq!(wait_exit(&mut join, Duration::from_secs(2)).code(), Some(code(Exit::Interrupted)));
}

/// A `join --detach --reconnect` session survives the restart: one-shots
/// go through it again once it is back.
#[test]
fn detached_session_survives_a_restart() {
    let mut server = Serve::start();
    let rt = tempfile::tempdir().unwrap();
    let (rc, _, stderr) =
        session::run(server.addr, "bot", rt.path(), &["join", "--detach", "--reconnect", "--reconnect-max", "300ms"]);
    assert_eq!(rc, 0, "{stderr}");
    server.stop();
    server.restart();
    let mut bob = Watcher::join(server.addr, "bob");
    let deadline = Instant::now() + T;
    while !bob.users().contains(&"bot".to_string()) {
        assert!(Instant::now() < deadline, "the session did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rc, _, stderr) = session::run(server.addr, "bot", rt.path(), &["-q", "say", "still here"]);
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(bob.broadcasts_from("bot", 1), ["still here"]);
    // Its messages went to the log beside its socket.
    let sock = chatctl::client::control::socket_path(&rt.path().join("chatctl"), server.addr, "bot");
    let log = std::fs::read_to_string(sock.with_extension("log")).unwrap();
    assert!(log.contains("chatctl join: lost the server") && log.contains("back in the room"), "{log}");
    assert_eq!(session::run(server.addr, "bot", rt.path(), &["join", "--stop"]).0, 0);
}
