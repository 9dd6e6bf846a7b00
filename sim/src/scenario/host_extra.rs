//! `[host.<name>]` sub-tables that do not shape the machine (`specs/scenario.md` §4.1–§4.4):
//! dom0, the Xen build and command line, xl.conf, and cost overrides.
//!
//! # Invariants
//! - Defaults are those of §4.1 (1024 MiB, one pinned vCPU, weight 256) and §4.2 (4.17.5).
//! - Unknown Xen options are located warnings, as Xen prints `parameter "NAME" unknown!`.

use std::collections::BTreeMap;

use super::diag::Diags;
use super::host::MIB;
use super::model::{CostValue, Dom0Spec, Dom0Vcpus, WorkloadSpec, XenSpec, XlConfSpec};
use super::tree::{conv, Kind, Node, Tbl};
use super::unsupported;
use super::workload::{parse_workload, MemorySlot};

/// Xen options xensim models (`specs/scenario.md` §4.2).
pub const XEN_OPTIONS: &[&str] = &[
    "sched_ratelimit_us",
    "sched_credit2_migrate_resist",
    "credit2_runqueue",
    "sched_credit2_max_cpus_runqueue",
    "credit2_load_window_shift",
    "credit2_load_precision_shift",
    "credit2_balance_under",
    "credit2_balance_over",
    "credit2_cap_period_ms",
    "conring_size",
    "console_timestamps",
    "bootscrub",
];

pub(crate) fn dom0(d: &Diags, h: &Tbl<'_>) -> Option<Dom0Spec> {
    let sub = h.sub(d, "dom0");
    let empty = Node {
        offset: h.here().offset_bytes,
        kind: Kind::Table(Vec::new()),
    };
    let t = sub.unwrap_or_else(|| Tbl::new(d, h.file_index(), &empty, h.context(), "dom0."));
    let mut memory = MemorySlot::default();
    let spec = Dom0Spec {
        memory_bytes: t.opt(d, "memory", conv::mem_size).unwrap_or(1024 * MIB),
        vcpus: t
            .opt(d, "vcpus", |n| match &n.kind {
                Kind::Str(s, _) if s == "all" => Ok(Dom0Vcpus::All),
                Kind::Int(i @ 1..=4095) => Ok(Dom0Vcpus::Count(u32::try_from(*i).unwrap_or(1))),
                _ => Err("an integer >= 1 or \"all\"".to_string()),
            })
            .unwrap_or(Dom0Vcpus::Count(1)),
        pin: t.opt(d, "pin", conv::bool_).unwrap_or(true),
        weight: t.opt(d, "weight", conv::u32_).unwrap_or(256),
        pvh: t
            .opt(d, "type", |n| match conv::string(n).as_deref() {
                Ok("pv") => Ok(false),
                Ok("pvh") => Ok(true),
                _ => Err("\"pv\" or \"pvh\"".to_string()),
            })
            .unwrap_or(false),
        workload: match t.get("workload") {
            Some(node) => {
                let workload = parse_workload(
                    d,
                    t.file_index(),
                    node,
                    t.context(),
                    "dom0.workload.",
                    &mut memory,
                )?;
                if memory.os().is_some() {
                    // dom0's kernel costs are not modelled per mode (guest/modes.rs).
                    t.error_at(d, node, "workload", "dom0's workload takes no os sub-table");
                    return None;
                }
                if matches!(workload, WorkloadSpec::NetStream { .. }) {
                    // dom0 has no vif of its own (its stack sits behind the bridge).
                    t.error_at(d, node, "workload", "dom0 cannot stream over a vif");
                    return None;
                }
                if matches!(workload, WorkloadSpec::Io { .. }) {
                    // dom0 has no vbd of its own (its disks are the host's).
                    t.error_at(d, node, "workload", "dom0 cannot run an io workload");
                    return None;
                }
                if workload.uses_devices() && !matches!(workload, WorkloadSpec::NetIo { .. }) {
                    let message = "dom0's workload cannot use a vbd or a vif (it has none)";
                    t.error_at(d, node, "workload", message);
                    return None;
                }
                workload
            }
            None => WorkloadSpec::Idle {
                tick: None,
                tick_work: super::model::Dist::Const(2_000),
            },
        },
        memory: memory.into_memory(),
        release: t
            .opt(d, "release", conv::string)
            .unwrap_or_else(|| "6.1.0-xensim".into()),
        version: t
            .opt(d, "version", conv::string)
            .unwrap_or_else(|| "#1 SMP PREEMPT_DYNAMIC xensim".into()),
    };
    t.finish(d);
    Some(spec)
}

