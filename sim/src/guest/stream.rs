//! Streaming over a vif (`specs/scenario.md` §6.1, `net.rate` on a non-`io` kind): next to
//! its own workload, the vCPU sends a message of `tx_size` bytes to the peer every `rate`
//! gap without blocking, and the peer answers each with `rx_size` bytes (at least a
//! minimum-size frame: the acknowledgement a TCP stream gets). The records are those of
//! the `io` kind (`specs/metrics.md` §2.1): sent `t_s`, the answer reaches netfront `t_c`,
//! the guest sees it `t_g`; so the vif's throughput, latency percentiles and drops are in
//! the domain's `io` metrics like any vif's.
//!
//! The gap is wall time: the sender is an application thread whose timer fires every
//! `rate` (a paced sender, as `iperf -b` or a media stream), so the send instants do not
//! stretch when the vCPU shares its pCPU. A send is made by the vCPU, so it happens when
//! the vCPU runs at or after its instant: a running vCPU's demand is cut at the instant
//! (`GuestVcpu`), and a blocked one is woken by the timer (for the workload itself that
//! wake is spurious). Sends due while the vCPU waited for a pCPU go out together when it
//! runs, at most [`BURST_SENDS_MAX`]; beyond that the timer skips ahead (the late
//! instants are counted in `late_send_count`, never sent).
//!
//! netfront never blocks the sender: a frame that finds netfront's queue full is dropped
//! and counted as `drop_ring_full_count`, as a full qdisc drops it on Linux (netfront's
//! `netif_tx_stop_queue` hands the backlog to the qdisc, whose limit xensim's netfront
//! queue models).
//!
//! Streams (`workload.<domain>.v<index>[.mix<k>].<field>`): `net.rate`, `net.tx_size`,
//! `net.rx_size`. A `mixed` entry's stream sends only during that entry's spans
//! (`guest/senders.rs`).
//!
//! # Invariants
//! - `outstanding` holds at most [`OUTSTANDING_MAX`] messages; when it is full the oldest
//!   is forgotten (`unanswered_count`), so a partitioned peer cannot grow it.
//! - `next_send_ns` only moves forward.
//!
//! Each frame sent costs the vCPU the guest's per-frame CPU for its mode (the `io` kind's
//! `io.netfront_pkt_ns` row, `guest/modes.rs`), added to its run (`guest/senders.rs`).
//!
//! xensim leaves out on purpose: retransmissions (a stream's lost message is gone, as
//! with UDP; its frames count as drops).

use std::collections::BTreeMap;

use hypervisor_model::io::vif::{NetPacket, PacketKind};

use crate::guest::io_log::IoLog;
use crate::guest::net::{
    message_frames, push_message_frames, AnswerLog, FRAME_BYTES_MAX, MESSAGE_BYTES_MAX,
};
use crate::guest::workload::{Drawn, FieldStreams, TAG_SEQ_MASK};
use crate::scenario::model::{Dist, NetPeer, NetWorkload};

/// Most sends one run of the vCPU makes for instants that are already past.
pub const BURST_SENDS_MAX: u32 = 64;
/// Most messages waiting for their answer.
pub const OUTSTANDING_MAX: usize = 4096;
/// Most frames one message is cut into (a bound on `to_send`).
const FRAMES_PER_MESSAGE_MAX: u64 = MESSAGE_BYTES_MAX.div_ceil(FRAME_BYTES_MAX);

/// A message waiting for its answer.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    submit_ns: u64,
    tx_bytes: u64,
    rx_bytes: u64,
}

/// The stream of one vCPU.
#[derive(Debug, Clone)]
pub(crate) struct NetStream {
    rate: Drawn,
    tx_size: Drawn,
    rx_size: Drawn,
    /// The vif's devid.
    pub(crate) devid: u32,
    /// Who answers.
    pub(crate) peer: NetPeer,
    flow: u32,
    tag_base: u64,
    next_tag: u64,
    /// When the next message is due, ns.
    pub(crate) next_send_ns: u64,
    outstanding: BTreeMap<u64, Outstanding>,
    to_send: Vec<NetPacket>,
    answers: AnswerLog,
    /// Send instants skipped because the vCPU was too late for them.
    pub(crate) late_send_count: u64,
    /// Messages forgotten unanswered (the outstanding table was full).
    pub(crate) unanswered_count: u64,
}

