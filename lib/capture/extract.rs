//! Rebuilding downloaded files on disk (`--extract DIR`), streaming: the
//! bytes go to the file as the capture is read, never into memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::event::{Extracted, TransferMode, TransferSummary};
use super::transfer::{Step, Transfer};
use crate::rdt::fast::HashAlgorithm;

/// A file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct ExtractError {
    /// The file.
    pub path: PathBuf,
    #[source]
    /// What went wrong.
    pub source: std::io::Error,
}

struct Open {
    path: PathBuf,
    /// The file's name before numbering (see [`safe_name`]).
    base: String,
    out: BufWriter<File>,
    /// Offset the next sequential write lands at.
    at: u64,
    holes: bool,
}

/// Writes each transfer's bytes to a file in one folder.
pub struct Extractor {
    dir: PathBuf,
    open: HashMap<u32, Open>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor").field("dir", &self.dir).field("open", &self.open.len()).finish()
    }
}

/// A safe file name from a requested name: its last path component, with
/// separators and control characters replaced; never empty, `.` or `..`.
pub(crate) fn safe_name(requested: Option<&str>, id: u32) -> String {
    let base = requested.and_then(|r| r.rsplit(['/', '\\']).find(|s| !s.is_empty())).unwrap_or("");
    let clean: String = base.chars().map(|c| if c.is_control() || c == ':' { '_' } else { c }).collect();
    if clean.is_empty() || clean == "." || clean == ".." { format!("transfer-{id}") } else { clean }
}

impl Extractor {
    /// Creates the folder if needed.
    pub fn new(dir: &Path) -> Result<Self, ExtractError> {
        std::fs::create_dir_all(dir).map_err(|source| ExtractError { path: dir.to_owned(), source })?;
        Ok(Extractor { dir: dir.to_owned(), open: HashMap::new() })
    }

    fn file(&mut self, id: u32, name: Option<&str>) -> Result<&mut Open, ExtractError> {
        if !self.open.contains_key(&id) {
            let base = safe_name(name, id);
            let mut n = 0;
            loop {
                let candidate = if n == 0 { base.clone() } else { format!("{base}.{n}") };
                let path = self.dir.join(&candidate);
                match std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
                    Ok(f) => {
                        self.open.insert(
                            id,
                            Open {
                                path,
                                base: base.clone(),
                                out: BufWriter::with_capacity(256 << 10, f),
                                at: 0,
                                holes: false,
                            },
                        );
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                    Err(source) => return Err(ExtractError { path, source }),
                }
            }
        }
        self.open.get_mut(&id).ok_or_else(|| ExtractError {
            path: PathBuf::new(),
            source: std::io::Error::other("extractor lost a file"),
        })
    }

    /// Writes `data` at `offset` of transfer `id`'s file (created on first
    /// use). Writes may come in any order (fast mode); bytes the capture
    /// missed are reported with [`hole`](Self::hole).
    pub fn write(&mut self, id: u32, name: Option<&str>, offset: u64, data: &[u8]) -> Result<(), ExtractError> {
        let f = self.file(id, name)?;
        let err = |path: &Path, source| ExtractError { path: path.to_owned(), source };
        if offset != f.at {
            f.out.seek(SeekFrom::Start(offset)).map_err(|e| err(&f.path, e))?;
        }
        f.out.write_all(data).map_err(|e| err(&f.path, e))?;
        f.at = offset + data.len() as u64;
        Ok(())
    }

    /// Records that transfer `id` has a hole (the capture missed bytes).
    pub fn hole(&mut self, id: u32, name: Option<&str>) -> Result<(), ExtractError> {
        self.file(id, name)?.holes = true;
        Ok(())
    }

    /// Closes transfer `id`'s file and verifies its size against `expected`
    /// and, when given (fast mode), its hash against DONE's field `hash`
    /// with the transfer's algorithm (the file is
    /// read back, in constant memory). A file that fails verification is
    /// renamed with a `.incomplete` suffix, numbered when that name is taken
    /// (`NAME.incomplete`, `NAME.1.incomplete`, …): nothing is overwritten.
    pub fn finish(
        &mut self,
        id: u32,
        name: Option<&str>,
        expected: Option<u64>,
        hash: Option<(HashAlgorithm, &[u8; 32])>,
    ) -> Result<Extracted, ExtractError> {
        // A transfer with no data still produces its (empty) file.
        self.file(id, name)?;
        let Some(mut f) = self.open.remove(&id) else {
            return Err(ExtractError { path: self.dir.clone(), source: std::io::Error::other("file not open") });
        };
        let err = |path: &Path, source| ExtractError { path: path.to_owned(), source };
        f.out.flush().map_err(|e| err(&f.path, e))?;
        let len = f.out.get_ref().metadata().map_err(|e| err(&f.path, e))?.len();
        let mut verified = !f.holes && expected.is_some_and(|e| e == len);
        let mut hash_verified = None;
        if let (true, Some((algorithm, want))) = (verified, hash) {
            let got = hash_file(f.out.get_mut(), algorithm).map_err(|e| err(&f.path, e))?;
            hash_verified = Some(got == *want);
            verified = got == *want;
        }
        let mut path = f.path;
        if !verified {
            path = rename_incomplete(&path, &self.dir.join(&f.base)).map_err(|e| err(&path, e))?;
        }
        Ok(Extracted { path, verified, hash_verified })
    }
}

