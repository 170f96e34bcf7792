//! `chatctl fetch`: download files.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use chatctl::client::control::Link;
use chatctl::client::retry::{self, Attempt, Retry};
use chatctl::client::{DownloadOptions, DownloadReport, PrepareError, Progress, Transport, UdpMode};
use chatctl::exit::Exit;
use chatctl::rdt::fast::{self, driver::Tracer};
use chatctl::text::units;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::cli::Global;
use crate::common::{escape, fail, interactive, note, one_shot, out, pick_many};

/// Download files from the server (UDP by default, as the original client).
///
/// Several files download in parallel, with one progress bar each on a
/// terminal. A file is written beside its target and renamed into place only
/// when complete and exactly the announced size; an existing file is kept
/// unless --force. Every output is checked (folder, permission, clashes)
/// before the server is asked for anything. For each file, a final line
/// reports its size, time, rate and last byte: `NAME downloaded 100% of FILE
/// (24,114 bytes) in 1.2s at 80 MB/s. Last byte: 130` (a resumed one also
/// says where it resumed); --json prints one summary object per file
/// instead. Ctrl-C ends the downloads on the server too and prints the
/// command that resumes them.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Files to download [default on a terminal: pick from the server's list].
    #[arg(value_name = "FILE", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub files: Vec<String>,

    /// Download over reliable UDP (the default).
    #[arg(long, conflicts_with = "tcp")]
    pub udp: bool,

    /// Download over TCP.
    #[arg(long)]
    pub tcp: bool,

    /// Where to write [default: the current folder]. With one FILE: that file's
    /// name, or an existing folder (or a path ending in `/`) to put it in.
    /// With several: a folder, created if missing; each file keeps its name.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Overwrite existing files.
    #[arg(short, long)]
    pub force: bool,

    /// Resume an interrupted fast UDP download where it stopped: from the
    /// partial file it left and the mark beside it (`.NAME.chatctl-resume`,
    /// how far the file is good), fetching again at most what was in flight.
    /// A file already complete is success ("already complete"), as wget -c.
    /// Fast mode only: TCP and classic go-back-N carry no offset, so this is
    /// refused with --tcp or --classic, and a server that answers in classic
    /// mode sends the file from the start (with a note on stderr).
    #[arg(short = 'c', long = "continue")]
    pub resume: bool,

    /// UDP with the classic go-back-N only (no fast-mode hello).
    #[arg(long, conflicts_with = "tcp")]
    pub classic: bool,

    /// Send UDP downloads through a relay at ADDR:PORT (e.g. `chatctl impair
    /// --target SERVER:TRANSFER-PORT`) instead of to the announced port.
    /// With `serve --ports LO-HI` the server's ports are predictable: for one
    /// user, LO is the update port and LO+1 the first transfer port.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "tcp")]
    pub udp_via: Option<std::net::SocketAddr>,

    /// Write one JSON line per progress tick of a fast download (bytes, RTT,
    /// window estimate, holes, late bytes) to FILE, for plots.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Try again up to N times when the server has no transfer port free
    /// (4062), cannot be reached, or the connection or a download is lost,
    /// waiting 1s, 2s, 4s... (at most 60s) in between, as curl's --retry.
    /// Files already fetched are kept, and an interrupted fast download
    /// resumes where it stopped.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retry: u32,

    /// Wait this long before each retry instead of the growing backoff (as
    /// curl's --retry-delay), e.g. `500ms`, `2s`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "retry")]
    pub retry_delay: Option<Duration>,
}

/// The `-v` figures of a fast download: the sender's own (congestion
/// window, RTT, pacing rate, losses, bytes sent again, controller) from its
/// STATS datagrams, or, from a sender that sends none, what the receiver
/// sees (`cwnd~`: bytes delivered per RTT; holes; bytes that came late).
fn live(p: &Progress) -> Option<String> {
    let s = p.fast.as_ref()?;
    Some(match &s.sender {
        Some(x) => format!(
            "cwnd {} rtt {:.1}ms rate {} lost {} retx {} ({})",
            units::bytes(x.cwnd),
            x.srtt.as_secs_f64() * 1e3,
            units::rate(x.pacing_rate as f64),
            x.packets_lost,
            units::bytes(x.bytes_retransmitted),
            escape(&x.cc),
        ),
        None => format!(
            "cwnd~{} rtt {:.1}ms holes {} late {}",
            units::bytes(s.cwnd),
            s.srtt.as_secs_f64() * 1e3,
            s.packets_lost,
            units::bytes(s.bytes_retransmitted)
        ),
    })
}

