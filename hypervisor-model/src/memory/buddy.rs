//! One NUMA node's buddy heap: free lists keyed by (zone, order), split on allocation,
//! merged on free.
//!
//! Follows xen/common/page_alloc.c: `heap(node, zone, order)`, `avail[node][zone]`,
//! `get_free_buddy()` (the per-node part: zones high to low, the smallest order that has
//! a block, a dirty block of order > 0 moved to the list's tail when clean memory is
//! wanted), `alloc_heap_pages()` (halving: the lower halves go back, the top part is
//! returned) and `free_heap_pages()` (merging with the predecessor or successor buddy
//! while it is free, of the same order and on the same node; a clean block goes to the
//! head of its list, one needing scrub to the tail).
//!
//! Sparse: a free block is one entry whatever its order, so a free 1 TiB node is a few
//! thousand order-18 blocks, never 2^28 frames.
//!
//! # Invariants
//! - Every free block is naturally aligned to its order, inside the node, in one zone,
//!   overlaps no other free block, and has no free buddy of the same order.
//! - `avail[zone]` is the number of pages in that zone's blocks; `avail_pages` their sum.
//! - A block is on exactly one list, the one of its (zone, order).
//!
//! xensim differs: Xen tracks scrubbing per page (`PGC_need_scrub`, `first_dirty`); here a
//! free block carries one need-scrub flag, and a block merged from a clean and a dirty half
//! needs scrubbing as a whole. Idle-time scrubbing ([`NodeHeap::scrub`]) scrubs whole
//! blocks, never part of one.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{MAX_ORDER, NR_ZONES};

/// `page_to_zone()` for a domheap frame: the position of the MFN's highest set bit
/// (`flsl`), at least 1.
pub fn zone_of(mfn: u64) -> u8 {
    let bits = 64 - mfn.leading_zeros();
    u8::try_from(bits.max(1)).unwrap_or(u8::MAX)
}

/// A list with Xen's `page_list` operations (add at head or tail, remove anywhere), each
/// O(log n): positions are keys that grow at the tail and shrink at the head.
#[derive(Clone, Debug, Default)]
struct FreeList {
    by_pos: BTreeMap<i64, u64>,
    head_pos: i64,
    tail_pos: i64,
}

impl FreeList {
    fn push_head(&mut self, mfn: u64) -> i64 {
        self.head_pos -= 1;
        let pos = self.head_pos;
        if self.by_pos.is_empty() {
            self.tail_pos = pos;
        }
        self.by_pos.insert(pos, mfn);
        pos
    }

    fn push_tail(&mut self, mfn: u64) -> i64 {
        if self.by_pos.is_empty() {
            return self.push_head(mfn);
        }
        self.tail_pos += 1;
        let pos = self.tail_pos;
        self.by_pos.insert(pos, mfn);
        pos
    }

    fn head(&self) -> Option<(i64, u64)> {
        self.by_pos.iter().next().map(|(pos, mfn)| (*pos, *mfn))
    }

    fn remove(&mut self, pos: i64) -> u64 {
        let mfn = self.by_pos.remove(&pos);
        mfn.expect("free block on its list")
    }

    fn len(&self) -> usize {
        self.by_pos.len()
    }
}

/// One free buddy block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeBlock {
    /// log2 of its size in pages.
    pub order: u8,
    /// Needs scrubbing before a domain may see it.
    pub dirty: bool,
    /// Its position on its list.
    pos: i64,
}

/// A block taken off the heap by [`NodeHeap::take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// First frame of the returned block (the requested order).
    pub mfn: u64,
    /// The pages handed out need scrubbing.
    pub dirty: bool,
}

/// One node's heap.
#[derive(Clone, Debug)]
pub struct NodeHeap {
    /// First MFN of the node.
    pub start_mfn: u64,
    /// One past the node's last MFN.
    pub end_mfn: u64,
    /// `(zone, order)` lists, indexed `zone * (MAX_ORDER + 1) + order`.
    lists: Vec<FreeList>,
    /// Free blocks by first MFN.
    blocks: BTreeMap<u64, FreeBlock>,
    /// `avail[node][zone]`, pages.
    avail_pages_by_zone: Vec<u64>,
    /// `node_avail_pages[node]`.
    avail_pages: u64,
    /// `node_need_scrub[node]`: free pages waiting to be scrubbed.
    need_scrub_pages: u64,
}

const ORDERS: usize = MAX_ORDER as usize + 1;

