//! `xl info [-n] [KEY]`: host, memory, topology and Xen build facts.
//!
//! Follows tools/xl/xl_info.c (`print_info`, `output_nodeinfo`, `output_physinfo`,
//! `output_topologyinfo`, `output_numainfo`, `output_xeninfo`, `maybe_printf`),
//! xen/common/sysctl.c (`XEN_SYSCTL_physinfo`, `XEN_SYSCTL_numainfo`) and
//! xen/common/kernel.c (`XENVER_*`).
//!
//! # Invariants
//! - Every `key: value` line is `%-23s: %s`; with a KEY (and no `-n`) only the values of
//!   lines whose text starts with KEY are printed.
//!
//! xensim differs: the core tracks free memory per host, not per node. `numa_info`
//! charges every used page (Xen's own, dom0's, guests') to the lowest-numbered node that
//! still has room, so node 0 fills first; the per-node free values add up to the host's
//! free pages, as Xen's `avail_node_heap_pages` do, but their split is an approximation.

use hypervisor_model::hypervisor::Hypervisor;

use super::{XlHost, XlOutput};

/// `hw_caps` of the simulated CPU: the eight `x86_capability` words of the specification's
/// worked example (memory-iommu-migration.md §11.1), a modern x86-64 server part.
const HW_CAPS: [u32; 8] = [
    0x178b_fbff,
    0xf7fa_3223,
    0x2c10_0800,
    0x0000_0121,
    0x0000_000f,
    0x219c_07ab,
    0x0000_0000,
    0x0000_0100,
];

/// `virt_caps`: PV and HVM with HAP and shadow, both grant-table versions. The simulated
/// host has no IOMMU yet, so no `hvm_directio`/`pv_directio`/`iommu_hap_pt_share`.
const VIRT_CAPS: &str = " pv hvm hap shadow gnttab-v1 gnttab-v2";

/// `XENVER_capabilities` of a 64-bit x86 Xen; every entry is followed by a space.
const XEN_CAPS: &str = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ";

/// `HYPERVISOR_VIRT_START` on x86-64 (`XENVER_platform_parameters`).
const VIRT_START: u64 = 0xffff_8000_0000_0000;

/// `XENVER_pagesize`.
const PAGE_BYTES: u64 = 4096;

/// Pages per MiB (`(1 << 20) / pagesize`).
const PAGES_PER_MIB: u64 = 256;

/// `xl info`, `xl info -n` or `xl info KEY` (KEY is ignored with `-n`, as in `main_info`).
pub fn xl_info(host: &XlHost<'_>, numa: bool, key: Option<&str>) -> XlOutput {
    let filter = if numa { None } else { key };
    let mut out = Printer {
        filter,
        text: String::new(),
    };
    node_info(&mut out, host);
    phys_info(&mut out, host.hv);
    if numa {
        topology_info(&mut out, host.hv);
        numa_info(&mut out, host.hv);
    }
    xen_info(&mut out, host.hv);
    out.line("xend_config_format", "4");
    XlOutput::ok(out.text)
}

/// `maybe_printf`: a whole line, or with a filter only the value of matching lines.
struct Printer<'k> {
    filter: Option<&'k str>,
    text: String,
}

impl Printer<'_> {
    fn line(&mut self, key: &str, value: &str) {
        let whole = format!("{key:<23}: {value}\n");
        self.raw_line(&whole);
    }

    /// A preformatted line; the filter keeps the text after the first `": "`, if the
    /// line starts with the filter and its first `:` is followed by a space.
    fn raw_line(&mut self, whole: &str) {
        match self.filter {
            None => self.text.push_str(whole),
            Some(prefix) => {
                if let Some(colon) = whole.starts_with(prefix).then(|| whole.find(':')) {
                    let value = colon.and_then(|at| whole.get(at + 1..));
                    if let Some(rest) = value.and_then(|v| v.strip_prefix(' ')) {
                        self.text.push_str(rest);
                    }
                }
            }
        }
    }

    /// `printf` without the filter (the `-n` tables).
    fn table(&mut self, text: &str) {
        self.text.push_str(text);
    }
}

fn node_info(out: &mut Printer<'_>, host: &XlHost<'_>) {
    out.line("host", host.hostname);
    out.line("release", host.release);
    out.line("version", host.version);
    out.line("machine", "x86_64");
}

