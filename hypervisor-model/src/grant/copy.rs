//! `GNTTABOP_copy`: one copy between two frames, each named by a grant ref of some domain or
//! by a gfn of the caller, with the grant pinned only for the copy's duration.
//!
//! Follows xen/common/grant_table.c (Xen 4.17): `gnttab_copy_lock_domain(s)`,
//! `gnttab_copy_claim_buf`, `acquire_grant_for_copy`, `release_grant_for_copy`,
//! `gnttab_copy_buf`, `gnttab_copy_one`. Xen checks the 4 KiB bounds only after both sides
//! are claimed, so a bad ref wins over a bad offset; this model keeps that order.
//!
//! # Invariants
//! - A copy leaves every pin count and every `GTF_reading`/`GTF_writing` bit as it found
//!   them, whatever its outcome.
//!
//! xensim differs: no bytes move. The result names both frames and the offsets so the
//! memory subsystem can perform the copy when it exists.

use super::ops::{lookup, set_status, GrantTables};
use super::table::{GrantTable, Pins};
use super::{GrantError, GuestFrames};
use crate::ids::{DomId, Gfn, GrantRef, Mfn};
use crate::limits::PAGE_BYTES;

/// One side of a copy (`struct gnttab_copy_ptr` with the `GNTCOPY_*_gref` flag folded in).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CopyPtr {
    /// `u.ref` of `domid`, with the gref flag set.
    Gref {
        /// The granting domain.
        dom: DomId,
        /// Its ref.
        gref: GrantRef,
    },
    /// `u.gmfn` with `domid = DOMID_SELF`: a frame of the caller.
    LocalGfn(Gfn),
    /// `u.gmfn` with a numeric domid: Xen refuses it (`GNTST_permission_denied`), even when
    /// the domid is the caller's own.
    ForeignGfn {
        /// The named domain.
        dom: DomId,
        /// The frame.
        gfn: Gfn,
    },
}

/// A side and its offset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CopySide {
    /// Which frame.
    pub ptr: CopyPtr,
    /// Byte offset in the frame.
    pub offset_bytes: u16,
}

/// One `gnttab_copy_t`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CopyOp {
    /// Read from here.
    pub source: CopySide,
    /// Write to here.
    pub dest: CopySide,
    /// Bytes to copy.
    pub len_bytes: u16,
}

/// A copy that Xen would perform: `len_bytes` from `source_mfn + source offset` to
/// `dest_mfn + dest offset`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Copied {
    /// Source frame.
    pub source_mfn: Mfn,
    /// Destination frame (Xen marks it dirty).
    pub dest_mfn: Mfn,
}

/// What a claimed side holds until release.
#[derive(Clone, Copy)]
enum Claim {
    Grant {
        dom: DomId,
        gref: GrantRef,
        readonly: bool,
    },
    Frame,
}

impl GrantTables {
    /// `GNTTABOP_copy` of one op by `caller`.
    pub fn copy(
        &mut self,
        caller: DomId,
        op: &CopyOp,
        frames: &dyn GuestFrames,
    ) -> Result<Copied, GrantError> {
        self.lock_domain(caller, op.source.ptr)?;
        self.lock_domain(caller, op.dest.ptr)?;
        let (source_mfn, source) = self.claim(caller, op.source.ptr, true, frames)?;
        let dest = self.claim(caller, op.dest.ptr, false, frames);
        let (dest_mfn, dest) = match dest {
            Ok(claimed) => claimed,
            Err(err) => {
                self.release(source);
                return Err(err);
            }
        };
        let result = check_bounds(op);
        self.release(source);
        self.release(dest);
        result.map(|()| Copied {
            source_mfn,
            dest_mfn,
        })
    }

    /// `gnttab_copy_lock_domain`: a gfn side must be `DOMID_SELF`; a gref side's domain
    /// must exist.
    fn lock_domain(&self, caller: DomId, ptr: CopyPtr) -> Result<(), GrantError> {
        let dom = match ptr {
            CopyPtr::ForeignGfn { .. } => return Err(GrantError::PermissionDenied),
            CopyPtr::LocalGfn(_) => caller,
            CopyPtr::Gref { dom, .. } => dom,
        };
        if self.tables.contains_key(&dom) {
            Ok(())
        } else {
            Err(GrantError::BadDomain)
        }
    }

