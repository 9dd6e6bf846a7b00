//! Test helpers: a one-host machine and terse builders for synthetic trace events, so the
//! collector tests read as event sequences.
//!
//! # Invariants
//! - The host is `h0` with two pCPUs in `Pool-0` (null scheduler), pCPU 0 on NUMA node 0
//!   and pCPU 1 on node 1, so any move between them is also a NUMA migration.

use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::ids::{DomId, PcpuId, VcpuId, VcpuRef};
use hypervisor_model::time::Span;
use hypervisor_model::trace::TraceEvent;

use super::collect::{HostMeta, MetricsCollector, PoolMeta};

/// The only host's index.
pub(super) const HOST: usize = 0;

/// A collector for `h0` whose window starts at `warmup_ns`, with free switches.
pub(super) fn collector(warmup_ns: u64) -> MetricsCollector {
    collector_with_switch(warmup_ns, crate::machine::switch::SwitchCosts::free())
}

/// A collector for `h0` whose switches cost `switch`.
pub(super) fn collector_with_switch(
    warmup_ns: u64,
    switch: crate::machine::switch::SwitchCosts,
) -> MetricsCollector {
    let pool = Some("Pool-0".to_owned());
    let host = HostMeta {
        name: "h0".to_owned(),
        pcpu_nodes: vec![0, 1],
        pcpu_pools: vec![pool.clone(), pool],
        pools: vec![PoolMeta {
            name: "Pool-0".to_owned(),
            scheduler: "null".to_owned(),
        }],
        switch,
    };
    MetricsCollector::new(warmup_ns, vec![host])
}

pub(super) fn dom(raw: u16) -> DomId {
    DomId::new(raw).expect("test domid is valid")
}

pub(super) fn vcpu(dom_raw: u16, index: u32) -> VcpuRef {
    VcpuRef {
        dom: dom(dom_raw),
        vcpu: VcpuId::new(index).expect("test vCPU index is valid"),
    }
}

pub(super) fn pcpu(raw: u32) -> PcpuId {
    PcpuId::new(raw).expect("test pCPU is valid")
}

/// `DomainCreate` then one `VcpuCreate` per vCPU, all at `time_ns`.
pub(super) fn create(c: &mut MetricsCollector, time_ns: u64, dom_raw: u16, name: &str, n: u32) {
    let event = TraceEvent::DomainCreate {
        dom: dom(dom_raw),
        name: name.to_owned(),
    };
    c.observe(HOST, time_ns, &event);
    for index in 0..n {
        let event = TraceEvent::VcpuCreate {
            vcpu: vcpu(dom_raw, index),
            pcpu: pcpu(0),
            online: true,
        };
        c.observe(HOST, time_ns, &event);
    }
}

pub(super) fn free(c: &mut MetricsCollector, time_ns: u64, dom_raw: u16) {
    c.observe(HOST, time_ns, &TraceEvent::DomainFree { dom: dom(dom_raw) });
}

/// One runstate change of `v`.
pub(super) fn rs(c: &mut MetricsCollector, time_ns: u64, v: VcpuRef, from: Runstate, to: Runstate) {
    c.observe(HOST, time_ns, &TraceEvent::Runstate { vcpu: v, from, to });
}

/// One scheduler decision on `cpu`.
pub(super) fn sched(
    c: &mut MetricsCollector,
    time_ns: u64,
    cpu: u32,
    prev: Option<VcpuRef>,
    next: Option<VcpuRef>,
) {
    let event = TraceEvent::Schedule {
        pcpu: pcpu(cpu),
        prev,
        next,
        next_time: Span::from_ns(-1),
        reason: hypervisor_model::sched::PickReason::Assigned,
        credit_ns: None,
    };
    c.observe(HOST, time_ns, &event);
}

/// A decision that switches `cpu` from `prev` to `next`, with the runstate events the core
/// emits for it: `prev` becomes `prev_to`, `next` becomes running.
pub(super) fn switch(
    c: &mut MetricsCollector,
    time_ns: u64,
    cpu: u32,
    prev: Option<(VcpuRef, Runstate)>,
    next: Option<VcpuRef>,
) {
    sched(c, time_ns, cpu, prev.map(|(v, _)| v), next);
    if let Some((v, to)) = prev {
        rs(c, time_ns, v, Runstate::Running, to);
    }
    if let Some(v) = next {
        rs(c, time_ns, v, Runstate::Runnable, Runstate::Running);
    }
}

pub(super) fn memory(c: &mut MetricsCollector, time_ns: u64, free_pages: u64) {
    let event = TraceEvent::Memory {
        dom: dom(0),
        delta_pages: 0,
        free_pages,
    };
    c.observe(HOST, time_ns, &event);
}
