//! One connected vif's data path: the TX and RX ring pages, netfront's view and pools
//! (`netfront.rs`) and netback's (`netback.rs`), the packets both ends carry in granted
//! pages, and the counters the metrics and the checker read.
//!
//! Follows Linux drivers/net/xen-netfront.c and drivers/net/xen-netback/{netback,rx}.c
//! (their data path; the XenBus handshake is `handshake.rs`); spec `xenstore-io.md` §8.1–8.3,
//! `cost-model.md` §3.2.
//!
//! A packet is an Ethernet frame whose first [`HEADER_BYTES`] bytes (destination and source
//! MAC, an ethertype, then xensim's flow, sequence, kind and tag) sit in the first page that
//! carries it; the rest of its bytes are counted, not stored.
//!
//! # Invariants
//! - Every TX id netfront has outstanding is a used `tx_shadow` slot, exactly once; a
//!   response for an id not in use stops netfront (RING-ONE-RESPONSE).
//! - RX buffer `i` is posted in ring slot `i & (nr_ents - 1)` and its response comes back in
//!   the same slot.
//! - Per (source MAC, flow), netfront receives sequence numbers in increasing order: a
//!   packet is delivered in order or counted as dropped, never duplicated (`vif.in_order`).
//! - The TX backlog holds at most [`TX_QUEUE_LEN`] packets and netback's RX queue at most
//!   [`RX_QUEUE_BYTES_MAX`] bytes; past them packets are dropped and counted.
//!
//! A vif has one or more queues ([`VifQueue`]): each a TX and RX ring pair with its own
//! pools, backlog and RX queue (netif.h "Multiple transmit and receive queues"). A frame
//! goes to the queue of its flow ([`flow_queue`]) on both ends, so a flow stays on one
//! queue and its order is checked per queue.
//!
//! xensim differs, on purpose: netfront grants its RX buffer pages once and reposts them
//! (Linux allocates and grants a fresh page per buffer); the pages are a stand-in memory
//! (`PageStore`) keyed by stand-in frames; the flow hash is FNV-1a over the two MACs (in
//! sorted order) and the flow id, not the kernel's `skb_get_hash`, but symmetric like it
//! (`__flow_hash_consistentify`), so a flow's answers come back on its queue.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::netif::{NETIF_RX_SLOT_BYTES, NETIF_TX_SLOT_BYTES};
use super::ring::{BackRing, FrontRing, RingWatch, SharedRing, RING_PAGE_BYTES};
use super::vbd::PoolPage;
use crate::grant::{GrantTables, GRANT_ENTRIES_PER_FRAME_V1};
use crate::ids::{DomId, GrantRef};

/// A MAC address.
pub type Mac = [u8; 6];

/// Bytes of xensim's frame header at the start of a packet.
pub const HEADER_BYTES: usize = 40;
/// `ETH_ZLEN`: the smallest frame netfront sends (padded).
pub const PACKET_BYTES_MIN: u32 = 60;
/// The ethertype xensim's frames carry (IEEE local experimental 1).
pub const ETHERTYPE_XENSIM: u16 = 0x88b5;
/// Linux's default `txqueuelen`: packets the qdisc holds while the TX ring is full.
pub const TX_QUEUE_LEN: usize = 1000;
/// Linux netback's `XENVIF_RX_QUEUE_BYTES` (half a ring of pages): bytes queued for a
/// frontend whose RX ring has no room before packets are dropped.
pub const RX_QUEUE_BYTES_MAX: u32 = 128 * 4096;
/// Flows (source MAC, flow id) netfront follows for the in-order check, per vif.
pub const RX_FLOWS_MAX: usize = 4096;
/// Most queues of one vif: xensim's bound (Linux caps each end at its online CPUs).
pub const VIF_QUEUES_MAX: u32 = 16;
/// Stand-in gfn of a vif's first TX pool page: `NET_GFN_BASE + slot * NET_GFNS_PER_VIF +
/// queue * NET_GFNS_PER_QUEUE`; RX buffers follow at `+ 256`.
pub const NET_GFN_BASE: u64 = 0x20_0000;
/// Stand-in gfns per queue: its TX pool and its RX buffers.
pub const NET_GFNS_PER_QUEUE: u64 = 0x200;
/// Stand-in gfns per vif.
pub const NET_GFNS_PER_VIF: u64 = NET_GFNS_PER_QUEUE * VIF_QUEUES_MAX as u64;
/// Stand-in gfn of netback's bounce page for a vif (in the backend domain).
pub const NET_BACK_GFN_BASE: u64 = 0x30_0000;
/// Ring slots of a single-page netif ring (`io.net_ring_slots`).
pub const NET_RING_SLOTS: usize = 256;
/// The same, as the ring's own index type.
pub const NET_RING_SLOTS_U32: u32 = 256;
/// One 4 KiB page, in the ring's size type.
pub const PAGE_BYTES_U32: u32 = 4096;
const _: () = assert!(NET_RING_SLOTS_U32 as usize == NET_RING_SLOTS);
const _: () = assert!(PAGE_BYTES_U32 as usize == RING_PAGE_BYTES);

