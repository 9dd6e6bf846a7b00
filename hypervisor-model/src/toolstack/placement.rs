//! libxl's automatic NUMA placement (`specs/memory-iommu-migration.md` §7): at build time
//! a domain without `cpus_soft` and without per-vCPU `cpus` gets the best node set —
//! the fewest nodes that hold its memory and have as many pCPUs as it has vCPUs, then
//! fewest vCPUs already able to run there, then most free memory.
//!
//! Follows tools/libs/light/libxl_numa.c (`libxl__get_numa_candidate`,
//! `nr_vcpus_on_nodes`, `count_cpus_per_node`, `nodemap_to_free_memkb`) and
//! tools/libs/light/libxl_dom.c (`numa_place_domain`, `numa_cmpf`, `libxl__build_pre`),
//! including two of their quirks: the suitable CPUs are the whole cpupool (libxl computes
//! `cpus ∩ pool` only to refuse an empty one), and free memory is summed in a 32-bit KiB
//! counter compared through a 32-bit difference.
//!
//! # Invariants
//! - A chosen node set is non-empty, within the host's nodes and the pool's nodes.
//! - Placement is skipped on hosts with 1 node or more than [`PLACEMENT_NODES_MAX`].

use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, PcpuId, PoolId};
use crate::toolstack::config::{AffinityCfg, DomainConfig, GuestType};

/// libxl skips placement on hosts with more nodes than this (too many combinations).
pub const PLACEMENT_NODES_MAX: usize = 16;

/// `LIBXL_HVM_EXTRA_MEMORY` (KiB), added for HVM and PVH guests.
const HVM_EXTRA_MEMORY_KIB: u64 = 2048;
/// `LIBXL_PV_EXTRA_MEMORY` (KiB), added for PV guests.
const PV_EXTRA_MEMORY_KIB: u64 = 1024;

/// A node set that passed the memory and CPU checks (`libxl__numa_candidate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The nodes, one bit per node.
    pub nodemap: u64,
    /// Number of nodes.
    pub nr_nodes: u32,
    /// Suitable pCPUs on those nodes.
    pub nr_cpus: u32,
    /// vCPUs of existing domains able to run there.
    pub nr_vcpus: u32,
    /// Free memory there, KiB (libxl's 32-bit sum).
    pub free_kib: u32,
}

/// What the placement inputs look like (`XEN_SYSCTL_numainfo` / `cputopoinfo`).
#[derive(Clone, Debug)]
pub struct NumaView<'a> {
    /// Node of every pCPU, indexed by pCPU number.
    pub cpu_node: &'a [u32],
    /// Free memory of every node, KiB.
    pub node_free_kib: &'a [u64],
    /// `vcpus_on_node[n]` (`nr_vcpus_on_nodes`).
    pub vcpus_on_node: &'a [u32],
}

/// `numa_cmpf`: negative if `a` is better than `b` (fewer vCPUs, then more free memory;
/// the memory difference truncated to `int` as in C).
fn numa_cmpf(a: &Candidate, b: &Candidate) -> i64 {
    if a.nr_vcpus != b.nr_vcpus {
        return i64::from(a.nr_vcpus) - i64::from(b.nr_vcpus);
    }
    // `c2->free_memkb - c1->free_memkb` as an `int`: two's complement wrap to 32 bits.
    i64::from(i32::from_ne_bytes(
        b.free_kib.wrapping_sub(a.free_kib).to_ne_bytes(),
    ))
}

