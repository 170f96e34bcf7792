//! `chatctl generate [DIR]` (hidden): writes the generated files, `completions/`
//! and `man/`, from the clap definitions in `cmd/` and the protocol reference
//! in `lib/protocol.md`. It is product code, as in ripgrep, so what a
//! packager generates is what `tests/generated.rs` checks against the
//! committed files. The output is deterministic: no date, no git hash.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chatctl::exit::Exit;
use clap::{CommandFactory, Parser};
use clap_complete::{Generator, Shell};

use crate::cli::Cli;
use crate::completions;

// Hidden: a parser of its own, run before the user-facing one, so that
// neither `chatctl --help`, the man pages nor the completions offer it.
/// Write the shell completions and man pages under DIR (for packagers).
///
/// Creates DIR/completions/ and DIR/man/ and overwrites the files there.
#[derive(Debug, Parser)]
#[command(name = "chatctl generate", bin_name = "chatctl generate")]
struct GenerateArgs {
    /// Directory to write `completions/` and `man/` into.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

/// `chatctl generate [DIR]`.
pub fn main() -> ExitCode {
    let args = GenerateArgs::parse_from(std::env::args_os().skip(1));
    match write_all(&args.dir) {
        Ok(()) => Exit::Ok.into(),
        Err(err) => {
            eprintln!("chatctl generate: {err:#}");
            Exit::Failure.into()
        }
    }
}

fn write_all(dir: &Path) -> anyhow::Result<()> {
    for (rel, bytes) in files() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The protocol reference, also the docs of the library's `protocol` module.
const PROTOCOL: &str = include_str!("../lib/protocol.md");

/// Every generated file: path relative to DIR → contents.
fn files() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
        let mut out = Vec::new();
        completions::write(shell, &mut out);
        files.insert(Path::new("completions").join(shell.file_name("chatctl")), out);
    }
    let mut top = Cli::command();
    top.build();
    files.insert("man/chatctl.1".into(), command_page(&top));
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help" && !s.is_hide_set()) {
        let name = format!("chatctl-{}", sub.get_name());
        let cmd = sub.clone().name(name.clone()).display_name(name.clone()).bin_name(name.clone());
        files.insert(format!("man/{name}.1").into(), command_page(&cmd));
    }
    files.insert("man/chatctl-protocol.7".into(), protocol_page(PROTOCOL).into_bytes());
    files
}

/// Text for roff: special characters escaped, and not read as a request.
fn roff_text(s: &str) -> String {
    line_start(&escape(s))
}

/// What a page says beyond clap's definitions: examples (from the
/// README's tour), the exit codes the command can return (with what each
/// means for it where that differs), and the pages to see also.
struct Extra {
    examples: &'static [(&'static str, &'static str)],
    /// The codes beyond 0 (success), 1 (any other error) and 2 (usage).
    exits: &'static [(Exit, Option<&'static str>)],
    see_also: &'static [&'static str],
}

/// The codes of every command that joins the room (as `-n NAME`).
const JOINING: [(Exit, Option<&str>); 8] = [
    (Exit::Connect, None),
    (Exit::InvalidName, None),
    (Exit::NameTaken, None),
    (Exit::ServerFull, None),
    (Exit::Timeout, None),
    (Exit::Protocol, None),
    (Exit::ServerGone, None),
    (Exit::Interrupted, None),
];

