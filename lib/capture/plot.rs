//! `--plot`: time-sequence graphs of transfers (TCP, classic and fast),
//! where they are written, and in which format.
//!
//! A graph is drawn once, as SVG ([`svg`]); a PNG is that SVG rasterised by
//! `resvg` ([`png`]), so both formats show the same figure. [`Target`]
//! reads the `--plot` argument (a folder, or a file prefix whose extension
//! picks the format) and names each transfer's file; [`write_new`] never
//! overwrites a file, as `--extract` never does: a taken name gets a number
//! before its extension (`p.png`, `p.1.png`, `p.2.png`, …).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::event::{TransferMode, TransferSummary};
use super::output::{bytes, count, escape};
use super::transfer::{PlotPoint, PointKind};

/// Why a plot could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The `--plot` argument names a format chatctl does not write.
    #[error("{}: unknown plot format {ext:?}: name the file .svg or .png, or give a folder", path.display())]
    Format {
        /// The argument.
        path: PathBuf,
        /// Its extension.
        ext: String,
    },
    /// The file (or its folder) could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The SVG could not be rasterised.
    #[error("cannot draw the PNG: {0}")]
    Render(String),
}

/// The file formats `--plot` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Scalable vector graphics, the graph as drawn.
    Svg,
    /// The same graph rasterised ([`png`]).
    Png,
}

impl Format {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }
}

/// Where `--plot` writes: a folder and a name prefix, and the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The folder the files go to.
    pub dir: PathBuf,
    /// The file name without extension (`transfer` in a folder).
    pub stem: String,
    /// The format.
    pub format: Format,
    /// The argument named a folder: every file is numbered by its transfer.
    pub folder: bool,
}

impl Target {
    /// Reads a `--plot` argument: an existing folder, or any path ending in
    /// `/`, takes one `transfer-<id>.svg` per transfer (the folder is created
    /// if needed); anything else is a file: `NAME.svg` or `NAME.png` (by the
    /// extension; none means SVG), `NAME-<id>.EXT` when there are several
    /// transfers to plot.
    pub fn parse(arg: &Path) -> Result<Target, PlotError> {
        let s = arg.as_os_str().to_string_lossy();
        if arg.is_dir() || s.ends_with('/') || s.ends_with(std::path::MAIN_SEPARATOR) {
            return Ok(Target { dir: arg.to_owned(), stem: "transfer".into(), format: Format::Svg, folder: true });
        }
        let format = match arg.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()) {
            None => Format::Svg,
            Some(e) if e == "svg" => Format::Svg,
            Some(e) if e == "png" => Format::Png,
            Some(ext) => return Err(PlotError::Format { path: arg.to_owned(), ext }),
        };
        let stem = arg.file_stem().map_or_else(|| "transfer".into(), |s| s.to_string_lossy().into_owned());
        let dir = arg.parent().map(Path::to_owned).unwrap_or_default();
        Ok(Target { dir, stem, format, folder: false })
    }

    /// The file for transfer `id`, one of `plotted` graphs (before
    /// [`write_new`] numbers a taken name).
    pub fn path(&self, id: u32, plotted: usize) -> PathBuf {
        let ext = self.format.extension();
        let name = if self.folder || plotted > 1 {
            format!("{}-{id}.{ext}", self.stem)
        } else {
            format!("{}.{ext}", self.stem)
        };
        self.dir.join(name)
    }
}

/// Writes `data` to `path`, or, if that file exists, to the first free
/// `STEM.N.EXT` beside it; returns the path written. Never overwrites.
pub fn write_new(path: &Path, data: &[u8]) -> Result<PathBuf, PlotError> {
    let err = |path: &Path, source| PlotError::Write { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    }
    let stem = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    for n in 0..10_000u32 {
        let candidate = match (n, &ext) {
            (0, _) => path.to_owned(),
            (n, Some(ext)) => path.with_file_name(format!("{stem}.{n}.{ext}")),
            (n, None) => path.with_file_name(format!("{stem}.{n}")),
        };
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&candidate) {
            Ok(mut f) => {
                f.write_all(data).map_err(|e| err(&candidate, e))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err(&candidate, e)),
        }
    }
    Err(err(path, std::io::Error::other("10,000 numbered copies exist already")))
}

