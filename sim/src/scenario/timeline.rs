//! `[[at]]` entries (`specs/scenario.md` §7): xl command lines parsed with
//! `XlCommand::parse` and located word by word; `xl create PATH` loads its xl.cfg now.
//!
//! # Invariants
//! - The returned timeline is sorted by time, stable (equal times keep file order).
//! - Every `create` path in the timeline has a parsed config in the returned map.

use std::collections::BTreeMap;
use std::path::Path;

use hypervisor_model::toolstack::config::DomainConfig;

use super::diag::{Diags, TextOrigin};
use super::host::LoadedHost;
use super::model::{AtAction, AtEntry};
use super::tree::{conv, Kind, Node, Tbl};
use super::unsupported::{self, Feature};
use super::xlcfg_map::{load_xl_cfg, XlCfgSource};
use crate::xl::command::{split_words, XlCommand};

/// Parsed timeline and the configs `xl create` entries name.
pub type Timeline = (Vec<AtEntry>, BTreeMap<String, DomainConfig>);

/// Reads every `[[at]]`.
pub fn timeline(
    d: &Diags,
    file_index: usize,
    base_dir: &Path,
    top: &Tbl<'_>,
    hosts: &[LoadedHost],
    duration_ns: u64,
) -> Timeline {
    let mut entries = Vec::new();
    let mut configs = BTreeMap::new();
    for (index, item) in top.array(d, "at").unwrap_or(&[]).iter().enumerate() {
        let t = Tbl::new(d, file_index, item, &format!("[[at]] #{}", index + 1), "");
        let time_ns = t.req(d, "time", conv::duration);
        if let (Some(time), Some(node)) = (time_ns, t.get("time")) {
            if time >= duration_ns {
                let message = format!("time ({time} ns) must be < sim.duration ({duration_ns} ns)");
                t.error_at(d, node, "time", &message);
            }
        }
        let expect_rc = t.opt(d, "expect_rc", conv::i32_);
        let actions = ["xl", "xenstore", "fault"].map(|k| t.get(k).map(|n| (k, n)));
        let given: Vec<(&str, &Node)> = actions.into_iter().flatten().collect();
        if given.len() != 1 {
            let message = format!(
                "{}: exactly one of xl, xenstore, fault is required",
                t.context()
            );
            d.error(t.here(), message);
        }
        let fault_node = given.iter().find(|(k, _)| *k == "fault").map(|(_, n)| *n);
        let host_index = match fault_node {
            Some(node) if !t.has("host") => Some(fault_host(node, hosts)),
            _ => host_ref(d, &t, hosts),
        };
        let mut action = None;
        for (key, node) in &given {
            match *key {
                "xl" => {
                    action = xl_action(
                        d,
                        &t,
                        node,
                        host_index.and_then(|i| hosts.get(i)),
                        base_dir,
                        &mut configs,
                    )
                }
                "xenstore" => action = xenstore_action(d, &t, node),
                _ => action = fault(d, &t, node, hosts),
            }
        }
        t.finish(d);
        let text = match &action {
            Some(AtAction::DiskError {
                domain,
                vdev,
                count,
            }) => format!("fault disk-error {domain} vbd {vdev} count {count}"),
            Some(AtAction::CrashDomain { domain }) => format!("fault crash-domain {domain}"),
            Some(AtAction::HostCrash { host }) => format!("fault host-crash {host}"),
            Some(AtAction::RestartDomain { domain }) => format!("fault restart-domain {domain}"),
            Some(AtAction::LostInterrupt {
                domain,
                port,
                count,
            }) => format!("fault lost-interrupt {domain} port {port} count {count}"),
            Some(AtAction::SpuriousTimer { pcpu }) => format!("fault spurious-timer cpu {pcpu}"),
            Some(AtAction::Fabric(f)) => super::timeline_net::fault_text(f, hosts),
            _ => t
                .get("xl")
                .or_else(|| t.get("xenstore"))
                .and_then(|n| conv::string(n).ok())
                .unwrap_or_default(),
        };
        if let (Some(time_ns), Some(host_index), Some(action)) = (time_ns, host_index, action) {
            entries.push(AtEntry {
                time_ns,
                host_index,
                action,
                text,
                expect_rc,
            });
        }
    }
    entries.sort_by_key(|e| e.time_ns);
    (entries, configs)
}

/// The host a fault without `host` runs on: the one its `host` field names (the
/// `spurious-timer` and `host-crash` kinds), else the first (a domain fault looks for its
/// domain on every host at run time).
fn fault_host(node: &Node, hosts: &[LoadedHost]) -> usize {
    let Kind::Table(entries) = &node.kind else {
        return 0;
    };
    entries
        .iter()
        .find(|e| e.key == "host")
        .and_then(|e| conv::name(&e.value).ok())
        .and_then(|name| hosts.iter().position(|h| h.spec.name == name))
        .unwrap_or(0)
}

