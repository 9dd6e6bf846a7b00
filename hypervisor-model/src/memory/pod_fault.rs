//! Populate-on-demand at fault time and at ballooning: `p2m_pod_demand_populate` with
//! its eager reclaim and emergency sweep, the zero checks that move zero pages back into
//! the cache, and `p2m_pod_decrease_reservation`.
//!
//! Follows xen/arch/x86/mm/p2m-pod.c (4.17); see `pod.rs` for the state and the model of
//! page contents.
//!
//! # Invariants
//! - A reclaimed page is `ram_rw`, 4 KiB (or a whole 2 MiB leaf), never written since its
//!   population, and becomes a PoD entry at once (`entry_count` and `count` both grow).
//! - The emergency sweep checks at most the GFNs from `reclaim_single` down to 0.
//!
//! xensim differs: no page is special (shared_info, grant-mapped): xensim maps none of
//! them into a PoD guest's RAM; the sweep is never preempted.

use alloc::vec::Vec;

use super::p2m::P2mType;
use super::pod::{PodFill, MRP_EMPTY, NR_POD_MRP_ENTRIES, POD_SWEEP_LIMIT, POD_SWEEP_STRIDE};
use super::{MemError, Memory, Touched, PAGE_ORDER_1G, PAGE_ORDER_2M, PAGE_ORDER_4K};
use crate::ids::DomId;

const SUPERPAGE_PAGES: u64 = 1 << PAGE_ORDER_2M;
const POD_LAST_SUPERPAGE: u64 = 1 << 63;

impl Memory {
    /// `p2m_pod_demand_populate` for the PoD entry covering `gfn`; `write` marks the
    /// page written (the faulting access). `Err` if `gfn` is not a PoD entry.
    pub fn pod_demand_populate(
        &mut self,
        dom: DomId,
        gfn: u64,
        write: bool,
    ) -> Result<PodFill, MemError> {
        let d = self.doms.get(&dom).ok_or(MemError::UnknownDomain)?;
        let entry = d.p2m.lookup(gfn).ok_or(MemError::GfnNotRam { gfn })?;
        if entry.ty != P2mType::PopulateOnDemand {
            return Err(MemError::GfnNotRam { gfn });
        }
        let order = entry.leaf_order;
        if order == PAGE_ORDER_1G {
            // The cache holds no 1 GiB chunks: the entry becomes 512 2 MiB PoD entries.
            self.pod_remap(dom, gfn, PAGE_ORDER_1G);
            return Ok(PodFill::Remapped);
        }
        let mut swept_pages = 0;
        let d = self.doms.get(&dom).ok_or(MemError::UnknownDomain)?;
        if d.pod.entry_count > d.pod.count {
            swept_pages += self.pod_eager_reclaim(dom);
        }
        if self.doms.get(&dom).is_some_and(|d| d.pod.count == 0) {
            swept_pages += self.pod_emergency_sweep(dom);
        }
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        if d.pod.count == 0 {
            return Ok(PodFill::OutOfMemory {
                tot_pages: d.tot_pages,
                entry_count: d.pod.entry_count,
            });
        }
        d.pod.max_guest = d.pod.max_guest.max(gfn);
        let Some(mfn) = d.pod.cache_get(order) else {
            // A 2 MiB entry and only single pages cached: 512 4 KiB entries, retry.
            self.pod_remap(dom, gfn, PAGE_ORDER_2M);
            return Ok(PodFill::Remapped);
        };
        let pages = 1u64 << order;
        let aligned = gfn & !(pages - 1);
        let removed = d.p2m.remove(aligned, pages);
        debug_assert!(removed.iter().all(|r| r.ty == P2mType::PopulateOnDemand));
        d.p2m.map(aligned, mfn, pages, P2mType::RamRw);
        d.pod.entry_count -= pages;
        d.pod.record_mrp(aligned, order);
        if write {
            // The guest initialises what a write brought in (see `pod.rs`).
            d.pod.nonzero.extend(aligned..aligned + pages);
        }
        self.frames.set_m2p(mfn, pages, aligned);
        for page in aligned..aligned + pages {
            // paging_mark_pfn_dirty for every page brought in.
            self.logdirty_mark(dom, page);
        }
        self.note_leaves(dom);
        self.touch(Touched::Guest {
            dom,
            gfn: aligned,
            pages,
        });
        self.touch(Touched::Frames { mfn, pages });
        Ok(PodFill::Populated {
            gfn: aligned,
            order,
            swept_pages,
        })
    }

