//! A simulated network with a virtual clock, for deterministic tests of the
//! fast-mode machines: seeded loss (with bursts), delay, jitter, reordering,
//! duplication, corruption and a rate limit with a bounded queue. Simulated
//! time is free, so a 300 ms RTT transfer runs in milliseconds.
//!
//! [`Link`] and [`LinkConfig`] are also the impairment model of
//! [`relay`](crate::rdt::relay) and `chatctl impair`. The one virtual-clock
//! driver (`run`: any [`Endpoint`] pairs, classic or fast, over any two
//! directions of a path, each step being [`endpoint::step`]), the
//! transfers built on it (one fast transfer, fast flows through a shared
//! bottleneck) and the seeded PRNG are test support, public for the
//! integration tests only and hidden from these docs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::rdt::endpoint::{self, Endpoint};
use crate::rdt::fast::{self, Config, receiver::Receiver, sender::Sender};

/// A small seeded PRNG (xorshift64*), so runs are reproducible from a seed.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(crate::rdt::fast::sender::splitmix(seed) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// Picks the datagrams an aimed loss drops.
pub type Aim = fn(&[u8]) -> bool;

/// Impairments of one direction of a path.
#[derive(Debug, Clone, Default)]
pub struct LinkConfig {
    /// Probability a datagram is dropped.
    pub loss: f64,
    /// After a loss, probability the next datagram is lost too (bursts, Gilbert–Elliott style).
    pub burst: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Uniform extra delay in `[0, jitter)` (which itself reorders).
    pub jitter: Duration,
    /// Probability a datagram is held back an extra `delay / 2 + 1 ms`.
    pub reorder: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability one byte of a datagram is flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bits per second (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// Bottleneck queue in bytes (tail drop beyond it).
    pub queue_bytes: u64,
    /// Aimed loss: drop the first `n` datagrams for which the function is
    /// true (e.g. the last DATA, or the ACK that covers the whole file).
    pub drop_first: Option<(Aim, u32)>,
    /// Largest datagram the path carries (`None`: any); larger ones are dropped.
    pub mtu: Option<usize>,
}

/// A datagram in flight: arrival time, sequence (for stable order), flow tag, bytes.
type Queued = (Instant, u64, usize, Vec<u8>);

/// One direction of the simulated path.
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    rng: Rng,
    in_burst: bool,
    busy_until: Option<Instant>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    /// Datagrams dropped by loss or a full queue.
    pub dropped: u64,
    /// Of [`dropped`](Self::dropped): random loss (`loss`, `burst`).
    pub lost: u64,
    /// Of [`dropped`](Self::dropped): the bottleneck queue was full.
    pub queue_drops: u64,
}

impl Link {
    /// A link with its own seed.
    pub fn new(cfg: LinkConfig, seed: u64) -> Self {
        Self {
            cfg,
            rng: Rng::new(seed),
            in_burst: false,
            busy_until: None,
            queue: BinaryHeap::new(),
            seq: 0,
            dropped: 0,
            lost: 0,
            queue_drops: 0,
        }
    }

    /// Offers a datagram at `now`.
    pub fn send(&mut self, now: Instant, d: Vec<u8>) {
        self.send_tagged(now, 0, d);
    }

    /// Offers a datagram of flow `tag` at `now` (flows share the queue and rate).
    pub fn send_tagged(&mut self, now: Instant, tag: usize, mut d: Vec<u8>) {
        if self.cfg.mtu.is_some_and(|m| d.len() > m) {
            self.dropped += 1;
            return;
        }
        if let Some((aim, n)) = self.cfg.drop_first.as_mut()
            && *n > 0
            && aim(&d)
        {
            *n -= 1;
            self.dropped += 1;
            return;
        }
        let lost = if self.in_burst { self.rng.chance(self.cfg.burst) } else { self.rng.chance(self.cfg.loss) };
        self.in_burst = lost && self.cfg.burst > 0.0;
        if lost {
            self.dropped += 1;
            self.lost += 1;
            return;
        }
        let mut depart = now;
        if let Some(rate) = self.cfg.rate_bps {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            let backlog = start.saturating_duration_since(now).as_secs_f64() * rate as f64 / 8.0;
            if backlog > self.cfg.queue_bytes.max(3000) as f64 {
                self.dropped += 1;
                self.queue_drops += 1;
                return;
            }
            depart = start + Duration::from_secs_f64(d.len() as f64 * 8.0 / rate as f64);
            self.busy_until = Some(depart);
        }
        let mut at = depart + self.cfg.delay;
        if !self.cfg.jitter.is_zero() {
            at += self.cfg.jitter.mul_f64(self.rng.unit());
        }
        if self.rng.chance(self.cfg.reorder) {
            at += self.cfg.delay / 2 + Duration::from_millis(1);
        }
        if self.rng.chance(self.cfg.corrupt) && !d.is_empty() {
            let i = (self.rng.next_u64() % d.len() as u64) as usize;
            d[i] ^= 1 << (self.rng.next_u64() % 8);
        }
        if self.rng.chance(self.cfg.duplicate) {
            self.seq += 1;
            self.queue.push(Reverse((at + Duration::from_micros(10), self.seq, tag, d.clone())));
        }
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, tag, d)));
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _, _, _))| *t)
    }

    /// A datagram that has arrived by `now`.
    pub fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.recv_tagged(now).map(|(_, d)| d)
    }

    /// A datagram that has arrived by `now`, with its flow's tag.
    pub fn recv_tagged(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        if self.next_arrival()? <= now { self.queue.pop().map(|Reverse((_, _, t, d))| (t, d)) } else { None }
    }
}

