//! credit2 decisions on one pCPU: credit burn and reset, choosing the next vCPU, the slice
//! length, and `context_saved`.
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17: `t2c_update`, `c2t`, `burn_credits`,
//! `reset_credit`, `runq_candidate`, `csched2_schedule`, `csched2_runtime`,
//! `csched2_context_saved`; spec §2.3, §2.5–§2.8, §2.11.
//!
//! # Invariants
//! - A vCPU picked here is runnable, may run on the pCPU, and is off the runq.
//! - The slice is in `[500 µs, 10 ms]`, or the ratelimit remainder when that is longer.
//!
//! xensim follows 4.17 where spec §2.8 describes a later Xen: `csched2_runtime` in 4.17
//! has no `inflight` term (the outgoing vCPU's credit does not shorten the slice), so
//! the slice only looks at the runq head.

use super::hint::HintSlot;
use super::{
    us, Credit2Scheduler, CurrHint, Unit, CARRYOVER_MAX, CREDIT_INIT, CREDIT_MIN, CREDIT_RESET,
    FLAG_DELAYED_RUNQ_ADD, FLAG_SCHEDULED, FLAG_YIELD, IDLE_CREDIT, MAX_TIMER_NS,
    MIGRATE_COMPENSATION, MIN_TIMER_NS,
};
use crate::cpumask::CpuMask;
use crate::ids::{PcpuId, VcpuRef};
use crate::sched::affinity::{balance_pair, vcpu_has_soft_affinity, BalanceStep};
use crate::sched::{Decision, PickReason, SchedCtx};
use crate::time::Span;

/// What `runq_candidate` chose.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    /// The unit, `None` for idle.
    pub next: Option<usize>,
    /// Where `next` waits in the runq, if it was taken from there.
    pub runq_pos: Option<usize>,
    /// The processor of `next`'s vCPU, as its lookup here found it (`None` for idle).
    pub processor: Option<PcpuId>,
    /// Why.
    pub reason: PickReason,
    /// Whether the current vCPU may run (false when idle ran), as `runq_candidate` found.
    pub cur_runnable: bool,
    /// When the current vCPU's runstate began, ns (0 when idle ran).
    pub cur_entered_ns: i64,
}

/// A decision's pick, as `picked` takes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pick<'a> {
    /// The unit picked.
    pub snext: usize,
    /// What `runq_candidate` (or a short path, as it would) found.
    pub cand: &'a Candidate,
    /// `snext` is the current unit, kept running.
    pub kept: bool,
    /// A short path cleared the pCPU's idle bit already (`untickle_clear_idle`).
    pub idle_cleared: bool,
}

/// `t2c_update` arithmetic: burn `delta_ns` of run time at `max_weight / weight`, keeping
/// the division remainder. Returns `(credit, residual)`.
pub(crate) fn t2c(
    credit: i32,
    residual: u32,
    delta_ns: i64,
    max_weight: u32,
    weight: u32,
) -> (i32, u32) {
    assert!(weight > 0, "burning a unit of weight 0");
    let (burn, rest) = if max_weight == weight && residual < weight && delta_ns >= 0 {
        // `(delta * w + r) / w == delta` and the remainder stays `r` when `r < w`: the
        // common equal-weight case needs no division.
        (delta_ns, residual)
    } else {
        let val = delta_ns * i64::from(max_weight) + i64::from(residual);
        let rest = u32::try_from(val % i64::from(weight)).unwrap_or(0);
        (val / i64::from(weight), rest)
    };
    let left = i64::from(credit) - burn;
    let credit = if left < i64::from(CREDIT_MIN) {
        CREDIT_MIN
    } else {
        i32::try_from(left).unwrap_or(CREDIT_MIN)
    };
    (credit, rest)
}

/// `burn_credits` of a running `unit` up to `now`, its runqueue's max weight known.
#[inline(always)]
pub(crate) fn burn(unit: &mut Unit, max_weight: u32, now_ns: i64) {
    let delta = now_ns - unit.start_time;
    if delta <= 0 {
        return;
    }
    let (credit, residual) = t2c(unit.credit, unit.residual, delta, max_weight, unit.weight);
    unit.credit = credit;
    unit.residual = residual;
    if unit.has_cap() {
        unit.budget -= delta;
    }
    unit.start_time = now_ns;
}

