//! The impairment model (`chatctl::rdt::sim::Link`) seen from outside: each
//! impairment is measured over many datagrams in virtual time and compared
//! with what its configuration asks for. Seeded, so every run is the same; a
//! failure names its seed.

use std::time::{Duration, Instant};

use chatctl::rdt::sim::{Link, LinkConfig};

const SEEDS: [u64; 4] = [1, 42, 0xdead_beef, 20261124];

/// A datagram of `len` bytes whose first 8 bytes are `n` (big-endian).
fn datagram(n: u64, len: usize) -> Vec<u8> {
    let mut d = vec![0xa5; len.max(8)];
    d[..8].copy_from_slice(&n.to_be_bytes());
    d
}

fn number(d: &[u8]) -> u64 {
    u64::from_be_bytes(d[..8].try_into().unwrap())
}

/// Offers `count` datagrams of `len` bytes, one every `gap`, and collects
/// every arrival as (arrival time, datagram), draining the link at the end.
fn run(link: &mut Link, t0: Instant, count: u64, len: usize, gap: Duration) -> Vec<(Instant, Vec<u8>)> {
    let mut got = Vec::new();
    let mut now = t0;
    for n in 0..count {
        now = t0 + gap * n as u32;
        while let Some(t) = link.next_arrival().filter(|&t| t <= now) {
            got.push((t, link.recv(t).unwrap()));
        }
        link.send(now, datagram(n, len));
    }
    while let Some(t) = link.next_arrival() {
        assert!(t >= now, "an arrival scheduled in the past");
        got.push((t, link.recv(t).unwrap()));
    }
    got
}

fn assert_near(what: &str, seed: u64, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "seed {seed}: {what} is {got:.4}, expected {want:.4} ± {tol:.4}");
}

#[test]
fn no_impairment_delivers_everything_in_order_after_the_delay() {
    let t0 = Instant::now();
    let delay = Duration::from_millis(25);
    let mut link = Link::new(LinkConfig { delay, ..Default::default() }, 7);
    let got = run(&mut link, t0, 1000, 100, Duration::from_micros(100));
    assert_eq!(got.len(), 1000);
    for (i, (t, d)) in got.iter().enumerate() {
        assert_eq!(number(d), i as u64);
        assert_eq!(*t, t0 + Duration::from_micros(100) * i as u32 + delay);
        assert_eq!(d[8..], vec![0xa5; 92][..]);
    }
    assert_eq!(link.dropped, 0);
}

#[test]
fn random_loss_rate_matches_the_configuration() {
    for &p in &[0.01, 0.02, 0.1, 0.3] {
        for seed in SEEDS {
            let n = 50_000;
            let mut link = Link::new(LinkConfig { loss: p, ..Default::default() }, seed);
            let got = run(&mut link, Instant::now(), n, 20, Duration::from_micros(10));
            let lost = n - got.len() as u64;
            assert_eq!(lost, link.dropped, "seed {seed}: dropped counter");
            // 5 standard deviations of a binomial proportion.
            let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
            assert_near(&format!("loss rate at p={p}"), seed, lost as f64 / n as f64, p, tol);
        }
    }
}

/// Mean length of runs of consecutive lost datagrams, and the loss rate.
fn loss_runs(link: &mut Link, n: u64) -> (f64, f64) {
    let got = run(link, Instant::now(), n, 16, Duration::from_micros(10));
    let mut arrived = vec![false; n as usize];
    for (_, d) in &got {
        arrived[number(d) as usize] = true;
    }
    let (mut runs, mut lost, mut prev_lost) = (0u64, 0u64, false);
    for &a in &arrived {
        if !a {
            lost += 1;
            if !prev_lost {
                runs += 1;
            }
        }
        prev_lost = !a;
    }
    (lost as f64 / runs.max(1) as f64, lost as f64 / n as f64)
}

#[test]
fn bursts_lengthen_loss_runs_as_a_gilbert_elliott_chain() {
    for seed in SEEDS {
        let n = 100_000;
        // Independent loss: runs average 1 / (1 - p).
        let mut plain = Link::new(LinkConfig { loss: 0.05, ..Default::default() }, seed);
        let (run_plain, _) = loss_runs(&mut plain, n);
        assert_near("mean loss run without bursts", seed, run_plain, 1.0 / 0.95, 0.03);
        // With bursts, after a loss the next is lost with probability b: runs
        // average 1 / (1 - b) and the stationary loss rate is p / (1 - b + p).
        let (p, b) = (0.05, 0.6);
        let mut bursty = Link::new(LinkConfig { loss: p, burst: b, ..Default::default() }, seed);
        let (run_bursty, rate) = loss_runs(&mut bursty, n);
        assert_near("mean loss run with bursts", seed, run_bursty, 1.0 / (1.0 - b), 0.15);
        assert_near("stationary loss rate with bursts", seed, rate, p / (1.0 - b + p), 0.01);
    }
}

