//! Where core inputs and core events go: the recorder (hash and trace file), the readable
//! decision log, the metrics collector, and the timeline capture (only when asked for).

use std::mem::ManuallyDrop;

use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::boot::BootConfig;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{DomId, PcpuId, VcpuRef};
use hypervisor_model::sched::PickReason;
use hypervisor_model::time::{STime, Span};
use hypervisor_model::trace::TraceEvent;

use super::decisions;
use super::HostRuntime;
use crate::guest::io_log::{DiskWrite, IoLog};
use crate::guest::workload::JobRecord;
use crate::machine::switch::SwitchCosts;
use crate::record::Recorder;
use crate::report::metrics::{DomainMeta, HostMeta, Metrics, MetricsCollector, PoolMeta};
use crate::report::timeline::capture::{TimelineCapture, TimelineOptions};
use crate::report::timeline::Timeline;

/// All consumers of the record stream.
#[derive(Debug)]
pub struct Sinks {
    /// Hash, trace file, replay comparison.
    pub recorder: Recorder,
    host_names: Vec<String>,
    decisions: Option<String>,
    metrics: MetricsCollector,
    hosts: Vec<HostMeta>,
    timeline: Option<TimelineCapture>,
    /// A timeline or a decision log is kept (one test per record for both).
    views: bool,
}

/// What the sinks gathered by the end of a run.
#[derive(Debug)]
pub struct SinksReport {
    /// The decision log, if it was kept.
    pub decision_log: Option<String>,
    /// The run's metrics.
    pub metrics: Metrics,
    /// The captured timeline, if it was asked for.
    pub timeline: Option<Timeline>,
}

/// The metrics view of a host about to boot: pCPU nodes and pools.
pub fn host_meta(name: &str, config: &BootConfig, switch: SwitchCosts) -> HostMeta {
    let nr_cpus = config.host.cpus.len();
    let mut pcpu_pools: Vec<Option<String>> = vec![Some("Pool-0".to_string()); nr_cpus];
    for pool in &config.pools {
        for cpu in pool.cpus.iter() {
            pcpu_pools[cpu.index()] = Some(pool.name.clone());
        }
    }
    for cpu in config.free_cpus.iter() {
        pcpu_pools[cpu.index()] = None;
    }
    let mut pools = vec![PoolMeta {
        name: "Pool-0".to_string(),
        scheduler: config.pool0_sched.opt_name().to_string(),
    }];
    pools.extend(config.pools.iter().map(|p| PoolMeta {
        name: p.name.clone(),
        scheduler: p.sched.opt_name().to_string(),
    }));
    HostMeta {
        name: name.to_string(),
        pcpu_nodes: config.host.cpus.iter().map(|c| c.node).collect(),
        pcpu_pools,
        pools,
        switch,
    }
}

/// The handlers of frequent kinds no metric uses (`MetricsCollector::observe` drops them):
/// the record alone. Each kind has its own `#[inline(never)]` handler, in which the
/// encoding knows the kind: in a shared one, the encoding's match on the kind was a jump
/// table, and its longest arm kept a stack frame for all of them (about 25 of the 60
/// instructions of a record).
macro_rules! record_only_handlers {
    ($($name:ident => $kind:ident;)*) => {
        $(
            #[doc = concat!("[`Self::event`] of a `", stringify!($kind), "`: the record alone.")]
            #[inline(never)]
            fn $name(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
                let TraceEvent::$kind { .. } = event else {
                    unreachable!(concat!("Sinks::event dispatched a ", stringify!($kind)))
                };
                self.recorder.event(host, time_ns, event);
            }
        )*
    };
}

impl Sinks {
    /// Sinks for a run whose metrics window starts at `warmup_ns`.
    pub fn new(
        recorder: Recorder,
        hosts: Vec<HostMeta>,
        decision_log: bool,
        warmup_ns: u64,
    ) -> Sinks {
        let host_names = hosts.iter().map(|h| h.name.clone()).collect();
        Sinks {
            recorder,
            host_names,
            decisions: decision_log.then(String::new),
            metrics: MetricsCollector::new(warmup_ns, hosts.clone()),
            hosts,
            timeline: None,
            views: decision_log,
        }
    }

    /// Also captures the run's timeline (`--perfetto`, `--report`).
    pub fn with_timeline(mut self, options: TimelineOptions) -> Sinks {
        self.timeline = Some(TimelineCapture::new(options, &self.hosts));
        self.views = true;
        self
    }

    /// A toolstack command started on `host` at `time_ns`.
    pub fn command(&mut self, host: u16, time_ns: u64, text: &str) {
        if let Some(timeline) = &mut self.timeline {
            timeline.command(usize::from(host), time_ns, text);
        }
    }