/// `c2t`: credit to run time for a unit of `weight`.
pub(crate) fn c2t(credit: i64, weight: u32, max_weight: u32) -> i64 {
    if weight == max_weight && weight > 0 {
        // `credit * w / w` is `credit`: the equal-weight case needs no division.
        return credit;
    }
    credit * i64::from(weight) / i64::from(max_weight.max(1))
}

/// The `csched2_runtime` clamp: at least `min_ns`, at most `MAX_TIMER`.
pub(crate) fn clamp_slice(time_ns: i64, min_ns: i64) -> i64 {
    if time_ns < min_ns {
        min_ns
    } else if time_ns > MAX_TIMER_NS {
        MAX_TIMER_NS
    } else {
        time_ns
    }
}

impl Credit2Scheduler {
    /// `burn_credits` of a running unit of runqueue `id` up to `now`.
    pub(crate) fn burn_credits(&mut self, id: usize, idx: usize, now_ns: i64) {
        let max_weight = self.rq(id).max_weight;
        burn(self.u_mut(idx), max_weight, now_ns);
    }

    /// `reset_credit`: a new epoch for every unit of the runqueue.
    fn reset_credit(&mut self, ctx: &mut SchedCtx<'_>, id: usize, snext: usize) {
        let now = ctx.now.as_ns();
        let snext_credit = self.u(snext).credit;
        assert!(snext_credit >= CREDIT_MIN, "credit below the floor");
        let add = if snext_credit == CREDIT_MIN {
            2 * CREDIT_INIT
        } else {
            CREDIT_INIT
        };
        for i in 0..self.rq(id).svc.len() {
            let idx = self.rq(id).svc[i];
            let v = self.u(idx).v;
            let svc_cpu = ctx.processor(v);
            if ctx.curr_on(svc_cpu) == Some(v) {
                self.burn_credits(id, idx, now);
                if self.u(idx).budget <= 0 {
                    self.tickle_cpu(ctx, svc_cpu, id);
                }
            }
            let unit = self.u_mut(idx);
            unit.credit = (unit.credit + add).min(CREDIT_INIT + CARRYOVER_MAX);
            unit.migrate_bonus = 0;
            unit.start_time = now;
        }
        self.refresh_runq_credits(id);
        assert!(
            self.u(snext).credit > 0,
            "reset left the picked unit without credit"
        );
    }

    fn credit_of(&self, unit: Option<usize>) -> i32 {
        unit.map_or(IDLE_CREDIT, |idx| self.u(idx).credit)
    }

    /// `runq_candidate`.
    #[inline(always)]
    fn runq_candidate(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        id: usize,
        cur: Option<usize>,
        cpu: PcpuId,
    ) -> Candidate {
        let now = ctx.now.as_ns();
        let mut yielded = false;
        let mut soft_preempt = false;
        let mut snext = None;
        let mut cur_runnable = false;
        let mut cur_entered_ns = 0;
        let mut cur_processor = None;
        if let Some(c) = cur {
            let unit = self.u_mut(c);
            let v = unit.v;
            yielded = unit.flags & FLAG_YIELD != 0;
            unit.flags &= !FLAG_YIELD;
            let ratelimit = self.opts.ratelimit_ns();
            // Nothing below changes whether `v` may run, so it is asked once.
            let (vcpu, runnable) = ctx.vcpu_runnable(v);
            cur_runnable = runnable;
            cur_entered_ns = vcpu.state_entry_time.as_ns();
            let ran = now - cur_entered_ns;
            cur_processor = Some(vcpu.processor);
            if !yielded && ratelimit != 0 && runnable && ran < ratelimit {
                return Candidate {
                    next: Some(c),
                    runq_pos: None,
                    processor: cur_processor,
                    reason: PickReason::Ratelimit,
                    cur_runnable,
                    cur_entered_ns,
                };
            }
            // The soft step's mask is `soft & hard` (`balance_pair`): is `cpu` outside it
            // while an idler of the runqueue (idle, untickled) in the pool is inside? A
            // `cpu` inside answers no whatever the soft affinity, so that cheap test
            // comes before `has_soft_affinity` (the usual vCPU runs inside both masks).
            let in_soft_step = vcpu.soft_affinity.test(cpu) && vcpu.hard_affinity.test(cpu);
            if !in_soft_step && vcpu_has_soft_affinity(ctx.pool_cpus, vcpu) {
                let (a, b) = balance_pair(vcpu, BalanceStep::Soft);
                debug_assert!(
                    !(a.test(cpu) && b.test(cpu)),
                    "soft step is not soft & hard"
                );
                let rq = self.rq(id);
                let masks = [a, b, ctx.pool_cpus, &rq.idle, &rq.tickled];
                soft_preempt = CpuMask::any_combined(masks, |[a, b, p, i, t]| a & b & p & i & !t);
            }
            if runnable && !soft_preempt {
                snext = Some(c);
            }
        }
        // An empty runq (the idle host's usual block) has no waiter to beat `snext`: the
        // walk would find nothing, so it is not called.
        let found = if self.rq(id).runq.is_empty() {
            None
        } else {
            self.scan_runq(ctx, id, snext, cpu, yielded)
        };
        let (chosen, runq_pos, processor) = match found {
            Some((idx, pos, processor)) => (Some(idx), Some(pos), Some(processor)),
            None if snext.is_some() => (snext, None, cur_processor),
            None => (None, None, None),
        };
        let reason = match chosen {
            Some(_) if chosen == cur => PickReason::Continue,
            Some(_) if yielded => PickReason::Yield,
            Some(_) => PickReason::Runq,
            None if soft_preempt => PickReason::SoftAffinity,
            None => PickReason::Idle,
        };
        Candidate {
            next: chosen,
            runq_pos,
            processor,
            reason,
            cur_runnable,
            cur_entered_ns,
        }
    }

