//! Updates `3xx`: server → client on the update connection.

use super::cursor::{Cursor, Parse};
use super::decoder::DecodeErrorKind;
use super::message::{EncodeError, put_code, put_field};

/// An update (`3xx`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Update {
    /// `300` XX name
    Joined {
        /// Who joined.
        name: String,
    },
    /// `301` XX name
    Left {
        /// Who left.
        name: String,
    },
    /// `303` XX from YY text
    Whisper {
        /// The sender.
        from: String,
        /// The message.
        text: String,
    },
    /// `304` XX from YY text
    Broadcast {
        /// The sender.
        from: String,
        /// The message.
        text: String,
    },
}

impl Update {
    /// The update type: the two digits after the `3`.
    pub fn ty(&self) -> u8 {
        match self {
            Update::Joined { .. } => 0,
            Update::Left { .. } => 1,
            Update::Whisper { .. } => 3,
            Update::Broadcast { .. } => 4,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_code(out, 3, self.ty());
        match self {
            Update::Joined { name } | Update::Left { name } => put_field(out, "name", name),
            Update::Whisper { from, text } | Update::Broadcast { from, text } => {
                put_field(out, "from", from)?;
                put_field(out, "text", text)
            }
        }
    }

    pub(crate) fn parse(ty: u8, c: &mut Cursor<'_>, code_at: usize) -> Parse<Self> {
        Ok(match ty {
            0 => Update::Joined { name: c.field("name")? },
            1 => Update::Left { name: c.field("name")? },
            3 => Update::Whisper { from: c.field("from")?, text: c.field("text")? },
            4 => Update::Broadcast { from: c.field("from")?, text: c.field("text")? },
            _ => return Err(c.invalid(code_at, DecodeErrorKind::UnknownCode { code: 300 + u16::from(ty) })),
        })
    }
}
