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
//!   the lookup). The one exception is the scan's [`Credit2Scheduler::drop_recent`], which
//!   reads the time only, relying on the next invariant.
//! - Outside `schedule`, a pCPU's hint names the vCPU the core runs there, or the core
//!   runs nothing there (only tests that do not switch do that): the core switches to
//!   what `schedule` picked as soon as `do_schedule` returns and changes its `curr`
//!   nowhere else, and `schedule` writes the hint last (debug builds check it per scan).
//! - While a hint names the running vCPU, `entered_ns` is that vCPU's runstate entry time
//!   (debug builds compare).

use super::hint_order::{retain_older, write, NO_CPU};
use super::Credit2Scheduler;
use crate::cpumask::CpuMask;
use crate::ids::{DomId, PcpuId, VcpuId, VcpuRef};
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

/// One pCPU's `pcpu_curr` entry: a [`CurrHint`] or none, laid out for the scan of
/// `runq_tickle`, which reads the entry time first and compares the vCPU with the core's
/// `curr` entry only when that time is recent.
///
/// A slot without a hint has `entered_ns == i64::MIN`, a time no scan bound reaches, so
/// "entered at or after the bound" implies a hint (and its `v` is then the hinted vCPU;
/// without a hint it is a placeholder nothing reads).
///
/// The slot also links its pCPU into its runqueue's order by entry time
/// ([`super::hint_order`]); a fresh slot is unlinked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HintSlot {
    pub(super) entered_ns: i64,
    pub(super) v: VcpuRef,
    pub(super) unit: usize,
    /// The pCPU before this one in its runqueue's order ([`NO_CPU`] at the oldest end).
    pub(super) older: u32,
    /// The pCPU after this one in its runqueue's order ([`NO_CPU`] at the newest end).
    pub(super) newer: u32,
}

/// The `v` of a slot without a hint (never read: see [`HintSlot`]).
const NO_VCPU: VcpuRef = VcpuRef {
    dom: DomId::DOM0,
    vcpu: match VcpuId::new(0) {
        Some(id) => id,
        None => panic!("vCPU 0 out of range"),
    },
};

impl HintSlot {
    /// The slot of a pCPU with no hint.
    pub(crate) const NONE: HintSlot = HintSlot {
        entered_ns: i64::MIN,
        v: NO_VCPU,
        unit: 0,
        older: NO_CPU,
        newer: NO_CPU,
    };

    /// The slot holding `hint`, or none. A hint that entered at `i64::MIN` (no real
    /// time) is not kept: without it the lookups it spares run, with the same answers.
    pub(crate) fn new(hint: Option<CurrHint>) -> HintSlot {
        match hint {
            Some(hint) if hint.entered_ns != i64::MIN => HintSlot {
                entered_ns: hint.entered_ns,
                v: hint.v,
                unit: hint.unit,
                older: NO_CPU,
                newer: NO_CPU,
            },
            _ => HintSlot::NONE,
        }
    }

    /// The hint the slot holds, if any.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<CurrHint> {
        (self.entered_ns != i64::MIN).then_some(CurrHint {
            v: self.v,
            unit: self.unit,
            entered_ns: self.entered_ns,
        })
    }

    /// True if the slot holds a hint that entered at or after `from_ns` (`from_ns >
    /// i64::MIN`, so a slot without a hint never answers true).
    #[inline(always)]
    fn recent(&self, from_ns: i64) -> bool {
        self.entered_ns >= from_ns
    }
}

impl Credit2Scheduler {
    /// The `pcpu_curr` hint of `cpu` if it names `v`.
    pub(crate) fn curr_hint(&self, cpu: PcpuId, v: VcpuRef) -> Option<CurrHint> {
        self.pcpu_curr
            .get(cpu.index())
            .and_then(HintSlot::get)
            .filter(|hint| hint.v == v)
    }

    /// Drops from `busy` (pCPUs of runqueue `id`) every pCPU whose hint says its vCPU
    /// entered its runstate at or after `from_ns`: no unit or vCPU lookup, a walk of the
    /// runqueue's hint order from the oldest that stops at the first recent pCPU. The scan
    /// of `runq_tickle` skips such a pCPU: a hint names the vCPU running there, which
    /// `is_preemptable` refuses, or (in a test that does not switch) nothing runs there,
    /// which scores -1; neither beats the scan's best.
    #[inline(always)]
    pub(crate) fn drop_recent(
        &self,
        ctx: &SchedCtx<'_>,
        id: usize,
        busy: &mut CpuMask,
        from_ns: i64,
    ) {
        assert!(
            from_ns > i64::MIN,
            "a scan bound that a missing hint reaches"
        );
        let plain = cfg!(debug_assertions).then(|| {
            let mut plain = busy.clone();
            drop_recent_hints(&self.pcpu_curr, &mut plain, from_ns);
            plain
        });
        retain_older(&self.pcpu_curr, &self.rq(id).hint_order, busy, from_ns);
        debug_assert!(
            plain.is_none_or(|plain| plain == *busy),
            "the hint order's walk disagrees with the per-pCPU test"
        );
        debug_assert!(
            self.pcpu_curr.iter().zip(ctx.curr).all(|(slot, running)| {
                !slot.recent(from_ns)
                    || running.is_none()
                    || (*running == Some(slot.v)
                        && slot.entered_ns == ctx.vcpu(slot.v).state_entry_time.as_ns())
            }),
            "a recent hint of a vCPU that does not run there, or stale running-since hint"
        );
    }

