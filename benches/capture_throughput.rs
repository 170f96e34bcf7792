//! Throughput of `capture-decode` on a synthetic capture of at least 1 GiB,
//! and the ratio to `tshark -r FILE -q` on the same file.
//!
//! Run: `cargo bench --bench capture_throughput` (release build). The capture
//! is generated under the temporary folder and deleted afterwards. Set
//! `CAPTURE_BENCH_MIB` for another size (default 1024) and
//! `CAPTURE_BENCH_NO_TSHARK=1` to skip tshark, `CAPTURE_BENCH_MIX=chat` for a
//! capture of chat messages only (small packets, the worst case per byte),
//! `CAPTURE_BENCH_KEEP=PATH` to write the capture there and keep it (for
//! profiling: `perf record chatctl capture-decode --summary PATH`).
//!
//! The traffic is what a busy chat server sees: sessions that join, chat,
//! and download one file over TCP (1448-byte segments, an ACK every second
//! segment) and one over classic go-back-N UDP (1000-byte datagrams, an ACK
//! each), in Ethernet frames.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Instant;

use chatctl::capture::net::LINKTYPE_ETHERNET;
use chatctl::capture::synth::{PcapWriter, TcpConn, frame, udp_packet};
use chatctl::capture::{Analyzer, CaptureReader, Config};
use chatctl::rdt::classic;