    /// The runq walk of `runq_candidate`, starting from `snext` (cur or idle): the waiter
    /// that beats it, its index in `runq` and its vCPU's processor, `None` if `snext`
    /// stays. Called only on a runq with waiters (the pick of an idler after a wake), so it
    /// stays out of line.
    #[inline(never)]
    fn scan_runq(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        id: usize,
        snext: Option<usize>,
        cpu: PcpuId,
        yielded: bool,
    ) -> Option<(usize, usize, PcpuId)> {
        let snext_credit = i64::from(self.credit_of(snext));
        debug_assert!(
            self.runq_credits_agree(id),
            "runqueue {id}: stale credit copy"
        );
        // From the head, the last entry, down: Xen's walk from the list head.
        let mut pos = self.rq(id).runq.len();
        while pos > 0 {
            pos -= 1;
            let credit = i64::from(self.rq(id).runq_credits[pos]);
            if !yielded && credit <= snext_credit {
                break;
            }
            let idx = self.rq(id).runq[pos];
            let unit = self.u(idx);
            // One lookup of the waiter's vCPU for its runnability, affinity and processor.
            let (vcpu, runnable) = ctx.vcpu_runnable(unit.v);
            if !runnable || !vcpu.hard_affinity.test(cpu) {
                continue;
            }
            let processor = vcpu.processor;
            if let Some(t) = unit.tickled_cpu {
                if t != cpu && self.rq(id).tickled.test(t) {
                    continue;
                }
            }
            if processor != cpu && snext_credit + self.opts.migrate_resist_ns > credit {
                continue;
            }
            if self.u(idx).has_cap() && !self.grab_budget(ctx, idx) {
                // Parked: it left the runq; the entries below `pos`, the rest of the walk,
                // did not move.
                continue;
            }
            return Some((idx, pos, processor));
        }
        None
    }

    /// `csched2_schedule` on `cpu`, which runs `prev`: the idle host's two usual decisions
    /// take their short paths (`fast.rs`, each the general path's answer), the rest the
    /// general path.
    #[inline(always)]
    pub(crate) fn schedule(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        prev: Option<VcpuRef>,
    ) -> Decision {
        let id = self.c2rqd(cpu);
        let cur = prev.map(|v| (v, self.curr_unit(cpu, v)));
        let fast = match cur {
            Some((v, c)) => self.block_to_idle(ctx, cpu, id, v, c),
            None => self.idle_takes_head(ctx, cpu, id),
        };
        if let Some(decision) = fast {
            return decision;
        }
        self.schedule_general(ctx, cpu, id, cur.map(|(_, c)| c))
    }

    /// [`Self::schedule`] without the short paths (the reference their tests compare with).
    #[cfg(test)]
    pub(crate) fn schedule_plain(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        prev: Option<VcpuRef>,
    ) -> Decision {
        let id = self.c2rqd(cpu);
        let cur = prev.map(|v| self.curr_unit(cpu, v));
        self.schedule_general(ctx, cpu, id, cur)
    }

