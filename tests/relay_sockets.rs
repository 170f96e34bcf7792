//! The impairing relay on loopback sockets: datagrams through it with known
//! loss, delay and rate, and the measured figures compared with the
//! configuration. Seeded; ports chosen by the OS.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chatctl::rdt::relay::{Impairment, Relay, RelayHandle};
use chatctl::rdt::sim::{Link, LinkConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOOPBACK: &str = "127.0.0.1:0";

/// A loopback socket with a large receive buffer, so a burst the relay
/// forwards is not lost in the test's own socket.
async fn socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.set_nonblocking(true).unwrap();
    s.bind(&LOOPBACK.parse::<SocketAddr>().unwrap().into()).unwrap();
    UdpSocket::from_std(s.into()).unwrap()
}

/// A target socket and a relay in front of it.
async fn setup(up: Impairment, down: Impairment) -> (UdpSocket, UdpSocket, RelayHandle) {
    let target = socket().await;
    let relay = Relay::start(LOOPBACK.parse().unwrap(), target.local_addr().unwrap(), up, down).await.unwrap();
    let client = socket().await;
    client.connect(relay.local_addr).await.unwrap();
    (client, target, relay)
}

fn datagram(n: u64, len: usize) -> Vec<u8> {
    let mut d = vec![(n % 251) as u8; len.max(8)];
    d[..8].copy_from_slice(&n.to_be_bytes());
    d
}

fn number(d: &[u8]) -> u64 {
    u64::from_be_bytes(d[..8].try_into().unwrap())
}

