//! Driver domains: what happens to the split devices a driver domain backs when it dies,
//! xensim's model of `xl devd` re-creating them in the restarted driver domain, and
//! blkfront's reconnect to the new backend (spec `xenstore-io.md` §4.5, "Backend domain
//! dies" and "Reconnect").
//!
//! The death (`kill_io` of the driver domain, [`Hypervisor::backends_vanish`]): Xen
//! releases every mapping the dead domain held and closes its ports, so each device it
//! backed loses its backend end at once (no state write: the backend's directory went with
//! the domain's home). blkback's queued batches and disk commands go with it; what the disk
//! acknowledged stays on the disk (its storage lives outside every domain).
//!
//! The frontend (`backend_changed` reading ENOENT, [`Hypervisor::frontend_backend_gone`])
//! moves to Closed, ends its grants, and holds every guest I/O not answered yet, and
//! every I/O the guest issues meanwhile, instead of failing them.
//!
//! `xl devd` ([`Hypervisor::devd_recreate`]) runs when the restarted driver domain's kernel
//! is introduced: for each device whose configured `backend=` names it and whose backend
//! domain is gone, it writes the backend directory under the new domain (the keys libxl
//! keeps under `/libxl/<F>/device`), lets the new backend read the frontend directory, and
//! points the frontend's `backend-id` and `backend` at it. The frontend's bus watch sees
//! `backend` change ([`Hypervisor::frontend_backend_moved`], Linux's `xenbus_dev_resume` +
//! `blkfront_resume`): it watches the new backend's `state`, goes Initialising (legal from
//! Closed), and the handshake repeats with new refs and ports; at Connected the held I/Os
//! go to the new ring first (`blkif_recover`: every request not answered is re-issued).
//!
//! # Invariants
//! - A vbd has held I/Os only while its frontend is Closed with no data path.
//! - After [`Hypervisor::backends_vanish`] no device end names a backend mapping or port
//!   of the dead domain, and no blkback batch of it is queued.
//!
//! vifs take the same steps (death, devd, the frontend following `backend`); what is
//! particular to them (frames lost in flight, netfront's reconnect) is `drv_net.rs`.
//!
//! xensim differs / leaves out on purpose: real `xl devd` only adds backends libxl wrote
//! for it; re-creating them from the frontends' entries is the model the issue asks for,
//! and its XenStore requests go on the toolstack's (privileged) connection. The restarted
//! domain's new domid is used (libxl never reuses a fresh domid).

use alloc::vec::Vec;

use super::xenbus_watch::TOKEN_OTHEREND;
use super::xenbus_xs::DriverXs;
use super::Hypervisor;
use crate::domain::Dying;
use crate::ids::DomId;
use crate::io::handshake::{DeviceConn, DeviceKind};
use crate::io::xenbus::{End, XenbusState};
use crate::toolstack::config::DiskCfg;
use crate::toolstack::xs_tree::{self, DeviceAdd};

/// `LIBXL_INIT_TIMEOUT` (tools/libs/light/libxl_internal.h): how long libxl waits for a
/// new device's backend to reach InitWait.
pub(crate) const LIBXL_INIT_TIMEOUT_NS: i64 = 10_000_000_000;

impl Hypervisor {
    /// `xl create` of `dom` (job `job`) just wrote its devices: if one names a backend
    /// domain whose kernel runs no backends (a live domain without `driver_domain=1`),
    /// libxl waits `LIBXL_INIT_TIMEOUT` for it in vain and the create fails. Returns the
    /// extra wait, ns. xensim differs: only the first such device (disks, then vifs, in
    /// libxl's order) is named, and the destroy that follows does not wait again.
    pub(crate) fn create_stuck_wait_ns(
        &mut self,
        job: crate::toolstack::ops::JobId,
        dom: DomId,
    ) -> i64 {
        let Some(config) = self.domains.get(dom).and_then(|d| d.config.as_ref()) else {
            return 0;
        };
        let runs_backends = |b: DomId| {
            b == DomId::DOM0
                || self
                    .domains
                    .get(b)
                    .and_then(|d| d.config.as_ref())
                    .is_some_and(|c| c.driver_domain)
        };
        let stuck = |back: Option<DomId>| back.filter(|b| !runs_backends(*b));
        let disk = config.disks.iter().find_map(|disk| {
            let devid = xs_tree::disk_devid(&disk.vdev)?;
            Some((false, stuck(self.disk_backend(disk))?, devid))
        });
        let vif = || {
            config.vifs.iter().enumerate().find_map(|(index, vif)| {
                let devid = u32::try_from(index).ok()?;
                Some((true, stuck(self.vif_backend(vif))?, devid))
            })
        };
        let Some((vif, backend, devid)) = disk.or_else(vif) else {
            return 0;
        };
        let error = crate::toolstack::ops::ToolstackError::BackendNotReady {
            vif,
            backend,
            devid,
        };
        self.create_stuck.insert(job, error);
        LIBXL_INIT_TIMEOUT_NS
    }

