//! credit2 caps: per-domain budgets, parking vCPUs that ran out, replenishment timers,
//! and the per-domain parameters (weight and cap).
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17: `park_unit`, `unit_grab_budget`,
//! `unit_return_budget`, `unpark_parked_units`, `do_replenish`,
//! `replenish_domain_budget`, `csched2_dom_cntl`; spec §2.10.
//!
//! # Invariants
//! - A parked vCPU has `VPF_parked`, is on its domain's parked list, and on no runq.
//! - An uncapped domain has no parked vCPU and no armed timer.
//! - The pool timer is the earliest armed replenishment (`next_timer`).
//!
//! xensim differs: the replenishment timers of all domains share the pool timer (Xen
//! arms one timer per domain on `cpumask_any` of the pool); firing order at equal
//! deadlines is by domid.

use alloc::vec::Vec;

use super::{Credit2Scheduler, BUDGET_NONE, FLAG_DELAYED_RUNQ_ADD, FLAG_SCHEDULED, MIN_TIMER_NS};
use crate::domain::vcpu::VPF_PARKED;
use crate::ids::DomId;
use crate::sched::params::SchedError;
use crate::sched::SchedCtx;

impl Credit2Scheduler {
    fn dom_mut(&mut self, dom: DomId) -> &mut super::Dom {
        match self.doms.get_mut(&dom) {
            Some(d) => d,
            None => panic!("credit2: unknown d{}", dom.raw()),
        }
    }

