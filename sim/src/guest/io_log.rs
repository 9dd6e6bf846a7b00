//! The completed I/Os of one guest I/O source (a `BlkQueue`, or the answered messages of a
//! vif's [`AnswerLog`](crate::guest::net::AnswerLog)), kept for the whole run in the form the
//! run's end reads (`specs/metrics.md` §2.1 and the durability check of `run/durability.rs`).
//!
//! A busy run completes hundreds of thousands of I/Os, and each is kept until the end, so the
//! form is compact: 40 bytes per I/O (submit `t_s`, ring completion `t_c`, guest sees it
//! `t_g`, bytes, device, status), each device named once per log, and the sectors and seed
//! of an I/O kept only when the durability check can read them (an acknowledged write).
//! Of the flushes, the check reads only the latest successful one's submit time.
//!
//! The logs of a domain are handed to the metrics as they are (one per source, no copy).
//!
//! # Invariants
//! - A device is named once it has a record: every sample's and write's `dev` indexes
//!   `devs`, and `last_flush_ns` has an entry per device.
//! - `unseen` holds indexes of samples whose `t_g` is not known yet.

use std::sync::Arc;

/// `IoSample::guest_done_ns` of an I/O whose guest has not run since it completed. Virtual
/// time never reaches it: event times are the core's signed `STime`, below 2^63.
const NOT_SEEN: u64 = u64::MAX;

/// One completed I/O as the metrics read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoSample {
    /// When blkfront (or netfront) got it, ns.
    pub submit_ns: u64,
    /// When the response reached the ring (blkfront's or netfront's interrupt), ns.
    pub ring_done_ns: u64,
    /// When the guest's vCPU ran after that, ns ([`NOT_SEEN`] while it has not).
    guest_done_ns: u64,
    /// Bytes moved (0 for a failed I/O).
    pub bytes: u64,
    /// Index of its device in its log's `devs`.
    dev: u16,
    /// `BLKIF_RSP_OKAY`.
    pub ok: bool,
    /// A disk stream's I/O: `Some(true)` if it waited for a free slot (its queue depth was
    /// reached); `None` for other I/O.
    pub deferred: Option<bool>,
}

impl IoSample {
    /// When the guest saw it complete; `None` if its vCPU has not run since.
    pub fn guest_done_ns(&self) -> Option<u64> {
        (self.guest_done_ns != NOT_SEEN).then_some(self.guest_done_ns)
    }
}

/// One write as the durability check reads it (`run/durability.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskWrite {
    /// When blkfront got it, ns.
    pub submit_ns: u64,
    /// First 512-byte sector.
    pub sector: u64,
    /// Seed of the written stamps (`sector_stamp(seed, sector)`).
    pub seed: u64,
    /// Sectors.
    pub sectors: u32,
}

/// One completed I/O handed to [`IoLog::push`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completed {
    /// When blkfront got it, ns.
    pub submit_ns: u64,
    /// When its response reached the ring, ns (now).
    pub ring_done_ns: u64,
    /// The vCPU runs now, so the guest sees it at once.
    pub running: bool,
    /// Bytes moved (0 for a failed I/O).
    pub bytes: u64,
    /// `BLKIF_RSP_OKAY`.
    pub ok: bool,
    /// See [`IoSample::deferred`].
    pub deferred: Option<bool>,
}

/// The completed I/Os of one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoLog {
    /// Device names in order of first record.
    devs: Vec<Arc<str>>,
    ios: Vec<IoSample>,
    /// The writes acknowledged with `BLKIF_RSP_OKAY` and the index of their device, in
    /// completion order.
    writes: Vec<(u16, DiskWrite)>,
    /// Per device: the submit time of the latest successful flush.
    last_flush_ns: Vec<Option<u64>>,
    /// Samples whose guest has not run since they completed.
    unseen: Vec<usize>,
}

impl IoLog {
    /// The index of `dev`, named now if it had no record yet.
    fn dev_index(&mut self, dev: &Arc<str>) -> u16 {
        // A source has one device, or a few: its last one first, compared by address.
        let found = match self.devs.last() {
            Some(last) if Arc::ptr_eq(last, dev) => Some(self.devs.len() - 1),
            _ => self.devs.iter().position(|d| **d == **dev),
        };
        let index = found.unwrap_or_else(|| {
            self.devs.push(Arc::clone(dev));
            self.last_flush_ns.push(None);
            self.devs.len() - 1
        });
        u16::try_from(index).expect("guest I/O: fewer than 2^16 devices per source")
    }

    /// Records `io`, completed on `dev`.
    pub(crate) fn push(&mut self, dev: &Arc<str>, io: Completed) {
        let dev = self.dev_index(dev);
        if !io.running {
            self.unseen.push(self.ios.len());
        }
        self.ios.push(IoSample {
            submit_ns: io.submit_ns,
            ring_done_ns: io.ring_done_ns,
            guest_done_ns: if io.running {
                io.ring_done_ns
            } else {
                NOT_SEEN
            },
            bytes: io.bytes,
            dev,
            ok: io.ok,
            deferred: io.deferred,
        });
        debug_assert_ne!(io.ring_done_ns, NOT_SEEN, "a completion at the end of time");
    }

