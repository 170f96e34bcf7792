//! Streaming pcap/pcapng reader: any [`Read`], a bounded buffer, one packet at
//! a time, timestamps normalised to nanoseconds since the epoch.
//!
//! Standard pcap (microseconds or nanoseconds, either byte order) is read by
//! `Legacy` (`reader/legacy.rs`), records in place in one flat buffer;
//! pcapng, with any number of sections and interfaces (each with its own
//! link type and timestamp resolution), and other pcap variants go through
//! `pcap-parser`. Memory is the buffer only: it starts at 1 MiB and grows (up
//! to `MAX_BUFFER`) only for a block larger than it.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

mod legacy;

use legacy::Legacy;

/// Initial read buffer.
const INITIAL_BUFFER: usize = 1 << 20;
/// Largest block we accept (pcapng blocks can be large; 64 MiB is plenty).
pub(super) const MAX_BUFFER: usize = 64 << 20;

/// One captured frame.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The link type (DLT/LINKTYPE number) of its interface.
    pub linktype: i32,
    /// The captured bytes (possibly shorter than the frame on the wire).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
}

/// Why a capture could not be read (further).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Neither a pcap nor a pcapng header.
    #[error("not a pcap or pcapng capture (unrecognised file header)")]
    NotACapture,
    /// The input is empty.
    #[error("the capture is empty")]
    Empty,
    /// The underlying reader failed.
    #[error("reading the capture failed")]
    Io(#[source] std::io::Error),
    /// A block that does not parse: the capture is damaged at this point.
    #[error("the capture is damaged at byte {offset}: {what}")]
    Damaged {
        /// Byte offset of the block in the input.
        offset: u64,
        /// What the parser found wrong.
        what: String,
    },
    /// The capture ends in the middle of a block (e.g. a capture cut short).
    #[error("the capture is truncated at byte {offset} (the last block is incomplete)")]
    Truncated {
        /// Byte offset of the incomplete block.
        offset: u64,
    },
    /// A block larger than `MAX_BUFFER`.
    #[error("a block at byte {offset} is larger than {MAX_BUFFER} bytes")]
    BlockTooLarge {
        /// Byte offset of the block.
        offset: u64,
    },
    /// A packet names an interface the section did not describe.
    #[error("packet at byte {offset} names interface {if_id}, which is not described")]
    UnknownInterface {
        /// Byte offset of the packet block.
        offset: u64,
        /// The interface it names.
        if_id: u32,
    },
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

/// Wraps a `Read` so that a read error is remembered (pcap-parser only says
/// `ReadError`).
struct Tap<R> {
    inner: R,
    error: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let copy = std::io::Error::new(e.kind(), e.to_string());
                    if let Ok(mut slot) = self.error.lock() {
                        *slot = Some(e);
                    }
                    return Err(copy);
                }
                ok => return ok,
            }
        }
    }
}

/// A streaming capture reader. Call [`next_packet`](Self::next_packet) until
/// it returns `Ok(None)`.
pub struct CaptureReader<'r> {
    /// What reads the blocks.
    source: Source<'r>,
    io_error: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
    /// What the blocks read so far say about those to come.
    section: Section,
    pending_consume: usize,
    /// Bytes of the input consumed before the current buffer position.
    offset: u64,
    capacity: usize,
    done: bool,
    /// Number of packets returned.
    pub packets: u64,
    /// pcapng blocks that were skipped (statistics, name resolution, unknown).
    pub skipped_blocks: u64,
}

/// The reader of a capture's blocks, chosen from its first bytes.
enum Source<'r> {
    /// Standard pcap, read by [`Legacy`].
    Standard(Legacy<'r>),
    /// pcapng, and pcap variants other than the standard one, through `pcap-parser`.
    Parser(Box<dyn PcapReaderIterator + Send + 'r>),
}

impl std::fmt::Debug for CaptureReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader").field("offset", &self.offset).field("packets", &self.packets).finish()
    }
}

