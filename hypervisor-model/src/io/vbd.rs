//! One connected vbd's data path: the shared blkif ring page, blkfront's view and state
//! (`blkfront.rs`) and blkback's (`blkback.rs`), the data pages both ends reach through
//! the grant tables, and the counters the metrics and tests read.
//!
//! Follows Linux drivers/block/xen-blkfront.c and drivers/block/xen-blkback/blkback.c
//! (their data path; the XenBus handshake is `handshake.rs`); spec `xenstore-io.md` §8.1,
//! §8.4, `cost-model.md` §3.3.
//!
//! # Invariants
//! - Every ring id blkfront has outstanding is a used `shadow` slot, exactly once, and a
//!   response for an id not in use is never accepted (RING-ONE-RESPONSE).
//! - `shadow` has `nr_ents` slots, each used or free; the backlog holds at most
//!   [`BACKLOG_IOS_MAX`] guest I/Os.
//! - `ios` has `nr_ents` slots, each used or free; a used shadow names a used `ios` slot,
//!   and an I/O's `parts_left` counts the shadows naming its slot.
//! - blkback's persistent grants number at most [`PERSISTENT_GRANTS_MAX`].
//!
//! xensim differs, on purpose: the data pages are a stand-in memory (`PageStore`) whose
//! sector contents are 8-byte stamps (the first 8 bytes of each 512-byte sector), enough to
//! check that what was written reads back; the guest's pages come from a stand-in gfn range.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::blkback::SEG_SPARE_MAX;
use super::blkif::{Dir, BLKIF_SLOT_BYTES};
use super::free_slots::FreeSlots;
use super::ring::{BackRing, FrontRing, RingWatch, SharedRing, RING_PAGE_BYTES};
use super::spare::SpareBuffers;
use crate::grant::{FrameError, GrantHandle, GuestFrames};
use crate::ids::{DomId, Gfn, GrantRef, Mfn};

pub use super::page_store::PageStore;

/// Linux blkback's `xen_blkif_max_pgrants` default: persistent grants per ring.
pub const PERSISTENT_GRANTS_MAX: usize = 1056;
/// Guest I/Os the block layer holds for a device while the ring is full (xensim's bound;
/// Linux's blk-mq tag set is the ring size, the rest wait in the submitter).
pub const BACKLOG_IOS_MAX: usize = 4096;
/// Largest guest I/O, in 512-byte sectors (1 MiB; Linux's `max_hw_sectors` for blkfront
/// with indirect descriptors is of this order).
pub const GUEST_IO_SECTORS_MAX: u32 = 2048;
/// Stand-in gfn of a device's first data page: `DATA_GFN_BASE + slot * DATA_GFNS_PER_DEVICE`.
pub const DATA_GFN_BASE: u64 = 0x10_0000;
/// Stand-in gfns per device (its page pool).
pub const DATA_GFNS_PER_DEVICE: u64 = 0x1000;

const _: () = assert!(PERSISTENT_GRANTS_MAX as u64 <= DATA_GFNS_PER_DEVICE);

/// What the guest asks of its disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IoOp {
    /// Read `sectors` from `sector`.
    Read,
    /// Write them (contents from `seed`).
    Write,
    /// Flush the disk's write cache.
    Flush,
}

impl IoOp {
    /// Stable code for the canonical encoding.
    pub const fn code(self) -> u8 {
        match self {
            IoOp::Read => 0,
            IoOp::Write => 1,
            IoOp::Flush => 2,
        }
    }

    /// The op of a code.
    pub const fn from_code(code: u8) -> Option<IoOp> {
        match code {
            0 => Some(IoOp::Read),
            1 => Some(IoOp::Write),
            2 => Some(IoOp::Flush),
            _ => None,
        }
    }
}

/// One guest I/O (a bio as blkfront receives it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GuestIo {
    /// The guest's own tag, echoed in the completion.
    pub tag: u64,
    /// What to do.
    pub op: IoOp,
    /// First 512-byte sector.
    pub sector: u64,
    /// Sectors (0 for a flush).
    pub sectors: u32,
    /// Seed of the written contents ([`sector_stamp`]).
    pub seed: u64,
}

