//! Where a download writes, planned and checked before the server is asked
//! for anything: the target of each file (`plan_targets`,
//! [`prepare_targets`]), the checks of one output (`check_target`), and the
//! temporary file and resume mark beside it.

use std::path::{Path, PathBuf};

use super::DownloadOptions;
use crate::client::{ClientError, escape};
use crate::rdt::fast::{self, Stats};

/// The temporary file a download of `target` writes before the rename. Its
/// name is stable so `fetch --continue` finds it after an interruption.
pub fn temp_path_for(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.chatctl-part"))
}

/// Removes the temporary file (and its resume mark) if the download ends
/// early (error, or the future dropped on Ctrl-C) instead of being renamed
/// into place.
pub(super) struct TempGuard(Option<(PathBuf, PathBuf)>);

impl TempGuard {
    /// Guards the temporary file and the resume mark of `target`.
    pub(super) fn new(target: &Path) -> Self {
        TempGuard(Some((temp_path_for(target), resume_mark_path(target))))
    }

    /// Keeps the files from here on (placed, or kept for `--continue`).
    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }

    /// Whether the files are still removed on drop.
    pub(super) fn is_armed(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some((temp, mark)) = self.0.take() {
            let _ = std::fs::remove_file(mark);
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Where each of `files` goes, planned before anything is asked of the
/// server: `output` names the file of a single download unless it is a
/// folder (existing, or written with a trailing `/`); otherwise each file
/// keeps the server's name (its last component only) in `output` or the
/// current folder. Two files that would land on one path are an error.
pub(super) fn plan_targets(output: Option<&Path>, files: &[String]) -> Result<Vec<(String, PathBuf)>, ClientError> {
    let single = files.len() == 1;
    let mut planned: Vec<(String, PathBuf)> = Vec::new();
    for file in files {
        let path = match output {
            Some(o)
                if single && !o.is_dir() && !o.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR) =>
            {
                o.to_path_buf()
            }
            _ => {
                let Some(base) = crate::client::local_file_name(file) else {
                    return Err(ClientError::Output {
                        path: PathBuf::from(escape(file).into_owned()),
                        reason: "no local file name can be made from it (use -o NAME)".into(),
                    });
                };
                output.unwrap_or(Path::new(".")).join(base)
            }
        };
        if let Some((other, _)) = planned.iter().find(|(_, p)| *p == path) {
            return Err(ClientError::Output {
                path,
                reason: format!("{} and {} would both be written there", escape(other), escape(file)),
            });
        }
        planned.push((file.clone(), path));
    }
    Ok(planned)
}

/// Why the outputs of a download cannot be used ([`prepare_targets`]).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The targets cannot be planned (`plan_targets`).
    #[error(transparent)]
    Plan(ClientError),
    /// The output folder of a download of several files cannot be created.
    #[error("cannot create the folder {}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The output of one file fails its check (`check_target`).
    #[error("fetching {}", escape(file))]
    Check {
        /// The file's name on the server.
        file: String,
        /// What the check found.
        #[source]
        error: ClientError,
    },
}

/// Plans where each of `files` goes (`plan_targets`), creates `output`
/// when it is the folder of several files, and checks every output
/// (`check_target`): all before the server is asked for anything.
pub fn prepare_targets(
    output: Option<&Path>,
    files: &[String],
    opts: &DownloadOptions,
) -> Result<Vec<(String, PathBuf)>, PrepareError> {
    let targets = plan_targets(output, files).map_err(PrepareError::Plan)?;
    if let (Some(dir), false) = (output, files.len() == 1) {
        std::fs::create_dir_all(dir).map_err(|source| PrepareError::Folder { path: dir.to_path_buf(), source })?;
    }
    for (file, path) in &targets {
        check_target(path, opts).map_err(|error| PrepareError::Check { file: file.clone(), error })?;
    }
    Ok(targets)
}

/// Where an interrupted fast download of a `size`-byte file into `target`
/// resumes, and how many bytes it had beyond that (fetched again): `(0, 0)`
/// unless `resume` with the fast mode (`fast`).
///
/// The resume mark says how far the partial file is good. Without a mark (or
/// one for another size), the flow-control window bounds how far past its
/// contiguous prefix it wrote, so everything before `len - window` is good.
/// The final hash checks the rest either way.
pub(super) fn resume_point(target: &Path, size: u64, resume: bool, fast: Option<&fast::Config>) -> (u64, u64) {
    let held_len = std::fs::metadata(temp_path_for(target)).map(|m| m.len()).unwrap_or(0);
    match (fast, resume) {
        (Some(c), true) => match ResumeMark::read(&resume_mark_path(target)) {
            Some(m) if m.size == size && m.prefix <= held_len.min(size) => (m.prefix, m.held.saturating_sub(m.prefix)),
            _ => (held_len.min(size).saturating_sub(c.receive_window), 0),
        },
        _ => (0, 0),
    }
}

/// The small file beside the partial download that says how much of it is
/// good: written (by rename) each time the receiver's contiguous prefix is
/// in the partial file, so `--continue` resumes exactly there.
pub fn resume_mark_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.chatctl-resume"))
}

/// What [`resume_mark_path`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ResumeMark {
    /// The file's size, as the server announced it.
    size: u64,
    /// Bytes `0..prefix` of the partial file are the file's.
    prefix: u64,
    /// Bytes held in all (beyond the prefix too: they are fetched again).
    held: u64,
}

impl ResumeMark {
    fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Written to a temporary name and renamed: the mark is old or new, never torn.
    fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap_or_default())?;
        std::fs::rename(&tmp, path)
    }
}

/// Checks the output of one download before anything is asked of the
/// server: its folder exists and can be written to, the target is not a
/// folder, and it does not exist (unless `force`, or `resume`, which may
/// find it already complete once the size is known).
pub(super) fn check_target(target: &Path, opts: &DownloadOptions) -> Result<(), ClientError> {
    let bad = |reason: String| ClientError::Output { path: target.to_path_buf(), reason };
    let folder = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad(format!("{} is not a folder", folder.display()))),
        Err(e) => return Err(bad(format!("the folder {} cannot be used: {e}", folder.display()))),
    }
    if target.is_dir() {
        return Err(bad("it is a folder (name the file, or end the path with /)".into()));
    }
    if target.exists() && !opts.force && !opts.resume {
        return Err(ClientError::Exists(target.to_path_buf()));
    }
    // Writable: the partial file is created (or opened, to resume) now.
    let temp = temp_path_for(target);
    let existed = temp.exists();
    match std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&temp) {
        Ok(_) if !existed => {
            let _ = std::fs::remove_file(&temp);
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(bad(format!("cannot write in {}: {e}", folder.display()))),
    }
}

/// Keeps the resume mark of a fast download up to date from its progress
/// (on the transfer's thread, after what arrived is in the file).
pub(super) struct MarkWriter {
    path: PathBuf,
    size: u64,
    written: Option<(u64, u64)>,
}

impl MarkWriter {
    /// Writes the mark at `path` for a file of `size` bytes.
    pub(super) fn new(path: PathBuf, size: u64) -> Self {
        MarkWriter { path, size, written: None }
    }

    pub(super) fn update(&mut self, s: &Stats) {
        let now = (s.held_prefix, s.bytes_done);
        if self.written != Some(now) && s.bytes_done > 0 {
            let m = ResumeMark { size: self.size, prefix: s.held_prefix, held: s.bytes_done };
            if m.write(&self.path).is_ok() {
                self.written = Some(now);
            }
        }
    }
}
