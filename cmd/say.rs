//! `chatctl say`: broadcast to everyone.

use chatctl::client::forward::{Stop, forward};
use chatctl::client::reconnect::DEFAULT_BACKLOG;
use chatctl::exit::Exit;
use clap::Args;

use crate::cli::Global;
use crate::common::{
    Reach, ReconnectArgs, block_on, each_stdin_line, escape, fail, leave, name, one_shot, reach_unless, receipt,
    report_reconnect, stdin_lines, words,
};

/// Send a message to everyone in the room.
///
/// With no TEXT, or `-`, each line of standard input is sent as it arrives
/// (`tail -f app.log | chatctl say`); a server that goes away ends it at once
/// (exit 12) unless --reconnect. Text over 99 characters is split. Prints
/// who received each message unless --quiet; --json prints one object per
/// message sent. With a `join` of the same server and name running, the
/// message goes through that session.
#[derive(Debug, Args)]
pub struct SayArgs {
    /// The message; words are joined with spaces. `-` or none: read stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,

    #[command(flatten)]
    pub reconnect: ReconnectArgs,
}

pub fn run(args: SayArgs, global: &Global) -> anyhow::Result<()> {
    let g = global.clone();
    match words(&args.text) {
        Some(text) => one_shot(global, |link| async move {
            for (piece, to) in link.broadcast(&text).await.map_err(fail)? {
                report(&g, &piece, &to)?;
            }
            Ok(())
        }),
        None => stream(&args.reconnect, global),
    }
}

/// `say` reading standard input: through [`forward`] when joined by itself
/// (the connection watched, --reconnect), line by line through a shared session.
fn stream(reconnect: &ReconnectArgs, g: &Global) -> anyhow::Result<()> {
    let name = name(g)?;
    block_on(async {
        let mut ctrl_c = crate::common::CtrlC::new()?;
        let joined = match reach_unless(g, &name, ctrl_c.pressed()).await? {
            Reach::Own(s, u) => (std::sync::Arc::new(s), u),
            Reach::Shared(c) => {
                let link = chatctl::client::control::Link::Shared(c);
                let send = |text: String| {
                    let link = &link;
                    async move {
                        for (piece, to) in link.broadcast(&text).await.map_err(fail)? {
                            report(g, &piece, &to)?;
                        }
                        anyhow::Ok(())
                    }
                };
                return tokio::select! {
                    biased;
                    _ = ctrl_c.pressed() => Err(anyhow::Error::new(Exit::Interrupted)),
                    r = each_stdin_line(send) => r,
                };
            }
        };
        let (session, r) = forward(
            joined,
            reconnect.rejoin(g, &name),
            DEFAULT_BACKLOG,
            stdin_lines(),
            |session, line| async move { session.broadcast(&line).await },
            |sent| sent.iter().try_for_each(|(piece, to)| report(g, piece, to)),
            |event| report_reconnect("say", g.json, &event),
            &tokio::sync::watch::channel(None).0,
            async {
                ctrl_c.pressed().await;
            },
        )
        .await;
        let r = match r {
            Ok(()) => Ok(()),
            Err(Stop::Client(e)) => Err(fail(e)),
            Err(Stop::Sink(e)) => Err(e),
            Err(Stop::Interrupted) => Err(anyhow::Error::new(Exit::Interrupted)),
        };
        match session {
            Some(s) => r.and(leave(s.leave(), &mut ctrl_c).await),
            None => r,
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