/// What a guest I/O ended with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IoDone {
    /// The guest's tag.
    pub tag: u64,
    /// `BLKIF_RSP_*` (the worst of its ring requests).
    pub status: i16,
    /// Digest of the sector stamps read or written ([`digest_step`]).
    pub digest: u64,
    /// Bytes moved.
    pub bytes: u64,
}

/// The stamp a write with `seed` leaves in `sector` (never 0: 0 is "never written").
pub const fn sector_stamp(seed: u64, sector: u64) -> u64 {
    // splitmix64's finaliser over the pair.
    let mut z = seed ^ sector.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 {
        1
    } else {
        z
    }
}

/// Folds one sector stamp into a digest (FNV-style over u64 words).
pub const fn digest_step(digest: u64, stamp: u64) -> u64 {
    (digest ^ stamp).wrapping_mul(0x0000_0100_0000_01b3)
}

/// The digest's starting value.
pub const DIGEST_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// Stand-in physmap: `mfn = domid << 32 | gfn` (as the handshake's ring pages).
#[derive(Debug)]
pub struct StandInFrames;

impl GuestFrames for StandInFrames {
    fn translate(&self, dom: DomId, gfn: Gfn, _readonly: bool) -> Result<Mfn, FrameError> {
        Ok(Mfn::new((u64::from(dom.raw()) << 32) | gfn.raw()))
    }
}

/// A page of blkfront's pool: granted to the backend for good (persistent grants).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PoolPage {
    /// Its grant.
    pub gref: GrantRef,
    /// Its frame.
    pub mfn: Mfn,
}

/// One ring request blkfront has outstanding (Linux's `blk_shadow`).
#[derive(Clone, Debug)]
pub struct Shadow {
    /// The guest I/O it belongs to.
    pub tag: u64,
    /// Its direction (`None` for a flush).
    pub dir: Option<Dir>,
    /// Its data pages: the first `page_count` entries of its id's [`ShadowPages`].
    pub page_count: u8,
    /// Pool index of its indirect page (blkfront's 32 segments fit one).
    pub indirect: Option<u16>,
    /// The slot of its guest I/O in [`VbdPath::ios`].
    pub io_index: u16,
}

/// Most segments blkfront puts in one ring request (its indirect cap, or 11 direct).
pub const SHADOW_SEGS_MAX: usize = super::blkif::BLKFRONT_MAX_INDIRECT_SEGMENTS as usize;

const _: () = assert!(SHADOW_SEGS_MAX >= super::blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST);
const _: () = assert!(SHADOW_SEGS_MAX <= super::blkif::SEGS_PER_INDIRECT_FRAME);

/// Pool indices of a ring request's data pages, with the sectors used in each (Linux's
/// `shadow[id].grants_used`): kept per ring id beside the [`Shadow`]s, so that a request
/// is recorded and answered without copying the array.
pub type ShadowPages = [(u16, u8, u8); SHADOW_SEGS_MAX];

impl Shadow {
    /// Pool pages it holds (data and indirect).
    pub fn pages_used(&self) -> usize {
        usize::from(self.page_count) + usize::from(self.indirect.is_some())
    }
}

/// A guest I/O waiting in blkfront's backlog.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Backlogged {
    /// The guest I/O.
    pub io: GuestIo,
    /// The [`VbdPath::ios`] slot a placement that failed part-way (a grant could not be
    /// made) left it holding: the next placement fills that slot again.
    pub held_slot: Option<u16>,
}

/// A guest I/O blkfront split over ring requests.
#[derive(Clone, Copy, Debug)]
pub struct IoInFlight {
    /// The guest I/O itself (what `blkif_recover` re-issues after a reconnect).
    pub io: GuestIo,
    /// Ring requests not answered yet.
    pub parts_left: u32,
    /// Worst status so far.
    pub status: i16,
    /// Digest of the stamps so far (in request order).
    pub digest: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A persistent mapping blkback keeps (Linux's `persistent_gnt`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Persistent {
    /// The maptrack handle.
    pub handle: GrantHandle,
    /// The mapped frame.
    pub mfn: Mfn,
}

/// Ring notifications made and held back, per direction.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VbdCounters {
    /// Requests blkfront pushed.
    pub requests_pushed: u64,
    /// Request pushes that notified blkback.
    pub req_notify_count: u64,
    /// Request pushes the event index let blkfront skip.
    pub req_notify_suppressed: u64,
    /// Responses blkback pushed.
    pub responses_pushed: u64,
    /// Response pushes that notified blkfront.
    pub rsp_notify_count: u64,
    /// Response pushes the event index let blkback skip.
    pub rsp_notify_suppressed: u64,
    /// Requests answered with an error status.
    pub error_responses: u64,
    /// Indirect requests pushed.
    pub indirect_requests: u64,
}

