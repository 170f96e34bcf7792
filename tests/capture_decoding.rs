//! capture-decode: the shared fixture, and synthetic captures of every link
//! type and format, IPv6, fragments, retransmissions, holes and a lossy
//! classic-UDP transfer.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use chatctl::capture::net::{self, flags};
use chatctl::capture::synth::{PcapWriter, PcapngWriter, TcpConn, frame, ip_fragments, udp_packet};
use chatctl::capture::{Analyzer, CaptureReader, Channel, Config, Event, TransferMode};
use chatctl::rdt::classic;
use chatctl::rdt::sim::Rng;
use common::capture::transfers;

use crate::common;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");

/// A message the test expects: time (ns), source, destination, channel, raw text.
type Expected = (i64, SocketAddr, SocketAddr, Channel, String);

fn decode(capture: &[u8], cfg: Config) -> (Vec<Event>, Analyzer) {
    common::capture::decode(capture, cfg, None)
}

/// A classic pcap written one packet per microsecond, each IP packet framed
/// for `framed` when given (raw IP otherwise).
struct Paced {
    w: PcapWriter<Vec<u8>>,
    t: i64,
    framed: Option<i32>,
}

impl Paced {
    fn new(linktype: i32, nanos: bool, big_endian: bool, framed: Option<i32>) -> Paced {
        Paced { w: PcapWriter::new(Vec::new(), linktype, nanos, big_endian).unwrap(), t: 0, framed }
    }

    fn put(&mut self, ip: Vec<u8>) {
        self.t += 1000;
        let p = match self.framed {
            Some(link) => frame(link, 0, &ip),
            None => ip,
        };
        self.w.packet(self.t, &p).unwrap();
    }

    fn bytes(self) -> Vec<u8> {
        self.w.into_inner()
    }
}

fn messages(events: &[Event]) -> Vec<Expected> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => {
                Some((m.ts_ns, m.src, m.dst, m.channel, String::from_utf8(m.raw.clone()).expect("utf-8")))
            }
            _ => None,
        })
        .collect()
}

fn problems(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Problem(p) => Some(p.what.clone()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- fixture

#[test]
fn shared_fixture_decodes_exactly() {
    let path = Path::new(FIXTURES).join("alice-bob.pcap");
    if !Path::new(FIXTURES).exists() {
        common::skip(&format!("{FIXTURES} is absent (a user's clone has no shared/ folder)"));
        return;
    }
    let data = std::fs::read(&path).expect("fixture");
    let (events, a) = decode(&data, Config::default());
    let alice: SocketAddr = "10.0.0.239:55507".parse().unwrap();
    let alice_up: SocketAddr = "10.0.0.239:55557".parse().unwrap();
    let server: SocketAddr = "10.0.0.37:13337".parse().unwrap();
    let update: SocketAddr = "10.0.0.37:55001".parse().unwrap();
    // Frame times as printed by `tshark -T fields -e frame.time_epoch`
    // (`lib/protocol.md` §7: the frame that completes each message).
    let t = |s: &str| -> i64 {
        let (a, b) = s.split_once('.').unwrap();
        a.parse::<i64>().unwrap() * 1_000_000_000 + b.parse::<i64>().unwrap() * 1000
    };
    let expected: Vec<Expected> = vec![
        (t("1646503829.659912"), alice, server, Channel::Main, "10005ALICE".into()), // frame 4
        (t("1646503829.662279"), server, alice, Channel::Main, "20005ALICE55001".into()), // 7
        (t("1646504232.462611"), alice, server, Channel::Main, "102".into()),        // 12
        (t("1646504232.465659"), server, alice, Channel::Main, "2021103BOB".into()), // 15
        (t("1646504410.735411"), alice, server, Channel::Main, "10303BOB19hey Bob, I'm Alice!".into()), // 17
        (t("1646504410.737556"), server, alice, Channel::Main, "203".into()),        // 20
        (
            t("1646504840.700063"),
            update,
            alice_up,
            Channel::Update,
            "30303BOB32Too bad, I was waiting for Eve..".into(),
        ), // 22
        (t("1646504920.132113"), update, alice_up, Channel::Update, "30103BOB".into()), // 24
        (t("1646505103.588531"), alice, server, Channel::Main, "101".into()),        // 26
        (t("1646505103.590022"), server, alice, Channel::Main, "201".into()),        // 31
    ];
    assert_eq!(messages(&events), expected);
    assert!(problems(&events).is_empty(), "{:?}", problems(&events));
    // The update connection: opened at frame 9, half-closed by the server
    // first (frame 29), closed by the client; the main connection's one FIN
    // captured is a half-close.
    let conns: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Connection(c) => Some((c.ts_ns, c.src, c.channel, c.change)),
            _ => None,
        })
        .collect();
    use chatctl::capture::ConnChange::*;
    assert_eq!(
        conns,
        vec![
            (t("1646503612.481279"), alice, Channel::Main, Open),
            (t("1646503986.446963"), alice_up, Channel::Update, Open),
            (t("1646505103.589880"), update, Channel::Update, HalfClose),
            (t("1646505103.590103"), alice_up, Channel::Update, Close),
            (t("1646505182.358109"), alice, Channel::Main, HalfClose),
        ]
    );
    assert_eq!(a.stats().packets, 36);
    assert_eq!(a.stats().users.iter().cloned().collect::<Vec<_>>(), vec!["ALICE".to_string(), "BOB".to_string()]);
}

// ---------------------------------------------------------------- synthetic traffic

/// A scripted session: IP packets with times, the messages they must decode
/// to, and the files downloaded.
#[derive(Default)]
struct Script {
    packets: Vec<(i64, Vec<u8>)>,
    expected: Vec<Expected>,
    /// Which pcapng interface each packet goes to (0 main, 1 others).
    iface: Vec<usize>,
    t: i64,
}

impl Script {
    fn push(&mut self, p: Vec<u8>, iface: usize) -> i64 {
        self.t += 1_000_000 + 1_000; // 1.001 ms, microsecond-exact
        self.packets.push((self.t, p));
        self.iface.push(iface);
        self.t
    }
    fn conn(&mut self, c: &mut TcpConn, iface: usize) {
        for p in c.handshake() {
            self.push(p, iface);
        }
    }
    /// Sends `raw` as one segment and expects it as one message.
    fn say(&mut self, c: &mut TcpConn, from_client: bool, ch: Channel, raw: &str) {
        let p = c.data(from_client, raw.as_bytes());
        let t = self.push(p, usize::from(ch != Channel::Main));
        let (s, d) = if from_client { (c.client, c.server) } else { (c.server, c.client) };
        self.expected.push((t, s, d, ch, raw.trim_end_matches("\r\n").to_string()));
    }
}

