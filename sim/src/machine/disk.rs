//! Physical disks: a latency/throughput model per disk class, parallel service channels
//! (queueing), a volatile write cache with flush semantics, and a content model (one
//! 8-byte stamp per 512-byte sector) so what was written reads back.
//!
//! Timing follows `specs/cost-model.md` §4 (`dev.nvme_*`, `dev.optane_*`, `dev.sata_*`,
//! `dev.hdd_*`): a command's service time is its class's 4 KiB latency (read, or cached
//! write acknowledgement) plus the transfer of every byte past the first 4 KiB at the
//! class's bandwidth; `channels` commands are in service at once (so QD16 random reads
//! reach about the table's IOPS); an HDD pays seek + rotation unless the command starts
//! where the previous one ended. A flush waits for the channels to drain, then destages
//! every dirty sector. Values marked E in the cost table are estimates.
//!
//! # Invariants
//! - `cache` holds at most [`CACHE_SECTORS_MAX`] sectors; a write that does not fit is
//!   written through (it pays the destage time and lands on the medium).
//! - Every command completes at or after it was submitted; a channel serves one command
//!   at a time.
//!
//! A host crash ([`Disk::power_loss`]) loses the volatile cache: what a flush destaged (or
//! a write the full cache wrote through) survives, nothing else.
//!
//! Left out on purpose: FUA writes. blkif in Xen 4.17 has no FUA operation; blkback
//! advertises `feature-flush-cache = 1` and `feature-barrier = 0`, so Linux blkfront
//! declares a write cache without FUA and the block layer turns a FUA write into the write
//! and a post-flush (`BLKIF_OP_FLUSH_DISKCACHE` with no segments): on the disk that is a
//! WRITE then a FLUSH, which this model has.

use std::collections::BTreeMap;

use hypervisor_model::platform::{DiskCommand, DiskOp};

/// Most sectors the volatile write cache holds (256 MiB of 512-byte sectors).
pub const CACHE_SECTORS_MAX: usize = 1 << 19;
/// Most volumes one disk holds.
pub const VOLUMES_MAX: usize = 4096;

/// The timing of one disk class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskClass {
    /// 4 KiB random read, QD1, ns.
    pub read_4k_ns: u64,
    /// 4 KiB write acknowledged from the cache, ns.
    pub write_ack_ns: u64,
    /// Destaging one 4 KiB block to the medium, ns.
    pub destage_4k_ns: u64,
    /// Flush command overhead, ns.
    pub flush_ns: u64,
    /// Sequential transfer, bytes per second.
    pub bytes_per_s: u64,
    /// Commands in service at once.
    pub channels: u32,
    /// Seek + rotation for a non-sequential command (HDD), ns; 0 for flash.
    pub position_ns: u64,
}

impl DiskClass {
    /// The class of a scenario `model` name (validated by the loader).
    pub fn of(model: &str) -> DiskClass {
        match model {
            // S: P4800X 8.9 us, 584.8 k IOPS at QD16 => 5 channels; E: write = read,
            // 2.5 GB/s.
            "optane" => DiskClass {
                read_4k_ns: 8_900,
                write_ack_ns: 8_900,
                destage_4k_ns: 8_900,
                flush_ns: 10_000,
                bytes_per_s: 2_500_000_000,
                channels: 5,
                position_ns: 0,
            },
            // E: AHCI on NAND (100 us); 90 k IOPS at QD32 => 9 channels; S: 600 MB/s link.
            "sata-ssd" => DiskClass {
                read_4k_ns: 100_000,
                write_ack_ns: 40_000,
                destage_4k_ns: 100_000,
                flush_ns: 200_000,
                bytes_per_s: 600_000_000,
                channels: 9,
                position_ns: 0,
            },
            // S: 8.2 ms seek + 4.2 ms rotation; E: 180 MB/s (4 KiB in 23 us); the drive's
            // own cache acks writes in 100 us (E).
            "hdd" => DiskClass {
                read_4k_ns: 23_000,
                write_ack_ns: 100_000,
                destage_4k_ns: 12_400_000,
                flush_ns: 1_000_000,
                bytes_per_s: 180_000_000,
                channels: 1,
                position_ns: 12_400_000,
            },
            // "nvme" (the default). S: P3700 77.9 us, 167.2 k IOPS at QD16 => 13
            // channels; E: 20 us cached write, 3 GB/s.
            _ => DiskClass {
                read_4k_ns: 78_000,
                write_ack_ns: 20_000,
                destage_4k_ns: 20_000,
                flush_ns: 50_000,
                bytes_per_s: 3_000_000_000,
                channels: 13,
                position_ns: 0,
            },
        }
    }

