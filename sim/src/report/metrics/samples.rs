//! The latency samples of a host's vCPUs (`specs/metrics.md` §1.2: wakeup latency and
//! runqueue wait), kept in one append-only log per host until the end of the run, then
//! grouped by tag for the distributions.
//!
//! A wake's wakeup latency and its runqueue wait are one sample: a vCPU woken at `t` is
//! runnable from `t`, so both measure from `t` to its next run (the wake is in the window
//! exactly when the runnable start is). Each wait is logged once, tagged by its vCPU and
//! by whether it began with a wake: a vCPU's wakeup latencies are its wake-tagged samples,
//! its runqueue waits all of its samples. Each vCPU owns two consecutive tags (wake, then
//! other), so after grouping its runqueue waits are one contiguous run of values, and so
//! are a domain's when its vCPUs' tags are consecutive (they are created together).
//!
//! A sample whose value fits 32 bits (below 4.29 s) and whose tag fits 16 bits is appended
//! as a `u32` value and a `u16` tag to two parallel columns (6 bytes a sample), any other
//! as a `(tag, value_ns)` pair in a side list. One sequential log costs less per sample than
//! a growing vector per vCPU: every append lands next to the previous one, where 512
//! per-vCPU tails each missed the cache (about 2% of `bench-64x512`).
//!
//! At the end, [`SampleLog::into_slots`] moves the narrow values into one array grouped by
//! tag (a counting sort, 4 bytes a sample), handing the log over from its end in chunks
//! whose memory is returned as it goes: the log and the grouped copy never both exist whole.
//!
//! # Invariants
//! - Every logged tag is one of the tags [`SampleLog::vcpu_slots`] handed out.
//! - [`SampleLog::into_slots`] gives each tag exactly the values pushed to it; the order
//!   inside a tag is not kept (every consumer sorts or selects).

use std::collections::BTreeMap;
use std::ops::Range;

use super::dist::{Distribution, NarrowStats};

/// Tags per vCPU: its waits that began with a wake, then its other waits.
const TAGS_PER_VCPU: u32 = 2;
/// Log entries handed to their tags per step of [`SampleLog::into_slots`], whose freed
/// tail is then returned (peak memory).
const SPLIT_CHUNK_SAMPLES: usize = 1 << 20;

/// The two sample tags of one vCPU.
#[derive(Clone, Copy, Debug)]
pub(super) struct VcpuSlots {
    /// The tag of its waits that began with a wake; `base + 1` tags its other waits.
    base: u32,
}

impl VcpuSlots {
    /// The tag of a runqueue wait that began with a wake (`woken`) or not.
    #[inline(always)]
    fn tag(self, woken: bool) -> u32 {
        self.base + u32::from(!woken)
    }

    /// The tags of the wakeup latency samples.
    fn wakeups(self) -> Range<u32> {
        self.base..self.base + 1
    }

    /// The tags of the runqueue wait samples (every sample of the vCPU).
    fn waits(self) -> Range<u32> {
        self.base..self.base + TAGS_PER_VCPU
    }
}

/// One host's latency samples.
#[derive(Debug, Default)]
pub(super) struct SampleLog {
    /// Values below 2^32 ns of tags below 2^16; `narrow_tags[i]` is the tag of
    /// `narrow_values[i]`.
    narrow_values: Vec<u32>,
    narrow_tags: Vec<u16>,
    /// `(tag, value_ns)` for the others.
    wide: Vec<(u32, u64)>,
    /// Tags handed out so far.
    tag_count: u32,
}

impl SampleLog {
    /// The tags of a new vCPU.
    pub(super) fn vcpu_slots(&mut self) -> VcpuSlots {
        let base = self.tag_count;
        self.tag_count = base
            .checked_add(TAGS_PER_VCPU)
            .expect("metrics: fewer than 2^31 vCPUs per host");
        VcpuSlots { base }
    }

