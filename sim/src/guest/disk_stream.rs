//! Streaming block I/O (`specs/scenario.md` §6.1, `disk.rate` on a non-`io` kind): next to
//! its own workload, the vCPU submits one I/O of `size` every `rate` gap without blocking,
//! as an application on libaio or io_uring does, through the same blkfront ring path as
//! the `io` kind ([`BlkQueue`]); the records are the `io` kind's, so the vbd's IOPS,
//! throughput and latency percentiles are in the domain's `io` metrics.
//!
//! The gap is wall time, and a submission is made by the vCPU when it runs at or after its
//! instant, exactly as a `net.rate` stream sends (`guest/stream.rs`; the cut of a running
//! vCPU's run and the wake of a blocked one are `guest/senders.rs`'s, shared by both).
//!
//! At most `queue_depth` I/Os are outstanding. An instant that finds the queue full puts
//! its I/O in a backlog (counted once as deferred, `IoSample::deferred`); block I/O is
//! never dropped. A completion that leaves a backlog makes the stream due at once (a
//! blocked vCPU is woken for it, a running one submits at its next cut), and the backlog
//! goes out in order as slots free.
//!
//! Streams (`workload.<domain>.v<index>[.mix<k>].<field>`): `disk.rate`, `disk.size`,
//! `disk.offset`, `disk.op`.
//!
//! # Invariants
//! - At most `queue_depth` I/Os outstanding; the backlog holds at most [`BACKLOG_MAX`].
//! - `next_send_ns` only moves forward.
//!
//! xensim leaves out on purpose: an instant that finds the backlog full is skipped (the
//! application's submitter is stuck in its submit call) and counted in
//! `late_send_count`; `sync` (a stream has no batch for an fsync to close; the loader
//! refuses it).

use hypervisor_model::io::vbd::IoDone;

use crate::guest::io::BlkQueue;
use crate::guest::workload::{Drawn, FieldStreams};
use crate::scenario::model::{DiskWorkload, Dist};

/// Most I/Os waiting for a free slot (the application's own submission queue).
pub const BACKLOG_MAX: u32 = 1024;

/// The disk stream of one vCPU (or of one `mixed` entry of it).
#[derive(Debug, Clone)]
pub(crate) struct DiskStream {
    rate: Drawn,
    queue_depth: usize,
    /// The I/Os, their ring path and records.
    pub(crate) queue: BlkQueue,
    /// When the next I/O is due, ns.
    pub(crate) next_send_ns: u64,
    /// I/Os due that wait for a free slot.
    backlog: u32,
    /// A completion left a backlog: the stream is due again from then.
    ready_at_ns: Option<u64>,
    /// Instants skipped because the backlog was full.
    pub(crate) late_send_count: u64,
}

impl DiskStream {
    /// The stream of `disk`, whose first I/O is due one `rate` gap after `now_ns`.
    pub(crate) fn new(
        disk: &DiskWorkload,
        rate: Dist,
        streams: &FieldStreams<'_>,
        now_ns: u64,
    ) -> Self {
        assert!(disk.queue_depth >= 1, "a disk stream without a queue");
        let mut stream = Self {
            rate: Drawn::new(rate, streams, "disk.rate"),
            queue_depth: usize::try_from(disk.queue_depth).unwrap_or(usize::MAX),
            queue: BlkQueue::new(disk, streams, "disk."),
            next_send_ns: now_ns,
            backlog: 0,
            ready_at_ns: None,
            late_send_count: 0,
        };
        stream.restart(now_ns);
        stream
    }

    /// Starts the schedule again at `now_ns`: the next I/O is due one gap later.
    pub(crate) fn restart(&mut self, now_ns: u64) {
        self.next_send_ns = now_ns.saturating_add(self.rate.draw_positive());
    }

