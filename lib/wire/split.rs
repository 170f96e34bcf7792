//! Cutting text longer than one message can carry.

use super::MAX_FIELD_CHARS;

/// Splits `text` into pieces of at most `max` characters (0 < `max`), at
/// character boundaries, preferring to cut just after whitespace. The pieces
/// concatenate to `text` exactly. Empty text gives one empty piece, since an
/// empty message is legal.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let max = max.clamp(1, MAX_FIELD_CHARS);
    let mut pieces = Vec::new();
    let mut rest = text;
    loop {
        // Byte index just past the first `max` characters, if there are more.
        let Some((cut_at, _)) = rest.char_indices().nth(max) else {
            pieces.push(rest.to_string());
            return pieces;
        };
        let head = &rest[..cut_at];
        // Cut after the last whitespace in the head, unless that leaves a
        // piece of under half the allowed size (a long word is cut instead).
        let cut = head
            .char_indices()
            .filter(|(_, c)| c.is_whitespace())
            .map(|(i, c)| i + c.len_utf8())
            .next_back()
            .filter(|&i| head[..i].chars().count() * 2 >= max)
            .unwrap_or(cut_at);
        pieces.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_text("hi", 99), vec!["hi"]);
        assert_eq!(split_text("", 99), vec![""]);
    }

    #[test]
    fn cuts_after_whitespace() {
        let text = format!("{} {}", "a".repeat(60), "b".repeat(60));
        let pieces = split_text(&text, 99);
        assert_eq!(pieces, vec![format!("{} ", "a".repeat(60)), "b".repeat(60)]);
    }

    #[test]
    fn long_word_is_cut_at_characters() {
        let text = "ש".repeat(250);
        let pieces = split_text(&text, 99);
        assert_eq!(pieces.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), vec![99, 99, 52]);
        assert_eq!(pieces.concat(), text);
    }
}
