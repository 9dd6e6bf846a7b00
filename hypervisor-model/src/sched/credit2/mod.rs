//! The credit2 scheduler: per-pool private data, per-domain and per-vCPU data, and the
//! `Scheduler` hooks, each delegating to the file that owns the algorithm.
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17 (`csched2_init`, `csched2_alloc_udata`,
//! `csched2_unit_insert`, `csched2_unit_remove`, `csched2_unit_wake`, `csched2_unit_sleep`,
//! `csched2_unit_yield`, `csched2_context_saved`, `csched2_aff_cntl`, `csched2_sys_cntl`);
//! spec `schedulers.md` §2. Files:
//! - `runqueue.rs`: runqueue arrangement, pCPU add/remove, runq order, max weight, load;
//! - `masks.rs`: the idle, tickled and smt_idle masks of a runqueue;
//! - `schedule.rs`: credit burn and reset, `runq_candidate`, `csched2_schedule`, slices;
//! - `fast.rs`: the short paths of `csched2_schedule` for a mostly idle host;
//! - `tickle.rs`: `runq_tickle` and the preemption score;
//! - `hint.rs`: the per-pCPU hint of the running unit;
//! - `hint_order.rs`: each runqueue's pCPUs in order of their hint's entry time;
//! - `place.rs`: `csched2_res_pick`, migration, `balance_load`;
//! - `cap.rs`: caps, budgets, parking, replenishment, domain parameters;
//! - `check.rs`: the invariant checker.
//!
//! # Invariants
//! - Every vCPU the scheduler knows is assigned to exactly one runqueue (`svc` list).
//! - A vCPU is on at most one of: its runqueue's `runq`, its domain's parked list.
//! - Credits stay within `[CREDIT_MIN, CREDIT_INIT + CARRYOVER_MAX]` plus the migration
//!   compensations a unit got since its last credit reset (Xen does not bound those).
//! - `pcpu_curr` is only a hint: a use checks that it names the running vCPU and that the
//!   hinted unit is that vCPU's (save the tickle scan's time-only drop, which relies on
//!   the next point). Outside `schedule`, which writes it last, it names what the core
//!   runs on the pCPU or the pCPU runs nothing. While it names the running vCPU, its time
//!   is that vCPU's runstate entry time (the instant `schedule` picked it, or kept it
//!   running).
//!
//! xensim differs: the idle vCPUs have no unit (`None` stands for idle, whose credit is
//! `IDLE_CREDIT`); trylocks always succeed (spec §9.3); there is no tasklet work, so the
//! tasklet branches of `csched2_schedule` never run; every `NOW()` of one event is `ctx.now`.

mod cap;
mod check;
mod doms;
mod fast;
mod hint;
mod hint_order;
mod masks;
mod place;
mod runqueue;
mod schedule;
mod tickle;

#[cfg(test)]
mod tests_behaviour;
#[cfg(test)]
mod tests_fast;
#[cfg(test)]
mod tests_rules;

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::params::{
    Credit2Runqueue, DomParams, PoolParams, SchedError, SchedInit, SchedOpts, RATELIMIT_MAX_US,
    RATELIMIT_MIN_US,
};
use super::{Decision, SchedCtx, Scheduler, Violation};
use crate::cpumask::CpuMask;
use crate::domain::DomainTable;
use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::time::STime;
use crate::trace::TraceEvent;
pub(crate) use hint::CurrHint;
pub use runqueue::Runqueue;

/// `CSCHED2_DEFAULT_WEIGHT`.
pub const DEFAULT_WEIGHT: u16 = 256;
/// `CSCHED2_MIN_TIMER`, ns.
pub const MIN_TIMER_NS: i64 = 500_000;
/// `CSCHED2_CREDIT_INIT`, ns of credit.
pub const CREDIT_INIT: i32 = 10_000_000;
/// `CSCHED2_CREDIT_MIN`.
pub const CREDIT_MIN: i32 = -CREDIT_INIT;
/// `CSCHED2_IDLE_CREDIT`.
pub const IDLE_CREDIT: i32 = CREDIT_MIN - 1;
/// `CSCHED2_CARRYOVER_MAX`.
pub const CARRYOVER_MAX: i32 = 500_000;
/// `CSCHED2_MIGRATE_COMPENSATION`, ns of credit.
pub const MIGRATE_COMPENSATION: i32 = 50_000;
/// `CSCHED2_RATELIMIT_TICKLE_TOLERANCE`, ns.
pub const RATELIMIT_TICKLE_TOLERANCE_NS: i64 = 50_000;
/// `CSCHED2_CREDIT_RESET`.
pub const CREDIT_RESET: i32 = 0;
/// `CSCHED2_MAX_TIMER`, ns.
pub const MAX_TIMER_NS: i64 = CREDIT_INIT as i64;
/// `LOADAVG_GRANULARITY_SHIFT`.
pub const LOADAVG_GRANULARITY_SHIFT: u32 = 10;
/// `LOADAVG_WINDOW_SHIFT`.
pub const LOADAVG_WINDOW_SHIFT: u32 = 30;
/// `LOADAVG_PRECISION_SHIFT_MIN`.
pub const LOADAVG_PRECISION_SHIFT_MIN: u32 = 4;
/// The budget of an uncapped vCPU (`STIME_MAX`).
pub const BUDGET_NONE: i64 = i64::MAX;

const _: () = assert!(IDLE_CREDIT < CREDIT_MIN);
const _: () = assert!(CARRYOVER_MAX as i64 == MIN_TIMER_NS);
const _: () = assert!(MAX_TIMER_NS > MIN_TIMER_NS);

/// `CSFLAG_scheduled`: picked, and not yet context-saved.
pub(crate) const FLAG_SCHEDULED: u8 = 1 << 0;
/// `CSFLAG_delayed_runq_add`: re-queue in `context_saved`.
pub(crate) const FLAG_DELAYED_RUNQ_ADD: u8 = 1 << 1;
/// `CSFLAG_runq_migrate_request`: `migrate_rqd` holds a load-balancing target.
pub(crate) const FLAG_MIGRATE_REQUEST: u8 = 1 << 2;
/// `CSFLAG_unit_yield`.
pub(crate) const FLAG_YIELD: u8 = 1 << 3;
/// `CSFLAG_pinned`: hard affinity is exactly one pCPU.
pub(crate) const FLAG_PINNED: u8 = 1 << 4;

/// Per-vCPU data (`struct csched2_unit`).
// `repr(C)` keeps what burning, sorting and tickling read in the first cache line.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Unit {
    /// The vCPU.
    pub v: VcpuRef,
    /// Credit, ns (an `int` in Xen).
    pub credit: i32,
    /// Credit added by migration compensation since the unit's last credit reset, ns: the
    /// only way credit rises between resets (checker bound).
    pub migrate_bonus: i32,
    /// Weight (the domain's).
    pub weight: u32,
    /// Remainder of the last burn division.
    pub residual: u32,
    /// `CSFLAG_*`.
    pub flags: u8,
    /// On its runqueue's `runq`.
    pub on_runq: bool,
    /// On its domain's parked list.
    pub parked: bool,
    /// Since when credit is burnt, ns.
    pub start_time: i64,
    /// Cap budget left, ns (`BUDGET_NONE` = uncapped).
    pub budget: i64,
    /// Runqueue id it is assigned to (`svc->rqd`).
    pub rqd: Option<usize>,
    /// The pCPU tickled to pick this vCPU up.
    pub tickled_cpu: Option<PcpuId>,
    /// Last load update, in `now >> 10` units.
    pub load_last_update: i64,
    /// Decaying load, fixed point with P fraction bits.
    pub avgload: i64,
    /// Budget taken from the domain at a time, ns.
    pub budget_quota: i64,
    /// Load-balancing target runqueue id.
    pub migrate_rqd: Option<usize>,
}

