//! rtds parameters through `XEN_DOMCTL_scheduler_op`: the domain-wide get and put, and the
//! per-vCPU get and put.
//!
//! Follows xen/common/sched/rt.c (Xen 4.17): `rt_dom_cntl`; spec `schedulers.md` §3.1,
//! §3.7 (last paragraph).
//!
//! # Invariants
//! - A get never changes state; a refused put changes nothing.
//! - Stored values are whole microseconds in ns, so a get returns what a put stored.
//!
//! xensim differs from the spec, following Xen 4.17 (the spec describes later Xen):
//! - The domain-wide put refuses only a zero period or budget (`-EINVAL`); the range
//!   checks of the per-vCPU put were added to it after 4.17 (libxl 4.17 checks
//!   `period >= 1`, `budget >= 1` and `budget <= period` before calling it).
//! - Setting extratime on a depleted vCPU only sets the flag: it stays depleted until its
//!   next replenishment (the refill on that change came after 4.17).

use super::server::{
    Queue, DEFAULT_BUDGET_NS, DEFAULT_PERIOD_NS, MAX_PERIOD_NS, MIN_BUDGET_NS, MIN_PERIOD_NS,
};
use super::RtdsScheduler;
use crate::ids::{DomId, VcpuRef};
use crate::sched::params::{DomParams, SchedError, VcpuParams};
use crate::sched::SchedCtx;

const NS_PER_US: i64 = 1_000;

impl RtdsScheduler {
    /// `XEN_DOMCTL_SCHEDOP_getinfo`: always the defaults, whatever the vCPUs have.
    pub(super) fn get_dom_params(&self, _dom: DomId) -> Result<DomParams, SchedError> {
        Ok(DomParams::Rtds {
            period_us: us(DEFAULT_PERIOD_NS),
            budget_us: us(DEFAULT_BUDGET_NS),
        })
    }

    /// `XEN_DOMCTL_SCHEDOP_putinfo`: period and budget of every vCPU (not extratime).
    pub(super) fn put_dom_params(
        &mut self,
        _ctx: &mut SchedCtx<'_>,
        dom: DomId,
        params: &DomParams,
    ) -> Result<(), SchedError> {
        let DomParams::Rtds {
            period_us,
            budget_us,
        } = *params
        else {
            return Err(SchedError::Invalid);
        };
        if period_us == 0 || budget_us == 0 {
            return Err(SchedError::Invalid);
        }
        let period_ns = i64::from(period_us) * NS_PER_US;
        let budget_ns = i64::from(budget_us) * NS_PER_US;
        for s in self.servers.of_dom_mut(dom) {
            set_period_budget(s, period_ns, budget_ns);
        }
        Ok(())
    }

    /// `XEN_DOMCTL_SCHEDOP_getvcpuinfo` for one vCPU.
    pub(super) fn get_vcpu_params(&self, v: VcpuRef) -> Result<VcpuParams, SchedError> {
        let s = self.servers.get(v).ok_or(SchedError::Invalid)?;
        Ok(VcpuParams {
            period_us: us(s.period_ns),
            budget_us: us(s.budget_ns),
            extratime: s.extratime,
        })
    }

    /// `XEN_DOMCTL_SCHEDOP_putvcpuinfo` for one vCPU.
    pub(super) fn put_vcpu_params(
        &mut self,
        _ctx: &mut SchedCtx<'_>,
        v: VcpuRef,
        params: &VcpuParams,
    ) -> Result<(), SchedError> {
        let period_ns = i64::from(params.period_us) * NS_PER_US;
        let budget_ns = i64::from(params.budget_us) * NS_PER_US;
        if period_ns > MAX_PERIOD_NS
            || budget_ns < MIN_BUDGET_NS
            || budget_ns > period_ns
            || period_ns < MIN_PERIOD_NS
        {
            return Err(SchedError::Invalid);
        }
        let s = self.servers.get_mut(v).ok_or(SchedError::Invalid)?;
        set_period_budget(s, period_ns, budget_ns);
        if s.extratime != params.extratime {
            s.acct.mark_params_changed();
        }
        // Xen 4.17: the flag only; a depleted server stays on depletedq (module doc).
        s.extratime = params.extratime;
        debug_assert!(s.queue != Queue::Depleted || s.cur_budget_ns == 0);
        Ok(())
    }
}

fn set_period_budget(s: &mut super::server::Server, period_ns: i64, budget_ns: i64) {
    assert!(period_ns > 0, "zero period stored");
    assert!(budget_ns > 0, "zero budget stored");
    if s.period_ns != period_ns {
        s.period_changed = true;
    }
    if s.period_ns != period_ns || s.budget_ns != budget_ns {
        s.acct.mark_params_changed();
    }
    s.period_ns = period_ns;
    s.budget_ns = budget_ns;
}

/// ns to whole µs for the hypercall (values are stored from µs, so exact).
fn us(ns: i64) -> u32 {
    u32::try_from(ns / NS_PER_US).unwrap_or(u32::MAX)
}
