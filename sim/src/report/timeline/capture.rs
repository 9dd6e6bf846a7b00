//! Builds a [`Timeline`] from the core inputs and core events of a run, in trace order, as
//! the run loop's sinks see them (`run/sinks.rs`). Pure bookkeeping: it never changes the
//! run, and a replay feeding the same records builds the same timeline.
//!
//! How each record becomes timeline content (`specs/metrics.md` §4.3):
//! - `Schedule prev → next`: closes `prev`'s run on the pCPU, opens `next`'s; the switch
//!   overhead the machine charges (`SwitchCosts`, as the metrics collector computes it)
//!   comes first as an overhead slice; a run on another pCPU than the vCPU's previous run
//!   is a migrate instant (level from the NUMA nodes and the credit2 runqueues).
//! - `Runstate running → X` names the end of the run (before or after its `Schedule`);
//!   `→ runnable` from blocked/offline is a wake instant.
//! - `Tickle` is an instant on the target pCPU.
//! - Runqueue lengths count the runnable vCPUs per credit2 runqueue (the pCPU → runqueue
//!   map comes from credit2's own `Adding cpu N to runqueue K` console lines) or per rtds
//!   pool, and the null waitqueue from `NullWaitq`; free memory from `Memory`.
//!
//! # Invariants
//! - A pCPU has at most one open run; closing it emits slices that end where the next
//!   begins, so slices never overlap.
//! - A vCPU's queued counter key is taken when it becomes runnable and given back when it
//!   leaves runnable, so a counter never goes below 0.
//!
//! xensim differs: a credit2 vCPU moved to another runqueue while it waits (`migrate`,
//! `balance_load`) is counted on the runqueue of the pCPU it last ran on until it runs,
//! because the trace does not carry runqueue moves.

use std::collections::BTreeMap;

use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::{DomId, PcpuId, PoolId, VcpuRef};
use hypervisor_model::trace::TraceEvent;

use super::{
    DomainLabel, EndReason, HostTimeline, Instant, InstantKind, MigrateLevel, Slice, SliceKind,
    Timeline, Track, VcpuLabel, TIMELINE_RECORDS_MAX,
};
use crate::report::metrics::HostMeta;
use counters::runq_name;

mod counters;

/// Bytes per KiB over bytes per page: host pages are 4 KiB.
const KIB_PER_PAGE: u64 = 4;

/// What to capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineOptions {
    /// `[start, end)` in ns; `None` = the whole run.
    pub window_ns: Option<(u64, u64)>,
    /// Runqueue / waitqueue length counters.
    pub runq_counters: bool,
    /// The host free-memory counter.
    pub free_memory_counter: bool,
}

impl Default for TimelineOptions {
    fn default() -> TimelineOptions {
        TimelineOptions {
            window_ns: None,
            runq_counters: true,
            free_memory_counter: true,
        }
    }
}

/// The window and the record budget shared by all hosts.
#[derive(Debug, Clone, Copy)]
struct Limits {
    start_ns: u64,
    end_ns: u64,
    kept_count: usize,
    kept_max: usize,
    dropped_count: u64,
}

impl Limits {
    /// `[lo, hi)` clipped to the window, if anything is left.
    fn clip(&self, lo: u64, hi: u64) -> Option<(u64, u64)> {
        let (lo, hi) = (lo.max(self.start_ns), hi.min(self.end_ns));
        (lo < hi).then_some((lo, hi))
    }

    fn contains(&self, time_ns: u64) -> bool {
        self.start_ns <= time_ns && time_ns < self.end_ns
    }

    /// Takes room for one record; false (and counted) when the timeline is full.
    fn take(&mut self) -> bool {
        if self.kept_count >= self.kept_max {
            self.dropped_count = self.dropped_count.saturating_add(1);
            return false;
        }
        self.kept_count += 1;
        true
    }
}

/// Folds a run's records into a [`Timeline`].
#[derive(Debug)]
pub struct TimelineCapture {
    options: TimelineOptions,
    limits: Limits,
    hosts: Vec<HostCapture>,
}

