//! blkfront's data path: guest I/Os enter the block layer's backlog, are split into ring
//! requests (direct up to 11 segments, indirect beyond when blkback advertised it), their
//! pages come from a pool of persistently granted pages, and responses complete them.
//!
//! Follows Linux drivers/block/xen-blkfront.c: `blkif_queue_rw_req` (segments, indirect
//! pages, `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`), `get_free_grant`/persistent grants,
//! `blkif_interrupt` / `blkif_completion` (`RING_RESPONSE_PROD_OVERFLOW`, the shadow id
//! check, `RING_FINAL_CHECK_FOR_RESPONSES`); spec `xenstore-io.md` §8.1, §8.4.
//!
//! # Invariants
//! - A guest I/O goes onto the ring whole (all its ring requests in one push) or waits.
//! - A pool page is in at most one outstanding request; freed only by its response.
//!
//! xensim differs: the block layer's merge and plug logic is not modelled; one guest I/O
//! is one bio.

use alloc::vec::Vec;

use super::blkif::{
    self, BlkResponse, Dir, Segment, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY, SECTORS_PER_PAGE,
};
use super::ring::RingOverflow;
use super::vbd::{
    sector_stamp, Backlogged, GuestIo, IoDone, IoInFlight, IoOp, PageStore, PoolPage, Shadow,
    StandInFrames, VbdPath, BACKLOG_IOS_MAX, DATA_GFNS_PER_DEVICE, DATA_GFN_BASE, DIGEST_INIT,
    GUEST_IO_SECTORS_MAX, SHADOW_SEGS_MAX,
};
use crate::grant::{GrantTables, GuestFrames, GRANT_ENTRIES_PER_FRAME_V1};
use crate::ids::{Gfn, GrantRef};

/// Why blkfront refused a guest I/O at once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrontError {
    /// The block layer's queue is full.
    Busy,
    /// Zero or too many sectors, or past the disk's end.
    BadRange,
    /// blkfront stopped (a bogus response index).
    Failed,
}

/// One ring request of a guest I/O: its direction, sectors, and the I/O's slot.
#[derive(Clone, Copy, Debug)]
struct Part {
    dir: Dir,
    sector: u64,
    sectors: u32,
    io_index: u16,
}

/// What one push did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FrontPush {
    /// Ring requests pushed.
    pub pushed: u32,
    /// blkback must be notified.
    pub notify: bool,
}

impl VbdPath {
    /// The guest hands blkfront an I/O (`blkif_queue_request` via blk-mq).
    pub fn front_submit(&mut self, io: GuestIo) -> Result<(), FrontError> {
        if self.front_failed {
            return Err(FrontError::Failed);
        }
        let data = io.op != IoOp::Flush;
        if data && (io.sectors == 0 || io.sectors > GUEST_IO_SECTORS_MAX) {
            return Err(FrontError::BadRange);
        }
        let end = io.sector.checked_add(u64::from(io.sectors));
        if end.is_none_or(|end| end > self.params.sectors) {
            return Err(FrontError::BadRange);
        }
        if self.backlog.len() >= BACKLOG_IOS_MAX {
            return Err(FrontError::Busy);
        }
        self.backlog.push_back(Backlogged {
            io,
            held_slot: None,
        });
        Ok(())
    }

    /// Segments per ring request blkfront builds.
    fn segs_per_request(&self) -> usize {
        match self.params.front_max_indirect {
            0 => BLKIF_MAX_SEGMENTS_PER_REQUEST,
            n => n as usize,
        }
    }

    /// Moves waiting I/Os onto the ring while they fit, then pushes once.
    pub fn front_kick(&mut self, grants: &mut GrantTables, pages: &mut PageStore) -> FrontPush {
        let mut pushed = 0;
        while let Some(queued) = self.backlog.front().copied() {
            match self.front_place(queued, grants, pages) {
                Ok(parts) => {
                    self.backlog.pop_front();
                    pushed += parts;
                }
                Err(Some(held_slot)) => {
                    // A grant could not be made: the I/O waits holding its slot.
                    if let Some(front) = self.backlog.front_mut() {
                        front.held_slot = Some(held_slot);
                    }
                    break;
                }
                Err(None) => break,
            }
        }
        if pushed == 0 {
            return FrontPush::default();
        }
        let notify = self.front.push_requests(&mut self.sring);
        self.note_indices();
        self.counters.requests_pushed += u64::from(pushed);
        if notify {
            self.counters.req_notify_count += 1;
        } else {
            self.counters.req_notify_suppressed += 1;
        }
        FrontPush { pushed, notify }
    }

