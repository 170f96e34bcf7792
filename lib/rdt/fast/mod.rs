//! The fast mode: chatctl's own reliable UDP, negotiated over the classic
//! hello so either peer may be the reference implementation.
//!
//! # Negotiation ([protocol](crate::protocol) §5, §6)
//! The receiver's first datagram is the classic hello, written so the
//! reference's Python `int()` reads it as window 98: the ASCII `0098`
//! followed by spaces up to [`HELLO_LEN`] bytes, the last of them the mark of
//! the receiver's [`Format`]: a form feed (`0x0c`) for format 3, which a
//! chatctl receiver sends (CRC32C checks, XXH3-128 of the whole file); a tab
//! for format 2 (CRC32C checks, BLAKE3); format 1, chatctl before that, used
//! spaces only (and BLAKE3 checks per datagram). Both marks are ASCII
//! whitespace that Python's `int()` strips (`str.isspace`) and so does
//! [`classic::parse_window`](crate::rdt::classic::parse_window) (Rust's
//! `is_ascii_whitespace`, which leaves out the vertical tab `0x0b`); the
//! original sender reads only the first 1024 bytes anyway. A classic sender (the
//! reference, or chatctl's classic path) answers with classic data, which
//! the fast receiver reports as [`receiver::Handled::Classic`] so the caller
//! switches to the classic receiver. A chatctl sender recognises the exact
//! hello of a format it speaks ([`Format::of_hello`]) and answers with a
//! `CHALLENGE`; the transfer then uses that format, so this sender serves
//! format-2 receivers fast too, DONE carrying BLAKE3 for them and XXH3-128
//! for format 3 ([`Format::hash_algorithm`] is the one mapping). Peers that
//! share no format fall back to classic, never hang: a format-1 or format-2
//! sender reads a format-3 hello as a classic window of 98, and a format-1
//! hello (all spaces) is answered as by a classic sender. No fast
//! datagram begins with an ASCII digit or whitespace, so none can be read as
//! classic data, ACK or hello. The hello is padded to 1200 bytes so it also
//! proves the path carries 1200-byte datagrams, as QUIC's Initial does.
//!
//! # Datagrams
//! Every fast datagram is `type (1 byte) ‖ fields ‖ check (4 bytes)`, where
//! `check` is the CRC32C (Castagnoli, big-endian) of everything before it;
//! a datagram whose check fails is dropped. Integers are big-endian; offsets
//! and packet numbers are 64-bit and never wrap.
//!
//! # What the checks defend against
//! - **Accidental corruption** (a bad NIC, memory or middlebox that the
//!   16-bit UDP checksum misses): the per-datagram CRC32C detects every
//!   burst of up to 32 bits and all but 2⁻³² of other errors. It is
//!   computed by CLMUL folding (the `crc-fast` crate: 32 GB/s on 1432-byte
//!   datagrams on the development machine, where it was 11% of the sender's
//!   CPU and 6% of the receiver's at 1452-byte datagrams, about as much as
//!   one of the kernel's copies of the datagram). An unkeyed check defends against
//!   nothing deliberate: anyone can compute it (format 1's truncated BLAKE3
//!   was unkeyed too, and cost 85% of each side's CPU at 1452-byte datagrams).
//! - **Whatever else damages the file** (corruption the CRC misses, a bug
//!   that misplaces or keeps stale bytes, a resume from a wrong prefix, an
//!   injected datagram): the whole-file hash in DONE, which the receiver
//!   checks before it calls the download complete; a mismatch fails the
//!   transfer, it never ends with a silently wrong file. In format 3 it is
//!   XXH3-128, a non-cryptographic hash that misses such damage with odds
//!   of 2⁻¹²⁸ (rsync uses it as its whole-file checksum for the same job);
//!   format 2's BLAKE3 cost about a fifth of each side's CPU at 1452-byte
//!   datagrams, and bought nothing more: DONE is itself an unauthenticated
//!   datagram on the data's path, so whoever can inject DATA can inject a
//!   matching DONE, whichever the hash.
//! - **Off-path attackers**: the sender answers only the address of the
//!   hello, which must be the requester's (the driver), and stays within
//!   3× the bytes received until START echoes the CHALLENGE cookie (below):
//!   a spoofed hello cannot make it flood a third party. Injecting data into
//!   a transfer takes spoofing the peer's address and guessing both ports;
//!   the file hash then fails the transfer. Confidentiality and integrity
//!   against an on-path attacker need a keyed MAC and encryption (QUIC's
//!   AES-GCM): the fast mode, like the classic one and the TCP path, has none.
//!
//! The datagrams, their fields and the exchange are specified once, in
//! [protocol](crate::protocol) §6; what follows is how this module keeps them.
//!
//! - **Address validation**: until START echoes the CHALLENGE cookie, the
//!   sender sends at most three times the bytes it received (RFC 9000 §8),
//!   so a spoofed hello cannot turn the server into a flood.
//! - **ACK** ranges are received byte ranges (SACK), lowest first, the first
//!   usually starting at 0; `max data` is the flow-control limit: the sender
//!   never sends a byte at or beyond it. Data already acknowledged is never
//!   sent again.
//! - **Resume**: START's resume offset says the receiver already holds
//!   `0..resume`; the hash in DONE still covers the whole file.
//! - **Datagram size**: DATA starts at [`Config::max_datagram`] (path-safe)
//!   and grows when a larger DATA (a probe) is acknowledged; nothing else in
//!   the format depends on it.
//! - **STATS** tells the receiver what only the sender knows (its
//!   congestion window, RTT, loss and retransmissions) for `fetch -v`. The
//!   sender sends it after address validation only, at most every
//!   [`STATS_INTERVAL`], while sending data; it is informative: a lost STATS
//!   is not repeated and nothing depends on it.
//! - **ACK frequency** (after draft-ietf-quic-ack-frequency): the receiver
//!   acknowledges once `threshold` DATA datagrams are unacknowledged, or
//!   `max ack delay` after the first of them, and at once when a datagram
//!   arrives out of order (loss or reordering) or the file is complete.
//!   Until it hears an ACK-FREQUENCY the threshold is 2 and the delay
//!   [`Config::max_ack_delay`]. The sender sets the threshold from its
//!   window (about 8 ACKs per window, [`ack_threshold`]) and repeats the
//!   frame with each STATS while it differs from the default; the receiver
//!   takes the one with the highest sequence number. Like STATS it is
//!   informative: a receiver that ignores it acknowledges more often.
//! - **ABORT** ends a transfer from either side at once ([`Sender::abort`](sender::Sender::abort),
//!   [`Receiver::abort`](receiver::Receiver::abort)): [`ABORT_COPIES`]
//!   copies back to back, best effort, never acknowledged. It echoes the
//!   CHALLENGE's cookie, so only a peer that saw the CHALLENGE can end the
//!   transfer (and a stray ABORT of an earlier transfer on the same port
//!   ends nothing); the peer ends with an error carrying the
//!   [`AbortReason`]. A peer that predates ABORT ignores it as an unknown
//!   type and ends on its idle timeout instead.
//! - **Unknown types**: a peer ignores a datagram whose checksum is valid
//!   but whose type it does not know ([`DecodeError::Type`]), so new
//!   informative types (like STATS, added after the first six) can be sent
//!   to older peers. A new type must not be an ASCII digit or whitespace
//!   (that would read as classic data) and must not be needed for the
//!   transfer to complete.
//! - **End**: once every byte is acknowledged the sender repeats DONE (with
//!   RTO backoff) until DONE-ACK; the receiver verifies the hash, answers,
//!   and lingers to answer repeated DONEs. A sender that never hears the
//!   DONE-ACK still ends (all data was acknowledged) and says so.

