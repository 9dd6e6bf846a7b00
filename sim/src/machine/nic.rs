//! A host's network side behind netback: dom0's bridge (`xenbr0`) with its forwarding
//! table (MAC → vif), the host's own stack (dom0's address on the bridge) and the external
//! peer behind the physical NIC, both of which answer requests; the NIC's link to the
//! fabric is `fabric.rs`.
//!
//! # Invariants
//! - A MAC is in at most one bridge's table (the run's directory checks it at insertion).
//! - A responder's answers on one (peer MAC, flow) carry increasing sequence numbers.
//!
//! xensim differs: the bridge learns a vif's MAC when the vif connects (Linux's bridge
//! learns it from the first frame's source address); dom0's stack and the external peer
//! answer at once (their CPU is not modelled; the external peer's distance is its link).

use std::collections::BTreeMap;

use hypervisor_model::ids::DomId;
use hypervisor_model::io::vif::{mac_key, Mac, NetPacket, PacketKind, PACKET_BYTES_MIN};

/// Cost keys the network side reads, with their defaults (hashed into the trace header).
pub const NET_COST_DEFAULTS: &[(&str, u64)] = &[(
    "dev.nic_frame_overhead_bytes",
    super::fabric::FRAME_OVERHEAD_BYTES,
)];

/// The largest frame an answer is cut into: a 1500-byte MTU plus the Ethernet header.
pub const FRAME_BYTES_MAX: u64 = 1514;

/// dom0's own address on host `host`'s bridge (a locally administered MAC).
pub fn dom0_mac(host: u16) -> Mac {
    let [hi, lo] = host.to_be_bytes();
    [0x02, 0x58, 0x53, 0x00, hi, lo]
}

/// The external peer as seen from host `host` (behind its NIC).
pub fn external_mac(host: u16) -> Mac {
    let [hi, lo] = host.to_be_bytes();
    [0x02, 0x58, 0x53, 0xff, hi, lo]
}

/// An endpoint that answers requests: dom0's stack or the external peer.
#[derive(Debug, Clone, Default)]
pub struct Responder {
    /// Per (peer MAC, flow), the MAC as [`mac_key`] (two integer compares per tree
    /// step instead of a byte-array compare): the index of its counter in `last_seq`.
    flows: BTreeMap<(u64, u32), usize>,
    /// Last sequence sent per flow, by the index `flows` gives (flows are never removed).
    last_seq: Vec<u32>,
    /// By the sending domain's raw id: the flow it last asked about and its index in
    /// `last_seq`, so that a sender's next request skips the tree search. A hint only: it
    /// is used when its flow is the request's (domain ids of several hosts may share an
    /// entry, which then just misses).
    recent: Vec<Option<((u64, u32), usize)>>,
}

impl Responder {
    /// The answer to `request` from `me`, cut into frames of at most [`FRAME_BYTES_MAX`]
    /// (none for a response or a stream frame): every frame but the last is a stream frame
    /// with the request's tag, the last is the response. The frames' sequence numbers are
    /// taken at once; the frames themselves are made as they are iterated (no allocation).
    pub fn answer(&mut self, me: Mac, request: &NetPacket) -> Option<AnswerFrames> {
        self.answer_from(None, me, request)
    }

    /// [`Responder::answer`] for a request sent from a vif of domain `sender` (a hint that
    /// finds its flow's counter without a tree search; the answer does not depend on it).
    pub fn answer_from(
        &mut self,
        sender: Option<DomId>,
        me: Mac,
        request: &NetPacket,
    ) -> Option<AnswerFrames> {
        if request.kind != PacketKind::Request {
            return None;
        }
        let total = u64::from(request.reply_bytes).max(u64::from(PACKET_BYTES_MIN));
        let count = total.div_ceil(FRAME_BYTES_MAX);
        let at = self.counter_of(sender, (mac_key(request.src), request.flow));
        let seq = &mut self.last_seq[at];
        let last_seq = *seq;
        // At most u32::MAX / 60 frames: the count fits (and wraps as the per-frame adds).
        *seq = seq.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
        Some(AnswerFrames {
            request: *request,
            me,
            last_seq,
            count,
            index: 0,
            left: total,
        })
    }

    /// The index in `last_seq` of flow `key` (a new counter at 0 for a new flow), through
    /// `sender`'s hint when it names that flow.
    fn counter_of(&mut self, sender: Option<DomId>, key: (u64, u32)) -> usize {
        let slot = sender.map(|dom| usize::from(dom.raw()));
        if let Some(&Some((hint, at))) = slot.and_then(|s| self.recent.get(s)) {
            if hint == key {
                debug_assert_eq!(self.flows.get(&key), Some(&at));
                return at;
            }
        }
        let next = self.last_seq.len();
        let at = *self.flows.entry(key).or_insert(next);
        if at == next {
            self.last_seq.push(0);
        }
        if let Some(s) = slot {
            if self.recent.len() <= s {
                self.recent.resize(s + 1, None);
            }
            self.recent[s] = Some((key, at));
        }
        at
    }
}

/// The frames of one answer, in order ([`Responder::answer`]).
#[derive(Debug, Clone)]
pub struct AnswerFrames {
    request: NetPacket,
    me: Mac,
    /// The sequence number before the first frame.
    last_seq: u32,
    count: u64,
    /// Frames made so far.
    index: u64,
    /// Bytes not yet in a frame.
    left: u64,
}

