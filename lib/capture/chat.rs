//! One direction of a chat connection, decoded: the zero-allocation scan of
//! whole plain messages first, the reference [`Decoder`] for the rest, and
//! the stream offsets of what each found. What a message means to the
//! capture (users, announced ports) is the analyser's business: this hands
//! out [`Found`] items and knows nothing of connections.

use super::event::Channel;
use super::scan;
use crate::wire::{DecodeError, Decoder, Direction, Limits, Message};

/// One direction of a TCP connection, named by the side that sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Client to server.
    Client,
    /// Server to client.
    Server,
}

impl Side {
    /// The direction of a segment sent by the client, or not.
    pub(crate) fn from_client(yes: bool) -> Self {
        if yes { Side::Client } else { Side::Server }
    }

    /// Index into a per-direction pair (client first).
    pub(crate) fn idx(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// The opposite direction.
    pub(crate) fn other(self) -> Self {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// Both directions, client first.
    pub(crate) const BOTH: [Side; 2] = [Side::Client, Side::Server];
}

/// A whole message found in the stream.
pub(crate) struct Msg<'a> {
    /// Its offset in the direction's byte stream.
    pub offset: u64,
    /// Its code.
    pub code: u16,
    /// Its bytes, without CR/LF around them.
    pub raw: &'a [u8],
    /// What the analyser needs from it.
    pub fields: scan::Fields<'a>,
}

/// What decoding a direction found.
pub(crate) enum Found<'a> {
    /// A whole message.
    Message(Msg<'a>),
    /// Input that does not decode, at stream offset `at`; `skipped` bytes
    /// were skipped to the next CR/LF.
    Undecodable { at: u64, error: DecodeError, skipped: usize },
}

/// How an undecided connection's first bytes look.
pub(crate) enum Probe {
    /// A chat message (on this channel), already handed out.
    Chat(Channel),
    /// Not enough bytes yet.
    Wait,
    /// Not the chat.
    NotChat,
}

/// The decoding state of one direction.
pub(crate) struct ChatDir {
    decoder: Decoder,
    /// Stream offset at which `decoder` started.
    base: u64,
}

impl ChatDir {
    /// A direction whose next byte is at stream offset `base`.
    pub(crate) fn new(base: u64) -> Self {
        ChatDir { decoder: Decoder::new(Direction::Any), base }
    }

    /// Whether part of a message is buffered (a hole now cuts it).
    pub(crate) fn has_partial(&self) -> bool {
        self.decoder.has_partial()
    }

    /// The end of the stream: an error if it ends inside a message.
    pub(crate) fn finish(&mut self) -> Result<(), DecodeError> {
        self.decoder.finish()
    }

    /// In-order bytes of a chat direction: every whole message is handed to `on`.
    pub(crate) fn feed(&mut self, data: &[u8], on: &mut impl FnMut(Found<'_>)) {
        let rest = if self.decoder.buffered() == 0 { self.scan(data, on) } else { data };
        if !rest.is_empty() {
            self.decoder.feed(rest);
            self.drain(on);
        }
    }

    /// The first bytes of a connection on no known port, at stream `offset`:
    /// chat if they decode as a message (then it and any that follow are
    /// handed to `on`, with the channel the first one shows).
    pub(crate) fn probe(&mut self, offset: u64, data: &[u8], on: &mut impl FnMut(Channel, Found<'_>)) -> Probe {
        if offset != self.base + self.decoder.offset() + self.decoder.buffered() as u64 {
            *self = ChatDir::new(offset);
        }
        self.decoder.feed(data);
        let max = Limits::default().max_message_len(Direction::Any);
        match self.decoder.next_frame() {
            Ok(Some(frame)) => {
                let channel = if matches!(frame.message, Message::Update(_)) { Channel::Update } else { Channel::Main };
                let on = &mut |f: Found<'_>| on(channel, f);
                self.frame(frame, on);
                self.drain(on);
                Probe::Chat(channel)
            }
            Ok(None) if self.decoder.buffered() <= max => Probe::Wait,
            _ => Probe::NotChat,
        }
    }

    /// Pulls every whole message out of the decoder.
    fn drain(&mut self, on: &mut impl FnMut(Found<'_>)) {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => self.frame(frame, on),
                Ok(None) => break,
                Err(error) => {
                    let at = self.base + error.offset;
                    let skipped = self.decoder.resync();
                    on(Found::Undecodable { at, error, skipped });
                    if skipped == 0 {
                        *self = ChatDir::new(self.base + self.decoder.offset());
                        break;
                    }
                }
            }
        }
    }

    /// Decodes whole messages straight from `data` (the usual case: nothing
    /// is buffered) without copying or allocating; returns the rest, from the
    /// first message [`scan`] leaves to the reference decoder (incomplete,
    /// non-ASCII or malformed).
    fn scan<'a>(&mut self, data: &'a [u8], on: &mut impl FnMut(Found<'_>)) -> &'a [u8] {
        let start = self.base + self.decoder.offset();
        let mut at = 0;
        loop {
            while let Some(b'\r' | b'\n') = data.get(at) {
                at += 1;
            }
            let Some(m) = data.get(at..).and_then(scan::scan) else { break };
            let raw = &data[at..at + m.len];
            on(Found::Message(Msg { offset: start + at as u64, code: m.code, raw, fields: m.fields }));
            at += m.len;
        }
        // The decoder is empty: moving its base skips what was read here.
        self.base += at as u64;
        &data[at..]
    }

    /// A message the reference decoder built (the slow path).
    fn frame(&self, frame: crate::wire::Frame, on: &mut impl FnMut(Found<'_>)) {
        let fields = scan::fields_of(&frame.message);
        let offset = self.base + frame.offset;
        on(Found::Message(Msg { offset, code: frame.message.code(), raw: &frame.raw, fields }));
    }
}