use std::ops::Range;
use std::time::Duration;

use crate::rdt::cc::Algorithm;

mod control;
pub mod driver;
mod files;
mod mtu;
mod pacer;
pub mod receiver;
pub mod sender;
mod sent;
mod validation;

/// The hello's prefix: `int("0098")` is 98 for a classic peer.
pub const HELLO_PREFIX: &[u8] = b"0098";
/// The hello's padded length (QUIC's minimum Initial size).
pub const HELLO_LEN: usize = 1200;
/// Bytes of header in a DATA datagram: type, packet number, offset.
pub const DATA_HEADER: usize = 1 + 8 + 8;
/// Bytes of the trailing checksum (CRC32C).
pub const CHECK_LEN: usize = 4;
/// Bytes a DATA datagram carries besides file bytes: [`DATA_HEADER`] and the check.
pub const DATA_OVERHEAD: usize = DATA_HEADER + CHECK_LEN;
/// The most SACK ranges one ACK carries.
pub const MAX_ACK_RANGES: usize = 64;
/// Shortest time between two STATS datagrams.
pub const STATS_INTERVAL: Duration = Duration::from_millis(100);
/// Longest controller name a STATS carries (longer names are cut).
pub const MAX_CC_NAME: usize = 32;

/// Type byte of CHALLENGE (sender → receiver).
pub const T_CHALLENGE: u8 = 0xC1;
/// Type byte of START (receiver → sender).
pub const T_START: u8 = 0xC2;
/// Type byte of DATA (sender → receiver).
pub const T_DATA: u8 = 0xC3;
/// Type byte of ACK (receiver → sender).
pub const T_ACK: u8 = 0xC4;
/// Type byte of DONE (sender → receiver).
pub const T_DONE: u8 = 0xC5;
/// Type byte of DONE-ACK (receiver → sender).
pub const T_DONE_ACK: u8 = 0xC6;
/// Type byte of STATS (sender → receiver).
pub const T_STATS: u8 = 0xC7;
/// Type byte of ACK-FREQUENCY (sender → receiver).
pub const T_ACK_FREQUENCY: u8 = 0xC8;
/// Type byte of ABORT (either way).
pub const T_ABORT: u8 = 0xC9;
/// Longest text an ABORT carries, in bytes (longer texts are cut at a
/// character boundary).
pub const MAX_ABORT_TEXT: usize = 200;
/// How many copies of an ABORT a machine sends, back to back: it is never
/// acknowledged nor repeated later, so copies stand in for repetition.
pub const ABORT_COPIES: u32 = 3;

/// Most bytes in one segmented (GSO) send: the largest UDP payload over
/// IPv4 (65,535 − 20 − 8); the kernel refuses a larger buffer.
pub const GSO_MAX_BYTES: usize = 65_507;

/// The ACK threshold a sender asks for with a window of `cwnd` bytes of
/// `mss`-byte datagrams: about 8 ACKs per window, between 2 and 64 datagrams.
pub fn ack_threshold(cwnd: u64, mss: u64) -> u32 {
    (cwnd / mss.max(1) / 8).clamp(2, 64) as u32
}

/// Settings shared by sender and receiver.
#[derive(Debug, Clone)]
pub struct Config {
    /// Congestion controller of the sender.
    pub cc: Algorithm,
    /// Largest UDP payload sent. 1452 fits IPv6 over a 1500-byte MTU; loopback
    /// and jumbo paths may use more.
    pub max_datagram: usize,
    /// Lower bound of the RTO (RFC 6298 says 1 s; 200 ms like Linux).
    pub min_rto: Duration,
    /// Give up after hearing nothing from the peer for this long.
    pub idle_timeout: Duration,
    /// Receiver: how far beyond the contiguous prefix the sender may send.
    pub receive_window: u64,
    /// Receiver: largest delay before acknowledging (RFC 9000's max_ack_delay).
    pub max_ack_delay: Duration,
    /// Seed for the cookie; drivers take it from the OS.
    pub seed: u64,
    /// Pacing: bursts of at most this many datagrams.
    pub pacing_burst: u32,
    /// Path-MTU probing (DPLPMTUD-style): datagram sizes tried in turn above
    /// `max_datagram`, one DATA probe at a time; an acknowledged probe
    /// raises the datagram size, a lost one stops the probing (and does not
    /// count as congestion). The receiver accepts any size up to 65,507.
    pub probe_datagrams: Vec<usize>,
    /// Whether the path may be probed for larger datagrams: when false,
    /// [`Config::for_path`] keeps `max_datagram` even
    /// on loopback and no sizes in `probe_datagrams` are tried. Turn it off to
    /// emulate a 1500-byte-MTU path through a loopback relay.
    pub probe: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cc: Algorithm::default(),
            max_datagram: 1452,
            min_rto: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(10),
            receive_window: 64 << 20,
            max_ack_delay: Duration::from_millis(5),
            seed: 0x5eed,
            pacing_burst: 16,
            probe_datagrams: vec![8972, 16_384, 65_000],
            probe: true,
        }
    }
}

impl Config {
    /// File bytes per DATA datagram.
    pub fn payload_len(&self) -> usize {
        self.max_datagram.saturating_sub(DATA_OVERHEAD).max(1)
    }
}

/// A fast-mode wire format chatctl speaks, as its hello marks it (format
/// 1, the hello all spaces, is classic to this chatctl). The formats differ
/// only in the whole-file check DONE carries ([`Format::hash_algorithm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CRC32C per datagram, BLAKE3 of the whole file; the hello ends with a tab.
    V2,
    /// CRC32C per datagram, XXH3-128 of the whole file; the hello ends with a
    /// form feed.
    V3,
}

impl Format {
    /// The format a chatctl receiver offers.
    pub const LATEST: Format = Format::V3;

    /// The hello's last byte: ASCII whitespace that both Python's `int()`
    /// and [`classic::parse_window`](crate::rdt::classic::parse_window)
    /// strip, so a classic sender reads any of these hellos as window 98.
    pub const fn hello_mark(self) -> u8 {
        match self {
            Format::V2 => b'\t',
            Format::V3 => 0x0c,
        }
    }

