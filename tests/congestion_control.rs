//! BBR in the deterministic simulation (virtual clock, seeded impairments):
//! exact bytes and termination under loss, goodput on a long lossy path,
//! and fairness between two BBR flows. A failure prints its seed.

use std::time::Duration;

use chatctl::rdt::cc::Algorithm;
use chatctl::rdt::fast::Config;
use chatctl::rdt::fast::sender::State;
use chatctl::rdt::sim::{Flow, LinkConfig, shared_bottleneck, transfer};
use common::{data, link};

use crate::common;

fn cfg() -> Config {
    Config { cc: Algorithm::Bbr, ..Config::default() }
}

#[test]
fn exact_bytes_and_termination_from_0_to_10_percent_loss() {
    for (i, loss) in [0.0, 0.01, 0.02, 0.05, 0.1].into_iter().enumerate() {
        for k in 0..3u64 {
            let seed = 700 + 10 * i as u64 + k;
            let len = [0, 1, 1423, 300_000, 2_000_000][(seed as usize) % 5] + k as usize * 7919;
            let fwd = LinkConfig { rate_bps: Some(50_000_000), queue_bytes: 200_000, ..link(10 + 20 * k, loss) };
            let file = data(len, seed);
            let o = transfer(&cfg(), &file, 0, fwd, link(10 + 20 * k, loss), seed, Duration::from_secs(600));
            let ctx = format!("seed {seed} loss {loss} len {len}: {:?} {:?}", o.sender_state, o.receiver_error);
            assert!(!o.stuck, "livelock: {ctx}");
            assert!(o.verified, "not verified: {ctx}");
            assert!(o.received == file, "bytes differ: {ctx}");
            assert!(matches!(o.sender_state, Some(State::Done { .. })), "sender did not end: {ctx}");
            if loss == 0.0 {
                assert_eq!(o.stats.bytes_retransmitted, 0, "retransmitted on a clean path: {ctx}");
            }
        }
    }
}

const RATE: u64 = 200_000_000;
const LOSS: f64 = 0.01;

/// Steady-state goodput of one flow (bytes per second over 1.2..3 s, after
/// startup; kept short, 50,000 datagrams take seconds in a debug build) on a
/// 200 Mbit/s, 50 ms RTT path with 1% random loss each way and a queue of
/// one bandwidth-delay product, with 1452-byte datagrams.
fn wan_goodput(cc: Algorithm, seed: u64) -> f64 {
    let bdp = RATE / 8 / 20;
    let fwd = LinkConfig { rate_bps: Some(RATE), queue_bytes: bdp, ..link(25, LOSS) };
    let flows = [Flow { start: Duration::ZERO, len: 80 << 20, cc: None }];
    // 1452-byte datagrams and no path-MTU probing: without `probe: false`
    // the simulated path (no MTU) would let the sender probe its way up to
    // 65,000-byte datagrams, 45 times fewer per second, which hid the
    // min-RTT and ACK-range faults that held BBR to 1 Mbit/s on this path.
    let c = Config { cc, probe: false, max_datagram: 1452, ..Config::default() };
    let window = Duration::from_millis(1200)..Duration::from_millis(3000);
    let got = shared_bottleneck(&c, &flows, fwd, link(25, LOSS), seed, Duration::from_millis(3100), window.clone());
    got[0] as f64 / (window.end - window.start).as_secs_f64()
}

#[test]
fn goodput_at_1_percent_loss_50_ms_200_mbit() {
    let seed = 800;
    let ceiling = (1.0 - LOSS) * RATE as f64 / 8.0;
    let bbr = wan_goodput(Algorithm::Bbr, seed);
    let cubic = wan_goodput(Algorithm::Cubic, seed);
    eprintln!(
        "1% loss, 50 ms, 200 Mbit/s, 1452 B: BBR {:.1} Mbit/s ({:.0}% of (1 - loss) x rate), CUBIC {:.1} Mbit/s ({:.0}%)",
        bbr * 8e-6,
        100.0 * bbr / ceiling,
        cubic * 8e-6,
        100.0 * cubic / ceiling
    );
    assert!(bbr >= 0.9 * ceiling, "seed {seed}: BBR {:.1} Mbit/s < 90% of {:.1}", bbr * 8e-6, ceiling * 8e-6);
    assert!(bbr > 2.0 * cubic, "seed {seed}: BBR {bbr} does not beat CUBIC {cubic}");
}

/// A path of `mbit` Mbit/s and `rtt_ms` with a queue of two BDP (as the WAN
/// emulator of `benches/wan.sh` has) and `loss` random loss each way.
fn queued_path(mbit: u64, rtt_ms: u64, loss: f64) -> (LinkConfig, LinkConfig) {
    let rate = mbit * 1_000_000;
    let bdp = rate / 8 * rtt_ms / 1000;
    let fwd = LinkConfig { rate_bps: Some(rate), queue_bytes: 2 * bdp, ..link(rtt_ms / 2, loss) };
    (fwd, link(rtt_ms / 2, loss))
}

fn wan_cfg() -> Config {
    Config { probe: false, max_datagram: 1452, ..cfg() }
}

#[test]
fn startup_fills_the_pipe_without_flooding_the_queue() {
    // 100 Mbit/s, 40 ms, a queue of one BDP, 1% loss: a 20 MB download.
    let seed = 810;
    let (mut fwd, back) = queued_path(100, 40, 0.01);
    fwd.queue_bytes /= 2;
    let file = data(20 << 20, seed);
    let o = transfer(&wan_cfg(), &file, 0, fwd, back, seed, Duration::from_secs(60));
    assert!(o.verified && o.received == file, "seed {seed}: {:?}", o.receiver_error);
    let ideal = file.len() as f64 / (0.99 * 100e6 / 8.0);
    let secs = o.elapsed.as_secs_f64();
    eprintln!("startup: {secs:.2} s (ideal {ideal:.2} s), queue drops {}", o.queue_drops);
    // Start-up overshoot is what overflows the queue on this path.
    assert!(o.queue_drops < 300, "seed {seed}: {} queue drops", o.queue_drops);
    assert!(secs < ideal + 0.5, "seed {seed}: {secs:.2} s against {ideal:.2} s");
}