    /// Appends a runqueue wait of `value_ns` of the vCPU with `slots`; `woken` when the
    /// wait began with a wake (it is then its wakeup latency too).
    #[inline]
    pub(super) fn push(&mut self, slots: VcpuSlots, woken: bool, value_ns: u64) {
        let tag = slots.tag(woken);
        debug_assert!(tag < self.tag_count, "sample tag not handed out");
        match (u16::try_from(tag), u32::try_from(value_ns)) {
            (Ok(narrow_tag), Ok(narrow_ns)) => {
                self.narrow_values.push(narrow_ns);
                self.narrow_tags.push(narrow_tag);
            }
            _ => self.wide.push((tag, value_ns)),
        }
    }

    /// Every tag's samples, grouped by tag. The log is handed over from its end in
    /// chunks, each chunk's memory returned before the next.
    pub(super) fn into_slots(mut self) -> SlotSamples {
        debug_assert_eq!(self.narrow_values.len(), self.narrow_tags.len());
        let narrow_tag_count = self.tag_count.min(u32::from(u16::MAX) + 1);
        let mut ends = vec![0usize; usize::try_from(narrow_tag_count).unwrap_or(usize::MAX)];
        for &tag in &self.narrow_tags {
            ends[usize::from(tag)] += 1;
        }
        let mut total = 0;
        for end in &mut ends {
            total += *end;
            *end = total;
        }
        // Each tag is filled from its end down; `cursors[t]` ends as tag `t`'s start.
        let mut cursors = ends.clone();
        let mut values = vec![0u32; total];
        while !self.narrow_tags.is_empty() {
            let keep = self.narrow_tags.len().saturating_sub(SPLIT_CHUNK_SAMPLES);
            for (&tag, &value) in self.narrow_tags[keep..]
                .iter()
                .zip(&self.narrow_values[keep..])
            {
                let cursor = &mut cursors[usize::from(tag)];
                *cursor -= 1;
                values[*cursor] = value;
            }
            self.narrow_tags.truncate(keep);
            self.narrow_tags.shrink_to_fit();
            self.narrow_values.truncate(keep);
            self.narrow_values.shrink_to_fit();
        }
        let mut wide: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (tag, value_ns) in self.wide {
            wide.entry(tag).or_default().push(value_ns);
        }
        SlotSamples { values, ends, wide }
    }
}

/// Every tag's samples at the end of the run: the narrow values of tag `t` are
/// `values[ends[t - 1]..ends[t]]` (from 0 for the first), its other values in `wide`.
#[derive(Debug, Default)]
pub(super) struct SlotSamples {
    values: Vec<u32>,
    ends: Vec<usize>,
    wide: BTreeMap<u32, Vec<u64>>,
}

impl SlotSamples {
    /// Narrow values of the tags below `tag` (all of them past the last narrow tag).
    fn offset(&self, tag: u32) -> usize {
        let count = usize::try_from(tag).map_or(self.ends.len(), |t| t.min(self.ends.len()));
        count.checked_sub(1).map_or(0, |last| self.ends[last])
    }

    /// The narrow values of the consecutive `tags`, one slice (empty past the last narrow
    /// tag).
    fn narrow(&self, tags: Range<u32>) -> &[u32] {
        &self.values[self.offset(tags.start)..self.offset(tags.end)]
    }

    /// True if some sample of `tags` is not narrow.
    fn any_wide(&self, tags: Range<u32>) -> bool {
        !self.wide.is_empty() && self.wide.range(tags).next().is_some()
    }

    /// Appends every sample of `tags` to `out` (in no particular order).
    fn extend_into(&self, tags: Range<u32>, out: &mut Vec<u64>) {
        out.extend(self.narrow(tags.clone()).iter().map(|&v| u64::from(v)));
        for (_, wide) in self.wide.range(tags) {
            out.extend_from_slice(wide);
        }
    }

    /// The distribution of every sample of `tags` (some not narrow), reordering a copy.
    fn wide_distribution(&self, tags: Range<u32>, metric: &str) -> Distribution {
        let mut all = Vec::new();
        self.extend_into(tags, &mut all);
        Distribution::from_unordered(&mut all, metric)
    }

