//! Run metrics (`specs/metrics.md`): what the run result JSON (§4.1), `[[expect]]` checks
//! (`specs/scenario.md` §8) and the `xensim run` summary table report, computed only from
//! the core's typed trace events.
//!
//! Layers, top to bottom:
//! - [`collect`]: [`MetricsCollector`] folds `TraceEvent`s into per-entity state and
//!   [`MetricsCollector::finish`] returns [`Metrics`].
//! - this file: the output types, in JSON field order, and the JSON writer.
//! - [`dist`]: nearest-rank distributions (§1.3).
//! - [`expect`]: metric paths and expectation checks.
//! - [`summary`]: the human summary table.
//!
//! # Invariants
//! - Integers only: no float takes part in any metric (§5.2); products use `u128`.
//! - Output order is fixed: hosts by index, pCPUs by id, domains by (host, creation order),
//!   vCPUs by id; struct field order is the JSON key order.
//! - Per vCPU `running_ns + runnable_ns + blocked_ns + offline_ns` equals its in-window life.
//!
//! Left out on purpose (their inputs are not in the trace yet): pool fairness (§1.4–1.6:
//! `contended`, `jain_*`, `max_rel_dev_ppm`, `worst_under*`), domain `actual_ns`,
//! `demand_ns`, `entitled_ns`, `share_ppm`, `norm_share_ppm`, vif `io` entries and `memory`
//! (§2), vCPU
//! `parked_ns`, `parked_count`, `entitled_ns`, `norm_share_ppm`, `extra_ns`,
//! `migration_runq_count`, pCPU `runq`. The periodic-job fields (§1.7) come from the guest
//! models' job records and the rtds server fields from the scheduler's own accounting (over
//! the vCPU's whole life in its pool, not clipped to the window), both handed over by the
//! run loop.
//! Readers ignore unknown fields, so adding them later does not bump `schema_version`.

pub mod collect;
#[cfg(test)]
mod core_feed;
pub mod dist;
pub mod expect;
pub mod io;
pub mod jobs;
pub mod memory;
mod samples;
mod select;
mod state;
pub mod summary;
#[cfg(test)]
mod synthetic;

use serde::Serialize;

pub use collect::{DomainMeta, HostMeta, MetricsCollector, PoolMeta};
pub use dist::Distribution;
pub use expect::{check_expectations, lookup, ExpectFailure, Lookup};
pub use io::IoMetrics;
pub use jobs::JobMetrics;
pub use summary::render_summary;

/// `schema` of the run result JSON.
pub const SCHEMA_NAME: &str = "xensim.metrics";
/// `schema_version`: bumped when a field is renamed, removed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;
/// The only percentile method implemented (§1.3).
pub const PERCENTILE_METHOD: &str = "nearest_rank";

/// What identifies a run in its JSON header; known only to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// Scenario file name as given on the command line.
    pub scenario: String,
    /// The seed the run used.
    pub seed: u64,
    /// The run's trace hash, already rendered.
    pub trace_hash: String,
}

/// Every metric of one run, in JSON order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// The measurement window `[start_ns, end_ns)`.
    pub window: WindowMetrics,
    /// Hosts by index.
    pub hosts: Vec<HostMetrics>,
    /// Domains that existed in the window, by (host, creation order).
    pub domains: Vec<DomainMetrics>,
}

/// `window`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowMetrics {
    /// `t0`, the end of warm-up.
    pub start_ns: u64,
    /// `t1`, the end of the run.
    pub end_ns: u64,
    /// `t1 - t0`.
    pub length_ns: u64,
}

/// One entry of `hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostMetrics {
    /// Host name.
    pub name: String,
    /// Lowest host free memory in the window; `None` if no memory event was seen.
    pub host_free_kib_min: Option<u64>,
    /// Host free memory at the end of the run.
    pub host_free_kib_end: Option<u64>,
    /// Cpupools, in the order the host declares them.
    pub pools: Vec<PoolMetrics>,
    /// pCPUs by id.
    pub pcpus: Vec<PcpuMetrics>,
}

/// One entry of `hosts[].pools`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolMetrics {
    /// Pool name (`Pool-0`).
    pub name: String,
    /// Scheduler name as Xen prints it.
    pub scheduler: String,
    /// In-window online time of the pool's pCPUs, summed (§1.4 `C_ns`).
    pub capacity_ns: u64,
}

/// One entry of `hosts[].pcpus` (§1.8, §1.11).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PcpuMetrics {
    /// Host-local pCPU number.
    pub id: u32,
    /// Pool name; `None` for a pCPU in no pool.
    pub pool: Option<String>,
    /// NUMA node.
    pub node: u32,
    /// In-window time in a pool.
    pub online_ns: u64,
    /// In-window time running a vCPU.
    pub busy_ns: u64,
    /// In-window time running the idle vCPU.
    pub idle_ns: u64,
    /// Charged scheduler overhead; always 0 until the cost model exists.
    pub overhead_ns: u64,
    /// `busy_ns · 10^6 / online_ns`; `None` when `online_ns` is 0.
    pub utilization_ppm: Option<u64>,
    /// Decisions with `next != prev`, idle counted as an entity.
    pub context_switch_count: u64,
    /// Decisions switching from one vCPU to another vCPU.
    pub vcpu_switch_count: u64,
    /// Every scheduler decision.
    pub sched_decision_count: u64,
}

