//! blkback's data path: reads the frontend's `req_prod` from the shared page and refuses a
//! ring that claims more requests than it can hold, copies each request out of its slot,
//! validates it, maps its pages (and indirect pages) through the grant tables, and turns it
//! into a disk command or an error response; completed commands become responses.
//!
//! Follows Linux drivers/block/xen-blkback/blkback.c: `__do_block_io_op` (the
//! `RING_REQUEST_PROD_OVERFLOW` check, "Frontend provided bogus ring requests", halting the
//! ring), `dispatch_rw_block_io`, `xen_blkbk_parseseg`/`xen_blkbk_map` (persistent grants,
//! always mapped writable), `make_response` (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`), and
//! `xen_blkif_schedule` (`RING_FINAL_CHECK_FOR_REQUESTS` before sleeping); spec
//! `xenstore-io.md` §7.4, §8.4.
//!
//! # Invariants
//! - A request is copied out of the ring before it is decoded (no double fetch).
//! - A request that fails validation or a grant map gets exactly one error response and
//!   touches no disk; every mapping it made is undone.
//! - Persistent mappings stay below [`PERSISTENT_GRANTS_MAX`]; past it a page is mapped for
//!   the request only and unmapped at its response.
//!
//! xensim differs: `WRITE_BARRIER` is a cache flush without draining earlier requests.

use alloc::vec::Vec;

use super::blkif::{
    self, BlkReqError, BlkRequest, BlkResponse, Dir, Segment, BLKIF_OP_DISCARD, BLKIF_RSP_OKAY,
    BLKIF_SLOT_BYTES, SEGS_PER_INDIRECT_FRAME,
};
use super::ring::RingOverflow;
use super::vbd::{PageStore, Persistent, StandInFrames, VbdPath, PERSISTENT_GRANTS_MAX};
use crate::grant::{GrantHandle, GrantTables, MapFlags, MapRequest};
use crate::ids::{GrantRef, Mfn};
use crate::platform::DiskOp;

/// Most emptied segment lists a vbd keeps for reuse (one per ring slot).
pub const SEG_SPARE_MAX: usize = 32;

/// A request blkback accepted: what goes to the disk and what the response needs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BackIo {
    /// The request's id.
    pub id: u64,
    /// The operation to echo.
    pub op: u8,
    /// What the disk does.
    pub disk_op: DiskOp,
    /// First sector.
    pub sector: u64,
    /// Sectors.
    pub sectors: u32,
    /// The mapped pages with their sector ranges, in order.
    pub segs: Vec<(Mfn, u8, u8)>,
    /// Mappings made for this request only (unmapped at its response).
    pub transient: Vec<GrantHandle>,
    /// Stamps to write (WRITE), one per sector.
    pub data: Vec<u64>,
    /// Grant maps this request made (charged as `io.gnttab_map_ns`).
    pub maps_made: u32,
}

/// What one consumed request became.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BackOutcome {
    /// Send it to the disk.
    Submit(BackIo),
    /// Answer it with an error at once (the reason is logged).
    Reject(BlkResponse, BlkReqError),
}

impl VbdPath {
    /// Consumes every request the ring offers now (none once halted) into `out`, which
    /// the caller hands in empty (a reused buffer). `Err` when the frontend's `req_prod` is
    /// bogus: the ring is halted for good.
    pub fn back_consume(
        &mut self,
        grants: &mut GrantTables,
        pages: &PageStore,
        out: &mut Vec<BackOutcome>,
    ) -> Result<(), RingOverflow> {
        debug_assert!(out.is_empty(), "the outcome buffer is handed in empty");
        if self.back_halted {
            return Ok(());
        }
        let count = match self.back.unconsumed_requests(&self.sring) {
            Ok(count) => count,
            Err(overflow) => {
                self.back_halted = true;
                return Err(overflow);
            }
        };
        for _ in 0..count {
            assert!(
                !self.back.cons_overflow(),
                "consumed past the response slots"
            );
            let mut slot = [0u8; BLKIF_SLOT_BYTES];
            slot.copy_from_slice(self.sring.slot(self.back.req_cons));
            self.back.req_cons = self.back.req_cons.wrapping_add(1);
            out.push(self.back_request(&slot, grants, pages));
        }
        self.note_indices();
        Ok(())
    }

    /// After a batch: re-arm `req_event` and look once more; true if more arrived.
    pub fn back_final_check(&mut self) -> Result<bool, RingOverflow> {
        if self.back_halted {
            return Ok(false);
        }
        let more = self.back.final_check_for_requests(&mut self.sring);
        if more.is_err() {
            self.back_halted = true;
        }
        more
    }

