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

use std::collections::BTreeMap;

use hypervisor_model::ids::{DomId, PcpuId, VcpuRef};
use hypervisor_model::sched::rtds::ServerStats;
use hypervisor_model::trace::TraceEvent;

use super::dist::Distribution;
use super::jobs::JobMetrics;
use super::state::{add, bump, VcpuState, Window};
use super::{
    DomainMetrics, HostMetrics, Metrics, PcpuMetrics, PoolMetrics, VcpuMetrics, WindowMetrics,
};
use crate::guest::workload::JobRecord;
use crate::machine::switch::SwitchCosts;

/// Bytes per KiB over bytes per page: host pages are 4 KiB.
const KIB_PER_PAGE: u64 = 4;
/// Parts per million.
const PPM: u128 = 1_000_000;

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
    last_time_ns: u64,
    pcpus: Vec<PcpuState>,
    /// Every domain ever created on this host, in creation order.
    domains: Vec<DomainState>,
    /// Live domid → index into `domains` (indexed by domid; a domid is below 0x7FF0).
    live: LiveDomains,
    /// Metadata given before the domain's `DomainCreate` was observed.
    pending_meta: BTreeMap<DomId, DomainMeta>,
    free_pages_now: Option<u64>,
    free_pages_min: Option<u64>,
}

/// Live domains by domid: a dense table, as the core keeps them.
#[derive(Debug, Default)]
struct LiveDomains {
    slots: Vec<Option<usize>>,
}

impl LiveDomains {
    fn get(&self, dom: &DomId) -> Option<&usize> {
        self.slots
            .get(usize::from(dom.raw()))
            .and_then(Option::as_ref)
    }

    fn contains_key(&self, dom: &DomId) -> bool {
        self.get(dom).is_some()
    }

    fn insert(&mut self, dom: DomId, index: usize) {
        let slot = usize::from(dom.raw());
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        self.slots[slot] = Some(index);
    }

    fn remove(&mut self, dom: &DomId) -> Option<usize> {
        self.slots
            .get_mut(usize::from(dom.raw()))
            .and_then(Option::take)
    }
}

#[derive(Debug, Default)]
struct PcpuState {
    current: Option<VcpuRef>,
    since_ns: u64,
    busy_ns: u64,
    idle_ns: u64,
    overhead_ns: u64,
    /// The last guest vCPU that ran here (a switch back to it is free).
    last_vcpu: Option<VcpuRef>,
    /// The current switch's overhead lasts until then.
    overhead_until_ns: u64,
    context_switch_count: u64,
    vcpu_switch_count: u64,
    sched_decision_count: u64,
}

