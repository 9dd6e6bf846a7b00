//! The network faults of `[[at]]` (`specs/scenario.md` §7.1): `partition` and `heal`
//! between two lists of host names, `link-loss` between two hosts; names are checked
//! against the scenario's hosts with located errors.
//!
//! # Invariants
//! - A parsed fault names only existing hosts, and `partition`'s sides are non-empty and
//!   disjoint.

use super::diag::Diags;
use super::host::LoadedHost;
use super::model::FabricFault;
use super::tree::{conv, Kind, Tbl};

/// The host indices of a list of host names under `key`.
fn host_list(d: &Diags, f: &Tbl<'_>, key: &str, hosts: &[LoadedHost]) -> Option<Vec<usize>> {
    let node = f.get(key)?;
    let Kind::Array(items) = &node.kind else {
        f.error_at(d, node, key, "expected a list of host names");
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        out.push(host_index(d, f, key, item, hosts)?);
    }
    if out.is_empty() {
        f.error_at(d, node, key, "expected at least one host name");
        return None;
    }
    Some(out)
}

fn host_index(
    d: &Diags,
    f: &Tbl<'_>,
    key: &str,
    node: &super::tree::Node,
    hosts: &[LoadedHost],
) -> Option<usize> {
    let name = match conv::name(node) {
        Ok(name) => name,
        Err(expected) => {
            f.error_at(d, node, key, &format!("expected {expected}"));
            return None;
        }
    };
    let found = hosts.iter().position(|h| h.spec.name == name);
    if found.is_none() {
        let known: Vec<&str> = hosts.iter().map(|h| h.spec.name.as_str()).collect();
        let message = format!("no host named {name:?} (hosts: {})", known.join(", "));
        f.error_at(d, node, key, &message);
    }
    found
}

/// `partition`, `heal` or `link-loss`.
pub fn fabric_fault(
    d: &Diags,
    f: &Tbl<'_>,
    kind: &str,
    hosts: &[LoadedHost],
) -> Option<FabricFault> {
    match kind {
        "partition" => {
            let a = host_list(d, f, "a", hosts);
            let b = host_list(d, f, "b", hosts);
            if !f.has("a") || !f.has("b") {
                d.error(
                    f.here(),
                    format!("{}: partition needs a and b", f.context()),
                );
                return None;
            }
            let (a, b) = (a?, b?);
            if a.iter().any(|h| b.contains(h)) {
                d.error(f.here(), format!("{}: a and b share a host", f.context()));
                return None;
            }
            Some(FabricFault::Partition { a, b })
        }
        "heal" => {
            let sides = match (f.has("a"), f.has("b")) {
                (false, false) => None,
                _ => Some((host_list(d, f, "a", hosts)?, host_list(d, f, "b", hosts)?)),
            };
            Some(FabricFault::Heal { sides })
        }
        _ => {
            let a = f.get("a").and_then(|n| host_index(d, f, "a", n, hosts));
            let b = f.get("b").and_then(|n| host_index(d, f, "b", n, hosts));
            let loss_ppm = f.req(d, "loss_ppm", conv::ppm);
            if !f.has("a") || !f.has("b") {
                d.error(
                    f.here(),
                    format!("{}: link-loss needs a and b", f.context()),
                );
            }
            Some(FabricFault::LinkLoss {
                a: a?,
                b: b?,
                loss_ppm: loss_ppm?,
            })
        }
    }
}

/// The run log's text of a fault.
pub fn fault_text(fault: &FabricFault, hosts: &[LoadedHost]) -> String {
    let names = |list: &[usize]| {
        let names: Vec<&str> = list
            .iter()
            .filter_map(|i| hosts.get(*i).map(|h| h.spec.name.as_str()))
            .collect();
        names.join(",")
    };
    match fault {
        FabricFault::Partition { a, b } => {
            format!("fault partition {} | {}", names(a), names(b))
        }
        FabricFault::Heal { sides: None } => "fault heal all".to_string(),
        FabricFault::Heal {
            sides: Some((a, b)),
        } => format!("fault heal {} | {}", names(a), names(b)),
        FabricFault::LinkLoss { a, b, loss_ppm } => format!(
            "fault link-loss {} {} {loss_ppm} ppm",
            names(&[*a]),
            names(&[*b])
        ),
    }
}
