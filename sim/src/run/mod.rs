//! The run loop: pop the next event, hand it to a host's core or a guest model, record every
//! core input and core event, check invariants, and stop at the end of the scenario.
//!
//! Files: `host.rs` (scenario host → `BootConfig`), `platform.rs` (`SimPlatform`),
//! `dispatch.rs` (one event's handling), `guests.rs` (workload models per vCPU),
//! `guest_io.rs` (a workload's I/Os and stream sends to its frontends), `commands.rs`
//! (the xl timeline and toolstack replies), `messages.rs` (xl's and libxl's failure
//! messages), `xl_sched.rs` (the scheduler, cpupool and vCPU commands), `sinks.rs`
//! (hash, trace file, decision log, metrics), `external.rs` (socket requests from
//! `xensim serve` at the current time).
//!
//! # Invariants
//! - One run is single-threaded and reads no host clock: its hash depends only on the
//!   scenario, its xl.cfg files and the seed.
//! - Every core input is recorded before the core sees it.

mod access;
pub mod commands;
pub mod decisions;
mod dispatch;
mod domain_rtds;
pub mod durability;
pub mod external;
mod faults;
mod guest_io;
pub mod guests;
mod guests_memory;
pub mod host;
mod messages;
pub mod net;
pub mod platform;
pub mod sched_opts;
mod sinks;
mod xl_mem;
mod xl_sched;

use std::collections::BTreeMap;

use hypervisor_model::domain::ShutdownReason;
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{DomId, PcpuId, PoolId, VcpuRef};
use hypervisor_model::sched::Violation;
use hypervisor_model::toolstack::ops::JobId;

use crate::clock::EventQueue;
use crate::machine::disk::DiskClass;
use crate::machine::switch::SwitchCosts;
use crate::record::{Divergence, Recorder, RunHash, TraceError};
use crate::report::metrics::DomainMeta;
use crate::rng::RngStreams;
use crate::scenario::model::Scenario;
use commands::{CommandRecord, JobOrigin};
pub use external::Timeline;
use guests::{GuestStep, HostGuests, ServiceItem};
use platform::{HostSim, SimPlatform};
pub use sinks::Sinks;

/// Most events one run may process: a bound that turns a livelock into an error.
const EVENTS_MAX: u64 = 1 << 40;
/// Period of a domain's memory access stream: one slice per running vCPU per tick.
pub const ACCESS_TICK_NS: u64 = 1_000_000;

/// The event queue's FIFO lane of scheduler IPIs: each arrives one fixed latency after it
/// is sent (`clock.rs`, `EventQueue::push_in_order`).
pub const LANE_IPI: usize = 0;
/// The lane of disk completions: a disk model's service time is mostly one constant.
pub const LANE_DISK: usize = 1;
/// The lane of the wakes of guests that block on I/O: mostly a vif request's
/// retransmission timer, one fixed timeout after the request.
pub const LANE_IO_WAKE: usize = 2;
const _: () = assert!(LANE_IO_WAKE < crate::clock::LANES);
/// The event queue's heap of demand-done events (`clock.rs`,
/// `EventQueue::push_to_heap`): about one per running vCPU, beside the many wakes of the
/// blocked ones in heap 0, so their sifts stay short.
pub const HEAP_DEMAND_DONE: usize = 1;
const _: () = assert!(HEAP_DEMAND_DONE < crate::clock::HEAPS);

