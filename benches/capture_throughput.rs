//! Throughput of `capture-decode` on synthetic captures of at least 1 GiB,
//! and the ratio to `tshark -r FILE -q` on the same files, for the three
//! kinds of capture, in one run of a few minutes.
//!
//! Run: `cargo bench --bench capture_throughput` (release build). For each
//! kind (`default`: mostly downloads; `chat`: chat messages only, small
//! packets, the worst case per byte; `fast`: the big download in fast mode,
//! every datagram's CRC32C checked) a capture is generated under the
//! temporary folder, measured, and deleted. Per kind it reports the library
//! (events counted, not printed), the binary with `--summary`, `--json` and
//! the human timeline to /dev/null, peak memory, `tshark -r FILE -q`, and two
//! floors: `cat FILE > /dev/null` and a bare walk over the pcap records with
//! no decoding (what reading the file costs at all). A table at the end
//! gathers the figures, with the machine's load before and after.
//!
//! Environment:
//! - `CAPTURE_BENCH_MIX=default|chat|fast`: one kind only (default: all three).
//! - `CAPTURE_BENCH_MIB`: capture size (default 1024).
//! - `CAPTURE_BENCH_NO_TSHARK=1`: skip tshark.
//! - `CAPTURE_BENCH_TSHARK_CONV=1`: also time `tshark -r FILE -q -z conv,tcp`
//!   (dissects every packet up to TCP; several minutes per GiB, so opt-in).
//! - `CAPTURE_BENCH_FILE=PATH`: keep the capture at PATH (with several kinds,
//!   `PATH-<kind>.pcap`), generated if missing, reused if present: before and
//!   after runs on the same file, profiling with
//!   `perf record chatctl capture-decode --summary PATH`.
//!
//! Every figure is given for wall time and for CPU time (user + system):
//! on a shared machine the wall time measures the neighbours too, so the
//! ratios are taken on CPU time.
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

/// What the generated sessions do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mix {
    /// Chat, a 4 MiB TCP download and a 1 MiB classic UDP one per session.
    Default,
    /// 2000 chat messages per session, no real download.
    Chat,
    /// Like the default, but the 4 MiB download is in fast mode (CRC32C
    /// checksum of every datagram verified by the decoder).
    Fast,
}

/// A 4 MiB fast-mode download as a receiver-side capture sees it: hello,
/// CHALLENGE, START, DATA of 1427 bytes with an ACK every second, DONE,
/// DONE-ACK.
fn fast_download(
    put: &mut impl FnMut(Vec<u8>) -> std::io::Result<()>,
    c: SocketAddr,
    s: SocketAddr,
    file: &[u8],
) -> std::io::Result<()> {
    use chatctl::rdt::fast::{self, Frame};
    let mut d = Vec::with_capacity(1500);
    let mut enc = |f: Frame<'_>| {
        f.encode(&mut d);
        d.clone()
    };
    let size = file.len() as u64;
    put(udp_packet(c, s, &fast::encode_hello()))?;
    put(udp_packet(s, c, &enc(Frame::Challenge { cookie: 7, size })))?;
    put(udp_packet(c, s, &enc(Frame::Start { cookie: 7, resume: 0, max_data: size })))?;
    for (pn, chunk) in file.chunks(1427).enumerate() {
        let offset = (pn * 1427) as u64;
        put(udp_packet(s, c, &enc(Frame::Data { pn: pn as u64, offset, payload: chunk })))?;
        if pn % 2 == 1 {
            let end = offset + chunk.len() as u64;
            let ack = Frame::Ack {
                largest_pn: pn as u64,
                delay_us: 0,
                max_data: size,
                ranges: std::iter::once(0..end).collect(),
            };
            put(udp_packet(c, s, &enc(ack)))?;
        }
    }
    let hash = fast::HashAlgorithm::Xxh3_128.field(file);
    put(udp_packet(s, c, &enc(Frame::Done { size, hash })))?;
    put(udp_packet(c, s, &enc(Frame::DoneAck { ok: true })))
}

fn generate(path: &std::path::Path, min_bytes: u64, mix: Mix) -> std::io::Result<(u64, u64)> {
    let chatty = mix == Mix::Chat;
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
    let fast_file: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
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
        if mix == Mix::Fast {
            // A 4 MiB fast-mode download.
            put(&mut w, main.data(true, b"106UDP08fast.bin"))?;
            put(&mut w, main.data(false, format!("20607{}{tcp_port:05}", fast_file.len()).as_bytes()))?;
            let (c, s) = (sa(client, cport + 2), sa(server, tcp_port));
            fast_download(&mut |p| put(&mut w, p), c, s, &fast_file)?;
        }
        // A 4 MiB TCP download (none in the chatty and fast mixes).
        put(&mut w, main.data(true, b"106TCP08file.bin"))?;
        let size = if mix != Mix::Default { 1 } else { 4u64 << 20 };
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

/// CPU time (user + system) of the calling thread, from the scheduler's own
/// accounting (Linux); None elsewhere.
fn thread_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? / 1e9)
}

