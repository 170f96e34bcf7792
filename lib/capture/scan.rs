//! A zero-allocation fast path for decoding chat messages out of a TCP stream.
//!
//! [`wire::Decoder`](crate::wire::Decoder) is the reference: it copies the
//! stream into its buffer and builds an owned [`Message`](crate::wire::Message)
//! (a `String` per field, a `Vec` per list, the raw bytes copied once more).
//! On a capture of chat traffic that is most of the cost per packet, and the
//! analyser needs only the code, a few names and ports. [`scan`] reads one
//! whole message straight from the packet and returns those, borrowed.
//!
//! It is deliberately partial: it answers only for a complete, well-formed
//! message whose text is ASCII (the common case), and returns `None` for
//! anything else (incomplete, non-ASCII, malformed, unknown code), in which
//! case the caller hands the bytes to the reference decoder, which says
//! exactly what is wrong or waits for more. The unit tests check that
//! whenever it answers, the reference decoder gives the same message length,
//! code and fields.

/// Most names in a `202`/`204`/`205` list, as [`crate::wire::Limits::default`].
const MAX_LIST: u64 = 999;

/// What the analyser needs to know of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fields<'a> {
    /// Nothing to act on (text-only or empty messages, file lists).
    Other,
    /// User names to remember (`100`, `103`'s target, `202`/`204`, `3xx`).
    Names(Names<'a>),
    /// `106`: a download request.
    Download { transport: &'a [u8], file: &'a [u8] },
    /// `200`: joined, with the update port.
    Joined { name: &'a [u8], port: u16 },
    /// `206`: the download is ready on this port.
    DownloadReady { size: u64, port: u16 },
    /// `4TTE`: an error answering request type `ty`.
    Error { ty: u8 },
}

/// One or more user names, ASCII, without copying them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Names<'a> {
    /// One name.
    One(&'a [u8]),
    /// `count` fields (2-digit length, then the bytes) back to back, already
    /// validated by [`scan`].
    Wire { bytes: &'a [u8], count: usize },
    /// Names of a message the reference decoder built.
    Owned(&'a [String]),
}

impl<'a> Names<'a> {
    /// Calls `f` with each name.
    pub(crate) fn for_each(self, mut f: impl FnMut(&[u8])) {
        match self {
            Names::One(n) => f(n),
            Names::Owned(v) => v.iter().for_each(|n| f(n.as_bytes())),
            Names::Wire { bytes, count } => {
                let mut c = Cursor { d: bytes, at: 0 };
                for _ in 0..count {
                    match c.field() {
                        Some(n) => f(n),
                        None => return,
                    }
                }
            }
        }
    }
}

/// A complete message at the start of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scanned<'a> {
    /// Its length in bytes (the raw message is `input[..len]`).
    pub(crate) len: usize,
    /// Its code, as [`Message::code`](crate::wire::Message::code).
    pub(crate) code: u16,
    /// What the analyser acts on.
    pub(crate) fields: Fields<'a>,
}

struct Cursor<'a> {
    d: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn digits(&mut self, n: usize) -> Option<u64> {
        let b = self.d.get(self.at..self.at + n)?;
        let mut v: u64 = 0;
        if n <= 19 {
            // 19 digits always fit in a u64: no overflow checks.
            for &x in b {
                let digit = x.wrapping_sub(b'0');
                if digit > 9 {
                    return None;
                }
                v = v * 10 + u64::from(digit);
            }
        } else {
            for &x in b {
                let digit = x.wrapping_sub(b'0');
                if digit > 9 {
                    return None;
                }
                v = v.checked_mul(10)?.checked_add(u64::from(digit))?;
            }
        }
        self.at += n;
        Some(v)
    }

    /// A 2-digit length (the common case of [`digits`](Self::digits)).
    #[inline]
    fn two(&mut self) -> Option<usize> {
        let &[a, b] = self.d.get(self.at..self.at + 2)? else { return None };
        let (a, b) = (a.wrapping_sub(b'0'), b.wrapping_sub(b'0'));
        if a > 9 || b > 9 {
            return None;
        }
        self.at += 2;
        Some(usize::from(a * 10 + b))
    }

    #[inline]
    fn ascii(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.d.get(self.at..self.at + n)?;
        if !b.is_ascii() {
            return None;
        }
        self.at += n;
        Some(b)
    }

    #[inline]
    fn field(&mut self) -> Option<&'a [u8]> {
        let n = self.two()?;
        self.ascii(n)
    }

    fn port(&mut self) -> Option<u16> {
        u16::try_from(self.digits(5)?).ok()
    }

    fn fields(&mut self, count: usize) -> Option<&'a [u8]> {
        let start = self.at;
        for _ in 0..count {
            self.field()?;
        }
        Some(&self.d[start..self.at])
    }
}

