//! The download folder: exactly the regular files directly in it.
//!
//! No subfolders, no hidden files, no symlink that leads outside the folder,
//! names of at most 99 characters. The folder is re-read on every request, and
//! a download must name a listed file exactly, so nothing else can be named.
//!
//! A file may change while it is sent (a log still being written, a file
//! rewritten in place). Every sender reads it through a [`Watch`], which
//! compares the open file's size, modification and change times with what
//! they were when the download was announced ([`Stamp`]), and fails the
//! transfer before its last byte leaves if they differ, as rsync's "file
//! changed during transfer". Where the file system can clone a file
//! (`FICLONE`: btrfs, xfs, bcachefs), [`open`] sends a private clone
//! instead, which nobody else can change.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::rdt::fast::{AbortReason, ReadWatch};
use crate::wire::{MAX_FIELD_CHARS, char_len};

/// The names that `205` lists, sorted. Unreadable folder: empty list.
pub(super) fn list(dir: &Path) -> Vec<String> {
    let Ok(root) = dir.canonicalize() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(&root) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            ok_name(&name).then_some(())?;
            resolve_in(&root, &name).map(|_| name)
        })
        .collect();
    names.sort();
    names
}

fn ok_name(name: &str) -> bool {
    !name.starts_with('.') && !name.contains(['/', '\\', '\0']) && (1..=MAX_FIELD_CHARS).contains(&char_len(name))
}

/// `root/name` if it is a regular file whose real path is directly in `root`.
fn resolve_in(root: &Path, name: &str) -> Option<PathBuf> {
    let real = root.join(name).canonicalize().ok()?;
    (real.parent() == Some(root) && real.metadata().ok()?.is_file()).then_some(real)
}

/// A file opened for download.
#[derive(Debug)]
pub(super) struct Opened {
    /// What to send: the file itself, or its private clone.
    pub file: File,
    /// What it looked like when opened; its size is the one `206` announces.
    pub stamp: Stamp,
    /// True if `file` is a clone (`FICLONE`) that only this download sees.
    pub snapshot: bool,
}

/// Opens `name` for download if `list(dir)` would list it: a private clone
/// where the file system makes one, else the file itself.
pub(super) fn open(dir: &Path, name: &str) -> Option<Opened> {
    if !list(dir).iter().any(|n| n == name) {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let path = resolve_in(&root, name)?;
    let file = open_regular(&path)?;
    let stamp = Stamp::of(&file).ok()?;
    if let Some(clone) = clone_of(&file, &root)
        && Stamp::of(&file).is_ok_and(|s| s == stamp)
        && clone.metadata().is_ok_and(|m| m.len() == stamp.size)
    {
        let stamp = Stamp::of(&clone).ok()?;
        return Some(Opened { file: clone, stamp, snapshot: true });
    }
    Some(Opened { file, stamp, snapshot: false })
}

/// `path` opened for reading if it is still a regular file. Non-blocking,
/// and checked once open: a FIFO swapped in after the listing must neither
/// hang the open nor be sent.
fn open_regular(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

/// A clone of `file` that shares its blocks until either changes: an
/// unnamed file in `dir` (`O_TMPFILE`) filled by `FICLONE`. None where the
/// file system cannot (ext4, tmpfs, a read-only folder...).
fn clone_of(file: &File, dir: &Path) -> Option<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let clone =
        std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(dir).ok()?;
    // SAFETY: both descriptors are open for the duration of the call, and
    // FICLONE takes the source descriptor as its integer argument.
    let r = unsafe { libc::ioctl(clone.as_raw_fd(), libc::FICLONE, file.as_raw_fd()) };
    (r == 0).then_some(clone)
}

/// What an open file looked like: its size, modification and change times.
/// Any write, truncation or `touch` changes one of them
/// (the kernel since 6.13 stamps a change after a look at the times with
/// fine-grained times, so two writes within one clock tick cannot hide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    /// Size in bytes.
    pub size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The open file's stamp (`fstat`).
    pub(super) fn of(file: &File) -> io::Result<Self> {
        let m = file.metadata()?;
        Ok(Self { size: m.len(), mtime: (m.mtime(), m.mtime_nsec()), ctime: (m.ctime(), m.ctime_nsec()) })
    }
}

/// How a file changed while it was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum Changed {
    /// Its size differs from the announced one.
    #[error("the file changed on the server while it was sent: {from} bytes became {to}")]
    Size {
        /// The size announced.
        from: u64,
        /// The size now.
        to: u64,
    },
    /// Written to (same size, a new modification time).
    #[error("the file changed on the server while it was sent: it was written to")]
    Written,
    /// Same size and modification time, a new change time: written to and
    /// its modification time set back, or its owner, mode or links changed.
    #[error("the file changed on the server while it was sent: its status changed (ctime)")]
    Status,
    /// Its state cannot be read any more.
    #[error("the file on the server cannot be checked: {0}")]
    Unreadable(#[source] io::Error),
}

impl Changed {
    /// The `Changed` inside an I/O error that a [`Watch`] returned.
    pub(super) fn within(e: &io::Error) -> Option<&Changed> {
        e.get_ref()?.downcast_ref::<Changed>()
    }

