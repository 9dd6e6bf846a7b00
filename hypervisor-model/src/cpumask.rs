//! A set of pCPUs, with the walks Xen's schedulers use.
//!
//! Follows xen/include/xen/cpumask.h: `cpumask_first`, `cpumask_cycle`,
//! `cpumask_test_or_cycle`, and the boolean operations.
//!
//! # Invariants
//! - No bit at or past the mask's width is ever set.

use alloc::vec::Vec;
use core::fmt;

use crate::ids::PcpuId;

/// A fixed-width bitmap of pCPUs (one bit per pCPU of the host).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CpuMask {
    words: Vec<u64>,
    width: u32,
}

impl CpuMask {
    /// An empty mask for a host with `width` pCPUs.
    pub fn empty(width: u32) -> CpuMask {
        let word_count = width.div_ceil(64) as usize;
        CpuMask {
            words: alloc::vec![0; word_count],
            width,
        }
    }

    /// Every pCPU of a host with `width` pCPUs.
    pub fn full(width: u32) -> CpuMask {
        let mut mask = CpuMask::empty(width);
        for cpu in 0..width {
            mask.set_raw(cpu);
        }
        mask
    }

    /// A mask holding only `cpu`.
    pub fn single(width: u32, cpu: PcpuId) -> CpuMask {
        let mut mask = CpuMask::empty(width);
        mask.set(cpu);
        mask
    }

    /// Number of pCPUs the mask can name.
    pub fn width(&self) -> u32 {
        self.width
    }

    fn set_raw(&mut self, cpu: u32) {
        assert!(
            cpu < self.width,
            "cpu {cpu} outside mask width {}",
            self.width
        );
        self.words[(cpu / 64) as usize] |= 1u64 << (cpu % 64);
    }

    /// Adds `cpu`.
    pub fn set(&mut self, cpu: PcpuId) {
        self.set_raw(cpu.raw());
    }

    /// Removes `cpu`.
    pub fn clear(&mut self, cpu: PcpuId) {
        assert!(cpu.raw() < self.width);
        self.words[(cpu.raw() / 64) as usize] &= !(1u64 << (cpu.raw() % 64));
    }

    /// True if `cpu` is in the mask (false past the width).
    pub fn test(&self, cpu: PcpuId) -> bool {
        cpu.raw() < self.width
            && self.words[(cpu.raw() / 64) as usize] & (1u64 << (cpu.raw() % 64)) != 0
    }

    /// True if no pCPU is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Number of pCPUs set (`cpumask_weight`).
    pub fn weight(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Lowest set pCPU (`cpumask_first`).
    pub fn first(&self) -> Option<PcpuId> {
        self.next_at_or_after(0)
    }

    fn next_at_or_after(&self, start: u32) -> Option<PcpuId> {
        (start..self.width)
            .find(|c| self.words[(c / 64) as usize] & (1u64 << (c % 64)) != 0)
            .and_then(PcpuId::new)
    }

    /// First set pCPU strictly after `start`, wrapping (`cpumask_cycle`).
    pub fn cycle(&self, start: PcpuId) -> Option<PcpuId> {
        self.next_at_or_after(start.raw().saturating_add(1))
            .or_else(|| self.first())
    }

    /// `start` if set, else `cycle(start)` (`cpumask_test_or_cycle`).
    pub fn test_or_cycle(&self, start: PcpuId) -> Option<PcpuId> {
        if self.test(start) {
            Some(start)
        } else {
            self.cycle(start)
        }
    }

    /// `self & other`.
    #[must_use]
    pub fn and(&self, other: &CpuMask) -> CpuMask {
        self.zip(other, |a, b| a & b)
    }

    /// `self | other`.
    #[must_use]
    pub fn or(&self, other: &CpuMask) -> CpuMask {
        self.zip(other, |a, b| a | b)
    }

    /// `self & !other`.
    #[must_use]
    pub fn and_not(&self, other: &CpuMask) -> CpuMask {
        self.zip(other, |a, b| a & !b)
    }

    fn zip(&self, other: &CpuMask, op: impl Fn(u64, u64) -> u64) -> CpuMask {
        assert_eq!(self.width, other.width, "masks of different hosts");
        let words = self
            .words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| op(*a, *b))
            .collect();
        CpuMask {
            words,
            width: self.width,
        }
    }

    /// True if every pCPU of `self` is in `other` (`cpumask_subset`).
    pub fn is_subset(&self, other: &CpuMask) -> bool {
        self.and_not(other).is_empty()
    }

    /// True if the masks share a pCPU (`cpumask_intersects`).
    pub fn intersects(&self, other: &CpuMask) -> bool {
        !self.and(other).is_empty()
    }

    /// The set pCPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = PcpuId> + '_ {
        (0..self.width)
            .filter_map(PcpuId::new)
            .filter(|c| self.test(*c))
    }
}

impl fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|c| c.raw()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::CpuMask;
    use crate::ids::PcpuId;

    fn cpu(n: u32) -> PcpuId {
        PcpuId::new(n).expect("test cpu in range")
    }

    #[test]
    fn cycle_wraps_to_first_set_bit() {
        let mut mask = CpuMask::empty(8);
        mask.set(cpu(1));
        mask.set(cpu(5));
        assert_eq!(mask.cycle(cpu(5)), Some(cpu(1)));
        assert_eq!(mask.cycle(cpu(1)), Some(cpu(5)));
    }

    #[test]
    fn test_or_cycle_keeps_start_when_set() {
        let mask = CpuMask::full(4);
        assert_eq!(mask.test_or_cycle(cpu(2)), Some(cpu(2)));
    }

    #[test]
    fn empty_mask_cycle_is_none() {
        assert_eq!(CpuMask::empty(70).cycle(cpu(3)), None);
    }

    #[test]
    fn subset_of_full_mask_across_word_boundary() {
        let mut mask = CpuMask::empty(70);
        mask.set(cpu(65));
        assert!(mask.is_subset(&CpuMask::full(70)));
        assert_eq!(mask.weight(), 1);
    }
}
