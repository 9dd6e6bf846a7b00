//! The netif wire format: TX requests and responses, RX requests and responses and the
//! extra-info slots as they sit in a ring slot, decoded from a copy of the slot and
//! validated as Linux's netback does before it touches a grant.
//!
//! Follows xen/include/public/io/netif.h (Xen 4.17) and Linux
//! drivers/net/xen-netback/netback.c (`xenvif_count_requests`, `xenvif_get_extras`,
//! `xenvif_tx_build_gops`: "Bad packet size", "Cross page boundary", "Too many slots",
//! "Invalid extra type"); spec `xenstore-io.md` §8.2, §8.3.
//!
//! # Invariants
//! - A decoded [`TxRequest`] is only a copy of its slot: every check runs on the copy (no
//!   double fetch), and a request that fails a check becomes a [`TxError`], never a panic.
//! - [`TxError::fatal`] names exactly the errors on which Linux's netback disables the vif
//!   (`xenvif_fatal_tx_err`); the others answer the packet's slots with `NETIF_RSP_ERROR`.
//!
//! xensim leaves out: the control ring and the hash/multicast extra types' effects (they
//! are accepted and skipped).

use crate::ids::GrantRef;

/// Bytes of a TX ring slot (`sizeof(union netif_tx_sring_entry)`).
pub const NETIF_TX_SLOT_BYTES: usize = 12;
/// Bytes of an RX ring slot (`sizeof(union netif_rx_sring_entry)`).
pub const NETIF_RX_SLOT_BYTES: usize = 8;

/// `NETTXF_csum_blank`.
pub const NETTXF_CSUM_BLANK: u16 = 1;
/// `NETTXF_data_validated`.
pub const NETTXF_DATA_VALIDATED: u16 = 2;
/// `NETTXF_more_data`: another fragment follows.
pub const NETTXF_MORE_DATA: u16 = 4;
/// `NETTXF_extra_info`: an extra-info slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 8;
/// `NETRXF_more_data`.
pub const NETRXF_MORE_DATA: u16 = 4;

/// `XEN_NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `XEN_NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `XEN_NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `XEN_NETIF_RSP_NULL`: the response of an extra-info slot.
pub const NETIF_RSP_NULL: i16 = 1;

/// `XEN_NETIF_MAX_TX_SIZE`.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xFFFF;
/// `XEN_NETIF_NR_SLOTS_MIN`: slots per packet every backend accepts.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;
/// Linux netback's `fatal_skb_slots` default (`FATAL_SKB_SLOTS_DEFAULT`): a packet of more
/// slots disables the vif.
pub const FATAL_SKB_SLOTS: u32 = 20;
/// `XEN_NETIF_EXTRA_TYPE_MAX`: extra types are 1..MAX.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// `XEN_NETIF_EXTRA_FLAG_MORE`.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1;
/// `ETH_HLEN`: the smallest packet netback accepts.
pub const ETH_HLEN: u32 = 14;
/// One 4 KiB page: `offset + size` of a slot must not pass it.
pub const NETIF_PAGE_BYTES: u32 = 4096;

const _: () = assert!(FATAL_SKB_SLOTS >= XEN_NETIF_NR_SLOTS_MIN);
const _: () = assert!(NETIF_TX_SLOT_BYTES >= 8);

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `struct netif_tx_request` (12 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxRequest {
    /// Grant of the buffer page.
    pub gref: GrantRef,
    /// Offset in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// First slot: the packet's total size; later slots: this fragment's size.
    pub size: u16,
}

impl TxRequest {
    /// Writes the request into a slot.
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..4].copy_from_slice(&self.gref.raw().to_le_bytes());
        slot[4..6].copy_from_slice(&self.offset.to_le_bytes());
        slot[6..8].copy_from_slice(&self.flags.to_le_bytes());
        slot[8..10].copy_from_slice(&self.id.to_le_bytes());
        slot[10..12].copy_from_slice(&self.size.to_le_bytes());
    }

    /// Reads a request from a copy of its slot.
    pub fn decode(slot: &[u8; NETIF_TX_SLOT_BYTES]) -> TxRequest {
        TxRequest {
            gref: GrantRef::new(u32_at(slot, 0)),
            offset: u16_at(slot, 4),
            flags: u16_at(slot, 6),
            id: u16_at(slot, 8),
            size: u16_at(slot, 10),
        }
    }

    /// `offset + size` stays inside the page (netback: "Cross page boundary").
    pub fn within_page(&self) -> bool {
        u32::from(self.offset) + u32::from(self.size) <= NETIF_PAGE_BYTES
    }
}

