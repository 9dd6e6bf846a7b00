//! The domain builder's memory: the claim, populating the physmap extent by extent, and
//! handing pages back, each change mirrored into the domain's `tot_pages` and traced.
//!
//! Follows tools/libs/guest/xg_dom_x86.c: `meminit_pv` (claim of the total, 2 MiB
//! extents, then 4 KiB pages for the rest) and `meminit_hvm` (claim, then at each GFN the
//! largest of 1 GiB, 2 MiB and 4 KiB that the GFN's alignment and the remaining count
//! allow, falling back to the next smaller size when Xen has no block that large), and
//! xen/common/memory.c (`max_order`: the control domain populating for a guest may ask
//! for 1 GiB). The claim is cancelled when population ends (`xc_domain_claim_pages(0)`).
//!
//! xensim differs: the HVM VGA hole (GFNs 0xA0–0xBF) is populated like the rest, and no
//! special pages (console, XenStore, ioreq) are allocated beyond the guest's memory.
//!
//! # Invariants
//! - A domain's `tot_pages` in the domain table equals the allocator's after every change.

use alloc::vec::Vec;

use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, Gfn};
use crate::memory::heap::AllocFlags;
use crate::memory::{MemError, PAGE_ORDER_1G, PAGE_ORDER_2M, PAGE_ORDER_4K};
use crate::platform::Platform;
use crate::toolstack::config::GuestType;
use crate::trace::TraceEvent;

/// The largest extent the builder asks for: 2 MiB for PV (`meminit_pv`), 1 GiB for
/// HVM and PVH (`meminit_hvm`) and for dom0.
pub fn max_extent_order(guest_type: GuestType, is_dom0: bool) -> u8 {
    match guest_type {
        GuestType::Pv if !is_dom0 => PAGE_ORDER_2M,
        _ => PAGE_ORDER_1G,
    }
}

/// The extent `meminit_*` asks for at `gfn` with `pages_left` to go.
fn extent_order(gfn: u64, pages_left: u64, max_order: u8) -> u8 {
    [PAGE_ORDER_1G, PAGE_ORDER_2M]
        .into_iter()
        .filter(|order| *order <= max_order)
        .find(|order| {
            let size = 1u64 << order;
            gfn & (size - 1) == 0 && pages_left >= size
        })
        .unwrap_or(PAGE_ORDER_4K)
}

impl Hypervisor {
    /// The idle loops' scrubbing since the last memory operation (`scrub_free_pages`, at
    /// `idle_scrub_pages_per_ms` over the host): dirty free blocks become clean, so fewer
    /// allocations pay for scrubbing synchronously.
    ///
    /// xensim differs: the idle pCPUs are not asked; the host-wide rate is applied lazily,
    /// before each allocation or free by the builder, a destroy or a balloon driver, and
    /// earned scrubbing is banked up to the dirty pages there are (a whole block is
    /// scrubbed at once).
    pub(crate) fn scrub_catch_up(&mut self, now: crate::time::STime) {
        let (banked, last) = self.scrub_credit;
        let elapsed_ns = u64::try_from(now.since(last).as_ns()).unwrap_or(0);
        let earned = elapsed_ns.saturating_mul(self.costs.idle_scrub_pages_per_ms) / 1_000_000;
        let credit = banked
            .saturating_add(earned)
            .min(self.memory.need_scrub_pages());
        let scrubbed = self.memory.scrub_idle(credit);
        assert!(scrubbed <= credit);
        self.scrub_credit = (credit - scrubbed, now);
    }

    /// Populates `dom` from `gfn` with at least `batch_pages` (whole extents, never more
    /// than `pages_left`); returns the pages populated and the pages Xen had to scrub
    /// first, or the error that stopped it (with what was populated before it still in
    /// place).
    pub(crate) fn populate_batch<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        gfn: u64,
        pages_left: u64,
        batch_pages: u64,
        p: &mut P,
    ) -> Result<(u64, u64), MemError> {
        self.scrub_catch_up(p.now());
        let (guest_type, is_dom0) = self.domains.get(dom).map_or((GuestType::Pv, false), |d| {
            (d.guest_type, dom == DomId::DOM0)
        });
        let max_order = max_extent_order(guest_type, is_dom0);
        let mut done = 0;
        let mut result = Ok(());
        let mut extents = Vec::new();
        let mut scrubbed_pages = 0;
        while done < batch_pages.min(pages_left) {
            let at = gfn + done;
            let mut order = extent_order(at, pages_left - done, max_order);
            let populated = loop {
                match self
                    .memory
                    .populate(dom, Gfn::new(at), order, AllocFlags::default())
                {
                    Err(MemError::NoMemory) if order > PAGE_ORDER_4K => {
                        order = if order == PAGE_ORDER_1G {
                            PAGE_ORDER_2M
                        } else {
                            PAGE_ORDER_4K
                        };
                    }
                    other => break other,
                }
            };
            match populated {
                Ok(got) => {
                    scrubbed_pages += got.scrubbed_pages;
                    extents.push((at, got.mfn.raw(), order));
                    done += 1u64 << order;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if !extents.is_empty() {
            p.trace(&TraceEvent::Extents { dom, extents });
        }
        self.memory_changed(dom, i64::try_from(done).unwrap_or(i64::MAX), p);
        result.map(|()| (done, scrubbed_pages))
    }

    /// `domain_relinquish_resources` for up to `budget_pages`; returns the pages freed.
    pub(crate) fn relinquish_pages<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        budget_pages: u64,
        p: &mut P,
    ) -> u64 {
        // Scrubbing earned so far went to the memory that was dirty so far.
        self.scrub_catch_up(p.now());
        let freed = self.memory.relinquish(dom, budget_pages);
        self.memory_changed(dom, -i64::try_from(freed).unwrap_or(i64::MAX), p);
        freed
    }

    /// Mirrors the allocator's `tot_pages` into the domain and traces the change.
    pub(crate) fn memory_changed<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        delta_pages: i64,
        p: &mut P,
    ) {
        let tot_pages = self.memory.dom(dom).map_or(0, |m| m.tot_pages);
        if let Some(d) = self.domains.get_mut(dom) {
            d.tot_pages = tot_pages;
        }
        if delta_pages != 0 {
            p.trace(&TraceEvent::Memory {
                dom,
                delta_pages,
                free_pages: self.memory.free_pages(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hvm_extent_at_aligned_gfn_is_1g() {
        assert_eq!(extent_order(0, 1 << 20, PAGE_ORDER_1G), PAGE_ORDER_1G);
    }

    #[test]
    fn pv_extent_is_at_most_2m() {
        assert_eq!(extent_order(0, 1 << 20, PAGE_ORDER_2M), PAGE_ORDER_2M);
    }

    #[test]
    fn tail_below_2m_is_4k() {
        // 511 pages left: no 2 MiB extent fits.
        assert_eq!(extent_order(1 << 9, 511, PAGE_ORDER_1G), PAGE_ORDER_4K);
    }

    #[test]
    fn misaligned_gfn_uses_2m_until_aligned() {
        // GFN 512 is 2 MiB but not 1 GiB aligned.
        assert_eq!(extent_order(512, 1 << 20, PAGE_ORDER_1G), PAGE_ORDER_2M);
    }
}
