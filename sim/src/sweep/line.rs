//! One seed's result line of a sweep (`specs/metrics.md` §3, §4.1): the seed, its trace hash,
//! its exit status and failures, the metric scalars a sweep aggregates, and the samples it
//! pools. A sweep summary is computed from these lines alone, so merging shard outputs gives
//! the same summary as one machine.
//!
//! Scalar names are metric paths (`domain.web.running_ns`, `host.h0.idle_ns`,
//! `pool.h0.Pool-0.jain_ppm`, `window.length_ns`); sample sets are keyed by distribution path
//! (`domain.web.wakeup_latency_ns`) and stored as ascending `[value, count]` runs.
//!
//! # Invariants
//! - `scalars` and `samples` are `BTreeMap`s: the line's text is a function of its content.
//! - Every sample run has `count >= 1` and values strictly ascend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::app::RunReport;
use crate::report::metrics::{DomainMetrics, HostMetrics, Metrics};

/// The result of one seed, one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The run hash (16 hex digits), or empty when the run could not finish.
    pub trace_hash: String,
    /// 0 ok, 1 an expectation, `expect_rc` or invariant check failed, or the run stopped.
    pub exit: u8,
    /// What failed, one line each.
    pub failures: Vec<String>,
    /// Aggregated scalars by metric path.
    pub scalars: BTreeMap<String, i64>,
    /// Pooled sample sets by distribution path, as ascending `[value, count]` runs.
    pub samples: BTreeMap<String, Vec<[u64; 2]>>,
}

impl SeedResult {
    /// A seed whose run stopped with `error` before producing metrics.
    pub fn stopped(seed: u64, error: &str) -> SeedResult {
        SeedResult {
            seed,
            trace_hash: String::new(),
            exit: 1,
            failures: vec![format!("run stopped: {error}")],
            scalars: BTreeMap::new(),
            samples: BTreeMap::new(),
        }
    }

    /// The line of a finished run.
    pub fn from_report(report: &RunReport) -> SeedResult {
        let mut failures = Vec::new();
        if let Some(f) = &report.outcome.invariant_failure {
            for v in &f.violations {
                failures.push(format!(
                    "invariant {} violated after event {} at t={} ns on {}: {}",
                    v.invariant, f.event_index, f.time_ns, f.host, v.detail
                ));
            }
        }
        failures.extend(report.expect_failures.iter().map(ToString::to_string));
        failures.extend(report.rc_failures.iter().cloned());
        let metrics = &report.outcome.sinks_report.metrics;
        let exit = u8::try_from(report.exit_code()).unwrap_or(1);
        SeedResult {
            seed: report.scenario.sim.seed,
            trace_hash: report.outcome.hash.to_string(),
            exit,
            failures,
            scalars: scalars_of(metrics),
            samples: samples_of(metrics),
        }
    }

    /// The compact JSON line (no trailing newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a seed result holds only integers and strings")
    }

    /// Expands the sample runs of `path` into an ascending vector.
    pub fn sample_values(&self, path: &str) -> Vec<u64> {
        let mut values = Vec::new();
        for &[value, count] in self.samples.get(path).map_or(&[][..], Vec::as_slice) {
            for _ in 0..count {
                values.push(value);
            }
        }
        values
    }

    /// Checks what a line read back from a file must hold; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for (path, runs) in &self.samples {
            let mut previous: Option<u64> = None;
            for &[value, count] in runs {
                if count == 0 || previous.is_some_and(|p| p >= value) {
                    return Err(format!(
                        "samples `{path}` must be ascending [value, count] runs with count >= 1"
                    ));
                }
                previous = Some(value);
            }
        }
        if self.exit > 2 {
            return Err(format!("exit status {} is not 0, 1 or 2", self.exit));
        }
        Ok(())
    }
}

