//! `chatctl whisper`: a private message.

use clap::Args;

use crate::cli::{Global, not_implemented};

/// Send a private message to one user.
///
/// With no TEXT, or `-`, each line of standard input is sent.
#[derive(Debug, Args)]
pub struct WhisperArgs {
    /// Who receives it [default on a terminal: pick from the room].
    #[arg(value_name = "USER")]
    pub user: Option<String>,

    /// The message; words are joined with spaces. `-` or none: read stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

pub fn run(_args: WhisperArgs, _global: &Global) -> anyhow::Result<()> {
    Err(not_implemented("whisper"))
}
