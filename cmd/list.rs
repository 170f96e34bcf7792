//! `chatctl list`: who is here, or what can be downloaded.

use clap::Args;

use crate::cli::Global;
use crate::session::{escape, fail, one_shot, out};

/// List the other users in the room, or with --files the files on offer.
///
/// One per line (nothing when there are none); --json prints an array.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List the server's files instead of its users.
    #[arg(long)]
    pub files: bool,
}

pub fn run(args: ListArgs, global: &Global) -> anyhow::Result<()> {
    let json = global.json;
    one_shot(global, |session| async move {
        let items = if args.files { session.files().await } else { session.users().await }.map_err(fail)?;
        if json {
            out(serde_json::to_string(&items)?)?;
        } else {
            for i in items {
                out(escape(&i))?;
            }
        }
        Ok(())
    })
}
