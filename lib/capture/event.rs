//! What the analyser reports: one [`Event`] per chat message, connection
//! change, problem, UDP datagram and finished transfer.

use std::net::SocketAddr;

use crate::rdt::fast::HashAlgorithm;
use crate::wire::Message;

/// Which of the three connections of [protocol](crate::protocol) §1 something travelled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Requests and responses (server port 13337 or `--port`).
    Main,
    /// Unsolicited `3xx` updates (the port announced in `200`).
    Update,
    /// A file download (the port announced in `206`).
    Transfer,
}

impl Channel {
    /// The lowercase name shown in the timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Main => "main",
            Channel::Update => "update",
            Channel::Transfer => "transfer",
        }
    }
}

/// A decoded chat message.
#[derive(Clone, Debug)]
pub struct MessageEvent {
    /// Capture time of the packet that completed the message (ns since the epoch).
    pub ts_ns: i64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Connection it travelled on.
    pub channel: Channel,
    /// Offset of the message in its direction's byte stream.
    pub offset: u64,
    /// The exact bytes sent, without CR/LF around them.
    pub raw: Vec<u8>,
    /// The decoded message.
    pub message: Message,
}

/// A connection opening or closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnChange {
    /// SYN (client → server).
    Open,
    /// FIN from `src` while the other side has not closed: `src` sends no
    /// more, data may still flow to it (an update connection whose client
    /// shuts its sending side at once).
    #[serde(rename = "half_close")]
    HalfClose,
    /// FIN from `src` after the other side's: the connection is closed.
    Close,
    /// RST from `src`.
    Reset,
}

/// A connection event.
#[derive(Clone, Debug)]
pub struct ConnEvent {
    /// Capture time (ns since the epoch).
    pub ts_ns: i64,
    /// The side that sent the SYN, FIN or RST.
    pub src: SocketAddr,
    /// The other side.
    pub dst: SocketAddr,
    /// Which connection.
    pub channel: Channel,
    /// What happened.
    pub change: ConnChange,
}

/// Something that could not be decoded, with where it was.
#[derive(Clone, Debug)]
pub struct ProblemEvent {
    /// Capture time (ns since the epoch).
    pub ts_ns: i64,
    /// The flow, when the problem belongs to one.
    pub flow: Option<(SocketAddr, SocketAddr, Channel)>,
    /// What happened, for a person.
    pub what: String,
}

