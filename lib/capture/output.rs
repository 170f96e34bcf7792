//! Rendering events: a human timeline line, or one JSON object.

use std::fmt::Write as _;
use std::net::SocketAddr;

use console::Style;
use serde_json::{Map, Value, json};

use super::event::*;
use crate::wire::{Confirm, Message, Request, Update};

pub use crate::text::escape;

/// Seconds since the epoch as JSON wants them.
pub(crate) fn ts_f64(ts_ns: i64) -> f64 {
    ts_ns as f64 / 1e9
}

/// `HH:MM:SS.uuuuuu` (UTC).
pub(crate) fn time_of_day(ts_ns: i64) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let us = ts_ns.rem_euclid(1_000_000_000) / 1000;
    let day = secs.rem_euclid(86_400);
    // Written by hand: this runs for every line of the timeline.
    let mut b = *b"00:00:00.000000";
    let mut put = |at: usize, mut v: i64, n: usize| {
        for i in (at..at + n).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, day / 3600, 2);
    put(3, day / 60 % 60, 2);
    put(6, day % 60, 2);
    put(9, us, 6);
    b.iter().map(|&c| char::from(c)).collect()
}

fn q(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

fn names(v: &[String]) -> String {
    if v.is_empty() { "nobody".into() } else { v.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ") }
}

/// The meaning of a message in words.
pub fn describe(m: &Message) -> String {
    match m {
        Message::Request(r) => match r {
            Request::Join { name } => format!("join as {}", q(name)),
            Request::Leave => "leave".into(),
            Request::Users => "who else is here?".into(),
            Request::Whisper { to, text } => format!("to {}: {}", q(to), q(text)),
            Request::Broadcast { text } => format!("to everyone: {}", q(text)),
            Request::Files => "which files can I download?".into(),
            Request::Download { transport, file } => {
                format!("download {} over {}", q(file), escape(transport.as_str()))
            }
        },
        Message::Confirm(c) => match c {
            Confirm::Joined { name, port } => format!("joined as {}; update connection to port {port}", q(name)),
            Confirm::Left => "left".into(),
            Confirm::Users { users } => format!("others here: {}", names(users)),
            Confirm::WhisperSent => "private message delivered".into(),
            Confirm::BroadcastSent { to } => format!("broadcast delivered to {}", names(to)),
            Confirm::Files { files } => {
                format!("files: {}", if files.is_empty() { "none".into() } else { names(files) })
            }
            Confirm::Download { size, port } => format!("file is {}; fetch it from port {port}", bytes(*size)),
        },
        Message::Update(u) => match u {
            Update::Joined { name } => format!("{} joined", q(name)),
            Update::Left { name } => format!("{} left", q(name)),
            Update::Whisper { from, text } => format!("private from {}: {}", q(from), q(text)),
            Update::Broadcast { from, text } => format!("{} to everyone: {}", q(from), q(text)),
        },
        Message::Error(e) => format!("error: {}", e.describe()),
    }
}

/// Human-readable size, in the units every chatctl output uses.
pub fn bytes(n: u64) -> String {
    crate::text::units::bytes(n)
}

/// A count and its noun, singular or plural, with thousands separators
/// (`1 packet`, `2 packets`, `12,345 packets`).
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// A whole number with thousands separators, as every chatctl output writes it.
pub use crate::client::thousands as grouped;

/// What an extracted file is known to hold, in words: `verified` only where
/// a hash was checked; `size matches` where only the size could be.
pub fn extracted_state(x: &Extracted) -> &'static str {
    match (x.verified, x.hash_verified) {
        (true, Some(true)) => "verified",
        (true, _) => "size matches",
        (false, Some(false)) => "HASH MISMATCH",
        (false, _) => "INCOMPLETE",
    }
}

fn flow(src: SocketAddr, dst: SocketAddr) -> String {
    // By hand for IPv4: `Display` for addresses costs more than all the rest
    // of a timeline line.
    let mut v = Vec::with_capacity(48);
    let _ = write_addr(&mut v, src);
    v.extend_from_slice(" → ".as_bytes());
    let _ = write_addr(&mut v, dst);
    String::from_utf8(v).unwrap_or_else(|_| format!("{src} → {dst}"))
}

/// One timeline line (no newline). Colour is applied by `console`, which
/// leaves the text plain when colours are off.
pub fn human(e: &Event) -> String {
    let dim = &*DIM;
    let t = dim.apply_to(time_of_day(e.ts_ns()));
    match e {
        Event::Message(m) => message_line(&t, m),
        Event::Connection(c) => {
            let what = match c.change {
                ConnChange::Open => "connection opened",
                ConnChange::HalfClose => "half-closed (FIN): sends no more, may still receive",
                ConnChange::Close => "closed (FIN)",
                ConnChange::Reset => "reset (RST)",
            };
            format!("{t}  {:<45} {:<8} {}", flow(c.src, c.dst), c.channel.as_str(), dim.apply_to(what))
        }
        Event::Problem(p) => {
            let warn = Style::new().yellow().apply_to(format!("warning: {}", p.what));
            match p.flow {
                Some((s, d, ch)) => format!("{t}  {:<45} {:<8} {warn}", flow(s, d), ch.as_str()),
                None => format!("{t}  {warn}"),
            }
        }
        Event::Datagram(d) => {
            let what = datagram(&d.kind);
            format!("{t}  {:<45} {:<8} #{} {}", flow(d.src, d.dst), "udp", d.transfer, dim.apply_to(what))
        }
        Event::Transfer(s) => format!("{t}  {}", transfer_line(s)),
    }
}

/// What a datagram is, in words (the timeline's last column).
fn datagram(kind: &DatagramKind) -> String {
    match kind {
        DatagramKind::Window { window } => format!("window {window}"),
        &DatagramKind::Data { seq, last, len, retransmission, out_of_order } => format!(
            "data seq {seq:02}{} {len} B{}{}",
            if last { " (last)" } else { "" },
            if retransmission { " retransmission" } else { "" },
            if out_of_order { " out of order" } else { "" }
        ),
        DatagramKind::Ack { next } => format!("ack {next}"),
        DatagramKind::FastHello { len } => format!("hello, fast mode offered ({len} B)"),
        DatagramKind::Challenge { cookie, size } => format!("challenge {cookie:#x}, file of {}", bytes(*size)),
        DatagramKind::Start { cookie, resume, max_data } => {
            format!("start {cookie:#x}, resume at {resume}, max data {}", bytes(*max_data))
        }
        &DatagramKind::FastData { pn, offset, len, retransmission, out_of_order, duplicate } => format!(
            "data #{pn} at {offset} {len} B{}{}{}",
            if retransmission { " retransmission" } else { "" },
            if out_of_order { " out of order" } else { "" },
            if duplicate { " duplicate" } else { "" }
        ),
        DatagramKind::FastAck { largest_pn, ranges, .. } => {
            let r: Vec<String> = ranges.iter().map(|[a, b]| format!("{a}-{b}")).collect();
            format!("ack #{largest_pn}, have {}", if r.is_empty() { "nothing".into() } else { r.join(",") })
        }
        DatagramKind::Done { size, hash, hash_algorithm } => {
            format!("done, {}, {hash_algorithm} {hash}", bytes(*size))
        }
        DatagramKind::DoneAck { ok } => {
            format!("done-ack: {}", if *ok { "hash verified" } else { "HASH MISMATCH" })
        }
        DatagramKind::Stats { cwnd, srtt_us, pacing_rate, packets_lost, bytes_retransmitted, cc } => format!(
            "sender stats: {cc}, window {}, RTT {:.1} ms, pacing {}, {}, {} sent again",
            bytes(*cwnd),
            *srtt_us as f64 / 1000.0,
            crate::text::units::rate(*pacing_rate as f64),
            count(*packets_lost, "packet lost", "packets lost"),
            bytes(*bytes_retransmitted)
        ),
        DatagramKind::AckFrequency { seq, threshold, max_delay_us } => format!(
            "ack-frequency #{seq}: acknowledge every {} or after {:.1} ms",
            count(u64::from(*threshold), "datagram", "datagrams"),
            f64::from(*max_delay_us) / 1000.0
        ),
        DatagramKind::Abort { code, reason, text } if text.is_empty() => format!("abort ({code}): {reason}"),
        DatagramKind::Abort { code, reason, text } => {
            format!("abort ({code}): {reason}: {}", crate::text::escape(text))
        }
        DatagramKind::Invalid { len, reason } => format!("{len} B invalid: {reason}"),
        DatagramKind::Other { len } => format!("{len} B not understood"),
    }
}

/// A message's timeline line: time `t`, flow, channel, code (coloured by
/// direction) and what it says.
fn message_line(t: &impl std::fmt::Display, m: &MessageEvent) -> String {
    let style = match m.message {
        Message::Request(_) => &*CYAN,
        Message::Confirm(_) => &*GREEN,
        Message::Update(_) => &*MAGENTA,
        Message::Error(_) => &*RED_BOLD,
    };
    // Padded by hand: `{:<N}` on a styled value makes `console`
    // measure its width through the escape codes, on every line.
    let mut line = String::with_capacity(160);
    let _ = write!(line, "{t}  ");
    push_padded(&mut line, &flow(m.src, m.dst), 45);
    line.push(' ');
    push_padded(&mut line, m.channel.as_str(), 8);
    line.push(' ');
    let mut code = String::with_capacity(4);
    push_padded(&mut code, &m.message.code().to_string(), 4);
    let _ = write!(line, "{}  ", style.apply_to(code));
    line.push_str(&describe(&m.message));
    line
}

static DIM: std::sync::LazyLock<Style> = std::sync::LazyLock::new(|| Style::new().dim());
static CYAN: std::sync::LazyLock<Style> = std::sync::LazyLock::new(|| Style::new().cyan());
static GREEN: std::sync::LazyLock<Style> = std::sync::LazyLock::new(|| Style::new().green());
static MAGENTA: std::sync::LazyLock<Style> = std::sync::LazyLock::new(|| Style::new().magenta());
static RED_BOLD: std::sync::LazyLock<Style> = std::sync::LazyLock::new(|| Style::new().red().bold());

/// Appends `s` and spaces up to `width` characters, as `{:<width}` does.
fn push_padded(line: &mut String, s: &str, width: usize) {
    line.push_str(s);
    let n = if s.is_ascii() { s.len() } else { s.chars().count() };
    line.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
}

/// A transfer in one line.
pub(crate) fn transfer_line(s: &TransferSummary) -> String {
    let mode = s.mode.label();
    let name = s.file.as_deref().map(q).unwrap_or_else(|| "(unknown file)".into());
    let size = match s.announced_size {
        Some(a) if a == s.bytes => format!("{} of {}", bytes(s.bytes), bytes(a)),
        Some(a) => {
            format!("{} of {} (INCOMPLETE: {} missing)", bytes(s.bytes), bytes(a), bytes(a.saturating_sub(s.bytes)))
        }
        None => bytes(s.bytes),
    };
    let rate = s.goodput_bps().map(|g| format!(", {}", crate::text::units::rate(g))).unwrap_or_default();
    let ex = s
        .extracted
        .as_ref()
        .map(|x| format!(", saved to {} ({})", escape(&x.path.display().to_string()), extracted_state(x)))
        .unwrap_or_default();
    let fast = if s.mode == TransferMode::Fast {
        let mut f = format!(", {}", count(s.duplicates, "duplicate", "duplicates"));
        if s.invalid > 0 {
            let _ = write!(f, ", {} invalid", grouped(s.invalid));
        }
        match s.receiver_verified {
            Some(true) => f.push_str(", receiver verified the hash"),
            Some(false) => f.push_str(", receiver found a HASH MISMATCH"),
            None => {}
        }
        f
    } else {
        String::new()
    };
    format!(
        "transfer #{} {mode} {name} {} → {}: {size}, {}, {} retransmitted, {} out of order{fast}, data over {:.3} s{rate}{ex}",
        s.id,
        s.server,
        s.client,
        count(s.packets, "packet", "packets"),
        grouped(s.retransmissions),
        grouped(s.out_of_order),
        s.duration_s()
    )
}

/// Writes one event as one line of JSON (the same object as [`json()`]). A
/// chat message, the timeline's hot path, is written field by field (its
/// decoded fields spliced in from the message's own serialisation) rather
/// than through a `Value` or serde's `flatten`, which buffer every field,
/// and with integers and IPv4 addresses formatted by hand.
pub(crate) fn write_json(w: &mut impl std::io::Write, e: &Event) -> std::io::Result<()> {
    match e {
        Event::Message(m) => write_json_message(w, (m.ts_ns, m.src, m.dst, m.channel, m.offset), &m.raw, &m.message)?,
        other => serde_json::to_writer(&mut *w, &json(other))?,
    }
    w.write_all(b"\n")
}

/// Writes one event as `write_json` does, from the zero-allocation form:
/// only a chat message's fields are decoded (and allocated), to print them.
pub fn write_json_ref(w: &mut Vec<u8>, e: &EventRef<'_>) -> std::io::Result<()> {
    match e {
        EventRef::Message(m) => {
            // The fields straight from the raw bytes when they are plain
            // (no decoded message); else through the decoded message.
            let at = w.len();
            write_json_head(w, (m.ts_ns, m.src, m.dst, m.channel, m.offset), m.code, m.raw)?;
            if super::scan::write_json_fields(m.raw, w) {
                if (4000..5000).contains(&m.code) {
                    let err = crate::wire::ErrorCode::new(((m.code - 4000) / 10) as u8, (m.code % 10) as u8);
                    w.extend_from_slice(br#","error":"#);
                    serde_json::to_writer(&mut *w, &err.describe())?;
                }
                w.extend_from_slice(b"}\n");
                return Ok(());
            }
            w.truncate(at);
            match m.message() {
                Ok(message) => {
                    write_json_message(w, (m.ts_ns, m.src, m.dst, m.channel, m.offset), m.raw, &message)?;
                    w.push(b'\n');
                    Ok(())
                }
                Err(_) => write_json(w, &m.to_event()),
            }
        }
        EventRef::Other(e) => write_json(w, e),
    }
}

/// One timeline line, as [`human`] writes it, from the zero-allocation form.
pub fn human_ref(e: &EventRef<'_>) -> String {
    match e {
        EventRef::Message(m) => human(&m.to_event()),
        EventRef::Other(e) => human(e),
    }
}

/// Time, endpoints, channel and stream offset of a chat message.
type Head = (i64, SocketAddr, SocketAddr, Channel, u64);

/// The JSON object of a chat message, without the newline.
fn write_json_message(w: &mut impl std::io::Write, head: Head, raw: &[u8], message: &Message) -> std::io::Result<()> {
    write_json_head(w, head, message.code(), raw)?;
    let fields = serde_json::to_vec(message)?;
    if let Some(inner) = fields.strip_prefix(b"{").and_then(|f| f.strip_suffix(b"}"))
        && !inner.is_empty()
    {
        w.write_all(b",")?;
        w.write_all(inner)?;
    }
    if let Message::Error(err) = message {
        w.write_all(br#","error":"#)?;
        serde_json::to_writer(&mut *w, &err.describe())?;
    }
    w.write_all(b"}")?;
    Ok(())
}

/// A chat message's JSON object up to its decoded fields (left open).
fn write_json_head(w: &mut impl std::io::Write, head: Head, code: u16, raw: &[u8]) -> std::io::Result<()> {
    let (ts_ns, src, dst, channel, offset) = head;
    w.write_all(br#"{"type":"message","ts":"#)?;
    serde_json::to_writer(&mut *w, &ts_f64(ts_ns))?;
    w.write_all(br#","src":""#)?;
    write_addr(w, src)?;
    w.write_all(br#"","dst":""#)?;
    write_addr(w, dst)?;
    w.write_all(br#"","channel":""#)?;
    w.write_all(channel.as_str().as_bytes())?;
    w.write_all(br#"","code":""#)?;
    write_uint(w, u64::from(code))?;
    w.write_all(br#"","raw":"#)?;
    match std::str::from_utf8(raw) {
        Ok(raw) => serde_json::to_writer(&mut *w, raw)?,
        Err(_) => serde_json::to_writer(&mut *w, &*String::from_utf8_lossy(raw))?,
    }
    w.write_all(br#","offset":"#)?;
    write_uint(w, offset)
}

/// An unsigned integer in decimal, without `fmt`.
fn write_uint(w: &mut impl std::io::Write, n: u64) -> std::io::Result<()> {
    let mut buf = [0u8; 20];
    let at = put_uint(&mut buf, n);
    w.write_all(&buf[at..])
}

/// Writes `n` in decimal at the end of `buf`; returns where it starts.
#[inline]
fn put_uint(buf: &mut [u8; 20], mut n: u64) -> usize {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}

/// A socket address as `Display` writes it (`a.b.c.d:port`, `[v6]:port`);
/// IPv4, the common case, without `fmt` and in one write. Nothing in it
/// needs JSON escaping.
fn write_addr(w: &mut impl std::io::Write, a: SocketAddr) -> std::io::Result<()> {
    match a {
        SocketAddr::V4(v4) => {
            // "255.255.255.255:65535" is 21 bytes.
            let mut out = [0u8; 21];
            let mut len = 0;
            let mut digits = [0u8; 20];
            for (i, n) in v4.ip().octets().into_iter().map(u64::from).chain([u64::from(v4.port())]).enumerate() {
                if i > 0 {
                    out[len] = if i == 4 { b':' } else { b'.' };
                    len += 1;
                }
                let at = put_uint(&mut digits, n);
                let d = &digits[at..];
                out[len..len + d.len()].copy_from_slice(d);
                len += d.len();
            }
            w.write_all(&out[..len])
        }
        SocketAddr::V6(_) => write!(w, "{a}"),
    }
}

/// One JSON object for an event.
pub fn json(e: &Event) -> Value {
    let mut o = Map::new();
    o.insert("ts".into(), json!(ts_f64(e.ts_ns())));
    match e {
        Event::Message(m) => {
            o.insert("type".into(), json!("message"));
            o.insert("src".into(), json!(m.src.to_string()));
            o.insert("dst".into(), json!(m.dst.to_string()));
            o.insert("channel".into(), json!(m.channel));
            o.insert("code".into(), json!(m.message.code().to_string()));
            o.insert("raw".into(), json!(String::from_utf8_lossy(&m.raw)));
            o.insert("offset".into(), json!(m.offset));
            if let Ok(Value::Object(fields)) = serde_json::to_value(&m.message) {
                for (k, v) in fields {
                    o.entry(k).or_insert(v);
                }
            }
            if let Message::Error(err) = &m.message {
                o.insert("error".into(), json!(err.describe()));
            }
        }
        Event::Connection(c) => {
            o.insert("type".into(), json!("connection"));
            o.insert("src".into(), json!(c.src.to_string()));
            o.insert("dst".into(), json!(c.dst.to_string()));
            o.insert("channel".into(), json!(c.channel));
            o.insert("change".into(), json!(c.change));
        }
        Event::Problem(p) => {
            o.insert("type".into(), json!("problem"));
            if let Some((s, d, ch)) = p.flow {
                o.insert("src".into(), json!(s.to_string()));
                o.insert("dst".into(), json!(d.to_string()));
                o.insert("channel".into(), json!(ch));
            }
            o.insert("what".into(), json!(p.what));
        }
        Event::Datagram(d) => {
            o.insert("type".into(), json!("datagram"));
            o.insert("src".into(), json!(d.src.to_string()));
            o.insert("dst".into(), json!(d.dst.to_string()));
            o.insert("transfer".into(), json!(d.transfer));
            if let Ok(Value::Object(fields)) = serde_json::to_value(&d.kind) {
                o.extend(fields);
            }
        }
        Event::Transfer(s) => {
            o.insert("type".into(), json!("transfer"));
            if let Ok(Value::Object(fields)) = serde_json::to_value(s) {
                o.extend(fields);
            }
            o.insert("client".into(), json!(s.client.to_string()));
            o.insert("server".into(), json!(s.server.to_string()));
            o.insert("duration".into(), json!(s.duration_s()));
            o.insert("goodput_bps".into(), json!(s.goodput_bps()));
        }
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_json_is_the_same_object() {
        use crate::wire::{ErrorCode, Request};
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        for message in [
            Message::Request(Request::Whisper { to: "BOB".into(), text: "hi\u{1b}".into() }),
            Message::Error(ErrorCode::NO_SUCH_FILE),
            Message::Confirm(crate::wire::Confirm::Left),
        ] {
            let e = Event::Message(MessageEvent {
                ts_ns: 1_500_000_000,
                src: addr("[::1]:5"),
                dst: addr("10.0.0.1:13337"),
                channel: Channel::Main,
                offset: 3,
                raw: message.to_bytes().unwrap(),
                message,
            });
            let mut line = Vec::new();
            write_json(&mut line, &e).unwrap();
            assert_eq!(line.pop(), Some(b'\n'));
            let streamed: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(streamed, json(&e));
        }
    }

    #[test]
    fn hand_formatted_numbers_and_addresses_match_display() {
        for a in ["0.0.0.0:0", "10.0.0.37:13337", "255.255.255.255:65535", "[::1]:5", "[fe80::1%3]:80"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut v = Vec::new();
            write_addr(&mut v, a).unwrap();
            assert_eq!(String::from_utf8(v).unwrap(), a.to_string());
        }
        for n in [0, 9, 10, 4061, u64::MAX] {
            let mut v = Vec::new();
            write_uint(&mut v, n).unwrap();
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
    }

    #[test]
    fn time_of_day_has_microseconds() {
        assert_eq!(time_of_day(3_723_000_001_000), "01:02:03.000001");
    }
}