/// Renames `path` to `BASE.incomplete`, or when that exists
/// `BASE.1.incomplete`, `BASE.2.incomplete`…: never over another file
/// (several incomplete copies of one file each keep their own, numbered as
/// complete copies are).
fn rename_incomplete(path: &Path, base: &Path) -> std::io::Result<PathBuf> {
    for n in 0..10_000 {
        let mut bad = base.as_os_str().to_owned();
        if n > 0 {
            bad.push(format!(".{n}"));
        }
        bad.push(".incomplete");
        let bad = PathBuf::from(bad);
        // A hard link fails on an existing name where a rename would replace it.
        match std::fs::hard_link(path, &bad) {
            Ok(()) => {
                std::fs::remove_file(path)?;
                return Ok(bad);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) if !bad.exists() => {
                // No hard links here (some file systems): check, then rename.
                std::fs::rename(path, &bad)?;
                return Ok(bad);
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "too many incomplete copies"))
}

/// The extractor as the analyser drives it, transfer by transfer: writes,
/// holes and closing, keeping the first error (extraction of that file
/// stops; decoding goes on). Without an [`Extractor`], nothing happens.
pub(crate) struct Extraction {
    ex: Option<Extractor>,
    error: Option<ExtractError>,
}

impl Extraction {
    pub(crate) fn new(ex: Option<Extractor>) -> Self {
        Extraction { ex, error: None }
    }

    /// The first error, if any.
    pub(crate) fn take_error(&mut self) -> Option<ExtractError> {
        self.error.take()
    }

    fn keep(&mut self, r: Result<(), ExtractError>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// File bytes of a transfer at `offset`.
    pub(crate) fn write(&mut self, s: &TransferSummary, offset: u64, data: &[u8]) {
        if let Some(ex) = self.ex.as_mut() {
            let r = ex.write(s.id, s.file.as_deref(), offset, data);
            self.keep(r);
        }
    }

    /// The capture missed bytes of a transfer.
    pub(crate) fn hole(&mut self, s: &TransferSummary) {
        if let Some(ex) = self.ex.as_mut() {
            let r = ex.hole(s.id, s.file.as_deref());
            self.keep(r);
        }
    }

    /// What a UDP datagram of `t` asks for (its bytes written, the file closed).
    pub(crate) fn step(&mut self, t: &mut Transfer, datagram: &[u8], step: Step) {
        if t.summary.extracted.is_some() {
            return;
        }
        if let Some((offset, range)) = step.write {
            self.write(&t.summary, offset, datagram.get(range).unwrap_or(&[]));
        }
        if step.finish {
            self.finish(t);
        }
    }

    /// Closes a transfer's file (once), verifying its size (and hash, in
    /// fast mode); a fast transfer whose bytes the capture did not all hold
    /// has holes.
    pub(crate) fn finish(&mut self, t: &mut Transfer) {
        let Some(ex) = self.ex.as_mut() else { return };
        if t.summary.extracted.is_some() {
            return;
        }
        let (id, name) = (t.summary.id, t.summary.file.as_deref());
        if t.summary.mode == TransferMode::Fast && t.summary.missing_bytes > 0 {
            let r = ex.hole(id, name);
            self.keep(r);
        }
        let Some(ex) = self.ex.as_mut() else { return };
        match ex.finish(id, name, t.summary.announced_size, t.expected_hash().as_ref().map(|(a, h)| (*a, h))) {
            Ok(x) => t.summary.extracted = Some(x),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
}

/// DONE's hash field for a whole file with `algorithm`, read from its start
/// in 1 MiB pieces.
fn hash_file(f: &mut File, algorithm: HashAlgorithm) -> std::io::Result<[u8; 32]> {
    f.seek(SeekFrom::Start(0))?;
    let mut h = algorithm.hasher();
    let mut buf = vec![0; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(h.finalize()),
            Ok(n) => {
                h.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