fn extra(command: &str) -> Extra {
    const NONE: &[(Exit, Option<&str>)] = &[];
    match command {
        "serve" => Extra {
            examples: &[
                (
                    "The room server, offering the files of ./share (Ctrl-C stops it cleanly):",
                    "chatctl serve --files ./share",
                ),
                ("On one address only:", "chatctl serve --files ./share --listen 127.0.0.1:13337"),
                (
                    "Predictable ports (one user: update port 55000, download 55001) and 1500-byte-MTU datagrams, for chatctl-impair(1):",
                    "chatctl serve --files ./share --ports 55000-55001 --max-datagram 1452",
                ),
            ],
            exits: NONE,
            see_also: &["chatctl-join", "chatctl-fetch", "chatctl-impair"],
        },
        "join" => Extra {
            examples: &[
                (
                    "Chat interactively (type to talk, @bob hi to whisper, /get FILE, Tab completes, /help):",
                    "chatctl -n alice join",
                ),
                (
                    "A shared session in the background for scripts, then its end:",
                    "chatctl -n ci join --detach --reconnect\nchatctl -n ci say -q \"step 1 done\"\nchatctl -n ci join --stop",
                ),
                (
                    "Ask, and wait up to 30 s for alice's private answer (exit 9 if none comes):",
                    "echo \"@alice deploy now?\" | chatctl -n bot join --from alice --private --count 1 --for 30s",
                ),
            ],
            exits: &[
                (Exit::Connect, None),
                (Exit::InvalidName, None),
                (Exit::NameTaken, None),
                (Exit::ServerFull, None),
                (Exit::Timeout, Some("the server did not answer within --timeout, or nothing matched within --for")),
                (Exit::Protocol, None),
                (Exit::ServerGone, Some("the server went away (without --reconnect)")),
                (Exit::Interrupted, None),
            ],
            see_also: &["chatctl-say", "chatctl-whisper", "chatctl-fetch"],
        },
        "say" => Extra {
            examples: &[
                ("Broadcast one message:", "chatctl -n bot say \"build finished\""),
                ("Broadcast each line as it arrives:", "tail -f app.log | chatctl -n log say"),
            ],
            exits: &JOINING,
            see_also: &["chatctl-join", "chatctl-whisper"],
        },
        "whisper" => Extra {
            examples: &[("A private message to alice:", "chatctl -n bob whisper alice \"lunch?\"")],
            exits: &[
                (Exit::Connect, None),
                (Exit::InvalidName, None),
                (Exit::NameTaken, None),
                (Exit::ServerFull, None),
                (Exit::NoSuchUser, None),
                (Exit::Timeout, None),
                (Exit::Protocol, None),
                (Exit::ServerGone, None),
                (Exit::Interrupted, None),
            ],
            see_also: &["chatctl-join", "chatctl-say"],
        },
        "list" => Extra {
            examples: &[
                ("Who is here:", "chatctl -n bob list"),
                ("What can be downloaded, for a script:", "chatctl -n bob --json list --files"),
            ],
            exits: &JOINING,
            see_also: &["chatctl-join", "chatctl-fetch"],
        },
        "fetch" => Extra {
            examples: &[
                ("Download a file (fast UDP by default):", "chatctl -n bob fetch README.md"),
                ("Over TCP, into a folder:", "chatctl -n bob fetch --tcp README.md -o downloads/"),
                ("Resume an interrupted fast-UDP download:", "chatctl -n bob fetch --continue big.iso"),
                (
                    "Through a lossy relay (see chatctl-impair(1)), with the transfer's figures:",
                    "chatctl -n alice fetch big.iso --udp-via 127.0.0.1:9000 -v",
                ),
            ],
            exits: &[
                (Exit::Connect, None),
                (Exit::InvalidName, None),
                (Exit::NameTaken, None),
                (Exit::ServerFull, None),
                (Exit::NoSuchFile, None),
                (Exit::Timeout, None),
                (Exit::TransferFailed, None),
                (Exit::Protocol, None),
                (Exit::ServerGone, None),
                (Exit::Interrupted, Some("interrupted (Ctrl-C); a fast download can be resumed with --continue")),
            ],
            see_also: &["chatctl-list", "chatctl-serve", "chatctl-impair"],
        },
        "capture-decode" => Extra {
            examples: &[
                ("The conversation in a capture:", "chatctl capture-decode traffic.pcapng"),
                (
                    "Record and decode as it happens:",
                    "tcpdump -i any -U -w - port 13337 or portrange 55000-55030 | chatctl capture-decode",
                ),
                ("Every datagram of the downloads, for a script:", "chatctl capture-decode --json -v traffic.pcapng"),
                ("Counts per kind, users and a table of transfers:", "chatctl capture-decode --summary traffic.pcapng"),
                (
                    "Rebuild the downloaded files and draw each transfer as PNG:",
                    "chatctl capture-decode --extract files/ --plot plots/t.png traffic.pcapng",
                ),
            ],
            exits: NONE,
            see_also: &["chatctl-fetch", "chatctl-impair", "tcpdump(1)"],
        },
        "impair" => Extra {
            examples: &[
                (
                    "A lossy, slow path to a server started with --ports 55000-55001, and a download through it:",
                    "chatctl impair --listen 127.0.0.1:9000 --target localhost:55001 --loss 1% --delay 25ms --rate 200Mbit\nchatctl -n alice fetch big.iso --udp-via 127.0.0.1:9000 -v",
                ),
                (
                    "Bursts of loss and reordering, the same every run:",
                    "chatctl impair --listen 127.0.0.1:9000 --target 127.0.0.1:55001 --loss 2 --burst 30 --reorder 1 --seed 7",
                ),
            ],
            exits: NONE,
            see_also: &["chatctl-fetch", "chatctl-serve", "tc-netem(8)"],
        },
        "completions" => Extra {
            examples: &[
                (
                    "Bash, with the bash-completion package (loaded on demand):",
                    "chatctl completions bash > ~/.local/share/bash-completion/completions/chatctl",
                ),
                ("Bash without it (in ~/.bashrc):", "source <(chatctl completions bash)"),
                ("Zsh (a folder in $fpath):", "chatctl completions zsh > ~/.zfunc/_chatctl"),
                ("Fish:", "chatctl completions fish > ~/.config/fish/completions/chatctl.fish"),
            ],
            exits: NONE,
            see_also: &[],
        },
        _ => Extra {
            examples: &[
                ("The room server (Ctrl-C stops it cleanly):", "chatctl serve --files ./share"),
                ("Chat interactively:", "chatctl -n alice join"),
                (
                    "Broadcast one message, then a private one:",
                    "chatctl -n bot say \"build finished\"\nchatctl -n bob whisper alice \"lunch?\"",
                ),
                ("Who is here, and a download:", "chatctl -n bob list\nchatctl -n bob fetch README.md"),
                ("The conversation in a capture:", "chatctl capture-decode traffic.pcapng"),
                (
                    "A lossy UDP path for experiments:",
                    "chatctl impair --listen 127.0.0.1:9000 --target 127.0.0.1:55001 --loss 1% --delay 25ms",
                ),
            ],
            exits: NONE,
            see_also: &[],
        },
    }
}