/// One entry of `domains`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainMetrics {
    /// Domain id (may be reused by a later domain).
    pub domid: u16,
    /// Domain name.
    pub name: String,
    /// Host the domain was on at the end of the run.
    pub host: String,
    /// Cpupool; `None` if the run loop never described the domain.
    pub pool: Option<String>,
    /// Scheduler weight.
    pub weight: Option<u32>,
    /// Scheduler cap, percent of one pCPU (0 = none).
    pub cap: Option<u32>,
    /// Sum over vCPUs.
    pub running_ns: u64,
    /// Sum over vCPUs ("wait").
    pub runnable_ns: u64,
    /// Sum over vCPUs.
    pub blocked_ns: u64,
    /// Sum over vCPUs.
    pub offline_ns: u64,
    /// Pooled samples of all vCPUs.
    pub wakeup_latency_ns: Distribution,
    /// Pooled samples of all vCPUs.
    pub runq_wait_ns: Distribution,
    /// The pooled wakeup-latency samples behind `wakeup_latency_ns`, ascending; not part of
    /// the JSON (sweeps and `xensim compare` pool them across seeds, §3; the HTML report's
    /// CDFs draw them).
    #[serde(skip)]
    pub wakeup_samples_ns: Vec<u64>,
    /// Periodic-job fields (§1.7), `null` without a periodic workload.
    #[serde(flatten)]
    pub jobs: JobMetrics,
    /// vCPUs by id.
    pub vcpus: Vec<VcpuMetrics>,
    /// vbd I/O per device (§2.1), by device name.
    pub io: Vec<IoMetrics>,
    /// Memory (§2.2); `null` without a guest memory model.
    pub memory: Option<memory::MemoryMetrics>,
}

/// One entry of `domains[].vcpus` (§1.1, §1.2, §1.9, §1.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VcpuMetrics {
    /// vCPU index in its domain.
    pub id: u32,
    /// In-window time running.
    pub running_ns: u64,
    /// In-window time runnable ("wait").
    pub runnable_ns: u64,
    /// In-window time blocked.
    pub blocked_ns: u64,
    /// In-window time offline.
    pub offline_ns: u64,
    /// `runnable_ns + offline_ns`, what a Linux guest reports as steal.
    pub steal_ns: u64,
    /// Transitions into running.
    pub dispatch_count: u64,
    /// `running → runnable` transitions.
    pub preemption_count: u64,
    /// Yields; always 0, see [`collect`] for why.
    pub yield_count: u64,
    /// Consecutive running intervals on different pCPUs.
    pub migration_pcpu_count: u64,
    /// Consecutive running intervals on different NUMA nodes.
    pub migration_numa_count: u64,
    /// Wakes that left runnable for blocked or offline before running.
    pub wake_abandoned_count: u64,
    /// Wakes in the window still waiting to run at its end (censored).
    pub wakeup_latency_pending_count: u64,
    /// Wake (`blocked|offline → runnable`) to the next `→ running`.
    pub wakeup_latency_ns: Distribution,
    /// Each maximal runnable interval that ends in running.
    pub runq_wait_ns: Distribution,
    /// rtds: completed server periods since the vCPU joined the pool (§1.7); `null`
    /// outside rtds.
    pub server_period_count: Option<u64>,
    /// rtds: periods runnable throughout that got less than the budget.
    pub server_underserved_count: Option<u64>,
    /// rtds: sum of the budget shortfalls of underserved periods.
    pub server_shortfall_ns: Option<i64>,
    /// rtds: `(budget_ns, period_ns)` at the end of the run, for the entitlement of §1.4;
    /// not part of the JSON.
    #[serde(skip)]
    pub rtds_reservation_ns: Option<(u64, u64)>,
    /// null: in-window time the vCPU was assigned a pCPU (`None` outside null), for the
    /// entitlement of §1.4; not part of the JSON.
    #[serde(skip)]
    pub null_assigned_ns: Option<u64>,
}

/// The JSON document: header fields, then the three entity arrays (§4.1 order).
#[derive(Serialize)]
struct MetricsDocument<'a> {
    schema: &'static str,
    schema_version: u32,
    xensim_version: &'static str,
    scenario: &'a str,
    seed: u64,
    trace_hash: &'a str,
    window: &'a WindowMetrics,
    percentile_method: &'static str,
    hosts: &'a [HostMetrics],
    domains: &'a [DomainMetrics],
    /// Live migration is not modelled yet; the array is always empty.
    migrations: [(); 0],
}

