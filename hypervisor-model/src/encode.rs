//! The pinned canonical byte encoding of core inputs and core events.
//!
//! Fixed field order, little-endian integers, strings as a u32 length then UTF-8 bytes,
//! no `Debug` text, no addresses. The run hash is computed over these bytes, so any change
//! here bumps the trace format version (`TRACE_FORMAT_VERSION`) and every golden hash.

use alloc::vec::Vec;

use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::time::{STime, Span};

/// Version of the encoding of [`crate::event::CoreInput`] and [`crate::trace::TraceEvent`].
pub const TRACE_FORMAT_VERSION: u32 = 7;

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

    /// Length-prefixed raw bytes.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.out.extend_from_slice(value);
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

/// Why bytes do not decode into a core input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DecodeError {
    /// Byte offset where decoding failed.
    pub offset: usize,
    /// What was expected there.
    pub what: &'static str,
}

/// Reads a canonical encoding back (the inverse of [`Encoder`]).
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, offset: 0 }
    }

    /// An error at the current offset.
    pub fn error(&self, what: &'static str) -> DecodeError {
        DecodeError {
            offset: self.offset,
            what,
        }
    }

    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let end = self.offset.checked_add(N).ok_or_else(|| self.error(what))?;
        let slice = self
            .bytes
            .get(self.offset..end)
            .ok_or_else(|| self.error(what))?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.offset = end;
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>("a byte")?[0])
    }

    /// A boolean (0 or 1).
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.error("a boolean 0 or 1")),
        }
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take("a u16")?))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take("a u32")?))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take("a u64")?))
    }

    /// A little-endian i64.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take("an i64")?))
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<alloc::string::String, DecodeError> {
        let len = usize::try_from(self.u32()?).map_err(|_| self.error("a string length"))?;
        let end = self
            .offset
            .checked_add(len)
            .ok_or_else(|| self.error("string bytes"))?;
        let slice = self
            .bytes
            .get(self.offset..end)
            .ok_or_else(|| self.error("string bytes"))?;
        let text = core::str::from_utf8(slice).map_err(|_| self.error("UTF-8 text"))?;
        self.offset = end;
        Ok(alloc::string::String::from(text))
    }

    /// Length-prefixed raw bytes.
    pub fn bytes(&mut self) -> Result<alloc::vec::Vec<u8>, DecodeError> {
        let len = usize::try_from(self.u32()?).map_err(|_| self.error("a byte count"))?;
        let end = self
            .offset
            .checked_add(len)
            .ok_or_else(|| self.error("bytes"))?;
        let slice = self
            .bytes
            .get(self.offset..end)
            .ok_or_else(|| self.error("bytes"))?;
        self.offset = end;
        Ok(slice.to_vec())
    }

    /// A domain id.
    pub fn dom(&mut self) -> Result<DomId, DecodeError> {
        let raw = self.u16()?;
        DomId::new(raw).ok_or_else(|| self.error("a domain id below DOMID_FIRST_RESERVED"))
    }

    /// A pCPU.
    pub fn pcpu(&mut self) -> Result<PcpuId, DecodeError> {
        let raw = self.u32()?;
        PcpuId::new(raw).ok_or_else(|| self.error("a pCPU below NR_CPUS"))
    }

    /// A vCPU.
    pub fn vcpu(&mut self) -> Result<VcpuRef, DecodeError> {
        let dom = self.dom()?;
        let raw = self.u32()?;
        let vcpu = crate::ids::VcpuId::new(raw).ok_or_else(|| self.error("a vCPU index"))?;
        Ok(VcpuRef { dom, vcpu })
    }

    /// True when every byte was read.
    pub fn at_end(&self) -> bool {
        self.offset == self.bytes.len()
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.offset == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error("the end of the record"))
        }
    }
}
