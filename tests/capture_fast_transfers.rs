//! capture-decode on fast-mode UDP transfers (`lib/rdt/fast`): captures built
//! with the rdt frame encoder (loss before the capture point, reordering,
//! duplication, retransmissions, corruption), and a capture of the real fast
//! sender and receiver machines driven over a simulated lossy path.
//! Every randomised case is seeded and prints its seed when it fails.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use chatctl::capture::net;
use chatctl::capture::synth::{PcapWriter, TcpConn, frame, udp_packet};
use chatctl::capture::{Config, DatagramKind, Event, TransferMode, TransferSummary, output};
use chatctl::rdt::fast::{self, Format, Frame, HashAlgorithm};
use chatctl::rdt::rangeset::RangeSet;
use chatctl::rdt::sim::Rng;
use common::capture::{decode, transfers};

use crate::common;

fn file_bytes(n: usize, seed: u64) -> Vec<u8> {
    common::data(n, seed ^ 0x51)
}

fn enc(f: &Frame<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    f.encode(&mut v);
    v
}

/// A capture being written: Ethernet frames, 100 µs apart.
struct Cap {
    w: PcapWriter<Vec<u8>>,
    t: i64,
    /// Captured UDP payloads that carry more than one datagram.
    super_packets: u64,
}

impl Cap {
    fn new() -> Self {
        Cap {
            w: PcapWriter::new(Vec::new(), net::LINKTYPE_ETHERNET, true, false).unwrap(),
            t: 1_700_000_000_000_000_000,
            super_packets: 0,
        }
    }
    fn put(&mut self, ip: Vec<u8>) {
        self.t += 100_000;
        self.w.packet(self.t, &frame(net::LINKTYPE_ETHERNET, 0, &ip)).unwrap();
    }
    fn udp(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        self.put(udp_packet(src, dst, payload));
    }
    /// The main connection: `106 UDP name` and the `206` announcing `server`.
    fn announce(&mut self, client: SocketAddr, server: SocketAddr, name: &str, size: usize) {
        let mut main = TcpConn::new(SocketAddr::new(client.ip(), 40000), SocketAddr::new(server.ip(), 13337), 5, 9);
        for p in main.handshake() {
            self.put(p);
        }
        self.put(main.data(true, format!("106UDP{:02}{name}", name.chars().count()).as_bytes()));
        let n = size.to_string();
        self.put(main.data(false, format!("206{:02}{n}{:05}", n.len(), server.port()).as_bytes()));
    }
}

/// What a generated fast transfer should decode to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Truth {
    packets: u64,
    retransmissions: u64,
    out_of_order: u64,
    duplicates: u64,
    invalid: u64,
}

/// Options of [`fast_transfer`].
#[derive(Clone, Copy, Default)]
struct Opts {
    /// Percent of datagrams lost before the capture point (both ways).
    loss: u64,
    /// Percent of fresh data datagrams swapped with the next one.
    reorder: u64,
    /// Percent of data datagrams captured twice.
    duplicate: u64,
    /// One data datagram is corrupted after its checksum was computed.
    corrupt_one: bool,
    /// The capture misses every copy of one range (a hole).
    hole: bool,
    /// DONE carries a wrong hash.
    wrong_hash: bool,
    /// The capture starts after the hello, CHALLENGE and START.
    late_start: bool,
    /// A format-2 transfer (its hello, BLAKE3 in DONE) rather than format 3.
    format2: bool,
    /// DATA captured as GSO/GRO super-packets of up to this many datagrams
    /// (equal sizes, the last may be shorter; lost ones leave packet-number
    /// gaps, as a receiver's GRO merge does); 0: one datagram per packet.
    gso: usize,
}

/// DATA datagrams being gathered into one captured UDP payload, as Linux
/// shows a GSO send (or a GRO merge) to tcpdump.
#[derive(Default)]
struct Super {
    payload: Vec<u8>,
    size: usize,
    n: usize,
}

impl Super {
    /// Adds `d`, first capturing what is gathered when `d` cannot join it.
    fn add(&mut self, cap: &mut Cap, from: SocketAddr, to: SocketAddr, d: &[u8], max: usize) {
        let short = self.n > 0 && !self.payload.len().is_multiple_of(self.size);
        if self.n > 0 && (self.n == max || short || d.len() > self.size) {
            self.flush(cap, from, to);
        }
        if self.n == 0 {
            self.size = d.len();
        }
        self.payload.extend_from_slice(d);
        self.n += 1;
    }

    fn flush(&mut self, cap: &mut Cap, from: SocketAddr, to: SocketAddr) {
        if self.n > 0 {
            cap.udp(from, to, &self.payload);
            cap.super_packets += u64::from(self.n > 1);
        }
        *self = Super::default();
    }
}

