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

/// `chatctl capture-decode --json ARGS -` with `capture` on standard
/// input: its output, one JSON object per line.
pub fn decode_json(capture: &[u8], args: &[&str]) -> Vec<serde_json::Value> {
    let out = super::cli()
        .args(["capture-decode", "--json"])
        .args(args)
        .arg("-")
        .write_stdin(capture.to_vec())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
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
