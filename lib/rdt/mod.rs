//! Reliable transfer over UDP: pure state machines (datagrams and time in,
//! datagrams and events out) and thin socket drivers around them.
//!
//! # Layout
//! - [`endpoint`]: the one interface all four machines meet ([`endpoint::Endpoint`]),
//!   the [`endpoint::Source`] senders read and the [`endpoint::Sink`] receivers
//!   write, and the one loop body ([`endpoint::step`]) every driver runs.
//! - [`classic`]: the reference implementation's go-back-N ([protocol](crate::protocol) §5),
//!   its datagram format, and sender and receiver machines.
//! - [`fast`]: chatctl's own fast mode (wire format documented there):
//!   SACK, RFC 6298 RTO, pacing, HyStart++-style slow-start exit, path-MTU
//!   probing, flow control, address validation, a whole-file XXH3-128; its socket drivers
//!   are in [`fast::driver`] (one thread per transfer).
//! - [`cc`]: pluggable congestion control: BBR (the default), CUBIC and NewReno.
//! - `rtt`: RFC 6298 RTT estimation.
//! - [`rangeset`]: 64-bit byte-range sets for SACK and reassembly.
//! - [`sim`]: a simulated link with a virtual clock; the deterministic
//!   transfer tests run through it (their drivers are hidden test support).
//! - [`relay`]: the same impairments on real UDP sockets, for tests and benchmarks.
//! - `udp`: the UDP plumbing (socket options, batched I/O, waits) the fast
//!   drivers and the relay share.

pub mod cc;
pub mod classic;
pub mod endpoint;
pub mod fast;
pub mod rangeset;
pub mod relay;
mod rtt;
pub mod sim;
pub(crate) mod udp;
