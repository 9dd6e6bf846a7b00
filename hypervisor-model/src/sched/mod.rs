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

pub mod affinity;
pub mod credit2;
pub mod null;
pub mod params;
pub mod rtds;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::domain::vcpu::Vcpu;
use crate::domain::DomainTable;
use crate::ids::{DomId, PcpuId, PoolId, VcpuRef};
use crate::time::{STime, Span};
use crate::trace::TraceEvent;
use params::{DomParams, PoolParams, SchedError, SchedInit, VcpuParams};

/// Why `do_schedule` chose what it chose (the decision log's reason column).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PickReason {
    /// Nothing runnable may run here: the idle vCPU.
    Idle,
    /// null: the pCPU's assigned vCPU.
    Assigned,
    /// The current vCPU keeps the pCPU (it still has the best claim).
    Continue,
    /// credit2: the current vCPU keeps the pCPU because its ratelimit has not expired.
    Ratelimit,
    /// A waiting vCPU from the runqueue (higher credit, or earlier deadline / level).
    Runq,
    /// credit2: a waiting vCPU chosen because the current one yielded.
    Yield,
    /// credit2: the current vCPU was kicked out for an idle pCPU of its soft affinity.
    SoftAffinity,
    /// rtds: a vCPU running on extratime (`priority_level > 0`).
    Extratime,
}

impl PickReason {
    /// Stable code for the trace encoding.
    pub const fn code(self) -> u8 {
        match self {
            PickReason::Idle => 0,
            PickReason::Assigned => 1,
            PickReason::Continue => 2,
            PickReason::Ratelimit => 3,
            PickReason::Runq => 4,
            PickReason::Yield => 5,
            PickReason::SoftAffinity => 6,
            PickReason::Extratime => 7,
        }
    }

    /// Decodes [`PickReason::code`].
    pub const fn from_code(code: u8) -> Option<PickReason> {
        Some(match code {
            0 => PickReason::Idle,
            1 => PickReason::Assigned,
            2 => PickReason::Continue,
            3 => PickReason::Ratelimit,
            4 => PickReason::Runq,
            5 => PickReason::Yield,
            6 => PickReason::SoftAffinity,
            7 => PickReason::Extratime,
            _ => return None,
        })
    }

    /// Lower-case name for the decision log.
    pub const fn name(self) -> &'static str {
        match self {
            PickReason::Idle => "idle",
            PickReason::Assigned => "assigned",
            PickReason::Continue => "continue",
            PickReason::Ratelimit => "ratelimit",
            PickReason::Runq => "runq",
            PickReason::Yield => "yield",
            PickReason::SoftAffinity => "soft-affinity",
            PickReason::Extratime => "extratime",
        }
    }
}

/// What `do_schedule` decided for one pCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    /// The vCPU to run next, `None` for the idle vCPU.
    pub next: Option<VcpuRef>,
    /// When to run the scheduler again, relative to now; negative = no timer.
    pub next_time: Span,
    /// Why.
    pub reason: PickReason,
    /// The chosen vCPU's credit (credit2) or remaining budget (rtds), ns; `None` for idle
    /// and for null.
    pub credit_ns: Option<i64>,
}

impl Decision {
    /// Run idle with no timer.
    pub const fn idle() -> Decision {
        Decision {
            next: None,
            next_time: Span::from_ns(-1),
            reason: PickReason::Idle,
            credit_ns: None,
        }
    }
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

    /// A vCPU the scheduler knows; panics if the core and the scheduler disagree.
    pub fn vcpu(&self, v: VcpuRef) -> &Vcpu {
        match self.domains.vcpu(v) {
            Some(vcpu) => vcpu,
            None => panic!("scheduler asked about unknown vCPU {v:?}"),
        }
    }

    /// Mutable access to a vCPU the scheduler knows (`processor`, `VPF_parked` only).
    pub fn vcpu_mut(&mut self, v: VcpuRef) -> &mut Vcpu {
        match self.domains.vcpu_mut(v) {
            Some(vcpu) => vcpu,
            None => panic!("scheduler changed unknown vCPU {v:?}"),
        }
    }

    /// `v->processor`.
    pub fn processor(&self, v: VcpuRef) -> PcpuId {
        self.vcpu(v).processor
    }

    /// Moves `v->processor` (`sched_set_res`).
    pub fn set_processor(&mut self, v: VcpuRef, cpu: PcpuId) {
        self.vcpu_mut(v).processor = cpu;
    }

    /// `unit_runnable`: no pause flag, not paused, domain not paused.
    pub fn runnable(&self, v: VcpuRef) -> bool {
        self.domains.runnable(v)
    }