    /// Tells the metrics the scheduling parameters of a domain (dom0 before boot).
    pub fn domain_meta(&mut self, host: u16, dom: DomId, meta: DomainMeta) {
        if let Some(timeline) = &mut self.timeline {
            timeline.domain_pool(usize::from(host), dom, &meta.pool);
        }
        self.metrics.domain_meta(usize::from(host), dom, meta);
    }

    /// A domain was created on `host`: record its pool, weight and cap.
    pub fn domain_created(&mut self, host: u16, hv: &Hypervisor, dom: DomId) {
        let Some(d) = hv.domain(dom) else { return };
        let pool = hv
            .pools()
            .find(|p| p.id == d.pool)
            .map_or_else(String::new, |p| p.name.clone());
        self.domain_meta(
            host,
            dom,
            DomainMeta {
                pool,
                weight: d.weight,
                cap: d.cap,
            },
        );
    }

    fn host_name(&self, host: u16) -> String {
        self.host_names
            .get(usize::from(host))
            .cloned()
            .unwrap_or_default()
    }

    /// A core input at `time_ns`.
    pub fn input(&mut self, host: u16, time_ns: u64, input: &CoreInput) {
        self.recorder.input(host, time_ns, input);
        debug_assert_eq!(
            self.views,
            self.timeline.is_some() || self.decisions.is_some()
        );
        if self.views {
            self.input_views(host, time_ns, input);
        }
    }

    /// [`Self::input`] for the timeline and the decision log (out of line: a plain run has
    /// neither, and the record path keeps a small frame).
    #[cold]
    #[inline(never)]
    fn input_views(&mut self, host: u16, time_ns: u64, input: &CoreInput) {
        if let Some(timeline) = &mut self.timeline {
            timeline.input(usize::from(host), time_ns, input);
        }
        if self.decisions.is_some() {
            let name = self.host_name(host);
            if let Some(log) = &mut self.decisions {
                decisions::input_line(log, &name, time_ns, input);
            }
        }
    }

    /// A core event at `time_ns`.
    ///
    /// A dispatch on the kind, inlined (with the platform's `trace`) into every place the
    /// core emits a record, and a call: each frequent kind has its own handler, in which
    /// the recorder's encoding is inlined for that kind alone (its offsets and length
    /// constants) and the metrics get the fields they fold without matching the event
    /// again. A kind the metrics do not fold is recorded with no stack frame at all (the
    /// recorder's rare flush is a tail call). Records and metrics share no state: a handler
    /// may fold first.
    ///
    /// The four commonest kinds (`Runstate`, `Schedule`, `TimerSet`, `Tickle`) go to their
    /// handler as fields, by value, and the handler checks for the views itself: where the
    /// core builds the event (its kind known), nothing reads the event in memory any more,
    /// so it is not stored on the caller's stack for the handler to load back.
    #[inline(always)]
    pub fn event(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        debug_assert_eq!(
            self.views,
            self.timeline.is_some() || self.decisions.is_some()
        );
        match *event {
            TraceEvent::Runstate { vcpu, from, to } => {
                self.runstate_event(host, time_ns, vcpu, (from, to));
            }
            TraceEvent::Schedule {
                pcpu,
                prev,
                next,
                next_time,
                reason,
                credit_ns,
            } => self.schedule_event(
                host,
                time_ns,
                pcpu,
                (prev, next),
                (next_time, reason, credit_ns),
            ),
            TraceEvent::TimerSet { pcpu, deadline } => {
                self.timer_set_event(host, time_ns, pcpu, deadline);
            }
            TraceEvent::Tickle { pcpu } => self.tickle_event(host, time_ns, pcpu),
            _ if self.views => self.event_with_views(host, time_ns, event),
            _ => self.dispatch_event(host, time_ns, event),
        }
    }

    /// [`Self::event`] without the views, for the kinds handed over by reference: the
    /// kind's handler. Inlined into each call site of the platform's trace, where the core
    /// builds the event with a known kind: the match folds away there and the site calls
    /// its kind's handler directly, with no jump table between (it cost each of those
    /// records 12 instructions). A site whose event is not known (a scheduler's queued
    /// events, the rare kinds) gets the jump table inline. A by-value kind comes here only
    /// with the views, to the last arm (which records and folds every kind).
    #[inline(always)]
    fn dispatch_event(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        match event {
            TraceEvent::BlkPush { .. } | TraceEvent::BlkResponse { .. } => {
                self.blk_ring_event(host, time_ns, event);
            }
            // No metric uses these (`MetricsCollector::observe` drops them).
            TraceEvent::NetPush { .. } => self.net_push_event(host, time_ns, event),
            TraceEvent::NetbackWork { .. } => self.netback_work_event(host, time_ns, event),
            TraceEvent::BlkbackWork { .. } => self.blkback_work_event(host, time_ns, event),
            TraceEvent::DiskSubmit { .. } => self.disk_submit_event(host, time_ns, event),
            TraceEvent::PoolTimerSet { .. } => self.unused_event(host, time_ns, event),
            _ => self.event_other(host, time_ns, event),
        }
    }

