//! `chatctl join`: the interactive session.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chatctl::client::forward::{Event, Rejoin, away};
use chatctl::client::reconnect::{Backlog, DEFAULT_BACKLOG};
use chatctl::client::{ClientError, Filter, Listen, Outcome, Session, Transport, Updates, Verdict, thousands};
use chatctl::exit::Exit;
use chatctl::wire::Update;
use clap::Args;
use console::style;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cli::Global;
use crate::session::{ReconnectArgs, ask_name, block_on, each_stdin_line, escape, fail, name, note, report_reconnect};

/// Join the room interactively.
///
/// On a terminal: a prompt with history; incoming messages appear above it.
/// Plain text goes to everyone; `@name text` or `/w name text` is private;
/// `/users`, `/files`, `/get FILE [--tcp|--udp] [--force]` (in the
/// background; quote a name with spaces), `/help`, `/quit`. Empty lines send nothing. Not on a terminal: each stdin line is a message (same syntax) and
/// each update one output line (JSON with --json); end of input leaves.
///
/// While it runs, one-shot `say`, `whisper`, `list` and `fetch` with the same
/// server and name go through this session (a private Unix socket) instead
/// of joining again. `--detach` runs such a session in the background,
/// `--stop` ends it. A server that goes away ends `join` at once (exit 12)
/// unless --reconnect.
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

const HELP: &str = "text: to everyone · @name text or /w name text: private · /users · /files · \
/get FILE [--tcp|--udp] [--force] · /help · /quit · Tab completes";

/// One input line, parsed.
#[derive(Debug, PartialEq)]
enum Line {
    Say(String),
    Whisper(String, String),
    Users,
    Files,
    Get {
        file: String,
        transport: Transport,
        force: bool,
    },
    Help,
    /// An empty or blank line: nothing is sent.
    Nothing,
    Quit,
    Bad(String),
}

fn parse(line: &str) -> Line {
    if line.trim().is_empty() {
        return Line::Nothing;
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (to, text) = rest.split_once(' ').unwrap_or((rest, ""));
        return Line::Whisper(to.to_string(), text.to_string());
    }
    let Some(cmd) = line.strip_prefix('/') else { return Line::Say(line.to_string()) };
    let (cmd, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
    match cmd {
        "w" | "whisper" | "msg" => match rest.split_once(' ') {
            Some((to, text)) => Line::Whisper(to.to_string(), text.to_string()),
            None if !rest.is_empty() => Line::Whisper(rest.to_string(), String::new()),
            None => Line::Bad("usage: /w NAME TEXT".into()),
        },
        "users" | "who" => Line::Users,
        "files" => Line::Files,
        "get" | "fetch" => {
            let words = match split_words(rest) {
                Ok(w) => w,
                Err(e) => return Line::Bad(e),
            };
            let (mut transport, mut force) = (Transport::Udp, false);
            let mut file = Vec::new();
            for w in words {
                match w.as_str() {
                    "--tcp" => transport = Transport::Tcp,
                    "--udp" => transport = Transport::Udp,
                    "--force" | "-f" => force = true,
                    _ => file.push(w),
                }
            }
            // Unquoted words are one name too (`/get my file.txt`).
            let file = file.join(" ");
            if file.is_empty() {
                Line::Bad("usage: /get FILE [--tcp|--udp] [--force]".into())
            } else {
                Line::Get { file, transport, force }
            }
        }
        "help" | "?" => Line::Help,
        "quit" | "exit" | "q" => Line::Quit,
        other => Line::Bad(format!("unknown command /{other}; /help lists them")),
    }
}

/// Splits a command's arguments at spaces; `"…"` or `'…'` keeps spaces in one word.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let (mut words, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if std::mem::take(&mut any) {
                    words.push(std::mem::take(&mut word));
                }
            }
            (_, c) => (word.push(c), any = true).1,
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    if any {
        words.push(word);
    }
    Ok(words)
}

