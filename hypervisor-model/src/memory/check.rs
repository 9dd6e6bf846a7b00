//! The memory invariant checker (spec `memory-iommu-migration.md` §13: I1 ownership, I2
//! conservation, I3 claims, I5 buddy integrity, I7 P2M/M2P agreement, I29 superpages).
//!
//! Counters are checked every time, in O(domains + nodes). The frame-level invariants run
//! frame by frame over the whole host when it is small ([`SWEEP_PAGES_MAX`]), and otherwise
//! only over the ranges the last input changed (the journal), run by run — so a 1 TiB
//! host costs what its changes cost. A journal that overflowed triggers one full run-level
//! sweep.

use alloc::format;
use alloc::vec::Vec;

use super::frames::INVALID_M2P_ENTRY;
use super::p2m::P2mRun;
use super::{Memory, Owner, Touched};
use crate::ids::DomId;
use crate::sched::Violation;

/// Hosts up to this many pages are checked frame by frame after every input (64 MiB).
pub const SWEEP_PAGES_MAX: u64 = 1 << 14;

fn violation(out: &mut Vec<Violation>, invariant: &'static str, detail: alloc::string::String) {
    out.push(Violation { invariant, detail });
}

impl Memory {
    /// Checks the memory invariants; `tot_pages` of every domain as the domain table
    /// holds it is compared with the allocator's.
    pub fn check_invariants(&self, tot_pages: &[(DomId, u64)], out: &mut Vec<Violation>) {
        self.check_counters(tot_pages, out);
        if self.total_pages <= SWEEP_PAGES_MAX {
            self.sweep_frames(out);
            self.check_buddies(out);
        } else if self.journal_overflow {
            self.check_frame_range(0, self.total_pages, out);
            for (dom, d) in &self.doms {
                for (gfn, run) in d.p2m.runs() {
                    self.check_p2m_run(*dom, gfn, run, out);
                }
            }
            self.check_buddies(out);
        } else {
            for touched in &self.journal {
                match *touched {
                    Touched::Frames { mfn, pages } => self.check_frame_range(mfn, pages, out),
                    Touched::Guest { dom, gfn, pages } => {
                        let Some(d) = self.doms.get(&dom) else {
                            continue;
                        };
                        for (start, run) in d.p2m.runs_in(gfn, pages) {
                            self.check_p2m_run(dom, start, run, out);
                        }
                    }
                }
            }
        }
    }

    /// I2, I3 and the per-domain counts.
    fn check_counters(&self, tot_pages: &[(DomId, u64)], out: &mut Vec<Violation>) {
        let node_free: u64 = self.heap.nodes.iter().map(|n| n.avail_pages()).sum();
        if node_free != self.heap.total_avail_pages {
            let detail = format!("nodes {node_free} != {}", self.heap.total_avail_pages);
            violation(out, "mem.total_avail", detail);
        }
        let owned = self.frames.allocated_pages();
        if owned + self.heap.total_avail_pages != self.total_pages {
            let detail = format!(
                "owned {owned} + free {} != {}",
                self.heap.total_avail_pages, self.total_pages
            );
            violation(out, "mem.pages_conserved", detail);
        }
        let claims: u64 = self.doms.values().map(|d| d.outstanding_pages).sum();
        if claims != self.heap.outstanding_claims {
            let detail = format!("{claims} != {}", self.heap.outstanding_claims);
            violation(out, "mem.claims_sum", detail);
        }
        if self.heap.outstanding_claims > self.heap.total_avail_pages {
            violation(out, "mem.claims_backed", format!("{claims}"));
        }
        for (dom, d) in &self.doms {
            let owned = self.frames.owned_pages(Owner::Dom(*dom));
            // I10: the PoD cache is owned and counted, but not mapped.
            let ram = d.p2m.ram_pages() + d.pod.count;
            if owned != d.tot_pages || ram != d.tot_pages {
                let detail = format!("{dom:?}: tot {} owned {owned} ram {ram}", d.tot_pages);
                violation(out, "mem.tot_pages", detail);
            }
            let node_sum: u64 = d.node_pages.iter().sum();
            if node_sum != d.tot_pages {
                let detail = format!("{dom:?}: per-node {node_sum} != tot {}", d.tot_pages);
                violation(out, "mem.node_pages_sum", detail);
            }
            if d.pod.entry_count > 0 || d.pod.count > 0 {
                self.check_pod(*dom, d, out);
            }
            if let Some(gfn) = self.logdirty_unmarked_rw(*dom) {
                let detail = format!("{dom:?}: ram_rw {gfn:#x} not in the dirty bitmap");
                violation(out, "mem.logdirty_unmarked_rw", detail);
            }
            let headroom = d.max_pages.saturating_sub(d.tot_pages);
            if d.outstanding_pages > headroom {
                let detail = format!("{dom:?}: claim {} > {headroom}", d.outstanding_pages);
                violation(out, "mem.claim_headroom", detail);
            }
        }
        for (dom, pages) in tot_pages {
            if self.doms.get(dom).map(|d| d.tot_pages) != Some(*pages) {
                violation(out, "mem.domain_tot_pages", format!("{dom:?}: {pages}"));
            }
        }
    }

