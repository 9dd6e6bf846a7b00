//! The host heap: one buddy heap per NUMA node, the node choice of an allocation, and the
//! host-wide counters claims are checked against.
//!
//! Follows xen/common/page_alloc.c: `alloc_heap_pages()` (the claims gate: claimed memory
//! is invisible to everyone but the claimant; a clean block first, then one needing
//! scrub), `get_free_buddy()` (the node loop: the requested node, else the node after
//! `d->last_alloc_node` in the domain's node affinity; next node id on failure, wrapping;
//! then once the nodes outside the affinity; `MEMF_exact_node` fails instead) and
//! `cycle_node()`. The fallback order is node-id order, not SLIT distance, as in Xen
//! (spec `memory-iommu-migration.md` §1.3: distance is the toolstack's placement only).
//!
//! # Invariants
//! - `total_avail_pages` is the sum of the nodes' free pages.
//! - Nodes cover consecutive MFN ranges in node order.

use alloc::vec::Vec;

use super::buddy::{NodeHeap, Taken};
use super::{MAX_NUMNODES, MAX_ORDER, NR_ZONES};

/// What an allocation asks for (`memflags` of `alloc_domheap_pages`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocFlags {
    /// `MEMF_node(n)`: start at this node.
    pub node: Option<u32>,
    /// `MEMF_exact_node`: no other node.
    pub exact_node: bool,
    /// `MEMF_no_refcount`: not charged to the domain, claims not consumed.
    pub no_refcount: bool,
    /// `MEMF_no_scrub`: the caller overwrites every byte.
    pub no_scrub: bool,
}

/// The domain side of an allocation.
#[derive(Debug)]
pub struct AllocFor<'a> {
    /// `d->last_alloc_node`, updated on success.
    pub last_alloc_node: &'a mut u32,
    /// `d->node_affinity` as a bit mask of nodes.
    pub node_affinity: u64,
    /// `d->outstanding_pages`.
    pub outstanding_pages: u64,
}

/// A block handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocated {
    /// First frame.
    pub mfn: u64,
    /// Node it came from.
    pub node: u32,
    /// Pages that had to be scrubbed (synchronously, at allocation).
    pub scrubbed_pages: u64,
}

/// All nodes' heaps.
#[derive(Clone, Debug)]
pub struct Heap {
    /// One heap per node, in node order.
    pub nodes: Vec<NodeHeap>,
    /// `total_avail_pages`.
    pub total_avail_pages: u64,
    /// `outstanding_claims`.
    pub outstanding_claims: u64,
}

/// `cycle_node`: the next node of `mask` after `node`, wrapping.
fn cycle_node(node: u32, mask: u64) -> Option<u32> {
    next_node(node, mask).or_else(|| first_node(mask))
}

fn next_node(node: u32, mask: u64) -> Option<u32> {
    let above = mask.checked_shr(node + 1).unwrap_or(0);
    (above != 0).then(|| node + 1 + above.trailing_zeros())
}

fn first_node(mask: u64) -> Option<u32> {
    (mask != 0).then(|| mask.trailing_zeros())
}

impl Heap {
    /// Heaps for nodes of `node_pages` pages each, laid out from MFN 0 in node order, all
    /// empty (the caller frees what is usable).
    pub fn new(node_pages: &[u64]) -> Heap {
        assert!(!node_pages.is_empty());
        assert!(node_pages.len() <= MAX_NUMNODES as usize);
        let mut start = 0;
        let nodes = node_pages
            .iter()
            .map(|pages| {
                let heap = NodeHeap::new(start, start + pages);
                start += pages;
                heap
            })
            .collect();
        Heap {
            nodes,
            total_avail_pages: 0,
            outstanding_claims: 0,
        }
    }

    /// Online nodes as a mask.
    pub fn online_mask(&self) -> u64 {
        u64::MAX >> (64 - self.nodes.len())
    }