impl Unit {
    /// `has_cap`.
    pub fn has_cap(&self) -> bool {
        self.budget != BUDGET_NONE
    }

    fn flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Per-domain data (`struct csched2_dom`).
#[derive(Clone, Debug)]
pub struct Dom {
    /// Weight, 1..=65535.
    pub weight: u16,
    /// Cap, percent (0 = none).
    pub cap: u16,
    /// Units of the domain.
    pub nr_units: u16,
    /// Budget per period, ns.
    pub tot_budget: i64,
    /// Budget left in the pool, ns.
    pub budget: i64,
    /// Next replenishment, ns.
    pub next_repl: i64,
    /// The replenishment timer is armed (at `next_repl`).
    pub timer_armed: bool,
    /// Parked units; the list head is the LAST element (pushes at the head are pushes).
    pub parked: Vec<usize>,
    /// Unit index of each vCPU, by vCPU id.
    pub units: Vec<Option<usize>>,
}

/// Effective options of one instance (`csched2_private` plus the global `opt_*`).
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    /// `prv->ratelimit_us`.
    pub ratelimit_us: u32,
    /// `CSCHED2_MIGRATE_RESIST`, ns.
    pub migrate_resist_ns: i64,
    /// `opt_runqueue`.
    pub runqueue: Credit2Runqueue,
    /// `opt_max_cpus_runqueue`.
    pub max_cpus_runqueue: u32,
    /// `prv->load_precision_shift` (P).
    pub precision_shift: u32,
    /// `opt_load_window_shift`.
    pub window_shift_opt: u32,
    /// `prv->load_window_shift` (W = opt - 10).
    pub window_shift: u32,
    /// `opt_underload_balance_tolerance`.
    pub balance_under: i32,
    /// `opt_overload_balance_tolerance`.
    pub balance_over: i32,
    /// `opt_cap_period`, ms.
    pub cap_period_ms: u32,
}

