//! Populate-on-demand: a pre-ballooned HVM guest's physmap up to `maxmem` is typed
//! `populate_on_demand`, backed by a cache of `target` pages it owns; a first touch takes
//! a page (or a 2 MiB chunk) from the cache, and zero pages are reclaimed into it.
//!
//! Follows xen/arch/x86/mm/p2m-pod.c (4.17): `p2m_pod_set_mem_target` and
//! `p2m_pod_set_cache_target`, `p2m_pod_demand_populate` (1 GiB entries re-marked as
//! 2 MiB, eager reclaim through the `mrp` ring, the emergency sweep, out of PoD memory,
//! remap-and-retry when no 2 MiB chunk is cached), `p2m_pod_zero_check` and
//! `p2m_pod_zero_check_superpage`, `p2m_pod_emergency_sweep` (`POD_SWEEP_STRIDE`,
//! `POD_SWEEP_LIMIT`) and `p2m_pod_decrease_reservation`. Spec §4.
//!
//! # Invariants
//! - `entry_count` = GFNs typed PoD; `count` = pages in the cache (I10).
//! - Cache pages are owned by the domain, unmapped (M2P invalid), and zero.
//! - `tot_pages = RAM P2M pages + count`.
//!
//! xensim differs: page contents are a bit per page, "written since populated"; the core
//! sees a write only when it faults: a PoD fault-in by a write marks the whole extent it
//! brought in as written (the guest initialises what it got), a log-dirty write fault
//! marks its page; a page brought in by a read and written later without a fault stays
//! "zero" to the sweep.
//! A PoD entry stores its own GFN as its MFN (Xen: `INVALID_MFN`) so runs stay aligned.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::heap::{AllocFlags, AllocFor};
use super::p2m::P2mType;
use super::{MemError, Memory, Owner, Touched, PAGE_ORDER_2M, PAGE_ORDER_4K};
use crate::ids::DomId;

/// `POD_SWEEP_STRIDE`: GFNs zero-checked at a time.
pub const POD_SWEEP_STRIDE: usize = 16;
/// `POD_SWEEP_LIMIT`: the emergency sweep checks at least this many GFNs.
pub const POD_SWEEP_LIMIT: u64 = 1024;
/// `NR_POD_MRP_ENTRIES`: recently populated GFNs remembered for eager reclaim.
pub const NR_POD_MRP_ENTRIES: usize = 32;
/// `POD_LAST_SUPERPAGE`: marks a 2 MiB populate in the `mrp` ring.
const POD_LAST_SUPERPAGE: u64 = 1 << 63;
const SUPERPAGE_PAGES: u64 = 1 << PAGE_ORDER_2M;

/// `struct p2m_domain.pod`.
#[derive(Clone, Debug)]
pub struct PodState {
    /// `pod.count`: pages in the cache.
    pub count: u64,
    /// `pod.entry_count`: GFNs typed PoD.
    pub entry_count: u64,
    /// `pod.super`: cached 2 MiB chunks (first MFN).
    super_chunks: Vec<u64>,
    /// `pod.single`: cached 4 KiB pages.
    singles: Vec<u64>,
    /// `pod.max_guest`: highest GFN demand-populated.
    pub max_guest: u64,
    /// `pod.reclaim_single`: where the last emergency sweep stopped.
    pub(super) reclaim_single: u64,
    /// `pod.mrp.list`: recently populated GFNs ([`MRP_EMPTY`] = none).
    pub(super) mrp: [u64; NR_POD_MRP_ENTRIES],
    /// `pod.mrp.idx`: the next slot written.
    pub(super) mrp_index: usize,
    /// GFNs written since they were last populated (non-zero contents).
    pub(super) nonzero: BTreeSet<u64>,
}

/// An empty `mrp` slot (`INVALID_GFN`).
pub const MRP_EMPTY: u64 = u64::MAX;

impl Default for PodState {
    fn default() -> PodState {
        PodState {
            count: 0,
            entry_count: 0,
            super_chunks: Vec::new(),
            singles: Vec::new(),
            max_guest: 0,
            reclaim_single: 0,
            mrp: [MRP_EMPTY; NR_POD_MRP_ENTRIES],
            mrp_index: 0,
            nonzero: BTreeSet::new(),
        }
    }
}

