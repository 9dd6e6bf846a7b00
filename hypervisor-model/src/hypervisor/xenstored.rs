//! xenstored as an actor in dom0: every request it handles costs `io.xenstored_request_ns`
//! of CPU on dom0's vCPU 0, and what it sends to the in-process split drivers (their
//! watch events) leaves only once that CPU work is done.
//!
//! Every XenStore request made during one core input (the toolstack's, the drivers' over
//! their kernels' rings, a xenstore-* client's, a socket client's) is counted; at the end
//! of the input the count becomes one batch of work, appended to xenstored's FIFO of work
//! items, and the domain rings (dom0's and the guests') whose connections got output are
//! recorded in that item. The platform turns the work into CPU demand of dom0's vCPU 0
//! ([`Platform::xenstored_work`]); the core wakes that vCPU if it is blocked (the event
//! channel or socket that carried the request makes xenstored runnable). When the vCPU
//! has run the item's work the platform hands back `CoreInput::XenstoredDone`; xenstored
//! then writes each recorded ring's output into the ring, its kernel reads it, and the
//! driver watch events reach the drivers (`xenbus_watch.rs`). A busy dom0 therefore slows
//! every handshake step by the time its vCPU 0 spends on other work.
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17: one single-threaded daemon in
//! dom0 serving connections in order (`main`'s poll loop, `handle_input`,
//! `send_reply`), and xenstored_watch.c (`send_event` queues on the watcher's connection).
//!
//! # Invariants
//! - Items finish in queue order; `XenstoredDone` names the oldest item.
//! - An item serves rings only behind all the work queued before it: a batch without rings
//!   may merge into the newest item, since in a FIFO this changes no completion time of
//!   any ring output.
//! - `pending_for` counts, per domain, the unfinished items that will serve its ring.
//! - The queue holds at most [`XS_WORK_ITEMS_MAX`] items; at the bound a new batch merges
//!   into the newest item (whose rings then wait for it as well) instead of adding one.
//!
//! xensim differs, on purpose:
//! - The store changes at once when a request is made, and replies reach their callers at
//!   once (the toolstack's calls, the drivers' ring requests, and socket clients, whose
//!   serve-mode clock already advances by `io.xenstored_request_ns` per request); only
//!   output written into the rings outside a request (watch events) waits for xenstored's
//!   CPU work. The toolstack's own
//!   wait for its requests stays `toolstack.xs_request_ns` per request in its job steps.
//! - xenstored always runs on dom0's vCPU 0 (a single-threaded daemon; dom0's default is
//!   one vCPU). Boot-time writes and read-only queries outside the run are not charged.
//! - Watch events to socket clients go out with the reply, not after the work.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::ids::{DomId, VcpuId, VcpuRef, XsConnId, XsWorkId};
use crate::platform::Platform;
use crate::trace::TraceEvent;

/// Most unfinished work items (only items that hold driver events add to the count, so
/// this bounds the driver events in flight). xensim's bound.
pub const XS_WORK_ITEMS_MAX: usize = 4096;

/// Token prefix of the watches the in-process split drivers register.
pub(crate) const DRIVER_TOKEN_PREFIX: &[u8] = b"xenbus:";

/// A watch event xenstored holds for an in-process driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeldEvent {
    /// The watcher's connection.
    pub conn: XsConnId,
    /// The event path.
    pub path: String,
    /// The watch token.
    pub token: Vec<u8>,
}

/// One unfinished item of xenstored's work.
#[derive(Clone, Debug)]
struct WorkItem {
    id: XsWorkId,
    /// CPU time asked of dom0 for it (0: nothing to run, it finishes when it is oldest).
    work_ns: i64,
    /// Domains (dom0 included) whose ring connection got output: xenstored writes it into
    /// their rings when the item is done, and their drivers get their watch events.
    rings: BTreeSet<u32>,
}

