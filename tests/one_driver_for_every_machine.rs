//! The classic and the fast machines as [`Endpoint`](chatctl::rdt::endpoint::Endpoint)s
//! through the one virtual-clock driver (`sim::run`): the same loop over the
//! same seeded lossy, reordering path delivers the exact bytes in both
//! modes. A failure prints its seed.

use std::time::{Duration, Instant};

use chatctl::rdt::classic;
use chatctl::rdt::fast::{self, Config};
use chatctl::rdt::sim::{self, Accepting, Attached, Joining, Link, LinkConfig, Party};
use common::data;

use crate::common;

/// Runs one flow to its end (or 10 minutes of virtual time) over a path
/// that loses 3% each way, and reorders and duplicates data.
fn run_flow<A: Party, B: Party>(sender: A, receiver: B, t0: Instant, seed: u64) -> (A, B, sim::Run) {
    let acks = LinkConfig { loss: 0.03, delay: Duration::from_millis(10), ..LinkConfig::default() };
    let data_path = LinkConfig { jitter: Duration::from_millis(2), reorder: 0.05, duplicate: 0.01, ..acks.clone() };
    let (mut fwd, mut back) = (Link::new(data_path, seed), Link::new(acks, seed ^ 0xba));
    let mut flows = [(sender, receiver)];
    let limit = Duration::from_secs(600);
    let end = sim::run(&mut flows, &mut fwd, &mut back, t0, limit, Duration::ZERO, |_, f| {
        !(f[0].0.is_finished() && f[0].1.is_finished())
    });
    let [(a, b)] = flows;
    (a, b, end)
}

#[test]
fn classic_and_fast_pairs_deliver_through_the_same_driver() {
    for seed in 1..=12u64 {
        let len = [0, 1, 1000, 1001, 57_321, 400_000][seed as usize % 6];
        let file = data(len, seed);
        let t0 = Instant::now();

        // Classic: the sender starts on the receiver's hello (its window).
        let window = [98u8, 20, 5][seed as usize % 3];
        let sender = Accepting::new(|_, hello: &[u8]| {
            let w = classic::parse_window(hello)?;
            Some(Attached::new(classic::sender::Sender::new(len as u64, w), &file[..]))
        });
        let receiver = Joining::new(t0, |_| Attached::new(classic::receiver::Receiver::new(window), Vec::<u8>::new()));
        let (s, r, end) = run_flow(sender, receiver, t0, seed);
        let ctx = format!("classic, seed {seed}, {len} bytes, window {window}");
        let outcome = s.party.map(|s| s.endpoint.outcome());
        let r = r.party.expect("the receiver started");
        assert!(!end.stuck, "{ctx}: livelock");
        assert!(r.endpoint.is_complete(), "{ctx}: unfinished, sender {outcome:?}, {} bytes", r.store.len());
        assert!(r.store == file, "{ctx}: bytes differ");
        assert!(
            matches!(outcome, Some(Some(classic::sender::Outcome::Confirmed | classic::sender::Outcome::Unconfirmed))),
            "{ctx}: sender {outcome:?}"
        );

        // Fast: the same shape, its own hello and machines.
        let cfg = Config { seed, ..Config::default() };
        let sender = Accepting::new(|now, hello: &[u8]| {
            fast::is_fast_hello(hello)
                .then(|| Attached::new(fast::sender::Sender::new(cfg.clone(), len as u64, hello, now), &file[..]))
        });
        let receiver = Joining::new(t0, |now| {
            Attached::new(fast::receiver::Receiver::new(cfg.clone(), 0, Some(len as u64), now), Vec::<u8>::new())
        });
        let (s, r, end) = run_flow(sender, receiver, t0, seed);
        let ctx = format!("fast, seed {seed}, {len} bytes");
        let state = s.party.map(|s| s.endpoint.state());
        let r = r.party.expect("the receiver started");
        assert!(!end.stuck, "{ctx}: livelock");
        assert!(r.endpoint.is_verified(), "{ctx}: not verified, sender {state:?}");
        assert!(r.store == file, "{ctx}: bytes differ");
        assert!(matches!(state, Some(fast::sender::State::Done { .. })), "{ctx}: sender {state:?}");
    }
}
