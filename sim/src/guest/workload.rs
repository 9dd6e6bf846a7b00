//! The per-vCPU guest workload model (`specs/scenario.md` §6.1): what the software in one
//! vCPU asks of the CPU, as a pure state machine in virtual time (u64 ns).
//!
//! The run loop drives a [`GuestVcpu`] with five calls and turns its answers into core inputs
//! (vCPU block, wake, yield):
//!
//! 1. [`GuestVcpu::new`] at `now_ns` (the instant the vCPU starts running guest code). Its
//!    [`GuestVcpu::state`] is the initial state: [`GuestState::Runnable`], or
//!    [`GuestState::Blocked`] with an optional timer wake (the loop schedules it).
//! 2. When the vCPU gets a pCPU at `now`, [`GuestVcpu::run_demand_ns`] says how much CPU time
//!    it needs before its next voluntary action: `Some(ns)` (the loop schedules a
//!    demand-done event at `now + ns`) or `None` (it never acts: `cpu_bound` without
//!    `yield_every`).
//! 3. When the vCPU loses its pCPU after running `ran_ns` (preempted or paused), the loop
//!    cancels the demand-done event and calls [`GuestVcpu::account`]; the rest of the demand
//!    is remembered and `run_demand_ns` reports it at the next run.
//! 4. When the demand-done event fires, [`GuestVcpu::on_demand_done`] consumes whatever is
//!    left of the current demand (the loop may, but need not, `account` that last segment)
//!    and returns a [`GuestAction`]: `Block` (with an optional timer wake), `Yield`
//!    (`SCHEDOP_yield`, stays runnable with new demand) or `Continue` (new demand at once).
//! 5. When the timer wake fires, [`GuestVcpu::on_wake`] makes it runnable with new demand.
//!
//! # Semantics per kind
//!
//! - `idle`: blocked. With `tick`, the first wake is `tick` after the start; each wake runs
//!   `tick_work`; the next tick is the previous *planned* tick plus a new `tick` draw (a
//!   fixed cadence, so wake latency does not stretch it). If that instant has already passed
//!   when the work finishes, the missed tick is dropped and the next one is the same draw
//!   after now.
//! - `cpu_bound`: runnable from the start. Without `yield_every` it never acts; with it, it
//!   yields after each `yield_every` draw of run time.
//! - `periodic`: see `guest/periodic.rs`; blocked until job 0 is ready (`phase` + jitter
//!   after the start, even when that is the start itself); job records for metrics.
//! - `bursty`: runnable from the start with a `service` draw; when done, blocks with a timer
//!   wake `think` later; each wake draws a new `service`.
//! - `mixed`: see `guest/mixed.rs`; `span` is virtual wall time measured from the pick;
//!   its entries may be `io` (over a vbd or a vif) and may stream.
//!
//! A wake before the requested timer (or with none) is spurious: the guest finds nothing to
//! do, needs 0 ns of CPU, and its demand-done blocks again with the same timer.
//!
//! # Random streams
//!
//! Every distribution field has its own stream `workload.<domain>.v<index>.<field>`
//! (`tick`, `tick_work`, `yield_every`, `wcet`, `phase`, `jitter`, `service`, `think`);
//! a `mixed` entry `k` uses `workload.<domain>.v<index>.mix<k>.<field>` (and `.span`), and
//! the picker uses `workload.<domain>.v<index>.mix`. Each field draws in the order its values
//! are needed; the periodic fields draw by job index, independent of the schedule.
//!
//! # Invariants
//!
//! - `on_demand_done` and `run_demand_ns` only while runnable; `on_wake` only while blocked
//!   (asserted: calling them otherwise is a run-loop bug).
//! - xensim differs: zero-length recurrences (`tick`, `yield_every`, `span`, and a `bursty`
//!   cycle whose `service` and `think` are both 0) are raised to 1 ns, so virtual time always
//!   advances between two voluntary actions of a vCPU.
//!
//! - `io` (vbd): see `guest/io.rs`: `service`, then `queue_depth` I/Os through blkfront
//!   ([`GuestAction::BlockOnIo`]), blocked until all complete, then `think`.
//!
//! - Memory (`guest/memory.rs`): while the guest swaps or reaches remote NUMA memory, its
//!   run time buys less work: [`GuestVcpu::set_stretch_ppm`] multiplies the demand it
//!   reports by the stretch and divides the run time it is given by it.
//!
//! - `io` over a vif: see `guest/net.rs`.
//!
//! - `net.rate` and `disk.rate` streams on a non-`io` kind (`guest/senders.rs`, with
//!   `guest/stream.rs` and `guest/disk_stream.rs`), of the top-level workload or of a
//!   `mixed` entry: next to the workload, the vCPU sends at wall-time instants. A run is
//!   cut at the next instant (the cut run counts as the workload's work, which then goes
//!   on), a blocked vCPU is woken for it (a spurious wake for the workload), and every
//!   demand-done sends what is due ([`GuestVcpu::take_stream_frames`],
//!   [`GuestVcpu::take_stream_submissions`]). The guest CPU of what was sent is added to
//!   the run as overhead; a workload that wanted to block runs it first (it stays
//!   runnable, as after a spurious wake, and blocks at the next demand-done). After an
//!   `io` batch (`BlockOnIo`) the overhead runs at the vCPU's next run.
//!
//! # I/O tags
//!
//! A disk I/O's or vif message's tag is `vcpu << 40 | source << 32 | sequence`: source 0
//! is the top-level workload's own I/O, 1 its streams', `2 + 2k` and `3 + 2k` those of
//! `mixed` entry `k` ([`entry_source`]). Completions and answers reach the model whose
//! source the tag carries. Frames of every sender of a vCPU share the vCPU's sequence
//! numbers (its flow), stamped when the run loop takes them.

