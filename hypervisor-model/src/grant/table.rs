//! One domain's grant table: the v1 shared entries the guest writes, Xen's active entries
//! (pin counters, pinned domain and frame), and the domain's own maptrack (the mappings it
//! holds of other domains' grants) with its free list.
//!
//! Follows xen/common/grant_table.c: `struct active_grant_entry` and the `GNTPIN_*`
//! counters, `_set_status_v1`, `reduce_status_for_pin`, `get_maptrack_handle`,
//! `_get_maptrack_handle`, `put_maptrack_handle`, `gnttab_grow_table`, `grant_table_init`.
//!
//! # Invariants
//! - `shared.len() == active.len() == nr_frames * 512`, `nr_frames <= max_grant_frames`.
//! - `maptrack.len()` is a whole number of maptrack frames, at most `max_maptrack_frames`.
//! - A maptrack entry with flags 0 is free; the free list holds each free handle once.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use super::{
    GrantError, MapFlags, GNTPIN_COUNTER_BITS, GRANT_ENTRIES_PER_FRAME_V1, GTF_READING,
    GTF_WRITING, INITIAL_NR_GRANT_FRAMES, MAPTRACK_PER_FRAME, MAX_GRANT_FRAMES_DEFAULT,
    MAX_MAPTRACK_FRAMES_DEFAULT,
};
use crate::ids::{DomId, Gfn, GrantRef, Mfn};

/// How a domain's grant table is built (`grant_table_init` arguments and domain facts).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GrantConfig {
    /// xl.cfg `max_grant_frames` (1..=64).
    pub max_grant_frames: u32,
    /// xl.cfg `max_maptrack_frames` (0..=1024).
    pub max_maptrack_frames: u32,
    /// HVM/PVH (`paging_mode_external`): device mappings are refused.
    pub translated: bool,
    /// Privileged (dom0): XSM's dummy policy lets it set up or query other tables.
    pub privileged: bool,
}

impl GrantConfig {
    /// Xen's defaults for an unprivileged guest.
    pub const fn guest_default(translated: bool) -> GrantConfig {
        GrantConfig {
            max_grant_frames: MAX_GRANT_FRAMES_DEFAULT,
            max_maptrack_frames: MAX_MAPTRACK_FRAMES_DEFAULT,
            translated,
            privileged: false,
        }
    }
}

/// A v1 shared entry (`grant_entry_v1_t`) as the guest's memory holds it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GrantEntry {
    /// `GTF_*` type and flag bits.
    pub flags: u16,
    /// The domain allowed to use the grant (raw `domid_t`).
    pub domid: u16,
    /// The granted frame (a gfn; 32 bits in v1).
    pub frame: u32,
}

/// The pin counters of one active entry (`act->pin`), four 8-bit counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Pins {
    /// Writable host mappings (and writable copies in flight).
    pub host_write: u32,
    /// Read-only host mappings (and read-only copies in flight).
    pub host_read: u32,
    /// Writable device mappings.
    pub dev_write: u32,
    /// Read-only device mappings.
    pub dev_read: u32,
}

impl Pins {
    /// The pins one mapping with `flags` holds.
    pub(super) fn for_map(flags: MapFlags) -> Pins {
        let host = u32::from(flags.host_map);
        let dev = u32::from(flags.device_map);
        if flags.readonly {
            Pins {
                host_read: host,
                dev_read: dev,
                ..Pins::default()
            }
        } else {
            Pins {
                host_write: host,
                dev_write: dev,
                ..Pins::default()
            }
        }
    }

    /// Whether nothing is pinned.
    pub fn is_zero(&self) -> bool {
        *self == Pins::default()
    }

    /// Whether a writable pin exists (`GNTPIN_hstw_mask | GNTPIN_devw_mask`).
    pub fn has_write(&self) -> bool {
        self.host_write != 0 || self.dev_write != 0
    }

    /// `GNTPIN_incr2oflow_mask`: Xen refuses an increment of a counter whose top bit is set.
    pub(super) fn would_overflow(&self, incr: Pins) -> bool {
        let top = 1u32 << (GNTPIN_COUNTER_BITS - 1);
        let pairs = [
            (self.host_write, incr.host_write),
            (self.host_read, incr.host_read),
            (self.dev_write, incr.dev_write),
            (self.dev_read, incr.dev_read),
        ];
        pairs
            .iter()
            .any(|&(count, add)| add != 0 && count & top != 0)
    }

