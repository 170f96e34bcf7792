//! Capture decoding: the chat and its downloads, read out of pcap/pcapng.
//!
//! # Layout
//! - [`reader`]: streaming pcap/pcapng reader over any `Read` (bounded buffer).
//! - [`net`]: link layers, IPv4/IPv6, TCP and UDP headers (zero-copy views).
//! - [`frag`]: bounded IP fragment reassembly.
//! - [`tcp`]: per-direction TCP reassembly with 64-bit offsets and a cap.
pub mod analyzer;
pub mod event;
pub mod extract;
pub mod frag;
pub mod net;
pub mod reader;
pub mod tcp;
pub mod transfer;

pub use analyzer::{Analyzer, Config, Stats};
pub use event::*;
pub use reader::{CaptureReader, Packet, ReadError};
pub mod output;
pub mod synth;
