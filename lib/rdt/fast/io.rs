//! Where a transfer's bytes come from and go to: [`Source`] (read at an
//! offset, sender) and [`Sink`] (written at an offset, receiver), with
//! their implementations for files and memory, and [`Watched`], a source
//! whose every read a [`ReadWatch`] checks.

use std::ops::Range;

use super::*;

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
/// change while it is sent. Called after every read of a `Watched` source.
pub trait ReadWatch: Send {
    /// `result` is how the read of `len` bytes at `offset` went; an error
    /// returned here fails the read (and so the transfer) instead.
    fn after_read(&mut self, offset: u64, len: usize, result: std::io::Result<()>) -> std::io::Result<()>;
    /// Why a read failed, for the ABORT the receiver gets: by default the
    /// file became unreadable; a watch that saw the file change says so.
    fn abort_reason(&self) -> AbortReason {
        AbortReason::FileUnreadable
    }
    /// True when bytes at `offset..offset + len` must be read (and so
    /// looked at) even though memory holds them: `Watched` then offers
    /// no cached bytes for them.
    fn must_look(&self, _offset: u64, _len: usize) -> bool {
        false
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
    fn must_look(&self, offset: u64, len: usize) -> bool {
        self.as_ref().is_some_and(|w| w.must_look(offset, len))
    }
}

/// A [`Source`] whose reads a [`ReadWatch`] checks. Memory it holds
/// ([`Source::cached`]) was read, and checked, before; bytes the watch must
/// look at again ([`ReadWatch::must_look`]) are never served from it.
#[derive(Debug)]
pub(crate) struct Watched<S, W> {
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
        if self.watch.must_look(offset, len) { &[] } else { self.inner.cached(offset, len) }
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
