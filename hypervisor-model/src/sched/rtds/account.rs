//! Server-period accounting for reports: did each period of an rtds server deliver its
//! budget to a vCPU that wanted it the whole time?
//!
//! Xen keeps no such record; this is xensim's measurement for `metrics.md` §1.7
//! (`server_period_count`, `server_underserved_count`, `server_shortfall_ns`) and for
//! invariant 20 of `schedulers.md` §8 (a vCPU without extratime never runs more than its
//! budget inside one period).
//!
//! A period is `[cur_deadline - period, cur_deadline)` as set by a replenishment. It is
//! *clean* when it was opened on time (the replenishment ran at its very start) with the
//! vCPU runnable, and the vCPU then never blocked, slept or had its parameters changed
//! before the period ended. Only clean periods can be underserved: `served < budget`,
//! where `served` is the vCPU's running time inside the period.
//!
//! # Invariants
//! - `served_ns` only counts running time inside `[start, end)`.
//! - `run_since` is `Some` exactly while the vCPU runs (from pick to the switch away).
//!
//! Left out: nothing Xen does depends on this module.

use crate::time::STime;

/// Per-vCPU server-period counters (`metrics.md` §1.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Completed server periods (blocked or offline ones included).
    pub period_count: u64,
    /// Completed clean periods in which the vCPU received less than its budget.
    pub underserved_count: u64,
    /// Sum of `budget - served` over the underserved periods, ns.
    pub shortfall_ns: i64,
}

/// The period being measured and the counters of the closed ones.
#[derive(Clone, Debug, Default)]
pub struct PeriodAcct {
    /// A period is being measured (false before the first replenishment).
    open: bool,
    /// Start of the measured period.
    start: STime,
    /// End of the measured period (the server's deadline).
    end: STime,
    /// The budget the period was opened with, ns.
    budget_ns: i64,
    /// Running time inside `[start, end)` accounted so far, ns.
    served_ns: i64,
    /// See the module doc.
    clean: bool,
    /// The budget limit does not bind in this period: parameters changed inside it, or
    /// a scheduler timer armed for an older, larger budget outlives the new one.
    limit_unenforced: bool,
    /// The period was opened at its start (a late replenishment charges budget only
    /// from the moment it ran, so invariant 20 cannot hold for that period).
    on_time: bool,
    /// The vCPU has been running since then (time not yet accounted).
    run_since: Option<STime>,
    /// Closed periods.
    stats: ServerStats,
}

impl PeriodAcct {
    /// The counters of the closed periods.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Running time accounted in the open period and its budget, ns, if invariant 20
    /// applies to it (opened on time, no parameter change inside it).
    pub fn served_checkable(&self) -> Option<(i64, i64)> {
        let checkable = self.open && self.on_time && !self.limit_unenforced;
        checkable.then_some((self.served_ns, self.budget_ns))
    }

    fn add_run(&mut self, from: STime, to: STime) {
        if !self.open {
            return;
        }
        let lo = from.max(self.start);
        let hi = to.min(self.end);
        if hi > lo {
            self.served_ns += hi.since(lo).as_ns();
        }
    }

    /// Charges the running time up to `now` to the open period.
    pub fn ran_until(&mut self, now: STime) {
        if let Some(since) = self.run_since {
            self.add_run(since, now);
            self.run_since = Some(now);
        }
    }

    /// The vCPU starts running at `now`.
    pub fn start_running(&mut self, now: STime) {
        assert!(self.run_since.is_none(), "started twice");
        self.run_since = Some(now);
    }

    /// The vCPU stops running at `now`.
    pub fn stop_running(&mut self, now: STime) {
        self.ran_until(now);
        self.run_since = None;
    }

    /// The vCPU was not runnable at some instant of the open period.
    pub fn mark_unrunnable(&mut self) {
        self.clean = false;
    }

    /// The parameters changed inside the open period.
    pub fn mark_params_changed(&mut self) {
        self.clean = false;
        self.limit_unenforced = true;
    }

    /// Xen quirk: a replenishment does not re-arm the running vCPU's scheduler timer, so
    /// after a budget decrease the vCPU may run on to the old timer in the new period.
    pub fn mark_limit_unenforced(&mut self) {
        self.limit_unenforced = true;
    }

    /// A replenishment at `now` opened `[new_start, new_end)` with `budget_ns`; closes the
    /// open period (and counts the periods skipped while the vCPU was away).
    pub fn roll(&mut self, now: STime, new_start: STime, new_end: STime, budget_ns: i64) {
        assert!(new_end > new_start, "empty server period");
        let running_since = self.run_since;
        self.ran_until(now);
        if self.open {
            let skipped = if new_start > self.end {
                new_start.since(self.end).as_ns() / new_end.since(new_start).as_ns()
            } else {
                0
            };
            let skipped_count = u64::try_from(skipped).unwrap_or(0);
            self.stats.period_count += 1 + skipped_count;
            if self.clean && self.served_ns < self.budget_ns {
                self.stats.underserved_count += 1;
                self.stats.shortfall_ns += self.budget_ns - self.served_ns;
            }
        }
        self.open = true;
        self.start = new_start;
        self.end = new_end;
        self.budget_ns = budget_ns;
        self.served_ns = 0;
        self.on_time = now == new_start;
        self.clean = self.on_time;
        self.limit_unenforced = false;
        // A late replenishment: what ran since the period began belongs to it.
        if let Some(since) = running_since {
            self.add_run(since, now);
        }
    }
}
