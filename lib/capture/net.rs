//! Layers 2 to 4: from a captured frame to an IP packet, and from an IP
//! payload to a TCP segment or UDP datagram. Zero-copy views; every length is
//! checked, nothing panics on malformed input.
//!
//! Link types: Ethernet (with any number of 802.1Q/802.1ad VLAN tags), Linux
//! cooked capture v1 (SLL) and v2 (SLL2), BSD null/loopback (either byte
//! order) and raw IPv4/IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// LINKTYPE_NULL: BSD loopback, 4-byte address family in the capturer's byte order.
pub const LINKTYPE_NULL: i32 = 0;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: i32 = 1;
/// LINKTYPE_RAW: a raw IPv4 or IPv6 packet.
pub const LINKTYPE_RAW: i32 = 101;
/// LINKTYPE_LOOP: OpenBSD loopback, address family in network byte order.
pub const LINKTYPE_LOOP: i32 = 108;
/// LINKTYPE_LINUX_SLL: Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: i32 = 113;
/// LINKTYPE_IPV4.
pub const LINKTYPE_IPV4: i32 = 228;
/// LINKTYPE_IPV6.
pub const LINKTYPE_IPV6: i32 = 229;
/// LINKTYPE_LINUX_SLL2: Linux cooked capture v2.
pub const LINKTYPE_LINUX_SLL2: i32 = 276;

/// Why a frame carries nothing we decode. Not an error of the capture: most
/// are simply other traffic (ARP, ICMP, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Skip {
    /// A link type we do not decode.
    #[error("link type {0} is not supported")]
    LinkType(i32),
    /// Not IPv4 or IPv6 (e.g. ARP).
    #[error("not IP (ethertype {0:#06x})")]
    NotIp(u16),
    /// Not TCP or UDP.
    #[error("IP protocol {0} is not TCP or UDP")]
    Protocol(u8),
    /// A header is cut short or inconsistent.
    #[error("malformed or truncated {0} header")]
    Malformed(&'static str),
}

/// Strips the link layer: returns the IP packet (v4 or v6, told by its first nibble).
pub fn link_payload(linktype: i32, data: &[u8]) -> Result<&[u8], Skip> {
    // Some writers put FCS/other flags in the upper bits of the link type.
    match linktype & 0x0fff_ffff {
        LINKTYPE_ETHERNET => ethernet(data),
        LINKTYPE_NULL | LINKTYPE_LOOP => data.get(4..).ok_or(Skip::Malformed("loopback")),
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Ok(data),
        LINKTYPE_LINUX_SLL => {
            let proto = be16(data, 14).ok_or(Skip::Malformed("Linux cooked"))?;
            ip_ethertype(proto, data.get(16..).ok_or(Skip::Malformed("Linux cooked"))?)
        }
        LINKTYPE_LINUX_SLL2 => {
            let proto = be16(data, 0).ok_or(Skip::Malformed("Linux cooked v2"))?;
            ip_ethertype(proto, data.get(20..).ok_or(Skip::Malformed("Linux cooked v2"))?)
        }
        other => Err(Skip::LinkType(other)),
    }
}

fn ethernet(data: &[u8]) -> Result<&[u8], Skip> {
    let mut at = 12;
    loop {
        let ty = be16(data, at).ok_or(Skip::Malformed("Ethernet"))?;
        match ty {
            0x8100 | 0x88a8 | 0x9100 => at += 4,
            _ => return ip_ethertype(ty, data.get(at + 2..).ok_or(Skip::Malformed("Ethernet"))?),
        }
    }
}

fn ip_ethertype(ty: u16, rest: &[u8]) -> Result<&[u8], Skip> {
    match ty {
        0x0800 | 0x86dd => Ok(rest),
        other => Err(Skip::NotIp(other)),
    }
}

#[inline]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

#[inline]
fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Fragment information of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification or IPv6 fragment identification.
    pub id: u32,
    /// Offset of this fragment's payload in the original payload, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// A parsed IP packet header with its payload.
#[derive(Clone, Copy, Debug)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The upper-layer protocol (6 TCP, 17 UDP).
    pub proto: u8,
    /// The payload, trimmed to the IP length (link padding removed).
    pub payload: &'a [u8],
    /// Set when this packet is one fragment of a larger one.
    pub fragment: Option<Fragment>,
    /// The capture holds less than the IP length says (snap length).
    pub truncated: bool,
}

/// Parses an IPv4 or IPv6 header.
pub fn ip(data: &[u8]) -> Result<IpPacket<'_>, Skip> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data),
        Some(6) => ipv6(data),
        _ => Err(Skip::Malformed("IP")),
    }
}