/// What a UDP datagram of a transfer carried.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DatagramKind {
    /// The receiver's window (classic step 1).
    Window {
        /// The window W (sequence numbers run modulo W+1).
        window: u8,
    },
    /// A classic data datagram.
    Data {
        /// Sequence number (modulo W+1).
        seq: u8,
        /// The flag of the last packet.
        last: bool,
        /// Payload bytes.
        len: usize,
        /// Its sequence number was sent before.
        retransmission: bool,
        /// It arrived ahead of the packet the receiver expected.
        out_of_order: bool,
    },
    /// A classic acknowledgement: the next sequence number expected.
    Ack {
        /// The sequence number expected next.
        next: u8,
    },
    /// A chatctl receiver's hello: window 98 to a classic sender, an offer of
    /// the fast mode to a chatctl one (`lib/rdt/fast`).
    FastHello {
        /// Its length (padded to 1200 bytes).
        len: usize,
    },
    /// Fast mode: the sender's address-validation cookie and the file size.
    Challenge {
        /// The cookie START must echo.
        cookie: u64,
        /// File size in bytes.
        size: u64,
    },
    /// Fast mode: the receiver starts the transfer.
    Start {
        /// The echoed cookie.
        cookie: u64,
        /// The receiver already holds bytes `0..resume`.
        resume: u64,
        /// Flow-control limit: the sender sends no byte at or beyond it.
        max_data: u64,
    },
    /// Fast mode: file bytes.
    FastData {
        /// Packet number (grows with every datagram sent, never reused).
        pn: u64,
        /// File offset of the first byte.
        offset: u64,
        /// Payload bytes.
        len: usize,
        /// Bytes sent before under a lower packet number (a later byte was
        /// already seen when this new packet number came).
        retransmission: bool,
        /// Sent before a packet that arrived earlier (lower packet number
        /// than one already seen).
        out_of_order: bool,
        /// The same packet number seen again (duplicated by the network, or
        /// captured twice).
        duplicate: bool,
    },
    /// Fast mode: a selective acknowledgement.
    FastAck {
        /// Largest packet number received.
        largest_pn: u64,
        /// How long the receiver held the ACK back, µs.
        delay_us: u32,
        /// Flow-control limit.
        max_data: u64,
        /// Byte ranges received, `[start, end)`, lowest first.
        ranges: Vec<[u64; 2]>,
    },
    /// Fast mode: every byte was acknowledged; the file's size and hash.
    Done {
        /// File size in bytes.
        size: u64,
        /// The whole file's hash, hex ([`HashAlgorithm::hex`]).
        hash: String,
        /// Which hash: from the transfer's hello (format 2: BLAKE3, format
        /// 3: XXH3-128).
        hash_algorithm: HashAlgorithm,
    },
    /// Fast mode: the receiver's verdict on the hash.
    DoneAck {
        /// The receiver's file has the announced hash.
        ok: bool,
    },
    /// Fast mode: the sender's own figures (STATS), for the receiver's display.
    Stats {
        /// Congestion window, bytes.
        cwnd: u64,
        /// Smoothed round-trip time, µs.
        srtt_us: u64,
        /// Pacing rate, bytes per second.
        pacing_rate: u64,
        /// Packets the sender declared lost so far.
        packets_lost: u64,
        /// File bytes sent again so far.
        bytes_retransmitted: u64,
        /// Congestion controller (`newreno`, `cubic`, `bbr`...).
        cc: String,
    },
    /// Fast mode: how often the receiver should acknowledge (ACK-FREQUENCY).
    AckFrequency {
        /// Request number; a receiver keeps the newest.
        seq: u64,
        /// Acknowledge at least every `threshold` DATA datagrams...
        threshold: u32,
        /// ...or at most this long (µs) after an unacknowledged DATA.
        max_delay_us: u32,
    },
    /// Fast mode: the transfer ends now (ABORT, either way).
    Abort {
        /// The reason code.
        code: u8,
        /// What the code means.
        reason: String,
        /// The sender's short text (network text: escaped when shown).
        text: String,
    },
    /// Fast mode: a datagram that does not decode (corrupted, or not fast).
    Invalid {
        /// Its length.
        len: usize,
        /// Why it was rejected.
        reason: String,
    },
    /// Anything else.
    Other {
        /// Its length.
        len: usize,
    },
}

/// One UDP datagram of a transfer (shown with `-v`).
#[derive(Clone, Debug)]
pub struct DatagramEvent {
    /// Capture time (ns since the epoch).
    pub ts_ns: i64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The transfer it belongs to ([`TransferSummary::id`]).
    pub transfer: u32,
    /// What it carried.
    pub kind: DatagramKind,
}

/// How a file travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// A TCP transfer connection.
    Tcp,
    /// Classic go-back-N over UDP.
    Classic,
    /// chatctl's fast mode over UDP (`lib/rdt/fast`).
    Fast,
}

impl TransferMode {
    /// The name a person reads, the same in the timeline and the summary.
    pub fn label(self) -> &'static str {
        match self {
            TransferMode::Tcp => "TCP",
            TransferMode::Classic => "UDP go-back-N",
            TransferMode::Fast => "UDP fast",
        }
    }
}

