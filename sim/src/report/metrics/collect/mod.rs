//! The metrics collector: folds the core's `TraceEvent`s, in trace order, into per-host,
//! per-pCPU, per-domain and per-vCPU state, and turns that state into [`Metrics`].
//!
//! Follows `specs/metrics.md` §0 (window), §1.1 (runstate times), §1.2 (wakeup latency,
//! runqueue wait), §1.8 (context switches), §1.9 (preemptions), §1.10 (migrations), §1.11
//! (idle time) and §2.2 (host free memory). The runstates are Xen's
//! (`xen/include/public/vcpu.h`, `RUNSTATE_*`), as the core emits them from
//! `vcpu_runstate_change` (xen/common/sched/core.c).
//!
//! Usage: [`MetricsCollector::new`], then [`MetricsCollector::domain_meta`] whenever the run
//! loop creates a domain (before or after its `DomainCreate` is observed), then
//! [`MetricsCollector::observe`] for every core event with `time_ns < end_ns`, in order, then
//! [`MetricsCollector::finish`].
//!
//! # Invariants
//! - Domains are keyed by a per-host creation sequence: a domid freed by `DomainFree` and
//!   reused is a new entity, reported separately.
//! - Each observed `Runstate` starts from the state the collector holds for that vCPU, and
//!   each `Schedule` names as `prev` what the collector holds as running on that pCPU.
//! - A pool pCPU's `busy_ns + idle_ns + overhead_ns == online_ns`.
//! - Event times never go backwards on one host.
//!
//! xensim differs: a `running → runnable` transition does not say whether the vCPU yielded,
//! so every one counts as a preemption and `yield_count` stays 0 until the trace carries the
//! cause. Preemption causes (`tickle`/`slice`/`budget`) are not reported for the same reason.
//! A wake still runnable when its domain is freed counts as abandoned.

mod live;
mod pcpu;
mod report;

use std::collections::BTreeMap;

use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::ids::{DomId, PcpuId, PoolId, VcpuRef};
use hypervisor_model::sched::rtds::ServerStats;
use hypervisor_model::trace::TraceEvent;

use super::samples::SampleLog;
use super::state::{VcpuState, Window};
use super::{Metrics, WindowMetrics};
use crate::guest::workload::JobRecord;
use crate::machine::switch::SwitchCosts;
use live::{LiveDomains, VcpuTable};
use pcpu::{PcpuState, PoolSlots, SwitchOverhead, VcpuKey};

/// Static description of one host, fixed for the whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMeta {
    /// Host name (`h0`).
    pub name: String,
    /// NUMA node of each pCPU, indexed by pCPU id.
    pub pcpu_nodes: Vec<u32>,
    /// Pool name of each pCPU, indexed by pCPU id; `None` for a pCPU in no pool.
    pub pcpu_pools: Vec<Option<String>>,
    /// The host's cpupools, `Pool-0` first.
    pub pools: Vec<PoolMeta>,
    /// Switch costs: the overhead each switch charges its pCPU (§1.12 (a)).
    pub switch: SwitchCosts,
}

/// One cpupool of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolMeta {
    /// Pool name (`Pool-0`).
    pub name: String,
    /// Scheduler name as Xen prints it (`credit2`, `rtds`, `null`).
    pub scheduler: String,
}

/// Scheduling parameters of one domain, given by the run loop when it creates the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainMeta {
    /// Cpupool name.
    pub pool: String,
    /// Scheduler weight.
    pub weight: u32,
    /// Scheduler cap, percent of one pCPU (0 = none).
    pub cap: u32,
}

/// Folds trace events into metrics.
#[derive(Debug)]
pub struct MetricsCollector {
    window_start_ns: u64,
    hosts: Vec<HostState>,
}