/// Reads one whole message from the start of `input` (which must not start
/// with CR/LF); `None` when the reference decoder must decide (see the
/// module documentation).
#[inline]
pub(crate) fn scan(input: &[u8]) -> Option<Scanned<'_>> {
    let mut c = Cursor { d: input, at: 0 };
    let first = c.digits(1)? as u16;
    let ty = c.two()? as u8;
    let fields = match (first, ty) {
        (1, 0) => Fields::Names(Names::One(c.field()?)),
        (1, 1 | 2 | 5) | (2, 1 | 3) => Fields::Other,
        (1, 3) => {
            let to = c.field()?;
            c.field()?;
            Fields::Names(Names::One(to))
        }
        (1, 4) => {
            c.field()?;
            Fields::Other
        }
        (1, 6) => {
            let transport = c.ascii(3)?;
            Fields::Download { transport, file: c.field()? }
        }
        (2, 0) => Fields::Joined { name: c.field()?, port: c.port()? },
        (2, 2 | 4) => {
            let z = c.digits(1)? as usize;
            let count = if z == 0 { 0 } else { c.digits(z)? };
            if count > MAX_LIST {
                return None;
            }
            let count = count as usize;
            Fields::Names(Names::Wire { bytes: c.fields(count)?, count })
        }
        (2, 5) => {
            let width = match c.digits(1)? {
                0 => 0,
                1 => 2,
                z @ 3..=9 => z as usize,
                _ => return None,
            };
            let count = if width == 0 { 0 } else { c.digits(width)? };
            if count > MAX_LIST {
                return None;
            }
            c.fields(count as usize)?;
            Fields::Other
        }
        (2, 6) => {
            let width = c.digits(2)? as usize;
            if !(1..=20).contains(&width) {
                return None;
            }
            Fields::DownloadReady { size: c.digits(width)?, port: c.port()? }
        }
        (3, 0 | 1) => Fields::Names(Names::One(c.field()?)),
        (3, 3 | 4) => {
            let from = c.field()?;
            c.field()?;
            Fields::Names(Names::One(from))
        }
        (4, _) => {
            let digit = c.digits(1)? as u16;
            return Some(Scanned { len: c.at, code: 4000 + u16::from(ty) * 10 + digit, fields: Fields::Error { ty } });
        }
        _ => return None,
    };
    Some(Scanned { len: c.at, code: first * 100 + u16::from(ty), fields })
}

/// The same [`Fields`] for a message the reference decoder built.
pub(crate) fn fields_of(m: &crate::wire::Message) -> Fields<'_> {
    use crate::wire::{Confirm, Message, Request, Update};
    match m {
        Message::Request(Request::Join { name }) | Message::Request(Request::Whisper { to: name, .. }) => {
            Fields::Names(Names::One(name.as_bytes()))
        }
        Message::Request(Request::Download { transport, file }) => {
            Fields::Download { transport: transport.as_str().as_bytes(), file: file.as_bytes() }
        }
        Message::Confirm(Confirm::Joined { name, port }) => Fields::Joined { name: name.as_bytes(), port: *port },
        Message::Confirm(Confirm::Users { users: names } | Confirm::BroadcastSent { to: names }) => {
            Fields::Names(Names::Owned(names))
        }
        Message::Confirm(Confirm::Download { size, port }) => Fields::DownloadReady { size: *size, port: *port },
        Message::Error(e) => Fields::Error { ty: e.ty },
        Message::Update(Update::Joined { name } | Update::Left { name }) => Fields::Names(Names::One(name.as_bytes())),
        Message::Update(Update::Whisper { from, .. } | Update::Broadcast { from, .. }) => {
            Fields::Names(Names::One(from.as_bytes()))
        }
        _ => Fields::Other,
    }
}

/// Writes a message's decoded fields as JSON members, each preceded by a
/// comma, exactly as serde serialises the [`Message`](crate::wire::Message)
/// (same names, same order): `,"kind":"broadcast","text":"hi"`. Read
/// straight from the raw bytes, so the timeline's `--json` needs no decoded
/// message. `false` (nothing written) for anything [`scan`] leaves to the
/// reference decoder, and for a `106` with a transport other than TCP/UDP.
pub(crate) fn write_json_fields(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(m) = scan(raw) else { return false };
    if m.len != raw.len() {
        return false;
    }
    let mut c = Cursor { d: raw, at: 3 };
    let start = out.len();
    let ok = json_fields(m, &mut c, out).is_some();
    if !ok {
        out.truncate(start);
    }
    ok
}

