//! Turns a validated `[host.<name>]` into the core's `BootConfig`: topology, NUMA memory,
//! pools, dom0, the Xen command line, and the toolstack's costs.
//!
//! The command line is assembled as `specs/scenario.md` §4.2 says: `dom0_mem`,
//! `dom0_max_vcpus` (omitted for `"all"`), `dom0_vcpus_pin`, `sched=`, the options sorted by
//! key, then `extra_cmdline`.

use std::collections::BTreeMap;

use hypervisor_model::cpumask::CpuMask;
use hypervisor_model::hypervisor::boot::{
    BootConfig, CoreCosts, CpuTopo, Dom0Boot, HostInfo, PoolBoot, XenBuild,
};
use hypervisor_model::limits::{CONRING_BYTES_DEFAULT, PAGE_BYTES};
use hypervisor_model::sched::SchedKind;
use hypervisor_model::toolstack::config::GuestType;

use crate::machine::topology::Topology;
use crate::scenario::host_extra::XEN_OPTIONS;
use crate::scenario::model::{CostValue, Dom0Vcpus, HostSpec, SchedName};
use crate::xl::cpulist::{CpuList, HostCpus};

/// Virtual time a guest kernel takes from `control/shutdown` to SCHEDOP_shutdown
/// (`guest.shutdown_reaction_ns`; E: an orderly poweroff of a small Linux guest).
pub const GUEST_SHUTDOWN_REACTION_NS_DEFAULT: u64 = 100_000_000;

/// Guest CPU per disk I/O in blkfront (`io.blkfront_req_ns`; E: cost-model §3.3).
pub const BLKFRONT_REQ_NS_DEFAULT: u64 = 1_500;

/// Guest CPU per packet in netfront (`io.netfront_pkt_ns`; E: cost-model §3.2).
pub const NETFRONT_PKT_NS_DEFAULT: u64 = 300;

/// Simulated TSC frequency, kHz (`xl info` cpu_mhz 2400.000; the `default` profile).
const CPU_KHZ_DEFAULT: u64 = 2_400_000;

