//! Workload tables (`specs/scenario.md` §6.1) and distributions (§6.2) → [`WorkloadSpec`].
//!
//! # Invariants
//! - `mixed` entries are never `mixed` or `periodic`; weights are ≥ 1; at most
//!   [`MIX_ENTRIES_MAX`] entries.
//! - An `io` workload (top level or a `mixed` entry) runs over a vbd (`disk`) or a vif
//!   (`net`), never both, and its sub-table takes no `rate`. A non-`io` workload (top
//!   level or a `mixed` entry) with a `net` or `disk` sub-table streams: `rate` is
//!   required and > 0 ([`WorkloadSpec::NetStream`], [`WorkloadSpec::DiskStream`]; with
//!   both, the disk stream is the inner wrapper). Each `net` and `disk` sub-table is read
//!   once, by the function that builds its spec.
//! - `memory` may sit on any workload, `mixed` entries included; every occurrence is folded
//!   into one [`MemoryWorkload`] per domain ([`MemorySlot`]), and occurrences that differ
//!   are a located error. `hot_set` ≤ `working_set`.

use super::diag::Diags;
use super::diag::Loc;
use super::model::{
    DiskOpSpec, DiskWorkload, Dist, MemoryWorkload, MixEntry, NetPeer, NetWorkload, WorkloadSpec,
};
use super::tree::{conv, Kind, Node, Tbl};
use super::values::{parse_dist, parse_duration, parse_size, DIST_EXPECTED};

/// A distribution over durations: an integer (ns) or the §6.2 string forms.
pub fn dist(node: &Node) -> Result<Dist, String> {
    match &node.kind {
        Kind::Int(i) => u64::try_from(*i)
            .map(Dist::Const)
            .map_err(|_| DIST_EXPECTED.to_string()),
        Kind::Str(s, _) => parse_dist(s, parse_duration),
        _ => Err(DIST_EXPECTED.to_string()),
    }
}

/// A distribution over sizes (bytes).
pub fn size_dist(node: &Node) -> Result<Dist, String> {
    match &node.kind {
        Kind::Int(i) => u64::try_from(*i)
            .map(Dist::Const)
            .map_err(|_| DIST_EXPECTED.to_string()),
        Kind::Str(s, _) => parse_dist(s, parse_size),
        _ => Err(DIST_EXPECTED.to_string()),
    }
}

const KINDS: &str = "\"idle\", \"cpu_bound\", \"periodic\", \"bursty\", \"io\" or \"mixed\"";

/// The one memory model of a domain, gathered from the `memory` sub-tables of all its
/// workloads (see [`MemoryWorkload`]).
#[derive(Debug, Default)]
pub struct MemorySlot {
    memory: Option<MemoryWorkload>,
    /// The `os` sub-tables, folded the same way (`workload_os.rs`).
    os: Option<super::model::OsRates>,
}

impl MemorySlot {
    /// Adds the sub-table read at `loc` (`path` names it); an error if it differs from one
    /// added before.
    fn add(&mut self, d: &Diags, loc: Loc, path: &str, memory: MemoryWorkload) {
        match self.memory {
            None => self.memory = Some(memory),
            Some(first) if first == memory => {}
            Some(_) => d.error(
                loc,
                format!(
                    "{path}: a domain has one memory model; every `memory` sub-table of \
                     its workloads must be equal, and this one differs from an earlier one"
                ),
            ),
        }
    }

    /// The domain's memory model, if any workload had one.
    pub fn into_memory(self) -> Option<MemoryWorkload> {
        self.memory
    }

    /// The domain's `os` rates, if any workload had them.
    pub fn os(&self) -> Option<super::model::OsRates> {
        self.os
    }

    fn add_os(&mut self, d: &Diags, loc: Loc, path: &str, os: super::model::OsRates) {
        match self.os {
            None => self.os = Some(os),
            Some(first) if first == os => {}
            Some(_) => d.error(
                loc,
                format!("{path}: every `os` sub-table of a domain's workloads must be equal"),
            ),
        }
    }
}

