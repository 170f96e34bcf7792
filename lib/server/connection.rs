//! Framing over a TCP stream: requests in through a [`Decoder`], every
//! message out in one write (with TCP_NODELAY set by the caller), since
//! classic clients read one message per `recv`.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::wire::{DecodeError, DecodeErrorKind, Decoder, Direction, Limits, Message, Request};

/// What reading the main connection produced.
#[derive(Debug)]
pub enum Input {
    /// A whole request.
    Request(Request),
    /// A request of a known type whose fields are malformed (already
    /// skipped): answer `4TT9` with this type.
    Malformed(u8, DecodeError),
    /// Unparseable input (already skipped): answer `4999`.
    Bad(DecodeError),
    /// The peer closed the connection (possibly inside a message).
    Closed,
    /// The deadline passed, or half a message sat unfinished for too long.
    Idle,
}

/// The main connection of one client.
#[derive(Debug)]
pub struct Connection {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    decoder: Decoder,
    buf: Vec<u8>,
}

impl Connection {
    /// Wraps the two halves of an accepted stream.
    pub fn new(rd: OwnedReadHalf, wr: OwnedWriteHalf, max_users: usize) -> Self {
        let limits = Limits { max_users, ..Limits::CLASSIC };
        Connection { rd, wr, decoder: Decoder::with_limits(Direction::ToServer, limits), buf: vec![0; 4096] }
    }

    /// The next request. Gives up ([`Input::Idle`]) at `deadline`, or once
    /// half a message has been buffered for `partial` without being finished
    /// (a half-sent message cannot hold the connection forever).
    pub async fn read(&mut self, deadline: Option<Instant>, partial: Duration) -> io::Result<Input> {
        let mut partial_deadline = None;
        loop {
            match self.decoder.next_message() {
                Ok(Some(Message::Request(r))) => return Ok(Input::Request(r)),
                // A `ToServer` decoder yields only requests.
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    let ty = self.request_type(&e);
                    self.decoder.resync();
                    return Ok(match ty {
                        Some(ty) => Input::Malformed(ty, e),
                        None => Input::Bad(e),
                    });
                }
            }
            if self.decoder.has_partial() {
                partial_deadline.get_or_insert_with(|| Instant::now() + partial);
            }
            let until = match (deadline, partial_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let n = match until {
                Some(d) => match tokio::time::timeout_at(d, self.rd.read(&mut self.buf)).await {
                    Ok(r) => r?,
                    Err(_) => return Ok(Input::Idle),
                },
                None => self.rd.read(&mut self.buf).await?,
            };
            if n == 0 {
                return Ok(Input::Closed);
            }
            self.decoder.feed(&self.buf[..n]);
        }
    }

    /// The type `TT` of a bad request whose `1TT` prefix was valid, if the
    /// error lies past that prefix (PROTOCOL.md §3: `4TT9`).
    fn request_type(&self, e: &DecodeError) -> Option<u8> {
        if matches!(e.kind, DecodeErrorKind::UnknownCode { .. }) || e.offset < self.decoder.offset() + 3 {
            return None;
        }
        match *self.decoder.unconsumed() {
            [b'1', t1 @ b'0'..=b'9', t2 @ b'0'..=b'9', ..] => {
                let ty = (t1 - b'0') * 10 + (t2 - b'0');
                (ty <= 6).then_some(ty)
            }
            _ => None,
        }
    }

    /// Sends one message in one write.
    pub async fn send(&mut self, m: &Message) -> io::Result<()> {
        let bytes = m.to_bytes().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.wr.write_all(&bytes).await
    }

    /// Sends a FIN.
    pub async fn close(&mut self) {
        let _ = self.wr.shutdown().await;
    }
}
