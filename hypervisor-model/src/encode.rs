//! The pinned canonical byte encoding of core inputs and core events.
//!
//! Fixed field order, little-endian integers, strings as a u32 length then UTF-8 bytes,
//! no `Debug` text, no addresses. The run hash is computed over these bytes, so any change
//! here bumps the trace format version (`TRACE_FORMAT_VERSION`) and every golden hash.

use alloc::vec::Vec;

use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::time::{STime, Span};

/// Version of the encoding of [`crate::event::CoreInput`] and [`crate::trace::TraceEvent`].
pub const TRACE_FORMAT_VERSION: u32 = 1;

/// Appends canonical encodings to a byte buffer.
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Encoder<'a> {
        Encoder { out }
    }

    /// One byte (tags, booleans, small enums).
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    /// A boolean as 0 or 1.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.u8(u8::from(value))
    }

    /// A little-endian u16.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian u32.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian u64.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian i64.
    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, value: &str) -> &mut Self {
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.out.extend_from_slice(value.as_bytes());
        self
    }

    /// A domain id.
    pub fn dom(&mut self, dom: DomId) -> &mut Self {
        self.u16(dom.raw())
    }

    /// A pCPU.
    pub fn pcpu(&mut self, pcpu: PcpuId) -> &mut Self {
        self.u32(pcpu.raw())
    }

    /// Optional pCPU: `u32::MAX` for none.
    pub fn opt_pcpu(&mut self, pcpu: Option<PcpuId>) -> &mut Self {
        self.u32(pcpu.map_or(u32::MAX, PcpuId::raw))
    }

    /// A vCPU as (domid, index).
    pub fn vcpu(&mut self, vcpu: VcpuRef) -> &mut Self {
        self.u16(vcpu.dom.raw()).u32(vcpu.vcpu.raw())
    }

    /// Optional vCPU (`None` = idle): a presence byte then the vCPU.
    pub fn opt_vcpu(&mut self, vcpu: Option<VcpuRef>) -> &mut Self {
        match vcpu {
            Some(v) => self.u8(1).vcpu(v),
            None => self.u8(0),
        }
    }

    /// An instant.
    pub fn time(&mut self, t: STime) -> &mut Self {
        self.i64(t.as_ns())
    }

    /// A span.
    pub fn span(&mut self, s: Span) -> &mut Self {
        self.i64(s.as_ns())
    }
}