const _: () = assert!(HEADER_BYTES <= PACKET_BYTES_MIN as usize);
const _: () = assert!(2 * NET_RING_SLOTS as u64 <= NET_GFNS_PER_QUEUE);
const _: () = assert!(NET_GFN_BASE + 128 * NET_GFNS_PER_VIF <= NET_BACK_GFN_BASE);

/// What a packet is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum PacketKind {
    /// A request: the peer answers with `reply_bytes`.
    Request,
    /// The answer to a request (`tag` echoed).
    Response,
    /// Streaming data: nobody answers.
    Stream,
}

impl PacketKind {
    /// Stable code.
    pub const fn code(self) -> u8 {
        match self {
            PacketKind::Request => 1,
            PacketKind::Response => 2,
            PacketKind::Stream => 3,
        }
    }

    /// The kind of a code.
    pub const fn from_code(code: u8) -> Option<PacketKind> {
        match code {
            1 => Some(PacketKind::Request),
            2 => Some(PacketKind::Response),
            3 => Some(PacketKind::Stream),
            _ => None,
        }
    }
}

/// One frame as xensim's endpoints see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NetPacket {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// Flow id (the sender's; queue selection and ordering are per flow).
    pub flow: u32,
    /// Sequence number within the flow.
    pub seq: u32,
    /// Request, response or stream.
    pub kind: PacketKind,
    /// The sender's tag (a response echoes its request's).
    pub tag: u64,
    /// Request: bytes the peer answers with.
    pub reply_bytes: u32,
    /// Frame size, bytes (`PACKET_BYTES_MIN..=65535`).
    pub bytes: u32,
}

impl NetPacket {
    /// Writes the header at the start of `page`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..6].copy_from_slice(&self.dst);
        out[6..12].copy_from_slice(&self.src);
        out[12..14].copy_from_slice(&ETHERTYPE_XENSIM.to_be_bytes());
        out[14..18].copy_from_slice(&self.flow.to_le_bytes());
        out[18..22].copy_from_slice(&self.seq.to_le_bytes());
        out[22] = self.kind.code();
        out[23] = 0;
        out[24..32].copy_from_slice(&self.tag.to_le_bytes());
        out[32..36].copy_from_slice(&self.reply_bytes.to_le_bytes());
        out[36..40].copy_from_slice(&self.bytes.to_le_bytes());
    }

    /// Reads a header; `None` if it is not one of xensim's frames (whatever a guest wrote).
    pub fn decode(raw: &[u8]) -> Option<NetPacket> {
        let raw = raw.get(..HEADER_BYTES)?;
        if u16::from_be_bytes([raw[12], raw[13]]) != ETHERTYPE_XENSIM {
            return None;
        }
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&raw[0..6]);
        src.copy_from_slice(&raw[6..12]);
        let word = |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&raw[24..32]);
        Some(NetPacket {
            dst,
            src,
            flow: word(14),
            seq: word(18),
            kind: PacketKind::from_code(raw[22])?,
            tag: u64::from_le_bytes(tag),
            reply_bytes: word(32),
            bytes: word(36),
        })
    }

    /// Data slots (pages) the frame needs on a netif ring.
    pub fn slots(&self) -> u32 {
        self.bytes.div_ceil(PAGE_BYTES_U32).max(1)
    }
}

