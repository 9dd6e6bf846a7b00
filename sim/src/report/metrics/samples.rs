//! The latency samples of a host's vCPUs (`specs/metrics.md` §1.2: wakeup latency and
//! runqueue wait), kept in one append-only log per host until the end of the run, then
//! grouped by slot for the distributions.
//!
//! Each vCPU owns two sample slots (one per metric). A sample whose value fits 32 bits
//! (below 4.29 s) and whose slot fits 16 bits is appended as a `u32` value and a `u16` slot
//! to two parallel columns (6 bytes a sample), any other as a `(slot, value_ns)` pair in a
//! side list. One sequential log costs less per sample than a growing vector per vCPU:
//! every append lands next to the previous one, where 512 per-vCPU tails each missed the
//! cache (about 2% of `bench-64x512`).
//!
//! At the end, [`SampleLog::into_slots`] moves the narrow values into one array grouped by
//! slot (a counting sort, 4 bytes a sample), handing the log over from its end in chunks
//! whose memory is returned as it goes: the log and the grouped copy never both exist whole.
//!
//! # Invariants
//! - Every logged slot was handed out by [`SampleLog::vcpu_slots`].
//! - [`SampleLog::into_slots`] gives each slot exactly the values pushed to it; the order
//!   inside a slot is not kept (every consumer sorts or selects).

use std::collections::BTreeMap;

use super::dist::Distribution;

/// Slots per vCPU: the wakeup latency's, then the runqueue wait's.
const SLOTS_PER_VCPU: u32 = 2;
/// Log entries handed to their slots per step of [`SampleLog::into_slots`], whose freed
/// tail is then returned (peak memory).
const SPLIT_CHUNK_SAMPLES: usize = 1 << 20;

/// The two sample slots of one vCPU.
#[derive(Clone, Copy, Debug)]
pub(super) struct VcpuSlots {
    wakeup: u32,
}

impl VcpuSlots {
    /// Slot of the wakeup latency samples.
    pub(super) fn wakeup(self) -> u32 {
        self.wakeup
    }

    /// Slot of the runqueue wait samples.
    pub(super) fn runq_wait(self) -> u32 {
        self.wakeup + 1
    }
}

/// One host's latency samples.
#[derive(Debug, Default)]
pub(super) struct SampleLog {
    /// Values below 2^32 ns of slots below 2^16; `narrow_slots[i]` is the slot of
    /// `narrow_values[i]`.
    narrow_values: Vec<u32>,
    narrow_slots: Vec<u16>,
    /// `(slot, value_ns)` for the others.
    wide: Vec<(u32, u64)>,
    /// Slots handed out so far.
    slot_count: u32,
}

impl SampleLog {
    /// The slots of a new vCPU.
    pub(super) fn vcpu_slots(&mut self) -> VcpuSlots {
        let wakeup = self.slot_count;
        self.slot_count = wakeup
            .checked_add(SLOTS_PER_VCPU)
            .expect("metrics: fewer than 2^31 vCPUs per host");
        VcpuSlots { wakeup }
    }

    /// Appends `value_ns` to `slot`.
    #[inline]
    pub(super) fn push(&mut self, slot: u32, value_ns: u64) {
        debug_assert!(slot < self.slot_count, "sample slot not handed out");
        match (u16::try_from(slot), u32::try_from(value_ns)) {
            (Ok(narrow_slot), Ok(narrow_ns)) => {
                self.narrow_values.push(narrow_ns);
                self.narrow_slots.push(narrow_slot);
            }
            _ => self.wide.push((slot, value_ns)),
        }
    }

