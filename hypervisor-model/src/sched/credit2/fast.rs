//! credit2's short paths for the two decisions of a mostly idle host: the current vCPU
//! blocks with nobody waiting (its pCPU goes idle), and an idle pCPU, tickled by a wake,
//! takes the waiter at the head of its runq.
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17, `csched2_schedule` and
//! `runq_candidate`, as `schedule.rs` does: each path first checks, without changing
//! anything, that the general path would take the same branches, then makes exactly the
//! general path's changes, in its order, and returns its decision; otherwise it returns
//! `None` and the general path runs.
//!
//! # Invariants
//! - A short path changes nothing when it returns `None`.
//! - When it decides, the decision, the scheduler's state, the vCPUs and the tickles and
//!   trace events are the general path's (`tests_fast.rs` runs both side by side).
//!
//! Left out on purpose: capped units (their budget may park a unit during the decision),
//! a current vCPU outside its soft step (the soft-affinity preemption test), and a head
//! waiter the runq walk would pass over; those take the general path.

use super::hint::HintSlot;
use super::schedule::{burn, Candidate, Pick};
use super::{Credit2Scheduler, CurrHint, FLAG_YIELD, IDLE_CREDIT};
use crate::ids::{PcpuId, VcpuRef};
use crate::sched::{Decision, PickReason, SchedCtx};

impl Credit2Scheduler {
    /// `csched2_schedule` on `cpu` (runqueue `id`) when its current vCPU `v` (unit `c`)
    /// may not run, its runq is empty and nothing else applies: `cpu` goes idle. `None`,
    /// having changed nothing, when the general path must decide.
    ///
    /// The general path's branches, given these: no cap, so no budget to grab and none
    /// burnt; `v` may not run, so no ratelimit keep and no delayed re-queue; `cpu` in the
    /// soft step (soft & hard affinity), so no soft-affinity preemption; an empty runq, so
    /// no waiter: `runq_candidate` picks idle for `PickReason::Idle`.
    #[inline(always)]
    pub(super) fn block_to_idle(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        id: usize,
        v: VcpuRef,
        c: usize,
    ) -> Option<Decision> {
        let rq = self.rq(id);
        if !rq.runq.is_empty() || self.u(c).has_cap() {
            return None;
        }
        let (vcpu, runnable) = ctx.vcpu_runnable(v);
        if runnable || !(vcpu.soft_affinity.test(cpu) && vcpu.hard_affinity.test(cpu)) {
            return None;
        }
        // The general path's changes, in its order, save that its untickle is folded into
        // `set_idle` (nothing between them reads the masks).
        let now = ctx.now.as_ns();
        let max_weight = rq.max_weight;
        let unit = self.u_mut(c);
        assert_eq!(unit.rqd, Some(id), "current unit of another runqueue");
        assert_eq!(unit.v, v, "current unit of another vCPU");
        burn(unit, max_weight, now);
        unit.flags &= !FLAG_YIELD;
        self.pcpu_prev[cpu.index()] = Some((v, c));
        self.untickle_set_idle(cpu, id);
        // `update_load(None, 0)`: the runqueue half only.
        self.update_runq_load(id, 0, now);
        self.write_hint(cpu, id, HintSlot::NONE);
        Some(Decision::idle())
    }

    /// `csched2_schedule` on `cpu` (runqueue `id`), which runs idle, when the head of its
    /// runq is the waiter the runq walk takes first: it runs next. `None`, having changed
    /// nothing, when the general path must decide.
    ///
    /// The walk from idle (credit `IDLE_CREDIT`, not yielded) takes the head when its
    /// credit is above idle's, its vCPU may run on `cpu`, it was not tickled for another
    /// pCPU still tickled, the migration resistance lets it move here, and it has no cap.
    #[inline(always)]
    pub(super) fn idle_takes_head(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        id: usize,
    ) -> Option<Decision> {
        let rq = self.rq(id);
        let pos = rq.runq.len().checked_sub(1)?;
        let (idx, credit) = (*rq.runq.get(pos)?, i64::from(*rq.runq_credits.get(pos)?));
        let idle_credit = i64::from(IDLE_CREDIT);
        if credit <= idle_credit {
            return None;
        }
        let unit = self.u(idx);
        let v = unit.v;
        let (vcpu, runnable) = ctx.vcpu_runnable(v);
        if unit.has_cap() || !runnable || !vcpu.hard_affinity.test(cpu) {
            return None;
        }
        let processor = vcpu.processor;
        if unit
            .tickled_cpu
            .is_some_and(|t| t != cpu && rq.tickled.test(t))
        {
            return None;
        }
        if processor != cpu && idle_credit + self.opts.migrate_resist_ns > credit {
            return None;
        }
        // The general path's changes, in its order, save that `picked`'s `clear_idle` is
        // folded into the untickle (nothing between them reads the masks).
        let now = ctx.now.as_ns();
        let tickled = rq.tickled.test(cpu);
        self.untickle_clear_idle(cpu, id, tickled);
        let cand = Candidate {
            next: Some(idx),
            runq_pos: Some(pos),
            processor: Some(processor),
            reason: PickReason::Runq,
            cur_runnable: false,
            cur_entered_ns: 0,
        };
        let hint = HintSlot::new(Some(CurrHint {
            v,
            unit: idx,
            entered_ns: now,
        }));
        let pick = Pick {
            snext: idx,
            cand: &cand,
            kept: false,
            idle_cleared: true,
        };
        Some(self.finish_pick(ctx, cpu, id, pick, hint))
    }
}
