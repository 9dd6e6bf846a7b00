//! Scheduling: the `Scheduler` trait every pool's scheduler implements, and the context the
//! generic core hands it.
//!
//! The trait mirrors Xen's `struct scheduler` hooks (xen/common/sched/private.h):
//! `insert_unit`, `remove_unit`, `wake`, `sleep`, `yield`, `pick_resource`, `migrate`,
//! `do_schedule`, `context_saved`, plus pCPU add/remove (`switch_sched`, `deinit_pdata`).
//! With `sched-gran=cpu` one unit is one vCPU, so the trait speaks of vCPUs.
//!
//! # Invariants
//! - A scheduler only names vCPUs of domains in its pool, and pCPUs in its pool.
//! - `do_schedule` returns a runnable vCPU whose `processor` is the scheduling pCPU, or idle.

pub mod null;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::domain::DomainTable;
use crate::ids::{PcpuId, PoolId, VcpuRef};
use crate::time::{STime, Span};
use crate::trace::TraceEvent;

/// What `do_schedule` decided for one pCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    /// The vCPU to run next, `None` for the idle vCPU.
    pub next: Option<VcpuRef>,
    /// When to run the scheduler again, relative to now; negative = no timer.
    pub next_time: Span,
}

/// Everything a scheduler hook may look at or change outside its own state.
#[derive(Debug)]
pub struct SchedCtx<'a> {
    /// Current time.
    pub now: STime,
    /// All domains and vCPUs of the host (a scheduler changes only `processor`).
    pub domains: &'a mut DomainTable,
    /// The pCPUs of the pool (`cpupool_domain_master_cpumask`).
    pub pool_cpus: &'a CpuMask,
    /// The vCPU each pCPU of the host runs now (`curr_on_cpu`), `None` = idle.
    pub curr: &'a [Option<VcpuRef>],
    /// pCPUs to raise `SCHEDULE_SOFTIRQ` on (the core turns them into IPIs).
    pub tickles: &'a mut Vec<PcpuId>,
    /// Scheduler-specific trace events (assignments, queue changes).
    pub events: &'a mut Vec<TraceEvent>,
}

impl SchedCtx<'_> {
    /// `cpu_raise_softirq(cpu, SCHEDULE_SOFTIRQ)`.
    pub fn tickle(&mut self, cpu: PcpuId) {
        assert!(
            self.pool_cpus.test(cpu),
            "tickle of {cpu:?} outside the pool"
        );
        self.tickles.push(cpu);
    }

    /// The vCPU running on `cpu` now.
    pub fn curr_on(&self, cpu: PcpuId) -> Option<VcpuRef> {
        self.curr.get(cpu.index()).copied().flatten()
    }

    /// Records a scheduler trace event.
    pub fn trace(&mut self, event: TraceEvent) {
        self.events.push(event);
    }
}

/// One broken invariant, found by `check_invariants`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Violation {
    /// Short stable name of the invariant.
    pub invariant: &'static str,
    /// What was found.
    pub detail: String,
}

/// A pool's scheduler (Xen's `struct scheduler` ops).
pub trait Scheduler: core::fmt::Debug {
    /// `opt_name`: `"null"`, `"credit2"`, `"rtds"`.
    fn opt_name(&self) -> &'static str;

    /// `name`: the long name Xen prints (`"null Scheduler"`).
    fn name(&self) -> &'static str;

    /// `cpu` joins the pool (`switch_sched` / `init_pdata`).
    fn add_pcpu(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId);

    /// `cpu` leaves the pool (`deinit_pdata`); no vCPU may be assigned to it.
    fn remove_pcpu(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId);

    /// `insert_unit`: a vCPU joins the scheduler (creation or pool move).
    fn insert_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef);

    /// `remove_unit`: a vCPU leaves the scheduler (destruction or pool move).
    fn remove_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef);

    /// `wake`: the vCPU became runnable.
    fn wake(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef);

    /// `sleep`: the vCPU is no longer runnable (blocked, paused, going down).
    fn sleep(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef);

    /// `yield`: SCHEDOP_yield (no hook in null and rtds).
    fn yield_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef);

    /// `pick_resource`: where the vCPU should run.
    fn pick_cpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) -> PcpuId;

    /// `migrate`: move the vCPU to `new_cpu` (affinity change, pCPU leaving the pool).
    fn migrate(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef, new_cpu: PcpuId);

    /// `do_schedule` on `cpu`, which currently runs `prev` (`None` = idle).
    fn do_schedule(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        prev: Option<VcpuRef>,
    ) -> Decision;

    /// `context_saved`: `prev`'s state is saved after a switch away from it.
    fn context_saved(&mut self, ctx: &mut SchedCtx<'_>, prev: VcpuRef);

    /// O(n) consistency checks, run after every event in tests and under `--check`.
    fn check_invariants(
        &self,
        domains: &DomainTable,
        pool_cpus: &CpuMask,
        out: &mut Vec<Violation>,
    );
}

/// A cpupool: a set of pCPUs with one scheduler.
#[derive(Debug)]
pub struct Pool {
    /// Pool id (`Pool-0` is 0).
    pub id: PoolId,
    /// Pool name.
    pub name: String,
    /// Its pCPUs.
    pub cpus: CpuMask,
    /// Its scheduler.
    pub sched: Box<dyn Scheduler>,
}

/// The schedulers a pool can be created with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SchedKind {
    /// The null scheduler.
    Null,
}

impl SchedKind {
    /// The scheduler's `opt_name` (`sched=` value).
    pub const fn opt_name(self) -> &'static str {
        match self {
            SchedKind::Null => "null",
        }
    }

    /// A fresh scheduler instance of this kind for a host of `nr_cpus` pCPUs.
    pub fn instantiate(self, nr_cpus: u32) -> Box<dyn Scheduler> {
        match self {
            SchedKind::Null => Box::new(null::NullScheduler::new(nr_cpus)),
        }
    }
}