fn phys_info(out: &mut Printer<'_>, hv: &Hypervisor) {
    let info = hv.host();
    let nr_cpus = info.nr_cpus();
    out.line("nr_cpus", &nr_cpus.to_string());
    out.line("max_cpu_id", &nr_cpus.saturating_sub(1).to_string());
    out.line("nr_nodes", &info.nr_nodes().to_string());
    out.line("cores_per_socket", &info.cores_per_socket.to_string());
    out.line("threads_per_core", &info.threads_per_core.to_string());
    // cpu_khz is a uint32_t in libxl_physinfo; %d.%03d of khz/1000 and khz%1000.
    let khz = info.cpu_khz;
    out.line("cpu_mhz", &format!("{}.{:03}", khz / 1000, khz % 1000));
    let words: Vec<String> = HW_CAPS.iter().map(|w| format!("{w:08x}")).collect();
    out.line("hw_caps", &words.join(":"));
    out.raw_line(&format!("virt_caps              :{VIRT_CAPS}\n"));
    let claims = hv.outstanding_claim_pages();
    out.line(
        "total_memory",
        &(info.total_pages() / PAGES_PER_MIB).to_string(),
    );
    let free_pages = hv.free_pages().saturating_sub(claims);
    out.line("free_memory", &(free_pages / PAGES_PER_MIB).to_string());
    out.line("sharing_freed_memory", "0");
    out.line("sharing_used_memory", "0");
    out.line("outstanding_claims", &(claims / PAGES_PER_MIB).to_string());
    out.line("free_cpus", &hv.free_cpus().weight().to_string());
}

fn topology_info(out: &mut Printer<'_>, hv: &Hypervisor) {
    out.table("cpu_topology           :\n");
    out.table("cpu:    core    socket     node\n");
    for (index, topo) in hv.host().cpus.iter().enumerate() {
        out.table(&format!(
            "{index:>3}:    {:>4}     {:>4}     {:>4}\n",
            topo.core, topo.socket, topo.node
        ));
    }
    // The simulated host has no PCI devices with a NUMA node yet.
    out.table("device topology        :\n");
    out.table("device           node\n");
    out.table("No device topology data available\n");
}

fn numa_info(out: &mut Printer<'_>, hv: &Hypervisor) {
    let info = hv.host();
    out.table("numa_info              :\n");
    out.table("node:    memsize    memfree    distances\n");
    let nr_nodes = usize::try_from(info.nr_nodes()).unwrap_or(0);
    // physinfo's per-node memfree: the node heaps' free pages (`node_avail_pages`).
    let free_by_node = hv.node_free_pages();
    for (node, (size_pages, free_pages)) in
        info.node_memory_pages.iter().zip(free_by_node).enumerate()
    {
        let row = info
            .node_distances
            .get(node * nr_nodes..(node + 1) * nr_nodes)
            .unwrap_or(&[]);
        let distances: Vec<String> = row.iter().map(u32::to_string).collect();
        out.table(&format!(
            "{node:>4}:    {:>6}     {:>6}      {}\n",
            size_pages / PAGES_PER_MIB,
            free_pages / PAGES_PER_MIB,
            distances.join(",")
        ));
    }
}

fn xen_info(out: &mut Printer<'_>, hv: &Hypervisor) {
    let xen = hv.xen();
    let sched = hv
        .pools()
        .next()
        .map_or("unknown", |pool| pool.sched.opt_name());
    out.line("xen_major", &xen.major.to_string());
    out.line("xen_minor", &xen.minor.to_string());
    out.line("xen_extra", &xen.extra);
    out.line(
        "xen_version",
        &format!("{}.{}{}", xen.major, xen.minor, xen.extra),
    );
    out.line("xen_caps", XEN_CAPS);
    out.line("xen_scheduler", sched);
    out.line("xen_pagesize", &PAGE_BYTES.to_string());
    out.line("platform_params", &format!("virt_start={VIRT_START:#x}"));
    out.line("xen_changeset", &xen.changeset);
    out.line("xen_commandline", &xen.commandline);
    out.line("cc_compiler", &xen.compiler);
    out.line("cc_compile_by", &xen.compile_by);
    out.line("cc_compile_domain", &xen.compile_domain);
    out.line("cc_compile_date", &xen.compile_date);
    out.line("build_id", &xen.build_id);
}
