//! The typed scenario: what `specs/scenario.md` describes, after loading and validation.
//!
//! The loader (`load.rs`, `xlcfg.rs`) builds these from TOML and xl.cfg text; the run loop
//! (`run.rs`) and the guest models (`guest/`) consume them. Every value is already checked:
//! durations are `u64` ns, sizes are bytes, xl.cfg files are `DomainConfig`s.

use std::collections::BTreeMap;

use hypervisor_model::toolstack::config::DomainConfig;

use crate::xl::command::XlCommand;

/// A whole scenario file, validated.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// File name of the scenario as given on the command line (for reports and traces).
    pub file_name: String,
    /// Every input file read (the scenario first, then each xl.cfg in order), with contents,
    /// so the replay trace header can hash them.
    pub sources: Vec<SourceFile>,
    /// `[sim]`.
    pub sim: SimSpec,
    /// `[host.<name>]` tables in name order (TOML tables are unordered; BTreeMap order).
    pub hosts: Vec<HostSpec>,
    /// `[[domain]]` entries in file order.
    pub domains: Vec<DomainSpec>,
    /// `[[at]]` entries sorted by time; equal times keep file order.
    pub timeline: Vec<AtEntry>,
    /// `[[expect]]` entries in file order.
    pub expects: Vec<Expect>,
    /// Located warnings (unknown xl.cfg keys and the like), already rendered.
    pub warnings: Vec<String>,
    /// xl.cfg files named by `[[at]] xl = "create PATH"`, parsed at load time, keyed by the
    /// path as written in the command.
    pub create_configs: BTreeMap<String, DomainConfig>,
    /// `[fabric]` (present iff there are two or more hosts).
    pub fabric: Option<FabricSpec>,
    /// Global `[costs]` overrides, by cost key.
    pub costs: BTreeMap<String, CostValue>,
}

/// One file the scenario is made of.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as written (relative to the scenario for xl.cfg files).
    pub name: String,
    /// The exact bytes read.
    pub text: String,
}

/// `[sim]`.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Root of every random stream (`--seed` overrides it).
    pub seed: u64,
    /// Run length, ns (> 0).
    pub duration_ns: u64,
    /// Start of the metrics window, ns (< duration).
    pub warmup_ns: u64,
    /// Run the invariant checker after every event.
    pub check: bool,
    /// `[sim.trace] file`, relative to the scenario file's directory, resolved.
    pub trace_file: Option<std::path::PathBuf>,
    /// `[sim.trace] decision_log`.
    pub decision_log: bool,
    /// `percentile_method`: `"nearest_rank"` (default) or `"hdr_3sd"`.
    pub percentile_method: String,
    /// `[sim.trace] perfetto`, resolved like `trace_file`.
    pub perfetto_file: Option<std::path::PathBuf>,
    /// `[sim.trace] perfetto_window`, ns (`None` = whole run).
    pub perfetto_window_ns: Option<(u64, u64)>,
    /// `[sim.trace] perfetto_counters` (`runq`, `free_memory`, `balloon`); all by default.
    pub perfetto_counters: Vec<String>,
}

/// Scheduler names a pool can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedName {
    /// credit2 (Xen 4.17's default).
    Credit2,
    /// rtds.
    Rtds,
    /// null.
    Null,
}

impl SchedName {
    /// The name as Xen prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedName::Credit2 => "credit2",
            SchedName::Rtds => "rtds",
            SchedName::Null => "null",
        }
    }
}

/// `topology = { ... }` plus the NUMA layout derived from it.
#[derive(Debug, Clone)]
pub struct TopologySpec {
    /// Sockets (≥ 1).
    pub sockets: u32,
    /// Cores per socket (≥ 1).
    pub cores_per_socket: u32,
    /// SMT threads per core (1, 2 or 4).
    pub threads_per_core: u32,
    /// NUMA nodes (`"per-socket"` = sockets, `"single"` = 1, or the integer).
    pub numa_nodes: u32,
    /// SLIT distances, `numa_nodes × numa_nodes`.
    pub distances: Vec<Vec<u32>>,
}