/// Saturating conversion: metrics are `u64`, lines hold `i64` (a value past `i64::MAX` ns
/// would be 292 years of virtual time).
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Domains keyed by name; a later domain reusing a name gets `name#2`, `name#3`, ...
fn domain_keys(metrics: &Metrics) -> Vec<String> {
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    metrics
        .domains
        .iter()
        .map(|d| {
            let count = seen.entry(d.name.as_str()).or_insert(0);
            *count += 1;
            if *count == 1 {
                d.name.clone()
            } else {
                format!("{}#{count}", d.name)
            }
        })
        .collect()
}

fn scalars_of(metrics: &Metrics) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    out.insert("window.start_ns".to_owned(), int(metrics.window.start_ns));
    out.insert("window.end_ns".to_owned(), int(metrics.window.end_ns));
    out.insert("window.length_ns".to_owned(), int(metrics.window.length_ns));
    for host in &metrics.hosts {
        host_scalars(host, &mut out);
    }
    for (domain, key) in metrics.domains.iter().zip(domain_keys(metrics)) {
        domain_scalars(metrics, domain, &format!("domain.{key}"), &mut out);
    }
    fairness_scalars(metrics, &mut out);
    out
}

/// §1.4–1.6 of contended pools: `pool.<host>.<pool>.jain_ppm`, `.jain_domain_ppm`,
/// `.max_rel_dev_ppm`, and per domain `entitled_ns`, `fair_actual_ns` and `norm_share_ppm`.
fn fairness_scalars(metrics: &Metrics, out: &mut BTreeMap<String, i64>) {
    for pool in crate::report::fairness::pools(metrics) {
        let prefix = format!("pool.{}.{}", pool.host, pool.pool);
        let fields = [
            ("jain_ppm", pool.jain_ppm),
            ("jain_domain_ppm", pool.jain_domain_ppm),
            ("max_rel_dev_ppm", pool.max_rel_dev_ppm),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                out.insert(format!("{prefix}.{name}"), int(value));
            }
        }
        for (name, actual_ns, entitled_ns) in &pool.domains {
            out.insert(format!("domain.{name}.entitled_ns"), int(*entitled_ns));
            // The actual time fairness compares (rtds: capped at the reservation).
            out.insert(format!("domain.{name}.fair_actual_ns"), int(*actual_ns));
            let norm = u128::from(*actual_ns) * 1_000_000 / u128::from((*entitled_ns).max(1));
            out.insert(
                format!("domain.{name}.norm_share_ppm"),
                int(u64::try_from(norm).unwrap_or(u64::MAX)),
            );
        }
    }
}

fn host_scalars(host: &HostMetrics, out: &mut BTreeMap<String, i64>) {
    let sum = |pick: fn(&crate::report::metrics::PcpuMetrics) -> u64| {
        int(host.pcpus.iter().map(pick).sum())
    };
    let prefix = format!("host.{}", host.name);
    let fields: [(&str, i64); 7] = [
        ("online_ns", sum(|p| p.online_ns)),
        ("busy_ns", sum(|p| p.busy_ns)),
        ("idle_ns", sum(|p| p.idle_ns)),
        ("overhead_ns", sum(|p| p.overhead_ns)),
        ("context_switch_count", sum(|p| p.context_switch_count)),
        ("vcpu_switch_count", sum(|p| p.vcpu_switch_count)),
        ("sched_decision_count", sum(|p| p.sched_decision_count)),
    ];
    for (name, value) in fields {
        out.insert(format!("{prefix}.{name}"), value);
    }
}