use crate::guest::senders::Senders;

mod behavior;
mod console;
mod drawn;
mod simple;
use crate::rng::{RngStreams, Stream};
use crate::scenario::model::{NetPeer, WorkloadSpec};
pub(crate) use behavior::Behavior;
pub(crate) use drawn::Drawn;
use hypervisor_model::io::vbd::{GuestIo, IoDone};
use hypervisor_model::io::vif::NetPacket;

pub use crate::guest::periodic::JobRecord;

/// Tag source of the top-level workload's own I/O (`io` kind).
pub(crate) const SOURCE_TOP: u32 = 0;
/// Tag source of the top-level workload's streams.
pub(crate) const SOURCE_STREAM: u32 = 1;
/// The sequence bits of a tag (below the source bits).
pub(crate) const TAG_SEQ_MASK: u64 = (1 << 32) - 1;
/// Bits of the tag source (bits 32..40; the vCPU index sits above, from bit 40).
const TAG_SOURCE_MASK: u64 = 0xff;
const _: () = assert!(2 + 2 * crate::scenario::workload::MIX_ENTRIES_MAX as u64 <= 0xff);

/// The tag source of `mixed` entry `entry_index`'s own I/O, or of its streams.
pub(crate) fn entry_source(entry_index: usize, stream: bool) -> u32 {
    let index = u32::try_from(entry_index).unwrap_or(u32::MAX / 4);
    debug_assert!(index < 127, "mixed entries are bounded by the loader");
    2 + 2 * index + u32::from(stream)
}

/// The source of an I/O or message tag (`vcpu << 40 | source << 32 | sequence`).
pub(crate) fn tag_source(tag: u64) -> u32 {
    u32::try_from((tag >> 32) & TAG_SOURCE_MASK).unwrap_or(0)
}

/// What the guest does when its planned run completes.
/// Whether a vCPU's guest wants the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestState {
    /// It has work (`run_demand_ns` says how much).
    Runnable,
    /// It waits; `Some(t)`: a guest timer wakes it at `t` ns.
    Blocked {
        /// Absolute wake time, ns.
        wake_at_ns: Option<u64>,
    },
}

