//! `chatctl fetch`: download files.

use std::path::PathBuf;

use clap::Args;

use crate::cli::{Global, not_implemented};

/// Download files from the server (UDP by default, as the original client).
///
/// Several files download in parallel, with one progress bar each on a
/// terminal. A file is written beside its target and renamed into place only
/// when complete.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Files to download [default on a terminal: pick from the server's list].
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// Download over reliable UDP (the default).
    #[arg(long, conflicts_with = "tcp")]
    pub udp: bool,

    /// Download over TCP.
    #[arg(long)]
    pub tcp: bool,

    /// Where to write: a file name (one FILE) or a folder [default: the current folder].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

pub fn run(_args: FetchArgs, _global: &Global) -> anyhow::Result<()> {
    Err(not_implemented("fetch"))
}
