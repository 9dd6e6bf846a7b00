//! `xensim bench`: runs reference scenarios and measures the engine (DESIGN.md "Reference
//! scenarios for performance"): records (core inputs + core events) and queue events per wall
//! second, the virtual-to-wall ratio, the charged scheduler decision cost (`metrics.md`
//! §1.12(a)), the peak RSS and the run hash.
//!
//! The wall clock is read only around a whole run, never inside it: the run itself stays
//! deterministic and its hash is the one `xensim run` prints. The wall-clock cost of one
//! scheduler decision (§1.12(b)) is measured by the criterion bench `benches/benches/sched.rs`,
//! not here.
//!
//! # Invariants
//! - Runs use no trace file and no invariant checker (a bench measures the engine alone).

use std::path::Path;

use crate::app::{self, AppError};
use crate::record::{Recorder, RunHash};
use crate::run::{self, RunOptions};

/// One scenario's measurement.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// Scenario file name.
    pub scenario: String,
    /// Pool-0's scheduler on the first host.
    pub scheduler: String,
    /// Virtual time simulated, ns.
    pub virtual_ns: u64,
    /// Wall time of the run (boot to end, loading excluded), ns.
    pub wall_ns: u64,
    /// CPU time of the running thread during the run, ns (`/proc/thread-self/schedstat`), if
    /// readable: on a shared machine the fairer measure.
    pub cpu_ns: Option<u64>,
    /// Trace records: core inputs plus core events.
    pub record_count: u64,
    /// Queue events processed.
    pub event_count: u64,
    /// Charged decision cost (overhead per decision) of each pCPU with decisions, sorted.
    pub charged_ns_per_decision: Vec<u64>,
    /// Peak resident set of the process during the run, KiB (`VmHWM`), if readable.
    pub peak_rss_kib: Option<u64>,
    /// The run hash.
    pub hash: RunHash,
}

impl BenchRow {
    /// Records per wall second.
    pub fn records_per_s(&self) -> u64 {
        per_second(self.record_count, self.wall_ns)
    }

    /// Queue events per wall second.
    pub fn events_per_s(&self) -> u64 {
        per_second(self.event_count, self.wall_ns)
    }

    /// Records per CPU second of the running thread.
    pub fn records_per_cpu_s(&self) -> Option<u64> {
        self.cpu_ns
            .map(|cpu_ns| per_second(self.record_count, cpu_ns))
    }

    /// Virtual ns per wall ns, in thousandths (1000 = real time).
    pub fn virtual_to_wall_milli(&self) -> u64 {
        ratio_milli(self.virtual_ns, self.wall_ns)
    }

    /// Virtual ns per CPU ns of the running thread, in thousandths.
    pub fn virtual_to_cpu_milli(&self) -> Option<u64> {
        self.cpu_ns
            .map(|cpu_ns| ratio_milli(self.virtual_ns, cpu_ns))
    }

    /// Nearest-rank percentile `p` (in percent) of the per-pCPU charged decision cost.
    pub fn charged_percentile_ns(&self, p: u64) -> Option<u64> {
        nearest_rank(&self.charged_ns_per_decision, p)
    }
}

fn per_second(count: u64, wall_ns: u64) -> u64 {
    let per_s = u128::from(count) * 1_000_000_000 / u128::from(wall_ns.max(1));
    u64::try_from(per_s).unwrap_or(u64::MAX)
}

fn ratio_milli(virtual_ns: u64, wall_ns: u64) -> u64 {
    let milli = u128::from(virtual_ns) * 1000 / u128::from(wall_ns.max(1));
    u64::try_from(milli).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted `values` (`metrics.md` §1.3).
fn nearest_rank(values: &[u64], p: u64) -> Option<u64> {
    let n = u64::try_from(values.len()).ok()?;
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).max(1);
    values.get(usize::try_from(rank - 1).ok()?).copied()
}

