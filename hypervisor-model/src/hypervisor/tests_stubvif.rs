//! The stub domain's own vif and the emulated card's bridge port on a booted host: the
//! stub domain gets the guest's nic as a PV vif (XenStore nodes, handshake, rings, grants,
//! ports); the guest's emulated frames cross those rings; the card joins the bridge at
//! the nic's hotplug, before and without any PV handshake of the guest, and leaves with
//! its device model; the stub domain's vif loses interrupts and fills up as any vif.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::tests_emunic::{
    deliver, hvm_config, hvm_guest, hvm_host, netback_items, stub_dom, NETBACK_TX_NS,
};
use super::tests_net::{packet, received, send, MAC_A, MAC_DOM0};
use super::tests_net_mq::run_until;
use super::Hypervisor;
use crate::event::CoreInput;
use crate::evtchn::PortState;
use crate::ids::DomId;
use crate::io::handshake::DeviceKind;
use crate::io::vif::RX_QUEUE_BYTES_MAX;
use crate::io::xenbus::XenbusState;
use crate::testing::{create_paused, ids, FakePlatform};
use crate::toolstack::ops::{GuestNotice, JobId, ToolstackOp};
use crate::trace::TraceEvent;

/// Bytes of every test frame (one ring slot).
const FRAME_BYTES: u32 = 1500;

fn value(hv: &Hypervisor, path: &str) -> Option<String> {
    let node = hv.xenstore.node(path)?;
    Some(String::from_utf8_lossy(node.value()).into_owned())
}

/// The bridge notices (joins and leaves) `dom` got, as (joined, devid).
fn bridge_notices(p: &FakePlatform, dom: DomId) -> Vec<(bool, u32)> {
    p.notices
        .iter()
        .filter(|(d, _)| *d == dom)
        .filter_map(|(_, n)| match n {
            GuestNotice::VifConnected { devid, .. } => Some((true, *devid)),
            GuestNotice::VifGone { devid } => Some((false, *devid)),
            _ => None,
        })
        .collect()
}

