//! `chatctl whisper`: a private message.

use chatctl::client::ClientError;
use chatctl::exit::Exit;
use clap::Args;

use crate::cli::Global;
use crate::common::{
    LineArgs, Refused, each_stdin_line, escape, fail, interactive, one_shot, pick_one, receipt, words,
};

/// Send a private message to one user.
///
/// With no TEXT, or `-`, each line of standard input is sent as it arrives
/// (blank lines are skipped). A line over 99 characters goes out as several
/// messages, one receipt line for all; over --max-line it is not sent; an
/// empty TEXT is a usage error. Text that is not UTF-8 is sent with U+FFFD
/// in place of the bad bytes, with a warning. Prints `delivered to USER`
/// unless --quiet; --json prints one object per line sent. If USER is not in
/// the room, the error says who is.
#[derive(Debug, Args)]
pub struct WhisperArgs {
    /// Who receives it [default on a terminal: pick from the room].
    #[arg(value_name = "USER")]
    pub user: Option<String>,

    /// The message; words are joined with spaces. `-` or none: read stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<std::ffi::OsString>,

    #[command(flatten)]
    pub lines: LineArgs,
}

pub fn run(args: WhisperArgs, global: &Global) -> anyhow::Result<()> {
    if args.user.is_none() && !interactive() {
        return Err(
            anyhow::anyhow!("name the USER to whisper to (`chatctl list` shows who is here)").context(Exit::Usage)
        );
    }
    let text = words(&args.text);
    if let Some(text) = &text {
        args.lines.check(text)?;
    }
    let refused = Refused::default();
    let g = global.clone();
    let counted = refused.clone();
    one_shot(global, |session| async move {
        let user = match args.user {
            Some(u) => u,
            None => {
                let users = session.users().await.map_err(fail)?;
                if users.is_empty() {
                    return Err(anyhow::anyhow!("nobody else is in the room").context(Exit::NoSuchUser));
                }
                users[pick_one("Whisper to", &users).await?].clone()
            }
        };
        let send = |text: String| {
            let session = session.clone();
            let user = user.clone();
            let g = g.clone();
            async move {
                let pieces = match session.whisper(&user, &text).await {
                    Ok(pieces) => pieces,
                    Err(e @ ClientError::Refused(_)) if e.exit() == Exit::NoSuchUser => {
                        let who = session.users().await.unwrap_or_default();
                        let here = chatctl::client::chat::who_is_here(&who);
                        return Err(fail(e).context(format!("{} is not in the room; {here}", escape(&user))));
                    }
                    Err(e) => return Err(fail(e)),
                };
                let parts = if pieces.len() > 1 { format!(" ({} messages)", pieces.len()) } else { String::new() };
                if g.json {
                    receipt(serde_json::json!({ "to": user, "text": pieces.concat(), "messages": pieces.len() }))?;
                } else if !g.quiet {
                    receipt(format_args!("delivered to {}{parts}", escape(&user)))?;
                }
                anyhow::Ok(())
            }
        };
        match text {
            Some(text) => send(text).await,
            None => each_stdin_line(&args.lines, &counted, send).await,
        }
    })
    .and_then(|()| refused.result())
}