    /// Writes `hint` as the `pcpu_curr` hint of `cpu`, a pCPU of runqueue `id`, keeping
    /// the runqueue's hint order.
    #[inline(always)]
    pub(crate) fn write_hint(&mut self, cpu: PcpuId, id: usize, hint: HintSlot) {
        let rq = match self.rqs.get_mut(id) {
            Some(Some(rq)) => rq,
            _ => panic!("credit2: no runqueue {id}"),
        };
        write(&mut self.pcpu_curr, &mut rq.hint_order, cpu.raw(), hint);
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

    /// The unit of `v`, being context-saved on `cpu` (its processor): the `pcpu_prev` hint
    /// of `cpu` when that names `v` and its unit, else the full lookup.
    pub(crate) fn saved_unit(&self, cpu: PcpuId, v: VcpuRef) -> usize {
        self.pcpu_prev
            .get(cpu.index())
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

/// What [`Credit2Scheduler::drop_recent`] computes, one pCPU at a time over the hint
/// slots (indexed by pCPU): drops from `busy` each pCPU whose slot holds a hint that
/// entered at or after `from_ns`. The reference the hint order's walk is checked against
/// (debug builds and tests).
pub(super) fn drop_recent_hints(slots: &[HintSlot], busy: &mut CpuMask, from_ns: i64) {
    assert!(
        from_ns > i64::MIN,
        "a scan bound that a missing hint reaches"
    );
    busy.retain(|cpu| {
        slots
            .get(cpu.index())
            .is_none_or(|slot| !slot.recent(from_ns))
    });
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::{drop_recent_hints, CurrHint, HintSlot};
    use crate::cpumask::CpuMask;
    use crate::ids::{DomId, PcpuId, VcpuId, VcpuRef};

    /// pCPUs of the hosts tried: one word of mask, and a wider one.
    const WIDTHS: [u32; 2] = [64, 80];

    fn vcpu_ref(dom: u16, vcpu: u32) -> VcpuRef {
        VcpuRef {
            dom: DomId::new(dom).expect("domid in range"),
            vcpu: VcpuId::new(vcpu).expect("vcpu in range"),
        }
    }

    /// The plain check the scan replaces: the slot's hint names the running vCPU and
    /// entered at or after `from_ns`.
    fn plain_recent(hint: Option<CurrHint>, running: Option<VcpuRef>, from_ns: i64) -> bool {
        matches!((hint, running), (Some(hint), Some(r))
            if hint.entered_ns >= from_ns && hint.v == r)
    }

    proptest! {
        #[test]
        fn drop_recent_hints_scores_the_pcpus_the_plain_check_scores(
            width_index in 0usize..2,
            entries in proptest::collection::vec(
                (any::<bool>(), 0u32..3, 0u32..3, 0i64..40, any::<bool>()),
                80,
            ),
            busy_bits in proptest::collection::vec(any::<bool>(), 80),
            from_ns in 1i64..40,
        ) {
            // Each entry: has a hint, hinted vCPU, running vCPU (2 = idle), entry time,
            // and whether the unit index is 0 or 1 (irrelevant to the answer). As the
            // core keeps it, a hinted pCPU runs its hinted vCPU or nothing (the hinted
            // vCPU's id stands in for any other running choice).
            let width = WIDTHS[width_index];
            let hints: Vec<Option<CurrHint>> = entries
                .iter()
                .map(|(hinted, v, _, entered_ns, unit)| {
                    hinted.then_some(CurrHint {
                        v: vcpu_ref(1, *v),
                        unit: usize::from(*unit),
                        entered_ns: *entered_ns,
                    })
                })
                .collect();
            let slots: Vec<HintSlot> = hints.iter().map(|hint| HintSlot::new(*hint)).collect();
            let curr: Vec<Option<VcpuRef>> = entries
                .iter()
                .map(|(hinted, v, running, _, _)| {
                    let running = if *hinted && *running < 2 { *v } else { *running };
                    (running < 2).then(|| vcpu_ref(1, running))
                })
                .collect();
            // The scan scores what is left; an idle pCPU scores -1, which never wins, so
            // the pCPUs that can win are the running ones left.
            let mut busy = CpuMask::empty(width);
            let mut expected = CpuMask::empty(width);
            for cpu in 0..width {
                let index = usize::try_from(cpu).expect("small index");
                let id = PcpuId::new(cpu).expect("cpu in range");
                if busy_bits[index] {
                    busy.set(id);
                    if !plain_recent(hints[index], curr[index], from_ns)
                        && curr[index].is_some()
                    {
                        expected.set(id);
                    }
                }
            }
            drop_recent_hints(&slots, &mut busy, from_ns);
            busy.retain(|cpu| curr[cpu.index()].is_some());
            prop_assert_eq!(busy, expected);
        }
    }

    #[test]
    fn hint_slot_without_hint_is_never_recent() {
        // The earliest bound a scan can use.
        let from_ns = i64::MIN + 1;
        assert!(!HintSlot::NONE.recent(from_ns));
        assert!(HintSlot::NONE.get().is_none());
    }
}
