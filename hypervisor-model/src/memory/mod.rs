//! Machine memory: the per-node buddy heaps, who owns every frame, each domain's P2M, the
//! M2P, and claims.
//!
//! Layers, top to bottom:
//! - [`Memory`] (this file): the host's memory as Xen's reservation operations see it —
//!   `populate_physmap`, `decrease_reservation`, `domain_relinquish_resources`, with the
//!   ownership, P2M, M2P and accounting changes each makes;
//! - `claims.rs`: `XENMEM_claim_pages` (`domain_set_outstanding_pages`);
//! - [`heap`]: node choice and the claims gate; [`buddy`]: one node's free lists;
//! - [`frames`]: the frame table and the M2P; [`p2m`]: one domain's P2M;
//! - [`hap`]: which domains use HAP, and their P2M leaf changes waiting for the EPT;
//! - `check.rs`: the invariant checker (spec §13 I1–I5, I7, I29), per changed extent on
//!   large hosts and frame by frame on small ones.
//!
//! Follows xen/common/page_alloc.c, xen/common/memory.c (`populate_physmap`,
//! `guest_remove_page`, `max_order`), xen/arch/x86/mm/p2m.c and xen/common/domain.c
//! (`domain_relinquish_resources`). Spec: `memory-iommu-migration.md` §1–§3.
//!
//! # Invariants
//! - Every frame is free (in exactly one buddy block) or owned by exactly one owner.
//! - `free + Σ owned = total` pages; `outstanding_claims = Σ d.outstanding_pages`.
//! - For every RAM-typed P2M entry `g → m` of `d`: `m` is owned by `d` and `m2p[m] = g`;
//!   a domain's `tot_pages` equals its owned frames and its RAM P2M entries.
//! - A superpage leaf maps frames of one owner.
//!
//! Also: `pod.rs`/`pod_fault.rs` (populate-on-demand, spec §4), `logdirty.rs` (§2.5).
//!
//! xensim differs: the paging pool and page-table pages are not modelled; Xen's own frames
//! are one boot-time reservation at the bottom of node 0.

pub mod buddy;
mod check;
mod claims;
pub mod frames;
pub mod hap;
pub mod heap;
pub mod logdirty;
pub mod p2m;
pub mod pod;
mod pod_fault;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod proptests_hap;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::ids::{DomId, Gfn, Mfn};
use frames::FrameTable;
use heap::{AllocFlags, AllocFor, Heap};
use p2m::{P2m, P2mEntry, P2mType};

/// `PAGE_ORDER_4K`.
pub const PAGE_ORDER_4K: u8 = 0;
/// `PAGE_ORDER_2M` (`SUPERPAGE_PAGES` = 512).
pub const PAGE_ORDER_2M: u8 = 9;
/// `PAGE_ORDER_1G`.
pub const PAGE_ORDER_1G: u8 = 18;
/// `MAX_ORDER` on x86: `CONFIG_PAGEALLOC_MAX_ORDER = 2 * PAGETABLE_ORDER`.
pub const MAX_ORDER: u8 = 18;
/// `CONFIG_DOMU_MAX_ORDER`: the largest extent a domU may ask for (xen/common/memory.c).
pub const DOMU_MAX_ORDER: u8 = 9;
/// `CONFIG_CTLDOM_MAX_ORDER`: the largest extent the control domain may ask for.
pub const CTLDOM_MAX_ORDER: u8 = 18;
/// `NR_ZONES = PADDR_BITS - PAGE_SHIFT + 1` with 52-bit physical addresses.
pub const NR_ZONES: u8 = 41;
/// `MAX_NUMNODES` on x86.
pub const MAX_NUMNODES: u32 = 64;
/// Changed ranges remembered for the incremental checker between two inputs; past it the
/// checker sweeps everything once.
pub const JOURNAL_RANGES_MAX: usize = 4096;

const _: () = assert!(PAGE_ORDER_1G == MAX_ORDER);
const _: () = assert!(DOMU_MAX_ORDER <= CTLDOM_MAX_ORDER);

/// Who owns a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// Xen itself (image, frame table, heap, boot allocations): `dom_xen`.
    Xen,
    /// A domain.
    Dom(DomId),
}

