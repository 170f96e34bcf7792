//! `chatctl list`: who is here, or what can be downloaded.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};

use crate::cli::Global;
use crate::common::{escape, fail, note, one_shot, out};

/// List the other users in the room, or with files (or --files) the files
/// on offer.
///
/// One per line; --json prints an array. When there are none, standard
/// output stays empty (for scripts) and, on a terminal, standard error says so.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum, value_name = "WHAT", default_value_t = What::Users)]
    pub what: What,

    /// List the server's files instead of its users (as list files).
    #[arg(long, conflicts_with = "what")]
    pub files: bool,
}

/// What `list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// The other users in the room.
    Users,
    /// The files the server offers.
    Files,
}

pub fn run(args: ListArgs, global: &Global) -> anyhow::Result<()> {
    let (json, quiet) = (global.json, global.quiet);
    let files = args.files || args.what == What::Files;
    one_shot(global, |session| async move {
        let items = if files { session.files().await } else { session.users().await }.map_err(fail)?;
        if json {
            out(serde_json::to_string(&items)?)?;
        } else if items.is_empty() {
            if !quiet && std::io::stdout().is_terminal() {
                note(if files { "the server offers no files" } else { "nobody else is in the room" });
            }
        } else {
            for i in items {
                out(escape(&i))?;
            }
        }
        Ok(())
    })
}
