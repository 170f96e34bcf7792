//! Seeded simulator fingerprints: one hash per scenario over everything a
//! transfer shows (every datagram each way with its virtual send time, the
//! machines' final states, figures, events and errors, the bytes written).
//! A refactor of the machines that keeps behaviour keeps every line of
//! `cargo test --test tests simulator_fingerprints -- --ignored --nocapture`
//! identical; compare the output before and after.

use std::time::{Duration, Instant};

use chatctl::rdt::classic;
use chatctl::rdt::fast::{self, AbortReason, Config};
use chatctl::rdt::sim::{self, Accepting, Attached, Joining, Link, LinkConfig, Wire};
use common::data;
use xxhash_rust::xxh3::Xxh3;

use crate::common;

/// A [`Link`] that hashes every datagram offered to it, with its virtual time.
struct Recorder {
    link: Link,
    t0: Instant,
    hash: Xxh3,
    count: u64,
}

impl Recorder {
    fn new(cfg: LinkConfig, seed: u64, t0: Instant) -> Self {
        Self { link: Link::new(cfg, seed), t0, hash: Xxh3::new(), count: 0 }
    }
}

impl Wire for Recorder {
    fn send(&mut self, now: Instant, tag: usize, d: Vec<u8>) {
        let t = (now - self.t0).as_nanos() as u64;
        self.hash.update(&t.to_le_bytes());
        self.hash.update(&(tag as u64).to_le_bytes());
        self.hash.update(&(d.len() as u64).to_le_bytes());
        self.hash.update(&d);
        self.count += 1;
        self.link.send_tagged(now, tag, d);
    }
    fn recv(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        self.link.recv_tagged(now)
    }
    fn next_arrival(&self) -> Option<Instant> {
        self.link.next_arrival()
    }
}

/// The hash of a scenario's datagrams (both directions) and its summary.
fn fingerprint(fwd: &Recorder, back: &Recorder, end: &sim::Run, t0: Instant, summary: &str) -> String {
    let mut h = Xxh3::new();
    h.update(&fwd.hash.digest128().to_le_bytes());
    h.update(&back.hash.digest128().to_le_bytes());
    h.update(&((end.now - t0).as_nanos() as u64).to_le_bytes());
    h.update(summary.as_bytes());
    format!("{:032x} fwd {} back {} end {:?} stuck {}", h.digest128(), fwd.count, back.count, end.now - t0, end.stuck)
}

fn lossy() -> LinkConfig {
    LinkConfig { loss: 0.05, burst: 0.3, delay: Duration::from_millis(20), ..LinkConfig::default() }
}

fn reordering() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(15),
        jitter: Duration::from_millis(3),
        reorder: 0.1,
        duplicate: 0.03,
        corrupt: 0.01,
        loss: 0.01,
        ..LinkConfig::default()
    }
}

fn clean() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        rate_bps: Some(50_000_000),
        queue_bytes: 300_000,
        ..LinkConfig::default()
    }
}

/// What a fast abort does mid-transfer.
#[derive(Clone, Copy)]
enum Abort {
    None,
    Receiver,
    Sender,
}

