//! [`escape`]: network text as it may reach a terminal or a log.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a character that must not reach a terminal or a log raw:
/// - C0 and C1 controls and DEL (escape sequences, CR/LF that forge lines,
///   BEL, NUL...): exactly Unicode's `Cc`;
/// - bidi formatting: the marks LRM, RLM and ALM, the embeddings and
///   overrides U+202A-U+202E and the isolates U+2066-U+2069, with which a
///   name or message can reorder what follows it on the line and pose as
///   something else;
/// - the line and paragraph separators U+2028/U+2029 (a new line to some
///   viewers), and invisible characters that join nothing (zero-width space
///   U+200B, word joiner and invisible operators U+2060-U+2064, U+FEFF).
///
/// Zero-width joiner and non-joiner (U+200D, U+200C) are *not* in it: emoji
/// sequences and Persian or Hebrew text need them.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` with every `is_unsafe` character escaped: `\n`, `\r`, `\t`, and
/// `\u{hex}` for the rest (ESC is `\u{1b}`, U+202E `\u{202e}`). Everything
/// else, backslashes included, is kept as is; borrowed when nothing needs
/// escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(escape("a\u{1b}[2Jb\r\n\u{7}\t"), "a\\u{1b}[2Jb\\r\\n\\u{7}\\t");
        assert_eq!(escape("\u{202e}evil\u{2066}"), "\\u{202e}evil\\u{2066}");
        assert_eq!(escape("\u{0}\u{7f}\u{85}\u{9b}"), "\\u{0}\\u{7f}\\u{85}\\u{9b}");
        assert_eq!(escape("line\u{2028}forged"), "line\\u{2028}forged");
        assert!(matches!(escape("שלום, bob \\ 👩\u{200d}💻"), Cow::Borrowed(_)));
    }

    fn decode(s: &str) -> String {
        // Inverse of `escape` for strings with no backslash of their own.
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('\\') {
            out.push_str(&rest[..i]);
            let tail = &rest[i + 1..];
            let (c, used) = match tail.as_bytes()[0] {
                b'n' => ('\n', 1),
                b'r' => ('\r', 1),
                b't' => ('\t', 1),
                _ => {
                    let end = tail.find('}').unwrap();
                    (char::from_u32(u32::from_str_radix(&tail[2..end], 16).unwrap()).unwrap(), end + 1)
                }
            };
            out.push(c);
            rest = &tail[used..];
        }
        out.push_str(rest);
        out
    }

    fn interesting() -> impl Strategy<Value = char> {
        prop_oneof![
            any::<char>(),
            prop::sample::select(vec![
                '\u{1b}', '\n', '\r', '\t', '\0', '\u{7f}', '\u{85}', '\u{9b}', '\u{200d}', '\u{200c}', '\u{202e}',
                '\u{2067}', '\u{200f}', '\u{2028}', 'ש', 'ל', '👩', '💻', 'a',
            ]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Nothing unsafe survives; safe characters are kept in order; and
        /// the escaping is lossless (it can be read back).
        #[test]
        fn escaped_text_is_safe_and_lossless(chars in prop::collection::vec(interesting(), 0..40)) {
            let s: String = chars.into_iter().filter(|c| *c != '\\').collect();
            let e = escape(&s);
            prop_assert!(!e.chars().any(is_unsafe), "{e:?}");
            let kept: String = s.chars().filter(|c| !is_unsafe(*c)).collect();
            let kept_out: String = e.chars().filter(|c| !is_unsafe(*c)).collect();
            prop_assert!(kept_out.len() >= kept.len());
            prop_assert_eq!(decode(&e), s.clone());
            prop_assert_eq!(matches!(e, Cow::Borrowed(_)), !s.chars().any(is_unsafe));
        }

        /// Hebrew, emoji and ZWJ sequences pass through untouched.
        #[test]
        fn scripts_and_emoji_are_kept(s in "[\u{05d0}-\u{05ea}\u{1f300}-\u{1f64f}\u{200c}\u{200d} a-z0-9]{0,30}") {
            prop_assert!(matches!(escape(&s), Cow::Borrowed(_)));
        }
    }
}
