//! Tests of the event-channel operations: allocation, binding, send/unmask delivery,
//! close and the error codes of each hypercall.

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
