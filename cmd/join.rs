//! `chatctl join`: the interactive session.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chatctl::client::chat::{self, Chat, Kind, Screen};
use chatctl::client::forward::Event;
use chatctl::client::{ClientError, DownloadReport, Filter, Listen, Outcome, Session, Updates};
use chatctl::exit::Exit;
use chatctl::wire::Update;
use clap::Args;
use console::style;
use tokio::sync::{mpsc, watch};

use crate::cli::Global;
use crate::common::{LineArgs, ReconnectArgs, Refused};
use crate::common::{ask_name, block_on, each_stdin_line, escape, fail, name, note, reconnect_line, report_reconnect};

/// Join the room interactively.
///
/// On a terminal: a prompt with history; joining says who is here, and
/// incoming messages and status lines appear above the prompt, keeping what
/// is typed. Plain text goes to everyone; `@name text` or `/w name text` is
/// private; `/users` (you are marked), `/files`, `/get FILE [--tcp|--udp]
/// [--force]` (in the background; quote a name with spaces), `/help` (the
/// commands, one per line), `/quit`. Tab completes commands, names and
/// files, with a space after. Ctrl-C clears the line being typed; Ctrl-D or
/// `/quit` leaves (exit 0). Colour marks your prompt, private messages and
/// status lines (--color, NO_COLOR).
///
/// Not on a terminal: each stdin line is a message (same syntax) and each
/// update one output line (JSON with --json, each object with its `time`);
/// end of input leaves, Ctrl-C (SIGINT) leaves with exit 130, and a closed
/// standard output (`join | head -2`) leaves at the next update, exit 0.
/// Blank lines are never sent; long lines follow --max-line.
///
/// While it runs, one-shot `say`, `whisper`, `list` and `fetch` with the same
/// server and name go through this session (a private Unix socket) instead
/// of joining again. `--detach` runs such a session in the background,
/// `--stop` ends it; a `join` with the name of such a session of yours says
/// it runs (exit 5; `--detach` then has nothing to do, exit 0). A server
/// that goes away ends `join` at once (exit 12) unless --reconnect, which
/// also waits for a server not up yet.
///
/// Scripts can wait for something: `--count`, `--for` and the filters
/// `--from`, `--private`, `--match` print only the updates that match, and
/// end the session when the budget is spent (then the end of input no
/// longer leaves).
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Leave after N updates that match the filters.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Leave after DURATION (e.g. `30s`); exit 9 if nothing matched by then.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub for_: Option<std::time::Duration>,

    /// Only messages (private or public) from NAME.
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,

    /// Only private messages.
    #[arg(long)]
    pub private: bool,

    /// Only messages whose text matches REGEX (Rust regex syntax).
    #[arg(long = "match", value_name = "REGEX", value_parser = parse_regex)]
    pub pattern: Option<regex::Regex>,

    #[command(flatten)]
    pub lines: LineArgs,

    #[command(flatten)]
    pub reconnect: ReconnectArgs,

    /// Run the session in the background (for bots and scripts) and return
    /// once it has joined; one-shot commands with the same server and name
    /// go through it. `join --stop` ends it.
    #[arg(long, conflicts_with_all = ["stop", "count", "for_", "from", "private", "pattern"])]
    pub detach: bool,

    /// End the session a `join` (e.g. `join --detach`) runs for this server
    /// and name: it leaves the room, then this returns.
    #[arg(long, conflicts_with_all = ["reconnect", "count", "for_", "from", "private", "pattern"])]
    pub stop: bool,
}

fn parse_regex(s: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(s)
}

impl JoinArgs {
    /// The filters and budget, if any is set.
    fn listen(&self) -> Option<Listen> {
        let filter = Filter { from: self.from.clone(), private: self.private, pattern: self.pattern.clone() };
        let any = !filter.is_empty() || self.count.is_some() || self.for_.is_some();
        any.then(|| Listen::new(filter, self.count, self.for_, std::time::Instant::now()))
    }
}

/// Tab completion of commands (`/…`), file names (after `/get `) and user
/// names (`@…`, after `/w `, or any word).
struct Completer {
    names: Arc<Mutex<Vec<String>>>,
    files: Arc<Mutex<Vec<String>>>,
}