    /// Transfer time of `bytes` past the first 4 KiB, rounded up.
    fn extra_transfer_ns(&self, bytes: u64) -> u64 {
        let extra = u128::from(bytes.saturating_sub(4096));
        let ns = (extra * 1_000_000_000).div_ceil(u128::from(self.bytes_per_s.max(1)));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// One physical disk.
#[derive(Debug, Clone)]
pub struct Disk {
    class: DiskClass,
    /// When each channel is next free, ns.
    channel_free_ns: Vec<u64>,
    /// HDD head position: the sector after the last command.
    head: Option<(u32, u64)>,
    /// Volume names, by volume index.
    volumes: Vec<String>,
    /// Durable contents by (volume, sector).
    medium: BTreeMap<(u32, u64), u64>,
    /// Volatile write cache by (volume, sector): written, not yet flushed.
    cache: BTreeMap<(u32, u64), u64>,
}

/// A command's outcome: when it completes, and what a READ returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Completion time, ns.
    pub done_ns: u64,
    /// READ: one stamp per sector.
    pub data: Vec<u64>,
}

impl Disk {
    /// An empty disk of `class`.
    pub fn new(class: DiskClass) -> Disk {
        let channels = usize::try_from(class.channels.max(1)).unwrap_or(1);
        Disk {
            class,
            channel_free_ns: vec![0; channels],
            head: None,
            volumes: Vec::new(),
            medium: BTreeMap::new(),
            cache: BTreeMap::new(),
        }
    }

    /// The index of volume `name`, added on first use (`None` past [`VOLUMES_MAX`]).
    pub fn volume(&mut self, name: &str) -> Option<u32> {
        if let Some(index) = self.volumes.iter().position(|v| v == name) {
            return u32::try_from(index).ok();
        }
        if self.volumes.len() >= VOLUMES_MAX {
            return None;
        }
        self.volumes.push(name.to_string());
        u32::try_from(self.volumes.len() - 1).ok()
    }

    /// Sectors written and not flushed yet.
    pub fn dirty_sectors(&self) -> usize {
        self.cache.len()
    }

    /// Serves `cmd` on `volume`, submitted at `now_ns`. A READ fills its stamps into
    /// `buffer` (empty; a spare one's capacity spares an allocation), which comes back
    /// as the completion's `data` (still empty for the other commands).
    pub fn submit(
        &mut self,
        volume: u32,
        cmd: &DiskCommand,
        now_ns: u64,
        buffer: Vec<u64>,
    ) -> Completion {
        let (channel, free_ns) = self.earliest_channel();
        let mut start_ns = now_ns.max(free_ns);
        let bytes = u64::from(cmd.sectors) * 512;
        debug_assert!(buffer.is_empty(), "a disk's data buffer comes empty");
        let mut data = buffer;
        let service_ns = match cmd.op {
            DiskOp::Read => {
                self.read_stamps(volume, cmd.sector, cmd.sectors, &mut data);
                self.class.read_4k_ns + self.position_ns(volume, cmd)
            }
            DiskOp::Write => self.write(volume, cmd),
            DiskOp::Discard => {
                for i in 0..u64::from(cmd.sectors) {
                    self.cache.remove(&(volume, cmd.sector + i));
                    self.medium.remove(&(volume, cmd.sector + i));
                }
                self.class.write_ack_ns
            }
            DiskOp::Flush => {
                // The flush waits for every command in service, then destages.
                start_ns = start_ns.max(self.channel_free_ns.iter().copied().max().unwrap_or(0));
                self.flush_ns()
            }
        };
        let transfer_ns = match cmd.op {
            DiskOp::Read | DiskOp::Write => self.class.extra_transfer_ns(bytes),
            DiskOp::Flush | DiskOp::Discard => 0,
        };
        let done_ns = start_ns + service_ns + transfer_ns;
        self.channel_free_ns[channel] = done_ns;
        if cmd.op == DiskOp::Flush {
            self.channel_free_ns.iter_mut().for_each(|c| *c = done_ns);
        }
        self.head = Some((volume, cmd.sector + u64::from(cmd.sectors)));
        assert!(
            done_ns >= now_ns,
            "a command completes after it is submitted"
        );
        Completion { done_ns, data }
    }

    fn earliest_channel(&self) -> (usize, u64) {
        let mut best = (0, u64::MAX);
        for (index, free_ns) in self.channel_free_ns.iter().enumerate() {
            if *free_ns < best.1 {
                best = (index, *free_ns);
            }
        }
        best
    }