/// The bar of one download: sizes, rate and time left in the units of every
/// other line ([`units`]), the rate counting only this run's bytes (a
/// `--continue` starts the bar at the bytes already on disk).
fn bar_style(start: Arc<AtomicU64>) -> ProgressStyle {
    let since = move |s: &ProgressState| s.pos().saturating_sub(start.load(Ordering::Relaxed));
    let rate = {
        let since = since.clone();
        move |s: &ProgressState| {
            let secs = s.elapsed().as_secs_f64();
            if secs > 0.0 { since(s) as f64 / secs } else { 0.0 }
        }
    };
    let left = rate.clone();
    ProgressStyle::with_template("{prefix:20!} [{bar:30}] {done}/{size} {speed} ETA {left} {msg}")
        .expect("valid template")
        .with_key("done", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&units::bytes(s.pos()));
        })
        .with_key("size", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&s.len().map_or("?".into(), units::bytes));
        })
        .with_key("speed", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&units::rate(rate(s)));
        })
        .with_key("left", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let r = left(s);
            let rest = s.len().unwrap_or(0).saturating_sub(s.pos()) as f64;
            let _ = match r > 0.0 {
                true => write!(w, "{}", humantime::format_duration(Duration::from_secs((rest / r).ceil() as u64))),
                false => w.write_str("-"),
            };
        })
        .progress_chars("=> ")
}

pub fn run(args: FetchArgs, global: &Global) -> anyhow::Result<()> {
    let transport = if args.tcp { Transport::Tcp } else { Transport::Udp };
    if args.files.is_empty() && !interactive() {
        return Err(anyhow::anyhow!("name at least one FILE (`chatctl list --files` shows them)").context(Exit::Usage));
    }
    if args.resume && (args.tcp || args.classic) {
        let what = if args.tcp { "--tcp" } else { "--classic" };
        return Err(anyhow::anyhow!(
            "--continue resumes fast UDP downloads only ({what} carries no offset): drop {what}, or --continue to \
             download from the start"
        )
        .context(Exit::Usage));
    }
    let trace = match &args.trace {
        Some(p) => Some(Tracer::create(p).with_context(|| format!("--trace {}: cannot create the file", p.display()))?),
        None => None,
    };
    let mut opts = DownloadOptions {
        force: args.force,
        resume: args.resume,
        fast: (!args.classic).then(fast::Config::default),
        trace,
        udp_via: args.udp_via,
    };
    let retry = Retry { tries: args.retry, delay: args.retry_delay };
    let mut g = global.clone();
    let mut files = args.files.clone();
    // What each attempt planned, fetched, and the name it joined with.
    let state: Arc<std::sync::Mutex<Attempt>> = Arc::default();
    let mut attempt = 0;
    loop {
        let r = attempt_fetch(&args, &g, transport, &opts, files.clone(), state.clone());
        let st = state.lock().map(|s| s.clone()).unwrap_or_default();
        let exit = r.as_ref().err().and_then(|e| e.downcast_ref::<Exit>().copied());
        match exit {
            Some(exit) if attempt < retry.tries && retry::retryable(exit) && st.left() => {
                attempt += 1;
                // The same name and files (those not fetched yet): a picker
                // or a name prompt is not shown again.
                if g.name.is_none() {
                    g.name = st.name.clone();
                }
                files = st.next_files(&files);
                // A download that stopped part-way resumes (fast UDP), and
                // one that ended complete is not fetched again; only once
                // the outputs were checked, so a file that was there before
                // this run is never taken for one of its own.
                if st.checked {
                    opts.resume = true;
                }
                let wait = retry.wait(attempt);
                if !g.quiet {
                    let e = r.as_ref().err().map(|e| format!("{e:#}")).unwrap_or_default();
                    note(format_args!(
                        "chatctl fetch: {e}; retrying in {} ({attempt} of {})",
                        humantime::format_duration(wait),
                        retry.tries
                    ));
                }
                if let Err(e) = wait_or_interrupt(wait) {
                    interrupted_notes(&st, &args, &g);
                    return Err(e);
                }
            }
            _ => {
                if exit == Some(Exit::Interrupted) {
                    interrupted_notes(&st, &args, &g);
                }
                return r;
            }
        }
    }
}

