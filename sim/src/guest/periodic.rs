//! The `periodic` workload (`specs/scenario.md` §6.1, `specs/metrics.md` §1.7).
//!
//! Job `j` is released at `r_j = origin + phase + j·period`, where `origin` is the instant
//! the model starts (the `now_ns` given to `GuestVcpu::new`) and `phase` is drawn once per
//! vCPU. It becomes ready at `r_j + jitter_j`, needs `wcet_j` of CPU and must finish by
//! `d_j = r_j + deadline`. Release and deadline stay nominal; only readiness moves with
//! jitter.
//!
//! Jobs run one at a time in index order (FIFO): a job released while its predecessor is
//! unfinished waits and is never dropped. A job runs once it is ready and every earlier job is
//! complete. Between jobs the vCPU blocks until the next job's ready instant.
//!
//! # Invariants
//!
//! - `jobs` holds job records `0..jobs.len()` in index order; `head` is the first job not
//!   complete; every job before `head` has a completion time and every job from `head` on has
//!   none.
//! - `wcet_j` and `jitter_j` are the `j`-th draws of their streams, whatever the schedule, so
//!   every scheduler sees the same job set for the same seed.
//!
//! Console messages (`take_console`): the application logs each job that completes after
//! its deadline (`f_j > d_j`, as the metrics count a miss) as
//! `job <j> missed its deadline by <lateness> us` through `/dev/kmsg`, so the line reaches
//! hvc0 with printk's uptime stamp and is rate-limited as `/dev/kmsg` writes are: at most
//! 10 per 5 s (`guest/ratelimit.rs`). A job that never completes prints nothing.
//!
//! Left out: job abortion and budget enforcement inside the guest (jobs are never dropped);
//! and with it the guest kernel's `sched: RT throttling activated`: the spec gives the task
//! no scheduling class (SCHED_FIFO or not), and the model does not throttle the task for
//! the rest of a 1 s period once it has run 950 ms, so printing the line would claim a
//! throttling the model does not do.

use crate::guest::dist::{sample, SAMPLE_MAX};
use crate::guest::ratelimit::RateLimit;
use crate::guest::workload::{FieldStreams, GuestAction, GuestState};
use crate::rng::Stream;
use crate::scenario::model::Dist;

/// One job of a periodic task, for the metrics of `specs/metrics.md` §1.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRecord {
    /// Job number `j`, from 0.
    pub job_index: u64,
    /// Nominal release `r_j`, ns.
    pub release_ns: u64,
    /// When the job became ready (`r_j` plus its jitter), ns.
    pub ready_ns: u64,
    /// Absolute deadline `d_j = r_j + deadline`, ns.
    pub deadline_ns: u64,
    /// CPU the job needs (its `wcet` draw), ns.
    pub demand_ns: u64,
    /// Completion `f_j`, ns; `None` while unfinished.
    pub completion_ns: Option<u64>,
    /// First instant at or after `r_j` at which the vCPU runs, ns (`release_to_run_ns`).
    pub first_run_ns: Option<u64>,
}

/// The periodic model of one vCPU.
#[derive(Debug, Clone)]
pub(crate) struct PeriodicModel {
    period_ns: u64,
    deadline_ns_relative: u64,
    phase_ns: u64,
    wcet: Dist,
    wcet_stream: Stream,
    jitter: Dist,
    jitter_stream: Stream,
    /// Set by the first `start`; releases count from it.
    origin_ns: Option<u64>,
    jobs: Vec<JobRecord>,
    head_index: usize,
    demand_ns_left: u64,
    /// The first job whose `first_run_ns` is not known yet.
    first_run_pending: usize,
    /// Lines written to `/dev/kmsg` not yet handed to the console.
    console: String,
    /// `/dev/kmsg`'s rate limit for the application's open file.
    kmsg: RateLimit,
}

/// The periodic fields of a `WorkloadSpec::Periodic`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeriodicParams {
    pub(crate) period_ns: u64,
    pub(crate) wcet: Dist,
    pub(crate) deadline_ns: u64,
    pub(crate) phase: Dist,
    pub(crate) jitter: Dist,
}

impl PeriodicModel {
    /// Builds the model and draws the phase (once per vCPU).
    pub(crate) fn new(params: PeriodicParams, streams: &FieldStreams<'_>) -> Self {
        let mut phase_stream = streams.field("phase");
        Self {
            // xensim differs: a zero period (rejected by the loader) becomes 1 ns, so releases
            // always advance.
            period_ns: params.period_ns.max(1),
            deadline_ns_relative: params.deadline_ns,
            phase_ns: sample(&params.phase, &mut phase_stream),
            wcet: params.wcet,
            wcet_stream: streams.field("wcet"),
            jitter: params.jitter,
            jitter_stream: streams.field("jitter"),
            origin_ns: None,
            jobs: Vec::new(),
            head_index: 0,
            demand_ns_left: 0,
            first_run_pending: 0,
            console: String::new(),
            kmsg: RateLimit::new(),
        }
    }

    /// Starts at `now_ns`: the first start fixes the release origin.
    pub(crate) fn start(&mut self, now_ns: u64) -> GuestState {
        if self.origin_ns.is_none() {
            self.origin_ns = Some(now_ns);
        }
        self.enter_head(now_ns)
    }

    /// CPU the current job still needs.
    pub(crate) fn run_demand_ns(&self) -> Option<u64> {
        Some(self.demand_ns_left)
    }