/// Why a memory operation was refused (the error the caller would get from Xen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// A claim already exists (`-EINVAL`).
    ClaimExists,
    /// The claim is not above `tot_pages` or above `max_pages` (`-EINVAL`).
    ClaimInvalid,
    /// Not enough unclaimed free memory for the claim (`-ENOMEM`).
    ClaimNoMemory,
    /// The GFN range is already mapped (xensim: populate only fills holes).
    GfnMapped {
        /// First GFN of the range.
        gfn: u64,
    },
    /// The GFN is not mapped to RAM of the domain (`guest_remove_page` fails).
    GfnNotRam {
        /// The GFN.
        gfn: u64,
    },
    /// The extent order is above what the caller may ask for.
    OrderTooLarge,
    /// `assign_pages`: `tot_pages` would exceed `max_pages` ("Over-allocation").
    OverAllocation {
        /// `tot_pages + request`.
        requested_pages: u64,
        /// `max_pages`.
        max_pages: u64,
    },
    /// Log-dirty is already on (enable) or off (the other operations) (`-EINVAL`).
    LogDirtyState,
    /// No free block (after claims) on any allowed node (`-ENOMEM`).
    NoMemory,
    /// No such domain in the memory model.
    UnknownDomain,
}

/// One domain's memory state.
#[derive(Clone, Debug, Default)]
pub struct DomMem {
    /// Its P2M (for a PV guest: the physmap Xen tracks through the M2P).
    pub p2m: P2m,
    /// `d->tot_pages`.
    pub tot_pages: u64,
    /// `d->max_pages`.
    pub max_pages: u64,
    /// `d->outstanding_pages` (its claim).
    pub outstanding_pages: u64,
    /// `d->last_alloc_node`.
    pub last_alloc_node: u32,
    /// `d->node_affinity`, one bit per node.
    pub node_affinity: u64,
    /// False while Xen derives the node affinity from the vCPUs (`auto_node_affinity`);
    /// true once the toolstack set it (`XEN_DOMCTL_setnodeaffinity`).
    pub node_affinity_set: bool,
    /// Pages scrubbed at allocation for this domain.
    pub scrubbed_pages: u64,
    /// Pages it owns on each node, in node order (kept as pages come and go, so the
    /// sim's NUMA cost model reads it without walking the P2M).
    pub node_pages: Vec<u64>,
    /// Populate-on-demand state (`p2m->pod`).
    pub pod: pod::PodState,
    /// The dirty log while in log-dirty mode.
    pub logdirty: Option<logdirty::DirtyLog>,
}

/// What one populated extent became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Populated {
    /// First machine frame.
    pub mfn: Mfn,
    /// Node it came from.
    pub node: u32,
    /// Pages that were scrubbed first.
    pub scrubbed_pages: u64,
}

/// A range the last input changed, for the incremental checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touched {
    /// Machine frames `[mfn, mfn + pages)`.
    Frames {
        /// First frame.
        mfn: u64,
        /// Count.
        pages: u64,
    },
    /// Guest frames of one domain.
    Guest {
        /// The domain.
        dom: DomId,
        /// First GFN.
        gfn: u64,
        /// Count.
        pages: u64,
    },
}

/// The host's memory.
#[derive(Clone, Debug)]
pub struct Memory {
    heap: Heap,
    frames: FrameTable,
    doms: BTreeMap<DomId, DomMem>,
    total_pages: u64,
    journal: Vec<Touched>,
    journal_overflow: bool,
    /// HAP domains whose P2M logged leaf changes not yet written to the EPT.
    leaf_dirty: Vec<DomId>,
}

impl Memory {
    /// A host with `node_pages` pages per node; the first `xen_pages` frames are Xen's
    /// (at least MFN 0, which is never domheap; at most the whole host), the rest is free
    /// and clean.
    pub fn new(node_pages: &[u64], xen_pages: u64) -> Memory {
        let total_pages: u64 = node_pages.iter().sum();
        let xen_pages = xen_pages.max(1).min(total_pages);
        let mut heap = Heap::new(node_pages);
        heap.free_range(xen_pages, total_pages - xen_pages, false);
        let mut frames = FrameTable::default();
        if xen_pages > 0 {
            frames.assign(0, xen_pages, Owner::Xen);
        }
        Memory {
            heap,
            frames,
            doms: BTreeMap::new(),
            total_pages,
            journal: Vec::new(),
            journal_overflow: true,
            leaf_dirty: Vec::new(),
        }
    }

    /// Total host pages.
    pub fn total_pages(&self) -> u64 {
        self.total_pages
    }

    /// Free pages (`total_avail_pages`, free-but-dirty included).
    pub fn free_pages(&self) -> u64 {
        self.heap.total_avail_pages
    }

    /// `outstanding_claims`.
    pub fn outstanding_claims(&self) -> u64 {
        self.heap.outstanding_claims
    }

