//! Shared helpers of the client subcommands: the name, joining, leaving on
//! every path (also Ctrl-C), exit codes, terminal pickers and safe printing
//! of network text.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use chatctl::client::{ClientError, Session, Updates};
use chatctl::exit::Exit;

use crate::cli::Global;

pub use chatctl::client::escape;

/// A tokio runtime for one subcommand.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs `fut` to completion on a fresh runtime, then shuts the runtime down
/// without waiting for blocking reads: a read of standard input (which tokio
/// does on a blocking thread) may never end, and must not keep the process
/// alive after Ctrl-C or `/quit`.
pub fn block_on<T>(fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let rt = runtime()?;
    let r = rt.block_on(fut);
    rt.shutdown_background();
    r
}

/// Turns a client error into an anyhow error carrying its exit code, with a
/// hint of what to do about it. The [`Exit`] is the root of the chain, so it
/// is still found under more context.
pub fn fail(e: ClientError) -> anyhow::Error {
    let exit = e.exit();
    let hint = match exit {
        _ if matches!(e, ClientError::NotChatServer { .. }) => {
            ": is --server (or CHATCTL_SERVER) the chat server's address?"
        }
        Exit::Connect => ": is `chatctl serve` running there? (--server or CHATCTL_SERVER)",
        Exit::NameTaken => ": choose another with --name or CHATCTL_NAME",
        Exit::InvalidName => ": choose another with --name or CHATCTL_NAME",
        Exit::ServerFull => ": try again later",
        Exit::Timeout => " (--timeout waits longer)",
        _ => "",
    };
    let msg = format!("{:#}{hint}", anyhow::Error::new(e));
    anyhow::Error::new(exit).context(msg)
}

/// True when a person can be asked: standard input and standard error are
/// both terminals (standard output may be a pipe, e.g. `chatctl fetch | tee`).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The login name from the environment (`USER`, `LOGNAME`, `USERNAME`).
fn login_name() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"].iter().filter_map(|v| std::env::var(v).ok()).find(|n| !n.trim().is_empty())
}

/// The name to join with: `--name` or `CHATCTL_NAME` (clap reads both), else
/// asked on a terminal (the login name is the default answer), else the login name.
pub fn name(g: &Global) -> anyhow::Result<String> {
    if let Some(n) = &g.name {
        return Ok(n.clone());
    }
    let login = login_name();
    if interactive() {
        let mut input = dialoguer::Input::<String>::new().with_prompt("Your name").validate_with(|n: &String| {
            let len = n.chars().count();
            if (2..=99).contains(&len) { Ok(()) } else { Err("a name has 2 to 99 characters") }
        });
        if let Some(l) = &login {
            input = input.default(l.clone());
        }
        return input.interact_text().map_err(dialog_error).context("cannot read your name from the terminal");
    }
    login.context("no name: use --name or CHATCTL_NAME (USER and LOGNAME are not set either)")
}

/// A dialoguer error; Ctrl-C in a picker (which reads the terminal raw, so it
/// is a key, not a signal) becomes [`Exit::Interrupted`].
pub fn dialog_error(e: dialoguer::Error) -> anyhow::Error {
    let dialoguer::Error::IO(io) = e;
    if io.kind() == std::io::ErrorKind::Interrupted {
        anyhow::Error::new(Exit::Interrupted)
    } else {
        anyhow::Error::new(io)
    }
}

/// Asks the person to pick one of `items` (shown escaped) on the terminal.
/// Runs on a blocking thread so the session (and Ctrl-C) keeps being served.
pub async fn pick_one(prompt: &str, items: &[String]) -> anyhow::Result<usize> {
    let shown: Vec<String> = items.iter().map(|i| escape(i).into_owned()).collect();
    let prompt = prompt.to_string();
    tokio::task::spawn_blocking(move || {
        dialoguer::Select::new().with_prompt(prompt).items(&shown).default(0).interact().map_err(dialog_error)
    })
    .await
    .context("the picker failed")?
    .context("cannot read the choice from the terminal")
}

/// Asks the person to pick any number of `items` on the terminal.
pub async fn pick_many(prompt: &str, items: &[String]) -> anyhow::Result<Vec<usize>> {
    let shown: Vec<String> = items.iter().map(|i| escape(i).into_owned()).collect();
    let prompt = prompt.to_string();
    tokio::task::spawn_blocking(move || {
        dialoguer::MultiSelect::new().with_prompt(prompt).items(&shown).interact().map_err(dialog_error)
    })
    .await
    .context("the picker failed")?
    .context("cannot read the choice from the terminal")
}

/// Joins, runs `body`, then leaves with `101` whatever happened, also on
/// Ctrl-C (which then exits with [`Exit::Interrupted`]). Ctrl-C while joining
/// drops the half-open connection, which the server treats as a leave.
pub fn one_shot<F, Fut>(g: &Global, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Session>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let name = name(g)?;
    block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        // `biased`: the Ctrl-C handler is installed (first poll) before any other work.
        let (session, updates) = tokio::select! {
            biased;
            _ = &mut ctrl_c => return Err(anyhow::Error::new(Exit::Interrupted)),
            r = Session::join(&g.server, &name, g.timeout) => r.map_err(fail)?,
        };
        let session = Arc::new(session);
        // One-shot commands ignore updates; drain them so `say` can run for hours.
        tokio::spawn(drain(updates));
        let r = tokio::select! {
            biased;
            _ = &mut ctrl_c => Err(anyhow::Error::new(Exit::Interrupted)),
            r = body(session.clone()) => r,
        };
        let left = leave(&session).await;
        r.and(left)
    })
}

/// Leaves the room (`101`, bounded by --timeout); a second Ctrl-C stops waiting.
pub async fn leave(session: &Session) -> anyhow::Result<()> {
    tokio::select! {
        r = session.leave() => r.map_err(fail).context("leaving the room"),
        _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Exit::Interrupted).context("gave up leaving the room")),
    }
}

async fn drain(mut updates: Updates) {
    while updates.next().await.is_some() {}
}

/// Prints one line on standard output. Unlike `println!`, a closed pipe
/// (`chatctl list | head -1`) is an error to return (main exits quietly after
/// leaving the room), not a panic.
pub fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).context("cannot write to standard output")
}

/// Joins command-line words into one text; `None` means "read stdin".
pub fn words(text: &[String]) -> Option<String> {
    if text.is_empty() || (text.len() == 1 && text[0] == "-") { None } else { Some(text.join(" ")) }
}

/// Sends each line of standard input with `send` as soon as it arrives (not
/// when input ends), so `tail -f app.log | chatctl say` works for hours. A
/// trailing CR (Windows line ends) is dropped; bytes that are not UTF-8 are
/// replaced (U+FFFD) rather than ending the stream.
pub async fn each_stdin_line<F, Fut>(mut send: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use tokio::io::AsyncBufReadExt;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if stdin.read_until(b'\n', &mut buf).await.context("cannot read standard input")? == 0 {
            return Ok(());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        send(String::from_utf8_lossy(&buf).into_owned()).await?;
    }
}
