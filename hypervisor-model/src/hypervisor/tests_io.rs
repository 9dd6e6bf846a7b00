//! A domain with one vif and one disk: the device directories libxl writes (spec §3.2–3.4),
//! and a destroy that leaves no node, port or grant table of the dead domain.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use super::Hypervisor;
use crate::event::CoreInput;
use crate::evtchn::PortState;
use crate::ids::{DomId, EvtchnPort, GrantRef};
use crate::sched::SchedKind;
use crate::testing::{small_host, FakePlatform};
use crate::time::STime;
use crate::toolstack::config::{DiskAccess, DiskCfg, DomainConfig, VifCfg};
use crate::toolstack::ops::{JobId, ToolstackOp};
use crate::toolstack::xs_client::XsClientCmd;

/// Ports dom0 holds for itself: its kernel's and xenstored's ends of its store channel.
const DOM0_OWN_PORTS: u32 = 2;

/// Domid of the one guest these tests create.
const GUEST: u16 = 1;

fn handle(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, op: ToolstackOp) {
    let input = CoreInput::Toolstack {
        job: JobId(job),
        op,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

pub(super) fn guest_with_devices() -> (Hypervisor, FakePlatform) {
    guest_with_devices_step_ns(0)
}

/// The guest of these tests on a host whose driver steps take `step_ns`.
fn guest_with_devices_step_ns(step_ns: i64) -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = host_step_ns(step_ns);
    handle(&mut hv, &mut p, 1, create_op());
    (hv, p)
}

/// A booted host whose driver steps take `step_ns`.
fn host_step_ns(step_ns: i64) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    host.costs.xenbus_step_ns = step_ns;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

/// `xl create -p` of the guest with one vif and one xvda disk.
pub(super) fn create_op() -> ToolstackOp {
    let mut config = DomainConfig::with_defaults(String::from("io"));
    config.vifs.push(VifCfg {
        mac: Some(String::from("00:16:3e:00:00:01")),
        ..VifCfg::default()
    });
    config.disks.push(DiskCfg {
        target: String::from("/dev/vg/io"),
        format: String::from("raw"),
        vdev: String::from("xvda"),
        access: DiskAccess::ReadWrite,
        cdrom: false,
        backend: None,
    });
    ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0x5a; 16],
        paused: true,
    }
}

fn value(hv: &Hypervisor, path: &str) -> Option<String> {
    let node = hv.xenstore().node(path)?;
    Some(String::from_utf8_lossy(node.value()).into_owned())
}

#[test]
fn vif_directories_carry_libxl_link_and_vif_keys() {
    let (hv, _p) = guest_with_devices();
    let back = "/local/domain/0/backend/vif/1/0";
    let front = "/local/domain/1/device/vif/0";
    assert_eq!(
        value(&hv, &format!("{front}/backend")).as_deref(),
        Some(back)
    );
    assert_eq!(
        value(&hv, &format!("{back}/frontend")).as_deref(),
        Some(front)
    );
    assert_eq!(
        value(&hv, &format!("{back}/bridge")).as_deref(),
        Some("xenbr0")
    );
    assert_eq!(value(&hv, &format!("{back}/online")).as_deref(), Some("1"));
    let mac = Some("00:16:3e:00:00:01");
    assert_eq!(value(&hv, &format!("{front}/mac")).as_deref(), mac);
}

#[test]
fn vbd_directories_carry_libxl_disk_keys() {
    let (hv, _p) = guest_with_devices();
    let back = "/local/domain/0/backend/vbd/1/51712";
    let front = "/local/domain/1/device/vbd/51712";
    assert_eq!(
        value(&hv, &format!("{back}/params")).as_deref(),
        Some("/dev/vg/io")
    );
    assert_eq!(value(&hv, &format!("{back}/mode")).as_deref(), Some("w"));
    let vdev = value(&hv, &format!("{front}/virtual-device"));
    assert_eq!(vdev.as_deref(), Some("51712"));
}

#[test]
fn frontend_dir_is_guest_owned_and_backend_readable() {
    let (hv, _p) = guest_with_devices();
    let node = hv.xenstore().node("/local/domain/1/device/vif/0");
    let perms: alloc::vec::Vec<(u32, u8)> = node
        .map(|n| n.perms().iter().map(|p| (p.domid, p.letter())).collect())
        .unwrap_or_default();
    assert_eq!(perms, [(1, b'n'), (0, b'r')]);
}