/// What a PoD fault did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodFill {
    /// A page or chunk was mapped at `gfn` (aligned) with `order`; `swept_pages` were
    /// zero-checked to find it.
    Populated {
        /// First GFN mapped.
        gfn: u64,
        /// Order mapped.
        order: u8,
        /// GFNs zero-checked.
        swept_pages: u64,
    },
    /// The entry was re-marked smaller (1 GiB → 2 MiB, or 2 MiB → 4 KiB): retry.
    Remapped,
    /// `out of PoD memory!`: the caller crashes the domain.
    OutOfMemory {
        /// `domain_tot_pages(d)`.
        tot_pages: u64,
        /// `pod.entry_count`.
        entry_count: u64,
    },
}

impl PodState {
    pub(super) fn cache_push(&mut self, mfn: u64, order: u8) {
        if order == PAGE_ORDER_2M {
            self.super_chunks.push(mfn);
        } else {
            debug_assert_eq!(order, PAGE_ORDER_4K);
            self.singles.push(mfn);
        }
        self.count += 1 << order;
    }

    /// `p2m_pod_cache_get`: a chunk of `order`, splitting a 2 MiB chunk for a single.
    pub(super) fn cache_get(&mut self, order: u8) -> Option<u64> {
        if order == PAGE_ORDER_2M {
            let mfn = self.super_chunks.pop()?;
            self.count -= SUPERPAGE_PAGES;
            return Some(mfn);
        }
        if self.singles.is_empty() {
            let chunk = self.super_chunks.pop()?;
            // Pushed in reverse so the chunk's pages come out lowest first.
            self.singles
                .extend((0..SUPERPAGE_PAGES).rev().map(|i| chunk + i));
        }
        let mfn = self.singles.pop()?;
        self.count -= 1;
        Some(mfn)
    }

    /// `pod_eager_record`.
    pub(super) fn record_mrp(&mut self, gfn: u64, order: u8) {
        let tagged = if order == PAGE_ORDER_2M {
            gfn | POD_LAST_SUPERPAGE
        } else {
            gfn
        };
        self.mrp[self.mrp_index] = tagged;
        self.mrp_index = (self.mrp_index + 1) % NR_POD_MRP_ENTRIES;
    }

    /// True if the guest wrote `gfn` since it was populated.
    pub fn is_nonzero(&self, gfn: u64) -> bool {
        self.nonzero.contains(&gfn)
    }

    /// Cached chunks, for the checker: (first MFN, order).
    pub fn cached(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        let supers = self.super_chunks.iter().map(|m| (*m, PAGE_ORDER_2M));
        supers.chain(self.singles.iter().map(|m| (*m, PAGE_ORDER_4K)))
    }
}

impl Memory {
    /// `guest_physmap_mark_populate_on_demand`: `2^order` GFNs at `gfn` (a hole) become
    /// PoD entries.
    pub fn pod_mark(&mut self, dom: DomId, gfn: u64, order: u8) -> Result<(), MemError> {
        let pages = 1u64 << order;
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        if gfn & (pages - 1) != 0 || !d.p2m.is_hole(gfn, pages) {
            return Err(MemError::GfnMapped { gfn });
        }
        d.p2m.map(gfn, gfn, pages, P2mType::PopulateOnDemand);
        d.pod.entry_count += pages;
        self.note_leaves(dom);
        self.touch(Touched::Guest { dom, gfn, pages });
        Ok(())
    }

    /// `p2m_pod_set_mem_target`: grows (or shrinks) the cache so that `tot_pages` reaches
    /// `target_pages`, as far as the rules of §4.5 allow.
    pub fn pod_set_target(&mut self, dom: DomId, target_pages: u64) -> Result<(), MemError> {
        let d = self.doms.get(&dom).ok_or(MemError::UnknownDomain)?;
        let populated = d.tot_pages - d.pod.count;
        if populated > 0 && d.pod.entry_count == 0 {
            return Ok(());
        }
        if target_pages < d.tot_pages {
            // The balloon driver is expected to free memory; the cache is not shrunk.
            return Ok(());
        }
        let mut pod_target = target_pages - populated;
        if populated > 0 && pod_target > d.pod.entry_count {
            pod_target = d.pod.entry_count;
        }
        self.pod_set_cache_target(dom, pod_target)
    }