    /// I10 for a domain using PoD: `entry_count` is its PoD GFNs, `count` its cached
    /// pages, each cached chunk owned by it and out of the M2P.
    fn check_pod(&self, dom: DomId, d: &super::DomMem, out: &mut Vec<Violation>) {
        let pod_gfns: u64 = d
            .p2m
            .runs()
            .filter(|(_, run)| run.ty == super::p2m::P2mType::PopulateOnDemand)
            .map(|(_, run)| run.pages)
            .sum();
        if pod_gfns != d.pod.entry_count {
            let detail = format!(
                "{dom:?}: {pod_gfns} PoD GFNs, entry_count {}",
                d.pod.entry_count
            );
            violation(out, "mem.pod_entry_count", detail);
        }
        let mut cached = 0;
        for (mfn, order) in d.pod.cached() {
            cached += 1u64 << order;
            let owned = self.frames.owner(mfn) == Some(Owner::Dom(dom));
            if !owned || self.frames.m2p(mfn) != INVALID_M2P_ENTRY {
                violation(out, "mem.pod_cache_frame", format!("{dom:?}: {mfn:#x}"));
            }
        }
        if cached != d.pod.count {
            let detail = format!("{dom:?}: {cached} cached, count {}", d.pod.count);
            violation(out, "mem.pod_count", detail);
        }
    }

    /// I1 and I7 frame by frame over the whole host.
    fn sweep_frames(&self, out: &mut Vec<Violation>) {
        for mfn in 0..self.total_pages {
            let free = self.heap_block_of(mfn).is_some();
            match (self.frames.owner(mfn), free) {
                (Some(_), true) => violation(out, "mem.owned_and_free", format!("{mfn:#x}")),
                (None, false) => violation(out, "mem.frame_lost", format!("{mfn:#x}")),
                (None, true) => {}
                (Some(owner), false) => self.check_m2p_inverse(mfn, owner, out),
            }
            if free && self.frames.m2p(mfn) != INVALID_M2P_ENTRY {
                violation(out, "mem.free_m2p", format!("{mfn:#x}"));
            }
        }
        for (dom, d) in &self.doms {
            for (gfn, run) in d.p2m.runs() {
                self.check_p2m_run(*dom, gfn, run, out);
            }
            let counted = self.dom_node_pages(*dom);
            if counted != d.node_pages {
                let detail = format!("{dom:?}: kept {:?} counted {counted:?}", d.node_pages);
                violation(out, "mem.node_pages", detail);
            }
        }
    }

