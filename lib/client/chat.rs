//! The chat session behind `join`: the command language read at the prompt
//! or from standard input ([`parse`], [`complete`]), the name retry of an
//! interactive join ([`join_retrying`]), and [`Chat`], which runs a joined
//! session (lines in, updates out, background downloads) and, when asked,
//! rejoins after a lost server with the lines read meanwhile kept in order.
//!
//! Printing is the caller's: everything worth showing goes to a [`Screen`].

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::forward::{Event, Rejoin, outage};
use super::reconnect::{Backlog, DEFAULT_BACKLOG};
use super::{ClientError, DownloadReport, Listen, Outcome, Session, Transport, Updates, Verdict};
use crate::exit::Exit;
use crate::wire::{ErrorCode, Update};

/// One input line, parsed.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// Text to everyone.
    Say(String),
    /// `@name text` or `/w name text`: a private message.
    Whisper(String, String),
    /// `/users`: who is here.
    Users,
    /// `/files`: what can be downloaded.
    Files,
    /// `/get FILE [--tcp|--udp] [--force]`: a background download.
    Get {
        /// The file's name on the server.
        file: String,
        /// TCP or UDP.
        transport: Transport,
        /// Overwrite a local file of the same name.
        force: bool,
    },
    /// `/help`.
    Help,
    /// An empty or blank line: nothing is sent.
    Nothing,
    /// `/quit`: leave.
    Quit,
    /// A line that cannot be acted on, with the reason.
    Bad(String),
}

/// The commands, as `/help` lists them: what is typed, what it does.
pub(crate) const HELP: &[(&str, &str)] = &[
    ("TEXT", "to everyone"),
    ("@NAME TEXT  or  /w NAME TEXT", "to NAME only"),
    ("/users", "who is here (you are marked)"),
    ("/files", "what can be downloaded"),
    ("/get FILE [--tcp|--udp] [--force]", "download FILE in the background (quote names with spaces)"),
    ("/help", "this list"),
    ("/quit  or  Ctrl-D", "leave the room (Ctrl-C clears the line)"),
    ("Tab", "complete a command, a name, or a file after /get"),
];

/// The command language in one line, for the banner.
pub const SHORT_HELP: &str = "text: to everyone · @name text: private · /users · /files · /get FILE · /help · /quit";

/// Parses one line of the command language.
pub fn parse(line: &str) -> Line {
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
pub fn quoted(file: &str) -> String {
    match (file.contains([' ', '"']), file.contains('\'')) {
        (false, false) => file.to_string(),
        (_, false) => format!("'{file}'"),
        _ => format!("\"{file}\""),
    }
}

/// Commands Tab completes.
const COMMANDS: [&str; 7] = ["/users", "/files", "/get ", "/w ", "/help", "/quit", "/whisper "];

/// Tab completion of `head` (the line up to the cursor): commands (`/…`),
/// file names (after `/get `) and user names (`@…`, after `/w `, or any
/// word). Returns where the completed word starts and the candidates; a
/// completed name or file ends with a space, so typing goes on with the
/// next word (`@bo` Tab gives `@bob `).
pub fn complete(head: &str, names: &[String], files: &[String]) -> (usize, Vec<String>) {
    if let Some(tail) = ["/get ", "/fetch "].iter().find_map(|c| head.strip_prefix(c)) {
        let (start, c) = complete_file(tail, files);
        return (head.len() - tail.len() + start, c);
    }
    let start = head.rfind(' ').map_or(0, |i| i + 1);
    let word = &head[start..];
    if start == 0 && word.starts_with('/') {
        let c = COMMANDS.iter().filter(|c| c.starts_with(word)).map(|c| c.to_string()).collect();
        return (0, c);
    }
    let (at, word) = match word.strip_prefix('@') {
        Some(w) if start == 0 => (1, w),
        _ => (0, word),
    };
    let c = names.iter().filter(|n| n.starts_with(word) && !n.chars().any(char::is_control)).map(|n| format!("{n} "));
    (start + at, c.collect())
}

/// Completions of a file name after `/get ` (`tail` is what follows it up
/// to the cursor): where the name starts, and the names, quoted as needed.
fn complete_file(tail: &str, files: &[String]) -> (usize, Vec<String>) {
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
    let c = files
        .iter()
        .filter(|f| f.starts_with(word) && !f.chars().any(char::is_control))
        .map(|f| format!("{} ", quoted(f)))
        .collect();
    (start, c)
}

/// How a first join waits for a server not up yet: the backoff, and what
/// to do with each failed attempt.
pub(crate) type Patience<'a> = (&'a mut super::reconnect::Backoff, &'a mut dyn FnMut(&super::reconnect::Attempt));

/// Joins as `name`; when the server refuses, `retry(name, error)` decides:
/// another name to try (asked of the person), or the error to end with.
/// With `patience` (reconnection on), a server that is not up yet is waited
/// for per its backoff ([`first_join`](super::reconnect::first_join)),
/// each failed attempt reported. Returns the session and the name it joined with.
pub async fn join_retrying<E, F, Fut>(
    server: &str,
    mut name: String,
    timeout: std::time::Duration,
    mut patience: Option<Patience<'_>>,
    mut retry: F,
) -> Result<(Session, Updates, String), E>
where
    F: FnMut(String, ClientError) -> Fut,
    Fut: Future<Output = Result<String, E>>,
{
    loop {
        let joined = match patience.as_mut() {
            Some((backoff, report)) => super::reconnect::first_join(server, &name, timeout, backoff, report).await,
            None => Session::join(server, &name, timeout).await,
        };
        match joined {
            Ok((s, u)) => return Ok((s, u, name)),
            Err(e) => name = retry(name, e).await?,
        }
    }
}

/// What a line printed for a person is about (JSON output names it as `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A status line.
    Info,
    /// Something did not work.
    Error,
    /// A download's progress.
    Progress,
}

