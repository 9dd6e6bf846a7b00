//! The `io` workload over a vbd (`specs/scenario.md` §6.1): run `service`, submit
//! `queue_depth` disk I/Os through the guest kernel's blkfront, block until all complete,
//! sleep `think`, repeat; and the I/O records the metrics are computed from
//! (`specs/metrics.md` §2.1: submit `t_s`, ring completion `t_c`, guest sees it `t_g`).
//!
//! [`BlkQueue`] is the blkfront side of one I/O source (building I/Os, the outstanding
//! ones, the records, the driver's console lines), shared with the disk stream
//! (`guest/disk_stream.rs`).
//!
//! Streams (`workload.<domain>.v<index>[.mix<k>].<field>`): `service`, `think`, `size`
//! (bytes per I/O), `offset` (random pattern: the 4 KiB block), `op` (`mix:`: read or
//! write).
//!
//! # Invariants
//! - `outstanding` holds the tags of submitted I/Os not completed; the model is blocked
//!   while it is not empty.
//! - Every I/O is a whole number of 4 KiB pages (1..=256) inside the disk.
//!
//! Each batch's CPU demand is its `service` draw plus `queue_depth` × the guest's per-I/O
//! CPU for its mode (`guest/modes.rs`: blkfront, notification, completion interrupt).
//!
//! Kernel messages for the console (`take_console`): the block driver's line when the
//! disk first takes I/O (Linux 6.1 xen-blkfront's `blkfront: xvda: flush diskcache: ...`,
//! or libata's probe line for an emulated disk), and an `I/O error, dev ...` line per
//! failed I/O (`blk_print_req_error`), rate-limited as `printk_ratelimited` is: at most
//! 10 lines per 5 s (`guest/ratelimit.rs`).
//!
//! xensim differs: a sequential stream wraps at the end of the disk.

use std::sync::Arc;

use hypervisor_model::io::blkback::DiskInflight;
use hypervisor_model::io::handshake::VBD_SECTORS_512;
use hypervisor_model::io::vbd::{GuestIo, IoDone, IoOp};

use crate::guest::io_log::{Completed, DiskWrite, IoLog};
use crate::guest::ratelimit::RateLimit;
use crate::guest::workload::{Drawn, FieldStreams, GuestAction, GuestState};
use crate::rng::Stream;
use crate::scenario::model::{DiskOpSpec, DiskWorkload};

/// Largest I/O, 4 KiB pages (1 MiB, blkfront's `GUEST_IO_SECTORS_MAX`).
const IO_PAGES_MAX: u64 = 256;
/// 4 KiB blocks of the stand-in disk.
const DISK_BLOCKS: u64 = VBD_SECTORS_512 / 8;

/// The blkfront side of one I/O source (the `io` kind's batches, or a disk stream): builds
/// I/Os, keeps those outstanding and records the completed ones.
#[derive(Debug, Clone)]
pub(crate) struct BlkQueue {
    size: Drawn,
    offset: Stream,
    op: Stream,
    spec: DiskWorkload,
    /// The vbd's name (`spec.vbd`), as each record carries it.
    dev: Arc<str>,
    /// The vbd's device number.
    pub(crate) vdev: u32,
    /// Tags are `tag_base | sequence` (`guest/workload.rs`, `tag_base`).
    tag_base: u64,
    next_seq: u64,
    next_block: u64,
    /// Submitted and not completed: tag → (submit time, the I/O, `IoSample::deferred`).
    /// The queue's tags only grow, so this is a window of slots from the oldest tag
    /// outstanding (blkback's `DiskInflight`), not a tree; an I/O never answered keeps
    /// one slot per later I/O open until it is.
    outstanding: DiskInflight<(u64, GuestIo, Option<bool>)>,
    /// I/Os built since the run loop last took them.
    to_submit: Vec<GuestIo>,
    /// The completed I/Os.
    log: IoLog,
    /// The disk is QEMU's emulated one.
    emulated: bool,
    /// Kernel lines not yet handed to the console.
    console: String,
    /// The driver's probe line was printed.
    announced: bool,
    /// `blk_print_req_error`'s `printk_ratelimited` state.
    ratelimit: RateLimit,
}

