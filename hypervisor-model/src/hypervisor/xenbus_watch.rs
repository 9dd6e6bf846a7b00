//! The split drivers' XenStore watches: which watches each end registers, how a watch
//! event that xenstored delivered (`xenstored.rs`) becomes a driver reaction one
//! `io.xenbus_step_ns` later, and the reactions themselves, which read the other end's
//! current `state` from XenStore and take the step Linux's handler takes for it.
//!
//! Follows Linux drivers/xen/xenbus/xenbus_probe.c (`xenbus_dev_probe`,
//! `talk_to_otherend`, `watch_otherend`, `xenbus_otherend_changed`,
//! `xenbus_dev_changed`), xenbus_probe_backend.c (`be_watch` on `backend`,
//! `frontend_changed`), xenbus_probe_frontend.c (`fe_watch` on `device`), and the drivers'
//! `frontend_changed` (xen-netback/xenbus.c, xen-blkback/xenbus.c) and `backend_changed`
//! (xen-netfront.c `netback_changed`, xen-blkfront.c `blkback_changed`); spec
//! `xenstore-io.md` §4.3–4.5.
//!
//! Watches (tokens start with `xenbus:`, so `XenStore::take_watch_events` can pick them):
//! - dom0's backend bus watches `/local/domain/0/backend` from boot: an event under an
//!   unprobed device directory probes its backend; an event on `<backend>/online` makes
//!   the backend check it (`online = 0` is the toolstack's unplug); an event on the
//!   directory itself makes it check the directory still exists.
//! - A guest's frontend bus watches `/local/domain/<F>/device` once it is introduced: an
//!   event under an unprobed device directory probes its frontend.
//! - A probed end watches the other end's `state` (`watch_otherend`). Registration fires
//!   once at once; that first event is handled like any other (Linux reads the state and
//!   acts if there is something to do: a frontend probed after its backend reached
//!   InitWait publishes on it).
//!
//! # Invariants
//! - Every pending reaction names a device end whose domain had devices when it was
//!   scheduled; a reaction whose device is gone by then does nothing.
//! - A device end is probed at most once (`*_probed`, `*_probe_pending`).
//! - At most [`DRIVER_TASKS_MAX`](super::driver_tasks::DRIVER_TASKS_MAX) reactions are
//!   pending (`driver_tasks.rs` keeps the table).
//! - While the waiters' fingerprint (`xenbus_epoch`, reactions taken out, xenstored's
//!   ring counts taken back) equals the one of their last scan, none of them is ready.
//! - `xl create` waits (`xenbus_waiters`) until every backend of the domain reached
//!   InitWait, or nothing more can happen for its devices; `xl destroy` waits until no
//!   reaction for the domain is pending and xenstored holds nothing for its devices or
//!   for dom0's ring: every device is Closed or stuck.
//!
//! Each kernel (dom0 for the backends, a guest for its frontends) has one xenwatch thread,
//! as Linux does: its reactions run one after another, each taking `io.xenbus_step_ns`
//! from the later of its event's delivery and the end of the kernel's previous reaction
//! (`xenwatch_busy`).
//!
//! xensim differs: a bus event under an already probed device costs nothing (Linux reads
//! the directory's existence); the drivers of a paused guest still react.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use super::xenbus_xs::DriverXs;
use super::xenstored::HeldEvent;
use super::Hypervisor;
use crate::ids::{DomId, DriverWorkId};
use crate::io::handshake::DeviceConn;
use crate::io::xenbus::{End, XenbusState};
use crate::platform::Platform;
use crate::time::Span;
use crate::trace::TraceEvent;

/// dom0's backend bus watch token.
pub(crate) const TOKEN_BACKEND_BUS: &[u8] = b"xenbus:be-bus";
/// A guest's frontend bus watch token.
pub(crate) const TOKEN_FRONTEND_BUS: &[u8] = b"xenbus:fe-bus";
/// The token of an end's watch on the other end's `state`.
pub(crate) const TOKEN_OTHEREND: &[u8] = b"xenbus:otherend";
/// dom0's backend directory, which its backend bus watches (a driver domain's kernel
/// watches its own `/local/domain/<B>/backend`).
const BACKEND_ROOT: &str = "/local/domain/0/backend";

