//! credit2's per-pCPU hint of what runs there: the unit `schedule` picked and when it
//! started running, so that the hot paths (`schedule` on the current vCPU, `tickle_score`
//! on every busy pCPU it scans) skip the domain → vCPU → unit lookup and the read of the
//! vCPU's runstate entry time; and the hint of what a pCPU switched away from, so that
//! `context_saved` skips the same lookup.
//!
//! Follows nothing in Xen (which reads `curr_on_cpu(cpu)->priv` and the runstate); it only
//! caches, and the answers are the ones of the lookups it spares.
//!
//! # Invariants
//! - A hint is used only when it names the vCPU the core runs on the pCPU, and its unit
//!   only while that unit slot still holds that vCPU's unit (debug builds compare it with
//!   the lookup).
//! - While a hint names the running vCPU, `entered_ns` is that vCPU's runstate entry time
//!   (debug builds compare).

use super::Credit2Scheduler;
use crate::ids::{PcpuId, VcpuRef};
use crate::sched::SchedCtx;

/// The hint `schedule` leaves for a pCPU it told to run a vCPU. It spares the domain →
/// vCPU → unit lookup of the running vCPU and, for `tickle_score`'s `is_preemptable`, the
/// read of the vCPU's runstate entry time: one entry per busy pCPU scanned instead of
/// three cache misses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CurrHint {
    /// The vCPU picked.
    pub v: VcpuRef,
    /// Its unit when picked (valid while that slot still holds `v`'s unit).
    pub unit: usize,
    /// When it started running there, ns (its runstate entry time while it runs).
    pub entered_ns: i64,
}

impl Credit2Scheduler {
    /// The `pcpu_curr` hint of `cpu` if it names `v`.
    pub(crate) fn curr_hint(&self, cpu: PcpuId, v: VcpuRef) -> Option<CurrHint> {
        self.pcpu_curr
            .get(cpu.index())
            .copied()
            .flatten()
            .filter(|hint| hint.v == v)
    }

    /// True if `cpu`'s hint names the vCPU running there and that vCPU entered its
    /// runstate at or after `from_ns` (no unit or vCPU lookup: the scan of `runq_tickle`
    /// skips such a pCPU, which `is_preemptable` refuses).
    #[inline(always)]
    pub(crate) fn hint_says_recent(&self, ctx: &SchedCtx<'_>, cpu: PcpuId, from_ns: i64) -> bool {
        let index = cpu.index();
        match (self.pcpu_curr.get(index), ctx.curr.get(index)) {
            (Some(Some(hint)), Some(Some(running))) => {
                let recent = hint.entered_ns >= from_ns && hint.v == *running;
                debug_assert!(
                    !recent || hint.entered_ns == ctx.vcpu(hint.v).state_entry_time.as_ns(),
                    "stale running-since hint of {cpu:?}"
                );
                recent
            }
            _ => false,
        }
    }

    /// `idx`, a hinted unit of `v`, if that slot still holds `v`'s unit.
    fn hinted_slot_of(&self, idx: usize, v: VcpuRef) -> Option<usize> {
        if !matches!(self.units.get(idx), Some(Some(unit)) if unit.v == v) {
            return None;
        }
        debug_assert_eq!(self.unit_index(v), Some(idx), "stale pCPU hint");
        Some(idx)
    }

    /// The unit of a hint of `v` if its slot still holds `v`'s unit.
    fn hinted_unit_of(&self, hint: Option<CurrHint>, v: VcpuRef) -> Option<usize> {
        self.hinted_slot_of(hint?.unit, v)
    }

    /// The unit of `v` from its hint when valid, else from the full lookup.
    pub(crate) fn hinted_unit_or_lookup(&self, hint: Option<CurrHint>, v: VcpuRef) -> usize {
        self.hinted_unit_of(hint, v).unwrap_or_else(|| self.idx(v))
    }

    /// The unit of `v`, being context-saved: the `pcpu_prev` hint of its pCPU when that
    /// names `v` and its unit, else the full lookup.
    pub(crate) fn saved_unit(&self, ctx: &SchedCtx<'_>, v: VcpuRef) -> usize {
        self.pcpu_prev
            .get(ctx.processor(v).index())
            .copied()
            .flatten()
            .filter(|(hinted, _)| *hinted == v)
            .and_then(|(_, idx)| self.hinted_slot_of(idx, v))
            .unwrap_or_else(|| self.idx(v))
    }

    /// The unit of `v`, which runs on `cpu`: the `pcpu_curr` hint when it still names
    /// `v`'s unit, else the full lookup.
    pub(crate) fn curr_unit(&self, cpu: PcpuId, v: VcpuRef) -> usize {
        self.hinted_unit_or_lookup(self.curr_hint(cpu, v), v)
    }

    /// The runstate entry time of `v`, which runs on `cpu`, from its hint when that names
    /// `v`, else read from the vCPU.
    pub(crate) fn hinted_entered_ns(
        ctx: &SchedCtx<'_>,
        cpu: PcpuId,
        hint: Option<CurrHint>,
        v: VcpuRef,
    ) -> i64 {
        match hint {
            Some(hint) => {
                debug_assert_eq!(
                    hint.entered_ns,
                    ctx.vcpu(v).state_entry_time.as_ns(),
                    "stale running-since hint of {cpu:?}"
                );
                hint.entered_ns
            }
            None => ctx.vcpu(v).state_entry_time.as_ns(),
        }
    }
}