    /// The general `csched2_schedule` on `cpu` of runqueue `id`, whose current unit is
    /// `cur` (`None`: idle).
    #[inline(always)]
    fn schedule_general(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        id: usize,
        cur: Option<usize>,
    ) -> Decision {
        let now = ctx.now.as_ns();
        // One lookup of the runqueue for both (the untickle leaves the max weight).
        let rq = self.rq(id);
        let (tickled, max_weight) = (rq.tickled.test(cpu), rq.max_weight);
        if tickled {
            self.untickle(cpu, id);
        }
        if let Some(c) = cur {
            // `burn_credits`, the unit looked up once for the check and the burn.
            let unit = self.u_mut(c);
            assert_eq!(unit.rqd, Some(id), "current unit of another runqueue");
            burn(unit, max_weight, now);
            if unit.budget <= 0 {
                self.grab_budget(ctx, c);
            }
        }
        let cand = self.runq_candidate(ctx, id, cur, cpu);
        if let Some(c) = cur {
            // The runq walk parks waiters only, so the current vCPU may run as it found.
            debug_assert_eq!(cand.cur_runnable, ctx.runnable(self.u(c).v));
            if cand.next != cur {
                let unit = self.u_mut(c);
                if cand.cur_runnable {
                    unit.flags |= FLAG_DELAYED_RUNQ_ADD;
                }
                let v = unit.v;
                self.pcpu_prev[cpu.index()] = Some((v, c));
            }
        }
        // The core switches to a newly picked vCPU now; a kept one ran since it entered.
        let entered_ns = if cand.next == cur {
            cand.cur_entered_ns
        } else {
            now
        };
        // The hint of `cpu` is written last: until `schedule` returns, the core runs
        // `prev` there, which the old hint names (a `runq_tickle` scan from `picked`
        // relies on that).
        // A picked vCPU has a real entry time, so only an idle pick leaves no hint (the
        // hint order relies on it).
        assert!(
            cand.next.is_none() || entered_ns != i64::MIN,
            "a vCPU picked without an entry time"
        );
        let hint = HintSlot::new(cand.next.map(|unit| CurrHint {
            v: self.u(unit).v,
            unit,
            entered_ns,
        }));
        let Some(snext) = cand.next else {
            self.set_idle(cpu, id);
            self.update_load(ctx, id, None, 0);
            self.write_hint(cpu, id, hint);
            return Decision {
                next: None,
                next_time: Span::from_ns(-1),
                reason: cand.reason,
                credit_ns: None,
            };
        };
        let pick = Pick {
            snext,
            cand: &cand,
            kept: cur == Some(snext),
            idle_cleared: false,
        };
        self.finish_pick(ctx, cpu, id, pick, hint)
    }

    /// The end of a decision that made `pick`: `picked`, the slice, the hint (`hint`,
    /// written last), and the decision.
    #[inline(always)]
    pub(super) fn finish_pick(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        id: usize,
        pick: Pick<'_>,
        hint: HintSlot,
    ) -> Decision {
        self.picked(ctx, id, cpu, pick);
        let Pick { snext, cand, .. } = pick;
        let running_since_ns = pick.kept.then_some(cand.cur_entered_ns);
        let slice = self.runtime(ctx, id, snext, running_since_ns);
        // Read before the hint store (the unit's `v` and credit, as `runtime` left them).
        let unit = self.u(snext);
        let (next_v, credit) = (unit.v, unit.credit);
        self.write_hint(cpu, id, hint);
        Decision {
            next: Some(next_v),
            next_time: Span::from_ns(slice),
            reason: cand.reason,
            credit_ns: Some(i64::from(credit)),
        }
    }

