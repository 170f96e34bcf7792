//! Shared sessions on the command line: a `join` offers its session on a
//! private socket, `join --detach` runs one in the background, `join --stop`
//! ends it. The protocol and the host are in `chatctl::client::control`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::Context;
use chatctl::client::control::{self, Host};
use chatctl::client::forward::{Stop, forward};
use chatctl::client::{Session, resolve};
use chatctl::exit::Exit;
use tokio::sync::{mpsc, watch};

use crate::cli::Global;
use crate::common::{ReconnectArgs, block_on, escape, fail, leave, name, report_reconnect};

/// What the background process prints on its standard output once it
/// serves (the parent of `--detach` waits for it).
const READY: &str = "ready";

/// Offers `session` to one-shot commands on its socket. Without a usable
/// session folder (or with another live session there) `join` goes on
/// unshared, with a warning.
pub async fn offer(
    session: &Session,
    current: watch::Receiver<Option<Arc<Session>>>,
    stop: mpsc::UnboundedSender<()>,
) -> Option<Host> {
    match bind(session).await {
        Ok(mut host) => {
            host.serve(current, stop);
            Some(host)
        }
        Err(e) => {
            tracing::warn!("this session is not shared with one-shot commands: {e:#}");
            None
        }
    }
}

async fn bind(session: &Session) -> anyhow::Result<Host> {
    let dir = control::runtime_dir()?;
    Ok(Host::bind(&dir, session.server(), session.name()).await?)
}

/// The running session of this user for `g`'s server and `name`, if one
/// runs: its process id (when known).
pub async fn running(g: &Global, name: &str) -> Option<Option<i32>> {
    let addr = resolve(&g.server).await.ok()?;
    let dir = control::runtime_dir().ok()?;
    let client = control::Client::connect(&dir, addr, name, g.timeout).await.ok()??;
    Some(client.pid())
}

/// What to say about a session of one's own that already holds `name`.
pub fn already_runs(g: &Global, name: &str, pid: Option<i32>) -> String {
    let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let who = escape(name);
    let server = &g.server;
    format!(
        "your session of {who} on {server} runs already{pid}: `chatctl -s {server} -n {who} say|whisper|list|fetch` \
         go through it; `chatctl -s {server} -n {who} join --stop` ends it"
    )
}

/// `join --stop`: asks the session for this server and name to leave, and
/// waits until it has.
pub fn stop(g: &Global) -> anyhow::Result<()> {
    let name = name(g)?;
    block_on(async {
        let addr = resolve(&g.server).await.map_err(fail)?;
        let dir = control::runtime_dir()?;
        let Some(client) = control::Client::connect(&dir, addr, &name, g.timeout).await? else {
            return Err(anyhow::anyhow!("no session of {} at {addr} is running", escape(&name)));
        };
        client.stop().await.map_err(fail).context("stopping the session")
    })
}

/// Set (to anything) in the environment of the background process that
/// `join --detach` starts: that `join` hosts the session. Internal.
pub const HOST_ENV: &str = "CHATCTL_SESSION_HOST";

