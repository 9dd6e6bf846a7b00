//! Affinity balance steps shared by the schedulers that honour soft affinity (credit2, null).
//!
//! Follows xen/common/sched/private.h (`has_soft_affinity`, `affinity_balance_cpumask`,
//! `unit_check_affinity`, `for_each_affinity_balance_step`); spec `schedulers.md` §1.4.

use super::SchedCtx;
use crate::cpumask::CpuMask;
use crate::domain::vcpu::Vcpu;
use crate::ids::{PcpuId, VcpuRef};

/// Affinity balance steps (`BALANCE_SOFT_AFFINITY`, `BALANCE_HARD_AFFINITY`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BalanceStep {
    /// Prefer the soft affinity.
    Soft,
    /// Anything the hard affinity allows.
    Hard,
}

/// The steps in the order Xen walks them.
pub const BALANCE_STEPS: [BalanceStep; 2] = [BalanceStep::Soft, BalanceStep::Hard];

/// `has_soft_affinity`: effective soft affinity that actually restricts within the pool.
pub fn has_soft_affinity(ctx: &SchedCtx<'_>, v: VcpuRef) -> bool {
    vcpu_has_soft_affinity(ctx.pool_cpus, ctx.vcpu(v))
}

/// `has_soft_affinity` of a vCPU the caller already looked up, in a pool of `pool_cpus`.
pub fn vcpu_has_soft_affinity(pool_cpus: &CpuMask, vcpu: &Vcpu) -> bool {
    vcpu.soft_aff_effective() && !pool_cpus.is_subset(&vcpu.soft_affinity)
}

/// `affinity_balance_cpumask`: soft & hard (hard if empty) for SOFT, hard for HARD.
pub fn balance_mask(ctx: &SchedCtx<'_>, v: VcpuRef, step: BalanceStep) -> CpuMask {
    let vcpu = ctx.vcpu(v);
    match step {
        BalanceStep::Hard => vcpu.hard_affinity.clone(),
        BalanceStep::Soft => {
            let mut both = vcpu.soft_affinity.clone();
            both.and_with(&vcpu.hard_affinity);
            if both.is_empty() {
                vcpu.hard_affinity.clone()
            } else {
                both
            }
        }
    }
}

/// `unit_check_affinity`: `cpu` is in the step's mask and the pool.
pub fn check_affinity(ctx: &SchedCtx<'_>, v: VcpuRef, cpu: PcpuId, step: BalanceStep) -> bool {
    // Same answer as `balance_mask(..).and(pool).test(cpu)`, without building a mask.
    let vcpu = ctx.vcpu(v);
    let in_step = match step {
        BalanceStep::Hard => vcpu.hard_affinity.test(cpu),
        BalanceStep::Soft => {
            if vcpu.soft_affinity.intersects(&vcpu.hard_affinity) {
                vcpu.soft_affinity.test(cpu) && vcpu.hard_affinity.test(cpu)
            } else {
                vcpu.hard_affinity.test(cpu)
            }
        }
    };
    in_step && ctx.pool_cpus.test(cpu)
}
