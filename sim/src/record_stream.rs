//! The run hash's byte stream: records are written in place into a fixed buffer behind a
//! write cursor and fed to XXH3 once per [`HASH_BUFFER_BYTES`].
//!
//! A record of bounded size is encoded straight into a window of the free bytes at the
//! cursor: no zero fill, no growth check, and the cursor moves by what was written. A
//! record that did not fit its window is built elsewhere and [`HashStream::push`]ed.
//!
//! # Invariants
//! - Between records the cursor is below [`HASH_BUFFER_BYTES`], so a window of up to
//!   [`MAX_WINDOW_BYTES`] always fits the buffer.
//! - The hashed bytes are every record's bytes in order, whatever the chunking: XXH3 is a
//!   streaming hash, so feeding them in larger or smaller pieces gives the same digest.

use std::hash::Hasher as _;

use twox_hash::XxHash3_64;

/// Bytes gathered before they are fed to the hasher (4 KiB, which would stay in L1, missed
/// fewer lines under cachegrind but was not faster in CPU time on a shared machine; XXH3
/// works on 1 KiB blocks, so a chunk is 16 of them).
const HASH_BUFFER_BYTES: usize = 16 * 1024;
/// The largest window a record may ask for.
pub(super) const MAX_WINDOW_BYTES: usize = 128;
/// The buffer: a full chunk and a window past it.
const BUFFER_BYTES: usize = HASH_BUFFER_BYTES + MAX_WINDOW_BYTES;

/// The streaming run hash with its gathering buffer.
pub(super) struct HashStream {
    /// XXH3-64 with the run hash's seed, boxed (its state and block buffer are about 370
    /// bytes, and the recorder is moved around by value). It picks its AVX2 or SSE2 loop
    /// at run time; the digest is the same either way.
    hasher: Box<XxHash3_64>,
    bytes: Box<[u8; BUFFER_BYTES]>,
    /// Bytes gathered and not yet hashed: `bytes[..len]`.
    len: usize,
    /// [`Self::advance`] hands the record back when the cursor reaches this: a full chunk
    /// ([`HASH_BUFFER_BYTES`]), or 0 (every record) for a caller that keeps records.
    watch_at: usize,
}

impl HashStream {
    /// An empty stream hashed with XXH3-64 seeded with `seed`.
    pub(super) fn new(seed: u64) -> HashStream {
        let bytes: Box<[u8; BUFFER_BYTES]> = vec![0u8; BUFFER_BYTES]
            .into_boxed_slice()
            .try_into()
            .unwrap_or_else(|_| unreachable!("a vector of BUFFER_BYTES bytes"));
        HashStream {
            hasher: Box::new(XxHash3_64::with_seed(seed)),
            bytes,
            len: 0,
            watch_at: HASH_BUFFER_BYTES,
        }
    }

    /// Makes [`Self::advance`] hand back every record (the caller keeps them).
    pub(super) fn watch_every_record(&mut self) {
        self.watch_at = 0;
    }

    /// The `N` free bytes at the cursor, and where they start. Always `Some` between
    /// records (the cursor is below a chunk); the caller [`Self::advance`]s by what it wrote.
    #[inline(always)]
    pub(super) fn window<const N: usize>(&mut self) -> Option<(usize, &mut [u8; N])> {
        const { assert!(N <= MAX_WINDOW_BYTES) };
        debug_assert!(self.len < HASH_BUFFER_BYTES);
        let start = self.len;
        let window = self.bytes.get_mut(start..)?.first_chunk_mut::<N>()?;
        Some((start, window))
    }

    /// Takes the `written_len` bytes at the cursor (a window's record) into the stream.
    /// True when the caller has more to do (one compare for a plain record): the chunk is
    /// full, or every record is watched. The caller then reads the record with
    /// [`Self::last_record`] and calls [`Self::flush_if_full`]. Nothing else is returned,
    /// so the record path keeps no more values live than the cursor.
    #[inline(always)]
    pub(super) fn advance(&mut self, written_len: usize) -> bool {
        self.len += written_len;
        debug_assert!(self.len <= BUFFER_BYTES);
        self.len >= self.watch_at
    }

    /// The last `len` gathered bytes (the record just taken in by [`Self::advance`]).
    pub(super) fn last_record(&self, len: usize) -> &[u8] {
        &self.bytes[self.len - len..self.len]
    }

    /// Hashes the gathered bytes once a chunk is full, keeping the cursor below a chunk.
    #[inline]
    pub(super) fn flush_if_full(&mut self) {
        if self.len >= HASH_BUFFER_BYTES {
            self.flush();
        }
    }

    /// Feeds the gathered bytes to the hasher (once per [`HASH_BUFFER_BYTES`]: out of
    /// line, so the record path keeps its registers).
    #[cold]
    #[inline(never)]
    fn flush(&mut self) {
        self.hasher.write(&self.bytes[..self.len]);
        self.len = 0;
    }

    /// Appends a record built outside the buffer (one too long for its window): copied
    /// in if it fits, else hashed straight after the gathered bytes.
    pub(super) fn push(&mut self, record: &[u8]) {
        if self.len + record.len() > BUFFER_BYTES {
            self.flush();
        }
        if record.len() > BUFFER_BYTES {
            self.hasher.write(record);
            return;
        }
        let start = self.len;
        self.bytes[start..start + record.len()].copy_from_slice(record);
        self.len = start + record.len();
        self.flush_if_full();
    }

    /// The digest of every byte so far.
    pub(super) fn digest(mut self) -> u64 {
        self.flush();
        self.hasher.finish()
    }
}

impl std::fmt::Debug for HashStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashStream")
            .field("gathered_bytes", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{HashStream, BUFFER_BYTES, HASH_BUFFER_BYTES};

    /// Writes `record` through a window when it fits one, else pushes it.
    fn write(stream: &mut HashStream, record: &[u8]) {
        match stream.window::<64>() {
            Some((_, window)) if record.len() <= 64 => {
                window[..record.len()].copy_from_slice(record);
                if stream.advance(record.len()) {
                    stream.flush_if_full();
                }
            }
            _ => stream.push(record),
        }
    }

    #[test]
    fn windows_and_pushes_hash_as_one_stream() {
        const SEED: u64 = 0x1234;
        // Short records crossing many chunk ends, and pushes of every size class: one
        // that fits, one that needs a flush first, one larger than the whole buffer.
        let records: Vec<Vec<u8>> = (0..3_000u32)
            .map(|i| {
                let len = usize::try_from(i % 61 + 1).expect("small");
                let fill = u8::try_from(i % 251).expect("below 251");
                vec![fill; len]
            })
            .chain([
                vec![1; 200],
                vec![2; HASH_BUFFER_BYTES],
                vec![3; BUFFER_BYTES * 2 + 7],
            ])
            .chain((0..50u8).map(|i| vec![i; 33]))
            .collect();
        let mut stream = HashStream::new(SEED);
        let mut all = Vec::new();
        for record in &records {
            write(&mut stream, record);
            all.extend_from_slice(record);
        }

        let digest = stream.digest();

        assert_eq!(digest, xxhash_rust::xxh3::xxh3_64_with_seed(&all, SEED));
    }
}
