//! Per-pCPU accounting of the collector: busy, idle and switch-overhead time while the pCPU
//! is in a pool (per pool, since pCPUs move between pools at run time), context switches and
//! decisions (`specs/metrics.md` §1.8, §1.11, §1.12 (a)).
//!
//! # Invariants
//! - `busy_ns + idle_ns + overhead_ns == online_ns`, the in-window time spent in any pool.
//! - After [`PcpuState::leave_pool`], `online_by_pool` sums to `online_ns`.
//! - A pool slot names one pool for the whole run ([`PoolSlots`] only grows).
//! - A [`VcpuKey`] names one vCPU or none, and two keys are equal exactly when the
//!   `Option<VcpuRef>`s they pack are.

use hypervisor_model::ids::VcpuRef;

use super::super::state::{add, bump, Window};
use super::super::{PcpuMetrics, PoolMetrics};
use super::PoolMeta;
use crate::machine::switch::SwitchCosts;

/// An `Option<VcpuRef>` packed in one word, `domid << 32 | index` (`u64::MAX` for none:
/// a domid is below 2^16), so a `Schedule`'s compares of `prev`, `next` and the pCPU's
/// vCPUs are one instruction each rather than a tag and two fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct VcpuKey(u64);

impl VcpuKey {
    /// No vCPU (the pCPU is idle).
    pub(super) const NONE: VcpuKey = VcpuKey(u64::MAX);

    /// The key of `v`.
    #[inline(always)]
    pub(super) fn of(v: Option<VcpuRef>) -> VcpuKey {
        v.map_or(VcpuKey::NONE, |v| {
            VcpuKey(u64::from(v.dom.raw()) << 32 | u64::from(v.vcpu.raw()))
        })
    }

    pub(super) fn is_some(self) -> bool {
        self != VcpuKey::NONE
    }

    /// The domid bits (`u32::MAX` for none, which no domid equals).
    fn dom_bits(self) -> u64 {
        self.0 >> 32
    }
}

impl Default for VcpuKey {
    fn default() -> VcpuKey {
        VcpuKey::NONE
    }
}

/// A host's switch costs as a `Schedule` charges them: [`SwitchCosts::switch_overhead_ns`]
/// with the same-domain cost computed once, not at every switch.
#[derive(Clone, Copy, Debug)]
pub(super) struct SwitchOverhead {
    vcpu_switch_ns: u64,
    same_dom_ns: u64,
}

impl SwitchOverhead {
    pub(super) fn new(costs: SwitchCosts) -> SwitchOverhead {
        SwitchOverhead {
            vcpu_switch_ns: costs.vcpu_switch_ns,
            same_dom_ns: costs.same_dom_ns(),
        }
    }