fn list_index(zone: u8, order: u8) -> usize {
    usize::from(zone) * ORDERS + usize::from(order)
}

impl NodeHeap {
    /// An empty heap for the MFNs `[start_mfn, end_mfn)`.
    pub fn new(start_mfn: u64, end_mfn: u64) -> NodeHeap {
        assert!(start_mfn <= end_mfn);
        NodeHeap {
            start_mfn,
            end_mfn,
            lists: alloc::vec![FreeList::default(); usize::from(NR_ZONES) * ORDERS],
            blocks: BTreeMap::new(),
            avail_pages_by_zone: alloc::vec![0; usize::from(NR_ZONES)],
            avail_pages: 0,
            need_scrub_pages: 0,
        }
    }

    /// Free pages on this node.
    pub fn avail_pages(&self) -> u64 {
        self.avail_pages
    }

    /// Free pages of `zone` (`avail[node][zone]`).
    pub fn avail_zone_pages(&self, zone: u8) -> u64 {
        self.avail_pages_by_zone
            .get(usize::from(zone))
            .copied()
            .unwrap_or(0)
    }

    /// Free pages that need scrubbing (pages in blocks flagged dirty).
    pub fn need_scrub_pages(&self) -> u64 {
        self.need_scrub_pages
    }

    /// Free blocks by first MFN.
    pub fn blocks(&self) -> &BTreeMap<u64, FreeBlock> {
        &self.blocks
    }

    /// The free block containing `mfn`, if `mfn` is free.
    pub fn block_containing(&self, mfn: u64) -> Option<(u64, FreeBlock)> {
        let (start, block) = self.blocks.range(..=mfn).next_back()?;
        let end = start.saturating_add(1u64 << block.order);
        (mfn < end).then_some((*start, *block))
    }

    /// Number of blocks on the `(zone, order)` list.
    pub fn list_len(&self, zone: u8, order: u8) -> usize {
        self.lists[list_index(zone, order)].len()
    }

    fn insert(&mut self, mfn: u64, order: u8, dirty: bool) {
        let zone = zone_of(mfn);
        let list = &mut self.lists[list_index(zone, order)];
        // page_list_add_scrub: clean at the head, dirty at the tail.
        let pos = if dirty {
            list.push_tail(mfn)
        } else {
            list.push_head(mfn)
        };
        let old = self.blocks.insert(mfn, FreeBlock { order, dirty, pos });
        assert!(old.is_none(), "mfn {mfn:#x} freed twice");
        if dirty {
            self.need_scrub_pages += 1u64 << order;
        }
    }

    fn unlink(&mut self, mfn: u64) -> FreeBlock {
        let block = self.blocks.remove(&mfn).expect("free block indexed");
        let removed = self.lists[list_index(zone_of(mfn), block.order)].remove(block.pos);
        assert_eq!(removed, mfn);
        if block.dirty {
            self.need_scrub_pages -= 1u64 << block.order;
        }
        block
    }

    /// `free_heap_pages()`: returns `2^order` pages at `mfn` and merges buddies.
    pub fn free(&mut self, mfn: u64, order: u8, dirty: bool) {
        assert!(order <= MAX_ORDER);
        let pages = 1u64 << order;
        assert_eq!(mfn & (pages - 1), 0, "unaligned free of {mfn:#x}");
        assert!(mfn >= self.start_mfn && mfn + pages <= self.end_mfn);
        // O(log n): in debug builds only; the checker finds overlapping blocks too.
        debug_assert!(self.block_containing(mfn).is_none(), "{mfn:#x} is free");
        let zone = zone_of(mfn);
        self.avail_pages_by_zone[usize::from(zone)] += pages;
        self.avail_pages += pages;
        let (mut start, mut order, mut dirty) = (mfn, order, dirty);
        while order < MAX_ORDER {
            let mask = 1u64 << order;
            let buddy = start ^ mask;
            let fits = buddy >= self.start_mfn && buddy + mask <= self.end_mfn;
            let mergeable = fits
                && self
                    .blocks
                    .get(&buddy)
                    .is_some_and(|b| b.order == order && zone_of(buddy) == zone);
            if !mergeable {
                break;
            }
            let other = self.unlink(buddy);
            dirty |= other.dirty;
            start = start.min(buddy);
            order += 1;
        }
        self.insert(start, order, dirty);
    }

