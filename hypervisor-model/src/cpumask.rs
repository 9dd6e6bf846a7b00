//! A set of pCPUs, with the walks Xen's schedulers use.
//!
//! Follows xen/include/xen/cpumask.h: `cpumask_first`, `cpumask_cycle`,
//! `cpumask_test_or_cycle`, `cpumask_intersects`, `cpumask_subset`, and the boolean
//! operations. Besides the operations that return a new mask (`and`, `or`, `and_not`),
//! the mask offers in-place forms (`and_with`, `or_with`, `and_not_with`) and fused walks
//! over two or three masks (`first_and`, `cycle_in_and`, `intersects_and_not`) that build
//! no intermediate mask: the schedulers call them on every decision. For longer
//! combinations (`idle & !tickled & soft & hard & pool`) the `*_combined` walks take the
//! masks and a bitwise word function, and do the same in one pass.
//!
//! # Invariants
//! - No bit at or past the mask's width is ever set (so unused words are zero, and
//!   equality and hashing can compare the used words only).
//! - A mask of up to [`INLINE_CPUS_MAX`] pCPUs keeps its words inline (no allocation, so a
//!   clone or a boolean operation costs a copy of at most 128 bytes); a wider one uses a
//!   heap vector. The representation depends on the width only.
//! - A mask of at most 64 pCPUs (one word, the common host) takes a one-word path in the
//!   hot operations, with the answers of the word loops (`cpumask_reference_tests.rs`
//!   checks both against a bit-by-bit model).

use alloc::vec::Vec;
use core::fmt;
use core::hash::{Hash, Hasher};

use crate::ids::PcpuId;

/// Words kept inline: 16 × 64 = 1024 pCPUs, the largest `scale-*` topology.
const INLINE_WORDS: usize = 16;
/// Widest mask kept inline, in pCPUs.
pub const INLINE_CPUS_MAX: u32 = 1024;

const _: () = assert!(INLINE_CPUS_MAX as usize == 64 * INLINE_WORDS);
const _: () = assert!(crate::limits::NR_CPUS > INLINE_CPUS_MAX);
const _: () = assert!(INLINE_WORDS.is_power_of_two());

/// The words of a mask: inline up to [`INLINE_CPUS_MAX`] pCPUs, else on the heap.
#[derive(Clone)]
enum Words {
    Inline([u64; INLINE_WORDS]),
    Heap(Vec<u64>),
}

/// Number of 64-bit words a mask of `width` pCPUs uses.
#[inline]
fn word_count(width: u32) -> usize {
    usize::try_from(width.div_ceil(64)).unwrap_or(usize::MAX)
}

/// The word holding `cpu`, and its bit in that word.
#[inline]
fn word_bit(cpu: u32) -> (usize, u64) {
    (
        usize::try_from(cpu / 64).unwrap_or(usize::MAX),
        1u64 << (cpu % 64),
    )
}

/// The pCPU of bit `bit` of word `word_index`.
#[inline]
fn cpu_of(word_index: usize, bit: u32) -> Option<PcpuId> {
    let base = u32::try_from(word_index).ok()?.checked_mul(64)?;
    PcpuId::new(base + bit)
}

/// A fixed-width bitmap of pCPUs (one bit per pCPU of the host).
// `repr(C)` with the width first: a test of a low pCPU reads the width, the word kind and
// the first word from one cache line.
#[repr(C)]
#[derive(Clone)]
pub struct CpuMask {
    width: u32,
    words: Words,
}

impl PartialEq for CpuMask {
    fn eq(&self, other: &CpuMask) -> bool {
        self.width == other.width && self.w() == other.w()
    }
}

impl Eq for CpuMask {}

impl Hash for CpuMask {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.width.hash(state);
        self.w().hash(state);
    }
}

impl CpuMask {
    /// An empty mask for a host with `width` pCPUs.
    pub fn empty(width: u32) -> CpuMask {
        let words = if width <= INLINE_CPUS_MAX {
            Words::Inline([0; INLINE_WORDS])
        } else {
            Words::Heap(alloc::vec![0; word_count(width)])
        };
        CpuMask { words, width }
    }

