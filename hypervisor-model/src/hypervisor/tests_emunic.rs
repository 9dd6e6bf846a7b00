//! Emulated NICs on a booted host: an HVM guest without PV drivers sends and receives its
//! frames through ioreqs to QEMU in dom0 (straight to the bridge) or in its stub domain
//! (then through the stub domain's vif, netback in dom0); a PVHVM guest keeps netfront.

use alloc::string::String;
use alloc::vec::Vec;

use super::tests_ioreq::ioreq_batches;
use super::tests_net::{packet, received, send, MAC_A, MAC_DOM0};
use super::tests_net_mq::run_until;
use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::DomId;
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform};
use crate::toolstack::config::{DomainConfig, GuestType, VifCfg};
use crate::trace::TraceEvent;

/// QEMU in dom0: 25 us per ioreq; in a stub domain: 15 us; 3 ioreqs per TX frame, 5 per
/// RX frame; netback 800 ns per TX frame and 1000 ns per RX frame; the stub domain's
/// netfront 300 ns per frame; the guest's VM exit 600 ns and its EOI 700 ns.
const DOM0_RTT_NS: i64 = 25_000;
const STUB_RTT_NS: i64 = 15_000;
const TX_IOREQS: u32 = 3;
const RX_IOREQS: u32 = 5;
pub(super) const NETBACK_TX_NS: i64 = 800;
const NETBACK_RX_NS: i64 = 1_000;
const NETFRONT_NS: i64 = 300;
const EXIT_NS: i64 = 600;
const EOI_NS: i64 = 700;
/// The guest vCPU's share of one received frame: 5 exits and the EOI.
const GUEST_RX_NS: i64 = 5 * EXIT_NS + EOI_NS;

/// A booted host with the costs above.
pub(super) fn hvm_host() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    host.costs.ioreq_dom0_rtt_ns = DOM0_RTT_NS;
    host.costs.ioreq_stubdom_rtt_ns = STUB_RTT_NS;
    host.costs.emulated_nic_tx_ioreqs = TX_IOREQS;
    host.costs.emulated_nic_rx_ioreqs = RX_IOREQS;
    host.costs.netback_tx_pkt_ns = NETBACK_TX_NS;
    host.costs.netback_rx_pkt_ns = NETBACK_RX_NS;
    host.costs.netfront_pkt_ns = NETFRONT_NS;
    host.costs.hvm_exit_rtt_ns = EXIT_NS;
    host.costs.virq_eoi_ns = EOI_NS;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

/// HVM guest "a" with vif 0 (MAC_A); `pv_drivers`: the platform PCI device is there;
/// `stubdom`: QEMU runs in a stub domain.
pub(super) fn hvm_config(pv_drivers: bool, stubdom: bool) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from("a"));
    config.guest_type = GuestType::Hvm;
    config.device_model.platform_pci = pv_drivers;
    config.device_model.stubdomain = stubdom;
    config.vifs.push(VifCfg {
        mac: Some(String::from("00:16:3e:00:00:01")),
        ..VifCfg::default()
    });
    config
}

/// A host with one HVM guest d1 (`hvm_config`), created and settled; the trace cleared.
pub(super) fn hvm_guest(pv_drivers: bool, stubdom: bool) -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = hvm_host();
    let config = hvm_config(pv_drivers, stubdom);
    assert_eq!(hv.handle(&create_paused(1, config), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    p.events.clear();
    (hv, p)
}

/// (rx, packets, work) of every netback work item traced.
pub(super) fn netback_items(p: &FakePlatform) -> Vec<(bool, u32, i64)> {
    p.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::NetbackWork {
                rx,
                packets,
                work_ns,
                ..
            } => Some((*rx, *packets, *work_ns)),
            _ => None,
        })
        .collect()
}

pub(super) fn stub_dom(hv: &Hypervisor) -> DomId {
    hv.domains
        .iter()
        .find(|d| d.name == "a-dm")
        .map(|d| d.id)
        .expect("the stub domain a-dm")
}

pub(super) fn deliver(hv: &mut Hypervisor, p: &mut FakePlatform) {
    let input = CoreInput::NetDeliver {
        dom: ids::dom(1),
        devid: 0,
        packet: packet(MAC_A, MAC_DOM0, 1, 1500),
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

#[test]
fn emulated_nic_tx_is_dom0_qemu_work_then_the_bridge_without_netback() {
    let (mut hv, mut p) = hvm_guest(false, false);
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 1, 1500));
    // One frame: 3 ioreqs of 25 us on dom0, then QEMU's tap puts it on the bridge.
    assert_eq!(ioreq_batches(&p), [(ids::dom(1), DomId::DOM0, 1, 75_000)]);
    assert!(netback_items(&p).is_empty());
    assert_eq!(p.net_frames.len(), 1);
    assert_eq!(p.net_frames[0].back_dom, DomId::DOM0);
}

