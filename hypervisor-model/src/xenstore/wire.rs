//! The XenStore wire protocol: message types, the 16-byte header, frames, the incremental
//! frame decoder, and the NUL-separated argument helpers the request handlers use.
//!
//! Follows xen/include/public/io/xs_wire.h (4.17: `XS_TYPE_COUNT` = 23, no GET/SET_FEATURE or
//! quota messages) and tools/xenstore/xenstored_core.c (`handle_input`, `get_string`,
//! `get_strings`, `onearg`, `send_reply`, `send_error`, `send_event`).
//!
//! # Invariants
//! - Every frame the decoder yields has `len <= XENSTORE_PAYLOAD_MAX` and exactly `len`
//!   payload bytes; a longer declared length is a [`DecodeError`], never a panic.
//! - Every frame built by [`Frame::reply`] / [`Frame::error`] / [`Frame::watch_event`] has a
//!   payload of at most `XENSTORE_PAYLOAD_MAX` bytes (an oversized reply becomes `E2BIG`).
//!
//! Left out: byte-order detection (the protocol is native-endian; xensim is little-endian).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::XsError;

/// `XENSTORE_PAYLOAD_MAX` (xs_wire.h): the largest payload in either direction.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Bytes in a message header (`struct xsd_sockmsg`).
pub const HEADER_BYTES: usize = 16;

/// A message type (`enum xsd_sockmsg_type`, Xen 4.17 numbering).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[allow(missing_docs)]
pub enum MsgType {
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    ResetWatches = 21,
    DirectoryPart = 22,
}

/// `XS_TYPE_COUNT` in 4.17: numbers at or above it get `ENOSYS`.
pub const XS_TYPE_COUNT: u32 = 23;

impl MsgType {
    /// The type with this wire number, `None` for 20 (`XS_RESTRICT`, removed) and for
    /// anything at or past `XS_TYPE_COUNT`.
    pub const fn from_raw(raw: u32) -> Option<MsgType> {
        Some(match raw {
            0 => MsgType::Control,
            1 => MsgType::Directory,
            2 => MsgType::Read,
            3 => MsgType::GetPerms,
            4 => MsgType::Watch,
            5 => MsgType::Unwatch,
            6 => MsgType::TransactionStart,
            7 => MsgType::TransactionEnd,
            8 => MsgType::Introduce,
            9 => MsgType::Release,
            10 => MsgType::GetDomainPath,
            11 => MsgType::Write,
            12 => MsgType::Mkdir,
            13 => MsgType::Rm,
            14 => MsgType::SetPerms,
            15 => MsgType::WatchEvent,
            16 => MsgType::Error,
            17 => MsgType::IsDomainIntroduced,
            18 => MsgType::Resume,
            19 => MsgType::SetTarget,
            21 => MsgType::ResetWatches,
            22 => MsgType::DirectoryPart,
            _ => return None,
        })
    }

    /// The wire number.
    pub const fn raw(self) -> u32 {
        self as u32
    }

    /// The `XS_*` name (xs_wire.h).
    pub const fn name(self) -> &'static str {
        match self {
            MsgType::Control => "XS_CONTROL",
            MsgType::Directory => "XS_DIRECTORY",
            MsgType::Read => "XS_READ",
            MsgType::GetPerms => "XS_GET_PERMS",
            MsgType::Watch => "XS_WATCH",
            MsgType::Unwatch => "XS_UNWATCH",
            MsgType::TransactionStart => "XS_TRANSACTION_START",
            MsgType::TransactionEnd => "XS_TRANSACTION_END",
            MsgType::Introduce => "XS_INTRODUCE",
            MsgType::Release => "XS_RELEASE",
            MsgType::GetDomainPath => "XS_GET_DOMAIN_PATH",
            MsgType::Write => "XS_WRITE",
            MsgType::Mkdir => "XS_MKDIR",
            MsgType::Rm => "XS_RM",
            MsgType::SetPerms => "XS_SET_PERMS",
            MsgType::WatchEvent => "XS_WATCH_EVENT",
            MsgType::Error => "XS_ERROR",
            MsgType::IsDomainIntroduced => "XS_IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "XS_RESUME",
            MsgType::SetTarget => "XS_SET_TARGET",
            MsgType::ResetWatches => "XS_RESET_WATCHES",
            MsgType::DirectoryPart => "XS_DIRECTORY_PART",
        }
    }

    /// `XS_FLAG_PRIV` in `wire_funcs[]`: only privileged connections may send it.
    pub const fn privileged_only(self) -> bool {
        matches!(
            self,
            MsgType::Control
                | MsgType::Introduce
                | MsgType::Release
                | MsgType::IsDomainIntroduced
                | MsgType::Resume
                | MsgType::SetTarget
        )
    }

    /// `XS_FLAG_NOTID`: the header's `tx_id` is ignored (not even validated).
    pub const fn ignores_tx_id(self) -> bool {
        matches!(self, MsgType::Watch | MsgType::Unwatch)
    }
}

