//! Driver domains for vifs: what a network driver domain's death does to the vifs it
//! backs, the frames in flight at that moment, and netfront's reconnect to the backend
//! xensim's `xl devd` re-creates (spec `xenstore-io.md` §4.5; the vbd side and the shared
//! steps are `drv_glue.rs`).
//!
//! The death ([`Hypervisor::net_backend_vanish`]): netback goes with its domain, so the
//! frames it queued for the frontend (`rx_queue`) and the TX batch on its vCPU are lost.
//! netfront, when it reads its backend gone ([`Hypervisor::net_frontend_backend_gone`]),
//! gives up what it still had in flight, as `xennet_disconnect_backend` with
//! `xennet_release_tx_bufs` / `xennet_release_rx_bufs` does: the packets on the TX ring
//! that netback never answered (TX batches the dead backend held among them), the qdisc's
//! backlog (the carrier went off) and the RX responses it had not polled. Every one of
//! them is counted as dropped ([`NetDropReason::BackendGone`]) at the end of the input;
//! none is sent again by the driver, so none can arrive twice.
//!
//! The reconnect (`netback_changed` after `xenbus_dev_resume` + `netfront_resume`): on
//! the new backend's InitWait netfront sets up fresh rings (`talk_to_netback`), and at
//! Connected it posts its RX buffers again (`xennet_connect` → `xennet_alloc_rx_buffers`).
//! The netdev outlives the rings, so xensim's in-order memory of it (each queue's
//! `rx_seen`) is kept across the reconnect and the `vif.in_order` check spans both
//! backends (a queue the new connection does not have starts afresh).
//!
//! # Invariants
//! - Frames lost with a backend are counted in the input that lost them (`lost` is empty
//!   between inputs).
//! - A vif has kept in-order memory only while it has no data path.
//!
//! xensim differs / leaves out on purpose: the guest's TCP (the `io` workload's
//! retransmission after `TCP_RTO_MIN`) recovers the requests lost, not netfront.

use alloc::vec::Vec;

use super::net_glue::{NetDropReason, VifKey};
use super::Hypervisor;
use crate::ids::DomId;
use crate::io::handshake::DeviceConn;
use crate::platform::Platform;
use crate::toolstack::xs_tree::{self, DeviceAdd};

impl Hypervisor {
    /// The backend of `key` dies with its domain: netback's queued RX frames (of every
    /// queue) are lost and it serves the rings no more.
    pub(super) fn net_backend_vanish(&mut self, key: VifKey) {
        let queued = self.net.paths.get(&key).map_or(0, |path| {
            path.queues.iter().map(|q| q.rx_queue.len()).sum::<usize>()
        });
        self.net_lose(key, queued);
        self.net_backend_close(key);
    }

    /// netfront finds its backend gone: what it had in flight on every queue is dropped
    /// (TX packets the backend never answered, the backlog, RX responses not polled), and
    /// each queue's in-order memory is kept for the reconnect.
    pub(super) fn net_frontend_backend_gone(&mut self, key: VifKey) {
        let net = &mut self.net;
        let Some(path) = net.paths.get_mut(&key) else {
            return;
        };
        let mut frames = 0usize;
        let mut seen = Vec::with_capacity(path.queues.len());
        for q in &mut path.queues {
            let c = &q.counters;
            let unanswered = c
                .tx_packets
                .saturating_sub(c.tx_forwarded)
                .saturating_sub(c.tx_errors);
            let backlog = q.tx_backlog.len();
            q.tx_backlog.clear();
            let mut rx = Vec::new();
            let unpolled = q
                .front_rx_responses(&net.pages, &mut rx)
                .map_or(0, |()| rx.len());
            seen.push(core::mem::take(&mut q.rx_seen));
            let tx = usize::try_from(unanswered).unwrap_or(usize::MAX);
            frames = frames
                .saturating_add(tx)
                .saturating_add(backlog)
                .saturating_add(unpolled);
        }
        net.kept_seen.insert(key, seen);
        self.net_lose(key, frames);
    }

    fn net_lose(&mut self, key: VifKey, frames: usize) {
        if frames == 0 {
            return;
        }
        let frames = u32::try_from(frames).unwrap_or(u32::MAX);
        let lost = self.net.lost.entry(key).or_insert(0);
        *lost = lost.saturating_add(frames);
    }

    /// End of an input: every frame lost with a backend is traced and told to its guest
    /// as a drop.
    pub(crate) fn net_flush_lost<P: Platform + ?Sized>(&mut self, p: &mut P) {
        if self.net.lost.is_empty() {
            return; // The common case: no backend died during this input.
        }
        for (key, frames) in core::mem::take(&mut self.net.lost) {
            for _ in 0..frames {
                self.net_dropped(key, NetDropReason::BackendGone, p);
            }
        }
    }

    /// The vif `xl devd` in `dom` (named `name`) re-creates for `conn`: the `vif=` entry
    /// of that devid names it.
    pub(super) fn devd_vif(
        &self,
        front: DomId,
        conn: &DeviceConn,
        dom: DomId,
        name: &str,
    ) -> Option<DeviceAdd> {
        let (_, devid) = Self::vif_key(conn)?;
        let d = self.domains.get(front)?;
        let config = d.config.as_ref()?;
        let vif = config.vifs.get(usize::try_from(devid).ok()?)?;
        if vif.backend.as_deref() != Some(name) {
            return None;
        }
        let hvm = config.guest_type == crate::toolstack::config::GuestType::Hvm;
        let (raw_front, raw_back) = (u32::from(front.raw()), u32::from(dom.raw()));
        Some(xs_tree::vif(raw_front, hvm, vif, &d.uuid, devid, raw_back))
    }

    /// How often `dom`'s vif `devid` reconnected to a re-created backend.
    pub fn vif_reconnects(&self, dom: DomId, devid: u32) -> u32 {
        self.net.reconnects.get(&(dom, devid)).copied().unwrap_or(0)
    }

    /// The vifs of `dom` that reconnected to a re-created backend, by devid.
    pub fn vifs_reconnected(&self, dom: DomId) -> impl Iterator<Item = u32> + '_ {
        self.net
            .reconnects
            .range((dom, 0)..=(dom, u32::MAX))
            .map(|(key, _)| key.1)
    }

    /// The driver-domain checks of vifs: kept in-order memory only without a data path,
    /// and no lost frame left uncounted between inputs.
    pub(crate) fn drv_net_check(&self, out: &mut Vec<crate::sched::Violation>) {
        for key in self.net.kept_seen.keys() {
            if self.net.paths.contains_key(key) {
                let detail = alloc::format!("d{} vif {} keeps its old flows", key.0.raw(), key.1);
                let invariant = "vif.kept_closed";
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
        if !self.net.lost.is_empty() {
            let detail = alloc::format!("{} vifs", self.net.lost.len());
            let invariant = "vif.lost_counted";
            out.push(crate::sched::Violation { invariant, detail });
        }
    }
}