/// Sequence numbers of one source stay below the source bits of the tag.
const SEQ_MASK: u64 = (1 << 32) - 1;

impl BlkQueue {
    /// The queue of `disk`, drawing from `<field_prefix>size`, `...offset`, `...op`.
    pub(crate) fn new(disk: &DiskWorkload, streams: &FieldStreams<'_>, field_prefix: &str) -> Self {
        let vdev = hypervisor_model::toolstack::xs_tree::disk_devid(&disk.vbd).unwrap_or(0);
        Self {
            size: Drawn::new(disk.size, streams, &format!("{field_prefix}size")),
            offset: streams.field(&format!("{field_prefix}offset")),
            op: streams.field(&format!("{field_prefix}op")),
            spec: disk.clone(),
            dev: Arc::from(disk.vbd.as_str()),
            vdev,
            tag_base: streams.tag_base(),
            next_seq: 0,
            next_block: 0,
            outstanding: DiskInflight::default(),
            to_submit: Vec::new(),
            log: IoLog::default(),
            emulated: false,
            console: String::new(),
            announced: false,
            ratelimit: RateLimit::new(),
        }
    }

    /// The disk is QEMU's emulated one.
    pub(crate) fn set_emulated(&mut self, emulated: bool) {
        self.emulated = emulated;
    }

    /// Kernel lines printed since the last call.
    pub(crate) fn take_console(&mut self) -> String {
        std::mem::take(&mut self.console)
    }

    /// Some kernel line waits for [`Self::take_console`].
    #[inline]
    pub(crate) fn console_pending(&self) -> bool {
        !self.console.is_empty()
    }

    /// I/Os submitted and not completed.
    pub(crate) fn outstanding_count(&self) -> usize {
        self.outstanding.len()
    }

    /// The block driver's line when the disk first takes I/O.
    fn announce(&mut self) {
        if self.announced {
            return;
        }
        self.announced = true;
        let line = if self.emulated {
            "ata1.00: ATA-7: QEMU HARDDISK, 2.5+, max UDMA/100\n".to_string()
        } else {
            format!(
                "blkfront: {}: flush diskcache: enabled; persistent grants: enabled; \
                 indirect descriptors: enabled; bounce buffer: disabled;\n",
                self.spec.vbd
            )
        };
        self.console.push_str(&line);
    }

    /// `blk_print_req_error` for a failed I/O, under `printk_ratelimited`.
    fn print_error(&mut self, now_ns: u64, write: bool, sector: u64, pages: u64) {
        if !self.ratelimit.allow(now_ns) {
            return;
        }
        let (op, name) = if write { (1, "WRITE") } else { (0, "READ") };
        self.console.push_str(&format!(
            "I/O error, dev {}, sector {sector} op 0x{op}:({name}) flags 0x0 phys_seg {pages} \
             prio class 0\n",
            self.spec.vbd
        ));
    }

    /// Builds the next I/O (`flush`: a flush of the disk's write cache, no sectors) and
    /// hands it to blkfront at `now_ns` (`deferred`: `IoSample::deferred`).
    pub(crate) fn submit(&mut self, now_ns: u64, flush: bool, deferred: Option<bool>) {
        self.announce();
        let io = if flush {
            self.next_flush()
        } else {
            self.next_io()
        };
        self.outstanding.insert(io.tag, (now_ns, io, deferred));
        self.to_submit.push(io);
    }

    fn next_tag(&mut self) -> u64 {
        debug_assert!(self.next_seq <= SEQ_MASK, "tag sequence overflow");
        let tag = self.tag_base | (self.next_seq & SEQ_MASK);
        self.next_seq += 1;
        tag
    }