/// `mac` as a big-endian integer, ordered as the MACs are: a tree keyed by it compares
/// two integers per step instead of two byte arrays.
pub fn mac_key(mac: Mac) -> u64 {
    let [a, b, c, d, e, f] = mac;
    // A 4-byte and a 2-byte big-endian load (the 8-byte form compiles to byte shifts).
    (u64::from(u32::from_be_bytes([a, b, c, d])) << 16) | u64::from(u16::from_be_bytes([e, f]))
}

/// Parses `xx:xx:xx:xx:xx:xx`.
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Counters of one vif (both ends), read by the metrics and tests.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VifCounters {
    /// Packets netfront pushed onto the TX ring.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Packets netback forwarded to the bridge.
    pub tx_forwarded: u64,
    /// TX packets netback answered with `NETIF_RSP_ERROR`.
    pub tx_errors: u64,
    /// Packets dropped because netfront's TX queue was full.
    pub tx_queue_drops: u64,
    /// TX request pushes that notified netback / that the event index let netfront skip.
    pub tx_notify_count: u64,
    /// As above, skipped.
    pub tx_notify_suppressed: u64,
    /// Packets netfront received.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Packets netback dropped because the frontend's RX ring and queue were full.
    pub rx_ring_drops: u64,
    /// RX packets that came back with an error status (a bogus buffer grant).
    pub rx_errors: u64,
    /// RX response pushes that notified netfront / that were skipped.
    pub rx_notify_count: u64,
    /// As above, skipped.
    pub rx_notify_suppressed: u64,
    /// Packets received out of order or twice in their flow (must stay 0).
    pub rx_order_violations: u64,
}

/// The fixed parameters both ends agreed on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VifParams {
    /// The guest.
    pub front_dom: DomId,
    /// The backend domain (dom0 or a driver domain).
    pub back_dom: DomId,
    /// The device id (`handle`).
    pub devid: u32,
    /// The frontend's MAC.
    pub mac: Mac,
    /// The device's slot among its domain's vifs (its stand-in gfn range).
    pub slot: u32,
}

#[cfg(test)]
impl VifParams {
    /// The tests' vif: vif 0 of domain 1 on dom0, MAC 00:16:3e:00:00:01, slot 0.
    pub(crate) fn for_tests() -> VifParams {
        VifParams {
            front_dom: DomId::new(1).expect("d1"),
            back_dom: DomId::DOM0,
            devid: 0,
            mac: [0, 0x16, 0x3e, 0, 0, 1],
            slot: 0,
        }
    }
}

/// One TX packet netfront has on the ring: its pool pages, by the ids of its slots.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxShadow {
    /// The pool page of this slot.
    pub page: u16,
}

/// The interrupt handler one notification of a queue runs on the receiving end. With split
/// event channels each port has its own: netfront's `xennet_tx_interrupt` only reaps TX
/// responses and `xennet_rx_interrupt` only schedules the RX poll; netback's
/// `xenvif_tx_interrupt` only schedules the TX NAPI poll (new requests) and
/// `xenvif_rx_interrupt` only kicks the RX thread (new buffers). With one shared port
/// (`xen_netback.separate_tx_rx_irq=0`) `xennet_interrupt` / `xenvif_interrupt` do both.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VifIrq {
    /// The TX port of a queue with split ports.
    Tx,
    /// The RX port of a queue with split ports.
    Rx,
    /// The one port of a queue without split ports.
    Shared,
}

impl VifIrq {
    /// The handler of the TX (`rx` false) or RX channel of a queue whose ports are `split`.
    pub const fn of(split: bool, rx: bool) -> VifIrq {
        match (split, rx) {
            (false, _) => VifIrq::Shared,
            (true, false) => VifIrq::Tx,
            (true, true) => VifIrq::Rx,
        }
    }

