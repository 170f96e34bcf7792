//! The chat wire protocol of [`protocol`](crate::protocol), as pure data: no sockets, no async.
//!
//! # Layout
//! - [`Request`] (`1xx`, client → server), [`Confirm`] (`2xx`), [`Update`]
//!   (`3xx`, on the update connection) and [`ErrorCode`] (`4TTE`) are one type
//!   per message family; [`Message`] is any of them.
//! - Every type encodes itself ([`Message::to_bytes`]); lengths count Unicode
//!   characters, as the Python reference's `len(str)` does.
//! - [`Decoder`] is incremental: feed it arbitrary chunks of a byte stream and
//!   pull whole messages out. It never assumes one `recv` is one message, skips
//!   CR/LF between messages, bounds what it buffers, and reports malformed input
//!   with the byte offset and what was expected there.
//! - [`split_text`] cuts long text into protocol-sized pieces.
//!
//! ```
//! use chatctl::wire::{Decoder, Direction, Message, Request};
//! let mut d = Decoder::new(Direction::ToServer);
//! d.feed(b"10005AL");
//! assert!(d.next_message().unwrap().is_none()); // half a message: wait for more
//! d.feed("ICE\r\n10404שלום".as_bytes());
//! assert_eq!(d.next_message().unwrap(), Some(Message::Request(Request::Join { name: "ALICE".into() })));
//! assert_eq!(d.next_message().unwrap(), Some(Message::Request(Request::Broadcast { text: "שלום".into() })));
//! ```

mod confirm;
mod cursor;
mod decoder;
mod errcode;
mod message;
mod request;
mod split;
mod update;

pub use confirm::Confirm;
pub use decoder::{DecodeError, DecodeErrorKind, Decoder, Direction, Frame, Limits};
pub use errcode::ErrorCode;
pub use message::{EncodeError, Message, code_name};
pub use request::{Request, Transport};
pub use split::split_text;
pub use update::Update;

/// The server's default listening port.
pub(crate) const DEFAULT_PORT: u16 = 13337;
/// Longest name or text the 2-digit length field can carry, in characters.
pub(crate) const MAX_FIELD_CHARS: usize = 99;
/// Shortest name the reference accepts (`4001` below this).
pub(crate) const MIN_NAME_CHARS: usize = 2;
/// A classic `202`/`204` has a 1-digit count: at most 9 others, 10 users in all.
pub const CLASSIC_MAX_USERS: usize = 10;
/// A classic `205` has a 2-digit count.
pub(crate) const CLASSIC_MAX_FILES: usize = 99;
/// Largest payload of a classic go-back-N data datagram.
pub const CLASSIC_UDP_CHUNK: usize = 1000;

/// True if `name` may join: 2 to 99 characters, none of them one that
/// [`text::escape`](crate::text::escape) would have to escape (controls,
/// bidi formatting, separators; see [`text::is_unsafe`](crate::text::is_unsafe)).
/// Otherwise the server answers `4001`.
pub(crate) fn name_ok(name: &str) -> bool {
    (MIN_NAME_CHARS..=MAX_FIELD_CHARS).contains(&char_len(name)) && !name.chars().any(crate::text::is_unsafe)
}

/// Number of Unicode characters in `s`: the unit of every length field.
pub(crate) fn char_len(s: &str) -> usize {
    s.chars().count()
}
