//! The host-wide event-channel table and the `EVTCHNOP_*` operations, with Xen's checks in
//! Xen's order so that the guest sees the same errno.
//!
//! Follows xen/common/event_channel.c (Xen 4.17). The calling domain is always passed
//! explicitly (Xen's `current->domain`); `DOMID_SELF` is resolved by the caller.
//!
//! # Invariants
//! - Every operation either fails with no state change (apart from bucket growth, which
//!   Xen keeps too) or completes fully.
//! - An interdomain bind changes both ends together; a close of an interdomain end turns the
//!   other end unbound towards the closer.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::table::{Channel, DomainEvtchn, EvtchnDomainConfig};
use super::{Abi, EvtchnError, Notify, PortState, Virq};
use crate::ids::{DomId, EvtchnPort, VcpuId};
use crate::sched::Violation;

/// Every domain's event channels on one host.
#[derive(Clone, Debug, Default)]
pub struct EventChannels {
    pub(super) domains: BTreeMap<DomId, DomainEvtchn>,
}

/// The result of `bind_interdomain`: the new local port, and the upcall Xen raises because
/// it always sets the new local port pending (events sent before the bind are not lost).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bound {
    /// The local port.
    pub port: EvtchnPort,
    /// The upcall to deliver, if the pending bit raised one.
    pub notify: Option<Notify>,
}

/// `EVTCHNOP_status` output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PortStatus {
    /// The port's state; free and reserved both read as `EVTCHNSTAT_closed`.
    pub state: PortState,
    /// The notify vCPU.
    pub vcpu: VcpuId,
}

impl PortStatus {
    /// The `EVTCHNSTAT_*` code (xen/include/public/event_channel.h).
    pub const fn code(&self) -> u32 {
        match self.state {
            PortState::Free | PortState::Reserved => 0,
            PortState::Unbound { .. } => 1,
            PortState::Interdomain { .. } => 2,
            PortState::Virq { .. } => 4,
            PortState::Ipi => 5,
        }
    }
}

impl EventChannels {
    /// An empty host table.
    pub fn new() -> EventChannels {
        EventChannels::default()
    }

    /// `evtchn_init` at domain creation.
    pub fn init_domain(
        &mut self,
        dom: DomId,
        config: EvtchnDomainConfig,
    ) -> Result<(), EvtchnError> {
        if self.domains.contains_key(&dom) {
            return Err(EvtchnError::DomainExists { dom });
        }
        self.domains.insert(dom, DomainEvtchn::new(dom, config));
        Ok(())
    }

    /// One domain's table.
    pub fn domain(&self, dom: DomId) -> Option<&DomainEvtchn> {
        self.domains.get(&dom)
    }

    /// One domain's table, for guest-side writes (`guest_set_mask`, `guest_take_events`).
    pub fn domain_mut(&mut self, dom: DomId) -> Option<&mut DomainEvtchn> {
        self.domains.get_mut(&dom)
    }

    fn get_mut(&mut self, dom: DomId) -> Result<&mut DomainEvtchn, EvtchnError> {
        self.domains
            .get_mut(&dom)
            .ok_or(EvtchnError::DomainUnknown { dom })
    }

    fn get(&self, dom: DomId) -> Result<&DomainEvtchn, EvtchnError> {
        self.domains
            .get(&dom)
            .ok_or(EvtchnError::DomainUnknown { dom })
    }

    /// XSM dummy `XSM_TARGET`: the caller acts on itself, or is privileged.
    fn check_target(&self, caller: DomId, dom: DomId) -> Result<(), EvtchnError> {
        let privileged = self.domains.get(&caller).is_some_and(|d| d.privileged);
        if caller == dom || privileged {
            Ok(())
        } else {
            Err(EvtchnError::NotPermitted { caller, dom })
        }
    }