/// The host index for a `host = "..."` key (default: the only host), for `[[domain]]` and
/// `[[at]]` entries alike.
pub(crate) fn host_ref(d: &Diags, t: &Tbl<'_>, hosts: &[LoadedHost]) -> Option<usize> {
    match t.opt(d, "host", conv::name) {
        Some(name) => {
            let found = hosts.iter().position(|h| h.spec.name == name);
            if let (None, Some(node)) = (found, t.get("host")) {
                let known: Vec<&str> = hosts.iter().map(|h| h.spec.name.as_str()).collect();
                let message = format!("no host named {name:?} (hosts: {})", known.join(", "));
                t.error_at(d, node, "host", &message);
            }
            found
        }
        None if t.has("host") => None,
        None if hosts.len() == 1 => Some(0),
        None => {
            if !hosts.is_empty() {
                let message = format!("{}: required with more than one host", t.path("host"));
                d.error(t.here(), message);
            }
            None
        }
    }
}

fn xl_action(
    d: &Diags,
    t: &Tbl<'_>,
    node: &Node,
    host: Option<&LoadedHost>,
    base_dir: &Path,
    configs: &mut BTreeMap<String, DomainConfig>,
) -> Option<AtAction> {
    let Kind::Str(line, origin) = &node.kind else {
        t.error_at(
            d,
            node,
            "xl",
            &format!("expected a string, found {}", node.describe()),
        );
        return None;
    };
    let at = |offset: usize| {
        if origin.exact {
            t.loc(origin.content_offset + offset)
        } else {
            t.loc(node.offset)
        }
    };
    let words = match split_words(line) {
        Ok(words) => words,
        Err(e) => {
            d.error(
                t.loc(node.offset),
                format!("{}: {}", t.path("xl"), e.message),
            );
            return None;
        }
    };
    let plain: Vec<String> = words.iter().map(|(_, w)| w.clone()).collect();
    let command = match XlCommand::parse(&plain) {
        Ok(command) => command,
        Err(e) => {
            let offset = words.get(e.word_index).map_or(0, |(o, _)| *o);
            let sub = plain.first().map_or("", String::as_str);
            let message = match unsupported::not_yet(Feature::XlCommand(sub)) {
                _ if e.word_index == 0 && unsupported::is_tmem(sub) => {
                    format!("xl command \"{sub}\": {}", unsupported::TMEM_REMOVED)
                }
                Some(why) if e.word_index == 0 => why,
                _ => e.message,
            };
            d.error(at(offset), format!("{}: {message}", t.path("xl")));
            return None;
        }
    };
    if let XlCommand::Create { config_path, .. } = &command {
        let host = host?;
        let offset = words
            .get(1..)
            .and_then(|w| w.iter().find(|(_, x)| x == config_path))
            .map_or(0, |(o, _)| *o);
        let path = base_dir.join(config_path);
        let body = match std::fs::read_to_string(&path) {
            Ok(body) => body,
            Err(e) => {
                let message = format!("{}: cannot read xl.cfg {config_path:?}: {e}", t.path("xl"));
                d.error(at(offset), message);
                return None;
            }
        };
        let index = d.add_source(config_path, &body);
        let src = XlCfgSource {
            text: &body,
            origin: TextOrigin::file(index),
            prefix: String::new(),
            expected_name: None,
        };
        let cfg = load_xl_cfg(d, &src, &host.cpus)?;
        configs.insert(config_path.clone(), cfg);
    }
    Some(AtAction::Xl(command))
}

/// A `xenstore = "xenstore-ls -f /local/domain/1"` entry, parsed now (errors located at
/// the offending word).
fn xenstore_action(d: &Diags, t: &Tbl<'_>, node: &Node) -> Option<AtAction> {
    let Kind::Str(line, origin) = &node.kind else {
        let message = format!("expected a string, found {}", node.describe());
        t.error_at(d, node, "xenstore", &message);
        return None;
    };
    let words = match split_words(line) {
        Ok(words) => words,
        Err(e) => {
            let message = format!("{}: {}", t.path("xenstore"), e.message);
            d.error(t.loc(node.offset), message);
            return None;
        }
    };
    let plain: Vec<String> = words.iter().map(|(_, w)| w.clone()).collect();
    match crate::xl::xs_command::parse(&plain) {
        Ok(cmd) => Some(AtAction::Xenstore(cmd)),
        Err(e) => {
            let offset = words.get(e.word_index).map_or(0, |(o, _)| *o);
            let loc = if origin.exact {
                t.loc(origin.content_offset + offset)
            } else {
                t.loc(node.offset)
            };
            d.error(loc, format!("{}: {}", t.path("xenstore"), e.message));
            None
        }
    }
}

const FAULT_KINDS: &[(&str, &[&str])] = &[
    ("crash-domain", &["domain"]),
    ("restart-domain", &["domain"]),
    ("partition", &["a", "b"]),
    ("heal", &["a", "b"]),
    ("link-loss", &["a", "b", "loss_ppm"]),
    ("disk-error", &["domain", "vbd", "count"]),
    ("lost-interrupt", &["domain", "port", "device", "count"]),
    ("spurious-timer", &["host", "pcpu"]),
    ("host-crash", &["host"]),
];

