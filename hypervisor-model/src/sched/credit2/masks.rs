//! credit2 runqueue masks: the `idle`, `tickled` and `smt_idle` updates of a decision or
//! a tickle, and the `smt_idle` core rules, with one-word forms for hosts of at most 64
//! pCPUs.
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17: `tickle_cpu`, `smt_idle_mask_set`,
//! `smt_idle_mask_clear`, and the idle/tickled updates of `csched2_schedule`; spec §2.4,
//! §2.9.
//!
//! # Invariants
//! - `smt_idle` holds whole cores only, each within `idle` and apart from `tickled`.
//! - A fused update (`untickle_set_idle`, `untickle_clear_idle`) leaves the masks as its
//!   steps one after the other do (`tests_fast.rs` compares the decisions that use them).

use super::{Credit2Scheduler, Runqueue};
use crate::cpumask::CpuMask;
use crate::ids::PcpuId;
use crate::sched::SchedCtx;

/// `smt_idle_mask_set` of `cpu`, whose (runqueue) siblings are `siblings`: add its core if
/// all of it are idlers, the idlers being `idle & !tickled`. A core of one thread (no SMT,
/// the usual host) is `cpu` alone: added if `cpu` is an idler, with no walk of the masks.
#[inline(always)]
pub(crate) fn smt_idle_mask_set(
    cpu: PcpuId,
    siblings: &CpuMask,
    idle: &CpuMask,
    tickled: &CpuMask,
    mask: &mut CpuMask,
) {
    if siblings.is_only(cpu) {
        if idle.test(cpu) && !tickled.test(cpu) {
            mask.set(cpu);
        }
        return;
    }
    smt_idle_mask_set_core(siblings, idle, tickled, mask);
}

/// `smt_idle_mask_set` over the masks: a core of several threads.
#[inline(never)]
pub(crate) fn smt_idle_mask_set_core(
    siblings: &CpuMask,
    idle: &CpuMask,
    tickled: &CpuMask,
    mask: &mut CpuMask,
) {
    // `siblings` within `idle` and apart from `tickled`, in one walk.
    if !CpuMask::any_combined([siblings, idle, tickled], |[s, i, t]| s & (!i | t)) {
        mask.or_with(siblings);
    }
}

/// `smt_idle_mask_clear` of `cpu`, whose siblings are `siblings`: drop its core if it is
/// wholly in the mask. A core of one thread is `cpu` alone: clearing it is that (a no-op
/// when it is not in the mask).
#[inline(always)]
pub(crate) fn smt_idle_mask_clear(cpu: PcpuId, siblings: &CpuMask, mask: &mut CpuMask) {
    if siblings.is_only(cpu) {
        mask.clear(cpu);
        return;
    }
    smt_idle_mask_clear_core(siblings, mask);
}

/// `smt_idle_mask_clear` over the masks: a core of several threads.
#[inline(never)]
pub(crate) fn smt_idle_mask_clear_core(siblings: &CpuMask, mask: &mut CpuMask) {
    if !CpuMask::any_combined([siblings, mask], |[s, m]| s & !m) {
        mask.and_not_with(siblings);
    }
}

/// `smt_idle_mask_set` on a one-word host: the new `smt_idle` word from the words of the
/// siblings, `idle`, `tickled` and `smt_idle` (what [`smt_idle_mask_set_core`] computes).
#[inline(always)]
pub(crate) fn smt_idle_word_set(siblings: u64, idle: u64, tickled: u64, mask: u64) -> u64 {
    if siblings & (!idle | tickled) == 0 {
        mask | siblings
    } else {
        mask
    }
}

/// `smt_idle_mask_clear` on a one-word host (what [`smt_idle_mask_clear_core`] computes).
#[inline(always)]
pub(crate) fn smt_idle_word_clear(siblings: u64, mask: u64) -> u64 {
    if siblings & !mask == 0 {
        mask & !siblings
    } else {
        mask
    }
}

