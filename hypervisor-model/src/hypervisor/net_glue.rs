//! The vif data path on a host: netfront in each guest's kernel, netback in the vif's
//! backend domain (dom0 or a driver domain: always `VifParams::back_dom`), the interdomain
//! event channel between them, and the bridge behind the Platform seam.
//!
//! A vif has one or more queues (`VifPath::queues`); a frame goes to the queue of its flow
//! on both ends (`xennet_select_queue`, `xenvif_select_queue`), and every step below runs
//! on one queue, with that queue's event channels (a TX and an RX port per queue when the
//! frontend split them, else one).
//!
//! TX: a guest packet (`CoreInput::NetSend`) enters netfront, which pushes its slots and
//! notifies netback only when the ring's event index asks for it. netback's interrupt
//! consumes what the ring offers (disabling the vif on a fatal error, as
//! `xenvif_fatal_tx_err`), grant-copies the frames, and queues the batch as CPU work on the
//! queue's backend vCPU (`io.netback_tx_pkt_ns` per packet plus `io.gnttab_copy_page_ns` per
//! further page, [`Platform::backend_work`]). When that ran (`BackendWorkDone`) the TX
//! responses are pushed and the frames go to the bridge ([`Platform::net_transmit`]).
//!
//! The backend vCPU of queue `q` is `q mod (backend's online vCPUs)`: Linux runs each
//! queue's NAPI poll and RX kthread (`vif<F>.<D>-q<q>-guest-rx`) where irqbalance puts the
//! queue's interrupts and the scheduler its thread; xensim pins them one queue per vCPU,
//! so queue 0 (the only one of a single-queue vif) stays on vCPU 0. Both ends bind the
//! queue's ports to the vCPU that does its work (`net_conn.rs`), so a notification wakes
//! that vCPU and no other.
//!
//! RX: a frame from the bridge (`CoreInput::NetDeliver`) is queued by netback (dropped when
//! its queue is full) and costs `io.netback_rx_pkt_ns` plus `io.gnttab_copy_page_ns` per
//! further page; when that ran, netback grant-copies queued frames into the buffers netfront
//! posted and notifies it; netfront's poll hands the frames to the guest
//! (`GuestNotice::NetReceived`) and reposts its buffers.
//!
//! Follows Linux xen-netfront.c / xen-netback (`xenvif_interrupt`, `xenvif_tx_action`,
//! `xenvif_rx_action`, `xennet_poll`) and Xen's event channel send.
//!
//! # Invariants
//! - netback's work items finish in queue order per backend vCPU; a queue has at most one
//!   TX batch queued.
//! - Work item ids carry [`NET_WORK_BIT`], so they never collide with blkback's.
//!
//! Which handler a notification runs (TX port, RX port, or one shared port for both) is
//! `net_glue/irq.rs`.
//!
//! xensim differs, on purpose: a driver's interrupt handler runs when the event is sent;
//! netfront's own CPU (`io.netfront_pkt_ns`) is charged by the guest's workload model.

mod irq;
mod work;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{trace_plain, Hypervisor};
use crate::ids::{BackWorkId, DomId, EvtchnPort, VcpuRef};
use crate::io::dev_map::DevMap;
use crate::io::netback::TxPacket;
use crate::io::spare::SpareBuffers;
use crate::io::vbd::PageStore;
use crate::io::vif::{NetPacket, VifPath, VifQueue};
use crate::platform::{NetFrame, Platform};
use crate::toolstack::ops::GuestNotice;
use crate::trace::TraceEvent;

/// Set in every netback work item id (ioreq work has bit 63, xenconsoled bit 62).
pub const NET_WORK_BIT: u64 = 1 << 61;
/// Most netback work items queued at once (per host).
pub const NET_WORK_ITEMS_MAX: usize = 1 << 16;

/// Most empty TX batch buffers netback keeps for reuse (per host): a bound, not a
/// behaviour (a batch whose buffer is not kept allocates a new one).
pub const TX_SPARE_BUFFERS_MAX: usize = 64;

