//! The null scheduler: each vCPU is statically bound to one pCPU, which runs it or idles.
//!
//! Follows xen/common/sched/null.c (Xen 4.17): `pick_res`, `unit_assign`, `unit_deassign`,
//! `null_unit_insert`, `null_unit_remove`, `null_unit_wake`, `null_unit_sleep`,
//! `null_unit_migrate`, `null_schedule`; spec `schedulers.md` §4.
//!
//! # Invariants
//! - A pCPU has at most one assigned vCPU; a vCPU is assigned to at most one pCPU.
//! - An assigned vCPU is never in the waitqueue.
//! - `cpus_free` is exactly the pool's pCPUs with no assigned vCPU.
//! - `do_schedule` returns the assigned vCPU or idle: never anything else.
//! - `waiting` flags exactly the vCPUs in `waitq` (an O(1) membership test).
//!
//! xensim differs: `cpumask_any` (random in Xen) is `first` (spec §9.2), and the trylock
//! in `null_schedule` always succeeds (spec §9.3). There is no tasklet work, so the
//! tasklet branch of `null_schedule` never runs.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;

use super::affinity::{
    balance_mask, check_affinity, has_soft_affinity, BalanceStep, BALANCE_STEPS,
};
use super::params::{DomParams, SchedError};
use super::{Decision, PickReason, SchedCtx, Scheduler, Violation};
use crate::cpumask::CpuMask;
use crate::domain::DomainTable;
use crate::ids::{PcpuId, VcpuRef};
use crate::time::Span;
use crate::trace::TraceEvent;

/// The null scheduler's private data (`struct null_private` plus per-pCPU `null_pcpu`).
#[derive(Debug)]
pub struct NullScheduler {
    /// `npc->unit` per host pCPU.
    assigned: Vec<Option<VcpuRef>>,
    /// `prv->cpus_free`.
    cpus_free: CpuMask,
    /// `prv->waitq`, FIFO.
    waitq: VecDeque<VcpuRef>,
    /// Which vCPUs are in `waitq`, so that membership is O(1) (`wake` asks on every call).
    waiting: WaitFlags,
}

/// One flag per vCPU, indexed by domid then vCPU index: set iff the vCPU is in `waitq`.
#[derive(Debug, Default)]
struct WaitFlags {
    by_dom: Vec<Vec<bool>>,
    count: usize,
}

impl WaitFlags {
    fn get(&self, v: VcpuRef) -> bool {
        let Ok(vcpu_index) = usize::try_from(v.vcpu.raw()) else {
            return false;
        };
        self.by_dom
            .get(usize::from(v.dom.raw()))
            .and_then(|vcpus| vcpus.get(vcpu_index))
            .copied()
            .unwrap_or(false)
    }

    fn set(&mut self, v: VcpuRef, waiting: bool) {
        let dom_index = usize::from(v.dom.raw());
        let vcpu_index = usize::try_from(v.vcpu.raw()).unwrap_or(usize::MAX);
        assert!(vcpu_index < usize::MAX, "vCPU index out of range");
        if self.by_dom.len() <= dom_index {
            self.by_dom.resize_with(dom_index + 1, Vec::new);
        }
        let vcpus = &mut self.by_dom[dom_index];
        if vcpus.len() <= vcpu_index {
            vcpus.resize(vcpu_index + 1, false);
        }
        let was = core::mem::replace(&mut vcpus[vcpu_index], waiting);
        assert_ne!(was, waiting, "{v:?}: waitqueue flag already {waiting}");
        if waiting {
            self.count += 1;
        } else {
            self.count -= 1;
        }
    }
}

impl NullScheduler {
    /// A null scheduler for a host with `nr_cpus` pCPUs and no pCPU in its pool yet.
    pub fn new(nr_cpus: u32) -> NullScheduler {
        let slot_count = usize::try_from(nr_cpus).unwrap_or(0);
        NullScheduler {
            assigned: alloc::vec![None; slot_count],
            cpus_free: CpuMask::empty(nr_cpus),
            waitq: VecDeque::new(),
            waiting: WaitFlags::default(),
        }
    }

