//! An impairing UDP relay on real sockets: the simulated link of
//! [`sim`](crate::rdt::sim) driven by the real clock, so real senders and
//! receivers (and the benchmarks) can be run through seeded loss, bursts,
//! delay, jitter, reordering, duplication, corruption and a rate limit with a
//! bounded queue. These kernels have no netem, so this is how chatctl tests
//! its transfers on a bad path.
//!
//! The relay listens on one socket and serves any number of clients, one
//! after the other or at once, so an experiment can be repeated without
//! restarting it. Each client address gets its own socket towards the
//! target (the target sees one peer per client, as without the relay) and
//! its own pair of [`Link`]s: its datagrams go to the target ("up") and the
//! target's answers on its socket come back to it ("down"). Every client's
//! links start from the same seeds, so the same traffic meets the same fate
//! in every run. A client silent for `IDLE` in both directions, with
//! nothing left in its links, is forgotten and its socket closed; at most
//! `MAX_CLIENTS` are served at once, datagrams from more are counted and
//! dropped.
//!
//! The relay runs on its own OS thread with non-blocking sockets and
//! `ppoll(2)` waits (microsecond timeouts, timer slack lowered to 1 µs), not
//! on tokio, whose timer wheel has millisecond resolution. Each wake-up
//! drains every datagram the kernel holds (each stamped with its own read
//! time, so the rate limit and the queue are computed from exact instants),
//! then releases every datagram due within the next 100 µs (at
//! most two 1452-byte datagrams at 200 Mbit/s leave together; a wake-up per
//! datagram costs more CPU than that precision is worth). A constant
//! 200 Mbit/s stream of 1452-byte datagrams passes at 200 Mbit/s without
//! drops (`tests/impair_relay.rs`, `cargo bench --bench rdt`).
//!
//! The relay, the sender and the receiver share the machine's cores: on a
//! busy machine, late wake-ups rather than the model may limit a transfer.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::rdt::sim::{Link, LinkConfig};
use crate::rdt::udp;

/// Largest datagram the relay carries (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Most datagrams read from one socket before the due ones are released.
const READ_BATCH: usize = 256;
/// Datagrams due this soon are released at once: one wake-up per datagram
/// at 200 Mbit/s (17,000 a second) costs a loaded machine more CPU than the
/// model's precision is worth; 100 µs bunches at most 2 such datagrams.
const RELEASE_EARLY: Duration = Duration::from_micros(100);
/// Longest the relay thread sleeps before it checks whether it was stopped.
const WAKE: Duration = Duration::from_millis(10);
/// A client silent this long (both ways, links empty) is forgotten.
pub(crate) const IDLE: Duration = Duration::from_secs(30);
/// Most clients served at once.
pub(crate) const MAX_CLIENTS: usize = 64;

/// How one direction of the relay is impaired: the link model and its seed.
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    /// Loss, bursts, delay, jitter, reordering, duplication, corruption, rate and queue.
    pub link: LinkConfig,
    /// Seed of this direction's random choices (same seed, same fate for the same traffic).
    pub seed: u64,
}

impl Impairment {
    /// No impairment at all: a plain forwarder.
    pub fn none() -> Self {
        Self::default()
    }

    /// Random loss of a share `loss` of the datagrams (0.01 = 1%).
    pub fn loss(loss: f64, seed: u64) -> Self {
        Self { link: LinkConfig { loss, ..Default::default() }, seed }
    }