    /// The whole-file check in DONE: the one place that maps a format to its hash.
    pub const fn hash_algorithm(self) -> HashAlgorithm {
        match self {
            Format::V2 => HashAlgorithm::Blake3,
            Format::V3 => HashAlgorithm::Xxh3_128,
        }
    }

    /// The format of a chatctl receiver's fast-capable hello: [`HELLO_PREFIX`],
    /// spaces up to [`HELLO_LEN`] − 1 bytes, then the format's mark (None for
    /// anything else, a format-1 hello included).
    pub fn of_hello(datagram: &[u8]) -> Option<Format> {
        let (&last, body) = datagram.split_last()?;
        if !body.starts_with(HELLO_PREFIX) || !body[HELLO_PREFIX.len()..].iter().all(|&b| b == b' ') {
            return None;
        }
        [Format::V2, Format::V3].into_iter().find(|f| f.hello_mark() == last)
    }

    /// This format's hello.
    pub fn hello(self) -> Vec<u8> {
        let mut v = HELLO_PREFIX.to_vec();
        v.resize(HELLO_LEN - 1, b' ');
        v.push(self.hello_mark());
        v
    }
}

/// Whether `datagram` is a chatctl receiver's fast-capable hello of a format
/// this chatctl sends ([`Format::of_hello`]).
pub fn is_fast_hello(datagram: &[u8]) -> bool {
    Format::of_hello(datagram).is_some()
}

/// The hello of the format a chatctl receiver offers ([`Format::LATEST`]).
pub fn encode_hello() -> Vec<u8> {
    Format::LATEST.hello()
}

/// The whole-file check DONE carries, by [`Format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HashAlgorithm {
    /// BLAKE3, 32 bytes (format 2).
    #[serde(rename = "BLAKE3")]
    Blake3,
    /// XXH3-128 (format 3): the digest as a big-endian u128, then 16 zero bytes.
    #[serde(rename = "XXH3-128")]
    Xxh3_128,
}

impl HashAlgorithm {
    /// Its usual name (`BLAKE3`, `XXH3-128`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Blake3 => "BLAKE3",
            HashAlgorithm::Xxh3_128 => "XXH3-128",
        }
    }

    /// Bytes of DONE's 32-byte hash field the digest fills (the rest are zero).
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Blake3 => 32,
            HashAlgorithm::Xxh3_128 => 16,
        }
    }

    /// A hasher whose [`finalize`](Hasher::finalize) is DONE's hash field.
    pub fn hasher(self) -> Hasher {
        match self {
            HashAlgorithm::Blake3 => Hasher(HasherState::Blake3(Box::default())),
            HashAlgorithm::Xxh3_128 => Hasher(HasherState::Xxh3(Box::default())),
        }
    }

    /// DONE's hash field for a file of `bytes`, at once.
    pub fn field(self, bytes: &[u8]) -> [u8; 32] {
        let mut h = self.hasher();
        h.update(bytes);
        h.finalize()
    }

    /// DONE's hash field in hex as a person reads it: the digest's bytes, or
    /// all 32 when the padding after it is not zero (a malformed DONE).
    pub fn hex(self, field: &[u8; 32]) -> String {
        let n = if field[self.digest_len()..].iter().all(|&b| b == 0) { self.digest_len() } else { field.len() };
        field[..n].iter().fold(String::with_capacity(2 * n), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl std::fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole-file hash in progress ([`HashAlgorithm::hasher`]).
#[derive(Clone)]
pub struct Hasher(HasherState);

#[derive(Clone)]
enum HasherState {
    Blake3(Box<blake3::Hasher>),
    Xxh3(Box<twox_hash::XxHash3_128>),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Hasher").field(&self.algorithm()).finish_non_exhaustive()
    }
}

impl Hasher {
    /// Which hash this is.
    pub fn algorithm(&self) -> HashAlgorithm {
        match self.0 {
            HasherState::Blake3(_) => HashAlgorithm::Blake3,
            HasherState::Xxh3(_) => HashAlgorithm::Xxh3_128,
        }
    }

    /// Hashes the file's next `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            HasherState::Blake3(h) => {
                h.update(bytes);
            }
            HasherState::Xxh3(h) => h.write(bytes),
        }
    }

    /// DONE's 32-byte hash field for what was fed: the BLAKE3 hash, or the
    /// XXH3-128 digest (big-endian) followed by 16 zero bytes.
    pub fn finalize(&self) -> [u8; 32] {
        match &self.0 {
            HasherState::Blake3(h) => *h.finalize().as_bytes(),
            HasherState::Xxh3(h) => {
                let mut field = [0; 32];
                field[..16].copy_from_slice(&h.finish_128().to_be_bytes());
                field
            }
        }
    }
}

/// One decoded fast datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Sender's address-validation cookie and the file size.
    Challenge {
        /// The value START must echo.
        cookie: u64,
        /// The file's size in bytes.
        size: u64,
    },
    /// Receiver echoes the cookie, says what it already has and how far the sender may go.
    Start {
        /// The CHALLENGE's cookie.
        cookie: u64,
        /// The receiver already holds bytes `0..resume`.
        resume: u64,
        /// Flow control: the sender sends no byte at or beyond this offset.
        max_data: u64,
    },
    /// File bytes at `offset`.
    Data {
        /// Packet number: new for every DATA, retransmissions included.
        pn: u64,
        /// Offset of `payload` in the file.
        offset: u64,
        /// The file's bytes.
        payload: &'a [u8],
    },
    /// Selective acknowledgement.
    Ack {
        /// The largest packet number received.
        largest_pn: u64,
        /// How long the receiver held that packet before this ACK, in microseconds.
        delay_us: u32,
        /// Flow control: the sender sends no byte at or beyond this offset.
        max_data: u64,
        /// Byte ranges received, lowest first; at most [`MAX_ACK_RANGES`].
        ranges: Vec<Range<u64>>,
    },
    /// Every byte is acknowledged; here is the file's hash.
    Done {
        /// The file's size in bytes.
        size: u64,
        /// The whole file's hash field, by the transfer's format
        /// ([`Hasher::finalize`]).
        hash: [u8; 32],
    },
    /// The receiver's verdict on the hash.
    DoneAck {
        /// Whether the receiver's hash matched.
        ok: bool,
    },
    /// The sender's own figures, for the receiver's display.
    Stats(SenderStats),
    /// How often the receiver should acknowledge (newest `seq` wins).
    AckFrequency {
        /// Request number; a receiver keeps the newest.
        seq: u64,
        /// Acknowledge at least every `threshold` DATA datagrams.
        threshold: u32,
        /// …or at most this long (µs) after an unacknowledged DATA.
        max_delay_us: u32,
    },
    /// The transfer ends now, for `reason` (either way).
    Abort {
        /// The CHALLENGE's cookie: only a peer that saw it can abort.
        cookie: u64,
        /// Why.
        reason: AbortReason,
        /// A short text for the person, at most [`MAX_ABORT_TEXT`] bytes of
        /// UTF-8 (possibly empty; escaped before it is shown).
        text: &'a str,
    },
}