/// A message header (`struct xsd_sockmsg`), four little-endian u32s.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Header {
    /// Message type number (may be invalid in a request).
    pub msg_type: u32,
    /// Client-chosen request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 = none.
    pub tx_id: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// Decodes 16 bytes.
    pub fn decode(bytes: &[u8; HEADER_BYTES]) -> Header {
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Header {
            msg_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }

    /// Encodes to 16 bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0..4].copy_from_slice(&self.msg_type.to_le_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }
}

/// One whole message: a header and exactly `header.len` payload bytes.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Frame {
    /// The header; `len` always equals `payload.len()`.
    pub header: Header,
    /// The payload.
    pub payload: Vec<u8>,
}

fn len_u32(len: usize) -> u32 {
    // Payloads are bounded by XENSTORE_PAYLOAD_MAX, far below u32::MAX.
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Frame {
    /// A request frame (used by tests, benches and simulated guests).
    pub fn request(msg_type: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Frame {
        Frame {
            header: Header {
                msg_type: msg_type.raw(),
                req_id,
                tx_id,
                len: len_u32(payload.len()),
            },
            payload: payload.to_vec(),
        }
    }

    /// A reply to `request` with type `msg_type`; `E2BIG` if the payload is too long
    /// (`send_reply`).
    pub fn reply(request: &Header, msg_type: MsgType, payload: Vec<u8>) -> Frame {
        if payload.len() > XENSTORE_PAYLOAD_MAX {
            return Frame::error(request, XsError::E2big);
        }
        Frame {
            header: Header {
                msg_type: msg_type.raw(),
                req_id: request.req_id,
                tx_id: request.tx_id,
                len: len_u32(payload.len()),
            },
            payload,
        }
    }

    /// An `XS_ERROR` reply carrying the errno name and a NUL (`send_error`).
    pub fn error(request: &Header, error: XsError) -> Frame {
        let name = error.wire_name().as_bytes();
        let mut payload = Vec::with_capacity(name.len() + 1);
        payload.extend_from_slice(name);
        payload.push(0);
        Frame {
            header: Header {
                msg_type: MsgType::Error.raw(),
                req_id: request.req_id,
                tx_id: request.tx_id,
                len: len_u32(payload.len()),
            },
            payload,
        }
    }

    /// A `WATCH_EVENT` (`path|token|`, req_id 0, tx_id 0), or `None` when it would exceed
    /// the payload limit (`send_event` drops it silently).
    pub fn watch_event(path: &[u8], token: &[u8]) -> Option<Frame> {
        let len = path.len() + 1 + token.len() + 1;
        if len > XENSTORE_PAYLOAD_MAX {
            return None;
        }
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(path);
        payload.push(0);
        payload.extend_from_slice(token);
        payload.push(0);
        Some(Frame {
            header: Header {
                msg_type: MsgType::WatchEvent.raw(),
                req_id: 0,
                tx_id: 0,
                len: len_u32(len),
            },
            payload,
        })
    }

    /// The message type, if valid.
    pub fn msg_type(&self) -> Option<MsgType> {
        MsgType::from_raw(self.header.msg_type)
    }

    /// Appends header and payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        assert_eq!(self.header.len as usize, self.payload.len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.payload);
    }
}

/// Why the decoder stopped: the connection must be dropped (socket) or ignored with the
/// ring's `error` field set (domain).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// A header declared a payload longer than `XENSTORE_PAYLOAD_MAX`
    /// (`XENSTORE_ERROR_PROTO`).
    PayloadTooLong {
        /// The declared length.
        len_bytes: u32,
    },
}

