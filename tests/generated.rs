//! `completions/` and `man/` are generated from the clap definition in
//! `cmd/`. This test renders them in memory and fails when the committed files
//! are stale; `BLESS=1 cargo test --test generated` rewrites them.

// The binary's modules, compiled here for their clap definitions only.
#![allow(dead_code)]
#[path = "../cmd/capture_decode.rs"]
mod capture_decode;
#[path = "../cmd/cli.rs"]
mod cli;
#[path = "../cmd/completions.rs"]
mod completions;
#[path = "../cmd/fetch.rs"]
mod fetch;
#[path = "../cmd/impair.rs"]
mod impair;
#[path = "../cmd/join.rs"]
mod join;
#[path = "../cmd/list.rs"]
mod list;
#[path = "../cmd/say.rs"]
mod say;
#[path = "../cmd/serve.rs"]
mod serve;
#[path = "../cmd/session.rs"]
mod session;
#[path = "../cmd/shared.rs"]
mod shared;
#[path = "../cmd/whisper.rs"]
mod whisper;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chatctl::exit::Exit;
use clap::CommandFactory;
use clap_complete::{Generator, Shell};

const REGENERATE: &str = "BLESS=1 cargo test --test generated";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Escapes text for roff: backslashes, hyphens, and a leading dot or quote.
fn roff_escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

/// ENVIRONMENT and EXIT STATUS, shared by every page.
fn common_sections() -> String {
    let mut s = String::from(".SH ENVIRONMENT\n");
    for (var, what) in [
        ("CHATCTL_SERVER", "Default for --server (HOST:PORT)."),
        ("CHATCTL_NAME", "Default for --name."),
        ("NO_COLOR", "When set and not empty, no colour unless --color always."),
        ("RUST_LOG", "Overrides the log level of stderr log lines (e.g. debug)."),
    ] {
        s += &format!(".TP\n\\fB{}\\fR\n{}\n", roff_escape(var), roff_escape(what));
    }
    s += ".SH \"EXIT STATUS\"\n";
    for e in Exit::ALL {
        s += &format!(".TP\n\\fB{}\\fR\n{}\n", e.code(), roff_escape(e.describe()));
    }
    s
}

fn render_page(man: &clap_mangen::Man, cmd: &clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).unwrap();
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out).unwrap();
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(&mut out).unwrap();
    }
    out.extend_from_slice(common_sections().as_bytes());
    man.render_version_section(&mut out).unwrap();
    out
}

/// Every generated file: path relative to the root → contents.
fn generated() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
        let mut out = Vec::new();
        completions::write(shell, &mut out);
        files.insert(Path::new("completions").join(shell.file_name("chatctl")), out);
    }
    let mut top = cli::Cli::command();
    top.build();
    files.insert("man/chatctl.1".into(), render_page(&clap_mangen::Man::new(top.clone()), &top));
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("chatctl-{}", sub.get_name());
        // `Command::name` wants a `'static` string; this test process is short-lived.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let cmd = sub.clone().name(static_name).display_name(static_name).bin_name(static_name);
        files.insert(format!("man/{name}.1").into(), render_page(&clap_mangen::Man::new(cmd.clone()), &cmd));
    }
    files
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v != "0");
    let mut stale = Vec::new();
    let files = generated();
    for (rel, want) in &files {
        let path = root().join(rel);
        if std::fs::read(&path).ok().as_deref() != Some(want.as_slice()) {
            if bless {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, want).unwrap();
            } else {
                stale.push(rel.display().to_string());
            }
        }
    }
    // Files in completions/ or man/ that nothing generates any more.
    for dir in ["completions", "man"] {
        for entry in std::fs::read_dir(root().join(dir)).into_iter().flatten().flatten() {
            let rel = Path::new(dir).join(entry.file_name());
            if !files.contains_key(&rel) {
                if bless {
                    std::fs::remove_file(entry.path()).unwrap();
                } else {
                    stale.push(format!("{} (no longer generated)", rel.display()));
                }
            }
        }
    }
    assert!(stale.is_empty(), "stale generated files: {}\nregenerate them with: {REGENERATE}", stale.join(", "));
}

#[test]
fn man_pages_document_every_subcommand_exit_codes_and_environment() {
    let files = generated();
    for sub in ["serve", "join", "say", "whisper", "list", "fetch", "capture-decode", "completions"] {
        let page = files.get(Path::new(&format!("man/chatctl-{sub}.1"))).expect("a page per subcommand");
        let text = String::from_utf8_lossy(page);
        assert!(text.contains(".SH \"EXIT STATUS\""), "{sub}: EXIT STATUS");
        assert!(text.contains(".SH ENVIRONMENT"), "{sub}: ENVIRONMENT");
        assert!(text.contains("CHATCTL_SERVER"), "{sub}: documents CHATCTL_SERVER");
    }
    let top = String::from_utf8_lossy(&files[Path::new("man/chatctl.1")]).into_owned();
    for e in Exit::ALL {
        assert!(top.contains(&format!("\\fB{}\\fR", e.code())), "exit code {} documented", e.code());
    }
}
