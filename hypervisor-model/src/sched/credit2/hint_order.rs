//! credit2's per-runqueue order of its pCPUs by the entry time of their `pcpu_curr` hint,
//! oldest first, so that the busy-pCPU scan of `runq_tickle` finds the pCPUs whose vCPU
//! entered before its bound (the only ones `is_preemptable` lets it score) by walking
//! from the oldest until the first recent one, instead of testing every busy pCPU.
//!
//! Follows nothing in Xen (which scores every busy pCPU); it orders the hints of
//! `hint.rs` and answers as a test of each busy pCPU's hint time does
//! ([`super::hint::drop_recent_hints`], which the tests and debug builds compare).
//!
//! # Invariants
//! - A runqueue's order links exactly its active pCPUs, each once: a pCPU joins when it
//!   is added to the runqueue and leaves when it is removed.
//! - Along the order (`older` → `newer`), the entry times of the slots holding a hint
//!   never decrease, and none is after `newest_ns`. A slot without a hint (time
//!   `i64::MIN`, before every bound) may sit anywhere: its pCPU is idle (`schedule`
//!   leaves no hint only where it picks idle), and the scan never looks at idle pCPUs.
//! - Writing a hint moves its pCPU only when its entry time changes to a hinted one. The
//!   new time is then usually `now`, at or after every other hint's, so the move is an
//!   unlink and an append (nothing when the pCPU is already the newest); an older time
//!   is placed by a walk from the oldest.

use super::hint::HintSlot;
use crate::cpumask::CpuMask;
use crate::ids::PcpuId;

/// The link value that names no pCPU (an end of the order).
pub(crate) const NO_CPU: u32 = u32::MAX;

/// One runqueue's order of pCPUs: its ends (raw pCPU ids, [`NO_CPU`] when empty) and the
/// latest hinted time placed in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HintOrder {
    oldest: u32,
    newest: u32,
    /// At or after the entry time of every hinted slot of the order.
    newest_ns: i64,
}

impl HintOrder {
    /// The order of a runqueue without pCPUs.
    pub(crate) const EMPTY: HintOrder = HintOrder {
        oldest: NO_CPU,
        newest: NO_CPU,
        newest_ns: i64::MIN,
    };

    /// True if no pCPU is in the order.
    pub(crate) fn is_empty(&self) -> bool {
        self.oldest == NO_CPU && self.newest == NO_CPU
    }

    /// The pCPUs of the order, oldest first (at most `slots.len()` of them).
    pub(crate) fn walk<'a>(&self, slots: &'a [HintSlot]) -> impl Iterator<Item = u32> + 'a {
        let mut at = self.oldest;
        let mut left = slots.len();
        core::iter::from_fn(move || {
            let slot = slots.get(slot_index(at))?;
            left = left.checked_sub(1)?;
            let here = at;
            at = slot.newer;
            Some(here)
        })
    }
}

/// The slot index of a raw pCPU id ([`NO_CPU`] maps past every slot).
#[inline(always)]
fn slot_index(cpu: u32) -> usize {
    usize::try_from(cpu).unwrap_or(usize::MAX)
}

/// The slot of `cpu`, which the caller knows to exist.
#[inline(always)]
fn slot_mut(slots: &mut [HintSlot], cpu: u32) -> &mut HintSlot {
    match slots.get_mut(slot_index(cpu)) {
        Some(slot) => slot,
        None => panic!("credit2: no hint slot for pCPU {cpu}"),
    }
}

/// Links `cpu`, not in any order and without a hint, into `order` (at the newest end:
/// a slot without a hint may sit anywhere).
pub(crate) fn join(slots: &mut [HintSlot], order: &mut HintOrder, cpu: u32) {
    debug_assert!(
        order.walk(slots).all(|at| at != cpu),
        "pCPU {cpu} joins an order twice"
    );
    let slot = slot_mut(slots, cpu);
    assert_eq!(slot.entered_ns, i64::MIN, "pCPU {cpu} joins with a hint");
    slot.older = order.newest;
    slot.newer = NO_CPU;
    match slots.get_mut(slot_index(order.newest)) {
        Some(last) => last.newer = cpu,
        None => order.oldest = cpu,
    }
    order.newest = cpu;
}

/// Unlinks `cpu` from `order`, which holds it.
pub(crate) fn leave(slots: &mut [HintSlot], order: &mut HintOrder, cpu: u32) {
    debug_assert!(
        order.walk(slots).any(|at| at == cpu),
        "pCPU {cpu} leaves an order without it"
    );
    unlink(slots, order, cpu);
}

