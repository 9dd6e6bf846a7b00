//! credit2 placement: which pCPU a vCPU should run on, moving a vCPU between runqueues,
//! and load balancing between runqueues after a credit reset.
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17: `get_fallback_cpu`, `csched2_res_pick`,
//! `migrate`, `csched2_unit_migrate`, `unit_is_migrateable`, `consider`, `balance_load`;
//! spec §2.12–§2.14.
//!
//! # Invariants
//! - A placement is inside the vCPU's hard affinity and the pool.
//! - A vCPU that is scheduled is never moved here; it gets a migrate request instead.
//!
//! Quirks kept on purpose (spec §9.10): `csched2_res_pick` cycles from the hard-minimum
//! runqueue's `pick_bias` even when the soft-minimum runqueue's mask is used, and
//! `balance_load` judges its threshold against the last runqueue of the list.

use super::{printk, Credit2Scheduler, FLAG_MIGRATE_REQUEST, FLAG_SCHEDULED};
use crate::cpumask::CpuMask;
use crate::domain::vcpu::VPF_MIGRATING;
use crate::ids::PcpuId;
use crate::sched::affinity::{balance_mask, has_soft_affinity, BalanceStep, BALANCE_STEPS};
use crate::sched::SchedCtx;

/// `balance_state_t`: the best move found so far.
struct BalanceState {
    load_delta: i64,
    push: Option<usize>,
    pull: Option<usize>,
    lrq: usize,
    orq: usize,
    /// `lrq->b_avgload` and `orq->b_avgload` (the scan does not change them).
    loads: (i64, i64),
}

/// A unit a balancing move would take along, with its load.
type Move = Option<(usize, i64)>;

/// `consider`: keep the move if it leaves the two runqueues closer in load.
fn consider(st: &mut BalanceState, push: Move, pull: Move) {
    let (mut l_load, mut o_load) = st.loads;
    if let Some((_, load)) = push {
        l_load -= load;
        o_load += load;
    }
    if let Some((_, load)) = pull {
        l_load += load;
        o_load -= load;
    }
    let delta = (l_load - o_load).abs();
    if delta < st.load_delta {
        st.load_delta = delta;
        st.push = push.map(|(idx, _)| idx);
        st.pull = pull.map(|(idx, _)| idx);
    }
}

impl Credit2Scheduler {
    /// `hard & pool` of a unit.
    fn allowed(&self, ctx: &SchedCtx<'_>, idx: usize) -> CpuMask {
        ctx.vcpu(self.u(idx).v).hard_affinity.and(ctx.pool_cpus)
    }

    /// `get_fallback_cpu`.
    fn fallback_cpu(&self, ctx: &SchedCtx<'_>, idx: usize) -> PcpuId {
        let v = self.u(idx).v;
        let cpu = ctx.processor(v);
        for step in BALANCE_STEPS {
            if step == BalanceStep::Soft && !has_soft_affinity(ctx, v) {
                continue;
            }
            let mask = balance_mask(ctx, v, step).and(ctx.pool_cpus);
            if mask.test(cpu) {
                return cpu;
            }
            if let Some(id) = self.u(idx).rqd {
                if let Some(first) = mask.and(&self.rq(id).active).first() {
                    return first;
                }
            }
            if step == BalanceStep::Hard {
                if let Some(first) = mask.first() {
                    return first;
                }
            }
        }
        panic!("{v:?} has no pCPU in hard affinity and pool")
    }