impl NetStream {
    /// The stream of vCPU `vcpu_index`, whose first message is due one `rate` gap after
    /// `now_ns`.
    pub(crate) fn new(
        net: &NetWorkload,
        rate: Dist,
        streams: &FieldStreams<'_>,
        vcpu_index: u32,
        now_ns: u64,
    ) -> Self {
        let mut stream = Self {
            rate: Drawn::new(rate, streams, "net.rate"),
            tx_size: Drawn::new(net.tx_size, streams, "net.tx_size"),
            rx_size: Drawn::new(net.rx_size, streams, "net.rx_size"),
            devid: net.vif,
            peer: net.peer.clone(),
            flow: vcpu_index,
            tag_base: streams.tag_base(),
            next_tag: 0,
            next_send_ns: now_ns,
            outstanding: BTreeMap::new(),
            to_send: Vec::new(),
            answers: AnswerLog::default(),
            late_send_count: 0,
            unanswered_count: 0,
        };
        stream.next_send_ns = now_ns.saturating_add(stream.rate.draw_positive());
        stream
    }

    /// Starts the schedule again at `now_ns` (a `mixed` entry's stream, picked): the next
    /// message is due one gap later.
    pub(crate) fn restart(&mut self, now_ns: u64) {
        self.next_send_ns = now_ns.saturating_add(self.rate.draw_positive());
    }

    /// The vCPU runs at `now_ns`: sends every message due by then and before `until_ns`
    /// (at most [`BURST_SENDS_MAX`]; later instants are skipped and counted). Returns the
    /// frames sent.
    pub(crate) fn send_due(&mut self, now_ns: u64, until_ns: u64) -> u64 {
        let mut sent = 0;
        let mut frames = 0;
        while self.next_send_ns <= now_ns && self.next_send_ns < until_ns {
            if sent == BURST_SENDS_MAX {
                self.late_send_count += 1;
            } else {
                frames += self.send_one(now_ns);
                sent += 1;
            }
            let gap_ns = self.rate.draw_positive();
            self.next_send_ns = self.next_send_ns.saturating_add(gap_ns);
        }
        debug_assert!(self.next_send_ns > now_ns || self.next_send_ns >= until_ns);
        frames
    }

    /// Sends one message; returns its frames.
    fn send_one(&mut self, now_ns: u64) -> u64 {
        let tx_bytes = self.tx_size.draw().clamp(1, MESSAGE_BYTES_MAX);
        let reply = self.rx_size.draw().min(MESSAGE_BYTES_MAX);
        let tag = self.tag_base | (self.next_tag & TAG_SEQ_MASK);
        self.next_tag += 1;
        if self.outstanding.len() >= OUTSTANDING_MAX {
            self.outstanding.pop_first();
            self.unanswered_count += 1;
        }
        let o = Outstanding {
            submit_ns: now_ns,
            tx_bytes,
            rx_bytes: 0,
        };
        self.outstanding.insert(tag, o);
        let frames = message_frames(tx_bytes);
        debug_assert!(frames <= FRAMES_PER_MESSAGE_MAX);
        push_message_frames(
            &mut self.to_send,
            (self.flow, tag),
            tx_bytes,
            u32::try_from(reply).unwrap_or(u32::MAX),
        );
        frames
    }

    /// The frames to send now (taken once; the run loop fills in the MACs).
    pub(crate) fn take_frames(&mut self) -> Vec<NetPacket> {
        std::mem::take(&mut self.to_send)
    }

