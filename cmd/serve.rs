//! `chatctl serve`: the room server.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cli::{Global, not_implemented};

/// Run the room server.
///
/// Example: `chatctl serve --files ./share`. Above 10 users (--max-users) the
/// server uses the extended list encoding, which classic clients cannot read.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (IPv6 accepted, e.g. `[::]:13337`).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:13337")]
    pub listen: String,

    /// Folder whose regular files can be downloaded [default: none].
    #[arg(long, value_name = "DIR")]
    pub files: Option<PathBuf>,

    /// Pool of ports for update connections and transfers.
    #[arg(long, value_name = "LO-HI", default_value = "55000-55030")]
    pub ports: String,

    /// Most users in the room; above 10, classic clients cannot read the user lists.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_users: usize,

    /// How long a joining client has to open its update connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub join_timeout: Duration,

    /// Log line format on stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(_args: ServeArgs, _global: &Global) -> anyhow::Result<()> {
    Err(not_implemented("serve"))
}