/// What a driver reaction does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reaction {
    /// A bus event under an unprobed device: probe this end.
    Probe,
    /// The other end's `state` changed: read it and act.
    OtherendChanged,
    /// The backend's `online` key changed: read it and close if it is `0`.
    OnlineChanged,
    /// The backend's directory itself changed: if it is gone, the device goes
    /// (`xenbus_dev_changed` finds it missing and unregisters it).
    DirChanged,
    /// The frontend's `backend` key changed: follow a re-created backend
    /// (`drv_glue.rs`).
    BackendMoved,
}

/// One pending driver reaction.
#[derive(Clone, Debug)]
pub(crate) struct DriverTask {
    /// The device's frontend domain.
    pub(super) front_dom: DomId,
    /// The device's frontend directory (identifies the device).
    front_path: String,
    /// The backend domain when the event came (a backend reaction of a backend that
    /// died or moved since does nothing).
    back_dom: DomId,
    /// Which end reacts.
    pub(super) end: End,
    reaction: Reaction,
}

/// What a toolstack job waits for on a domain's devices.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum XenbusWait {
    /// `xl create`: every backend ready (InitWait), as libxl waits before it unpauses.
    BackendsReady,
    /// `xl destroy`: nothing pending for the domain's devices (both ends closed).
    Settled,
    /// `xl create` of an HVM guest: its device model is up (`toolstack/stubdom.rs`).
    DeviceModel,
}

/// What a waiter's test can change with: (`xenbus_epoch`, driver reactions taken out,
/// xenstored ring counts taken back). While it stays the same no waiter can become ready.
pub(crate) type WaitFingerprint = (u64, u64, u64);

/// Most path components an event's routing looks at (a backend device directory's).
const ROUTE_COMPONENTS_MAX: usize = 7;

/// The first [`ROUTE_COMPONENTS_MAX`] path components of `path` (without the leading
/// empty one) and how many of them there are: no allocation per event.
fn components(path: &str) -> ([&str; ROUTE_COMPONENTS_MAX], usize) {
    let mut parts = [""; ROUTE_COMPONENTS_MAX];
    let mut count = 0;
    // As `path.split('/').skip(1)`, by a plain byte scan (paths are short).
    let Some(first) = path.bytes().position(|b| b == b'/') else {
        return (parts, 0);
    };
    let mut rest = &path[first + 1..];
    for slot in &mut parts {
        count += 1;
        match rest.bytes().position(|b| b == b'/') {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                break;
            }
        }
    }
    (parts, count)
}

/// The frontend domain a driver event is about: `/local/domain/<B>/backend/<k>/<F>/...`
/// or `/local/domain/<F>/device/...`.
pub(crate) fn event_front_dom(path: &str) -> Option<DomId> {
    let (parts, count) = components(path);
    let raw = match &parts[..count] {
        ["local", "domain", _back, "backend", _kind, fe, _devid, ..] => fe,
        ["local", "domain", fe, "device", _kind, _devid, ..] => fe,
        _ => return None,
    };
    raw.parse::<u16>().ok().and_then(DomId::new)
}

/// The device directory an event path lies in (`None` above device level): the path's
/// own prefix when it is absolute, else its components joined under `/`.
fn device_root(path: &str) -> Option<Cow<'_, str>> {
    let (parts, count) = components(path);
    let depth = match &parts[..count] {
        ["local", "domain", _, "backend", _, _, _, ..] => 7,
        ["local", "domain", _, "device", _, _, ..] => 6,
        _ => return None,
    };
    if path.starts_with('/') {
        // `/` + the first `depth` components is where the next `/` (or the end) is.
        let end = parts[..depth].iter().map(|p| p.len() + 1).sum::<usize>();
        return path.get(..end).map(Cow::Borrowed);
    }
    let mut root = String::new();
    for part in &parts[..depth] {
        root.push('/');
        root.push_str(part);
    }
    Some(Cow::Owned(root))
}

/// Whether `path` is `dir/key` (without building that string).
fn is_key_of(path: &str, dir: &str, key: &str) -> bool {
    path.strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        == Some(key)
}