/// The top page's DESCRIPTION (the top command's help is one line).
const DESCRIPTION: &str = "chatctl is a one-room chat with fast file downloads, as one command. \
chatctl serve runs the room server; join, say, whisper, list and fetch are its clients; \
fetch downloads over TCP, the classic go-back-N UDP, or chatctl's fast reliable UDP, \
which falls back to go-back-N with a classic server. \
capture-decode reads the chat and its downloads out of a pcap or pcapng capture, \
and impair relays UDP through seeded loss, delay and a rate limit, for experiments.\n\
chatctl speaks the classic protocol byte for byte (chatctl-protocol(7)), so it works with the \
original server and clients. Each command has its own page, chatctl-COMMAND(1); the global \
options are given before the command, as in chatctl -n alice join.";

/// `.B` lines of an example's commands, after its description.
fn examples(ex: &[(&str, &str)]) -> String {
    let mut s = String::from(".SH EXAMPLES\n");
    for (what, cmds) in ex {
        let _ = write!(s, ".PP\n{}\n.PP\n.RS 4\n.nf\n", roff_text(what));
        for c in cmds.lines() {
            let _ = writeln!(s, "\\fB{}\\fR", escape(c));
        }
        s += ".fi\n.RE\n";
    }
    s
}

/// `chatctl-fetch` as a link: `\fBchatctl\-fetch\fR(1)`; `tcpdump(1)` as is.
fn link(page: &str) -> String {
    match page.split_once('(') {
        Some((name, sect)) => format!("\\fB{}\\fR({sect}", escape(name)),
        None => format!("\\fB{}\\fR(1)", escape(page)),
    }
}

