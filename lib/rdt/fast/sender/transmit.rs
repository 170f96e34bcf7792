//! The fast sender's transmit side: what leaves next (CHALLENGE, STATS,
//! ACK-FREQUENCY, DATA and path-MTU probes, DONE, ABORT), single or in GSO
//! batches, within the window, the pacing and the anti-amplification budget.

use std::time::Instant;

use super::*;

impl Sender {
    /// The pacing horizon, if pacing holds data back: when the next burst
    /// may leave (a burst at a time, not a datagram).
    pub fn pacing_delay(&self, now: Instant) -> Option<Instant> {
        self.path.pacer.next_send(now, &self.path.pacing())
    }

    /// Writes the next datagram to send into `out`; `false` when there is
    /// nothing to send now (see [`Sender::poll_timeout`] and [`Sender::pacing_delay`]).
    pub fn poll_transmit(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>) -> bool {
        self.batchable = false;
        self.build(now, src, out)
    }

    /// Writes into `out` what may leave now in one send: a single
    /// datagram, or up to `max_segments` DATA datagrams of one size (the
    /// last may be shorter), at most `GSO_MAX_BYTES`, for one segmented
    /// (GSO) send. Path-MTU probes and control datagrams always go alone.
    /// `None` when there is nothing to send now.
    pub fn poll_batch(
        &mut self,
        now: Instant,
        src: &mut dyn Source,
        out: &mut Vec<u8>,
        max_segments: usize,
    ) -> Option<GsoBatch> {
        if !self.poll_transmit(now, src, out) {
            return None;
        }
        let segment = out.len();
        let mut count = 1;
        // More DATA of this size, built in place after the first, while no
        // control datagram is due (it goes in the next call).
        let payload = (segment - DATA_OVERHEAD) as u64;
        while self.batchable
            && count < max_segments
            && out.len() + segment <= GSO_MAX_BYTES
            && self.state == State::Sending
            && !self.control_due(now)
        {
            let before = out.len();
            if !self.poll_data(now, src, out, Some(payload)) {
                break;
            }
            count += 1;
            if out.len() - before < segment {
                break; // a short datagram ends the batch
            }
        }
        Some(GsoBatch { count, segment: (count > 1).then_some(segment) })
    }

    /// Whether STATS or ACK-FREQUENCY should go before more DATA.
    fn control_due(&self, now: Instant) -> bool {
        self.control.due(now, self.validation.is_validated())
    }