    /// [`Self::event`] with a timeline or a decision log (out of line, as
    /// [`Self::input_views`]): they first, then the record and the metrics. They are
    /// independent of the hash and the metrics.
    #[cold]
    #[inline(never)]
    fn event_with_views(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        self.event_views(host, time_ns, event);
        self.dispatch_event(host, time_ns, event);
    }

    /// [`Self::event`] of a `Runstate`: the record, then the metrics. The event is built
    /// here only for the encoding, which reads its fields where they are (in registers):
    /// no path of the handler keeps a reference to it. It is never dropped (in a
    /// `ManuallyDrop`, as in each by-value handler): its kind owns no memory, and the drop
    /// glue of `TraceEvent`, called out of line, was 18 instructions a record.
    #[inline(never)]
    fn runstate_event(
        &mut self,
        host: u16,
        time_ns: u64,
        vcpu: VcpuRef,
        change: (Runstate, Runstate),
    ) {
        if self.views {
            return self.runstate_with_views(host, time_ns, vcpu, change);
        }
        let (from, to) = change;
        let event = ManuallyDrop::new(TraceEvent::Runstate { vcpu, from, to });
        self.recorder.event_fixed(host, time_ns, &event);
        self.metrics
            .runstate(usize::from(host), time_ns, vcpu, change);
    }

    /// [`Self::event`] of a `Schedule`: the record, then the metrics, and only then, out
    /// of line and rarely, what the record left to do (its chunk's flush, a kept record):
    /// a tail call, so no value is kept across a call (fewer registers saved and spilled).
    #[inline(never)]
    fn schedule_event(
        &mut self,
        host: u16,
        time_ns: u64,
        pcpu: PcpuId,
        (prev, next): (Option<VcpuRef>, Option<VcpuRef>),
        rest: (Span, PickReason, Option<i64>),
    ) {
        if self.views {
            return self.schedule_with_views(host, time_ns, pcpu, (prev, next), rest);
        }
        let (next_time, reason, credit_ns) = rest;
        let event = ManuallyDrop::new(TraceEvent::Schedule {
            pcpu,
            prev,
            next,
            next_time,
            reason,
            credit_ns,
        });
        let pending_len = self.recorder.event_pending(host, time_ns, &event);
        self.metrics
            .schedule(usize::from(host), time_ns, pcpu, (prev, next));
        // Records and metrics share no state: the record's rest after the fold is the
        // same as before it.
        if pending_len != 0 {
            self.recorder.after_window(pending_len, time_ns);
        }
    }

    /// [`Self::event`] of a `TimerSet` (no metric uses it): the record alone.
    #[inline(never)]
    fn timer_set_event(&mut self, host: u16, time_ns: u64, pcpu: PcpuId, deadline: STime) {
        if self.views {
            return self.timer_set_with_views(host, time_ns, pcpu, deadline);
        }
        let event = ManuallyDrop::new(TraceEvent::TimerSet { pcpu, deadline });
        self.recorder.event_fixed(host, time_ns, &event);
    }

    /// [`Self::event`] of a `Tickle` (no metric uses it): the record alone.
    #[inline(never)]
    fn tickle_event(&mut self, host: u16, time_ns: u64, pcpu: PcpuId) {
        if self.views {
            return self.tickle_with_views(host, time_ns, pcpu);
        }
        let event = ManuallyDrop::new(TraceEvent::Tickle { pcpu });
        self.recorder.event_fixed(host, time_ns, &event);
    }

    record_only_handlers! {
        net_push_event => NetPush;
        netback_work_event => NetbackWork;
        blkback_work_event => BlkbackWork;
        disk_submit_event => DiskSubmit;
    }

    /// [`Self::event`] of a `PoolTimerSet` (no metric uses it): the record alone.
    #[inline(never)]
    fn unused_event(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        self.recorder.event(host, time_ns, event);
    }