/// ENVIRONMENT, EXIT STATUS and SEE ALSO of a command's page (`name`:
/// `chatctl` or `chatctl-fetch`).
fn common_sections(name: &str, extra: &Extra, top: bool) -> String {
    let mut s = String::from(".SH ENVIRONMENT\n");
    for (var, what) in [
        ("CHATCTL_SERVER", "Default for --server (HOST:PORT)."),
        ("CHATCTL_NAME", "Default for --name."),
        ("NO_COLOR", "When set and not empty, no colour unless --color always."),
        ("RUST_LOG", "Overrides the log level of stderr log lines (e.g. debug)."),
    ] {
        let _ = write!(s, ".TP\n\\fB{}\\fR\n{}\n", roff_text(var), roff_text(what));
    }
    s += ".SH \"EXIT STATUS\"\n";
    let codes: Vec<(Exit, Option<&str>)> = if top {
        Exit::ALL.iter().map(|&e| (e, None)).collect()
    } else {
        [(Exit::Ok, None), (Exit::Failure, None), (Exit::Usage, None)]
            .into_iter()
            .chain(extra.exits.iter().copied())
            .collect()
    };
    for (e, what) in codes {
        let _ = write!(s, ".TP\n\\fB{}\\fR\n{}\n", e.code(), roff_text(what.unwrap_or(e.describe())));
    }
    if top {
        s += ".PP\nEach command's page lists the codes it returns.\n";
    }
    s += &examples(extra.examples);
    s += ".SH \"SEE ALSO\"\n";
    let mut pages: Vec<String> = Vec::new();
    if top {
        pages.extend(subcommand_names().into_iter().map(|n| format!("chatctl-{n}")));
    } else {
        pages.push("chatctl".into());
        pages.extend(extra.see_also.iter().map(|p| p.to_string()));
    }
    pages.push("chatctl-protocol(7)".into());
    pages.retain(|p| p != name);
    s += &pages.iter().map(|p| link(p)).collect::<Vec<_>>().join(", ");
    s.push('\n');
    s
}

/// The commands that have a page of their own (not `help`, nothing hidden).
fn subcommand_names() -> Vec<String> {
    let top = Cli::command();
    top.get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect()
}

/// SYNOPSIS as the usage line reads, `chatctl fetch [OPTIONS] [FILE]...`:
/// the command in bold, what the user supplies in italics.
fn synopsis(cmd: &mut clap::Command) -> String {
    let usage = cmd.render_usage().to_string();
    let usage = usage.trim().strip_prefix("Usage:").unwrap_or(&usage).trim().to_string();
    let bin = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    let rest = usage.strip_prefix(&bin).unwrap_or(&usage);
    let mut out = format!(".SH SYNOPSIS\n\\fB{}\\fR", escape(&bin));
    for (i, token) in rest.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // An option in bold (`--listen`), its value names in italics.
        let open = usize::from(token.starts_with('['));
        let tail = if token[open..].starts_with('-') {
            let end = token[open..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(token.len(), |e| e + open);
            let _ = write!(out, "{}\\fB{}\\fR", &token[..open], escape(&token[open..end]));
            &token[end..]
        } else {
            token
        };
        let mut word = String::new();
        for c in tail.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphanumeric() || c == '_' || (c == '-' && !word.is_empty()) {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                let _ = write!(out, "\\fI{}\\fR", escape(&word));
                word.clear();
            }
            if c != ' ' {
                out += &escape(&c.to_string());
            }
        }
    }
    out.push('\n');
    out
}

