//! The split drivers' XenBus handshake run against the host's XenStore, grant tables and
//! event channels: netback/blkback in dom0 on dom0's ring connection, netfront/blkfront
//! in the guest on the guest's ring connection, in the exact order of spec
//! `xenstore-io.md` §4.3 (vif) and §4.4 (vbd), and the close of §4.5 at destroy.
//!
//! Each driver step (a xenbus thread waking on a watch, reading, acting, writing) costs
//! `io.xenbus_step_ns`. Connect: after the create job wrote the directories, each later
//! wake of the job runs one round (every device's next due step, drivers in parallel) and
//! defers the job by one step, so the states advance in virtual time and `xl create`
//! returns once the handshake settled. Close: the steps run in order inside the destroy
//! job's device step, their time added to its deferral. xensim differs: the drivers'
//! watch events are not queued; a paused guest's frontend still runs its handshake.
//!
//! # Invariants
//! - Every state write is legal for its end (`io::xenbus::legal`, asserted).
//! - A backend at Connected maps every ring ref of its frontend and holds a port bound to
//!   the frontend's (checked in `check.rs`).
//! - After the close a device holds no grant, mapping or port; the toolstack then removes
//!   its directories.

use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::grant::{FrameError, GuestFrames, MapFlags, MapRequest};
use crate::ids::{DomId, EvtchnPort, Gfn, GrantRef, Mfn, XsConnId};
use crate::io::handshake::{self, DeviceConn, DeviceKind, FIRST_DRIVER_GREF, RING_GFN_BASE};
use crate::io::xenbus::{legal, End, XenbusState};
use crate::platform::Platform;
use crate::toolstack::xs_tree::DeviceAdd;

/// Stand-in physmap for ring pages: `mfn = domid << 32 | gfn`. xensim differs: the memory
/// subsystem does not back individual gfns yet.
struct StandInFrames;

impl GuestFrames for StandInFrames {
    fn translate(&self, dom: DomId, gfn: Gfn, _readonly: bool) -> Result<Mfn, FrameError> {
        Ok(Mfn::new((u64::from(dom.raw()) << 32) | gfn.raw()))
    }
}

impl Hypervisor {
    /// The drivers pick up every vif and vbd of `dom` the toolstack just wrote: both
    /// ends at Initialising; [`Hypervisor::xenbus_round`] advances them.
    pub(crate) fn xenbus_connect(&mut self, dom: DomId, devices: &[DeviceAdd]) {
        for device in devices {
            let Some(kind) = DeviceKind::from_name(device.kind) else {
                continue;
            };
            if device.backend_dom != 0 {
                continue; // xensim differs: driver domains other than dom0 are not run.
            }
            let conn = DeviceConn::new(
                kind,
                dom,
                DomId::DOM0,
                device.frontend_path(),
                device.backend_path(),
            );
            self.xenbus.entry(dom).or_default().push(conn);
        }
    }