/// The fixed parameters both ends agreed on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VbdParams {
    /// The guest.
    pub front_dom: DomId,
    /// The backend (dom0).
    pub back_dom: DomId,
    /// The device number (`virtual-device`, the request `handle`).
    pub vdev: u32,
    /// `feature-max-indirect-segments` as blkback advertised it (0: absent).
    pub back_max_indirect: u32,
    /// Segments per indirect request blkfront uses (0: no indirect).
    pub front_max_indirect: u32,
    /// `info` bit 4 / `mode = r`.
    pub read_only: bool,
    /// Disk size, 512-byte sectors.
    pub sectors: u64,
    /// The device's slot among its domain's vbds (its stand-in gfn range).
    pub slot: u32,
}

/// One vbd's data path.
#[derive(Clone, Debug)]
pub struct VbdPath {
    /// What both ends agreed on.
    pub params: VbdParams,
    /// The shared ring page.
    pub sring: SharedRing,
    /// blkfront's view.
    pub front: FrontRing,
    /// blkback's view.
    pub back: BackRing,
    /// blkback saw a bogus ring and stopped serving it.
    pub back_halted: bool,
    /// blkfront saw a bogus response index and stopped.
    pub front_failed: bool,
    /// A guest wrote the ring page behind its driver's back.
    pub scribbled: bool,
    /// blkfront: outstanding ring requests, indexed by their id (Linux's `shadow[]` with
    /// its `shadow_free` list, one per ring slot; the id of a request is its index here).
    pub shadow: FreeSlots<Shadow>,
    /// blkfront: the data pages of each ring id's request (valid for its shadow's
    /// `page_count` entries while the id is in use).
    pub shadow_pages: Vec<ShadowPages>,
    /// blkfront: guest I/Os waiting for ring slots.
    pub backlog: VecDeque<Backlogged>,
    /// blkfront: guest I/Os on the ring, in the slots their shadows name (each holds at
    /// least one ring request, so a slot per ring slot is enough).
    pub ios: FreeSlots<IoInFlight>,
    /// blkfront: its page pool and the free pool indices.
    pub pool: Vec<PoolPage>,
    /// Free pool indices.
    pub pool_free: Vec<u16>,
    /// blkback: persistent mappings by ref.
    pub persistent: BTreeMap<GrantRef, Persistent>,
    /// blkback: requests submitted to the disk and not answered.
    pub back_inflight: u32,
    /// blkback: a batch of consumed requests is waiting for dom0's CPU.
    pub back_busy: bool,
    /// A `lost-interrupt` fault ate a notification to the (frontend, backend) end since
    /// that end's handler last ran: the checker's lost-wakeup rule does not apply to it.
    pub irq_lost: (bool, bool),
    /// blkback: requests still to fail (a `disk-error` fault).
    pub back_fail_count: u32,
    /// Counters.
    pub counters: VbdCounters,
    /// Indices the checker saw last.
    pub watch: RingWatch,
    /// blkback: emptied segment lists of answered requests, kept so that mapping a
    /// request does not allocate (`back_recycle`; not state of the model).
    pub seg_spare: SpareBuffers<(Mfn, u8, u8), SEG_SPARE_MAX>,
}