impl DecodeError {
    /// The value cxenstored stores in the ring's `error` field.
    pub const fn ring_error(self) -> u32 {
        match self {
            DecodeError::PayloadTooLong { .. } => 3,
        }
    }
}

/// Incremental decoder: feed arbitrary chunks, take whole frames. After an error it stays
/// failed (cxenstored never reads from the connection again).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: VecDeque<u8>,
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends bytes from the transport.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend(bytes);
        }
    }

    /// Bytes buffered but not yet part of a whole frame.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Drops partial input (ring reset by `INTRODUCE`, connection reset).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.failed = None;
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the protocol error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        if self.buf.len() < HEADER_BYTES {
            return Ok(None);
        }
        let mut raw = [0u8; HEADER_BYTES];
        copy_front(&self.buf, &mut raw);
        let header = Header::decode(&raw);
        if header.len as usize > XENSTORE_PAYLOAD_MAX {
            let err = DecodeError::PayloadTooLong {
                len_bytes: header.len,
            };
            self.failed = Some(err);
            self.buf.clear();
            return Err(err);
        }
        let total = HEADER_BYTES + header.len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.buf.drain(..HEADER_BYTES);
        // Copied out slice by slice, not byte by byte.
        let mut payload = alloc::vec![0u8; header.len as usize];
        copy_front(&self.buf, &mut payload);
        self.buf.drain(..payload.len());
        assert_eq!(payload.len(), header.len as usize);
        Ok(Some(Frame { header, payload }))
    }
}

/// Fills `out` with the first `out.len()` bytes of `buf` (which holds at least as many).
fn copy_front(buf: &VecDeque<u8>, out: &mut [u8]) {
    let (head, tail) = buf.as_slices();
    let from_head = out.len().min(head.len());
    out[..from_head].copy_from_slice(&head[..from_head]);
    let rest = out.len() - from_head;
    out[from_head..].copy_from_slice(&tail[..rest]);
}

/// Length (with its NUL) of the string at `offset`, 0 if none (`get_string`).
pub fn string_len_at(payload: &[u8], offset: usize) -> usize {
    match payload.get(offset..) {
        Some(rest) if !rest.is_empty() => match rest.iter().position(|&b| b == 0) {
            Some(nul) => nul + 1,
            None => 0,
        },
        _ => 0,
    }
}

/// The NUL-terminated strings of a payload, without their NULs; trailing bytes after the
/// last NUL are ignored (`get_strings`).
pub fn split_strings(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let terminated = match payload.iter().rposition(|&b| b == 0) {
        Some(last) => &payload[..last],
        None => &payload[..0],
    };
    let any = payload.contains(&0);
    terminated
        .split(|&b| b == 0)
        .take(if any { usize::MAX } else { 0 })
}

/// Number of NUL bytes (`xs_count_strings`).
pub fn count_strings(payload: &[u8]) -> usize {
    payload.iter().filter(|&&b| b == 0).count()
}

/// The single argument of a one-argument request: exactly one NUL, at the end
/// (`onearg`); `None` otherwise.
pub fn onearg(payload: &[u8]) -> Option<&[u8]> {
    if payload.is_empty() || string_len_at(payload, 0) != payload.len() {
        return None;
    }
    Some(&payload[..payload.len() - 1])
}

/// C `atoi` (glibc: `(int)strtol(s, NULL, 10)`): optional blanks and sign, then digits;
/// junk ends the number; no digits gives 0.
pub fn atoi(s: &[u8]) -> i32 {
    // strtol clamps to the long range; the int conversion keeps the low 32 bits.
    i32::from_le_bytes(crate::cnum::low_32_bits(crate::cnum::c_strtol(s, 10).0))
}