    /// A path with a bottleneck: `loss`, one-way `delay`, `rate_bps` bits per
    /// second and a queue of one bandwidth-delay product (at least 64 KiB),
    /// the usual size of a router buffer.
    pub fn path(loss: f64, delay: Duration, rate_bps: u64, seed: u64) -> Self {
        let queue_bytes = default_queue(Some(rate_bps), delay);
        let link = LinkConfig { loss, delay, rate_bps: Some(rate_bps), queue_bytes, ..Default::default() };
        Self { link, seed }
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams read from the sending side.
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Datagrams written to the other side (duplicates count twice).
    pub forwarded: u64,
    /// Their bytes.
    pub forwarded_bytes: u64,
    /// Datagrams the link dropped (loss, or a full queue).
    pub dropped: u64,
    /// Of [`dropped`](Self::dropped): random loss (`loss`, `burst`).
    pub lost: u64,
    /// Of [`dropped`](Self::dropped): the bottleneck queue was full.
    pub queue_dropped: u64,
    /// Datagrams not delivered because the socket refused them (full
    /// buffer): counted, not retried, like a full interface queue.
    pub send_errors: u64,
}

/// Counters of the whole relay, a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client to target.
    pub up: DirectionStats,
    /// Target to client.
    pub down: DirectionStats,
    /// Datagrams from a new client while `MAX_CLIENTS` were being served: dropped.
    pub foreign: u64,
    /// Clients served so far (each client address counts once while it is remembered).
    pub clients: u64,
}

#[derive(Debug, Default)]
struct DirCounters {
    received: AtomicU64,
    received_bytes: AtomicU64,
    forwarded: AtomicU64,
    forwarded_bytes: AtomicU64,
    dropped: AtomicU64,
    lost: AtomicU64,
    queue_dropped: AtomicU64,
    send_errors: AtomicU64,
}

impl DirCounters {
    fn snapshot(&self) -> DirectionStats {
        DirectionStats {
            received: self.received.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            forwarded_bytes: self.forwarded_bytes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            queue_dropped: self.queue_dropped.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    up: DirCounters,
    down: DirCounters,
    foreign: AtomicU64,
    clients: AtomicU64,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The socket towards the target could not be set up.
    #[error("cannot open a socket towards {addr}")]
    Target {
        /// The target.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
}

/// The relay: see the [module docs](self).
#[derive(Debug)]
pub struct Relay;

/// A running relay: its address, its counters, and the way to stop it.
/// Dropping the handle stops the relay too.
#[derive(Debug)]
pub struct RelayHandle {
    /// Where clients send (the listening socket's actual address).
    pub local_addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RelayHandle {
    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            up: self.counters.up.snapshot(),
            down: self.counters.down.snapshot(),
            foreign: self.counters.foreign.load(Ordering::Relaxed),
            clients: self.counters.clients.load(Ordering::Relaxed),
        }
    }

    /// Stops the relay (datagrams still in the model are discarded) and
    /// returns the final counters.
    pub async fn shutdown(mut self) -> RelayStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread notices within WAKE; wait without blocking the runtime.
            while !thread.is_finished() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let _ = thread.join();
        }
        self.stats()
    }
}

impl Drop for RelayHandle {
    /// Tells the relay thread to stop; it ends (and closes its sockets) within 10 ms.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Relay {
    /// Binds `listen` (port 0: the OS picks) and relays between every
    /// client and `target`, `up` impairing client→target and `down`
    /// target→client, on a thread of its own. (`async` for the callers'
    /// convenience; [`RelayHandle::shutdown`] needs a tokio runtime.)
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        up: Impairment,
        down: Impairment,
    ) -> Result<RelayHandle, RelayError> {
        let front = udp::bind(listen).map_err(|source| RelayError::Listen { addr: listen, source })?;
        // A socket towards the target is opened per client; one now tells a
        // target that cannot be reached before any client comes.
        drop(udp::connected(target).map_err(|source| RelayError::Target { addr: target, source })?);
        let local_addr = front.local_addr().map_err(|source| RelayError::Listen { addr: listen, source })?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let state = State { front, target, clients: Vec::new(), up, down, counters: counters.clone() };
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("impair-relay".into())
            .spawn(move || state.run(&stopped))
            .map_err(|source| RelayError::Listen { addr: listen, source })?;
        Ok(RelayHandle { local_addr, counters, stop, thread: Some(thread) })
    }
}