/// Why a transfer was aborted: ABORT's reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// 1: the receiver gave up (Ctrl-C, an early exit).
    Cancelled,
    /// 2: the file changed on the server while it was sent.
    FileChanged,
    /// 3: the file became unreadable on the server (vanished, truncated, I/O error).
    FileUnreadable,
    /// 4: the server is shutting down.
    ServerShutdown,
    /// 5: the user who asked for the file left the room.
    UserLeft,
    /// Any other code (from a newer peer).
    Other(u8),
}

impl AbortReason {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            AbortReason::Cancelled => 1,
            AbortReason::FileChanged => 2,
            AbortReason::FileUnreadable => 3,
            AbortReason::ServerShutdown => 4,
            AbortReason::UserLeft => 5,
            AbortReason::Other(c) => c,
        }
    }

    /// The reason of a code on the wire.
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => AbortReason::Cancelled,
            2 => AbortReason::FileChanged,
            3 => AbortReason::FileUnreadable,
            4 => AbortReason::ServerShutdown,
            5 => AbortReason::UserLeft,
            c => AbortReason::Other(c),
        }
    }
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortReason::Cancelled => f.write_str("cancelled by the receiver"),
            AbortReason::FileChanged => f.write_str("the file changed on the server while it was sent"),
            AbortReason::FileUnreadable => f.write_str("the file became unreadable on the server"),
            AbortReason::ServerShutdown => f.write_str("the server is shutting down"),
            AbortReason::UserLeft => f.write_str("the user left the room"),
            AbortReason::Other(c) => write!(f, "aborted (code {c})"),
        }
    }
}

/// An ABORT as a machine reports it: the reason and the peer's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    /// Why.
    pub reason: AbortReason,
    /// The text that came with it (from the network: shown escaped).
    pub text: String,
}

impl std::fmt::Display for Abort {
    /// The reason, then the text (terminal control characters escaped) if any.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        if !self.text.is_empty() {
            write!(f, ": {}", crate::text::escape(&self.text))?;
        }
        Ok(())
    }
}

/// `text` cut to at most [`MAX_ABORT_TEXT`] bytes, at a character boundary.
pub(crate) fn abort_text(text: &str) -> &str {
    let mut end = text.len().min(MAX_ABORT_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What only the sender knows about a transfer, sent to the receiver in
/// STATS so that `fetch -v` can show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SenderStats {
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Smoothed RTT (whole microseconds on the wire, and `srtt_us` in JSON).
    #[serde(rename = "srtt_us", serialize_with = "micros")]
    pub srtt: Duration,
    /// Pacing rate, bytes per second.
    pub pacing_rate: u64,
    /// Packets declared lost so far.
    pub packets_lost: u64,
    /// File bytes sent again so far.
    pub bytes_retransmitted: u64,
    /// Congestion controller (`newreno`, `cubic`, `bbr`...), at most [`MAX_CC_NAME`] ASCII bytes.
    pub cc: String,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Why a datagram is not a valid fast datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than a type byte and checksum.
    #[error("datagram too short")]
    Short,
    /// The checksum does not match (corruption).
    #[error("datagram checksum mismatch")]
    Checksum,
    /// Unknown type byte.
    #[error("unknown fast datagram type {0:#04x}")]
    Type(u8),
    /// Fields do not fit the declared type.
    #[error("malformed fast datagram")]
    Malformed,
}

fn check(bytes: &[u8]) -> [u8; CHECK_LEN] {
    // CRC-32/ISCSI is CRC32C (Castagnoli); the value fits 32 bits.
    (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32).to_be_bytes()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| DecodeError::Malformed)?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| DecodeError::Malformed)?))
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| DecodeError::Malformed)?))
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() { Ok(()) } else { Err(DecodeError::Malformed) }
    }
}

impl<'a> Frame<'a> {
    /// Decodes and verifies one datagram.
    pub fn decode(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        if datagram.len() < 1 + CHECK_LEN {
            return Err(DecodeError::Short);
        }
        let (body, c) = datagram.split_at(datagram.len() - CHECK_LEN);
        if check(body) != c {
            return Err(DecodeError::Checksum);
        }
        let mut r = Reader(&body[1..]);
        let f = match body[0] {
            T_CHALLENGE => Frame::Challenge { cookie: r.u64()?, size: r.u64()? },
            T_START => Frame::Start { cookie: r.u64()?, resume: r.u64()?, max_data: r.u64()? },
            T_DATA => {
                let pn = r.u64()?;
                let offset = r.u64()?;
                let payload = std::mem::take(&mut r.0);
                offset.checked_add(payload.len() as u64).ok_or(DecodeError::Malformed)?;
                Frame::Data { pn, offset, payload }
            }
            T_ACK => {
                let largest_pn = r.u64()?;
                let delay_us = r.u32()?;
                let max_data = r.u64()?;
                let n = usize::from(r.u16()?);
                if n > MAX_ACK_RANGES {
                    return Err(DecodeError::Malformed);
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    let (s, e) = (r.u64()?, r.u64()?);
                    if s > e {
                        return Err(DecodeError::Malformed);
                    }
                    ranges.push(s..e);
                }
                Frame::Ack { largest_pn, delay_us, max_data, ranges }
            }
            T_DONE => {
                let size = r.u64()?;
                let hash = r.take(32)?.try_into().map_err(|_| DecodeError::Malformed)?;
                Frame::Done { size, hash }
            }
            T_DONE_ACK => Frame::DoneAck { ok: r.take(1)?[0] == 0 },
            T_STATS => {
                let cwnd = r.u64()?;
                let srtt = Duration::from_micros(r.u64()?);
                let (pacing_rate, packets_lost, bytes_retransmitted) = (r.u64()?, r.u64()?, r.u64()?);
                let n = usize::from(r.take(1)?[0]);
                let name = r.take(n)?;
                if n > MAX_CC_NAME || !name.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(DecodeError::Malformed);
                }
                let cc = String::from_utf8_lossy(name).into_owned();
                Frame::Stats(SenderStats { cwnd, srtt, pacing_rate, packets_lost, bytes_retransmitted, cc })
            }
            T_ACK_FREQUENCY => Frame::AckFrequency { seq: r.u64()?, threshold: r.u32()?, max_delay_us: r.u32()? },
            T_ABORT => {
                let cookie = r.u64()?;
                let reason = AbortReason::from_code(r.take(1)?[0]);
                let n = usize::from(r.take(1)?[0]);
                if n > MAX_ABORT_TEXT {
                    return Err(DecodeError::Malformed);
                }
                let text = std::str::from_utf8(r.take(n)?).map_err(|_| DecodeError::Malformed)?;
                Frame::Abort { cookie, reason, text }
            }
            t => return Err(DecodeError::Type(t)),
        };
        r.end()?;
        Ok(f)
    }

    /// Encodes into `out` (cleared first), checksum included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Frame::Challenge { cookie, size } => {
                out.push(T_CHALLENGE);
                out.extend_from_slice(&cookie.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
            }
            Frame::Start { cookie, resume, max_data } => {
                out.push(T_START);
                out.extend_from_slice(&cookie.to_be_bytes());
                out.extend_from_slice(&resume.to_be_bytes());
                out.extend_from_slice(&max_data.to_be_bytes());
            }
            Frame::Data { pn, offset, payload } => {
                out.push(T_DATA);
                out.extend_from_slice(&pn.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Frame::Ack { largest_pn, delay_us, max_data, ranges } => {
                out.push(T_ACK);
                out.extend_from_slice(&largest_pn.to_be_bytes());
                out.extend_from_slice(&delay_us.to_be_bytes());
                out.extend_from_slice(&max_data.to_be_bytes());
                let n = ranges.len().min(MAX_ACK_RANGES);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for r in &ranges[..n] {
                    out.extend_from_slice(&r.start.to_be_bytes());
                    out.extend_from_slice(&r.end.to_be_bytes());
                }
            }
            Frame::Done { size, hash } => {
                out.push(T_DONE);
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(hash);
            }
            Frame::DoneAck { ok } => {
                out.push(T_DONE_ACK);
                out.push(if *ok { 0 } else { 1 });
            }
            Frame::Stats(s) => {
                out.push(T_STATS);
                let srtt_us = u64::try_from(s.srtt.as_micros()).unwrap_or(u64::MAX);
                for v in [s.cwnd, srtt_us, s.pacing_rate, s.packets_lost, s.bytes_retransmitted] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                let name: Vec<u8> = s.cc.bytes().filter(u8::is_ascii_graphic).take(MAX_CC_NAME).collect();
                out.push(name.len() as u8);
                out.extend_from_slice(&name);
            }
            Frame::AckFrequency { seq, threshold, max_delay_us } => {
                out.push(T_ACK_FREQUENCY);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&threshold.to_be_bytes());
                out.extend_from_slice(&max_delay_us.to_be_bytes());
            }
            Frame::Abort { cookie, reason, text } => {
                out.push(T_ABORT);
                out.extend_from_slice(&cookie.to_be_bytes());
                out.push(reason.code());
                let text = abort_text(text);
                out.push(text.len() as u8);
                out.extend_from_slice(text.as_bytes());
            }
        }
        let c = check(out);
        out.extend_from_slice(&c);
    }
}