impl Opts {
    /// `CSCHED2_BDGT_REPL_PERIOD`, ns.
    pub fn period_ns(&self) -> i64 {
        i64::from(self.cap_period_ms) * 1_000_000
    }

    /// `MICROSECS(prv->ratelimit_us)`.
    pub fn ratelimit_ns(&self) -> i64 {
        i64::from(self.ratelimit_us) * 1_000
    }
}

/// `csched2_global_init`: resets out-of-range boot options, returning the warnings Xen
/// prints (once per boot, before "Using scheduler"; the core decides where they go).
pub fn global_init(opts: &mut SchedOpts, out: &mut Vec<String>) {
    if opts.credit2_load_precision_shift < LOADAVG_PRECISION_SHIFT_MIN {
        out.push(format!(
            "WARNING: csched2_global_init: opt_load_precision_shift {} below min {}, resetting",
            opts.credit2_load_precision_shift, LOADAVG_PRECISION_SHIFT_MIN
        ));
        opts.credit2_load_precision_shift = LOADAVG_PRECISION_SHIFT_MIN;
    }
    if opts.credit2_load_window_shift <= LOADAVG_GRANULARITY_SHIFT {
        out.push(format!(
            "WARNING: csched2_global_init: opt_load_window_shift {} too short, resetting",
            opts.credit2_load_window_shift
        ));
        opts.credit2_load_window_shift = LOADAVG_WINDOW_SHIFT;
    }
    if i64::from(opts.credit2_cap_period_ms) * 1_000_000 < MIN_TIMER_NS {
        out.push(format!(
            "WARNING: csched2_global_init: opt_cap_period {} too small, resetting",
            opts.credit2_cap_period_ms
        ));
        opts.credit2_cap_period_ms = 10;
    }
}

