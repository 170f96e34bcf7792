//! A download never hands over a file that never existed: real sockets, a
//! real server, files changed under it mid-transfer (TCP paused by the
//! client, fast mode slowed by the relay so the timing holds), a 1 MB
//! tmpfs as the client's disk, and a resume after the file changed.

use crate::common;

use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chatctl::client::{ClientError, DownloadOptions, Session, Transport};
use chatctl::exit::Exit;
use chatctl::rdt::relay::{Impairment, Relay, RelayHandle};
use chatctl::server::{Config, PortSpec};

const MB: usize = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Writes `len` bytes of new content at `offset` of `path`, in place.
fn rewrite(path: &Path, offset: u64, len: usize) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&common::data(len, offset + 99), offset).unwrap();
}

/// A TCP download through the client library that stops reading once
/// 1 MB has arrived, runs `change` on the served file, then reads on: the
/// error it ends with, and what is left in the output folder.
fn tcp_changed_midway(size: usize, change: impl FnOnce(&Path) + Send + 'static) -> (ClientError, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("f.bin");
    std::fs::write(&served, common::data(size, 1)).unwrap();
    let addr = common::server(dir.path());
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("f.bin");
    let (at_1mb, paused) = mpsc::channel::<()>();
    let (go, resume) = mpsc::channel::<()>();
    let changer = std::thread::spawn(move || {
        paused.recv_timeout(Duration::from_secs(30)).expect("the download never reached 1 MB");
        change(&served);
        go.send(()).unwrap();
    });
    let rt = runtime();
    let (s, _updates) = rt.block_on(Session::join(&addr.to_string(), "TCPREADER", Duration::from_secs(5))).unwrap();
    let mut signalled = false;
    let opts = DownloadOptions::default();
    let resume = std::sync::Mutex::new(resume);
    let r = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            s.download_with("f.bin", Transport::Tcp, &target, &opts, |p| {
                // The client stops reading here (its socket fills up, the
                // server blocks) while the file changes.
                if p.done >= MB as u64 && !std::mem::replace(&mut signalled, true) {
                    at_1mb.send(()).unwrap();
                    resume.lock().unwrap().recv_timeout(Duration::from_secs(30)).unwrap();
                }
            }),
        )
        .await
        .expect("the download did not end")
    });
    changer.join().unwrap();
    let e = r.expect_err("a file changed mid-transfer must not download");
    let left =
        std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    (e, left)
}

/// Two 1 MB regions rewritten in place (one already sent, one still to
/// come): the server resets the connection before the last byte, and the
/// client says why. Fails without the server's check: the file arrives
/// whole, matching neither version.
#[test]
fn tcp_file_rewritten_in_two_places_fails_with_a_reset() {
    let size = 32 * MB;
    let (e, left) = tcp_changed_midway(size, move |p| {
        rewrite(p, 0, MB);
        rewrite(p, (size - 2 * MB) as u64, MB);
    });
    let msg = e.to_string();
    println!("message: {msg}\nexit: {}", e.exit().code());
    assert!(msg.starts_with("download of f.bin failed: the server cut the transfer after "), "{msg}");
    assert!(msg.contains("the file changed on the server"), "{msg}");
    assert!(msg.contains(&format!("of {size} bytes")), "{msg}");
    assert_eq!(e.exit(), Exit::TransferFailed);
    assert!(left.is_empty(), "nothing may be left: {left:?}");
}

/// Truncated under the server: a reset, never a clean short end.
#[test]
fn tcp_file_truncated_mid_transfer_fails_with_a_reset() {
    let (e, left) = tcp_changed_midway(32 * MB, |p| {
        std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(20 * MB as u64).unwrap();
    });
    let msg = e.to_string();
    println!("message: {msg}\nexit: {}", e.exit().code());
    assert!(msg.contains("the server cut the transfer after ") && msg.contains("(connection reset)"), "{msg}");
    assert_eq!(e.exit(), Exit::TransferFailed);
    assert!(left.is_empty(), "nothing may be left: {left:?}");
}

/// Two neighbouring ports the OS just handed out and took back, free for
/// TCP and UDP on 127.0.0.1: the server's range for one user (the update
/// connection takes the first, the download the second), so that the
/// relay knows the transfer port in advance.
fn port_pair() -> u16 {
    for _ in 0..200 {
        let p = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if p < u16::MAX
            && (p..=p + 1).all(|q| {
                std::net::TcpListener::bind(("127.0.0.1", q)).is_ok()
                    && std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok()
            })
        {
            return p;
        }
    }
    panic!("no two free neighbouring ports");
}

/// A served folder holding `f.bin` (`size` bytes), a server for one user
/// with a known transfer port, and a relay in front of that port that
/// carries `rate_bps` towards the client.
struct Slowed {
    dir: tempfile::TempDir,
    server: SocketAddr,
    relay: RelayHandle,
    rt: tokio::runtime::Runtime,
}

