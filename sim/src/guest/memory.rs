//! The guest memory model (`specs/memory-iommu-migration.md` §5.5 and §7.4): how much of a
//! guest's working set is resident, what swapping and remote NUMA memory cost its
//! workload, and when its kernel OOM-kills the workload.
//!
//! One [`GuestMemory`] per domain with a `memory` sub-table (`specs/scenario.md` §6.1). Its
//! inputs are the domain's `tot_pages` (`C`, the guest's resident size after ballooning)
//! and its pages per NUMA node, both read from the core after every input that changed
//! them; its outputs are a *stretch* (ppm, ≥ 1 000 000) by which the vCPUs' CPU demand is
//! multiplied while they run, and the counters of the metrics JSON.
//!
//! # The model
//!
//! - Resident anonymous memory `R = min(W, C)`: the guest's kernel keeps its workload's
//!   pages before its page cache and free pages (the cache is reclaimed first), so the
//!   page cache only decides which pages ballooning takes without a swap-out.
//! - LRU keeps the hot set first: of `R`, `min(H, R)` pages are hot, the rest cold. The
//!   share of accesses outside the resident set is
//!   `miss = hot_ppm·(H − Rh)/H + (1 − hot_ppm)·(W − H − Rc)/(W − H)`.
//! - Throughput scales by `max(0.05, 1 − miss)` (§5.5's `max(0.05, C/W)` when `H = W`):
//!   the swap stretch is `1 / max(0.05, 1 − miss)`. The time it adds is spent in swap-ins,
//!   each costing `mem.guest_swapin_fault_ns` + `mem.guest_swap_device_ns` + one
//!   `mem.guest_swapout_page_ns` (the resident set is full, so every page read in pushes
//!   one out); their count is that time divided by the cost, the remainder carried on.
//! - Ballooning below `W` swaps out `R_before − R_after` pages; the balloon driver can take
//!   the guest down to its non-swappable floor `floor_ppm × W` and no further (the floor
//!   goes to the core as `GuestMemFloor`).
//! - Below the floor (a guest booted smaller than it) the kernel OOM-kills the workload
//!   (`guest.oom_kill`); the restarted workload's working set is what is resident, `W = C`.
//! - NUMA (§7.4): a vCPU on a pCPU of node `n` reaches a page on node `m` with the latency
//!   factor `1 + 0.05 × (distance(n, m) − 10)`; the factor of the guest is the mean over
//!   its pages, and it stretches the memory-bound share of the work
//!   (`guest.memory_bound_ppm`, a model parameter, default 30%).
//!
//! All arithmetic is integer (u128 intermediates); nothing here draws random numbers.
//!
//! # Invariants
//! - `hot_set_pages <= working_set_pages`; the stretch is ≥ 1 000 000 ppm and the swap
//!   stretch ≤ 20 000 000 ppm (throughput never below 5%).
//! - Counters only count work whose segment starts inside the metrics window.
//!
//! xensim differs: a swap-in's device wait is charged as run time of the vCPU (the guest
//! stays runnable) instead of blocking it on the swap device; a stretch computed when a vCPU
//! starts running holds until its next run or demand, even if the balloon moves meanwhile;
//! the page cache does not regrow after it was reclaimed.

use crate::scenario::model::MemoryWorkload;

/// ppm of "no change".
const PPM: u64 = 1_000_000;
/// Throughput floor while swapping: 5% (§5.5).
const THROUGHPUT_FLOOR_PPM: u64 = 50_000;
/// Local SLIT distance.
const LOCAL_DISTANCE: u64 = 10;
/// Latency factor per SLIT step above local: 0.05 (§7.4).
const REMOTE_PPM_PER_STEP: u64 = 50_000;

/// The cost-table values the model charges (cost-model §2.3, memory spec §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCosts {
    /// `mem.guest_swapin_fault_ns`: the guest kernel's major-fault path.
    pub swapin_fault_ns: u64,
    /// `mem.guest_swap_device_ns`: the swap device read behind it (default: NAND NVMe
    /// through blkfront, so that a swap-in costs §5.5's 100 µs with the fault).
    pub swap_device_ns: u64,
    /// `mem.guest_swapout_page_ns`: reclaim and writeback CPU per page.
    pub swapout_page_ns: u64,
    /// `guest.memory_bound_ppm`: share of a workload's run time that waits on DRAM.
    pub memory_bound_ppm: u64,
}

impl MemoryCosts {
    /// The defaults of the cost table.
    pub const DEFAULT: MemoryCosts = MemoryCosts {
        swapin_fault_ns: 5_000,
        swap_device_ns: 95_000,
        swapout_page_ns: 3_000,
        memory_bound_ppm: 300_000,
    };

    /// One swap-in with the swap-out it forces.
    fn swap_cycle_ns(&self) -> u64 {
        (self.swapin_fault_ns + self.swap_device_ns + self.swapout_page_ns).max(1)
    }
}