    /// The wakeup latency and the runqueue wait distributions of the vCPU with `slots`.
    /// The wakeups' extremes and sum are read once: the waits' are theirs joined with the
    /// other waits'. A vCPU never preempted (no other wait) has the same two, selected once.
    pub(super) fn vcpu_distributions(&self, slots: VcpuSlots) -> (Distribution, Distribution) {
        const WAKEUP: &str = "wakeup_latency_ns";
        const WAIT: &str = "runq_wait_ns";
        if self.any_wide(slots.waits()) {
            return (
                self.wide_distribution(slots.wakeups(), WAKEUP),
                self.wide_distribution(slots.waits(), WAIT),
            );
        }
        let wakeups = self.narrow(slots.wakeups());
        let wakeup_stats = NarrowStats::of(wakeups);
        let wakeup = Distribution::from_narrow_stats(wakeups, wakeup_stats, WAKEUP);
        let others = self.narrow(slots.wakeups().end..slots.waits().end);
        if others.is_empty() {
            // Every wait began with a wake: the waits are the wakeups, sample for sample.
            return (wakeup.clone(), wakeup);
        }
        let waits_stats = wakeup_stats.join(NarrowStats::of(others));
        let waits = Distribution::from_narrow_stats(self.narrow(slots.waits()), waits_stats, WAIT);
        (wakeup, waits)
    }

    /// The wakeup latency samples of the vCPUs with `slots`, pooled, ascending.
    pub(super) fn pooled_wakeups_sorted(&self, slots: &[VcpuSlots]) -> Vec<u64> {
        if slots.iter().any(|s| self.any_wide(s.wakeups())) {
            let mut all = self.pooled_wide(slots, VcpuSlots::wakeups);
            all.sort_unstable();
            return all;
        }
        let mut narrow = self.pooled_narrow(slots, VcpuSlots::wakeups);
        radix_sort(&mut narrow);
        narrow.into_iter().map(u64::from).collect()
    }

    /// The runqueue wait distribution of the vCPUs with `slots` pooled; `parts` are their
    /// distributions one by one (their extremes and sums are the pool's). Read in place
    /// when the vCPUs' tags are consecutive, as a domain's are.
    pub(super) fn pooled_waits(
        &self,
        slots: &[VcpuSlots],
        parts: &[&Distribution],
        metric: &str,
    ) -> Distribution {
        debug_assert_eq!(slots.len(), parts.len());
        if slots.iter().any(|s| self.any_wide(s.waits())) {
            let mut all = self.pooled_wide(slots, VcpuSlots::waits);
            return Distribution::from_unordered(&mut all, metric);
        }
        if let Some(tags) = consecutive_tags(slots) {
            return Distribution::from_narrow_parts(self.narrow(tags), parts, metric);
        }
        let narrow = self.pooled_narrow(slots, VcpuSlots::waits);
        Distribution::from_narrow_parts(&narrow, parts, metric)
    }

    /// The samples of the `tags` of each of `slots` (some not narrow), one after another.
    fn pooled_wide(&self, slots: &[VcpuSlots], tags: fn(VcpuSlots) -> Range<u32>) -> Vec<u64> {
        let mut all = Vec::new();
        for &s in slots {
            self.extend_into(tags(s), &mut all);
        }
        all
    }

    /// The narrow samples of the `tags` of each of `slots` (all narrow), one after another.
    fn pooled_narrow(&self, slots: &[VcpuSlots], tags: fn(VcpuSlots) -> Range<u32>) -> Vec<u32> {
        let count = slots.iter().map(|&s| self.narrow(tags(s)).len()).sum();
        let mut narrow = Vec::with_capacity(count);
        for &s in slots {
            narrow.extend_from_slice(self.narrow(tags(s)));
        }
        narrow
    }
}

/// The tags of `slots` as one range, when their tag pairs are consecutive (in any order).
fn consecutive_tags(slots: &[VcpuSlots]) -> Option<Range<u32>> {
    let first = slots.iter().map(|s| s.base).min()?;
    let last = slots.iter().map(|s| s.base).max()?;
    // Distinct bases, each a multiple of the pair size from the first: `n` of them span
    // `n` pairs exactly when they are all the pairs from `first` to `last`.
    let pairs = u32::try_from(slots.len()).ok()?;
    debug_assert!(slots.iter().all(|s| (s.base - first) % TAGS_PER_VCPU == 0));
    (last - first == (pairs - 1) * TAGS_PER_VCPU).then_some(first..last + TAGS_PER_VCPU)
}