    /// Every pCPU of a host with `width` pCPUs.
    pub fn full(width: u32) -> CpuMask {
        let mut mask = CpuMask::empty(width);
        let words = mask.w_mut();
        words.fill(u64::MAX);
        let tail_bits = width % 64;
        if let (Some(last), true) = (words.last_mut(), tail_bits != 0) {
            *last = (1u64 << tail_bits) - 1;
        }
        mask
    }

    /// A mask holding only `cpu`.
    pub fn single(width: u32, cpu: PcpuId) -> CpuMask {
        let mut mask = CpuMask::empty(width);
        mask.set(cpu);
        mask
    }

    /// Number of pCPUs the mask can name.
    #[inline]
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The words in use.
    #[inline]
    fn w(&self) -> &[u64] {
        match &self.words {
            Words::Inline(words) => &words[..word_count(self.width)],
            Words::Heap(words) => words,
        }
    }

    #[inline]
    fn w_mut(&mut self) -> &mut [u64] {
        let count = word_count(self.width);
        match &mut self.words {
            Words::Inline(words) => &mut words[..count],
            Words::Heap(words) => words,
        }
    }

    /// The only word of a mask of at most 64 pCPUs (such a mask is always inline).
    #[inline(always)]
    fn word0(&self) -> u64 {
        match &self.words {
            Words::Inline(words) => words[0],
            Words::Heap(words) => words.first().copied().unwrap_or(0),
        }
    }

    /// Sets the only word of a mask of at most 64 pCPUs.
    #[inline(always)]
    fn set_word0(&mut self, word: u64) {
        debug_assert!(self.width <= 64, "one-word path on a wide mask");
        match &mut self.words {
            Words::Inline(words) => words[0] = word,
            Words::Heap(words) => {
                if let Some(first) = words.first_mut() {
                    *first = word;
                }
            }
        }
    }

    /// The only word of each of `masks` when they are at most 64 pCPUs wide (asserting
    /// they have one width), `None` for wider masks (the word loops apply; a caller that
    /// combines a few masks bit by bit on a one-word host).
    #[inline(always)]
    pub fn single_words<const N: usize>(masks: &[&CpuMask; N]) -> Option<[u64; N]> {
        let width = masks.first().map_or(0, |m| m.width);
        if width > 64 {
            return None;
        }
        let mut out = [0u64; N];
        for (value, mask) in out.iter_mut().zip(masks) {
            assert_eq!(mask.width, width, "masks of different hosts");
            *value = mask.word0();
        }
        Some(out)
    }

    #[inline]
    fn set_raw(&mut self, cpu: u32) {
        assert!(
            cpu < self.width,
            "cpu {cpu} outside mask width {}",
            self.width
        );
        let (index, bit) = word_bit(cpu);
        *self.word_mut(index) |= bit;
    }

    /// The word at `index`, below the width's word count: an inline mask indexes its
    /// words directly (an index below the width of an inline mask, at most
    /// `INLINE_CPUS_MAX` pCPUs, is below `INLINE_WORDS`, so the mask is exact and no bounds
    /// check is needed), a wide one its vector.
    #[inline(always)]
    fn word_mut(&mut self, index: usize) -> &mut u64 {
        debug_assert!(
            index < word_count(self.width),
            "word {index} past the width"
        );
        match &mut self.words {
            Words::Inline(words) => &mut words[index & (INLINE_WORDS - 1)],
            Words::Heap(words) => &mut words[index],
        }
    }

    /// Adds `cpu`.
    #[inline]
    pub fn set(&mut self, cpu: PcpuId) {
        self.set_raw(cpu.raw());
    }

    /// Removes `cpu`.
    #[inline]
    pub fn clear(&mut self, cpu: PcpuId) {
        assert!(cpu.raw() < self.width);
        let (index, bit) = word_bit(cpu.raw());
        *self.word_mut(index) &= !bit;
    }

    /// True if `cpu` is in the mask (false past the width).
    #[inline]
    pub fn test(&self, cpu: PcpuId) -> bool {
        if cpu.raw() >= self.width {
            return false;
        }
        // Below the width the word is in use: index it directly, without the used-words
        // slice (the hottest mask operation of every decision).
        let (index, bit) = word_bit(cpu.raw());
        let word = match &self.words {
            // An inline mask is at most `INLINE_CPUS_MAX` wide, so below its width the
            // index is below `INLINE_WORDS`: the mask keeps it so without a bounds check.
            Words::Inline(words) => {
                debug_assert!(index < INLINE_WORDS, "inline mask wider than its words");
                words.get(index & (INLINE_WORDS - 1))
            }
            Words::Heap(words) => words.get(index),
        };
        word.is_some_and(|w| w & bit != 0)
    }

