//! The guest side of every vCPU on a host: its workload model, and the bookkeeping that
//! turns the model's wishes into core inputs at the right virtual time.
//!
//! A model is created the first time its vCPU runs (the instant the guest starts executing).
//! While the vCPU runs, one demand-done event is pending; it is invalidated (by generation)
//! when the vCPU stops. A blocked model with a timer has one wake event pending.
//!
//! Service work (xenstored's requests on dom0's vCPU 0, `Platform::xenstored_work`) is
//! queued per vCPU and runs before the guest's own workload: while any is queued, the
//! running vCPU works on the oldest item (a *service segment*), and the model is paused
//! as if descheduled; the model resumes once the queue is empty. Each finished item is a
//! [`GuestStep::ServiceDone`] (the run loop hands the core `XenstoredDone`).
//!
//! # Invariants
//! - At most one live demand-done event and one live wake event per vCPU.
//! - `run_started_ns.is_some() || serving_since_ns.is_some()` iff the core says the vCPU
//!   is running, and never both.
//! - A service segment runs only while the vCPU's service queue is not empty.

use std::collections::BTreeMap;

use hypervisor_model::ids::{BackWorkId, DomId, VcpuRef, XsWorkId};

use super::SimEvent;
use crate::clock::EventQueue;
use crate::guest::memory::{GuestMemory, MemoryCosts, NumaView, Stretch};
use crate::guest::modes::{GuestMode, ModeCosts};
use crate::guest::workload::{GuestAction, GuestState, GuestVcpu, JobRecord};
use crate::rng::RngStreams;
use crate::scenario::model::WorkloadSpec;
pub use exchange::{Done, Handoff, IoBatch};
use plan::{push_demand_done, push_guest_wake, push_service_done};
use service::ServiceQueues;

/// What the guest of a vCPU asks the core to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestStep {
    /// SCHEDOP_block.
    Block,
    /// SCHEDOP_yield.
    Yield,
    /// Keep running (the model has new demand).
    Continue,
    /// The vCPU finished this item of service work.
    ServiceDone(ServiceItem),
    /// The guest submits I/Os ([`HostGuests::take_io`]), then blocks.
    SubmitIo,
}

/// An item of work a dom0 process or kernel thread asked of a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceItem {
    /// xenstored's (`Platform::xenstored_work`).
    Xenstored(XsWorkId),
    /// blkback's (`Platform::backend_work`).
    Blkback(BackWorkId),
    /// Xen handling an exit of the vCPU itself (`Platform::vcpu_stall`); nothing waits
    /// for its end.
    Exit,
}

#[derive(Debug)]
struct GuestSlot {
    model: GuestVcpu,
    /// Generation of the pending demand-done event.
    run_generation: u64,
    /// Generation of the pending wake event.
    wake_generation: u64,
    run_started_ns: Option<u64>,
    /// The model was blocked when its vCPU started running (a demand of 0 was planned).
    blocked_at_start: bool,
    /// Since when the running vCPU works on its service queue's oldest item.
    serving_since_ns: Option<u64>,
    /// NUMA node of the pCPU it runs (or last ran) on.
    node: usize,
    /// The memory stretch its model runs under (`guests_memory.rs`).
    stretch: Stretch,
}

impl GuestSlot {
    /// The model stops running at `now_ns` (descheduled, or paused for service): it is
    /// charged its run. Returns when that run started (`None`: it was not running).
    /// Always inlined: called at every stop, mostly of a blocked model (an I/O guest, dom0
    /// after its service) that has nothing to charge.
    #[inline(always)]
    fn pause_model(&mut self, now_ns: u64) -> Option<u64> {
        let started_ns = self.run_started_ns.take()?;
        self.model.on_run_stop(now_ns);
        if self.model.state() == GuestState::Runnable {
            // A stop inside the switch overhead leaves the guest no time of its own.
            self.model.account(now_ns.saturating_sub(started_ns));
        }
        Some(started_ns)
    }