impl Slowed {
    fn new(size: usize, rate_bps: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.bin"), common::data(size, 1)).unwrap();
        let lo = port_pair();
        let fast = chatctl::rdt::fast::Config {
            max_datagram: 1452,
            probe: false,
            idle_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let server = common::server_with(Config {
            ports: PortSpec::Range { lo, hi: lo + 1 },
            fast,
            ..common::config(Some(dir.path()))
        });
        let rt = runtime();
        let down = Impairment::path(0.0, Duration::from_millis(1), rate_bps, 7);
        let relay = rt
            .block_on(Relay::start(
                "127.0.0.1:0".parse().unwrap(),
                SocketAddr::from(([127, 0, 0, 1], lo + 1)),
                Impairment::none(),
                down,
            ))
            .unwrap();
        Slowed { dir, server, relay, rt }
    }

    fn served(&self) -> PathBuf {
        self.dir.path().join("f.bin")
    }

    /// `chatctl fetch f.bin` through the relay into `out`, started now.
    fn fetch(&self, out: &Path, extra: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_chatctl"))
            .args(["--server", &self.server.to_string(), "--name", "SLOW", "fetch", "f.bin", "--udp-via"])
            .arg(self.relay.local_addr.to_string())
            .args(extra)
            .arg("-o")
            .arg(out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Waits until the partial download in `out` holds `bytes`.
fn wait_partial(out: &Path, bytes: u64) {
    let part = out.join(".f.bin.chatctl-part");
    let t0 = Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < bytes {
        assert!(t0.elapsed() < Duration::from_secs(30), "the partial download never reached {bytes} bytes");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn finish(child: std::process::Child, within: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = child;
    let _ = common::wait_exit(&mut child, within);
    (child.wait_with_output().unwrap(), t0.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn listing(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect()
}

/// Fetches a `size`-byte file slowed by the relay to `rate` bit/s, with
/// `args`; once `after` bytes have arrived, rewrites two 1 MB regions of it
/// (one already sent, one still to come). The download must fail (exit 10)
/// and leave nothing that could be taken for the file. Returns its stderr.
fn rewritten_in_two_places(size: usize, rate: u64, args: &[&str], after: u64) -> String {
    let s = Slowed::new(size, rate);
    let out = tempfile::tempdir().unwrap();
    let child = s.fetch(out.path(), args);
    wait_partial(out.path(), after);
    rewrite(&s.served(), 0, MB);
    rewrite(&s.served(), (size - 2 * MB) as u64, MB);
    let (o, took) = finish(child, Duration::from_secs(40));
    let err = stderr(&o);
    println!("stderr: {err}exit: {:?} after {took:?}", o.status.code());
    assert_eq!(o.status.code(), Some(Exit::TransferFailed.code().into()), "{err}");
    assert!(!out.path().join("f.bin").exists(), "a changed file must not be handed over");
    assert!(common::part_files(out.path()).is_empty(), "no partial of a changed file: {:?}", listing(out.path()));
    err
}

/// The fast mode, slowed to 40 Mbit/s: the server aborts, saying why.
#[test]
fn fast_file_rewritten_in_two_places_fails() {
    let err = rewritten_in_two_places(8 * MB, 40_000_000, &[], MB as u64);
    assert!(err.contains("the file changed on the server"), "{err}");
}

/// Classic go-back-N, slowed to 20 Mbit/s: the server stops before the
/// final datagram, so the receiver never completes the file; it gives up
/// after --timeout without new data.
#[test]
fn classic_file_rewritten_in_two_places_never_completes() {
    let err = rewritten_in_two_places(4 * MB, 20_000_000, &["--classic", "--timeout", "3s"], 500_000);
    assert!(err.contains("no new data for 3s after "), "{err}");
    assert!(err.contains("the server stopped sending (the file may have changed on the server)"), "{err}");
}

/// Truncated on the server mid-transfer, a fast download fails in bounded
/// time and keeps no file.
#[test]
fn fast_file_truncated_mid_transfer_fails_in_bounded_time() {
    let size = 8 * MB;
    let s = Slowed::new(size, 40_000_000);
    let out = tempfile::tempdir().unwrap();
    let child = s.fetch(out.path(), &[]);
    wait_partial(out.path(), MB as u64);
    std::fs::OpenOptions::new().write(true).open(s.served()).unwrap().set_len(3 * MB as u64).unwrap();
    let (o, took) = finish(child, Duration::from_secs(40));
    let err = stderr(&o);
    println!("stderr: {err}exit: {:?} after {took:?}", o.status.code());
    assert_eq!(o.status.code(), Some(Exit::TransferFailed.code().into()), "{err}");
    assert!(err.contains("the file changed on the server while it was sent: 8000000 bytes became 3000000"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(!out.path().join("f.bin").exists());
    assert!(common::part_files(out.path()).is_empty(), "{:?}", listing(out.path()));
}

/// A 1 MB tmpfs mounted for the test, unmounted on drop; `None` (with a
/// message) where mounting is not allowed, which fails the test under CI.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let d = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(d.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "cannot mount a 1 MB tmpfs (root is needed)");
            eprintln!("skipped: cannot mount a 1 MB tmpfs (root is needed)");
            return None;
        }
        Some(Tmpfs(d))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A 3 MB file for a 1 MB disk is refused once `206` announces its size,
/// before any data flows, with the figures.
#[test]
fn a_download_that_cannot_fit_is_refused_up_front() {
    let Some(disk) = Tmpfs::mount() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), common::data(3 * MB, 2)).unwrap();
    let addr = common::server(dir.path());
    for transport in [&["--tcp"][..], &[][..]] {
        let o = Command::new(env!("CARGO_BIN_EXE_chatctl"))
            .args(["--server", &addr.to_string(), "--name", "FULL", "fetch", "f.bin"])
            .args(transport)
            .arg("-o")
            .arg(disk.path())
            .output()
            .unwrap();
        let err = stderr(&o);
        println!("stderr: {err}exit: {:?}", o.status.code());
        assert_eq!(o.status.code(), Some(Exit::TransferFailed.code().into()), "{err}");
        let want = format!("not enough space in {}: needs 3.0 MB, 1.0 MB free", disk.path().display());
        assert!(err.contains(&want), "{err}");
        assert!(listing(disk.path()).is_empty(), "{:?}", listing(disk.path()));
    }
}

/// The disk fills up under a TCP download that fitted when it started:
/// the OS's reason, how much was received, and no partial file left.
#[test]
fn a_full_disk_names_the_reason_and_keeps_nothing() {
    let Some(disk) = Tmpfs::mount() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), common::data(900_000, 3)).unwrap();
    let addr = common::server(dir.path());
    let rt = runtime();
    let (s, _updates) = rt.block_on(Session::join(&addr.to_string(), "FILLER", Duration::from_secs(5))).unwrap();
    let target = disk.path().join("f.bin");
    let ballast = disk.path().join("ballast");
    let mut filled = false;
    let r = rt.block_on(s.download_with("f.bin", Transport::Tcp, &target, &DownloadOptions::default(), |_| {
        // Someone else takes the space once the download has started.
        if !std::mem::replace(&mut filled, true) {
            let _ = std::fs::write(&ballast, vec![1u8; 600_000]);
        }
    }));
    let e = r.expect_err("the disk is full");
    let msg = e.to_string();
    println!("message: {msg}\nexit: {}", e.exit().code());
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains("was removed: TCP and classic UDP cannot resume"), "{msg}");
    assert_eq!(e.exit(), Exit::TransferFailed);
    assert_eq!(listing(disk.path()), vec!["ballast".to_string()]);
}

/// `fetch --continue` after the file changed on the server: refused with
/// the reason instead of a file made of two versions.
#[test]
fn a_resume_after_the_file_changed_is_refused() {
    let size = 8 * MB;
    let s = Slowed::new(size, 40_000_000);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("f.bin");
    let (session, _updates) =
        s.rt.block_on(Session::join(&s.server.to_string(), "RESUMER", Duration::from_secs(5))).unwrap();
    // A small receive window, so that a few MB are enough to resume from.
    let fast = chatctl::rdt::fast::Config { receive_window: 256 << 10, ..Default::default() };
    let opts = DownloadOptions { fast: Some(fast), udp_via: Some(s.relay.local_addr), ..Default::default() };
    // Interrupted once 2 MB are held: the partial stays.
    let first = s.rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        tokio::select! {
            r = session.download_with("f.bin", Transport::Udp, &target, &opts, |p| {
                if p.done >= 2 * MB as u64 { let _ = tx.send(()); }
            }) => Some(r),
            _ = rx.recv() => None,
        }
    });
    assert!(first.is_none(), "the first download was to be interrupted: {first:?}");
    assert_eq!(common::part_files(out.path()).len(), 1, "the partial stays for --continue");
    // The server's sender gives up on the vanished receiver, freeing the port.
    std::thread::sleep(Duration::from_secs(3));
    // Same size, other bytes in what the partial holds.
    rewrite(&s.served(), 0, MB);
    let resume = DownloadOptions { resume: true, ..opts.clone() };
    let r = s.rt.block_on(session.download_with("f.bin", Transport::Udp, &target, &resume, |_| {}));
    let e = r.expect_err("two versions must not be joined");
    let msg = e.to_string();
    println!("message: {msg}\nexit: {}", e.exit().code());
    assert!(
        msg.starts_with(
            "download of f.bin failed: the file changed on the server since the partial download; fetch it again"
        ),
        "{msg}"
    );
    assert_eq!(e.exit(), Exit::TransferFailed);
    assert!(!target.exists());
    assert!(common::part_files(out.path()).is_empty(), "a partial of another version is of no use");
}

/// An XFS file system in a loop file, mounted for the test: the server
/// sends a private clone (`FICLONE`) of a file there. `None` (with a
/// message) without mkfs.xfs or the right to mount; fails under CI.
struct Xfs {
    mnt: tempfile::TempDir,
    _image: tempfile::TempDir,
}

impl Xfs {
    fn mount() -> Option<Xfs> {
        let image = tempfile::tempdir().unwrap();
        let img = image.path().join("xfs.img");
        std::fs::File::create(&img).unwrap().set_len(320 << 20).unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let ok = Command::new("mkfs.xfs").args(["-q"]).arg(&img).status().is_ok_and(|s| s.success())
            && Command::new("mount").args(["-o", "loop"]).arg(&img).arg(mnt.path()).status().is_ok_and(|s| s.success());
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "cannot make and mount an XFS file system (mkfs.xfs, root)");
            eprintln!("skipped: cannot make and mount an XFS file system (mkfs.xfs, root)");
            return None;
        }
        Some(Xfs { mnt, _image: image })
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
    }
}

