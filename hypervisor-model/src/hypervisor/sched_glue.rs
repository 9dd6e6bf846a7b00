//! The generic scheduling core around the pool schedulers: calling a pool's scheduler
//! (`with_sched`, which hands its tickles and trace events on and re-arms the pool timer),
//! `schedule()` on a pCPU, vCPU wake/sleep/block/yield, and domain pause, unpause and
//! shutdown.
//!
//! Follows xen/common/sched/core.c (`schedule`, `sched_context_switch`, `vcpu_wake`,
//! `vcpu_sleep_nosync`, `vcpu_block`, `vcpu_yield`) and xen/common/domain.c
//! (`domain_pause`, `domain_unpause`, `domain_pause_by_systemcontroller`,
//! `domain_shutdown`, `__domain_finalise_shutdown`).
//!
//! xensim differs: a softirq raised on the current pCPU by a block or yield is handled at
//! once, inside the same input, as Xen does before returning to the guest. Context save is
//! instantaneous: `context_saved(prev)` runs right after the switch, keeping Xen's order
//! "pick next, then save prev".

use super::{trace_plain, Hypervisor, InputError};
use crate::domain::vcpu::{Runstate, VPF_BLOCKED, VPF_MIGRATING};
use crate::domain::ShutdownReason;
use crate::ids::{DomId, PcpuId, PoolId, VcpuRef};
use crate::platform::Platform;
use crate::sched::{Decision, Pool, SchedCtx, Scheduler};
use crate::time::STime;
use crate::toolstack::ops::ToolstackError;
use crate::trace::TraceEvent;

/// Most toolstack pauses of one domain (`domain_pause_by_systemcontroller`).
const CONTROLLER_PAUSE_MAX: u32 = 255;

