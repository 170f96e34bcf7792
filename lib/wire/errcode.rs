//! Error messages `4TTE`: the request type `TT` they answer and one digit `E`.

use std::fmt;

/// An error message `4TTE` (server → client, main connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ErrorCode {
    /// The request type it answers, `00`–`99`.
    pub ty: u8,
    /// The error digit, `0`–`9`.
    pub digit: u8,
}

impl ErrorCode {
    /// `4001`: invalid name.
    pub const INVALID_NAME: Self = Self::new(0, 1);
    /// `4002`: name already taken.
    pub const NAME_TAKEN: Self = Self::new(0, 2);
    /// `4003`: server full (or, extension, no update port free).
    pub const SERVER_FULL: Self = Self::new(0, 3);
    /// `4031`: no such user.
    pub const NO_SUCH_USER: Self = Self::new(3, 1);
    /// `4061`: no such file.
    pub const NO_SUCH_FILE: Self = Self::new(6, 1);
    /// `4062` (extension): too many transfers: no transfer port free, or the
    /// user already has as many in flight as the server allows.
    pub const NO_TRANSFER_PORT: Self = Self::new(6, 2);
    /// `4063` (extension): unknown transport.
    pub const UNKNOWN_TRANSPORT: Self = Self::new(6, 3);
    /// `4999` (extension): unparseable input.
    pub const UNPARSEABLE: Self = Self::new(99, 9);

    /// `ty` is taken modulo 100 and `digit` modulo 10.
    pub const fn new(ty: u8, digit: u8) -> Self {
        ErrorCode { ty: ty % 100, digit: digit % 10 }
    }

    /// `4TT9` (extension): request of type `ty` malformed or not allowed now.
    pub const fn malformed(ty: u8) -> Self {
        Self::new(ty, 9)
    }

    /// The four digits as a number, e.g. `4031`.
    pub fn code(&self) -> u16 {
        4000 + u16::from(self.ty) * 10 + u16::from(self.digit)
    }

    /// What it means, in words a user can act on.
    pub fn describe(&self) -> String {
        match (self.ty, self.digit) {
            (0, 1) => "invalid name (2 to 99 characters)".into(),
            (0, 2) => "name already taken".into(),
            (0, 3) => "server full".into(),
            (3, 1) => "no such user".into(),
            (6, 1) => "no such file".into(),
            (6, 2) => "no transfer port free, try again later".into(),
            (6, 3) => "unknown transport (use TCP or UDP)".into(),
            (99, 9) => "unparseable input".into(),
            (ty, 9) => format!("request 1{ty:02} malformed or not allowed now"),
            (ty, d) => format!("error {d} for request 1{ty:02}"),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}
