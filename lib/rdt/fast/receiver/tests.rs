use super::*;
use crate::rdt::fast::ABORT_COPIES;

/// A receiving receiver of a `size`-byte file, and `now`.
fn receiving(size: u64) -> (Receiver, Instant) {
    let t0 = Instant::now();
    let mut r = Receiver::new(Config::default(), 0, None, t0);
    let mut out = Vec::new();
    assert!(r.poll_transmit(t0, &mut out)); // hello
    Frame::Challenge { cookie: 1, size }.encode(&mut out);
    r.handle_datagram(t0, &out, &mut Vec::new());
    assert!(r.poll_transmit(t0, &mut out)); // START
    assert_eq!(r.state(), State::Receiving);
    (r, t0)
}

fn data(r: &mut Receiver, now: Instant, pn: u64, sink: &mut Vec<u8>) {
    let mut d = Vec::new();
    Frame::Data { pn, offset: pn * 100, payload: &[pn as u8; 100] }.encode(&mut d);
    r.handle_datagram(now, &d, sink);
}

fn acks(r: &mut Receiver, now: Instant) -> usize {
    let mut out = Vec::new();
    let mut n = 0;
    while r.poll_transmit(now, &mut out) {
        n += usize::from(matches!(Frame::decode(&out), Ok(Frame::Ack { .. })));
    }
    n
}

/// The receiver's DONE-ACK verdict on `file` (all received) and a DONE carrying `hash`.
fn verdict(file: &[u8], hash: [u8; 32]) -> (Option<bool>, bool) {
    let (mut r, t0) = receiving(file.len() as u64);
    let mut sink = Vec::new();
    let mut d = Vec::new();
    Frame::Data { pn: 0, offset: 0, payload: file }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    Frame::Done { size: file.len() as u64, hash }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    let mut verdict = None;
    let mut out = Vec::new();
    while r.poll_transmit(t0, &mut out) {
        if let Ok(Frame::DoneAck { ok }) = Frame::decode(&out) {
            verdict = Some(ok);
        }
    }
    (verdict, r.is_verified())
}

#[test]
fn done_must_carry_the_xxh3_digest_and_zero_padding() {
    let file: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 256) as u8).collect();
    let good = super::super::tests::xxh3_field(&file);
    assert_eq!(verdict(&file, good), (Some(true), true));
    // A wrong digest.
    let mut bad = good;
    bad[7] ^= 0x10;
    assert_eq!(verdict(&file, bad), (Some(false), false));
    // The right digest, but padding that is not zero.
    for at in [16, 31] {
        let mut bad = good;
        bad[at] = 1;
        assert_eq!(verdict(&file, bad), (Some(false), false), "padding byte {at}");
    }
    // Format 2's hash of the right file: not what a format-3 receiver asked for.
    assert_eq!(verdict(&file, *blake3::hash(&file).as_bytes()), (Some(false), false));
}

#[test]
fn acks_follow_the_senders_ack_frequency() {
    let (mut r, t0) = receiving(100_000);
    let mut sink = Vec::new();
    // By default: every second datagram.
    data(&mut r, t0, 0, &mut sink);
    assert_eq!(acks(&mut r, t0), 0);
    data(&mut r, t0, 1, &mut sink);
    assert_eq!(acks(&mut r, t0), 1);
    let mut d = Vec::new();
    Frame::AckFrequency { seq: 2, threshold: 8, max_delay_us: 3000 }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    // An older request changes nothing.
    Frame::AckFrequency { seq: 1, threshold: 2, max_delay_us: 1000 }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    for pn in 2..9 {
        data(&mut r, t0, pn, &mut sink);
        assert_eq!(acks(&mut r, t0), 0, "pn {pn}");
    }
    data(&mut r, t0, 9, &mut sink);
    assert_eq!(acks(&mut r, t0), 1, "the 8th unacknowledged datagram");
    // Or the delay after the first unacknowledged one.
    data(&mut r, t0, 10, &mut sink);
    assert_eq!(acks(&mut r, t0 + Duration::from_micros(2999)), 0);
    assert_eq!(acks(&mut r, t0 + Duration::from_millis(3)), 1);
    // A gap (pn 11 lost) is acknowledged at once.
    data(&mut r, t0, 12, &mut sink);
    assert_eq!(acks(&mut r, t0), 1);
    // So is its late arrival (out of order again), and the file's end.
    data(&mut r, t0, 11, &mut sink);
    assert_eq!(acks(&mut r, t0), 1);
}

