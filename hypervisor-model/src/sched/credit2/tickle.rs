//! credit2 tickling: which pCPU, if any, should reschedule because a vCPU was queued.
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17: `is_preemptable`, `tickle_score`,
//! `runq_tickle`; spec §2.9.
//!
//! # Invariants
//! - At most one pCPU is tickled per call, and it is in the vCPU's hard affinity and pool.
//! - A busy pCPU is only tickled when its score is strictly positive.
//!
//! xensim differs: `sched_smt_power_savings` is off (Xen's default), so the first step
//! looks for wholly idle cores.

use super::hint::CurrHint;
use super::schedule::burn;
use super::{Credit2Scheduler, CREDIT_INIT, FLAG_PINNED, RATELIMIT_TICKLE_TOLERANCE_NS};
use crate::cpumask::CpuMask;
use crate::domain::vcpu::Vcpu;
use crate::ids::{PcpuId, VcpuRef};
use crate::sched::affinity::{balance_pair, vcpu_has_soft_affinity, BalanceStep, BALANCE_STEPS};
use crate::sched::SchedCtx;

/// The preemption score rule of `tickle_score` once both credits are known: the credit
/// difference, less the migration resistance off `new`'s pCPU, plus the soft-affinity
/// bonuses when positive.
pub(crate) fn score(
    new_credit: i32,
    cur_credit: i32,
    resist_ns: Option<i64>,
    new_soft_here: bool,
    cur_soft_here: bool,
) -> i64 {
    let mut score = i64::from(new_credit) - i64::from(cur_credit);
    if let Some(resist) = resist_ns {
        score -= resist;
    }
    if score > 0 {
        if new_soft_here {
            score += i64::from(CREDIT_INIT);
        }
        if !cur_soft_here {
            score += i64::from(CREDIT_INIT);
        }
    }
    score
}

/// What `tickle_score` reads that stays put during one `runq_tickle` scan, looked up once:
/// the vCPU being placed (its credit cannot change: only running vCPUs are burnt), the
/// runqueue's max weight, the time and the preemption threshold.
struct Newcomer<'a> {
    now_ns: i64,
    credit: i32,
    processor: PcpuId,
    vcpu: &'a Vcpu,
    max_weight: u32,
    /// `is_preemptable`'s bound on the run time (`None`: always preemptable).
    preempt_after_ns: Option<i64>,
}

/// True if `vcpu`'s processor is in `smt_idle & soft & hard & pool`. The first walk of
/// [`idle_walk`] that runs (the soft step's, `smt_idle & soft & hard & pool`, when the vCPU
/// has a soft affinity, else the hard step's, `smt_idle & hard & pool`) tests the processor
/// first, and both masks hold such a pCPU: it is the walk's answer whatever the soft
/// affinity.
fn own_core_idle(smt_idle: &CpuMask, vcpu: &Vcpu, pool: &CpuMask) -> bool {
    let cpu = vcpu.processor;
    smt_idle.test(cpu)
        && vcpu.hard_affinity.test(cpu)
        && vcpu.soft_affinity.test(cpu)
        && pool.test(cpu)
}

/// The walks of `runq_tickle`'s idler search for `vcpu`, from its processor: per balance
/// step, a wholly idle core (`smt_idle`), then an untickled idler, within the step's mask
/// and the pool.
#[inline(always)]
fn idle_walk(
    smt_idle: &CpuMask,
    idle: &CpuMask,
    tickled: &CpuMask,
    vcpu: &Vcpu,
    pool: &CpuMask,
) -> Option<PcpuId> {
    let cpu = vcpu.processor;
    let soft = vcpu_has_soft_affinity(pool, vcpu);
    for step in BALANCE_STEPS {
        if step == BalanceStep::Soft && !soft {
            continue;
        }
        // The step's mask is `a & b`; `allowed` is that and the pool.
        let (a, b) = balance_pair(vcpu, step);
        let masks = [smt_idle, a, b, pool];
        let found = CpuMask::test_or_cycle_combined(masks, cpu, |[m, a, b, p]| m & a & b & p);
        if found.is_some() {
            return found;
        }
        let masks = [idle, tickled, a, b, pool];
        let found =
            CpuMask::test_or_cycle_combined(masks, cpu, |[m, t, a, b, p]| m & !t & a & b & p);
        if found.is_some() {
            return found;
        }
    }
    None
}

impl Credit2Scheduler {
    /// `is_preemptable`'s threshold: a running vCPU may be preempted once it ran longer
    /// than its ratelimit less the tolerance (`None`: at any time).
    fn preempt_after_ns(&self) -> Option<i64> {
        let ratelimit = self.opts.ratelimit_ns();
        (ratelimit > RATELIMIT_TICKLE_TOLERANCE_NS)
            .then_some(ratelimit - RATELIMIT_TICKLE_TOLERANCE_NS)
    }