    /// The `Changed` anywhere in `e`'s chain of sources (a sender's read error).
    pub(super) fn in_chain<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Changed> {
        loop {
            if let Some(c) = e.downcast_ref::<Changed>() {
                return Some(c);
            }
            if let Some(c) = e.downcast_ref::<io::Error>().and_then(Changed::within) {
                return Some(c);
            }
            e = e.source()?;
        }
    }
}

/// How often new data is checked at most (retransmissions and the last
/// byte are checked every time).
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Checks an open file against its [`Stamp`] as it is read.
///
/// [`check`](Self::check) looks now. As a [`ReadWatch`] it looks after
/// every read that sends bytes again (a retransmission must not carry a
/// newer version of what went before) or reaches the end of the file (so
/// the last byte never leaves after a change), after a failed read (a file
/// truncated under the reader), and at most every 100 ms otherwise
/// (to stop early). A look costs one `fstat`.
#[derive(Debug)]
pub(super) struct Watch {
    file: File,
    stamp: Stamp,
    /// The end of the furthest read so far.
    high: u64,
    looked: Instant,
    failed: bool,
}

impl Watch {
    /// Watches `file` (a handle of its own is kept), expected to match `stamp`.
    pub(super) fn new(file: &File, stamp: Stamp) -> io::Result<Self> {
        // The first read is looked at: the file may have changed since the stamp.
        let looked = Instant::now().checked_sub(CHECK_EVERY).unwrap_or_else(Instant::now);
        Ok(Self { file: file.try_clone()?, stamp, high: 0, looked, failed: false })
    }

    /// Whether a look found the file changed (every read is looked at from then on).
    #[cfg(test)]
    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// Looks at the file now.
    pub(super) fn check(&mut self) -> Result<(), Changed> {
        self.looked = Instant::now();
        let now = Stamp::of(&self.file).map_err(Changed::Unreadable);
        let r = match now {
            Ok(s) if s == self.stamp => Ok(()),
            Ok(s) if s.size != self.stamp.size => Err(Changed::Size { from: self.stamp.size, to: s.size }),
            Ok(s) if s.mtime != self.stamp.mtime => Err(Changed::Written),
            Ok(_) => Err(Changed::Status),
            Err(e) => Err(e),
        };
        // Changed, not merely unreadable: the ABORT's reason says which.
        self.failed |= matches!(r, Err(Changed::Size { .. } | Changed::Written | Changed::Status));
        r
    }

    /// Whether a read of `len` bytes at `offset` calls for a look.
    fn due(&mut self, offset: u64, len: usize) -> bool {
        let end = offset + len as u64;
        let again = offset < self.high;
        self.high = self.high.max(end);
        again || end >= self.stamp.size || self.looked.elapsed() >= CHECK_EVERY
    }
}

impl ReadWatch for Watch {
    fn abort_reason(&self) -> AbortReason {
        if self.failed { AbortReason::FileChanged } else { AbortReason::FileUnreadable }
    }

    fn must_look(&self, offset: u64, len: usize) -> bool {
        let end = offset + len as u64;
        // Not a resend of bytes in memory: they are the bytes read (and
        // looked at) before, the version already sent.
        self.failed || end >= self.stamp.size || self.looked.elapsed() >= CHECK_EVERY
    }

