//! Deterministic simulation of fast-mode transfers: virtual clock, seeded
//! impairments, exact bytes, termination. A failure prints its seed.

use std::time::Duration;

use chatctl::rdt::cc::Algorithm;
use chatctl::rdt::fast::sender::State;
use chatctl::rdt::fast::{Config, Frame};
use chatctl::rdt::sim::{Aim, LinkConfig, Outcome, transfer};
use common::{data, link};

use crate::common;

/// Runs one case and checks the invariants: exact bytes, verified, both sides ended.
fn check(name: &str, cfg: &Config, len: usize, resume: usize, fwd: LinkConfig, back: LinkConfig, seed: u64) -> Outcome {
    let file = data(len, seed);
    let o = transfer(cfg, &file, resume, fwd, back, seed, Duration::from_secs(600));
    let ctx = format!("case {name} seed {seed} len {len} cc {}: {:?} {:?}", cfg.cc, o.sender_state, o.receiver_error);
    assert!(!o.stuck, "simulation livelocked: {ctx}");
    assert!(o.verified, "not verified: {ctx}");
    assert!(o.received == file, "bytes differ: {ctx}");
    assert!(matches!(o.sender_state, Some(State::Done { .. })), "sender did not end: {ctx}");
    o
}

fn cfg(cc: Algorithm) -> Config {
    Config { cc, ..Config::default() }
}

#[test]
fn clean_path_all_sizes() {
    for cc in [Algorithm::NewReno, Algorithm::Cubic] {
        for (i, len) in [0, 1, 1399, 1423, 1424, 1425, 100_000, 2_000_000].into_iter().enumerate() {
            let o = check("clean", &cfg(cc), len, 0, link(10, 0.0), link(10, 0.0), i as u64);
            assert_eq!(o.stats.bytes_retransmitted, 0, "len {len}");
            assert!(o.stats.bytes_sent == len as u64, "sent {} of {len}", o.stats.bytes_sent);
        }
    }
}

#[test]
fn random_loss_up_to_30_percent() {
    for seed in 0..12u64 {
        let loss = [0.01, 0.05, 0.1, 0.2, 0.3][seed as usize % 5];
        let cc = if seed % 2 == 0 { Algorithm::NewReno } else { Algorithm::Cubic };
        let len = 50_000 + (seed as usize * 37_001) % 400_000;
        check("loss", &cfg(cc), len, 0, link(20, loss), link(20, loss), seed);
    }
}

#[test]
fn bursts_reordering_duplication_corruption_jitter() {
    for seed in 100..110u64 {
        let l = LinkConfig {
            delay: Duration::from_millis(5 + seed % 7 * 20),
            jitter: Duration::from_millis(seed % 5),
            loss: 0.03,
            burst: 0.5,
            reorder: 0.1,
            duplicate: 0.05,
            corrupt: 0.02,
            ..Default::default()
        };
        check("mixed", &cfg(Algorithm::Cubic), 300_000, 0, l.clone(), l, seed);
    }
}

#[test]
fn delay_from_0_to_300_ms_and_rate_limits() {
    for (seed, delay) in [(1u64, 0u64), (2, 1), (3, 50), (4, 150)] {
        let l = LinkConfig {
            delay: Duration::from_millis(delay),
            rate_bps: Some(20_000_000),
            queue_bytes: 200_000,
            ..Default::default()
        };
        let o = check("rate", &cfg(Algorithm::Cubic), 2_000_000, 0, l.clone(), l, seed);
        // Goodput within sight of the 20 Mbit/s limit once the pipe is full.
        let secs = o.elapsed.as_secs_f64();
        assert!(secs < 2.0 + 4.0 * delay as f64 / 1000.0 * 10.0, "seed {seed} took {secs} s");
    }
}