    /// `csched2_res_pick`.
    pub(crate) fn res_pick(&mut self, ctx: &mut SchedCtx<'_>, idx: usize) -> PcpuId {
        let allowed = self.allowed(ctx, idx);
        if self.u(idx).flags & FLAG_MIGRATE_REQUEST != 0 {
            self.u_mut(idx).flags &= !FLAG_MIGRATE_REQUEST;
            let target = self.u(idx).migrate_rqd;
            match target
                .and_then(|t| self.rqs.get(t))
                .and_then(Option::as_ref)
            {
                None => printk(ctx, "csched2_res_pick: target runqueue disappeared!".into()),
                Some(trq) if allowed.intersects(&trq.active) => {
                    let mask = allowed.and(&trq.active);
                    if let Some(new_cpu) = mask.cycle(trq.pick_bias) {
                        let t = trq.id;
                        self.rq_mut(t).pick_bias = new_cpu;
                        return new_cpu;
                    }
                }
                Some(_) => {}
            }
        }
        let v = self.u(idx).v;
        let has_soft = has_soft_affinity(ctx, v);
        let soft = &ctx.vcpu(v).soft_affinity;
        let own = self.u(idx).rqd;
        let own_load = self.u(idx).avgload;
        let mut min_load = i64::MAX;
        let mut min_s_load = i64::MAX;
        let mut min_rq = None;
        let mut min_s_rq = None;
        for rq in self.rqs.iter().flatten() {
            if !allowed.intersects(&rq.active) {
                continue;
            }
            let load = if own == Some(rq.id) {
                (rq.b_avgload - own_load).max(0)
            } else {
                rq.b_avgload
            };
            if has_soft && load < min_s_load && allowed.and(&rq.active).intersects(soft) {
                min_s_load = load;
                min_s_rq = Some(rq.id);
            }
            if load < min_load {
                min_load = load;
                min_rq = Some(rq.id);
            }
        }
        let Some(min_rq) = min_rq else {
            return self.fallback_cpu(ctx, idx);
        };
        let mask = match min_s_rq.filter(|_| has_soft) {
            Some(s) => allowed.and(soft).and(&self.rq(s).active),
            None => allowed.and(&self.rq(min_rq).active),
        };
        let Some(new_cpu) = mask.cycle(self.rq(min_rq).pick_bias) else {
            panic!("{v:?}: empty placement mask")
        };
        self.rq_mut(min_rq).pick_bias = new_cpu;
        new_cpu
    }

    /// `csched2_unit_migrate`: the core moves the (descheduled) vCPU to `new_cpu`.
    pub(crate) fn unit_migrate(&mut self, ctx: &mut SchedCtx<'_>, idx: usize, new_cpu: PcpuId) {
        let v = self.u(idx).v;
        assert!(
            self.initialized.test(new_cpu),
            "{v:?} moved out of the pool"
        );
        assert!(
            ctx.vcpu(v).hard_affinity.test(new_cpu),
            "{v:?} moved outside its hard affinity"
        );
        let target = self.c2rqd(new_cpu);
        if Some(target) != self.u(idx).rqd {
            self.migrate_to(ctx, idx, target);
        } else {
            ctx.set_processor(v, new_cpu);
        }
    }

    /// `migrate`: move a unit to runqueue `target`, or ask for it if it is scheduled.
    pub(crate) fn migrate_to(&mut self, ctx: &mut SchedCtx<'_>, idx: usize, target: usize) {
        let v = self.u(idx).v;
        let cpu = ctx.processor(v);
        let Some(old) = self.u(idx).rqd else {
            panic!("{v:?} migrated without a runqueue")
        };
        if self.u(idx).flags & FLAG_SCHEDULED != 0 {
            let unit = self.u_mut(idx);
            unit.migrate_rqd = Some(target);
            unit.flags |= FLAG_MIGRATE_REQUEST;
            ctx.vcpu_mut(v).pause_flags |= VPF_MIGRATING;
            self.tickle_cpu(ctx, cpu, old);
            return;
        }
        let on_runq = self.u(idx).on_runq;
        if on_runq {
            self.runq_remove(idx);
            self.update_load(ctx, old, None, -1);
        }
        self.runq_deassign(idx);
        let mask = self.allowed(ctx, idx).and(&self.rq(target).active);
        let Some(new_cpu) = mask.cycle(self.rq(target).pick_bias) else {
            panic!("{v:?} migrated to runqueue {target} outside its affinity")
        };
        ctx.set_processor(v, new_cpu);
        self.rq_mut(target).pick_bias = new_cpu;
        self.runq_assign(idx, target);
        if on_runq {
            self.update_load(ctx, target, None, 1);
            self.runq_insert(idx);
            self.runq_tickle(ctx, idx);
        }
    }

