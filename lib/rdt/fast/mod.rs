//! The fast mode: chatctl's own reliable UDP, negotiated over the classic
//! hello so either peer may be the original implementation.
//!
//! The hello, the formats, the datagrams, the exchange, what the checks
//! defend against and how the format evolves are specified once, in
//! [protocol](crate::protocol) §5 and §6. This module keeps them as pure
//! state machines (bytes and time in, datagrams and events out) with a thin
//! socket driver, as quinn-proto does.
//!
//! # Layout
//! - `frame`: the datagrams as bytes ([`Frame`], its types and limits).
//! - `hash`: the formats ([`Format`]) and the whole-file hash in DONE.
//! - `config`: a transfer's [`Config`].
//! - `io`: [`Source`] and [`Sink`], where the bytes come from and go.
//! - [`sender`] and [`receiver`]: the two state machines; the sender's
//!   parts are `validation` (the anti-amplification budget), `sent` (packets
//!   in flight), `path` (controller, RTT, pacer and `mtu`, the datagram-size
//!   probing), `pacer` (the pacing policy), `control` (ACK frequency and
//!   STATS) and `events`; the receiver's are `retry` (hello and START),
//!   `delivery` (the bytes held and their hash) and `acks` (when to
//!   acknowledge); both keep their timers in a `timer` table and their
//!   ABORT copies in `abort`.
//! - [`driver`]: the blocking socket drivers (`recvmmsg`, GSO, GRO) and the
//!   tokio wrappers; `files` (read-ahead and coalesced writes) serves them.
//! - `stats`: live figures for `fetch -v` and the server's logs.

mod abort;
mod acks;
mod config;
mod control;
mod delivery;
pub mod driver;
mod events;
mod files;
mod frame;
mod hash;
mod io;
mod mtu;
mod pacer;
mod path;
pub mod receiver;
mod retry;
pub mod sender;
mod sent;
mod stats;
mod timer;
mod validation;