/// A vif: frontend domain and device id.
pub type VifKey = (DomId, u32);

/// Why a packet was dropped (trace code).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NetDropReason {
    /// netfront's TX queue was full (or netfront stopped).
    TxQueueFull = 1,
    /// netback's RX queue for the frontend was full (or the vif is disabled).
    RxRingFull = 2,
    /// The vif is not connected.
    NoDevice = 3,
    /// In flight when the backend's domain died (`drv_net.rs`).
    BackendGone = 4,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum NetWorkKind {
    Tx(Vec<TxPacket>),
    Rx,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct NetWork {
    key: VifKey,
    queue: usize,
    vcpu: VcpuRef,
    kind: NetWorkKind,
}

/// The event channels of one queue: (frontend's port, backend's port) for TX and for RX
/// (the same pair twice without split event channels).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QueuePorts {
    /// TX requests and responses.
    pub tx: (EvtchnPort, EvtchnPort),
    /// RX requests and responses.
    pub rx: (EvtchnPort, EvtchnPort),
}

/// A queue's in-order memory (`VifQueue::rx_seen`): the last sequence number per (source
/// MAC as `mac_key`, flow).
pub(crate) type FlowsSeen = BTreeMap<(u64, u32), u32>;

/// Every vif data path of a host.
#[derive(Clone, Debug, Default)]
pub struct NetState {
    /// Connected vifs.
    pub(crate) paths: DevMap<VifPath>,
    /// Packet and buffer pages.
    pub(crate) pages: PageStore,
    /// The ports of each vif's queues, by queue.
    pub(crate) ports: DevMap<Vec<QueuePorts>>,
    /// Queued backend work by id (ids grow, so each vCPU's items are in order).
    pub(super) work: work::WorkQueue,
    next_work: u64,
    /// Empty TX batch buffers kept from finished batches (at most
    /// [`TX_SPARE_BUFFERS_MAX`]), so that consuming a batch does not allocate.
    tx_spare: SpareBuffers<TxPacket, TX_SPARE_BUFFERS_MAX>,
    /// Frames lost with a dead backend, counted as dropped at the end of the input.
    pub(crate) lost: BTreeMap<VifKey, u32>,
    /// netfront's in-order memory of a vif whose backend died, by queue, kept for its
    /// reconnect.
    pub(crate) kept_seen: BTreeMap<VifKey, Vec<FlowsSeen>>,
    /// The old backend directory of a vif whose backend `xl devd` re-created.
    pub(crate) moved_from: BTreeMap<VifKey, alloc::string::String>,
    /// Reconnects of each vif to a re-created backend.
    pub(crate) reconnects: BTreeMap<VifKey, u32>,
    /// The buffer netfront's poll hands its frames up through, empty between inputs
    /// (kept only so that a poll does not allocate).
    pub(super) rx_polled: Vec<NetPacket>,
}

/// The trace's queue field: `None` for a single-queue vif (whose records keep their
/// single-queue encoding), else the queue.
fn queue_field(path: &VifPath, queue: usize) -> Option<u16> {
    (path.queues.len() > 1).then(|| u16::try_from(queue).unwrap_or(u16::MAX))
}

