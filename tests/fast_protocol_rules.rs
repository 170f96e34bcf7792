//! The fast-mode machines driven by hand: address validation (the
//! anti-amplification limit), cookies, and the final hash check.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use chatctl::rdt::endpoint::{self, Step};
use chatctl::rdt::fast::receiver::{Received, Receiver, RecvError};
use chatctl::rdt::fast::sender::{SendError, Sender, State};
use chatctl::rdt::fast::{
    AbortReason, CHECK_LEN, Config, DecodeError, Frame, HashAlgorithm, STATS_INTERVAL, encode_hello,
};

#[test]
fn a_spoofed_hello_gets_at_most_three_times_its_bytes() {
    let hello = encode_hello();
    let t0 = Instant::now();
    let mut s = Sender::new(Config::default(), 1 << 30, &hello, t0);
    let data: &[u8] = &[];
    let mut src = data;
    let mut out = Vec::new();
    let mut sent = 0usize;
    let mut now = t0;
    // Nobody answers: run the machine until it gives up.
    while let Ok(Step::Wait(wake)) = endpoint::transmit(&mut s, now, &mut src, &mut out, 1, |d, _| {
        sent += d.len();
        Ok::<_, Infallible>(())
    }) {
        now = wake.expect("an unfinished sender has a timer").max(now);
    }
    assert!(sent > 0 && sent <= 3 * hello.len(), "sent {sent} bytes for a {}-byte hello", hello.len());
    assert!(matches!(s.take_error(), Some(SendError::Timeout(_))));
    assert!(now - t0 <= Config::default().idle_timeout + Duration::from_secs(1));
}

#[test]
fn start_with_a_wrong_cookie_sends_no_data() {
    let t0 = Instant::now();
    let file = vec![7u8; 100_000];
    let mut s = Sender::new(Config::default(), file.len() as u64, &encode_hello(), t0);
    let mut src: &[u8] = &file;
    let mut out = Vec::new();
    assert!(s.poll_transmit(t0, &mut src, &mut out));
    let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&out) else { panic!("expected CHALLENGE") };
    let mut start = Vec::new();
    Frame::Start { cookie: cookie ^ 1, resume: 0, max_data: 1 << 40 }.encode(&mut start);
    s.handle_datagram(t0, &start);
    assert_eq!(s.state(), State::Validating);
    assert!(!s.poll_transmit(t0, &mut src, &mut out));
    Frame::Start { cookie, resume: 0, max_data: 1 << 40 }.encode(&mut start);
    s.handle_datagram(t0, &start);
    assert_eq!(s.state(), State::Sending);
    // The sender's STATS goes first, then the data.
    assert!(s.poll_transmit(t0, &mut src, &mut out));
    assert!(matches!(Frame::decode(&out), Ok(Frame::Stats(_))));
    assert!(s.poll_transmit(t0, &mut src, &mut out));
    assert!(matches!(Frame::decode(&out), Ok(Frame::Data { offset: 0, .. })));
}

#[test]
fn a_wrong_hash_fails_both_sides() {
    let t0 = Instant::now();
    let mut r = Receiver::new(Config::default(), 0, Some(3), t0);
    let mut sink: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    assert!(r.poll_transmit(t0, &mut out)); // hello
    let mut d = Vec::new();
    Frame::Challenge { cookie: 9, size: 3 }.encode(&mut d);
    assert_eq!(r.handle_datagram(t0, &d, &mut sink), Received::Fast);
    Frame::Data { pn: 0, offset: 0, payload: b"abc" }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    Frame::Done { size: 3, hash: HashAlgorithm::Xxh3_128.field(b"abd") }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    let mut verdict = None;
    while r.poll_transmit(t0, &mut out) {
        if let Ok(Frame::DoneAck { ok }) = Frame::decode(&out) {
            verdict = Some(ok);
        }
    }
    assert_eq!(verdict, Some(false));
    assert!(!r.is_verified(), "a file whose hash differs is never verified");
    let later = t0 + Duration::from_secs(30);
    r.handle_timeout(later);
    assert!(r.is_finished() && !r.is_verified());
    assert!(matches!(r.take_error(), Some(RecvError::HashMismatch)));

    // The sender, told so, fails too.
    let mut s = Sender::new(Config::default(), 3, &encode_hello(), t0);
    let mut src: &[u8] = b"abc";
    assert!(s.poll_transmit(t0, &mut src, &mut out));
    let Ok(Frame::Challenge { cookie, .. }) = Frame::decode(&out) else { panic!("expected CHALLENGE") };
    Frame::Start { cookie, resume: 3, max_data: 3 }.encode(&mut d);
    s.handle_datagram(t0, &d);
    assert_eq!(s.state(), State::Closing);
    Frame::DoneAck { ok: false }.encode(&mut d);
    s.handle_datagram(t0, &d);
    assert!(matches!(s.take_error(), Some(SendError::HashMismatch)));
}