/// Virtual time from the receiver's hello until the sender has `n` bytes
/// of a `len`-byte file acknowledged, on a path of `mbit` Mbit/s and
/// `rtt_ms` with a two-BDP queue and `loss` each way.
fn time_to_deliver(n: u64, len: usize, mbit: u64, rtt_ms: u64, loss: f64, seed: u64) -> Duration {
    use chatctl::rdt::fast::{self, receiver::Receiver, sender::Sender};
    use chatctl::rdt::sim::{Accepting, Attached, Link, run};
    use std::time::Instant;
    let (fwd, back) = queued_path(mbit, rtt_ms, loss);
    let (mut fwd, mut back) = (Link::new(fwd, seed ^ 0xf0), Link::new(back, seed ^ 0xba));
    let file = data(len, seed);
    let cfg = wan_cfg();
    let t0 = Instant::now();
    let receiver = Attached::new(Receiver::new(cfg.clone(), 0, Some(len as u64), t0), Vec::<u8>::new());
    let sender = Accepting::new(|now, d: &[u8]| {
        fast::is_fast_hello(d).then(|| Attached::new(Sender::new(cfg.clone(), len as u64, d, now), &file[..]))
    });
    let mut flows = [(sender, receiver)];
    let mut at = None;
    run(&mut flows, &mut fwd, &mut back, t0, Duration::from_secs(30), Duration::ZERO, |now, flows| {
        let acked = flows[0].0.party.as_ref().map_or(0, |s| s.endpoint.stats().bytes_done);
        if acked >= n {
            at = Some(now - t0);
        }
        at.is_none()
    });
    at.unwrap_or_else(|| panic!("seed {seed}: {n} bytes not delivered in 30 s"))
}

#[test]
fn startup_reaches_the_rate_of_a_long_path_within_a_few_round_trips() {
    // 200 Mbit/s, 50 ms, 1% loss each way (the WAN bench's slower path):
    // the first 16 MiB against the time the limit (1 - loss) x rate takes
    // for them. The handshake costs two round trips (hello, CHALLENGE,
    // START, first DATA: 0.1 s); the rest is the ramp (0.47 s over the
    // ideal with ten datagrams to start from and the first samples
    // lowering startup's pacing rate).
    let n = 16 << 20;
    let ideal = n as f64 / (0.99 * 200e6 / 8.0);
    for seed in [840, 841, 842] {
        let secs = time_to_deliver(n, 24 << 20, 200, 50, 0.01, seed).as_secs_f64();
        eprintln!("seed {seed}: 16 MiB in {secs:.3} s (ideal {ideal:.3} s)");
        assert!(secs < ideal + 0.35, "seed {seed}: 16 MiB in {secs:.3} s against {ideal:.3} s");
    }
}

/// Bytes each of two flows (controllers `a` and `b`, started together)
/// got over 4..24 s on a 20 Mbit/s, 20 ms path with a two-BDP queue.
fn shares(a: Algorithm, b: Algorithm, loss: f64, seed: u64) -> [f64; 2] {
    let (fwd, back) = queued_path(20, 20, loss);
    let flows = [
        Flow { start: Duration::ZERO, len: 200 << 20, cc: Some(a) },
        Flow { start: Duration::from_millis(10), len: 200 << 20, cc: Some(b) },
    ];
    let window = Duration::from_secs(4)..Duration::from_secs(24);
    let got = shared_bottleneck(&wan_cfg(), &flows, fwd, back, seed, window.end, window);
    let total = (got[0] + got[1]) as f64;
    eprintln!("{a} beside {b}, loss {loss}: {got:?}");
    assert!(total > 0.8 * 20e6 / 8.0 * 20.0, "seed {seed}: together only {total} bytes in 20 s");
    [got[0] as f64 / total, got[1] as f64 / total]
}

#[test]
fn bbr_beside_cubic_leaves_cubic_its_share() {
    for seed in [820, 821] {
        let [bbr, cubic] = shares(Algorithm::Bbr, Algorithm::Cubic, 0.0, seed);
        assert!(cubic >= 0.4, "seed {seed}: CUBIC got {:.0}% beside BBR", 100.0 * cubic);
        assert!(bbr >= 0.3, "seed {seed}: BBR got {:.0}% beside CUBIC", 100.0 * bbr);
    }
}

#[test]
fn bbr_beside_newreno_leaves_newreno_its_share() {
    let seed = 822;
    let [bbr, reno] = shares(Algorithm::Bbr, Algorithm::NewReno, 0.0, seed);
    assert!(reno >= 0.38, "seed {seed}: NewReno got {:.0}% beside BBR", 100.0 * reno);
    assert!(bbr >= 0.3, "seed {seed}: BBR got {:.0}% beside NewReno", 100.0 * bbr);
}

#[test]
fn two_bbr_flows_share_a_lossy_queued_path() {
    for (seed, loss) in [(830, 0.0), (831, 0.01)] {
        let [a, b] = shares(Algorithm::Bbr, Algorithm::Bbr, loss, seed);
        // Without random loss the goal; with 1% the shares wander
        // more (50-60% for the larger over seeds 831-833).
        let fair = if loss == 0.0 { 0.4..=0.6 } else { 0.35..=0.65 };
        assert!(fair.contains(&a), "seed {seed} loss {loss}: shares {a:.2} / {b:.2}");
    }
}