/// The host's NUMA layout as the model needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumaView {
    /// Node of each pCPU.
    pub cpu_node: Vec<u32>,
    /// SLIT distances, row-major `nodes × nodes`.
    pub distances: Vec<u32>,
}

impl NumaView {
    fn node_count(&self) -> usize {
        self.distances.len().isqrt()
    }

    /// Latency factor (ppm) of node `from` reaching node `to`.
    fn latency_ppm(&self, from: usize, to: usize) -> u64 {
        let n = self.node_count();
        let distance = self
            .distances
            .get(from * n + to)
            .map_or(LOCAL_DISTANCE, |d| u64::from(*d));
        PPM + REMOTE_PPM_PER_STEP * distance.saturating_sub(LOCAL_DISTANCE)
    }
}

/// Per-domain counters (the metrics JSON's `memory` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Pages read back from swap (major faults).
    pub swap_in_count: u64,
    /// Pages written to swap (by swap-ins and by ballooning below `W`).
    pub swap_out_count: u64,
    /// vCPU run time spent on swapping, ns.
    pub swap_stall_ns: u64,
    /// Times the guest OOM-killed its workload.
    pub oom_kill_count: u64,
    /// Useful work done (run time without the swap and NUMA stretch), ns.
    pub work_ns: u64,
}

/// What the guest's kernel must tell its balloon driver after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorNotice {
    /// Pages inflation may not go below.
    pub floor_pages: u64,
    /// The guest OOM-killed its workload.
    pub oom_kill: bool,
}

/// One guest's memory state.
#[derive(Debug, Clone)]
pub struct GuestMemory {
    spec: MemoryWorkload,
    working_set_pages: u64,
    hot_set_pages: u64,
    resident_pages: u64,
    node_pages: Vec<u64>,
    stats: MemoryStats,
    stall_carry_ns: u64,
    window_start_ns: u64,
    /// `set_resident` was called once (the guest booted).
    booted: bool,
}

impl GuestMemory {
    /// A guest with `spec`, whose metrics window starts at `window_start_ns`.
    pub fn new(spec: MemoryWorkload, window_start_ns: u64) -> GuestMemory {
        GuestMemory {
            spec,
            working_set_pages: spec.working_set_pages(),
            hot_set_pages: spec.hot_set_pages().min(spec.working_set_pages()),
            resident_pages: 0,
            node_pages: Vec::new(),
            stats: MemoryStats::default(),
            stall_carry_ns: 0,
            window_start_ns,
            booted: false,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> MemoryStats {
        self.stats
    }

    /// `W` in pages (after any OOM kill).
    pub fn working_set_pages(&self) -> u64 {
        self.working_set_pages
    }

    /// The non-swappable floor, pages.
    pub fn floor_pages(&self) -> u64 {
        mul_ppm_up(self.working_set_pages, u64::from(self.spec.floor_ppm))
    }

    fn anon_resident_pages(&self) -> u64 {
        self.working_set_pages.min(self.resident_pages)
    }

    /// The guest now holds `resident_pages` (`tot_pages`), `node_pages` per node, at
    /// `now_ns`. Returns what the balloon driver must learn, if anything changed for it:
    /// on the first call (boot) always, later only after an OOM kill.
    pub fn set_resident(
        &mut self,
        resident_pages: u64,
        node_pages: &[u64],
        now_ns: u64,
    ) -> Option<FloorNotice> {
        let first = !std::mem::replace(&mut self.booted, true);
        let anon_before = self.anon_resident_pages();
        self.resident_pages = resident_pages;
        self.node_pages.clear();
        self.node_pages.extend_from_slice(node_pages);
        let anon_after = self.anon_resident_pages();
        if !first && now_ns >= self.window_start_ns {
            self.stats.swap_out_count += anon_before.saturating_sub(anon_after);
        }
        if resident_pages < self.floor_pages() {
            // The kernel kills the workload; it restarts within what is resident.
            self.working_set_pages = resident_pages;
            self.hot_set_pages = self.hot_set_pages.min(resident_pages);
            if now_ns >= self.window_start_ns {
                self.stats.oom_kill_count += 1;
            }
            return Some(FloorNotice {
                floor_pages: self.floor_pages(),
                oom_kill: true,
            });
        }
        first.then_some(FloorNotice {
            floor_pages: self.floor_pages(),
            oom_kill: false,
        })
    }

    /// Share of accesses outside the resident set, ppm (none before the guest booted).
    pub fn miss_ppm(&self) -> u64 {
        if !self.booted {
            return 0;
        }
        let w = self.working_set_pages;
        let h = self.hot_set_pages;
        let r = self.anon_resident_pages();
        let hot_resident = h.min(r);
        let cold_pages = w - h;
        let cold_resident = r - hot_resident;
        let hot_ppm = u64::from(self.spec.hot_ppm);
        let hot_miss = share_ppm(h - hot_resident, h);
        let cold_miss = share_ppm(cold_pages - cold_resident, cold_pages);
        mul_ppm(hot_miss, hot_ppm) + mul_ppm(cold_miss, PPM - hot_ppm)
    }

    /// The swap stretch, ppm: `1 / max(0.05, 1 − miss)`.
    pub fn swap_stretch_ppm(&self) -> u64 {
        let throughput_ppm = PPM
            .saturating_sub(self.miss_ppm())
            .max(THROUGHPUT_FLOOR_PPM);
        div_ppm_up(PPM, throughput_ppm)
    }

    /// The NUMA stretch, ppm, of a vCPU on a pCPU of `node` (§7.4).
    pub fn numa_stretch_ppm(&self, numa: &NumaView, node: usize, costs: &MemoryCosts) -> u64 {
        let total: u64 = self.node_pages.iter().sum();
        if total == 0 {
            return PPM;
        }
        let weighted: u128 = self
            .node_pages
            .iter()
            .enumerate()
            .map(|(to, pages)| u128::from(*pages) * u128::from(numa.latency_ppm(node, to)))
            .sum();
        let factor_ppm = u64::try_from(weighted / u128::from(total)).unwrap_or(u64::MAX);
        PPM + mul_ppm(factor_ppm.saturating_sub(PPM), costs.memory_bound_ppm)
    }

    /// A vCPU of the guest ran `segment_ns` from `start_ns` under `swap_ppm` and
    /// `stretch_ppm` (the total): counts the useful work and the swap-ins in it.
    pub fn ran(&mut self, segment_ns: u64, start_ns: u64, stretch: Stretch, costs: &MemoryCosts) {
        if start_ns < self.window_start_ns || segment_ns == 0 {
            return;
        }
        self.stats.work_ns += div_ppm_down(segment_ns, stretch.total_ppm);
        let stall_ns = segment_ns - div_ppm_down(segment_ns, stretch.swap_ppm);
        self.stats.swap_stall_ns += stall_ns;
        let pending_ns = self.stall_carry_ns + stall_ns;
        let cycle_ns = costs.swap_cycle_ns();
        let swaps = pending_ns / cycle_ns;
        self.stall_carry_ns = pending_ns % cycle_ns;
        self.stats.swap_in_count += swaps;
        self.stats.swap_out_count += swaps;
    }
}

/// The stretch a vCPU runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    /// Swap part, ppm.
    pub swap_ppm: u64,
    /// Swap × NUMA, ppm.
    pub total_ppm: u64,
}

impl Stretch {
    /// No stretch.
    pub const NONE: Stretch = Stretch {
        swap_ppm: PPM,
        total_ppm: PPM,
    };

