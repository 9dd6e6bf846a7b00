//! The replenishment queue of one rtds pool (`prv->replq`): a list in which a new entry
//! goes before the first entry whose current key it strictly beats, as Xen's
//! `deadline_queue_insert` does, stored as a list of blocks so that this search and the
//! removal of any entry cost about √n instead of n.
//!
//! Follows xen/common/sched/rt.c (Xen 4.17): `deadline_queue_insert`,
//! `deadline_queue_remove`, `replq_insert`, `replq_remove`; spec `schedulers.md` §3.6.
//! The order kept is exactly the one of Xen's list, including its quirk (see `queues.rs`):
//! the keys of running servers change in place, so the list is not always sorted, and a
//! search must look at current keys, not at a key order. Each entry carries a copy of its
//! server's key, refreshed on every in-place change ([`ReplQueue::rekey`]), and each block
//! the largest key in it, so the search skips whole blocks without a better entry.
//!
//! # Invariants
//! - Blocks are never empty and hold at most [`BLOCK_ITEMS_MAX`] entries; two neighbours
//!   hold more than [`BLOCK_ITEMS_MERGE`] together (so there are at most
//!   `2n / BLOCK_ITEMS_MERGE + 1` blocks).
//! - `order[i].0` is the largest key of block `order[i].1`.
//! - Each entry's block is recorded with its server ([`Locate`]).
//!
//! Left out: nothing; the head is the pool timer's deadline (`next_timer`).

use alloc::vec::Vec;

use super::running::Key;
use crate::ids::VcpuRef;

/// Largest block; a block growing past it splits in two. A removal or an in-place key
/// change walks one block and the block order, so blocks near √n of the 512 vCPUs of the
/// reference scenarios keep both walks short.
const BLOCK_ITEMS_MAX: usize = 64;
/// Neighbours holding at most this many entries together merge.
const BLOCK_ITEMS_MERGE: usize = BLOCK_ITEMS_MAX / 2;

const _: () = assert!(BLOCK_ITEMS_MERGE < BLOCK_ITEMS_MAX);

/// Where the queue records which block holds a vCPU (the server's back-pointer).
pub trait Locate {
    /// The block holding `v`, if it is queued.
    fn block_of(&self, v: VcpuRef) -> Option<u32>;
    /// Records that `block` holds `v` (`None`: off the queue).
    fn set_block_of(&mut self, v: VcpuRef, block: Option<u32>);
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct ReplQueue {
    /// Entries of each block id (`(key copy, vCPU)`), in list order; ids are reused.
    blocks: Vec<Vec<(Key, VcpuRef)>>,
    /// The blocks in list order, with the largest key of each.
    order: Vec<(Key, u32)>,
    /// Ids of emptied blocks, for reuse.
    free: Vec<u32>,
    /// Number of entries.
    len: usize,
}

impl ReplQueue {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The first entry.
    pub fn first(&self) -> Option<VcpuRef> {
        let &(_, id) = self.order.first()?;
        self.items(id).first().map(|&(_, v)| v)
    }

    /// The first entry with its key copy.
    pub fn first_keyed(&self) -> Option<(Key, VcpuRef)> {
        let &(_, id) = self.order.first()?;
        self.items(id).first().copied()
    }

    /// The entries in list order (for the debug checks and tests).
    #[cfg(any(test, debug_assertions))]
    pub fn iter(&self) -> impl Iterator<Item = VcpuRef> + '_ {
        self.iter_keyed().map(|(_, v)| v)
    }

