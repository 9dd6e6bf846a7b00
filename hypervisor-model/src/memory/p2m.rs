//! A domain's P2M: guest frame → machine frame and type, with 4 KiB, 2 MiB and 1 GiB
//! leaves, split on partial change.
//!
//! Follows xen/arch/x86/include/asm/p2m.h (`p2m_type_t` values and groups),
//! xen/arch/x86/mm/p2m.c (`p2m_set_entry` cutting a range into the largest leaves the
//! alignment of both GFN and MFN allows, XSA-388) and xen/arch/x86/mm/p2m-ept.c
//! (`ept_split_super_page`: a superpage becomes 512 leaves of the next size down, each
//! with the type and consecutive MFNs; no automatic re-merge).
//!
//! Sparse: a run is consecutive leaves of one size and type over consecutive MFNs, so a
//! 16 GiB guest backed by 1 GiB pages is one run of sixteen 1 GiB leaves, and ballooning a
//! page out of it leaves runs of 1 GiB, 2 MiB and 4 KiB leaves around the hole. Each GFN's
//! translation and leaf size are those of Xen's table; only the storage is by run.
//!
//! # Invariants
//! - Runs do not overlap; a run's GFN, MFN and length are multiples of its leaf size.
//! - `ram_pages` is the number of GFNs with a RAM type.
//! - A run never holds `p2m_invalid` (a hole is the absence of a run).
//!
//! For a domain with hardware-assisted paging (HVM, PVH) the P2M **is** the EPT: every
//! leaf that appears or goes is logged as a [`LeafChange`] (a split logs the old leaf
//! and its 512 children), and the hypervisor writes the log to the platform's EPT
//! (`hypervisor/ept_glue.rs`). PV domains log nothing.
//!
//! Left out: the paging pool (page-table pages are not allocated), access types
//! (always `p2m_access_rwx`), log-dirty recalculation through misconfigurations (a
//! global type change rewrites the leaves at once, `memory/logdirty.rs`).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{PAGE_ORDER_1G, PAGE_ORDER_2M, PAGE_ORDER_4K};

/// `p2m_type_t` (the numbers are Xen's ABI, stored in EPT bits 57:52).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum P2mType {
    /// `p2m_ram_rw`.
    RamRw = 0,
    /// `p2m_invalid`.
    Invalid = 1,
    /// `p2m_ram_logdirty`.
    RamLogdirty = 2,
    /// `p2m_ram_ro`.
    RamRo = 3,
    /// `p2m_mmio_dm`.
    MmioDm = 4,
    /// `p2m_mmio_direct`.
    MmioDirect = 5,
    /// `p2m_populate_on_demand`.
    PopulateOnDemand = 6,
    /// `p2m_grant_map_rw`.
    GrantMapRw = 7,
    /// `p2m_grant_map_ro`.
    GrantMapRo = 8,
    /// `p2m_ram_paging_out` (never created).
    RamPagingOut = 9,
    /// `p2m_ram_paged` (never created).
    RamPaged = 10,
    /// `p2m_ram_paging_in` (never created).
    RamPagingIn = 11,
    /// `p2m_ram_shared` (never created).
    RamShared = 12,
    /// `p2m_ram_broken`.
    RamBroken = 13,
    /// `p2m_map_foreign`.
    MapForeign = 14,
    /// `p2m_ioreq_server` (never created).
    IoreqServer = 15,
}

impl P2mType {
    /// `p2m_is_ram()`: the entry is backed by a frame the domain owns.
    pub fn is_ram(self) -> bool {
        matches!(
            self,
            P2mType::RamRw
                | P2mType::RamLogdirty
                | P2mType::RamRo
                | P2mType::RamPagingOut
                | P2mType::RamPaged
                | P2mType::RamPagingIn
                | P2mType::RamShared
                | P2mType::IoreqServer
        )
    }
}