/// Why a transfer gets no graph, in one line; None when it gets one.
pub fn skip_reason(s: &TransferSummary, points: &[PlotPoint]) -> Option<String> {
    if !points.is_empty() {
        return None;
    }
    let unit = if s.mode == TransferMode::Tcp { "segment" } else { "datagram" };
    Some(if s.announced_size == Some(0) || (s.complete && s.bytes == 0) {
        format!("the file is empty: no data {unit} to plot")
    } else {
        format!("the capture holds no data {unit} of it and no acknowledgement")
    })
}

/// The graph in `format`: SVG text, or the PNG of it.
pub fn render(s: &TransferSummary, points: &[PlotPoint], format: Format) -> Result<Vec<u8>, PlotError> {
    let svg = svg(s, points);
    match format {
        Format::Svg => Ok(svg.into_bytes()),
        Format::Png => png(&svg),
    }
}

/// The fonts of the system, loaded once (text in a PNG needs one; an SVG
/// leaves it to the viewer).
static FONTS: std::sync::LazyLock<std::sync::Arc<resvg::usvg::fontdb::Database>> = std::sync::LazyLock::new(|| {
    let mut db = resvg::usvg::fontdb::Database::new();
    db.load_system_fonts();
    std::sync::Arc::new(db)
});

/// Rasterises one of [`svg`]'s graphs to PNG, at twice its size (sharp on
/// high-density screens), with the system's fonts. Without any font the
/// text could not be drawn: that is an error rather than a mute figure.
pub fn png(svg: &str) -> Result<Vec<u8>, PlotError> {
    use resvg::{tiny_skia, usvg};
    if FONTS.is_empty() {
        return Err(PlotError::Render("no font found on this system for the text; write .svg instead".into()));
    }
    let opt = usvg::Options { fontdb: FONTS.clone(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| PlotError::Render(e.to_string()))?;
    let size = tree.size().to_int_size().scale_by(2.0).ok_or_else(|| PlotError::Render("empty image".into()))?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| PlotError::Render("image too large".into()))?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(2.0, 2.0), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| PlotError::Render(e.to_string()))
}

/// A time-sequence graph of one transfer as a standalone SVG, read as
/// tcptrace's or Wireshark's Stevens graph: packet number (classic) or byte
/// offset (fast, TCP) over time, first transmissions as dots, retransmissions as
/// red crosses, acknowledgements as a green step line; a title (file, mode,
/// size, duration, retransmissions), ticks with units on both axes, and a
/// legend whose words match the y axis. A transfer of one datagram, or of
/// datagrams all at one instant, gets a 1 ms time axis with its points at 0.
pub fn svg(s: &TransferSummary, points: &[PlotPoint]) -> String {
    let axes = Axes::new(s, points);
    let data_points = points.iter().filter(|p| p.kind != PointKind::Ack).count() as u64;
    let mut svg = String::new();
    title(&mut svg, &axes, s, data_points);
    axes.draw(&mut svg);
    draw_points(&mut svg, &axes, points, data_points);
    legend(&mut svg, &axes, s.mode);
    svg.push_str("</svg>\n");
    svg
}

/// The image's size, the plot area inside it, and the scales of both axes.
struct Axes {
    w: f64,
    h: f64,
    left: f64,
    top: f64,
    /// The plot area's width and height.
    pw: f64,
    ph: f64,
    /// The first point's time, and the time it spans.
    t0: i64,
    span_ns: i64,
    /// Time, in `x.unit` (`x.div` nanoseconds each).
    x: Scale,
    /// Packets or bytes (`y.div` per unit shown).
    y: Scale,
}