fn file_bytes(n: usize, seed: u64) -> Vec<u8> {
    common::data(n, seed)
}

/// Join, list, whisper, an update, a TCP download and a leave.
fn session(client_ip: IpAddr, server_ip: IpAddr) -> (Script, Vec<u8>) {
    let mut s = Script::default();
    let sa = |ip, port| SocketAddr::new(ip, port);
    let mut main = TcpConn::new(sa(client_ip, 40001), sa(server_ip, 13337), 1000, u32::MAX - 5);
    s.conn(&mut main, 0);
    // The join arrives in two segments with the CRLF of a terminal.
    let p = main.data(true, b"10005AL");
    s.push(p, 0);
    s.say(&mut main, true, Channel::Main, "ICE\r\n");
    s.expected.last_mut().unwrap().4 = "10005ALICE".into();
    s.say(&mut main, false, Channel::Main, "20005ALICE55001");
    let mut up = TcpConn::new(sa(client_ip, 40002), sa(server_ip, 55001), 7, 9);
    s.conn(&mut up, 1);
    s.say(&mut main, true, Channel::Main, "102");
    s.say(&mut main, false, Channel::Main, "2021103BOB");
    s.say(&mut main, true, Channel::Main, "10303BOB10héllo\u{1b}[2J!");
    s.say(&mut main, false, Channel::Main, "203");
    s.say(&mut up, false, Channel::Update, "30303BOB05שלום!");
    s.say(&mut main, true, Channel::Main, "106TCP08file.bin");
    // 2500 bytes at port 55002.
    s.say(&mut main, false, Channel::Main, "20604250055002");
    let content = file_bytes(2500, 7);
    let mut tr = TcpConn::new(sa(client_ip, 40003), sa(server_ip, 55002), 1 << 31, 5);
    s.conn(&mut tr, 1);
    for chunk in content.chunks(1000) {
        let p = tr.data(false, chunk);
        s.push(p, 1);
    }
    let p = tr.fin(false);
    s.push(p, 1);
    let p = tr.fin(true);
    s.push(p, 1);
    s.say(&mut main, true, Channel::Main, "101");
    let p = up.fin(false);
    s.push(p, 1);
    s.say(&mut main, false, Channel::Main, "201");
    (s, content)
}

fn v4() -> (IpAddr, IpAddr) {
    ("10.1.2.3".parse().unwrap(), "10.1.2.4".parse().unwrap())
}
fn v6() -> (IpAddr, IpAddr) {
    ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
}

#[derive(Clone, Copy, Debug)]
enum Format {
    Pcap { nanos: bool, be: bool },
    Pcapng { be: bool },
}

fn write(s: &Script, fmt: Format, linktype: i32, vlan: usize) -> Vec<u8> {
    match fmt {
        Format::Pcap { nanos, be } => {
            let mut w = PcapWriter::new(Vec::new(), linktype, nanos, be).unwrap();
            for (t, p) in &s.packets {
                w.packet(*t, &frame(linktype, vlan, p)).unwrap();
            }
            w.into_inner()
        }
        Format::Pcapng { be } => {
            // Two interfaces with different link types and resolutions.
            let mut w = PcapngWriter::new(Vec::new(), be).unwrap();
            let i0 = w.interface(linktype, 6).unwrap();
            let i1 = w.interface(net::LINKTYPE_LINUX_SLL2, 9).unwrap();
            for ((t, p), iface) in s.packets.iter().zip(&s.iface) {
                if *iface == 0 {
                    w.packet(i0, *t, &frame(linktype, vlan, p)).unwrap();
                } else {
                    w.packet(i1, *t, &frame(net::LINKTYPE_LINUX_SLL2, 0, p)).unwrap();
                }
            }
            w.statistics(0).unwrap();
            w.into_inner()
        }
    }
}

#[test]
fn every_link_type_and_format_decodes_the_session() {
    let links = [
        (net::LINKTYPE_ETHERNET, 0),
        (net::LINKTYPE_ETHERNET, 2),
        (net::LINKTYPE_NULL, 0),
        (net::LINKTYPE_LOOP, 0),
        (net::LINKTYPE_LINUX_SLL, 0),
        (net::LINKTYPE_LINUX_SLL2, 0),
        (net::LINKTYPE_RAW, 0),
        (net::LINKTYPE_IPV4, 0),
        (net::LINKTYPE_IPV6, 0),
    ];
    let formats = [
        Format::Pcap { nanos: false, be: false },
        Format::Pcap { nanos: false, be: true },
        Format::Pcap { nanos: true, be: false },
        Format::Pcap { nanos: true, be: true },
        Format::Pcapng { be: false },
        Format::Pcapng { be: true },
    ];
    for (c, sv) in [v4(), v6()] {
        let (script, content) = session(c, sv);
        for &(lt, vlan) in &links {
            for &fmt in &formats {
                let cap = write(&script, fmt, lt, vlan);
                let (events, _) = decode(&cap, Config::default());
                let ctx = format!("{fmt:?} link {lt} vlan {vlan} {c}");
                assert_eq!(messages(&events), script.expected, "{ctx}");
                let t = transfers(&events);
                assert_eq!(t.len(), 1, "{ctx}");
                assert_eq!(t[0].file.as_deref(), Some("file.bin"), "{ctx}");
                assert_eq!((t[0].bytes, t[0].announced_size, t[0].complete), (content.len() as u64, Some(2500), true));
                assert!(problems(&events).is_empty(), "{ctx}: {:?}", problems(&events));
            }
        }
    }
}