/// `libxl__get_numa_candidate` with `min_nodes = max_nodes = 0` and `numa_cmpf`: the best
/// candidate over node sets of increasing size, or `None`.
pub fn numa_candidate(
    view: &NumaView<'_>,
    suitable: &CpuMask,
    min_free_kib: u64,
    min_cpus: u32,
) -> Option<Candidate> {
    let nr_nodes = view.node_free_kib.len();
    if nr_nodes <= 1 || nr_nodes > PLACEMENT_NODES_MAX {
        return None;
    }
    let node_bit = |node: u32| 1u64.checked_shl(node).unwrap_or(0);
    let mut suitable_nodemap = 0u64;
    for cpu in suitable.iter() {
        if let Some(&node) = view.cpu_node.get(cpu.index()) {
            suitable_nodemap |= node_bit(node);
        }
    }
    let suitable_nodes: Vec<u32> = (0..64u32)
        .filter(|n| suitable_nodemap & node_bit(*n) != 0)
        .collect();
    let cpus_per_node = count_cpus_per_node(view.cpu_node, nr_nodes);
    let mut min_nodes = match cpus_per_node {
        0 => 1,
        per => usize::try_from(min_cpus.div_ceil(per)).unwrap_or(usize::MAX),
    };
    let max_nodes = suitable_nodes.len();
    min_nodes = min_nodes.min(max_nodes);
    let mut best: Option<Candidate> = None;
    let mut k = min_nodes.max(1);
    while k <= max_nodes && best.is_none() {
        let mut comb: Vec<usize> = (0..k).collect();
        loop {
            let nodemap = comb
                .iter()
                .fold(0u64, |m, &i| m | node_bit(suitable_nodes[i]));
            if let Some(c) = check(view, suitable, nodemap, min_free_kib, min_cpus) {
                let better = best.as_ref().is_none_or(|b| numa_cmpf(&c, b) < 0);
                if better {
                    best = Some(c);
                }
            }
            if !comb_next(&mut comb, max_nodes) {
                break;
            }
        }
        k += 1;
    }
    best
}

/// One combination's memory and CPU check, and its score inputs.
fn check(
    view: &NumaView<'_>,
    suitable: &CpuMask,
    nodemap: u64,
    min_free_kib: u64,
    min_cpus: u32,
) -> Option<Candidate> {
    let in_map = |node: usize| u32::try_from(node).is_ok_and(|n| nodemap >> n & 1 == 1);
    // nodemap_to_free_memkb: a uint32_t sum of per-node `free / 1024`.
    let free_kib = view
        .node_free_kib
        .iter()
        .enumerate()
        .filter(|(n, _)| in_map(*n))
        .fold(0u32, |sum, (_, &kib)| sum.wrapping_add(low_u32(kib)));
    if min_free_kib != 0 && u64::from(free_kib) < min_free_kib {
        return None;
    }
    let nr_cpus = suitable
        .iter()
        .filter(|cpu| {
            let node = view.cpu_node.get(cpu.index()).copied();
            node.is_some_and(|n| nodemap >> n & 1 == 1)
        })
        .count();
    let nr_cpus = u32::try_from(nr_cpus).unwrap_or(u32::MAX);
    if min_cpus != 0 && nr_cpus < min_cpus {
        return None;
    }
    let nr_vcpus = view
        .vcpus_on_node
        .iter()
        .enumerate()
        .filter(|(n, _)| in_map(*n))
        .map(|(_, &v)| v)
        .sum();
    Some(Candidate {
        nodemap,
        nr_nodes: nodemap.count_ones(),
        nr_cpus,
        nr_vcpus,
        free_kib,
    })
}

/// The low 32 bits of `value` (C's conversion to `uint32_t`).
fn low_u32(value: u64) -> u32 {
    u32::from_le_bytes([
        value.to_le_bytes()[0],
        value.to_le_bytes()[1],
        value.to_le_bytes()[2],
        value.to_le_bytes()[3],
    ])
}

/// `count_cpus_per_node`: the common pCPU count of every node, or 0 if they differ.
fn count_cpus_per_node(cpu_node: &[u32], nr_nodes: usize) -> u32 {
    let mut per_node = 0;
    for node in 0..nr_nodes {
        let count = cpu_node.iter().filter(|&&n| n as usize == node).count();
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        if per_node == 0 {
            per_node = count;
        }
        if per_node != count {
            return 0;
        }
    }
    per_node
}

/// `comb_next`: the next k-combination of `0..n` in lexicographic order, false after the
/// last.
fn comb_next(comb: &mut [usize], n: usize) -> bool {
    let k = comb.len();
    let Some(i) = (0..k).rev().find(|&i| comb[i] < n - k + i) else {
        return false;
    };
    comb[i] += 1;
    for j in i + 1..k {
        comb[j] = comb[j - 1] + 1;
    }
    true
}