    /// `unit_is_migrateable` to runqueue `id`.
    fn migrateable(&self, ctx: &SchedCtx<'_>, idx: usize, id: usize) -> bool {
        self.u(idx).flags & FLAG_MIGRATE_REQUEST == 0
            && ctx
                .vcpu(self.u(idx).v)
                .hard_affinity
                .intersects_and(ctx.pool_cpus, &self.rq(id).active)
    }

    /// Tolerance threshold `1 << (P + tolerance)` of `balance_load`.
    fn balance_threshold(&self, tolerance: i32) -> i64 {
        let shift = i64::from(self.opts.precision_shift) + i64::from(tolerance);
        1i64 << shift.clamp(0, 62)
    }

    /// `balance_load` after a reset on `cpu`.
    pub(crate) fn balance_load(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        let now = ctx.now.as_ns();
        let lrq = self.c2rqd(cpu);
        self.update_runq_load(lrq, 0, now);
        let mut load_delta = 0i64;
        let mut max_delta_rq = None;
        let mut last = lrq;
        for id in 0..self.rqs.len() {
            if self.rqs[id].is_none() {
                continue;
            }
            last = id;
            if id == lrq {
                continue;
            }
            self.update_runq_load(id, 0, now);
            let delta = (self.rq(lrq).b_avgload - self.rq(id).b_avgload).abs();
            if delta > load_delta {
                load_delta = delta;
                max_delta_rq = Some(id);
            }
        }
        let Some(orq) = max_delta_rq else {
            return;
        };
        let load_max = self.rq(lrq).b_avgload.max(self.rq(last).b_avgload);
        let cpus_max = i64::from(self.rq(lrq).nr_cpus.max(self.rq(last).nr_cpus));
        let tolerance = if load_max < cpus_max << self.opts.precision_shift {
            self.opts.balance_under
        } else {
            self.opts.balance_over
        };
        if load_delta < self.balance_threshold(tolerance) {
            return;
        }
        let mut st = BalanceState {
            load_delta,
            push: None,
            pull: None,
            lrq,
            orq,
            loads: (self.rq(lrq).b_avgload, self.rq(orq).b_avgload),
        };
        self.balance_scan(ctx, &mut st);
        if let Some(p) = st.push {
            self.migrate_to(ctx, p, orq);
        }
        if let Some(q) = st.pull {
            self.migrate_to(ctx, q, lrq);
        }
    }

    /// The O(n·m) search of `balance_load` for the best push, pull or swap.
    ///
    /// Whether a unit may move to the other runqueue does not change during the scan
    /// (only loads are updated), so it is asked once per unit, not once per pair; the
    /// loads are updated and the moves considered in Xen's order.
    fn balance_scan(&mut self, ctx: &SchedCtx<'_>, st: &mut BalanceState) {
        let now = ctx.now.as_ns();
        let mut pulls = core::mem::take(&mut self.scratch_pulls);
        pulls.clear();
        for qi in 0..self.rq(st.orq).svc.len() {
            let q = self.rq(st.orq).svc[qi];
            pulls.push((q, self.migrateable(ctx, q, st.lrq), self.u(q).avgload));
        }
        let mut inner_updated = false;
        for pi in 0..self.rq(st.lrq).svc.len() {
            let p = self.rq(st.lrq).svc[pi];
            let runnable = ctx.runnable(self.u(p).v);
            self.update_svc_load(p, 0, runnable, now);
            if !self.migrateable(ctx, p, st.orq) {
                continue;
            }
            if !inner_updated {
                for (q, _, load) in &mut pulls {
                    let runnable = ctx.runnable(self.u(*q).v);
                    self.update_svc_load(*q, 0, runnable, now);
                    *load = self.u(*q).avgload;
                }
                inner_updated = true;
            }
            let push = Some((p, self.u(p).avgload));
            for &(q, movable, load) in &pulls {
                if movable {
                    consider(st, push, Some((q, load)));
                }
            }
            consider(st, push, None);
        }
        for &(q, movable, load) in &pulls {
            if movable {
                consider(st, None, Some((q, load)));
            }
        }
        self.scratch_pulls = pulls;
    }
}