#[test]
fn rate_limit_spaces_departures_and_caps_throughput_in_virtual_time() {
    let rate = 10_000_000; // 10 Mbit/s: a 1250-byte datagram every 1 ms.
    let cfg = LinkConfig {
        rate_bps: Some(rate),
        queue_bytes: 10 << 20,
        delay: Duration::from_millis(5),
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut link = Link::new(cfg, 3);
    // Offered at twice the rate; the queue is large enough to hold it all.
    let got = run(&mut link, t0, 2000, 1250, Duration::from_micros(500));
    assert_eq!(got.len(), 2000, "nothing dropped with a large queue");
    for w in got.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= Duration::from_micros(999), "departures {gap:?} apart at 10 Mbit/s");
    }
    let span = (got.last().unwrap().0 - got[0].0).as_secs_f64();
    let bps = 1999.0 * 1250.0 * 8.0 / span;
    assert_near("throughput (Mbit/s)", 3, bps / 1e6, rate as f64 / 1e6, 0.05);
    // The first datagram left at once: only the propagation delay and its serialisation.
    assert_eq!(got[0].0, t0 + Duration::from_millis(5) + Duration::from_millis(1));
}

#[test]
fn rate_limit_below_offered_load_drops_at_the_tail_of_a_bounded_queue() {
    let rate = 8_000_000; // 1 MB/s
    let queue = 50_000;
    let cfg = LinkConfig { rate_bps: Some(rate), queue_bytes: queue, ..Default::default() };
    let t0 = Instant::now();
    let mut link = Link::new(cfg, 11);
    // 1000 datagrams of 1000 bytes offered at the same instant.
    let mut got = Vec::new();
    for n in 0..1000 {
        link.send(t0, datagram(n, 1000));
    }
    while let Some(t) = link.next_arrival() {
        got.push((t, link.recv(t).unwrap()));
    }
    // Tail drop: the first ones (what fits in the queue, plus the one on the wire) pass.
    let passed = got.len() as u64;
    assert!((queue / 1000..=queue / 1000 + 2).contains(&passed), "{passed} datagrams passed a {queue}-byte queue");
    for (i, (_, d)) in got.iter().enumerate() {
        assert_eq!(number(d), i as u64, "the head of the burst passes, the tail is dropped");
    }
    assert_eq!(link.dropped, 1000 - passed);
    // The last one left after the queue drained at the configured rate.
    let last = got.last().unwrap().0 - t0;
    let want = Duration::from_secs_f64(passed as f64 * 1000.0 * 8.0 / rate as f64);
    assert!(last.abs_diff(want) < Duration::from_micros(10), "last arrival {last:?}, expected {want:?}");
}

#[test]
fn queue_bound_holds_under_sustained_overload() {
    let rate = 20_000_000;
    let queue = 30_000;
    let cfg = LinkConfig { rate_bps: Some(rate), queue_bytes: queue, ..Default::default() };
    let t0 = Instant::now();
    let mut link = Link::new(cfg, 5);
    // Offered at 4× the rate for a while: the backlog (bytes sent into the
    // link but not yet arrived) never exceeds the queue plus one datagram.
    let gap = Duration::from_micros(100); // 1200 B / 100 µs = 96 Mbit/s
    let mut in_flight: u64 = 0;
    let mut max_in_flight = 0;
    let mut delivered = 0u64;
    for n in 0..20_000u64 {
        let now = t0 + gap * n as u32;
        while let Some(t) = link.next_arrival().filter(|&t| t <= now) {
            in_flight -= link.recv(t).unwrap().len() as u64;
            delivered += 1;
        }
        let before = link.dropped;
        link.send(now, datagram(n, 1200));
        if link.dropped == before {
            in_flight += 1200;
        }
        max_in_flight = max_in_flight.max(in_flight);
    }
    assert!(max_in_flight <= queue + 2 * 1200, "backlog reached {max_in_flight} bytes with a {queue}-byte queue");
    // Throughput is the bottleneck's: about a quarter of what was offered.
    let span = (gap * 20_000).as_secs_f64();
    let bps = delivered as f64 * 1200.0 * 8.0 / span;
    assert_near("goodput under overload (Mbit/s)", 5, bps / 1e6, rate as f64 / 1e6, 0.5);
}

