//! `chatctl fetch`: download files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chatctl::client::{DownloadReport, Session, Transport};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Global;
use crate::session::{escape, fail, interactive, one_shot, out, pick_many};

/// Download files from the server (UDP by default, as the original client).
///
/// Several files download in parallel, with one progress bar each on a
/// terminal. A file is written beside its target and renamed into place only
/// when complete and exactly the announced size; an existing file is kept
/// unless --force. For each file, a final line reports its size, time, rate
/// and last byte: `NAME downloaded 100% of FILE (24,114 bytes) in 1.2s at
/// 80 MB/s. Last byte: 130`; --json prints one summary object per file instead.
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

    /// Where to write [default: the current folder]. With one FILE: that file's
    /// name, or an existing folder (or a path ending in `/`) to put it in.
    /// With several: a folder, created if missing; each file keeps its name.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Overwrite existing files.
    #[arg(short, long)]
    pub force: bool,
}

/// Where FILE goes: `-o` names the file for a single download unless it is a
/// folder (existing, or written with a trailing `/`); otherwise the server's
/// name (its last component only) in the folder.
fn target(output: Option<&Path>, file: &str, single: bool) -> anyhow::Result<PathBuf> {
    if let Some(o) = output
        && single
        && !o.is_dir()
        && !o.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR)
    {
        return Ok(o.to_path_buf());
    }
    let base = chatctl::client::local_file_name(file)
        .with_context(|| format!("cannot make a local file name from {} (use -o NAME)", escape(file)))?;
    Ok(output.unwrap_or(Path::new(".")).join(base))
}

pub fn run(args: FetchArgs, global: &Global) -> anyhow::Result<()> {
    let g = global.clone();
    let transport = if args.tcp { Transport::Tcp } else { Transport::Udp };
    if args.files.is_empty() && !interactive() {
        return Err(anyhow::anyhow!("name at least one FILE (`chatctl list --files` shows them)")
            .context(chatctl::exit::Exit::Usage));
    }
    one_shot(global, |session| async move {
        let mut files = args.files.clone();
        if files.is_empty() {
            let offer = session.files().await.map_err(fail)?;
            if offer.is_empty() {
                anyhow::bail!("the server offers no files");
            }
            let picked = pick_many("Files to download (space to pick, enter to start)", &offer).await?;
            files = picked.into_iter().map(|i| offer[i].clone()).collect();
            if files.is_empty() {
                anyhow::bail!("no file picked (space picks one, enter starts)");
            }
        }
        let bars = std::io::stderr().is_terminal() && !g.quiet && !g.json;
        let multi = MultiProgress::with_draw_target(if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let style = ProgressStyle::with_template(
            "{prefix:20!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let single = files.len() == 1;
        let mut targets: Vec<(String, PathBuf)> = Vec::new();
        for file in &files {
            let path = target(args.output.as_deref(), file, single)?;
            if let Some((other, _)) = targets.iter().find(|(_, p)| *p == path) {
                anyhow::bail!("{} and {} would both be written to {}", escape(other), escape(file), path.display());
            }
            targets.push((file.clone(), path));
        }
        if let (Some(dir), false) = (args.output.as_deref(), single) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        let mut tasks = Vec::new();
        for (file, path) in targets {
            let bar = multi.add(ProgressBar::new(0).with_style(style.clone()).with_prefix(escape(&file).into_owned()));
            let session: Arc<Session> = session.clone();
            let (force, verbose) = (args.force, g.verbose > 0 && !bars && !g.quiet);
            tasks.push(tokio::spawn(async move {
                if verbose {
                    eprintln!("fetching {} over {transport:?} to {}", escape(&file), path.display());
                }
                let r = session
                    .download(&file, transport, &path, force, |done, size| {
                        bar.set_length(size);
                        bar.set_position(done);
                    })
                    .await;
                bar.finish_and_clear();
                r.map_err(fail).with_context(|| format!("fetching {}", escape(&file)))
            }));
        }
        // Every failure is reported; the last one is returned (printed by main, and its exit code used).
        let mut failed: Option<anyhow::Error> = None;
        for t in tasks {
            match t.await.context("a download task failed")? {
                // Suspended, so the line does not garble the bars still running.
                Ok(report) => multi.suspend(|| print_report(&g, session.name(), &report))?,
                Err(e) => {
                    if let Some(earlier) = failed.replace(e) {
                        multi.suspend(|| eprintln!("chatctl fetch: {earlier:#}"));
                    }
                }
            }
        }
        failed.map_or(Ok(()), Err)
    })
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
