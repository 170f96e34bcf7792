//! Byte counts and rates, written one way everywhere chatctl prints them
//! (`fetch`'s bars and final lines, `join`'s `/get`, `-v` figures,
//! `capture-decode`): decimal SI units (kB = 1000 bytes, MB, GB, TB), as
//! network rates are counted, with one decimal below 10 of a unit
//! (`1.5 MB`, `80 MB/s`, `512 B`).

/// Units from bytes up: each is 1000 of the one before.
const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];

/// A byte count, e.g. `512 B`, `1.5 kB`, `24 kB`, `3.0 GB`.
pub fn bytes(n: u64) -> String {
    scaled(n as f64, "")
}

/// A rate in bytes per second, e.g. `80 MB/s`, `1.5 kB/s`, `0 B/s`
/// (negative and not-a-number rates are shown as 0).
pub fn rate(bytes_per_second: f64) -> String {
    let v = if bytes_per_second.is_finite() { bytes_per_second.max(0.0) } else { 0.0 };
    scaled(v, "/s")
}

fn scaled(mut v: f64, suffix: &str) -> String {
    let mut i = 0;
    // 999.5 rounds to 1000 at no decimals: show it as the next unit.
    while v >= 999.5 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if v < 9.95 && i > 0 { format!("{v:.1} {}{suffix}", UNITS[i]) } else { format!("{v:.0} {}{suffix}", UNITS[i]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        for (n, s) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (1_500, "1.5 kB"),
            (24_114, "24 kB"),
            (999_499, "999 kB"),
            (999_500, "1.0 MB"),
            (3_000_000_000, "3.0 GB"),
            (u64::MAX, "18446744 TB"),
        ] {
            assert_eq!(bytes(n), s, "{n}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate(80_000_000.0), "80 MB/s");
        assert_eq!(rate(1_500.0), "1.5 kB/s");
        assert_eq!(rate(512.0), "512 B/s");
        assert_eq!(rate(999_999.0), "1.0 MB/s");
        assert_eq!(rate(0.0), "0 B/s");
        assert_eq!(rate(-3.0), "0 B/s");
        assert_eq!(rate(f64::NAN), "0 B/s");
        assert_eq!(rate(f64::INFINITY), "0 B/s");
    }
}
