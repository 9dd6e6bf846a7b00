//! A vif's data path as the drivers' handshake starts and ends it: the queues and their
//! ports once netback connected, where each queue's interrupts go, the close of each end,
//! the accessors the sim and the tests read, and the vif checks.
//!
//! Interrupt affinity: each end's kernel spreads the per-queue interrupts over its vCPUs,
//! as irqbalance does on Linux (netfront's `<dev>-q<q>-tx`/`-rx` IRQs, netback's
//! `vif<F>.<D>-q<q>-tx`/`-rx`): queue `q`'s ports of a domain with `n` online vCPUs are
//! bound to vCPU `q mod n` with `EVTCHNOP_bind_vcpu` as soon as the end holds them (the
//! frontend after `alloc_unbound`, the backend after `bind_interdomain`). So a
//! notification wakes the vCPU that runs the queue's work (netback's work for queue `q`
//! runs on its vCPU `q mod n`, `net_glue.rs`), and a one-queue vif stays on vCPU 0. Xen
//! lets a guest move its unbound and interdomain ports (`evtchn_bind_vcpu`, which sets
//! `notify_vcpu_id`); the ports of a queue are never IPI or per-vCPU VIRQ ports.
//!
//! Follows Linux drivers/net/xen-netback/interface.c (`xenvif_connect_data` per queue,
//! `xenvif_disconnect_data`) and xen-netfront.c (`xennet_disconnect_backend`), Xen's
//! xen/common/event_channel.c (`evtchn_bind_vcpu`); the data path itself is
//! `net_glue.rs`.
//!
//! # Invariants
//! - A connected vif has one port set per queue (checked: `vif.queue_ports`).
//! - Queue `q`'s ports notify vCPU `q mod n` of their domain while connected (checked:
//!   `vif.queue_affinity`).
//!
//! xensim differs / leaves out: irqbalance moves IRQs after it samples their load (every
//! 10 s by default) and may put several queues on one vCPU; xensim places them at once,
//! round robin. Reconnecting a closed vif builds a new path (new handshake).

use alloc::vec::Vec;

use super::net_glue::{QueuePorts, VifKey, NET_WORK_ITEMS_MAX};
use super::Hypervisor;
use crate::evtchn::PortState;
use crate::ids::{DomId, EvtchnPort, VcpuId};
use crate::io::vif::VifPath;
use crate::platform::Platform;
use crate::toolstack::ops::GuestNotice;

impl Hypervisor {
    /// The vif key of a device, if it is a vif with a numeric device directory.
    pub(crate) fn vif_key(conn: &crate::io::handshake::DeviceConn) -> Option<VifKey> {
        if conn.kind != crate::io::handshake::DeviceKind::Vif {
            return None;
        }
        let devid = conn.front_path.rsplit('/').next()?.parse().ok()?;
        Some((conn.front_dom, devid))
    }

    /// The vCPU index that takes queue `queue`'s interrupts and work in `dom`: `queue mod
    /// (online vCPUs)` (irqbalance's spread, see the module doc).
    pub(crate) fn vif_queue_vcpu(&self, dom: DomId, queue: u32) -> VcpuId {
        let index = queue % self.online_vcpus(dom).max(1);
        VcpuId::new(index).unwrap_or(VcpuId::new(0).expect("vCPU 0"))
    }

    /// `EVTCHNOP_bind_vcpu` by `dom`'s kernel: `port`, one of queue `queue`'s, to the
    /// queue's vCPU. Xen accepts it for the unbound and interdomain ports a queue holds.
    pub(crate) fn vif_port_affinity(&mut self, dom: DomId, queue: u32, port: EvtchnPort) {
        let vcpu = self.vif_queue_vcpu(dom, queue);
        let bound = self.evtchn.bind_vcpu(dom, port, vcpu.raw());
        debug_assert!(
            bound.is_ok(),
            "d{} port {} to {vcpu:?}",
            dom.raw(),
            port.raw()
        );
    }

    /// The MAC the toolstack wrote for `conn`'s frontend (`~/device/vif/N/mac`), zero if it
    /// is missing or not a MAC.
    pub(crate) fn vif_front_mac(&self, conn: &crate::io::handshake::DeviceConn) -> [u8; 6] {
        let mac_path = alloc::format!("{}/mac", conn.front_path);
        self.xenstore
            .node(&mac_path)
            .and_then(|n| core::str::from_utf8(n.value()).ok())
            .and_then(crate::io::vif::parse_mac)
            .unwrap_or([0; 6])
    }

