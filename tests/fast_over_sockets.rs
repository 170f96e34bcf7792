//! The fast-mode drivers over real loopback UDP sockets: byte-exact
//! transfers, resume, and the classic fallback signal.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use chatctl::rdt::fast::Config;
use chatctl::rdt::fast::driver::{
    Cancel, Expect, RdtError, ReceiveReport, SendReport, Tracer, receive_file_blocking, send_file_blocking,
};
use chatctl::rdt::sim::Rng;
use common::data;

use crate::common;

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// Serves `input` with the fast sender on `server` from a thread, to the
/// first hello that arrives; the thread returns where the hello came from and
/// the sender's result.
fn serve_one(
    server: UdpSocket,
    input: tempfile::NamedTempFile,
    cfg: Config,
    trace: Option<Tracer>,
) -> std::thread::JoinHandle<(SocketAddr, Result<SendReport, RdtError>)> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        let f = std::fs::File::open(input.path()).unwrap();
        let r = send_file_blocking(
            server,
            from.ip(),
            (from, buf[..n].to_vec()),
            &f,
            None,
            &cfg,
            trace.as_ref(),
            &Cancel::new(),
        );
        (from, r)
    })
}

/// Runs a sender thread on a fresh port and a receiver here; returns what the receiver wrote.
fn transfer(src: &[u8], resume: usize, trace: Option<&Tracer>) -> (Vec<u8>, ReceiveReport) {
    let cfg = Config { idle_timeout: Duration::from_secs(5), ..Config::default() };
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let input = file_with(src);
    let output = file_with(&src[..resume]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = serve_one(server, input, cfg.clone(), trace.cloned());
    let out = std::fs::OpenOptions::new().read(true).write(true).open(output.path()).unwrap();
    let report = receive_file_blocking(
        client,
        server_addr,
        &out,
        Expect { resume_from: resume as u64, size: Some(src.len() as u64) },
        &cfg,
        &Cancel::new(),
        |_| {},
    )
    .unwrap();
    let sent = sender.join().unwrap().1.unwrap();
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
    let r = receive_file_blocking(client, addr, &out, Expect::default(), &Config::default(), &Cancel::new(), |_| {})
        .unwrap();
    fake.join().unwrap();
    assert!(matches!(r, ReceiveReport::Classic { ref first, .. } if first == b"100hi"));
}

/// CPU time of the calling thread (user + system).
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A loopback goodput and CPU measurement, not a regular test: run with
/// `cargo test --release --test tests -- --ignored --nocapture loopback_goodput`.
/// `RDT_BENCH_BYTES` (default 1 GiB), `RDT_BENCH_DATAGRAM` (default: probing
/// on, 65,000-byte datagrams on loopback; a number turns probing off and
/// uses that size), files in `RDT_BENCH_DIR` (default /dev/shm). Prints
/// goodput and the CPU seconds per GB of the sender and receiver threads.
#[test]
#[ignore]
fn loopback_goodput() {
    let bytes: usize = std::env::var("RDT_BENCH_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 30);
    let dgram: Option<usize> = std::env::var("RDT_BENCH_DATAGRAM").ok().and_then(|v| v.parse().ok());
    let dir = std::env::var("RDT_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let mut cfg = Config::default();
    if let Some(d) = dgram {
        cfg.probe = false;
        cfg.max_datagram = d;
    }
    let mut input = tempfile::NamedTempFile::new_in(&dir).unwrap();
    let mut r = Rng::new(42);
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        for c in chunk[..n].chunks_mut(8) {
            let v = r.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        input.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    input.flush().unwrap();
    let output = tempfile::NamedTempFile::new_in(&dir).unwrap();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let scfg = cfg.clone();
    let path = input.path().to_owned();
    let sender = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        let f = std::fs::File::open(path).unwrap();
        let c0 = thread_cpu();
        let r = send_file_blocking(server, from.ip(), (from, buf[..n].to_vec()), &f, None, &scfg, None, &Cancel::new());
        (r, thread_cpu() - c0)
    });
    let out = std::fs::OpenOptions::new().read(true).write(true).open(output.path()).unwrap();
    let c0 = thread_cpu();
    let t0 = std::time::Instant::now();
    let report = receive_file_blocking(
        client,
        server_addr,
        &out,
        Expect { resume_from: 0, size: Some(bytes as u64) },
        &cfg,
        &Cancel::new(),
        |_| {},
    )
    .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let rcpu = thread_cpu() - c0;
    let (sent, scpu) = sender.join().unwrap();
    let sent = sent.unwrap();
    assert!(matches!(report, ReceiveReport::Fast { size, .. } if size == bytes as u64));
    let gb = bytes as f64 / 1e9;
    println!(
        "loopback_goodput bytes={bytes} datagram={} cc={} goodput={:.0} MB/s secs={secs:.2} \
         sender_cpu={:.2} s/GB receiver_cpu={:.2} s/GB lost={} retx_bytes={}",
        sent.max_datagram,
        sent.cc,
        bytes as f64 / secs / 1e6,
        scpu.as_secs_f64() / gb,
        rcpu.as_secs_f64() / gb,
        sent.stats.packets_lost,
        sent.stats.bytes_retransmitted,
    );
}

/// 1452-byte datagrams (probing off), so the sender forms GSO batches where
/// the OS has GSO, through the impairment relay with seeded loss both ways:
/// the download is byte-exact, and fewer `sendmsg` calls than datagrams show
/// the batches formed (the relay's socket has no GRO, so the kernel cuts
/// each batch into datagrams before the relay drops some).
#[test]
fn segmented_sends_survive_seeded_loss_byte_exact() {
    use chatctl::rdt::relay::{Impairment, Relay};
    let seed = 0x6_5050_u64;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let relay = rt
        .block_on(Relay::start(
            "127.0.0.1:0".parse().unwrap(),
            server_addr,
            Impairment::loss(0.02, seed),
            Impairment::loss(0.02, seed + 1),
        ))
        .unwrap();
    let src = data(4_000_000, seed);
    let input = file_with(&src);
    let output = tempfile::NamedTempFile::new().unwrap();
    let cfg = Config { probe: false, max_datagram: 1452, idle_timeout: Duration::from_secs(5), ..Config::default() };
    let sender = serve_one(server, input, cfg.clone(), None);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = std::fs::OpenOptions::new().read(true).write(true).open(output.path()).unwrap();
    let report = receive_file_blocking(
        client,
        relay.local_addr,
        &out,
        Expect { resume_from: 0, size: Some(src.len() as u64) },
        &cfg,
        &Cancel::new(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let sent = sender.join().unwrap().1.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let stats = rt.block_on(relay.shutdown());
    assert!(matches!(report, ReceiveReport::Fast { .. }), "seed {seed}");
    assert!(std::fs::read(output.path()).unwrap() == src, "seed {seed}: bytes differ");
    assert_eq!(sent.max_datagram, 1452);
    assert!(stats.up.dropped + stats.down.dropped > 0, "seed {seed}: the relay dropped nothing: {stats:?}");
    assert!(sent.stats.bytes_retransmitted > 0, "seed {seed}: nothing was sent again");
    let gso = quinn_gso_segments();
    println!(
        "seed {seed}: {} datagrams in {} sendmsg calls (GSO up to {gso} segments), relay {stats:?}",
        sent.stats.datagrams_sent, sent.send_calls
    );
    if gso > 1 {
        assert!(sent.send_calls < sent.stats.datagrams_sent / 2, "seed {seed}: GSO batches did not form");
    } else {
        println!("no GSO on this OS: every datagram was sent alone");
        assert_eq!(sent.send_calls, sent.stats.datagrams_sent);
    }
}

/// What quinn-udp reports for a fresh loopback socket.
fn quinn_gso_segments() -> usize {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    quinn_udp::UdpSocketState::new((&s).into()).unwrap().max_gso_segments()
}

/// The report (and so the server's `datagram=` log field) gives the datagram
/// size the transfer ended with, after path-MTU probing, not the configured
/// starting size: on a 9000-byte-MTU veth path it said 1452 while the
/// transfer ran at 8,972. The sender is reached at an IPv4-mapped IPv6
/// address, which `Config::for_path` does not treat as loopback, so the
/// transfer starts at 1452 and probes upwards over loopback's 65,536-byte MTU.
#[test]
fn the_report_gives_the_datagram_size_probing_found() {
    let Ok(server) = UdpSocket::bind("[::]:0") else {
        common::skip("no IPv6 socket");
        return;
    };
    let port = server.local_addr().unwrap().port();
    let src = data(8 << 20, 11);
    let input = file_with(&src);
    let output = file_with(&[]);
    let cfg = Config { idle_timeout: Duration::from_secs(5), ..Config::default() };
    assert_eq!(cfg.max_datagram, 1452);
    let sender = serve_one(server, input, cfg.clone(), None);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = std::fs::OpenOptions::new().read(true).write(true).open(output.path()).unwrap();
    let report = receive_file_blocking(
        client,
        format!("127.0.0.1:{port}").parse().unwrap(),
        &out,
        Expect { resume_from: 0, size: Some(src.len() as u64) },
        &cfg,
        &Cancel::new(),
        |_| {},
    )
    .unwrap();
    assert!(matches!(report, ReceiveReport::Fast { .. }));
    let (from, sent) = sender.join().unwrap();
    assert!(!from.ip().is_loopback(), "{from} counts as loopback: nothing would have been probed");
    let sent = sent.unwrap();
    assert!(std::fs::read(output.path()).unwrap() == src);
    assert!(cfg.probe_datagrams.contains(&sent.max_datagram), "datagram {} after probing", sent.max_datagram);
}

/// A hand-made fast receiver on `peer`'s socket: sends the hello to
/// `server`, answers the CHALLENGE with a START that allows `max_data`
/// bytes; returns the cookie.
fn start_by_hand(peer: &UdpSocket, server: SocketAddr, max_data: u64) -> u64 {
    use chatctl::rdt::fast::{Frame, encode_hello};
    peer.send_to(&encode_hello(), server).unwrap();
    let mut buf = vec![0u8; 70_000];
    let n = peer.recv(&mut buf).unwrap();
    let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&buf[..n]) else { panic!("expected CHALLENGE") };
    let mut d = Vec::new();
    Frame::Start { cookie, resume: 0, max_data }.encode(&mut d);
    peer.send_to(&d, server).unwrap();
    cookie
}

/// The ABORTs among what `sock` receives within `wait`: (cookie, reason).
fn aborts_within(sock: &UdpSocket, wait: Duration) -> Vec<(u64, chatctl::rdt::fast::AbortReason)> {
    use chatctl::rdt::fast::Frame;
    let deadline = std::time::Instant::now() + wait;
    let mut buf = vec![0u8; 70_000];
    let mut got = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) {
        sock.set_read_timeout(Some(left)).unwrap();
        let Ok(n) = sock.recv(&mut buf) else { break };
        if let Ok(Frame::Abort { cookie, reason, .. }) = Frame::decode(&buf[..n]) {
            got.push((cookie, reason));
        }
    }
    got
}

/// Cancelling a sending driver (the user left) sends the receiver ABORTs
/// with that reason at once, and the driver returns `Cancelled`.
#[test]
fn a_cancelled_sender_tells_the_receiver_at_once() {
    use chatctl::rdt::fast::AbortReason;
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let input = file_with(&data(1_000_000, 3));
    let cancel = std::sync::Arc::new(Cancel::new());
    let c = cancel.clone();
    let sender = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        let f = std::fs::File::open(input.path()).unwrap();
        send_file_blocking(server, from.ip(), (from, buf[..n].to_vec()), &f, None, &Config::default(), None, &c)
    });
    // Flow control holds the sender after 10 kB: it waits, not sends.
    let cookie = start_by_hand(&peer, server_addr, 10_000);
    std::thread::sleep(Duration::from_millis(300));
    let t = std::time::Instant::now();
    cancel.cancel(AbortReason::UserLeft);
    let r = sender.join().unwrap();
    let ended = t.elapsed();
    assert!(matches!(r, Err(RdtError::Cancelled(AbortReason::UserLeft))), "{r:?}");
    assert!(ended < Duration::from_secs(1), "the driver took {ended:?} to notice");
    let got = aborts_within(&peer, Duration::from_millis(500));
    assert_eq!(got, vec![(cookie, AbortReason::UserLeft); 3]);
}