/// A cpu list as written (`"0-3,8"`, `"node:1"`, `"all"`), kept as text and resolved
/// against a host by `xl::cpulist`.
pub type CpuListText = String;

/// An extra cpupool created at boot.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// Its pCPUs.
    pub cpus: CpuListText,
    /// Its scheduler.
    pub scheduler: SchedName,
}

/// dom0's vCPU count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dom0Vcpus {
    /// `dom0_max_vcpus=N`.
    Count(u32),
    /// One per pCPU (Xen's default when the option is absent).
    All,
}

/// `[host.<name>.dom0]`.
#[derive(Debug, Clone)]
pub struct Dom0Spec {
    /// `dom0_mem`, bytes.
    pub memory_bytes: u64,
    /// `dom0_max_vcpus`.
    pub vcpus: Dom0Vcpus,
    /// `dom0_vcpus_pin`.
    pub pin: bool,
    /// credit2 weight.
    pub weight: u32,
    /// `"pv"` or `"pvh"`.
    pub pvh: bool,
    /// dom0's own load.
    pub workload: WorkloadSpec,
    /// The memory model of dom0's workload (see [`MemoryWorkload`]).
    pub memory: Option<MemoryWorkload>,
    /// `uname -r`.
    pub release: String,
    /// `uname -v`.
    pub version: String,
}

/// `[host.<name>.xen]`.
#[derive(Debug, Clone)]
pub struct XenSpec {
    /// `"4.17.5"`.
    pub version: String,
    /// `xen_changeset`.
    pub changeset: String,
    /// `cc_compiler`.
    pub cc_compiler: String,
    /// `cc_compile_by`.
    pub cc_compile_by: String,
    /// `cc_compile_domain`.
    pub cc_compile_domain: String,
    /// `cc_compile_date`.
    pub cc_compile_date: String,
    /// `build_id`.
    pub build_id: String,
    /// Xen command-line options by exact name, values as text (sorted by key).
    pub options: BTreeMap<String, String>,
    /// Appended verbatim to the command line.
    pub extra_cmdline: String,
}

/// One `[host.<name>]`.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Table name.
    pub name: String,
    /// CPU topology and NUMA layout.
    pub topology: TopologySpec,
    /// RAM per NUMA node, bytes (sums to the host's memory).
    pub node_memory_bytes: Vec<u64>,
    /// Pool-0's scheduler.
    pub scheduler: SchedName,
    /// Extra pools, ids 1, 2, ... in list order.
    pub cpupools: Vec<PoolSpec>,
    /// pCPUs in no pool.
    pub free_cpus: Option<CpuListText>,
    /// dom0 `uname -n`.
    pub hostname: String,
    /// dom0 settings.
    pub dom0: Dom0Spec,
    /// Xen build and command line.
    pub xen: XenSpec,
    /// Cost-model machine profile (`cost-model.md` §6).
    pub profile: String,
    /// Physical NICs.
    pub nics: Vec<NicSpec>,
    /// Physical disks.
    pub disks: Vec<HostDiskSpec>,
    /// `/etc/xen/xl.conf`.
    pub xl_conf: XlConfSpec,
    /// `[host.<name>.costs]` overrides, by cost key.
    pub costs: BTreeMap<String, CostValue>,
}

/// A physical NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    /// `eth0`.
    pub name: String,
    /// Line rate, bytes/s.
    pub rate_bytes_per_s: u64,
}

/// A physical disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDiskSpec {
    /// `nvme0`.
    pub name: String,
    /// `nvme`, `optane`, `sata-ssd` or `hdd`.
    pub model: String,
    /// NUMA node it hangs off.
    pub node: u32,
}

/// `[host.<name>.xl_conf]`: the xl.conf keys xensim models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlConfSpec {
    /// `claim_mode` (default on).
    pub claim_mode: bool,
    /// `autoballoon`: `"off"`, `"on"` or `"auto"`.
    pub autoballoon: String,
    /// `vif.default.bridge`.
    pub vif_default_bridge: String,
    /// `max_grant_frames`.
    pub max_grant_frames: u32,
    /// `max_maptrack_frames`.
    pub max_maptrack_frames: u32,
}