#[test]
fn jitter_stays_within_its_bound_and_averages_half_of_it() {
    for seed in SEEDS {
        let delay = Duration::from_millis(25);
        let jitter = Duration::from_millis(10);
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig { delay, jitter, ..Default::default() }, seed);
        let gap = Duration::from_micros(200);
        let got = run(&mut link, t0, 10_000, 64, gap);
        assert_eq!(got.len(), 10_000);
        let mut sum = 0.0;
        for (t, d) in &got {
            let sent = t0 + gap * number(d) as u32;
            let extra = *t - sent - delay;
            assert!(extra < jitter, "seed {seed}: {extra:?} of jitter beyond {jitter:?}");
            sum += extra.as_secs_f64();
        }
        assert_near("mean jitter (ms)", seed, sum / got.len() as f64 * 1e3, 5.0, 0.2);
    }
}

/// Fraction of arrivals that come after a higher-numbered datagram.
fn late_fraction(got: &[(Instant, Vec<u8>)]) -> f64 {
    let mut highest = None;
    let mut late = 0;
    for (_, d) in got {
        let n = number(d);
        if highest.is_some_and(|h| n < h) {
            late += 1;
        }
        highest = highest.max(Some(n));
    }
    late as f64 / got.len() as f64
}

#[test]
fn reordering_holds_back_the_configured_share() {
    for seed in SEEDS {
        let cfg = LinkConfig { delay: Duration::from_millis(20), reorder: 0.1, ..Default::default() };
        let mut link = Link::new(cfg, seed);
        // 1 ms apart: a datagram held back 11 ms is overtaken by about ten.
        let got = run(&mut link, Instant::now(), 20_000, 64, Duration::from_millis(1));
        assert_eq!(got.len(), 20_000, "reordering loses nothing");
        assert_near("share of late datagrams", seed, late_fraction(&got), 0.1, 0.012);
        let mut numbers: Vec<u64> = got.iter().map(|(_, d)| number(d)).collect();
        numbers.sort_unstable();
        assert!(numbers.iter().enumerate().all(|(i, &n)| n == i as u64), "seed {seed}: every datagram exactly once");
    }
    let cfg = LinkConfig { delay: Duration::from_millis(20), ..Default::default() };
    let got = run(&mut Link::new(cfg, 1), Instant::now(), 5_000, 64, Duration::from_millis(1));
    assert_eq!(late_fraction(&got), 0.0, "no reordering unless asked");
}

#[test]
fn duplication_rate_matches_and_copies_are_identical() {
    for seed in SEEDS {
        let p = 0.05;
        let n = 40_000;
        let mut link = Link::new(LinkConfig { duplicate: p, ..Default::default() }, seed);
        let got = run(&mut link, Instant::now(), n, 32, Duration::from_micros(50));
        let mut seen = vec![0u32; n as usize];
        for (_, d) in &got {
            assert_eq!(d, &datagram(number(d), 32), "seed {seed}: a duplicate differs");
            seen[number(d) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c == 1 || c == 2), "seed {seed}: each datagram once or twice");
        let dup = (got.len() as u64 - n) as f64 / n as f64;
        assert_near("duplication rate", seed, dup, p, 5.0 * (p * (1.0 - p) / n as f64).sqrt());
    }
}

#[test]
fn corruption_flips_exactly_one_bit_in_the_configured_share() {
    for seed in SEEDS {
        let p = 0.03;
        let n = 40_000u64;
        let len = 200;
        let mut link = Link::new(LinkConfig { corrupt: p, ..Default::default() }, seed);
        // No delay variation: arrivals keep the order, so the i-th arrival is datagram i.
        let got = run(&mut link, Instant::now(), n, len, Duration::from_micros(50));
        assert_eq!(got.len() as u64, n);
        let mut corrupted = 0;
        for (i, (_, d)) in got.iter().enumerate() {
            let want = datagram(i as u64, len);
            assert_eq!(d.len(), len, "corruption keeps the length");
            let bits: u32 = d.iter().zip(&want).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert!(bits <= 1, "seed {seed}: {bits} bits flipped in one datagram");
            corrupted += u64::from(bits);
        }
        assert_near("corruption rate", seed, corrupted as f64 / n as f64, p, 5.0 * (p * (1.0 - p) / n as f64).sqrt());
    }
}

#[test]
fn same_seed_same_fate_other_seed_other_fate() {
    let cfg = LinkConfig {
        loss: 0.05,
        burst: 0.3,
        jitter: Duration::from_millis(3),
        reorder: 0.05,
        duplicate: 0.02,
        corrupt: 0.02,
        delay: Duration::from_millis(10),
        ..Default::default()
    };
    let t0 = Instant::now();
    let fate = |seed| run(&mut Link::new(cfg.clone(), seed), t0, 5000, 40, Duration::from_micros(300));
    assert_eq!(fate(9), fate(9));
    assert_ne!(fate(9), fate(10));
}