    /// A vCPU the scheduler knows and whether it is runnable, from one lookup.
    pub fn vcpu_runnable(&self, v: VcpuRef) -> (&Vcpu, bool) {
        match self.domains.vcpu_runnable(v) {
            Some(found) => found,
            None => panic!("scheduler asked about unknown vCPU {v:?}"),
        }
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

    /// What the scheduler's `init` prints on the console (`printk` lines, no prefix).
    fn init_messages(&self, _out: &mut Vec<String>) {}

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

    /// `context_saved`: `prev`'s state is saved after a switch away from it. It never marks
    /// a vCPU `VPF_migrating` (the core finishes only a migration marked before the switch).
    fn context_saved(&mut self, ctx: &mut SchedCtx<'_>, prev: VcpuRef);

    /// [`Scheduler::context_saved`] when the core already read `prev`'s `processor` and
    /// whether it may run (`runnable`) in the switch's lookup of `prev`, and nothing changed
    /// either since: a scheduler that reads them may skip its own lookup. The answers must
    /// be those of `context_saved`.
    fn context_saved_known(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        prev: VcpuRef,
        processor: PcpuId,
        runnable: bool,
    ) {
        debug_assert_eq!(processor, ctx.processor(prev), "{prev:?}: stale processor");
        debug_assert_eq!(runnable, ctx.runnable(prev), "{prev:?}: stale runnability");
        self.context_saved(ctx, prev);
    }

    /// `alloc_domdata`: a domain joins the pool (creation or pool move), before its vCPUs.
    fn insert_domain(&mut self, _ctx: &mut SchedCtx<'_>, _dom: DomId) {}

    /// `free_domdata`: the domain left the pool; all its vCPUs were removed before.
    fn remove_domain(&mut self, _ctx: &mut SchedCtx<'_>, _dom: DomId) {}

    /// `adjust_affinity`: `v`'s hard or soft affinity changed (the core has stored it).
    fn affinity_changed(&mut self, _ctx: &mut SchedCtx<'_>, _v: VcpuRef) {}

    /// `XEN_DOMCTL_SCHEDOP_getinfo`.
    fn dom_params(&self, _dom: DomId) -> Result<DomParams, SchedError> {
        Ok(DomParams::Null)
    }

    /// `XEN_DOMCTL_SCHEDOP_putinfo`.
    fn set_dom_params(
        &mut self,
        _ctx: &mut SchedCtx<'_>,
        _dom: DomId,
        _params: &DomParams,
    ) -> Result<(), SchedError> {
        Err(SchedError::Invalid)
    }

    /// `XEN_DOMCTL_SCHEDOP_getvcpuinfo` (rtds only).
    fn vcpu_params(&self, _v: VcpuRef) -> Result<VcpuParams, SchedError> {
        Err(SchedError::Invalid)
    }

    /// `XEN_DOMCTL_SCHEDOP_putvcpuinfo` (rtds only).
    fn set_vcpu_params(
        &mut self,
        _ctx: &mut SchedCtx<'_>,
        _v: VcpuRef,
        _params: &VcpuParams,
    ) -> Result<(), SchedError> {
        Err(SchedError::Invalid)
    }

    /// `XEN_SYSCTL_SCHEDOP_getinfo`.
    fn pool_params(&self) -> PoolParams {
        PoolParams::Null
    }

    /// `XEN_SYSCTL_SCHEDOP_putinfo`.
    fn set_pool_params(
        &mut self,
        _ctx: &mut SchedCtx<'_>,
        _params: &PoolParams,
    ) -> Result<(), SchedError> {
        Err(SchedError::Invalid)
    }

    /// The earliest of the scheduler's own timers (credit2 cap replenishment, rtds
    /// replenishment), if any. The core re-arms the pool timer after every hook.
    fn next_timer(&self) -> Option<STime> {
        None
    }

    /// The pool timer fired at `ctx.now`: run every own timer due by then.
    fn timer_fired(&mut self, _ctx: &mut SchedCtx<'_>) {}

    /// rtds: the server-period counters of `v` for reports (`metrics.md` §1.7);
    /// `None` for other schedulers and unknown vCPUs.
    fn server_stats(&self, _v: VcpuRef) -> Option<rtds::ServerStats> {
        None
    }

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
    /// The scheduler it was created with (`xc_cpupool_create`'s `sched_id`).
    pub kind: SchedKind,
    /// Its pCPUs.
    pub cpus: CpuMask,
    /// Its scheduler.
    pub sched: Box<dyn Scheduler>,
    /// The deadline the pool timer is armed at (`Scheduler::next_timer` when last asked).
    pub timer: Option<STime>,
}

/// The schedulers a pool can be created with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SchedKind {
    /// credit2 (Xen 4.17's default).
    Credit2,
    /// The real-time deferrable server scheduler.
    Rtds,
    /// The null scheduler.
    Null,
}

impl SchedKind {
    /// Every kind, in `XEN_SCHEDULER_*` order.
    pub const ALL: [SchedKind; 3] = [SchedKind::Credit2, SchedKind::Rtds, SchedKind::Null];

    /// The scheduler's `opt_name` (`sched=` value).
    pub const fn opt_name(self) -> &'static str {
        match self {
            SchedKind::Credit2 => "credit2",
            SchedKind::Rtds => "rtds",
            SchedKind::Null => "null",
        }
    }

    /// The kind whose `opt_name` is `name`.
    pub fn from_opt_name(name: &str) -> Option<SchedKind> {
        SchedKind::ALL.into_iter().find(|k| k.opt_name() == name)
    }

    /// `XEN_SCHEDULER_*` id (domctl.h): credit2 6, rtds 8, null 9.
    pub const fn sched_id(self) -> u32 {
        match self {
            SchedKind::Credit2 => 6,
            SchedKind::Rtds => 8,
            SchedKind::Null => 9,
        }
    }

    /// A fresh scheduler instance of this kind with no pCPU yet.
    pub fn instantiate(self, init: &SchedInit<'_>) -> Box<dyn Scheduler> {
        match self {
            SchedKind::Credit2 => Box::new(credit2::Credit2Scheduler::new(init)),
            SchedKind::Rtds => Box::new(rtds::RtdsScheduler::new(init)),
            SchedKind::Null => Box::new(null::NullScheduler::new(init.nr_cpus)),
        }
    }
}