/// Runs a command with its output discarded; returns (wall, CPU) seconds, the
/// CPU time from GNU time when it is installed.
fn time_cmd(program: &str, args: &[&std::ffi::OsStr]) -> Option<(f64, Option<f64>)> {
    let t = Instant::now();
    let gnu_time = std::path::Path::new("/usr/bin/time").exists();
    let mut c = if gnu_time { Command::new("/usr/bin/time") } else { Command::new(program) };
    if gnu_time {
        c.args(["-f", "%U %S"]).arg(program);
    }
    let o = c.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).output().ok()?;
    let wall = t.elapsed().as_secs_f64();
    if !o.status.success() {
        return None;
    }
    let err = String::from_utf8_lossy(&o.stderr);
    let cpu = err.lines().last().and_then(|l| {
        let v: Vec<f64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        (v.len() == 2).then(|| v[0] + v[1])
    });
    Some((wall, if gnu_time { cpu } else { None }))
}

fn rate(mb: f64, wall: f64, cpu: Option<f64>) -> String {
    let c = cpu.map(|c| format!(", {c:.2} s CPU = {:.0} MB/s", mb / c)).unwrap_or_default();
    format!("{wall:.2} s wall = {:.0} MB/s{c}", mb / wall)
}

/// The machine's load averages (Linux), to print beside the figures.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One kind's figures, in MB/s of CPU time (None: not measured).
struct Row {
    mix: Mix,
    bytes: u64,
    packets: u64,
    lib: f64,
    summary: Option<f64>,
    json: Option<f64>,
    human: Option<f64>,
    rss_kib: Option<String>,
    tshark: Option<f64>,
    tshark_conv: Option<f64>,
    walk: f64,
    cat: Option<f64>,
}