    /// `EVTCHNOP_alloc_unbound`: a new port in `dom` that only `remote_dom` may bind.
    /// Xen: the port is taken before the XSM check, so `ENOSPC` wins over `EPERM`.
    pub fn alloc_unbound(
        &mut self,
        caller: DomId,
        dom: DomId,
        remote_dom: DomId,
    ) -> Result<EvtchnPort, EvtchnError> {
        let port = self.get_mut(dom)?.get_free_port()?;
        self.check_target(caller, dom)?;
        let d = self.get_mut(dom)?;
        d.set_channel(
            port,
            Channel {
                state: PortState::Unbound { remote: remote_dom },
                notify_vcpu: VCPU0,
            },
        );
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain` by `local`: connect a new local port to `remote_port` of
    /// `remote_dom`, which must be unbound and allow `local`.
    pub fn bind_interdomain(
        &mut self,
        local: DomId,
        remote_dom: DomId,
        remote_port: EvtchnPort,
    ) -> Result<Bound, EvtchnError> {
        self.get(remote_dom)?;
        let port = self.get_mut(local)?.get_free_port()?;
        let remote = self.get(remote_dom)?.channel(remote_port)?;
        if remote.state != (PortState::Unbound { remote: local }) {
            return Err(EvtchnError::PortWrongState {
                dom: remote_dom,
                port: remote_port,
                state: remote.state,
            });
        }
        let l = self.get_mut(local)?;
        let notify_vcpu = l.channel(port)?.notify_vcpu;
        l.set_channel(
            port,
            Channel {
                state: PortState::Interdomain {
                    remote: remote_dom,
                    remote_port,
                },
                notify_vcpu,
            },
        );
        let r = self.get_mut(remote_dom)?;
        r.set_channel(
            remote_port,
            Channel {
                state: PortState::Interdomain {
                    remote: local,
                    remote_port: port,
                },
                notify_vcpu: remote.notify_vcpu,
            },
        );
        // Xen: "conservatively always setting a notification on the local port".
        let notify = self.get_mut(local)?.set_pending(port, notify_vcpu);
        Ok(Bound { port, notify })
    }

    /// `EVTCHNOP_bind_virq` by `dom` for raw `virq` on raw `vcpu`.
    pub fn bind_virq(
        &mut self,
        dom: DomId,
        virq: u32,
        vcpu: u32,
    ) -> Result<EvtchnPort, EvtchnError> {
        let invalid = EvtchnError::VirqInvalid { virq, vcpu };
        let virq = Virq::new(virq).ok_or(invalid)?;
        if virq.is_global() && vcpu != 0 {
            return Err(invalid);
        }
        let d = self.get_mut(dom)?;
        let v = d.vcpu(vcpu).ok_or(EvtchnError::VcpuUnknown { dom, vcpu })?;
        if d.vcpus[v.raw() as usize].virq_to_evtchn[virq.raw() as usize].is_some() {
            return Err(EvtchnError::VirqBound { dom, virq });
        }
        let port = d.get_free_port()?;
        d.set_channel(
            port,
            Channel {
                state: PortState::Virq { virq },
                notify_vcpu: v,
            },
        );
        d.vcpus[v.raw() as usize].virq_to_evtchn[virq.raw() as usize] = Some(port);
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi` by `dom`, notifying raw `vcpu`.
    pub fn bind_ipi(&mut self, dom: DomId, vcpu: u32) -> Result<EvtchnPort, EvtchnError> {
        let d = self.get_mut(dom)?;
        let v = d.vcpu(vcpu).ok_or(EvtchnError::VcpuUnknown { dom, vcpu })?;
        let port = d.get_free_port()?;
        d.set_channel(
            port,
            Channel {
                state: PortState::Ipi,
                notify_vcpu: v,
            },
        );
        Ok(port)
    }

    /// `EVTCHNOP_close` (and `evtchn_close` from reset and destroy).
    pub fn close(&mut self, dom: DomId, port: EvtchnPort) -> Result<(), EvtchnError> {
        let d = self.get_mut(dom)?;
        let chn = d.channel(port)?;
        match chn.state {
            PortState::Free | PortState::Reserved => {
                return Err(EvtchnError::PortWrongState {
                    dom,
                    port,
                    state: chn.state,
                })
            }
            PortState::Unbound { .. } | PortState::Ipi => {}
            PortState::Virq { virq } => {
                let owner = if virq.is_global() {
                    0
                } else {
                    chn.notify_vcpu.raw()
                };
                let slot = &mut d.vcpus[owner as usize].virq_to_evtchn[virq.raw() as usize];
                assert_eq!(
                    *slot,
                    Some(port),
                    "{dom:?}: virq map disagrees with {port:?}"
                );
                *slot = None;
            }
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                d.free(port);
                self.unbind_peer(dom, port, remote, remote_port);
                return Ok(());
            }
        }
        d.free(port);
        Ok(())
    }

