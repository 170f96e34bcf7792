//! What the server makes of its main connection's input: a request, a
//! malformed request of a known type (`4TT9`), unparseable input (`4999`),
//! the end, or a timeout. Framing is the shared [`Connection`].

use std::time::Duration;

use tokio::time::Instant;

use crate::connection::{Connection, Error};
use crate::wire::{DecodeError, DecodeErrorKind, Message, Request};

/// What reading the main connection produced.
#[derive(Debug)]
pub(crate) enum Input {
    /// A whole request.
    Request(Request),
    /// A request of a known type whose fields are malformed (already
    /// skipped): answer `4TT9` with this type.
    Malformed(u8, DecodeError),
    /// Unparseable input (already skipped): answer `4999`.
    Bad(DecodeError),
    /// The peer closed the connection (possibly inside a message), or it failed.
    Closed,
    /// The deadline passed, or half a message sat unfinished for too long.
    Idle,
}

/// The next input on `conn`. Gives up ([`Input::Idle`]) at `deadline`, or
/// once half a message has been buffered for `partial` without being
/// finished. Cancel-safe, as [`Connection::read_message`].
pub(crate) async fn read(conn: &mut Connection, deadline: Option<Instant>, partial: Duration) -> Input {
    loop {
        return match conn.read_message(deadline, Some(partial)).await {
            Ok(Some(Message::Request(r))) => Input::Request(r),
            // A `ToServer` decoder yields only requests.
            Ok(Some(_)) => continue,
            Ok(None) => Input::Closed,
            Err(Error::TimedOut) => Input::Idle,
            Err(e) if e.is_truncated() => Input::Closed,
            Err(Error::Decode(e)) => bad_input(conn, e),
            Err(_) => Input::Closed,
        };
    }
}

/// The next input already buffered on `conn`, without reading the socket:
/// `None` when what is buffered (if anything) is not a whole message yet.
pub(crate) fn buffered(conn: &mut Connection) -> Option<Input> {
    loop {
        return match conn.decoder_mut().next_message() {
            Ok(Some(Message::Request(r))) => Some(Input::Request(r)),
            Ok(Some(_)) => continue,
            Ok(None) => None,
            Err(e) => Some(bad_input(conn, e)),
        };
    }
}

/// What a decode error is to the session, once `conn` has skipped the bad
/// input: a malformed request of a known type (answered `4TT9`), or bad input.
fn bad_input(conn: &mut Connection, e: DecodeError) -> Input {
    let ty = request_type(conn, &e);
    conn.resync();
    match ty {
        Some(ty) => Input::Malformed(ty, e),
        None => Input::Bad(e),
    }
}

/// The type `TT` of a bad request whose `1TT` prefix was valid, if the
/// error lies past that prefix (lib/protocol.md §3: `4TT9`).
fn request_type(conn: &Connection, e: &DecodeError) -> Option<u8> {
    let decoder = conn.decoder();
    if matches!(e.kind, DecodeErrorKind::UnknownCode { .. }) || e.offset < decoder.offset() + 3 {
        return None;
    }
    match *decoder.unconsumed() {
        [b'1', t1 @ b'0'..=b'9', t2 @ b'0'..=b'9', ..] => {
            let ty = (t1 - b'0') * 10 + (t2 - b'0');
            (ty <= 6).then_some(ty)
        }
        _ => None,
    }
}