/// `join --detach`: starts this binary again as the session's background
/// process (its own session id, no terminal), and returns once it has
/// joined and listens, or with its error and exit code.
pub fn detach(g: &Global) -> anyhow::Result<()> {
    let name = name(g)?;
    // Already there: as `systemctl start` of a running unit, nothing to do.
    if let Some(pid) = block_on(async { Ok(running(g, &name).await) })? {
        if !g.quiet {
            crate::common::note(format_args!("chatctl join: {}", already_runs(g, &name, pid)));
        }
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the chatctl binary to start in the background")?;
    let args = std::env::args_os().skip(1).filter(|a| a != "--detach");
    let mut cmd = Command::new(exe);
    cmd.args(args)
        // The same `join`, told by the environment (not a flag, which
        // completions would offer) that it is the background process.
        .env(HOST_ENV, "1")
        // The name asked on the terminal (if it was) goes along.
        .env("CHATCTL_NAME", &name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe and touches only the new child.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the background session")?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut first = String::new();
    let _ = stdout.read_line(&mut first);
    if first.trim_end() == READY {
        if !g.quiet {
            crate::common::note(format_args!(
                "chatctl join: the session of {} runs in the background (pid {}); `chatctl join --stop` with the \
                 same server and name ends it",
                escape(&name),
                child.id()
            ));
        }
        return Ok(());
    }
    let mut err = String::new();
    let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
    let status = child.wait().context("the background session")?;
    let exit = status.code().and_then(|c| u8::try_from(c).ok()).and_then(Exit::from_code).unwrap_or(Exit::Failure);
    // Its message already starts with `chatctl join: `.
    let msg = err.trim().strip_prefix("chatctl join: ").unwrap_or(err.trim()).to_string();
    Err(anyhow::Error::new(exit).context(format!("the background session did not start: {msg}")))
}

/// The background process of `--detach`: joins, offers the session, says
/// it is ready, and then only keeps the session (rejoining with
/// --reconnect) until `join --stop`, SIGTERM or SIGINT. Its later messages
/// go to a log beside its socket.
pub fn host(reconnect: &ReconnectArgs, g: &Global) -> anyhow::Result<()> {
    let name = name(g)?;
    block_on(async {
        // With --reconnect, a server that is not up yet is waited for (as
        // for `join` and `say`): `--detach` returns once in the room.
        let joined = match reconnect.rejoin(g, &name) {
            Some(mut r) => {
                let report = |a: &_| report_reconnect("join", g.json, &chatctl::client::forward::Event::Attempt(a));
                let first = chatctl::client::reconnect::first_join(&g.server, &name, g.timeout, &mut r.backoff, report);
                tokio::select! {
                    j = first => j,
                    () = parent_gone() => {
                        return Err(anyhow::anyhow!("the `join --detach` that started this session is gone"));
                    }
                }
            }
            None => Session::join(&g.server, &name, g.timeout).await,
        };
        let (session, updates) = joined.map_err(fail)?;
        let session = Arc::new(session);
        let (current, current_rx) = watch::channel(Some(session.clone()));
        let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
        let mut host = bind(&session).await?;
        host.serve(current_rx, stop_tx);
        log_to(&host.path().with_extension("log"))?;
        // The parent waits for this line; gone (Ctrl-C on it while this
        // waited for the server), nobody asked for the session any more.
        {
            use std::io::Write;
            if writeln!(std::io::stdout().lock(), "{READY}").is_err() {
                let _ = session.leave().await;
                return Err(anyhow::anyhow!("the `join --detach` that started this session is gone"));
            }
        }
        // Standard output is the parent's pipe: from now on it goes to the log too.
        // SAFETY: dup2 between two standard descriptors of our own process.
        if unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot redirect to the session log");
        }
        // Requests come through the socket; no lines of our own (the sender stays).
        let (_lines_tx, lines) = mpsc::unbounded_channel::<String>();
        let mut ctrl_c = crate::common::CtrlC::new()?;
        let stopped = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = ctrl_c.pressed() => {}
                Some(()) = stop_rx.recv() => {}
                Some(()) = async { term.as_mut()?.recv().await } => {}
            }
        };
        let (last, r) = forward(
            (session, updates),
            reconnect.rejoin(g, &name),
            1,
            lines,
            |s: Arc<Session>, l: String| async move { s.broadcast(&l).await },
            |_| anyhow::Ok(()),
            |e| report_reconnect("join", g.json, &e),
            &current,
            stopped,
        )
        .await;
        let left = match last {
            Some(s) => leave(s.leave(), &mut ctrl_c).await,
            None => Ok(()),
        };
        drop(host);
        match r {
            Ok(()) | Err(Stop::Interrupted) => left,
            Err(Stop::Client(e)) => Err(fail(e)),
            Err(Stop::Sink(e)) => Err(e),
        }
    })
}

/// Completes once the `join --detach` waiting for this session's first
/// line has gone (Ctrl-C on it): its end of the standard output pipe is
/// closed, which `poll` reports as an error on ours.
async fn parent_gone() {
    loop {
        let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: 0, revents: 0 };
        // SAFETY: one valid pollfd, no waiting.
        let n = unsafe { libc::poll(&mut fd, 1, 0) };
        if n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Sends standard error to `log` (owner-only, emptied first: one session's messages).
fn log_to(log: &std::path::Path) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(log)
        .with_context(|| format!("cannot open the session log {}", log.display()))?;
    // SAFETY: dup2 onto a standard descriptor of our own process; `f` stays valid during the call.
    if unsafe { libc::dup2(f.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot redirect to the session log");
    }
    Ok(())
}