/// The outcome of an extraction.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Extracted {
    /// Where the file was written.
    pub path: std::path::PathBuf,
    /// Its size matches the `206` (and it has no holes), and in fast mode its
    /// hash matches the one the sender announced in DONE. Only a fast
    /// transfer carries a hash: elsewhere this is "the size matches"
    /// ([`hash_verified`](Self::hash_verified) is None).
    pub verified: bool,
    /// Fast mode: whether the rebuilt file's hash matches DONE's (None when
    /// there was no hash to check, or the size was already wrong).
    pub hash_verified: Option<bool>,
}

/// Everything known about one download, reported at the end.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TransferSummary {
    /// Number of the transfer in the capture, from 1.
    pub id: u32,
    /// How the file travelled.
    pub mode: TransferMode,
    /// The file requested in the `106` (None if the capture missed it).
    pub file: Option<String>,
    /// The client (receiver).
    pub client: SocketAddr,
    /// The server's transfer port.
    pub server: SocketAddr,
    /// The size announced in the `206` (fast mode: else the one in CHALLENGE or DONE).
    pub announced_size: Option<u64>,
    /// File bytes received in order (fast mode: distinct file bytes seen).
    pub bytes: u64,
    /// Data packets (TCP segments with payload, or data datagrams).
    pub packets: u64,
    /// Packets seen again (TCP: segments with nothing new).
    pub retransmissions: u64,
    /// Packets that arrived ahead of a missing one (fast mode: after a packet
    /// sent later).
    pub out_of_order: u64,
    /// Fast mode: datagrams whose packet number was already seen.
    pub duplicates: u64,
    /// Fast mode: datagrams that failed their checksum or did not parse.
    pub invalid: u64,
    /// Bytes the capture missed (holes); the file cannot be complete.
    pub missing_bytes: u64,
    /// The classic receiver window, if seen.
    pub window: Option<u8>,
    /// Fast mode: the receiver already held bytes `0..resume` (START).
    pub resume: Option<u64>,
    /// Fast mode: the file's hash (hex) as the sender announced it in DONE.
    pub hash: Option<String>,
    /// Fast mode: the algorithm of [`hash`](Self::hash), from the
    /// transfer's format (`BLAKE3` for format 2, `XXH3-128` for format 3).
    pub hash_algorithm: Option<HashAlgorithm>,
    /// Fast mode: the receiver's verdict in DONE-ACK (true: hash verified).
    pub receiver_verified: Option<bool>,
    /// The transfer reached its end (last packet, or FIN).
    pub complete: bool,
    /// First packet of the transfer's connection or flow (ns since the epoch).
    pub first_ns: i64,
    /// Last packet of the transfer's connection or flow.
    pub last_ns: i64,
    /// First packet carrying file bytes (None: no data seen).
    pub data_first_ns: Option<i64>,
    /// Last packet carrying file bytes.
    pub data_last_ns: Option<i64>,
    /// When the transfer was reported: its end (the connection's close, the
    /// fast DONE-ACK, the classic last packet), after [`UDP_IDLE_NS`] without
    /// a datagram, or the end of the capture. Its place in the timeline.
    ///
    /// [`UDP_IDLE_NS`]: super::analyzer::UDP_IDLE_NS
    pub reported_ns: i64,
    /// Where the file was rebuilt (`--extract`).
    pub extracted: Option<Extracted>,
}

impl TransferSummary {
    /// Seconds the file's bytes took: from the first to the last packet
    /// carrying file bytes (not the connection's life: set-up, the wait for
    /// the last ACK or FIN, and a capture that runs on do not count).
    pub fn duration_s(&self) -> f64 {
        match (self.data_first_ns, self.data_last_ns) {
            (Some(a), Some(b)) => (b - a).max(0) as f64 / 1e9,
            _ => 0.0,
        }
    }

    /// File bytes per second over [`duration_s`](Self::duration_s) (None
    /// for an instant transfer).
    pub fn goodput_bps(&self) -> Option<f64> {
        let d = self.duration_s();
        (d > 0.0).then(|| self.bytes as f64 / d)
    }
}