/// `struct netif_tx_response` (4 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxResponse {
    /// The request's id.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

impl TxResponse {
    /// Writes the response into a slot.
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&self.id.to_le_bytes());
        slot[2..4].copy_from_slice(&self.status.to_le_bytes());
    }

    /// Reads a response from a copy of its first 4 bytes.
    pub fn decode(raw: &[u8; 4]) -> TxResponse {
        TxResponse {
            id: u16_at(raw, 0),
            status: i16::from_le_bytes([raw[2], raw[3]]),
        }
    }
}

/// `struct netif_extra_info` as far as netback checks it: its type and flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*` (1 GSO, 2/3 multicast, 4 hash).
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
}

impl ExtraInfo {
    /// Writes a GSO extra (type 1, TCPv4, MSS `mss`) into a slot.
    pub fn encode_gso(slot: &mut [u8], mss: u16, more: bool) {
        slot.fill(0);
        slot[0] = 1;
        slot[1] = if more { XEN_NETIF_EXTRA_FLAG_MORE } else { 0 };
        slot[2..4].copy_from_slice(&mss.to_le_bytes());
        slot[4] = 1;
    }

    /// `xenvif_get_extras`' check of one extra slot (a copy of it).
    pub fn decode(slot: &[u8; NETIF_TX_SLOT_BYTES]) -> Result<ExtraInfo, TxError> {
        let extra = ExtraInfo {
            kind: slot[0],
            flags: slot[1],
        };
        if extra.kind == 0 || extra.kind >= XEN_NETIF_EXTRA_TYPE_MAX {
            return Err(TxError::BadExtraType);
        }
        Ok(extra)
    }

    /// Another extra slot follows.
    pub fn more(&self) -> bool {
        self.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0
    }
}

/// `struct netif_rx_request` (8 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Grant of an empty frontend page.
    pub gref: GrantRef,
}

impl RxRequest {
    /// Writes the request into a slot.
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&self.id.to_le_bytes());
        slot[2..4].fill(0);
        slot[4..8].copy_from_slice(&self.gref.raw().to_le_bytes());
    }

    /// Reads a request from a copy of its slot.
    pub fn decode(slot: &[u8; NETIF_RX_SLOT_BYTES]) -> RxRequest {
        RxRequest {
            id: u16_at(slot, 0),
            gref: GrantRef::new(u32_at(slot, 4)),
        }
    }
}

/// `struct netif_rx_response` (8 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RxResponse {
    /// The request's id.
    pub id: u16,
    /// Where the data starts in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes in this slot (≥ 0) or `NETIF_RSP_*` (< 0).
    pub status: i16,
}

impl RxResponse {
    /// Writes the response into a slot.
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..2].copy_from_slice(&self.id.to_le_bytes());
        slot[2..4].copy_from_slice(&self.offset.to_le_bytes());
        slot[4..6].copy_from_slice(&self.flags.to_le_bytes());
        slot[6..8].copy_from_slice(&self.status.to_le_bytes());
    }

    /// Reads a response from a copy of its slot.
    pub fn decode(slot: &[u8; NETIF_RX_SLOT_BYTES]) -> RxResponse {
        RxResponse {
            id: u16_at(slot, 0),
            offset: u16_at(slot, 2),
            flags: u16_at(slot, 4),
            status: i16::from_le_bytes([slot[6], slot[7]]),
        }
    }
}

