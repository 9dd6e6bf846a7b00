//! The frame table and the M2P: who owns each allocated machine frame, and which guest
//! frame its owner uses for it.
//!
//! Follows xen/include/xen/mm.h (`page_get_owner`, the `PGC_*` states) and
//! xen/arch/x86/include/asm/mm.h (`set_gpfn_from_mfn`, `get_gpfn_from_mfn`,
//! `INVALID_M2P_ENTRY`). Xen keeps one `struct page_info` and one 8-byte M2P entry per
//! frame; xensim keeps runs of frames with one owner and consecutive GFNs, so a guest
//! backed by 1 GiB superpages is a handful of runs. Free frames are not here: they are in
//! the buddy heaps, and their M2P entry reads `INVALID_M2P_ENTRY`.
//!
//! # Invariants
//! - Runs do not overlap; every run has at least one page.
//! - `owned_pages[o]` is the number of pages in runs owned by `o`.
//! - Two adjacent runs with the same owner and continuing M2P entries are one run.
//!
//! Only Xen writes the M2P; a PV guest's read-only view of it is `m2p` here.

use alloc::collections::BTreeMap;

use super::Owner;

/// `INVALID_M2P_ENTRY`: the frame is in no physmap.
pub const INVALID_M2P_ENTRY: u64 = u64::MAX;

/// A run of allocated frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRun {
    /// Frames in the run.
    pub pages: u64,
    /// Owner of every frame of the run.
    pub owner: Owner,
    /// M2P entry of the first frame (the next frames continue it), or
    /// [`INVALID_M2P_ENTRY`] for all of them.
    pub gfn: u64,
}

impl FrameRun {
    fn m2p_at(&self, offset: u64) -> u64 {
        if self.gfn == INVALID_M2P_ENTRY {
            INVALID_M2P_ENTRY
        } else {
            self.gfn + offset
        }
    }

    fn continues(&self, start: u64, next_start: u64, next: &FrameRun) -> bool {
        start + self.pages == next_start
            && self.owner == next.owner
            && self.m2p_at(self.pages) == next.gfn
    }
}

/// Every allocated frame of a host.
#[derive(Clone, Debug, Default)]
pub struct FrameTable {
    runs: BTreeMap<u64, FrameRun>,
    owned_pages: BTreeMap<Owner, u64>,
}

impl FrameTable {
    /// The run containing `mfn`: its first frame and itself.
    pub fn run_at(&self, mfn: u64) -> Option<(u64, FrameRun)> {
        let (start, run) = self.runs.range(..=mfn).next_back()?;
        (mfn < start + run.pages).then_some((*start, *run))
    }

    /// Owner of `mfn`, or `None` if it is free.
    pub fn owner(&self, mfn: u64) -> Option<Owner> {
        self.run_at(mfn).map(|(_, run)| run.owner)
    }

    /// The M2P entry of `mfn` (`get_gpfn_from_mfn`).
    pub fn m2p(&self, mfn: u64) -> u64 {
        match self.run_at(mfn) {
            Some((start, run)) => run.m2p_at(mfn - start),
            None => INVALID_M2P_ENTRY,
        }
    }

    /// Pages owned by `owner`.
    pub fn owned_pages(&self, owner: Owner) -> u64 {
        self.owned_pages.get(&owner).copied().unwrap_or(0)
    }

    /// Pages owned by anyone.
    pub fn allocated_pages(&self) -> u64 {
        self.owned_pages.values().sum()
    }

    /// All runs, by first frame.
    pub fn runs(&self) -> impl Iterator<Item = (u64, &FrameRun)> {
        self.runs.iter().map(|(start, run)| (*start, run))
    }

    /// Runs overlapping `[mfn, mfn + pages)`.
    pub fn runs_in(&self, mfn: u64, pages: u64) -> impl Iterator<Item = (u64, &FrameRun)> {
        let first = self.run_at(mfn).map_or(mfn, |(start, _)| start);
        let end = mfn.saturating_add(pages);
        self.runs
            .range(first..end)
            .map(|(start, run)| (*start, run))
    }

    /// Hands the free frames `[mfn, mfn + pages)` to `owner`, not in any physmap.
    pub fn assign(&mut self, mfn: u64, pages: u64, owner: Owner) {
        assert!(pages > 0);
        assert!(
            self.runs_in(mfn, pages).next().is_none(),
            "mfn {mfn:#x} already owned"
        );
        self.runs.insert(
            mfn,
            FrameRun {
                pages,
                owner,
                gfn: INVALID_M2P_ENTRY,
            },
        );
        *self.owned_pages.entry(owner).or_insert(0) += pages;
        self.merge_around(mfn);
    }

    /// `set_gpfn_from_mfn` for `pages` frames: `m2p[mfn + i] = gfn + i` (or all invalid).
    pub fn set_m2p(&mut self, mfn: u64, pages: u64, gfn: u64) {
        let owner = self.isolate(mfn, pages);
        self.runs.insert(mfn, FrameRun { pages, owner, gfn });
        self.merge_around(mfn);
    }

