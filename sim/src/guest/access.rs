//! The guest memory access stream: what a workload with a `memory` sub-table touches of
//! its working set, sampled per run slice, for the simulated EPT to translate.
//!
//! Follows spec `scenario.md` §6.1 (`working_set`, `hot_set`, `hot_ppm`, `dirty_rate`)
//! and `memory-iommu-migration.md` §2.4/§2.5 (a write to a write-protected page is what
//! log-dirty counts).
//!
//! Model: the working set is the guest's lowest `W` frames (at most what the guest holds:
//! the balloon driver gives back the highest), its hot part the lowest `hot_set` of them.
//! Every millisecond (`run::ACCESS_TICK_NS`) each running vCPU of the domain makes
//! [`READS_PER_SLICE`] reads and the writes `dirty_rate` earned since the domain's last
//! slice (at most [`WRITES_PER_SLICE_MAX`]); each access picks the hot part with
//! probability `hot_ppm` / 10^6, then a frame uniformly within the part. A read that
//! brings in a page is followed by the page's first write only if one is drawn, so a
//! workload that writes little leaves populated pages the PoD sweep may reclaim.
//!
//! # Invariants
//! - At most `READS_PER_SLICE + WRITES_PER_SLICE_MAX` accesses per slice, all in `[0, W)`.
//! - A domain without a `memory` sub-table (or with `W = 0`), or without HAP, makes none.
//!
//! xensim differs: accesses are sampled, not every access a real guest makes (touching
//! every 4 KiB page each slice would cost more than it shows); `dirty_rate` accrues over
//! virtual time between the domain's slices, not over run time; accesses carry no guest
//! linear address.

use std::collections::BTreeMap;

use hypervisor_model::ids::{DomId, Gfn};

use crate::rng::{RngStreams, Stream};
use crate::scenario::model::MemoryWorkload;

/// Reads sampled per slice.
pub const READS_PER_SLICE: u64 = 4;
/// Writes per slice at most (a higher `dirty_rate` loses the excess).
pub const WRITES_PER_SLICE_MAX: u64 = 64;
const NS_PER_S: u128 = 1_000_000_000;
const PPM: u64 = 1_000_000;

/// One sampled access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The guest frame.
    pub gfn: Gfn,
    /// A write (else a read).
    pub write: bool,
}

#[derive(Debug)]
struct DomStream {
    generation: u32,
    spec: MemoryWorkload,
    rng: Stream,
    last_ns: u64,
    /// Pages·ns of `dirty_rate` earned and not yet written.
    write_credit: u128,
}

/// Every domain's access stream on one host.
#[derive(Debug, Default)]
pub struct AccessStreams {
    doms: BTreeMap<DomId, DomStream>,
    next_generation: u32,
}

impl AccessStreams {
    /// `dom` (named `name`) starts at `now_ns` with `memory`; returns the stream's
    /// generation (its ticks carry it), or `None` if the domain makes no accesses.
    pub fn register(
        &mut self,
        dom: DomId,
        name: &str,
        streams: &RngStreams,
        memory: Option<MemoryWorkload>,
        now_ns: u64,
    ) -> Option<u32> {
        self.doms.remove(&dom);
        let spec = memory.filter(|m| m.working_set_pages() > 0)?;
        let rng = streams.stream(&format!("memory.{name}.access"));
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let stream = DomStream {
            generation,
            spec,
            rng,
            last_ns: now_ns,
            write_credit: 0,
        };
        self.doms.insert(dom, stream);
        Some(generation)
    }

    /// True if `generation` is the live stream of `dom`.
    pub fn is_current(&self, dom: DomId, generation: u32) -> bool {
        self.doms
            .get(&dom)
            .is_some_and(|s| s.generation == generation)
    }

    /// The domain is gone.
    pub fn forget(&mut self, dom: DomId) {
        self.doms.remove(&dom);
    }

    /// True if `dom` makes accesses.
    pub fn knows(&self, dom: DomId) -> bool {
        self.doms.contains_key(&dom)
    }

