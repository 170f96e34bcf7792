//! The chat inside a followed connection: what a new connection is (by
//! port, announcement or content), its messages decoded in each direction,
//! the announcements and downloads they carry, and the transfers reported
//! when they end.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::{Announce, Conn, ConnState, Cx, Kind, Shared};
use crate::capture::chat::{ChatDir, Found, Msg, Probe, Side};
use crate::capture::event::{Channel, ConnChange, ConnEvent, Event, EventRef, MessageRef, ProblemEvent, TransferMode};
use crate::capture::net::flags;
use crate::capture::scan;
use crate::capture::tcp::{Chunk, Stream};
use crate::capture::transfer::Transfer;
use crate::wire::Transport;

impl Shared {
    fn server_port(&self, a: SocketAddr) -> bool {
        self.cfg.server_ports.contains(&a.port())
    }

    fn known(&self, a: SocketAddr) -> bool {
        self.server_port(a) || self.announced.contains_key(&a)
    }

    pub(super) fn new_conn(&mut self, ts: i64, a: SocketAddr, b: SocketAddr, fl: u8) -> Conn {
        let syn = fl & flags::SYN != 0;
        let ack = fl & flags::ACK != 0;
        let (client, server) = if syn && !ack {
            (a, b)
        } else if syn && ack {
            (b, a)
        } else if self.known(b) {
            (a, b)
        } else if self.known(a) {
            (b, a)
        } else {
            (a, b)
        };
        self.stats.tcp_connections += 1;
        let mut state = ConnState {
            client,
            server,
            kind: Kind::Undecided,
            dirs: [ChatDir::new(0), ChatDir::new(0)],
            downloads: VecDeque::new(),
            fin: [false; 2],
        };
        self.decide_by_port(ts, &mut state);
        Conn { streams: [Stream::new(self.cfg.tcp_cap), Stream::new(self.cfg.tcp_cap)], state, last_ts: ts }
    }

    /// Undoes a transfer that never carried data: its port is announced again.
    pub(super) fn unannounce_transfer(&mut self, i: usize) {
        let Some(t) = self.transfers.get(i) else { return };
        let s = &t.summary;
        let again = Announce::Transfer { file: s.file.clone(), transport: None, size: s.announced_size.unwrap_or(0) };
        self.announced.insert(s.server, again);
        if i + 1 == self.transfers.len() {
            self.transfers.pop();
        } else if let Some(t) = self.transfers.get_mut(i) {
            t.discarded = true;
            t.reported = true;
        }
    }

    fn decide_by_port(&mut self, ts: i64, st: &mut ConnState) {
        if self.server_port(st.server) {
            st.kind = Kind::Chat(Channel::Main);
            return;
        }
        match self.announced.remove(&st.server) {
            Some(Announce::Update) => st.kind = Kind::Chat(Channel::Update),
            Some(Announce::Transfer { file, size, .. }) => {
                let id = self.transfers.len() as u32 + 1;
                let mut t = Transfer::new(id, TransferMode::Tcp, file, Some(size), st.client, st.server, ts);
                t.record_plot = self.cfg.plot;
                self.transfers.push(t);
                st.kind = Kind::Transfer(self.transfers.len() - 1);
            }
            None => {}
        }
    }

    fn channel(st: &ConnState) -> Option<Channel> {
        match st.kind {
            Kind::Chat(c) => Some(c),
            Kind::Transfer(_) => Some(Channel::Transfer),
            _ => None,
        }
    }

