//! `chatctl join`: the interactive session.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chatctl::client::{Session, Transport, Updates};
use chatctl::wire::Update;
use clap::Args;
use console::style;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::cli::Global;
use crate::session::{escape, fail, name, runtime};

/// Join the room interactively.
///
/// On a terminal: a prompt with history; incoming messages appear above it.
/// Plain text goes to everyone; `@name text` or `/w name text` is private;
/// `/users`, `/files`, `/get FILE [--tcp|--udp]` (in the background), `/help`,
/// `/quit`. Not on a terminal: each stdin line is a message (same syntax) and
/// each update one output line (JSON with --json); end of input leaves.
#[derive(Debug, Args)]
pub struct JoinArgs {}

const HELP: &str = "text: to everyone · @name text or /w name text: private · /users · /files · \
/get FILE [--tcp|--udp] · /help · /quit";

/// One input line, parsed.
#[derive(Debug, PartialEq)]
enum Line {
    Say(String),
    Whisper(String, String),
    Users,
    Files,
    Get(String, Transport),
    Help,
    Quit,
    Bad(String),
}

fn parse(line: &str) -> Line {
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
            let mut transport = Transport::Udp;
            let mut file = Vec::new();
            for w in rest.split(' ') {
                match w {
                    "--tcp" => transport = Transport::Tcp,
                    "--udp" => transport = Transport::Udp,
                    w => file.push(w),
                }
            }
            let file = file.join(" ").trim().to_string();
            if file.is_empty() {
                Line::Bad("usage: /get FILE [--tcp|--udp]".into())
            } else {
                Line::Get(file, transport)
            }
        }
        "help" | "?" => Line::Help,
        "quit" | "exit" | "q" => Line::Quit,
        other => Line::Bad(format!("unknown command /{other}; /help lists them")),
    }
}

/// Commands Tab completes.
const COMMANDS: [&str; 7] = ["/users", "/files", "/get ", "/w ", "/help", "/quit", "/whisper "];

/// Tab completion of commands (`/…`) and names (`@…`, after `/w `, or any word).
struct Completer {
    names: Arc<Mutex<Vec<String>>>,
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
}

impl Out {
    fn line(&self, s: String) {
        match &self.printer {
            Some(p) => {
                let _ = p.lock().map(|mut p| p.print(s));
            }
            None => println!("{s}"),
        }
    }

    fn info(&self, kind: &str, text: String) {
        if self.json {
            self.line(serde_json::json!({ "kind": kind, "text": text }).to_string());
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
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let time = style(now.get(11..19).unwrap_or("").to_string()).dim();
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

pub fn run(_args: JoinArgs, global: &Global) -> anyhow::Result<()> {
    let name = name(global)?;
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let rt = runtime()?;
    let (lines_tx, lines_rx) = mpsc::unbounded_channel::<Option<String>>();
    let mut out = Out { json: global.json, printer: None, names: None };
    rt.block_on(async {
        let (session, updates) = Session::join(&global.server, &name, global.timeout).await.map_err(fail)?;
        let session = Arc::new(session);
        if tty {
            let names = Arc::new(Mutex::new(session.users().await.unwrap_or_default()));
            out.names = Some(names.clone());
            let mut rl = rustyline::Editor::<Completer, rustyline::history::DefaultHistory>::new()
                .context("cannot start the line editor")?;
            rl.set_helper(Some(Completer { names }));
            let printer = rl.create_external_printer().context("cannot start the line editor")?;
            out.printer = Some(Arc::new(Mutex::new(Box::new(printer))));
            let prompt = format!("{}> ", escape(&name));
            std::thread::spawn(move || {
                loop {
                    match rl.readline(&prompt) {
                        Ok(l) => {
                            let _ = rl.add_history_entry(l.as_str());
                            if lines_tx.send(Some(l)).is_err() {
                                return;
                            }
                        }
                        Err(_) => {
                            let _ = lines_tx.send(None);
                            return;
                        }
                    }
                }
            });
            out.info("info", format!("joined as {}. {HELP}", escape(&name)));
        } else {
            tokio::spawn(async move {
                let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Ok(Some(l)) = stdin.next_line().await {
                    if lines_tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                let _ = lines_tx.send(None);
            });
        }
        let r = session_loop(&session, updates, lines_rx, &out).await;
        let left = session.leave().await.map_err(fail).context("leaving the room");
        r.and(left)
    })
}

async fn session_loop(
    session: &Arc<Session>,
    mut updates: Updates,
    mut lines: mpsc::UnboundedReceiver<Option<String>>,
    out: &Out,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            u = updates.next() => match u {
                Some(Ok(u)) => out.update(&u),
                Some(Err(e)) => return Err(fail(e)),
                None => anyhow::bail!("the server closed the update connection"),
            },
            l = lines.recv() => match l.flatten() {
                None => return Ok(()),
                Some(l) => {
                    if !handle(session, &l, out).await? {
                        return Ok(());
                    }
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Acts on one line; `Ok(false)` means quit. Refusals (no such user…) are
/// reported and the session goes on; a lost connection ends it.
async fn handle(session: &Arc<Session>, line: &str, out: &Out) -> anyhow::Result<bool> {
    let r = match parse(line) {
        Line::Quit => return Ok(false),
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
        Line::Files => session.files().await.map(|f| list(out, "files", &f)),
        Line::Get(file, transport) => {
            let (session, out) = (session.clone(), out.clone());
            tokio::spawn(async move {
                let Some(base) = std::path::Path::new(&file).file_name().map(|b| b.to_owned()) else {
                    out.info("error", format!("cannot make a local file name from {}", escape(&file)));
                    return;
                };
                out.info("info", format!("downloading {} over {transport:?}", escape(&file)));
                match session.download(&file, transport, std::path::Path::new(&base), false, |_, _| {}).await {
                    Ok(r) => out.info(
                        "download",
                        format!(
                            "{} downloaded 100% of {} ({} bytes) in {:.1}s. Last byte: {}",
                            escape(session.name()),
                            escape(&r.file),
                            r.size,
                            r.seconds,
                            r.last_byte.map_or("none".into(), |b| b.to_string())
                        ),
                    ),
                    Err(e) => out.info("error", format!("{:#}", fail(e))),
                }
            });
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
        assert_eq!(parse("/get a b.txt --tcp"), Line::Get("a b.txt".into(), Transport::Tcp));
        assert_eq!(parse("/get x"), Line::Get("x".into(), Transport::Udp));
        assert_eq!(parse("/quit"), Line::Quit);
        assert!(matches!(parse("/nope"), Line::Bad(_)));
    }
}
