//! The floor for the ngircd comparison: the least a server can do per
//! message and still answer the load generator as the protocol says. One
//! thread, one `mio` poll loop, no runtime, no timeouts, no limits, no
//! locks; chatctl's own codec. It handles `100` (with its update
//! connection), `102`, `103` and `104`, and nothing else: it is a yardstick
//! for `benches/vs-ngircd.sh`, not a server. What it costs per message is
//! what the protocol's work (a read, the update's write and the answer's
//! write) costs on this machine; a server that does more, as `chatctl serve`
//! must, cannot cost less.
//!
//! Run as a child of the bench (`SERVER_BENCH_FLOOR=1`): it prints its
//! address on stdout and serves until killed.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use chatctl::wire::{Confirm, Decoder, Direction, ErrorCode, Message, Request, Update};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// What a token stands for.
enum Slot {
    Listener(TcpListener),
    /// A main connection, with the name once joined.
    Main {
        io: Io,
        decoder: Decoder,
        name: Option<String>,
    },
    /// Waiting for the update connection of the main connection `main`.
    Waiting {
        listener: TcpListener,
        main: usize,
    },
    /// An update connection: read and ignored, written to.
    Updates {
        io: Io,
        main: usize,
    },
    Free,
}

/// A connection and what it could not write yet.
struct Io {
    stream: TcpStream,
    out: Vec<u8>,
}

impl Io {
    /// Writes `bytes` now if the socket takes them; what it does not take
    /// waits for the socket to be writable.
    fn send(&mut self, bytes: &[u8]) {
        if !self.out.is_empty() {
            self.out.extend_from_slice(bytes);
            return;
        }
        match self.stream.write(bytes) {
            Ok(n) => self.out.extend_from_slice(&bytes[n..]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => self.out.extend_from_slice(bytes),
            // A broken connection: its next read ends it.
            Err(_) => {}
        }
    }

    fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) | Err(_) => return,
                Ok(n) => drop(self.out.drain(..n)),
            }
        }
    }
}

fn encode(m: Message) -> Vec<u8> {
    m.to_bytes().expect("fields from the decoder fit")
}

struct Floor {
    poll: Poll,
    slots: Vec<Slot>,
    /// Joined users: name to the token of their update connection.
    users: HashMap<String, usize>,
}

impl Floor {
    fn add(&mut self, slot: Slot) -> usize {
        let i = self.slots.iter().position(|s| matches!(s, Slot::Free)).unwrap_or(self.slots.len());
        if i == self.slots.len() {
            self.slots.push(Slot::Free);
        }
        let registry = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        self.slots[i] = slot;
        match &mut self.slots[i] {
            Slot::Listener(l) | Slot::Waiting { listener: l, .. } => {
                registry.register(l, Token(i), Interest::READABLE).unwrap()
            }
            Slot::Main { io, .. } | Slot::Updates { io, .. } => {
                registry.register(&mut io.stream, Token(i), both).unwrap()
            }
            Slot::Free => {}
        }
        i
    }

    fn remove(&mut self, i: usize) {
        match std::mem::replace(&mut self.slots[i], Slot::Free) {
            Slot::Main { name, .. } => {
                if let Some(u) = name.and_then(|n| self.users.remove(&n)) {
                    self.remove(u);
                }
            }
            Slot::Updates { main, .. } => {
                if let Slot::Main { name, .. } = &self.slots[main]
                    && let Some(n) = name
                {
                    self.users.remove(n);
                }
            }
            _ => {}
        }
    }