/// A fast flow: the sender made on the hello (by `F`) and the receiver.
type FastFlow<'a, F> =
    (Accepting<Attached<fast::sender::Sender, &'a [u8]>, F>, Attached<fast::receiver::Receiver, Vec<u8>>);

/// One fast transfer; returns its fingerprint line.
fn fast_case(name: &str, cfg: Config, len: usize, resume: usize, path: LinkConfig, seed: u64, abort: Abort) -> String {
    let t0 = Instant::now();
    let file = data(len, seed);
    let mut fwd = Recorder::new(path.clone(), seed ^ 0xf0, t0);
    let mut back = Recorder::new(path, seed ^ 0xba, t0);
    let cfg = Config { seed, ..cfg };
    let receiver = Attached::new(
        fast::receiver::Receiver::new(cfg.clone(), resume as u64, Some(len as u64), t0),
        file[..resume].to_vec(),
    );
    let sender = Accepting::new(|now, d: &[u8]| {
        fast::is_fast_hello(d).then(|| {
            let mut s = fast::sender::Sender::new(cfg.clone(), len as u64, d, now);
            s.record_events();
            Attached::new(s, &file[..])
        })
    });
    let mut flows = [(sender, receiver)];
    let limit = Duration::from_secs(600);
    let done = |f: &[FastFlow<'_, _>]| {
        let s = f[0].0.party.as_ref().is_some_and(|p| p.endpoint.is_finished());
        f[0].1.endpoint.is_finished() && (s || f[0].0.party.is_none())
    };
    let mut events = Vec::new();
    let mut end = if let Abort::None = abort {
        sim::run(&mut flows, &mut fwd, &mut back, t0, limit, Duration::ZERO, |_, f| !done(f))
    } else {
        let at = t0 + Duration::from_millis(300);
        sim::run(&mut flows, &mut fwd, &mut back, t0, limit, Duration::ZERO, |now, _| now < at)
    };
    if !matches!(abort, Abort::None) {
        let (s, r) = &mut flows[0];
        let s = &mut s.party.as_mut().expect("the sender started").endpoint;
        match abort {
            Abort::Receiver => r.endpoint.abort(AbortReason::Cancelled, "stop"),
            Abort::Sender => s.abort(AbortReason::FileChanged, "changed"),
            Abort::None => {}
        }
        end = sim::run(&mut flows, &mut fwd, &mut back, end.now, limit, Duration::ZERO, |_, f| !done(f));
    }
    let [(s, mut r)] = flows;
    let mut s = s.party.map(|p| p.endpoint);
    if let Some(s) = s.as_mut() {
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
    }
    let summary = format!(
        "sender {:?} {:?} {:?} {:?} {:?} {:?} events {:?} receiver {:?} {:?} {:?} {} {:?} bytes {:032x}",
        s.as_ref().map(|s| s.state()),
        s.as_ref().map(|s| s.stats()),
        s.as_ref().map(|s| s.sender_stats()),
        s.as_ref().map(|s| s.payload()),
        s.as_ref().map(|s| s.max_datagram()),
        s.as_mut().and_then(|s| s.take_error()).map(|e| e.to_string()),
        events,
        r.endpoint.state(),
        r.endpoint.stats(),
        r.endpoint.size(),
        r.endpoint.is_verified(),
        r.endpoint.take_error().map(|e| e.to_string()),
        xxhash_rust::xxh3::xxh3_128(&r.store),
    );
    format!("{name:<22} {}", fingerprint(&fwd, &back, &end, t0, &summary))
}

/// One classic transfer; returns its fingerprint line.
fn classic_case(name: &str, len: usize, window: u8, path: LinkConfig, seed: u64) -> String {
    let t0 = Instant::now();
    let file = data(len, seed);
    let mut fwd = Recorder::new(path.clone(), seed ^ 0xf0, t0);
    let mut back = Recorder::new(path, seed ^ 0xba, t0);
    let sender = Accepting::new(|_, hello: &[u8]| {
        let w = classic::parse_window(hello)?;
        Some(Attached::new(classic::sender::Sender::new(len as u64, w), &file[..]))
    });
    let receiver = Joining::new(t0, |_| Attached::new(classic::receiver::Receiver::new(window), Vec::<u8>::new()));
    let mut flows = [(sender, receiver)];
    let end = sim::run(&mut flows, &mut fwd, &mut back, t0, Duration::from_secs(600), Duration::ZERO, |_, f| {
        let s = f[0].0.party.as_ref().is_some_and(|p| p.endpoint.is_finished());
        let r = f[0].1.party.as_ref().is_some_and(|p| p.endpoint.is_complete());
        !(s && r)
    });
    let [(s, r)] = flows;
    let mut s = s.party.map(|p| p.endpoint);
    let mut r = r.party.expect("the receiver started");
    let summary = format!(
        "sender {:?} {:?} {:?} {:?} {:?} receiver {} {} {:?} bytes {:032x}",
        s.as_ref().map(|s| s.outcome()),
        s.as_ref().map(|s| s.retransmits()),
        s.as_ref().map(|s| s.rto()),
        s.as_ref().map(|s| s.acked_bytes()),
        s.as_mut().and_then(|s| s.take_error()).map(|e| e.to_string()),
        r.endpoint.is_complete(),
        r.endpoint.delivered(),
        r.endpoint.take_error().map(|e| e.to_string()),
        xxhash_rust::xxh3::xxh3_128(&r.store),
    );
    format!("{name:<22} {}", fingerprint(&fwd, &back, &end, t0, &summary))
}

/// Prints one fingerprint per scenario.
#[test]
#[ignore = "prints fingerprints to compare by hand across a refactor"]
fn seeded_scenarios() {
    use chatctl::rdt::cc::Algorithm;
    let d = Config::default();
    let newreno = Config { cc: Algorithm::NewReno, ..Config::default() };
    let cubic = Config { cc: Algorithm::Cubic, ..Config::default() };
    let lines = [
        fast_case("fast clean", d.clone(), 3_000_000, 0, clean(), 1, Abort::None),
        fast_case("fast clean small", d.clone(), 1_000, 0, clean(), 2, Abort::None),
        fast_case("fast clean empty", d.clone(), 0, 0, clean(), 3, Abort::None),
        fast_case("fast lossy", d.clone(), 1_500_000, 0, lossy(), 4, Abort::None),
        fast_case("fast lossy newreno", newreno.clone(), 800_000, 0, lossy(), 5, Abort::None),
        fast_case("fast lossy cubic", cubic.clone(), 800_000, 0, lossy(), 6, Abort::None),
        fast_case("fast reordering", d.clone(), 1_000_000, 0, reordering(), 7, Abort::None),
        fast_case("fast reordering cubic", cubic, 1_000_000, 0, reordering(), 8, Abort::None),
        fast_case("fast resume", d.clone(), 1_200_000, 500_000, lossy(), 9, Abort::None),
        fast_case("fast resume newreno", newreno, 1_200_000, 700_001, reordering(), 10, Abort::None),
        fast_case("fast abort receiver", d.clone(), 4_000_000, 0, lossy(), 11, Abort::Receiver),
        fast_case("fast abort sender", d, 4_000_000, 0, lossy(), 12, Abort::Sender),
        classic_case("classic clean", 300_000, 20, clean(), 13),
        classic_case("classic lossy", 200_000, 98, lossy(), 14),
        classic_case("classic reordering", 200_000, 5, reordering(), 15),
        classic_case("classic empty", 0, 20, lossy(), 16),
    ];
    for l in lines {
        println!("{l}");
    }
}
