//! The toolstack's XenStore client and the per-domain event-channel and grant tables:
//! what libxl writes at boot, create and destroy (request lists from
//! `toolstack/xs_tree.rs`), run in transactions on a privileged socket connection of the
//! host's xenstored, each request charged `toolstack.xs_request_ns` of the job's step; and
//! the `evtchn_init`/`grant_table_init` at create and the teardown at `domain_kill` and
//! the final free.
//!
//! Follows tools/libs/light/libxl_create.c, libxl_dom.c (`libxl__build_pre`: the store and
//! console ports are unbound ports of the guest for dom0; `libxl__build_post` then
//! `xs_introduce_domain`), libxl_domain.c (`libxl__destroy_domid`) and xen/common/domain.c
//! (`domain_kill`: `evtchn_destroy`, `gnttab_release_mappings`; `domain_destroy` →
//! `evtchn_destroy_final`, `grant_table_destroy`).
//!
//! # Invariants
//! - Every live domain has an event-channel table and a grant table; a freed domain has
//!   neither once no other domain maps its grants.
//! - A toolstack request list either applies completely or the core has a bug (asserted).

use alloc::vec::Vec;

use super::Hypervisor;
use crate::evtchn::MAX_EVTCHN_PORT_UNLIMITED;
use crate::evtchn::{EvtchnDomainConfig, Notify, MAX_EVTCHN_PORT_LIBXL_DEFAULT};
use crate::grant::GrantConfig;
use crate::ids::{DomId, VcpuRef, XsConnId};
use crate::platform::Platform;
use crate::toolstack::config::{DomainConfig, GuestType};
use crate::toolstack::xs_client::XsClientCmd;
use crate::toolstack::xs_tree::{self, BuildState, DeviceAdd, Reqs, XsReq};
use crate::xenstore::client::{ClientOutput, ConnView, StoreView};
use crate::xenstore::{XenStore, XsError};

/// Grant and maptrack frame limits a guest gets (xl.conf `max_grant_frames`,
/// `max_maptrack_frames`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GrantLimits {
    /// `max_grant_frames`.
    pub max_grant_frames: u32,
    /// `max_maptrack_frames`.
    pub max_maptrack_frames: u32,
}

impl Default for GrantLimits {
    fn default() -> GrantLimits {
        GrantLimits {
            max_grant_frames: crate::grant::MAX_GRANT_FRAMES_DEFAULT,
            max_maptrack_frames: crate::grant::MAX_MAPTRACK_FRAMES_DEFAULT,
        }
    }
}

/// Runs `reqs` on `conn` (inside `tx` if given). Returns the number of requests.
/// A removal of a missing node is fine (libxl ignores it); any other failure is a bug.
pub(crate) fn run_reqs(
    xs: &mut XenStore,
    conn: XsConnId,
    tx: Option<crate::ids::XsTxId>,
    reqs: &Reqs,
) -> u32 {
    for req in &reqs.0 {
        let result = match req {
            XsReq::Write { path, value } => xs.write(conn, tx, path.as_bytes(), value),
            XsReq::Mkdir { path } => xs.mkdir(conn, tx, path.as_bytes()),
            XsReq::Rm { path } => match xs.rm(conn, tx, path.as_bytes()) {
                Err(XsError::Enoent) => Ok(()),
                other => other,
            },
            XsReq::SetPerms { path, perms } => xs.set_perms(conn, tx, path.as_bytes(), perms),
        };
        assert!(
            result.is_ok(),
            "toolstack request {req:?} failed: {result:?}"
        );
    }
    u32::try_from(reqs.0.len()).unwrap_or(u32::MAX)
}

/// Runs `reqs` in one transaction (`TRANSACTION_START` .. `TRANSACTION_END T`). Returns the
/// number of requests including start and end. Nothing else runs between them, so the
/// commit cannot lose a conflict.
pub(crate) fn run_txn(xs: &mut XenStore, conn: XsConnId, reqs: &Reqs) -> u32 {
    let tx = xs.transaction_start(conn, None);
    assert!(tx.is_ok(), "toolstack transaction start failed: {tx:?}");
    let count = run_reqs(xs, conn, tx.ok(), reqs);
    let end = xs.transaction_end(conn, tx.ok(), true);
    assert!(end.is_ok(), "toolstack transaction commit failed: {end:?}");
    count.saturating_add(2)
}

/// A client's store view that counts the requests it makes (xenstored's work).
struct CountingView<'a> {
    view: ConnView<'a>,
    count: u32,
}

