//! The fast mode: chatctl's own reliable UDP, negotiated over the classic
//! hello so either peer may be the reference implementation.
//!
//! # Negotiation ([protocol](crate::protocol) §5, §6)
//! The receiver's first datagram is the classic hello, written so the
//! reference's Python `int()` reads it as window 98: the ASCII `0098`
//! followed by spaces up to [`HELLO_LEN`] bytes. A classic sender (the
//! reference, or chatctl's classic path) answers with classic data, which
//! the fast receiver reports as [`receiver::Handled::Classic`] so the caller
//! switches to the classic receiver. A chatctl sender recognises the exact
//! prefix ([`is_fast_hello`]) and answers with a `CHALLENGE`. No fast
//! datagram begins with an ASCII digit or whitespace, so none can be read as
//! classic data, ACK or hello. The hello is padded to 1200 bytes so it also
//! proves the path carries 1200-byte datagrams, as QUIC's Initial does.
//!
//! # Datagrams
//! Every fast datagram is `type (1 byte) ‖ fields ‖ check (8 bytes)`, where
//! `check` is the first 8 bytes of the BLAKE3 hash of everything before it
//! (a corrupted datagram is dropped). Integers are big-endian; offsets and
//! packet numbers are 64-bit and never wrap.
//!
//! | type | name | direction | fields |
//! |------|------|-----------|--------|
//! | `0xC1` | CHALLENGE | sender → receiver | cookie u64, file size u64 |
//! | `0xC2` | START | receiver → sender | cookie u64, resume offset u64, max data u64 |
//! | `0xC3` | DATA | sender → receiver | packet number u64, offset u64, payload |
//! | `0xC4` | ACK | receiver → sender | largest packet number u64, ack delay µs u32, max data u64, n u16, n × (start u64, end u64) |
//! | `0xC5` | DONE | sender → receiver | file size u64, BLAKE3 of the file (32 bytes) |
//! | `0xC6` | DONE-ACK | receiver → sender | status u8 (0 = hash verified, 1 = mismatch) |
//! | `0xC7` | STATS | sender → receiver | cwnd bytes u64, smoothed RTT µs u64, pacing rate bytes/s u64, packets lost u64, bytes retransmitted u64, n u8, controller name (n bytes ASCII) |
//!
//! - **Address validation**: until START echoes the CHALLENGE cookie, the
//!   sender sends at most three times the bytes it received (RFC 9000 §8),
//!   so a spoofed hello cannot turn the server into a flood.
//! - **ACK** ranges are received byte ranges (SACK), lowest first, the first
//!   usually starting at 0; `max data` is the flow-control limit: the sender
//!   never sends a byte at or beyond it. Data already acknowledged is never
//!   sent again.
//! - **Resume**: START's resume offset says the receiver already holds
//!   `0..resume`; the hash in DONE still covers the whole file.
//! - **Datagram size**: DATA starts at [`Config::max_datagram`] (path-safe)
//!   and grows when a larger DATA (a probe) is acknowledged; nothing else in
//!   the format depends on it.
//! - **STATS** tells the receiver what only the sender knows (its
//!   congestion window, RTT, loss and retransmissions) for `fetch -v`. The
//!   sender sends it after address validation only, at most every
//!   [`STATS_INTERVAL`], while sending data; it is informative: a lost STATS
//!   is not repeated and nothing depends on it.
//! - **Unknown types**: a peer ignores a datagram whose checksum is valid
//!   but whose type it does not know ([`DecodeError::Type`]), so new
//!   informative types (like STATS, added after the first six) can be sent
//!   to older peers. A new type must not be an ASCII digit or whitespace
//!   (that would read as classic data) and must not be needed for the
//!   transfer to complete.
//! - **End**: once every byte is acknowledged the sender repeats DONE (with
//!   RTO backoff) until DONE-ACK; the receiver verifies the hash, answers,
//!   and lingers to answer repeated DONEs. A sender that never hears the
//!   DONE-ACK still ends (all data was acknowledged) and says so.

use std::ops::Range;
use std::time::Duration;

use crate::rdt::cc::Algorithm;

pub mod driver;
pub mod receiver;
pub mod sender;

