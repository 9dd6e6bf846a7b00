//! The split drivers' XenBus steps run against the host's XenStore, grant tables and
//! event channels: netback/blkback in dom0 on dom0's ring connection, netfront/blkfront
//! in the guest on the guest's ring connection, in the order of spec `xenstore-io.md`
//! §4.3 (vif) and §4.4 (vbd), and the close of §4.5.
//!
//! The steps run when the drivers' XenStore watches fire (`xenbus_watch.rs` routes each
//! event to its reaction on its kernel's xenwatch thread, one `io.xenbus_step_ns` per
//! reaction); each step's requests are xenstored work in dom0 (`xenstored.rs`), so a
//! step's own writes reach the other end only after dom0 ran that work. `xl create`
//! returns once every backend is ready (see below). The close runs through the same watches: a
//! destroy's forced remove (frontend directory gone, backend `online = 0` and Closing,
//! `xenbus_glue.rs`), an unplug by `online = 0`, or a frontend's Closing;
//! [`Hypervisor::xenbus_close`] then only drops the watches and walks what the drivers
//! never opened far enough to close themselves.
//!
//! # Invariants
//! - Every state write is legal for its end (`io::xenbus::legal`, asserted) and traced.
//! - A backend at Connected maps every ring ref of its frontend and holds a port bound to
//!   the frontend's (checked in `check.rs`).
//! - After the close a device holds no grant, mapping or port; the toolstack then removes
//!   its directories.
//!
//! `xl create` returns once every backend is ready (InitWait), as libxl's
//! `libxl__wait_device_connection` does; the frontends connect after it.
//!
//! xensim differs: a guest's frontends run their handshake whether or not the guest runs
//! (a paused guest's too); in Xen they start when the guest's kernel probes its devices.

use alloc::string::String;
use alloc::vec::Vec;

use super::xenbus_xs::DriverXs;
use super::Hypervisor;
use crate::grant::{FrameError, GuestFrames, MapFlags, MapRequest};
use crate::ids::{DomId, EvtchnPort, Gfn, GrantRef, Mfn};
use crate::io::handshake::{self, DeviceConn, DeviceKind, FIRST_DRIVER_GREF};
use crate::io::xenbus::{legal, End, XenbusState};
use crate::platform::Platform;
use crate::toolstack::xs_tree::DeviceAdd;
use crate::trace::TraceEvent;

/// Stand-in physmap for ring pages: `mfn = domid << 32 | gfn`. xensim differs: the memory
/// subsystem does not back individual gfns yet.
pub(super) struct StandInFrames;

impl GuestFrames for StandInFrames {
    fn translate(&self, dom: DomId, gfn: Gfn, _readonly: bool) -> Result<Mfn, FrameError> {
        Ok(Mfn::new((u64::from(dom.raw()) << 32) | gfn.raw()))
    }
}

impl Hypervisor {
    /// The drivers learn of every vif and vbd of `dom` the toolstack just wrote (both
    /// ends at Initialising); the bus watches' events then probe them
    /// (`xenbus_watch.rs`).
    /// A device whose backend domain is not running (gone, or never introduced to the
    /// store) has no driver to probe it and is not tracked.
    pub(crate) fn xenbus_connect(&mut self, dom: DomId, devices: &[DeviceAdd]) {
        for device in devices {
            let Some(kind) = DeviceKind::from_name(device.kind) else {
                continue;
            };
            let back = u16::try_from(device.backend_dom)
                .ok()
                .and_then(DomId::new)
                .filter(|b| self.backend_kernel_runs(*b));
            let Some(back) = back else {
                continue;
            };
            let conn = DeviceConn::new(
                kind,
                dom,
                back,
                device.frontend_path(),
                device.backend_path(),
            );
            self.xenbus.entry(dom).or_default().push(conn);
            self.xenbus_changed();
        }
    }

