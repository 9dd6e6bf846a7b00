//! The rtds hooks the scheduling core calls: schedule, wake, sleep, context saved, the
//! replenishment timer, insert, remove and pCPU choice.
//!
//! Follows xen/common/sched/rt.c (Xen 4.17): `rt_schedule`, `rt_unit_wake`,
//! `rt_unit_sleep`, `rt_context_saved`, `repl_timer_handler`, `rt_unit_insert`,
//! `rt_unit_remove`, `rt_res_pick_locked`; spec `schedulers.md` §3.5, §3.7, §3.8.
//!
//! # Invariants
//! - A running vCPU is on no queue and has a replenishment event.
//! - `do_schedule` returns a runnable vCPU whose hard affinity holds the pCPU, or idle.
//!
//! xensim differs: Xen 4.17's `rt_schedule` gives up (runs idle) when the runq head it
//! picked is not runnable, after taking it off both queues; the spec's "repeat" is a
//! later reading, and 4.17 is kept. Every clock read of one hook uses `ctx.now`
//! (spec §9.1).

use super::server::Server;
use super::RtdsScheduler;
use crate::ids::{PcpuId, VcpuRef};
use crate::sched::{Decision, PickReason, SchedCtx};
use crate::time::Span;

impl RtdsScheduler {
    /// `rt_update_deadline` plus xensim's period accounting.
    fn replenish(&mut self, ctx: &SchedCtx<'_>, v: VcpuRef) {
        let runnable = ctx.runnable(v);
        let now = ctx.now;
        let s = self.servers.srv_mut(v);
        s.update_deadline(now);
        let start = s.cur_deadline.after(Span::from_ns(-s.period_ns));
        s.acct.roll(now, start, s.cur_deadline, s.budget_ns);
        if !runnable {
            s.acct.mark_unrunnable();
        }
        let running = ctx.vcpu(v).running_on.is_some();
        if running && s.slice_end > now.after(Span::from_ns(s.budget_ns)) {
            s.acct.mark_limit_unenforced();
        }
        self.rekey(v);
    }

    /// `rt_unit_insert`: place the new server, give it a deadline, queue it if runnable.
    pub(super) fn unit_insert(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        self.servers.insert(v, Server::new());
        let cpu = self.res_pick(ctx, v);
        ctx.set_processor(v, cpu);
        if ctx.now >= self.servers.srv(v).cur_deadline {
            self.replenish(ctx, v);
        }
        if ctx.runnable(v) {
            self.replq_insert(v);
            let running_on = ctx.vcpu(v).running_on;
            if let Some(cpu) = running_on {
                self.servers.srv_mut(v).acct.start_running(ctx.now);
                self.record_running(cpu, Some(v));
            } else {
                self.runq_insert(v);
            }
        }
    }

    /// `rt_unit_remove`: off every queue, then the server is freed (`rt_free_udata`).
    pub(super) fn unit_remove(&mut self, _ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        if self.servers.get(v).is_none() {
            return;
        }
        if self.on_q(v) {
            self.q_remove(v);
        }
        if self.servers.srv(v).on_replq {
            self.replq_remove(v);
        }
        if let Some(cpu) = self.servers.srv(v).running_cpu {
            self.record_running(cpu, None);
        }
        self.servers.remove(v);
    }

    /// `rt_res_pick_locked`: `v`'s pCPU if allowed, else the next allowed one.
    pub(super) fn res_pick(&self, ctx: &SchedCtx<'_>, v: VcpuRef) -> PcpuId {
        let vcpu = ctx.vcpu(v);
        match ctx
            .pool_cpus
            .test_or_cycle_and(&vcpu.hard_affinity, vcpu.processor)
        {
            Some(cpu) => cpu,
            None => panic!("{v:?} has no pCPU in hard affinity and pool"),
        }
    }

    /// `rt_schedule` on `cpu`, which runs `prev`; the running index records the pick.
    pub(super) fn schedule(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        prev: Option<VcpuRef>,
    ) -> Decision {
        debug_assert_eq!(self.running.vcpu_on(cpu), prev, "running index out of date");
        let decision = self.pick(ctx, cpu, prev);
        self.record_running(cpu, decision.next);
        decision
    }

