//! The vbd data path on a host: blkfront in each guest's kernel, blkback in the backend
//! domain (dom0, or the driver domain the disk's `backend=` names), the interdomain event
//! channel between them, the disk behind the Platform seam (the disk's storage lives
//! outside any domain, so a driver domain's death loses nothing the disk acknowledged).
//!
//! A guest I/O (`CoreInput::BlkSubmit`) enters blkfront, which pushes ring requests and
//! notifies blkback only when the ring's event index asks for it. blkback's interrupt wakes
//! its thread: it consumes what the ring offers (halting a ring whose `req_prod` is bogus),
//! maps the pages, and queues the batch as CPU work on the backend domain's vCPU 0
//! (`io.blkback_req_ns` per request plus `io.gnttab_map_ns` per new mapping,
//! [`Platform::backend_work`]). When it has run (`BackendWorkDone`) the commands go to
//! the disk ([`Platform::disk_submit`]) and error responses are pushed; blkback then
//! re-arms `req_event` and looks again (`RING_FINAL_CHECK_FOR_REQUESTS`). A completion
//! (`DiskDone`) becomes a response, and a notification when blkfront asked for one; its
//! interrupt handler consumes the responses, completes the guest's I/Os
//! (`GuestNotice::BlkDone`), and refills the ring from its backlog.
//!
//! Follows Linux xen-blkfront.c / xen-blkback/blkback.c (`xen_blkif_schedule`,
//! `blkif_interrupt`) and Xen's event channel send (xen/common/event_channel.c).
//!
//! # Invariants
//! - blkback's work items of one backend domain finish in queue order (one vCPU runs
//!   them); a ring has at most one batch queued.
//! - Every disk command in flight belongs to a connected vbd, or its completion is dropped.
//! - A parked vbd that has a path was connected since the last unpark (so the unpark
//!   only looks at the vbds connected since).
//!
//! xensim differs, on purpose: a driver's interrupt handler runs when the event is sent
//! (the receiving vCPU is woken for the guest to see the completion when it next runs);
//! the completion side of blkback costs no extra CPU (`io.blkback_req_ns` covers both).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use super::{trace_plain, Hypervisor};
use crate::ids::{BackWorkId, DomId, EvtchnPort, VcpuId, VcpuRef};
use crate::io::blkback::{BackIo, BackOutcome, DiskInflight};
use crate::io::blkif::BlkReqError;
use crate::io::dev_map::DevMap;
use crate::io::ring::RingOverflow;
use crate::io::spare::SpareBuffers;
use crate::io::vbd::{GuestIo, IoDone, PageStore, VbdPath};
use crate::platform::{DiskCommand, Platform};
use crate::toolstack::ops::GuestNotice;
use crate::trace::TraceEvent;

/// Most blkback work items queued on a host at once (one per ring at most).
pub const BLK_WORK_ITEMS_MAX: usize = 4096;
/// Most emptied outcome buffers blkback keeps for reuse (per host): a bound, not a
/// behaviour (a batch whose buffer is not kept allocates a new one).
pub const OUTCOME_SPARE_BUFFERS_MAX: usize = 64;
/// Most disk commands in flight on a host (Linux blkback: 64 pending requests per ring,
/// times rings; xensim's host-wide bound).
pub const DISK_INFLIGHT_MAX: usize = 1 << 20;

/// A vbd: frontend domain and `virtual-device` number.
pub type VbdKey = (DomId, u32);

/// One batch of blkback's work in its backend domain.
#[derive(Clone, Debug)]
struct BackWork {
    id: BackWorkId,
    key: VbdKey,
    /// The domain whose vCPU 0 runs it.
    back_dom: DomId,
    outcomes: Vec<BackOutcome>,
}

