//! The incremental decoder: bytes in, messages out.

use std::fmt;

use super::cursor::{Cursor, Stop};
use super::{CLASSIC_MAX_FILES, CLASSIC_MAX_USERS, Confirm, ErrorCode, MAX_FIELD_CHARS, Message, Request, Update};

/// Which messages a decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Requests `1xx` only: what a server reads.
    ToServer,
    /// Confirms `2xx`, updates `3xx` and errors `4xxx`: what a client reads.
    ToClient,
    /// Any message, told apart by its code digit (capture decoding).
    Any,
}

impl Direction {
    fn accepts(self, code_digit: u8) -> bool {
        match self {
            Direction::ToServer => code_digit == b'1',
            Direction::ToClient => matches!(code_digit, b'2'..=b'4'),
            Direction::Any => matches!(code_digit, b'1'..=b'4'),
        }
    }
}

/// Bounds on the lists a decoder accepts; they bound its memory too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most names in a `202`/`204` list.
    pub max_users: usize,
    /// Most names in a `205` list.
    pub max_files: usize,
}

impl Limits {
    /// Exactly what the classic encoding can express: 9 others, 99 files.
    pub const CLASSIC: Limits = Limits { max_users: CLASSIC_MAX_USERS - 1, max_files: CLASSIC_MAX_FILES };

    /// Largest legal message in bytes for `dir` under these limits.
    pub fn max_message_len(&self, dir: Direction) -> usize {
        // A field is 2 length digits and up to 99 characters of up to 4 bytes.
        const FIELD: usize = 2 + MAX_FIELD_CHARS * 4;
        let request = 3 + 2 * FIELD; // 103: target and text
        let list = |n: usize| 3 + 1 + n.to_string().len().max(2) + n * FIELD;
        let client = (3 + 2 * FIELD).max(list(self.max_users)).max(list(self.max_files)).max(3 + 2 + 20 + 5);
        match dir {
            Direction::ToServer => request,
            Direction::ToClient | Direction::Any => client.max(request),
        }
    }
}

impl Default for Limits {
    /// Room for the extended lists of large rooms ([protocol](crate::protocol) §3).
    fn default() -> Self {
        Limits { max_users: 999, max_files: 999 }
    }
}

/// Malformed input: where it is and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Offset in the stream (bytes fed since the decoder was made).
    pub offset: u64,
    /// What was wrong there.
    pub kind: DecodeErrorKind,
}

/// What was wrong with the input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A digit was expected.
    ExpectedDigit {
        /// The field being read.
        field: &'static str,
        /// The byte found instead.
        found: u8,
    },
    /// A code digit this direction never carries (e.g. a `2xx` sent to a server).
    UnexpectedCode {
        /// The code digit found.
        found: u8,
        /// What the decoder accepts.
        direction: Direction,
    },
    /// A well-formed code that names no message, e.g. `107`.
    UnknownCode {
        /// The three digits as a number.
        code: u16,
    },
    /// Text that is not UTF-8.
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A number too large for its field.
    OutOfRange {
        /// The field being read.
        field: &'static str,
        /// The largest value allowed.
        max: u64,
    },
    /// A list marker Z that the protocol does not define.
    BadListMarker {
        /// The list being read.
        field: &'static str,
        /// The marker byte found.
        found: u8,
    },
    /// A list longer than the decoder's [`Limits`].
    ListTooLong {
        /// The list being read.
        field: &'static str,
        /// The count it announced.
        count: u64,
        /// The decoder's limit.
        max: usize,
    },
    /// The stream ended inside a message.
    Truncated {
        /// Bytes of the unfinished message.
        buffered: usize,
    },
}

fn show(b: u8) -> String {
    format!("'{}'", std::ascii::escape_default(b))
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExpectedDigit { field, found } => {
                write!(f, "expected a digit of the {field}, found {}", show(*found))
            }
            Self::UnexpectedCode { found, direction } => {
                let expected = match direction {
                    Direction::ToServer => "a request (1xx)",
                    Direction::ToClient => "a confirm, update or error (2xx, 3xx, 4xxx)",
                    Direction::Any => "a message code 1-4",
                };
                write!(f, "expected {expected}, found {}", show(*found))
            }
            Self::UnknownCode { code } => write!(f, "unknown message code {code}"),
            Self::InvalidUtf8 { field } => write!(f, "the {field} is not valid UTF-8"),
            Self::OutOfRange { field, max } => write!(f, "the {field} is out of range (at most {max})"),
            Self::BadListMarker { field, found } => write!(f, "the {field} marker {} is not defined", show(*found)),
            Self::ListTooLong { field, count, max } => write!(f, "{field} {count} exceeds the limit of {max}"),
            Self::Truncated { buffered } => write!(f, "the stream ended inside a message ({buffered} bytes buffered)"),
        }
    }
}

