//! `chatctl completions`: print a shell completion script.

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::{Cli, Global};

/// Print a completion script for SHELL to standard output.
///
/// Bash with the bash-completion package (loaded when first needed):
/// `chatctl completions bash > ~/.local/share/bash-completion/completions/chatctl`;
/// without it, in `~/.bashrc`: `source <(chatctl completions bash)`.
/// Zsh: `chatctl completions zsh > ~/.zfunc/_chatctl` (a folder in `$fpath`);
/// fish: `chatctl completions fish > ~/.config/fish/completions/chatctl.fish`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the completion script for `shell`; `chatctl generate` uses it too.
pub fn write(shell: Shell, out: &mut dyn std::io::Write) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "chatctl", &mut script);
    if shell == Shell::Bash {
        script = bash_files(&String::from_utf8_lossy(&script)).into_bytes();
    }
    // Writing into a Vec, or the caller's buffer, as clap_complete does.
    let _ = out.write_all(&script);
}

/// clap_complete's bash script completes a command's positional arguments
/// from its option names only (zsh and fish read the value hints): a
/// command whose positional argument is a path (`capture-decode FILE`)
/// completes file names there too, right after the command as well.
fn bash_files(script: &str) -> String {
    let cmd = Cli::command();
    let mut out = script.to_string();
    for sub in cmd.get_subcommands() {
        let path = sub.get_positionals().any(|a| {
            matches!(
                a.get_value_hint(),
                clap::ValueHint::FilePath | clap::ValueHint::AnyPath | clap::ValueHint::DirPath
            )
        });
        if !path {
            continue;
        }
        let label = format!("chatctl__subcmd__{})", sub.get_name().replace('-', "__subcmd__"));
        let Some(start) = out.find(&format!("        {label}\n")) else { continue };
        let end = out[start..].find("\n            ;;\n").map_or(out.len(), |e| start + e);
        let block = out[start..end]
            .replace("if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then", "if [[ ${cur} == -* ]] ; then")
            .replace(
                "            COMPREPLY=( $(compgen -W \"${opts}\" -- \"${cur}\") )\n            return 0",
                "            COMPREPLY=( $(compgen -f -- \"${cur}\") )\n            return 0",
            );
        out.replace_range(start..end, &block);
    }
    out
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