impl StoreView for CountingView<'_> {
    fn directory(&mut self, path: &str) -> Result<Vec<alloc::string::String>, XsError> {
        self.count = self.count.saturating_add(1);
        self.view.directory(path)
    }
    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.count = self.count.saturating_add(1);
        self.view.read(path)
    }
    fn get_perms(&mut self, path: &str) -> Result<Vec<crate::xenstore::Perm>, XsError> {
        self.count = self.count.saturating_add(1);
        self.view.get_perms(path)
    }
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.count = self.count.saturating_add(1);
        self.view.write(path, value)
    }
    fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.count = self.count.saturating_add(1);
        self.view.rm(path)
    }
}

/// Stand-in frame numbers of the store and console pages: HVM and PVH use the special
/// pages below 0xff000 (`special_pfn` in libxl's HVM builder); for PV the page sits near
/// the top of the guest's memory. xensim differs: PV guests see gfns, not machine frames.
fn ring_frames(guest_type: GuestType, memory_kib: u64) -> (u64, u64) {
    match guest_type {
        GuestType::Hvm | GuestType::Pvh => (0xfeffc, 0xfefff),
        GuestType::Pv => {
            let top = memory_kib / 4;
            (top.saturating_sub(2), top.saturating_sub(1))
        }
    }
}

impl Hypervisor {
    /// dom0's event channels and grant table (unlimited ports, Xen's frame limits), and its
    /// XenStore entries at boot (spec §3.1, the reference's dom0 tree).
    pub(super) fn boot_dom0_io(&mut self, pool_ids: &[u32], memory_kib: u64) {
        let vcpu_count = self.domains.get(DomId::DOM0).map_or(1, |d| d.vcpus.len());
        let config = EvtchnDomainConfig {
            max_evtchn_port: MAX_EVTCHN_PORT_UNLIMITED,
            vcpu_count: u32::try_from(vcpu_count).unwrap_or(1).max(1),
            privileged: true,
        };
        let init = self.evtchn.init_domain(DomId::DOM0, config);
        assert!(init.is_ok(), "dom0 event channels: {init:?}");
        // xenbus_init for a local xenstored: dom0's kernel allocates the store channel and
        // xenstored binds it (IOCTL_XENBUS_BACKEND_EVTCHN), a loopback pair in dom0.
        let kernel = self
            .evtchn
            .alloc_unbound(DomId::DOM0, DomId::DOM0, DomId::DOM0);
        let kernel = kernel.expect("dom0's fresh table has a free port");
        let daemon = self
            .evtchn
            .bind_interdomain(DomId::DOM0, DomId::DOM0, kernel)
            .expect("xenstored binds dom0's store channel");
        self.dom0_store = Some((kernel, daemon.port));
        let grants = GrantConfig {
            privileged: true,
            ..GrantConfig::guest_default(self.is_translated(DomId::DOM0))
        };
        let created = self.grants.create(DomId::DOM0, grants);
        assert!(created.is_ok(), "dom0 grant table: {created:?}");
        let (kernel, tool) = xs_tree::dom0_boot(pool_ids, memory_kib, memory_kib);
        let dom0_ring = self.xenstore.dom0_conn();
        run_reqs(&mut self.xenstore, dom0_ring, None, &kernel);
        run_reqs(&mut self.xenstore, self.xs_tool, None, &tool);
    }

    fn is_translated(&self, dom: DomId) -> bool {
        self.domains
            .get(dom)
            .is_some_and(|d| d.guest_type != GuestType::Pv)
    }

    /// Nanoseconds `count` toolstack XenStore requests take the toolstack; xenstored's
    /// CPU for them is charged to dom0 (`xenstored.rs`).
    pub(crate) fn xs_cost_ns(&mut self, count: u32) -> i64 {
        self.xsd_count(count);
        self.costs.xs_request_ns.saturating_mul(i64::from(count))
    }

    /// `createdomain`'s tables (`evtchn_init`, `grant_table_init`) and
    /// `libxl__domain_make`'s transaction. Returns its XenStore time.
    pub(crate) fn create_make_io(
        &mut self,
        dom: DomId,
        config: &DomainConfig,
        uuid: &[u8; 16],
    ) -> i64 {
        let vcpus = config.max_vcpus.max(1);
        let evtchn = EvtchnDomainConfig {
            // xensim differs: xl.cfg's `max_event_channels` is not parsed; libxl's default.
            max_evtchn_port: MAX_EVTCHN_PORT_LIBXL_DEFAULT,
            vcpu_count: vcpus,
            privileged: false,
        };
        let init = self.evtchn.init_domain(dom, evtchn);
        assert!(init.is_ok(), "{dom:?}: event channels: {init:?}");
        let grants = GrantConfig {
            max_grant_frames: self.grant_limits.max_grant_frames,
            max_maptrack_frames: self.grant_limits.max_maptrack_frames,
            ..GrantConfig::guest_default(config.guest_type != GuestType::Pv)
        };
        let created = self.grants.create(dom, grants);
        assert!(created.is_ok(), "{dom:?}: grant table: {created:?}");
        self.xenstore.domain_created(u32::from(dom.raw()));
        let reqs = xs_tree::domain_make(u32::from(dom.raw()), config, uuid);
        let count = run_txn(&mut self.xenstore, self.xs_tool, &reqs);
        self.xs_cost_ns(count)
    }

