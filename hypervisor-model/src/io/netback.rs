//! netback's data path. TX: reads the frontend's `req_prod` (an impossible one disables
//! the vif), copies each packet's slots out of the ring, checks them as Linux does, and
//! grant-copies the frame's header out of the frontend's page; the packet's responses are
//! pushed when the backend's CPU has done the work. RX: packets for the frontend wait in a
//! bounded queue until the RX ring has a posted buffer per page; netback grant-copies
//! into those buffers and answers each request in its own slot.
//!
//! Follows Linux drivers/net/xen-netback/netback.c (`xenvif_tx_build_gops`,
//! `xenvif_count_requests`, `xenvif_get_extras`, `xenvif_tx_err`, `xenvif_fatal_tx_err`,
//! `make_tx_response`) and rx.c (`xenvif_rx_ring_slots_available`, `xenvif_rx_skb`,
//! `xenvif_rx_copy_flush`: a failed copy answers `XEN_NETIF_RSP_ERROR`); spec
//! `xenstore-io.md` §7.4, §8.2, §8.3.
//!
//! # Invariants
//! - A slot is copied out of the ring before it is decoded (no double fetch).
//! - Every consumed TX slot gets exactly one response (`NETIF_RSP_NULL` for an extra-info
//!   slot) unless the vif is disabled; every RX response sits in its request's slot.
//! - A disabled vif consumes and answers nothing more.
//!
//! xensim differs: the whole TX packet is grant-copied (Linux copies the first 128 bytes
//! and maps the rest); only the header's bytes move.

use alloc::vec::Vec;

use super::netif::{
    ExtraInfo, RxRequest, RxResponse, TxError, TxRequest, TxResponse, ETH_HLEN, FATAL_SKB_SLOTS,
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETIF_RX_SLOT_BYTES, NETIF_TX_SLOT_BYTES,
    NETRXF_MORE_DATA, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, XEN_NETIF_NR_SLOTS_MIN,
};
use super::ring::RingOverflow;
use super::vbd::{PageStore, StandInFrames};
use super::vif::{NetPacket, VifQueue, HEADER_BYTES, RX_QUEUE_BYTES_MAX};
use crate::grant::{CopyOp, CopyPtr, CopySide, GrantTables};
use crate::ids::Gfn;

/// One TX packet netback consumed: the responses it owes, and the frame to forward.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxPacket {
    /// (id, status) of the first consumed slot (the packet's request).
    pub first: (u16, i16),
    /// (id, status) per further consumed slot (extras, fragments), in ring order: empty
    /// for a one-slot packet, so that such a packet does not allocate.
    pub more: Vec<(u16, i16)>,
    /// The frame, if it passed every check and copy (and is one of xensim's).
    pub packet: Option<NetPacket>,
    /// Why it was refused, if it was.
    pub error: Option<TxError>,
    /// Grant copies made (charged per page).
    pub copies: u32,
}

/// netback disabled the vif (`xenvif_fatal_tx_err`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxFatal {
    /// Why.
    pub error: TxError,
    /// `req_prod` as found.
    pub prod: u32,
    /// `req_cons` then.
    pub cons: u32,
}

/// What one RX flush did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RxFlush {
    /// Packets placed on the ring.
    pub packets: u32,
    /// Slots used.
    pub slots: u32,
    /// netfront must be notified.
    pub notify: bool,
}