/// Runs sender and receiver against each other with no loss; `tamper` may
/// rewrite each sender datagram before the receiver sees it. Returns the
/// STATS datagrams' send times and the receiver.
fn run_pair(file: &[u8], mut tamper: impl FnMut(&mut Vec<u8>)) -> (Vec<Duration>, Receiver, Vec<u8>) {
    let t0 = Instant::now();
    let cfg = Config { probe: false, ..Config::default() };
    let mut r = Receiver::new(cfg.clone(), 0, Some(file.len() as u64), t0);
    let mut sink: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    assert!(r.poll_transmit(t0, &mut out));
    let mut s = Sender::new(cfg, file.len() as u64, &out, t0);
    let mut src: &[u8] = file;
    let mut stats_at = Vec::new();
    let (mut to_r, mut to_s) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    let mut now = t0;
    // A 25 ms virtual clock step (both sides answer within it): a
    // transfer of a few MB then spans several STATS intervals.
    for _ in 0..100_000 {
        if r.is_verified() {
            break;
        }
        let _ = endpoint::step(&mut s, now, &mut src, endpoint::no_input, &mut buf, 1, |d, _| {
            if let Ok(Frame::Stats(_)) = Frame::decode(d) {
                stats_at.push(now - t0);
            }
            let mut d = d.to_vec();
            tamper(&mut d);
            to_r.push(d);
            Ok::<_, Infallible>(())
        });
        let got = endpoint::step(&mut r, now, &mut sink, endpoint::drain(&mut to_r), &mut buf, 1, |d, _| {
            to_s.push(d.to_vec());
            Ok::<_, Infallible>(())
        });
        assert_ne!(got, Ok(Step::Foreign), "the receiver took a datagram for classic data");
        let _ = endpoint::receive(&mut s, now, &mut src, endpoint::drain::<Infallible, _>(&mut to_s));
        now += Duration::from_millis(25);
    }
    assert!(r.is_verified(), "the transfer did not complete");
    (stats_at, r, sink)
}

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn stats_go_after_validation_at_most_every_interval_and_reach_the_receiver() {
    let f = file(3_000_000);
    let (at, r, sink) = run_pair(&f, |_| {});
    assert!(sink == f);
    assert!(at.len() >= 2, "only {} STATS in a transfer of {:?}", at.len(), at);
    for w in at.windows(2) {
        assert!(w[1] - w[0] >= STATS_INTERVAL, "STATS {:?} apart", w[1] - w[0]);
    }
    let s = r.stats().sender.expect("the receiver kept the sender's figures");
    assert!(s.cwnd > 0 && s.pacing_rate > 0, "{s:?}");
    assert_eq!(s.cc, Config::default().cc.to_string());
}

#[test]
fn no_stats_before_validation() {
    let t0 = Instant::now();
    let mut s = Sender::new(Config::default(), 1 << 20, &encode_hello(), t0);
    let mut src: &[u8] = &[];
    let mut out = Vec::new();
    let mut now = t0;
    for _ in 0..10 {
        while s.poll_transmit(now, &mut src, &mut out) {
            assert!(matches!(Frame::decode(&out), Ok(Frame::Challenge { .. })), "{:?}", Frame::decode(&out));
        }
        now += STATS_INTERVAL;
        s.handle_timeout(now);
    }
}

