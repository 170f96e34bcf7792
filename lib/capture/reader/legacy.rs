//! The standard pcap reader: one flat buffer, records read in place.

use std::io::Read;

use super::{MAX_BUFFER, Packet, ReadError};

/// A reader for standard pcap files (microsecond or nanosecond, either byte
/// order): the 16-byte record header is read in place from one flat buffer,
/// refilled with large reads, and only the partial record at its end is
/// moved on a refill. `pcap-parser`'s generic reader costs several times
/// more per record, which shows on captures of small chat packets.
pub(super) struct Legacy<'r> {
    input: Box<dyn Read + Send + 'r>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The input has ended.
    eof: bool,
    /// Offset in the input of `buf[start]`.
    pub(super) offset: u64,
    big_endian: bool,
    nanos: bool,
    linktype: i32,
}

impl<'r> Legacy<'r> {
    /// Size of the file header.
    const HEADER: usize = 24;
    /// Size of a record header.
    const RECORD: usize = 16;

    /// Recognises a standard pcap file header (the "modified" and other
    /// variants are left to `pcap-parser`); the reader has no input yet.
    pub(super) fn header(h: &[u8; 24]) -> Option<Legacy<'r>> {
        let (big_endian, nanos) = match h[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            _ => return None,
        };
        let b = [h[20], h[21], h[22], h[23]];
        let linktype = if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
        Some(Legacy {
            input: Box::new(std::io::empty()),
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            offset: Self::HEADER as u64,
            big_endian,
            nanos,
            // pcap-parser keeps the 32-bit field as an i32 as well.
            linktype: linktype as i32,
        })
    }

    /// This reader, reading the records from `input` (after the file
    /// header) through a buffer of `capacity` bytes.
    pub(super) fn reading(self, input: Box<dyn Read + Send + 'r>, capacity: usize) -> Legacy<'r> {
        Legacy { input, buf: vec![0; capacity], start: 0, end: 0, eof: false, ..self }
    }

    #[inline]
    fn word(&self, at: usize) -> u32 {
        let d = &self.buf[self.start + at..self.start + at + 4];
        let b = [d[0], d[1], d[2], d[3]];
        if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    }

    pub(super) fn next<T>(&mut self, f: impl FnOnce(Packet<'_>) -> T) -> Result<Option<T>, ReadError> {
        loop {
            let have = self.end - self.start;
            let need = if have >= Self::RECORD {
                let caplen = self.word(8) as usize;
                let len = Self::RECORD.saturating_add(caplen);
                if len > MAX_BUFFER {
                    return Err(ReadError::BlockTooLarge { offset: self.offset });
                }
                if have >= len {
                    let (sec, frac, orig_len) = (self.word(0), self.word(4), self.word(12));
                    let frac = if self.nanos { i64::from(frac) } else { i64::from(frac) * 1000 };
                    let ts_ns = i64::from(sec) * 1_000_000_000 + frac;
                    let data = &self.buf[self.start + Self::RECORD..self.start + len];
                    let t = f(Packet { ts_ns, linktype: self.linktype, data, orig_len });
                    self.start += len;
                    self.offset += len as u64;
                    return Ok(Some(t));
                }
                len
            } else {
                Self::RECORD
            };
            if self.eof {
                return if have == 0 { Ok(None) } else { Err(ReadError::Truncated { offset: self.offset }) };
            }
            self.refill(need)?;
        }
    }

    /// Moves the partial record to the front, grows the buffer if the record
    /// needs it, and reads as much as fits.
    fn refill(&mut self, need: usize) -> Result<(), ReadError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < need {
            self.buf.resize(need.next_power_of_two().min(MAX_BUFFER), 0);
        }
        while self.end < self.buf.len() {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    // Go on as soon as the record is here (a live pipe must
                    // not wait for a full buffer); a file fills it anyway.
                    if self.end >= need {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
        Ok(())
    }
}