impl VifQueue {
    /// Consumes every TX packet the ring offers now (none once disabled), appending them
    /// to `out` (the caller's reused batch buffer; on `Err` it holds the packets consumed
    /// before the fatal one, which are never answered).
    pub fn back_tx_consume(
        &mut self,
        grants: &mut GrantTables,
        pages: &PageStore,
        out: &mut Vec<TxPacket>,
    ) -> Result<(), TxFatal> {
        if self.back_disabled {
            return Ok(());
        }
        let fatal = |path: &mut VifQueue, error: TxError, prod: u32| {
            path.back_disabled = true;
            let cons = path.tx_back.req_cons;
            TxFatal { error, prod, cons }
        };
        let mut count = match self.tx_back.unconsumed_requests(&self.tx_sring) {
            Ok(count) => count,
            Err(o) => return Err(fatal(self, TxError::Truncated, o.prod)),
        };
        while count > 0 {
            let prod = self.tx_sring.req_prod();
            match self.back_tx_packet(count, grants, pages) {
                Ok(packet) => {
                    count -= u32::try_from(packet.more.len() + 1).unwrap_or(count);
                    out.push(packet);
                }
                Err(error) => return Err(fatal(self, error, prod)),
            }
        }
        self.note_tx_indices();
        Ok(())
    }

    fn tx_slot(&self, index: u32) -> [u8; NETIF_TX_SLOT_BYTES] {
        let mut slot = [0u8; NETIF_TX_SLOT_BYTES];
        slot.copy_from_slice(self.tx_sring.slot(index));
        slot
    }

    /// One packet of at most `avail` slots: extras, fragments, checks, copies.
    fn back_tx_packet(
        &mut self,
        avail: u32,
        grants: &mut GrantTables,
        pages: &PageStore,
    ) -> Result<TxPacket, TxError> {
        let mut more = Vec::new();
        let first_slot = self.tx_slot(self.tx_back.req_cons);
        let first = TxRequest::decode(&first_slot);
        let mut taken = 1u32;
        // xenvif_get_extras: each extra slot is checked and answered NULL.
        let mut more_extra = first.flags & NETTXF_EXTRA_INFO != 0;
        while more_extra {
            if taken >= avail {
                return Err(TxError::Truncated);
            }
            let raw = self.tx_slot(self.tx_back.req_cons.wrapping_add(taken));
            let extra = ExtraInfo::decode(&raw)?;
            more.push((TxRequest::decode(&raw).id, NETIF_RSP_NULL));
            taken += 1;
            more_extra = extra.more();
        }
        // xenvif_count_requests: the fragments, their sizes taken off the first's.
        let mut frags = Vec::new();
        let mut remaining = u32::from(first.size);
        let mut drop_err = None;
        let mut flags = first.flags;
        while flags & NETTXF_MORE_DATA != 0 {
            if taken >= avail {
                return Err(TxError::Truncated);
            }
            if frags.len() + 1 >= FATAL_SKB_SLOTS as usize {
                return Err(TxError::TooManySlots);
            }
            let frag = TxRequest::decode(&self.tx_slot(self.tx_back.req_cons.wrapping_add(taken)));
            taken += 1;
            if frags.len() + 1 >= XEN_NETIF_NR_SLOTS_MIN as usize {
                drop_err.get_or_insert(TxError::TooManySlots);
            }
            if u32::from(frag.size) > remaining {
                drop_err.get_or_insert(TxError::SlotTooLarge);
            } else {
                remaining -= u32::from(frag.size);
            }
            if !frag.within_page() {
                return Err(TxError::CrossPage);
            }
            more.push((frag.id, NETIF_RSP_OKAY));
            frags.push(frag);
            flags = frag.flags;
        }
        self.tx_back.req_cons = self.tx_back.req_cons.wrapping_add(taken);
        if drop_err.is_none() && remaining < ETH_HLEN {
            drop_err = Some(TxError::BadPacketSize);
        }
        if u32::from(first.offset) + remaining > super::vif::PAGE_BYTES_U32 {
            return Err(TxError::CrossPage);
        }
        let mut packet = TxPacket {
            first: (first.id, NETIF_RSP_OKAY),
            more,
            packet: None,
            error: drop_err,
            copies: 0,
        };
        if drop_err.is_none() {
            self.back_tx_copy(first, &frags, grants, pages, &mut packet);
        }
        if packet.error.is_some() {
            packet.first.1 = NETIF_RSP_ERROR;
            for rsp in packet.more.iter_mut() {
                rsp.1 = NETIF_RSP_ERROR;
            }
        }
        Ok(packet)
    }

