//! `[host.<name>]` tables (`specs/scenario.md` §4): topology and NUMA layout, memory,
//! schedulers and cpupools, dom0, Xen, xl.conf, devices and costs.
//!
//! # Invariants
//! - `node_memory_bytes` has one entry per NUMA node and sums to the host's RAM.
//! - Pools are non-empty, disjoint, disjoint from `free_cpus`, and never hold CPU 0.
//! - `HostCpus::node_of_cpu` follows the pCPU numbering of §4 (siblings adjacent).

use super::diag::Diags;
pub use super::host_extra::costs;
use super::host_extra::{dom0, xen, xl_conf};
use super::model::{HostDiskSpec, HostSpec, NicSpec, PoolSpec, SchedName, TopologySpec};
use super::tree::{conv, Kind, Node, Tbl};
use super::unsupported::{self, Feature};
use crate::xl::cpulist::{CpuList, HostCpus};

const PROFILES: &[&str] = &[
    "default",
    "sandybridge-en-2s",
    "haswell-ep-2s",
    "skylake-sp-2s",
    "epyc-rome-2s",
];

pub(crate) const MIB: u64 = 1 << 20;

/// A parsed host plus the facts cpu lists resolve against.
#[derive(Debug, Clone)]
pub struct LoadedHost {
    /// The host.
    pub spec: HostSpec,
    /// pCPU → node.
    pub cpus: HostCpus,
}

fn sched_name(node: &Node) -> Result<SchedName, String> {
    const EXPECTED: &str = "\"credit2\", \"rtds\" or \"null\" (credit and arinc653 are not \
                            modelled)";
    match conv::string(node).as_deref() {
        Ok("credit2") => Ok(SchedName::Credit2),
        Ok("rtds") => Ok(SchedName::Rtds),
        Ok("null") => Ok(SchedName::Null),
        _ => Err(EXPECTED.to_string()),
    }
}

fn numa(node: &Node) -> Result<u32, String> {
    const EXPECTED: &str = "\"per-socket\", \"single\" or an integer";
    match &node.kind {
        Kind::Str(s, _) if s == "per-socket" => Ok(0),
        Kind::Str(s, _) if s == "single" => Ok(1),
        Kind::Int(i) => u32::try_from(*i)
            .ok()
            .filter(|k| *k >= 1)
            .ok_or_else(|| EXPECTED.to_string()),
        _ => Err(EXPECTED.to_string()),
    }
}

fn topology(d: &Diags, h: &Tbl<'_>) -> Option<(TopologySpec, HostCpus)> {
    let Some(t) = h.sub(d, "topology") else {
        d.error(
            h.here(),
            format!("{}: missing required key", h.path("topology")),
        );
        return None;
    };
    let sockets = t.req(d, "sockets", conv::u32_);
    let cores = t.req(d, "cores_per_socket", conv::u32_);
    let threads = t.opt(d, "threads_per_core", conv::u32_).unwrap_or(1);
    let numa_nodes = t.opt(d, "numa", numa).unwrap_or(0);
    let distances = t.get("distances");
    t.finish(d);
    let (sockets, cores) = (sockets?, cores?);
    let bad = |key: &str, message: &str| {
        d.error(
            h.here(),
            format!("{}: {message}", h.path(&format!("topology.{key}"))),
        );
    };
    if sockets == 0 || cores == 0 {
        bad("sockets", "sockets and cores_per_socket must be >= 1");
        return None;
    }
    if ![1, 2, 4].contains(&threads) {
        bad(
            "threads_per_core",
            &format!("expected 1, 2 or 4, found {threads}"),
        );
        return None;
    }
    let k = if numa_nodes == 0 { sockets } else { numa_nodes };
    // Xen's heap has one entry per node up to MAX_NUMNODES (64 on x86).
    let nodes_max = hypervisor_model::memory::MAX_NUMNODES;
    if k > nodes_max {
        bad(
            "numa",
            &format!("at most {nodes_max} NUMA nodes (Xen's MAX_NUMNODES), found {k}"),
        );
        return None;
    }
    let split_ok = if k <= sockets {
        sockets % k == 0
    } else {
        k % sockets == 0 && cores % (k / sockets) == 0
    };
    if !split_ok {
        let message = format!(
            "{k} NUMA nodes must divide {sockets} sockets, or be a multiple of it that \
             divides the {cores} cores of each socket"
        );
        bad("numa", &message);
        return None;
    }
    let pcpu_count = sockets.checked_mul(cores)?.checked_mul(threads)?;
    let node_of_cpu = (0..pcpu_count)
        .map(|cpu| {
            let socket = cpu / (cores * threads);
            let core = (cpu / threads) % cores;
            if k <= sockets {
                socket / (sockets / k)
            } else {
                let split = k / sockets;
                socket * split + core / (cores / split)
            }
        })
        .collect();
    let distances = match distances {
        None => (0..k)
            .map(|i| (0..k).map(|j| if i == j { 10 } else { 20 }).collect())
            .collect(),
        Some(node) => distance_matrix(d, h, node, k)?,
    };
    let spec = TopologySpec {
        sockets,
        cores_per_socket: cores,
        threads_per_core: threads,
        numa_nodes: k,
        distances,
    };
    Some((spec, HostCpus { node_of_cpu }))
}

