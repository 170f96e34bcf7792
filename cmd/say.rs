//! `chatctl say`: broadcast to everyone.

use clap::Args;

use crate::cli::Global;
use crate::session::{each_stdin_line, escape, fail, one_shot, receipt, words};

/// Send a message to everyone in the room.
///
/// With no TEXT, or `-`, each line of standard input is sent as it arrives
/// (`tail -f app.log | chatctl say`). Text over 99 characters is split.
/// Prints who received each message unless --quiet; --json prints one object
/// per message sent.
#[derive(Debug, Args)]
pub struct SayArgs {
    /// The message; words are joined with spaces. `-` or none: read stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

pub fn run(args: SayArgs, global: &Global) -> anyhow::Result<()> {
    let g = global.clone();
    one_shot(global, |session| async move {
        let send = |text: String| {
            let session = session.clone();
            let g = g.clone();
            async move {
                for (piece, to) in session.broadcast(&text).await.map_err(fail)? {
                    report(&g, &piece, &to)?;
                }
                anyhow::Ok(())
            }
        };
        match words(&args.text) {
            Some(text) => send(text).await,
            None => each_stdin_line(send).await,
        }
    })
}

fn report(g: &Global, text: &str, to: &[String]) -> anyhow::Result<()> {
    if g.json {
        receipt(serde_json::json!({ "text": text, "to": to }))?;
    } else if !g.quiet {
        if to.is_empty() {
            receipt("sent to nobody (the room is empty)")?;
        } else {
            let names: Vec<String> = to.iter().map(|n| escape(n).into_owned()).collect();
            receipt(format_args!("sent to {}", names.join(", ")))?;
        }
    }
    Ok(())
}