/// One direction of a simulated path, as [`run`] uses it: datagrams of
/// numbered flows go in at one end and come out at the other, some time later.
#[doc(hidden)]
pub trait Wire {
    /// Offers datagram `d` of flow `tag` at `now`.
    fn send(&mut self, now: Instant, tag: usize, d: Vec<u8>);
    /// A datagram that has arrived by `now`, with its flow's tag.
    fn recv(&mut self, now: Instant) -> Option<(usize, Vec<u8>)>;
    /// When the next datagram arrives.
    fn next_arrival(&self) -> Option<Instant>;
}

impl Wire for Link {
    fn send(&mut self, now: Instant, tag: usize, d: Vec<u8>) {
        self.send_tagged(now, tag, d)
    }
    fn recv(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        self.recv_tagged(now)
    }
    fn next_arrival(&self) -> Option<Instant> {
        Link::next_arrival(self)
    }
}

/// One side of a simulated flow, as [`run`] drives it: an [`Endpoint`]
/// with its storage ([`Attached`]), or one that appears later ([`Accepting`], [`Joining`]).
#[doc(hidden)]
pub trait Party {
    /// One [`endpoint::step`] at `now`: handles and empties `incoming`,
    /// fires a due timer, gives every datagram that leaves to `send`.
    fn step(&mut self, now: Instant, incoming: &mut Vec<Vec<u8>>, send: &mut dyn FnMut(&[u8]));
    /// When to step it again if nothing arrives.
    fn poll_timeout(&self) -> Option<Instant>;
    /// True once it has nothing more to do.
    fn is_finished(&self) -> bool;
}

/// An [`Endpoint`] with the storage it reads or writes.
#[doc(hidden)]
#[derive(Debug)]
pub struct Attached<E, S> {
    /// The machine.
    pub endpoint: E,
    /// Its file: a [`Source`](endpoint::Source) or a [`Sink`](endpoint::Sink).
    pub store: S,
    buf: Vec<u8>,
}

impl<E, S> Attached<E, S> {
    /// `endpoint` working on `store`.
    pub fn new(endpoint: E, store: S) -> Self {
        Self { endpoint, store, buf: Vec::new() }
    }
}

impl<S, E: Endpoint<S>> Party for Attached<E, S> {
    fn step(&mut self, now: Instant, incoming: &mut Vec<Vec<u8>>, send: &mut dyn FnMut(&[u8])) {
        // One datagram per transmit, as a link carries them.
        let _ = endpoint::step(
            &mut self.endpoint,
            now,
            &mut self.store,
            endpoint::drain(incoming),
            &mut self.buf,
            1,
            |b, segment_size| {
                endpoint::Transmit { len: b.len(), segment_size }.datagrams(b).for_each(&mut *send);
                Ok::<_, std::convert::Infallible>(())
            },
        );
        // A datagram the endpoint refused (another protocol) is dropped.
        incoming.clear();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }
    fn is_finished(&self) -> bool {
        self.endpoint.is_finished()
    }
}

/// A party made from the first datagram that `make` accepts (a sender
/// waits for its receiver's hello); datagrams before it are dropped.
#[doc(hidden)]
pub struct Accepting<P, F> {
    make: F,
    /// The party, once made.
    pub party: Option<P>,
}

impl<P, F: FnMut(Instant, &[u8]) -> Option<P>> Accepting<P, F> {
    /// A party that `make` builds from an accepted datagram.
    pub fn new(make: F) -> Self {
        Self { make, party: None }
    }
}

