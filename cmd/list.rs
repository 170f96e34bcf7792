//! `chatctl list`: who is here, or what can be downloaded.

use clap::Args;

use crate::cli::{Global, not_implemented};

/// List the other users in the room, or with --files the files on offer.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List the server's files instead of its users.
    #[arg(long)]
    pub files: bool,
}

pub fn run(_args: ListArgs, _global: &Global) -> anyhow::Result<()> {
    Err(not_implemented("list"))
}
