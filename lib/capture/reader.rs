//! Streaming pcap/pcapng reader: any [`Read`], a bounded buffer, one packet at
//! a time, timestamps normalised to nanoseconds since the epoch.
//!
//! pcap in microseconds or nanoseconds and either byte order, and pcapng with
//! any number of sections and interfaces (each with its own link type and
//! timestamp resolution) are read through `pcap-parser`. Memory is the buffer
//! only: it starts at 1 MiB and grows (up to [`MAX_BUFFER`]) only for a block
//! larger than it.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

/// Initial read buffer.
const INITIAL_BUFFER: usize = 1 << 20;
/// Largest block we accept (pcapng blocks can be large; 64 MiB is plenty).
pub const MAX_BUFFER: usize = 64 << 20;

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
    /// A block larger than [`MAX_BUFFER`].
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
    inner: Box<dyn PcapReaderIterator + Send + 'r>,
    io_error: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
    /// Legacy pcap: link type and nanosecond flag from the file header.
    legacy: Option<(i32, bool)>,
    /// Legacy pcap in the standard (not "modified") format: records are read
    /// straight from the buffer, big-endian if true (see [`Self::next_legacy`]).
    legacy_fast: Option<bool>,
    interfaces: Vec<Interface>,
    pending_consume: usize,
    /// Bytes of the input consumed before the current buffer position.
    offset: u64,
    capacity: usize,
    done: bool,
    /// pcapng: the current section is big-endian (None for a pcap file).
    ng_big_endian: Option<bool>,
    /// Number of packets returned.
    pub packets: u64,
    /// pcapng blocks that were skipped (statistics, name resolution, unknown).
    pub skipped_blocks: u64,
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
    /// grows up to [`MAX_BUFFER`] for a larger block). Small buffers suit
    /// small inputs (fuzzing); large ones save refills on big files.
    pub fn with_capacity<R: Read + Send + 'r>(input: R, capacity: usize) -> Result<Self, ReadError> {
        let capacity = capacity.clamp(4096, MAX_BUFFER);
        let io_error = std::sync::Arc::new(std::sync::Mutex::new(None));
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
        Ok(CaptureReader {
            inner,
            io_error,
            legacy: None,
            legacy_fast: None,
            interfaces: Vec::new(),
            pending_consume: 0,
            offset: 0,
            capacity,
            done: false,
            ng_big_endian,
            packets: 0,
            skipped_blocks: 0,
        })
    }

    /// Bytes of the input read so far (the offset of the next block).
    pub fn offset(&self) -> u64 {
        self.offset + self.pending_consume as u64
    }

    /// Reads the next packet and hands it to `f`; `Ok(None)` at the end of
    /// the capture. After an error the reader is finished (a damaged block in
    /// a pcap cannot be skipped reliably).
    pub fn next_packet<T>(&mut self, f: impl FnOnce(Packet<'_>) -> T) -> Result<Option<T>, ReadError> {
        let mut f = Some(f);
        loop {
            if self.done {
                return Ok(None);
            }
            if self.pending_consume > 0 {
                self.inner.consume(self.pending_consume);
                self.offset += self.pending_consume as u64;
                self.pending_consume = 0;
            }
            enum Step<T> {
                Got(usize, T),
                Skip(usize),
                Refill,
                Grow,
                End,
                Fail(ReadError),
            }
            if let (Some(big_endian), Some((linktype, nanos))) = (self.legacy_fast, self.legacy)
                && let Some(len) = Self::next_legacy(self.inner.data(), big_endian)
            {
                let d = self.inner.data();
                let word = |at: usize| {
                    let b = [d[at], d[at + 1], d[at + 2], d[at + 3]];
                    if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
                };
                let frac = if nanos { i64::from(word(4)) } else { i64::from(word(4)) * 1000 };
                let ts_ns = i64::from(word(0)) * 1_000_000_000 + frac;
                let p = Packet { ts_ns, linktype, data: &d[16..len], orig_len: word(12) };
                let f = f.take().expect("callback used once");
                let t = f(p);
                self.pending_consume = len;
                self.packets += 1;
                return Ok(Some(t));
            }
            let offset = self.offset;
            if let Err(e) = self.check_ng_block(offset) {
                self.done = true;
                return Err(e);
            }
            let step = match self.inner.next() {
                Ok((len, block)) => match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        self.legacy = Some((h.network.0, h.is_nanosecond_precision()));
                        self.legacy_fast = (!h.is_modified_format()).then_some(h.is_bigendian());
                        Step::Skip(len)
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, nanos) = self.legacy.unwrap_or((1, false));
                        let frac = if nanos { i64::from(b.ts_usec) } else { i64::from(b.ts_usec) * 1000 };
                        let ts_ns = i64::from(b.ts_sec) * 1_000_000_000 + frac;
                        let caplen = (b.caplen as usize).min(b.data.len());
                        let p = Packet { ts_ns, linktype, data: &b.data[..caplen], orig_len: b.origlen };
                        let f = f.take().expect("callback used once");
                        Step::Got(len, f(p))
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
                            let p = Packet {
                                ts_ns,
                                linktype: i.linktype,
                                data: &epb.data[..caplen],
                                orig_len: epb.origlen,
                            };
                            let f = f.take().expect("callback used once");
                            Step::Got(len, f(p))
                        }
                    },
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match self.interfaces.first() {
                        None => Step::Fail(ReadError::UnknownInterface { offset, if_id: 0 }),
                        Some(i) => {
                            // A simple packet block has no timestamp.
                            let caplen = (spb.origlen as usize).min(spb.data.len());
                            let p = Packet {
                                ts_ns: 0,
                                linktype: i.linktype,
                                data: &spb.data[..caplen],
                                orig_len: spb.origlen,
                            };
                            let f = f.take().expect("callback used once");
                            Step::Got(len, f(p))
                        }
                    },
                    PcapBlockOwned::NG(_) => {
                        self.skipped_blocks += 1;
                        Step::Skip(len)
                    }
                },
                Err(PcapError::Eof) => Step::End,
                Err(PcapError::Incomplete(_)) => Step::Refill,
                Err(PcapError::BufferTooSmall) => Step::Grow,
                Err(PcapError::UnexpectedEof) => Step::Fail(ReadError::Truncated { offset }),
                Err(PcapError::ReadError) => {
                    let e = self.io_error.lock().ok().and_then(|mut s| s.take());
                    Step::Fail(ReadError::Io(e.unwrap_or_else(|| std::io::Error::other("read error"))))
                }
                Err(e) => Step::Fail(ReadError::Damaged { offset, what: describe(&e) }),
            };
            match step {
                Step::Got(len, t) => {
                    self.pending_consume = len;
                    self.packets += 1;
                    return Ok(Some(t));
                }
                Step::Skip(len) => self.pending_consume = len,
                Step::End => {
                    self.done = true;
                    return Ok(None);
                }
                Step::Fail(e) => {
                    self.done = true;
                    return Err(e);
                }
                Step::Grow => {
                    if self.capacity >= MAX_BUFFER {
                        self.done = true;
                        return Err(ReadError::BlockTooLarge { offset });
                    }
                    self.capacity *= 2;
                    self.inner.grow(self.capacity);
                    self.refill(offset)?;
                }
                Step::Refill => self.refill(offset)?,
            }
        }
    }

    /// The length of the whole legacy pcap record at the start of `d` (16-byte
    /// header and captured bytes), when `d` holds all of it; `None` sends the
    /// caller through `pcap-parser`, which reads it the same way and handles
    /// refills, growth and the end. Reading the common case here, without the
    /// parser's generic machinery, saves a good part of the per-packet cost
    /// on captures of small packets.
    #[inline]
    fn next_legacy(d: &[u8], big_endian: bool) -> Option<usize> {
        let b: [u8; 4] = d.get(8..12)?.try_into().ok()?;
        let caplen = if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
        let len = 16usize.checked_add(usize::try_from(caplen).ok()?)?;
        (d.len() >= len).then_some(len)
    }

    /// pcap-parser 0.17 computes `block_len - 12` unchecked for some block
    /// types (an overflow panic in debug builds): reject such lengths first.
    fn check_ng_block(&self, offset: u64) -> Result<(), ReadError> {
        let Some(section_be) = self.ng_big_endian else { return Ok(()) };
        let d = self.inner.data();
        let Some(head) = d.get(..12) else { return Ok(()) };
        let word = |b: &[u8], be: bool| {
            let b = [b[0], b[1], b[2], b[3]];
            if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        };
        // A section header says its own byte order in its magic.
        let be =
            if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] { head[8..12] == [0x1a, 0x2b, 0x3c, 0x4d] } else { section_be };
        let len = word(&head[4..8], be);
        if len < 12 {
            return Err(ReadError::Damaged { offset, what: format!("block length {len} is below the minimum of 12") });
        }
        Ok(())
    }

    fn refill(&mut self, offset: u64) -> Result<(), ReadError> {
        if let Err(e) = self.inner.refill() {
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

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => format!("invalid block ({kind:?})"),
        PcapError::HeaderNotRecognized => "unrecognised header".into(),
        _ => "invalid block".into(),
    }
}
