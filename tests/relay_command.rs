//! `chatctl impair` as a process: it prints where it listens, relays a
//! client's datagrams to the target and back, and on Ctrl-C (SIGINT) prints
//! what it forwarded and dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use chatctl::server::{Config, PortSpec};

use crate::common;

/// Starts `chatctl impair --listen 127.0.0.1:0 --target TARGET ARGS`;
/// returns the child and the address it relays from.
fn impair(target: &str, args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["impair", "--listen", "127.0.0.1:0", "--target", target])
        .args(args)
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    // "relaying 127.0.0.1:PORT -> 127.0.0.1:PORT (Ctrl-C stops)"
    let addr = first.split_whitespace().nth(1).unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    (child, addr.to_string())
}

/// Interrupts `child` (SIGINT) and returns what it printed on stdout.
fn interrupt(mut child: std::process::Child) -> String {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(child.wait().unwrap().success());
    out
}

#[test]
fn relays_and_reports_on_interrupt() {
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (child, addr) = impair(&target.local_addr().unwrap().to_string(), &["--delay", "5ms", "--seed", "7"]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.connect(addr).unwrap();
    let mut buf = [0u8; 64];
    for i in 0..10u8 {
        client.send(&[i; 10]).unwrap();
        let (n, from) = target.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 10]);
        target.send_to(&[i; 3], from).unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 3]);
    }
    let out = interrupt(child);
    assert!(out.contains("client -> target: 10 datagrams in, 10 out, 0 dropped"), "{out}");
    assert!(out.contains("target -> client: 10 datagrams in, 10 out, 0 dropped"), "{out}");
}

#[test]
fn bad_shares_and_rates_are_refused_with_a_hint() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["impair", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--loss", "150%"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not between 0 and 100%"));
    let out = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["impair", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--rate", "fast"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("e.g. 200M"));
}

/// Two consecutive ports free for TCP and UDP on 127.0.0.1 (checked, then
/// released: another program could take them in between, which is unlikely).
fn free_pair() -> u16 {
    let start = 20_000 + (std::process::id() % 20_000) as u16;
    (0..2000u16)
        .map(|i| start + 7 * i)
        .find(|&p| {
            (p..=p + 1).all(|q| {
                std::net::TcpListener::bind(("127.0.0.1", q)).is_ok() && UdpSocket::bind(("127.0.0.1", q)).is_ok()
            })
        })
        .expect("no two free ports")
}

/// Two real fast downloads in a row through one `chatctl impair` (2% loss
/// both ways), with the server held to 1452-byte datagrams and `fetch
/// --udp-via`: byte-exact, and the relay saw both transfers.
#[test]
fn fetch_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let content = common::data(1_000_000, 5);
    std::fs::write(dir.path().join("f.bin"), &content).unwrap();
    let lo = free_pair();
    let fast = chatctl::rdt::fast::Config { max_datagram: 1452, probe: false, ..Default::default() };
    let server = common::server_with(Config {
        ports: PortSpec::Range { lo, hi: lo + 1 },
        fast,
        ..common::config(Some(dir.path()))
    });
    // One user: the update connection takes `lo`, the download `lo + 1`.
    let (relay, via) = impair(&format!("127.0.0.1:{}", lo + 1), &["--loss", "2%", "--seed", "3"]);
    // Two downloads in a row through the same relay (the README recipe, repeated).
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let out = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_chatctl"))
            .args(["--server", &server.to_string(), "--name", "VIA", "--json", "fetch", "f.bin", "--udp-via", &via])
            .arg("-o")
            .arg(out.path())
            .output()
            .unwrap();
        outputs.push((o, out));
    }
    let report = interrupt(relay);
    for (o, out) in &outputs {
        assert!(o.status.success(), "{}\n{report}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::read(out.path().join("f.bin")).unwrap() == content);
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(json["udp_mode"], "fast", "{json}");
    }
    assert!(report.contains("clients: 2"), "{report}");
    // "client -> target: N datagrams in, M out, D dropped (L lost at
    // random, Q by the full queue), S not sent", numbers grouped (1,234).
    let counts = |dir: &str| -> Vec<u64> {
        let line = report.lines().find(|l| l.contains(dir)).unwrap_or_else(|| panic!("no {dir:?} in {report}"));
        line.replace(',', "").split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect()
    };
    let down = counts("target -> client");
    println!("{report}");
    assert!(down[0] >= 2 * 1_000_000 / 1452, "the transfers did not go through the relay: {report}");
    assert!(down[2] > 0, "2% loss dropped nothing: {report}");
    // No rate, so no queue: every drop is random loss.
    assert_eq!((down[3], down[4]), (down[2], 0), "{report}");
}