fn json_fields(m: Scanned<'_>, c: &mut Cursor<'_>, out: &mut Vec<u8>) -> Option<()> {
    use json::{kind, list, number, text};
    match m.code {
        100 => {
            kind(out, "join");
            text(out, "name", c.field()?)?;
        }
        101 => kind(out, "leave"),
        102 => kind(out, "users"),
        103 => {
            kind(out, "whisper");
            text(out, "to", c.field()?)?;
            text(out, "text", c.field()?)?;
        }
        104 => {
            kind(out, "broadcast");
            text(out, "text", c.field()?)?;
        }
        105 => kind(out, "files"),
        106 => {
            let transport = c.ascii(3)?;
            if transport != b"TCP" && transport != b"UDP" {
                return None;
            }
            kind(out, "download");
            text(out, "transport", transport)?;
            text(out, "file", c.field()?)?;
        }
        200 => {
            kind(out, "joined");
            text(out, "name", c.field()?)?;
            number(out, "port", c.port()?.into());
        }
        201 => kind(out, "left"),
        202 | 204 | 205 => {
            let (k, field) = match m.code {
                202 => ("users", "users"),
                204 => ("broadcast_sent", "to"),
                _ => ("files", "files"),
            };
            let z = c.digits(1)? as usize;
            let width = match (m.code, z) {
                (_, 0) => 0,
                (205, 1) => 2,
                (_, z) => z,
            };
            let count = if width == 0 { 0 } else { c.digits(width)? as usize };
            kind(out, k);
            list(out, field, c, count)?;
        }
        203 => kind(out, "whisper_sent"),
        206 => {
            let width = c.two()?;
            kind(out, "download");
            number(out, "size", c.digits(width)?);
            number(out, "port", c.port()?.into());
        }
        300 | 301 => {
            kind(out, if m.code == 300 { "joined" } else { "left" });
            text(out, "name", c.field()?)?;
        }
        303 | 304 => {
            kind(out, if m.code == 303 { "whisper" } else { "broadcast" });
            text(out, "from", c.field()?)?;
            text(out, "text", c.field()?)?;
        }
        4000..=4999 => {
            number(out, "ty", u64::from((m.code - 4000) / 10));
            number(out, "digit", u64::from(m.code % 10));
        }
        _ => return None,
    }
    Some(())
}

/// The pieces of [`json_fields`]: each writes `,"name":value`.
mod json {
    use super::Cursor;