impl Hypervisor {
    /// dom0's kernel registers its backend bus watch at boot.
    pub(crate) fn xenbus_boot_watch(&mut self) {
        let added = self.driver_watch(DriverXs::Dom0, BACKEND_ROOT, TOKEN_BACKEND_BUS, false);
        assert!(added.is_ok(), "backend bus watch: {added:?}");
    }

    /// A newly introduced guest's kernel registers its frontend bus watch, and a driver
    /// domain's also its backend bus watch on `~/backend` (Linux's `be_watch`), after
    /// which its `xl devd` re-creates the backends it lost (`drv_glue.rs`). Returns the
    /// toolstack's XenStore requests (devd's).
    pub(crate) fn xenbus_guest_watch(&mut self, dom: DomId) -> u32 {
        if self.xenstore.domain_conn(u32::from(dom.raw())).is_none() {
            return 0;
        }
        let path = alloc::format!("/local/domain/{}/device", dom.raw());
        let added = self.driver_watch(DriverXs::Guest(dom), &path, TOKEN_FRONTEND_BUS, false);
        assert!(added.is_ok(), "frontend bus watch of {dom:?}: {added:?}");
        if self.backend_kernel_runs(dom) {
            let path = alloc::format!("/local/domain/{}/backend", dom.raw());
            let added = self.driver_watch(DriverXs::Guest(dom), &path, TOKEN_BACKEND_BUS, false);
            assert!(added.is_ok(), "backend bus watch of {dom:?}: {added:?}");
            return self.devd_recreate(dom);
        }
        0
    }

    /// xenstored delivered these events (in order): each that concerns a driver schedules
    /// its reaction one `io.xenbus_step_ns` later.
    pub(crate) fn deliver_driver_events<P: Platform + ?Sized>(
        &mut self,
        events: Vec<HeldEvent>,
        p: &mut P,
    ) {
        for event in events {
            let Some((front_dom, back_dom, front_path, end, reaction)) = self.route_event(&event)
            else {
                continue;
            };
            if reaction == Reaction::Probe {
                self.mark_probe_pending(front_dom, &front_path, end);
            }
            let work = DriverWorkId(self.next_driver_work);
            self.next_driver_work = self.next_driver_work.wrapping_add(1);
            let task = DriverTask {
                front_dom,
                back_dom,
                front_path,
                end,
                reaction,
            };
            self.driver_tasks.insert(work, task);
            p.trace(&TraceEvent::XenbusEvent {
                work,
                path: event.path,
            });
            // Linux's xenwatch thread: one per kernel (dom0 or the driver domain for the
            // backends, the guest for its frontends) runs the callbacks one after another.
            let kernel = match end {
                End::Backend => back_dom,
                End::Frontend => front_dom,
            };
            let free_at = self.xenwatch_busy.get(&kernel).copied();
            let start = free_at.map_or(p.now(), |t| t.max(p.now()));
            let at = start.after(Span::from_ns(self.costs.xenbus_step_ns.max(0)));
            self.xenwatch_busy.insert(kernel, at);
            p.defer_driver(work, at);
        }
    }

    /// The store connection of `dom`'s kernel.
    fn kernel_conn(&self, dom: DomId) -> Option<crate::ids::XsConnId> {
        if dom == DomId::DOM0 {
            return Some(self.xenstore.dom0_conn());
        }
        self.xenstore.domain_conn(u32::from(dom.raw()))
    }

