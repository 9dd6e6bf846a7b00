//! O(n) grant-table invariants over every domain of a host (spec `xenstore-io.md` §9,
//! GT-GRANTEE, GT-FLAGS, GT-HANDLES, GT-DEATH).
//!
//! # Invariants checked
//! - `grant.shape`: entries match `nr_frames`, within `max_grant_frames`; maptrack is whole
//!   frames within `max_maptrack_frames`.
//! - `grant.handles`: every handle is live or free exactly once (GT-HANDLES).
//! - `grant.grantee`: a live mapping's granter entry is pinned for the mapper (GT-GRANTEE).
//! - `grant.pins`: each entry's pins equal the sum over live mappings of it (GT-FLAGS).
//! - `grant.flags`: unless the guest rewrote them, `GTF_reading` is set iff pinned and
//!   `GTF_writing` iff pinned writable (GT-FLAGS).
//! - `grant.dying_maps`: a dying domain holds no mapping (GT-DEATH).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::ops::GrantTables;
use super::table::{GrantTable, Pins};
use super::{GRANT_ENTRIES_PER_FRAME_V1, GTF_READING, GTF_WRITING, MAPTRACK_PER_FRAME};
use crate::ids::{DomId, GrantRef};
use crate::sched::Violation;

pub(super) fn check_all(gt: &GrantTables, out: &mut Vec<Violation>) {
    let mut expected: BTreeMap<(DomId, GrantRef), Pins> = BTreeMap::new();
    for t in gt.tables.values() {
        check_shape(t, out);
        check_handles(t, out);
        check_mappings(gt, t, &mut expected, out);
    }
    for t in gt.tables.values() {
        check_pins(t, &expected, out);
    }
}

fn violation(out: &mut Vec<Violation>, invariant: &'static str, detail: alloc::string::String) {
    out.push(Violation { invariant, detail });
}

fn check_shape(t: &GrantTable, out: &mut Vec<Violation>) {
    let entries = t.nr_frames() * GRANT_ENTRIES_PER_FRAME_V1;
    let shared_ok = t.shared.len() == entries as usize && t.active.len() == entries as usize;
    if !shared_ok || t.nr_frames() == 0 || t.nr_frames() > t.max_frames() {
        violation(
            out,
            "grant.shape",
            format!("{:?}: {} frames", t.dom, t.nr_frames()),
        );
    }
    let whole = t.maptrack.len().is_multiple_of(MAPTRACK_PER_FRAME as usize);
    if !whole || t.maptrack_frames() > t.config.max_maptrack_frames {
        let frames = t.maptrack_frames();
        violation(
            out,
            "grant.shape",
            format!("{:?}: {frames} maptrack frames", t.dom),
        );
    }
}

fn check_handles(t: &GrantTable, out: &mut Vec<Violation>) {
    let mut seen = vec![false; t.maptrack.len()];
    for &handle in &t.free_handles {
        let index = handle as usize;
        let free = t.maptrack.get(index).is_some_and(|m| m.flags.is_none());
        if !free || seen.get(index).copied().unwrap_or(true) {
            violation(
                out,
                "grant.handles",
                format!("{:?}: free list has {handle}", t.dom),
            );
            continue;
        }
        seen[index] = true;
    }
    let free_entries = t.maptrack.iter().filter(|m| m.flags.is_none()).count();
    if free_entries != t.free_handles.len() {
        let listed = t.free_handles.len();
        violation(
            out,
            "grant.handles",
            format!("{:?}: {free_entries} free entries, {listed} listed", t.dom),
        );
    }
}

fn check_mappings(
    gt: &GrantTables,
    t: &GrantTable,
    expected: &mut BTreeMap<(DomId, GrantRef), Pins>,
    out: &mut Vec<Violation>,
) {
    for (handle, m) in t.maptrack.iter().enumerate() {
        let Some(flags) = m.flags else { continue };
        if t.dying {
            violation(
                out,
                "grant.dying_maps",
                format!("{:?}: handle {handle}", t.dom),
            );
        }
        let act = gt.table(m.granter).and_then(|g| g.active(m.gref));
        let grantee_ok = act.is_some_and(|a| a.domid == t.dom && !a.pins.is_zero());
        if !grantee_ok {
            violation(
                out,
                "grant.grantee",
                format!(
                    "{:?} handle {handle} -> {:?} {:?}: {act:?}",
                    t.dom, m.granter, m.gref
                ),
            );
        }
        expected
            .entry((m.granter, m.gref))
            .or_default()
            .add(Pins::for_map(flags));
    }
}

fn check_pins(
    t: &GrantTable,
    expected: &BTreeMap<(DomId, GrantRef), Pins>,
    out: &mut Vec<Violation>,
) {
    for (index, act) in t.active.iter().enumerate() {
        let gref = GrantRef::new(u32::try_from(index).unwrap_or(u32::MAX));
        let want = expected.get(&(t.dom, gref)).copied().unwrap_or_default();
        if act.pins != want {
            violation(
                out,
                "grant.pins",
                format!(
                    "{:?} {gref:?}: pins {:?}, mappings {want:?}",
                    t.dom, act.pins
                ),
            );
        }
        if act.status_tampered {
            continue;
        }
        let flags = t.shared[index].flags;
        let reading_ok = (flags & GTF_READING != 0) != act.pins.is_zero();
        let writing_ok = (flags & GTF_WRITING != 0) == act.pins.has_write();
        // A guest may set the bits itself on an idle entry; only a pinned entry must match.
        let pinned = !act.pins.is_zero();
        if pinned && (!reading_ok || !writing_ok) {
            violation(
                out,
                "grant.flags",
                format!(
                    "{:?} {gref:?}: flags {flags:#x}, pins {:?}",
                    t.dom, act.pins
                ),
            );
        }
    }
}