impl VbdPath {
    /// A freshly connected device: an initialised single-page ring, empty pools.
    pub fn new(params: VbdParams) -> VbdPath {
        let sring = SharedRing::new(RING_PAGE_BYTES, BLKIF_SLOT_BYTES);
        let nr_ents = u16::try_from(sring.nr_ents()).expect("a single-page ring has 32 slots");
        let front = FrontRing::new(&sring);
        let back = BackRing::new(&sring);
        VbdPath {
            params,
            sring,
            front,
            back,
            back_halted: false,
            front_failed: false,
            scribbled: false,
            shadow: FreeSlots::new(nr_ents),
            shadow_pages: alloc::vec![[(0, 0, 0); SHADOW_SEGS_MAX]; usize::from(nr_ents)],
            backlog: VecDeque::new(),
            ios: FreeSlots::new(nr_ents),
            pool: Vec::new(),
            pool_free: Vec::new(),
            persistent: BTreeMap::new(),
            back_inflight: 0,
            back_busy: false,
            irq_lost: (false, false),
            back_fail_count: 0,
            counters: VbdCounters::default(),
            watch: RingWatch::default(),
            seg_spare: SpareBuffers::default(),
        }
    }

    /// Records the private indices after an operation; one of ours moving backwards is a
    /// model bug (RING-MONOTONIC), whatever the guest wrote into the page.
    pub fn note_indices(&mut self) {
        let now = RingWatch::of(&self.front, &self.back);
        let broken = self.watch.backwards(&now);
        assert!(
            broken.is_none(),
            "vbd ring index moved backwards: {broken:?}"
        );
        self.watch = now;
    }

    /// A guest writes `bytes` at `offset` of its ring page behind blkfront's back (what
    /// a buggy or hostile kernel can do); the ends see it on their next read.
    pub fn guest_scribble(&mut self, offset: usize, bytes: &[u8]) {
        self.scribbled = true;
        self.sring.scribble(offset, bytes);
    }

    /// The O(n) checks of this path (RING-MONOTONIC, and for a ring nobody scribbled on
    /// RING-BOUNDS, RING-NOTIFY and RING-ONE-RESPONSE; pool bounds): what is broken.
    pub fn check(&self, out: &mut Vec<&'static str>) {
        let nr = self.sring.nr_ents();
        let now = RingWatch::of(&self.front, &self.back);
        if self.watch.backwards(&now).is_some() {
            out.push("ring.monotonic");
        }
        if self.persistent.len() > PERSISTENT_GRANTS_MAX || self.pool.len() > PERSISTENT_GRANTS_MAX
        {
            out.push("vbd.grant_bounds");
        }
        if self.backlog.len() > BACKLOG_IOS_MAX {
            out.push("vbd.backlog_bound");
        }
        if self.scribbled || self.front_failed || self.back_halted {
            return;
        }
        if now.bounds(nr).is_some() {
            out.push("ring.bounds");
        }
        // RING-NOTIFY: between inputs no end sleeps with work on the ring (blkback idle
        // with requests left, blkfront with responses left): its final check re-armed the
        // event index, so the producer's push notified it.
        let requests_left = self.back.unconsumed_requests(&self.sring).unwrap_or(0);
        if !self.back_busy && !self.irq_lost.1 && requests_left > 0 {
            out.push("ring.lost_wakeup");
        }
        if !self.irq_lost.0 && self.front.unconsumed_responses(&self.sring).unwrap_or(0) > 0 {
            out.push("ring.lost_wakeup");
        }
        let outstanding = self.front.req_prod_pvt.wrapping_sub(self.front.rsp_cons);
        let in_use = self.shadow.used_count();
        if outstanding as usize != in_use || !self.shadow.accounts_for_every_slot() {
            out.push("ring.one_response");
        }
        let parts: u64 = self.ios.iter().map(|io| u64::from(io.parts_left)).sum();
        if parts != in_use as u64 {
            out.push("vbd.io_parts");
        }
        if !self.ios.accounts_for_every_slot() {
            out.push("vbd.io_slots");
        }
        let pooled =
            self.pool_free.len() + self.shadow.iter().map(Shadow::pages_used).sum::<usize>();
        if pooled != self.pool.len() {
            out.push("vbd.pool_pages");
        }
    }

