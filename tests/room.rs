//! `chatctl serve` over real loopback sockets: a tiny test client written with
//! `chatctl::wire` on raw tokio sockets (independent of the client library).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::common;

use chatctl::rdt::classic;
use chatctl::rdt::sim::Rng;
use chatctl::server::{Config, Handle, PortSpec, Server};
use chatctl::wire::{Confirm, Decoder, Direction, ErrorCode, Message, Update};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(5);

struct TestServer {
    addr: SocketAddr,
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl TestServer {
    async fn start(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            files: Some(dir.path().to_path_buf()),
            ports: PortSpec::Ephemeral { max: 64 },
            join_timeout: Duration::from_secs(3),
            ..Config::default()
        };
        f(&mut cfg);
        let server = Server::bind(cfg).await.unwrap();
        let addr = server.local_addr();
        let handle = server.handle();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer { addr, handle, stop: Some(tx), task, dir: dir.path().to_path_buf(), _dir: dir }
    }

    /// Stops the server and checks that every pool port came back.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(T, self.task).await.expect("server did not stop").unwrap();
        assert_eq!(self.handle.ports_in_use(), 0, "ports leaked after shutdown");
    }

    /// Waits until the pool is back to `n` ports in use.
    async fn ports_settle(&self, n: usize) {
        for _ in 0..500 {
            if self.handle.ports_in_use() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("ports in use: {} (expected {n})", self.handle.ports_in_use());
    }
}

struct Stream {
    s: TcpStream,
    d: Decoder,
}