    /// `rt_schedule` proper.
    fn pick(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId, prev: Option<VcpuRef>) -> Decision {
        let now = ctx.now;
        self.clear_tickled(cpu);
        let prev_runnable = prev.is_some_and(|c| ctx.runnable(c));
        if let Some(c) = prev {
            let s = self.servers.srv_mut(c);
            let key_before = s.key();
            s.burn_budget(now);
            s.acct.ran_until(now);
            if !prev_runnable {
                s.acct.mark_unrunnable();
            }
            if s.key() != key_before {
                // An extratime level down: the replq copy follows; the running index
                // takes the new key when the pick is recorded.
                let key = s.key();
                self.replq.rekey(&self.servers, c, key);
            }
        }
        let mut next = self.runq_pick(ctx, cpu);
        if let Some(w) = next.filter(|w| !ctx.runnable(*w)) {
            // Xen 4.17: drop it from both queues and run idle this time.
            self.q_remove(w);
            self.replq_remove(w);
            next = None;
        }
        let keep_prev = prev.filter(|c| {
            let cur = self.servers.srv(*c);
            prev_runnable
                && cur.cur_budget_ns > 0
                && next.is_none_or(|n| super::server::compare(cur, self.servers.srv(n)).is_gt())
        });
        if keep_prev.is_some() {
            next = keep_prev;
        }
        if let Some(c) = prev.filter(|c| next != Some(*c)) {
            let s = self.servers.srv_mut(c);
            if prev_runnable {
                s.delayed_runq_add = true;
            }
            s.acct.stop_running(now);
        }
        let Some(n) = next else {
            return Decision::idle();
        };
        let reason = if Some(n) == prev {
            PickReason::Continue
        } else {
            self.q_remove(n);
            let s = self.servers.srv_mut(n);
            s.scheduled = true;
            s.acct.start_running(now);
            if s.priority_level > 0 {
                PickReason::Extratime
            } else {
                PickReason::Runq
            }
        };
        if ctx.processor(n) != cpu {
            ctx.set_processor(n, cpu);
        }
        let s = self.servers.srv_mut(n);
        s.last_start = now;
        s.slice_end = now.after(Span::from_ns(s.cur_budget_ns));
        assert!(
            ctx.vcpu(n).hard_affinity.test(cpu),
            "{n:?} picked outside hard"
        );
        Decision {
            next: Some(n),
            next_time: Span::from_ns(s.cur_budget_ns),
            reason,
            credit_ns: Some(s.cur_budget_ns),
        }
    }

    /// `rt_unit_wake`.
    pub(super) fn unit_wake(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        if ctx.curr_on(ctx.processor(v)) == Some(v) || self.on_q(v) {
            return;
        }
        let missed = ctx.now >= self.servers.srv(v).cur_deadline;
        if missed {
            self.replenish(ctx, v);
        }
        if self.servers.srv(v).scheduled {
            // Its context is not saved yet: queue it in context_saved instead.
            self.servers.srv_mut(v).delayed_runq_add = true;
            if missed {
                self.replq_reinsert(v);
            }
            return;
        }
        self.replq_insert(v);
        self.runq_insert(v);
        self.runq_tickle(ctx, v);
    }

    /// `rt_unit_sleep`.
    pub(super) fn unit_sleep(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        self.servers.srv_mut(v).acct.mark_unrunnable();
        let cpu = ctx.processor(v);
        if ctx.curr_on(cpu) == Some(v) {
            // Xen raises the softirq directly, without marking the pCPU tickled.
            ctx.tickle(cpu);
        } else if self.on_q(v) {
            self.q_remove(v);
            self.replq_remove(v);
        } else {
            self.servers.srv_mut(v).delayed_runq_add = false;
        }
    }

    /// `rt_context_saved`: queue `prev` again if it is still runnable, else drop its
    /// replenishment event.
    pub(super) fn saved(&mut self, ctx: &mut SchedCtx<'_>, prev: VcpuRef) {
        let s = self.servers.srv_mut(prev);
        s.scheduled = false;
        let delayed = core::mem::take(&mut s.delayed_runq_add);
        if delayed && ctx.runnable(prev) {
            self.runq_insert(prev);
            self.runq_tickle(ctx, prev);
        } else {
            self.replq_remove(prev);
        }
    }

    /// `repl_timer_handler`: replenish every server whose deadline has come, then tickle
    /// for them in the reverse order of their expiry (Xen's temporary list is LIFO).
    pub(super) fn repl_timer_handler(&mut self, ctx: &mut SchedCtx<'_>) {
        let now = ctx.now;
        let mut expired = core::mem::take(&mut self.expired);
        expired.clear();
        while let Some(v) = self.replq.first() {
            if now < self.servers.srv(v).cur_deadline {
                break;
            }
            // Off replq and onto the temporary list (`on_replq` stays set meanwhile).
            self.replq.remove(&mut self.servers, v);
            self.replenish(ctx, v);
            expired.push(v);
            if self.on_q(v) {
                self.q_remove(v);
                self.runq_insert(v);
            }
        }
        for &v in expired.iter().rev() {
            self.tickle_replenished(ctx, v);
            // Back onto replq at its new place.
            self.servers.srv_mut(v).on_replq = false;
            self.replq_insert(v);
        }
        self.expired = expired;
    }

    fn tickle_replenished(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        let running_here = ctx.curr_on(ctx.processor(v)) == Some(v);
        let head = self.runq.first_key_value().map(|(_, w)| *w);
        if let (true, Some(head)) = (running_here, head) {
            let head_wins =
                super::server::compare(self.servers.srv(v), self.servers.srv(head)).is_lt();
            if head_wins {
                self.runq_tickle(ctx, head);
            }
        } else {
            let s = self.servers.srv_mut(v);
            let was_depleted = core::mem::take(&mut s.depleted);
            if was_depleted && self.on_q(v) {
                self.runq_tickle(ctx, v);
            }
        }
    }
}