    /// `tickle_score`: how much `new` deserves `cpu` (a pCPU of runqueue `id`), -1 if its
    /// vCPU may not be preempted.
    ///
    /// Inlined into the scan: on a busy, overcommitted host most scanned vCPUs ran for less
    /// than the ratelimit, and that answer is a few loads; the rest is [`Self::busy_score`].
    #[inline(always)]
    fn tickle_score(
        &mut self,
        ctx: &SchedCtx<'_>,
        new: &Newcomer<'_>,
        cpu: PcpuId,
        id: usize,
    ) -> i64 {
        let Some(cur_v) = ctx.curr_on(cpu) else {
            return -1;
        };
        let hint = self.curr_hint(cpu, cur_v);
        // is_preemptable.
        if let Some(after) = new.preempt_after_ns {
            if new.now_ns - Self::hinted_entered_ns(ctx, cpu, hint, cur_v) <= after {
                return -1;
            }
        }
        self.busy_score(ctx, new, cpu, id, cur_v, hint)
    }

    /// The part of `tickle_score` past `is_preemptable`: burn the running vCPU's credit up
    /// to now and score the difference.
    #[inline(never)]
    fn busy_score(
        &mut self,
        ctx: &SchedCtx<'_>,
        new: &Newcomer<'_>,
        cpu: PcpuId,
        id: usize,
        cur_v: VcpuRef,
        hint: Option<CurrHint>,
    ) -> i64 {
        let now = new.now_ns;
        debug_assert_eq!(now, ctx.now.as_ns());
        debug_assert_eq!(self.c2rqd(cpu), id, "{cpu:?} scored for another runqueue");
        debug_assert_eq!(self.rq(id).max_weight, new.max_weight);
        let cur = self.hinted_unit_or_lookup(hint, cur_v);
        let unit = self.u_mut(cur);
        burn(unit, new.max_weight, now);
        let cur_credit = unit.credit;
        let resist = (new.processor != cpu).then_some(self.opts.migrate_resist_ns);
        // The soft-affinity bonuses only go to a positive difference, so a difference that
        // is not positive is the score, and the masks need not be read.
        let difference = score(new.credit, cur_credit, resist, false, true);
        if difference <= 0 {
            return difference;
        }
        score(
            new.credit,
            cur_credit,
            resist,
            new.vcpu.soft_affinity.test(cpu),
            ctx.vcpu(cur_v).soft_affinity.test(cpu),
        )
    }

    /// `runq_tickle`: `new` was queued; find it a pCPU.
    pub(crate) fn runq_tickle(&mut self, ctx: &mut SchedCtx<'_>, new: usize) {
        let v = self.u(new).v;
        // One lookup of the vCPU serves the whole search (it only reads the vCPU).
        let vcpu = ctx.vcpu(v);
        let cpu = vcpu.processor;
        let id = self.c2rqd(cpu);
        assert_eq!(self.u(new).rqd, Some(id), "{v:?} tickled off its runqueue");
        let target = self.tickle_target(ctx, vcpu, new, id);
        self.tickle_chosen(ctx, new, target, id);
    }

    /// The end of `runq_tickle`: tickle `target`, found for `new` in runqueue `id`.
    pub(crate) fn tickle_chosen(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        new: usize,
        target: Option<PcpuId>,
        id: usize,
    ) {
        if let Some(target) = target {
            self.tickle_cpu(ctx, target, id);
            self.u_mut(new).tickled_cpu = Some(target);
        }
    }

    /// The idle pCPU `runq_tickle` prefers for `new`, whose vCPU is `vcpu` (on its
    /// processor `cpu`): a wholly idle core first, then any idler, soft affinity before
    /// hard.
    fn idle_target(
        &self,
        ctx: &SchedCtx<'_>,
        vcpu: &Vcpu,
        new: usize,
        id: usize,
    ) -> Option<PcpuId> {
        let cpu = vcpu.processor;
        debug_assert_eq!(self.u(new).v, vcpu.id, "the vCPU of another unit");
        let rq = self.rq(id);
        if self.u(new).flags & FLAG_PINNED != 0 && rq.idle.test(cpu) && !rq.tickled.test(cpu) {
            return Some(cpu);
        }
        debug_assert!(rq.smt_idle.is_subset(&rq.idle), "smt_idle outside idle");
        if rq.idle.is_empty() {
            // Both walks below look in `smt_idle` or `idle`: with no idler they find nothing.
            return None;
        }
        // The idle host's usual wake, back onto its own wholly idle pCPU: the walk's answer
        // without asking `has_soft_affinity` (see `own_core_idle`).
        if own_core_idle(&rq.smt_idle, vcpu, ctx.pool_cpus) {
            debug_assert_eq!(
                idle_walk(&rq.smt_idle, &rq.idle, &rq.tickled, vcpu, ctx.pool_cpus),
                Some(cpu)
            );
            return Some(cpu);
        }
        idle_walk(&rq.smt_idle, &rq.idle, &rq.tickled, vcpu, ctx.pool_cpus)
    }