    /// Every slot's samples, grouped by slot. The log is handed over from its end in
    /// chunks, each chunk's memory returned before the next.
    pub(super) fn into_slots(mut self) -> SlotSamples {
        debug_assert_eq!(self.narrow_values.len(), self.narrow_slots.len());
        let narrow_slot_count = self.slot_count.min(u32::from(u16::MAX) + 1);
        let mut ends = vec![0usize; usize::try_from(narrow_slot_count).unwrap_or(usize::MAX)];
        for &slot in &self.narrow_slots {
            ends[usize::from(slot)] += 1;
        }
        let mut total = 0;
        for end in &mut ends {
            total += *end;
            *end = total;
        }
        // Each slot is filled from its end down; `cursors[s]` ends as slot `s`'s start.
        let mut cursors = ends.clone();
        let mut values = vec![0u32; total];
        while !self.narrow_slots.is_empty() {
            let keep = self.narrow_slots.len().saturating_sub(SPLIT_CHUNK_SAMPLES);
            for (&slot, &value) in self.narrow_slots[keep..]
                .iter()
                .zip(&self.narrow_values[keep..])
            {
                let cursor = &mut cursors[usize::from(slot)];
                *cursor -= 1;
                values[*cursor] = value;
            }
            self.narrow_slots.truncate(keep);
            self.narrow_slots.shrink_to_fit();
            self.narrow_values.truncate(keep);
            self.narrow_values.shrink_to_fit();
        }
        let mut wide: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (slot, value_ns) in self.wide {
            wide.entry(slot).or_default().push(value_ns);
        }
        SlotSamples { values, ends, wide }
    }
}

/// Every slot's samples at the end of the run: the narrow values of slot `s` are
/// `values[ends[s - 1]..ends[s]]` (from 0 for the first), its other values in `wide`.
#[derive(Debug, Default)]
pub(super) struct SlotSamples {
    values: Vec<u32>,
    ends: Vec<usize>,
    wide: BTreeMap<u32, Vec<u64>>,
}

impl SlotSamples {
    /// The narrow values of `slot` (empty past the last narrow slot).
    fn narrow_mut(&mut self, slot: u32) -> &mut [u32] {
        let Some(index) = usize::try_from(slot).ok().filter(|&i| i < self.ends.len()) else {
            return &mut [];
        };
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        &mut self.values[start..self.ends[index]]
    }

    /// Appends every sample of `slot` to `out` (in no particular order).
    fn extend_into(&mut self, slot: u32, out: &mut Vec<u64>) {
        out.extend(self.narrow_mut(slot).iter().map(|&v| u64::from(v)));
        if let Some(wide) = self.wide.get(&slot) {
            out.extend_from_slice(wide);
        }
    }

    /// True if some sample of one of `slots` is not narrow.
    fn any_wide(&self, slots: &[u32]) -> bool {
        !self.wide.is_empty() && slots.iter().any(|slot| self.wide.contains_key(slot))
    }

    /// The samples of `slots` pooled, ascending.
    pub(super) fn pooled_sorted(&mut self, slots: &[u32]) -> Vec<u64> {
        if self.any_wide(slots) {
            let mut all = Vec::new();
            for &slot in slots {
                self.extend_into(slot, &mut all);
            }
            all.sort_unstable();
            return all;
        }
        let mut narrow = self.pooled_narrow(slots);
        radix_sort(&mut narrow);
        narrow.into_iter().map(u64::from).collect()
    }

    /// The distribution of the samples of `slots` pooled; `parts` are the distributions of
    /// the slots one by one (their extremes and sums are the pool's).
    pub(super) fn pooled_distribution(
        &mut self,
        slots: &[u32],
        parts: &[&Distribution],
        metric: &str,
    ) -> Distribution {
        debug_assert_eq!(slots.len(), parts.len());
        if self.any_wide(slots) {
            let mut all = Vec::new();
            for &slot in slots {
                self.extend_into(slot, &mut all);
            }
            return Distribution::from_unordered(&mut all, metric);
        }
        Distribution::from_narrow_parts(&self.pooled_narrow(slots), parts, metric)
    }

    fn pooled_narrow(&mut self, slots: &[u32]) -> Vec<u32> {
        let mut narrow = Vec::new();
        for &slot in slots {
            narrow.extend_from_slice(self.narrow_mut(slot));
        }
        narrow
    }

    /// The distribution of `slot`'s samples (the narrow ones stay in place).
    pub(super) fn distribution(&mut self, slot: u32, metric: &str) -> Distribution {
        if self.wide.contains_key(&slot) {
            let mut all = Vec::new();
            self.extend_into(slot, &mut all);
            return Distribution::from_unordered(&mut all, metric);
        }
        Distribution::from_narrow(self.narrow_mut(slot), metric)
    }
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
    use super::SampleLog;

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

