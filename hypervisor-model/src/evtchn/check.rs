//! O(n) event-channel invariants over every domain of a host (spec `xenstore-io.md` §9,
//! EC-PAIRING, EC-LIMIT, plus the table's own consistency rules).
//!
//! # Invariants checked
//! - `evtchn.port0_reserved`: port 0 is reserved.
//! - `evtchn.buckets`: `valid_evtchns` is a whole number of buckets within the ABI limit.
//! - `evtchn.limit`: no bound port above `max_evtchn_port` or at/above the ABI limit.
//! - `evtchn.pairing`: interdomain ends point at each other.
//! - `evtchn.pending_on_free`: no pending bit on a free or reserved port, or past the table.
//! - `evtchn.virq_map`: `virq_to_evtchn` and the VIRQ ports agree both ways.
//! - `evtchn.notify_vcpu`: every notify vCPU exists; free ports notify vCPU 0.
//! - `evtchn.dying_has_ports`: a dying domain has no bound port.

use alloc::format;
use alloc::vec::Vec;

use super::ops::EventChannels;
use super::table::DomainEvtchn;
use super::{PortState, EVTCHNS_PER_BUCKET, NR_VIRQS};
use crate::ids::{EvtchnPort, VcpuId};
use crate::sched::Violation;

pub(super) fn check_all(ec: &EventChannels, out: &mut Vec<Violation>) {
    for d in ec.domains.values() {
        check_table_shape(d, out);
        check_ports(ec, d, out);
        check_pending(d, out);
        check_virq_map(d, out);
    }
}

fn violation(out: &mut Vec<Violation>, invariant: &'static str, detail: alloc::string::String) {
    out.push(Violation { invariant, detail });
}

fn check_table_shape(d: &DomainEvtchn, out: &mut Vec<Violation>) {
    if d.state(EvtchnPort::new(0)) != Some(PortState::Reserved) {
        violation(
            out,
            "evtchn.port0_reserved",
            format!("{:?}: port 0 not reserved", d.dom),
        );
    }
    let valid = d.valid_ports();
    if !valid.is_multiple_of(EVTCHNS_PER_BUCKET) || valid > d.abi.nr_channels() {
        violation(
            out,
            "evtchn.buckets",
            format!("{:?}: valid_evtchns {valid} under {:?}", d.dom, d.abi),
        );
    }
}

fn check_ports(ec: &EventChannels, d: &DomainEvtchn, out: &mut Vec<Violation>) {
    for (index, chn) in d.channels.iter().enumerate() {
        let port = EvtchnPort::new(u32::try_from(index).unwrap_or(u32::MAX));
        let bound = !matches!(chn.state, PortState::Free | PortState::Reserved);
        if bound && (port.raw() > d.max_evtchn_port || port.raw() >= d.abi.nr_channels()) {
            violation(
                out,
                "evtchn.limit",
                format!("{:?}: {port:?} past the limit", d.dom),
            );
        }
        if bound && d.dying {
            violation(
                out,
                "evtchn.dying_has_ports",
                format!("{:?}: {port:?}", d.dom),
            );
        }
        if chn.notify_vcpu.raw() >= d.vcpu_count() {
            let v = chn.notify_vcpu;
            violation(
                out,
                "evtchn.notify_vcpu",
                format!("{:?} {port:?}: {v:?}", d.dom),
            );
        }
        if chn.state == PortState::Free && chn.notify_vcpu.raw() != 0 {
            violation(
                out,
                "evtchn.notify_vcpu",
                format!("{:?} free {port:?}", d.dom),
            );
        }
        if let PortState::Interdomain {
            remote,
            remote_port,
        } = chn.state
        {
            check_pair(ec, d, port, remote, remote_port, out);
        }
    }
}

fn check_pair(
    ec: &EventChannels,
    d: &DomainEvtchn,
    port: EvtchnPort,
    remote: crate::ids::DomId,
    remote_port: EvtchnPort,
    out: &mut Vec<Violation>,
) {
    let back = ec.domain(remote).and_then(|r| r.state(remote_port));
    let expected = PortState::Interdomain {
        remote: d.dom,
        remote_port: port,
    };
    if back != Some(expected) {
        violation(
            out,
            "evtchn.pairing",
            format!(
                "{:?} {port:?} -> {remote:?} {remote_port:?}, which is {back:?}",
                d.dom
            ),
        );
    }
}

fn check_pending(d: &DomainEvtchn, out: &mut Vec<Violation>) {
    for port in d.pending_ports() {
        let state = d.state(port);
        if matches!(state, None | Some(PortState::Free | PortState::Reserved)) {
            violation(
                out,
                "evtchn.pending_on_free",
                format!("{:?}: {port:?} pending in state {state:?}", d.dom),
            );
        }
    }
}

fn check_virq_map(d: &DomainEvtchn, out: &mut Vec<Violation>) {
    for (v_index, v) in d.vcpus.iter().enumerate() {
        for (virq_index, slot) in v.virq_to_evtchn.iter().enumerate() {
            let Some(port) = slot else { continue };
            let state = d.state(*port);
            let bound_virq = match state {
                Some(PortState::Virq { virq }) => Some(virq.raw() as usize),
                _ => None,
            };
            let matches = bound_virq == Some(virq_index);
            if !matches {
                violation(
                    out,
                    "evtchn.virq_map",
                    format!(
                        "{:?} v{v_index} virq {virq_index} -> {port:?} {state:?}",
                        d.dom
                    ),
                );
            }
        }
    }
    for (index, chn) in d.channels.iter().enumerate() {
        let PortState::Virq { virq } = chn.state else {
            continue;
        };
        let owner = if virq.is_global() {
            VcpuId::new(0)
        } else {
            Some(chn.notify_vcpu)
        };
        let port = EvtchnPort::new(u32::try_from(index).unwrap_or(u32::MAX));
        let mapped = owner.and_then(|v| d.virq_port(v, virq));
        if mapped != Some(port) || virq.raw() >= NR_VIRQS {
            violation(
                out,
                "evtchn.virq_map",
                format!("{:?} {port:?} bound to {virq:?}, map has {mapped:?}", d.dom),
            );
        }
    }
}