    /// I1/I7 run by run over `[mfn, mfn + pages)`: each part is owned or free, not both,
    /// and an owned frame with an M2P entry is mapped back by its owner's P2M.
    fn check_frame_range(&self, mfn: u64, pages: u64, out: &mut Vec<Violation>) {
        let end = mfn.saturating_add(pages).min(self.total_pages);
        let mut at = mfn;
        while at < end {
            if let Some((start, run)) = self.frames.run_at(at) {
                let run_end = (start + run.pages).min(end);
                if self.any_block_in(at, run_end) {
                    violation(out, "mem.owned_and_free", format!("{at:#x}"));
                }
                // The ends of the piece are enough: runs are consecutive by construction.
                self.check_m2p_inverse(at, run.owner, out);
                self.check_m2p_inverse(run_end - 1, run.owner, out);
                at = run_end;
            } else if let Some((start, block)) = self.heap_block_of(at) {
                let block_end = start + (1u64 << block.order);
                if let Some(fault) = self.heap_fault(start) {
                    violation(out, "mem.buddy_block", format!("{start:#x}: {fault}"));
                }
                if let Some((owned, _)) = self.frames.runs_in(at, block_end - at).next() {
                    violation(out, "mem.owned_and_free", format!("{owned:#x}"));
                }
                at = block_end.min(end);
            } else {
                violation(out, "mem.frame_lost", format!("{at:#x}"));
                return;
            }
        }
    }

    /// True if a free block overlaps `[mfn, end)`.
    fn any_block_in(&self, mfn: u64, end: u64) -> bool {
        if self.heap_block_of(mfn).is_some() {
            return true;
        }
        self.heap
            .nodes
            .iter()
            .any(|n| n.blocks().range(mfn..end).next().is_some())
    }