    /// What a read of `sector` of `volume` returns now: the cached stamp, else the
    /// medium's (0: never written).
    pub fn stamp(&self, volume: u32, sector: u64) -> u64 {
        self.read_stamp(volume, sector)
    }

    /// What a read of `sectors` from `sector` of `volume` returns now, one stamp each,
    /// appended to `out` (empty: the caller's buffer, reused from read to read, where a
    /// fresh `vec![0; n]` was a zeroed allocation per read).
    fn read_stamps(&self, volume: u32, sector: u64, sectors: u32, out: &mut Vec<u64>) {
        if self.cache.is_empty() && self.medium.is_empty() {
            // Nothing was ever written (the benches' read-only disks): all zeros, without
            // two look-ups per sector.
            let count = usize::try_from(sectors).unwrap_or(0);
            out.resize(count, 0);
            return;
        }
        out.extend((0..u64::from(sectors)).map(|i| self.read_stamp(volume, sector + i)));
    }

    fn read_stamp(&self, volume: u32, sector: u64) -> u64 {
        let key = (volume, sector);
        self.cache
            .get(&key)
            .or_else(|| self.medium.get(&key))
            .copied()
            .unwrap_or(0)
    }

    /// HDD: seek + rotation unless the command starts where the last one ended.
    fn position_ns(&self, volume: u32, cmd: &DiskCommand) -> u64 {
        if self.head == Some((volume, cmd.sector)) {
            0
        } else {
            self.class.position_ns
        }
    }

    /// A write into the cache (or through it when full); its service time.
    fn write(&mut self, volume: u32, cmd: &DiskCommand) -> u64 {
        let sectors = usize::try_from(cmd.sectors).unwrap_or(usize::MAX);
        let fits = self.cache.len().saturating_add(sectors) <= CACHE_SECTORS_MAX;
        for (i, stamp) in cmd.data.iter().enumerate() {
            let key = (volume, cmd.sector + i as u64);
            if fits {
                self.cache.insert(key, *stamp);
            } else {
                self.cache.remove(&key);
                self.medium.insert(key, *stamp);
            }
        }
        if fits {
            self.class.write_ack_ns
        } else {
            self.class.destage_4k_ns + self.position_ns(volume, cmd)
        }
    }

    /// The host lost power: the volatile cache is gone, the medium stays; no command is
    /// in service any more.
    pub fn power_loss(&mut self) {
        self.cache.clear();
        self.head = None;
        self.channel_free_ns.iter_mut().for_each(|free| *free = 0);
    }