/// One run of leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mRun {
    /// GFNs covered.
    pub pages: u64,
    /// MFN of the first GFN (the next continue it).
    pub mfn: u64,
    /// Type of every leaf.
    pub ty: P2mType,
    /// log2 of the leaf size in pages: 0, 9 or 18.
    pub leaf_order: u8,
}

/// A lookup's answer (`p2m_get_entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mEntry {
    /// The machine frame.
    pub mfn: u64,
    /// The type.
    pub ty: P2mType,
    /// Size of the leaf that maps it (`page_order`).
    pub leaf_order: u8,
}

/// A range taken out of the P2M by [`P2m::remove`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    /// First GFN.
    pub gfn: u64,
    /// First MFN.
    pub mfn: u64,
    /// Pages.
    pub pages: u64,
    /// Type.
    pub ty: P2mType,
}

/// One leaf that appeared in or left the P2M (what `ept_set_entry` writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafChange {
    /// The leaf at `gfn` of `order` is no longer there (removed, retyped or split).
    Gone {
        /// First GFN of the leaf.
        gfn: u64,
        /// Its order.
        order: u8,
        /// Its type.
        ty: P2mType,
    },
    /// A leaf now maps `gfn` (aligned to `order`) to `mfn` with type `ty`.
    New {
        /// First GFN of the leaf.
        gfn: u64,
        /// First MFN.
        mfn: u64,
        /// Its order.
        order: u8,
        /// Its type.
        ty: P2mType,
    },
}

/// One domain's P2M.
#[derive(Clone, Debug, Default)]
pub struct P2m {
    runs: BTreeMap<u64, P2mRun>,
    ram_pages: u64,
    /// Superpages split so far (`ept_split_super_page` calls).
    splits: u64,
    /// Leaf changes not yet written to the EPT; `None` for a domain without HAP.
    leaf_log: Option<Vec<LeafChange>>,
    /// `max_mapped_pfn`: the highest GFN ever mapped with a type (never lowered).
    max_mapped: Option<u64>,
}

/// The next smaller leaf size.
fn lower(order: u8) -> u8 {
    match order {
        PAGE_ORDER_1G => PAGE_ORDER_2M,
        _ => PAGE_ORDER_4K,
    }
}

/// The largest leaf at `gfn` → `mfn` that fits in `pages`.
pub fn leaf_order_for(gfn: u64, mfn: u64, pages: u64) -> u8 {
    [PAGE_ORDER_1G, PAGE_ORDER_2M]
        .into_iter()
        .find(|order| {
            let size = 1u64 << order;
            (gfn | mfn) & (size - 1) == 0 && pages >= size
        })
        .unwrap_or(PAGE_ORDER_4K)
}

impl P2m {
    /// From now on every leaf change is logged for the EPT (HVM and PVH domains).
    pub fn enable_leaf_log(&mut self) {
        assert!(
            self.runs.is_empty(),
            "HAP is chosen before the physmap is built"
        );
        self.leaf_log = Some(Vec::new());
    }

    /// True if leaf changes are logged (the domain uses HAP).
    pub fn logs_leaves(&self) -> bool {
        self.leaf_log.is_some()
    }

    /// Takes the logged leaf changes, oldest first.
    pub fn take_leaf_log(&mut self) -> Vec<LeafChange> {
        self.leaf_log
            .as_mut()
            .map(core::mem::take)
            .unwrap_or_default()
    }

    /// True if leaf changes wait to be written.
    pub fn has_leaf_changes(&self) -> bool {
        self.leaf_log.as_ref().is_some_and(|log| !log.is_empty())
    }