    /// The model runs from `now_ns` under `stretch`: its demand-done event, if it ever
    /// acts, is planned in `queue` with `generation` (the slot's run generation from now).
    #[inline(always)]
    fn start_model(
        &mut self,
        now_ns: u64,
        generation: u64,
        stretch: Stretch,
        host: u16,
        v: VcpuRef,
        queue: &mut EventQueue<SimEvent>,
    ) {
        self.run_started_ns = Some(now_ns);
        self.run_generation = generation;
        self.set_stretch(stretch);
        self.model.on_run_start(now_ns);
        self.blocked_at_start = self.model.state() != GuestState::Runnable;
        let demand_ns = match self.model.state() {
            GuestState::Runnable => self.model.run_demand_ns(now_ns),
            // A guest that has nothing to do blocks as soon as it runs.
            GuestState::Blocked { .. } => Some(0),
        };
        if let Some(demand_ns) = demand_ns {
            push_demand_done(queue, now_ns + demand_ns, host, v, generation);
        }
    }

    /// The vCPU works on its oldest service item, `left_ns` to go, from `now_ns`: the
    /// item's end is planned in `queue` with `generation` (the slot's run generation from
    /// now).
    #[inline(always)]
    fn start_service(
        &mut self,
        now_ns: u64,
        left_ns: u64,
        generation: u64,
        host: u16,
        v: VcpuRef,
        queue: &mut EventQueue<SimEvent>,
    ) {
        self.serving_since_ns = Some(now_ns);
        self.run_generation = generation;
        push_service_done(queue, now_ns + left_ns, host, v, generation);
    }

    /// The model runs under `stretch` from now on.
    fn set_stretch(&mut self, stretch: Stretch) {
        self.stretch = stretch;
        self.model.set_stretch_ppm(stretch.total_ppm);
    }
}

/// The workloads of one domain, by vCPU index.
#[derive(Debug, Clone)]
struct DomainWorkloads {
    name: String,
    workloads: Vec<WorkloadSpec>,
}

/// `v`'s entry of a table indexed by domid, then vCPU index, if it has one.
fn dense_get<'t, T>(by_domain: &'t [Vec<T>], v: &VcpuRef) -> Option<&'t T> {
    let vcpus = by_domain.get(usize::from(v.dom.raw()))?;
    vcpus.get(usize::try_from(v.vcpu.raw()).ok()?)
}

/// [`dense_get`], mutably.
fn dense_get_mut<'t, T>(by_domain: &'t mut [Vec<T>], v: &VcpuRef) -> Option<&'t mut T> {
    let vcpus = by_domain.get_mut(usize::from(v.dom.raw()))?;
    vcpus.get_mut(usize::try_from(v.vcpu.raw()).ok()?)
}

/// `v`'s entry of a table indexed by domid, then vCPU index, the table grown (with
/// defaults) to hold it.
fn dense_entry<'t, T: Default>(by_domain: &'t mut Vec<Vec<T>>, v: &VcpuRef) -> &'t mut T {
    let dom = usize::from(v.dom.raw());
    if by_domain.len() <= dom {
        by_domain.resize_with(dom + 1, Vec::new);
    }
    let vcpus = &mut by_domain[dom];
    let index = usize::try_from(v.vcpu.raw()).expect("vCPU index fits usize");
    if vcpus.len() <= index {
        vcpus.resize_with(index + 1, T::default);
    }
    &mut vcpus[index]
}

/// Guest slots indexed by domid, then vCPU index (dense, as the core's tables).
#[derive(Debug, Default)]
struct Slots {
    by_domain: Vec<Vec<Option<GuestSlot>>>,
}

impl Slots {
    fn get(&self, v: &VcpuRef) -> Option<&GuestSlot> {
        dense_get(&self.by_domain, v)?.as_ref()
    }

    fn get_mut(&mut self, v: &VcpuRef) -> Option<&mut GuestSlot> {
        dense_get_mut(&mut self.by_domain, v)?.as_mut()
    }

