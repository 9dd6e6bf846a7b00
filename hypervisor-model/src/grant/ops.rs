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

use alloc::vec::Vec;

use super::table::{GrantConfig, GrantTable, MaptrackEntry, Pins};
use super::{
    GrantError, GrantHandle, GuestFrames, MapFlags, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY,
    GTF_SUB_PAGE, GTF_TYPE_MASK, GTF_WRITING, MAX_GRANT_FRAMES_DEFAULT,
    MAX_MAPTRACK_FRAMES_DEFAULT,
};
use crate::evtchn::Errno;
use crate::ids::{DomId, Gfn, GrantRef, Mfn};
use crate::io::dev_map::DomMap;
use crate::sched::Violation;

/// Every domain's grant table on one host.
#[derive(Clone, Debug, Default)]
pub struct GrantTables {
    pub(super) tables: DomMap<GrantTable>,
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
/// Always inlined: `copy_unpinned`'s fast path (every netback grant copy) calls it.
#[inline(always)]
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
