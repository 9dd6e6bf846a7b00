//! netfront's data path: packets enter the qdisc's backlog, go onto the TX ring as one
//! request per page (the first carrying the total size, `NETTXF_more_data` chaining the
//! rest) in pages granted read-only to the backend; TX responses free their ids and pages;
//! RX buffers (pages granted writable) are posted one per ring slot, and RX responses,
//! found in the same slots, are reassembled into packets.
//!
//! Follows Linux drivers/net/xen-netfront.c: `xennet_start_xmit` / `xennet_make_txreqs`,
//! `xennet_tx_buf_gc` ("Response has incorrect id"), `xennet_alloc_rx_buffers`,
//! `xennet_poll` / `xennet_get_responses` (`RING_RESPONSE_PROD_OVERFLOW`: "Illegal number
//! of responses"), `RING_FINAL_CHECK_FOR_RESPONSES`; spec `xenstore-io.md` §8.2, §8.3.
//!
//! # Invariants
//! - A packet goes onto the TX ring whole (all its slots in one push) or waits.
//! - A TX pool page is in at most one outstanding slot; freed only by its response.
//!
//! Each function works on one queue ([`VifQueue`]); the caller picks the queue of a frame's
//! flow (`VifPath::queue_of`, Linux's `xennet_select_queue`).
//!
//! xensim leaves out: GSO and checksum offload (no extra-info slots are sent).

use alloc::vec::Vec;

use super::netif::{RxRequest, RxResponse, TxRequest, TxResponse, NETIF_RSP_OKAY};
use super::netif::{NETIF_RX_SLOT_BYTES, NETRXF_MORE_DATA, NETTXF_MORE_DATA};
use super::ring::RingOverflow;
use super::vbd::{PageStore, PoolPage, StandInFrames};
use super::vif::{
    free_gref, NetPacket, TxShadow, VifQueue, NET_RING_SLOTS, RX_FLOWS_MAX, TX_QUEUE_LEN,
};
use crate::grant::{GrantTables, GuestFrames};
use crate::ids::{Gfn, GrantRef};

/// What one push did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NetPush {
    /// Ring slots pushed.
    pub pushed: u32,
    /// The other end must be notified.
    pub notify: bool,
}

impl VifQueue {
    /// The guest's stack hands netfront a packet (`xennet_start_xmit`); false if it was
    /// dropped (queue full, netfront stopped, or a frame no ring can carry).
    pub fn front_send(&mut self, packet: NetPacket) -> bool {
        let fits = packet.bytes <= super::netif::XEN_NETIF_MAX_TX_SIZE;
        if self.front_failed || !fits || self.tx_backlog.len() >= TX_QUEUE_LEN {
            self.counters.tx_queue_drops += 1;
            return false;
        }
        self.tx_backlog.push_back(packet);
        true
    }

    /// Moves queued packets onto the TX ring while they fit, then pushes once.
    pub fn front_tx_kick(&mut self, grants: &mut GrantTables, pages: &mut PageStore) -> NetPush {
        let mut pushed = 0;
        while let Some(packet) = self.tx_backlog.front().copied() {
            match self.front_place(packet, grants, pages) {
                Some(slots) => {
                    self.tx_backlog.pop_front();
                    pushed += slots;
                    self.counters.tx_packets += 1;
                    self.counters.tx_bytes += u64::from(packet.bytes);
                }
                None => break,
            }
        }
        if pushed == 0 {
            return NetPush::default();
        }
        let notify = self.tx_front.push_requests(&mut self.tx_sring);
        self.note_tx_indices();
        if notify {
            self.counters.tx_notify_count += 1;
        } else {
            self.counters.tx_notify_suppressed += 1;
        }
        NetPush { pushed, notify }
    }

