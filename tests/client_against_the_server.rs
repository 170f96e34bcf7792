//! The client subcommands against the real room server (`chatctl::server`)
//! on loopback, with ports the OS assigns.

use std::time::Duration;

use chatctl::client::Session;
use chatctl::exit::Exit;
use chatctl::wire::Update;
use common::server;

use crate::common;

/// A folder with `a.bin` (300 kB, last byte 130) and `b.txt`.
fn files() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut a: Vec<u8> = (0..300_001u32).map(|i| (i % 251) as u8).collect();
    *a.last_mut().unwrap() = 130;
    std::fs::write(d.path().join("a.bin"), a).unwrap();
    std::fs::write(d.path().join("b.txt"), "bee\n").unwrap();
    d
}

#[test]
fn subcommands_against_the_real_server() {
    let served = files();
    let addr = server(served.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (bob, mut bob_updates) = rt.block_on(Session::join(&addr.to_string(), "BOB", Duration::from_secs(5))).unwrap();

    common::client(addr, "ALICE").arg("list").assert().success().stdout("BOB\n");
    let out = common::client(addr, "ALICE").args(["list", "--files", "--json"]).assert().success();
    let v: Vec<String> = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v, ["a.bin", "b.txt"]);
    // What to list as a word, as a newcomer types it.
    common::client(addr, "ALICE").args(["list", "users"]).assert().success().stdout("BOB\n");
    common::client(addr, "ALICE").args(["list", "files"]).assert().success().stdout("a.bin\nb.txt\n");

    common::client(addr, "ALICE")
        .args(["say", "--json", "hello"])
        .assert()
        .success()
        .stdout("{\"messages\":1,\"text\":\"hello\",\"to\":[\"BOB\"]}\n");
    common::client(addr, "ALICE").args(["whisper", "BOB", "psst"]).assert().success();
    common::client(addr, "ALICE").args(["whisper", "EVE", "psst"]).assert().code(i32::from(Exit::NoSuchUser.code()));
    common::client(addr, "BOB").arg("list").assert().code(i32::from(Exit::NameTaken.code()));

    // BOB saw ALICE come and go, her broadcast and her whisper.
    let seen: Vec<Update> = rt.block_on(async {
        let mut v = Vec::new();
        while let Ok(Some(Ok(u))) = tokio::time::timeout(Duration::from_millis(500), bob_updates.next()).await {
            v.push(u);
        }
        v
    });
    assert!(seen.contains(&Update::Broadcast { from: "ALICE".into(), text: "hello".into() }), "{seen:?}");
    assert!(seen.contains(&Update::Whisper { from: "ALICE".into(), text: "psst".into() }), "{seen:?}");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for transport in ["--udp", "--tcp"] {
        let sub = dir.path().join(transport.trim_start_matches('-'));
        std::fs::create_dir(&sub).unwrap();
        let out = common::client(addr, "ALICE")
            .args(["fetch", transport, "a.bin", "b.txt", "-o", sub.to_str().unwrap()])
            .assert()
            .success();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(stdout.contains("of a.bin (300,001 bytes)") && stdout.contains("Last byte: 130"), "{stdout}");
        for f in ["a.bin", "b.txt"] {
            assert_eq!(std::fs::read(sub.join(f)).unwrap(), std::fs::read(served.path().join(f)).unwrap(), "{f}");
        }
    }
    common::client(addr, "ALICE")
        .args(["fetch", "nope", "-o", d])
        .assert()
        .code(i32::from(Exit::NoSuchFile.code()))
        .stderr(predicates::str::contains("no such file; on offer: a.bin, b.txt"));

    let out =
        common::client(addr, "ALICE").args(["join", "--json"]).write_stdin("/users\n@BOB hi\n").assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains(r#""kind":"users","me":"ALICE","#) && stdout.contains(r#""users":["BOB"]}"#), "{stdout}");

    rt.block_on(bob.leave()).unwrap();
}
