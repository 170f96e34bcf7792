//! The fast mode's datagrams as bytes: their types, limits and fields
//! ([protocol](crate::protocol) §6), [`Frame::decode`] and [`Frame::encode`],
//! and DATA written in place.

use std::ops::Range;
use std::time::Duration;

use super::*;

/// Bytes of header in a DATA datagram: type, packet number, offset.
pub const DATA_HEADER: usize = 1 + 8 + 8;
/// Bytes of the trailing checksum (CRC32C).
pub const CHECK_LEN: usize = 4;
/// Bytes a DATA datagram carries besides file bytes: [`DATA_HEADER`] and the check.
pub(crate) const DATA_OVERHEAD: usize = DATA_HEADER + CHECK_LEN;
/// The most SACK ranges one ACK carries.
pub const MAX_ACK_RANGES: usize = 64;
/// Shortest time between two STATS datagrams.
pub const STATS_INTERVAL: Duration = Duration::from_millis(100);
/// Longest controller name a STATS carries (longer names are cut).
pub(crate) const MAX_CC_NAME: usize = 32;

/// Type byte of CHALLENGE (sender → receiver).
pub(crate) const T_CHALLENGE: u8 = 0xC1;
/// Type byte of START (receiver → sender).
pub(crate) const T_START: u8 = 0xC2;
/// Type byte of DATA (sender → receiver).
pub(crate) const T_DATA: u8 = 0xC3;
/// Type byte of ACK (receiver → sender).
pub(crate) const T_ACK: u8 = 0xC4;
/// Type byte of DONE (sender → receiver).
pub(crate) const T_DONE: u8 = 0xC5;
/// Type byte of DONE-ACK (receiver → sender).
pub(crate) const T_DONE_ACK: u8 = 0xC6;
/// Type byte of STATS (sender → receiver).
pub(crate) const T_STATS: u8 = 0xC7;
/// Type byte of ACK-FREQUENCY (sender → receiver).
pub(crate) const T_ACK_FREQUENCY: u8 = 0xC8;
/// Type byte of ABORT (either way).
pub(crate) const T_ABORT: u8 = 0xC9;
/// Longest text an ABORT carries, in bytes (longer texts are cut at a
/// character boundary).
pub(crate) const MAX_ABORT_TEXT: usize = 200;
/// How many copies of an ABORT a machine sends, back to back: it is never
/// acknowledged nor repeated later, so copies stand in for repetition.
pub(crate) const ABORT_COPIES: u32 = 3;

/// Most bytes in one segmented (GSO) send: the largest UDP payload over
/// IPv4 (65,535 − 20 − 8); the kernel refuses a larger buffer.
pub(crate) const GSO_MAX_BYTES: usize = 65_507;

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
        /// The whole file's hash field, by the transfer's format
        /// (`Hasher::finalize`).
        hash: [u8; 32],
    },
    /// The receiver's verdict on the hash.
    DoneAck {
        /// Whether the receiver's hash matched.
        ok: bool,
    },
    /// The sender's own figures, for the receiver's display.
    Stats(SenderStats),
    /// How often the receiver should acknowledge (newest `seq` wins).
    AckFrequency {
        /// Request number; a receiver keeps the newest.
        seq: u64,
        /// Acknowledge at least every `threshold` DATA datagrams.
        threshold: u32,
        /// …or at most this long (µs) after an unacknowledged DATA.
        max_delay_us: u32,
    },
    /// The transfer ends now, for `reason` (either way).
    Abort {
        /// The CHALLENGE's cookie: only a peer that saw it can abort.
        cookie: u64,
        /// Why.
        reason: AbortReason,
        /// A short text for the person, at most `MAX_ABORT_TEXT` bytes of
        /// UTF-8 (possibly empty; escaped before it is shown).
        text: &'a str,
    },
}

/// Why a transfer was aborted: ABORT's reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// 1: the receiver gave up (Ctrl-C, an early exit).
    Cancelled,
    /// 2: the file changed on the server while it was sent.
    FileChanged,
    /// 3: the file became unreadable on the server (an I/O error).
    FileUnreadable,
    /// 4: the server is shutting down.
    ServerShutdown,
    /// 5: the user who asked for the file left the room.
    UserLeft,
    /// Any other code (from a newer peer).
    Other(u8),
}