#[derive(Debug)]
struct Run {
    vcpu: VcpuRef,
    start_ns: u64,
    overhead_until_ns: u64,
    seq: u64,
}

#[derive(Debug, Default)]
struct PcpuCap {
    current: Option<Run>,
    last_vcpu: Option<VcpuRef>,
    pool: Option<String>,
    runq: Option<u32>,
    /// The length counter of `runq` (credit2).
    runq_counter: Option<u32>,
}

#[derive(Debug)]
struct VcpuCap {
    /// Where it last ran, was created or was assigned.
    pcpu: PcpuId,
    last_run_pcpu: Option<PcpuId>,
    queued: Option<u32>,
    /// The null waitqueue counter it is counted in.
    waitq: Option<u32>,
    /// Index of its last slice, while the end reason is not known yet.
    pending_end: Option<usize>,
    /// The end of its current run, when the runstate change came before the `Schedule`.
    exit: Option<EndReason>,
}

/// What the core input being handled says about the events it causes.
#[derive(Debug, Default, Clone, Copy)]
struct InputCtx {
    pcpu: Option<u32>,
    yielding: Option<VcpuRef>,
    woken: Option<VcpuRef>,
}

#[derive(Debug)]
struct HostCapture {
    out: HostTimeline,
    meta: HostMeta,
    pool_names: BTreeMap<PoolId, String>,
    pcpus: Vec<PcpuCap>,
    vcpus: BTreeMap<VcpuRef, VcpuCap>,
    dom_pool: BTreeMap<DomId, String>,
    /// Counter name → track index.
    counter_index: BTreeMap<String, u32>,
    /// Current value of each counter, by track index.
    counter_values: Vec<u64>,
    counters_started: bool,
    seq: u64,
    ctx: InputCtx,
}

fn label(v: VcpuRef) -> VcpuLabel {
    VcpuLabel {
        dom: v.dom.raw(),
        vcpu: v.vcpu.raw(),
    }
}

fn pcpu_index(pcpu: PcpuId) -> usize {
    pcpu.index()
}

impl TimelineCapture {
    /// A capture for hosts described by `hosts` (as the metrics collector gets them).
    pub fn new(options: TimelineOptions, hosts: &[HostMeta]) -> TimelineCapture {
        let (start_ns, end_ns) = options.window_ns.unwrap_or((0, u64::MAX));
        assert!(start_ns < end_ns, "timeline window is empty");
        TimelineCapture {
            options,
            limits: Limits {
                start_ns,
                end_ns,
                kept_count: 0,
                kept_max: TIMELINE_RECORDS_MAX,
                dropped_count: 0,
            },
            hosts: hosts.iter().cloned().map(HostCapture::new).collect(),
        }
        .with_pool_counters()
    }

    /// Creates the pool-wide queue counters of the boot pools, so they are sampled at the
    /// window start (credit2's runqueues appear as credit2 activates them).
    fn with_pool_counters(mut self) -> TimelineCapture {
        if self.options.runq_counters {
            for h in &mut self.hosts {
                let pools: Vec<(String, String)> = h
                    .meta
                    .pools
                    .iter()
                    .map(|p| (p.name.clone(), p.scheduler.clone()))
                    .collect();
                for (pool, scheduler) in pools {
                    h.pool_counter(&mut self.limits, 0, &pool, &scheduler);
                }
            }
        }
        self
    }

    /// The pool of domain `dom` (given by the run loop when it creates the domain).
    pub fn domain_pool(&mut self, host: usize, dom: DomId, pool: &str) {
        self.host(host).dom_pool.insert(dom, pool.to_owned());
    }