/// A host that cannot be built from its (already validated) spec.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The topology is impossible.
    #[error("[host.{host}] topology: {reason}")]
    Topology {
        /// Host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// A cpu list does not resolve.
    #[error("[host.{host}] {key}: {reason}")]
    CpuList {
        /// Host name.
        host: String,
        /// Which key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn sched_kind(name: SchedName) -> SchedKind {
    match name {
        SchedName::Credit2 => SchedKind::Credit2,
        SchedName::Rtds => SchedKind::Rtds,
        SchedName::Null => SchedKind::Null,
    }
}

/// A host's cost table: the scenario's `[costs]` overridden by the host's own.
pub fn merged_costs(
    global: &BTreeMap<String, CostValue>,
    host: &BTreeMap<String, CostValue>,
) -> BTreeMap<String, CostValue> {
    let mut merged = global.clone();
    merged.extend(host.iter().map(|(k, v)| (k.clone(), *v)));
    merged
}

/// Cost of one cost-table key: the scenario's value (the midpoint of a range) or the default.
pub fn cost_ns(costs: &BTreeMap<String, CostValue>, key: &str, default_ns: u64) -> u64 {
    match costs.get(key) {
        Some(CostValue::Fixed(value)) => *value,
        Some(CostValue::Range { lo, hi }) => lo + (hi - lo) / 2,
        None => default_ns,
    }
}

fn cost_i64(costs: &BTreeMap<String, CostValue>, key: &str, default_ns: u64) -> i64 {
    i64::try_from(cost_ns(costs, key, default_ns)).unwrap_or(i64::MAX)
}

/// The toolstack costs, from the default table overridden by the scenario's `[costs]`
/// and then the host's `[host.<name>.costs]`.
pub fn core_costs(
    global: &BTreeMap<String, CostValue>,
    host: &BTreeMap<String, CostValue>,
) -> CoreCosts {
    let merged = merged_costs(global, host);
    CoreCosts {
        // E: a libxl step is several domctls and XenStore transactions from dom0.
        domctl_ns: cost_i64(&merged, "toolstack.domctl_ns", 50_000),
        // D: populate_physmap per page, as `mem.balloon_claim_page_ns` (cost-model §2.3).
        populate_page_ns: cost_i64(&merged, "mem.balloon_claim_page_ns", 1_200),
        // E: loading a kernel, start info, console and XenStore set-up.
        build_ns: cost_i64(&merged, "toolstack.build_ns", 20_000_000),
        // E: backends closing and XenStore entries removed.
        destroy_devices_ns: cost_i64(&merged, "toolstack.destroy_devices_ns", 10_000_000),
        // E: Xen-side free of one page (cost-model §2.3, balloon release row).
        relinquish_page_ns: cost_i64(&merged, "mem.relinquish_page_ns", 300),
        // D: cost-model §2.3, one core scrubbing a 4 KiB page.
        scrub_page_ns: cost_i64(&merged, "mem.scrub_page_ns", 1_500),
        // D: cost-model §2.3, 17 GB/s of idle-loop scrubbing over the whole host.
        idle_scrub_pages_per_ms: cost_ns(&merged, "mem.idle_scrub_host_bps", 17_000_000_000)
            / PAGE_BYTES
            / 1_000,
        // libxl populates in extents; 256 MiB per step keeps creates interleavable.
        populate_batch_pages: 65_536,
        // Xen checks for preemption while relinquishing; 256 MiB per continuation.
        relinquish_batch_pages: 65_536,
        // E: as `io.xenstored_request_ns` (cost-model §3.1): xenstored's wake-up, tree
        // work and reply; libxl's own side of the socket round trip is small beside it.
        xs_request_ns: cost_i64(&merged, "toolstack.xs_request_ns", 20_000),
        // E: a driver's xenbus thread waking on a watch, reading a few keys, acting
        // (grant, event channel) and writing back: a few XenStore round trips.
        xenbus_step_ns: cost_i64(&merged, "io.xenbus_step_ns", 50_000),
        // E: cost-model §3.1, charged to dom0's vCPU 0 per request xenstored handles.
        xenstored_request_ns: cost_i64(
            &merged,
            crate::serve::session::XENSTORED_REQUEST_COST_KEY,
            crate::serve::session::XENSTORED_REQUEST_NS_DEFAULT,
        ),
        // E: cost-model §3.3 (ring, bio submit/complete, response), on dom0's vCPU 0.
        blkback_req_ns: cost_i64(&merged, "io.blkback_req_ns", 3_000),
        // E: cost-model §3.1, per grant blkback maps (persistent: first use only).
        gnttab_map_ns: cost_i64(&merged, "io.gnttab_map_ns", 700),
        // E: cost-model §3.4, exit → ioreq → dom0 vCPU → QEMU → notify → resume.
        ioreq_dom0_rtt_ns: cost_i64(&merged, "io.ioreq_dom0_rtt_ns", 25_000),
        // E/D: cost-model §3.4, Xen schedules the stub domain's QEMU directly.
        ioreq_stubdom_rtt_ns: cost_i64(&merged, "io.ioreq_stubdom_rtt_ns", 15_000),
        // E: `guest/modes.rs`, the port accesses of one IDE/AHCI DMA command.
        emulated_disk_ioreqs: u32::try_from(cost_ns(
            &merged,
            "io.emulated_disk_ioreqs",
            crate::guest::modes::EMULATED_DISK_IOREQS_DEFAULT,
        ))
        .unwrap_or(u32::MAX),
        // E: `guest/modes.rs`, the register accesses of an emulated NIC per frame.
        emulated_nic_tx_ioreqs: u32::try_from(cost_ns(
            &merged,
            "io.emulated_nic_tx_ioreqs",
            crate::guest::modes::EMULATED_NIC_TX_IOREQS_DEFAULT,
        ))
        .unwrap_or(u32::MAX),
        emulated_nic_rx_ioreqs: u32::try_from(cost_ns(
            &merged,
            "io.emulated_nic_rx_ioreqs",
            crate::guest::modes::EMULATED_NIC_RX_IOREQS_DEFAULT,
        ))
        .unwrap_or(u32::MAX),
        // D/E: cost-model §1, as `guest/modes.rs` charges an HVM guest's exits and EOIs
        // (both already in the cost hash through `ModeCosts`).
        hvm_exit_rtt_ns: cost_i64(&merged, "cpu.hvm_exit_rtt_ns", 585),
        virq_eoi_ns: cost_i64(&merged, "cpu.virq_eoi_ns", 697),
        // E: xenconsoled waking from poll(), reading the ring and writing its log or pty
        // (one daemon wake-up, half of `io.xenstored_request_ns`'s estimate).
        xenconsoled_batch_ns: cost_i64(&merged, "io.xenconsoled_batch_ns", 10_000),
        // E: cost-model §1, EPT violation handled in Xen without allocation.
        ept_violation_ns: cost_i64(&merged, "cpu.ept_violation_ns", 1_000),
        // E: cost-model §2.3, a PoD fault-in from the cache.
        pod_fault_ns: cost_i64(&merged, "mem.pod_fault_ns", 2_000),
        // D: cost-model §3.2 ([Martins17-tx]: 1.24 Mpps per queue with grant copy).
        netback_tx_pkt_ns: cost_i64(&merged, "io.netback_tx_pkt_ns", 806),
        // D: cost-model §3.2 ([Martins17-rx]: 1.02 Mpps with grant copy).
        netback_rx_pkt_ns: cost_i64(&merged, "io.netback_rx_pkt_ns", 980),
        // D/E: cost-model §3.1, a 4 KiB grant copy.
        gnttab_copy_page_ns: cost_i64(&merged, "io.gnttab_copy_page_ns", 900),
        // E: cost-model §3.2, a stub domain's netfront (already in the cost hash below).
        netfront_pkt_ns: cost_i64(&merged, "io.netfront_pkt_ns", NETFRONT_PKT_NS_DEFAULT),
    }
}

/// The guest memory model's costs (cost-model §2.3; memory spec §5.5, §7.4).
pub fn memory_costs(merged: &BTreeMap<String, CostValue>) -> crate::guest::memory::MemoryCosts {
    let d = crate::guest::memory::MemoryCosts::DEFAULT;
    crate::guest::memory::MemoryCosts {
        // E: cost-model §2.3, the guest's major-fault path.
        swapin_fault_ns: cost_ns(merged, "mem.guest_swapin_fault_ns", d.swapin_fault_ns),
        // D: cost-model §2.3, a NAND NVMe 4 KiB read through blkfront/blkback, less the
        // fault: §5.5's 100 µs swap-in in all.
        swap_device_ns: cost_ns(merged, "mem.guest_swap_device_ns", d.swap_device_ns),
        // E: cost-model §2.3, reclaim and writeback per page.
        swapout_page_ns: cost_ns(merged, "mem.guest_swapout_page_ns", d.swapout_page_ns),
        // Model parameter (§7.4): the share of guest run time waiting on DRAM.
        memory_bound_ppm: cost_ns(merged, "guest.memory_bound_ppm", d.memory_bound_ppm),
    }
}

/// Hash of the effective cost table of every host: the core's toolstack costs, the
/// guest reaction time and xenstored's per-request cost (`xensim serve`), in a fixed order
/// (see `record::TraceHeader::costs_hash`).
pub fn cost_table_hash(scenario: &crate::scenario::model::Scenario) -> u64 {
    let mut bytes = Vec::new();
    let reaction_ns = cost_ns(
        &scenario.costs,
        "guest.shutdown_reaction_ns",
        GUEST_SHUTDOWN_REACTION_NS_DEFAULT,
    );
    bytes.extend_from_slice(&reaction_ns.to_le_bytes());
    for host in &scenario.hosts {
        let switch = crate::machine::switch::SwitchCosts::from_tables(&scenario.costs, &host.costs);
        for word in switch.hash_words() {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        let c = core_costs(&scenario.costs, &host.costs);
        for value in [
            c.domctl_ns,
            c.populate_page_ns,
            c.build_ns,
            c.destroy_devices_ns,
            c.relinquish_page_ns,
            c.scrub_page_ns,
            c.xs_request_ns,
            c.xenbus_step_ns,
            c.xenstored_request_ns,
            c.blkback_req_ns,
            c.gnttab_map_ns,
            c.ioreq_dom0_rtt_ns,
            c.ioreq_stubdom_rtt_ns,
            c.xenconsoled_batch_ns,
            c.ept_violation_ns,
            c.pod_fault_ns,
            c.netback_tx_pkt_ns,
            c.netback_rx_pkt_ns,
            c.gnttab_copy_page_ns,
        ] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        for value in [
            c.populate_batch_pages,
            c.relinquish_batch_pages,
            c.idle_scrub_pages_per_ms,
            u64::from(c.emulated_nic_rx_ioreqs),
        ] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        let merged = merged_costs(&scenario.costs, &host.costs);
        let m = memory_costs(&merged);
        for value in [
            m.swapin_fault_ns,
            m.swap_device_ns,
            m.swapout_page_ns,
            m.memory_bound_ppm,
        ] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        let modes = crate::guest::modes::ModeCosts::from_table(&merged);
        for word in modes.hash_words() {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        let netfront_ns = cost_ns(&merged, "io.netfront_pkt_ns", NETFRONT_PKT_NS_DEFAULT);
        bytes.extend_from_slice(&netfront_ns.to_le_bytes());
        for (key, default) in crate::machine::nic::NET_COST_DEFAULTS {
            bytes.extend_from_slice(&cost_ns(&merged, key, *default).to_le_bytes());
        }
    }
    for index in 0..scenario.hosts.len() {
        let host = u16::try_from(index).unwrap_or(u16::MAX);
        let request_ns = crate::serve::session::request_cost_ns(scenario, host);
        bytes.extend_from_slice(&request_ns.to_le_bytes());
    }
    crate::record::pinned_hash(&bytes)
}

fn xen_version_parts(version: &str) -> (u32, u32, String) {
    let mut parts = version.splitn(2, '.');
    let major = parts.next().and_then(|m| m.parse().ok()).unwrap_or(4);
    let rest = parts.next().unwrap_or("17");
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let minor = rest[..digits_end].parse().unwrap_or(17);
    (major, minor, rest[digits_end..].to_string())
}

/// The Xen command line of a host (`xl info` xen_commandline, `xl dmesg` Command line).
pub fn xen_commandline(spec: &HostSpec) -> String {
    let mut words = Vec::new();
    let mem_mib = spec.dom0.memory_bytes >> 20;
    words.push(format!("dom0_mem={mem_mib}M,max:{mem_mib}M"));
    if let Dom0Vcpus::Count(count) = spec.dom0.vcpus {
        words.push(format!("dom0_max_vcpus={count}"));
    }
    if spec.dom0.pin {
        words.push("dom0_vcpus_pin".to_string());
    }
    words.push(format!("sched={}", spec.scheduler.as_str()));
    words.extend(spec.xen.options.iter().map(|(k, v)| format!("{k}={v}")));
    if !spec.xen.extra_cmdline.is_empty() {
        words.push(spec.xen.extra_cmdline.clone());
    }
    words.join(" ")
}

/// Console ring bytes: `conring_size=` (a number with an optional K/M/G suffix), or Xen's
/// default `num_present_cpus() << (9 + xenlog_lower_thresh)` (lower threshold 2 on a
/// non-debug build), never below the static 16 KiB ring; either is rounded up to a
/// power-of-two number of pages as `get_order_from_bytes` does (xen/drivers/char/console.c).
fn conring_bytes(options: &BTreeMap<String, String>, nr_cpus: u32) -> usize {
    const XENLOG_LOWER_THRESH: u32 = 2;
    let by_cpus = usize::try_from(nr_cpus).unwrap_or(0) << (9 + XENLOG_LOWER_THRESH);
    let requested = options.get("conring_size").and_then(|text| {
        let (digits, shift) = match text.char_indices().last() {
            Some((i, 'k' | 'K')) => (&text[..i], 10),
            Some((i, 'm' | 'M')) => (&text[..i], 20),
            Some((i, 'g' | 'G')) => (&text[..i], 30),
            _ => (text.as_str(), 0),
        };
        digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_shl(shift))
    });
    let bytes = requested.unwrap_or(by_cpus).max(CONRING_BYTES_DEFAULT);
    let pages = bytes.div_ceil(4096).next_power_of_two();
    pages
        .saturating_mul(4096)
        .min(hypervisor_model::limits::CONRING_BYTES_MAX)
}

/// Builds the core's boot configuration for one host.
pub fn boot_config(
    spec: &HostSpec,
    global_costs: &BTreeMap<String, CostValue>,
) -> Result<BootConfig, HostError> {
    let topo = Topology::new(&spec.topology).map_err(|e| HostError::Topology {
        host: spec.name.clone(),
        reason: e.to_string(),
    })?;
    let cpus: Vec<CpuTopo> = topo
        .pcpus()
        .iter()
        .map(|p| CpuTopo {
            core: p.core_index,
            socket: p.socket_index,
            node: p.node_index,
        })
        .collect();
    let nr_cpus = topo.pcpu_count();
    let host_cpus = HostCpus {
        node_of_cpu: cpus.iter().map(|c| c.node).collect(),
    };
    let resolve = |key: &str, text: &str| -> Result<CpuMask, HostError> {
        let err = |reason: String| HostError::CpuList {
            host: spec.name.clone(),
            key: key.to_string(),
            reason,
        };
        CpuList::parse(text)
            .map_err(|e| err(e.to_string()))?
            .resolve(&host_cpus)
            .map_err(|e| err(e.to_string()))
    };
    let mut pools = Vec::new();
    for pool in &spec.cpupools {
        let cpus = resolve(&format!("cpupools.{}.cpus", pool.name), &pool.cpus)?;
        pools.push(PoolBoot {
            name: pool.name.clone(),
            sched: sched_kind(pool.scheduler),
            cpus,
        });
    }
    let free_cpus = match &spec.free_cpus {
        Some(text) => resolve("free_cpus", text)?,
        None => CpuMask::empty(nr_cpus),
    };
    let node_count = usize::try_from(topo.node_count()).unwrap_or(0);
    let node_distances = (0..node_count)
        .flat_map(|a| (0..node_count).map(move |b| (a, b)))
        .map(|(a, b)| {
            spec.topology
                .distances
                .get(a)
                .and_then(|row| row.get(b))
                .copied()
                .unwrap_or(if a == b { 10 } else { 20 })
        })
        .collect();
    let (major, minor, extra) = xen_version_parts(&spec.xen.version);
    let unknown_options = spec
        .xen
        .options
        .keys()
        .filter(|k| !XEN_OPTIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    // Without dom0_max_vcpus, Xen gives dom0 one vCPU per CPU of dom0_cpus, which is
    // Pool-0's CPUs (dom0_max_vcpus(), xen/arch/x86/dom0_build.c).
    let pool0_cpu_count = pools
        .iter()
        .fold(CpuMask::full(nr_cpus).and_not(&free_cpus), |m, p| {
            m.and_not(&p.cpus)
        })
        .weight();
    let dom0_vcpus = match spec.dom0.vcpus {
        Dom0Vcpus::Count(count) => count,
        Dom0Vcpus::All => pool0_cpu_count,
    };
    Ok(BootConfig {
        sched_opts: super::sched_opts::sched_opts(&spec.xen.options),
        host: HostInfo {
            cpus,
            cores_per_socket: spec.topology.cores_per_socket,
            threads_per_core: spec.topology.threads_per_core,
            node_memory_pages: spec
                .node_memory_bytes
                .iter()
                .map(|b| b / PAGE_BYTES)
                .collect(),
            node_distances,
            cpu_khz: CPU_KHZ_DEFAULT,
        },
        xen: XenBuild {
            major,
            minor,
            extra,
            changeset: spec.xen.changeset.clone(),
            compiler: spec.xen.cc_compiler.clone(),
            compile_by: spec.xen.cc_compile_by.clone(),
            compile_domain: spec.xen.cc_compile_domain.clone(),
            compile_date: spec.xen.cc_compile_date.clone(),
            build_id: spec.xen.build_id.clone(),
            commandline: xen_commandline(spec),
            conring_bytes: conring_bytes(&spec.xen.options, nr_cpus),
            unknown_options,
        },
        pool0_sched: sched_kind(spec.scheduler),
        pools,
        free_cpus,
        dom0: Dom0Boot {
            memory_pages: spec.dom0.memory_bytes / PAGE_BYTES,
            vcpus: dom0_vcpus,
            pin: spec.dom0.pin,
            weight: spec.dom0.weight,
            guest_type: if spec.dom0.pvh {
                GuestType::Pvh
            } else {
                GuestType::Pv
            },
        },
        costs: core_costs(global_costs, &spec.costs),
        grant_limits: hypervisor_model::hypervisor::xs_tool::GrantLimits {
            max_grant_frames: spec.xl_conf.max_grant_frames,
            max_maptrack_frames: spec.xl_conf.max_maptrack_frames,
        },
        claim_mode: spec.xl_conf.claim_mode,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::{boot_config, core_costs, xen_commandline, xen_version_parts};
    use crate::scenario::model::{CostValue, HostSpec};
    use crate::scenario::{load_str, LoadOptions};

    fn host(extra: &str) -> HostSpec {
        let text = format!(
            "[sim]\nseed = 1\nduration = \"1s\"\n[host.h0]\n\
             topology = {{ sockets = 2, cores_per_socket = 2 }}\nmemory = \"8GiB\"\n\
             scheduler = \"null\"\n{extra}"
        );
        match load_str("t.toml", &text, Path::new("."), &LoadOptions::default()) {
            Ok(scenario) => scenario.hosts[0].clone(),
            Err(error) => panic!("test host loads: {}", error.render()),
        }
    }

    #[test]
    fn commandline_orders_dom0_sched_options_then_extra() {
        // scenario.md §4.2: dom0_mem, dom0_max_vcpus, dom0_vcpus_pin, sched=, sorted
        // options, extra_cmdline.
        let spec = host(
            "[host.h0.dom0]\nmemory = \"2GiB\"\nvcpus = 2\n[host.h0.xen]\n\
             options = { sched_ratelimit_us = 500, bootscrub = \"off\" }\n\
             extra_cmdline = \"console=com1\"\n",
        );
        assert_eq!(
            xen_commandline(&spec),
            "dom0_mem=2048M,max:2048M dom0_max_vcpus=2 dom0_vcpus_pin sched=null \
             bootscrub=off sched_ratelimit_us=500 console=com1"
        );
    }

    #[test]
    fn commandline_omits_dom0_max_vcpus_for_all_and_pin_when_off() {
        let spec = host("[host.h0.dom0]\nvcpus = \"all\"\npin = false\n");
        assert_eq!(
            xen_commandline(&spec),
            "dom0_mem=1024M,max:1024M sched=null"
        );
    }

    #[test]
    fn host_costs_override_global_costs() {
        let global = BTreeMap::from([("toolstack.build_ns".to_string(), CostValue::Fixed(7))]);
        let local = BTreeMap::from([("toolstack.build_ns".to_string(), CostValue::Fixed(9))]);
        assert_eq!(core_costs(&global, &local).build_ns, 9);
        assert_eq!(core_costs(&global, &BTreeMap::new()).build_ns, 7);
    }

    #[test]
    fn dom0_all_vcpus_counts_pool0_cpus_only() {
        // 4 pCPUs, 2 in pool "rt", 1 free: dom0 gets the remaining one.
        let spec = host(
            "cpupools = [{ name = \"rt\", cpus = \"2-3\", scheduler = \"null\" }]\n\
             free_cpus = \"1\"\n[host.h0.dom0]\nvcpus = \"all\"\n",
        );
        let config = boot_config(&spec, &BTreeMap::new()).expect("boot config builds");
        assert_eq!(config.dom0.vcpus, 1);
    }

    #[test]
    fn conring_default_grows_with_cpus() {
        // 64 pCPUs << 11 = 128 KiB, above the 16 KiB static ring.
        let options = std::collections::BTreeMap::new();
        assert_eq!(super::conring_bytes(&options, 64), 128 * 1024);
        assert_eq!(super::conring_bytes(&options, 4), 16 * 1024);
    }

    #[test]
    fn version_splits_into_major_minor_extra() {
        assert_eq!(xen_version_parts("4.17.5"), (4, 17, ".5".to_string()));
    }

    #[test]
    fn version_with_rc_suffix_keeps_it_in_extra() {
        assert_eq!(xen_version_parts("4.18-rc"), (4, 18, "-rc".to_string()));
    }
}