/// `libxl__domain_need_memory_calculate` (KiB), with xensim's defaults: HAP guests
/// (shadow = paging memory of `libxl__get_required_paging_memory`), no IOMMU reservation;
/// an HVM guest with a stub domain also needs the stub domain's memory and video memory.
pub fn need_memory_kib(config: &DomainConfig) -> u64 {
    let pv = config.guest_type == GuestType::Pv;
    let p2m_kib = if pv { 0 } else { config.max_memory_kib / 1024 };
    let shadow_kib = 4 * (256 * u64::from(config.max_vcpus) + p2m_kib);
    let extra_kib = if pv {
        PV_EXTRA_MEMORY_KIB
    } else {
        HVM_EXTRA_MEMORY_KIB
    };
    let stubdom_kib = if config.wants_stubdomain() {
        crate::toolstack::stubdom::stubdom_config(config).memory_kib
    } else {
        0
    };
    let need_kib = config.memory_kib + shadow_kib + extra_kib + stubdom_kib;
    need_kib.div_ceil(2048) * 2048
}

/// True if xl leaves `numa_placement` on for `config` (§7.1): no `cpus_soft`, no
/// per-vCPU `cpus` list.
pub fn placement_wanted(config: &DomainConfig) -> bool {
    config.cpus_soft == AffinityCfg::All && !matches!(config.cpus, AffinityCfg::PerVcpu(_))
}

impl Hypervisor {
    /// `numa_place_domain` for a domain of `config` about to be built in `pool`: the
    /// chosen nodes (already cut to the pool's nodes), or `None` (no placement).
    pub(super) fn numa_place(&self, config: &DomainConfig, pool: PoolId) -> Option<Candidate> {
        if !placement_wanted(config) {
            return None;
        }
        let cpu_node: Vec<u32> = self.host.cpus.iter().map(|t| t.node).collect();
        let node_free_kib: Vec<u64> = self
            .memory
            .node_free_pages()
            .iter()
            .map(|pages| pages.saturating_mul(4))
            .collect();
        let suitable = self.pool_ref(pool).cpus.clone();
        let vcpus_on_node = self.vcpus_on_nodes(&cpu_node, node_free_kib.len(), &suitable);
        let view = NumaView {
            cpu_node: &cpu_node,
            node_free_kib: &node_free_kib,
            vcpus_on_node: &vcpus_on_node,
        };
        let mut best = numa_candidate(&view, &suitable, need_memory_kib(config), config.max_vcpus)?;
        // Keep only nodes that have some CPU of the pool.
        let pool_nodes = suitable
            .iter()
            .filter_map(|cpu| cpu_node.get(cpu.index()))
            .fold(0u64, |m, &n| m | 1u64.checked_shl(n).unwrap_or(0));
        best.nodemap &= pool_nodes;
        (best.nodemap != 0).then_some(best)
    }

    /// `nr_vcpus_on_nodes`: per node, the vCPUs of existing domains whose hard affinity
    /// reaches a suitable pCPU of their own pool on that node, with the node in the
    /// domain's node affinity; a vCPU counts once per node.
    fn vcpus_on_nodes(&self, cpu_node: &[u32], nr_nodes: usize, suitable: &CpuMask) -> Vec<u32> {
        let node_cpus = node_cpu_masks(cpu_node, nr_nodes, suitable.width());
        let mut counts = alloc::vec![0u32; nr_nodes];
        for domain in self.domains.iter() {
            let usable = suitable.and(&self.pool_ref(domain.pool).cpus);
            let dom_nodes = self.domain_node_affinity(domain.id, cpu_node);
            for vcpu in &domain.vcpus {
                count_vcpu(
                    &mut counts,
                    &node_cpus,
                    &vcpu.hard_affinity,
                    &usable,
                    dom_nodes,
                );
            }
        }
        counts
    }

    /// `d->node_affinity`: the nodes placement set, else (auto) the nodes of the vCPUs'
    /// soft ∩ hard affinity within the pool, or of their hard affinity if that is empty.
    pub(crate) fn domain_node_affinity(&self, dom: DomId, cpu_node: &[u32]) -> u64 {
        if let Some(mask) = self.memory.explicit_node_affinity(dom) {
            return mask;
        }
        let Some(domain) = self.domains.get(dom) else {
            return 0;
        };
        let width = self.host.nr_cpus();
        let pool_cpus = &self.pool_ref(domain.pool).cpus;
        let mut hard = CpuMask::empty(width);
        let mut soft = CpuMask::empty(width);
        for vcpu in &domain.vcpus {
            hard.or_with(&vcpu.hard_affinity);
            soft.or_with(&vcpu.soft_affinity);
        }
        hard.and_with(pool_cpus);
        soft.and_with(&hard);
        let cpus = if soft.is_empty() { hard } else { soft };
        cpus.iter()
            .filter_map(|cpu| cpu_node.get(cpu.index()))
            .fold(0u64, |m, &n| m | 1u64.checked_shl(n).unwrap_or(0))
    }
}