impl rustyline::completion::Completer for Completer {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let files = self.files.lock().map(|f| f.clone()).unwrap_or_default();
        Ok(chat::complete(&line[..pos], &names, &files))
    }
}

impl rustyline::hint::Hinter for Completer {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completer {
    /// The prompt in bold green where colour is on, so one's own lines stand out.
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> std::borrow::Cow<'b, str> {
        if console::colors_enabled() { style(prompt).green().bold().to_string().into() } else { prompt.into() }
    }
}
impl rustyline::validate::Validator for Completer {}
impl rustyline::Helper for Completer {}

/// Where lines go: stdout on a pipe, above the prompt on a terminal.
#[derive(Clone)]
struct Out {
    json: bool,
    printer: Option<Arc<Mutex<Box<dyn rustyline::ExternalPrinter + Send>>>>,
    /// Names for Tab completion, kept current from updates (terminal only).
    names: Option<Arc<Mutex<Vec<String>>>>,
    /// File names for Tab completion after `/get`, renewed by `/files` (terminal only).
    files: Option<Arc<Mutex<Vec<String>>>>,
    /// Notified when standard output is a pipe whose reader has gone: the session ends.
    closed: Arc<tokio::sync::Notify>,
}

impl Out {
    fn line(&self, s: String) {
        match &self.printer {
            Some(p) => {
                // Outside the editor's read, rustyline writes the text as is: end it with a newline
                // (inside, a text that ends with one gets no second).
                let _ = p.lock().map(|mut p| p.print(format!("{s}\n")));
            }
            // A reader that went away ends the session (never a panic).
            None => {
                if crate::common::out(s).is_err() {
                    self.closed.notify_one();
                }
            }
        }
    }

    /// One JSON object as a line, with the time it was printed (RFC 3339, UTC, milliseconds) as `time`.
    fn json_line(&self, mut v: serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            o.insert("time".into(), now.to_string().into());
        }
        self.line(v.to_string());
    }

    fn info(&self, kind: &str, text: String) {
        if self.json {
            self.json_line(serde_json::json!({ "kind": kind, "text": text }));
        } else if kind == "error" && self.printer.is_none() {
            // Plain pipe mode: stdout carries only the chat; problems go to stderr.
            note(format_args!("chatctl join: {text}"));
        } else {
            self.line(match kind {
                "error" => style(text).red().to_string(),
                "info" | "progress" => style(text).cyan().to_string(),
                _ => text,
            });
        }
    }

    fn update(&self, u: &Update) {
        if let Some(names) = &self.names
            && let Ok(mut names) = names.lock()
        {
            match u {
                Update::Joined { name } if !names.contains(name) => names.push(name.clone()),
                Update::Left { name } => names.retain(|n| n != name),
                _ => {}
            }
        }
        if self.json {
            self.json_line(serde_json::to_value(u).unwrap_or_default());
            return;
        }
        let time = style(clock()).dim();
        let s = match u {
            Update::Joined { name } => style(format!("* {} joined", escape(name))).green().to_string(),
            Update::Left { name } => style(format!("* {} left", escape(name))).yellow().to_string(),
            Update::Whisper { from, text } => {
                style(format!("[private] {}: {}", escape(from), escape(text))).magenta().to_string()
            }
            Update::Broadcast { from, text } => format!("{}: {}", style(escape(from)).bold(), escape(text)),
        };
        self.line(format!("{time} {s}"));
    }
}

impl Screen for Out {
    fn update(&self, u: &Update) {
        Out::update(self, u);
    }

    fn info(&self, kind: Kind, text: String) {
        Out::info(self, kind.as_str(), text);
    }

    fn list(&self, kind: &'static str, items: &[String], me: &str) {
        if kind == "files"
            && let Some(files) = &self.files
            && let Ok(mut files) = files.lock()
        {
            *files = items.to_vec();
        }
        if self.json {
            let mut v = serde_json::json!({ "kind": kind, kind: items });
            if kind == "users" {
                v["me"] = me.into();
            }
            self.json_line(v);
        } else if kind == "users" {
            let you = style(format!("{} (you)", escape(me))).bold().to_string();
            self.line(
                std::iter::once(you).chain(items.iter().map(|i| escape(i).into_owned())).collect::<Vec<_>>().join(", "),
            );
        } else if items.is_empty() {
            self.line("the server offers no files".into());
        } else {
            self.line(chat::escaped_list(items));
        }
    }