impl Hypervisor {
    /// Runs `f` with pool `pool`'s scheduler and a context, then flushes tickles and
    /// scheduler trace events to the platform.
    pub(crate) fn with_sched<P, R>(
        &mut self,
        pool: PoolId,
        p: &mut P,
        f: impl FnOnce(&mut dyn Scheduler, &mut SchedCtx<'_>) -> R,
    ) -> R
    where
        P: Platform + ?Sized,
    {
        let now = p.now();
        let Some(Pool {
            cpus, sched, timer, ..
        }) = self.pools.get_mut(pool)
        else {
            panic!("{pool:?} does not exist");
        };
        let mut ctx = SchedCtx {
            now,
            domains: &mut self.domains,
            pool_cpus: cpus,
            curr: &self.curr,
            tickles: &mut self.tickles,
            events: &mut self.sched_events,
        };
        let result = f(sched.as_mut(), &mut ctx);
        let wanted = sched.next_timer();
        let rearm = *timer != wanted;
        // Most hooks leave nothing behind: the test stays inline, the flush is a call.
        if !(self.sched_events.is_empty() && self.tickles.is_empty()) {
            self.flush_sched_output(p);
        }
        if rearm {
            self.arm_pool_timer(pool, wanted, p);
        }
        result
    }

    /// Re-arms pool `pool`'s timer if its scheduler now wants another deadline.
    fn arm_pool_timer<P: Platform + ?Sized>(
        &mut self,
        pool: PoolId,
        wanted: Option<STime>,
        p: &mut P,
    ) {
        let armed = &mut self.pool_mut(pool).timer;
        if *armed == wanted {
            return;
        }
        *armed = wanted;
        match wanted {
            Some(deadline) => p.set_pool_timer(pool, deadline),
            None => p.cancel_pool_timer(pool),
        }
        trace_plain(
            p,
            TraceEvent::PoolTimerSet {
                pool,
                deadline: wanted,
            },
        );
    }

    /// Hands the scheduler's trace events to the platform and sends the tickles' IPIs.
    fn flush_sched_output<P: Platform + ?Sized>(&mut self, p: &mut P) {
        // Mostly tickles alone: the events' drain (and its drop) is skipped then.
        if !self.sched_events.is_empty() {
            self.flush_sched_events(p);
        }
        // Drain in place: the vector keeps its capacity for the next hook.
        for cpu in self.tickles.drain(..) {
            if !self.softirq_pending[cpu.index()] {
                self.softirq_pending[cpu.index()] = true;
                trace_plain(p, TraceEvent::Tickle { pcpu: cpu });
                p.send_ipi(cpu, crate::platform::IpiKind::Schedule);
            }
        }
    }

    /// Hands the scheduler's trace events to the platform, in order.
    fn flush_sched_events<P: Platform + ?Sized>(&mut self, p: &mut P) {
        for event in self.sched_events.drain(..) {
            // A scheduler's printk (credit2's runqueue lines) also goes to the ring.
            if let TraceEvent::Console { text } = &event {
                self.console.printk(text);
            }
            p.trace(&event);
        }
    }

    /// `schedule()` on `cpu`: ask the pool's scheduler, switch, re-arm the timer.
    pub(crate) fn schedule<P: Platform + ?Sized>(&mut self, cpu: PcpuId, p: &mut P) {
        let now = p.now();
        let prev = self.curr[cpu.index()];
        let decision = match self.cpu_pool[cpu.index()] {
            Some(pool) => self.with_sched(pool, p, |s, ctx| s.do_schedule(ctx, cpu, prev)),
            None => Decision::idle(),
        };
        trace_plain(
            p,
            TraceEvent::Schedule {
                pcpu: cpu,
                prev,
                next: decision.next,
                next_time: decision.next_time,
                reason: decision.reason,
                credit_ns: decision.credit_ns,
            },
        );
        // A hot-path invariant: checked in debug builds (every test run), like a
        // `debug_assert`; the lookup it needs is not paid in release runs.
        if let (true, Some(next)) = (cfg!(debug_assertions), decision.next) {
            self.assert_can_run(next, cpu);
        }
        if decision.next != prev {
            self.switch(cpu, prev, decision.next, now, p);
        }
        self.arm_timer(cpu, decision, now, p);
    }

    fn assert_can_run(&self, next: VcpuRef, cpu: PcpuId) {
        let (vcpu, runnable) = self
            .domains
            .vcpu_runnable(next)
            .expect("scheduler picked an unknown vCPU");
        // credit2's balance_load may ask to move the vCPU it just picked (VPF_migrating
        // plus a tickle): Xen still switches to it and deschedules it at once.
        let migrating = vcpu.pause_flags & VPF_MIGRATING != 0;
        assert!(runnable || migrating, "{next:?} picked while not runnable");
        assert_eq!(
            vcpu.processor, cpu,
            "{next:?} picked on {cpu:?} but processor differs"
        );
        assert!(
            vcpu.running_on.is_none_or(|r| r == cpu),
            "{next:?} already runs elsewhere"
        );
        assert!(
            vcpu.hard_affinity.test(cpu),
            "{next:?} picked outside its hard affinity"
        );
    }

    fn switch<P: Platform + ?Sized>(
        &mut self,
        cpu: PcpuId,
        prev: Option<VcpuRef>,
        next: Option<VcpuRef>,
        now: STime,
        p: &mut P,
    ) {
        // What the scheduler's `context_saved` reads of `prev` (its processor and whether
        // it may run), from this lookup: nothing below changes either. Also whether it is
        // marked migrating: no scheduler's `context_saved` marks a vCPU (only `migrate`
        // and credit2's `balance_load` in `do_schedule` do), so after it only a vCPU
        // marked now can have a migration to finish.
        let mut saved = None;
        if let Some(v) = prev {
            let (vcpu, runnable) = self
                .domains
                .vcpu_runnable_mut(v)
                .expect("running vCPU exists");
            let migrating = vcpu.pause_flags & VPF_MIGRATING != 0;
            saved = Some((v, vcpu.processor, runnable, migrating));
            vcpu.running_on = None;
            let to = if vcpu.is_blocked() {
                Runstate::Blocked
            } else if runnable {
                Runstate::Runnable
            } else {
                Runstate::Offline
            };
            let from = vcpu.runstate_change(to, now);
            trace_plain(p, TraceEvent::Runstate { vcpu: v, from, to });
        }
        if let Some(v) = next {
            let vcpu = self.domains.vcpu_mut(v).expect("picked vCPU exists");
            vcpu.running_on = Some(cpu);
            let from = vcpu.runstate_change(Runstate::Running, now);
            trace_plain(
                p,
                TraceEvent::Runstate {
                    vcpu: v,
                    from,
                    to: Runstate::Running,
                },
            );
        }
        self.curr[cpu.index()] = next;
        p.context_switch(cpu, prev, next);
        // prev exists: it was looked up above, and nothing since removes a vCPU.
        let Some((v, processor, runnable, migrating)) = saved else {
            return;
        };
        if let Some(pool) = self.cpu_pool[cpu.index()] {
            self.with_sched(pool, p, |s, ctx| {
                s.context_saved_known(ctx, v, processor, runnable);
            });
            // sched_context_switched: a pending migration completes once prev is off (the
            // usual vCPU, not marked, has none: its second lookup is left out).
            if migrating {
                self.vcpu_migrate_finish(v, p);
            } else {
                debug_assert!(
                    self.domains
                        .vcpu(v)
                        .is_some_and(|x| x.pause_flags & VPF_MIGRATING == 0),
                    "{v:?} marked migrating by context_saved"
                );
            }
        }
    }

    /// `vcpu_migrate_start`: mark `v` migrating and put it to sleep; the move happens in
    /// [`Hypervisor::vcpu_migrate_finish`], at once if `v` is not running, else after the
    /// switch away from it.
    pub(crate) fn vcpu_migrate_start<P: Platform + ?Sized>(&mut self, v: VcpuRef, p: &mut P) {
        let Some(vcpu) = self.domains.vcpu_mut(v) else {
            return;
        };
        vcpu.pause_flags |= VPF_MIGRATING;
        self.vcpu_sleep_nosync(v, p);
        self.vcpu_migrate_finish(v, p);
    }

    /// `sched_unit_migrate_finish`: if `v` is off its pCPU and still marked migrating, ask
    /// the scheduler where it should run (`pick_resource`), move it there (`migrate`), clear
    /// the flag and wake it. Runs after every switch away from a vCPU and mostly finds
    /// nothing to do: the test stays inline (`always`: the move inlined into it makes it too
    /// large for the inliner's own choice).
    #[inline(always)]
    pub(crate) fn vcpu_migrate_finish<P: Platform + ?Sized>(&mut self, v: VcpuRef, p: &mut P) {
        let pending = self
            .domains
            .vcpu(v)
            .is_some_and(|x| x.running_on.is_none() && x.pause_flags & VPF_MIGRATING != 0);
        if pending {
            self.vcpu_migrate_move(v, p);
        }
    }

    /// The move of [`Hypervisor::vcpu_migrate_finish`]: `v` is off its pCPU and migrating
    /// (rare: an affinity or pool change, or credit2's load balancing).
    #[cold]
    fn vcpu_migrate_move<P: Platform + ?Sized>(&mut self, v: VcpuRef, p: &mut P) {
        let Some(pool) = self.domains.get(v.dom).map(|d| d.pool) else {
            return;
        };
        let new_cpu = self.with_sched(pool, p, |s, ctx| s.pick_cpu(ctx, v));
        self.with_sched(pool, p, |s, ctx| s.migrate(ctx, v, new_cpu));
        if let Some(vcpu) = self.domains.vcpu_mut(v) {
            vcpu.pause_flags &= !VPF_MIGRATING;
        }
        self.vcpu_wake(v, p);
    }

    fn arm_timer<P: Platform + ?Sized>(
        &mut self,
        cpu: PcpuId,
        decision: Decision,
        now: STime,
        p: &mut P,
    ) {
        if decision.next_time.is_negative() {
            if self.timer[cpu.index()].take().is_some() {
                p.cancel_timer(cpu);
            }
            return;
        }
        let deadline = now.after(decision.next_time);
        self.timer[cpu.index()] = Some(deadline);
        p.set_timer(cpu, deadline);
        trace_plain(
            p,
            TraceEvent::TimerSet {
                pcpu: cpu,
                deadline,
            },
        );
    }

    fn running_vcpu(&self, v: VcpuRef) -> Result<PcpuId, InputError> {
        let vcpu = self.domains.vcpu(v).ok_or(InputError::UnknownVcpu(v))?;
        vcpu.running_on.ok_or(InputError::VcpuNotRunning(v))
    }

    /// `vcpu_block`: the guest on a running vCPU blocks; its pCPU reschedules at once.
    pub(crate) fn vcpu_block<P: Platform + ?Sized>(
        &mut self,
        v: VcpuRef,
        p: &mut P,
    ) -> Result<(), InputError> {
        let vcpu = self.domains.vcpu_mut(v).ok_or(InputError::UnknownVcpu(v))?;
        let cpu = vcpu.running_on.ok_or(InputError::VcpuNotRunning(v))?;
        vcpu.pause_flags |= VPF_BLOCKED;
        self.schedule(cpu, p);
        Ok(())
    }

    /// `vcpu_yield`: the scheduler's yield hook, then reschedule at once.
    pub(crate) fn vcpu_yield<P: Platform + ?Sized>(
        &mut self,
        v: VcpuRef,
        p: &mut P,
    ) -> Result<(), InputError> {
        let cpu = self.running_vcpu(v)?;
        if let Some(pool) = self.cpu_pool[cpu.index()] {
            self.with_sched(pool, p, |s, ctx| s.yield_vcpu(ctx, v));
        }
        self.schedule(cpu, p);
        Ok(())
    }

    /// An event for a blocked vCPU: clear `VPF_blocked` and wake it (`vcpu_unblock`).
    pub(crate) fn vcpu_wake_event<P: Platform + ?Sized>(
        &mut self,
        v: VcpuRef,
        p: &mut P,
    ) -> Result<(), InputError> {
        let vcpu = self.domains.vcpu_mut(v).ok_or(InputError::UnknownVcpu(v))?;
        if vcpu.pause_flags & VPF_BLOCKED == 0 {
            // vcpu_unblock: nothing to do if not blocked (the event is simply pending).
            return Ok(());
        }
        vcpu.pause_flags &= !VPF_BLOCKED;
        self.vcpu_wake(v, p);
        Ok(())
    }

    /// `vcpu_wake`.
    pub(crate) fn vcpu_wake<P: Platform + ?Sized>(&mut self, v: VcpuRef, p: &mut P) {
        let now = p.now();
        let Some((vcpu, runnable, pool)) = self.domains.vcpu_runnable_pool_mut(v) else {
            return;
        };
        if runnable {
            if vcpu.runstate >= Runstate::Blocked {
                let from = vcpu.runstate_change(Runstate::Runnable, now);
                trace_plain(
                    p,
                    TraceEvent::Runstate {
                        vcpu: v,
                        from,
                        to: Runstate::Runnable,
                    },
                );
            }
            self.with_sched(pool, p, |s, ctx| s.wake(ctx, v));
        } else if !vcpu.is_blocked() && vcpu.runstate == Runstate::Blocked {
            let from = vcpu.runstate_change(Runstate::Offline, now);
            trace_plain(
                p,
                TraceEvent::Runstate {
                    vcpu: v,
                    from,
                    to: Runstate::Offline,
                },
            );
        }
    }

    /// `vcpu_sleep_nosync`.
    pub(crate) fn vcpu_sleep_nosync<P: Platform + ?Sized>(&mut self, v: VcpuRef, p: &mut P) {
        let now = p.now();
        if self.domains.runnable(v) {
            return;
        }
        let Some(pool) = self.domains.get(v.dom).map(|d| d.pool) else {
            return;
        };
        let Some(vcpu) = self.domains.vcpu_mut(v) else {
            return;
        };
        if vcpu.runstate == Runstate::Runnable {
            let from = vcpu.runstate_change(Runstate::Offline, now);
            trace_plain(
                p,
                TraceEvent::Runstate {
                    vcpu: v,
                    from,
                    to: Runstate::Offline,
                },
            );
        }
        self.with_sched(pool, p, |s, ctx| s.sleep(ctx, v));
    }

    fn vcpu_refs(&self, dom: DomId) -> alloc::vec::Vec<VcpuRef> {
        self.domains
            .get(dom)
            .map(|d| d.vcpus.iter().map(|v| v.id).collect())
            .unwrap_or_default()
    }

    /// `domain_pause`: one more pause reference; every vCPU is put to sleep.
    pub(crate) fn domain_pause<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        let Some(d) = self.domains.get_mut(dom) else {
            return;
        };
        d.pause_count += 1;
        self.trace_pause(dom, p);
        for v in self.vcpu_refs(dom) {
            self.vcpu_sleep_nosync(v, p);
        }
    }