impl<'r> CaptureReader<'r> {
    /// Opens a capture, detecting pcap or pcapng from its first bytes.
    pub fn new<R: Read + Send + 'r>(input: R) -> Result<Self, ReadError> {
        Self::with_capacity(input, INITIAL_BUFFER)
    }

    /// Like [`new`](Self::new) with another initial buffer size (it still
    /// grows up to `MAX_BUFFER` for a larger block). Small buffers suit
    /// small inputs (fuzzing); large ones save refills on big files.
    pub fn with_capacity<R: Read + Send + 'r>(input: R, capacity: usize) -> Result<Self, ReadError> {
        let capacity = capacity.clamp(4096, MAX_BUFFER);
        let io_error = std::sync::Arc::new(std::sync::Mutex::new(None));
        // Standard pcap (the common case, and the one with the smallest
        // records) is read here; anything else, or a header cut short, goes
        // to pcap-parser with the bytes already read put back in front.
        let mut input = input;
        let mut head = [0u8; 24];
        let got = read_full(&mut input, &mut head).map_err(ReadError::Io)?;
        if got == head.len()
            && let Some(fast) = Legacy::header(&head)
        {
            let fast = fast.reading(Box::new(input), capacity);
            return Ok(Self::build(Source::Standard(fast), io_error, capacity, None));
        }
        let mut head = head[..got].to_vec();
        if got == 24 && head.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            // pcap-parser judges the format on its first read alone: make it
            // hold the whole section header, even from a slow pipe.
            let len = [
                u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
                u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
            ];
            let len = len.into_iter().filter(|l| (28..=65_536).contains(l)).min().unwrap_or(0) as usize;
            if len > head.len() {
                let at = head.len();
                head.resize(len, 0);
                let more = read_full(&mut input, &mut head[at..]).map_err(ReadError::Io)?;
                head.truncate(at + more);
            }
        }
        let input = PutBack { head, at: 0, inner: input };
        let tap = Tap { inner: input, error: io_error.clone() };
        let inner = match pcap_parser::create_reader(capacity, tap) {
            Ok(r) => r,
            Err(PcapError::Eof) => return Err(ReadError::Empty),
            Err(PcapError::ReadError) => {
                let e = io_error.lock().ok().and_then(|mut s| s.take());
                return Err(ReadError::Io(e.unwrap_or_else(|| std::io::Error::other("read error"))));
            }
            Err(PcapError::Incomplete(_)) => return Err(ReadError::Truncated { offset: 0 }),
            Err(_) => return Err(ReadError::NotACapture),
        };
        let ng_big_endian = inner.data().starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]).then_some(false);
        Ok(Self::build(Source::Parser(inner), io_error, capacity, ng_big_endian))
    }

    fn build(
        source: Source<'r>,
        io_error: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
        capacity: usize,
        ng_big_endian: Option<bool>,
    ) -> Self {
        CaptureReader {
            source,
            io_error,
            section: Section { ng_big_endian, ..Section::default() },
            pending_consume: 0,
            offset: 0,
            capacity,
            done: false,
            packets: 0,
            skipped_blocks: 0,
        }
    }

    /// Bytes of the input read so far (the offset of the next block).
    pub fn offset(&self) -> u64 {
        match &self.source {
            Source::Standard(l) => l.offset,
            Source::Parser(_) => self.offset + self.pending_consume as u64,
        }
    }

    /// Reads the next packet and hands it to `f`; `Ok(None)` at the end of
    /// the capture. After an error the reader is finished (a damaged block in
    /// a pcap cannot be skipped reliably).
    pub fn next_packet<T>(&mut self, f: impl FnOnce(Packet<'_>) -> T) -> Result<Option<T>, ReadError> {
        if let Source::Standard(_) = self.source {
            return self.next_standard(f);
        }
        let mut f = Some(f);
        loop {
            if self.done {
                return Ok(None);
            }
            let Source::Parser(inner) = &mut self.source else { return Ok(None) };
            if self.pending_consume > 0 {
                inner.consume(self.pending_consume);
                self.offset += self.pending_consume as u64;
                self.pending_consume = 0;
            }
            let offset = self.offset;
            if let Err(e) = check_ng_block(self.section.ng_big_endian, inner.data(), offset) {
                self.done = true;
                return Err(e);
            }
            let step = match inner.next() {
                Ok((len, block)) => self.section.block(len, block, offset, &mut f),
                Err(e) => read_failure(e, offset, &self.io_error),
            };
            if let Some(r) = self.after(step, offset) {
                return r;
            }
        }
    }

    /// The next packet of a standard pcap, read by [`Legacy`].
    fn next_standard<T>(&mut self, f: impl FnOnce(Packet<'_>) -> T) -> Result<Option<T>, ReadError> {
        let Source::Standard(l) = &mut self.source else { return Ok(None) };
        if self.done {
            return Ok(None);
        }
        let r = l.next(f);
        match &r {
            Ok(Some(_)) => self.packets += 1,
            _ => self.done = true,
        }
        r
    }

    /// Acts on one step of the parser: what [`next_packet`](Self::next_packet)
    /// returns, or `None` to read on.
    fn after<T>(&mut self, step: Step<T>, offset: u64) -> Option<Result<Option<T>, ReadError>> {
        match step {
            Step::Got(len, t) => {
                self.pending_consume = len;
                self.packets += 1;
                return Some(Ok(Some(t)));
            }
            Step::Skip(len) => self.pending_consume = len,
            Step::Unknown(len) => {
                self.skipped_blocks += 1;
                self.pending_consume = len;
            }
            Step::End => {
                self.done = true;
                return Some(Ok(None));
            }
            Step::Fail(e) => {
                self.done = true;
                return Some(Err(e));
            }
            Step::Grow => {
                if self.capacity >= MAX_BUFFER {
                    self.done = true;
                    return Some(Err(ReadError::BlockTooLarge { offset }));
                }
                self.capacity *= 2;
                if let Source::Parser(inner) = &mut self.source {
                    inner.grow(self.capacity);
                }
                if let Err(e) = self.refill(offset) {
                    return Some(Err(e));
                }
            }
            Step::Refill => {
                if let Err(e) = self.refill(offset) {
                    return Some(Err(e));
                }
            }
        }
        None
    }

    fn refill(&mut self, offset: u64) -> Result<(), ReadError> {
        let Source::Parser(inner) = &mut self.source else { return Ok(()) };
        if let Err(e) = inner.refill() {
            self.done = true;
            return Err(match e {
                PcapError::ReadError => {
                    let e = self.io_error.lock().ok().and_then(|mut s| s.take());
                    ReadError::Io(e.unwrap_or_else(|| std::io::Error::other("read error")))
                }
                _ => ReadError::Truncated { offset },
            });
        }
        Ok(())
    }
}

/// One step of the parser, in [`CaptureReader::next_packet`].
enum Step<T> {
    /// A packet (the block's length, what the callback returned).
    Got(usize, T),
    /// A block read for its settings.
    Skip(usize),
    /// A block skipped unread (statistics, name resolution, unknown).
    Unknown(usize),
    /// More input is needed.
    Refill,
    /// The block is larger than the buffer.
    Grow,
    End,
    Fail(ReadError),
}

/// What the blocks read so far say about those to come.
#[derive(Debug, Default)]
struct Section {
    /// Legacy pcap: link type and nanosecond flag from the file header.
    legacy: Option<(i32, bool)>,
    /// pcapng: the current section's interfaces.
    interfaces: Vec<Interface>,
    /// pcapng: the current section is big-endian (None for a pcap file).
    ng_big_endian: Option<bool>,
}

impl Section {
    /// Reads one block at `offset`: a packet goes to `f` (once), a header
    /// updates the settings.
    fn block<T, F: FnOnce(Packet<'_>) -> T>(
        &mut self,
        len: usize,
        block: PcapBlockOwned<'_>,
        offset: u64,
        f: &mut Option<F>,
    ) -> Step<T> {
        let mut got = |p: Packet<'_>| Step::Got(len, f.take().expect("callback used once")(p));
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.legacy = Some((h.network.0, h.is_nanosecond_precision()));
                Step::Skip(len)
            }
            PcapBlockOwned::Legacy(b) => {
                let (linktype, nanos) = self.legacy.unwrap_or((1, false));
                let frac = if nanos { i64::from(b.ts_usec) } else { i64::from(b.ts_usec) * 1000 };
                let ts_ns = i64::from(b.ts_sec) * 1_000_000_000 + frac;
                let caplen = (b.caplen as usize).min(b.data.len());
                got(Packet { ts_ns, linktype, data: &b.data[..caplen], orig_len: b.origlen })
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                self.ng_big_endian = Some(shb.big_endian());
                self.interfaces.clear();
                Step::Skip(len)
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.interfaces.push(Interface {
                    linktype: idb.linktype.0,
                    resolution: idb.ts_resolution().unwrap_or(1_000_000),
                    offset_s: idb.ts_offset(),
                });
                Step::Skip(len)
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => match self.interfaces.get(epb.if_id as usize) {
                None => Step::Fail(ReadError::UnknownInterface { offset, if_id: epb.if_id }),
                Some(i) => {
                    let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                    let res = i.resolution.max(1);
                    let secs = (ts / res) as i64 + i.offset_s;
                    let frac = (u128::from(ts % res) * 1_000_000_000 / u128::from(res)) as i64;
                    let ts_ns = secs.saturating_mul(1_000_000_000).saturating_add(frac);
                    let caplen = (epb.caplen as usize).min(epb.data.len());
                    got(Packet { ts_ns, linktype: i.linktype, data: &epb.data[..caplen], orig_len: epb.origlen })
                }
            },
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => match self.interfaces.first() {
                None => Step::Fail(ReadError::UnknownInterface { offset, if_id: 0 }),
                Some(i) => {
                    // A simple packet block has no timestamp.
                    let caplen = (spb.origlen as usize).min(spb.data.len());
                    got(Packet { ts_ns: 0, linktype: i.linktype, data: &spb.data[..caplen], orig_len: spb.origlen })
                }
            },
            PcapBlockOwned::NG(_) => Step::Unknown(len),
        }
    }
}

