//! The stand-in memory behind the split drivers' data pages: the contents of the pages
//! that carry block data, indirect descriptors and packet headers, by machine frame.
//! blkfront/blkback (`vbd.rs`) and netfront/netback (`vif.rs`) reach it through the grant
//! tables' frames.
//!
//! # Invariants
//! - No page group is empty, and the page count is the sum of the groups' counts.
//! - A page holds at most [`RING_PAGE_BYTES`] bytes; the bytes past what it holds read as
//!   zeros, and a frame never written reads as absent.
//!
//! xensim differs, on purpose: a page holds its bytes only up to the last one written (a
//! packet page its 40-byte header, a data page up to its last sector's stamp), not a whole
//! 4 KiB frame; frames are grouped ([`PAGE_GROUP_FRAMES`] consecutive frames per entry)
//! so that a lookup searches a few entries per device rather than one per page. The groups
//! sit on shelves, one per domain's stand-in frames (`dom << 32 ..`, [`shelf_of`]), each
//! a vector sorted by key: a lookup indexes the shelf and binary-searches its few groups,
//! cheaper than a walk of one tree of every group of the host. A group is added when its
//! first page is written and goes only when its last page is forgotten, which the data
//! path never does.

use alloc::vec::Vec;

use super::ring::RING_PAGE_BYTES;
use super::vbd::digest_step;
use crate::ids::{DomId, Mfn};

/// Contents of the pages that carry block data, indirect descriptors and packet headers,
/// by machine frame.
///
/// Frames are kept in groups of [`PAGE_GROUP_FRAMES`] consecutive frames, one entry per
/// group: a device's pool is consecutive stand-in frames, so there are a few entries per
/// device. Each group counts the pages it holds and goes when the last one does.
#[derive(Clone, Debug, Default)]
pub struct PageStore {
    /// By [`shelf_of`] the group key: (group key, group), sorted by key without
    /// duplicates. Shelves only grow in number (to the highest domain id seen).
    shelves: Vec<Vec<(u64, alloc::boxed::Box<PageGroup>)>>,
    /// Pages held over all groups.
    held: usize,
}

/// Consecutive frames that share one [`PageStore`] map entry.
pub const PAGE_GROUP_FRAMES: usize = 64;

/// Shelves for the frames of one domain id each (`mfn >> 32` below this); one more shelf
/// holds every frame above (none of the stand-in frames).
const SHELVES_DIRECT: usize = 1 << 15;
const _: () = assert!(crate::limits::DOMID_FIRST_RESERVED as usize <= SHELVES_DIRECT);

/// The shelf of group `key`: the domain part of its frames (`mfn >> 32`), or the last
/// shelf for any frame past [`SHELVES_DIRECT`]. Shelves are in key order: every key on
/// shelf `i` is below every key on shelf `i + 1`.
fn shelf_of(key: u64) -> usize {
    const GROUPS_PER_SHELF_SHIFT: u32 = 32 - PAGE_GROUP_FRAMES.trailing_zeros();
    usize::try_from(key >> GROUPS_PER_SHELF_SHIFT).map_or(SHELVES_DIRECT, |s| s.min(SHELVES_DIRECT))
}

/// Byte offset of sector `index`'s stamp in its page.
const fn stamp_at(index: u8) -> usize {
    index as usize * 512
}

/// The pages of [`PAGE_GROUP_FRAMES`] consecutive frames (`None`: never written, or
/// forgotten). A page's bytes past its length are zeros.
#[derive(Clone, Debug)]
struct PageGroup {
    pages: [Option<Vec<u8>>; PAGE_GROUP_FRAMES],
    /// `Some` entries of `pages`.
    held: usize,
}

impl PageGroup {
    fn new() -> Self {
        PageGroup {
            pages: core::array::from_fn(|_| None),
            held: 0,
        }
    }
}

/// The group key and the index within the group of `mfn`.
fn group_of(mfn: Mfn) -> (u64, usize) {
    const FRAMES: u64 = PAGE_GROUP_FRAMES as u64;
    let raw = mfn.raw();
    // Below `PAGE_GROUP_FRAMES`: always fits.
    let index = usize::try_from(raw % FRAMES).unwrap_or(0);
    (raw / FRAMES, index)
}