    /// Puts `queued` on the ring as ring requests: how many. `Err` if the ring or pool
    /// lacks room, with the `ios` slot the I/O keeps when a grant failed part-way.
    fn front_place(
        &mut self,
        queued: Backlogged,
        grants: &mut GrantTables,
        pages: &mut PageStore,
    ) -> Result<u32, Option<u16>> {
        let io = queued.io;
        let page_count = usize::try_from(io.sectors.div_ceil(8)).map_err(|_| None)?;
        let per = self.segs_per_request();
        let parts = if io.op == IoOp::Flush {
            1
        } else {
            page_count.div_ceil(per)
        };
        let parts_u32 = u32::try_from(parts).map_err(|_| None)?;
        if self.front.free_requests() < parts_u32 {
            return Err(None);
        }
        let indirect = usize::from(page_count > BLKIF_MAX_SEGMENTS_PER_REQUEST);
        let need = page_count + parts * indirect;
        if self.pool_available() < need {
            return Err(None);
        }
        let inflight = IoInFlight {
            io,
            parts_left: parts_u32,
            status: BLKIF_RSP_OKAY,
            digest: DIGEST_INIT,
            bytes: u64::from(io.sectors) * 512,
        };
        let io_index = self.take_io_slot(inflight, queued.held_slot).ok_or(None)?;
        if io.op == IoOp::Flush {
            self.front_flush(io.tag, io_index);
            return Ok(1);
        }
        let dir = if io.op == IoOp::Read {
            Dir::Read
        } else {
            Dir::Write
        };
        let mut sector = io.sector;
        let mut left = io.sectors;
        for _ in 0..parts {
            let sectors = left.min(u32::try_from(per * 8).map_err(|_| None)?);
            let part = Part {
                dir,
                sector,
                sectors,
                io_index,
            };
            if self.front_request(io, part, grants, pages).is_none() {
                // A grant could not be made: the I/O stays in the backlog with its slot.
                return Err(Some(io_index));
            }
            sector += u64::from(sectors);
            left -= sectors;
        }
        Ok(parts_u32)
    }

    fn pool_available(&self) -> usize {
        self.pool_free.len() + (self.pool_pages_max() - self.pool.len())
    }

    /// A slot of `ios` for `inflight`: a free one (there is one for every free ring slot,
    /// as every I/O in flight holds one at least, and only fitting I/Os get here), or the
    /// slot `held` that a placement failed part-way left it, if that still holds its tag,
    /// overwritten as the tag-keyed map this slab replaces did (tags are unique among the
    /// I/Os in flight). `None` (the I/O waits) if none is free.
    fn take_io_slot(&mut self, inflight: IoInFlight, held: Option<u16>) -> Option<u16> {
        let tag = inflight.io.tag;
        if let Some(index) = held {
            if let Some(slot) = self.ios.get_mut(index).filter(|i| i.io.tag == tag) {
                *slot = inflight;
                return Some(index);
            }
        }
        debug_assert!(
            self.ios.iter().all(|i| i.io.tag != tag),
            "guest I/O tag {tag} in flight twice"
        );
        self.ios.insert(inflight)
    }

    fn front_flush(&mut self, tag: u64, io_index: u16) {
        let id = self.take_id();
        blkif::encode_flush(self.sring.slot_mut(self.front.req_prod_pvt), u64::from(id));
        self.front.req_prod_pvt = self.front.req_prod_pvt.wrapping_add(1);
        let shadow = Shadow {
            tag,
            dir: None,
            page_count: 0,
            indirect: None,
            io_index,
        };
        self.shadow.fill(id, shadow);
    }

    /// `get_id_from_freelist`: a free shadow slot; there is one for every free ring slot.
    fn take_id(&mut self) -> u16 {
        self.shadow
            .take_free()
            .expect("a free shadow per free ring slot")
    }

