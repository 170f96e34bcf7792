//! The copies of this side's ABORT still to send (either machine): an
//! ABORT is never acknowledged nor repeated later, so [`ABORT_COPIES`] go
//! back to back instead.

use super::{ABORT_COPIES, AbortReason, Frame};

/// This side's ABORT, and how many copies of it are still due.
#[derive(Debug, Default)]
pub(crate) struct AbortCopies {
    due: u32,
    abort: Option<(AbortReason, String)>,
}

impl AbortCopies {
    /// [`ABORT_COPIES`] copies of an ABORT for `reason` carrying `text` are due.
    pub(crate) fn start(&mut self, reason: AbortReason, text: String) {
        self.abort = Some((reason, text));
        self.due = ABORT_COPIES;
    }

    /// Whether a copy is still due.
    pub(crate) fn is_due(&self) -> bool {
        self.due > 0
    }

    /// Writes the next copy, echoing `cookie`, into `out`; `false` (and
    /// `out` untouched) when none is due. The copy counts as sent only
    /// once [`on_sent`](Self::on_sent) says so.
    pub(crate) fn encode_next(&self, cookie: u64, out: &mut Vec<u8>) -> bool {
        let Some((reason, text)) = self.abort.as_ref().filter(|_| self.due > 0) else { return false };
        Frame::Abort { cookie, reason: *reason, text }.encode(out);
        true
    }

    /// The copy written last left.
    pub(crate) fn on_sent(&mut self) {
        self.due -= 1;
    }

    /// No more copies go (they may not leave).
    pub(crate) fn cancel(&mut self) {
        self.due = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copies_go_back_to_back_with_the_cookie_then_none() {
        let mut a = AbortCopies::default();
        let mut out = Vec::new();
        assert!(!a.is_due() && !a.encode_next(1, &mut out) && out.is_empty());
        a.start(AbortReason::Cancelled, "bye".into());
        let mut sent = 0;
        while a.encode_next(7, &mut out) {
            let f = Frame::decode(&out).unwrap();
            assert_eq!(f, Frame::Abort { cookie: 7, reason: AbortReason::Cancelled, text: "bye" });
            a.on_sent();
            sent += 1;
        }
        assert_eq!(sent, ABORT_COPIES);
        a.start(AbortReason::Cancelled, String::new());
        a.cancel();
        assert!(!a.is_due());
    }
}