#[derive(Debug)]
struct HostState {
    meta: HostMeta,
    /// `meta.switch` as each switch charges it.
    switch: SwitchOverhead,
    last_time_ns: u64,
    /// Each pCPU's accounting, and the slot of its pool (`meta.pcpu_pools`, as slots of
    /// `pool_slots`).
    pcpus: Vec<PcpuState>,
    pool_slots: PoolSlots,
    /// Every domain ever created on this host, in creation order.
    domains: Vec<DomainState>,
    /// Every vCPU ever created on this host, in creation order (the domains' tables
    /// hold positions in it).
    vcpus: Vec<VcpuState>,
    /// Live domid → index into `domains`, and where its vCPUs are.
    live: LiveDomains,
    /// Metadata given before the domain's `DomainCreate` was observed.
    pending_meta: BTreeMap<DomId, DomainMeta>,
    free_pages_now: Option<u64>,
    free_pages_min: Option<u64>,
    /// Pool names by id (boot pools are numbered in `meta.pools` order).
    pool_names: BTreeMap<PoolId, String>,
    /// The latency samples of all its vCPUs.
    samples: SampleLog,
}

#[derive(Debug)]
struct DomainState {
    domid: DomId,
    name: String,
    meta: Option<DomainMeta>,
    created_ns: u64,
    freed_ns: Option<u64>,
    /// Its vCPUs' positions in the host's `vcpus`.
    vcpus: VcpuTable,
    /// Periodic job records of all its vCPUs (given by the run loop).
    jobs: Vec<JobRecord>,
    /// vbd I/O records of all its vCPUs (given by the run loop), as the metrics read them.
    io: Vec<crate::guest::io_log::IoLog>,
    /// In-window ring pushes and notifications, by vdev (from `BlkPush`/`BlkResponse`).
    rings: Vec<(u32, super::io::RingCounts)>,
    /// The guest memory model's counters (given by the run loop).
    memory: Option<crate::guest::memory::MemoryStats>,
    /// In-window `BalloonGaveUp` events.
    balloon_gave_up_count: u64,
    /// End-of-run vbd checks by device name (lost acknowledged writes, reconnects).
    vbd_checks: BTreeMap<String, super::io::VbdChecks>,
    /// Dropped vif frames (given by the run loop).
    net_drops: Vec<crate::run::net::NetDropRecord>,
}

impl MetricsCollector {
    /// A collector for a run whose window starts at `window_start_ns` (the warm-up).
    pub fn new(window_start_ns: u64, hosts: Vec<HostMeta>) -> MetricsCollector {
        let hosts = hosts.into_iter().map(HostState::new).collect();
        MetricsCollector {
            window_start_ns,
            hosts,
        }
    }

    /// Records the periodic job records of domain `dom` on host `host_index`: the live
    /// domain with that id, or else the one freed last with it (the run loop hands the
    /// records over when the domain is destroyed, after its `DomainFree`).
    pub fn domain_jobs(&mut self, host_index: usize, dom: DomId, jobs: Vec<JobRecord>) {
        if let Some(domain) = self.handed_over(host_index, dom) {
            domain.jobs = jobs;
        }
    }

    /// Hands over the logs of completed I/Os of domain `dom` on host `host_index`.
    pub fn domain_io(
        &mut self,
        host_index: usize,
        dom: DomId,
        logs: Vec<crate::guest::io_log::IoLog>,
    ) {
        if let Some(domain) = self.handed_over(host_index, dom) {
            domain.io = logs;
        }
    }

    /// Hands over the guest memory counters of domain `dom` on host `host_index`.
    pub fn domain_memory(
        &mut self,
        host_index: usize,
        dom: DomId,
        stats: crate::guest::memory::MemoryStats,
    ) {
        if let Some(domain) = self.handed_over(host_index, dom) {
            domain.memory = Some(stats);
        }
    }

    /// Records the end-of-run checks of live domain `dom`'s vbd `dev`.
    pub fn vbd_checks(
        &mut self,
        host_index: usize,
        dom: DomId,
        dev: String,
        checks: super::io::VbdChecks,
    ) {
        let host = self.host_mut(host_index);
        if let Some(&index) = host.live.get(&dom) {
            host.domains[index].vbd_checks.insert(dev, checks);
        }
    }