/// The hello's prefix: `int("0098")` is 98 for a classic peer.
pub const HELLO_PREFIX: &[u8] = b"0098";
/// The hello's padded length (QUIC's minimum Initial size).
pub const HELLO_LEN: usize = 1200;
/// Bytes of header in a DATA datagram: type, packet number, offset.
pub const DATA_HEADER: usize = 1 + 8 + 8;
/// Bytes of the trailing checksum.
pub const CHECK_LEN: usize = 8;
/// The most SACK ranges one ACK carries.
pub const MAX_ACK_RANGES: usize = 64;
/// Shortest time between two STATS datagrams.
pub const STATS_INTERVAL: Duration = Duration::from_millis(100);
/// Longest controller name a STATS carries (longer names are cut).
pub const MAX_CC_NAME: usize = 32;

/// Type byte of CHALLENGE (sender → receiver).
pub const T_CHALLENGE: u8 = 0xC1;
/// Type byte of START (receiver → sender).
pub const T_START: u8 = 0xC2;
/// Type byte of DATA (sender → receiver).
pub const T_DATA: u8 = 0xC3;
/// Type byte of ACK (receiver → sender).
pub const T_ACK: u8 = 0xC4;
/// Type byte of DONE (sender → receiver).
pub const T_DONE: u8 = 0xC5;
/// Type byte of DONE-ACK (receiver → sender).
pub const T_DONE_ACK: u8 = 0xC6;
/// Type byte of STATS (sender → receiver).
pub const T_STATS: u8 = 0xC7;

/// Settings shared by sender and receiver.
#[derive(Debug, Clone)]
pub struct Config {
    /// Congestion controller of the sender.
    pub cc: Algorithm,
    /// Largest UDP payload sent. 1452 fits IPv6 over a 1500-byte MTU; loopback
    /// and jumbo paths may use more.
    pub max_datagram: usize,
    /// Lower bound of the RTO (RFC 6298 says 1 s; 200 ms like Linux).
    pub min_rto: Duration,
    /// Give up after hearing nothing from the peer for this long.
    pub idle_timeout: Duration,
    /// Receiver: how far beyond the contiguous prefix the sender may send.
    pub receive_window: u64,
    /// Receiver: largest delay before acknowledging (RFC 9000's max_ack_delay).
    pub max_ack_delay: Duration,
    /// Seed for the cookie; drivers take it from the OS.
    pub seed: u64,
    /// Pacing: bursts of at most this many datagrams.
    pub pacing_burst: u32,
    /// Path-MTU probing (DPLPMTUD-style): datagram sizes tried in turn above
    /// `max_datagram`, one DATA probe at a time; an acknowledged probe
    /// raises the datagram size, a lost one stops the probing (and does not
    /// count as congestion). The receiver accepts any size up to 65,507.
    pub probe_datagrams: Vec<usize>,
    /// Whether the path may be probed for larger datagrams: when false,
    /// [`Config::for_path`] keeps `max_datagram` even
    /// on loopback and no sizes in `probe_datagrams` are tried. Turn it off to
    /// emulate a 1500-byte-MTU path through a loopback relay.
    pub probe: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cc: Algorithm::default(),
            max_datagram: 1452,
            min_rto: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(10),
            receive_window: 64 << 20,
            max_ack_delay: Duration::from_millis(5),
            seed: 0x5eed,
            pacing_burst: 16,
            probe_datagrams: vec![8972, 16_384, 65_000],
            probe: true,
        }
    }
}

impl Config {
    /// File bytes per DATA datagram.
    pub fn payload_len(&self) -> usize {
        self.max_datagram.saturating_sub(DATA_HEADER + CHECK_LEN).max(1)
    }
}

/// Whether `datagram` is a chatctl receiver's fast-capable hello.
pub fn is_fast_hello(datagram: &[u8]) -> bool {
    datagram.starts_with(HELLO_PREFIX) && datagram[HELLO_PREFIX.len()..].iter().all(|&b| b == b' ')
}

/// The fast-capable hello.
pub fn encode_hello() -> Vec<u8> {
    let mut v = HELLO_PREFIX.to_vec();
    v.resize(HELLO_LEN, b' ');
    v
}