fn measure(mix: Mix, path: &std::path::Path, mib: u64) -> Row {
    let mut expected_packets = None;
    if !path.exists() {
        let t0 = Instant::now();
        let (bytes, packets) = generate(path, mib << 20, mix).expect("generate the capture");
        println!("generated {} ({bytes} bytes, {packets} packets) in {:.1?}", path.display(), t0.elapsed());
        expected_packets = Some(packets);
    }
    let bytes = std::fs::metadata(path).expect("the capture").len();
    let mb = bytes as f64 / 1e6;
    println!("capture {} ({bytes} bytes), load {}", path.display(), load());
    // CPU time when it was measured (and is above GNU time's 10 ms resolution).
    let cpu_rate = |wall: f64, cpu: Option<f64>| mb / cpu.filter(|c| *c >= 0.02).unwrap_or(wall);

    // The floor: reading the records and nothing else.
    let walk = || {
        let t = Instant::now();
        let c0 = thread_cpu();
        let mut reader = CaptureReader::new(File::open(path).unwrap()).unwrap();
        let mut sum = 0u64;
        while reader.next_packet(|p| sum += p.data.len() as u64).unwrap().is_some() {}
        let cpu = thread_cpu().zip(c0).map(|(b, a)| b - a);
        (t.elapsed().as_secs_f64(), cpu, std::hint::black_box(sum))
    };
    let _warm = walk();
    let (walk_s, walk_cpu, _) = walk();
    println!("  pcap record walk, no decoding: {}", rate(mb, walk_s, walk_cpu));

    // The library, as `capture-decode` drives it (events counted, not printed).
    let run_lib = || {
        let t = Instant::now();
        let c0 = thread_cpu();
        let mut reader = CaptureReader::new(File::open(path).unwrap()).unwrap();
        let mut a = Analyzer::new(Config::default(), None);
        let mut events = 0u64;
        while reader.next_packet(|p| a.packet_ref(&p, &mut |_| events += 1)).unwrap().is_some() {}
        a.finish_ref(&mut |_| events += 1);
        let secs = t.elapsed().as_secs_f64();
        let cpu = thread_cpu().zip(c0).map(|(b, a)| b - a);
        if let Some(n) = expected_packets {
            assert_eq!(a.stats().packets, n);
        }
        assert_eq!(a.stats().decode_errors, 0, "the generated chat must decode");
        (secs, cpu, events, a.stats().messages, a.stats().packets)
    };
    let (lib_s, lib_cpu, events, messages, packets) = run_lib();
    println!("  library: {} ({packets} packets, {events} events, {messages} chat messages)", rate(mb, lib_s, lib_cpu));

    // The binary, end to end.
    let exe = env!("CARGO_BIN_EXE_chatctl");
    let p = path.as_os_str();
    let decode = |flags: &[&str], what: &str| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["capture-decode".as_ref()];
        args.extend(flags.iter().map(std::ffi::OsStr::new));
        args.push(p);
        let (s, cpu) = time_cmd(exe, &args).expect("capture-decode");
        println!("  chatctl capture-decode {what}: {}", rate(mb, s, cpu));
        cpu_rate(s, cpu)
    };
    let summary = decode(&["--summary"], "--summary");
    let json = decode(&["--json"], "--json > /dev/null");
    let human = decode(&[], "(timeline) > /dev/null");
    // Peak memory of the binary (GNU time's maximum resident set size).
    let rss_kib = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(exe)
        .args(["capture-decode", "--summary"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().lines().last().unwrap_or("").to_string());
    if let Some(kib) = &rss_kib {
        println!("  chatctl capture-decode --summary: peak RSS {kib} KiB");
    }
    let cat = time_cmd("cat", &[p]).map(|(s, cpu)| {
        println!("  cat FILE > /dev/null: {}", rate(mb, s, cpu));
        cpu_rate(s, cpu)
    });

    let mut tshark = None;
    let mut tshark_conv = None;
    if std::env::var_os("CAPTURE_BENCH_NO_TSHARK").is_none() {
        // `-q` alone lets tshark skip dissection (nothing to print, no tap,
        // no filter): it only reads the records and keeps a frame table.
        // `-z conv,tcp` makes it dissect every packet up to TCP, closer to
        // the work capture-decode does (opt-in: minutes per GiB).
        let mut legs: Vec<&[&str]> = vec![&[]];
        if std::env::var_os("CAPTURE_BENCH_TSHARK_CONV").is_some() {
            legs.push(&["-z", "conv,tcp"]);
        }
        for extra in legs {
            let mut args: Vec<&std::ffi::OsStr> = vec!["-r".as_ref(), p, "-q".as_ref()];
            args.extend(extra.iter().map(std::ffi::OsStr::new));
            match time_cmd("tshark", &args) {
                Some((ts, ts_cpu)) => {
                    println!("  tshark -r FILE -q {}: {}", extra.join(" "), rate(mb, ts, ts_cpu));
                    let r = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| format!("{:.2}x", a / b));
                    println!(
                        "    ratio (wall): library {:.2}x; (CPU): library {}",
                        ts / lib_s,
                        r(ts_cpu, lib_cpu).unwrap_or("?".into()),
                    );
                    let v = Some(cpu_rate(ts, ts_cpu));
                    if extra.is_empty() { tshark = v } else { tshark_conv = v }
                }
                None => println!("  tshark not run; install it: apt-get install -y tshark"),
            }
        }
    }
    Row {
        mix,
        bytes,
        packets,
        lib: cpu_rate(lib_s, lib_cpu),
        summary: Some(summary),
        json: Some(json),
        human: Some(human),
        rss_kib,
        tshark,
        tshark_conv,
        walk: cpu_rate(walk_s, walk_cpu),
        cat,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // skip rather than write a gigabyte.
    if !std::env::args().any(|a| a == "--bench") {
        println!("capture_throughput: skipped (run it with `cargo bench --bench capture_throughput`)");
        return;
    }
    let mib: u64 = std::env::var("CAPTURE_BENCH_MIB").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let mixes = match std::env::var("CAPTURE_BENCH_MIX").as_deref() {
        Ok("chat") => vec![Mix::Chat],
        Ok("fast") => vec![Mix::Fast],
        Ok("default") => vec![Mix::Default],
        _ => vec![Mix::Default, Mix::Chat, Mix::Fast],
    };
    let keep = std::env::var_os("CAPTURE_BENCH_FILE").map(std::path::PathBuf::from);
    let load_before = load();
    println!("load average before: {load_before}");
    let mut rows = Vec::new();
    for mix in mixes.iter().copied() {
        let name = format!("{mix:?}").to_lowercase();
        let path = match &keep {
            Some(k) if mixes.len() == 1 => k.clone(),
            Some(k) => k.with_file_name(format!(
                "{}-{name}.pcap",
                k.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
            )),
            None => std::env::temp_dir().join(format!("chatctl-capture-bench-{}-{name}.pcap", std::process::id())),
        };
        println!("== {name}");
        rows.push(measure(mix, &path, mib));
        if keep.is_none() {
            let _ = std::fs::remove_file(&path);
        }
    }
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    let x = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or("-".into(), |(a, b)| format!("{:.2}x", a / b));
    println!("\nMB/s of CPU time (user + system); ratios to `tshark -r FILE -q` on the same file");
    println!(
        "{:<8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "capture",
        "MiB",
        "packets",
        "library",
        "summary",
        "json",
        "human",
        "RSS KiB",
        "tshark",
        "lib/ts",
        "sum/ts",
        "walk",
        "walk/ts",
        "cat"
    );
    for r in &rows {
        println!(
            "{:<8} {:>6} {:>9} {:>8.0} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8.0} {:>9} {:>9}",
            format!("{:?}", r.mix).to_lowercase(),
            r.bytes >> 20,
            r.packets,
            r.lib,
            f(r.summary),
            f(r.json),
            f(r.human),
            r.rss_kib.as_deref().unwrap_or("-"),
            f(r.tshark),
            x(Some(r.lib), r.tshark),
            x(r.summary, r.tshark),
            r.walk,
            x(Some(r.walk), r.tshark),
            f(r.cat),
        );
        if let Some(c) = r.tshark_conv {
            println!("{:<8} tshark -q -z conv,tcp: {c:.0} MB/s; library {:.1}x that", "", r.lib / c);
        }
    }
    println!("load average before: {load_before}; after: {}", load());
}
