//! chatctl: a one-room chat with fast file downloads.
//!
//! # Layout
//! - [`protocol`]: the protocol reference (also the `chatctl-protocol(7)` man
//!   page): every message, sequence and quirk, and the fast mode's datagrams.
//! - [`wire`]: that protocol as typed messages, an encoder and an
//!   incremental, bounded decoder. Pure: no I/O.
//! - [`rdt`]: reliable transfer over UDP: classic go-back-N and the fast mode,
//!   as pure state machines with thin socket drivers.
//! - `connection` (internal): one framed TCP connection (decoder in, one
//!   write per message out), shared by the server and the client.
//! - [`server`]: the room server on tokio.
//! - [`client`]: the client library the subcommands are built on.
//! - [`capture`]: reading the conversation out of pcap/pcapng captures.
//! - [`text`]: network text made safe for a terminal or a log (one escaping function).
//! - [`exit`]: the exit codes every subcommand shares (documented in the man pages).
//!
//! The binary in `cmd/` only parses arguments and prints; everything it does
//! is here.
//!
//! # Public API
//! Each area module keeps its files private and re-exports what the binary,
//! the integration tests, the benchmarks and the fuzz targets use, as
//! quinn-proto does; the rest is `pub(crate)`, and `unreachable_pub` (below)
//! flags a `pub` item nothing outside the crate can reach.

#![warn(missing_docs, unreachable_pub)]

pub mod capture;
pub mod client;
mod connection;
pub mod exit;
#[doc = include_str!("protocol.md")]
pub mod protocol {}
pub mod rdt;
pub mod server;
pub mod text;
pub mod wire;