    /// `p2m_pod_set_cache_target`: allocates into (2 MiB where possible) or frees from
    /// the cache until it holds `pod_target` pages.
    fn pod_set_cache_target(&mut self, dom: DomId, pod_target: u64) -> Result<(), MemError> {
        loop {
            let count = self.doms.get(&dom).map_or(0, |d| d.pod.count);
            if count >= pod_target {
                break;
            }
            let order = if pod_target - count >= SUPERPAGE_PAGES {
                PAGE_ORDER_2M
            } else {
                PAGE_ORDER_4K
            };
            let got = match self.pod_alloc(dom, order) {
                Err(MemError::NoMemory) if order == PAGE_ORDER_2M => {
                    self.pod_alloc(dom, PAGE_ORDER_4K)?
                }
                other => other?,
            };
            let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
            d.pod.cache_push(got.0, got.1);
        }
        while let Some(d) = self.doms.get_mut(&dom) {
            if d.pod.count <= pod_target {
                break;
            }
            let order = if d.pod.count - pod_target >= SUPERPAGE_PAGES {
                PAGE_ORDER_2M
            } else {
                PAGE_ORDER_4K
            };
            let Some(mfn) = d.pod.cache_get(order) else {
                break;
            };
            self.pod_free(dom, mfn, 1 << order);
        }
        Ok(())
    }

    /// `p2m_pod_set_cache_target` downwards only (never allocates).
    pub(super) fn pod_trim_cache(&mut self, dom: DomId, pod_target: u64) -> Result<(), MemError> {
        let count = self.doms.get(&dom).map_or(0, |d| d.pod.count);
        debug_assert!(pod_target <= count);
        self.pod_set_cache_target(dom, pod_target.min(count))
    }

    /// `alloc_domheap_pages(d, order, 0)` for the cache: counted in `tot_pages`, so
    /// `max_pages` applies; the chunk is owned and unmapped.
    fn pod_alloc(&mut self, dom: DomId, order: u8) -> Result<(u64, u8), MemError> {
        let pages = 1u64 << order;
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        let requested_pages = d.tot_pages + pages;
        if requested_pages > d.max_pages {
            return Err(MemError::OverAllocation {
                requested_pages,
                max_pages: d.max_pages,
            });
        }
        let got = self
            .heap
            .alloc(
                order,
                AllocFlags::default(),
                Some(AllocFor {
                    last_alloc_node: &mut d.last_alloc_node,
                    node_affinity: d.node_affinity,
                    outstanding_pages: d.outstanding_pages,
                }),
            )
            .ok_or(MemError::NoMemory)?;
        let drained = d.outstanding_pages.min(pages);
        d.outstanding_pages -= drained;
        self.heap.outstanding_claims -= drained;
        d.tot_pages += pages;
        d.scrubbed_pages += got.scrubbed_pages;
        super::add_node_overlap(&self.heap, &mut d.node_pages, got.mfn, pages, true);
        self.frames.assign(got.mfn, pages, Owner::Dom(dom));
        self.touch(Touched::Frames {
            mfn: got.mfn,
            pages,
        });
        Ok((got.mfn, order))
    }

    /// Frees `pages` cache frames at `mfn` back to the heap (`tot_pages` drops).
    fn pod_free(&mut self, dom: DomId, mfn: u64, pages: u64) {
        let owner = self.frames.release(mfn, pages);
        assert_eq!(
            owner,
            Owner::Dom(dom),
            "PoD cache frame {mfn:#x} not the domain's"
        );
        self.heap.free_range(mfn, pages, true);
        if let Some(d) = self.doms.get_mut(&dom) {
            d.tot_pages -= pages;
            super::add_node_overlap(&self.heap, &mut d.node_pages, mfn, pages, false);
        }
        self.touch(Touched::Frames { mfn, pages });
    }

    /// Frees the whole cache (`p2m_pod_empty_cache`, at domain destruction).
    pub fn pod_empty_cache(&mut self, dom: DomId) -> u64 {
        let Some(d) = self.doms.get_mut(&dom) else {
            return 0;
        };
        let chunks: Vec<(u64, u8)> = d.pod.cached().collect();
        d.pod.super_chunks.clear();
        d.pod.singles.clear();
        d.pod.count = 0;
        let mut freed = 0;
        for (mfn, order) in chunks {
            self.pod_free(dom, mfn, 1 << order);
            freed += 1u64 << order;
        }
        freed
    }

    /// The guest wrote `gfn` (its contents are no longer zero).
    pub fn pod_note_write(&mut self, dom: DomId, gfn: u64) {
        if let Some(d) = self.doms.get_mut(&dom) {
            if d.pod.entry_count > 0 || d.pod.count > 0 {
                d.pod.nonzero.insert(gfn);
            }
        }
    }
}