fn distance_matrix(d: &Diags, h: &Tbl<'_>, node: &Node, k: u32) -> Option<Vec<Vec<u32>>> {
    let path = h.path("topology.distances");
    let shape_error = || {
        d.error(
            h.loc(node.offset),
            format!("{path}: expected a {k} x {k} integer matrix"),
        );
    };
    let Kind::Array(rows) = &node.kind else {
        shape_error();
        return None;
    };
    if rows.len() != usize::try_from(k).ok()? {
        shape_error();
        return None;
    }
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Kind::Array(cells) = &row.kind else {
            shape_error();
            return None;
        };
        if cells.len() != rows.len() {
            shape_error();
            return None;
        }
        let mut values = Vec::new();
        for (j, cell) in cells.iter().enumerate() {
            let value = conv::u32_(cell).ok();
            let ok = match value {
                Some(10) => i == j,
                Some(v) => i != j && (11..=254).contains(&v),
                None => false,
            };
            if !ok {
                let message = format!(
                    "{path}[{i}][{j}]: expected {}, found {}",
                    if i == j {
                        "10 on the diagonal"
                    } else {
                        "11..=254"
                    },
                    cell.describe()
                );
                d.error(h.loc(cell.offset), message);
                return None;
            }
            values.extend(value);
        }
        out.push(values);
    }
    Some(out)
}

fn node_memory(d: &Diags, h: &Tbl<'_>, k: u32) -> Option<Vec<u64>> {
    let memory = h.opt(d, "memory", conv::mem_size);
    let explicit = h.array(d, "node_memory");
    let k_len = usize::try_from(k).ok()?;
    if let Some(items) = explicit {
        let sizes: Vec<u64> = items
            .iter()
            .filter_map(|n| conv::mem_size(n).ok())
            .collect();
        if sizes.len() != items.len() || sizes.len() != k_len {
            let node = h.get("node_memory")?;
            let message = format!("expected a list of {k} memory sizes (one per NUMA node)");
            h.error_at(d, node, "node_memory", &message);
            return None;
        }
        let sum: u64 = sizes.iter().sum();
        if let (Some(total), Some(node)) = (memory, h.get("memory")) {
            if total != sum {
                let message = format!(
                    "memory ({total} bytes) must equal the node_memory sum ({sum} bytes) \
                     or be omitted"
                );
                h.error_at(d, node, "memory", &message);
                return None;
            }
        }
        return Some(sizes);
    }
    let Some(total) = memory else {
        if !h.has("memory") {
            d.error(
                h.here(),
                format!("{}: missing required key", h.path("memory")),
            );
        }
        return None;
    };
    let each = (total / u64::from(k)) / (2 * MIB) * (2 * MIB);
    let mut sizes = vec![each; k_len];
    sizes[0] = total - each * (u64::from(k) - 1);
    Some(sizes)
}