impl<P: Party, F: FnMut(Instant, &[u8]) -> Option<P>> Party for Accepting<P, F> {
    fn step(&mut self, now: Instant, incoming: &mut Vec<Vec<u8>>, send: &mut dyn FnMut(&[u8])) {
        if self.party.is_none() {
            let mut taken = 0;
            for d in incoming.iter() {
                taken += 1;
                self.party = (self.make)(now, d);
                if self.party.is_some() {
                    break;
                }
            }
            incoming.drain(..taken);
        }
        match self.party.as_mut() {
            Some(p) => p.step(now, incoming, send),
            None => incoming.clear(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.party.as_ref().and_then(P::poll_timeout)
    }
    fn is_finished(&self) -> bool {
        self.party.as_ref().is_some_and(P::is_finished)
    }
}

/// A party that `make` builds at `at` (a receiver that starts later).
#[doc(hidden)]
pub struct Joining<P, F> {
    at: Instant,
    make: Option<F>,
    /// The party, once made.
    pub party: Option<P>,
}

impl<P, F: FnOnce(Instant) -> P> Joining<P, F> {
    /// A party that `make` builds at `at`.
    pub fn new(at: Instant, make: F) -> Self {
        Self { at, make: Some(make), party: None }
    }
}

impl<P: Party, F: FnOnce(Instant) -> P> Party for Joining<P, F> {
    fn step(&mut self, now: Instant, incoming: &mut Vec<Vec<u8>>, send: &mut dyn FnMut(&[u8])) {
        if now >= self.at
            && let Some(make) = self.make.take()
        {
            self.party = Some(make(now));
        }
        match self.party.as_mut() {
            Some(p) => p.step(now, incoming, send),
            None => incoming.clear(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match &self.party {
            Some(p) => p.poll_timeout(),
            None => Some(self.at),
        }
    }
    fn is_finished(&self) -> bool {
        self.party.as_ref().is_some_and(P::is_finished)
    }
}

/// How [`run`] ended.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Virtual time at the end.
    pub now: Instant,
    /// It stopped because the parties kept asking to be woken at the same
    /// instant without progress (a livelock bug), instead of spinning.
    pub stuck: bool,
}

/// Consecutive steps at one instant after which [`run`] reports a livelock.
const STUCK_STEPS: u32 = 100_000;

/// The one virtual-clock driver: runs `flows` (each a sender that sends on
/// `fwd` and a receiver that sends on `back`, datagrams tagged with the
/// flow's index) from `t0`. At each instant every party gets one
/// [`Party::step`] (all senders, then all receivers), then `after(now,
/// flows)` says whether to go on; then the clock jumps to the next timer or
/// arrival. With nothing to wait for it stops, or once the next instant is
/// beyond `limit`. When a timer or arrival is already due, the clock moves
/// on by `stall` (zero: not at all, and [`STUCK_STEPS`] such steps in a row
/// end the run as stuck).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn run<A: Party, B: Party>(
    flows: &mut [(A, B)],
    fwd: &mut dyn Wire,
    back: &mut dyn Wire,
    t0: Instant,
    limit: Duration,
    stall: Duration,
    mut after: impl FnMut(Instant, &[(A, B)]) -> bool,
) -> Run {
    let mut now = t0;
    let mut stuck = 0u32;
    let mut to_senders: Vec<Vec<Vec<u8>>> = vec![Vec::new(); flows.len()];
    let mut to_receivers: Vec<Vec<Vec<u8>>> = vec![Vec::new(); flows.len()];
    loop {
        while let Some((i, d)) = fwd.recv(now) {
            if let Some(q) = to_receivers.get_mut(i) {
                q.push(d);
            }
        }
        while let Some((i, d)) = back.recv(now) {
            if let Some(q) = to_senders.get_mut(i) {
                q.push(d);
            }
        }
        for (i, (a, _)) in flows.iter_mut().enumerate() {
            a.step(now, &mut to_senders[i], &mut |d| fwd.send(now, i, d.to_vec()));
        }
        for (i, (_, b)) in flows.iter_mut().enumerate() {
            b.step(now, &mut to_receivers[i], &mut |d| back.send(now, i, d.to_vec()));
        }
        if !after(now, flows) {
            break;
        }
        let timers = flows.iter().flat_map(|(a, b)| [a.poll_timeout(), b.poll_timeout()]);
        let Some(next) = timers.chain([fwd.next_arrival(), back.next_arrival()]).flatten().min() else { break };
        let at = if next > now { next } else { now + stall };
        if at == now {
            stuck += 1;
            if stuck > STUCK_STEPS {
                break;
            }
        } else {
            stuck = 0;
        }
        if at - t0 > limit {
            break;
        }
        now = at;
    }
    Run { now, stuck: stuck > STUCK_STEPS }
}

/// How a simulated transfer ended.
#[doc(hidden)]
#[derive(Debug)]
pub struct Outcome {
    /// What the receiver wrote.
    pub received: Vec<u8>,
    /// Virtual time from the hello to the receiver's verdict.
    pub elapsed: Duration,
    /// Virtual time until the sender also finished.
    pub sender_elapsed: Duration,
    /// The receiver verified the hash.
    pub verified: bool,
    /// The sender's final state.
    pub sender_state: Option<fast::sender::State>,
    /// Sender statistics.
    pub stats: fast::Stats,
    /// File bytes per DATA at the end (after path-MTU probing).
    pub payload: u64,
    /// Datagrams the network dropped (both directions).
    pub dropped: u64,
    /// Of [`dropped`](Self::dropped): a full bottleneck queue (both directions).
    pub queue_drops: u64,
    /// The simulation stopped because a machine kept asking to be woken at
    /// the same instant without progress (a livelock bug), instead of spinning.
    pub stuck: bool,
    /// The receiver's error, if it failed.
    pub receiver_error: Option<String>,
}

/// Runs one fast transfer of `data` over a simulated path, the receiver
/// holding `data[..resume]` already. Stops at `limit` of virtual time.
#[doc(hidden)]
pub fn transfer(
    cfg: &Config,
    data: &[u8],
    resume: usize,
    fwd: LinkConfig,
    back: LinkConfig,
    seed: u64,
    limit: Duration,
) -> Outcome {
    let t0 = Instant::now();
    let mut fwd = Link::new(fwd, seed ^ 0xf0);
    let mut back = Link::new(back, seed ^ 0xba);
    let mut rcfg = cfg.clone();
    rcfg.seed = seed;
    let sink: Vec<u8> = data[..resume].to_vec();
    let receiver = Attached::new(Receiver::new(rcfg.clone(), resume as u64, Some(data.len() as u64), t0), sink);
    let sender = Accepting::new(|now, d: &[u8]| {
        fast::is_fast_hello(d).then(|| Attached::new(Sender::new(rcfg.clone(), data.len() as u64, d, now), data))
    });
    let mut flows = [(sender, receiver)];
    let mut recv_done: Option<Duration> = None;
    let mut send_done: Option<Duration> = None;
    let end = run(&mut flows, &mut fwd, &mut back, t0, limit, Duration::ZERO, |now, flows| {
        let (sender, receiver) = &flows[0];
        let r = &receiver.endpoint;
        if recv_done.is_none() && (r.is_verified() || r.is_finished()) {
            recv_done = Some(now - t0);
        }
        let sender_finished = sender.party.as_ref().is_some_and(|s| s.endpoint.is_finished());
        if send_done.is_none() && sender_finished {
            send_done = Some(now - t0);
        }
        !(r.is_finished() && (sender_finished || sender.party.is_none()))
    });
    let [(sender, mut receiver)] = flows;
    let sender = sender.party.map(|p| p.endpoint);
    let now = end.now;
    Outcome {
        elapsed: recv_done.unwrap_or(now - t0),
        sender_elapsed: send_done.unwrap_or(now - t0),
        verified: receiver.endpoint.is_verified(),
        sender_state: sender.as_ref().map(Sender::state),
        stats: sender.as_ref().map(Sender::stats).unwrap_or_default(),
        payload: sender.as_ref().map_or(0, Sender::payload),
        dropped: fwd.dropped + back.dropped,
        queue_drops: fwd.queue_drops + back.queue_drops,
        stuck: end.stuck,
        receiver_error: receiver.endpoint.take_error().map(|e| e.to_string()),
        received: receiver.store,
    }
}

/// One flow of [`shared_bottleneck`].
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Flow {
    /// When the flow's receiver sends its hello.
    pub start: Duration,
    /// File size.
    pub len: usize,
    /// The flow's congestion controller (`None`: the config's), so a BBR
    /// flow can share the bottleneck with a loss-based one.
    pub cc: Option<crate::rdt::cc::Algorithm>,
}

/// Runs several fast transfers at once through one bottleneck (`fwd`
/// carries every flow's data, `back` every flow's ACKs) until `until` of
/// virtual time, and returns the file bytes each receiver got during
/// `measure` (for fairness: flows sharing a link should get similar shares).
#[doc(hidden)]
pub fn shared_bottleneck(
    cfg: &Config,
    flows: &[Flow],
    fwd: LinkConfig,
    back: LinkConfig,
    seed: u64,
    until: Duration,
    measure: std::ops::Range<Duration>,
) -> Vec<u64> {
    let t0 = Instant::now();
    let mut fwd = Link::new(fwd, seed ^ 0xf0);
    let mut back = Link::new(back, seed ^ 0xba);
    let files: Vec<Vec<u8>> = flows
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // Eight bytes per draw: a debug build spends seconds on a
            // byte-per-draw fill of a 100 MB file.
            let mut r = Rng::new(seed + i as u64);
            let mut v = vec![0u8; f.len];
            for c in v.chunks_mut(8) {
                c.copy_from_slice(&r.next_u64().to_le_bytes()[..c.len()]);
            }
            v
        })
        .collect();
    let mut parties: Vec<_> = flows
        .iter()
        .zip(&files)
        .enumerate()
        .map(|(i, (f, file))| {
            let sender = Accepting::new(move |now, d: &[u8]| {
                fast::is_fast_hello(d).then(|| {
                    let c = Config { seed: seed + i as u64, cc: f.cc.unwrap_or(cfg.cc), ..cfg.clone() };
                    Attached::new(Sender::new(c, f.len as u64, d, now), &file[..])
                })
            });
            let receiver = Joining::new(t0 + f.start, move |now| {
                Attached::new(Receiver::new(cfg.clone(), 0, Some(f.len as u64), now), Vec::<u8>::new())
            });
            (sender, receiver)
        })
        .collect();
    let mut at_start = vec![None; flows.len()];
    let mut at_end = vec![None; flows.len()];
    run(&mut parties, &mut fwd, &mut back, t0, until, Duration::from_micros(1), |now, parties| {
        let t = now - t0;
        for (i, (_, r)) in parties.iter().enumerate() {
            if let Some(r) = &r.party {
                let done = r.endpoint.stats().bytes_done;
                if t >= measure.start && at_start[i].is_none() {
                    at_start[i] = Some(done);
                }
                if t < measure.end {
                    at_end[i] = Some(done);
                }
            }
        }
        true
    });
    (0..flows.len()).map(|i| at_end[i].unwrap_or(0) - at_start[i].unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asks to be woken at `due` again and again and never finishes.
    struct Alarm {
        due: Instant,
        steps: u32,
    }

    impl Party for Alarm {
        fn step(&mut self, _: Instant, incoming: &mut Vec<Vec<u8>>, _: &mut dyn FnMut(&[u8])) {
            incoming.clear();
            self.steps += 1;
        }
        fn poll_timeout(&self) -> Option<Instant> {
            Some(self.due)
        }
        fn is_finished(&self) -> bool {
            false
        }
    }

    fn links() -> (Link, Link) {
        (Link::new(LinkConfig::default(), 1), Link::new(LinkConfig::default(), 2))
    }

    #[test]
    fn a_party_that_never_lets_the_clock_move_is_reported_stuck() {
        let t0 = Instant::now();
        let (mut fwd, mut back) = links();
        let mut flows = [(Alarm { due: t0, steps: 0 }, Alarm { due: t0 + Duration::from_secs(9), steps: 0 })];
        let end = run(&mut flows, &mut fwd, &mut back, t0, Duration::from_secs(60), Duration::ZERO, |_, _| true);
        assert!(end.stuck);
        assert_eq!(end.now, t0);
        assert_eq!(flows[0].0.steps, STUCK_STEPS + 1);
    }

    #[test]
    fn with_a_stall_step_the_clock_creeps_on_until_the_limit() {
        let t0 = Instant::now();
        let (mut fwd, mut back) = links();
        let mut flows = [(Alarm { due: t0, steps: 0 }, Alarm { due: t0, steps: 0 })];
        let limit = Duration::from_millis(5);
        let end = run(&mut flows, &mut fwd, &mut back, t0, limit, Duration::from_micros(1), |_, _| true);
        assert!(!end.stuck);
        assert_eq!(end.now - t0, limit);
        assert_eq!(flows[0].1.steps, 5001);
    }

    #[test]
    fn the_observer_stops_the_run_and_timers_set_the_clock() {
        let t0 = Instant::now();
        let (mut fwd, mut back) = links();
        let later = t0 + Duration::from_secs(3);
        let mut flows = [(Alarm { due: later, steps: 0 }, Alarm { due: later + Duration::from_secs(1), steps: 0 })];
        let mut seen = Vec::new();
        let end = run(&mut flows, &mut fwd, &mut back, t0, Duration::from_secs(60), Duration::ZERO, |now, _| {
            seen.push(now - t0);
            seen.len() < 2
        });
        assert_eq!(seen, [Duration::ZERO, Duration::from_secs(3)]);
        assert_eq!(end.now, later);
    }
}
