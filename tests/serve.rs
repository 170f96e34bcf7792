//! `chatctl serve` over real loopback sockets: a tiny test client written with
//! `chatctl::wire` on raw tokio sockets (independent of the client library).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatctl::rdt::classic;
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

fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn tcp_downloads_byte_exact_while_chatting() {
    let srv = TestServer::start(|_| {}).await;
    let big = pattern(3_000_000, 7);
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
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(("127.0.0.1", port)).await.unwrap();
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
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
    let data = pattern(300_000, 11);
    std::fs::write(srv.dir.join("f.bin"), &data).unwrap();
    std::fs::write(srv.dir.join("empty"), b"").unwrap();
    let mut a = Client::join(srv.addr, "AL").await;
    let mut runs = Vec::new();
    for (seed, file, w) in [(1u64, "f.bin", 20u8), (2, "f.bin", 98), (3, "f.bin", 5), (4, "empty", 20)] {
        let Message::Confirm(Confirm::Download { size, port }) = a.ask(format!("106UDP{:02}{file}", file.len())).await
        else {
            panic!("no 206")
        };
        runs.push((seed, file, size, tokio::spawn(classic_receive(port, w, seed, 11, 10))));
    }
    for (seed, file, size, r) in runs {
        let got = r.await.unwrap();
        assert_eq!(got.len() as u64, size, "seed {seed}");
        if file == "f.bin" {
            assert!(got == data, "seed {seed}: bytes differ");
        }
    }
    // Senders whose last ACK was lost still end, and return their ports.
    srv.ports_settle(1).await;
    drop(a);
    srv.stop().await;
}

#[tokio::test]
async fn hijack_attempts_from_another_address_are_refused() {
    let srv = TestServer::start(|c| c.join_timeout = Duration::from_millis(500)).await;
    std::fs::write(srv.dir.join("f"), pattern(5000, 3)).unwrap();
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
    assert_eq!(got, pattern(5000, 3));
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
    assert_eq!(v, pattern(5000, 3));
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
