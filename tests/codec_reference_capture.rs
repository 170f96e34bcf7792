//! The payloads of the reference capture (`lib/protocol.md` §7) decode to the
//! right messages and re-encode byte for byte. The byte strings live here;
//! when `../shared/fixtures/alice-bob.pcap` is present, the test also checks
//! that they are exactly the capture's TCP payloads, in order.

use std::path::PathBuf;

use crate::common;

use chatctl::wire::{Confirm, Decoder, Direction, Message, Request, Update};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Alice → server, main connection.
    ToServer,
    /// Server → Alice, main connection.
    ToClient,
    /// Server → Alice, update connection.
    Update,
}

/// (direction, payload, decoded message or `None` for a bare CRLF).
fn fixture() -> Vec<(Dir, &'static [u8], Option<Message>)> {
    let s = |x: &str| x.to_string();
    vec![
        (Dir::ToServer, b"10005ALICE", Some(Request::Join { name: s("ALICE") }.into())),
        (Dir::ToServer, b"\r\n", None),
        (Dir::ToClient, b"20005ALICE55001", Some(Confirm::Joined { name: s("ALICE"), port: 55001 }.into())),
        (Dir::ToServer, b"102", Some(Request::Users.into())),
        (Dir::ToServer, b"\r\n", None),
        (Dir::ToClient, b"2021103BOB", Some(Confirm::Users { users: vec![s("BOB")] }.into())),
        (
            Dir::ToServer,
            b"10303BOB19hey Bob, I'm Alice!",
            Some(Request::Whisper { to: s("BOB"), text: s("hey Bob, I'm Alice!") }.into()),
        ),
        (Dir::ToServer, b"\r\n", None),
        (Dir::ToClient, b"203", Some(Confirm::WhisperSent.into())),
        (
            Dir::Update,
            b"30303BOB32Too bad, I was waiting for Eve..",
            Some(Update::Whisper { from: s("BOB"), text: s("Too bad, I was waiting for Eve..") }.into()),
        ),
        (Dir::Update, b"30103BOB", Some(Update::Left { name: s("BOB") }.into())),
        (Dir::ToServer, b"101", Some(Request::Leave.into())),
        (Dir::ToServer, b"\r\n", None),
        (Dir::ToClient, b"201", Some(Confirm::Left.into())),
    ]
}

#[test]
fn every_fixture_payload_decodes_and_reencodes_exactly() {
    for (dir, bytes, expected) in fixture() {
        let direction = match dir {
            Dir::ToServer => Direction::ToServer,
            Dir::ToClient | Dir::Update => Direction::ToClient,
        };
        for d in [direction, Direction::Any] {
            let mut dec = Decoder::new(d);
            dec.feed(bytes);
            let got = dec.next_message().unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(bytes)));
            assert_eq!(got, expected, "decoding {:?}", String::from_utf8_lossy(bytes));
            assert_eq!(dec.buffered(), 0, "all of {:?} consumed", String::from_utf8_lossy(bytes));
            dec.finish().unwrap();
        }
        if let Some(msg) = expected {
            assert_eq!(msg.to_bytes().unwrap(), bytes, "re-encoding {msg:?}");
        }
    }
}

#[test]
fn the_main_connection_as_one_stream_decodes_in_order() {
    // Both directions of the main connection, each as one stream fed in one go.
    for (dir, direction) in [(Dir::ToServer, Direction::ToServer), (Dir::ToClient, Direction::ToClient)] {
        let items: Vec<_> = fixture().into_iter().filter(|(d, ..)| *d == dir).collect();
        let stream: Vec<u8> = items.iter().flat_map(|(_, b, _)| b.iter().copied()).collect();
        let expected: Vec<Message> = items.into_iter().filter_map(|(.., m)| m).collect();
        let mut dec = Decoder::new(direction);
        dec.feed(&stream);
        let mut got = Vec::new();
        while let Some(m) = dec.next_message().unwrap() {
            got.push(m);
        }
        assert_eq!(got, expected);
    }
}

/// The TCP payloads of the capture, in order, as (source port, destination port, bytes).
fn capture_payloads(pcap: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
    let capture = pcap_parser::PcapCapture::from_file(pcap).expect("fixture is a valid pcap");
    let mut out = Vec::new();
    for block in capture.blocks {
        let packet = etherparse::SlicedPacket::from_ethernet(block.data).expect("fixture frames are Ethernet");
        if let Some(etherparse::TransportSlice::Tcp(tcp)) = packet.transport
            && !tcp.payload().is_empty()
        {
            out.push((tcp.source_port(), tcp.destination_port(), tcp.payload().to_vec()));
        }
    }
    out
}

#[test]
fn fixture_bytes_are_the_captures_payloads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/alice-bob.pcap");
    let Ok(pcap) = std::fs::read(&path) else {
        common::skip(&format!("{} is absent (a user's clone has no shared/ folder)", path.display()));
        return;
    };
    let got = capture_payloads(&pcap);
    let expected: Vec<(u16, u16, Vec<u8>)> = fixture()
        .into_iter()
        .map(|(dir, bytes, _)| {
            let (src, dst) = match dir {
                Dir::ToServer => (55507, 13337),
                Dir::ToClient => (13337, 55507),
                Dir::Update => (55001, 55557),
            };
            (src, dst, bytes.to_vec())
        })
        .collect();
    assert_eq!(got, expected);
}
