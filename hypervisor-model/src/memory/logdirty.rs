//! Log-dirty mode of a HAP domain: its RAM write-protected (`ram_logdirty`), the dirty
//! bitmap, and the toolstack's CLEAN and PEEK.
//!
//! Follows xen/arch/x86/mm/paging.c (`paging_log_dirty_enable` refusing a second enable,
//! `paging_mark_pfn_dirty` counting newly set bits in `dirty_count`,
//! `paging_log_dirty_op` returning the bitmap and the stats, and zeroing both on CLEAN)
//! and xen/arch/x86/mm/hap/hap.c (`hap_enable_log_dirty`, `hap_clean_dirty_bitmap`,
//! `hap_disable_log_dirty`: global type changes ram_rw ↔ ram_logdirty). Spec §2.5.
//!
//! # Invariants
//! - While log-dirty is on, no `ram_rw` leaf maps a GFN that is not in the bitmap
//!   (a write either faults and marks it, or it was marked when it became writable).
//! - `dirty_count` equals the bits set since the last CLEAN.
//!
//! xensim differs: the type change is applied to every leaf at once (Xen marks the EPT
//! root stale and fixes leaves lazily through misconfiguration exits); PML is not
//! modelled (every first write to a page is a violation); `fault_count` stays 0 as with
//! HAP on Xen; no passthrough exists yet, so the `-EINVAL` for assigned devices cannot
//! arise.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::p2m::P2mType;
use super::{MemError, Memory, Touched};
use crate::ids::DomId;

/// One domain's dirty log (`d->arch.paging.log_dirty`).
#[derive(Clone, Debug, Default)]
pub struct DirtyLog {
    /// GFNs marked since the last CLEAN.
    dirty: BTreeSet<u64>,
    /// `log_dirty.dirty_count`.
    pub dirty_count: u64,
    /// `log_dirty.fault_count` (shadow paging only; 0 with HAP).
    pub fault_count: u64,
}

/// What `XEN_DOMCTL_SHADOW_OP_CLEAN`/`PEEK` hands back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyReport {
    /// The bitmap, one bit per GFN from 0, in 64-bit words (bit `g % 64` of word
    /// `g / 64`), covering `pages` GFNs.
    pub bitmap: Vec<u64>,
    /// GFNs the bitmap covers (`sc->pages`).
    pub pages: u64,
    /// `stats.dirty_count`.
    pub dirty_count: u64,
    /// `stats.fault_count`.
    pub fault_count: u64,
}

impl Memory {
    /// `XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY`: every `ram_rw` leaf becomes `ram_logdirty`.
    pub fn logdirty_enable(&mut self, dom: DomId) -> Result<u64, MemError> {
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        if d.logdirty.is_some() || !d.p2m.logs_leaves() {
            return Err(MemError::LogDirtyState);
        }
        d.logdirty = Some(DirtyLog::default());
        Ok(self.retype_all(dom, P2mType::RamRw, P2mType::RamLogdirty))
    }

    /// `XEN_DOMCTL_SHADOW_OP_OFF`: `ram_logdirty` back to `ram_rw`, the log freed.
    pub fn logdirty_disable(&mut self, dom: DomId) -> Result<u64, MemError> {
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        if d.logdirty.take().is_none() {
            return Err(MemError::LogDirtyState);
        }
        Ok(self.retype_all(dom, P2mType::RamLogdirty, P2mType::RamRw))
    }

    /// True if `dom` is in log-dirty mode.
    pub fn logdirty_active(&self, dom: DomId) -> bool {
        self.doms.get(&dom).is_some_and(|d| d.logdirty.is_some())
    }

    /// `paging_mark_pfn_dirty` (a no-op outside log-dirty mode).
    pub fn logdirty_mark(&mut self, dom: DomId, gfn: u64) {
        let Some(log) = self.doms.get_mut(&dom).and_then(|d| d.logdirty.as_mut()) else {
            return;
        };
        if log.dirty.insert(gfn) {
            log.dirty_count += 1;
        }
    }

    /// A write faulted on a `ram_logdirty` GFN: mark it, make its 4 KiB leaf `ram_rw`
    /// (splitting a superpage first). False if `gfn` is not `ram_logdirty`.
    pub fn logdirty_write_fault(&mut self, dom: DomId, gfn: u64) -> bool {
        let Some(d) = self.doms.get_mut(&dom) else {
            return false;
        };
        let logdirty = d
            .p2m
            .lookup(gfn)
            .is_some_and(|e| e.ty == P2mType::RamLogdirty);
        if !logdirty {
            return false;
        }
        let changed = d
            .p2m
            .change_type(gfn, 1, P2mType::RamLogdirty, P2mType::RamRw);
        debug_assert_eq!(changed, 1);
        self.logdirty_mark(dom, gfn);
        self.pod_note_write(dom, gfn);
        self.note_leaves(dom);
        self.touch(Touched::Guest { dom, gfn, pages: 1 });
        true
    }

    /// `XEN_DOMCTL_SHADOW_OP_CLEAN` (`clean`) or `PEEK`: the bitmap of the first
    /// `pages` GFNs and the stats; CLEAN zeroes them and write-protects the RAM again.
    pub fn logdirty_op(
        &mut self,
        dom: DomId,
        pages: u64,
        clean: bool,
    ) -> Result<DirtyReport, MemError> {
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        let log = d.logdirty.as_mut().ok_or(MemError::LogDirtyState)?;
        // sc->pages is capped at the P2M's size.
        let p2m_pages = d.p2m.max_mapped_gfn().map_or(0, |g| g + 1);
        let pages = pages.min(p2m_pages);
        let words = usize::try_from(pages.div_ceil(64)).unwrap_or(0);
        let mut bitmap = alloc::vec![0u64; words];
        for gfn in log.dirty.range(..pages) {
            let word = usize::try_from(gfn / 64).unwrap_or(usize::MAX);
            if let Some(w) = bitmap.get_mut(word) {
                *w |= 1 << (gfn % 64);
            }
        }
        let report = DirtyReport {
            bitmap,
            pages,
            dirty_count: log.dirty_count,
            fault_count: log.fault_count,
        };
        if clean {
            let kept: BTreeSet<u64> = log.dirty.split_off(&pages);
            log.dirty = kept;
            log.dirty_count = 0;
            log.fault_count = 0;
            self.retype_all(dom, P2mType::RamRw, P2mType::RamLogdirty);
        }
        Ok(report)
    }

    /// The log-dirty invariant for the checker: every `ram_rw` GFN of a domain in
    /// log-dirty mode is marked (a write to it would not fault). Returns the first
    /// unmarked one.
    pub(super) fn logdirty_unmarked_rw(&self, dom: DomId) -> Option<u64> {
        let d = self.doms.get(&dom)?;
        let log = d.logdirty.as_ref()?;
        d.p2m
            .runs()
            .filter(|(_, run)| run.ty == P2mType::RamRw)
            .flat_map(|(start, run)| start..start + run.pages)
            .find(|gfn| !log.dirty.contains(gfn))
    }

    /// `p2m_change_entry_type_global`: every `from` leaf of `dom` becomes `to`.
    fn retype_all(&mut self, dom: DomId, from: P2mType, to: P2mType) -> u64 {
        let Some(d) = self.doms.get_mut(&dom) else {
            return 0;
        };
        let Some(last) = d.p2m.last_gfn() else {
            return 0;
        };
        let changed = d.p2m.change_type(0, last + 1, from, to);
        self.note_leaves(dom);
        self.touch(Touched::Guest {
            dom,
            gfn: 0,
            pages: last + 1,
        });
        changed
    }
}
