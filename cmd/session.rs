//! Shared helpers of the client subcommands: the name, joining, leaving on
//! every path (also Ctrl-C), exit codes and safe printing of network text.

use std::future::Future;
use std::io::IsTerminal;

use anyhow::Context;
use chatctl::client::{ClientError, Session, Updates};
use chatctl::exit::Exit;

use crate::cli::Global;

/// A tokio runtime for one subcommand.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Turns a client error into an anyhow error carrying its exit code. The
/// [`Exit`] is the root of the chain, so it is still found under more context.
pub fn fail(e: ClientError) -> anyhow::Error {
    let exit = e.exit();
    let msg = format!("{:#}", anyhow::Error::new(e));
    anyhow::Error::new(exit).context(msg)
}

/// The name to join with: `--name`/`CHATCTL_NAME`, else asked on a TTY, else the login name.
pub fn name(g: &Global) -> anyhow::Result<String> {
    if let Some(n) = &g.name {
        return Ok(n.clone());
    }
    let login = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "chatctl".into());
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let n: String = dialoguer::Input::new()
            .with_prompt("Your name")
            .default(login)
            .interact_text()
            .context("cannot read the name from the terminal")?;
        return Ok(n);
    }
    Ok(login)
}

/// Joins, runs `body`, then leaves with `101` whatever happened, also on
/// Ctrl-C (which then exits with [`Exit::Interrupted`]).
pub fn one_shot<F, Fut>(g: &Global, body: F) -> anyhow::Result<()>
where
    F: FnOnce(std::sync::Arc<Session>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let name = name(g)?;
    let rt = runtime()?;
    rt.block_on(async {
        let (session, updates) = Session::join(&g.server, &name, g.timeout).await.map_err(fail)?;
        let session = std::sync::Arc::new(session);
        // One-shot commands ignore updates; drain them so `say` can run for hours.
        tokio::spawn(drain(updates));
        let r = tokio::select! {
            r = body(session.clone()) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Exit::Interrupted)),
        };
        let left = session.leave().await.map_err(fail).context("leaving the room");
        r.and(left)
    })
}

async fn drain(mut updates: Updates) {
    while updates.next().await.is_some() {}
}

/// Network text made safe for a terminal: control characters are shown escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Joins command-line words into one text; `None` means "read stdin".
pub fn words(text: &[String]) -> Option<String> {
    if text.is_empty() || (text.len() == 1 && text[0] == "-") { None } else { Some(text.join(" ")) }
}