    /// Node owning `mfn`.
    pub fn node_of(&self, mfn: u64) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| mfn >= n.start_mfn && mfn < n.end_mfn)
    }

    /// Frees `[mfn, mfn + pages)` back to the node heaps.
    pub fn free_range(&mut self, mfn: u64, pages: u64, dirty: bool) {
        let end = mfn + pages;
        let mut at = mfn;
        while at < end {
            let node = self.node_of(at).expect("frame on a node");
            let heap = &mut self.nodes[node];
            let stop = end.min(heap.end_mfn);
            heap.free_range(at, stop, dirty);
            self.total_avail_pages += stop - at;
            at = stop;
        }
    }

    /// `alloc_heap_pages()` over the domheap zones: `2^order` pages, or `None`.
    pub fn alloc(
        &mut self,
        order: u8,
        flags: AllocFlags,
        dom: Option<AllocFor<'_>>,
    ) -> Option<Allocated> {
        assert!(order <= MAX_ORDER);
        let request = 1u64 << order;
        let claimant =
            !flags.no_refcount && dom.as_ref().is_some_and(|d| d.outstanding_pages >= request);
        if self.outstanding_claims + request > self.total_avail_pages && !claimant {
            return None;
        }
        let mut dom = dom;
        let found = self
            .get_free_buddy(order, flags, dom.as_mut(), false)
            .or_else(|| {
                let retry = !flags.no_scrub;
                retry
                    .then(|| self.get_free_buddy(order, flags, dom.as_mut(), true))
                    .flatten()
            });
        let (node, taken) = found?;
        self.total_avail_pages -= request;
        if let Some(d) = dom {
            *d.last_alloc_node = node;
        }
        let scrubbed_pages = if taken.dirty && !flags.no_scrub {
            request
        } else {
            0
        };
        Some(Allocated {
            mfn: taken.mfn,
            node,
            scrubbed_pages,
        })
    }

    /// `get_free_buddy()`: the node loop.
    fn get_free_buddy(
        &mut self,
        order: u8,
        flags: AllocFlags,
        dom: Option<&mut AllocFor<'_>>,
        use_dirty: bool,
    ) -> Option<(u32, Taken)> {
        let online = self.online_mask();
        let mut mask = online;
        let mut node = flags.node;
        if let Some(d) = dom.as_ref() {
            if d.node_affinity & online != 0 {
                mask &= d.node_affinity;
            }
            if node.is_none() {
                node = cycle_node(*d.last_alloc_node, mask);
            }
        }
        // No domain and no node: the current pCPU's node (xensim: node 0).
        let mut node = node.unwrap_or(0);
        if node >= MAX_NUMNODES || node as usize >= self.nodes.len() {
            return None;
        }
        let exact = flags.exact_node && flags.node.is_some();
        let mut first = node;
        let mut retried = false;
        loop {
            let heap = &mut self.nodes[node as usize];
            if let Some(taken) = heap.take(1, NR_ZONES - 1, order, use_dirty) {
                return Some((node, taken));
            }
            if exact {
                return None;
            }
            if mask & (1u64 << node) == 0 {
                // The very first node was the caller's and outside the mask.
                node = first_node(mask)?;
                first = node;
                continue;
            }
            node = cycle_node(node, mask)?;
            if node == first {
                if flags.exact_node || retried {
                    return None;
                }
                retried = true;
                mask = online & !mask;
                node = first_node(mask)?;
                first = node;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes of 4 MiB each, all free (node 0 starts at MFN 1024 to keep MFN 0 out).
    fn two_nodes() -> Heap {
        let mut heap = Heap::new(&[2048, 1024]);
        heap.free_range(1024, 2048, false);
        heap
    }

    #[test]
    fn domain_allocations_cycle_from_the_node_after_the_last() {
        let mut heap = two_nodes();
        let mut last = 0;
        let first = heap.alloc(
            9,
            AllocFlags::default(),
            Some(AllocFor {
                last_alloc_node: &mut last,
                node_affinity: u64::MAX,
                outstanding_pages: 0,
            }),
        );
        // last_alloc_node starts at 0, so the first allocation goes to node 1.
        assert_eq!(first.map(|a| a.node), Some(1));
        assert_eq!(last, 1);
    }

    #[test]
    fn exact_node_fails_when_node_is_full() {
        let mut heap = two_nodes();
        let flags = AllocFlags {
            node: Some(1),
            exact_node: true,
            ..AllocFlags::default()
        };
        assert!(heap.alloc(10, flags, None).is_some());
        assert_eq!(heap.alloc(0, flags, None), None);
    }

    #[test]
    fn claims_hide_memory_from_others() {
        let mut heap = two_nodes();
        heap.outstanding_claims = 2048;
        assert_eq!(heap.alloc(0, AllocFlags::default(), None), None);
    }

    #[test]
    fn node_fallback_is_by_node_id() {
        let mut heap = two_nodes();
        let flags = AllocFlags {
            node: Some(1),
            ..AllocFlags::default()
        };
        assert!(heap.alloc(10, flags, None).is_some());
        let next = heap.alloc(0, flags, None);
        assert_eq!(next.map(|a| a.node), Some(0));
    }
}