    /// Puts `packet` on the ring; `None` if the ring, the ids or the pool lack room.
    fn front_place(
        &mut self,
        packet: NetPacket,
        grants: &mut GrantTables,
        pages: &mut PageStore,
    ) -> Option<u32> {
        let slots = packet.slots();
        let slots_usize = usize::try_from(slots).ok()?;
        let pool_room = self.tx_pool_free.len() + (NET_RING_SLOTS - self.tx_pool.len());
        if self.tx_front.free_requests() < slots
            || self.tx_id_free.len() < slots_usize
            || pool_room < slots_usize
        {
            return None;
        }
        // The first slot carries a full page (the headers netback needs there), the last
        // fragment the rest.
        let page_bytes = super::vif::PAGE_BYTES_U32;
        let last_bytes = packet.bytes - page_bytes * (slots - 1);
        for i in 0..slots {
            let index = self.tx_pool_take(grants)?;
            let page = self.tx_pool[usize::from(index)];
            if i == 0 {
                packet.encode(pages.bytes_mut(page.mfn, super::vif::HEADER_BYTES));
            }
            let id = self.tx_id_free.pop()?;
            assert!(
                self.tx_shadow[usize::from(id)].is_none(),
                "TX id {id} reused"
            );
            self.tx_shadow[usize::from(id)] = Some(TxShadow { page: index });
            let more = i + 1 < slots;
            let size = match (i, more) {
                (0, _) => packet.bytes,
                (_, true) => page_bytes,
                (_, false) => last_bytes,
            };
            let req = TxRequest {
                gref: page.gref,
                offset: 0,
                flags: if more { NETTXF_MORE_DATA } else { 0 },
                id,
                size: u16::try_from(size).ok()?,
            };
            req.encode(self.tx_sring.slot_mut(self.tx_front.req_prod_pvt));
            self.tx_front.req_prod_pvt = self.tx_front.req_prod_pvt.wrapping_add(1);
        }
        Some(slots)
    }

    /// A free TX pool page, granting a new one (read-only) while below a ring's worth.
    fn tx_pool_take(&mut self, grants: &mut GrantTables) -> Option<u16> {
        if let Some(index) = self.tx_pool_free.pop() {
            return Some(index);
        }
        let index = self.tx_pool.len();
        let page = self.grant_page(grants, false, index)?;
        self.pool_added(page);
        self.tx_pool.push(page);
        u16::try_from(index).ok()
    }

    /// `page` joins the TX or RX pool: `pool_gref_end` moves past its ref.
    fn pool_added(&mut self, page: PoolPage) {
        let end = page.gref.raw() + 1;
        self.pool_gref_end = Some(self.pool_gref_end.map_or(end, |e| e.max(end)));
    }

    /// Grants the stand-in page `index` of the TX (or RX) range to the backend.
    fn grant_page(&self, grants: &mut GrantTables, rx: bool, index: usize) -> Option<PoolPage> {
        let dom = self.params.front_dom;
        // Past the highest ref of both pools.
        let start = self
            .pool_gref_end
            .unwrap_or(super::handshake::FIRST_DRIVER_GREF);
        let gref = free_gref(grants, dom, start)
            .or_else(|| free_gref(grants, dom, super::handshake::FIRST_DRIVER_GREF))?;
        let gfn = Gfn::new(self.pool_gfn(rx, index));
        let mfn = StandInFrames.translate(dom, gfn, !rx).ok()?;
        let frame = u32::try_from(gfn.raw()).ok()?;
        let table = grants.table_mut(dom)?;
        table
            .guest_grant_access(gref, self.params.back_dom, frame, !rx)
            .ok()?;
        Some(PoolPage { gref, mfn })
    }