    /// True if no pCPU is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        if self.width <= 64 {
            return self.word0() == 0;
        }
        self.w().iter().all(|w| *w == 0)
    }

    /// Sets the only word of a mask of at most 64 pCPUs (from [`CpuMask::single_words`]
    /// and bitwise operations that set no bit past the width).
    #[inline(always)]
    pub fn set_narrow_word(&mut self, word: u64) {
        debug_assert!(
            self.width == 64 || word >> self.width == 0,
            "a bit past the width"
        );
        self.set_word0(word);
    }

    /// True if `cpu` is the mask's only pCPU (a core of one thread, as a sibling mask).
    #[inline]
    pub fn is_only(&self, cpu: PcpuId) -> bool {
        if self.width <= 64 {
            return 1u64.checked_shl(cpu.raw()) == Some(self.word0());
        }
        self.test(cpu) && self.weight() == 1
    }

    /// Number of pCPUs set (`cpumask_weight`).
    pub fn weight(&self) -> u32 {
        if self.width <= 64 {
            return self.word0().count_ones();
        }
        self.w().iter().map(|w| w.count_ones()).sum()
    }

    /// Lowest set pCPU (`cpumask_first`).
    #[inline]
    pub fn first(&self) -> Option<PcpuId> {
        if self.width <= 64 {
            return first_of_word(self.word0());
        }
        let words = self.w();
        next_set(words.len(), 0, |i| words[i])
    }

    /// First set pCPU strictly after `start`, wrapping (`cpumask_cycle`).
    #[inline]
    pub fn cycle(&self, start: PcpuId) -> Option<PcpuId> {
        if self.width <= 64 {
            return cycle_in_word(self.word0(), start);
        }
        let words = self.w();
        cycle_by(words.len(), start, |i| words[i])
    }

    /// `start` if set, else `cycle(start)` (`cpumask_test_or_cycle`).
    #[inline]
    pub fn test_or_cycle(&self, start: PcpuId) -> Option<PcpuId> {
        if self.test(start) {
            Some(start)
        } else {
            self.cycle(start)
        }
    }

    /// `cpumask_first(self & other)`, without building the intersection.
    #[inline]
    pub fn first_and(&self, other: &CpuMask) -> Option<PcpuId> {
        if let Some([a, b]) = CpuMask::single_words(&[self, other]) {
            return first_of_word(a & b);
        }
        let (a, b) = self.pair(other);
        next_set(a.len(), 0, |i| a[i] & b[i])
    }

    /// `cpumask_cycle(start, self & other)`, without building the intersection.
    #[inline]
    pub fn cycle_in_and(&self, other: &CpuMask, start: PcpuId) -> Option<PcpuId> {
        if let Some([a, b]) = CpuMask::single_words(&[self, other]) {
            return cycle_in_word(a & b, start);
        }
        let (a, b) = self.pair(other);
        cycle_by(a.len(), start, |i| a[i] & b[i])
    }

    /// `cpumask_test_or_cycle(start, self & other)`, without building the intersection.
    #[inline]
    pub fn test_or_cycle_and(&self, other: &CpuMask, start: PcpuId) -> Option<PcpuId> {
        if self.test(start) && other.test(start) {
            Some(start)
        } else {
            self.cycle_in_and(other, start)
        }
    }

    /// `self & other`.
    #[must_use]
    pub fn and(&self, other: &CpuMask) -> CpuMask {
        let mut out = self.clone();
        out.and_with(other);
        out
    }

    /// `self | other`.
    #[must_use]
    pub fn or(&self, other: &CpuMask) -> CpuMask {
        let mut out = self.clone();
        out.or_with(other);
        out
    }

    /// `self & !other`.
    #[must_use]
    pub fn and_not(&self, other: &CpuMask) -> CpuMask {
        let mut out = self.clone();
        out.and_not_with(other);
        out
    }

    /// `self &= other`, in place.
    #[inline]
    pub fn and_with(&mut self, other: &CpuMask) {
        self.zip_in_place(other, |a, b| a & b);
    }

    /// `self |= other`, in place.
    #[inline]
    pub fn or_with(&mut self, other: &CpuMask) {
        self.zip_in_place(other, |a, b| a | b);
    }

    /// `self &= !other`, in place.
    #[inline]
    pub fn and_not_with(&mut self, other: &CpuMask) {
        self.zip_in_place(other, |a, b| a & !b);
    }

    /// `self = op(self, other)` word by word: the one-word path inline, the word loop
    /// apart ([`CpuMask::zip_words_in_place`]).
    #[inline(always)]
    fn zip_in_place(&mut self, other: &CpuMask, op: impl Fn(u64, u64) -> u64) {
        if let Some([a, b]) = CpuMask::single_words(&[&*self, other]) {
            self.set_word0(op(a, b));
            return;
        }
        self.zip_words_in_place(other, op);
    }

    /// The word loop of [`CpuMask::zip_in_place`], for masks wider than one word.
    #[inline(never)]
    fn zip_words_in_place(&mut self, other: &CpuMask, op: impl Fn(u64, u64) -> u64) {
        assert_eq!(self.width, other.width, "masks of different hosts");
        for (a, b) in self.w_mut().iter_mut().zip(other.w()) {
            *a = op(*a, *b);
        }
    }

    /// The used words of two masks of the same host.
    #[inline]
    fn pair<'a>(&'a self, other: &'a CpuMask) -> (&'a [u64], &'a [u64]) {
        assert_eq!(self.width, other.width, "masks of different hosts");
        (self.w(), other.w())
    }

    /// True if every pCPU of `self` is in `other` (`cpumask_subset`).
    #[inline]
    pub fn is_subset(&self, other: &CpuMask) -> bool {
        if let Some([a, b]) = CpuMask::single_words(&[self, other]) {
            return a & !b == 0;
        }
        let (a, b) = self.pair(other);
        a.iter().zip(b).all(|(a, b)| a & !b == 0)
    }

    /// True if the masks share a pCPU (`cpumask_intersects`).
    #[inline]
    pub fn intersects(&self, other: &CpuMask) -> bool {
        if let Some([a, b]) = CpuMask::single_words(&[self, other]) {
            return a & b != 0;
        }
        let (a, b) = self.pair(other);
        a.iter().zip(b).any(|(a, b)| a & b != 0)
    }

    /// True if `self & other & third` is not empty, without building it.
    #[inline]
    pub fn intersects_and(&self, other: &CpuMask, third: &CpuMask) -> bool {
        if let Some([a, b, c]) = CpuMask::single_words(&[self, other, third]) {
            return a & b & c != 0;
        }
        let (a, b) = self.pair(other);
        let (_, c) = self.pair(third);
        (0..a.len()).any(|i| a[i] & b[i] & c[i] != 0)
    }

    /// True if `self & other & !minus` is not empty, without building it.
    #[inline]
    pub fn intersects_and_not(&self, other: &CpuMask, minus: &CpuMask) -> bool {
        if let Some([a, b, c]) = CpuMask::single_words(&[self, other, minus]) {
            return a & b & !c != 0;
        }
        let (a, b) = self.pair(other);
        let (_, c) = self.pair(minus);
        (0..a.len()).any(|i| a[i] & b[i] & !c[i] != 0)
    }

    /// The used words of masks of the same host, each slice cut to exactly the word count
    /// (so the walks below index without checks).
    // Plain loops rather than `array::map`, which the optimiser leaves as a call per word.
    #[inline(always)]
    fn words_of<const N: usize>(masks: [&CpuMask; N]) -> (usize, [&[u64]; N]) {
        let width = masks.first().map_or(0, |m| m.width);
        let count = word_count(width);
        let mut words: [&[u64]; N] = [&[]; N];
        for (slot, mask) in words.iter_mut().zip(masks) {
            assert_eq!(mask.width, width, "masks of different hosts");
            *slot = &mask.w()[..count];
        }
        (count, words)
    }

    /// Word `index` of each of `words`.
    #[inline(always)]
    fn column<const N: usize>(words: &[&[u64]; N], index: usize) -> [u64; N] {
        let mut out = [0u64; N];
        for (value, w) in out.iter_mut().zip(words) {
            *value = w[index];
        }
        out
    }

    /// True if `f` of the masks' words is not zero at some index: a test of a bitwise
    /// combination of several masks (`f` is e.g. `|[a, b, c]| a & b & !c`) that builds no
    /// intermediate mask. `f` must be bitwise and map all-zero words to zero (so no bit past
    /// the width is ever set).
    #[inline(always)]
    pub fn any_combined<const N: usize>(masks: [&CpuMask; N], f: impl Fn([u64; N]) -> u64) -> bool {
        debug_assert_eq!(f([0; N]), 0, "a combination that sets bits of no mask");
        if let Some(column) = CpuMask::single_words(&masks) {
            return f(column) != 0;
        }
        let (count, words) = CpuMask::words_of(masks);
        (0..count).any(|i| f(CpuMask::column(&words, i)) != 0)
    }

    /// `cpumask_test_or_cycle(start, f(masks))`, without building the combination (`f`
    /// as for [`CpuMask::any_combined`]).
    #[inline(always)]
    pub fn test_or_cycle_combined<const N: usize>(
        masks: [&CpuMask; N],
        start: PcpuId,
        f: impl Fn([u64; N]) -> u64,
    ) -> Option<PcpuId> {
        debug_assert_eq!(f([0; N]), 0, "a combination that sets bits of no mask");
        if let Some(column) = CpuMask::single_words(&masks) {
            let word = f(column);
            if start.raw() < 64 && word & (1u64 << start.raw()) != 0 {
                return Some(start);
            }
            return cycle_in_word(word, start);
        }
        let (count, words) = CpuMask::words_of(masks);
        let word = |i: usize| f(CpuMask::column(&words, i));
        let (index, bit) = word_bit(start.raw());
        if index < count && word(index) & bit != 0 {
            return Some(start);
        }
        cycle_by(count, start, word)
    }

    /// The mask of `f(masks)`, built in one pass over the words (`f` as for
    /// [`CpuMask::any_combined`]; the first mask gives the width).
    #[inline(always)]
    pub fn combined<const N: usize>(masks: [&CpuMask; N], f: impl Fn([u64; N]) -> u64) -> CpuMask {
        debug_assert_eq!(f([0; N]), 0, "a combination that sets bits of no mask");
        if let Some(column) = CpuMask::single_words(&masks) {
            let mut words = [0u64; INLINE_WORDS];
            words[0] = f(column);
            let width = masks.first().map_or(0, |m| m.width);
            return CpuMask {
                width,
                words: Words::Inline(words),
            };
        }
        let (_, words) = CpuMask::words_of(masks);
        let mut out = CpuMask::empty(masks.first().map_or(0, |m| m.width));
        for (i, slot) in out.w_mut().iter_mut().enumerate() {
            *slot = f(CpuMask::column(&words, i));
        }
        out
    }

    /// Keeps the pCPUs for which `keep` holds (asked once per set pCPU, in ascending
    /// order); one pass over the words, with no iterator state per pCPU.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(PcpuId) -> bool) {
        if self.width <= 64 {
            let word = retain_in_word(self.word0(), 0, &mut keep);
            self.set_word0(word);
            return;
        }
        for (index, word) in self.w_mut().iter_mut().enumerate() {
            let base = u32::try_from(index).unwrap_or(u32::MAX).saturating_mul(64);
            *word = retain_in_word(*word, base, &mut keep);
        }
    }

    /// Keeps the pCPUs that `listed` yields (`self &= listed`; those at or past the width
    /// keep nothing): a mask of at most 64 pCPUs gathers `listed` in one word, with no
    /// mask built.
    #[inline(always)]
    pub fn retain_listed(&mut self, listed: impl Iterator<Item = PcpuId>) {
        if self.width <= 64 {
            let mut keep = 0u64;
            for cpu in listed {
                keep |= 1u64.checked_shl(cpu.raw()).unwrap_or(0);
            }
            self.set_word0(self.word0() & keep);
            return;
        }
        let mut keep = CpuMask::empty(self.width);
        for cpu in listed.filter(|cpu| cpu.raw() < self.width) {
            keep.set(cpu);
        }
        self.and_with(&keep);
    }

    /// The set pCPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = PcpuId> + '_ {
        let words = self.w();
        let mut index = 0usize;
        let mut current = words.first().copied().unwrap_or(0);
        core::iter::from_fn(move || loop {
            if current != 0 {
                let bit = current.trailing_zeros();
                current &= current - 1;
                return cpu_of(index, bit);
            }
            index += 1;
            current = *words.get(index)?;
        })
    }
}