    fn assigned_to(&self, cpu: PcpuId) -> Option<VcpuRef> {
        self.assigned[cpu.index()]
    }

    fn in_waitq(&self, v: VcpuRef) -> bool {
        self.waiting.get(v)
    }

    fn remove_from_waitq(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        if !self.in_waitq(v) {
            return;
        }
        if let Some(pos) = self.waitq.iter().position(|w| *w == v) {
            self.waitq.remove(pos);
            self.waiting.set(v, false);
            ctx.trace(TraceEvent::NullWaitq {
                vcpu: v,
                added: false,
            });
        }
    }

    fn add_to_waitq(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        assert!(!self.in_waitq(v), "{v:?} twice in the waitqueue");
        self.waitq.push_back(v);
        self.waiting.set(v, true);
        ctx.trace(TraceEvent::NullWaitq {
            vcpu: v,
            added: true,
        });
    }

    /// `unit_assign`: bind `v` to `cpu`.
    fn assign(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef, cpu: PcpuId) {
        assert!(
            self.assigned_to(cpu).is_none(),
            "{cpu:?} already has a vCPU"
        );
        assert!(
            ctx.domains.vcpu(v).is_some_and(|x| x.is_online()),
            "{v:?} offline"
        );
        self.assigned[cpu.index()] = Some(v);
        ctx.set_processor(v, cpu);
        self.cpus_free.clear(cpu);
        ctx.trace(TraceEvent::NullAssign {
            vcpu: v,
            pcpu: cpu,
            assigned: true,
        });
    }

    /// `unit_deassign`: free `v`'s pCPU and hand it to a suitable waiter, soft affinity
    /// first. Returns true if a pCPU was tickled.
    fn deassign(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) -> bool {
        let cpu = ctx.processor(v);
        assert!(!self.in_waitq(v), "{v:?} assigned and waiting");
        assert_eq!(
            self.assigned_to(cpu),
            Some(v),
            "{v:?} not assigned to {cpu:?}"
        );
        self.assigned[cpu.index()] = None;
        self.cpus_free.set(cpu);
        ctx.trace(TraceEvent::NullAssign {
            vcpu: v,
            pcpu: cpu,
            assigned: false,
        });
        match self.waiter_for(ctx, cpu) {
            Some(waiter) => {
                self.remove_from_waitq(ctx, waiter);
                self.assign(ctx, waiter, cpu);
                ctx.tickle(cpu);
                true
            }
            None => false,
        }
    }

    /// The first waitqueue vCPU that may run on `cpu`, scanning for soft affinity first,
    /// then hard (`unit_deassign` and `null_schedule`).
    fn waiter_for(&self, ctx: &SchedCtx<'_>, cpu: PcpuId) -> Option<VcpuRef> {
        BALANCE_STEPS.iter().find_map(|step| {
            self.waitq.iter().copied().find(|w| {
                (*step == BalanceStep::Hard || has_soft_affinity(ctx, *w))
                    && check_affinity(ctx, *w, cpu, *step)
            })
        })
    }

    /// `pick_res`.
    fn pick_res(&self, ctx: &SchedCtx<'_>, v: VcpuRef) -> PcpuId {
        let cpu = ctx.processor(v);
        for step in BALANCE_STEPS {
            if step == BalanceStep::Soft && !has_soft_affinity(ctx, v) {
                continue;
            }
            let mask = balance_mask(ctx, v, step).and(ctx.pool_cpus);
            let mine_or_free = self.assigned_to(cpu).is_none_or(|a| a == v);
            if mine_or_free && mask.test(cpu) {
                return cpu;
            }
            if let Some(free) = mask.first_and(&self.cpus_free) {
                return free;
            }
        }
        // Xen: cpumask_any(pool & hard); xensim: the first such pCPU (spec §9.2).
        let hard = &ctx.vcpu(v).hard_affinity;
        match ctx.pool_cpus.first_and(hard) {
            Some(any) => any,
            None => panic!("{v:?} has no pCPU in hard affinity and pool"),
        }
    }

