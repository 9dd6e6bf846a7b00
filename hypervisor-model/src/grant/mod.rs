//! Grant tables, version 1: the shared entries a guest writes, Xen's active entries and pin
//! counts, each mapper's maptrack handles, and the `GNTTABOP_*` operations map, unmap, copy,
//! setup_table and query_size with their `GNTST_*` statuses.
//!
//! Follows xen/common/grant_table.c (Xen 4.17: `map_grant_ref`, `unmap_common`,
//! `unmap_common_complete`, `_set_status_v1`, `reduce_status_for_pin`,
//! `acquire_grant_for_copy`, `release_grant_for_copy`, `gnttab_copy_one`,
//! `get_maptrack_handle`, `put_maptrack_handle`, `gnttab_setup_table`, `gnttab_query_size`,
//! `gnttab_grow_table`, `grant_table_init`, `gnttab_release_mappings`),
//! xen/include/public/grant_table.h and xen/arch/x86/include/asm/grant_table.h; spec
//! `xenstore-io.md` §7 and §9 (GT-*).
//!
//! Layers: [`GrantTables`] (ops.rs, copy.rs) is the host-wide table the hypervisor layer
//! calls; [`table::GrantTable`] (table.rs) is one domain's shared and active entries and
//! maptrack; check.rs holds the O(n) invariant checks.
//!
//! # Memory boundary
//! The memory subsystem does not exist yet, so frames are ids only. Whenever Xen would look
//! up a granted frame (`get_paged_frame`) the operation calls [`GuestFrames::translate`] on
//! the argument the caller passes; tests implement it with a fixed formula. Page reference
//! counts are not kept here: a frame stays referenced exactly while an active entry pins it
//! ([`GrantTables::pinned_frames`]), which is what the memory subsystem must honour.
//! Copies move no bytes: [`GrantTables::copy`] returns the two frames and offsets.
//!
//! # Invariants
//! - Pin counts on a granter's entry equal the live maptrack entries that name it (GT-FLAGS).
//! - A live mapping's granter entry is pinned for the mapping domain (GT-GRANTEE).
//! - Every maptrack handle is either live or on the free list, never both (GT-HANDLES).
//! - A dying mapper has no live mapping (GT-DEATH); a granter's table outlives every
//!   mapping of its frames (the zombie rule).
//!
//! xensim differs / leaves out on purpose: grant v2, transitive and sub-page grants,
//! `GNTTABOP_transfer`, `unmap_and_replace`, `swap_grant_ref`, cache flush, the IOMMU
//! maptrack tree, partial unmaps (an unmap drops both the host and device parts), and
//! host/device addresses (`GNTST_bad_virt_addr` and `GNTST_bad_dev_addr` are never produced).
//! Xen keeps one maptrack free list per vCPU and steals from a random vCPU; xensim keeps one
//! list per domain, as if every map came from vCPU 0, which is deterministic and equal to Xen
//! for single-vCPU backends.

pub mod table;

mod check;
mod copy;
mod ops;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests_ops;

pub use copy::{Copied, CopyOp, CopyPtr, CopySide};
pub use ops::{GrantTables, MapRequest, Mapped, QuerySize, Unmapped};
pub use table::{GrantConfig, GrantEntry, GrantTable};

use crate::ids::{DomId, Gfn, Mfn};
use crate::limits::PAGE_BYTES;