/// The untickle of the pCPU of bit `bit` on a one-word host: the new `tickled` and
/// `smt_idle` words (its core may be wholly idle again), from the words of the siblings,
/// `idle`, `tickled` and `smt_idle`.
#[inline(always)]
fn untickle_words(siblings: u64, idle: u64, tickled: u64, mask: u64, bit: u64) -> (u64, u64) {
    let tickled = tickled & !bit;
    (tickled, smt_idle_word_set(siblings, idle, tickled, mask))
}

/// `set_idle` of the pCPU of bit `bit` on a one-word host: the new `idle` and `smt_idle`
/// words, the same ones if it is idle already.
#[inline(always)]
fn set_idle_words(siblings: u64, idle: u64, tickled: u64, mask: u64, bit: u64) -> (u64, u64) {
    if idle & bit != 0 {
        return (idle, mask);
    }
    let idle = idle | bit;
    (idle, smt_idle_word_set(siblings, idle, tickled, mask))
}

/// `clear_idle` of the pCPU of bit `bit` on a one-word host: the new `idle` and
/// `smt_idle` words, the same ones if it was not idle.
#[inline(always)]
fn clear_idle_words(siblings: u64, idle: u64, mask: u64, bit: u64) -> (u64, u64) {
    if idle & bit == 0 {
        return (idle, mask);
    }
    (idle & !bit, smt_idle_word_clear(siblings, mask))
}

/// The bit of `cpu` in the word of a one-word mask of `width` pCPUs (asserting `cpu` is
/// below the width, as `CpuMask::set` does).
#[inline(always)]
fn narrow_bit(cpu: PcpuId, width: u32) -> u64 {
    assert!(cpu.raw() < width, "{cpu:?} outside mask width {width}");
    1u64 << (cpu.raw() & 63)
}

impl Credit2Scheduler {
    /// `cpu`'s siblings and runqueue `id`, borrowed together for one mask update.
    #[inline(always)]
    fn sibs_rq_mut(&mut self, cpu: PcpuId, id: usize) -> (&CpuMask, &mut Runqueue) {
        let rq = match self.rqs.get_mut(id) {
            Some(Some(rq)) => rq,
            _ => panic!("credit2: no runqueue {id}"),
        };
        (&self.pcpu_siblings[cpu.index()], rq)
    }

    /// `tickle_cpu`: mark tickled, drop its core from smt_idle, raise the softirq.
    pub(crate) fn tickle_cpu(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId, id: usize) {
        self.tickle_cpu_inline(ctx, cpu, id);
    }

    /// [`Self::tickle_cpu`], inlined into the wake, whose last step it is; the other
    /// callers share the out-of-line copy.
    #[inline(always)]
    pub(crate) fn tickle_cpu_inline(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId, id: usize) {
        let (sibs, rq) = self.sibs_rq_mut(cpu, id);
        // A host of at most 64 pCPUs: the masks' words, combined in registers.
        if let Some([s, t, m]) = CpuMask::single_words(&[sibs, &rq.tickled, &rq.smt_idle]) {
            let bit = narrow_bit(cpu, rq.tickled.width());
            rq.tickled.set_narrow_word(t | bit);
            rq.smt_idle.set_narrow_word(smt_idle_word_clear(s, m));
        } else {
            rq.tickled.set(cpu);
            smt_idle_mask_clear(cpu, sibs, &mut rq.smt_idle);
        }
        ctx.tickle(cpu);
    }