/// `file` as one word for `/get`: quoted when it holds a space or a quote.
fn quoted(file: &str) -> String {
    match (file.contains([' ', '"']), file.contains('\'')) {
        (false, false) => file.to_string(),
        (_, false) => format!("'{file}'"),
        _ => format!("\"{file}\""),
    }
}

/// Commands Tab completes.
const COMMANDS: [&str; 7] = ["/users", "/files", "/get ", "/w ", "/help", "/quit", "/whisper "];

/// Tab completion of commands (`/…`), file names (after `/get `) and user
/// names (`@…`, after `/w `, or any word).
struct Completer {
    names: Arc<Mutex<Vec<String>>>,
    files: Arc<Mutex<Vec<String>>>,
}

impl Completer {
    /// Completions of a file name after `/get ` (`tail` is what follows it up
    /// to the cursor): where the name starts, and the names, quoted as needed.
    fn files(&self, tail: &str) -> (usize, Vec<String>) {
        // The word being typed starts at an unclosed quote, else after the last space.
        let mut start = 0;
        let mut quote = None;
        for (i, c) in tail.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => (quote, start) = (Some(c), i),
                (Some(q), c) if c == q => quote = None,
                (None, ' ') => start = i + 1,
                _ => {}
            }
        }
        let word = tail[start..].trim_start_matches(['"', '\'']);
        let files = self.files.lock().map(|f| f.clone()).unwrap_or_default();
        let c = files
            .iter()
            .filter(|f| f.starts_with(word) && !f.chars().any(char::is_control))
            .map(|f| quoted(f))
            .collect();
        (start, c)
    }
}

impl rustyline::completion::Completer for Completer {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        if let Some(tail) = ["/get ", "/fetch "].iter().find_map(|c| head.strip_prefix(c)) {
            let (start, c) = self.files(tail);
            return Ok((head.len() - tail.len() + start, c));
        }
        let start = head.rfind(' ').map_or(0, |i| i + 1);
        let word = &head[start..];
        if start == 0 && word.starts_with('/') {
            let c = COMMANDS.iter().filter(|c| c.starts_with(word)).map(|c| c.to_string()).collect();
            return Ok((0, c));
        }
        let (at, word) = match word.strip_prefix('@') {
            Some(w) if start == 0 => (1, w),
            _ => (0, word),
        };
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let c = names.into_iter().filter(|n| n.starts_with(word) && !n.chars().any(char::is_control)).collect();
        Ok((start + at, c))
    }
}

impl rustyline::hint::Hinter for Completer {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completer {}
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
}

impl Out {
    fn line(&self, s: String) {
        match &self.printer {
            Some(p) => {
                // Outside the editor's read, rustyline writes the text as is: end it with a newline
                // (inside, a text that ends with one gets no second).
                let _ = p.lock().map(|mut p| p.print(format!("{s}\n")));
            }
            // A reader that went away is noticed when stdin ends; never panic here.
            None => {
                let _ = crate::session::out(s);
            }
        }
    }

