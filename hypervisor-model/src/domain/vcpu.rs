//! vCPUs: runstate accounting, pause flags and affinity.
//!
//! Follows xen/common/sched/core.c (`vcpu_runstate_change`, `vcpu_runnable`) and
//! xen/include/xen/sched.h (`_VPF_blocked`, `_VPF_down`, `pause_count`).
//!
//! # Invariants
//! - `runstate_time_ns` sums to the time since creation (every change closes an interval).
//! - `running_on.is_some()` iff `runstate == Running`.

use crate::cpumask::CpuMask;
use crate::ids::{PcpuId, VcpuRef};
use crate::time::STime;

/// Xen's four runstates (`RUNSTATE_*`, xen/include/public/vcpu.h), numbered as Xen does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Runstate {
    /// On a pCPU.
    Running = 0,
    /// Could run, waits for a pCPU.
    Runnable = 1,
    /// Blocked by the guest itself (SCHEDOP_block, HLT).
    Blocked = 2,
    /// Not runnable for any other reason (paused, down).
    Offline = 3,
}

impl Runstate {
    /// Index into `runstate_time_ns`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The `RUNSTATE_*` value.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// `_VPF_blocked`: the guest blocked and waits for an event.
pub const VPF_BLOCKED: u8 = 1 << 0;
/// `_VPF_down`: the vCPU is offline (not brought up, or taken down).
pub const VPF_DOWN: u8 = 1 << 1;
/// `_VPF_migrating`: the core is moving the vCPU to another pCPU (affinity, pool change).
pub const VPF_MIGRATING: u8 = 1 << 2;
/// `_VPF_parked`: credit2 parked the vCPU because its domain ran out of cap budget.
pub const VPF_PARKED: u8 = 1 << 3;

/// One vCPU.
// `repr(C)` keeps what the scheduler reads on every decision (pause state, processor,
// runstate entry time, the start of the hard affinity) in one or two cache lines.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Vcpu {
    /// Which vCPU this is.
    pub id: VcpuRef,
    /// `v->processor`: the pCPU it is on or was last placed on.
    pub processor: PcpuId,
    /// `v->pause_count`.
    pub pause_count: u32,
    /// `VPF_*` bits.
    pub pause_flags: u8,
    /// Current runstate.
    pub runstate: Runstate,
    /// The pCPU running it right now.
    pub running_on: Option<PcpuId>,
    /// When the current runstate began.
    pub state_entry_time: STime,
    /// Hard affinity (`cpu_hard_affinity`).
    pub hard_affinity: CpuMask,
    /// Soft affinity (`cpu_soft_affinity`).
    pub soft_affinity: CpuMask,
    /// Nanoseconds spent in each runstate (index = `Runstate::index`).
    pub runstate_time_ns: [i64; 4],
}

impl Vcpu {
    /// A new vCPU created at `now` on `processor`, offline until its domain is unpaused.
    pub fn new(id: VcpuRef, processor: PcpuId, hard: CpuMask, soft: CpuMask, now: STime) -> Vcpu {
        Vcpu {
            id,
            processor,
            hard_affinity: hard,
            soft_affinity: soft,
            pause_flags: 0,
            pause_count: 0,
            runstate: Runstate::Offline,
            state_entry_time: now,
            runstate_time_ns: [0; 4],
            running_on: None,
        }
    }

    /// True if the vCPU is online (`VPF_down` clear): Xen's `is_unit_online`.
    pub fn is_online(&self) -> bool {
        self.pause_flags & VPF_DOWN == 0
    }

    /// Xen's `vcpu_runnable` for a vCPU of a domain paused `domain_pause_count` times: no
    /// pause flag, no vCPU pause, no domain pause.
    #[inline]
    pub fn runnable_in(&self, domain_pause_count: u32) -> bool {
        self.pause_flags == 0 && self.pause_count == 0 && domain_pause_count == 0
    }

    /// True if the guest blocked it.
    pub fn is_blocked(&self) -> bool {
        self.pause_flags & VPF_BLOCKED != 0
    }

    /// Xen's `soft_aff_effective`: hard is not a subset of soft, and they intersect.
    pub fn soft_aff_effective(&self) -> bool {
        !self.hard_affinity.is_subset(&self.soft_affinity)
            && self.soft_affinity.intersects(&self.hard_affinity)
    }

    /// Closes the current runstate interval at `now` and enters `new`
    /// (`vcpu_runstate_change`). Returns the old state.
    #[inline]
    pub fn runstate_change(&mut self, new: Runstate, now: STime) -> Runstate {
        let old = self.runstate;
        assert!(
            old != new,
            "{:?}: runstate change to the same state {:?}",
            self.id,
            new
        );
        let delta_ns = now.since(self.state_entry_time).as_ns();
        assert!(delta_ns >= 0, "{:?}: runstate time goes backwards", self.id);
        self.runstate_time_ns[old.index()] += delta_ns;
        self.state_entry_time = now;
        self.runstate = new;
        old
    }

    /// Running time including the open interval up to `now`, ns.
    pub fn running_ns_at(&self, now: STime) -> i64 {
        let open_ns = if self.runstate == Runstate::Running {
            now.since(self.state_entry_time).as_ns()
        } else {
            0
        };
        self.runstate_time_ns[Runstate::Running.index()] + open_ns
    }
}