/// A fast transfer of `content` from `server` to `client` as captured at the
/// client: fresh data is sent in order (the last fresh datagram is never lost,
/// so the capture can tell every retransmission), lost ranges are sent again
/// under new packet numbers until the receiver has everything, then DONE and
/// DONE-ACK. Returns the exact counts the capture shows.
fn fast_transfer(cap: &mut Cap, client: SocketAddr, server: SocketAddr, content: &[u8], seed: u64, o: Opts) -> Truth {
    const CHUNK: usize = 1000;
    let mut rng = Rng::new(seed);
    let mut truth = Truth::default();
    let size = content.len() as u64;
    let cookie = rng.next_u64();
    let format = if o.format2 { Format::V2 } else { Format::V3 };
    if !o.late_start {
        cap.udp(client, server, &format.hello());
        cap.udp(server, client, &enc(&Frame::Challenge { cookie, size }));
        cap.udp(client, server, &enc(&Frame::Start { cookie, resume: 0, max_data: size }));
    }
    let chunks: Vec<Range<u64>> = (0..content.len().div_ceil(CHUNK) as u64)
        .map(|i| i * CHUNK as u64..((i + 1) * CHUNK as u64).min(size))
        .collect();
    let hole = if o.hole && chunks.len() > 2 { Some(chunks.len() / 2) } else { None };
    let mut received = RangeSet::new();
    let mut pn = 0u64;
    let mut todo: Vec<usize> = (0..chunks.len()).collect();
    let mut fresh = true;
    let mut corrupt_left = o.corrupt_one;
    let mut round = 0;
    let mut batch = Super::default();
    assert!(o.gso == 0 || !(o.corrupt_one || o.duplicate > 0 || o.reorder > 0), "not with GSO");
    while !todo.is_empty() {
        round += 1;
        assert!(round < 1000, "does not end (seed {seed})");
        // Datagrams of this round as they reach the capture point.
        let mut wire: Vec<(u64, usize)> = Vec::new();
        for &i in &todo {
            let lost = (rng.chance(o.loss as f64 / 100.0) && !(fresh && i + 1 == chunks.len())) || Some(i) == hole;
            if !lost {
                wire.push((pn, i));
            }
            pn += 1;
        }
        if fresh {
            // Swap some neighbours: the later packet number arrives first.
            let mut k = 0;
            while k + 1 < wire.len() {
                if rng.chance(o.reorder as f64 / 100.0) {
                    wire.swap(k, k + 1);
                    truth.out_of_order += 1;
                    k += 2;
                } else {
                    k += 1;
                }
            }
        }
        for (n, &(p, i)) in wire.iter().enumerate() {
            let r = chunks[i].clone();
            let payload = &content[r.start as usize..r.end as usize];
            let mut d = enc(&Frame::Data { pn: p, offset: r.start, payload });
            if corrupt_left && n == 0 {
                // Corrupted on the way: the capture shows it, the checksum rejects it.
                corrupt_left = false;
                let mid = d.len() / 2;
                d[mid] ^= 0x40;
                cap.udp(server, client, &d);
                truth.invalid += 1;
                continue;
            }
            if o.gso > 0 {
                batch.add(cap, server, client, &d, o.gso);
            } else {
                cap.udp(server, client, &d);
            }
            truth.packets += 1;
            truth.retransmissions += u64::from(!fresh);
            received.insert(r.clone());
            if rng.chance(o.duplicate as f64 / 100.0) {
                cap.udp(server, client, &d);
                truth.packets += 1;
                truth.duplicates += 1;
            }
            if n % 4 == 3 || n + 1 == wire.len() {
                batch.flush(cap, server, client);
                let ranges: Vec<Range<u64>> = received.iter().take(fast::MAX_ACK_RANGES).collect();
                let ack = Frame::Ack { largest_pn: p, delay_us: 25, max_data: size, ranges };
                if !rng.chance(o.loss as f64 / 100.0) {
                    cap.udp(client, server, &enc(&ack));
                }
            }
        }
        batch.flush(cap, server, client);
        fresh = false;
        todo.retain(|&i| !received.contains(chunks[i].clone()) && Some(i) != hole);
    }
    let mut hash = if o.format2 { *blake3::hash(content).as_bytes() } else { xxh3_field(content) };
    if o.wrong_hash {
        hash[0] ^= 1;
    }
    cap.udp(server, client, &enc(&Frame::Done { size, hash }));
    cap.udp(server, client, &enc(&Frame::Done { size, hash }));
    let ok = !o.wrong_hash && hole.is_none();
    cap.udp(client, server, &enc(&Frame::DoneAck { ok }));
    truth
}

/// DONE's hash field in format 3: the XXH3-128 digest, big-endian, then zeros.
fn xxh3_field(content: &[u8]) -> [u8; 32] {
    let mut f = [0; 32];
    f[..16].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(content).to_be_bytes());
    f
}

/// The hex a capture shows for a format-3 hash.
fn xxh3_hex(content: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(content))
}

fn counts(t: &TransferSummary) -> Truth {
    Truth {
        packets: t.packets,
        retransmissions: t.retransmissions,
        out_of_order: t.out_of_order,
        duplicates: t.duplicates,
        invalid: t.invalid,
    }
}

fn addrs(v6: bool) -> (SocketAddr, SocketAddr) {
    if v6 {
        ("[fd00::1]:50000".parse().unwrap(), "[fd00::2]:55007".parse().unwrap())
    } else {
        ("10.3.0.1:50000".parse().unwrap(), "10.3.0.2:55007".parse().unwrap())
    }
}

