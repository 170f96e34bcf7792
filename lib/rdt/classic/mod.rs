//! Classic go-back-N, the reference implementation's RDT ([protocol](crate::protocol) §5).
//!
//! Wire format, all ASCII:
//! - hello (receiver → sender, first datagram): the window `W` in decimal, e.g. `20`;
//! - data (sender → receiver): a flag (`1` last packet, else `0`), 2 digits of
//!   sequence number (mod `W + 1`), then at most 1000 bytes of the file;
//! - ACK (receiver → sender): the decimal, unpadded, of the next sequence
//!   number expected, mod `W + 1`.

pub mod receiver;

pub use crate::wire::CLASSIC_UDP_CHUNK as CHUNK;

pub mod sender;

/// The largest window the 2-digit sequence number allows (sequence 0…98 needs W+1 ≤ 99).
pub const MAX_WINDOW: u8 = 98;

/// Parses a hello (the receiver's window) as the reference's Python `int()`
/// would: optional surrounding ASCII whitespace around decimal digits.
/// Returns `None` for anything else or a window outside `1..=98`.
pub fn parse_window(datagram: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(datagram).ok()?.trim_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Like Python's int(): leading zeros are fine ("0098" is 98).
    let digits = s.trim_start_matches('0');
    if digits.len() > 3 {
        return None;
    }
    let w: u16 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    u8::try_from(w).ok().filter(|w| (1..=MAX_WINDOW).contains(w))
}

/// The hello for window `w`.
pub fn encode_window(w: u8) -> Vec<u8> {
    w.to_string().into_bytes()
}

/// A classic data datagram, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    /// This is the last packet of the file.
    pub last: bool,
    /// Sequence number, `0..=W`.
    pub seq: u8,
    /// The file's bytes: at most [`CHUNK`], empty only for an empty file.
    pub payload: &'a [u8],
}

impl<'a> Data<'a> {
    /// Parses a data datagram; `None` if it is not one (too short, non-digits,
    /// or more than [`CHUNK`] bytes of payload).
    pub fn parse(datagram: &'a [u8]) -> Option<Self> {
        let [flag, d1, d0, payload @ ..] = datagram else { return None };
        if !d1.is_ascii_digit() || !d0.is_ascii_digit() || !flag.is_ascii_digit() || payload.len() > CHUNK {
            return None;
        }
        Some(Data { last: *flag == b'1', seq: (d1 - b'0') * 10 + (d0 - b'0'), payload })
    }

    /// Appends the datagram to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        debug_assert!(self.seq <= MAX_WINDOW && self.payload.len() <= CHUNK);
        out.push(if self.last { b'1' } else { b'0' });
        out.push(b'0' + self.seq / 10);
        out.push(b'0' + self.seq % 10);
        out.extend_from_slice(self.payload);
    }
}

/// Parses an ACK: the decimal of the next expected sequence number.
pub fn parse_ack(datagram: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(datagram).ok()?.trim_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The ACK announcing `next` as the next expected sequence number.
pub fn encode_ack(next: u8) -> Vec<u8> {
    next.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parses_like_python_int() {
        assert_eq!(parse_window(b"20"), Some(20));
        assert_eq!(parse_window(b" 98\n"), Some(98));
        assert_eq!(parse_window(b"99"), None);
        assert_eq!(parse_window(b"0"), None);
        assert_eq!(parse_window(b"2x"), None);
        assert_eq!(parse_window(b"0098  "), Some(98));
        assert_eq!(parse_window(b"000"), None);
        assert_eq!(parse_window(b"99999999999999999999"), None);
        assert_eq!(parse_window(b""), None);
    }

    #[test]
    fn data_roundtrip_and_empty_file() {
        let mut out = Vec::new();
        Data { last: true, seq: 0, payload: b"" }.encode(&mut out);
        assert_eq!(out, b"100");
        assert_eq!(Data::parse(b"100"), Some(Data { last: true, seq: 0, payload: b"" }));
        out.clear();
        Data { last: false, seq: 7, payload: b"abc" }.encode(&mut out);
        assert_eq!(out, b"007abc");
        assert_eq!(Data::parse(&out).map(|d| (d.last, d.seq, d.payload)), Some((false, 7, &b"abc"[..])));
        assert_eq!(Data::parse(b"0x1"), None);
        assert_eq!(Data::parse(&[b'0'; 1004]), None);
    }

    #[test]
    fn acks_are_unpadded_decimal() {
        assert_eq!(encode_ack(5), b"5");
        assert_eq!(parse_ack(b"5"), Some(5));
        assert_eq!(parse_ack(b"20"), Some(20));
        assert_eq!(parse_ack(b"abc"), None);
    }
}