    /// Hands over the dropped vif frames of domain `dom` on host `host_index`.
    pub fn domain_net_drops(
        &mut self,
        host_index: usize,
        dom: DomId,
        drops: Vec<crate::run::net::NetDropRecord>,
    ) {
        if let Some(domain) = self.handed_over(host_index, dom) {
            domain.net_drops = drops;
        }
    }

    /// Records the rtds server accounting of live vCPU `v` on host `host_index`.
    pub fn vcpu_server_stats(&mut self, host_index: usize, v: VcpuRef, stats: ServerStats) {
        if let Some(vcpu) = self.host_mut(host_index).live_vcpu(v) {
            vcpu.set_server(stats);
        }
    }

    /// Records the rtds reservation (budget and period, ns) of live vCPU `v` at the end of
    /// the run.
    pub fn vcpu_rtds_reservation(
        &mut self,
        host_index: usize,
        v: VcpuRef,
        budget_ns: u64,
        period_ns: u64,
    ) {
        if let Some(vcpu) = self.host_mut(host_index).live_vcpu(v) {
            vcpu.set_rtds_reservation(budget_ns, period_ns);
        }
    }

    /// Records the scheduling parameters of domain `dom` on host `host_index`: the live
    /// domain with that id, or else the next one created with it.
    pub fn domain_meta(&mut self, host_index: usize, dom: DomId, meta: DomainMeta) {
        let host = self.host_mut(host_index);
        match host.live.get(&dom) {
            Some(&index) => host.domains[index].meta = Some(meta),
            None => {
                host.pending_meta.insert(dom, meta);
            }
        }
    }

    /// Folds one core event emitted on host `host_index` at `time_ns`. Events must come in
    /// trace order and before the end of the run.
    ///
    /// The frequent kinds no metric uses (a third of a busy run's events) return here,
    /// without a call: their times are not checked against the host's order.
    #[inline]
    pub fn observe(&mut self, host_index: usize, time_ns: u64, event: &TraceEvent) {
        let unused = matches!(
            event,
            TraceEvent::Tickle { .. }
                | TraceEvent::TimerSet { .. }
                | TraceEvent::PoolTimerSet { .. }
                | TraceEvent::BlkbackWork { .. }
                | TraceEvent::DiskSubmit { .. }
                | TraceEvent::NetPush { .. }
                | TraceEvent::NetbackWork { .. }
        );
        if !unused {
            self.fold(host_index, time_ns, event);
        }
    }

    /// [`Self::observe`] of a `Runstate { vcpu, from, to }` event, for a caller that has
    /// matched the event already (the run loop's sinks: one dispatch per event, not two).
    #[inline]
    pub fn runstate(
        &mut self,
        host_index: usize,
        time_ns: u64,
        vcpu: VcpuRef,
        (from, to): (Runstate, Runstate),
    ) {
        let window = self.observing_window();
        self.host_at(host_index, time_ns)
            .runstate(window, time_ns, vcpu, (from, to));
    }

    /// [`Self::observe`] of a `Schedule { pcpu, prev, next, .. }` event, as
    /// [`Self::runstate`].
    #[inline]
    pub fn schedule(
        &mut self,
        host_index: usize,
        time_ns: u64,
        pcpu: PcpuId,
        (prev, next): (Option<VcpuRef>, Option<VcpuRef>),
    ) {
        let window = self.observing_window();
        self.host_at(host_index, time_ns)
            .schedule(window, time_ns, pcpu, prev, next);
    }

    /// [`Self::observe`] of a `BlkPush { dom, vdev, requests, notify }` event, as
    /// [`Self::runstate`].
    #[inline]
    pub fn blk_push(
        &mut self,
        host_index: usize,
        time_ns: u64,
        dom: DomId,
        vdev: u32,
        (requests, notify): (u32, bool),
    ) {
        let window = self.observing_window();
        self.host_at(host_index, time_ns)
            .blk_push(window, time_ns, dom, vdev, (requests, notify));
    }