/// Parses a workload table (`{ kind = ..., ... }`) at `node`; its `memory` sub-tables (its
/// own and its `mixed` entries') go into `memory`.
pub fn parse_workload(
    d: &Diags,
    file_index: usize,
    node: &Node,
    context: &str,
    prefix: &str,
    memory: &mut MemorySlot,
) -> Option<WorkloadSpec> {
    let t = Tbl::new(d, file_index, node, context, prefix);
    let spec = workload_fields(d, &t, true, memory);
    t.finish(d);
    spec
}

/// Reads `kind`, its parameters and the sub-tables from `t` (the caller calls `finish`).
fn workload_fields(
    d: &Diags,
    t: &Tbl<'_>,
    top_level: bool,
    memory: &mut MemorySlot,
) -> Option<WorkloadSpec> {
    let kind = t.req(d, "kind", conv::string)?;
    sub_tables(d, t, memory);
    let zero = Dist::Const(0);
    let spec = match kind.as_str() {
        "idle" => WorkloadSpec::Idle {
            tick: t.opt(d, "tick", dist),
            tick_work: t.opt(d, "tick_work", dist).unwrap_or(Dist::Const(2_000)),
        },
        "cpu_bound" => WorkloadSpec::CpuBound {
            yield_every: t.opt(d, "yield_every", dist),
        },
        "periodic" if top_level => {
            let period_ns = t.req(d, "period", conv::duration);
            let wcet = t.req(d, "wcet", dist);
            let deadline_ns = t.opt(d, "deadline", conv::duration);
            let phase = t.opt(d, "phase", dist).unwrap_or(zero);
            let jitter = t.opt(d, "jitter", dist).unwrap_or(zero);
            let period_ns = period_ns?;
            if period_ns == 0 {
                if let Some(node) = t.get("period") {
                    t.error_at(d, node, "period", "expected a period > 0, found 0");
                }
                return None;
            }
            WorkloadSpec::Periodic {
                period_ns,
                wcet: wcet?,
                deadline_ns: deadline_ns.unwrap_or(period_ns),
                phase,
                jitter,
            }
        }
        "bursty" => {
            let service = t.req(d, "service", dist);
            let think = t.req(d, "think", dist);
            WorkloadSpec::Bursty {
                service: service?,
                think: think?,
            }
        }
        "io" => {
            let service = t.req(d, "service", dist);
            let think = t.opt(d, "think", dist).unwrap_or(zero);
            if !t.has("disk") && !t.has("net") {
                d.error(
                    t.here(),
                    format!(
                        "{}: an io workload needs a disk or net sub-table",
                        t.path("kind")
                    ),
                );
            }
            if t.has("net") && t.has("disk") {
                let loc = t.get("kind").map_or(t.here(), |n| t.loc(n.offset));
                let message = format!(
                    "{}: an io workload takes a disk or a net sub-table, not both",
                    t.path("kind")
                );
                d.error(loc, message);
                return None;
            }
            if t.has("net") {
                return Some(WorkloadSpec::NetIo {
                    service: service?,
                    think,
                    net: net_workload(d, t)?,
                });
            }
            WorkloadSpec::Io {
                service: service?,
                think,
                disk: disk_workload(d, t)?,
            }
        }
        "mixed" if top_level => WorkloadSpec::Mixed {
            mix: mix_entries(d, t, memory)?,
        },
        "mixed" | "periodic" => {
            if let Some(node) = t.get("kind") {
                let message = format!("a mixed entry cannot be {kind:?}");
                t.error_at(d, node, "kind", &message);
            }
            return None;
        }
        _ => {
            if let Some(node) = t.get("kind") {
                let message = format!("expected {KINDS}, found {}", node.describe());
                t.error_at(d, node, "kind", &message);
            }
            return None;
        }
    };
    if matches!(spec, WorkloadSpec::Io { .. }) {
        return Some(spec);
    }
    let spec = match t.has("disk") {
        true => disk_stream(d, t, spec)?,
        false => spec,
    };
    if t.has("net") {
        return net_stream(d, t, spec);
    }
    Some(spec)
}