/// On a file system that clones files, the server sends the version
/// announced in `206` even while the file is rewritten: the download
/// succeeds, byte-exact to the original.
#[test]
fn a_clone_is_sent_where_the_file_system_makes_one() {
    let Some(xfs) = Xfs::mount() else { return };
    let size = 32 * MB;
    let original = common::data(size, 1);
    std::fs::write(xfs.mnt.path().join("f.bin"), &original).unwrap();
    let addr = common::server(xfs.mnt.path());
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("f.bin");
    let served = xfs.mnt.path().join("f.bin");
    let rt = runtime();
    let (s, _updates) = rt.block_on(Session::join(&addr.to_string(), "CLONE", Duration::from_secs(5))).unwrap();
    let mut changed = false;
    let r = rt.block_on(s.download_with("f.bin", Transport::Tcp, &target, &DownloadOptions::default(), |p| {
        if p.done > 0 && !std::mem::replace(&mut changed, true) {
            rewrite(&served, 0, MB);
            rewrite(&served, (size - MB) as u64, MB);
        }
    }));
    let report = r.expect("the clone does not change");
    assert!(changed);
    assert_eq!(report.size, size as u64);
    assert!(std::fs::read(&target).unwrap() == original, "the version announced, not a mix");
}

/// The disk fills up under a fast download: the OS's reason, and the
/// partial download kept only where `--continue` could use it (more of it
/// than the receive window a resume steps back), with its size either way.
#[test]
fn a_full_disk_under_a_fast_download_keeps_only_a_usable_partial() {
    let Some(disk) = Tmpfs::mount() else { return };
    let s = Slowed::new(900_000, 8_000_000);
    let (session, _updates) =
        s.rt.block_on(Session::join(&s.server.to_string(), "FASTFULL", Duration::from_secs(5))).unwrap();
    let target = disk.path().join("f.bin");
    let ballast = disk.path().join("ballast");
    for (window, kept) in [(64 << 20, false), (100_000, true)] {
        let fast = chatctl::rdt::fast::Config { receive_window: window, ..Default::default() };
        let opts = DownloadOptions { fast: Some(fast), udp_via: Some(s.relay.local_addr), ..Default::default() };
        let mut filled = false;
        let r = s.rt.block_on(session.download_with("f.bin", Transport::Udp, &target, &opts, |p| {
            // Someone else takes the space once 300 kB have arrived.
            if p.done >= 300_000 && !std::mem::replace(&mut filled, true) {
                let _ = std::fs::write(&ballast, vec![1u8; 700_000]);
            }
        }));
        let e = r.expect_err("the disk is full");
        let msg = e.to_string();
        println!("window {window}: message: {msg}\nexit: {}", e.exit().code());
        assert!(msg.contains("No space left on device"), "{msg}");
        assert_eq!(e.exit(), Exit::TransferFailed);
        let parts = common::part_files(disk.path());
        if kept {
            assert!(msg.contains("; free some space first (the partial download, "), "{msg}");
            assert!(msg.ends_with("is kept: --continue resumes it)"), "{msg}");
            assert_eq!(parts.len(), 1);
        } else {
            assert!(msg.contains("was removed: too little for --continue to resume)"), "{msg}");
            assert!(parts.is_empty(), "{parts:?}");
        }
        let _ = std::fs::remove_file(&ballast);
        for p in parts {
            let _ = std::fs::remove_file(disk.path().join(p));
        }
        // The server's sender gives up on the receiver, freeing the port.
        std::thread::sleep(Duration::from_secs(3));
    }
}