    /// Destages the cache; the flush's service time.
    fn flush_ns(&mut self) -> u64 {
        let dirty = std::mem::take(&mut self.cache);
        let blocks = u64::try_from(dirty.len().div_ceil(8)).unwrap_or(u64::MAX);
        self.medium.extend(dirty);
        let channels = u64::from(self.class.channels.max(1));
        self.class.flush_ns + blocks.saturating_mul(self.class.destage_4k_ns) / channels
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::ids::DomId;
    use hypervisor_model::platform::{DiskCommand, DiskOp};

    use super::{Disk, DiskClass};

    fn cmd(op: DiskOp, sector: u64, sectors: u32, stamp: u64) -> DiskCommand {
        let data = match op {
            DiskOp::Write => vec![stamp; sectors as usize],
            _ => Vec::new(),
        };
        DiskCommand {
            tag: 0,
            dom: DomId::DOM0,
            vdev: 51712,
            op,
            sector,
            sectors,
            data,
        }
    }

    #[test]
    fn power_loss_drops_unflushed_writes_and_keeps_flushed_ones() {
        // Sectors 0..8 are written and flushed; 64..72 written after the flush.
        let mut disk = Disk::new(DiskClass::of("nvme"));
        disk.submit(0, &cmd(DiskOp::Write, 0, 8, 11), 0, Vec::new());
        disk.submit(0, &cmd(DiskOp::Flush, 0, 0, 0), 100_000, Vec::new());
        disk.submit(0, &cmd(DiskOp::Write, 64, 8, 22), 200_000, Vec::new());
        disk.power_loss();
        assert_eq!(disk.stamp(0, 0), 11);
        assert_eq!(disk.stamp(0, 7), 11);
        assert_eq!(disk.stamp(0, 64), 0);
        assert_eq!(disk.dirty_sectors(), 0);
    }

    #[test]
    fn nvme_4k_read_takes_the_qd1_latency() {
        let mut disk = Disk::new(DiskClass::of("nvme"));
        let done = disk.submit(0, &cmd(DiskOp::Read, 0, 8, 0), 1_000, Vec::new());
        assert_eq!(done.done_ns, 1_000 + 78_000);
    }

    #[test]
    fn fourteenth_concurrent_read_waits_for_a_channel() {
        // 13 channels: the 14th read at t=0 starts when the first ends (78 us).
        let mut disk = Disk::new(DiskClass::of("nvme"));
        for _ in 0..13 {
            disk.submit(0, &cmd(DiskOp::Read, 0, 8, 0), 0, Vec::new());
        }
        assert_eq!(
            disk.submit(0, &cmd(DiskOp::Read, 0, 8, 0), 0, Vec::new())
                .done_ns,
            156_000
        );
    }

    #[test]
    fn written_data_reads_back_before_and_after_a_flush() {
        let mut disk = Disk::new(DiskClass::of("optane"));
        disk.submit(0, &cmd(DiskOp::Write, 16, 8, 42), 0, Vec::new());
        assert_eq!(disk.dirty_sectors(), 8);
        assert_eq!(
            disk.submit(0, &cmd(DiskOp::Read, 16, 8, 0), 0, Vec::new())
                .data,
            vec![42; 8]
        );
        disk.submit(0, &cmd(DiskOp::Flush, 0, 0, 0), 0, Vec::new());
        assert_eq!(disk.dirty_sectors(), 0);
        assert_eq!(
            disk.submit(0, &cmd(DiskOp::Read, 16, 8, 0), 0, Vec::new())
                .data,
            vec![42; 8]
        );
    }

    #[test]
    fn a_read_into_a_reused_buffer_returns_what_a_fresh_one_does() {
        let mut disk = Disk::new(DiskClass::of("nvme"));
        let mut reused = disk
            .submit(0, &cmd(DiskOp::Read, 0, 16, 0), 0, Vec::new())
            .data;
        reused.clear();
        disk.submit(0, &cmd(DiskOp::Write, 8, 4, 9), 0, Vec::new());

        let through_reused = disk.submit(0, &cmd(DiskOp::Read, 6, 8, 0), 0, reused).data;
        let through_fresh = disk
            .submit(0, &cmd(DiskOp::Read, 6, 8, 0), 0, Vec::new())
            .data;

        assert_eq!(through_reused, through_fresh);
        assert_eq!(through_reused, vec![0, 0, 9, 9, 9, 9, 0, 0]);
    }

    #[test]
    fn volumes_keep_their_contents_apart() {
        let mut disk = Disk::new(DiskClass::of("nvme"));
        disk.submit(1, &cmd(DiskOp::Write, 0, 8, 7), 0, Vec::new());
        assert_eq!(
            disk.submit(2, &cmd(DiskOp::Read, 0, 8, 0), 0, Vec::new())
                .data,
            vec![0; 8]
        );
    }

    #[test]
    fn read_of_a_never_written_disk_matches_the_per_sector_stamps() {
        // The empty-disk shortcut against the per-sector look-ups it skips (17 sectors:
        // an odd count past two pages).
        let disk = Disk::new(DiskClass::of("nvme"));
        let per_sector: Vec<u64> = (0..17).map(|i| disk.read_stamp(3, 100 + i)).collect();

        let mut shortcut = Vec::new();
        disk.read_stamps(3, 100, 17, &mut shortcut);

        assert_eq!(shortcut, per_sector);
        assert_eq!(shortcut.len(), 17);
    }

    #[test]
    fn hdd_sequential_read_skips_the_seek() {
        let mut disk = Disk::new(DiskClass::of("hdd"));
        let first = disk
            .submit(0, &cmd(DiskOp::Read, 0, 8, 0), 0, Vec::new())
            .done_ns;
        let second = disk
            .submit(0, &cmd(DiskOp::Read, 8, 8, 0), first, Vec::new())
            .done_ns;
        assert_eq!(first, 12_400_000 + 23_000);
        assert_eq!(second, first + 23_000);
    }

    #[test]
    fn flush_waits_for_reads_in_service() {
        let mut disk = Disk::new(DiskClass::of("nvme"));
        disk.submit(0, &cmd(DiskOp::Read, 0, 8, 0), 0, Vec::new());
        let flush = disk.submit(0, &cmd(DiskOp::Flush, 0, 0, 0), 0, Vec::new());
        assert_eq!(flush.done_ns, 78_000 + 50_000);
    }
}
