//! Periodic real-time job metrics of a domain (`specs/metrics.md` §1.7 and the
//! release-to-run latency of §1.2), from the guest models' job records.
//!
//! A job belongs to the window if `t0 <= r_j < t1`; it is *decided* if `d_j < t1`. A decided
//! job that finished after `d_j`, or did not finish, is a miss; unfinished decided jobs are
//! counted in `miss_unfinished_count` and left out of the distributions. Unfinished jobs with
//! `d_j >= t1` are pending.
//!
//! # Invariants
//! - `decided_job_count + pending_job_count == job_count`.
//! - `deadline_miss_count <= decided_job_count`; `miss_unfinished_count <= deadline_miss_count`.

use serde::Serialize;

use super::dist::Distribution;
use crate::guest::workload::JobRecord;

/// The periodic-job fields of a domain; all `null` without a periodic workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobMetrics {
    /// Jobs released in the window.
    pub job_count: Option<u64>,
    /// Jobs of the window whose deadline is before its end.
    pub decided_job_count: Option<u64>,
    /// Decided jobs that finished late or not at all.
    pub deadline_miss_count: Option<u64>,
    /// `deadline_miss_count · 10^6 / decided_job_count` (`null` with no decided job).
    pub deadline_miss_ratio_ppm: Option<u64>,
    /// Decided jobs that never finished (their tardiness is censored).
    pub miss_unfinished_count: Option<u64>,
    /// Unfinished jobs whose deadline is at or after the window's end.
    pub pending_job_count: Option<u64>,
    /// `f_j − r_j` of finished decided jobs.
    pub response_ns: Option<Distribution>,
    /// `max(0, f_j − d_j)` of finished decided jobs.
    pub tardiness_ns: Option<Distribution>,
    /// First run at or after `r_j`, minus `r_j`, of jobs of the window that ran.
    pub release_to_run_ns: Option<Distribution>,
}

impl JobMetrics {
    /// The metrics of `records` (every vCPU of one domain) over `[start_ns, end_ns)`;
    /// all `null` when there are no records.
    pub fn from_records(records: &[JobRecord], start_ns: u64, end_ns: u64) -> JobMetrics {
        if records.is_empty() {
            return JobMetrics::default();
        }
        let in_window = || {
            records
                .iter()
                .filter(move |j| start_ns <= j.release_ns && j.release_ns < end_ns)
        };
        let mut counts = Counts::default();
        let mut responses = Vec::new();
        let mut tardiness = Vec::new();
        for job in in_window() {
            counts.jobs += 1;
            let decided = job.deadline_ns < end_ns;
            let finished = job.completion_ns.filter(|f| *f < end_ns);
            match (decided, finished) {
                (true, Some(f)) => {
                    counts.decided += 1;
                    if f > job.deadline_ns {
                        counts.missed += 1;
                    }
                    responses.push(f - job.release_ns);
                    tardiness.push(f.saturating_sub(job.deadline_ns));
                }
                (true, None) => {
                    counts.decided += 1;
                    counts.missed += 1;
                    counts.unfinished += 1;
                }
                (false, _) => counts.pending += 1,
            }
        }
        let mut release_to_run: Vec<u64> = in_window()
            .filter_map(|j| {
                j.first_run_ns
                    .filter(|t| *t < end_ns)
                    .map(|t| t - j.release_ns)
            })
            .collect();
        debug_assert_eq!(counts.decided + counts.pending, counts.jobs);
        JobMetrics {
            job_count: Some(counts.jobs),
            decided_job_count: Some(counts.decided),
            deadline_miss_count: Some(counts.missed),
            deadline_miss_ratio_ppm: (counts.decided > 0)
                .then(|| counts.missed * 1_000_000 / counts.decided),
            miss_unfinished_count: Some(counts.unfinished),
            pending_job_count: Some(counts.pending),
            response_ns: Some(Distribution::from_unordered(&mut responses, "response_ns")),
            tardiness_ns: Some(Distribution::from_unordered(&mut tardiness, "tardiness_ns")),
            release_to_run_ns: Some(Distribution::from_unordered(
                &mut release_to_run,
                "release_to_run_ns",
            )),
        }
    }
}

#[derive(Default)]
struct Counts {
    jobs: u64,
    decided: u64,
    missed: u64,
    unfinished: u64,
    pending: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn job(index: u64, completion_ms: Option<u64>) -> JobRecord {
        // Period 10 ms, deadline = period, released at 10·j ms.
        JobRecord {
            job_index: index,
            release_ns: index * 10 * MS,
            ready_ns: index * 10 * MS,
            deadline_ns: (index + 1) * 10 * MS,
            demand_ns: 2 * MS,
            completion_ns: completion_ms.map(|c| c * MS),
            first_run_ns: Some(index * 10 * MS + MS),
        }
    }

    #[test]
    fn late_and_unfinished_decided_jobs_are_misses_and_open_ones_pending() {
        // Window [0, 35 ms): jobs 0..3 released; 0 on time, 1 late, 2 unfinished (d=30 ms,
        // decided), 3 unfinished with d=40 ms (pending).
        let records = [
            job(0, Some(3)),
            job(1, Some(21)),
            job(2, None),
            job(3, None),
        ];
        let m = JobMetrics::from_records(&records, 0, 35 * MS);
        assert_eq!(m.job_count, Some(4));
        assert_eq!(m.decided_job_count, Some(3));
        assert_eq!(m.deadline_miss_count, Some(2));
        assert_eq!(m.miss_unfinished_count, Some(1));
        assert_eq!(m.pending_job_count, Some(1));
        assert_eq!(m.deadline_miss_ratio_ppm, Some(666_666));
        let tardiness = m.tardiness_ns.expect("periodic domain");
        assert_eq!(tardiness.count, 2);
        assert_eq!(tardiness.max, Some(MS));
        assert_eq!(m.release_to_run_ns.map(|d| d.p50), Some(Some(MS)));
    }

    #[test]
    fn completing_exactly_at_the_deadline_meets_it() {
        let m = JobMetrics::from_records(&[job(0, Some(10))], 0, 20 * MS);
        assert_eq!(m.deadline_miss_count, Some(0));
    }

    #[test]
    fn no_records_means_every_field_is_null() {
        assert_eq!(JobMetrics::from_records(&[], 0, MS), JobMetrics::default());
    }
}