    /// `dom` is being killed: every device end it backs loses its backend (mappings,
    /// port, blkback's work), before Xen releases the rest of the domain's mappings.
    pub(crate) fn backends_vanish(&mut self, dom: DomId) {
        if dom == DomId::DOM0 {
            return;
        }
        let fronts: Vec<DomId> = self
            .xenbus
            .iter()
            .filter(|(_, conns)| conns.iter().any(|c| c.back_dom == dom))
            .map(|(front, _)| *front)
            .collect();
        for front in fronts {
            let mut conns = self.xenbus.remove(&front).unwrap_or_default();
            for conn in conns.iter_mut().filter(|c| c.back_dom == dom) {
                self.backend_vanish(conn);
            }
            self.xenbus.insert(front, conns);
        }
        self.blk_backend_domain_gone(dom);
        self.net_backend_domain_gone(dom);
        self.xenbus_changed();
    }

    /// One device's backend end dies with its domain.
    fn backend_vanish(&mut self, conn: &mut DeviceConn) {
        if let Some(key) = Self::vbd_key(conn) {
            self.blk_backend_close(key);
        }
        if let Some(key) = Self::vif_key(conn) {
            self.net_backend_vanish(key);
        }
        for handle in core::mem::take(&mut conn.ring_handles) {
            let _ = self.grants.unmap_grant_ref(conn.back_dom, handle);
        }
        for port in conn.take_back_ports() {
            let _ = self.evtchn.close(conn.back_dom, port);
        }
        // Nothing is written: the backend's kernel is gone with its directory.
        conn.back_state = XenbusState::Closed;
        conn.back_probed = false;
        conn.back_probe_pending = false;
    }

    /// True if the backend of `conn` died (its domain is dying or gone); a live dom0 or
    /// driver domain that closed the device is not "gone".
    pub(super) fn backend_gone(&self, conn: &DeviceConn) -> bool {
        conn.back_dom != DomId::DOM0
            && !self
                .domains
                .get(conn.back_dom)
                .is_some_and(|d| d.dying == Dying::Alive)
    }

    /// blkfront finds its backend gone: it holds the I/Os not answered (and those the
    /// guest issues until a new backend connects), then closes (grants ended: the dead
    /// backend's mappings were released). netfront drops what it had in flight.
    pub(super) fn frontend_backend_gone(&mut self, conn: &mut DeviceConn) {
        if let Some(key) = Self::vif_key(conn) {
            self.net_frontend_backend_gone(key);
        }
        if let Some(key) = Self::vbd_key(conn) {
            let mut ios = self
                .blk
                .paths
                .get(&key)
                .map(crate::io::vbd::VbdPath::front_unanswered)
                .unwrap_or_default();
            ios.truncate(crate::io::vbd::BACKLOG_IOS_MAX);
            self.blk.held.insert(key, ios);
        }
        self.frontend_close_finish(conn);
    }