/// Parses one `[host.<name>]`.
pub fn parse_host(d: &Diags, file_index: usize, name: &str, node: &Node) -> Option<LoadedHost> {
    let context = format!("[host.{name}]");
    let h = Tbl::new(d, file_index, node, &context, "");
    let topo = topology(d, &h);
    let node_memory = topo
        .as_ref()
        .and_then(|(t, _)| node_memory(d, &h, t.numa_nodes));
    let scheduler = h
        .opt(d, "scheduler", sched_name)
        .unwrap_or(SchedName::Credit2);
    let profile = h
        .opt(d, "profile", conv::string)
        .unwrap_or_else(|| "default".into());
    if !PROFILES.contains(&profile.as_str()) {
        if let Some(node) = h.get("profile") {
            let message = format!(
                "expected one of {}, found {}",
                PROFILES.join(", "),
                node.describe()
            );
            h.error_at(d, node, "profile", &message);
        }
    }
    let hostname = h
        .opt(d, "hostname", conv::string)
        .unwrap_or_else(|| name.to_string());
    let nics = nics(d, &h);
    let disks = disks(d, &h);
    if let Some(items) = h.array(d, "pci") {
        if let Some(first) = items.first() {
            unsupported::check(d, h.loc(first.offset), &h.path("pci"), Feature::Pci);
        }
    }
    let dom0 = dom0(d, &h);
    let xen = xen(d, &h);
    let xl_conf = xl_conf(d, &h);
    let costs = h.sub(d, "costs").map(|c| costs(d, &c)).unwrap_or_default();
    let pools = topo.as_ref().and_then(|(_, cpus)| pools(d, &h, cpus));
    h.finish(d);
    let ((topology, cpus), node_memory_bytes) = (topo?, node_memory?);
    let (cpupools, free_cpus) = pools?;
    Some(LoadedHost {
        spec: HostSpec {
            name: name.to_string(),
            topology,
            node_memory_bytes,
            scheduler,
            cpupools,
            free_cpus,
            hostname,
            dom0: dom0?,
            xen: xen?,
            profile,
            nics: nics?,
            disks: disks?,
            xl_conf: xl_conf?,
            costs,
        },
        cpus,
    })
}

/// Resolves a cpu list string at `node` against `cpus`, locating errors inside the string.
pub fn resolve_cpus(
    d: &Diags,
    t: &Tbl<'_>,
    key: &str,
    node: &Node,
    cpus: &HostCpus,
) -> Option<hypervisor_model::cpumask::CpuMask> {
    let Kind::Str(text, origin) = &node.kind else {
        t.error_at(
            d,
            node,
            key,
            &format!("expected a cpu list string, found {}", node.describe()),
        );
        return None;
    };
    match CpuList::parse(text).and_then(|l| l.resolve(cpus)) {
        Ok(mask) => Some(mask),
        Err(e) => {
            let offset = if origin.exact {
                origin.content_offset + e.offset_bytes
            } else {
                node.offset
            };
            d.error(t.loc(offset), format!("{}: {}", t.path(key), e.message));
            None
        }
    }
}

type Pools = (Vec<PoolSpec>, Option<String>);

