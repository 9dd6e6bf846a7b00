//! What the platform tells the core at boot: the machine, the Xen build and command line,
//! the pools, dom0, and the toolstack's timing costs.

use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::sched::params::SchedOpts;
use crate::sched::SchedKind;
use crate::toolstack::config::GuestType;

/// Where one pCPU sits (`xl info -n` cpu_topology row).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuTopo {
    /// Core id within the socket.
    pub core: u32,
    /// Socket id.
    pub socket: u32,
    /// NUMA node.
    pub node: u32,
}

/// The physical machine.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// One entry per pCPU, indexed by pCPU number.
    pub cpus: Vec<CpuTopo>,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// SMT threads per core.
    pub threads_per_core: u32,
    /// RAM per NUMA node, pages.
    pub node_memory_pages: Vec<u64>,
    /// SLIT distances, row-major `nodes × nodes`.
    pub node_distances: Vec<u32>,
    /// TSC frequency, kHz (`cpu_khz`).
    pub cpu_khz: u64,
}

impl HostInfo {
    /// Number of pCPUs.
    pub fn nr_cpus(&self) -> u32 {
        u32::try_from(self.cpus.len()).unwrap_or(u32::MAX)
    }

    /// Number of NUMA nodes.
    pub fn nr_nodes(&self) -> u32 {
        u32::try_from(self.node_memory_pages.len()).unwrap_or(u32::MAX)
    }

    /// Total RAM, pages.
    pub fn total_pages(&self) -> u64 {
        self.node_memory_pages.iter().sum()
    }
}

/// The Xen build and boot parameters (`xl info` strings, console banner).
#[derive(Clone, Debug)]
pub struct XenBuild {
    /// `xen_major`.
    pub major: u32,
    /// `xen_minor`.
    pub minor: u32,
    /// `xen_extra` (`".5"`).
    pub extra: String,
    /// `xen_changeset`.
    pub changeset: String,
    /// `cc_compiler`.
    pub compiler: String,
    /// `cc_compile_by`.
    pub compile_by: String,
    /// `cc_compile_domain`.
    pub compile_domain: String,
    /// `cc_compile_date`.
    pub compile_date: String,
    /// `build_id`, hex.
    pub build_id: String,
    /// The full Xen command line.
    pub commandline: String,
    /// Console ring size, bytes (`conring_size=`).
    pub conring_bytes: usize,
    /// Xen command-line options Xen did not recognise (each printed at boot).
    pub unknown_options: Vec<String>,
}

/// An extra cpupool created at boot.
#[derive(Clone, Debug)]
pub struct PoolBoot {
    /// Name.
    pub name: String,
    /// Scheduler.
    pub sched: SchedKind,
    /// pCPUs (taken out of Pool-0).
    pub cpus: CpuMask,
}

/// dom0 as Xen builds it.
#[derive(Clone, Debug)]
pub struct Dom0Boot {
    /// `dom0_mem`, pages.
    pub memory_pages: u64,
    /// `dom0_max_vcpus`.
    pub vcpus: u32,
    /// `dom0_vcpus_pin`.
    pub pin: bool,
    /// Scheduler weight.
    pub weight: u32,
    /// PV or PVH.
    pub guest_type: GuestType,
}

