//! The EPT as the core programs it: the P2M's leaf changes of HAP domains written to the
//! platform (`ept_set_entry`) and followed by one INVEPT per domain (`ept_sync_domain`).
//!
//! Follows xen/arch/x86/mm/p2m-ept.c (`ept_set_entry` writes the leaf for each P2M change,
//! a split writes the new table's 512 entries; `ept_sync_domain` flushes after changes).
//!
//! # Invariants
//! - After every input, the platform's EPT of each HAP domain holds exactly the present
//!   leaves of its P2M (the sim's checker compares them).
//!
//! xensim differs: Xen flushes only when it weakened or removed a present entry; xensim
//! flushes once per changed domain at the end of each input (the walker sees no write
//! before INVEPT, so every change needs one), which is at least as often as Xen.

use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, Gfn, Mfn};
use crate::memory::hap::ept_access;
use crate::memory::p2m::LeafChange;
use crate::platform::{EptEntry, Platform};

impl Hypervisor {
    /// Writes every waiting P2M leaf change to the platform's EPT, then INVEPT per domain.
    /// Runs after every input and mostly finds nothing: the test stays inline (`always`:
    /// `handle` is too large for the inliner's own choice).
    #[inline(always)]
    pub(crate) fn ept_flush<P: Platform + ?Sized>(&mut self, p: &mut P) {
        if self.memory.has_leaf_changes() {
            self.ept_write_changes(p);
        }
    }

    fn ept_write_changes<P: Platform + ?Sized>(&mut self, p: &mut P) {
        for (dom, log) in self.memory.take_leaf_changes() {
            if write_leaves(dom, &log, p) > 0 {
                p.ept_invalidate(dom);
            }
        }
        debug_assert!(!self.memory.has_leaf_changes());
    }
}

/// Writes one domain's leaf changes in order; returns the writes made. A leaf that goes
/// and is replaced at once by a present leaf at the same GFN (a split's first child, a
/// type change) is one write.
fn write_leaves<P: Platform + ?Sized>(dom: DomId, log: &[LeafChange], p: &mut P) -> u64 {
    let mut writes = 0;
    for (index, change) in log.iter().enumerate() {
        match *change {
            LeafChange::Gone { gfn, ty, .. } => {
                let replaced = matches!(
                    log.get(index + 1),
                    Some(LeafChange::New { gfn: next, ty: next_ty, .. })
                        if *next == gfn && ept_access(*next_ty).is_some()
                );
                if !replaced && ept_access(ty).is_some() {
                    p.ept_write(dom, Gfn::new(gfn), None);
                    writes += 1;
                }
            }
            LeafChange::New {
                gfn,
                mfn,
                order,
                ty,
            } => {
                if let Some(access) = ept_access(ty) {
                    let entry = EptEntry {
                        mfn: Mfn::new(mfn),
                        order,
                        access,
                    };
                    p.ept_write(dom, Gfn::new(gfn), Some(entry));
                    writes += 1;
                }
            }
        }
    }
    writes
}