    fn next_io(&mut self) -> GuestIo {
        let bytes = self.size.draw().max(1);
        let pages = bytes.div_ceil(4096).clamp(1, IO_PAGES_MAX);
        let block = if self.spec.sequential {
            if self.next_block + pages > DISK_BLOCKS {
                self.next_block = 0;
            }
            let block = self.next_block;
            self.next_block += pages;
            block
        } else {
            self.offset.uniform_u64_inclusive(0, DISK_BLOCKS - pages)
        };
        let write = match self.spec.op {
            DiskOpSpec::Read => false,
            DiskOpSpec::Write => true,
            DiskOpSpec::Mix { read_ppm } => {
                self.op.uniform_u64_inclusive(0, 999_999) >= u64::from(read_ppm)
            }
        };
        let tag = self.next_tag();
        GuestIo {
            tag,
            op: if write { IoOp::Write } else { IoOp::Read },
            sector: block * 8,
            sectors: u32::try_from(pages * 8).unwrap_or(8),
            seed: tag,
        }
    }

    /// A flush of the disk's write cache (no sectors).
    fn next_flush(&mut self) -> GuestIo {
        GuestIo {
            tag: self.next_tag(),
            op: IoOp::Flush,
            sector: 0,
            sectors: 0,
            seed: 0,
        }
    }

    /// The I/Os to submit now (taken once).
    pub(crate) fn take_submissions(&mut self) -> Vec<GuestIo> {
        std::mem::take(&mut self.to_submit)
    }

    /// Takes back a buffer [`Self::take_submissions`] handed out, for the next batch to be
    /// built in without an allocation.
    pub(crate) fn reuse_submission_buffer(&mut self, buffer: Vec<GuestIo>) {
        super::reuse_buffer(&mut self.to_submit, buffer);
    }

    /// blkfront completed `done` at `now_ns`; `running`: the vCPU runs now (it sees the
    /// completion at once). False if the tag is not one of ours.
    pub(crate) fn complete(&mut self, done: &IoDone, now_ns: u64, running: bool) -> bool {
        let Some((submit_ns, io, deferred)) = self.outstanding.remove(done.tag) else {
            return false;
        };
        let write = io.op == IoOp::Write;
        let ok = done.status == hypervisor_model::io::blkif::BLKIF_RSP_OKAY;
        if !ok {
            self.print_error(now_ns, write, io.sector, u64::from(io.sectors).div_ceil(8));
        }
        self.log.push(
            &self.dev,
            Completed {
                submit_ns,
                ring_done_ns: now_ns,
                running,
                bytes: if ok { done.bytes } else { 0 },
                ok,
                deferred,
            },
        );
        if ok && write {
            let write = DiskWrite {
                submit_ns,
                sector: io.sector,
                seed: io.seed,
                sectors: io.sectors,
            };
            self.log.push_acked_write(&self.dev, write);
        }
        if ok && io.op == IoOp::Flush {
            self.log.note_flush(&self.dev, submit_ns);
        }
        true
    }

    /// The vCPU runs again at `now_ns`: the guest sees its completions.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        self.log.on_run_start(now_ns);
    }

    /// Writes submitted and not completed: (submit time, the I/O).
    pub(crate) fn pending_writes(&self) -> Vec<(u64, GuestIo)> {
        let writes = self.outstanding.iter().map(|(_, entry)| entry);
        let writes = writes.filter(|(_, io, _)| io.op == IoOp::Write);
        writes.map(|&(submit_ns, io, _)| (submit_ns, io)).collect()
    }

    /// The completed I/Os so far.
    #[cfg(test)]
    pub(crate) fn log(&self) -> &IoLog {
        &self.log
    }

    /// Takes the completed I/Os so far (the run's end, or the domain's destruction).
    pub(crate) fn take_log(&mut self) -> IoLog {
        std::mem::take(&mut self.log)
    }
}

/// The `io` model of one vCPU.
#[derive(Debug, Clone)]
pub(crate) struct IoModel {
    service: Drawn,
    think: Drawn,
    queue_depth: u32,
    sync: bool,
    /// The I/Os and their records.
    pub(crate) queue: BlkQueue,
    demand_ns_left: u64,
    /// blkfront's CPU per I/O (`io.blkfront_req_ns`), added to each batch's service.
    request_ns: u64,
    /// The CPU demand of the current batch (0: the think time is raised to 1 ns, so
    /// virtual time advances even when every I/O fails at once).
    batch_demand_ns: u64,
}

