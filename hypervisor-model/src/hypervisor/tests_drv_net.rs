//! Network driver domains on a booted host: a `driver_domain=1` guest runs netback for
//! other guests' vifs (`backend=`), with libxl's XenStore paths and permissions and
//! netback's work on its vCPU; its crash drops what was in flight (counted, never sent
//! twice), its restart's `xl devd` re-creates the vifs and netfront reconnects.

use alloc::string::String;
use alloc::vec::Vec;

use super::tests_net::{packet, received, send, MAC_A, MAC_B};
use super::Hypervisor;
use crate::event::CoreInput;
use crate::io::vif::NetPacket;
use crate::io::xenbus::XenbusState;
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform};
use crate::toolstack::config::{DomainConfig, ShutdownAction, VifCfg};
use crate::toolstack::ops::{GuestNotice, JobId, ToolstackError, ToolstackReply};
use crate::xenstore::perms::PERM_READ;
use crate::xenstore::Perm;

/// The network driver domain's name.
const NETDD: &str = "netdd";
/// `NetDropReason::BackendGone`.
const BACKEND_GONE: u8 = 4;

fn guest(name: &str, mac: &str, backend: Option<&str>) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vifs.push(VifCfg {
        mac: Some(String::from(mac)),
        bridge: Some(String::from("xenbr1")),
        backend: backend.map(String::from),
        ..VifCfg::default()
    });
    config
}