    /// The pCPU `runq_tickle` tickles for `new` (of runqueue `id`), whose vCPU is `vcpu`,
    /// when it is the idle host's usual answer: the vCPU's own processor, its core wholly
    /// idle (`own_core_idle`). [`Self::idle_target`] answers the same, from its pinned
    /// test or its walk (`smt_idle` lies within `idle`, so the runqueue has an idler).
    /// `None`: the search of [`Self::tickle_target`] decides. Inlined into the wake, which
    /// then calls that search only off this path.
    #[inline(always)]
    pub(crate) fn own_idle_target(
        &self,
        ctx: &SchedCtx<'_>,
        vcpu: &Vcpu,
        new: usize,
        id: usize,
    ) -> Option<PcpuId> {
        if !own_core_idle(&self.rq(id).smt_idle, vcpu, ctx.pool_cpus) {
            return None;
        }
        debug_assert_eq!(
            self.idle_target(ctx, vcpu, new, id),
            Some(vcpu.processor),
            "the own idle core is not the search's answer"
        );
        Some(vcpu.processor)
    }

    /// The pCPU `runq_tickle` tickles for `new`, whose vCPU is `vcpu`: an idler, else the
    /// busy pCPU with the best positive score, if any.
    pub(crate) fn tickle_target(
        &mut self,
        ctx: &SchedCtx<'_>,
        vcpu: &Vcpu,
        new: usize,
        id: usize,
    ) -> Option<PcpuId> {
        if let Some(idler) = self.idle_target(ctx, vcpu, new, id) {
            return Some(idler);
        }
        let cpu = vcpu.processor;
        let rq = self.rq(id);
        let masks = [
            &rq.active,
            &rq.idle,
            &rq.tickled,
            &vcpu.hard_affinity,
            ctx.pool_cpus,
        ];
        let mut busy = CpuMask::combined(masks, |[a, i, t, h, p]| a & !i & !t & h & p);
        let newcomer = Newcomer {
            now_ns: ctx.now.as_ns(),
            credit: self.u(new).credit,
            processor: vcpu.processor,
            vcpu,
            max_weight: rq.max_weight,
            preempt_after_ns: self.preempt_after_ns(),
        };
        let mut best = 0i64;
        let mut target = None;
        if busy.test(cpu) {
            busy.clear(cpu);
            let s = self.tickle_score(ctx, &newcomer, cpu, id);
            if s > best {
                best = s;
                target = Some(cpu);
                if vcpu.soft_affinity.test(cpu) {
                    return target;
                }
            }
        }
        // A pCPU whose hint names its running vCPU and says it entered at or after
        // `now - preempt_after_ns` is one `is_preemptable` refuses: `tickle_score` is -1
        // there (the common answer on a busy host), and -1 never beats `best`. Those are
        // dropped by a walk of the runqueue's hint order that visits only the older
        // pCPUs; the rest are scored in order.
        if let Some(after) = newcomer.preempt_after_ns {
            let from = newcomer.now_ns - after;
            self.drop_recent(ctx, id, &mut busy, from);
        }
        for i in busy.iter() {
            let s = self.tickle_score(ctx, &newcomer, i, id);
            if s > best {
                best = s;
                target = Some(i);
            }
        }
        target
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{idle_walk, own_core_idle};
    use crate::cpumask::CpuMask;
    use crate::domain::vcpu::Vcpu;
    use crate::ids::{DomId, PcpuId, VcpuId, VcpuRef};
    use crate::time::STime;

    /// A mask of a 64-pCPU host from `bits`, with `cpu` added when `with_cpu`.
    fn mask_of(bits: u64, cpu: PcpuId, with_cpu: bool) -> CpuMask {
        let mut mask = CpuMask::empty(64);
        for raw in (0..64).filter(|c| bits >> c & 1 != 0) {
            mask.set(PcpuId::new(raw).expect("cpu in range"));
        }
        if with_cpu {
            mask.set(cpu);
        }
        mask
    }

    proptest! {
        #[test]
        fn own_idle_core_is_the_idle_walks_answer(
            cpu_raw in 0u32..64,
            // Half the cases put the processor in all four masks (the fast path's case).
            all_own in any::<bool>(),
            own in any::<[bool; 4]>(),
            bits in any::<[u64; 6]>(),
        ) {
            let own = own.map(|x| x || all_own);
            let cpu = PcpuId::new(cpu_raw).expect("cpu in range");
            let [smt, idle, tickled, hard, soft, pool] = bits;
            let smt_idle = mask_of(smt, cpu, own[0]);
            let (idle, tickled) = (mask_of(idle | smt, cpu, false), mask_of(tickled, cpu, false));
            let pool = mask_of(pool, cpu, own[3]);
            let id = VcpuRef {
                dom: DomId::new(1).expect("domid in range"),
                vcpu: VcpuId::new(0).expect("vcpu in range"),
            };
            let (hard, soft) = (mask_of(hard, cpu, own[1]), mask_of(soft, cpu, own[2]));
            let vcpu = Vcpu::new(id, cpu, hard, soft, STime::from_ns(0));
            let walked = idle_walk(&smt_idle, &idle, &tickled, &vcpu, &pool);
            if own_core_idle(&smt_idle, &vcpu, &pool) {
                prop_assert_eq!(walked, Some(cpu));
            }
        }
    }
}
