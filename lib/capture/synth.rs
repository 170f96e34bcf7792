//! Synthetic captures: pcap and pcapng writers and packet builders.
//!
//! The tests, the fuzz seeds and the throughput benchmark use these to make
//! captures of traffic they choose (every link type, IPv6, fragments,
//! retransmissions, loss). Checksums are left at zero: decoders of captures
//! (this one, Wireshark with default settings) do not verify them.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use super::net;

/// Writes a classic pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    nanos: bool,
    big_endian: bool,
}

fn u16b(be: bool, v: u16) -> [u8; 2] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}
fn u32b(be: bool, v: u32) -> [u8; 4] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header: microsecond or nanosecond timestamps, either byte order.
    pub fn new(mut out: W, linktype: i32, nanos: bool, big_endian: bool) -> io::Result<Self> {
        let be = big_endian;
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        out.write_all(&u32b(be, magic))?;
        out.write_all(&u16b(be, 2))?;
        out.write_all(&u16b(be, 4))?;
        out.write_all(&u32b(be, 0))?;
        out.write_all(&u32b(be, 0))?;
        out.write_all(&u32b(be, 262_144))?;
        out.write_all(&u32b(be, linktype as u32))?;
        Ok(PcapWriter { out, nanos, big_endian })
    }

    /// Writes one frame captured at `ts_ns`.
    pub fn packet(&mut self, ts_ns: i64, data: &[u8]) -> io::Result<()> {
        self.packet_cut(ts_ns, data, data.len())
    }

    /// Writes one frame of which only `caplen` bytes were captured.
    pub(crate) fn packet_cut(&mut self, ts_ns: i64, data: &[u8], caplen: usize) -> io::Result<()> {
        let be = self.big_endian;
        let caplen = caplen.min(data.len());
        let secs = ts_ns.div_euclid(1_000_000_000) as u32;
        let frac = ts_ns.rem_euclid(1_000_000_000) as u32;
        let frac = if self.nanos { frac } else { frac / 1000 };
        self.out.write_all(&u32b(be, secs))?;
        self.out.write_all(&u32b(be, frac))?;
        self.out.write_all(&u32b(be, caplen as u32))?;
        self.out.write_all(&u32b(be, data.len() as u32))?;
        self.out.write_all(&data[..caplen])
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes a pcapng file: one section, any number of interfaces.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
    big_endian: bool,
    /// Units per second of each interface.
    resolutions: Vec<u64>,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header block.
    pub fn new(mut out: W, big_endian: bool) -> io::Result<Self> {
        let be = big_endian;
        let mut b = Vec::new();
        b.extend_from_slice(&u32b(be, 0x1a2b_3c4d));
        b.extend_from_slice(&u16b(be, 1));
        b.extend_from_slice(&u16b(be, 0));
        b.extend_from_slice(&(-1i64 as u64).to_le_bytes());
        write_block(&mut out, be, 0x0a0d_0d0a, &b)?;
        Ok(PcapngWriter { out, big_endian, resolutions: Vec::new() })
    }

    /// Describes an interface; `tsresol` is the power of ten of its
    /// timestamp unit (6 = microseconds, 9 = nanoseconds). Returns its id.
    pub fn interface(&mut self, linktype: i32, tsresol: u8) -> io::Result<u32> {
        let be = self.big_endian;
        let mut b = Vec::new();
        b.extend_from_slice(&u16b(be, linktype as u16));
        b.extend_from_slice(&u16b(be, 0));
        b.extend_from_slice(&u32b(be, 262_144));
        // if_tsresol option (code 9, length 1), padded, then opt_endofopt.
        b.extend_from_slice(&u16b(be, 9));
        b.extend_from_slice(&u16b(be, 1));
        b.extend_from_slice(&[tsresol, 0, 0, 0]);
        b.extend_from_slice(&[0, 0, 0, 0]);
        write_block(&mut self.out, be, 1, &b)?;
        self.resolutions.push(10u64.pow(u32::from(tsresol.min(19))));
        Ok(self.resolutions.len() as u32 - 1)
    }

    /// Writes an enhanced packet block on interface `if_id`.
    pub fn packet(&mut self, if_id: u32, ts_ns: i64, data: &[u8]) -> io::Result<()> {
        let be = self.big_endian;
        let res = self.resolutions.get(if_id as usize).copied().unwrap_or(1_000_000);
        let ts = (i128::from(ts_ns.max(0)) * i128::from(res) / 1_000_000_000) as u64;
        let mut b = Vec::with_capacity(data.len() + 24);
        b.extend_from_slice(&u32b(be, if_id));
        b.extend_from_slice(&u32b(be, (ts >> 32) as u32));
        b.extend_from_slice(&u32b(be, ts as u32));
        b.extend_from_slice(&u32b(be, data.len() as u32));
        b.extend_from_slice(&u32b(be, data.len() as u32));
        b.extend_from_slice(data);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        write_block(&mut self.out, be, 6, &b)
    }

    /// Writes an interface statistics block (decoders must skip it).
    pub fn statistics(&mut self, if_id: u32) -> io::Result<()> {
        let be = self.big_endian;
        let mut b = Vec::new();
        b.extend_from_slice(&u32b(be, if_id));
        b.extend_from_slice(&[0; 8]);
        write_block(&mut self.out, be, 5, &b)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn write_block(out: &mut impl Write, be: bool, ty: u32, body: &[u8]) -> io::Result<()> {
    let len = (body.len() + 12) as u32;
    out.write_all(&u32b(be, ty))?;
    out.write_all(&u32b(be, len))?;
    out.write_all(body)?;
    out.write_all(&u32b(be, len))
}

/// Wraps an IP packet in a link-layer header of `linktype` (see [`net`]'s
/// `LINKTYPE_*`); `vlan` adds that many 802.1Q tags to Ethernet.
pub fn frame(linktype: i32, vlan: usize, ip: &[u8]) -> Vec<u8> {
    let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
    let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
    let mut f = Vec::with_capacity(ip.len() + 24);
    match linktype {
        net::LINKTYPE_ETHERNET => {
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
            for i in 0..vlan {
                f.extend_from_slice(&[0x81, 0x00, 0, 10 + i as u8]);
            }
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        net::LINKTYPE_NULL => {
            // Host byte order of the capturing machine: little-endian here.
            f.extend_from_slice(&(if v6 { 30u32 } else { 2u32 }).to_le_bytes());
        }
        net::LINKTYPE_LOOP => f.extend_from_slice(&(if v6 { 24u32 } else { 2u32 }).to_be_bytes()),
        net::LINKTYPE_LINUX_SLL => {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        net::LINKTYPE_LINUX_SLL2 => {
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        }
        _ => {}
    }
    f.extend_from_slice(ip);
    f
}

/// An IP packet (v4 or v6 by the addresses) around a transport payload.
pub(crate) fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    ip_packet_frag(src, dst, proto, payload, 0, 0, false)
}

fn ip_packet_frag(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8], id: u32, offset: usize, more: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload.len() + 48);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + payload.len()) as u16;
            let ff = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&(id as u16).to_be_bytes());
            p.extend_from_slice(&ff.to_be_bytes());
            p.extend_from_slice(&[64, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => {
            let s = match src {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            let d = match dst {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            let frag = offset != 0 || more;
            let plen = (payload.len() + if frag { 8 } else { 0 }) as u16;
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&plen.to_be_bytes());
            p.extend_from_slice(&[if frag { 44 } else { proto }, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            if frag {
                let of = (offset as u16 & 0xfff8) | u16::from(more);
                p.extend_from_slice(&[proto, 0]);
                p.extend_from_slice(&of.to_be_bytes());
                p.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
    p.extend_from_slice(payload);
    p
}

/// Splits a transport payload into IP fragments of at most `chunk` payload
/// bytes each (rounded down to a multiple of 8), in order.
pub fn ip_fragments(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8], id: u32, chunk: usize) -> Vec<Vec<u8>> {
    let chunk = (chunk / 8 * 8).max(8);
    let mut v = Vec::new();
    let mut at = 0;
    while at < payload.len() || v.is_empty() {
        let end = (at + chunk).min(payload.len());
        v.push(ip_packet_frag(src, dst, proto, &payload[at..end], id, at, end < payload.len()));
        at = end;
    }
    v
}

/// A TCP header and payload.
pub(crate) fn tcp_segment(src: u16, dst: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&src.to_be_bytes());
    s.extend_from_slice(&dst.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(payload);
    s
}

/// A UDP header and payload.
pub(crate) fn udp_datagram(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&src.to_be_bytes());
    s.extend_from_slice(&dst.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

/// One TCP connection whose sequence numbers are tracked, producing IP packets.
#[derive(Clone, Debug)]
pub struct TcpConn {
    /// The side that opens the connection.
    pub client: SocketAddr,
    /// The listening side.
    pub server: SocketAddr,
    /// Next sequence number of the client and of the server.
    pub seq: [u32; 2],
}

impl TcpConn {
    /// A connection with the given initial sequence numbers.
    pub fn new(client: SocketAddr, server: SocketAddr, isn_client: u32, isn_server: u32) -> Self {
        TcpConn { client, server, seq: [isn_client, isn_server] }
    }

    fn ends(&self, from_client: bool) -> (SocketAddr, SocketAddr, usize) {
        if from_client { (self.client, self.server, 0) } else { (self.server, self.client, 1) }
    }

    /// A segment with explicit sequence number (for retransmissions and
    /// reordering); does not advance the tracked sequence numbers.
    pub fn segment_at(&self, from_client: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (s, d, i) = self.ends(from_client);
        let t = tcp_segment(s.port(), d.port(), seq, self.seq[1 - i], flags, payload);
        ip_packet(s.ip(), d.ip(), 6, &t)
    }

    /// The next segment in order; SYN and FIN count one sequence number.
    pub fn segment(&mut self, from_client: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let i = usize::from(!from_client);
        let p = self.segment_at(from_client, self.seq[i], flags, payload);
        let extra = u32::from(flags & (net::flags::SYN | net::flags::FIN) != 0);
        self.seq[i] = self.seq[i].wrapping_add(payload.len() as u32 + extra);
        p
    }

    /// The three-way handshake: SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Vec<Vec<u8>> {
        use net::flags::{ACK, SYN};
        vec![self.segment(true, SYN, &[]), self.segment(false, SYN | ACK, &[]), self.segment(true, ACK, &[])]
    }

    /// Data with ACK (and PSH) set.
    pub fn data(&mut self, from_client: bool, payload: &[u8]) -> Vec<u8> {
        self.segment(from_client, net::flags::ACK | 0x08, payload)
    }

    /// FIN from one side.
    pub fn fin(&mut self, from_client: bool) -> Vec<u8> {
        self.segment(from_client, net::flags::ACK | net::flags::FIN, &[])
    }
}

/// A UDP datagram between two endpoints, as an IP packet.
pub fn udp_packet(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    ip_packet(src.ip(), dst.ip(), 17, &udp_datagram(src.port(), dst.port(), payload))
}