fn pools(d: &Diags, h: &Tbl<'_>, cpus: &HostCpus) -> Option<Pools> {
    let mut taken = hypervisor_model::cpumask::CpuMask::empty(cpus.pcpu_count());
    let mut ok = true;
    let mut out: Vec<PoolSpec> = Vec::new();
    for (index, item) in h.array(d, "cpupools").unwrap_or(&[]).iter().enumerate() {
        let p = Tbl::new(
            d,
            h.file_index(),
            item,
            h.context(),
            &format!("cpupools[{index}]."),
        );
        let name = p.req(d, "name", conv::name);
        let scheduler = p
            .opt(d, "scheduler", sched_name)
            .unwrap_or(SchedName::Credit2);
        let mask = match p.get("cpus") {
            Some(node) => resolve_cpus(d, &p, "cpus", node, cpus).map(|m| (m, node)),
            None => {
                d.error(
                    p.here(),
                    format!("{}: missing required key", p.path("cpus")),
                );
                None
            }
        };
        p.finish(d);
        let (Some(name), Some((mask, node))) = (name, mask) else {
            ok = false;
            continue;
        };
        let text = match &node.kind {
            Kind::Str(s, _) => s.clone(),
            _ => String::new(),
        };
        let problem = if name == "Pool-0" || out.iter().any(|q| q.name == name) {
            Some(format!("pool name {name:?} is already used"))
        } else if mask.is_empty() {
            Some("a pool needs at least one CPU".to_string())
        } else if mask.iter().any(|c| c.raw() == 0) {
            Some("CPU 0 must stay in Pool-0".to_string())
        } else if mask.intersects(&taken) {
            Some("pools must be disjoint: a CPU is already in another pool".to_string())
        } else {
            None
        };
        if let Some(message) = problem {
            p.error_at(d, node, "cpus", &message);
            ok = false;
            continue;
        }
        taken = taken.or(&mask);
        out.push(PoolSpec {
            name,
            cpus: text,
            scheduler,
        });
    }
    let free = h.get("free_cpus");
    if let Some(node) = free {
        if let Some(mask) = resolve_cpus(d, h, "free_cpus", node, cpus) {
            if mask.iter().any(|c| c.raw() == 0) || mask.intersects(&taken) {
                let message = "free CPUs must not include CPU 0 or a CPU of a pool";
                h.error_at(d, node, "free_cpus", message);
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    let free_text = free.and_then(|n| conv::string(n).ok());
    ok.then_some((out, free_text))
}

fn nics(d: &Diags, h: &Tbl<'_>) -> Option<Vec<NicSpec>> {
    let Some(items) = h.array(d, "nics") else {
        return Some(vec![NicSpec {
            name: "eth0".to_string(),
            rate_bytes_per_s: 1_250_000_000,
        }]);
    };
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let t = Tbl::new(
            d,
            h.file_index(),
            item,
            h.context(),
            &format!("nics[{index}]."),
        );
        let name = t.req(d, "name", conv::name);
        let rate = t.req(d, "rate", conv::rate);
        t.finish(d);
        out.push(NicSpec {
            name: name?,
            rate_bytes_per_s: rate?,
        });
    }
    Some(out)
}

fn disks(d: &Diags, h: &Tbl<'_>) -> Option<Vec<HostDiskSpec>> {
    let Some(items) = h.array(d, "disks") else {
        return Some(vec![HostDiskSpec {
            name: "nvme0".to_string(),
            model: "nvme".to_string(),
            node: 0,
        }]);
    };
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let t = Tbl::new(
            d,
            h.file_index(),
            item,
            h.context(),
            &format!("disks[{index}]."),
        );
        let name = t.req(d, "name", conv::name);
        let model = t.req(d, "model", |n| match conv::string(n).as_deref() {
            Ok(m @ ("nvme" | "optane" | "sata-ssd" | "hdd")) => Ok(m.to_string()),
            _ => Err("\"nvme\", \"optane\", \"sata-ssd\" or \"hdd\"".to_string()),
        });
        let node = t.opt(d, "node", conv::u32_).unwrap_or(0);
        t.finish(d);
        out.push(HostDiskSpec {
            name: name?,
            model: model?,
            node,
        });
    }
    Some(out)
}