pub use config::*;
pub use frame::*;
pub use hash::*;
pub use io::*;
pub use stats::*;

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn data_from_a_sources_memory_is_the_same_datagram_as_data_read_in_place() {
        let file: Vec<u8> = (0..5_000u32).map(|i| (i % 241) as u8).collect();
        let mut src: &[u8] = &file;
        let (mut held, mut read) = (vec![9u8; 3], vec![9u8; 3]);
        append_data_from(&mut held, 7, 1_000, 1_427, &mut src).unwrap();
        append_data_with(&mut read, 7, 1_000, 1_427, |b| src.read_at(1_000, b)).unwrap();
        assert!(held == read);
        assert_eq!(Frame::decode(&held[3..]), Ok(Frame::Data { pn: 7, offset: 1_000, payload: &file[1_000..2_427] }));
        // Beyond what the source holds: read (and fail) as before, `out` unchanged.
        assert!(append_data_from(&mut held, 8, 4_000, 1_427, &mut src).is_err());
        assert!(held == read);
    }

    /// DONE's format-3 field for `bytes`, by an independent XXH3-128
    /// implementation (xxhash-rust): the digest big-endian, then 16 zeros.
    pub(crate) fn xxh3_field(bytes: &[u8]) -> [u8; 32] {
        let mut f = [0; 32];
        f[..16].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(bytes).to_be_bytes());
        f
    }

    #[test]
    fn the_file_hash_is_fed_in_whole_runs_and_matches_the_one_shot_hash() {
        let file: Vec<u8> = (0..HASH_RUN as usize * 5 + 777).map(|i| (i * 7 % 253) as u8).collect();
        for (algorithm, want) in
            [(HashAlgorithm::Xxh3_128, xxh3_field(&file)), (HashAlgorithm::Blake3, *blake3::hash(&file).as_bytes())]
        {
            let mut src: &[u8] = &file;
            let mut h = FileHash::new(algorithm);
            // Where a sender or receiver asks for it: at odd offsets.
            for end in [1_000, HASH_RUN + 1_427, 3 * HASH_RUN - 1, 3 * HASH_RUN + 5_000] {
                h.feed_runs_to(end, &mut src as &mut dyn Source).unwrap();
                assert_eq!(h.hashed_to() % HASH_RUN, 0, "fed to {} for {end}", h.hashed_to());
                assert!(h.hashed_to() <= end && end - h.hashed_to() < HASH_RUN);
            }
            // A large datagram fed straight away, then the rest read back.
            let at = h.hashed_to() as usize;
            h.feed_next(at as u64, &file[at..at + 20_000]);
            assert_eq!(h.hashed_to() as usize, at + 20_000);
            h.feed_to(file.len() as u64, &mut src as &mut dyn Source).unwrap();
            assert_eq!(h.finalize(), want, "{algorithm}");
            assert_eq!(algorithm.field(&file), want, "{algorithm}");
        }
    }

    /// A measurement, not a check: [`FileHash`] throughput of each
    /// algorithm on 256 MiB in memory, fed in [`HASH_RUN`] runs as a sender
    /// feeds it. Run `cargo test --release --lib file_hash_throughput --
    /// --ignored --nocapture` on a quiet machine.
    #[test]
    #[ignore = "a measurement: run it in release"]
    fn file_hash_throughput() {
        let file: Vec<u8> = (0..256usize << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for algorithm in [HashAlgorithm::Blake3, HashAlgorithm::Xxh3_128] {
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                let mut h = FileHash::new(algorithm);
                let mut src: &[u8] = &file;
                for end in (HASH_RUN..=file.len() as u64).step_by(HASH_RUN as usize) {
                    h.feed_runs_to(end, &mut src as &mut dyn Source).unwrap();
                }
                std::hint::black_box(h.finalize());
                times.push(t.elapsed().as_secs_f64());
            }
            // The same bytes, but one run fed again and again: in cache, as
            // a run is when the hash follows the data a sender just read.
            let mut cached = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                let mut h = algorithm.hasher();
                for _ in 0..file.len() as u64 / HASH_RUN {
                    h.update(&file[..HASH_RUN as usize]);
                }
                std::hint::black_box(h.finalize());
                cached.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            cached.sort_by(f64::total_cmp);
            let gbs = |t: f64| file.len() as f64 / t / 1e9;
            println!(
                "{algorithm}: 256 MiB from memory: best {:.2} GB/s, median {:.2}; one run in cache: best {:.2} GB/s, median {:.2}",
                gbs(times[0]),
                gbs(times[2]),
                gbs(cached[0]),
                gbs(cached[2])
            );
        }
    }

    #[test]
    fn the_xxh3_field_is_the_big_endian_digest_then_zeros() {
        let field = HashAlgorithm::Xxh3_128.field(b"abc");
        let d = xxhash_rust::xxh3::xxh3_128(b"abc");
        assert_eq!(u128::from_be_bytes(field[..16].try_into().unwrap()), d);
        assert_eq!(field[16..], [0; 16]);
        assert_eq!(HashAlgorithm::Xxh3_128.hex(&field), format!("{d:032x}"));
        // Non-zero padding is shown whole.
        let mut bad = field;
        bad[31] = 1;
        assert_eq!(HashAlgorithm::Xxh3_128.hex(&bad), format!("{d:032x}{:032x}", 1));
        let b = blake3::hash(b"abc");
        assert_eq!(HashAlgorithm::Blake3.hex(b.as_bytes()), b.to_hex().as_str());
    }

    #[test]
    fn frames_roundtrip_and_reject_corruption() {
        let frames = [
            Frame::Challenge { cookie: 7, size: 1 << 40 },
            Frame::Start { cookie: 7, resume: 5, max_data: 9 },
            Frame::Data { pn: u64::MAX, offset: 1 << 33, payload: b"abc" },
            Frame::Ack { largest_pn: 3, delay_us: 10, max_data: 100, ranges: vec![0..10, 20..30] },
            Frame::Done { size: 3, hash: [9; 32] },
            Frame::DoneAck { ok: true },
            Frame::Stats(SenderStats {
                cwnd: 1 << 20,
                srtt: Duration::from_micros(1234),
                pacing_rate: 800_000_000,
                packets_lost: 3,
                bytes_retransmitted: 4096,
                cc: "bbr".into(),
            }),
            Frame::AckFrequency { seq: 3, threshold: 16, max_delay_us: 5000 },
            Frame::Abort { cookie: 7, reason: AbortReason::FileChanged, text: "size 10 → 12" },
            Frame::Abort { cookie: u64::MAX, reason: AbortReason::Other(0), text: "" },
        ];
        let mut out = Vec::new();
        for f in frames {
            f.encode(&mut out);
            assert!(!out[0].is_ascii_digit() && !out[0].is_ascii_whitespace());
            assert_eq!(Frame::decode(&out), Ok(f.clone()));
            let mut bad = out.clone();
            bad[1] ^= 1;
            assert_eq!(Frame::decode(&bad), Err(DecodeError::Checksum));
            assert_eq!(crate::rdt::classic::Data::parse(&out).map(|_| ()), None);
        }
    }

    #[test]
    fn stats_names_are_bounded_ascii() {
        let mut out = Vec::new();
        let long = SenderStats { cc: format!("{}\u{1b}[2J", "x".repeat(40)), ..SenderStats::default() };
        Frame::Stats(long).encode(&mut out);
        let Ok(Frame::Stats(s)) = Frame::decode(&out) else { panic!("{out:?}") };
        assert_eq!(s.cc, "x".repeat(MAX_CC_NAME));
        // A name with a control character on the wire is malformed.
        let mut bad = Vec::new();
        Frame::Stats(SenderStats { cc: "ab".into(), ..SenderStats::default() }).encode(&mut bad);
        let body_len = bad.len() - CHECK_LEN;
        bad[body_len - 1] = 0x1b;
        let c = check(&bad[..body_len]);
        bad[body_len..].copy_from_slice(&c);
        assert_eq!(Frame::decode(&bad), Err(DecodeError::Malformed));
    }

    #[test]
    fn unknown_types_with_a_valid_checksum_are_reported_as_such() {
        for t in [0xCAu8, 0xFF, 0x80] {
            let mut d = vec![t, 1, 2, 3];
            let c = check(&d);
            d.extend_from_slice(&c);
            assert_eq!(Frame::decode(&d), Err(DecodeError::Type(t)));
        }
    }

    #[test]
    fn abort_reasons_round_trip_and_unknown_codes_read_as_such() {
        for code in 0..=255u8 {
            assert_eq!(AbortReason::from_code(code).code(), code);
        }
        let known = [
            AbortReason::Cancelled,
            AbortReason::FileChanged,
            AbortReason::FileUnreadable,
            AbortReason::ServerShutdown,
            AbortReason::UserLeft,
        ];
        assert_eq!(known.map(AbortReason::code), [1, 2, 3, 4, 5]);
        assert_eq!(AbortReason::from_code(9).to_string(), "aborted (code 9)");
        assert_eq!(AbortReason::Cancelled.to_string(), "cancelled by the receiver");
        // The text is shown escaped.
        let a = Abort { reason: AbortReason::UserLeft, text: "bye\u{1b}[2J".into() };
        assert_eq!(a.to_string(), format!("the user left the room: {}", crate::text::escape("bye\u{1b}[2J")));
        assert!(!a.to_string().contains('\u{1b}'));
    }

    #[test]
    fn abort_texts_are_bounded_utf8() {
        let mut out = Vec::new();
        // Cut at MAX_ABORT_TEXT bytes, on a character boundary (é is 2 bytes).
        let long = format!("x{}", "é".repeat(150));
        Frame::Abort { cookie: 1, reason: AbortReason::Cancelled, text: &long }.encode(&mut out);
        let Ok(Frame::Abort { text, .. }) = Frame::decode(&out) else { panic!("{out:?}") };
        assert_eq!(text.len(), MAX_ABORT_TEXT - 1);
        assert!(long.starts_with(text));
        // Junk with a valid check: a length beyond the bytes, a length over
        // the limit, bytes left over, a text that is not UTF-8, too short.
        let with_check = |mut body: Vec<u8>| {
            let c = check(&body);
            body.extend_from_slice(&c);
            body
        };
        let head = [&[T_ABORT][..], &7u64.to_be_bytes(), &[1]].concat();
        for (what, body) in [
            ("length beyond the bytes", [&head[..], &[5], b"abc"].concat()),
            ("length over the limit", [&head[..], &[201], &[b'a'; 201]].concat()),
            ("bytes left over", [&head[..], &[2], b"abc"].concat()),
            ("not UTF-8", [&head[..], &[2], &[0xff, 0xfe]].concat()),
            ("no length", head.clone()),
            ("no reason", [&[T_ABORT][..], &7u64.to_be_bytes()].concat()),
        ] {
            assert_eq!(Frame::decode(&with_check(body)), Err(DecodeError::Malformed), "{what}");
        }
        let ok = with_check([&head[..], &[3], b"abc"].concat());
        assert_eq!(Frame::decode(&ok), Ok(Frame::Abort { cookie: 7, reason: AbortReason::Cancelled, text: "abc" }));
    }

    #[test]
    fn data_is_appended_in_place_and_a_failed_fill_leaves_nothing() {
        let mut out = b"abc".to_vec();
        append_data_with(&mut out, 5, 1000, 4, |b| {
            b.copy_from_slice(b"wxyz");
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(&out[..3], b"abc");
        assert_eq!(Frame::decode(&out[3..]), Ok(Frame::Data { pn: 5, offset: 1000, payload: b"wxyz" }));
        let before = out.clone();
        assert_eq!(append_data_with(&mut out, 6, 1004, 4, |_| Err(())), Err(()));
        assert_eq!(out, before);
    }

    #[test]
    fn hellos_of_every_format_are_a_classic_window_of_98() {
        let h = encode_hello();
        assert_eq!(h.len(), HELLO_LEN);
        assert_eq!(Format::of_hello(&h), Some(Format::V3));
        assert_eq!(h[HELLO_LEN - 1], 0x0c);
        for f in [Format::V2, Format::V3] {
            let h = f.hello();
            assert_eq!(h.len(), HELLO_LEN);
            assert_eq!(Format::of_hello(&h), Some(f));
            assert!(is_fast_hello(&h));
            assert_eq!(crate::rdt::classic::parse_window(&h), Some(98));
            // What the Python original reads (1024 bytes, then int()) is
            // digits and whitespace; so is the whole hello.
            assert!(h[4..].iter().all(|b| b" \t\n\x0b\x0c\r".contains(b)));
        }
        assert_eq!(Format::of_hello(&Format::V2.hello()).map(Format::hash_algorithm), Some(HashAlgorithm::Blake3));
        assert_eq!(Format::of_hello(&h).map(Format::hash_algorithm), Some(HashAlgorithm::Xxh3_128));
        // Junk: short, classic windows, another whitespace mark, a wrong prefix or padding.
        for junk in [&b""[..], b"98", b"20", b"0098", b"\x0c"] {
            assert_eq!(Format::of_hello(junk), None, "{junk:?}");
        }
        let mut other = h.clone();
        other[HELLO_LEN - 1] = b'\n';
        assert_eq!(Format::of_hello(&other), None);
        let mut other = h.clone();
        other[600] = b'\t';
        assert_eq!(Format::of_hello(&other), None);
        let mut other = h.clone();
        other[..4].copy_from_slice(b"0099");
        assert_eq!(Format::of_hello(&other), None);
        // A format-1 hello (spaces only, BLAKE3 checks) is answered as classic.
        let mut v1 = HELLO_PREFIX.to_vec();
        v1.resize(HELLO_LEN, b' ');
        assert_eq!(Format::of_hello(&v1), None);
        assert!(!is_fast_hello(&v1));
        assert_eq!(crate::rdt::classic::parse_window(&v1), Some(98));
    }

    #[test]
    fn the_check_is_crc32c() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(check(&[0; 32]), 0x8a91_36aa_u32.to_be_bytes());
        let mut out = Vec::new();
        Frame::DoneAck { ok: true }.encode(&mut out);
        assert_eq!(out.len(), 2 + CHECK_LEN);
        assert_eq!(out[2..], crc32c::crc32c(&out[..2]).to_be_bytes());
        // Against an independent implementation at every length up to a
        // jumbo datagram (the folding code has length-dependent paths), and
        // at every alignment of the start.
        let bytes: Vec<u8> = (0..9100u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..bytes.len() - 8 {
            let at = len % 8;
            let b = &bytes[at..at + len];
            assert_eq!(check(b), crc32c::crc32c(b).to_be_bytes(), "length {len} at {at}");
        }
    }
}