    /// Free pages of each node (`xl info -n` memfree).
    pub fn node_free_pages(&self) -> Vec<u64> {
        self.heap.nodes.iter().map(|n| n.avail_pages()).collect()
    }

    /// Free pages waiting for scrubbing.
    pub fn need_scrub_pages(&self) -> u64 {
        self.heap.nodes.iter().map(|n| n.need_scrub_pages()).sum()
    }

    /// Idle-loop scrubbing (`scrub_free_pages` on every node in node order) of at most
    /// `budget_pages`; returns the pages scrubbed.
    pub fn scrub_idle(&mut self, budget_pages: u64) -> u64 {
        let mut scrubbed = 0;
        for node in &mut self.heap.nodes {
            scrubbed += node.scrub(budget_pages - scrubbed);
        }
        scrubbed
    }

    /// Pages Xen owns.
    pub fn xen_pages(&self) -> u64 {
        self.frames.owned_pages(Owner::Xen)
    }

    /// One domain's memory.
    pub fn dom(&self, dom: DomId) -> Option<&DomMem> {
        self.doms.get(&dom)
    }

    /// The frame table (owners and M2P).
    pub fn frames(&self) -> &FrameTable {
        &self.frames
    }

    /// The node heaps.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// `p2m_get_entry` of `dom` at `gfn`.
    pub fn p2m_lookup(&self, dom: DomId, gfn: Gfn) -> Option<P2mEntry> {
        self.doms.get(&dom)?.p2m.lookup(gfn.raw())
    }

    /// The M2P entry of `mfn` (`INVALID_M2P_ENTRY` when free or unmapped).
    pub fn m2p(&self, mfn: Mfn) -> u64 {
        self.frames.m2p(mfn.raw())
    }

    /// `domain_create`: a domain with no memory, `max_pages` 0, all nodes.
    pub fn add_domain(&mut self, dom: DomId) {
        let fresh = DomMem {
            node_affinity: self.heap.online_mask(),
            node_pages: alloc::vec![0; self.heap.nodes.len()],
            ..DomMem::default()
        };
        let old = self.doms.insert(dom, fresh);
        assert!(old.is_none(), "{dom:?} added twice");
    }

    /// `XEN_DOMCTL_setnodeaffinity`: later allocations for `dom` start from `nodes`
    /// (falling back to the others when those are exhausted, §1.3).
    pub fn set_node_affinity(&mut self, dom: DomId, nodes: u64) -> Result<(), MemError> {
        let online = self.heap.online_mask();
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        // domain_set_node_affinity: a mask with no online node is -EINVAL; xensim's
        // toolstack only passes placement results, which are online nodes.
        debug_assert!(
            nodes & online != 0,
            "node affinity outside the online nodes"
        );
        d.node_affinity = nodes & online;
        d.node_affinity_set = true;
        Ok(())
    }

    /// The node affinity the toolstack set for `dom`, if it set one.
    pub fn explicit_node_affinity(&self, dom: DomId) -> Option<u64> {
        let d = self.doms.get(&dom)?;
        d.node_affinity_set.then_some(d.node_affinity)
    }

    /// Pages `dom` holds on each node, counted from the frame table (the reference the
    /// checker compares [`DomMem::node_pages`] with; O(frame runs)).
    pub fn dom_node_pages(&self, dom: DomId) -> Vec<u64> {
        let owner = Owner::Dom(dom);
        let runs = self.frames.runs().filter(|(_, run)| run.owner == owner);
        let mut pages = alloc::vec![0u64; self.heap.nodes.len()];
        for (start, run) in runs {
            add_node_overlap(&self.heap, &mut pages, start, run.pages, true);
        }
        pages
    }

    /// The domain struct goes: it must own nothing; its claim is released.
    pub fn remove_domain(&mut self, dom: DomId) {
        let Some(d) = self.doms.remove(&dom) else {
            return;
        };
        assert_eq!(d.tot_pages, 0, "{dom:?} freed with pages");
        assert!(
            !d.p2m.has_leaf_changes(),
            "{dom:?} freed before its EPT was written"
        );
        assert_eq!(self.frames.owned_pages(Owner::Dom(dom)), 0);
        self.heap.outstanding_claims -= d.outstanding_pages;
    }

    /// `XEN_DOMCTL_max_mem`: sets `max_pages` (below `tot_pages` only blocks growth).
    pub fn set_max_pages(&mut self, dom: DomId, pages: u64) -> Result<(), MemError> {
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        d.max_pages = pages;
        Ok(())
    }

