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
//! in every run. A client silent for [`IDLE`] in both directions, with
//! nothing left in its links, is forgotten and its socket closed; at most
//! [`MAX_CLIENTS`] are served at once, datagrams from more are counted and
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
pub const IDLE: Duration = Duration::from_secs(30);
/// Most clients served at once.
pub const MAX_CLIENTS: usize = 64;

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
        let bdp = (rate_bps as f64 / 8.0 * delay.as_secs_f64() * 2.0) as u64;
        let link =
            LinkConfig { loss, delay, rate_bps: Some(rate_bps), queue_bytes: bdp.max(64 << 10), ..Default::default() };
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
    /// Datagrams from a new client while [`MAX_CLIENTS`] were being served: dropped.
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
    let before = link.dropped;
    link.send(now, d.to_vec());
    c.dropped.fetch_add(link.dropped - before, Ordering::Relaxed);
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
}