    /// The non-idle half of `csched2_schedule`: take `snext` off the runq, leave idle,
    /// maybe reset credits and balance, start the burn, move it here. Inlined into both
    /// the short and the general path (each calls it once per decision).
    #[inline(always)]
    fn picked(&mut self, ctx: &mut SchedCtx<'_>, id: usize, cpu: PcpuId, pick: Pick<'_>) {
        let Pick { snext, cand, .. } = pick;
        let now = ctx.now.as_ns();
        if pick.kept {
            // Nothing since `runq_candidate` changed whether the current vCPU may run.
            debug_assert_eq!(cand.cur_runnable, ctx.runnable(self.u(snext).v));
            self.update_load_known(now, id, Some(snext), 0, cand.cur_runnable);
        } else {
            // A pick other than the current vCPU comes from the runq walk.
            let Some(pos) = cand.runq_pos else {
                panic!("picked unit {snext} without its runq position")
            };
            self.runq_take_scheduled(snext, id, pos);
        }
        if !pick.idle_cleared {
            self.clear_idle(cpu, id);
        }
        let mine = self.u(snext).credit;
        let top = self
            .rq(id)
            .head_credit()
            .map_or(mine, |head| mine.max(head));
        // The processor `runq_candidate` read stays until a load balance, which may move
        // vCPUs.
        let mut processor = cand.processor;
        if top <= CREDIT_RESET {
            self.reset_credit(ctx, id, snext);
            self.balance_load(ctx, cpu);
            processor = None;
        }
        let unit = self.u_mut(snext);
        unit.start_time = now;
        unit.tickled_cpu = None;
        let v = unit.v;
        let processor = processor.unwrap_or_else(|| ctx.processor(v));
        debug_assert_eq!(processor, ctx.processor(v), "{v:?}: stale processor");
        if processor != cpu {
            // Xen adds it unbounded (an int); saturating here rather than wrapping.
            unit.credit = unit.credit.saturating_add(MIGRATE_COMPENSATION);
            unit.migrate_bonus = unit.migrate_bonus.saturating_add(MIGRATE_COMPENSATION);
            ctx.set_processor(v, cpu);
        }
    }

    /// `csched2_runtime`: how long `snext` may run before the next decision;
    /// `running_since_ns` is its runstate entry time if it is the current vCPU.
    pub(crate) fn runtime(
        &self,
        ctx: &SchedCtx<'_>,
        id: usize,
        snext: usize,
        running_since_ns: Option<i64>,
    ) -> i64 {
        let now = ctx.now.as_ns();
        let unit = self.u(snext);
        let mut min_time = MIN_TIMER_NS;
        if self.opts.ratelimit_us != 0 {
            let mut rl = us(i64::from(self.opts.ratelimit_us));
            if let Some(since) = running_since_ns {
                debug_assert_eq!(since, ctx.vcpu(unit.v).state_entry_time.as_ns());
                rl += since - now;
            }
            min_time = min_time.max(rl);
        }
        let rq = self.rq(id);
        let mut rt_credit = unit.credit;
        if let Some(head_credit) = rq.head_credit() {
            if head_credit > 0 {
                rt_credit = unit.credit - head_credit;
            }
        }
        let mut time = if rt_credit > 0 {
            c2t(i64::from(rt_credit), unit.weight, rq.max_weight)
        } else {
            0
        };
        if unit.has_cap() {
            time = time.min(unit.budget);
        }
        clamp_slice(time, min_time)
    }

    /// `csched2_context_saved` of unit `idx`, whose vCPU's processor is `cpu` and which
    /// may run or not (`runnable`, read by the caller from the same lookup).
    pub(crate) fn saved(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        idx: usize,
        cpu: PcpuId,
        runnable: bool,
    ) {
        // One lookup of the unit for its vCPU, runqueue, budget and flags (returning the
        // budget reads and writes the budget only, so the flags are taken first).
        let unit = self.u_mut(idx);
        let v = unit.v;
        let rqd = unit.rqd;
        let has_budget_left = unit.has_cap() && unit.budget > 0;
        let delayed = unit.flags & FLAG_DELAYED_RUNQ_ADD != 0;
        unit.flags &= !(FLAG_SCHEDULED | FLAG_DELAYED_RUNQ_ADD);
        debug_assert_eq!(cpu, ctx.processor(v), "{v:?} saved off its processor");
        debug_assert_eq!(runnable, ctx.runnable(v), "{v:?} runnability changed");
        let Some(id) = rqd else {
            panic!("{v:?} saved without a runqueue")
        };
        assert_eq!(id, self.c2rqd(cpu), "{v:?} saved off its runqueue");
        let mut freed = None;
        if has_budget_left {
            freed = self.return_budget(idx);
        }
        if delayed && runnable {
            self.runq_insert(idx);
            self.runq_tickle(ctx, idx);
        } else {
            // `update_load(-1)`, which never reads whether the vCPU may run. After a block
            // it follows its `schedule`'s update at the same instant: that runqueue half
            // stays inline, the decay is a call.
            let now = ctx.now.as_ns();
            if !self.update_runq_load_same_instant(id, -1, now) {
                self.update_runq_load(id, -1, now);
            }
            self.update_svc_load(idx, -1, false, now);
        }
        if let Some(parked) = freed {
            self.unpark(ctx, v.dom, parked);
        }
    }
}
