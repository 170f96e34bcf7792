use super::*;
use crate::rdt::fast::ABORT_COPIES;
use crate::rdt::fast::{DATA_HEADER, encode_hello};
use crate::rdt::rangeset::RangeSet;

/// A sender of `file` past address validation, and `now`.
fn validated(cfg: Config, file: &[u8]) -> (Sender, Instant) {
    validated_with(cfg, file, &encode_hello())
}

/// [`validated`], answering `hello`.
fn validated_with(cfg: Config, file: &[u8], hello: &[u8]) -> (Sender, Instant) {
    let t0 = Instant::now();
    let mut s = Sender::new(cfg, file.len() as u64, hello, t0);
    let mut out = Vec::new();
    let mut src = file;
    assert!(s.poll_transmit(t0, &mut src, &mut out));
    let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&out) else { panic!("expected CHALLENGE") };
    Frame::Start { cookie, resume: 0, max_data: file.len() as u64 }.encode(&mut out);
    s.handle_datagram(t0, &out);
    assert_eq!(s.state(), State::Sending);
    (s, t0)
}

/// Every batch `poll_batch` yields at `now`, split into its datagrams.
fn batches(s: &mut Sender, now: Instant, file: &[u8], max_segments: usize) -> Vec<(GsoBatch, Vec<Vec<u8>>)> {
    let mut src = file;
    let mut out = Vec::new();
    let mut v = Vec::new();
    while let Some(b) = s.poll_batch(now, &mut src, &mut out, max_segments) {
        let parts = out.chunks(b.segment.unwrap_or(out.len())).map(<[u8]>::to_vec).collect::<Vec<_>>();
        assert_eq!(parts.len(), b.count);
        v.push((b, parts));
    }
    v
}

#[test]
fn batches_hold_equal_size_data_and_control_datagrams_go_alone() {
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    let mss = cfg.payload_len();
    // The window's worth, with a short last datagram at the file's end.
    let file: Vec<u8> = (0..mss * 5 + 100).map(|i| i as u8).collect();
    let (mut s, now) = validated(cfg, &file);
    let got = batches(&mut s, now, &file, 64);
    // STATS first, alone; then the data in one batch, the short one last.
    assert!(matches!(Frame::decode(&got[0].1[0]), Ok(Frame::Stats(_))));
    assert_eq!(got[0].0, GsoBatch { count: 1, segment: None });
    let (b, parts) = &got[1];
    assert_eq!(*b, GsoBatch { count: 6, segment: Some(1452) });
    let mut next = 0;
    for (i, p) in parts.iter().enumerate() {
        let Ok(Frame::Data { offset, payload, .. }) = Frame::decode(p) else { panic!("datagram {i} is not DATA") };
        assert_eq!(offset, next);
        assert_eq!(payload, &file[next as usize..next as usize + payload.len()]);
        next += payload.len() as u64;
    }
    assert_eq!(next, file.len() as u64);
    assert_eq!(got.len(), 2);
}

#[test]
fn batches_respect_the_segment_and_byte_limits() {
    let cfg = Config { max_datagram: 1452, probe: false, pacing_burst: 1000, ..Config::default() };
    let file = vec![7u8; cfg.payload_len() * 8];
    let (mut s, now) = validated(cfg.clone(), &file);
    let got = batches(&mut s, now, &file, 3);
    assert!(got.iter().all(|(b, _)| b.count <= 3));
    assert!(got.iter().any(|(b, _)| b.count == 3));
    // One segment at a time: every datagram alone, without a segment size.
    let (mut s, now) = validated(cfg.clone(), &file);
    assert!(batches(&mut s, now, &file, 1).iter().all(|(b, _)| *b == GsoBatch { count: 1, segment: None }));
    // 65 KB datagrams: one per send (two would exceed GSO_MAX_BYTES).
    let big = Config { max_datagram: 65_000, ..cfg };
    let file = vec![1u8; 65_000 * 3];
    let (mut s, now) = validated(big, &file);
    let got = batches(&mut s, now, &file, 64);
    assert!(got.iter().all(|(b, parts)| b.count == 1 && parts[0].len() <= GSO_MAX_BYTES));
    assert!(got.iter().filter(|(_, p)| matches!(Frame::decode(&p[0]), Ok(Frame::Data { .. }))).count() >= 2);
}