/// What the guest does when its planned run completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestAction {
    /// Blocks (`SCHEDOP_block`); `Some(t)`: a guest timer wakes it at `t` ns.
    Block {
        /// Absolute wake time, ns.
        wake_at_ns: Option<u64>,
    },
    /// `SCHEDOP_yield`: stays runnable with new demand.
    Yield,
    /// Stays runnable with new demand at once.
    Continue,
    /// Submits the I/Os the model built ([`GuestVcpu::take_submissions`]) and blocks
    /// until they complete.
    BlockOnIo,
}

impl GuestAction {
    /// The state the guest is in after this action.
    pub fn state_after(self) -> GuestState {
        match self {
            GuestAction::Block { wake_at_ns } => GuestState::Blocked { wake_at_ns },
            GuestAction::BlockOnIo => GuestState::Blocked { wake_at_ns: None },
            GuestAction::Yield | GuestAction::Continue => GuestState::Runnable,
        }
    }
}

/// Names the streams of one workload: `<prefix>.<field>`; and the tag source of its I/O.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldStreams<'a> {
    streams: &'a RngStreams,
    prefix: &'a str,
    source: u32,
}

impl<'a> FieldStreams<'a> {
    pub(crate) fn new(streams: &'a RngStreams, prefix: &'a str) -> Self {
        Self {
            streams,
            prefix,
            source: SOURCE_TOP,
        }
    }

    /// The same names, for I/O tagged with `source`.
    pub(crate) fn with_source(self, source: u32) -> Self {
        Self { source, ..self }
    }

    /// The tag source of the workload's I/O.
    pub(crate) fn source(&self) -> u32 {
        self.source
    }

    /// The first tag of the workload's I/O: `vcpu << 40 | source << 32`.
    pub(crate) fn tag_base(&self) -> u64 {
        u64::from(self.vcpu_index()) << 40 | u64::from(self.source) << 32
    }

    /// The stream `<prefix>.<field>`.
    pub(crate) fn field(&self, field: &str) -> Stream {
        self.streams.stream(&format!("{}.{field}", self.prefix))
    }

