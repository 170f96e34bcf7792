//! Counters over a whole capture: [`Stats`] and its per-code table [`CodeCounts`].

use std::collections::BTreeSet;

/// Counters over the whole capture (for `--summary`).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Frames read.
    pub packets: u64,
    /// Captured bytes of those frames.
    pub bytes: u64,
    /// Frames that were not TCP/UDP over IP, or did not parse.
    pub skipped: u64,
    /// Frames whose headers were malformed or cut short.
    pub malformed: u64,
    /// Chat messages decoded.
    pub messages: u64,
    /// Messages per code (`100`, `4061`, …).
    pub by_code: CodeCounts,
    /// Every user name seen.
    pub users: BTreeSet<String>,
    /// Undecodable stretches of chat input (skipped).
    pub decode_errors: u64,
    /// TCP holes the capture missed.
    pub gaps: u64,
    /// TCP connections seen (chat or not).
    pub tcp_connections: u64,
}

/// Messages per code: a flat table indexed by the code (codes run from 100 to
/// 4999), because counting is done for every message and a table is cheaper
/// than an ordered map's search.
#[derive(Clone, Debug, Default)]
pub struct CodeCounts {
    /// Indexed by code; empty until the first message.
    counts: Vec<u64>,
}

impl CodeCounts {
    /// Table size: every code a message can have is below it.
    const SIZE: usize = 5000;

    /// Counts one message with this code.
    #[inline]
    pub fn add(&mut self, code: u16) {
        match self.counts.get_mut(usize::from(code)) {
            Some(n) => *n += 1,
            None if usize::from(code) < Self::SIZE => {
                self.counts.resize(Self::SIZE, 0);
                self.counts[usize::from(code)] += 1;
            }
            None => {}
        }
    }

    /// Messages seen with this code.
    pub fn get(&self, code: u16) -> u64 {
        self.counts.get(usize::from(code)).copied().unwrap_or(0)
    }

    /// `(code, count)` for every code seen, lowest code first.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(c, n)| (c as u16, *n))
    }
}