#[test]
fn the_file_hash_is_fed_in_runs_and_matches_the_hellos_format() {
    // Bigger than a few HASH_RUNs, not a multiple of the payload.
    let file: Vec<u8> = (0..300_001u32).map(|i| (i % 251) as u8).collect();
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    // DONE carries the hash of the format the hello asked for.
    for (format, want) in
        [(Format::V3, super::super::tests::xxh3_field(&file)), (Format::V2, *blake3::hash(&file).as_bytes())]
    {
        let (mut s, mut now) = validated_with(cfg.clone(), &file, &format.hello());
        let mut src: &[u8] = &file;
        let mut out = Vec::new();
        let mut ranges = RangeSet::new();
        let mut done = None;
        for _ in 0..100_000 {
            while s.poll_transmit(now, &mut src, &mut out) {
                match Frame::decode(&out) {
                    Ok(Frame::Data { offset, payload, .. }) => {
                        ranges.insert(offset..offset + payload.len() as u64);
                    }
                    Ok(Frame::Done { hash, .. }) => done = Some(hash),
                    _ => {}
                }
            }
            if done.is_some() {
                break;
            }
            // Acknowledge everything sent so far.
            let acked: Vec<Range<u64>> = ranges.iter().collect();
            let mut ack = Vec::new();
            let max_data = file.len() as u64;
            Frame::Ack { largest_pn: s.sent.next_pn().saturating_sub(1), delay_us: 0, max_data, ranges: acked }
                .encode(&mut ack);
            now += Duration::from_millis(1);
            s.handle_datagram(now, &ack);
            s.handle_timeout(now);
            // The hash lags the data by less than a run (plus a datagram).
            assert!(
                s.hasher.hashed_to() + HASH_RUN + DATA_HEADER as u64 + 2000 >= s.next_offset.min(file.len() as u64)
            );
        }
        assert_eq!(done, Some(want), "{format:?}");
    }
}

/// Every datagram the sender writes at `now`, one `poll_transmit` at a time.
fn drain(s: &mut Sender, now: Instant, file: &[u8]) -> Vec<Vec<u8>> {
    let mut src = file;
    let mut out = Vec::new();
    let mut v = Vec::new();
    while s.poll_transmit(now, &mut src, &mut out) {
        v.push(out.clone());
    }
    v
}

/// The (pn, offset, len) of each DATA among `datagrams`.
fn data(datagrams: &[Vec<u8>]) -> Vec<(u64, u64, u64)> {
    datagrams
        .iter()
        .filter_map(|d| match Frame::decode(d) {
            Ok(Frame::Data { pn, offset, payload }) => Some((pn, offset, payload.len() as u64)),
            _ => None,
        })
        .collect()
}

/// An ACK of `ranges`, the largest packet number `largest_pn`, at `now`.
fn ack(s: &mut Sender, now: Instant, largest_pn: u64, ranges: Vec<Range<u64>>) {
    let mut d = Vec::new();
    Frame::Ack { largest_pn, delay_us: 0, max_data: s.file_size(), ranges }.encode(&mut d);
    s.handle_datagram(now, &d);
}

#[test]
fn handshake_then_data_then_done() {
    let file: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    let t0 = Instant::now();
    let mut s = Sender::new(cfg, file.len() as u64, &encode_hello(), t0);
    assert_eq!(s.state(), State::Validating);
    // One CHALLENGE and nothing else before the START.
    let got = drain(&mut s, t0, &file);
    assert_eq!(got.len(), 1);
    let Ok(Frame::Challenge { cookie, size }) = Frame::decode(&got[0]) else { panic!("expected CHALLENGE") };
    assert_eq!(size, file.len() as u64);
    let mut d = Vec::new();
    Frame::Start { cookie, resume: 0, max_data: file.len() as u64 }.encode(&mut d);
    let mut now = t0 + Duration::from_millis(10);
    s.handle_datagram(now, &d);
    assert_eq!(s.state(), State::Sending);
    // The handshake gave the first RTT sample.
    assert_eq!(s.stats().srtt, Duration::from_millis(10));
    let mut received = vec![0u8; file.len()];
    let mut ranges = RangeSet::new();
    let mut done = None;
    for _ in 0..1000 {
        let got = drain(&mut s, now, &file);
        let mut largest = None;
        for g in &got {
            match Frame::decode(g) {
                Ok(Frame::Data { pn, offset, payload }) => {
                    received[offset as usize..offset as usize + payload.len()].copy_from_slice(payload);
                    ranges.insert(offset..offset + payload.len() as u64);
                    largest = largest.max(Some(pn));
                }
                Ok(Frame::Done { size, hash }) => done = Some((size, hash)),
                _ => {}
            }
        }
        if done.is_some() {
            break;
        }
        now += Duration::from_millis(10);
        if let Some(l) = largest {
            ack(&mut s, now, l, ranges.iter().collect());
        }
        s.handle_timeout(now);
    }
    assert_eq!(received, file);
    assert_eq!(done, Some((file.len() as u64, super::super::tests::xxh3_field(&file))));
    assert_eq!(s.state(), State::Closing);
    let stats = s.stats();
    assert_eq!((stats.bytes_done, stats.bytes_sent, stats.packets_lost), (50_000, 50_000, 0));
    let mut d = Vec::new();
    Frame::DoneAck { ok: true }.encode(&mut d);
    s.handle_datagram(now, &d);
    assert_eq!(s.state(), State::Done { confirmed: true });
    assert!(s.is_finished() && s.poll_timeout().is_none());
    assert!(drain(&mut s, now, &file).is_empty());
}