/// A cost-table value: fixed, or jittered uniformly in `lo..=hi` (`cost-model.md` §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostValue {
    /// A fixed value in the key's unit.
    Fixed(u64),
    /// Uniform jitter.
    Range {
        /// Lower bound.
        lo: u64,
        /// Upper bound (≥ `lo`).
        hi: u64,
    },
}

/// One network link's parameters (`[fabric]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// One-way delay per frame.
    pub latency: Dist,
    /// Serialisation rate, bytes/s.
    pub bandwidth_bytes_per_s: u64,
    /// Drop probability per frame, ppm.
    pub loss_ppm: u32,
    /// Largest frame, bytes.
    pub mtu_bytes: u32,
}

/// A per-pair override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOverride {
    /// Index into `Scenario::hosts`.
    pub a_host_index: usize,
    /// Index into `Scenario::hosts`.
    pub b_host_index: usize,
    /// The link (unset fields taken from the default link).
    pub link: LinkSpec,
}

/// `[fabric]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricSpec {
    /// Every pair not in `links`.
    pub default_link: LinkSpec,
    /// Overrides, symmetric.
    pub links: Vec<LinkOverride>,
}

/// A random variable over durations (ns) or sizes (bytes); `specs/scenario.md` §6.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// Always this value.
    Const(u64),
    /// Uniform over `lo..=hi`.
    Uniform {
        /// Lower bound (inclusive).
        lo: u64,
        /// Upper bound (inclusive).
        hi: u64,
    },
    /// Exponential with this mean.
    Exp {
        /// Mean.
        mean: u64,
    },
    /// Log-normal with this median and shape (sigma in thousandths).
    LogNormal {
        /// Median.
        median: u64,
        /// Shape parameter × 1000.
        sigma_milli: u32,
    },
}

/// What each vCPU of a domain does (`specs/scenario.md` §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadSpec {
    /// Blocked; with `tick`, wakes every tick and runs `tick_work`.
    Idle {
        /// Wake interval.
        tick: Option<Dist>,
        /// CPU demand per tick.
        tick_work: Dist,
    },
    /// Always runnable; optionally yields after `yield_every` of run time.
    CpuBound {
        /// Run time between yields.
        yield_every: Option<Dist>,
    },
    /// Periodic real-time jobs.
    Periodic {
        /// Release period, ns.
        period_ns: u64,
        /// CPU demand per job.
        wcet: Dist,
        /// Relative deadline, ns.
        deadline_ns: u64,
        /// Offset of the first release (drawn once per vCPU).
        phase: Dist,
        /// Added to each job's ready time.
        jitter: Dist,
    },
    /// Runs `service`, sleeps `think`, repeats.
    Bursty {
        /// CPU demand per burst.
        service: Dist,
        /// Sleep between bursts.
        think: Dist,
    },
    /// Runs `service`, submits `queue_depth` disk I/Os, blocks until all complete,
    /// sleeps `think`, repeats.
    Io {
        /// CPU demand before each batch.
        service: Dist,
        /// Sleep after each batch.
        think: Dist,
        /// What the I/Os are.
        disk: DiskWorkload,
    },
    /// Runs `service`, sends one request of `tx_size` over a vif to its peer, blocks until
    /// the `rx_size` answer arrives, sleeps `think`, repeats.
    NetIo {
        /// CPU demand before each request.
        service: Dist,
        /// Sleep after each answer.
        think: Dist,
        /// What the requests are.
        net: NetWorkload,
    },
    /// Picks an entry by weight, runs it for `span`, picks again.
    Mixed {
        /// The entries (never `Mixed` or `Periodic`).
        mix: Vec<MixEntry>,
    },
    /// A non-`io` workload with a `net` sub-table that has `rate`: `base` runs as usual
    /// and the vCPU also sends a message of `tx_size` every `rate` gap without blocking
    /// (`guest/stream.rs`).
    NetStream {
        /// The workload (never `Io`, `NetIo` or `NetStream`).
        base: Box<WorkloadSpec>,
        /// Where the messages go and their sizes.
        net: NetWorkload,
        /// Gap between two sends (wall time).
        rate: Dist,
    },
    /// A non-`io` workload with a `disk` sub-table that has `rate`: `base` runs as usual
    /// and the vCPU also submits one I/O of `size` every `rate` gap without blocking, at
    /// most `queue_depth` outstanding (`guest/disk_stream.rs`).
    DiskStream {
        /// The workload (never `Io`, `NetIo`, `NetStream` or `DiskStream`).
        base: Box<WorkloadSpec>,
        /// Which vbd and what the I/Os are.
        disk: DiskWorkload,
        /// Gap between two submissions (wall time).
        rate: Dist,
    },
}

