//! The `io` workload over a vif (`specs/scenario.md` §6.1, `net` sub-table): run
//! `service`, send one request of `tx_size` bytes to the peer through netfront, block until
//! the peer's `rx_size` answer has arrived, sleep `think`, repeat; and the request records
//! the metrics are computed from (`specs/metrics.md` §2.1: sent `t_s`, the answer reaches
//! netfront `t_c`, the guest sees it `t_g`).
//!
//! Streams (`workload.<domain>.v<index>.<field>`): `service`, `think`, `tx_size`, `rx_size`.
//!
//! A request is cut into frames of at most the vif's MTU (1500 bytes of payload): every
//! frame but the last is a stream frame with the request's tag, the last one carries the
//! request and the answer size. The flow is the vCPU index; sequence numbers go up by one
//! per frame of the vCPU (stamped when the run loop takes the frames, so every sender of
//! the vCPU shares them: `GuestVcpu`). If no answer has arrived [`RTO_NS`] after the
//! request went out (a frame was lost or the fabric is partitioned), the guest sends the
//! request again (as TCP would), with new sequence numbers, and counts a retransmission.
//!
//! # Invariants
//! - At most one request is outstanding; the model is blocked while it is.
//! - Each batch's CPU demand is `service` plus `io.netfront_pkt_ns` per frame.

use hypervisor_model::io::vif::{NetPacket, PacketKind, PACKET_BYTES_MIN};

use crate::guest::io_log::{Completed, IoLog};
use crate::guest::workload::{Drawn, FieldStreams, GuestAction, GuestState, TAG_SEQ_MASK};
use crate::scenario::model::{Dist, NetPeer, NetWorkload};

/// Linux's `TCP_RTO_MIN`: the wait before a request is sent again.
pub const RTO_NS: u64 = 200_000_000;
/// Frame size for a 1500-byte MTU: payload plus the 14-byte Ethernet header.
pub const FRAME_BYTES_MAX: u64 = 1514;
/// Largest request or answer, bytes (a bound on the frames one request makes).
pub const MESSAGE_BYTES_MAX: u64 = 16 << 20;

/// The request in flight.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    tag: u64,
    submit_ns: u64,
    tx_bytes: u64,
    reply_bytes: u32,
    rx_bytes: u64,
}

/// The `io`-over-vif model of one vCPU.
#[derive(Debug, Clone)]
pub(crate) struct NetModel {
    service: Drawn,
    think: Drawn,
    tx_size: Drawn,
    rx_size: Drawn,
    /// The vif's devid.
    pub(crate) devid: u32,
    /// Who answers.
    pub(crate) peer: NetPeer,
    flow: u32,
    tag_base: u64,
    next_tag: u64,
    packet_ns: u64,
    /// The size of the next request, drawn with its `service`.
    next_tx_bytes: u64,
    demand_ns_left: u64,
    outstanding: Option<Outstanding>,
    to_send: Vec<NetPacket>,
    answers: AnswerLog,
    /// Requests sent again after [`RTO_NS`].
    pub(crate) retransmit_count: u64,
}

impl NetModel {
    pub(crate) fn new(
        service: Dist,
        think: Dist,
        net: &NetWorkload,
        streams: &FieldStreams<'_>,
        vcpu_index: u32,
    ) -> Self {
        Self {
            service: Drawn::new(service, streams, "service"),
            think: Drawn::new(think, streams, "think"),
            tx_size: Drawn::new(net.tx_size, streams, "tx_size"),
            rx_size: Drawn::new(net.rx_size, streams, "rx_size"),
            devid: net.vif,
            peer: net.peer.clone(),
            flow: vcpu_index,
            tag_base: streams.tag_base(),
            next_tag: 0,
            packet_ns: 0,
            next_tx_bytes: 0,
            demand_ns_left: 0,
            outstanding: None,
            to_send: Vec::new(),
            answers: AnswerLog::default(),
            retransmit_count: 0,
        }
    }

    pub(crate) fn start(&mut self) -> GuestState {
        self.next_request();
        GuestState::Runnable
    }

    /// Draws the next request's `service` and size; its demand includes netfront's CPU.
    fn next_request(&mut self) {
        self.next_tx_bytes = self.tx_size.draw().clamp(1, MESSAGE_BYTES_MAX);
        let netfront_ns = message_frames(self.next_tx_bytes).saturating_mul(self.packet_ns);
        self.demand_ns_left = self.service.draw().saturating_add(netfront_ns);
    }

    /// Woken: after `think` a new request; while a request is outstanding, its
    /// retransmission timer fired.
    pub(crate) fn on_wake(&mut self) {
        match self.outstanding {
            Some(o) => {
                self.demand_ns_left = message_frames(o.tx_bytes).saturating_mul(self.packet_ns)
            }
            None => self.next_request(),
        }
    }