    /// When the stream next wants its vCPU: its next instant (if before `until_ns`), or
    /// at once if a completion freed a slot for the backlog.
    pub(crate) fn due_ns(&self, until_ns: u64) -> Option<u64> {
        let next = (self.next_send_ns < until_ns).then_some(self.next_send_ns);
        match (next, self.ready_at_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The vCPU runs at `now_ns`: submits the backlog into free slots, then one I/O per
    /// instant due by then and before `until_ns`. Returns the I/Os submitted.
    pub(crate) fn send_due(&mut self, now_ns: u64, until_ns: u64) -> u64 {
        self.ready_at_ns = None;
        let mut submitted = 0;
        while self.backlog > 0 && self.has_slot() {
            self.queue.submit(now_ns, false, Some(true));
            self.backlog -= 1;
            submitted += 1;
        }
        while self.next_send_ns <= now_ns && self.next_send_ns < until_ns {
            if self.backlog == 0 && self.has_slot() {
                self.queue.submit(now_ns, false, Some(false));
                submitted += 1;
            } else if self.backlog < BACKLOG_MAX {
                self.backlog += 1;
            } else {
                self.late_send_count += 1;
            }
            let gap_ns = self.rate.draw_positive();
            self.next_send_ns = self.next_send_ns.saturating_add(gap_ns);
        }
        debug_assert!(self.queue.outstanding_count() <= self.queue_depth);
        submitted
    }

    fn has_slot(&self) -> bool {
        self.queue.outstanding_count() < self.queue_depth
    }

    /// blkfront completed `done` at `now_ns` (`running`: the vCPU runs now); false if it
    /// is not this stream's. A freed slot with a backlog makes the stream due now.
    pub(crate) fn io_done(&mut self, done: &IoDone, now_ns: u64, running: bool) -> bool {
        if !self.queue.complete(done, now_ns, running) {
            return false;
        }
        if self.backlog > 0 {
            self.ready_at_ns = Some(now_ns);
        }
        true
    }
}

/// Test fixture: sequential 4 KiB reads of `xvda`, at most `queue_depth` outstanding.
#[cfg(test)]
pub(crate) fn sequential_4k_reads(queue_depth: u32) -> DiskWorkload {
    DiskWorkload {
        vbd: "xvda".to_string(),
        op: crate::scenario::model::DiskOpSpec::Read,
        size: Dist::Const(4096),
        sequential: true,
        queue_depth,
        sync: false,
    }
}

#[cfg(test)]
mod tests {
    use super::{sequential_4k_reads, DiskStream};
    use crate::guest::workload::FieldStreams;
    use crate::rng::RngStreams;
    use crate::scenario::model::Dist;
    use hypervisor_model::io::vbd::IoDone;

    const US: u64 = 1_000;

    fn stream(queue_depth: u32, gap_ns: u64) -> DiskStream {
        let streams = RngStreams::new(1);
        let fields = FieldStreams::new(&streams, "workload.g.v0");
        let disk = sequential_4k_reads(queue_depth);
        DiskStream::new(&disk, Dist::Const(gap_ns), &fields, 0)
    }

    fn done(tag: u64) -> IoDone {
        IoDone {
            tag,
            status: 0,
            digest: 0,
            bytes: 4096,
        }
    }

    #[test]
    fn each_instant_submits_one_io_without_waiting() {
        // Gap 100 us, depth 4: at 250 us the instants 100 and 200 us are due.
        let mut s = stream(4, 100 * US);

        let submitted = s.send_due(250 * US, u64::MAX);

        assert_eq!(submitted, 2);
        assert_eq!(s.queue.take_submissions().len(), 2);
        assert_eq!(s.next_send_ns, 300 * US);
    }

    #[test]
    fn a_full_queue_defers_the_next_io_until_a_completion() {
        // Depth 1: the 200 us instant finds the 100 us I/O outstanding.
        let mut s = stream(1, 100 * US);
        s.send_due(100 * US, u64::MAX);
        let first = s.queue.take_submissions()[0];

        let while_full = s.send_due(200 * US, u64::MAX);
        s.io_done(&done(first.tag), 230 * US, true);
        let due = s.due_ns(u64::MAX);
        let after = s.send_due(230 * US, u64::MAX);

        assert_eq!(while_full, 0);
        assert_eq!(due, Some(230 * US));
        assert_eq!(after, 1);
        assert_eq!(s.queue.outstanding_count(), 1);
        let deferred: Vec<Option<bool>> =
            s.queue.log().samples().map(|(_, r)| r.deferred).collect();
        assert_eq!(deferred, [Some(false)]);
    }

    #[test]
    fn a_deferred_io_is_recorded_as_deferred() {
        // Depth 1: the second I/O waits for the first and is flagged when it completes.
        let mut s = stream(1, 100 * US);
        s.send_due(200 * US, u64::MAX);
        let first = s.queue.take_submissions()[0];
        s.io_done(&done(first.tag), 230 * US, true);
        s.send_due(230 * US, u64::MAX);
        let second = s.queue.take_submissions()[0];

        s.io_done(&done(second.tag), 260 * US, true);

        let deferred: Vec<Option<bool>> =
            s.queue.log().samples().map(|(_, r)| r.deferred).collect();
        assert_eq!(deferred, [Some(false), Some(true)]);
    }

    #[test]
    fn instants_at_or_after_until_are_not_submitted() {
        // A mixed entry's span ends at 150 us: only the 100 us instant belongs to it.
        let mut s = stream(4, 100 * US);

        let submitted = s.send_due(450 * US, 150 * US);

        assert_eq!(submitted, 1);
        assert_eq!(s.due_ns(150 * US), None);
    }
}