    /// Re-marks the PoD leaf of `order` covering `gfn` as leaves of the next size down.
    fn pod_remap(&mut self, dom: DomId, gfn: u64, order: u8) {
        let Some(d) = self.doms.get_mut(&dom) else {
            return;
        };
        let pages = 1u64 << order;
        let aligned = gfn & !(pages - 1);
        let removed = d.p2m.remove(aligned, pages);
        debug_assert!(removed.iter().all(|r| r.ty == P2mType::PopulateOnDemand));
        let lower = if order == PAGE_ORDER_1G {
            PAGE_ORDER_2M
        } else {
            PAGE_ORDER_4K
        };
        let size = 1u64 << lower;
        let mut at = aligned;
        while at < aligned + pages {
            // Leaf by leaf: `map` would otherwise join them back into the larger leaf.
            d.p2m.map_leaf(at, at, lower, P2mType::PopulateOnDemand);
            at += size;
        }
        self.note_leaves(dom);
        self.touch(Touched::Guest {
            dom,
            gfn: aligned,
            pages,
        });
    }

    /// `pod_eager_reclaim`: zero-checks one recently populated GFN, more while the cache
    /// is empty; returns the GFNs checked.
    fn pod_eager_reclaim(&mut self, dom: DomId) -> u64 {
        let mut checked = 0;
        for i in 0..NR_POD_MRP_ENTRIES {
            let Some(d) = self.doms.get_mut(&dom) else {
                return checked;
            };
            let slot = (d.pod.mrp_index + i) % NR_POD_MRP_ENTRIES;
            let tagged = core::mem::replace(&mut d.pod.mrp[slot], MRP_EMPTY);
            if tagged != MRP_EMPTY {
                let gfn = tagged & !POD_LAST_SUPERPAGE;
                if tagged & POD_LAST_SUPERPAGE != 0 {
                    checked += SUPERPAGE_PAGES;
                    if !self.pod_zero_check_superpage(dom, gfn) {
                        let pages: Vec<u64> = (gfn..gfn + SUPERPAGE_PAGES).collect();
                        self.pod_zero_check(dom, &pages);
                    }
                } else {
                    checked += 1;
                    self.pod_zero_check(dom, &[gfn]);
                }
            }
            if self.doms.get(&dom).is_some_and(|d| d.pod.count > 0) {
                break;
            }
        }
        checked
    }

    /// `p2m_pod_emergency_sweep`: zero-checks RAM GFNs downwards from `reclaim_single`
    /// in strides, stopping once past `POD_SWEEP_LIMIT` with something cached; returns
    /// the GFNs looked at.
    fn pod_emergency_sweep(&mut self, dom: DomId) -> u64 {
        let Some(d) = self.doms.get_mut(&dom) else {
            return 0;
        };
        if d.pod.reclaim_single == 0 {
            d.pod.reclaim_single = d.pod.max_guest;
        }
        let start = d.pod.reclaim_single;
        let limit = start.saturating_sub(POD_SWEEP_LIMIT);
        let mut batch: Vec<u64> = Vec::with_capacity(POD_SWEEP_STRIDE);
        let mut i = start;
        let mut looked = 0;
        while i > 0 {
            let ram = self
                .doms
                .get(&dom)
                .and_then(|d| d.p2m.lookup(i))
                .is_some_and(|e| e.ty.is_ram());
            looked += 1;
            if ram {
                batch.push(i);
                if batch.len() == POD_SWEEP_STRIDE {
                    self.pod_zero_check(dom, &batch);
                    batch.clear();
                }
            }
            let cached = self.doms.get(&dom).is_some_and(|d| d.pod.count > 0);
            if i < limit && cached {
                break;
            }
            i -= 1;
        }
        if !batch.is_empty() {
            self.pod_zero_check(dom, &batch);
        }
        if let Some(d) = self.doms.get_mut(&dom) {
            d.pod.reclaim_single = i.saturating_sub(1);
        }
        looked
    }

