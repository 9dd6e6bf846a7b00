//! A max tree over the pCPUs of a host: one optional key per pCPU, and for every subtree
//! the largest key in it, so that the running index (`running.rs`) finds the highest key,
//! the first pCPU holding a given key at or after a position, and the next lower key, in
//! O(log n) steps, and changes a pCPU's key by refreshing the maxima on its path (no
//! allocation, no rebalancing: a fixed array of `2 × leaves` slots).
//!
//! Follows nothing in Xen: it is xensim's storage for the facts rt.c's `runq_tickle`
//! reads by walking every pCPU.
//!
//! # Invariants
//! - `leaves` is a power of two at least the number of pCPUs; leaf `c` is slot
//!   `leaves + c`, and the slots of leaves past the pCPUs stay `None`.
//! - Every inner slot `i` holds `max(slot 2i, slot 2i + 1)` (`None` below every key).
//! - `count` is the number of leaves holding a key.

use alloc::vec::Vec;

use super::running::Key;

/// See the module doc.
#[derive(Debug)]
pub struct KeyTree {
    /// Slot 1 is the root; slot `leaves + c` is pCPU `c`; slot 0 is unused.
    slots: Vec<Option<Key>>,
    /// Number of leaf slots (a power of two).
    leaves: usize,
    /// Number of pCPUs (leaves in use).
    cpus: usize,
    /// Number of leaves holding a key.
    count: usize,
}

impl KeyTree {
    /// A tree of `cpus` empty leaves.
    pub fn new(cpus: usize) -> KeyTree {
        let leaves = cpus.max(1).next_power_of_two();
        KeyTree {
            slots: alloc::vec![None; 2 * leaves],
            leaves,
            cpus,
            count: 0,
        }
    }

    /// Number of pCPUs.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Number of pCPUs holding a key.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The key of pCPU `cpu`.
    pub fn get(&self, cpu: usize) -> Option<Key> {
        self.slots.get(self.leaves + cpu).copied().flatten()
    }

    /// Sets the key of pCPU `cpu` and refreshes the maxima above it.
    pub fn put(&mut self, cpu: usize, key: Option<Key>) {
        assert!(cpu < self.cpus, "pCPU {cpu} outside the key tree");
        let mut at = self.leaves + cpu;
        let old = core::mem::replace(&mut self.slots[at], key);
        if old == key {
            return;
        }
        self.count = self.count + usize::from(key.is_some()) - usize::from(old.is_some());
        while at > 1 {
            at /= 2;
            let max = self.slots[2 * at].max(self.slots[2 * at + 1]);
            if self.slots[at] == max {
                // The maxima above are unchanged too.
                break;
            }
            self.slots[at] = max;
        }
    }

    /// The largest key.
    pub fn max(&self) -> Option<Key> {
        self.slots[1]
    }

    /// The first pCPU of `from..below` holding exactly `key`.
    pub fn first_eq_in(&self, from: usize, below: usize, key: Key) -> Option<usize> {
        self.first_eq_node(1, 0, self.leaves, from, below.min(self.cpus), key)
    }

    /// `first_eq_in` inside the subtree of slot `node`, which covers leaves `lo..hi`.
    fn first_eq_node(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        from: usize,
        below: usize,
        key: Key,
    ) -> Option<usize> {
        // No leaf of the range, or no key as large as `key` in the subtree.
        if hi <= from || lo >= below || self.slots[node] < Some(key) {
            return None;
        }
        if hi - lo == 1 {
            return (self.slots[node] == Some(key)).then_some(lo);
        }
        let mid = lo + (hi - lo) / 2;
        self.first_eq_node(2 * node, lo, mid, from, below, key)
            .or_else(|| self.first_eq_node(2 * node + 1, mid, hi, from, below, key))
    }

    /// The largest key strictly below `key`.
    pub fn max_below(&self, key: Key) -> Option<Key> {
        self.max_below_node(1, key)
    }

    fn max_below_node(&self, node: usize, key: Key) -> Option<Key> {
        let here = self.slots[node];
        if here < Some(key) {
            // The whole subtree is below `key`: its maximum is the answer here.
            return here;
        }
        if node >= self.leaves {
            return None;
        }
        self.max_below_node(2 * node, key)
            .max(self.max_below_node(2 * node + 1, key))
    }

    /// True if every inner slot is the maximum of its children and `count` is right
    /// (for the checker and tests; O(n)).
    pub fn well_formed(&self) -> bool {
        let inner =
            (1..self.leaves).all(|i| self.slots[i] == self.slots[2 * i].max(self.slots[2 * i + 1]));
        let unused = self.slots[self.leaves + self.cpus..]
            .iter()
            .all(Option::is_none);
        let counted = self.slots[self.leaves..]
            .iter()
            .filter(|k| k.is_some())
            .count();
        inner && unused && counted == self.count
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::{Key, KeyTree};
    use crate::time::STime;

    fn key(level: u32, deadline_ns: i64) -> Key {
        (level, STime::from_ns(deadline_ns))
    }

    /// A fixed pseudo-random walk (an LCG from a named seed) of key changes on a host whose
    /// pCPU count is not a power of two: every query matches a scan of the leaves.
    #[test]
    fn key_tree_queries_match_a_scan_of_the_leaves() {
        const SEED: u64 = 0x7ee5;
        const CPUS: usize = 37;
        const STEPS: u32 = 5_000;
        let mut tree = KeyTree::new(CPUS);
        let mut model: Vec<Option<Key>> = alloc::vec![None; CPUS];
        let mut state = SEED;
        for _ in 0..STEPS {
            let pick =
                usize::try_from(crate::testing::lcg_step(&mut state) >> 40).expect("24 bits");
            let cpu = pick % CPUS;
            let value = (pick / CPUS) % 7;
            let new = (value != 0).then(|| {
                key(
                    u32::from(value == 6),
                    i64::try_from(value % 3).expect("small"),
                )
            });
            tree.put(cpu, new);
            model[cpu] = new;
            assert!(tree.well_formed());
            assert_eq!(tree.count(), model.iter().flatten().count());
            assert_eq!(tree.max(), model.iter().copied().flatten().max());
            let probe = key(0, i64::try_from(pick % 4).expect("small"));
            let below = model.iter().copied().flatten().filter(|k| *k < probe).max();
            assert_eq!(tree.max_below(probe), below);
            let from = pick % (CPUS + 1);
            let first = (from..CPUS).find(|c| model[*c] == Some(probe));
            assert_eq!(tree.first_eq_in(from, CPUS, probe), first);
            let early = (0..from).find(|c| model[*c] == Some(probe));
            assert_eq!(tree.first_eq_in(0, from, probe), early);
        }
        assert!(tree.count() > 0, "the walk left every pCPU empty");
    }
}