#[test]
fn a_lost_datagram_is_resent_after_three_later_ones_are_acked() {
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    let mss = cfg.payload_len() as u64;
    let file = vec![3u8; 8 * mss as usize];
    let (mut s, t0) = validated(cfg, &file);
    let now = t0 + Duration::from_millis(1);
    let sent = data(&drain(&mut s, now, &file));
    assert_eq!(sent.len(), 8);
    // The first DATA is lost; the next three arrive.
    let (pn0, off0, len0) = sent[0];
    ack(&mut s, now, sent[3].0, vec![sent[1].1..sent[3].1 + sent[3].2]);
    assert_eq!(s.stats().packets_lost, 1);
    // It goes again, under a new packet number, before anything else.
    let again = data(&drain(&mut s, now, &file));
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].1, again[0].2), (off0, len0));
    assert!(again[0].0 > pn0);
    assert_eq!(s.stats().bytes_retransmitted, len0);
    // All acknowledged: the transfer closes.
    ack(&mut s, now, again[0].0, vec![0..file.len() as u64]);
    assert_eq!(s.state(), State::Closing);
}

#[test]
fn unacknowledged_data_goes_again_after_the_rto() {
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    let file = vec![5u8; 3 * cfg.payload_len()];
    let (mut s, t0) = validated(cfg, &file);
    let first = data(&drain(&mut s, t0, &file));
    assert_eq!(first.len(), 3);
    let rto = s.poll_timeout().expect("a timer");
    assert!(rto > t0);
    assert!(data(&drain(&mut s, rto - Duration::from_millis(1), &file)).is_empty());
    s.handle_timeout(rto);
    assert_eq!(s.stats().rtos, 1);
    let again = data(&drain(&mut s, rto, &file));
    let offsets = |v: &[(u64, u64, u64)]| v.iter().map(|d| (d.1, d.2)).collect::<Vec<_>>();
    // All three lost; the window collapsed to two datagrams, which go
    // again first.
    assert_eq!(s.stats().packets_lost, 3);
    assert_eq!(s.stats().cwnd, crate::rdt::cc::minimum_window(s.payload()));
    assert_eq!(offsets(&again), offsets(&first[..2]));
}

#[test]
fn a_repeated_start_before_any_ack_resends_what_is_in_flight() {
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    let file = vec![4u8; 4 * cfg.payload_len()];
    let t0 = Instant::now();
    let mut s = Sender::new(cfg, file.len() as u64, &encode_hello(), t0);
    let got = drain(&mut s, t0, &file);
    let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&got[0]) else { panic!("expected CHALLENGE") };
    let mut start = Vec::new();
    Frame::Start { cookie, resume: 0, max_data: file.len() as u64 }.encode(&mut start);
    let ms = Duration::from_millis(1);
    s.handle_datagram(t0 + 10 * ms, &start); // SRTT 10 ms
    let first = data(&drain(&mut s, t0 + 10 * ms, &file));
    assert_eq!(first.len(), 4);
    // The START again (the receiver saw no DATA) sooner than an SRTT later: nothing yet.
    s.handle_datagram(t0 + 15 * ms, &start);
    assert_eq!(s.stats().packets_lost, 0);
    // An SRTT later: everything in flight is lost and goes again, from offset 0.
    s.handle_datagram(t0 + 20 * ms, &start);
    assert_eq!(s.stats().packets_lost, 4);
    let again = data(&drain(&mut s, t0 + 20 * ms, &file));
    assert_eq!(again.first().map(|d| d.1), Some(0));
    // Once an ACK came, a stray START changes nothing.
    ack(&mut s, t0 + 25 * ms, again[0].0, vec![0..again[0].2]);
    s.handle_datagram(t0 + 60 * ms, &start);
    assert_eq!(s.stats().packets_lost, 4);
}

