//! File adapters for the fast-mode drivers: the [`Source`](super::Source)
//! and [`Sink`](super::Sink) over real files, with read-ahead and
//! coalesced writes, keeping the last two blocks in memory for the
//! whole-file hash.

use std::fs::File;
use std::io;

/// Bytes [`ReadAhead`] reads at once.
const READ_AHEAD_BYTES: usize = 256 << 10;

/// A [`Source`](super::Source) over the file being sent that reads new
/// data [`READ_AHEAD_BYTES`] at a time: with 1452-byte datagrams, one
/// `pread` per ~180 datagrams instead of one each. Large reads (65 KB
/// datagrams, the hash) and retransmissions outside the cached block are
/// read directly. The block before the current one is kept too, so the
/// sender's hash, which lags the data sent by up to
/// [`HASH_RUN`](super::HASH_RUN), finds its bytes in memory
/// ([`Source::cached`](super::Source::cached)).
pub(crate) struct ReadAhead<'a> {
    file: &'a File,
    size: u64,
    buf: Vec<u8>,
    at: u64,
    prev: Vec<u8>,
    prev_at: u64,
}

impl<'a> ReadAhead<'a> {
    pub(crate) fn new(file: &'a File, size: u64) -> Self {
        Self { file, size, buf: Vec::new(), at: 0, prev: Vec::new(), prev_at: 0 }
    }
}

/// At most `len` bytes at `offset` from the first of `blocks` (each holding
/// the file's bytes from its offset on) that holds `offset`, or none.
fn held_in(blocks: [(&[u8], u64); 2], offset: u64, len: usize) -> &[u8] {
    for (block, at) in blocks {
        if offset >= at && offset < at + block.len() as u64 {
            let i = (offset - at) as usize;
            return &block[i..block.len().min(i + len)];
        }
    }
    &[]
}

impl super::Source for ReadAhead<'_> {
    fn read_at(&mut self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = self.at + self.buf.len() as u64;
        if offset >= self.at && offset + out.len() as u64 <= end {
            let i = (offset - self.at) as usize;
            out.copy_from_slice(&self.buf[i..i + out.len()]);
            return Ok(());
        }
        // New data runs on from the cached block (the datagram that
        // straddles its end included); anything else is a retransmission.
        let next = self.buf.is_empty() || (self.at..=end).contains(&offset);
        if !next || out.len() >= READ_AHEAD_BYTES / 16 {
            return std::os::unix::fs::FileExt::read_exact_at(self.file, out, offset);
        }
        let n = (self.size.saturating_sub(offset).min(READ_AHEAD_BYTES as u64) as usize).max(out.len());
        std::mem::swap(&mut self.buf, &mut self.prev);
        self.prev_at = self.at;
        self.buf.resize(n, 0);
        if let Err(e) = std::os::unix::fs::FileExt::read_exact_at(self.file, &mut self.buf, offset) {
            self.buf.clear();
            return Err(e);
        }
        self.at = offset;
        out.copy_from_slice(&self.buf[..out.len()]);
        Ok(())
    }

    fn cached(&self, offset: u64, len: usize) -> &[u8] {
        held_in([(&self.buf, self.at), (&self.prev, self.prev_at)], offset, len)
    }
}

/// Most bytes [`Coalesce`] holds before it writes.
const COALESCE_BYTES: usize = 256 << 10;

/// A [`Sink`] over the output file that joins contiguous writes (the
/// datagrams of one received batch usually follow each other) into one
/// positioned write of up to [`COALESCE_BYTES`]: with 1452-byte datagrams,
/// one `pwrite` per ~180 datagrams instead of one each. Large writes
/// (65 KB datagrams) go straight through, uncopied. Reads flush first, and
/// the driver flushes after each batch, before it acknowledges. Written
/// bytes stay in memory (this block and the one before) for the receiver's
/// hash ([`Sink::cached`](super::Sink::cached)).
pub(crate) struct Coalesce<'a> {
    file: &'a File,
    buf: Vec<u8>,
    at: u64,
    /// `buf[..flushed]` is in the file already.
    flushed: usize,
    prev: Vec<u8>,
    prev_at: u64,
}

