//! Property tests of the codec: encode→decode is the identity, any split of a
//! stream (with CR/LF between messages) decodes the same, junk never panics
//! and memory stays bounded. Each property runs at least 1000 cases.

use chatctl::wire::{Confirm, Decoder, Direction, ErrorCode, Limits, Message, Request, Transport, Update};
use proptest::prelude::*;

/// Text of 0..=max characters mixing ASCII, Hebrew, emoji and CR/LF.
fn text(max: usize) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::char::range(' ', '~'),
        2 => proptest::char::range('\u{05d0}', '\u{05ea}'),
        1 => proptest::char::range('\u{1f600}', '\u{1f64f}'),
        1 => prop::sample::select(vec!['\r', '\n', '\u{0}', '\u{7f}', 'é', '€']),
    ];
    prop::collection::vec(ch, 0..=max).prop_map(|v| v.into_iter().collect())
}

fn names(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(99), 0..=max)
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![
        Just(Transport::Tcp),
        Just(Transport::Udp),
        text(3).prop_filter_map("3 chars", |s| {
            (s.chars().count() == 3 && s != "TCP" && s != "UDP").then_some(Transport::Other(s))
        })
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        text(99).prop_map(|name| Request::Join { name }.into()),
        Just(Request::Leave.into()),
        Just(Request::Users.into()),
        (text(99), text(99)).prop_map(|(to, text)| Request::Whisper { to, text }.into()),
        text(99).prop_map(|text| Request::Broadcast { text }.into()),
        Just(Request::Files.into()),
        (transport(), text(99)).prop_map(|(transport, file)| Request::Download { transport, file }.into()),
        (text(99), any::<u16>()).prop_map(|(name, port)| Confirm::Joined { name, port }.into()),
        Just(Confirm::Left.into()),
        names(40).prop_map(|users| Confirm::Users { users }.into()),
        Just(Confirm::WhisperSent.into()),
        names(40).prop_map(|to| Confirm::BroadcastSent { to }.into()),
        names(120).prop_map(|files| Confirm::Files { files }.into()),
        (any::<u64>(), any::<u16>()).prop_map(|(size, port)| Confirm::Download { size, port }.into()),
        text(99).prop_map(|name| Update::Joined { name }.into()),
        text(99).prop_map(|name| Update::Left { name }.into()),
        (text(99), text(99)).prop_map(|(from, text)| Update::Whisper { from, text }.into()),
        (text(99), text(99)).prop_map(|(from, text)| Update::Broadcast { from, text }.into()),
        (0u8..100, 0u8..10).prop_map(|(ty, d)| ErrorCode::new(ty, d).into()),
    ]
}

fn direction_of(m: &Message) -> Direction {
    match m {
        Message::Request(_) => Direction::ToServer,
        _ => Direction::ToClient,
    }
}

fn decode_all(dec: &mut Decoder) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = dec.next_message().expect("valid stream") {
        out.push(m);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(m in message()) {
        let bytes = m.to_bytes().unwrap();
        for dir in [direction_of(&m), Direction::Any] {
            let mut dec = Decoder::new(dir);
            dec.feed(&bytes);
            prop_assert_eq!(dec.next_message().unwrap(), Some(m.clone()));
            prop_assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn any_split_with_crlf_between_decodes_the_same(
        msgs in prop::collection::vec(message(), 1..8),
        seps in prop::collection::vec(prop::sample::select(vec!["", "", "\r\n", "\n", "\r", "\r\n\r\n"]), 8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            stream.extend_from_slice(seps[i].as_bytes());
            m.encode(&mut stream).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut dec = Decoder::new(Direction::Any);
        let mut got = Vec::new();
        for w in cuts.windows(2) {
            dec.feed(&stream[w[0]..w[1]]);
            got.extend(decode_all(&mut dec));
        }
        prop_assert_eq!(got, msgs);
        dec.finish().unwrap();
    }

    #[test]
    fn junk_never_panics_and_memory_stays_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..32),
        dir in prop::sample::select(vec![Direction::ToServer, Direction::ToClient, Direction::Any]),
    ) {
        let limits = Limits::default();
        let bound = limits.max_message_len(dir);
        let mut dec = Decoder::with_limits(dir, limits);
        for chunk in &chunks {
            dec.feed(chunk);
            loop {
                match dec.next_message() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => { dec.resync(); }
                }
            }
            // One partial message plus at most the last chunk.
            prop_assert!(dec.buffered() <= bound + chunk.len());
        }
        let _ = dec.finish();
    }

    #[test]
    fn byte_at_a_time_feeding_decodes_the_same(m in message()) {
        let bytes = m.to_bytes().unwrap();
        let mut dec = Decoder::new(Direction::Any);
        let mut got = Vec::new();
        for b in &bytes {
            dec.feed(std::slice::from_ref(b));
            got.extend(decode_all(&mut dec));
        }
        prop_assert_eq!(got, vec![m]);
    }
}