/// One decoded fast datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Sender's address-validation cookie and the file size.
    Challenge {
        /// The value START must echo.
        cookie: u64,
        /// The file's size in bytes.
        size: u64,
    },
    /// Receiver echoes the cookie, says what it already has and how far the sender may go.
    Start {
        /// The CHALLENGE's cookie.
        cookie: u64,
        /// The receiver already holds bytes `0..resume`.
        resume: u64,
        /// Flow control: the sender sends no byte at or beyond this offset.
        max_data: u64,
    },
    /// File bytes at `offset`.
    Data {
        /// Packet number: new for every DATA, retransmissions included.
        pn: u64,
        /// Offset of `payload` in the file.
        offset: u64,
        /// The file's bytes.
        payload: &'a [u8],
    },
    /// Selective acknowledgement.
    Ack {
        /// The largest packet number received.
        largest_pn: u64,
        /// How long the receiver held that packet before this ACK, in microseconds.
        delay_us: u32,
        /// Flow control: the sender sends no byte at or beyond this offset.
        max_data: u64,
        /// Byte ranges received, lowest first; at most [`MAX_ACK_RANGES`].
        ranges: Vec<Range<u64>>,
    },
    /// Every byte is acknowledged; here is the file's hash.
    Done {
        /// The file's size in bytes.
        size: u64,
        /// BLAKE3 of the whole file.
        hash: [u8; 32],
    },
    /// The receiver's verdict on the hash.
    DoneAck {
        /// Whether the receiver's hash matched.
        ok: bool,
    },
    /// The sender's own figures, for the receiver's display.
    Stats(SenderStats),
}

/// What only the sender knows about a transfer, sent to the receiver in
/// STATS so that `fetch -v` can show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SenderStats {
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Smoothed RTT (whole microseconds on the wire, and `srtt_us` in JSON).
    #[serde(rename = "srtt_us", serialize_with = "micros")]
    pub srtt: Duration,
    /// Pacing rate, bytes per second.
    pub pacing_rate: u64,
    /// Packets declared lost so far.
    pub packets_lost: u64,
    /// File bytes sent again so far.
    pub bytes_retransmitted: u64,
    /// Congestion controller (`newreno`, `cubic`, `bbr`...), at most [`MAX_CC_NAME`] ASCII bytes.
    pub cc: String,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Why a datagram is not a valid fast datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than a type byte and checksum.
    #[error("datagram too short")]
    Short,
    /// The checksum does not match (corruption).
    #[error("datagram checksum mismatch")]
    Checksum,
    /// Unknown type byte.
    #[error("unknown fast datagram type {0:#04x}")]
    Type(u8),
    /// Fields do not fit the declared type.
    #[error("malformed fast datagram")]
    Malformed,
}

fn check(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let h = blake3::hash(bytes);
    let mut c = [0; CHECK_LEN];
    c.copy_from_slice(&h.as_bytes()[..CHECK_LEN]);
    c
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| DecodeError::Malformed)?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| DecodeError::Malformed)?))
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| DecodeError::Malformed)?))
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() { Ok(()) } else { Err(DecodeError::Malformed) }
    }
}

