//! The host-wide grant tables and the `GNTTABOP_*` operations map, unmap, setup_table and
//! query_size, plus domain teardown (`gnttab_release_mappings`, `grant_table_destroy`).
//!
//! Follows xen/common/grant_table.c (Xen 4.17), checks in Xen's order so the guest sees the
//! same `GNTST_*` status. The calling domain is always explicit (Xen's `current->domain`).
//!
//! # Invariants
//! - A failed map leaves pins and flags as they were and returns its handle to the tail of
//!   the free list, as Xen's `put_maptrack_handle` does.
//! - A granter's table is only removed when none of its entries is pinned.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::table::{GrantConfig, GrantTable, MaptrackEntry, Pins};
use super::{
    GrantError, GrantHandle, GuestFrames, MapFlags, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY,
    GTF_SUB_PAGE, GTF_TYPE_MASK, GTF_WRITING, MAX_GRANT_FRAMES_DEFAULT,
    MAX_MAPTRACK_FRAMES_DEFAULT,
};
use crate::evtchn::Errno;
use crate::ids::{DomId, Gfn, GrantRef, Mfn};
use crate::sched::Violation;

/// Every domain's grant table on one host.
#[derive(Clone, Debug, Default)]
pub struct GrantTables {
    pub(super) tables: BTreeMap<DomId, GrantTable>,
}

/// One `gnttab_map_grant_ref` request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapRequest {
    /// The granting domain (`op->dom`).
    pub granter: DomId,
    /// The granter's ref.
    pub gref: GrantRef,
    /// `GNTMAP_*` kinds.
    pub flags: MapFlags,
}

/// A successful map.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mapped {
    /// The handle in the mapper's maptrack.
    pub handle: GrantHandle,
    /// The frame mapped (`dev_bus_addr` is this frame's address).
    pub mfn: Mfn,
}

/// A successful unmap, for the caller to tear the mapping down and mark the frame dirty.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Unmapped {
    /// The granting domain.
    pub granter: DomId,
    /// The granter's ref.
    pub gref: GrantRef,
    /// The frame that was mapped.
    pub mfn: Mfn,
    /// The mapping's kinds.
    pub flags: MapFlags,
}

/// `GNTTABOP_query_size` output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QuerySize {
    /// `nr_frames`.
    pub nr_frames: u32,
    /// `max_nr_frames`.
    pub max_nr_frames: u32,
}

impl GrantTables {
    /// No tables.
    pub fn new() -> GrantTables {
        GrantTables::default()
    }

    /// `grant_table_init` at domain creation; `-EINVAL` for limits outside Xen's bounds
    /// (`max_grant_frames` in 1..=64, `max_maptrack_frames` at most 1024), `-EEXIST` twice.
    pub fn create(&mut self, dom: DomId, config: GrantConfig) -> Result<(), Errno> {
        let frames_ok = (1..=MAX_GRANT_FRAMES_DEFAULT).contains(&config.max_grant_frames);
        if !frames_ok || config.max_maptrack_frames > MAX_MAPTRACK_FRAMES_DEFAULT {
            return Err(Errno::Einval);
        }
        if self.tables.contains_key(&dom) {
            return Err(Errno::Eexist);
        }
        self.tables.insert(dom, GrantTable::new(dom, config));
        Ok(())
    }

    /// One domain's table.
    pub fn table(&self, dom: DomId) -> Option<&GrantTable> {
        self.tables.get(&dom)
    }

    /// One domain's table, for the guest's writes to its shared entries.
    pub fn table_mut(&mut self, dom: DomId) -> Option<&mut GrantTable> {
        self.tables.get_mut(&dom)
    }

    pub(super) fn get_mut(&mut self, dom: DomId) -> Result<&mut GrantTable, GrantError> {
        self.tables.get_mut(&dom).ok_or(GrantError::BadDomain)
    }

    /// XSM dummy `XSM_TARGET`: self, or a privileged caller.
    fn check_target(&self, caller: DomId, dom: DomId) -> Result<(), GrantError> {
        let privileged = self
            .tables
            .get(&caller)
            .is_some_and(|t| t.config.privileged);
        if caller == dom || privileged {
            Ok(())
        } else {
            Err(GrantError::PermissionDenied)
        }
    }

