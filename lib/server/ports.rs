//! The port pool for update and transfer ports.
//!
//! A port is taken by binding a socket on it and comes back when the
//! [`PortGuard`] is dropped, so it returns to the pool however its
//! connection ends (leave, drop, timeout, failed or abandoned transfer).

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
}

/// A shared pool of ports; cheap to clone.
#[derive(Clone, Debug)]
pub struct PortPool {
    state: Arc<Mutex<State>>,
}

/// Holds one port of the pool; dropping it returns the port.
#[derive(Debug)]
pub struct PortGuard {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl PortGuard {
    /// The port held.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.used.remove(&self.port);
    }
}

impl PortPool {
    /// A pool described by `spec`.
    pub fn new(spec: PortSpec) -> Self {
        PortPool { state: Arc::new(Mutex::new(State { spec, used: BTreeSet::new() })) }
    }

    /// Ports currently handed out (for tests of port conservation).
    pub fn in_use(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).used.len()
    }

    /// Binds a TCP listener on a free pool port of `ip`; `None` if the pool is exhausted.
    pub fn bind_tcp(&self, ip: IpAddr) -> Option<(TcpListener, PortGuard)> {
        self.take(ip, |addr| {
            let sock = std::net::TcpListener::bind(addr)?;
            sock.set_nonblocking(true)?;
            TcpListener::from_std(sock)
        })
    }

    /// Binds a UDP socket on a free pool port of `ip`; `None` if the pool is exhausted.
    pub fn bind_udp(&self, ip: IpAddr) -> Option<(UdpSocket, PortGuard)> {
        self.take(ip, |addr| {
            let sock = std::net::UdpSocket::bind(addr)?;
            sock.set_nonblocking(true)?;
            UdpSocket::from_std(sock)
        })
    }

    fn take<S: Local>(&self, ip: IpAddr, bind: impl Fn(SocketAddr) -> io::Result<S>) -> Option<(S, PortGuard)> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let guard = |port| PortGuard { port, state: self.state.clone() };
        match s.spec {
            PortSpec::Ephemeral { max } => {
                if s.used.len() >= max {
                    return None;
                }
                let sock = bind(SocketAddr::new(ip, 0)).ok()?;
                let port = sock.port().ok()?;
                s.used.insert(port);
                Some((sock, guard(port)))
            }
            PortSpec::Range { lo, hi } => {
                for port in lo..=hi {
                    if s.used.contains(&port) {
                        continue;
                    }
                    // A port taken by another program is skipped, not counted.
                    if let Ok(sock) = bind(SocketAddr::new(ip, port)) {
                        s.used.insert(port);
                        return Some((sock, guard(port)));
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
        let pool = PortPool::new(PortSpec::Ephemeral { max: 2 });
        let ip = IpAddr::from([127, 0, 0, 1]);
        let a = pool.bind_tcp(ip).unwrap();
        let b = pool.bind_udp(ip).unwrap();
        assert_eq!(pool.in_use(), 2);
        assert!(pool.bind_tcp(ip).is_none());
        drop(a);
        assert_eq!(pool.in_use(), 1);
        let c = pool.bind_tcp(ip).unwrap();
        drop((b, c));
        assert_eq!(pool.in_use(), 0);
    }
}