/// Writes `hint` (its links unused) as the hint of `cpu`, a pCPU of `order`, moving
/// `cpu` to the place of its new entry time if that changed to a hinted one.
#[inline(always)]
pub(crate) fn write(slots: &mut [HintSlot], order: &mut HintOrder, cpu: u32, hint: HintSlot) {
    let entered_ns = hint.entered_ns;
    let slot = slot_mut(slots, cpu);
    let was_ns = slot.entered_ns;
    slot.entered_ns = entered_ns;
    slot.v = hint.v;
    slot.unit = hint.unit;
    if entered_ns == was_ns || entered_ns == i64::MIN {
        // Unchanged, or no hint: the pCPU goes idle, and stays where it is.
        return;
    }
    if entered_ns >= order.newest_ns {
        order.newest_ns = entered_ns;
        if order.newest != cpu {
            move_to_newest(slots, order, cpu);
        }
        return;
    }
    unlink(slots, order, cpu);
    insert_walked(slots, order, cpu, entered_ns);
}

/// Moves `cpu`, in `order` but not its newest, to the newest end.
#[inline(always)]
fn move_to_newest(slots: &mut [HintSlot], order: &mut HintOrder, cpu: u32) {
    let last = order.newest;
    let slot = slot_mut(slots, cpu);
    let (older, newer) = (slot.older, slot.newer);
    slot.older = last;
    slot.newer = NO_CPU;
    // `cpu` is not the newest, so a pCPU comes after it.
    slot_mut(slots, newer).older = older;
    match slots.get_mut(slot_index(older)) {
        Some(before) => before.newer = newer,
        None => order.oldest = newer,
    }
    slot_mut(slots, last).newer = cpu;
    order.newest = cpu;
}

/// Takes `cpu` out of the links of `order`.
fn unlink(slots: &mut [HintSlot], order: &mut HintOrder, cpu: u32) {
    let slot = slot_mut(slots, cpu);
    let (older, newer) = (slot.older, slot.newer);
    slot.older = NO_CPU;
    slot.newer = NO_CPU;
    match slots.get_mut(slot_index(older)) {
        Some(before) => before.newer = newer,
        None => order.oldest = newer,
    }
    match slots.get_mut(slot_index(newer)) {
        Some(after) => after.older = older,
        None => order.newest = older,
    }
}

/// Links `cpu`, unlinked, whose hint entered at `entered_ns` (before `newest_ns`), into
/// `order` before the first pCPU whose hint entered later, or at the newest end if none
/// did (the rare write of a time older than the newest).
#[inline(never)]
fn insert_walked(slots: &mut [HintSlot], order: &mut HintOrder, cpu: u32, entered_ns: i64) {
    let mut at = order.oldest;
    let mut steps_left = slots.len();
    while let Some(slot) = slots.get(slot_index(at)) {
        if slot.entered_ns > entered_ns {
            break;
        }
        at = slot.newer;
        steps_left = match steps_left.checked_sub(1) {
            Some(left) => left,
            None => panic!("credit2: hint order of more pCPUs than slots"),
        };
    }
    // `cpu` goes between `before` and `at` (`NO_CPU` at either end).
    let before = match slots.get_mut(slot_index(at)) {
        Some(after) => core::mem::replace(&mut after.older, cpu),
        None => core::mem::replace(&mut order.newest, cpu),
    };
    match slots.get_mut(slot_index(before)) {
        Some(prev) => prev.newer = cpu,
        None => order.oldest = cpu,
    }
    let slot = slot_mut(slots, cpu);
    slot.older = before;
    slot.newer = at;
}

/// Keeps in `busy` (busy pCPUs of `order`, so none without a hint) those whose slot's
/// entry time is before `from_ns`: a walk from the oldest that stops at the first pCPU
/// at or after `from_ns` (a pCPU without a hint on the way is never that one, nor busy).
#[inline(always)]
pub(crate) fn retain_older(
    slots: &[HintSlot],
    order: &HintOrder,
    busy: &mut CpuMask,
    from_ns: i64,
) {
    let mut at = order.oldest;
    let older = core::iter::from_fn(|| {
        let slot = slots.get(slot_index(at))?;
        if slot.entered_ns >= from_ns {
            return None;
        }
        let here = PcpuId::new(at);
        at = slot.newer;
        Some(here)
    });
    busy.retain_listed(older.flatten());
}

