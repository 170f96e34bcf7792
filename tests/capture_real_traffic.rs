//! Real traffic, captured by tcpdump in a private network namespace, then
//! decoded. The peers are a scripted server and client in this test speaking
//! the protocol over the kernel's TCP and UDP on loopback (so the capture has
//! real handshakes, ACKs, timestamps options and segmenting), not mocks.
//!
//! Needs root (for `unshare -n`), `ip` and `tcpdump`; prints that it skipped
//! otherwise. CI: `apt-get install -y tcpdump iproute2`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common;

use chatctl::rdt::classic;

const CHILD_ENV: &str = "CHATCTL_CAPTURE_NETNS_DIR";
const FAST_CHILD_ENV: &str = "CHATCTL_CAPTURE_NETNS_FAST_DIR";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn content(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).to_le_bytes()[2]).collect()
}

/// Runs the helper test `side` in a new network namespace with `env` set to
/// a fresh folder; None (after saying why) when that is not possible here.
fn in_namespace(side: &str, env: &str) -> Option<tempfile::TempDir> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !(root && have("unshare") && have("ip") && have("tcpdump")) {
        common::skip("needs root, unshare, ip and tcpdump");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    let st = Command::new("unshare")
        .args(["-n", "--"])
        .arg(&me)
        .args(["--exact", &format!("{}::{side}", module_path!().split_once("::").map_or("", |(_, m)| m))])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env(env, dir.path())
        .status()
        .unwrap();
    if !st.success() && !dir.path().join("real.pcap").exists() {
        common::skip(&format!("could not run in a new network namespace ({st})"));
        return None;
    }
    assert!(st.success(), "the namespace side failed");
    Some(dir)
}

/// Starts tcpdump on the namespace's loopback; `stop` ends it and records
/// how many packets the kernel dropped.
fn start_tcpdump(pcap: &Path) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    assert!(Command::new("ip").args(["link", "set", "lo", "up"]).status().unwrap().success());
    let mut dump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "--immediate-mode", "-B", "65536", "-s", "0", "-w"])
        .arg(pcap)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(dump.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "tcpdump: {line}");
    (dump, err)
}

