//! The port pool for update and transfer ports.
//!
//! A port is taken by binding a socket on it and comes back when the
//! [`PortGuard`] is dropped, so it returns to the pool however its
//! connection ends (leave, drop, timeout, failed or abandoned transfer).
//!
//! The pool is split: as many ports as the room has slots are kept for
//! update connections, so that transfers (however many users start) never
//! take the port a joining user needs; `4003` then means the room is full.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, UdpSocket};

use super::config::PortSpec;

#[derive(Debug)]
struct State {
    spec: PortSpec,
    /// Ports handed out (for `Ephemeral`, the OS-assigned numbers).
    used: BTreeSet<u16>,
    /// How many of `used` are transfer ports.
    transfers: usize,
    /// Most transfer ports at once: the capacity less the update ports kept.
    max_transfers: usize,
}

/// What a port is taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// An update connection: may take any free port.
    Update,
    /// A transfer: may not take the ports kept for update connections.
    Transfer,
}

/// A shared pool of ports; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct PortPool {
    state: Arc<Mutex<State>>,
}

/// Holds one port of the pool; dropping it returns the port.
#[derive(Debug)]
pub(crate) struct PortGuard {
    port: u16,
    for_transfer: bool,
    state: Arc<Mutex<State>>,
}

impl PortGuard {
    /// The port held.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.used.remove(&self.port);
        if self.for_transfer {
            s.transfers -= 1;
        }
    }
}

impl PortPool {
    /// A pool described by `spec`, keeping `update_ports` of its ports
    /// (the room's size) for update connections.
    pub(crate) fn new(spec: PortSpec, update_ports: usize) -> Self {
        let max_transfers = spec.capacity().saturating_sub(update_ports);
        PortPool { state: Arc::new(Mutex::new(State { spec, used: BTreeSet::new(), transfers: 0, max_transfers })) }
    }

    /// Ports currently handed out (for tests of port conservation).
    pub(crate) fn in_use(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).used.len()
    }

    /// Binds a TCP listener on a free pool port of `ip` for `what`; `None`
    /// if no port is free for it.
    pub(crate) fn bind_tcp(&self, ip: IpAddr, what: Use) -> Option<(TcpListener, PortGuard)> {
        self.take(ip, what, |addr| {
            let sock = std::net::TcpListener::bind(addr)?;
            sock.set_nonblocking(true)?;
            TcpListener::from_std(sock)
        })
    }

    /// Binds a UDP socket on a free pool port of `ip` for a transfer; `None`
    /// if no transfer port is free.
    pub(crate) fn bind_udp(&self, ip: IpAddr) -> Option<(UdpSocket, PortGuard)> {
        self.take(ip, Use::Transfer, |addr| {
            let sock = std::net::UdpSocket::bind(addr)?;
            sock.set_nonblocking(true)?;
            UdpSocket::from_std(sock)
        })
    }

    fn take<S: Local>(
        &self,
        ip: IpAddr,
        what: Use,
        bind: impl Fn(SocketAddr) -> io::Result<S>,
    ) -> Option<(S, PortGuard)> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let for_transfer = what == Use::Transfer;
        if for_transfer && s.transfers >= s.max_transfers {
            return None;
        }
        s.transfers += usize::from(for_transfer);
        let guard = |port| PortGuard { port, for_transfer, state: self.state.clone() };
        let taken = Self::bind_free(&mut s, ip, bind);
        if taken.is_none() {
            s.transfers -= usize::from(for_transfer);
        }
        taken.map(|(sock, port)| (sock, guard(port)))
    }

    fn bind_free<S: Local>(s: &mut State, ip: IpAddr, bind: impl Fn(SocketAddr) -> io::Result<S>) -> Option<(S, u16)> {
        match s.spec {
            PortSpec::Ephemeral { max } => {
                if s.used.len() >= max {
                    return None;
                }
                let sock = bind(SocketAddr::new(ip, 0)).ok()?;
                let port = sock.port().ok()?;
                s.used.insert(port);
                Some((sock, port))
            }
            PortSpec::Range { lo, hi } => {
                for port in lo..=hi {
                    if s.used.contains(&port) {
                        continue;
                    }
                    // A port taken by another program is skipped, not counted.
                    if let Ok(sock) = bind(SocketAddr::new(ip, port)) {
                        s.used.insert(port);
                        return Some((sock, port));
                    }
                }
                None
            }
        }
    }
}

trait Local {
    fn port(&self) -> io::Result<u16>;
}
impl Local for TcpListener {
    fn port(&self) -> io::Result<u16> {
        Ok(self.local_addr()?.port())
    }
}
impl Local for UdpSocket {
    fn port(&self) -> io::Result<u16> {
        Ok(self.local_addr()?.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ephemeral_pool_is_bounded_and_returns_ports() {
        let pool = PortPool::new(PortSpec::Ephemeral { max: 2 }, 0);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let a = pool.bind_tcp(ip, Use::Update).unwrap();
        let b = pool.bind_udp(ip).unwrap();
        assert_eq!(pool.in_use(), 2);
        assert!(pool.bind_tcp(ip, Use::Update).is_none());
        drop(a);
        assert_eq!(pool.in_use(), 1);
        let c = pool.bind_tcp(ip, Use::Transfer).unwrap();
        drop((b, c));
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn transfers_never_take_the_update_ports() {
        let pool = PortPool::new(PortSpec::Ephemeral { max: 4 }, 2);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let t1 = pool.bind_udp(ip).unwrap();
        let t2 = pool.bind_tcp(ip, Use::Transfer).unwrap();
        assert!(pool.bind_udp(ip).is_none());
        assert!(pool.bind_tcp(ip, Use::Transfer).is_none());
        let u1 = pool.bind_tcp(ip, Use::Update).unwrap();
        let u2 = pool.bind_tcp(ip, Use::Update).unwrap();
        assert!(pool.bind_tcp(ip, Use::Update).is_none());
        drop(t1);
        // A freed transfer port serves either use.
        let u3 = pool.bind_tcp(ip, Use::Update).unwrap();
        drop((t2, u1, u2, u3));
        assert_eq!(pool.in_use(), 0);
        assert!(pool.bind_udp(ip).is_some());
    }
}
