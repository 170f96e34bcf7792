//! Decoding a capture in memory, as `capture-decode` does, for the tests.

use std::path::Path;

use chatctl::capture::extract::Extractor;
use chatctl::capture::{Analyzer, CaptureReader, Config, Event, TransferSummary};

/// Every event of `capture` (owned), and the analyzer for its statistics;
/// files are rebuilt into `extract` when given.
pub fn decode(capture: &[u8], cfg: Config, extract: Option<&Path>) -> (Vec<Event>, Analyzer) {
    let ex = extract.map(|d| Extractor::new(d).unwrap());
    let mut reader = CaptureReader::new(capture).expect("a capture");
    let mut a = Analyzer::new(cfg, ex);
    let mut events = Vec::new();
    while reader.next_packet(|p| a.packet(&p, &mut |e| events.push(e))).expect("readable").is_some() {}
    a.finish(&mut |e| events.push(e));
    (events, a)
}

/// The transfer summaries among `events`.
pub fn transfers(events: &[Event]) -> Vec<TransferSummary> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Transfer(t) => Some((**t).clone()),
            _ => None,
        })
        .collect()
}