/// The `NetDropped` reasons `dom` was told of.
fn drops(p: &FakePlatform, dom: DomId) -> Vec<u8> {
    p.notices
        .iter()
        .filter(|(d, _)| *d == dom)
        .filter_map(|(_, n)| match n {
            GuestNotice::NetDropped { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// `frames` frames for d1's nic from the bridge, one input each, nothing run between.
fn deliver_at_once(hv: &mut Hypervisor, p: &mut FakePlatform, frames: u32) {
    for seq in 0..frames {
        let input = CoreInput::NetDeliver {
            dom: ids::dom(1),
            devid: 0,
            packet: packet(MAC_A, MAC_DOM0, seq, FRAME_BYTES),
        };
        assert_eq!(hv.handle(&input, p), Ok(()));
    }
}

fn destroy(hv: &mut Hypervisor, p: &mut FakePlatform, dom: DomId) {
    let op = ToolstackOp::Destroy { dom };
    let input = CoreInput::Toolstack { job: JobId(90), op };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

#[test]
fn stub_domain_gets_the_guest_nic_as_a_vif_of_its_own_connected_to_dom0() {
    let (hv, _p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    let front = format!("/local/domain/{}/device/vif/0", stub.raw());
    let back = format!("/local/domain/0/backend/vif/{}/0", stub.raw());
    // libxl__dm_vifs_from_hvm_guest_config: the guest nic's MAC, as a plain `vif`.
    assert_eq!(
        value(&hv, &format!("{front}/mac")).as_deref(),
        Some("00:16:3e:00:00:01")
    );
    assert_eq!(value(&hv, &format!("{back}/type")).as_deref(), Some("vif"));
    assert_eq!(value(&hv, &format!("{front}/state")).as_deref(), Some("4"));
    assert_eq!(value(&hv, &format!("{back}/state")).as_deref(), Some("4"));
    let path = hv
        .vif_path(stub, 0)
        .expect("the stub domain's vif is connected");
    assert_eq!(path.params.back_dom, DomId::DOM0);
    assert_eq!(path.params.mac, MAC_A);
    // TX and RX ring granted by the stub domain and mapped by netback.
    let conn = hv.device_conns(stub).iter().find(|c| c.front_path == front);
    let conn = conn.expect("the stub domain's vif device");
    assert_eq!(conn.ring_refs.len(), 2);
    assert_eq!(conn.ring_handles.len(), 2);
}

#[test]
fn stub_domain_vif_ports_are_bound_between_the_stub_domain_and_dom0() {
    let (hv, _p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    let ports = hv.net.ports[&(stub, 0)][0];
    let stub_ports = hv.event_channels().domain(stub).expect("the stub's ports");
    let bound = stub_ports.state(ports.tx.0);
    let to_dom0 = PortState::Interdomain {
        remote: DomId::DOM0,
        remote_port: ports.tx.1,
    };
    assert_eq!(bound, Some(to_dom0));
}

#[test]
fn emulated_frame_with_a_stub_domain_crosses_the_stub_domain_vif_tx_ring() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 1, FRAME_BYTES));
    let pushed = p
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::NetPush { dom, rx: false, slots: 1, .. } if *dom == stub));
    assert!(pushed, "the stub domain's netfront pushed the frame");
    assert_eq!(netback_items(&p), [(false, 1, NETBACK_TX_NS)]);
    let path = hv.vif_path(stub, 0).expect("the stub domain's vif");
    assert_eq!(path.queues[0].counters.tx_forwarded, 1);
    // The bridge sees the stub domain's vif, with the guest nic's MAC.
    assert_eq!(p.net_frames.len(), 1);
    assert_eq!(p.net_frames[0].dom, stub);
    assert_eq!(p.net_frames[0].packet.src, MAC_A);
}

#[test]
fn emulated_frame_with_a_stub_domain_comes_in_over_the_stub_domain_vif_rx_ring() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    deliver(&mut hv, &mut p);
    let pushed = p
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::NetPush { dom, rx: true, slots: 1, .. } if *dom == stub));
    assert!(
        pushed,
        "netback pushed the frame on the stub domain's RX ring"
    );
    // The stub domain's netfront handed it to QEMU, which gave it to the guest.
    assert!(received(&p, stub.raw()).is_empty());
    assert_eq!(received(&p, 1).len(), 1);
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn destroying_the_guest_takes_the_stub_domain_vif_down_and_leaves_nothing() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 1, FRAME_BYTES));
    p.notices.clear();
    destroy(&mut hv, &mut p, ids::dom(1));
    assert!(hv.domain(stub).is_none());
    assert!(hv.vif_path(stub, 0).is_none());
    let back = format!("/local/domain/0/backend/vif/{}", stub.raw());
    assert!(hv.xenstore.node(&back).is_none());
    assert_eq!(hv.net_pages(), 0);
    // The card left the bridge when the device model went.
    assert_eq!(bridge_notices(&p, ids::dom(1)), [(false, 0)]);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn destroying_the_stub_domain_takes_the_card_off_the_bridge() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    p.notices.clear();
    destroy(&mut hv, &mut p, stub);
    assert_eq!(bridge_notices(&p, ids::dom(1)), [(false, 0)]);
    assert_eq!(hv.emulated_card(ids::dom(1), 0), None);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn dom0_qemu_card_is_on_the_bridge_without_any_pv_handshake() {
    let (hv, p) = hvm_guest(false, false);
    assert_eq!(bridge_notices(&p, ids::dom(1)), [(true, 0)]);
    assert_eq!(hv.emulated_card(ids::dom(1), 0), Some(DomId::DOM0));
    // No netfront in the guest: its vif is never probed, netback waits in InitWait.
    let conn = hv
        .device_conns(ids::dom(1))
        .iter()
        .find(|c| c.kind == DeviceKind::Vif);
    let conn = conn.expect("the guest's vif device");
    assert_eq!(conn.front_state, XenbusState::Initialising);
    assert_eq!(conn.back_state, XenbusState::InitWait);
    assert!(hv.vif_path(ids::dom(1), 0).is_none());
}