impl Hypervisor {
    /// `NetSend`: the guest's stack hands netfront a frame for the queue of its flow;
    /// netfront pushes at the last of a batch.
    pub(crate) fn net_send<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        devid: u32,
        packet: NetPacket,
        last: bool,
        p: &mut P,
    ) {
        let key = (vcpu.dom, devid);
        // `sent`: the queue that took the frame (its backlog is not empty now).
        let (reason, mut queues, sent) = match self.net.paths.get_mut(&key) {
            Some(path) => {
                let queue = path.queue_of(&packet);
                match path.queues[queue].front_send(packet) {
                    true => (None, path.queues.len(), Some(queue)),
                    false => (Some(NetDropReason::TxQueueFull), 0, None),
                }
            }
            None => (Some(NetDropReason::NoDevice), 0, None),
        };
        if let Some(reason) = reason {
            self.net_dropped(key, reason, p);
            // The drop's notice went to the guest: look the vif up again.
            queues = self.net.paths.get(&key).map_or(0, |v| v.queues.len());
        }
        if !last {
            return;
        }
        // The end of the stack's batch (`netdev_xmit_more()` false): every queue that
        // took frames pushes them.
        for queue in 0..queues {
            // Queue 0 is looked at before anything ran since the frame went in: when it
            // took the frame, its backlog is known to wait without a second lookup.
            let known = queue == 0 && sent == Some(0);
            debug_assert!(
                !known
                    || self
                        .net_queue(key, 0)
                        .is_some_and(|q| !q.tx_backlog.is_empty())
            );
            let waiting = known
                || self
                    .net_queue(key, queue)
                    .is_some_and(|q| !q.tx_backlog.is_empty());
            if waiting {
                self.netfront_kick(key, queue, p);
            }
        }
    }

    pub(super) fn net_dropped<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        why: NetDropReason,
        p: &mut P,
    ) {
        p.trace(&TraceEvent::NetDrop {
            dom: key.0,
            devid: key.1,
            reason: why as u8,
        });
        let notice = GuestNotice::NetDropped {
            devid: key.1,
            reason: why as u8,
        };
        self.vif_notify(key, notice, p);
    }

    /// The queue `queue` of `key`, if connected.
    fn net_queue(&mut self, key: VifKey, queue: usize) -> Option<&mut VifQueue> {
        self.net.paths.get_mut(&key)?.queues.get_mut(queue)
    }

    fn netfront_kick<P: Platform + ?Sized>(&mut self, key: VifKey, queue: usize, p: &mut P) {
        let net = &mut self.net;
        let Some(path) = net.paths.get_mut(&key) else {
            return;
        };
        let end = (path.params.back_dom, queue_field(path, queue));
        let Some(q) = path.queues.get_mut(queue) else {
            return;
        };
        // Nothing queued: the push would place, push and trace nothing (a TX interrupt
        // whose completions freed no waiting frame).
        if q.tx_backlog.is_empty() {
            return;
        }
        let push = q.front_tx_kick(&mut self.grants, &mut net.pages);
        self.net_pushed((key, queue), end, false, (push.pushed, push.notify), p);
        // Linux `xennet_start_xmit` reaps the queue's TX completions after every push
        // (`xennet_tx_buf_gc`, which re-arms `rsp_event`): a lost TX interrupt is made good
        // by the next send. A ring error marks netfront failed, as in its interrupt.
        if push.pushed == 0 {
            return;
        }
        let Some(path) = self.net.paths.get_mut(&key) else {
            return;
        };
        let Some(q) = path.queues.get_mut(queue) else {
            return;
        };
        let reaped = q.front_tx_responses();
        if reaped.is_err() || q.front_failed {
            path.fail_front();
        }
    }

    /// netback found a fatal error on `key`'s queue: the whole vif is disabled.
    fn netback_disabled<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        queue: usize,
        (reason, prod, cons): (u8, u32, u32),
        p: &mut P,
    ) {
        let Some(path) = self.net.paths.get_mut(&key) else {
            return;
        };
        path.disable_back();
        p.trace(&TraceEvent::VifDisabled {
            dom: key.0,
            devid: key.1,
            queue: queue_field(path, queue),
            reason,
            prod,
            cons,
        });
    }

    fn netback_tx_run<P: Platform + ?Sized>(&mut self, key: VifKey, queue: usize, p: &mut P) {
        let truncated = crate::io::netif::TxError::Truncated.code();
        loop {
            let net = &mut self.net;
            let Some(q) = net
                .paths
                .get_mut(&key)
                .and_then(|v| v.queues.get_mut(queue))
            else {
                return;
            };
            // Nothing offered (as after most batches): no batch buffer is taken.
            if !q.back_tx_idle() {
                let mut packets = net.tx_spare.take();
                let consumed = q.back_tx_consume(&mut self.grants, &net.pages, &mut packets);
                if let Err(fatal) = consumed {
                    let what = (fatal.error.code(), fatal.prod, fatal.cons);
                    return self.netback_disabled(key, queue, what, p);
                }
                if !packets.is_empty() {
                    q.back_busy = true;
                    return self.netback_queue(key, queue, NetWorkKind::Tx(packets), p);
                }
                net.tx_spare.keep(packets);
            }
            match q.back_tx_final_check() {
                Ok(true) => continue,
                Ok(false) => return,
                Err(overflow) => {
                    let what = (truncated, overflow.prod, overflow.base);
                    return self.netback_disabled(key, queue, what, p);
                }
            }
        }
    }

    /// The CPU a batch costs on the backend.
    fn netback_cost_ns(&self, kind: &NetWorkKind, rx_slots: u32) -> i64 {
        let c = &self.costs;
        let copy_ns = c.gnttab_copy_page_ns.max(0);
        match kind {
            NetWorkKind::Tx(packets) => packets.iter().fold(0i64, |acc, packet| {
                let extra = i64::from(packet.copies.saturating_sub(1));
                acc.saturating_add(c.netback_tx_pkt_ns.max(0))
                    .saturating_add(copy_ns.saturating_mul(extra))
            }),
            NetWorkKind::Rx => {
                let extra = i64::from(rx_slots.saturating_sub(1));
                c.netback_rx_pkt_ns
                    .max(0)
                    .saturating_add(copy_ns.saturating_mul(extra))
            }
        }
    }

    /// The backend vCPU that runs `queue`'s work: the vCPU its interrupts are bound to,
    /// `queue mod (backend's online vCPUs)` (`net_conn.rs`).
    fn netback_vcpu(&self, back: DomId, queue: usize) -> VcpuRef {
        let queue = u32::try_from(queue).unwrap_or(0);
        VcpuRef {
            dom: back,
            vcpu: self.vif_queue_vcpu(back, queue),
        }
    }

    fn netback_queue<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        queue: usize,
        kind: NetWorkKind,
        p: &mut P,
    ) {
        let Some(path) = self.net.paths.get(&key) else {
            return;
        };
        let back = path.params.back_dom;
        let queue_trace = queue_field(path, queue);
        let rx_slots = match &kind {
            NetWorkKind::Rx => path
                .queues
                .get(queue)
                .and_then(|q| q.rx_queue.back())
                .map_or(1, NetPacket::slots),
            NetWorkKind::Tx(_) => 0,
        };
        let work_ns = self.netback_cost_ns(&kind, rx_slots);
        let id = BackWorkId(NET_WORK_BIT | self.net.next_work);
        self.net.next_work += 1;
        let packets = match &kind {
            NetWorkKind::Tx(packets) => u32::try_from(packets.len()).unwrap_or(u32::MAX),
            NetWorkKind::Rx => 1,
        };
        let event = TraceEvent::NetbackWork {
            item: id,
            dom: key.0,
            devid: key.1,
            queue: queue_trace,
            rx: matches!(kind, NetWorkKind::Rx),
            packets,
            work_ns,
        };
        trace_plain(p, event);
        let vcpu = self.netback_vcpu(back, queue);
        let work = NetWork {
            key,
            queue,
            vcpu,
            kind,
        };
        if work_ns == 0 {
            return self.netback_finish(work, p);
        }
        assert!(
            self.net.work.len() < NET_WORK_ITEMS_MAX,
            "netback work full"
        );
        self.net.work.push(id, work);
        p.backend_work(vcpu, id, work_ns);
        let _ = self.vcpu_wake_event(vcpu, p);
    }

    /// `BackendWorkDone` for a netback item (its id carries [`NET_WORK_BIT`]): the oldest
    /// item of its vCPU.
    pub(crate) fn netback_work_done<P: Platform + ?Sized>(
        &mut self,
        item: BackWorkId,
        p: &mut P,
    ) -> Result<(), super::InputError> {
        // Unknown, or not the oldest item of its vCPU: both are a bogus input.
        let work = self
            .net
            .work
            .take_oldest(item)
            .map_err(|_| super::InputError::UnknownBackWork(item))?;
        self.netback_finish(work, p);
        Ok(())
    }

    /// The backend domain `back_dom` died: the items queued on its vCPUs never run (the
    /// frames of a TX batch are counted lost by netfront, `drv_net.rs`).
    pub(crate) fn net_backend_domain_gone(&mut self, back_dom: DomId) {
        self.net.work.drop_domain(back_dom);
    }

    fn netback_finish<P: Platform + ?Sized>(&mut self, work: NetWork, p: &mut P) {
        let (key, queue) = (work.key, work.queue);
        if !self.net.ports.contains_key(&key) {
            return; // netback disconnected meanwhile: the batch is dropped.
        }
        match work.kind {
            NetWorkKind::Tx(mut packets) => {
                self.netback_tx_finish(key, queue, &packets, p);
                packets.clear();
                self.net.tx_spare.keep(packets);
            }
            NetWorkKind::Rx => self.netback_rx_flush(key, queue, p),
        }
    }

    fn netback_tx_finish<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        queue: usize,
        packets: &[TxPacket],
        p: &mut P,
    ) {
        let Some(path) = self.net.paths.get_mut(&key) else {
            return;
        };
        let queue_trace = queue_field(path, queue);
        let back_dom = path.params.back_dom;
        let Some(q) = path.queues.get_mut(queue) else {
            return;
        };
        let notify = q.back_tx_respond(packets);
        for packet in packets {
            if let Some(error) = packet.error {
                let (id, _) = packet.first;
                p.trace(&TraceEvent::NetTxReject {
                    dom: key.0,
                    devid: key.1,
                    queue: queue_trace,
                    id,
                    reason: error.code(),
                    gntst: match error {
                        crate::io::netif::TxError::Grant(code) => code,
                        _ => 0,
                    },
                });
            }
            if let Some(packet) = packet.packet {
                q.counters.tx_forwarded += 1;
                let frame = NetFrame {
                    back_dom,
                    dom: key.0,
                    devid: key.1,
                    packet,
                };
                p.net_transmit(frame);
            }
        }
        q.back_busy = false;
        if notify {
            if let Some(irq) = self.net_evtchn(key, queue, back_dom, (false, false), p) {
                self.netfront_irq(key, queue, irq, p);
            }
        }
        self.netback_tx_run(key, queue, p);
    }

    /// `NetDeliver`: a frame from the bridge for `key`'s frontend, queued on the queue of
    /// its flow.
    pub(crate) fn net_deliver<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        packet: NetPacket,
        p: &mut P,
    ) {
        let Some(path) = self.net.paths.get_mut(&key) else {
            return self.net_dropped(key, NetDropReason::NoDevice, p);
        };
        let queue = path.queue_of(&packet);
        if !path.queues[queue].back_rx_queue(packet) {
            // A frame for a vif whose driver domain died (netfront has not noticed yet).
            let back = path.params.back_dom;
            let gone = back != DomId::DOM0 && !self.is_alive(back);
            let reason = if gone {
                NetDropReason::BackendGone
            } else {
                NetDropReason::RxRingFull
            };
            return self.net_dropped(key, reason, p);
        }
        self.netback_queue(key, queue, NetWorkKind::Rx, p);
    }

    /// Places what the queue's RX ring has room for; notifies netfront if asked to.
    fn netback_rx_flush<P: Platform + ?Sized>(&mut self, key: VifKey, queue: usize, p: &mut P) {
        let net = &mut self.net;
        let Some(path) = net.paths.get_mut(&key) else {
            return;
        };
        let end = (path.params.back_dom, queue_field(path, queue));
        let Some(q) = path.queues.get_mut(queue) else {
            return;
        };
        let flush = match q.back_rx_flush(&mut self.grants, &mut net.pages) {
            Ok(flush) => flush,
            Err(overflow) => {
                let truncated = crate::io::netif::TxError::Truncated.code();
                let what = (truncated, overflow.prod, overflow.base);
                return self.netback_disabled(key, queue, what, p);
            }
        };
        self.net_pushed((key, queue), end, true, (flush.slots, flush.notify), p);
    }
}