    /// Logs every leaf of `[gfn, gfn + pages)` of a run as gone (`new == false`) or new.
    fn log_leaves(&mut self, gfn: u64, mfn: u64, pages: u64, ty: P2mType, order: u8, new: bool) {
        let Some(log) = self.leaf_log.as_mut() else {
            return;
        };
        let size = 1u64 << order;
        debug_assert_eq!((gfn | pages) & (size - 1), 0, "leaves are whole");
        let mut offset = 0;
        while offset < pages {
            let leaf_gfn = gfn + offset;
            log.push(if new {
                LeafChange::New {
                    gfn: leaf_gfn,
                    mfn: mfn + offset,
                    order,
                    ty,
                }
            } else {
                LeafChange::Gone {
                    gfn: leaf_gfn,
                    order,
                    ty,
                }
            });
            offset += size;
        }
    }

    /// All leaves of `[gfn, gfn + pages)` in GFN order: (gfn, entry of its first frame).
    pub fn leaves_in(&self, gfn: u64, pages: u64) -> Vec<(u64, P2mEntry)> {
        let end = gfn.saturating_add(pages);
        let mut out = Vec::new();
        for (start, run) in self.runs_in(gfn, pages) {
            let size = 1u64 << run.leaf_order;
            let mut at = start;
            while at < start + run.pages && at < end {
                if at + size > gfn {
                    let entry = P2mEntry {
                        mfn: run.mfn + (at - start),
                        ty: run.ty,
                        leaf_order: run.leaf_order,
                    };
                    out.push((at, entry));
                }
                at += size;
            }
        }
        out
    }

    /// `p2m->max_mapped_pfn`, if anything was ever mapped.
    pub fn max_mapped_gfn(&self) -> Option<u64> {
        self.max_mapped
    }

    fn note_mapped(&mut self, last_gfn: u64) {
        self.max_mapped = Some(self.max_mapped.map_or(last_gfn, |m| m.max(last_gfn)));
    }

    /// GFNs with a RAM type.
    pub fn ram_pages(&self) -> u64 {
        self.ram_pages
    }

    /// Superpages split so far.
    pub fn splits(&self) -> u64 {
        self.splits
    }

    /// The highest mapped GFN.
    pub fn last_gfn(&self) -> Option<u64> {
        let (start, run) = self.runs.iter().next_back()?;
        Some(start + run.pages - 1)
    }

    /// All runs, by first GFN.
    pub fn runs(&self) -> impl Iterator<Item = (u64, &P2mRun)> {
        self.runs.iter().map(|(gfn, run)| (*gfn, run))
    }

    /// Runs overlapping `[gfn, gfn + pages)`.
    pub fn runs_in(&self, gfn: u64, pages: u64) -> impl Iterator<Item = (u64, &P2mRun)> {
        let first = self.run_at(gfn).map_or(gfn, |(start, _)| start);
        let end = gfn.saturating_add(pages);
        self.runs
            .range(first..end)
            .map(|(start, run)| (*start, run))
    }

    fn run_at(&self, gfn: u64) -> Option<(u64, P2mRun)> {
        let (start, run) = self.runs.range(..=gfn).next_back()?;
        (gfn < start + run.pages).then_some((*start, *run))
    }

    /// Up to `count` mapped GFNs (any type), highest first.
    pub fn highest_mapped(&self, count: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for (start, run) in self.runs.iter().rev() {
            let mut gfn = start + run.pages;
            while gfn > *start && u64::try_from(out.len()).unwrap_or(u64::MAX) < count {
                gfn -= 1;
                out.push(gfn);
            }
            if u64::try_from(out.len()).unwrap_or(u64::MAX) >= count {
                break;
            }
        }
        out
    }

    /// `p2m_get_entry`: the translation of `gfn`, or `None` for a hole.
    pub fn lookup(&self, gfn: u64) -> Option<P2mEntry> {
        let (start, run) = self.run_at(gfn)?;
        Some(P2mEntry {
            mfn: run.mfn + (gfn - start),
            ty: run.ty,
            leaf_order: run.leaf_order,
        })
    }

    /// True if no GFN of `[gfn, gfn + pages)` is mapped.
    pub fn is_hole(&self, gfn: u64, pages: u64) -> bool {
        self.runs_in(gfn, pages).next().is_none()
    }