    /// [`Self::observe`] of a `BlkResponse { dom, vdev, notify, .. }` event, as
    /// [`Self::runstate`].
    #[inline]
    pub fn blk_response(
        &mut self,
        host_index: usize,
        time_ns: u64,
        dom: DomId,
        vdev: u32,
        notify: bool,
    ) {
        let window = self.observing_window();
        self.host_at(host_index, time_ns)
            .blk_response(window, time_ns, dom, vdev, notify);
    }

    /// The window while observing: every event is before its end.
    #[inline(always)]
    fn observing_window(&self) -> Window {
        Window {
            start_ns: self.window_start_ns,
            end_ns: u64::MAX,
        }
    }

    /// Host `host_index`, its clock moved to `time_ns` (events come in trace order).
    #[inline(always)]
    fn host_at(&mut self, host_index: usize, time_ns: u64) -> &mut HostState {
        let host = self.host_mut(host_index);
        assert!(time_ns >= host.last_time_ns, "trace time went backwards");
        host.last_time_ns = time_ns;
        host
    }

    /// [`Self::observe`] for every kind (out of line: the filter stays a few instructions).
    #[inline(never)]
    fn fold(&mut self, host_index: usize, time_ns: u64, event: &TraceEvent) {
        let window = self.observing_window();
        let host = self.host_at(host_index, time_ns);
        match event {
            TraceEvent::Runstate { vcpu, from, to } => {
                host.runstate(window, time_ns, *vcpu, (*from, *to));
            }
            TraceEvent::Schedule {
                pcpu, prev, next, ..
            } => host.schedule(window, time_ns, *pcpu, *prev, *next),
            TraceEvent::DomainCreate { dom, name } => host.domain_create(time_ns, *dom, name),
            TraceEvent::PoolCreate { pool, name, sched } => {
                host.pool_create(*pool, name, sched.opt_name());
            }
            TraceEvent::PoolCpu { pcpu, pool } => host.pool_cpu(window, time_ns, *pcpu, *pool),
            TraceEvent::DomainPool { dom, pool } => host.domain_pool(*dom, *pool),
            TraceEvent::VcpuCreate { vcpu, .. } => host.vcpu_create(time_ns, *vcpu),
            TraceEvent::DomainFree { dom } => host.domain_free(window, time_ns, *dom),
            TraceEvent::Memory { free_pages, .. } => host.memory(window, time_ns, *free_pages),
            TraceEvent::NullAssign { vcpu, assigned, .. } => {
                host.vcpu_mut(*vcpu).null_assign(window, time_ns, *assigned)
            }
            TraceEvent::Tickle { .. }
            | TraceEvent::TimerSet { .. }
            | TraceEvent::PoolTimerSet { .. }
            | TraceEvent::PoolDestroy { .. }
            | TraceEvent::XsSocketSend { .. }
            | TraceEvent::XsSocketDrop { .. }
            | TraceEvent::NullWaitq { .. }
            | TraceEvent::Pause { .. }
            | TraceEvent::Shutdown { .. }
            | TraceEvent::Dying { .. }
            | TraceEvent::JobStep { .. }
            | TraceEvent::JobDone { .. }
            | TraceEvent::XenstoredWork { .. }
            | TraceEvent::XenbusEvent { .. }
            | TraceEvent::XenbusState { .. }
            | TraceEvent::XenbusFatal { .. }
            | TraceEvent::Extents { .. }
            | TraceEvent::MaxPages { .. }
            | TraceEvent::EptViolation { .. }
            | TraceEvent::Console { .. }
            | TraceEvent::BlkbackWork { .. }
            | TraceEvent::IoreqWork { .. }
            | TraceEvent::DiskSubmit { .. }
            | TraceEvent::BlkReject { .. }
            | TraceEvent::BlkRingHalted { .. }
            | TraceEvent::NetPush { .. }
            | TraceEvent::NetbackWork { .. }
            | TraceEvent::NetDrop { .. }
            | TraceEvent::NetTxReject { .. }
            | TraceEvent::VifDisabled { .. }
            | TraceEvent::InterruptLost { .. } => {}
            TraceEvent::BlkPush {
                dom,
                vdev,
                requests,
                notify,
            } => host.blk_push(window, time_ns, *dom, *vdev, (*requests, *notify)),
            TraceEvent::BlkResponse {
                dom, vdev, notify, ..
            } => host.blk_response(window, time_ns, *dom, *vdev, *notify),
            TraceEvent::BalloonGaveUp { dom, .. } => {
                if let (true, Some(&index)) = (time_ns >= window.start_ns, host.live.get(dom)) {
                    host.domains[index].balloon_gave_up_count += 1;
                }
            }
        }
    }