/// The first pCPU at or after bit `start` of the words `word(0..count)`.
#[inline]
fn next_set(count: usize, start: u32, word: impl Fn(usize) -> u64) -> Option<PcpuId> {
    let (first_index, _) = word_bit(start);
    if first_index >= count {
        return None;
    }
    let mut current = word(first_index) & (u64::MAX << (start % 64));
    let mut index = first_index;
    loop {
        if current != 0 {
            return cpu_of(index, current.trailing_zeros());
        }
        index += 1;
        if index >= count {
            return None;
        }
        current = word(index);
    }
}

/// The bits of `word` (pCPUs `base..base + 64`) for which `keep` holds, asked in
/// ascending order.
#[inline(always)]
fn retain_in_word(word: u64, base: u32, keep: &mut impl FnMut(PcpuId) -> bool) -> u64 {
    let mut left = word;
    let mut kept = word;
    while left != 0 {
        let bit_index = left.trailing_zeros();
        // Clears the lowest set bit, the one just read.
        left &= left - 1;
        let cpu = base.checked_add(bit_index).and_then(PcpuId::new);
        if let Some(cpu) = cpu {
            if !keep(cpu) {
                kept &= !(1u64 << bit_index);
            }
        }
    }
    kept
}

/// The lowest set pCPU of a one-word mask.
#[inline(always)]
fn first_of_word(word: u64) -> Option<PcpuId> {
    if word == 0 {
        return None;
    }
    PcpuId::new(word.trailing_zeros())
}