    /// `xennet_tx_buf_gc`: consumes every TX response (until the final check finds none).
    /// A bogus `rsp_prod` or an id not in use stops netfront.
    pub fn front_tx_responses(&mut self) -> Result<u32, RingOverflow> {
        let mut done = 0;
        loop {
            let count = self.tx_front.unconsumed_responses(&self.tx_sring);
            let count = count.inspect_err(|_| self.front_failed = true)?;
            for _ in 0..count {
                let mut raw = [0u8; 4];
                raw.copy_from_slice(&self.tx_sring.slot(self.tx_front.rsp_cons)[..4]);
                self.tx_front.rsp_cons = self.tx_front.rsp_cons.wrapping_add(1);
                let rsp = TxResponse::decode(&raw);
                let shadow = self
                    .tx_shadow
                    .get_mut(usize::from(rsp.id))
                    .and_then(Option::take);
                let Some(shadow) = shadow else {
                    // Linux: "Response has incorrect id" — the ring is not trusted any more.
                    self.front_failed = true;
                    continue;
                };
                self.tx_id_free.push(rsp.id);
                self.tx_pool_free.push(shadow.page);
                done += 1;
            }
            self.note_tx_indices();
            let more = self.tx_front.final_check_for_responses(&mut self.tx_sring);
            match more.inspect_err(|_| self.front_failed = true)? {
                true => continue,
                false => return Ok(done),
            }
        }
    }

    /// `xennet_alloc_rx_buffers`: posts a buffer in every free RX slot and pushes.
    pub fn front_rx_refill(&mut self, grants: &mut GrantTables) -> NetPush {
        if self.front_failed {
            return NetPush::default();
        }
        let mut pushed = 0;
        while self.rx_front.free_requests() > 0 {
            let prod = self.rx_front.req_prod_pvt;
            let slot = usize::try_from(prod).unwrap_or(0) & (NET_RING_SLOTS - 1);
            if slot >= self.rx_pool.len() {
                let Some(page) = self.grant_page(grants, true, slot) else {
                    break;
                };
                self.pool_added(page);
                self.rx_pool.push(page);
            }
            let req = RxRequest {
                id: u16::try_from(slot).unwrap_or(0),
                gref: self.rx_pool[slot].gref,
            };
            req.encode(self.rx_sring.slot_mut(prod));
            self.rx_front.req_prod_pvt = prod.wrapping_add(1);
            pushed += 1;
        }
        if pushed == 0 {
            return NetPush::default();
        }
        let notify = self.rx_front.push_requests(&mut self.rx_sring);
        self.note_rx_indices();
        NetPush { pushed, notify }
    }

    /// `xennet_poll`: consumes every complete packet on the RX ring, in order, appending
    /// the intact ones to `received`. A bogus `rsp_prod` stops netfront.
    pub fn front_rx_responses(
        &mut self,
        pages: &PageStore,
        received: &mut Vec<NetPacket>,
    ) -> Result<(), RingOverflow> {
        loop {
            let count = self.rx_front.unconsumed_responses(&self.rx_sring);
            let mut count = count.inspect_err(|_| self.front_failed = true)?;
            while count > 0 {
                let Some(slots) = self.rx_chain(count) else {
                    break;
                };
                if let Some(packet) = self.rx_take(slots, pages) {
                    received.push(packet);
                }
                count -= slots;
            }
            self.note_rx_indices();
            let more = self.rx_front.final_check_for_responses(&mut self.rx_sring);
            match more.inspect_err(|_| self.front_failed = true)? {
                true if count == 0 => continue,
                _ => return Ok(()),
            }
        }
    }

    fn rx_response(&self, index: u32) -> RxResponse {
        let mut raw = [0u8; NETIF_RX_SLOT_BYTES];
        raw.copy_from_slice(self.rx_sring.slot(index));
        RxResponse::decode(&raw)
    }

    /// Slots of the packet at `rsp_cons`, if its `more_data` chain is complete within the
    /// `count` published responses.
    fn rx_chain(&self, count: u32) -> Option<u32> {
        (0..count)
            .find(|i| {
                let rsp = self.rx_response(self.rx_front.rsp_cons.wrapping_add(*i));
                rsp.flags & NETRXF_MORE_DATA == 0
            })
            .map(|i| i + 1)
    }