    fn info(&self, kind: &str, text: String) {
        if self.json {
            self.line(serde_json::json!({ "kind": kind, "text": text }).to_string());
        } else if kind == "error" && self.printer.is_none() {
            // Plain pipe mode: stdout carries only the chat; problems go to stderr.
            note(format_args!("chatctl join: {text}"));
        } else {
            self.line(if kind == "error" { style(text).red().to_string() } else { text });
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
            self.line(serde_json::to_string(u).unwrap_or_default());
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
        return crate::shared::stop(global);
    }
    if args.detach {
        return crate::shared::detach(global);
    }
    if std::env::var_os(crate::shared::HOST_ENV).is_some() {
        return crate::shared::host(&args.reconnect, global);
    }
    // A name asked on the terminal is asked again when the server refuses it.
    let asked = global.name.is_none() && crate::session::interactive();
    let mut name = name(global)?;
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<Option<String>>();
    let mut out = Out { json: global.json, printer: None, names: None, files: None };
    let mut reader = None;
    let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = block_on(async {
        let mut ctrl_c = crate::session::CtrlC::new()?;
        let (session, updates) = loop {
            let r = tokio::select! {
                biased;
                _ = ctrl_c.pressed() => return Err(anyhow::Error::new(Exit::Interrupted)),
                r = Session::join(&global.server, &name, global.timeout) => r,
            };
            match r {
                Ok(joined) => break joined,
                Err(e) if asked && matches!(e.exit(), Exit::NameTaken | Exit::InvalidName) => {
                    let why = match e.exit() {
                        Exit::NameTaken => format!("{} is taken", escape(&name)),
                        _ => format!("the server refused {}: {e}", escape(&name)),
                    };
                    note(format_args!("{why}; choose another name"));
                    let suggestion = format!("{}2", name.chars().take(97).collect::<String>());
                    name = tokio::task::spawn_blocking(move || ask_name(suggestion))
                        .await
                        .context("the prompt failed")??;
                }
                Err(e) => return Err(fail(e)),
            }
        };
        let session = Arc::new(session);
        if tty {
            let names = Arc::new(Mutex::new(session.users().await.unwrap_or_default()));
            let files = Arc::new(Mutex::new(session.files().await.unwrap_or_default()));
            out.names = Some(names.clone());
            out.files = Some(files.clone());
            let mut rl = rustyline::Editor::<Completer, rustyline::history::DefaultHistory>::new()
                .context("cannot start the line editor")?;
            rl.set_helper(Some(Completer { names, files }));
            let printer = rl.create_external_printer().context("cannot start the line editor")?;
            out.printer = Some(Arc::new(Mutex::new(Box::new(printer))));
            let prompt = format!("{}> ", escape(&name));
            // The editor reads the next line right away (so type-ahead is
            // edited too) but not after `/quit`: it must not put the terminal
            // back in raw mode as the process exits.
            let over = over.clone();
            reader = Some(std::thread::spawn(move || {
                loop {
                    match rl.readline(&prompt) {
                        // A blank line is not sent, nor kept in the history.
                        Ok(l) if l.trim().is_empty() && !over.load(std::sync::atomic::Ordering::SeqCst) => {}
                        Ok(l) => {
                            let _ = rl.add_history_entry(l.as_str());
                            let quit = parse(&l) == Line::Quit || over.load(std::sync::atomic::Ordering::SeqCst);
                            if lines_tx.send(Some(l)).is_err() || quit {
                                return;
                            }
                        }
                        // Ctrl-C, Ctrl-D or a terminal error: leave.
                        Err(_) => {
                            let _ = lines_tx.send(None);
                            return;
                        }
                    }
                }
            }));
            out.info("info", format!("joined as {}. {HELP}", escape(&name)));
        } else {
            tokio::spawn(async move {
                let _ = each_stdin_line(|l| {
                    let sent = lines_tx.send(Some(l));
                    async move { sent.map_err(|_| anyhow::anyhow!("the session ended")) }
                })
                .await;
                let _ = lines_tx.send(None);
            });
        }
        let (current, current_rx) = watch::channel(Some(session.clone()));
        let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
        let _host = crate::shared::offer(&session, current_rx, stop_tx).await;
        let mut chat = Chat {
            session: session.clone(),
            out: out.clone(),
            downloads: JoinSet::new(),
            active: Arc::default(),
            listen: args.listen(),
            input_over: false,
            unsent: None,
        };
        let end = tokio::select! {
            biased;
            _ = ctrl_c.pressed() => End::Interrupted,
            Some(()) = stop_rx.recv() => End::Stopped,
            end = chat.run_resilient(updates, &mut lines_rx, args.reconnect.rejoin(global, &name), &current) => end,
        };
        let session = chat.session.clone();
        let by_input = matches!(end, End::Input);
        let r = match end {
            End::Input => {
                // A bot's `/get` must finish before EOF leaves the room.
                if !chat.downloads.is_empty() {
                    out.info(
                        "info",
                        format!("waiting for {} download(s) (Ctrl-C abandons them)", chat.downloads.len()),
                    );
                    tokio::select! {
                        biased;
                        _ = ctrl_c.pressed() => {}
                        _ = async { while chat.downloads.join_next().await.is_some() {} } => {}
                    }
                }
                Ok(())
            }
            End::Interrupted => Err(anyhow::Error::new(Exit::Interrupted)),
            End::Failed(e) => Err(e),
            End::Gone(e) => Err(fail(e)),
            End::Done | End::Stopped => Ok(()),
            End::Expired(Outcome::Done) => Ok(()),
            End::Expired(Outcome::NothingInTime) => {
                let waited = humantime::format_duration(args.for_.unwrap_or_default());
                Err(anyhow::anyhow!("nothing matched within --for {waited}").context(Exit::Timeout))
            }
        };
        chat.downloads.abort_all();
        let left = crate::session::leave(session.leave(), &mut ctrl_c).await;
        over.store(true, std::sync::atomic::Ordering::SeqCst);
        if tty && !by_input {
            // The line editor holds the terminal in raw mode until its read
            // returns: let it finish before exiting, or the shell is left raw.
            out.info("info", "the session is over: press Enter to exit".to_string());
        }
        r.and(left)
    });
    // The editor's next line (if the session ended under it) finds nobody to send to, and stops.
    drop(lines_rx);
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    r
}

/// Why the session loop ended.
enum End {
    /// End of input, `/quit`, or Ctrl-C/Ctrl-D at the prompt.
    Input,
    /// A SIGINT outside the line editor.
    Interrupted,
    /// A command failed.
    Failed(anyhow::Error),
    /// The server went away (closed the session, or the connection was lost).
    Gone(ClientError),
    /// `--count` matching updates were shown.
    Done,
    /// `join --stop` asked this session to end.
    Stopped,
    /// The `--for` time ran out.
    Expired(Outcome),
}

/// A running chat: the session, where output goes, and the background downloads.
struct Chat {
    session: Arc<Session>,
    out: Out,
    downloads: JoinSet<()>,
    /// Local files being downloaded now, so two `/get`s never share a target.
    active: Arc<Mutex<HashSet<PathBuf>>>,
    /// `--count`, `--for` and the filters, if any.
    listen: Option<Listen>,
    /// Standard input has ended (with a budget, that does not end the session).
    input_over: bool,
    /// A line whose sending failed because the server went away: sent first
    /// after a rejoin.
    unsent: Option<String>,
}

impl Chat {
    async fn run(&mut self, mut updates: Updates, lines: &mut mpsc::UnboundedReceiver<Option<String>>) -> End {
        let deadline = self.listen.as_ref().and_then(Listen::deadline);
        let bounded = self.listen.as_ref().is_some_and(Listen::bounded);
        loop {
            tokio::select! {
                u = updates.next() => match u {
                    Some(Ok(u)) => match self.listen.as_mut().map_or(Verdict::Show, |l| l.update(&u)) {
                        Verdict::Skip => {}
                        Verdict::Show => self.out.update(&u),
                        Verdict::ShowAndStop => {
                            self.out.update(&u);
                            return End::Done;
                        }
                    },
                    Some(Err(e)) if e.exit() == Exit::ServerGone => return End::Gone(e),
                    Some(Err(e)) => return End::Failed(fail(e)),
                    None => return End::Gone(ClientError::Closed),
                },
                _ = sleep_until(deadline) => {
                    return End::Expired(self.listen.as_ref().map_or(Outcome::Done, Listen::outcome));
                }
                l = lines.recv(), if !self.input_over => match l.flatten() {
                    None if bounded => self.input_over = true,
                    None => return End::Input,
                    Some(l) => match self.handle(&l).await {
                        Ok(true) => {}
                        Ok(false) => return End::Input,
                        Err(e) if is_gone(&e) => {
                            self.unsent = Some(l);
                            return End::Gone(ClientError::Closed);
                        }
                        Err(e) => return End::Failed(e),
                    },
                },
                // Reap finished downloads so the set does not grow for hours.
                Some(_) = self.downloads.join_next(), if !self.downloads.is_empty() => {}
            }
        }
    }