/// A command's page: a title, NAME, SYNOPSIS from the usage, clap_mangen's
/// DESCRIPTION and OPTIONS, then COMMANDS (top page), EXIT STATUS,
/// EXAMPLES and SEE ALSO.
fn command_page(cmd: &clap::Command) -> Vec<u8> {
    let top = cmd.get_name() == "chatctl";
    let sub = cmd.get_name().strip_prefix("chatctl-").unwrap_or("");
    let extra = extra(sub);
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let page = cmd.get_name();
    out.extend_from_slice(
        format!(
            ".TH {} 1 \"\" \"chatctl {}\" \"User Commands\"\n",
            escape(&page.to_uppercase()),
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    // Writing into a Vec cannot fail.
    let _ = man.render_name_section(&mut out);
    let mut usage_cmd = cmd.clone().bin_name(if top { "chatctl".into() } else { format!("chatctl {sub}") });
    out.extend_from_slice(synopsis(&mut usage_cmd).as_bytes());
    if top {
        let mut d = String::from(".SH DESCRIPTION\n");
        for para in DESCRIPTION.split('\n') {
            let _ = write!(d, ".PP\n{}\n", roff_text(para));
        }
        out.extend_from_slice(d.as_bytes());
    } else {
        let _ = man.render_description_section(&mut out);
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut out);
    }
    if top {
        let mut c = String::from(".SH COMMANDS\n");
        for s in cmd.get_subcommands().filter(|s| s.get_name() != "help" && !s.is_hide_set()) {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            let _ = write!(c, ".TP\n{}\n{}\n", link(&format!("chatctl-{}", s.get_name())), roff_text(&about));
        }
        out.extend_from_slice(c.as_bytes());
    }
    // (The top command's after-help points from --help to this page.)
    if !top && (cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some()) {
        let _ = man.render_extra_section(&mut out);
    }
    out.extend_from_slice(common_sections(page, &extra, top).as_bytes());
    let _ = man.render_version_section(&mut out);
    out
}

/// `chatctl-protocol(7)`: the reference rendered from its Markdown.
fn protocol_page(markdown: &str) -> String {
    let mut out = String::from("'\\\" t\n");
    let _ = writeln!(out, ".TH CHATCTL\\-PROTOCOL 7 \"\" \"chatctl {}\"", env!("CARGO_PKG_VERSION"));
    out += ".SH NAME\nchatctl\\-protocol \\- the chat wire protocol spoken by chatctl and the classic implementation\n.SH DESCRIPTION\n";
    out += &markdown_to_roff(markdown);
    out += ".SH \"SEE ALSO\"\n\\fBchatctl\\fR(1), \\fBchatctl\\-serve\\fR(1), \\fBchatctl\\-fetch\\fR(1), \\fBchatctl\\-capture\\-decode\\fR(1)\n";
    out
}

/// Renders the Markdown subset the protocol reference is written in: `#`
/// (skipped: the page has its own NAME), `##` and `###` headings,
/// paragraphs, `-` and `1.` lists (continued by indented lines), pipe
/// tables (through tbl) and fenced code blocks; inline code, `**bold**`,
/// `*italic*` and links (their text only). Anything else is text.
fn markdown_to_roff(md: &str) -> String {
    let mut out = String::new();
    let mut lines = md.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_end();
        if trimmed.is_empty() || (trimmed.starts_with("# ")) {
            continue;
        }
        if let Some(h) = trimmed.strip_prefix("## ") {
            let _ = writeln!(out, ".SH \"{}\"", inline(&h.to_uppercase()));
        } else if let Some(h) = trimmed.strip_prefix("### ") {
            let _ = writeln!(out, ".SS \"{}\"", inline(h));
        } else if trimmed.starts_with("```") {
            out += ".PP\n.RS 4\n.nf\n";
            for code in lines.by_ref().take_while(|l| !l.trim_start().starts_with("```")) {
                out += &line_start(&escape(code));
                out.push('\n');
            }
            out += ".fi\n.RE\n";
        } else if trimmed.starts_with('|') {
            let mut rows = vec![cells(trimmed)];
            while let Some(next) = lines.next_if(|l| l.trim_start().starts_with('|')) {
                if !next.trim().trim_matches('|').chars().all(|c| matches!(c, '-' | ':' | '|' | ' ')) {
                    rows.push(cells(next.trim()));
                }
            }
            table(&mut out, &rows);
        } else {
            // A paragraph or a list item, with its continuation lines.
            let item = list_marker(trimmed);
            let mut text = vec![item.map_or(trimmed, |(_, rest)| rest).to_string()];
            while let Some(next) = lines.next_if(|l| {
                !l.trim().is_empty()
                    && (item.is_none() || l.starts_with("  "))
                    && list_marker(l).is_none()
                    && !is_block_start(l)
            }) {
                text.push(next.trim().to_string());
            }
            match item {
                Some(("-", _)) => out += ".IP \\(bu 2\n",
                Some((marker, _)) => {
                    let _ = writeln!(out, ".IP {marker} 4");
                }
                None => out += ".PP\n",
            }
            // One line per paragraph, so that code spans and emphasis may
            // cross the Markdown's line breaks (roff fills it anyway).
            out += &line_start(&inline(&text.join(" ")));
            out.push('\n');
        }
    }
    out
}