    /// Forgets the changed ranges (the start of a new input).
    pub fn clear_journal(&mut self) {
        self.journal.clear();
        self.journal_overflow = false;
    }

    fn touch(&mut self, range: Touched) {
        if self.journal.len() < JOURNAL_RANGES_MAX {
            self.journal.push(range);
        } else {
            self.journal_overflow = true;
        }
    }

    /// `populate_physmap` of one extent: `2^order` pages at `gfn`, mapped as RAM.
    pub fn populate(
        &mut self,
        dom: DomId,
        gfn: Gfn,
        order: u8,
        flags: AllocFlags,
    ) -> Result<Populated, MemError> {
        if order > MAX_ORDER {
            return Err(MemError::OrderTooLarge);
        }
        let pages = 1u64 << order;
        let gfn = gfn.raw();
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        if gfn & (pages - 1) != 0 || gfn.checked_add(pages).is_none() {
            return Err(MemError::GfnMapped { gfn });
        }
        if !d.p2m.is_hole(gfn, pages) {
            return Err(MemError::GfnMapped { gfn });
        }
        let requested_pages = d.tot_pages + pages;
        if requested_pages > d.max_pages && !flags.no_refcount {
            return Err(MemError::OverAllocation {
                requested_pages,
                max_pages: d.max_pages,
            });
        }
        let got = self.heap.alloc(
            order,
            flags,
            Some(AllocFor {
                last_alloc_node: &mut d.last_alloc_node,
                node_affinity: d.node_affinity,
                outstanding_pages: d.outstanding_pages,
            }),
        );
        let got = got.ok_or(MemError::NoMemory)?;
        if !flags.no_refcount {
            // alloc_heap_pages: a claimant's claim drains by what it got.
            let drained = d.outstanding_pages.min(pages);
            d.outstanding_pages -= drained;
            self.heap.outstanding_claims -= drained;
        }
        d.tot_pages += pages;
        d.scrubbed_pages += got.scrubbed_pages;
        add_node_overlap(&self.heap, &mut d.node_pages, got.mfn, pages, true);
        d.p2m.map(gfn, got.mfn, pages, P2mType::RamRw);
        self.frames.assign(got.mfn, pages, Owner::Dom(dom));
        self.frames.set_m2p(got.mfn, pages, gfn);
        if self.logdirty_active(dom) {
            // paging_mark_pfn_dirty: new contents without a guest write (spec §2.5).
            for page in gfn..gfn + pages {
                self.logdirty_mark(dom, page);
            }
        }
        self.note_leaves(dom);
        self.touch(Touched::Frames {
            mfn: got.mfn,
            pages,
        });
        self.touch(Touched::Guest { dom, gfn, pages });
        Ok(Populated {
            mfn: Mfn::new(got.mfn),
            node: got.node,
            scrubbed_pages: got.scrubbed_pages,
        })
    }

    /// `decrease_reservation` of one extent: every page of `[gfn, gfn + 2^order)` goes
    /// back to the heap needing scrub (`guest_remove_page`, one page at a time; pages
    /// freed in GFN order merge exactly as one block would). Fails on the first GFN that
    /// is not the domain's RAM, having freed the ones before it.
    pub fn decrease(&mut self, dom: DomId, gfn: Gfn, order: u8) -> Result<u64, MemError> {
        if order > MAX_ORDER {
            return Err(MemError::OrderTooLarge);
        }
        let pages = 1u64 << order;
        let gfn = gfn.raw();
        let d = self.doms.get(&dom).ok_or(MemError::UnknownDomain)?;
        if d.pod.entry_count > 0 || d.pod.count > 0 {
            return self.decrease_pod(dom, gfn, pages);
        }
        // The RAM prefix of the extent is what Xen removes before it stops.
        let ram_pages = if pages == 1 {
            // One page (the balloon driver's case): one lookup.
            u64::from(d.p2m.lookup(gfn).is_some_and(|e| e.ty.is_ram()))
        } else {
            ram_prefix(&d.p2m, gfn, pages)
        };
        if ram_pages > 0 {
            self.remove_ram(dom, gfn, ram_pages);
        }
        if ram_pages < pages {
            return Err(MemError::GfnNotRam {
                gfn: gfn + ram_pages,
            });
        }
        Ok(pages)
    }