    /// The device end and reaction an event calls for, `None` if it calls for nothing:
    /// (frontend domain, backend domain, frontend directory, end, reaction).
    fn route_event(&self, event: &HeldEvent) -> Option<(DomId, DomId, String, End, Reaction)> {
        let front_dom = event_front_dom(&event.path)?;
        let conns = self.xenbus.get(&front_dom)?;
        let token = event.token.as_slice();
        let is_back = |c: &DeviceConn| self.kernel_conn(c.back_dom) == Some(event.conn);
        let (end, reaction, conn) = if token == TOKEN_OTHEREND {
            // The backend's watch on the frontend's state, or the frontend's on the
            // backend's: told apart by the path and the watching kernel.
            let conn = conns
                .iter()
                .find(|c| is_back(c) && is_key_of(&event.path, &c.front_path, "state"));
            let (end, conn) = match conn {
                Some(conn) => (End::Backend, conn),
                None => (
                    End::Frontend,
                    conns
                        .iter()
                        .find(|c| !is_back(c) && is_key_of(&event.path, &c.back_path, "state"))?,
                ),
            };
            (end, Reaction::OtherendChanged, conn)
        } else {
            let root = device_root(&event.path)?;
            let (end, conn) = if token == TOKEN_BACKEND_BUS {
                let conn = conns.iter().find(|c| c.back_path == root && is_back(c))?;
                (End::Backend, conn)
            } else if token == TOKEN_FRONTEND_BUS {
                // A vif of a guest without netfront is never probed (`emunic_port.rs`).
                let conn = conns.iter().find(|c| c.front_path == root)?;
                if self.netfront_absent(conn) {
                    return None;
                }
                (End::Frontend, conn)
            } else {
                return None;
            };
            let (probed, pending) = match end {
                End::Backend => (conn.back_probed, conn.back_probe_pending),
                End::Frontend => (conn.front_probed, conn.front_probe_pending),
            };
            let reaction = if !probed && !pending {
                Reaction::Probe
            } else if end == End::Frontend && probed && is_key_of(&event.path, &root, "backend") {
                Reaction::BackendMoved
            } else if end == End::Backend && probed && is_key_of(&event.path, &root, "online") {
                Reaction::OnlineChanged
            } else if end == End::Backend && probed && event.path == root {
                Reaction::DirChanged
            } else {
                return None;
            };
            (end, reaction, conn)
        };
        Some((
            front_dom,
            conn.back_dom,
            conn.front_path.clone(),
            end,
            reaction,
        ))
    }

    fn mark_probe_pending(&mut self, dom: DomId, front_path: &str, end: End) {
        let conns = self
            .xenbus
            .get_mut(&dom)
            .map_or(&mut [][..], Vec::as_mut_slice);
        if let Some(conn) = conns.iter_mut().find(|c| c.front_path == front_path) {
            match end {
                End::Backend => conn.back_probe_pending = true,
                End::Frontend => conn.front_probe_pending = true,
            }
        }
    }

    /// A driver reaction is due.
    pub(crate) fn driver_work<P: Platform + ?Sized>(
        &mut self,
        work: DriverWorkId,
        p: &mut P,
    ) -> Result<(), super::InputError> {
        let task = self
            .driver_tasks
            .remove(work)
            .ok_or(super::InputError::UnknownDriverWork(work))?;
        let mut conns = self.xenbus.remove(&task.front_dom).unwrap_or_default();
        let slot = conns.iter().position(|c| c.front_path == task.front_path);
        // A backend reaction for a backend that died (or moved) meanwhile: its kernel
        // is gone, nothing runs.
        let stale = slot.is_some_and(|slot| {
            let conn = &conns[slot];
            task.end == End::Backend
                && (conn.back_dom != task.back_dom || !self.backend_kernel_runs(conn.back_dom))
        });
        if let (Some(slot), false) = (slot, stale) {
            let conn = &mut conns[slot];
            match (task.end, task.reaction) {
                (end, Reaction::Probe) => {
                    self.driver_probe(conn, end);
                    if end == End::Backend {
                        self.emunic_hotplug_online(conn, p);
                    }
                }
                (End::Backend, Reaction::OtherendChanged) => {
                    let back = DriverXs::of(conn.back_dom);
                    let front = self.read_state(back, &conn.front_path);
                    self.frontend_changed(conn, front, p);
                }
                (End::Frontend, Reaction::OtherendChanged) => {
                    let who = DriverXs::Guest(conn.front_dom);
                    let back = self.read_state(who, &conn.back_path);
                    self.backend_changed(conn, slot, back);
                }
                (End::Backend, Reaction::OnlineChanged) => self.online_changed(conn),
                (End::Backend, Reaction::DirChanged) => self.backend_dir_changed(conn),
                (End::Frontend, Reaction::BackendMoved) => self.frontend_backend_moved(conn),
                (End::Frontend, Reaction::OnlineChanged | Reaction::DirChanged)
                | (End::Backend, Reaction::BackendMoved) => {
                    unreachable!("each end reacts only to its own keys")
                }
            }
        }
        if !conns.is_empty() {
            self.xenbus.insert(task.front_dom, conns);
        }
        Ok(())
    }