    /// Closes every interval at `end_ns` and returns the metrics of `[warmup, end_ns)`.
    pub fn finish(self, end_ns: u64) -> Metrics {
        self.finish_with_stops(end_ns, &[])
    }

    /// As [`Self::finish`], but host `i` stopped at `stopped_ns[i]` if that is set (a
    /// `host-crash`): its pCPUs and domains close just after that instant, so nothing is
    /// counted for them afterwards (its domains vanished with it).
    pub fn finish_with_stops(self, end_ns: u64, stopped_ns: &[Option<u64>]) -> Metrics {
        // A run cut short before its warm-up ended (an invariant broke under `--check`)
        // reports an empty window at its end.
        let window = Window {
            start_ns: self.window_start_ns.min(end_ns),
            end_ns,
        };
        let mut hosts = Vec::with_capacity(self.hosts.len());
        let mut domains = Vec::new();
        for (index, mut host) in self.hosts.into_iter().enumerate() {
            let host_end_ns = match stopped_ns.get(index).copied().flatten() {
                Some(at_ns) => at_ns.saturating_add(1).clamp(window.start_ns, end_ns),
                None => end_ns,
            };
            assert!(
                host.last_time_ns < host_end_ns || host.last_time_ns == 0,
                "metrics: an event at or after the end of the run was observed"
            );
            domains.extend(host.domain_metrics(window, host_end_ns));
            hosts.push(host.host_metrics(window, host_end_ns));
        }
        Metrics {
            window: WindowMetrics {
                start_ns: window.start_ns,
                end_ns,
                length_ns: end_ns - window.start_ns,
            },
            hosts,
            domains,
        }
    }

    /// The domain end-of-life data of `dom` on host `host_index` is handed to: the live
    /// domain with that id, or else the one freed last with it.
    fn handed_over(&mut self, host_index: usize, dom: DomId) -> Option<&mut DomainState> {
        let host = self.host_mut(host_index);
        let index = match host.live.get(&dom) {
            Some(&index) => index,
            None => host.domains.iter().rposition(|d| d.domid == dom)?,
        };
        host.domains.get_mut(index)
    }

    #[inline(always)]
    fn host_mut(&mut self, host_index: usize) -> &mut HostState {
        match self.hosts.get_mut(host_index) {
            Some(host) => host,
            None => unknown_host(host_index),
        }
    }
}

impl HostState {
    /// A pool created at run time: its name and scheduler join the host's pools.
    fn pool_create(&mut self, pool: PoolId, name: &str, scheduler: &str) {
        self.pool_names.insert(pool, name.to_owned());
        if !self.meta.pools.iter().any(|p| p.name == name) {
            self.meta.pools.push(PoolMeta {
                name: name.to_owned(),
                scheduler: scheduler.to_owned(),
            });
        }
    }

    /// A pCPU changed pool at `time_ns`: its time so far goes to the old pool.
    fn pool_cpu(&mut self, window: Window, time_ns: u64, pcpu: PcpuId, pool: Option<PoolId>) {
        let index = pcpu.index();
        let Some(state) = self.pcpus.get_mut(index) else {
            panic!("metrics: unknown {pcpu:?}");
        };
        state.close(window, time_ns, state.pool);
        state.leave_pool(state.pool);
        let name = pool.and_then(|p| self.pool_names.get(&p).cloned());
        state.pool = name.as_deref().map(|n| self.pool_slots.slot(n));
        self.meta.pcpu_pools[index] = name;
    }

