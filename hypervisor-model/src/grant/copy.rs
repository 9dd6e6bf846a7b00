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
        // The split drivers' two shapes (netback's TX and RX copies) take a
        // path that looks each table up once; it ends as `copy_claimed` would.
        match (op.source.ptr, op.dest.ptr) {
            (CopyPtr::Gref { dom, gref }, CopyPtr::LocalGfn(gfn)) => {
                self.copy_from_grant(caller, (dom, gref), gfn, op, frames)
            }
            (CopyPtr::LocalGfn(gfn), CopyPtr::Gref { dom, gref }) => {
                self.copy_to_grant(caller, gfn, (dom, gref), op, frames)
            }
            _ => self.copy_claimed(caller, op, frames),
        }
    }

    /// A copy from `dom`'s grant `gref` into the caller's frame `gfn` (both domains
    /// locked). The caller's frame is looked up first: that lookup reads nothing the
    /// grant's claim writes (the entry's flags and pins, never `dying`), and the claim's
    /// error still wins over the frame's, as in `copy_claimed`.
    fn copy_from_grant(
        &mut self,
        caller: DomId,
        (dom, gref): (DomId, GrantRef),
        gfn: Gfn,
        op: &CopyOp,
        frames: &dyn GuestFrames,
    ) -> Result<Copied, GrantError> {
        let lt = self.tables.get(&caller).ok_or(GrantError::BadDomain)?;
        let dest = lookup(lt, gfn, false, frames);
        let rt = self.get_mut(dom)?;
        if let Some(source) = copy_unpinned(rt, gref, caller, true, frames) {
            return checked(op, source?, dest?);
        }
        let source_mfn = acquire_for_copy(rt, gref, caller, true, frames)?;
        let result = dest.and_then(|dest_mfn| checked(op, source_mfn, dest_mfn));
        release_grant(rt, gref, true);
        result
    }

    /// A copy from the caller's frame `gfn` into `dom`'s grant `gref` (both domains
    /// locked), in `copy_claimed`'s order.
    fn copy_to_grant(
        &mut self,
        caller: DomId,
        gfn: Gfn,
        (dom, gref): (DomId, GrantRef),
        op: &CopyOp,
        frames: &dyn GuestFrames,
    ) -> Result<Copied, GrantError> {
        let lt = self.tables.get(&caller).ok_or(GrantError::BadDomain)?;
        let source_mfn = lookup(lt, gfn, true, frames)?;
        let rt = self.get_mut(dom)?;
        if let Some(dest) = copy_unpinned(rt, gref, caller, false, frames) {
            return checked(op, source_mfn, dest?);
        }
        let dest_mfn = acquire_for_copy(rt, gref, caller, false, frames)?;
        let result = checked(op, source_mfn, dest_mfn);
        release_grant(rt, gref, false);
        result
    }

    /// The general copy (both domains locked): claim the source, then the destination,
    /// check the bounds, release both.
    fn copy_claimed(
        &mut self,
        caller: DomId,
        op: &CopyOp,
        frames: &dyn GuestFrames,
    ) -> Result<Copied, GrantError> {
        let (source_mfn, source) = self.claim(caller, op.source.ptr, true, frames)?;
        let dest = self.claim(caller, op.dest.ptr, false, frames);
        let (dest_mfn, dest) = match dest {
            Ok(claimed) => claimed,
            Err(err) => {
                self.release(source);
                return Err(err);
            }
        };
        let result = checked(op, source_mfn, dest_mfn);
        self.release(source);
        self.release(dest);
        result
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
        release_grant(rt, gref, readonly);
    }
}

