//! The streams of one vCPU next to its workload (`specs/scenario.md` §6.1, `rate` in a
//! `net` or `disk` sub-table of a non-`io` kind): the machinery `GuestVcpu` shares between
//! the vif stream (`guest/stream.rs`) and the disk stream (`guest/disk_stream.rs`).
//!
//! - A stream is due at its next instant; [`Senders::next_due_ns`] is the earliest over all
//!   streams, which cuts a running vCPU's run and wakes a blocked one (`GuestVcpu`).
//! - A stream of the top-level workload runs all the time. A stream of a `mixed` entry
//!   (its scope) runs only during that entry's spans: [`Senders::set_window`] starts it
//!   at each pick of its entry (first instant one gap after the pick) and bounds its
//!   instants by the span's end; outside its spans it sends nothing new, while answers
//!   and completions of what it sent still arrive, and a disk stream's backlog still goes
//!   out (block I/O is never dropped).
//! - Each frame and each I/O sent costs the vCPU the guest's per-frame or per-I/O CPU for
//!   its mode (`guest/modes.rs`, the rows the `io` kind charges per request):
//!   [`Senders::send_due`] returns it and `GuestVcpu` adds it to the run.
//!
//! # Invariants
//! - Every stream's tags carry its own source (`guest/workload.rs`, `tag_base`), so a
//!   completion or an answer reaches the stream that sent it.
//! - A scoped stream is due only while its entry is the current one.

use hypervisor_model::io::vbd::{GuestIo, IoDone};
use hypervisor_model::io::vif::NetPacket;

use crate::guest::disk_stream::DiskStream;
use crate::guest::io_log::IoLog;
use crate::guest::stream::NetStream;
use crate::guest::workload::{tag_source, FieldStreams, SOURCE_STREAM};
use crate::rng::RngStreams;
use crate::scenario::model::{NetPeer, WorkloadSpec};

/// A vif or a disk stream.
#[derive(Debug, Clone)]
enum Kind {
    Net(Box<NetStream>),
    Disk(Box<DiskStream>),
}

/// One stream with its scope.
#[derive(Debug, Clone)]
struct Sender {
    kind: Kind,
    /// The tag source of its I/Os and messages.
    source: u32,
    /// The `mixed` entry it belongs to (`None`: the top-level workload's).
    scope: Option<usize>,
    /// Instants at or after this are not its (the end of its entry's span); 0 while its
    /// entry is not the current one.
    until_ns: u64,
}

impl Sender {
    fn due_ns(&self) -> Option<u64> {
        match &self.kind {
            Kind::Net(s) => (s.next_send_ns < self.until_ns).then_some(s.next_send_ns),
            Kind::Disk(s) => s.due_ns(self.until_ns),
        }
    }
}

/// The streams of one vCPU.
#[derive(Debug, Clone, Default)]
pub(crate) struct Senders {
    list: Vec<Sender>,
    /// The `mixed` entry and span end the scoped streams were last set for.
    window: Option<(usize, u64)>,
    /// Guest CPU per frame sent (`io.netfront_pkt_ns` for the mode).
    frame_ns: u64,
    /// Guest CPU per I/O submitted (the mode's disk I/O row).
    disk_io_ns: u64,
}

