//! `chatctl fetch`: download files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chatctl::client::{DownloadOptions, DownloadReport, Progress, Session, Transport};
use chatctl::rdt::fast::{self, driver::Tracer};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Global;
use crate::session::{escape, fail, one_shot};

/// Download files from the server (UDP by default, as the original client).
///
/// Several files download in parallel, with one progress bar each on a
/// terminal. A file is written beside its target and renamed into place only
/// when complete and exactly the announced size; an existing file is kept
/// unless --force. The final line reports the last byte of each file.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Files to download [default on a terminal: pick from the server's list].
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// Download over reliable UDP (the default).
    #[arg(long, conflicts_with = "tcp")]
    pub udp: bool,

    /// Download over TCP.
    #[arg(long)]
    pub tcp: bool,

    /// Where to write: a file name (one FILE) or a folder [default: the current folder].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Overwrite existing files.
    #[arg(short, long)]
    pub force: bool,

    /// Resume an interrupted fast UDP download from the partial file it left.
    #[arg(short = 'c', long = "continue")]
    pub resume: bool,

    /// UDP with the classic go-back-N only (no fast-mode hello).
    #[arg(long, conflicts_with = "tcp")]
    pub classic: bool,

    /// Write one JSON line per progress tick of a fast download (bytes, RTT,
    /// window estimate, holes, late bytes) to FILE, for plots.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
}

/// The `-v` figures of a fast download: what the receiver sees.
fn live(p: &Progress) -> Option<String> {
    let s = p.fast.as_ref()?;
    Some(format!(
        "cwnd~{} rtt {:.1}ms holes {} late {}",
        human_bytes(s.cwnd),
        s.srtt.as_secs_f64() * 1e3,
        s.packets_lost,
        human_bytes(s.bytes_retransmitted)
    ))
}

fn human_bytes(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB"];
    let (mut v, mut i) = (b as f64, 0);
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.0}{}", units[i])
}

/// Where FILE goes: `-o` names the file for a single download unless it is a
/// folder; otherwise the server's name (its last component only) in the folder.
fn target(output: Option<&Path>, file: &str, single: bool) -> anyhow::Result<PathBuf> {
    if let Some(o) = output
        && single
        && !o.is_dir()
    {
        return Ok(o.to_path_buf());
    }
    let base = Path::new(file)
        .file_name()
        .filter(|b| !b.is_empty())
        .with_context(|| format!("cannot make a local file name from {:?}", escape(file)))?;
    Ok(output.unwrap_or(Path::new(".")).join(base))
}

pub fn run(args: FetchArgs, global: &Global) -> anyhow::Result<()> {
    let g = global.clone();
    let transport = if args.tcp { Transport::Tcp } else { Transport::Udp };
    let trace = match &args.trace {
        Some(p) => Some(Tracer::create(p).with_context(|| format!("--trace {}: cannot create the file", p.display()))?),
        None => None,
    };
    let opts = DownloadOptions {
        force: args.force,
        resume: args.resume,
        fast: (!args.classic).then(fast::Config::default),
        trace,
    };
    one_shot(global, |session| async move {
        let mut files = args.files.clone();
        if files.is_empty() {
            if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
                anyhow::bail!("name at least one FILE (`chatctl list --files` shows them)");
            }
            let offer = session.files().await.map_err(fail)?;
            if offer.is_empty() {
                anyhow::bail!("the server offers no files");
            }
            let shown: Vec<String> = offer.iter().map(|f| escape(f)).collect();
            let picked = dialoguer::MultiSelect::new()
                .with_prompt("Files to download (space to pick, enter to start)")
                .items(&shown)
                .interact()
                .context("cannot read the choice from the terminal")?;
            files = picked.into_iter().map(|i| offer[i].clone()).collect();
        }
        let bars = std::io::stderr().is_terminal() && !g.quiet && !g.json;
        let multi = MultiProgress::with_draw_target(if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let style = ProgressStyle::with_template(
            "{prefix:20!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let single = files.len() == 1;
        let mut tasks = Vec::new();
        for file in files {
            let path = target(args.output.as_deref(), &file, single)?;
            let bar = multi.add(ProgressBar::new(0).with_style(style.clone()).with_prefix(escape(&file)));
            let session: Arc<Session> = session.clone();
            let (opts, show) = (opts.clone(), g.verbose > 0 && !g.quiet);
            let verbose = show && !bars;
            tasks.push(tokio::spawn(async move {
                if verbose {
                    eprintln!("fetching {} over {transport:?} to {}", escape(&file), path.display());
                }
                let mut last_line = std::time::Instant::now();
                let r = session
                    .download_with(&file, transport, &path, &opts, |p| {
                        bar.set_length(p.size);
                        bar.set_position(p.done);
                        if !show {
                            return;
                        }
                        if let Some(m) = live(p) {
                            if bars {
                                bar.set_message(m);
                            } else if last_line.elapsed() >= std::time::Duration::from_secs(1) {
                                last_line = std::time::Instant::now();
                                eprintln!("{}: {}/{} bytes, {m}", escape(&file), p.done, p.size);
                            }
                        }
                    })
                    .await;
                bar.finish_and_clear();
                r.map_err(fail).with_context(|| format!("fetching {}", escape(&file)))
            }));
        }
        let mut first_err = None;
        for t in tasks {
            match t.await.context("a download task failed")? {
                Ok(report) => print_report(&g, session.name(), &report),
                Err(e) => {
                    eprintln!("chatctl fetch: {e:#}");
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    })
}

fn print_report(g: &Global, name: &str, r: &DownloadReport) {
    if g.json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    if g.quiet {
        return;
    }
    let rate = if r.seconds > 0.0 { r.size as f64 / r.seconds } else { 0.0 };
    let last = r.last_byte.map_or("none (empty file)".to_string(), |b| b.to_string());
    println!(
        "{} downloaded 100% of {} ({} bytes) in {:.1}s at {}/s. Last byte: {last}",
        escape(name),
        escape(&r.file),
        r.size,
        r.seconds,
        human(rate)
    );
}

fn human(bytes_per_sec: f64) -> String {
    let units = ["B", "kB", "MB", "GB"];
    let (mut v, mut i) = (bytes_per_sec, 0);
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.0} {}", units[i])
}