    /// The accesses of the slice of `dom` ending at `now_ns`, within the `guest_pages`
    /// frames the guest kernel holds (its physmap less what it ballooned out).
    pub fn slice(&mut self, dom: DomId, now_ns: u64, guest_pages: u64) -> Vec<Access> {
        let Some(s) = self.doms.get_mut(&dom) else {
            return Vec::new();
        };
        let elapsed_ns = now_ns.saturating_sub(s.last_ns);
        s.last_ns = now_ns;
        let earned = u128::from(s.spec.dirty_pages_per_s) * u128::from(elapsed_ns);
        s.write_credit = s.write_credit.saturating_add(earned);
        let writes = u64::try_from(s.write_credit / NS_PER_S)
            .unwrap_or(u64::MAX)
            .min(WRITES_PER_SLICE_MAX);
        s.write_credit = s.write_credit.saturating_sub(u128::from(writes) * NS_PER_S);
        // What the cap dropped is lost, not banked.
        s.write_credit = s.write_credit.min(NS_PER_S);
        let mut out = Vec::with_capacity(usize::try_from(READS_PER_SLICE + writes).unwrap_or(0));
        if guest_pages == 0 {
            return out;
        }
        for index in 0..READS_PER_SLICE + writes {
            let gfn = Gfn::new(pick(&mut s.rng, &s.spec, guest_pages));
            out.push(Access {
                gfn,
                write: index >= READS_PER_SLICE,
            });
        }
        debug_assert!(out.len() as u64 <= READS_PER_SLICE + WRITES_PER_SLICE_MAX);
        out
    }
}

/// A frame of the working set (at most `guest_pages`): the hot part with probability
/// `hot_ppm`.
fn pick(rng: &mut Stream, spec: &MemoryWorkload, guest_pages: u64) -> u64 {
    let w = spec.working_set_pages().min(guest_pages);
    let hot = spec.hot_set_pages().clamp(1, w);
    let in_hot = rng.uniform_u64_inclusive(0, PPM - 1) < u64::from(spec.hot_ppm);
    if in_hot || hot == w {
        rng.uniform_u64_inclusive(0, hot - 1)
    } else {
        rng.uniform_u64_inclusive(hot, w - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(working_set_pages: u64, dirty_pages_per_s: u64) -> MemoryWorkload {
        MemoryWorkload {
            working_set_bytes: working_set_pages * 4096,
            page_cache_bytes: 0,
            dirty_pages_per_s,
            hot_ppm: 1_000_000,
            hot_set_bytes: working_set_pages * 4096,
            floor_ppm: 500_000,
        }
    }

    fn d1() -> DomId {
        DomId::new(1).expect("domid")
    }

    #[test]
    fn domain_without_memory_table_makes_no_accesses() {
        let mut a = AccessStreams::default();
        assert_eq!(a.register(d1(), "g", &RngStreams::new(1), None, 0), None);
        assert!(a.slice(d1(), 1_000_000, 256).is_empty());
    }

    #[test]
    fn dirty_rate_of_1000_pages_per_s_writes_10_in_10_ms() {
        let mut a = AccessStreams::default();
        let _generation = a.register(d1(), "g", &RngStreams::new(1), Some(spec(256, 1000)), 0);
        let writes = a
            .slice(d1(), 10_000_000, 256)
            .iter()
            .filter(|x| x.write)
            .count();
        assert_eq!(writes, 10);
    }

    #[test]
    fn accesses_stay_inside_the_working_set() {
        let mut a = AccessStreams::default();
        let _generation = a.register(d1(), "g", &RngStreams::new(7), Some(spec(16, 100_000)), 0);
        let accesses = a.slice(d1(), 1_000_000_000, 256);
        assert_eq!(
            accesses.len() as u64,
            READS_PER_SLICE + WRITES_PER_SLICE_MAX
        );
        assert!(accesses.iter().all(|x| x.gfn.raw() < 16));
    }
}