/// `atoi` read as C `unsigned int` (what the handlers store domids and offsets in).
pub fn atou(s: &[u8]) -> u32 {
    u32::from_le_bytes(atoi(s).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Frames fed in arbitrary chunks, taken as soon as whole, come out as they went
        /// in (the ring buffer wraps as frames are taken between chunks).
        #[test]
        fn decoder_returns_frames_across_chunks_and_wraps(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12),
            chunk_bytes in 1usize..23,
        ) {
            let mut bytes = Vec::new();
            let mut sent = Vec::new();
            for (i, payload) in payloads.iter().enumerate() {
                let req_id = u32::try_from(i).unwrap_or(u32::MAX);
                let frame = Frame::request(MsgType::Write, req_id, 0, payload);
                frame.encode_into(&mut bytes);
                sent.push(frame);
            }
            let mut decoder = FrameDecoder::new();
            let mut got = Vec::new();
            for chunk in bytes.chunks(chunk_bytes) {
                decoder.feed(chunk);
                while let Some(frame) = decoder.next_frame().expect("well-formed stream") {
                    got.push(frame);
                }
            }
            prop_assert_eq!(got, sent);
            prop_assert_eq!(decoder.pending_bytes(), 0);
        }
    }

    #[test]
    fn header_round_trips_little_endian() {
        let h = Header {
            msg_type: 2,
            req_id: 0x0102_0304,
            tx_id: 9,
            len: 5,
        };
        let bytes = h.encode();
        assert_eq!(bytes[4], 0x04);
        assert_eq!(Header::decode(&bytes), h);
    }

    #[test]
    fn decoder_yields_frame_split_over_chunks() {
        let frame = Frame::request(MsgType::Read, 7, 0, b"/a\0");
        let mut bytes = Vec::new();
        frame.encode_into(&mut bytes);
        let mut dec = FrameDecoder::new();
        dec.feed(&bytes[..5]);
        assert_eq!(dec.next_frame(), Ok(None));
        dec.feed(&bytes[5..]);
        assert_eq!(dec.next_frame(), Ok(Some(frame)));
        assert_eq!(dec.pending_bytes(), 0);
    }

    #[test]
    fn decoder_rejects_payload_over_max_and_stays_failed() {
        let h = Header {
            msg_type: 2,
            req_id: 1,
            tx_id: 0,
            len: 4097,
        };
        let mut dec = FrameDecoder::new();
        dec.feed(&h.encode());
        let err = DecodeError::PayloadTooLong { len_bytes: 4097 };
        assert_eq!(dec.next_frame(), Err(err));
        dec.feed(&[0; 32]);
        assert_eq!(dec.next_frame(), Err(err));
        assert_eq!(err.ring_error(), 3);
    }

    #[test]
    fn onearg_requires_single_trailing_nul() {
        assert_eq!(onearg(b"/a\0"), Some(&b"/a"[..]));
        assert_eq!(onearg(b"/a"), None);
        assert_eq!(onearg(b"/a\0b\0"), None);
        assert_eq!(onearg(b""), None);
    }

    #[test]
    fn split_strings_ignores_bytes_after_last_nul() {
        let v: Vec<&[u8]> = split_strings(b"a\0\0bc\0junk").collect();
        assert_eq!(v, [&b"a"[..], &b""[..], &b"bc"[..]]);
        assert_eq!(split_strings(b"nonul").count(), 0);
        assert_eq!(count_strings(b"a\0\0bc\0junk"), 3);
    }

    #[test]
    fn atoi_matches_c_on_junk_sign_and_overflow() {
        assert_eq!(atoi(b"12x"), 12);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b"-1"), -1);
        assert_eq!(atou(b"-1"), u32::MAX);
        assert_eq!(atoi(b" +7"), 7);
    }

    #[test]
    fn oversized_reply_becomes_e2big() {
        let req = Header {
            msg_type: 1,
            req_id: 3,
            tx_id: 0,
            len: 0,
        };
        let f = Frame::reply(&req, MsgType::Directory, alloc::vec![b'a'; 4097]);
        assert_eq!(f.header.msg_type, MsgType::Error.raw());
        assert_eq!(f.payload, b"E2BIG\0");
        assert_eq!(f.header.req_id, 3);
    }

    #[test]
    fn watch_event_over_max_is_dropped() {
        assert!(Frame::watch_event(&[b'a'; 4094], b"t").is_none());
        assert!(Frame::watch_event(&[b'a'; 4093], b"t").is_some());
    }
}