    /// Handles readiness of slot `i`.
    fn ready(&mut self, i: usize, writable: bool) {
        match &mut self.slots[i] {
            Slot::Listener(l) => {
                let mut accepted = Vec::new();
                while let Ok((s, _)) = l.accept() {
                    accepted.push(s);
                }
                for stream in accepted {
                    let _ = stream.set_nodelay(true);
                    let io = Io { stream, out: Vec::new() };
                    self.add(Slot::Main { io, decoder: Decoder::new(Direction::ToServer), name: None });
                }
            }
            Slot::Waiting { listener, main } => {
                let main = *main;
                let Ok((stream, _)) = listener.accept() else { return };
                let _ = stream.set_nodelay(true);
                let _ = self.poll.registry().deregister(listener);
                self.slots[i] = Slot::Free;
                let u = self.add(Slot::Updates { io: Io { stream, out: Vec::new() }, main });
                if let Slot::Main { name: Some(n), .. } = &self.slots[main] {
                    self.users.insert(n.clone(), u);
                }
            }
            Slot::Updates { io, .. } => {
                if writable {
                    io.flush();
                }
                let mut buf = [0u8; 512];
                loop {
                    match io.stream.read(&mut buf) {
                        // A half-close is legal: updates go on.
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(_) => return self.remove(i),
                    }
                }
            }
            Slot::Main { io, decoder, .. } => {
                if writable {
                    io.flush();
                }
                let mut buf = [0u8; 4096];
                loop {
                    match io.stream.read(&mut buf) {
                        Ok(0) => return self.remove(i),
                        Ok(n) => {
                            decoder.feed(&buf[..n]);
                            // A short read drained the socket (as tokio takes it).
                            if n < buf.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => return self.remove(i),
                    }
                }
                loop {
                    let Slot::Main { decoder, .. } = &mut self.slots[i] else { return };
                    match decoder.next_message() {
                        Ok(Some(Message::Request(r))) => self.request(i, r),
                        Ok(_) => return,
                        Err(_) => return self.remove(i),
                    }
                }
            }
            Slot::Free => {}
        }
    }

    /// Answers one request on the main connection `i`.
    fn request(&mut self, i: usize, r: Request) {
        let Slot::Main { name, .. } = &self.slots[i] else { return };
        let me = name.clone().unwrap_or_default();
        let answer = match r {
            Request::Join { name } => {
                let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
                let port = listener.local_addr().unwrap().port();
                self.add(Slot::Waiting { listener, main: i });
                if let Slot::Main { name: n, .. } = &mut self.slots[i] {
                    *n = Some(name.clone());
                }
                Message::Confirm(Confirm::Joined { name, port })
            }
            Request::Users => {
                let users = self.users.keys().filter(|n| **n != me).cloned().collect();
                Message::Confirm(Confirm::Users { users })
            }
            Request::Whisper { to, text } => match self.users.get(&to) {
                Some(&u) => {
                    self.update(u, &encode(Message::Update(Update::Whisper { from: me, text })));
                    Message::Confirm(Confirm::WhisperSent)
                }
                None => Message::Error(ErrorCode::NO_SUCH_USER),
            },
            Request::Broadcast { text } => {
                let bytes = encode(Message::Update(Update::Broadcast { from: me.clone(), text }));
                let mut to = Vec::new();
                let targets: Vec<(String, usize)> =
                    self.users.iter().filter(|(n, _)| **n != me).map(|(n, &u)| (n.clone(), u)).collect();
                for (n, u) in targets {
                    self.update(u, &bytes);
                    to.push(n);
                }
                Message::Confirm(Confirm::BroadcastSent { to })
            }
            _ => return,
        };
        if let Slot::Main { io, .. } = &mut self.slots[i] {
            io.send(&encode(answer));
        }
    }

    fn update(&mut self, u: usize, bytes: &[u8]) {
        if let Slot::Updates { io, .. } = &mut self.slots[u] {
            io.send(bytes);
        }
    }
}

/// Serves on a free loopback port until killed; prints the address first.
pub fn serve() -> ! {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    println!("{}", listener.local_addr().unwrap());
    let mut floor = Floor { poll: Poll::new().unwrap(), slots: Vec::new(), users: HashMap::new() };
    floor.add(Slot::Listener(listener));
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(e) = floor.poll.poll(&mut events, None) {
            assert_eq!(e.kind(), ErrorKind::Interrupted, "poll failed: {e}");
            continue;
        }
        for e in &events {
            floor.ready(e.token().0, e.is_writable());
        }
    }
}
