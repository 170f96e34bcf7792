//! `chatctl capture-decode`: read a conversation out of a capture.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chatctl::capture::{self, Analyzer, CaptureReader, Event, EventRef, ReadError, TransferSummary, output};
use chatctl::text::units;
use clap::Args;
use serde_json::json;

use crate::cli::Global;

/// Decode the chat in a pcap or pcapng capture, and rebuild downloaded files.
///
/// Reads captures from Wireshark, tcpdump or dumpcap (pcap or pcapng; Ethernet,
/// VLAN, Linux cooked v1/v2, BSD loopback, raw IP; IPv4 and IPv6) and prints
/// the conversation as a timeline: time (UTC), endpoints, channel (main,
/// update, transfer), code and meaning. Main connections are found by the
/// server port, update and transfer connections by the ports announced in
/// `200` and `206`, anything else by content. `--json` prints one object per
/// line; `-v` adds one per UDP datagram of a transfer.
///
/// A capture cut short (tcpdump killed) is decoded up to where it ends, with a
/// warning; a damaged one up to the damage, then it exits with status 1.
#[derive(Debug, Args)]
pub struct CaptureDecodeArgs {
    /// The capture file; `-` or none reads standard input.
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: Option<PathBuf>,

    /// Also treat this TCP port as a server port (13337 always is); repeatable.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<u16>,

    /// Rebuild every downloaded file into this folder and list on stdout
    /// what was written where (one JSON object per file with --json).
    /// Files are named after the requested file (`NAME.1`, `NAME.2` for
    /// more copies); one whose size does not match its `206`, or in fast
    /// mode whose hash (BLAKE3 or XXH3-128, by the transfer's format) does
    /// not match the sender's, gets a `.incomplete` suffix. Nothing is
    /// overwritten. Only fast transfers carry a hash: a TCP or go-back-N
    /// file is reported as "size matches", a fast one as "verified".
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub extract: Option<PathBuf>,

    /// Print the timeline too with --extract or --plot (without them it is
    /// the default output).
    #[arg(long)]
    pub timeline: bool,

    /// Print a summary instead of the timeline: messages per kind, users seen,
    /// and a table of transfers.
    #[arg(long)]
    pub summary: bool,

    /// Draw a time-sequence graph of each transfer (go-back-N: packet
    /// number, fast and TCP: byte offset, over time; with a title, axis
    /// ticks and a legend) and list on stdout the files written (one JSON
    /// object each with --json) and the transfers not plotted, with the
    /// reason (an empty file, nothing of it captured). TARGET is a folder (an existing one, or any
    /// path ending in `/`): `TARGET/transfer-<id>.svg`; or a file: NAME.svg
    /// or NAME.png (PNG by the extension; no extension means SVG) for one
    /// transfer, NAME-<id>.svg or NAME-<id>.png for several. Nothing is
    /// overwritten: a taken name gets a number, `NAME.1.png`.
    #[arg(long, value_name = "TARGET", value_hint = clap::ValueHint::AnyPath)]
    pub plot: Option<PathBuf>,
}

pub fn run(args: CaptureDecodeArgs, global: &Global) -> anyhow::Result<()> {
    let (input, name) = open(args.file.as_deref())?;
    let mut reader = CaptureReader::new(input).with_context(|| format!("cannot read {name}"))?;
    let extractor = match &args.extract {
        Some(dir) => Some(capture::extract::Extractor::new(dir).context("--extract")?),
        None => None,
    };
    let plot_target = match &args.plot {
        Some(p) => Some(capture::plot::Target::parse(p).context("--plot")?),
        None => None,
    };
    let mut cfg = capture::Config::default();
    cfg.server_ports.extend(&args.port);
    cfg.datagrams = global.verbose > 0;
    cfg.plot = args.plot.is_some();
    let mut analyzer = Analyzer::new(cfg, extractor);

    let stdout = std::io::stdout();
    let mut p = Printer {
        out: BufWriter::with_capacity(64 << 10, stdout.lock()),
        line: Vec::with_capacity(512),
        timeline: !args.summary && !global.quiet && (args.timeline || (args.extract.is_none() && args.plot.is_none())),
        json: global.json,
        err: None,
    };
    let read_error = decode(&mut reader, &mut analyzer, &mut p);
    analyzer.finish_ref(&mut |e| p.emit(e));
    if let Some(e) = p.err.take() {
        return Err(e).context("writing the timeline");
    }
    if args.summary && !global.quiet {
        summary(&mut p.out, &analyzer, p.json)?;
    }
    if args.extract.is_some() && !global.quiet {
        written(&mut p.out, &analyzer, p.json).context("writing the list of files")?;
    }
    let plotted = match &plot_target {
        Some(target) => plots(&mut p.out, target, &analyzer, p.json && !global.quiet, global.quiet),
        None => Ok(()),
    };
    p.out.flush().context("writing the timeline")?;
    drop(p);
    plotted?;
    if let Some(e) = analyzer.take_extract_error() {
        return Err(anyhow::Error::new(e).context("--extract"));
    }
    read_outcome(read_error, &name, reader.packets, global.quiet)
}