/// Sorts `values` ascending: a least-significant-digit radix sort by bytes, skipping the
/// bytes all values share (latencies rarely use the top one). Several times faster than a
/// comparison sort on the tens of thousands of samples of a domain, with the same result.
fn radix_sort(values: &mut Vec<u32>) {
    const DIGITS: usize = 4;
    let mut counts = [[0usize; 256]; DIGITS];
    for &value in values.iter() {
        for (digit, count) in counts.iter_mut().enumerate() {
            count[usize::from(value.to_le_bytes()[digit])] += 1;
        }
    }
    let mut scratch = vec![0u32; values.len()];
    for (digit, count) in counts.iter().enumerate() {
        if count.contains(&values.len()) {
            continue; // Every value has the same byte here: the order stays.
        }
        let mut starts = [0usize; 256];
        let mut next = 0;
        for (start, &n) in starts.iter_mut().zip(count) {
            *start = next;
            next += n;
        }
        for &value in values.iter() {
            let start = &mut starts[usize::from(value.to_le_bytes()[digit])];
            scratch[*start] = value;
            *start += 1;
        }
        std::mem::swap(values, &mut scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::super::dist::Distribution;
    use super::{SampleLog, SlotSamples, VcpuSlots};

    #[test]
    fn radix_sort_equals_a_comparison_sort() {
        // Scrambled values over every byte, many duplicates, and a constant top byte.
        let mut values: Vec<u32> = (0..50_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 3_000_011)
            .chain((0..1_000).map(|i| u32::MAX - i % 7))
            .collect();
        let mut want = values.clone();
        want.sort_unstable();

        super::radix_sort(&mut values);

        assert_eq!(values, want);
        let mut same = vec![5u32; 10];
        super::radix_sort(&mut same);
        assert_eq!(same, vec![5u32; 10]);
        let mut empty: Vec<u32> = Vec::new();
        super::radix_sort(&mut empty);
        assert!(empty.is_empty());
    }

    /// Every sample of `tags`, ascending.
    fn tag_values(samples: &SlotSamples, tags: std::ops::Range<u32>) -> Vec<u64> {
        let mut out = Vec::new();
        samples.extend_into(tags, &mut out);
        out.sort_unstable();
        out
    }

    /// The straightforward distributions of the vCPU with `slots`: its wakeups, and all of
    /// its samples, each copied and sorted.
    fn sorted_distributions(samples: &SlotSamples, slots: VcpuSlots) -> [Distribution; 2] {
        [slots.wakeups(), slots.waits()]
            .map(|tags| Distribution::from_sorted(&tag_values(samples, tags), "test"))
    }

    #[test]
    fn a_wake_sample_counts_as_wakeup_and_wait_an_other_as_wait_only() {
        let mut log = SampleLog::default();
        let a = log.vcpu_slots();
        let b = log.vcpu_slots();
        for (slots, woken, value) in [(a, true, 30), (b, true, 10), (a, false, 20), (a, true, 5)] {
            log.push(slots, woken, value);
        }
        log.push(b, false, 5_000_000_000);
        let slots = log.into_slots();

        let (a_wakeup, a_wait) = slots.vcpu_distributions(a);
        let (b_wakeup, b_wait) = slots.vcpu_distributions(b);

        assert_eq!(
            (a_wakeup.count, a_wakeup.sum, a_wakeup.max),
            (2, 35, Some(30))
        );
        assert_eq!((a_wait.count, a_wait.sum, a_wait.min), (3, 55, Some(5)));
        assert_eq!([a_wakeup, a_wait], sorted_distributions(&slots, a));
        assert_eq!(b_wakeup.count, 1);
        assert_eq!(b_wait.max, Some(5_000_000_000));
        assert_eq!([b_wakeup, b_wait], sorted_distributions(&slots, b));
    }

    #[test]
    fn a_never_preempted_vcpu_has_its_wakeups_as_waits() {
        let mut log = SampleLog::default();
        let a = log.vcpu_slots();
        for value in [40, 10, 30] {
            log.push(a, true, value);
        }
        let slots = log.into_slots();

        let (wakeup, wait) = slots.vcpu_distributions(a);

        assert_eq!(wakeup, wait);
        assert_eq!([wakeup, wait], sorted_distributions(&slots, a));
    }

    #[test]
    fn pooled_samples_equal_the_sorted_pool_in_and_out_of_tag_order() {
        // Three vCPUs with scrambled samples; pooled in creation order (consecutive tags,
        // read in place), in another order, and without the middle one (copied).
        let mut log = SampleLog::default();
        let vcpus = [log.vcpu_slots(), log.vcpu_slots(), log.vcpu_slots()];
        for i in 0..3_000u32 {
            let slots = vcpus[usize::try_from(i % 3).expect("below 3")];
            log.push(slots, i % 5 != 0, u64::from(i.wrapping_mul(7_919) % 10_007));
        }
        let samples = log.into_slots();
        let [a, b, c] = vcpus;

        for pool in [vec![a, b, c], vec![c, a, b], vec![a, c]] {
            let parts: Vec<Distribution> = pool
                .iter()
                .map(|&s| samples.vcpu_distributions(s).1)
                .collect();
            let parts: Vec<&Distribution> = parts.iter().collect();
            let mut wakeups: Vec<u64> = Vec::new();
            let mut waits: Vec<u64> = Vec::new();
            for s in &pool {
                samples.extend_into(s.wakeups(), &mut wakeups);
                samples.extend_into(s.waits(), &mut waits);
            }
            wakeups.sort_unstable();
            waits.sort_unstable();

            let pooled = samples.pooled_waits(&pool, &parts, "test");

            assert_eq!(samples.pooled_wakeups_sorted(&pool), wakeups);
            assert_eq!(pooled, Distribution::from_sorted(&waits, "test"));
        }
    }

    #[test]
    fn samples_come_back_to_their_tags_narrow_and_wide() {
        let mut log = SampleLog::default();
        let a = log.vcpu_slots();
        let b = log.vcpu_slots();
        let wide_ns = 5_000_000_000;

        log.push(a, true, 7);
        log.push(b, false, wide_ns);
        log.push(a, true, u64::from(u32::MAX));
        log.push(b, false, 0);
        let slots = log.into_slots();

        assert_eq!(tag_values(&slots, 0..1), vec![7, u64::from(u32::MAX)]);
        assert!(tag_values(&slots, 1..3).is_empty());
        assert_eq!(tag_values(&slots, 3..4), vec![0, wide_ns]);
        assert_eq!(slots.vcpu_distributions(b).1.max, Some(wide_ns));
        assert_eq!(slots.vcpu_distributions(a).0.min, Some(7));
        assert_eq!(
            slots.pooled_wakeups_sorted(&[a, b]),
            vec![7, u64::from(u32::MAX)]
        );
    }

    #[test]
    fn tags_past_sixteen_bits_keep_their_samples() {
        let mut log = SampleLog::default();
        let first = log.vcpu_slots();
        let mut last = first;
        for _ in 0..40_000 {
            last = log.vcpu_slots();
        }
        // Tag 80_001 does not fit a u16: it goes to the side list, its neighbours do not.
        log.push(last, false, 11);
        log.push(last, false, 12);
        log.push(first, false, 5);
        let slots = log.into_slots();

        assert!(last.tag(false) > u32::from(u16::MAX));
        assert_eq!(tag_values(&slots, last.waits()), vec![11, 12]);
        assert_eq!(tag_values(&slots, first.waits()), vec![5]);
        assert_eq!(slots.vcpu_distributions(last).1.sum, 23);
        assert_eq!(slots.vcpu_distributions(last).0.count, 0);
    }

    #[test]
    fn grouping_spans_several_chunks() {
        let mut log = SampleLog::default();
        let vcpus: Vec<_> = (0..3).map(|_| log.vcpu_slots()).collect();
        let n = super::SPLIT_CHUNK_SAMPLES * 2 + 5;
        for i in 0..n {
            log.push(vcpus[i % 3], false, u64::try_from(i).expect("fits"));
        }
        let grouped = log.into_slots();

        for (k, s) in vcpus.iter().enumerate() {
            let values = tag_values(&grouped, s.waits());
            let want: Vec<u64> = (0..n)
                .filter(|i| i % 3 == k)
                .map(|i| u64::try_from(i).expect("fits"))
                .collect();
            assert_eq!(values, want);
        }
    }
}