    /// `p2m_set_entry` over a hole: maps `[gfn, gfn + pages)` to `[mfn, ...)` with the
    /// largest leaves the alignment allows.
    pub fn map(&mut self, gfn: u64, mfn: u64, pages: u64, ty: P2mType) {
        assert!(pages > 0);
        assert!(ty != P2mType::Invalid, "a hole is not an entry");
        assert!(self.is_hole(gfn, pages), "gfn {gfn:#x} already mapped");
        let (mut g, mut m, mut left) = (gfn, mfn, pages);
        while left > 0 {
            let order = leaf_order_for(g, m, left);
            let size = 1u64 << order;
            // Every leaf of one order in a row goes into one run.
            let mut count = size;
            while left > count && leaf_order_for(g + count, m + count, left - count) == order {
                count += size;
            }
            self.insert(
                g,
                P2mRun {
                    pages: count,
                    mfn: m,
                    ty,
                    leaf_order: order,
                },
            );
            self.log_leaves(g, m, count, ty, order, true);
            g += count;
            m += count;
            left -= count;
        }
        if ty.is_ram() {
            self.ram_pages += pages;
        }
        self.note_mapped(gfn + pages - 1);
    }

    /// Maps one leaf of exactly `order` over a hole (where [`P2m::map`] would pick the
    /// largest leaf the alignment allows: a re-marked superpage stays smaller leaves).
    pub fn map_leaf(&mut self, gfn: u64, mfn: u64, order: u8, ty: P2mType) {
        let pages = 1u64 << order;
        assert!(ty != P2mType::Invalid, "a hole is not an entry");
        assert!(self.is_hole(gfn, pages), "gfn {gfn:#x} already mapped");
        assert_eq!((gfn | mfn) & (pages - 1), 0, "misaligned leaf");
        let run = P2mRun {
            pages,
            mfn,
            ty,
            leaf_order: order,
        };
        self.insert(gfn, run);
        self.log_leaves(gfn, mfn, pages, ty, order, true);
        if ty.is_ram() {
            self.ram_pages += pages;
        }
        self.note_mapped(gfn + pages - 1);
    }

    /// Removes `[gfn, gfn + pages)` (the holes in it stay holes), splitting superpages
    /// at its ends; returns the removed mappings in GFN order.
    pub fn remove(&mut self, gfn: u64, pages: u64) -> Vec<Removed> {
        assert!(pages > 0);
        let end = gfn + pages;
        if let Some(removed) = self.remove_head(gfn, pages) {
            return alloc::vec![removed];
        }
        self.split_to(gfn);
        self.split_to(end);
        let starts: Vec<u64> = self.runs.range(gfn..end).map(|(s, _)| *s).collect();
        let mut out = Vec::with_capacity(starts.len());
        for start in starts {
            let run = self.runs.remove(&start).expect("run listed");
            assert!(start + run.pages <= end, "split left a run across the end");
            if run.ty.is_ram() {
                self.ram_pages -= run.pages;
            }
            self.log_leaves(start, run.mfn, run.pages, run.ty, run.leaf_order, false);
            out.push(Removed {
                gfn: start,
                mfn: run.mfn,
                pages: run.pages,
                ty: run.ty,
            });
        }
        out
    }