/// `cpumask_cycle` in a one-word mask: the first set pCPU after `start`, else the first.
#[inline(always)]
fn cycle_in_word(word: u64, start: PcpuId) -> Option<PcpuId> {
    let after = start.raw().saturating_add(1);
    if after < 64 {
        let above = word & (u64::MAX << after);
        if above != 0 {
            return PcpuId::new(above.trailing_zeros());
        }
    }
    first_of_word(word)
}

/// `cpumask_cycle` over the words `word(0..count)`: the first set pCPU after `start`,
/// wrapping to the first.
#[inline]
fn cycle_by(count: usize, start: PcpuId, word: impl Fn(usize) -> u64) -> Option<PcpuId> {
    start
        .raw()
        .checked_add(1)
        .and_then(|after| next_set(count, after, &word))
        .or_else(|| next_set(count, 0, &word))
}

impl fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|c| c.raw()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{CpuMask, INLINE_CPUS_MAX};
    use crate::ids::PcpuId;

    fn cpu(n: u32) -> PcpuId {
        PcpuId::new(n).expect("test cpu in range")
    }

    #[test]
    fn cycle_wraps_to_first_set_bit() {
        let mut mask = CpuMask::empty(8);
        mask.set(cpu(1));
        mask.set(cpu(5));
        assert_eq!(mask.cycle(cpu(5)), Some(cpu(1)));
        assert_eq!(mask.cycle(cpu(1)), Some(cpu(5)));
    }

    #[test]
    fn test_or_cycle_keeps_start_when_set() {
        let mask = CpuMask::full(4);
        assert_eq!(mask.test_or_cycle(cpu(2)), Some(cpu(2)));
    }

    #[test]
    fn empty_mask_cycle_is_none() {
        assert_eq!(CpuMask::empty(70).cycle(cpu(3)), None);
    }

    #[test]
    fn subset_of_full_mask_across_word_boundary() {
        let mut mask = CpuMask::empty(70);
        mask.set(cpu(65));
        assert!(mask.is_subset(&CpuMask::full(70)));
        assert_eq!(mask.weight(), 1);
    }

    #[test]
    fn full_mask_of_heap_width_has_every_bit() {
        // Wider than the inline words: the heap representation.
        let width = super::INLINE_CPUS_MAX + 70;
        let mask = CpuMask::full(width);
        assert_eq!(mask.weight(), width);
        assert_eq!(mask.iter().last(), Some(cpu(width - 1)));
    }

    #[test]
    fn iter_crosses_word_boundaries_in_order() {
        let mut mask = CpuMask::empty(200);
        mask.set(cpu(3));
        mask.set(cpu(64));
        mask.set(cpu(199));
        let raws: alloc::vec::Vec<u32> = mask.iter().map(PcpuId::raw).collect();
        assert_eq!(raws, [3, 64, 199]);
    }

    #[test]
    fn cycle_in_and_matches_cycle_of_intersection() {
        let mut a = CpuMask::empty(130);
        let mut b = CpuMask::empty(130);
        a.set(cpu(2));
        a.set(cpu(70));
        a.set(cpu(129));
        b.set(cpu(2));
        b.set(cpu(129));
        assert_eq!(a.cycle_in_and(&b, cpu(2)), a.and(&b).cycle(cpu(2)));
        assert_eq!(a.cycle_in_and(&b, cpu(129)), Some(cpu(2)));
        assert_eq!(a.test_or_cycle_and(&b, cpu(70)), Some(cpu(129)));
    }

    #[test]
    fn fused_queries_match_built_masks() {
        let mut a = CpuMask::empty(100);
        let mut b = CpuMask::empty(100);
        a.set(cpu(10));
        a.set(cpu(90));
        b.set(cpu(90));
        let minus = CpuMask::single(100, cpu(90));
        assert_eq!(a.first_and(&b), Some(cpu(90)));
        assert!(a.intersects(&b));
        assert!(!a.intersects_and_not(&b, &minus));
        assert!(!a.is_subset(&b));
    }

    /// A mask of `width` pCPUs from random words (bits past the width dropped).
    fn from_words(width: u32, words: &[u64]) -> CpuMask {
        let mut out = CpuMask::empty(width);
        for n in 0..width {
            let word = words[usize::try_from(n / 64).unwrap_or(0) % words.len()];
            if word >> (n % 64) & 1 != 0 {
                out.set(cpu(n));
            }
        }
        out
    }

    proptest! {
        /// The fused multi-mask walks answer as the masks built one operation at a time.
        #[test]
        fn combined_walks_match_built_masks(
            width in prop_oneof![Just(1u32), Just(64), Just(100), Just(INLINE_CPUS_MAX + 70)],
            words in prop::collection::vec(
                prop::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()], 3),
                3,
            ),
            start in 0u32..1200,
        ) {
            let a = from_words(width, &words[0]);
            let b = from_words(width, &words[1]);
            let c = from_words(width, &words[2]);
            let built = a.and(&b).and_not(&c);
            let fused = CpuMask::combined([&a, &b, &c], |[a, b, c]| a & b & !c);
            prop_assert_eq!(&fused, &built);
            prop_assert_eq!(
                CpuMask::any_combined([&a, &b, &c], |[a, b, c]| a & b & !c),
                !built.is_empty()
            );
            let start = cpu(start % width);
            prop_assert_eq!(
                CpuMask::test_or_cycle_combined([&a, &b, &c], start, |[a, b, c]| a & b & !c),
                built.test_or_cycle(start)
            );
        }
    }

    proptest! {
        /// `retain_listed` keeps what the mask built from the list keeps.
        #[test]
        fn retain_listed_matches_built_masks(
            width in prop_oneof![Just(1u32), Just(64), Just(100), Just(INLINE_CPUS_MAX + 70)],
            words in prop::collection::vec(
                prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
                3,
            ),
            listed in prop::collection::vec(0u32..1200, 0..8),
        ) {
            let a = from_words(width, &words);
            let mut keep = CpuMask::empty(width);
            for raw in listed.iter().filter(|raw| **raw < width) {
                keep.set(cpu(*raw));
            }
            let expected = a.and(&keep);
            let mut fused = a.clone();
            fused.retain_listed(listed.iter().map(|raw| cpu(*raw)));
            prop_assert_eq!(fused, expected);
        }
    }

    #[test]
    fn in_place_ops_match_allocating_ops() {
        let mut a = CpuMask::full(66);
        let b = CpuMask::single(66, cpu(65));
        let expected = a.and_not(&b);
        a.and_not_with(&b);
        assert_eq!(a, expected);
        a.or_with(&b);
        assert_eq!(a, CpuMask::full(66));
    }
}

#[cfg(test)]
#[path = "cpumask_reference_tests.rs"]
mod reference_tests;