/// One axis: its label, the size of its unit, and its tick step and end
/// (in units for time, in packets or bytes for the y axis).
struct Scale {
    unit: &'static str,
    div: f64,
    step: f64,
    end: f64,
}

impl Axes {
    fn new(s: &TransferSummary, points: &[PlotPoint]) -> Axes {
        let (w, h) = (960.0f64, 560.0f64);
        let (left, right, top, bottom) = (90.0f64, 30.0f64, 70.0f64, 60.0f64);
        let t0 = points.iter().map(|p| p.ts_ns).min().unwrap_or(0);
        let span_ns = points.iter().map(|p| p.ts_ns).max().unwrap_or(0) - t0;
        // Fast and TCP transfers are drawn by byte offset, classic ones by packet.
        let fast = s.mode != TransferMode::Classic;
        // The time axis in the unit that reads best: s, else ms, else µs.
        let (tunit, tdiv) = if span_ns >= 2_000_000_000 {
            ("s", 1e9)
        } else if span_ns >= 2_000_000 || span_ns == 0 {
            ("ms", 1e6)
        } else {
            ("µs", 1e3)
        };
        let (xstep, xend) = ticks((span_ns as f64 / tdiv).max(if span_ns == 0 { 1.0 } else { 0.0 }));
        // The y axis reaches the file's end (fast), so one datagram is not
        // drawn as the top of its own axis.
        let pmax_points = points.iter().map(|p| p.packet).max().unwrap_or(0);
        let pmax = if fast { pmax_points.max(s.announced_size.unwrap_or(0)) } else { pmax_points };
        let pmax = pmax.max(1) as f64;
        let (yunit, ydiv) = if !fast {
            ("packet number", 1.0)
        } else if pmax >= 2e6 {
            ("byte offset (MB)", 1e6)
        } else if pmax >= 2e3 {
            ("byte offset (kB)", 1e3)
        } else {
            ("byte offset (bytes)", 1.0)
        };
        // Ticks in the unit shown.
        let (ystep, yend) = ticks(pmax / ydiv);
        let (ystep, yend) = (ystep * ydiv, yend * ydiv);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let x = Scale { unit: tunit, div: tdiv, step: xstep, end: xend };
        let y = Scale { unit: yunit, div: ydiv, step: ystep, end: yend };
        Axes { w, h, left, top, pw, ph, t0, span_ns, x, y }
    }

    /// A margin inside the axes, so points at zero are not drawn on them.
    const PAD: f64 = 8.0;

    /// The x of `v` time units since the first point.
    fn xv(&self, v: f64) -> f64 {
        self.left + Self::PAD + v / self.x.end * (self.pw - 2.0 * Self::PAD)
    }

    /// The y of `v` packets or bytes.
    fn yv(&self, v: f64) -> f64 {
        self.top + self.ph - Self::PAD - v / self.y.end * (self.ph - 2.0 * Self::PAD)
    }

    /// The x of a capture time.
    fn x(&self, ts: i64) -> f64 {
        self.xv((ts - self.t0) as f64 / self.x.div)
    }