    /// Overhead of switching to `next` (a vCPU) on a pCPU whose last guest vCPU was `last`.
    #[inline(always)]
    pub(super) fn ns(self, last: VcpuKey, next: VcpuKey) -> u64 {
        debug_assert!(next.is_some());
        if last == next {
            0
        } else if last.dom_bits() == next.dom_bits() {
            // `last` is a vCPU here: none has domid bits no vCPU has.
            self.same_dom_ns
        } else {
            self.vcpu_switch_ns
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct PcpuState {
    /// The pool the pCPU is in (`None`: in no pool).
    pub(super) pool: Option<PoolSlot>,
    pub(super) current: VcpuKey,
    since_ns: u64,
    busy_ns: u64,
    idle_ns: u64,
    overhead_ns: u64,
    online_ns: u64,
    /// In-window online time by pool slot (a pool never entered has no entry or 0), up to
    /// the last [`Self::leave_pool`].
    online_by_pool: Vec<u64>,
    /// `online_ns` when the pCPU entered its current pool (or at its last `leave_pool`).
    online_at_entry_ns: u64,
    /// The last guest vCPU that ran here (a switch back to it is free).
    pub(super) last_vcpu: VcpuKey,
    /// The current switch's overhead lasts until then.
    pub(super) overhead_until_ns: u64,
    context_switch_count: u64,
    vcpu_switch_count: u64,
    sched_decision_count: u64,
}

impl PcpuState {
    /// A pCPU at boot, in `pool`.
    pub(super) fn in_pool(pool: Option<PoolSlot>) -> PcpuState {
        PcpuState {
            pool,
            ..PcpuState::default()
        }
    }

    /// A scheduler decision at `time_ns` while the pCPU is in `pool` (inlined into the
    /// sinks' `Schedule` arm, as `VcpuState::transition`).
    #[inline(always)]
    pub(super) fn decide(
        &mut self,
        window: Window,
        time_ns: u64,
        prev: VcpuKey,
        next: VcpuKey,
        pool: Option<PoolSlot>,
    ) {
        if self.current != prev {
            prev_not_running(self.current, prev);
        }
        let in_window = window.has_begun_by(time_ns);
        if in_window {
            bump(&mut self.sched_decision_count, "sched_decision_count");
        }
        if next == prev {
            return;
        }
        if in_window {
            bump(&mut self.context_switch_count, "context_switch_count");
            if prev.is_some() && next.is_some() {
                bump(&mut self.vcpu_switch_count, "vcpu_switch_count");
            }
        }
        self.close(window, time_ns, pool);
        self.current = next;
    }

    /// Accounts `[since, time_ns)` while in `pool` (nothing when in no pool; which pool
    /// gets the online time is settled by [`Self::leave_pool`]).
    #[inline(always)]
    pub(super) fn close(&mut self, window: Window, time_ns: u64, pool: Option<PoolSlot>) {
        if pool.is_some() {
            let spent_ns = window.clip(self.since_ns, time_ns);
            if self.current.is_some() {
                // The switch's overhead comes first; the guest runs after it.
                // `clamp`, without its check of the bounds' order: `since_ns` is an
                // earlier event's time (the collector checks the order of every event).
                debug_assert!(self.since_ns <= time_ns, "pCPU time went backwards");
                let switch_end_ns = self.overhead_until_ns.max(self.since_ns).min(time_ns);
                let overhead_ns = window.clip(self.since_ns, switch_end_ns);
                add(&mut self.overhead_ns, overhead_ns, "overhead_ns");
                let busy_ns = window.clip(switch_end_ns, time_ns);
                add(&mut self.busy_ns, busy_ns, "busy_ns");
            } else {
                add(&mut self.idle_ns, spent_ns, "idle_ns");
            }
            add(&mut self.online_ns, spent_ns, "online_ns");
        }
        self.since_ns = time_ns;
    }

    /// The pCPU leaves `pool` (it moves, or the run ends): its online time since it
    /// entered goes to that pool's share. Only here, not at every decision: a pCPU stays
    /// in one pool for long stretches.
    pub(super) fn leave_pool(&mut self, pool: Option<PoolSlot>) {
        if let Some(pool) = pool {
            if self.online_by_pool.len() <= pool.0 {
                self.online_by_pool.resize(pool.0 + 1, 0);
            }
            let spent_ns = self.online_ns - self.online_at_entry_ns;
            add(&mut self.online_by_pool[pool.0], spent_ns, "online_ns");
        }
        self.online_at_entry_ns = self.online_ns;
    }

    /// In-window online time spent in `pool` (up to the last [`Self::leave_pool`]).
    pub(super) fn online_in(&self, pool: PoolSlot) -> u64 {
        self.online_by_pool.get(pool.0).copied().unwrap_or(0)
    }

    /// The pCPU's metrics; `pool` is the pool it is in at the end.
    pub(super) fn metrics(&self, id: u32, pool: Option<String>, node: u32) -> PcpuMetrics {
        let mut accounted_ns = self.busy_ns;
        add(&mut accounted_ns, self.idle_ns, "online_ns");
        add(&mut accounted_ns, self.overhead_ns, "online_ns");
        assert_eq!(
            accounted_ns, self.online_ns,
            "busy + idle + overhead differs from online"
        );
        PcpuMetrics {
            id,
            pool,
            node,
            online_ns: self.online_ns,
            busy_ns: self.busy_ns,
            idle_ns: self.idle_ns,
            overhead_ns: self.overhead_ns,
            utilization_ppm: super::report::ratio_ppm(self.busy_ns, self.online_ns),
            context_switch_count: self.context_switch_count,
            vcpu_switch_count: self.vcpu_switch_count,
            sched_decision_count: self.sched_decision_count,
        }
    }
}

/// The panic of a `Schedule` whose `prev` is not the running vCPU (out of line, the keys
/// passed by value: the record path stores nothing for it).
#[cold]
#[inline(never)]
fn prev_not_running(running: VcpuKey, prev: VcpuKey) -> ! {
    panic!("Schedule prev differs from the running vCPU: running {running:?}, prev {prev:?}")
}

/// A pool's capacity: the in-window time its pCPUs spent in it (`slot`, `None` when no
/// pCPU was ever in it).
pub(super) fn pool_metrics(
    pool: &PoolMeta,
    slot: Option<PoolSlot>,
    pcpus: &[PcpuState],
) -> PoolMetrics {
    let mut capacity_ns = 0;
    if let Some(slot) = slot {
        for pcpu in pcpus {
            add(&mut capacity_ns, pcpu.online_in(slot), "capacity_ns");
        }
    }
    PoolMetrics {
        name: pool.name.clone(),
        scheduler: pool.scheduler.clone(),
        capacity_ns,
    }
}

/// A pool as the pCPU accounting knows it: an index into the host's [`PoolSlots`], so a
/// `Schedule` adds its interval without comparing pool names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PoolSlot(usize);

/// The pool names a host's pCPUs were ever in, each with its slot (its index here).
#[derive(Debug, Default)]
pub(super) struct PoolSlots {
    names: Vec<String>,
}

impl PoolSlots {
    /// The slot of pool `name`, handed out on its first use.
    pub(super) fn slot(&mut self, name: &str) -> PoolSlot {
        match self.find(name) {
            Some(slot) => slot,
            None => {
                self.names.push(name.to_owned());
                PoolSlot(self.names.len() - 1)
            }
        }
    }

    /// The slot of pool `name`, if a pCPU was ever in it.
    pub(super) fn find(&self, name: &str) -> Option<PoolSlot> {
        self.names.iter().position(|n| n == name).map(PoolSlot)
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::ids::{DomId, VcpuId, VcpuRef};

    use super::{SwitchOverhead, VcpuKey};
    use crate::machine::switch::SwitchCosts;

    fn vcpu(dom: u16, index: u32) -> VcpuRef {
        VcpuRef {
            dom: DomId::new(dom).expect("test domid is valid"),
            vcpu: VcpuId::new(index).expect("test vCPU index is valid"),
        }
    }

    #[test]
    fn switch_overhead_equals_the_switch_costs_rule() {
        // A same-domain fraction that rounds down (5_016 · 601 / 1000 = 3014.616).
        let costs = SwitchCosts {
            vcpu_switch_ns: 5_016,
            same_dom_permille: 601,
            ipi_ns: 1_000,
        };
        let overhead = SwitchOverhead::new(costs);
        let cases = [
            (None, vcpu(1, 0)),
            (Some(vcpu(1, 0)), vcpu(1, 0)),
            (Some(vcpu(1, 1)), vcpu(1, 0)),
            (Some(vcpu(2, 0)), vcpu(1, 0)),
            (Some(vcpu(0, 3)), vcpu(0x7FEF, 3)),
        ];

        let charged: Vec<u64> = cases
            .iter()
            .map(|&(last, next)| overhead.ns(VcpuKey::of(last), VcpuKey::of(Some(next))))
            .collect();

        let want: Vec<u64> = cases
            .iter()
            .map(|&(last, next)| costs.switch_overhead_ns(last, next))
            .collect();
        assert_eq!(charged, want);
        assert_eq!(charged, vec![5_016, 0, 3_014, 5_016, 5_016]);
    }

    #[test]
    fn vcpu_keys_are_equal_exactly_when_the_vcpus_are() {
        let vcpus = [None, Some(vcpu(0, 0)), Some(vcpu(0, 1)), Some(vcpu(1, 0))];

        for a in vcpus {
            for b in vcpus {
                assert_eq!(VcpuKey::of(a) == VcpuKey::of(b), a == b, "{a:?} {b:?}");
            }
        }
        assert!(!VcpuKey::of(None).is_some());
        assert!(VcpuKey::of(Some(vcpu(0, 0))).is_some());
    }
}
