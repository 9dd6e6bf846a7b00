//! The blkif wire format: requests (direct, indirect, discard, flush, barrier) and responses
//! as they sit in a ring slot, decoded from a copy of the slot and validated as Linux's
//! blkback does before it touches any grant.
//!
//! Follows xen/include/public/io/blkif.h (Xen 4.17; x86-64 layout) and Linux
//! drivers/block/xen-blkback/blkback.c (`dispatch_rw_block_io`, `dispatch_discard_io`,
//! `vbd_translate`); spec `xenstore-io.md` §8.4.
//!
//! # Invariants
//! - A decoded [`BlkRequest`] of kind READ/WRITE has 1..=11 direct segments, or 1..=the
//!   advertised maximum indirect segments over at most 8 indirect pages; every segment has
//!   `first_sect <= last_sect <= 7`. Anything else is a [`BlkReqError`] and becomes a
//!   `BLKIF_RSP_ERROR` (or `BLKIF_RSP_EOPNOTSUPP`) response, never a panic.
//!
//! xensim leaves out: the 32-bit ABI layouts (`x86_32-abi`); multi-page rings.

use crate::ids::GrantRef;

/// `BLKIF_OP_READ`.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`.
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_DISCARD`.
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT`.
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segment descriptors per indirect page (4096 / 8).
pub const SEGS_PER_INDIRECT_FRAME: usize = 512;
/// What Linux's blkback advertises in `feature-max-indirect-segments`
/// (`MAX_INDIRECT_SEGMENTS`, drivers/block/xen-blkback/common.h).
pub const BLKBACK_MAX_INDIRECT_SEGMENTS: u32 = 256;
/// Linux blkfront's default cap (`xen_blkif_max_segments`, module parameter).
pub const BLKFRONT_MAX_INDIRECT_SEGMENTS: u32 = 32;
/// 512-byte sectors per 4 KiB page (`last_sect <= 7`).
pub const SECTORS_PER_PAGE: u8 = 8;

/// Bytes of one ring slot (`sizeof(union blkif_sring_entry)` on x86-64).
pub const BLKIF_SLOT_BYTES: usize = 112;
/// Bytes of a response.
pub const BLKIF_RSP_BYTES: usize = 16;

/// `BLKIF_RSP_OKAY`.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

const _: () = assert!(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * SEGS_PER_INDIRECT_FRAME == 4096);
const _: () = assert!(BLKBACK_MAX_INDIRECT_SEGMENTS as usize <= 4096);
const _: () = assert!(BLKFRONT_MAX_INDIRECT_SEGMENTS <= BLKBACK_MAX_INDIRECT_SEGMENTS);
const _: () = assert!(24 + 8 * BLKIF_MAX_SEGMENTS_PER_REQUEST == BLKIF_SLOT_BYTES);

/// `struct blkif_request_segment`: sectors `first_sect..=last_sect` of the granted page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Segment {
    /// The page's grant.
    pub gref: GrantRef,
    /// First 512-byte sector in the page.
    pub first_sect: u8,
    /// Last sector (inclusive).
    pub last_sect: u8,
}

impl Default for Segment {
    fn default() -> Segment {
        Segment {
            gref: GrantRef::new(0),
            first_sect: 0,
            last_sect: 0,
        }
    }
}

impl Segment {
    /// Reads a descriptor from its 8 bytes (`gref`, `first_sect`, `last_sect`, pad).
    pub fn decode(raw: &[u8]) -> Segment {
        Segment {
            gref: GrantRef::new(le32(raw, 0)),
            first_sect: raw[4],
            last_sect: raw[5],
        }
    }

    /// Writes the descriptor's 8 bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.gref.raw().to_le_bytes());
        out[4] = self.first_sect;
        out[5] = self.last_sect;
        out[6] = 0;
        out[7] = 0;
    }

    /// Sectors it moves, or the error if its bounds are bad.
    pub fn sectors(&self) -> Result<u8, BlkReqError> {
        if self.last_sect >= SECTORS_PER_PAGE || self.first_sect > self.last_sect {
            return Err(BlkReqError::BadSegment);
        }
        Ok(self.last_sect - self.first_sect + 1)
    }
}