    fn contains_key(&self, v: &VcpuRef) -> bool {
        dense_get(&self.by_domain, v).is_some_and(Option::is_some)
    }

    fn insert(&mut self, v: VcpuRef, slot: GuestSlot) {
        *dense_entry(&mut self.by_domain, &v) = Some(slot);
    }

    /// The slots of `dom`'s vCPUs, in vCPU order (none for an unknown domain).
    fn of_domain(&self, dom: DomId) -> impl Iterator<Item = &GuestSlot> {
        self.by_domain
            .get(usize::from(dom.raw()))
            .into_iter()
            .flatten()
            .flatten()
    }

    /// [`Self::of_domain`], mutable.
    fn of_domain_mut(&mut self, dom: DomId) -> impl Iterator<Item = &mut GuestSlot> {
        self.by_domain
            .get_mut(usize::from(dom.raw()))
            .into_iter()
            .flatten()
            .flatten()
    }

    fn clear_domain(&mut self, dom: DomId) {
        if let Some(vcpus) = self.by_domain.get_mut(usize::from(dom.raw())) {
            vcpus.clear();
        }
    }
}

/// Guest models of one host.
#[derive(Debug)]
pub struct HostGuests {
    streams: RngStreams,
    domains: BTreeMap<DomId, DomainWorkloads>,
    /// `domains`' keys by domain id (`knows`, asked for every frame, is one index).
    known: Vec<bool>,
    slots: Slots,
    next_generation: u64,
    /// Service work queued per vCPU, oldest first: (item, ns left).
    service: ServiceQueues,
    /// The memory model of each domain that has one (`guests_memory.rs`).
    pub(super) memories: BTreeMap<DomId, GuestMemory>,
    /// Domains whose pages changed since the run loop last looked.
    pub(super) memory_dirty: Vec<DomId>,
    /// The host's NUMA layout.
    pub(super) numa: NumaView,
    /// What swapping costs.
    pub(super) mem_costs: MemoryCosts,
    /// Start of the metrics window (the memory counters count from there).
    pub(super) window_start_ns: u64,
    /// The per-mode guest costs (`guest/modes.rs`).
    modes: ModeCosts,
    /// Each domain's mode (dom0 and domains not set: PV).
    mode_of: BTreeMap<DomId, GuestMode>,
    /// Guest CPU per frame in netfront (`io.netfront_pkt_ns`), for `io` over a vif.
    net_packet_ns: u64,
    /// The `os` rates of domains that have them (`guests_memory.rs`).
    pub(super) os_of: BTreeMap<DomId, crate::scenario::model::OsRates>,
}

impl HostGuests {
    /// No domains yet; models draw from `streams`.
    pub fn new(streams: RngStreams) -> HostGuests {
        HostGuests {
            streams,
            domains: BTreeMap::new(),
            known: Vec::new(),
            slots: Slots::default(),
            next_generation: 0,
            service: ServiceQueues::default(),
            memories: BTreeMap::new(),
            memory_dirty: Vec::new(),
            numa: NumaView::default(),
            mem_costs: MemoryCosts::DEFAULT,
            window_start_ns: 0,
            modes: ModeCosts::from_table(&BTreeMap::new()),
            mode_of: BTreeMap::new(),
            net_packet_ns: 0,
            os_of: BTreeMap::new(),
        }
    }

    /// The per-mode guest costs of this host (from its cost table).
    pub fn set_mode_costs(&mut self, modes: ModeCosts) {
        self.modes = modes;
    }

    /// The per-mode guest costs of this host.
    pub(super) fn mode_costs(&self) -> &ModeCosts {
        &self.modes
    }

    /// `dom` is a PV, PVH, PVHVM or emulated-HVM guest (before its vCPUs first run).
    pub fn set_mode(&mut self, dom: DomId, mode: GuestMode) {
        self.mode_of.insert(dom, mode);
    }

