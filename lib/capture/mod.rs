//! Capture decoding: the chat and its downloads, read out of pcap/pcapng.
//!
//! `chatctl capture-decode` is a thin loop over this module: a
//! [`CaptureReader`] hands out packets one at a time from any `Read` (file or
//! stdin) with a bounded buffer, an [`Analyzer`] turns them into [`Event`]s,
//! and [`output`] renders those as a timeline line or a JSON object.
//!
//! Two ways to take the events: [`Analyzer::packet`] gives owned [`Event`]s
//! (each chat message decoded into a [`Message`](crate::wire::Message));
//! [`Analyzer::packet_ref`] gives [`EventRef`]s, whose chat messages
//! ([`MessageRef`]) borrow their raw bytes from the packet and are decoded
//! only on request. The second allocates nothing per chat message and is
//! what the CLI and the benchmark use: on captures of small chat packets the
//! per-packet cost is the whole story (see `benches/capture_throughput.rs`).
//!
//! # Layout (one layer per module, bottom up)
//! - `reader`: streaming pcap (µs/ns, both byte orders; read in place from
//!   one flat buffer) and pcapng (several sections and interfaces, through
//!   `pcap-parser`); timestamps in ns.
//! - [`net`]: link layers (Ethernet + VLAN, Linux SLL/SLL2, BSD null/loop,
//!   raw IP), IPv4/IPv6 with extension headers, TCP and UDP. Zero-copy.
//! - `frag`: IP fragment reassembly, bounded in count, size and time.
//! - `tcp`: per-direction TCP reassembly with 64-bit offsets, a cap on
//!   buffered bytes, holes reported then resynchronised.
//! - `config`: how to analyse; `stats`: the counters of `--summary`.
//! - `analyzer`: finds the chat (server port, ports announced in `200` and
//!   `206`, else content), decodes each direction with
//!   [`wire::Decoder`](crate::wire::Decoder) and follows downloads.
//! - `chat` (private): one direction of a chat connection decoded, the
//!   scan first and the wire decoder for the rest.
//! - `scan` (private): the zero-allocation fast path for whole, plain (ASCII)
//!   messages read straight from a packet; anything else goes to the wire
//!   decoder, and property tests hold the two to the same answers.
//! - `transfer`: per-download state: the classic go-back-N receiver's
//!   view of a UDP transfer (retransmissions, out of order), and the fast
//!   mode's, read with the transfer engine's own frame parser
//!   ([`crate::rdt::fast::Frame`]): packet numbers and byte offsets give
//!   retransmissions, reordering and duplicates; DONE gives size and hash
//!   (BLAKE3 in format 2, XXH3-128 in format 3: the hello tells which).
//! - [`extract`]: rebuilding files on disk as the capture streams by,
//!   verifying size (and, in fast mode, the hash with the transfer's algorithm).
//! - `event`: what the analyser reports; [`output`]: how it is shown;
//!   [`plot`]: time-sequence graphs of transfers (`--plot`), SVG or PNG.
//! - `synth` (test support, hidden from the docs): pcap/pcapng writers and
//!   packet builders for synthetic captures (tests, fuzz seeds, the benchmark).
//!
//! Nothing here panics on input: malformed frames are counted and skipped,
//! undecodable chat input is reported as [`Event::Problem`] and skipped to the
//! next CR/LF, and a damaged capture ends reading with a [`ReadError`] after
//! everything before it was decoded.
//!
//! ```
//! use chatctl::capture::{Analyzer, CaptureReader, Config, Event, synth};
//! use std::net::SocketAddr;
//!
//! // A capture with one TCP connection to port 13337 carrying a join.
//! let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
//! let server: SocketAddr = "10.0.0.2:13337".parse().unwrap();
//! let mut conn = synth::TcpConn::new(client, server, 1, 1);
//! let mut w = synth::PcapWriter::new(Vec::new(), 101, false, false).unwrap();
//! for (i, p) in conn.handshake().into_iter().chain([conn.data(true, b"10005ALICE\r\n")]).enumerate() {
//!     w.packet(i as i64 * 1000, &p).unwrap();
//! }
//! let capture = w.into_inner();
//!
//! let mut reader = CaptureReader::new(&capture[..]).unwrap();
//! let mut analyzer = Analyzer::new(Config::default(), None);
//! let mut raws = Vec::new();
//! let mut keep = |e: Event| if let Event::Message(m) = e { raws.push(m.raw) };
//! while reader.next_packet(|p| analyzer.packet(&p, &mut keep)).unwrap().is_some() {}
//! analyzer.finish(&mut keep);
//! assert_eq!(raws, [b"10005ALICE".to_vec()]);
//! ```

mod analyzer;
mod chat;
mod config;
mod event;
pub mod extract;
mod frag;
pub mod net;
pub mod output;
pub mod plot;
mod reader;
mod scan;
mod stats;
#[doc(hidden)]
pub mod synth;
mod tcp;
mod transfer;

pub use analyzer::{Analyzer, IDLE_NS, UDP_IDLE_NS};
pub use config::Config;
pub use event::{
    Channel, ConnChange, ConnEvent, DatagramEvent, DatagramKind, Event, EventRef, Extracted, MessageEvent, MessageRef,
    ProblemEvent, TransferMode, TransferSummary,
};
pub use reader::{CaptureReader, Packet, ReadError};
pub use stats::{CodeCounts, Stats};
pub use transfer::{PlotPoint, PointKind};
