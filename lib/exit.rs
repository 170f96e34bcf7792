//! Exit codes: few, distinct and documented (the man pages' EXIT STATUS
//! section is generated from [`Exit::ALL`]).

/// Why `chatctl` exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exit {
    /// Success.
    Ok,
    /// Any other error.
    Failure,
    /// Bad command line (clap's own code).
    Usage,
    /// Could not connect to the server.
    Connect,
    /// The server refused the name (`4001`).
    InvalidName,
    /// The name is taken (`4002`).
    NameTaken,
    /// The server is full (`4003`).
    ServerFull,
    /// No such user (`4031`).
    NoSuchUser,
    /// No such file (`4061`).
    NoSuchFile,
    /// The server did not answer in time (`--timeout`).
    Timeout,
    /// A download failed or was incomplete.
    TransferFailed,
    /// The peer broke the protocol.
    Protocol,
    /// The server closed the session or went away (a shutdown, a crash, a
    /// lost connection): the peer did nothing wrong, it is just gone.
    ServerGone,
    /// Interrupted by Ctrl-C (after leaving cleanly).
    Interrupted,
}

impl Exit {
    /// Every exit code, in order, for documentation.
    pub const ALL: [Exit; 14] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::Connect,
        Exit::InvalidName,
        Exit::NameTaken,
        Exit::ServerFull,
        Exit::NoSuchUser,
        Exit::NoSuchFile,
        Exit::Timeout,
        Exit::TransferFailed,
        Exit::Protocol,
        Exit::ServerGone,
        Exit::Interrupted,
    ];

    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Connect => 3,
            Exit::InvalidName => 4,
            Exit::NameTaken => 5,
            Exit::ServerFull => 6,
            Exit::NoSuchUser => 7,
            Exit::NoSuchFile => 8,
            Exit::Timeout => 9,
            Exit::TransferFailed => 10,
            Exit::Protocol => 11,
            Exit::ServerGone => 12,
            Exit::Interrupted => 130,
        }
    }

    /// One line for the man page.
    pub const fn describe(self) -> &'static str {
        match self {
            Exit::Ok => "success",
            Exit::Failure => "any other error",
            Exit::Usage => "invalid command line",
            Exit::Connect => "cannot connect to the server",
            Exit::InvalidName => "the server refused the name as invalid (4001)",
            Exit::NameTaken => "the name is already taken (4002)",
            Exit::ServerFull => "the server is full (4003)",
            Exit::NoSuchUser => "no such user (4031)",
            Exit::NoSuchFile => "no such file (4061)",
            Exit::Timeout => "the server did not answer within --timeout",
            Exit::TransferFailed => "a download failed or was incomplete",
            Exit::Protocol => "the peer broke the protocol",
            Exit::ServerGone => "the server closed the session or went away (shut down, crashed, connection lost)",
            Exit::Interrupted => "interrupted (Ctrl-C), after leaving the room cleanly",
        }
    }

    /// A stable name for the JSON error object of `--json` (`"kind"`).
    pub const fn kind(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Usage => "usage",
            Exit::Connect => "connect",
            Exit::InvalidName => "invalid_name",
            Exit::NameTaken => "name_taken",
            Exit::ServerFull => "server_full",
            Exit::NoSuchUser => "no_such_user",
            Exit::NoSuchFile => "no_such_file",
            Exit::Timeout => "timeout",
            Exit::TransferFailed => "transfer_failed",
            Exit::Protocol => "protocol",
            Exit::ServerGone => "server_gone",
            Exit::Interrupted => "interrupted",
            Exit::Failure => "failure",
        }
    }

    /// The `Exit` whose [`code`](Self::code) is `code`, if any (an exit code
    /// carried across the shared-session socket).
    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// An `Exit` in an error chain (`err.context(Exit::NoSuchFile)`) sets the
/// process exit code.
impl std::error::Error for Exit {}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for e in Exit::ALL {
            assert_eq!(Exit::from_code(e.code()), Some(e));
        }
        assert_eq!(Exit::from_code(77), None);
        assert_eq!(Exit::ServerGone.code(), 12);
    }

    /// A script tells the codes apart by `"kind"` as by the exit status.
    #[test]
    fn kinds_are_distinct() {
        let mut kinds: Vec<_> = Exit::ALL.iter().map(|e| e.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), Exit::ALL.len(), "{kinds:?}");
    }
}