    /// The unit indexes of a domain, in vCPU order.
    fn dom_units(&self, dom: DomId) -> impl Iterator<Item = usize> + '_ {
        self.doms
            .get(&dom)
            .into_iter()
            .flat_map(|d| d.units.iter().copied().flatten())
    }

    /// `park_unit`: out of budget; off the runq, onto the head of the parked list.
    fn park(&mut self, ctx: &mut SchedCtx<'_>, idx: usize) {
        let v = self.u(idx).v;
        assert!(!self.u(idx).parked, "{v:?} parked twice");
        ctx.vcpu_mut(v).pause_flags |= VPF_PARKED;
        if self.u(idx).on_runq {
            let Some(id) = self.u(idx).rqd else {
                panic!("{v:?} queued without a runqueue")
            };
            self.runq_remove(idx);
            self.update_load(ctx, id, Some(idx), -1);
        }
        self.u_mut(idx).parked = true;
        self.dom_mut(v.dom).parked.push(idx);
    }

    /// `unit_grab_budget`: true if the unit has (or got) budget; else it is parked.
    pub(crate) fn grab_budget(&mut self, ctx: &mut SchedCtx<'_>, idx: usize) -> bool {
        if self.u(idx).budget > 0 {
            return true;
        }
        let dom = self.u(idx).v.dom;
        let (unit_budget, quota) = (self.u(idx).budget, self.u(idx).budget_quota);
        let d = self.dom_mut(dom);
        d.budget += unit_budget;
        if d.budget > 0 {
            let take = if d.budget >= quota { quota } else { d.budget };
            d.budget -= take;
            self.u_mut(idx).budget = take;
        } else {
            self.u_mut(idx).budget = 0;
            self.park(ctx, idx);
        }
        self.u(idx).budget > 0
    }

    /// `unit_return_budget`: give back what is left; returns the parked list to wake if
    /// the domain has budget again.
    pub(crate) fn return_budget(&mut self, idx: usize) -> Option<Vec<usize>> {
        let (dom, budget) = (self.u(idx).v.dom, self.u(idx).budget);
        self.u_mut(idx).budget = 0;
        let d = self.dom_mut(dom);
        d.budget += budget;
        (d.budget > 0 && !d.parked.is_empty()).then(|| core::mem::take(&mut d.parked))
    }

    /// `unpark_parked_units` over a list taken from `dom` (head = last element).
    pub(crate) fn unpark(&mut self, ctx: &mut SchedCtx<'_>, dom: DomId, mut list: Vec<usize>) {
        while let Some(idx) = list.pop() {
            let v = self.u(idx).v;
            ctx.vcpu_mut(v).pause_flags &= !VPF_PARKED;
            self.u_mut(idx).parked = false;
            if self.u(idx).flags & FLAG_SCHEDULED != 0 {
                self.u_mut(idx).flags |= FLAG_DELAYED_RUNQ_ADD;
            } else if ctx.runnable(v) {
                let Some(id) = self.u(idx).rqd else {
                    panic!("{v:?} unparked without a runqueue")
                };
                self.update_load(ctx, id, Some(idx), 1);
                self.runq_insert(idx);
                self.runq_tickle(ctx, idx);
            }
        }
        // Keep the list's capacity for the next parking.
        if let Some(d) = self.doms.get_mut(&dom) {
            if d.parked.is_empty() {
                d.parked = list;
            }
        }
    }

    fn arm_timer(&mut self, dom: DomId) {
        let d = self.dom_mut(dom);
        assert!(!d.timer_armed, "d{} timer armed twice", dom.raw());
        d.timer_armed = true;
        let at = d.next_repl;
        self.timers.insert((at, dom));
    }

    fn stop_timer(&mut self, dom: DomId) {
        let d = self.dom_mut(dom);
        if d.timer_armed {
            d.timer_armed = false;
            let at = d.next_repl;
            self.timers.remove(&(at, dom));
        }
    }

    /// Runs every replenishment due by `ctx.now`, earliest first.
    pub(crate) fn run_due_timers(&mut self, ctx: &mut SchedCtx<'_>) {
        let now = ctx.now.as_ns();
        while let Some(&(at, dom)) = self.timers.first() {
            if at > now {
                break;
            }
            self.stop_timer(dom);
            self.replenish(ctx, dom);
        }
    }

    /// `replenish_domain_budget`.
    fn replenish(&mut self, ctx: &mut SchedCtx<'_>, dom: DomId) {
        let now = ctx.now.as_ns();
        let period = self.opts.period_ns();
        let d = self.dom_mut(dom);
        loop {
            d.next_repl += period;
            d.budget += d.tot_budget;
            if d.next_repl > now {
                break;
            }
        }
        let mut freed = None;
        if d.budget > 0 {
            d.budget = d.budget.min(d.tot_budget);
            freed = Some(core::mem::take(&mut d.parked));
        }
        if let Some(list) = freed {
            self.unpark(ctx, dom, list);
        }
        self.arm_timer(dom);
    }

    /// The weight half of `csched2_dom_cntl` putinfo.
    pub(crate) fn set_weight(&mut self, dom: DomId, weight: u16) {
        let d = self.dom_mut(dom);
        let old = u32::from(d.weight);
        d.weight = weight;
        let units: Vec<usize> = self.dom_units(dom).collect();
        for idx in units {
            self.u_mut(idx).weight = u32::from(weight);
            if let Some(id) = self.u(idx).rqd {
                self.update_max_weight(id, u32::from(weight), old);
            }
        }
    }

    /// The cap half of `csched2_dom_cntl` putinfo (0 removes a cap).
    pub(crate) fn set_cap(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        dom: DomId,
        cap: u16,
    ) -> Result<(), SchedError> {
        let period = self.opts.period_ns();
        let d = self.dom_mut(dom);
        if cap == 0 {
            if d.cap != 0 {
                self.remove_cap(ctx, dom);
            }
            return Ok(());
        }
        if u32::from(cap) > 100 * u32::from(d.nr_units) {
            return Err(SchedError::Invalid);
        }
        d.tot_budget = period * i64::from(cap) / 100;
        let quota = (d.tot_budget / i64::from(d.nr_units)).max(MIN_TIMER_NS);
        let first = d.cap == 0;
        let units: Vec<usize> = self.dom_units(dom).collect();
        for idx in &units {
            self.u_mut(*idx).budget_quota = quota;
        }
        if first {
            let now = ctx.now.as_ns();
            let d = self.dom_mut(dom);
            d.budget = d.tot_budget;
            d.next_repl = now + period;
            self.arm_timer(dom);
            for idx in units {
                self.first_cap_unit(ctx, idx);
            }
        }
        self.dom_mut(dom).cap = cap;
        Ok(())
    }

    /// A unit of a domain getting its first cap: stop charging what it ran so far, make
    /// its pCPU reschedule, and start it with no budget.
    fn first_cap_unit(&mut self, ctx: &mut SchedCtx<'_>, idx: usize) {
        let v = self.u(idx).v;
        if let Some(cpu) = ctx.vcpu(v).running_on {
            let id = self.c2rqd(cpu);
            self.burn_credits(id, idx, ctx.now.as_ns());
            // Xen sets the tickled bit and raises the softirq without `tickle_cpu`.
            self.rq_mut(id).tickled.set(cpu);
            ctx.tickle(cpu);
        }
        self.u_mut(idx).budget = 0;
    }

    fn remove_cap(&mut self, ctx: &mut SchedCtx<'_>, dom: DomId) {
        self.stop_timer(dom);
        let units: Vec<usize> = self.dom_units(dom).collect();
        for idx in units {
            let unit = self.u_mut(idx);
            unit.budget = BUDGET_NONE;
            unit.budget_quota = 0;
        }
        let d = self.dom_mut(dom);
        d.cap = 0;
        let list = core::mem::take(&mut d.parked);
        self.unpark(ctx, dom, list);
    }
}
