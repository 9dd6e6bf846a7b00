//! The generic shared request/response ring of Xen's split drivers: one shared page (the
//! *sring*: four free-running u32 indices, padding, then the slots) and each end's private
//! view of it (front: `req_prod_pvt`, `rsp_cons`; back: `rsp_prod_pvt`, `req_cons`).
//!
//! Follows xen/include/public/io/ring.h (Xen 4.17): `__RING_SIZE`, `RING_FREE_REQUESTS`,
//! `XEN_RING_NR_UNCONSUMED_{REQUESTS,RESPONSES}`, `RING_REQUEST_CONS_OVERFLOW`,
//! `RING_REQUEST_PROD_OVERFLOW`, `RING_RESPONSE_PROD_OVERFLOW`,
//! `RING_PUSH_{REQUESTS,RESPONSES}_AND_CHECK_NOTIFY` and
//! `RING_FINAL_CHECK_FOR_{REQUESTS,RESPONSES}`; spec `xenstore-io.md` §8.1.
//!
//! The page is guest memory: the other end (or a buggy guest) can write anything into it at
//! any time. Every index is therefore read as it is in the page and checked before use, and
//! slots are copied out before they are decoded (no double fetch).
//!
//! # Invariants
//! - A well-behaved end's private indices only move forward (checked by
//!   [`RingWatch`] every event: forward distance below 2^31).
//! - The front never has more than `nr_ents` requests outstanding; the back never consumes
//!   a request it has no response slot for.
//!
//! xensim leaves out: the memory barriers (one event runs at a time, so program order is
//! the order the other end sees).

use alloc::vec;
use alloc::vec::Vec;

/// Bytes of the sring header before the first slot (4 indices, private pad, pad).
pub const RING_HEADER_BYTES: usize = 64;

/// One 4 KiB ring page.
pub const RING_PAGE_BYTES: usize = 4096;

/// `__RING_SIZE`: slots of `entry_bytes` in `ring_bytes`, rounded down to a power of two.
pub const fn ring_entries(ring_bytes: usize, entry_bytes: usize) -> u32 {
    let raw = (ring_bytes - RING_HEADER_BYTES) / entry_bytes;
    if raw == 0 {
        return 0;
    }
    // The highest power of two <= raw.
    1u32 << (usize::BITS - 1 - raw.leading_zeros())
}

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// The shared page: what both ends (and a guest scribbling on it) see.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SharedRing {
    bytes: Vec<u8>,
    entry_bytes: usize,
    nr_ents: u32,
}

impl SharedRing {
    /// `SHARED_RING_INIT` on a zeroed page: producers 0, event indices 1.
    pub fn new(ring_bytes: usize, entry_bytes: usize) -> SharedRing {
        let nr_ents = ring_entries(ring_bytes, entry_bytes);
        assert!(nr_ents > 0, "a ring holds at least one slot");
        assert!(nr_ents.is_power_of_two(), "ring sizes are powers of two");
        let mut ring = SharedRing {
            bytes: vec![0; ring_bytes],
            entry_bytes,
            nr_ents,
        };
        ring.set_index(REQ_EVENT, 1);
        ring.set_index(RSP_EVENT, 1);
        ring
    }

    /// `RING_SIZE`.
    pub fn nr_ents(&self) -> u32 {
        self.nr_ents
    }

    /// Bytes of one slot (the union of request and response).
    pub fn entry_bytes(&self) -> usize {
        self.entry_bytes
    }