    /// The vCPU index in the prefix (`workload.<domain>.v<index>...`), 0 if none.
    pub(crate) fn vcpu_index(&self) -> u32 {
        self.prefix
            .split('.')
            .find_map(|part| part.strip_prefix('v').and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }

    /// The root streams and the prefix, for nested workloads.
    pub(crate) fn parts(&self) -> (&'a RngStreams, &'a str) {
        (self.streams, self.prefix)
    }
}

/// The guest workload of one vCPU (see the module doc for the calling protocol).
#[derive(Debug, Clone)]
pub struct GuestVcpu {
    behavior: Behavior,
    state: GuestState,
    /// Set by a spurious wake (or a block deferred behind send CPU): the workload's own
    /// timer to re-arm when the run of the pending overhead completes.
    spurious_wake_at_ns: Option<Option<u64>>,
    cpu_ns_total: u64,
    /// Run time per unit of work, ppm (1 000 000: none; see `guest/memory.rs`).
    stretch_ppm: u64,
    /// The guest mode's stretch for the workload's `os` rates, ppm (`guest/modes.rs`).
    os_stretch_ppm: u64,
    /// CPU one timer wake costs the guest (`guest/modes.rs`; 0 without `os` rates).
    timer_wake_ns: u64,
    /// Timer-wake and send CPU not run yet: run before the workload's own demand.
    overhead_ns_left: u64,
    /// The `net.rate` / `disk.rate` streams next to the workload (`guest/senders.rs`).
    senders: Senders,
    /// With streams: the workload's own timer while blocked (`state` holds the earlier
    /// of it and the next send).
    own_wake_at_ns: Option<u64>,
    /// The current run was cut short for a send; when that run started.
    cut_at_ns: Option<u64>,
    /// The sequence number of the vCPU's last frame (every sender's frames share them).
    net_seq: u32,
    /// Some model of it prints kernel lines (`io`, `periodic`, disk streams): fixed when
    /// it is built, as its models are.
    prints: bool,
    /// Some model of it acts on a run start (`io`, `periodic`, net `io`, streams): fixed
    /// when built. Without one, [`Self::on_run_start`] returns at once.
    run_start_hooks: bool,
}

impl GuestVcpu {
    /// Builds the workload of vCPU `vcpu_index` of `domain`, starting at `now_ns`.
    pub fn new(
        spec: &WorkloadSpec,
        streams: &RngStreams,
        domain: &str,
        vcpu_index: u32,
        now_ns: u64,
    ) -> Self {
        let prefix = format!("workload.{domain}.v{vcpu_index}");
        let (base, senders) = Senders::build(spec, streams, &prefix, now_ns);
        let mut behavior = Behavior::new(base, FieldStreams::new(streams, &prefix));
        let state = behavior.start(now_ns);
        let prints = !senders.is_empty()
            || behavior
                .leaves()
                .any(|leaf| matches!(leaf, Behavior::Io(_) | Behavior::Periodic(_)));
        // A superset of what `Behavior::on_run_start` and `Senders::on_run_start` touch.
        let run_start_hooks = !senders.is_empty()
            || behavior.leaves().any(|leaf| {
                matches!(
                    leaf,
                    Behavior::Io(_) | Behavior::NetIo(_) | Behavior::Periodic(_)
                )
            });
        let mut vcpu = Self {
            behavior,
            state,
            spurious_wake_at_ns: None,
            cpu_ns_total: 0,
            stretch_ppm: 1_000_000,
            os_stretch_ppm: 1_000_000,
            timer_wake_ns: 0,
            overhead_ns_left: 0,
            senders,
            own_wake_at_ns: None,
            cut_at_ns: None,
            net_seq: 0,
            prints,
            run_start_hooks,
        };
        vcpu.sync_window(now_ns);
        if let GuestState::Blocked { wake_at_ns } = state {
            vcpu.set_blocked(wake_at_ns);
        }
        vcpu
    }

    /// A `mixed` workload may have picked a new entry: its streams follow.
    #[inline]
    fn sync_window(&mut self, now_ns: u64) {
        if !self.senders.is_empty() {
            let window = self.behavior.mix_window();
            self.senders.set_window(window, now_ns);
        }
    }

    /// The wake time of a vCPU whose workload waits for `own_wake_at_ns`: the earlier of
    /// it and the streams' next due instant (it remembers `own_wake_at_ns`).
    fn with_stream_wake(&mut self, own_wake_at_ns: Option<u64>) -> Option<u64> {
        if self.senders.is_empty() {
            return own_wake_at_ns;
        }
        self.own_wake_at_ns = own_wake_at_ns;
        match (own_wake_at_ns, self.senders.next_due_ns()) {
            (Some(own), Some(due)) => Some(own.min(due)),
            (own, due) => own.or(due),
        }
    }

    /// Blocks with the workload's own timer `own_wake_at_ns` (and the streams').
    fn set_blocked(&mut self, own_wake_at_ns: Option<u64>) {
        self.state = GuestState::Blocked {
            wake_at_ns: self.with_stream_wake(own_wake_at_ns),
        };
    }

    /// The guest-OS costs of its mode: the stretch of its `os` rates (ppm) and the CPU of
    /// each timer wake.
    pub fn set_os_costs(&mut self, os_stretch_ppm: u64, timer_wake_ns: u64) {
        assert!(
            os_stretch_ppm >= 1_000_000,
            "a stretch never speeds work up"
        );
        self.os_stretch_ppm = os_stretch_ppm;
        self.timer_wake_ns = timer_wake_ns;
    }

    /// The memory stretch and the guest-OS stretch together, ppm.
    fn total_stretch_ppm(&self) -> u64 {
        crate::guest::memory::mul_ppm_up(self.stretch_ppm, self.os_stretch_ppm)
    }

