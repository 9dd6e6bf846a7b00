//! The metrics JSON schema as far as `[[expect]]` paths need it (`specs/metrics.md` §4.1,
//! `specs/scenario.md` §8): which field names exist at each level.
//!
//! # Invariants
//! - Only integer-valued leaves are listed (booleans and strings cannot be bounded).
//! - Renaming a metric field renames its path; this table changes with `metrics.md`.

/// Distribution sub-fields (`metrics.md` §1.3).
const DIST_FIELDS: &[&str] = &[
    "count", "sum", "min", "mean", "p50", "p90", "p99", "p999", "max",
];

const DOMAIN_SCALARS: &[&str] = &[
    "domid",
    "weight",
    "cap",
    "actual_ns",
    "demand_ns",
    "entitled_ns",
    "share_ppm",
    "norm_share_ppm",
    "running_ns",
    "runnable_ns",
    "blocked_ns",
    "offline_ns",
    "job_count",
    "decided_job_count",
    "deadline_miss_count",
    "deadline_miss_ratio_ppm",
    "miss_unfinished_count",
    "pending_job_count",
];
const DOMAIN_DISTS: &[&str] = &[
    "wakeup_latency_ns",
    "runq_wait_ns",
    "response_ns",
    "tardiness_ns",
    "release_to_run_ns",
];
const VCPU_SCALARS: &[&str] = &[
    "id",
    "running_ns",
    "runnable_ns",
    "blocked_ns",
    "offline_ns",
    "parked_ns",
    "steal_ns",
    "dispatch_count",
    "entitled_ns",
    "norm_share_ppm",
    "preemption_count",
    "yield_count",
    "parked_count",
    "migration_pcpu_count",
    "migration_runq_count",
    "migration_numa_count",
    "wake_abandoned_count",
    "wakeup_latency_pending_count",
    "server_period_count",
    "server_underserved_count",
    "server_shortfall_ns",
    "extra_ns",
];
const VCPU_DISTS: &[&str] = &["wakeup_latency_ns", "runq_wait_ns"];
const IO_SCALARS: &[&str] = &[
    "io_completed_count",
    "io_error_count",
    "io_deferred_count",
    "io_bytes",
    "iops_milli",
    "throughput_bps",
    "ring_request_count",
    "ring_push_count",
    "ring_push_notify_count",
    "ring_response_count",
    "ring_response_notify_count",
    "lost_acked_write_count",
    "lost_flushed_write_count",
    "reconnect_count",
    "drop_ring_full_count",
    "drop_fabric_loss_count",
    "drop_partition_count",
    "drop_no_route_count",
];
const IO_DISTS: &[&str] = &["io_latency_ring_ns", "io_latency_guest_ns"];
const MEMORY_SCALARS: &[&str] = &[
    "swap_in_count",
    "swap_out_count",
    "swap_stall_ns",
    "pod_fill_count",
    "oom_kill_count",
    "balloon_gave_up_count",
    "work_ns",
];
const HOST_SCALARS: &[&str] = &["host_free_kib_min", "host_free_kib_end"];
const POOL_SCALARS: &[&str] = &[
    "capacity_ns",
    "jain_ppm",
    "jain_domain_ppm",
    "max_rel_dev_ppm",
    "worst_under_dev_ppm",
];
const PCPU_SCALARS: &[&str] = &[
    "id",
    "node",
    "runq",
    "online_ns",
    "busy_ns",
    "idle_ns",
    "overhead_ns",
    "utilization_ppm",
    "context_switch_count",
    "vcpu_switch_count",
    "sched_decision_count",
];
const MIGRATION_SCALARS: &[&str] = &[
    "index",
    "downtime_ns",
    "final_dirty_pages",
    "total_bytes",
    "total_time_ns",
    "precopy_iterations",
];

/// A leaf: a scalar field, or a distribution field followed by its sub-field.
fn leaf(rest: &[&str], scalars: &[&str], dists: &[&str]) -> Result<(), String> {
    match rest {
        [field] if scalars.contains(field) => Ok(()),
        [field, sub] if dists.contains(field) => {
            if DIST_FIELDS.contains(sub) {
                Ok(())
            } else {
                Err(format!(
                    "{sub:?} is not a distribution field ({})",
                    DIST_FIELDS.join(", ")
                ))
            }
        }
        [field] if dists.contains(field) => Err(format!(
            "{field:?} is a distribution: add one of {}",
            DIST_FIELDS.join(", ")
        )),
        [field, ..] => {
            let mut known: Vec<&str> = scalars.iter().chain(dists).copied().collect();
            known.sort_unstable();
            Err(format!(
                "{field:?} is not a metric here; expected one of: {}",
                known.join(", ")
            ))
        }
        [] => Err("the path ends before a metric field".to_string()),
    }
}

/// Checks that `path` names an integer field of the metrics schema.
pub fn check_metric_path(path: &str) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["domain", _, "vcpus", _, rest @ ..] => leaf(rest, VCPU_SCALARS, VCPU_DISTS),
        ["domain", _, "io", _, rest @ ..] => leaf(rest, IO_SCALARS, IO_DISTS),
        ["domain", _, "memory", rest @ ..] => leaf(rest, MEMORY_SCALARS, &[]),
        ["domain", _, rest @ ..] => leaf(rest, DOMAIN_SCALARS, DOMAIN_DISTS),
        ["host", _, "pools", _, rest @ ..] => leaf(rest, POOL_SCALARS, &[]),
        ["host", _, "pcpus", _, rest @ ..] => leaf(rest, PCPU_SCALARS, &[]),
        ["host", _, rest @ ..] => leaf(rest, HOST_SCALARS, &[]),
        ["migration", _, rest @ ..] => leaf(rest, MIGRATION_SCALARS, &[]),
        _ => Err("expected host.<name>..., domain.<name>... or migration.<index>...".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_metric_path;

    #[test]
    fn spec_example_paths_are_valid() {
        for path in [
            "domain.web.wakeup_latency_ns.p99",
            "domain.ctl.deadline_miss_count",
            "domain.ctl.vcpus.0.server_underserved_count",
            "domain.web.io.xvda.io_latency_guest_ns.p50",
            "host.h0.pools.Pool-0.jain_ppm",
            "host.h0.pcpus.3.utilization_ppm",
            "migration.0.downtime_ns",
        ] {
            assert_eq!(check_metric_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn misspelt_field_is_rejected() {
        let error = check_metric_path("domain.web.wakeup_latency.p99").expect_err("no such field");
        assert!(error.starts_with("\"wakeup_latency\" is not a metric here"));
    }
}