/// One client: its own socket towards the target and its own links.
struct Client {
    addr: SocketAddr,
    back: UdpSocket,
    up: Link,
    down: Link,
    /// When a datagram last came from it or for it.
    last: Instant,
}

impl Client {
    fn next_arrival(&self) -> Option<Instant> {
        [self.up.next_arrival(), self.down.next_arrival()].into_iter().flatten().min()
    }
}

struct State {
    front: UdpSocket,
    target: SocketAddr,
    clients: Vec<Client>,
    /// Each new client's links start from these (same seeds, same fate).
    up: Impairment,
    down: Impairment,
    counters: Arc<Counters>,
}

impl State {
    fn run(mut self, stopped: &AtomicBool) {
        #[cfg(target_os = "linux")]
        // SAFETY: PR_SET_TIMERSLACK takes one unsigned long argument; it only
        // affects this thread (the default 50 µs slack would delay releases).
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        }
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !stopped.load(Ordering::Relaxed) {
            // Everything the kernel holds, a batch from each socket at a
            // time, each datagram stamped when it is read.
            loop {
                let mut more = false;
                for _ in 0..READ_BATCH {
                    match self.front.recv_from(&mut buf) {
                        Ok((n, from)) => self.on_client(&buf[..n], from, Instant::now()),
                        Err(_) => break,
                    }
                    more = true;
                }
                for c in &mut self.clients {
                    for _ in 0..READ_BATCH {
                        match c.back.recv(&mut buf) {
                            Ok(n) => {
                                let now = Instant::now();
                                c.last = now;
                                offer(&mut c.down, &self.counters.down, &buf[..n], now);
                            }
                            // ICMP port unreachable from the target: keep going.
                            Err(e) if e.kind() != io::ErrorKind::WouldBlock => continue,
                            Err(_) => break,
                        }
                        more = true;
                    }
                }
                self.release(Instant::now() + RELEASE_EARLY);
                if !more {
                    break;
                }
            }
            self.expire(Instant::now());
            let next = self.clients.iter().filter_map(Client::next_arrival).min();
            let now = Instant::now();
            let wait = next.map_or(WAKE, |t| t.saturating_duration_since(now)).min(WAKE);
            if !wait.is_zero() {
                udp::wait_readable(std::iter::once(&self.front).chain(self.clients.iter().map(|c| &c.back)), wait);
            }
        }
    }

    fn on_client(&mut self, d: &[u8], from: SocketAddr, now: Instant) {
        let i = match self.clients.iter().position(|c| c.addr == from) {
            Some(i) => i,
            None if self.clients.len() >= MAX_CLIENTS => {
                self.counters.foreign.fetch_add(1, Ordering::Relaxed);
                return;
            }
            None => match udp::connected(self.target) {
                Ok(back) => {
                    tracing::debug!(%from, "relay: new client");
                    self.counters.clients.fetch_add(1, Ordering::Relaxed);
                    self.clients.push(Client {
                        addr: from,
                        back,
                        up: Link::new(self.up.link.clone(), self.up.seed),
                        down: Link::new(self.down.link.clone(), self.down.seed),
                        last: now,
                    });
                    self.clients.len() - 1
                }
                Err(e) => {
                    tracing::warn!(%from, "relay: no socket towards the target for a new client: {e}");
                    self.counters.up.send_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        let c = &mut self.clients[i];
        c.last = now;
        offer(&mut c.up, &self.counters.up, d, now);
    }

    /// Forgets the clients silent since [`IDLE`] before `now` whose links are empty.
    fn expire(&mut self, now: Instant) {
        self.clients.retain(|c| {
            let keep = now.saturating_duration_since(c.last) < IDLE || c.next_arrival().is_some();
            if !keep {
                tracing::debug!(client = %c.addr, "relay: client idle, forgotten");
            }
            keep
        });
    }

    /// Writes every datagram that is due by `now`.
    fn release(&mut self, now: Instant) {
        for c in &mut self.clients {
            while let Some(d) = c.up.recv(now) {
                let r = c.back.send(&d);
                sent(&self.counters.up, r, d.len());
            }
            while let Some(d) = c.down.recv(now) {
                let r = self.front.send_to(&d, c.addr);
                sent(&self.counters.down, r, d.len());
            }
        }
    }
}

fn offer(link: &mut Link, c: &DirCounters, d: &[u8], now: Instant) {
    c.received.fetch_add(1, Ordering::Relaxed);
    c.received_bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
    let before = (link.dropped, link.lost, link.queue_drops);
    link.send(now, d.to_vec());
    c.dropped.fetch_add(link.dropped - before.0, Ordering::Relaxed);
    c.lost.fetch_add(link.lost - before.1, Ordering::Relaxed);
    c.queue_dropped.fetch_add(link.queue_drops - before.2, Ordering::Relaxed);
}

fn sent(c: &DirCounters, r: io::Result<usize>, len: usize) {
    match r {
        Ok(_) => {
            c.forwarded.fetch_add(1, Ordering::Relaxed);
            c.forwarded_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        Err(_) => {
            c.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The bottleneck queue when none is given: one bandwidth-delay product
/// (the rate times the round trip, twice the one-way `delay`), at least
/// `MIN_QUEUE`, the usual size of a router buffer. Without a rate there is
/// no queue to fill, and this is `MIN_QUEUE`.
pub fn default_queue(rate_bps: Option<u64>, delay: Duration) -> u64 {
    let bdp = rate_bps.map_or(0, |r| (r as f64 / 8.0 * delay.as_secs_f64() * 2.0) as u64);
    bdp.max(MIN_QUEUE)
}

/// The smallest default queue (64 KiB).
pub(crate) const MIN_QUEUE: u64 = 64 << 10;

/// A value of an impairment that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} {why}")]
pub struct SpecError {
    /// What was given.
    pub input: String,
    /// What is wrong, with an example of what reads.
    pub why: &'static str,
}

fn spec_err(input: &str, why: &'static str) -> SpecError {
    SpecError { input: input.to_string(), why }
}

/// A percentage as netem writes it, `1%`, `0.5%`, or a bare number, which
/// is a percentage too (`1` is 1%, never 100%); returned as a share
/// between 0 and 1.
pub fn parse_percent(s: &str) -> Result<f64, SpecError> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    let v: f64 = t.parse().map_err(|_| spec_err(s, "is not a percentage (e.g. 1% or 0.5%)"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(spec_err(s, "is not between 0 and 100%"));
    }
    Ok(v / 100.0)
}

/// Splits `200Mbit` into the number and the rest.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let t = s.trim();
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let v: f64 = t[..end].parse().ok()?;
    Some((v, t[end..].trim()))
}

/// A decimal (`k`, `M`, `G`, `T`) or binary (`Ki`, `Mi`, `Gi`, `Ti`)
/// prefix at the start of `u`, and the rest.
fn prefix(u: &str) -> (f64, &str) {
    let binary = [("Ki", 1024.0), ("Mi", 1024.0 * 1024.0), ("Gi", 1024.0 * 1024.0 * 1024.0), ("Ti", 1024f64.powi(4))];
    for (p, m) in binary {
        if let Some(rest) = u.strip_prefix(p) {
            return (m, rest);
        }
    }
    match u.chars().next() {
        Some('k' | 'K') => (1e3, &u[1..]),
        Some('m' | 'M') => (1e6, &u[1..]),
        Some('g' | 'G') => (1e9, &u[1..]),
        Some('t' | 'T') => (1e12, &u[1..]),
        _ => (1.0, u),
    }
}

/// A rate in bits per second, as people write it: `200M`, `200Mbit`,
/// `200Mbit/s`, `1G`, `1.5Gbit`, `64k`, `1000000` (bits per second with a
/// decimal prefix, or a binary one: `64Kibit`); `25MB/s` or `25MByte/s` (bytes
/// per second: a capital B). `Mbps` is refused: tc reads it as bytes, most
/// people as bits.
pub fn parse_rate(s: &str) -> Result<u64, SpecError> {
    const HINT: &str = "is not a rate (e.g. 200M, 200Mbit, 1G or 25MB/s)";
    let (v, unit) = number_and_unit(s).ok_or_else(|| spec_err(s, HINT))?;
    let (mult, unit) = prefix(unit);
    let bits = match unit {
        "" | "bit" | "bit/s" | "b/s" | "bits" | "bits/s" => 1.0,
        "B/s" | "Byte/s" | "byte/s" | "B" | "Bytes/s" | "bytes/s" => 8.0,
        u if u.eq_ignore_ascii_case("bps") => {
            return Err(spec_err(s, "is ambiguous: say 200Mbit for bits or 25MB/s for bytes per second"));
        }
        _ => return Err(spec_err(s, HINT)),
    };
    let r = v * mult * bits;
    if r.is_finite() && r >= 8.0 && r < u64::MAX as f64 {
        Ok(r as u64)
    } else {
        Err(spec_err(s, "is not a usable rate (at least 8 bit/s)"))
    }
}

/// A size in bytes: `100000`, `64k` or `64kB` (1000s), `64KiB` (1024s), `1MB`, `1MiB`.
pub fn parse_size(s: &str) -> Result<u64, SpecError> {
    const HINT: &str = "is not a size in bytes (e.g. 100000, 64kB or 1MiB)";
    let (v, unit) = number_and_unit(s).ok_or_else(|| spec_err(s, HINT))?;
    let (mult, unit) = prefix(unit);
    if !matches!(unit, "" | "B" | "bytes") {
        return Err(spec_err(s, HINT));
    }
    let n = v * mult;
    if n.is_finite() && n < u64::MAX as f64 { Ok(n as u64) } else { Err(spec_err(s, HINT)) }
}

/// A rate in bits per second as people read it: `200 Mbit/s`, `1.5 Gbit/s`, `64 kbit/s`.
pub(crate) fn format_rate(bps: u64) -> String {
    let units = [(1e12, "Tbit/s"), (1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")];
    let v = bps as f64;
    for (m, u) in units {
        if v >= m {
            let x = v / m;
            return if x.fract() == 0.0 { format!("{x:.0} {u}") } else { format!("{} {u}", trim(x)) };
        }
    }
    format!("{bps} bit/s")
}

/// A number with up to 3 decimals and no trailing zeros.
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The impairment of a link in one line, as `chatctl impair` restates it:
/// `loss 1%, delay 25ms, rate 200 Mbit/s, queue 625 kB`, or `no impairment`.
pub fn describe(link: &LinkConfig) -> String {
    let pct = |share: f64| format!("{}%", trim(share * 100.0));
    let mut parts = Vec::new();
    if link.loss > 0.0 {
        parts.push(format!("loss {}", pct(link.loss)));
    }
    if link.burst > 0.0 {
        parts.push(format!("burst {}", pct(link.burst)));
    }
    if !link.delay.is_zero() {
        parts.push(format!("delay {}", humantime::format_duration(link.delay)));
    }
    if !link.jitter.is_zero() {
        parts.push(format!("jitter {}", humantime::format_duration(link.jitter)));
    }
    if link.reorder > 0.0 {
        parts.push(format!("reorder {}", pct(link.reorder)));
    }
    if link.duplicate > 0.0 {
        parts.push(format!("duplicate {}", pct(link.duplicate)));
    }
    if link.corrupt > 0.0 {
        parts.push(format!("corrupt {}", pct(link.corrupt)));
    }
    if let Some(r) = link.rate_bps {
        parts.push(format!("rate {}", format_rate(r)));
        parts.push(format!("queue {}", crate::text::units::bytes(link.queue_bytes)));
    }
    if parts.is_empty() { "no impairment".into() } else { parts.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_clients_are_forgotten_busy_ones_kept() {
        let front = udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let target = udp::bind("127.0.0.1:0".parse().unwrap()).unwrap().local_addr().unwrap();
        let delayed = Impairment { link: LinkConfig { delay: Duration::from_secs(60), ..Default::default() }, seed: 1 };
        let mut s = State {
            front,
            target,
            clients: Vec::new(),
            up: delayed,
            down: Impairment::none(),
            counters: Arc::default(),
        };
        let t0 = Instant::now();
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        s.on_client(b"a", a, t0);
        s.on_client(b"b", b, t0 + IDLE / 2);
        assert_eq!(s.clients.len(), 2);
        // `a`'s datagram is still in its link (60 s of delay): kept.
        s.expire(t0 + IDLE + Duration::from_secs(1));
        assert_eq!(s.clients.len(), 2);
        s.clients[0].up = Link::new(LinkConfig::default(), 1);
        s.expire(t0 + IDLE + Duration::from_secs(1));
        assert_eq!(s.clients.iter().map(|c| c.addr).collect::<Vec<_>>(), [b]);
        assert_eq!(s.counters.clients.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn percentages_are_percent_with_or_without_the_sign() {
        assert_eq!(parse_percent("1%"), Ok(0.01));
        assert_eq!(parse_percent("1"), Ok(0.01));
        assert_eq!(parse_percent(" 0.5 % "), Ok(0.005));
        assert_eq!(parse_percent("100"), Ok(1.0));
        assert!(parse_percent("150%").unwrap_err().to_string().contains("not between 0 and 100%"));
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("x").unwrap_err().to_string().contains("e.g. 1%"));
    }

    #[test]
    fn rates_read_as_people_write_them() {
        for (s, bps) in [
            ("200M", 200_000_000),
            ("200Mbit", 200_000_000),
            ("200mbit", 200_000_000),
            ("200Mbit/s", 200_000_000),
            ("200 Mbit/s", 200_000_000),
            ("1G", 1_000_000_000),
            ("1.5Gbit", 1_500_000_000),
            ("64k", 64_000),
            ("64Kibit", 65_536),
            ("1000000", 1_000_000),
            ("25MB/s", 200_000_000),
            ("25MByte/s", 200_000_000),
            ("1kB/s", 8_000),
        ] {
            assert_eq!(parse_rate(s), Ok(bps), "{s}");
        }
        assert!(parse_rate("200Mbps").unwrap_err().to_string().contains("ambiguous"));
        for bad in ["fast", "", "M", "1Q", "1e9"] {
            assert!(parse_rate(bad).unwrap_err().to_string().contains("e.g. 200M"), "{bad}");
        }
        assert!(parse_rate("0").unwrap_err().to_string().contains("at least 8 bit/s"));
    }

    #[test]
    fn sizes_and_the_default_queue() {
        assert_eq!(parse_size("100000"), Ok(100_000));
        assert_eq!(parse_size("64kB"), Ok(64_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("1Mbit").is_err());
        // 200 Mbit/s over a 25 ms one-way delay: 25 MB/s * 50 ms = 1.25 MB.
        assert_eq!(default_queue(Some(200_000_000), Duration::from_millis(25)), 1_250_000);
        assert_eq!(default_queue(Some(1_000_000), Duration::from_millis(1)), MIN_QUEUE);
        assert_eq!(default_queue(None, Duration::from_secs(1)), MIN_QUEUE);
    }

    #[test]
    fn the_impairment_in_one_line() {
        let link = LinkConfig {
            loss: 0.01,
            delay: Duration::from_millis(25),
            rate_bps: Some(200_000_000),
            queue_bytes: 1_250_000,
            ..Default::default()
        };
        assert_eq!(describe(&link), "loss 1%, delay 25ms, rate 200 Mbit/s, queue 1.2 MB");
        assert_eq!(describe(&LinkConfig::default()), "no impairment");
        assert_eq!(format_rate(1_500_000_000), "1.5 Gbit/s");
        assert_eq!(format_rate(64_000), "64 kbit/s");
    }
}