    /// True if `dom`'s kernel runs backends: dom0, or a live driver domain whose kernel
    /// has its store ring (it watches `~/backend` from then on).
    pub(crate) fn backend_kernel_runs(&self, dom: DomId) -> bool {
        if dom == DomId::DOM0 {
            return true;
        }
        let driver = self.domains.get(dom).is_some_and(|d| {
            d.dying == crate::domain::Dying::Alive
                && d.config.as_ref().is_some_and(|c| c.driver_domain)
        });
        driver && self.xenstore.domain_conn(u32::from(dom.raw())).is_some()
    }

    /// Backend probe: feature keys (and the hotplug script's), then InitWait.
    pub(super) fn backend_probe(&mut self, conn: &mut DeviceConn) {
        let vcpus = self.domains.get(conn.back_dom).map_or(1, |d| d.vcpus.len());
        let offer = match conn.kind {
            DeviceKind::Vif => self.netback_offer(conn.back_dom),
            DeviceKind::Vbd => handshake::BackendOffer {
                queues_max: u32::try_from(vcpus).unwrap_or(1),
                split_evtchn: false,
                xdp_headroom: false,
            },
        };
        for (key, value) in handshake::backend_probe_keys(conn.kind, offer) {
            let path = alloc::format!("{}/{key}", conn.back_path);
            self.xs_drive_write(DriverXs::of(conn.back_dom), None, &path, value.as_bytes());
        }
        self.set_state(conn, End::Backend, XenbusState::InitWait);
    }

    /// Frontend on backend InitWait: grant the ring page(s) to the backend (a vif's TX and
    /// RX ring per queue), allocate its unbound port(s), write the transport keys in one
    /// transaction, then Initialised (vbd) or Connected (vif, netfront skips 3). False if
    /// a grant or port failed.
    pub(super) fn frontend_publish(&mut self, conn: &mut DeviceConn, slot: usize) -> bool {
        let (front, back) = (conn.front_dom, conn.back_dom);
        let layout = match conn.kind {
            DeviceKind::Vif => self.netfront_layout(conn),
            DeviceKind::Vbd => handshake::VifLayout::SINGLE,
        };
        if layout.xdp_headroom {
            self.netfront_write_xdp_headroom(conn);
        }
        for queue in 0..layout.queues {
            for page in 0..conn.kind.ring_pages() {
                let Some(gref) = self.free_driver_gref(front) else {
                    return false;
                };
                let gfn = handshake::ring_gfn(slot, queue, page);
                let Some(table) = self.grants.table_mut(front) else {
                    return false;
                };
                let frame = u32::try_from(gfn).unwrap_or(u32::MAX);
                if table.guest_grant_access(gref, back, frame, false).is_err() {
                    return false;
                }
                conn.ring_refs.push(gref);
            }
        }
        let mut ports = Vec::new();
        for index in 0..layout.queues * layout.ports_per_queue() {
            let Ok(port) = self.evtchn.alloc_unbound(front, front, back) else {
                return false;
            };
            if conn.kind == DeviceKind::Vif {
                self.vif_port_affinity(front, index / layout.ports_per_queue(), port);
            }
            ports.push(port);
            conn.front_port = ports.first().copied();
            conn.more_front_ports = ports.get(1..).unwrap_or_default().to_vec();
        }
        if conn.kind == DeviceKind::Vif {
            conn.queue_count = layout.queues;
            conn.split_evtchn = layout.split;
        }
        // talk_to_netback / talk_to_blkback: the keys in one transaction. A broken ring
        // fails the publish (the device stays where it is until the close).
        let who = DriverXs::Guest(front);
        let Ok(tx) = self.driver_tx_start(who) else {
            return false;
        };
        for (key, value) in handshake::frontend_keys(conn.kind, &conn.ring_refs, &ports, layout) {
            let path = alloc::format!("{}/{key}", conn.front_path);
            if self
                .driver_write(who, Some(tx), &path, value.as_bytes())
                .is_err()
            {
                let _ = self.driver_tx_end(who, tx, false);
                return false;
            }
        }
        if self.driver_tx_end(who, tx, true).is_err() {
            return false;
        }
        let next = match conn.kind {
            DeviceKind::Vif => XenbusState::Connected,
            DeviceKind::Vbd => XenbusState::Initialised,
        };
        self.set_state(conn, End::Frontend, next);
        true
    }