#[test]
fn lossy_reordered_duplicated_fast_transfer_is_rebuilt_and_hash_verified() {
    for seed in [1u64, 2, 3, 0xdead_beef, 77] {
        for size in [0usize, 1, 999, 1000, 54_321, 300_000] {
            let (client, server) = addrs(seed % 2 == 0);
            let content = file_bytes(size, seed);
            let mut cap = Cap::new();
            cap.announce(client, server, "fast.bin", size);
            let o = Opts { loss: 10, reorder: 10, duplicate: 5, ..Opts::default() };
            let truth = fast_transfer(&mut cap, client, server, &content, seed, o);
            let dir = tempfile::tempdir().unwrap();
            let cfg = Config { datagrams: true, plot: true, ..Config::default() };
            let (events, a) = decode(&cap.w.into_inner(), cfg, Some(dir.path()));
            let ctx = format!("seed {seed} size {size}");
            let t = transfers(&events);
            assert_eq!(t.len(), 1, "{ctx}");
            let t = &t[0];
            assert_eq!(t.mode, TransferMode::Fast, "{ctx}");
            assert_eq!(t.file.as_deref(), Some("fast.bin"), "{ctx}");
            assert_eq!((t.client, t.server), (client, server), "{ctx}");
            assert_eq!(counts(t), truth, "{ctx}");
            assert_eq!((t.bytes, t.announced_size, t.missing_bytes), (size as u64, Some(size as u64), 0), "{ctx}");
            assert!(t.complete, "{ctx}");
            assert_eq!(t.receiver_verified, Some(true), "{ctx}");
            assert_eq!(t.hash.as_deref(), Some(xxh3_hex(&content).as_str()), "{ctx}");
            assert_eq!(t.hash_algorithm, Some(HashAlgorithm::Xxh3_128), "{ctx}");
            // Timed over the data: none, or one datagram, takes no time.
            assert_eq!(t.data_first_ns.is_some(), size > 0, "{ctx}");
            assert!(t.packets <= 1 || (t.duration_s() > 0.0 && t.goodput_bps().unwrap() > 0.0), "{ctx}");
            assert!(t.duration_s() < (t.last_ns - t.first_ns) as f64 / 1e9, "{ctx}: the flow lasts longer");
            let x = t.extracted.as_ref().expect("extracted");
            assert_eq!(x.path, dir.path().join("fast.bin"), "{ctx}");
            assert!(x.verified, "{ctx}");
            assert_eq!(x.hash_verified, Some(true), "{ctx}");
            assert_eq!(std::fs::read(&x.path).unwrap(), content, "{ctx}");
            // -v: one datagram event per UDP datagram, of every fast kind.
            let kinds: BTreeSet<&str> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Datagram(d) => Some(match d.kind {
                        DatagramKind::FastHello { .. } => "hello",
                        DatagramKind::Challenge { .. } => "challenge",
                        DatagramKind::Start { .. } => "start",
                        DatagramKind::FastData { .. } => "data",
                        DatagramKind::FastAck { .. } => "ack",
                        DatagramKind::Done { .. } => "done",
                        DatagramKind::DoneAck { .. } => "done_ack",
                        _ => "other",
                    }),
                    _ => None,
                })
                .collect();
            let mut want: BTreeSet<&str> = ["hello", "challenge", "start", "done", "done_ack"].into();
            if size > 0 {
                want.insert("data");
            }
            if size > 10_000 {
                want.insert("ack"); // (a lone ACK may be lost)
            }
            assert!(
                kinds.is_superset(&want) && kinds.iter().all(|k| want.contains(k) || *k == "ack"),
                "{ctx}: {kinds:?}"
            );
            let (_, points) = a.transfers().next().unwrap();
            assert!(size == 0 || points.len() as u64 >= t.packets, "{ctx}");
        }
    }
}

/// A capture of a fast transfer on a real host holds GSO/GRO
/// super-packets (one captured UDP packet carrying many DATA datagrams); they
/// are split by the transfer's datagram size, the last short one included,
/// also when the capture missed the handshake.
#[test]
fn gso_super_packets_are_split_into_their_datagrams() {
    // ACKs every 4 datagrams end a super-packet: 4 at most fit between them.
    for (gso, size, loss, late_start) in
        [(4, 54_321, 0, false), (4, 54_321, 10, false), (3, 100_000, 5, true), (4, 3500, 0, false), (2, 1500, 0, true)]
    {
        let (client, server) = addrs(gso == 3);
        let content = file_bytes(size, gso as u64);
        let mut cap = Cap::new();
        cap.announce(client, server, "gso.bin", size);
        let o = Opts { gso, loss, late_start, ..Opts::default() };
        let truth = fast_transfer(&mut cap, client, server, &content, 31, o);
        assert!(cap.super_packets > 0);
        let dir = tempfile::tempdir().unwrap();
        let capture = cap.w.into_inner();
        let cfg = Config { datagrams: true, ..Config::default() };
        let (events, _) = decode(&capture, cfg, Some(dir.path()));
        let ctx = format!("gso {gso} size {size} loss {loss} late {late_start}");
        let t = &transfers(&events)[0];
        assert_eq!(t.mode, TransferMode::Fast, "{ctx}");
        assert_eq!(counts(t), truth, "{ctx}");
        assert_eq!((t.bytes, t.missing_bytes, t.complete), (size as u64, 0, true), "{ctx}");
        let data = events
            .iter()
            .filter(|e| matches!(e, Event::Datagram(d) if matches!(d.kind, DatagramKind::FastData { .. })))
            .count();
        assert_eq!(data as u64, truth.packets, "{ctx}: one event per datagram");
        let x = t.extracted.as_ref().unwrap();
        assert!(x.verified && x.hash_verified == Some(true), "{ctx}");
        assert_eq!(std::fs::read(&x.path).unwrap(), content, "{ctx}");
    }
}

