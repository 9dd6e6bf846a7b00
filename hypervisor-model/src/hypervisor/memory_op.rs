//! The guest's reservation hypercalls (`HYPERVISOR_memory_op`): `XENMEM_populate_physmap`
//! and `XENMEM_decrease_reservation`, with Xen's checks and its "extents done" result;
//! the balloon driver model (`toolstack/mem_ops.rs`) makes its batches through them.
//!
//! Follows xen/common/memory.c (`do_memory_op`: the target domain must exist and the
//! caller be privileged over it unless it is itself; `max_order`: a domU may ask for
//! 2 MiB extents (`CONFIG_DOMU_MAX_ORDER`), the control domain for 1 GiB; a PoD populate
//! may use `MAX_ORDER`; each op stops at the first extent that fails and returns the
//! extents done) and spec §1.6.
//!
//! # Invariants
//! - The result is never above the number of extents asked for; extents before the
//!   first failure are all in place.
//!
//! xensim differs: `increase_reservation` (pages without a GFN, only meaningful for PV
//! guests that map MFNs themselves) and `exchange` are not modelled — Linux's balloon
//! driver uses `populate_physmap` for every guest type; a misaligned extent fails instead
//! of being split; `assign_pages`' `Over-allocation` line is a guest `XENLOG_INFO`
//! message, below the default guest log level xensim's console shows
//! (`Guest Loglevel: Nothing (Rate-limited: Errors and warnings)`), so it is not written.

use alloc::vec::Vec;

use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, Gfn};
use crate::memory::heap::AllocFlags;
use crate::memory::{CTLDOM_MAX_ORDER, DOMU_MAX_ORDER, MAX_ORDER};

/// `-ESRCH`: no such target domain.
pub const ESRCH: i64 = -3;
/// `-EPERM`: the caller may not act on the target.
pub const EPERM: i64 = -1;

/// What a reservation hypercall did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemOpDone {
    /// The return value: extents done (`nr_done`), or a negative errno.
    pub rc: i64,
    /// `populate_physmap`: each populated extent as (GFN, MFN, order).
    pub extents: Vec<(u64, u64, u8)>,
}

/// `max_order(d)`: the largest extent `caller` may ask for.
fn max_order(caller: DomId) -> u8 {
    if caller == DomId::DOM0 {
        CTLDOM_MAX_ORDER
    } else {
        DOMU_MAX_ORDER
    }
}

impl Hypervisor {
    /// The `do_memory_op` preamble: the target exists and the caller may act on it.
    fn memory_op_target(&self, caller: DomId, target: DomId) -> Result<(), i64> {
        if !self.is_alive(target) {
            return Err(ESRCH);
        }
        if caller != target && caller != DomId::DOM0 {
            return Err(EPERM);
        }
        Ok(())
    }

    /// `XENMEM_populate_physmap` by `caller` for `target`: each GFN of `gfns` gets an
    /// extent of `2^order` pages (PoD entries with `pod`).
    pub(crate) fn populate_physmap(
        &mut self,
        caller: DomId,
        target: DomId,
        gfns: &[u64],
        order: u8,
        pod: bool,
    ) -> MemOpDone {
        if let Err(rc) = self.memory_op_target(caller, target) {
            return MemOpDone {
                rc,
                extents: Vec::new(),
            };
        }
        let limit = if pod { MAX_ORDER } else { max_order(caller) };
        let mut done = MemOpDone::default();
        if order > limit {
            return done;
        }
        for &gfn in gfns {
            if pod {
                if self.memory.pod_mark(target, gfn, order).is_err() {
                    break;
                }
            } else {
                let flags = AllocFlags::default();
                match self.memory.populate(target, Gfn::new(gfn), order, flags) {
                    Ok(got) => done.extents.push((gfn, got.mfn.raw(), order)),
                    Err(_) => break,
                }
            }
            done.rc += 1;
        }
        debug_assert!(done.rc <= i64::try_from(gfns.len()).unwrap_or(i64::MAX));
        done
    }

    /// `XENMEM_decrease_reservation` by `caller` for `target`: each GFN's extent of
    /// `2^order` pages goes back (PoD-aware, `p2m_pod_decrease_reservation`).
    pub(crate) fn decrease_reservation(
        &mut self,
        caller: DomId,
        target: DomId,
        gfns: &[u64],
        order: u8,
    ) -> i64 {
        if let Err(rc) = self.memory_op_target(caller, target) {
            return rc;
        }
        if order > max_order(caller) {
            return 0;
        }
        let mut done = 0;
        for &gfn in gfns {
            if self.memory.decrease(target, Gfn::new(gfn), order).is_err() {
                break;
            }
            done += 1;
        }
        done
    }
}
