//! An impairing UDP relay on real sockets: the simulated link of
//! [`sim`](crate::rdt::sim) driven by the real clock, so real senders and
//! receivers (and the benchmarks) can be run through seeded loss, bursts,
//! delay, jitter, reordering, duplication, corruption and a rate limit with a
//! bounded queue. These kernels have no netem, so this is how chatctl tests
//! its transfers on a bad path.
//!
//! The relay listens on one socket. The first datagram that reaches it names
//! the client; from then on datagrams from the client go to the target
//! ("up") and datagrams from the target go back to the client ("down"),
//! each direction through its own [`Link`] with its own seed. Datagrams from
//! any other address are counted and ignored, so a stray packet cannot
//! hijack the path.
//!
//! Timers run on tokio's clock (millisecond resolution), so delays are
//! honoured to about a millisecond; the rate limit and the queue are computed
//! from exact instants and only the release is rounded.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::rdt::sim::{Link, LinkConfig};

/// Largest datagram the relay carries (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Socket buffers asked of the kernel, so bursts at the bottleneck rate are
/// not lost before the model sees them.
const SOCKET_BUFFER: usize = 8 << 20;
/// Most datagrams read in one go before the due ones are released.
const READ_BATCH: usize = 64;

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
    /// Datagrams not delivered because the socket refused them (full buffer,
    /// no client yet): counted, not retried, like a full interface queue.
    pub send_errors: u64,
}

/// Counters of the whole relay, a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client to target.
    pub up: DirectionStats,
    /// Target to client.
    pub down: DirectionStats,
    /// Datagrams on the listening socket from an address other than the client.
    pub foreign: u64,
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
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RelayHandle {
    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            up: self.counters.up.snapshot(),
            down: self.counters.down.snapshot(),
            foreign: self.counters.foreign.load(Ordering::Relaxed),
        }
    }

    /// Stops the relay (datagrams still in the model are discarded) and
    /// returns the final counters.
    pub async fn shutdown(mut self) -> RelayStats {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.stats()
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Relay {
    /// Binds `listen` (port 0: the OS picks) and relays between the first
    /// client and `target`, `up` impairing client→target and `down`
    /// target→client. Must be called inside a tokio runtime.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        up: Impairment,
        down: Impairment,
    ) -> Result<RelayHandle, RelayError> {
        let front = bind(listen).map_err(|source| RelayError::Listen { addr: listen, source })?;
        let back_addr = match target.ip() {
            IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        };
        let back = bind(back_addr).map_err(|source| RelayError::Target { addr: target, source })?;
        back.connect(target).await.map_err(|source| RelayError::Target { addr: target, source })?;
        let local_addr = front.local_addr().map_err(|source| RelayError::Listen { addr: listen, source })?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let state = State {
            front,
            back,
            client: None,
            up: Link::new(up.link, up.seed),
            down: Link::new(down.link, down.seed),
            counters: counters.clone(),
        };
        let task = tokio::spawn(state.run(stopped));
        Ok(RelayHandle { local_addr, counters, stop, task: Some(task) })
    }
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel may cap the sizes, which only means more loss under load.
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

struct State {
    front: UdpSocket,
    back: UdpSocket,
    client: Option<SocketAddr>,
    up: Link,
    down: Link,
    counters: Arc<Counters>,
}

impl State {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut buf_front = vec![0u8; MAX_DATAGRAM];
        let mut buf_back = vec![0u8; MAX_DATAGRAM];
        loop {
            let next = [self.up.next_arrival(), self.down.next_arrival()].into_iter().flatten().min();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stopped.changed() => return,
                r = self.front.recv_from(&mut buf_front) => {
                    if let Ok((n, from)) = r {
                        self.on_client(&buf_front[..n], from);
                        // Take what else is already queued, so a burst is modelled at once.
                        for _ in 1..READ_BATCH {
                            match self.front.try_recv_from(&mut buf_front) {
                                Ok((n, from)) => self.on_client(&buf_front[..n], from),
                                Err(_) => break,
                            }
                        }
                    }
                }
                r = self.back.recv(&mut buf_back) => {
                    // Errors here are ICMP port-unreachable reports from the target: keep going.
                    if let Ok(n) = r {
                        self.on_target(&buf_back[..n]);
                        for _ in 1..READ_BATCH {
                            match self.back.try_recv(&mut buf_back) {
                                Ok(n) => self.on_target(&buf_back[..n]),
                                Err(_) => break,
                            }
                        }
                    }
                }
                _ = sleep => {}
            }
            self.release(Instant::now());
        }
    }

    fn on_client(&mut self, d: &[u8], from: SocketAddr) {
        match self.client {
            None => {
                tracing::debug!(%from, "relay: client");
                self.client = Some(from);
            }
            Some(c) if c != from => {
                self.counters.foreign.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(_) => {}
        }
        offer(&mut self.up, &self.counters.up, d);
    }

    fn on_target(&mut self, d: &[u8]) {
        offer(&mut self.down, &self.counters.down, d);
    }

    /// Writes every datagram that is due by `now`.
    fn release(&mut self, now: Instant) {
        while let Some(d) = self.up.recv(now) {
            let r = self.back.try_send(&d);
            sent(&self.counters.up, r, d.len());
        }
        while let Some(d) = self.down.recv(now) {
            // Without a client (the target spoke first) there is nowhere to deliver.
            let r = match self.client {
                Some(client) => self.front.try_send_to(&d, client),
                None => Err(io::ErrorKind::NotConnected.into()),
            };
            sent(&self.counters.down, r, d.len());
        }
    }
}

fn offer(link: &mut Link, c: &DirCounters, d: &[u8]) {
    c.received.fetch_add(1, Ordering::Relaxed);
    c.received_bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
    let before = link.dropped;
    link.send(Instant::now(), d.to_vec());
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
