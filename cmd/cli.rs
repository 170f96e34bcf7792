//! The command line: global options and the subcommand list. Each
//! subcommand's own arguments live in its file.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{capture_decode, completions, fetch, impair, join, list, say, serve, whisper};

/// A one-room chat with fast file downloads: a server, a scriptable client,
/// FAST reliable UDP and a capture decoder, wire-compatible with the classic
/// protocol.
#[derive(Debug, Parser)]
#[command(name = "chatctl", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Every subcommand has its own --help. Exit codes are listed in the chatctl(1) man page.")]
struct Raw {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The command line: [`Raw`] as clap derives it, with the options of
/// [`PER_COMMAND`] accepted (and shown in help, man pages and completions)
/// before any subcommand and after the subcommands they apply to, not the others.
#[derive(Debug)]
pub struct Cli {
    pub global: Global,
    pub command: Command,
}

/// Options that mean something only to some subcommands, and those subcommands.
const PER_COMMAND: &[(&str, &[&str])] = &[
    ("server", CLIENTS),
    ("name", CLIENTS),
    ("timeout", CLIENTS),
    ("json", &["join", "say", "whisper", "list", "fetch", "serve", "capture-decode", "impair"]),
];

/// The subcommands that talk to a server.
const CLIENTS: &[&str] = &["join", "say", "whisper", "list", "fetch"];

/// `cmd` with each option of [`PER_COMMAND`] also under its subcommands
/// (there without an environment variable or default, so that a value
/// given before the subcommand, or by the environment, stands unless given
/// again after it).
fn per_command(mut cmd: clap::Command) -> clap::Command {
    for (id, under) in PER_COMMAND {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id).cloned() else { continue };
        let arg = arg.env(None::<&str>).default_value(None::<&str>);
        for sub in *under {
            let arg = arg.clone();
            cmd = cmd.mut_subcommand(*sub, |c| c.arg(arg.help_heading("Client options")));
        }
    }
    cmd
}

impl clap::CommandFactory for Cli {
    fn command() -> clap::Command {
        per_command(Raw::command())
    }

    fn command_for_update() -> clap::Command {
        per_command(Raw::command_for_update())
    }
}

impl clap::FromArgMatches for Cli {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        use clap::parser::ValueSource;
        let Raw { mut global, command } = Raw::from_arg_matches(m)?;
        if let Some((_, sub)) = m.subcommand() {
            let given = |id: &str| {
                sub.try_contains_id(id).unwrap_or(false) && sub.value_source(id) == Some(ValueSource::CommandLine)
            };
            if given("server")
                && let Some(v) = sub.get_one::<String>("server")
            {
                global.server = v.clone();
            }
            if given("name")
                && let Some(v) = sub.get_one::<String>("name")
            {
                global.name = Some(v.clone());
            }
            if given("timeout")
                && let Some(v) = sub.get_one::<Duration>("timeout")
            {
                global.timeout = *v;
            }
            if given("json") {
                global.json = true;
            }
        }
        Ok(Cli { global, command })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Parser for Cli {}

/// Options given before the subcommand's name; `-q`, `-v` and `--color` are
/// accepted after it too, the others after the subcommands they apply to
/// (see [`Cli`]).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT
    /// (on this machine, 127.0.0.1).
    #[arg(
        short,
        long,
        env = "CHATCTL_SERVER",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:13337",
        value_parser = parse_server
    )]
    pub server: String,

    /// Name to join the room with [default: asked on a TTY, else the login name].
    #[arg(short, long, env = "CHATCTL_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// How long to wait for the server, e.g. `5s`, `1m`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Machine-readable output: JSON (one object per line for streams; for
    /// `serve`, JSON log lines).
    #[arg(long)]
    pub json: bool,

    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail; repeat for more (`-vv`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour (NO_COLOR in the environment means never, unless `always`).
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// `--server`: its form checked (a bad port is a usage error), its host resolved later.
fn parse_server(s: &str) -> Result<String, String> {
    chatctl::client::check_server(s).map(|()| s.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Serve(serve::ServeArgs),
    Join(join::JoinArgs),
    Say(say::SayArgs),
    Whisper(whisper::WhisperArgs),
    List(list::ListArgs),
    Fetch(fetch::FetchArgs),
    CaptureDecode(capture_decode::CaptureDecodeArgs),
    Impair(impair::ImpairArgs),
    Completions(completions::CompletionsArgs),
}

impl Command {
    /// The subcommand's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Serve(_) => "serve",
            Command::Join(_) => "join",
            Command::Say(_) => "say",
            Command::Whisper(_) => "whisper",
            Command::List(_) => "list",
            Command::Fetch(_) => "fetch",
            Command::CaptureDecode(_) => "capture-decode",
            Command::Impair(_) => "impair",
            Command::Completions(_) => "completions",
        }
    }
}
