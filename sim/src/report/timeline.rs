//! The captured timeline of one run: what the Perfetto export (`specs/metrics.md` §4.3)
//! and the HTML report's Gantt chart draw. Per host: the vCPU runs on each pCPU with the
//! reason they ended, the switch overhead charged before them (§1.12 (a)), wake, tickle
//! and migrate instants on pCPUs (§1.1, §1.10), runqueue-length and free-memory counters,
//! toolstack commands as host-wide instants, and xenstored / XenBus events on their own
//! tracks.
//!
//! The timeline is built by [`capture::TimelineCapture`], a sink fed the same core inputs
//! and core events as the metrics collector (`run/sinks.rs`), and only when a run asks for
//! it, so a run without `--perfetto`/`--report` pays nothing.
//!
//! # Invariants
//! - Every record lies in the window `[start_ns, end_ns)`; slices are clipped to it.
//! - Slices on one pCPU never overlap and have a non-zero length.
//! - `seq` numbers are unique per host and follow capture order (the ordering tie-break).
//! - At most [`TIMELINE_RECORDS_MAX`] records per run; later ones are counted in
//!   `dropped_count`, never silently lost.
//!
//! Left out: the `balloon` counter (no balloon model yet) and faults (`[[at]] fault` is not
//! run yet); wake instants sit on the pCPU the vCPU last ran on or was created or assigned
//! on, since the trace does not say where a waking vCPU is queued.

pub mod capture;

/// Most records (slices, instants, counter samples) one timeline keeps: about 100 bytes
/// each in memory and in the Perfetto file, so a few hundred MB at most.
pub const TIMELINE_RECORDS_MAX: usize = 4_000_000;

/// The captured timeline of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// Window start, ns.
    pub start_ns: u64,
    /// Window end (exclusive), ns.
    pub end_ns: u64,
    /// Hosts by index.
    pub hosts: Vec<HostTimeline>,
    /// Records not kept because the timeline was full.
    pub dropped_count: u64,
}

/// One host's tracks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostTimeline {
    /// Host name (`h0`).
    pub name: String,
    /// pCPUs of the host.
    pub pcpu_count: u32,
    /// Domains seen, in creation order (a reused domid appears again with its new name).
    pub domains: Vec<DomainLabel>,
    /// Runs and overhead, in the order they ended.
    pub slices: Vec<Slice>,
    /// Instants, in capture order.
    pub instants: Vec<Instant>,
    /// Counter tracks; samples name them by index.
    pub counters: Vec<CounterTrack>,
    /// Counter samples, in capture order.
    pub samples: Vec<CounterSample>,
}

/// A domain as the legend names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainLabel {
    /// Domain id.
    pub domid: u16,
    /// Domain name.
    pub name: String,
}

/// A complete slice on a pCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// Host-local pCPU number.
    pub pcpu: u32,
    /// Start, ns.
    pub start_ns: u64,
    /// Length, ns (never 0).
    pub dur_ns: u64,
    /// Capture sequence of the decision that started it.
    pub seq: u64,
    /// A vCPU run or charged overhead.
    pub kind: SliceKind,
}

/// What a slice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceKind {
    /// A vCPU ran.
    Run {
        /// Domain id.
        dom: u16,
        /// vCPU index.
        vcpu: u32,
        /// Why the run ended.
        end: EndReason,
    },
    /// Switch overhead charged to the pCPU (§1.12 (a)); nothing runs.
    Overhead,
}

/// How a vCPU run ended (§1.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `running → runnable`, not a yield.
    Preempt,
    /// `running → runnable` while handling the vCPU's SCHEDOP_yield.
    Yield,
    /// `running → blocked`.
    Block,
    /// `running → offline`.
    Offline,
    /// Still running at the end of the window.
    WindowEnd,
}