    /// From now on each ns of work takes `stretch_ppm` / 10^6 ns of run time.
    pub fn set_stretch_ppm(&mut self, stretch_ppm: u64) {
        assert!(stretch_ppm >= 1_000_000, "a stretch never speeds work up");
        self.stretch_ppm = stretch_ppm;
    }

    /// Runnable, or blocked with an optional timer wake.
    pub fn state(&self) -> GuestState {
        self.state
    }

    /// CPU time needed before the next voluntary action, if the vCPU runs from `now_ns`;
    /// `None`: it never acts. With streams, a run is cut at the next send.
    pub fn run_demand_ns(&mut self, now_ns: u64) -> Option<u64> {
        assert_eq!(
            self.state,
            GuestState::Runnable,
            "demand asked of a blocked vCPU"
        );
        self.cut_at_ns = None;
        let demand_ns = if self.spurious_wake_at_ns.is_some() {
            Some(self.overhead_ns_left)
        } else {
            self.behavior.run_demand_ns(now_ns).map(|ns| {
                crate::guest::memory::mul_ppm_up(ns, self.total_stretch_ppm())
                    .saturating_add(self.overhead_ns_left)
            })
        };
        let Some(due_ns) = self.senders.next_due_ns() else {
            return demand_ns;
        };
        let to_send_ns = due_ns.saturating_sub(now_ns);
        if demand_ns.is_none_or(|ns| to_send_ns < ns) {
            self.cut_at_ns = Some(now_ns);
            return Some(to_send_ns);
        }
        demand_ns
    }

    /// The vCPU lost its pCPU after running `ran_ns`.
    pub fn account(&mut self, ran_ns: u64) {
        assert_eq!(self.state, GuestState::Runnable, "a blocked vCPU ran");
        self.cut_at_ns = None;
        self.cpu_ns_total = self.cpu_ns_total.saturating_add(ran_ns);
        self.account_work(ran_ns);
    }

    /// `ran_ns` of run time went to the pending overhead (timer wake, sends) first, then
    /// to the workload's work at the current stretch (none during a spurious run).
    fn account_work(&mut self, ran_ns: u64) {
        let overhead_ns = ran_ns.min(self.overhead_ns_left);
        self.overhead_ns_left -= overhead_ns;
        if self.spurious_wake_at_ns.is_some() {
            return;
        }
        let stretch_ppm = self.total_stretch_ppm();
        let work_ns = crate::guest::memory::div_ppm_down(ran_ns - overhead_ns, stretch_ppm);
        self.behavior.account(work_ns);
    }

    /// The planned run completed at `now_ns`: what the guest does next.
    pub fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        assert_eq!(
            self.state,
            GuestState::Runnable,
            "demand done on a blocked vCPU"
        );
        if self.senders.is_empty() {
            return self.on_demand_done_alone(now_ns);
        }
        let action = if let Some(started_ns) = self.cut_at_ns.take() {
            // Cut for a send: the workload ran that long and goes on afterwards.
            self.account_work(now_ns.saturating_sub(started_ns));
            GuestAction::Continue
        } else if let Some(wake_at_ns) = self.spurious_wake_at_ns.take() {
            self.overhead_ns_left = 0;
            GuestAction::Block { wake_at_ns }
        } else {
            self.overhead_ns_left = 0;
            let action = self.behavior.on_demand_done(now_ns);
            self.sync_window(now_ns);
            action
        };
        let action = self.send_due(now_ns, action);
        self.state = action.state_after();
        match action {
            GuestAction::Block { wake_at_ns } => {
                // The run loop arms the earlier of the workload's timer and the streams'.
                self.set_blocked(wake_at_ns);
                GuestAction::Block {
                    wake_at_ns: self.wake_at_ns(),
                }
            }
            GuestAction::BlockOnIo => {
                self.set_blocked(None);
                action
            }
            GuestAction::Yield | GuestAction::Continue => action,
        }
    }