impl AbortReason {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            AbortReason::Cancelled => 1,
            AbortReason::FileChanged => 2,
            AbortReason::FileUnreadable => 3,
            AbortReason::ServerShutdown => 4,
            AbortReason::UserLeft => 5,
            AbortReason::Other(c) => c,
        }
    }

    /// The reason of a code on the wire.
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => AbortReason::Cancelled,
            2 => AbortReason::FileChanged,
            3 => AbortReason::FileUnreadable,
            4 => AbortReason::ServerShutdown,
            5 => AbortReason::UserLeft,
            c => AbortReason::Other(c),
        }
    }
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortReason::Cancelled => f.write_str("cancelled by the receiver"),
            AbortReason::FileChanged => f.write_str("the file changed on the server while it was sent"),
            AbortReason::FileUnreadable => f.write_str("the file became unreadable on the server"),
            AbortReason::ServerShutdown => f.write_str("the server is shutting down"),
            AbortReason::UserLeft => f.write_str("the user left the room"),
            AbortReason::Other(c) => write!(f, "aborted (code {c})"),
        }
    }
}

/// An ABORT as a machine reports it: the reason and the peer's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    /// Why.
    pub reason: AbortReason,
    /// The text that came with it (from the network: shown escaped).
    pub text: String,
}

impl std::fmt::Display for Abort {
    /// The reason, then the text (terminal control characters escaped) if any.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        if !self.text.is_empty() {
            write!(f, ": {}", crate::text::escape(&self.text))?;
        }
        Ok(())
    }
}

/// `text` cut to at most [`MAX_ABORT_TEXT`] bytes, at a character boundary.
pub(crate) fn abort_text(text: &str) -> &str {
    let mut end = text.len().min(MAX_ABORT_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    /// Congestion controller (`newreno`, `cubic`, `bbr`...), at most `MAX_CC_NAME` ASCII bytes.
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

pub(super) fn check(bytes: &[u8]) -> [u8; CHECK_LEN] {
    // CRC-32/ISCSI is CRC32C (Castagnoli); the value fits 32 bits.
    (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32).to_be_bytes()
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
            T_ACK_FREQUENCY => Frame::AckFrequency { seq: r.u64()?, threshold: r.u32()?, max_delay_us: r.u32()? },
            T_ABORT => {
                let cookie = r.u64()?;
                let reason = AbortReason::from_code(r.take(1)?[0]);
                let n = usize::from(r.take(1)?[0]);
                if n > MAX_ABORT_TEXT {
                    return Err(DecodeError::Malformed);
                }
                let text = std::str::from_utf8(r.take(n)?).map_err(|_| DecodeError::Malformed)?;
                Frame::Abort { cookie, reason, text }
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
            Frame::AckFrequency { seq, threshold, max_delay_us } => {
                out.push(T_ACK_FREQUENCY);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&threshold.to_be_bytes());
                out.extend_from_slice(&max_delay_us.to_be_bytes());
            }
            Frame::Abort { cookie, reason, text } => {
                out.push(T_ABORT);
                out.extend_from_slice(&cookie.to_be_bytes());
                out.push(reason.code());
                let text = abort_text(text);
                out.push(text.len() as u8);
                out.extend_from_slice(text.as_bytes());
            }
        }
        let c = check(out);
        out.extend_from_slice(&c);
    }
}

/// Appends a DATA datagram to what `out` holds (a GSO batch is built in
/// place), its payload read in place: `fill` gets the datagram's `len`
/// payload bytes to fill, then the checksum is appended. On error `out` is
/// as it was.
pub(crate) fn append_data_with<E>(
    out: &mut Vec<u8>,
    pn: u64,
    offset: u64,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<(), E> {
    let at = out.len();
    out.push(T_DATA);
    out.extend_from_slice(&pn.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.resize(at + DATA_HEADER + len, 0);
    if let Err(e) = fill(&mut out[at + DATA_HEADER..]) {
        out.truncate(at);
        return Err(e);
    }
    let c = check(&out[at..]);
    out.extend_from_slice(&c);
    Ok(())
}

/// Appends a DATA datagram carrying the file's `len` bytes at `offset` from
/// `src`: copied once from the source's memory when it holds them (no
/// zero-fill first), else read in place ([`append_data_with`]).
pub(crate) fn append_data_from(
    out: &mut Vec<u8>,
    pn: u64,
    offset: u64,
    len: usize,
    src: &mut dyn Source,
) -> std::io::Result<()> {
    let held = src.cached(offset, len);
    if held.len() < len {
        return append_data_with(out, pn, offset, len, |buf| src.read_at(offset, buf));
    }
    let at = out.len();
    out.reserve(DATA_HEADER + len + CHECK_LEN);
    out.push(T_DATA);
    out.extend_from_slice(&pn.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&held[..len]);
    let c = check(&out[at..]);
    out.extend_from_slice(&c);
    Ok(())
}