impl WorkloadSpec {
    /// Every `net` sub-table the vCPU sends with (`io` over a vif, streams), `mixed`
    /// entries' included, outermost first.
    pub fn nets(&self) -> Vec<&NetWorkload> {
        let mut out = Vec::new();
        self.visit(&mut |spec| {
            if let WorkloadSpec::NetIo { net, .. } | WorkloadSpec::NetStream { net, .. } = spec {
                out.push(net);
            }
        });
        out
    }

    /// Every `disk` sub-table the vCPU does I/O with (`io` over a vbd, streams), `mixed`
    /// entries' included, outermost first.
    pub fn disks_mut(&mut self) -> Vec<&mut DiskWorkload> {
        match self {
            WorkloadSpec::Io { disk, .. } => vec![disk],
            WorkloadSpec::DiskStream { base, disk, .. } => {
                let mut out = vec![disk];
                out.extend(base.disks_mut());
                out
            }
            WorkloadSpec::NetStream { base, .. } => base.disks_mut(),
            WorkloadSpec::Mixed { mix } => mix
                .iter_mut()
                .flat_map(|entry| entry.workload.disks_mut())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// True if the workload, or one nested in it, uses a vbd or a vif.
    pub fn uses_devices(&self) -> bool {
        let mut uses = false;
        self.visit(&mut |spec| {
            uses |= matches!(
                spec,
                WorkloadSpec::Io { .. }
                    | WorkloadSpec::NetIo { .. }
                    | WorkloadSpec::NetStream { .. }
                    | WorkloadSpec::DiskStream { .. }
            );
        });
        uses
    }

    /// Calls `f` on this workload and every workload nested in it (stream bases, `mixed`
    /// entries), outermost first.
    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a WorkloadSpec)) {
        f(self);
        match self {
            WorkloadSpec::NetStream { base, .. } | WorkloadSpec::DiskStream { base, .. } => {
                base.visit(f)
            }
            WorkloadSpec::Mixed { mix } => mix.iter().for_each(|entry| entry.workload.visit(f)),
            _ => {}
        }
    }
}

/// The `os` sub-table of a domain's workloads (`workload_os.rs`): events per second of the
/// workload's native run time whose cost depends on the guest mode (`guest/modes.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OsRates {
    /// User syscalls per second (`syscall_rate`).
    pub syscalls_per_s: u64,
    /// Page-table entry writes per second (`pt_update_rate`).
    pub pt_updates_per_s: u64,
    /// TLB misses per second (`tlb_miss_rate`).
    pub tlb_misses_per_s: u64,
}

/// The `memory` sub-table of a workload (`specs/scenario.md` §6.1), the input of the
/// guest memory model (`specs/memory-iommu-migration.md` §5.5).
///
/// Memory is a property of the guest, not of one vCPU: the sub-table may be written on any
/// workload of a domain (`workload`, any `vcpu_workloads` entry, any `mixed` entry), and
/// the loader folds every occurrence into the one `memory` field of [`DomainSpec`] (or
/// [`Dom0Spec`]). Occurrences within one domain must be equal (a located error otherwise),
/// so a workload repeated on every vCPU describes one address space, not one per vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryWorkload {
    /// `working_set`: the size `W` the workload touches, bytes (0: no swap model).
    pub working_set_bytes: u64,
    /// `page_cache`: reclaimable page cache the balloon driver takes before failing, bytes.
    pub page_cache_bytes: u64,
    /// `dirty_rate`: pages written per second of run time.
    pub dirty_pages_per_s: u64,
    /// `hot_ppm`: share of accesses that hit the hot part of `W`.
    pub hot_ppm: u32,
    /// `hot_set`: size of the hot part, bytes (≤ `working_set_bytes`; defaults to it).
    pub hot_set_bytes: u64,
    /// `floor_ppm`: the non-swappable share of `W`; below it the guest OOM-kills its workload.
    pub floor_ppm: u32,
}