    /// A core input at `time_ns`: sets the context of the events it causes.
    pub fn input(&mut self, host: usize, time_ns: u64, input: &CoreInput) {
        let limits = &mut self.limits;
        let h = &mut self.hosts[host];
        h.start_counters(limits, time_ns);
        let running_on = |v: &VcpuRef| h.vcpus.get(v).map(|c| c.pcpu.raw());
        h.ctx = match input {
            CoreInput::TimerExpired { pcpu } | CoreInput::Softirq { pcpu } => InputCtx {
                pcpu: Some(pcpu.raw()),
                ..InputCtx::default()
            },
            CoreInput::VcpuBlock { vcpu } => InputCtx {
                pcpu: running_on(vcpu),
                ..InputCtx::default()
            },
            CoreInput::VcpuYield { vcpu } => InputCtx {
                pcpu: running_on(vcpu),
                yielding: Some(*vcpu),
                woken: None,
            },
            _ => InputCtx::default(),
        };
        if let CoreInput::XenstoredDone { item } = input {
            h.instant(limits, time_ns, Track::Xenstored, || {
                InstantKind::XenstoredDone { item: item.0 }
            });
        }
    }

    /// A core event at `time_ns`.
    pub fn event(&mut self, host: usize, time_ns: u64, event: &TraceEvent) {
        let options = self.options;
        let limits = &mut self.limits;
        let h = &mut self.hosts[host];
        h.start_counters(limits, time_ns);
        match event {
            TraceEvent::Runstate { vcpu, from, to } => {
                h.runstate(limits, options, time_ns, *vcpu, (*from, *to));
            }
            TraceEvent::Schedule {
                pcpu, prev, next, ..
            } if prev != next => h.schedule(limits, time_ns, *pcpu, *next),
            TraceEvent::Tickle { pcpu } => {
                let (from_pcpu, vcpu) = (h.ctx.pcpu, h.ctx.woken.map(label));
                let track = Track::Pcpu(pcpu.raw());
                h.instant(limits, time_ns, track, || InstantKind::Tickle {
                    from_pcpu,
                    vcpu,
                });
            }
            TraceEvent::Memory { free_pages, .. } if options.free_memory_counter => {
                let kib = free_pages.saturating_mul(KIB_PER_PAGE);
                let counter = h.counter("free memory", "kib");
                h.counter_set(limits, time_ns, counter, kib);
            }
            TraceEvent::NullWaitq { vcpu, added } if options.runq_counters => {
                h.null_waitq(limits, time_ns, *vcpu, *added);
            }
            TraceEvent::XenstoredWork {
                item,
                requests,
                rings,
            } => h.instant(limits, time_ns, Track::Xenstored, || {
                InstantKind::XenstoredWork {
                    item: item.0,
                    requests: *requests,
                    rings: *rings,
                }
            }),
            TraceEvent::XenbusEvent { path, .. } => {
                h.instant(limits, time_ns, Track::Xenbus, || {
                    InstantKind::XenbusEvent { path: path.clone() }
                });
            }
            TraceEvent::XenbusState { path, state } => {
                h.instant(limits, time_ns, Track::Xenbus, || {
                    InstantKind::XenbusState {
                        path: path.clone(),
                        state: *state,
                    }
                });
            }
            _ => h.structure(limits, options, time_ns, event),
        }
    }

    /// A toolstack command started at `time_ns` (known to the run loop, not the core).
    pub fn command(&mut self, host: usize, time_ns: u64, text: &str) {
        let limits = &mut self.limits;
        let line = if text.starts_with("xenstore-") {
            text.to_owned()
        } else {
            format!("xl {text}")
        };
        self.hosts[host].instant(limits, time_ns, Track::Host, || InstantKind::Command(line));
    }

    /// Ends the capture at `end_ns`: open runs end with `window_end`.
    pub fn finish(self, end_ns: u64) -> Timeline {
        self.finish_with_stops(end_ns, &[])
    }

    /// As [`Self::finish`], but host `i` stopped at `stopped_ns[i]` if that is set (a
    /// `host-crash`): its open slices close just after that instant, as its metrics do.
    pub fn finish_with_stops(mut self, end_ns: u64, stopped_ns: &[Option<u64>]) -> Timeline {
        let limits = &mut self.limits;
        for (host, h) in self.hosts.iter_mut().enumerate() {
            let host_end_ns = match stopped_ns.get(host).copied().flatten() {
                Some(at_ns) => at_ns.saturating_add(1).min(end_ns),
                None => end_ns,
            };
            h.start_counters(limits, host_end_ns.max(limits.start_ns));
            for index in 0..h.pcpus.len() {
                h.close_run(limits, index, host_end_ns, true);
            }
        }
        Timeline {
            start_ns: self.limits.start_ns,
            end_ns: self.limits.end_ns.min(end_ns).max(self.limits.start_ns),
            hosts: self.hosts.into_iter().map(|h| h.out).collect(),
            dropped_count: self.limits.dropped_count,
        }
    }