/// Something that happens at a virtual time. Kept small (no boxed or large payloads), as
/// every pending event is moved around the queue's heap.
#[derive(Debug, Clone)]
pub enum SimEvent {
    /// An IPI (`SCHEDULE_SOFTIRQ`) reaches a pCPU.
    Softirq {
        /// Host index.
        host: u16,
        /// The pCPU.
        pcpu: PcpuId,
    },
    /// A deferred toolstack step is due.
    ToolstackContinue {
        /// Host index.
        host: u16,
        /// The job.
        job: JobId,
    },
    /// A split driver's reaction to a XenStore watch event is due.
    DriverWork {
        /// Host index.
        host: u16,
        /// The reaction.
        work: hypervisor_model::ids::DriverWorkId,
    },
    /// A pCPU's scheduler timer (fires only if `generation` is still current).
    Timer {
        /// Host index.
        host: u16,
        /// The pCPU.
        pcpu: PcpuId,
        /// Arm generation.
        generation: u64,
    },
    /// A pool scheduler's own timer (fires only if `generation` is still current).
    PoolTimer {
        /// Host index.
        host: u16,
        /// The pool.
        pool: PoolId,
        /// Arm generation.
        generation: u64,
    },
    /// A running vCPU's guest finished its planned work.
    DemandDone {
        /// Host index.
        host: u16,
        /// The vCPU.
        vcpu: VcpuRef,
        /// Run generation.
        generation: u64,
    },
    /// A blocked vCPU's guest timer.
    GuestWake {
        /// Host index.
        host: u16,
        /// The vCPU.
        vcpu: VcpuRef,
        /// Wake generation.
        generation: u64,
    },
    /// A domain's memory access stream ticks (`guest/access.rs`; stale unless
    /// `generation` is the stream's).
    MemoryTick {
        /// Host index.
        host: u16,
        /// The domain.
        dom: DomId,
        /// Stream generation.
        generation: u32,
    },
    /// A guest answers a shutdown request.
    GuestShutdown {
        /// Host index.
        host: u16,
        /// The domain.
        dom: DomId,
        /// The reason it was asked for.
        reason: ShutdownReason,
    },
    /// A disk completes a command (its result waits in `HostSim::disk_done`).
    DiskDone {
        /// Host index.
        host: u16,
        /// The command's tag.
        tag: u64,
    },
    /// A frame reaches a vif (`net.rs`).
    NetArrive {
        /// The frame's key in the network's pending frames.
        frame: u64,
    },
    /// A `[[domain]]` is created (`xl create` at its `start`).
    DomainStart {
        /// Index into `Scenario::domains`.
        index: usize,
    },
    /// An `[[at]]` entry runs.
    Command {
        /// Index into `Scenario::timeline`.
        index: usize,
    },
    /// A guest's kernel tells its balloon driver its floor (`CoreInput::GuestMemFloor`).
    GuestMemFloor {
        /// Host index.
        host: u16,
        /// The domain.
        dom: DomId,
        /// What it tells.
        notice: crate::guest::memory::FloorNotice,
    },
}

/// How to run.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Run the invariant checker after every event.
    pub check: bool,
    /// Stop at this time instead of the scenario's duration (`xensim xl --at`).
    pub stop_at_ns: Option<u64>,
    /// Keep the readable decision log.
    pub decision_log: bool,
    /// Capture the timeline (Perfetto export, HTML report).
    pub timeline: Option<crate::report::timeline::capture::TimelineOptions>,
}

/// One host after (or during) a run.
#[derive(Debug)]
pub struct HostRuntime {
    /// Host name.
    pub name: String,
    /// Its hypervisor.
    pub hv: Hypervisor,
    /// Its simulator state.
    pub sim: HostSim,
}

/// An invariant broken during a run.
#[derive(Debug, Clone)]
pub struct InvariantFailure {
    /// Index of the event after which it was found.
    pub event_index: u64,
    /// Virtual time.
    pub time_ns: u64,
    /// Host name.
    pub host: String,
    /// What is broken.
    pub violations: Vec<Violation>,
}