    /// [`Self::on_demand_done`] of a workload without streams (most): no run is cut for a
    /// send, nothing is sent, and the workload's own timer is the vCPU's.
    fn on_demand_done_alone(&mut self, now_ns: u64) -> GuestAction {
        debug_assert!(self.cut_at_ns.is_none(), "a run cut without streams");
        self.overhead_ns_left = 0;
        let action = match self.spurious_wake_at_ns.take() {
            Some(wake_at_ns) => GuestAction::Block { wake_at_ns },
            None => self.behavior.on_demand_done(now_ns),
        };
        self.state = action.state_after();
        action
    }

    /// The wake time of a blocked vCPU (`None` while runnable or without a timer).
    pub fn wake_at_ns(&self) -> Option<u64> {
        match self.state {
            GuestState::Blocked { wake_at_ns } => wake_at_ns,
            GuestState::Runnable => None,
        }
    }

    /// The streams send what is due at `now_ns`; their CPU is added to the run. A block
    /// waits until that CPU has run (the vCPU stays runnable, as after a spurious wake).
    fn send_due(&mut self, now_ns: u64, action: GuestAction) -> GuestAction {
        if self.senders.is_empty() {
            return action;
        }
        let send_ns = self.senders.send_due(now_ns);
        self.overhead_ns_left = self.overhead_ns_left.saturating_add(send_ns);
        match action {
            GuestAction::Block { wake_at_ns } if self.overhead_ns_left > 0 => {
                self.spurious_wake_at_ns = Some(wake_at_ns);
                GuestAction::Continue
            }
            action => action,
        }
    }

    /// The guest timer (or anything else) woke the vCPU at `now_ns`.
    pub fn on_wake(&mut self, now_ns: u64) {
        let GuestState::Blocked { wake_at_ns } = self.state else {
            panic!("wake of a runnable vCPU");
        };
        // With streams, a wake for a send is spurious for the workload itself.
        let wake_at_ns = match self.senders.is_empty() {
            true => wake_at_ns,
            false => self.own_wake_at_ns,
        };
        match wake_at_ns {
            Some(at_ns) if at_ns <= now_ns => {
                self.overhead_ns_left = self.overhead_ns_left.saturating_add(self.timer_wake_ns);
                self.behavior.on_wake(now_ns);
                self.sync_window(now_ns);
            }
            _ => self.spurious_wake_at_ns = Some(wake_at_ns),
        }
        self.state = GuestState::Runnable;
    }

    /// The vCPU was put on a pCPU at `now_ns`. Inlined: `idle`, `cpu_bound` and `bursty`
    /// without streams (half the vCPUs of `bench-64x512`) have nothing to do here, and
    /// their run start costs the check alone.
    #[inline]
    pub fn on_run_start(&mut self, now_ns: u64) {
        if self.run_start_hooks {
            self.run_start_hooks(now_ns);
        }
    }

    /// The models and streams that act on a run start see it.
    fn run_start_hooks(&mut self, now_ns: u64) {
        self.senders.on_run_start(now_ns);
        self.behavior.on_run_start(now_ns);
    }

    /// The guest CPU per disk I/O (blkfront, notification, completion) and per frame sent
    /// (netfront) for its mode: added to each `io` batch or request once per I/O or frame,
    /// and to the run after each streamed I/O or frame.
    pub fn set_io_costs(&mut self, disk_io_ns: u64, frame_ns: u64) {
        for leaf in self.behavior.leaves_mut() {
            match leaf {
                Behavior::Io(model) => model.set_request_ns(disk_io_ns),
                Behavior::NetIo(model) => model.set_packet_ns(frame_ns),
                _ => {}
            }
        }
        self.senders.set_costs(frame_ns, disk_io_ns);
    }