fn domain_scalars(
    metrics: &Metrics,
    domain: &DomainMetrics,
    prefix: &str,
    out: &mut BTreeMap<String, i64>,
) {
    let mut put = |name: &str, value: u64| {
        out.insert(format!("{prefix}.{name}"), int(value));
    };
    put("running_ns", domain.running_ns);
    put("runnable_ns", domain.runnable_ns);
    put("blocked_ns", domain.blocked_ns);
    put("offline_ns", domain.offline_ns);
    let vcpu_sum = |pick: fn(&crate::report::metrics::VcpuMetrics) -> u64| {
        domain.vcpus.iter().map(pick).sum::<u64>()
    };
    put("migration_pcpu_count", vcpu_sum(|v| v.migration_pcpu_count));
    put("preemption_count", vcpu_sum(|v| v.preemption_count));
    put("dispatch_count", vcpu_sum(|v| v.dispatch_count));
    let wake = &domain.wakeup_latency_ns;
    put("wakeup_latency_ns.count", wake.count);
    let percentiles = [
        ("p50", wake.p50),
        ("p90", wake.p90),
        ("p99", wake.p99),
        ("max", wake.max),
    ];
    for (name, value) in percentiles {
        if let Some(value) = value {
            put(&format!("wakeup_latency_ns.{name}"), value);
        }
    }
    if let Some(capacity_ns) = pool_capacity_ns(metrics, domain) {
        let share = u128::from(domain.running_ns) * 1_000_000 / u128::from(capacity_ns);
        put("share_ppm", u64::try_from(share).unwrap_or(u64::MAX));
    }
    let jobs = &domain.jobs;
    if let (Some(missed), Some(decided)) = (jobs.deadline_miss_count, jobs.decided_job_count) {
        put("deadline_miss_count", missed);
        put("decided_job_count", decided);
    }
}

/// `C_ns` of the domain's pool on its host (§1.4); `None` if unknown or zero.
fn pool_capacity_ns(metrics: &Metrics, domain: &DomainMetrics) -> Option<u64> {
    let pool = domain.pool.as_deref()?;
    let host = metrics.hosts.iter().find(|h| h.name == domain.host)?;
    let capacity_ns = host.pools.iter().find(|p| p.name == pool)?.capacity_ns;
    (capacity_ns > 0).then_some(capacity_ns)
}

fn samples_of(metrics: &Metrics) -> BTreeMap<String, Vec<[u64; 2]>> {
    metrics
        .domains
        .iter()
        .zip(domain_keys(metrics))
        .map(|(d, key)| {
            let path = format!("domain.{key}.wakeup_latency_ns");
            (path, runs_of(&d.wakeup_samples_ns))
        })
        .collect()
}

/// Ascending `[value, count]` runs of ascending `sorted`.
fn runs_of(sorted: &[u64]) -> Vec<[u64; 2]> {
    let mut runs: Vec<[u64; 2]> = Vec::new();
    for &value in sorted {
        match runs.last_mut() {
            Some(last) if last[0] == value => last[1] += 1,
            Some(last) => {
                assert!(last[0] < value, "samples arrive sorted");
                runs.push([value, 1]);
            }
            None => runs.push([value, 1]),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_sorted_samples_count_repeats() {
        assert_eq!(runs_of(&[1, 1, 2, 5, 5, 5]), vec![[1, 2], [2, 1], [5, 3]]);
        assert_eq!(runs_of(&[]), Vec::<[u64; 2]>::new());
    }

    #[test]
    fn line_round_trips_through_json() {
        let mut result = SeedResult::stopped(7, "boom");
        result.scalars.insert("window.length_ns".to_owned(), 10);
        result.samples.insert(
            "domain.a.wakeup_latency_ns".to_owned(),
            vec![[3, 2], [9, 1]],
        );

        let back: SeedResult = serde_json::from_str(&result.to_line()).unwrap();

        assert_eq!(back, result);
        assert_eq!(
            back.sample_values("domain.a.wakeup_latency_ns"),
            vec![3, 3, 9]
        );
    }

    #[test]
    fn validate_rejects_unsorted_or_empty_runs() {
        let mut result = SeedResult::stopped(1, "x");
        result.samples.insert(
            "domain.a.wakeup_latency_ns".to_owned(),
            vec![[9, 1], [3, 1]],
        );

        result.validate().unwrap_err();
        result
            .samples
            .insert("domain.a.wakeup_latency_ns".to_owned(), vec![[3, 0]]);
        result.validate().unwrap_err();
    }
}
