//! The vif data path end to end on a booted host: netfront in two guests, netback in dom0,
//! a test bridge handing every forwarded frame to the vif that owns its destination MAC;
//! ordering, multi-slot frames, and guests that write garbage into their rings or grant
//! bogus refs.

use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::DomId;
use crate::io::netif::{TxRequest, NETIF_RSP_ERROR, NETIF_TX_SLOT_BYTES};
use crate::io::vif::{Mac, NetPacket, PacketKind};
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform};
use crate::toolstack::config::{DomainConfig, VifCfg};
use crate::toolstack::ops::{GuestNotice, JobId, ToolstackOp};
use crate::trace::TraceEvent;

pub(super) const MAC_A: Mac = [0, 0x16, 0x3e, 0, 0, 1];
pub(super) const MAC_B: Mac = [0, 0x16, 0x3e, 0, 0, 2];
/// A MAC no vif has (dom0's own stack in the sim).
pub(super) const MAC_DOM0: Mac = [2, 0, 0, 0, 0, 0];

fn create(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, name: &str, mac: &str) {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vifs.push(VifCfg {
        mac: Some(String::from(mac)),
        ..VifCfg::default()
    });
    assert_eq!(hv.handle(&create_paused(job, config), p), Ok(()));
    p.run_until_idle(hv);
}

/// A host with guests d1 (MAC_A) and d2 (MAC_B), each with a connected vif 0.
pub(super) fn two_guests(tx_pkt_ns: i64) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    host.costs.netback_tx_pkt_ns = tx_pkt_ns;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    create(&mut hv, &mut p, 1, "a", "00:16:3e:00:00:01");
    create(&mut hv, &mut p, 2, "b", "00:16:3e:00:00:02");
    (hv, p)
}

pub(super) fn packet(dst: Mac, src: Mac, seq: u32, bytes: u32) -> NetPacket {
    NetPacket {
        dst,
        src,
        flow: 1,
        seq,
        kind: PacketKind::Stream,
        tag: u64::from(seq),
        reply_bytes: 0,
        bytes,
    }
}

/// The test bridge: frames for a guest's MAC go to its vif; the rest stay in `left`.
pub(super) fn bridge(hv: &mut Hypervisor, p: &mut FakePlatform) -> Vec<NetPacket> {
    let mut left = Vec::new();
    while !p.net_frames.is_empty() {
        for frame in core::mem::take(&mut p.net_frames) {
            let dom = match frame.packet.dst {
                MAC_A => ids::dom(1),
                MAC_B => ids::dom(2),
                _ => {
                    left.push(frame.packet);
                    continue;
                }
            };
            let input = CoreInput::NetDeliver {
                dom,
                devid: 0,
                packet: frame.packet,
            };
            assert_eq!(hv.handle(&input, p), Ok(()));
            p.run_until_idle(hv);
        }
    }
    left
}

