//! A domain with one vif and one disk: the device directories libxl writes (spec §3.2–3.4)
//! and a destroy that leaves no node, port or grant table of the dead domain.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::DomId;
use crate::sched::SchedKind;
use crate::testing::{small_host, FakePlatform};
use crate::toolstack::config::{DiskAccess, DiskCfg, DomainConfig, VifCfg};
use crate::toolstack::ops::{JobId, ToolstackOp};

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

fn guest_with_devices() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
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
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0x5a; 16],
        paused: true,
    };
    handle(&mut hv, &mut p, 1, op);
    (hv, p)
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
    assert_eq!(value(&hv, &format!("{back}/state")).as_deref(), Some("1"));
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
    assert_eq!(dom0.map(|d| d.active_count()), Some(0));
    assert!(hv.check_invariants().is_empty());
}