    fn after_read(&mut self, offset: u64, len: usize, result: io::Result<()>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(self.check().err().unwrap_or(Changed::Written)));
        }
        let due = self.due(offset, len);
        match result {
            Err(e) => Err(self.check().err().map_or(e, io::Error::other)),
            Ok(()) if due => self.check().map_err(io::Error::other),
            Ok(()) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// Bytes held in memory are not served when they end the file or when
    /// a look is due: they are read, and the read is looked at, so a change
    /// since the stamp fails even a file small enough to sit in one
    /// read-ahead block.
    #[test]
    fn cached_bytes_are_looked_at_at_the_end_and_when_due() {
        use crate::rdt::fast::{Source, Watched};
        let (d, f) = served(100_000);
        let stamp = Stamp::of(&f).unwrap();
        let held = vec![7u8; 100_000];
        let mut src = Watched { inner: held.as_slice(), watch: Watch::new(&f, stamp).unwrap() };
        // The first read is due at once, and so is the end of the file.
        assert!(src.cached(0, 1000).is_empty());
        let mut buf = vec![0; 1000];
        src.read_at(0, &mut buf).unwrap();
        assert_eq!(src.cached(1000, 1000).len(), 1000, "within the period, memory serves");
        assert!(src.cached(99_000, 1000).is_empty(), "the last bytes are read and looked at");
        // Rewritten since the stamp: the read of the last bytes fails.
        let w = File::options().write(true).open(d.path().join("f")).unwrap();
        w.write_all_at(&[1; 10], 50_000).unwrap();
        assert!(src.read_at(99_000, &mut buf).is_err());
        assert_eq!(src.abort_reason(), AbortReason::FileChanged);
    }

    #[test]
    fn a_fifo_in_place_of_a_listed_file_is_refused_without_waiting() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("f");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(open_regular(&fifo).is_none()).unwrap());
        // A blocking open would wait for a writer that never comes.
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
        std::fs::write(d.path().join("g"), b"x").unwrap();
        assert!(open_regular(&d.path().join("g")).is_some());
    }

    fn served(len: usize) -> (tempfile::TempDir, File) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), vec![7u8; len]).unwrap();
        // Written a while ago, as a served file usually is: a write now
        // changes its times even where they are coarse (kernels before 6.13).
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(d.path().join("f")).unwrap().set_modified(old).unwrap();
        let f = File::open(d.path().join("f")).unwrap();
        (d, f)
    }

    #[test]
    fn a_write_a_truncation_or_a_touch_changes_the_stamp() {
        let (d, f) = served(10_000);
        let stamp = Stamp::of(&f).unwrap();
        assert_eq!(stamp.size, 10_000);
        let mut w = Watch::new(&f, stamp).unwrap();
        w.check().unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(d.path().join("f")).unwrap();
        // Same size, same byte values: only the times tell.
        writer.write_all_at(&[7u8; 10], 100).unwrap();
        assert!(matches!(w.check(), Err(Changed::Written)), "an in-place write");
        assert!(w.failed());
        let mut w = Watch::new(&f, Stamp::of(&f).unwrap()).unwrap();
        writer.set_len(4_000).unwrap();
        assert!(matches!(w.check(), Err(Changed::Size { from: 10_000, to: 4_000 })));
        let mut w = Watch::new(&f, Stamp::of(&f).unwrap()).unwrap();
        let t = std::time::SystemTime::now() + Duration::from_secs(5);
        writer.set_modified(t).unwrap();
        assert!(matches!(w.check(), Err(Changed::Written)), "a touch");
        let mut w = Watch::new(&f, Stamp::of(&f).unwrap()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path().join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(w.check(), Err(Changed::Status)), "a chmod: only the change time tells");
    }

    #[test]
    fn reads_are_looked_at_on_retransmissions_at_the_end_and_after_a_failure() {
        let (d, f) = served(10_000);
        let mut w = Watch::new(&f, Stamp::of(&f).unwrap()).unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(d.path().join("f")).unwrap();
        w.after_read(0, 1000, Ok(())).unwrap();
        writer.write_all_at(&[1u8; 10], 5000).unwrap();
        // New data within the period passes unlooked at (one fstat per
        // period, not per datagram)...
        w.after_read(1000, 1000, Ok(())).unwrap();
        // ...a retransmission is looked at, and so is the last byte.
        let e = w.after_read(0, 1000, Ok(())).unwrap_err();
        assert!(Changed::within(&e).is_some(), "{e}");
        assert_eq!(w.abort_reason(), AbortReason::FileChanged);
        let mut w = Watch::new(&f, Stamp::of(&f).unwrap()).unwrap();
        w.after_read(0, 1000, Ok(())).unwrap();
        writer.write_all_at(&[2u8; 10], 5000).unwrap();
        assert!(w.after_read(9000, 1000, Ok(())).is_err(), "the read that reaches the end");
        // A failed read of an unchanged file keeps its own error.
        let mut w = Watch::new(&f, Stamp::of(&f).unwrap()).unwrap();
        let e = w.after_read(0, 10, Err(io::ErrorKind::UnexpectedEof.into())).unwrap_err();
        assert!(Changed::within(&e).is_none() && e.kind() == io::ErrorKind::UnexpectedEof);
        assert_eq!(w.abort_reason(), AbortReason::FileUnreadable);
    }

    #[test]
    fn open_sends_the_file_or_a_clone_of_it() {
        let (d, _) = served(3000);
        let o = open(d.path(), "f").unwrap();
        assert_eq!(o.stamp.size, 3000);
        let mut back = vec![0u8; 3000];
        o.file.read_exact_at(&mut back, 0).unwrap();
        assert!(back.iter().all(|&b| b == 7));
        // Where the file system clones (btrfs, xfs), the clone does not see
        // a later write; elsewhere the file is the original.
        let writer = std::fs::OpenOptions::new().write(true).open(d.path().join("f")).unwrap();
        writer.write_all_at(&[9u8; 10], 0).unwrap();
        o.file.read_exact_at(&mut back[..10], 0).unwrap();
        assert_eq!(back[0], if o.snapshot { 7 } else { 9 });
    }

    #[test]
    fn lists_only_plain_files_directly_inside() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), b"hi").unwrap();
        std::fs::write(d.path().join(".hidden"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/x"), b"x").unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::fs::write(d.path().join("x".repeat(100)), b"long").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("leak")).unwrap();
            std::os::unix::fs::symlink(d.path().join("a.txt"), d.path().join("alias")).unwrap();
        }
        let names = list(d.path());
        #[cfg(unix)]
        assert_eq!(names, vec!["a.txt".to_string(), "alias".to_string()]);
        assert!(open(d.path(), "a.txt").is_some_and(|o| o.stamp.size == 2));
        for bad in ["../x", "/etc/passwd", "sub/x", "sub", ".hidden", "leak", "", "A.TXT"] {
            assert!(open(d.path(), bad).is_none(), "{bad} must not open");
        }
    }
}
