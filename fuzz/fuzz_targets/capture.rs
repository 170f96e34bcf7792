//! Fuzz the capture reader and the analyser behind it: any bytes, read as a
//! pcap/pcapng capture, must decode or fail with an error, never panic, and
//! the reader must stop (no endless loop on a damaged block).
#![no_main]

use chatctl::capture::{Analyzer, CaptureReader, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::with_capacity(data, 4096) else { return };
    let cfg = Config { datagrams: true, tcp_cap: 4096, ..Config::default() };
    let mut analyzer = Analyzer::new(cfg, None);
    let mut events = 0usize;
    let mut packets = 0usize;
    while let Ok(Some(())) = reader.next_packet(|p| analyzer.packet(&p, &mut |_| events += 1)) {
        packets += 1;
        // Every packet record takes at least 16 bytes of input.
        assert!(packets <= data.len());
    }
    analyzer.finish(&mut |_| events += 1);
});