#[test]
fn a_capture_hole_a_corrupted_datagram_and_a_wrong_hash_are_caught() {
    let (client, server) = addrs(false);
    let content = file_bytes(20_000, 5);
    let cases = [
        ("hole", Opts { hole: true, ..Opts::default() }),
        ("corrupt", Opts { corrupt_one: true, loss: 5, ..Opts::default() }),
        ("wrong hash", Opts { wrong_hash: true, ..Opts::default() }),
    ];
    for (name, o) in cases {
        let mut cap = Cap::new();
        cap.announce(client, server, "x.bin", content.len());
        let truth = fast_transfer(&mut cap, client, server, &content, 11, o);
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = decode(&cap.w.into_inner(), Config::default(), Some(dir.path()));
        let t = &transfers(&events)[0];
        assert_eq!(counts(t), truth, "{name}");
        let x = t.extracted.as_ref().unwrap();
        match name {
            "hole" => {
                assert_eq!(t.missing_bytes, 1000, "{name}");
                assert!(!t.complete && !x.verified && x.hash_verified.is_none(), "{name}");
                assert_eq!(x.path, dir.path().join("x.bin.incomplete"));
                assert_eq!(t.receiver_verified, Some(false));
            }
            "corrupt" => {
                // The corrupted copy was rejected; its bytes came again.
                assert_eq!(t.invalid, 1);
                assert!(t.complete && x.verified && x.hash_verified == Some(true), "{name}");
                assert_eq!(std::fs::read(&x.path).unwrap(), content);
            }
            _ => {
                assert!(t.complete && !x.verified && x.hash_verified == Some(false), "{name}");
                assert_eq!(x.path, dir.path().join("x.bin.incomplete"));
                assert_eq!(std::fs::read(&x.path).unwrap(), content, "the bytes are all there; the hash says no");
            }
        }
    }
}

#[test]
fn an_unannounced_fast_transfer_is_found_by_content_even_mid_transfer() {
    for late_start in [false, true] {
        let (client, server) = addrs(true);
        let content = file_bytes(30_000, 9);
        let mut cap = Cap::new();
        let o = Opts { loss: 5, late_start, ..Opts::default() };
        let truth = fast_transfer(&mut cap, client, server, &content, 21, o);
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = decode(&cap.w.into_inner(), Config::default(), Some(dir.path()));
        let t = transfers(&events);
        assert_eq!(t.len(), 1, "late_start {late_start}");
        let t = &t[0];
        assert_eq!((t.mode, t.client, t.server, t.file.as_deref()), (TransferMode::Fast, client, server, None));
        assert_eq!(counts(t), truth, "late_start {late_start}");
        // The hash's algorithm comes from the hello, or from DONE's zero
        // padding when the capture missed the hello.
        assert_eq!(t.hash_algorithm, Some(HashAlgorithm::Xxh3_128), "late_start {late_start}");
        // The size comes from CHALLENGE, or from DONE when the capture missed it.
        assert_eq!(t.announced_size, Some(content.len() as u64));
        let x = t.extracted.as_ref().unwrap();
        assert_eq!(x.path, dir.path().join("transfer-1"));
        assert!(x.verified && x.hash_verified == Some(true));
        assert_eq!(std::fs::read(&x.path).unwrap(), content);
    }
}

/// A format-2 transfer (chatctl before XXH3-128: a tab ends the hello, DONE
/// carries BLAKE3) still decodes, shows its hash as BLAKE3 and is extracted
/// and verified with it; with the hello missed, DONE's field tells the format.
#[test]
fn a_format_2_capture_decodes_and_extracts_with_blake3() {
    let content = file_bytes(45_000, 8);
    for (late_start, wrong_hash) in [(false, false), (true, false), (false, true)] {
        let ctx = format!("late_start {late_start} wrong_hash {wrong_hash}");
        let (client, server) = addrs(late_start);
        let mut cap = Cap::new();
        cap.announce(client, server, "old.bin", content.len());
        let o = Opts { loss: 5, late_start, wrong_hash, format2: true, ..Opts::default() };
        fast_transfer(&mut cap, client, server, &content, 31, o);
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config { datagrams: true, ..Config::default() };
        let (events, _) = decode(&cap.w.into_inner(), cfg, Some(dir.path()));
        let t = &transfers(&events)[0];
        assert_eq!(t.mode, TransferMode::Fast, "{ctx}");
        assert_eq!(t.hash_algorithm, Some(HashAlgorithm::Blake3), "{ctx}");
        let mut want = *blake3::hash(&content).as_bytes();
        want[0] ^= u8::from(wrong_hash);
        let want = want.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(t.hash.as_deref(), Some(want.as_str()), "{ctx}");
        let done = events.iter().find_map(|e| match e {
            Event::Datagram(d) => match &d.kind {
                DatagramKind::Done { hash, hash_algorithm, .. } => Some((hash.clone(), *hash_algorithm)),
                _ => None,
            },
            _ => None,
        });
        assert_eq!(done, Some((want.clone(), HashAlgorithm::Blake3)), "{ctx}");
        let e = events.iter().find(|e| matches!(e, Event::Datagram(d) if matches!(d.kind, DatagramKind::Done { .. })));
        let e = e.expect("a DONE event");
        let line = format!("done, {}, BLAKE3 {want}", output::bytes(content.len() as u64));
        assert!(output::human(e).contains(&line), "{ctx}: {}", output::human(e));
        assert_eq!(output::json(e)["hash_algorithm"], "BLAKE3", "{ctx}");
        assert_eq!(output::json(e)["hash"], want.as_str(), "{ctx}");
        let x = t.extracted.as_ref().unwrap();
        assert_eq!(std::fs::read(&x.path).unwrap(), content, "{ctx}");
        assert_eq!((x.verified, x.hash_verified), (!wrong_hash, Some(!wrong_hash)), "{ctx}");
    }
}