#[test]
fn loss_of_the_last_packet_and_the_last_ack() {
    // Lossy reverse path with a large share of drops at the end is hard to aim
    // at without hooks; cover it statistically with small files under heavy
    // loss in one direction each, where the last packet or ACK is often lost.
    for seed in 200..240u64 {
        let len = 1 + (seed as usize * 997) % 5000;
        check("fwd-loss", &cfg(Algorithm::NewReno), len, 0, link(30, 0.4), link(30, 0.0), seed);
        check("back-loss", &cfg(Algorithm::NewReno), len, 0, link(30, 0.0), link(30, 0.4), seed);
    }
}

#[test]
fn resume_sends_only_the_rest() {
    let len = 1_000_000;
    let o = check("resume", &cfg(Algorithm::Cubic), len, 600_000, link(10, 0.0), link(10, 0.0), 7);
    assert_eq!(o.stats.bytes_sent, 400_000);
}

#[test]
fn larger_file_at_2_percent_loss_and_100_ms() {
    let o = check("big", &cfg(Algorithm::Cubic), 20_000_000, 0, link(50, 0.02), link(50, 0.02), 42);
    assert!(o.stats.bytes_retransmitted < 2_000_000, "retransmitted {}", o.stats.bytes_retransmitted);
}

const AIM_LEN: usize = 10_000;

fn is_last_data(d: &[u8]) -> bool {
    matches!(Frame::decode(d), Ok(Frame::Data { offset, payload, .. }) if offset as usize + payload.len() == AIM_LEN)
}
fn is_final_ack(d: &[u8]) -> bool {
    matches!(Frame::decode(d), Ok(Frame::Ack { ranges, .. }) if ranges.len() == 1 && ranges[0] == (0..AIM_LEN as u64))
}
fn is_done(d: &[u8]) -> bool {
    matches!(Frame::decode(d), Ok(Frame::Done { .. }))
}
fn is_done_ack(d: &[u8]) -> bool {
    matches!(Frame::decode(d), Ok(Frame::DoneAck { .. }))
}
fn is_handshake(d: &[u8]) -> bool {
    chatctl::rdt::fast::is_fast_hello(d)
        || matches!(Frame::decode(d), Ok(Frame::Challenge { .. } | Frame::Start { .. }))
}

#[test]
fn aimed_loss_of_the_last_data_ack_done_and_done_ack() {
    type Drop = Option<(Aim, u32)>;
    let cases: [(&str, Drop, Drop); 6] = [
        ("last DATA x3", Some((is_last_data, 3)), None),
        ("final ACK x3", None, Some((is_final_ack, 3))),
        ("DONE x2", Some((is_done, 2)), None),
        ("DONE-ACK x2", None, Some((is_done_ack, 2))),
        ("every DONE-ACK", None, Some((is_done_ack, u32::MAX))),
        ("handshake x2 each way", Some((is_handshake, 2)), Some((is_handshake, 2))),
    ];
    for (seed, (name, f, b)) in cases.into_iter().enumerate() {
        let fwd = LinkConfig { drop_first: f, ..link(20, 0.0) };
        let back = LinkConfig { drop_first: b, ..link(20, 0.0) };
        let o = check(name, &cfg(Algorithm::NewReno), AIM_LEN, 0, fwd, back, seed as u64);
        assert!(o.dropped > 0, "{name}: nothing was dropped");
        let confirmed = matches!(o.sender_state, Some(State::Done { confirmed: true }));
        assert_eq!(confirmed, name != "every DONE-ACK", "{name}: {:?}", o.sender_state);
        assert!(o.sender_elapsed < Duration::from_secs(30), "{name}: sender took {:?}", o.sender_elapsed);
    }
}

/// A lost hello on a 20 ms path: with the RTT the client measured before
/// the transfer (`rtt_hint`) it is retried after 40 ms, not after 250 ms.
#[test]
fn a_lost_hello_is_retried_after_twice_the_known_rtt() {
    fn is_hello(d: &[u8]) -> bool {
        chatctl::rdt::fast::is_fast_hello(d)
    }
    let lose_hello = || LinkConfig { drop_first: Some((is_hello, 1)), ..link(10, 0.0) };
    let unknown = check("hello lost", &cfg(Algorithm::Bbr), AIM_LEN, 0, lose_hello(), lose_hello(), 60);
    let hinted = Config { rtt_hint: Some(Duration::from_millis(20)), ..cfg(Algorithm::Bbr) };
    let known = check("hello lost, RTT known", &hinted, AIM_LEN, 0, lose_hello(), lose_hello(), 60);
    assert_eq!((unknown.dropped, known.dropped), (1, 1));
    let saved = unknown.elapsed.saturating_sub(known.elapsed);
    assert!(
        saved >= Duration::from_millis(180) && known.elapsed < Duration::from_millis(150),
        "RTT unknown {:?}, known {:?}",
        unknown.elapsed,
        known.elapsed
    );
}