    /// The handler serves the TX ring.
    pub const fn serves_tx(self) -> bool {
        !matches!(self, VifIrq::Rx)
    }

    /// The handler serves the RX ring.
    pub const fn serves_rx(self) -> bool {
        !matches!(self, VifIrq::Tx)
    }
}

/// Which of a queue's four handlers (netfront's and netback's, TX and RX) a
/// `lost-interrupt` fault left unrun since they last ran (`lost_irq.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LostIrqs {
    /// netfront's TX handler.
    pub front_tx: bool,
    /// netfront's RX handler.
    pub front_rx: bool,
    /// netback's TX handler.
    pub back_tx: bool,
    /// netback's RX handler.
    pub back_rx: bool,
}

impl LostIrqs {
    /// The notification for `irq` to netfront (`front`) or netback was lost.
    pub fn lost(&mut self, front: bool, irq: VifIrq) {
        self.set(front, irq, true);
    }

    /// The handler for `irq` of netfront (`front`) or netback ran.
    pub fn ran(&mut self, front: bool, irq: VifIrq) {
        self.set(front, irq, false);
    }

    fn set(&mut self, front: bool, irq: VifIrq, value: bool) {
        let (tx, rx) = match front {
            true => (&mut self.front_tx, &mut self.front_rx),
            false => (&mut self.back_tx, &mut self.back_rx),
        };
        if irq.serves_tx() {
            *tx = value;
        }
        if irq.serves_rx() {
            *rx = value;
        }
    }
}

/// One queue of a vif's data path: a TX and an RX ring with what each end keeps for them.
#[derive(Clone, Debug)]
pub struct VifQueue {
    /// What both ends agreed on.
    pub params: VifParams,
    /// The queue's index (`queue-<index>` in XenStore when the vif has several).
    pub index: u16,
    /// The TX ring page.
    pub tx_sring: SharedRing,
    /// netfront's TX view.
    pub tx_front: FrontRing,
    /// netback's TX view.
    pub tx_back: BackRing,
    /// The RX ring page.
    pub rx_sring: SharedRing,
    /// netfront's RX view.
    pub rx_front: FrontRing,
    /// netback's RX view.
    pub rx_back: BackRing,
    /// netback disabled the vif on a fatal ring error (`xenvif_fatal_tx_err`) or a bogus
    /// RX `req_prod`.
    pub back_disabled: bool,
    /// netfront saw a bogus response index or id and stopped.
    pub front_failed: bool,
    /// A guest wrote a ring page behind its driver's back.
    pub scribbled: bool,
    /// netfront: outstanding TX slots by id (Linux's `tx_skbs`).
    pub tx_shadow: Vec<Option<TxShadow>>,
    /// netfront: free TX ids.
    pub tx_id_free: Vec<u16>,
    /// netfront: the qdisc's packets waiting for TX ring slots.
    pub tx_backlog: VecDeque<NetPacket>,
    /// netfront: TX pool pages (granted read-only to the backend) and the free ones.
    pub tx_pool: Vec<PoolPage>,
    /// Free TX pool indices.
    pub tx_pool_free: Vec<u16>,
    /// netfront: RX buffer pages by ring slot (granted writable once).
    pub rx_pool: Vec<PoolPage>,
    /// One past the highest grant ref of `tx_pool` and `rx_pool` (`None` while both are
    /// empty): where the search for the next pool page's ref starts. Kept as pages are
    /// added (the pools only grow), so adding one does not scan both pools.
    pub(crate) pool_gref_end: Option<u32>,
    /// netfront: last sequence received per (source MAC as [`mac_key`], flow).
    pub rx_seen: BTreeMap<(u64, u32), u32>,
    /// netback: packets for the frontend waiting for RX ring slots.
    pub rx_queue: VecDeque<NetPacket>,
    /// Their bytes.
    pub rx_queue_bytes: u32,
    /// netback: a batch is queued on the backend's CPU.
    pub back_busy: bool,
    /// The handlers a `lost-interrupt` fault left unrun since they last ran: the
    /// checker's lost-wakeup rule does not apply to their rings.
    pub irq_lost: LostIrqs,
    /// Counters.
    pub counters: VifCounters,
    /// TX indices the checker saw last.
    pub tx_watch: RingWatch,
    /// RX indices the checker saw last.
    pub rx_watch: RingWatch,
}