    /// A domain moved to `pool`: it is reported in the pool it ends in.
    fn domain_pool(&mut self, dom: DomId, pool: PoolId) {
        let name = self.pool_names.get(&pool).cloned();
        if let (Some(&index), Some(name)) = (self.live.get(&dom), name) {
            if let Some(meta) = self.domains[index].meta.as_mut() {
                meta.pool = name;
            }
        }
    }

    fn new(meta: HostMeta) -> HostState {
        assert_eq!(meta.pcpu_nodes.len(), meta.pcpu_pools.len());
        let pool_names = (0u32..)
            .zip(&meta.pools)
            .map(|(id, p)| (PoolId(id), p.name.clone()))
            .collect();
        let mut pool_slots = PoolSlots::default();
        let pcpus = meta
            .pcpu_pools
            .iter()
            .map(|pool| PcpuState::in_pool(pool.as_deref().map(|name| pool_slots.slot(name))))
            .collect();
        HostState {
            switch: SwitchOverhead::new(meta.switch),
            meta,
            last_time_ns: 0,
            pcpus,
            pool_slots,
            domains: Vec::new(),
            vcpus: Vec::new(),
            live: LiveDomains::default(),
            pending_meta: BTreeMap::new(),
            free_pages_now: None,
            free_pages_min: None,
            pool_names,
            samples: SampleLog::default(),
        }
    }

    /// A `Runstate` event of vCPU `v`.
    #[inline(always)]
    fn runstate(&mut self, window: Window, time_ns: u64, v: VcpuRef, change: (Runstate, Runstate)) {
        let position = self.vcpu_position(v);
        let state = &mut self.vcpus[position];
        state.transition(window, time_ns, change, &mut self.samples);
    }

    /// The arena position of live vCPU `v`; an event naming any other is a broken trace.
    #[inline]
    fn vcpu_position(&self, v: VcpuRef) -> usize {
        let domains = &self.domains;
        match self
            .live
            .vcpu_position(v.dom, v.vcpu.raw(), |index| &domains[index].vcpus)
        {
            Some(position) => position,
            None => unknown_vcpu(v),
        }
    }

    fn vcpu_mut(&mut self, v: VcpuRef) -> &mut VcpuState {
        let position = self.vcpu_position(v);
        &mut self.vcpus[position]
    }

    /// The state of live vCPU `v`, if there is one.
    fn live_vcpu(&mut self, v: VcpuRef) -> Option<&mut VcpuState> {
        let domains = &self.domains;
        let position = self
            .live
            .vcpu_position(v.dom, v.vcpu.raw(), |index| &domains[index].vcpus)?;
        self.vcpus.get_mut(position)
    }

    fn domain_create(&mut self, time_ns: u64, dom: DomId, name: &str) {
        assert!(!self.live.contains_key(&dom), "{dom:?} created twice");
        self.live.insert(dom, self.domains.len());
        self.domains.push(DomainState {
            domid: dom,
            name: name.to_owned(),
            meta: self.pending_meta.remove(&dom),
            created_ns: time_ns,
            freed_ns: None,
            vcpus: VcpuTable::default(),
            jobs: Vec::new(),
            io: Vec::new(),
            rings: Vec::new(),
            memory: None,
            balloon_gave_up_count: 0,
            vbd_checks: BTreeMap::new(),
            net_drops: Vec::new(),
        });
    }

    /// A `BlkPush` of `requests` on live domain `dom`'s vbd `vdev` (counted in the window).
    #[inline(always)]
    fn blk_push(
        &mut self,
        window: Window,
        time_ns: u64,
        dom: DomId,
        vdev: u32,
        (requests, notify): (u32, bool),
    ) {
        if time_ns >= window.start_ns {
            let counts = self.ring_counts(dom, vdev);
            counts.requests_pushed += u64::from(requests);
            counts.push_count += 1;
            counts.push_notify_count += u64::from(notify);
        }
    }

    /// A `BlkResponse` on live domain `dom`'s vbd `vdev` (counted in the window).
    #[inline(always)]
    fn blk_response(&mut self, window: Window, time_ns: u64, dom: DomId, vdev: u32, notify: bool) {
        if time_ns >= window.start_ns {
            let counts = self.ring_counts(dom, vdev);
            counts.response_count += 1;
            counts.response_notify_count += u64::from(notify);
        }
    }