    /// The disks are QEMU's emulated ones (its kernel's messages name the ATA driver).
    pub fn set_disk_emulated(&mut self, emulated: bool) {
        for leaf in self.behavior.leaves_mut() {
            if let Behavior::Io(model) = leaf {
                model.queue.set_emulated(emulated);
            }
        }
        self.senders.set_disk_emulated(emulated);
    }

    /// False when the workload has no streams and no model that prints: then
    /// [`Self::take_console`], [`Self::take_stream_frames`] and
    /// [`Self::take_stream_submissions`] are always empty (both are fixed when it is built).
    pub fn sends_or_prints(&self) -> bool {
        debug_assert!(self.prints || self.senders.is_empty(), "streams print");
        self.prints
    }

    /// The workload has `net.rate` / `disk.rate` streams: only then can
    /// [`Self::take_stream_frames`] and [`Self::take_stream_submissions`] hand over
    /// anything (fixed when it is built).
    pub fn has_streams(&self) -> bool {
        !self.senders.is_empty()
    }

    /// `io`: the I/Os to submit after a [`GuestAction::BlockOnIo`], and their vbd.
    pub fn take_submissions(&mut self) -> (u32, Vec<GuestIo>) {
        match self.behavior.current_mut() {
            Behavior::Io(model) => (model.queue.vdev, model.queue.take_submissions()),
            _ => (0, Vec::new()),
        }
    }

    /// Takes back the emptied buffer of a [`Self::take_submissions`] for the next batch.
    pub fn reuse_submission_buffer(&mut self, buffer: Vec<GuestIo>) {
        if let Behavior::Io(model) = self.behavior.current_mut() {
            model.queue.reuse_submission_buffer(buffer);
        }
    }

    /// The disk streams' I/Os to submit now (after any demand-done), per vbd.
    #[inline]
    pub fn take_stream_submissions(&mut self) -> Vec<(u32, Vec<GuestIo>)> {
        if self.senders.is_empty() {
            return Vec::new();
        }
        self.senders.take_submissions()
    }

    /// blkfront completed `done` at `now_ns` (`running`: the vCPU runs now). Returns the
    /// time a wake event is wanted at, if the completion set one: an `io` batch's think
    /// timer once its last I/O completed, or a blocked vCPU's disk stream that can submit
    /// its backlog now.
    pub fn io_done(&mut self, done: &IoDone, now_ns: u64, running: bool) -> Option<u64> {
        if self.senders.io_done(done, now_ns, running) {
            let GuestState::Blocked { .. } = self.state else {
                return None;
            };
            self.set_blocked(self.own_wake_at_ns);
            return self.wake_at_ns();
        }
        let wake_at_ns = match &mut self.behavior {
            Behavior::Io(model) => model.io_done(done, now_ns, running),
            Behavior::Mixed(model) => model.io_done(done, now_ns, running),
            _ => None,
        }?;
        Some(self.own_wake_changed(wake_at_ns))
    }

    /// The workload's own timer is now `wake_at_ns` (a request completed): returns when
    /// the vCPU wants its wake event.
    fn own_wake_changed(&mut self, wake_at_ns: u64) -> u64 {
        match self.state {
            GuestState::Blocked { .. } => {
                self.set_blocked(Some(wake_at_ns));
                self.wake_at_ns().unwrap_or(wake_at_ns)
            }
            GuestState::Runnable => {
                // Runnable only for a spurious wake or send CPU: it blocks on this timer.
                if self.spurious_wake_at_ns.is_some() {
                    self.spurious_wake_at_ns = Some(Some(wake_at_ns));
                }
                wake_at_ns
            }
        }
    }

    /// Takes the completed I/Os so far, of the workload and its streams, into `out` (one
    /// log per source with a record; the run's end, or the domain's destruction).
    pub fn take_io_logs(&mut self, out: &mut Vec<crate::guest::io_log::IoLog>) {
        self.behavior.take_io_logs(out);
        self.senders.take_io_logs(out);
    }