    /// netfront received `packet` at `now_ns` (`running`: the vCPU runs now): the last
    /// frame of an answer completes its message.
    pub(crate) fn received(&mut self, packet: &NetPacket, now_ns: u64, running: bool) {
        if packet.kind == PacketKind::Request {
            return;
        }
        let Some(o) = self.outstanding.get_mut(&packet.tag) else {
            return;
        };
        o.rx_bytes += u64::from(packet.bytes);
        if packet.kind != PacketKind::Response {
            return;
        }
        let Some(o) = self.outstanding.remove(&packet.tag) else {
            return;
        };
        self.answers.answered(
            self.devid,
            o.submit_ns,
            o.tx_bytes + o.rx_bytes,
            now_ns,
            running,
        );
    }

    /// The vCPU runs again at `now_ns`: the guest sees its answers.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        self.answers.on_run_start(now_ns);
    }

    /// The completed messages so far.
    #[cfg(test)]
    pub(crate) fn log(&self) -> &IoLog {
        self.answers.log()
    }

    /// Takes the completed messages so far.
    pub(crate) fn take_log(&mut self) -> IoLog {
        self.answers.take_log()
    }
}

#[cfg(test)]
mod tests {
    use super::{NetStream, BURST_SENDS_MAX};
    use crate::guest::workload::FieldStreams;
    use crate::rng::RngStreams;
    use crate::scenario::model::{Dist, NetPeer, NetWorkload};
    use hypervisor_model::io::vif::{NetPacket, PacketKind};

    const US: u64 = 1_000;

    fn stream(tx_bytes: u64, gap_ns: u64) -> NetStream {
        let streams = RngStreams::new(1);
        let fields = FieldStreams::new(&streams, "workload.g.v0");
        let net = NetWorkload {
            vif: 0,
            peer: NetPeer::Dom0,
            tx_size: Dist::Const(tx_bytes),
            rx_size: Dist::Const(0),
        };
        NetStream::new(&net, Dist::Const(gap_ns), &fields, 0, 0)
    }

    fn ack(tag: u64) -> NetPacket {
        NetPacket {
            dst: [0; 6],
            src: [0; 6],
            flow: 0,
            seq: 1,
            kind: PacketKind::Response,
            tag,
            reply_bytes: 0,
            bytes: 60,
        }
    }

    #[test]
    fn nothing_is_sent_before_the_first_gap() {
        // A 100 us gap: at 99 us nothing is due.
        let mut s = stream(1000, 100 * US);
        s.send_due(99 * US, u64::MAX);
        assert!(s.take_frames().is_empty());
        assert_eq!(s.next_send_ns, 100 * US);
    }

    #[test]
    fn a_late_run_sends_every_due_message_at_once() {
        // Three instants (100, 200, 300 us) are due at 350 us: three one-frame messages.
        let mut s = stream(1000, 100 * US);
        s.send_due(350 * US, u64::MAX);
        let frames = s.take_frames();
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.kind == PacketKind::Request));
        assert_eq!(s.next_send_ns, 400 * US);
    }

    #[test]
    fn a_message_above_the_mtu_is_cut_into_frames() {
        // 4000 bytes at 1514 per frame: two full frames and the request frame.
        let mut s = stream(4000, 100 * US);
        s.send_due(100 * US, u64::MAX);
        let kinds: Vec<PacketKind> = s.take_frames().iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [PacketKind::Stream, PacketKind::Stream, PacketKind::Request]
        );
    }

    #[test]
    fn a_burst_beyond_the_bound_skips_the_late_instants() {
        // 100 instants due at once: 64 are sent, 36 are skipped and counted.
        let mut s = stream(100, US);
        s.send_due(100 * US, u64::MAX);
        assert_eq!(s.take_frames().len(), BURST_SENDS_MAX as usize);
        assert_eq!(s.late_send_count, 100 - u64::from(BURST_SENDS_MAX));
    }

    #[test]
    fn the_answer_records_the_round_trip() {
        // Sent at 100 us, acknowledged at 130 us while the vCPU runs.
        let mut s = stream(1000, 100 * US);
        s.send_due(100 * US, u64::MAX);
        let tag = s.take_frames()[0].tag;
        s.received(&ack(tag), 130 * US, true);
        let (_, record) = s.log().samples().next().expect("one record");
        assert_eq!(record.ring_done_ns - record.submit_ns, 30 * US);
        assert_eq!(record.guest_done_ns(), Some(130 * US));
    }
}
