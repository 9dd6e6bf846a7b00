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

/// Bytes an [`Encoder`] gathers on the stack before appending them to its output.
const STAGE_BYTES: usize = 64;

/// Appends canonical encodings to a byte buffer.
///
/// The fixed-size fields go to a small stack buffer first and reach the output in one
/// append (when the buffer is full, before a variable-length field, and when the encoder
/// is dropped): a record costs one capacity check rather than one per field. The bytes
/// are exactly those written field by field.
///
/// # Invariants
/// - The output holds every byte written, in order, once the encoder is dropped or after
///   [`Encoder::out`].
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    stage: [u8; STAGE_BYTES],
    staged: usize,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    #[inline(always)]
    pub fn new(out: &'a mut Vec<u8>) -> Encoder<'a> {
        Encoder {
            out,
            stage: [0; STAGE_BYTES],
            staged: 0,
        }
    }

    /// The output with everything written so far, to append to it directly (the encoder
    /// may be used again afterwards).
    #[inline(always)]
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.flush();
        self.out
    }

    /// Moves the staged bytes to the output. The whole stage is copied and the output
    /// cut back to the staged bytes: a copy of a constant size needs no `memcpy` call.
    #[inline(always)]
    fn flush(&mut self) {
        let end = self.out.len() + self.staged;
        self.out.extend_from_slice(&self.stage);
        self.out.truncate(end);
        self.staged = 0;
    }

    /// Stages a fixed-size field.
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> &mut Self {
        if self.staged + N > STAGE_BYTES {
            self.flush();
        }
        match self.stage.get_mut(self.staged..self.staged + N) {
            Some(slot) => {
                slot.copy_from_slice(&bytes);
                self.staged += N;
            }
            // Only a field wider than the whole stage (none is).
            None => self.out.extend_from_slice(&bytes),
        }
        self
    }

    /// One byte (tags, booleans, small enums).
    #[inline(always)]
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.put([value])
    }

    /// A boolean as 0 or 1.
    #[inline(always)]
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.u8(u8::from(value))
    }

    /// A little-endian u16.
    #[inline(always)]
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// A little-endian u32.
    #[inline(always)]
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// A little-endian u64.
    #[inline(always)]
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// A little-endian i64.
    #[inline(always)]
    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// Length-prefixed raw bytes.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.out().extend_from_slice(value);
        self
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// A domain id.
    #[inline(always)]
    pub fn dom(&mut self, dom: DomId) -> &mut Self {
        self.u16(dom.raw())
    }

    /// A pCPU.
    #[inline(always)]
    pub fn pcpu(&mut self, pcpu: PcpuId) -> &mut Self {
        self.u32(pcpu.raw())
    }

    /// Optional pCPU: `u32::MAX` for none.
    #[inline(always)]
    pub fn opt_pcpu(&mut self, pcpu: Option<PcpuId>) -> &mut Self {
        self.u32(pcpu.map_or(u32::MAX, PcpuId::raw))
    }

    /// A vCPU as (domid, index).
    #[inline(always)]
    pub fn vcpu(&mut self, vcpu: VcpuRef) -> &mut Self {
        self.u16(vcpu.dom.raw()).u32(vcpu.vcpu.raw())
    }

    /// Optional vCPU (`None` = idle): a presence byte then the vCPU.
    #[inline(always)]
    pub fn opt_vcpu(&mut self, vcpu: Option<VcpuRef>) -> &mut Self {
        match vcpu {
            Some(v) => self.u8(1).vcpu(v),
            None => self.u8(0),
        }
    }

    /// An instant.
    #[inline(always)]
    pub fn time(&mut self, t: STime) -> &mut Self {
        self.i64(t.as_ns())
    }

    /// A span.
    #[inline(always)]
    pub fn span(&mut self, s: Span) -> &mut Self {
        self.i64(s.as_ns())
    }
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        self.flush();
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::{Decoder, Encoder, STAGE_BYTES};

    #[test]
    fn staged_fields_reach_the_output_in_order_past_the_stage_size() {
        let mut out = alloc::vec![0xEE];
        let fields = u64::try_from(STAGE_BYTES).expect("stage size fits u64");
        {
            let mut e = Encoder::new(&mut out);
            e.u8(7);
            // Over two stages' worth of u64s, with a string between them.
            for i in 0..fields {
                e.u64(i);
            }
            e.str("xen").u16(0xBEEF);
            e.out().push(0xAA);
            e.i64(-2);
        }

        let mut d = Decoder::new(&out);
        assert_eq!(d.u8(), Ok(0xEE));
        assert_eq!(d.u8(), Ok(7));
        for i in 0..fields {
            assert_eq!(d.u64(), Ok(i));
        }
        assert_eq!(d.str().as_deref(), Ok("xen"));
        assert_eq!(d.u16(), Ok(0xBEEF));
        assert_eq!(d.u8(), Ok(0xAA));
        assert_eq!(d.i64(), Ok(-2));
        assert!(d.at_end());
    }

    #[test]
    fn encoder_writes_nothing_beyond_its_fields() {
        let mut out = Vec::new();

        Encoder::new(&mut out).u32(0x0102_0304).bool(true);

        assert_eq!(out, [4, 3, 2, 1, 1]);
    }
}