/// Dropping a fast download's future (Ctrl-C) sends the server ABORTs
/// before the drop returns, so a client that exits right after has still
/// told the server; the partial file keeps what arrived.
#[test]
fn a_dropped_download_has_sent_its_abort_when_the_drop_returns() {
    use chatctl::rdt::fast::{AbortReason, Frame};
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let out = tempfile::tempfile().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(async move {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let expect = Expect { resume_from: 0, size: Some(100_000) };
        let cfg = Config::default();
        let r = chatctl::rdt::fast::driver::receive_file(sock, server_addr, out, expect, &cfg, |_| {});
        tokio::select! {
            _ = r => panic!("the download ended by itself"),
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = rx => {}
        }
        // Here the download's future has been dropped.
    });
    // A hand-made sender: CHALLENGE, then one DATA after the START.
    let mut buf = vec![0u8; 2048];
    let (_, client) = server.recv_from(&mut buf).unwrap();
    let mut d = Vec::new();
    Frame::Challenge { cookie: 77, size: 100_000 }.encode(&mut d);
    server.send_to(&d, client).unwrap();
    loop {
        let n = server.recv(&mut buf).unwrap();
        if matches!(Frame::decode(&buf[..n]), Ok(Frame::Start { .. })) {
            break;
        }
    }
    Frame::Data { pn: 0, offset: 0, payload: &[5; 1000] }.encode(&mut d);
    server.send_to(&d, client).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    tx.send(()).unwrap();
    rt.block_on(task).unwrap();
    // No waiting here: the ABORTs are already in the socket's queue.
    server.set_nonblocking(true).unwrap();
    let mut aborts = Vec::new();
    while let Ok(n) = server.recv(&mut buf) {
        if let Ok(Frame::Abort { cookie, reason, .. }) = Frame::decode(&buf[..n]) {
            aborts.push((cookie, reason));
        }
    }
    assert_eq!(aborts, vec![(77, AbortReason::Cancelled); 3]);
}

/// Declining a download (`--continue` found the file complete) ends the
/// fast sender at once with the receiver's ABORT, instead of leaving it to
/// wait for the receiver.
#[test]
fn a_declined_download_ends_the_sender_at_once() {
    use chatctl::rdt::fast::AbortReason;
    use chatctl::rdt::fast::sender::SendError;
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let input = file_with(&data(100_000, 8));
    let sender = serve_one(server, input, Config::default(), None);
    let t = std::time::Instant::now();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    chatctl::rdt::fast::driver::decline_blocking(client, server_addr, Duration::from_secs(2)).unwrap();
    let (_, r) = sender.join().unwrap();
    assert!(
        matches!(r, Err(RdtError::Send(SendError::PeerAborted(ref a))) if a.reason == AbortReason::Cancelled),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}