    /// `p2m_change_type_range`: every leaf of `[gfn, gfn + pages)` typed `from` becomes
    /// `to` with the same MFN; a superpage of type `from` across either end is split
    /// first (a whole-P2M change splits nothing). Returns the pages changed.
    pub fn change_type(&mut self, gfn: u64, pages: u64, from: P2mType, to: P2mType) -> u64 {
        assert!(pages > 0);
        assert!(to != P2mType::Invalid, "a hole is not an entry");
        let end = gfn.saturating_add(pages);
        for at in [gfn, end] {
            if self.run_at(at).is_some_and(|(_, run)| run.ty == from) {
                self.split_to(at);
            }
        }
        let starts: Vec<u64> = self
            .runs
            .range(gfn..end)
            .filter(|(_, run)| run.ty == from)
            .map(|(s, _)| *s)
            .collect();
        let mut changed = 0;
        for start in starts {
            let run = self.runs.get_mut(&start).expect("run listed");
            assert!(start + run.pages <= end, "split left a run across the end");
            run.ty = to;
            let run = *run;
            // Each leaf is rewritten in place: its old entry, then its new one.
            let size = 1u64 << run.leaf_order;
            let mut offset = 0;
            while offset < run.pages {
                let (g, m) = (start + offset, run.mfn + offset);
                self.log_leaves(g, m, size, from, run.leaf_order, false);
                self.log_leaves(g, m, size, to, run.leaf_order, true);
                offset += size;
            }
            match (from.is_ram(), to.is_ram()) {
                (true, false) => self.ram_pages -= run.pages,
                (false, true) => self.ram_pages += run.pages,
                _ => {}
            }
            changed += run.pages;
        }
        changed
    }

    /// The common case of ballooning page by page: a run of leaves starts at `gfn` and
    /// `pages` is a whole number of its leaves; the run loses its head.
    pub fn remove_head(&mut self, gfn: u64, pages: u64) -> Option<Removed> {
        let run = *self.runs.get(&gfn)?;
        let size = 1u64 << run.leaf_order;
        if run.pages < pages || pages & (size - 1) != 0 {
            return None;
        }
        self.runs.remove(&gfn);
        if run.pages > pages {
            let tail = P2mRun {
                pages: run.pages - pages,
                mfn: run.mfn + pages,
                ..run
            };
            self.runs.insert(gfn + pages, tail);
        }
        if run.ty.is_ram() {
            self.ram_pages -= pages;
        }
        self.log_leaves(gfn, run.mfn, pages, run.ty, run.leaf_order, false);
        Some(Removed {
            gfn,
            mfn: run.mfn,
            pages,
            ty: run.ty,
        })
    }

    /// Splits superpage leaves until a leaf starts at `at` (or `at` is in a hole).
    fn split_to(&mut self, at: u64) {
        loop {
            let Some((start, run)) = self.run_at(at) else {
                return;
            };
            let size = 1u64 << run.leaf_order;
            let leaf_start = start + ((at - start) & !(size - 1));
            if leaf_start == at {
                // A leaf boundary: only the run itself needs cutting.
                if start != at {
                    self.cut(start, run, at);
                }
                return;
            }
            self.split_leaf(start, run, leaf_start);
        }
    }

    /// Cuts the run at `start` in two at `at` (a leaf boundary).
    fn cut(&mut self, start: u64, run: P2mRun, at: u64) {
        let head = at - start;
        self.runs.insert(start, P2mRun { pages: head, ..run });
        let tail = P2mRun {
            pages: run.pages - head,
            mfn: run.mfn + head,
            ..run
        };
        self.runs.insert(at, tail);
    }

    /// `ept_split_super_page`: the leaf at `leaf_start` becomes leaves of the next size.
    fn split_leaf(&mut self, start: u64, run: P2mRun, leaf_start: u64) {
        assert!(run.leaf_order > PAGE_ORDER_4K);
        let size = 1u64 << run.leaf_order;
        self.runs.remove(&start);
        if leaf_start > start {
            let head = leaf_start - start;
            self.runs.insert(start, P2mRun { pages: head, ..run });
        }
        let offset = leaf_start - start;
        let leaf = P2mRun {
            pages: size,
            mfn: run.mfn + offset,
            ty: run.ty,
            leaf_order: lower(run.leaf_order),
        };
        self.runs.insert(leaf_start, leaf);
        // The superpage entry becomes a table of 512 leaves of the next size.
        self.log_leaves(leaf_start, leaf.mfn, size, run.ty, run.leaf_order, false);
        self.log_leaves(leaf_start, leaf.mfn, size, run.ty, leaf.leaf_order, true);
        let leaf_end = leaf_start + size;
        if leaf_end < start + run.pages {
            let tail = P2mRun {
                pages: start + run.pages - leaf_end,
                mfn: run.mfn + (leaf_end - start),
                ..run
            };
            self.runs.insert(leaf_end, tail);
        }
        self.splits += 1;
    }