/// Every vbd data path of a host.
#[derive(Clone, Debug, Default)]
pub struct BlkState {
    /// Connected vbds.
    pub(crate) paths: DevMap<VbdPath>,
    /// The data and indirect pages.
    pub(crate) pages: PageStore,
    /// Disk commands in flight by tag.
    inflight: DiskInflight<(VbdKey, BackIo)>,
    next_tag: u64,
    /// blkback's work queues (every backend domain's), oldest first.
    work: VecDeque<BackWork>,
    next_work: u64,
    /// The ports of each vbd: (frontend's, backend's).
    pub(crate) ports: DevMap<(EvtchnPort, EvtchnPort)>,
    /// I/Os the guest issued to a vbd whose handshake has not connected yet (the block
    /// device appears at connect; they go to blkfront then).
    parked: BTreeMap<VbdKey, Vec<GuestIo>>,
    /// vbds connected since the last unpark: only these can free parked I/Os (a key is
    /// parked only while it has no path). Emptied at the end of every input.
    connected: BTreeSet<VbdKey>,
    /// I/Os blkfront holds for a vbd whose backend domain died, until a new backend
    /// connects (`drv_glue.rs`): those not answered when it went, then new ones.
    pub(crate) held: BTreeMap<VbdKey, Vec<GuestIo>>,
    /// Reconnects of each vbd to a re-created backend (`blkfront_resume`).
    pub(crate) reconnects: BTreeMap<VbdKey, u32>,
    /// vbds whose backend `xl devd` re-created, with the old backend directory the
    /// frontend still watches until it follows (`drv_glue.rs`).
    pub(crate) moved_from: BTreeMap<VbdKey, alloc::string::String>,
    /// The buffer blkfront's interrupt hands its completions up through, empty between
    /// interrupts (kept only so that an interrupt does not allocate).
    completed: Vec<crate::io::vbd::IoDone>,
    /// Emptied outcome buffers of finished batches (at most
    /// [`OUTCOME_SPARE_BUFFERS_MAX`]), so that consuming a batch does not allocate.
    outcome_spare: SpareBuffers<BackOutcome, OUTCOME_SPARE_BUFFERS_MAX>,
}

/// vCPU 0 of the backend domain, where blkback's thread runs.
fn backend_vcpu0(back_dom: DomId) -> VcpuRef {
    VcpuRef {
        dom: back_dom,
        vcpu: VcpuId::new(0).expect("vCPU 0"),
    }
}