    /// Records `write`, of the last [`Self::push`] on `dev`, as acknowledged.
    pub(crate) fn push_acked_write(&mut self, dev: &Arc<str>, write: DiskWrite) {
        let dev = self.dev_index(dev);
        self.writes.push((dev, write));
    }

    /// Records a successful flush of `dev` submitted at `submit_ns`.
    pub(crate) fn note_flush(&mut self, dev: &Arc<str>, submit_ns: u64) {
        let dev = usize::from(self.dev_index(dev));
        if let Some(last) = self.last_flush_ns.get_mut(dev) {
            *last = Some(last.map_or(submit_ns, |t| t.max(submit_ns)));
        }
    }

    /// The vCPU runs again at `now_ns`: the guest sees what completed meanwhile.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        for index in self.unseen.drain(..) {
            if let Some(io) = self.ios.get_mut(index) {
                io.guest_done_ns = now_ns;
            }
        }
    }

    /// Completed I/Os.
    pub fn len(&self) -> usize {
        self.ios.len()
    }

    /// True without a completed I/O.
    pub fn is_empty(&self) -> bool {
        self.ios.is_empty()
    }

    /// Every completed I/O with its device's name, in completion order.
    pub fn samples(&self) -> impl Iterator<Item = (&str, &IoSample)> {
        self.ios.iter().map(|io| (self.dev_name(io.dev), io))
    }

    /// The devices with a record, in order of first record.
    pub fn devs(&self) -> impl Iterator<Item = &str> {
        self.devs.iter().map(|d| &**d)
    }

    /// The acknowledged writes of `dev`, in completion order.
    pub fn acked_writes<'a>(&'a self, dev: &'a str) -> impl Iterator<Item = &'a DiskWrite> {
        let index = self.devs.iter().position(|d| **d == *dev);
        let of_dev = move |(d, _): &&(u16, DiskWrite)| index == Some(usize::from(*d));
        self.writes.iter().filter(of_dev).map(|(_, write)| write)
    }

    /// The submit time of `dev`'s latest successful flush.
    pub fn last_flush_ns(&self, dev: &str) -> Option<u64> {
        let index = self.devs.iter().position(|d| **d == *dev)?;
        self.last_flush_ns.get(index).copied().flatten()
    }

    fn dev_name(&self, dev: u16) -> &str {
        self.devs.get(usize::from(dev)).map_or("", |d| &**d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(submit_ns: u64, ring_done_ns: u64, running: bool) -> Completed {
        Completed {
            submit_ns,
            ring_done_ns,
            running,
            bytes: 4096,
            ok: true,
            deferred: None,
        }
    }

    fn write(submit_ns: u64, seed: u64) -> DiskWrite {
        DiskWrite {
            submit_ns,
            sector: 8,
            seed,
            sectors: 8,
        }
    }

    #[test]
    fn the_guest_sees_completions_at_its_next_run() {
        let xvda: Arc<str> = Arc::from("xvda");
        let mut log = IoLog::default();
        log.push(&xvda, done(0, 100, true));
        log.push(&xvda, done(10, 120, false));
        let seen: Vec<Option<u64>> = log.samples().map(|(_, s)| s.guest_done_ns()).collect();
        assert_eq!(seen, [Some(100), None]);
        log.on_run_start(150);
        let seen: Vec<Option<u64>> = log.samples().map(|(_, s)| s.guest_done_ns()).collect();
        assert_eq!(seen, [Some(100), Some(150)]);
    }

    #[test]
    fn devices_are_named_once_and_keep_their_own_writes_and_flushes() {
        let xvda: Arc<str> = Arc::from("xvda");
        let xvdb: Arc<str> = Arc::from("xvdb");
        // Another Arc of the same name is the same device.
        let xvda_again: Arc<str> = Arc::from("xvda");
        let mut log = IoLog::default();
        log.push(&xvda, done(0, 10, true));
        log.push_acked_write(&xvda, write(0, 7));
        log.push(&xvdb, done(5, 20, true));
        log.push_acked_write(&xvdb, write(5, 9));
        log.push(&xvda_again, done(30, 40, true));
        log.note_flush(&xvda_again, 30);
        log.note_flush(&xvda, 25);
        assert_eq!(log.devs().collect::<Vec<_>>(), ["xvda", "xvdb"]);
        let names: Vec<&str> = log.samples().map(|(dev, _)| dev).collect();
        assert_eq!(names, ["xvda", "xvdb", "xvda"]);
        let seeds: Vec<u64> = log.acked_writes("xvda").map(|w| w.seed).collect();
        assert_eq!(seeds, [7]);
        assert_eq!(log.last_flush_ns("xvda"), Some(30));
        assert_eq!(log.last_flush_ns("xvdb"), None);
        assert_eq!(log.acked_writes("xvdc").count(), 0);
    }

    #[test]
    fn a_sample_is_forty_bytes() {
        assert_eq!(std::mem::size_of::<IoSample>(), 40);
    }
}