#[test]
fn destroy_leaves_no_node_port_or_table_of_the_guest() {
    let (mut hv, mut p) = guest_with_devices();
    let dom = DomId::new(GUEST).expect("guest domid");
    handle(&mut hv, &mut p, 2, ToolstackOp::Destroy { dom });
    assert!(hv.domain(dom).is_none());
    assert!(hv.xenstore().node("/local/domain/1").is_none());
    assert!(hv.xenstore().node("/local/domain/0/backend").is_none());
    assert!(hv.xenstore().node("/libxl/1").is_none());
    assert!(hv.event_channels().domain(dom).is_none());
    assert!(hv.grant_tables().table(dom).is_none());
    let dom0 = hv.event_channels().domain(DomId::DOM0);
    assert_eq!(dom0.map(|d| d.active_count()), Some(DOM0_OWN_PORTS));
    assert!(hv.check_invariants().is_empty());
}

/// The guest's domid as a `DomId`.
pub(super) fn guest() -> DomId {
    DomId::new(GUEST).expect("guest domid")
}

fn number(hv: &Hypervisor, path: &str) -> u32 {
    value(hv, path)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
fn vif_and_vbd_reach_connected_on_both_ends() {
    let (hv, _p) = guest_with_devices();
    for dir in [
        "/local/domain/0/backend/vif/1/0",
        "/local/domain/1/device/vif/0",
        "/local/domain/0/backend/vbd/1/51712",
        "/local/domain/1/device/vbd/51712",
    ] {
        assert_eq!(value(&hv, &format!("{dir}/state")).as_deref(), Some("4"));
    }
    assert_eq!(hv.device_conns(guest()).len(), 2);
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn vif_ring_refs_are_guest_grants_mapped_by_dom0() {
    let (hv, _p) = guest_with_devices();
    let front = "/local/domain/1/device/vif/0";
    let table = hv.grant_tables().table(guest()).expect("guest grant table");
    for key in ["tx-ring-ref", "rx-ring-ref"] {
        let gref = GrantRef::new(number(&hv, &format!("{front}/{key}")));
        let entry = table.entry(gref).expect("ref inside the table");
        assert_eq!(entry.domid, 0, "{key} is granted to dom0");
        let active = table.active(gref).expect("active entry");
        assert!(!active.pins.is_zero(), "{key} is mapped");
        assert_eq!(active.domid, DomId::DOM0);
    }
    assert_eq!(
        value(&hv, &format!("{front}/request-rx-copy")).as_deref(),
        Some("1")
    );
}

#[test]
fn vbd_event_channel_is_bound_interdomain_to_dom0() {
    let (hv, _p) = guest_with_devices();
    let front = "/local/domain/1/device/vbd/51712";
    let port = EvtchnPort::new(number(&hv, &format!("{front}/event-channel")));
    let state = hv
        .event_channels()
        .domain(guest())
        .and_then(|d| d.state(port));
    assert!(matches!(
        state,
        Some(PortState::Interdomain { remote, .. }) if remote == DomId::DOM0
    ));
    assert_eq!(
        value(&hv, &format!("{front}/protocol")).as_deref(),
        Some("x86_64-abi")
    );
}

#[test]
fn vbd_backend_publishes_probe_and_connect_keys() {
    let (hv, _p) = guest_with_devices();
    let back = "/local/domain/0/backend/vbd/1/51712";
    let expected = [
        ("max-ring-page-order", "4"),
        ("feature-max-indirect-segments", "256"),
        ("feature-persistent", "1"),
        ("hotplug-status", "connected"),
        ("sectors", "20971520"),
        ("sector-size", "512"),
        ("info", "0"),
    ];
    for (key, want) in expected {
        assert_eq!(
            value(&hv, &format!("{back}/{key}")).as_deref(),
            Some(want),
            "{key}"
        );
    }
}

#[test]
fn vif_backend_publishes_features_before_initwait() {
    let (hv, _p) = guest_with_devices();
    let back = "/local/domain/0/backend/vif/1/0";
    assert_eq!(
        value(&hv, &format!("{back}/feature-rx-copy")).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&hv, &format!("{back}/feature-rx-flip")).as_deref(),
        Some("0")
    );
    assert_eq!(
        value(&hv, &format!("{back}/hotplug-status")).as_deref(),
        Some("connected")
    );
}

#[test]
fn close_walks_both_ends_to_closed_and_releases_grants_and_ports() {
    let (mut hv, _p) = guest_with_devices();
    let conns = hv.device_conns(guest()).to_vec();
    let _ = hv.xenbus_close(guest());
    for conn in &conns {
        for dir in [&conn.front_path, &conn.back_path] {
            assert_eq!(value(&hv, &format!("{dir}/state")).as_deref(), Some("6"));
        }
        let table = hv.grant_tables().table(guest()).expect("guest grant table");
        for gref in &conn.ring_refs {
            assert_eq!(
                table.entry(*gref).map(|e| e.flags),
                Some(0),
                "{gref:?} revoked"
            );
        }
    }
    assert!(hv.device_conns(guest()).is_empty());
    let dom0 = hv.event_channels().domain(DomId::DOM0);
    // Besides dom0's own store channel, only xenstored's port for the guest's store ring
    // and xenconsoled's for its console are bound.
    assert_eq!(dom0.map(|d| d.active_count()), Some(DOM0_OWN_PORTS + 2));
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn destroy_after_connect_leaves_no_device_end_mapping_or_port() {
    let (mut hv, mut p) = guest_with_devices();
    handle(&mut hv, &mut p, 2, ToolstackOp::Destroy { dom: guest() });
    assert!(hv.device_conns(guest()).is_empty());
    assert!(hv.grant_tables().table(guest()).is_none());
    assert!(hv.xenstore().node("/local/domain/0/backend").is_none());
    let dom0 = hv.event_channels().domain(DomId::DOM0);
    assert_eq!(dom0.map(|d| d.active_count()), Some(DOM0_OWN_PORTS));
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn connect_handshake_takes_one_step_per_watch_reaction() {
    // Each kernel's xenwatch thread runs one reaction at a time (step S). dom0: vbd and
    // vif probes (S, 2S), the vbd's first otherend event (3S, nothing to do), the vif's
    // (4S, nothing yet), blkback on blkfront's Initialised (5S), netback on netfront's
    // Connected (6S), blkback seeing blkfront Connected (7S). The guest: both probes (S,
    // 2S), blkfront and netfront publishing on InitWait (3S, 4S), blkfront on blkback's
    // Connected (6S), netfront seeing netback's Connected (7S).
    const STEPS: i64 = 7;
    const STEP_NS: i64 = 1_000_000;
    let (_hv, free) = guest_with_devices_step_ns(0);
    let (_hv, charged) = guest_with_devices_step_ns(STEP_NS);
    let extra_ns = charged.now.as_ns() - free.now.as_ns();
    assert_eq!(extra_ns, STEPS * STEP_NS);
}

#[test]
fn backend_online_zero_closes_the_device_and_keeps_its_directories() {
    let (mut hv, mut p) = guest_with_devices();
    let back = "/local/domain/0/backend/vif/1/0";
    let cmd = XsClientCmd::Write {
        pairs: alloc::vec![(format!("{back}/online"), b"0".to_vec())],
        raw: false,
    };
    handle(&mut hv, &mut p, 2, ToolstackOp::XsClient(cmd));
    assert_eq!(value(&hv, &format!("{back}/state")).as_deref(), Some("6"));
    let front = "/local/domain/1/device/vif/0/state";
    assert_eq!(value(&hv, front).as_deref(), Some("6"));
    let vbd = "/local/domain/0/backend/vbd/1/51712/state";
    assert_eq!(
        value(&hv, vbd).as_deref(),
        Some("4"),
        "the disk stays connected"
    );
    assert!(hv.check_invariants().is_empty());
    handle(&mut hv, &mut p, 3, ToolstackOp::Destroy { dom: guest() });
    assert!(hv.xenstore().node("/local/domain/0/backend").is_none());
    assert!(hv.check_invariants().is_empty());
}

/// The guest's create on a host whose driver steps take 1 ms, run to half a step before
/// the first backend connects. The reactions run at D+1 .. D+7 ms (see
/// `connect_handshake_takes_one_step_per_watch_reaction`): the frontends publish at D+3
/// and D+4 ms, blkback connects at D+5 ms; this stops at D+4.5 ms.
fn mid_handshake() -> (Hypervisor, FakePlatform) {
    const STEP_NS: i64 = 1_000_000;
    let (_hv, done) = guest_with_devices_step_ns(STEP_NS);
    let (mut hv, mut p) = host_step_ns(STEP_NS);
    let input = CoreInput::Toolstack {
        job: JobId(1),
        op: create_op(),
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    let mid = STime::from_ns(done.now.as_ns() - 2 * STEP_NS - STEP_NS / 2);
    p.advance_to(&mut hv, mid);
    (hv, p)
}

#[test]
fn mid_handshake_frontends_have_published_and_backends_wait() {
    // Both frontends have published and both backends are at InitWait.
    let (hv, _p) = mid_handshake();
    let state = |path: &str| value(&hv, &format!("{path}/state"));
    assert_eq!(
        state("/local/domain/1/device/vbd/51712").as_deref(),
        Some("3")
    );
    assert_eq!(
        state("/local/domain/0/backend/vbd/1/51712").as_deref(),
        Some("2")
    );
    assert_eq!(state("/local/domain/1/device/vif/0").as_deref(), Some("4"));
    assert_eq!(
        state("/local/domain/0/backend/vif/1/0").as_deref(),
        Some("2")
    );
}

/// The invariant names `check_invariants` reports.
fn broken(hv: &Hypervisor) -> alloc::vec::Vec<&'static str> {
    hv.check_invariants().iter().map(|v| v.invariant).collect()
}

#[test]
fn checker_flags_a_connected_backend_whose_ring_is_unmapped() {
    let (mut hv, _p) = guest_with_devices();
    let handle = hv.device_conns(guest())[0].ring_handles[0];
    hv.grants
        .unmap_grant_ref(DomId::DOM0, handle)
        .expect("dom0 holds the handle");
    assert!(broken(&hv).contains(&"xenbus.connected_mapped"));
}

#[test]
fn checker_flags_a_state_key_that_is_not_a_state_number() {
    let (mut hv, _p) = guest_with_devices();
    let conn = hv.xenstore.dom0_conn();
    let path = b"/local/domain/0/backend/vif/1/0/state";
    hv.xenstore
        .write(conn, None, path, b"9")
        .expect("dom0 may write its backend");
    assert!(broken(&hv).contains(&"xenbus.state_number"));
}

#[test]
fn destroy_in_mid_handshake_closes_what_was_set_up_and_leaves_nothing() {
    // The frontends hold grants and unbound ports that no backend maps or binds yet.
    let (mut hv, mut p) = mid_handshake();
    handle(&mut hv, &mut p, 2, ToolstackOp::Destroy { dom: guest() });
    assert!(hv.domain(guest()).is_none());
    assert!(hv.device_conns(guest()).is_empty());
    assert!(hv.xenstore().node("/local/domain/0/backend").is_none());
    let dom0 = hv.event_channels().domain(DomId::DOM0);
    assert_eq!(dom0.map(|d| d.active_count()), Some(DOM0_OWN_PORTS));
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn frontend_state_closing_written_by_a_client_closes_only_that_device() {
    let (mut hv, mut p) = guest_with_devices();
    let front = "/local/domain/1/device/vbd/51712";
    let cmd = XsClientCmd::Write {
        pairs: alloc::vec![(format!("{front}/state"), b"5".to_vec())],
        raw: false,
    };
    handle(&mut hv, &mut p, 2, ToolstackOp::XsClient(cmd));
    assert_eq!(value(&hv, &format!("{front}/state")).as_deref(), Some("6"));
    let back = "/local/domain/0/backend/vbd/1/51712/state";
    assert_eq!(value(&hv, back).as_deref(), Some("6"));
    let vif = "/local/domain/0/backend/vif/1/0/state";
    assert_eq!(value(&hv, vif).as_deref(), Some("4"));
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn checker_flags_a_connected_blkback_without_sectors() {
    let (mut hv, _p) = guest_with_devices();
    let conn = hv.xenstore.dom0_conn();
    let path = b"/local/domain/0/backend/vbd/1/51712/sectors";
    hv.xenstore
        .rm(conn, None, path)
        .expect("dom0 may remove its backend key");
    assert!(broken(&hv).contains(&"xenbus.keys_before_state"));
}