impl Hypervisor {
    /// `BlkSubmit`: the guest's I/O enters blkfront, which pushes the ring at the last
    /// I/O of a batch. An I/O for a vbd that is neither connected nor connecting, or one
    /// blkfront refuses, completes at once with `BLKIF_RSP_ERROR`.
    pub(crate) fn blk_submit<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        vdev: u32,
        io: GuestIo,
        last: bool,
        p: &mut P,
    ) {
        let key = (vcpu.dom, vdev);
        let accepted = match self.blk.paths.get_mut(&key) {
            Some(path) => path.front_submit(io).is_ok(),
            None => self.blk_park(key, io),
        };
        if !accepted {
            let done = IoDone {
                tag: io.tag,
                status: crate::io::blkif::BLKIF_RSP_ERROR,
                digest: crate::io::vbd::DIGEST_INIT,
                bytes: 0,
            };
            p.guest_notify(vcpu.dom, GuestNotice::BlkDone { vdev, done });
        }
        if last {
            self.blkfront_kick(key, p);
        }
    }

    /// Holds `io` for a vbd the handshake is still connecting, or whose backend domain
    /// died (until the new backend connects); false if there is no such device (or too
    /// much is held already).
    fn blk_park(&mut self, key: VbdKey, io: GuestIo) -> bool {
        if let Some(held) = self.blk.held.get_mut(&key) {
            if held.len() >= crate::io::vbd::BACKLOG_IOS_MAX {
                return false;
            }
            held.push(io);
            return true;
        }
        let connecting = self.device_conns(key.0).iter().any(|conn| {
            Self::vbd_key(conn) == Some(key)
                && conn.front_state != crate::io::xenbus::XenbusState::Closing
                && conn.front_state != crate::io::xenbus::XenbusState::Closed
        });
        let parked = self.blk.parked.entry(key).or_default();
        if !connecting || parked.len() >= crate::io::vbd::BACKLOG_IOS_MAX {
            return false;
        }
        parked.push(io);
        true
    }

    /// True if [`Hypervisor::blk_unpark`] has nothing to do: no vbd connected during
    /// this input (the common case).
    #[inline(always)]
    pub(crate) fn blk_unpark_idle(&self) -> bool {
        self.blk.connected.is_empty()
    }

    /// End of an input: I/Os held for a vbd that has connected go to its blkfront.
    pub(crate) fn blk_unpark<P: Platform + ?Sized>(&mut self, p: &mut P) {
        if self.blk_unpark_idle() {
            return;
        }
        let connected = core::mem::take(&mut self.blk.connected);
        if self.blk.parked.is_empty() {
            return;
        }
        // In key order, as the parked map holds them.
        let ready: Vec<VbdKey> = connected
            .into_iter()
            .filter(|k| self.blk.parked.contains_key(k) && self.blk.paths.contains_key(k))
            .collect();
        for key in ready {
            let vcpu = VcpuRef {
                dom: key.0,
                vcpu: VcpuId::new(0).expect("vCPU 0"),
            };
            for io in self.blk.parked.remove(&key).unwrap_or_default() {
                self.blk_submit(vcpu, key.1, io, false, p);
            }
            self.blkfront_kick(key, p);
        }
    }

    /// blkfront pushes what its backlog can place and notifies blkback if asked to.
    fn blkfront_kick<P: Platform + ?Sized>(&mut self, key: VbdKey, p: &mut P) {
        let blk = &mut self.blk;
        let Some(path) = blk.paths.get_mut(&key) else {
            return;
        };
        let push = path.front_kick(&mut self.grants, &mut blk.pages);
        if push.pushed == 0 {
            return;
        }
        let back_dom = path.params.back_dom;
        let event = TraceEvent::BlkPush {
            dom: key.0,
            vdev: key.1,
            requests: push.pushed,
            notify: push.notify,
        };
        trace_plain(p, event);
        if push.notify && self.blk_send(key, back_dom, true, p) {
            self.blkback_irq(key, p);
        }
    }

    /// `notify_remote_via_irq` from one end of `key`'s channel: the port goes pending on
    /// the receiver, whose vCPU is woken and whose handler acknowledges the port at once.
    /// xensim differs: an upcall another channel left pending (the store channel's, whose
    /// handler is not modelled) does not hide this one.
    /// `back_dom` is the backend domain of `key`'s connected path (the caller's look-up).
    /// False when a `lost-interrupt` fault ate the notification (the handler must not run).
    fn blk_send<P: Platform + ?Sized>(
        &mut self,
        key: VbdKey,
        back_dom: DomId,
        from_front: bool,
        p: &mut P,
    ) -> bool {
        let Some(&ports) = self.blk.ports.get(&key) else {
            return true;
        };
        let delivered = self.ring_notify((key.0, back_dom), ports, from_front, p);
        if let (false, Some(path)) = (delivered, self.blk.paths.get_mut(&key)) {
            if from_front {
                path.irq_lost.1 = true;
            } else {
                path.irq_lost.0 = true;
            }
        }
        delivered
    }

    /// One end of a split driver's interdomain channel notifies the other: `ends` are the
    /// (frontend, backend) domains and `ports` their (frontend, backend) ports. The port
    /// goes pending on the receiver, whose vCPU is woken and whose handler acknowledges
    /// it at once (blkif and netif alike). False when a `lost-interrupt` fault ate it.
    pub(super) fn ring_notify<P: Platform + ?Sized>(
        &mut self,
        ends: (DomId, DomId),
        ports: (EvtchnPort, EvtchnPort),
        from_front: bool,
        p: &mut P,
    ) -> bool {
        let ((front, back), (front_port, back_port)) = (ends, ports);
        let (sender, port, receiver, receiver_port) = if from_front {
            (front, front_port, back, back_port)
        } else {
            (back, back_port, front, front_port)
        };
        // The `lost-interrupt` fault (`lost_irq.rs`): lost before the port goes pending.
        if self.take_lost_interrupt(receiver, receiver_port, p) {
            return false;
        }
        if self.evtchn.send(sender, port).is_err() {
            return true;
        }
        let Some(d) = self.evtchn.domain_mut(receiver) else {
            return true;
        };
        let Some(vcpu) = d.notify_vcpu(receiver_port) else {
            return true;
        };
        let _ = d.guest_ack_port(vcpu, receiver_port);
        let notify = crate::evtchn::Notify {
            dom: receiver,
            vcpu,
        };
        self.deliver_notify(Some(notify), p);
        true
    }

    /// blkback's interrupt: wake its thread unless a batch is already queued (the thread
    /// checks the ring again when that batch is done).
    fn blkback_irq<P: Platform + ?Sized>(&mut self, key: VbdKey, p: &mut P) {
        let busy = match self.blk.paths.get_mut(&key) {
            Some(path) => {
                path.irq_lost.1 = false;
                path.back_busy
            }
            None => true,
        };
        if !busy {
            self.blkback_run(key, p);
        }
    }

    /// blkback's thread: consume, then queue the batch as dom0 work (or finish it at once
    /// when it costs nothing); with nothing to consume, the final check re-arms.
    fn blkback_run<P: Platform + ?Sized>(&mut self, key: VbdKey, p: &mut P) {
        loop {
            let blk = &mut self.blk;
            let Some(path) = blk.paths.get_mut(&key) else {
                return;
            };
            let mut outcomes = blk.outcome_spare.take();
            let consumed = path.back_consume(&mut self.grants, &blk.pages, &mut outcomes);
            if let Err(overflow) = consumed {
                return self.blk_halted(key, true, overflow, p);
            }
            if !outcomes.is_empty() {
                let back_dom = path.params.back_dom;
                return self.blkback_queue(key, back_dom, outcomes, p);
            }
            blk.outcome_spare.keep(outcomes);
            match path.back_final_check() {
                Ok(true) => continue,
                Ok(false) => return,
                Err(overflow) => return self.blk_halted(key, true, overflow, p),
            }
        }
    }

    fn blk_halted<P: Platform + ?Sized>(
        &mut self,
        key: VbdKey,
        backend: bool,
        overflow: RingOverflow,
        p: &mut P,
    ) {
        p.trace(&TraceEvent::BlkRingHalted {
            dom: key.0,
            vdev: key.1,
            backend,
            prod: overflow.prod,
            base: overflow.base,
        });
    }

    /// Queues a consumed batch on the backend domain's vCPU 0 (`back_dom`, its path's).
    fn blkback_queue<P: Platform + ?Sized>(
        &mut self,
        key: VbdKey,
        back_dom: DomId,
        outcomes: Vec<BackOutcome>,
        p: &mut P,
    ) {
        let per_request_ns = self.costs.blkback_req_ns.max(0);
        let map_ns = self.costs.gnttab_map_ns.max(0);
        let mut work_ns: i64 = 0;
        for outcome in &outcomes {
            let maps = match outcome {
                BackOutcome::Submit(io) => i64::from(io.maps_made),
                BackOutcome::Reject(..) => 0,
            };
            work_ns = work_ns
                .saturating_add(per_request_ns)
                .saturating_add(map_ns.saturating_mul(maps));
        }
        let id = BackWorkId(self.blk.next_work);
        self.blk.next_work += 1;
        let event = TraceEvent::BlkbackWork {
            item: id,
            dom: key.0,
            vdev: key.1,
            requests: u32::try_from(outcomes.len()).unwrap_or(u32::MAX),
            work_ns,
        };
        trace_plain(p, event);
        let work = BackWork {
            id,
            key,
            back_dom,
            outcomes,
        };
        if work_ns == 0 {
            return self.blkback_finish(work, p);
        }
        assert!(
            self.blk.work.len() < BLK_WORK_ITEMS_MAX,
            "blkback work queue full"
        );
        if let Some(path) = self.blk.paths.get_mut(&key) {
            path.back_busy = true;
        }
        self.blk.work.push_back(work);
        p.backend_work(backend_vcpu0(back_dom), id, work_ns);
        let _ = self.vcpu_wake_event(backend_vcpu0(back_dom), p);
    }

    /// `BackendWorkDone`: the oldest batch of one backend domain ran.
    pub(crate) fn blkback_work_done<P: Platform + ?Sized>(
        &mut self,
        item: BackWorkId,
        p: &mut P,
    ) -> Result<(), super::InputError> {
        let Some(index) = self.blk.work.iter().position(|w| w.id == item) else {
            return Err(super::InputError::UnknownBackWork(item));
        };
        let back_dom = self.blk.work[index].back_dom;
        let older = self.blk.work.iter().take(index);
        if older.into_iter().any(|w| w.back_dom == back_dom) {
            // An older batch of the same vCPU is still queued: out of order.
            return Err(super::InputError::UnknownBackWork(item));
        }
        if let Some(work) = self.blk.work.remove(index) {
            self.blkback_finish(work, p);
        }
        Ok(())
    }

    /// The backend domain `back_dom` died: the batches queued on its vCPU will never run
    /// and go with their transient mappings (Xen releases the dead mapper's mappings).
    pub(crate) fn blk_backend_domain_gone(&mut self, back_dom: DomId) {
        self.blk.work.retain(|w| w.back_dom != back_dom);
    }

    /// A batch's effects: commands to the disk, error responses, then the thread looks
    /// at the ring again.
    fn blkback_finish<P: Platform + ?Sized>(&mut self, mut work: BackWork, p: &mut P) {
        let key = work.key;
        if !self.blk.ports.contains_key(&key) {
            // blkback disconnected meanwhile: the batch is dropped with its mappings.
            for outcome in work.outcomes.drain(..) {
                if let BackOutcome::Submit(io) = outcome {
                    for handle in io.transient {
                        let _ = self.grants.unmap_grant_ref(work.back_dom, handle);
                    }
                }
            }
            return self.blk.outcome_spare.keep(work.outcomes);
        }
        // The thread is busy until it looks at the ring again below: an interrupt from a
        // response's refill does not re-enter it.
        if let Some(path) = self.blk.paths.get_mut(&key) {
            path.back_busy = true;
        }
        for mut outcome in work.outcomes.drain(..) {
            self.blk_outcome_start(key, &mut outcome);
            match outcome {
                BackOutcome::Submit(io) => self.blk_disk_submit(key, io, p),
                BackOutcome::Reject(rsp, err) => {
                    p.trace(&TraceEvent::BlkReject {
                        dom: key.0,
                        vdev: key.1,
                        id: rsp.id,
                        reason: err.code(),
                        gntst: match err {
                            BlkReqError::Grant(code) => code,
                            _ => 0,
                        },
                    });
                    let sent = self.blk.paths.get_mut(&key).map(|path| {
                        let notify = path.back_respond(rsp);
                        (notify, path.params.back_dom)
                    });
                    let (notify, back_dom) = sent.unwrap_or((false, work.back_dom));
                    self.blk_responded((key, back_dom), rsp.id, rsp.status, notify, p);
                }
            }
        }
        if let Some(path) = self.blk.paths.get_mut(&key) {
            path.back_busy = false;
        }
        self.blk.outcome_spare.keep(work.outcomes);
        self.blkback_run(key, p);
    }

    /// A request of a batch meets its vbd (one look-up for both steps): a `disk-error`
    /// fault pending on `key` turns one bound for the disk into an error response (its
    /// transient mappings go), else it counts as in flight at the disk. In place: the
    /// request is large, and almost always goes to the disk unchanged.
    fn blk_outcome_start(&mut self, key: VbdKey, outcome: &mut BackOutcome) {
        let Some(path) = self.blk.paths.get_mut(&key) else {
            return;
        };
        let BackOutcome::Submit(io) = outcome else {
            return;
        };
        if path.back_fail_count == 0 {
            path.back_inflight += 1;
            return;
        }
        path.back_fail_count -= 1;
        let back_dom = path.params.back_dom;
        for handle in &io.transient {
            let _ = self.grants.unmap_grant_ref(back_dom, *handle);
        }
        let err = BlkReqError::DiskError;
        let rsp = crate::io::blkif::BlkResponse {
            id: io.id,
            op: io.op,
            status: err.status(),
        };
        *outcome = BackOutcome::Reject(rsp, err);
    }

    /// `BlkFault`: the next `count` requests of `dom`'s vbd `vdev` fail (ignored for a
    /// vbd that is not connected).
    pub(crate) fn blk_fault(&mut self, dom: DomId, vdev: u32, count: u32) {
        if let Some(path) = self.blk.paths.get_mut(&(dom, vdev)) {
            path.back_fail_count = path.back_fail_count.saturating_add(count);
        }
    }

    /// A request of a batch goes to the disk (`blk_outcome_start` counted it in flight).
    fn blk_disk_submit<P: Platform + ?Sized>(&mut self, key: VbdKey, mut io: BackIo, p: &mut P) {
        assert!(
            self.blk.inflight.len() < DISK_INFLIGHT_MAX,
            "disk commands in flight"
        );
        let tag = self.blk.next_tag;
        self.blk.next_tag += 1;
        let cmd = DiskCommand {
            tag,
            dom: key.0,
            vdev: key.1,
            op: io.disk_op,
            sector: io.sector,
            sectors: io.sectors,
            data: core::mem::take(&mut io.data),
        };
        let event = TraceEvent::DiskSubmit {
            tag,
            dom: key.0,
            vdev: key.1,
            op: cmd.op.code(),
            sector: cmd.sector,
            sectors: cmd.sectors,
        };
        trace_plain(p, event);
        // `blk_outcome_start` counted it in its vbd's `back_inflight`.
        self.blk.inflight.insert(tag, (key, io));
        p.disk_submit(cmd);
    }

    /// `DiskDone`: the response goes back (dropped if the vbd is gone).
    pub(crate) fn blk_disk_done<P: Platform + ?Sized>(
        &mut self,
        tag: u64,
        ok: bool,
        data: &[u64],
        p: &mut P,
    ) {
        let Some((key, io)) = self.blk.inflight.remove(tag) else {
            return;
        };
        let blk = &mut self.blk;
        let Some(path) = blk.paths.get_mut(&key) else {
            return;
        };
        path.back_inflight -= 1;
        let notify = path.back_complete(&io, ok, data, &mut self.grants, &mut blk.pages);
        let id = io.id;
        path.back_recycle(io);
        let back_dom = path.params.back_dom;
        let status = if ok {
            crate::io::blkif::BLKIF_RSP_OKAY
        } else {
            crate::io::blkif::BLKIF_RSP_ERROR
        };
        self.blk_responded((key, back_dom), id, status, notify, p);
    }

    /// A response was pushed on `key`'s ring, whose path has the backend `back_dom`:
    /// trace it, and run blkfront's interrupt if it was notified.
    fn blk_responded<P: Platform + ?Sized>(
        &mut self,
        (key, back_dom): (VbdKey, DomId),
        id: u64,
        status: i16,
        notify: bool,
        p: &mut P,
    ) {
        let event = TraceEvent::BlkResponse {
            dom: key.0,
            vdev: key.1,
            id,
            status,
            notify,
        };
        trace_plain(p, event);
        if notify && self.blk_send(key, back_dom, false, p) {
            self.blkfront_irq(key, p);
        }
    }

    /// `blkif_interrupt`: completions to the guest, then the backlog onto the ring.
    fn blkfront_irq<P: Platform + ?Sized>(&mut self, key: VbdKey, p: &mut P) {
        let blk = &mut self.blk;
        let Some(path) = blk.paths.get_mut(&key) else {
            return;
        };
        path.irq_lost.0 = false;
        // Completions go through the reused buffer (no allocation per interrupt); a
        // broken ring hands up nothing.
        let mut done = core::mem::take(&mut blk.completed);
        let result = path.front_responses(&blk.pages, &mut done);
        if result.is_err() {
            done.clear();
        }
        for done in done.drain(..) {
            let notice = GuestNotice::BlkDone { vdev: key.1, done };
            p.guest_notify(key.0, notice);
        }
        self.blk.completed = done;
        if let Err(overflow) = result {
            return self.blk_halted(key, false, overflow, p);
        }
        self.blkfront_kick(key, p);
    }

    /// Moves I/Os parked or held for `key` into `parked` (ahead of nothing: they are
    /// the oldest), to go to blkfront when the vbd connects.
    pub(crate) fn blk_park_all(&mut self, key: VbdKey, ios: Vec<GuestIo>) {
        let parked = self.blk.parked.entry(key).or_default();
        let later = core::mem::replace(parked, ios);
        parked.extend(later);
    }

    /// The vbd of `key` is connected: its data path starts (blkfront on backend
    /// Connected, with what both ends advertised).
    pub(crate) fn blk_connect(&mut self, path: VbdPath, ports: (EvtchnPort, EvtchnPort)) {
        let key = (path.params.front_dom, path.params.vdev);
        self.blk.ports.insert(key, ports);
        self.blk.paths.insert(key, path);
        self.blk.connected.insert(key);
        self.end_idle = false;
    }

    /// blkback disconnects from `key`: its persistent mappings go; blkfront's pool stays
    /// granted until its own close.
    pub(crate) fn blk_backend_close(&mut self, key: VbdKey) {
        self.blk.ports.remove(&key);
        self.blk.parked.remove(&key);
        let mut back_dom = DomId::DOM0;
        if let Some(path) = self.blk.paths.get_mut(&key) {
            path.back_release(&mut self.grants);
            path.back_halted = true;
            back_dom = path.params.back_dom;
        }
        // Queued batches stay (dom0 still runs them) and are dropped when done; commands
        // at the disk are forgotten (their completions are ignored) with their mappings.
        let tags: Vec<u64> = self
            .blk
            .inflight
            .iter()
            .filter(|(_, (k, _))| *k == key)
            .map(|(tag, _)| tag)
            .collect();
        for tag in tags {
            if let Some((_, io)) = self.blk.inflight.remove(tag) {
                for handle in io.transient {
                    let _ = self.grants.unmap_grant_ref(back_dom, handle);
                }
            }
        }
    }

    /// blkfront closes `key`: it ends its pool's grants (refs still mapped stay granted,
    /// as Linux defers them) and the data path is gone.
    pub(crate) fn blk_frontend_close(&mut self, key: VbdKey) -> Vec<crate::ids::GrantRef> {
        let Some(path) = self.blk.paths.remove(&key) else {
            return Vec::new();
        };
        let mut kept = Vec::new();
        for gref in path.front_pool_refs() {
            let Some(table) = self.grants.table_mut(key.0) else {
                break;
            };
            if table.guest_end_access(gref) != Ok(true) {
                kept.push(gref);
            }
        }
        kept
    }

    /// The data path of `dom`'s vbd `vdev`, if connected.
    pub fn vbd_path(&self, dom: DomId, vdev: u32) -> Option<&VbdPath> {
        self.blk.paths.get(&(dom, vdev))
    }

    /// The data path of `dom`'s vbd `vdev`, writable: what a guest scribbling on its own
    /// ring page reaches (tests and fault injection).
    pub fn vbd_path_mut(&mut self, dom: DomId, vdev: u32) -> Option<&mut VbdPath> {
        self.blk.paths.get_mut(&(dom, vdev))
    }

    /// The vbd checks (`VbdPath::check`) and the host-wide bounds.
    pub(crate) fn blk_check(&self, out: &mut Vec<crate::sched::Violation>) {
        for (key, path) in self.blk.paths.iter() {
            let mut broken = Vec::new();
            path.check(&mut broken);
            let inflight = self
                .blk
                .inflight
                .iter()
                .filter(|(_, (k, _))| k == key)
                .count();
            if !path.back_halted && inflight != path.back_inflight as usize {
                broken.push("vbd.inflight");
            }
            for invariant in broken {
                let detail = alloc::format!("d{} vbd {}", key.0.raw(), key.1);
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
        for key in self.blk.parked.keys() {
            if self.blk.paths.contains_key(key) && !self.blk.connected.contains(key) {
                let detail =
                    alloc::format!("d{} vbd {} parked past its connect", key.0.raw(), key.1);
                let invariant = "vbd.parked_connected";
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
        if self.blk.work.len() > BLK_WORK_ITEMS_MAX {
            let detail = alloc::format!("{} items", self.blk.work.len());
            let invariant = "vbd.work_bound";
            out.push(crate::sched::Violation { invariant, detail });
        }
    }

    /// Every connected vbd, in (domain, vdev) order.
    pub fn vbd_paths(&self) -> impl Iterator<Item = (&VbdKey, &VbdPath)> {
        self.blk.paths.iter()
    }
}