    /// The guest CPU an `io` workload of `dom` spends per disk I/O.
    fn io_request_ns(&self, dom: DomId) -> u64 {
        let mode = self.mode_of.get(&dom).copied().unwrap_or(GuestMode::Pv);
        self.modes.disk_io_guest_ns(mode)
    }

    /// The guest CPU an `io` workload over a vif spends in netfront per frame.
    pub fn set_net_packet_ns(&mut self, ns: u64) {
        self.net_packet_ns = ns;
    }

    /// A new domain `dom` runs `workloads` (one per vCPU index; missing ones are idle).
    pub fn register_domain(&mut self, dom: DomId, name: &str, workloads: Vec<WorkloadSpec>) {
        self.forget_domain(dom);
        let index = usize::from(dom.raw());
        if self.known.len() <= index {
            self.known.resize(index + 1, false);
        }
        self.known[index] = true;
        self.domains.insert(
            dom,
            DomainWorkloads {
                name: name.to_string(),
                workloads,
            },
        );
    }

    /// The domain is gone: drop its models (their pending events become stale).
    pub fn forget_domain(&mut self, dom: DomId) {
        self.domains.remove(&dom);
        if let Some(known) = self.known.get_mut(usize::from(dom.raw())) {
            *known = false;
        }
        self.memories.remove(&dom);
        self.mode_of.remove(&dom);
        self.service.clear_domain(dom);
        self.slots.clear_domain(dom);
    }

    /// The periodic job records of every vCPU of `dom`, with every job released before
    /// `end_ns` (unfinished ones included), in vCPU order; empty without periodic workloads.
    pub fn jobs(&mut self, dom: DomId, end_ns: u64) -> Vec<JobRecord> {
        let Some(vcpus) = self.slots.by_domain.get_mut(usize::from(dom.raw())) else {
            return Vec::new();
        };
        vcpus
            .iter_mut()
            .flatten()
            .flat_map(|slot| slot.model.jobs_released_before(end_ns).to_vec())
            .collect()
    }