/// Why netback refused a TX packet (the line Linux's netback logs, as a value).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxError {
    /// "Bad packet size": the first slot's size is below `ETH_HLEN`.
    BadPacketSize,
    /// "Cross page boundary": `offset + size` of a slot passes 4096. Fatal.
    CrossPage,
    /// "Invalid extra type": an extra slot of type 0 or ≥ `XEN_NETIF_EXTRA_TYPE_MAX`. Fatal.
    BadExtraType,
    /// A grant copy failed (`GNTST_*`): the packet is answered with `NETIF_RSP_ERROR`.
    Grant(i16),
    /// "Invalid tx request, slot size > remaining size": fragments larger than the total.
    SlotTooLarge,
    /// "Too many slots": more than [`FATAL_SKB_SLOTS`] slots in one packet. Fatal.
    TooManySlots,
    /// The packet's slots run past what the frontend published. Fatal ("Impossible number
    /// of requests" / "Need more slots").
    Truncated,
}

impl TxError {
    /// Netback disables the vif (`xenvif_fatal_tx_err`) rather than answering the packet.
    pub const fn fatal(self) -> bool {
        matches!(
            self,
            TxError::CrossPage | TxError::BadExtraType | TxError::TooManySlots | TxError::Truncated
        )
    }

    /// Stable code for the trace.
    pub const fn code(self) -> u8 {
        match self {
            TxError::BadPacketSize => 1,
            TxError::CrossPage => 2,
            TxError::BadExtraType => 3,
            TxError::Grant(_) => 4,
            TxError::SlotTooLarge => 5,
            TxError::TooManySlots => 6,
            TxError::Truncated => 7,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_request_roundtrips_through_a_slot() {
        let req = TxRequest {
            gref: GrantRef::new(77),
            offset: 100,
            flags: NETTXF_MORE_DATA,
            id: 9,
            size: 1500,
        };
        let mut slot = [0u8; NETIF_TX_SLOT_BYTES];
        req.encode(&mut slot);
        assert_eq!(TxRequest::decode(&slot), req);
    }

    #[test]
    fn slot_past_the_page_is_not_within_page() {
        // 4000 + 200 > 4096.
        let req = TxRequest {
            gref: GrantRef::new(8),
            offset: 4000,
            flags: 0,
            id: 0,
            size: 200,
        };
        assert!(!req.within_page());
    }

    #[test]
    fn extra_of_type_zero_is_fatal() {
        let slot = [0u8; NETIF_TX_SLOT_BYTES];
        let err = ExtraInfo::decode(&slot).expect_err("type 0 is invalid");
        assert!(err.fatal());
    }

    #[test]
    fn gso_extra_decodes_as_type_one() {
        let mut slot = [0u8; NETIF_TX_SLOT_BYTES];
        ExtraInfo::encode_gso(&mut slot, 1448, false);
        assert_eq!(
            ExtraInfo::decode(&slot),
            Ok(ExtraInfo { kind: 1, flags: 0 })
        );
    }

    #[test]
    fn rx_response_keeps_a_negative_status() {
        let rsp = RxResponse {
            id: 3,
            offset: 0,
            flags: NETRXF_MORE_DATA,
            status: NETIF_RSP_ERROR,
        };
        let mut slot = [0u8; NETIF_RX_SLOT_BYTES];
        rsp.encode(&mut slot);
        assert_eq!(RxResponse::decode(&slot), rsp);
    }

    #[test]
    fn grant_failures_answer_rather_than_disable() {
        assert!(!TxError::Grant(-4).fatal());
        assert!(!TxError::BadPacketSize.fatal());
        assert!(TxError::CrossPage.fatal());
    }
}