    /// `xenbus_dev_probe`: read the other end's details, watch its `state` (the watch
    /// fires once at once), then the driver's probe (a backend publishes its features
    /// and goes InitWait; a frontend's probe writes nothing). A watch the store refuses
    /// (a guest past its watch quota) fails the probe: the end stays unprobed.
    fn driver_probe(&mut self, conn: &mut DeviceConn, end: End) {
        let (xs, dir, other) = match end {
            End::Backend => {
                conn.back_probe_pending = false;
                (
                    DriverXs::of(conn.back_dom),
                    &conn.back_path,
                    &conn.front_path,
                )
            }
            End::Frontend => {
                conn.front_probe_pending = false;
                (
                    DriverXs::Guest(conn.front_dom),
                    &conn.front_path,
                    &conn.back_path,
                )
            }
        };
        // xenbus_read_otherend_details: `<dir>/<other>-id` and `<dir>/<other>`.
        let keys: [&str; 2] = match end {
            End::Backend => ["frontend-id", "frontend"],
            End::Frontend => ["backend-id", "backend"],
        };
        for key in keys {
            let path = alloc::format!("{dir}/{key}");
            let _ = self.driver_read(xs, &path);
        }
        let watched = alloc::format!("{other}/state");
        let added = self.driver_watch(xs, &watched, TOKEN_OTHEREND, false);
        if added.is_err() {
            return;
        }
        match end {
            End::Backend => {
                conn.back_probed = true;
                self.backend_probe(conn);
            }
            End::Frontend => conn.front_probed = true,
        }
    }

    /// The state in `<dir>/state` as `xenbus_read_driver_state` reads it.
    fn read_state(&mut self, who: DriverXs, dir: &str) -> XenbusState {
        let path = alloc::format!("{dir}/state");
        match self.driver_read(who, &path) {
            Ok(value) => XenbusState::parse(&value),
            Err(_) => XenbusState::Unknown,
        }
    }

    /// The backend's `frontend_changed` for the frontend's current `state`.
    fn frontend_changed<P: Platform + ?Sized>(
        &mut self,
        conn: &mut DeviceConn,
        front: XenbusState,
        p: &mut P,
    ) {
        use crate::io::handshake::DeviceKind;
        use XenbusState::{Closed, Closing, Connected, InitWait, Initialised, Unknown};
        let transport_ready = match conn.kind {
            // netback connects on Connected only (netfront skips Initialised).
            DeviceKind::Vif => front == Connected,
            DeviceKind::Vbd => matches!(front, Initialised | Connected),
        };
        if transport_ready {
            if conn.back_state == InitWait && conn.ring_handles.is_empty() {
                let _connected = self.backend_connect(conn, p);
            }
        } else if matches!(front, Closing | Closed | Unknown) && conn.back_state != Closed {
            self.backend_close(conn, true);
        } else if front == XenbusState::Initialising && conn.back_state == Closed {
            // xen-blkback frontend_changed: "prepare for reconnect" (spec §4.5: B, still
            // online, goes 6 → 2 when F writes 1 again).
            self.backend_reconnect(conn);
        }
    }

    /// The frontend's `backend_changed` for the backend's current `state`.
    fn backend_changed(&mut self, conn: &mut DeviceConn, slot: usize, back: XenbusState) {
        use XenbusState::{Closed, Closing, Connected, InitWait, Initialised, Initialising};
        match back {
            InitWait if conn.front_state == Initialising && conn.ring_refs.is_empty() => {
                let _published = self.frontend_publish(conn, slot);
            }
            Connected if conn.front_state == Initialised => self.frontend_connect(conn),
            Closing
                if matches!(
                    conn.front_state,
                    Initialising | Initialised | XenbusState::Connected
                ) =>
            {
                self.set_state(conn, End::Frontend, Closing);
            }
            XenbusState::Unknown if conn.front_state != Closed && self.backend_gone(conn) => {
                self.frontend_backend_gone(conn);
            }
            Closed | XenbusState::Unknown if conn.front_state != Closed => {
                self.frontend_close_finish(conn);
            }
            _ => {}
        }
    }