    /// [`run`](Self::run), rejoining after a lost server when `rejoin` is
    /// set: lines read while away wait (bounded) and are acted on in order
    /// once back; the `--count`/`--for` budget goes on across rejoins.
    async fn run_resilient(
        &mut self,
        mut updates: Updates,
        lines: &mut mpsc::UnboundedReceiver<Option<String>>,
        mut rejoin: Option<Rejoin>,
        current: &watch::Sender<Option<Arc<Session>>>,
    ) -> End {
        let deadline = self.listen.as_ref().and_then(Listen::deadline);
        let bounded = self.listen.as_ref().is_some_and(Listen::bounded);
        let json = self.out.json;
        loop {
            let lost = match self.run(updates, lines).await {
                End::Gone(e) if rejoin.is_some() => e,
                end => return end,
            };
            let how = rejoin.as_mut().expect("checked above");
            report_reconnect("join", json, &Event::Lost(&lost));
            let _ = current.send(None);
            let mut backlog = Backlog::new(DEFAULT_BACKLOG);
            if let Some(l) = self.unsent.take() {
                backlog.push(l);
            }
            let outcome = self.listen.as_ref().map_or(Outcome::Done, Listen::outcome);
            let input_over = &mut self.input_over;
            let joined = tokio::select! {
                _ = sleep_until(deadline) => return End::Expired(outcome),
                r = away(how, lines, |l| match l.flatten() {
                    Some(l) => backlog.push(l),
                    None => *input_over = true,
                }, |e| report_reconnect("join", json, &e)) => r,
            };
            let (session, u) = match joined {
                Ok(j) => j,
                Err(e) => return End::Failed(fail(e)),
            };
            self.session = Arc::new(session);
            updates = u;
            let _ = current.send(Some(self.session.clone()));
            let back = Event::Back { waiting: backlog.len(), dropped: backlog.take_dropped() };
            report_reconnect("join", json, &back);
            while let Some(l) = backlog.pop() {
                match self.handle(&l).await {
                    Ok(true) => {}
                    Ok(false) => return End::Input,
                    Err(e) => return End::Failed(e),
                }
            }
            if self.input_over && !bounded {
                return End::Input;
            }
        }
    }