/// Errors that stop a run before it can produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A host could not be built.
    #[error(transparent)]
    Host(#[from] host::HostError),
    /// The trace file failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The run did not end within the event bound.
    #[error("the run did not finish within {EVENTS_MAX} events (livelock?) at t={time_ns} ns")]
    Livelock {
        /// Virtual time reached.
        time_ns: u64,
    },
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run hash.
    pub hash: RunHash,
    /// Number of trace records (core inputs + core events).
    pub record_count: u64,
    /// Number of queue events processed.
    pub event_count: u64,
    /// Virtual time at the end.
    pub end_ns: u64,
    /// Hosts in their final state.
    pub hosts: Vec<HostRuntime>,
    /// Every xl command run, with output and status.
    pub commands: Vec<CommandRecord>,
    /// The first broken invariant, if the checker ran and found one.
    pub invariant_failure: Option<InvariantFailure>,
    /// For a replay: the first record that differs.
    pub divergence: Option<Divergence>,
    /// Everything the sinks gathered (decision log, metrics).
    pub sinks_report: sinks::SinksReport,
    /// Every record, if the run's recorder was capturing (`Recorder::capturing`).
    pub captured_records: Vec<Vec<u8>>,
}

/// The state of a run in progress.
#[derive(Debug)]
pub struct World<'s> {
    pub(crate) scenario: &'s Scenario,
    pub(crate) queue: EventQueue<SimEvent>,
    pub(crate) hosts: Vec<HostRuntime>,
    pub(crate) sinks: Sinks,
    pub(crate) commands: Vec<CommandRecord>,
    pub(crate) jobs: BTreeMap<(u16, JobId), JobOrigin>,
    pub(crate) next_job: u32,
    pub(crate) streams: RngStreams,
    pub(crate) shutdown_reaction_ns: u64,
    pub(crate) waiters: Vec<commands::Waiter>,
    /// The job `xl_sched.rs` is waiting on synchronously, and its result.
    pub(crate) sync_job: Option<(u16, JobId)>,
    pub(crate) sync_result: Option<Result<(), hypervisor_model::toolstack::ops::ToolstackError>>,
    /// Bridges, links and frames on their way.
    pub(crate) net: net::NetWorld,
    /// Some host has crashed (`host-crash`, an `[[at]]` command): until then no event
    /// needs its host's crash test (`dispatch.rs`).
    pub(crate) host_crashed: bool,
}

/// Index of a pool in per-pool tables.
pub(crate) fn pool_slot(pool: PoolId) -> usize {
    usize::try_from(pool.0).unwrap_or(usize::MAX)
}

/// Runs `scenario` to its end (or `opts.stop_at_ns`), recording into `recorder`.
pub fn run(
    scenario: &Scenario,
    opts: &RunOptions,
    recorder: Recorder,
) -> Result<RunOutcome, RunError> {
    let mut world = World::boot(scenario, opts, recorder)?;
    let end_ns = opts
        .stop_at_ns
        .unwrap_or(scenario.sim.duration_ns)
        .min(scenario.sim.duration_ns);
    let (event_count, invariant_failure) =
        world.advance(end_ns, opts.check || scenario.sim.check)?;
    // A broken invariant stops the run just after the event that broke it (the metrics
    // saw events at that instant).
    let end_ns = if invariant_failure.is_some() {
        world.queue.now_ns().saturating_add(1)
    } else {
        end_ns
    };
    world.finish(end_ns, event_count, invariant_failure)
}

impl<'s> World<'s> {
    /// A world booted and run to `opts.stop_at_ns` (the scenario's end if unset), and that
    /// instant, ns.
    fn at(scenario: &'s Scenario, opts: &RunOptions) -> Result<(World<'s>, u64), RunError> {
        let mut world = World::boot(scenario, opts, Recorder::new())?;
        let at_ns = opts.stop_at_ns.unwrap_or(scenario.sim.duration_ns);
        world.advance(at_ns, opts.check)?;
        Ok((world, at_ns))
    }
}

/// Runs `scenario` up to `opts.stop_at_ns` and answers the xl query `command` on host
/// `host` (an index into `Scenario::hosts`) at that instant.
pub fn query_at(
    scenario: &Scenario,
    opts: &RunOptions,
    host: u16,
    command: &crate::xl::command::XlCommand,
) -> Result<crate::report::xl::XlOutput, RunError> {
    let (mut world, at_ns) = World::at(scenario, opts)?;
    Ok(world.query(host, command, at_ns))
}