#[test]
fn a_classic_sender_answering_the_fast_hello_stays_classic() {
    let (client, server) = addrs(false);
    let mut cap = Cap::new();
    cap.announce(client, server, "c.txt", 5);
    cap.udp(client, server, &fast::encode_hello());
    let mut d = Vec::new();
    chatctl::rdt::classic::Data { last: true, seq: 0, payload: b"hello" }.encode(&mut d);
    cap.udp(server, client, &d);
    cap.udp(client, server, b"1");
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = decode(&cap.w.into_inner(), Config::default(), Some(dir.path()));
    let t = &transfers(&events)[0];
    assert_eq!((t.mode, t.window, t.bytes, t.complete), (TransferMode::Classic, Some(98), 5, true));
    assert!(t.extracted.as_ref().unwrap().verified);
    assert_eq!(std::fs::read(dir.path().join("c.txt")).unwrap(), b"hello");
}

/// The real fast sender and receiver (`lib/rdt/fast`) over a simulated path
/// with loss, reordering and duplication, captured at the receiver.
#[test]
fn a_capture_of_the_real_fast_engine_over_a_lossy_path_decodes_and_verifies() {
    use chatctl::rdt::fast::receiver::Receiver;
    use chatctl::rdt::fast::sender::Sender;
    use chatctl::rdt::sim::{Accepting, Attached, Link, LinkConfig, run};
    use std::cell::RefCell;
    for seed in [3u64, 4, 5] {
        let content = file_bytes(400_000 + seed as usize * 1234, seed);
        let (client, server) = addrs(seed % 2 == 1);
        let l = LinkConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(2),
            loss: 0.05,
            reorder: 0.05,
            duplicate: 0.02,
            ..LinkConfig::default()
        };
        let cfg = fast::Config { seed, ..fast::Config::default() };
        let t0 = Instant::now();
        let cap = RefCell::new(Cap::new());
        cap.borrow_mut().announce(client, server, "engine.bin", content.len());
        let base = cap.borrow().t;
        let ts = |now: Instant| base + now.duration_since(t0).as_nanos() as i64;
        // What really happened: packet numbers that carried bytes sent
        // before, and what the capture point (the receiver) saw.
        let mut sent = RangeSet::new();
        let resent_pns = RefCell::new(std::collections::HashSet::new());
        let mut seen_pns = std::collections::HashSet::new();
        let (mut data_seen, mut dups_seen, mut resent_seen) = (0u64, 0u64, 0u64);
        let mut fwd = Tap {
            link: Link::new(l.clone(), seed ^ 1),
            on_send: Box::new(|_, d| {
                if let Ok(Frame::Data { pn, offset, payload }) = Frame::decode(d) {
                    let r = offset..offset + payload.len() as u64;
                    if sent.insert(r.clone()) < r.end - r.start {
                        resent_pns.borrow_mut().insert(pn);
                    }
                }
            }),
            on_recv: Box::new(|now, d| {
                cap.borrow_mut()
                    .w
                    .packet(ts(now), &frame(net::LINKTYPE_ETHERNET, 0, &udp_packet(server, client, d)))
                    .unwrap();
                if let Ok(Frame::Data { pn, .. }) = Frame::decode(d) {
                    data_seen += 1;
                    if seen_pns.insert(pn) {
                        resent_seen += u64::from(resent_pns.borrow().contains(&pn));
                    } else {
                        dups_seen += 1;
                    }
                }
            }),
        };
        let mut back = Tap {
            link: Link::new(l, seed ^ 2),
            on_send: Box::new(|now, d| {
                cap.borrow_mut()
                    .w
                    .packet(ts(now), &frame(net::LINKTYPE_ETHERNET, 0, &udp_packet(client, server, d)))
                    .unwrap();
            }),
            on_recv: Box::new(|_, _| {}),
        };
        let receiver = Attached::new(Receiver::new(cfg.clone(), 0, Some(content.len() as u64), t0), Vec::<u8>::new());
        let sender = Accepting::new(|now, d: &[u8]| {
            fast::is_fast_hello(d)
                .then(|| Attached::new(Sender::new(cfg.clone(), content.len() as u64, d, now), &content[..]))
        });
        let mut flows = [(sender, receiver)];
        let end = run(&mut flows, &mut fwd, &mut back, t0, Duration::from_secs(120), Duration::ZERO, |_, flows| {
            let (s, r) = &flows[0];
            !(s.party.as_ref().is_some_and(|p| p.endpoint.is_finished()) && r.endpoint.is_finished())
        });
        drop((fwd, back));
        assert!(!end.stuck, "seed {seed}: the simulation stopped making progress");
        let [(sender, receiver)] = flows;
        let (sender, receiver) = (sender.party.map(|p| p.endpoint), receiver.endpoint);
        assert!(receiver.is_verified(), "seed {seed}: the simulated transfer itself failed");
        let stats = sender.as_ref().unwrap().stats();
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = decode(&cap.into_inner().w.into_inner(), Config::default(), Some(dir.path()));
        let t = &transfers(&events)[0];
        let ctx = format!("seed {seed}: {t:?} sender {stats:?}, {resent_seen} retransmissions captured");
        assert_eq!(t.mode, TransferMode::Fast, "{ctx}");
        assert_eq!((t.packets, t.duplicates), (data_seen, dups_seen), "{ctx}");
        // Every retransmission counted is one; only one whose later bytes
        // were all lost too (or that overtook them) cannot be told.
        assert!(t.retransmissions > 0 && t.retransmissions <= resent_seen, "{ctx}");
        assert!(t.retransmissions * 10 >= resent_seen * 7, "{ctx}");
        assert_eq!(t.receiver_verified, Some(true), "{ctx}");
        let x = t.extracted.as_ref().unwrap();
        assert!(x.verified && x.hash_verified == Some(true), "{ctx}");
        assert_eq!(std::fs::read(dir.path().join("engine.bin")).unwrap(), content, "{ctx}");
    }
}