    /// The far end of a closed interdomain channel becomes unbound towards the closer.
    fn unbind_peer(
        &mut self,
        dom: DomId,
        port: EvtchnPort,
        remote: DomId,
        remote_port: EvtchnPort,
    ) {
        let Some(r) = self.domains.get_mut(&remote) else {
            panic!("{dom:?} {port:?}: peer {remote:?} has no table");
        };
        let peer = r.channels[remote_port.index()];
        assert_eq!(
            peer.state,
            PortState::Interdomain {
                remote: dom,
                remote_port: port
            },
            "EC-PAIRING broken at close"
        );
        r.set_channel(
            remote_port,
            Channel {
                state: PortState::Unbound { remote: dom },
                notify_vcpu: peer.notify_vcpu,
            },
        );
    }

    /// `EVTCHNOP_send` by `dom` on `port`: the upcall to deliver, if any. A send on an
    /// unbound port is dropped silently and succeeds.
    pub fn send(&mut self, dom: DomId, port: EvtchnPort) -> Result<Option<Notify>, EvtchnError> {
        let chn = self.get(dom)?.channel(port)?;
        match chn.state {
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                let r = self.get_mut(remote)?;
                let vcpu = r.channel(remote_port)?.notify_vcpu;
                Ok(r.set_pending(remote_port, vcpu))
            }
            PortState::Ipi => Ok(self.get_mut(dom)?.set_pending(port, chn.notify_vcpu)),
            PortState::Unbound { .. } => Ok(None),
            PortState::Free | PortState::Reserved | PortState::Virq { .. } => {
                Err(EvtchnError::PortWrongState {
                    dom,
                    port,
                    state: chn.state,
                })
            }
        }
    }

    /// `send_guest_vcpu_virq`: Xen raises a per-vCPU VIRQ (for example `VIRQ_TIMER`).
    /// Nothing happens if the guest has not bound it.
    pub fn send_vcpu_virq(&mut self, dom: DomId, vcpu: VcpuId, virq: Virq) -> Option<Notify> {
        assert!(!virq.is_global(), "{virq:?} is global");
        let d = self.domains.get_mut(&dom)?;
        let port = d.virq_port(vcpu, virq)?;
        d.set_pending(port, vcpu)
    }

    /// `send_guest_global_virq`: Xen raises a global VIRQ (for example `VIRQ_DOM_EXC`),
    /// delivered to the port's notify vCPU.
    pub fn send_global_virq(&mut self, dom: DomId, virq: Virq) -> Option<Notify> {
        assert!(virq.is_global(), "{virq:?} is per-vCPU");
        let d = self.domains.get_mut(&dom)?;
        let port = d.virq_port(VCPU0, virq)?;
        let vcpu = d.channels[port.index()].notify_vcpu;
        d.set_pending(port, vcpu)
    }

    /// `EVTCHNOP_status` of `(dom, port)` asked by `caller`.
    pub fn status(
        &self,
        caller: DomId,
        dom: DomId,
        port: EvtchnPort,
    ) -> Result<PortStatus, EvtchnError> {
        let chn = self.get(dom)?.channel(port)?;
        self.check_target(caller, dom)?;
        Ok(PortStatus {
            state: chn.state,
            vcpu: chn.notify_vcpu,
        })
    }

    /// `EVTCHNOP_bind_vcpu` by `dom`: move delivery of `port` to raw `vcpu`. Only unbound,
    /// interdomain and global-VIRQ ports can move.
    pub fn bind_vcpu(
        &mut self,
        dom: DomId,
        port: EvtchnPort,
        vcpu: u32,
    ) -> Result<(), EvtchnError> {
        let d = self.get_mut(dom)?;
        let v = d.vcpu(vcpu).ok_or(EvtchnError::VcpuUnknown { dom, vcpu })?;
        let mut chn = d.channel(port)?;
        let movable = match chn.state {
            PortState::Virq { virq } => virq.is_global(),
            PortState::Unbound { .. } | PortState::Interdomain { .. } => true,
            PortState::Free | PortState::Reserved | PortState::Ipi => false,
        };
        if !movable {
            return Err(EvtchnError::PortWrongState {
                dom,
                port,
                state: chn.state,
            });
        }
        chn.notify_vcpu = v;
        d.set_channel(port, chn);
        Ok(())
    }

    /// `EVTCHNOP_unmask` by `dom`: a pending port raises its upcall now.
    pub fn unmask(&mut self, dom: DomId, port: EvtchnPort) -> Result<Option<Notify>, EvtchnError> {
        let d = self.get_mut(dom)?;
        d.channel(port)?;
        Ok(d.unmask(port))
    }

    /// `EVTCHNOP_init_control` (first call): switch `dom` to the FIFO ABI's port limit.
    /// Calling it again is a no-op here (Xen registers further vCPUs' control blocks).
    pub fn init_fifo(&mut self, dom: DomId) -> Result<(), EvtchnError> {
        let d = self.get_mut(dom)?;
        if d.abi == Abi::TwoLevel {
            d.switch_abi(Abi::Fifo);
        }
        Ok(())
    }

    /// `EVTCHNOP_reset` of `dom` by `caller`: close every port and go back to 2-level.
    /// `controller_paused` is `d->controller_pause_count != 0`.
    pub fn reset(
        &mut self,
        caller: DomId,
        dom: DomId,
        controller_paused: bool,
    ) -> Result<(), EvtchnError> {
        self.get(dom)?;
        self.check_target(caller, dom)?;
        if dom != caller && !controller_paused {
            return Err(EvtchnError::ResetNotPaused { dom });
        }
        self.close_all(dom, false);
        let d = self.get_mut(dom)?;
        if d.abi == Abi::Fifo {
            d.switch_abi(Abi::TwoLevel);
        }
        Ok(())
    }

    /// `evtchn_destroy` from `domain_kill`: the domain is dying, every port is closed (from
    /// the top down, as Xen does) and peers see their ends become unbound.
    pub fn destroy(&mut self, dom: DomId) {
        let Some(d) = self.domains.get_mut(&dom) else {
            return;
        };
        d.dying = true;
        self.close_all(dom, true);
    }

    /// `evtchn_destroy_final`: forget the domain's table.
    pub fn remove(&mut self, dom: DomId) {
        if let Some(d) = self.domains.get(&dom) {
            assert!(d.active_count() == 0, "{dom:?}: removed with open ports");
        }
        self.domains.remove(&dom);
    }

    fn close_all(&mut self, dom: DomId, top_down: bool) {
        let Some(d) = self.domains.get(&dom) else {
            return;
        };
        let mut open: Vec<EvtchnPort> = (1..d.valid_ports())
            .map(EvtchnPort::new)
            .filter(|p| !matches!(d.state(*p), Some(PortState::Free)))
            .collect();
        if top_down {
            open.reverse();
        }
        for port in open {
            if let Err(err) = self.close(dom, port) {
                panic!("{dom:?}: closing open {port:?} failed: {err:?}");
            }
        }
    }

    /// Runs every event-channel invariant (spec §9 EC-*), appending violations to `out`.
    pub fn check_invariants(&self, out: &mut Vec<Violation>) {
        super::check::check_all(self, out);
    }
}