    fn try_assign_or_wait(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        // null_unit_insert's retry loop: each retry happens only if a free pCPU exists in
        // hard & pool, and pick_res then returns a free one, so it ends in one extra round.
        for _round in 0..2 {
            let cpu = self.pick_res(ctx, v);
            ctx.set_processor(v, cpu);
            if self.assigned_to(cpu).is_none() {
                self.assign(ctx, v, cpu);
                return;
            }
            let hard = &ctx.vcpu(v).hard_affinity;
            if !ctx.pool_cpus.intersects_and(hard, &self.cpus_free) {
                break;
            }
        }
        self.add_to_waitq(ctx, v);
    }
}

impl Scheduler for NullScheduler {
    fn opt_name(&self) -> &'static str {
        "null"
    }

    fn name(&self) -> &'static str {
        "null Scheduler"
    }

    fn init_messages(&self, out: &mut Vec<alloc::string::String>) {
        // null_init: one printk with three lines.
        out.push("Initializing null scheduler".into());
        out.push("WARNING: This is experimental software in development.".into());
        out.push("Use at your own risk.".into());
    }

    fn add_pcpu(&mut self, _ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        // init_pdata: the pCPU is free and has no vCPU. null_schedule will pick up a
        // waiter the next time it runs there.
        self.cpus_free.set(cpu);
        self.assigned[cpu.index()] = None;
    }

    fn remove_pcpu(&mut self, _ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        assert!(
            self.assigned_to(cpu).is_none(),
            "{cpu:?} leaves the pool with a vCPU"
        );
        self.cpus_free.clear(cpu);
    }

    fn insert_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        if !ctx.vcpu(v).is_online() {
            return;
        }
        // Insert is followed by a wake, which tickles: no softirq here (null.c).
        self.try_assign_or_wait(ctx, v);
    }

    fn remove_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        if !ctx.vcpu(v).is_online() {
            assert!(!self.in_waitq(v), "offline {v:?} in the waitqueue");
            return;
        }
        if self.in_waitq(v) {
            self.remove_from_waitq(ctx, v);
            return;
        }
        let cpu = ctx.processor(v);
        // Xen deassigns whenever the pCPU has some vCPU; with our invariants it is `v`.
        if self.assigned_to(cpu).is_some() {
            self.deassign(ctx, v);
        }
    }

    fn wake(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        let cpu = ctx.processor(v);
        if ctx.curr_on(cpu) == Some(v) || self.in_waitq(v) {
            return;
        }
        if self.assigned_to(cpu) == Some(v) {
            ctx.tickle(cpu);
            return;
        }
        // Coming back online: take the old pCPU if it is free and affinity allows.
        let fits_hard = check_affinity(ctx, v, cpu, BalanceStep::Hard);
        let fits_soft =
            !has_soft_affinity(ctx, v) || check_affinity(ctx, v, cpu, BalanceStep::Soft);
        if self.assigned_to(cpu).is_none() && fits_hard && fits_soft {
            self.assign(ctx, v, cpu);
            ctx.tickle(cpu);
            return;
        }
        self.add_to_waitq(ctx, v);
        let targets = ctx
            .vcpu(v)
            .hard_affinity
            .and(ctx.pool_cpus)
            .and(&self.cpus_free);
        for target in targets.iter() {
            ctx.tickle(target);
        }
    }

    fn sleep(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        let cpu = ctx.processor(v);
        let mut tickled = false;
        if !ctx.vcpu(v).is_online() {
            if self.in_waitq(v) {
                self.remove_from_waitq(ctx, v);
            } else if self.assigned_to(cpu) == Some(v) {
                tickled = self.deassign(ctx, v);
            }
        }
        if !tickled && ctx.curr_on(cpu) == Some(v) {
            ctx.tickle(cpu);
        }
    }

    fn yield_vcpu(&mut self, _ctx: &mut SchedCtx<'_>, _v: VcpuRef) {
        // null.c has no yield hook: the core just reschedules, and the same vCPU runs on.
    }

    fn pick_cpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) -> PcpuId {
        self.pick_res(ctx, v)
    }

    fn migrate(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef, new_cpu: PcpuId) {
        let old_cpu = ctx.processor(v);
        if old_cpu == new_cpu {
            return;
        }
        if self.assigned_to(old_cpu) == Some(v) {
            self.deassign(ctx, v);
        }
        if !ctx.vcpu(v).is_online() {
            self.remove_from_waitq(ctx, v);
        } else if self.assigned_to(new_cpu).is_none()
            && check_affinity(ctx, v, new_cpu, BalanceStep::Hard)
        {
            self.remove_from_waitq(ctx, v);
            self.assign(ctx, v, new_cpu);
        } else if !self.in_waitq(v) {
            self.add_to_waitq(ctx, v);
        }
        ctx.set_processor(v, new_cpu);
    }

    fn do_schedule(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        _prev: Option<VcpuRef>,
    ) -> Decision {
        let mut next = self.assigned_to(cpu);
        if next.is_none() {
            // New in the pool or back online: take a suitable waiter (soft first).
            if let Some(waiter) = self.waiter_for(ctx, cpu) {
                self.remove_from_waitq(ctx, waiter);
                self.assign(ctx, waiter, cpu);
                next = Some(waiter);
            } else {
                self.cpus_free.set(cpu);
            }
        }
        match next.filter(|v| ctx.domains.runnable(*v)) {
            Some(v) => Decision {
                next: Some(v),
                next_time: Span::from_ns(-1),
                reason: PickReason::Assigned,
                credit_ns: None,
            },
            None => Decision::idle(),
        }
    }

    fn context_saved(&mut self, _ctx: &mut SchedCtx<'_>, _prev: VcpuRef) {
        // null.c has no context_saved hook.
    }

    fn dom_params(&self, _dom: crate::ids::DomId) -> Result<DomParams, SchedError> {
        Ok(DomParams::Null)
    }

    fn check_invariants(
        &self,
        domains: &DomainTable,
        pool_cpus: &CpuMask,
        out: &mut Vec<Violation>,
    ) {
        for cpu in pool_cpus.iter() {
            let assigned = self.assigned_to(cpu);
            if assigned.is_none() != self.cpus_free.test(cpu) {
                out.push(Violation {
                    invariant: "null.cpus_free_matches_assignment",
                    detail: format!(
                        "{cpu:?}: assigned {assigned:?}, free {}",
                        self.cpus_free.test(cpu)
                    ),
                });
            }
            if let Some(v) = assigned {
                check_assigned(self, domains, cpu, v, out);
            }
        }
        if self.waiting.count != self.waitq.len() || !self.waitq.iter().all(|v| self.in_waitq(*v)) {
            out.push(Violation {
                invariant: "null.waitq_flags_match",
                detail: format!(
                    "{} flags for {} waiters",
                    self.waiting.count,
                    self.waitq.len()
                ),
            });
        }
        for v in &self.waitq {
            if self.assigned.contains(&Some(*v)) {
                out.push(Violation {
                    invariant: "null.assigned_not_waiting",
                    detail: format!("{v:?}"),
                });
            }
        }
        if !self.cpus_free.is_subset(pool_cpus) {
            out.push(Violation {
                invariant: "null.free_cpus_in_pool",
                detail: format!("{:?}", self.cpus_free),
            });
        }
    }
}

fn check_assigned(
    s: &NullScheduler,
    domains: &DomainTable,
    cpu: PcpuId,
    v: VcpuRef,
    out: &mut Vec<Violation>,
) {
    let count = s.assigned.iter().filter(|a| **a == Some(v)).count();
    if count != 1 {
        out.push(Violation {
            invariant: "null.one_pcpu_per_vcpu",
            detail: format!("{v:?} on {count} pCPUs"),
        });
    }
    match domains.vcpu(v) {
        Some(vcpu) if vcpu.processor != cpu => out.push(Violation {
            invariant: "null.assigned_processor",
            detail: format!(
                "{v:?} assigned to {cpu:?} but processor {:?}",
                vcpu.processor
            ),
        }),
        Some(vcpu) if vcpu.running_on.is_some_and(|r| r != cpu) => out.push(Violation {
            invariant: "null.runs_only_where_assigned",
            detail: format!("{v:?} assigned to {cpu:?} runs on {:?}", vcpu.running_on),
        }),
        Some(_) => {}
        None => out.push(Violation {
            invariant: "null.assigned_exists",
            detail: format!("{v:?}"),
        }),
    }
}