/// The credit2 scheduler of one pool (`struct csched2_private` and everything below it).
#[derive(Debug)]
pub struct Credit2Scheduler {
    pub(crate) nr_cpus: u32,
    pub(crate) opts: Opts,
    /// `(socket, core, node)` of each host pCPU.
    pub(crate) topo: Vec<(u32, u32, u32)>,
    /// `per_cpu(cpu_sibling_mask)` of each host pCPU.
    pub(crate) host_siblings: Vec<CpuMask>,
    /// Runqueues by id; `None` = id unused. Walking in index order is Xen's `rql` order.
    pub(crate) rqs: Vec<Option<Runqueue>>,
    /// `csched2_pcpu(cpu)->rqd` (runqueue id).
    pub(crate) pcpu_rq: Vec<Option<usize>>,
    /// `csched2_pcpu(cpu)->sibling_mask`: siblings in the same runqueue.
    pub(crate) pcpu_siblings: Vec<CpuMask>,
    /// `prv->initialized`.
    pub(crate) initialized: CpuMask,
    /// Units by index; `None` = free slot.
    pub(crate) units: Vec<Option<Unit>>,
    pub(crate) free_units: Vec<usize>,
    pub(crate) doms: doms::DomSlots,
    /// Armed replenishment timers by (deadline, domain).
    pub(crate) timers: BTreeSet<(i64, DomId)>,
    /// What each pCPU was last told to run (`None` = idle): a hint checked against the
    /// running vCPU on every use (the core's `curr` stays the truth).
    pub(crate) pcpu_curr: Vec<hint::HintSlot>,
    /// What each pCPU switched away from at its last decision (vCPU and unit), a hint
    /// for the `context_saved` that follows the switch, checked like `pcpu_curr`.
    pub(crate) pcpu_prev: Vec<Option<(VcpuRef, usize)>>,
    /// `balance_load`'s candidate pulls (unit, may move, load), kept to reuse the buffer.
    pub(crate) scratch_pulls: Vec<(usize, bool, i64)>,
}

impl Credit2Scheduler {
    /// A credit2 instance (`csched2_init`) with no pCPU yet.
    pub fn new(init: &SchedInit<'_>) -> Credit2Scheduler {
        let mut raw = *init.opts;
        global_init(&mut raw, &mut Vec::new());
        let opts = Opts {
            ratelimit_us: raw.ratelimit_us,
            migrate_resist_ns: i64::from(raw.credit2_migrate_resist_us) * 1_000,
            runqueue: raw.credit2_runqueue,
            max_cpus_runqueue: raw.credit2_max_cpus_runqueue,
            precision_shift: raw.credit2_load_precision_shift.min(40),
            window_shift_opt: raw.credit2_load_window_shift,
            window_shift: (raw.credit2_load_window_shift - LOADAVG_GRANULARITY_SHIFT).min(62),
            balance_under: raw.credit2_balance_under,
            balance_over: raw.credit2_balance_over,
            cap_period_ms: raw.credit2_cap_period_ms,
        };
        let slots = usize::try_from(init.nr_cpus).unwrap_or(0);
        let topo: Vec<(u32, u32, u32)> = (0..slots)
            .map(|i| {
                init.topo
                    .get(i)
                    .map_or((0, u32::try_from(i).unwrap_or(0), 0), |t| {
                        (t.socket, t.core, t.node)
                    })
            })
            .collect();
        let host_siblings = (0..init.nr_cpus)
            .filter_map(PcpuId::new)
            .map(|cpu| init.siblings(cpu))
            .collect();
        Credit2Scheduler {
            nr_cpus: init.nr_cpus,
            opts,
            topo,
            host_siblings,
            rqs: Vec::new(),
            pcpu_rq: alloc::vec![None; slots],
            pcpu_siblings: alloc::vec![CpuMask::empty(init.nr_cpus); slots],
            initialized: CpuMask::empty(init.nr_cpus),
            units: Vec::new(),
            free_units: Vec::new(),
            doms: doms::DomSlots::default(),
            timers: BTreeSet::new(),
            pcpu_curr: alloc::vec![hint::HintSlot::NONE; slots],
            pcpu_prev: alloc::vec![None; slots],
            scratch_pulls: Vec::new(),
        }
    }