fn stop_tcpdump(dir: &Path, (mut dump, mut err): (std::process::Child, BufReader<std::process::ChildStderr>)) {
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill").args(["-INT", &dump.id().to_string()]).status();
    let _ = dump.wait();
    // tcpdump's last words: "N packets dropped by kernel".
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let dropped: u64 = rest
        .lines()
        .find(|l| l.contains("dropped by kernel"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    std::fs::write(dir.join("dropped"), dropped.to_string()).unwrap();
}

/// `capture-decode --json --extract OUT` of the namespace's `real.pcap`
/// (on the port the namespace side wrote down), one value per line.
fn decode_real(dir: &Path, out: &Path) -> Vec<serde_json::Value> {
    let port = std::fs::read_to_string(dir.join("port")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["capture-decode", "--json", "--timeline", "--port", port.trim(), "--extract"])
        .arg(out)
        .arg(dir.join("real.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn real_traffic_captured_by_tcpdump_in_a_private_namespace() {
    let Some(dir) = in_namespace("namespace_side", CHILD_ENV) else { return };
    let out = dir.path().join("files");
    let lines = decode_real(dir.path(), &out);
    let codes: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l["type"] == "message")
        .map(|l| (l["channel"].as_str().unwrap().to_string(), l["code"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(String, String)> = [
        ("main", "100"),
        ("main", "200"),
        ("main", "102"),
        ("main", "202"),
        ("update", "303"),
        ("main", "106"),
        ("main", "206"),
        ("main", "106"),
        ("main", "206"),
        ("main", "101"),
        ("main", "201"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let dropped: u64 = std::fs::read_to_string(dir.path().join("dropped")).unwrap().trim().parse().unwrap();
    if dropped > 0 {
        // The capture itself lost packets (the kernel dropped them before
        // tcpdump saw them): the decoder must say so, not stay silent.
        println!("tcpdump dropped {dropped} packets: checking that the holes are reported");
        assert!(lines.iter().any(|l| l["type"] == "problem"), "{lines:?}");
        return;
    }
    assert_eq!(codes, want);
    assert!(lines.iter().all(|l| l["type"] != "problem"), "{lines:?}");
    let transfers: Vec<_> = lines.iter().filter(|l| l["type"] == "transfer").collect();
    assert_eq!(transfers.len(), 2);
    assert!(transfers.iter().all(|t| t["complete"] == true && t["extracted"]["verified"] == true), "{transfers:?}");
    assert_eq!(std::fs::read(out.join("file.bin")).unwrap(), content(100_000, 1));
    assert_eq!(std::fs::read(out.join("blob.bin")).unwrap(), content(12_345, 2));
}

/// Runs inside the namespace (started by the test above, never on its own).
#[test]
#[ignore = "helper: runs inside a private network namespace"]
fn namespace_side() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else { return };
    let pcap = dir.join("real.pcap");
    let dump = start_tcpdump(&pcap);
    session(&dir);
    stop_tcpdump(&dir, dump);
    assert!(Path::new(&pcap).exists());
}

/// chatctl's own server and client (the library, as `serve` and `fetch
/// --udp` run it) download a file in fast mode, with every 20th UDP datagram
/// dropped on the namespace's input hook (nftables; after tcpdump saw it, so
/// the capture holds the lost datagrams and their retransmissions) when nft
/// is available; tcpdump captures it.
#[test]
fn real_fast_download_captured_in_a_private_namespace() {
    let Some(dir) = in_namespace("namespace_side_fast", FAST_CHILD_ENV) else { return };
    let out = dir.path().join("files");
    let lines = decode_real(dir.path(), &out);
    let dropped: u64 = std::fs::read_to_string(dir.path().join("dropped")).unwrap().trim().parse().unwrap();
    let lossy = dir.path().join("lossy").exists();
    let transfers: Vec<_> = lines.iter().filter(|l| l["type"] == "transfer").collect();
    assert_eq!(transfers.len(), 1, "{lines:?}");
    let t = transfers[0];
    println!("fast transfer (every 20th datagram dropped: {lossy}, tcpdump dropped {dropped}): {t}");
    assert_eq!(t["mode"], "fast");
    assert_eq!(t["file"], "big.bin");
    assert_eq!(t["announced_size"], 3_000_017);
    assert_eq!(t["receiver_verified"], true);
    if dropped > 0 {
        return; // the capture itself misses packets: nothing more is certain
    }
    let file = content(3_000_017, 3);
    every_datagram_understood_in_time_order(dir.path());
    // chatctl's client shuts its sending side of the update connection at
    // once: a half-close, then the server's FIN closes it.
    let update: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "connection" && l["channel"] == "update")
        .map(|l| l["change"].as_str().unwrap())
        .collect();
    assert_eq!(update, ["open", "half_close", "close"], "{lines:?}");
    assert_eq!(t["hash"], format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&file)));
    assert_eq!(t["hash_algorithm"], "XXH3-128");
    assert_eq!(t["bytes"], 3_000_017);
    assert_eq!(t["complete"], true);
    assert_eq!(t["extracted"]["verified"], true);
    assert_eq!(t["extracted"]["hash_verified"], true);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), file);
    if lossy {
        // Dropped on input, after tcpdump saw it: the sender sends the
        // bytes again under a new packet number, and the capture shows both.
        assert!(t["retransmissions"].as_u64().unwrap() > 0, "{t}");
    }
}

/// `capture-decode --json -v` of the namespace's real capture: every
/// datagram of the fast transfer is of a known kind (STATS and
/// ACK-FREQUENCY included, never "other" or "invalid"), and the events are
/// in time order.
fn every_datagram_understood_in_time_order(dir: &Path) {
    let port = std::fs::read_to_string(dir.join("port")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["capture-decode", "--json", "-v", "--port", port.trim()])
        .arg(dir.join("real.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: std::collections::BTreeSet<&str> =
        events.iter().filter(|e| e["type"] == "datagram").map(|e| e["kind"].as_str().unwrap()).collect();
    println!("datagram kinds in the real capture: {kinds:?}");
    assert!(kinds.contains("fast_data") && kinds.contains("done_ack"), "{kinds:?}");
    assert!(!kinds.contains("other") && !kinds.contains("invalid"), "{kinds:?}");
    let ts: Vec<f64> = events.iter().map(|e| e["ts"].as_f64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "events out of time order");
}

/// Inside the namespace: drops every 20th UDP datagram arriving on the
/// loopback (deterministic, so the transfer surely loses some). False when
/// nft is missing or refuses.
fn lossy_loopback() -> bool {
    let rules = "add table inet chatctl_test
add chain inet chatctl_test in { type filter hook input priority 0; policy accept; }
add rule inet chatctl_test in meta l4proto udp numgen inc mod 20 == 0 drop
";
    have("nft")
        && Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().is_ok_and(|mut c| {
            use std::io::Write;
            c.stdin.take().is_some_and(|mut i| i.write_all(rules.as_bytes()).is_ok())
                && c.wait().is_ok_and(|s| s.success())
        })
}

/// Runs inside the namespace (started by the test above, never on its own).
#[test]
#[ignore = "helper: runs inside a private network namespace"]
fn namespace_side_fast() {
    let Some(dir) = std::env::var_os(FAST_CHILD_ENV).map(PathBuf::from) else { return };
    let pcap = dir.join("real.pcap");
    let dump = start_tcpdump(&pcap);
    if lossy_loopback() {
        std::fs::write(dir.join("lossy"), "").unwrap();
    }
    let served = tempfile::tempdir().unwrap();
    let file = content(3_000_017, 3);
    std::fs::write(served.path().join("big.bin"), &file).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        use chatctl::client::{DownloadOptions, Session, Transport};
        use chatctl::server::{Config, PortSpec, Server};
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            files: Some(served.path().to_path_buf()),
            ports: PortSpec::Ephemeral { max: 4 },
            ..Config::default()
        };
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr();
        std::fs::write(dir.join("port"), addr.port().to_string()).unwrap();
        let run = tokio::spawn(server.run(std::future::pending::<()>()));
        let (s, _updates) = Session::join(&addr.to_string(), "ALICE", Duration::from_secs(10)).await.unwrap();
        let opts = DownloadOptions { fast: Some(chatctl::rdt::fast::Config::default()), ..Default::default() };
        let target = dir.join("downloaded.bin");
        let r = s.download_with("big.bin", Transport::Udp, &target, &opts, |_| {}).await.unwrap();
        assert_eq!(r.udp_mode, Some(chatctl::client::UdpMode::Fast));
        assert!(std::fs::read(&target).unwrap() == file);
        s.leave().await.unwrap();
        run.abort();
    });
    stop_tcpdump(&dir, dump);
}

fn read_exact(s: &mut TcpStream, n: usize) -> String {
    let mut b = vec![0; n];
    s.read_exact(&mut b).unwrap();
    String::from_utf8(b).unwrap()
}

fn session(dir: &Path) {
    let main_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp_s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = |a: std::net::SocketAddr| a.port();
    let (p0, p1, p2, p3) = (
        port(main_l.local_addr().unwrap()),
        port(up_l.local_addr().unwrap()),
        port(tcp_l.local_addr().unwrap()),
        port(udp_s.local_addr().unwrap()),
    );
    std::fs::write(dir.join("port"), p0.to_string()).unwrap();
    let file = content(100_000, 1);
    let blob = content(12_345, 2);
    let server = {
        let (file, blob) = (file.clone(), blob.clone());
        std::thread::spawn(move || {
            let (mut m, _) = main_l.accept().unwrap();
            m.set_nodelay(true).unwrap();
            assert_eq!(read_exact(&mut m, 12), "10005ALICE\r\n");
            m.write_all(format!("20005ALICE{p1:05}").as_bytes()).unwrap();
            let (mut up, _) = up_l.accept().unwrap();
            assert_eq!(read_exact(&mut m, 3), "102");
            m.write_all(b"2021103BOB").unwrap();
            up.write_all("30303BOB05שלום!\n".trim_end().as_bytes()).unwrap();
            assert_eq!(read_exact(&mut m, 16), "106TCP08file.bin");
            m.write_all(format!("20606{}{p2:05}", file.len()).as_bytes()).unwrap();
            let (mut t, _) = tcp_l.accept().unwrap();
            t.write_all(&file).unwrap();
            drop(t);
            assert_eq!(read_exact(&mut m, 16), "106UDP08blob.bin");
            m.write_all(format!("20605{}{p3:05}", blob.len()).as_bytes()).unwrap();
            let mut buf = [0u8; 64];
            let (n, peer) = udp_s.recv_from(&mut buf).unwrap();
            let w = classic::parse_window(&buf[..n]).unwrap();
            let chunks: Vec<&[u8]> = blob.chunks(classic::CHUNK).collect();
            for (i, c) in chunks.iter().enumerate() {
                let seq = (i % (usize::from(w) + 1)) as u8;
                let mut d = Vec::new();
                classic::Data { last: i + 1 == chunks.len(), seq, payload: c }.encode(&mut d);
                udp_s.send_to(&d, peer).unwrap();
                let (n, _) = udp_s.recv_from(&mut buf).unwrap();
                assert!(classic::parse_ack(&buf[..n]).is_some());
            }
            assert_eq!(read_exact(&mut m, 3), "101");
            drop(up);
            std::thread::sleep(Duration::from_millis(20));
            m.write_all(b"201").unwrap();
            let _ = m.read(&mut buf);
        })
    };
    let mut m = TcpStream::connect(("127.0.0.1", p0)).unwrap();
    m.set_nodelay(true).unwrap();
    m.write_all(b"10005ALICE\r\n").unwrap();
    assert_eq!(read_exact(&mut m, 15), format!("20005ALICE{p1:05}"));
    let mut up = TcpStream::connect(("127.0.0.1", p1)).unwrap();
    m.write_all(b"102").unwrap();
    assert_eq!(read_exact(&mut m, 10), "2021103BOB");
    assert_eq!(read_exact(&mut up, "30303BOB05שלום!".len()), "30303BOB05שלום!");
    m.write_all(b"106TCP08file.bin").unwrap();
    assert_eq!(read_exact(&mut m, 3 + 2 + 6 + 5), format!("20606100000{p2:05}"));
    let mut t = TcpStream::connect(("127.0.0.1", p2)).unwrap();
    let mut got = Vec::new();
    t.read_to_end(&mut got).unwrap();
    assert_eq!(got, file);
    m.write_all(b"106UDP08blob.bin").unwrap();
    assert_eq!(read_exact(&mut m, 3 + 2 + 5 + 5), format!("2060512345{p3:05}"));
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(&classic::encode_window(20), ("127.0.0.1", p3)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut expected = 0u8;
    loop {
        let (n, from) = u.recv_from(&mut buf).unwrap();
        let d = classic::Data::parse(&buf[..n]).unwrap();
        assert_eq!(d.seq, expected);
        got.extend_from_slice(d.payload);
        expected = (expected + 1) % 21;
        u.send_to(&classic::encode_ack(expected), from).unwrap();
        if d.last {
            break;
        }
    }
    assert_eq!(got, blob);
    m.write_all(b"101").unwrap();
    let mut rest = Vec::new();
    let _ = up.read_to_end(&mut rest);
    assert_eq!(read_exact(&mut m, 3), "201");
    drop(m);
    server.join().unwrap();
}

/// Two network namespaces joined by a veth pair at MTU 1500 (addresses from
/// the benchmarking range 198.18.0.0/15), removed again on drop (which also
/// ends the processes started in them).
struct VethPath {
    /// Server and client namespace names (unique per process and path).
    ns: [String; 2],
    /// Interface name in each.
    dev: [String; 2],
    children: Vec<std::process::Child>,
}

const SERVER_IP: &str = "198.18.0.1";

impl VethPath {
    /// None (after saying why) when not root or a tool is missing.
    fn new() -> Option<VethPath> {
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !(root && have("ip") && have("tcpdump")) {
            common::skip("needs root, ip and tcpdump");
            return None;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!("{}{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let path = VethPath {
            ns: [format!("chatctl-capS-{id}"), format!("chatctl-capC-{id}")],
            dev: [format!("vcs{id}"), format!("vcc{id}")],
            children: Vec::new(),
        };
        let [s, c] = &path.ns;
        let [ds, dc] = &path.dev;
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", s],
            vec!["netns", "add", c],
            vec!["link", "add", ds, "netns", s, "type", "veth", "peer", "name", dc, "netns", c],
            vec!["-n", s, "addr", "add", "198.18.0.1/30", "dev", ds],
            vec!["-n", c, "addr", "add", "198.18.0.2/30", "dev", dc],
            vec!["-n", s, "link", "set", ds, "mtu", "1500", "up"],
            vec!["-n", c, "link", "set", dc, "mtu", "1500", "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
            vec!["-n", c, "link", "set", "lo", "up"],
        ];
        for step in steps {
            let o = Command::new("ip").args(&step).output().unwrap();
            if !o.status.success() {
                common::skip(&format!("ip {}: {}", step.join(" "), String::from_utf8_lossy(&o.stderr).trim()));
                return None; // (drop removes what was made)
            }
        }
        Some(path)
    }

    /// `cmd` run inside namespace `side` (0: server, 1: client).
    fn exec(&self, side: usize, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns[side]]).arg(program);
        c
    }

    /// Starts tcpdump on side `side`'s veth end, writing `pcap`; returns when it listens.
    fn tcpdump(&mut self, side: usize, pcap: &Path) -> usize {
        let mut dump = self
            .exec(side, Path::new("tcpdump"))
            .args(["-i", &self.dev[side], "-U", "--immediate-mode", "-B", "65536", "-s", "0", "-w"])
            .arg(pcap)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(dump.stderr.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "tcpdump: {line}");
        self.children.push(dump);
        self.children.len() - 1
    }

    /// Ends child `i` with SIGINT (tcpdump then writes out what it holds).
    fn interrupt(&mut self, i: usize) {
        let _ = Command::new("kill").args(["-INT", &self.children[i].id().to_string()]).status();
        let _ = self.children[i].wait();
    }
}

impl Drop for VethPath {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// Fast downloads on a real 1500-byte path are sent with GSO, and
/// tcpdump on either end sees super-packets (one captured UDP packet of many
/// 1,452-byte datagrams). The real `chatctl serve` and `chatctl fetch`, in two
/// namespaces joined by a veth pair, download a 2 MiB file in fast mode and
/// another over TCP; the captures made at the server's and at the client's
/// end both decode to the two transfers, extracted byte for byte.
#[test]
fn real_fast_and_tcp_downloads_over_veth_captured_at_either_end() {
    let Some(mut net) = VethPath::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let fast_file = content(2 << 20, 7);
    let tcp_file = content(1_000_003, 8);
    std::fs::write(share.join("f.bin"), &fast_file).unwrap();
    std::fs::write(share.join("t.bin"), &tcp_file).unwrap();
    let pcaps = [dir.path().join("server.pcap"), dir.path().join("client.pcap")];
    let dumps = [net.tcpdump(0, &pcaps[0]), net.tcpdump(1, &pcaps[1])];
    let chatctl = Path::new(env!("CARGO_BIN_EXE_chatctl"));
    let listen = format!("{SERVER_IP}:13337");
    let server = net
        .exec(0, chatctl)
        .args(["serve", "--listen", &listen, "--ports", "0", "--files"])
        .arg(&share)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    net.children.push(server);
    let got = dir.path().join("got");
    std::fs::create_dir(&got).unwrap();
    for (name, how) in [("f.bin", "--udp"), ("t.bin", "--tcp")] {
        // The server may still be starting: try again for a few seconds.
        let mut tries = 0;
        loop {
            let o = net
                .exec(1, chatctl)
                .args(["-q", "-s", &listen, "-n", "alice", "fetch", how, name, "-o"])
                .arg(got.join(name))
                .output()
                .unwrap();
            if o.status.success() {
                break;
            }
            tries += 1;
            assert!(tries < 50, "fetch {how} {name}: {}", String::from_utf8_lossy(&o.stderr));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(std::fs::read(got.join("f.bin")).unwrap() == fast_file);
    std::thread::sleep(Duration::from_millis(300));
    net.interrupt(dumps[0]);
    net.interrupt(dumps[1]);
    for (side, pcap) in ["server", "client"].iter().zip(&pcaps) {
        if let Some(keep) = std::env::var_os("CHATCTL_KEEP_PCAP") {
            std::fs::copy(pcap, Path::new(&keep).join(format!("{side}.pcap"))).unwrap();
        }
        let supers = super_packets(pcap);
        let out = dir.path().join(format!("extract-{side}"));
        let o = Command::new(chatctl)
            .args(["capture-decode", "--json", "--summary", "--extract"])
            .arg(&out)
            .arg(pcap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{side}: {}", String::from_utf8_lossy(&o.stderr));
        // The summary, then one object per file extracted.
        let stdout = String::from_utf8(o.stdout).unwrap();
        let summary: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        assert_eq!(stdout.lines().skip(1).filter(|l| l.contains(r#""type":"written""#)).count(), 2, "{stdout}");
        let t = summary["transfers"].as_array().unwrap();
        println!("{side} end: {supers} super-packets captured; {t:?}");
        if supers == 0 {
            println!("note: this kernel showed tcpdump no GSO/GRO super-packets at the {side} end");
        }
        assert_eq!(t.len(), 2, "{side}: {summary}");
        assert_eq!((&t[0]["mode"], &t[0]["file"]), (&"fast".into(), &"f.bin".into()), "{side}");
        assert_eq!((&t[1]["mode"], &t[1]["file"]), (&"tcp".into(), &"t.bin".into()), "{side}");
        assert_eq!(t[0]["bytes"], fast_file.len(), "{side}");
        assert!(t.iter().all(|t| t["extracted"]["verified"] == true), "{side}: {t:?}");
        assert!(std::fs::read(out.join("f.bin")).unwrap() == fast_file, "{side}: fast file");
        assert!(std::fs::read(out.join("t.bin")).unwrap() == tcp_file, "{side}: TCP file");
        // PNG graphs of both, and every file written listed as JSON: the
        // fast file verified by its hash, the TCP one by its size only.
        let plots = dir.path().join(format!("plots-{side}"));
        let o = Command::new(chatctl)
            .args(["capture-decode", "--json", "--extract"])
            .arg(dir.path().join(format!("again-{side}")))
            .arg("--plot")
            .arg(plots.join("t.png"))
            .arg(pcap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{side}: {}", String::from_utf8_lossy(&o.stderr));
        let written: Vec<serde_json::Value> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|l| l["type"] == "written")
            .collect();
        let state = |what: &str, mode: &str| {
            written.iter().find(|w| w["what"] == what && w["mode"] == mode).unwrap_or_else(|| panic!("{written:?}"))
        };
        assert_eq!(state("extracted", "fast")["state"], "verified", "{side}");
        assert_eq!(state("extracted", "tcp")["state"], "size matches", "{side}");
        for mode in ["fast", "tcp"] {
            let path = state("plot", mode)["path"].as_str().unwrap().to_string();
            let png = std::fs::read(&path).unwrap();
            assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "{side} {mode}: {path}");
        }
    }
}

/// How many captured UDP packets carry more than 1,500 bytes (GSO/GRO
/// super-packets: the path's MTU cannot carry them as one).
fn super_packets(pcap: &Path) -> u64 {
    use chatctl::capture::{CaptureReader, net};
    let mut r = CaptureReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let mut n = 0;
    while r
        .next_packet(|p| {
            let udp = net::link_payload(p.linktype, p.data).and_then(net::ip).ok().filter(|ip| ip.proto == 17);
            n += u64::from(udp.is_some_and(|ip| ip.payload.len() > 1500));
        })
        .unwrap()
        .is_some()
    {}
    n
}