/// Validates a fault table's kind and fields; every kind of §7.1 runs except
/// `lost-interrupt` on a `device` (no passthrough devices yet), which is refused.
fn fault(d: &Diags, t: &Tbl<'_>, node: &Node, hosts: &[LoadedHost]) -> Option<AtAction> {
    let f = Tbl::new(d, t.file_index(), node, t.context(), "fault.");
    let kind = f.req(d, "kind", conv::string);
    if kind.as_deref() == Some("disk-error") {
        let action = disk_error(d, &f);
        f.finish(d);
        return action;
    }
    if kind.as_deref() == Some("host-crash") {
        let host = f.req(d, "host", conv::name);
        f.finish(d);
        return host.map(|host| AtAction::HostCrash { host });
    }
    if kind.as_deref() == Some("crash-domain") {
        let domain = f.req(d, "domain", conv::name);
        f.finish(d);
        return domain.map(|domain| AtAction::CrashDomain { domain });
    }
    if kind.as_deref() == Some("restart-domain") {
        let domain = f.req(d, "domain", conv::name);
        f.finish(d);
        return domain.map(|domain| AtAction::RestartDomain { domain });
    }
    if kind.as_deref() == Some("spurious-timer") {
        let action = spurious_timer(d, &f, hosts);
        f.finish(d);
        return action;
    }
    if kind.as_deref() == Some("lost-interrupt") && !f.has("device") {
        let action = lost_interrupt(d, &f);
        f.finish(d);
        return action;
    }
    if let Some(kind @ ("partition" | "heal" | "link-loss")) = kind.as_deref() {
        let action = super::timeline_net::fabric_fault(d, &f, kind, hosts);
        f.finish(d);
        return action.map(AtAction::Fabric);
    }
    if let Some(kind) = kind {
        match FAULT_KINDS.iter().find(|(k, _)| *k == kind) {
            Some((_, fields)) => {
                for field in *fields {
                    f.get(field);
                }
            }
            None => {
                if let Some(n) = f.get("kind") {
                    let kinds: Vec<&str> = FAULT_KINDS.iter().map(|(k, _)| *k).collect();
                    let message = format!(
                        "expected one of {}, found {}",
                        kinds.join(", "),
                        n.describe()
                    );
                    f.error_at(d, n, "kind", &message);
                }
            }
        }
    }
    f.finish(d);
    unsupported::check(
        d,
        t.loc(node.offset),
        &t.path("fault"),
        Feature::DeviceInterrupt,
    );
    None
}

/// `spurious-timer`: `host` (a host name, required) and `pcpu` (one of its pCPUs).
fn spurious_timer(d: &Diags, f: &Tbl<'_>, hosts: &[LoadedHost]) -> Option<AtAction> {
    let host = f.req(d, "host", conv::name);
    let pcpu = f.req(d, "pcpu", conv::u32_);
    let host = host.and_then(|name| hosts.iter().find(|h| h.spec.name == name));
    if let (Some(node), None) = (f.get("host"), host) {
        let known: Vec<&str> = hosts.iter().map(|h| h.spec.name.as_str()).collect();
        let message = format!("expected a host name ({})", known.join(", "));
        f.error_at(d, node, "host", &message);
    }
    let (host, pcpu) = (host?, pcpu?);
    let pcpu_count = host.cpus.pcpu_count();
    if pcpu >= pcpu_count {
        if let Some(node) = f.get("pcpu") {
            let message = format!(
                "expected a pCPU of host {:?} (0..{pcpu_count}), found {pcpu}",
                host.spec.name
            );
            f.error_at(d, node, "pcpu", &message);
        }
        return None;
    }
    Some(AtAction::SpuriousTimer { pcpu })
}

/// `lost-interrupt` on a port: `domain`, `port` (an event-channel port, ≥ 1), `count`
/// (default 1, ≥ 1).
fn lost_interrupt(d: &Diags, f: &Tbl<'_>) -> Option<AtAction> {
    let domain = f.req(d, "domain", conv::name);
    let port = f.req(d, "port", conv::u32_);
    let count = f.opt(d, "count", conv::u32_).unwrap_or(1);
    for (key, value) in [("port", port.unwrap_or(1)), ("count", count)] {
        if value == 0 {
            if let Some(node) = f.get(key) {
                f.error_at(d, node, key, "expected an integer >= 1, found 0");
            }
            return None;
        }
    }
    Some(AtAction::LostInterrupt {
        domain: domain?,
        port: port?,
        count,
    })
}

/// `disk-error`: `domain` (a name), `vbd` (an xl.cfg vdev), `count` (default 1).
fn disk_error(d: &Diags, f: &Tbl<'_>) -> Option<AtAction> {
    let domain = f.req(d, "domain", conv::name);
    let vbd = f.req(d, "vbd", conv::string);
    let count = f.opt(d, "count", conv::u32_).unwrap_or(1);
    let vbd = vbd?;
    let Some(vdev) = hypervisor_model::toolstack::xs_tree::disk_devid(&vbd) else {
        if let Some(node) = f.get("vbd") {
            let message = format!("expected a disk name like \"xvda\", found {vbd:?}");
            f.error_at(d, node, "vbd", &message);
        }
        return None;
    };
    Some(AtAction::DiskError {
        domain: domain?,
        vdev,
        count,
    })
}