/// Sleeps `wait` between retries; Ctrl-C ends the command.
fn wait_or_interrupt(wait: Duration) -> anyhow::Result<()> {
    crate::common::block_on(async {
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Exit::Interrupted).context("gave up waiting to retry")),
        }
    })
}

/// One attempt: join, fetch `files` (or pick them), leave.
fn attempt_fetch(
    args: &FetchArgs,
    global: &Global,
    transport: Transport,
    opts: &DownloadOptions,
    files: Vec<String>,
    state: Arc<std::sync::Mutex<Attempt>>,
) -> anyhow::Result<()> {
    let g = global.clone();
    let output = args.output.clone();
    let resume_asked = args.resume;
    let opts = opts.clone();
    one_shot(global, |session| async move {
        if let Ok(mut s) = state.lock() {
            s.name = Some(session.name().to_string());
        }
        let files = if files.is_empty() { pick_files(&session).await? } else { files };
        let bars = std::io::stderr().is_terminal() && !g.quiet && !g.json;
        let multi = MultiProgress::with_draw_target(if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        // Every output is checked before the server is asked for anything.
        let targets = chatctl::client::prepare_targets(output.as_deref(), &files, &opts).map_err(|e| match e {
            PrepareError::Plan(e) => fail(e),
            PrepareError::Check { file, error } => fail(error).context(format!("fetching {}", escape(&file))),
            e => anyhow::Error::new(e),
        })?;
        if let Ok(mut s) = state.lock() {
            s.planned.clone_from(&targets);
            s.checked = true;
        }
        // Not spawned: the downloads are polled by this future, so Ctrl-C
        // (which drops it) ends them at once (each tells the server).
        let mut tasks = futures_util::stream::FuturesOrdered::new();
        for (file, path) in targets {
            let start = Arc::new(AtomicU64::new(0));
            let bar = ProgressBar::new(0).with_style(bar_style(start.clone())).with_prefix(escape(&file).into_owned());
            let shown = Shown { bar: multi.add(bar), start, bars, verbose: g.verbose > 0 && !g.quiet };
            // A partial file `--continue` could resume (checked before the download replaces it).
            let partial = resume_asked && chatctl::client::temp_path_for(&path).exists();
            let one = fetch_one(session.clone(), file, path, transport, opts.clone(), shown);
            tasks.push_back(async move { one.await.map(|report| (report, partial)) });
        }
        // Every failure is reported; the last one is returned (printed by main, and its exit code used).
        let mut failed: Option<anyhow::Error> = None;
        while let Some(r) = futures_util::StreamExt::next(&mut tasks).await {
            match r {
                // Suspended, so the line does not garble the bars still running.
                Ok((report, partial)) => {
                    if let Ok(mut s) = state.lock() {
                        s.done.push(report.file.clone());
                    }
                    multi.suspend(|| fetched(&g, session.name(), &report, partial))?
                }
                Err(e) => {
                    if let Some(earlier) = failed.replace(e) {
                        multi.suspend(|| note(format_args!("chatctl fetch: {earlier:#}")));
                    }
                }
            }
        }
        failed.map_or(Ok(()), Err)
    })
}

/// The files picked on the terminal among those the server offers.
async fn pick_files(session: &Link) -> anyhow::Result<Vec<String>> {
    let offer = session.files().await.map_err(fail)?;
    if offer.is_empty() {
        anyhow::bail!("the server offers no files");
    }
    let picked = pick_many("Files to download (space picks, Enter starts, Esc cancels)", &offer).await?;
    let files: Vec<String> = picked.into_iter().map(|i| offer[i].clone()).collect();
    if files.is_empty() {
        anyhow::bail!("no file picked (space picks one, enter starts)");
    }
    Ok(files)
}

/// How one download's progress is shown: its bar, and with `-v` its figures
/// (in the bar's message on a terminal, else a line a second on stderr).
struct Shown {
    bar: ProgressBar,
    /// Where the bar's rate starts counting (what a resume found on disk).
    start: Arc<AtomicU64>,
    /// Bars are drawn (stderr is a terminal).
    bars: bool,
    /// `-v` and not `-q`.
    verbose: bool,
}

/// Downloads `file` into `path`, showing its progress; a file not on offer
/// names those that are.
async fn fetch_one(
    session: Arc<Link>,
    file: String,
    path: PathBuf,
    transport: Transport,
    opts: DownloadOptions,
    shown: Shown,
) -> anyhow::Result<DownloadReport> {
    let Shown { bar, start, bars, verbose: show } = shown;
    if show && !bars {
        note(format_args!("fetching {} over {transport} to {}", escape(&file), path.display()));
    }
    let mut first = true;
    let mut last_line = std::time::Instant::now();
    let mut last_shown = false;
    let r = session
        .download_with(&file, transport, &path, &opts, |p| {
            if std::mem::take(&mut first) {
                // What a resume found on disk: not this run's bytes.
                start.store(p.done, Ordering::Relaxed);
                bar.reset_elapsed();
            }
            bar.set_length(p.size);
            bar.set_position(p.done);
            if !show {
                return;
            }
            if let Some(m) = live(p) {
                if bars {
                    bar.set_message(m);
                } else if last_line.elapsed() >= std::time::Duration::from_secs(1)
                    || (p.done == p.size && !std::mem::replace(&mut last_shown, true))
                {
                    // Every second, and once at the end (final figures).
                    last_line = std::time::Instant::now();
                    note(format_args!("{}: {}/{} bytes, {m}", escape(&file), p.done, p.size));
                }
            }
        })
        .await;
    bar.finish_and_clear();
    let r = match r {
        // Say what there is, as `whisper` says who is here.
        Err(e @ chatctl::client::ClientError::Refused(chatctl::wire::ErrorCode::NO_SUCH_FILE)) => {
            let offer = session.files().await.map(|f| chatctl::client::chat::on_offer(&f));
            let offer = offer.unwrap_or_else(|_| "`chatctl list --files` lists them".into());
            Err(fail(e).context(format!("no such file; {offer}")))
        }
        r => r.map_err(fail),
    };
    r.with_context(|| format!("fetching {}", escape(&file)))
}

/// Prints the report of a finished download; `partial` says a partial file
/// was there to resume (a classic server cannot, which is worth a note).
fn fetched(g: &Global, name: &str, report: &DownloadReport, partial: bool) -> anyhow::Result<()> {
    if partial && !g.quiet && report.udp_mode == Some(UdpMode::Classic) {
        note(format_args!(
            "note: the server answered {} in classic go-back-N, which cannot resume: downloaded from the start",
            escape(&report.file)
        ));
    }
    print_report(g, name, report)
}

/// After Ctrl-C (unless `-q`): the partial file each interrupted fast
/// download kept, and the command that resumes them, with the same server,
/// name, relay and output (TCP and classic downloads keep nothing).
fn interrupted_notes(st: &Attempt, args: &FetchArgs, g: &Global) {
    let kept = st.kept();
    if kept.is_empty() || g.quiet {
        return;
    }
    let mut cmd = vec!["chatctl".to_string(), "fetch".into(), "--continue".into(), "-s".into(), quote(&g.server)];
    if let Some(name) = g.name.as_ref().or(st.name.as_ref()) {
        cmd.extend(["-n".into(), quote(name)]);
    }
    if let Some(via) = args.udp_via {
        cmd.extend(["--udp-via".into(), via.to_string()]);
    }
    if let Some(o) = &args.output {
        cmd.extend(["-o".into(), quote(&o.to_string_lossy())]);
    }
    cmd.extend(kept.iter().map(|(f, _)| quote(f)));
    for (_, path) in &kept {
        note(format_args!("kept the partial download {}", chatctl::client::temp_path_for(path).display()));
    }
    note(format_args!("resume with: {}", cmd.join(" ")));
}

/// `s` as one shell word: as is when it is plain, else in single quotes;
/// terminal control characters escaped either way.
fn quote(s: &str) -> String {
    let s = escape(s);
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@,+=%".contains(c));
    if plain { s.into_owned() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}

fn print_report(g: &Global, name: &str, r: &DownloadReport) -> anyhow::Result<()> {
    if g.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("name".into(), name.into());
            o.insert("bytes_per_second".into(), r.bytes_per_second().round().into());
        }
        out(v)
    } else if g.quiet {
        Ok(())
    } else {
        out(r.summary(name))
    }
}
