//! The analyser: packets in, [`Event`]s out. It strips the layers, reassembles
//! IP fragments and TCP streams, finds the chat's connections, decodes their
//! messages and follows the downloads.
//!
//! Finding the chat: a TCP connection to a server port (13337 and `--port`) is
//! a main connection; the ports announced in `200` and `206` (keyed by the
//! announcing server's address) mark the update and transfer connections and
//! UDP transfers that follow. A connection on no known port is decided by
//! content: if its first bytes decode as a chat message it is taken as a main
//! (or, for `3xx`, update) connection; a UDP flow that opens with a classic
//! window datagram is taken as an unannounced classic transfer.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use foldhash::{HashMap, HashSet};

use super::chat::{ChatDir, Side};
use super::config::Config;
use super::event::{Channel, ConnChange, DatagramEvent, Event, EventRef, TransferMode, TransferSummary};
use super::extract::{ExtractError, Extraction, Extractor};
use super::frag::Defragmenter;
use super::net::{self, flags};
use super::reader::Packet;
use super::stats::Stats;
use super::tcp::Stream;
use super::transfer::{PlotPoint, PointKind, Transfer, super_packet_segment};
use crate::rdt::classic;
use crate::rdt::fast::{self, Frame};
use crate::wire::Transport;

mod conn;

/// A TCP connection idle this long (capture time) is closed and forgotten,
/// so that memory stays bounded on long captures.
pub const IDLE_NS: i64 = 600_000_000_000;
/// A UDP transfer silent this long (capture time) that has not ended is
/// reported then, so that its line takes its place in the timeline.
pub const UDP_IDLE_NS: i64 = 30_000_000_000;
/// Most UDP flows remembered as not being transfers (then forgotten at once).
pub(super) const MAX_NOT_TRANSFERS: usize = 65_536;
/// Most TCP connections followed at once; the longest idle go first.
pub(super) const MAX_CONNS: usize = 100_000;

#[derive(Clone, Debug)]
enum Announce {
    Update,
    Transfer { file: Option<String>, transport: Option<Transport>, size: u64 },
}

/// Where a chat direction's finds belong: the packet's time, the direction's
/// ends and the channel.
struct Cx {
    ts: i64,
    src: SocketAddr,
    dst: SocketAddr,
    channel: Channel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Undecided,
    Ignored,
    Chat(Channel),
    Transfer(usize),
}

struct ConnState {
    client: SocketAddr,
    server: SocketAddr,
    kind: Kind,
    /// Chat decoding, client to server first.
    dirs: [ChatDir; 2],
    downloads: VecDeque<(String, Transport)>,
    fin: [bool; 2],
}

struct Conn {
    streams: [Stream; 2],
    state: ConnState,
    last_ts: i64,
}

/// Everything but the connection table, so a connection and this can be borrowed at once.
struct Shared {
    cfg: Config,
    announced: HashMap<SocketAddr, Announce>,
    transfers: Vec<Transfer>,
    extraction: Extraction,
    stats: Stats,
    /// The names in `stats.users`, hashed: most messages name a user already
    /// seen, and a hash lookup is cheaper than the ordered set's.
    users_seen: HashSet<Box<[u8]>>,
    /// The last name looked up in `users_seen` (see [`Shared::remember`]).
    last_user: Vec<u8>,

    /// Time of the latest packet (end-of-capture events carry it).
    last_ts: i64,
}

/// A flow's two endpoints in a canonical order, as integers (IPv4 as
/// IPv4-mapped IPv6): cheaper to order, hash and compare than socket
/// addresses, on every packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key(u128, u16, u128, u16);

fn endpoint(a: SocketAddr) -> (u128, u16) {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits(),
    };
    (ip, a.port())
}

fn key(a: SocketAddr, b: SocketAddr) -> Key {
    let (x, y) = (endpoint(a), endpoint(b));
    if x <= y { Key(x.0, x.1, y.0, y.1) } else { Key(y.0, y.1, x.0, x.1) }
}

/// The analyser. Feed packets in capture order with [`packet`](Self::packet),
/// then call [`finish`](Self::finish) once.
pub struct Analyzer {
    shared: Shared,
    conns: HashMap<Key, Conn>,
    udp: HashMap<Key, usize>,
    /// UDP flows whose first datagram seen was no transfer's.
    not_transfers: HashSet<Key>,
    /// Capture time at which idle UDP transfers are looked for next.
    next_udp_check: i64,
    defrag: Defragmenter,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("conns", &self.conns.len()).field("stats", &self.shared.stats).finish()
    }
}