/// Bytes in one v1 entry (`sizeof(grant_entry_v1_t)`).
pub const GRANT_ENTRY_V1_BYTES: u32 = 8;
/// v1 entries per grant frame: 4096 / 8.
pub const GRANT_ENTRIES_PER_FRAME_V1: u32 = 512;
/// Grant frames a domain starts with (`INITIAL_NR_GRANT_FRAMES`, x86).
pub const INITIAL_NR_GRANT_FRAMES: u32 = 1;
/// Xen's default and ceiling for `max_grant_frames` (`opt_max_grant_frames`). libxl 4.17
/// passes -1 (`LIBXL_MAX_GRANT_DEFAULT`) unless xl.cfg sets it, so guests get 64.
pub const MAX_GRANT_FRAMES_DEFAULT: u32 = 64;
/// Xen's default and ceiling for `max_maptrack_frames` (`opt_max_maptrack_frames`).
pub const MAX_MAPTRACK_FRAMES_DEFAULT: u32 = 1024;
/// Bytes in one maptrack entry (`sizeof(struct grant_mapping)`).
pub const MAPTRACK_ENTRY_BYTES: u32 = 16;
/// Maptrack entries per frame (`MAPTRACK_PER_PAGE`): 4096 / 16.
pub const MAPTRACK_PER_FRAME: u32 = 256;
/// Refs reserved for the toolstack (`GNTTAB_NR_RESERVED_ENTRIES`): 0 console, 1 xenstore.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Width of each of the four pin counters (`GNTPIN_cntr_width`).
pub const GNTPIN_COUNTER_BITS: u32 = 8;

const _: () = assert!((GRANT_ENTRIES_PER_FRAME_V1 * GRANT_ENTRY_V1_BYTES) as u64 == PAGE_BYTES);
const _: () = assert!((MAPTRACK_PER_FRAME * MAPTRACK_ENTRY_BYTES) as u64 == PAGE_BYTES);
const _: () =
    assert!(INITIAL_NR_GRANT_FRAMES * GRANT_ENTRIES_PER_FRAME_V1 >= GNTTAB_NR_RESERVED_ENTRIES);
const _: () = assert!(INITIAL_NR_GRANT_FRAMES <= MAX_GRANT_FRAMES_DEFAULT);

/// `GTF_invalid`: entry type 0, no access.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: the named domain may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer` (transfers are not modelled).
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive` (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: only read-only mappings and copies from.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: Xen sets it while the entry is pinned.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: Xen sets it while the entry is pinned writable.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_sub_page` (v2 only; a v1 map refuses an entry with it set).
pub const GTF_SUB_PAGE: u16 = 1 << 8;

/// `GNTMAP_device_map`.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`.
pub const GNTMAP_READONLY: u32 = 1 << 2;

/// The mapping kinds of a `map_grant_ref` (`GNTMAP_*` bits this model reads).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MapFlags {
    /// `GNTMAP_host_map`: a CPU mapping.
    pub host_map: bool,
    /// `GNTMAP_device_map`: a device (bus address) mapping.
    pub device_map: bool,
    /// `GNTMAP_readonly`.
    pub readonly: bool,
}

impl MapFlags {
    /// A writable CPU mapping (`GNTMAP_host_map` alone): how backends map a frontend's
    /// ring pages and data grants.
    pub const HOST_RW: MapFlags = MapFlags {
        host_map: true,
        device_map: false,
        readonly: false,
    };

    /// Decodes the guest's `flags` word; other bits are ignored.
    pub const fn from_bits(bits: u32) -> MapFlags {
        MapFlags {
            host_map: bits & GNTMAP_HOST_MAP != 0,
            device_map: bits & GNTMAP_DEVICE_MAP != 0,
            readonly: bits & GNTMAP_READONLY != 0,
        }
    }

    /// The `GNTMAP_*` bits.
    pub const fn bits(self) -> u32 {
        let mut bits = 0;
        if self.host_map {
            bits |= GNTMAP_HOST_MAP;
        }
        if self.device_map {
            bits |= GNTMAP_DEVICE_MAP;
        }
        if self.readonly {
            bits |= GNTMAP_READONLY;
        }
        bits
    }
}

/// A maptrack handle (`grant_handle_t`): an index into the mapper's maptrack table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct GrantHandle(pub u32);

/// Why a frame lookup failed (`check_get_page_from_gfn` in `get_paged_frame`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// No page, a foreign page, or not the domain's: `GNTST_bad_page`.
    Invalid,
    /// Paged out or shared and needing unsharing: `GNTST_eagain`.
    PagedOut,
}

