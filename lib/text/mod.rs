//! Text for people: text from the network made safe to show, and how
//! numbers are written ([`units`]).
//!
//! Escaping is one definition of which
//! characters a peer must never get onto an operator's or user's terminal
//! (or into a log line) raw.
//!
//! - [`escape`] is the one escaping function: the server's logs, `join`,
//!   `say`/`whisper` output and `capture-decode` all go through it.
//! - `is_unsafe` is the character class behind it; the server refuses
//!   names containing such characters (`4001`, see
//!   `wire::name_ok`), so a name is shown the same
//!   everywhere and cannot pose as another.
//!
//! ```
//! use chatctl::text::escape;
//! assert_eq!(escape("hi\u{1b}[2J"), "hi\\u{1b}[2J");
//! assert_eq!(escape("שלום 👩‍💻"), "שלום 👩‍💻"); // Hebrew and ZWJ sequences stay
//! ```

mod escape;
pub mod units;

pub use escape::escape;
pub(crate) use escape::is_unsafe;