    /// Sets netfront's CPU per frame (`io.netfront_pkt_ns`).
    pub(crate) fn set_packet_ns(&mut self, ns: u64) {
        let added = ns.saturating_sub(self.packet_ns);
        self.packet_ns = ns;
        let frames = message_frames(self.next_tx_bytes);
        self.demand_ns_left = self
            .demand_ns_left
            .saturating_add(added.saturating_mul(frames));
    }

    pub(crate) fn demand_ns_left(&self) -> u64 {
        self.demand_ns_left
    }

    pub(crate) fn account(&mut self, ran_ns: u64) {
        self.demand_ns_left = self.demand_ns_left.saturating_sub(ran_ns);
    }

    /// Service done: build the request (or its retransmission) and block on it.
    pub(crate) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        self.demand_ns_left = 0;
        let o = match self.outstanding {
            Some(o) => {
                self.retransmit_count += 1;
                o
            }
            None => {
                let tx_bytes = self.next_tx_bytes;
                let reply = self.rx_size.draw().min(MESSAGE_BYTES_MAX);
                let tag = self.tag_base | (self.next_tag & TAG_SEQ_MASK);
                self.next_tag += 1;
                let o = Outstanding {
                    tag,
                    submit_ns: now_ns,
                    tx_bytes,
                    reply_bytes: u32::try_from(reply).unwrap_or(u32::MAX),
                    rx_bytes: 0,
                };
                self.outstanding = Some(o);
                o
            }
        };
        self.build_frames(&o);
        GuestAction::BlockOnIo
    }

    fn build_frames(&mut self, o: &Outstanding) {
        push_message_frames(
            &mut self.to_send,
            (self.flow, o.tag),
            o.tx_bytes,
            o.reply_bytes,
        );
    }

    /// The frames to send now (taken once; the run loop fills in the MACs).
    pub(crate) fn take_frames(&mut self) -> Vec<NetPacket> {
        std::mem::take(&mut self.to_send)
    }

    /// Takes back the emptied buffer of a [`Self::take_frames`] for the next request (an
    /// allocation per request spared).
    pub(crate) fn reuse_frame_buffer(&mut self, buffer: Vec<NetPacket>) {
        super::reuse_buffer(&mut self.to_send, buffer);
    }

    /// When a blocked request is sent again.
    pub(crate) fn timeout_at_ns(&self, now_ns: u64) -> Option<u64> {
        self.outstanding.map(|_| now_ns.saturating_add(RTO_NS))
    }

    /// netfront received `packet` at `now_ns` (`running`: the vCPU runs now). When it
    /// completes the answer, the guest sleeps its think time: returns that wake time.
    pub(crate) fn received(
        &mut self,
        packet: &NetPacket,
        now_ns: u64,
        running: bool,
    ) -> Option<u64> {
        let o = self.outstanding.as_mut()?;
        if packet.tag != o.tag || packet.kind == PacketKind::Request {
            return None;
        }
        o.rx_bytes += u64::from(packet.bytes);
        if packet.kind != PacketKind::Response {
            return None;
        }
        let o = self.outstanding.take()?;
        self.answers.answered(
            self.devid,
            o.submit_ns,
            o.tx_bytes + o.rx_bytes,
            now_ns,
            running,
        );
        let think_ns = self.think.draw().max(1);
        Some(now_ns.saturating_add(think_ns))
    }

    /// The vCPU runs again at `now_ns`: the guest sees its answers.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        self.answers.on_run_start(now_ns);
    }

    /// The answered requests so far.
    #[cfg(test)]
    pub(crate) fn log(&self) -> &IoLog {
        self.answers.log()
    }

    /// Takes the answered requests so far.
    pub(crate) fn take_log(&mut self) -> IoLog {
        self.answers.take_log()
    }
}

/// Frames of at most [`FRAME_BYTES_MAX`] a message of `bytes` is cut into (at least one).
pub(crate) fn message_frames(bytes: u64) -> u64 {
    bytes.div_ceil(FRAME_BYTES_MAX).max(1)
}

/// Appends the frames of one message of `tx_bytes` on (flow, tag) to `out`: every frame but
/// the last is a stream frame, the last carries the request and its `reply_bytes`; their
/// sequence numbers are 0 until `GuestVcpu` stamps them.
pub(crate) fn push_message_frames(
    out: &mut Vec<NetPacket>,
    (flow, tag): (u32, u64),
    tx_bytes: u64,
    reply_bytes: u32,
) {
    let frames = message_frames(tx_bytes);
    let mut left = tx_bytes;
    for index in 0..frames {
        let bytes = left.min(FRAME_BYTES_MAX);
        left -= bytes;
        let last = index + 1 == frames;
        out.push(NetPacket {
            dst: [0; 6],
            src: [0; 6],
            flow,
            seq: 0,
            kind: if last {
                PacketKind::Request
            } else {
                PacketKind::Stream
            },
            tag,
            reply_bytes: if last { reply_bytes } else { 0 },
            bytes: u32::try_from(bytes).unwrap_or(0).max(PACKET_BYTES_MIN),
        });
    }
}