/// The boundary to the memory subsystem: "which machine frame backs `gfn` of `dom`".
pub trait GuestFrames {
    /// The frame backing `gfn` in `dom`'s physmap, for reading or for writing.
    fn translate(&self, dom: DomId, gfn: Gfn, readonly: bool) -> Result<Mfn, FrameError>;
}

/// A failed grant operation: the `GNTST_*` status Xen writes into the op's `status` field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantError {
    /// `GNTST_address_too_big` (-11).
    AddressTooBig,
    /// `GNTST_bad_copy_arg` (-10): offset + length past the 4 KiB page.
    BadCopyArg,
    /// `GNTST_bad_dev_addr` (-6).
    BadDevAddr,
    /// `GNTST_bad_domain` (-2).
    BadDomain,
    /// `GNTST_bad_gntref` (-3).
    BadGntref,
    /// `GNTST_bad_handle` (-4).
    BadHandle,
    /// `GNTST_bad_page` (-9).
    BadPage,
    /// `GNTST_bad_virt_addr` (-5).
    BadVirtAddr,
    /// `GNTST_eagain` (-12).
    Eagain,
    /// `GNTST_general_error` (-1).
    GeneralError,
    /// `GNTST_no_device_space` (-7).
    NoDeviceSpace,
    /// `GNTST_no_space` (-13): maptrack exhausted.
    NoSpace,
    /// `GNTST_permission_denied` (-8).
    PermissionDenied,
}

impl GrantError {
    /// The `GNTST_*` value.
    pub const fn code(self) -> i16 {
        match self {
            GrantError::GeneralError => -1,
            GrantError::BadDomain => -2,
            GrantError::BadGntref => -3,
            GrantError::BadHandle => -4,
            GrantError::BadVirtAddr => -5,
            GrantError::BadDevAddr => -6,
            GrantError::NoDeviceSpace => -7,
            GrantError::PermissionDenied => -8,
            GrantError::BadPage => -9,
            GrantError::BadCopyArg => -10,
            GrantError::AddressTooBig => -11,
            GrantError::Eagain => -12,
            GrantError::NoSpace => -13,
        }
    }

    /// The `GNTST_*` name, as `GNTST_bad_gntref`.
    pub const fn name(self) -> &'static str {
        match self {
            GrantError::GeneralError => "GNTST_general_error",
            GrantError::BadDomain => "GNTST_bad_domain",
            GrantError::BadGntref => "GNTST_bad_gntref",
            GrantError::BadHandle => "GNTST_bad_handle",
            GrantError::BadVirtAddr => "GNTST_bad_virt_addr",
            GrantError::BadDevAddr => "GNTST_bad_dev_addr",
            GrantError::NoDeviceSpace => "GNTST_no_device_space",
            GrantError::PermissionDenied => "GNTST_permission_denied",
            GrantError::BadPage => "GNTST_bad_page",
            GrantError::BadCopyArg => "GNTST_bad_copy_arg",
            GrantError::AddressTooBig => "GNTST_address_too_big",
            GrantError::Eagain => "GNTST_eagain",
            GrantError::NoSpace => "GNTST_no_space",
        }
    }

    fn from_frame(err: FrameError) -> GrantError {
        match err {
            FrameError::Invalid => GrantError::BadPage,
            FrameError::PagedOut => GrantError::Eagain,
        }
    }
}

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;

#[cfg(test)]
mod tests {
    use super::{GrantError, MapFlags, GNTMAP_HOST_MAP, GNTMAP_READONLY};

    #[test]
    fn bad_copy_arg_is_minus_10() {
        assert_eq!(GrantError::BadCopyArg.code(), -10);
        assert_eq!(GrantError::BadCopyArg.name(), "GNTST_bad_copy_arg");
    }

    #[test]
    fn map_flags_round_trip_host_readonly() {
        let bits = GNTMAP_HOST_MAP | GNTMAP_READONLY;
        assert_eq!(MapFlags::from_bits(bits).bits(), bits);
    }
}