impl MemoryWorkload {
    /// 4 KiB pages of `bytes`, rounded up.
    pub const fn pages_of(bytes: u64) -> u64 {
        bytes.div_ceil(4096)
    }

    /// `W` in 4 KiB pages.
    pub const fn working_set_pages(&self) -> u64 {
        Self::pages_of(self.working_set_bytes)
    }

    /// The hot set in 4 KiB pages.
    pub const fn hot_set_pages(&self) -> u64 {
        Self::pages_of(self.hot_set_bytes)
    }

    /// The page cache in 4 KiB pages.
    pub const fn page_cache_pages(&self) -> u64 {
        Self::pages_of(self.page_cache_bytes)
    }
}

/// Direction of the I/Os of a disk workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskOpSpec {
    /// Reads only.
    Read,
    /// Writes only.
    Write,
    /// Reads with this probability (ppm), else writes.
    Mix {
        /// Share of reads, ppm.
        read_ppm: u32,
    },
}

/// The `disk` sub-table of an `io` workload or a disk stream (`specs/scenario.md` §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskWorkload {
    /// The xl.cfg vdev (`xvda`); the loader fills in the domain's first disk.
    pub vbd: String,
    /// Direction.
    pub op: DiskOpSpec,
    /// Bytes per I/O (a size distribution; rounded up to whole 4 KiB pages).
    pub size: Dist,
    /// Sequential (`true`) or uniformly random 4 KiB-aligned offsets.
    pub sequential: bool,
    /// I/Os outstanding per batch.
    pub queue_depth: u32,
    /// `sync = true`: each batch ends with a flush (fsync; blkfront sends it as
    /// `BLKIF_OP_FLUSH_DISKCACHE` with no segments), and the batch is done when it is.
    pub sync: bool,
}

/// Who answers a vif workload's requests (`net.peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetPeer {
    /// dom0's own stack on the guest's host.
    Dom0,
    /// A sink behind the host's NIC.
    External,
    /// The kernel of the named domain (any host), on its vif 0.
    Domain(String),
}

/// The `net` sub-table of an `io` workload (`specs/scenario.md` §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetWorkload {
    /// Index into the xl.cfg `vif` list (the vif's devid).
    pub vif: u32,
    /// Who answers.
    pub peer: NetPeer,
    /// Bytes per request.
    pub tx_size: Dist,
    /// Bytes per answer.
    pub rx_size: Dist,
}

/// One entry of a `mixed` workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixEntry {
    /// Relative weight (≥ 1).
    pub weight: u32,
    /// How long the entry runs once picked.
    pub span: Dist,
    /// The entry's workload.
    pub workload: WorkloadSpec,
}

/// One `[[domain]]`.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    /// Domain name (unique across hosts).
    pub name: String,
    /// Index into `Scenario::hosts`.
    pub host_index: usize,
    /// The parsed xl.cfg.
    pub config: DomainConfig,
    /// The xl.cfg path as `xl create` would print it (`Parsing config from <path>`);
    /// for inline configs, `<name>.cfg`.
    pub config_path: String,
    /// When `xl create` is issued, ns.
    pub start_ns: u64,
    /// `xl create -p`.
    pub paused: bool,
    /// Per-vCPU workloads (length = `config.max_vcpus`; `workload` repeated if not per vCPU).
    pub vcpu_workloads: Vec<WorkloadSpec>,
    /// The guest's memory model: the `memory` sub-table of its workloads (all equal), or
    /// `None` when none has one (see [`MemoryWorkload`]).
    pub memory: Option<MemoryWorkload>,
    /// The guest kernel's mode-dependent event rates: the `os` sub-table of its workloads
    /// (all equal), or `None`.
    pub os: Option<OsRates>,
    /// `rtds = { period, budget, extratime }`: set on every vCPU between build and unpause.
    pub rtds: Option<hypervisor_model::sched::params::VcpuParams>,
}