    /// `GNTTABOP_map_grant_ref` by `mapper`.
    pub fn map_grant_ref(
        &mut self,
        mapper: DomId,
        req: MapRequest,
        frames: &dyn GuestFrames,
    ) -> Result<Mapped, GrantError> {
        let incr = Pins::for_map(req.flags);
        if incr.is_zero() {
            return Err(GrantError::BadGntref);
        }
        let lt = self.get_mut(mapper)?;
        if lt.dying {
            // A dying domain never runs again, so it issues no hypercall; a model caller
            // that asks anyway gets Xen's failure for a domain it cannot act for.
            return Err(GrantError::BadDomain);
        }
        if lt.config.translated && req.flags.device_map {
            return Err(GrantError::GeneralError); // "No device mapping in HVM domain".
        }
        if !self.tables.contains_key(&req.granter) {
            return Err(GrantError::BadDomain);
        }
        let handle = self
            .get_mut(mapper)?
            .get_handle()
            .ok_or(GrantError::NoSpace)?;
        let rt = self.get_mut(req.granter)?;
        match pin_for_map(rt, mapper, req, incr, frames) {
            Ok(mfn) => {
                let entry = MaptrackEntry {
                    flags: Some(req.flags),
                    granter: req.granter,
                    gref: req.gref,
                };
                self.get_mut(mapper)?.set_maptrack(handle, entry);
                Ok(Mapped {
                    handle: GrantHandle(handle),
                    mfn,
                })
            }
            Err(err) => {
                self.get_mut(mapper)?.put_handle(handle);
                Err(err)
            }
        }
    }

    /// `GNTTABOP_unmap_grant_ref` by `mapper` of `handle` (host and device parts together).
    pub fn unmap_grant_ref(
        &mut self,
        mapper: DomId,
        handle: GrantHandle,
    ) -> Result<Unmapped, GrantError> {
        let lt = self.get_mut(mapper)?;
        let entry = lt.maptrack_entry(handle.0).ok_or(GrantError::BadHandle)?;
        let flags = entry.flags.ok_or(GrantError::BadHandle)?;
        let mfn = unpin(self, entry.granter, entry.gref, flags);
        self.get_mut(mapper)?.put_handle(handle.0);
        Ok(Unmapped {
            granter: entry.granter,
            gref: entry.gref,
            mfn,
            flags,
        })
    }

    /// `GNTTABOP_setup_table` by `caller` for `dom`: grow to `nr_frames`.
    pub fn setup_table(
        &mut self,
        caller: DomId,
        dom: DomId,
        nr_frames: u32,
    ) -> Result<(), GrantError> {
        self.get_mut(dom)?;
        self.check_target(caller, dom)?;
        let t = self.get_mut(dom)?;
        if nr_frames > t.max_frames() {
            return Err(GrantError::GeneralError);
        }
        t.grow(nr_frames);
        Ok(())
    }

    /// `GNTTABOP_query_size` by `caller` for `dom`.
    pub fn query_size(&self, caller: DomId, dom: DomId) -> Result<QuerySize, GrantError> {
        let t = self.tables.get(&dom).ok_or(GrantError::BadDomain)?;
        self.check_target(caller, dom)?;
        Ok(QuerySize {
            nr_frames: t.nr_frames(),
            max_nr_frames: t.max_frames(),
        })
    }

    /// `domain_kill` for grants: the domain is dying, and `gnttab_release_mappings` unmaps
    /// every mapping it holds (highest handle first), clearing the granters' flags.
    pub fn release_mappings(&mut self, dom: DomId) -> Vec<Unmapped> {
        let mut released = Vec::new();
        let Some(t) = self.tables.get_mut(&dom) else {
            return released;
        };
        t.dying = true;
        let live: Vec<MaptrackEntry> = t.maptrack.iter().rev().copied().collect();
        for entry in live {
            let Some(flags) = entry.flags else { continue };
            let mfn = unpin(self, entry.granter, entry.gref, flags);
            released.push(Unmapped {
                granter: entry.granter,
                gref: entry.gref,
                mfn,
                flags,
            });
        }
        if let Some(t) = self.tables.get_mut(&dom) {
            t.drop_maptrack();
        }
        released
    }

