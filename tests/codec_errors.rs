//! Precise errors for malformed input, the `4999` resync rule, and limits.

use chatctl::wire::{
    Confirm, DecodeErrorKind, Decoder, Direction, EncodeError, Limits, Message, Request, Transport, split_text,
};

fn first_error(dir: Direction, bytes: &[u8]) -> chatctl::wire::DecodeError {
    let mut d = Decoder::new(dir);
    d.feed(bytes);
    loop {
        match d.next_message() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error in {:?}", String::from_utf8_lossy(bytes)),
            Err(e) => return e,
        }
    }
}

#[test]
fn lengths_count_characters_not_bytes() {
    let msg: Message = Request::Broadcast { text: "שלום".into() }.into();
    assert_eq!(msg.to_bytes().unwrap(), "10404שלום".as_bytes());
    let emoji: Message = Request::Join { name: "😀x".into() }.into();
    assert_eq!(emoji.to_bytes().unwrap(), "10002😀x".as_bytes());
}

#[test]
fn ports_are_five_digits() {
    let m: Message = Confirm::Joined { name: "al".into(), port: 8080 }.into();
    assert_eq!(m.to_bytes().unwrap(), b"20002al08080");
    let d: Message = Confirm::Download { size: 24114, port: 55002 }.into();
    assert_eq!(d.to_bytes().unwrap(), b"206052411455002");
}

#[test]
fn non_digit_where_a_digit_belongs_names_the_field_and_byte() {
    let e = first_error(Direction::ToServer, b"\r\n1040x");
    assert_eq!(e.offset, 6);
    assert_eq!(e.kind, DecodeErrorKind::ExpectedDigit { field: "text", found: b'x' });
    assert_eq!(e.to_string(), "at byte 6: expected a digit of the text, found 'x'");
}

#[test]
fn unknown_codes_and_wrong_direction_are_errors() {
    assert_eq!(first_error(Direction::ToServer, b"107").kind, DecodeErrorKind::UnknownCode { code: 107 });
    assert_eq!(first_error(Direction::ToClient, b"302").kind, DecodeErrorKind::UnknownCode { code: 302 });
    let e = first_error(Direction::ToServer, b"20005ALICE55001");
    assert!(matches!(e.kind, DecodeErrorKind::UnexpectedCode { found: b'2', .. }), "{e}");
    assert!(matches!(first_error(Direction::Any, b"5").kind, DecodeErrorKind::UnexpectedCode { .. }));
}

#[test]
fn invalid_utf8_is_reported_at_its_byte() {
    let e = first_error(Direction::ToServer, b"10403ab\xffc");
    assert_eq!(e.offset, 7);
    assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8 { field: "text" });
    // A bad continuation byte is caught even before the character is complete.
    let e = first_error(Direction::ToServer, b"10402\xd7\x41");
    assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8 { field: "text" });
}

#[test]
fn lists_beyond_the_limits_are_refused_before_buffering_them() {
    let mut d = Decoder::with_limits(Direction::ToClient, Limits::CLASSIC);
    d.feed(b"2053100");
    let e = d.next_message().unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::ListTooLong { field: "file count", count: 100, max: 99 });
    assert_eq!(e.offset, 4);
    assert_eq!(
        first_error(Direction::ToClient, b"2052").kind,
        DecodeErrorKind::BadListMarker { field: "file count", found: b'2' }
    );
    // A size with more digits than any u64 has.
    assert!(matches!(first_error(Direction::ToClient, b"20621").kind, DecodeErrorKind::OutOfRange { .. }));
}

#[test]
fn extended_lists_round_trip() {
    let users: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let m: Message = Confirm::Users { users: users.clone() }.into();
    let bytes = m.to_bytes().unwrap();
    assert!(bytes.starts_with(b"202212"), "Z=2 then a 2-digit count");
    let files: Vec<String> = (0..150).map(|i| format!("f{i}")).collect();
    let fb = Message::from(Confirm::Files { files }).to_bytes().unwrap();
    assert!(fb.starts_with(b"2053150"), "Z=3 then a 3-digit count");
    let classic = Message::from(Confirm::Files { files: vec!["a".into()] }).to_bytes().unwrap();
    assert_eq!(classic, b"20510101a", "classic: Z=1 then a 2-digit count");
    let mut d = Decoder::new(Direction::ToClient);
    d.feed(&bytes);
    assert_eq!(d.next_message().unwrap(), Some(m));
}

#[test]
fn resync_skips_to_the_next_line_or_drops_the_buffer() {
    let mut d = Decoder::new(Direction::ToServer);
    d.feed(b"hello world\r\n102");
    assert!(d.next_message().is_err());
    assert_eq!(d.resync(), 11);
    assert_eq!(d.next_message().unwrap(), Some(Request::Users.into()));

    d.feed(b"garbage without newline");
    assert!(d.next_message().is_err());
    assert_eq!(d.resync(), 23);
    assert_eq!(d.buffered(), 0);
    d.feed(b"105");
    assert_eq!(d.next_message().unwrap(), Some(Request::Files.into()));
}

#[test]
fn a_stream_ending_mid_message_is_truncated() {
    let mut d = Decoder::new(Direction::ToServer);
    d.feed(b"10005ALI");
    assert_eq!(d.next_message().unwrap(), None);
    assert!(matches!(d.finish().unwrap_err().kind, DecodeErrorKind::Truncated { buffered: 8 }));
    let mut d = Decoder::new(Direction::ToServer);
    d.feed(b"101\r\n");
    d.next_message().unwrap();
    d.finish().unwrap();
}

#[test]
fn unknown_transport_still_decodes_so_the_server_can_answer_4063() {
    let mut d = Decoder::new(Direction::ToServer);
    d.feed(b"106FTP05a.txt");
    assert_eq!(
        d.next_message().unwrap(),
        Some(Request::Download { transport: Transport::Other("FTP".into()), file: "a.txt".into() }.into())
    );
}

#[test]
fn encoding_refuses_what_the_wire_cannot_carry() {
    let long = "x".repeat(100);
    assert_eq!(
        Message::from(Request::Broadcast { text: long.clone() }).to_bytes(),
        Err(EncodeError::FieldTooLong { field: "text", chars: 100 })
    );
    let mut out = b"keep".to_vec();
    assert!(Message::from(Request::Join { name: long }).encode(&mut out).is_err());
    assert_eq!(out, b"keep", "nothing appended on error");
    // Split text always encodes.
    for piece in split_text(&"word ".repeat(100), 99) {
        Message::from(Request::Broadcast { text: piece }).to_bytes().unwrap();
    }
}

#[test]
fn server_side_buffer_is_bounded_by_the_largest_request() {
    let max = Limits::default().max_message_len(Direction::ToServer);
    assert_eq!(max, 799, "103 with a 99-char target and text of 4-byte characters");
    let mut d = Decoder::new(Direction::ToServer);
    // A whisper whose text never arrives: the decoder waits but holds < max bytes.
    d.feed(b"10302bo99");
    d.feed(&[b'a'; 50]);
    assert_eq!(d.next_message().unwrap(), None);
    assert!(d.buffered() < max);
}