    fn index(&self, offset: usize) -> u32 {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&self.bytes[offset..offset + 4]);
        u32::from_le_bytes(raw)
    }

    fn set_index(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// `sring->req_prod` as it is in the page.
    pub fn req_prod(&self) -> u32 {
        self.index(REQ_PROD)
    }

    /// `sring->req_event`.
    pub fn req_event(&self) -> u32 {
        self.index(REQ_EVENT)
    }

    /// `sring->rsp_prod`.
    pub fn rsp_prod(&self) -> u32 {
        self.index(RSP_PROD)
    }

    /// `sring->rsp_event`.
    pub fn rsp_event(&self) -> u32 {
        self.index(RSP_EVENT)
    }

    /// The slot of free-running index `idx` (`idx & (nr_ents - 1)`).
    pub fn slot(&self, idx: u32) -> &[u8] {
        let start = self.slot_start(idx);
        &self.bytes[start..start + self.entry_bytes]
    }

    /// The slot of `idx`, writable.
    pub fn slot_mut(&mut self, idx: u32) -> &mut [u8] {
        let start = self.slot_start(idx);
        &mut self.bytes[start..start + self.entry_bytes]
    }

    fn slot_start(&self, idx: u32) -> usize {
        let slot = usize::try_from(idx & (self.nr_ents - 1)).unwrap_or(0);
        RING_HEADER_BYTES + slot * self.entry_bytes
    }

    /// A guest writes `bytes` at `offset` of the page, whatever they mean (bytes past the
    /// page are dropped): the index and slot contents an end reads next are whatever this
    /// left there.
    pub fn scribble(&mut self, offset: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            if let Some(slot) = self.bytes.get_mut(offset.saturating_add(i)) {
                *slot = *b;
            }
        }
    }

    /// Sets `req_prod` directly (a guest scribbling its index).
    pub fn scribble_req_prod(&mut self, value: u32) {
        self.set_index(REQ_PROD, value);
    }
}

/// `RING_PUSH_*_AND_CHECK_NOTIFY`'s test: after moving a producer from `old` to `new`,
/// notify iff the consumer's `event` lies in `(old, new]` (u32 arithmetic).
pub const fn notify_needed(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The frontend's private view (`struct *_front_ring`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrontRing {
    /// `req_prod_pvt`: the next request slot to fill.
    pub req_prod_pvt: u32,
    /// `rsp_cons`: the next response to consume.
    pub rsp_cons: u32,
    nr_ents: u32,
}

/// The backend's private view (`struct *_back_ring`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BackRing {
    /// `rsp_prod_pvt`: the next response slot to fill.
    pub rsp_prod_pvt: u32,
    /// `req_cons`: the next request to consume.
    pub req_cons: u32,
    nr_ents: u32,
}

/// A ring index the other end wrote that cannot be right.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RingOverflow {
    /// The producer index found in the page.
    pub prod: u32,
    /// The private index it was measured from (`rsp_prod_pvt` or `rsp_cons`).
    pub base: u32,
}

