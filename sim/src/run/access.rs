//! The memory access stream's side of the run loop: each tick, every running vCPU of a
//! domain with a `memory` sub-table makes its sampled accesses (`guest/access.rs`); the
//! sim walks its EPT for each, and an access the EPT refuses becomes a core input
//! (`CoreInput::EptViolation`), after which the access is retried once.
//!
//! # Invariants
//! - At most one violation per access: a second refusal means the core emulated the
//!   access (a write to read-only memory) or crashed the domain.
//! - A domain that stopped running (shut down, crashed) makes no further accesses.

use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::{DomId, VcpuRef};
use hypervisor_model::platform::MapAccess;
use hypervisor_model::toolstack::config::GuestType;

use super::World;

impl World<'_> {
    /// Every running vCPU of `dom` makes its slice's accesses.
    pub(super) fn memory_tick(&mut self, host: u16, dom: DomId, now_ns: u64) {
        let running: Vec<VcpuRef> = self.hosts[usize::from(host)]
            .hv
            .domain(dom)
            .map(|d| {
                d.vcpus
                    .iter()
                    .filter(|v| v.running_on.is_some())
                    .map(|v| v.id)
                    .collect()
            })
            .unwrap_or_default();
        for vcpu in running {
            self.guest_accesses(host, vcpu, now_ns);
        }
    }

    /// The accesses of `vcpu`'s slice ending at `now_ns` (`guest/access.rs`): each one
    /// the EPT refuses is an EPT violation for the core, after which the access is
    /// retried once (a second refusal means the core emulated it or crashed the domain).
    fn guest_accesses(&mut self, host: u16, vcpu: VcpuRef, now_ns: u64) {
        let h = &mut self.hosts[usize::from(host)];
        let guest_pages =
            h.hv.domain(vcpu.dom)
                .and_then(|d| d.config.as_ref())
                .map_or(0, |c| {
                    let pod = c.guest_type != GuestType::Pv && c.max_memory_kib > c.memory_kib;
                    let physmap_kib = if pod { c.max_memory_kib } else { c.memory_kib };
                    (physmap_kib / 4).saturating_sub(h.hv.ballooned_pages(vcpu.dom))
                });
        let accesses = h.sim.access.slice(vcpu.dom, now_ns, guest_pages);
        for access in accesses {
            let wanted = MapAccess {
                read: !access.write,
                write: access.write,
                execute: false,
            };
            let allowed = |ept: &crate::machine::ept::EptTables| {
                ept.translate(vcpu.dom, access.gfn)
                    .is_some_and(|t| t.access.read && (!access.write || t.access.write))
            };
            if allowed(&self.hosts[usize::from(host)].sim.ept) {
                continue;
            }
            let input = CoreInput::EptViolation {
                vcpu,
                gfn: access.gfn,
                access: wanted,
            };
            self.deliver(host, &input);
            let h = &self.hosts[usize::from(host)];
            let running = h.hv.domain(vcpu.dom).is_some_and(|d| !d.is_shutting_down);
            if !running {
                return;
            }
        }
    }
}