impl EndReason {
    /// The name §4.3 gives it.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Preempt => "preempt",
            EndReason::Yield => "yield",
            EndReason::Block => "block",
            EndReason::Offline => "offline",
            EndReason::WindowEnd => "window_end",
        }
    }
}

/// An instant event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instant {
    /// Time, ns.
    pub time_ns: u64,
    /// Capture sequence.
    pub seq: u64,
    /// Where it is drawn.
    pub track: Track,
    /// What happened.
    pub kind: InstantKind,
}

/// The track of an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Track {
    /// A pCPU's track.
    Pcpu(u32),
    /// xenstored's work in dom0.
    Xenstored,
    /// XenBus watch events and state changes of the split drivers.
    Xenbus,
    /// The host as a whole (toolstack commands).
    Host,
}

/// A vCPU of a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuLabel {
    /// Domain id.
    pub dom: u16,
    /// vCPU index.
    pub vcpu: u32,
}

/// How far a migration went (§1.10): the largest boundary it crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateLevel {
    /// Another pCPU of the same runqueue and node.
    Pcpu,
    /// Another credit2 runqueue on the same node.
    Runq,
    /// Another NUMA node.
    Numa,
}

impl MigrateLevel {
    /// The name §4.3 gives it.
    pub fn name(self) -> &'static str {
        match self {
            MigrateLevel::Pcpu => "pcpu",
            MigrateLevel::Runq => "runq",
            MigrateLevel::Numa => "numa",
        }
    }
}

/// What an instant records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstantKind {
    /// A vCPU became runnable from blocked or offline.
    Wake(VcpuLabel),
    /// SCHEDULE_SOFTIRQ raised on the track's pCPU: by the pCPU whose event was being
    /// handled, for the vCPU that had just become runnable, when the trace says so.
    Tickle {
        /// The pCPU that raised it.
        from_pcpu: Option<u32>,
        /// The vCPU whose wake or arrival caused it.
        vcpu: Option<VcpuLabel>,
    },
    /// A vCPU runs on another pCPU than its previous run.
    Migrate {
        /// The vCPU.
        vcpu: VcpuLabel,
        /// Its previous pCPU.
        from_pcpu: u32,
        /// Its new pCPU.
        to_pcpu: u32,
        /// The boundary crossed.
        level: MigrateLevel,
    },
    /// A toolstack command (the command line).
    Command(String),
    /// xenstored queued requests as CPU work on dom0.
    XenstoredWork {
        /// Work item.
        item: u64,
        /// Requests added.
        requests: u32,
        /// Rings it will also serve.
        rings: u32,
    },
    /// dom0 ran xenstored's work item to its end.
    XenstoredDone {
        /// Work item.
        item: u64,
    },
    /// A watch event reached a split driver.
    XenbusEvent {
        /// The event's path.
        path: String,
    },
    /// A split driver switched its XenBus state.
    XenbusState {
        /// The `state` key.
        path: String,
        /// The state written.
        state: u8,
    },
}

/// A counter track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterTrack {
    /// Track name (`runq rq0`, `waitq Pool-0`, `free memory`).
    pub name: String,
    /// Its argument key (`len`, `kib`).
    pub key: &'static str,
}

/// A counter value from `time_ns` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterSample {
    /// Time, ns.
    pub time_ns: u64,
    /// Capture sequence.
    pub seq: u64,
    /// Index into [`HostTimeline::counters`].
    pub counter: u32,
    /// The value.
    pub value: u64,
}

impl Timeline {
    /// Records kept, over all hosts.
    pub fn record_count(&self) -> usize {
        self.hosts
            .iter()
            .map(|h| h.slices.len() + h.instants.len() + h.samples.len())
            .sum()
    }
}

impl HostTimeline {
    /// The name of domain `domid` as of the latest creation with that id.
    pub fn domain_name(&self, domid: u16) -> Option<&str> {
        self.domains
            .iter()
            .rev()
            .find(|d| d.domid == domid)
            .map(|d| d.name.as_str())
    }
}