    /// `domain_unpause`: drop a pause reference; at zero every vCPU is woken.
    pub(crate) fn domain_unpause<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        let Some(d) = self.domains.get_mut(dom) else {
            return;
        };
        assert!(d.pause_count > 0, "d{} unpaused below zero", dom.raw());
        d.pause_count -= 1;
        let now_unpaused = d.pause_count == 0;
        self.trace_pause(dom, p);
        if now_unpaused {
            for v in self.vcpu_refs(dom) {
                self.vcpu_wake(v, p);
            }
        }
    }

    fn trace_pause<P: Platform + ?Sized>(&self, dom: DomId, p: &mut P) {
        if let Some(d) = self.domains.get(dom) {
            p.trace(&TraceEvent::Pause {
                dom,
                pause_count: d.pause_count,
                controller_pause_count: d.controller_pause_count,
            });
        }
    }

    /// `domain_pause_by_systemcontroller` (`xl pause`, `xl create -p`).
    pub(crate) fn controller_pause<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let d = self
            .domains
            .get_mut(dom)
            .ok_or(ToolstackError::NoSuchDomain)?;
        if d.controller_pause_count >= CONTROLLER_PAUSE_MAX {
            return Err(ToolstackError::PauseOverflow);
        }
        d.controller_pause_count += 1;
        self.domain_pause(dom, p);
        Ok(())
    }

    /// `domain_unpause_by_systemcontroller` (`xl unpause`).
    pub(crate) fn controller_unpause<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let d = self
            .domains
            .get_mut(dom)
            .ok_or(ToolstackError::NoSuchDomain)?;
        if d.controller_pause_count == 0 {
            return Err(ToolstackError::NotPaused);
        }
        d.controller_pause_count -= 1;
        self.domain_unpause(dom, p);
        self.console_boot(dom, p);
        Ok(())
    }

    /// The guest called SCHEDOP_shutdown(reason).
    pub(crate) fn guest_shutdown<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        reason: ShutdownReason,
        p: &mut P,
    ) -> Result<(), InputError> {
        if !self.is_alive(dom) {
            return Err(InputError::UnknownDomain(dom));
        }
        self.console_shutdown(dom, reason, p);
        self.domain_shutdown(dom, reason, p);
        Ok(())
    }

    /// `domain_shutdown`: record the reason, pause every vCPU for shutdown, then
    /// finalise (all vCPUs paused): `is_shut_down`, and the toolstack's monitor reacts.
    pub(crate) fn domain_shutdown<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        reason: ShutdownReason,
        p: &mut P,
    ) {
        let Some(d) = self.domains.get_mut(dom) else {
            return;
        };
        if d.is_shutting_down {
            return;
        }
        d.is_shutting_down = true;
        d.shutdown_reason = Some(reason);
        p.trace(&TraceEvent::Shutdown { dom, reason });
        for v in self.vcpu_refs(dom) {
            if let Some(vcpu) = self.domains.vcpu_mut(v) {
                vcpu.pause_count += 1;
            }
            self.vcpu_sleep_nosync(v, p);
        }
        // __domain_finalise_shutdown: every vCPU is paused_for_shutdown (no deferrals).
        if let Some(d) = self.domains.get_mut(dom) {
            d.is_shut_down = true;
        }
        // VIRQ_DOM_EXC -> @releaseDomain -> xl's per-domain monitor.
        self.start_monitor(dom, reason, p);
    }

    /// Takes every vCPU of `dom` out of its pool's scheduler (`sched_destroy_vcpu`).
    pub(crate) fn remove_vcpus_from_scheduler<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        p: &mut P,
    ) {
        let Some(pool) = self.domains.get(dom).map(|d| d.pool) else {
            return;
        };
        for v in self.vcpu_refs(dom) {
            let running = self.domains.vcpu(v).and_then(|x| x.running_on);
            assert!(
                running.is_none(),
                "{v:?} removed while running on {running:?}"
            );
            self.with_sched(pool, p, |s, ctx| s.remove_vcpu(ctx, v));
        }
        debug_assert!(self.pools.contains(pool));
    }
}
