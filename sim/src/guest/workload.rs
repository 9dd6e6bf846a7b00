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
//! - `mixed`: see `guest/mixed.rs`; `span` is virtual wall time measured from the pick.
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
//! - A `net.rate` stream on a non-`io` kind (`guest/stream.rs`): next to the workload,
//!   the vCPU sends at wall-time instants. A run is cut at the next instant (the cut run
//!   counts as the workload's work, which then goes on), a blocked vCPU is woken for it
//!   (a spurious wake for the workload), and every demand-done sends what is due
//!   ([`GuestVcpu::take_stream_frames`]).

use crate::guest::dist::{sample, sample_exp_ahead, EXP_LANES};
use crate::guest::io::IoModel;
use crate::guest::mixed::MixedModel;
use crate::guest::net::NetModel;
use crate::guest::periodic::{PeriodicModel, PeriodicParams};
use crate::guest::stream::NetStream;

mod simple;
use crate::rng::{RngStreams, Stream};
use crate::scenario::model::{Dist, WorkloadSpec};
use hypervisor_model::io::vif::NetPacket;
use simple::{BurstyModel, CpuBoundModel, IdleModel};

pub use crate::guest::periodic::JobRecord;

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

/// Names the streams of one workload: `<prefix>.<field>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldStreams<'a> {
    streams: &'a RngStreams,
    prefix: &'a str,
}

impl<'a> FieldStreams<'a> {
    pub(crate) fn new(streams: &'a RngStreams, prefix: &'a str) -> Self {
        Self { streams, prefix }
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
    /// Set by a spurious wake: the timer to re-arm when the 0 ns run completes.
    spurious_wake_at_ns: Option<Option<u64>>,
    cpu_ns_total: u64,
    /// Run time per unit of work, ppm (1 000 000: none; see `guest/memory.rs`).
    stretch_ppm: u64,
    /// The guest mode's stretch for the workload's `os` rates, ppm (`guest/modes.rs`).
    os_stretch_ppm: u64,
    /// CPU one timer wake costs the guest (`guest/modes.rs`; 0 without `os` rates).
    timer_wake_ns: u64,
    /// Timer-wake CPU not run yet: run before the workload's own demand.
    overhead_ns_left: u64,
    /// A `net.rate` stream next to the workload (`guest/stream.rs`).
    stream: Option<Box<NetStream>>,
    /// With a stream: the workload's own timer while blocked (`state` holds the earlier
    /// of it and the next send).
    own_wake_at_ns: Option<u64>,
    /// The current run was cut short for a send; when that run started.
    cut_at_ns: Option<u64>,
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
        let fields = FieldStreams::new(streams, &prefix);
        let (base, stream) = match spec {
            WorkloadSpec::NetStream { base, net, rate } => {
                let stream = NetStream::new(net, *rate, &fields, vcpu_index, now_ns);
                (base.as_ref(), Some(Box::new(stream)))
            }
            _ => (spec, None),
        };
        let mut behavior = Behavior::new(base, fields);
        let state = behavior.start(now_ns);
        let mut vcpu = Self {
            behavior,
            state,
            spurious_wake_at_ns: None,
            cpu_ns_total: 0,
            stretch_ppm: 1_000_000,
            os_stretch_ppm: 1_000_000,
            timer_wake_ns: 0,
            overhead_ns_left: 0,
            stream,
            own_wake_at_ns: None,
            cut_at_ns: None,
        };
        if let (GuestState::Blocked { wake_at_ns }, Some(_)) = (state, &vcpu.stream) {
            vcpu.state = GuestState::Blocked {
                wake_at_ns: vcpu.with_stream_wake(wake_at_ns),
            };
        }
        vcpu
    }