    /// The most pool pages blkfront ever grants: a full ring of the largest requests.
    pub fn pool_pages_max(&self) -> usize {
        let segs = self.params.front_max_indirect.max(11) as usize;
        let indirect = usize::from(self.params.front_max_indirect > 0);
        let per_request = segs + indirect;
        (self.sring.nr_ents() as usize * per_request).min(PERSISTENT_GRANTS_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_differ_by_sector_and_seed_and_are_never_zero() {
        assert_ne!(sector_stamp(1, 0), sector_stamp(1, 1));
        assert_ne!(sector_stamp(1, 0), sector_stamp(2, 0));
        assert_ne!(sector_stamp(0, 0), 0);
    }

    fn params() -> VbdParams {
        VbdParams {
            front_dom: DomId::new(1).expect("d1"),
            back_dom: DomId::DOM0,
            vdev: 51712,
            back_max_indirect: 256,
            front_max_indirect: 32,
            read_only: false,
            sectors: 1 << 20,
            slot: 0,
        }
    }

    #[test]
    fn pool_covers_a_full_ring_of_indirect_requests() {
        // 32 slots x (32 segments + 1 indirect page) = 1056, Linux's persistent limit.
        assert_eq!(VbdPath::new(params()).pool_pages_max(), 1056);
    }

    #[test]
    fn checker_flags_an_idle_backend_with_requests_left() {
        // A request published on the ring that blkback never looked at: a lost wake-up.
        let mut path = VbdPath::new(params());
        path.front.req_prod_pvt = 1;
        path.front.push_requests(&mut path.sring);
        let mut broken = Vec::new();
        path.check(&mut broken);
        assert!(broken.contains(&"ring.lost_wakeup"));
    }

    /// A path whose first kick could not place a 4 KiB read of tag 7: the guest has no
    /// grant table, so blkfront's pool cannot grow. With the grants, pages and that kick.
    fn path_with_an_unplaced_read() -> (
        VbdPath,
        crate::grant::GrantTables,
        PageStore,
        crate::io::blkfront::FrontPush,
    ) {
        let mut path = VbdPath::new(params());
        let mut grants = crate::grant::GrantTables::new();
        let mut pages = PageStore::default();
        let io = GuestIo {
            tag: 7,
            op: IoOp::Read,
            sector: 0,
            sectors: 8,
            seed: 7,
        };
        assert_eq!(path.front_submit(io), Ok(()));
        let first = path.front_kick(&mut grants, &mut pages);
        (path, grants, pages, first)
    }

    #[test]
    fn io_whose_grant_fails_keeps_one_slot_across_retries() {
        let (mut path, mut grants, mut pages, first) = path_with_an_unplaced_read();
        let second = path.front_kick(&mut grants, &mut pages);
        assert_eq!((first.pushed, second.pushed), (0, 0));
        // One slot held for tag 7 (as the tag-keyed map held one entry), the I/O waits.
        assert_eq!(path.ios.free_count(), path.ios.len() - 1);
        assert_eq!(path.backlog.len(), 1);
        assert_eq!(path.backlog.front().and_then(|b| b.held_slot), Some(0));
    }

    #[test]
    fn io_whose_grant_failed_goes_out_in_the_slot_it_held() {
        // As the tag search this replaces: once the guest has a grant table, the retry
        // fills the slot the failed placement left (slot 0), not a second one.
        let (mut path, mut grants, mut pages, first) = path_with_an_unplaced_read();
        let config = crate::grant::GrantConfig::guest_default(true);
        assert_eq!(grants.create(params().front_dom, config), Ok(()));

        let second = path.front_kick(&mut grants, &mut pages);

        assert_eq!((first.pushed, second.pushed), (0, 1));
        assert_eq!(path.ios.get(0).map(|i| i.io.tag), Some(7));
        assert_eq!(path.ios.free_count(), path.ios.len() - 1);
        assert!(path.backlog.is_empty());
    }

    #[test]
    fn page_store_forgets_only_the_domain() {
        let mut store = PageStore::default();
        let mine = Mfn::new((1u64 << 32) | 5);
        let other = Mfn::new((2u64 << 32) | 5);
        store.set_stamp(mine, 0, 9);
        store.set_stamp(other, 0, 9);
        store.forget_domain(DomId::new(1).expect("d1"));
        assert_eq!(store.stamp(mine, 0), 0);
        assert_eq!(store.stamp(other, 0), 9);
    }
}