pub(super) fn send(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16, packet: NetPacket) {
    let input = CoreInput::NetSend {
        vcpu: ids::vcpu(dom, 0),
        devid: 0,
        packet,
        last: true,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

pub(super) fn received(p: &FakePlatform, dom: u16) -> Vec<NetPacket> {
    p.notices
        .iter()
        .filter(|(d, _)| *d == ids::dom(dom))
        .filter_map(|(_, n)| match n {
            GuestNotice::NetReceived { packet, .. } => Some(*packet),
            _ => None,
        })
        .collect()
}

/// The guest writes one TX request into slot `req_prod` and publishes it behind netfront.
fn scribble_request(hv: &mut Hypervisor, dom: u16, req: TxRequest) {
    let path = &mut hv.vif_path_mut(ids::dom(dom), 0).expect("vif 0").queues[0];
    let prod = path.tx_sring.req_prod();
    let mut slot = [0u8; NETIF_TX_SLOT_BYTES];
    req.encode(&mut slot);
    let offset = 64 + (prod as usize & 255) * NETIF_TX_SLOT_BYTES;
    path.guest_scribble(false, offset, &slot);
    path.guest_scribble(false, 0, &prod.wrapping_add(1).to_le_bytes());
}

/// The guest notifies netback over its TX event channel (`EVTCHNOP_send`) after writing
/// its TX ring by hand: netback's TX interrupt handler runs.
pub(super) fn kick(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16) {
    let key = (ids::dom(dom), 0);
    let irq = hv.net_irq_of(key, 0, false);
    hv.netback_irq(key, 0, irq, p);
    p.run_until_idle(hv);
}

#[test]
fn vif_connects_with_a_full_ring_of_rx_buffers() {
    let (hv, _p) = two_guests(0);
    let path = hv.vif_path(ids::dom(1), 0).expect("vif 0 connected");
    assert_eq!(path.params.back_dom, DomId::DOM0);
    assert_eq!(path.params.mac, MAC_A);
    // netfront posts one buffer per RX slot (256) at connect.
    assert_eq!(path.queues[0].rx_sring.req_prod(), 256);
}

#[test]
fn frames_between_guests_arrive_in_order() {
    let (mut hv, mut p) = two_guests(806);
    for seq in 1..=3 {
        send(&mut hv, &mut p, 1, packet(MAC_B, MAC_A, seq, 1500));
    }
    bridge(&mut hv, &mut p);
    let seqs: Vec<u32> = received(&p, 2).iter().map(|pk| pk.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let path = hv.vif_path(ids::dom(2), 0).expect("vif");
    assert_eq!(path.counters().rx_bytes, 4500);
}

#[test]
fn a_jumbo_frame_goes_over_three_slots_and_arrives_whole() {
    let (mut hv, mut p) = two_guests(0);
    send(&mut hv, &mut p, 1, packet(MAC_B, MAC_A, 1, 9000));
    bridge(&mut hv, &mut p);
    assert_eq!(received(&p, 2)[0].bytes, 9000);
    let pushes: Vec<u32> = p
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::NetPush {
                rx: false, slots, ..
            } => Some(*slots),
            _ => None,
        })
        .collect();
    assert_eq!(pushes, [3]);
}

#[test]
fn backend_cpu_is_charged_per_tx_packet() {
    // 806 ns per packet (cost-model §3.2), two packets pushed in one batch.
    let (mut hv, mut p) = two_guests(806);
    let first = CoreInput::NetSend {
        vcpu: ids::vcpu(1, 0),
        devid: 0,
        packet: packet(MAC_B, MAC_A, 1, 100),
        last: false,
    };
    assert_eq!(hv.handle(&first, &mut p), Ok(()));
    send(&mut hv, &mut p, 1, packet(MAC_B, MAC_A, 2, 100));
    let work: Vec<i64> = p.back_work.iter().map(|w| w.2).collect();
    assert_eq!(work, [1612]);
    assert_eq!(p.back_work[0].0.dom, DomId::DOM0);
}

#[test]
fn cross_page_request_disables_only_that_vif() {
    let (mut hv, mut p) = two_guests(0);
    let bad = TxRequest {
        gref: crate::ids::GrantRef::new(8),
        offset: 4000,
        flags: 0,
        id: 0,
        size: 200,
    };
    scribble_request(&mut hv, 1, bad);
    kick(&mut hv, &mut p, 1);
    let disabled = p.events.iter().any(
        |e| matches!(e, TraceEvent::VifDisabled { dom, reason: 2, .. } if *dom == ids::dom(1)),
    );
    assert!(disabled);
    // d2 still reaches dom0's stack.
    send(&mut hv, &mut p, 2, packet(MAC_DOM0, MAC_B, 1, 60));
    assert_eq!(bridge(&mut hv, &mut p).len(), 1);
}

#[test]
fn bogus_grant_ref_is_answered_with_an_error_and_the_vif_goes_on() {
    let (mut hv, mut p) = two_guests(0);
    let bad = TxRequest {
        gref: crate::ids::GrantRef::new(30_000),
        offset: 0,
        flags: 0,
        id: 5,
        size: 100,
    };
    scribble_request(&mut hv, 1, bad);
    kick(&mut hv, &mut p, 1);
    let rejected = p.events.iter().any(
        |e| matches!(e, TraceEvent::NetTxReject { id: 5, reason: 4, gntst, .. } if *gntst < 0),
    );
    assert!(rejected);
    let path = hv.vif_path(ids::dom(1), 0).expect("vif");
    assert!(!path.back_disabled());
    assert_eq!(path.counters().tx_errors, 1);
    // The response slot carries NETIF_RSP_ERROR for id 5.
    let ring = &path.queues[0].tx_sring;
    let raw = ring.slot(ring.rsp_prod().wrapping_sub(1));
    assert_eq!(i16::from_le_bytes([raw[2], raw[3]]), NETIF_RSP_ERROR);
}

#[test]
fn impossible_req_prod_disables_the_vif_and_rx_for_it_is_dropped() {
    let (mut hv, mut p) = two_guests(0);
    let path = hv.vif_path_mut(ids::dom(1), 0).expect("vif");
    path.queues[0].guest_scribble(false, 0, &1000u32.to_le_bytes());
    kick(&mut hv, &mut p, 1);
    send(&mut hv, &mut p, 2, packet(MAC_A, MAC_B, 1, 60));
    bridge(&mut hv, &mut p);
    assert!(received(&p, 1).is_empty());
    let dropped = p
        .notices
        .iter()
        .any(|(d, n)| *d == ids::dom(1) && matches!(n, GuestNotice::NetDropped { reason: 2, .. }));
    assert!(dropped);
}

#[test]
fn destroy_leaves_no_mapping_port_or_page_of_the_vif() {
    let (mut hv, mut p) = two_guests(0);
    send(&mut hv, &mut p, 1, packet(MAC_B, MAC_A, 1, 9000));
    bridge(&mut hv, &mut p);
    let pages_before = hv.net_pages();
    let destroy = CoreInput::Toolstack {
        job: JobId(9),
        op: ToolstackOp::Destroy { dom: ids::dom(2) },
    };
    assert_eq!(hv.handle(&destroy, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert!(hv.vif_path(ids::dom(2), 0).is_none());
    let dom0_maps = hv
        .grant_tables()
        .table(DomId::DOM0)
        .map(|t| t.live_mappings());
    // d1's two ring pages stay mapped; d2's are gone.
    assert_eq!(dom0_maps, Some(2));
    assert!(hv.net_pages() < pages_before);
    assert!(hv.event_channels().domain(ids::dom(2)).is_none());
}

#[test]
fn a_frame_one_byte_past_four_pages_arrives_whole() {
    // 16385 bytes: five slots, the last fragment one byte; the first slot keeps a full page
    // for the headers (a 1-byte first slot would be "Bad packet size").
    let (mut hv, mut p) = two_guests(0);
    send(&mut hv, &mut p, 1, packet(MAC_B, MAC_A, 1, 16_385));
    bridge(&mut hv, &mut p);
    assert_eq!(received(&p, 2)[0].bytes, 16_385);
}

/// netback's TX interrupt skips `back_tx_consume` when `back_tx_idle` says the ring offers
/// nothing: on an empty ring both leave the queue in the same state, and a request the
/// guest published makes the queue busy again.
#[test]
fn back_tx_idle_leaves_the_queue_as_an_empty_consume_does() {
    let (mut hv, _p) = two_guests(0);
    let queue = hv.vif_path(ids::dom(1), 0).expect("vif").queues[0].clone();
    let mut idle = queue.clone();
    let mut consumed = queue;
    let mut packets = Vec::new();

    let was_idle = idle.back_tx_idle();
    let result = consumed.back_tx_consume(&mut hv.grants, &hv.net.pages, &mut packets);

    assert!(was_idle);
    assert!(matches!(result, Ok(())));
    assert!(packets.is_empty());
    assert_eq!(alloc::format!("{idle:?}"), alloc::format!("{consumed:?}"));
    let request = TxRequest {
        gref: crate::ids::GrantRef::new(8),
        offset: 0,
        flags: 0,
        id: 0,
        size: 200,
    };
    scribble_request(&mut hv, 1, request);
    let mut waiting = hv.vif_path(ids::dom(1), 0).expect("vif").queues[0].clone();
    assert!(!waiting.back_tx_idle());
}
