//! Reliable transfer over UDP: pure state machines (datagrams and time in,
//! datagrams and events out) and thin socket drivers around them.
//!
//! # Layout
//! - [`classic`]: the reference implementation's go-back-N (PROTOCOL.md §5),
//!   its datagram format, and sender and receiver machines.
//! - [`fast`]: chatctl's own fast mode (wire format documented there):
//!   SACK, RFC 6298 RTO, pacing, flow control, address validation, BLAKE3.
//! - [`cc`]: pluggable congestion control (NewReno, CUBIC).
//! - [`rtt`]: RFC 6298 RTT estimation.
//! - [`rangeset`]: 64-bit byte-range sets for SACK and reassembly.
//! - [`sim`]: a simulated network with a virtual clock for deterministic tests.
//! - [`relay`]: the same impairments on real UDP sockets, for tests and benchmarks.

pub mod cc;
pub mod classic;
pub mod fast;
pub mod rangeset;
pub mod relay;
pub mod rtt;
pub mod sim;