/// xenstored's CPU work queue.
#[derive(Clone, Debug, Default)]
pub(crate) struct XsActor {
    /// Requests made during the current input, not yet queued.
    uncharged_requests: u32,
    /// Unfinished items, oldest first; dom0 works on the front one.
    queue: VecDeque<WorkItem>,
    next_item: u64,
    /// Requests charged since boot.
    charged_requests: u64,
    /// Per domain: the items that will write into its ring (what `xl create` waits on),
    /// kept so the wait test is O(log n).
    pending_for: BTreeMap<u32, u32>,
    /// Ring counts taken back so far (a waiter on a ring can only be freed by one).
    retired: u64,
}

impl XsActor {
    /// Requests xenstored handled and charged to dom0 since boot.
    pub fn charged_requests(&self) -> u64 {
        self.charged_requests
    }

    /// Unfinished work items.
    pub fn queued_items(&self) -> usize {
        self.queue.len()
    }

    /// True if an unfinished item will write into `domid`'s ring.
    pub(crate) fn holds_output_for(&self, domid: u32) -> bool {
        self.pending_for.contains_key(&domid)
    }

    /// How many per-ring counts finished items took back since boot.
    pub(crate) fn retired(&self) -> u64 {
        self.retired
    }

    /// `pending_for` recounted from the queue (the checker compares the two).
    pub(crate) fn recount(&self) -> (BTreeMap<u32, u32>, &BTreeMap<u32, u32>) {
        let mut counted = XsActor::default();
        for item in &self.queue {
            counted.account(&item.rings, true);
        }
        (counted.pending_for, &self.pending_for)
    }

    /// Counts (`add`) or uncounts `rings`, per domain.
    fn account(&mut self, rings: &BTreeSet<u32>, add: bool) {
        for &dom in rings {
            if add {
                *self.pending_for.entry(dom).or_insert(0) += 1;
            } else if let Some(n) = self.pending_for.get_mut(&dom) {
                self.retired = self.retired.wrapping_add(1);
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.pending_for.remove(&dom);
                }
            }
        }
    }
}

/// The vCPU xenstored runs on.
fn xenstored_vcpu() -> VcpuRef {
    VcpuRef {
        dom: DomId::DOM0,
        vcpu: VcpuId::new(0).expect("vCPU 0"),
    }
}

impl Hypervisor {
    /// xenstored handled `count` more requests during this input.
    pub(crate) fn xsd_count(&mut self, count: u32) {
        let actor = &mut self.xsd;
        actor.uncharged_requests = actor.uncharged_requests.saturating_add(count);
    }

    /// End of an input: the requests it made become dom0 work, holding the driver watch
    /// events they caused; an item with nothing left to run releases its events at once.
    /// The test stays inline (it runs after every input), the work is a call (`always`: the
    /// inliner would otherwise keep the test out of line with the work folded into it).
    #[inline(always)]
    pub(crate) fn xsd_flush<P: Platform + ?Sized>(&mut self, p: &mut P) {
        if !self.xsd_idle() {
            // The common case on the scheduler's path is idle: nothing for xenstored.
            self.xsd_flush_work(p);
        }
    }

    /// True if [`Hypervisor::xsd_flush`] has nothing to do.
    #[inline(always)]
    pub(crate) fn xsd_idle(&self) -> bool {
        self.xenbus_traces.is_empty()
            && self.xsd.uncharged_requests == 0
            && !self.xenstore.has_rings_with_output()
    }