/// Starts `chatctl impair` with `args`; returns the child and its start line.
fn impair_line(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .arg("impair")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut first).unwrap();
    (child, first)
}

/// The numbers of the report line about `dir`, thousands separators read.
fn report_counts(report: &str, dir: &str) -> Vec<u64> {
    let line = report.lines().find(|l| l.contains(dir)).unwrap_or_else(|| panic!("no {dir:?} in {report}"));
    line.replace(',', "").split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect()
}

/// `--loss 1` is 1% as netem reads it (not 100%), a host name is resolved,
/// `200Mbit` and `64kB` read, and the start line restates the impairment.
#[test]
fn bare_percentages_host_names_and_rate_spellings() {
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let t = format!("localhost:{}", target.local_addr().unwrap().port());
    let (child, first) = impair_line(&[
        "--listen",
        "127.0.0.1:0",
        "--target",
        &t,
        "--loss",
        "1",
        "--rate",
        "200Mbit",
        "--queue",
        "64kB",
    ]);
    assert!(first.contains("loss 1%, rate 200 Mbit/s, queue 64 kB"), "{first}");
    let addr = first.split_whitespace().nth(1).unwrap().to_string();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut got = 0;
    let mut buf = [0u8; 64];
    for i in 0..400u32 {
        client.send_to(&i.to_be_bytes(), &addr).unwrap();
        if i % 50 == 49 {
            while target.recv_from(&mut buf).is_ok() {
                got += 1;
            }
        }
    }
    let out = interrupt(child);
    // 1% of 400 is 4 or so; 100% would be none.
    assert!(got >= 370, "only {got} of 400 datagrams through 1% loss\n{out}");
    let up = report_counts(&out, "client -> target");
    assert_eq!(up[0], 400, "{out}");
    assert_eq!((up[2], up[3], up[4]), (400 - got, 400 - got, 0), "every drop is random loss: {out}");
}

/// A rate with a small queue drops by the queue, counted apart from
/// random loss, and the counts are grouped by thousands.
#[test]
fn queue_drops_are_counted_apart_from_loss() {
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = target.local_addr().unwrap().to_string();
    let (child, first) = impair_line(&["--listen", "127.0.0.1:0", "--target", &t, "--rate", "1M", "--queue", "3000"]);
    assert!(first.contains("rate 1 Mbit/s, queue 3.0 kB"), "{first}");
    let addr = first.split_whitespace().nth(1).unwrap().to_string();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2000 {
        client.send_to(&[0u8; 1000], &addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let out = interrupt(child);
    let up = report_counts(&out, "client -> target");
    assert!(out.contains("client -> target: 2,000 datagrams in"), "{out}");
    assert_eq!(up[3], 0, "no random loss asked for: {out}");
    assert!(up[4] > 1000 && up[2] == up[4], "1 Mbit/s and a 3 kB queue drop most of a burst: {out}");
}

#[test]
fn ambiguous_and_malformed_values_are_refused() {
    for (flag, value, hint) in [
        ("--rate", "200Mbps", "ambiguous"),
        ("--loss", "x", "e.g. 1%"),
        ("--queue", "1Mbit", "e.g. 100000"),
        ("--target", "nowhere.invalid:1", "--target"),
    ] {
        let mut args = vec!["impair", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9"];
        if flag == "--target" {
            args.truncate(3);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_chatctl")).args(&args).args([flag, value]).output().unwrap();
        assert!(!out.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(hint), "{flag} {value}: {err}");
    }
}