    /// The vCPU ran `ran_ns` of the current job.
    pub(crate) fn account(&mut self, ran_ns: u64) {
        self.demand_ns_left = self.demand_ns_left.saturating_sub(ran_ns);
    }

    /// The current job completed at `now_ns`.
    pub(crate) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        self.ensure_job(self.head_index);
        let head = &mut self.jobs[self.head_index];
        assert!(head.completion_ns.is_none(), "job completed twice");
        assert!(head.ready_ns <= now_ns, "job completed before it was ready");
        head.completion_ns = Some(now_ns);
        let (job_index, deadline_ns) = (head.job_index, head.deadline_ns);
        self.head_index += 1;
        if now_ns > deadline_ns {
            self.log_miss(job_index, now_ns - deadline_ns, now_ns);
        }
        match self.enter_head(now_ns) {
            GuestState::Runnable => GuestAction::Continue,
            GuestState::Blocked { wake_at_ns } => GuestAction::Block { wake_at_ns },
        }
    }

    /// The application's line for job `job_index`, `lateness_ns` late, written at `now_ns`
    /// unless `/dev/kmsg`'s rate limit holds it back.
    fn log_miss(&mut self, job_index: u64, lateness_ns: u64, now_ns: u64) {
        if !self.kmsg.allow(now_ns) {
            return;
        }
        let lateness_us = lateness_ns / 1_000;
        self.console.push_str(&format!(
            "job {job_index} missed its deadline by {lateness_us} us\n"
        ));
    }

    /// Lines the application logged since the last call.
    pub(crate) fn take_console(&mut self) -> String {
        std::mem::take(&mut self.console)
    }

    /// Some line waits for [`Self::take_console`].
    pub(crate) fn console_pending(&self) -> bool {
        !self.console.is_empty()
    }

    /// The ready timer of the head job fired.
    pub(crate) fn on_wake(&mut self, now_ns: u64) {
        let head = self.job(self.head_index);
        assert!(
            head.ready_ns <= now_ns,
            "woken before the next job is ready"
        );
    }

    /// The vCPU started running at `now_ns`: jobs released while it was off the CPU
    /// first run now.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        self.mark_first_runs(now_ns, |_| now_ns);
    }

    /// The vCPU stopped running at `now_ns`: jobs released while it ran got the CPU at
    /// their release.
    pub(crate) fn on_run_stop(&mut self, now_ns: u64) {
        self.mark_first_runs(now_ns, |release_ns| release_ns);
    }

    fn mark_first_runs(&mut self, now_ns: u64, first_run: impl Fn(u64) -> u64) {
        if self.origin_ns.is_none() {
            return;
        }
        while self.release_ns(self.first_run_pending) <= now_ns.min(SAMPLE_MAX - 1) {
            let job_index = self.first_run_pending;
            self.ensure_job(job_index);
            let job = &mut self.jobs[job_index];
            job.first_run_ns = Some(first_run(job.release_ns));
            self.first_run_pending += 1;
        }
    }

    /// Every job record generated so far (all jobs up to the head at least).
    pub(crate) fn jobs(&self) -> &[JobRecord] {
        &self.jobs
    }

    /// Generates the records of every job released before `end_ns`, so unfinished jobs show
    /// up in the metrics, and returns all records.
    pub(crate) fn jobs_released_before(&mut self, end_ns: u64) -> &[JobRecord] {
        if self.origin_ns.is_some() {
            let end_ns = end_ns.min(SAMPLE_MAX);
            while self.release_ns(self.jobs.len()) < end_ns {
                self.ensure_job(self.jobs.len());
            }
        }
        &self.jobs
    }

    /// Makes the head job current: runnable with its demand if ready, else blocked until it is.
    fn enter_head(&mut self, now_ns: u64) -> GuestState {
        let head = self.job(self.head_index);
        self.demand_ns_left = head.demand_ns;
        if head.ready_ns <= now_ns {
            GuestState::Runnable
        } else {
            GuestState::Blocked {
                wake_at_ns: Some(head.ready_ns),
            }
        }
    }

    /// The record of job `job_index`, generating it (and its draws) if needed.
    fn job(&mut self, job_index: usize) -> JobRecord {
        self.ensure_job(job_index);
        self.jobs[job_index]
    }

    /// Generates records up to `job_index`, drawing each job's jitter and wcet in index order.
    fn ensure_job(&mut self, job_index: usize) {
        while self.jobs.len() <= job_index {
            let next_index = self.jobs.len();
            let release_ns = self.release_ns(next_index);
            let jitter_ns = sample(&self.jitter, &mut self.jitter_stream);
            let demand_ns = sample(&self.wcet, &mut self.wcet_stream);
            self.jobs.push(JobRecord {
                job_index: u64::try_from(next_index).unwrap_or(u64::MAX),
                release_ns,
                ready_ns: release_ns.saturating_add(jitter_ns).min(SAMPLE_MAX),
                deadline_ns: release_ns.saturating_add(self.deadline_ns_relative),
                demand_ns,
                completion_ns: None,
                first_run_ns: None,
            });
        }
    }

    /// `r_j = origin + phase + j·period`, clamped to [`SAMPLE_MAX`].
    fn release_ns(&self, job_index: usize) -> u64 {
        let origin_ns = self.origin_ns.expect("releases are computed after start");
        let offset = u128::try_from(job_index).unwrap_or(u128::MAX) * u128::from(self.period_ns);
        let release = u128::from(origin_ns) + u128::from(self.phase_ns) + offset;
        u64::try_from(release.min(u128::from(SAMPLE_MAX))).unwrap_or(SAMPLE_MAX)
    }
}
