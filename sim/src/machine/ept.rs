//! The simulated second-level translation hardware: per-domain EPT leaves as the core
//! programs them through `Platform::ept_write`, the translation a guest access sees, and
//! INVEPT semantics (a write is visible to walks only after the domain's next
//! invalidation, as with a hardware TLB holding the old translation).
//!
//! Follows the Intel SDM's EPT walk (4 KiB, 2 MiB and 1 GiB leaves) and the entry fields
//! xensim models (`specs/memory-iommu-migration.md` §2.3).
//!
//! # Invariants
//! - A leaf's guest frame and machine frame are aligned to its order.
//! - At most one committed leaf covers a guest frame.

use std::collections::BTreeMap;

use hypervisor_model::ids::{DomId, Gfn, Mfn};
use hypervisor_model::platform::{EptEntry, MapAccess};

/// Leaf orders the hardware supports: 4 KiB, 2 MiB, 1 GiB.
pub const EPT_ORDERS: [u8; 3] = [0, 9, 18];

/// A bad EPT write: what the hardware would reject as a misconfiguration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EptError {
    /// The order is not 0, 9 or 18.
    #[error("EPT leaf order {order} is not 0, 9 or 18")]
    BadOrder {
        /// The order given.
        order: u8,
    },
    /// The guest or machine frame is not aligned to the order.
    #[error("EPT leaf {gfn:#x} -> {mfn:#x} is not aligned to order {order}")]
    Misaligned {
        /// Guest frame.
        gfn: u64,
        /// Machine frame.
        mfn: u64,
        /// Order.
        order: u8,
    },
    /// A new leaf overlaps a leaf of another size.
    #[error("EPT leaf at {gfn:#x} overlaps an existing leaf")]
    Overlap {
        /// Guest frame.
        gfn: u64,
    },
}

/// Where a guest frame maps, as a walk finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The machine frame.
    pub mfn: Mfn,
    /// Access rights of the leaf.
    pub access: MapAccess,
    /// Order of the leaf that mapped it.
    pub order: u8,
}

/// Leaf ranges remembered for the incremental checker between two inputs; past it the
/// checker compares the changed domains whole.
pub const TOUCHED_LEAVES_MAX: usize = 4096;

/// EPT tables of every domain of one host.
#[derive(Debug, Default)]
pub struct EptTables {
    /// Leaves walks see, by (domain, first guest frame).
    committed: BTreeMap<(DomId, Gfn), EptEntry>,
    /// Writes not yet made visible by an INVEPT, in order.
    pending: Vec<(DomId, Gfn, Option<EptEntry>)>,
    /// INVEPTs executed.
    invalidation_count: u64,
    /// Guest ranges committed writes changed since [`EptTables::clear_touched`]:
    /// (domain, first frame, frames).
    touched: Vec<(DomId, Gfn, u64)>,
    /// Domains whose changes overflowed `touched`.
    touched_overflow: Vec<DomId>,
}

impl EptTables {
    /// Programs a leaf; it becomes visible at the next [`EptTables::invalidate`] of `dom`.
    pub fn write(&mut self, dom: DomId, gfn: Gfn, entry: Option<EptEntry>) -> Result<(), EptError> {
        if let Some(e) = entry {
            if !EPT_ORDERS.contains(&e.order) {
                return Err(EptError::BadOrder { order: e.order });
            }
            let mask = (1u64 << e.order) - 1;
            if gfn.raw() & mask != 0 || e.mfn.raw() & mask != 0 {
                return Err(EptError::Misaligned {
                    gfn: gfn.raw(),
                    mfn: e.mfn.raw(),
                    order: e.order,
                });
            }
        }
        self.pending.push((dom, gfn, entry));
        Ok(())
    }

