//! Confirms `2xx`: server → client on the main connection.

use super::cursor::{Cursor, Parse};
use super::decoder::{DecodeErrorKind, Limits};
use super::message::{EncodeError, decimal_digits, put_code, put_field, put_padded, put_sized};

/// A confirm (`2xx`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Confirm {
    /// `200` XX name PORT: joined; open the update connection to `port`.
    Joined {
        /// The name joined as.
        name: String,
        /// The update connection's port.
        port: u16,
    },
    /// `201`: left.
    Left,
    /// `202`: the other users.
    Users {
        /// Everyone in the room but the asker.
        users: Vec<String>,
    },
    /// `203`: private message delivered.
    WhisperSent,
    /// `204`: broadcast delivered to these users.
    BroadcastSent {
        /// The users it was delivered to.
        to: Vec<String>,
    },
    /// `205`: the files that can be downloaded.
    Files {
        /// The file names.
        files: Vec<String>,
    },
    /// `206` LL size PORT: the file is `size` bytes; fetch it from `port`.
    Download {
        /// The file's size in bytes.
        size: u64,
        /// The transfer port.
        port: u16,
    },
}

/// Width of the count after marker Z in `202`/`204`: Z itself (Z=1 is classic).
fn user_count_width(z: u8) -> Option<usize> {
    Some(usize::from(z))
}

/// Width of the count after marker Z in `205`: classic Z=1 means 2 digits,
/// extension Z=3…9 means Z digits.
fn file_count_width(z: u8) -> Option<usize> {
    match z {
        1 => Some(2),
        3..=9 => Some(usize::from(z)),
        _ => None,
    }
}

fn put_users(out: &mut Vec<u8>, names: &[String]) -> Result<(), EncodeError> {
    if names.is_empty() {
        out.push(b'0');
    } else {
        put_sized(out, names.len() as u64, 1);
    }
    names.iter().try_for_each(|n| put_field(out, "name", n))
}

fn put_files(out: &mut Vec<u8>, names: &[String]) -> Result<(), EncodeError> {
    match names.len() {
        0 => out.push(b'0'),
        n @ 1..=99 => {
            out.push(b'1');
            put_padded(out, n as u64, 2);
        }
        n => {
            if decimal_digits(n as u64) > 9 {
                return Err(EncodeError::ListTooLong(n));
            }
            put_sized(out, n as u64, 1);
        }
    }
    names.iter().try_for_each(|n| put_field(out, "filename", n))
}

impl Confirm {
    /// The confirm type: the two digits after the `2`.
    pub fn ty(&self) -> u8 {
        match self {
            Confirm::Joined { .. } => 0,
            Confirm::Left => 1,
            Confirm::Users { .. } => 2,
            Confirm::WhisperSent => 3,
            Confirm::BroadcastSent { .. } => 4,
            Confirm::Files { .. } => 5,
            Confirm::Download { .. } => 6,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_code(out, 2, self.ty());
        match self {
            Confirm::Joined { name, port } => {
                put_field(out, "name", name)?;
                put_padded(out, (*port).into(), 5);
                Ok(())
            }
            Confirm::Left | Confirm::WhisperSent => Ok(()),
            Confirm::Users { users } => put_users(out, users),
            Confirm::BroadcastSent { to } => put_users(out, to),
            Confirm::Files { files } => put_files(out, files),
            Confirm::Download { size, port } => {
                put_sized(out, *size, 2);
                put_padded(out, (*port).into(), 5);
                Ok(())
            }
        }
    }

    pub(crate) fn parse(ty: u8, c: &mut Cursor<'_>, code_at: usize, limits: &Limits) -> Parse<Self> {
        let names = |c: &mut Cursor<'_>, field, n: usize| -> Parse<Vec<String>> {
            // Cap the preallocation: `n` is already bounded by the limits.
            let mut v = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                v.push(c.field(field)?);
            }
            Ok(v)
        };
        Ok(match ty {
            0 => Confirm::Joined { name: c.field("name")?, port: c.port()? },
            1 => Confirm::Left,
            2 | 4 => {
                let n = c.list_len("user count", limits.max_users, user_count_width)?;
                let users = names(c, "name", n)?;
                if ty == 2 { Confirm::Users { users } } else { Confirm::BroadcastSent { to: users } }
            }
            3 => Confirm::WhisperSent,
            5 => {
                let n = c.list_len("file count", limits.max_files, file_count_width)?;
                Confirm::Files { files: names(c, "filename", n)? }
            }
            6 => {
                let at = c.pos();
                let width = c.digits(2, "size length")? as usize;
                if !(1..=20).contains(&width) {
                    return Err(c.invalid(at, DecodeErrorKind::OutOfRange { field: "size length", max: 20 }));
                }
                Confirm::Download { size: c.digits(width, "size")?, port: c.port()? }
            }
            _ => return Err(c.invalid(code_at, DecodeErrorKind::UnknownCode { code: 200 + u16::from(ty) })),
        })
    }
}
