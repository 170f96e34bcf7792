//! The UDP paths of a download: the fast receiver (with its fallback to
//! classic data when the server answers the hello that way), and the
//! classic go-back-N receiver.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::target::MarkWriter;
use super::{Progress, Sink};
use crate::client::space;
use crate::rdt::classic::receiver::Receiver;
use crate::rdt::classic::{CHUNK, MAX_WINDOW};
use crate::rdt::endpoint::{self, Step};
use crate::rdt::fast::driver::{self, Expect, ReceiveReport, Tracer};
use crate::rdt::fast::{self, Stats};
use crate::rdt::udp::unspecified_for;

/// The classic go-back-N receiver, window 98 (the fast hello also reads as 98).
fn udp_receiver() -> Receiver {
    Receiver::new(MAX_WINDOW)
}

/// The fast mode: sends the fast hello and runs the fast receiver on its own
/// thread, with the sender's last figures. `Ok((true, _))` when the server turned out classic and the classic
/// receiver did the transfer instead; `Err((reason, resumable))`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn udp_fast(
    peer: SocketAddr,
    out: std::fs::File,
    expect: Expect,
    cfg: &fast::Config,
    trace: Option<Tracer>,
    mut mark: MarkWriter,
    sink: &mut Sink,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<(bool, Option<fast::SenderStats>), (String, bool)> {
    let sock =
        UdpSocket::bind(unspecified_for(peer)).await.map_err(|e| (format!("cannot open a UDP socket: {e}"), false))?;
    let size = expect.size.unwrap_or(0);
    let (tx, mut rx) = tokio::sync::watch::channel(Stats::default());
    let t0 = Instant::now();
    let run = driver::receive_file(sock, peer, out, expect, cfg, move |s: &Stats| {
        if let Some(t) = &trace {
            t.record(t0.elapsed(), &StatsLine::new(s));
        }
        mark.update(s);
        let _ = tx.send(s.clone());
    });
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            r = &mut run => break r,
            Ok(()) = rx.changed() => {
                let s = rx.borrow_and_update().clone();
                progress(&Progress { done: s.bytes_done, size, fast: Some(s) });
            }
        }
    };
    match report {
        Ok(ReceiveReport::Fast { size: got, stats, .. }) => {
            sink.written = got;
            sink.last = super::last_byte(&sink.temp, got).await;
            let sender = stats.sender.clone();
            progress(&Progress { done: got, size, fast: Some(stats) });
            Ok((false, sender))
        }
        Ok(ReceiveReport::Classic { first, rest, sock }) => {
            // Classic data, from the start: whatever a resume kept is void.
            let restart = async {
                sink.file.get_mut().set_len(0).await?;
                tokio::io::AsyncSeekExt::rewind(&mut sink.file).await?;
                UdpSocket::from_std(sock)
            };
            let sock = restart.await.map_err(|e| (e.to_string(), false))?;
            sink.written = 0;
            udp_classic(
                sock,
                peer,
                std::iter::once(first).chain(rest).collect(),
                size,
                cfg.idle_timeout,
                sink,
                progress,
            )
            .await
            .map_err(|e| (e, false))?;
            Ok((true, None))
        }
        Err(e) => Err(fast_failure(&e, expect.resume_from, rx.borrow().bytes_done, &sink.temp, cfg)),
    }
}

/// Why a fast download failed, and whether its partial file is worth
/// keeping for `--continue` (`held` bytes arrived, from `resume_from`).
fn fast_failure(e: &driver::RdtError, resume_from: u64, held: u64, temp: &Path, cfg: &fast::Config) -> (String, bool) {
    // A file whose hash differs, or that changed or went on the server, is
    // not worth resuming: start afresh next time.
    use fast::receiver::RecvError;
    let bad = match e {
        driver::RdtError::Recv(RecvError::HashMismatch) => true,
        driver::RdtError::Recv(RecvError::PeerAborted(a)) => {
            matches!(a.reason, fast::AbortReason::FileChanged | fast::AbortReason::FileUnreadable)
        }
        _ => false,
    };
    if matches!(e, driver::RdtError::Recv(RecvError::HashMismatch)) && resume_from > 0 {
        return (format!("{} (the whole-file hash differs)", space::CHANGED_SINCE_PARTIAL), false);
    }
    if space::disk_full(e) {
        let (keep, note) = space::after_disk_full(temp, cfg.receive_window);
        return (format!("{}{note}", crate::client::error_chain(e)), keep);
    }
    (crate::client::error_chain(e), !bad && held > resume_from)
}