impl PageStore {
    /// The group `key`, if it holds pages.
    fn group(&self, key: u64) -> Option<&PageGroup> {
        let shelf = self.shelves.get(shelf_of(key))?;
        let at = shelf.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(&shelf[at].1)
    }

    /// The first `len` bytes of the page at `mfn`, for writing (zeros where never written;
    /// the page exists from now on). Panics if `len` exceeds a page: callers index within
    /// one.
    pub fn bytes_mut(&mut self, mfn: Mfn, len: usize) -> &mut [u8] {
        assert!(len <= RING_PAGE_BYTES, "{len} bytes past a page");
        let (key, index) = group_of(mfn);
        let shelf_index = shelf_of(key);
        if self.shelves.len() <= shelf_index {
            self.shelves.resize_with(shelf_index + 1, Vec::new);
        }
        let shelf = &mut self.shelves[shelf_index];
        let at = match shelf.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(at) => at,
            Err(at) => {
                let group = alloc::boxed::Box::new(PageGroup::new());
                shelf.insert(at, (key, group));
                at
            }
        };
        let group = &mut shelf[at].1;
        let slot = &mut group.pages[index];
        if slot.is_none() {
            group.held += 1;
            self.held += 1;
        }
        let page = slot.get_or_insert_with(Vec::new);
        if page.len() < len {
            page.resize(len, 0);
        }
        &mut page[..len]
    }

    /// Copies the page at `mfn` from byte `at` into `out` (zeros past what it holds);
    /// `None` if the page was never written or the range leaves the page.
    pub fn read(&self, mfn: Mfn, at: usize, out: &mut [u8]) -> Option<()> {
        let page = self.held_bytes(mfn)?;
        let end = at.checked_add(out.len())?;
        if end > RING_PAGE_BYTES {
            return None;
        }
        out.fill(0);
        if let Some(held) = page.get(at..end.min(page.len())) {
            out[..held.len()].copy_from_slice(held);
        }
        Some(())
    }

    /// `f` applied to the `N` bytes of the page at `mfn` from byte `at`, the bytes
    /// [`PageStore::read`] would copy out (zeros past what the page holds), borrowed in
    /// place when the page holds them all (a packet header read back where it was
    /// written); `None` where `read` would be.
    #[inline]
    pub fn with_bytes<const N: usize, R>(
        &self,
        mfn: Mfn,
        at: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let page = self.held_bytes(mfn)?;
        let end = at.checked_add(N)?;
        if end > RING_PAGE_BYTES {
            return None;
        }
        if let Some(held) = page.get(at..end) {
            return Some(f(held));
        }
        let mut out = [0u8; N];
        if let Some(held) = page.get(at..end.min(page.len())) {
            out[..held.len()].copy_from_slice(held);
        }
        Some(f(&out))
    }

    /// Whether the page at `mfn` was ever written (and not forgotten since).
    pub fn contains(&self, mfn: Mfn) -> bool {
        self.held_bytes(mfn).is_some()
    }

    /// The bytes the page at `mfn` holds.
    fn held_bytes(&self, mfn: Mfn) -> Option<&[u8]> {
        let (key, index) = group_of(mfn);
        self.group(key)?.pages[index].as_deref()
    }

    /// The 8 bytes at `at` of `page` (zeros past what it holds) as a little-endian word.
    fn word_at(page: Option<&[u8]>, at: usize) -> u64 {
        let mut raw = [0u8; 8];
        if let Some(bytes) = page.and_then(|p| p.get(at..at + 8)) {
            raw.copy_from_slice(bytes);
        }
        u64::from_le_bytes(raw)
    }

    /// The stamp of sector `index` (0..8) of the page.
    pub fn stamp(&self, mfn: Mfn, index: u8) -> u64 {
        Self::word_at(self.held_bytes(mfn), stamp_at(index))
    }

    /// Appends the stamps of sectors `first..=last` of the page to `out` (one lookup).
    pub fn stamps_into(&self, mfn: Mfn, first: u8, last: u8, out: &mut Vec<u64>) {
        let page = self.held_bytes(mfn);
        out.extend((first..=last).map(|index| Self::word_at(page, stamp_at(index))));
    }

    /// Folds the stamps of sectors `first..=last` of the page into `digest`.
    pub fn digest_stamps(&self, mfn: Mfn, first: u8, last: u8, digest: u64) -> u64 {
        let page = self.held_bytes(mfn);
        (first..=last).fold(digest, |d, index| {
            digest_step(d, Self::word_at(page, stamp_at(index)))
        })
    }

    /// Writes `stamps` into sectors `first..` of the page (one lookup); the page exists
    /// afterwards even if there was nothing to write.
    pub fn set_stamps(&mut self, mfn: Mfn, first: u8, stamps: impl Iterator<Item = u64>) {
        let mut words = [0u64; 8];
        let mut count = 0u8;
        for (word, stamp) in words.iter_mut().skip(usize::from(first)).zip(stamps) {
            *word = stamp;
            count += 1;
        }
        let end = match count {
            0 => 0,
            n => stamp_at(first + n - 1) + 8,
        };
        let page = self.bytes_mut(mfn, end);
        for index in first..first.saturating_add(count) {
            let at = stamp_at(index);
            let word = words[usize::from(index)];
            page[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
    }

    /// Writes the stamp of sector `index` of the page.
    pub fn set_stamp(&mut self, mfn: Mfn, index: u8, stamp: u64) {
        let at = stamp_at(index);
        self.bytes_mut(mfn, at + 8)[at..].copy_from_slice(&stamp.to_le_bytes());
    }

    /// Drops the page at `mfn` (its owner freed it).
    pub fn forget(&mut self, mfn: Mfn) {
        let (key, index) = group_of(mfn);
        let Some(shelf) = self.shelves.get_mut(shelf_of(key)) else {
            return;
        };
        let Ok(at) = shelf.binary_search_by_key(&key, |(k, _)| *k) else {
            return;
        };
        let group = &mut shelf[at].1;
        if group.pages[index].take().is_none() {
            return;
        }
        group.held -= 1;
        self.held -= 1;
        if group.held == 0 {
            shelf.remove(at);
        }
    }

    /// Pages held.
    pub fn len(&self) -> usize {
        debug_assert_eq!(
            self.held,
            self.shelves
                .iter()
                .flatten()
                .map(|(_, g)| g.held)
                .sum::<usize>(),
            "page count"
        );
        self.held
    }

    /// No page held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Drops the pages of `dom` (its memory is gone).
    pub fn forget_domain(&mut self, dom: DomId) {
        // A domain's frames are `dom << 32 ..`, a whole number of groups: its shelf.
        const _: () = assert!((1u64 << 32).is_multiple_of(PAGE_GROUP_FRAMES as u64));
        let key = (u64::from(dom.raw()) << 32) / PAGE_GROUP_FRAMES as u64;
        debug_assert!(shelf_of(key) < SHELVES_DIRECT);
        let Some(shelf) = self.shelves.get_mut(shelf_of(key)) else {
            return;
        };
        for (_, group) in shelf.drain(..) {
            self.held -= group.held;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn mfn(dom: u16, frame: u64) -> Mfn {
        Mfn::new((u64::from(dom) << 32) | frame)
    }

    #[test]
    fn a_page_never_written_is_absent_and_a_written_one_reads_back() {
        let mut store = PageStore::default();
        store.set_stamp(mfn(1, 70), 3, 0xabcd);

        assert!(!store.contains(mfn(1, 71)));
        assert_eq!(store.stamp(mfn(1, 70), 3), 0xabcd);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn bytes_past_the_last_written_read_as_zeros() {
        // 4 bytes written at the start; a read at 2..10 sees them, then zeros.
        let mut store = PageStore::default();
        store.bytes_mut(mfn(1, 3), 4).copy_from_slice(&[1, 2, 3, 4]);
        let mut out = [9u8; 8];

        let read = store.read(mfn(1, 3), 2, &mut out);

        assert_eq!(read, Some(()));
        assert_eq!(out, [3, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(store.stamp(mfn(1, 3), 7), 0);
    }

    proptest::proptest! {
        #[test]
        fn bytes_borrowed_in_place_are_the_bytes_a_read_copies(
            held in 0usize..64,
            at in 0usize..4100,
            written in proptest::bool::ANY,
        ) {
            // A page holding `held` bytes (1, 2, ...), or never written.
            let mut store = PageStore::default();
            if written {
                for (i, byte) in store.bytes_mut(mfn(2, 9), held).iter_mut().enumerate() {
                    *byte = u8::try_from(i % 255 + 1).unwrap_or(0);
                }
            }
            let mut copied = [0u8; 16];
            let read = store.read(mfn(2, 9), at, &mut copied).map(|()| copied.to_vec());
            let viewed = store.with_bytes::<16, _>(mfn(2, 9), at, <[u8]>::to_vec);
            proptest::prop_assert_eq!(viewed, read);
        }
    }

    #[test]
    fn a_read_that_leaves_the_page_is_refused() {
        let mut store = PageStore::default();
        store.bytes_mut(mfn(1, 3), 8);
        let mut out = [0u8; 40];

        assert_eq!(store.read(mfn(1, 3), RING_PAGE_BYTES - 39, &mut out), None);
        assert_eq!(
            store.read(mfn(1, 3), RING_PAGE_BYTES - 40, &mut out),
            Some(())
        );
    }

    /// One step of a random history over the first 300 frames of three domains and of two
    /// frame ranges past every domain id (the last shelf).
    #[derive(Clone, Debug)]
    enum Step {
        Write(u16, u64, u8),
        Forget(u16, u64),
        ForgetDomain(u16),
    }

    /// The high half of a frame: a domain, or past every domain id.
    fn owner() -> impl proptest::strategy::Strategy<Value = u16> {
        proptest::sample::select(alloc::vec![0u16, 1, 2, 0x9000, u16::MAX])
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (owner(), 0u64..300, any::<u8>()).prop_map(|(d, f, b)| Step::Write(d, f, b)),
            2 => (owner(), 0u64..300).prop_map(|(d, f)| Step::Forget(d, f)),
            1 => (0u16..3).prop_map(Step::ForgetDomain),
        ]
    }

    proptest::proptest! {
        /// The sorted group vector holds what a plain map of frames would.
        #[test]
        fn the_store_reads_as_a_map_of_frames(steps in proptest::collection::vec(step(), 0..120)) {
            let mut store = PageStore::default();
            let mut model: std::collections::BTreeMap<u64, u8> = Default::default();
            for s in steps {
                match s {
                    Step::Write(dom, frame, byte) => {
                        store.bytes_mut(mfn(dom, frame), 1)[0] = byte;
                        model.insert(mfn(dom, frame).raw(), byte);
                    }
                    Step::Forget(dom, frame) => {
                        store.forget(mfn(dom, frame));
                        model.remove(&mfn(dom, frame).raw());
                    }
                    Step::ForgetDomain(dom) => {
                        store.forget_domain(DomId::new(dom).expect("domid"));
                        model.retain(|raw, _| raw >> 32 != u64::from(dom));
                    }
                }
                proptest::prop_assert_eq!(store.len(), model.len());
                let keys: Vec<u64> = store.shelves.iter().flatten().map(|(k, _)| *k).collect();
                proptest::prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
                for (raw, byte) in &model {
                    let mut out = [0u8; 1];
                    proptest::prop_assert_eq!(store.read(Mfn::new(*raw), 0, &mut out), Some(()));
                    proptest::prop_assert_eq!(out[0], *byte);
                }
            }
        }
    }

    #[test]
    fn forgetting_the_last_page_of_a_group_drops_the_group() {
        // Frames 64 and 65 share a group; 128 is the next one.
        let mut store = PageStore::default();
        for frame in [64, 65, 128] {
            store.bytes_mut(mfn(1, frame), 1)[0] = 1;
        }

        store.forget(mfn(1, 64));
        store.forget(mfn(1, 64));
        store.forget(mfn(1, 65));

        assert_eq!(store.len(), 1);
        assert_eq!(store.shelves.iter().flatten().count(), 1);
        assert!(!store.contains(mfn(1, 65)));
    }
}