    /// The per-node part of `get_free_buddy()` plus `alloc_heap_pages()`' halving:
    /// a block of `order` from the zones `[zone_lo, zone_hi]`, or `None`.
    pub fn take(&mut self, zone_lo: u8, zone_hi: u8, order: u8, use_dirty: bool) -> Option<Taken> {
        let request = 1u64 << order;
        for zone in (zone_lo..=zone_hi).rev() {
            if self.avail_zone_pages(zone) < request {
                continue;
            }
            for found in order..=MAX_ORDER {
                let Some((_, mfn)) = self.lists[list_index(zone, found)].head() else {
                    continue;
                };
                let block = self.unlink(mfn);
                if !block.dirty || order == 0 || use_dirty {
                    return Some(self.split(mfn, block, order));
                }
                // Not worth breaking a dirty higher-order block: back at the tail.
                self.insert(mfn, found, true);
            }
        }
        None
    }

    /// Halves `block` at `mfn` down to `order`; the lower halves go back on the lists and
    /// the top part is returned.
    fn split(&mut self, mfn: u64, block: FreeBlock, order: u8) -> Taken {
        let mut start = mfn;
        let mut buddy_order = block.order;
        while buddy_order != order {
            buddy_order -= 1;
            self.insert(start, buddy_order, block.dirty);
            start += 1u64 << buddy_order;
        }
        let pages = 1u64 << order;
        let zone = zone_of(start);
        assert!(self.avail_pages_by_zone[usize::from(zone)] >= pages);
        self.avail_pages_by_zone[usize::from(zone)] -= pages;
        self.avail_pages -= pages;
        Taken {
            mfn: start,
            dirty: block.dirty,
        }
    }

    /// `scrub_free_pages()` on this node: dirty blocks (always at the tails of their lists)
    /// are scrubbed, zones from low to high and orders from high to low, and go back to
    /// the heads; stops before a block larger than `budget_pages`. Returns pages scrubbed.
    pub fn scrub(&mut self, budget_pages: u64) -> u64 {
        let mut scrubbed = 0;
        for zone in 0..NR_ZONES {
            for order in (0..=MAX_ORDER).rev() {
                loop {
                    let list = &self.lists[list_index(zone, order)];
                    let Some((_, mfn)) = list.by_pos.iter().next_back().map(|(p, m)| (*p, *m))
                    else {
                        break;
                    };
                    let block = self.blocks[&mfn];
                    let pages = 1u64 << order;
                    if !block.dirty {
                        break;
                    }
                    if scrubbed + pages > budget_pages {
                        return scrubbed;
                    }
                    self.unlink(mfn);
                    self.insert(mfn, order, false);
                    scrubbed += pages;
                }
            }
        }
        scrubbed
    }

    /// Takes the free range `[mfn, mfn + pages)` out of the heap (boot-time reservations),
    /// splitting the blocks around it. Returns false if part of it is not free.
    pub fn reserve(&mut self, mfn: u64, pages: u64) -> bool {
        let end = mfn.saturating_add(pages);
        let mut at = mfn;
        while at < end {
            let Some((start, block)) = self.block_containing(at) else {
                return false;
            };
            let block_end = start + (1u64 << block.order);
            self.unlink(start);
            let zone = zone_of(start);
            let block_pages = 1u64 << block.order;
            self.avail_pages_by_zone[usize::from(zone)] -= block_pages;
            self.avail_pages -= block_pages;
            // Give back what lies outside the reserved range.
            self.free_range(start, at, block.dirty);
            self.free_range(end.min(block_end), block_end, block.dirty);
            at = block_end;
        }
        true
    }

    /// Frees `[start, end)` as maximal aligned blocks, lowest first.
    pub fn free_range(&mut self, start: u64, end: u64, dirty: bool) {
        let mut at = start;
        while at < end {
            let order = largest_order(at, end - at);
            self.free(at, order, dirty);
            at += 1u64 << order;
        }
    }

    /// Counts every list's blocks and pages again, for the checker: (pages by zone, total
    /// listed blocks).
    pub fn recount(&self) -> (Vec<u64>, usize) {
        let mut pages = alloc::vec![0u64; usize::from(NR_ZONES)];
        for (mfn, block) in &self.blocks {
            pages[usize::from(zone_of(*mfn))] += 1u64 << block.order;
        }
        let listed = self.lists.iter().map(FreeList::len).sum();
        (pages, listed)
    }