/// One `--trace` line of a fast download (receiver side).
#[derive(serde::Serialize)]
struct StatsLine {
    event: &'static str,
    bytes: u64,
    cwnd_estimate: u64,
    rtt_us: u64,
    holes: u64,
    late_bytes: u64,
    acks_sent: u64,
}

impl StatsLine {
    fn new(s: &Stats) -> Self {
        Self {
            event: "stats",
            bytes: s.bytes_done,
            cwnd_estimate: s.cwnd,
            rtt_us: s.srtt.as_micros() as u64,
            holes: s.packets_lost,
            late_bytes: s.bytes_retransmitted,
            acks_sent: s.datagrams_sent,
        }
    }
}

/// What one step of the classic receiver delivered. It delivers in order,
/// so the bytes are gathered here and then written to the file with
/// tokio's (asynchronous) file.
#[derive(Default)]
struct Delivered(Vec<u8>);

impl endpoint::Sink for Delivered {
    fn write_at(&mut self, _: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn read_at(&mut self, _: u64, _: &mut [u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("the classic receiver never reads back"))
    }
}

/// The classic receiver on `sock`; `first` holds classic datagrams that already arrived (after a fast hello), in order.
///
/// The machine runs on [`endpoint::step`] like every other transfer: it
/// repeats its hello until data comes, and queues one ACK per datagram and
/// three copies of the final one.
pub(super) async fn udp_classic(
    sock: UdpSocket,
    peer: SocketAddr,
    first: Vec<Vec<u8>>,
    size: u64,
    timeout: Duration,
    sink: &mut Sink,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<(), String> {
    let mut rx = udp_receiver();
    let mut delivered = Delivered::default();
    let mut incoming = first;
    let (mut out, mut acks) = (Vec::new(), Vec::<Vec<u8>>::new());
    let mut buf = vec![0u8; CHUNK + 64];
    let mut last_data = tokio::time::Instant::now();
    let mut got_data = false;
    loop {
        let step = endpoint::step(
            &mut rx,
            Instant::now(),
            &mut delivered,
            endpoint::drain(&mut incoming),
            &mut out,
            1,
            |d, _| {
                acks.push(d.to_vec());
                Ok::<_, std::convert::Infallible>(())
            },
        );
        let Ok(step) = step;
        // What arrived is in the file before it is acknowledged.
        if !delivered.0.is_empty() {
            (got_data, last_data) = (true, tokio::time::Instant::now());
            if sink.written + delivered.0.len() as u64 > size {
                return Err(format!("the server sent more than the announced {size} bytes"));
            }
            sink.write(&delivered.0).await.map_err(|e| space::write_failed(&e, sink.written))?;
            delivered.0.clear();
            progress(&Progress { done: sink.written, size, fast: None });
        }
        // Every ACK really goes out: `try_send_to` on the socket just handed
        // over from the fast driver fails (tokio has not seen it writable
        // yet), and the reference sender takes only the next ACK in order:
        // the transfer never recovers from a missing one. A failed send is
        // left to the sender's retransmission.
        got_data |= rx.delivered() > 0 || !acks.is_empty();
        for d in acks.drain(..) {
            let _ = sock.send_to(&d, peer).await;
        }
        let Step::Wait(wake) = step else { return Ok(()) };
        // Once data flows, --timeout bounds the time without new data, not
        // between datagrams: a classic sender that lost track (the
        // reference's, after a lost ACK) resends old packets forever.
        let deadline = last_data + timeout;
        let wake = wake.map_or(deadline, |t| tokio::time::Instant::from_std(t).min(deadline));
        match tokio::time::timeout_at(wake, sock.recv_from(&mut buf)).await {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                let what = if got_data { "no new data" } else { "no data" };
                let mut e = format!("{what} for {}", humantime::format_duration(timeout));
                if got_data {
                    e.push_str(&space::stopped_note(sink.written, size));
                }
                return Err(e);
            }
            Err(_) => {} // the hello is due again
            // ICMP port unreachable before the server binds: keep trying.
            Ok(Err(_)) if !got_data => {}
            Ok(Err(e)) => return Err(e.to_string()),
            // Only the server's transfer port may send the file.
            Ok(Ok((n, from))) if from == peer => incoming.push(buf[..n].to_vec()),
            Ok(Ok(_)) => {}
        }
    }
}