    /// `p2m_pod_zero_check`: each 4 KiB `ram_rw` GFN never written since population goes
    /// back to the cache and becomes a PoD entry again.
    fn pod_zero_check(&mut self, dom: DomId, gfns: &[u64]) {
        for &gfn in gfns {
            let Some(d) = self.doms.get_mut(&dom) else {
                return;
            };
            let Some(entry) = d.p2m.lookup(gfn) else {
                continue;
            };
            // A page inside a superpage is checked too: reclaiming it splits the leaf.
            let zero = entry.ty == P2mType::RamRw && !d.pod.is_nonzero(gfn);
            if !zero {
                continue;
            }
            let removed = d.p2m.remove(gfn, 1);
            debug_assert_eq!(removed.len(), 1);
            d.p2m.map(gfn, gfn, 1, P2mType::PopulateOnDemand);
            d.pod.entry_count += 1;
            d.pod.cache_push(entry.mfn, PAGE_ORDER_4K);
            self.frames
                .set_m2p(entry.mfn, 1, super::frames::INVALID_M2P_ENTRY);
            // The page left the guest's RAM but stays counted in tot_pages (cache).
            self.note_leaves(dom);
            self.touch(Touched::Guest { dom, gfn, pages: 1 });
            self.touch(Touched::Frames {
                mfn: entry.mfn,
                pages: 1,
            });
        }
    }

    /// `p2m_pod_zero_check_superpage`: a whole 2 MiB `ram_rw` leaf at `gfn` with no page
    /// written goes back to the cache as one chunk. True if reclaimed.
    fn pod_zero_check_superpage(&mut self, dom: DomId, gfn: u64) -> bool {
        let Some(d) = self.doms.get_mut(&dom) else {
            return false;
        };
        let Some(entry) = d.p2m.lookup(gfn) else {
            return false;
        };
        let whole = entry.ty == P2mType::RamRw
            && entry.leaf_order == PAGE_ORDER_2M
            && gfn & (SUPERPAGE_PAGES - 1) == 0;
        let written = d
            .pod
            .nonzero
            .range(gfn..gfn + SUPERPAGE_PAGES)
            .next()
            .is_some();
        if !whole || written {
            return false;
        }
        d.p2m.remove(gfn, SUPERPAGE_PAGES);
        d.p2m
            .map(gfn, gfn, SUPERPAGE_PAGES, P2mType::PopulateOnDemand);
        d.pod.entry_count += SUPERPAGE_PAGES;
        d.pod.cache_push(entry.mfn, PAGE_ORDER_2M);
        self.frames
            .set_m2p(entry.mfn, SUPERPAGE_PAGES, super::frames::INVALID_M2P_ENTRY);
        self.note_leaves(dom);
        self.touch(Touched::Guest {
            dom,
            gfn,
            pages: SUPERPAGE_PAGES,
        });
        true
    }

    /// `p2m_pod_decrease_reservation` for one GFN: a PoD entry is dropped; RAM moves to
    /// the cache while the domain is in PoD debt. `None` if the normal path applies (no
    /// PoD state, or RAM and no debt).
    pub(crate) fn pod_decrease_one(&mut self, dom: DomId, gfn: u64) -> Option<()> {
        let d = self.doms.get_mut(&dom)?;
        if d.pod.entry_count == 0 && d.pod.count == 0 {
            return None;
        }
        let entry = d.p2m.lookup(gfn)?;
        if entry.ty == P2mType::PopulateOnDemand {
            d.p2m.remove(gfn, 1);
            d.pod.entry_count -= 1;
        } else if entry.ty == P2mType::RamRw && d.pod.entry_count > d.pod.count {
            // steal_for_cache: the page is scrubbed into the cache, tot_pages unchanged.
            d.p2m.remove(gfn, 1);
            d.pod.cache_push(entry.mfn, PAGE_ORDER_4K);
            d.pod.nonzero.remove(&gfn);
            self.frames
                .set_m2p(entry.mfn, 1, super::frames::INVALID_M2P_ENTRY);
            self.touch(Touched::Frames {
                mfn: entry.mfn,
                pages: 1,
            });
        } else {
            return None;
        }
        self.note_leaves(dom);
        self.touch(Touched::Guest { dom, gfn, pages: 1 });
        // "If we've reduced our liabilities beyond our assets, free some."
        let excess = self
            .doms
            .get(&dom)
            .filter(|d| d.pod.entry_count < d.pod.count)
            .map(|d| d.pod.entry_count);
        if let Some(entry_count) = excess {
            let trimmed = self.pod_trim_cache(dom, entry_count);
            debug_assert_eq!(trimmed, Ok(()));
        }
        Some(())
    }
}
