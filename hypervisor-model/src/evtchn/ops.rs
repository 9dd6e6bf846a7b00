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

use alloc::vec::Vec;

use super::table::{Channel, DomainEvtchn, EvtchnDomainConfig};
use super::{Abi, EvtchnError, Notify, PortState, Virq};
use crate::ids::{DomId, EvtchnPort, VcpuId};
use crate::io::dev_map::DomMap;
use crate::sched::Violation;

/// Every domain's event channels on one host.
#[derive(Clone, Debug, Default)]
pub struct EventChannels {
    /// By domain (a send looks up both ends of its channel).
    pub(super) domains: DomMap<DomainEvtchn>,
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