    /// The effective options.
    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// A unit by index; panics on a stale index (a bug of this file's bookkeeping).
    // `always`, as for the accessors below: the decision path calls them from both its
    // short and its general path, and an out-of-line accessor costs more than its body.
    #[inline(always)]
    pub(crate) fn u(&self, idx: usize) -> &Unit {
        match self.units.get(idx) {
            Some(Some(unit)) => unit,
            _ => panic!("credit2: stale unit index {idx}"),
        }
    }

    #[inline(always)]
    pub(crate) fn u_mut(&mut self, idx: usize) -> &mut Unit {
        match self.units.get_mut(idx) {
            Some(Some(unit)) => unit,
            _ => panic!("credit2: stale unit index {idx}"),
        }
    }

    /// A runqueue by id; panics if it does not exist.
    #[inline(always)]
    pub(crate) fn rq(&self, id: usize) -> &Runqueue {
        match self.rqs.get(id) {
            Some(Some(rq)) => rq,
            _ => panic!("credit2: no runqueue {id}"),
        }
    }

    #[inline(always)]
    pub(crate) fn rq_mut(&mut self, id: usize) -> &mut Runqueue {
        match self.rqs.get_mut(id) {
            Some(Some(rq)) => rq,
            _ => panic!("credit2: no runqueue {id}"),
        }
    }

    /// `c2rqd(cpu)`.
    #[inline(always)]
    pub(crate) fn c2rqd(&self, cpu: PcpuId) -> usize {
        match self.pcpu_rq.get(cpu.index()).copied().flatten() {
            Some(id) => id,
            None => panic!("credit2: {cpu:?} has no runqueue"),
        }
    }

    /// The unit index of `v`, if the scheduler knows it.
    pub fn unit_index(&self, v: VcpuRef) -> Option<usize> {
        let dom = self.doms.get(&v.dom)?;
        let slot = usize::try_from(v.vcpu.raw()).ok()?;
        dom.units.get(slot).copied().flatten()
    }

    pub(crate) fn idx(&self, v: VcpuRef) -> usize {
        match self.unit_index(v) {
            Some(idx) => idx,
            None => panic!("credit2: unknown {v:?}"),
        }
    }

    /// A unit's data, for tests and reports.
    pub fn unit(&self, v: VcpuRef) -> Option<&Unit> {
        self.unit_index(v).map(|idx| self.u(idx))
    }

    /// The runqueues in list order.
    pub fn runqueues(&self) -> impl Iterator<Item = &Runqueue> {
        self.rqs.iter().flatten()
    }

    /// The runqueue id of a pCPU.
    pub fn runqueue_of(&self, cpu: PcpuId) -> Option<usize> {
        self.pcpu_rq.get(cpu.index()).copied().flatten()
    }

    /// A domain's data.
    pub fn dom(&self, dom: DomId) -> Option<&Dom> {
        self.doms.get(&dom)
    }

    /// `alloc_domdata` when the core did not call `insert_domain` first: the weight comes
    /// from the domain's configuration (what libxl would set right after creation).
    fn ensure_dom(&mut self, ctx: &SchedCtx<'_>, dom: DomId) {
        if self.doms.contains_key(&dom) {
            return;
        }
        let configured = ctx.domains.get(dom).map_or(0, |d| d.weight);
        let weight = u16::try_from(configured)
            .ok()
            .filter(|w| *w != 0)
            .unwrap_or(DEFAULT_WEIGHT);
        self.doms.insert(
            dom,
            Dom {
                weight,
                cap: 0,
                nr_units: 0,
                tot_budget: 0,
                budget: 0,
                next_repl: 0,
                timer_armed: false,
                parked: Vec::new(),
                units: Vec::new(),
            },
        );
    }

