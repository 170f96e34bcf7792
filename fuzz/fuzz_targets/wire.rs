//! Fuzzes the wire decoder: arbitrary bytes fed in arbitrary chunks, in every
//! direction. It must never panic, must keep memory within its bound, and
//! every message it yields must survive encode → decode unchanged.
//!
//! Run: `cargo fuzz run wire -s none -- -max_total_time=60` (stable toolchain).
#![no_main]

use chatctl::wire::{Decoder, Direction, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let dir = match control % 3 {
        0 => Direction::ToServer,
        1 => Direction::ToClient,
        _ => Direction::Any,
    };
    let chunk = usize::from(control / 3 % 17) + 1;
    let limits = Limits::default();
    let bound = limits.max_message_len(dir);
    let mut dec = Decoder::with_limits(dir, limits);
    for piece in rest.chunks(chunk) {
        dec.feed(piece);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    let bytes = frame.message.to_bytes().expect("a decoded message encodes");
                    let mut again = Decoder::with_limits(Direction::Any, limits);
                    again.feed(&bytes);
                    assert_eq!(again.next_message().expect("re-decodes"), Some(frame.message));
                }
                Ok(None) => break,
                Err(_) => {
                    dec.resync();
                }
            }
        }
        assert!(dec.buffered() <= bound + piece.len());
    }
    let _ = dec.finish();
});