    pub(super) fn add(&mut self, incr: Pins) {
        self.host_write += incr.host_write;
        self.host_read += incr.host_read;
        self.dev_write += incr.dev_write;
        self.dev_read += incr.dev_read;
    }

    pub(super) fn sub(&mut self, decr: Pins) {
        assert!(
            self.host_write >= decr.host_write,
            "host write pin underflow"
        );
        assert!(self.host_read >= decr.host_read, "host read pin underflow");
        assert!(
            self.dev_write >= decr.dev_write,
            "device write pin underflow"
        );
        assert!(self.dev_read >= decr.dev_read, "device read pin underflow");
        self.host_write -= decr.host_write;
        self.host_read -= decr.host_read;
        self.dev_write -= decr.dev_write;
        self.dev_read -= decr.dev_read;
    }
}

/// Xen's private view of an entry (`struct active_grant_entry`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ActiveEntry {
    /// The pin counters.
    pub pins: Pins,
    /// The domain the entry is pinned for (meaningful while pinned).
    pub domid: DomId,
    /// The granted frame at pin time.
    pub gfn: Gfn,
    /// The machine frame pinned.
    pub mfn: Mfn,
    /// The guest rewrote `GTF_reading`/`GTF_writing` itself while Xen owned them, so GT-FLAGS
    /// cannot be checked for this entry until the pin count drops to zero.
    pub status_tampered: bool,
}

const IDLE_ACTIVE: ActiveEntry = ActiveEntry {
    pins: Pins {
        host_write: 0,
        host_read: 0,
        dev_write: 0,
        dev_read: 0,
    },
    domid: DomId::DOM0,
    gfn: Gfn::new(0),
    mfn: Mfn::new(0),
    status_tampered: false,
};

/// One mapping held by this domain (`struct grant_mapping`); `flags == None` is free.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MaptrackEntry {
    /// The mapping kinds, `None` for a free entry.
    pub flags: Option<MapFlags>,
    /// The granting domain.
    pub granter: DomId,
    /// The granter's ref.
    pub gref: GrantRef,
}

const FREE_MAPTRACK: MaptrackEntry = MaptrackEntry {
    flags: None,
    granter: DomId::DOM0,
    gref: GrantRef::new(0),
};

/// One domain's grant table.
#[derive(Clone, Debug)]
pub struct GrantTable {
    pub(super) dom: DomId,
    pub(super) config: GrantConfig,
    pub(super) shared: Vec<GrantEntry>,
    pub(super) active: Vec<ActiveEntry>,
    pub(super) maptrack: Vec<MaptrackEntry>,
    /// Free handles, head first. Xen never hands out the last one (the tail sentinel).
    pub(super) free_handles: VecDeque<u32>,
    pub(super) dying: bool,
}

impl GrantTable {
    /// `grant_table_init` then `gnttab_grow_table(d, 0)`: one frame, no maptrack yet.
    pub(super) fn new(dom: DomId, config: GrantConfig) -> GrantTable {
        let entries = (INITIAL_NR_GRANT_FRAMES * GRANT_ENTRIES_PER_FRAME_V1) as usize;
        GrantTable {
            dom,
            config,
            shared: vec![GrantEntry::default(); entries],
            active: vec![IDLE_ACTIVE; entries],
            maptrack: Vec::new(),
            free_handles: VecDeque::new(),
            dying: false,
        }
    }

    /// Grant frames in use (`nr_grant_frames`).
    pub fn nr_frames(&self) -> u32 {
        u32::try_from(self.shared.len()).unwrap_or(u32::MAX) / GRANT_ENTRIES_PER_FRAME_V1
    }

    /// `max_grant_frames`.
    pub fn max_frames(&self) -> u32 {
        self.config.max_grant_frames
    }

    /// Number of entries (`nr_grant_entries`).
    pub fn nr_entries(&self) -> u32 {
        u32::try_from(self.shared.len()).unwrap_or(u32::MAX)
    }

    /// Maptrack frames allocated (`nr_maptrack_frames`).
    pub fn maptrack_frames(&self) -> u32 {
        u32::try_from(self.maptrack.len()).unwrap_or(u32::MAX) / MAPTRACK_PER_FRAME
    }

    /// Whether the domain is dying.
    pub fn is_dying(&self) -> bool {
        self.dying
    }

