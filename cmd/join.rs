//! `chatctl join`: the interactive session.

use clap::Args;

use crate::cli::{Global, not_implemented};

/// Join the room interactively.
///
/// On a terminal: a prompt with history; incoming messages appear above it.
/// Plain text goes to everyone; `@name text` or `/w name text` is private;
/// `/users`, `/files`, `/get FILE`, `/help`, `/quit`. Not on a terminal: each
/// stdin line is a message and each update one output line (JSON with --json).
#[derive(Debug, Args)]
pub struct JoinArgs {}

pub fn run(_args: JoinArgs, _global: &Global) -> anyhow::Result<()> {
    Err(not_implemented("join"))
}