    fn build(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::Validating => {
                if self.validation.challenge_due() {
                    Frame::Challenge { cookie: self.validation.cookie(), size: self.size }.encode(out);
                    if self.validation.may_send(out.len()) {
                        self.validation.on_challenge_sent(now);
                        self.note_sent(out.len());
                        self.timers.set(SendTimer::Loss, now + self.rto());
                        return true;
                    }
                }
                false
            }
            State::Sending => {
                // STATS only once validated (so never within the
                // anti-amplification budget), at most every STATS_INTERVAL.
                if self.validation.is_validated() && self.control.stats_due(now) {
                    self.control.on_stats_sent(now);
                    Frame::Stats(self.sender_stats()).encode(out);
                    self.note_sent(out.len());
                    return true;
                }
                // ACK-FREQUENCY with each STATS while the threshold differs
                // from the receiver's default (or from what was last asked).
                let threshold = ack_threshold(self.path.cc.window(), self.path.mtu.payload());
                if let Some((seq, threshold)) = self.control.take_ack_frequency(threshold) {
                    let max_delay_us = u32::try_from(self.cfg.max_ack_delay.as_micros()).unwrap_or(u32::MAX);
                    Frame::AckFrequency { seq, threshold, max_delay_us }.encode(out);
                    self.note_sent(out.len());
                    return true;
                }
                self.poll_data(now, src, out, None)
            }
            State::Closing => {
                if !self.done_due {
                    return false;
                }
                if self.hash.is_none() {
                    if let Err((offset, source)) = self.hasher.feed_to(self.size, src) {
                        self.fail_read(src.abort_reason(), offset, source);
                        return false;
                    }
                    self.hash = Some(self.hasher.finalize());
                }
                let hash = self.hash.unwrap_or_default();
                Frame::Done { size: self.size, hash }.encode(out);
                self.done_due = false;
                self.note_sent(out.len());
                self.timers.set(SendTimer::Loss, now + self.rto());
                true
            }
            State::Done { .. } | State::Failed => self.poll_abort(out),
        }
    }

    /// Writes one of the ABORTs due, if any (within the anti-amplification
    /// budget before validation).
    fn poll_abort(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.aborts.encode_next(self.validation.cookie(), out) {
            return false;
        }
        if !self.validation.is_validated() && !self.validation.may_send(out.len()) {
            self.aborts.cancel();
            return false;
        }
        self.aborts.on_sent();
        self.note_sent(out.len());
        true
    }

    /// A read of the file failed: the transfer fails with the read error,
    /// and the receiver hears why at once (ABORT for `reason`, the
    /// source's verdict, with the error's text).
    fn fail_read(&mut self, reason: AbortReason, offset: u64, source: std::io::Error) {
        let full = source.to_string();
        let said = reason.to_string();
        let text = full.strip_prefix(said.as_str()).map_or(full.as_str(), |t| t.trim_start_matches(": "));
        let text = crate::rdt::fast::abort_text(text).to_owned();
        self.fail(SendError::Read { offset, source });
        self.aborts.start(reason, text);
    }

    /// Writes the next DATA datagram into `out` (cleared first) or, with
    /// `append` (a batch being built), after what `out` holds, carrying at
    /// most `append`'s file bytes and never a path-MTU probe.
    fn poll_data(&mut self, now: Instant, src: &mut dyn Source, out: &mut Vec<u8>, append: Option<u64>) -> bool {
        let mss = append.unwrap_or(self.path.mtu.payload()).min(self.path.mtu.payload());
        let in_flight = self.sent.bytes_in_flight();
        if in_flight + mss > self.path.cc.window() && in_flight > 0 {
            return false;
        }
        let pacing = self.path.pacing();
        if let Err(next) = self.path.pacer.poll_send(now, mss as f64, &pacing) {
            self.timers.set_or_stop(SendTimer::Pace, next);
            return false;
        }
        self.timers.stop(SendTimer::Pace);
        // Retransmissions first, skipping what was acknowledged meanwhile.
        let (range, retx) = match self.sent.next_retransmission(mss) {
            Some(r) => (r, true),
            None => {
                let len = if append.is_some() {
                    mss
                } else {
                    self.path.mtu.probe_payload(self.path.rtt.has_sample(), self.path.cc.window()).unwrap_or(mss)
                };
                let end = (self.next_offset + len).min(self.size).min(self.max_data);
                if end <= self.next_offset {
                    return false;
                }
                (self.next_offset..end, false)
            }
        };
        let probe = !retx && self.path.mtu.is_probe(range.end - range.start);
        if probe {
            self.path.mtu.on_probe_sent();
        }
        self.batchable = !probe;
        // The hash lags the new data by up to HASH_RUN and catches up
        // before the source is read further (so what it needs is still in
        // the source's memory): large runs, the hash's fast path.
        if !retx && self.hasher.hashed_to() + HASH_RUN <= range.start {
            let r = self.hasher.feed_runs_to(range.start, src);
            if let Err((offset, source)) = r {
                self.fail_read(src.abort_reason(), offset, source);
                return false;
            }
        }
        let len = (range.end - range.start) as usize;
        let pn = self.sent.next_pn();
        if append.is_none() {
            out.clear();
        }
        let at = out.len();
        let r = crate::rdt::fast::append_data_from(out, pn, range.start, len, src);
        if let Err(source) = r {
            self.fail_read(src.abort_reason(), range.start, source);
            return false;
        }
        if !retx {
            self.hasher.feed_next(
                range.start,
                &out[at + crate::rdt::fast::DATA_HEADER..at + crate::rdt::fast::DATA_HEADER + len],
            );
        }
        if !retx {
            self.next_offset = range.end;
        } else {
            self.stats.bytes_retransmitted += len as u64;
        }
        let app_limited = !self.sent.has_lost() && self.next_offset >= self.size.min(self.max_data);
        self.sent.on_sent(now, range.clone(), probe, retx, app_limited);
        self.path.pacer.spend(len as f64);
        self.stats.bytes_sent += len as u64;
        self.event(|| Event::Send { pn, offset: range.start, len: len as u64, retransmission: retx });
        self.note_sent(out.len() - at);
        if !self.timers.is_set(SendTimer::Loss) {
            self.timers.set(SendTimer::Loss, now + self.rto());
        }
        true
    }
}