    /// The work of [`Hypervisor::xsd_flush`] once there is something for xenstored.
    #[inline(never)]
    fn xsd_flush_work<P: Platform + ?Sized>(&mut self, p: &mut P) {
        for event in core::mem::take(&mut self.xenbus_traces) {
            p.trace(&event);
        }
        let rings = self.xenstore.take_rings_with_output();
        let requests = core::mem::take(&mut self.xsd.uncharged_requests);
        if requests == 0 && rings.is_empty() {
            return;
        }
        // A full queue (xenstored far behind, e.g. a thousand creates at once) takes the
        // batch into its newest item: the rings already in that item are then served after
        // this work too, so xenstored falls behind in larger batches instead of failing.
        let full = self.xsd.queue.len() >= XS_WORK_ITEMS_MAX;
        let merge = full || self.xsd.queue.back().is_some_and(|w| w.rings.is_empty());
        if !merge {
            let id = XsWorkId(self.xsd.next_item);
            self.xsd.next_item += 1;
            self.xsd.queue.push_back(WorkItem {
                id,
                work_ns: 0,
                rings: BTreeSet::new(),
            });
        }
        let work_ns = self
            .costs
            .xenstored_request_ns
            .max(0)
            .saturating_mul(i64::from(requests));
        // A ring already in the newest item is counted once (a set): only new ones count.
        let new_rings: BTreeSet<u32> = match self.xsd.queue.back() {
            Some(item) => rings.difference(&item.rings).copied().collect(),
            None => rings,
        };
        let ring_count = u32::try_from(new_rings.len()).unwrap_or(u32::MAX);
        self.xsd.account(&new_rings, true);
        let Some(item) = self.xsd.queue.back_mut() else {
            unreachable!("an item was just queued");
        };
        item.work_ns = item.work_ns.saturating_add(work_ns);
        item.rings.extend(new_rings);
        let id = item.id;
        self.xsd.charged_requests += u64::from(requests);
        p.trace(&TraceEvent::XenstoredWork {
            item: id,
            requests,
            rings: ring_count,
        });
        if work_ns > 0 {
            p.xenstored_work(xenstored_vcpu(), id, work_ns);
            // The request's event channel (or socket) makes xenstored runnable.
            let _ = self.vcpu_wake_event(xenstored_vcpu(), p);
        }
        self.xsd_release_idle(p);
    }

    /// Boot is over: dom0's boot-time writes are not charged (no vCPU runs yet), and the
    /// backend bus watch's first event concerns no device.
    pub(crate) fn xsd_boot_done(&mut self) {
        self.xsd.uncharged_requests = 0;
        let _ = self.xenstore.take_rings_with_output();
        let _ = self.xs_ring_driver_events(DomId::DOM0, DRIVER_TOKEN_PREFIX);
        self.xs_notifies.clear();
    }

    /// `XenstoredDone`: the oldest item's work ran; its events go to the drivers.
    pub(crate) fn xsd_done<P: Platform + ?Sized>(
        &mut self,
        item: XsWorkId,
        p: &mut P,
    ) -> Result<(), super::InputError> {
        let front = self.xsd.queue.front().map(|w| w.id);
        if front != Some(item) {
            return Err(super::InputError::UnknownXsWork(item));
        }
        if let Some(done) = self.xsd.queue.pop_front() {
            assert!(done.work_ns > 0, "an item without work was charged");
            self.xsd_finish(done, p);
        }
        self.xsd_release_idle(p);
        Ok(())
    }

    /// Front items with no work to run (events only) finish at once.
    fn xsd_release_idle<P: Platform + ?Sized>(&mut self, p: &mut P) {
        while self.xsd.queue.front().is_some_and(|w| w.work_ns == 0) {
            if let Some(done) = self.xsd.queue.pop_front() {
                self.xsd_finish(done, p);
            }
        }
    }

    /// A finished item: dom0's backends get their events, then xenstored writes each
    /// guest's output into its ring and the guest's frontends get theirs (domid order).
    fn xsd_finish<P: Platform + ?Sized>(&mut self, done: WorkItem, p: &mut P) {
        self.xsd.account(&done.rings, false);
        let mut events = Vec::new();
        for raw in done.rings {
            let dom = u16::try_from(raw).ok().and_then(DomId::new);
            if let Some(dom) = dom {
                events.extend(self.xs_ring_driver_events(dom, DRIVER_TOKEN_PREFIX));
            }
        }
        self.deliver_driver_events(events, p);
        self.xs_deliver_notifies(p);
    }

    /// xenstored's work accounting (requests charged to dom0 since boot).
    pub fn xenstored_charged_requests(&self) -> u64 {
        self.xsd.charged_requests()
    }

    /// xenstored's unfinished work items (at most [`XS_WORK_ITEMS_MAX`]).
    pub fn xenstored_queued_items(&self) -> usize {
        self.xsd.queued_items()
    }
}