impl<'a> Coalesce<'a> {
    pub(crate) fn new(file: &'a File) -> Self {
        Self { file, buf: Vec::new(), at: 0, flushed: 0, prev: Vec::new(), prev_at: 0 }
    }

    /// Writes what is held; on failure, the offset of the held bytes and the error.
    pub(crate) fn flush(&mut self) -> Result<(), (u64, io::Error)> {
        if self.flushed == self.buf.len() {
            return Ok(());
        }
        let at = self.at + self.flushed as u64;
        let r = std::os::unix::fs::FileExt::write_all_at(self.file, &self.buf[self.flushed..], at);
        self.flushed = self.buf.len();
        r.map_err(|e| (at, e))
    }
}

impl super::Sink for Coalesce<'_> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let next = self.at + self.buf.len() as u64;
        if !self.buf.is_empty() && offset == next && self.buf.len() + data.len() <= COALESCE_BYTES {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.flush().map_err(|(_, e)| e)?;
        if data.len() >= COALESCE_BYTES / 16 {
            return std::os::unix::fs::FileExt::write_all_at(self.file, data, offset);
        }
        std::mem::swap(&mut self.buf, &mut self.prev);
        self.prev_at = self.at;
        self.buf.clear();
        self.flushed = 0;
        self.at = offset;
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.flush().map_err(|(_, e)| e)?;
        std::os::unix::fs::FileExt::read_exact_at(self.file, buf, offset)
    }

    fn cached(&self, offset: u64, len: usize) -> &[u8] {
        held_in([(&self.buf, self.at), (&self.prev, self.prev_at)], offset, len)
    }
}

impl Drop for Coalesce<'_> {
    /// Best effort on an early return: what arrived stays for `--continue`.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn coalesced_writes_land_where_they_belong() {
        use crate::rdt::fast::Sink;
        let f = tempfile::tempfile().unwrap();
        let mut c = Coalesce::new(&f);
        let mut want = vec![0u8; 585_000]; // the last write ends there
        let mut put = |c: &mut Coalesce<'_>, off: usize, len: usize, v: u8| {
            want[off..off + len].fill(v);
            c.write_at(off as u64, &vec![v; len]).unwrap();
        };
        // In order (joined), past the buffer size, a hole, a big write, out of order.
        for i in 0..300 {
            put(&mut c, i * 1427, 1427, (i % 250) as u8 + 1);
        }
        put(&mut c, 500_000, 1000, 7);
        put(&mut c, 520_000, 65_000, 8);
        put(&mut c, 450_000, 1427, 9);
        // A read sees everything written so far.
        let mut back = vec![0u8; 1427];
        c.read_at(1427 * 299, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == (299 % 250) as u8 + 1));
        put(&mut c, 1427 * 300, 10, 3);
        c.flush().unwrap();
        drop(c);
        let mut got = vec![0u8; want.len()];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut got, 0).unwrap();
        assert!(got == want);
    }

    #[test]
    fn read_ahead_reads_what_the_file_holds() {
        use crate::rdt::fast::Source;
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let mut r = ReadAhead::new(&f, data.len() as u64);
        let check = |r: &mut ReadAhead<'_>, off: usize, len: usize| {
            let mut b = vec![0u8; len];
            r.read_at(off as u64, &mut b).unwrap();
            assert!(b == data[off..off + len], "{off}+{len}");
        };
        // Sequential (cached blocks), a retransmission far back, a big read, the tail.
        let mut off = 0;
        while off + 1427 <= data.len() {
            check(&mut r, off, 1427);
            if off == 300 * 1427 {
                check(&mut r, 5 * 1427, 1427);
                check(&mut r, 1000, 65_000);
            }
            off += 1427;
        }
        check(&mut r, off, data.len() - off);
        // A datagram straddling a block's end starts the next block.
        let mut s = ReadAhead::new(&f, data.len() as u64);
        check(&mut s, 0, 1427);
        check(&mut s, READ_AHEAD_BYTES - 100, 1427);
        assert_eq!(s.at, (READ_AHEAD_BYTES - 100) as u64, "read ahead from the straddling datagram");
        let mut past = vec![0u8; 10];
        assert!(r.read_at(data.len() as u64 - 5, &mut past).is_err(), "beyond the end is an error");
    }
}