    /// Checks one block: aligned, inside the node, on its list, not overlapping the next
    /// block, no free buddy of the same order. Returns what is wrong.
    pub fn block_fault(&self, mfn: u64) -> Option<&'static str> {
        let block = self.blocks.get(&mfn)?;
        let pages = 1u64 << block.order;
        if mfn & (pages - 1) != 0 {
            return Some("unaligned");
        }
        if mfn < self.start_mfn || mfn + pages > self.end_mfn {
            return Some("outside its node");
        }
        let list = &self.lists[list_index(zone_of(mfn), block.order)];
        if list.by_pos.get(&block.pos) != Some(&mfn) {
            return Some("not on its list");
        }
        if let Some((next, _)) = self.blocks.range(mfn + 1..).next() {
            if *next < mfn + pages {
                return Some("overlaps the next block");
            }
        }
        let buddy = mfn ^ pages;
        let unmerged = block.order < MAX_ORDER
            && self
                .blocks
                .get(&buddy)
                .is_some_and(|b| b.order == block.order)
            && zone_of(buddy) == zone_of(mfn)
            && buddy >= self.start_mfn
            && buddy + pages <= self.end_mfn;
        unmerged.then_some("buddy left unmerged")
    }
}

/// The largest order of an aligned block at `mfn` that fits in `pages`.
pub fn largest_order(mfn: u64, pages: u64) -> u8 {
    assert!(pages > 0);
    let align = mfn.trailing_zeros().min(u32::from(MAX_ORDER));
    let fit = 63 - pages.leading_zeros();
    u8::try_from(align.min(fit)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 MiB node starting at 4 MiB (1024 pages, zone 11 and up).
    fn node() -> NodeHeap {
        let mut heap = NodeHeap::new(1024, 2048);
        heap.free_range(1024, 2048, false);
        heap
    }

    #[test]
    fn free_range_merges_into_one_aligned_block() {
        let heap = node();
        assert_eq!(heap.blocks().len(), 1);
        assert_eq!(heap.blocks()[&1024].order, 10);
        assert_eq!(heap.avail_pages(), 1024);
    }

    #[test]
    fn take_returns_the_top_of_the_split_block() {
        let mut heap = node();
        let taken = heap.take(1, NR_ZONES - 1, 0, false);
        // Halving keeps the lower halves and returns the block's last page.
        assert_eq!(taken.map(|t| t.mfn), Some(2047));
        assert_eq!(heap.avail_pages(), 1023);
        assert_eq!(heap.blocks().len(), 10);
    }

    #[test]
    fn free_after_take_merges_back_to_one_block() {
        let mut heap = node();
        let taken = heap.take(1, NR_ZONES - 1, 3, false).map(|t| t.mfn);
        heap.free(taken.unwrap_or(0), 3, false);
        assert_eq!(heap.blocks().len(), 1);
        assert!(heap.block_fault(1024).is_none());
    }

    #[test]
    fn dirty_higher_order_block_is_skipped_for_clean_request() {
        let mut heap = NodeHeap::new(1024, 2048);
        heap.free(1024, 9, true);
        heap.free(1536, 8, false);
        // Order 8 wanted: the clean order-8 block wins over splitting the dirty order 9.
        let taken = heap.take(1, NR_ZONES - 1, 8, false);
        assert_eq!(
            taken,
            Some(Taken {
                mfn: 1536,
                dirty: false
            })
        );
    }

    #[test]
    fn reserve_splits_blocks_around_the_range() {
        let mut heap = node();
        assert!(heap.reserve(1030, 10));
        assert_eq!(heap.avail_pages(), 1014);
        assert!(heap.block_containing(1030).is_none());
        assert!(heap.block_containing(1029).is_some());
        assert!(heap.block_containing(1040).is_some());
    }

    #[test]
    fn scrub_cleans_dirty_blocks_within_budget_and_moves_them_to_the_head() {
        let mut heap = NodeHeap::new(1024, 2048);
        heap.free(1024, 8, true);
        heap.free(1536, 8, true);
        // Budget for one 256-page block: the list's tail (1536) is scrubbed first.
        assert_eq!(heap.scrub(300), 256);
        assert_eq!(heap.need_scrub_pages(), 256);
        assert!(!heap.blocks()[&1536].dirty);
        assert!(heap.blocks()[&1024].dirty);
    }

    #[test]
    fn zone_of_is_highest_set_bit() {
        assert_eq!(zone_of(0), 1);
        assert_eq!(zone_of(1), 1);
        assert_eq!(zone_of(1024), 11);
        assert_eq!(zone_of(2047), 11);
    }
}