/// Appends a DATA datagram to what `out` holds (a GSO batch is built in
/// place), its payload read in place: `fill` gets the datagram's `len`
/// payload bytes to fill, then the checksum is appended. On error `out` is
/// as it was.
pub(crate) fn append_data_with<E>(
    out: &mut Vec<u8>,
    pn: u64,
    offset: u64,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<(), E> {
    let at = out.len();
    out.push(T_DATA);
    out.extend_from_slice(&pn.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.resize(at + DATA_HEADER + len, 0);
    if let Err(e) = fill(&mut out[at + DATA_HEADER..]) {
        out.truncate(at);
        return Err(e);
    }
    let c = check(&out[at..]);
    out.extend_from_slice(&c);
    Ok(())
}

/// Appends a DATA datagram carrying the file's `len` bytes at `offset` from
/// `src`: copied once from the source's memory when it holds them (no
/// zero-fill first), else read in place ([`append_data_with`]).
pub(crate) fn append_data_from(
    out: &mut Vec<u8>,
    pn: u64,
    offset: u64,
    len: usize,
    src: &mut dyn Source,
) -> std::io::Result<()> {
    let held = src.cached(offset, len);
    if held.len() < len {
        return append_data_with(out, pn, offset, len, |buf| src.read_at(offset, buf));
    }
    let at = out.len();
    out.reserve(DATA_HEADER + len + CHECK_LEN);
    out.push(T_DATA);
    out.extend_from_slice(&pn.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&held[..len]);
    let c = check(&out[at..]);
    out.extend_from_slice(&c);
    Ok(())
}

/// Where the sender reads the file: positioned reads, so the machine stays free of I/O policy.
pub trait Source {
    /// Fills `buf` with the file's bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// The file's bytes from `offset` that the source holds in memory, at
    /// most `len` (fewer, or none, when it holds fewer): the whole-file hash
    /// is fed from here in large runs, without a copy. By default none.
    fn cached(&self, offset: u64, len: usize) -> &[u8] {
        let _ = (offset, len);
        &[]
    }
    /// Why a failed read ends the transfer, for the ABORT the receiver
    /// gets. By default the file became unreadable.
    fn abort_reason(&self) -> AbortReason {
        AbortReason::FileUnreadable
    }
}

/// Watches the file a sender reads: the server's check that it does not
/// change while it is sent. Called after every read of a [`Watched`] source.
pub trait ReadWatch: Send {
    /// `result` is how the read of `len` bytes at `offset` went; an error
    /// returned here fails the read (and so the transfer) instead.
    fn after_read(&mut self, offset: u64, len: usize, result: std::io::Result<()>) -> std::io::Result<()>;
    /// Why a read failed, for the ABORT the receiver gets: by default the
    /// file became unreadable; a watch that saw the file change says so.
    fn abort_reason(&self) -> AbortReason {
        AbortReason::FileUnreadable
    }
}

/// No watch: every read stands as it went.
impl ReadWatch for Option<Box<dyn ReadWatch>> {
    fn after_read(&mut self, offset: u64, len: usize, result: std::io::Result<()>) -> std::io::Result<()> {
        match self {
            Some(w) => w.after_read(offset, len, result),
            None => result,
        }
    }
    fn abort_reason(&self) -> AbortReason {
        self.as_ref().map_or(AbortReason::FileUnreadable, |w| w.abort_reason())
    }
}

/// A [`Source`] whose reads a [`ReadWatch`] checks; memory it holds
/// ([`Source::cached`]) was read, and checked, before.
#[derive(Debug)]
pub struct Watched<S, W> {
    /// Where the bytes come from.
    pub inner: S,
    /// What checks each read.
    pub watch: W,
}

impl<S: Source, W: ReadWatch> Source for Watched<S, W> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let r = self.inner.read_at(offset, buf);
        self.watch.after_read(offset, buf.len(), r)
    }
    fn cached(&self, offset: u64, len: usize) -> &[u8] {
        self.inner.cached(offset, len)
    }
    fn abort_reason(&self) -> AbortReason {
        self.watch.abort_reason()
    }
}

/// Where the receiver writes the file: positioned writes, out of order.
pub trait Sink {
    /// Writes `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;
    /// Reads back (to verify the final hash).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// Like [`Source::cached`]: bytes written at `offset` that the sink
    /// still holds in memory, at most `len`. By default none.
    fn cached(&self, offset: u64, len: usize) -> &[u8] {
        let _ = (offset, len);
        &[]
    }
}

