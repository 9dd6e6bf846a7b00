//! The vif data path on a host: netfront in each guest's kernel, netback in the vif's
//! backend domain (dom0 or a driver domain: always `VifParams::back_dom`), the interdomain
//! event channel between them, and the bridge behind the Platform seam.
//!
//! TX: a guest packet (`CoreInput::NetSend`) enters netfront, which pushes its slots and
//! notifies netback only when the ring's event index asks for it. netback's interrupt
//! consumes what the ring offers (disabling the vif on a fatal error, as
//! `xenvif_fatal_tx_err`), grant-copies the frames, and queues the batch as CPU work on the
//! backend's vCPU 0 (`io.netback_tx_pkt_ns` per packet plus `io.gnttab_copy_page_ns` per
//! further page, [`Platform::backend_work`]). When that ran (`BackendWorkDone`) the TX
//! responses are pushed and the frames go to the bridge ([`Platform::net_transmit`]).
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
//! - netback's work items finish in queue order; a vif has at most one TX batch queued.
//! - Work item ids carry [`NET_WORK_BIT`], so they never collide with blkback's.
//!
//! xensim differs, on purpose: a driver's interrupt handler runs when the event is sent;
//! netfront's own CPU (`io.netfront_pkt_ns`) is charged by the guest's workload model.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::Hypervisor;
use crate::ids::{BackWorkId, DomId, EvtchnPort, VcpuId, VcpuRef};
use crate::io::netback::TxPacket;
use crate::io::vbd::PageStore;
use crate::io::vif::{NetPacket, VifPath};
use crate::platform::{NetFrame, Platform};
use crate::toolstack::ops::GuestNotice;
use crate::trace::TraceEvent;

/// Set in every netback work item id (ioreq work has bit 63, xenconsoled bit 62).
pub const NET_WORK_BIT: u64 = 1 << 61;
/// Most netback work items queued at once (per host).
pub const NET_WORK_ITEMS_MAX: usize = 1 << 16;

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

#[derive(Clone, Debug)]
enum NetWorkKind {
    Tx(Vec<TxPacket>),
    Rx,
}

#[derive(Clone, Debug)]
struct NetWork {
    id: BackWorkId,
    key: VifKey,
    /// The backend domain whose vCPU 0 runs it.
    back_dom: DomId,
    kind: NetWorkKind,
}

/// Every vif data path of a host.
#[derive(Clone, Debug, Default)]
pub struct NetState {
    /// Connected vifs.
    pub(crate) paths: BTreeMap<VifKey, VifPath>,
    /// Packet and buffer pages.
    pub(crate) pages: PageStore,
    /// The ports of each vif: (frontend's, backend's).
    pub(crate) ports: BTreeMap<VifKey, (EvtchnPort, EvtchnPort)>,
    work: VecDeque<NetWork>,
    next_work: u64,
    /// Frames lost with a dead backend, counted as dropped at the end of the input.
    pub(crate) lost: BTreeMap<VifKey, u32>,
    /// netfront's in-order memory of a vif whose backend died, kept for its reconnect.
    pub(crate) kept_seen: BTreeMap<VifKey, BTreeMap<(crate::io::vif::Mac, u32), u32>>,
    /// The old backend directory of a vif whose backend `xl devd` re-created.
    pub(crate) moved_from: BTreeMap<VifKey, alloc::string::String>,
    /// Reconnects of each vif to a re-created backend.
    pub(crate) reconnects: BTreeMap<VifKey, u32>,
}

fn vcpu0(dom: DomId) -> VcpuRef {
    VcpuRef {
        dom,
        vcpu: VcpuId::new(0).expect("vCPU 0"),
    }
}

