//! UDP plumbing shared by the fast-mode drivers ([`fast::driver`](crate::rdt::fast::driver))
//! and the impairing [`relay`](crate::rdt::relay): socket options, microsecond
//! waits, which send errors mean "lost", and batched I/O.
//!
//! # Batched and segmented I/O
//! [`Io`] goes through [`quinn_udp`]: `recvmmsg(2)` reads up to one datagram
//! per buffer per call, and with UDP GRO (Linux) one buffer may hold several
//! datagrams of one size (`RecvMeta::stride`) that [`segments`] splits
//! again. A send with a segment size leaves in one `sendmsg(2)` with
//! `UDP_SEGMENT` (GSO): the kernel cuts it into datagrams again, so the wire
//! sees exactly what single sends would produce. Where the OS has no GSO
//! (quinn-udp reports one segment) every datagram is sent alone.
//! quinn-udp sets `IP_MTU_DISCOVER = IP_PMTUDISC_PROBE` (and
//! `IPV6_DONTFRAG` on IPv6 sockets) itself; [`prepare`] sets the
//! don't-fragment options too, so they hold whatever quinn-udp's version does.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};

/// Send and receive buffer asked of the kernel (it may grant less).
pub(crate) const SOCKET_BUFFER: usize = 8 << 20;
/// Size of one receive buffer: the largest UDP payload, or one GRO buffer
/// (the kernel coalesces at most 64 KiB).
pub(crate) const RECV_BUFFER: usize = 65_536;

/// Sets an integer socket option, ignoring failure (every caller treats
/// these options as best effort).
#[cfg(target_os = "linux")]
fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: a valid socket and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Raises the socket buffers to [`SOCKET_BUFFER`], best effort: the kernel
/// may cap them, which only means more loss under load.
pub(crate) fn set_buffers(sock: socket2::SockRef<'_>) {
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    #[cfg(target_os = "linux")]
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // With CAP_NET_ADMIN, beyond net.core.rmem_max/wmem_max; harmless without.
        set_int(sock.as_raw_fd(), libc::SOL_SOCKET, opt, SOCKET_BUFFER as libc::c_int);
    }
}

/// Datagrams the kernel has dropped at `sock` because its receive buffer
/// was full (the socket's drop count, `SO_MEMINFO`, as `SO_RXQ_OVFL`
/// reports it per read); `None` where the OS does not say.
pub(crate) fn receive_drops(sock: &UdpSocket) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // The kernel fills as many of its counters as the buffer holds.
        let mut info = [0u32; 16];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: a valid socket, and a buffer of `len` bytes the kernel writes at most `len` of.
        let r = unsafe {
            libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MEMINFO, info.as_mut_ptr().cast(), &mut len)
        };
        let at = libc::SK_MEMINFO_DROPS as usize;
        (r == 0 && len as usize > at * 4).then(|| u64::from(info[at]))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = sock;
        None
    }
}

/// Makes `sock` ready for a fast transfer: non-blocking, large buffers, and
/// don't-fragment with the cached path MTU ignored, so a path-MTU probe too
/// big for the path is lost (or refused with EMSGSIZE), not fragmented.
pub(crate) fn prepare(sock: &UdpSocket) -> io::Result<()> {
    sock.set_nonblocking(true)?;
    set_buffers(socket2::SockRef::from(sock));
    #[cfg(target_os = "linux")]
    {
        set_int(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE);
        set_int(sock.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE);
    }
    Ok(())
}

/// Turns UDP GRO off again, for a socket handed to a reader of one datagram
/// per `recv_from` (the classic receiver).
pub(crate) fn gro_off(sock: &UdpSocket) {
    #[cfg(target_os = "linux")]
    set_int(sock.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 0);
    #[cfg(not(target_os = "linux"))]
    let _ = sock;
}