    /// The entries in list order with their key copies.
    pub fn iter_keyed(&self) -> impl Iterator<Item = (Key, VcpuRef)> + '_ {
        self.order
            .iter()
            .flat_map(|&(_, id)| self.items(id).iter().copied())
    }

    /// True if the blocks keep the module's invariants (for the checker; O(n)).
    pub fn well_formed(&self) -> bool {
        let sized = self.order.iter().all(|&(max, id)| {
            let items = self.items(id);
            !items.is_empty() && items.len() <= BLOCK_ITEMS_MAX && block_max(items) == max
        });
        let merged = self.order.windows(2).all(|pair| {
            self.items(pair[0].1).len() + self.items(pair[1].1).len() > BLOCK_ITEMS_MERGE
        });
        let counted = self
            .order
            .iter()
            .map(|&(_, id)| self.items(id).len())
            .sum::<usize>();
        sized && merged && counted == self.len
    }

    fn items(&self, id: u32) -> &[(Key, VcpuRef)] {
        match self.blocks.get(index(id)) {
            Some(items) => items,
            None => panic!("replq block {id} missing"),
        }
    }

    /// `deadline_queue_insert`: `v` goes before the first entry with a key strictly
    /// greater than `key` (after every entry if none).
    pub fn insert(&mut self, loc: &mut impl Locate, v: VcpuRef, key: Key) {
        assert!(loc.block_of(v).is_none(), "{v:?} on replq twice");
        let found = self.order.iter().position(|&(max, _)| max > key);
        let (slot, at) = match found {
            Some(slot) => {
                let id = self.order[slot].1;
                let at = self.items(id).iter().position(|&(k, _)| k > key);
                match at {
                    Some(at) => (slot, at),
                    None => panic!("replq block {id} max out of date"),
                }
            }
            None if self.order.is_empty() => {
                let id = self.new_block();
                self.order.push((key, id));
                (0, 0)
            }
            None => {
                let slot = self.order.len() - 1;
                (slot, self.items(self.order[slot].1).len())
            }
        };
        let id = self.order[slot].1;
        self.blocks[index(id)].insert(at, (key, v));
        self.order[slot].0 = self.order[slot].0.max(key);
        loc.set_block_of(v, Some(id));
        self.len += 1;
        if self.items(id).len() > BLOCK_ITEMS_MAX {
            self.split(loc, slot);
        }
    }

    /// `deadline_queue_remove`.
    pub fn remove(&mut self, loc: &mut impl Locate, v: VcpuRef) {
        let Some(id) = loc.block_of(v) else {
            panic!("{v:?} not on replq");
        };
        let items = &mut self.blocks[index(id)];
        let (removed_key, _) = match items.iter().position(|&(_, w)| w == v) {
            Some(at) => items.remove(at),
            None => panic!("{v:?} recorded in replq block {id} but not in it"),
        };
        loc.set_block_of(v, None);
        self.len -= 1;
        let slot = self.slot_of(id);
        if self.items(id).is_empty() {
            self.order.remove(slot);
            self.free.push(id);
            if slot > 0 && slot < self.order.len() {
                self.merge_if_small(loc, slot - 1);
            }
            return;
        }
        // Only the removal of the block's largest key can lower its largest key.
        if removed_key == self.order[slot].0 {
            self.order[slot].0 = block_max(self.items(id));
        }
        debug_assert_eq!(self.order[slot].0, block_max(self.items(id)));
        if slot + 1 < self.order.len() {
            self.merge_if_small(loc, slot);
        }
        if slot > 0 {
            self.merge_if_small(loc, slot - 1);
        }
    }

    /// `v`'s key changed in place to `key`: its copy follows, its place does not.
    pub fn rekey(&mut self, loc: &impl Locate, v: VcpuRef, key: Key) {
        let Some(id) = loc.block_of(v) else {
            return;
        };
        let slot = self.slot_of(id);
        let items = &mut self.blocks[index(id)];
        let old = match items.iter_mut().find(|(_, w)| *w == v) {
            Some(entry) => core::mem::replace(&mut entry.0, key),
            None => panic!("{v:?} recorded in replq block {id} but not in it"),
        };
        // Keys mostly rise in place (a level dropped, a replenishment): the largest key
        // then only needs the new one; the block is only rescanned when its largest key
        // fell.
        let max = &mut self.order[slot].0;
        if key >= *max {
            *max = key;
        } else if old == *max {
            *max = block_max(items);
        }
        debug_assert_eq!(self.order[slot].0, block_max(self.items(id)));
    }

    fn slot_of(&self, id: u32) -> usize {
        match self.order.iter().position(|&(_, b)| b == id) {
            Some(slot) => slot,
            None => panic!("replq block {id} not in the order"),
        }
    }

    fn new_block(&mut self) -> u32 {
        if let Some(id) = self.free.pop() {
            return id;
        }
        let id = u32::try_from(self.blocks.len()).unwrap_or(u32::MAX);
        assert!(id < u32::MAX, "too many replq blocks");
        self.blocks.push(Vec::new());
        id
    }

    /// Splits the block at `slot` in two halves.
    fn split(&mut self, loc: &mut impl Locate, slot: usize) {
        let id = self.order[slot].1;
        let new_id = self.new_block();
        let half = self.items(id).len() / 2;
        let tail = self.blocks[index(id)].split_off(half);
        for &(_, w) in &tail {
            loc.set_block_of(w, Some(new_id));
        }
        self.blocks[index(new_id)] = tail;
        self.order[slot].0 = block_max(self.items(id));
        let tail_max = block_max(self.items(new_id));
        self.order.insert(slot + 1, (tail_max, new_id));
    }

    /// Merges the block after `slot` into the one at `slot` if both are small.
    fn merge_if_small(&mut self, loc: &mut impl Locate, slot: usize) {
        let (id, next_id) = (self.order[slot].1, self.order[slot + 1].1);
        if self.items(id).len() + self.items(next_id).len() > BLOCK_ITEMS_MERGE {
            return;
        }
        let moved = core::mem::take(&mut self.blocks[index(next_id)]);
        for &(_, w) in &moved {
            loc.set_block_of(w, Some(id));
        }
        self.blocks[index(id)].extend(moved);
        self.order[slot].0 = self.order[slot].0.max(self.order[slot + 1].0);
        self.order.remove(slot + 1);
        self.free.push(next_id);
    }
}