/// A booted host with the driver domain `netdd` (d1, restarted on a crash) and guests
/// `a` (d2, MAC_A) and `b` (d3, MAC_B) whose vif 0 it backs.
fn netdd_and_guests() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    // 2 us of netback per packet each way, so a batch waits on the driver domain's vCPU.
    host.costs.netback_tx_pkt_ns = 2_000;
    host.costs.netback_rx_pkt_ns = 2_000;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    let mut netdd = DomainConfig::with_defaults(String::from(NETDD));
    netdd.driver_domain = true;
    netdd.on_crash = ShutdownAction::Restart;
    assert_eq!(hv.handle(&create_paused(1, netdd), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let a = guest("a", "00:16:3e:00:00:01", Some(NETDD));
    assert_eq!(hv.handle(&create_paused(2, a), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let b = guest("b", "00:16:3e:00:00:02", Some(NETDD));
    assert_eq!(hv.handle(&create_paused(3, b), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn value(hv: &Hypervisor, path: &str) -> String {
    let node = hv.xenstore.node(path).expect(path);
    String::from_utf8(node.value().to_vec()).expect("utf-8")
}

/// The driver domain's bridge: frames for a or b go to their vif (d2, d3).
fn bridge(hv: &mut Hypervisor, p: &mut FakePlatform) {
    while !p.net_frames.is_empty() {
        for frame in core::mem::take(&mut p.net_frames) {
            let dom = if frame.packet.dst == MAC_A { 2 } else { 3 };
            let input = CoreInput::NetDeliver {
                dom: ids::dom(dom),
                devid: 0,
                packet: frame.packet,
            };
            assert_eq!(hv.handle(&input, p), Ok(()));
            p.run_until_idle(hv);
        }
    }
}

fn a_to_b(seq: u32) -> NetPacket {
    packet(MAC_B, MAC_A, seq, 200)
}

/// a's stack hands netfront `seq` without letting anything run after it: netback's TX
/// batch is still queued on the driver domain's vCPU.
fn send_in_flight(hv: &mut Hypervisor, p: &mut FakePlatform, seq: u32) {
    let input = CoreInput::NetSend {
        vcpu: ids::vcpu(2, 0),
        devid: 0,
        packet: a_to_b(seq),
        last: true,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
}

fn crash_netdd(hv: &mut Hypervisor, p: &mut FakePlatform) {
    let crash = CoreInput::GuestShutdown {
        dom: ids::dom(1),
        reason: crate::domain::ShutdownReason::Crash,
    };
    assert_eq!(hv.handle(&crash, p), Ok(()));
    p.run_until_idle(hv);
}

fn backend_gone_drops(p: &FakePlatform, dom: u16) -> usize {
    let gone = |n: &GuestNotice| match n {
        GuestNotice::NetDropped { reason, .. } => *reason == BACKEND_GONE,
        _ => false,
    };
    p.notices
        .iter()
        .filter(|(d, n)| *d == ids::dom(dom) && gone(n))
        .count()
}

#[test]
fn vif_with_backend_lives_under_the_driver_domain() {
    let (hv, _p) = netdd_and_guests();
    let back = "/local/domain/1/backend/vif/2/0";
    assert_eq!(value(&hv, &alloc::format!("{back}/state")), "4");
    assert_eq!(value(&hv, &alloc::format!("{back}/frontend-id")), "2");
    assert_eq!(value(&hv, &alloc::format!("{back}/bridge")), "xenbr1");
    let front = "/local/domain/2/device/vif/0";
    assert_eq!(value(&hv, &alloc::format!("{front}/backend")), back);
    assert_eq!(value(&hv, &alloc::format!("{front}/backend-id")), "1");
    assert_eq!(value(&hv, &alloc::format!("{front}/state")), "4");
    assert_eq!(value(&hv, "/libxl/2/device/vif/0/backend"), back);
    assert!(hv.xenstore.node("/local/domain/0/backend/vif/2").is_none());
}

#[test]
fn driver_domain_vif_directories_have_libxl_permissions() {
    let (hv, _p) = netdd_and_guests();
    let perms = |path: &str| hv.xenstore.node(path).expect(path).perms().to_vec();
    // libxl__device_generic_add: the backend owns its directory and the frontend reads
    // it; the frontend owns its own except `mtu` (ro_front), which the backend owns.
    let back_owned = [Perm::new(1, 0), Perm::new(2, PERM_READ)];
    let front_owned = [Perm::new(2, 0), Perm::new(1, PERM_READ)];
    assert_eq!(perms("/local/domain/1/backend/vif/2/0"), back_owned);
    assert_eq!(perms("/local/domain/2/device/vif/0"), front_owned);
    assert_eq!(perms("/local/domain/2/device/vif/0/mac"), front_owned);
    assert_eq!(perms("/local/domain/2/device/vif/0/mtu"), back_owned);
}

#[test]
fn netback_work_runs_on_the_driver_domains_vcpu() {
    let (mut hv, mut p) = netdd_and_guests();
    send(&mut hv, &mut p, 2, a_to_b(1));
    bridge(&mut hv, &mut p);
    let on_netdd = p
        .back_work
        .iter()
        .filter(|w| w.0 == ids::vcpu(1, 0))
        .count();
    let on_dom0 = p
        .back_work
        .iter()
        .filter(|w| w.0 == ids::vcpu(0, 0))
        .count();
    // One TX batch for a, one RX item for b.
    assert_eq!((on_netdd, on_dom0), (2, 0));
    assert_eq!(received(&p, 3).len(), 1);
}

#[test]
fn vif_backend_naming_no_domain_fails_the_create() {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    let a = guest("a", "00:16:3e:00:00:01", Some("nowhere"));
    assert_eq!(hv.handle(&create_paused(1, a), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let error = ToolstackError::NoSuchVifBackend;
    let done = ToolstackReply::Done { result: Err(error) };
    assert!(p.replies.contains(&(JobId(1), done)));
    assert!(hv.domains.get(ids::dom(1)).is_none());
}

#[test]
fn driver_domain_crash_reconnects_the_vifs_to_its_restart() {
    let (mut hv, mut p) = netdd_and_guests();
    crash_netdd(&mut hv, &mut p);
    // The restart is d4; its devd re-created both vifs under its own backend directory.
    let conn = &hv.device_conns(ids::dom(2))[0];
    assert_eq!(conn.back_dom, ids::dom(4));
    assert_eq!(conn.back_state, XenbusState::Connected);
    assert_eq!(conn.front_state, XenbusState::Connected);
    assert_eq!(value(&hv, "/local/domain/4/backend/vif/3/0/state"), "4");
    assert_eq!(value(&hv, "/local/domain/2/device/vif/0/backend-id"), "4");
    assert_eq!(
        hv.vif_path(ids::dom(2), 0).expect("a").params.back_dom,
        ids::dom(4)
    );
    assert_eq!(hv.vif_reconnects(ids::dom(2), 0), 1);
    assert_eq!(hv.vif_reconnects(ids::dom(3), 0), 1);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn frames_in_flight_at_the_crash_are_dropped_once_and_traffic_resumes() {
    let (mut hv, mut p) = netdd_and_guests();
    // Before: frames 1 and 2 reach b. At the crash, 3 and 4 are in netback's TX batch on
    // the driver domain's vCPU: they are counted as dropped and never reach the bridge.
    send(&mut hv, &mut p, 2, a_to_b(1));
    send(&mut hv, &mut p, 2, a_to_b(2));
    bridge(&mut hv, &mut p);
    send_in_flight(&mut hv, &mut p, 3);
    send_in_flight(&mut hv, &mut p, 4);
    p.stall_back_work(ids::vcpu(1, 0));
    crash_netdd(&mut hv, &mut p);
    assert!(p.net_frames.is_empty());
    assert_eq!(backend_gone_drops(&p, 2), 2);
    // After the reconnect, frames 5 and 6 go through the restarted driver domain.
    send(&mut hv, &mut p, 2, a_to_b(5));
    send(&mut hv, &mut p, 2, a_to_b(6));
    bridge(&mut hv, &mut p);
    let seqs: Vec<u32> = received(&p, 3).iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [1, 2, 5, 6]);
    let b = hv.vif_path(ids::dom(3), 0).expect("b");
    assert_eq!(b.counters().rx_order_violations, 0);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn netfronts_in_order_memory_survives_the_reconnect() {
    let (mut hv, mut p) = netdd_and_guests();
    send(&mut hv, &mut p, 2, a_to_b(1));
    bridge(&mut hv, &mut p);
    crash_netdd(&mut hv, &mut p);
    // b's netdev outlived the old rings: frame 1 of a's flow 1 is still the last it saw,
    // so a replay of it after the reconnect would be flagged as a duplicate.
    let b = hv.vif_path(ids::dom(3), 0).expect("b");
    assert_eq!(b.params.back_dom, ids::dom(4));
    assert_eq!(
        b.queues[0]
            .rx_seen
            .get(&(crate::io::vif::mac_key(MAC_A), 1)),
        Some(&1)
    );
}

#[test]
fn frames_for_a_vif_whose_backend_is_gone_are_counted_as_dropped() {
    let (mut hv, mut p) = netdd_and_guests();
    // netdd is powered off: it is not restarted, a's vif stays without a backend.
    let off = CoreInput::GuestShutdown {
        dom: ids::dom(1),
        reason: crate::domain::ShutdownReason::Poweroff,
    };
    assert_eq!(hv.handle(&off, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    send(&mut hv, &mut p, 2, a_to_b(1));
    let drops = p
        .notices
        .iter()
        .filter(|(d, n)| *d == ids::dom(2) && matches!(n, GuestNotice::NetDropped { .. }));
    assert_eq!(drops.count(), 1);
    assert!(hv.vif_path(ids::dom(2), 0).is_none());
    let conn = &hv.device_conns(ids::dom(2))[0];
    assert_eq!(conn.front_state, XenbusState::Closed);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

fn destroy(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, dom: u16) {
    let destroy = CoreInput::Toolstack {
        job: JobId(job),
        op: crate::toolstack::ops::ToolstackOp::Destroy { dom: ids::dom(dom) },
    };
    assert_eq!(hv.handle(&destroy, p), Ok(()));
    p.run_until_idle(hv);
}

#[test]
fn guests_and_the_restarted_driver_domain_tear_down_clean_after_the_crash() {
    let (mut hv, mut p) = netdd_and_guests();
    send(&mut hv, &mut p, 2, a_to_b(1));
    bridge(&mut hv, &mut p);
    crash_netdd(&mut hv, &mut p);
    // The guests go first (their backends in d4 close), then the driver domain.
    destroy(&mut hv, &mut p, 90, 2);
    destroy(&mut hv, &mut p, 91, 3);
    destroy(&mut hv, &mut p, 92, 4);
    assert!(hv.xenstore.node("/local/domain/4").is_none());
    assert!(hv.xenstore.node("/libxl/2").is_none());
    assert!(hv.vif_paths().next().is_none());
    assert_eq!(hv.net_pages(), 0);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn vif_backend_naming_a_domain_that_is_no_driver_domain_times_out_the_create() {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    let plain = DomainConfig::with_defaults(String::from("plain"));
    assert_eq!(hv.handle(&create_paused(1, plain), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let a = guest("a", "00:16:3e:00:00:01", Some("plain"));
    assert_eq!(hv.handle(&create_paused(2, a), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    // libxl waits LIBXL_INIT_TIMEOUT (10 s) for plain's netback, then destroys a (d2).
    let error = ToolstackError::BackendNotReady {
        vif: true,
        backend: ids::dom(1),
        devid: 0,
    };
    let done = ToolstackReply::Done { result: Err(error) };
    assert!(p.replies.contains(&(JobId(2), done)));
    assert!(p.now.as_ns() >= 10_000_000_000);
    assert!(hv.domains.get(ids::dom(2)).is_none());
    assert!(hv.xenstore.node("/local/domain/1/backend/vif/2").is_none());
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}