    fn back_request(
        &mut self,
        slot: &[u8],
        grants: &mut GrantTables,
        pages: &PageStore,
    ) -> BackOutcome {
        let (id, op) = blkif::slot_id_op(slot);
        let reject = |err: BlkReqError| {
            let rsp = BlkResponse {
                id,
                op,
                status: err.status(),
            };
            BackOutcome::Reject(rsp, err)
        };
        let request = match blkif::decode_request(slot, self.params.back_max_indirect) {
            Ok(request) => request,
            Err(err) => return reject(err),
        };
        match self.back_prepare(&request, grants, pages) {
            Ok(io) => BackOutcome::Submit(io),
            Err(err) => reject(err),
        }
    }

    /// The request by reference: it is large, and only its segments are read.
    fn back_prepare(
        &mut self,
        request: &BlkRequest,
        grants: &mut GrantTables,
        pages: &PageStore,
    ) -> Result<BackIo, BlkReqError> {
        match *request {
            BlkRequest::Flush { id, op } => Ok(bare(id, op, DiskOp::Flush, 0, 0)),
            BlkRequest::Discard {
                id,
                sector,
                nr_sectors,
            } => {
                if self.params.read_only {
                    return Err(BlkReqError::ReadOnly);
                }
                self.check_range(sector, nr_sectors)?;
                let sectors = u32::try_from(nr_sectors).map_err(|_| BlkReqError::OutOfRange)?;
                Ok(bare(id, BLKIF_OP_DISCARD, DiskOp::Discard, sector, sectors))
            }
            BlkRequest::Direct {
                dir,
                id,
                sector,
                ref segs,
                nr_segs,
            } => {
                let segs = &segs[..usize::from(nr_segs)];
                self.back_rw(dir, id, sector, segs, Vec::new(), grants, pages)
            }
            BlkRequest::Indirect {
                dir,
                id,
                sector,
                nr_segs,
                pages: ref indirect,
            } => {
                let mut io_maps = Vec::new();
                let segs = self.read_indirect(nr_segs, indirect, grants, pages, &mut io_maps);
                match segs {
                    Ok(segs) => self.back_rw(dir, id, sector, &segs, io_maps, grants, pages),
                    Err(err) => {
                        unmap_all(grants, self.params.back_dom, &io_maps);
                        Err(err)
                    }
                }
            }
        }
    }

    /// Maps the indirect pages and copies the descriptors out of them.
    fn read_indirect(
        &mut self,
        nr_segs: u16,
        indirect: &[GrantRef],
        grants: &mut GrantTables,
        pages: &PageStore,
        transient: &mut Vec<GrantHandle>,
    ) -> Result<Vec<Segment>, BlkReqError> {
        let nr = usize::from(nr_segs);
        let mut segs = Vec::with_capacity(nr);
        for (page_index, gref) in indirect.iter().take(blkif::indirect_pages(nr)).enumerate() {
            let mfn = self.back_map(*gref, grants, transient)?.0;
            let first = page_index * SEGS_PER_INDIRECT_FRAME;
            let count = (nr - first).min(SEGS_PER_INDIRECT_FRAME);
            for i in 0..count {
                let mut raw = [0u8; 8];
                // A page never written reads as zeros (as does one too short).
                let _ = pages.read(mfn, 8 * i, &mut raw);
                segs.push(Segment::decode(&raw));
            }
        }
        Ok(segs)
    }

    fn check_range(&self, sector: u64, sectors: u64) -> Result<(), BlkReqError> {
        match sector.checked_add(sectors) {
            Some(end) if end <= self.params.sectors => Ok(()),
            _ => Err(BlkReqError::OutOfRange),
        }
    }

    /// READ/WRITE: bounds, permissions, then every segment's page mapped.
    #[allow(clippy::too_many_arguments)]
    fn back_rw(
        &mut self,
        dir: Dir,
        id: u64,
        sector: u64,
        segs: &[Segment],
        mut transient: Vec<GrantHandle>,
        grants: &mut GrantTables,
        pages: &PageStore,
    ) -> Result<BackIo, BlkReqError> {
        let result = self.back_rw_map(dir, sector, segs, &mut transient, grants);
        let (mapped, sectors, maps_made) = match result {
            Ok(ok) => ok,
            Err(err) => {
                unmap_all(grants, self.params.back_dom, &transient);
                return Err(err);
            }
        };
        let mut data = Vec::new();
        if dir == Dir::Write {
            data.reserve(sectors as usize);
            for &(mfn, first, last) in &mapped {
                pages.stamps_into(mfn, first, last, &mut data);
            }
        }
        let disk_op = match dir {
            Dir::Read => DiskOp::Read,
            Dir::Write => DiskOp::Write,
        };
        Ok(BackIo {
            id,
            op: dir.op(),
            disk_op,
            sector,
            sectors,
            segs: mapped,
            transient,
            data,
            maps_made,
        })
    }