impl Senders {
    /// The streams of `spec` (its stream wrappers, and those of its `mixed` entries),
    /// with the streams under `prefix`, starting at `now_ns`; and the innermost workload.
    pub(crate) fn build<'s>(
        spec: &'s WorkloadSpec,
        root: &RngStreams,
        prefix: &str,
        now_ns: u64,
    ) -> (&'s WorkloadSpec, Senders) {
        let mut senders = Senders::default();
        let fields = FieldStreams::new(root, prefix).with_source(SOURCE_STREAM);
        let base = senders.add_wrappers(spec, &fields, None, now_ns);
        if let WorkloadSpec::Mixed { mix } = base {
            for (entry_index, entry) in mix.iter().enumerate() {
                let entry_prefix = format!("{prefix}.mix{entry_index}");
                let source = crate::guest::workload::entry_source(entry_index, true);
                let fields = FieldStreams::new(root, &entry_prefix).with_source(source);
                senders.add_wrappers(&entry.workload, &fields, Some(entry_index), now_ns);
            }
        }
        (base, senders)
    }

    /// Adds the streams `spec` wraps its workload in; returns that workload.
    fn add_wrappers<'s>(
        &mut self,
        mut spec: &'s WorkloadSpec,
        fields: &FieldStreams<'_>,
        scope: Option<usize>,
        now_ns: u64,
    ) -> &'s WorkloadSpec {
        let until_ns = if scope.is_none() { u64::MAX } else { 0 };
        loop {
            let kind = match spec {
                WorkloadSpec::NetStream { base, net, rate } => {
                    let index = fields.vcpu_index();
                    let stream = NetStream::new(net, *rate, fields, index, now_ns);
                    spec = base;
                    Kind::Net(Box::new(stream))
                }
                WorkloadSpec::DiskStream { base, disk, rate } => {
                    spec = base;
                    Kind::Disk(Box::new(DiskStream::new(disk, *rate, fields, now_ns)))
                }
                _ => return spec,
            };
            self.list.push(Sender {
                kind,
                source: fields.source(),
                scope,
                until_ns,
            });
        }
    }

    /// True without any stream.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The guest's CPU per frame and per disk I/O (`guest/modes.rs`).
    pub(crate) fn set_costs(&mut self, frame_ns: u64, disk_io_ns: u64) {
        self.frame_ns = frame_ns;
        self.disk_io_ns = disk_io_ns;
    }

    /// The disks are QEMU's emulated ones.
    pub(crate) fn set_disk_emulated(&mut self, emulated: bool) {
        for sender in &mut self.list {
            if let Kind::Disk(s) = &mut sender.kind {
                s.queue.set_emulated(emulated);
            }
        }
    }

    /// When the earliest stream is due, if any is.
    pub(crate) fn next_due_ns(&self) -> Option<u64> {
        self.list.iter().filter_map(Sender::due_ns).min()
    }

    /// The `mixed` workload's current entry and span end at `now_ns` (`None`: not mixed):
    /// a new pick starts the picked entry's streams and stops the others'.
    pub(crate) fn set_window(&mut self, window: Option<(usize, u64)>, now_ns: u64) {
        if window == self.window {
            return;
        }
        self.window = window;
        for sender in self.list.iter_mut().filter(|s| s.scope.is_some()) {
            let picked = window.filter(|&(entry, _)| sender.scope == Some(entry));
            sender.until_ns = picked.map_or(0, |(_, span_end_ns)| span_end_ns);
            if picked.is_some() {
                match &mut sender.kind {
                    Kind::Net(s) => s.restart(now_ns),
                    Kind::Disk(s) => s.restart(now_ns),
                }
            }
        }
    }

    /// The vCPU runs at `now_ns`: every stream sends what is due. Returns the guest CPU
    /// those sends cost.
    pub(crate) fn send_due(&mut self, now_ns: u64) -> u64 {
        let mut cpu_ns = 0u64;
        for sender in &mut self.list {
            let cost_ns = match &mut sender.kind {
                Kind::Net(s) => s.send_due(now_ns, sender.until_ns) * self.frame_ns,
                Kind::Disk(s) => s.send_due(now_ns, sender.until_ns) * self.disk_io_ns,
            };
            cpu_ns = cpu_ns.saturating_add(cost_ns);
        }
        cpu_ns
    }

    /// The frames to send now, per vif: (devid, peer, frames).
    pub(crate) fn take_frames(&mut self) -> Vec<(u32, NetPeer, Vec<NetPacket>)> {
        let mut out = Vec::new();
        for sender in &mut self.list {
            if let Kind::Net(s) = &mut sender.kind {
                let frames = s.take_frames();
                if !frames.is_empty() {
                    out.push((s.devid, s.peer.clone(), frames));
                }
            }
        }
        out
    }

    /// The I/Os to submit now, per vbd: (vdev, I/Os).
    pub(crate) fn take_submissions(&mut self) -> Vec<(u32, Vec<GuestIo>)> {
        let mut out = Vec::new();
        for sender in &mut self.list {
            if let Kind::Disk(s) = &mut sender.kind {
                let ios = s.queue.take_submissions();
                if !ios.is_empty() {
                    out.push((s.queue.vdev, ios));
                }
            }
        }
        out
    }

    /// Some disk stream's driver printed a line [`Self::take_console`] would hand over.
    #[inline]
    pub(crate) fn console_pending(&self) -> bool {
        self.list
            .iter()
            .any(|sender| matches!(&sender.kind, Kind::Disk(s) if s.queue.console_pending()))
    }

    /// The kernel lines the disk streams' drivers printed since the last call.
    pub(crate) fn take_console(&mut self) -> String {
        let mut out = String::new();
        for sender in &mut self.list {
            if let Kind::Disk(s) = &mut sender.kind {
                out.push_str(&s.queue.take_console());
            }
        }
        out
    }

    /// blkfront completed `done`: true if a disk stream of the tag's source took it.
    pub(crate) fn io_done(&mut self, done: &IoDone, now_ns: u64, running: bool) -> bool {
        let source = tag_source(done.tag);
        self.list.iter_mut().any(|sender| match &mut sender.kind {
            Kind::Disk(s) if sender.source == source => s.io_done(done, now_ns, running),
            _ => false,
        })
    }

    /// netfront received `packet`: true if a vif stream of the tag's source took it.
    pub(crate) fn net_received(&mut self, packet: &NetPacket, now_ns: u64, running: bool) -> bool {
        let source = tag_source(packet.tag);
        let sender = self
            .list
            .iter_mut()
            .find(|sender| sender.source == source && matches!(sender.kind, Kind::Net(_)));
        let Some(Sender {
            kind: Kind::Net(s), ..
        }) = sender
        else {
            return false;
        };
        s.received(packet, now_ns, running);
        true
    }

    /// The vCPU runs again at `now_ns`: the guest sees its answers and completions.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        for sender in &mut self.list {
            match &mut sender.kind {
                Kind::Net(s) => s.on_run_start(now_ns),
                Kind::Disk(s) => s.queue.on_run_start(now_ns),
            }
        }
    }

    /// Takes the completed I/Os of every stream so far into `out` (one log per stream
    /// with a record).
    pub(crate) fn take_io_logs(&mut self, out: &mut Vec<IoLog>) {
        for sender in &mut self.list {
            let log = match &mut sender.kind {
                Kind::Net(s) => s.take_log(),
                Kind::Disk(s) => s.queue.take_log(),
            };
            if !log.is_empty() {
                out.push(log);
            }
        }
    }

    /// The disk streams' writes submitted and not completed.
    pub(crate) fn pending_writes(&self) -> Vec<(u64, GuestIo)> {
        let mut out = Vec::new();
        for sender in &self.list {
            if let Kind::Disk(s) = &sender.kind {
                out.extend(s.queue.pending_writes());
            }
        }
        out
    }
}