    /// Consumes one packet's `slots` responses; the packet if it arrived intact.
    fn rx_take(&mut self, slots: u32, pages: &PageStore) -> Option<NetPacket> {
        let first_index = self.rx_front.rsp_cons;
        let first = self.rx_response(first_index);
        let mut ok = true;
        let mut bytes: u64 = 0;
        for i in 0..slots {
            let rsp = self.rx_response(first_index.wrapping_add(i));
            ok &= rsp.status >= 0;
            bytes += u64::try_from(rsp.status.max(0)).unwrap_or(0);
        }
        self.rx_front.rsp_cons = first_index.wrapping_add(slots);
        let slot = usize::try_from(first_index).unwrap_or(0) & (NET_RING_SLOTS - 1);
        let offset = usize::from(first.offset);
        let packet = self
            .rx_pool
            .get(slot)
            .and_then(|p| {
                pages.with_bytes::<{ super::vif::HEADER_BYTES }, _>(
                    p.mfn,
                    offset,
                    NetPacket::decode,
                )
            })
            .flatten();
        let Some(packet) = packet.filter(|p| ok && u64::from(p.bytes) == bytes) else {
            self.counters.rx_errors += 1;
            return None;
        };
        debug_assert!(first.status >= NETIF_RSP_OKAY);
        self.rx_in_order(&packet);
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += u64::from(packet.bytes);
        Some(packet)
    }

    /// Counts a packet that is not after the last one of its flow.
    fn rx_in_order(&mut self, packet: &NetPacket) {
        use alloc::collections::btree_map::Entry;
        let full = self.rx_seen.len() >= RX_FLOWS_MAX;
        // One tree search per packet: the flow's entry is read and updated in place.
        match self
            .rx_seen
            .entry((super::vif::mac_key(packet.src), packet.flow))
        {
            Entry::Occupied(mut last) => {
                let ahead = packet.seq.wrapping_sub(*last.get());
                if ahead == 0 || ahead >= 1 << 31 {
                    self.counters.rx_order_violations += 1;
                }
                last.insert(packet.seq);
            }
            // xensim's bound: flows past it are not followed (their order is unchecked).
            Entry::Vacant(_) if full => {}
            Entry::Vacant(slot) => {
                slot.insert(packet.seq);
            }
        }
    }

    /// Grants netfront ends at the close (ring pages are the handshake's).
    pub fn front_pool_refs(&self) -> Vec<GrantRef> {
        self.tx_pool
            .iter()
            .chain(&self.rx_pool)
            .map(|p| p.gref)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::vif::{PacketKind, VifParams};

    fn path() -> VifQueue {
        VifQueue::new(VifParams::for_tests(), 0)
    }

    fn frame(seq: u32) -> NetPacket {
        NetPacket {
            dst: [0, 0x16, 0x3e, 0, 0, 1],
            src: [0, 0x16, 0x3e, 0, 0, 2],
            flow: 3,
            seq,
            kind: PacketKind::Stream,
            tag: 0,
            reply_bytes: 0,
            bytes: 60,
        }
    }

    #[test]
    fn a_gap_in_a_flow_is_a_drop_not_a_violation() {
        // 1 then 3: frame 2 was lost on the way, which is allowed.
        let mut p = path();
        p.rx_in_order(&frame(1));
        p.rx_in_order(&frame(3));
        assert_eq!(p.counters.rx_order_violations, 0);
    }

    #[test]
    fn a_duplicate_frame_trips_the_in_order_check() {
        let mut p = path();
        p.rx_in_order(&frame(5));
        p.rx_in_order(&frame(5));
        let mut broken = Vec::new();
        p.check(&mut broken);
        assert!(broken.contains(&"vif.in_order"));
    }

    #[test]
    fn a_frame_from_the_past_trips_the_in_order_check() {
        let mut p = path();
        p.rx_in_order(&frame(5));
        p.rx_in_order(&frame(4));
        assert_eq!(p.counters.rx_order_violations, 1);
    }
}