#[test]
fn a_300_ms_one_way_delay_with_loss() {
    for (seed, cc) in [(300u64, Algorithm::NewReno), (301, Algorithm::Cubic)] {
        check("300ms", &cfg(cc), 1_000_000, 0, link(300, 0.02), link(300, 0.02), seed);
    }
}

/// Hundreds of megabytes (300 MB) with large datagrams and 0.1% loss, with
/// the default controller: exact bytes, few retransmissions.
#[test]
fn hundreds_of_megabytes_lossy() {
    let len = 300 << 20;
    let c = Config { max_datagram: 65_000, ..Config::default() };
    let o = check("300MB", &c, len, 0, link(1, 0.001), link(1, 0.0), 100);
    assert!(o.stats.bytes_retransmitted < len as u64 / 50, "retransmitted {}", o.stats.bytes_retransmitted);
}

#[test]
fn two_cubic_flows_share_a_bottleneck_fairly() {
    fairness(400, Algorithm::Cubic);
}

#[test]
fn two_newreno_flows_share_a_bottleneck_fairly() {
    fairness(401, Algorithm::NewReno);
}

#[test]
fn two_bbr_flows_share_a_bottleneck_fairly() {
    fairness(900, Algorithm::Bbr);
}

fn fairness(seed: u64, cc: Algorithm) {
    use chatctl::rdt::sim::{Flow, shared_bottleneck};
    {
        let fwd = LinkConfig {
            delay: Duration::from_millis(10),
            rate_bps: Some(10_000_000),
            queue_bytes: 30_000,
            ..Default::default()
        };
        let flows = [
            Flow { start: Duration::ZERO, len: 40 << 20, cc: None },
            Flow { start: Duration::from_secs(1), len: 40 << 20, cc: None },
        ];
        let got = shared_bottleneck(
            &cfg(cc),
            &flows,
            fwd,
            link(10, 0.0),
            seed,
            Duration::from_secs(20),
            Duration::from_secs(6)..Duration::from_secs(20),
        );
        let (lo, hi) = (got[0].min(got[1]) as f64, got[0].max(got[1]) as f64);
        let total = (got[0] + got[1]) as f64;
        eprintln!("{cc}: {got:?}");
        assert!(lo >= 0.8 * hi, "seed {seed} cc {cc}: shares {got:?} differ by more than 20%");
        // And together they use the link (10 Mbit/s for 14 s = 17.5 MB).
        assert!(total > 0.8 * 17.5e6, "seed {seed} cc {cc}: only {total} bytes in 14 s");
    }
}

#[test]
fn path_mtu_probing_finds_the_largest_datagram_the_path_carries() {
    use chatctl::rdt::fast::{CHECK_LEN, DATA_HEADER};
    for (seed, mtu, want) in
        [(500u64, 1452usize, 1452usize), (501, 9000, 8972), (502, 20_000, 16_384), (503, 65_535, 65_000)]
    {
        let l = LinkConfig { mtu: Some(mtu), ..link(5, 0.0) };
        let o = check("pmtu", &cfg(Algorithm::Cubic), 5_000_000, 0, l.clone(), l, seed);
        assert_eq!(o.payload, (want - DATA_HEADER - CHECK_LEN) as u64, "seed {seed} mtu {mtu}");
        // A lost probe is not congestion: nothing but the probe is resent.
        assert!(o.stats.bytes_retransmitted <= 65_000, "seed {seed}: {}", o.stats.bytes_retransmitted);
    }
}
