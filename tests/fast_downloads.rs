//! The fast UDP mode end to end: the real room server (`chatctl::server`)
//! and the client library / binary on loopback, ports the OS assigns.

use std::time::Duration;

use assert_cmd::Command;
use chatctl::client::{DownloadOptions, Session, Transport, UdpMode};
use chatctl::rdt::fast;
use common::{data, part_files, server};

use crate::common;

/// A served folder with `big.bin` (5 MB), `one.bin` (1 byte) and `empty.bin`.
fn served() -> (tempfile::TempDir, Vec<u8>) {
    let d = tempfile::tempdir().unwrap();
    let big = data(5_000_003, 77);
    std::fs::write(d.path().join("big.bin"), &big).unwrap();
    std::fs::write(d.path().join("one.bin"), [130u8]).unwrap();
    std::fs::write(d.path().join("empty.bin"), b"").unwrap();
    (d, big)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn fast_downloads_are_byte_exact_and_classic_still_works() {
    let (dir, big) = served();
    let addr = server(dir.path());
    let out = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (s, _u) = Session::join(&addr.to_string(), "ALICE", Duration::from_secs(5)).await.unwrap();
        let fast = DownloadOptions { fast: Some(fast::Config::default()), ..Default::default() };
        let classic = DownloadOptions::default();
        for (mode, opts) in [(UdpMode::Fast, &fast), (UdpMode::Classic, &classic)] {
            for (name, want) in [("big.bin", &big[..]), ("one.bin", &[130u8][..]), ("empty.bin", &[][..])] {
                let target = out.path().join(format!("{mode}-{name}"));
                let r = s.download_with(name, Transport::Udp, &target, opts, |_| {}).await.unwrap();
                assert_eq!(r.udp_mode, Some(mode), "{name}");
                assert!(std::fs::read(&target).unwrap() == want, "{mode} {name}: bytes differ");
                assert_eq!(r.last_byte, want.last().copied());
            }
        }
        s.leave().await.unwrap();
    });
    let left = part_files(out.path());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn continue_resumes_from_the_partial_file() {
    let (dir, big) = served();
    let addr = server(dir.path());
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("big.bin");
    // An interrupted download left its first 3 MB (and garbage after: only
    // the part before len - receive_window is trusted, the hash checks it all).
    let part = chatctl::client::temp_path_for(&target);
    let mut partial = big[..3_000_000].to_vec();
    partial.extend_from_slice(&[0xAA; 100_000]);
    std::fs::write(&part, &partial).unwrap();
    let cfg = fast::Config { receive_window: 1_000_000, ..Default::default() };
    rt().block_on(async {
        let (s, _u) = Session::join(&addr.to_string(), "ALICE", Duration::from_secs(5)).await.unwrap();
        let opts = DownloadOptions { resume: true, fast: Some(cfg), ..Default::default() };
        let r = s.download_with("big.bin", Transport::Udp, &target, &opts, |_| {}).await.unwrap();
        assert_eq!(r.resumed_from, 2_100_000);
        assert_eq!(r.udp_mode, Some(UdpMode::Fast));
        s.leave().await.unwrap();
    });
    assert!(std::fs::read(&target).unwrap() == big);
    assert!(!part.exists());
}

#[test]
fn fetch_cli_fast_with_trace_and_verbose_lines() {
    let (dir, big) = served();
    let addr = server(dir.path());
    let out = tempfile::tempdir().unwrap();
    let trace = out.path().join("trace.jsonl");
    let o = out.path().to_str().unwrap();
    let r = Command::cargo_bin("chatctl")
        .unwrap()
        .args(["--server", &addr.to_string(), "--name", "ALICE", "--timeout", "5s", "-v", "--json"])
        .args(["fetch", "--udp", "big.bin", "-o", o, "--trace", trace.to_str().unwrap()])
        .env_remove("CHATCTL_NAME")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    assert_eq!(v["udp_mode"], "fast");
    assert!(std::fs::read(out.path().join("big.bin")).unwrap() == big);
    let lines = std::fs::read_to_string(&trace).unwrap();
    let last: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "stats");
    assert_eq!(last["bytes"], big.len() as u64);
}
