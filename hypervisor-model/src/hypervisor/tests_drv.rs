//! Driver domains on a booted host: a `driver_domain=1` guest runs blkback for another
//! guest's disk (`backend=`), with the XenStore paths and permissions libxl writes, its
//! kernel's own xenbus watches, and blkback's CPU work on the driver domain's vCPU.

use alloc::string::String;

use super::tests_blk::{completions, submit, TestDisk, XVDA};
use super::Hypervisor;
use crate::io::blkif::BLKIF_RSP_OKAY;
use crate::io::vbd::{GuestIo, IoOp};
use crate::io::xenbus::XenbusState;
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform};
use crate::toolstack::config::{DiskAccess, DiskCfg, DomainConfig};
use crate::toolstack::ops::{JobId, ToolstackError, ToolstackReply};
use crate::xenstore::perms::PERM_READ;
use crate::xenstore::Perm;

/// The driver domain's name.
const STORAGE: &str = "storage";

pub(super) fn disk(name: &str, backend: Option<&str>) -> DiskCfg {
    DiskCfg {
        target: alloc::format!("/dev/vg/{name}"),
        format: String::from("raw"),
        vdev: String::from("xvda"),
        access: DiskAccess::ReadWrite,
        cdrom: false,
        backend: backend.map(String::from),
    }
}