/// What an `[[at]]` entry does.
#[derive(Debug, Clone)]
pub enum AtAction {
    /// An xl command line, already parsed.
    Xl(XlCommand),
    /// A xenstore-* client command line, already parsed.
    Xenstore(hypervisor_model::toolstack::xs_client::XsClientCmd),
    /// `fault = { kind = "disk-error", ... }`: blkback answers the next `count` requests
    /// of the domain's vbd with `BLKIF_RSP_ERROR`.
    DiskError {
        /// The domain's name.
        domain: String,
        /// The vbd's `virtual-device` number.
        vdev: u32,
        /// Requests to fail.
        count: u32,
    },
    /// `fault = { kind = "crash-domain", domain }`: the domain's kernel panics
    /// (`SCHEDOP_shutdown(SHUTDOWN_crash)`); xl's monitor applies its `on_crash`.
    CrashDomain {
        /// The domain's name.
        domain: String,
    },
    /// `fault = { kind = "host-crash", host }`: the host loses power: its disks' volatile
    /// caches are gone and nothing runs on it any more (one host; links to it go down
    /// with it when the fabric exists).
    HostCrash {
        /// The host's name.
        host: String,
    },
    /// `partition`, `heal` or `link-loss` (`specs/scenario.md` §7.1).
    Fabric(FabricFault),
    /// `fault = { kind = "restart-domain", domain }`: the guest calls
    /// `SCHEDOP_shutdown(SHUTDOWN_reboot)`; xl's monitor applies its `on_reboot`.
    RestartDomain {
        /// The domain's name.
        domain: String,
    },
    /// `fault = { kind = "lost-interrupt", domain, port, count }`: the next `count`
    /// notifications to the domain's event-channel `port` are lost.
    LostInterrupt {
        /// The domain's name.
        domain: String,
        /// The port.
        port: u32,
        /// Notifications to lose.
        count: u32,
    },
    /// `fault = { kind = "spurious-timer", host, pcpu }`: the pCPU's scheduler timer
    /// fires once now, armed or not (`host` is the entry's `host_index`).
    SpuriousTimer {
        /// The pCPU.
        pcpu: u32,
    },
}

/// A fault on the network between hosts (host indices into `Scenario::hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FabricFault {
    /// Every link between a host of `a` and a host of `b` drops all frames.
    Partition {
        /// One side.
        a: Vec<usize>,
        /// The other side.
        b: Vec<usize>,
    },
    /// Undoes the matching partition, or every partition when `None`.
    Heal {
        /// The sides, if named.
        sides: Option<(Vec<usize>, Vec<usize>)>,
    },
    /// Sets the loss of the link between `a` and `b` (both directions).
    LinkLoss {
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
        /// Drop probability per frame, ppm.
        loss_ppm: u32,
    },
}

/// One `[[at]]` entry.
#[derive(Debug, Clone)]
pub struct AtEntry {
    /// When it starts, ns.
    pub time_ns: u64,
    /// Index into `Scenario::hosts`.
    pub host_index: usize,
    /// The command.
    pub action: AtAction,
    /// The command line as written (for the trace and the run log).
    pub text: String,
    /// Required exit status, if any.
    pub expect_rc: Option<i32>,
}

/// One `[[expect]]`.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Metric path (`domain.web.wakeup_latency_ns.p99`).
    pub metric: String,
    /// Inclusive lower bound.
    pub min: Option<i64>,
    /// Inclusive upper bound.
    pub max: Option<i64>,
    /// Exact value.
    pub eq: Option<i64>,
    /// A null value passes.
    pub allow_null: bool,
}