    fn host(&mut self, host: usize) -> &mut HostCapture {
        &mut self.hosts[host]
    }
}

impl HostCapture {
    fn new(meta: HostMeta) -> HostCapture {
        let pool_names = (0u32..)
            .zip(&meta.pools)
            .map(|(id, p)| (PoolId(id), p.name.clone()))
            .collect();
        let pcpus = meta
            .pcpu_pools
            .iter()
            .map(|pool| PcpuCap {
                pool: pool.clone(),
                ..PcpuCap::default()
            })
            .collect();
        HostCapture {
            out: HostTimeline {
                name: meta.name.clone(),
                pcpu_count: u32::try_from(meta.pcpu_nodes.len()).expect("pCPU count fits u32"),
                domains: Vec::new(),
                slices: Vec::new(),
                instants: Vec::new(),
                counters: Vec::new(),
                samples: Vec::new(),
            },
            meta,
            pool_names,
            pcpus,
            vcpus: BTreeMap::new(),
            dom_pool: BTreeMap::new(),
            counter_index: BTreeMap::new(),
            counter_values: Vec::new(),
            counters_started: false,
            seq: 0,
            ctx: InputCtx::default(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn pool_of(&self, dom: DomId) -> &str {
        self.dom_pool.get(&dom).map_or("Pool-0", String::as_str)
    }

    fn scheduler_of(&self, pool: &str) -> &str {
        self.meta
            .pools
            .iter()
            .find(|p| p.name == pool)
            .map_or("", |p| p.scheduler.as_str())
    }

    /// Events that change what the timeline knows rather than drawing anything.
    fn structure(
        &mut self,
        limits: &mut Limits,
        options: TimelineOptions,
        time_ns: u64,
        event: &TraceEvent,
    ) {
        match event {
            TraceEvent::DomainCreate { dom, name } => self.out.domains.push(DomainLabel {
                domid: dom.raw(),
                name: name.clone(),
            }),
            TraceEvent::VcpuCreate { vcpu, pcpu, .. } => {
                let cap = VcpuCap {
                    pcpu: *pcpu,
                    last_run_pcpu: None,
                    queued: None,
                    waitq: None,
                    pending_end: None,
                    exit: None,
                };
                self.vcpus.insert(*vcpu, cap);
            }
            TraceEvent::DomainFree { dom } => self.domain_free(limits, time_ns, *dom),
            TraceEvent::PoolCreate { pool, name, sched } => {
                self.pool_names.insert(*pool, name.clone());
                if !self.meta.pools.iter().any(|p| &p.name == name) {
                    self.meta.pools.push(crate::report::metrics::PoolMeta {
                        name: name.clone(),
                        scheduler: sched.opt_name().to_owned(),
                    });
                }
                if options.runq_counters {
                    self.pool_counter(limits, time_ns, name, sched.opt_name());
                }
            }
            TraceEvent::PoolCpu { pcpu, pool } => {
                let name = pool.and_then(|p| self.pool_names.get(&p).cloned());
                let cap = &mut self.pcpus[pcpu_index(*pcpu)];
                cap.pool = name;
                cap.runq = None;
                cap.runq_counter = None;
            }
            TraceEvent::DomainPool { dom, pool } => {
                if let Some(name) = self.pool_names.get(pool).cloned() {
                    self.dom_pool.insert(*dom, name);
                }
            }
            TraceEvent::NullAssign {
                vcpu,
                pcpu,
                assigned: true,
            } => {
                if let Some(v) = self.vcpus.get_mut(vcpu) {
                    v.pcpu = *pcpu;
                }
            }
            TraceEvent::Console { text } => self.console(limits, options, time_ns, text),
            _ => {}
        }
    }

    /// credit2's `Adding cpu N to runqueue K` / `Removing cpu N from runqueue K`.
    fn console(&mut self, limits: &mut Limits, options: TimelineOptions, time_ns: u64, text: &str) {
        let parse = |rest: &str, sep: &str| -> Option<(usize, u32)> {
            let (cpu, rq) = rest.split_once(sep)?;
            Some((cpu.parse().ok()?, rq.parse().ok()?))
        };
        if let Some((cpu, rq)) = text
            .strip_prefix("Adding cpu ")
            .and_then(|r| parse(r, " to runqueue "))
        {
            let Some(cap) = self.pcpus.get_mut(cpu) else {
                return;
            };
            cap.runq = Some(rq);
            let pool = cap.pool.clone().unwrap_or_default();
            if options.runq_counters {
                let counter = self.counter(&runq_name(&pool, Some(rq)), "len");
                self.pcpus[cpu].runq_counter = Some(counter);
                let value = self.counter_value(counter);
                self.counter_set(limits, time_ns, counter, value);
            }
        } else if let Some((cpu, _)) = text
            .strip_prefix("Removing cpu ")
            .and_then(|r| parse(r, " from runqueue "))
        {
            if let Some(cap) = self.pcpus.get_mut(cpu) {
                cap.runq = None;
                cap.runq_counter = None;
            }
        }
    }

    fn domain_free(&mut self, limits: &mut Limits, time_ns: u64, dom: DomId) {
        let gone: Vec<VcpuRef> = self
            .vcpus
            .keys()
            .filter(|v| v.dom == dom)
            .copied()
            .collect();
        for v in gone {
            let cap = self.vcpus.get_mut(&v);
            let (queued, waitq) = cap.map_or((None, None), |c| (c.queued.take(), c.waitq.take()));
            for counter in [queued, waitq].into_iter().flatten() {
                self.counter_add(limits, time_ns, counter, false);
            }
            self.vcpus.remove(&v);
        }
        self.dom_pool.remove(&dom);
    }

    fn runstate(
        &mut self,
        limits: &mut Limits,
        options: TimelineOptions,
        time_ns: u64,
        v: VcpuRef,
        (from, to): (Runstate, Runstate),
    ) {
        let yielding = self.ctx.yielding == Some(v);
        let Some(cap) = self.vcpus.get_mut(&v) else {
            return;
        };
        if from == Runstate::Running {
            let reason = match to {
                Runstate::Runnable if yielding => EndReason::Yield,
                Runstate::Runnable | Runstate::Running => EndReason::Preempt,
                Runstate::Blocked => EndReason::Block,
                Runstate::Offline => EndReason::Offline,
            };
            match cap.pending_end.take() {
                Some(index) => set_end(&mut self.out.slices[index], reason),
                None => cap.exit = Some(reason),
            }
        }
        let dequeued = if from == Runstate::Runnable {
            cap.queued.take()
        } else {
            None
        };
        let pcpu = cap.pcpu;
        if let Some(counter) = dequeued {
            self.counter_add(limits, time_ns, counter, false);
        }
        if to != Runstate::Runnable {
            return;
        }
        self.ctx.woken = Some(v);
        if options.runq_counters {
            if let Some(counter) = self.queue_counter(v, pcpu) {
                self.counter_add(limits, time_ns, counter, true);
                if let Some(cap) = self.vcpus.get_mut(&v) {
                    cap.queued = Some(counter);
                }
            }
        }
        if matches!(from, Runstate::Blocked | Runstate::Offline) {
            let track = Track::Pcpu(pcpu.raw());
            self.instant(limits, time_ns, track, || InstantKind::Wake(label(v)));
        }
    }

    fn schedule(&mut self, limits: &mut Limits, time_ns: u64, pcpu: PcpuId, next: Option<VcpuRef>) {
        let index = pcpu_index(pcpu);
        self.close_run(limits, index, time_ns, false);
        let Some(v) = next else {
            return;
        };
        let seq = self.next_seq();
        let cost_ns = self
            .meta
            .switch
            .switch_overhead_ns(self.pcpus[index].last_vcpu, v);
        self.pcpus[index].last_vcpu = Some(v);
        self.pcpus[index].current = Some(Run {
            vcpu: v,
            start_ns: time_ns,
            overhead_until_ns: time_ns.saturating_add(cost_ns),
            seq,
        });
        let Some(cap) = self.vcpus.get_mut(&v) else {
            return;
        };
        let from = cap.last_run_pcpu.replace(pcpu);
        cap.pcpu = pcpu;
        cap.exit = None;
        if let Some(from) = from.filter(|&from| from != pcpu) {
            let level = self.migrate_level(from, pcpu);
            self.instant(limits, time_ns, Track::Pcpu(pcpu.raw()), || {
                InstantKind::Migrate {
                    vcpu: label(v),
                    from_pcpu: from.raw(),
                    to_pcpu: pcpu.raw(),
                    level,
                }
            });
        }
    }

    fn migrate_level(&self, from: PcpuId, to: PcpuId) -> MigrateLevel {
        let nodes = &self.meta.pcpu_nodes;
        if nodes.get(pcpu_index(from)) != nodes.get(pcpu_index(to)) {
            return MigrateLevel::Numa;
        }
        let runq = |p: PcpuId| self.pcpus.get(pcpu_index(p)).and_then(|c| c.runq);
        if runq(from) != runq(to) {
            MigrateLevel::Runq
        } else {
            MigrateLevel::Pcpu
        }
    }

    /// Ends the open run on pCPU `index` at `end_ns`: its overhead and run slices.
    fn close_run(&mut self, limits: &mut Limits, index: usize, end_ns: u64, at_end: bool) {
        let Some(run) = self.pcpus[index].current.take() else {
            return;
        };
        let pcpu = u32::try_from(index).expect("pCPU index fits u32");
        let run_start_ns = run.overhead_until_ns.clamp(run.start_ns, end_ns);
        if let Some((lo, hi)) = limits.clip(run.start_ns, run_start_ns) {
            self.push_slice(limits, pcpu, (lo, hi), run.seq, SliceKind::Overhead);
        }
        let exit = self.vcpus.get_mut(&run.vcpu).and_then(|c| c.exit.take());
        let Some((lo, hi)) = limits.clip(run_start_ns, end_ns) else {
            return;
        };
        let end = if at_end || end_ns > limits.end_ns {
            Some(EndReason::WindowEnd)
        } else {
            exit
        };
        let kind = SliceKind::Run {
            dom: run.vcpu.dom.raw(),
            vcpu: run.vcpu.vcpu.raw(),
            end: end.unwrap_or(EndReason::Preempt),
        };
        let pushed = self.push_slice(limits, pcpu, (lo, hi), run.seq, kind);
        if let (Some(slice_index), None) = (pushed, end) {
            if let Some(cap) = self.vcpus.get_mut(&run.vcpu) {
                cap.pending_end = Some(slice_index);
            }
        }
    }

    fn push_slice(
        &mut self,
        limits: &mut Limits,
        pcpu: u32,
        (lo, hi): (u64, u64),
        seq: u64,
        kind: SliceKind,
    ) -> Option<usize> {
        assert!(lo < hi, "empty slice");
        if !limits.take() {
            return None;
        }
        self.out.slices.push(Slice {
            pcpu,
            start_ns: lo,
            dur_ns: hi - lo,
            seq,
            kind,
        });
        Some(self.out.slices.len() - 1)
    }

    fn instant(
        &mut self,
        limits: &mut Limits,
        time_ns: u64,
        track: Track,
        kind: impl FnOnce() -> InstantKind,
    ) {
        if !limits.contains(time_ns) || !limits.take() {
            return;
        }
        let seq = self.next_seq();
        let kind = kind();
        self.out.instants.push(Instant {
            time_ns,
            seq,
            track,
            kind,
        });
    }
}

fn set_end(slice: &mut Slice, reason: EndReason) {
    if let SliceKind::Run { end, .. } = &mut slice.kind {
        if *end != EndReason::WindowEnd {
            *end = reason;
        }
    }
}

#[cfg(test)]
mod tests;