/// A non-blocking socket bound to `addr` with large buffers.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    set_buffers(socket2::SockRef::from(&sock));
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// The unspecified address, any port, of `peer`'s family: where a socket
/// that talks to `peer` binds.
pub(crate) fn unspecified_for(peer: SocketAddr) -> SocketAddr {
    match peer.ip() {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
}

/// A socket of its own ([`bind`] on [`unspecified_for`] `target`) connected to `target`.
pub(crate) fn connected(target: SocketAddr) -> io::Result<UdpSocket> {
    let sock = bind(unspecified_for(target))?;
    sock.connect(target)?;
    Ok(sock)
}

/// Waits until one of `socks` is readable or `d` has passed, to the
/// microsecond (`ppoll(2)`): pacing and release waits are often well under
/// a millisecond.
pub(crate) fn wait_readable<'a>(socks: impl IntoIterator<Item = &'a UdpSocket>, d: Duration) {
    let mut fds: Vec<libc::pollfd> =
        socks.into_iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let ts = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    // SAFETY: valid pollfds and a valid timespec for the duration of the call; no signal mask.
    unsafe {
        libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null());
    }
}

/// Waits until `sock` is readable or `until` (capped at `cap`); a wait
/// under 10 µs only yields the thread.
pub(crate) fn wait_readable_until(sock: &UdpSocket, until: Option<Instant>, cap: Duration) {
    let d = until.map_or(cap, |t| t.saturating_duration_since(Instant::now())).min(cap);
    if d < Duration::from_micros(10) {
        std::thread::yield_now();
        return;
    }
    wait_readable([sock], d);
}

/// Whether a `sendto` error means only "this datagram was lost" (the
/// transfer goes on) rather than a broken socket.
pub(crate) fn send_loss(e: &io::Error) -> bool {
    match e.raw_os_error() {
        // A bad descriptor or address is a bug or a dead socket, not loss.
        Some(libc::EBADF | libc::ENOTSOCK | libc::EINVAL | libc::EFAULT | libc::EAFNOSUPPORT) => false,
        // EPERM (firewall drop), ENOBUFS, ECONNREFUSED, EMSGSIZE, EHOSTUNREACH...
        Some(_) => true,
        None => false,
    }
}

