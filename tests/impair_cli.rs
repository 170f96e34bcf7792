//! `chatctl impair` as a process: it prints where it listens, relays a
//! client's datagrams to the target and back, and on Ctrl-C (SIGINT) prints
//! what it forwarded and dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn relays_and_reports_on_interrupt() {
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["impair", "--listen", "127.0.0.1:0", "--target"])
        .arg(target.local_addr().unwrap().to_string())
        .args(["--delay", "5ms", "--seed", "7"])
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
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(child.wait().unwrap().success());
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
