//! The durability check of a run's vbd writes: a write the guest saw acknowledged with
//! `BLKIF_RSP_OKAY` is lost if, at the end, some sector it wrote holds neither its stamp
//! nor the stamp of a write of that sector submitted at or after it (acknowledged or still
//! in flight, which may have overwritten it). The disk's content (cache, then medium) is
//! what a reader would see; on a host crash the cache is gone first.
//!
//! Used by the run's end for `io.<dev>.lost_acked_write_count` (`specs/metrics.md` §2.1
//! style: a count, 0 when every acknowledged write survived) and
//! `lost_flushed_write_count`: the lost ones a completed flush covered (submitted at or
//! after the write; the guest model puts a batch's flush after its writes on the ring).
//! A host crash may lose acknowledged writes, never flushed ones.
//!
//! # Invariants
//! - Only acknowledged writes (`ok && write`) can be lost; reads and failed writes never
//!   count; `lost_flushed <= lost`.

use std::collections::BTreeMap;

use hypervisor_model::io::vbd::{sector_stamp, GuestIo};

use crate::guest::io_log::DiskWrite;

/// Most sectors the check looks at per vbd (the rest are not checked: the bound keeps the
/// end of a long run cheap). 64 Mi sectors = 32 GiB of writes.
pub const CHECKED_SECTORS_MAX: u64 = 1 << 26;

/// What the check found for one vbd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Acknowledged writes whose data is gone.
    pub acked: u64,
    /// Of those, the ones a completed flush covered.
    pub flushed: u64,
}

/// Of the `acked` writes of one vbd (acknowledged with `BLKIF_RSP_OKAY`, in completion
/// order), those whose data is not on the disk, given the writes still `pending`,
/// `last_flush_ns` (the submit time of the vbd's latest successful flush) and `stamp_at`,
/// the disk's stamp of a sector.
pub fn lost_acked_writes(
    acked: &[DiskWrite],
    last_flush_ns: Option<u64>,
    pending: &[(u64, GuestIo)],
    stamp_at: impl Fn(u64) -> u64,
) -> Lost {
    let later = pending.iter().map(|(submit_ns, io)| DiskWrite {
        submit_ns: *submit_ns,
        sector: io.sector,
        sectors: io.sectors,
        seed: io.seed,
    });
    // Every write by sector, for the "written again at or after" test.
    let mut by_sector: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut budget = CHECKED_SECTORS_MAX;
    for w in acked.iter().copied().chain(later) {
        for sector in w.sector..w.sector + u64::from(w.sectors) {
            if budget == 0 {
                break;
            }
            budget -= 1;
            let stamp = sector_stamp(w.seed, sector);
            by_sector
                .entry(sector)
                .or_default()
                .push((w.submit_ns, stamp));
        }
    }
    let survived = |w: &DiskWrite, sector: u64| {
        let found = stamp_at(sector);
        let Some(writes) = by_sector.get(&sector) else {
            return true; // Past the check's bound.
        };
        writes
            .iter()
            .any(|&(submit_ns, stamp)| stamp == found && submit_ns >= w.submit_ns)
    };
    let lost: Vec<&DiskWrite> = acked
        .iter()
        .filter(|w| {
            let sectors = w.sector..w.sector + u64::from(w.sectors);
            !sectors.into_iter().all(|s| survived(w, s))
        })
        .collect();
    let flushed = lost
        .iter()
        .filter(|w| last_flush_ns.is_some_and(|f| f >= w.submit_ns))
        .count();
    let result = Lost {
        acked: lost.len() as u64,
        flushed: flushed as u64,
    };
    debug_assert!(result.flushed <= result.acked);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(submit_ns: u64, sector: u64, seed: u64) -> DiskWrite {
        DiskWrite {
            submit_ns,
            sector,
            seed,
            sectors: 8,
        }
    }

    /// A disk holding exactly what `writes` left, in order.
    fn disk_of(writes: &[&DiskWrite]) -> BTreeMap<u64, u64> {
        let mut disk = BTreeMap::new();
        for w in writes {
            for s in w.sector..w.sector + u64::from(w.sectors) {
                disk.insert(s, sector_stamp(w.seed, s));
            }
        }
        disk
    }

    #[test]
    fn acknowledged_write_on_disk_is_not_lost() {
        let acked = [write(0, 64, 7)];
        let disk = disk_of(&[&acked[0]]);
        let lost = lost_acked_writes(&acked, None, &[], |s| disk.get(&s).copied().unwrap_or(0));
        assert_eq!(lost, Lost::default());
    }

    #[test]
    fn acknowledged_write_missing_from_disk_is_lost() {
        let acked = [write(0, 64, 7)];
        let lost = lost_acked_writes(&acked, None, &[], |_| 0);
        assert_eq!(lost.acked, 1);
    }

    #[test]
    fn write_overwritten_by_a_later_one_is_not_lost() {
        // Both write sectors 64..72; the second (submitted later) is what the disk holds.
        let acked = [write(0, 64, 7), write(100, 64, 9)];
        let disk = disk_of(&[&acked[1]]);
        let lost = lost_acked_writes(&acked, None, &[], |s| disk.get(&s).copied().unwrap_or(0));
        assert_eq!(lost, Lost::default());
    }

    #[test]
    fn later_write_replaced_by_an_earlier_one_is_lost() {
        // The disk holds the older write's data: the newer acknowledged one is gone.
        let acked = [write(0, 64, 7), write(100, 64, 9)];
        let disk = disk_of(&[&acked[0]]);
        let lost = lost_acked_writes(&acked, None, &[], |s| disk.get(&s).copied().unwrap_or(0));
        assert_eq!(lost.acked, 1);
    }

    #[test]
    fn lost_write_a_completed_flush_covered_counts_as_flushed() {
        // The flush (submitted with the write, after it on the ring) completed; the disk
        // still lost the data: that breaks the flush's promise.
        let acked = [write(0, 64, 7)];
        let lost = lost_acked_writes(&acked, Some(0), &[], |_| 0);
        assert_eq!(
            lost,
            Lost {
                acked: 1,
                flushed: 1
            }
        );
    }
}