    /// One ring request of `sectors` from `sector` (sector-aligned pages).
    fn front_request(
        &mut self,
        io: GuestIo,
        part: Part,
        grants: &mut GrantTables,
        pages: &mut PageStore,
    ) -> Option<()> {
        let Part {
            dir,
            sector,
            sectors,
            io_index,
        } = part;
        let mut shadow = Shadow {
            tag: io.tag,
            dir: Some(dir),
            page_count: 0,
            indirect: None,
            io_index,
        };
        // The pages go straight into the ring id the request will take (still free if a
        // grant fails below; with none free, `take_id` fails after the pages, as before).
        let next_id = self.shadow.peek_free();
        let mut count = 0usize;
        let mut left = sectors;
        let mut at = sector;
        while left > 0 {
            assert!(
                count < SHADOW_SEGS_MAX,
                "a ring request of at most 32 pages"
            );
            let n = u8::try_from(left.min(u32::from(SECTORS_PER_PAGE))).ok()?;
            let index = self.pool_take(grants)?;
            if dir == Dir::Write {
                let mfn = self.pool[usize::from(index)].mfn;
                let stamps = (0..n).map(|i| sector_stamp(io.seed, at + u64::from(i)));
                pages.set_stamps(mfn, 0, stamps);
            }
            if let Some(next_id) = next_id {
                self.shadow_pages[usize::from(next_id)][count] = (index, 0, n - 1);
            }
            count += 1;
            left -= u32::from(n);
            at += u64::from(n);
        }
        shadow.page_count = u8::try_from(count).ok()?;
        let id = self.take_id();
        debug_assert_eq!(Some(id), next_id, "the ring id peeked is the one taken");
        let id_u64 = u64::from(id);
        let slot = self.front.req_prod_pvt;
        if count <= BLKIF_MAX_SEGMENTS_PER_REQUEST {
            let pool = &self.pool;
            let data = &self.shadow_pages[usize::from(id)][..count];
            let segs = data.iter().map(|&page| segment(pool, page));
            blkif::encode_direct(self.sring.slot_mut(slot), dir, id_u64, sector, segs);
        } else {
            let index = self.pool_take(grants)?;
            let page = self.pool[usize::from(index)];
            let bytes = pages.bytes_mut(page.mfn, 8 * count);
            let data = &self.shadow_pages[usize::from(id)][..count];
            for (i, &data) in data.iter().enumerate() {
                segment(&self.pool, data).encode(&mut bytes[8 * i..8 * i + 8]);
            }
            shadow.indirect = Some(index);
            let nr = u16::try_from(count).ok()?;
            let slot_bytes = self.sring.slot_mut(slot);
            blkif::encode_indirect(slot_bytes, dir, id_u64, sector, nr, &[page.gref]);
            self.counters.indirect_requests += 1;
        }
        self.front.req_prod_pvt = slot.wrapping_add(1);
        self.shadow.fill(id, shadow);
        Some(())
    }

    /// A free pool page, granting a new one (writable: persistent) while below the cap.
    fn pool_take(&mut self, grants: &mut GrantTables) -> Option<u16> {
        if let Some(index) = self.pool_free.pop() {
            return Some(index);
        }
        if self.pool.len() >= self.pool_pages_max() {
            return None;
        }
        let index = u16::try_from(self.pool.len()).ok()?;
        let dom = self.params.front_dom;
        let gref = self.free_gref(grants)?;
        let base = DATA_GFN_BASE + u64::from(self.params.slot) * DATA_GFNS_PER_DEVICE;
        let gfn = Gfn::new(base + u64::from(index));
        let mfn = StandInFrames.translate(dom, gfn, false).ok()?;
        let frame = u32::try_from(gfn.raw()).ok()?;
        let table = grants.table_mut(dom)?;
        table
            .guest_grant_access(gref, self.params.back_dom, frame, false)
            .ok()?;
        self.pool.push(PoolPage { gref, mfn });
        Some(index)
    }

    /// The first unused ref at or after the last one taken, growing the table by a frame
    /// when it is full (Linux `gnttab_expand`).
    fn free_gref(&mut self, grants: &mut GrantTables) -> Option<GrantRef> {
        let dom = self.params.front_dom;
        let start = self
            .pool
            .last()
            .map_or(super::handshake::FIRST_DRIVER_GREF, |p| p.gref.raw() + 1);
        let mut raw = start;
        loop {
            let table = grants.table(dom)?;
            if raw >= table.nr_entries() {
                let frames = table.nr_frames() + 1;
                assert!(
                    raw < frames * GRANT_ENTRIES_PER_FRAME_V1,
                    "one frame at a time"
                );
                grants.setup_table(dom, dom, frames).ok()?;
                continue;
            }
            let gref = GrantRef::new(raw);
            if table.entry(gref).is_some_and(|e| e.flags == 0) {
                return Some(gref);
            }
            raw += 1;
        }
    }