#[test]
fn stub_domain_vif_puts_the_card_on_the_bridge_at_its_hotplug_before_it_connects() {
    let (mut hv, mut p) = hvm_host();
    let create = create_paused(1, hvm_config(false, true));
    assert_eq!(hv.handle(&create, &mut p), Ok(()));
    run_until(&mut hv, &mut p, |_, p| {
        !bridge_notices(p, ids::dom(1)).is_empty()
    });
    let stub = stub_dom(&hv);
    assert!(hv.vif_path(stub, 0).is_none(), "not connected yet");
    p.run_until_idle(&mut hv);
    assert!(hv.vif_path(stub, 0).is_some());
    // Once only: the stub domain's connect does not join the bridge again.
    assert_eq!(bridge_notices(&p, ids::dom(1)), [(true, 0)]);
    assert!(bridge_notices(&p, stub).is_empty());
}

#[test]
fn guest_create_returns_only_once_its_stub_domain_vif_connected() {
    let (mut hv, mut p) = hvm_host();
    let create = create_paused(1, hvm_config(false, true));
    assert_eq!(hv.handle(&create, &mut p), Ok(()));
    let done = |p: &FakePlatform| {
        let done = |e: &TraceEvent| matches!(e, TraceEvent::JobDone { job: JobId(1), .. });
        p.events.iter().any(done)
    };
    run_until(&mut hv, &mut p, |_, p| done(p));
    let stub = stub_dom(&hv);
    assert!(hv.vif_path(stub, 0).is_some());
}

#[test]
fn pvhvm_guest_with_a_stub_domain_keeps_only_its_pv_vif_on_the_bridge() {
    let (hv, p) = hvm_guest(true, true);
    let stub = stub_dom(&hv);
    // The PV vif's connect, and nothing for the card or the stub domain's vif.
    assert_eq!(bridge_notices(&p, ids::dom(1)), [(true, 0)]);
    assert!(bridge_notices(&p, stub).is_empty());
    assert_eq!(hv.emulated_card(ids::dom(1), 0), None);
    assert!(hv.vif_path(ids::dom(1), 0).is_some());
    assert!(hv.vif_path(stub, 0).is_some());
}

#[test]
fn lost_rx_interrupt_on_the_stub_domain_vif_is_not_made_good_by_its_tx() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    // The stub domain's netfront loses the next notification on its RX port.
    let ports = hv.net.ports[&(stub, 0)][0];
    let fault = CoreInput::LostInterrupt {
        dom: stub,
        port: ports.rx.0.raw(),
        count: 1,
    };
    assert!(hv.can_lose_interrupts(&fault));
    assert_eq!(hv.handle(&fault, &mut p), Ok(()));
    deliver(&mut hv, &mut p);
    assert!(received(&p, 1).is_empty());
    let path = hv.vif_path(stub, 0).expect("the stub domain's vif");
    assert!(path.queues[0].irq_lost.front_rx);
    // The guest's next frame out completes on the stub vif's TX port, whose handler only
    // reaps TX (`xennet_tx_interrupt`): the frame stays on the RX ring, as on Linux.
    send(&mut hv, &mut p, 1, packet(MAC_DOM0, MAC_A, 2, FRAME_BYTES));
    assert!(received(&p, 1).is_empty());
    let path = hv.vif_path(stub, 0).expect("the stub domain's vif");
    assert!(path.queues[0].irq_lost.front_rx);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn full_rx_queue_of_the_stub_domain_vif_drops_against_the_guest_nic() {
    let (mut hv, mut p) = hvm_guest(false, true);
    let stub = stub_dom(&hv);
    // 400 frames at once: netback's RX queue of the stub domain's vif holds 349 of them
    // (512 KiB of 1500-byte frames) until its work ran; the rest are dropped.
    let frames: u32 = 400;
    let queued = RX_QUEUE_BYTES_MAX / FRAME_BYTES;
    deliver_at_once(&mut hv, &mut p, frames);
    let rx_ring_full = 2;
    let dropped = usize::try_from(frames - queued).expect("a count");
    assert_eq!(drops(&p, ids::dom(1)), alloc::vec![rx_ring_full; dropped]);
    let path = hv.vif_path(stub, 0).expect("the stub domain's vif");
    assert_eq!(
        path.queues[0].counters.rx_ring_drops,
        u64::from(frames - queued)
    );
    p.run_until_idle(&mut hv);
    // The queued ones arrive, in order, once each.
    let seqs: Vec<u32> = received(&p, 1).iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (0..queued).collect::<Vec<u32>>());
}