    /// `csched2_alloc_udata` for a vCPU of `dom` (weight already known).
    fn alloc_unit(&mut self, ctx: &SchedCtx<'_>, v: VcpuRef, weight: u16) -> usize {
        let pinned = ctx.vcpu(v).hard_affinity.weight() == 1;
        let unit = Unit {
            v,
            rqd: None,
            credit: CREDIT_INIT,
            migrate_bonus: 0,
            weight: u32::from(weight),
            residual: 0,
            flags: if pinned { FLAG_PINNED } else { 0 },
            budget: BUDGET_NONE,
            budget_quota: 0,
            start_time: 0,
            load_last_update: ctx.now.as_ns() >> LOADAVG_GRANULARITY_SHIFT,
            avgload: 1i64 << (self.opts.precision_shift - 1),
            on_runq: false,
            parked: false,
            migrate_rqd: None,
            tickled_cpu: None,
        };
        match self.free_units.pop() {
            Some(idx) => {
                self.units[idx] = Some(unit);
                idx
            }
            None => {
                self.units.push(Some(unit));
                self.units.len() - 1
            }
        }
    }
}

/// Writes a console line (the core copies `Console` events into the console ring).
pub(crate) fn printk(ctx: &mut SchedCtx<'_>, text: String) {
    ctx.trace(TraceEvent::Console { text });
}

/// `MICROSECS(x)` for a `u32` of µs.
pub(crate) const fn us(x: i64) -> i64 {
    x * 1_000
}