impl<'a> Frame<'a> {
    /// Decodes and verifies one datagram.
    pub fn decode(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        if datagram.len() < 1 + CHECK_LEN {
            return Err(DecodeError::Short);
        }
        let (body, c) = datagram.split_at(datagram.len() - CHECK_LEN);
        if check(body) != c {
            return Err(DecodeError::Checksum);
        }
        let mut r = Reader(&body[1..]);
        let f = match body[0] {
            T_CHALLENGE => Frame::Challenge { cookie: r.u64()?, size: r.u64()? },
            T_START => Frame::Start { cookie: r.u64()?, resume: r.u64()?, max_data: r.u64()? },
            T_DATA => {
                let pn = r.u64()?;
                let offset = r.u64()?;
                let payload = std::mem::take(&mut r.0);
                offset.checked_add(payload.len() as u64).ok_or(DecodeError::Malformed)?;
                Frame::Data { pn, offset, payload }
            }
            T_ACK => {
                let largest_pn = r.u64()?;
                let delay_us = r.u32()?;
                let max_data = r.u64()?;
                let n = usize::from(r.u16()?);
                if n > MAX_ACK_RANGES {
                    return Err(DecodeError::Malformed);
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    let (s, e) = (r.u64()?, r.u64()?);
                    if s > e {
                        return Err(DecodeError::Malformed);
                    }
                    ranges.push(s..e);
                }
                Frame::Ack { largest_pn, delay_us, max_data, ranges }
            }
            T_DONE => {
                let size = r.u64()?;
                let hash = r.take(32)?.try_into().map_err(|_| DecodeError::Malformed)?;
                Frame::Done { size, hash }
            }
            T_DONE_ACK => Frame::DoneAck { ok: r.take(1)?[0] == 0 },
            T_STATS => {
                let cwnd = r.u64()?;
                let srtt = Duration::from_micros(r.u64()?);
                let (pacing_rate, packets_lost, bytes_retransmitted) = (r.u64()?, r.u64()?, r.u64()?);
                let n = usize::from(r.take(1)?[0]);
                let name = r.take(n)?;
                if n > MAX_CC_NAME || !name.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(DecodeError::Malformed);
                }
                let cc = String::from_utf8_lossy(name).into_owned();
                Frame::Stats(SenderStats { cwnd, srtt, pacing_rate, packets_lost, bytes_retransmitted, cc })
            }
            t => return Err(DecodeError::Type(t)),
        };
        r.end()?;
        Ok(f)
    }

    /// Encodes into `out` (cleared first), checksum included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Frame::Challenge { cookie, size } => {
                out.push(T_CHALLENGE);
                out.extend_from_slice(&cookie.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
            }
            Frame::Start { cookie, resume, max_data } => {
                out.push(T_START);
                out.extend_from_slice(&cookie.to_be_bytes());
                out.extend_from_slice(&resume.to_be_bytes());
                out.extend_from_slice(&max_data.to_be_bytes());
            }
            Frame::Data { pn, offset, payload } => {
                out.push(T_DATA);
                out.extend_from_slice(&pn.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Frame::Ack { largest_pn, delay_us, max_data, ranges } => {
                out.push(T_ACK);
                out.extend_from_slice(&largest_pn.to_be_bytes());
                out.extend_from_slice(&delay_us.to_be_bytes());
                out.extend_from_slice(&max_data.to_be_bytes());
                let n = ranges.len().min(MAX_ACK_RANGES);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for r in &ranges[..n] {
                    out.extend_from_slice(&r.start.to_be_bytes());
                    out.extend_from_slice(&r.end.to_be_bytes());
                }
            }
            Frame::Done { size, hash } => {
                out.push(T_DONE);
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(hash);
            }
            Frame::DoneAck { ok } => {
                out.push(T_DONE_ACK);
                out.push(if *ok { 0 } else { 1 });
            }
            Frame::Stats(s) => {
                out.push(T_STATS);
                let srtt_us = u64::try_from(s.srtt.as_micros()).unwrap_or(u64::MAX);
                for v in [s.cwnd, srtt_us, s.pacing_rate, s.packets_lost, s.bytes_retransmitted] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                let name: Vec<u8> = s.cc.bytes().filter(u8::is_ascii_graphic).take(MAX_CC_NAME).collect();
                out.push(name.len() as u8);
                out.extend_from_slice(&name);
            }
        }
        let c = check(out);
        out.extend_from_slice(&c);
    }
}

/// Encodes a DATA datagram whose payload is read in place: the caller fills
/// `out[DATA_HEADER..DATA_HEADER + len]` through `fill`, then the checksum is appended.
pub fn encode_data_with<E>(
    out: &mut Vec<u8>,
    pn: u64,
    offset: u64,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<(), E> {
    out.clear();
    out.push(T_DATA);
    out.extend_from_slice(&pn.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.resize(DATA_HEADER + len, 0);
    fill(&mut out[DATA_HEADER..])?;
    let c = check(out);
    out.extend_from_slice(&c);
    Ok(())
}

/// Where the sender reads the file: positioned reads, so the machine stays free of I/O policy.
pub trait Source {
    /// Fills `buf` with the file's bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// Where the receiver writes the file: positioned writes, out of order.
pub trait Sink {
    /// Writes `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;
    /// Reads back (to verify the final hash).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

fn slice_at(v: &[u8], offset: u64, len: usize) -> std::io::Result<Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
    let end = start.checked_add(len).filter(|&e| e <= v.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
    Ok(start..end)
}

impl Source for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let r = slice_at(self, offset, buf.len())?;
        buf.copy_from_slice(&self[r]);
        Ok(())
    }
}

impl Sink for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let end = start + data.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(data);
        Ok(())
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let r = slice_at(self, offset, buf.len())?;
        buf.copy_from_slice(&self[r]);
        Ok(())
    }
}

