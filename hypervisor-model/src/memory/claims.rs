//! Claims: `XENMEM_claim_pages`, memory staked for a domain being built so that a
//! parallel build cannot make it fail half-way.
//!
//! Follows xen/common/page_alloc.c (`domain_set_outstanding_pages`; the consumption is in
//! `alloc_heap_pages`, see `heap.rs` and [`Memory::populate`]). Spec §1.5.
//!
//! # Invariants
//! - `outstanding_claims` is the sum of the domains' `outstanding_pages`.
//! - A claim never exceeds what was free and unclaimed when it was staked.

use super::{MemError, Memory};
use crate::ids::DomId;

impl Memory {
    /// `domain_set_outstanding_pages(d, pages)`: `pages` is the domain's total wanted, not
    /// an increment; 0 cancels the claim.
    pub fn claim_pages(&mut self, dom: DomId, pages: u64) -> Result<(), MemError> {
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        if pages == 0 {
            self.heap.outstanding_claims -= d.outstanding_pages;
            d.outstanding_pages = 0;
            return Ok(());
        }
        if d.outstanding_pages != 0 {
            return Err(MemError::ClaimExists);
        }
        if pages <= d.tot_pages || pages > d.max_pages {
            return Err(MemError::ClaimInvalid);
        }
        let claim = pages - d.tot_pages;
        let unclaimed = self
            .heap
            .total_avail_pages
            .saturating_sub(self.heap.outstanding_claims);
        if claim > unclaimed {
            return Err(MemError::ClaimNoMemory);
        }
        d.outstanding_pages = claim;
        self.heap.outstanding_claims += claim;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Gfn;
    use crate::memory::heap::AllocFlags;

    /// One 16 MiB node; Xen keeps the first 1 MiB.
    fn host() -> Memory {
        Memory::new(&[4096], 256)
    }

    fn dom(raw: u16) -> DomId {
        DomId::new(raw).expect("valid domid")
    }

    #[test]
    fn claim_is_total_minus_tot_pages() {
        let mut mem = host();
        mem.add_domain(dom(1));
        assert_eq!(mem.set_max_pages(dom(1), 1024), Ok(()));
        let got = mem.populate(dom(1), Gfn::new(0), 0, AllocFlags::default());
        assert_eq!(got.map(|g| g.scrubbed_pages), Ok(0));
        assert_eq!(mem.claim_pages(dom(1), 10), Ok(()));
        // One page is owned already, so nine are staked.
        assert_eq!(mem.outstanding_claims(), 9);
    }

    #[test]
    fn second_claim_is_refused() {
        let mut mem = host();
        mem.add_domain(dom(1));
        assert_eq!(mem.set_max_pages(dom(1), 1024), Ok(()));
        assert_eq!(mem.claim_pages(dom(1), 10), Ok(()));
        assert_eq!(mem.claim_pages(dom(1), 20), Err(MemError::ClaimExists));
    }

    #[test]
    fn claim_beyond_unclaimed_memory_is_enomem() {
        let mut mem = host();
        for raw in [1, 2] {
            mem.add_domain(dom(raw));
            assert_eq!(mem.set_max_pages(dom(raw), 4096), Ok(()));
        }
        // 3840 pages are free: 3000 for d1 leaves 840 for d2.
        assert_eq!(mem.claim_pages(dom(1), 3000), Ok(()));
        assert_eq!(mem.claim_pages(dom(2), 841), Err(MemError::ClaimNoMemory));
        assert_eq!(mem.claim_pages(dom(2), 840), Ok(()));
    }

    #[test]
    fn claimed_memory_is_invisible_to_other_domains() {
        let mut mem = host();
        for raw in [1, 2] {
            mem.add_domain(dom(raw));
            assert_eq!(mem.set_max_pages(dom(raw), 4096), Ok(()));
        }
        assert_eq!(mem.claim_pages(dom(1), 3840), Ok(()));
        let other = mem.populate(dom(2), Gfn::new(0), 0, AllocFlags::default());
        assert_eq!(other, Err(MemError::NoMemory));
        let own = mem.populate(dom(1), Gfn::new(0), 9, AllocFlags::default());
        assert_eq!(own.map(|g| g.scrubbed_pages), Ok(0));
        assert_eq!(mem.outstanding_claims(), 3840 - 512);
    }

    #[test]
    fn cancel_returns_the_rest_of_the_claim() {
        let mut mem = host();
        mem.add_domain(dom(1));
        assert_eq!(mem.set_max_pages(dom(1), 1024), Ok(()));
        assert_eq!(mem.claim_pages(dom(1), 1000), Ok(()));
        assert_eq!(mem.claim_pages(dom(1), 0), Ok(()));
        assert_eq!(mem.outstanding_claims(), 0);
    }
}