    /// Grant-copies the packet's pages into netback's bounce page; the header comes
    /// from the first.
    fn back_tx_copy(
        &mut self,
        first: TxRequest,
        frags: &[TxRequest],
        grants: &mut GrantTables,
        pages: &PageStore,
        out: &mut TxPacket,
    ) {
        let back_gfn = Gfn::new(self.back_gfn());
        let mut header = None;
        for (i, req) in core::iter::once(&first).chain(frags).enumerate() {
            let op = CopyOp {
                source: CopySide {
                    ptr: CopyPtr::Gref {
                        dom: self.params.front_dom,
                        gref: req.gref,
                    },
                    offset_bytes: req.offset,
                },
                dest: CopySide {
                    ptr: CopyPtr::LocalGfn(back_gfn),
                    offset_bytes: 0,
                },
                len_bytes: if i == 0 {
                    u16::try_from(HEADER_BYTES).unwrap_or(0)
                } else {
                    req.size
                },
            };
            match grants.copy(self.params.back_dom, &op, &StandInFrames) {
                Ok(copied) => {
                    out.copies += 1;
                    if i == 0 {
                        let offset = usize::from(req.offset);
                        header = pages
                            .with_bytes::<HEADER_BYTES, _>(
                                copied.source_mfn,
                                offset,
                                NetPacket::decode,
                            )
                            .flatten();
                    }
                }
                Err(e) => {
                    out.error = Some(TxError::Grant(e.code()));
                    return;
                }
            }
        }
        // A frame whose header claims another size than its slots carry is not forwarded.
        out.packet = header.filter(|h| h.bytes == u32::from(first.size));
    }

    /// `make_tx_response` for every slot of `packets`, then one push; true if netfront
    /// must be notified. A disabled vif answers nothing.
    pub fn back_tx_respond(&mut self, packets: &[TxPacket]) -> bool {
        if self.back_disabled {
            return false;
        }
        let mut any = false;
        for packet in packets {
            if packet.error.is_some() {
                self.counters.tx_errors += 1;
            }
            for &(id, status) in core::iter::once(&packet.first).chain(&packet.more) {
                let rsp = TxResponse { id, status };
                rsp.encode(self.tx_sring.slot_mut(self.tx_back.rsp_prod_pvt));
                self.tx_back.rsp_prod_pvt = self.tx_back.rsp_prod_pvt.wrapping_add(1);
                any = true;
            }
        }
        if !any {
            return false;
        }
        let notify = self.tx_back.push_responses(&mut self.tx_sring);
        self.note_tx_indices();
        notify
    }

    /// Whether [`VifQueue::back_tx_consume`] would consume nothing and fail on nothing:
    /// the vif is disabled, or the ring offers no request. For an empty ring it notes the
    /// indices, as that call does, so the caller can skip it (and its batch buffer).
    #[inline]
    pub fn back_tx_idle(&mut self) -> bool {
        if self.back_disabled {
            return true;
        }
        if !matches!(self.tx_back.unconsumed_requests(&self.tx_sring), Ok(0)) {
            return false;
        }
        self.note_tx_indices();
        true
    }

    /// After a TX batch: re-arm `req_event` and look once more; true if more arrived.
    pub fn back_tx_final_check(&mut self) -> Result<bool, RingOverflow> {
        if self.back_disabled {
            return Ok(false);
        }
        let more = self.tx_back.final_check_for_requests(&mut self.tx_sring);
        if more.is_err() {
            self.back_disabled = true;
        }
        more
    }