/// The step for a parser error at `offset` (a read error is taken from
/// `io_error`, where [`Tap`] kept it).
fn read_failure<T, I>(e: PcapError<I>, offset: u64, io_error: &std::sync::Mutex<Option<std::io::Error>>) -> Step<T> {
    match e {
        PcapError::Eof => Step::End,
        PcapError::Incomplete(_) => Step::Refill,
        PcapError::BufferTooSmall => Step::Grow,
        PcapError::UnexpectedEof => Step::Fail(ReadError::Truncated { offset }),
        PcapError::ReadError => {
            let e = io_error.lock().ok().and_then(|mut s| s.take());
            Step::Fail(ReadError::Io(e.unwrap_or_else(|| std::io::Error::other("read error"))))
        }
        e => Step::Fail(ReadError::Damaged { offset, what: describe(&e) }),
    }
}

/// pcap-parser 0.17 computes `block_len - 12` unchecked for some block
/// types (an overflow panic in debug builds): reject such lengths first.
fn check_ng_block(ng_big_endian: Option<bool>, d: &[u8], offset: u64) -> Result<(), ReadError> {
    let Some(section_be) = ng_big_endian else { return Ok(()) };
    let Some(head) = d.get(..12) else { return Ok(()) };
    let word = |b: &[u8], be: bool| {
        let b = [b[0], b[1], b[2], b[3]];
        if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    };
    // A section header says its own byte order in its magic.
    let be = if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] { head[8..12] == [0x1a, 0x2b, 0x3c, 0x4d] } else { section_be };
    let len = word(&head[4..8], be);
    if len < 12 {
        return Err(ReadError::Damaged { offset, what: format!("block length {len} is below the minimum of 12") });
    }
    Ok(())
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => format!("invalid block ({kind:?})"),
        PcapError::HeaderNotRecognized => "unrecognised header".into(),
        _ => "invalid block".into(),
    }
}