/// A receiver that predates STATS sees it as a datagram of unknown type
/// (rewritten here to the unused type 0xCA, checksum recomputed): it
/// ignores it and the transfer completes as before.
#[test]
fn an_unknown_type_is_ignored_by_the_receiver() {
    let f = file(500_000);
    let mut unknown = 0;
    let (at, r, sink) = run_pair(&f, |d| {
        if matches!(Frame::decode(d), Ok(Frame::Stats(_))) {
            d[0] = 0xCA;
            let n = d.len() - CHECK_LEN;
            let c = crc32c::crc32c(&d[..n]);
            d.truncate(n);
            d.extend_from_slice(&c.to_be_bytes());
            assert_eq!(Frame::decode(d), Err(DecodeError::Type(0xCA)));
            unknown += 1;
        }
    });
    assert!(sink == f);
    assert!(!at.is_empty() && unknown == at.len());
    assert_eq!(r.stats().sender, None, "nothing was taken from a datagram of unknown type");
}

#[test]
fn an_unknown_type_before_the_challenge_changes_nothing() {
    let t0 = Instant::now();
    let mut r = Receiver::new(Config::default(), 0, None, t0);
    let mut out = Vec::new();
    assert!(r.poll_transmit(t0, &mut out));
    let mut d = vec![0xCA, 0, 0];
    d.extend_from_slice(&crc32c::crc32c(&d).to_be_bytes());
    let mut sink: Vec<u8> = Vec::new();
    assert_eq!(r.handle_datagram(t0, &d, &mut sink), Received::Fast);
    assert_eq!(r.state(), chatctl::rdt::fast::receiver::State::Hello);
}

/// While DATA is being lost, STATS is the sender's sign of life: the
/// receiver notes it (no idle timeout) and answers with an ACK, so the
/// sender does not give up on a silent receiver either.
#[test]
fn stats_keep_both_sides_alive_during_a_loss_streak() {
    let t0 = Instant::now();
    let cfg = Config::default();
    let mut r = Receiver::new(cfg.clone(), 0, Some(10_000), t0);
    let mut sink: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut d = Vec::new();
    assert!(r.poll_transmit(t0, &mut out)); // hello
    Frame::Challenge { cookie: 1, size: 10_000 }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    Frame::Data { pn: 0, offset: 0, payload: &[1; 1000] }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    while r.poll_transmit(t0 + cfg.max_ack_delay, &mut out) {}
    // Only STATS from now on, for longer than the idle timeout.
    let mut now = t0;
    let mut acks = 0;
    while now < t0 + cfg.idle_timeout * 2 {
        now += Duration::from_secs(1);
        Frame::Stats(Default::default()).encode(&mut d);
        r.handle_datagram(now, &d, &mut sink);
        r.handle_timeout(now);
        while r.poll_transmit(now, &mut out) {
            acks += usize::from(matches!(Frame::decode(&out), Ok(Frame::Ack { .. })));
        }
    }
    assert!(!r.is_finished(), "{:?}", r.take_error());
    assert!(acks >= 19, "{acks} ACKs for 20 STATS");
}

/// One fast transfer of `len` bytes over a simulated path with 5% loss,
/// 20 ms each way and 8 Mbit/s, interrupted after `at` of virtual time by `abort` (on
/// the sender or the receiver); returns both machines and how long after
/// the abort each ended.
fn aborted_transfer(
    len: usize,
    at: Duration,
    seed: u64,
    abort: impl FnOnce(&mut Sender, &mut Receiver),
) -> (Sender, Receiver, Duration, Duration) {
    use chatctl::rdt::sim::{Accepting, Attached, Link, LinkConfig, run};
    let l = LinkConfig { loss: 0.05, delay: Duration::from_millis(20), ..LinkConfig::default() };
    // 8 Mbit/s for the data: the file takes seconds, the abort comes long before.
    let data_link = LinkConfig { rate_bps: Some(8_000_000), queue_bytes: 200_000, ..l.clone() };
    let (mut fwd, mut back) = (Link::new(data_link, seed), Link::new(l, seed ^ 9));
    let t0 = Instant::now();
    let data = file(len);
    let cfg = Config { seed, probe: false, ..Config::default() };
    let receiver = Attached::new(Receiver::new(cfg.clone(), 0, Some(len as u64), t0), Vec::<u8>::new());
    let sender = Accepting::new(|now, d: &[u8]| {
        chatctl::rdt::fast::is_fast_hello(d)
            .then(|| Attached::new(Sender::new(cfg.clone(), len as u64, d, now), &data[..]))
    });
    let mut flows = [(sender, receiver)];
    let limit = Duration::from_secs(60);
    let mid = run(&mut flows, &mut fwd, &mut back, t0, limit, Duration::ZERO, |now, _| now < t0 + at);
    {
        let (s, r) = &mut flows[0];
        let s = &mut s.party.as_mut().expect("the sender started").endpoint;
        assert!(!s.is_finished() && !r.endpoint.is_finished(), "the transfer was still running");
        abort(s, &mut r.endpoint);
    }
    let (mut s_end, mut r_end) = (None, None);
    run(&mut flows, &mut fwd, &mut back, mid.now, limit, Duration::ZERO, |now, flows| {
        let (s, r) = &flows[0];
        let s_done = s.party.as_ref().is_some_and(|p| p.endpoint.is_finished());
        if s_done && s_end.is_none() {
            s_end = Some(now - mid.now);
        }
        if r.endpoint.is_finished() && r_end.is_none() {
            r_end = Some(now - mid.now);
        }
        !(s_done && r.endpoint.is_finished())
    });
    let [(s, r)] = flows;
    let s = s.party.expect("the sender started").endpoint;
    (s, r.endpoint, s_end.expect("the sender ended"), r_end.expect("the receiver ended"))
}

