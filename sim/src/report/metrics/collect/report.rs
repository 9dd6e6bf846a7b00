//! The end of a run in the metrics collector: each host's pCPU and pool metrics and each
//! domain's and vCPU's metrics, from the state the collector folded (`specs/metrics.md` §0,
//! §1.1-§1.3, §1.8, §1.11, §2.2).
//!
//! # Invariants
//! - Every pCPU and every live vCPU is closed at the host's end before it is reported.

use super::super::dist::Distribution;
use super::super::jobs::JobMetrics;
use super::super::samples::SlotSamples;
use super::super::state::{add, VcpuState, Window};
use super::super::{DomainMetrics, HostMetrics, VcpuMetrics};
use super::{pcpu, DomainState, HostState};

/// Bytes per KiB over bytes per page: host pages are 4 KiB.
const KIB_PER_PAGE: u64 = 4;
/// Parts per million.
const PPM: u128 = 1_000_000;

impl HostState {
    /// The host's metrics at the end of the run; closes every pCPU interval.
    pub(super) fn host_metrics(mut self, window: Window, end_ns: u64) -> HostMetrics {
        self.fold_free_min();
        let kib = |pages: u64| {
            pages
                .checked_mul(KIB_PER_PAGE)
                .unwrap_or_else(|| panic!("metric overflow: host_free_kib"))
        };
        let mut pcpus = Vec::with_capacity(self.pcpus.len());
        for (index, state) in self.pcpus.iter_mut().enumerate() {
            let pool = self.meta.pcpu_pools[index].clone();
            state.close(window, end_ns, state.pool);
            state.leave_pool(state.pool);
            let id = u32::try_from(index).expect("pCPU index fits u32");
            let node = self.meta.pcpu_nodes[index];
            pcpus.push(state.metrics(id, pool, node));
        }
        let pools = self
            .meta
            .pools
            .iter()
            .map(|pool| {
                let slot = self.pool_slots.find(&pool.name);
                pcpu::pool_metrics(pool, slot, &self.pcpus)
            })
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
    pub(super) fn domain_metrics(&mut self, window: Window, end_ns: u64) -> Vec<DomainMetrics> {
        let mut out = Vec::new();
        let samples = std::mem::take(&mut self.samples).into_slots();
        for domain in &mut self.domains {
            if domain.freed_ns.is_none() {
                for position in domain.vcpus.positions() {
                    self.vcpus[position].close(window, end_ns);
                }
            }
            let ended_ns = domain.freed_ns.unwrap_or(end_ns);
            let existed = domain.created_ns < end_ns && ended_ns > window.start_ns;
            if existed {
                out.push(domain.metrics(window, &self.meta.name, &self.vcpus, &samples));
            }
        }
        out
    }
}

/// `floor(10^6 · part / whole)`, `None` when `whole` is 0 (§0 ratios).
pub(super) fn ratio_ppm(part: u64, whole: u64) -> Option<u64> {
    let ppm = (u128::from(part) * PPM).checked_div(u128::from(whole))?;
    Some(u64::try_from(ppm).expect("a ppm ratio of a part fits u64"))
}

impl DomainState {
    /// Its metrics; `states` are the host's vCPUs, `samples` their latency samples by tag.
    fn metrics(
        &self,
        window: Window,
        host: &str,
        states: &[VcpuState],
        samples: &SlotSamples,
    ) -> DomainMetrics {
        let vcpus: Vec<VcpuMetrics> = self
            .vcpus
            .iter()
            .map(|(id, position)| states[position].metrics(id, window, samples))
            .collect();
        let sum = |pick: fn(&VcpuMetrics) -> u64, metric: &str| {
            let mut total = 0;
            for vcpu in &vcpus {
                add(&mut total, pick(vcpu), metric);
            }
            total
        };
        let slots: Vec<_> = self
            .vcpus
            .positions()
            .map(|p| states[p].sample_slots)
            .collect();
        let wakeups = samples.pooled_wakeups_sorted(&slots);
        let wakeup_latency_ns = Distribution::from_sorted(&wakeups, "wakeup_latency_ns");
        let runq_waits: Vec<&Distribution> = vcpus.iter().map(|v| &v.runq_wait_ns).collect();
        // The waits hold every wakeup sample: as many waits as wakeups are the same samples.
        let wait_count = runq_waits.iter().map(|d| d.count).sum::<u64>();
        let runq_wait_ns = if wait_count == wakeup_latency_ns.count {
            wakeup_latency_ns.clone()
        } else {
            samples.pooled_waits(&slots, &runq_waits, "runq_wait_ns")
        };
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
            wakeup_latency_ns,
            runq_wait_ns,
            wakeup_samples_ns: wakeups,
            jobs: JobMetrics::from_records(&self.jobs, window.start_ns, window.end_ns),
            vcpus,
            memory: self.memory.map(|stats| {
                super::super::memory::MemoryMetrics::new(stats, self.balloon_gave_up_count)
            }),
            io: super::super::io::io_metrics(
                &self.io,
                &self.rings,
                &self.vbd_checks,
                &self.net_drops,
                window.start_ns,
                window.end_ns,
            ),
        }
    }
}
