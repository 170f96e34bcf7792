//! `chatctl completions`: print a shell completion script.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::{Cli, Global};

/// Print a completion script for SHELL to standard output.
///
/// Example: `chatctl completions bash > /etc/bash_completion.d/chatctl`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the completion script for `shell`; `chatctl generate` uses it too.
pub fn write(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "chatctl", out);
}

pub fn run(args: CompletionsArgs, _global: &Global) -> anyhow::Result<()> {
    write(args.shell, &mut std::io::stdout().lock());
    Ok(())
}