    fn heap_fault(&self, mfn: u64) -> Option<&'static str> {
        let node = self.heap.node_of(mfn)?;
        self.heap.nodes[node].block_fault(mfn)
    }

    fn heap_block_of(&self, mfn: u64) -> Option<(u64, super::buddy::FreeBlock)> {
        let node = self.heap.node_of(mfn)?;
        self.heap.nodes[node].block_containing(mfn)
    }

    /// I7 for one owned frame: an M2P entry, if any, is mapped back to this frame.
    fn check_m2p_inverse(&self, mfn: u64, owner: Owner, out: &mut Vec<Violation>) {
        let gfn = self.frames.m2p(mfn);
        if gfn == INVALID_M2P_ENTRY {
            return;
        }
        let Owner::Dom(dom) = owner else {
            violation(out, "mem.xen_frame_in_physmap", format!("{mfn:#x}"));
            return;
        };
        let back = self.doms.get(&dom).and_then(|d| d.p2m.lookup(gfn));
        if back.map(|e| e.mfn) != Some(mfn) {
            violation(
                out,
                "mem.m2p_p2m",
                format!("{mfn:#x} -> {gfn:#x} -> {back:?}"),
            );
        }
    }

    /// I7 and I29 for one P2M run of RAM: owned by the domain, M2P back, one owner per
    /// superpage (checked at the run's ends and at every superpage boundary).
    fn check_p2m_run(&self, dom: DomId, gfn: u64, run: &P2mRun, out: &mut Vec<Violation>) {
        if !run.ty.is_ram() {
            return;
        }
        let end_mfn = run.mfn + run.pages - 1;
        for mfn in [run.mfn, end_mfn] {
            if self.frames.owner(mfn) != Some(Owner::Dom(dom)) {
                violation(
                    out,
                    "mem.p2m_owner",
                    format!("{dom:?} {gfn:#x} -> {mfn:#x}"),
                );
            }
            let expect = gfn + (mfn - run.mfn);
            if self.frames.m2p(mfn) != expect {
                violation(out, "mem.p2m_m2p", format!("{dom:?} {gfn:#x} -> {mfn:#x}"));
            }
        }
        // A run is one frame run when the frames continue it; otherwise every superpage
        // leaf must still sit inside one owner's run.
        let (start, frame_run) = match self.frames.run_at(run.mfn) {
            Some(found) => found,
            None => return,
        };
        if start + frame_run.pages > end_mfn || run.leaf_order == 0 {
            return;
        }
        let size = 1u64 << run.leaf_order;
        let mut leaf = run.mfn;
        while leaf < end_mfn {
            let whole = self
                .frames
                .run_at(leaf)
                .is_some_and(|(s, r)| s + r.pages >= leaf + size && r.owner == Owner::Dom(dom));
            if !whole {
                violation(
                    out,
                    "mem.superpage_owner",
                    format!("{dom:?} leaf {leaf:#x}"),
                );
            }
            leaf += size;
        }
    }

    /// I5 over every node.
    fn check_buddies(&self, out: &mut Vec<Violation>) {
        for (node, heap) in self.heap.nodes.iter().enumerate() {
            let (pages_by_zone, listed) = heap.recount();
            if listed != heap.blocks().len() {
                violation(
                    out,
                    "mem.buddy_lists",
                    format!("node {node}: {listed} listed"),
                );
            }
            for (zone, pages) in pages_by_zone.iter().enumerate() {
                let zone = u8::try_from(zone).unwrap_or(u8::MAX);
                if *pages != heap.avail_zone_pages(zone) {
                    violation(out, "mem.buddy_avail", format!("node {node} zone {zone}"));
                }
            }
            for mfn in heap.blocks().keys() {
                if let Some(fault) = heap.block_fault(*mfn) {
                    violation(out, "mem.buddy_block", format!("{mfn:#x}: {fault}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Gfn;
    use crate::memory::heap::AllocFlags;

    fn d1() -> DomId {
        DomId::new(1).expect("valid domid")
    }

    /// A host of `pages` with d1 holding one 2 MiB extent at GFN 0; returns its MFN.
    fn host_with_guest(pages: u64) -> (Memory, u64) {
        let mut mem = Memory::new(&[pages], 256);
        // From here on the checker sees only what changed (on hosts above the sweep size).
        mem.clear_journal();
        mem.add_domain(d1());
        assert_eq!(mem.set_max_pages(d1(), 1024), Ok(()));
        let got = mem.populate(d1(), Gfn::new(0), 9, AllocFlags::default());
        let mfn = got.map_or(0, |g| g.mfn.raw());
        (mem, mfn)
    }

    fn broken(mem: &Memory) -> Vec<&'static str> {
        let mut out = Vec::new();
        let tot = mem.dom(d1()).map_or(0, |m| m.tot_pages);
        mem.check_invariants(&[(d1(), tot)], &mut out);
        out.into_iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn host_smaller_than_xen_reserve_is_all_xen_and_consistent() {
        // 100 pages, Xen asks for 5000: Xen gets the host, nothing is free.
        let mem = Memory::new(&[100], 5000);
        assert_eq!(mem.xen_pages(), 100);
        assert_eq!(mem.free_pages(), 0);
        let mut out = Vec::new();
        mem.check_invariants(&[], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn consistent_guest_passes() {
        let (mem, _) = host_with_guest(4096);
        assert!(broken(&mem).is_empty());
    }

    #[test]
    fn m2p_pointing_elsewhere_is_caught_frame_by_frame() {
        // 16 MiB host: checked frame by frame.
        let (mut mem, mfn) = host_with_guest(4096);
        mem.frames.set_m2p(mfn + 3, 1, 77);
        assert!(broken(&mem).contains(&"mem.m2p_p2m"));
    }

    #[test]
    fn m2p_pointing_elsewhere_is_caught_per_extent_on_large_host() {
        // 1 GiB host: only the journal's ranges are checked.
        let (mut mem, mfn) = host_with_guest(1 << 18);
        mem.frames.set_m2p(mfn, 1, 77);
        assert!(broken(&mem).contains(&"mem.p2m_m2p"));
    }

    #[test]
    fn frame_both_owned_and_free_is_caught() {
        let (mut mem, mfn) = host_with_guest(4096);
        let node = &mut mem.heap.nodes[0];
        node.free(mfn, 0, false);
        assert!(broken(&mem).contains(&"mem.owned_and_free"));
    }
}
