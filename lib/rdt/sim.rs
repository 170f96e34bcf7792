//! A simulated network with a virtual clock, for deterministic tests of the
//! fast-mode machines: seeded loss (with bursts), delay, jitter, reordering,
//! duplication, corruption and a rate limit with a bounded queue. Simulated
//! time is free, so a 300 ms RTT transfer runs in milliseconds.
//!
//! [`Link`] and [`LinkConfig`] are also the impairment model of
//! [`relay`](crate::rdt::relay) and `chatctl impair`. The test drivers built
//! on them (one transfer, flows through a shared bottleneck) and the seeded
//! PRNG are test support, public for the integration tests only and hidden
//! from these docs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

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
            return;
        }
        let mut depart = now;
        if let Some(rate) = self.cfg.rate_bps {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            let backlog = start.saturating_duration_since(now).as_secs_f64() * rate as f64 / 8.0;
            if backlog > self.cfg.queue_bytes.max(3000) as f64 {
                self.dropped += 1;
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
    let mut now = t0;
    let mut fwd = Link::new(fwd, seed ^ 0xf0);
    let mut back = Link::new(back, seed ^ 0xba);
    let mut rcfg = cfg.clone();
    rcfg.seed = seed;
    let mut sink: Vec<u8> = data[..resume].to_vec();
    let mut receiver = Receiver::new(rcfg.clone(), resume as u64, Some(data.len() as u64), now);
    let mut sender: Option<Sender> = None;
    let mut src: &[u8] = data;
    let mut out = Vec::new();
    let mut recv_done: Option<Duration> = None;
    let mut send_done: Option<Duration> = None;
    let mut stuck = 0u32;
    loop {
        // Deliver everything due.
        while let Some(d) = fwd.recv(now) {
            receiver.handle(now, &d, &mut sink);
        }
        while let Some(d) = back.recv(now) {
            match sender.as_mut() {
                Some(s) => s.handle(now, &d),
                None if fast::is_fast_hello(&d) => sender = Some(Sender::new(rcfg.clone(), data.len() as u64, &d, now)),
                None => {}
            }
        }
        if let Some(s) = sender.as_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            while s.poll_transmit(now, &mut src, &mut out) {
                fwd.send(now, out.clone());
            }
        }
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        while receiver.poll_transmit(now, &mut out) {
            back.send(now, out.clone());
        }
        if recv_done.is_none() && (receiver.is_verified() || receiver.is_finished()) {
            recv_done = Some(now - t0);
        }
        let sender_finished = sender.as_ref().is_some_and(Sender::is_finished);
        if send_done.is_none() && sender_finished {
            send_done = Some(now - t0);
        }
        if receiver.is_finished() && (sender_finished || sender.is_none()) {
            break;
        }
        let next = [
            sender.as_ref().and_then(Sender::poll_timeout),
            receiver.poll_timeout(),
            fwd.next_arrival(),
            back.next_arrival(),
        ]
        .into_iter()
        .flatten()
        .min();
        if next.is_some_and(|t| t <= now) {
            stuck += 1;
            if stuck > 100_000 {
                // A machine that asks to be woken at `now` again and again without
                // progress would spin forever: a bug, reported instead of hanging.
                break;
            }
        } else {
            stuck = 0;
        }
        match next {
            Some(t) if t - t0 <= limit => now = now.max(t),
            _ => break,
        }
    }
    let verified = receiver.is_verified();
    Outcome {
        received: sink,
        elapsed: recv_done.unwrap_or(now - t0),
        sender_elapsed: send_done.unwrap_or(now - t0),
        verified,
        sender_state: sender.as_ref().map(Sender::state),
        stats: sender.as_ref().map(Sender::stats).unwrap_or_default(),
        payload: sender.as_ref().map_or(0, Sender::payload),
        dropped: fwd.dropped + back.dropped,
        stuck: stuck > 100_000,
        receiver_error: receiver.take_error().map(|e| e.to_string()),
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
    let mut now = t0;
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
    let mut sinks: Vec<Vec<u8>> = vec![Vec::new(); flows.len()];
    let mut receivers: Vec<Option<Receiver>> = flows.iter().map(|_| None).collect();
    let mut senders: Vec<Option<Sender>> = flows.iter().map(|_| None).collect();
    let mut at_start = vec![None; flows.len()];
    let mut at_end = vec![None; flows.len()];
    let mut out = Vec::new();
    while now - t0 <= until {
        let t = now - t0;
        for (i, f) in flows.iter().enumerate() {
            if receivers[i].is_none() && t >= f.start {
                receivers[i] = Some(Receiver::new(cfg.clone(), 0, Some(f.len as u64), now));
            }
        }
        while let Some((i, d)) = fwd.recv_tagged(now) {
            if let Some(r) = receivers[i].as_mut() {
                r.handle(now, &d, &mut sinks[i]);
            }
        }
        while let Some((i, d)) = back.recv_tagged(now) {
            match senders[i].as_mut() {
                Some(s) => s.handle(now, &d),
                None if fast::is_fast_hello(&d) => {
                    let c = Config { seed: seed + i as u64, ..cfg.clone() };
                    senders[i] = Some(Sender::new(c, flows[i].len as u64, &d, now));
                }
                None => {}
            }
        }
        for i in 0..flows.len() {
            if let Some(s) = senders[i].as_mut() {
                if s.poll_timeout().is_some_and(|x| x <= now) {
                    s.handle_timeout(now);
                }
                let mut src: &[u8] = &files[i];
                while s.poll_transmit(now, &mut src, &mut out) {
                    fwd.send_tagged(now, i, out.clone());
                }
            }
            if let Some(r) = receivers[i].as_mut() {
                if r.poll_timeout().is_some_and(|x| x <= now) {
                    r.handle_timeout(now);
                }
                while r.poll_transmit(now, &mut out) {
                    back.send_tagged(now, i, out.clone());
                }
                let done = r.stats().bytes_done;
                if t >= measure.start && at_start[i].is_none() {
                    at_start[i] = Some(done);
                }
                if t < measure.end {
                    at_end[i] = Some(done);
                }
            }
        }
        let next = senders
            .iter()
            .flatten()
            .filter_map(Sender::poll_timeout)
            .chain(receivers.iter().flatten().filter_map(Receiver::poll_timeout))
            .chain(flows.iter().map(|f| t0 + f.start).filter(|&s| s > now))
            .chain([fwd.next_arrival(), back.next_arrival()].into_iter().flatten())
            .min();
        match next {
            Some(x) if x > now => now = x,
            Some(_) => now += Duration::from_micros(1),
            None => break,
        }
    }
    (0..flows.len()).map(|i| at_end[i].unwrap_or(0) - at_start[i].unwrap_or(0)).collect()
}
