//! Memory metrics of a domain (`specs/metrics.md` §2.2): the guest memory model's counters
//! (`guest/memory.rs`, handed over by the run loop at the domain's destruction or the run's
//! end) and the balloon driver's give-ups, counted from the trace (`BalloonGaveUp`).
//!
//! `null` for a domain without a `memory` sub-table (it has no model to count with).
//!
//! # Invariants
//! - Every count covers the metrics window only; `swap_in_count <= swap_out_count`.

use serde::Serialize;

use crate::guest::memory::MemoryStats;

/// `domains[].memory`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryMetrics {
    /// Pages read back from swap: accesses outside the resident set (major faults).
    pub swap_in_count: u64,
    /// Pages written to swap (to make room for swap-ins, and when ballooning took the guest
    /// below its working set).
    pub swap_out_count: u64,
    /// vCPU run time spent swapping, ns.
    pub swap_stall_ns: u64,
    /// Times the guest OOM-killed its workload (`guest.oom_kill`).
    pub oom_kill_count: u64,
    /// Times its balloon driver gave up (`ECANCELED`, memory spec §5.5).
    pub balloon_gave_up_count: u64,
    /// Useful work its vCPUs did: run time less the swap and remote-NUMA stretch, ns
    /// (a throughput: compare it between guests with the same workload).
    pub work_ns: u64,
}

impl MemoryMetrics {
    /// The metrics of a domain with model counters `stats` and `gave_up` balloon give-ups.
    pub fn new(stats: MemoryStats, gave_up: u64) -> MemoryMetrics {
        debug_assert!(stats.swap_in_count <= stats.swap_out_count);
        MemoryMetrics {
            swap_in_count: stats.swap_in_count,
            swap_out_count: stats.swap_out_count,
            swap_stall_ns: stats.swap_stall_ns,
            oom_kill_count: stats.oom_kill_count,
            balloon_gave_up_count: gave_up,
            work_ns: stats.work_ns,
        }
    }
}