#[cfg(unix)]
impl Source for std::fs::File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

#[cfg(unix)]
impl Sink for std::fs::File {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

#[cfg(unix)]
impl Source for &std::fs::File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(*self, buf, offset)
    }
}

#[cfg(unix)]
impl Sink for &std::fs::File {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(*self, data, offset)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(*self, buf, offset)
    }
}

/// Live figures of a transfer (for `fetch -v` and server logs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Datagrams sent (all kinds).
    pub datagrams_sent: u64,
    /// File bytes sent including retransmissions.
    pub bytes_sent: u64,
    /// File bytes sent again after a loss.
    pub bytes_retransmitted: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Retransmission timeouts.
    pub rtos: u64,
    /// File bytes acknowledged (sender) or received (receiver).
    pub bytes_done: u64,
    /// Receiver: the sender's own figures from its last STATS (none yet, or
    /// from a sender that does not send STATS).
    pub sender: Option<SenderStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip_and_reject_corruption() {
        let frames = [
            Frame::Challenge { cookie: 7, size: 1 << 40 },
            Frame::Start { cookie: 7, resume: 5, max_data: 9 },
            Frame::Data { pn: u64::MAX, offset: 1 << 33, payload: b"abc" },
            Frame::Ack { largest_pn: 3, delay_us: 10, max_data: 100, ranges: vec![0..10, 20..30] },
            Frame::Done { size: 3, hash: [9; 32] },
            Frame::DoneAck { ok: true },
            Frame::Stats(SenderStats {
                cwnd: 1 << 20,
                srtt: Duration::from_micros(1234),
                pacing_rate: 800_000_000,
                packets_lost: 3,
                bytes_retransmitted: 4096,
                cc: "bbr".into(),
            }),
        ];
        let mut out = Vec::new();
        for f in frames {
            f.encode(&mut out);
            assert!(!out[0].is_ascii_digit() && !out[0].is_ascii_whitespace());
            assert_eq!(Frame::decode(&out), Ok(f.clone()));
            let mut bad = out.clone();
            bad[1] ^= 1;
            assert_eq!(Frame::decode(&bad), Err(DecodeError::Checksum));
            assert_eq!(crate::rdt::classic::Data::parse(&out).map(|_| ()), None);
        }
    }

    #[test]
    fn stats_names_are_bounded_ascii() {
        let mut out = Vec::new();
        let long = SenderStats { cc: format!("{}\u{1b}[2J", "x".repeat(40)), ..SenderStats::default() };
        Frame::Stats(long).encode(&mut out);
        let Ok(Frame::Stats(s)) = Frame::decode(&out) else { panic!("{out:?}") };
        assert_eq!(s.cc, "x".repeat(MAX_CC_NAME));
        // A name with a control character on the wire is malformed.
        let mut bad = Vec::new();
        Frame::Stats(SenderStats { cc: "ab".into(), ..SenderStats::default() }).encode(&mut bad);
        let body_len = bad.len() - CHECK_LEN;
        bad[body_len - 1] = 0x1b;
        let c = check(&bad[..body_len]);
        bad[body_len..].copy_from_slice(&c);
        assert_eq!(Frame::decode(&bad), Err(DecodeError::Malformed));
    }

    #[test]
    fn unknown_types_with_a_valid_checksum_are_reported_as_such() {
        for t in [0xC8u8, 0xFF, 0x80] {
            let mut d = vec![t, 1, 2, 3];
            let c = check(&d);
            d.extend_from_slice(&c);
            assert_eq!(Frame::decode(&d), Err(DecodeError::Type(t)));
        }
    }

    #[test]
    fn hello_is_a_classic_window_of_98() {
        let h = encode_hello();
        assert_eq!(h.len(), HELLO_LEN);
        assert!(is_fast_hello(&h));
        assert_eq!(crate::rdt::classic::parse_window(&h), Some(98));
        assert!(!is_fast_hello(b"98"));
        assert!(!is_fast_hello(b"20"));
    }
}