fn generate(path: &std::path::Path, min_bytes: u64, chatty: bool) -> std::io::Result<(u64, u64)> {
    let out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut w = PcapWriter::new(out, LINKTYPE_ETHERNET, false, false)?;
    let written = std::cell::Cell::new(24u64);
    let packets = std::cell::Cell::new(0u64);
    let mut t = 1_700_000_000_000_000_000i64;
    let mut put = |w: &mut PcapWriter<BufWriter<File>>, ip: Vec<u8>| -> std::io::Result<()> {
        t += 10_000;
        let f = frame(LINKTYPE_ETHERNET, 0, &ip);
        written.set(written.get() + 16 + f.len() as u64);
        packets.set(packets.get() + 1);
        w.packet(t, &f)
    };
    let server: IpAddr = "10.9.0.1".parse().unwrap();
    let block: Vec<u8> = (0..1448u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut session = 0u32;
    while written.get() < min_bytes {
        session += 1;
        let client: IpAddr = IpAddr::from([10, 9, (1 + session / 250 % 250) as u8, (1 + session % 250) as u8]);
        let cport = 20_000 + (session % 30_000) as u16;
        let sa = SocketAddr::new;
        let mut main = TcpConn::new(sa(client, cport), sa(server, 13337), session.wrapping_mul(7919), 1);
        let up_port = 55_000 + (session % 10) as u16;
        let tcp_port = 55_010 + (session % 10) as u16;
        let udp_port = 55_020 + (session % 10) as u16;
        let mut up = TcpConn::new(sa(client, cport + 1), sa(server, up_port), 5, 6);
        for p in main.handshake() {
            put(&mut w, p)?;
        }
        let name = format!("U{session:05}");
        put(&mut w, main.data(true, format!("100{:02}{name}\r\n", name.len()).as_bytes()))?;
        put(&mut w, main.data(false, format!("200{:02}{name}{up_port:05}", name.len()).as_bytes()))?;
        for p in up.handshake() {
            put(&mut w, p)?;
        }
        for i in 0..if chatty { 2000 } else { 10 } {
            let text = format!("hi #{i}");
            put(&mut w, main.data(true, format!("104{:02}{text}", text.len()).as_bytes()))?;
            put(&mut w, main.data(false, b"2041103BOB"))?;
            put(&mut w, up.data(false, b"30403BOB11hello there"))?;
        }
        // A 4 MiB TCP download (none in the chatty mix).
        put(&mut w, main.data(true, b"106TCP08file.bin"))?;
        let size = if chatty { 1 } else { 4u64 << 20 };
        put(&mut w, main.data(false, format!("206{:02}{size}{tcp_port:05}", size.to_string().len()).as_bytes()))?;
        let mut tr = TcpConn::new(sa(client, cport + 2), sa(server, tcp_port), 1, 2);
        for p in tr.handshake() {
            put(&mut w, p)?;
        }
        let mut left = size as usize;
        let mut n = 0;
        while left > 0 {
            let k = left.min(block.len());
            put(&mut w, tr.data(false, &block[..k]))?;
            left -= k;
            n += 1;
            if n % 2 == 0 {
                put(&mut w, tr.segment(true, 0x10, &[]))?;
            }
        }
        put(&mut w, tr.fin(false))?;
        put(&mut w, tr.fin(true))?;
        // A 1 MiB classic UDP download.
        put(&mut w, main.data(true, b"106UDP08blob.bin"))?;
        let usize_ = if chatty { 1 } else { 1u64 << 20 };
        put(&mut w, main.data(false, format!("206{:02}{usize_}{udp_port:05}", usize_.to_string().len()).as_bytes()))?;
        let (c, s) = (sa(client, cport + 3), sa(server, udp_port));
        put(&mut w, udp_packet(c, s, b"20"))?;
        let chunks = (usize_ as usize).div_ceil(classic::CHUNK);
        let mut d = Vec::with_capacity(1003);
        for i in 0..chunks {
            d.clear();
            let len = (usize_ as usize - i * classic::CHUNK).min(classic::CHUNK);
            classic::Data { last: i + 1 == chunks, seq: (i % 21) as u8, payload: &block[..len] }.encode(&mut d);
            put(&mut w, udp_packet(s, c, &d))?;
            put(&mut w, udp_packet(c, s, &classic::encode_ack(((i + 1) % 21) as u8)))?;
        }
        put(&mut w, main.data(true, b"101"))?;
        put(&mut w, up.fin(false))?;
        put(&mut w, main.data(false, b"201"))?;
        put(&mut w, main.fin(true))?;
    }
    w.into_inner().flush()?;
    Ok((written.get(), packets.get()))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // skip rather than write a gigabyte.
    if !std::env::args().any(|a| a == "--bench") {
        println!("capture_throughput: skipped (run it with `cargo bench --bench capture_throughput`)");
        return;
    }
    let mib: u64 = std::env::var("CAPTURE_BENCH_MIB").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let keep = std::env::var_os("CAPTURE_BENCH_KEEP").map(std::path::PathBuf::from);
    let path = keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("chatctl-capture-bench-{}.pcap", std::process::id())));
    let t0 = Instant::now();
    // CAPTURE_BENCH_MIX=chat: almost only chat messages (small packets), the
    // worst case per byte; the default mix is mostly downloads.
    let chatty = std::env::var("CAPTURE_BENCH_MIX").is_ok_and(|m| m == "chat");
    let (bytes, packets) = generate(&path, mib << 20, chatty).expect("generate the capture");
    println!("generated {} ({bytes} bytes, {packets} packets) in {:.1?}", path.display(), t0.elapsed());
    let mb = bytes as f64 / 1e6;

    // The library, as `capture-decode` drives it (events counted, not printed).
    let run_lib = || {
        let t = Instant::now();
        let mut reader = CaptureReader::new(File::open(&path).unwrap()).unwrap();
        let mut a = Analyzer::new(Config::default(), None);
        let mut events = 0u64;
        while reader.next_packet(|p| a.packet(&p, &mut |_| events += 1)).unwrap().is_some() {}
        a.finish(&mut |_| events += 1);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(a.stats().packets, packets);
        assert_eq!(a.stats().decode_errors, 0, "the generated chat must decode");
        (secs, events, a.stats().messages)
    };
    let _warm = run_lib();
    let (lib_s, events, messages) = run_lib();
    println!("library: {lib_s:.2} s, {:.0} MB/s ({events} events, {messages} chat messages)", mb / lib_s);

    // The binary, end to end (timeline to /dev/null, and --summary).
    let exe = env!("CARGO_BIN_EXE_chatctl");
    let time_cmd = |args: &[&str]| {
        let t = Instant::now();
        let st = Command::new(exe).args(args).arg(&path).stdout(std::process::Stdio::null()).status().unwrap();
        assert!(st.success());
        t.elapsed().as_secs_f64()
    };
    let sum_s = time_cmd(&["capture-decode", "--summary"]);
    println!("chatctl capture-decode --summary: {sum_s:.2} s, {:.0} MB/s", mb / sum_s);
    let tl_s = time_cmd(&["capture-decode", "--json"]);
    println!("chatctl capture-decode --json > /dev/null: {tl_s:.2} s, {:.0} MB/s", mb / tl_s);
    // Peak memory of the binary (GNU time's maximum resident set size).
    if let Ok(o) = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(exe)
        .args(["capture-decode", "--summary"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .output()
        && o.status.success()
    {
        let kib = String::from_utf8_lossy(&o.stderr).trim().lines().last().unwrap_or("").to_string();
        println!("chatctl capture-decode --summary: peak RSS {kib} KiB");
    }

    if std::env::var_os("CAPTURE_BENCH_NO_TSHARK").is_none() {
        // `-q` alone lets tshark skip dissection (nothing to print, no tap):
        // it then only reads the records. `-z conv,tcp` makes it dissect
        // every packet up to TCP, closer to the work capture-decode does.
        for extra in [&[][..], &["-z", "conv,tcp"][..]] {
            let t = Instant::now();
            let st = Command::new("tshark")
                .arg("-r")
                .arg(&path)
                .arg("-q")
                .args(extra)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            match st {
                Ok(st) if st.success() => {
                    let ts = t.elapsed().as_secs_f64();
                    let what = format!("tshark -r FILE -q {}", extra.join(" "));
                    println!("{what}: {ts:.2} s, {:.0} MB/s", mb / ts);
                    println!("  ratio: library {:.1}x, --summary {:.1}x", ts / lib_s, ts / sum_s);
                }
                other => println!("tshark not run ({other:?}); install it: apt-get install -y tshark"),
            }
        }
    }
    if keep.is_none() {
        let _ = std::fs::remove_file(&path);
    }
}