/// One decoded message with where it was and exactly what was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The message.
    pub message: Message,
    /// Stream offset of the message's first byte.
    pub offset: u64,
    /// The message's bytes, without surrounding CR/LF.
    pub raw: Vec<u8>,
}

/// An incremental decoder over one direction of a byte stream.
///
/// Feed chunks of any size with [`feed`](Self::feed); take messages with
/// [`next_message`](Self::next_message) until it returns `Ok(None)`. After an
/// error, call [`resync`](Self::resync) to skip the bad input (the `4999` rule)
/// or drop the stream; otherwise the same error is returned again.
///
/// Memory: the decoder keeps at most one partial message (never more than
/// [`Limits::max_message_len`]) plus the unread rest of the last chunk fed.
#[derive(Debug)]
pub struct Decoder {
    dir: Direction,
    limits: Limits,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    /// Don't parse again until this many bytes follow `start`.
    need: usize,
}

impl Decoder {
    /// A decoder for `dir` with the default (extended) [`Limits`].
    pub fn new(dir: Direction) -> Self {
        Self::with_limits(dir, Limits::default())
    }

    /// A decoder for `dir` that accepts lists up to `limits`
    /// ([`Limits::CLASSIC`] for exactly the classic encoding).
    pub fn with_limits(dir: Direction, limits: Limits) -> Self {
        Decoder { dir, limits, buf: Vec::new(), start: 0, offset: 0, need: 0 }
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The bytes fed but not yet consumed: after an error, the bad message
    /// starts here (a server reads its type to answer `4TT9`).
    pub(crate) fn unconsumed(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// True when part of a message (not only CR/LF) is buffered.
    pub(crate) fn has_partial(&self) -> bool {
        self.buf[self.start..].iter().any(|b| !matches!(b, b'\r' | b'\n'))
    }

    /// Stream offset of the next unconsumed byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Call at end of stream: an error if it ended inside a message.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.has_partial() {
            Err(DecodeError { offset: self.offset, kind: DecodeErrorKind::Truncated { buffered: self.buffered() } })
        } else {
            Ok(())
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        Ok(self.next_frame()?.map(|f| f.message))
    }

    /// Like [`next_message`](Self::next_message), with offset and raw bytes.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        while self.start < self.buf.len() && matches!(self.buf[self.start], b'\r' | b'\n') {
            self.consume(1);
        }
        if self.buffered() == 0 || self.buffered() < self.need {
            return Ok(None);
        }
        let bytes = &self.buf[self.start..];
        let mut c = Cursor::new(bytes, self.offset);
        match parse(&mut c, self.dir, &self.limits) {
            Ok(message) => {
                let len = c.pos();
                let frame = Frame { message, offset: self.offset, raw: bytes[..len].to_vec() };
                self.consume(len);
                Ok(Some(frame))
            }
            Err(Stop::Incomplete(n)) => {
                // `parse` never asks for more than a legal message holds; this
                // guard keeps memory bounded even if that were wrong.
                let max = self.limits.max_message_len(self.dir);
                debug_assert!(n <= max, "parser asked for {n} bytes, limit {max}");
                self.need = n.min(max);
                Ok(None)
            }
            Err(Stop::Invalid(e)) => Err(e),
        }
    }

    /// Skips bad input (the `4999` rule): everything up to the next CR/LF,
    /// or all that is buffered if there is none. Returns the bytes dropped.
    pub fn resync(&mut self) -> usize {
        let rest = &self.buf[self.start..];
        let n = rest.iter().position(|b| matches!(b, b'\r' | b'\n')).unwrap_or(rest.len());
        self.consume(n);
        n
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
        self.need = 0;
    }
}

fn parse(c: &mut Cursor<'_>, dir: Direction, limits: &Limits) -> Result<Message, Stop> {
    let first = b'0' + c.digits(1, "message code")? as u8;
    if !dir.accepts(first) {
        return Err(c.invalid(0, DecodeErrorKind::UnexpectedCode { found: first, direction: dir }));
    }
    let ty = c.digits(2, "message type")? as u8;
    Ok(match first {
        b'1' => Message::Request(Request::parse(ty, c, 0)?),
        b'2' => Message::Confirm(Confirm::parse(ty, c, 0, limits)?),
        b'3' => Message::Update(Update::parse(ty, c, 0)?),
        _ => Message::Error(ErrorCode::new(ty, c.digits(1, "error digit")? as u8)),
    })
}