/// Everything the analyser reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A chat message.
    Message(MessageEvent),
    /// A chat connection opened or closed.
    Connection(ConnEvent),
    /// Something that could not be decoded.
    Problem(ProblemEvent),
    /// A UDP datagram of a transfer (with `-v`).
    Datagram(DatagramEvent),
    /// A download, when it ends (or at the end of the capture).
    Transfer(Box<TransferSummary>),
}

impl Event {
    /// Capture time of the event.
    pub fn ts_ns(&self) -> i64 {
        match self {
            Event::Message(e) => e.ts_ns,
            Event::Connection(e) => e.ts_ns,
            Event::Problem(e) => e.ts_ns,
            Event::Datagram(e) => e.ts_ns,
            Event::Transfer(t) => t.reported_ns,
        }
    }
}

/// A chat message as the analyser hands it out on the zero-allocation path
/// ([`Analyzer::packet_ref`](super::Analyzer::packet_ref)): the raw bytes are
/// borrowed from the packet (or the reassembly buffer) and the message is
/// decoded only when asked for, with [`message`](Self::message).
///
/// Counting, filtering by code or endpoint, or copying `raw` out costs no
/// allocation; that is what makes `--summary` and the library fast on
/// captures of small chat packets.
#[derive(Clone, Copy, Debug)]
pub struct MessageRef<'a> {
    /// Capture time of the packet that completed the message (ns since the epoch).
    pub ts_ns: i64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Connection it travelled on.
    pub channel: Channel,
    /// Offset of the message in its direction's byte stream.
    pub offset: u64,
    /// The message code, as [`Message::code`].
    pub code: u16,
    /// The exact bytes sent, without CR/LF around them.
    pub raw: &'a [u8],
}

impl MessageRef<'_> {
    /// Decodes the message (allocates its fields). The analyser validated
    /// `raw` already, so this fails only if that validation and the wire
    /// decoder ever disagreed; the error then says where.
    pub fn message(&self) -> Result<Message, crate::wire::DecodeError> {
        let mut d = crate::wire::Decoder::new(crate::wire::Direction::Any);
        d.feed(self.raw);
        match d.next_message()? {
            Some(m) => Ok(m),
            None => Err(d.finish().err().unwrap_or(crate::wire::DecodeError {
                offset: 0,
                kind: crate::wire::DecodeErrorKind::Truncated { buffered: self.raw.len() },
            })),
        }
    }

    /// The owned [`Event`] (a [`Event::Problem`] in the impossible case that
    /// `raw` does not decode, see [`message`](Self::message)).
    pub(crate) fn to_event(self) -> Event {
        match self.message() {
            Ok(message) => Event::Message(MessageEvent {
                ts_ns: self.ts_ns,
                src: self.src,
                dst: self.dst,
                channel: self.channel,
                offset: self.offset,
                raw: self.raw.to_vec(),
                message,
            }),
            Err(e) => Event::Problem(ProblemEvent {
                ts_ns: self.ts_ns,
                flow: Some((self.src, self.dst, self.channel)),
                what: format!("internal: a validated message did not decode: {e}"),
            }),
        }
    }
}

/// What [`Analyzer::packet_ref`](super::Analyzer::packet_ref) reports: chat
/// messages borrowed (the per-packet hot path), everything else owned (rare:
/// connections, problems, transfers, and datagrams with `-v`).
#[derive(Debug)]
pub enum EventRef<'a> {
    /// A chat message.
    Message(MessageRef<'a>),
    /// Any other event (never [`Event::Message`]).
    Other(Event),
}

impl EventRef<'_> {
    /// Capture time of the event.
    pub fn ts_ns(&self) -> i64 {
        match self {
            EventRef::Message(m) => m.ts_ns,
            EventRef::Other(e) => e.ts_ns(),
        }
    }

    /// The owned [`Event`] (decodes a message, see [`MessageRef::to_event`]).
    pub(crate) fn into_event(self) -> Event {
        match self {
            EventRef::Message(m) => m.to_event(),
            EventRef::Other(e) => e,
        }
    }
}
