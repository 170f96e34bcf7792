//! Framing over a TCP stream: requests in through a [`Decoder`], every
//! message out in one write (with TCP_NODELAY set by the caller), since
//! classic clients read one message per `recv`.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::wire::{DecodeError, Decoder, Direction, Limits, Message, Request};

/// What reading the main connection produced.
#[derive(Debug)]
pub enum Input {
    /// A whole request.
    Request(Request),
    /// Unparseable input (already skipped): answer `4999`.
    Bad(DecodeError),
    /// The peer closed the connection (possibly inside a message).
    Closed,
    /// Nothing useful arrived within the idle limit.
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

    /// True if half a message is buffered.
    pub fn has_partial(&self) -> bool {
        self.decoder.has_partial()
    }

    /// The next request. `idle`: give up after that long without a whole
    /// request (used for unjoined connections and half-sent messages).
    pub async fn read(&mut self, idle: Option<Duration>) -> io::Result<Input> {
        let deadline = idle.map(|d| tokio::time::Instant::now() + d);
        loop {
            match self.decoder.next_message() {
                Ok(Some(Message::Request(r))) => return Ok(Input::Request(r)),
                // A `ToServer` decoder yields only requests.
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    self.decoder.resync();
                    return Ok(Input::Bad(e));
                }
            }
            let n = match deadline {
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