/// The bytes read to recognise the format, then the rest of the input.
/// Unlike [`Read::chain`], the first read also reads on from the input, so
/// that `pcap-parser` sees a whole first block in its first read.
struct PutBack<R> {
    head: Vec<u8>,
    at: usize,
    inner: R,
}

impl<R: Read> Read for PutBack<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.head[self.at..];
        if rest.is_empty() {
            return self.inner.read(buf);
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        if n < buf.len() {
            // An error here is left for the next read to meet again.
            if let Ok(m) = self.inner.read(&mut buf[n..]) {
                return Ok(n + m);
            }
        }
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synth::{PcapWriter, PcapngWriter};

    /// Hands out the input one byte per read, as a slow pipe might.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
            let Some(slot) = buf.first_mut() else { return Ok(0) };
            *slot = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    /// Time, link type, bytes and original length of a packet.
    type Got = (i64, i32, Vec<u8>, u32);

    fn all(mut r: CaptureReader<'_>) -> (Vec<Got>, Result<(), ReadError>, u64) {
        let mut got = Vec::new();
        let end = loop {
            match r.next_packet(|p| got.push((p.ts_ns, p.linktype, p.data.to_vec(), p.orig_len))) {
                Ok(Some(())) => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        (got, end, r.offset())
    }

    fn pcap(nanos: bool, be: bool) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), 101, nanos, be).unwrap();
        for i in 0..50usize {
            let data: Vec<u8> = (0..i * 37 % 1600).map(|b| b as u8).collect();
            w.packet(1_700_000_000_123_456_789 + i as i64 * 1_000_001, &data).unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn standard_pcap_reads_the_same_in_any_read_size_and_byte_order() {
        for (nanos, be) in [(false, false), (false, true), (true, false), (true, true)] {
            let cap = pcap(nanos, be);
            let (whole, end, offset) = all(CaptureReader::new(&cap[..]).unwrap());
            assert!(end.is_ok());
            assert_eq!(offset, cap.len() as u64);
            assert_eq!(whole.len(), 50);
            let exact = 1_700_000_000_123_456_789 + 3_000_003;
            assert_eq!(whole[3].0, if nanos { exact } else { exact / 1000 * 1000 });
            assert_eq!(whole[3].2.len(), 111);
            let (trickled, end, _) = all(CaptureReader::with_capacity(Trickle(&cap), 4096).unwrap());
            assert!(end.is_ok());
            assert_eq!(trickled, whole, "nanos {nanos} big-endian {be}");
        }
    }

    #[test]
    fn standard_pcap_cut_short_or_with_a_huge_record_stops_with_the_offset() {
        let cap = pcap(false, false);
        let (whole, _, _) = all(CaptureReader::new(&cap[..]).unwrap());
        // Cut inside the last record's data, then inside its header.
        for cut in [cap.len() - 5, cap.len() - whole[49].2.len() - 10] {
            let (got, end, _) = all(CaptureReader::with_capacity(Trickle(&cap[..cut]), 4096).unwrap());
            assert_eq!(got.len(), 49);
            let last = (cap.len() - 16 - whole[49].2.len()) as u64;
            assert!(matches!(end, Err(ReadError::Truncated { offset }) if offset == last), "{end:?}");
        }
        // A record claiming more than MAX_BUFFER bytes.
        let mut bad = cap[..24].to_vec();
        bad.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let (got, end, _) = all(CaptureReader::new(&bad[..]).unwrap());
        assert!(got.is_empty());
        assert!(matches!(end, Err(ReadError::BlockTooLarge { offset: 24 })), "{end:?}");
        // A header cut short, and nothing at all.
        assert!(matches!(CaptureReader::new(&cap[..20]), Err(ReadError::Truncated { .. })));
        assert!(matches!(CaptureReader::new(&[][..]), Err(ReadError::Empty)));
    }

    #[test]
    fn pcapng_still_goes_through_the_parser_after_the_header_sniff() {
        let mut w = PcapngWriter::new(Vec::new(), false).unwrap();
        w.interface(101, 9).unwrap();
        w.packet(0, 1_000_000_123, b"abc").unwrap();
        let cap = w.into_inner();
        for r in [CaptureReader::new(&cap[..]).unwrap(), CaptureReader::with_capacity(Trickle(&cap), 4096).unwrap()] {
            let (got, end, _) = all(r);
            assert!(end.is_ok());
            assert_eq!(got, vec![(1_000_000_123, 101, b"abc".to_vec(), 3)]);
        }
    }
}