    /// `decrease_reservation` of a PoD domain, page by page (`p2m_pod_decrease_reservation`
    /// first, `guest_remove_page` for what it leaves).
    fn decrease_pod(&mut self, dom: DomId, gfn: u64, pages: u64) -> Result<u64, MemError> {
        for page in gfn..gfn + pages {
            if self.pod_decrease_one(dom, page).is_some() {
                continue;
            }
            let ram = self
                .doms
                .get(&dom)
                .and_then(|d| d.p2m.lookup(page))
                .is_some_and(|e| e.ty.is_ram());
            if !ram {
                return Err(MemError::GfnNotRam { gfn: page });
            }
            self.remove_ram(dom, page, 1);
        }
        Ok(pages)
    }

    /// Unmaps `[gfn, gfn + pages)` (all RAM) and frees the frames, needing scrub.
    fn remove_ram(&mut self, dom: DomId, gfn: u64, pages: u64) {
        let d = self.doms.get_mut(&dom).expect("domain checked");
        let freed = match d.p2m.remove_head(gfn, pages) {
            // One piece (ballooning page by page): no list to build.
            Some(one) => self.free_removed(dom, &one),
            None => {
                let removed = d.p2m.remove(gfn, pages);
                removed.iter().map(|r| self.free_removed(dom, r)).sum()
            }
        };
        assert_eq!(freed, pages);
        let d = self.doms.get_mut(&dom).expect("domain checked");
        d.tot_pages -= pages;
        self.note_leaves(dom);
        self.touch(Touched::Guest { dom, gfn, pages });
    }

    /// Frees the frames of one removed P2M range back to the heap, needing scrub.
    fn free_removed(&mut self, dom: DomId, r: &p2m::Removed) -> u64 {
        assert!(r.ty.is_ram());
        // A released frame leaves the frame table: its M2P entry reads invalid.
        let owner = self.frames.release(r.mfn, r.pages);
        assert_eq!(
            owner,
            Owner::Dom(dom),
            "gfn {:#x} maps a foreign frame",
            r.gfn
        );
        self.heap.free_range(r.mfn, r.pages, true);
        if let Some(d) = self.doms.get_mut(&dom) {
            add_node_overlap(&self.heap, &mut d.node_pages, r.mfn, r.pages, false);
        }
        self.touch(Touched::Frames {
            mfn: r.mfn,
            pages: r.pages,
        });
        r.pages
    }

    /// `domain_relinquish_resources`, preemptible: frees up to `budget_pages` of the
    /// domain's pages (lowest GFNs first) and returns how many it freed.
    ///
    /// xensim differs: Xen walks `d->page_list` (allocation order); the P2M order gives
    /// the same frames back, in a different order.
    pub fn relinquish(&mut self, dom: DomId, budget_pages: u64) -> u64 {
        let mut freed = 0;
        while freed < budget_pages {
            let Some(d) = self.doms.get_mut(&dom) else {
                break;
            };
            let Some((gfn, run)) = d.p2m.runs().next().map(|(g, r)| (g, *r)) else {
                // p2m_pod_empty_cache: the cache goes once the physmap is gone.
                freed += self.pod_empty_cache(dom);
                break;
            };
            if !run.ty.is_ram() {
                // PoD entries (and other frameless entries) free nothing.
                d.p2m.remove(gfn, run.pages);
                if run.ty == P2mType::PopulateOnDemand {
                    d.pod.entry_count -= run.pages;
                }
                self.note_leaves(dom);
                continue;
            }
            let pages = run.pages.min(budget_pages - freed);
            self.remove_ram(dom, gfn, pages);
            freed += pages;
        }
        freed
    }
}

/// Adds (or, with `add` false, takes away) the pages of `[mfn, mfn + pages)` to each
/// node's count in `counts`: O(nodes), a range may straddle a node boundary.
fn add_node_overlap(heap: &Heap, counts: &mut [u64], mfn: u64, pages: u64, add: bool) {
    let end = mfn + pages;
    for (slot, node) in counts.iter_mut().zip(&heap.nodes) {
        let overlap = end
            .min(node.end_mfn)
            .saturating_sub(mfn.max(node.start_mfn));
        if add {
            *slot += overlap;
        } else {
            assert!(*slot >= overlap, "node count below the pages freed");
            *slot -= overlap;
        }
    }
}

/// How many pages from `gfn` on (at most `pages`) are RAM without a gap.
fn ram_prefix(p2m: &P2m, gfn: u64, pages: u64) -> u64 {
    let mut ram_pages = 0;
    for (start, run) in p2m.runs_in(gfn, pages) {
        if start > gfn + ram_pages || !run.ty.is_ram() {
            break;
        }
        ram_pages = (start + run.pages).min(gfn + pages) - gfn;
    }
    ram_pages
}