    /// A frame for the frontend (`xenvif_start_xmit`): queued, or dropped and counted when
    /// the queue is full or the vif is disabled.
    pub fn back_rx_queue(&mut self, packet: NetPacket) -> bool {
        let room = RX_QUEUE_BYTES_MAX - self.rx_queue_bytes;
        if self.back_disabled || packet.bytes > room {
            self.counters.rx_ring_drops += 1;
            return false;
        }
        self.rx_queue_bytes += packet.bytes;
        self.rx_queue.push_back(packet);
        true
    }

    /// `xenvif_rx_action`: places queued packets while the RX ring has a buffer for each
    /// of their pages. `Err` when the frontend's `req_prod` is impossible: the vif is
    /// disabled.
    pub fn back_rx_flush(
        &mut self,
        grants: &mut GrantTables,
        pages: &mut PageStore,
    ) -> Result<RxFlush, RingOverflow> {
        let mut flush = RxFlush::default();
        if self.back_disabled {
            return Ok(flush);
        }
        while let Some(packet) = self.rx_queue.front().copied() {
            let avail = match self.rx_back.unconsumed_requests(&self.rx_sring) {
                Ok(avail) => avail,
                Err(overflow) => {
                    self.back_disabled = true;
                    return Err(overflow);
                }
            };
            if avail < packet.slots() {
                // Wait for buffers: ask to be kicked when the frontend posts more.
                let _ = self.rx_back.final_check_for_requests(&mut self.rx_sring);
                break;
            }
            self.rx_queue.pop_front();
            self.rx_queue_bytes -= packet.bytes;
            self.back_rx_place(&packet, grants, pages);
            flush.packets += 1;
            flush.slots += packet.slots();
        }
        if flush.slots > 0 {
            flush.notify = self.rx_back.push_responses(&mut self.rx_sring);
            self.note_rx_indices();
            if flush.notify {
                self.counters.rx_notify_count += 1;
            } else {
                self.counters.rx_notify_suppressed += 1;
            }
        }
        Ok(flush)
    }

    /// One packet into the next `slots()` posted buffers, each answered in its slot.
    fn back_rx_place(
        &mut self,
        packet: &NetPacket,
        grants: &mut GrantTables,
        pages: &mut PageStore,
    ) {
        let slots = packet.slots();
        let page_bytes = super::vif::PAGE_BYTES_U32;
        let back_gfn = Gfn::new(self.back_gfn());
        for i in 0..slots {
            let index = self.rx_back.req_cons;
            assert_eq!(
                index, self.rx_back.rsp_prod_pvt,
                "RX answers in its own slot"
            );
            let mut raw = [0u8; NETIF_RX_SLOT_BYTES];
            raw.copy_from_slice(self.rx_sring.slot(index));
            let req = RxRequest::decode(&raw);
            self.rx_back.req_cons = index.wrapping_add(1);
            let len = if i + 1 < slots {
                page_bytes
            } else {
                packet.bytes - page_bytes * (slots - 1)
            };
            let op = CopyOp {
                source: CopySide {
                    ptr: CopyPtr::LocalGfn(back_gfn),
                    offset_bytes: 0,
                },
                dest: CopySide {
                    ptr: CopyPtr::Gref {
                        dom: self.params.front_dom,
                        gref: req.gref,
                    },
                    offset_bytes: 0,
                },
                len_bytes: u16::try_from(len.min(page_bytes - 1)).unwrap_or(0),
            };
            let status = match grants.copy(self.params.back_dom, &op, &StandInFrames) {
                Ok(copied) => {
                    if i == 0 {
                        packet.encode(pages.bytes_mut(copied.dest_mfn, HEADER_BYTES));
                    }
                    i16::try_from(len).unwrap_or(i16::MAX)
                }
                Err(_) => NETIF_RSP_ERROR,
            };
            let rsp = RxResponse {
                id: req.id,
                offset: 0,
                flags: if i + 1 < slots { NETRXF_MORE_DATA } else { 0 },
                status,
            };
            rsp.encode(self.rx_sring.slot_mut(index));
            self.rx_back.rsp_prod_pvt = index.wrapping_add(1);
        }
    }
}
