//! Tests of the grant-table operations: map/unmap/copy status codes, limits and the
//! rules for revocation and a dying granter.

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
