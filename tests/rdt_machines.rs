//! The fast-mode machines driven by hand: address validation (the
//! anti-amplification limit), cookies, and the final hash check.

use std::time::{Duration, Instant};

use chatctl::rdt::fast::receiver::{Handled, Receiver, RecvError};
use chatctl::rdt::fast::sender::{SendError, Sender, State};
use chatctl::rdt::fast::{Config, Frame, encode_hello};

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
    while !s.is_finished() {
        while s.poll_transmit(now, &mut src, &mut out) {
            sent += out.len();
        }
        now = s.poll_timeout().expect("an unfinished sender has a timer").max(now);
        s.handle_timeout(now);
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
    s.handle(t0, &start);
    assert_eq!(s.state(), State::Validating);
    assert!(!s.poll_transmit(t0, &mut src, &mut out));
    Frame::Start { cookie, resume: 0, max_data: 1 << 40 }.encode(&mut start);
    s.handle(t0, &start);
    assert_eq!(s.state(), State::Sending);
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
    assert_eq!(r.handle(t0, &d, &mut sink), Handled::Fast);
    Frame::Data { pn: 0, offset: 0, payload: b"abc" }.encode(&mut d);
    r.handle(t0, &d, &mut sink);
    Frame::Done { size: 3, hash: *blake3::hash(b"abd").as_bytes() }.encode(&mut d);
    r.handle(t0, &d, &mut sink);
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
    s.handle(t0, &d);
    assert_eq!(s.state(), State::Closing);
    Frame::DoneAck { ok: false }.encode(&mut d);
    s.handle(t0, &d);
    assert!(matches!(s.take_error(), Some(SendError::HashMismatch)));
}