/// True if `order` links exactly the pCPUs of `active`, each once, with back links that
/// mirror the forward links, and hinted entry times that never decrease and stay at or
/// before `newest_ns`, while every pCPU without a hint is in `idle` (the checker's test).
pub(crate) fn order_ok(
    slots: &[HintSlot],
    order: &HintOrder,
    active: &CpuMask,
    idle: &CpuMask,
) -> bool {
    let mut seen = CpuMask::empty(active.width());
    let mut older = NO_CPU;
    let mut older_ns = i64::MIN;
    for at in order.walk(slots) {
        let (Some(cpu), Some(slot)) = (PcpuId::new(at), slots.get(slot_index(at))) else {
            return false;
        };
        if !active.test(cpu) || seen.test(cpu) || slot.older != older {
            return false;
        }
        seen.set(cpu);
        older = at;
        if slot.entered_ns == i64::MIN {
            if !idle.test(cpu) {
                return false;
            }
            continue;
        }
        if slot.entered_ns < older_ns || slot.entered_ns > order.newest_ns {
            return false;
        }
        older_ns = slot.entered_ns;
    }
    order.newest == older && seen == *active
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::{join, leave, order_ok, retain_older, write, HintOrder};
    use crate::cpumask::CpuMask;
    use crate::ids::{DomId, PcpuId, VcpuId, VcpuRef};
    use crate::sched::credit2::hint::{drop_recent_hints, CurrHint, HintSlot};

    /// pCPUs of the hosts tried: fewer than a word of mask, and more.
    const WIDTHS: [u32; 2] = [16, 80];

    fn hint_at(entered_ns: i64) -> HintSlot {
        HintSlot::new(Some(CurrHint {
            v: VcpuRef {
                dom: DomId::new(1).expect("domid in range"),
                vcpu: VcpuId::new(0).expect("vcpu in range"),
            },
            unit: 0,
            entered_ns,
        }))
    }

    /// The order holds exactly `members`, oldest first with hinted times never
    /// decreasing, and its back links mirror its forward links.
    fn assert_order(slots: &[HintSlot], order: &HintOrder, members: &[bool]) {
        let width = u32::try_from(members.len()).expect("small");
        let mut active = CpuMask::empty(width);
        let mut idle = CpuMask::empty(width);
        for ((cpu, member), slot) in (0u32..).zip(members).zip(slots) {
            let cpu = PcpuId::new(cpu).expect("cpu in range");
            if *member {
                active.set(cpu);
            }
            // As `schedule` keeps it: a pCPU without a hint is idle.
            if *member && slot.get().is_none() {
                idle.set(cpu);
            }
        }
        assert!(
            order_ok(slots, order, &active, &idle),
            "broken order {order:?}"
        );
    }

    proptest! {
        /// After any sequence of joins, leaves and hint writes, the order is sorted and
        /// linked, and its walk keeps the busy pCPUs the plain per-pCPU test keeps.
        #[test]
        fn retain_older_keeps_what_drop_recent_hints_keeps(
            width_index in 0usize..2,
            ops in proptest::collection::vec((0u8..8, 0u32..80, 0i64..60), 1..120),
            busy_bits in proptest::collection::vec(any::<bool>(), 80),
            from_ns in 1i64..60,
        ) {
            let width = WIDTHS[width_index];
            let slot_count = usize::try_from(width).expect("small");
            let mut slots = alloc::vec![HintSlot::NONE; slot_count];
            let mut members = alloc::vec![false; slot_count];
            let mut order = HintOrder::EMPTY;
            for (kind, cpu, time_ns) in ops {
                let cpu = cpu % width;
                let index = usize::try_from(cpu).expect("small");
                match (kind, members[index]) {
                    (0, false) => {
                        join(&mut slots, &mut order, cpu);
                        members[index] = true;
                    }
                    (0, true) => {
                        leave(&mut slots, &mut order, cpu);
                        slots[index] = HintSlot::NONE;
                        members[index] = false;
                    }
                    // No hint: the slot of an idle pCPU.
                    (1, true) => write(&mut slots, &mut order, cpu, HintSlot::NONE),
                    (_, true) => write(&mut slots, &mut order, cpu, hint_at(time_ns)),
                    (_, false) => {}
                }
                assert_order(&slots, &order, &members);
            }
            let mut busy = CpuMask::empty(width);
            for cpu in 0..width {
                let index = usize::try_from(cpu).expect("small");
                // The scan's busy pCPUs are not idle, so they hold a hint.
                if busy_bits[index] && members[index] && slots[index].get().is_some() {
                    busy.set(PcpuId::new(cpu).expect("cpu in range"));
                }
            }
            let mut plain = busy.clone();
            drop_recent_hints(&slots, &mut plain, from_ns);
            retain_older(&slots, &order, &mut busy, from_ns);
            prop_assert_eq!(busy, plain);
        }
    }

    #[test]
    fn hint_written_at_an_older_time_goes_before_newer_ones() {
        let mut slots = alloc::vec![HintSlot::NONE; 64];
        let mut order = HintOrder::EMPTY;
        for cpu in 0..3 {
            join(&mut slots, &mut order, cpu);
        }
        write(&mut slots, &mut order, 0, hint_at(10));
        write(&mut slots, &mut order, 1, hint_at(30));
        // Older than pCPU 1's hint: placed by the walk, between the others.
        write(&mut slots, &mut order, 2, hint_at(20));
        let walked: Vec<u32> = order.walk(&slots).collect();
        assert_eq!(walked, [0, 2, 1]);
        let mut members = [false; 64];
        members[..3].fill(true);
        assert_order(&slots, &order, &members);
    }
}