/// A non-`io` workload with a `disk` sub-table: it submits I/Os without blocking (`rate`
/// is required there).
fn disk_stream(d: &Diags, t: &Tbl<'_>, base: WorkloadSpec) -> Option<WorkloadSpec> {
    let k = t.sub(d, "disk")?;
    let rate = stream_rate(d, t, &k, "disk");
    let disk = disk_fields(d, &k);
    let sync_node = k
        .get("sync")
        .filter(|_| disk.as_ref().is_some_and(|k| k.sync));
    if let Some(node) = sync_node {
        // A stream has no batch for an fsync to close.
        k.error_at(
            d,
            node,
            "sync",
            "sync is for the io kind (a stream has no batches)",
        );
        k.finish(d);
        return None;
    }
    k.finish(d);
    Some(WorkloadSpec::DiskStream {
        base: Box::new(base),
        disk: disk?,
        rate: rate?,
    })
}

/// The `rate` of a streaming sub-table `name`: required and > 0 (located errors).
fn stream_rate(d: &Diags, t: &Tbl<'_>, sub: &Tbl<'_>, name: &str) -> Option<Dist> {
    let Some(rate) = sub.opt(d, "rate", dist) else {
        if !sub.has("rate") {
            let message = format!(
                "{}: a {name} sub-table outside the io kind streams and needs `rate` (the \
                 gap between two sends)",
                t.path(name)
            );
            d.error(sub.here(), message);
        }
        return None;
    };
    if rate == Dist::Const(0) {
        if let Some(node) = sub.get("rate") {
            sub.error_at(d, node, "rate", "expected a gap > 0, found 0");
        }
        return None;
    }
    Some(rate)
}

/// A non-`io` workload with a `net` sub-table: it streams (`rate` is required there).
fn net_stream(d: &Diags, t: &Tbl<'_>, base: WorkloadSpec) -> Option<WorkloadSpec> {
    let n = t.sub(d, "net")?;
    let rate = stream_rate(d, t, &n, "net");
    let net = net_fields(d, &n);
    n.finish(d);
    Some(WorkloadSpec::NetStream {
        base: Box::new(base),
        net,
        rate: rate?,
    })
}

fn net_peer(name: Option<&str>) -> NetPeer {
    match name {
        None | Some("dom0") => NetPeer::Dom0,
        Some("external") => NetPeer::External,
        Some(name) => NetPeer::Domain(name.to_string()),
    }
}