    #[allow(clippy::type_complexity)]
    fn back_rw_map(
        &mut self,
        dir: Dir,
        sector: u64,
        segs: &[Segment],
        transient: &mut Vec<GrantHandle>,
        grants: &mut GrantTables,
    ) -> Result<(Vec<(Mfn, u8, u8)>, u32, u32), BlkReqError> {
        if dir == Dir::Write && self.params.read_only {
            return Err(BlkReqError::ReadOnly);
        }
        let mut sectors: u32 = 0;
        for seg in segs {
            sectors += u32::from(seg.sectors()?);
        }
        self.check_range(sector, u64::from(sectors))?;
        // A segment list an answered request gave back, if any (no allocation).
        let mut mapped = self.seg_spare.take();
        mapped.reserve(segs.len());
        let mut maps_made = 0;
        for seg in segs {
            let (mfn, fresh) = self.back_map(seg.gref, grants, transient)?;
            maps_made += u32::from(fresh);
            mapped.push((mfn, seg.first_sect, seg.last_sect));
        }
        Ok((mapped, sectors, maps_made))
    }

    /// The frame of `gref`: a persistent mapping, or a new map (kept persistent below the
    /// cap, else recorded in `transient`). True if a map was made.
    fn back_map(
        &mut self,
        gref: GrantRef,
        grants: &mut GrantTables,
        transient: &mut Vec<GrantHandle>,
    ) -> Result<(Mfn, bool), BlkReqError> {
        if let Some(p) = self.persistent.get(&gref) {
            return Ok((p.mfn, false));
        }
        let req = MapRequest {
            granter: self.params.front_dom,
            gref,
            flags: MapFlags::HOST_RW,
        };
        let mapped = grants
            .map_grant_ref(self.params.back_dom, req, &StandInFrames)
            .map_err(|e| BlkReqError::Grant(e.code()))?;
        if self.persistent.len() < PERSISTENT_GRANTS_MAX {
            let p = Persistent {
                handle: mapped.handle,
                mfn: mapped.mfn,
            };
            self.persistent.insert(gref, p);
        } else {
            transient.push(mapped.handle);
        }
        Ok((mapped.mfn, true))
    }

    /// The disk finished `io`: reads land in the guest's pages, transient maps go, and
    /// the response is pushed. True if blkfront must be notified.
    pub fn back_complete(
        &mut self,
        io: &BackIo,
        ok: bool,
        data: &[u64],
        grants: &mut GrantTables,
        pages: &mut PageStore,
    ) -> bool {
        if ok && io.disk_op == DiskOp::Read {
            // Each segment takes the next stamps in order; past the data they read as 0.
            let mut rest: &[u64] = data;
            for &(mfn, first, last) in &io.segs {
                let count = usize::from(last - first) + 1;
                if let Some((now, later)) = rest.split_at_checked(count) {
                    pages.set_stamps(mfn, first, now.iter().copied());
                    rest = later;
                } else {
                    let now = rest.iter().copied().chain(core::iter::repeat(0));
                    pages.set_stamps(mfn, first, now.take(count));
                    rest = &[];
                }
            }
        }
        unmap_all(grants, self.params.back_dom, &io.transient);
        let status = if ok {
            BLKIF_RSP_OKAY
        } else {
            blkif::BLKIF_RSP_ERROR
        };
        self.back_respond(BlkResponse {
            id: io.id,
            op: io.op,
            status,
        })
    }

    /// `io` was answered: its emptied segment list is kept for a later request, within
    /// [`SEG_SPARE_MAX`] (a bound, not a behaviour: past it the list is freed).
    pub fn back_recycle(&mut self, io: BackIo) {
        let mut segs = io.segs;
        segs.clear();
        self.seg_spare.keep(segs);
    }

    /// `make_response`: one response in the next slot, pushed. True if blkfront must be
    /// notified. A halted ring gets no more responses.
    pub fn back_respond(&mut self, rsp: BlkResponse) -> bool {
        if self.back_halted {
            return false;
        }
        if rsp.status != BLKIF_RSP_OKAY {
            self.counters.error_responses += 1;
        }
        rsp.encode(self.sring.slot_mut(self.back.rsp_prod_pvt));
        self.back.rsp_prod_pvt = self.back.rsp_prod_pvt.wrapping_add(1);
        let notify = self.back.push_responses(&mut self.sring);
        self.note_indices();
        self.counters.responses_pushed += 1;
        if notify {
            self.counters.rsp_notify_count += 1;
        } else {
            self.counters.rsp_notify_suppressed += 1;
        }
        notify
    }