const VCPU0: VcpuId = match VcpuId::new(0) {
    Some(v) => v,
    None => panic!("vCPU 0 is always valid"),
};

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::{EventChannels, PortState};
    use crate::evtchn::{
        Errno, EvtchnDomainConfig, EvtchnError, Notify, Virq, MAX_EVTCHN_PORT_LIBXL_DEFAULT,
        MAX_EVTCHN_PORT_UNLIMITED,
    };
    use crate::ids::{DomId, EvtchnPort, VcpuId};

    /// A backend domain (the privileged dom0) and a frontend guest with two vCPUs.
    fn host() -> (EventChannels, DomId, DomId) {
        let mut ec = EventChannels::new();
        let dom0 = DomId::DOM0;
        let guest = DomId::new(1).expect("domid 1");
        let dom0_config = EvtchnDomainConfig {
            max_evtchn_port: MAX_EVTCHN_PORT_UNLIMITED,
            vcpu_count: 2,
            privileged: true,
        };
        let guest_config = EvtchnDomainConfig {
            max_evtchn_port: MAX_EVTCHN_PORT_LIBXL_DEFAULT,
            vcpu_count: 2,
            privileged: false,
        };
        ec.init_domain(dom0, dom0_config).expect("dom0");
        ec.init_domain(guest, guest_config).expect("guest");
        (ec, dom0, guest)
    }

    fn vcpu(raw: u32) -> VcpuId {
        VcpuId::new(raw).expect("vcpu")
    }

    fn assert_invariants(ec: &EventChannels) {
        let mut out = Vec::new();
        ec.check_invariants(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    /// The guest allocates an unbound port for dom0, dom0 binds it: (guest port, dom0 port).
    fn connect(ec: &mut EventChannels, dom0: DomId, guest: DomId) -> (EvtchnPort, EvtchnPort) {
        let gport = ec.alloc_unbound(guest, guest, dom0).expect("alloc");
        let bound = ec.bind_interdomain(dom0, guest, gport).expect("bind");
        (gport, bound.port)
    }

    #[test]
    fn alloc_unbound_returns_lowest_free_port_1() {
        let (mut ec, dom0, guest) = host();
        assert_eq!(ec.alloc_unbound(guest, guest, dom0), Ok(EvtchnPort::new(1)));
    }

    #[test]
    fn alloc_unbound_for_other_domain_by_unprivileged_is_eperm() {
        let (mut ec, dom0, guest) = host();
        let err = ec.alloc_unbound(guest, dom0, guest).expect_err("eperm");
        assert_eq!(err.errno(), Errno::Eperm);
    }

    #[test]
    fn alloc_unbound_in_unknown_domain_is_esrch() {
        let (mut ec, dom0, _) = host();
        let unknown = DomId::new(9).expect("domid 9");
        let err = ec.alloc_unbound(dom0, unknown, dom0).expect_err("esrch");
        assert_eq!(err.errno(), Errno::Esrch);
    }

    #[test]
    fn bind_interdomain_pairs_both_ends_and_sets_local_pending() {
        let (mut ec, dom0, guest) = host();
        let gport = ec.alloc_unbound(guest, guest, dom0).expect("alloc");
        let bound = ec.bind_interdomain(dom0, guest, gport).expect("bind");
        let d0 = ec.domain(dom0).expect("dom0");
        assert!(d0.is_pending(bound.port));
        assert_eq!(
            bound.notify,
            Some(Notify {
                dom: dom0,
                vcpu: vcpu(0)
            })
        );
        let guest_end = ec.domain(guest).and_then(|d| d.state(gport));
        let expected = PortState::Interdomain {
            remote: dom0,
            remote_port: bound.port,
        };
        assert_eq!(guest_end, Some(expected));
        assert_invariants(&ec);
    }

    #[test]
    fn bind_interdomain_by_domain_other_than_allowed_is_einval() {
        let (mut ec, dom0, guest) = host();
        let other = DomId::new(2).expect("domid 2");
        ec.init_domain(other, ec.domain(guest).map(config_of).expect("cfg"))
            .expect("init");
        let gport = ec.alloc_unbound(guest, guest, dom0).expect("alloc");
        let err = ec
            .bind_interdomain(other, guest, gport)
            .expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    fn config_of(d: &crate::evtchn::DomainEvtchn) -> EvtchnDomainConfig {
        EvtchnDomainConfig {
            max_evtchn_port: MAX_EVTCHN_PORT_LIBXL_DEFAULT,
            vcpu_count: d.vcpu_count(),
            privileged: false,
        }
    }

    #[test]
    fn bind_interdomain_to_already_bound_port_is_einval() {
        let (mut ec, dom0, guest) = host();
        let (gport, _) = connect(&mut ec, dom0, guest);
        let err = ec.bind_interdomain(dom0, guest, gport).expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn send_from_backend_notifies_frontend_vcpu_once_until_guest_acks() {
        let (mut ec, dom0, guest) = host();
        let (gport, dport) = connect(&mut ec, dom0, guest);
        let first = ec.send(dom0, dport).expect("send");
        let second = ec.send(dom0, dport).expect("send");
        assert_eq!(
            first,
            Some(Notify {
                dom: guest,
                vcpu: vcpu(0)
            })
        );
        assert_eq!(second, None);
        let taken = ec
            .domain_mut(guest)
            .expect("guest")
            .guest_take_events(vcpu(0));
        assert_eq!(taken, [gport]);
    }

    #[test]
    fn send_to_masked_port_is_delivered_on_unmask() {
        let (mut ec, dom0, guest) = host();
        let (gport, dport) = connect(&mut ec, dom0, guest);
        ec.domain_mut(guest)
            .expect("guest")
            .guest_set_mask(gport, true);
        let sent = ec.send(dom0, dport).expect("send");
        let unmasked = ec.unmask(guest, gport).expect("unmask");
        assert_eq!(sent, None);
        assert_eq!(
            unmasked,
            Some(Notify {
                dom: guest,
                vcpu: vcpu(0)
            })
        );
    }

    #[test]
    fn send_on_unbound_port_is_dropped_and_succeeds() {
        let (mut ec, dom0, guest) = host();
        let gport = ec.alloc_unbound(guest, guest, dom0).expect("alloc");
        assert_eq!(ec.send(guest, gport), Ok(None));
        assert!(!ec.domain(guest).expect("guest").is_pending(gport));
    }

    #[test]
    fn send_on_virq_port_is_einval() {
        let (mut ec, _, guest) = host();
        let port = ec.bind_virq(guest, Virq::TIMER.raw(), 1).expect("bind");
        let err = ec.send(guest, port).expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn send_on_port_past_valid_range_is_einval() {
        let (mut ec, _, guest) = host();
        // 4000 lies past the single allocated bucket of 64 ports.
        let err = ec.send(guest, EvtchnPort::new(4000)).expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn ipi_send_notifies_its_bound_vcpu() {
        let (mut ec, _, guest) = host();
        let port = ec.bind_ipi(guest, 1).expect("bind");
        assert_eq!(
            ec.send(guest, port),
            Ok(Some(Notify {
                dom: guest,
                vcpu: vcpu(1)
            }))
        );
    }

    #[test]
    fn bind_ipi_on_missing_vcpu_is_enoent() {
        let (mut ec, _, guest) = host();
        let err = ec.bind_ipi(guest, 2).expect_err("enoent");
        assert_eq!(err.errno(), Errno::Enoent);
    }

    #[test]
    fn close_interdomain_leaves_remote_end_unbound_towards_closer() {
        let (mut ec, dom0, guest) = host();
        let (gport, dport) = connect(&mut ec, dom0, guest);
        ec.close(guest, gport).expect("close");
        let far = ec.domain(dom0).and_then(|d| d.state(dport));
        assert_eq!(far, Some(PortState::Unbound { remote: guest }));
        assert_invariants(&ec);
    }

    #[test]
    fn close_of_free_port_is_einval() {
        let (mut ec, _, guest) = host();
        let err = ec.close(guest, EvtchnPort::new(5)).expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn close_of_reserved_port_0_is_einval() {
        let (mut ec, _, guest) = host();
        let err = ec.close(guest, EvtchnPort::new(0)).expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn closed_port_is_reused_lowest_first() {
        let (mut ec, _, guest) = host();
        let first = ec.bind_ipi(guest, 0).expect("ipi");
        ec.bind_ipi(guest, 0).expect("ipi");
        ec.close(guest, first).expect("close");
        assert_eq!(ec.bind_ipi(guest, 0), Ok(first));
    }

    #[test]
    fn global_virq_on_vcpu_1_is_einval() {
        let (mut ec, _, guest) = host();
        let err = ec
            .bind_virq(guest, Virq::DOM_EXC.raw(), 1)
            .expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn virq_bound_twice_on_same_vcpu_is_eexist() {
        let (mut ec, _, guest) = host();
        ec.bind_virq(guest, Virq::TIMER.raw(), 0).expect("bind");
        let err = ec
            .bind_virq(guest, Virq::TIMER.raw(), 0)
            .expect_err("eexist");
        assert_eq!(err.errno(), Errno::Eexist);
    }

    #[test]
    fn per_vcpu_virq_may_be_bound_once_per_vcpu() {
        let (mut ec, _, guest) = host();
        ec.bind_virq(guest, Virq::TIMER.raw(), 0).expect("bind v0");
        ec.bind_virq(guest, Virq::TIMER.raw(), 1).expect("bind v1");
    }

    #[test]
    fn virq_number_24_is_einval() {
        let (mut ec, _, guest) = host();
        let err = ec.bind_virq(guest, 24, 0).expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn timer_virq_send_notifies_its_vcpu() {
        let (mut ec, _, guest) = host();
        ec.bind_virq(guest, Virq::TIMER.raw(), 1).expect("bind");
        let notify = ec.send_vcpu_virq(guest, vcpu(1), Virq::TIMER);
        assert_eq!(
            notify,
            Some(Notify {
                dom: guest,
                vcpu: vcpu(1)
            })
        );
    }

    #[test]
    fn global_virq_follows_bind_vcpu() {
        let (mut ec, dom0, _) = host();
        let port = ec.bind_virq(dom0, Virq::DOM_EXC.raw(), 0).expect("bind");
        ec.bind_vcpu(dom0, port, 1).expect("bind_vcpu");
        let notify = ec.send_global_virq(dom0, Virq::DOM_EXC);
        assert_eq!(
            notify,
            Some(Notify {
                dom: dom0,
                vcpu: vcpu(1)
            })
        );
    }

    #[test]
    fn bind_vcpu_of_ipi_port_is_einval() {
        let (mut ec, _, guest) = host();
        let port = ec.bind_ipi(guest, 0).expect("ipi");
        let err = ec.bind_vcpu(guest, port, 1).expect_err("einval");
        assert_eq!(err.errno(), Errno::Einval);
    }

    #[test]
    fn unbound_virq_send_does_nothing() {
        let (mut ec, _, guest) = host();
        assert_eq!(ec.send_vcpu_virq(guest, vcpu(0), Virq::TIMER), None);
    }

    #[test]
    fn status_reports_interdomain_peer() {
        let (mut ec, dom0, guest) = host();
        let (gport, dport) = connect(&mut ec, dom0, guest);
        let status = ec.status(guest, guest, gport).expect("status");
        // EVTCHNSTAT_interdomain is 2.
        assert_eq!(status.code(), 2);
        assert_eq!(
            status.state,
            PortState::Interdomain {
                remote: dom0,
                remote_port: dport
            }
        );
    }

    #[test]
    fn status_of_other_domain_by_unprivileged_is_eperm() {
        let (ec, dom0, guest) = host();
        let err = ec
            .status(guest, dom0, EvtchnPort::new(0))
            .expect_err("eperm");
        assert_eq!(
            err,
            EvtchnError::NotPermitted {
                caller: guest,
                dom: dom0
            }
        );
    }

    #[test]
    fn destroy_unbinds_peer_ends_and_refuses_new_ports() {
        let (mut ec, dom0, guest) = host();
        let (_, dport) = connect(&mut ec, dom0, guest);
        ec.destroy(guest);
        let far = ec.domain(dom0).and_then(|d| d.state(dport));
        assert_eq!(far, Some(PortState::Unbound { remote: guest }));
        let err = ec.bind_ipi(guest, 0).expect_err("dying");
        assert_eq!(err, EvtchnError::DomainDying { dom: guest });
        assert_invariants(&ec);
    }

    #[test]
    fn reset_by_self_closes_every_port() {
        let (mut ec, dom0, guest) = host();
        connect(&mut ec, dom0, guest);
        ec.bind_ipi(guest, 0).expect("ipi");
        ec.reset(guest, guest, false).expect("reset");
        assert_eq!(ec.domain(guest).map(|d| d.active_count()), Some(0));
        assert_invariants(&ec);
    }

    #[test]
    fn reset_of_unpaused_other_domain_is_einval() {
        let (mut ec, dom0, guest) = host();
        let err = ec.reset(dom0, guest, false).expect_err("einval");
        assert_eq!(err, EvtchnError::ResetNotPaused { dom: guest });
    }

    #[test]
    fn libxl_default_limit_gives_enospc_after_port_1023() {
        let (mut ec, _, guest) = host();
        // Ports 1..=1023 succeed (MAX_EVTCHN_PORT_LIBXL_DEFAULT); the 1024th bind fails.
        let bound = (1..=MAX_EVTCHN_PORT_LIBXL_DEFAULT)
            .filter(|_| ec.bind_ipi(guest, 0).is_ok())
            .count();
        let err = ec.bind_ipi(guest, 0).expect_err("enospc");
        assert_eq!(bound, 1023);
        assert_eq!(err.errno(), Errno::Enospc);
    }

    #[test]
    fn two_level_abi_caps_dom0_at_4095_ports_and_fifo_raises_it() {
        let (mut ec, dom0, _) = host();
        // 4095 ports (1..=4095) fit under EVTCHN_2L_NR_CHANNELS = 4096.
        let bound = (1..crate::evtchn::EVTCHN_2L_NR_CHANNELS)
            .filter(|_| ec.bind_ipi(dom0, 0).is_ok())
            .count();
        let full = ec.bind_ipi(dom0, 0).expect_err("enospc");
        ec.init_fifo(dom0).expect("fifo");
        assert_eq!(bound, 4095);
        assert_eq!(full.errno(), Errno::Enospc);
        assert_eq!(ec.bind_ipi(dom0, 0), Ok(EvtchnPort::new(4096)));
        assert_invariants(&ec);
    }

    #[test]
    fn fifo_send_on_port_past_2l_limit_notifies_and_is_taken() {
        let (mut ec, dom0, _) = host();
        ec.init_fifo(dom0).expect("fifo");
        // Fill ports 1..=4095 so the next IPI port is 4096, past the 2-level bitmap.
        let filled = (1..crate::evtchn::EVTCHN_2L_NR_CHANNELS)
            .filter(|_| ec.bind_ipi(dom0, 0).is_ok())
            .count();
        let port = ec.bind_ipi(dom0, 1).expect("ipi");
        let notify = ec.send(dom0, port).expect("send");
        let taken = ec
            .domain_mut(dom0)
            .expect("dom0")
            .guest_take_events(vcpu(1));
        assert_eq!(filled, 4095);
        assert_eq!(
            notify,
            Some(Notify {
                dom: dom0,
                vcpu: vcpu(1)
            })
        );
        assert_eq!(taken, [port]);
    }

    #[test]
    fn loopback_interdomain_within_one_domain_pairs_two_ports() {
        let (mut ec, _, guest) = host();
        let a = ec.alloc_unbound(guest, guest, guest).expect("alloc");
        let bound = ec.bind_interdomain(guest, guest, a).expect("bind");
        assert_ne!(a, bound.port);
        assert_invariants(&ec);
    }
}