impl Hypervisor {
    /// `NetSend`: the guest's stack hands netfront a frame; netfront pushes at the last of
    /// a batch.
    pub(crate) fn net_send<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        devid: u32,
        packet: NetPacket,
        last: bool,
        p: &mut P,
    ) {
        let key = (vcpu.dom, devid);
        let reason = match self
            .net
            .paths
            .get_mut(&key)
            .map(|path| path.front_send(packet))
        {
            Some(true) => None,
            Some(false) => Some(NetDropReason::TxQueueFull),
            None => Some(NetDropReason::NoDevice),
        };
        if let Some(reason) = reason {
            self.net_dropped(key, reason, p);
        }
        if last {
            self.netfront_kick(key, p);
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
        p.guest_notify(key.0, notice);
    }

    fn netfront_kick<P: Platform + ?Sized>(&mut self, key: VifKey, p: &mut P) {
        let net = &mut self.net;
        let Some(path) = net.paths.get_mut(&key) else {
            return;
        };
        let push = path.front_tx_kick(&mut self.grants, &mut net.pages);
        self.net_pushed(key, false, push.pushed, push.notify, p);
        // Linux `xennet_start_xmit` reaps TX completions after every push
        // (`xennet_tx_buf_gc`, which re-arms `rsp_event`): a lost TX interrupt is made good
        // by the next send. A ring error marks netfront failed, as in its interrupt.
        if let (true, Some(path)) = (push.pushed > 0, self.net.paths.get_mut(&key)) {
            let _reaped = path.front_tx_responses();
        }
    }

    /// `slots` were pushed on `key`'s TX ring by netfront (`rx` false) or on its RX ring
    /// by netback (`rx`): traced, and when the pushing end must notify, the other end's
    /// interrupt runs.
    fn net_pushed<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        rx: bool,
        slots: u32,
        notify: bool,
        p: &mut P,
    ) {
        if slots == 0 {
            return;
        }
        p.trace(&TraceEvent::NetPush {
            dom: key.0,
            devid: key.1,
            rx,
            slots,
            notify,
        });
        if notify && self.net_evtchn(key, !rx, p) {
            if rx {
                self.netfront_irq(key, p);
            } else {
                self.netback_irq(key, p);
            }
        }
    }

    /// One end of `key`'s channel notifies the other (as `blk_send`).
    /// False when a `lost-interrupt` fault ate the notification.
    fn net_evtchn<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        from_front: bool,
        p: &mut P,
    ) -> bool {
        let Some(&ports) = self.net.ports.get(&key) else {
            return true;
        };
        let Some(back) = self.net.paths.get(&key).map(|path| path.params.back_dom) else {
            return true;
        };
        let delivered = self.ring_notify((key.0, back), ports, from_front, p);
        if let (false, Some(path)) = (delivered, self.net.paths.get_mut(&key)) {
            if from_front {
                path.irq_lost.1 = true;
            } else {
                path.irq_lost.0 = true;
            }
        }
        delivered
    }

    /// `xenvif_interrupt`: TX work unless a batch is queued; RX buffers may have arrived.
    pub(super) fn netback_irq<P: Platform + ?Sized>(&mut self, key: VifKey, p: &mut P) {
        if let Some(path) = self.net.paths.get_mut(&key) {
            path.irq_lost.1 = false;
        }
        let busy = self.net.paths.get(&key).is_none_or(|path| path.back_busy);
        if !busy {
            self.netback_tx_run(key, p);
        }
        self.netback_rx_flush(key, p);
    }

    fn netback_tx_run<P: Platform + ?Sized>(&mut self, key: VifKey, p: &mut P) {
        loop {
            let net = &mut self.net;
            let Some(path) = net.paths.get_mut(&key) else {
                return;
            };
            let packets = match path.back_tx_consume(&mut self.grants, &net.pages) {
                Ok(packets) => packets,
                Err(fatal) => {
                    return p.trace(&TraceEvent::VifDisabled {
                        dom: key.0,
                        devid: key.1,
                        reason: fatal.error.code(),
                        prod: fatal.prod,
                        cons: fatal.cons,
                    });
                }
            };
            if !packets.is_empty() {
                path.back_busy = true;
                return self.netback_queue(key, NetWorkKind::Tx(packets), p);
            }
            match path.back_tx_final_check() {
                Ok(true) => continue,
                Ok(false) => return,
                Err(overflow) => {
                    return p.trace(&TraceEvent::VifDisabled {
                        dom: key.0,
                        devid: key.1,
                        reason: crate::io::netif::TxError::Truncated.code(),
                        prod: overflow.prod,
                        cons: overflow.base,
                    });
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

    fn netback_queue<P: Platform + ?Sized>(&mut self, key: VifKey, kind: NetWorkKind, p: &mut P) {
        let Some(back) = self.net.paths.get(&key).map(|path| path.params.back_dom) else {
            return;
        };
        let rx_slots = match &kind {
            NetWorkKind::Rx => self
                .net
                .paths
                .get(&key)
                .and_then(|path| path.rx_queue.back())
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
        p.trace(&TraceEvent::NetbackWork {
            item: id,
            dom: key.0,
            devid: key.1,
            rx: matches!(kind, NetWorkKind::Rx),
            packets,
            work_ns,
        });
        let work = NetWork {
            id,
            key,
            back_dom: back,
            kind,
        };
        if work_ns == 0 {
            return self.netback_finish(work, p);
        }
        assert!(
            self.net.work.len() < NET_WORK_ITEMS_MAX,
            "netback work full"
        );
        self.net.work.push_back(work);
        p.backend_work(vcpu0(back), id, work_ns);
        let _ = self.vcpu_wake_event(vcpu0(back), p);
    }

    /// `BackendWorkDone` for a netback item (its id carries [`NET_WORK_BIT`]): the oldest
    /// item of its backend domain (dom0's and a driver domain's run on different vCPUs).
    pub(crate) fn netback_work_done<P: Platform + ?Sized>(
        &mut self,
        item: BackWorkId,
        p: &mut P,
    ) -> Result<(), super::InputError> {
        let Some(index) = self.net.work.iter().position(|w| w.id == item) else {
            return Err(super::InputError::UnknownBackWork(item));
        };
        let back_dom = self.net.work[index].back_dom;
        let older = self.net.work.iter().take(index);
        if older.into_iter().any(|w| w.back_dom == back_dom) {
            return Err(super::InputError::UnknownBackWork(item));
        }
        if let Some(work) = self.net.work.remove(index) {
            self.netback_finish(work, p);
        }
        Ok(())
    }

    /// The backend domain `back_dom` died: the items queued on its vCPU never run (the
    /// frames of a TX batch are counted lost by netfront, `drv_net.rs`).
    pub(crate) fn net_backend_domain_gone(&mut self, back_dom: DomId) {
        self.net.work.retain(|w| w.back_dom != back_dom);
    }

    fn netback_finish<P: Platform + ?Sized>(&mut self, work: NetWork, p: &mut P) {
        let key = work.key;
        if !self.net.ports.contains_key(&key) {
            return; // netback disconnected meanwhile: the batch is dropped.
        }
        match work.kind {
            NetWorkKind::Tx(packets) => self.netback_tx_finish(key, &packets, p),
            NetWorkKind::Rx => self.netback_rx_flush(key, p),
        }
    }

    fn netback_tx_finish<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        packets: &[TxPacket],
        p: &mut P,
    ) {
        let Some(path) = self.net.paths.get_mut(&key) else {
            return;
        };
        let notify = path.back_tx_respond(packets);
        let back_dom = path.params.back_dom;
        for packet in packets {
            if let Some(error) = packet.error {
                let (id, _) = packet.responses.first().copied().unwrap_or((0, 0));
                p.trace(&TraceEvent::NetTxReject {
                    dom: key.0,
                    devid: key.1,
                    id,
                    reason: error.code(),
                    gntst: match error {
                        crate::io::netif::TxError::Grant(code) => code,
                        _ => 0,
                    },
                });
            }
            if let Some(packet) = packet.packet {
                path.counters.tx_forwarded += 1;
                let frame = NetFrame {
                    back_dom,
                    dom: key.0,
                    devid: key.1,
                    packet,
                };
                p.net_transmit(frame);
            }
        }
        path.back_busy = false;
        if notify && self.net_evtchn(key, false, p) {
            self.netfront_irq(key, p);
        }
        self.netback_tx_run(key, p);
    }

    /// `NetDeliver`: a frame from the bridge for `key`'s frontend.
    pub(crate) fn net_deliver<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        packet: NetPacket,
        p: &mut P,
    ) {
        let queued = match self.net.paths.get_mut(&key) {
            Some(path) => path.back_rx_queue(packet),
            None => return self.net_dropped(key, NetDropReason::NoDevice, p),
        };
        if !queued {
            // A frame for a vif whose driver domain died (netfront has not noticed yet).
            let back = self.net.paths.get(&key).map(|path| path.params.back_dom);
            let gone = back.is_some_and(|b| b != DomId::DOM0 && !self.is_alive(b));
            let reason = if gone {
                NetDropReason::BackendGone
            } else {
                NetDropReason::RxRingFull
            };
            return self.net_dropped(key, reason, p);
        }
        self.netback_queue(key, NetWorkKind::Rx, p);
    }

    /// Places what the RX ring has room for; notifies netfront if asked to.
    fn netback_rx_flush<P: Platform + ?Sized>(&mut self, key: VifKey, p: &mut P) {
        let net = &mut self.net;
        let Some(path) = net.paths.get_mut(&key) else {
            return;
        };
        let flush = match path.back_rx_flush(&mut self.grants, &mut net.pages) {
            Ok(flush) => flush,
            Err(overflow) => {
                return p.trace(&TraceEvent::VifDisabled {
                    dom: key.0,
                    devid: key.1,
                    reason: crate::io::netif::TxError::Truncated.code(),
                    prod: overflow.prod,
                    cons: overflow.base,
                });
            }
        };
        self.net_pushed(key, true, flush.slots, flush.notify, p);
    }

    /// netfront's interrupt: TX completions, received frames to the guest, buffers
    /// reposted, and queued frames onto the TX ring.
    fn netfront_irq<P: Platform + ?Sized>(&mut self, key: VifKey, p: &mut P) {
        let net = &mut self.net;
        let Some(path) = net.paths.get_mut(&key) else {
            return;
        };
        path.irq_lost.0 = false;
        let tx = path.front_tx_responses();
        let rx = path.front_rx_responses(&net.pages);
        if let Ok(packets) = rx {
            for packet in packets {
                p.guest_notify(
                    key.0,
                    GuestNotice::NetReceived {
                        devid: key.1,
                        packet,
                    },
                );
            }
        }
        if tx.is_err() || path.front_failed {
            return;
        }
        let refill = path.front_rx_refill(&mut self.grants);
        if refill.notify && self.net_evtchn(key, true, p) {
            self.netback_irq(key, p);
        }
        self.netfront_kick(key, p);
    }

    /// The vif key of a device, if it is a vif with a numeric device directory.
    pub(crate) fn vif_key(conn: &crate::io::handshake::DeviceConn) -> Option<VifKey> {
        if conn.kind != crate::io::handshake::DeviceKind::Vif {
            return None;
        }
        let devid = conn.front_path.rsplit('/').next()?.parse().ok()?;
        Some((conn.front_dom, devid))
    }

    /// netback went Connected on a vif (both rings mapped, its port bound): the data
    /// path starts, with the MAC the toolstack wrote for the frontend.
    pub(crate) fn net_on_backend_connected<P: Platform + ?Sized>(
        &mut self,
        conn: &crate::io::handshake::DeviceConn,
        p: &mut P,
    ) {
        let Some(key) = Self::vif_key(conn) else {
            return;
        };
        let (Some(front_port), Some(back_port)) = (conn.front_port, conn.back_port) else {
            return;
        };
        let mac_path = alloc::format!("{}/mac", conn.front_path);
        let mac = self
            .xenstore
            .node(&mac_path)
            .and_then(|n| core::str::from_utf8(n.value()).ok())
            .and_then(crate::io::vif::parse_mac)
            .unwrap_or([0; 6]);
        let slot = self.net.paths.range((key.0, 0)..=(key.0, u32::MAX)).count();
        let params = crate::io::vif::VifParams {
            front_dom: key.0,
            back_dom: conn.back_dom,
            devid: key.1,
            mac,
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
        };
        self.net_connect(VifPath::new(params), (front_port, back_port));
        p.guest_notify(key.0, GuestNotice::VifConnected { devid: key.1, mac });
    }

    /// The vif of `path` is connected (netback on frontend Connected): netfront posts its
    /// RX buffers.
    pub(crate) fn net_connect(&mut self, mut path: VifPath, ports: (EvtchnPort, EvtchnPort)) {
        let key = (path.params.front_dom, path.params.devid);
        // Reconnected to a re-created backend: netfront's device (and xensim's in-order
        // memory of it) outlived the old rings.
        if let Some(seen) = self.net.kept_seen.remove(&key) {
            path.rx_seen = seen;
        }
        let _ = path.front_rx_refill(&mut self.grants);
        self.net.ports.insert(key, ports);
        self.net.paths.insert(key, path);
    }

    /// netback disconnects from `key`: queued frames go, the ring is served no more.
    pub(crate) fn net_backend_close(&mut self, key: VifKey) {
        self.net.ports.remove(&key);
        if let Some(path) = self.net.paths.get_mut(&key) {
            path.back_disabled = true;
            path.rx_queue.clear();
            path.rx_queue_bytes = 0;
        }
    }

    /// netfront closes `key`: it ends its pool's grants (refs still in use stay granted,
    /// as Linux defers them) and forgets its pages.
    pub(crate) fn net_frontend_close(&mut self, key: VifKey) -> Vec<crate::ids::GrantRef> {
        let Some(path) = self.net.paths.remove(&key) else {
            return Vec::new();
        };
        let mut kept = Vec::new();
        for page in path.tx_pool.iter().chain(&path.rx_pool) {
            self.net.pages.forget(page.mfn);
            let Some(table) = self.grants.table_mut(key.0) else {
                continue;
            };
            if table.guest_end_access(page.gref) != Ok(true) {
                kept.push(page.gref);
            }
        }
        kept
    }

    /// The data path of `dom`'s vif `devid`, if connected.
    pub fn vif_path(&self, dom: DomId, devid: u32) -> Option<&VifPath> {
        self.net.paths.get(&(dom, devid))
    }

    /// The same, writable: what a guest scribbling on its own ring pages reaches.
    pub fn vif_path_mut(&mut self, dom: DomId, devid: u32) -> Option<&mut VifPath> {
        self.net.paths.get_mut(&(dom, devid))
    }

    /// Every connected vif, in (domain, devid) order.
    pub fn vif_paths(&self) -> impl Iterator<Item = (&VifKey, &VifPath)> {
        self.net.paths.iter()
    }

    /// Pages the vif data paths hold (teardown tests).
    pub fn net_pages(&self) -> usize {
        self.net.pages.len()
    }

    /// The vif checks (`VifPath::check`) and the host-wide bounds.
    pub(crate) fn net_check(&self, out: &mut Vec<crate::sched::Violation>) {
        for (key, path) in &self.net.paths {
            let mut broken = Vec::new();
            path.check(&mut broken);
            for invariant in broken {
                let detail = alloc::format!("d{} vif {}", key.0.raw(), key.1);
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
        if self.net.work.len() > NET_WORK_ITEMS_MAX {
            let detail = alloc::format!("{} items", self.net.work.len());
            let invariant = "vif.work_bound";
            out.push(crate::sched::Violation { invariant, detail });
        }
    }
}