    /// Domains with guest models, ascending.
    pub fn domains(&self) -> impl Iterator<Item = DomId> + '_ {
        self.domains.keys().copied()
    }

    /// True if `dom` has registered workloads.
    pub fn knows(&self, dom: DomId) -> bool {
        let known = self.known.get(usize::from(dom.raw())).copied() == Some(true);
        debug_assert_eq!(known, self.domains.contains_key(&dom));
        known
    }

    /// True once a vCPU of `dom` has run guest code.
    pub(super) fn has_run(&self, dom: DomId) -> bool {
        self.slots
            .by_domain
            .get(usize::from(dom.raw()))
            .is_some_and(|vcpus| vcpus.iter().any(Option::is_some))
    }

    /// The node `v` runs (or last ran) on.
    pub(super) fn slot_node(&self, v: VcpuRef) -> usize {
        let vcpus = self.slots.by_domain.get(usize::from(v.dom.raw()));
        let index = usize::try_from(v.vcpu.raw()).unwrap_or(usize::MAX);
        vcpus
            .and_then(|vcpus| vcpus.get(index))
            .and_then(Option::as_ref)
            .map_or(0, |slot| slot.node)
    }

    /// The stretch `v`'s model runs under, if it has a model.
    pub(super) fn slot_stretch(&mut self, v: VcpuRef) -> Option<Stretch> {
        self.slots.get_mut(&v).map(|slot| slot.stretch)
    }

    fn generation(&mut self) -> u64 {
        take_generation(&mut self.next_generation)
    }

    fn slot_for(
        &mut self,
        v: VcpuRef,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) -> Option<&mut GuestSlot> {
        if !self.slots.contains_key(&v) {
            let domain = self.domains.get(&v.dom)?;
            let index = usize::try_from(v.vcpu.raw()).ok()?;
            let idle = WorkloadSpec::Idle {
                tick: None,
                tick_work: crate::scenario::model::Dist::Const(0),
            };
            let spec = domain.workloads.get(index).cloned().unwrap_or(idle);
            let mut model =
                GuestVcpu::new(&spec, &self.streams, &domain.name, v.vcpu.raw(), now_ns);
            if !self.has_run(v.dom) {
                // The guest starts: its memory model reads its pages after this input.
                self.memory_changed(v.dom);
            }
            let mode = self.mode_of.get(&v.dom).copied();
            model.set_disk_emulated(mode == Some(GuestMode::HvmEmulated));
            let frame_ns = self
                .modes
                .net_frame_guest_ns(mode.unwrap_or(GuestMode::Pv), self.net_packet_ns);
            model.set_io_costs(self.io_request_ns(v.dom), frame_ns);
            if let Some((stretch_ppm, timer_ns)) = self.os_costs(v.dom, mode) {
                model.set_os_costs(stretch_ppm, timer_ns);
            }
            let wake_generation = self.generation();
            if let GuestState::Blocked {
                wake_at_ns: Some(at_ns),
            } = model.state()
            {
                push_guest_wake(queue, at_ns.max(now_ns), host, v, wake_generation);
            }
            self.slots.insert(
                v,
                GuestSlot {
                    model,
                    run_generation: 0,
                    wake_generation,
                    run_started_ns: None,
                    blocked_at_start: false,
                    serving_since_ns: None,
                    node: 0,
                    stretch: Stretch::NONE,
                },
            );
        }
        self.slots.get_mut(&v)
    }

    /// The core put `v` on pCPU `pcpu` at `now_ns`; the guest's own work starts after the
    /// switch's `overhead_ns` (queued service work first).
    pub fn start_running(
        &mut self,
        v: VcpuRef,
        pcpu: usize,
        now_ns: u64,
        overhead_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) {
        let start_ns = now_ns + overhead_ns;
        let node = self
            .numa
            .cpu_node
            .get(pcpu)
            .map_or(0, |n| usize::try_from(*n).unwrap_or(0));
        let serve =
            self.service.item_count() > 0 && self.service.get(&v).is_some_and(|q| !q.is_empty());
        // The model exists after its vCPU's first run: one look-up, not two.
        let Some(slot) = self.slots.get_mut(&v) else {
            if self.slot_for(v, start_ns, host, queue).is_some() {
                self.start_running(v, pcpu, now_ns, overhead_ns, host, queue);
            }
            return;
        };
        let now_ns = start_ns;
        slot.node = node;
        assert!(slot.run_started_ns.is_none(), "{v:?} started twice");
        assert!(slot.serving_since_ns.is_none(), "{v:?} started twice");
        if serve {
            self.begin_service(v, now_ns, host, queue);
        } else if !self.memories.is_empty() {
            // The stretch depends on the node just set.
            self.begin_model(v, now_ns, host, queue);
        } else {
            // Most run starts: no memory model, no service; the slot found above runs on
            // (the generation is taken from its counter beside the slot's borrow).
            let generation = take_generation(&mut self.next_generation);
            slot.start_model(now_ns, generation, Stretch::NONE, host, v, queue);
        }
    }

    /// The model of running vCPU `v` runs from `now_ns`: plan its demand-done event.
    fn begin_model(
        &mut self,
        v: VcpuRef,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) {
        let generation = self.generation();
        let stretch = self.stretch_for(v);
        let Some(slot) = self.slots.get_mut(&v) else {
            return;
        };
        slot.start_model(now_ns, generation, stretch, host, v, queue);
    }

    /// Running vCPU `v` works on its oldest service item from `now_ns`. Not inlined: a
    /// run start that serves is the rare one, and inlined into the scheduler's context
    /// switch it cost that hot path more than the call (+13 M on `io-64-moderate`, 4 s).
    #[inline(never)]
    fn begin_service(
        &mut self,
        v: VcpuRef,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) {
        let generation = self.generation();
        let Some(&(_, left_ns)) = self.service.get(&v).and_then(|q| q.front()) else {
            unreachable!("service begins with work queued");
        };
        let Some(slot) = self.slots.get_mut(&v) else {
            return;
        };
        slot.start_service(now_ns, left_ns, generation, host, v, queue);
    }

    /// The service segment of `v` stops at `now_ns`: the oldest item keeps what is left.
    fn pause_service(&mut self, v: VcpuRef, now_ns: u64) {
        let Some(slot) = self.slots.get_mut(&v) else {
            return;
        };
        let Some(since_ns) = slot.serving_since_ns.take() else {
            return;
        };
        let _ = self
            .service
            .charge_front(&v, now_ns.saturating_sub(since_ns));
    }

    /// A dom0 service needs `work_ns` more on `v` for `item` (a new item, or the newest
    /// one growing). A running vCPU turns to it at once: what it did so far (a service
    /// segment, or its model) stops, and its oldest item runs from now.
    pub fn add_service(
        &mut self,
        v: VcpuRef,
        item: ServiceItem,
        work_ns: u64,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) {
        self.service.add(v, item, work_ns);
        // One look-up of the slot and one of the queue, where pausing and beginning
        // looked each up again.
        let Some(slot) = self.slots.get_mut(&v) else {
            return;
        };
        let (ran_ns, model_started_ns) = match slot.serving_since_ns.take() {
            Some(since_ns) => (now_ns.saturating_sub(since_ns), None),
            None => match slot.pause_model(now_ns) {
                Some(started_ns) => (0, Some(started_ns)),
                None => return, // Not running: the work waits for the vCPU's next run.
            },
        };
        let Some(left_ns) = self.service.charge_front(&v, ran_ns) else {
            unreachable!("service begins with work queued");
        };
        let generation = take_generation(&mut self.next_generation);
        slot.start_service(now_ns, left_ns, generation, host, v, queue);
        if let Some(started_ns) = model_started_ns {
            self.memory_ran(v, started_ns, now_ns);
        }
    }

    /// The core took `v` off its pCPU at `now_ns`.
    pub fn stop_running(&mut self, v: VcpuRef, now_ns: u64) {
        let generation = self.generation();
        let Some(slot) = self.slots.get_mut(&v) else {
            return;
        };
        slot.run_generation = generation;
        if slot.serving_since_ns.is_some() {
            self.pause_service(v, now_ns);
        } else if let Some(started_ns) = slot.pause_model(now_ns) {
            // The slot found above, not looked up again (every switch away from a vCPU).
            self.memory_ran(v, started_ns, now_ns);
        }
    }

    /// A service segment's demand-done: the oldest item is finished; the next item, or
    /// else the model, runs on (the slot and the queue each looked up once).
    fn service_done(
        &mut self,
        v: VcpuRef,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) -> Option<GuestStep> {
        let generation = self.generation();
        let stretch = self.stretch_for(v);
        let slot = self.slots.get_mut(&v)?;
        let since_ns = slot.serving_since_ns.take()?;
        let ran_ns = now_ns.saturating_sub(since_ns);
        let ((item, left_ns), next_left_ns) = self.service.finish_front(&v, ran_ns)?;
        assert_eq!(left_ns, 0, "{item:?} finished early");
        match next_left_ns {
            Some(next_left_ns) => {
                slot.start_service(now_ns, next_left_ns, generation, host, v, queue);
            }
            None => {
                slot.start_model(now_ns, generation, stretch, host, v, queue);
            }
        }
        Some(GuestStep::ServiceDone(item))
    }

    /// A demand-done event fired: what the guest does and what the run loop hands on for
    /// it, or `None` if the event is stale.
    pub fn demand_done(
        &mut self,
        v: VcpuRef,
        generation: u64,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) -> Option<Done> {
        let wake_generation = self.generation();
        let slot = self.slots.get_mut(&v)?;
        if slot.run_generation != generation {
            return None;
        }
        if slot.serving_since_ns.is_some() {
            let step = self.service_done(v, now_ns, host, queue)?;
            return Some(Done {
                step,
                handoff: Handoff::Nothing,
            });
        }
        let started_ns = slot.run_started_ns?;
        slot.run_started_ns = Some(now_ns);
        // Without memory models (most hosts) the slot found above stays the one to use.
        let slot = if self.memories.is_empty() {
            slot
        } else {
            self.memory_ran(v, started_ns, now_ns);
            self.slots.get_mut(&v)?
        };
        let step = if std::mem::take(&mut slot.blocked_at_start) {
            // It had nothing to do when it started: block, unless a wake came in between
            // (then it has fresh demand). A pending wake was scheduled with the model.
            match slot.model.state() {
                GuestState::Runnable => GuestStep::Continue,
                GuestState::Blocked { .. } => GuestStep::Block,
            }
        } else {
            model_step(slot, wake_generation, now_ns, host, v, queue)
        };
        Some(Done {
            step,
            handoff: Handoff::of(&slot.model),
        })
    }

    /// After a yield or continue: if `v` still runs, schedule its next demand-done.
    pub fn rearm(&mut self, v: VcpuRef, now_ns: u64, host: u16, queue: &mut EventQueue<SimEvent>) {
        let generation = self.generation();
        let stretch = self.stretch_for(v);
        let Some(slot) = self.slots.get_mut(&v) else {
            return;
        };
        if slot.run_started_ns.is_none() || slot.model.state() != GuestState::Runnable {
            return;
        }
        slot.run_generation = generation;
        slot.set_stretch(stretch);
        if let Some(ns) = slot.model.run_demand_ns(now_ns) {
            queue.push_to_heap(
                super::HEAP_DEMAND_DONE,
                now_ns + ns,
                SimEvent::DemandDone {
                    host,
                    vcpu: v,
                    generation,
                },
            );
        }
    }

    /// A wake event fired: true if the guest wakes (send `VcpuWake` to the core).
    pub fn wake(&mut self, v: VcpuRef, generation: u64, now_ns: u64) -> bool {
        let Some(slot) = self.slots.get_mut(&v) else {
            return false;
        };
        if slot.wake_generation != generation || slot.model.state() == GuestState::Runnable {
            return false;
        }
        slot.model.on_wake(now_ns);
        true
    }
}

