//! The download folder: exactly the regular files directly in it.
//!
//! No subfolders, no hidden files, no symlink that leads outside the folder,
//! names of at most 99 characters. The folder is re-read on every request, and
//! a download must name a listed file exactly, so nothing else can be named.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::wire::{MAX_FIELD_CHARS, char_len};

/// The names that `205` lists, sorted. Unreadable folder: empty list.
pub fn list(dir: &Path) -> Vec<String> {
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

/// Opens `name` for download if `list(dir)` would list it: the file and its size.
pub fn open(dir: &Path, name: &str) -> Option<(File, u64)> {
    if !list(dir).iter().any(|n| n == name) {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let path = resolve_in(&root, name)?;
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    Some((file, len))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(open(d.path(), "a.txt").is_some_and(|(_, n)| n == 2));
        for bad in ["../x", "/etc/passwd", "sub/x", "sub", ".hidden", "leak", "", "A.TXT"] {
            assert!(open(d.path(), bad).is_none(), "{bad} must not open");
        }
    }
}