    fn downloaded(&self, r: &DownloadReport, who: &str) {
        if self.json {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("kind".into(), "download".into());
            }
            self.json_line(v);
        } else {
            Out::info(self, "download", r.summary(who));
        }
    }

    fn download_failed(&self, file: &str, e: ClientError) {
        Out::info(self, "error", crate::describe(&fail(e).context(format!("/get {}", escape(file)))));
    }

    fn reconnect(&self, e: &Event<'_>) {
        match &self.printer {
            // Above the prompt, keeping what is typed.
            Some(_) => self.line(style(reconnect_line("join", self.json, e)).yellow().to_string()),
            None => report_reconnect("join", self.json, e),
        }
    }
}

/// The wall-clock time as `HH:MM:SS`, in the local time zone where the C
/// library knows it, else UTC.
fn clock() -> String {
    #[cfg(unix)]
    {
        // SAFETY: `time` with a null pointer only returns the time; `localtime_r`
        // writes into the `tm` we own and is the thread-safe variant.
        let t = unsafe { libc::time(std::ptr::null_mut()) };
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if !unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
        }
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now.get(11..19).unwrap_or("").to_string()
}

pub fn run(args: JoinArgs, global: &Global) -> anyhow::Result<()> {
    if args.stop {
        return crate::shared_session::stop(global);
    }
    if args.detach {
        return crate::shared_session::detach(global);
    }
    if std::env::var_os(crate::shared_session::HOST_ENV).is_some() {
        return crate::shared_session::host(&args.reconnect, global);
    }
    // A name asked on the terminal is asked again when the server refuses it.
    let asked = global.name.is_none() && crate::common::interactive();
    let name = name(global)?;
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<Option<String>>();
    let mut out = Out { json: global.json, printer: None, names: None, files: None, closed: Arc::default() };
    let mut editor = None;
    let over = Arc::new(AtomicBool::new(false));
    let by_input = AtomicBool::new(false);
    let refused = Refused::default();
    let r = block_on(async {
        let mut ctrl_c = crate::common::CtrlC::new()?;
        let (session, updates, name) = join_as(&args, global, name, asked, &mut ctrl_c).await?;
        let session = Arc::new(session);
        if tty {
            let limits = args.lines.clone();
            editor = Some(Editor::start(&session, &name, &mut out, lines_tx, over.clone(), limits).await?);
        } else {
            let (limits, refused) = (args.lines.clone(), refused.clone());
            tokio::spawn(async move {
                let _ = each_stdin_line(&limits, &refused, |l| {
                    let sent = lines_tx.send(Some(l));
                    async move { sent.map_err(|_| anyhow::anyhow!("the session ended")) }
                })
                .await;
                let _ = lines_tx.send(None);
            });
        }
        let (current, current_rx) = watch::channel(Some(session.clone()));
        let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
        let _host = crate::shared_session::offer(&session, current_rx, stop_tx).await;
        let mut chat = Chat::new(session, out.clone(), args.listen());
        let end = tokio::select! {
            biased;
            _ = ctrl_c.pressed() => End::Interrupted,
            // `join | head -2`: the reader of standard output left.
            _ = out.closed.notified() => End::Input,
            Some(()) = stop_rx.recv() => End::Stopped,
            end = chat.run_resilient(updates, &mut lines_rx, args.reconnect.rejoin(global, &name), &current) => end.into(),
        };
        by_input.store(matches!(end, End::Input), Ordering::SeqCst);
        let r = end.result(&mut chat, &out, &mut ctrl_c, args.for_).await;
        chat.abort_downloads();
        let left = crate::common::leave(chat.session().leave(), &mut ctrl_c).await;
        over.store(true, Ordering::SeqCst);
        r.and(left)
    });
    // The editor's next line (if the session ended under it) finds nobody to send to, and stops.
    drop(lines_rx);
    if let Some(editor) = editor {
        editor.close(by_input.load(Ordering::SeqCst));
    }
    r.and_then(|()| refused.result())
}