    /// `gnttab_copy_claim_buf`: pin the grant (or look the caller's frame up).
    fn claim(
        &mut self,
        caller: DomId,
        ptr: CopyPtr,
        readonly: bool,
        frames: &dyn GuestFrames,
    ) -> Result<(Mfn, Claim), GrantError> {
        match ptr {
            CopyPtr::Gref { dom, gref } => {
                let rt = self.get_mut(dom)?;
                let mfn = acquire_for_copy(rt, gref, caller, readonly, frames)?;
                Ok((
                    mfn,
                    Claim::Grant {
                        dom,
                        gref,
                        readonly,
                    },
                ))
            }
            CopyPtr::LocalGfn(gfn) => {
                let lt = self.get_mut(caller)?;
                Ok((lookup(lt, gfn, readonly, frames)?, Claim::Frame))
            }
            CopyPtr::ForeignGfn { .. } => Err(GrantError::PermissionDenied),
        }
    }

    /// `release_grant_for_copy`.
    fn release(&mut self, claim: Claim) {
        let Claim::Grant {
            dom,
            gref,
            readonly,
        } = claim
        else {
            return;
        };
        let Some(rt) = self.tables.get_mut(&dom) else {
            panic!("{dom:?}: grant table gone while {gref:?} was held for a copy");
        };
        rt.active[gref.index()].pins.sub(copy_pin(readonly));
        rt.reduce_status_for_pin(gref, readonly);
    }
}

/// A copy pins like a host mapping of the same direction.
fn copy_pin(readonly: bool) -> Pins {
    if readonly {
        Pins {
            host_read: 1,
            ..Pins::default()
        }
    } else {
        Pins {
            host_write: 1,
            ..Pins::default()
        }
    }
}

/// `acquire_grant_for_copy` for a v1 entry.
fn acquire_for_copy(
    rt: &mut GrantTable,
    gref: GrantRef,
    user: DomId,
    readonly: bool,
    frames: &dyn GuestFrames,
) -> Result<Mfn, GrantError> {
    let incr = copy_pin(readonly);
    let act = rt.active(gref).ok_or(GrantError::BadGntref)?;
    let pinned = !act.pins.is_zero();
    if pinned && (act.domid != user || act.pins.would_overflow(incr)) {
        return Err(GrantError::GeneralError);
    }
    if !pinned || (!readonly && !act.pins.has_write()) {
        set_status(rt, gref, user, readonly, false)?;
        // Xen looks the frame up on this path even when already pinned read-only.
        let gfn = Gfn::new(u64::from(rt.shared[gref.index()].frame));
        let mfn = lookup(rt, gfn, readonly, frames).inspect_err(|_| {
            rt.reduce_status_for_pin(gref, readonly);
        })?;
        if !pinned {
            let a = &mut rt.active[gref.index()];
            a.domid = user;
            a.gfn = gfn;
            a.mfn = mfn;
        }
    } else if rt.dying {
        // Xen: the page's owner is checked, and a dying owner gives GNTST_bad_domain.
        return Err(GrantError::BadDomain);
    }
    let a = &mut rt.active[gref.index()];
    a.pins.add(incr);
    Ok(a.mfn)
}

/// `gnttab_copy_buf`'s checks: both ranges inside one page (v1 grants cover the whole page,
/// so Xen's per-grant range check never fails here).
fn check_bounds(op: &CopyOp) -> Result<(), GrantError> {
    let len = u64::from(op.len_bytes);
    let source_end = u64::from(op.source.offset_bytes) + len;
    let dest_end = u64::from(op.dest.offset_bytes) + len;
    if source_end > PAGE_BYTES || dest_end > PAGE_BYTES {
        return Err(GrantError::BadCopyArg);
    }
    Ok(())
}