    /// xensim's `xl devd` in the restarted driver domain `dom`: re-creates the backends
    /// of devices whose `backend=` names it and whose backend died. Returns the XenStore
    /// requests made.
    pub(crate) fn devd_recreate(&mut self, dom: DomId) -> u32 {
        let Some(name) = self.domains.get(dom).map(|d| d.name.clone()) else {
            return 0;
        };
        let mut adds: Vec<DeviceAdd> = Vec::new();
        for (front, conns) in &self.xenbus {
            for conn in conns {
                if let Some(add) = self.devd_device(*front, conn, dom, &name) {
                    adds.push(add);
                }
            }
        }
        let mut count = 0u32;
        for add in adds {
            self.devd_take_over(&add);
            let fe = add.frontend_path();
            let front_keys = self
                .xenstore
                .node(&fe)
                .map(|n| {
                    n.children()
                        .map(alloc::string::String::from)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let reqs = add.relink_requests(&front_keys);
            count = count.saturating_add(super::xs_tool::run_txn(
                &mut self.xenstore,
                self.xs_tool,
                &reqs,
            ));
            let front = u16::try_from(add.dom).ok().and_then(DomId::new);
            let listed = front.and_then(|f| self.devices.get_mut(&f));
            if let Some(old) = listed
                .into_iter()
                .flatten()
                .find(|d| d.kind == add.kind && d.devid == add.devid)
            {
                *old = add;
            }
        }
        count
    }

    /// The re-created backend's end of the device: the new domain's, not probed yet; the
    /// frontend follows when it sees its `backend` key change.
    fn devd_take_over(&mut self, add: &DeviceAdd) {
        let front = u16::try_from(add.dom).ok().and_then(DomId::new);
        let back = u16::try_from(add.backend_dom).ok().and_then(DomId::new);
        let (Some(front), Some(back)) = (front, back) else {
            return;
        };
        let fe = add.frontend_path();
        let conns = self
            .xenbus
            .get_mut(&front)
            .map_or(&mut [][..], Vec::as_mut_slice);
        let Some(conn) = conns.iter_mut().find(|c| c.front_path == fe) else {
            return;
        };
        let old = core::mem::replace(&mut conn.back_path, add.backend_path());
        conn.back_dom = back;
        conn.back_state = XenbusState::Initialising;
        conn.back_probed = false;
        conn.back_probe_pending = false;
        if let Some(key) = Self::vbd_key(conn) {
            self.blk.moved_from.insert(key, old);
        } else if let Some(key) = Self::vif_key(conn) {
            self.net.moved_from.insert(key, old);
        }
        self.xenbus_changed();
    }

    /// The device `xl devd` in `dom` (named `name`) re-creates for `conn`, if any.
    fn devd_device(
        &self,
        front: DomId,
        conn: &DeviceConn,
        dom: DomId,
        name: &str,
    ) -> Option<DeviceAdd> {
        if conn.back_dom == dom || !self.backend_gone(conn) {
            return None;
        }
        if conn.kind == DeviceKind::Vif {
            return self.devd_vif(front, conn, dom, name);
        }
        if conn.kind != DeviceKind::Vbd {
            return None;
        }
        let (_, devid) = Self::vbd_key(conn)?;
        let config = self.domains.get(front)?.config.as_ref()?;
        let names_it = |disk: &&DiskCfg| {
            disk.backend.as_deref() == Some(name) && xs_tree::disk_devid(&disk.vdev) == Some(devid)
        };
        let disk = config.disks.iter().find(names_it)?;
        let (raw_front, raw_back) = (u32::from(front.raw()), u32::from(dom.raw()));
        Some(xs_tree::vbd(
            raw_front,
            config.guest_type,
            disk,
            devid,
            raw_back,
        ))
    }

    /// The frontend's `backend` key changed (`xenbus_dev_resume` + `blkfront_resume` or
    /// `netfront_resume`): a frontend whose backend `xl devd` re-created reads the new
    /// link, stops watching the old backend, re-arms its held I/Os (blkfront) and goes
    /// Initialising; the handshake then repeats. One that had not seen its backend die yet
    /// does that first.
    pub(super) fn frontend_backend_moved(&mut self, conn: &mut DeviceConn) {
        let (vbd, vif) = (Self::vbd_key(conn), Self::vif_key(conn));
        if vbd.is_none() && vif.is_none() {
            return;
        }
        let who = DriverXs::Guest(conn.front_dom);
        let path = alloc::format!("{}/backend", conn.front_path);
        let link = self.driver_read(who, &path).ok();
        if link.as_deref() != Some(conn.back_path.as_bytes()) {
            return; // Not (or not yet) the backend devd re-created.
        }
        let old = match (vbd, vif) {
            (Some(key), _) => self.blk.moved_from.remove(&key),
            (None, Some(key)) => self.net.moved_from.remove(&key),
            (None, None) => None,
        };
        let Some(old) = old else {
            return;
        };
        if conn.front_state != XenbusState::Closed {
            self.frontend_backend_gone(conn);
        }
        let old_state = alloc::format!("{old}/state");
        let _ = self.driver_watch(who, &old_state, TOKEN_OTHEREND, true);
        self.end_kept_ring_refs(conn);
        if let Some(key) = vbd {
            let held = self.blk.held.remove(&key).unwrap_or_default();
            self.blk_park_all(key, held);
            let count = self.blk.reconnects.entry(key).or_insert(0);
            *count = count.saturating_add(1);
        }
        if let Some(key) = vif {
            let count = self.net.reconnects.entry(key).or_insert(0);
            *count = count.saturating_add(1);
        }
        self.set_state(conn, End::Frontend, XenbusState::Initialising);
        let new_state = alloc::format!("{}/state", conn.back_path);
        let _ = self.driver_watch(who, &new_state, TOKEN_OTHEREND, false);
    }

    /// Ring refs the old backend still mapped at the close are free now: end them.
    fn end_kept_ring_refs(&mut self, conn: &mut DeviceConn) {
        let refs = core::mem::take(&mut conn.ring_refs);
        for gref in refs {
            let Some(table) = self.grants.table_mut(conn.front_dom) else {
                continue;
            };
            if table.guest_end_access(gref) != Ok(true) {
                conn.ring_refs.push(gref);
            }
        }
    }

    /// How often `dom`'s vbd `vdev` reconnected to a re-created backend.
    pub fn vbd_reconnects(&self, dom: DomId, vdev: u32) -> u32 {
        self.blk.reconnects.get(&(dom, vdev)).copied().unwrap_or(0)
    }

    /// I/Os blkfront holds for `dom`'s vbd `vdev` while its backend is gone.
    pub fn vbd_held_ios(&self, dom: DomId, vdev: u32) -> usize {
        self.blk.held.get(&(dom, vdev)).map_or(0, Vec::len)
    }

    /// The driver-domain checks: held I/Os only for a Closed frontend with no data path
    /// (and the vif checks of `drv_net.rs`).
    pub(crate) fn drv_check(&self, out: &mut Vec<crate::sched::Violation>) {
        self.drv_net_check(out);
        for key in self.blk.held.keys() {
            let closed = self
                .device_conns(key.0)
                .iter()
                .any(|c| Self::vbd_key(c) == Some(*key) && c.front_state == XenbusState::Closed);
            if !closed || self.blk.paths.contains_key(key) {
                let detail = alloc::format!("d{} vbd {} holds I/Os while open", key.0.raw(), key.1);
                let invariant = "vbd.held_closed";
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
    }
}