impl VifQueue {
    /// A freshly connected queue: both rings initialised, empty pools.
    pub fn new(params: VifParams, index: u16) -> VifQueue {
        let tx_sring = SharedRing::new(RING_PAGE_BYTES, NETIF_TX_SLOT_BYTES);
        let rx_sring = SharedRing::new(RING_PAGE_BYTES, NETIF_RX_SLOT_BYTES);
        assert_eq!(tx_sring.nr_ents() as usize, NET_RING_SLOTS);
        assert_eq!(rx_sring.nr_ents() as usize, NET_RING_SLOTS);
        let ids = u16::try_from(NET_RING_SLOTS).unwrap_or(u16::MAX);
        VifQueue {
            params,
            index,
            tx_front: FrontRing::new(&tx_sring),
            tx_back: BackRing::new(&tx_sring),
            rx_front: FrontRing::new(&rx_sring),
            rx_back: BackRing::new(&rx_sring),
            tx_sring,
            rx_sring,
            back_disabled: false,
            front_failed: false,
            scribbled: false,
            tx_shadow: alloc::vec![None; NET_RING_SLOTS],
            tx_id_free: (0..ids).rev().collect(),
            tx_backlog: VecDeque::new(),
            tx_pool: Vec::new(),
            tx_pool_free: Vec::new(),
            rx_pool: Vec::new(),
            pool_gref_end: None,
            rx_seen: BTreeMap::new(),
            rx_queue: VecDeque::new(),
            rx_queue_bytes: 0,
            back_busy: false,
            irq_lost: LostIrqs::default(),
            counters: VifCounters::default(),
            tx_watch: RingWatch::default(),
            rx_watch: RingWatch::default(),
        }
    }

    /// Records the TX ring's private indices after an operation on it; one of ours moving
    /// backwards is a model bug (RING-MONOTONIC), whatever the guest wrote into the pages.
    /// Only the ring an operation touched is noted: the other's indices did not move.
    pub fn note_tx_indices(&mut self) {
        let tx = RingWatch::of(&self.tx_front, &self.tx_back);
        assert!(
            self.tx_watch.backwards(&tx).is_none(),
            "vif TX index backwards"
        );
        self.tx_watch = tx;
    }

    /// [`VifQueue::note_tx_indices`] for the RX ring.
    pub fn note_rx_indices(&mut self) {
        let rx = RingWatch::of(&self.rx_front, &self.rx_back);
        assert!(
            self.rx_watch.backwards(&rx).is_none(),
            "vif RX index backwards"
        );
        self.rx_watch = rx;
    }

    /// A guest writes `bytes` at `offset` of its TX (`rx = false`) or RX ring page behind
    /// netfront's back; the ends see it on their next read.
    pub fn guest_scribble(&mut self, rx: bool, offset: usize, bytes: &[u8]) {
        self.scribbled = true;
        if rx {
            self.rx_sring.scribble(offset, bytes);
        } else {
            self.tx_sring.scribble(offset, bytes);
        }
    }

    /// The stand-in gfn of TX pool page `index` (RX buffers follow the TX range).
    pub fn pool_gfn(&self, rx: bool, index: usize) -> u64 {
        let base = NET_GFN_BASE
            + u64::from(self.params.slot) * NET_GFNS_PER_VIF
            + u64::from(self.index) * NET_GFNS_PER_QUEUE;
        let rx_base = if rx { NET_RING_SLOTS as u64 } else { 0 };
        base + rx_base + index as u64
    }

    /// The stand-in gfn of netback's bounce page for this vif.
    pub fn back_gfn(&self) -> u64 {
        NET_BACK_GFN_BASE
            + u64::from(self.params.front_dom.raw()) * 64
            + u64::from(self.params.slot)
    }

