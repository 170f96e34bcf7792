//! The fast-mode drivers over real loopback UDP sockets: byte-exact
//! transfers, resume, and the classic fallback signal.

use std::io::Write;
use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chatctl::rdt::fast::Config;
use chatctl::rdt::fast::driver::{Expect, ReceiveReport, Tracer, receive_file_blocking, send_file_blocking};
use chatctl::rdt::sim::Rng;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..len).map(|_| r.next_u64() as u8).collect()
}

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// Runs a sender thread on a fresh port and a receiver here; returns what the receiver wrote.
fn transfer(src: &[u8], resume: usize, trace: Option<&Tracer>) -> (Vec<u8>, ReceiveReport) {
    let cfg = Config { idle_timeout: Duration::from_secs(5), ..Config::default() };
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let input = file_with(src);
    let output = file_with(&src[..resume]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let scfg = cfg.clone();
    let trace = trace.cloned();
    let sender = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        let f = std::fs::File::open(input.path()).unwrap();
        send_file_blocking(
            server,
            from.ip(),
            (from, buf[..n].to_vec()),
            &f,
            &scfg,
            trace.as_ref(),
            &AtomicBool::new(false),
        )
    });
    let out = std::fs::OpenOptions::new().read(true).write(true).open(output.path()).unwrap();
    let report = receive_file_blocking(
        client,
        server_addr,
        &out,
        Expect { resume_from: resume as u64, size: Some(src.len() as u64) },
        &cfg,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    let sent = sender.join().unwrap().unwrap();
    assert_eq!(sent.size, src.len() as u64);
    assert_eq!(sent.resumed_from, resume as u64);
    (std::fs::read(output.path()).unwrap(), report)
}

#[test]
fn loopback_transfers_are_byte_exact() {
    for (seed, len) in [(1u64, 0usize), (2, 1), (3, 64_999), (4, 3_000_000)] {
        let src = data(len, seed);
        let (got, report) = transfer(&src, 0, None);
        assert!(matches!(report, ReceiveReport::Fast { size, .. } if size == len as u64), "seed {seed}");
        assert!(got == src, "seed {seed} len {len}: bytes differ");
    }
}

#[test]
fn resume_keeps_the_prefix_and_fetches_the_rest() {
    let src = data(2_000_000, 9);
    let (got, _) = transfer(&src, 1_234_567, None);
    assert!(got == src);
}

#[test]
fn trace_has_one_json_line_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    let t = Tracer::create(&path).unwrap();
    let src = data(500_000, 5);
    transfer(&src, 0, Some(&t));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["t_us"].is_u64());
        kinds.insert(v["event"].as_str().unwrap().to_owned());
    }
    assert!(kinds.contains("send") && kinds.contains("ack") && kinds.contains("cwnd"), "{kinds:?}");
}

#[test]
fn classic_data_is_reported_for_the_classic_receiver() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(chatctl::rdt::classic::parse_window(&buf[..n]), Some(98));
        server.send_to(b"100hi", from).unwrap();
    });
    let out = tempfile::tempfile().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = receive_file_blocking(
        client,
        addr,
        &out,
        Expect::default(),
        &Config::default(),
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    fake.join().unwrap();
    assert!(matches!(r, ReceiveReport::Classic { ref first, .. } if first == b"100hi"));
}
