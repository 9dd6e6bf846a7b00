//! Emulated disk I/O and device-model stub domains on a booted host: an HVM guest
//! without the platform PCI device sends its I/O as ioreqs to QEMU (in dom0 or in its
//! stub domain) before the I/O takes the vbd path; the stub domain lives and dies with
//! its guest.

use alloc::string::String;

use super::tests_blk::{completions, submit, TestDisk};
use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::DomId;
use crate::io::blkif::BLKIF_RSP_OKAY;
use crate::io::vbd::{GuestIo, IoOp};
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform};
use crate::toolstack::config::{DiskAccess, DiskCfg, DomainConfig, GuestType};
use crate::toolstack::ops::{JobId, ToolstackOp};
use crate::trace::TraceEvent;

/// QEMU in dom0: 25 us per ioreq; in a stub domain: 15 us; 8 ioreqs per disk operation.
const DOM0_RTT_NS: i64 = 25_000;
const STUB_RTT_NS: i64 = 15_000;
const IOREQS: u32 = 8;

/// A host with one HVM guest d1 ("a", xvda, no PV drivers), QEMU in a stub domain if
/// `stubdom`.
fn emulated_guest(stubdom: bool) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    host.costs.ioreq_dom0_rtt_ns = DOM0_RTT_NS;
    host.costs.ioreq_stubdom_rtt_ns = STUB_RTT_NS;
    host.costs.emulated_disk_ioreqs = IOREQS;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    let mut config = DomainConfig::with_defaults(String::from("a"));
    config.guest_type = GuestType::Hvm;
    config.device_model.platform_pci = false;
    config.device_model.stubdomain = stubdom;
    config.disks.push(DiskCfg {
        target: String::from("/dev/vg/a"),
        format: String::from("raw"),
        vdev: String::from("xvda"),
        access: DiskAccess::ReadWrite,
        cdrom: false,
        backend: None,
    });
    assert_eq!(hv.handle(&create_paused(1, config), &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn read(tag: u64) -> GuestIo {
    GuestIo {
        tag,
        op: IoOp::Read,
        sector: 0,
        sectors: 8,
        seed: tag,
    }
}

/// The (guest, device model, ios, work) of every ioreq batch traced (frames, for an
/// emulated NIC).
pub(super) fn ioreq_batches(p: &FakePlatform) -> alloc::vec::Vec<(DomId, DomId, u32, i64)> {
    p.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::IoreqWork {
                dom,
                dm,
                ios,
                work_ns,
                ..
            } => Some((*dom, *dm, *ios, *work_ns)),
            _ => None,
        })
        .collect()
}

fn stub_of(hv: &Hypervisor, name: &str) -> Option<DomId> {
    hv.domains.iter().find(|d| d.name == name).map(|d| d.id)
}

#[test]
fn emulated_disk_io_is_dom0_qemu_work_before_the_vbd_path() {
    let (mut hv, mut p) = emulated_guest(false);
    submit(&mut hv, &mut p, 1, read(1));
    TestDisk::default().serve(&mut hv, &mut p);
    // One I/O, 8 ioreqs of 25 us on dom0, then blkback and the disk as for PV drivers.
    let batches = ioreq_batches(&p);
    assert_eq!(batches, [(ids::dom(1), DomId::DOM0, 1, 200_000)]);
    let done = completions(&p, 1);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, BLKIF_RSP_OKAY);
}

#[test]
fn pv_driver_guest_io_sends_no_ioreq() {
    let (mut hv, mut p) = emulated_guest(false);
    if let Some(config) = hv
        .domains
        .get_mut(ids::dom(1))
        .and_then(|d| d.config.as_mut())
    {
        config.device_model.platform_pci = true;
    }
    submit(&mut hv, &mut p, 1, read(1));
    TestDisk::default().serve(&mut hv, &mut p);
    assert!(ioreq_batches(&p).is_empty());
    assert_eq!(completions(&p, 1).len(), 1);
}

#[test]
fn stubdom_guest_gets_a_one_vcpu_stub_domain_named_after_it() {
    let (hv, _p) = emulated_guest(true);
    let stub = stub_of(&hv, "a-dm").expect("the stub domain exists");
    let d = hv.domains.get(stub).expect("stub domain");
    assert_eq!(d.vcpus.len(), 1);
    assert_eq!(d.guest_type, GuestType::Pv);
    // 128 MiB plus the guest's 8 MiB of video memory, plus libxl's
    // LIBXL_MAXMEM_CONSTANT (1 MiB, libxl__build_pre), in 4 KiB pages.
    assert_eq!(d.max_pages, 137 * 256);
    assert_eq!(hv.ioreq.stubdom_of.get(&ids::dom(1)), Some(&stub));
}

#[test]
fn stubdom_guest_io_is_stub_domain_work() {
    let (mut hv, mut p) = emulated_guest(true);
    let stub = stub_of(&hv, "a-dm").expect("the stub domain exists");
    submit(&mut hv, &mut p, 1, read(1));
    TestDisk::default().serve(&mut hv, &mut p);
    assert_eq!(ioreq_batches(&p), [(ids::dom(1), stub, 1, 120_000)]);
    let (vcpu, _, work_ns) = p.back_work.last().copied().expect("queued work");
    assert_eq!(vcpu.dom, stub);
    assert_eq!(work_ns, 120_000);
    assert_eq!(completions(&p, 1).len(), 1);
}

#[test]
fn destroying_the_guest_destroys_its_stub_domain() {
    let (mut hv, mut p) = emulated_guest(true);
    let destroy = CoreInput::Toolstack {
        job: JobId(9),
        op: ToolstackOp::Destroy { dom: ids::dom(1) },
    };
    assert_eq!(hv.handle(&destroy, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert!(stub_of(&hv, "a").is_none());
    assert!(stub_of(&hv, "a-dm").is_none());
    assert!(hv.ioreq.stubdom_of.is_empty());
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn io_of_a_guest_whose_stub_domain_died_fails() {
    let (mut hv, mut p) = emulated_guest(true);
    let stub = stub_of(&hv, "a-dm").expect("the stub domain exists");
    let destroy = CoreInput::Toolstack {
        job: JobId(9),
        op: ToolstackOp::Destroy { dom: stub },
    };
    assert_eq!(hv.handle(&destroy, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    submit(&mut hv, &mut p, 1, read(1));
    let done = completions(&p, 1);
    assert_eq!(done.len(), 1);
    assert_ne!(done[0].status, BLKIF_RSP_OKAY);
}