    /// [`Self::event`] of a `BlkPush` or a `BlkResponse`: the ring counters, then the
    /// record.
    #[inline(never)]
    fn blk_ring_event(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        let host_index = usize::from(host);
        match *event {
            TraceEvent::BlkPush {
                dom,
                vdev,
                requests,
                notify,
            } => self
                .metrics
                .blk_push(host_index, time_ns, dom, vdev, (requests, notify)),
            TraceEvent::BlkResponse {
                dom, vdev, notify, ..
            } => self
                .metrics
                .blk_response(host_index, time_ns, dom, vdev, notify),
            _ => unreachable!("Sinks::event dispatched a blk ring event"),
        }
        self.recorder.event(host, time_ns, event);
    }

    /// [`Self::event`] for the less frequent kinds: the recorder and the metrics match
    /// the event themselves.
    #[inline(never)]
    fn event_other(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        self.metrics.observe(usize::from(host), time_ns, event);
        self.recorder.event(host, time_ns, event);
    }

    /// [`Self::event`] for the timeline and the decision log.
    fn event_views(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        if let Some(timeline) = &mut self.timeline {
            timeline.event(usize::from(host), time_ns, event);
        }
        if self.decisions.is_some() {
            let name = self.host_name(host);
            if let Some(log) = &mut self.decisions {
                decisions::event_line(log, &name, time_ns, event);
            }
        }
    }

    /// [`Self::event_with_views`] of a `Runstate` handed over by value. The views of each
    /// by-value kind rebuild the event out of line, from the fields: an event built in the
    /// handler and referenced on any of its paths was stored there on every record.
    #[cold]
    #[inline(never)]
    fn runstate_with_views(
        &mut self,
        host: u16,
        time_ns: u64,
        vcpu: VcpuRef,
        change: (Runstate, Runstate),
    ) {
        let (from, to) = change;
        self.event_with_views(host, time_ns, &TraceEvent::Runstate { vcpu, from, to });
    }

    /// [`Self::event_with_views`] of a `Schedule` handed over by value.
    #[cold]
    #[inline(never)]
    fn schedule_with_views(
        &mut self,
        host: u16,
        time_ns: u64,
        pcpu: PcpuId,
        (prev, next): (Option<VcpuRef>, Option<VcpuRef>),
        (next_time, reason, credit_ns): (Span, PickReason, Option<i64>),
    ) {
        let event = TraceEvent::Schedule {
            pcpu,
            prev,
            next,
            next_time,
            reason,
            credit_ns,
        };
        self.event_with_views(host, time_ns, &event);
    }

    /// [`Self::event_with_views`] of a `TimerSet` handed over by value.
    #[cold]
    #[inline(never)]
    fn timer_set_with_views(&mut self, host: u16, time_ns: u64, pcpu: PcpuId, deadline: STime) {
        self.event_with_views(host, time_ns, &TraceEvent::TimerSet { pcpu, deadline });
    }

    /// [`Self::event_with_views`] of a `Tickle` handed over by value.
    #[cold]
    #[inline(never)]
    fn tickle_with_views(&mut self, host: u16, time_ns: u64, pcpu: PcpuId) {
        self.event_with_views(host, time_ns, &TraceEvent::Tickle { pcpu });
    }

    /// The periodic job records of domain `dom` (at its destruction or the run's end).
    pub fn domain_jobs(&mut self, host: u16, dom: DomId, jobs: Vec<JobRecord>) {
        if !jobs.is_empty() {
            self.metrics.domain_jobs(usize::from(host), dom, jobs);
        }
    }

    /// The logs of completed I/Os of domain `dom` (at its destruction or the run's end).
    pub fn domain_io(&mut self, host: u16, dom: DomId, logs: Vec<IoLog>) {
        if !logs.is_empty() {
            self.metrics.domain_io(usize::from(host), dom, logs);
        }
    }

    /// The memory counters of domain `dom` (at its destruction or the run's end).
    pub fn domain_memory(
        &mut self,
        host: u16,
        dom: DomId,
        stats: Option<crate::guest::memory::MemoryStats>,
    ) {
        if let Some(stats) = stats {
            self.metrics.domain_memory(usize::from(host), dom, stats);
        }
    }