/// The running model of `slot` (`v`'s) finished its planned run at `now_ns`: what it
/// does; a block arms its wake event with `wake_generation`.
#[inline]
fn model_step(
    slot: &mut GuestSlot,
    wake_generation: u64,
    now_ns: u64,
    host: u16,
    v: VcpuRef,
    queue: &mut EventQueue<SimEvent>,
) -> GuestStep {
    match slot.model.on_demand_done(now_ns) {
        GuestAction::Block { wake_at_ns } => {
            slot.wake_generation = wake_generation;
            if let Some(at_ns) = wake_at_ns {
                push_guest_wake(queue, at_ns.max(now_ns), host, v, wake_generation);
            }
            GuestStep::Block
        }
        GuestAction::Yield => GuestStep::Yield,
        GuestAction::Continue => GuestStep::Continue,
        GuestAction::BlockOnIo => {
            slot.wake_generation = wake_generation;
            // A vif request's retransmission timer, or the streams' next send.
            let wake_at_ns = slot.model.arm_net_timeout(now_ns);
            if let Some(at_ns) = wake_at_ns.or(slot.model.wake_at_ns()) {
                let event = SimEvent::GuestWake {
                    host,
                    vcpu: v,
                    generation: wake_generation,
                };
                // Mostly the request's fixed retransmission timeout: in time order.
                queue.push_in_order(super::LANE_IO_WAKE, at_ns.max(now_ns), event);
            }
            GuestStep::SubmitIo
        }
    }
}

/// The next run generation from the host's counter `next_generation` (see
/// [`HostGuests::generation`]; a free function so that it can run while a slot is
/// borrowed).
#[inline(always)]
fn take_generation(next_generation: &mut u64) -> u64 {
    *next_generation += 1;
    *next_generation
}

mod exchange;
mod plan;
mod service;
#[cfg(test)]
mod tests;
