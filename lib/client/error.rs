//! [`ClientError`]: what can go wrong in a session, and its exit code.

use std::path::PathBuf;

use crate::exit::Exit;
use crate::wire::{DecodeError, EncodeError, ErrorCode};

/// A client failure. [`ClientError::exit`] gives the documented exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server (or an announced port) could not be reached.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The server's host name does not resolve.
    #[error("cannot resolve {addr}")]
    Resolve {
        /// The server as given.
        addr: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A message with no text (empty or only spaces): never sent.
    #[error("nothing to send: the message is empty")]
    Empty,
    /// The server answered with an error code (`4xxx`).
    #[error("the server refused: {} ({code})", .0.describe(), code = .0)]
    Refused(ErrorCode),
    /// No answer in time.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was awaited, e.g. "connecting to an announced port".
        what: &'static str,
    },
    /// The server closed the connection unexpectedly.
    #[error("the server closed the connection")]
    Closed,
    /// A read or write failed.
    #[error("connection error")]
    Io(#[source] std::io::Error),
    /// The server sent something that is not the protocol.
    #[error("malformed message from the server")]
    Decode(#[source] DecodeError),
    /// A request could not be encoded (e.g. a name over 99 characters).
    #[error("cannot encode the request")]
    Encode(#[source] EncodeError),
    /// The peer at the server's address does not speak the chat protocol
    /// (an HTTP server, say): its first answer, shown escaped.
    #[error("{addr} is not a chat server: it answered \"{answer}\"")]
    NotChatServer {
        /// The address connected to.
        addr: String,
        /// Its first line (at most 60 bytes), escaped.
        answer: String,
    },
    /// A well-formed message that does not belong here.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The output file exists and overwriting was not allowed.
    #[error("{} exists (use --force to overwrite)", .0.display())]
    Exists(PathBuf),
    /// A download failed: incomplete, too long, or the file could not be written.
    #[error("download of {file} failed: {reason}")]
    Transfer {
        /// The file's name on the server.
        file: String,
        /// What went wrong, for the user.
        reason: String,
    },
    /// A request through a shared session (`join`'s socket) failed there:
    /// its message and exit code, as the session saw them.
    #[error("{message}")]
    Shared {
        /// The error and its causes, as one text.
        message: String,
        /// The exit code it had there.
        exit: Exit,
    },
    /// The output of a download cannot be used (checked before anything
    /// is asked of the server): no such folder, not writable, a clash.
    #[error("cannot download to {}: {reason}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Writing the downloaded file failed.
    #[error("cannot write {}", path.display())]
    File {
        /// The file that could not be written.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The exit code documented for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            ClientError::Connect { .. } | ClientError::Resolve { .. } => Exit::Connect,
            ClientError::Empty => Exit::Usage,
            ClientError::Refused(c) => match *c {
                ErrorCode::INVALID_NAME => Exit::InvalidName,
                ErrorCode::NAME_TAKEN => Exit::NameTaken,
                ErrorCode::SERVER_FULL => Exit::ServerFull,
                ErrorCode::NO_SUCH_USER => Exit::NoSuchUser,
                ErrorCode::NO_SUCH_FILE => Exit::NoSuchFile,
                ErrorCode::NO_TRANSFER_PORT => Exit::TransferFailed,
                _ => Exit::Protocol,
            },
            ClientError::Timeout { .. } => Exit::Timeout,
            ClientError::Closed => Exit::ServerGone,
            ClientError::Shared { exit, .. } => *exit,
            ClientError::Io(e) if gone(e) => Exit::ServerGone,
            ClientError::Decode(_) | ClientError::Protocol(_) | ClientError::NotChatServer { .. } => Exit::Protocol,
            ClientError::Transfer { .. } | ClientError::File { .. } => Exit::TransferFailed,
            ClientError::Io(_) | ClientError::Encode(_) | ClientError::Exists(_) | ClientError::Output { .. } => {
                Exit::Failure
            }
        }
    }
}

/// An I/O error that means the server went away (reset, closed under a write),
/// not a local failure.
fn gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected)
}