    /// `libxl__build_pre`'s store and console ports, `libxl__build_post`'s transaction and
    /// `XS_INTRODUCE` (xenstored binds the store port). Returns the XenStore time.
    pub(crate) fn create_build_io<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) -> i64 {
        let Some(d) = self.domains.get(dom) else {
            return 0;
        };
        let (uuid, Some(config)) = (d.uuid, d.config.clone()) else {
            return 0;
        };
        let store = self.evtchn.alloc_unbound(DomId::DOM0, dom, DomId::DOM0);
        let console = self.evtchn.alloc_unbound(DomId::DOM0, dom, DomId::DOM0);
        let (Ok(store), Ok(console)) = (store, console) else {
            panic!("{dom:?}: a fresh table has free ports");
        };
        let (store_frame, console_frame) = ring_frames(config.guest_type, config.memory_kib);
        let build = BuildState {
            store_port: store.raw(),
            console_port: console.raw(),
            store_frame,
            console_frame,
            start_time_ns: u64::try_from(p.now().as_ns()).unwrap_or(0),
            dom0_store_port: None,
        };
        let raw = u32::from(dom.raw());
        let mut build = build;
        let reqs = xs_tree::build_post(raw, &config, &uuid, &build);
        let mut count = run_txn(&mut self.xenstore, self.xs_tool, &reqs);
        // XS_INTRODUCE: xenstored binds its end of the store ring's channel.
        let introduced = self.xenstore.introduce_domain(raw, store.raw());
        assert!(introduced.is_ok(), "{dom:?}: introduce: {introduced:?}");
        self.xs_guest_reset(dom);
        count = count.saturating_add(1);
        if let Ok(bound) = self.evtchn.bind_interdomain(DomId::DOM0, dom, store) {
            build.dom0_store_port = Some(bound.port.raw());
            self.deliver_notify(bound.notify, p);
        }
        self.build_states.insert(dom, build);
        // The guest kernel's xenbus watches its `device` directory once it has a ring (a
        // driver domain's also `~/backend`, and its `xl devd` re-creates backends).
        count = count.saturating_add(self.xenbus_guest_watch(dom));
        self.xs_cost_ns(count)
    }

    /// The devices' directories (disks, the console, then vifs, libxl's order), each
    /// device in its own transaction; xenconsoled's `tty`. Returns the XenStore time.
    pub(crate) fn create_devices_io<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) -> i64 {
        let Some(d) = self.domains.get(dom) else {
            return 0;
        };
        let (uuid, Some(config)) = (d.uuid, d.config.clone()) else {
            return 0;
        };
        let Some(build) = self.build_states.get(&dom).copied() else {
            return 0;
        };
        let raw = u32::from(dom.raw());
        let mut devices: Vec<DeviceAdd> = Vec::new();
        for disk in &config.disks {
            // A vdev xl cannot number is refused by the config loader, and a backend that
            // went away since the create checked it has no directory to hold the device:
            // skip both here.
            let devid = xs_tree::disk_devid(&disk.vdev);
            let backend = self.disk_backend(disk);
            if let (Some(devid), Some(backend)) = (devid, backend) {
                let back = u32::from(backend.raw());
                devices.push(xs_tree::vbd(raw, config.guest_type, disk, devid, back));
            }
        }
        devices.push(xs_tree::console(raw, &build));
        let console_port = crate::ids::EvtchnPort::new(build.console_port);
        self.console_connect(dom, console_port, p);
        let hvm = config.guest_type == GuestType::Hvm;
        for (index, vif) in config.vifs.iter().enumerate() {
            let devid = u32::try_from(index).unwrap_or(u32::MAX);
            // As for disks: a backend that went away since the create checked it has no
            // directory to hold the vif.
            if let Some(backend) = self.vif_backend(vif) {
                let back = u32::from(backend.raw());
                devices.push(xs_tree::vif(raw, hvm, vif, &uuid, devid, back));
            }
        }
        let mut count: u32 = 0;
        for device in &devices {
            count = count.saturating_add(run_txn(
                &mut self.xenstore,
                self.xs_tool,
                &device.requests(),
            ));
        }
        // xenconsoled picks the console up and records its pty (spec §3.6).
        let tty = alloc::format!("/dev/pts/{raw}");
        let mut reqs = Reqs::default();
        reqs.0.push(XsReq::Write {
            path: alloc::format!("{}/console/tty", xs_tree::dom_path(raw)),
            value: tty.into_bytes(),
        });
        count = count.saturating_add(run_reqs(&mut self.xenstore, self.xs_tool, None, &reqs));
        self.xenbus_devices_added(dom, &devices, p);
        self.xenbus_connect(dom, &devices);
        self.xs_cost_ns(count)
    }

    /// `domain_kill`'s first half for event channels and grants: every port closed (peers
    /// see theirs become unbound), every mapping the domain holds released.
    pub(crate) fn kill_io(&mut self, dom: DomId) {
        // The devices a driver domain backs lose their backend first (`drv_glue.rs`).
        self.backends_vanish(dom);
        self.lost_irqs.retain(|(d, _), _| *d != dom);
        self.evtchn.destroy(dom);
        self.grants.release_mappings(dom);
        // xenstored sees the domain die (VIRQ_DOM_EXC) and unbinds its end of the ring's
        // channel (`domain_cleanup`, tools/xenstore/xenstored_domain.c).
        let port = self
            .build_states
            .get_mut(&dom)
            .and_then(|b| b.dom0_store_port.take());
        if let Some(port) = port {
            let closed = self
                .evtchn
                .close(DomId::DOM0, crate::ids::EvtchnPort::new(port));
            assert!(
                closed.is_ok(),
                "xenstored's store port of {dom:?}: {closed:?}"
            );
        }
        // xenconsoled too (`shutdown_domain`).
        self.console_unbind(dom);
    }

    /// `libxl__destroy_domid` after the devices: the home, `/libxl/<dom>` and `/vm/<uuid>`
    /// go. Returns the XenStore time.
    pub(crate) fn destroy_xs(&mut self, dom: DomId) -> i64 {
        let Some(uuid) = self.domains.get(dom).map(|d| d.uuid) else {
            return 0;
        };
        let drivers_ns = self.xenbus_close(dom);
        let count = self.xenbus_destroy(dom);
        let reqs = xs_tree::destroy(u32::from(dom.raw()), &uuid);
        let rm = run_reqs(&mut self.xenstore, self.xs_tool, None, &reqs);
        self.xs_cost_ns(count.saturating_add(rm))
            .saturating_add(drivers_ns)
    }

    /// The domain struct is freed: xenstored notices (`@releaseDomain`), and the tables go
    /// (a grant table another domain still maps stays until that mapping goes).
    pub(crate) fn free_io(&mut self, dom: DomId) {
        let home = xs_tree::dom_path(u32::from(dom.raw()));
        if self.xenstore.node(&home).is_some() {
            // A create that failed after `libxl__domain_make`: libxl's destroy path.
            self.destroy_xs(dom);
        }
        self.xenstore.domain_destroyed(u32::from(dom.raw()));
        self.xs_guest_reset(dom);
        self.xenwatch_busy.remove(&dom);
        self.kill_io(dom);
        self.evtchn.remove(dom);
        let removed = self.grants.remove(dom);
        debug_assert!(removed || self.grants.pinned_count(dom) > 0);
        self.build_states.remove(&dom);
        self.console_release(dom);
    }

    /// A xenstore-* client run as a privileged dom0 process on the toolstack's connection.
    pub(crate) fn xs_client_run<P: Platform + ?Sized>(
        &mut self,
        cmd: &XsClientCmd,
        p: &mut P,
    ) -> ClientOutput {
        let conn = self.xs_tool;
        let mut view = CountingView {
            view: ConnView {
                xs: &mut self.xenstore,
                conn,
            },
            count: 0,
        };
        let out = cmd.run(&mut view);
        let count = view.count;
        self.xsd_count(count);
        let _ = p;
        out
    }

    /// A read-only xenstore-* client (`xenstore-ls`, `-read`, `-list`, `-exists`): a query
    /// that changes nothing, so it is not a toolstack operation. `None` for a command that
    /// writes.
    pub fn xs_query(&mut self, cmd: &XsClientCmd) -> Option<ClientOutput> {
        if !cmd.is_query() {
            return None;
        }
        self.end_idle = false;
        let conn = self.xs_tool;
        let generation = self.xenstore.generation();
        let out = cmd.run(&mut ConnView {
            xs: &mut self.xenstore,
            conn,
        });
        assert_eq!(
            generation,
            self.xenstore.generation(),
            "a query changed the store"
        );
        Some(out)
    }

    /// `vcpu_mark_events_pending` found the upcall flag clear: wake the vCPU
    /// (`vcpu_kick` of a blocked vCPU is `vcpu_unblock`).
    pub(crate) fn deliver_notify<P: Platform + ?Sized>(
        &mut self,
        notify: Option<Notify>,
        p: &mut P,
    ) {
        let Some(n) = notify else {
            return;
        };
        let v = VcpuRef {
            dom: n.dom,
            vcpu: n.vcpu,
        };
        // A notify for a vCPU that does not exist (yet) only leaves the event pending.
        let _ = self.vcpu_wake_event(v, p);
    }
}