/// The body of `release_grant_for_copy` on the granter's table.
fn release_grant(rt: &mut GrantTable, gref: GrantRef, readonly: bool) {
    rt.active[gref.index()].pins.sub(copy_pin(readonly));
    rt.reduce_status_for_pin(gref, readonly);
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

/// `acquire_for_copy` and then `release_grant` of an entry nothing pins (every copy of
/// the split drivers): the copy's pin comes and goes, so only what stays is written, the
/// active entry's frame and the flags. `set_status` sets `GTF_reading` (and `GTF_writing`),
/// and `reduce_status_for_pin`, with nothing pinned, clears them again (and a guest's own
/// setting of them: `status_tampered`); `lookup` reads neither. `None` if the entry is
/// pinned or out of range: the general path takes it.
fn copy_unpinned(
    rt: &mut GrantTable,
    gref: GrantRef,
    user: DomId,
    readonly: bool,
    frames: &dyn GuestFrames,
) -> Option<Result<Mfn, GrantError>> {
    let index = gref.index();
    if !rt.active.get(index)?.pins.is_zero() {
        return None;
    }
    if let Err(error) = set_status(rt, gref, user, readonly, false) {
        return Some(Err(error));
    }
    let gfn = Gfn::new(u64::from(rt.shared[index].frame));
    let found = lookup(rt, gfn, readonly, frames);
    if let Ok(mfn) = found {
        let act = &mut rt.active[index];
        act.domid = user;
        act.gfn = gfn;
        act.mfn = mfn;
    }
    rt.reduce_status_for_pin(gref, readonly);
    Some(found)
}

/// The copy of `source_mfn` into `dest_mfn`, once [`check_bounds`] passes.
fn checked(op: &CopyOp, source_mfn: Mfn, dest_mfn: Mfn) -> Result<Copied, GrantError> {
    check_bounds(op).map(|()| Copied {
        source_mfn,
        dest_mfn,
    })
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

#[cfg(test)]
mod tests {
    use super::{CopyOp, CopyPtr, CopySide};
    use crate::grant::{
        FrameError, GrantConfig, GrantError, GrantTables, GuestFrames, MapFlags, MapRequest,
        GTF_PERMIT_ACCESS, GTF_READING, GTF_WRITING,
    };
    use crate::ids::{DomId, Gfn, GrantRef, Mfn};

    /// Every gfn exists; mfn = domid << 32 | gfn.
    struct Frames;

    impl GuestFrames for Frames {
        fn translate(&self, dom: DomId, gfn: Gfn, _readonly: bool) -> Result<Mfn, FrameError> {
            Ok(Mfn::new(u64::from(dom.raw()) << 32 | gfn.raw()))
        }
    }

    /// The frontend's granted buffer ref and page.
    const GREF: GrantRef = GrantRef::new(8);
    const BUF_GFN: u32 = 0x42;
    /// A page of the backend.
    const LOCAL_GFN: Gfn = Gfn::new(0x77);

    fn host(readonly: bool) -> (GrantTables, DomId, DomId) {
        let mut gt = GrantTables::new();
        let back = DomId::DOM0;
        let front = DomId::new(1).expect("domid 1");
        gt.create(back, GrantConfig::guest_default(false))
            .expect("back");
        gt.create(front, GrantConfig::guest_default(true))
            .expect("front");
        let t = gt.table_mut(front).expect("front");
        t.guest_grant_access(GREF, back, BUF_GFN, readonly)
            .expect("grant");
        (gt, back, front)
    }

    fn from_grant_to_local(front: DomId, offset_bytes: u16, len_bytes: u16) -> CopyOp {
        CopyOp {
            source: CopySide {
                ptr: CopyPtr::Gref {
                    dom: front,
                    gref: GREF,
                },
                offset_bytes,
            },
            dest: CopySide {
                ptr: CopyPtr::LocalGfn(LOCAL_GFN),
                offset_bytes: 0,
            },
            len_bytes,
        }
    }

    fn from_local_to_grant(front: DomId) -> CopyOp {
        CopyOp {
            source: CopySide {
                ptr: CopyPtr::LocalGfn(LOCAL_GFN),
                offset_bytes: 0,
            },
            dest: CopySide {
                ptr: CopyPtr::Gref {
                    dom: front,
                    gref: GREF,
                },
                offset_bytes: 0,
            },
            len_bytes: 64,
        }
    }

    fn flags(gt: &GrantTables, dom: DomId) -> u16 {
        gt.table(dom)
            .and_then(|t| t.entry(GREF))
            .map(|e| e.flags)
            .unwrap_or(0)
    }

    // gfns below 48 exist, 13 is paged out (an error the claim must report).
    use super::super::proptests::Frames as SomeFrames;

    /// How a random case sets its tables up before the copy.
    #[derive(Clone, Debug)]
    struct Setup {
        /// Per ref 0..4 of d1: (grantee d0 or d2, gfn, readonly, entry flags garbled).
        grants: alloc::vec::Vec<(bool, u32, bool, bool)>,
        /// Writable or read-only host mappings of d1's refs by d0 (pins).
        maps: alloc::vec::Vec<(u32, bool)>,
        /// d1 (the granter) or d0 (the caller) is dying.
        dying: (bool, bool),
    }

    fn setup() -> impl proptest::strategy::Strategy<Value = Setup> {
        use proptest::prelude::*;
        let grant = (
            any::<bool>(),
            0u32..50,
            any::<bool>(),
            proptest::bool::weighted(0.1),
        );
        (
            proptest::collection::vec(grant, 4),
            proptest::collection::vec((0u32..5, any::<bool>()), 0..3),
            (proptest::bool::weighted(0.1), proptest::bool::weighted(0.1)),
        )
            .prop_map(|(grants, maps, dying)| Setup {
                grants,
                maps,
                dying,
            })
    }

    fn tables(setup: &Setup) -> GrantTables {
        let mut gt = GrantTables::new();
        for raw in 0..3 {
            let dom = DomId::new(raw).expect("domid");
            gt.create(dom, GrantConfig::guest_default(raw == 1))
                .expect("table");
        }
        let (d0, d1, d2) = (
            DomId::DOM0,
            DomId::new(1).expect("d1"),
            DomId::new(2).expect("d2"),
        );
        let t = gt.table_mut(d1).expect("d1");
        for (raw, &(to_d0, gfn, readonly, garbled)) in (0u32..).zip(&setup.grants) {
            let grantee = if to_d0 { d0 } else { d2 };
            let _ = t.guest_grant_access(GrantRef::new(raw), grantee, gfn, readonly);
            if garbled {
                // The guest sets Xen's status bits, on a valid entry or not.
                let flags = match gfn % 3 {
                    0 => GTF_READING,
                    1 => GTF_PERMIT_ACCESS | GTF_READING,
                    _ => GTF_PERMIT_ACCESS | GTF_WRITING,
                };
                let entry = crate::grant::GrantEntry {
                    flags,
                    domid: d0.raw(),
                    frame: gfn,
                };
                let _ = t.guest_write_entry(GrantRef::new(raw), entry);
            }
        }
        for &(raw, readonly) in &setup.maps {
            let flags = MapFlags {
                readonly,
                ..MapFlags::HOST_RW
            };
            let req = MapRequest {
                granter: d1,
                gref: GrantRef::new(raw),
                flags,
            };
            let _ = gt.map_grant_ref(d0, req, &SomeFrames);
        }
        if setup.dying.0 {
            gt.release_mappings(d1);
        }
        if setup.dying.1 {
            gt.release_mappings(d0);
        }
        gt
    }

    proptest::proptest! {
        /// The one-lookup-per-table paths answer and leave the tables as the general
        /// claim-and-release path does, for netback's two shapes of copy.
        #[test]
        fn fast_copies_match_the_general_path(
            setup in setup(),
            to_grant in proptest::prelude::any::<bool>(),
            gref in 0u32..6,
            gfn in 0u64..50,
            offset_bytes in proptest::sample::select(alloc::vec![0u16, 100, 4000]),
            len_bytes in proptest::sample::select(alloc::vec![40u16, 96, 200]),
            granter in 1u16..3,
        ) {
            let dom = DomId::new(granter).expect("granter");
            let grant = CopySide {
                ptr: CopyPtr::Gref { dom, gref: GrantRef::new(gref) },
                offset_bytes,
            };
            let local = CopySide { ptr: CopyPtr::LocalGfn(Gfn::new(gfn)), offset_bytes: 0 };
            let (source, dest) = if to_grant { (local, grant) } else { (grant, local) };
            let op = CopyOp { source, dest, len_bytes };
            let mut fast = tables(&setup);
            let mut general = fast.clone();

            let got = fast.copy(DomId::DOM0, &op, &SomeFrames);
            let locked = general
                .lock_domain(DomId::DOM0, op.source.ptr)
                .and_then(|()| general.lock_domain(DomId::DOM0, op.dest.ptr));
            let want = locked.and_then(|()| general.copy_claimed(DomId::DOM0, &op, &SomeFrames));

            proptest::prop_assert_eq!(got, want);
            let (fast, general) = (alloc::format!("{fast:?}"), alloc::format!("{general:?}"));
            proptest::prop_assert_eq!(fast, general);
        }
    }

    #[test]
    fn copy_from_grant_names_both_frames_and_leaves_no_pin() {
        let (mut gt, back, front) = host(true);
        let copied = gt
            .copy(back, &from_grant_to_local(front, 0, 4096), &Frames)
            .expect("copy");
        assert_eq!(copied.source_mfn, Mfn::new(1 << 32 | u64::from(BUF_GFN)));
        assert_eq!(copied.dest_mfn, Mfn::new(LOCAL_GFN.raw()));
        assert_eq!(flags(&gt, front) & (GTF_READING | GTF_WRITING), 0);
        assert_eq!(gt.pinned_count(front), 0);
    }

    #[test]
    fn copy_crossing_the_page_end_is_bad_copy_arg() {
        let (mut gt, back, front) = host(true);
        // 4000 + 100 > 4096.
        let err = gt.copy(back, &from_grant_to_local(front, 4000, 100), &Frames);
        assert_eq!(err, Err(GrantError::BadCopyArg));
        assert_eq!(gt.pinned_count(front), 0);
    }

    #[test]
    fn copy_into_readonly_grant_is_general_error() {
        let (mut gt, back, front) = host(true);
        let err = gt.copy(back, &from_local_to_grant(front), &Frames);
        assert_eq!(err, Err(GrantError::GeneralError));
        assert_eq!(flags(&gt, front) & (GTF_READING | GTF_WRITING), 0);
    }

    #[test]
    fn copy_into_writable_grant_succeeds_and_clears_writing() {
        let (mut gt, back, front) = host(false);
        gt.copy(back, &from_local_to_grant(front), &Frames)
            .expect("copy");
        assert_eq!(flags(&gt, front) & (GTF_READING | GTF_WRITING), 0);
    }

    #[test]
    fn copy_by_domain_not_named_in_grant_is_general_error() {
        let (mut gt, _, front) = host(true);
        let stranger = DomId::new(2).expect("domid 2");
        gt.create(stranger, GrantConfig::guest_default(false))
            .expect("stranger");
        let err = gt.copy(stranger, &from_grant_to_local(front, 0, 64), &Frames);
        assert_eq!(err, Err(GrantError::GeneralError));
    }

    #[test]
    fn copy_with_gfn_of_numeric_domid_is_permission_denied() {
        let (mut gt, back, front) = host(true);
        let mut op = from_grant_to_local(front, 0, 64);
        op.dest.ptr = CopyPtr::ForeignGfn {
            dom: back,
            gfn: LOCAL_GFN,
        };
        assert_eq!(
            gt.copy(back, &op, &Frames),
            Err(GrantError::PermissionDenied)
        );
    }

    #[test]
    fn copy_from_unknown_domain_is_bad_domain() {
        let (mut gt, back, _) = host(true);
        let unknown = DomId::new(9).expect("domid 9");
        let op = from_grant_to_local(unknown, 0, 64);
        assert_eq!(gt.copy(back, &op, &Frames), Err(GrantError::BadDomain));
    }

    #[test]
    fn bad_ref_wins_over_bad_offset() {
        // Xen claims both sides before checking bounds.
        let (mut gt, back, front) = host(true);
        let mut op = from_grant_to_local(front, 4000, 100);
        op.source.ptr = CopyPtr::Gref {
            dom: front,
            gref: GrantRef::new(512),
        };
        assert_eq!(gt.copy(back, &op, &Frames), Err(GrantError::BadGntref));
    }

    #[test]
    fn copy_from_grant_mapped_by_same_domain_keeps_the_mapping_pin() {
        let (mut gt, back, front) = host(false);
        let flags_rw = MapFlags {
            host_map: true,
            ..MapFlags::default()
        };
        let map = MapRequest {
            granter: front,
            gref: GREF,
            flags: flags_rw,
        };
        gt.map_grant_ref(back, map, &Frames).expect("map");
        gt.copy(back, &from_grant_to_local(front, 0, 64), &Frames)
            .expect("copy");
        assert_eq!(
            flags(&gt, front) & (GTF_READING | GTF_WRITING),
            GTF_READING | GTF_WRITING
        );
        assert_eq!(gt.pinned_count(front), 1);
    }
}