pub(crate) fn xen(d: &Diags, h: &Tbl<'_>) -> Option<XenSpec> {
    let sub = h.sub(d, "xen");
    let empty = Node {
        offset: h.here().offset_bytes,
        kind: Kind::Table(Vec::new()),
    };
    let t = sub.unwrap_or_else(|| Tbl::new(d, h.file_index(), &empty, h.context(), "xen."));
    let s = |key: &str, default: &str| {
        t.opt(d, key, conv::string)
            .unwrap_or_else(|| default.into())
    };
    let version = t
        .opt(d, "version", |n| {
            let text = conv::string(n)?;
            let (major, rest) = text.split_once('.').unwrap_or(("", ""));
            let minor_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let ok = major.parse::<u32>().is_ok() && minor_end > 0;
            if ok {
                Ok(text)
            } else {
                Err("\"<major>.<minor><extra>\" like \"4.17.5\"".into())
            }
        })
        .unwrap_or_else(|| "4.17.5".into());
    let mut options = BTreeMap::new();
    if let Some(o) = t.sub(d, "options") {
        for entry in o.entries() {
            let text = match &entry.value.kind {
                Kind::Int(i) => i.to_string(),
                Kind::Str(s, _) => s.clone(),
                Kind::Bool(b) => b.to_string(),
                _ => {
                    let message = format!(
                        "expected an integer, string or boolean, found {}",
                        entry.value.describe()
                    );
                    o.error_at(d, &entry.value, &entry.key, &message);
                    continue;
                }
            };
            if unsupported::is_tmem(&entry.key) {
                let message = format!("{}: {}", o.path(&entry.key), unsupported::TMEM_REMOVED);
                d.error(o.loc(entry.key_offset), message);
            } else if !XEN_OPTIONS.contains(&entry.key.as_str()) {
                d.warning(
                    o.loc(entry.key_offset),
                    format!(
                        "{}: parameter \"{}\" unknown! (Xen ignores it)",
                        o.path(&entry.key),
                        entry.key
                    ),
                );
            }
            o.get(&entry.key);
            options.insert(entry.key.clone(), text);
        }
        o.finish(d);
    }
    let spec = XenSpec {
        version,
        changeset: s("changeset", ""),
        cc_compiler: s("cc_compiler", "rustc (xensim)"),
        cc_compile_by: s("cc_compile_by", "xensim"),
        cc_compile_domain: s("cc_compile_domain", "xensim"),
        cc_compile_date: s("cc_compile_date", "(scenario epoch)"),
        build_id: s("build_id", &"0".repeat(40)),
        options,
        extra_cmdline: s("extra_cmdline", ""),
    };
    t.finish(d);
    Some(spec)
}

pub(crate) fn xl_conf(d: &Diags, h: &Tbl<'_>) -> Option<XlConfSpec> {
    let mut spec = XlConfSpec {
        claim_mode: true,
        autoballoon: "auto".to_string(),
        vif_default_bridge: "xenbr0".to_string(),
        max_grant_frames: 64,
        max_maptrack_frames: 1024,
    };
    let Some(t) = h.sub(d, "xl_conf") else {
        return Some(spec);
    };
    for entry in t.entries() {
        let known = matches!(
            entry.key.as_str(),
            "claim_mode"
                | "autoballoon"
                | "vif.default.bridge"
                | "max_grant_frames"
                | "max_maptrack_frames"
        );
        if !known {
            t.get(&entry.key);
            let message = format!("{}: unknown xl.conf key, ignored", t.path(&entry.key));
            d.lenient(t.loc(entry.key_offset), message);
        }
    }
    if let Some(v) = t.opt(d, "claim_mode", |n| match n.kind {
        Kind::Int(0) => Ok(false),
        Kind::Int(1) => Ok(true),
        _ => Err("0 or 1".to_string()),
    }) {
        spec.claim_mode = v;
    }
    if let Some(v) = t.opt(d, "autoballoon", |n| match conv::string(n).as_deref() {
        Ok(v @ ("off" | "on" | "auto")) => Ok(v.to_string()),
        _ => Err("\"off\", \"on\" or \"auto\"".to_string()),
    }) {
        spec.autoballoon = v;
    }
    if let Some(v) = t.opt(d, "vif.default.bridge", conv::string) {
        spec.vif_default_bridge = v;
    }
    spec.max_grant_frames = t.opt(d, "max_grant_frames", conv::u32_).unwrap_or(64);
    spec.max_maptrack_frames = t.opt(d, "max_maptrack_frames", conv::u32_).unwrap_or(1024);
    t.finish(d);
    Some(spec)
}

/// A `[costs]` table: quoted dotted keys, integer or `{ lo, hi }` values.
pub fn costs(d: &Diags, t: &Tbl<'_>) -> BTreeMap<String, CostValue> {
    let mut out = BTreeMap::new();
    for entry in t.entries() {
        t.get(&entry.key);
        let value = match &entry.value.kind {
            Kind::Int(_) => conv::u64_(&entry.value).ok().map(CostValue::Fixed),
            Kind::Table(_) => {
                let prefix = format!("{}{}.", t.prefix(), entry.key);
                let r = Tbl::new(d, t.file_index(), &entry.value, t.context(), &prefix);
                let lo = r.req(d, "lo", conv::u64_);
                let hi = r.req(d, "hi", conv::u64_);
                r.finish(d);
                match (lo, hi) {
                    (Some(lo), Some(hi)) if lo <= hi => Some(CostValue::Range { lo, hi }),
                    (Some(_), Some(_)) => {
                        t.error_at(d, &entry.value, &entry.key, "expected lo <= hi");
                        continue;
                    }
                    _ => continue,
                }
            }
            _ => None,
        };
        match value {
            Some(v) => {
                out.insert(entry.key.clone(), v);
            }
            None => {
                let message = format!(
                    "expected a non-negative integer or {{ lo, hi }}, found {}",
                    entry.value.describe()
                );
                t.error_at(d, &entry.value, &entry.key, &message);
            }
        }
    }
    t.finish(d);
    out
}