/// Joins as `name` (Ctrl-C gives up), unless this user's own session holds
/// it; with --reconnect, a server not up yet is waited for. Returns the
/// session and the name it joined with.
async fn join_as(
    args: &JoinArgs,
    global: &Global,
    name: String,
    asked: bool,
    ctrl_c: &mut crate::common::CtrlC,
) -> anyhow::Result<(Session, Updates, String)> {
    // The name is held by this user's own session: say how to reach it, not "taken".
    if let Some(pid) = crate::shared_session::running(global, &name).await {
        let why = crate::shared_session::already_runs(global, &name, pid);
        return Err(anyhow::anyhow!(why).context(Exit::NameTaken));
    }
    let mut first = args.reconnect.rejoin(global, &name).map(|r| r.backoff);
    let mut report = |a: &_| report_reconnect("join", global.json, &Event::Attempt(a));
    let patience = first.as_mut().map(|b| (b, &mut report as &mut dyn FnMut(&_)));
    let joining =
        chat::join_retrying(&global.server, name, global.timeout, patience, |name, e| another_name(asked, name, e));
    tokio::select! {
        biased;
        _ = ctrl_c.pressed() => Err(anyhow::Error::new(Exit::Interrupted)),
        r = joining => r,
    }
}

/// After the server refused `name`: another name, asked of the person when
/// the first one was asked on the terminal too; else the error.
async fn another_name(asked: bool, name: String, e: ClientError) -> anyhow::Result<String> {
    if !(asked && matches!(e.exit(), Exit::NameTaken | Exit::InvalidName)) {
        return Err(fail(e));
    }
    let why = match e.exit() {
        Exit::NameTaken => format!("{} is taken", escape(&name)),
        _ => format!("the server refused {}: {e}", escape(&name)),
    };
    note(format_args!("{why}; choose another name"));
    let suggestion = format!("{}2", name.chars().take(97).collect::<String>());
    tokio::task::spawn_blocking(move || ask_name(suggestion)).await.context("the prompt failed")?
}

/// The line editor of a session on a terminal: its thread, and where the
/// terminal goes back to if the session ends under the editor's read.
struct Editor {
    reader: std::thread::JoinHandle<()>,
    terminal: crate::common::TerminalGuard,
}

impl Editor {
    /// Starts the editor for `session` joined as `name`: Tab completion from
    /// the room's names and files, output above the prompt (through `out`),
    /// each line read sent to `lines` (`None` on Ctrl-D). Says who is here.
    async fn start(
        session: &Session,
        name: &str,
        out: &mut Out,
        lines: mpsc::UnboundedSender<Option<String>>,
        over: Arc<AtomicBool>,
        limits: LineArgs,
    ) -> anyhow::Result<Editor> {
        let names = Arc::new(Mutex::new(session.users().await.unwrap_or_default()));
        let files = Arc::new(Mutex::new(session.files().await.unwrap_or_default()));
        out.names = Some(names.clone());
        out.files = Some(files.clone());
        let mut rl = rustyline::Editor::<Completer, rustyline::history::DefaultHistory>::new()
            .context("cannot start the line editor")?;
        rl.set_helper(Some(Completer { names, files }));
        let printer = rl.create_external_printer().context("cannot start the line editor")?;
        out.printer = Some(Arc::new(Mutex::new(Box::new(printer))));
        let terminal = crate::common::TerminalGuard::new();
        let prompt = format!("{}> ", escape(name));
        let reader = std::thread::spawn(move || read_lines(rl, &prompt, &over, &limits, &lines));
        let others = session.users().await.unwrap_or_default();
        out.info("info", format!("joined as {}; {}", escape(name), chat::who_is_here(&others)));
        out.info("info", chat::SHORT_HELP.to_string());
        Ok(Editor { reader, terminal })
    }

    /// After the session: `by_input` (`/quit`, Ctrl-D) the editor has
    /// returned and put the terminal back; else (the server went away, `join
    /// --stop`) the session ended under the editor's read: the terminal goes
    /// back as it was, the half-typed line is left on screen, and the process
    /// exits without waiting for Enter.
    fn close(self, by_input: bool) {
        if by_input {
            let _ = self.reader.join();
        } else {
            drop(self.terminal);
            let _ = crate::common::out("");
        }
    }
}