    /// The O(n) checks of this path: what is broken.
    pub fn check(&self, out: &mut Vec<&'static str>) {
        let tx = RingWatch::of(&self.tx_front, &self.tx_back);
        let rx = RingWatch::of(&self.rx_front, &self.rx_back);
        if self.tx_watch.backwards(&tx).is_some() || self.rx_watch.backwards(&rx).is_some() {
            out.push("ring.monotonic");
        }
        if self.counters.rx_order_violations > 0 {
            out.push("vif.in_order");
        }
        if self.tx_backlog.len() > TX_QUEUE_LEN || self.rx_queue_bytes > RX_QUEUE_BYTES_MAX {
            out.push("vif.queue_bound");
        }
        let queued: u64 = self.rx_queue.iter().map(|p| u64::from(p.bytes)).sum();
        if queued != u64::from(self.rx_queue_bytes) {
            out.push("vif.rx_queue_bytes");
        }
        if self.rx_seen.len() > RX_FLOWS_MAX {
            out.push("vif.flows_bound");
        }
        if self.tx_pool.len() > NET_RING_SLOTS || self.rx_pool.len() > NET_RING_SLOTS {
            out.push("vif.pool_bound");
        }
        if self.scribbled || self.front_failed || self.back_disabled {
            return;
        }
        if tx.bounds(NET_RING_SLOTS_U32).is_some() || rx.bounds(NET_RING_SLOTS_U32).is_some() {
            out.push("ring.bounds");
        }
        let outstanding = self
            .tx_front
            .req_prod_pvt
            .wrapping_sub(self.tx_front.rsp_cons);
        let in_use = self.tx_shadow.iter().flatten().count();
        if outstanding as usize != in_use || in_use + self.tx_id_free.len() != NET_RING_SLOTS {
            out.push("ring.one_response");
        }
        if in_use + self.tx_pool_free.len() != self.tx_pool.len() {
            out.push("vif.tx_pool_pages");
        }
        let pools = self.tx_pool.iter().chain(&self.rx_pool);
        if pools.map(|p| p.gref.raw() + 1).max() != self.pool_gref_end {
            out.push("vif.pool_gref_end");
        }
        // RING-NOTIFY: between inputs no end sleeps with work on its ring.
        let tx_left = self
            .tx_back
            .unconsumed_requests(&self.tx_sring)
            .unwrap_or(0);
        if !self.back_busy && !self.irq_lost.back_tx && tx_left > 0 {
            out.push("ring.lost_wakeup");
        }
        // netfront's TX and RX rings are each served by their own handler (one handler
        // for both with a shared port), so each is excused only by its own lost interrupt.
        let left = |f: &FrontRing, s: &SharedRing| f.unconsumed_responses(s).unwrap_or(0);
        let tx_stuck = !self.irq_lost.front_tx && left(&self.tx_front, &self.tx_sring) > 0;
        let rx_stuck = !self.irq_lost.front_rx && left(&self.rx_front, &self.rx_sring) > 0;
        if tx_stuck || rx_stuck {
            out.push("ring.lost_wakeup");
        }
    }
}

/// The queue of `packet`'s flow among `queue_count` (`skb_get_hash % num_queues` in
/// `xennet_select_queue` and in netback's `xenvif_select_queue`): FNV-1a over the lower
/// MAC, the higher MAC and the flow id, so both directions of a flow agree.
pub fn flow_queue(packet: &NetPacket, queue_count: usize) -> usize {
    const FNV_OFFSET: u32 = 0x811c_9dc5;
    const FNV_PRIME: u32 = 0x0100_0193;
    if queue_count <= 1 {
        return 0;
    }
    let (low, high) = if packet.src <= packet.dst {
        (packet.src, packet.dst)
    } else {
        (packet.dst, packet.src)
    };
    let flow = packet.flow.to_le_bytes();
    let bytes = low.iter().chain(&high).chain(&flow);
    let hash = bytes.fold(FNV_OFFSET, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(FNV_PRIME)
    });
    let index = usize::try_from(hash).unwrap_or(0) % queue_count;
    debug_assert!(index < queue_count);
    index
}