    /// Backend on frontend Initialised (vbd) or Connected (vif): read the transport keys,
    /// map the ring grant(s), bind the port(s), write the connect keys, then Connected. A
    /// vif's queues are netback's (`net_xenbus.rs`), which may refuse the frontend.
    pub(super) fn backend_connect<P: Platform + ?Sized>(
        &mut self,
        conn: &mut DeviceConn,
        p: &mut P,
    ) -> bool {
        if conn.kind == DeviceKind::Vif {
            if !self.netback_connect(conn, p) {
                return false;
            }
            self.set_state(conn, End::Backend, XenbusState::Connected);
            self.net_on_backend_connected(conn, p);
            return true;
        }
        let back = DriverXs::of(conn.back_dom);
        let Some(raw) = self.xs_read_u32(back, &conn.front_path, "ring-ref") else {
            return false;
        };
        let req = MapRequest {
            granter: conn.front_dom,
            gref: GrantRef::new(raw),
            flags: MapFlags::HOST_RW,
        };
        match self
            .grants
            .map_grant_ref(conn.back_dom, req, &StandInFrames)
        {
            Ok(mapped) => conn.ring_handles.push(mapped.handle),
            Err(_) => return false,
        }
        let Some(port) = self.xs_read_u32(back, &conn.front_path, "event-channel") else {
            return false;
        };
        let port = EvtchnPort::new(port);
        match self
            .evtchn
            .bind_interdomain(conn.back_dom, conn.front_dom, port)
        {
            Ok(bound) => {
                conn.back_port = Some(bound.port);
                self.deliver_notify(bound.notify, p);
            }
            Err(_) => return false,
        }
        let read_only = self
            .xenstore
            .node(&alloc::format!("{}/mode", conn.back_path))
            .is_some_and(|n| n.value() == b"r");
        for (key, value) in handshake::backend_connect_keys(conn.kind, read_only) {
            let path = alloc::format!("{}/{key}", conn.back_path);
            self.xs_drive_write(back, None, &path, value.as_bytes());
        }
        self.set_state(conn, End::Backend, XenbusState::Connected);
        true
    }

    /// What is left of §4.5 for every device of `dom` once the destroy's unplug settled
    /// (`xenbus_unplug_all` started it; the drivers close on their watches), before the
    /// toolstack removes the directories: the watches go, and a device the drivers left
    /// open (a create that failed before its devices were probed) is walked to Closed
    /// here. Returns the drivers' time for what was walked here.
    pub(crate) fn xenbus_close(&mut self, dom: DomId) -> i64 {
        let conns = self.xenbus.remove(&dom).unwrap_or_default();
        // I/Os held for a backend that never came back go with the guest.
        self.blk.held.retain(|key, _| key.0 != dom);
        self.xenbus_changed();
        let mut steps: i64 = 0;
        for mut conn in conns {
            steps = steps.saturating_add(self.close_one(&mut conn));
        }
        self.costs.xenbus_step_ns.saturating_mul(steps)
    }

    /// One device's close, with its watches removed. Returns the driver steps taken.
    fn close_one(&mut self, conn: &mut DeviceConn) -> i64 {
        let mut steps = 0;
        self.unwatch_otherends(conn);
        if legal(End::Frontend, conn.front_state, XenbusState::Closing)
            && conn.front_state != XenbusState::Closing
        {
            self.set_state(conn, End::Frontend, XenbusState::Closing);
            steps += 1;
        }
        let backend_open = conn.back_state != XenbusState::Closed
            || !conn.ring_handles.is_empty()
            || conn.back_port.is_some();
        if backend_open {
            self.backend_close(conn, true);
            steps += 1;
        }
        if conn.front_state != XenbusState::Closed
            || !conn.ring_refs.is_empty()
            || conn.front_port.is_some()
        {
            self.frontend_close_finish(conn);
            steps += 1;
        }
        steps
    }