impl IoModel {
    pub(crate) fn new(
        service: crate::scenario::model::Dist,
        think: crate::scenario::model::Dist,
        disk: &DiskWorkload,
        streams: &FieldStreams<'_>,
    ) -> Self {
        Self {
            service: Drawn::new(service, streams, "service"),
            think: Drawn::new(think, streams, "think"),
            queue_depth: disk.queue_depth,
            sync: disk.sync,
            queue: BlkQueue::new(disk, streams, ""),
            demand_ns_left: 0,
            request_ns: 0,
            batch_demand_ns: 0,
        }
    }

    pub(crate) fn start(&mut self) -> GuestState {
        self.on_wake();
        GuestState::Runnable
    }

    pub(crate) fn on_wake(&mut self) {
        let blkfront_ns = self.request_ns.saturating_mul(u64::from(self.queue_depth));
        self.demand_ns_left = self.service.draw().saturating_add(blkfront_ns);
        self.batch_demand_ns = self.demand_ns_left;
    }

    /// Sets blkfront's CPU per I/O; a batch already drawn gets it too.
    pub(crate) fn set_request_ns(&mut self, ns: u64) {
        let added = ns.saturating_sub(self.request_ns);
        self.request_ns = ns;
        self.demand_ns_left = self
            .demand_ns_left
            .saturating_add(added.saturating_mul(u64::from(self.queue_depth)));
        self.batch_demand_ns = self.demand_ns_left;
    }

    pub(crate) fn demand_ns_left(&self) -> u64 {
        self.demand_ns_left
    }

    pub(crate) fn account(&mut self, ran_ns: u64) {
        self.demand_ns_left = self.demand_ns_left.saturating_sub(ran_ns);
    }