/// Receives datagrams until none arrives for `quiet`.
async fn drain(sock: &UdpSocket, quiet: Duration) -> Vec<(Instant, Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while let Ok(Ok((n, from))) = timeout(quiet, sock.recv_from(&mut buf)).await {
        got.push((Instant::now(), buf[..n].to_vec(), from));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_both_ways_unchanged_and_learns_the_client() {
    let (client, target, relay) = setup(Impairment::none(), Impairment::none()).await;
    for n in 0..200 {
        client.send(&datagram(n, 1000)).await.unwrap();
        // Small pauses keep the socket buffers from overflowing on a busy machine.
        if n % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = drain(&target, Duration::from_millis(300)).await;
    assert_eq!(got.len(), 200);
    let relay_side = got[0].2;
    for (i, (_, d, from)) in got.iter().enumerate() {
        assert_eq!(d, &datagram(i as u64, 1000), "datagram {i} changed or reordered");
        assert_eq!(*from, relay_side, "one socket towards the target");
    }
    // Replies go back to the client.
    for n in 0..50 {
        target.send_to(&datagram(n, 300), relay_side).await.unwrap();
    }
    let back = drain(&client, Duration::from_millis(300)).await;
    assert_eq!(back.len(), 50);
    assert!(back.iter().enumerate().all(|(i, (_, d, _))| d == &datagram(i as u64, 300)));
    let stats = relay.shutdown().await;
    assert_eq!((stats.up.received, stats.up.forwarded, stats.up.dropped), (200, 200, 0));
    assert_eq!((stats.down.received, stats.down.forwarded, stats.down.dropped), (50, 50, 0));
    assert_eq!(stats.up.forwarded_bytes, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_drops_exactly_what_the_seeded_model_drops() {
    let seed = 0x1055;
    let loss = 0.1;
    let (client, target, relay) = setup(Impairment::loss(loss, seed), Impairment::none()).await;
    let n = 3000u64;
    for i in 0..n {
        client.send(&datagram(i, 200)).await.unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = drain(&target, Duration::from_millis(300)).await;
    let arrived: Vec<u64> = got.iter().map(|(_, d, _)| number(d)).collect();
    // Loss alone depends only on the order of datagrams, so the relay's fate
    // for datagram i is the model's for the i-th datagram offered.
    let now = Instant::now();
    let mut model = Link::new(LinkConfig { loss, ..Default::default() }, seed);
    for i in 0..n {
        model.send(now, datagram(i, 200));
    }
    let mut expected = Vec::new();
    while let Some(d) = model.recv(now) {
        expected.push(number(&d));
    }
    assert_eq!(arrived, expected, "seed {seed}: the relay's losses differ from the model's");
    let rate = 1.0 - arrived.len() as f64 / n as f64;
    assert!((rate - loss).abs() < 0.03, "seed {seed}: loss rate {rate:.3}, configured {loss}");
    let stats = relay.shutdown().await;
    assert_eq!(stats.up.dropped, n - arrived.len() as u64);
    assert_eq!(stats.up.received, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_adds_the_configured_round_trip() {
    let one_way = Duration::from_millis(25);
    let imp = |seed| Impairment { link: LinkConfig { delay: one_way, ..Default::default() }, seed };
    let (client, target, relay) = setup(imp(1), imp(2)).await;
    let mut rtts = Vec::new();
    let mut buf = [0u8; 64];
    for n in 0..20u64 {
        let t = Instant::now();
        client.send(&n.to_be_bytes()).await.unwrap();
        let (len, from) = timeout(Duration::from_secs(2), target.recv_from(&mut buf)).await.unwrap().unwrap();
        target.send_to(&buf[..len], from).await.unwrap();
        let len = timeout(Duration::from_secs(2), client.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..len], &n.to_be_bytes());
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let (min, median) = (rtts[0], rtts[rtts.len() / 2]);
    assert!(min >= 2 * one_way, "a round trip of {min:?} is shorter than the configured 50 ms");
    // Timers have millisecond resolution; a loaded machine adds a little.
    assert!(median < 2 * one_way + Duration::from_millis(15), "median round trip {median:?} for 50 ms configured");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_paces_a_burst_to_the_configured_rate() {
    let rate = 16_000_000; // 2 MB/s
    let up =
        Impairment { link: LinkConfig { rate_bps: Some(rate), queue_bytes: 4 << 20, ..Default::default() }, seed: 3 };
    let (client, target, relay) = setup(up, Impairment::none()).await;
    let n = 600u64; // 600 kB: 300 ms at 2 MB/s
    let start = Instant::now();
    for i in 0..n {
        client.send(&datagram(i, 1000)).await.unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = drain(&target, Duration::from_millis(300)).await;
    assert_eq!(got.len() as u64, n, "a 4 MiB queue holds the whole burst");
    let span = got.last().unwrap().0 - start;
    let bps = n as f64 * 1000.0 * 8.0 / span.as_secs_f64();
    assert!(
        bps <= rate as f64 * 1.02 && bps >= rate as f64 * 0.8,
        "{:.2} Mbit/s through a {:.0} Mbit/s bottleneck",
        bps / 1e6,
        rate as f64 / 1e6
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_queue_drops_the_tail_of_a_burst() {
    let up = Impairment {
        link: LinkConfig { rate_bps: Some(8_000_000), queue_bytes: 20_000, ..Default::default() },
        seed: 4,
    };
    let (client, target, relay) = setup(up, Impairment::none()).await;
    // 200 datagrams of 1000 bytes within about 2 ms: far more than 1 MB/s drains.
    for i in 0..200 {
        client.send(&datagram(i, 1000)).await.unwrap();
    }
    let got = drain(&target, Duration::from_millis(300)).await;
    let stats = relay.shutdown().await;
    assert_eq!(stats.up.received, 200);
    assert_eq!(stats.up.dropped + got.len() as u64, 200);
    // 20 kB of queue plus what drained while the burst was being read.
    assert!((20..=60).contains(&got.len()), "{} of 200 passed a 20 kB queue", got.len());
    assert_eq!(number(&got[0].1), 0, "the head of the burst passes");
}

/// Two clients through one relay, at once: each gets its own path to the
/// target (the target sees two peers) and the answers go back to the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_its_own_path() {
    let (first, target, relay) = setup(Impairment::none(), Impairment::none()).await;
    let second = socket().await;
    second.connect(relay.local_addr).await.unwrap();
    first.send(b"first").await.unwrap();
    second.send(b"second").await.unwrap();
    let got = drain(&target, Duration::from_millis(200)).await;
    let mut payloads: Vec<&[u8]> = got.iter().map(|(_, d, _)| d.as_slice()).collect();
    payloads.sort();
    assert_eq!(payloads, [b"first".as_slice(), b"second"]);
    assert_ne!(got[0].2, got[1].2, "one socket towards the target for both clients");
    for (_, d, from) in &got {
        target.send_to(&[b"to ", d.as_slice()].concat(), from).await.unwrap();
    }
    let mut buf = [0u8; 16];
    for (client, want) in [(&first, b"to first".as_slice()), (&second, b"to second")] {
        let n = timeout(Duration::from_secs(1), client.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], want);
    }
    let stats = relay.shutdown().await;
    assert_eq!((stats.clients, stats.foreign, stats.up.forwarded, stats.down.forwarded), (2, 0, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_passes_after_shutdown() {
    let (client, target, relay) = setup(Impairment::none(), Impairment::none()).await;
    client.send(b"before").await.unwrap();
    assert_eq!(drain(&target, Duration::from_millis(200)).await.len(), 1);
    let stats = relay.shutdown().await;
    assert_eq!(stats.up.forwarded, 1);
    let _ = client.send(b"after").await;
    assert!(drain(&target, Duration::from_millis(200)).await.is_empty());
}

/// The relay emulates a 200 Mbit/s link with 1452-byte datagrams faithfully:
/// a constant-rate blast at exactly that rate, spaced evenly, comes out at
/// the rate (±5%, measured over the second half of the blast) with nothing
/// dropped (its 1 MiB queue absorbs 40 ms of scheduling hiccups), in order.
#[test]
fn a_constant_200_mbit_blast_passes_at_200_mbit_without_drops() {
    const RATE: u64 = 200_000_000;
    const LEN: usize = 1452;
    let blast = Duration::from_millis(1200);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let target = std::net::UdpSocket::bind(LOOPBACK).unwrap();
    let _ = socket2::SockRef::from(&target).set_recv_buffer_size(8 << 20);
    let up =
        Impairment { link: LinkConfig { rate_bps: Some(RATE), queue_bytes: 1 << 20, ..Default::default() }, seed: 5 };
    let relay = rt
        .block_on(Relay::start(LOOPBACK.parse().unwrap(), target.local_addr().unwrap(), up, Impairment::none()))
        .unwrap();
    let to = relay.local_addr;
    let t0 = Instant::now();
    let sender = std::thread::spawn(move || {
        let client = std::net::UdpSocket::bind(LOOPBACK).unwrap();
        let _ = socket2::SockRef::from(&client).set_send_buffer_size(8 << 20);
        let per_sec = RATE as f64 / (LEN * 8) as f64;
        let mut sent = 0u64;
        while t0.elapsed() < blast {
            let due = (t0.elapsed().as_secs_f64() * per_sec) as u64;
            while sent < due {
                client.send_to(&datagram(sent, LEN), to).unwrap();
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        sent
    });
    target.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = vec![0u8; 2048];
    let (mut next, mut in_window) = (0u64, 0u64);
    let window = (t0 + blast / 2, t0 + blast);
    while let Ok(n) = target.recv(&mut buf) {
        let now = Instant::now();
        assert_eq!(n, LEN);
        assert_eq!(number(&buf[..n]), next, "datagram lost or reordered");
        next += 1;
        if now >= window.0 && now < window.1 {
            in_window += 1;
        }
    }
    let sent = sender.join().unwrap();
    let stats = rt.block_on(relay.shutdown());
    let bps = (in_window * LEN as u64 * 8) as f64 / (window.1 - window.0).as_secs_f64();
    eprintln!("{sent} sent, {next} arrived, {:.1} Mbit/s over the second half, {stats:?}", bps / 1e6);
    assert_eq!(stats.up.dropped, 0, "queue drops at the link's own rate");
    assert_eq!(next, sent, "every datagram arrives");
    assert!((bps - RATE as f64).abs() <= 0.05 * RATE as f64, "{:.1} Mbit/s through a 200 Mbit/s relay", bps / 1e6);
}
