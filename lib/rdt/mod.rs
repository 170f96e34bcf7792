//! Reliable transfer over UDP: pure state machines (datagrams and time in,
//! datagrams and events out) and thin socket drivers around them.
//!
//! # Layout
//! - [`classic`]: the reference implementation's go-back-N (PROTOCOL.md §5),
//!   its datagram format, and sender and receiver machines.

pub mod classic;