impl VifCounters {
    /// Adds `other`'s counts to these (a vif's totals over its queues).
    pub fn add(&mut self, other: &VifCounters) {
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.tx_forwarded += other.tx_forwarded;
        self.tx_errors += other.tx_errors;
        self.tx_queue_drops += other.tx_queue_drops;
        self.tx_notify_count += other.tx_notify_count;
        self.tx_notify_suppressed += other.tx_notify_suppressed;
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.rx_ring_drops += other.rx_ring_drops;
        self.rx_errors += other.rx_errors;
        self.rx_notify_count += other.rx_notify_count;
        self.rx_notify_suppressed += other.rx_notify_suppressed;
        self.rx_order_violations += other.rx_order_violations;
    }
}

/// One vif's data path: its queues (one unless the frontend asked for more).
#[derive(Clone, Debug)]
pub struct VifPath {
    /// What both ends agreed on.
    pub params: VifParams,
    /// The queues, by index (at least one, at most [`VIF_QUEUES_MAX`]).
    pub queues: Vec<VifQueue>,
    /// The flow [`VifPath::queue_of`] hashed last and its queue: a vif's frames mostly
    /// belong to one flow, in both directions.
    flow_memo: Option<FlowMemo>,
}

/// A flow's queue, as [`flow_queue`] gave it: the flow's two MACs (as [`mac_key`], in
/// either order: the hash does not depend on the direction) and its id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FlowMemo {
    macs: (u64, u64),
    flow: u32,
    queue: usize,
}

impl VifPath {
    /// A freshly connected vif with `queue_count` queues (clamped to 1..=[`VIF_QUEUES_MAX`]).
    pub fn new(params: VifParams, queue_count: u32) -> VifPath {
        let count = queue_count.clamp(1, VIF_QUEUES_MAX);
        let queues = (0..count)
            .map(|q| VifQueue::new(params, u16::try_from(q).unwrap_or(0)))
            .collect::<Vec<_>>();
        assert!(!queues.is_empty());
        assert!(queues.len() <= VIF_QUEUES_MAX as usize);
        VifPath {
            params,
            queues,
            flow_memo: None,
        }
    }

    /// The queue `packet`'s flow uses: [`flow_queue`], hashed once per run of frames of
    /// one flow (either direction).
    #[inline]
    pub fn queue_of(&mut self, packet: &NetPacket) -> usize {
        let count = self.queues.len();
        if count <= 1 {
            return 0;
        }
        let (src, dst) = (mac_key(packet.src), mac_key(packet.dst));
        if let Some(memo) = self.flow_memo {
            let same_macs = memo.macs == (src, dst) || memo.macs == (dst, src);
            if same_macs && memo.flow == packet.flow {
                debug_assert_eq!(memo.queue, flow_queue(packet, count));
                return memo.queue;
            }
        }
        let queue = flow_queue(packet, count);
        self.flow_memo = Some(FlowMemo {
            macs: (src, dst),
            flow: packet.flow,
            queue,
        });
        queue
    }

    /// The vif's counters: the sum over its queues.
    pub fn counters(&self) -> VifCounters {
        let mut total = VifCounters::default();
        for queue in &self.queues {
            total.add(&queue.counters);
        }
        total
    }

    /// netback disabled the vif (`xenvif_fatal_tx_err` disables the whole device).
    pub fn back_disabled(&self) -> bool {
        self.queues.iter().any(|q| q.back_disabled)
    }

    /// netback disables every queue of the vif.
    pub fn disable_back(&mut self) {
        for queue in &mut self.queues {
            queue.back_disabled = true;
        }
    }

    /// netfront stopped (Linux's `info->broken` covers the whole device).
    pub fn front_failed(&self) -> bool {
        self.queues.iter().any(|q| q.front_failed)
    }

    /// netfront stops every queue of the vif.
    pub fn fail_front(&mut self) {
        for queue in &mut self.queues {
            queue.front_failed = true;
        }
    }