#[derive(Debug)]
struct DomainState {
    domid: DomId,
    name: String,
    meta: Option<DomainMeta>,
    created_ns: u64,
    freed_ns: Option<u64>,
    vcpus: BTreeMap<u32, VcpuState>,
    /// Periodic job records of all its vCPUs (given by the run loop).
    jobs: Vec<JobRecord>,
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
        let host = self.host_mut(host_index);
        let index = match host.live.get(&dom) {
            Some(&index) => Some(index),
            None => host.domains.iter().rposition(|d| d.domid == dom),
        };
        if let Some(index) = index {
            host.domains[index].jobs = jobs;
        }
    }

    /// Records the rtds server accounting of live vCPU `v` on host `host_index`.
    pub fn vcpu_server_stats(&mut self, host_index: usize, v: VcpuRef, stats: ServerStats) {
        let host = self.host_mut(host_index);
        if let Some(&index) = host.live.get(&v.dom) {
            if let Some(vcpu) = host.domains[index].vcpus.get_mut(&v.vcpu.raw()) {
                vcpu.server = Some(stats);
            }
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
    pub fn observe(&mut self, host_index: usize, time_ns: u64, event: &TraceEvent) {
        let window = Window {
            start_ns: self.window_start_ns,
            end_ns: u64::MAX,
        };
        let host = self.host_mut(host_index);
        assert!(time_ns >= host.last_time_ns, "trace time went backwards");
        host.last_time_ns = time_ns;
        match event {
            TraceEvent::Runstate { vcpu, from, to } => {
                host.vcpu_mut(*vcpu).transition(window, time_ns, *from, *to);
            }
            TraceEvent::Schedule {
                pcpu, prev, next, ..
            } => host.schedule(window, time_ns, *pcpu, *prev, *next),
            TraceEvent::DomainCreate { dom, name } => host.domain_create(time_ns, *dom, name),
            TraceEvent::VcpuCreate { vcpu, .. } => host.vcpu_create(time_ns, *vcpu),
            TraceEvent::DomainFree { dom } => host.domain_free(window, time_ns, *dom),
            TraceEvent::Memory { free_pages, .. } => host.memory(window, time_ns, *free_pages),
            TraceEvent::Tickle { .. }
            | TraceEvent::TimerSet { .. }
            | TraceEvent::PoolTimerSet { .. }
            | TraceEvent::XsSocketSend { .. }
            | TraceEvent::XsSocketDrop { .. }
            | TraceEvent::NullAssign { .. }
            | TraceEvent::NullWaitq { .. }
            | TraceEvent::Pause { .. }
            | TraceEvent::Shutdown { .. }
            | TraceEvent::Dying { .. }
            | TraceEvent::JobStep { .. }
            | TraceEvent::JobDone { .. }
            | TraceEvent::Console { .. } => {}
        }
    }

    /// Closes every interval at `end_ns` and returns the metrics of `[warmup, end_ns)`.
    pub fn finish(self, end_ns: u64) -> Metrics {
        assert!(self.window_start_ns <= end_ns, "warm-up ends after the run");
        let window = Window {
            start_ns: self.window_start_ns,
            end_ns,
        };
        let mut hosts = Vec::with_capacity(self.hosts.len());
        let mut domains = Vec::new();
        for mut host in self.hosts {
            assert!(
                host.last_time_ns < end_ns || host.last_time_ns == 0,
                "metrics: an event at or after the end of the run was observed"
            );
            domains.extend(host.domain_metrics(window, end_ns));
            hosts.push(host.host_metrics(window, end_ns));
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

    fn host_mut(&mut self, host_index: usize) -> &mut HostState {
        self.hosts
            .get_mut(host_index)
            .unwrap_or_else(|| panic!("metrics: unknown host index {host_index}"))
    }
}

impl HostState {
    fn new(meta: HostMeta) -> HostState {
        assert_eq!(meta.pcpu_nodes.len(), meta.pcpu_pools.len());
        let pcpus = meta
            .pcpu_nodes
            .iter()
            .map(|_| PcpuState::default())
            .collect();
        HostState {
            meta,
            last_time_ns: 0,
            pcpus,
            domains: Vec::new(),
            live: LiveDomains::default(),
            pending_meta: BTreeMap::new(),
            free_pages_now: None,
            free_pages_min: None,
        }
    }

    fn vcpu_mut(&mut self, v: VcpuRef) -> &mut VcpuState {
        let index = *self
            .live
            .get(&v.dom)
            .unwrap_or_else(|| panic!("metrics: event for unknown domain {:?}", v.dom));
        self.domains[index]
            .vcpus
            .get_mut(&v.vcpu.raw())
            .unwrap_or_else(|| panic!("metrics: event for unknown vCPU {v:?}"))
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
            vcpus: BTreeMap::new(),
            jobs: Vec::new(),
        });
    }

    fn vcpu_create(&mut self, time_ns: u64, v: VcpuRef) {
        let index = *self
            .live
            .get(&v.dom)
            .expect("vCPU created in a live domain");
        let previous = self.domains[index]
            .vcpus
            .insert(v.vcpu.raw(), VcpuState::new(time_ns));
        assert!(previous.is_none(), "{v:?} created twice");
    }

    fn domain_free(&mut self, window: Window, time_ns: u64, dom: DomId) {
        let index = self.live.remove(&dom).expect("freed domain is live");
        let domain = &mut self.domains[index];
        for vcpu in domain.vcpus.values_mut() {
            vcpu.close(window, time_ns);
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

    fn schedule(
        &mut self,
        window: Window,
        time_ns: u64,
        pcpu: PcpuId,
        prev: Option<VcpuRef>,
        next: Option<VcpuRef>,
    ) {
        let state = self
            .pcpus
            .get_mut(pcpu.index())
            .unwrap_or_else(|| panic!("metrics: unknown {pcpu:?}"));
        let in_pool = self.meta.pcpu_pools[pcpu.index()].is_some();
        state.decide(window, time_ns, prev, next, in_pool);
        if let Some(v) = next.filter(|&v| Some(v) != prev) {
            let cost_ns = self.meta.switch.switch_overhead_ns(state.last_vcpu, v);
            state.last_vcpu = Some(v);
            state.overhead_until_ns = time_ns + cost_ns;
        }
        if let Some(v) = next.filter(|&v| Some(v) != prev) {
            let nodes = &self.meta.pcpu_nodes;
            let index = *self
                .live
                .get(&v.dom)
                .expect("scheduled vCPU's domain is live");
            let vcpu = self.domains[index]
                .vcpus
                .get_mut(&v.vcpu.raw())
                .expect("scheduled vCPU exists");
            vcpu.start_on(window, time_ns, pcpu, nodes);
        }
    }
}

impl PcpuState {
    fn decide(
        &mut self,
        window: Window,
        time_ns: u64,
        prev: Option<VcpuRef>,
        next: Option<VcpuRef>,
        in_pool: bool,
    ) {
        assert_eq!(
            self.current, prev,
            "Schedule prev differs from the running vCPU"
        );
        let in_window = window.contains(time_ns);
        if in_window {
            bump(&mut self.sched_decision_count, "sched_decision_count");
        }
        if next == prev {
            return;
        }
        if in_window {
            bump(&mut self.context_switch_count, "context_switch_count");
            if prev.is_some() && next.is_some() {
                bump(&mut self.vcpu_switch_count, "vcpu_switch_count");
            }
        }
        self.close(window, time_ns, in_pool);
        self.current = next;
    }

    fn close(&mut self, window: Window, time_ns: u64, in_pool: bool) {
        if in_pool {
            if self.current.is_some() {
                // The switch's overhead comes first; the guest runs after it.
                let switch_end_ns = self.overhead_until_ns.clamp(self.since_ns, time_ns);
                let overhead_ns = window.clip(self.since_ns, switch_end_ns);
                add(&mut self.overhead_ns, overhead_ns, "overhead_ns");
                let busy_ns = window.clip(switch_end_ns, time_ns);
                add(&mut self.busy_ns, busy_ns, "busy_ns");
            } else {
                let spent_ns = window.clip(self.since_ns, time_ns);
                add(&mut self.idle_ns, spent_ns, "idle_ns");
            }
        }
        self.since_ns = time_ns;
    }
}

impl HostState {
    /// The host's metrics at the end of the run; closes every pCPU interval.
    fn host_metrics(mut self, window: Window, end_ns: u64) -> HostMetrics {
        self.fold_free_min();
        let kib = |pages: u64| {
            pages
                .checked_mul(KIB_PER_PAGE)
                .unwrap_or_else(|| panic!("metric overflow: host_free_kib"))
        };
        let mut pcpus = Vec::with_capacity(self.pcpus.len());
        for (index, state) in self.pcpus.iter_mut().enumerate() {
            let pool = self.meta.pcpu_pools[index].clone();
            state.close(window, end_ns, pool.is_some());
            let id = u32::try_from(index).expect("pCPU index fits u32");
            let node = self.meta.pcpu_nodes[index];
            pcpus.push(state.metrics(window, id, pool, node));
        }
        let pools = self
            .meta
            .pools
            .iter()
            .map(|pool| pool_metrics(pool, &pcpus))
            .collect();
        HostMetrics {
            name: self.meta.name,
            host_free_kib_min: self.free_pages_min.map(kib),
            host_free_kib_end: self.free_pages_now.map(kib),
            pools,
            pcpus,
        }
    }

    /// The domains that existed in the window, in creation order; closes live vCPUs.
    fn domain_metrics(&mut self, window: Window, end_ns: u64) -> Vec<DomainMetrics> {
        let mut out = Vec::new();
        for domain in &mut self.domains {
            if domain.freed_ns.is_none() {
                for vcpu in domain.vcpus.values_mut() {
                    vcpu.close(window, end_ns);
                }
            }
            let ended_ns = domain.freed_ns.unwrap_or(end_ns);
            let existed = domain.created_ns < end_ns && ended_ns > window.start_ns;
            if existed {
                out.push(domain.metrics(window, &self.meta.name));
            }
        }
        out
    }
}

fn pool_metrics(pool: &PoolMeta, pcpus: &[PcpuMetrics]) -> PoolMetrics {
    let mut capacity_ns = 0;
    for pcpu in pcpus.iter().filter(|p| p.pool.as_ref() == Some(&pool.name)) {
        add(&mut capacity_ns, pcpu.online_ns, "capacity_ns");
    }
    PoolMetrics {
        name: pool.name.clone(),
        scheduler: pool.scheduler.clone(),
        capacity_ns,
    }
}

impl PcpuState {
    fn metrics(&self, window: Window, id: u32, pool: Option<String>, node: u32) -> PcpuMetrics {
        let online_ns = if pool.is_some() {
            window.clip(0, window.end_ns)
        } else {
            0
        };
        let mut accounted_ns = self.busy_ns;
        add(&mut accounted_ns, self.idle_ns, "online_ns");
        add(&mut accounted_ns, self.overhead_ns, "online_ns");
        assert_eq!(
            accounted_ns, online_ns,
            "busy + idle + overhead differs from online"
        );
        PcpuMetrics {
            id,
            pool,
            node,
            online_ns,
            busy_ns: self.busy_ns,
            idle_ns: self.idle_ns,
            overhead_ns: self.overhead_ns,
            utilization_ppm: ratio_ppm(self.busy_ns, online_ns),
            context_switch_count: self.context_switch_count,
            vcpu_switch_count: self.vcpu_switch_count,
            sched_decision_count: self.sched_decision_count,
        }
    }
}

/// `floor(10^6 · part / whole)`, `None` when `whole` is 0 (§0 ratios).
fn ratio_ppm(part: u64, whole: u64) -> Option<u64> {
    let ppm = (u128::from(part) * PPM).checked_div(u128::from(whole))?;
    Some(u64::try_from(ppm).expect("a ppm ratio of a part fits u64"))
}

impl DomainState {
    fn metrics(&self, window: Window, host: &str) -> DomainMetrics {
        let vcpus: Vec<VcpuMetrics> = self
            .vcpus
            .iter()
            .map(|(&id, vcpu)| vcpu.metrics(id, window))
            .collect();
        let sum = |pick: fn(&VcpuMetrics) -> u64, metric: &str| {
            let mut total = 0;
            for vcpu in &vcpus {
                add(&mut total, pick(vcpu), metric);
            }
            total
        };
        let pooled = |pick: fn(&VcpuState) -> &Vec<u64>| -> Vec<u64> {
            self.vcpus
                .values()
                .flat_map(|v| pick(v).iter().copied())
                .collect()
        };
        let wakeups = pooled(|v| &v.wakeup_samples_ns);
        let runq_waits = pooled(|v| &v.runq_wait_samples_ns);
        DomainMetrics {
            domid: self.domid.raw(),
            name: self.name.clone(),
            host: host.to_owned(),
            pool: self.meta.as_ref().map(|m| m.pool.clone()),
            weight: self.meta.as_ref().map(|m| m.weight),
            cap: self.meta.as_ref().map(|m| m.cap),
            running_ns: sum(|v| v.running_ns, "running_ns"),
            runnable_ns: sum(|v| v.runnable_ns, "runnable_ns"),
            blocked_ns: sum(|v| v.blocked_ns, "blocked_ns"),
            offline_ns: sum(|v| v.offline_ns, "offline_ns"),
            wakeup_latency_ns: Distribution::from_samples(&wakeups, "wakeup_latency_ns"),
            runq_wait_ns: Distribution::from_samples(&runq_waits, "runq_wait_ns"),
            jobs: JobMetrics::from_records(&self.jobs, window.start_ns, window.end_ns),
            vcpus,
        }
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::domain::vcpu::Runstate::{Blocked, Offline, Runnable, Running};

    use super::super::synthetic::{collector, create, free, memory, rs, sched, switch, vcpu, HOST};
    use super::DomainMeta;

    /// Window start used where a test needs a warm-up.
    const WARMUP_NS: u64 = 1_000;
    /// Run end used by most tests.
    const END_NS: u64 = 3_000;

    #[test]
    fn runstate_interval_across_window_start_is_clipped() {
        let v = vcpu(1, 0);
        let mut c = collector(WARMUP_NS);
        create(&mut c, 0, 1, "vm1", 1);
        rs(&mut c, 500, v, Offline, Runnable);
        rs(&mut c, 1_500, v, Runnable, Running);

        let m = c.finish(END_NS);

        let got = &m.domains[0].vcpus[0];
        // Offline [0, 500) and runnable [500, 1000) fall before the window.
        assert_eq!(got.offline_ns, 0);
        assert_eq!(got.runnable_ns, 500);
        assert_eq!(got.running_ns, 1_500);
        assert_eq!(got.dispatch_count, 1);
        // The wake at 500 started before the window: no sample.
        assert_eq!(got.wakeup_latency_ns.count, 0);
        assert_eq!(got.runq_wait_ns.count, 0);
    }

    #[test]
    fn switch_overhead_is_taken_out_of_busy_time() {
        // Switches cost 100 ns (60 within a domain): d1v0 at 0, d1v1 at 1000, d2v0 at 2000.
        let costs = crate::machine::switch::SwitchCosts {
            vcpu_switch_ns: 100,
            same_dom_permille: 600,
            ipi_ns: 0,
        };
        let mut c = super::super::synthetic::collector_with_switch(0, costs);
        create(&mut c, 0, 1, "vm1", 2);
        create(&mut c, 0, 2, "vm2", 1);
        sched(&mut c, 0, 0, None, Some(vcpu(1, 0)));
        sched(&mut c, 1_000, 0, Some(vcpu(1, 0)), Some(vcpu(1, 1)));
        sched(&mut c, 2_000, 0, Some(vcpu(1, 1)), Some(vcpu(2, 0)));

        let m = c.finish(END_NS);

        let cpu0 = &m.hosts[0].pcpus[0];
        assert_eq!(cpu0.overhead_ns, 100 + 60 + 100);
        assert_eq!(cpu0.busy_ns, END_NS - 260);
        assert_eq!(cpu0.idle_ns, 0);
    }

    #[test]
    fn wake_then_run_records_latency_sample() {
        let v = vcpu(1, 0);
        let mut c = collector(0);
        create(&mut c, 0, 1, "vm1", 1);
        rs(&mut c, 100, v, Offline, Runnable);
        rs(&mut c, 350, v, Runnable, Running);
        rs(&mut c, 1_000, v, Running, Blocked);
        rs(&mut c, 2_000, v, Blocked, Runnable);
        rs(&mut c, 2_100, v, Runnable, Running);

        let m = c.finish(END_NS);

        let got = &m.vcpus_of(0)[0];
        // Samples 250 (350 - 100) and 100 (2100 - 2000).
        assert_eq!(got.wakeup_latency_ns.count, 2);
        assert_eq!(got.wakeup_latency_ns.sum, 350);
        assert_eq!(got.wakeup_latency_ns.max, Some(250));
        assert_eq!(got.runq_wait_ns.count, 2);
        assert_eq!(got.blocked_ns, 1_000);
    }

    #[test]
    fn wake_then_block_before_run_counts_abandoned() {
        let v = vcpu(1, 0);
        let mut c = collector(0);
        create(&mut c, 0, 1, "vm1", 1);
        rs(&mut c, 100, v, Offline, Runnable);
        rs(&mut c, 200, v, Runnable, Blocked);

        let m = c.finish(END_NS);

        let got = &m.vcpus_of(0)[0];
        assert_eq!(got.wake_abandoned_count, 1);
        assert_eq!(got.wakeup_latency_ns.count, 0);
        assert_eq!(got.runq_wait_ns.count, 0);
        assert_eq!(got.wakeup_latency_pending_count, 0);
    }

    #[test]
    fn wake_pending_at_end_is_censored() {
        let v = vcpu(1, 0);
        let mut c = collector(0);
        create(&mut c, 0, 1, "vm1", 1);
        rs(&mut c, 2_900, v, Offline, Runnable);

        let m = c.finish(END_NS);

        let got = &m.vcpus_of(0)[0];
        assert_eq!(got.wakeup_latency_pending_count, 1);
        assert_eq!(got.wake_abandoned_count, 0);
        assert_eq!(got.wakeup_latency_ns.count, 0);
        assert_eq!(got.runnable_ns, 100);
    }

    #[test]
    fn running_to_runnable_counts_preemption_and_runq_wait_only() {
        let v = vcpu(1, 0);
        let mut c = collector(0);
        create(&mut c, 0, 1, "vm1", 1);
        rs(&mut c, 0, v, Offline, Runnable);
        rs(&mut c, 0, v, Runnable, Running);
        rs(&mut c, 1_000, v, Running, Runnable);
        rs(&mut c, 1_400, v, Runnable, Running);

        let m = c.finish(END_NS);

        let got = &m.vcpus_of(0)[0];
        assert_eq!(got.preemption_count, 1);
        assert_eq!(got.yield_count, 0);
        // One wake sample (0 ns) at boot; the preemption gives no wake sample.
        assert_eq!(got.wakeup_latency_ns.count, 1);
        assert_eq!(got.runq_wait_ns.max, Some(400));
        assert_eq!(got.steal_ns, 400);
    }

    #[test]
    fn pcpu_busy_idle_split_follows_schedule_events() {
        let v = vcpu(1, 0);
        let mut c = collector(0);
        create(&mut c, 0, 1, "vm1", 1);
        rs(&mut c, 0, v, Offline, Runnable);
        switch(&mut c, 100, 0, None, Some(v));
        switch(&mut c, 400, 0, Some((v, Blocked)), None);

        let m = c.finish(1_000);

        let pcpu0 = &m.hosts[HOST].pcpus[0];
        assert_eq!(pcpu0.busy_ns, 300);
        assert_eq!(pcpu0.idle_ns, 700);
        assert_eq!(pcpu0.online_ns, 1_000);
        assert_eq!(pcpu0.utilization_ppm, Some(300_000));
        // pCPU 1 never ran anything, and the pool's capacity is both pCPUs.
        assert_eq!(m.hosts[HOST].pcpus[1].idle_ns, 1_000);
        assert_eq!(m.hosts[HOST].pools[0].capacity_ns, 2_000);
    }

    #[test]
    fn context_switch_counts_idle_but_vcpu_switch_does_not() {
        let (a, b) = (vcpu(1, 0), vcpu(2, 0));
        let mut c = collector(0);
        create(&mut c, 0, 1, "vm1", 1);
        create(&mut c, 0, 2, "vm2", 1);
        rs(&mut c, 0, a, Offline, Runnable);
        rs(&mut c, 0, b, Offline, Runnable);
        switch(&mut c, 100, 0, None, Some(a));
        switch(&mut c, 200, 0, Some((a, Runnable)), Some(b));
        sched(&mut c, 300, 0, Some(b), Some(b));
        switch(&mut c, 400, 0, Some((b, Blocked)), None);

        let m = c.finish(END_NS);

        let pcpu0 = &m.hosts[HOST].pcpus[0];
        // idle→a, a→b, b→b (kept), b→idle.
        assert_eq!(pcpu0.sched_decision_count, 4);
        assert_eq!(pcpu0.context_switch_count, 3);
        assert_eq!(pcpu0.vcpu_switch_count, 1);
    }

    #[test]
    fn consecutive_runs_on_other_node_count_pcpu_and_numa_migration() {
        let v = vcpu(1, 0);
        let mut c = collector(0);
        create(&mut c, 0, 1, "vm1", 1);
        rs(&mut c, 0, v, Offline, Runnable);
        switch(&mut c, 100, 0, None, Some(v));
        switch(&mut c, 200, 0, Some((v, Runnable)), None);
        switch(&mut c, 300, 1, None, Some(v));

        let m = c.finish(END_NS);

        let got = &m.vcpus_of(0)[0];
        assert_eq!(got.migration_pcpu_count, 1);
        assert_eq!(got.migration_numa_count, 1);
        assert_eq!(got.dispatch_count, 2);
    }

    #[test]
    fn domid_reuse_produces_two_domain_entries() {
        let mut c = collector(0);
        create(&mut c, 0, 1, "first", 1);
        free(&mut c, 100, 1);
        create(&mut c, 200, 1, "second", 1);

        let m = c.finish(END_NS);

        assert_eq!(m.domains.len(), 2);
        assert_eq!(m.domains[0].name, "first");
        assert_eq!(m.domains[0].offline_ns, 100);
        assert_eq!(m.domains[1].name, "second");
        assert_eq!(m.domains[1].domid, 1);
        assert_eq!(m.domains[1].offline_ns, 2_800);
    }

    #[test]
    fn domain_freed_before_window_is_not_reported() {
        let mut c = collector(WARMUP_NS);
        create(&mut c, 0, 1, "gone", 1);
        free(&mut c, 500, 1);
        create(&mut c, 600, 2, "kept", 1);

        let m = c.finish(END_NS);

        assert_eq!(m.domains.len(), 1);
        assert_eq!(m.domains[0].name, "kept");
    }

    #[test]
    fn domain_meta_given_before_create_is_applied() {
        let meta = DomainMeta {
            pool: "Pool-0".to_owned(),
            weight: 512,
            cap: 50,
        };
        let mut c = collector(0);
        c.domain_meta(HOST, super::super::synthetic::dom(1), meta);
        create(&mut c, 0, 1, "vm1", 1);

        let m = c.finish(END_NS);

        assert_eq!(m.domains[0].pool.as_deref(), Some("Pool-0"));
        assert_eq!(m.domains[0].weight, Some(512));
        assert_eq!(m.domains[0].cap, Some(50));
    }

    #[test]
    fn host_free_memory_min_includes_level_at_window_start() {
        // 100 pages before the window hold at its start; 300 pages later are the end level.
        let mut c = collector(WARMUP_NS);
        memory(&mut c, 0, 100);
        memory(&mut c, 2_000, 300);

        let m = c.finish(END_NS);

        assert_eq!(m.hosts[HOST].host_free_kib_min, Some(400));
        assert_eq!(m.hosts[HOST].host_free_kib_end, Some(1_200));
    }
}
