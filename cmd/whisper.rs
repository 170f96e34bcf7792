//! `chatctl whisper`: a private message.

use std::io::IsTerminal;

use anyhow::Context;
use chatctl::client::ClientError;
use chatctl::exit::Exit;
use clap::Args;
use tokio::io::AsyncBufReadExt;

use crate::cli::Global;
use crate::session::{escape, fail, one_shot, words};

/// Send a private message to one user.
///
/// With no TEXT, or `-`, each line of standard input is sent. If USER is not
/// in the room, the error says who is.
#[derive(Debug, Args)]
pub struct WhisperArgs {
    /// Who receives it [default on a terminal: pick from the room].
    #[arg(value_name = "USER")]
    pub user: Option<String>,

    /// The message; words are joined with spaces. `-` or none: read stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

pub fn run(args: WhisperArgs, global: &Global) -> anyhow::Result<()> {
    let g = global.clone();
    one_shot(global, |session| async move {
        let user = match args.user {
            Some(u) => u,
            None if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
                let users = session.users().await.map_err(fail)?;
                if users.is_empty() {
                    return Err(anyhow::anyhow!("nobody else is in the room").context(Exit::NoSuchUser));
                }
                let shown: Vec<String> = users.iter().map(|u| escape(u)).collect();
                let i = dialoguer::Select::new()
                    .with_prompt("Whisper to")
                    .items(&shown)
                    .default(0)
                    .interact()
                    .context("cannot read the choice from the terminal")?;
                users[i].clone()
            }
            None => anyhow::bail!("USER is required when standard input is not a terminal"),
        };
        let send = |text: String| {
            let session = session.clone();
            let user = user.clone();
            let g = g.clone();
            async move {
                match session.whisper(&user, &text).await {
                    Ok(_) => {}
                    Err(e @ ClientError::Refused(_)) if e.exit() == Exit::NoSuchUser => {
                        let who = session.users().await.unwrap_or_default();
                        let who: Vec<String> = who.iter().map(|u| escape(u)).collect();
                        let here = if who.is_empty() { "nobody else".to_string() } else { who.join(", ") };
                        return Err(fail(e).context(format!("{} is not in the room; here: {here}", escape(&user))));
                    }
                    Err(e) => return Err(fail(e)),
                }
                if g.json {
                    println!("{}", serde_json::json!({ "to": user, "text": text }));
                } else if !g.quiet {
                    println!("delivered to {}", escape(&user));
                }
                anyhow::Ok(())
            }
        };
        match words(&args.text) {
            Some(text) => send(text).await,
            None => {
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Some(line) = lines.next_line().await? {
                    send(line).await?;
                }
                Ok(())
            }
        }
    })
}