    /// `swap_ppm` × `numa_ppm`.
    pub fn new(swap_ppm: u64, numa_ppm: u64) -> Stretch {
        Stretch {
            swap_ppm,
            total_ppm: mul_ppm_up(swap_ppm, numa_ppm),
        }
    }
}

/// `part / whole` in ppm (0 for an empty whole).
fn share_ppm(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    u64::try_from(u128::from(part) * u128::from(PPM) / u128::from(whole)).unwrap_or(PPM)
}

/// `value × ppm / 10^6`, rounded down.
fn mul_ppm(value: u64, ppm: u64) -> u64 {
    u64::try_from(u128::from(value) * u128::from(ppm) / u128::from(PPM)).unwrap_or(u64::MAX)
}

/// `value × ppm / 10^6`, rounded up. Called per run of every vCPU: a stretch of none
/// (`ppm` = 10^6) returns `value` as is, and a product that fits `u64` divides in `u64`
/// (the same value as the `u128` division, without its library call).
pub fn mul_ppm_up(value: u64, ppm: u64) -> u64 {
    if ppm == PPM {
        return value;
    }
    if let Some(product) = value.checked_mul(ppm) {
        return product.div_ceil(PPM);
    }
    let product = u128::from(value) * u128::from(ppm);
    u64::try_from(product.div_ceil(u128::from(PPM))).unwrap_or(u64::MAX)
}

/// `value × 10^6 / ppm`, rounded up (`ppm` > 0).
fn div_ppm_up(value: u64, ppm: u64) -> u64 {
    let scaled = u128::from(value) * u128::from(PPM);
    u64::try_from(scaled.div_ceil(u128::from(ppm.max(1)))).unwrap_or(u64::MAX)
}

/// `value × 10^6 / ppm`, rounded down (`ppm` > 0); `value` as is for `ppm` = 10^6.
pub fn div_ppm_down(value: u64, ppm: u64) -> u64 {
    if ppm == PPM {
        return value;
    }
    let scaled = u128::from(value) * u128::from(PPM);
    u64::try_from(scaled / u128::from(ppm.max(1))).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