impl FrontRing {
    /// `FRONT_RING_INIT`.
    pub fn new(sring: &SharedRing) -> FrontRing {
        FrontRing {
            req_prod_pvt: 0,
            rsp_cons: 0,
            nr_ents: sring.nr_ents(),
        }
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        let outstanding = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        assert!(outstanding <= self.nr_ents, "front overran its ring");
        self.nr_ents - outstanding
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes every filled slot; true if the
    /// back asked to be notified.
    pub fn push_requests(&self, sring: &mut SharedRing) -> bool {
        let old = sring.req_prod();
        let new = self.req_prod_pvt;
        sring.set_index(REQ_PROD, new);
        notify_needed(old, new, sring.req_event())
    }

    /// Responses published and not consumed, or the overflow a bogus `rsp_prod` shows
    /// (`RING_RESPONSE_PROD_OVERFLOW`, as Linux's blkfront checks).
    pub fn unconsumed_responses(&self, sring: &SharedRing) -> Result<u32, RingOverflow> {
        let prod = sring.rsp_prod();
        let count = prod.wrapping_sub(self.rsp_cons);
        if count > self.nr_ents {
            return Err(RingOverflow {
                prod,
                base: self.rsp_cons,
            });
        }
        Ok(count)
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: if nothing is left, ask for a notification on
    /// the next response and look once more. True if there is work.
    pub fn final_check_for_responses(&self, sring: &mut SharedRing) -> Result<bool, RingOverflow> {
        if self.unconsumed_responses(sring)? > 0 {
            return Ok(true);
        }
        sring.set_index(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        Ok(self.unconsumed_responses(sring)? > 0)
    }
}

impl BackRing {
    /// `BACK_RING_INIT`.
    pub fn new(sring: &SharedRing) -> BackRing {
        BackRing {
            rsp_prod_pvt: 0,
            req_cons: 0,
            nr_ents: sring.nr_ents(),
        }
    }

    /// The requests the back may act on now (`XEN_RING_NR_UNCONSUMED_REQUESTS`), after
    /// Linux's `RING_REQUEST_PROD_OVERFLOW` check of the `req_prod` found in the page:
    /// a frontend claiming more requests than the ring holds is ill-behaved.
    pub fn unconsumed_requests(&self, sring: &SharedRing) -> Result<u32, RingOverflow> {
        let prod = sring.req_prod();
        if prod.wrapping_sub(self.rsp_prod_pvt) > self.nr_ents {
            return Err(RingOverflow {
                prod,
                base: self.rsp_prod_pvt,
            });
        }
        let req = prod.wrapping_sub(self.req_cons);
        let rsp = self.nr_ents - self.req_cons.wrapping_sub(self.rsp_prod_pvt);
        Ok(req.min(rsp))
    }

    /// `RING_REQUEST_CONS_OVERFLOW` for `req_cons`: no response slot left for it.
    pub fn cons_overflow(&self) -> bool {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt) >= self.nr_ents
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`.
    pub fn push_responses(&self, sring: &mut SharedRing) -> bool {
        let old = sring.rsp_prod();
        let new = self.rsp_prod_pvt;
        sring.set_index(RSP_PROD, new);
        notify_needed(old, new, sring.rsp_event())
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`.
    pub fn final_check_for_requests(&self, sring: &mut SharedRing) -> Result<bool, RingOverflow> {
        if self.unconsumed_requests(sring)? > 0 {
            return Ok(true);
        }
        sring.set_index(REQ_EVENT, self.req_cons.wrapping_add(1));
        Ok(self.unconsumed_requests(sring)? > 0)
    }
}

/// True if `to` is `from` or after it (forward distance below 2^31, spec §9 RING-MONOTONIC).
pub const fn not_backwards(from: u32, to: u32) -> bool {
    to.wrapping_sub(from) < (1 << 31)
}

/// The indices of one ring as the checker last saw them (RING-MONOTONIC, RING-BOUNDS).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RingWatch {
    /// Front: `req_prod_pvt`, `rsp_cons`; back: `rsp_prod_pvt`, `req_cons`.
    pub seen: [u32; 4],
}

impl RingWatch {
    /// Indices of a well-behaved pair now.
    pub fn of(front: &FrontRing, back: &BackRing) -> RingWatch {
        RingWatch {
            seen: [
                front.req_prod_pvt,
                front.rsp_cons,
                back.rsp_prod_pvt,
                back.req_cons,
            ],
        }
    }

    /// The name of an index that moved backwards since `self` (RING-MONOTONIC).
    pub fn backwards(&self, now: &RingWatch) -> Option<&'static str> {
        const NAMES: [&str; 4] = ["req_prod_pvt", "rsp_cons", "rsp_prod_pvt", "req_cons"];
        NAMES
            .iter()
            .zip(self.seen.iter().zip(now.seen.iter()))
            .find(|(_, (from, to))| !not_backwards(**from, **to))
            .map(|(name, _)| *name)
    }

    /// The bounds of a well-behaved pair (RING-BOUNDS): at most `nr_ents` outstanding,
    /// `rsp_prod_pvt <= req_cons <= req_prod_pvt` and `rsp_cons <= rsp_prod_pvt` in ring
    /// order. Meaningless once a guest wrote the page behind its driver's back.
    pub fn bounds(&self, nr_ents: u32) -> Option<&'static str> {
        let [req_prod, rsp_cons, rsp_prod, req_cons] = self.seen;
        if req_prod.wrapping_sub(rsp_cons) > nr_ents {
            return Some("req_prod_pvt - rsp_cons > nr_ents");
        }
        if req_cons.wrapping_sub(rsp_prod) > req_prod.wrapping_sub(rsp_prod) {
            return Some("req_cons past req_prod_pvt");
        }
        if rsp_prod.wrapping_sub(rsp_cons) > req_prod.wrapping_sub(rsp_cons) {
            return Some("rsp_cons past rsp_prod_pvt");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// blkif: 112-byte slots, spec §8.1 table.
    const BLKIF_SLOT: usize = 112;

    fn ring() -> (SharedRing, FrontRing, BackRing) {
        let s = SharedRing::new(RING_PAGE_BYTES, BLKIF_SLOT);
        let (f, b) = (FrontRing::new(&s), BackRing::new(&s));
        (s, f, b)
    }

    #[test]
    fn ring_sizes_match_the_spec_table() {
        assert_eq!(ring_entries(4096, 112), 32);
        assert_eq!(ring_entries(4096 * 2, 112), 64);
        assert_eq!(ring_entries(4096 * 16, 112), 512);
        assert_eq!(ring_entries(4096, 12), 256);
        assert_eq!(ring_entries(4096, 8), 256);
    }

    #[test]
    fn first_push_notifies_because_req_event_starts_at_one() {
        let (mut s, mut f, _) = ring();
        f.req_prod_pvt = 1;
        assert!(f.push_requests(&mut s));
    }

    #[test]
    fn push_past_req_event_does_not_notify_again() {
        // The back has not re-armed (req_event still 1): requests 2..3 need no kick.
        let (mut s, mut f, _) = ring();
        f.req_prod_pvt = 1;
        f.push_requests(&mut s);
        f.req_prod_pvt = 3;
        assert!(!f.push_requests(&mut s));
    }

    #[test]
    fn final_check_rearms_and_the_next_push_notifies() {
        let (mut s, mut f, mut b) = ring();
        f.req_prod_pvt = 2;
        f.push_requests(&mut s);
        b.req_cons = 2;
        b.rsp_prod_pvt = 2;
        assert_eq!(b.final_check_for_requests(&mut s), Ok(false));
        assert_eq!(s.req_event(), 3);
        f.rsp_cons = 2;
        f.req_prod_pvt = 3;
        assert!(f.push_requests(&mut s));
    }

    #[test]
    fn final_check_sees_a_request_that_raced_the_rearm() {
        let (mut s, mut f, b) = ring();
        f.req_prod_pvt = 1;
        f.push_requests(&mut s);
        assert_eq!(b.final_check_for_requests(&mut s), Ok(true));
    }

    #[test]
    fn req_prod_beyond_ring_size_is_an_overflow() {
        // 33 requests claimed on a 32-slot ring with nothing answered.
        let (mut s, _, b) = ring();
        s.scribble_req_prod(33);
        assert_eq!(
            b.unconsumed_requests(&s),
            Err(RingOverflow { prod: 33, base: 0 })
        );
    }

    #[test]
    fn back_acts_on_no_more_requests_than_it_has_response_slots() {
        let (mut s, _, mut b) = ring();
        s.scribble_req_prod(32);
        b.req_cons = 32;
        assert_eq!(b.unconsumed_requests(&s), Ok(0));
        assert!(b.cons_overflow());
    }

    #[test]
    fn notify_rule_handles_index_wrap() {
        // Producer wraps from 2^32-1 to 1; the event at 0 lies in (old, new].
        assert!(notify_needed(u32::MAX, 1, 0));
        assert!(!notify_needed(u32::MAX, 1, 2));
    }

    #[test]
    fn watch_flags_an_index_moving_backwards() {
        let before = RingWatch { seen: [5, 5, 5, 5] };
        let after = RingWatch { seen: [4, 4, 4, 4] };
        assert_eq!(before.backwards(&after), Some("req_prod_pvt"));
    }

    #[test]
    fn watch_bounds_flag_a_back_that_consumed_past_the_front() {
        // Front pushed 3, back consumed 4.
        let watch = RingWatch { seen: [3, 0, 0, 4] };
        assert_eq!(watch.bounds(32), Some("req_cons past req_prod_pvt"));
    }

    #[test]
    fn scribble_past_the_page_is_dropped() {
        let (mut s, _, _) = ring();
        s.scribble(RING_PAGE_BYTES - 1, &[1, 2, 3]);
        assert_eq!(s.bytes[RING_PAGE_BYTES - 1], 1);
        assert_eq!(s.bytes.len(), RING_PAGE_BYTES);
    }
}