#[test]
fn nanosecond_timestamps_are_kept() {
    let (mut s, _) = session(v4().0, v4().1);
    for (i, (t, _)) in s.packets.iter_mut().enumerate() {
        *t += 123 + i as i64;
    }
    // pcapng interface 1 has nanosecond resolution: send everything there.
    s.iface.iter_mut().for_each(|i| *i = 1);
    for fmt in
        [Format::Pcap { nanos: true, be: false }, Format::Pcap { nanos: true, be: true }, Format::Pcapng { be: true }]
    {
        let cap = write(&s, fmt, net::LINKTYPE_ETHERNET, 0);
        let mut reader = CaptureReader::new(&cap[..]).unwrap();
        let mut got = Vec::new();
        while reader.next_packet(|p| got.push(p.ts_ns)).unwrap().is_some() {}
        let want: Vec<i64> = s.packets.iter().map(|(t, _)| *t).collect();
        assert_eq!(got, want, "{fmt:?}");
    }
}

#[test]
fn retransmitted_reordered_and_overlapping_segments_decode_once_in_order() {
    let (c, sv) = v4();
    let mut main = TcpConn::new(SocketAddr::new(c, 40001), SocketAddr::new(sv, 13337), u32::MAX - 10, 77);
    let mut w = PcapWriter::new(Vec::new(), net::LINKTYPE_ETHERNET, false, false).unwrap();
    let mut t = 1_000_000_000i64;
    let mut put = |p: &[u8]| {
        t += 1000;
        w.packet(t, &frame(net::LINKTYPE_ETHERNET, 0, p)).unwrap();
    };
    for p in main.handshake() {
        put(&p);
    }
    let stream = b"10005ALICE\r\n10405hello10405world102\r\n101";
    let base = main.seq[0];
    // Segments [22,32) [0,12) [32,end) [12,22), then an overlapping
    // retransmission of [5,30) and a duplicate of [0,12); the sequence
    // numbers wrap past 2^32 in the middle.
    let seg = |a: usize, b: usize| main.segment_at(true, base.wrapping_add(a as u32), flags::ACK, &stream[a..b]);
    for (a, b) in [(22, 32), (0, 12), (32, stream.len()), (12, 22), (5, 30), (0, 12)] {
        put(&seg(a, b));
    }
    let (events, _) = decode(&w.into_inner(), Config::default());
    let raws: Vec<String> = messages(&events).into_iter().map(|m| m.4).collect();
    assert_eq!(raws, ["10005ALICE", "10405hello", "10405world", "102", "101"]);
    assert!(problems(&events).is_empty());
}

#[test]
fn a_hole_is_reported_and_decoding_resynchronises() {
    let (c, sv) = v4();
    let mut main = TcpConn::new(SocketAddr::new(c, 40001), SocketAddr::new(sv, 13337), 5, 6);
    let mut w = Paced::new(net::LINKTYPE_RAW, false, false, None);
    for p in main.handshake() {
        w.put(p);
    }
    w.put(main.data(true, b"10405hello\r\n"));
    let _lost = main.data(true, b"10405wor");
    w.put(main.data(true, b"ld\r\n10405again\r\n"));
    w.put(main.data(true, b"102\r\n"));
    let cfg = Config { tcp_cap: 8, ..Config::default() };
    let (events, a) = decode(&w.bytes(), cfg);
    let raws: Vec<String> = messages(&events).into_iter().map(|m| m.4).collect();
    assert_eq!(raws, ["10405hello", "10405again", "102"]);
    let p = problems(&events);
    assert!(p.iter().any(|w| w.contains("8 bytes missing")), "{p:?}");
    assert!(p.iter().any(|w| w.contains("undecodable")), "{p:?}");
    assert_eq!(a.stats().gaps, 1);
}

#[test]
fn a_capture_that_starts_mid_connection_decodes_what_follows() {
    let (c, sv) = v4();
    let mut main = TcpConn::new(SocketAddr::new(c, 40001), SocketAddr::new(sv, 13337), 5, 6);
    let _missed = (main.handshake(), main.data(true, b"10005ALICE"));
    let mut w = PcapWriter::new(Vec::new(), net::LINKTYPE_RAW, false, false).unwrap();
    w.packet(1000, &main.data(false, b"20005ALICE55001")).unwrap();
    w.packet(2000, &main.data(true, b"102")).unwrap();
    let (events, _) = decode(&w.into_inner(), Config::default());
    let m = messages(&events);
    assert_eq!(m.iter().map(|m| m.4.as_str()).collect::<Vec<_>>(), ["20005ALICE55001", "102"]);
    assert_eq!(m[0].1, SocketAddr::new(sv, 13337));
}

#[test]
fn chat_on_an_unknown_port_is_found_by_content_or_by_port() {
    let (c, sv) = v6();
    let mut main = TcpConn::new(SocketAddr::new(c, 40001), SocketAddr::new(sv, 4444), 5, 6);
    let mut other = TcpConn::new(SocketAddr::new(c, 40002), SocketAddr::new(sv, 80), 5, 6);
    let mut w = Paced::new(net::LINKTYPE_RAW, false, true, None);
    for p in main.handshake().into_iter().chain(other.handshake()) {
        w.put(p);
    }
    w.put(other.data(true, b"GET / HTTP/1.1\r\n\r\n"));
    w.put(main.data(true, b"10005ALICE"));
    w.put(main.data(false, b"20005ALICE55001"));
    w.put(other.data(false, b"200 OK but not chat"));
    let cap = w.bytes();
    let (events, _) = decode(&cap, Config::default());
    let m = messages(&events);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m.iter().all(|m| m.3 == Channel::Main && (m.1.port() == 4444 || m.2.port() == 4444)));
    let (events, _) = decode(&cap, Config { server_ports: vec![13337, 4444], ..Config::default() });
    assert_eq!(messages(&events), m);
}

#[test]
fn ip_fragments_are_reassembled_v4_and_v6() {
    for (c, sv) in [v4(), v6()] {
        let mut main = TcpConn::new(SocketAddr::new(c, 40001), SocketAddr::new(sv, 13337), 5, 6);
        let mut w = PcapngWriter::new(Vec::new(), false).unwrap();
        let i = w.interface(net::LINKTYPE_ETHERNET, 6).unwrap();
        let mut t = 0;
        let mut put = |p: &[u8]| {
            t += 1000;
            w.packet(i, t, &frame(net::LINKTYPE_ETHERNET, 1, p)).unwrap();
        };
        for p in main.handshake() {
            put(&p);
        }
        let text = "x".repeat(99);
        let raw = format!("10303BOB99{text}");
        let whole = main.data(true, raw.as_bytes());
        // Re-fragment the TCP segment inside the IP packet, out of order and
        // with a duplicate.
        let tcp = net::ip(&whole).unwrap().payload.to_vec();
        let mut frags = ip_fragments(c, sv, 6, &tcp, 42, 48);
        frags.swap(0, 2);
        let dup = frags[1].clone();
        frags.push(dup);
        for f in &frags {
            put(f);
        }
        let (events, _) = decode(&w.into_inner(), Config::default());
        assert_eq!(messages(&events).into_iter().map(|m| m.4).collect::<Vec<_>>(), [raw], "{c}");
    }
}