    pub(super) fn conn_event(
        &mut self,
        ts: i64,
        st: &ConnState,
        src: SocketAddr,
        dst: SocketAddr,
        change: ConnChange,
        out: &mut impl FnMut(EventRef<'_>),
    ) {
        if let Some(channel) = Self::channel(st) {
            out(EventRef::Other(Event::Connection(ConnEvent { ts_ns: ts, src, dst, channel, change })));
        }
    }

    /// Sender and receiver of direction `side`.
    fn flow(st: &ConnState, side: Side) -> (SocketAddr, SocketAddr) {
        match side {
            Side::Client => (st.client, st.server),
            Side::Server => (st.server, st.client),
        }
    }

    /// In-order bytes (or a hole) of direction `side`.
    pub(super) fn chunk(
        &mut self,
        ts: i64,
        st: &mut ConnState,
        side: Side,
        c: Chunk<'_>,
        out: &mut impl FnMut(EventRef<'_>),
    ) {
        if st.kind == Kind::Undecided {
            self.decide_by_port(ts, st);
        }
        let (src, dst) = Self::flow(st, side);
        let dir = &mut st.dirs[side.idx()];
        match (st.kind, c) {
            (Kind::Ignored, _) => {}
            (Kind::Undecided, Chunk::Gap { .. }) => st.kind = Kind::Ignored,
            (Kind::Undecided, Chunk::Data { offset, data }) => {
                // By content: do the first bytes decode as a chat message?
                let downloads = &mut st.downloads;
                let on = &mut |channel, f: Found<'_>| self.found(&Cx { ts, src, dst, channel }, downloads, f, out);
                match dir.probe(offset, data, on) {
                    Probe::Chat(channel) => st.kind = Kind::Chat(channel),
                    Probe::Wait => {}
                    Probe::NotChat => st.kind = Kind::Ignored,
                }
            }
            (Kind::Chat(channel), Chunk::Data { data, .. }) => {
                let cx = Cx { ts, src, dst, channel };
                dir.feed(data, &mut |f| self.found(&cx, &mut st.downloads, f, out));
            }
            (Kind::Chat(channel), Chunk::Gap { offset, len }) => {
                self.stats.gaps += 1;
                let cut = if dir.has_partial() { " (a message was cut)" } else { "" };
                let what =
                    format!("{len} bytes missing from the capture at stream offset {offset}{cut}; resynchronised");
                out(EventRef::Other(Event::Problem(ProblemEvent { ts_ns: ts, flow: Some((src, dst, channel)), what })));
                *dir = ChatDir::new(offset + len);
            }
            (Kind::Transfer(i), c) if side == Side::Server => {
                let Some(t) = self.transfers.get_mut(i) else { return };
                t.summary.last_ns = ts;
                if let Chunk::Gap { .. } = c {
                    self.stats.gaps += 1;
                }
                match c {
                    Chunk::Data { offset, data } => {
                        t.summary.bytes += data.len() as u64;
                        self.extraction.write(&t.summary, offset, data);
                    }
                    Chunk::Gap { len, .. } => {
                        t.summary.missing_bytes += len;
                        self.extraction.hole(&t.summary);
                    }
                }
            }
            (Kind::Transfer(_), _) => {}
        }
    }

    /// Something a chat direction's decoding found.
    fn found(
        &mut self,
        cx: &Cx,
        downloads: &mut VecDeque<(String, Transport)>,
        f: Found<'_>,
        out: &mut impl FnMut(EventRef<'_>),
    ) {
        match f {
            Found::Message(m) => self.message(cx, downloads, m, out),
            Found::Undecodable { at, error, skipped } => {
                self.stats.decode_errors += 1;
                let what = format!("undecodable input at stream offset {at}: {}; skipped {skipped} bytes", error.kind);
                let flow = Some((cx.src, cx.dst, cx.channel));
                out(EventRef::Other(Event::Problem(ProblemEvent { ts_ns: cx.ts, flow, what })));
            }
        }
    }

    /// Counts a message, learns what it announces, and reports it.
    fn message(
        &mut self,
        cx: &Cx,
        downloads: &mut VecDeque<(String, Transport)>,
        m: Msg<'_>,
        out: &mut impl FnMut(EventRef<'_>),
    ) {
        self.stats.messages += 1;
        self.stats.by_code.add(m.code);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match m.fields {
            scan::Fields::Other => {}
            scan::Fields::Names(names) => names.for_each(|n| self.remember(n)),
            scan::Fields::Download { transport, file } => {
                downloads.push_back((text(file), Transport::from_wire(text(transport))));
            }
            scan::Fields::Joined { name, port } => {
                self.remember(name);
                self.announced.insert(SocketAddr::new(cx.src.ip(), port), Announce::Update);
            }
            scan::Fields::DownloadReady { size, port } => {
                let (file, transport) = downloads.pop_front().map_or((None, None), |(f, t)| (Some(f), Some(t)));
                self.announced.insert(SocketAddr::new(cx.src.ip(), port), Announce::Transfer { file, transport, size });
            }
            scan::Fields::Error { ty } => {
                if ty == 6 {
                    downloads.pop_front();
                }
            }
        }
        let (ts_ns, src, dst, channel) = (cx.ts, cx.src, cx.dst, cx.channel);
        out(EventRef::Message(MessageRef { ts_ns, src, dst, channel, offset: m.offset, code: m.code, raw: m.raw }));
    }

    /// Adds a user name to the set, allocating only for a new one; the last
    /// name seen is checked first (chat repeats the same few names).
    fn remember(&mut self, name: &[u8]) {
        if self.last_user.as_slice() == name {
            return;
        }
        self.last_user.clear();
        self.last_user.extend_from_slice(name);
        if !self.users_seen.contains(name) {
            self.users_seen.insert(name.into());
            self.stats.users.insert(String::from_utf8_lossy(name).into_owned());
        }
    }

    pub(super) fn end_conn(&mut self, ts: i64, conn: &mut Conn, out: &mut impl FnMut(EventRef<'_>)) {
        let st = &mut conn.state;
        for side in Side::BOTH {
            conn.streams[side.idx()].flush(&mut |c| self.chunk(ts, st, side, c, out));
            if let Kind::Chat(channel) = st.kind
                && let Err(e) = st.dirs[side.idx()].finish()
            {
                let (src, dst) = Self::flow(st, side);
                self.stats.decode_errors += 1;
                let what = format!("the connection ended inside a message: {}", e.kind);
                out(EventRef::Other(Event::Problem(ProblemEvent { ts_ns: ts, flow: Some((src, dst, channel)), what })));
            }
        }
        if let Kind::Transfer(i) = st.kind {
            let server = &conn.streams[Side::Server.idx()];
            if let Some(t) = self.transfers.get_mut(i) {
                t.summary.packets = server.stats.segments;
                t.summary.retransmissions = server.stats.retransmissions;
                t.summary.out_of_order = server.stats.out_of_order;
                t.summary.complete = st.fin[Side::Server.idx()] && t.summary.missing_bytes == 0;
            }
            self.report_transfer(i, ts, out);
        }
    }

    /// Reports transfer `i` (once), at `ts`, closing its extracted file.
    pub(super) fn report_transfer(&mut self, i: usize, ts: i64, out: &mut impl FnMut(EventRef<'_>)) {
        let Some(t) = self.transfers.get_mut(i) else { return };
        if t.reported {
            return;
        }
        t.reported = true;
        t.summary.reported_ns = ts;
        self.extraction.finish(t);
        out(EventRef::Other(Event::Transfer(Box::new(t.summary.clone()))));
    }
}