    /// `cpu` goes idle: set it in `idle` and its core in `smt_idle` if wholly idle; nothing
    /// if it is idle already.
    #[inline(always)]
    pub(crate) fn set_idle(&mut self, cpu: PcpuId, id: usize) {
        let (sibs, rq) = self.sibs_rq_mut(cpu, id);
        let masks = [sibs, &rq.idle, &rq.tickled, &rq.smt_idle];
        if let Some([s, i, t, m]) = CpuMask::single_words(&masks) {
            let bit = narrow_bit(cpu, rq.idle.width());
            if i & bit == 0 {
                let (i, m) = set_idle_words(s, i, t, m, bit);
                rq.idle.set_narrow_word(i);
                rq.smt_idle.set_narrow_word(m);
            }
            return;
        }
        if rq.idle.test(cpu) {
            return;
        }
        rq.idle.set(cpu);
        smt_idle_mask_set(cpu, sibs, &rq.idle, &rq.tickled, &mut rq.smt_idle);
    }

    /// `cpu` runs a vCPU: out of `idle`, its core out of `smt_idle`; nothing if it was not
    /// idle.
    #[inline(always)]
    pub(crate) fn clear_idle(&mut self, cpu: PcpuId, id: usize) {
        let (sibs, rq) = self.sibs_rq_mut(cpu, id);
        if let Some([s, i, m]) = CpuMask::single_words(&[sibs, &rq.idle, &rq.smt_idle]) {
            let bit = narrow_bit(cpu, rq.idle.width());
            if i & bit != 0 {
                let (i, m) = clear_idle_words(s, i, m, bit);
                rq.idle.set_narrow_word(i);
                rq.smt_idle.set_narrow_word(m);
            }
            return;
        }
        if !rq.idle.test(cpu) {
            return;
        }
        rq.idle.clear(cpu);
        smt_idle_mask_clear(cpu, sibs, &mut rq.smt_idle);
    }

    /// The untickle of `cpu` if it is tickled, then its `set_idle`: a pCPU of runqueue
    /// `id` that goes idle. On a one-word host each mask is read and written once; the
    /// result is the two steps' (nothing between them reads the masks).
    #[inline(always)]
    pub(crate) fn untickle_set_idle(&mut self, cpu: PcpuId, id: usize) {
        let (sibs, rq) = self.sibs_rq_mut(cpu, id);
        let masks = [sibs, &rq.idle, &rq.tickled, &rq.smt_idle];
        if let Some([s, i, t, m]) = CpuMask::single_words(&masks) {
            let bit = narrow_bit(cpu, rq.idle.width());
            let (t, m) = if t & bit != 0 {
                untickle_words(s, i, t, m, bit)
            } else {
                (t, m)
            };
            let (i, m) = set_idle_words(s, i, t, m, bit);
            rq.tickled.set_narrow_word(t);
            rq.idle.set_narrow_word(i);
            rq.smt_idle.set_narrow_word(m);
            return;
        }
        if rq.tickled.test(cpu) {
            self.untickle(cpu, id);
        }
        self.set_idle(cpu, id);
    }

    /// The untickle of `cpu` (when `tickled`), then its `clear_idle`: a pCPU of runqueue
    /// `id` that picks a vCPU. On a one-word host each mask is read and written once; the
    /// result is the two steps' (nothing between them reads the masks).
    #[inline(always)]
    pub(crate) fn untickle_clear_idle(&mut self, cpu: PcpuId, id: usize, tickled: bool) {
        let (sibs, rq) = self.sibs_rq_mut(cpu, id);
        let masks = [sibs, &rq.idle, &rq.tickled, &rq.smt_idle];
        if let Some([s, i, t, m]) = CpuMask::single_words(&masks) {
            let bit = narrow_bit(cpu, rq.idle.width());
            let (t, m) = if tickled {
                untickle_words(s, i, t, m, bit)
            } else {
                (t, m)
            };
            let (i, m) = clear_idle_words(s, i, m, bit);
            rq.tickled.set_narrow_word(t);
            rq.idle.set_narrow_word(i);
            rq.smt_idle.set_narrow_word(m);
            return;
        }
        if tickled {
            self.untickle(cpu, id);
        }
        self.clear_idle(cpu, id);
    }