fn mix_entries(d: &Diags, t: &Tbl<'_>, memory: &mut MemorySlot) -> Option<Vec<MixEntry>> {
    let Some(items) = t.array(d, "mix") else {
        if !t.has("mix") {
            d.error(t.here(), format!("{}: missing required key", t.path("mix")));
        }
        return None;
    };
    if items.is_empty() {
        d.error(
            t.here(),
            format!("{}: needs at least one entry", t.path("mix")),
        );
        return None;
    }
    if items.len() > MIX_ENTRIES_MAX {
        let message = format!(
            "{}: expected at most {MIX_ENTRIES_MAX} entries, found {}",
            t.path("mix"),
            items.len()
        );
        d.error(t.here(), message);
        return None;
    }
    let mut entries = Vec::new();
    let mut ok = true;
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("{}mix[{index}].", t.prefix());
        let e = Tbl::new(d, t.file_index(), item, t.context(), &prefix);
        let weight = e.req(d, "weight", conv::u32_);
        if weight == Some(0) {
            d.error(
                e.here(),
                format!("{}: expected a weight >= 1, found 0", e.path("weight")),
            );
        }
        let span = e.req(d, "span", dist);
        let workload = workload_fields(d, &e, false, memory);
        e.finish(d);
        match (weight, span, workload) {
            (Some(weight @ 1..), Some(span), Some(workload)) => entries.push(MixEntry {
                weight,
                span,
                workload,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(entries)
}

/// The `disk` sub-table of an `io` workload (no `rate` there).
fn disk_workload(d: &Diags, t: &Tbl<'_>) -> Option<DiskWorkload> {
    let k = t.sub(d, "disk")?;
    if let Some(node) = k.get("rate") {
        k.error_at(d, node, "rate", "rate is for non-io kinds (streaming)");
    }
    let spec = disk_fields(d, &k);
    k.finish(d);
    spec
}

/// The fields of a `disk` sub-table but `rate` (the caller finishes `k`).
fn disk_fields(d: &Diags, k: &Tbl<'_>) -> Option<DiskWorkload> {
    let op = match k.opt(d, "op", disk_op).as_deref() {
        None | Some("read") => DiskOpSpec::Read,
        Some("write") => DiskOpSpec::Write,
        Some(mix) => DiskOpSpec::Mix {
            read_ppm: mix
                .strip_prefix("mix:")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
        },
    };
    let spec = DiskWorkload {
        vbd: k.opt(d, "vbd", conv::string).unwrap_or_default(),
        op,
        size: k.opt(d, "size", size_dist).unwrap_or(Dist::Const(4096)),
        sequential: k.opt(d, "pattern", disk_pattern).as_deref() == Some("sequential"),
        queue_depth: k.opt(d, "queue_depth", conv::u32_).unwrap_or(1),
        sync: k.opt(d, "sync", conv::bool_).unwrap_or(false),
    };
    if !(1..=QUEUE_DEPTH_MAX).contains(&spec.queue_depth) {
        if let Some(node) = k.get("queue_depth") {
            let message = format!("expected 1..={QUEUE_DEPTH_MAX}, found {}", spec.queue_depth);
            k.error_at(d, node, "queue_depth", &message);
        }
        return None;
    }
    Some(spec)
}

/// The `net` sub-table of an `io` workload (no `rate` there).
fn net_workload(d: &Diags, t: &Tbl<'_>) -> Option<NetWorkload> {
    let n = t.sub(d, "net")?;
    if let Some(node) = n.get("rate") {
        n.error_at(d, node, "rate", "rate is for non-io kinds (streaming)");
    }
    let spec = net_fields(d, &n);
    n.finish(d);
    Some(spec)
}

/// The fields of a `net` sub-table but `rate` (the caller finishes `n`).
fn net_fields(d: &Diags, n: &Tbl<'_>) -> NetWorkload {
    NetWorkload {
        vif: n.opt(d, "vif", conv::u32_).unwrap_or(0),
        peer: net_peer(n.opt(d, "peer", conv::string).as_deref()),
        tx_size: n.opt(d, "tx_size", size_dist).unwrap_or(Dist::Const(1500)),
        rx_size: n.opt(d, "rx_size", size_dist).unwrap_or(Dist::Const(0)),
    }
}

/// Checks that every `net` sub-table (`io` over a vif, streams, `mixed` entries') names
/// one of the xl.cfg's `vif_count` vifs.
pub fn check_vifs(workloads: &[WorkloadSpec], vif_count: usize) -> Result<(), String> {
    for net in workloads.iter().flat_map(WorkloadSpec::nets) {
        if usize::try_from(net.vif).map_or(true, |v| v >= vif_count) {
            return Err(format!(
                "net.vif {} is not a vif of the xl.cfg (it has {vif_count})",
                net.vif
            ));
        }
    }
    Ok(())
}

/// Fills in the `vbd` of every `disk` sub-table of a domain (`io` over a vbd, streams,
/// `mixed` entries'; its first xl.cfg disk when unset) and checks that it names one of
/// `disks` (xl.cfg vdevs); the error if not.
pub fn resolve_vbds(workloads: &mut [WorkloadSpec], disks: &[String]) -> Result<(), String> {
    for disk in workloads.iter_mut().flat_map(WorkloadSpec::disks_mut) {
        if disk.vbd.is_empty() {
            let Some(first) = disks.first() else {
                return Err("a disk sub-table needs a disk in the xl.cfg".to_string());
            };
            disk.vbd = first.clone();
        } else if !disks.contains(&disk.vbd) {
            return Err(format!(
                "disk.vbd {:?} is not a disk of the xl.cfg (found {})",
                disk.vbd,
                disks.join(", ")
            ));
        }
    }
    Ok(())
}

/// Most I/Os an `io` workload keeps outstanding (Linux's blk-mq default `nr_requests`).
pub const QUEUE_DEPTH_MAX: u32 = 128;
/// Most entries of a `mixed` workload (xensim's bound: each entry's I/O tags carry its
/// index, `guest/workload.rs`).
pub const MIX_ENTRIES_MAX: usize = 64;

/// Validates the `memory` and `os` sub-tables and adds them to the domain's slot (`net`
/// and `disk` are read where their spec is built).
fn sub_tables(d: &Diags, t: &Tbl<'_>, memory: &mut MemorySlot) {
    if let Some((loc, os)) = super::workload_os::os_sub_table(d, t) {
        memory.add_os(d, loc, &t.path("os"), os);
    }
    if let Some(m) = t.sub(d, "memory") {
        if let Some(parsed) = memory_workload(d, &m) {
            memory.add(d, m.here(), &t.path("memory"), parsed);
        }
        m.finish(d);
    }
}

/// The `memory` sub-table's fields with §6.1's defaults; `None` after a located error.
fn memory_workload(d: &Diags, m: &Tbl<'_>) -> Option<MemoryWorkload> {
    let working_set_bytes = m.opt(d, "working_set", conv::size).unwrap_or(0);
    let page_cache_bytes = m.opt(d, "page_cache", conv::size).unwrap_or(0);
    let dirty_pages_per_s = m.opt(d, "dirty_rate", conv::u64_).unwrap_or(0);
    let hot_ppm = m.opt(d, "hot_ppm", conv::ppm).unwrap_or(1_000_000);
    let hot_set_bytes = m.opt(d, "hot_set", conv::size);
    let floor_ppm = m.opt(d, "floor_ppm", conv::ppm).unwrap_or(500_000);
    if let (Some(hot), Some(node)) = (hot_set_bytes, m.get("hot_set")) {
        if hot > working_set_bytes {
            let message =
                format!("expected at most working_set ({working_set_bytes} bytes), found {hot}");
            m.error_at(d, node, "hot_set", &message);
            return None;
        }
    }
    Some(MemoryWorkload {
        working_set_bytes,
        page_cache_bytes,
        dirty_pages_per_s,
        hot_ppm,
        hot_set_bytes: hot_set_bytes.unwrap_or(working_set_bytes),
        floor_ppm,
    })
}

fn disk_op(node: &Node) -> Result<String, String> {
    const EXPECTED: &str = "\"read\", \"write\" or \"mix:<read ppm>\"";
    let text = conv::string(node).map_err(|_| EXPECTED.to_string())?;
    let ok = match text.strip_prefix("mix:") {
        Some(ppm) => ppm.parse::<u32>().is_ok_and(|p| p <= 1_000_000),
        None => text == "read" || text == "write",
    };
    if ok {
        Ok(text)
    } else {
        Err(EXPECTED.to_string())
    }
}

fn disk_pattern(node: &Node) -> Result<String, String> {
    match conv::string(node) {
        Ok(text) if text == "random" || text == "sequential" => Ok(text),
        _ => Err("\"random\" or \"sequential\"".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_workload, MemorySlot};
    use crate::scenario::diag::{Diags, Severity};
    use crate::scenario::model::{DiskOpSpec, Dist, MemoryWorkload, NetPeer, WorkloadSpec};
    use crate::scenario::tree::{parse_document, Kind};

    fn load(text: &str) -> (Option<WorkloadSpec>, Diags) {
        let (spec, _, d) = load_with_memory(text);
        (spec, d)
    }

    fn load_with_memory(text: &str) -> (Option<WorkloadSpec>, Option<MemoryWorkload>, Diags) {
        let d = Diags::new(false);
        let file_index = d.add_source("w.toml", text);
        let root = parse_document(text).expect("valid toml");
        let Kind::Table(entries) = &root.kind else {
            panic!("root is a table");
        };
        let mut memory = MemorySlot::default();
        let spec = parse_workload(
            &d,
            file_index,
            &entries[0].value,
            "[[domain]] a",
            "workload.",
            &mut memory,
        );
        (spec, memory.into_memory(), d)
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn memory_sub_table_reads_fields_and_defaults() {
        let (spec, memory, d) = load_with_memory(concat!(
            "w = { kind = \"cpu_bound\", ",
            "memory = { working_set = \"2GiB\", page_cache = \"1GiB\", hot_ppm = 900000 } }"
        ));
        assert!(d.rendered(Severity::Error).is_empty());
        assert!(spec.is_some());
        assert_eq!(
            memory,
            Some(MemoryWorkload {
                working_set_bytes: 2 * GIB,
                page_cache_bytes: GIB,
                dirty_pages_per_s: 0,
                hot_ppm: 900_000,
                hot_set_bytes: 2 * GIB,
                floor_ppm: 500_000,
            })
        );
    }

    #[test]
    fn memory_inside_mixed_entry_reaches_the_domain() {
        let (_, memory, d) = load_with_memory(concat!(
            "w = { kind = \"mixed\", mix = [{ weight = 1, span = \"1ms\", ",
            "kind = \"cpu_bound\", memory = { working_set = \"1GiB\" } }] }"
        ));
        assert!(d.rendered(Severity::Error).is_empty());
        assert_eq!(memory.map(|m| m.working_set_bytes), Some(GIB));
    }

    #[test]
    fn memory_differing_between_mixed_entries_is_located_error() {
        let (_, _, d) = load_with_memory(concat!(
            "w = { kind = \"mixed\", mix = [",
            "{ weight = 1, span = \"1ms\", kind = \"cpu_bound\", ",
            "memory = { working_set = \"1GiB\" } }, ",
            "{ weight = 1, span = \"1ms\", kind = \"cpu_bound\", ",
            "memory = { working_set = \"2GiB\" } }] }"
        ));
        assert!(d.rendered(Severity::Error)[0].contains("a domain has one memory model"));
    }

    #[test]
    fn memory_hot_set_above_working_set_is_located_error() {
        let (_, memory, d) = load_with_memory(
            "w = { kind = \"idle\", memory = { working_set = \"1GiB\", hot_set = \"2GiB\" } }",
        );
        assert_eq!(memory, None);
        assert!(d.rendered(Severity::Error)[0].contains("memory.hot_set: expected at most"));
    }

    #[test]
    fn bursty_reads_both_distributions() {
        let (spec, _) = load("w = { kind = \"bursty\", service = \"exp:200us\", think = 5 }");
        assert_eq!(
            spec,
            Some(WorkloadSpec::Bursty {
                service: Dist::Exp { mean: 200_000 },
                think: Dist::Const(5)
            })
        );
    }

    #[test]
    fn periodic_deadline_defaults_to_period() {
        let (spec, _) = load("w = { kind = \"periodic\", period = \"10ms\", wcet = \"1ms\" }");
        let Some(WorkloadSpec::Periodic { deadline_ns, .. }) = spec else {
            panic!("periodic");
        };
        assert_eq!(deadline_ns, 10_000_000);
    }

    #[test]
    fn mixed_entry_cannot_be_periodic() {
        let (spec, d) = load(
            "w = { kind = \"mixed\", mix = [{ weight = 1, span = \"1ms\", kind = \"periodic\" }] }",
        );
        assert_eq!(spec, None);
        assert!(d.rendered(Severity::Error)[0].contains("cannot be \"periodic\""));
    }

    #[test]
    fn io_kind_with_disk_reads_its_fields() {
        let (spec, _) = load(concat!(
            "w = { kind = \"io\", service = \"1ms\", ",
            "disk = { vbd = \"xvdb\", op = \"write\", queue_depth = 4 } }"
        ));
        let Some(WorkloadSpec::Io { disk, .. }) = spec else {
            panic!("an io workload");
        };
        assert_eq!(disk.vbd, "xvdb");
        assert_eq!(disk.op, crate::scenario::model::DiskOpSpec::Write);
        assert_eq!(disk.queue_depth, 4);
    }

    #[test]
    fn net_workload_on_a_vif_the_config_lacks_is_refused() {
        // One vif in the xl.cfg (index 0); the workload asks for vif 1.
        let (spec, _) = load("w = { kind = \"io\", service = \"1ms\", net = { vif = 1 } }");
        let spec = spec.expect("parsed");
        let err = super::check_vifs(&[spec], 1).expect_err("vif 1 of 1");
        assert!(err.contains("net.vif 1 is not a vif"));
    }

    #[test]
    fn io_kind_with_net_reads_peer_and_sizes() {
        let (spec, _) = load(concat!(
            "w = { kind = \"io\", service = \"1ms\", ",
            "net = { peer = \"external\", tx_size = \"200B\", rx_size = \"4KiB\" } }"
        ));
        let Some(WorkloadSpec::NetIo { net, .. }) = spec else {
            panic!("net io");
        };
        assert_eq!(net.peer, NetPeer::External);
        assert_eq!(
            (net.vif, net.tx_size, net.rx_size),
            (0, Dist::Const(200), Dist::Const(4096))
        );
    }

    #[test]
    fn io_queue_depth_zero_is_located_error() {
        let (spec, d) =
            load("w = { kind = \"io\", service = \"1ms\", disk = { queue_depth = 0 } }");
        assert_eq!(spec, None);
        assert!(d.rendered(Severity::Error)[0].contains("queue_depth: expected 1..=128"));
    }

    #[test]
    fn mixed_entry_can_be_io_over_a_vbd() {
        let (spec, d) = load(concat!(
            "w = { kind = \"mixed\", mix = [{ weight = 3, span = \"exp:20ms\", ",
            "kind = \"io\", service = \"exp:150us\", ",
            "disk = { vbd = \"xvda\", op = \"mix:700000\" } }] }"
        ));
        assert!(d.rendered(Severity::Error).is_empty());
        let Some(WorkloadSpec::Mixed { mix }) = spec else {
            panic!("mixed");
        };
        let WorkloadSpec::Io { disk, .. } = &mix[0].workload else {
            panic!("an io entry");
        };
        assert_eq!(disk.op, DiskOpSpec::Mix { read_ppm: 700_000 });
    }

    #[test]
    fn mixed_entry_cannot_be_mixed() {
        let (spec, d) = load(concat!(
            "w = { kind = \"mixed\", mix = [{ weight = 1, span = \"1ms\", ",
            "kind = \"mixed\", mix = [] }] }"
        ));
        assert_eq!(spec, None);
        assert!(d.rendered(Severity::Error)[0].contains("cannot be \"mixed\""));
    }

    #[test]
    fn mixed_with_too_many_entries_is_located_error() {
        // One entry more than the bound.
        let entry = "{ weight = 1, span = \"1ms\", kind = \"cpu_bound\" }, ";
        let text = format!(
            "w = {{ kind = \"mixed\", mix = [{}] }}",
            entry.repeat(super::MIX_ENTRIES_MAX + 1)
        );
        let (spec, d) = load(&text);
        assert_eq!(spec, None);
        assert!(d.rendered(Severity::Error)[0].contains("mix: expected at most 64 entries"));
    }

    #[test]
    fn disk_with_rate_on_a_non_io_kind_streams() {
        let (spec, d) = load(concat!(
            "w = { kind = \"cpu_bound\", ",
            "disk = { rate = \"100us\", size = \"16KiB\", queue_depth = 8 } }"
        ));
        assert!(d.rendered(Severity::Error).is_empty());
        let Some(WorkloadSpec::DiskStream { base, disk, rate }) = spec else {
            panic!("a disk stream");
        };
        assert_eq!(*base, WorkloadSpec::CpuBound { yield_every: None });
        assert_eq!((disk.size, disk.queue_depth), (Dist::Const(16 << 10), 8));
        assert_eq!(rate, Dist::Const(100_000));
    }

    #[test]
    fn disk_without_rate_on_a_non_io_kind_is_located_error() {
        let (spec, d) = load("w = { kind = \"cpu_bound\", disk = { queue_depth = 2 } }");
        assert_eq!(spec, None);
        assert!(d.rendered(Severity::Error)[0]
            .contains("workload.disk: a disk sub-table outside the io kind streams"));
    }

    #[test]
    fn disk_rate_on_the_io_kind_is_located_error() {
        let (_, d) = load("w = { kind = \"io\", service = \"1ms\", disk = { rate = \"1ms\" } }");
        assert!(d.rendered(Severity::Error)[0]
            .contains("workload.disk.rate: rate is for non-io kinds (streaming)"));
    }

    #[test]
    fn disk_stream_rate_not_a_distribution_is_located_error() {
        let (spec, d) = load("w = { kind = \"idle\", disk = { rate = \"fast\" } }");
        assert_eq!(spec, None);
        assert!(d.rendered(Severity::Error)[0].contains("workload.disk.rate: expected"));
    }

    #[test]
    fn disk_and_net_streams_wrap_disk_inside_net() {
        let (spec, d) = load(concat!(
            "w = { kind = \"idle\", disk = { rate = \"1ms\" }, ",
            "net = { rate = \"2ms\", peer = \"external\" } }"
        ));
        assert!(d.rendered(Severity::Error).is_empty());
        let Some(WorkloadSpec::NetStream { base, .. }) = spec else {
            panic!("a net stream outside");
        };
        assert!(matches!(*base, WorkloadSpec::DiskStream { .. }));
    }

    #[test]
    fn net_stream_inside_a_mixed_entry_is_the_entry_workload() {
        let (spec, d) = load(concat!(
            "w = { kind = \"mixed\", mix = [{ weight = 1, span = \"5ms\", ",
            "kind = \"cpu_bound\", net = { rate = \"exp:200us\" } }] }"
        ));
        assert!(d.rendered(Severity::Error).is_empty());
        let Some(WorkloadSpec::Mixed { mix }) = spec else {
            panic!("mixed");
        };
        assert!(matches!(mix[0].workload, WorkloadSpec::NetStream { .. }));
    }

    #[test]
    fn vbd_of_a_mixed_io_entry_defaults_to_the_first_disk() {
        let (spec, _) = load(concat!(
            "w = { kind = \"mixed\", mix = [{ weight = 1, span = \"1ms\", ",
            "kind = \"io\", service = \"1ms\", disk = {} }] }"
        ));
        let mut workloads = vec![spec.expect("parsed")];
        super::resolve_vbds(&mut workloads, &["xvdb".to_string()]).expect("resolved");
        assert_eq!(workloads[0].disks_mut()[0].vbd, "xvdb");
    }

    #[test]
    fn misspelt_parameter_is_unknown_key() {
        let (_, d) = load("w = { kind = \"cpu_bound\", yeld_every = \"1ms\" }");
        assert!(d.rendered(Severity::Error)[0].contains("workload.yeld_every: unknown key"));
    }
}
