//! Requests `1xx`: client → server on the main connection.

use super::cursor::{Cursor, Parse};
use super::decoder::DecodeErrorKind;
use super::message::{EncodeError, put_code, put_field};

/// The transport named in a `106` download request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Transport {
    /// `TCP`.
    Tcp,
    /// `UDP`: classic go-back-N, or the fast mode when both sides are chatctl.
    Udp,
    /// Any other 3 characters; the server answers `4063`.
    Other(String),
}

impl Transport {
    /// The 3 characters on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
            Transport::Other(s) => s,
        }
    }

    /// The transport the 3 characters of a `106` name (`TCP`, `UDP`, else [`Transport::Other`]).
    pub(crate) fn from_wire(s: String) -> Self {
        match s.as_str() {
            "TCP" => Transport::Tcp,
            "UDP" => Transport::Udp,
            _ => Transport::Other(s),
        }
    }
}

/// A request (`1xx`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// `100` XX name
    Join {
        /// The name to join as.
        name: String,
    },
    /// `101`
    Leave,
    /// `102`
    Users,
    /// `103` XX target YY text
    Whisper {
        /// The target user.
        to: String,
        /// The message.
        text: String,
    },
    /// `104` YY text
    Broadcast {
        /// The message.
        text: String,
    },
    /// `105`
    Files,
    /// `106` T XX filename
    Download {
        /// How the file is to travel.
        transport: Transport,
        /// The file, as listed by `205`.
        file: String,
    },
}

impl Request {
    /// The request type: the two digits after the `1`.
    pub fn ty(&self) -> u8 {
        match self {
            Request::Join { .. } => 0,
            Request::Leave => 1,
            Request::Users => 2,
            Request::Whisper { .. } => 3,
            Request::Broadcast { .. } => 4,
            Request::Files => 5,
            Request::Download { .. } => 6,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_code(out, 1, self.ty());
        match self {
            Request::Join { name } => put_field(out, "name", name),
            Request::Leave | Request::Users | Request::Files => Ok(()),
            Request::Whisper { to, text } => {
                put_field(out, "target", to)?;
                put_field(out, "text", text)
            }
            Request::Broadcast { text } => put_field(out, "text", text),
            Request::Download { transport, file } => {
                let t = transport.as_str();
                if t.chars().count() != 3 {
                    return Err(EncodeError::BadTransport(t.to_string()));
                }
                out.extend_from_slice(t.as_bytes());
                put_field(out, "filename", file)
            }
        }
    }

    /// Parses the body after the code digits `1TT`, which `c` has consumed.
    pub(crate) fn parse(ty: u8, c: &mut Cursor<'_>, code_at: usize) -> Parse<Self> {
        Ok(match ty {
            0 => Request::Join { name: c.field("name")? },
            1 => Request::Leave,
            2 => Request::Users,
            3 => Request::Whisper { to: c.field("target")?, text: c.field("text")? },
            4 => Request::Broadcast { text: c.field("text")? },
            5 => Request::Files,
            6 => {
                let transport = Transport::from_wire(c.chars(3, "transport")?);
                Request::Download { transport, file: c.field("filename")? }
            }
            _ => return Err(c.invalid(code_at, DecodeErrorKind::UnknownCode { code: 100 + u16::from(ty) })),
        })
    }
}
