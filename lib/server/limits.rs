//! Connection limits: a cap per client address on connections that have not
//! joined, as hardened IRC and HTTP servers have. With the global cap
//! (`Config::max_connections`) and the deadline to send `100`
//! (`Config::unjoined_timeout`), one host holding idle connections cannot
//! lock anyone else out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpStream;

/// Counts, per address, the connections that have not joined yet.
#[derive(Clone, Debug)]
pub(crate) struct Hosts {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

/// One connection that has not joined yet; dropping it (at the first join, or
/// when the connection ends) frees its place in its address's count.
#[derive(Debug)]
pub(crate) struct Unjoined {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Hosts {
    /// At most `max` unjoined connections per address.
    pub(crate) fn new(max: usize) -> Self {
        Hosts { counts: Arc::default(), max }
    }

    /// Counts a new connection from `ip`; `None` if `ip` is at its cap.
    pub(crate) fn enter(&self, ip: IpAddr) -> Option<Unjoined> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Unjoined { ip, counts: self.counts.clone() })
    }
}

impl Drop for Unjoined {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

/// Closes a refused connection at once with a reset, so that it leaves
/// nothing behind on the server (no TIME_WAIT).
pub(crate) fn refuse(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_per_address_that_frees_on_drop() {
        let hosts = Hosts::new(2);
        let (a, b) = (IpAddr::from([127, 0, 0, 3]), IpAddr::from([127, 0, 0, 1]));
        let x = hosts.enter(a).unwrap();
        let _y = hosts.enter(a).unwrap();
        assert!(hosts.enter(a).is_none());
        let _z = hosts.enter(b).unwrap();
        drop(x);
        assert!(hosts.enter(a).is_some());
    }
}