    /// Takes `[mfn, mfn + pages)` back from its owner (the frames become free) and returns
    /// the owner.
    pub fn release(&mut self, mfn: u64, pages: u64) -> Owner {
        let owner = self.isolate(mfn, pages);
        let count = self.owned_pages.get_mut(&owner).expect("owner counted");
        *count -= pages;
        if *count == 0 {
            self.owned_pages.remove(&owner);
        }
        owner
    }

    /// Removes `[mfn, mfn + pages)` from the runs, splitting the runs at its ends; the
    /// range must be one owner's. Returns the owner; the caller re-inserts what it wants.
    fn isolate(&mut self, mfn: u64, pages: u64) -> Owner {
        assert!(pages > 0);
        let end = mfn + pages;
        // The common case (ballooning page by page): one run starts at `mfn` and covers
        // the range; only its tail stays.
        if let Some(run) = self.runs.get(&mfn).filter(|r| r.pages >= pages).copied() {
            self.runs.remove(&mfn);
            if run.pages > pages {
                let tail = FrameRun {
                    pages: run.pages - pages,
                    owner: run.owner,
                    gfn: run.m2p_at(pages),
                };
                self.runs.insert(end, tail);
            }
            return run.owner;
        }
        self.split_at(mfn);
        self.split_at(end);
        let mut owner = None;
        let mut covered = 0;
        let starts: alloc::vec::Vec<u64> = self.runs.range(mfn..end).map(|(s, _)| *s).collect();
        for start in starts {
            let run = self.runs.remove(&start).expect("run listed");
            assert!(
                owner.is_none_or(|o| o == run.owner),
                "range spans two owners"
            );
            owner = Some(run.owner);
            covered += run.pages;
        }
        assert_eq!(covered, pages, "mfn {mfn:#x}: range not wholly owned");
        owner.expect("range owned")
    }

    /// Splits the run containing `at` so that a run starts at `at`.
    fn split_at(&mut self, at: u64) {
        let Some((start, run)) = self.run_at(at) else {
            return;
        };
        if start == at {
            return;
        }
        let head = at - start;
        let tail = FrameRun {
            pages: run.pages - head,
            owner: run.owner,
            gfn: run.m2p_at(head),
        };
        self.runs.insert(start, FrameRun { pages: head, ..run });
        self.runs.insert(at, tail);
    }

    /// Merges the run at `mfn` with its neighbours where they continue each other.
    fn merge_around(&mut self, mfn: u64) {
        let mut start = mfn;
        if let Some((prev_start, prev)) = self.runs.range(..mfn).next_back() {
            let run = self.runs[&mfn];
            if prev.continues(*prev_start, mfn, &run) {
                let merged = FrameRun {
                    pages: prev.pages + run.pages,
                    ..*prev
                };
                let prev_start = *prev_start;
                self.runs.remove(&mfn);
                self.runs.insert(prev_start, merged);
                start = prev_start;
            }
        }
        let run = self.runs[&start];
        let next_start = start + run.pages;
        if let Some(next) = self.runs.get(&next_start).copied() {
            if run.continues(start, next_start, &next) {
                self.runs.remove(&next_start);
                let merged = FrameRun {
                    pages: run.pages + next.pages,
                    ..run
                };
                self.runs.insert(start, merged);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DomId;

    fn dom(raw: u16) -> Owner {
        Owner::Dom(DomId::new(raw).expect("valid domid"))
    }

    #[test]
    fn m2p_of_mapped_run_continues_gfns() {
        let mut frames = FrameTable::default();
        frames.assign(512, 512, dom(1));
        frames.set_m2p(512, 512, 0);
        assert_eq!(frames.m2p(512 + 7), 7);
        assert_eq!(frames.m2p(1024), INVALID_M2P_ENTRY);
    }

    #[test]
    fn release_of_middle_page_splits_run_in_two() {
        let mut frames = FrameTable::default();
        frames.assign(512, 512, dom(1));
        frames.set_m2p(512, 512, 0);
        assert_eq!(frames.release(600, 1), dom(1));
        assert_eq!(frames.runs().count(), 2);
        assert_eq!(frames.owner(600), None);
        assert_eq!(frames.m2p(601), 89);
        assert_eq!(frames.owned_pages(dom(1)), 511);
    }

    #[test]
    fn adjacent_mapped_runs_merge() {
        let mut frames = FrameTable::default();
        frames.assign(0, 512, dom(1));
        frames.assign(512, 512, dom(1));
        frames.set_m2p(0, 512, 1024);
        frames.set_m2p(512, 512, 1536);
        assert_eq!(frames.runs().count(), 1);
    }

    #[test]
    fn runs_of_two_owners_stay_apart() {
        let mut frames = FrameTable::default();
        frames.assign(0, 512, dom(1));
        frames.assign(512, 512, dom(2));
        assert_eq!(frames.runs().count(), 2);
        assert_eq!(frames.owned_pages(dom(2)), 512);
    }
}
