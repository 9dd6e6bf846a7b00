//! Multi-queue vifs end to end on a booted host whose dom0 has four vCPUs: the XenStore
//! keys of the negotiation (netif.h; a one-queue vif's frontend and backend directories
//! byte for byte as Linux's drivers write them, with a backend that offers no split
//! channels or no XDP headroom, and the `xdp-headroom` netback reads), frames spread over the
//! queues and over dom0's vCPUs and delivered in order per queue, each queue's ports bound
//! to the vCPU that does its work, the frontend keys netback refuses as Linux does,
//! teardown, and a lost interrupt on one queue's port.

use alloc::string::String;
use alloc::vec::Vec;

use super::tests_net::{bridge, received, MAC_A, MAC_B};
use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::{DomId, VcpuRef};
use crate::io::vif::{NetPacket, PacketKind};
use crate::io::xenbus::XenbusState;
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform};
use crate::toolstack::config::{DomainConfig, VifCfg};
use crate::toolstack::ops::{JobId, ToolstackOp};
use crate::trace::TraceEvent;

/// dom0's vCPUs, so netback offers four queues.
const DOM0_VCPUS: u32 = 4;
/// Each guest's vCPUs, so netfront asks for four.
const GUEST_VCPUS: u32 = 4;
/// d1's vif directories.
const FRONT: &str = "/local/domain/1/device/vif/0";
const BACK: &str = "/local/domain/0/backend/vif/1/0";

fn guest(name: &str, mac: &str) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vcpus = GUEST_VCPUS;
    config.max_vcpus = GUEST_VCPUS;
    config.vifs.push(VifCfg {
        mac: Some(String::from(mac)),
        ..VifCfg::default()
    });
    config
}