    /// One round of the §4.3/§4.4 handshake of `dom`'s devices: each device whose next
    /// step is due takes it (the drivers of different devices run in parallel; a round
    /// takes `io.xenbus_step_ns`). False if no device moved: all are connected or stuck
    /// on a failed grant, map or bind (they stay where they are until the close).
    pub(crate) fn xenbus_round<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) -> bool {
        let mut conns = self.xenbus.remove(&dom).unwrap_or_default();
        let mut moved = false;
        for (slot, conn) in conns.iter_mut().enumerate() {
            moved |= self.connect_step(conn, slot, p);
        }
        if !conns.is_empty() {
            self.xenbus.insert(dom, conns);
        }
        moved
    }

    /// The next step of one device's handshake, by the two ends' states. False if there
    /// is none or it failed.
    fn connect_step<P: Platform + ?Sized>(
        &mut self,
        conn: &mut DeviceConn,
        slot: usize,
        p: &mut P,
    ) -> bool {
        use XenbusState::{Connected, InitWait, Initialised, Initialising};
        match (conn.back_state, conn.front_state) {
            (Initialising, Initialising) => {
                self.backend_probe(conn);
                true
            }
            (InitWait, Initialising) if conn.ring_refs.is_empty() => {
                self.frontend_publish(conn, slot)
            }
            (InitWait, Initialised | Connected) if conn.ring_handles.is_empty() => {
                self.backend_connect(conn, p)
            }
            (Connected, Initialised) => {
                // blkfront reads `sectors`, `info` and the features, then connects.
                self.set_state(conn, End::Frontend, Connected);
                true
            }
            _ => false,
        }
    }

    /// Backend probe: feature keys (and the hotplug script's), then InitWait.
    fn backend_probe(&mut self, conn: &mut DeviceConn) {
        let vcpus = self.domains.get(conn.back_dom).map_or(1, |d| d.vcpus.len());
        let queues = u32::try_from(vcpus).unwrap_or(1);
        let back = self.xenstore.dom0_conn();
        for (key, value) in handshake::backend_probe_keys(conn.kind, queues) {
            let path = alloc::format!("{}/{key}", conn.back_path);
            self.xs_drive_write(back, None, &path, value.as_bytes());
        }
        self.set_state(conn, End::Backend, XenbusState::InitWait);
    }

    /// Frontend on backend InitWait: grant the ring page(s) to the backend, allocate an
    /// unbound port for it, write the transport keys in one transaction, then Initialised
    /// (vbd) or Connected (vif, netfront skips 3). False if a grant or port failed.
    fn frontend_publish(&mut self, conn: &mut DeviceConn, slot: usize) -> bool {
        let (front, back) = (conn.front_dom, conn.back_dom);
        let slot_gfn = u64::try_from(slot).unwrap_or(0).saturating_mul(4);
        for page in 0..conn.kind.ring_pages() {
            let Some(gref) = self.free_driver_gref(front) else {
                return false;
            };
            let gfn = RING_GFN_BASE + slot_gfn + u64::from(page);
            let Some(table) = self.grants.table_mut(front) else {
                return false;
            };
            let frame = u32::try_from(gfn).unwrap_or(u32::MAX);
            if table.guest_grant_access(gref, back, frame, false).is_err() {
                return false;
            }
            conn.ring_refs.push(gref);
        }
        let Ok(port) = self.evtchn.alloc_unbound(front, front, back) else {
            return false;
        };
        conn.front_port = Some(port);
        let fconn = self.front_conn(front);
        let tx = self.xenstore.transaction_start(fconn, None);
        assert!(tx.is_ok(), "frontend transaction start: {tx:?}");
        for (key, value) in handshake::frontend_keys(conn.kind, &conn.ring_refs, port) {
            let path = alloc::format!("{}/{key}", conn.front_path);
            self.xs_drive_write(fconn, tx.ok(), &path, value.as_bytes());
        }
        let end = self.xenstore.transaction_end(fconn, tx.ok(), true);
        assert!(end.is_ok(), "frontend transaction commit: {end:?}");
        let next = match conn.kind {
            DeviceKind::Vif => XenbusState::Connected,
            DeviceKind::Vbd => XenbusState::Initialised,
        };
        self.set_state(conn, End::Frontend, next);
        true
    }

    /// Backend on frontend Initialised (vbd) or Connected (vif): read the transport keys,
    /// map the ring grant(s), bind the port, write the connect keys, then Connected.
    fn backend_connect<P: Platform + ?Sized>(&mut self, conn: &mut DeviceConn, p: &mut P) -> bool {
        let ref_keys: &[&str] = match conn.kind {
            DeviceKind::Vif => &["tx-ring-ref", "rx-ring-ref"],
            DeviceKind::Vbd => &["ring-ref"],
        };
        let back = self.xenstore.dom0_conn();
        for key in ref_keys {
            let Some(raw) = self.xs_read_u32(back, &conn.front_path, key) else {
                return false;
            };
            let req = MapRequest {
                granter: conn.front_dom,
                gref: GrantRef::new(raw),
                flags: MapFlags {
                    host_map: true,
                    device_map: false,
                    readonly: false,
                },
            };
            match self
                .grants
                .map_grant_ref(conn.back_dom, req, &StandInFrames)
            {
                Ok(mapped) => conn.ring_handles.push(mapped.handle),
                Err(_) => return false,
            }
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

    /// §4.5 for every device of `dom` before the toolstack removes the directories: the
    /// frontend goes Closing; the backend unmaps, closes its port, goes Closing then
    /// Closed; the frontend ends its grants, closes its port and goes Closed. Returns the
    /// drivers' time.
    pub(crate) fn xenbus_close(&mut self, dom: DomId) -> i64 {
        let conns = self.xenbus.remove(&dom).unwrap_or_default();
        let mut steps: i64 = 0;
        for mut conn in conns {
            steps = steps.saturating_add(self.close_one(&mut conn));
        }
        self.costs.xenbus_step_ns.saturating_mul(steps)
    }

    /// One device's close. Returns the driver steps taken.
    fn close_one(&mut self, conn: &mut DeviceConn) -> i64 {
        let mut steps = 0;
        if legal(End::Frontend, conn.front_state, XenbusState::Closing)
            && conn.front_state != XenbusState::Closing
        {
            self.set_state(conn, End::Frontend, XenbusState::Closing);
            steps += 1;
        }
        // Backend: unmap, close, Closing, Closed. Results are ignored: a domain killed
        // before its close has already lost its ports (the backend's became unbound).
        for handle in core::mem::take(&mut conn.ring_handles) {
            let _ = self.grants.unmap_grant_ref(conn.back_dom, handle);
        }
        if let Some(port) = conn.back_port.take() {
            let _ = self.evtchn.close(conn.back_dom, port);
        }
        for to in [XenbusState::Closing, XenbusState::Closed] {
            if legal(End::Backend, conn.back_state, to) && conn.back_state != to {
                self.set_state(conn, End::Backend, to);
            }
        }
        steps += 1;
        // Frontend on backend Closed: revoke (nothing is mapped now), close, Closed.
        for gref in core::mem::take(&mut conn.ring_refs) {
            if let Some(table) = self.grants.table_mut(conn.front_dom) {
                let ended = table.guest_end_access(gref);
                assert_eq!(ended, Ok(true), "{gref:?} still mapped at close");
            }
        }
        if let Some(port) = conn.front_port.take() {
            let _ = self.evtchn.close(conn.front_dom, port);
        }
        if conn.front_state != XenbusState::Closed {
            self.set_state(conn, End::Frontend, XenbusState::Closed);
        }
        steps + 1
    }

    /// Toolstack-initiated unplug and frontend-initiated close (§4.5): a device whose
    /// backend `online` key reads `0`, or whose frontend `state` key reads Closing, and
    /// that is not closed yet walks the close; its directories stay until the toolstack
    /// removes them. Returns the driver steps taken.
    pub(crate) fn xenbus_unplug_offline(&mut self) -> i64 {
        let doms: Vec<DomId> = self.xenbus.keys().copied().collect();
        let mut steps: i64 = 0;
        for dom in doms {
            let mut conns = self.xenbus.remove(&dom).unwrap_or_default();
            for conn in &mut conns {
                let online = alloc::format!("{}/online", conn.back_path);
                let offline = self
                    .xenstore
                    .node(&online)
                    .is_some_and(|n| n.value() == b"0");
                let front = alloc::format!("{}/state", conn.front_path);
                let closing = self
                    .xenstore
                    .node(&front)
                    .is_some_and(|n| XenbusState::parse(n.value()) == XenbusState::Closing);
                if (offline || closing) && conn.back_state != XenbusState::Closed {
                    steps = steps.saturating_add(self.close_one(conn));
                }
            }
            self.xenbus.insert(dom, conns);
        }
        steps
    }

    /// Writes `to` to `end`'s `state` key on its own connection.
    fn set_state(&mut self, conn: &mut DeviceConn, end: End, to: XenbusState) {
        let (from, dir, xs) = match end {
            End::Frontend => (
                conn.front_state,
                &conn.front_path,
                self.front_conn(conn.front_dom),
            ),
            End::Backend => (conn.back_state, &conn.back_path, self.xenstore.dom0_conn()),
        };
        assert!(legal(end, from, to), "{end:?} {from:?} -> {to:?} at {dir}");
        // A directory someone removed under the driver: `xenbus_switch_state` fails and
        // the driver only records the state.
        if self.xenstore.node(dir).is_some() {
            let path = alloc::format!("{dir}/state");
            let value = alloc::format!("{}", to.number());
            self.xs_drive_write(xs, None, &path, value.as_bytes());
        }
        match end {
            End::Frontend => conn.front_state = to,
            End::Backend => conn.back_state = to,
        }
    }

    /// The guest's ring connection, or the toolstack's if the guest was never introduced
    /// (a create that failed before `XS_INTRODUCE`).
    fn front_conn(&self, dom: DomId) -> XsConnId {
        self.xenstore
            .domain_conn(u32::from(dom.raw()))
            .unwrap_or(self.xs_tool)
    }

    /// A driver's write; the directories are the driver's own, so failure is a bug.
    fn xs_drive_write(
        &mut self,
        xs: XsConnId,
        tx: Option<crate::ids::XsTxId>,
        path: &str,
        value: &[u8],
    ) {
        let written = self.xenstore.write(xs, tx, path.as_bytes(), value);
        assert!(written.is_ok(), "driver write {path}: {written:?}");
    }

    /// A decimal key under `dir`, `None` if missing or not a number.
    fn xs_read_u32(&mut self, xs: XsConnId, dir: &str, key: &str) -> Option<u32> {
        let path = alloc::format!("{dir}/{key}");
        let value = self.xenstore.read(xs, None, path.as_bytes()).ok()?;
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