/// The answered messages of one vif, and those whose answer came while the vCPU was not
/// running (the guest sees them when it next runs): shared by the request/response model
/// and the streaming sender (`guest/stream.rs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AnswerLog {
    log: IoLog,
    /// The vif's name (`vif<devid>`) the records share, made at the first answer.
    dev: Option<(u32, std::sync::Arc<str>)>,
}

impl AnswerLog {
    /// The answer to a message of `bytes` (both ways) sent on vif `devid` at `submit_ns`
    /// reached netfront at `now_ns`.
    pub(crate) fn answered(
        &mut self,
        devid: u32,
        submit_ns: u64,
        bytes: u64,
        now_ns: u64,
        running: bool,
    ) {
        let dev = match &self.dev {
            Some((id, dev)) if *id == devid => dev,
            _ => {
                let dev: std::sync::Arc<str> = format!("vif{devid}").into();
                &self.dev.insert((devid, dev)).1
            }
        };
        let answer = Completed {
            submit_ns,
            ring_done_ns: now_ns,
            running,
            bytes,
            ok: true,
            deferred: None,
        };
        self.log.push(dev, answer);
    }

    /// The vCPU runs again at `now_ns`: the guest sees its answers.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        self.log.on_run_start(now_ns);
    }

    /// Every answered message so far.
    #[cfg(test)]
    pub(crate) fn log(&self) -> &IoLog {
        &self.log
    }

    /// Takes the answered messages so far (the run's end, or the domain's destruction).
    pub(crate) fn take_log(&mut self) -> IoLog {
        std::mem::take(&mut self.log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::RngStreams;

    fn model(tx: u64, rx: u64) -> NetModel {
        let streams = RngStreams::new(1);
        let fields = FieldStreams::new(&streams, "workload.t.v0");
        let net = NetWorkload {
            vif: 0,
            peer: NetPeer::Dom0,
            tx_size: Dist::Const(tx),
            rx_size: Dist::Const(rx),
        };
        NetModel::new(Dist::Const(1_000), Dist::Const(500), &net, &fields, 0)
    }

    fn answer(tag: u64, kind: PacketKind, bytes: u32) -> NetPacket {
        NetPacket {
            dst: [0; 6],
            src: [0; 6],
            flow: 0,
            seq: 1,
            kind,
            tag,
            reply_bytes: 0,
            bytes,
        }
    }

    #[test]
    fn a_request_is_cut_at_the_mtu_and_ends_with_the_request_frame() {
        // 4000 bytes: 1514 + 1514 + 972.
        let mut m = model(4000, 100);
        m.start();
        assert_eq!(m.on_demand_done(0), GuestAction::BlockOnIo);
        let frames = m.take_frames();
        let sizes: Vec<u32> = frames.iter().map(|f| f.bytes).collect();
        assert_eq!(sizes, [1514, 1514, 972]);
        assert_eq!(frames[2].kind, PacketKind::Request);
        assert_eq!(frames[2].reply_bytes, 100);
    }

    #[test]
    fn the_answer_completes_the_request_and_starts_think() {
        let mut m = model(100, 3000);
        m.start();
        m.on_demand_done(10);
        let tag = m.take_frames()[0].tag;
        assert_eq!(
            m.received(&answer(tag, PacketKind::Stream, 1514), 50, true),
            None
        );
        assert_eq!(
            m.received(&answer(tag, PacketKind::Response, 1486), 60, true),
            Some(560)
        );
        let (dev, sample) = m.log().samples().next().expect("one record");
        assert_eq!(dev, "vif0");
        assert_eq!(sample.bytes, 100 + 3000);
        assert_eq!(sample.ring_done_ns - sample.submit_ns, 50);
    }

    #[test]
    fn a_timeout_sends_the_same_request_again() {
        let mut m = model(100, 0);
        m.start();
        m.on_demand_done(0);
        let first = m.take_frames()[0];
        assert_eq!(m.timeout_at_ns(0), Some(RTO_NS));
        m.on_wake();
        m.on_demand_done(RTO_NS);
        let again = m.take_frames()[0];
        assert_eq!(again.tag, first.tag);
        assert_eq!(m.retransmit_count, 1);
    }

    #[test]
    fn a_reused_frame_buffer_makes_the_frames_a_fresh_one_does() {
        // Two requests each: one model gets its emptied buffer back, one does not.
        let (mut reused, mut fresh) = (model(4000, 0), model(4000, 0));
        reused.start();
        fresh.start();
        reused.on_demand_done(0);
        fresh.on_demand_done(0);
        let (first, first_fresh) = (reused.take_frames(), fresh.take_frames());
        assert_eq!(first, first_fresh);
        let capacity = first.capacity();
        reused.reuse_frame_buffer(first);
        reused.on_wake();
        fresh.on_wake();
        reused.on_demand_done(RTO_NS);
        fresh.on_demand_done(RTO_NS);
        let again = reused.take_frames();
        assert_eq!(again, fresh.take_frames());
        assert_eq!(again.capacity(), capacity);
    }
}