/// Bytes the whole-file hash is fed at once (at least): large enough for
/// BLAKE3's SIMD multi-chunk path (and XXH3's long-input loop), small enough
/// to stay in the file adapters' caches.
pub const HASH_RUN: u64 = 64 << 10;

/// The whole-file hash of a transfer ([`Format::hash_algorithm`]), fed in
/// order from a [`Source`] or [`Sink`]'s memory where it can, by reading
/// back otherwise.
#[derive(Debug, Clone)]
pub(crate) struct FileHash {
    hasher: Hasher,
    /// Bytes `0..hashed_to` are hashed.
    hashed_to: u64,
    buf: Vec<u8>,
}

/// What [`FileHash`] reads the file from: a [`Source`] or a [`Sink`].
pub(crate) trait HashInput {
    fn held(&self, offset: u64, len: usize) -> &[u8];
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl HashInput for dyn Source + '_ {
    fn held(&self, offset: u64, len: usize) -> &[u8] {
        self.cached(offset, len)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_at(offset, buf)
    }
}

impl HashInput for dyn Sink + '_ {
    fn held(&self, offset: u64, len: usize) -> &[u8] {
        self.cached(offset, len)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_at(offset, buf)
    }
}

impl FileHash {
    /// Nothing hashed yet, with `algorithm`.
    pub(crate) fn new(algorithm: HashAlgorithm) -> Self {
        Self { hasher: algorithm.hasher(), hashed_to: 0, buf: Vec::new() }
    }

    /// How far the hash has got.
    pub(crate) fn hashed_to(&self) -> u64 {
        self.hashed_to
    }

    /// Hashes the file up to `end`: from the memory of `file` while it has
    /// the bytes, else reading them (1 MiB at a time).
    pub(crate) fn feed_to<F: HashInput + ?Sized>(
        &mut self,
        end: u64,
        file: &mut F,
    ) -> Result<(), (u64, std::io::Error)> {
        while self.hashed_to < end {
            let want = (end - self.hashed_to).min(1 << 20) as usize;
            let c = file.held(self.hashed_to, want);
            if !c.is_empty() {
                let c = &c[..c.len().min(want)];
                self.hasher.update(c);
                self.hashed_to += c.len() as u64;
                continue;
            }
            self.buf.resize(want, 0);
            file.read(self.hashed_to, &mut self.buf).map_err(|e| (self.hashed_to, e))?;
            self.hasher.update(&self.buf);
            self.hashed_to += want as u64;
        }
        Ok(())
    }

    /// Like [`feed_to`](Self::feed_to), but only up to the last multiple of
    /// [`HASH_RUN`] at or below `end`: every update then starts and ends on
    /// a BLAKE3 chunk boundary, so whole runs go through its SIMD
    /// multi-chunk path (an update that starts mid-chunk hashes that chunk
    /// one 64-byte block at a time; XXH3 does not mind either way). The
    /// last, partial run is fed by a final `feed_to(size)`.
    pub(crate) fn feed_runs_to<F: HashInput + ?Sized>(
        &mut self,
        end: u64,
        file: &mut F,
    ) -> Result<(), (u64, std::io::Error)> {
        self.feed_to(end - end % HASH_RUN, file)
    }

    /// Feeds `bytes`, the file's bytes at `offset`, straight away if they
    /// are next and large enough for the fast path (65 KB datagrams, which
    /// the file adapters do not keep in memory).
    pub(crate) fn feed_next(&mut self, offset: u64, bytes: &[u8]) {
        if offset == self.hashed_to && bytes.len() as u64 >= HASH_RUN / 4 {
            self.hasher.update(bytes);
            self.hashed_to += bytes.len() as u64;
        }
    }

    /// DONE's hash field for what was fed (the whole file once `hashed_to`
    /// is its size).
    pub(crate) fn finalize(&self) -> [u8; 32] {
        self.hasher.finalize()
    }
}

fn slice_at(v: &[u8], offset: u64, len: usize) -> std::io::Result<Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
    let end = start.checked_add(len).filter(|&e| e <= v.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
    Ok(start..end)
}

/// At most `len` bytes of `v` from `offset` (none beyond its end).
fn held(v: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(v.len());
    &v[start..start + len.min(v.len() - start)]
}

impl Source for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let r = slice_at(self, offset, buf.len())?;
        buf.copy_from_slice(&self[r]);
        Ok(())
    }
    fn cached(&self, offset: u64, len: usize) -> &[u8] {
        held(self, offset, len)
    }
}

impl Sink for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let end = start + data.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(data);
        Ok(())
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        Source::read_at(&mut self.as_slice(), offset, buf)
    }
    fn cached(&self, offset: u64, len: usize) -> &[u8] {
        held(self, offset, len)
    }
}

#[cfg(unix)]
impl Source for std::fs::File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

#[cfg(unix)]
impl Sink for std::fs::File {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

#[cfg(unix)]
impl Source for &std::fs::File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(*self, buf, offset)
    }
}

#[cfg(unix)]
impl Sink for &std::fs::File {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(*self, data, offset)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(*self, buf, offset)
    }
}