    /// The backend stops: unmaps the rings, closes its port, goes Closing, and Closed if
    /// `to_closed`. Results are ignored: a domain killed before its close has already
    /// lost its ports (the backend's became unbound).
    pub(super) fn backend_close(&mut self, conn: &mut DeviceConn, to_closed: bool) {
        if let Some(key) = Self::vbd_key(conn) {
            self.blk_backend_close(key);
        }
        if let Some(key) = Self::vif_key(conn) {
            self.net_backend_close(key);
        }
        for handle in core::mem::take(&mut conn.ring_handles) {
            let _ = self.grants.unmap_grant_ref(conn.back_dom, handle);
        }
        for port in conn.take_back_ports() {
            let _ = self.evtchn.close(conn.back_dom, port);
        }
        let targets: &[XenbusState] = if to_closed {
            &[XenbusState::Closing, XenbusState::Closed]
        } else {
            &[XenbusState::Closing]
        };
        for to in targets {
            if legal(End::Backend, conn.back_state, *to) && conn.back_state != *to {
                self.set_state(conn, End::Backend, *to);
            }
        }
    }

    /// The frontend on backend Closed (or gone): revoke, close, Closed. A ref the
    /// backend still maps (its directory was removed under it by a client) stays granted
    /// and is ended at the next close, as Linux defers `gnttab_end_foreign_access` of a
    /// grant in use.
    pub(super) fn frontend_close_finish(&mut self, conn: &mut DeviceConn) {
        if let Some(key) = Self::vbd_key(conn) {
            // Pool refs the backend still maps stay granted with the ring refs.
            let kept = self.blk_frontend_close(key);
            conn.ring_refs.extend(kept);
        }
        if let Some(key) = Self::vif_key(conn) {
            let kept = self.net_frontend_close(key);
            conn.ring_refs.extend(kept);
        }
        let refs = core::mem::take(&mut conn.ring_refs);
        for gref in refs {
            let Some(table) = self.grants.table_mut(conn.front_dom) else {
                continue; // The guest's table is gone with it: nothing to end.
            };
            if table.guest_end_access(gref) != Ok(true) {
                conn.ring_refs.push(gref);
            }
        }
        for port in conn.take_front_ports() {
            let _ = self.evtchn.close(conn.front_dom, port);
        }
        if conn.front_state != XenbusState::Closed {
            self.set_state(conn, End::Frontend, XenbusState::Closed);
        }
    }

    /// blkfront on backend Connected: read the disk's properties and the backend's
    /// `feature-max-indirect-segments` (indirect requests only if it is present, with
    /// blkfront's own cap), start the data path, then Connected.
    pub(super) fn frontend_connect(&mut self, conn: &mut DeviceConn) {
        let who = DriverXs::Guest(conn.front_dom);
        let mut values: [Option<u64>; 4] = [None; 4];
        let keys = [
            "sectors",
            "info",
            "sector-size",
            "feature-max-indirect-segments",
        ];
        for (value, key) in values.iter_mut().zip(keys) {
            let path = alloc::format!("{}/{key}", conn.back_path);
            let read = self.driver_read(who, &path).ok();
            let text = read.and_then(|v| String::from_utf8(v).ok());
            *value = text.and_then(|t| t.parse().ok());
        }
        let [sectors, info, _, max_indirect] = values;
        let vdev = conn
            .front_path
            .rsplit('/')
            .next()
            .and_then(|v| v.parse().ok());
        if let (Some(vdev), Some(front_port), Some(back_port)) =
            (vdev, conn.front_port, conn.back_port)
        {
            let back_max = max_indirect.map_or(0, |m| u32::try_from(m).unwrap_or(u32::MAX));
            let front_max = back_max.min(crate::io::blkif::BLKFRONT_MAX_INDIRECT_SEGMENTS);
            let front_max = if front_max > 11 { front_max } else { 0 };
            let slot = self.blk.paths.count_of(conn.front_dom);
            let params = crate::io::vbd::VbdParams {
                front_dom: conn.front_dom,
                back_dom: conn.back_dom,
                vdev,
                back_max_indirect: back_max,
                front_max_indirect: front_max,
                read_only: info.is_some_and(|i| i & 4 != 0),
                sectors: sectors.unwrap_or(0),
                slot: u32::try_from(slot).unwrap_or(u32::MAX),
            };
            let path = crate::io::vbd::VbdPath::new(params);
            self.blk_connect(path, (front_port, back_port));
        }
        self.set_state(conn, End::Frontend, XenbusState::Connected);
    }