#[test]
fn a_start_with_a_wrong_cookie_is_ignored() {
    let file = vec![1u8; 10_000];
    let t0 = Instant::now();
    let mut s = Sender::new(Config::default(), file.len() as u64, &encode_hello(), t0);
    let got = drain(&mut s, t0, &file);
    let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&got[0]) else { panic!("expected CHALLENGE") };
    let mut d = Vec::new();
    Frame::Start { cookie: cookie ^ 1, resume: 0, max_data: 10_000 }.encode(&mut d);
    s.handle_datagram(t0, &d);
    assert_eq!(s.state(), State::Validating);
    assert!(drain(&mut s, t0, &file).is_empty());
    // An ACK before validation is ignored too.
    ack(&mut s, t0, 0, vec![0..10_000]);
    assert_eq!(s.state(), State::Validating);
    // The right cookie still works.
    Frame::Start { cookie, resume: 0, max_data: 10_000 }.encode(&mut d);
    s.handle_datagram(t0, &d);
    assert_eq!(s.state(), State::Sending);
    assert!(!data(&drain(&mut s, t0, &file)).is_empty());
}

#[test]
fn at_most_three_times_the_bytes_received_before_validation() {
    let file = vec![1u8; 10_000];
    let t0 = Instant::now();
    let mut challenge = Vec::new();
    Frame::Challenge { cookie: 0, size: file.len() as u64 }.encode(&mut challenge);
    // A 4-byte "hello" (whatever a driver took as one): 12 bytes of
    // budget, less than a CHALLENGE.
    let mut s = Sender::new(Config::default(), file.len() as u64, b"0098", t0);
    assert!(challenge.len() > 12);
    assert!(drain(&mut s, t0, &file).is_empty());
    // Each datagram from the address raises the budget; the CHALLENGE
    // goes once it fits.
    let mut received = 4;
    while 3 * received < challenge.len() {
        assert!(drain(&mut s, t0, &file).is_empty());
        s.handle_datagram(t0, b"x");
        received += 1;
    }
    assert_eq!(drain(&mut s, t0, &file).len(), 1);
    // Its timer does not resend it beyond the budget.
    let mut now = t0;
    for _ in 0..2 {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        assert!(drain(&mut s, now, &file).is_empty());
    }
    assert_eq!(s.state(), State::Validating);
    // A repeated hello (full size) asks for it again, and pays for it.
    s.handle_datagram(now, &encode_hello());
    assert_eq!(drain(&mut s, now, &file).len(), 1);
    assert_eq!(s.stats().datagrams_sent, 2);
}

#[test]
fn silence_for_the_idle_timeout_fails_the_transfer() {
    let cfg = Config { max_datagram: 1452, probe: false, idle_timeout: Duration::from_secs(2), ..Config::default() };
    let file = vec![9u8; 20_000];
    let (mut s, t0) = validated(cfg.clone(), &file);
    let mut now = t0;
    // Timeouts resend, but nothing comes back.
    while !s.is_finished() {
        drain(&mut s, now, &file);
        now = s.poll_timeout().expect("a timer while running");
        s.handle_timeout(now);
        assert!(now - t0 <= Duration::from_secs(2));
    }
    assert_eq!(now - t0, Duration::from_secs(2));
    assert_eq!(s.state(), State::Failed);
    assert!(matches!(s.take_error(), Some(SendError::Timeout(d)) if d == Duration::from_secs(2)));
    assert!(s.stats().rtos > 0);
    // Once every byte is acknowledged, a missing DONE-ACK ends it unconfirmed instead.
    let (mut s, t0) = validated(cfg, &file);
    let sent = data(&drain(&mut s, t0, &file));
    ack(&mut s, t0, sent.last().unwrap().0, vec![0..file.len() as u64]);
    assert_eq!(s.state(), State::Closing);
    let mut now = t0;
    while !s.is_finished() {
        drain(&mut s, now, &file);
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
    }
    assert_eq!(s.state(), State::Done { confirmed: false });
    assert!(s.take_error().is_none());
}