impl Analyzer {
    /// An analyser; with an [`Extractor`], downloaded files are rebuilt.
    pub fn new(cfg: Config, extractor: Option<Extractor>) -> Self {
        Analyzer {
            shared: Shared {
                cfg,
                announced: HashMap::default(),
                transfers: Vec::new(),
                extraction: Extraction::new(extractor),
                stats: Stats::default(),
                users_seen: HashSet::default(),
                last_user: Vec::new(),
                last_ts: i64::MIN,
            },
            conns: HashMap::default(),
            udp: HashMap::default(),
            not_transfers: HashSet::default(),
            next_udp_check: i64::MIN,
            defrag: Defragmenter::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The transfers seen so far, in order.
    pub fn transfers(&self) -> impl Iterator<Item = (&TransferSummary, &[PlotPoint])> {
        self.shared.transfers.iter().filter(|t| !t.discarded).map(|t| (&t.summary, t.plot.as_slice()))
    }

    /// The first error writing an extracted file, if any (extraction stops for
    /// that file; decoding goes on).
    pub fn take_extract_error(&mut self) -> Option<ExtractError> {
        self.shared.extraction.take_error()
    }

    /// Analyses one captured frame; owned events (each chat message decoded
    /// into a [`Message`](crate::wire::Message) with its own allocations). See
    /// [`packet_ref`](Self::packet_ref) for the zero-allocation form.
    pub fn packet(&mut self, p: &Packet<'_>, out: &mut impl FnMut(Event)) {
        self.packet_ref(p, &mut |e| out(e.into_event()));
    }

    /// Analyses one captured frame; chat messages are handed out borrowed
    /// ([`MessageRef`](super::event::MessageRef)), decoded only if the caller asks. The fast path.
    ///
    /// Events are timed by one clock that never goes back: a packet stamped
    /// earlier than the one before it (tcpdump on `any` or on several CPUs
    /// stamps packets a fraction of a microsecond out of order) is timed as
    /// that one, so the timeline and `--json` are in time order.
    pub fn packet_ref(&mut self, p: &Packet<'_>, out: &mut impl FnMut(EventRef<'_>)) {
        self.shared.last_ts = self.shared.last_ts.max(p.ts_ns);
        let p = &Packet { ts_ns: self.shared.last_ts, ..*p };
        let st = &mut self.shared.stats;
        st.packets += 1;
        st.bytes += p.data.len() as u64;
        let n = st.packets;
        if n.is_multiple_of(4096) {
            self.defrag.expire(p.ts_ns);
        }
        if p.ts_ns >= self.next_udp_check {
            // Once a second of capture time: cheap, and timely on a quiet capture.
            self.next_udp_check = p.ts_ns.saturating_add(1_000_000_000);
            self.expire_udp(p.ts_ns, out);
        }
        if n.is_multiple_of(65_536) || self.conns.len() > MAX_CONNS {
            self.sweep(p.ts_ns, out);
        }
        let st = &mut self.shared.stats;
        let ip = match net::link_payload(p.linktype, p.data).and_then(net::ip) {
            Ok(ip) => ip,
            Err(net::Skip::Malformed(_)) => {
                st.malformed += 1;
                return;
            }
            Err(_) => {
                st.skipped += 1;
                return;
            }
        };
        if let Some(f) = ip.fragment {
            if let Some(whole) = self.defrag.push(p.ts_ns, ip.src, ip.dst, ip.proto, f, ip.payload) {
                self.transport(p.ts_ns, ip.src, ip.dst, ip.proto, &whole, out);
            }
            return;
        }
        self.transport(p.ts_ns, ip.src, ip.dst, ip.proto, ip.payload, out);
    }

    fn transport(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        payload: &[u8],
        out: &mut impl FnMut(EventRef<'_>),
    ) {
        match proto {
            6 => match net::tcp(payload) {
                Ok(seg) => self.tcp(ts, src, dst, &seg, out),
                Err(_) => self.shared.stats.malformed += 1,
            },
            17 => match net::udp(payload) {
                Ok(d) => {
                    self.udp(ts, SocketAddr::new(src, d.src_port), SocketAddr::new(dst, d.dst_port), d.payload, out)
                }
                Err(_) => self.shared.stats.malformed += 1,
            },
            _ => self.shared.stats.skipped += 1,
        }
    }

    fn tcp(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        seg: &net::TcpSegment<'_>,
        out: &mut impl FnMut(EventRef<'_>),
    ) {
        // A pure ACK carries nothing to decode or report: skip the lookup
        // (about half the packets of a download). Idle time counts from data.
        // (With --plot, a TCP transfer's acknowledgements are plotted.)
        if seg.payload.is_empty() && seg.flags & (flags::SYN | flags::FIN | flags::RST) == 0 && !self.shared.cfg.plot {
            return;
        }
        let a = SocketAddr::new(src, seg.src_port);
        let b = SocketAddr::new(dst, seg.dst_port);
        let k = key(a, b);
        let syn = seg.flags & flags::SYN != 0;
        let ack = seg.flags & flags::ACK != 0;
        let Some(conn) = track(&mut self.conns, &mut self.shared, ts, k, (a, b), seg, out) else { return };
        conn.last_ts = ts;
        let shared = &mut self.shared;
        let side = Side::from_client(a == conn.state.client);
        let d = side.idx();
        if conn.state.kind == Kind::Ignored {
            if seg.flags & flags::FIN != 0 {
                conn.state.fin[d] = true;
            }
            if seg.flags & flags::RST != 0 || conn.state.fin.iter().all(|f| *f) {
                self.conns.remove(&k);
            }
            return;
        }
        if syn && !ack && side == Side::Client && conn.streams[0].delivered() == 0 && !conn.streams[0].saw_syn {
            shared.conn_event(ts, &conn.state, a, b, ConnChange::Open, out);
        }
        if let Kind::Transfer(i) = conn.state.kind
            && side == Side::Server
            && !seg.payload.is_empty()
            && let Some(t) = shared.transfers.get_mut(i)
        {
            // Timed here, as captured: out-of-order bytes are handed on later.
            t.data_seen(ts);
        }
        let delivered = conn.streams[d].delivered();
        let state = &mut conn.state;
        conn.streams[d].segment(seg.seq, syn, seg.flags & flags::FIN != 0, seg.payload, &mut |c| {
            shared.chunk(ts, state, side, c, out);
        });
        if shared.cfg.plot {
            shared.plot_tcp(ts, conn, side, seg, delivered);
        }
        match shared.tcp_end(ts, conn, side, seg.flags, (a, b), out) {
            Some(Ending::Forget) => {
                self.conns.remove(&k);
            }
            Some(Ending::Close) => self.close(k, ts, out),
            None => {}
        }
    }

    /// Forgets connections idle for [`IDLE_NS`], and the longest idle beyond [`MAX_CONNS`].
    fn sweep(&mut self, now: i64, out: &mut impl FnMut(EventRef<'_>)) {
        let mut idle: Vec<(i64, Key)> = self.conns.iter().map(|(k, c)| (c.last_ts, *k)).collect();
        idle.sort_unstable();
        let over = self.conns.len().saturating_sub(MAX_CONNS * 9 / 10);
        for (i, (last, k)) in idle.into_iter().enumerate() {
            if i >= over && now.saturating_sub(last) < IDLE_NS {
                break;
            }
            self.close(k, now, out);
        }
    }

    /// Ends a connection: hands out what is held, reports what is missing.
    fn close(&mut self, k: Key, ts: i64, out: &mut impl FnMut(EventRef<'_>)) {
        let Some(mut conn) = self.conns.remove(&k) else { return };
        self.shared.end_conn(ts, &mut conn, out);
    }

    fn udp(&mut self, ts: i64, a: SocketAddr, b: SocketAddr, payload: &[u8], out: &mut impl FnMut(EventRef<'_>)) {
        let k = key(a, b);
        let sh = &mut self.shared;
        let idx = match self.udp.get(&k) {
            Some(&i) => i,
            None => {
                let announced = |x: &SocketAddr| {
                    matches!(sh.announced.get(x), Some(Announce::Transfer { transport, .. })
                        if transport.as_ref().is_none_or(|t| *t == Transport::Udp))
                };
                // The server's transfer port is the announced one; the capture
                // may have missed the client's hello and start with data.
                let (client, server) = if announced(&b) {
                    (a, b)
                } else if announced(&a) {
                    (b, a)
                } else if self.not_transfers.contains(&k) {
                    return;
                } else if let Some(ends) = by_content(a, b, payload) {
                    // Failing that, by content: a classic window, or a fast datagram.
                    ends
                } else {
                    // Remembered (boundedly) so that a busy non-chat flow,
                    // QUIC say, is not checked again datagram after datagram.
                    if self.not_transfers.len() >= MAX_NOT_TRANSFERS {
                        self.not_transfers.clear();
                    }
                    self.not_transfers.insert(k);
                    return;
                };
                let (file, size) = match sh.announced.remove(&server) {
                    Some(Announce::Transfer { file, size, .. }) => (file, Some(size)),
                    _ => (None, None),
                };
                let id = sh.transfers.len() as u32 + 1;
                let mut t = Transfer::new(id, TransferMode::Classic, file, size, client, server, ts);
                t.record_plot = sh.cfg.plot;
                sh.transfers.push(t);
                self.udp.insert(k, sh.transfers.len() - 1);
                sh.transfers.len() - 1
            }
        };
        let Some(t) = sh.transfers.get_mut(idx) else { return };
        let id = t.summary.id;
        // One captured payload may hold several datagrams (GSO/GRO).
        let from_client = a == t.summary.client;
        let size = if from_client { payload.len() } else { t.segment_size(payload) };
        let mut rest = payload;
        loop {
            // (An empty payload is one empty datagram.)
            let (datagram, tail) = rest.split_at(size.max(1).min(rest.len()));
            rest = tail;
            let (kind, step) = t.datagram(ts, from_client, datagram);
            sh.extraction.step(t, datagram, step);
            if sh.cfg.datagrams {
                out(EventRef::Other(Event::Datagram(DatagramEvent { ts_ns: ts, src: a, dst: b, transfer: id, kind })));
            }
            if rest.is_empty() {
                break;
            }
        }
        if t.ended() {
            sh.report_transfer(idx, ts, out);
        }
    }

    /// Reports the UDP transfers that have been silent for [`UDP_IDLE_NS`].
    fn expire_udp(&mut self, now: i64, out: &mut impl FnMut(EventRef<'_>)) {
        let sh = &mut self.shared;
        let mut idle: Vec<usize> = self
            .udp
            .values()
            .copied()
            .filter(|&i| sh.transfers.get(i).is_some_and(|t| !t.reported && now - t.summary.last_ns > UDP_IDLE_NS))
            .collect();
        idle.sort_unstable();
        for i in idle {
            sh.report_transfer(i, now, out);
        }
    }

    /// End of the capture: flushes every connection and reports every
    /// transfer (owned events; see [`finish_ref`](Self::finish_ref)).
    pub fn finish(&mut self, out: &mut impl FnMut(Event)) {
        self.finish_ref(&mut |e| out(e.into_event()));
    }

    /// End of the capture, with events as [`packet_ref`](Self::packet_ref) gives them.
    pub fn finish_ref(&mut self, out: &mut impl FnMut(EventRef<'_>)) {
        let mut keys: Vec<Key> = self.conns.keys().copied().collect();
        keys.sort();
        let ts = self.shared.last_ts;
        for k in keys {
            if let Some(mut conn) = self.conns.remove(&k) {
                self.shared.end_conn(ts, &mut conn, out);
            }
        }
        for i in 0..self.shared.transfers.len() {
            self.shared.report_transfer(i, ts, out);
        }
    }
}
/// What a segment's flags do to its connection ([`Shared::tcp_end`]).
enum Ending {
    /// Forgotten without a report (a transfer connection refused before data).
    Forget,
    /// Ended: what is held is handed out, what is missing reported.
    Close,
}

/// The connection `k` a segment from `ends.0` to `ends.1` belongs to, from
/// `conns` (a new SYN on a tuple still tracked ends the old connection
/// first), or a new one; `None` when the segment starts nothing worth
/// tracking (a stray ACK or FIN).
fn track<'c>(
    conns: &'c mut HashMap<Key, Conn>,
    shared: &mut Shared,
    ts: i64,
    k: Key,
    (a, b): (SocketAddr, SocketAddr),
    seg: &net::TcpSegment<'_>,
    out: &mut impl FnMut(EventRef<'_>),
) -> Option<&'c mut Conn> {
    let syn = seg.flags & flags::SYN != 0;
    // A new SYN on a tuple still tracked (its end was not captured): the
    // port was reused; end the old connection first.
    if syn
        && seg.flags & flags::ACK == 0
        && let Some(old) = conns.get(&k)
        && old.streams[Side::from_client(a == old.state.client).idx()].is_new_syn(seg.seq)
        && let Some(mut old) = conns.remove(&k)
    {
        shared.end_conn(ts, &mut old, out);
    }
    match conns.entry(k) {
        std::collections::hash_map::Entry::Occupied(o) => Some(o.into_mut()),
        // Only a SYN or data starts tracking (a stray ACK or FIN does not).
        std::collections::hash_map::Entry::Vacant(_) if !syn && seg.payload.is_empty() => None,
        std::collections::hash_map::Entry::Vacant(v) => Some(v.insert(shared.new_conn(ts, a, b, seg.flags))),
    }
}

impl Shared {
    /// The time-sequence graph of a TCP transfer: the server's segments by
    /// stream offset (`delivered` before this one), the client's
    /// acknowledgements of them.
    fn plot_tcp(&mut self, ts: i64, conn: &Conn, side: Side, seg: &net::TcpSegment<'_>, delivered: u64) {
        let Kind::Transfer(i) = conn.state.kind else { return };
        let Some(t) = self.transfers.get_mut(i) else { return };
        let server = &conn.streams[Side::Server.idx()];
        if side == Side::Server && !seg.payload.is_empty() {
            let syn = seg.flags & flags::SYN != 0;
            if let Some(at) = server.offset_of(seg.seq.wrapping_add(u32::from(syn))) {
                let again = at + seg.payload.len() as u64 <= delivered;
                t.point(ts, at, if again { PointKind::Retransmission } else { PointKind::Data });
            }
        } else if side == Side::Client
            && seg.flags & flags::ACK != 0
            && let Some(at) = server.offset_of(seg.ack)
        {
            t.point(ts, at.min(server.delivered()), PointKind::Ack);
        }
    }

    /// A reset or FIN from `side`: reported, and whether the connection ends.
    fn tcp_end(
        &mut self,
        ts: i64,
        conn: &mut Conn,
        side: Side,
        fl: u8,
        (a, b): (SocketAddr, SocketAddr),
        out: &mut impl FnMut(EventRef<'_>),
    ) -> Option<Ending> {
        let d = side.idx();
        if fl & flags::RST != 0 {
            if let Kind::Transfer(i) = conn.state.kind
                && conn.streams.iter().all(|s| s.delivered() == 0 && s.buffered() == 0)
            {
                // Refused before any data: the reference announces a port
                // before it listens, and the client retries. Keep the
                // announcement for the retry.
                self.unannounce_transfer(i);
                return Some(Ending::Forget);
            }
            self.conn_event(ts, &conn.state, a, b, ConnChange::Reset, out);
            return Some(Ending::Close);
        }
        if fl & flags::FIN != 0 && !conn.state.fin[d] {
            conn.state.fin[d] = true;
            let both = conn.state.fin[side.other().idx()];
            let change = if both { ConnChange::Close } else { ConnChange::HalfClose };
            self.conn_event(ts, &conn.state, a, b, change, out);
            if both && conn.streams.iter().all(|s| s.finished()) {
                return Some(Ending::Close);
            }
        }
        None
    }
}

/// The (client, server) of an unannounced UDP flow whose datagram from `a`
/// to `b` opens or continues a transfer, judged by content: a receiver's
/// classic window or fast hello, a fast START, ACK or DONE-ACK (from the
/// client), or a fast CHALLENGE, DATA or DONE (from the server), with a valid
/// checksum. The server's transfer port is never a well-known one (< 1024),
/// which is checked before the checksum is computed.
fn by_content(a: SocketAddr, b: SocketAddr, payload: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let (client, server) = match *payload.first()? {
        fast::T_CHALLENGE | fast::T_DATA | fast::T_DONE | fast::T_STATS | fast::T_ACK_FREQUENCY => (b, a),
        fast::T_START | fast::T_ACK | fast::T_DONE_ACK => (a, b),
        _ => return classic::parse_window(payload).and((b.port() >= 1024).then_some((a, b))),
    };
    if server.port() < 1024 {
        return None;
    }
    // A GSO super-packet of DATA: its first datagram must be valid.
    let first = &payload[..super_packet_segment(payload, 0)];
    Frame::decode(first).is_ok().then_some((client, server))
}