    /// The wake time of a vCPU whose workload waits for `own_wake_at_ns`: the earlier of
    /// it and the stream's next send (which it remembers).
    fn with_stream_wake(&mut self, own_wake_at_ns: Option<u64>) -> Option<u64> {
        let stream = self.stream.as_ref()?;
        self.own_wake_at_ns = own_wake_at_ns;
        Some(own_wake_at_ns.map_or(stream.next_send_ns, |w| w.min(stream.next_send_ns)))
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
    /// `None`: it never acts. With a stream, a run is cut at the next send.
    pub fn run_demand_ns(&mut self, now_ns: u64) -> Option<u64> {
        assert_eq!(
            self.state,
            GuestState::Runnable,
            "demand asked of a blocked vCPU"
        );
        self.cut_at_ns = None;
        let demand_ns = if self.spurious_wake_at_ns.is_some() {
            Some(0)
        } else {
            self.behavior.run_demand_ns(now_ns).map(|ns| {
                crate::guest::memory::mul_ppm_up(ns, self.total_stretch_ppm())
                    .saturating_add(self.overhead_ns_left)
            })
        };
        let Some(stream) = &self.stream else {
            return demand_ns;
        };
        let to_send_ns = stream.next_send_ns.saturating_sub(now_ns);
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
        if self.spurious_wake_at_ns.is_none() {
            self.account_work(ran_ns);
        }
    }

    /// `ran_ns` of run time went to the pending timer-wake overhead first, then to the
    /// workload's work at the current stretch.
    fn account_work(&mut self, ran_ns: u64) {
        let overhead_ns = ran_ns.min(self.overhead_ns_left);
        self.overhead_ns_left -= overhead_ns;
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
        let action = match (self.cut_at_ns.take(), self.spurious_wake_at_ns.take()) {
            (Some(started_ns), _) => {
                // Cut for a send: the workload ran that long and goes on afterwards.
                self.account_work(now_ns.saturating_sub(started_ns));
                GuestAction::Continue
            }
            (None, Some(wake_at_ns)) => GuestAction::Block { wake_at_ns },
            (None, None) => {
                self.overhead_ns_left = 0;
                self.behavior.on_demand_done(now_ns)
            }
        };
        let action = match (self.stream.as_mut(), action) {
            (Some(stream), GuestAction::Block { wake_at_ns }) => {
                stream.send_due(now_ns);
                GuestAction::Block {
                    wake_at_ns: self.with_stream_wake(wake_at_ns),
                }
            }
            (Some(stream), action) => {
                stream.send_due(now_ns);
                action
            }
            (None, action) => action,
        };
        self.state = action.state_after();
        action
    }

    /// The guest timer (or anything else) woke the vCPU at `now_ns`.
    pub fn on_wake(&mut self, now_ns: u64) {
        let GuestState::Blocked { wake_at_ns } = self.state else {
            panic!("wake of a runnable vCPU");
        };
        // With a stream, a wake for a send is spurious for the workload itself.
        let wake_at_ns = match self.stream {
            Some(_) => self.own_wake_at_ns,
            None => wake_at_ns,
        };
        match wake_at_ns {
            Some(at_ns) if at_ns <= now_ns => {
                self.overhead_ns_left = self.overhead_ns_left.saturating_add(self.timer_wake_ns);
                self.behavior.on_wake(now_ns)
            }
            _ => self.spurious_wake_at_ns = Some(wake_at_ns),
        }
        self.state = GuestState::Runnable;
    }

    /// The vCPU was put on a pCPU at `now_ns`.
    pub fn on_run_start(&mut self, now_ns: u64) {
        if let Some(stream) = &mut self.stream {
            stream.on_run_start(now_ns);
        }
        match &mut self.behavior {
            Behavior::Periodic(model) => model.on_run_start(now_ns),
            Behavior::Io(model) => model.on_run_start(now_ns),
            Behavior::NetIo(model) => model.on_run_start(now_ns),
            _ => {}
        }
    }

    /// `io`: the guest CPU blkfront spends per I/O (`io.blkfront_req_ns`), added to each
    /// batch's `service` once per I/O. No effect on other kinds.
    pub fn set_io_request_ns(&mut self, ns: u64) {
        if let Behavior::Io(model) = &mut self.behavior {
            model.set_request_ns(ns);
        }
    }

    /// `io`: the disk is QEMU's emulated one (its kernel's messages name the ATA driver).
    pub fn set_disk_emulated(&mut self, emulated: bool) {
        if let Behavior::Io(model) = &mut self.behavior {
            model.set_emulated(emulated);
        }
    }

    /// The kernel messages the workload printed since the last call (printk lines
    /// without their time prefix), for the guest's console: `io`'s driver lines,
    /// `periodic`'s deadline misses.
    pub fn take_console(&mut self) -> String {
        match &mut self.behavior {
            Behavior::Io(model) => model.take_console(),
            Behavior::Periodic(model) => model.take_console(),
            _ => String::new(),
        }
    }

    /// `io`: the I/Os to submit after a [`GuestAction::BlockOnIo`], and their vbd.
    pub fn take_submissions(&mut self) -> (u32, Vec<hypervisor_model::io::vbd::GuestIo>) {
        match &mut self.behavior {
            Behavior::Io(model) => (model.vdev, model.take_submissions()),
            _ => (0, Vec::new()),
        }
    }

    /// `io`: blkfront completed `done` at `now_ns` (`running`: the vCPU runs now). When
    /// it was the batch's last, the guest sleeps its think time: returns that wake time.
    pub fn io_done(
        &mut self,
        done: &hypervisor_model::io::vbd::IoDone,
        now_ns: u64,
        running: bool,
    ) -> Option<u64> {
        let Behavior::Io(model) = &mut self.behavior else {
            return None;
        };
        let wake_at_ns = model.io_done(done, now_ns, running)?;
        if let GuestState::Blocked { .. } = self.state {
            self.state = GuestState::Blocked {
                wake_at_ns: Some(wake_at_ns),
            };
        }
        Some(wake_at_ns)
    }

    /// `io`: every I/O record so far (empty for other kinds).
    pub fn io_records(&self) -> &[crate::guest::io::IoRecord] {
        if let Some(stream) = &self.stream {
            return stream.records();
        }
        match &self.behavior {
            Behavior::Io(model) => model.records(),
            Behavior::NetIo(model) => model.records(),
            _ => &[],
        }
    }

    /// `io`: writes submitted and not completed (empty for other kinds).
    pub fn io_pending_writes(&self) -> Vec<(u64, hypervisor_model::io::vbd::GuestIo)> {
        match &self.behavior {
            Behavior::Io(model) => model.pending_writes(),
            _ => Vec::new(),
        }
    }

    /// `io` over a vif: netfront's CPU per frame (`io.netfront_pkt_ns`).
    pub fn set_net_packet_ns(&mut self, ns: u64) {
        if let Behavior::NetIo(model) = &mut self.behavior {
            model.set_packet_ns(ns);
        }
    }

    /// `io` over a vif: the frames to send after a [`GuestAction::BlockOnIo`], their vif
    /// and peer.
    pub fn take_net_frames(
        &mut self,
    ) -> Option<(u32, crate::scenario::model::NetPeer, Vec<NetPacket>)> {
        match &mut self.behavior {
            Behavior::NetIo(model) => Some((model.devid, model.peer.clone(), model.take_frames())),
            _ => None,
        }
    }

    /// A stream's frames to send now (after any demand-done), their vif and peer.
    pub fn take_stream_frames(
        &mut self,
    ) -> Option<(u32, crate::scenario::model::NetPeer, Vec<NetPacket>)> {
        let stream = self.stream.as_mut()?;
        let frames = stream.take_frames();
        (!frames.is_empty()).then(|| (stream.devid, stream.peer.clone(), frames))
    }

    /// `io` over a vif, blocked on a request: arms the retransmission timer; its time.
    pub fn arm_net_timeout(&mut self, now_ns: u64) -> Option<u64> {
        let Behavior::NetIo(model) = &self.behavior else {
            return None;
        };
        let at_ns = model.timeout_at_ns(now_ns)?;
        self.state = GuestState::Blocked {
            wake_at_ns: Some(at_ns),
        };
        Some(at_ns)
    }

    /// `io` over a vif: netfront received `packet`; the think wake time once it completed
    /// the answer.
    pub fn net_received(&mut self, packet: &NetPacket, now_ns: u64, running: bool) -> Option<u64> {
        if let Some(stream) = &mut self.stream {
            stream.received(packet, now_ns, running);
            return None;
        }
        let Behavior::NetIo(model) = &mut self.behavior else {
            return None;
        };
        let wake_at_ns = model.received(packet, now_ns, running)?;
        if let GuestState::Blocked { .. } = self.state {
            self.state = GuestState::Blocked {
                wake_at_ns: Some(wake_at_ns),
            };
        }
        Some(wake_at_ns)
    }

    /// The vCPU was taken off its pCPU at `now_ns`.
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

/// A workload kind's model. Each follows the protocol of the module doc, without the
/// spurious-wake handling (done once in [`GuestVcpu`]).
#[derive(Debug, Clone)]
pub(crate) enum Behavior {
    Idle(IdleModel),
    CpuBound(CpuBoundModel),
    Periodic(PeriodicModel),
    Bursty(BurstyModel),
    Mixed(Box<MixedModel>),
    Io(Box<IoModel>),
    NetIo(Box<NetModel>),
}

impl Behavior {
    /// Builds the model of `spec` with its streams; `start` must follow.
    pub(crate) fn new(spec: &WorkloadSpec, streams: FieldStreams<'_>) -> Self {
        match spec {
            WorkloadSpec::Idle { tick, tick_work } => {
                Behavior::Idle(IdleModel::new(*tick, *tick_work, &streams))
            }
            WorkloadSpec::CpuBound { yield_every } => {
                Behavior::CpuBound(CpuBoundModel::new(*yield_every, &streams))
            }
            WorkloadSpec::Periodic {
                period_ns,
                wcet,
                deadline_ns,
                phase,
                jitter,
            } => {
                let params = PeriodicParams {
                    period_ns: *period_ns,
                    wcet: *wcet,
                    deadline_ns: *deadline_ns,
                    phase: *phase,
                    jitter: *jitter,
                };
                Behavior::Periodic(PeriodicModel::new(params, &streams))
            }
            WorkloadSpec::Bursty { service, think } => {
                Behavior::Bursty(BurstyModel::new(*service, *think, &streams))
            }
            WorkloadSpec::Mixed { mix } => Behavior::Mixed(Box::new(MixedModel::new(mix, streams))),
            WorkloadSpec::Io {
                service,
                think,
                disk,
            } => {
                let index = streams.vcpu_index();
                let model = IoModel::new(*service, *think, disk, &streams, index);
                Behavior::Io(Box::new(model))
            }
            WorkloadSpec::NetIo {
                service,
                think,
                net,
            } => {
                let index = streams.vcpu_index();
                let model = NetModel::new(*service, *think, net, &streams, index);
                Behavior::NetIo(Box::new(model))
            }
            // The stream itself belongs to `GuestVcpu`; the loader never nests it.
            WorkloadSpec::NetStream { base, .. } => Behavior::new(base, streams),
        }
    }

    /// (Re)starts the workload at `now_ns`.
    pub(crate) fn start(&mut self, now_ns: u64) -> GuestState {
        match self {
            Behavior::Idle(model) => model.start(now_ns),
            Behavior::CpuBound(model) => model.start(),
            Behavior::Periodic(model) => model.start(now_ns),
            Behavior::Bursty(model) => model.start(),
            Behavior::Mixed(model) => model.start(now_ns),
            Behavior::Io(model) => model.start(),
            Behavior::NetIo(model) => model.start(),
        }
    }

    pub(crate) fn run_demand_ns(&self, now_ns: u64) -> Option<u64> {
        match self {
            Behavior::Idle(model) => Some(model.demand_ns_left),
            Behavior::CpuBound(model) => model.run_demand_ns(),
            Behavior::Periodic(model) => model.run_demand_ns(),
            Behavior::Bursty(model) => Some(model.demand_ns_left),
            Behavior::Mixed(model) => model.run_demand_ns(now_ns),
            Behavior::Io(model) => Some(model.demand_ns_left()),
            Behavior::NetIo(model) => Some(model.demand_ns_left()),
        }
    }

    pub(crate) fn account(&mut self, ran_ns: u64) {
        match self {
            Behavior::Idle(model) => {
                model.demand_ns_left = model.demand_ns_left.saturating_sub(ran_ns)
            }
            Behavior::CpuBound(model) => {
                model.demand_ns_left = model.demand_ns_left.saturating_sub(ran_ns);
            }
            Behavior::Periodic(model) => model.account(ran_ns),
            Behavior::Bursty(model) => {
                model.demand_ns_left = model.demand_ns_left.saturating_sub(ran_ns)
            }
            Behavior::Mixed(model) => model.account(ran_ns),
            Behavior::Io(model) => model.account(ran_ns),
            Behavior::NetIo(model) => model.account(ran_ns),
        }
    }

    pub(crate) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        match self {
            Behavior::Idle(model) => model.on_demand_done(now_ns),
            Behavior::CpuBound(model) => model.on_demand_done(),
            Behavior::Periodic(model) => model.on_demand_done(now_ns),
            Behavior::Bursty(model) => model.on_demand_done(now_ns),
            Behavior::Mixed(model) => model.on_demand_done(now_ns),
            Behavior::Io(model) => model.on_demand_done(now_ns),
            Behavior::NetIo(model) => model.on_demand_done(now_ns),
        }
    }

    /// A wake at or after the requested timer.
    pub(crate) fn on_wake(&mut self, now_ns: u64) {
        match self {
            Behavior::Idle(model) => model.on_wake(),
            Behavior::CpuBound(_) => {}
            Behavior::Periodic(model) => model.on_wake(now_ns),
            Behavior::Bursty(model) => model.on_wake(),
            Behavior::Mixed(model) => model.on_wake(now_ns),
            Behavior::Io(model) => model.on_wake(),
            Behavior::NetIo(model) => model.on_wake(),
        }
    }
}

/// A distribution with its stream (the stream is this field's alone).
///
/// `exp` draws are computed [`EXP_LANES`] at a time ([`sample_exp_ahead`]) and handed out in
/// order: the stream has no other reader, so the values are those of one draw at a time.
#[derive(Debug, Clone)]
pub(crate) struct Drawn {
    dist: Dist,
    stream: Stream,
    /// `exp` samples computed ahead; `ahead[ahead_index..]` are still to be handed out.
    ahead: [u64; EXP_LANES],
    ahead_index: usize,
}

impl Drawn {
    pub(crate) fn new(dist: Dist, streams: &FieldStreams<'_>, field: &str) -> Self {
        Self {
            dist,
            stream: streams.field(field),
            ahead: [0; EXP_LANES],
            ahead_index: EXP_LANES,
        }
    }

    /// The next draw.
    pub(crate) fn draw(&mut self) -> u64 {
        let Dist::Exp { mean } = self.dist else {
            return sample(&self.dist, &mut self.stream);
        };
        if self.ahead_index == EXP_LANES {
            self.ahead = sample_exp_ahead(mean, &mut self.stream);
            self.ahead_index = 0;
        }
        let value = self.ahead[self.ahead_index];
        self.ahead_index += 1;
        value
    }

    /// The next draw, at least 1 (for recurrences; see the module doc).
    pub(crate) fn draw_positive(&mut self) -> u64 {
        self.draw().max(1)
    }
}

#[cfg(test)]
mod tests;
