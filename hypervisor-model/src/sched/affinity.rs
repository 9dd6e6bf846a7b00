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
    let answer = soft_restricts(pool_cpus, &vcpu.soft_affinity, &vcpu.hard_affinity);
    debug_assert_eq!(
        answer,
        vcpu.soft_aff_effective() && !pool_cpus.is_subset(&vcpu.soft_affinity)
    );
    answer
}

/// `has_soft_affinity` over the masks: `soft_aff_effective` (hard is not within soft, and
/// they meet), then a pool that is not within soft. Three fused word walks, no mask built.
fn soft_restricts(pool_cpus: &CpuMask, soft: &CpuMask, hard: &CpuMask) -> bool {
    CpuMask::any_combined([hard, soft], |[h, s]| h & !s)
        && CpuMask::any_combined([soft, hard], |[s, h]| s & h)
        && CpuMask::any_combined([pool_cpus, soft], |[p, s]| p & !s)
}

/// Two masks whose intersection is `affinity_balance_cpumask` of `step`, for a caller that
/// walks the soft step only when [`has_soft_affinity`] holds: `(soft, hard)` for SOFT (an
/// effective soft affinity meets the hard one, so Xen's fallback to hard never applies) and
/// `(hard, hard)` for HARD. Spares building the mask.
pub fn balance_pair(vcpu: &Vcpu, step: BalanceStep) -> (&CpuMask, &CpuMask) {
    match step {
        BalanceStep::Soft => {
            debug_assert!(
                vcpu.soft_aff_effective(),
                "soft step of an ineffective soft affinity"
            );
            (&vcpu.soft_affinity, &vcpu.hard_affinity)
        }
        BalanceStep::Hard => (&vcpu.hard_affinity, &vcpu.hard_affinity),
    }
}

/// `affinity_balance_cpumask`: soft & hard (hard if empty) for SOFT, hard for HARD.
pub fn balance_mask(ctx: &SchedCtx<'_>, v: VcpuRef, step: BalanceStep) -> CpuMask {
    let vcpu = ctx.vcpu(v);
    step_mask(&vcpu.soft_affinity, &vcpu.hard_affinity, step)
}

/// `affinity_balance_cpumask` over the masks.
fn step_mask(soft: &CpuMask, hard: &CpuMask, step: BalanceStep) -> CpuMask {
    match step {
        BalanceStep::Hard => hard.clone(),
        BalanceStep::Soft => {
            let both = soft.and(hard);
            if both.is_empty() {
                hard.clone()
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::{soft_restricts, step_mask, BalanceStep};
    use crate::cpumask::CpuMask;
    use crate::ids::PcpuId;

    /// A mask of `width` pCPUs from random words (bits past the width dropped).
    fn mask(width: u32, words: &[u64]) -> CpuMask {
        let mut out = CpuMask::empty(width);
        for cpu in 0..width {
            let word = words[usize::try_from(cpu / 64).unwrap_or(0) % words.len()];
            if word >> (cpu % 64) & 1 != 0 {
                out.set(PcpuId::new(cpu).expect("cpu in range"));
            }
        }
        out
    }

    fn sparse() -> impl Strategy<Value = Vec<u64>> {
        // Sparse and dense words, so subsets and disjoint masks both occur.
        prop::collection::vec(
            prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 0..16u64],
            3,
        )
    }

    proptest! {
        #[test]
        fn fused_soft_test_is_xens_expression(
            width in prop_oneof![Just(8u32), Just(64), Just(130)],
            s in sparse(), h in sparse(), p in sparse(),
        ) {
            let (soft, hard, pool) = (mask(width, &s), mask(width, &h), mask(width, &p));
            let effective = !hard.is_subset(&soft) && soft.intersects(&hard);
            prop_assert_eq!(
                soft_restricts(&pool, &soft, &hard),
                effective && !pool.is_subset(&soft)
            );
            // `balance_pair`'s claim: with an effective soft affinity the soft step's mask
            // is `soft & hard`.
            if effective {
                prop_assert_eq!(step_mask(&soft, &hard, BalanceStep::Soft), soft.and(&hard));
            }
            prop_assert_eq!(step_mask(&soft, &hard, BalanceStep::Hard), hard.and(&hard));
        }
    }
}