    /// The schedule path's untickle: clear `cpu` from `tickled`, maybe restore smt_idle.
    #[inline(always)]
    pub(crate) fn untickle(&mut self, cpu: PcpuId, id: usize) {
        let (sibs, rq) = self.sibs_rq_mut(cpu, id);
        let masks = [sibs, &rq.idle, &rq.tickled, &rq.smt_idle];
        if let Some([s, i, t, m]) = CpuMask::single_words(&masks) {
            let bit = narrow_bit(cpu, rq.tickled.width());
            let (t, m) = untickle_words(s, i, t, m, bit);
            rq.tickled.set_narrow_word(t);
            rq.smt_idle.set_narrow_word(m);
            return;
        }
        rq.tickled.clear(cpu);
        smt_idle_mask_set(cpu, sibs, &rq.idle, &rq.tickled, &mut rq.smt_idle);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{
        smt_idle_mask_clear, smt_idle_mask_clear_core, smt_idle_mask_set, smt_idle_mask_set_core,
        smt_idle_word_clear, smt_idle_word_set,
    };
    use crate::cpumask::CpuMask;
    use crate::ids::PcpuId;

    /// A mask of `width` pCPUs from the low bits of `bits` (two words when wider than 64).
    fn mask_of(width: u32, bits: u128) -> CpuMask {
        let mut mask = CpuMask::empty(width);
        for cpu in (0..width).filter(|c| bits >> c & 1 != 0) {
            mask.set(PcpuId::new(cpu).expect("cpu in range"));
        }
        mask
    }

    proptest! {
        #[test]
        fn smt_idle_fast_paths_match_the_mask_walks(
            wide in any::<bool>(),
            cpu_raw in 0u32..80,
            alone in any::<bool>(),
            sibling_bits in any::<u128>(),
            idle_bits in any::<u128>(),
            tickled_bits in any::<u128>(),
            mask_bits in any::<u128>(),
        ) {
            // One word, and two; a core of one thread, and a random one holding `cpu`.
            let width = if wide { 80 } else { 64 };
            let cpu = PcpuId::new(cpu_raw % width).expect("cpu in range");
            let mut siblings = mask_of(width, if alone { 0 } else { sibling_bits });
            siblings.set(cpu);
            let (idle, tickled) = (mask_of(width, idle_bits), mask_of(width, tickled_bits));
            let mut fast = mask_of(width, mask_bits);
            let mut walked = fast.clone();
            smt_idle_mask_set(cpu, &siblings, &idle, &tickled, &mut fast);
            smt_idle_mask_set_core(&siblings, &idle, &tickled, &mut walked);
            prop_assert_eq!(&fast, &walked);
            smt_idle_mask_clear(cpu, &siblings, &mut fast);
            smt_idle_mask_clear_core(&siblings, &mut walked);
            prop_assert_eq!(&fast, &walked);
            let mut fast = mask_of(width, mask_bits);
            let mut walked = fast.clone();
            smt_idle_mask_clear(cpu, &siblings, &mut fast);
            smt_idle_mask_clear_core(&siblings, &mut walked);
            prop_assert_eq!(fast, walked);
        }

        #[test]
        fn smt_idle_words_match_the_mask_walks(
            siblings in any::<u64>(),
            idle in any::<u64>(),
            tickled in any::<u64>(),
            mask in any::<u64>(),
        ) {
            let m = |bits: u64| mask_of(64, u128::from(bits));
            let mut walked = m(mask);
            smt_idle_mask_set_core(&m(siblings), &m(idle), &m(tickled), &mut walked);
            prop_assert_eq!(m(smt_idle_word_set(siblings, idle, tickled, mask)), walked);
            let mut walked = m(mask);
            smt_idle_mask_clear_core(&m(siblings), &mut walked);
            prop_assert_eq!(m(smt_idle_word_clear(siblings, mask)), walked);
        }
    }
}