/// The pCPUs of each node below `nr_nodes` that a node affinity can name (nodes from 64
/// on have no bit in one, and count nowhere).
fn node_cpu_masks(cpu_node: &[u32], nr_nodes: usize, width: u32) -> Vec<CpuMask> {
    let mut masks = alloc::vec![CpuMask::empty(width); nr_nodes.min(64)];
    for (index, &node) in cpu_node.iter().enumerate() {
        let cpu = u32::try_from(index).ok().filter(|&i| i < width);
        let (Some(cpu), Some(mask)) = (cpu.and_then(PcpuId::new), masks.get_mut(node as usize))
        else {
            continue;
        };
        mask.set(cpu);
    }
    masks
}

/// One vCPU of `nr_vcpus_on_nodes`: +1 on every node of `dom_nodes` where its hard
/// affinity meets `usable` (suitable ∩ its pool), by mask instead of pCPU by pCPU.
fn count_vcpu(
    counts: &mut [u32],
    node_cpus: &[CpuMask],
    hard: &CpuMask,
    usable: &CpuMask,
    dom_nodes: u64,
) {
    for (node, cpus) in node_cpus.iter().enumerate() {
        let bit = 1u64 << node;
        if dom_nodes & bit != 0 && hard.intersects_and(usable, cpus) {
            if let Some(slot) = counts.get_mut(node) {
                *slot += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One vCPU's count as `vcpus_on_nodes` made it pCPU by pCPU before the masks.
    fn count_vcpu_reference(
        counts: &mut [u32],
        cpu_node: &[u32],
        hard: &CpuMask,
        suitable: &CpuMask,
        pool_cpus: &CpuMask,
        dom_nodes: u64,
    ) {
        let mut counted = 0u64;
        for cpu in hard.iter() {
            let Some(&node) = cpu_node.get(cpu.index()) else {
                break;
            };
            let bit = 1u64.checked_shl(node).unwrap_or(0);
            if suitable.test(cpu)
                && pool_cpus.test(cpu)
                && dom_nodes & bit != 0
                && counted & bit == 0
            {
                counted |= bit;
                if let Some(slot) = counts.get_mut(node as usize) {
                    *slot += 1;
                }
            }
        }
    }

    fn mask_of(width: u32, bits: u128) -> CpuMask {
        let mut mask = CpuMask::empty(width);
        for i in 0..width {
            if bits >> i & 1 == 1 {
                mask.set(PcpuId::new(i).expect("small id"));
            }
        }
        mask
    }

    /// A pCPU's node: few nodes, and sometimes one past the node count or 64.
    fn node_strategy() -> impl Strategy<Value = u32> {
        prop::sample::select(alloc::vec![0u32, 1, 2, 3, 64])
    }

    proptest! {
        #[test]
        fn count_vcpu_by_masks_matches_cpu_walk(
            width in 1u32..100,
            nodes in prop::collection::vec(node_strategy(), 100),
            nr_nodes in 1usize..4,
            masks in (any::<u128>(), any::<u128>(), any::<u128>()),
            dom_nodes in any::<u64>(),
            // pCPUs at the top without a node (the walk stops at the first of them).
            nodeless in 0u32..3,
        ) {
            let cpu_node = &nodes[..width.saturating_sub(nodeless) as usize];
            let (hard, suitable, pool) =
                (mask_of(width, masks.0), mask_of(width, masks.1), mask_of(width, masks.2));
            let mut expected = alloc::vec![0u32; nr_nodes];
            count_vcpu_reference(&mut expected, cpu_node, &hard, &suitable, &pool, dom_nodes);
            let node_cpus = node_cpu_masks(cpu_node, nr_nodes, width);
            let mut got = alloc::vec![0u32; nr_nodes];
            count_vcpu(&mut got, &node_cpus, &hard, &suitable.and(&pool), dom_nodes);
            prop_assert_eq!(got, expected);
        }
    }

    fn all(width: u32) -> CpuMask {
        CpuMask::full(width)
    }

    #[test]
    fn emptier_node_wins_on_equal_load() {
        let view = NumaView {
            cpu_node: &[0, 0, 1, 1],
            node_free_kib: &[1 << 20, 3 << 20],
            vcpus_on_node: &[0, 0],
        };
        let c = numa_candidate(&view, &all(4), 512 << 10, 2).expect("fits one node");
        assert_eq!(c.nodemap, 0b10);
        assert_eq!((c.nr_nodes, c.nr_cpus, c.free_kib), (1, 2, 3 << 20));
    }

    #[test]
    fn fewer_vcpus_beats_more_free_memory() {
        let view = NumaView {
            cpu_node: &[0, 0, 1, 1],
            node_free_kib: &[1 << 20, 3 << 20],
            vcpus_on_node: &[1, 2],
        };
        let c = numa_candidate(&view, &all(4), 512 << 10, 2).expect("fits");
        assert_eq!(c.nodemap, 0b01);
    }

    #[test]
    fn too_big_for_one_node_takes_two() {
        let view = NumaView {
            cpu_node: &[0, 0, 1, 1, 2, 2],
            node_free_kib: &[1 << 20, 1 << 20, 2 << 20],
            vcpus_on_node: &[0, 0, 0],
        };
        // 2.5 GiB: no single node; among pairs {0,2} and {1,2} tie at 3 GiB, the first
        // in lexicographic order stays (a later one must be strictly better).
        let c = numa_candidate(&view, &all(6), 5 << 19, 1).expect("two nodes");
        assert_eq!(c.nodemap, 0b101);
        // 3 vCPUs need two nodes of 2 pCPUs even though memory fits one; {0,2} is the
        // first pair with the most free memory.
        let c = numa_candidate(&view, &all(6), 1, 3).expect("two nodes");
        assert_eq!((c.nr_nodes, c.nr_cpus), (2, 4));
        assert_eq!(c.nodemap, 0b101);
    }

    #[test]
    fn no_candidate_and_single_node_hosts() {
        let view = NumaView {
            cpu_node: &[0, 1],
            node_free_kib: &[1024, 1024],
            vcpus_on_node: &[0, 0],
        };
        assert_eq!(numa_candidate(&view, &all(2), 4096, 1), None);
        let one = NumaView {
            cpu_node: &[0, 0],
            node_free_kib: &[1 << 30],
            vcpus_on_node: &[0],
        };
        assert_eq!(numa_candidate(&one, &all(2), 1, 1), None);
    }

    #[test]
    fn suitable_cpus_limit_the_nodes() {
        let view = NumaView {
            cpu_node: &[0, 0, 1, 1],
            node_free_kib: &[1 << 20, 3 << 20],
            vcpus_on_node: &[0, 0],
        };
        let mut pool = CpuMask::empty(4);
        pool.set(PcpuId::new(0).expect("small cpu"));
        pool.set(PcpuId::new(1).expect("small cpu"));
        let c = numa_candidate(&view, &pool, 1, 1).expect("node 0");
        assert_eq!(c.nodemap, 0b01);
    }

    #[test]
    fn comb_next_is_lexicographic() {
        let mut comb = [0, 1];
        let mut seen = alloc::vec![comb];
        while comb_next(&mut comb, 4) {
            seen.push(comb);
        }
        assert_eq!(seen, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]);
    }

    #[test]
    fn need_memory_adds_paging_and_extra_rounded_to_2_mib() {
        let mut config = DomainConfig::with_defaults(alloc::string::String::from("a"));
        config.memory_kib = 512 * 1024;
        config.max_memory_kib = 512 * 1024;
        config.max_vcpus = 2;
        config.guest_type = GuestType::Pv;
        // 524288 + 4*512 + 1024 = 527360, rounded up to 528384.
        assert_eq!(need_memory_kib(&config), 528_384);
        config.guest_type = GuestType::Hvm;
        // 524288 + 4*(512+512) + 2048 = 530432 (already a multiple of 2048).
        assert_eq!(need_memory_kib(&config), 530_432);
        config.device_model.stubdomain = true;
        // Plus the stub domain's 128 MiB and the guest's 8 MiB of video memory.
        assert_eq!(need_memory_kib(&config), 530_432 + 136 * 1024);
    }
}
