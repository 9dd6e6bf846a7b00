//! The host's cpupools, kept in a vector sorted by pool id.
//!
//! Follows xen/common/sched/cpupool.c (`cpupool_list`, kept sorted by id, and
//! `__cpupool_find_by_id`).
//!
//! Every scheduler hook looks its pool up (`Hypervisor::with_sched`), several times per
//! `schedule()`: a host has few pools (at most `POOLS_PER_CPU_MAX * nr_cpus`, most often
//! one), so a binary search over a short vector beats walking a B-tree node, and iteration
//! stays in id order as `libxl_list_cpupool` reports it.
//!
//! # Invariants
//! - Ids are strictly ascending along the vector (checked by `check.rs`,
//!   `core.pools_sorted_by_id`), so each id is present at most once.

use alloc::vec::Vec;

use crate::ids::PoolId;
use crate::sched::Pool;

/// The pools of a host, sorted by id.
#[derive(Debug, Default)]
pub(crate) struct PoolTable {
    sorted: Vec<Pool>,
}

impl PoolTable {
    /// Where pool `id` is (`Ok`) or would go (`Err`).
    #[inline]
    fn position(&self, id: PoolId) -> Result<usize, usize> {
        self.sorted.binary_search_by_key(&id, |pool| pool.id)
    }

    /// Pool `id`, if it exists.
    #[inline]
    pub(crate) fn get(&self, id: PoolId) -> Option<&Pool> {
        let index = self.position(id).ok()?;
        self.sorted.get(index)
    }

    /// Mutable pool `id`, if it exists.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: PoolId) -> Option<&mut Pool> {
        let index = self.position(id).ok()?;
        self.sorted.get_mut(index)
    }

    /// True if pool `id` exists.
    pub(crate) fn contains(&self, id: PoolId) -> bool {
        self.position(id).is_ok()
    }

    /// Adds `pool` at its place in id order; `false` (and no change) if its id is taken.
    pub(crate) fn insert(&mut self, pool: Pool) -> bool {
        match self.position(pool.id) {
            Ok(_) => false,
            Err(index) => {
                self.sorted.insert(index, pool);
                true
            }
        }
    }

    /// Removes and returns pool `id`.
    pub(crate) fn remove(&mut self, id: PoolId) -> Option<Pool> {
        let index = self.position(id).ok()?;
        Some(self.sorted.remove(index))
    }

    /// Number of pools.
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True if no pool exists (before boot creates Pool-0).
    pub(crate) fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The pools in id order.
    pub(crate) fn iter(&self) -> core::slice::Iter<'_, Pool> {
        self.sorted.iter()
    }

    /// The highest pool id, if any pool exists.
    pub(crate) fn last_id(&self) -> Option<PoolId> {
        self.sorted.last().map(|pool| pool.id)
    }

    /// True if the ids are strictly ascending (the table's invariant).
    pub(crate) fn is_sorted_by_id(&self) -> bool {
        self.sorted.windows(2).all(|pair| pair[0].id < pair[1].id)
    }

    /// Breaks the invariant on purpose: swaps the pools at positions `a` and `b`.
    #[cfg(test)]
    pub(crate) fn swap_for_test(&mut self, a: usize, b: usize) {
        self.sorted.swap(a, b);
    }
}