    /// Grid, ticks, labels and the axes themselves.
    fn draw(&self, svg: &mut String) {
        let (left, top, pw, ph, h) = (self.left, self.top, self.pw, self.ph, self.h);
        let mut grid = String::new();
        let mut labels = String::new();
        for i in 0..=((self.x.end / self.x.step).round() as u64) {
            let v = i as f64 * self.x.step;
            let px = self.xv(v);
            let _ = write!(grid, "M{px:.1} {top} V{} ", top + ph);
            let _ = writeln!(
                labels,
                r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
                top + ph + 18.0,
                tick_label(v, self.x.step)
            );
        }
        for i in 0..=((self.y.end / self.y.step).round() as u64) {
            let v = i as f64 * self.y.step;
            let py = self.yv(v);
            let _ = write!(grid, "M{left} {py:.1} H{} ", left + pw);
            let _ = writeln!(
                labels,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 6.0,
                py + 4.0,
                tick_label(v / self.y.div, self.y.step / self.y.div)
            );
        }
        let _ = writeln!(svg, r##"<path d="{grid}" stroke="#ddd" fill="none"/>"##);
        svg.push_str(&labels);
        let _ = writeln!(svg, r#"<path d="M{left} {top} V{} H{}" stroke="black" fill="none"/>"#, top + ph, left + pw);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">time since the first point ({})</text>"#,
            left + pw / 2.0,
            h - 16.0,
            self.x.unit
        );
        let _ = writeln!(
            svg,
            r#"<text x="18" y="{0}" transform="rotate(-90 18 {0})" text-anchor="middle">{1}</text>"#,
            top + ph / 2.0,
            self.y.unit
        );
    }
}

/// The opening tag, the background, and the two title lines.
fn title(svg: &mut String, axes: &Axes, s: &TransferSummary, data_points: u64) {
    let (w, h) = (axes.w, axes.h);
    let tcp = s.mode == TransferMode::Tcp;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let name = s.file.as_deref().map_or_else(|| "(unknown file)".into(), |f| format!("\"{}\"", escape(f)));
    let size = s.announced_size.map_or_else(|| bytes(s.bytes), bytes);
    let title = format!(
        "transfer #{} {name}: {}, {size}, data over {:.3} s, {}",
        s.id,
        s.mode.label(),
        s.duration_s(),
        count(s.retransmissions, "retransmission", "retransmissions"),
    );
    let _ = writeln!(svg, r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#, w / 2.0, xml(&title));
    let sub = format!(
        "{} → {}; {} plotted{}",
        s.server,
        s.client,
        count(
            data_points,
            if tcp { "data segment" } else { "data datagram" },
            if tcp { "data segments" } else { "data datagrams" }
        ),
        if axes.span_ns == 0 { ", all at one instant" } else { "" }
    );
    let _ = writeln!(svg, r##"<text x="{}" y="44" text-anchor="middle" fill="#555">{}</text>"##, w / 2.0, xml(&sub));
}

/// Data as dots, retransmissions as red crosses, acknowledgements as a
/// green staircase.
fn draw_points(svg: &mut String, axes: &Axes, points: &[PlotPoint], data_points: u64) {
    // Few points are drawn larger, so one datagram is seen.
    let r = if data_points < 50 { 3.5 } else { 1.5 };
    let few_acks = points.iter().filter(|p| p.kind == PointKind::Ack).count() < 50;
    let mut acks = String::new();
    let mut ack_marks = String::new();
    for p in points {
        let (px, py) = (axes.x(p.ts_ns), axes.yv(p.packet as f64));
        match p.kind {
            PointKind::Data => {
                let _ = writeln!(svg, r#"<circle cx="{px:.1}" cy="{py:.1}" r="{r}" fill="black"/>"#);
            }
            PointKind::Retransmission => {
                let _ = writeln!(svg, r#"<path d="M{:.1} {:.1} l6 6 m0 -6 l-6 6" stroke="red"/>"#, px - 3.0, py - 3.0);
            }
            PointKind::Ack => {
                // A step: the acknowledged level holds until the next ACK;
                // few ACKs are marked too, so a single one is seen.
                if few_acks {
                    let _ = write!(ack_marks, "M{:.1} {py:.1} h10 ", px - 5.0);
                }
                let _ = if acks.is_empty() {
                    write!(acks, "M{px:.1} {py:.1} ")
                } else {
                    write!(acks, "H{px:.1} V{py:.1} ")
                };
            }
        }
    }
    if !acks.is_empty() {
        let _ = writeln!(svg, r#"<path d="{acks}" stroke="green" fill="none"/>"#);
    }
    if !ack_marks.is_empty() {
        let _ = writeln!(svg, r#"<path d="{ack_marks}" stroke="green" stroke-width="3" fill="none"/>"#);
    }
}

/// The legend, top left inside the plot (the graph rises to the top right),
/// in the y axis's terms: packets (classic) or bytes (fast, TCP).
fn legend(svg: &mut String, axes: &Axes, mode: TransferMode) {
    let (lx, ly) = (axes.left + 12.0, axes.top + 12.0);
    let (sent, again, ack) = match mode {
        TransferMode::Tcp => {
            ("segment sent (its first byte)", "retransmission (bytes sent again)", "acknowledged: every byte below")
        }
        TransferMode::Classic => {
            ("data packet sent", "retransmission (packet sent again)", "acknowledged: next packet expected")
        }
        TransferMode::Fast => {
            ("DATA sent (its first byte)", "retransmission (bytes sent again)", "acknowledged: every byte below")
        }
    };
    let _ = writeln!(svg, r##"<rect x="{lx}" y="{ly}" width="270" height="66" fill="white" stroke="#999"/>"##);
    let _ = writeln!(svg, r#"<circle cx="{}" cy="{}" r="2.5" fill="black"/>"#, lx + 16.0, ly + 16.0);
    let _ = writeln!(svg, r#"<text x="{}" y="{}">{sent}</text>"#, lx + 32.0, ly + 20.0);
    let _ = writeln!(svg, r#"<path d="M{} {} l8 8 m0 -8 l-8 8" stroke="red"/>"#, lx + 12.0, ly + 29.0);
    let _ = writeln!(svg, r#"<text x="{}" y="{}">{again}</text>"#, lx + 32.0, ly + 37.0);
    let _ = writeln!(svg, r#"<path d="M{} {} h20" stroke="green" stroke-width="2"/>"#, lx + 6.0, ly + 51.0);
    let _ = writeln!(svg, r#"<text x="{}" y="{}">{ack}</text>"#, lx + 32.0, ly + 55.0);
}

/// A tick step of 1, 2 or 5 times a power of ten giving 4 to 10 ticks over
/// `0..max`, and `max` rounded up to a whole step.
fn ticks(max: f64) -> (f64, f64) {
    let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
    let raw = max / 6.0;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * pow).find(|s| *s >= raw).unwrap_or(10.0 * pow);
    (step, (max / step).ceil().max(1.0) * step)
}

/// A tick's value with as many decimals as its step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_folders_or_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = Target::parse(d).unwrap();
        assert_eq!((t.folder, t.format), (true, Format::Svg));
        assert_eq!(t.path(3, 1), d.join("transfer-3.svg"));
        let t = Target::parse(&d.join("new/")).unwrap();
        assert_eq!(t.path(3, 2), d.join("new").join("transfer-3.svg"));
        let t = Target::parse(&d.join("y.png")).unwrap();
        assert_eq!((t.path(1, 1), t.path(4, 2)), (d.join("y.png"), d.join("y-4.png")));
        let t = Target::parse(&d.join("plots")).unwrap();
        assert_eq!((t.folder, t.path(1, 1)), (false, d.join("plots.svg")));
        assert!(matches!(Target::parse(&d.join("y.jpg")), Err(PlotError::Format { .. })));
    }

    #[test]
    fn nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.svg");
        assert_eq!(write_new(&p, b"a").unwrap(), p);
        assert_eq!(write_new(&p, b"b").unwrap(), dir.path().join("p.1.svg"));
        assert_eq!(write_new(&p, b"c").unwrap(), dir.path().join("p.2.svg"));
        assert_eq!(std::fs::read(&p).unwrap(), b"a");
    }

    #[test]
    fn ticks_close_the_axis() {
        assert_eq!(ticks(1.0), (0.2, 1.0));
        assert_eq!(ticks(7.3), (2.0, 8.0));
        assert_eq!(ticks(0.0), (0.2, 1.0));
    }
}