    /// The O(n) checks of every queue: what is broken.
    pub fn check(&self, out: &mut Vec<&'static str>) {
        for queue in &self.queues {
            queue.check(out);
        }
        if self.queues.is_empty() || self.queues.len() > VIF_QUEUES_MAX as usize {
            out.push("vif.queue_count");
        }
        let split = self.queues.iter().any(|q| q.back_disabled)
            && self.queues.iter().any(|q| !q.back_disabled);
        if split {
            out.push("vif.disabled_whole");
        }
    }
}

/// The first ref at or after `start` that `dom` has not granted, growing its table by a
/// frame when it is full (Linux `gnttab_expand`).
pub fn free_gref(grants: &mut GrantTables, dom: DomId, start: u32) -> Option<GrantRef> {
    let mut raw = start;
    loop {
        let table = grants.table(dom)?;
        if raw >= table.nr_entries() {
            let frames = table.nr_frames() + 1;
            if raw >= frames * GRANT_ENTRIES_PER_FRAME_V1 {
                return None;
            }
            grants.setup_table(dom, dom, frames).ok()?;
            continue;
        }
        let gref = GrantRef::new(raw);
        if table.entry(gref).is_some_and(|e| e.flags == 0) {
            return Some(gref);
        }
        raw += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> NetPacket {
        NetPacket {
            dst: [0, 0x16, 0x3e, 0, 0, 1],
            src: [0, 0x16, 0x3e, 0, 0, 2],
            flow: 7,
            seq: 3,
            kind: PacketKind::Request,
            tag: 0x1234_5678_9abc,
            reply_bytes: 9000,
            bytes: 1500,
        }
    }

    #[test]
    fn header_roundtrips_through_a_page() {
        let mut page = [0u8; 4096];
        packet().encode(&mut page);
        assert_eq!(NetPacket::decode(&page), Some(packet()));
    }

    proptest::proptest! {
        /// Trees keyed by `mac_key` keep the order of trees keyed by the MAC.
        #[test]
        fn mac_keys_order_as_the_macs_do(
            a in proptest::prelude::any::<Mac>(),
            b in proptest::prelude::any::<Mac>(),
        ) {
            proptest::prop_assert_eq!(mac_key(a).cmp(&mac_key(b)), a.cmp(&b));
        }
    }

    proptest::proptest! {
        /// The memo answers as the hash: frames of a few MACs and flows, both directions.
        #[test]
        fn queue_of_answers_as_flow_queue(
            queue_count in 1u32..=VIF_QUEUES_MAX,
            frames in proptest::collection::vec((0u8..3, 0u8..3, 0u32..3), 0..40),
        ) {
            let mut path = VifPath::new(VifParams::for_tests(), queue_count);
            let count = path.queues.len();
            for (src, dst, flow) in frames {
                let frame = NetPacket {
                    src: [0, 0x16, 0x3e, 0, 0, src],
                    dst: [0, 0x16, 0x3e, 0, 0, dst],
                    flow,
                    ..packet()
                };
                proptest::prop_assert_eq!(path.queue_of(&frame), flow_queue(&frame, count));
            }
        }
    }

    #[test]
    fn a_page_of_zeros_is_not_a_frame() {
        assert_eq!(NetPacket::decode(&[0u8; 64]), None);
    }

    #[test]
    fn a_jumbo_frame_spans_three_slots() {
        // 9000 bytes over 4096-byte pages.
        let jumbo = NetPacket {
            bytes: 9000,
            ..packet()
        };
        assert_eq!(jumbo.slots(), 3);
    }

    #[test]
    fn macs_parse_only_with_six_hex_bytes() {
        assert_eq!(
            parse_mac("00:16:3e:0a:0b:0c"),
            Some([0, 0x16, 0x3e, 10, 11, 12])
        );
        assert_eq!(parse_mac("00:16:3e:0a:0b"), None);
        assert_eq!(parse_mac("00:16:3e:0a:0b:0c:0d"), None);
    }
}