/// Loads and runs the scenario at `path` once and measures it.
pub fn run_one(path: &Path, seed: Option<u64>) -> Result<BenchRow, AppError> {
    let scenario = app::load(path, seed, false)?;
    reset_peak_rss();
    let cpu_ns_before = thread_cpu_ns();
    // Wall time is what this command measures; it never reaches the run or its hash.
    #[allow(clippy::disallowed_types)]
    let started = std::time::Instant::now();
    let outcome = run::run(&scenario, &RunOptions::default(), Recorder::new())?;
    let wall_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let cpu_ns = thread_cpu_ns()
        .zip(cpu_ns_before)
        .map(|(after, before)| after.saturating_sub(before));
    let peak_rss_kib = peak_rss_kib();
    let metrics = &outcome.sinks_report.metrics;
    let mut charged_ns_per_decision: Vec<u64> = metrics
        .hosts
        .iter()
        .flat_map(|h| &h.pcpus)
        .filter(|p| p.sched_decision_count > 0)
        .map(|p| p.overhead_ns / p.sched_decision_count)
        .collect();
    charged_ns_per_decision.sort_unstable();
    let scheduler = scenario
        .hosts
        .first()
        .map(|h| h.scheduler.as_str().to_string())
        .unwrap_or_default();
    Ok(BenchRow {
        scenario: scenario.file_name.clone(),
        scheduler,
        virtual_ns: outcome.end_ns,
        wall_ns,
        cpu_ns,
        record_count: outcome.record_count,
        event_count: outcome.event_count,
        charged_ns_per_decision,
        peak_rss_kib,
        hash: outcome.hash,
    })
}

/// Resets the process's peak RSS (`VmHWM`) so the next reading covers one run; Linux's
/// `clear_refs` value 5. Without it the peak is the process's since it started.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Time the calling thread has run on a CPU, ns: the first field of
/// `/proc/thread-self/schedstat`.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `VmHWM` of `/proc/self/status`, KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The table header of [`render_row`].
pub const TABLE_HEADER: &str =
    "scenario                 sched    virt_s  wall_s   cpu_s  records/s  \
     records/cpu_s   events/s  virt/wall   virt/cpu  charged_ns p50/p99  peak_rss_MiB  run hash";

/// One line of the table.
pub fn render_row(row: &BenchRow) -> String {
    let milli = |v: u64| format!("{}.{:03}", v / 1000, v % 1000);
    let charged = match (row.charged_percentile_ns(50), row.charged_percentile_ns(99)) {
        (Some(p50), Some(p99)) => format!("{p50}/{p99}"),
        _ => "-".to_string(),
    };
    let rss = row
        .peak_rss_kib
        .map_or_else(|| "-".to_string(), |kib| (kib / 1024).to_string());
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    format!(
        "{:<24} {:<8} {:>6} {:>7} {:>7} {:>10} {:>16} {:>10} {:>10} {:>10}  {:>18}  {:>12}  {}",
        row.scenario,
        row.scheduler,
        milli(row.virtual_ns / 1_000_000),
        milli(row.wall_ns / 1_000_000),
        or_dash(row.cpu_ns.map(|ns| milli(ns / 1_000_000))),
        row.records_per_s(),
        or_dash(row.records_per_cpu_s().map(|v| v.to_string())),
        row.events_per_s(),
        milli(row.virtual_to_wall_milli()),
        or_dash(row.virtual_to_cpu_milli().map(milli)),
        charged,
        rss,
        row.hash
    )
}

#[cfg(test)]
mod tests {
    use super::{nearest_rank, per_second, ratio_milli};

    #[test]
    fn nearest_rank_of_four_values_p50_is_the_second() {
        assert_eq!(nearest_rank(&[10, 20, 30, 40], 50), Some(20));
        assert_eq!(nearest_rank(&[10, 20, 30, 40], 99), Some(40));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn three_virtual_seconds_in_one_wall_second_is_ratio_3000() {
        assert_eq!(ratio_milli(3_000_000_000, 1_000_000_000), 3000);
        assert_eq!(per_second(10, 500_000_000), 20);
        assert_eq!(per_second(10, 0), 10_000_000_000);
    }
}
