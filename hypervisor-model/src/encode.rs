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

/// Appends canonical encodings to a byte buffer (its field writers are [`FieldSink`]'s).
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Encoder<'a> {
        Encoder { out }
    }
}

/// The field writers of the canonical encoding, over any byte sink: a growing buffer
/// ([`Encoder`]) or a fixed window ([`FixedEncoder`]). Every field is written through
/// [`FieldSink::put`] or [`FieldSink::put_slice`], so both sinks produce the same bytes.
pub trait FieldSink: Sized {
    /// Appends `K` bytes.
    fn put<const K: usize>(&mut self, bytes: [u8; K]) -> &mut Self;

    /// Appends raw bytes of any length.
    fn put_slice(&mut self, bytes: &[u8]) -> &mut Self;

    /// One byte (tags, booleans, small enums).
    fn u8(&mut self, value: u8) -> &mut Self {
        self.put([value])
    }

    /// A boolean as 0 or 1.
    fn bool(&mut self, value: bool) -> &mut Self {
        self.put([u8::from(value)])
    }

    /// A little-endian u16.
    fn u16(&mut self, value: u16) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// A little-endian u32.
    fn u32(&mut self, value: u32) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// A little-endian u64.
    fn u64(&mut self, value: u64) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// A little-endian i64.
    fn i64(&mut self, value: i64) -> &mut Self {
        self.put(value.to_le_bytes())
    }

    /// Length-prefixed raw bytes.
    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(len).put_slice(value)
    }

    /// A length-prefixed UTF-8 string.
    fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// A domain id.
    fn dom(&mut self, dom: DomId) -> &mut Self {
        self.u16(dom.raw())
    }

    /// A pCPU.
    fn pcpu(&mut self, pcpu: PcpuId) -> &mut Self {
        self.u32(pcpu.raw())
    }

    /// Optional pCPU: `u32::MAX` for none.
    fn opt_pcpu(&mut self, pcpu: Option<PcpuId>) -> &mut Self {
        self.u32(pcpu.map_or(u32::MAX, PcpuId::raw))
    }

    /// A vCPU as (domid, index).
    fn vcpu(&mut self, vcpu: VcpuRef) -> &mut Self {
        self.u16(vcpu.dom.raw()).u32(vcpu.vcpu.raw())
    }

    /// Optional vCPU (`None` = idle): a presence byte then the vCPU.
    fn opt_vcpu(&mut self, vcpu: Option<VcpuRef>) -> &mut Self {
        match vcpu {
            Some(v) => self.u8(1).vcpu(v),
            None => self.u8(0),
        }
    }

    /// An instant.
    fn time(&mut self, t: STime) -> &mut Self {
        self.i64(t.as_ns())
    }

    /// A span.
    fn span(&mut self, s: Span) -> &mut Self {
        self.i64(s.as_ns())
    }
}

impl FieldSink for Encoder<'_> {
    #[inline]
    fn put<const K: usize>(&mut self, bytes: [u8; K]) -> &mut Self {
        self.out.extend_from_slice(&bytes);
        self
    }

    #[inline]
    fn put_slice(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }
}

/// Writes a record of up to `N` bytes into a window of that size at the end of a buffer:
/// one capacity check for the record instead of one per field, and for a record of fixed
/// shape every offset is a constant. A record that does not fit is flagged, not cut.
#[derive(Debug)]
pub struct FixedEncoder<'a, const N: usize> {
    window: &'a mut [u8; N],
    len: usize,
    overflow: bool,
}

impl<'a, const N: usize> FixedEncoder<'a, N> {
    /// An encoder writing from the start of `window` (for a caller that cannot hand
    /// [`encode_fixed`] a closure: one the optimizer might leave out of line, where every
    /// field's offset would be a load).
    #[inline(always)]
    pub fn new(window: &'a mut [u8; N]) -> FixedEncoder<'a, N> {
        FixedEncoder {
            window,
            len: 0,
            overflow: false,
        }
    }

    /// Bytes written from the window's start; `None` if a field did not fit or the
    /// record was refused.
    #[inline(always)]
    pub fn written_len(&self) -> Option<usize> {
        (!self.overflow).then_some(self.len)
    }

    /// Flags the record as not written here, whatever fitted so far (a value that encodes
    /// only into a growing buffer): [`Self::written_len`] is `None`.
    pub fn refuse(&mut self) {
        self.overflow = true;
    }
}

impl<const N: usize> FieldSink for FixedEncoder<'_, N> {
    #[inline(always)]
    fn put<const K: usize>(&mut self, bytes: [u8; K]) -> &mut Self {
        match self.window.get_mut(self.len..self.len + K) {
            Some(slot) => {
                slot.copy_from_slice(&bytes);
                self.len += K;
            }
            None => self.overflow = true,
        }
        self
    }

    #[inline]
    fn put_slice(&mut self, bytes: &[u8]) -> &mut Self {
        let end = self.len.saturating_add(bytes.len());
        match self.window.get_mut(self.len..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflow = true,
        }
        self
    }
}

/// Appends what `write` encodes to `out` through a [`FixedEncoder`] of `N` bytes; false
/// (and `out` unchanged) if it needed more, so the caller encodes it again with an
/// [`Encoder`].
#[inline(always)]
pub fn encode_fixed<const N: usize>(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut FixedEncoder<'_, N>),
) -> bool {
    let start = out.len();
    // A constant-size copy: a few vector stores, where `resize` fills byte by byte.
    out.extend_from_slice(&[0; N]);
    let written = match out.last_chunk_mut::<N>() {
        Some(window) => {
            let mut e = FixedEncoder::new(window);
            write(&mut e);
            e.written_len()
        }
        None => None,
    };
    out.truncate(start + written.unwrap_or(0));
    written.is_some()
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
    use alloc::vec;
    use alloc::vec::Vec;

    use super::{encode_fixed, Encoder, FieldSink};
    use crate::ids::{DomId, PcpuId, VcpuId, VcpuRef};
    use crate::time::Span;

    /// Every kind of field once, `text` as the only variable one.
    fn fields<E: FieldSink>(e: &mut E, text: &str) {
        let vcpu = VcpuRef {
            dom: DomId::new(7).expect("valid domid"),
            vcpu: VcpuId::new(3).expect("valid vCPU index"),
        };
        e.u8(0xa5).bool(true).u16(0x1234).u32(0xdead_beef);
        e.u64(u64::MAX - 1).i64(-5).dom(vcpu.dom);
        e.pcpu(PcpuId::new(9).expect("valid pCPU")).opt_pcpu(None);
        e.opt_vcpu(Some(vcpu)).opt_vcpu(None).span(Span::from_us(3));
        e.str(text).bytes(&[1, 2, 3]);
    }

    #[test]
    fn fixed_and_growing_encoders_write_the_same_bytes() {
        let mut grown = vec![0xee];
        fields(&mut Encoder::new(&mut grown), "short");
        let mut fixed = vec![0xee];

        // 66 bytes of fields.
        let fitted = encode_fixed::<80>(&mut fixed, |e| fields(e, "short"));

        assert!(fitted);
        assert_eq!(fixed, grown);
    }

    #[test]
    fn a_record_over_the_window_is_refused_and_leaves_the_buffer() {
        let long = "x".repeat(100);
        let mut out: Vec<u8> = vec![1, 2, 3];

        let fitted = encode_fixed::<80>(&mut out, |e| fields(e, &long));

        assert!(!fitted);
        assert_eq!(out, vec![1, 2, 3]);
    }
}