fn index(id: u32) -> usize {
    usize::try_from(id).unwrap_or(usize::MAX)
}

fn block_max(items: &[(Key, VcpuRef)]) -> Key {
    match items.iter().map(|&(k, _)| k).max() {
        Some(max) => max,
        None => panic!("empty replq block"),
    }
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    use super::{Key, Locate, ReplQueue, BLOCK_ITEMS_MAX};
    use crate::ids::{DomId, VcpuId, VcpuRef};
    use crate::time::STime;

    /// Back-pointers in a map, and the keys the list model compares.
    #[derive(Default)]
    struct Model {
        blocks: BTreeMap<VcpuRef, u32>,
        keys: BTreeMap<VcpuRef, Key>,
        list: Vec<VcpuRef>,
    }

    impl Locate for Model {
        fn block_of(&self, v: VcpuRef) -> Option<u32> {
            self.blocks.get(&v).copied()
        }
        fn set_block_of(&mut self, v: VcpuRef, block: Option<u32>) {
            match block {
                Some(b) => self.blocks.insert(v, b),
                None => self.blocks.remove(&v),
            };
        }
    }

    impl Model {
        /// Xen's list insertion: before the first entry with a greater current key.
        fn list_insert(&mut self, v: VcpuRef, key: Key) {
            let keys = &self.keys;
            let at = self.list.iter().position(|w| keys[w] > key);
            self.list.insert(at.unwrap_or(self.list.len()), v);
        }
    }

    /// vCPU `index` of a set of guests of 64 vCPUs each (domids from 1).
    fn vcpu(index: u32) -> VcpuRef {
        let dom = u16::try_from(1 + index / 64).expect("few guests");
        VcpuRef {
            dom: DomId::new(dom).expect("domid"),
            vcpu: VcpuId::new(index % 64).expect("vcpu"),
        }
    }

    /// A fixed pseudo-random walk (an LCG from a named seed) of inserts, removals and
    /// in-place key changes over more entries than several blocks hold: the blocked queue
    /// keeps the list's order at every step.
    #[test]
    fn blocked_replq_keeps_the_list_order_through_splits_merges_and_rekeys() {
        const SEED: u64 = 0x5eed;
        // Three blocks' worth of vCPUs (BLOCK_ITEMS_MAX is 64).
        const VCPU_COUNT: u32 = 3 * 64;
        const _: () = assert!(VCPU_COUNT as usize == 3 * BLOCK_ITEMS_MAX);
        const STEPS: u32 = 20_000;
        let mut q = ReplQueue::default();
        let mut m = Model::default();
        let mut state = SEED;
        for _ in 0..STEPS {
            let pick = u32::try_from(crate::testing::lcg_step(&mut state) >> 33).expect("31 bits");
            let v = vcpu(pick % VCPU_COUNT);
            let action = (pick / VCPU_COUNT) % 4;
            if m.blocks.contains_key(&v) && action == 0 {
                // Mostly raised (as rtds does), sometimes lowered: both ways of moving a
                // block's largest key.
                let key = m.keys[&v];
                let moved = if pick % 5 == 0 {
                    (key.0.saturating_sub(1), key.1)
                } else {
                    (key.0 + 1, key.1)
                };
                m.keys.insert(v, moved);
                q.rekey(&m, v, moved);
            } else if m.blocks.contains_key(&v) {
                q.remove(&mut m, v);
                m.list.retain(|w| *w != v);
            } else {
                let key: Key = (pick % 3, STime::from_ns(i64::from(pick % 17)));
                m.keys.insert(v, key);
                m.list_insert(v, key);
                q.insert(&mut m, v, key);
            }
            assert!(q.iter().eq(m.list.iter().copied()));
            assert_eq!(q.len(), m.list.len());
            assert!(q.well_formed());
        }
        assert!(q.order.len() > 1, "the walk never split a block");
    }
}