/// The file's bytes as the tests send them.
fn file_bytes(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

/// A GRO buffer: the DATA datagrams `(pn, offset, len)` one after the
/// other (all but the last of one size: the stride).
fn gro(file: &[u8], datagrams: &[(u64, u64, usize)]) -> (Vec<u8>, usize) {
    let mut buf = Vec::new();
    let mut d = Vec::new();
    for &(pn, offset, len) in datagrams {
        let o = offset as usize;
        Frame::Data { pn, offset, payload: &file[o..o + len] }.encode(&mut d);
        buf.extend_from_slice(&d);
    }
    (buf, super::super::DATA_HEADER + datagrams[0].2 + super::super::CHECK_LEN)
}

/// What a receiver shows of itself after some input: its sink, figures and next datagrams.
fn seen(r: &mut Receiver, now: Instant, sink: &[u8]) -> (Vec<u8>, u64, u64, u64, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut sent = Vec::new();
    while r.poll_transmit(now, &mut out) {
        sent.push(out.clone());
    }
    let s = r.stats();
    (sink.to_vec(), s.bytes_done, s.packets_lost, s.bytes_retransmitted, sent)
}

#[test]
fn a_gro_buffer_is_one_unit_with_the_same_outcome_as_its_datagrams() {
    const L: usize = 1000;
    let file = file_bytes(10 * L + 300);
    // A gap (pn 3 lost), a duplicate (pn 4 twice), a short last datagram.
    let list = [(0, 0, L), (1, L as u64, L), (2, 2 * L as u64, L), (4, 4 * L as u64, L), (4, 4 * L as u64, L)];
    let mut list = list.to_vec();
    list.extend([(5, 5 * L as u64, L), (6, 6 * L as u64, 300)]);
    let (buf, stride) = gro(&file, &list);
    let (mut one, t0) = receiving(file.len() as u64);
    let (mut each, _) = receiving(file.len() as u64);
    let (mut sink1, mut sink2) = (Vec::new(), Vec::new());
    assert_eq!(one.handle_segments(t0, &buf, stride, &mut sink1), Segments { classic_at: None });
    for d in buf.chunks(stride) {
        each.handle_datagram(t0, d, &mut sink2);
    }
    let got = seen(&mut one, t0, &sink1);
    let want = seen(&mut each, t0, &sink2);
    assert!(got.0 == want.0, "the same bytes written");
    assert_eq!((got.1, got.2, got.3), (want.1, want.2, want.3), "bytes done, holes, late bytes");
    assert_eq!(got.4, want.4, "the same ACK");
    let (sink, done, lost, _, acks) = got;
    assert_eq!(done, 5 * L as u64 + 300);
    assert_eq!(lost, 1, "one hole opened");
    assert_eq!(&sink[..3 * L], &file[..3 * L]);
    assert!(sink[3 * L..4 * L].iter().all(|&b| b == 0), "the gap is not written");
    assert_eq!(&sink[4 * L..6 * L + 300], &file[4 * L..6 * L + 300]);
    // The gap is acknowledged at once (reordering), with both ranges.
    let Ok(Frame::Ack { ranges, .. }) = Frame::decode(&acks[0]) else { panic!("{acks:?}") };
    assert_eq!(ranges, [0..3 * L as u64, 4 * L as u64..6 * L as u64 + 300]);
}

#[test]
fn a_corrupt_datagram_in_a_gro_buffer_is_dropped_alone() {
    const L: usize = 1000;
    let file = file_bytes(8 * L);
    let list: Vec<_> = (0..5).map(|pn| (pn, pn * L as u64, L)).collect();
    let (mut buf, stride) = gro(&file, &list);
    buf[2 * stride + 40] ^= 0x20; // pn 2's payload
    let (mut r, t0) = receiving(file.len() as u64);
    let mut sink = Vec::new();
    r.handle_segments(t0, &buf, stride, &mut sink);
    assert_eq!(r.stats().bytes_done, 4 * L as u64);
    assert_eq!(&sink[..2 * L], &file[..2 * L]);
    assert!(sink[2 * L..3 * L].iter().all(|&b| b == 0), "the corrupt payload is not written");
    assert_eq!(&sink[3 * L..5 * L], &file[3 * L..5 * L]);
    // The rest arrives (pn 2 again, as a retransmission), and the whole
    // file is written and acknowledged.
    let rest: Vec<_> =
        [(5, 2 * L as u64, L)].into_iter().chain((6..9).map(|pn| (pn, (pn - 1) * L as u64, L))).collect();
    let (buf, stride) = gro(&file, &rest);
    r.handle_segments(t0, &buf, stride, &mut sink);
    assert!(sink == file);
    assert_eq!(r.stats().bytes_done, file.len() as u64);
}

#[test]
fn a_classic_answer_in_a_batch_is_handed_over_from_where_it_starts() {
    let t0 = Instant::now();
    let mut r = Receiver::new(Config::default(), 0, None, t0);
    let mut out = Vec::new();
    assert!(r.poll_transmit(t0, &mut out)); // hello
    let mut d = Vec::new();
    classic::Data { last: false, seq: 0, payload: &[7; 100] }.encode(&mut d);
    let buf = [d.clone(), d].concat();
    let b = r.handle_segments(t0, &buf, buf.len() / 2, &mut Vec::new());
    assert_eq!(b.classic_at, Some(0));
}

#[test]
fn abort_sends_its_copies_with_the_cookie_then_the_receiver_is_finished() {
    let (mut r, t0) = receiving(100_000);
    let mut sink = Vec::new();
    data(&mut r, t0, 0, &mut sink);
    r.abort(AbortReason::Cancelled, "interrupted");
    assert!(!r.is_finished());
    let mut out = Vec::new();
    let mut got = Vec::new();
    while r.poll_transmit(t0, &mut out) {
        got.push(Frame::decode(&out).map(|f| format!("{f:?}")).unwrap());
    }
    let want = format!("{:?}", Frame::Abort { cookie: 1, reason: AbortReason::Cancelled, text: "interrupted" });
    assert_eq!(got, vec![want; ABORT_COPIES as usize]);
    assert!(r.is_finished() && r.poll_timeout().is_none());
    assert!(matches!(r.take_error(), Some(RecvError::Aborted(a)) if a.reason == AbortReason::Cancelled));
    // Later DATA is not written.
    data(&mut r, t0, 1, &mut sink);
    assert_eq!(sink.len(), 100);
}

#[test]
fn abort_before_the_challenge_sends_nothing_and_after_verification_keeps_the_file() {
    let t0 = Instant::now();
    let mut r = Receiver::new(Config::default(), 0, None, t0);
    let mut out = Vec::new();
    assert!(r.poll_transmit(t0, &mut out)); // hello
    r.abort(AbortReason::Cancelled, "");
    assert!(!r.poll_transmit(t0, &mut out), "no cookie to echo yet");
    assert!(r.is_finished() && !r.is_verified());
    // A verified, lingering receiver stops lingering and is done.
    let file = file_bytes(500);
    let (mut r, t0) = receiving(file.len() as u64);
    let mut d = Vec::new();
    let mut sink = Vec::new();
    Frame::Data { pn: 0, offset: 0, payload: &file }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    Frame::Done { size: file.len() as u64, hash: super::super::tests::xxh3_field(&file) }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    assert_eq!(r.state(), State::Lingering);
    r.abort(AbortReason::Cancelled, "");
    assert_eq!(r.state(), State::Done);
    assert!(r.is_verified() && r.take_error().is_none());
}

#[test]
fn an_abort_from_the_sender_ends_the_receiver_only_with_the_cookie() {
    let (mut r, t0) = receiving(100_000);
    let mut sink = Vec::new();
    data(&mut r, t0, 0, &mut sink);
    let mut d = Vec::new();
    Frame::Abort { cookie: 2, reason: AbortReason::FileChanged, text: "" }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    assert_eq!(r.state(), State::Receiving, "a wrong cookie is ignored");
    Frame::Abort { cookie: 1, reason: AbortReason::Other(77), text: "x\u{1b}" }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    assert!(r.is_finished());
    let mut out = Vec::new();
    assert!(!r.poll_transmit(t0, &mut out), "nothing in answer");
    let Some(RecvError::PeerAborted(a)) = r.take_error() else { panic!("expected PeerAborted") };
    assert_eq!(a.reason, AbortReason::Other(77));
    let shown = RecvError::PeerAborted(a).to_string();
    assert!(shown.starts_with("the server aborted the transfer: aborted (code 77): x"), "{shown}");
    assert!(!shown.contains('\u{1b}'));
}
