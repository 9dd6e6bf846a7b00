//! Hardware-assisted paging: which domains' P2Ms are their EPTs, what each P2M type
//! lets the hardware do, and the leaf changes waiting to be written to the EPT.
//!
//! Follows xen/arch/x86/mm/p2m-ept.c (`ept_p2m_type_to_flags`: the R/W/X each type
//! produces; not-present types get no leaf) and spec `memory-iommu-migration.md` §2.1
//! and §2.3.
//!
//! # Invariants
//! - A domain is in the dirty list at most once, and only while its P2M holds logged
//!   leaf changes.
//!
//! xensim differs: the access field (`p2m_access_t`) is always rwx, and the memory type
//! (EMT/IPAT) is not part of a leaf, so misconfiguration exits are not modelled; a
//! not-present entry (PoD, `mmio_dm`, holes) is the absence of a leaf.

use alloc::vec::Vec;

use super::p2m::{LeafChange, P2mType};
use super::{MemError, Memory};
use crate::ids::DomId;
use crate::platform::MapAccess;

/// `ept_p2m_type_to_flags`: the R/W/X a leaf of type `ty` gets, or `None` when the
/// entry is not present (the hardware raises an EPT violation on any access).
pub fn ept_access(ty: P2mType) -> Option<MapAccess> {
    let (read, write, execute) = match ty {
        P2mType::RamRw | P2mType::MmioDirect => (true, true, true),
        // Read-only RAM: writes fault (log-dirty marks them, ram_ro discards them).
        P2mType::RamLogdirty | P2mType::RamRo | P2mType::RamShared => (true, false, true),
        P2mType::GrantMapRw | P2mType::MapForeign => (true, true, false),
        P2mType::GrantMapRo => (true, false, false),
        P2mType::Invalid
        | P2mType::MmioDm
        | P2mType::PopulateOnDemand
        | P2mType::RamPagingOut
        | P2mType::RamPaged
        | P2mType::RamPagingIn
        | P2mType::RamBroken
        | P2mType::IoreqServer => return None,
    };
    Some(MapAccess {
        read,
        write,
        execute,
    })
}

impl Memory {
    /// The domain uses HAP (HVM or PVH): its P2M is its EPT from now on. Called before
    /// anything is mapped.
    pub fn set_hap(&mut self, dom: DomId) -> Result<(), MemError> {
        let d = self.doms.get_mut(&dom).ok_or(MemError::UnknownDomain)?;
        d.p2m.enable_leaf_log();
        Ok(())
    }

    /// True if `dom` uses HAP.
    pub fn is_hap(&self, dom: DomId) -> bool {
        self.doms.get(&dom).is_some_and(|d| d.p2m.logs_leaves())
    }

    /// Remembers that `dom`'s P2M logged leaf changes (after every P2M change).
    pub(crate) fn note_leaves(&mut self, dom: DomId) {
        let logged = self
            .doms
            .get(&dom)
            .is_some_and(|d| d.p2m.has_leaf_changes());
        if logged && !self.leaf_dirty.contains(&dom) {
            self.leaf_dirty.push(dom);
        }
    }

    /// True if some domain's leaf changes wait for the EPT.
    pub fn has_leaf_changes(&self) -> bool {
        !self.leaf_dirty.is_empty()
    }

    /// Takes every waiting leaf change, by domain in the order the domains first changed.
    pub fn take_leaf_changes(&mut self) -> Vec<(DomId, Vec<LeafChange>)> {
        let doms = core::mem::take(&mut self.leaf_dirty);
        let mut out = Vec::with_capacity(doms.len());
        for dom in doms {
            if let Some(d) = self.doms.get_mut(&dom) {
                out.push((dom, d.p2m.take_leaf_log()));
            }
        }
        out
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

    /// A 64 MiB host with a HAP d1 allowed 8192 pages.
    fn hap_host() -> Memory {
        let mut mem = Memory::new(&[1 << 14], 256);
        mem.add_domain(d1());
        assert_eq!(mem.set_max_pages(d1(), 8192), Ok(()));
        assert_eq!(mem.set_hap(d1()), Ok(()));
        mem
    }

    #[test]
    fn logdirty_leaf_is_readable_and_executable_but_not_writable() {
        let access = ept_access(P2mType::RamLogdirty);
        assert_eq!(
            access.map(|a| (a.read, a.write, a.execute)),
            Some((true, false, true))
        );
    }

    #[test]
    fn pod_entry_has_no_leaf() {
        assert_eq!(ept_access(P2mType::PopulateOnDemand), None);
    }

    #[test]
    fn populating_a_2m_extent_logs_one_superpage_leaf() {
        let mut mem = hap_host();
        let got = mem.populate(d1(), Gfn::new(512), 9, AllocFlags::default());
        let mfn = got.map(|g| g.mfn.raw()).unwrap_or(u64::MAX);
        let changes = mem.take_leaf_changes();
        let expect = LeafChange::New {
            gfn: 512,
            mfn,
            order: 9,
            ty: P2mType::RamRw,
        };
        assert_eq!(changes, [(d1(), alloc::vec![expect])]);
        assert!(!mem.has_leaf_changes());
    }

    #[test]
    fn removing_one_page_of_a_superpage_logs_the_split_and_the_removal() {
        let mut mem = hap_host();
        let got = mem.populate(d1(), Gfn::new(0), 9, AllocFlags::default());
        assert_eq!(got.map(|g| g.scrubbed_pages), Ok(0));
        let _ = mem.take_leaf_changes();
        assert_eq!(mem.decrease(d1(), Gfn::new(7), 0), Ok(1));
        let changes = mem.take_leaf_changes();
        let log = &changes[0].1;
        // The 2 MiB leaf goes, 512 4 KiB leaves come, then leaf 7 goes.
        assert_eq!(log.len(), 1 + 512 + 1);
        assert!(matches!(
            log[0],
            LeafChange::Gone {
                gfn: 0,
                order: 9,
                ..
            }
        ));
        assert!(matches!(
            log[513],
            LeafChange::Gone {
                gfn: 7,
                order: 0,
                ..
            }
        ));
    }

    #[test]
    fn pv_domain_logs_nothing() {
        let mut mem = Memory::new(&[1 << 14], 256);
        mem.add_domain(d1());
        assert_eq!(mem.set_max_pages(d1(), 8192), Ok(()));
        let got = mem.populate(d1(), Gfn::new(0), 9, AllocFlags::default());
        assert_eq!(got.map(|g| g.scrubbed_pages), Ok(0));
        assert!(!mem.has_leaf_changes());
    }
}
