//! [`Message`]: any message of the protocol, and encoding.

use super::{Confirm, ErrorCode, MAX_FIELD_CHARS, Request, Update, char_len};

/// A value that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A name or text longer than the 2-digit length field allows.
    #[error("{field} is {chars} characters long; the protocol allows at most 99 (split longer text)")]
    FieldTooLong {
        /// Which field (`name`, `text`...).
        field: &'static str,
        /// Its length in characters.
        chars: usize,
    },
    /// A transport that is not exactly 3 characters.
    #[error("transport {0:?} is not 3 characters")]
    BadTransport(String),
    /// A list too long for any count width.
    #[error("a list of {0} entries cannot be encoded")]
    ListTooLong(usize),
}

/// Appends the decimal digits of `n`, padded with zeros to at least
/// `width` (as `format!("{n:0width$}")`, without allocating: a message's
/// counts, codes and ports are encoded on the server's hot path).
pub(crate) fn put_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(len)));
    out.extend_from_slice(&digits[i..]);
}

/// How many decimal digits `n` has.
pub(crate) fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends the count of `n`'s digits, padded to `width`, then `n`: a
/// `206`'s size, a list's count.
pub(crate) fn put_sized(out: &mut Vec<u8>, n: u64, width: usize) {
    put_padded(out, decimal_digits(n) as u64, width);
    put_padded(out, n, 0);
}

/// Appends a message code: the class digit and the two-digit type.
pub(crate) fn put_code(out: &mut Vec<u8>, class: u8, ty: u8) {
    out.push(b'0' + class);
    put_padded(out, ty.into(), 2);
}

/// Appends a 2-digit character count and the text.
pub(crate) fn put_field(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), EncodeError> {
    let chars = char_len(s);
    if chars > MAX_FIELD_CHARS {
        return Err(EncodeError::FieldTooLong { field, chars });
    }
    put_padded(out, chars as u64, 2);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Any message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Message {
    /// A request `1xx`.
    Request(Request),
    /// A confirm `2xx`.
    Confirm(Confirm),
    /// An update `3xx`.
    Update(Update),
    /// An error `4TTE`.
    Error(ErrorCode),
}

impl Message {
    /// Appends the wire form to `out` (nothing is appended on error).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let r = match self {
            Message::Request(r) => r.encode(out),
            Message::Confirm(c) => c.encode(out),
            Message::Update(u) => u.encode(out),
            Message::Error(e) => {
                put_padded(out, e.code().into(), 4);
                Ok(())
            }
        };
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(32);
        self.encode(&mut v)?;
        Ok(v)
    }

    /// The message code as printed: `100`…`106`, `200`…, `300`…, or the four
    /// digits of an error such as `4031`.
    pub fn code(&self) -> u16 {
        match self {
            Message::Request(r) => 100 + u16::from(r.ty()),
            Message::Confirm(c) => 200 + u16::from(c.ty()),
            Message::Update(u) => 300 + u16::from(u.ty()),
            Message::Error(e) => e.code(),
        }
    }
}

/// What a message code means, in a few words (`106`: "download",
/// `4061`: "no such file"); None for a code the protocol does not define.
/// The one table of code names (`capture-decode --summary` and the like).
pub fn code_name(code: u16) -> Option<std::borrow::Cow<'static, str>> {
    let name = match code {
        100 => "join",
        101 => "leave",
        102 => "users?",
        103 => "private message",
        104 => "broadcast",
        105 => "files?",
        106 => "download",
        200 => "joined",
        201 => "left",
        202 => "users",
        203 => "private delivered",
        204 => "broadcast delivered",
        205 => "files",
        206 => "download ready",
        300 => "user joined",
        301 => "user left",
        303 => "private message from",
        304 => "broadcast from",
        4000..=4999 => {
            let e = ErrorCode::new(((code - 4000) / 10) as u8, (code % 10) as u8);
            return Some(format!("error: {}", e.describe()).into());
        }
        _ => return None,
    };
    Some(name.into())
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}
impl From<Confirm> for Message {
    fn from(c: Confirm) -> Self {
        Message::Confirm(c)
    }
}
impl From<Update> for Message {
    fn from(u: Update) -> Self {
        Message::Update(u)
    }
}
impl From<ErrorCode> for Message {
    fn from(e: ErrorCode) -> Self {
        Message::Error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The digits written without allocating are `format!`'s.
        #[test]
        fn padded_digits_are_formats(n: u64, width in 0usize..24, small in 0u64..100_000) {
            for n in [n, small] {
                let mut out = b"x".to_vec();
                put_padded(&mut out, n, width);
                let want = format!("{n:0width$}");
                proptest::prop_assert_eq!(&out[1..], want.as_bytes());
                let mut sized = Vec::new();
                put_sized(&mut sized, n, width);
                let digits = n.to_string();
                let want = format!("{:0width$}{digits}", digits.len());
                proptest::prop_assert_eq!(sized, want.into_bytes());
            }
        }
    }

    #[test]
    fn every_message_code_has_a_name() {
        use super::super::{Decoder, Direction};
        // One message of each kind, as the wire carries them.
        let wire: &[&[u8]] = &[
            b"10005ALICE",
            b"101",
            b"102",
            b"10303BOB02hi",
            b"10402hi",
            b"105",
            b"106TCP05a.bin",
            b"20005ALICE55000",
            b"201",
            b"2021103BOB",
            b"203",
            b"2041103BOB",
            b"20510103a.b",
            b"206011355001",
            b"30003BOB",
            b"30103BOB",
            b"30303BOB02hi",
            b"30403BOB02hi",
            b"4061",
        ];
        for raw in wire {
            let mut d = Decoder::new(Direction::Any);
            d.feed(raw);
            d.feed(b"\r\n");
            let m = d.next_message().unwrap().unwrap_or_else(|| panic!("{raw:?}"));
            let name = code_name(m.code()).unwrap_or_else(|| panic!("no name for {}", m.code()));
            assert!(!name.is_empty());
        }
        assert_eq!(code_name(4061).as_deref(), Some("error: no such file"));
        assert_eq!(code_name(999), None);
    }
}