/// The capture named `file` (`-` or none: standard input, unless it is a
/// terminal), and its name for messages.
fn open(file: Option<&Path>) -> anyhow::Result<(Box<dyn Read + Send>, String)> {
    let path = file.filter(|p| *p != Path::new("-"));
    let input: Box<dyn Read + Send> = match path {
        None if std::io::stdin().is_terminal() => {
            bail!("no capture given: name a pcap/pcapng file, or pipe one into standard input")
        }
        None => Box::new(std::io::stdin()),
        Some(p) => Box::new(std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?),
    };
    Ok((input, path.map_or("standard input".into(), |p| p.display().to_string())))
}

/// Feeds every packet to the analyser, its events to the printer, until the
/// capture ends, cannot be read on (the error), or the output fails.
fn decode<W: Write>(reader: &mut CaptureReader<'_>, analyzer: &mut Analyzer, p: &mut Printer<W>) -> Option<ReadError> {
    loop {
        match reader.next_packet(|pkt| analyzer.packet_ref(&pkt, &mut |e| p.emit(e))) {
            Ok(Some(())) => {}
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
        if p.err.is_some() {
            return None;
        }
    }
}

/// How reading `name` ended, after `packets` packets: a capture cut short
/// (tcpdump killed) is a warning, everything before it decoded; any other
/// error fails.
fn read_outcome(read_error: Option<ReadError>, name: &str, packets: u64, quiet: bool) -> anyhow::Result<()> {
    match read_error {
        None => Ok(()),
        Some(e @ ReadError::Truncated { .. }) => {
            if !quiet {
                crate::common::note(format_args!(
                    "chatctl capture-decode: warning: {e}; decoded {packets} packets before it"
                ));
            }
            Ok(())
        }
        Some(e) => {
            Err(anyhow::Error::new(e)).with_context(|| format!("{name}: decoded {packets} packets, then stopped"))
        }
    }
}

/// A line on stderr; a closed stderr (`2>&1 | head`) is not an error and
/// must not panic, as `eprintln!` would.
struct Printer<W: Write> {
    out: W,
    /// One line, built here and written at once (many small writes through
    /// a `BufWriter` cost more than the formatting).
    line: Vec<u8>,
    timeline: bool,
    json: bool,
    err: Option<std::io::Error>,
}

impl<W: Write> Printer<W> {
    /// Prints one event; with `--summary` (or `-q`) nothing is decoded.
    fn emit(&mut self, e: EventRef<'_>) {
        if !self.timeline || self.err.is_some() {
            return;
        }
        self.line.clear();
        let r = if self.json {
            output::write_json_ref(&mut self.line, &e).and_then(|()| self.out.write_all(&self.line))
        } else {
            writeln!(self.out, "{}", output::human_ref(&e))
        };
        if let Err(e) = r {
            self.err = Some(e);
        }
    }
}

fn summary(out: &mut impl Write, a: &Analyzer, json: bool) -> anyhow::Result<()> {
    let st = a.stats();
    let transfers: Vec<&TransferSummary> = a.transfers().map(|(s, _)| s).collect();
    if json {
        let by_code: BTreeMap<String, u64> = st.by_code.iter().map(|(k, v)| (k.to_string(), v)).collect();
        let t: Vec<_> = transfers.iter().map(|s| output::json(&Event::Transfer(Box::new((*s).clone())))).collect();
        let o = json!({
            "type": "summary", "packets": st.packets, "bytes": st.bytes, "messages": st.messages,
            "by_code": by_code, "users": st.users, "decode_errors": st.decode_errors, "gaps": st.gaps,
            "tcp_connections": st.tcp_connections, "skipped_packets": st.skipped, "malformed_packets": st.malformed,
            "transfers": t,
        });
        writeln!(out, "{o}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{}, {} captured; {}",
        output::count(st.packets, "packet", "packets"),
        output::bytes(st.bytes),
        output::count(st.messages, "chat message", "chat messages")
    )?;
    if st.decode_errors + st.gaps + st.malformed > 0 {
        writeln!(
            out,
            "problems: {} undecodable, {}, {}",
            output::grouped(st.decode_errors),
            output::count(st.gaps, "capture hole", "capture holes"),
            output::count(st.malformed, "malformed packet", "malformed packets")
        )?;
    }
    writeln!(out, "\nmessages by kind:")?;
    for (code, n) in st.by_code.iter() {
        let name = chatctl::wire::code_name(code).unwrap_or_default();
        writeln!(out, "  {code:<5} {:<28} {:>8}", output::escape(&name), output::grouped(n))?;
    }
    let users: Vec<String> = st.users.iter().map(|u| output::escape(u).into_owned()).collect();
    writeln!(out, "\nusers seen ({}): {}", users.len(), users.join(", "))?;
    writeln!(out, "\ntransfers ({}):", transfers.len())?;
    if !transfers.is_empty() {
        writeln!(
            out,
            "  {:>3} {:<13} {:<24} {:>12} {:>12} {:>8} {:>7} {:>7} {:>9} {:>12}",
            "#", "mode", "file", "received", "announced", "packets", "retx", "ooo", "data s", "goodput"
        )?;
    }
    for s in &transfers {
        let mode = s.mode.label();
        let file = output::escape(s.file.as_deref().unwrap_or("?"));
        writeln!(
            out,
            "  {:>3} {mode:<13} {file:<24} {:>12} {:>12} {:>8} {:>7} {:>7} {:>9.3} {:>12}",
            s.id,
            output::bytes(s.bytes),
            s.announced_size.map_or("?".into(), output::bytes),
            output::grouped(s.packets),
            output::grouped(s.retransmissions),
            output::grouped(s.out_of_order),
            s.duration_s(),
            s.goodput_bps().map_or("-".into(), units::rate),
        )?;
    }
    if !transfers.is_empty() {
        writeln!(out, "  (data s: from the first to the last packet carrying file bytes; goodput over that time)")?;
    }
    Ok(())
}

/// `--extract`: each transfer's file and what it holds, on stdout (one
/// JSON object each with `--json`), after the timeline or summary.
fn written(out: &mut impl Write, a: &Analyzer, json: bool) -> anyhow::Result<()> {
    let mut n = 0;
    for (s, _) in a.transfers() {
        let Some(x) = &s.extracted else { continue };
        n += 1;
        let state = output::extracted_state(x);
        if json {
            let o = json!({
                "type": "written", "what": "extracted", "path": x.path.display().to_string(), "transfer": s.id, "mode": s.mode,
                "file": s.file, "state": state, "verified": x.verified, "hash_verified": x.hash_verified,
                "bytes": s.bytes, "announced_size": s.announced_size,
            });
            writeln!(out, "{o}")?;
            continue;
        }
        let name = output::escape(s.file.as_deref().unwrap_or("(unknown file)"));
        let detail = match (x.verified, x.hash_verified, s.announced_size) {
            (true, Some(true), _) => {
                format!("{} matches the sender's", s.hash_algorithm.map_or("hash", |h| h.name()))
            }
            (true, _, _) => format!("{} as announced; no hash to check", output::bytes(s.bytes)),
            (false, Some(false), _) => {
                format!("its {} differs from the sender's", s.hash_algorithm.map_or("hash", |h| h.name()))
            }
            (false, _, Some(want)) => format!("{} of {}", output::bytes(s.bytes), output::bytes(want)),
            (false, _, None) => format!("{}, size unknown", output::bytes(s.bytes)),
        };
        writeln!(
            out,
            "wrote {} ({state}: {detail}): transfer #{} {} {name}",
            output::escape(&x.path.display().to_string()),
            s.id,
            s.mode.label()
        )?;
    }
    if n == 0 {
        crate::common::note(format_args!("chatctl capture-decode: no download in the capture, nothing extracted"));
    }
    Ok(())
}

/// `--plot`: one graph per transfer, each file written reported on
/// stdout (JSON with `--json`), each transfer left out with its reason.
fn plots(
    out: &mut impl Write,
    target: &capture::plot::Target,
    a: &Analyzer,
    json: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    use capture::plot;
    let mut sink = std::io::sink();
    let out: &mut dyn Write = if quiet { &mut sink } else { out };
    let all: Vec<_> = a.transfers().collect();
    let plotted = all.iter().filter(|(s, p)| plot::skip_reason(s, p).is_none()).count();
    if all.is_empty() {
        crate::common::note("chatctl capture-decode: no transfer in the capture, nothing to plot");
    }
    for (s, points) in &all {
        let name = output::escape(s.file.as_deref().unwrap_or("(unknown file)"));
        if let Some(reason) = plot::skip_reason(s, points) {
            if json {
                let o =
                    json!({"type": "not_plotted", "transfer": s.id, "mode": s.mode, "file": s.file, "reason": reason});
                writeln!(out, "{o}")?;
            } else {
                writeln!(out, "not plotted: transfer #{} {} {name}: {reason}", s.id, s.mode.label())?;
            }
            continue;
        }
        let data = plot::render(s, points, target.format).context("--plot")?;
        let path = plot::write_new(&target.path(s.id, plotted), &data).context("--plot")?;
        if json {
            let o = json!({"type": "written", "what": "plot", "path": path.display().to_string(), "format": target.format,
                "transfer": s.id, "mode": s.mode, "file": s.file});
            writeln!(out, "{o}")?;
        } else {
            writeln!(
                out,
                "wrote {}: plot of transfer #{} {} {name}",
                output::escape(&path.display().to_string()),
                s.id,
                s.mode.label()
            )?;
        }
    }
    Ok(())
}
