//! A read cursor over the decoder's buffer. Every read either succeeds, says
//! how many bytes in total it needs before it can succeed (`Incomplete`), or
//! says precisely what was wrong and where (`Invalid`).

use super::decoder::{DecodeError, DecodeErrorKind};

/// Why a parse did not produce a message.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The buffer ends too early: retry once it holds at least this many bytes.
    Incomplete(usize),
    Invalid(DecodeError),
}

pub(crate) type Parse<T> = Result<T, Stop>;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Stream offset of `buf[0]`, for error messages.
    base: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64) -> Self {
        Cursor { buf, pos: 0, base }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn invalid(&self, at: usize, kind: DecodeErrorKind) -> Stop {
        Stop::Invalid(DecodeError { offset: self.base + at as u64, kind })
    }

    fn need(&self, n: usize) -> Parse<()> {
        if self.buf.len() - self.pos < n { Err(Stop::Incomplete(self.pos + n)) } else { Ok(()) }
    }

    /// Exactly `n` ASCII digits as a number (`n` ≤ 20, checked for overflow).
    pub(crate) fn digits(&mut self, n: usize, field: &'static str) -> Parse<u64> {
        self.need(n)?;
        let mut value: u64 = 0;
        for i in 0..n {
            let b = self.buf[self.pos + i];
            if !b.is_ascii_digit() {
                return Err(self.invalid(self.pos + i, DecodeErrorKind::ExpectedDigit { field, found: b }));
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| self.invalid(self.pos, DecodeErrorKind::OutOfRange { field, max: u64::MAX }))?;
        }
        self.pos += n;
        Ok(value)
    }

    /// A 2-digit character count followed by that many characters.
    pub(crate) fn field(&mut self, field: &'static str) -> Parse<String> {
        let n = self.digits(2, field)? as usize;
        self.chars(n, field)
    }

    /// Exactly `n` Unicode characters of UTF-8 text.
    pub(crate) fn chars(&mut self, n: usize, field: &'static str) -> Parse<String> {
        let start = self.pos;
        // Fast path (almost all chat text): n ASCII bytes are n characters.
        if let Some(text) = self.buf.get(start..start + n)
            && text.is_ascii()
            && let Ok(text) = std::str::from_utf8(text)
        {
            self.pos = start + n;
            return Ok(text.to_owned());
        }
        let mut at = start;
        for left in (1..=n).rev() {
            let Some(&lead) = self.buf.get(at) else {
                // Every missing character is at least one more byte.
                return Err(Stop::Incomplete(at + left));
            };
            let width = match lead {
                0x00..=0x7f => 1,
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => return Err(self.invalid(at, DecodeErrorKind::InvalidUtf8 { field })),
            };
            if self.buf.len() < at + width {
                // Validate the part we have so that junk is reported now, not later.
                if let Err(e) = std::str::from_utf8(&self.buf[at..])
                    && e.error_len().is_some()
                {
                    return Err(self.invalid(at + e.valid_up_to(), DecodeErrorKind::InvalidUtf8 { field }));
                }
                return Err(Stop::Incomplete(at + width + (left - 1)));
            }
            if let Err(e) = std::str::from_utf8(&self.buf[at..at + width]) {
                return Err(self.invalid(at + e.valid_up_to(), DecodeErrorKind::InvalidUtf8 { field }));
            }
            at += width;
        }
        self.pos = at;
        // Each character was validated above.
        Ok(String::from_utf8(self.buf[start..at].to_vec()).expect("validated UTF-8"))
    }

    /// A 5-digit port.
    pub(crate) fn port(&mut self) -> Parse<u16> {
        let at = self.pos;
        let v = self.digits(5, "port")?;
        u16::try_from(v).map_err(|_| self.invalid(at, DecodeErrorKind::OutOfRange { field: "port", max: 65535 }))
    }

    /// A list count introduced by a digit Z: `0` means none, otherwise the
    /// count has `width(Z)` digits. `width` returns `None` for an illegal Z.
    pub(crate) fn list_len(
        &mut self,
        field: &'static str,
        max: usize,
        width: impl Fn(u8) -> Option<usize>,
    ) -> Parse<usize> {
        let at = self.pos;
        let z = self.digits(1, field)? as u8;
        if z == 0 {
            return Ok(0);
        }
        let Some(w) = width(z) else {
            return Err(self.invalid(at, DecodeErrorKind::BadListMarker { field, found: b'0' + z }));
        };
        let count_at = self.pos;
        let count = self.digits(w, field)?;
        if count > max as u64 {
            return Err(self.invalid(count_at, DecodeErrorKind::ListTooLong { field, count, max }));
        }
        Ok(count as usize)
    }
}