/// `- ` or `12. ` at the start of a line: the marker and the rest.
fn list_marker(line: &str) -> Option<(&str, &str)> {
    if let Some(rest) = line.strip_prefix("- ") {
        return Some(("-", rest));
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let rest = line[digits..].strip_prefix(". ")?;
    (digits > 0).then(|| (&line[..digits + 1], rest))
}

fn is_block_start(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('#') || t.starts_with('|') || t.starts_with("```")
}

/// A table row's cells, trimmed; `\|` is a literal bar.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => cells.last_mut().unwrap().push(chars.next().unwrap()),
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// A tbl table: a bold header row, text blocks that wrap, the last column widest.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let n = rows.iter().map(Vec::len).max().unwrap_or(1);
    let format = |bold: &str| {
        (0..n).map(|i| if i + 1 == n { format!("l{bold}x") } else { format!("l{bold}") }).collect::<Vec<_>>().join(" ")
    };
    // Left-aligned text in the cells: narrow columns of long code cannot be justified.
    let _ = write!(out, ".PP\n.na\n.TS\nallbox;\n{}\n{}.\n", format("B"), format(""));
    for row in rows {
        let cells: Vec<String> = (0..n)
            .map(|i| format!("T{{\n{}\nT}}", line_start(&inline(row.get(i).map_or("", String::as_str)))))
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out.push_str(".TE\n.ad\n");
}

/// Escapes roff's special characters in literal text; non-ASCII characters
/// become `\[uXXXX]`, which groff and mandoc read without a preprocessor.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c if c.is_ascii() => out.push(c),
            c => {
                let _ = write!(out, "\\[u{:04X}]", u32::from(c));
            }
        }
    }
    out
}

/// A line that would start with a control character (`.` or `'`) starts with `\&` instead.
fn line_start(s: &str) -> String {
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s.to_string() }
}

/// Inline Markdown to roff: code spans and `**bold**` in bold, `*em*` in
/// italics, links reduced to their text.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            if let Some(end) = rest[1..].find('`') {
                let _ = write!(out, "\\fB{}\\fR", escape(&rest[1..=end]));
                rest = &rest[end + 2..];
                continue;
            }
        } else if let Some(body) = rest.strip_prefix("**") {
            if let Some(end) = body.find("**") {
                let _ = write!(out, "\\fB{}\\fR", inline(&body[..end]));
                rest = &body[end + 2..];
                continue;
            }
        } else if let Some(body) = rest.strip_prefix('*') {
            if let Some(end) = body.find('*').filter(|&e| e > 0) {
                let _ = write!(out, "\\fI{}\\fR", inline(&body[..end]));
                rest = &body[end + 1..];
                continue;
            }
        } else if let Some(body) = rest.strip_prefix('[')
            && let Some(end) = body.find(']')
        {
            let after = &body[end + 1..];
            out += &inline(&body[..end]);
            rest = match after.strip_prefix('(').and_then(|a| a.find(')').map(|e| &a[e + 1..])) {
                Some(tail) => tail,
                None => after,
            };
            continue;
        }
        out += &escape(&rest[..c.len_utf8()]);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_blocks_become_roff() {
        let md = "# Title\n\nSome *text* with `a-b`\nand [`link`](crate::wire) **bold\nacross**.\n\n## Part one\n\n- item `.x`\n  continued\n- two\n\n1. first\n2. second\n\n| a | b |\n|---|---|\n| `1\\|2` | c |\n\n```text\n.dot \\ line\n```\n";
        let roff = markdown_to_roff(md);
        assert_eq!(
            roff,
            ".PP\nSome \\fItext\\fR with \\fBa\\-b\\fR and \\fBlink\\fR \\fBbold across\\fR.\n.SH \"PART ONE\"\n.IP \\(bu 2\nitem \\fB.x\\fR continued\n.IP \\(bu 2\ntwo\n.IP 1. 4\nfirst\n.IP 2. 4\nsecond\n.PP\n.na\n.TS\nallbox;\nlB lBx\nl lx.\nT{\na\nT}\tT{\nb\nT}\nT{\n\\fB1|2\\fR\nT}\tT{\nc\nT}\n.TE\n.ad\n.PP\n.RS 4\n.nf\n\\&.dot \\e line\n.fi\n.RE\n"
        );
    }

    #[test]
    fn non_ascii_text_is_escaped_for_roff() {
        assert_eq!(inline("caf\u{e9} -> x"), "caf\\[u00E9] \\-> x");
    }
}
