//! The command-line surface that scripts rely on.

use predicates::prelude::*;

use crate::common;

#[test]
fn help_lists_all_seven_subcommands() {
    let out = common::cli().arg("--help").assert().success().get_output().stdout.clone();
    let help = String::from_utf8(out).unwrap();
    for sub in ["serve", "join", "say", "whisper", "list", "fetch", "capture-decode", "completions"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(sub)), "--help lists {sub}:\n{help}");
    }
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    common::cli().args(["--color", "never", "--timeout", "5s", "completions", "bash"]).assert().success();
    common::cli().args(["completions", "bash", "--color", "never", "-q"]).assert().success();
    // After the subcommand, client options only where they apply.
    common::cli().args(["completions", "bash", "--timeout", "1m"]).assert().code(2);
    common::cli().args(["serve", "-s", "127.0.0.1:1", "--help"]).assert().code(2);
}

/// `list` takes what to list as a word or as `--files`, not both, and no
/// other word.
#[test]
fn list_takes_users_or_files() {
    common::cli().args(["-s", "127.0.0.1:1", "list", "users", "--files"]).assert().code(2);
    common::cli()
        .args(["-s", "127.0.0.1:1", "list", "rooms"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("users").and(predicate::str::contains("files")));
}

/// Help lists an option only under the subcommands it means something to.
#[test]
fn options_are_shown_where_they_apply() {
    let help = |sub: &str| {
        let out = common::cli().args([sub, "--help"]).assert().success().get_output().stdout.clone();
        String::from_utf8(out).unwrap()
    };
    for sub in ["serve", "impair", "capture-decode", "completions"] {
        let h = help(sub);
        for opt in ["--server", "--name", "--timeout"] {
            assert!(!h.contains(opt), "{sub} --help lists {opt}:\n{h}");
        }
        assert!(h.contains("--quiet"), "{h}");
    }
    assert!(!help("completions").contains("--json"));
    assert!(help("serve").contains("--json"));
    for sub in ["join", "say", "whisper", "list", "fetch"] {
        let h = help(sub);
        for opt in ["--server", "--name", "--timeout", "--json"] {
            assert!(h.contains(opt), "{sub} --help lacks {opt}:\n{h}");
        }
    }
}

#[test]
fn durations_are_humantime_and_bad_ones_are_usage_errors() {
    common::cli()
        .args(["list", "--timeout", "5 parsecs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--timeout"));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        common::cli().args(["completions", shell]).assert().success().stdout(predicate::str::contains("chatctl"));
    }
}

/// An error is printed once, as `chatctl CMD: what: why: hint`: neither the
/// OS reason nor the exit code's man-page description is repeated.
#[test]
fn errors_are_printed_once_without_the_exit_label() {
    // Nothing listens on loopback port 1: the connect is refused at once.
    let out = common::cli().args(["-s", "127.0.0.1:1", "-n", "alice", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("chatctl list: cannot connect to 127.0.0.1:1: "), "{err}");
    assert_eq!(err.matches("refused").count(), 1, "{err}");
    assert!(!err.contains(chatctl::exit::Exit::Connect.describe()), "{err}");
}
