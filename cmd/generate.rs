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

/// ENVIRONMENT, EXIT STATUS and SEE ALSO, shared by every command's page.
fn common_sections() -> String {
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
    for e in Exit::ALL {
        let _ = write!(s, ".TP\n\\fB{}\\fR\n{}\n", e.code(), roff_text(e.describe()));
    }
    s += ".SH \"SEE ALSO\"\n\\fBchatctl\\fR(1), \\fBchatctl\\-protocol\\fR(7)\n";
    s
}

/// A command's page: clap_mangen's sections, then [`common_sections`].
fn command_page(cmd: &clap::Command) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut out);
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        let _ = man.render_subcommands_section(&mut out);
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        let _ = man.render_extra_section(&mut out);
    }
    out.extend_from_slice(common_sections().as_bytes());
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