/// Either side's ABORT ends the other within a round trip or so (three
/// copies cross a 5% loss), far from the 10 s idle timeout; the reason
/// arrives with it. A few seeds: a lost copy now and then.
#[test]
fn an_abort_ends_the_peer_at_once_over_a_lossy_path() {
    for seed in 1..=8 {
        let (mut s, mut r, s_end, r_end) = aborted_transfer(4 << 20, Duration::from_millis(700), seed, |_, r| {
            r.abort(AbortReason::Cancelled, "Ctrl-C");
        });
        assert_eq!(r_end, Duration::ZERO, "the receiver ends when its copies are out");
        assert!(matches!(r.take_error(), Some(RecvError::Aborted(_))));
        assert!(s_end <= Duration::from_millis(100), "seed {seed}: the sender ended {s_end:?} after the abort");
        let Some(SendError::PeerAborted(a)) = s.take_error() else { panic!("seed {seed}: not aborted") };
        assert_eq!((a.reason, a.text.as_str()), (AbortReason::Cancelled, "Ctrl-C"));

        let (mut s, mut r, s_end, r_end) = aborted_transfer(4 << 20, Duration::from_millis(700), seed, |s, _| {
            s.abort(AbortReason::FileChanged, "");
        });
        assert_eq!(s_end, Duration::ZERO);
        assert!(matches!(s.take_error(), Some(SendError::Aborted(_))));
        assert!(r_end <= Duration::from_millis(100), "seed {seed}: the receiver ended {r_end:?} after the abort");
        let Some(RecvError::PeerAborted(a)) = r.take_error() else { panic!("seed {seed}: not aborted") };
        assert_eq!(a.reason, AbortReason::FileChanged);
        assert!(r.stats().bytes_done < 4 << 20);
    }
}

/// A peer that predates ABORT sees an unknown type: it ignores it and,
/// hearing nothing more, ends on its idle timeout as before.
#[test]
fn a_peer_that_ignores_abort_ends_on_its_idle_timeout() {
    let t0 = Instant::now();
    let cfg = Config { idle_timeout: Duration::from_secs(2), ..Config::default() };
    let mut r = Receiver::new(cfg, 0, Some(10_000), t0);
    let mut sink: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut d = Vec::new();
    assert!(r.poll_transmit(t0, &mut out));
    Frame::Challenge { cookie: 1, size: 10_000 }.encode(&mut d);
    r.handle_datagram(t0, &d, &mut sink);
    // The ABORT as an older receiver reads it: a type it does not know.
    Frame::Abort { cookie: 1, reason: AbortReason::ServerShutdown, text: "" }.encode(&mut d);
    d[0] = 0xCA;
    let n = d.len() - CHECK_LEN;
    let c = crc32c::crc32c(&d[..n]);
    d.truncate(n);
    d.extend_from_slice(&c.to_be_bytes());
    r.handle_datagram(t0, &d, &mut sink);
    assert!(!r.is_finished());
    let mut now = t0;
    while !r.is_finished() {
        while r.poll_transmit(now, &mut out) {}
        now = r.poll_timeout().unwrap().max(now);
        r.handle_timeout(now);
    }
    assert!(matches!(r.take_error(), Some(RecvError::Timeout(_))));
    assert_eq!(now - t0, Duration::from_secs(2));
}