impl Kind {
    /// The name in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Info => "info",
            Kind::Error => "error",
            Kind::Progress => "progress",
        }
    }
}

/// Where a [`Chat`] shows what happens. Implementations print; each call
/// is one line (or one JSON object).
pub trait Screen: Clone + Send + Sync + 'static {
    /// An update from the server.
    fn update(&self, u: &Update);
    /// A status or error line.
    fn info(&self, kind: Kind, text: String);
    /// The answer to `/users` (`me` is this session's name, not in `items`)
    /// or `/files`.
    fn list(&self, kind: &'static str, items: &[String], me: &str);
    /// A download finished.
    fn downloaded(&self, report: &DownloadReport, who: &str);
    /// A download failed.
    fn download_failed(&self, file: &str, e: ClientError);
    /// A step of a rejoin.
    fn reconnect(&self, e: &Event<'_>);
}

/// Why a [`Chat`] ended.
#[derive(Debug)]
pub enum End {
    /// End of input or `/quit`.
    Input,
    /// A command failed.
    Failed(ClientError),
    /// The server went away (closed the session, or the connection was lost).
    Gone(ClientError),
    /// `--count` matching updates were shown.
    Done,
    /// The `--for` time ran out.
    Expired(Outcome),
}

/// A running chat: the session, where output goes, and the background downloads.
pub struct Chat<S: Screen> {
    session: Arc<Session>,
    screen: S,
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

impl<S: Screen> Chat<S> {
    /// A chat on `session`, showing on `screen`, bounded by `listen` if set.
    pub fn new(session: Arc<Session>, screen: S, listen: Option<Listen>) -> Chat<S> {
        Chat {
            session,
            screen,
            downloads: JoinSet::new(),
            active: Arc::default(),
            listen,
            input_over: false,
            unsent: None,
        }
    }

    /// The live session (after a rejoin, the new one).
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// How many downloads run.
    pub fn downloads(&self) -> usize {
        self.downloads.len()
    }

    /// Waits for every running download.
    pub async fn finish_downloads(&mut self) {
        while self.downloads.join_next().await.is_some() {}
    }

    /// Abandons every running download.
    pub fn abort_downloads(&mut self) {
        self.downloads.abort_all();
    }

    async fn run(&mut self, mut updates: Updates, lines: &mut mpsc::UnboundedReceiver<Option<String>>) -> End {
        let deadline = self.listen.as_ref().and_then(Listen::deadline);
        let bounded = self.listen.as_ref().is_some_and(Listen::bounded);
        loop {
            tokio::select! {
                u = updates.next() => match u {
                    Some(Ok(u)) => match self.listen.as_mut().map_or(Verdict::Show, |l| l.update(&u)) {
                        Verdict::Skip => {}
                        Verdict::Show => self.screen.update(&u),
                        Verdict::ShowAndStop => {
                            self.screen.update(&u);
                            return End::Done;
                        }
                    },
                    Some(Err(e)) if e.exit() == Exit::ServerGone => return End::Gone(e),
                    Some(Err(e)) => return End::Failed(e),
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
                        Err(e) if e.exit() == Exit::ServerGone => {
                            self.unsent = Some(l);
                            return End::Gone(e);
                        }
                        Err(e) => return End::Failed(e),
                    },
                },
                // Reap finished downloads so the set does not grow for hours.
                Some(_) = self.downloads.join_next(), if !self.downloads.is_empty() => {}
            }
        }
    }

    /// Runs the chat until it ends: lines from `lines` (`None` is the end
    /// of input) are acted on, updates shown. With `rejoin`, a lost server
    /// is joined again: lines read while away wait (bounded) and are acted
    /// on in order once back; the `--count`/`--for` budget goes on across
    /// rejoins. `current` always holds the live session (`None` while away),
    /// for a shared-session host.
    pub async fn run_resilient(
        &mut self,
        mut updates: Updates,
        lines: &mut mpsc::UnboundedReceiver<Option<String>>,
        mut rejoin: Option<Rejoin>,
        current: &watch::Sender<Option<Arc<Session>>>,
    ) -> End {
        let deadline = self.listen.as_ref().and_then(Listen::deadline);
        let bounded = self.listen.as_ref().is_some_and(Listen::bounded);
        // Lines read while away, kept across outages until each is acted on.
        let mut backlog = Backlog::new(DEFAULT_BACKLOG);
        // Lost again while acting on the backlog: rejoin without running.
        let mut lost_again = None;
        loop {
            let lost = match lost_again.take() {
                Some(e) => e,
                None => match self.run(updates, lines).await {
                    End::Gone(e) if rejoin.is_some() => e,
                    end => return end,
                },
            };
            let how = rejoin.as_mut().expect("checked above");
            if let Some(l) = self.unsent.take() {
                backlog.push(l);
            }
            let input_over = &mut self.input_over;
            let keep = |l: Option<Option<String>>| match l.flatten() {
                Some(l) => backlog.push(l),
                None => *input_over = true,
            };
            let screen = self.screen.clone();
            let stop = sleep_until(deadline);
            let (session, u) = match outage(how, &lost, lines, keep, current, stop, |e| screen.reconnect(&e)).await {
                Ok(Some(joined)) => joined,
                Ok(None) => return End::Expired(self.listen.as_ref().map_or(Outcome::Done, Listen::outcome)),
                Err(e) => return End::Failed(e),
            };
            self.session = session;
            updates = u;
            let back = Event::Back { waiting: backlog.len(), dropped: backlog.take_dropped() };
            self.screen.reconnect(&back);
            // A line leaves the backlog once acted on: lost again meanwhile,
            // it and those after it wait for the next rejoin.
            while let Some(l) = backlog.front().cloned() {
                match self.handle(&l).await {
                    Ok(true) => {
                        backlog.pop();
                    }
                    Ok(false) => return End::Input,
                    Err(e) if e.exit() == Exit::ServerGone => {
                        lost_again = Some(e);
                        break;
                    }
                    Err(e) => return End::Failed(e),
                }
            }
            if lost_again.is_some() {
                continue;
            }
            if self.input_over && !bounded {
                return End::Input;
            }
        }
    }

    /// Acts on one line; `Ok(false)` means quit. Refusals (no such user…) are
    /// shown and the session goes on; a lost connection ends it.
    async fn handle(&mut self, line: &str) -> Result<bool, ClientError> {
        let (session, screen) = (self.session.clone(), self.screen.clone());
        let r = match parse(line) {
            Line::Quit => return Ok(false),
            Line::Nothing => Ok(()),
            Line::Help => {
                for (what, does) in HELP {
                    screen.info(Kind::Info, format!("  {what:<36} {does}"));
                }
                Ok(())
            }
            Line::Bad(msg) => {
                screen.info(Kind::Error, msg);
                Ok(())
            }
            Line::Say(text) => session.broadcast(&text).await.map(|_| ()),
            Line::Whisper(to, text) if text.trim().is_empty() => {
                screen.info(Kind::Error, format!("nothing to send to {}: write @NAME TEXT", super::escape(&to)));
                Ok(())
            }
            Line::Whisper(to, text) => match session.whisper(&to, &text).await {
                Err(ClientError::Refused(ErrorCode::NO_SUCH_USER)) => {
                    let here = session.users().await?;
                    screen.info(
                        Kind::Error,
                        format!("{} is not in the room; {}", super::escape(&to), who_is_here(&here)),
                    );
                    Ok(())
                }
                r => r.map(|_| ()),
            },
            Line::Users => session.users().await.map(|u| screen.list("users", &u, session.name())),
            Line::Files => session.files().await.map(|f| screen.list("files", &f, session.name())),
            Line::Get { file, transport, force } => {
                self.get(file, transport, force);
                Ok(())
            }
        };
        match r {
            Ok(()) => Ok(true),
            Err(e @ ClientError::Refused(_)) => {
                screen.info(Kind::Error, e.to_string());
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a background download into the current folder; progress and the
    /// result are shown as lines.
    fn get(&mut self, file: String, transport: Transport, force: bool) {
        let Some(base) = super::local_file_name(&file).map(PathBuf::from) else {
            let text = format!("cannot make a local file name from {}", super::escape(&file));
            self.screen.info(Kind::Error, text);
            return;
        };
        if !self.active.lock().map(|mut a| a.insert(base.clone())).unwrap_or(false) {
            self.screen.info(Kind::Error, format!("{} is already being downloaded", base.display()));
            return;
        }
        let (session, screen, active) = (self.session.clone(), self.screen.clone(), self.active.clone());
        self.downloads.spawn(async move {
            let shown = super::escape(&file).into_owned();
            screen.info(Kind::Info, format!("downloading {shown} over {transport}"));
            let mut quarter = 0;
            let progress = |done: u64, size: u64| {
                let q = done.saturating_mul(4).checked_div(size).unwrap_or(4);
                if q > quarter && q < 4 {
                    quarter = q;
                    let (done, size) = (super::thousands(done), super::thousands(size));
                    screen.info(Kind::Progress, format!("{shown}: {}% ({done} of {size} bytes)", q * 25));
                }
            };
            match session.download(&file, transport, &base, force, progress).await {
                Ok(r) => screen.downloaded(&r, session.name()),
                Err(ClientError::Refused(ErrorCode::NO_SUCH_FILE)) => {
                    let on_offer = match session.files().await {
                        Ok(f) => on_offer(&f),
                        Err(_) => "/files lists them".to_string(),
                    };
                    screen.info(Kind::Error, format!("/get {shown}: no such file; {on_offer}"));
                }
                Err(e) => screen.download_failed(&file, e),
            }
            if let Ok(mut a) = active.lock() {
                a.remove(&base);
            }
        });
    }
}

/// `a, b, c`, each escaped.
pub fn escaped_list(items: &[String]) -> String {
    items.iter().map(|i| super::escape(i)).collect::<Vec<_>>().join(", ")
}

/// `on offer: a, b` (the server's files), or `the server offers no files`.
pub fn on_offer(files: &[String]) -> String {
    if files.is_empty() { "the server offers no files".into() } else { format!("on offer: {}", escaped_list(files)) }
}

/// `here: a, b` (the others in the room), or `nobody else is here`.
pub fn who_is_here(others: &[String]) -> String {
    if others.is_empty() { "nobody else is here".into() } else { format!("here: {}", escaped_list(others)) }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
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
        assert_eq!(complete_file("r", &files), (0, vec!["report.pdf ".to_string(), "rates.csv ".into()]));
        assert_eq!(complete_file("--tcp rep", &files), (6, vec!["report.pdf ".to_string()]));
        assert_eq!(complete_file("big", &files), (0, vec!["'big file.iso' ".to_string()]));
        assert_eq!(complete_file("'big fi", &files), (0, vec!["'big file.iso' ".to_string()]));
        assert_eq!(complete("/get --tcp rep", &[], &files), (11, vec!["report.pdf ".to_string()]));
        assert_eq!(
            parse(&format!("/get {}", quoted("big file.iso"))),
            Line::Get { file: "big file.iso".into(), transport: Transport::Udp, force: false }
        );
    }

    #[test]
    fn completes_names_with_a_space_after() {
        let names = ["bob", "bea", "carol"].map(String::from).to_vec();
        assert_eq!(complete("@b", &names, &[]), (1, vec!["bob ".to_string(), "bea ".into()]));
        assert_eq!(complete("hi ca", &names, &[]), (3, vec!["carol ".to_string()]));
        assert_eq!(complete("/us", &names, &[]), (0, vec!["/users".to_string()]));
    }
}