    /// `blkif_interrupt`: consumes every response (until the final check finds none),
    /// appending the guest I/Os that completed to `done`. A bogus `rsp_prod` or an unknown
    /// id stops blkfront (`front_failed`), as Linux's `blkif_interrupt` goes to `err`.
    pub fn front_responses(
        &mut self,
        pages: &PageStore,
        done: &mut Vec<IoDone>,
    ) -> Result<(), RingOverflow> {
        loop {
            let count = match self.front.unconsumed_responses(&self.sring) {
                Ok(count) => count,
                Err(overflow) => {
                    self.front_failed = true;
                    return Err(overflow);
                }
            };
            for _ in 0..count {
                let mut raw = [0u8; blkif::BLKIF_RSP_BYTES];
                raw.copy_from_slice(&self.sring.slot(self.front.rsp_cons)[..16]);
                self.front.rsp_cons = self.front.rsp_cons.wrapping_add(1);
                if let Some(io) = self.front_complete(BlkResponse::decode(&raw), pages) {
                    done.push(io);
                }
            }
            self.note_indices();
            match self.front.final_check_for_responses(&mut self.sring) {
                Ok(true) => continue,
                Ok(false) => return Ok(()),
                Err(overflow) => {
                    self.front_failed = true;
                    return Err(overflow);
                }
            }
        }
    }

    /// One response: frees its pages and, when it was the I/O's last, the I/O.
    fn front_complete(&mut self, rsp: BlkResponse, pages: &PageStore) -> Option<IoDone> {
        let id = u16::try_from(rsp.id).ok();
        let Some((id, shadow)) = id.and_then(|id| Some((id, self.shadow.remove(id)?))) else {
            // Linux: "response has incorrect id" — the ring is not trusted any more.
            self.front_failed = true;
            return None;
        };
        let data = &self.shadow_pages[usize::from(id)][..usize::from(shadow.page_count)];
        self.pool_free
            .extend(data.iter().map(|&(index, _, _)| index));
        self.pool_free.extend(shadow.indirect);
        // Every shadow belongs to an I/O in flight (`front_place` fills both).
        let io = self
            .ios
            .get_mut(shadow.io_index)
            .expect("a shadow's I/O is in flight");
        debug_assert_eq!(io.io.tag, shadow.tag, "a shadow names its own I/O");
        if rsp.status != BLKIF_RSP_OKAY {
            io.status = if io.status == BLKIF_RSP_OKAY {
                rsp.status
            } else {
                io.status.min(BLKIF_RSP_ERROR)
            };
        }
        for &(index, first, last) in data {
            let mfn = self.pool[usize::from(index)].mfn;
            io.digest = pages.digest_stamps(mfn, first, last, io.digest);
        }
        io.parts_left -= 1;
        if io.parts_left > 0 {
            return None;
        }
        let io = self.ios.remove(shadow.io_index)?;
        Some(IoDone {
            tag: shadow.tag,
            status: io.status,
            digest: io.digest,
            bytes: io.bytes,
        })
    }

    /// `blkif_recover`'s list: every guest I/O not completed yet, those on the ring (in
    /// tag order) before the backlog (in its order).
    pub fn front_unanswered(&self) -> Vec<GuestIo> {
        let mut on_ring: Vec<GuestIo> = self.ios.iter().map(|i| i.io).collect();
        // Tags are unique among the I/Os in flight (`take_io_slot`): a total order.
        on_ring.sort_unstable_by_key(|io| io.tag);
        on_ring.extend(self.backlog.iter().map(|queued| queued.io));
        on_ring
    }

    /// Grants blkfront ends at the close (they are not mapped any more by then).
    pub fn front_pool_refs(&self) -> Vec<GrantRef> {
        self.pool.iter().map(|p| p.gref).collect()
    }
}

/// The descriptor of a shadow's data page: its pool page's grant, with the sectors used.
fn segment(pool: &[PoolPage], (index, first_sect, last_sect): (u16, u8, u8)) -> Segment {
    Segment {
        gref: pool[usize::from(index)].gref,
        first_sect,
        last_sect,
    }
}