#[test]
fn emulated_nic_tx_with_a_stub_domain_pays_its_ioreqs_there_then_netback() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 1, 1500));
    // 3 ioreqs of 15 us and its netfront's 300 ns on the stub domain, then its vif's
    // netback in dom0.
    assert_eq!(ioreq_batches(&p), [(ids::dom(1), stub, 1, 45_300)]);
    assert_eq!(netback_items(&p), [(false, 1, NETBACK_TX_NS)]);
    assert_eq!(p.net_frames.len(), 1);
}

#[test]
fn emulated_nic_rx_reaches_the_guest_after_the_device_model() {
    let (mut hv, mut p) = hvm_guest(false, false);
    deliver(&mut hv, &mut p);
    // 5 ioreqs of 25 us on dom0 for the received frame, then the guest's own exits; no
    // netback.
    let batches = [
        (ids::dom(1), DomId::DOM0, 1, 125_000),
        (ids::dom(1), ids::dom(1), 1, GUEST_RX_NS),
    ];
    assert_eq!(ioreq_batches(&p), batches);
    assert!(netback_items(&p).is_empty());
    assert_eq!(received(&p, 1).len(), 1);
}

#[test]
fn emulated_nic_rx_exits_are_charged_to_the_guest_vcpu_before_the_frame_arrives() {
    let (mut hv, mut p) = hvm_guest(false, false);
    let input = CoreInput::NetDeliver {
        dom: ids::dom(1),
        devid: 0,
        packet: packet(MAC_A, MAC_DOM0, 1, 1500),
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    // Step until the guest's vCPU 0 is asked for its exits: nothing received yet.
    run_until(&mut hv, &mut p, |_, p| {
        p.back_work.iter().any(|(v, _, _)| v.dom == ids::dom(1))
    });
    let guest_work: Vec<(crate::ids::VcpuRef, i64)> = p
        .back_work
        .iter()
        .filter(|(v, _, _)| v.dom == ids::dom(1))
        .map(|(v, _, ns)| (*v, *ns))
        .collect();
    assert_eq!(guest_work, [(ids::vcpu(1, 0), GUEST_RX_NS)]);
    assert!(received(&p, 1).is_empty());
    p.run_until_idle(&mut hv);
    assert_eq!(received(&p, 1).len(), 1);
}

#[test]
fn emulated_nic_rx_with_a_stub_domain_crosses_netback_then_the_stub() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    deliver(&mut hv, &mut p);
    assert_eq!(netback_items(&p), [(true, 1, NETBACK_RX_NS)]);
    let batches = [
        (ids::dom(1), stub, 1, 75_300),
        (ids::dom(1), ids::dom(1), 1, GUEST_RX_NS),
    ];
    assert_eq!(ioreq_batches(&p), batches);
    assert_eq!(received(&p, 1).len(), 1);
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn emulated_nic_frames_held_mid_batch_pass_the_checker() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let first = CoreInput::NetSend {
        vcpu: ids::vcpu(1, 0),
        devid: 0,
        packet: packet(MAC_DOM0, MAC_A, 1, 1500),
        last: false,
    };
    assert_eq!(hv.handle(&first, &mut p), Ok(()));
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn pvhvm_guest_keeps_netfront_and_sends_no_ioreq() {
    let (mut hv, mut p) = hvm_guest(true, false);
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 1, 1500));
    assert!(ioreq_batches(&p).is_empty());
    assert_eq!(netback_items(&p).len(), 1);
    assert_eq!(p.net_frames.len(), 1);
}

#[test]
fn emulated_nic_tx_batch_waits_for_its_last_frame() {
    let (mut hv, mut p) = hvm_guest(false, false);
    let first = CoreInput::NetSend {
        vcpu: ids::vcpu(1, 0),
        devid: 0,
        packet: packet(MAC_DOM0, MAC_A, 1, 1500),
        last: false,
    };
    assert_eq!(hv.handle(&first, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert!(ioreq_batches(&p).is_empty());
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 2, 1500));
    // Two frames in one batch: 2 x 3 ioreqs of 25 us.
    assert_eq!(ioreq_batches(&p), [(ids::dom(1), DomId::DOM0, 2, 150_000)]);
    assert_eq!(p.net_frames.len(), 2);
}

#[test]
fn emulated_nic_of_a_destroyed_stub_domain_drops_frames() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    let destroy = crate::toolstack::ops::ToolstackOp::Destroy { dom: stub };
    let job = crate::toolstack::ops::JobId(90);
    assert_eq!(
        hv.handle(&CoreInput::Toolstack { job, op: destroy }, &mut p),
        Ok(())
    );
    p.run_until_idle(&mut hv);
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 1, 1500));
    assert!(p.net_frames.is_empty());
    let drops = p
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::NetDrop { .. }))
        .count();
    assert_eq!(drops, 1);
}