    /// The vbd key of a device, if it is a vbd with a numeric device directory.
    pub(crate) fn vbd_key(conn: &DeviceConn) -> Option<(DomId, u32)> {
        if conn.kind != DeviceKind::Vbd {
            return None;
        }
        let vdev = conn.front_path.rsplit('/').next()?.parse().ok()?;
        Some((conn.front_dom, vdev))
    }

    /// Writes `to` to `end`'s `state` key on its own connection.
    pub(super) fn set_state(&mut self, conn: &mut DeviceConn, end: End, to: XenbusState) {
        let (from, dir, xs) = match end {
            End::Frontend => (
                conn.front_state,
                &conn.front_path,
                DriverXs::Guest(conn.front_dom),
            ),
            End::Backend => (
                conn.back_state,
                &conn.back_path,
                DriverXs::of(conn.back_dom),
            ),
        };
        assert!(legal(end, from, to), "{end:?} {from:?} -> {to:?} at {dir}");
        // A directory someone removed under the driver: `xenbus_switch_state` fails and
        // the driver only records the state.
        let path = alloc::format!("{dir}/state");
        if self.xenstore.node(dir).is_some() {
            let value = alloc::format!("{}", to.number());
            self.xs_drive_write(xs, None, &path, value.as_bytes());
        }
        self.xenbus_traces.push(TraceEvent::XenbusState {
            path,
            state: to.number(),
        });
        match end {
            End::Frontend => conn.front_state = to,
            End::Backend => conn.back_state = to,
        }
        self.xenbus_changed();
    }

    /// A driver's write into its own directory. dom0's cannot fail (it is privileged); a
    /// guest's (a frontend, or a driver domain's backend) fails only on a broken ring, and
    /// Linux's driver then carries on (`xenbus_dev_fatal` is not modelled).
    fn xs_drive_write(
        &mut self,
        who: DriverXs,
        tx: Option<crate::ids::XsTxId>,
        path: &str,
        value: &[u8],
    ) {
        let written = self.driver_write(who, tx, path, value);
        debug_assert!(
            written.is_ok() || who != DriverXs::Dom0,
            "backend write {path}: {written:?}"
        );
    }

    /// A decimal key under `dir`, `None` if missing or not a number.
    pub(super) fn xs_read_u32(&mut self, who: DriverXs, dir: &str, key: &str) -> Option<u32> {
        let path = alloc::format!("{dir}/{key}");
        let value = self.driver_read(who, &path).ok()?;
        let text = String::from_utf8(value).ok()?;
        text.parse().ok()
    }

    /// The first ref at or above [`FIRST_DRIVER_GREF`] the guest has not granted.
    fn free_driver_gref(&self, dom: DomId) -> Option<GrantRef> {
        let table = self.grants.table(dom)?;
        (FIRST_DRIVER_GREF..u32::MAX)
            .map(GrantRef::new)
            .map_while(|gref| table.entry(gref).map(|e| (gref, e)))
            .find(|(_, e)| e.flags == 0)
            .map(|(gref, _)| gref)
    }

    /// The device ends the drivers hold for `dom`.
    pub fn device_conns(&self, dom: DomId) -> &[DeviceConn] {
        self.xenbus.get(&dom).map_or(&[], Vec::as_slice)
    }
}