    /// Acts on one line; `Ok(false)` means quit. Refusals (no such user…) are
    /// reported and the session goes on; a lost connection ends it.
    async fn handle(&mut self, line: &str) -> anyhow::Result<bool> {
        let (session, out) = (self.session.clone(), self.out.clone());
        let out = &out;
        let r = match parse(line) {
            Line::Quit => return Ok(false),
            Line::Nothing => Ok(()),
            Line::Help => {
                out.info("info", HELP.to_string());
                Ok(())
            }
            Line::Bad(msg) => {
                out.info("error", msg);
                Ok(())
            }
            Line::Say(text) => session.broadcast(&text).await.map(|_| ()),
            Line::Whisper(to, text) => session.whisper(&to, &text).await.map(|_| ()),
            Line::Users => session.users().await.map(|u| list(out, "users", &u)),
            Line::Files => session.files().await.map(|f| {
                list(out, "files", &f);
                if let Some(files) = &out.files
                    && let Ok(mut files) = files.lock()
                {
                    *files = f;
                }
            }),
            Line::Get { file, transport, force } => {
                self.get(file, transport, force);
                Ok(())
            }
        };
        match r {
            Ok(()) => Ok(true),
            Err(e @ chatctl::client::ClientError::Refused(_)) => {
                out.info("error", e.to_string());
                Ok(true)
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// Starts a background download into the current folder; progress and the
    /// result are reported as lines.
    fn get(&mut self, file: String, transport: Transport, force: bool) {
        let Some(base) = chatctl::client::local_file_name(&file).map(PathBuf::from) else {
            self.out.info("error", format!("cannot make a local file name from {}", escape(&file)));
            return;
        };
        if !self.active.lock().map(|mut a| a.insert(base.clone())).unwrap_or(false) {
            self.out.info("error", format!("{} is already being downloaded", base.display()));
            return;
        }
        let (session, out, active) = (self.session.clone(), self.out.clone(), self.active.clone());
        self.downloads.spawn(async move {
            let over = if transport == Transport::Tcp { "TCP" } else { "UDP" };
            out.info("info", format!("downloading {} over {over}", escape(&file)));
            let mut quarter = 0;
            let progress = |done: u64, size: u64| {
                let q = done.saturating_mul(4).checked_div(size).unwrap_or(4);
                if q > quarter && q < 4 {
                    quarter = q;
                    out.info(
                        "progress",
                        format!("{}: {}% ({} of {} bytes)", escape(&file), q * 25, thousands(done), thousands(size)),
                    );
                }
            };
            match session.download(&file, transport, &base, force, progress).await {
                Ok(r) if out.json => {
                    let mut v = serde_json::to_value(&r).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("kind".into(), "download".into());
                    }
                    out.line(v.to_string());
                }
                Ok(r) => out.info("download", r.summary(session.name())),
                Err(e) => out.info("error", crate::describe(&fail(e).context(format!("/get {}", escape(&file))))),
            }
            if let Ok(mut a) = active.lock() {
                a.remove(&base);
            }
        });
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// True when `e` carries [`Exit::ServerGone`]: the line was not sent because the server went away.
fn is_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Exit>() == Some(&Exit::ServerGone))
}

fn list(out: &Out, kind: &str, items: &[String]) {
    if out.json {
        out.line(serde_json::json!({ "kind": kind, kind: items }).to_string());
    } else if items.is_empty() {
        out.line(format!("no {kind}"));
    } else {
        out.line(items.iter().map(|i| escape(i)).collect::<Vec<_>>().join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("hi all"), Line::Say("hi all".into()));
        assert_eq!(parse("@bob hey you"), Line::Whisper("bob".into(), "hey you".into()));
        assert_eq!(parse("/w bob hey"), Line::Whisper("bob".into(), "hey".into()));
        let get = |file: &str, transport, force| Line::Get { file: file.into(), transport, force };
        assert_eq!(parse("/get a b.txt --tcp"), get("a b.txt", Transport::Tcp, false));
        assert_eq!(parse("/get x"), get("x", Transport::Udp, false));
        assert_eq!(parse("/get big.iso --force"), get("big.iso", Transport::Udp, true));
        assert_eq!(parse("/get -f --tcp \"my  file.txt\""), get("my  file.txt", Transport::Tcp, true));
        assert_eq!(parse("/get 'say \"hi\".txt'"), get("say \"hi\".txt", Transport::Udp, false));
        assert!(matches!(parse("/get \"open"), Line::Bad(_)));
        for blank in ["", "   ", "\t"] {
            assert_eq!(parse(blank), Line::Nothing, "{blank:?}");
        }
        assert_eq!(parse("/quit"), Line::Quit);
        assert!(matches!(parse("/nope"), Line::Bad(_)));
    }

    #[test]
    fn completes_file_names_after_get() {
        let files = ["report.pdf", "big file.iso", "rates.csv"].map(String::from).to_vec();
        let c = Completer { names: Arc::new(Mutex::new(vec!["rob".into()])), files: Arc::new(Mutex::new(files)) };
        assert_eq!(c.files("r"), (0, vec!["report.pdf".to_string(), "rates.csv".into()]));
        assert_eq!(c.files("--tcp rep"), (6, vec!["report.pdf".to_string()]));
        assert_eq!(c.files("big"), (0, vec!["'big file.iso'".to_string()]));
        assert_eq!(c.files("'big fi"), (0, vec!["'big file.iso'".to_string()]));
        assert_eq!(
            parse(&format!("/get {}", quoted("big file.iso"))),
            Line::Get { file: "big file.iso".into(), transport: Transport::Udp, force: false }
        );
    }
}