fn ipv4(d: &[u8]) -> Result<IpPacket<'_>, Skip> {
    const M: Skip = Skip::Malformed("IPv4");
    if d.len() < 20 {
        return Err(M);
    }
    let ihl = usize::from(d[0] & 0x0f) * 4;
    let total = usize::from(be16(d, 2).ok_or(M)?);
    if ihl < 20 || d.len() < ihl || total < ihl {
        return Err(M);
    }
    let truncated = d.len() < total;
    let end = total.min(d.len());
    let flags_frag = be16(d, 6).ok_or(M)?;
    let more = flags_frag & 0x2000 != 0;
    let offset = u32::from(flags_frag & 0x1fff) * 8;
    let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
    let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
    let fragment = (more || offset != 0).then(|| Fragment { id: u32::from(be16(d, 4).unwrap_or(0)), offset, more });
    Ok(IpPacket { src: src.into(), dst: dst.into(), proto: d[9], payload: &d[ihl..end], fragment, truncated })
}

fn ipv6(d: &[u8]) -> Result<IpPacket<'_>, Skip> {
    const M: Skip = Skip::Malformed("IPv6");
    if d.len() < 40 {
        return Err(M);
    }
    let plen = usize::from(be16(d, 4).ok_or(M)?);
    let truncated = d.len() < 40 + plen;
    let end = (40 + plen).min(d.len());
    let body = &d[..end];
    let src: [u8; 16] = d[8..24].try_into().map_err(|_| M)?;
    let dst: [u8; 16] = d[24..40].try_into().map_err(|_| M)?;
    let mut next = d[6];
    let mut at = 40;
    let mut fragment = None;
    // Walk the extension headers (at most a handful; bounded by the length).
    for _ in 0..16 {
        match next {
            0 | 43 | 60 => {
                let len = (usize::from(*body.get(at + 1).ok_or(M)?) + 1) * 8;
                next = body[at];
                at += len;
            }
            51 => {
                let len = (usize::from(*body.get(at + 1).ok_or(M)?) + 2) * 4;
                next = body[at];
                at += len;
            }
            44 => {
                let h = body.get(at..at + 8).ok_or(M)?;
                let off_flags = u16::from_be_bytes([h[2], h[3]]);
                fragment = Some(Fragment {
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    offset: u32::from(off_flags & 0xfff8),
                    more: off_flags & 1 != 0,
                });
                next = h[0];
                at += 8;
            }
            _ => break,
        }
        if at > body.len() {
            return Err(M);
        }
    }
    // An atomic fragment (offset 0, no more) is a whole packet.
    let fragment = fragment.filter(|f| f.more || f.offset != 0);
    Ok(IpPacket {
        src: Ipv6Addr::from(src).into(),
        dst: Ipv6Addr::from(dst).into(),
        proto: next,
        payload: body.get(at..).ok_or(M)?,
        fragment,
        truncated,
    })
}

/// TCP flag bits.
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// The acknowledgement field is significant.
    pub const ACK: u8 = 0x10;
}

/// A TCP segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first byte (or of the SYN/FIN).
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// See [`flags`].
    pub flags: u8,
    /// The segment payload.
    pub payload: &'a [u8],
}

/// Parses a TCP header.
pub(crate) fn tcp(d: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    const M: Skip = Skip::Malformed("TCP");
    if d.len() < 20 {
        return Err(M);
    }
    let off = usize::from(d[12] >> 4) * 4;
    if off < 20 || off > d.len() {
        return Err(M);
    }
    Ok(TcpSegment {
        src_port: be16(d, 0).ok_or(M)?,
        dst_port: be16(d, 2).ok_or(M)?,
        seq: be32(d, 4).ok_or(M)?,
        ack: be32(d, 8).ok_or(M)?,
        flags: d[13],
        payload: &d[off..],
    })
}

/// A UDP datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UdpDatagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The datagram payload.
    pub payload: &'a [u8],
}

/// Parses a UDP header (the payload is trimmed to the UDP length).
pub(crate) fn udp(d: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    const M: Skip = Skip::Malformed("UDP");
    if d.len() < 8 {
        return Err(M);
    }
    let len = usize::from(be16(d, 4).ok_or(M)?);
    // Length 0 is legal for jumbograms; otherwise trust it when it fits.
    let end = if (8..=d.len()).contains(&len) { len } else { d.len() };
    Ok(UdpDatagram { src_port: be16(d, 0).ok_or(M)?, dst_port: be16(d, 2).ok_or(M)?, payload: &d[8..end] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_garbage_frames_are_skipped_not_panics() {
        for lt in [0, 1, 101, 108, 113, 228, 229, 276, 999] {
            for n in 0..64 {
                let data = vec![0x45u8; n];
                if let Ok(p) = link_payload(lt, &data) {
                    let _ = ip(p).map(|p| (tcp(p.payload).is_ok(), udp(p.payload).is_ok()));
                }
            }
        }
    }

    #[test]
    fn vlan_tags_are_skipped() {
        // MAC addresses, an 802.1Q tag, an 802.1ad tag, then IPv4.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x88, 0xa8, 0, 7, 0x08, 0x00, 0x45]);
        assert_eq!(link_payload(LINKTYPE_ETHERNET, &f), Ok(&[0x45u8][..]));
        // A tag with nothing after it is malformed, not a panic.
        assert_eq!(link_payload(LINKTYPE_ETHERNET, &f[..16]), Err(Skip::Malformed("Ethernet")));
    }
}