    /// Entries of `dom` still pinned by other domains' mappings (or its own).
    pub fn pinned_count(&self, dom: DomId) -> u32 {
        let Some(t) = self.tables.get(&dom) else {
            return 0;
        };
        let count = t.active.iter().filter(|a| !a.pins.is_zero()).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Frames of `dom` that mappings keep referenced: `(ref, mfn)` of every pinned entry.
    /// The memory subsystem must not free these even after `dom` dies.
    pub fn pinned_frames(&self, dom: DomId) -> Vec<(GrantRef, Mfn)> {
        let Some(t) = self.tables.get(&dom) else {
            return Vec::new();
        };
        let pinned = t
            .active
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.pins.is_zero());
        pinned
            .map(|(i, a)| (GrantRef::new(u32::try_from(i).unwrap_or(u32::MAX)), a.mfn))
            .collect()
    }

    /// `grant_table_destroy` at final domain destruction. Refused (returns `false`, the
    /// domain stays a zombie) while another domain still maps one of its grants, or while
    /// `release_mappings` has not run.
    pub fn remove(&mut self, dom: DomId) -> bool {
        let Some(t) = self.tables.get(&dom) else {
            return true;
        };
        if !t.dying || self.pinned_count(dom) != 0 {
            return false;
        }
        self.tables.remove(&dom);
        true
    }

    /// Runs every grant invariant (spec §9 GT-*), appending violations to `out`.
    pub fn check_invariants(&self, out: &mut Vec<Violation>) {
        super::check::check_all(self, out);
    }
}

/// The granter-side half of `map_grant_ref`: bounds, pin checks, `_set_status_v1`, the frame
/// lookup on first pin, and the pin increment.
fn pin_for_map(
    rt: &mut GrantTable,
    mapper: DomId,
    req: MapRequest,
    incr: Pins,
    frames: &dyn GuestFrames,
) -> Result<Mfn, GrantError> {
    let act = rt.active(req.gref).ok_or(GrantError::BadGntref)?;
    let pinned = !act.pins.is_zero();
    if pinned && (act.domid != mapper || act.pins.would_overflow(incr)) {
        return Err(GrantError::GeneralError);
    }
    let readonly = req.flags.readonly;
    if !pinned || (!readonly && !act.pins.has_write()) {
        set_status(rt, req.gref, mapper, readonly, true)?;
        if !pinned {
            let gfn = Gfn::new(u64::from(rt.shared[req.gref.index()].frame));
            let mfn = lookup(rt, gfn, readonly, frames).inspect_err(|_| {
                rt.reduce_status_for_pin(req.gref, readonly);
            })?;
            let a = &mut rt.active[req.gref.index()];
            a.domid = mapper;
            a.gfn = gfn;
            a.mfn = mfn;
        }
    }
    let a = &mut rt.active[req.gref.index()];
    a.pins.add(incr);
    Ok(a.mfn)
}

/// `get_paged_frame` through the memory boundary; a dying granter's physmap is gone.
pub(super) fn lookup(
    rt: &GrantTable,
    gfn: Gfn,
    readonly: bool,
    frames: &dyn GuestFrames,
) -> Result<Mfn, GrantError> {
    if rt.dying {
        return Err(GrantError::BadPage);
    }
    frames
        .translate(rt.dom, gfn, readonly)
        .map_err(GrantError::from_frame)
}