/// Live figures of a transfer (for `fetch -v` and server logs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Datagrams sent (all kinds).
    pub datagrams_sent: u64,
    /// File bytes sent including retransmissions.
    pub bytes_sent: u64,
    /// File bytes sent again after a loss.
    pub bytes_retransmitted: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Retransmission timeouts.
    pub rtos: u64,
    /// File bytes acknowledged (sender) or received (receiver).
    pub bytes_done: u64,
    /// Receiver: bytes `0..held_prefix` are all held (what a resume keeps:
    /// a resume offset says the receiver holds everything before it).
    pub held_prefix: u64,
    /// Receiver: the sender's own figures from its last STATS (none yet, or
    /// from a sender that does not send STATS).
    pub sender: Option<SenderStats>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn data_from_a_sources_memory_is_the_same_datagram_as_data_read_in_place() {
        let file: Vec<u8> = (0..5_000u32).map(|i| (i % 241) as u8).collect();
        let mut src: &[u8] = &file;
        let (mut held, mut read) = (vec![9u8; 3], vec![9u8; 3]);
        append_data_from(&mut held, 7, 1_000, 1_427, &mut src).unwrap();
        append_data_with(&mut read, 7, 1_000, 1_427, |b| src.read_at(1_000, b)).unwrap();
        assert!(held == read);
        assert_eq!(Frame::decode(&held[3..]), Ok(Frame::Data { pn: 7, offset: 1_000, payload: &file[1_000..2_427] }));
        // Beyond what the source holds: read (and fail) as before, `out` unchanged.
        assert!(append_data_from(&mut held, 8, 4_000, 1_427, &mut src).is_err());
        assert!(held == read);
    }

    /// DONE's format-3 field for `bytes`, by an independent XXH3-128
    /// implementation (xxhash-rust): the digest big-endian, then 16 zeros.
    pub(crate) fn xxh3_field(bytes: &[u8]) -> [u8; 32] {
        let mut f = [0; 32];
        f[..16].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(bytes).to_be_bytes());
        f
    }

    #[test]
    fn the_file_hash_is_fed_in_whole_runs_and_matches_the_one_shot_hash() {
        let file: Vec<u8> = (0..HASH_RUN as usize * 5 + 777).map(|i| (i * 7 % 253) as u8).collect();
        for (algorithm, want) in
            [(HashAlgorithm::Xxh3_128, xxh3_field(&file)), (HashAlgorithm::Blake3, *blake3::hash(&file).as_bytes())]
        {
            let mut src: &[u8] = &file;
            let mut h = FileHash::new(algorithm);
            // Where a sender or receiver asks for it: at odd offsets.
            for end in [1_000, HASH_RUN + 1_427, 3 * HASH_RUN - 1, 3 * HASH_RUN + 5_000] {
                h.feed_runs_to(end, &mut src as &mut dyn Source).unwrap();
                assert_eq!(h.hashed_to() % HASH_RUN, 0, "fed to {} for {end}", h.hashed_to());
                assert!(h.hashed_to() <= end && end - h.hashed_to() < HASH_RUN);
            }
            // A large datagram fed straight away, then the rest read back.
            let at = h.hashed_to() as usize;
            h.feed_next(at as u64, &file[at..at + 20_000]);
            assert_eq!(h.hashed_to() as usize, at + 20_000);
            h.feed_to(file.len() as u64, &mut src as &mut dyn Source).unwrap();
            assert_eq!(h.finalize(), want, "{algorithm}");
            assert_eq!(algorithm.field(&file), want, "{algorithm}");
        }
    }

    /// A measurement, not a check: [`FileHash`] throughput of each
    /// algorithm on 256 MiB in memory, fed in [`HASH_RUN`] runs as a sender
    /// feeds it. Run `cargo test --release --lib file_hash_throughput --
    /// --ignored --nocapture` on a quiet machine.
    #[test]
    #[ignore = "a measurement: run it in release"]
    fn file_hash_throughput() {
        let file: Vec<u8> = (0..256usize << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for algorithm in [HashAlgorithm::Blake3, HashAlgorithm::Xxh3_128] {
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                let mut h = FileHash::new(algorithm);
                let mut src: &[u8] = &file;
                for end in (HASH_RUN..=file.len() as u64).step_by(HASH_RUN as usize) {
                    h.feed_runs_to(end, &mut src as &mut dyn Source).unwrap();
                }
                std::hint::black_box(h.finalize());
                times.push(t.elapsed().as_secs_f64());
            }
            // The same bytes, but one run fed again and again: in cache, as
            // a run is when the hash follows the data a sender just read.
            let mut cached = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                let mut h = algorithm.hasher();
                for _ in 0..file.len() as u64 / HASH_RUN {
                    h.update(&file[..HASH_RUN as usize]);
                }
                std::hint::black_box(h.finalize());
                cached.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            cached.sort_by(f64::total_cmp);
            let gbs = |t: f64| file.len() as f64 / t / 1e9;
            println!(
                "{algorithm}: 256 MiB from memory: best {:.2} GB/s, median {:.2}; one run in cache: best {:.2} GB/s, median {:.2}",
                gbs(times[0]),
                gbs(times[2]),
                gbs(cached[0]),
                gbs(cached[2])
            );
        }
    }

    #[test]
    fn the_xxh3_field_is_the_big_endian_digest_then_zeros() {
        let field = HashAlgorithm::Xxh3_128.field(b"abc");
        let d = xxhash_rust::xxh3::xxh3_128(b"abc");
        assert_eq!(u128::from_be_bytes(field[..16].try_into().unwrap()), d);
        assert_eq!(field[16..], [0; 16]);
        assert_eq!(HashAlgorithm::Xxh3_128.hex(&field), format!("{d:032x}"));
        // Non-zero padding is shown whole.
        let mut bad = field;
        bad[31] = 1;
        assert_eq!(HashAlgorithm::Xxh3_128.hex(&bad), format!("{d:032x}{:032x}", 1));
        let b = blake3::hash(b"abc");
        assert_eq!(HashAlgorithm::Blake3.hex(b.as_bytes()), b.to_hex().as_str());
    }

    #[test]
    fn frames_roundtrip_and_reject_corruption() {
        let frames = [
            Frame::Challenge { cookie: 7, size: 1 << 40 },
            Frame::Start { cookie: 7, resume: 5, max_data: 9 },
            Frame::Data { pn: u64::MAX, offset: 1 << 33, payload: b"abc" },
            Frame::Ack { largest_pn: 3, delay_us: 10, max_data: 100, ranges: vec![0..10, 20..30] },
            Frame::Done { size: 3, hash: [9; 32] },
            Frame::DoneAck { ok: true },
            Frame::Stats(SenderStats {
                cwnd: 1 << 20,
                srtt: Duration::from_micros(1234),
                pacing_rate: 800_000_000,
                packets_lost: 3,
                bytes_retransmitted: 4096,
                cc: "bbr".into(),
            }),
            Frame::AckFrequency { seq: 3, threshold: 16, max_delay_us: 5000 },
            Frame::Abort { cookie: 7, reason: AbortReason::FileChanged, text: "size 10 → 12" },
            Frame::Abort { cookie: u64::MAX, reason: AbortReason::Other(0), text: "" },
        ];
        let mut out = Vec::new();
        for f in frames {
            f.encode(&mut out);
            assert!(!out[0].is_ascii_digit() && !out[0].is_ascii_whitespace());
            assert_eq!(Frame::decode(&out), Ok(f.clone()));
            let mut bad = out.clone();
            bad[1] ^= 1;
            assert_eq!(Frame::decode(&bad), Err(DecodeError::Checksum));
            assert_eq!(crate::rdt::classic::Data::parse(&out).map(|_| ()), None);
        }
    }

    #[test]
    fn stats_names_are_bounded_ascii() {
        let mut out = Vec::new();
        let long = SenderStats { cc: format!("{}\u{1b}[2J", "x".repeat(40)), ..SenderStats::default() };
        Frame::Stats(long).encode(&mut out);
        let Ok(Frame::Stats(s)) = Frame::decode(&out) else { panic!("{out:?}") };
        assert_eq!(s.cc, "x".repeat(MAX_CC_NAME));
        // A name with a control character on the wire is malformed.
        let mut bad = Vec::new();
        Frame::Stats(SenderStats { cc: "ab".into(), ..SenderStats::default() }).encode(&mut bad);
        let body_len = bad.len() - CHECK_LEN;
        bad[body_len - 1] = 0x1b;
        let c = check(&bad[..body_len]);
        bad[body_len..].copy_from_slice(&c);
        assert_eq!(Frame::decode(&bad), Err(DecodeError::Malformed));
    }

    #[test]
    fn unknown_types_with_a_valid_checksum_are_reported_as_such() {
        for t in [0xCAu8, 0xFF, 0x80] {
            let mut d = vec![t, 1, 2, 3];
            let c = check(&d);
            d.extend_from_slice(&c);
            assert_eq!(Frame::decode(&d), Err(DecodeError::Type(t)));
        }
    }

    #[test]
    fn abort_reasons_round_trip_and_unknown_codes_read_as_such() {
        for code in 0..=255u8 {
            assert_eq!(AbortReason::from_code(code).code(), code);
        }
        let known = [
            AbortReason::Cancelled,
            AbortReason::FileChanged,
            AbortReason::FileUnreadable,
            AbortReason::ServerShutdown,
            AbortReason::UserLeft,
        ];
        assert_eq!(known.map(AbortReason::code), [1, 2, 3, 4, 5]);
        assert_eq!(AbortReason::from_code(9).to_string(), "aborted (code 9)");
        assert_eq!(AbortReason::Cancelled.to_string(), "cancelled by the receiver");
        // The text is shown escaped.
        let a = Abort { reason: AbortReason::UserLeft, text: "bye\u{1b}[2J".into() };
        assert_eq!(a.to_string(), format!("the user left the room: {}", crate::text::escape("bye\u{1b}[2J")));
        assert!(!a.to_string().contains('\u{1b}'));
    }

    #[test]
    fn abort_texts_are_bounded_utf8() {
        let mut out = Vec::new();
        // Cut at MAX_ABORT_TEXT bytes, on a character boundary (é is 2 bytes).
        let long = format!("x{}", "é".repeat(150));
        Frame::Abort { cookie: 1, reason: AbortReason::Cancelled, text: &long }.encode(&mut out);
        let Ok(Frame::Abort { text, .. }) = Frame::decode(&out) else { panic!("{out:?}") };
        assert_eq!(text.len(), MAX_ABORT_TEXT - 1);
        assert!(long.starts_with(text));
        // Junk with a valid check: a length beyond the bytes, a length over
        // the limit, bytes left over, a text that is not UTF-8, too short.
        let with_check = |mut body: Vec<u8>| {
            let c = check(&body);
            body.extend_from_slice(&c);
            body
        };
        let head = [&[T_ABORT][..], &7u64.to_be_bytes(), &[1]].concat();
        for (what, body) in [
            ("length beyond the bytes", [&head[..], &[5], b"abc"].concat()),
            ("length over the limit", [&head[..], &[201], &[b'a'; 201]].concat()),
            ("bytes left over", [&head[..], &[2], b"abc"].concat()),
            ("not UTF-8", [&head[..], &[2], &[0xff, 0xfe]].concat()),
            ("no length", head.clone()),
            ("no reason", [&[T_ABORT][..], &7u64.to_be_bytes()].concat()),
        ] {
            assert_eq!(Frame::decode(&with_check(body)), Err(DecodeError::Malformed), "{what}");
        }
        let ok = with_check([&head[..], &[3], b"abc"].concat());
        assert_eq!(Frame::decode(&ok), Ok(Frame::Abort { cookie: 7, reason: AbortReason::Cancelled, text: "abc" }));
    }

    #[test]
    fn data_is_appended_in_place_and_a_failed_fill_leaves_nothing() {
        let mut out = b"abc".to_vec();
        append_data_with(&mut out, 5, 1000, 4, |b| {
            b.copy_from_slice(b"wxyz");
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(&out[..3], b"abc");
        assert_eq!(Frame::decode(&out[3..]), Ok(Frame::Data { pn: 5, offset: 1000, payload: b"wxyz" }));
        let before = out.clone();
        assert_eq!(append_data_with(&mut out, 6, 1004, 4, |_| Err(())), Err(()));
        assert_eq!(out, before);
    }

    #[test]
    fn ack_threshold_is_an_eighth_of_the_window_within_bounds() {
        assert_eq!(ack_threshold(10 * 1431, 1431), 2);
        assert_eq!(ack_threshold(160 * 1431, 1431), 20);
        assert_eq!(ack_threshold(u64::MAX, 1431), 64);
        assert_eq!(ack_threshold(1 << 20, 0), 64, "a zero mss counts as 1");
    }

    #[test]
    fn hellos_of_every_format_are_a_classic_window_of_98() {
        let h = encode_hello();
        assert_eq!(h.len(), HELLO_LEN);
        assert_eq!(Format::of_hello(&h), Some(Format::V3));
        assert_eq!(h[HELLO_LEN - 1], 0x0c);
        for f in [Format::V2, Format::V3] {
            let h = f.hello();
            assert_eq!(h.len(), HELLO_LEN);
            assert_eq!(Format::of_hello(&h), Some(f));
            assert!(is_fast_hello(&h));
            assert_eq!(crate::rdt::classic::parse_window(&h), Some(98));
            // What the Python original reads (1024 bytes, then int()) is
            // digits and whitespace; so is the whole hello.
            assert!(h[4..].iter().all(|b| b" \t\n\x0b\x0c\r".contains(b)));
        }
        assert_eq!(Format::of_hello(&Format::V2.hello()).map(Format::hash_algorithm), Some(HashAlgorithm::Blake3));
        assert_eq!(Format::of_hello(&h).map(Format::hash_algorithm), Some(HashAlgorithm::Xxh3_128));
        // Junk: short, classic windows, another whitespace mark, a wrong prefix or padding.
        for junk in [&b""[..], b"98", b"20", b"0098", b"\x0c"] {
            assert_eq!(Format::of_hello(junk), None, "{junk:?}");
        }
        let mut other = h.clone();
        other[HELLO_LEN - 1] = b'\n';
        assert_eq!(Format::of_hello(&other), None);
        let mut other = h.clone();
        other[600] = b'\t';
        assert_eq!(Format::of_hello(&other), None);
        let mut other = h.clone();
        other[..4].copy_from_slice(b"0099");
        assert_eq!(Format::of_hello(&other), None);
        // A format-1 hello (spaces only, BLAKE3 checks) is answered as classic.
        let mut v1 = HELLO_PREFIX.to_vec();
        v1.resize(HELLO_LEN, b' ');
        assert_eq!(Format::of_hello(&v1), None);
        assert!(!is_fast_hello(&v1));
        assert_eq!(crate::rdt::classic::parse_window(&v1), Some(98));
    }

    #[test]
    fn the_check_is_crc32c() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(check(&[0; 32]), 0x8a91_36aa_u32.to_be_bytes());
        let mut out = Vec::new();
        Frame::DoneAck { ok: true }.encode(&mut out);
        assert_eq!(out.len(), 2 + CHECK_LEN);
        assert_eq!(out[2..], crc32c::crc32c(&out[..2]).to_be_bytes());
        // Against an independent implementation at every length up to a
        // jumbo datagram (the folding code has length-dependent paths), and
        // at every alignment of the start.
        let bytes: Vec<u8> = (0..9100u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..bytes.len() - 8 {
            let at = len % 8;
            let b = &bytes[at..at + len];
            assert_eq!(check(b), crc32c::crc32c(b).to_be_bytes(), "length {len} at {at}");
        }
    }
}