    /// The backend's `online` changed: `0` is the toolstack's unplug (spec §4.5), and
    /// the backend goes Closing.
    fn online_changed(&mut self, conn: &mut DeviceConn) {
        let path = alloc::format!("{}/online", conn.back_path);
        let offline = self
            .driver_read(DriverXs::of(conn.back_dom), &path)
            .is_ok_and(|v| v == b"0");
        let open = !matches!(conn.back_state, XenbusState::Closing | XenbusState::Closed);
        if offline && open {
            self.backend_close(conn, false);
        }
    }

    /// The backend, Closed but still online, prepares for the frontend's reconnect.
    fn backend_reconnect(&mut self, conn: &mut DeviceConn) {
        let path = alloc::format!("{}/online", conn.back_path);
        let online = self
            .driver_read(DriverXs::of(conn.back_dom), &path)
            .is_ok_and(|v| v == b"1");
        if online {
            self.set_state(conn, End::Backend, XenbusState::InitWait);
        }
    }

    /// An event on the backend's directory itself: if it is gone (a client removed it),
    /// the backend device goes: unmap, close the port, Closed (nothing to write into).
    fn backend_dir_changed(&mut self, conn: &mut DeviceConn) {
        let back_path = conn.back_path.clone();
        let back = DriverXs::of(conn.back_dom);
        let gone = self.driver_read(back, &back_path).is_err();
        if gone && conn.back_state != XenbusState::Closed {
            self.backend_close(conn, true);
        }
    }

    /// True if no reaction for `dom`'s devices is pending and xenstored holds no event
    /// for them: nothing for `dom`'s ring (its frontends) nor for dom0's or a driver
    /// domain's (the backends, whatever device the held events are about).
    pub(crate) fn xenbus_settled(&self, dom: DomId) -> bool {
        let backends_quiet = self
            .device_conns(dom)
            .iter()
            .filter(|c| c.back_dom != DomId::DOM0)
            .all(|c| !self.xsd.holds_output_for(u32::from(c.back_dom.raw())));
        backends_quiet
            && !self.xsd.holds_output_for(0)
            && !self.xsd.holds_output_for(u32::from(dom.raw()))
            && !self.driver_tasks.pending_for(dom)
    }

    /// libxl's `libxl__wait_device_connection`: every backend of `dom` reached InitWait
    /// (or went past it). A device whose backend can go no further (nothing pending and
    /// still Initialising) counts as done too; libxl would time out on it.
    pub(crate) fn xenbus_backends_ready(&self, dom: DomId) -> bool {
        use XenbusState::{Initialising, Unknown};
        let waiting = self
            .device_conns(dom)
            .iter()
            .any(|c| matches!(c.back_state, Initialising | Unknown));
        !waiting || self.xenbus_settled(dom)
    }