fn le32(raw: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&raw[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le64(raw: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Direction of a data request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dir {
    /// Disk to guest (needs a writable grant).
    Read,
    /// Guest to disk (a read-only grant suffices).
    Write,
}

impl Dir {
    /// The blkif operation code.
    pub const fn op(self) -> u8 {
        match self {
            Dir::Read => BLKIF_OP_READ,
            Dir::Write => BLKIF_OP_WRITE,
        }
    }
}

/// A request as the backend copied it out of its slot.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BlkRequest {
    /// READ/WRITE with its segments in the slot.
    Direct {
        /// Direction.
        dir: Dir,
        /// Echoed id.
        id: u64,
        /// First 512-byte sector.
        sector: u64,
        /// The slot's descriptor positions: the first `nr_segs` (1..=11 once validated)
        /// are the request's segments, the rest the slot's unused bytes.
        segs: [Segment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
        /// How many of `segs` are used (as the slot claims it).
        nr_segs: u8,
    },
    /// INDIRECT: the segments are in granted pages.
    Indirect {
        /// `indirect_op`, already checked to be READ or WRITE.
        dir: Dir,
        /// Echoed id.
        id: u64,
        /// First sector.
        sector: u64,
        /// Segments over all indirect pages.
        nr_segs: u16,
        /// The indirect pages' grants (`ceil(nr_segs / 512)` used).
        pages: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    },
    /// FLUSH_DISKCACHE (`drain` false) or WRITE_BARRIER (`drain` true).
    Flush {
        /// Echoed id.
        id: u64,
        /// The operation code to echo.
        op: u8,
    },
    /// DISCARD of a sector range.
    Discard {
        /// Echoed id.
        id: u64,
        /// First sector.
        sector: u64,
        /// Sectors.
        nr_sectors: u64,
    },
}

/// Why a request gets an error response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlkReqError {
    /// A segment with `first_sect > last_sect` or `last_sect > 7`.
    BadSegment,
    /// A grant the backend could not map or copy (its `GNTST_*` code).
    Grant(i16),
    /// The disk failed it (a `disk-error` fault).
    DiskError,
    /// An indirect request whose `indirect_op` is neither READ nor WRITE.
    IndirectOp(u8),
    /// More indirect segments than advertised, or none.
    IndirectSegments(u16),
    /// A direct request with 0 or more than 11 segments.
    NrSegments(u8),
    /// An operation the backend does not know (`BLKIF_RSP_EOPNOTSUPP`).
    Operation(u8),
    /// Sectors past the end of the disk (or a wrapping range).
    OutOfRange,
    /// A write to a read-only disk.
    ReadOnly,
}

impl BlkReqError {
    /// The status the frontend sees.
    pub const fn status(self) -> i16 {
        match self {
            BlkReqError::Operation(_) => BLKIF_RSP_EOPNOTSUPP,
            _ => BLKIF_RSP_ERROR,
        }
    }

    /// A short code for the trace (stable; part of the canonical encoding).
    pub const fn code(self) -> u8 {
        match self {
            BlkReqError::BadSegment => 1,
            BlkReqError::Grant(_) => 2,
            BlkReqError::IndirectOp(_) => 3,
            BlkReqError::IndirectSegments(_) => 4,
            BlkReqError::NrSegments(_) => 5,
            BlkReqError::Operation(_) => 6,
            BlkReqError::OutOfRange => 7,
            BlkReqError::ReadOnly => 8,
            BlkReqError::DiskError => 9,
        }
    }
}

/// The id and operation of any slot (same offsets in every layout), for an error reply.
pub fn slot_id_op(slot: &[u8]) -> (u64, u8) {
    let op = slot[0];
    let op = if op == BLKIF_OP_INDIRECT { slot[1] } else { op };
    (le64(slot, 8), op)
}

/// Decodes a copied slot; `max_indirect` is what the backend advertised.
pub fn decode_request(slot: &[u8], max_indirect: u32) -> Result<BlkRequest, BlkReqError> {
    assert_eq!(slot.len(), BLKIF_SLOT_BYTES, "a blkif slot is 112 bytes");
    let id = le64(slot, 8);
    match slot[0] {
        op @ (BLKIF_OP_READ | BLKIF_OP_WRITE) => {
            let nr_segs = slot[1];
            if nr_segs == 0 || usize::from(nr_segs) > BLKIF_MAX_SEGMENTS_PER_REQUEST {
                return Err(BlkReqError::NrSegments(nr_segs));
            }
            // Every descriptor position of the slot, straight-line (those past `nr_segs`
            // are never read): cheaper than zeroing the array and decoding in a loop.
            let segs = core::array::from_fn(|i| Segment::decode(&slot[24 + 8 * i..32 + 8 * i]));
            let dir = if op == BLKIF_OP_READ {
                Dir::Read
            } else {
                Dir::Write
            };
            Ok(BlkRequest::Direct {
                dir,
                id,
                sector: le64(slot, 16),
                segs,
                nr_segs,
            })
        }
        BLKIF_OP_INDIRECT => decode_indirect(slot, id, max_indirect),
        op @ (BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER) => {
            Ok(BlkRequest::Flush { id, op })
        }
        BLKIF_OP_DISCARD => Ok(BlkRequest::Discard {
            id,
            sector: le64(slot, 16),
            nr_sectors: le64(slot, 24),
        }),
        op => Err(BlkReqError::Operation(op)),
    }
}

fn decode_indirect(slot: &[u8], id: u64, max_indirect: u32) -> Result<BlkRequest, BlkReqError> {
    let dir = match slot[1] {
        BLKIF_OP_READ => Dir::Read,
        BLKIF_OP_WRITE => Dir::Write,
        other => return Err(BlkReqError::IndirectOp(other)),
    };
    let nr_segs = u16::from_le_bytes([slot[2], slot[3]]);
    if nr_segs == 0 || u32::from(nr_segs) > max_indirect {
        return Err(BlkReqError::IndirectSegments(nr_segs));
    }
    let mut pages = [GrantRef::new(0); BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    for (i, page) in pages.iter_mut().enumerate() {
        *page = GrantRef::new(le32(slot, 28 + 4 * i));
    }
    Ok(BlkRequest::Indirect {
        dir,
        id,
        sector: le64(slot, 16),
        nr_segs,
        pages,
    })
}

/// Indirect pages a request of `nr_segs` segments uses.
pub const fn indirect_pages(nr_segs: usize) -> usize {
    nr_segs.div_ceil(SEGS_PER_INDIRECT_FRAME)
}

/// Writes a direct READ/WRITE request of `segs` into `slot`.
pub fn encode_direct(
    slot: &mut [u8],
    dir: Dir,
    id: u64,
    sector: u64,
    segs: impl ExactSizeIterator<Item = Segment>,
) {
    let nr_segs = segs.len();
    assert!(nr_segs > 0, "a data request has a segment");
    assert!(
        nr_segs <= BLKIF_MAX_SEGMENTS_PER_REQUEST,
        "direct: at most 11"
    );
    slot.fill(0);
    slot[0] = dir.op();
    slot[1] = u8::try_from(nr_segs).unwrap_or(0);
    slot[8..16].copy_from_slice(&id.to_le_bytes());
    slot[16..24].copy_from_slice(&sector.to_le_bytes());
    for (i, seg) in segs.enumerate() {
        seg.encode(&mut slot[24 + 8 * i..32 + 8 * i]);
    }
}

/// Writes an INDIRECT request into `slot` (its descriptors go in the indirect pages).
pub fn encode_indirect(
    slot: &mut [u8],
    dir: Dir,
    id: u64,
    sector: u64,
    nr_segs: u16,
    pages: &[GrantRef],
) {
    assert!(
        pages.len() <= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
        "at most 8 pages"
    );
    assert_eq!(
        pages.len(),
        indirect_pages(usize::from(nr_segs)),
        "pages for segs"
    );
    slot.fill(0);
    slot[0] = BLKIF_OP_INDIRECT;
    slot[1] = dir.op();
    slot[2..4].copy_from_slice(&nr_segs.to_le_bytes());
    slot[8..16].copy_from_slice(&id.to_le_bytes());
    slot[16..24].copy_from_slice(&sector.to_le_bytes());
    for (i, page) in pages.iter().enumerate() {
        slot[28 + 4 * i..32 + 4 * i].copy_from_slice(&page.raw().to_le_bytes());
    }
}

/// Writes a FLUSH_DISKCACHE request.
pub fn encode_flush(slot: &mut [u8], id: u64) {
    slot.fill(0);
    slot[0] = BLKIF_OP_FLUSH_DISKCACHE;
    slot[8..16].copy_from_slice(&id.to_le_bytes());
}

/// `struct blkif_response`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlkResponse {
    /// The request's id.
    pub id: u64,
    /// The request's operation.
    pub op: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}

impl BlkResponse {
    /// Writes it at the start of `slot` (id, operation, status at offset 10).
    pub fn encode(&self, slot: &mut [u8]) {
        slot[0..8].copy_from_slice(&self.id.to_le_bytes());
        slot[8] = self.op;
        slot[9] = 0;
        slot[10..12].copy_from_slice(&self.status.to_le_bytes());
    }

    /// Reads one from a copied slot.
    pub fn decode(slot: &[u8]) -> BlkResponse {
        BlkResponse {
            id: le64(slot, 0),
            op: slot[8],
            status: i16::from_le_bytes([slot[10], slot[11]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(gref: u32, first: u8, last: u8) -> Segment {
        Segment {
            gref: GrantRef::new(gref),
            first_sect: first,
            last_sect: last,
        }
    }

    #[test]
    fn direct_write_roundtrips_through_a_slot() {
        let mut slot = [0u8; BLKIF_SLOT_BYTES];
        let segs = [seg(8, 0, 7), seg(9, 0, 3)];
        encode_direct(&mut slot, Dir::Write, 42, 2048, segs.iter().copied());
        let Ok(BlkRequest::Direct {
            dir, id, nr_segs, ..
        }) = decode_request(&slot, 256)
        else {
            panic!("a direct request");
        };
        assert_eq!((dir, id, nr_segs), (Dir::Write, 42, 2));
    }

    #[test]
    fn twelve_direct_segments_are_rejected() {
        let mut slot = [0u8; BLKIF_SLOT_BYTES];
        encode_direct(&mut slot, Dir::Read, 1, 0, [seg(8, 0, 7)].into_iter());
        slot[1] = 12;
        assert_eq!(decode_request(&slot, 256), Err(BlkReqError::NrSegments(12)));
    }

    #[test]
    fn indirect_above_the_advertised_maximum_is_rejected() {
        // 257 segments against blkback's 256.
        let mut slot = [0u8; BLKIF_SLOT_BYTES];
        let pages = [GrantRef::new(20)];
        encode_indirect(&mut slot, Dir::Read, 3, 0, 257, &pages);
        assert_eq!(
            decode_request(&slot, BLKBACK_MAX_INDIRECT_SEGMENTS),
            Err(BlkReqError::IndirectSegments(257))
        );
    }

    #[test]
    fn indirect_op_must_be_read_or_write() {
        let mut slot = [0u8; BLKIF_SLOT_BYTES];
        encode_indirect(&mut slot, Dir::Read, 3, 0, 16, &[GrantRef::new(20)]);
        slot[1] = BLKIF_OP_FLUSH_DISKCACHE;
        assert_eq!(
            decode_request(&slot, 256),
            Err(BlkReqError::IndirectOp(BLKIF_OP_FLUSH_DISKCACHE))
        );
    }

    #[test]
    fn segment_past_the_page_is_bad() {
        assert_eq!(seg(8, 0, 8).sectors(), Err(BlkReqError::BadSegment));
        assert_eq!(seg(8, 4, 3).sectors(), Err(BlkReqError::BadSegment));
        assert_eq!(seg(8, 2, 5).sectors(), Ok(4));
    }

    #[test]
    fn unknown_operation_is_eopnotsupp() {
        let mut slot = [0u8; BLKIF_SLOT_BYTES];
        slot[0] = 4; // BLKIF_OP_RESERVED_1
        let err = decode_request(&slot, 256).map(|_| ());
        assert_eq!(err, Err(BlkReqError::Operation(4)));
        assert_eq!(BlkReqError::Operation(4).status(), BLKIF_RSP_EOPNOTSUPP);
    }

    #[test]
    fn response_status_sits_at_offset_ten() {
        let mut slot = [0u8; BLKIF_SLOT_BYTES];
        let rsp = BlkResponse {
            id: 7,
            op: BLKIF_OP_READ,
            status: BLKIF_RSP_ERROR,
        };
        rsp.encode(&mut slot);
        assert_eq!(&slot[10..12], &[0xff, 0xff]);
        assert_eq!(BlkResponse::decode(&slot), rsp);
    }
}