    /// Writes submitted and not completed.
    pub fn io_pending_writes(&self) -> Vec<(u64, GuestIo)> {
        let mut writes = Vec::new();
        for leaf in self.behavior.leaves() {
            if let Behavior::Io(model) = leaf {
                writes.extend(model.queue.pending_writes());
            }
        }
        writes.extend(self.senders.pending_writes());
        writes
    }

    /// Gives the vCPU's next sequence numbers to `frames`.
    fn stamp(&mut self, frames: &mut [NetPacket]) {
        for frame in frames {
            self.net_seq = self.net_seq.wrapping_add(1);
            frame.seq = self.net_seq;
        }
    }

    /// `io` over a vif: the frames to send after a [`GuestAction::BlockOnIo`], their vif
    /// and peer.
    pub fn take_net_frames(&mut self) -> Option<(u32, NetPeer, Vec<NetPacket>)> {
        let Behavior::NetIo(model) = self.behavior.current_mut() else {
            return None;
        };
        let (devid, peer, mut frames) = (model.devid, model.peer.clone(), model.take_frames());
        self.stamp(&mut frames);
        Some((devid, peer, frames))
    }

    /// Takes back the emptied buffer of a [`Self::take_net_frames`] for the next request.
    pub fn reuse_net_frame_buffer(&mut self, buffer: Vec<NetPacket>) {
        if let Behavior::NetIo(model) = self.behavior.current_mut() {
            model.reuse_frame_buffer(buffer);
        }
    }

    /// The streams' frames to send now (after any demand-done), per vif and peer.
    #[inline]
    pub fn take_stream_frames(&mut self) -> Vec<(u32, NetPeer, Vec<NetPacket>)> {
        if self.senders.is_empty() {
            return Vec::new();
        }
        let mut out = self.senders.take_frames();
        for (_, _, frames) in &mut out {
            self.stamp(frames);
        }
        out
    }

    /// `io` over a vif, blocked on a request: arms the retransmission timer; the time
    /// the vCPU wants its wake event.
    pub fn arm_net_timeout(&mut self, now_ns: u64) -> Option<u64> {
        let Behavior::NetIo(model) = self.behavior.current_mut() else {
            return None;
        };
        let at_ns = model.timeout_at_ns(now_ns)?;
        Some(self.own_wake_changed(at_ns))
    }

    /// netfront received `packet`; the wake time once it completed a request's answer.
    pub fn net_received(&mut self, packet: &NetPacket, now_ns: u64, running: bool) -> Option<u64> {
        if self.senders.net_received(packet, now_ns, running) {
            return None;
        }
        let wake_at_ns = match &mut self.behavior {
            Behavior::NetIo(model) => model.received(packet, now_ns, running),
            Behavior::Mixed(model) => model.net_received(packet, now_ns, running),
            _ => None,
        }?;
        Some(self.own_wake_changed(wake_at_ns))
    }

    /// The vCPU was taken off its pCPU at `now_ns`. Inlined: called at every stop, and
    /// only `periodic` acts on it.
    #[inline]
    pub fn on_run_stop(&mut self, now_ns: u64) {
        if let Behavior::Periodic(model) = &mut self.behavior {
            model.on_run_stop(now_ns);
        }
    }

    /// CPU time the vCPU has run in total (everything given to `account`), ns.
    pub fn cpu_ns_total(&self) -> u64 {
        self.cpu_ns_total
    }

    /// The job records of a `periodic` workload generated so far (empty for other kinds).
    pub fn jobs(&self) -> &[JobRecord] {
        match &self.behavior {
            Behavior::Periodic(model) => model.jobs(),
            _ => &[],
        }
    }

    /// Generates the records of every periodic job released before `end_ns` (so unfinished
    /// jobs are visible to the metrics) and returns all records (empty for other kinds).
    pub fn jobs_released_before(&mut self, end_ns: u64) -> &[JobRecord] {
        match &mut self.behavior {
            Behavior::Periodic(model) => model.jobs_released_before(end_ns),
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_streams;