impl Stream {
    fn new(s: TcpStream) -> Self {
        Stream { s, d: Decoder::new(Direction::ToClient) }
    }
    async fn recv(&mut self) -> Message {
        tokio::time::timeout(T, async {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(m) = self.d.next_message().unwrap() {
                    return m;
                }
                let n = self.s.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed while waiting for a message");
                self.d.feed(&buf[..n]);
            }
        })
        .await
        .expect("no message within 5 s")
    }
    /// True if the peer closed (FIN) with nothing more to read.
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(T, self.s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
    }
    /// True if the peer closed the connection, after whatever it still sent.
    async fn closed_after_draining(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(T, async {
            loop {
                match self.s.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

struct Client {
    main: Stream,
    upd: Option<Stream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client { main: Stream::new(TcpStream::connect(addr).await.unwrap()), upd: None }
    }
    async fn join(addr: SocketAddr, name: &str) -> Client {
        let mut c = Client::connect(addr).await;
        c.send(format!("100{:02}{name}", name.chars().count())).await;
        let Message::Confirm(Confirm::Joined { port, .. }) = c.recv().await else { panic!("join refused") };
        c.upd = Some(Stream::new(TcpStream::connect((addr.ip(), port)).await.unwrap()));
        c
    }
    async fn send(&mut self, s: impl AsRef<[u8]>) {
        self.main.s.write_all(s.as_ref()).await.unwrap();
    }
    async fn recv(&mut self) -> Message {
        self.main.recv().await
    }
    async fn update(&mut self) -> Message {
        self.upd.as_mut().unwrap().recv().await
    }
    async fn ask(&mut self, s: impl AsRef<[u8]>) -> Message {
        self.send(s).await;
        self.recv().await
    }
}

fn err(e: ErrorCode) -> Message {
    Message::Error(e)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn two_and_three_clients_chat() {
    let srv = TestServer::start(|_| {}).await;
    let mut a = Client::join(srv.addr, "ALICE").await;
    // The reference client sends 102 right after 200; it waits for the join.
    a.send("102\r\n").await;
    assert_eq!(a.recv().await, Message::Confirm(Confirm::Users { users: vec![] }));
    let mut b = Client::join(srv.addr, "BOB").await;
    assert_eq!(a.update().await, Message::Update(Update::Joined { name: "BOB".into() }));
    assert_eq!(b.ask("102").await, Message::Confirm(Confirm::Users { users: names(&["ALICE"]) }));

    // Whisper: 303 reaches the target, 203 the sender.
    assert_eq!(a.ask("10303BOB19hey Bob, I'm Alice!\r\n").await, Message::Confirm(Confirm::WhisperSent));
    assert_eq!(
        b.update().await,
        Message::Update(Update::Whisper { from: "ALICE".into(), text: "hey Bob, I'm Alice!".into() })
    );
    // Unicode lengths count characters.
    assert_eq!(b.ask("10305ALICE04שלום").await, Message::Confirm(Confirm::WhisperSent));
    assert_eq!(a.update().await, Message::Update(Update::Whisper { from: "BOB".into(), text: "שלום".into() }));

    let mut c = Client::join(srv.addr, "CAROL").await;
    assert_eq!(a.update().await, Message::Update(Update::Joined { name: "CAROL".into() }));
    assert_eq!(b.update().await, Message::Update(Update::Joined { name: "CAROL".into() }));
    // Broadcast: 204 names exactly the others, never the sender.
    assert_eq!(c.ask("10402hi").await, Message::Confirm(Confirm::BroadcastSent { to: names(&["ALICE", "BOB"]) }));
    for x in [&mut a, &mut b] {
        assert_eq!(x.update().await, Message::Update(Update::Broadcast { from: "CAROL".into(), text: "hi".into() }));
    }
    // Several messages in one segment, and one message split across writes.
    b.send("10400104").await;
    assert_eq!(b.recv().await, Message::Confirm(Confirm::BroadcastSent { to: names(&["ALICE", "CAROL"]) }));
    b.send("01x").await;
    assert_eq!(b.recv().await, Message::Confirm(Confirm::BroadcastSent { to: names(&["ALICE", "CAROL"]) }));
    for x in [&mut a, &mut c] {
        assert_eq!(x.update().await, Message::Update(Update::Broadcast { from: "BOB".into(), text: "".into() }));
        assert_eq!(x.update().await, Message::Update(Update::Broadcast { from: "BOB".into(), text: "x".into() }));
    }
    assert_eq!(srv.handle.ports_in_use(), 3);

    // Leave: FIN on the update connection, then 201; the others get 301.
    a.send("101\r\n").await;
    assert!(a.upd.as_mut().unwrap().closed().await, "update connection not closed");
    assert_eq!(a.recv().await, Message::Confirm(Confirm::Left));
    for x in [&mut b, &mut c] {
        assert_eq!(x.update().await, Message::Update(Update::Left { name: "ALICE".into() }));
    }
    // A dropped main connection is cleaned up like 101.
    drop(c);
    assert_eq!(b.update().await, Message::Update(Update::Left { name: "CAROL".into() }));
    assert_eq!(b.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    // ALICE can join again on the same connection... and the name is free.
    let mut a2 = Client::join(srv.addr, "ALICE").await;
    assert_eq!(b.update().await, Message::Update(Update::Joined { name: "ALICE".into() }));
    assert_eq!(a2.ask("102").await, Message::Confirm(Confirm::Users { users: names(&["BOB"]) }));
    drop((a, a2, b));
    srv.ports_settle(0).await;
    srv.stop().await;
}

#[tokio::test]
async fn every_error_code() {
    let srv = TestServer::start(|c| c.max_users = 2).await;
    std::fs::write(srv.dir.join("a.txt"), b"hello").unwrap();
    std::fs::create_dir(srv.dir.join("sub")).unwrap();
    std::fs::write(srv.dir.join("sub/x"), b"x").unwrap();
    let mut x = Client::connect(srv.addr).await;
    // Not joined yet: 4TT9.
    assert_eq!(x.ask("102").await, err(ErrorCode::malformed(2)));
    assert_eq!(x.ask("101").await, err(ErrorCode::malformed(1)));
    assert_eq!(x.ask("10402hi").await, err(ErrorCode::malformed(4)));
    // Junk: 4999, and the connection goes on.
    assert_eq!(x.ask("hello\r\n").await, err(ErrorCode::UNPARSEABLE));
    assert_eq!(x.ask("107\r\n").await, err(ErrorCode::UNPARSEABLE));
    assert_eq!(x.ask("10001A").await, err(ErrorCode::INVALID_NAME));
    let mut a = Client::join(srv.addr, "AL").await;
    assert_eq!(x.ask("10002AL").await, err(ErrorCode::NAME_TAKEN));
    assert_eq!(a.ask("10002AL").await, err(ErrorCode::malformed(0)));
    let _b = Client::join(srv.addr, "BO").await;
    assert_eq!(x.ask("10002CY").await, err(ErrorCode::SERVER_FULL));
    assert_eq!(a.ask("10302ZZ02hi").await, err(ErrorCode::NO_SUCH_USER));
    assert_eq!(a.ask("105").await, Message::Confirm(Confirm::Files { files: names(&["a.txt"]) }));
    for bad in ["../x", "/etc/passwd", "sub/x", "sub", "A.TXT", "nope"] {
        let m = a.ask(format!("106TCP{:02}{bad}", bad.len())).await;
        assert_eq!(m, err(ErrorCode::NO_SUCH_FILE), "{bad}");
    }
    assert_eq!(a.ask("106FTP05a.txt").await, err(ErrorCode::UNKNOWN_TRANSPORT));
    srv.ports_settle(2).await;
    drop((a, x));
    srv.stop().await;
}

#[tokio::test]
async fn empty_pool_gives_4003_and_4062() {
    let srv = TestServer::start(|c| c.ports = PortSpec::Ephemeral { max: 1 }).await;
    std::fs::write(srv.dir.join("f"), b"data").unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let mut x = Client::connect(srv.addr).await;
    assert_eq!(x.ask("10002BO").await, err(ErrorCode::SERVER_FULL));
    assert_eq!(a.ask("106TCP01f").await, err(ErrorCode::NO_TRANSFER_PORT));
    assert_eq!(a.ask("106UDP01f").await, err(ErrorCode::NO_TRANSFER_PORT));
    // The refused join freed its name.
    a.send("101").await;
    assert_eq!(a.recv().await, Message::Confirm(Confirm::Left));
    srv.ports_settle(0).await;
    let _b = Client::join(srv.addr, "BO").await;
    drop((a, x, _b));
    srv.stop().await;
}

#[tokio::test]
async fn no_folder_lists_nothing() {
    let srv = TestServer::start(|c| c.files = None).await;
    let mut a = Client::join(srv.addr, "AL").await;
    assert_eq!(a.ask("105").await, Message::Confirm(Confirm::Files { files: vec![] }));
    a.send("105").await;
    drop(a);
    srv.stop().await;
}

#[tokio::test]
async fn tcp_downloads_byte_exact_while_chatting() {
    let srv = TestServer::start(|_| {}).await;
    let big = common::data(3_000_000, 7);
    std::fs::write(srv.dir.join("big.bin"), &big).unwrap();
    std::fs::write(srv.dir.join("empty"), b"").unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let mut b = Client::join(srv.addr, "BO").await;
    a.update().await;
    let mut fetches = Vec::new();
    for (who, file) in [(0, "big.bin"), (0, "big.bin"), (1, "big.bin"), (1, "empty")] {
        let c = if who == 0 { &mut a } else { &mut b };
        let Message::Confirm(Confirm::Download { size, port }) = c.ask(format!("106TCP{:02}{file}", file.len())).await
        else {
            panic!("no 206")
        };
        fetches.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut v = Vec::new();
            s.read_to_end(&mut v).await.unwrap();
            (size, v)
        }));
    }
    // Chat keeps flowing during downloads.
    assert_eq!(a.ask("10302BO02yo").await, Message::Confirm(Confirm::WhisperSent));
    for (i, f) in fetches.into_iter().enumerate() {
        let (size, v) = f.await.unwrap();
        assert_eq!(size as usize, v.len());
        if i < 3 {
            assert!(v == big, "download {i} differs");
        } else {
            assert!(v.is_empty());
        }
    }
    srv.ports_settle(2).await;
    drop((a, b));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// A classic receiver like the reference's: drops every `drop_every`-th
/// datagram it receives, plus seeded random loss of its ACKs (`ack_loss` %).
async fn classic_receive(port: u16, w: u8, seed: u64, drop_every: u64, ack_loss: u64) -> Vec<u8> {
    classic_receive_stalling(port, w, seed, drop_every, ack_loss, 0).await
}

/// [`classic_receive`], also sleeping 2 s at every `stall_every`-th datagram
/// received, as the reference receiver does at every 10th.
async fn classic_receive_stalling(
    port: u16,
    w: u8,
    seed: u64,
    drop_every: u64,
    ack_loss: u64,
    stall_every: u64,
) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(("127.0.0.1", port)).await.unwrap();
    let mut rng = Rng::new(seed);
    let mut rand = move || rng.next_u64();
    let mut buf = vec![0u8; 2048];
    // Repeat the hello until data arrives.
    let mut n = loop {
        sock.send(&classic::encode_window(w)).await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await {
            break n;
        }
    };
    let (mut got, mut expect, mut count) = (Vec::new(), 0u8, 0u64);
    loop {
        count += 1;
        if stall_every != 0 && count % stall_every == 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if drop_every == 0 || count % drop_every != 0 {
            let d = classic::Data::parse(&buf[..n]).expect("not a data datagram");
            if d.seq == expect {
                got.extend_from_slice(d.payload);
                expect = (expect + 1) % (w + 1);
                if d.last {
                    // The reference exits here; its last ACK may well be lost.
                    if rand() % 100 >= ack_loss {
                        sock.send(&classic::encode_ack(expect)).await.unwrap();
                    }
                    return got;
                }
            }
            if rand() % 100 >= ack_loss {
                sock.send(&classic::encode_ack(expect)).await.unwrap();
            }
        }
        n = match tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => panic!("receiver timed out with {} bytes (seed {seed})", got.len()),
        };
    }
}

#[tokio::test]
async fn classic_udp_downloads_under_loss() {
    let srv = TestServer::start(|_| {}).await;
    let data = common::data(300_000, 11);
    std::fs::write(srv.dir.join("f.bin"), &data).unwrap();
    std::fs::write(srv.dir.join("empty"), b"").unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let mut runs = Vec::new();
    for (seed, file, w) in [(1u64, "f.bin", 20u8), (2, "f.bin", 98), (3, "f.bin", 5), (4, "empty", 20)] {
        let Message::Confirm(Confirm::Download { size, port }) = a.ask(format!("106UDP{:02}{file}", file.len())).await
        else {
            panic!("no 206")
        };
        let t0 = std::time::Instant::now();
        let run = tokio::spawn(async move {
            let got = classic_receive(port, w, seed, 11, 10).await;
            eprintln!("seed {seed}: {} bytes at window {w} received in {:?}", got.len(), t0.elapsed());
            got
        });
        runs.push((seed, file, size, run));
    }
    let t0 = std::time::Instant::now();
    for (seed, file, size, r) in runs {
        let got = r.await.unwrap();
        assert_eq!(got.len() as u64, size, "seed {seed}");
        if file == "f.bin" {
            assert!(got == data, "seed {seed}: bytes differ");
        }
    }
    // Senders whose last ACK was lost still end, and return their ports.
    srv.ports_settle(1).await;
    eprintln!("every sender ended {:?} after the last receiver", t0.elapsed());
    drop(a);
    srv.stop().await;
}

#[tokio::test]
async fn hijack_attempts_from_another_address_are_refused() {
    let srv = TestServer::start(|c| c.join_timeout = Duration::from_millis(500)).await;
    std::fs::write(srv.dir.join("f"), common::data(5000, 3)).unwrap();
    // The update port: 127.0.0.2 connects first; the server must not take it.
    let mut a = Client::connect(srv.addr).await;
    let Message::Confirm(Confirm::Joined { port, .. }) = a.ask("10002AL").await else { panic!() };
    let evil = TcpSocket::new_v4().unwrap();
    evil.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut evil = Stream::new(evil.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap());
    assert!(evil.closed().await, "the hijacker's connection must be closed");
    a.upd = Some(Stream::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap()));
    let mut b = Client::join(srv.addr, "BO").await;
    assert_eq!(a.update().await, Message::Update(Update::Joined { name: "BO".into() }));

    // UDP: the attacker sends a hello to Q first and gets nothing.
    let Message::Confirm(Confirm::Download { port, .. }) = b.ask("106UDP01f").await else { panic!() };
    let evil = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    evil.send_to(b"20", ("127.0.0.1", port)).await.unwrap();
    let got = classic_receive(port, 20, 9, 0, 0).await;
    assert_eq!(got, common::data(5000, 3));
    let mut buf = [0u8; 2048];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), evil.recv_from(&mut buf)).await.is_err(),
        "the attacker received data"
    );
    // TCP transfer: the attacker's connection is refused, the requester's served.
    let Message::Confirm(Confirm::Download { port, .. }) = b.ask("106TCP01f").await else { panic!() };
    let evil = TcpSocket::new_v4().unwrap();
    evil.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut evil = evil.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let mut v = Vec::new();
    let _ = tokio::time::timeout(T, evil.read_to_end(&mut v)).await.unwrap();
    assert!(v.is_empty(), "the attacker received data over TCP");
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).await.unwrap();
    assert_eq!(v, common::data(5000, 3));
    srv.ports_settle(2).await;
    drop((a, b));
    srv.stop().await;
}