    /// Service done: build the batch and block on it.
    pub(crate) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        self.demand_ns_left = 0;
        assert_eq!(
            self.queue.outstanding_count(),
            0,
            "a batch while I/Os are outstanding"
        );
        for _ in 0..self.queue_depth {
            self.queue.submit(now_ns, false, None);
        }
        if self.sync {
            // fsync: the flush goes last, after the batch's writes on the ring.
            self.queue.submit(now_ns, true, None);
        }
        GuestAction::BlockOnIo
    }

    /// blkfront completed `done` at `now_ns`; `running`: the vCPU runs now (it sees the
    /// completion at once). Returns the think timer once the batch is complete.
    pub(crate) fn io_done(&mut self, done: &IoDone, now_ns: u64, running: bool) -> Option<u64> {
        if !self.queue.complete(done, now_ns, running) || self.queue.outstanding_count() > 0 {
            return None;
        }
        let mut think_ns = self.think.draw();
        if self.batch_demand_ns == 0 {
            think_ns = think_ns.max(1);
        }
        Some(now_ns.saturating_add(think_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::RngStreams;
    use crate::scenario::model::Dist;

    fn model(queue_depth: u32, sequential: bool) -> IoModel {
        let streams = RngStreams::new(1);
        let fields = FieldStreams::new(&streams, "workload.t.v0");
        let disk = DiskWorkload {
            vbd: "xvda".to_string(),
            op: DiskOpSpec::Read,
            size: Dist::Const(16 * 1024),
            sequential,
            queue_depth,
            sync: false,
        };
        IoModel::new(Dist::Const(1_000), Dist::Const(500), &disk, &fields)
    }

    fn done(tag: u64) -> IoDone {
        IoDone {
            tag,
            status: 0,
            digest: 0,
            bytes: 16 * 1024,
        }
    }

    #[test]
    fn batch_has_queue_depth_ios_of_whole_pages() {
        let mut m = model(4, true);
        m.start();
        assert_eq!(m.on_demand_done(10), GuestAction::BlockOnIo);
        let ios = m.queue.take_submissions();
        assert_eq!(ios.len(), 4);
        assert_eq!(ios[1].sector, 32);
        assert_eq!(ios[1].sectors, 32);
        assert_eq!(m.queue.vdev, 51712);
    }

    #[test]
    fn think_starts_when_the_last_io_completes() {
        let mut m = model(2, false);
        m.start();
        m.on_demand_done(0);
        let ios = m.queue.take_submissions();
        assert_eq!(m.io_done(&done(ios[0].tag), 100, false), None);
        assert_eq!(m.io_done(&done(ios[1].tag), 200, false), Some(700));
    }

    #[test]
    fn batch_demand_adds_blkfront_cpu_per_io() {
        // service 1000 ns + 4 I/Os x 1500 ns in blkfront.
        let mut m = model(4, false);
        m.start();
        m.set_request_ns(1_500);
        assert_eq!(m.demand_ns_left(), 7_000);
    }

    #[test]
    fn first_batch_prints_the_blkfront_line_once() {
        let mut m = model(1, false);
        m.start();
        m.on_demand_done(0);
        let first = m.queue.take_console();
        assert!(first.starts_with("blkfront: xvda: flush diskcache: enabled;"));
        let tag = m.queue.take_submissions()[0].tag;
        m.io_done(&done(tag), 100, true);
        m.on_wake();
        m.on_demand_done(200);
        assert_eq!(m.queue.take_console(), "");
    }

    #[test]
    fn failed_ios_print_at_most_ten_error_lines_per_five_seconds() {
        let mut m = model(12, false);
        m.start();
        m.on_demand_done(0);
        m.queue.take_console();
        for io in m.queue.take_submissions() {
            let failed = IoDone {
                status: hypervisor_model::io::blkif::BLKIF_RSP_ERROR,
                ..done(io.tag)
            };
            m.io_done(&failed, 100, true);
        }
        let text = m.queue.take_console();
        assert_eq!(text.lines().count(), 10);
        assert!(text.starts_with("I/O error, dev xvda, sector "));
        assert!(text
            .lines()
            .all(|l| l.ends_with("op 0x0:(READ) flags 0x0 phys_seg 4 prio class 0")));
    }

    #[test]
    fn completions_out_of_order_and_unknown_tags_keep_the_outstanding_set() {
        // Three I/Os: the last completes first, a tag never issued is refused.
        let mut m = model(3, false);
        m.start();
        m.on_demand_done(0);
        let ios = m.queue.take_submissions();
        let unknown = ios[2].tag + 1;
        assert_eq!(m.io_done(&done(ios[2].tag), 100, true), None);
        assert!(!m.queue.complete(&done(unknown), 110, true));
        assert!(!m.queue.complete(&done(ios[2].tag), 120, true));
        assert_eq!(m.queue.outstanding_count(), 2);
        assert_eq!(m.io_done(&done(ios[0].tag), 130, true), None);
        assert_eq!(m.io_done(&done(ios[1].tag), 140, true), Some(640));
        let order: Vec<u64> = m
            .queue
            .log()
            .samples()
            .map(|(_, s)| s.ring_done_ns)
            .collect();
        assert_eq!(order, [100, 130, 140]);
    }

    #[test]
    fn only_acknowledged_writes_and_flushes_reach_the_durability_log() {
        // Two writes and the fsync flush: one write fails, the other and the flush succeed.
        let mut m = model(2, false);
        m.queue.spec.op = DiskOpSpec::Write;
        m.sync = true;
        m.start();
        m.on_demand_done(0);
        let ios = m.queue.take_submissions();
        assert_eq!(ios[2].op, IoOp::Flush);
        let failed = IoDone {
            status: hypervisor_model::io::blkif::BLKIF_RSP_ERROR,
            ..done(ios[0].tag)
        };
        m.io_done(&failed, 100, true);
        m.io_done(&done(ios[1].tag), 110, true);
        m.io_done(&done(ios[2].tag), 120, true);
        let log = m.queue.log();
        assert_eq!(log.len(), 3);
        let acked: Vec<u64> = log.acked_writes("xvda").map(|w| w.seed).collect();
        assert_eq!(acked, [ios[1].seed]);
        assert_eq!(log.last_flush_ns("xvda"), Some(0));
    }

    #[test]
    fn guest_latency_waits_for_the_next_run() {
        let mut m = model(1, false);
        m.start();
        m.on_demand_done(0);
        let tag = m.queue.take_submissions()[0].tag;
        m.io_done(&done(tag), 100, false);
        m.queue.on_run_start(150);
        let (_, sample) = m.queue.log().samples().next().expect("one record");
        assert_eq!(sample.guest_done_ns(), Some(150));
        assert_eq!(sample.ring_done_ns, 100);
    }
}