    #[test]
    fn pooled_samples_are_sorted_with_or_without_wide_ones() {
        let mut log = SampleLog::default();
        let a = log.vcpu_slots();
        let b = log.vcpu_slots();
        for (slot, value) in [(a.wakeup(), 30), (b.wakeup(), 10), (a.wakeup(), 20)] {
            log.push(slot, value);
        }
        log.push(b.runq_wait(), 5_000_000_000);
        log.push(a.runq_wait(), 3);
        let mut slots = log.into_slots();

        let wakeups = slots.pooled_sorted(&[a.wakeup(), b.wakeup()]);
        let waits = slots.pooled_sorted(&[a.runq_wait(), b.runq_wait()]);
        let wait_slots = [a.runq_wait(), b.runq_wait()];
        let wait_parts = wait_slots.map(|slot| slots.distribution(slot, "test"));
        let wait_dist = slots.pooled_distribution(&wait_slots, &wait_parts.each_ref(), "test");
        let wakeup_part = slots.distribution(a.wakeup(), "test");
        let wakeup_dist = slots.pooled_distribution(&[a.wakeup()], &[&wakeup_part], "test");

        assert_eq!(wakeups, vec![10, 20, 30]);
        assert_eq!(waits, vec![3, 5_000_000_000]);
        assert_eq!(wait_dist.max, Some(5_000_000_000));
        assert_eq!(wakeup_dist.sum, 50);
    }

    fn slot_values(samples: &mut super::SlotSamples, slot: u32) -> Vec<u64> {
        let mut out = Vec::new();
        samples.extend_into(slot, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn samples_come_back_to_their_slots_narrow_and_wide() {
        let mut log = SampleLog::default();
        let a = log.vcpu_slots();
        let b = log.vcpu_slots();
        let wide_ns = 5_000_000_000;

        log.push(a.wakeup(), 7);
        log.push(b.runq_wait(), wide_ns);
        log.push(a.wakeup(), u64::from(u32::MAX));
        log.push(b.runq_wait(), 0);
        let mut slots = log.into_slots();

        assert_eq!(slot_values(&mut slots, 0), vec![7, u64::from(u32::MAX)]);
        assert!(slot_values(&mut slots, 1).is_empty());
        assert!(slot_values(&mut slots, 2).is_empty());
        assert_eq!(slot_values(&mut slots, 3), vec![0, wide_ns]);
        assert_eq!(slots.distribution(3, "test").max, Some(wide_ns));
        assert_eq!(slots.distribution(0, "test").min, Some(7));
    }

    #[test]
    fn slots_past_sixteen_bits_keep_their_samples() {
        let mut log = SampleLog::default();
        let mut last = log.vcpu_slots();
        for _ in 0..40_000 {
            last = log.vcpu_slots();
        }
        // Slot 80_001 does not fit a u16: it goes to the side list, its neighbours do not.
        log.push(last.runq_wait(), 11);
        log.push(last.runq_wait(), 12);
        log.push(1, 5);
        let mut slots = log.into_slots();

        assert!(last.runq_wait() > u32::from(u16::MAX));
        assert_eq!(slot_values(&mut slots, last.runq_wait()), vec![11, 12]);
        assert_eq!(slot_values(&mut slots, 1), vec![5]);
        assert_eq!(slots.distribution(last.runq_wait(), "test").sum, 23);
    }

    #[test]
    fn grouping_spans_several_chunks() {
        let mut log = SampleLog::default();
        let slots: Vec<_> = (0..3).map(|_| log.vcpu_slots()).collect();
        let n = super::SPLIT_CHUNK_SAMPLES * 2 + 5;
        for i in 0..n {
            let slot = slots[i % 3].runq_wait();
            log.push(slot, u64::try_from(i).expect("fits"));
        }
        let mut grouped = log.into_slots();

        for (k, s) in slots.iter().enumerate() {
            let values = slot_values(&mut grouped, s.runq_wait());
            let want: Vec<u64> = (0..n)
                .filter(|i| i % 3 == k)
                .map(|i| u64::try_from(i).expect("fits"))
                .collect();
            assert_eq!(values, want);
        }
    }
}
