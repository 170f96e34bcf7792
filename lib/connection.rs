//! One framed TCP connection, for the server and the client alike: whole
//! messages in through a [`Decoder`], whole messages out, one write each.
//!
//! As mini-redis's `Connection`: a read buffer, the decoder's "is a whole
//! message here?" check separate from reading, a partial message as a normal
//! state, and EOF inside a message reported as such. The classic peers read
//! one message per `recv`, so every message goes out in a single write with
//! TCP_NODELAY set. The codec itself stays in [`wire`](crate::wire), pure.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::wire::{DecodeError, DecodeErrorKind, Decoder, EncodeError, Message};

/// Why a read or a write on a [`Connection`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The socket failed.
    #[error("connection error")]
    Io(#[source] io::Error),
    /// The peer sent bytes that are not a message (the decoder is left at
    /// the error; see [`Connection::resync`]). At the end of the stream:
    /// a message cut short ([`DecodeErrorKind::Truncated`]).
    #[error("malformed input")]
    Decode(#[source] DecodeError),
    /// A message that cannot be encoded (a field too long).
    #[error("message cannot be encoded")]
    Encode(#[source] EncodeError),
    /// The deadline passed, or half a message sat unfinished for too long.
    #[error("timed out")]
    TimedOut,
}

impl Error {
    /// True for a stream that ended inside a message.
    pub(crate) fn is_truncated(&self) -> bool {
        matches!(self, Error::Decode(e) if matches!(e.kind, DecodeErrorKind::Truncated { .. }))
    }
}

/// A framed TCP connection (either side, any direction of the decoder).
#[derive(Debug)]
pub(crate) struct Connection {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    decoder: Decoder,
    buf: Box<[u8]>,
    /// The first [`FIRST_BYTES`] bytes received, to show what a peer that
    /// turned out not to speak the protocol said.
    first: Vec<u8>,
}

/// How many of the first bytes received a [`Connection`] keeps.
pub(crate) const FIRST_BYTES: usize = 60;

impl Connection {
    /// Frames `stream` with `decoder` (which fixes the direction and the
    /// list limits), and sets TCP_NODELAY.
    pub(crate) fn new(stream: TcpStream, decoder: Decoder) -> Self {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Connection { rd, wr, decoder, buf: vec![0; 4096].into_boxed_slice(), first: Vec::new() }
    }

    /// The next message; `Ok(None)` at a clean end of stream. Gives up
    /// ([`Error::TimedOut`]) at `deadline`, or once half a message has sat
    /// buffered for `partial` (so a half-sent message cannot hold the
    /// connection). Cancel-safe: nothing read is lost if the future is dropped.
    pub(crate) async fn read_message(
        &mut self,
        deadline: Option<Instant>,
        partial: Option<Duration>,
    ) -> Result<Option<Message>, Error> {
        let mut partial_deadline = None;
        loop {
            if let Some(m) = self.decoder.next_message().map_err(Error::Decode)? {
                return Ok(Some(m));
            }
            if let Some(p) = partial
                && self.decoder.has_partial()
            {
                partial_deadline.get_or_insert_with(|| Instant::now() + p);
            }
            let until = match (deadline, partial_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let read = self.rd.read(&mut self.buf);
            let n = match until {
                Some(d) => tokio::time::timeout_at(d, read).await.map_err(|_| Error::TimedOut)?,
                None => read.await,
            }
            .map_err(Error::Io)?;
            if n == 0 {
                self.decoder.finish().map_err(Error::Decode)?;
                return Ok(None);
            }
            let keep = n.min(FIRST_BYTES - self.first.len().min(FIRST_BYTES));
            self.first.extend_from_slice(&self.buf[..keep]);
            self.decoder.feed(&self.buf[..n]);
        }
    }

    /// The first bytes the peer sent (at most [`FIRST_BYTES`]).
    pub(crate) fn first_bytes(&self) -> &[u8] {
        &self.first
    }

    /// Sends raw bytes in one write (e.g. a probe that is not a message).
    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.wr.write_all(bytes).await.map_err(Error::Io)
    }

    /// The decoder (e.g. to see the bytes of a malformed message).
    pub(crate) fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The decoder, to take messages already buffered without reading.
    pub(crate) fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// Skips malformed input after an [`Error::Decode`] (lib/protocol.md's
    /// `4999` rule: to the next CR/LF, or drop what is buffered).
    pub(crate) fn resync(&mut self) {
        self.decoder.resync();
    }

    /// Writes as much of `bytes` as the socket takes now, without waiting;
    /// returns how many it took (0 when it would block).
    pub(crate) fn try_write(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        match self.wr.try_write(bytes) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Sends one message in one write.
    pub(crate) async fn write_message(&mut self, m: &Message) -> Result<(), Error> {
        let bytes = m.to_bytes().map_err(Error::Encode)?;
        self.wr.write_all(&bytes).await.map_err(Error::Io)
    }

    /// Shuts down the sending side (a FIN); reading goes on.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.wr.shutdown().await;
    }
}