    /// The ring counters of live domain `dom`'s vbd `vdev`.
    fn ring_counts(&mut self, dom: DomId, vdev: u32) -> &mut super::io::RingCounts {
        let index = *self.live.get(&dom).expect("ring event of a live domain");
        let rings = &mut self.domains[index].rings;
        // A domain has a vbd or two: a scan beats a map.
        let at = match rings.iter().position(|(v, _)| *v == vdev) {
            Some(at) => at,
            None => {
                rings.push((vdev, super::io::RingCounts::default()));
                rings.len() - 1
            }
        };
        &mut rings[at].1
    }

    fn vcpu_create(&mut self, time_ns: u64, v: VcpuRef) {
        let index = *self
            .live
            .get(&v.dom)
            .expect("vCPU created in a live domain");
        let position = self.vcpus.len();
        let table = &mut self.domains[index].vcpus;
        let inserted = self.live.add_vcpu(v.dom, table, v.vcpu.raw(), position);
        assert!(inserted, "{v:?} created twice");
        let slots = self.samples.vcpu_slots();
        self.vcpus.push(VcpuState::new(time_ns, slots));
    }

    fn domain_free(&mut self, window: Window, time_ns: u64, dom: DomId) {
        let index = self.live.remove(&dom).expect("freed domain is live");
        let domain = &mut self.domains[index];
        for position in domain.vcpus.positions() {
            self.vcpus[position].close(window, time_ns);
        }
        domain.freed_ns = Some(time_ns);
    }

    fn memory(&mut self, window: Window, time_ns: u64, free_pages: u64) {
        // The level before this change held over [previous change, time_ns); it was in
        // effect inside the window only if time_ns is past the window start.
        if time_ns > window.start_ns {
            self.fold_free_min();
        }
        self.free_pages_now = Some(free_pages);
        if window.contains(time_ns) {
            self.fold_free_min();
        }
    }

    fn fold_free_min(&mut self) {
        if let Some(now) = self.free_pages_now {
            self.free_pages_min = Some(self.free_pages_min.map_or(now, |m| m.min(now)));
        }
    }

    /// A `Schedule` event on `pcpu`: its interval closes, and `next` starts running there.
    #[inline(always)]
    fn schedule(
        &mut self,
        window: Window,
        time_ns: u64,
        pcpu: PcpuId,
        prev: Option<VcpuRef>,
        next: Option<VcpuRef>,
    ) {
        let Some(state) = self.pcpus.get_mut(pcpu.index()) else {
            unknown_pcpu(pcpu)
        };
        let pool = state.pool;
        let (prev_key, next_key) = (VcpuKey::of(prev), VcpuKey::of(next));
        state.decide(window, time_ns, prev_key, next_key, pool);
        if next_key == prev_key {
            return;
        }
        if let Some(v) = next {
            let cost_ns = self.switch.ns(state.last_vcpu, next_key);
            state.last_vcpu = next_key;
            state.overhead_until_ns = time_ns + cost_ns;
            let position = self.vcpu_position(v);
            self.vcpus[position].start_on(window, time_ns, pcpu, &self.meta.pcpu_nodes);
        }
    }
}

/// The panic of an event on a host the collector was not given (out of line, by value:
/// the record path stores nothing for it).
#[cold]
#[inline(never)]
fn unknown_host(host_index: usize) -> ! {
    panic!("metrics: unknown host index {host_index}")
}

/// The panic of an event naming a vCPU that is not live, as [`unknown_host`].
#[cold]
#[inline(never)]
fn unknown_vcpu(v: VcpuRef) -> ! {
    panic!("metrics: event for unknown vCPU {v:?}")
}

/// The panic of a `Schedule` on a pCPU the host does not have, as [`unknown_host`].
#[cold]
#[inline(never)]
fn unknown_pcpu(pcpu: PcpuId) -> ! {
    panic!("metrics: unknown {pcpu:?}")
}

#[cfg(test)]
mod tests;
