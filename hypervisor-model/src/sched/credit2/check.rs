//! The credit2 invariant checker (spec §8 items 7–11, 14, 16), run after every event in
//! tests and under `--check`.
//!
//! # Invariants checked
//! - runqs sorted by credit, members assigned, queued, runnable, not scheduled, not parked,
//!   on a pCPU of the runqueue;
//! - credits within bounds; `max_weight` equals the recomputed maximum;
//! - runqueue masks within `active`, `active` within the pool, every pool pCPU in exactly
//!   one runqueue; an idle (untickled) pCPU runs no vCPU;
//! - parked vCPUs have `VPF_parked`, are on their domain's list, and nowhere else;
//! - runqueue `load` counts exactly the queued and scheduled vCPUs;
//! - each runqueue's hint order links exactly its pCPUs, oldest hint first, and a pCPU
//!   without a hint is idle.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::hint_order;
use super::{Credit2Scheduler, Runqueue, CARRYOVER_MAX, CREDIT_INIT, CREDIT_MIN, FLAG_SCHEDULED};
use crate::cpumask::CpuMask;
use crate::domain::vcpu::VPF_PARKED;
use crate::domain::DomainTable;
use crate::sched::Violation;

fn push(out: &mut Vec<Violation>, invariant: &'static str, detail: String) {
    out.push(Violation { invariant, detail });
}

impl Credit2Scheduler {
    pub(crate) fn check_all(
        &self,
        domains: &DomainTable,
        pool_cpus: &CpuMask,
        out: &mut Vec<Violation>,
    ) {
        for rq in self.rqs.iter().flatten() {
            self.check_runqueue(domains, pool_cpus, rq, out);
        }
        self.check_cpus(pool_cpus, out);
        for (i, unit) in self.units.iter().enumerate() {
            if let Some(unit) = unit {
                self.check_unit(domains, i, unit, out);
            }
        }
        for (dom, d) in self.doms.iter() {
            for idx in &d.parked {
                let unit = self.u(*idx);
                let flagged = domains
                    .vcpu(unit.v)
                    .is_some_and(|x| x.pause_flags & VPF_PARKED != 0);
                if !unit.parked || unit.on_runq || !flagged || unit.v.dom != dom {
                    push(out, "credit2.parked_consistent", format!("{:?}", unit.v));
                }
            }
            if d.cap == 0 && (!d.parked.is_empty() || d.timer_armed) {
                push(
                    out,
                    "credit2.uncapped_not_parked",
                    format!("d{}", dom.raw()),
                );
            }
        }
    }

    fn check_runqueue(
        &self,
        domains: &DomainTable,
        pool_cpus: &CpuMask,
        rq: &Runqueue,
        out: &mut Vec<Violation>,
    ) {
        let id = rq.id;
        let credits = rq.waiters().map(|idx| self.u(idx).credit);
        if credits.clone().zip(credits.skip(1)).any(|(a, b)| a < b) {
            push(out, "credit2.runq_sorted", format!("runqueue {id}"));
        }
        if !self.runq_credits_agree(id) {
            push(out, "credit2.runq_credits", format!("runqueue {id}"));
        }
        for idx in &rq.runq {
            let unit = self.u(*idx);
            let processor_ok = domains
                .vcpu(unit.v)
                .is_some_and(|x| rq.active.test(x.processor));
            let ok = unit.rqd == Some(id)
                && unit.on_runq
                && !unit.parked
                && unit.flags & FLAG_SCHEDULED == 0
                && processor_ok
                && domains.runnable(unit.v);
            if !ok {
                push(
                    out,
                    "credit2.runq_member",
                    format!("{:?} in runqueue {id}", unit.v),
                );
            }
        }
        let max = rq
            .svc
            .iter()
            .map(|idx| self.u(*idx).weight)
            .fold(1, u32::max);
        if max != rq.max_weight {
            push(
                out,
                "credit2.max_weight",
                format!("runqueue {id}: {} != {max}", rq.max_weight),
            );
        }
        let masks_ok = rq.idle.is_subset(&rq.active)
            && rq.tickled.is_subset(&rq.active)
            && rq.smt_idle.is_subset(&rq.idle)
            && rq.active.is_subset(pool_cpus)
            && rq.active.weight() == rq.nr_cpus;
        if !masks_ok {
            push(out, "credit2.runqueue_masks", format!("runqueue {id}"));
        }
        if !hint_order::order_ok(&self.pcpu_curr, &rq.hint_order, &rq.active, &rq.idle) {
            push(out, "credit2.hint_order", format!("runqueue {id}"));
        }
        let counted = rq
            .svc
            .iter()
            .filter(|idx| {
                let unit = self.u(**idx);
                unit.on_runq || unit.flags & FLAG_SCHEDULED != 0
            })
            .count();
        if i64::try_from(counted).ok() != Some(rq.load) {
            push(
                out,
                "credit2.load_counts_queued_and_scheduled",
                format!("runqueue {id}: load {} != {counted}", rq.load),
            );
        }
    }

