//! A standalone [`RtdsScheduler`] over the domain table of a booted host, with a
//! miniature scheduling core (pick, switch, context saved) so tests can look at queues
//! and flags directly.

use alloc::vec::Vec;

use super::{boot, create, guest, RtdsScheduler};
use crate::cpumask::CpuMask;
use crate::domain::vcpu::Runstate;
use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::sched::params::SchedInit;
use crate::sched::{Decision, SchedCtx, SchedKind, Scheduler, Violation};
use crate::testing::FakePlatform;
use crate::time::STime;
use crate::trace::TraceEvent;

/// Guests whose vCPUs are runnable and not running: the harness's world.
pub(super) struct Harness {
    pub hv: Hypervisor,
    pub _p: FakePlatform,
    pub rt: RtdsScheduler,
    pub pool: CpuMask,
    pub curr: Vec<Option<VcpuRef>>,
    pub tickles: Vec<PcpuId>,
    pub events: Vec<TraceEvent>,
    pub now: STime,
}

impl Harness {
    /// A host of `nr_cpus` pCPUs and one guest per entry of `vcpu_counts` (domids from
    /// 1), its vCPUs runnable and not yet known to the harness's scheduler.
    pub fn new(nr_cpus: u32, vcpu_counts: &[u32]) -> Harness {
        let (mut hv, mut p) = boot(nr_cpus, SchedKind::Null);
        for (index, count) in vcpu_counts.iter().enumerate() {
            let job = u32::try_from(index).expect("few guests") + 1;
            create(
                &mut hv,
                &mut p,
                job,
                guest(&alloc::format!("g{job}"), *count),
                true,
            );
            let dom = DomId::new(u16::try_from(job).expect("small")).expect("domid");
            let d = hv.domains.get_mut(dom).expect("guest exists");
            d.pause_count = 0;
            d.controller_pause_count = 0;
        }
        let topo = hv.host.cpus.clone();
        let opts = hv.sched_opts;
        let init = SchedInit {
            nr_cpus,
            topo: &topo,
            opts: &opts,
        };
        Harness {
            rt: RtdsScheduler::new(&init),
            pool: CpuMask::full(nr_cpus),
            curr: alloc::vec![None; usize::try_from(nr_cpus).expect("small")],
            tickles: Vec::new(),
            events: Vec::new(),
            now: p.now,
            hv,
            _p: p,
        }
    }

    /// Runs `f` with the scheduler and a context at `self.now`.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut RtdsScheduler, &mut SchedCtx<'_>) -> R) -> R {
        let mut ctx = SchedCtx {
            now: self.now,
            domains: &mut self.hv.domains,
            pool_cpus: &self.pool,
            curr: &self.curr,
            tickles: &mut self.tickles,
            events: &mut self.events,
        };
        f(&mut self.rt, &mut ctx)
    }

    /// Moves the clock to `ns` after boot.
    pub fn at(&mut self, ns: i64) {
        let t = STime::from_ns(ns);
        assert!(t >= self.now, "harness time goes backwards");
        self.now = t;
    }

    /// Inserts `v` (a new vCPU joins the scheduler) on pCPU `cpu`.
    pub fn insert(&mut self, v: VcpuRef, cpu: PcpuId) {
        self.hv.domains.vcpu_mut(v).expect("vcpu").processor = cpu;
        self.with(|s, ctx| s.insert_vcpu(ctx, v));
    }

    /// `schedule()` on `cpu`: pick, switch (runstates and `curr`), then context saved.
    pub fn schedule(&mut self, cpu: PcpuId) -> Decision {
        let prev = self.curr[cpu.index()];
        let decision = self.with(|s, ctx| s.do_schedule(ctx, cpu, prev));
        if decision.next != prev {
            let now = self.now;
            if let Some(v) = prev {
                let runnable = self.hv.domains.runnable(v);
                let vcpu = self.hv.domains.vcpu_mut(v).expect("prev");
                vcpu.running_on = None;
                let to = if vcpu.is_blocked() {
                    Runstate::Blocked
                } else if runnable {
                    Runstate::Runnable
                } else {
                    Runstate::Offline
                };
                vcpu.runstate_change(to, now);
            }
            if let Some(v) = decision.next {
                let vcpu = self.hv.domains.vcpu_mut(v).expect("next");
                vcpu.running_on = Some(cpu);
                vcpu.runstate_change(Runstate::Running, now);
            }
            self.curr[cpu.index()] = decision.next;
            if let Some(v) = prev {
                self.with(|s, ctx| s.context_saved(ctx, v));
            }
        }
        decision
    }

    /// The guest on `v` blocks (its pCPU reschedules at once, as the core does).
    pub fn block(&mut self, v: VcpuRef) {
        let vcpu = self.hv.domains.vcpu_mut(v).expect("vcpu");
        vcpu.pause_flags |= crate::domain::vcpu::VPF_BLOCKED;
        let cpu = vcpu.running_on.expect("blocks while running");
        self.schedule(cpu);
    }

    /// An event wakes the blocked `v`.
    pub fn wake(&mut self, v: VcpuRef) {
        let now = self.now;
        let vcpu = self.hv.domains.vcpu_mut(v).expect("vcpu");
        vcpu.pause_flags &= !crate::domain::vcpu::VPF_BLOCKED;
        if vcpu.runstate != Runstate::Runnable {
            vcpu.runstate_change(Runstate::Runnable, now);
        }
        self.with(|s, ctx| s.wake(ctx, v));
    }

    /// The pool timer fires now.
    pub fn fire_timer(&mut self) {
        self.with(|s, ctx| s.timer_fired(ctx));
    }

    /// Drops the recorded tickles and returns them.
    pub fn take_tickles(&mut self) -> Vec<PcpuId> {
        core::mem::take(&mut self.tickles)
    }

    /// Delivers the pending tickles: `schedule()` on each tickled pCPU, in order.
    pub fn settle(&mut self) {
        for _round in 0..8 {
            let pending = self.take_tickles();
            if pending.is_empty() {
                return;
            }
            for cpu in pending {
                self.schedule(cpu);
            }
        }
        panic!("tickles did not settle");
    }

    /// The scheduler's invariant violations.
    pub fn violations(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        self.rt
            .check_invariants(&self.hv.domains, &self.pool, &mut out);
        out
    }
}