    /// Whether what `wait` waits for holds, counting the work of the current input too.
    pub(crate) fn xenbus_wait_over<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        wait: XenbusWait,
        p: &mut P,
    ) -> bool {
        self.xsd_flush(p);
        self.xenbus_wait_holds(dom, wait)
    }

    /// Notes a change to what waiters test (see `xenbus_epoch`).
    pub(crate) fn xenbus_changed(&mut self) {
        self.xenbus_epoch = self.xenbus_epoch.wrapping_add(1);
    }

    pub(crate) fn xenbus_fingerprint(&self) -> WaitFingerprint {
        (
            self.xenbus_epoch,
            self.driver_tasks.removed(),
            self.xsd.retired(),
        )
    }

    /// True if the waiter for `dom` may continue (its domain is gone or its wait holds).
    pub(crate) fn xenbus_waiter_ready(&self, dom: DomId, wait: XenbusWait) -> bool {
        !self.is_alive(dom) || self.xenbus_wait_holds(dom, wait)
    }

    fn xenbus_wait_holds(&self, dom: DomId, wait: XenbusWait) -> bool {
        match wait {
            XenbusWait::BackendsReady => self.xenbus_backends_ready(dom),
            XenbusWait::Settled => self.xenbus_settled(dom),
            XenbusWait::DeviceModel => self.stubdom_ready(dom),
        }
    }

    /// What [`Hypervisor::xenbus_wake_waiters`] would scan the waiters under: `None` while
    /// no job waits or nothing they test changed since the last scan.
    pub(crate) fn xenbus_unscanned(&self) -> Option<WaitFingerprint> {
        if self.xenbus_waiters.is_empty() {
            return None;
        }
        let fingerprint = self.xenbus_fingerprint();
        (self.xenbus_scanned != Some(fingerprint)).then_some(fingerprint)
    }

    /// Create and destroy jobs waiting for their domain's devices continue once what they
    /// wait for holds (or the domain is gone). Nothing to look at while nothing they test
    /// changed since the last look.
    pub(crate) fn xenbus_wake_waiters<P: Platform + ?Sized>(&mut self, p: &mut P) {
        let Some(fingerprint) = self.xenbus_unscanned() else {
            return;
        };
        self.xenbus_scanned = Some(fingerprint);
        let ready: Vec<crate::toolstack::ops::JobId> = self
            .xenbus_waiters
            .iter()
            .filter(|(_, (dom, wait))| self.xenbus_waiter_ready(*dom, *wait))
            .map(|(job, _)| *job)
            .collect();
        for job in ready {
            self.xenbus_waiters.remove(&job);
            p.defer_toolstack(job, p.now());
        }
    }

    /// An end stops watching when its device closes (`unregister_xenbus_watch`).
    pub(crate) fn unwatch_otherends(&mut self, conn: &DeviceConn) {
        if conn.back_probed && self.kernel_conn(conn.back_dom).is_some() {
            let path = alloc::format!("{}/state", conn.front_path);
            let back = DriverXs::of(conn.back_dom);
            let _ = self.driver_watch(back, &path, TOKEN_OTHEREND, true);
        }
        let front_dom = u32::from(conn.front_dom.raw());
        if conn.front_probed && self.xenstore.domain_conn(front_dom).is_some() {
            let path = alloc::format!("{}/state", conn.back_path);
            let who = DriverXs::Guest(conn.front_dom);
            let _ = self.driver_watch(who, &path, TOKEN_OTHEREND, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_paths_name_their_frontend_domain_and_device() {
        let path = "/local/domain/0/backend/vif/3/0/state";
        assert_eq!(event_front_dom(path), DomId::new(3));
        let root = device_root(path);
        assert_eq!(root.as_deref(), Some("/local/domain/0/backend/vif/3/0"));
    }

    #[test]
    fn frontend_paths_name_their_domain_and_device() {
        let path = "/local/domain/7/device/vbd/51712/ring-ref";
        assert_eq!(event_front_dom(path), DomId::new(7));
        let root = device_root(path);
        assert_eq!(root.as_deref(), Some("/local/domain/7/device/vbd/51712"));
    }

    #[test]
    fn relative_path_root_joins_components_under_slash() {
        let path = "x/local/domain/7/device/vbd/51712/ring-ref";
        let root = device_root(path);
        assert_eq!(root.as_deref(), Some("/local/domain/7/device/vbd/51712"));
    }

    #[test]
    fn components_match_split_skipping_the_first() {
        let paths = [
            "",
            "a",
            "/",
            "//",
            "x/a/b",
            "/a/b/",
            "/1/2/3/4/5/6/7/8/9",
            "/a//b",
        ];
        for path in paths {
            let (parts, count) = components(path);
            let want: Vec<&str> = path.split('/').skip(1).take(ROUTE_COMPONENTS_MAX).collect();
            assert_eq!(&parts[..count], &want[..], "{path:?}");
        }
    }

    #[test]
    fn key_of_needs_the_separating_slash() {
        assert!(is_key_of("/a/b/state", "/a/b", "state"));
        assert!(!is_key_of("/a/bstate", "/a/b", "state"));
        assert!(!is_key_of("/a/b/state/x", "/a/b", "state"));
    }

    #[test]
    fn bus_roots_are_above_any_device() {
        assert_eq!(device_root(BACKEND_ROOT), None);
        assert_eq!(event_front_dom("/local/domain/7/device"), None);
    }
}