/// What a [`Tap`] calls with each datagram it sees, and when.
type Watch<'a> = Box<dyn FnMut(Instant, &[u8]) + 'a>;

/// One direction of a simulated path whose datagrams the test watches:
/// `on_send` as each leaves, `on_recv` as each arrives.
struct Tap<'a> {
    link: chatctl::rdt::sim::Link,
    on_send: Watch<'a>,
    on_recv: Watch<'a>,
}

impl chatctl::rdt::sim::Wire for Tap<'_> {
    fn send(&mut self, now: Instant, tag: usize, d: Vec<u8>) {
        (self.on_send)(now, &d);
        self.link.send_tagged(now, tag, d);
    }
    fn recv(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        let got = self.link.recv_tagged(now);
        if let Some((_, d)) = &got {
            (self.on_recv)(now, d);
        }
        got
    }
    fn next_arrival(&self) -> Option<Instant> {
        self.link.next_arrival()
    }
}

#[test]
fn cli_fast_transfer_json_summary_extract_and_plot() {
    let (client, server) = addrs(true);
    let content = file_bytes(80_000, 4);
    let mut cap = Cap::new();
    cap.announce(client, server, "movie.bin", content.len());
    let o = Opts { loss: 10, reorder: 5, duplicate: 5, ..Opts::default() };
    let truth = fast_transfer(&mut cap, client, server, &content, 4, o);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.pcap");
    let bytes = cap.w.into_inner();
    std::fs::write(&file, &bytes).unwrap();

    let lines = common::capture::decode_json(&bytes, &["-v"]);
    let t = lines.iter().find(|o| o["type"] == "transfer").expect("a transfer object");
    assert_eq!(t["mode"], "fast");
    assert_eq!(t["file"], "movie.bin");
    assert_eq!(t["bytes"], 80_000);
    assert_eq!(t["packets"], truth.packets);
    assert_eq!(t["retransmissions"], truth.retransmissions);
    assert_eq!(t["out_of_order"], truth.out_of_order);
    assert_eq!(t["duplicates"], truth.duplicates);
    assert_eq!(t["hash"], xxh3_hex(&content).as_str());
    assert_eq!(t["hash_algorithm"], "XXH3-128");
    assert!(t["goodput_bps"].as_f64().unwrap() > 0.0 && t["duration"].as_f64().unwrap() > 0.0);
    let data: Vec<_> = lines.iter().filter(|o| o["type"] == "datagram" && o["kind"] == "fast_data").collect();
    assert_eq!(data.len() as u64, truth.packets);
    assert!(data.iter().all(|o| o["src"] == server.to_string() && o["pn"].is_u64() && o["offset"].is_u64()));
    assert!(lines.iter().any(|o| o["kind"] == "fast_ack" && o["ranges"][0][0] == 0));
    assert!(lines.iter().any(|o| o["kind"] == "done" && o["hash"] == t["hash"] && o["hash_algorithm"] == "XXH3-128"));

    let text = common::cli().args(["capture-decode", "-v"]).arg(&file).assert().success().get_output().stdout.clone();
    let line = format!("done, 80 kB, XXH3-128 {}", xxh3_hex(&content));
    assert!(String::from_utf8(text).unwrap().contains(&line), "no {line:?}");

    let out_dir = dir.path().join("out");
    let plot = dir.path().join("p.svg");
    common::cli()
        .args(["capture-decode", "--summary"])
        .arg(&file)
        .arg("--extract")
        .arg(&out_dir)
        .arg("--plot")
        .arg(&plot)
        .assert()
        .success()
        .stdout(predicates::str::is_match(r"\n\s+1 UDP fast\s+movie.bin\s+80 kB\s+80 kB ").unwrap());
    assert_eq!(std::fs::read(out_dir.join("movie.bin")).unwrap(), content);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("byte offset") && svg.contains("stroke=\"red\"") && svg.contains("stroke=\"green\""));
    // A title with file, mode, size, duration and retransmissions;
    // ticks with units; a legend.
    let title = "transfer #1 &quot;movie.bin&quot;: UDP fast, 80 kB, data over ";
    assert!(svg.contains(title), "{svg}");
    assert!(svg.contains(&format!(", {} retransmissions</text>", truth.retransmissions)), "{svg}");
    assert!(svg.contains("byte offset (kB)") && svg.contains("time since the first point (ms)"), "{svg}");
    assert!(svg.contains(">retransmission (bytes sent again)<") && svg.contains(">DATA sent (its first byte)<"));
    assert!(svg.matches("text-anchor=\"end\"").count() >= 4, "y ticks");

    // --extract and --plot print no timeline unless asked, list on stdout
    // what they wrote, and never overwrite (a second run numbers its copy).
    let plot2 = dir.path().join("q.svg");
    common::cli()
        .args(["capture-decode"])
        .arg(&file)
        .arg("--extract")
        .arg(&out_dir)
        .arg("--plot")
        .arg(&plot2)
        .assert()
        .success()
        .stderr("")
        .stdout(predicates::str::contains(format!(
            "wrote {} (verified: XXH3-128 matches the sender's): transfer #1 UDP fast movie.bin",
            out_dir.join("movie.bin.1").display()
        )))
        .stdout(predicates::str::contains(format!("wrote {}: plot of transfer #1", plot2.display())));
    assert_eq!(std::fs::read(out_dir.join("movie.bin")).unwrap(), content);
    assert_eq!(std::fs::read(out_dir.join("movie.bin.1")).unwrap(), content);
    common::cli()
        .args(["capture-decode", "--timeline", "-q"])
        .arg(&file)
        .arg("--extract")
        .arg(&out_dir)
        .assert()
        .success()
        .stdout("")
        .stderr("");
    common::cli()
        .args(["capture-decode", "--timeline"])
        .arg(&file)
        .arg("--extract")
        .arg(&out_dir)
        .assert()
        .success()
        .stdout(predicates::str::contains("UDP fast \"movie.bin\""));

    common::cli()
        .args(["capture-decode"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicates::str::contains("UDP fast \"movie.bin\""))
        .stdout(predicates::str::contains("receiver verified the hash"));
}