impl Metrics {
    fn document<'a>(&'a self, run: &'a RunInfo) -> MetricsDocument<'a> {
        MetricsDocument {
            schema: SCHEMA_NAME,
            schema_version: SCHEMA_VERSION,
            xensim_version: env!("CARGO_PKG_VERSION"),
            scenario: &run.scenario,
            seed: run.seed,
            trace_hash: &run.trace_hash,
            window: &self.window,
            percentile_method: PERCENTILE_METHOD,
            hosts: &self.hosts,
            domains: &self.domains,
            migrations: [],
        }
    }

    /// The run result JSON, pretty-printed with 2-space indents and a trailing newline.
    pub fn to_json_string(&self, run: &RunInfo) -> String {
        let mut text = serde_json::to_string_pretty(&self.document(run))
            .expect("metrics hold only integers and strings");
        text.push('\n');
        text
    }

    /// The same document as a JSON value, for [`lookup`] and [`check_expectations`].
    pub fn to_json_value(&self, run: &RunInfo) -> serde_json::Value {
        serde_json::to_value(self.document(run)).expect("metrics hold only integers and strings")
    }
}

impl Metrics {
    /// The vCPUs of the domain at `index` in [`Metrics::domains`].
    pub fn vcpus_of(&self, index: usize) -> &[VcpuMetrics] {
        &self.domains[index].vcpus
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::domain::vcpu::Runstate::{Blocked, Offline, Runnable};

    use super::synthetic::{collector, create, dom, free, memory, rs, switch, vcpu, HOST};
    use super::{render_summary, DomainMeta, Metrics, RunInfo};

    /// Warm-up of the synthetic run: the first microsecond is left out.
    const WARMUP_NS: u64 = 1_000;
    /// End of the synthetic run.
    const END_NS: u64 = 10_000;

    fn meta(weight: u32) -> DomainMeta {
        DomainMeta {
            pool: "Pool-0".to_owned(),
            weight,
            cap: 0,
        }
    }

    /// Dom0 runs briefly on pCPU 0; `web` (2 vCPUs) wakes, is preempted, migrates to
    /// pCPU 1 and blocks; `tmp` lives and dies inside the window; memory drops and recovers.
    fn synthetic_run() -> Metrics {
        let (d0, web0, web1) = (vcpu(0, 0), vcpu(1, 0), vcpu(1, 1));
        let mut c = collector(WARMUP_NS);
        create(&mut c, 0, 0, "Domain-0", 1);
        c.domain_meta(HOST, dom(0), meta(256));
        memory(&mut c, 0, 1_000);
        rs(&mut c, 0, d0, Offline, Runnable);
        switch(&mut c, 0, 0, None, Some(d0));
        create(&mut c, 500, 1, "web", 2);
        c.domain_meta(HOST, dom(1), meta(512));
        memory(&mut c, 500, 800);
        rs(&mut c, 1_500, web0, Offline, Runnable);
        rs(&mut c, 1_600, web1, Offline, Runnable);
        switch(&mut c, 2_000, 0, Some((d0, Blocked)), Some(web0));
        switch(&mut c, 2_200, 1, None, Some(web1));
        switch(&mut c, 4_000, 0, Some((web0, Runnable)), None);
        switch(&mut c, 4_100, 1, Some((web1, Blocked)), Some(web0));
        create(&mut c, 5_000, 2, "tmp", 1);
        memory(&mut c, 5_000, 700);
        free(&mut c, 6_000, 2);
        memory(&mut c, 6_000, 800);
        switch(&mut c, 7_000, 1, Some((web0, Blocked)), None);
        rs(&mut c, 9_000, web1, Blocked, Runnable);
        c.finish(END_NS)
    }

    fn run_info() -> RunInfo {
        RunInfo {
            scenario: "synthetic.toml".to_owned(),
            seed: 42,
            trace_hash: "0000000000000000".to_owned(),
        }
    }

    #[test]
    fn metrics_json_synthetic_run_matches_golden() {
        let text = synthetic_run().to_json_string(&run_info());

        // This file is sim/src/report/metrics.rs; the snapshots live in the repository's golden/.
        insta::with_settings!({
            snapshot_path => "../../../golden",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!("metrics__synthetic", text);
        });
    }

    #[test]
    fn summary_synthetic_run_matches_golden() {
        let text = render_summary(&synthetic_run());

        insta::with_settings!({
            snapshot_path => "../../../golden",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!("metrics__synthetic_summary", text);
        });
    }

    #[test]
    fn json_value_and_string_agree_on_lookup() {
        let metrics = synthetic_run();
        let value = metrics.to_json_value(&run_info());

        let reparsed: serde_json::Value =
            serde_json::from_str(&metrics.to_json_string(&run_info())).expect("valid JSON");

        assert_eq!(value, reparsed);
        assert_eq!(
            super::lookup(&value, "domain.web.vcpus.1.wakeup_latency_pending_count"),
            super::Lookup::Integer(1)
        );
    }
}
