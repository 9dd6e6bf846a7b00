//! The latency samples of a host's vCPUs (`specs/metrics.md` §1.2: wakeup latency and
//! runqueue wait), kept in one append-only log per host until the end of the run.
//!
//! Each vCPU owns two sample slots (one per metric). A sample is appended as one `u64`
//! word, `slot << 32 | value_ns`, when its value fits 32 bits (below 4.29 s), else as a
//! `(slot, value_ns)` pair in a side list. One sequential log costs less per sample than
//! a growing vector per vCPU: every append lands next to the previous one, where 512
//! per-vCPU tails each missed the cache (about 2% of `bench-64x512`).
//!
//! # Invariants
//! - Every logged slot was handed out by [`SampleLog::vcpu_slots`].
//! - [`SampleLog::into_slots`] gives each slot exactly the values pushed to it; the order
//!   inside a slot is not kept (every consumer sorts or selects).

/// Slots per vCPU: the wakeup latency's, then the runqueue wait's.
const SLOTS_PER_VCPU: u32 = 2;
/// Log words handed to their slots per step of [`SampleLog::into_slots`], whose freed tail
/// is then returned: the log and its copy by slot never both exist whole (peak memory).
const SPLIT_CHUNK_WORDS: usize = 1 << 20;

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
    /// `slot << 32 | value_ns` for values below 2^32 ns.
    narrow: Vec<u64>,
    /// `(slot, value_ns)` for the larger values.
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
    pub(super) fn push(&mut self, slot: u32, value_ns: u64) {
        debug_assert!(slot < self.slot_count, "sample slot not handed out");
        match u32::try_from(value_ns) {
            Ok(narrow_ns) => self
                .narrow
                .push((u64::from(slot) << 32) | u64::from(narrow_ns)),
            Err(_) => self.wide.push((slot, value_ns)),
        }
    }

    /// Every slot's samples, indexed by slot. The log is handed over from its end in
    /// chunks, each chunk's memory returned before the next.
    pub(super) fn into_slots(mut self) -> Vec<Vec<u64>> {
        let slot_of = |word: u64| usize::try_from(word >> 32).expect("a u32 slot fits usize");
        let index = |slot: u32| usize::try_from(slot).expect("a u32 slot fits usize");
        let mut counts = vec![0usize; index(self.slot_count)];
        for &word in &self.narrow {
            counts[slot_of(word)] += 1;
        }
        for &(slot, _) in &self.wide {
            counts[index(slot)] += 1;
        }
        let mut slots: Vec<Vec<u64>> = counts.into_iter().map(Vec::with_capacity).collect();
        while !self.narrow.is_empty() {
            let keep = self.narrow.len().saturating_sub(SPLIT_CHUNK_WORDS);
            for &word in &self.narrow[keep..] {
                slots[slot_of(word)].push(word & u64::from(u32::MAX));
            }
            self.narrow.truncate(keep);
            self.narrow.shrink_to_fit();
        }
        for (slot, value_ns) in self.wide {
            slots[index(slot)].push(value_ns);
        }
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::SampleLog;

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
        let slots = log.into_slots();

        assert_eq!(slots.len(), 4);
        assert_eq!(slots[0], vec![7, u64::from(u32::MAX)]);
        assert!(slots[1].is_empty() && slots[2].is_empty());
        assert_eq!(slots[3], vec![0, wide_ns]);
    }
}