fn host() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut boot = small_host(4, SchedKind::Credit2);
    boot.dom0.vcpus = DOM0_VCPUS;
    boot.costs.netback_tx_pkt_ns = 1_000;
    boot.costs.netback_rx_pkt_ns = 1_000;
    let mut hv = Hypervisor::boot(boot, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

/// Guests d1 (MAC_A) and d2 (MAC_B) with four vCPUs and a four-queue vif each.
fn two_guests() -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = host();
    let a = create_paused(1, guest("a", "00:16:3e:00:00:01"));
    assert_eq!(hv.handle(&a, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let b = create_paused(2, guest("b", "00:16:3e:00:00:02"));
    assert_eq!(hv.handle(&b, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn value(hv: &Hypervisor, path: &str) -> Option<String> {
    let node = hv.xenstore.node(path)?;
    String::from_utf8(node.value().to_vec()).ok()
}

fn frame(flow: u32, seq: u32) -> NetPacket {
    NetPacket {
        dst: MAC_B,
        src: MAC_A,
        flow,
        seq,
        kind: PacketKind::Stream,
        tag: u64::from(seq),
        reply_bytes: 0,
        bytes: 1500,
    }
}

fn send_all(hv: &mut Hypervisor, p: &mut FakePlatform, packets: &[NetPacket]) {
    for (i, packet) in packets.iter().enumerate() {
        let input = CoreInput::NetSend {
            vcpu: ids::vcpu(1, 0),
            devid: 0,
            packet: *packet,
            last: i + 1 == packets.len(),
        };
        assert_eq!(hv.handle(&input, p), Ok(()));
    }
    p.run_until_idle(hv);
}

/// Hands queued inputs to `hv` one by one until `until` holds.
pub(super) fn run_until(
    hv: &mut Hypervisor,
    p: &mut FakePlatform,
    until: impl Fn(&Hypervisor, &FakePlatform) -> bool,
) {
    for _step in 0..100_000 {
        if until(hv, p) {
            return;
        }
        let Some(((at, _), input)) = p.pending.pop_first() else {
            panic!("the host went idle first");
        };
        p.now = p.now.max(at);
        assert_eq!(hv.handle(&input, p), Ok(()));
    }
    panic!("the condition never held");
}

/// Creates d1 and stops once netfront published its keys (netback has not read them).
fn d1_published() -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = host();
    let a = create_paused(1, guest("a", "00:16:3e:00:00:01"));
    assert_eq!(hv.handle(&a, &mut p), Ok(()));
    run_until(&mut hv, &mut p, |hv, _| {
        hv.device_conns(ids::dom(1))
            .first()
            .is_some_and(|c| c.front_state == XenbusState::Connected)
    });
    (hv, p)
}

/// A one-vCPU network driver domain `netdd` (d1) booted with `cmdline`, and guest d2 whose
/// vif it backs, both settled.
fn guest_behind_netdd(cmdline: &str) -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = host();
    let mut netdd = DomainConfig::with_defaults(String::from("netdd"));
    netdd.driver_domain = true;
    netdd.cmdline = Some(String::from(cmdline));
    assert_eq!(hv.handle(&create_paused(1, netdd), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let mut config = guest("a", "00:16:3e:00:00:01");
    config.vifs[0].backend = Some(String::from("netdd"));
    assert_eq!(hv.handle(&create_paused(2, config), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    (hv, p)
}

/// The guest rewrites (or removes) one of its own keys behind netfront.
fn guest_sets(hv: &mut Hypervisor, key: &str, new: Option<&str>) {
    let dom0 = hv.xenstore.dom0_conn();
    let path = alloc::format!("{FRONT}/{key}");
    let done = match new {
        Some(v) => hv.xenstore.write(dom0, None, path.as_bytes(), v.as_bytes()),
        None => hv.xenstore.rm(dom0, None, path.as_bytes()),
    };
    assert_eq!(done, Ok(()));
}

#[test]
fn four_queue_vif_keys_match_netif_h() {
    let (hv, _p) = two_guests();
    let keys = [
        ("multi-queue-num-queues", "4"),
        ("queue-0/tx-ring-ref", "8"),
        ("queue-0/rx-ring-ref", "9"),
        ("queue-3/tx-ring-ref", "14"),
        ("queue-3/rx-ring-ref", "15"),
    ];
    for (key, want) in keys {
        let got = value(&hv, &alloc::format!("{FRONT}/{key}"));
        assert_eq!(got.as_deref(), Some(want), "{key}");
    }
    assert_eq!(
        value(&hv, &alloc::format!("{BACK}/multi-queue-max-queues")).as_deref(),
        Some("4")
    );
    // Split channels under every queue, nothing of the single-queue layout at the top.
    assert!(value(&hv, &alloc::format!("{FRONT}/queue-3/event-channel-tx")).is_some());
    assert!(value(&hv, &alloc::format!("{FRONT}/queue-3/event-channel-rx")).is_some());
    assert!(value(&hv, &alloc::format!("{FRONT}/queue-0/event-channel")).is_none());
    assert!(value(&hv, &alloc::format!("{FRONT}/tx-ring-ref")).is_none());
    assert!(value(&hv, &alloc::format!("{FRONT}/event-channel")).is_none());
    assert_eq!(
        value(&hv, &alloc::format!("{BACK}/state")).as_deref(),
        Some("4")
    );
    let conn = &hv.device_conns(ids::dom(1))[0];
    // Four queues: eight ring grants, eight frontend ports, each bound by dom0.
    assert_eq!(conn.ring_handles.len(), 8);
    assert_eq!(conn.back_ports().len(), 8);
    assert_eq!(hv.vif_path(ids::dom(1), 0).map(|v| v.queues.len()), Some(4));
}

/// Every key of the directory `dir`, `(name, value)` in the order they were made.
fn dir_keys(hv: &Hypervisor, dir: &str) -> Vec<(String, String)> {
    let node = hv.xenstore.node(dir).expect("the directory");
    node.children()
        .map(|name| {
            let path = alloc::format!("{dir}/{name}");
            (String::from(name), value(hv, &path).unwrap_or_default())
        })
        .collect()
}

#[test]
fn a_one_queue_vif_writes_linux_netfronts_keys_byte_for_byte() {
    let (mut hv, mut p) = host();
    let mut config = guest("a", "00:16:3e:00:00:01");
    config.vcpus = 1;
    config.max_vcpus = 1;
    assert_eq!(hv.handle(&create_paused(1, config), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    // libxl's keys, talk_to_netback_xdp's `xdp-headroom` (0: no XDP program) because
    // netback offers `feature-xdp-headroom`, then talk_to_netback's transaction: the queue
    // count because netback offers `multi-queue-max-queues` (4), the rings and split ports
    // flat because one queue, then the features. Refs 8/9 are the first free; ports 1 and 2 are the
    // store's and the console's, so TX is 3 and RX 4.
    let want = [
        ("backend", "/local/domain/0/backend/vif/1/0"),
        ("backend-id", "0"),
        ("state", "4"),
        ("handle", "0"),
        ("mac", "00:16:3e:00:00:01"),
        ("trusted", "1"),
        ("mtu", "1500"),
        ("xdp-headroom", "0"),
        ("multi-queue-num-queues", "1"),
        ("tx-ring-ref", "8"),
        ("rx-ring-ref", "9"),
        ("event-channel-tx", "3"),
        ("event-channel-rx", "4"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-ipv6-csum-offload", "1"),
    ]
    .map(|(k, v)| (String::from(k), String::from(v)));
    assert_eq!(dir_keys(&hv, FRONT), want);
    // libxl's backend keys, the hotplug script's status, then netback_probe's: its
    // transaction with `feature-xdp-headroom` between rx-copy and rx-flip (Linux >= 5.9),
    // then the split, queue and control-ring offers.
    let want_back = [
        ("frontend", "/local/domain/1/device/vif/0"),
        ("frontend-id", "1"),
        ("online", "1"),
        ("state", "4"),
        ("script", "/etc/xen/scripts/vif-bridge"),
        ("mac", "00:16:3e:00:00:01"),
        ("mtu", "1500"),
        ("bridge", "xenbr0"),
        ("handle", "0"),
        ("type", "vif"),
        ("hotplug-status", "connected"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-ipv6-csum-offload", "1"),
        ("feature-rx-copy", "1"),
        ("feature-xdp-headroom", "1"),
        ("feature-rx-flip", "0"),
        ("feature-multicast-control", "1"),
        ("feature-dynamic-multicast-control", "1"),
        ("feature-split-event-channels", "1"),
        ("multi-queue-max-queues", "4"),
        ("feature-ctrl-ring", "1"),
    ]
    .map(|(k, v)| (String::from(k), String::from(v)));
    assert_eq!(dir_keys(&hv, BACK), want_back);
    let split = value(&hv, &alloc::format!("{BACK}/feature-split-event-channels"));
    assert_eq!(split.as_deref(), Some("1"));
    // netback read the flat split keys: one queue, a TX and an RX port bound.
    let conn = &hv.device_conns(ids::dom(1))[0];
    assert_eq!(conn.back_state, XenbusState::Connected);
    assert_eq!(conn.back_ports().len(), 2);
    assert_eq!(conn.xdp_headroom_bytes, 0);
    assert_eq!(hv.vif_path(ids::dom(1), 0).map(|v| v.queues.len()), Some(1));
}

#[test]
fn flows_spread_over_queues_and_dom0_vcpus_in_order_per_queue() {
    let (mut hv, mut p) = two_guests();
    // Flows 0..3 hash to queues 0..3 of both vifs (FNV-1a of the two MACs and the flow).
    let packets: Vec<NetPacket> = (0..4)
        .flat_map(|flow| (1..=3).map(move |seq| frame(flow, seq)))
        .collect();
    send_all(&mut hv, &mut p, &packets);
    let left = bridge(&mut hv, &mut p);
    assert!(left.is_empty());
    let got = received(&p, 2);
    assert_eq!(got.len(), 12);
    let path = hv.vif_path(ids::dom(2), 0).expect("d2's vif");
    let per_queue: Vec<u64> = path.queues.iter().map(|q| q.counters.rx_packets).collect();
    assert_eq!(per_queue, [3, 3, 3, 3]);
    assert_eq!(path.counters().rx_order_violations, 0);
    assert_eq!(path.counters().rx_packets, 12);
    let flow_two: Vec<u32> = got.iter().filter(|f| f.flow == 2).map(|f| f.seq).collect();
    assert_eq!(flow_two, [1, 2, 3]);
    // netback's work for queue q runs on dom0's vCPU q.
    let mut vcpus: Vec<VcpuRef> = p.back_work.iter().map(|(v, _, _)| *v).collect();
    vcpus.sort();
    vcpus.dedup();
    assert_eq!(vcpus, (0..4).map(|v| ids::vcpu(0, v)).collect::<Vec<_>>());
}

#[test]
fn frontend_asking_more_queues_than_offered_is_refused() {
    let (mut hv, mut p) = d1_published();
    guest_sets(&mut hv, "multi-queue-num-queues", Some("9"));
    p.run_until_idle(&mut hv);
    let error = value(&hv, "/local/domain/0/error/backend/vif/1/0/error");
    let want = "22 guest requested 9 queues, exceeding the maximum of 4.";
    assert_eq!(error.as_deref(), Some(want));
    let conn = &hv.device_conns(ids::dom(1))[0];
    assert_eq!(conn.back_state, XenbusState::Closed);
    assert_eq!(conn.front_state, XenbusState::Closed);
    assert!(conn.ring_handles.is_empty());
    assert!(hv.vif_path(ids::dom(1), 0).is_none());
    let fatal = p
        .events
        .iter()
        .any(|e| matches!(e, TraceEvent::XenbusFatal { path, .. } if path == BACK));
    assert!(fatal);
}

#[test]
fn a_missing_queue_ring_ref_is_refused_and_others_still_connect() {
    let (mut hv, mut p) = d1_published();
    guest_sets(&mut hv, "queue-1/tx-ring-ref", None);
    p.run_until_idle(&mut hv);
    let error = value(&hv, "/local/domain/0/error/backend/vif/1/0/error");
    let want = alloc::format!("2 reading {FRONT}/queue-1/ring-ref");
    assert_eq!(error, Some(want));
    // Queue 0 was mapped before queue 1 failed: netback let go of it again.
    assert!(hv.device_conns(ids::dom(1))[0].ring_handles.is_empty());
    let b = create_paused(2, guest("b", "00:16:3e:00:00:02"));
    assert_eq!(hv.handle(&b, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert_eq!(hv.vif_path(ids::dom(2), 0).map(|v| v.queues.len()), Some(4));
}

#[test]
fn destroy_of_a_four_queue_guest_leaves_no_port_grant_or_page() {
    let (mut hv, mut p) = two_guests();
    send_all(&mut hv, &mut p, &[frame(1, 1), frame(3, 1)]);
    let destroy = CoreInput::Toolstack {
        job: JobId(90),
        op: ToolstackOp::Destroy { dom: ids::dom(1) },
    };
    assert_eq!(hv.handle(&destroy, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert!(hv.domain(ids::dom(1)).is_none());
    assert!(hv.vif_path(ids::dom(1), 0).is_none());
    let dom0 = hv
        .event_channels()
        .domain(DomId::DOM0)
        .expect("dom0's ports");
    let bound_to_d1 = (0..dom0.valid_ports()).any(|raw| {
        matches!(
            dom0.state(crate::ids::EvtchnPort::new(raw)),
            Some(crate::evtchn::PortState::Interdomain { remote, .. }) if remote == ids::dom(1)
        )
    });
    assert!(!bound_to_d1);
    // What dom0 still maps is d2's eight ring pages (four queues, TX and RX).
    let dom0_maps = hv
        .grant_tables()
        .table(DomId::DOM0)
        .map(|t| t.live_mappings());
    assert_eq!(dom0_maps, Some(8));
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn netfront_max_queues_on_the_guest_command_line_caps_the_queues() {
    let (mut hv, mut p) = host();
    let mut config = guest("a", "00:16:3e:00:00:01");
    // Linux's module parameter, as xl.cfg `extra=` puts it on the guest's command line.
    config.cmdline = Some(String::from("console=hvc0 xen_netfront.max_queues=2"));
    assert_eq!(hv.handle(&create_paused(1, config), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let count = value(&hv, &alloc::format!("{FRONT}/multi-queue-num-queues"));
    assert_eq!(count.as_deref(), Some("2"));
    assert_eq!(hv.vif_path(ids::dom(1), 0).map(|v| v.queues.len()), Some(2));
}

#[test]
fn a_lost_interrupt_stalls_only_the_queue_whose_port_it_names() {
    let (mut hv, mut p) = two_guests();
    // d2's netfront loses the next notification on queue 2's RX port (flow 2's queue).
    let ports = hv.net.ports[&(ids::dom(2), 0)][2];
    let fault = CoreInput::LostInterrupt {
        dom: ids::dom(2),
        port: ports.rx.0.raw(),
        count: 1,
    };
    assert!(hv.can_lose_interrupts(&fault));
    assert_eq!(hv.handle(&fault, &mut p), Ok(()));
    send_all(&mut hv, &mut p, &[frame(0, 1), frame(2, 1), frame(3, 1)]);
    assert!(bridge(&mut hv, &mut p).is_empty());
    // Flow 2's frame waits unpolled on queue 2's RX ring; the other queues delivered.
    let flows: Vec<u32> = received(&p, 2).iter().map(|f| f.flow).collect();
    assert_eq!(flows, [0, 3]);
    let path = hv.vif_path(ids::dom(2), 0).expect("d2's vif");
    let lost: Vec<bool> = path.queues.iter().map(|q| q.irq_lost.front_rx).collect();
    assert_eq!(lost, [false, false, true, false]);
    let traced = p.events.iter().any(|e| {
        matches!(e, TraceEvent::InterruptLost { dom, port, left: 0 }
            if *dom == ids::dom(2) && *port == ports.rx.0.raw())
    });
    assert!(traced);
    // The checker's lost-wakeup rule spares the queue that lost its interrupt.
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn a_frame_on_queue_one_wakes_only_backend_vcpu_one() {
    let (mut hv, mut p) = two_guests();
    // Queue 1's ports: dom0 (four vCPUs) bound its ends to vCPU 1, d1 (four vCPUs) its
    // own to vCPU 1 (irqbalance's spread).
    let queue_one = hv.net.ports[&(ids::dom(1), 0)][1];
    let dom0 = hv
        .event_channels()
        .domain(DomId::DOM0)
        .expect("dom0's ports");
    let d1 = hv.event_channels().domain(ids::dom(1)).expect("d1's ports");
    let one = crate::ids::VcpuId::new(1);
    assert_eq!(dom0.notify_vcpu(queue_one.tx.1), one);
    assert_eq!(dom0.notify_vcpu(queue_one.rx.1), one);
    assert_eq!(d1.notify_vcpu(queue_one.tx.0), one);
    assert_eq!(d1.notify_vcpu(queue_one.rx.0), one);
    // dom0's vCPUs all idle in the guest (blocked), so a notification must wake one.
    for v in 0..DOM0_VCPUS {
        let block = CoreInput::VcpuBlock {
            vcpu: ids::vcpu(0, v),
        };
        assert_eq!(hv.handle(&block, &mut p), Ok(()));
    }
    p.run_until_idle(&mut hv);
    p.events.clear();
    // Flow 1 hashes to queue 1 (see the spread test).
    send_all(&mut hv, &mut p, &[frame(1, 1)]);
    let woken: Vec<VcpuRef> = p
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Runstate { vcpu, to, .. }
                if vcpu.dom == DomId::DOM0 && *to == crate::domain::vcpu::Runstate::Runnable =>
            {
                Some(*vcpu)
            }
            _ => None,
        })
        .collect();
    assert_eq!(woken, [ids::vcpu(0, 1)]);
    assert_eq!(p.net_frames.len(), 1);
}

#[test]
fn a_missing_queue_port_is_refused_as_linux_reads_it() {
    let (mut hv, mut p) = d1_published();
    // Without `event-channel-rx` netback falls back to the shared `event-channel`,
    // which a split frontend never wrote.
    guest_sets(&mut hv, "queue-2/event-channel-rx", None);
    p.run_until_idle(&mut hv);
    let error = value(&hv, "/local/domain/0/error/backend/vif/1/0/error");
    let want = alloc::format!("2 reading {FRONT}/queue-2/event-channel(-tx/rx)");
    assert_eq!(error, Some(want));
    let conn = &hv.device_conns(ids::dom(1))[0];
    assert!(conn.ring_handles.is_empty());
    assert!(conn.back_ports().is_empty());
    assert!(hv.vif_path(ids::dom(1), 0).is_none());
}

#[test]
fn a_backend_without_split_channels_gets_one_shared_port() {
    // A one-vCPU network driver domain whose netback has split channels turned off.
    let (hv, _p) = guest_behind_netdd("xen_netback.separate_tx_rx_irq=0");
    let back = "/local/domain/1/backend/vif/2/0";
    let front = "/local/domain/2/device/vif/0";
    let offered = value(&hv, &alloc::format!("{back}/feature-split-event-channels"));
    assert_eq!(offered.as_deref(), Some("0"));
    let keys: Vec<String> = dir_keys(&hv, front).into_iter().map(|(k, _)| k).collect();
    let at = keys.iter().position(|k| k == "multi-queue-num-queues");
    let flat = [
        "multi-queue-num-queues",
        "tx-ring-ref",
        "rx-ring-ref",
        "event-channel",
    ];
    assert_eq!(
        at.map(|i| &keys[i..i + 4]),
        Some(&flat.map(String::from)[..])
    );
    let path = hv.vif_path(ids::dom(2), 0).expect("d2's vif connected");
    assert_eq!(path.queues.len(), 1);
    let ports = hv.net.ports[&(ids::dom(2), 0)][0];
    assert_eq!(ports.tx, ports.rx);
}

/// The error node netback's `xenbus_dev_fatal` wrote for d1's vif.
fn netback_error(hv: &Hypervisor) -> Option<String> {
    value(hv, "/local/domain/0/error/backend/vif/1/0/error")
}

#[test]
fn a_ring_ref_without_a_number_is_refused_with_einval() {
    let (mut hv, mut p) = d1_published();
    guest_sets(&mut hv, "queue-3/tx-ring-ref", Some("ring"));
    p.run_until_idle(&mut hv);
    let want = alloc::format!("22 reading {FRONT}/queue-3/ring-ref");
    assert_eq!(netback_error(&hv), Some(want));
    assert!(hv.vif_path(ids::dom(1), 0).is_none());
}

#[test]
fn a_shared_port_without_a_number_is_refused_with_erange() {
    let (mut hv, mut p) = d1_published();
    // No split ports left, and the shared one `xenbus_scanf` cannot read.
    guest_sets(&mut hv, "queue-2/event-channel-tx", None);
    guest_sets(&mut hv, "queue-2/event-channel", Some("port"));
    p.run_until_idle(&mut hv);
    let want = alloc::format!("34 reading {FRONT}/queue-2/event-channel(-tx/rx)");
    assert_eq!(netback_error(&hv), Some(want));
}

#[test]
fn a_ring_ref_the_guest_never_granted_is_refused_as_a_mapping_failure() {
    let (mut hv, mut p) = d1_published();
    // Queue 1 grants rings 10/11 and allocated ports 5 (TX) and 6 (RX); ref 999 is not
    // granted, so the map fails (-ENOENT from xenbus_map_ring_valloc).
    guest_sets(&mut hv, "queue-1/rx-ring-ref", Some("999"));
    p.run_until_idle(&mut hv);
    let want = "2 mapping shared-frames 10/999 port tx 5 rx 6";
    assert_eq!(netback_error(&hv).as_deref(), Some(want));
    // Queue 0's rings and ports and queue 1's TX ring were let go again.
    let conn = &hv.device_conns(ids::dom(1))[0];
    assert!(conn.ring_handles.is_empty());
    assert!(conn.back_ports().is_empty());
    let dom0_maps = hv
        .grant_tables()
        .table(DomId::DOM0)
        .map(|t| t.live_mappings());
    assert_eq!(dom0_maps, Some(0));
}

/// What netback reads at connect when the guest's `xdp-headroom` says `value`.
fn headroom_read_for(value: &str) -> u16 {
    let (mut hv, mut p) = d1_published();
    guest_sets(&mut hv, "xdp-headroom", Some(value));
    p.run_until_idle(&mut hv);
    let conn = &hv.device_conns(ids::dom(1))[0];
    assert_eq!(conn.back_state, XenbusState::Connected);
    conn.xdp_headroom_bytes
}

#[test]
fn netback_clamps_the_xdp_headroom_a_guest_writes_to_netif_h_maximum() {
    // 40000 bytes is past XEN_NETIF_MAX_XDP_HEADROOM (0x7fff = 32767).
    assert_eq!(headroom_read_for("40000"), 0x7fff);
}

#[test]
fn netback_reads_an_xdp_headroom_without_a_number_as_zero() {
    // xenbus_scanf("%hu") matches nothing: read_xenbus_frontend_xdp keeps 0.
    assert_eq!(headroom_read_for("lots"), 0);
}

#[test]
fn a_backend_without_xdp_headroom_gets_no_xdp_headroom_key() {
    // A network driver domain whose netback has `provides_xdp_headroom` off.
    let (hv, _p) = guest_behind_netdd("xen_netback.provides_xdp_headroom=n");
    let offered = value(&hv, "/local/domain/1/backend/vif/2/0/feature-xdp-headroom");
    assert_eq!(offered.as_deref(), Some("0"));
    assert_eq!(
        value(&hv, "/local/domain/2/device/vif/0/xdp-headroom"),
        None
    );
    assert!(hv.vif_path(ids::dom(2), 0).is_some());
}
