//! chatctl: a one-room chat with fast file downloads.
//!
//! # Layout
//! - [`wire`]: the protocol of `PROTOCOL.md` as typed messages, an encoder and
//!   an incremental, bounded decoder. Pure: no I/O.
//! - [`exit`]: the exit codes every subcommand shares (documented in the man pages).
//!
//! The binary in `cmd/` only parses arguments and prints; everything it does
//! is here.

pub mod exit;
pub mod wire;
