//! `chatctl say`: broadcast to everyone.

use clap::Args;

use crate::cli::{Global, not_implemented};

/// Send a message to everyone in the room.
///
/// With no TEXT, or `-`, each line of standard input is sent as it arrives
/// (`tail -f app.log | chatctl say`). Text over 99 characters is split.
#[derive(Debug, Args)]
pub struct SayArgs {
    /// The message; words are joined with spaces. `-` or none: read stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

pub fn run(_args: SayArgs, _global: &Global) -> anyhow::Result<()> {
    Err(not_implemented("say"))
}
