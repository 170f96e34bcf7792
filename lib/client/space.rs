//! A download's footing on the client's disk: room for the file before any
//! data flows, the operating system's reason when a write fails anyway, and
//! what a partial download was taken from, so that `fetch --continue` never
//! joins two versions of a file.
//!
//! The partial file of a fast download records the size the server
//! announced for it (an extended attribute, `user.chatctl.size`, where the
//! file system keeps them). A resume whose `206` announces another size is
//! refused before data flows; a resume whose whole-file hash fails at the
//! end (same size, other bytes) is reported the same way.

use std::error::Error;
use std::io;
use std::path::Path;

use crate::text::units;

/// What a resume says when the server's file is not the one the partial
/// download was taken from.
pub(super) const CHANGED_SINCE_PARTIAL: &str =
    "the file changed on the server since the partial download; fetch it again";

/// The extended attribute that holds the announced size, in decimal.
const SIZE_ATTR: &std::ffi::CStr = c"user.chatctl.size";

/// Bytes an unprivileged process may still write in the file system that
/// holds `dir` (`statvfs`: available blocks times the fragment size).
pub(super) fn free_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` is large enough for the result.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 or u64).
    #[allow(clippy::unnecessary_cast)]
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// The folder a path's file lives in (`.` for a bare name).
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Refuses a download of `size` bytes into `temp` that cannot fit: `keep`
/// bytes of the temporary file stay (a resume), the rest of it is given
/// back first (a fresh download truncates it). A folder whose free space
/// cannot be read is not refused.
pub(super) fn ensure_room(temp: &Path, size: u64, keep: u64) -> Result<(), String> {
    let dir = folder(temp);
    let Ok(free) = free_space(dir) else { return Ok(()) };
    let old = std::fs::metadata(temp).map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512);
    room(dir, size, keep, free.saturating_add(if keep == 0 { old } else { 0 }))
}

/// The verdict of [`ensure_room`] on `free` bytes.
fn room(dir: &Path, size: u64, keep: u64, free: u64) -> Result<(), String> {
    let need = size.saturating_sub(keep);
    if need > free {
        return Err(format!(
            "not enough space in {}: needs {}, {} free",
            dir.display(),
            units::bytes(need),
            units::bytes(free)
        ));
    }
    Ok(())
}

/// True if the disk ran full somewhere in `e`'s chain (`ENOSPC`, `EDQUOT`).
pub(super) fn disk_full(e: &(dyn Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        {
            return true;
        }
        at = e.source();
    }
    false
}

/// The note on a partial download that stays for `fetch --continue`, with its size.
pub(super) fn kept_note(temp: &Path) -> String {
    let held = std::fs::metadata(temp).map_or(0, |m| m.len());
    format!("(the partial download, {}, is kept: --continue resumes it)", units::bytes(held))
}

/// After the disk ran full under a fast download: whether its partial file
/// is worth keeping, which is when `fetch --continue` would start past its
/// first byte (more than `window` bytes held, the flow-control window a
/// resume steps back), and the note for the user. A partial not kept is
/// removed by the caller.
pub(super) fn after_disk_full(temp: &Path, window: u64) -> (bool, String) {
    let held = std::fs::metadata(temp).map_or(0, |m| m.len());
    if held > window {
        (true, "; free some space first".into())
    } else {
        (
            false,
            format!(
                " (the partial download, {}, was removed: too little for --continue to resume)",
                units::bytes(held)
            ),
        )
    }
}

/// The note for a TCP or classic download whose disk ran full: nothing is kept.
pub(super) fn removed_note(held: u64) -> String {
    format!(" (the partial download, {}, was removed: TCP and classic UDP cannot resume)", units::bytes(held))
}

/// A TCP transfer the server reset before the announced end: a chatctl
/// server does so when the file changes while it is sent (a clean close
/// would read as a complete file to the original client).
pub(super) fn cut_short(got: u64, size: u64) -> String {
    format!(
        "the server cut the transfer after {got} of {size} bytes (connection reset): the file changed on the server \
         while it was sent, or the server failed; fetch it again"
    )
}

/// A classic UDP sender that went quiet before the end: a chatctl server
/// stops before the final datagram when the file changes while it is sent
/// (go-back-N has no way to say why).
pub(super) fn stopped_note(got: u64, size: u64) -> String {
    format!(" after {got} of {size} bytes: the server stopped sending (the file may have changed on the server)")
}

/// A write into the partial file failed: the OS's reason and, when the
/// disk ran full, what became of the `held` bytes (the caller removes them).
pub(super) fn write_failed(e: &super::ClientError, held: u64) -> String {
    let mut r = super::error_chain(e);
    if disk_full(e) {
        r.push_str(&removed_note(held));
    }
    r
}

/// Checks made before a download asks for data: that a resume's partial
/// file was taken from a file of the announced `size` (else
/// [`CHANGED_SINCE_PARTIAL`], and the partial is removed), and that the
/// rest fits on the disk ([`ensure_room`]).
pub(super) fn before_transfer(temp: &Path, size: u64, resuming: bool) -> Result<(), String> {
    if resuming && let Some(was) = recorded_size(temp).filter(|&was| was != size) {
        let _ = std::fs::remove_file(temp);
        return Err(format!("{CHANGED_SINCE_PARTIAL} (it had {was} bytes, it has {size})"));
    }
    let keep = if resuming { std::fs::metadata(temp).map_or(0, |m| m.len().min(size)) } else { 0 };
    ensure_room(temp, size, keep)
}

/// Records on the partial file the size the server announced for it (best
/// effort: a file system without extended attributes records nothing).
pub(super) fn record_source(file: &std::fs::File, size: u64) {
    use std::os::fd::AsRawFd;
    let v = size.to_string();
    // SAFETY: the descriptor is open, the name is NUL-terminated, and the
    // value is `v.len()` readable bytes.
    let _ = unsafe { libc::fsetxattr(file.as_raw_fd(), SIZE_ATTR.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
}

/// Removes what [`record_source`] recorded, from a download complete and
/// about to take its name: the attribute is of no use on the file itself.
pub(super) fn forget_source(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return };
    // SAFETY: both names are NUL-terminated.
    let _ = unsafe { libc::removexattr(c.as_ptr(), SIZE_ATTR.as_ptr()) };
}

/// The size recorded on a partial file by [`record_source`], if any.
pub(super) fn recorded_size(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 24];
    // SAFETY: `c` is NUL-terminated and `buf` has room for `buf.len()` bytes.
    let n = unsafe { libc::getxattr(c.as_ptr(), SIZE_ATTR.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_larger_than_the_free_space_is_refused_with_the_figures() {
        let dir = Path::new("out");
        assert_eq!(
            room(dir, 3_000_000, 0, 1_048_576),
            Err("not enough space in out: needs 3.0 MB, 1.0 MB free".into())
        );
        assert_eq!(room(dir, 1_000_000, 0, 1_048_576), Ok(()));
        // What a resume already holds need not fit again.
        assert_eq!(room(dir, 3_000_000, 2_500_000, 1_048_576), Ok(()));
        // On a real folder: statvfs answers, and a petabyte does not fit.
        let d = tempfile::tempdir().unwrap();
        let temp = d.path().join(".f.chatctl-part");
        assert!(free_space(d.path()).unwrap() > 0);
        assert_eq!(ensure_room(&temp, 1000, 0), Ok(()));
        let e = ensure_room(&temp, 1 << 60, 0).unwrap_err();
        assert!(e.starts_with(&format!("not enough space in {}: needs ", d.path().display())), "{e}");
    }

    #[test]
    fn reasons_keep_the_os_cause() {
        let e = crate::rdt::fast::receiver::RecvError::Io { offset: 7, source: io::Error::from_raw_os_error(28) };
        let r = super::super::error_chain(&e);
        assert!(r.starts_with("writing the file at offset 7: "), "{r}");
        assert!(r.contains("No space left on device"), "{r}");
        assert!(disk_full(&e));
        let other = crate::rdt::fast::receiver::RecvError::Io { offset: 7, source: io::Error::other("x") };
        assert!(!disk_full(&other));
    }

    #[test]
    fn a_resume_of_a_partial_taken_from_another_size_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".f.chatctl-part");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(1000).unwrap();
        record_source(&f, 5000);
        if recorded_size(&p).is_none() {
            eprintln!("skipped: {} keeps no user extended attributes", d.path().display());
            return;
        }
        assert_eq!(before_transfer(&p, 5000, true), Ok(()));
        let e = before_transfer(&p, 6000, true).unwrap_err();
        assert_eq!(e, format!("{CHANGED_SINCE_PARTIAL} (it had 5000 bytes, it has 6000)"));
        assert!(!p.exists(), "a partial of another version is removed");
    }

    #[test]
    fn the_announced_size_is_recorded_where_attributes_are_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("part");
        let f = std::fs::File::create(&p).unwrap();
        record_source(&f, 1_234_567);
        // Some file systems keep no user attributes: then nothing is recorded.
        if let Some(n) = recorded_size(&p) {
            assert_eq!(n, 1_234_567);
            forget_source(&p);
            assert_eq!(recorded_size(&p), None, "a complete download keeps no attribute");
        } else {
            eprintln!("skipped: {} keeps no user extended attributes", d.path().display());
        }
    }
}