    /// The backend disconnects: every persistent mapping is unmapped.
    pub fn back_release(&mut self, grants: &mut GrantTables) {
        let handles: Vec<GrantHandle> = self.persistent.values().map(|p| p.handle).collect();
        self.persistent.clear();
        unmap_all(grants, self.params.back_dom, &handles);
    }
}

fn bare(id: u64, op: u8, disk_op: DiskOp, sector: u64, sectors: u32) -> BackIo {
    BackIo {
        id,
        op,
        disk_op,
        sector,
        sectors,
        segs: Vec::new(),
        transient: Vec::new(),
        data: Vec::new(),
        maps_made: 0,
    }
}

fn unmap_all(grants: &mut GrantTables, mapper: crate::ids::DomId, handles: &[GrantHandle]) {
    for handle in handles {
        // A mapping of a granter already torn down is gone with it.
        let _ = grants.unmap_grant_ref(mapper, *handle);
    }
}

/// blkback's commands at the disk, by tag. Tags are handed out one after another, so the
/// table is a window of slots from the oldest tag still in flight: finding, adding and
/// removing a command index the window instead of searching a tree.
///
/// # Invariants
/// - Slot `i` holds the command of tag `base_tag + i`, if it is still in flight; the
///   first slot is never empty, and `count` is the number of full slots.
#[derive(Clone, Debug)]
pub struct DiskInflight<T> {
    slots: alloc::collections::VecDeque<Option<T>>,
    base_tag: u64,
    count: usize,
}

impl<T> Default for DiskInflight<T> {
    fn default() -> Self {
        DiskInflight {
            slots: alloc::collections::VecDeque::new(),
            base_tag: 0,
            count: 0,
        }
    }
}

impl<T> DiskInflight<T> {
    /// Commands in flight.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no command is in flight.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The tag just past the window.
    fn end_tag(&self) -> u64 {
        let len = u64::try_from(self.slots.len()).expect("slot count fits u64");
        self.base_tag + len
    }

    /// Adds the command of `tag`, which must be newer than every tag added before.
    pub fn insert(&mut self, tag: u64, value: T) {
        if self.slots.is_empty() {
            self.base_tag = tag;
        }
        assert!(tag >= self.end_tag(), "disk tag {tag} added out of order");
        // Tags skipped (none, as blkback hands them out) stay empty slots.
        while self.end_tag() < tag {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(value));
        self.count += 1;
    }

    /// Takes the command of `tag` out.
    pub fn remove(&mut self, tag: u64) -> Option<T> {
        let index = usize::try_from(tag.checked_sub(self.base_tag)?).ok()?;
        let value = self.slots.get_mut(index)?.take()?;
        self.count -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base_tag += 1;
        }
        debug_assert_eq!(self.slots.is_empty(), self.count == 0);
        Some(value)
    }

    /// Every command in flight with its tag, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base_tag = self.base_tag;
        let tags = (0u64..).map(move |i| base_tag + i);
        tags.zip(self.slots.iter())
            .filter_map(|(tag, slot)| Some((tag, slot.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    proptest! {
        /// The window answers as the `BTreeMap` it replaces, whatever the completion order.
        #[test]
        fn disk_inflight_matches_btreemap(
            // true = submit the next tag; false = complete the pick-th command in flight.
            steps in prop::collection::vec((any::<bool>(), 0usize..8), 0..80),
        ) {
            let mut table: DiskInflight<u64> = DiskInflight::default();
            let mut reference: BTreeMap<u64, u64> = BTreeMap::new();
            let mut next_tag = 5;
            for (submit, pick) in steps {
                if submit {
                    table.insert(next_tag, next_tag * 3);
                    reference.insert(next_tag, next_tag * 3);
                    next_tag += 1;
                } else {
                    let tag = reference.keys().nth(pick).copied().unwrap_or(next_tag + 1);
                    prop_assert_eq!(table.remove(tag), reference.remove(&tag));
                }
                prop_assert_eq!(table.len(), reference.len());
                let listed: Vec<(u64, u64)> = table.iter().map(|(t, v)| (t, *v)).collect();
                let expected: Vec<(u64, u64)> = reference.iter().map(|(t, v)| (*t, *v)).collect();
                prop_assert_eq!(listed, expected);
            }
        }
    }

    #[test]
    fn disk_inflight_remove_of_unknown_or_old_tag_is_none() {
        let mut table: DiskInflight<u8> = DiskInflight::default();
        table.insert(10, 1);
        table.insert(11, 2);
        assert_eq!(table.remove(10), Some(1));
        // Tag 10 is below the window now; 12 was never added.
        assert_eq!(table.remove(10), None);
        assert_eq!(table.remove(12), None);
        assert_eq!(table.remove(11), Some(2));
        assert!(table.is_empty());
    }
}
