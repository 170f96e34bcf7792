//! How the client shows things to people: network text made safe for a
//! terminal, and the line a finished download ends with.
//!
//! These live in the library (not the binary) so that `fetch` and `join`'s
//! `/get` print exactly the same final line, and so that the format is tested
//! once, here.

use super::DownloadReport;
/// The one escaping function ([`crate::text::escape`]), re-exported where
/// the client's users have always found it.
pub use crate::text::escape;

/// The local file name for a file the server offers: its last path component
/// (after `/` or `\\`), or `None` when that is empty, `.`, `..`, or holds a
/// control character. A server's name never picks a folder, and never
/// creates a file whose name would garble a terminal listing.
pub(crate) fn local_file_name(file: &str) -> Option<&str> {
    let base = file.rsplit(['/', '\\']).next()?;
    let bad = base.is_empty() || base == "." || base == ".." || base.chars().any(crate::text::is_unsafe);
    (!bad).then_some(base)
}

/// `n` with a comma every three digits, as in the course's example
/// (`24,114 bytes`).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

pub use crate::text::units::rate;

impl DownloadReport {
    /// Average bytes per second of this run: the bytes it received (not those
    /// a `--continue` found already on disk) over its time (0 when it took no
    /// measurable time).
    pub fn bytes_per_second(&self) -> f64 {
        let received = self.size.saturating_sub(self.resumed_from);
        if self.seconds > 0.0 { received as f64 / self.seconds } else { 0.0 }
    }

    /// The final line the course asked for, with `who` the downloader:
    /// `bob downloaded 100% of adsd.png (24,114 bytes) in 1.2s at 80 MB/s. Last byte: 130`.
    /// An empty file has no last byte: `Last byte: none (empty file)`. A
    /// resumed download says where it resumed and what it fetched again
    /// (`... (24,114 bytes, resumed at 20,000; 1,452 bytes fetched again) ...`);
    /// a `--continue` that found the file complete says so instead
    /// (`adsd.png is already complete (24,114 bytes). Last byte: 130`).
    pub fn summary(&self, who: &str) -> String {
        let last = self.last_byte.map_or_else(|| "none (empty file)".to_string(), |b| b.to_string());
        if self.already_complete {
            return format!(
                "{} is already complete ({} bytes): nothing to fetch. Last byte: {last}",
                self.path.display(),
                thousands(self.size)
            );
        }
        let resumed = match (self.resumed_from, self.refetched_bytes) {
            (0, _) => String::new(),
            (at, 0) => format!(", resumed at {}", thousands(at)),
            (at, again) => format!(", resumed at {}; {} bytes fetched again", thousands(at), thousands(again)),
        };
        format!(
            "{} downloaded 100% of {} ({} bytes{resumed}) in {:.1}s at {}. Last byte: {last}",
            escape(who),
            escape(&self.file),
            thousands(self.size),
            self.seconds,
            rate(self.bytes_per_second()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Transport, UdpMode};

    #[test]
    fn local_file_names() {
        assert_eq!(local_file_name("a.bin"), Some("a.bin"));
        assert_eq!(local_file_name("../../etc/passwd"), Some("passwd"));
        assert_eq!(local_file_name("dir\\x.txt"), Some("x.txt"));
        for bad in ["", "..", ".", "dir/", "a\u{1b}[2J", "new\nline", "gpj.\u{202e}exe"] {
            assert_eq!(local_file_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn thousands_separators() {
        for (n, s) in [(0, "0"), (999, "999"), (1000, "1,000"), (24_114, "24,114"), (1_234_567, "1,234,567")] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn a_resumed_download_rates_only_what_this_run_received() {
        let r = DownloadReport {
            file: "big.iso".into(),
            path: "big.iso".into(),
            size: 3_000_000_000,
            last_byte: Some(1),
            seconds: 2.0,
            transport: Transport::Udp,
            udp_mode: Some(UdpMode::Fast),
            resumed_from: 2_800_000_000,
            refetched_bytes: 0,
            already_complete: false,
            sender: None,
        };
        assert_eq!(r.bytes_per_second(), 100_000_000.0);
        assert!(r.summary("bob").contains(" at 100 MB/s"), "{}", r.summary("bob"));
    }

    #[test]
    fn the_course_line() {
        let r = DownloadReport {
            file: "adsd.png".into(),
            path: "adsd.png".into(),
            size: 24_114,
            last_byte: Some(130),
            seconds: 1.2,
            transport: Transport::Udp,
            udp_mode: Some(UdpMode::Fast),
            resumed_from: 0,
            refetched_bytes: 0,
            already_complete: false,
            sender: None,
        };
        assert_eq!(
            r.summary("bob"),
            "bob downloaded 100% of adsd.png (24,114 bytes) in 1.2s at 20 kB/s. Last byte: 130"
        );
        let resumed = DownloadReport { resumed_from: 20_000, refetched_bytes: 1_452, ..r.clone() };
        assert_eq!(
            resumed.summary("bob"),
            "bob downloaded 100% of adsd.png (24,114 bytes, resumed at 20,000; 1,452 bytes fetched again) in 1.2s \
             at 3.4 kB/s. Last byte: 130"
        );
        let done = DownloadReport { already_complete: true, resumed_from: 24_114, ..r.clone() };
        assert_eq!(
            done.summary("bob"),
            "adsd.png is already complete (24,114 bytes): nothing to fetch. Last byte: 130"
        );
        let empty = DownloadReport { size: 0, last_byte: None, seconds: 0.0, file: "e\u{1b}".into(), ..r };
        assert_eq!(
            empty.summary("bob"),
            "bob downloaded 100% of e\\u{1b} (0 bytes) in 0.0s at 0 B/s. Last byte: none (empty file)"
        );
    }
}
