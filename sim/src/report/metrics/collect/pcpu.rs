//! Per-pCPU accounting of the collector: busy, idle and switch-overhead time while the pCPU
//! is in a pool (per pool, since pCPUs move between pools at run time), context switches and
//! decisions (`specs/metrics.md` §1.8, §1.11, §1.12 (a)).
//!
//! # Invariants
//! - `busy_ns + idle_ns + overhead_ns == online_ns`, the in-window time spent in any pool.
//! - `online_by_pool` sums to `online_ns`.

use std::collections::BTreeMap;

use hypervisor_model::ids::VcpuRef;

use super::super::state::{add, bump, Window};
use super::super::{PcpuMetrics, PoolMetrics};
use super::PoolMeta;

#[derive(Debug, Default)]
pub(super) struct PcpuState {
    pub(super) current: Option<VcpuRef>,
    since_ns: u64,
    busy_ns: u64,
    idle_ns: u64,
    overhead_ns: u64,
    online_ns: u64,
    /// In-window online time by pool name.
    online_by_pool: BTreeMap<String, u64>,
    /// The last guest vCPU that ran here (a switch back to it is free).
    pub(super) last_vcpu: Option<VcpuRef>,
    /// The current switch's overhead lasts until then.
    pub(super) overhead_until_ns: u64,
    context_switch_count: u64,
    vcpu_switch_count: u64,
    sched_decision_count: u64,
}

impl PcpuState {
    /// A scheduler decision at `time_ns` while the pCPU is in `pool`.
    pub(super) fn decide(
        &mut self,
        window: Window,
        time_ns: u64,
        prev: Option<VcpuRef>,
        next: Option<VcpuRef>,
        pool: Option<&str>,
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
        self.close(window, time_ns, pool);
        self.current = next;
    }

    /// Accounts `[since, time_ns)` to `pool` (nothing when in no pool).
    pub(super) fn close(&mut self, window: Window, time_ns: u64, pool: Option<&str>) {
        if let Some(pool) = pool {
            let spent_ns = window.clip(self.since_ns, time_ns);
            if self.current.is_some() {
                // The switch's overhead comes first; the guest runs after it.
                let switch_end_ns = self.overhead_until_ns.clamp(self.since_ns, time_ns);
                let overhead_ns = window.clip(self.since_ns, switch_end_ns);
                add(&mut self.overhead_ns, overhead_ns, "overhead_ns");
                let busy_ns = window.clip(switch_end_ns, time_ns);
                add(&mut self.busy_ns, busy_ns, "busy_ns");
            } else {
                add(&mut self.idle_ns, spent_ns, "idle_ns");
            }
            add(&mut self.online_ns, spent_ns, "online_ns");
            // The pool's entry exists after its first interval: no key allocated per close.
            match self.online_by_pool.get_mut(pool) {
                Some(by_pool) => add(by_pool, spent_ns, "online_ns"),
                None => {
                    self.online_by_pool.insert(pool.to_owned(), spent_ns);
                }
            }
        }
        self.since_ns = time_ns;
    }

    /// In-window online time spent in `pool`.
    pub(super) fn online_in(&self, pool: &str) -> u64 {
        self.online_by_pool.get(pool).copied().unwrap_or(0)
    }

    /// The pCPU's metrics; `pool` is the pool it is in at the end.
    pub(super) fn metrics(&self, id: u32, pool: Option<String>, node: u32) -> PcpuMetrics {
        let mut accounted_ns = self.busy_ns;
        add(&mut accounted_ns, self.idle_ns, "online_ns");
        add(&mut accounted_ns, self.overhead_ns, "online_ns");
        assert_eq!(
            accounted_ns, self.online_ns,
            "busy + idle + overhead differs from online"
        );
        PcpuMetrics {
            id,
            pool,
            node,
            online_ns: self.online_ns,
            busy_ns: self.busy_ns,
            idle_ns: self.idle_ns,
            overhead_ns: self.overhead_ns,
            utilization_ppm: super::ratio_ppm(self.busy_ns, self.online_ns),
            context_switch_count: self.context_switch_count,
            vcpu_switch_count: self.vcpu_switch_count,
            sched_decision_count: self.sched_decision_count,
        }
    }
}

/// A pool's capacity: the in-window time its pCPUs spent in it.
pub(super) fn pool_metrics(pool: &PoolMeta, pcpus: &[PcpuState]) -> PoolMetrics {
    let mut capacity_ns = 0;
    for pcpu in pcpus {
        add(&mut capacity_ns, pcpu.online_in(&pool.name), "capacity_ns");
    }
    PoolMetrics {
        name: pool.name.clone(),
        scheduler: pool.scheduler.clone(),
        capacity_ns,
    }
}
