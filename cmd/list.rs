//! `chatctl list`: who is here, or what can be downloaded.

use std::io::IsTerminal;

use clap::Args;

use crate::cli::Global;
use crate::common::{escape, fail, note, one_shot, out};

/// List the other users in the room, or with --files the files on offer.
///
/// One per line; --json prints an array. When there are none, standard
/// output stays empty (for scripts) and, on a terminal, standard error says so.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List the server's files instead of its users.
    #[arg(long)]
    pub files: bool,
}

pub fn run(args: ListArgs, global: &Global) -> anyhow::Result<()> {
    let (json, quiet) = (global.json, global.quiet);
    one_shot(global, |session| async move {
        let items = if args.files { session.files().await } else { session.users().await }.map_err(fail)?;
        if json {
            out(serde_json::to_string(&items)?)?;
        } else if items.is_empty() {
            if !quiet && std::io::stdout().is_terminal() {
                note(if args.files { "the server offers no files" } else { "nobody else is in the room" });
            }
        } else {
            for i in items {
                out(escape(&i))?;
            }
        }
        Ok(())
    })
}