/// A UDP socket with batched receives (`recvmmsg`, GRO) and segmented sends (GSO), see the module docs.
pub(crate) struct Io {
    pub(crate) sock: UdpSocket,
    state: UdpSocketState,
    /// `sendmsg` calls that succeeded or counted as loss.
    pub(crate) sends: u64,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl Io {
    /// Wraps `sock` (already [`prepare`]d) with `slots` receive buffers of [`RECV_BUFFER`] bytes.
    pub(crate) fn new(sock: UdpSocket, slots: usize) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&sock))?;
        let slots = slots.max(1);
        Ok(Self {
            sock,
            state,
            sends: 0,
            bufs: vec![vec![0; RECV_BUFFER]; slots],
            meta: vec![RecvMeta::default(); slots],
        })
    }

    /// How many datagrams one segmented send may carry (1 without GSO).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments().clamp(1, 64)
    }

    /// Reads what is waiting (one `recvmmsg`) and gives `f` each received
    /// buffer from `peer` with its GRO stride (0: one datagram), in order;
    /// buffers from anyone else are dropped. `Ok(false)` when nothing was
    /// waiting.
    pub(crate) fn recv_buffers(&mut self, peer: SocketAddr, mut f: impl FnMut(&[u8], usize)) -> io::Result<bool> {
        let n = {
            let mut iovs: Vec<IoSliceMut<'_>> = self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            match self.state.recv(UdpSockRef::from(&self.sock), &mut iovs, &mut self.meta) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        };
        for (buf, meta) in self.bufs.iter().zip(&self.meta).take(n) {
            if meta.addr == peer {
                f(&buf[..meta.len.min(buf.len())], meta.stride);
            }
        }
        Ok(true)
    }

    /// Sends `contents` to `peer`: one datagram, or with `segment` several
    /// of that size (the last may be shorter) in one GSO send. Waits briefly
    /// when the socket buffer is full; an OS error that means "lost" (see
    /// [`send_loss`]) is not an error.
    pub(crate) fn send(&mut self, contents: &[u8], segment: Option<usize>, peer: SocketAddr) -> io::Result<()> {
        let t = Transmit { destination: peer, ecn: None, contents, segment_size: segment, src_ip: None };
        loop {
            match self.state.try_send(UdpSockRef::from(&self.sock), &t) {
                Ok(()) => {
                    self.sends += 1;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe {
                        libc::poll(&mut fds, 1, 10);
                    }
                }
                // The device refused segmentation offload: quinn-udp has
                // turned GSO off for this socket; send the datagrams one by one.
                Err(e)
                    if segment.is_some_and(|s| s < contents.len())
                        && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
                {
                    let s = segment.unwrap_or(contents.len()).max(1);
                    for d in contents.chunks(s) {
                        self.send(d, None, peer)?;
                    }
                    return Ok(());
                }
                // Any other OS error is a lost datagram, not a failed transfer:
                // ICMP feedback (port unreachable, message too long), EPERM from
                // a firewall drop on the OUTPUT hook, ENOBUFS under load. The
                // machine's loss detection and timers deal with it; if the path
                // stays dead the idle timeout ends the transfer.
                Err(e) if send_loss(&e) => {
                    self.sends += 1;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The datagrams in one received buffer: GRO coalesces datagrams of one
/// size, `stride` bytes each, the last possibly shorter. A `stride` of 0
/// (no GRO information) means the buffer is one datagram.
pub(crate) fn segments(buf: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    let stride = if stride == 0 { buf.len().max(1) } else { stride };
    buf.chunks(stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_and_buffer_errors_are_loss_not_failure() {
        for errno in [libc::EPERM, libc::ENOBUFS, libc::ECONNREFUSED, libc::EMSGSIZE, libc::EHOSTUNREACH] {
            assert!(send_loss(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        for errno in [libc::EBADF, libc::ENOTSOCK, libc::EINVAL] {
            assert!(!send_loss(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        assert!(!send_loss(&io::Error::other("not an OS error")));
    }

    #[test]
    fn gro_buffers_split_at_the_stride_with_a_short_last_segment() {
        let buf: Vec<u8> = (0..1452 * 3 + 100).map(|i| (i / 1452) as u8).collect();
        let parts: Vec<&[u8]> = segments(&buf, 1452).collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [1452, 1452, 1452, 100]);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.iter().all(|&b| b == i as u8), "segment {i} holds another datagram's bytes");
        }
        // No GRO: the whole buffer is one datagram, whatever its size.
        assert_eq!(segments(&buf[..65_000.min(buf.len())], 0).count(), 1);
        assert_eq!(segments(&buf[..1452], 1452).count(), 1);
        assert_eq!(segments(&[], 1452).count(), 0);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn receive_buffer_drops_are_counted() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        // The smallest receive buffer the kernel grants, never read: most of 200 datagrams overflow it.
        socket2::SockRef::from(&b).set_recv_buffer_size(1).unwrap();
        assert_eq!(receive_drops(&b), Some(0));
        let to = b.local_addr().unwrap();
        for _ in 0..200 {
            let _ = a.send_to(&[7u8; 1200], to);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while receive_drops(&b) < Some(100) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let drops = receive_drops(&b).unwrap();
        assert!((100..=200).contains(&drops), "{drops} drops");
    }

    #[test]
    fn a_gso_batch_arrives_as_its_datagrams() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut a = Io::new(a, 1).unwrap();
        let mut b = Io::new(b, 4).unwrap();
        let batch: Vec<u8> = (0..1200 * 3 + 7).map(|i| (i / 1200) as u8).collect();
        a.send(&batch, Some(1200), b_addr).unwrap();
        assert_eq!(a.sends, 1);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 4 && Instant::now() < deadline {
            wait_readable([&b.sock], Duration::from_millis(50));
            b.recv_buffers(a_addr, |buf, stride| got.extend(segments(buf, stride).map(<[u8]>::to_vec))).unwrap();
        }
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [1200, 1200, 1200, 7]);
        assert!(got.iter().enumerate().all(|(i, d)| d.iter().all(|&x| x == i as u8)));
    }
}