// ---------------------------------------------------------------- classic UDP

/// Simulates the reference's go-back-N between a server and a client with
/// seeded loss before the capture point (at the client), and returns the
/// capture, the file and the true counts (packets, retransmissions, out of order).
fn lossy_classic(
    seed: u64,
    window: u8,
    size: usize,
    client: SocketAddr,
    server: SocketAddr,
) -> (Vec<u8>, Vec<u8>, [u64; 3]) {
    let content = file_bytes(size, seed);
    let chunks: Vec<&[u8]> = if content.is_empty() { vec![&[][..]] } else { content.chunks(classic::CHUNK).collect() };
    let n = chunks.len();
    let m = usize::from(window) + 1;
    let mut rng = Rng::new(seed);
    let mut w = PcapWriter::new(Vec::new(), net::LINKTYPE_ETHERNET, false, false).unwrap();
    let mut t = 5_000_000_000i64;
    let mut put = |t: i64, p: Vec<u8>| w.packet(t, &frame(net::LINKTYPE_ETHERNET, 0, &p)).unwrap();
    // The client repeats its window until data arrives.
    for _ in 0..2 {
        t += 1000;
        put(t, udp_packet(client, server, &classic::encode_window(window)));
    }
    let (mut base, mut expected) = (0usize, 0usize);
    let mut seen = vec![false; n];
    let mut acked = 0usize;
    let mut counts = [0u64; 3];
    let mut rounds = 0;
    while base < n {
        rounds += 1;
        assert!(rounds < 10_000, "simulation does not end (seed {seed})");
        let end = (base + usize::from(window)).min(n);
        for (i, chunk) in chunks.iter().enumerate().take(end).skip(base) {
            t += 100_000;
            if rng.chance(0.15) {
                continue; // lost before the capture
            }
            let mut d = Vec::new();
            classic::Data { last: i == n - 1, seq: (i % m) as u8, payload: chunk }.encode(&mut d);
            put(t, udp_packet(server, client, &d));
            counts[0] += 1;
            // What the capture can tell: seen before, or ahead of a hole.
            let retx = seen[i];
            counts[1] += u64::from(retx);
            counts[2] += u64::from(!retx && i > expected);
            seen[i] = true;
            if i == expected {
                expected += 1;
            }
            t += 50_000;
            put(t, udp_packet(client, server, &classic::encode_ack((expected % m) as u8)));
            if !rng.chance(0.15) {
                acked = acked.max(expected); // the ACK reached the server
            }
        }
        base = acked;
        t += 200_000_000; // timeout
    }
    (w.into_inner(), content, counts)
}

#[test]
fn lossy_classic_udp_transfer_is_rebuilt_with_true_counts() {
    for seed in [1u64, 2, 3, 0xdead_beef] {
        for (window, size) in [(20u8, 23_456usize), (3, 9_000), (5, 0)] {
            let client: SocketAddr = "[fd00::1]:50000".parse().unwrap();
            let server: SocketAddr = "[fd00::2]:55003".parse().unwrap();
            let (cap, content, counts) = lossy_classic(seed, window, size, client, server);
            let dir = tempfile::tempdir().unwrap();
            let (events, _) = common::capture::decode(&cap, Config::default(), Some(dir.path()));
            let t = transfers(&events);
            let ctx = format!("seed {seed} window {window} size {size}");
            assert_eq!(t.len(), 1, "{ctx}");
            let t = &t[0];
            assert_eq!(t.mode, TransferMode::Classic);
            assert_eq!(t.window, Some(window), "{ctx}");
            assert!(t.complete, "{ctx}");
            assert_eq!([t.packets, t.retransmissions, t.out_of_order], counts, "{ctx}");
            assert_eq!(t.bytes, size as u64, "{ctx}");
            // Found by content (no 206 in this capture): named transfer-1, and
            // with no announced size it cannot be verified.
            let x = t.extracted.as_ref().unwrap();
            assert_eq!(x.path, dir.path().join("transfer-1.incomplete"), "{ctx}");
            assert_eq!(std::fs::read(&x.path).unwrap(), content, "{ctx}");
        }
    }
}

// ---------------------------------------------------------------- the binary

/// The session plus a UDP download of `big.bin`, announced in a 206.
fn session_with_udp() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (c, sv) = v6();
    let (mut s, tcp_file) = session(c, sv);
    let mut main = TcpConn::new(SocketAddr::new(c, 40009), SocketAddr::new(sv, 13337), 1, 2);
    s.conn(&mut main, 0);
    s.say(&mut main, true, Channel::Main, "106UDP07big.bin");
    s.say(&mut main, false, Channel::Main, "206052543255003");
    let client = SocketAddr::new(c, 50000);
    let server = SocketAddr::new(sv, 55003);
    let (udp, content, _) = lossy_classic(9, 20, 25432, client, server);
    let mut reader = CaptureReader::new(&udp[..]).unwrap();
    let mut extra = Vec::new();
    while reader.next_packet(|p| extra.push(p.data[14..].to_vec())).unwrap().is_some() {}
    for p in extra {
        s.push(p, 1);
    }
    (write(&s, Format::Pcapng { be: false }, net::LINKTYPE_ETHERNET, 0), tcp_file, content)
}

