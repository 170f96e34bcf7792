//! Helpers common to the client subcommands: the name, joining, leaving on
//! every path (also Ctrl-C), exit codes, terminal pickers and safe printing
//! of network text.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use chatctl::client::control::{self, Link};
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
        _ if matches!(e, ClientError::Resolve { .. }) => ": check the host name in --server (or CHATCTL_SERVER)",
        Exit::Connect => ": is `chatctl serve` running there? (--server or CHATCTL_SERVER)",
        Exit::NameTaken => ": choose another with --name or CHATCTL_NAME",
        Exit::InvalidName => ": choose another with --name or CHATCTL_NAME",
        Exit::ServerFull => ": try again later",
        Exit::Timeout => " (--timeout waits longer)",
        Exit::ServerGone => " (it shut down, or the connection was lost)",
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
        return ask_name(login.unwrap_or_else(|| "guest".into()));
    }
    login.context("no name: use --name or CHATCTL_NAME (USER and LOGNAME are not set either)")
}

/// Asks a name on the terminal, offering `default` (Enter takes it). An
/// answer that cannot be a name is asked again with the reason; Ctrl-C is
/// [`Exit::Interrupted`].
pub fn ask_name(default: String) -> anyhow::Result<String> {
    let _terminal = TerminalGuard::new();
    dialoguer::Input::<String>::new()
        .with_prompt("Your name")
        .default(default)
        .allow_empty(true)
        .validate_with(|n: &String| {
            let len = n.trim().chars().count();
            if (2..=99).contains(&len) { Ok(()) } else { Err("a name has 2 to 99 characters") }
        })
        .interact_text()
        .map(|n| n.trim().to_string())
        .map_err(dialog_error)
        .context("cannot read your name from the terminal")
}

/// A dialoguer error; Ctrl-C in a picker (which reads the terminal raw, so it
/// is a key, not a signal) becomes [`Exit::Interrupted`].
pub fn dialog_error(e: dialoguer::Error) -> anyhow::Error {
    let dialoguer::Error::IO(io) = e;
    if io.kind() == std::io::ErrorKind::Interrupted {
        // console raised SIGINT before returning this error: see [`CtrlC::after_key`].
        RAISED_SIGINT.store(true, std::sync::atomic::Ordering::SeqCst);
        anyhow::Error::new(Exit::Interrupted)
    } else {
        anyhow::Error::new(io)
    }
}

/// Set when a picker read Ctrl-C as a key. console then raises SIGINT
/// itself, and that signal reaches the command's Ctrl-C stream after the
/// picker's error, perhaps only once leaving has begun.
static RAISED_SIGINT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ctrl-C over a whole command, as one SIGINT stream, so that each press
/// counts once: the press that ends the work is not also the "second
/// Ctrl-C" that stops waiting for the leave, even when it came as a
/// picker's key and its signal arrives late.
pub struct CtrlC {
    sigint: tokio::signal::unix::Signal,
    /// A signal still to come that belongs to a press already counted.
    owed: bool,
}

impl CtrlC {
    /// Starts listening (inside the runtime).
    pub fn new() -> anyhow::Result<CtrlC> {
        let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot listen for Ctrl-C")?;
        Ok(CtrlC { sigint, owed: false })
    }

    /// Completes at the next press not yet counted. Cancel-safe.
    pub async fn pressed(&mut self) {
        if self.owed {
            self.sigint.recv().await;
            self.owed = false;
        }
        self.sigint.recv().await;
    }