impl Iterator for AnswerFrames {
    type Item = NetPacket;

    fn next(&mut self) -> Option<NetPacket> {
        if self.index == self.count {
            return None;
        }
        let bytes = self.left.min(FRAME_BYTES_MAX);
        self.left -= bytes;
        self.index += 1;
        self.last_seq = self.last_seq.wrapping_add(1);
        let last = self.index == self.count;
        Some(NetPacket {
            dst: self.request.src,
            src: self.me,
            flow: self.request.flow,
            seq: self.last_seq,
            kind: if last {
                PacketKind::Response
            } else {
                PacketKind::Stream
            },
            tag: self.request.tag,
            reply_bytes: 0,
            bytes: u32::try_from(bytes).unwrap_or(0).max(PACKET_BYTES_MIN),
        })
    }
}

/// Where a frame leaving a vif goes on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// A vif on this host (dom, devid).
    LocalVif(DomId, u32),
    /// dom0's own stack.
    Dom0,
    /// Out of the NIC: to another host's vif, or to the external peer.
    Wire,
}

/// One host's bridge.
#[derive(Debug, Clone, Default)]
pub struct Bridge {
    /// Forwarding table.
    pub vifs: BTreeMap<Mac, (DomId, u32)>,
    /// dom0's stack.
    pub dom0: Responder,
}

impl Bridge {
    /// The next hop of a frame for `dst` on host `host`.
    pub fn hop(&self, host: u16, dst: Mac) -> Hop {
        if dst == dom0_mac(host) {
            return Hop::Dom0;
        }
        match self.vifs.get(&dst) {
            Some(&(dom, devid)) => Hop::LocalVif(dom, devid),
            None => Hop::Wire,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(reply_bytes: u32) -> NetPacket {
        NetPacket {
            dst: dom0_mac(0),
            src: [0, 0x16, 0x3e, 0, 0, 1],
            flow: 4,
            seq: 10,
            kind: PacketKind::Request,
            tag: 77,
            reply_bytes,
            bytes: 100,
        }
    }

    #[test]
    fn answers_echo_the_tag_and_count_their_own_sequence() {
        let mut r = Responder::default();
        let mut first = r.answer(dom0_mac(0), &request(0)).expect("answered");
        let mut second = r.answer(dom0_mac(0), &request(0)).expect("answered");
        let (first, second) = (
            first.next().expect("a frame"),
            second.next().expect("a frame"),
        );
        assert_eq!((first.tag, first.seq, second.seq), (77, 1, 2));
        // A zero-byte answer is padded to the 60-byte minimum frame.
        assert_eq!(first.bytes, 60);
    }

    #[test]
    fn a_large_answer_is_cut_at_the_mtu() {
        // 4000 bytes: 1514 + 1514 + 972, the last one the response.
        let mut r = Responder::default();
        let frames: Vec<NetPacket> = r
            .answer(dom0_mac(0), &request(4000))
            .expect("answered")
            .collect();
        let sizes: Vec<u32> = frames.iter().map(|f| f.bytes).collect();
        assert_eq!(sizes, [1514, 1514, 972]);
        assert_eq!(frames[2].kind, PacketKind::Response);
        assert_eq!(frames[0].kind, PacketKind::Stream);
        let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        // The next answer on the flow goes on from the last frame's number.
        let next = r.answer(dom0_mac(0), &request(0)).expect("answered").next();
        assert_eq!(next.map(|f| f.seq), Some(4));
    }

    /// The straightforward version the hinted lookup must match: one tree of the last
    /// sequence per (peer MAC, flow).
    fn reference_answer(seq: &mut BTreeMap<(u64, u32), u32>, request: &NetPacket) -> Vec<u32> {
        let total = u64::from(request.reply_bytes).max(u64::from(PACKET_BYTES_MIN));
        let count = total.div_ceil(FRAME_BYTES_MAX);
        let last = seq.entry((mac_key(request.src), request.flow)).or_insert(0);
        let first = *last;
        *last = last.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
        (1..=count)
            .map(|i| first.wrapping_add(u32::try_from(i).unwrap_or(0)))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn hinted_answers_number_frames_as_one_tree_does(
            steps in proptest::collection::vec(
                (proptest::option::of(0u16..4), 0u8..4, 0u32..3, 0u32..5000),
                0..60,
            ),
        ) {
            let mut responder = Responder::default();
            let mut reference = BTreeMap::new();
            for (sender, peer, flow, reply_bytes) in steps {
                let mut req = request(reply_bytes);
                req.src = [0, 0x16, 0x3e, 0, 0, peer];
                req.flow = flow;
                let sender = sender.and_then(DomId::new);
                let ours: Vec<u32> = responder
                    .answer_from(sender, dom0_mac(0), &req)
                    .expect("a request is answered")
                    .map(|f| f.seq)
                    .collect();
                proptest::prop_assert_eq!(ours, reference_answer(&mut reference, &req));
            }
        }
    }

    #[test]
    fn the_bridge_sends_unknown_macs_to_the_wire() {
        let bridge = Bridge::default();
        assert_eq!(bridge.hop(0, external_mac(0)), Hop::Wire);
        assert_eq!(bridge.hop(0, dom0_mac(0)), Hop::Dom0);
    }
}