/// `_set_status_v1`: on first pin the entry must permit access to `user` (and not be a
/// sub-page grant when mapping); a writable use needs a writable entry. Sets the flags.
pub(super) fn set_status(
    rt: &mut GrantTable,
    gref: GrantRef,
    user: DomId,
    readonly: bool,
    mapping: bool,
) -> Result<(), GrantError> {
    let pinned = !rt.active[gref.index()].pins.is_zero();
    let entry = &mut rt.shared[gref.index()];
    let mask = if mapping {
        GTF_TYPE_MASK | GTF_SUB_PAGE
    } else {
        GTF_TYPE_MASK
    };
    if !pinned && (entry.flags & mask != GTF_PERMIT_ACCESS || entry.domid != user.raw()) {
        return Err(GrantError::GeneralError);
    }
    if !readonly && entry.flags & GTF_READONLY != 0 {
        return Err(GrantError::GeneralError);
    }
    entry.flags |= if readonly {
        GTF_READING
    } else {
        GTF_READING | GTF_WRITING
    };
    Ok(())
}

/// `unmap_common_complete` / the body of `gnttab_release_mappings`: drop one mapping's pins
/// from the granter's entry and reduce its flags. The granter's table must still exist:
/// it cannot be removed while pinned.
fn unpin(tables: &mut GrantTables, granter: DomId, gref: GrantRef, flags: MapFlags) -> Mfn {
    let Some(rt) = tables.tables.get_mut(&granter) else {
        panic!("{granter:?}: grant table removed while {gref:?} was mapped");
    };
    let Some(act) = rt.active.get_mut(gref.index()) else {
        panic!("{granter:?}: mapped {gref:?} past the table");
    };
    act.pins.sub(Pins::for_map(flags));
    let mfn = act.mfn;
    rt.reduce_status_for_pin(gref, flags.readonly);
    mfn
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::{GrantTables, MapRequest};
    use crate::grant::{
        FrameError, GrantConfig, GrantError, GrantHandle, GuestFrames, MapFlags, GTF_READING,
        GTF_WRITING,
    };
    use crate::ids::{DomId, Gfn, GrantRef, Mfn};

    /// Frames below `GFN_LIMIT` exist; mfn = domid << 32 | gfn. `PAGED_OUT` is paged out.
    struct Frames;
    const GFN_LIMIT: u64 = 0x10_0000;
    const PAGED_OUT: u64 = 0xdead;

    impl GuestFrames for Frames {
        fn translate(&self, dom: DomId, gfn: Gfn, _readonly: bool) -> Result<Mfn, FrameError> {
            match gfn.raw() {
                PAGED_OUT => Err(FrameError::PagedOut),
                raw if raw < GFN_LIMIT => Ok(Mfn::new(u64::from(dom.raw()) << 32 | raw)),
                _ => Err(FrameError::Invalid),
            }
        }
    }

    /// dom0 (privileged backend, PV), guest 1 (frontend, HVM), guest 2 (another backend).
    fn host() -> (GrantTables, DomId, DomId, DomId) {
        let mut gt = GrantTables::new();
        let dom0 = DomId::DOM0;
        let front = DomId::new(1).expect("domid 1");
        let other = DomId::new(2).expect("domid 2");
        let dom0_config = GrantConfig {
            privileged: true,
            ..GrantConfig::guest_default(false)
        };
        gt.create(dom0, dom0_config).expect("dom0");
        gt.create(front, GrantConfig::guest_default(true))
            .expect("front");
        gt.create(other, GrantConfig::guest_default(false))
            .expect("other");
        (gt, dom0, front, other)
    }

    /// The first ref a Linux frontend hands out (0..7 are reserved for the toolstack).
    const GREF: GrantRef = GrantRef::new(8);
    /// The frontend's ring page.
    const RING_GFN: u32 = 0x1234;

    fn grant(gt: &mut GrantTables, granter: DomId, grantee: DomId, readonly: bool) {
        let t = gt.table_mut(granter).expect("table");
        t.guest_grant_access(GREF, grantee, RING_GFN, readonly)
            .expect("grant");
    }

    fn rw_host() -> MapFlags {
        MapFlags {
            host_map: true,
            ..MapFlags::default()
        }
    }

    fn ro_host() -> MapFlags {
        MapFlags {
            host_map: true,
            readonly: true,
            ..MapFlags::default()
        }
    }

    fn req(granter: DomId, flags: MapFlags) -> MapRequest {
        MapRequest {
            granter,
            gref: GREF,
            flags,
        }
    }

    fn flags_of(gt: &GrantTables, dom: DomId) -> u16 {
        gt.table(dom)
            .and_then(|t| t.entry(GREF))
            .map(|e| e.flags)
            .unwrap_or(0)
    }

    fn assert_invariants(gt: &GrantTables) {
        let mut out = Vec::new();
        gt.check_invariants(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn map_by_grantee_returns_handle_0_and_sets_reading_writing() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        let mapped = gt
            .map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("map");
        assert_eq!(mapped.handle, GrantHandle(0));
        assert_eq!(mapped.mfn, Mfn::new(1 << 32 | u64::from(RING_GFN)));
        assert_eq!(
            flags_of(&gt, front) & (GTF_READING | GTF_WRITING),
            GTF_READING | GTF_WRITING
        );
        assert_invariants(&gt);
    }

    #[test]
    fn map_by_other_domain_than_grantee_is_general_error() {
        // Xen 4.17 `_set_status_v1` answers GNTST_general_error, not permission_denied.
        let (mut gt, dom0, front, other) = host();
        grant(&mut gt, front, dom0, false);
        let err = gt.map_grant_ref(other, req(front, rw_host()), &Frames);
        assert_eq!(err, Err(GrantError::GeneralError));
        assert_eq!(flags_of(&gt, front) & GTF_READING, 0);
    }

    #[test]
    fn map_of_pinned_entry_by_second_domain_is_general_error() {
        let (mut gt, dom0, front, other) = host();
        grant(&mut gt, front, dom0, false);
        gt.map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("map");
        // The guest re-targets the ref at `other` while dom0 still has it mapped.
        grant(&mut gt, front, other, false);
        let err = gt.map_grant_ref(other, req(front, rw_host()), &Frames);
        assert_eq!(err, Err(GrantError::GeneralError));
    }

    #[test]
    fn writable_map_of_readonly_entry_is_general_error() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, true);
        let err = gt.map_grant_ref(dom0, req(front, rw_host()), &Frames);
        assert_eq!(err, Err(GrantError::GeneralError));
    }

    #[test]
    fn readonly_map_of_readonly_entry_sets_only_reading() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, true);
        gt.map_grant_ref(dom0, req(front, ro_host()), &Frames)
            .expect("map");
        assert_eq!(
            flags_of(&gt, front) & (GTF_READING | GTF_WRITING),
            GTF_READING
        );
    }

    #[test]
    fn map_without_host_or_device_flag_is_bad_gntref() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        let err = gt.map_grant_ref(dom0, req(front, MapFlags::default()), &Frames);
        assert_eq!(err, Err(GrantError::BadGntref));
    }

    #[test]
    fn map_of_ref_past_table_is_bad_gntref() {
        let (mut gt, dom0, front, _) = host();
        // One frame holds refs 0..512.
        let request = MapRequest {
            granter: front,
            gref: GrantRef::new(512),
            flags: rw_host(),
        };
        assert_eq!(
            gt.map_grant_ref(dom0, request, &Frames),
            Err(GrantError::BadGntref)
        );
    }

    #[test]
    fn map_from_unknown_granter_is_bad_domain() {
        let (mut gt, dom0, _, _) = host();
        let unknown = DomId::new(7).expect("domid 7");
        let err = gt.map_grant_ref(dom0, req(unknown, rw_host()), &Frames);
        assert_eq!(err, Err(GrantError::BadDomain));
    }

    #[test]
    fn map_of_missing_frame_is_bad_page_and_clears_flags() {
        let (mut gt, dom0, front, _) = host();
        let t = gt.table_mut(front).expect("front");
        t.guest_grant_access(GREF, dom0, u32::try_from(GFN_LIMIT).expect("u32"), false)
            .expect("grant");
        let err = gt.map_grant_ref(dom0, req(front, rw_host()), &Frames);
        assert_eq!(err, Err(GrantError::BadPage));
        assert_eq!(flags_of(&gt, front) & (GTF_READING | GTF_WRITING), 0);
        assert_invariants(&gt);
    }

    #[test]
    fn map_of_paged_out_frame_is_eagain() {
        let (mut gt, dom0, front, _) = host();
        let t = gt.table_mut(front).expect("front");
        t.guest_grant_access(GREF, dom0, u32::try_from(PAGED_OUT).expect("u32"), false)
            .expect("grant");
        let err = gt.map_grant_ref(dom0, req(front, rw_host()), &Frames);
        assert_eq!(err, Err(GrantError::Eagain));
    }

    #[test]
    fn device_map_by_hvm_domain_is_general_error() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, dom0, front, false);
        let flags = MapFlags {
            device_map: true,
            ..MapFlags::default()
        };
        assert_eq!(
            gt.map_grant_ref(front, req(dom0, flags), &Frames),
            Err(GrantError::GeneralError)
        );
    }

    #[test]
    fn failed_map_returns_its_handle_to_the_tail() {
        let (mut gt, dom0, front, _) = host();
        let err = gt.map_grant_ref(dom0, req(front, rw_host()), &Frames);
        grant(&mut gt, front, dom0, false);
        let mapped = gt
            .map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("map");
        // Handle 0 went to the tail of the free list, so the next map gets handle 1.
        assert_eq!(err, Err(GrantError::GeneralError));
        assert_eq!(mapped.handle, GrantHandle(1));
    }

    #[test]
    fn unmap_of_last_mapping_clears_reading_and_writing() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        let mapped = gt
            .map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("map");
        gt.unmap_grant_ref(dom0, mapped.handle).expect("unmap");
        assert_eq!(flags_of(&gt, front) & (GTF_READING | GTF_WRITING), 0);
        assert_invariants(&gt);
    }

    #[test]
    fn unmap_of_writable_keeps_reading_while_readonly_mapping_remains() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        let rw = gt
            .map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("rw");
        gt.map_grant_ref(dom0, req(front, ro_host()), &Frames)
            .expect("ro");
        gt.unmap_grant_ref(dom0, rw.handle).expect("unmap");
        assert_eq!(
            flags_of(&gt, front) & (GTF_READING | GTF_WRITING),
            GTF_READING
        );
        assert_invariants(&gt);
    }

    #[test]
    fn unmap_twice_is_bad_handle() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        let mapped = gt
            .map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("map");
        gt.unmap_grant_ref(dom0, mapped.handle).expect("unmap");
        assert_eq!(
            gt.unmap_grant_ref(dom0, mapped.handle),
            Err(GrantError::BadHandle)
        );
    }

    #[test]
    fn unmap_of_never_allocated_handle_is_bad_handle() {
        let (mut gt, dom0, _, _) = host();
        assert_eq!(
            gt.unmap_grant_ref(dom0, GrantHandle(4096)),
            Err(GrantError::BadHandle)
        );
    }

    #[test]
    fn revoke_while_mapped_fails_and_mapping_survives() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        gt.map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("map");
        let ended = gt
            .table_mut(front)
            .and_then(|t| t.guest_end_access(GREF).ok());
        assert_eq!(ended, Some(false));
        assert_eq!(gt.pinned_count(front), 1);
        assert_invariants(&gt);
    }

    #[test]
    fn overwritten_entry_still_maps_for_the_pinning_domain() {
        // Xen checks the shared entry only on first pin; later maps trust the active entry.
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        gt.map_grant_ref(dom0, req(front, ro_host()), &Frames)
            .expect("map");
        let cleared = crate::grant::GrantEntry::default();
        gt.table_mut(front)
            .map(|t| t.guest_write_entry(GREF, cleared));
        gt.map_grant_ref(dom0, req(front, ro_host()), &Frames)
            .expect("second map");
        assert_invariants(&gt);
    }

    #[test]
    fn mapper_death_releases_mappings_and_clears_granter_flags() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, dom0, front, false);
        gt.map_grant_ref(front, req(dom0, rw_host()), &Frames)
            .expect("map");
        let released = gt.release_mappings(front);
        assert_eq!(released.len(), 1);
        assert_eq!(flags_of(&gt, dom0) & (GTF_READING | GTF_WRITING), 0);
        assert!(gt.remove(front));
        assert_invariants(&gt);
    }

    #[test]
    fn granter_death_keeps_its_table_until_the_mapper_unmaps() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        let mapped = gt
            .map_grant_ref(dom0, req(front, rw_host()), &Frames)
            .expect("map");
        gt.release_mappings(front);
        let removed_while_mapped = gt.remove(front);
        let frames_kept = gt.pinned_frames(front);
        gt.unmap_grant_ref(dom0, mapped.handle).expect("unmap");
        assert!(!removed_while_mapped);
        assert_eq!(frames_kept, [(GREF, mapped.mfn)]);
        assert!(gt.remove(front));
        assert_invariants(&gt);
    }

    #[test]
    fn new_map_of_dying_granter_is_bad_page() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, false);
        gt.release_mappings(front);
        let err = gt.map_grant_ref(dom0, req(front, rw_host()), &Frames);
        assert_eq!(err, Err(GrantError::BadPage));
    }

    #[test]
    fn maptrack_of_one_frame_runs_out_after_255_maps() {
        let (mut gt, dom0, front, other) = host();
        let small = GrantConfig {
            max_maptrack_frames: 1,
            ..GrantConfig::guest_default(false)
        };
        let mapper = DomId::new(3).expect("domid 3");
        gt.create(mapper, small).expect("mapper");
        grant(&mut gt, front, mapper, true);
        // 255 read-only maps hit the 8-bit pin counter's top bit at 128, so map two refs.
        let second = GrantRef::new(9);
        let t = gt.table_mut(other).expect("other");
        t.guest_grant_access(second, mapper, RING_GFN, true)
            .expect("grant");
        let first_ok = (0..127)
            .filter(|_| {
                gt.map_grant_ref(mapper, req(front, ro_host()), &Frames)
                    .is_ok()
            })
            .count();
        let request = MapRequest {
            granter: other,
            gref: second,
            flags: ro_host(),
        };
        let second_ok = (0..128)
            .filter(|_| gt.map_grant_ref(mapper, request, &Frames).is_ok())
            .count();
        let full = gt.map_grant_ref(mapper, request, &Frames);
        assert_eq!(first_ok + second_ok, 255);
        assert_eq!(full, Err(GrantError::NoSpace));
        let _ = dom0;
        assert_invariants(&gt);
    }

    #[test]
    fn pin_counter_at_128_refuses_another_map() {
        let (mut gt, dom0, front, _) = host();
        grant(&mut gt, front, dom0, true);
        // GNTPIN_incr2oflow_mask: a counter with bit 7 set (128) cannot grow.
        let ok = (0..128)
            .filter(|_| {
                gt.map_grant_ref(dom0, req(front, ro_host()), &Frames)
                    .is_ok()
            })
            .count();
        let err = gt.map_grant_ref(dom0, req(front, ro_host()), &Frames);
        assert_eq!(ok, 128);
        assert_eq!(err, Err(GrantError::GeneralError));
    }

    #[test]
    fn setup_table_grows_and_query_size_reports_it() {
        let (mut gt, _, front, _) = host();
        gt.setup_table(front, front, 4).expect("setup");
        let size = gt.query_size(front, front).expect("query");
        assert_eq!((size.nr_frames, size.max_nr_frames), (4, 64));
    }

    #[test]
    fn setup_table_past_max_is_general_error() {
        let (mut gt, _, front, _) = host();
        assert_eq!(
            gt.setup_table(front, front, 65),
            Err(GrantError::GeneralError)
        );
    }

    #[test]
    fn query_size_of_other_domain_by_unprivileged_is_permission_denied() {
        let (gt, dom0, front, _) = host();
        assert_eq!(
            gt.query_size(front, dom0),
            Err(GrantError::PermissionDenied)
        );
    }

    #[test]
    fn create_with_65_grant_frames_is_einval() {
        let mut gt = GrantTables::new();
        let config = GrantConfig {
            max_grant_frames: 65,
            ..GrantConfig::guest_default(false)
        };
        let err = gt.create(DomId::DOM0, config).expect_err("einval");
        assert_eq!(err.value(), -22);
    }
}