/// The editor's thread: reads lines at `prompt` and sends them to `lines`
/// until `/quit`, Ctrl-D or a terminal error. It reads the next line right
/// away (so type-ahead is edited too) but not after `/quit` or once the
/// session is `over`: it must not put the terminal back in raw mode as the
/// process exits.
fn read_lines(
    mut rl: rustyline::Editor<Completer, rustyline::history::DefaultHistory>,
    prompt: &str,
    over: &AtomicBool,
    limits: &LineArgs,
    lines: &mpsc::UnboundedSender<Option<String>>,
) {
    let mut hinted = false;
    loop {
        match rl.readline(prompt) {
            // A blank line is not sent, nor kept in the history.
            Ok(l) if l.trim().is_empty() && !over.load(Ordering::SeqCst) => {}
            Ok(l) if limits.check(&l).is_err() => {
                let n = l.chars().count();
                let why = format!("that line has {n} characters, over --max-line {}: not sent", limits.max_line);
                let _ = crate::common::out(style(why).red());
                let _ = rl.add_history_entry(l.as_str());
            }
            Ok(l) => {
                let _ = rl.add_history_entry(l.as_str());
                let quit = chat::parse(&l) == chat::Line::Quit || over.load(Ordering::SeqCst);
                if lines.send(Some(l)).is_err() || quit {
                    return;
                }
            }
            // Ctrl-C clears the line (rustyline has dropped it), as in irssi and bash.
            Err(rustyline::error::ReadlineError::Interrupted) => {
                if !hinted {
                    hinted = true;
                    // Between two reads the terminal is ours: print as usual.
                    let _ =
                        crate::common::out(style("(Ctrl-C clears the line; Ctrl-D or /quit leaves the room)").cyan());
                }
            }
            // Ctrl-D, or a terminal error: leave.
            Err(_) => {
                let _ = lines.send(None);
                return;
            }
        }
    }
}

/// Why `join` ended: how the chat ended, or what ended it from outside.
enum End {
    /// End of input, `/quit`, or Ctrl-D at the prompt.
    Input,
    /// A SIGINT outside the line editor.
    Interrupted,
    /// The server went away, or a command failed.
    Failed(ClientError),
    /// `--count` matching updates were shown.
    Done,
    /// `join --stop` asked this session to end.
    Stopped,
    /// The `--for` time ran out.
    Expired(Outcome),
}

impl From<chat::End> for End {
    fn from(e: chat::End) -> End {
        match e {
            chat::End::Input => End::Input,
            chat::End::Failed(e) | chat::End::Gone(e) => End::Failed(e),
            chat::End::Done => End::Done,
            chat::End::Expired(o) => End::Expired(o),
        }
    }
}

impl End {
    /// What `join` returns for this end (before leaving): end of input
    /// first waits for the running downloads (Ctrl-C abandons them);
    /// `--for` (`waited`) with nothing matched is a timeout.
    async fn result(
        self,
        chat: &mut Chat<Out>,
        out: &Out,
        ctrl_c: &mut crate::common::CtrlC,
        waited: Option<std::time::Duration>,
    ) -> anyhow::Result<()> {
        match self {
            End::Input => {
                // A bot's `/get` must finish before EOF leaves the room.
                if chat.downloads() > 0 {
                    out.info("info", format!("waiting for {} download(s) (Ctrl-C abandons them)", chat.downloads()));
                    tokio::select! {
                        biased;
                        _ = ctrl_c.pressed() => {}
                        _ = chat.finish_downloads() => {}
                    }
                }
                Ok(())
            }
            End::Interrupted => Err(anyhow::Error::new(Exit::Interrupted)),
            End::Failed(e) => Err(fail(e)),
            End::Done | End::Stopped => Ok(()),
            End::Expired(Outcome::Done) => Ok(()),
            End::Expired(Outcome::NothingInTime) => {
                let waited = humantime::format_duration(waited.unwrap_or_default());
                Err(anyhow::anyhow!("nothing matched within --for {waited}").context(Exit::Timeout))
            }
        }
    }
}