/// Virtual time a state-changing `xensim xl` command may take to finish (a destroy, a
/// `shutdown -w`), past `--at`.
const COMMAND_AT_LIMIT_NS: u64 = 60_000_000_000;

/// Runs `scenario` to `opts.stop_at_ns`, then issues `command` on `host` as the timeline
/// would at that instant, and runs on until it has finished (its exit status is known).
pub fn command_at(
    scenario: &Scenario,
    opts: &RunOptions,
    host: u16,
    text: &str,
    command: &crate::xl::command::XlCommand,
) -> Result<crate::report::xl::XlOutput, RunError> {
    let (mut world, at_ns) = World::at(scenario, opts)?;
    let record = world.new_command(host, text.to_string(), None);
    world.xl(host, record, command);
    let mut until_ns = at_ns;
    while world.commands[record].rc.is_none() && until_ns < at_ns + COMMAND_AT_LIMIT_NS {
        until_ns += 10_000_000;
        world.advance(until_ns, opts.check)?;
    }
    let r = &world.commands[record];
    Ok(crate::report::xl::XlOutput {
        stdout: r.stdout.clone(),
        stderr: r.stderr.clone(),
        rc: r.rc.unwrap_or(1),
    })
}

/// Runs `scenario` to `opts.stop_at_ns` and answers a read-only xenstore client on `host`.
pub fn xs_query_at(
    scenario: &Scenario,
    opts: &RunOptions,
    host: u16,
    command: &hypervisor_model::toolstack::xs_client::XsClientCmd,
) -> Result<crate::report::xl::XlOutput, RunError> {
    let (mut world, _) = World::at(scenario, opts)?;
    let h = &mut world.hosts[usize::from(host)];
    let out = h.hv.xs_query(command).unwrap_or_default();
    Ok(commands::client_output(&out))
}

