//! Scheduler parameters: boot options (Xen command line), per-pool, per-domain and per-vCPU
//! parameters as the `XEN_SYSCTL_SCHEDOP_*` / `XEN_DOMCTL_SCHEDOP_*` hypercalls carry them,
//! and the errors those hypercalls return.
//!
//! Follows xen/common/sched/core.c (`sched_ratelimit_us`), xen/common/sched/credit2.c (boot
//! options), xen/include/public/sysctl.h and domctl.h; spec `schedulers.md` §1.3, §2.1, §3.1.

use crate::cpumask::CpuMask;
use crate::hypervisor::boot::CpuTopo;
use crate::ids::PcpuId;

/// `SCHED_DEFAULT_RATELIMIT_US`.
pub const DEFAULT_RATELIMIT_US: u32 = 1_000;
/// `XEN_SYSCTL_SCHED_RATELIMIT_MIN`, µs.
pub const RATELIMIT_MIN_US: u32 = 100;
/// `XEN_SYSCTL_SCHED_RATELIMIT_MAX`, µs.
pub const RATELIMIT_MAX_US: u32 = 500_000;

/// `credit2_runqueue=`: how credit2 groups pCPUs into runqueues.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Credit2Runqueue {
    /// One runqueue per pCPU.
    Cpu,
    /// One per core (SMT siblings share).
    Core,
    /// One per socket (the default).
    Socket,
    /// One per NUMA node.
    Node,
    /// One for the whole pool.
    All,
}

impl Credit2Runqueue {
    /// The option value as Xen spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Credit2Runqueue::Cpu => "cpu",
            Credit2Runqueue::Core => "core",
            Credit2Runqueue::Socket => "socket",
            Credit2Runqueue::Node => "node",
            Credit2Runqueue::All => "all",
        }
    }
}

/// Scheduler options from the Xen command line, already checked by the platform (out-of-range
/// values are reset to the default with Xen's warning before they reach the core).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SchedOpts {
    /// `sched_ratelimit_us` (0 = off, else 100..=500000).
    pub ratelimit_us: u32,
    /// `sched_credit2_migrate_resist`, µs.
    pub credit2_migrate_resist_us: u32,
    /// `credit2_runqueue`.
    pub credit2_runqueue: Credit2Runqueue,
    /// `sched_credit2_max_cpus_runqueue`.
    pub credit2_max_cpus_runqueue: u32,
    /// `credit2_load_window_shift`.
    pub credit2_load_window_shift: u32,
    /// `credit2_load_precision_shift`.
    pub credit2_load_precision_shift: u32,
    /// `credit2_balance_under`.
    pub credit2_balance_under: i32,
    /// `credit2_balance_over`.
    pub credit2_balance_over: i32,
    /// `credit2_cap_period_ms`.
    pub credit2_cap_period_ms: u32,
}

impl Default for SchedOpts {
    /// Xen 4.17's defaults.
    fn default() -> SchedOpts {
        SchedOpts {
            ratelimit_us: DEFAULT_RATELIMIT_US,
            credit2_migrate_resist_us: 500,
            credit2_runqueue: Credit2Runqueue::Socket,
            credit2_max_cpus_runqueue: 16,
            credit2_load_window_shift: 30,
            credit2_load_precision_shift: 18,
            credit2_balance_under: 0,
            credit2_balance_over: -3,
            credit2_cap_period_ms: 10,
        }
    }
}

/// What a scheduler instance is created with (`sched_alloc_ops` / `init`).
#[derive(Clone, Copy, Debug)]
pub struct SchedInit<'a> {
    /// Host pCPU count (`nr_cpu_ids`; all online in xensim).
    pub nr_cpus: u32,
    /// Where each host pCPU sits; SMT siblings share `(socket, core)`.
    pub topo: &'a [CpuTopo],
    /// Boot options.
    pub opts: &'a SchedOpts,
}

impl SchedInit<'_> {
    /// `per_cpu(cpu_sibling_mask, cpu)`: the pCPUs sharing `cpu`'s core (itself included).
    pub fn siblings(&self, cpu: PcpuId) -> CpuMask {
        let mut mask = CpuMask::empty(self.nr_cpus);
        if let Some(me) = self.topo.get(cpu.index()) {
            let same_core = self
                .topo
                .iter()
                .enumerate()
                .filter(|(_, t)| t.socket == me.socket && t.core == me.core);
            for (index, _) in same_core {
                if let Some(sibling) = u32::try_from(index).ok().and_then(PcpuId::new) {
                    mask.set(sibling);
                }
            }
        }
        mask
    }
}

/// Per-domain parameters (`struct xen_domctl_scheduler_op` union).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DomParams {
    /// credit2: weight (1..=65535; 0 in a put = unchanged) and cap (percent, 0 = none).
    Credit2 {
        /// Weight.
        weight: u16,
        /// Cap, percent of one pCPU.
        cap: u16,
    },
    /// rtds: period and budget, µs (a get always answers the defaults, as Xen does).
    Rtds {
        /// Period, µs.
        period_us: u32,
        /// Budget, µs.
        budget_us: u32,
    },
    /// null has no parameters.
    Null,
}

/// Per-vCPU parameters (`XEN_DOMCTL_SCHEDOP_{get,put}vcpuinfo`), rtds only.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VcpuParams {
    /// Period, µs.
    pub period_us: u32,
    /// Budget, µs.
    pub budget_us: u32,
    /// `XEN_DOMCTL_SCHEDRT_extra`.
    pub extratime: bool,
}

/// Per-pool parameters (`XEN_SYSCTL_SCHEDOP_{get,put}info`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PoolParams {
    /// credit2: the pool's ratelimit, µs (0 = off).
    Credit2 {
        /// Ratelimit, µs.
        ratelimit_us: u32,
    },
    /// rtds has no pool parameters.
    Rtds,
    /// null has no pool parameters.
    Null,
}

/// Why a scheduler refused a parameter change (the hypercall's errno).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SchedError {
    /// `EINVAL`: a value out of range, or parameters of another scheduler.
    Invalid,
    /// `ESRCH`: no such domain or vCPU in this scheduler.
    NoSuchDomain,
    /// `EOPNOTSUPP`: the scheduler has no such operation.
    NotSupported,
}

impl SchedError {
    /// The negative errno Xen returns.
    pub const fn errno(self) -> i32 {
        match self {
            SchedError::Invalid => -22,
            SchedError::NoSuchDomain => -3,
            SchedError::NotSupported => -95,
        }
    }
}
