//! Teardown invariants (issue 8, spec `memory-iommu-migration.md` §9.2 destroy order,
//! `xenstore-io.md` §9.15, §9.26): once a destroy (`xl destroy`, a shutdown or reboot's
//! monitor, a crash's `on_crash`) has removed a domain's devices and XenStore entries and
//! killed it (`Dying`), and again after it is freed:
//! - no XenStore home (`/local/domain/<id>`), no `/libxl/<id>`, and no backend directory
//!   for it under any domain's `backend/<kind>/<id>`;
//! - no port of any other domain bound interdomain to it, and no port of dom0 left
//!   unbound towards it (xenstored, xenconsoled and dom0's backends closed their ends);
//! - no grant of it mapped by any domain, and no mapping it holds of another's grant;
//! - once freed (its domid in libxl's recently-destroyed list and not reused), no page
//!   owned by it.
//!
//! Follows tools/libs/light/libxl_domain.c (`libxl__destroy_domid`) and
//! xen/common/domain.c (`domain_kill`: `evtchn_destroy`, `gnttab_release_mappings`,
//! `relinquish_resources`).
//!
//! xensim leaves out on purpose: a granter whose grant another domain still maps may stay
//! a zombie in Xen (spec §7.5); xensim's destroy waits for the backends to close first, so
//! a live mapping of a dying domain's grant is a leak here.

use alloc::format;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::domain::Dying;
use crate::evtchn::PortState;
use crate::ids::{DomId, EvtchnPort, GrantRef};
use crate::memory::Owner;
use crate::sched::Violation;

fn violation(out: &mut Vec<Violation>, invariant: &'static str, detail: alloc::string::String) {
    out.push(Violation { invariant, detail });
}

/// Every dying domain and every freed one not reused since.
pub(super) fn check_teardown(hv: &Hypervisor, out: &mut Vec<Violation>) {
    for d in hv.domains.iter() {
        if d.dying != Dying::Alive && d.id != DomId::DOM0 {
            check_dead_left_nothing(hv, d.id, out);
        }
    }
    for (dom, _) in &hv.recent_domids {
        if hv.domains.get(*dom).is_none() {
            check_dead_left_nothing(hv, *dom, out);
            check_freed_pages(hv, *dom, out);
        }
    }
}

/// A dead domain left no XenStore entry, port, or grant mapping behind.
fn check_dead_left_nothing(hv: &Hypervisor, dom: DomId, out: &mut Vec<Violation>) {
    check_dead_xenstore(hv, dom, out);
    // Its own maptrack (gone with its table once freed): `gnttab_release_mappings`.
    let maps = hv.grants.table(dom).map_or(0, |t| t.live_mappings());
    if maps > 0 {
        let what = format!("{dom:?} still holds {maps} grant mappings");
        violation(out, "teardown.dead_maps", what);
    }
    for other in hv.domains.iter().filter(|o| o.id != dom) {
        if let Some(ports) = hv.evtchn.domain(other.id) {
            let bound = (0..ports.valid_ports()).any(|raw| {
                matches!(
                    ports.state(EvtchnPort::new(raw)),
                    Some(PortState::Interdomain { remote, .. }) if remote == dom
                )
            });
            if bound {
                let what = format!("{:?} holds a port bound to {dom:?}", other.id);
                violation(out, "xenbus.dead_port", what);
            }
            // Only dom0's daemons and backends must close their ends; a guest may keep a
            // port that has become unbound (a frontend until it reconnects to a
            // re-created backend, as blkif_recover does).
            let leaked = (other.id == DomId::DOM0)
                .then(|| unbound_towards(ports, dom))
                .flatten();
            if let Some(port) = leaked {
                let what = format!("{:?} port {} still waits for {dom:?}", other.id, port.raw());
                violation(out, "teardown.dead_unbound_port", what);
            }
        }
        if mapped_by(hv, dom, other.id) {
            let what = format!("{:?} maps a grant of {dom:?}", other.id);
            violation(out, "xenbus.dead_grant", what);
        }
    }
}

/// A port of `ports` left unbound towards `dead`: the far end of a channel whose holder
/// (xenstored, xenconsoled, a backend) did not close its end when `dead` died.
fn unbound_towards(ports: &crate::evtchn::DomainEvtchn, dead: DomId) -> Option<EvtchnPort> {
    (0..ports.valid_ports()).map(EvtchnPort::new).find(
        |port| matches!(ports.state(*port), Some(PortState::Unbound { remote }) if remote == dead),
    )
}

/// True if some grant of `granter` is mapped by `mapper`.
fn mapped_by(hv: &Hypervisor, granter: DomId, mapper: DomId) -> bool {
    let Some(table) = hv.grants.table(granter) else {
        return false;
    };
    (0u32..)
        .map(GrantRef::new)
        .map_while(|gref| table.entry(gref).map(|_| gref))
        .any(|gref| {
            table
                .active(gref)
                .is_some_and(|a| !a.pins.is_zero() && a.domid == mapper)
        })
}

/// No home, no `/libxl/<id>`, no backend directory for it in any domain's `backend`.
fn check_dead_xenstore(hv: &Hypervisor, dom: DomId, out: &mut Vec<Violation>) {
    let raw = dom.raw();
    for path in [format!("/local/domain/{raw}"), format!("/libxl/{raw}")] {
        if hv.xenstore.node(&path).is_some() {
            violation(
                out,
                "xenbus.dead_home",
                format!("{path} outlives the destroy"),
            );
        }
    }
    for backend in hv.domains.iter().filter(|b| b.id != dom) {
        let root = format!("/local/domain/{}/backend", backend.id.raw());
        let Some(node) = hv.xenstore.node(&root) else {
            continue;
        };
        for kind in node.children() {
            let path = format!("{root}/{kind}/{raw}");
            if hv.xenstore.node(&path).is_some() {
                violation(
                    out,
                    "teardown.backend_dir",
                    format!("{path} outlives {dom:?}"),
                );
            }
        }
    }
}

/// A freed domain owns no page.
fn check_freed_pages(hv: &Hypervisor, dom: DomId, out: &mut Vec<Violation>) {
    let owned = hv.memory.frames().owned_pages(Owner::Dom(dom));
    if owned > 0 {
        let what = format!("freed {dom:?} still owns {owned} pages");
        violation(out, "teardown.pages", what);
    }
}