impl<'s> World<'s> {
    pub fn boot(
        scenario: &'s Scenario,
        opts: &RunOptions,
        recorder: Recorder,
    ) -> Result<World<'s>, RunError> {
        let configs = scenario
            .hosts
            .iter()
            .map(|h| host::boot_config(h, &scenario.costs))
            .collect::<Result<Vec<_>, _>>()?;
        let metas = scenario
            .hosts
            .iter()
            .zip(&configs)
            .map(|(h, c)| {
                let switch = SwitchCosts::from_tables(&scenario.costs, &h.costs);
                sinks::host_meta(&h.name, c, switch)
            })
            .collect();
        let decision_log = opts.decision_log || scenario.sim.decision_log;
        let mut world = World {
            scenario,
            queue: EventQueue::new(),
            hosts: Vec::new(),
            sinks: {
                let sinks = Sinks::new(recorder, metas, decision_log, scenario.sim.warmup_ns);
                match opts.timeline {
                    Some(options) => sinks.with_timeline(options),
                    None => sinks,
                }
            },
            commands: Vec::new(),
            jobs: BTreeMap::new(),
            next_job: 0,
            streams: RngStreams::new(scenario.sim.seed),
            waiters: Vec::new(),
            sync_job: None,
            sync_result: None,
            net: net::NetWorld::new(scenario, &RngStreams::new(scenario.sim.seed)),
            host_crashed: false,
            shutdown_reaction_ns: host::cost_ns(
                &scenario.costs,
                "guest.shutdown_reaction_ns",
                host::GUEST_SHUTDOWN_REACTION_NS_DEFAULT,
            ),
        };
        let mut timer_slot_base = 0;
        for (index, (spec, config)) in scenario.hosts.iter().zip(configs).enumerate() {
            let host = u16::try_from(index).expect("fewer than 65536 hosts");
            let nr_cpus = config.host.cpus.len();
            let mut guests = HostGuests::new(world.streams);
            let merged = host::merged_costs(&scenario.costs, &spec.costs);
            guests.set_memory_params(
                guests_memory::numa_view(&config.host),
                host::memory_costs(&merged),
                scenario.sim.warmup_ns,
            );
            guests.set_mode_costs(crate::guest::modes::ModeCosts::from_table(&merged));
            let netfront_ns = host::NETFRONT_PKT_NS_DEFAULT;
            guests.set_net_packet_ns(host::cost_ns(&merged, "io.netfront_pkt_ns", netfront_ns));
            let switch = SwitchCosts::from_tables(&scenario.costs, &spec.costs);
            let dom0_vcpus = usize::try_from(config.dom0.vcpus).unwrap_or(0);
            guests.register_domain(
                DomId::DOM0,
                "Domain-0",
                vec![spec.dom0.workload.clone(); dom0_vcpus],
            );
            guests.register_memory(DomId::DOM0, spec.dom0.memory);
            let dom0_meta = DomainMeta {
                pool: "Pool-0".to_string(),
                weight: spec.dom0.weight,
                cap: 0,
            };
            world.sinks.domain_meta(host, DomId::DOM0, dom0_meta);
            let mut sim = HostSim {
                host,
                timer_gen: vec![0; nr_cpus],
                timer_slot_base,
                pool_timer_gen: Vec::new(),
                guests,
                replies: Vec::new(),
                notices: Vec::new(),
                ipi_latency_ns: switch.ipi_ns,
                switch,
                last_vcpu: vec![None; nr_cpus],
                xs_out: Vec::new(),
                ept: Default::default(),
                access: Default::default(),
                iommu: Default::default(),
                doorbells: Default::default(),
                disks: spec
                    .disks
                    .iter()
                    .map(|d| crate::machine::disk::Disk::new(DiskClass::of(&d.model)))
                    .collect(),
                disk_names: spec.disks.iter().map(|d| d.name.clone()).collect(),
                vbd_volumes: BTreeMap::new(),
                disk_done: Default::default(),
                disk_spare: Default::default(),
                crashed_at_ns: None,
                net_out: Vec::new(),
            };
            let mut platform = SimPlatform {
                now_ns: 0,
                queue: &mut world.queue,
                sim: &mut sim,
                sinks: &mut world.sinks,
            };
            let hv = Hypervisor::boot(config, &mut platform);
            timer_slot_base += nr_cpus;
            world.hosts.push(HostRuntime {
                name: spec.name.clone(),
                hv,
                sim,
            });
        }
        for (index, domain) in scenario.domains.iter().enumerate() {
            world
                .queue
                .push(domain.start_ns, SimEvent::DomainStart { index });
        }
        for (index, entry) in scenario.timeline.iter().enumerate() {
            world.queue.push(entry.time_ns, SimEvent::Command { index });
        }
        Ok(world)
    }

    /// Processes events before `end_ns`; stops early at a broken invariant or a replay
    /// divergence. Returns the number of events processed and the failure, if any.
    pub fn advance(
        &mut self,
        end_ns: u64,
        check: bool,
    ) -> Result<(u64, Option<InvariantFailure>), RunError> {
        let mut event_count = 0u64;
        while !self.sinks.recorder.diverged() {
            let Some((time_ns, event)) = self.queue.pop_before(end_ns) else {
                break;
            };
            let host = self.dispatch(event);
            event_count += 1;
            if event_count >= EVENTS_MAX {
                return Err(RunError::Livelock { time_ns });
            }
            if let (true, Some(host)) = (check, host) {
                if let Some(failure) = self.check_host(host, event_count - 1, time_ns) {
                    return Ok((event_count, Some(failure)));
                }
            }
        }
        Ok((event_count, None))
    }

    /// Events waiting in the queue.
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    /// Trace records (core inputs and core events) so far.
    pub fn record_count(&self) -> u64 {
        self.sinks.recorder.record_count()
    }

    /// Records `input` and hands it to `host`'s core, then processes what the core said.
    pub(crate) fn deliver(&mut self, host: u16, input: &CoreInput) {
        let now_ns = self.queue.now_ns();
        self.sinks.input(host, now_ns, input);
        let h = &mut self.hosts[usize::from(host)];
        // The EPT checker looks at what this input changes.
        h.sim.ept.clear_touched();
        let mut platform = SimPlatform {
            now_ns,
            queue: &mut self.queue,
            sim: &mut h.sim,
            sinks: &mut self.sinks,
        };
        // A refused input (a guest event racing a destroy) changes nothing in the core;
        // it is in the trace, so replays refuse it the same way.
        let _refused = h.hv.handle(input, &mut platform);
        // Most inputs (a schedule, a wake) leave nothing for the run loop: then
        // `after_input` would only find its buffers empty, at about 70 instructions and a
        // call per input (`HostSim::has_output` names what it reads).
        if h.sim.has_output() || !self.waiters.is_empty() {
            self.after_input(host);
        }
    }

    /// [`World::deliver`] of an input that owns no heap data (every input `dispatch.rs`
    /// builds but `DiskDone` and `ConsoleWrite`). It is not dropped afterwards: dropping
    /// such a variant frees nothing, and skipping it saves a call of `CoreInput`'s
    /// out-of-line drop glue per input (the records' `trace_plain` does the same).
    #[inline]
    pub(crate) fn deliver_plain(&mut self, host: u16, input: CoreInput) {
        debug_assert!(
            matches!(
                input,
                CoreInput::TimerExpired { .. }
                    | CoreInput::PoolTimer { .. }
                    | CoreInput::Softirq { .. }
                    | CoreInput::VcpuBlock { .. }
                    | CoreInput::VcpuWake { .. }
                    | CoreInput::VcpuYield { .. }
                    | CoreInput::GuestShutdown { .. }
                    | CoreInput::XenstoredDone { .. }
                    | CoreInput::DriverWork { .. }
                    | CoreInput::ToolstackContinue { .. }
                    | CoreInput::BackendWorkDone { .. }
                    | CoreInput::GuestMemFloor { .. }
            ),
            "deliver_plain takes only inputs without heap data"
        );
        self.deliver(host, &std::mem::ManuallyDrop::new(input));
    }

    fn check_host(&self, host: u16, event_index: u64, time_ns: u64) -> Option<InvariantFailure> {
        let h = &self.hosts[usize::from(host)];
        let mut violations = h.hv.check_invariants();
        violations.extend(crate::machine::ept_check::check_ept(
            &h.sim.ept,
            h.hv.memory(),
        ));
        if violations.is_empty() {
            return None;
        }
        Some(InvariantFailure {
            event_index,
            time_ns,
            host: h.name.clone(),
            violations,
        })
    }

    fn finish(
        self,
        end_ns: u64,
        event_count: u64,
        invariant_failure: Option<InvariantFailure>,
    ) -> Result<RunOutcome, RunError> {
        let World {
            mut sinks,
            mut hosts,
            commands,
            mut net,
            ..
        } = self;
        for ((host, dom), drops) in std::mem::take(&mut net.drops) {
            sinks.domain_net_drops(host, dom, drops);
        }
        let (mut recorder, sinks_report) = sinks.finish(end_ns, &mut hosts);
        let record_count = recorder.record_count();
        let captured_records = recorder.take_captured();
        let (hash, divergence) = recorder.finish()?;
        Ok(RunOutcome {
            hash,
            record_count,
            event_count,
            end_ns,
            hosts,
            commands,
            invariant_failure,
            divergence,
            sinks_report,
            captured_records,
        })
    }
}

// The queue moves events around a lot: keep them within 24 bytes.
const _: () = assert!(std::mem::size_of::<SimEvent>() <= 24);