    /// INVEPT: every pending write of `dom` becomes visible, in write order.
    pub fn invalidate(&mut self, dom: DomId) -> Result<(), EptError> {
        self.invalidation_count += 1;
        let (mine, others): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|(d, _, _)| *d == dom);
        self.pending = others;
        for (d, gfn, entry) in mine {
            let old_order = self.committed.get(&(d, gfn)).map(|e| e.order);
            let order = entry.map(|e| e.order).max(old_order).unwrap_or(0);
            self.touch(d, gfn, 1u64 << order);
            match entry {
                None => {
                    self.committed.remove(&(d, gfn));
                }
                Some(e) => {
                    if self.overlaps(d, gfn, e.order) {
                        return Err(EptError::Overlap { gfn: gfn.raw() });
                    }
                    self.committed.insert((d, gfn), e);
                }
            }
        }
        Ok(())
    }

    fn touch(&mut self, dom: DomId, gfn: Gfn, pages: u64) {
        if self.touched.len() < TOUCHED_LEAVES_MAX {
            self.touched.push((dom, gfn, pages));
        } else if !self.touched_overflow.contains(&dom) {
            self.touched_overflow.push(dom);
        }
    }

    /// Forgets the changed ranges (the start of a new input).
    pub fn clear_touched(&mut self) {
        self.touched.clear();
        self.touched_overflow.clear();
    }

    /// Ranges changed since the last [`EptTables::clear_touched`], and the domains
    /// whose changes were too many to list.
    pub fn touched(&self) -> (&[(DomId, Gfn, u64)], &[DomId]) {
        (&self.touched, &self.touched_overflow)
    }

    /// Committed leaves.
    pub fn leaf_count(&self) -> usize {
        self.committed.len()
    }

    /// The domains with committed leaves, in order.
    pub fn domains(&self) -> Vec<DomId> {
        let mut doms: Vec<DomId> = self.committed.keys().map(|(d, _)| *d).collect();
        doms.dedup();
        doms
    }

    /// Committed leaves of `dom` covering any frame of `[gfn, gfn + pages)`, in order.
    pub fn leaves_in(&self, dom: DomId, gfn: Gfn, pages: u64) -> Vec<(Gfn, EptEntry)> {
        let mut out = Vec::new();
        if let Some((start, entry)) = self.lookup(dom, gfn) {
            if start != gfn {
                out.push((start, *entry));
            }
        }
        let last = gfn
            .checked_add(pages.saturating_sub(1))
            .unwrap_or(Gfn::new(u64::MAX));
        out.extend(
            self.committed
                .range((dom, gfn)..=(dom, last))
                .map(|((_, start), entry)| (*start, *entry)),
        );
        out
    }

    /// True if a committed leaf other than the one at `gfn` covers any frame of the range.
    fn overlaps(&self, dom: DomId, gfn: Gfn, order: u8) -> bool {
        let last = gfn
            .checked_add((1u64 << order) - 1)
            .unwrap_or(Gfn::new(u64::MAX));
        let before = self.lookup(dom, gfn).is_some_and(|(start, _)| start != gfn);
        let inside = self
            .committed
            .range((dom, gfn)..=(dom, last))
            .any(|((_, start), _)| *start != gfn);
        before || inside
    }

    fn lookup(&self, dom: DomId, gfn: Gfn) -> Option<(Gfn, &EptEntry)> {
        let ((d, start), entry) = self.committed.range(..=(dom, gfn)).next_back()?;
        let covers = *d == dom && gfn.raw() - start.raw() < (1u64 << entry.order);
        covers.then_some((*start, entry))
    }

    /// The walk of a guest access to `gfn` of `dom`, or `None` (an EPT violation).
    pub fn translate(&self, dom: DomId, gfn: Gfn) -> Option<Translation> {
        let (start, entry) = self.lookup(dom, gfn)?;
        let offset = gfn.raw() - start.raw();
        let mfn = entry.mfn.checked_add(offset)?;
        Some(Translation {
            mfn,
            access: entry.access,
            order: entry.order,
        })
    }

    /// INVEPTs executed so far.
    pub fn invalidation_count(&self) -> u64 {
        self.invalidation_count
    }
}

#[cfg(test)]
mod tests {
    use super::{EptError, EptTables};
    use hypervisor_model::ids::{DomId, Gfn, Mfn};
    use hypervisor_model::platform::{EptEntry, MapAccess};

    const RW: MapAccess = MapAccess {
        read: true,
        write: true,
        execute: false,
    };

    fn d1() -> DomId {
        DomId::new(1).expect("d1")
    }

    fn leaf(mfn: u64, order: u8) -> Option<EptEntry> {
        Some(EptEntry {
            mfn: Mfn::new(mfn),
            order,
            access: RW,
        })
    }

    #[test]
    fn write_is_invisible_until_invept() {
        let mut ept = EptTables::default();
        assert_eq!(ept.write(d1(), Gfn::new(5), leaf(0x100, 0)), Ok(()));
        assert_eq!(ept.translate(d1(), Gfn::new(5)), None);
    }

    #[test]
    fn superpage_translates_offset_within_leaf() {
        // A 2 MiB leaf at gfn 0x200 -> mfn 0x4000 maps gfn 0x203 to mfn 0x4003.
        let mut ept = EptTables::default();
        assert_eq!(ept.write(d1(), Gfn::new(0x200), leaf(0x4000, 9)), Ok(()));
        assert_eq!(ept.invalidate(d1()), Ok(()));
        let walk = ept.translate(d1(), Gfn::new(0x203)).map(|t| t.mfn);
        assert_eq!(walk, Some(Mfn::new(0x4003)));
        assert_eq!(ept.translate(d1(), Gfn::new(0x400)), None);
    }

    #[test]
    fn misaligned_superpage_is_rejected() {
        let mut ept = EptTables::default();
        let result = ept.write(d1(), Gfn::new(0x201), leaf(0x4000, 9));
        assert_eq!(
            result,
            Err(EptError::Misaligned {
                gfn: 0x201,
                mfn: 0x4000,
                order: 9
            })
        );
    }

    #[test]
    fn small_leaf_inside_superpage_is_an_overlap() {
        let mut ept = EptTables::default();
        assert_eq!(ept.write(d1(), Gfn::new(0x200), leaf(0x4000, 9)), Ok(()));
        assert_eq!(ept.write(d1(), Gfn::new(0x210), leaf(0x9000, 0)), Ok(()));
        assert_eq!(ept.invalidate(d1()), Err(EptError::Overlap { gfn: 0x210 }));
    }

    #[test]
    fn removal_unmaps_after_invept() {
        let mut ept = EptTables::default();
        assert_eq!(ept.write(d1(), Gfn::new(7), leaf(0x70, 0)), Ok(()));
        assert_eq!(ept.invalidate(d1()), Ok(()));
        assert_eq!(ept.write(d1(), Gfn::new(7), None), Ok(()));
        assert_eq!(ept.invalidate(d1()), Ok(()));
        assert_eq!(ept.translate(d1(), Gfn::new(7)), None);
    }
}
