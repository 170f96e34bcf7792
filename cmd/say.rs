//! `chatctl say`: broadcast to everyone.

use std::ffi::OsString;

use chatctl::client::forward::{Stop, forward};
use chatctl::client::reconnect::DEFAULT_BACKLOG;
use chatctl::exit::Exit;
use clap::Args;

use crate::cli::Global;
use crate::common::{
    LineArgs, Reach, ReconnectArgs, Refused, block_on, escape, fail, leave, name, note, one_shot_with, reach_unless,
    receipt, report_reconnect, stdin_lines, words,
};

/// Send a message to everyone in the room.
///
/// With no TEXT, or `-`, each line of standard input is sent as it arrives
/// (`tail -f app.log | chatctl say`); blank lines are skipped, and with no
/// line at all `say` does not join. A server that goes away ends it at once
/// (exit 12) unless --reconnect, which also waits for a server not up yet.
/// A line over 99 characters goes out as several messages, one receipt line
/// for all; over --max-line it is not sent. An empty TEXT is a usage error.
/// Text that is not UTF-8 (argument or input) is sent with U+FFFD in place
/// of the bad bytes, with a warning. Prints who received each line unless
/// --quiet; --json prints one object per line sent. With a `join` of the
/// same server and name running, the message goes through that session.
#[derive(Debug, Args)]
pub struct SayArgs {
    /// The message; words are joined with spaces. `-` or none: read stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<OsString>,

    #[command(flatten)]
    pub lines: LineArgs,

    #[command(flatten)]
    pub reconnect: ReconnectArgs,
}

pub fn run(args: SayArgs, global: &Global) -> anyhow::Result<()> {
    let g = global.clone();
    match words(&args.text) {
        Some(text) => {
            args.lines.check(&text)?;
            let reconnect = Some((&args.reconnect, "say"));
            one_shot_with(
                global,
                reconnect,
                |link| async move { report(&g, &link.broadcast(&text).await.map_err(fail)?) },
            )
        }
        None => stream(&args, global),
    }
}

/// `say` reading standard input: through [`forward`] when joined by itself
/// (the connection watched, --reconnect), line by line through a shared
/// session. Nothing is joined before the first line to send.
fn stream(args: &SayArgs, g: &Global) -> anyhow::Result<()> {
    let name = name(g)?;
    let refused = Refused::default();
    let r = block_on(async {
        let mut ctrl_c = crate::common::CtrlC::new()?;
        let mut lines = stdin_lines(&args.lines, &refused);
        let first = tokio::select! {
            biased;
            _ = ctrl_c.pressed() => return Err(anyhow::Error::new(Exit::Interrupted)),
            l = lines.recv() => l,
        };
        let Some(first) = first else {
            if !g.quiet {
                note("chatctl say: nothing to send (no input)");
            }
            return Ok(());
        };
        let mut rejoin = args.reconnect.rejoin(g, &name);
        let patience = rejoin.as_mut().map(|r| (&mut r.backoff, "say"));
        let joined = match reach_unless(g, &name, patience, ctrl_c.pressed()).await? {
            Reach::Own(s, u) => (std::sync::Arc::new(s), u),
            Reach::Shared(c) => {
                let link = chatctl::client::control::Link::Shared(c);
                let send = |text: String| {
                    let link = &link;
                    async move { report(g, &link.broadcast(&text).await.map_err(fail)?) }
                };
                return tokio::select! {
                    biased;
                    _ = ctrl_c.pressed() => Err(anyhow::Error::new(Exit::Interrupted)),
                    r = async {
                        send(first).await?;
                        while let Some(l) = lines.recv().await {
                            send(l).await?;
                        }
                        anyhow::Ok(())
                    } => r,
                };
            }
        };
        // The first line goes first, then the rest as they come.
        let (tx, rest) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(first);
        tokio::spawn(async move {
            while let Some(l) = lines.recv().await {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let (session, r) = forward(
            joined,
            rejoin,
            DEFAULT_BACKLOG,
            rest,
            |session, line| async move { session.broadcast(&line).await },
            |sent| report(g, &sent),
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
    });
    r.and_then(|()| refused.result())
}

/// One receipt per line sent: who received it (the first message's
/// recipients) and, for a line split in several messages, how many.
fn report(g: &Global, sent: &[(String, Vec<String>)]) -> anyhow::Result<()> {
    let Some((_, to)) = sent.first() else { return Ok(()) };
    let text: String = sent.iter().map(|(piece, _)| piece.as_str()).collect();
    if g.json {
        receipt(serde_json::json!({ "text": text, "to": to, "messages": sent.len() }))?;
    } else if !g.quiet {
        let parts = if sent.len() > 1 { format!(" ({} messages)", sent.len()) } else { String::new() };
        if to.is_empty() {
            receipt(format_args!("sent to nobody (the room is empty){parts}"))?;
        } else {
            let names: Vec<String> = to.iter().map(|n| escape(n).into_owned()).collect();
            receipt(format_args!("sent to {}{parts}", names.join(", ")))?;
        }
    }
    Ok(())
}