    /// A text field (`None` if it is not UTF-8).
    pub(super) fn text(out: &mut Vec<u8>, name: &str, v: &[u8]) -> Option<()> {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *out, std::str::from_utf8(v).ok()?).ok()
    }

    /// A number.
    pub(super) fn number(out: &mut Vec<u8>, name: &str, v: u64) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(v.to_string().as_bytes());
    }

    /// A list of the next `count` fields of `c`, as texts.
    pub(super) fn list(out: &mut Vec<u8>, name: &str, c: &mut Cursor<'_>, count: usize) -> Option<()> {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":[");
        for i in 0..count {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, std::str::from_utf8(c.field()?).ok()?).ok()?;
        }
        out.push(b']');
        Some(())
    }

    /// The message's `kind`.
    pub(super) fn kind(out: &mut Vec<u8>, k: &str) {
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(k.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Confirm, Decoder, Direction, ErrorCode, Message, Request, Transport, Update};
    use proptest::prelude::*;

    fn names(f: Fields<'_>) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        if let Fields::Names(n) = f {
            n.for_each(|x| v.push(x.to_vec()));
        }
        v
    }

    /// Whenever `scan` answers, the reference decoder agrees on length, code
    /// and fields; and for a complete ASCII message it does answer.
    fn check(input: &[u8], must_answer: bool) -> Result<(), TestCaseError> {
        let mut dec = Decoder::new(Direction::Any);
        dec.feed(input);
        let reference = dec.next_frame();
        match scan(input) {
            Some(s) => {
                let frame = match reference {
                    Ok(Some(f)) => f,
                    other => return Err(TestCaseError::fail(format!("scan {s:?} but decoder {other:?} on {input:?}"))),
                };
                prop_assert_eq!(frame.raw.len(), s.len, "length of {:?}", input);
                prop_assert_eq!(frame.message.code(), s.code);
                let theirs = fields_of(&frame.message);
                match (s.fields, theirs) {
                    (Fields::Names(_), Fields::Names(_)) => prop_assert_eq!(names(s.fields), names(theirs)),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
            None => prop_assert!(!must_answer, "no answer for {:?}", input),
        }
        Ok(())
    }

    fn ascii_name() -> impl Strategy<Value = String> {
        "[ -~]{0,99}"
    }

    fn message() -> impl Strategy<Value = Message> {
        let n = ascii_name;
        let list = || proptest::collection::vec(ascii_name(), 0..12);
        prop_oneof![
            n().prop_map(|name| Request::Join { name }.into()),
            Just(Request::Leave.into()),
            Just(Request::Users.into()),
            (n(), n()).prop_map(|(to, text)| Request::Whisper { to, text }.into()),
            n().prop_map(|text| Request::Broadcast { text }.into()),
            Just(Request::Files.into()),
            (prop_oneof![Just(Transport::Tcp), Just(Transport::Udp), "[A-Z]{3}".prop_map(Transport::from_wire)], n())
                .prop_map(|(transport, file)| Request::Download { transport, file }.into()),
            (n(), any::<u16>()).prop_map(|(name, port)| Confirm::Joined { name, port }.into()),
            Just(Confirm::Left.into()),
            list().prop_map(|users| Confirm::Users { users }.into()),
            Just(Confirm::WhisperSent.into()),
            list().prop_map(|to| Confirm::BroadcastSent { to }.into()),
            list().prop_map(|files| Confirm::Files { files }.into()),
            (any::<u64>(), any::<u16>()).prop_map(|(size, port)| Confirm::Download { size, port }.into()),
            n().prop_map(|name| Update::Joined { name }.into()),
            n().prop_map(|name| Update::Left { name }.into()),
            (n(), n()).prop_map(|(from, text)| Update::Whisper { from, text }.into()),
            (n(), n()).prop_map(|(from, text)| Update::Broadcast { from, text }.into()),
            (0u8..100, 0u8..10).prop_map(|(t, d)| ErrorCode::new(t, d).into()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every encodable ASCII message is scanned, and agrees with the decoder.
        #[test]
        fn ascii_messages_agree(m in message(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = m.to_bytes().expect("encodable");
            let whole = bytes.len();
            bytes.extend_from_slice(&tail);
            check(&bytes, true)?;
            // Every prefix: either the same answer as the decoder, or none.
            for cut in 0..whole {
                check(&bytes[..cut], false)?;
            }
        }

        /// Mutated messages (a byte changed, a digit bumped): the scanner is
        /// never more lenient than the decoder.
        #[test]
        fn mutations_never_disagree(m in message(), at in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = m.to_bytes().expect("encodable");
            let i = at % bytes.len();
            bytes[i] = byte;
            check(&bytes, false)?;
        }

        /// Any bytes at all.
        #[test]
        fn garbage_never_disagrees(bytes in proptest::collection::vec(prop_oneof![b'0'..=b'9', any::<u8>()], 0..64)) {
            if !matches!(bytes.first(), Some(b'\r' | b'\n')) {
                check(&bytes, false)?;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The JSON fields written from the raw bytes are serde's, byte for byte.
        #[test]
        fn json_fields_are_serdes(m in message()) {
            let raw = m.to_bytes().expect("encodable");
            let mut ours = Vec::new();
            let wrote = write_json_fields(&raw, &mut ours);
            let theirs = serde_json::to_vec(&m).expect("serialisable");
            let theirs = &theirs[1..theirs.len() - 1];
            // The whole line, through either path, is the owned event's.
            let mref = crate::capture::MessageRef {
                ts_ns: 1_700_000_000_123_456_789,
                src: "10.0.0.1:40000".parse().unwrap(),
                dst: "[::1]:13337".parse().unwrap(),
                channel: crate::capture::Channel::Main,
                offset: 12,
                code: m.code(),
                raw: &raw,
            };
            let (mut line_ref, mut line_owned) = (Vec::new(), Vec::new());
            crate::capture::output::write_json_ref(&mut line_ref, &crate::capture::EventRef::Message(mref)).unwrap();
            crate::capture::output::write_json(&mut line_owned, &mref.to_event()).unwrap();
            prop_assert_eq!(String::from_utf8(line_ref).unwrap(), String::from_utf8(line_owned).unwrap());
            if matches!(m, Message::Request(Request::Download { transport: Transport::Other(_), .. })) {
                prop_assert!(!wrote && ours.is_empty());
            } else {
                prop_assert!(wrote, "{:?}", m);
                let expected = if theirs.is_empty() { Vec::new() } else { [b",", theirs].concat() };
                prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(expected).unwrap());
            }
        }
    }

    #[test]
    fn non_ascii_and_extended_lists_go_to_the_decoder() {
        // A name with a non-ASCII character: left to the decoder.
        let m: Message = Request::Join { name: "Zoë".into() }.into();
        assert_eq!(scan(&m.to_bytes().unwrap()), None);
        assert!(!write_json_fields(&m.to_bytes().unwrap(), &mut Vec::new()));
        // A 20-digit size that overflows u64: the decoder reports it.
        assert_eq!(scan(b"2062099999999999999999999913337"), None);
        // Too many names for the limits.
        assert_eq!(scan(b"20241000"), None);
    }
}