    /// The work ended by itself (not by [`pressed`](Self::pressed)): if a
    /// picker's Ctrl-C key ended it, the SIGINT console raised with it is
    /// still to come, and is that same press.
    pub fn after_key(&mut self) {
        self.owed = RAISED_SIGINT.swap(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The terminal as it was before a prompt took it (raw mode, hidden cursor),
/// put back by [`restore_terminal`].
static SAVED_TERMINAL: std::sync::Mutex<Option<libc::termios>> = std::sync::Mutex::new(None);

/// Holds the terminal for a prompt: its settings are saved first, and put
/// back (cursor shown) when the guard is dropped, also by an error or a
/// panic. `main` calls [`restore_terminal`] too, for a prompt abandoned on
/// its thread (SIGINT ends the command while the picker still reads).
pub struct TerminalGuard(());

impl TerminalGuard {
    pub fn new() -> TerminalGuard {
        // SAFETY: `tcgetattr` fills the termios we own; on failure (not a terminal) nothing is saved.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } == 0
            && let Ok(mut saved) = SAVED_TERMINAL.lock()
        {
            saved.get_or_insert(t);
        }
        TerminalGuard(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Puts the terminal back as a prompt found it (settings, cursor shown), if
/// a prompt took it; does nothing otherwise.
pub fn restore_terminal() {
    let saved = SAVED_TERMINAL.lock().map(|mut s| s.take()).unwrap_or_else(|p| p.into_inner().take());
    if let Some(t) = saved {
        // SAFETY: `t` is a termios `tcgetattr` filled for this descriptor.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) };
        let _ = console::Term::stderr().show_cursor();
    }
}

/// A picker left with Esc or `q`: the command stops, as with Ctrl-C.
fn cancelled() -> anyhow::Error {
    anyhow::anyhow!("cancelled").context(Exit::Interrupted)
}

/// Asks the person to pick one of `items` (shown escaped) on the terminal;
/// Esc or `q` cancels. Runs on a blocking thread so the session (and
/// Ctrl-C) keeps being served.
pub async fn pick_one(prompt: &str, items: &[String]) -> anyhow::Result<usize> {
    let shown: Vec<String> = items.iter().map(|i| escape(i).into_owned()).collect();
    let prompt = format!("{prompt} (Esc cancels)");
    tokio::task::spawn_blocking(move || {
        let _terminal = TerminalGuard::new();
        dialoguer::Select::new().with_prompt(prompt).items(&shown).default(0).interact_opt().map_err(dialog_error)
    })
    .await
    .context("the picker failed")?
    .context("cannot read the choice from the terminal")?
    .ok_or_else(cancelled)
}

/// Asks the person to pick any number of `items` on the terminal; Esc or `q` cancels.
pub async fn pick_many(prompt: &str, items: &[String]) -> anyhow::Result<Vec<usize>> {
    let shown: Vec<String> = items.iter().map(|i| escape(i).into_owned()).collect();
    let prompt = prompt.to_string();
    tokio::task::spawn_blocking(move || {
        let _terminal = TerminalGuard::new();
        dialoguer::MultiSelect::new().with_prompt(prompt).items(&shown).interact_opt().map_err(dialog_error)
    })
    .await
    .context("the picker failed")?
    .context("cannot read the choice from the terminal")?
    .ok_or_else(cancelled)
}

/// How a one-shot command reaches the room: through a live shared session
/// (`join` with the same server and name), or joined by itself.
pub enum Reach {
    /// A running `join`'s socket.
    Shared(control::Client),
    /// Joined by this command.
    Own(Session, Updates),
}

/// Goes through the live shared session for this server and name if one
/// runs, else joins. A session folder that is not private is skipped (with
/// a warning): the command then joins by itself.
///
/// With `patience` (`--reconnect`: its backoff and the command's name for
/// the report), a server that is not up yet is waited for, one line per
/// failed attempt on stderr.
pub async fn reach(
    g: &Global,
    name: &str,
    patience: Option<(&mut chatctl::client::reconnect::Backoff, &str)>,
) -> anyhow::Result<Reach> {
    let addr = chatctl::client::resolve(&g.server).await.map_err(fail)?;
    match control::runtime_dir() {
        Ok(dir) => match control::Client::connect(&dir, addr, name, g.timeout).await {
            Ok(Some(c)) => return Ok(Reach::Shared(c)),
            Ok(None) => {}
            Err(e) => tracing::warn!("{:#}", anyhow::Error::new(e)),
        },
        Err(e) => tracing::warn!("{:#}", anyhow::Error::new(e)),
    }
    let joined = match patience {
        Some((backoff, cmd)) => {
            let report = |a: &_| report_reconnect(cmd, g.json, &chatctl::client::forward::Event::Attempt(a));
            chatctl::client::reconnect::first_join(&g.server, name, g.timeout, backoff, report).await
        }
        None => Session::join(&g.server, name, g.timeout).await,
    };
    let (session, updates) = joined.map_err(fail)?;
    Ok(Reach::Own(session, updates))
}

/// [`reach`], unless `ctrl_c` comes first ([`Exit::Interrupted`]).
pub async fn reach_unless(
    g: &Global,
    name: &str,
    patience: Option<(&mut chatctl::client::reconnect::Backoff, &str)>,
    ctrl_c: impl Future,
) -> anyhow::Result<Reach> {
    // `biased`: the Ctrl-C handler is installed (first poll) before any other work.
    tokio::select! {
        biased;
        _ = ctrl_c => Err(anyhow::Error::new(Exit::Interrupted)),
        r = reach(g, name, patience) => r,
    }
}

/// Joins (or reaches a shared session), runs `body`, then leaves with `101`
/// whatever happened, also on Ctrl-C (which then exits with
/// [`Exit::Interrupted`]). Ctrl-C while joining drops the half-open
/// connection, which the server treats as a leave. A server that goes away
/// meanwhile ends the command at once ([`Exit::ServerGone`]), even while it
/// waits for standard input.
pub fn one_shot<F, Fut>(g: &Global, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Link>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    one_shot_with(g, None, body)
}

/// [`one_shot`], waiting for a server not up yet per `reconnect`
/// (`say TEXT --reconnect`); `cmd` names the command in the attempt lines.
pub fn one_shot_with<F, Fut>(g: &Global, reconnect: Option<(&ReconnectArgs, &str)>, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Link>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let name = name(g)?;
    let mut rejoin = reconnect.and_then(|(r, cmd)| Some((r.rejoin(g, &name)?, cmd)));
    block_on(async {
        let mut ctrl_c = CtrlC::new()?;
        let patience = rejoin.as_mut().map(|(r, cmd)| (&mut r.backoff, *cmd));
        let (link, updates) = match reach_unless(g, &name, patience, ctrl_c.pressed()).await? {
            Reach::Shared(c) => (Arc::new(Link::Shared(c)), None),
            Reach::Own(s, u) => (Arc::new(Link::Own(s)), Some(u)),
        };
        let r = tokio::select! {
            biased;
            _ = ctrl_c.pressed() => Err(anyhow::Error::new(Exit::Interrupted)),
            // One-shot commands ignore updates; their end means the server went away.
            e = gone(updates) => return Err(fail(e)),
            r = body(link.clone()) => {
                ctrl_c.after_key();
                r
            }
        };
        let left = leave(link.leave(), &mut ctrl_c).await;
        r.and(left)
    })
}

/// Completes when the update connection ends (never without one), with the
/// error that ended it.
async fn gone(updates: Option<Updates>) -> ClientError {
    match updates {
        Some(mut updates) => updates.closed().await,
        None => std::future::pending().await,
    }
}

/// Leaves the room (`101`, bounded by --timeout); a Ctrl-C not yet counted
/// (a second one, after the one that ended the command) stops waiting.
pub async fn leave(leaving: impl Future<Output = Result<(), ClientError>>, ctrl_c: &mut CtrlC) -> anyhow::Result<()> {
    tokio::select! {
        r = leaving => r.map_err(fail).context("leaving the room"),
        _ = ctrl_c.pressed() => Err(anyhow::Error::new(Exit::Interrupted).context("gave up leaving the room")),
    }
}

/// Prints one line on standard output. Unlike `println!`, a closed pipe
/// (`chatctl list | head -1`) is an error to return (main exits quietly after
/// leaving the room), not a panic.
pub fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).context("cannot write to standard output")
}

/// Like [`out`], for a command whose job is sending (`say`, `whisper`): a
/// reader that went away (`seq 1 3 | chatctl say | head -1`) does not stop
/// the sending. Other write errors do.
pub fn receipt(line: impl std::fmt::Display) -> anyhow::Result<()> {
    match out(line) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

/// True when `err` comes from writing to a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|e| e.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Writes one line on standard error, ignoring a closed one (`2>&1 | head`):
/// use this, not `eprintln!`, which panics there.
pub fn note(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The longest line `say`, `whisper` and `join` send, unless --max-line.
pub const DEFAULT_MAX_LINE: u64 = 1000;

/// How long lines are handled, for `say`, `whisper` and `join`.
#[derive(Debug, Clone, clap::Args)]
pub struct LineArgs {
    /// The longest line sent, in characters. A line up to 99 characters is
    /// one message; a longer one goes out as several 99-character messages
    /// (one receipt line for all); a line over N is not sent: an error names
    /// it (from standard input, the other lines still go, and the exit code
    /// is 1 at the end).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LINE, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_line: u64,
}

impl LineArgs {
    /// `text`, or why it is not sent: blank, or over --max-line.
    pub fn check(&self, text: &str) -> anyhow::Result<()> {
        if text.trim().is_empty() {
            return Err(anyhow::anyhow!("nothing to send: the message is empty").context(Exit::Usage));
        }
        let n = text.chars().count();
        if n as u64 > self.max_line {
            let why = format!("the message has {n} characters, over --max-line {}: not sent", self.max_line);
            return Err(anyhow::anyhow!(why).context(Exit::Usage));
        }
        Ok(())
    }
}

/// Joins command-line words into one text; `None` means "read stdin". Words
/// that are not UTF-8 are sent with U+FFFD in place of the bad bytes, with a
/// warning (as lines of standard input are).
pub fn words(text: &[std::ffi::OsString]) -> Option<String> {
    if text.is_empty() || (text.len() == 1 && text[0] == "-") {
        return None;
    }
    let words: Vec<String> = text.iter().map(|w| w.to_string_lossy().into_owned()).collect();
    if text.iter().any(|w| w.to_str().is_none()) {
        note("chatctl: warning: the message is not valid UTF-8; the bad bytes are sent as U+FFFD");
    }
    Some(words.join(" "))
}

/// Lines of standard input that were not sent (over --max-line), so the
/// command can end with exit code 1.
#[derive(Debug, Clone, Default)]
pub struct Refused(Arc<std::sync::atomic::AtomicU64>);

impl Refused {
    /// `Ok` when every line was sent, else the count as an error (exit 1).
    pub fn result(&self) -> anyhow::Result<()> {
        match self.0.load(std::sync::atomic::Ordering::SeqCst) {
            0 => Ok(()),
            n => Err(anyhow::anyhow!("{n} line(s) over --max-line were not sent")),
        }
    }
}

/// Sends each line of standard input with `send` as soon as it arrives (not
/// when input ends), so `tail -f app.log | chatctl say` works for hours. A
/// trailing CR (Windows line ends) is dropped; blank lines are skipped (never
/// sent); bytes that are not UTF-8 are replaced (U+FFFD, with a warning
/// naming the line) rather than ending the stream; a line over
/// `limits.max_line` is not sent (an error names it) and counted in `refused`.
pub async fn each_stdin_line<F, Fut>(limits: &LineArgs, refused: &Refused, mut send: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use tokio::io::AsyncBufReadExt;
    if std::io::stdin().is_terminal() {
        note("type the message and press Enter to send it (Ctrl-D when done)");
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        if stdin.read_until(b'\n', &mut buf).await.context("cannot read standard input")? == 0 {
            return Ok(());
        }
        number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let line = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(l) => l,
            Err(e) => {
                note(format_args!(
                    "chatctl: warning: line {number} is not valid UTF-8; the bad bytes are sent as U+FFFD"
                ));
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let n = line.chars().count();
        if n as u64 > limits.max_line {
            note(format_args!(
                "chatctl: line {number} has {n} characters, over --max-line {}: not sent",
                limits.max_line
            ));
            refused.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            continue;
        }
        send(line).await?;
    }
}

/// Standard input's lines (as [`each_stdin_line`] reads them) on a channel
/// that closes at the end of input, read by a task of their own so that the
/// connection is watched while no line comes.
pub fn stdin_lines(limits: &LineArgs, refused: &Refused) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (limits, refused) = (limits.clone(), refused.clone());
    tokio::spawn(async move {
        let r = each_stdin_line(&limits, &refused, |l| {
            let sent = tx.send(l);
            async move { sent.map_err(|_| anyhow::anyhow!("nobody reads the lines any more")) }
        })
        .await;
        if let Err(e) = r {
            tracing::warn!("{e:#}");
        }
    });
    rx
}

/// `--reconnect` and its limits, for `say` and `join`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconnectArgs {
    /// When the server goes away, join again with the same name (exponential
    /// backoff with jitter; one line per attempt on stderr) and send the
    /// lines read meanwhile, in order (at most 10,000 wait; past that the
    /// oldest are dropped and counted). A line whose confirmation was lost
    /// is sent again. Ctrl-C ends it at once. Without it, a server that goes
    /// away ends the command at once (exit 12).
    #[arg(long)]
    pub reconnect: bool,

    /// The longest wait between two --reconnect attempts.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, requires = "reconnect")]
    pub reconnect_max: std::time::Duration,
}

impl ReconnectArgs {
    /// What `forward` needs to rejoin, when --reconnect is on. The first
    /// delay is 100 ms; the jitter is seeded from the clock and the process id.
    pub fn rejoin(&self, g: &Global, name: &str) -> Option<chatctl::client::forward::Rejoin> {
        use chatctl::client::reconnect::Backoff;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        let initial = std::time::Duration::from_millis(100);
        self.reconnect.then(|| chatctl::client::forward::Rejoin {
            server: g.server.clone(),
            name: name.to_string(),
            timeout: g.timeout,
            backoff: Backoff::new(initial, self.reconnect_max, seed),
        })
    }
}

/// One stderr line (a JSON object with --json) about a lost server and the
/// way back.
pub fn report_reconnect(cmd: &str, json: bool, event: &chatctl::client::forward::Event<'_>) {
    note(reconnect_line(cmd, json, event));
}

/// The line [`report_reconnect`] prints.
pub fn reconnect_line(cmd: &str, json: bool, event: &chatctl::client::forward::Event<'_>) -> String {
    use chatctl::client::forward::Event;
    match (event, json) {
        (Event::Lost(e), true) => {
            serde_json::json!({ "kind": "reconnect", "event": "lost", "error": chatctl::client::error_chain(*e) })
                .to_string()
        }
        (Event::Lost(e), false) => {
            format!("chatctl {cmd}: lost the server ({}); reconnecting", escape(&chatctl::client::error_chain(*e)))
        }
        (Event::Attempt(a), true) => {
            let mut v = serde_json::to_value(a).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("kind".into(), "reconnect".into());
                o.insert("event".into(), "attempt".into());
            }
            v.to_string()
        }
        (Event::Attempt(a), false) => format!(
            "chatctl {cmd}: reconnect attempt {} failed: {}; next in {}",
            a.attempt,
            escape(&a.error),
            humantime::format_duration(std::time::Duration::from_millis(a.retry_in.as_millis() as u64))
        ),
        (Event::Back { waiting, dropped }, true) => {
            serde_json::json!({ "kind": "reconnect", "event": "back", "waiting": waiting, "dropped": dropped })
                .to_string()
        }
        (Event::Back { waiting, dropped }, false) => {
            let lost =
                if *dropped > 0 { format!(" ({dropped} oldest dropped: the backlog was full)") } else { String::new() };
            format!("chatctl {cmd}: back in the room; sending {waiting} waiting line(s){lost}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A picker's Ctrl-C key raises SIGINT as well: that signal, arriving
    /// after the picker's error, is the same press, so leaving is not cut
    /// short by it; a second press still stops the wait. (The only test in
    /// this binary that touches SIGINT; the handler is installed before the
    /// first raise, so the test process is not killed.)
    #[test]
    fn a_pickers_ctrl_c_counts_once() {
        let rt = runtime().unwrap();
        rt.block_on(async {
            let mut ctrl_c = CtrlC::new().unwrap();
            // What `dialog_error` records, then the signal console raises.
            let _ = dialog_error(dialoguer::Error::IO(std::io::ErrorKind::Interrupted.into()));
            ctrl_c.after_key();
            // SAFETY: tokio's SIGINT handler is installed (CtrlC::new).
            unsafe { libc::raise(libc::SIGINT) };
            let first = tokio::time::timeout(Duration::from_millis(300), ctrl_c.pressed()).await;
            assert!(first.is_err(), "the picker's own SIGINT counted as a second Ctrl-C");
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGINT) };
            let second = tokio::time::timeout(Duration::from_secs(5), ctrl_c.pressed()).await;
            assert!(second.is_ok(), "a second Ctrl-C was not seen");
        });
        rt.shutdown_background();
    }
}