    /// Inserts a run, joining it to the previous one where it continues it.
    fn insert(&mut self, gfn: u64, run: P2mRun) {
        let size = 1u64 << run.leaf_order;
        assert_eq!(
            (gfn | run.mfn | run.pages) & (size - 1),
            0,
            "misaligned leaf"
        );
        if let Some((prev_start, prev)) = self.runs.range(..gfn).next_back() {
            let continues = prev_start + prev.pages == gfn
                && prev.mfn + prev.pages == run.mfn
                && prev.ty == run.ty
                && prev.leaf_order == run.leaf_order;
            if continues {
                let merged = P2mRun {
                    pages: prev.pages + run.pages,
                    ..*prev
                };
                let prev_start = *prev_start;
                self.runs.insert(prev_start, merged);
                return;
            }
        }
        self.runs.insert(gfn, run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB_PAGES: u64 = 1 << 18;

    #[test]
    fn aligned_16_gib_is_one_run_of_1g_leaves() {
        let mut p2m = P2m::default();
        p2m.map(0, 4 * GIB_PAGES, 16 * GIB_PAGES, P2mType::RamRw);
        assert_eq!(p2m.runs().count(), 1);
        assert_eq!(p2m.lookup(5).map(|e| e.leaf_order), Some(PAGE_ORDER_1G));
        assert_eq!(p2m.ram_pages(), 16 * GIB_PAGES);
    }

    #[test]
    fn removing_one_page_splits_1g_then_2m() {
        let mut p2m = P2m::default();
        p2m.map(0, GIB_PAGES, GIB_PAGES, P2mType::RamRw);
        let removed = p2m.remove(1000, 1);
        assert_eq!(removed[0].mfn, GIB_PAGES + 1000);
        // 1 GiB → 512 × 2 MiB, then the 2 MiB leaf holding gfn 1000 → 512 × 4 KiB.
        assert_eq!(p2m.splits(), 2);
        assert_eq!(p2m.lookup(999).map(|e| e.leaf_order), Some(PAGE_ORDER_4K));
        assert_eq!(p2m.lookup(1024).map(|e| e.leaf_order), Some(PAGE_ORDER_2M));
        assert_eq!(p2m.lookup(1000), None);
        assert_eq!(p2m.ram_pages(), GIB_PAGES - 1);
    }

    #[test]
    fn misaligned_mfn_maps_with_smaller_leaves() {
        let mut p2m = P2m::default();
        // MFN only 4 KiB aligned: no superpage is possible.
        p2m.map(0, 1, 1024, P2mType::RamRw);
        assert_eq!(p2m.lookup(512).map(|e| e.leaf_order), Some(PAGE_ORDER_4K));
        assert_eq!(p2m.lookup(512).map(|e| e.mfn), Some(513));
    }

    #[test]
    fn split_preserves_every_translation() {
        let mut p2m = P2m::default();
        p2m.map(0, 2 * GIB_PAGES, GIB_PAGES, P2mType::RamRw);
        p2m.remove(GIB_PAGES / 2, 3);
        let probe = GIB_PAGES / 2 + 3;
        assert_eq!(
            p2m.lookup(probe).map(|e| e.mfn),
            Some(2 * GIB_PAGES + probe)
        );
        assert_eq!(p2m.lookup(7).map(|e| e.mfn), Some(2 * GIB_PAGES + 7));
    }
}
