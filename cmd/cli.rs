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
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts, before or after its name.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT
    /// (on this machine, 127.0.0.1).
    #[arg(
        short,
        long,
        global = true,
        env = "CHATCTL_SERVER",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:13337",
        value_parser = parse_server
    )]
    pub server: String,

    /// Name to join the room with [default: asked on a TTY, else the login name].
    #[arg(short, long, global = true, env = "CHATCTL_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// How long to wait for the server, e.g. `5s`, `1m`, `500ms`.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Machine-readable output: JSON (one object per line for streams).
    #[arg(long, global = true)]
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