#[test]
fn cli_json_timeline_has_the_documented_fields() {
    let (cap, _, _) = session_with_udp();
    let lines = common::capture::decode_json(&cap, &[]);
    let msgs: Vec<_> = lines.iter().filter(|o| o["type"] == "message").collect();
    assert_eq!(msgs[0]["src"], "[fd00::1]:40001");
    assert_eq!(msgs[0]["dst"], "[fd00::2]:13337");
    assert_eq!(msgs[0]["raw"], "10005ALICE");
    assert_eq!(msgs[0]["name"], "ALICE");
    assert!(msgs[0]["ts"].as_f64().unwrap() > 0.0);
    let whisper = msgs.iter().find(|o| o["code"] == "103").unwrap();
    assert_eq!(whisper["text"], "héllo\u{1b}[2J!");
    let udp = lines.iter().find(|o| o["type"] == "transfer" && o["mode"] == "classic").unwrap();
    assert_eq!(udp["file"], "big.bin");
    assert_eq!(udp["bytes"], 25432);
    assert_eq!(udp["announced_size"], 25432);
    assert!(udp["goodput_bps"].as_f64().unwrap() > 0.0);
    assert!(!lines.iter().any(|o| o["type"] == "datagram"));
    let out = common::cli()
        .args(["capture-decode", "--json", "-v", "-"])
        .write_stdin(session_with_udp().0)
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.lines().any(|l| l.contains(r#""type":"datagram""#) && l.contains(r#""kind":"window""#)));
}

#[test]
fn cli_human_timeline_escapes_control_characters() {
    let (cap, _, _) = session_with_udp();
    let out =
        common::cli().args(["capture-decode", "-"]).write_stdin(cap).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains('\u{1b}'), "raw escape reached the terminal");
    assert!(text.contains(r#"to "BOB": "héllo\u{1b}[2J!""#), "{text}");
    assert!(text.contains(r#"private from "BOB": "שלום!""#));
    assert!(text.contains("[fd00::2]:13337 → [fd00::1]:40001"));
}

#[test]
fn cli_extract_rebuilds_and_verifies_tcp_and_udp_files() {
    let (cap, tcp_file, udp_file) = session_with_udp();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.pcapng");
    std::fs::write(&file, cap).unwrap();
    let out = dir.path().join("out");
    let plot = dir.path().join("udp.svg");
    common::cli()
        .args(["capture-decode", "--summary"])
        .arg(&file)
        .arg("--extract")
        .arg(&out)
        .arg("--plot")
        .arg(&plot)
        .assert()
        .success()
        .stdout(predicates::str::contains("users seen (2): ALICE, BOB"))
        .stdout(predicates::str::contains("big.bin"));
    assert_eq!(std::fs::read(out.join("file.bin")).unwrap(), tcp_file);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), udp_file);
    // Two transfers (TCP and UDP), two graphs: NAME-<id>.svg.
    assert!(!plot.exists());
    let svg = std::fs::read_to_string(dir.path().join("udp-2.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("stroke=\"red\"") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn cli_truncated_capture_decodes_what_it_can_and_says_so() {
    let (script, _) = session(v4().0, v4().1);
    let cap = write(&script, Format::Pcap { nanos: false, be: false }, net::LINKTYPE_ETHERNET, 0);
    let cut = &cap[..cap.len() - 10];
    common::cli()
        .args(["capture-decode", "-"])
        .write_stdin(cut.to_vec())
        .assert()
        .success()
        .stdout(predicates::str::contains("join as \"ALICE\""))
        .stderr(predicates::str::contains("truncated"));
    common::cli()
        .args(["capture-decode", "-"])
        .write_stdin(b"this is not a capture at all".to_vec())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("not a pcap or pcapng"));
}

#[test]
fn damaged_captures_never_panic() {
    let (script, _) = session(v4().0, v4().1);
    for fmt in [Format::Pcap { nanos: false, be: false }, Format::Pcapng { be: true }] {
        let cap = write(&script, fmt, net::LINKTYPE_ETHERNET, 1);
        let seed = 0x5eed_u64;
        let mut rng = Rng::new(seed);
        for round in 0..300 {
            let mut bad = cap.clone();
            for _ in 0..(1 + rng.next_u64() % 8) {
                let i = (rng.next_u64() as usize) % bad.len();
                bad[i] = rng.next_u64() as u8;
            }
            if round % 3 == 0 {
                bad.truncate((rng.next_u64() as usize) % bad.len());
            }
            // Small buffers exercise the refill and grow paths.
            let cap = if round % 2 == 0 { 4096 } else { 1 << 20 };
            let Ok(mut reader) = CaptureReader::with_capacity(&bad[..], cap) else { continue };
            let mut a = Analyzer::new(Config::default(), None);
            let mut n = 0;
            while let Ok(Some(())) = reader.next_packet(|p| a.packet(&p, &mut |_| n += 1)) {}
            a.finish(&mut |_| n += 1);
        }
    }
}

#[test]
fn a_refused_transfer_connection_keeps_the_announcement_for_the_retry() {
    // The reference announces the port in 206 before it listens: the
    // client's first SYN is refused (RST), its retry carries the file.
    let (c, sv) = v4();
    let sa = SocketAddr::new;
    let mut main = TcpConn::new(sa(c, 40001), sa(sv, 13337), 5, 6);
    let mut w = Paced::new(net::LINKTYPE_RAW, true, false, None);
    for p in main.handshake() {
        w.put(p);
    }
    w.put(main.data(true, b"106TCP05a.txt"));
    w.put(main.data(false, b"20601555002"));
    let mut refused = TcpConn::new(sa(c, 40002), sa(sv, 55002), 100, 0);
    w.put(refused.segment(true, flags::SYN, &[]));
    w.put(refused.segment(false, flags::RST | flags::ACK, &[]));
    let mut tr = TcpConn::new(sa(c, 40003), sa(sv, 55002), 200, 300);
    for p in tr.handshake() {
        w.put(p);
    }
    w.put(tr.data(false, b"hello"));
    w.put(tr.fin(false));
    w.put(tr.fin(true));
    let (events, _) = decode(&w.bytes(), Config::default());
    let t = transfers(&events);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!((t[0].id, t[0].file.as_deref(), t[0].bytes, t[0].complete), (1, Some("a.txt"), 5, true));
    assert_eq!(t[0].client, sa(c, 40003));
}

#[test]
fn idle_connections_are_forgotten_so_memory_stays_bounded() {
    use chatctl::capture::IDLE_NS;
    let (c, sv) = v4();
    let sa = SocketAddr::new;
    let mut idle = TcpConn::new(sa(c, 40001), sa(sv, 13337), 5, 6);
    let mut w = PcapWriter::new(Vec::new(), net::LINKTYPE_ETHERNET, false, false).unwrap();
    for p in idle.handshake() {
        w.packet(1000, &frame(net::LINKTYPE_ETHERNET, 0, &p)).unwrap();
    }
    w.packet(2000, &frame(net::LINKTYPE_ETHERNET, 0, &idle.data(true, b"10005AL"))).unwrap();
    // Other traffic (ARP-like frames) long after: the sweep runs every 65,536 packets.
    let arp = [&[0xffu8; 12][..], &[0x08, 0x06], &[0; 28]].concat();
    for i in 0..70_000i64 {
        w.packet(IDLE_NS + 1_000_000_000 + i * 1000, &arp).unwrap();
    }
    let mut later = TcpConn::new(sa(c, 40002), sa(sv, 13337), 5, 6);
    w.packet(IDLE_NS * 2, &frame(net::LINKTYPE_ETHERNET, 0, &later.data(true, b"102"))).unwrap();
    let (events, a) = decode(&w.into_inner(), Config::default());
    // The idle connection was closed (its half message reported) before the
    // later message, not at the end of the capture.
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Problem(p) if p.what.contains("inside a message") => Some("idle closed"),
            Event::Message(_) => Some("later message"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["idle closed", "later message"]);
    assert_eq!(a.stats().skipped, 70_000);
}

#[test]
fn small_read_buffers_give_the_same_result() {
    let (cap, _, _) = session_with_udp();
    let run = |capacity: usize| {
        let mut reader = CaptureReader::with_capacity(&cap[..], capacity).unwrap();
        let mut a = Analyzer::new(Config::default(), None);
        let mut events = Vec::new();
        while reader.next_packet(|p| a.packet(&p, &mut |e| events.push(e))).unwrap().is_some() {}
        a.finish(&mut |e| events.push(e));
        (messages(&events), transfers(&events).iter().map(|t| (t.bytes, t.packets)).collect::<Vec<_>>())
    };
    let big = run(1 << 20);
    assert!(cap.len() > 8 * 4096 && !big.0.is_empty() && big.1.len() == 2);
    assert_eq!(run(4096), big);
}

#[test]
fn a_reused_port_pair_starts_a_new_connection() {
    // The first connection's end was not captured; the same 4-tuple is used
    // again with a new initial sequence number.
    let (c, sv) = v4();
    let sa = SocketAddr::new;
    let mut w = Paced::new(net::LINKTYPE_RAW, false, false, None);
    let mut first = TcpConn::new(sa(c, 40001), sa(sv, 13337), 1000, 6);
    for p in first.handshake() {
        w.put(p);
    }
    w.put(first.data(true, b"10005ALICE"));
    let mut second = TcpConn::new(sa(c, 40001), sa(sv, 13337), 3_000_000_000, 9);
    for p in second.handshake() {
        w.put(p);
    }
    w.put(second.data(true, b"10003BOB"));
    let (events, _) = decode(&w.bytes(), Config::default());
    let raws: Vec<String> = messages(&events).into_iter().map(|m| m.4).collect();
    assert_eq!(raws, ["10005ALICE", "10003BOB"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any segmentation, reordering and duplication of a main connection's
    /// byte stream decodes to the same messages, in order.
    #[test]
    fn any_segmentation_of_a_chat_stream_decodes_the_same(
        picks in proptest::collection::vec(0usize..8, 1..30),
        cuts in proptest::collection::vec(1usize..40, 1..20),
        seed in proptest::prelude::any::<u64>(),
        isn in proptest::prelude::any::<u32>(),
    ) {
        const MSGS: [&str; 8] = ["10005ALICE", "102", "10303BOB05hello", "10404שלום", "105", "106UDP05a.txt", "101", "10400"];
        let raws: Vec<&str> = picks.iter().map(|&i| MSGS[i]).collect();
        let stream: Vec<u8> = raws.iter().enumerate().flat_map(|(i, r)| {
            let mut v = r.as_bytes().to_vec();
            if i % 3 == 0 { v.extend_from_slice(b"\r\n"); }
            v
        }).collect();
        let (c, sv) = v4();
        let mut main = TcpConn::new(SocketAddr::new(c, 40001), SocketAddr::new(sv, 13337), isn, 1);
        let mut w = PcapWriter::new(Vec::new(), net::LINKTYPE_RAW, false, false).unwrap();
        for (i, p) in main.handshake().into_iter().enumerate() {
            w.packet(i as i64, &p).unwrap();
        }
        let base = main.seq[0];
        let mut segs = Vec::new();
        let (mut at, mut k) = (0, 0);
        while at < stream.len() {
            let n = cuts[k % cuts.len()].min(stream.len() - at);
            segs.push((at, at + n));
            at += n;
            k += 1;
        }
        let mut rng = Rng::new(seed);
        for _ in 0..(rng.next_u64() % 4) {
            let i = (rng.next_u64() as usize) % segs.len();
            segs.push(segs[i]);
        }
        for i in (1..segs.len()).rev() {
            segs.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        for (i, (a, b)) in segs.iter().enumerate() {
            let p = main.segment_at(true, base.wrapping_add(*a as u32), flags::ACK, &stream[*a..*b]);
            w.packet(10 + i as i64, &p).unwrap();
        }
        let (events, _) = decode(&w.into_inner(), Config::default());
        let got: Vec<String> = messages(&events).into_iter().map(|m| m.4).collect();
        proptest::prop_assert_eq!(got, raws, "seed {}", seed);
        proptest::prop_assert!(problems(&events).is_empty());
    }
}

/// Found by `cargo fuzz run capture`: a pcapng block whose length is below 12
/// made pcap-parser 0.17 subtract with overflow (a panic in debug builds).
#[test]
fn regression_pcapng_block_length_below_12_is_damage_not_a_panic() {
    let data: &[u8] = &[
        0x0a, 0x0d, 0x0d, 0x0a, 0x6c, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00, 0x00, 0xf1, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x04, 0x00, 0x45, 0x00, 0x45, 0x64, 0x69, 0x74, 0x63, 0x00, 0x00, 0x28,
        0xaa, 0xb2, 0x40, 0x00, 0x80, 0x86, 0x00, 0x00, 0x0a, 0x00, 0x00, 0xef, 0x0a, 0x00, 0x00, 0x25, 0xd8, 0xd3,
        0x34, 0x19, 0x79, 0x1a, 0x59, 0x32, 0xbd, 0x27, 0x47, 0xe3, 0x50, 0x10, 0x02, 0x01, 0x15, 0x2e, 0x00, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x42, 0x00, 0x00, 0x00, 0x42, 0x00, 0x00, 0x00, 0x18, 0x60,
        0x24, 0x88, 0x37, 0x36, 0x75, 0x33, 0x00, 0x00, 0x29, 0x00, 0x00, 0xac, 0x00, 0x00, 0x6c, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x80, 0x0a, 0x00, 0x00, 0x00, 0xff, 0x7e, 0xf1, 0x7e, 0x42, 0x00, 0x00, 0x00, 0x42, 0x00,
        0x00, 0x00, 0x18, 0x60, 0x24, 0x88, 0x11, 0x00, 0x00, 0x02, 0x08, 0x01, 0x01, 0x04, 0x2b, 0x1a, 0x01, 0x00,
        0x02, 0x00, 0x00,
    ];
    let mut reader = CaptureReader::new(data).unwrap();
    let mut n = 0;
    let err = loop {
        match reader.next_packet(|_| ()) {
            Ok(Some(())) => n += 1,
            Ok(None) => panic!("a damaged capture read to the end"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 0);
    assert!(matches!(err, chatctl::capture::ReadError::Damaged { offset: 108, .. }), "{err}");
}

#[test]
fn cli_colour_only_when_asked_or_on_a_terminal() {
    let (cap, _, _) = session_with_udp();
    let coloured =
        common::cli().args(["capture-decode", "--color", "always", "-"]).write_stdin(cap.clone()).assert().success();
    let text = String::from_utf8(coloured.get_output().stdout.clone()).unwrap();
    assert!(text.contains("\u{1b}["), "no colour with --color always");
    let plain = common::cli().args(["capture-decode", "-"]).env_remove("NO_COLOR").write_stdin(cap).assert().success();
    assert!(!String::from_utf8(plain.get_output().stdout.clone()).unwrap().contains('\u{1b}'), "colour into a pipe");
}

#[test]
fn tcp_download_with_reordering_is_verified_and_one_with_a_hole_is_not() {
    let (c, sv) = v6();
    let sa = SocketAddr::new;
    for lose in [false, true] {
        let content = file_bytes(5000, 11);
        let mut w = Paced::new(net::LINKTYPE_LINUX_SLL, false, false, Some(net::LINKTYPE_LINUX_SLL));
        let mut main = TcpConn::new(sa(c, 40001), sa(sv, 13337), 5, 6);
        for p in main.handshake() {
            w.put(p);
        }
        w.put(main.data(true, b"106TCP09notes.txt"));
        w.put(main.data(false, b"20604500055002"));
        let mut tr = TcpConn::new(sa(c, 40003), sa(sv, 55002), 1, u32::MAX - 1500);
        for p in tr.handshake() {
            w.put(p);
        }
        let base = tr.seq[1];
        // Five 1000-byte segments sent 0 2 1 4 3, with 2 sent twice; the
        // lossy capture never sees segment 3.
        for i in [0usize, 2, 1, 2, 4, 3] {
            if lose && i == 3 {
                continue;
            }
            let seq = base.wrapping_add((i * 1000) as u32);
            w.put(tr.segment_at(false, seq, flags::ACK, &content[i * 1000..(i + 1) * 1000]));
        }
        tr.seq[1] = base.wrapping_add(5000);
        w.put(tr.fin(false));
        w.put(tr.fin(true));
        let dir = tempfile::tempdir().unwrap();
        let cap = w.bytes();
        let (events, _) = common::capture::decode(&cap, Config::default(), Some(dir.path()));
        let t = transfers(&events);
        assert_eq!(t.len(), 1);
        // Timed over the data, not the connection's life (the
        // handshake before, the FINs after).
        let span = (t[0].last_ns - t[0].first_ns) as f64 / 1e9;
        assert!(t[0].duration_s() > 0.0 && t[0].duration_s() < span, "{:?}", t[0]);
        let x = t[0].extracted.clone().unwrap();
        if lose {
            assert_eq!((t[0].bytes, t[0].missing_bytes, t[0].complete, x.verified), (4000, 1000, false, false));
            assert_eq!(x.path, dir.path().join("notes.txt.incomplete"));
            let got = std::fs::read(&x.path).unwrap();
            assert_eq!(got.len(), 5000);
            assert_eq!((&got[..3000], &got[4000..]), (&content[..3000], &content[4000..]));
        } else {
            assert_eq!((t[0].bytes, t[0].missing_bytes, t[0].complete, x.verified), (5000, 0, true, true));
            assert_eq!((t[0].retransmissions, t[0].out_of_order), (1, 2));
            assert_eq!(std::fs::read(dir.path().join("notes.txt")).unwrap(), content);
        }
    }
}

/// A writer holding the first `n` packets of an Ethernet pcap `capture`
/// (more can be added), and the time of the last of them.
fn first_packets(capture: &[u8], n: usize) -> (PcapWriter<Vec<u8>>, i64) {
    let mut w = PcapWriter::new(Vec::new(), net::LINKTYPE_ETHERNET, false, false).unwrap();
    let mut reader = CaptureReader::new(capture).unwrap();
    let (mut seen, mut last) = (0, 0);
    while seen < n
        && reader
            .next_packet(|p| {
                w.packet(p.ts_ns, p.data).unwrap();
                last = p.ts_ns;
            })
            .unwrap()
            .is_some()
    {
        seen += 1;
    }
    (w, last)
}

/// A UDP transfer's line comes when the transfer ends, among the
/// chat lines by time (it came after everything, at the end of the
/// capture), in the text timeline and in `--json -v` alike.
#[test]
fn timeline_is_in_time_order_with_udp_transfers_interleaved() {
    let client: SocketAddr = "10.9.0.1:50000".parse().unwrap();
    let server: SocketAddr = "10.9.0.2:55003".parse().unwrap();
    let (udp, _, _) = lossy_classic(4, 5, 9000, client, server);
    let (mut w, last) = first_packets(&udp, usize::MAX);
    // Chat a second after the transfer ended.
    let mut main = TcpConn::new("10.9.0.1:40000".parse().unwrap(), "10.9.0.2:13337".parse().unwrap(), 1, 1);
    let chat: Vec<Vec<u8>> = main.handshake().into_iter().chain([main.data(true, b"10005ALICE\r\n")]).collect();
    for (i, p) in chat.iter().enumerate() {
        w.packet(last + (i as i64 + 1) * 1_000_000_000, &frame(net::LINKTYPE_ETHERNET, 0, p)).unwrap();
    }
    let cap = w.into_inner();
    let lines = common::capture::decode_json(&cap, &["-v"]);
    let ts: Vec<f64> = lines.iter().map(|l| l["ts"].as_f64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let at = |ty: &str| lines.iter().position(|l| l["type"] == ty).unwrap();
    assert!(at("datagram") < at("transfer") && at("transfer") < at("message"), "{lines:?}");
    let text = common::cli().args(["capture-decode", "-"]).write_stdin(cap).assert().success();
    let text = String::from_utf8(text.get_output().stdout.clone()).unwrap();
    let (t, m) = (text.find("transfer #1 UDP go-back-N").unwrap(), text.find("join").unwrap());
    assert!(t < m, "{text}");
}

/// A UDP transfer that never ends (the capture missed its last packets) is
/// reported once silent for `UDP_IDLE_NS`, among the lines of its time, not
/// at the end of the capture.
#[test]
fn an_unfinished_udp_transfer_is_reported_when_idle() {
    use chatctl::capture::UDP_IDLE_NS;
    let client: SocketAddr = "10.9.0.1:50000".parse().unwrap();
    let server: SocketAddr = "10.9.0.2:55003".parse().unwrap();
    let (udp, _, _) = lossy_classic(5, 5, 20_000, client, server);
    // The first packets only: the last one is never seen.
    let (mut w, last) = first_packets(&udp, 20);
    let mut main = TcpConn::new("10.9.0.1:40000".parse().unwrap(), "10.9.0.2:13337".parse().unwrap(), 1, 1);
    let chat: Vec<Vec<u8>> = main
        .handshake()
        .into_iter()
        .chain([main.data(true, b"10005ALICE\r\n"), main.data(true, b"10005CAROL\r\n")])
        .collect();
    for (i, p) in chat.iter().enumerate() {
        // One line at half the idle time, the rest after it.
        let at = if i == 0 { last + UDP_IDLE_NS / 2 } else { last + UDP_IDLE_NS + (i as i64) * 1_000_000_000 };
        w.packet(at, &frame(net::LINKTYPE_ETHERNET, 0, p)).unwrap();
    }
    let (events, _) = common::capture::decode(&w.into_inner(), Config::default(), None);
    let at = |f: &dyn Fn(&Event) -> bool| events.iter().position(f).unwrap();
    let t = at(&|e| matches!(e, Event::Transfer(_)));
    assert!(at(&|e| matches!(e, Event::Message(_))) > t, "{events:?}");
    let Event::Transfer(s) = &events[t] else { unreachable!() };
    assert!(!s.complete);
    assert!(s.reported_ns > last + UDP_IDLE_NS && s.reported_ns < last + UDP_IDLE_NS + 2_000_000_000, "{s:?}");
}

/// Incomplete copies of one file never overwrite each other (they
/// overwrote `NAME.incomplete`), and are numbered as complete copies are.
#[test]
fn extraction_never_overwrites_incomplete_or_complete_copies() {
    use chatctl::capture::extract::Extractor;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.iso"), b"mine").unwrap();
    let mut ex = Extractor::new(dir.path()).unwrap();
    let mut paths = Vec::new();
    for id in 1..=4u32 {
        let data = [id as u8; 10];
        let keep = if id == 3 { 10 } else { 5 }; // #3 complete, the others cut short
        ex.write(id, Some("big.iso"), 0, &data[..keep]).unwrap();
        let x = ex.finish(id, Some("big.iso"), Some(10), None).unwrap();
        assert_eq!(x.verified, id == 3);
        assert_eq!(std::fs::read(&x.path).unwrap(), &data[..keep], "#{id}");
        paths.push(x.path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(paths, ["big.iso.incomplete", "big.iso.1.incomplete", "big.iso.1", "big.iso.2.incomplete"]);
    assert_eq!(std::fs::read(dir.path().join("big.iso")).unwrap(), b"mine");
}

/// TCP and go-back-N files carry no hash: `--extract` says "size matches",
/// never "verified"; the text output is in decimal units; `--plot` draws
/// the TCP transfer as well as the UDP one.
#[test]
fn cli_extract_says_size_matches_without_a_hash_and_plots_tcp() {
    let (cap, _, _) = session_with_udp();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.pcapng");
    std::fs::write(&file, cap).unwrap();
    let out = dir.path().join("out");
    let plots = format!("{}/", dir.path().join("plots").display());
    let o = common::cli()
        .args(["capture-decode", "--timeline"])
        .arg(&file)
        .arg("--extract")
        .arg(&out)
        .args(["--plot", &plots])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(o).unwrap();
    for want in [
        format!("wrote {} (size matches: ", out.join("file.bin").display()),
        format!("wrote {} (size matches: ", out.join("big.bin").display()),
        format!("wrote {}: plot of transfer #1 TCP file.bin", dir.path().join("plots/transfer-1.svg").display()),
        format!(
            "wrote {}: plot of transfer #2 UDP go-back-N big.bin",
            dir.path().join("plots/transfer-2.svg").display()
        ),
    ] {
        assert!(text.contains(&want), "no {want:?} in\n{text}");
    }
    assert!(!text.contains("verified") && !text.contains(" bytes "), "{text}");
    assert!(text.contains(" kB of ") && text.contains(" (size matches)\n"), "{text}");
    let tcp = std::fs::read_to_string(dir.path().join("plots/transfer-1.svg")).unwrap();
    assert!(tcp.contains("segment sent (its first byte)") && tcp.contains("stroke=\"green\""), "{tcp}");
    let classic = std::fs::read_to_string(dir.path().join("plots/transfer-2.svg")).unwrap();
    assert!(classic.contains(">retransmission (packet sent again)<") && classic.contains("packet number"));
    let o = common::cli()
        .args(["capture-decode", "--json"])
        .arg(&file)
        .arg("--extract")
        .arg(dir.path().join("j"))
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let written: Vec<_> = lines.iter().filter(|l| l["type"] == "written").collect();
    assert_eq!(written.len(), 2, "{lines:?}");
    assert!(written.iter().all(|w| w["state"] == "size matches" && w["hash_verified"].is_null()), "{written:?}");
}