impl Scheduler for Credit2Scheduler {
    fn opt_name(&self) -> &'static str {
        "credit2"
    }

    fn name(&self) -> &'static str {
        "SMP Credit Scheduler rev2"
    }

    fn init_messages(&self, out: &mut Vec<String>) {
        // csched2_init: one plain line, then XENLOG_INFO lines (shown with loglvl=all).
        let o = &self.opts;
        out.push("Initializing Credit2 scheduler".into());
        out.push(format!(" load_precision_shift: {}", o.precision_shift));
        out.push(format!(" load_window_shift: {}", o.window_shift_opt));
        out.push(format!(" underload_balance_tolerance: {}", o.balance_under));
        out.push(format!(" overload_balance_tolerance: {}", o.balance_over));
        out.push(format!(" runqueues arrangement: {}", o.runqueue.name()));
        out.push(format!(
            " cap enforcement granularity: {}ms",
            o.cap_period_ms
        ));
        out.push(format!(
            "load tracking window length {} ns",
            1u64 << o.window_shift_opt.min(63)
        ));
    }

    fn add_pcpu(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        let rq = self.cpu_add_to_runqueue(ctx, cpu);
        self.init_cpu_runqueue(ctx, cpu, rq);
    }

    fn remove_pcpu(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        self.deinit_pcpu(ctx, cpu);
    }

    fn insert_domain(&mut self, ctx: &mut SchedCtx<'_>, dom: DomId) {
        self.ensure_dom(ctx, dom);
    }

    fn remove_domain(&mut self, _ctx: &mut SchedCtx<'_>, dom: DomId) {
        // csched2_free_domdata: kill the timer, forget the domain.
        if let Some(d) = self.doms.remove(&dom) {
            assert_eq!(d.nr_units, 0, "d{} freed with units", dom.raw());
            if d.timer_armed {
                self.timers.remove(&(d.next_repl, dom));
            }
        }
    }

    fn insert_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        self.ensure_dom(ctx, v.dom);
        let weight = self.doms.get(&v.dom).map_or(DEFAULT_WEIGHT, |d| d.weight);
        assert!(self.unit_index(v).is_none(), "{v:?} inserted twice");
        let idx = self.alloc_unit(ctx, v, weight);
        let slot = usize::try_from(v.vcpu.raw()).unwrap_or(usize::MAX);
        if let Some(d) = self.doms.get_mut(&v.dom) {
            if d.units.len() <= slot {
                d.units.resize(slot + 1, None);
            }
            d.units[slot] = Some(idx);
            d.nr_units += 1;
        }
        // csched2_unit_insert: res_pick, then assign to that pCPU's runqueue.
        let cpu = self.res_pick(ctx, idx);
        ctx.set_processor(v, cpu);
        let rq = self.c2rqd(cpu);
        self.runq_assign(idx, rq);
    }

    fn remove_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        let idx = self.idx(v);
        if self.u(idx).on_runq {
            // Xen asserts this never happens; stay consistent if it does.
            let rq = self.u(idx).rqd;
            self.runq_remove(idx);
            if let Some(rq) = rq {
                self.update_load(ctx, rq, Some(idx), -1);
            }
        }
        self.u_mut(idx).flags &= !FLAG_SCHEDULED;
        if self.u(idx).rqd.is_some() {
            self.runq_deassign(idx);
        }
        let slot = usize::try_from(v.vcpu.raw()).unwrap_or(usize::MAX);
        let mut last_unit = false;
        if let Some(d) = self.doms.get_mut(&v.dom) {
            d.parked.retain(|p| *p != idx);
            if let Some(entry) = d.units.get_mut(slot) {
                *entry = None;
            }
            d.nr_units -= 1;
            last_unit = d.nr_units == 0;
        }
        self.units[idx] = None;
        self.free_units.push(idx);
        if last_unit {
            // xensim differs: the core has no free_domdata call yet, so the domain's data
            // (and its replenishment timer) go with its last vCPU.
            self.remove_domain(ctx, v.dom);
        }
    }

    fn wake(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        let idx = self.idx(v);
        // One lookup of the vCPU for its processor and the tickle search: what runs
        // between them changes no vCPU (the runqueue and unit updates touch the
        // scheduler's data only).
        let vcpu = ctx.vcpu(v);
        let cpu = vcpu.processor;
        if ctx.curr_on(cpu) == Some(v) || self.u(idx).on_runq {
            return;
        }
        if self.u(idx).flag(FLAG_SCHEDULED) {
            self.u_mut(idx).flags |= FLAG_DELAYED_RUNQ_ADD;
            return;
        }
        let rq = match self.u(idx).rqd {
            Some(rq) => rq,
            None => {
                let rq = self.c2rqd(cpu);
                self.runq_assign(idx, rq);
                rq
            }
        };
        assert_eq!(rq, self.c2rqd(cpu), "{v:?} woken off its runqueue");
        // A change of +1 never reads whether the vCPU may run.
        self.update_load_known(ctx.now.as_ns(), rq, Some(idx), 1, false);
        self.runq_insert(idx);
        // `runq_tickle` with the vCPU looked up above (its processor `cpu`, runqueue `rq`):
        // the usual answer, its own wholly idle pCPU, without the search.
        let target = match self.own_idle_target(ctx, vcpu, idx, rq) {
            Some(own) => Some(own),
            None => self.tickle_target(ctx, vcpu, idx, rq),
        };
        // `tickle_chosen`, with the tickle inlined (the wake's last step).
        if let Some(target) = target {
            self.tickle_cpu_inline(ctx, target, rq);
            self.u_mut(idx).tickled_cpu = Some(target);
        }
    }

    fn sleep(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        let idx = self.idx(v);
        let cpu = ctx.processor(v);
        if ctx.curr_on(cpu) == Some(v) {
            let rq = self.c2rqd(cpu);
            self.tickle_cpu(ctx, cpu, rq);
        } else if self.u(idx).on_runq {
            let rq = self.c2rqd(cpu);
            self.update_load(ctx, rq, Some(idx), -1);
            self.runq_remove(idx);
        } else {
            self.u_mut(idx).flags &= !FLAG_DELAYED_RUNQ_ADD;
        }
    }

    fn yield_vcpu(&mut self, _ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        let idx = self.idx(v);
        self.u_mut(idx).flags |= FLAG_YIELD;
    }

    fn pick_cpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) -> PcpuId {
        let idx = self.idx(v);
        self.res_pick(ctx, idx)
    }

    fn migrate(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef, new_cpu: PcpuId) {
        let idx = self.idx(v);
        self.unit_migrate(ctx, idx, new_cpu);
    }

    fn do_schedule(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        prev: Option<VcpuRef>,
    ) -> Decision {
        self.schedule(ctx, cpu, prev)
    }

    fn context_saved(&mut self, ctx: &mut SchedCtx<'_>, prev: VcpuRef) {
        // One lookup of the vCPU for its pCPU and whether it may run: nothing `saved` does
        // before reading them changes either.
        let (vcpu, runnable) = ctx.vcpu_runnable(prev);
        let cpu = vcpu.processor;
        self.context_saved_known(ctx, prev, cpu, runnable);
    }

    fn context_saved_known(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        prev: VcpuRef,
        processor: PcpuId,
        runnable: bool,
    ) {
        // The core's switch read both from its own lookup of `prev` (the usual block):
        // `saved` asserts the processor against the unit's runqueue and, in debug builds,
        // both against the vCPU.
        let idx = self.saved_unit(processor, prev);
        self.saved(ctx, idx, processor, runnable);
    }

    fn affinity_changed(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        // csched2_aff_cntl: the pinned flag follows a one-pCPU hard affinity.
        let idx = self.idx(v);
        if ctx.vcpu(v).hard_affinity.weight() == 1 {
            self.u_mut(idx).flags |= FLAG_PINNED;
        } else {
            self.u_mut(idx).flags &= !FLAG_PINNED;
        }
    }

    fn dom_params(&self, dom: DomId) -> Result<DomParams, SchedError> {
        let d = self.doms.get(&dom).ok_or(SchedError::NoSuchDomain)?;
        Ok(DomParams::Credit2 {
            weight: d.weight,
            cap: d.cap,
        })
    }

    fn set_dom_params(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        dom: DomId,
        params: &DomParams,
    ) -> Result<(), SchedError> {
        let DomParams::Credit2 { weight, cap } = *params else {
            return Err(SchedError::Invalid);
        };
        if !self.doms.contains_key(&dom) {
            return Err(SchedError::NoSuchDomain);
        }
        if weight != 0 {
            self.set_weight(dom, weight);
        }
        self.set_cap(ctx, dom, cap)
    }

    fn pool_params(&self) -> PoolParams {
        PoolParams::Credit2 {
            ratelimit_us: self.opts.ratelimit_us,
        }
    }

    fn set_pool_params(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        params: &PoolParams,
    ) -> Result<(), SchedError> {
        let PoolParams::Credit2 { ratelimit_us } = *params else {
            return Err(SchedError::Invalid);
        };
        if ratelimit_us != 0 && !(RATELIMIT_MIN_US..=RATELIMIT_MAX_US).contains(&ratelimit_us) {
            return Err(SchedError::Invalid);
        }
        // csched2_sys_cntl: XENLOG_INFO notes when rate limiting turns on or off.
        if self.opts.ratelimit_us == 0 && ratelimit_us != 0 {
            printk(ctx, "Enabling context switch rate limiting".into());
        } else if self.opts.ratelimit_us != 0 && ratelimit_us == 0 {
            printk(ctx, "Disabling context switch rate limiting".into());
        }
        self.opts.ratelimit_us = ratelimit_us;
        Ok(())
    }

    fn next_timer(&self) -> Option<STime> {
        self.timers.first().map(|(at, _)| STime::from_ns(*at))
    }

    fn timer_fired(&mut self, ctx: &mut SchedCtx<'_>) {
        self.run_due_timers(ctx);
    }

    fn check_invariants(
        &self,
        domains: &DomainTable,
        pool_cpus: &CpuMask,
        out: &mut Vec<Violation>,
    ) {
        self.check_all(domains, pool_cpus, out);
    }
}