    fn check_cpus(&self, pool_cpus: &CpuMask, out: &mut Vec<Violation>) {
        for cpu in pool_cpus.iter() {
            let owners = self.runqueues().filter(|rq| rq.active.test(cpu)).count();
            let mapped = self.runqueue_of(cpu);
            let ok = owners == 1
                && mapped.is_some_and(|id| self.rq(id).active.test(cpu))
                && self.initialized.test(cpu);
            if !ok {
                push(out, "credit2.cpu_in_one_runqueue", format!("{cpu:?}"));
            }
        }
        if !self.initialized.is_subset(pool_cpus) {
            push(
                out,
                "credit2.initialized_in_pool",
                format!("{:?}", self.initialized),
            );
        }
    }

    fn check_unit(
        &self,
        domains: &DomainTable,
        idx: usize,
        unit: &super::Unit,
        out: &mut Vec<Violation>,
    ) {
        // A reset clips at INIT + CARRYOVER_MAX; only migration compensation (counted in
        // `migrate_bonus`) raises credit until the next reset.
        let credit_max = (CREDIT_INIT + CARRYOVER_MAX).saturating_add(unit.migrate_bonus);
        if unit.credit < CREDIT_MIN || unit.credit > credit_max {
            push(
                out,
                "credit2.credit_bounds",
                format!("{:?}: {}", unit.v, unit.credit),
            );
        }
        let Some(id) = unit.rqd else {
            push(out, "credit2.unit_assigned", format!("{:?}", unit.v));
            return;
        };
        let Some(rq) = self.rqs.get(id).and_then(Option::as_ref) else {
            push(
                out,
                "credit2.unit_assigned",
                format!("{:?}: runqueue {id}", unit.v),
            );
            return;
        };
        if rq.svc.iter().filter(|x| **x == idx).count() != 1 {
            push(out, "credit2.svc_membership", format!("{:?}", unit.v));
        }
        if unit.on_runq != rq.runq.contains(&idx) {
            push(out, "credit2.on_runq_flag", format!("{:?}", unit.v));
        }
        let Some(vcpu) = domains.vcpu(unit.v) else {
            push(out, "credit2.unit_has_vcpu", format!("{:?}", unit.v));
            return;
        };
        if (vcpu.pause_flags & VPF_PARKED != 0) != unit.parked {
            push(out, "credit2.parked_flag", format!("{:?}", unit.v));
        }
        if let Some(cpu) = vcpu.running_on {
            if rq.idle.test(cpu) && !rq.tickled.test(cpu) {
                push(
                    out,
                    "credit2.idle_cpu_runs_nothing",
                    format!("{:?} on {cpu:?}", unit.v),
                );
            }
            if unit.flags & FLAG_SCHEDULED == 0 {
                push(out, "credit2.running_is_scheduled", format!("{:?}", unit.v));
            }
        }
    }
}