/// A booted host with the driver domain `storage` (d1) and guest `a` (d2) whose xvda is
/// served by it; blkback costs `req_ns` per request.
pub(super) fn storage_and_guest(req_ns: i64) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    host.costs.blkback_req_ns = req_ns;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    let mut storage = DomainConfig::with_defaults(String::from(STORAGE));
    storage.driver_domain = true;
    assert_eq!(hv.handle(&create_paused(1, storage), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let mut guest = DomainConfig::with_defaults(String::from("a"));
    guest.disks.push(disk("a", Some(STORAGE)));
    assert_eq!(hv.handle(&create_paused(2, guest), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn value(hv: &Hypervisor, path: &str) -> String {
    let node = hv.xenstore.node(path).expect(path);
    String::from_utf8(node.value().to_vec()).expect("utf-8")
}

#[test]
fn guest_disk_with_backend_lives_under_the_driver_domain() {
    let (hv, _p) = storage_and_guest(0);
    let back = "/local/domain/1/backend/vbd/2/51712";
    assert_eq!(value(&hv, &alloc::format!("{back}/state")), "4");
    assert_eq!(value(&hv, &alloc::format!("{back}/frontend-id")), "2");
    let front = "/local/domain/2/device/vbd/51712";
    assert_eq!(value(&hv, &alloc::format!("{front}/backend")), back);
    assert_eq!(value(&hv, &alloc::format!("{front}/backend-id")), "1");
    assert_eq!(value(&hv, &alloc::format!("{front}/state")), "4");
    assert!(hv.xenstore.node("/local/domain/0/backend/vbd/2").is_none());
}

#[test]
fn driver_domain_backend_directory_has_libxl_permissions() {
    let (hv, _p) = storage_and_guest(0);
    let back = hv.xenstore.node("/local/domain/1/backend/vbd/2/51712");
    let front = hv.xenstore.node("/local/domain/2/device/vbd/51712");
    // libxl__device_generic_add: the backend owns its directory, the frontend reads it;
    // and the other way round.
    let back_perms = [Perm::new(1, 0), Perm::new(2, PERM_READ)];
    let front_perms = [Perm::new(2, 0), Perm::new(1, PERM_READ)];
    assert_eq!(back.expect("backend dir").perms(), &back_perms);
    assert_eq!(front.expect("frontend dir").perms(), &front_perms);
}

#[test]
fn driver_domain_gets_its_libxl_and_device_model_directories() {
    let (hv, _p) = storage_and_guest(0);
    assert!(hv.xenstore.node("/local/domain/1/libxl").is_some());
    assert!(hv.xenstore.node("/local/domain/1/device-model").is_some());
    assert!(hv.xenstore.node("/local/domain/2/libxl").is_none());
}

#[test]
fn driver_domain_maps_the_ring_and_binds_the_port() {
    let (hv, _p) = storage_and_guest(0);
    let conn = &hv.device_conns(ids::dom(2))[0];
    assert_eq!(conn.back_dom, ids::dom(1));
    assert_eq!(conn.back_state, XenbusState::Connected);
    let path = hv.vbd_path(ids::dom(2), XVDA).expect("xvda connected");
    assert_eq!(path.params.back_dom, ids::dom(1));
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn blkback_work_runs_on_the_driver_domains_vcpu() {
    // 3 us of blkback per request, as the cost table's default.
    let (mut hv, mut p) = storage_and_guest(3_000);
    let write = GuestIo {
        tag: 1,
        op: IoOp::Write,
        sector: 64,
        sectors: 8,
        seed: 7,
    };
    submit(&mut hv, &mut p, 2, write);
    TestDisk::default().serve(&mut hv, &mut p);
    assert_eq!(p.back_work.len(), 1);
    assert_eq!(p.back_work[0].0, ids::vcpu(1, 0));
    assert_eq!(completions(&p, 2)[0].status, BLKIF_RSP_OKAY);
}

#[test]
fn backend_naming_no_domain_fails_the_create() {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    let mut guest = DomainConfig::with_defaults(String::from("a"));
    guest.disks.push(disk("a", Some("nowhere")));
    assert_eq!(hv.handle(&create_paused(1, guest), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let error = ToolstackError::NoSuchBackend { disk_index: 0 };
    let done = ToolstackReply::Done { result: Err(error) };
    assert!(p.replies.contains(&(JobId(1), done)));
    assert!(hv.domains.get(ids::dom(1)).is_none());
}

/// `storage_and_guest` with the driver domain restarted on a crash.
fn restartable_storage_and_guest() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    let mut storage = DomainConfig::with_defaults(String::from(STORAGE));
    storage.driver_domain = true;
    storage.on_crash = crate::toolstack::config::ShutdownAction::Restart;
    assert_eq!(hv.handle(&create_paused(1, storage), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let mut guest = DomainConfig::with_defaults(String::from("a"));
    guest.disks.push(disk("a", Some(STORAGE)));
    assert_eq!(hv.handle(&create_paused(2, guest), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn write_io(tag: u64, sector: u64) -> GuestIo {
    GuestIo {
        tag,
        op: IoOp::Write,
        sector,
        sectors: 8,
        seed: tag * 1_000_003,
    }
}

fn read_io(tag: u64, sector: u64) -> GuestIo {
    GuestIo {
        tag,
        op: IoOp::Read,
        sector,
        sectors: 8,
        seed: 0,
    }
}

/// The driver domain (d1) panics: `SCHEDOP_shutdown(SHUTDOWN_crash)`.
fn crash_storage(hv: &mut Hypervisor, p: &mut FakePlatform) {
    let crash = crate::event::CoreInput::GuestShutdown {
        dom: ids::dom(1),
        reason: crate::domain::ShutdownReason::Crash,
    };
    assert_eq!(hv.handle(&crash, p), Ok(()));
    p.run_until_idle(hv);
}

#[test]
fn driver_domain_crash_reconnects_the_frontend_to_its_restart() {
    let (mut hv, mut p) = restartable_storage_and_guest();
    crash_storage(&mut hv, &mut p);
    // The restart is d3 (libxl does not reuse d1 so soon); its devd re-created xvda.
    let conn = &hv.device_conns(ids::dom(2))[0];
    assert_eq!(conn.back_dom, ids::dom(3));
    assert_eq!(conn.back_state, XenbusState::Connected);
    assert_eq!(conn.front_state, XenbusState::Connected);
    assert_eq!(value(&hv, "/local/domain/3/backend/vbd/2/51712/state"), "4");
    assert_eq!(
        value(&hv, "/local/domain/2/device/vbd/51712/backend-id"),
        "3"
    );
    assert_eq!(hv.vbd_reconnects(ids::dom(2), XVDA), 1);
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn writes_read_back_identical_after_driver_domain_crash_and_reconnect() {
    let (mut hv, mut p) = restartable_storage_and_guest();
    let mut disk = TestDisk::default();
    // Write 1 is acknowledged before the crash; write 2 is at the disk when the driver
    // domain dies (its completion is lost with blkback), so blkfront re-issues it.
    submit(&mut hv, &mut p, 2, write_io(1, 0));
    disk.serve(&mut hv, &mut p);
    submit(&mut hv, &mut p, 2, write_io(2, 64));
    crash_storage(&mut hv, &mut p);
    disk.serve(&mut hv, &mut p);
    submit(&mut hv, &mut p, 2, read_io(3, 0));
    disk.serve(&mut hv, &mut p);
    submit(&mut hv, &mut p, 2, read_io(4, 64));
    disk.serve(&mut hv, &mut p);
    let done = completions(&p, 2);
    let tags: alloc::vec::Vec<u64> = done.iter().map(|d| d.tag).collect();
    assert_eq!(tags, [1, 2, 3, 4]);
    assert!(done.iter().all(|d| d.status == BLKIF_RSP_OKAY));
    assert_eq!(done[2].digest, done[0].digest);
    assert_eq!(done[3].digest, done[1].digest);
}

#[test]
fn io_issued_while_the_backend_is_gone_is_held_not_failed() {
    let (mut hv, mut p) = restartable_storage_and_guest();
    // Storage never restarts here: its crash destroys it.
    let crash = crate::event::CoreInput::GuestShutdown {
        dom: ids::dom(1),
        reason: crate::domain::ShutdownReason::Poweroff,
    };
    assert_eq!(hv.handle(&crash, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    submit(&mut hv, &mut p, 2, write_io(1, 0));
    assert_eq!(hv.vbd_held_ios(ids::dom(2), XVDA), 1);
    assert!(completions(&p, 2).is_empty());
    let conn = &hv.device_conns(ids::dom(2))[0];
    assert_eq!(conn.front_state, XenbusState::Closed);
    assert!(conn.ring_refs.is_empty());
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}