#[tokio::test]
async fn join_without_update_connection_is_rolled_back() {
    let srv = TestServer::start(|c| c.join_timeout = Duration::from_millis(300)).await;
    let mut x = Client::connect(srv.addr).await;
    let Message::Confirm(Confirm::Joined { .. }) = x.ask("10002AL").await else { panic!() };
    assert_eq!(srv.handle.ports_in_use(), 1);
    srv.ports_settle(0).await;
    assert_eq!(srv.handle.users(), 0);
    // The name is free again; the connection can still join.
    let _a = Client::join(srv.addr, "AL").await;
    // Abandoned downloads return their ports too.
    std::fs::write(srv.dir.join("f"), b"x").unwrap();
    let mut a = _a;
    assert!(matches!(a.ask("106TCP01f").await, Message::Confirm(Confirm::Download { .. })));
    assert!(matches!(a.ask("106UDP01f").await, Message::Confirm(Confirm::Download { .. })));
    srv.ports_settle(1).await;
    drop((a, x));
    srv.ports_settle(0).await;
    srv.stop().await;
}

#[tokio::test]
async fn storm_while_one_user_never_reads() {
    let srv = TestServer::start(|c| c.update_queue = 256).await;
    // SLOW never reads its update connection; a tiny receive buffer fills fast.
    let mut slow = Client::connect(srv.addr).await;
    let Message::Confirm(Confirm::Joined { port, .. }) = slow.ask("10004SLOW").await else { panic!() };
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let _slow_upd = sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let mut b = Client::join(srv.addr, "BO").await;
    a.update().await;
    // A reader that counts BO's updates while AL storms.
    let upd = b.upd.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut upd = upd;
        let mut n = 0;
        while n < 20_000 {
            if let Message::Update(Update::Broadcast { .. }) = upd.recv().await {
                n += 1;
            }
        }
        n
    });
    let text = "x".repeat(99);
    let msg = format!("10499{text}");
    let started = std::time::Instant::now();
    let mut confirmed = 0;
    // Pipeline in batches of 100 messages per write.
    for _ in 0..200 {
        a.send(msg.repeat(100)).await;
        for _ in 0..100 {
            match a.recv().await {
                Message::Confirm(Confirm::BroadcastSent { .. }) => confirmed += 1,
                m => panic!("unexpected {m:?}"),
            }
        }
    }
    assert_eq!(confirmed, 20_000);
    assert_eq!(tokio::time::timeout(Duration::from_secs(20), reader).await.unwrap().unwrap(), 20_000);
    let elapsed = started.elapsed();
    // SLOW was disconnected; the others never noticed more than a short wait.
    assert_eq!(b.ask("102").await, Message::Confirm(Confirm::Users { users: names(&["AL"]) }));
    assert!(slow.main.closed().await, "the slow user's main connection must be closed");
    assert!(elapsed < Duration::from_secs(30), "storm took {elapsed:?}");
    eprintln!("storm: 20000 broadcasts in {elapsed:?}");
    drop((a, b));
    srv.ports_settle(0).await;
    srv.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_4tt9_and_junk_4999() {
    let srv = TestServer::start(|_| {}).await;
    let mut x = Client::connect(srv.addr).await;
    // Unjoined: the type is known, the fields are not: 4TT9.
    assert_eq!(x.ask("103ZZ\r\n").await, err(ErrorCode::malformed(3)));
    assert_eq!(x.ask("100xx\r\n").await, err(ErrorCode::malformed(0)));
    let mut a = Client::join(srv.addr, "AL").await;
    let _b = Client::join(srv.addr, "BO").await;
    a.update().await;
    assert_eq!(a.ask("10302BOxx\r\n").await, err(ErrorCode::malformed(3)));
    assert_eq!(a.ask("104-1\r\n").await, err(ErrorCode::malformed(4)));
    assert_eq!(a.ask("106TCPab\r\n").await, err(ErrorCode::malformed(6)));
    // No known type: 4999.
    assert_eq!(a.ask("1x\r\n").await, err(ErrorCode::UNPARSEABLE));
    assert_eq!(a.ask("109\r\n").await, err(ErrorCode::UNPARSEABLE));
    assert_eq!(a.ask("2021103BOB\r\n").await, err(ErrorCode::UNPARSEABLE));
    // Invalid UTF-8 in a text field is a malformed 104.
    a.send(b"10402\xff\xfe\r\n").await;
    assert_eq!(a.recv().await, err(ErrorCode::malformed(4)));
    // After all that, the connection still works.
    assert_eq!(a.ask("102").await, Message::Confirm(Confirm::Users { users: names(&["BO"]) }));
    drop((a, x, _b));
    srv.ports_settle(0).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_client_that_floods_junk_is_cut_off() {
    let srv = TestServer::start(|c| c.max_bad_input = 5).await;
    let mut a = Client::join(srv.addr, "AL").await;
    let mut b = Client::join(srv.addr, "BO").await;
    a.update().await;
    // A valid request ends a run of bad input.
    for _ in 0..4 {
        assert_eq!(a.ask("junk\r\n").await, err(ErrorCode::UNPARSEABLE));
    }
    assert_eq!(a.ask("102").await, Message::Confirm(Confirm::Users { users: names(&["BO"]) }));
    for _ in 0..5 {
        assert_eq!(a.ask("junk\r\n").await, err(ErrorCode::UNPARSEABLE));
    }
    // The sixth in a row cuts AL off: no answer, connection closed, AL left.
    a.send("junk\r\n").await;
    assert!(a.main.closed().await, "the flooder's connection must be closed");
    assert_eq!(b.update().await, Message::Update(Update::Left { name: "AL".into() }));
    // An unjoined connection that repeats requests it may not send is cut off too.
    let mut x = Client::connect(srv.addr).await;
    for _ in 0..5 {
        assert_eq!(x.ask("102").await, err(ErrorCode::malformed(2)));
    }
    x.send("102").await;
    assert!(x.main.closed().await, "the unjoined flooder must be closed");
    // A large flood of bytes with no line end: cut off after a few reads.
    let mut y = Client::connect(srv.addr).await;
    let junk = vec![b'x'; 1 << 20];
    let _ = tokio::time::timeout(T, y.main.s.write_all(&junk)).await;
    assert!(y.main.closed_after_draining().await, "the byte flooder must be closed");
    assert_eq!(b.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    drop(b);
    srv.ports_settle(0).await;
    srv.stop().await;
}

#[tokio::test]
async fn half_sent_messages_and_idle_unjoined_connections_are_dropped() {
    let idle = Duration::from_millis(600);
    let srv = TestServer::start(|c| c.idle_timeout = idle).await;
    let t0 = std::time::Instant::now();
    // Connects and never joins.
    let mut silent = Client::connect(srv.addr).await;
    // Keeps sending requests, but never joins: still dropped on time.
    let mut chatty = Client::connect(srv.addr).await;
    let mut b = Client::join(srv.addr, "BO").await;
    // Joins, then sends half a message and stops.
    let mut half = Client::join(srv.addr, "HALF").await;
    assert_eq!(b.update().await, Message::Update(Update::Joined { name: "HALF".into() }));
    half.send("10302BO05hel").await;
    for _ in 0..3 {
        assert_eq!(chatty.ask("105").await, err(ErrorCode::malformed(5)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(silent.main.closed().await, "idle unjoined connection not closed");
    assert!(chatty.main.closed().await, "unjoined connection not closed");
    assert!(half.main.closed().await, "connection with half a message not closed");
    assert_eq!(b.update().await, Message::Update(Update::Left { name: "HALF".into() }));
    let took = t0.elapsed();
    assert!(took < idle * 4, "took {took:?}");
    // A joined user who is merely quiet stays.
    tokio::time::sleep(idle * 2).await;
    assert_eq!(b.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    srv.ports_settle(1).await;
    drop(b);
    srv.ports_settle(0).await;
    srv.stop().await;
}

#[tokio::test]
async fn ipv6_listen() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        common::skip("no IPv6 loopback on this machine");
        return;
    };
    drop(probe);
    let srv = TestServer::start(|c| {
        c.listen = "[::1]:0".parse().unwrap();
        // The UDP download below is abandoned after its first datagram.
        c.idle_timeout = Duration::from_millis(500);
    })
    .await;
    assert!(srv.addr.is_ipv6());
    std::fs::write(srv.dir.join("f"), common::data(20_000, 5)).unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let mut b = Client::join(srv.addr, "BO").await;
    assert_eq!(a.update().await, Message::Update(Update::Joined { name: "BO".into() }));
    assert_eq!(a.ask("10302BO02hi").await, Message::Confirm(Confirm::WhisperSent));
    assert_eq!(b.update().await, Message::Update(Update::Whisper { from: "AL".into(), text: "hi".into() }));
    let Message::Confirm(Confirm::Download { port, .. }) = b.ask("106TCP01f").await else { panic!("no 206") };
    let mut s = TcpStream::connect((std::net::Ipv6Addr::LOCALHOST, port)).await.unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).await.unwrap();
    assert!(v == common::data(20_000, 5));
    let Message::Confirm(Confirm::Download { port, .. }) = b.ask("106UDP01f").await else { panic!("no 206") };
    let sock = UdpSocket::bind("[::1]:0").await.unwrap();
    sock.connect((std::net::Ipv6Addr::LOCALHOST, port)).await.unwrap();
    sock.send(b"20").await.unwrap();
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(T, sock.recv(&mut buf)).await.unwrap().unwrap();
    let d = classic::Data::parse(&buf[..n]).unwrap();
    assert_eq!((d.seq, d.payload), (0, &common::data(20_000, 5)[..1000]));
    drop((a, b, sock));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// Reads the raw bytes of the next message on `s`.
async fn raw_message(s: &mut TcpStream) -> Vec<u8> {
    let mut d = Decoder::new(Direction::ToClient);
    let mut buf = [0u8; 8192];
    tokio::time::timeout(T, async {
        loop {
            if let Some(f) = d.next_frame().unwrap() {
                return f.raw;
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            d.feed(&buf[..n]);
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn more_than_ten_users_use_the_extended_lists() {
    let srv = TestServer::start(|c| c.max_users = 12).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(Client::join(srv.addr, &format!("U{i:02}")).await);
    }
    let mut x = Client::connect(srv.addr).await;
    assert_eq!(x.ask("10003U12").await, err(ErrorCode::SERVER_FULL));
    let mut a = users.remove(0);
    // Let every 300 be sent, then take AL's list raw: Z=2, 2-digit count 11.
    a.send("102").await;
    let raw = raw_message(&mut a.main.s).await;
    let mut want = b"202211".to_vec();
    for i in 1..12 {
        want.extend_from_slice(format!("03U{i:02}").as_bytes());
    }
    assert_eq!(String::from_utf8_lossy(&raw), String::from_utf8_lossy(&want));
    a.send("10402hi").await;
    let raw = raw_message(&mut a.main.s).await;
    assert!(raw.starts_with(b"204211"), "{:?}", String::from_utf8_lossy(&raw));
    // With 10 or fewer users the classic form is used.
    drop(users.drain(..3));
    for _ in 0..100 {
        if srv.handle.users() == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.send("102").await;
    let raw = raw_message(&mut a.main.s).await;
    assert!(raw.starts_with(b"20218"), "{:?}", String::from_utf8_lossy(&raw));
    drop((a, users, x));
    srv.ports_settle(0).await;
    srv.stop().await;
}

#[tokio::test]
async fn abandoned_downloads_return_their_ports() {
    let srv = TestServer::start(|c| c.idle_timeout = Duration::from_millis(500)).await;
    std::fs::write(srv.dir.join("big"), common::data(20_000_000, 1)).unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    // TCP: reads a little, then stops reading with the connection open.
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106TCP03big").await else { panic!("no 206") };
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let mut buf = [0u8; 1000];
    stuck.read_exact(&mut buf).await.unwrap();
    // TCP: closes in the middle.
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106TCP03big").await else { panic!("no 206") };
    let mut gone = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    gone.read_exact(&mut buf).await.unwrap();
    drop(gone);
    // UDP: takes the first datagrams, then vanishes.
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106UDP03big").await else { panic!("no 206") };
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.connect(("127.0.0.1", port)).await.unwrap();
    u.send(b"20").await.unwrap();
    let mut dbuf = [0u8; 2048];
    let n = tokio::time::timeout(T, u.recv(&mut dbuf)).await.unwrap().unwrap();
    assert_eq!(classic::Data::parse(&dbuf[..n]).unwrap().seq, 0);
    u.send(b"1").await.unwrap();
    drop(u);
    let t0 = std::time::Instant::now();
    srv.ports_settle(1).await;
    eprintln!("abandoned downloads ended after {:?}", t0.elapsed());
    // The stuck reader's connection was closed by the server.
    drop(stuck);
    assert_eq!(a.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    drop(a);
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// The classic sender reads the file packet by packet while it sends (so
/// that memory stays bounded), and looks at it from the first read: a file
/// cut short after its `206` ends the transfer at once, without a false
/// last packet, and frees the port.
#[tokio::test]
async fn a_file_cut_short_during_a_classic_download_fails_it() {
    let srv = TestServer::start(|_| {}).await;
    let path = srv.dir.join("shrinks");
    std::fs::write(&path, common::data(50_000, 5)).unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let Message::Confirm(Confirm::Download { size, port }) = a.ask("106UDP07shrinks").await else { panic!("no 206") };
    assert_eq!(size, 50_000);
    // Same file (same inode), now 3.5 packets long.
    std::fs::write(&path, &common::data(50_000, 5)[..3_500]).unwrap();
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.connect(("127.0.0.1", port)).await.unwrap();
    u.send(b"20").await.unwrap();
    let t0 = std::time::Instant::now();
    let mut dbuf = [0u8; 2048];
    let mut got = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(700), u.recv(&mut dbuf)).await {
        let d = classic::Data::parse(&dbuf[..n]).expect("not a data datagram");
        assert!(!d.last, "a cut file was sent as if complete");
        got.push((d.seq, d.payload.len()));
    }
    // Cut after the `206`: the first read already sees it, so nothing of the
    // file is sent (the stamp taken at the `206` no longer matches).
    assert_eq!(got, vec![], "sent from a file that changed after its 206");
    srv.ports_settle(1).await;
    assert!(t0.elapsed() < Duration::from_secs(3), "port came back only after {:?}", t0.elapsed());
    drop(a);
    srv.stop().await;
}

#[tokio::test]
async fn many_users_many_downloads_while_chat_flows() {
    let srv = TestServer::start(|_| {}).await;
    let data = common::data(1_000_000, 21);
    std::fs::write(srv.dir.join("same.bin"), &data).unwrap();
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(Client::join(srv.addr, &format!("U{i}")).await);
    }
    // Drain the 300s.
    for (i, u) in users.iter_mut().enumerate() {
        for _ in i + 1..6 {
            assert!(matches!(u.update().await, Message::Update(Update::Joined { .. })));
        }
    }
    // Every user: two TCP and one classic UDP download of the same file.
    let mut fetches = Vec::new();
    for (i, u) in users.iter_mut().enumerate() {
        for (k, t) in ["TCP", "UDP", "TCP"].into_iter().enumerate() {
            let Message::Confirm(Confirm::Download { size, port }) = u.ask(format!("106{t}08same.bin")).await else {
                panic!("no 206")
            };
            assert_eq!(size, 1_000_000);
            let seed = (i * 3 + k) as u64;
            fetches.push(tokio::spawn(async move {
                if t == "TCP" {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    let mut v = Vec::new();
                    s.read_to_end(&mut v).await.unwrap();
                    v
                } else {
                    classic_receive(port, 20, seed, 0, 0).await
                }
            }));
        }
    }
    // Chat flows meanwhile: each user broadcasts, everyone gets everything.
    for round in 0..5 {
        for (i, u) in users.iter_mut().enumerate() {
            let text = format!("r{round}u{i}");
            let to = u.ask(format!("104{:02}{text}", text.len())).await;
            let Message::Confirm(Confirm::BroadcastSent { to }) = to else { panic!("no 204") };
            assert_eq!(to.len(), 5);
        }
    }
    for (j, u) in users.iter_mut().enumerate() {
        for round in 0..5 {
            for i in (0..6).filter(|i| *i != j) {
                let want = Update::Broadcast { from: format!("U{i}"), text: format!("r{round}u{i}") };
                assert_eq!(u.update().await, Message::Update(want));
            }
        }
    }
    for (n, f) in fetches.into_iter().enumerate() {
        let v = tokio::time::timeout(Duration::from_secs(30), f).await.unwrap().unwrap();
        assert!(v == data, "download {n} differs ({} bytes)", v.len());
    }
    srv.ports_settle(6).await;
    drop(users);
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// One server through every scenario in turn; then every port is back.
#[tokio::test]
async fn port_pool_is_conserved_after_every_scenario() {
    let srv = TestServer::start(|c| {
        c.join_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(500);
        c.max_users = 3;
    })
    .await;
    std::fs::write(srv.dir.join("f"), common::data(50_000, 2)).unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let mut b = Client::join(srv.addr, "BO").await;
    a.update().await;
    // Chat, lists, errors.
    assert_eq!(a.ask("10302BO02hi").await, Message::Confirm(Confirm::WhisperSent));
    b.update().await;
    assert_eq!(a.ask("10402hi").await, Message::Confirm(Confirm::BroadcastSent { to: names(&["BO"]) }));
    b.update().await;
    assert_eq!(a.ask("10302ZZ02hi").await, err(ErrorCode::NO_SUCH_USER));
    assert_eq!(a.ask("106TCP04../f").await, err(ErrorCode::NO_SUCH_FILE));
    assert_eq!(a.ask("junk\r\n").await, err(ErrorCode::UNPARSEABLE));
    // Completed downloads, TCP and UDP under loss.
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106TCP01f").await else { panic!() };
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).await.unwrap();
    assert!(v == common::data(50_000, 2));
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106UDP01f").await else { panic!() };
    assert!(classic_receive(port, 20, 77, 11, 10).await == common::data(50_000, 2));
    // Downloads never fetched, and one abandoned midway.
    assert!(matches!(a.ask("106TCP01f").await, Message::Confirm(Confirm::Download { .. })));
    assert!(matches!(a.ask("106UDP01f").await, Message::Confirm(Confirm::Download { .. })));
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106TCP01f").await else { panic!() };
    drop(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    // A join that never opens its update connection, one refused (full), one hijacked.
    let mut x = Client::connect(srv.addr).await;
    assert!(matches!(x.ask("10002XX").await, Message::Confirm(Confirm::Joined { .. })));
    let mut y = Client::connect(srv.addr).await;
    let mut z = Client::connect(srv.addr).await;
    assert_eq!(z.ask("10002ZZ").await, err(ErrorCode::SERVER_FULL));
    srv.ports_settle(2).await;
    let Message::Confirm(Confirm::Joined { port, .. }) = y.ask("10002YY").await else { panic!() };
    let evil = TcpSocket::new_v4().unwrap();
    evil.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut evil = Stream::new(evil.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap());
    assert!(evil.closed().await);
    // A leave, a dropped connection, a half-sent message, an idle connection.
    b.send("101").await;
    assert_eq!(b.recv().await, Message::Confirm(Confirm::Left));
    a.send("10302BO").await;
    drop((x, y, z));
    srv.ports_settle(0).await;
    assert_eq!(srv.handle.users(), 0);
    drop((a, b));
    srv.stop().await;
}

/// Real sockets, the reference receiver's exact quirks (window 20, every
/// 11th datagram dropped, a 2 s sleep at every 10th): 15 packets need at
/// least 17 datagrams, so at least one sleep (2 s); go-back-N wastes the
/// datagrams behind a drop, so two sleeps (4 s) is the realistic figure.
#[tokio::test]
async fn classic_udp_to_the_reference_receiver_quirks() {
    let srv = TestServer::start(|_| {}).await;
    let data = common::data(15_000, 13);
    std::fs::write(srv.dir.join("f"), &data).unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106UDP01f").await else { panic!("no 206") };
    let t0 = std::time::Instant::now();
    let got = classic_receive_stalling(port, 20, 5, 11, 0, 10).await;
    let took = t0.elapsed();
    assert!(got == data, "bytes differ ({} of {})", got.len(), data.len());
    eprintln!("reference receiver quirks, 15 kB over loopback: {took:?}");
    assert!(took < Duration::from_secs(7), "took {took:?}");
    // The sender saw the final ACK (or gave up soon) and returned its port.
    srv.ports_settle(1).await;
    drop(a);
    srv.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_responses_is_disconnected() {
    let srv = TestServer::start(|c| c.idle_timeout = Duration::from_millis(500)).await;
    let mut b = Client::join(srv.addr, "BO").await;
    // AL's main connection has a tiny receive buffer, so the answers pile up fast.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut main = Stream::new(sock.connect(srv.addr).await.unwrap());
    main.s.write_all(b"10002AL").await.unwrap();
    let Message::Confirm(Confirm::Joined { port, .. }) = main.recv().await else { panic!("join refused") };
    let upd = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(b.update().await, Message::Update(Update::Joined { name: "AL".into() }));
    // AL pipelines requests and never reads the answers.
    let (_rd, mut wr) = main.s.into_split();
    let flood = tokio::spawn(async move {
        let reqs = "102".repeat(10_000);
        while wr.write_all(reqs.as_bytes()).await.is_ok() {}
    });
    assert_eq!(b.update().await, Message::Update(Update::Left { name: "AL".into() }));
    drop((flood, upd));
    assert_eq!(b.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    drop(b);
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// Seeded random garbage (and fragments of real requests) from many
/// connections at once: the server answers or cuts them off, never crashes or
/// wedges, and every port comes back.
#[tokio::test]
async fn random_input_never_wedges_the_server() {
    // The server's tasks run on this test's thread (current-thread runtime),
    // where tokio would swallow a panic: record any panic on this thread.
    static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let me = std::thread::current().id();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        prev(info);
    }));
    let srv = TestServer::start(|c| {
        c.idle_timeout = Duration::from_millis(500);
        c.join_timeout = Duration::from_millis(300);
        // 24 connections from one address, none joined for a while.
        c.max_unjoined_per_host = 32;
    })
    .await;
    std::fs::write(srv.dir.join("f"), common::data(3000, 4)).unwrap();
    let mut watcher = Client::join(srv.addr, "WATCH").await;
    let pieces: [&[u8]; 12] = [
        b"100",
        b"05ALICE",
        b"102",
        b"103",
        b"02WATCH",
        b"104",
        b"99",
        b"106UDP01f",
        b"106TCP01f",
        b"\r\n",
        b"101",
        b"\xff\xfe\x00",
    ];
    let mut tasks = Vec::new();
    for seed in 1..=24u64 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let mut rand = move || rng.next_u64();
            let mut s = TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = s.split();
            let sink = async {
                let mut buf = [0u8; 4096];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
            };
            let send = async {
                for _ in 0..(rand() % 200) {
                    let mut chunk = Vec::new();
                    for _ in 0..(1 + rand() % 4) {
                        if rand() % 3 == 0 {
                            chunk.extend((0..rand() % 40).map(|_| rand() as u8));
                        } else {
                            chunk.extend_from_slice(pieces[(rand() % pieces.len() as u64) as usize]);
                        }
                    }
                    if wr.write_all(&chunk).await.is_err() {
                        return;
                    }
                    if rand() % 8 == 0 {
                        tokio::time::sleep(Duration::from_millis(rand() % 20)).await;
                    }
                }
                if rand() % 2 == 0 {
                    let _ = wr.shutdown().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(sink, send) }).await;
            seed
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The room still works, and everything the garbage took came back.
    assert!(matches!(watcher.ask("102").await, Message::Confirm(Confirm::Users { .. })));
    let mut a = Client::join(srv.addr, "AFTER").await;
    assert_eq!(a.ask("10305WATCH02ok").await, Message::Confirm(Confirm::WhisperSent));
    loop {
        if let Message::Update(Update::Whisper { from, text }) = watcher.update().await {
            assert_eq!((from.as_str(), text.as_str()), ("AFTER", "ok"));
            break;
        }
    }
    drop(a);
    srv.ports_settle(1).await;
    drop(watcher);
    srv.ports_settle(0).await;
    assert_eq!(srv.handle.users(), 0);
    srv.stop().await;
    assert!(!PANICKED.load(std::sync::atomic::Ordering::SeqCst), "a server task panicked");
}

/// Everything the server logs while a test runs on this thread (the server's
/// tasks run on the test's current-thread runtime), as text lines.
#[derive(Clone, Default)]
struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Captures this thread's log lines until the guard is dropped.
    fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let cap = LogCapture::default();
        let w = cap.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        (cap.clone(), tracing::subscriber::set_default(sub))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

/// Names with control or bidi formatting characters were
/// accepted and written raw into the log. They are refused (`4001`); Hebrew,
/// emoji and ZWJ sequences are not.
#[tokio::test]
async fn names_with_control_or_bidi_characters_are_refused() {
    let (log, _guard) = LogCapture::start();
    let srv = TestServer::start(|_| {}).await;
    let mut x = Client::connect(srv.addr).await;
    for bad in ["A\u{1b}B", "A\0B", "AB\nC", "\u{202e}ECILA", "A\u{7f}B", "A\u{85}B", "AB\u{2066}", "AB\r"] {
        let m = x.ask(format!("100{:02}{bad}", bad.chars().count())).await;
        assert_eq!(m, err(ErrorCode::INVALID_NAME), "{bad:?}");
    }
    for good in ["שלום", "👩\u{200d}💻x", "Zoë"] {
        let c = Client::join(srv.addr, good).await;
        drop(c);
    }
    drop(x);
    srv.ports_settle(0).await;
    srv.stop().await;
    let bytes = log.bytes();
    assert!(!bytes.iter().any(|&b| b < 0x20 && b != b'\n'), "raw control bytes in the log");
    assert!(log.text().contains("שלום"), "the Hebrew name is logged as is");
}

/// ALICE and CAROL in the room, ALICE's `300` read.
async fn alice_and_carol(srv: &TestServer) -> (Client, Client) {
    let mut a = Client::join(srv.addr, "ALICE").await;
    let c = Client::join(srv.addr, "CAROL").await;
    assert_eq!(a.update().await, Message::Update(Update::Joined { name: "CAROL".into() }));
    (a, c)
}

/// A reset update connection left a ghost user (listed,
/// `203` for whispers that went nowhere, no `301`). It ends the session as a
/// `101` would.
#[tokio::test]
async fn a_reset_update_connection_ends_the_session() {
    let srv = TestServer::start(|_| {}).await;
    let (mut a, mut c) = alice_and_carol(&srv).await;
    let upd = c.upd.take().unwrap().s;
    socket2::SockRef::from(&upd).set_linger(Some(Duration::ZERO)).unwrap();
    drop(upd);
    assert_eq!(a.update().await, Message::Update(Update::Left { name: "CAROL".into() }));
    assert_eq!(a.ask("10305CAROL02hi").await, err(ErrorCode::NO_SUCH_USER));
    assert_eq!(a.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    assert!(c.main.closed().await, "CAROL's main connection must be closed");
    srv.ports_settle(1).await;
    // The name and the slot are free again.
    let _c2 = Client::join(srv.addr, "CAROL").await;
    assert_eq!(a.update().await, Message::Update(Update::Joined { name: "CAROL".into() }));
    drop((a, c, _c2));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// A plain close of the update connection: the server cannot tell a closed
/// update connection from a half-closed one until a write fails, so at most
/// one whisper is confirmed; the next is `4031` and the others get `301`.
#[tokio::test]
async fn a_closed_update_connection_ends_the_session_at_the_first_failed_write() {
    let srv = TestServer::start(|_| {}).await;
    let (mut a, mut c) = alice_and_carol(&srv).await;
    drop(c.upd.take());
    let mut confirmed = 0;
    loop {
        match a.ask("10305CAROL02hi").await {
            Message::Confirm(Confirm::WhisperSent) => confirmed += 1,
            m => {
                assert_eq!(m, err(ErrorCode::NO_SUCH_USER));
                break;
            }
        }
        assert!(confirmed <= 1, "{confirmed} whispers confirmed to a closed update connection");
        // Let the reset come back.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.update().await, Message::Update(Update::Left { name: "CAROL".into() }));
    assert!(c.main.closed().await, "CAROL's main connection must be closed");
    drop((a, c));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// A client that shuts down its sending side of the update connection (as
/// chatctl's client does, `lib/protocol.md` §8) keeps getting its updates.
#[tokio::test]
async fn a_half_closed_update_connection_keeps_its_updates() {
    let srv = TestServer::start(|_| {}).await;
    let (mut a, mut c) = alice_and_carol(&srv).await;
    c.upd.as_mut().unwrap().s.shutdown().await.unwrap();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.ask(format!("10305CAROL02h{i}")).await, Message::Confirm(Confirm::WhisperSent));
        let want = Update::Whisper { from: "ALICE".into(), text: format!("h{i}") };
        assert_eq!(c.update().await, Message::Update(want));
    }
    assert_eq!(a.ask("102").await, Message::Confirm(Confirm::Users { users: names(&["CAROL"]) }));
    drop((a, c));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// A join whose client sends `101` or goes away before
/// opening its update connection held the name, the port and the slot for
/// the whole join timeout. It is rolled back at once.
#[tokio::test]
async fn a_join_abandoned_during_the_wait_is_rolled_back_at_once() {
    let srv = TestServer::start(|c| c.join_timeout = Duration::from_secs(30)).await;
    // Closes right after 200.
    let mut g = Client::connect(srv.addr).await;
    assert!(matches!(g.ask("10005GHOST").await, Message::Confirm(Confirm::Joined { .. })));
    g.send("101").await;
    drop(g);
    let t0 = std::time::Instant::now();
    srv.ports_settle(0).await;
    assert_eq!(srv.handle.users(), 0);
    // Sends 101 and stays: 201, and the connection can join again.
    let mut h = Client::connect(srv.addr).await;
    assert!(matches!(h.ask("10005GHOST").await, Message::Confirm(Confirm::Joined { .. })));
    assert_eq!(h.ask("101").await, Message::Confirm(Confirm::Left));
    srv.ports_settle(0).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "rolled back only after {:?}", t0.elapsed());
    let Message::Confirm(Confirm::Joined { port, .. }) = h.ask("10005GHOST").await else { panic!("rejoin refused") };
    h.upd = Some(Stream::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap()));
    // Requests sent during the wait still wait for the join.
    let mut b = Client::connect(srv.addr).await;
    let Message::Confirm(Confirm::Joined { port, .. }) = b.ask("10003BOB").await else { panic!("join refused") };
    b.send("102").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.upd = Some(Stream::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap()));
    assert_eq!(b.recv().await, Message::Confirm(Confirm::Users { users: names(&["GHOST"]) }));
    drop((h, b));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// 1,030 idle connections from one host locked everyone
/// out (a global cap and no per-host one). A client from another host is
/// answered at once while one host holds 1,100; that host's connections
/// beyond its cap are closed.
#[tokio::test]
async fn one_host_with_a_thousand_idle_connections_locks_nobody_out() {
    let srv = TestServer::start(|_| {}).await;
    let (mut idle, mut closed) = (Vec::new(), 0);
    for _ in 0..1100 {
        let s = TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.3:0".parse().unwrap()).unwrap();
        // Refused connections are reset, sometimes before connect returns.
        match s.connect(srv.addr).await {
            Ok(s) => idle.push(s),
            Err(_) => closed += 1,
        }
    }
    let t0 = std::time::Instant::now();
    let mut a = tokio::time::timeout(Duration::from_secs(2), Client::join(srv.addr, "ALICE"))
        .await
        .expect("no answer to a join within 2 s");
    assert_eq!(a.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    eprintln!("joined after {:?} beside 1,100 idle connections", t0.elapsed());
    for s in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(5), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert!(closed >= 1100 - 64, "only {closed} of the host's 1,100 idle connections were closed");
    drop((a, idle));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// One user drained the port pool with downloads it never
/// fetched, and joins then got `4003` in a room with one user. A user has at
/// most `max_transfers_per_user` transfers in flight (`4062` past it), and
/// transfers never take the update ports of free room slots.
#[tokio::test]
async fn hoarded_downloads_never_make_the_room_full() {
    let srv = TestServer::start(|c| {
        c.ports = PortSpec::Ephemeral { max: 20 };
        c.max_users = 10;
        c.max_transfers_per_user = 4;
    })
    .await;
    std::fs::write(srv.dir.join("small.txt"), b"small").unwrap();
    let mut granted = Vec::new();
    let mut hoarders = Vec::new();
    for h in 0..3 {
        let mut c = Client::join(srv.addr, &format!("HOARD{h}")).await;
        let mut n = 0;
        for _ in 0..20 {
            match c.ask("106TCP09small.txt").await {
                Message::Confirm(Confirm::Download { .. }) => n += 1,
                m => assert_eq!(m, err(ErrorCode::NO_TRANSFER_PORT)),
            }
        }
        granted.push(n);
        hoarders.push(c);
    }
    // 4 each, then the 10 ports not kept for the 10 users' updates are gone.
    assert_eq!(granted, vec![4, 4, 2]);
    let mut users = Vec::new();
    for i in 0..7 {
        users.push(Client::join(srv.addr, &format!("U{i}")).await);
    }
    let mut x = Client::connect(srv.addr).await;
    assert_eq!(x.ask("10003BOB").await, err(ErrorCode::SERVER_FULL));
    drop((hoarders, users, x));
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// Every datagram from a stranger to a transfer port cost
/// a WARN line. Lines a remote peer can trigger are rate-limited per kind and
/// source, with one summary line.
#[tokio::test]
async fn a_stranger_cannot_flood_the_log() {
    let (log, _guard) = LogCapture::start();
    let srv = TestServer::start(|c| c.log_summary_every = Duration::from_millis(300)).await;
    std::fs::write(srv.dir.join("f"), b"x").unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106UDP01f").await else { panic!("no 206") };
    let evil = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    for _ in 0..1000 {
        evil.send_to(b"x", ("127.0.0.1", port)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let text = log.text();
    let lines = text.lines().filter(|l| l.contains("another address")).count();
    assert!(lines <= 6, "{lines} lines about the stranger's datagrams");
    assert!(text.contains("more suppressed in the last"), "no summary line:\n{text}");
    assert!(text.len() < 20_000, "{} bytes of log", text.len());
    drop(a);
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// An unjoined connection could sit silent for the whole
/// idle timeout (60 s). It has a short deadline of its own to send `100`.
#[tokio::test]
async fn a_connection_that_does_not_join_soon_is_closed() {
    let srv = TestServer::start(|c| c.unjoined_timeout = Duration::from_millis(300)).await;
    let mut silent = Client::connect(srv.addr).await;
    let mut a = Client::join(srv.addr, "AL").await;
    assert!(silent.main.closed().await, "a silent connection must be closed");
    // A joined user who is merely quiet stays (the idle timeout is 60 s).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(a.ask("102").await, Message::Confirm(Confirm::Users { users: vec![] }));
    drop(a);
    srv.ports_settle(0).await;
    srv.stop().await;
}

/// Answers to requests a client pipelined may share writes, in order; a
/// client with one request outstanding (the original's way) gets each
/// answer alone, in a write of its own.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_single_ones_alone() {
    let srv = TestServer::start(|_| {}).await;
    let (mut a, mut c) = alice_and_carol(&srv).await;
    // One request outstanding: the answer is exactly one message per read.
    a.send("10305CAROL05hello").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, a.main.s.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"203");
    assert_eq!(c.update().await, Message::Update(Update::Whisper { from: "ALICE".into(), text: "hello".into() }));
    // Twenty whispers and a list request in one write.
    let mut burst = String::new();
    for i in 0..20 {
        burst += &format!("10305CAROL02{i:02}");
    }
    burst += "102";
    a.send(burst).await;
    for i in 0..20 {
        assert_eq!(a.recv().await, Message::Confirm(Confirm::WhisperSent), "answer {i}");
        assert_eq!(
            c.update().await,
            Message::Update(Update::Whisper { from: "ALICE".into(), text: format!("{i:02}") })
        );
    }
    assert_eq!(a.recv().await, Message::Confirm(Confirm::Users { users: names(&["CAROL"]) }));
    srv.stop().await;
}

/// A user's running downloads (TCP, classic UDP, fast UDP, and one never
/// started) as a raw client holds them: returns the fast download's socket
/// and cookie, and the TCP connection.
async fn downloads_in_flight(a: &mut Client) -> (UdpSocket, u64, TcpStream) {
    use chatctl::rdt::fast::{Frame, encode_hello};
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106TCP03big").await else { panic!("no 206") };
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut tcp = sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let mut buf = [0u8; 1000];
    tcp.read_exact(&mut buf).await.unwrap();
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106UDP03big").await else { panic!("no 206") };
    let classic = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    classic.connect(("127.0.0.1", port)).await.unwrap();
    classic.send(b"20").await.unwrap();
    let mut dbuf = vec![0u8; 70_000];
    tokio::time::timeout(T, classic.recv(&mut dbuf)).await.unwrap().unwrap();
    // Fast: flow control holds the sender after 10 kB.
    let Message::Confirm(Confirm::Download { port, .. }) = a.ask("106UDP03big").await else { panic!("no 206") };
    let fast = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    fast.connect(("127.0.0.1", port)).await.unwrap();
    fast.send(&encode_hello()).await.unwrap();
    let n = tokio::time::timeout(T, fast.recv(&mut dbuf)).await.unwrap().unwrap();
    let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&dbuf[..n]) else { panic!("no CHALLENGE") };
    let mut d = Vec::new();
    Frame::Start { cookie, resume: 0, max_data: 10_000 }.encode(&mut d);
    fast.send(&d).await.unwrap();
    // Announced, never started.
    let Message::Confirm(Confirm::Download { .. }) = a.ask("106UDP03big").await else { panic!("no 206") };
    (fast, cookie, tcp)
}

/// The ABORTs `sock` got (within a short wait): their cookies and reasons.
async fn aborts(sock: &UdpSocket) -> Vec<(u64, chatctl::rdt::fast::AbortReason)> {
    use chatctl::rdt::fast::Frame;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf)).await {
        if let Ok(Frame::Abort { cookie, reason, .. }) = Frame::decode(&buf[..n]) {
            got.push((cookie, reason));
        }
    }
    got
}

/// A `101` ends every transfer of the user before the `201`: their ports
/// are back in the pool when it arrives (no waiting out the join or idle
/// timeouts), the fast receiver is told by ABORT, the TCP one is reset.
#[tokio::test]
async fn a_leave_ends_the_users_transfers_before_its_201() {
    use chatctl::rdt::fast::AbortReason;
    let srv = TestServer::start(|c| c.join_timeout = Duration::from_secs(30)).await;
    std::fs::write(srv.dir.join("big"), common::data(20_000_000, 2)).unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let (fast, cookie, mut tcp) = downloads_in_flight(&mut a).await;
    assert_eq!(srv.handle.ports_in_use(), 5, "the update port and four transfer ports");
    assert_eq!(a.ask("101").await, Message::Confirm(Confirm::Left));
    assert_eq!(srv.handle.ports_in_use(), 0, "the transfers' ports were freed before the 201");
    assert_eq!(aborts(&fast).await, vec![(cookie, AbortReason::UserLeft); 3]);
    let mut rest = Vec::new();
    let r = tokio::time::timeout(T, tcp.read_to_end(&mut rest)).await.unwrap();
    assert!(r.is_err() || rest.len() < 20_000_000 - 1000, "the TCP download went on");
    srv.stop().await;
}

/// A main connection that drops (a killed client) ends the user's
/// transfers at once too.
#[tokio::test]
async fn a_dropped_connection_ends_the_users_transfers() {
    use chatctl::rdt::fast::AbortReason;
    let srv = TestServer::start(|c| c.join_timeout = Duration::from_secs(30)).await;
    std::fs::write(srv.dir.join("big"), common::data(20_000_000, 3)).unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let (fast, cookie, _tcp) = downloads_in_flight(&mut a).await;
    let t0 = std::time::Instant::now();
    drop(a);
    srv.ports_settle(0).await;
    assert!(t0.elapsed() < Duration::from_secs(2), "ports freed after {:?}", t0.elapsed());
    assert_eq!(aborts(&fast).await, vec![(cookie, AbortReason::UserLeft); 3]);
    srv.stop().await;
}