    /// The shared entry `gref`, if in range.
    pub fn entry(&self, gref: GrantRef) -> Option<GrantEntry> {
        self.shared.get(gref.index()).copied()
    }

    /// The active entry `gref`, if in range.
    pub fn active(&self, gref: GrantRef) -> Option<ActiveEntry> {
        self.active.get(gref.index()).copied()
    }

    /// The maptrack entry `handle`, if allocated.
    pub fn maptrack_entry(&self, handle: u32) -> Option<MaptrackEntry> {
        self.maptrack.get(handle as usize).copied()
    }

    /// Live mappings this domain holds.
    pub fn live_mappings(&self) -> u32 {
        let count = self.maptrack.iter().filter(|m| m.flags.is_some()).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The guest writes a whole entry into its shared frame (any value: a hostile guest can
    /// even clear `GTF_reading`). Out-of-range refs are not part of the table: `bad_gntref`.
    pub fn guest_write_entry(
        &mut self,
        gref: GrantRef,
        entry: GrantEntry,
    ) -> Result<(), GrantError> {
        let slot = self
            .shared
            .get_mut(gref.index())
            .ok_or(GrantError::BadGntref)?;
        let owned = GTF_READING | GTF_WRITING;
        let act = &mut self.active[gref.index()];
        // The status bits are Xen's: once the guest changes them (pinned or not), Xen's later
        // updates preserve what the guest wrote, so they no longer mirror the pins.
        if (slot.flags ^ entry.flags) & owned != 0 {
            act.status_tampered = true;
        }
        *slot = entry;
        Ok(())
    }

    /// Linux `gnttab_grant_foreign_access_ref`: frame and domid, then the flags.
    pub fn guest_grant_access(
        &mut self,
        gref: GrantRef,
        grantee: DomId,
        gfn: u32,
        readonly: bool,
    ) -> Result<(), GrantError> {
        let readonly_bit = if readonly { super::GTF_READONLY } else { 0 };
        let entry = GrantEntry {
            flags: super::GTF_PERMIT_ACCESS | readonly_bit,
            domid: grantee.raw(),
            frame: gfn,
        };
        self.guest_write_entry(gref, entry)
    }

    /// Linux `gnttab_end_foreign_access_ref`: compare-exchange the flags to 0, failing (and
    /// changing nothing) while Xen has `GTF_reading` or `GTF_writing` set (GT-REVOKE).
    pub fn guest_end_access(&mut self, gref: GrantRef) -> Result<bool, GrantError> {
        let slot = self
            .shared
            .get_mut(gref.index())
            .ok_or(GrantError::BadGntref)?;
        if slot.flags & (GTF_READING | GTF_WRITING) != 0 {
            return Ok(false);
        }
        slot.flags = 0;
        Ok(true)
    }

    /// `gnttab_grow_table`: grow to `nr_frames` (never shrinks).
    pub(super) fn grow(&mut self, nr_frames: u32) {
        assert!(
            nr_frames <= self.config.max_grant_frames,
            "grow past max_grant_frames"
        );
        let entries =
            (nr_frames.max(INITIAL_NR_GRANT_FRAMES) * GRANT_ENTRIES_PER_FRAME_V1) as usize;
        if entries > self.shared.len() {
            self.shared.resize(entries, GrantEntry::default());
            self.active.resize(entries, IDLE_ACTIVE);
        }
    }

    /// `get_maptrack_handle` with one free list: take the head unless it is the last entry;
    /// otherwise add a maptrack frame (its first entry is the handle, the rest go to the
    /// head of the list); with no frame left, `None` (Xen's steal finds nothing either).
    pub(super) fn get_handle(&mut self) -> Option<u32> {
        if self.free_handles.len() >= 2 {
            return self.free_handles.pop_front();
        }
        if self.maptrack_frames() >= self.config.max_maptrack_frames {
            return None;
        }
        let handle = u32::try_from(self.maptrack.len()).ok()?;
        let grown = self.maptrack.len() + MAPTRACK_PER_FRAME as usize;
        self.maptrack.resize(grown, FREE_MAPTRACK);
        for offset in (1..MAPTRACK_PER_FRAME).rev() {
            self.free_handles.push_front(handle + offset);
        }
        Some(handle)
    }

    /// `put_maptrack_handle`: the entry is free and goes to the tail of the list.
    pub(super) fn put_handle(&mut self, handle: u32) {
        let entry = &mut self.maptrack[handle as usize];
        *entry = FREE_MAPTRACK;
        self.free_handles.push_back(handle);
    }

    pub(super) fn set_maptrack(&mut self, handle: u32, entry: MaptrackEntry) {
        assert!(
            entry.flags.is_some(),
            "{:?}: live maptrack entry needs flags",
            self.dom
        );
        let slot = &mut self.maptrack[handle as usize];
        assert!(
            slot.flags.is_none(),
            "{:?}: handle {handle} already live",
            self.dom
        );
        *slot = entry;
    }

    /// `reduce_status_for_pin`: drop `GTF_reading` when nothing is pinned, and `GTF_writing`
    /// after a writable use when no writable pin is left.
    /// Always inlined: `copy_unpinned`'s fast path (every netback grant copy) calls it.
    #[inline(always)]
    pub(super) fn reduce_status_for_pin(&mut self, gref: GrantRef, readonly: bool) {
        let act = &mut self.active[gref.index()];
        let mut clear = if act.pins.is_zero() { GTF_READING } else { 0 };
        if !readonly && !act.pins.has_write() {
            clear |= GTF_WRITING;
        }
        let flags = &mut self.shared[gref.index()].flags;
        *flags &= !clear;
        if act.pins.is_zero() && *flags & (GTF_READING | GTF_WRITING) == 0 {
            act.status_tampered = false;
        }
    }

    /// Frees every maptrack entry (end of `gnttab_release_mappings`).
    pub(super) fn drop_maptrack(&mut self) {
        self.maptrack.clear();
        self.free_handles.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{GrantConfig, GrantTable, Pins, MAPTRACK_PER_FRAME};
    use crate::grant::{GrantError, GTF_READING};
    use crate::ids::{DomId, GrantRef};

    fn table(max_maptrack_frames: u32) -> GrantTable {
        let config = GrantConfig {
            max_maptrack_frames,
            ..GrantConfig::guest_default(false)
        };
        GrantTable::new(DomId::DOM0, config)
    }

    #[test]
    fn new_table_has_one_frame_of_512_entries() {
        let t = table(1);
        assert_eq!(t.nr_frames(), 1);
        assert_eq!(t.nr_entries(), 512);
    }

    #[test]
    fn first_handles_are_0_then_1() {
        let mut t = table(1);
        assert_eq!(t.get_handle(), Some(0));
        assert_eq!(t.get_handle(), Some(1));
    }

    #[test]
    fn one_maptrack_frame_yields_255_handles_keeping_the_sentinel() {
        let mut t = table(1);
        let handed = (0..MAPTRACK_PER_FRAME)
            .filter_map(|_| t.get_handle())
            .count();
        // 256 entries per frame, one stays on the list as Xen's tail sentinel.
        assert_eq!(handed, 255);
    }

    #[test]
    fn freed_handle_goes_to_the_tail_of_the_free_list() {
        let mut t = table(1);
        let first = t.get_handle().expect("handle");
        t.put_handle(first);
        assert_eq!(t.get_handle(), Some(1));
    }

    #[test]
    fn zero_maptrack_frames_gives_no_handle() {
        let mut t = table(0);
        assert_eq!(t.get_handle(), None);
    }

    #[test]
    fn pin_counter_with_top_bit_set_would_overflow() {
        // 128 = 1 << (GNTPIN_COUNTER_BITS - 1).
        let pins = Pins {
            host_read: 128,
            ..Pins::default()
        };
        let incr = Pins {
            host_read: 1,
            ..Pins::default()
        };
        assert!(pins.would_overflow(incr));
    }

    #[test]
    fn end_access_fails_while_reading_is_set() {
        let mut t = table(1);
        let gref = GrantRef::new(8);
        t.guest_grant_access(gref, DomId::DOM0, 0x1000, false)
            .expect("grant");
        t.shared[gref.index()].flags |= GTF_READING;
        assert_eq!(t.guest_end_access(gref), Ok(false));
    }

    #[test]
    fn write_past_table_is_bad_gntref() {
        let mut t = table(1);
        let gref = GrantRef::new(512);
        let err = t.guest_grant_access(gref, DomId::DOM0, 1, true);
        assert_eq!(err, Err(GrantError::BadGntref));
    }
}
