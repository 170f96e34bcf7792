//! `chatctl capture-decode`: read a conversation out of a capture.

use std::path::PathBuf;

use clap::Args;

use crate::cli::{Global, not_implemented};

/// Decode the chat in a pcap or pcapng capture, and rebuild downloaded files.
#[derive(Debug, Args)]
pub struct CaptureDecodeArgs {
    /// The capture file; `-` or none reads standard input.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Also treat this TCP port as a server port (13337 always is); repeatable.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<u16>,

    /// Rebuild every downloaded file into this folder.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
}

pub fn run(_args: CaptureDecodeArgs, _global: &Global) -> anyhow::Result<()> {
    Err(not_implemented("capture-decode"))
}
