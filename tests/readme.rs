//! The README's commands, run as written by `sh` in a fresh copy of the
//! clone, in the README's order: set-up, first steps, tour, completions,
//! scripts and the relay. Only the ports are moved (a `chatctl` wrapper on
//! PATH adds `--listen` and `--ports 0` to `serve` and maps the README's
//! fixed ports to free ones) and `cargo install` is a no-op (the binary under
//! test is on PATH). A README block the test does not know fails it, so a
//! command added to the README must be added here.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// The fenced `sh` blocks of the README, one string per block.
fn blocks() -> Vec<String> {
    let readme = include_str!("../README.md");
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in readme.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```sh") => block = Some(String::new()),
            (Some(_), "```") => blocks.push(block.take().unwrap()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// A port free for TCP and UDP, and the one after it (for `--ports LO-HI`).
fn free_pair() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let Some(q) = p.checked_add(1) else { continue };
        let ok = [p, q]
            .iter()
            .all(|&x| TcpListener::bind(("127.0.0.1", x)).is_ok() && UdpSocket::bind(("127.0.0.1", x)).is_ok());
        if ok {
            return p;
        }
    }
}

/// A fresh "clone" (README, .gitignore, a git repository with both
/// committed), a `bin/` with the `chatctl` wrapper and a no-op `cargo`.
struct Clone {
    dir: tempfile::TempDir,
    port: u16,
    /// Shells started in the background, and their children: killed when the
    /// test ends, also by a failure.
    started: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Clone {
    fn drop(&mut self) {
        for pid in self.started.borrow().iter() {
            let _ = Command::new("pkill").args(["-KILL", "-P", &pid.to_string()]).status();
            // SAFETY: kill(2) on a process this test started.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

impl Clone {
    fn new() -> Clone {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("clone")).unwrap();
        for f in ["README.md", ".gitignore"] {
            std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(f), root.join("clone").join(f)).unwrap();
        }
        for d in ["bin", "home", "run"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        #[cfg(unix)]
        std::fs::set_permissions(root.join("run"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let (port, relay, impair) = (free_pair(), free_pair(), free_pair());
        let real = assert_cmd::cargo::cargo_bin("chatctl");
        let wrapper = format!(
            r#"#!/bin/sh
# chatctl as the README runs it, its fixed ports moved to free ones.
n=$#
while [ $n -gt 0 ]; do
  a=$(printf '%s' "$1" | sed -e 's/55000-55001/{relay}-{relay1}/g' -e 's/127.0.0.1:55001/127.0.0.1:{relay1}/g' -e 's/localhost:55001/localhost:{relay1}/g' -e 's/127.0.0.1:9000/127.0.0.1:{impair}/g' -e 's/127.0.0.1:9001/127.0.0.1:{impair1}/g')
  shift; set -- "$@" "$a"; n=$((n-1))
done
if [ "$1" = serve ]; then
  case " $* " in *" --ports "*) ;; *) set -- "$@" --ports 0 ;; esac
  set -- "$@" --listen 127.0.0.1:{port}
fi
exec '{real}' "$@"
"#,
            relay1 = relay + 1,
            impair1 = impair + 1,
            real = real.display(),
        );
        write_exe(&root.join("bin/chatctl"), &wrapper);
        write_exe(&root.join("bin/cargo"), "#!/bin/sh\n# The binary under test stands for `cargo install`.\nexit 0\n");
        let git = |args: &[&str]| {
            let ok = Command::new("git").args(args).current_dir(root.join("clone")).output();
            ok.is_ok_and(|o| o.status.success())
        };
        let have_git = git(&["init", "-q"])
            && git(&["-c", "user.name=t", "-c", "user.email=t@t", "add", "."])
            && git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"]);
        if !have_git {
            skipped("git");
        }
        Clone { dir, port, started: Default::default() }
    }

    fn clone_dir(&self) -> PathBuf {
        self.dir.path().join("clone")
    }

    /// `sh -c SCRIPT` in `cwd` (relative to the clone), with the README's environment.
    fn sh(&self, script: &str, cwd: &str) -> Command {
        let root = self.dir.path();
        let path = format!("{}:{}", root.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let mut c = Command::new("sh");
        c.args(["-c", script])
            .current_dir(self.clone_dir().join(cwd))
            .env("PATH", path)
            .env("HOME", root.join("home"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .env("CHATCTL_SERVER", format!("127.0.0.1:{}", self.port))
            .env("NO_COLOR", "1")
            .env_remove("CHATCTL_NAME");
        c
    }

    /// Runs `script`; it must succeed.
    fn run(&self, script: &str, cwd: &str) -> Output {
        let out = self.sh(script, cwd).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{script:?} failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `script` in the background.
    fn start(&self, script: &str, cwd: &str) -> Child {
        let child = self.sh(script, cwd).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let child = child.unwrap();
        self.started.borrow_mut().push(child.id());
        child
    }
}

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A tool is missing: skipped on a user's clone, a failure under CI.
fn skipped(tool: &str) {
    assert!(std::env::var_os("CI").is_none(), "`{tool}` is missing, and CI is set: install it");
    println!("skipped part: `{tool}` is not installed");
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child's process id.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    common::wait_exit(&mut child, Duration::from_secs(10));
}

/// `sh -c` starts the command as its child (a pipeline or `&&`): signal the
/// whole group of the shell to stop the server it started.
fn stop_group(child: Child) {
    let _ = Command::new("pkill").args(["-INT", "-P", &child.id().to_string()]).status();
    stop(child);
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// The README's blocks, as this test runs them.
const SETUP: &str =
    "mkdir -p share && cp README.md share/ && cargo install --locked --path . && chatctl serve --files ./share\n";
const TESTS: &str = "cargo test\n";
const FIRST: &str = "mkdir -p downloads && cd downloads   # downloads land here\n\
chatctl -n alice fetch README.md     # a first download, from the server above\n";

#[test]
fn the_readme_runs_as_written() {
    let blocks = blocks();
    let clone = Clone::new();
    let readme = std::fs::read(clone.clone_dir().join("README.md")).unwrap();

    // Set-up: the server keeps its terminal.
    assert_eq!(blocks[0], SETUP, "the README's set-up changed: update this test");
    let server = clone.start(&blocks[0], ".");
    wait_listening(clone.port);

    // The tests: the command CI runs (here the stand-in `cargo`).
    assert_eq!(blocks[1], TESTS, "the README's test command changed: update this test and .ci/run");
    clone.run(&blocks[1], ".");

    // First steps: the first download succeeds in the clone, and git sees nothing new.
    assert_eq!(blocks[2], FIRST, "the README's first steps changed: update this test");
    clone.run(&blocks[2], ".");
    assert_eq!(std::fs::read(clone.clone_dir().join("downloads/README.md")).unwrap(), readme);
    let status = Command::new("git").args(["status", "--porcelain"]).current_dir(clone.clone_dir()).output();
    if let Some(s) = status.ok().filter(|s| s.status.success()) {
        assert_eq!(String::from_utf8_lossy(&s.stdout), "", "the set-up shows in git status");
    }

    // The tour, line by line, in the downloads folder; alice's `join` on a terminal.
    let tour: Vec<&str> = blocks[3].lines().collect();
    assert_eq!(tour.len(), 6, "the README's tour changed: update this test: {tour:?}");
    assert!(tour[0].starts_with("chatctl -n alice join "), "{}", tour[0]);
    let have_script = Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success());
    let mut alice = None;
    if have_script {
        let cmd = tour[0].split('#').next().unwrap().trim().to_string();
        let mut c = clone.sh(&format!("script -qfec '{cmd}' /dev/null"), "downloads");
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        clone.started.borrow_mut().push(child.id());
        let lines = common::Lines::of(child.stdout.take().unwrap());
        lines.until(|l| l.contains("joined as alice"));
        alice = Some((child, lines));
    } else {
        skipped("script");
        let mut child =
            clone.sh(&format!("sleep 600 | {}", tour[0]), "downloads").stdout(Stdio::piped()).spawn().unwrap();
        let lines = common::Lines::of(child.stdout.take().unwrap());
        std::thread::sleep(Duration::from_secs(1));
        alice = alice.or(Some((child, lines)));
    }
    let (mut alice_child, alice_lines) = alice.unwrap();
    let said = clone.run(tour[1], "downloads");
    assert!(text(&said).contains("sent to alice"), "{}", text(&said));
    alice_lines.until(|l| l.contains("bot: build finished"));
    let piped = clone.run(tour[2], "downloads");
    assert_eq!(text(&piped).matches("sent to alice").count(), 3, "{}", text(&piped));
    alice_lines.until(|l| l.contains("log: 3"));
    clone.run(tour[3], "downloads");
    alice_lines.until(|l| l.contains("[private] bob: lunch?"));
    let listed = clone.run(tour[4], "downloads");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "alice\n");
    clone.run(tour[5], "downloads");
    assert_eq!(std::fs::read(clone.clone_dir().join("downloads/bob.md")).unwrap(), readme);

    // Completions.
    clone.run(&blocks[4], ".");
    let completions = clone.dir.path().join("home/.local/share/bash-completion/completions/chatctl");
    assert!(std::fs::read_to_string(completions).unwrap().contains("chatctl"));

    // Scripts: a detached bot, fifty steps, stopped; alice sees them.
    clone.run(&blocks[5], ".");
    alice_lines.until(|l| l.contains("ci: step 50 done"));
    alice_lines.until(|l| l.contains("ci left"));

    // Waiting for a reply: alice answers (through her running join).
    let waiter = clone.sh(&blocks[6], ".").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    alice_lines.until(|l| l.contains("[private] bot: deploy now?"));
    clone.run("chatctl -n alice whisper bot yes", ".");
    let answer = waiter.wait_with_output().unwrap();
    assert!(answer.status.success(), "{}", text(&answer));
    assert!(String::from_utf8_lossy(&answer.stdout).contains("alice: yes"), "{}", text(&answer));

    // alice leaves with Ctrl-D (on the terminal), or at the end of input.
    if have_script {
        let stdin = alice_child.stdin.as_mut().unwrap();
        stdin.write_all(b"\x04").unwrap();
        stdin.flush().unwrap();
        let status = common::wait_exit(&mut alice_child, Duration::from_secs(10));
        assert!(status.success(), "alice's join: {status:?}");
    } else {
        let _ = alice_child.kill();
    }
    stop_group(server);

    // The relay: a two-port server, impair in front of its transfer port, a fetch through it.
    let relay: Vec<&str> = blocks[7].lines().collect();
    assert_eq!(relay.len(), 3, "the README's relay block changed: update this test: {relay:?}");
    std::fs::write(clone.clone_dir().join("share/big.iso"), common::data(3_000_000, 7)).unwrap();
    let server = clone.start(relay[0], ".");
    wait_listening(clone.port);
    let impair = clone.start(relay[1], ".");
    std::thread::sleep(Duration::from_millis(500));
    let fetched = clone.run(relay[2], "downloads");
    assert!(text(&fetched).contains("alice downloaded 100% of big.iso"), "{}", text(&fetched));
    assert_eq!(std::fs::read(clone.clone_dir().join("downloads/big.iso")).unwrap(), common::data(3_000_000, 7));
    stop_group(impair);
    stop_group(server);
    assert_eq!(blocks.len(), 8, "a README block this test does not run: {:?}", &blocks[8..]);
}