#[test]
fn quic_and_other_udp_noise_is_not_taken_for_a_transfer() {
    let client: SocketAddr = "10.3.0.1:50001".parse().unwrap();
    let quic: SocketAddr = "10.3.0.9:443".parse().unwrap();
    let other: SocketAddr = "10.3.0.9:50443".parse().unwrap();
    let mut cap = Cap::new();
    let mut rng = Rng::new(99);
    for i in 0..200u64 {
        // QUIC long headers start 0b11xx_xxxx, as fast datagrams do.
        let mut d: Vec<u8> = (0..1200).map(|_| rng.next_u64() as u8).collect();
        d[0] = 0xC1 + (i % 6) as u8;
        cap.udp(client, quic, &d);
        cap.udp(quic, client, &d);
        cap.udp(other, client, &d); // right port range, wrong checksum
    }
    let (events, a) = decode(&cap.w.into_inner(), Config { datagrams: true, ..Config::default() }, None);
    assert!(transfers(&events).is_empty());
    assert!(events.is_empty(), "{:?}", events.first());
    assert_eq!(a.stats().packets, 600);
}

/// A valid datagram of fast type `t` as the transfer engine's parser reads
/// it (a body of zeros, ones or letters of some length, and the CRC32C),
/// or None when the parser knows no such type. Asking the parser, not a
/// list kept here, is what makes a type added to the codec covered below.
fn valid_datagram_of_type(t: u8) -> Option<Vec<u8>> {
    for fill in [0u8, 1, b'a'] {
        for n in 0..=80 {
            let mut d = vec![t];
            d.resize(1 + n, fill);
            let c = crc32c::crc32c(&d);
            d.extend_from_slice(&c.to_be_bytes());
            match Frame::decode(&d) {
                Ok(_) => return Some(d),
                Err(fast::DecodeError::Type(_)) => return None,
                Err(_) => {}
            }
        }
    }
    panic!("type {t:#04x} is known to the parser, but no simple body of it decodes: extend this helper")
}

