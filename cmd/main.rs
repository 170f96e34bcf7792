//! The `chatctl` binary: parses arguments, runs one subcommand, prints its
//! error once as `chatctl NAME: …` (NAME is the subcommand, so a script that
//! runs several can tell which one failed) and exits with a documented code.
//! The work itself is done by the `chatctl` library.

mod capture_decode;
mod cli;
mod common;
mod completions;
mod fetch;
mod generate;
mod impair;
mod join;
mod list;
mod say;
mod serve;
mod shared_session;
mod whisper;

use std::process::ExitCode;

use chatctl::exit::Exit;
use clap::Parser;

use crate::cli::{Cli, ColorChoice, Command, Global};

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "generate") {
        return generate::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // A panic under a prompt must not leave the terminal raw with the cursor hidden.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        common::restore_terminal();
        default_hook(info);
    }));
    setup_color(&cli.global);
    setup_tracing(&cli);
    let name = cli.command.name();
    let json = cli.global.json;
    let r = run(cli);
    // A prompt abandoned on its thread (SIGINT ended the command) gives the terminal back.
    common::restore_terminal();
    match r {
        Ok(()) => Exit::Ok.into(),
        Err(err) => {
            if common::is_broken_pipe(&err) {
                // `chatctl list | head -1`: the reader left, which is fine.
                return Exit::Ok.into();
            }
            let exit = exit_for(&err);
            // Not `eprintln!`: with `2>&1 | head`, standard error is closed too.
            let message = message(&err, exit);
            if json {
                common::note(format_args!("{}", json_error(Some(name), &message, exit)));
            } else {
                common::note(format_args!("chatctl {name}: {message}"));
            }
            exit.into()
        }
    }
}

/// A command line clap refused: its own message and code, or with `--json`
/// anywhere before `--`, the same as one JSON object. `--help` and
/// `--version` print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    if !e.use_stderr() || !json {
        e.exit();
    }
    let text = e.render().to_string();
    let message = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
    eprintln!("{}", json_error(None, message, Exit::Usage));
    Exit::Usage.into()
}

/// An error for scripts (`--json`): one line on stderr, e.g.
/// `{"command":"list","kind":"timeout","exit":9,"message":"timed out …"}`.
/// `kind` names the exit code (the man page's EXIT STATUS); `command` is
/// null when the command line itself was refused.
fn json_error(command: Option<&str>, message: &str, exit: Exit) -> String {
    serde_json::json!({ "command": command, "kind": exit.kind(), "exit": exit.code(), "message": message }).to_string()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Serve(a) => serve::run(a, g),
        Command::Join(a) => join::run(a, g),
        Command::Say(a) => say::run(a, g),
        Command::Whisper(a) => whisper::run(a, g),
        Command::List(a) => list::run(a, g),
        Command::Fetch(a) => fetch::run(a, g),
        Command::CaptureDecode(a) => capture_decode::run(a, g),
        Command::Impair(a) => impair::run(a, g),
        Command::Completions(a) => completions::run(a, g),
    }
}

/// The exit code for an error: the outermost [`Exit`] attached as context
/// (`.context(Exit::Timeout)`; `chain()` cannot see those), else the first
/// cause in the chain that is one.
fn exit_for(err: &anyhow::Error) -> Exit {
    err.downcast_ref::<Exit>()
        .copied()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<Exit>().copied()))
        .unwrap_or(Exit::Failure)
}

/// The error chain as `outer: inner: …`, without the [`Exit`] labels that
/// only carry the exit code (their text is the man page's description, which
/// would repeat what the message already says), unless nothing else is left.
/// An error as its one line for a person (no exit-code label), for errors
/// reported without ending the command (a `/get` in `join`).
pub(crate) fn describe(err: &anyhow::Error) -> String {
    message(err, exit_for(err))
}

fn message(err: &anyhow::Error, exit: Exit) -> String {
    let label = exit.to_string();
    let parts: Vec<String> = err.chain().map(|e| e.to_string()).filter(|m| *m != label).collect();
    if parts.is_empty() { label } else { parts.join(": ") }
}

/// `--color` wins; otherwise NO_COLOR (any value) turns colour off and
/// `console` decides from the terminal.
fn setup_color(g: &Global) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let on = match g.color {
        ColorChoice::Always => Some(true),
        ColorChoice::Never => Some(false),
        ColorChoice::Auto if no_color => Some(false),
        ColorChoice::Auto => None,
    };
    if let Some(on) = on {
        console::set_colors_enabled(on);
        console::set_colors_enabled_stderr(on);
    }
}

/// Log lines go to stderr. The server logs events at `info` by default; the
/// client commands only warnings unless `-v`. `RUST_LOG` overrides both.
fn setup_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let g = &cli.global;
    let base = match (&cli.command, g.quiet, g.verbose) {
        (_, true, _) => "error",
        (_, _, 2..) => "trace",
        (_, _, 1) => "debug",
        (Command::Serve(_), _, 0) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(base));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let json = matches!(&cli.command, Command::Serve(a) if a.log_format == serve::LogFormat::Json || g.json);
    let ansi = console::colors_enabled_stderr();
    // A second init (tests in one process) is harmless: ignore its error.
    let _ = if json { builder.json().try_init() } else { builder.with_ansi(ansi).try_init() };
}