/// Virtual-time costs of toolstack and hypervisor work (cost table keys in comments).
#[derive(Clone, Copy, Debug)]
pub struct CoreCosts {
    /// One domctl round trip from dom0 (`toolstack.domctl_ns`).
    pub domctl_ns: i64,
    /// Populating one page at build time (`mem.balloon_claim_page_ns`).
    pub populate_page_ns: i64,
    /// Loading the kernel and setting up start info and devices (`toolstack.build_ns`).
    pub build_ns: i64,
    /// Tearing down devices and XenStore entries on destroy (`toolstack.destroy_devices_ns`).
    pub destroy_devices_ns: i64,
    /// Relinquishing one page on destroy (`mem.relinquish_page_ns`).
    pub relinquish_page_ns: i64,
    /// Xen scrubbing one dirty page when it allocates it (`mem.scrub_page_ns`).
    pub scrub_page_ns: i64,
    /// Pages the idle loops scrub per millisecond, whole host (`mem.idle_scrub_host_bps`).
    pub idle_scrub_pages_per_ms: u64,
    /// Pages populated per creation step (libxl's extent batch).
    pub populate_batch_pages: u64,
    /// Pages relinquished per destroy step (Xen's preemption check granularity).
    pub relinquish_batch_pages: u64,
    /// One XenStore request of the toolstack, round trip through xenstored
    /// (`toolstack.xs_request_ns`); a create or destroy step pays it per request.
    pub xs_request_ns: i64,
    /// One step of a split driver reacting to a XenStore watch (`io.xenbus_step_ns`): the
    /// driver's xenbus thread wakes, reads the keys, acts and writes.
    pub xenbus_step_ns: i64,
    /// xenstored's CPU time in dom0 per request it handles (`io.xenstored_request_ns`),
    /// run on dom0's vCPU 0 (`hypervisor/xenstored.rs`).
    pub xenstored_request_ns: i64,
    /// blkback's CPU time in dom0 per request (`io.blkback_req_ns`, cost-model §3.3).
    pub blkback_req_ns: i64,
    /// One grant map by blkback (`io.gnttab_map_ns`, cost-model §3.1); with persistent
    /// grants only the first use of a page pays it.
    pub gnttab_map_ns: i64,
    /// One ioreq round trip to QEMU in dom0 (`io.ioreq_dom0_rtt_ns`, cost-model §3.4),
    /// charged to dom0's vCPU 0.
    pub ioreq_dom0_rtt_ns: i64,
    /// The same with QEMU in a stub domain (`io.ioreq_stubdom_rtt_ns`), charged to the
    /// stub domain's vCPU.
    pub ioreq_stubdom_rtt_ns: i64,
    /// ioreqs one emulated disk operation takes (`io.emulated_disk_ioreqs`).
    pub emulated_disk_ioreqs: u32,
    /// ioreqs an emulated NIC's driver makes per transmitted frame
    /// (`io.emulated_nic_tx_ioreqs`).
    pub emulated_nic_tx_ioreqs: u32,
    /// ioreqs an emulated NIC's driver makes per received frame
    /// (`io.emulated_nic_rx_ioreqs`).
    pub emulated_nic_rx_ioreqs: u32,
    /// One VM exit round trip of an HVM guest (`cpu.hvm_exit_rtt_ns`, cost-model §1):
    /// what each of an emulated NIC driver's register accesses costs the guest's vCPU.
    pub hvm_exit_rtt_ns: i64,
    /// The EOI of an emulated device's interrupt by an HVM guest (`cpu.virq_eoi_ns`).
    pub virq_eoi_ns: i64,
    /// xenconsoled's CPU time in dom0 per batch it drains (`io.xenconsoled_batch_ns`).
    pub xenconsoled_batch_ns: i64,
    /// One EPT violation handled in Xen, no allocation (`cpu.ept_violation_ns`,
    /// cost-model §1), charged to the faulting vCPU.
    pub ept_violation_ns: i64,
    /// A PoD fault-in of one page or superpage from the cache on top of the violation
    /// (`mem.pod_fault_ns`, cost-model §2.3).
    pub pod_fault_ns: i64,
    /// netback's CPU time per guest-TX packet (`io.netback_tx_pkt_ns`, cost-model §3.2),
    /// on the backend's vCPU 0.
    pub netback_tx_pkt_ns: i64,
    /// netback's CPU time per guest-RX packet (`io.netback_rx_pkt_ns`, cost-model §3.2).
    pub netback_rx_pkt_ns: i64,
    /// One grant copy of a full page (`io.gnttab_copy_page_ns`, cost-model §3.1): netback
    /// pays it for every page of a packet past the first.
    pub gnttab_copy_page_ns: i64,
    /// netfront's CPU time per frame (`io.netfront_pkt_ns`, cost-model §3.2), charged in
    /// the core only where no guest workload model runs netfront: a device-model stub
    /// domain's own vif (`emunic.rs`).
    pub netfront_pkt_ns: i64,
}

/// Everything the core needs to boot a host.
#[derive(Clone, Debug)]
pub struct BootConfig {
    /// The machine.
    pub host: HostInfo,
    /// The Xen build.
    pub xen: XenBuild,
    /// Pool-0's scheduler (`sched=`).
    pub pool0_sched: SchedKind,
    /// Scheduler options of the command line (`sched_ratelimit_us`, `credit2_*`).
    pub sched_opts: SchedOpts,
    /// Extra pools, ids 1, 2, ... in order.
    pub pools: Vec<PoolBoot>,
    /// pCPUs in no pool.
    pub free_cpus: CpuMask,
    /// dom0.
    pub dom0: Dom0Boot,
    /// Costs.
    pub costs: CoreCosts,
    /// Grant limits for guests (xl.conf `max_grant_frames`, `max_maptrack_frames`).
    pub grant_limits: super::xs_tool::GrantLimits,
    /// xl.conf `claim_mode`: claim a domain's memory before populating it.
    pub claim_mode: bool,
}