    /// netback went Connected on a vif (every queue's rings mapped, its ports bound): the
    /// data path starts, with the MAC the toolstack wrote for the frontend.
    pub(crate) fn net_on_backend_connected<P: Platform + ?Sized>(
        &mut self,
        conn: &crate::io::handshake::DeviceConn,
        p: &mut P,
    ) {
        let Some(key) = Self::vif_key(conn) else {
            return;
        };
        let Some(ports) = queue_ports(conn) else {
            return;
        };
        let mac = self.vif_front_mac(conn);
        let slot = self.net.paths.count_of(key.0);
        let params = crate::io::vif::VifParams {
            front_dom: key.0,
            back_dom: conn.back_dom,
            devid: key.1,
            mac,
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
        };
        let queue_count = u32::try_from(ports.len()).unwrap_or(1);
        self.net_connect(VifPath::new(params, queue_count), ports);
        self.vif_notify(key, GuestNotice::VifConnected { devid: key.1, mac }, p);
    }

    /// The vif of `path` is connected (netback on frontend Connected): netfront posts its
    /// RX buffers on every queue.
    pub(crate) fn net_connect(&mut self, mut path: VifPath, ports: Vec<QueuePorts>) {
        assert_eq!(path.queues.len(), ports.len(), "one port set per queue");
        let key = (path.params.front_dom, path.params.devid);
        // Reconnected to a re-created backend: netfront's device (and xensim's in-order
        // memory of each queue) outlived the old rings.
        if let Some(kept) = self.net.kept_seen.remove(&key) {
            for (queue, seen) in path.queues.iter_mut().zip(kept) {
                queue.rx_seen = seen;
            }
        }
        for queue in &mut path.queues {
            let _ = queue.front_rx_refill(&mut self.grants);
        }
        self.net.ports.insert(key, ports);
        self.net.paths.insert(key, path);
    }

    /// netback disconnects from `key`: queued frames go, no ring is served any more.
    pub(crate) fn net_backend_close(&mut self, key: VifKey) {
        self.net.ports.remove(&key);
        if let Some(path) = self.net.paths.get_mut(&key) {
            path.disable_back();
            for queue in &mut path.queues {
                queue.rx_queue.clear();
                queue.rx_queue_bytes = 0;
            }
        }
    }

    /// netfront closes `key`: it ends every queue's pool grants (refs still in use stay
    /// granted, as Linux defers them) and forgets its pages.
    pub(crate) fn net_frontend_close(&mut self, key: VifKey) -> Vec<crate::ids::GrantRef> {
        let Some(path) = self.net.paths.remove(&key) else {
            return Vec::new();
        };
        let mut kept = Vec::new();
        let pages = path
            .queues
            .iter()
            .flat_map(|q| q.tx_pool.iter().chain(&q.rx_pool));
        for page in pages {
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

    /// The vif checks (`VifPath::check`), one port set per queue, and the host-wide bounds.
    pub(crate) fn net_check(&self, out: &mut Vec<crate::sched::Violation>) {
        for (key, path) in self.net.paths.iter() {
            let mut broken = Vec::new();
            path.check(&mut broken);
            let ports = self.net.ports.get(key).map_or(0, Vec::len);
            if ports != path.queues.len() && !path.back_disabled() {
                broken.push("vif.queue_ports");
            }
            if !self.vif_affinity_holds(path, self.net.ports.get(key)) {
                broken.push("vif.queue_affinity");
            }
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

impl Hypervisor {
    /// Every still-bound port of every queue notifies the queue's vCPU of its domain.
    fn vif_affinity_holds(&self, path: &VifPath, ports: Option<&Vec<QueuePorts>>) -> bool {
        let (front, back) = (path.params.front_dom, path.params.back_dom);
        let ends = ports
            .into_iter()
            .flatten()
            .enumerate()
            .flat_map(|(q, set)| {
                let q = u32::try_from(q).unwrap_or(u32::MAX);
                [set.tx, set.rx].map(|(f, b)| [(front, f, q), (back, b, q)])
            });
        ends.flatten().all(|(dom, port, q)| {
            let Some(d) = self.evtchn.domain(dom) else {
                return true;
            };
            let bound = matches!(d.state(port), Some(PortState::Interdomain { .. }));
            !bound || d.notify_vcpu(port) == Some(self.vif_queue_vcpu(dom, q))
        })
    }
}

/// The port sets of a connected vif's queues from its device ends (ports in the order of
/// `io::handshake`): `None` unless both ends hold a port for every queue.
fn queue_ports(conn: &crate::io::handshake::DeviceConn) -> Option<Vec<QueuePorts>> {
    let front = conn.front_ports();
    let back = conn.back_ports();
    let per_queue = if conn.split_evtchn { 2 } else { 1 };
    let queues = usize::try_from(conn.queue_count.max(1)).ok()?;
    if front.len() != queues * per_queue || back.len() != front.len() {
        return None;
    }
    let pairs: Vec<(EvtchnPort, EvtchnPort)> = front.into_iter().zip(back).collect();
    let sets = pairs
        .chunks(per_queue)
        .map(|c| QueuePorts {
            tx: c[0],
            rx: c[per_queue - 1],
        })
        .collect();
    Some(sets)
}