/// Every fast datagram type the engine's parser reads (STATS and
/// ACK-FREQUENCY among them) is understood in a decoded capture: a kind of
/// its own, or the frame as the parser decoded it; never "not understood".
#[test]
fn every_fast_type_the_engine_reads_is_understood() {
    let types: Vec<Vec<u8>> = (0..=255u8).filter_map(valid_datagram_of_type).collect();
    let names: Vec<String> = types.iter().map(|d| format!("{:#04x}", d[0])).collect();
    assert!(types.len() >= 8, "the parser reads only {names:?}");
    let (client, server) = addrs(false);
    let mut cap = Cap::new();
    cap.announce(client, server, "x.bin", 10);
    cap.udp(client, server, &Format::LATEST.hello());
    for d in &types {
        cap.udp(server, client, d);
    }
    let bytes = cap.w.into_inner();
    let (events, _) = decode(&bytes, Config { datagrams: true, ..Config::default() }, None);
    let kinds: Vec<&DatagramKind> = events
        .iter()
        .filter_map(|e| match e {
            Event::Datagram(d) => Some(&d.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.len(), types.len() + 1, "{kinds:?}");
    for (d, kind) in types.iter().zip(&kinds[1..]) {
        assert!(
            !matches!(kind, DatagramKind::Other { .. } | DatagramKind::Invalid { .. }),
            "type {:#04x} decoded as {kind:?}",
            d[0]
        );
    }
    // The same through the command: no line says "not understood".
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("types.pcap");
    std::fs::write(&file, &bytes).unwrap();
    let text = common::cli().args(["capture-decode", "-v"]).arg(&file).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(text).unwrap();
    assert!(!text.contains("not understood") && !text.contains("invalid"), "{text}");
    assert!(text.contains("sender stats: ") && text.contains("ack-frequency #0"), "{text}");
}

/// Packets stamped a fraction of a microsecond out of order (tcpdump on
/// several CPUs does this) still give `--json -v` events in time order.
#[test]
fn json_events_stay_in_time_order_when_stamps_go_back() {
    let (client, server) = addrs(false);
    let mut cap = Cap::new();
    cap.announce(client, server, "x.bin", 3000);
    cap.udp(client, server, &Format::LATEST.hello());
    let mut v = Vec::new();
    Frame::Challenge { cookie: 7, size: 3000 }.encode(&mut v);
    cap.udp(server, client, &v);
    // Two DATA datagrams, the second stamped 200 ns before the first.
    let t = cap.t + 100_000;
    for (i, at) in [(0u64, t), (1, t - 200)] {
        let payload = vec![i as u8; 1000];
        let d = enc(&Frame::Data { pn: i, offset: i * 1000, payload: &payload });
        cap.w.packet(at, &frame(net::LINKTYPE_ETHERNET, 0, &udp_packet(server, client, &d))).unwrap();
    }
    let lines = common::capture::decode_json(&cap.w.into_inner(), &["-v"]);
    let ts: Vec<f64> = lines.iter().map(|l| l["ts"].as_f64().unwrap()).collect();
    assert!(ts.len() >= 6, "{ts:?}");
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "out of order: {ts:?}");
}

/// `--plot`: a folder or a prefix, SVG or PNG by the extension, never an
/// overwrite, every file on stdout (JSON with --json), a one-datagram
/// transfer plotted and an empty one left out with its reason.
#[test]
fn plots_go_where_asked_in_the_format_asked_and_are_listed() {
    let (client, server) = addrs(false);
    let mut cap = Cap::new();
    let one = file_bytes(700, 1);
    cap.announce(client, server, "one.bin", one.len());
    fast_transfer(&mut cap, client, server, &one, 1, Opts::default());
    let (client2, server2) = ("10.3.0.5:50002".parse().unwrap(), "10.3.0.2:55008".parse().unwrap());
    cap.announce(client2, server2, "empty.bin", 0);
    fast_transfer(&mut cap, client2, server2, &[], 2, Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.pcap");
    std::fs::write(&file, cap.w.into_inner()).unwrap();
    let json_lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let out =
            common::cli().arg("capture-decode").arg(&file).args(args).assert().success().get_output().stdout.clone();
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // An existing folder: the graphs go into it.
    let folder = dir.path().join("plots");
    std::fs::create_dir(&folder).unwrap();
    let lines = json_lines(&["--json", "--plot", folder.to_str().unwrap()]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["type"], "written");
    assert_eq!(lines[0]["path"], folder.join("transfer-1.svg").to_str().unwrap());
    assert_eq!((&lines[1]["type"], &lines[1]["transfer"]), (&"not_plotted".into(), &2.into()));
    assert!(lines[1]["reason"].as_str().unwrap().contains("empty"), "{lines:?}");
    let svg = std::fs::read_to_string(folder.join("transfer-1.svg")).unwrap();
    assert!(svg.contains("1 data datagram plotted") && svg.contains("<circle"), "{svg}");
    // A new folder named with a trailing slash; then a PNG prefix, twice.
    let fresh = format!("{}/", dir.path().join("fresh").display());
    common::cli().arg("capture-decode").arg(&file).args(["--plot", &fresh]).assert().success();
    assert!(dir.path().join("fresh/transfer-1.svg").exists());
    let png = dir.path().join("y.png");
    for want in ["y.png", "y.1.png"] {
        let lines = json_lines(&["--json", "--plot", png.to_str().unwrap()]);
        assert_eq!(lines[0]["path"], dir.path().join(want).to_str().unwrap(), "{lines:?}");
        assert_eq!(lines[0]["format"], "png");
        let bytes = std::fs::read(dir.path().join(want)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000, "{want}: not a drawn PNG");
    }
    // Plain text: the same, one line each, on stdout.
    let text = common::cli()
        .arg("capture-decode")
        .arg(&file)
        .arg("--plot")
        .arg(&png)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!("wrote {}: plot of transfer #1 UDP fast one.bin", dir.path().join("y.2.png").display()))
    );
    assert!(text.contains("not plotted: transfer #2 UDP fast empty.bin: the file is empty"), "{text}");
    common::cli()
        .arg("capture-decode")
        .arg(&file)
        .args(["--plot", "p.jpg"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("name the file .svg or .png"));
}

/// `--extract --json`: one object per file written, on stdout.
#[test]
fn extracted_files_are_listed_as_json_on_stdout() {
    let (client, server) = addrs(true);
    let content = file_bytes(5000, 3);
    let mut cap = Cap::new();
    cap.announce(client, server, "m.bin", content.len());
    fast_transfer(&mut cap, client, server, &content, 3, Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.pcap");
    std::fs::write(&file, cap.w.into_inner()).unwrap();
    let out_dir = dir.path().join("out");
    let out = common::cli()
        .args(["capture-decode", "--json", "--extract"])
        .arg(&out_dir)
        .arg(&file)
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    let o: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((&o["type"], &o["what"]), (&"written".into(), &"extracted".into()), "{o}");
    assert_eq!(o["path"], out_dir.join("m.bin").to_str().unwrap());
    assert_eq!((&o["state"], &o["verified"], &o["hash_verified"]), (&"verified".into(), &true.into(), &true.into()));
    assert_eq!(std::fs::read(out_dir.join("m.bin")).unwrap(), content);
}