/// The ABORTs among `datagrams`: (cookie, reason, text).
fn aborts(datagrams: &[Vec<u8>]) -> Vec<(u64, AbortReason, String)> {
    datagrams
        .iter()
        .filter_map(|d| match Frame::decode(d) {
            Ok(Frame::Abort { cookie, reason, text }) => Some((cookie, reason, text.to_owned())),
            _ => None,
        })
        .collect()
}

#[test]
fn abort_sends_its_copies_then_the_sender_is_finished() {
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    let file = vec![2u8; 20 * cfg.payload_len()];
    let (mut s, t0) = validated(cfg, &file);
    assert!(!data(&drain(&mut s, t0, &file)).is_empty());
    let cookie = s.validation.cookie();
    s.abort(AbortReason::FileChanged, "size 20 → 30");
    assert!(!s.is_finished(), "ABORTs are still due");
    assert_eq!(s.poll_timeout(), Some(t0), "due at once");
    let got = drain(&mut s, t0, &file);
    let want = (cookie, AbortReason::FileChanged, "size 20 → 30".to_owned());
    assert_eq!(aborts(&got), vec![want; ABORT_COPIES as usize]);
    assert_eq!(got.len(), ABORT_COPIES as usize, "nothing but the ABORTs");
    assert!(s.is_finished() && s.poll_timeout().is_none());
    assert_eq!(s.state(), State::Failed);
    assert!(matches!(s.take_error(), Some(SendError::Aborted(a)) if a.reason == AbortReason::FileChanged));
    // An ACK after the abort changes nothing, and nothing more is sent.
    ack(&mut s, t0, 0, vec![0..file.len() as u64]);
    assert_eq!(s.state(), State::Failed);
    assert!(drain(&mut s, t0, &file).is_empty());
    // A finished transfer is not aborted after the fact.
    s.abort(AbortReason::ServerShutdown, "");
    assert!(drain(&mut s, t0, &file).is_empty());
}

#[test]
fn before_validation_an_abort_stays_within_the_budget() {
    let file = vec![1u8; 10_000];
    let t0 = Instant::now();
    // A 4-byte "hello": 12 bytes of budget, less than one ABORT.
    let mut s = Sender::new(Config::default(), file.len() as u64, b"0098", t0);
    s.abort(AbortReason::ServerShutdown, "");
    assert!(drain(&mut s, t0, &file).is_empty());
    assert!(s.is_finished());
    // With a full hello, the CHALLENGE and the ABORTs fit.
    let mut s = Sender::new(Config::default(), file.len() as u64, &encode_hello(), t0);
    assert_eq!(drain(&mut s, t0, &file).len(), 1);
    s.abort(AbortReason::ServerShutdown, "bye");
    assert_eq!(aborts(&drain(&mut s, t0, &file)).len(), ABORT_COPIES as usize);
    assert!(s.is_finished());
}

#[test]
fn an_abort_from_the_receiver_ends_the_sender_only_with_the_cookie() {
    let cfg = Config { max_datagram: 1452, probe: false, ..Config::default() };
    let file = vec![2u8; 20 * cfg.payload_len()];
    let (mut s, t0) = validated(cfg, &file);
    drain(&mut s, t0, &file);
    let cookie = s.validation.cookie();
    let mut d = Vec::new();
    // Another transfer's (or a guessing stranger's) ABORT: ignored.
    Frame::Abort { cookie: cookie ^ 1, reason: AbortReason::Cancelled, text: "" }.encode(&mut d);
    s.handle_datagram(t0, &d);
    assert_eq!(s.state(), State::Sending);
    Frame::Abort { cookie, reason: AbortReason::Cancelled, text: "Ctrl-C" }.encode(&mut d);
    s.handle_datagram(t0, &d);
    assert!(s.is_finished(), "ends at once, answering nothing");
    assert!(drain(&mut s, t0, &file).is_empty());
    let Some(SendError::PeerAborted(a)) = s.take_error() else { panic!("expected PeerAborted") };
    assert_eq!((a.reason, a.text.as_str()), (AbortReason::Cancelled, "Ctrl-C"));
    assert_eq!(a.to_string(), "cancelled by the receiver: Ctrl-C");
}