    /// The end-of-run checks of each vbd `dom` did I/O on: acknowledged writes missing
    /// from the disk, and reconnects to a re-created backend (of its vifs too).
    fn vbd_checks(&mut self, index: usize, host: &HostRuntime, dom: DomId, logs: &[IoLog]) {
        // The devices with a record, each once.
        let mut devs: Vec<&str> = Vec::new();
        for dev in logs.iter().flat_map(IoLog::devs) {
            if !devs.contains(&dev) {
                devs.push(dev);
            }
        }
        devs.sort_unstable();
        let pending = host.sim.guests.io_pending_writes(dom);
        // A vif's reconnects count even without a request of its own (a vif that only
        // answers, or only dropped frames).
        for devid in host.hv.vifs_reconnected(dom) {
            let dev = format!("vif{devid}");
            self.vif_checks(index, host, dom, &dev);
        }
        for dev in devs {
            let Some(vdev) = hypervisor_model::toolstack::xs_tree::disk_devid(dev) else {
                continue;
            };
            // The device's acknowledged writes in the order the sources logged them.
            let acked: Vec<DiskWrite> = logs
                .iter()
                .flat_map(|log| log.acked_writes(dev))
                .copied()
                .collect();
            let last_flush_ns = logs.iter().filter_map(|log| log.last_flush_ns(dev)).max();
            let place = host.sim.vbd_volumes.get(&(dom, vdev)).copied();
            let disk = place.and_then(|(disk, volume)| Some((host.sim.disks.get(disk)?, volume)));
            let lost = match disk {
                Some((disk, volume)) => crate::run::durability::lost_acked_writes(
                    &acked,
                    last_flush_ns,
                    &pending,
                    |sector| disk.stamp(volume, sector),
                ),
                None => crate::run::durability::Lost::default(),
            };
            let checks = crate::report::metrics::io::VbdChecks {
                lost_acked_write_count: lost.acked,
                lost_flushed_write_count: lost.flushed,
                reconnect_count: u64::from(host.hv.vbd_reconnects(dom, vdev)),
            };
            self.metrics.vbd_checks(index, dom, dev.to_string(), checks);
        }
    }
    /// The end-of-run checks of a vif `dom` did I/O on: its reconnects to a re-created
    /// backend.
    fn vif_checks(&mut self, index: usize, host: &HostRuntime, dom: DomId, dev: &str) {
        let Some(devid) = dev.strip_prefix("vif").and_then(|n| n.parse::<u32>().ok()) else {
            return;
        };
        let checks = crate::report::metrics::io::VbdChecks {
            reconnect_count: u64::from(host.hv.vif_reconnects(dom, devid)),
            ..Default::default()
        };
        self.metrics.vbd_checks(index, dom, dev.to_string(), checks);
    }

    /// The dropped vif frames of domain `dom` (at its destruction or the run's end).
    pub fn domain_net_drops(
        &mut self,
        host: u16,
        dom: DomId,
        drops: Vec<crate::run::net::NetDropRecord>,
    ) {
        if !drops.is_empty() {
            self.metrics.domain_net_drops(usize::from(host), dom, drops);
        }
    }

    /// Ends the run at `end_ns`: the recorder (to finish) and the report.
    pub fn finish(mut self, end_ns: u64, hosts: &mut [HostRuntime]) -> (Recorder, SinksReport) {
        for (index, host) in hosts.iter_mut().enumerate() {
            for d in host.hv.domains() {
                let Some(pool) = host.hv.pool(d.pool) else {
                    continue;
                };
                for v in &d.vcpus {
                    if let Some(stats) = pool.sched.server_stats(v.id) {
                        self.metrics.vcpu_server_stats(index, v.id, stats);
                        // rtds only (server stats exist only there): its reservation.
                        if let Ok(p) = pool.sched.vcpu_params(v.id) {
                            let budget_ns = u64::from(p.budget_us) * 1_000;
                            let period_ns = u64::from(p.period_us) * 1_000;
                            self.metrics
                                .vcpu_rtds_reservation(index, v.id, budget_ns, period_ns);
                        }
                    }
                }
            }
            let live: Vec<DomId> = host.sim.guests.domains().collect();
            for dom in live {
                let jobs = host.sim.guests.jobs(dom, end_ns);
                let host_index = u16::try_from(index).unwrap_or(u16::MAX);
                self.domain_jobs(host_index, dom, jobs);
                let logs = host.sim.guests.take_io_logs(dom);
                self.vbd_checks(index, host, dom, &logs);
                self.domain_io(host_index, dom, logs);
                let memory = host.sim.guests.memory_stats(dom);
                self.domain_memory(host_index, dom, memory);
            }
        }
        let stopped: Vec<Option<u64>> = hosts.iter().map(|h| h.sim.crashed_at_ns).collect();
        let metrics = self.metrics.finish_with_stops(end_ns, &stopped);
        let timeline = self.timeline.map(|t| t.finish_with_stops(end_ns, &stopped));
        (
            self.recorder,
            SinksReport {
                decision_log: self.decisions,
                metrics,
                timeline,
            },
        )
    }
}
