//! `chatctl completions`: print a shell completion script.

use anyhow::Context;
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
    // Generated in memory: clap_complete panics on a write error, and
    // `chatctl completions bash | head` closes the pipe early.
    let mut script = Vec::new();
    write(args.shell, &mut script);
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, &script)
        .and_then(|()| std::io::Write::flush(&mut stdout))
        .context("cannot write to standard output")
}
