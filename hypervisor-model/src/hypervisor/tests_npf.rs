//! The EPT as the core programs it, EPT violations, populate-on-demand and log-dirty
//! through the whole core (spec §2.3–§2.5, §4).

use alloc::string::String;
use alloc::vec::Vec;

use super::logdirty_glue::ShadowOp;
use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::{DomId, Gfn};
use crate::memory::p2m::P2mType;
use crate::memory::PAGE_ORDER_1G;
use crate::platform::MapAccess;
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform, HardwareCall};
use crate::time::STime;
use crate::toolstack::config::{DomainConfig, GuestType};
use crate::toolstack::ops::{JobId, ToolstackOp};
use crate::trace::TraceEvent;

const READ: MapAccess = MapAccess {
    read: true,
    write: false,
    execute: false,
};
const WRITE: MapAccess = MapAccess {
    read: false,
    write: true,
    execute: false,
};
/// Pages in one MiB.
const MIB_PAGES: u64 = 256;

/// The small host (one 8 GiB node, a 1 GiB dom0), booted and idle.
fn boot() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn guest(guest_type: GuestType, memory_mib: u64, maxmem_mib: u64) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from("g"));
    config.guest_type = guest_type;
    config.memory_kib = memory_mib * 1024;
    config.max_memory_kib = maxmem_mib * 1024;
    config
}

/// `xl create` (unpaused) of `config` as job 1, run to the end.
fn create(hv: &mut Hypervisor, p: &mut FakePlatform, config: DomainConfig) {
    let op = ToolstackOp::Create {
        config: alloc::boxed::Box::new(config),
        uuid: [1; 16],
        paused: false,
    };
    p.inject(STime::ZERO, CoreInput::Toolstack { job: JobId(1), op });
    p.run_until_idle(hv);
}

fn touch(hv: &mut Hypervisor, p: &mut FakePlatform, gfn: u64, access: MapAccess) {
    let input = CoreInput::EptViolation {
        vcpu: ids::vcpu(1, 0),
        gfn: Gfn::new(gfn),
        access,
    };
    let handled = hv.handle(&input, p);
    assert_eq!(handled, Ok(()));
    let broken = hv.check_invariants();
    assert!(broken.is_empty(), "{broken:?}");
}

fn ept_writes_of(p: &FakePlatform, dom: u16) -> Vec<(u64, Option<u8>)> {
    p.hardware
        .iter()
        .filter_map(|call| match call {
            HardwareCall::EptWrite { dom: d, gfn, entry } if d.raw() == dom => {
                Some((gfn.raw(), entry.map(|e| e.order)))
            }
            _ => None,
        })
        .collect()
}

fn outcomes(p: &FakePlatform) -> Vec<u8> {
    p.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::EptViolation { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

/// A booted host with d1 created paused (its balloon driver never ran): an HVM guest of
/// 64 MiB with maxmem 128 MiB, so a PoD guest with a 64 MiB cache.
fn paused_pod_guest() -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = boot();
    p.inject(
        STime::ZERO,
        create_paused(1, guest(GuestType::Hvm, 64, 128)),
    );
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn d1() -> DomId {
    ids::dom(1)
}

#[test]
fn pvh_guest_of_2_gib_gets_two_1g_ept_leaves_then_invept() {
    let (mut hv, mut p) = boot();
    p.inject(
        STime::ZERO,
        create_paused(1, guest(GuestType::Pvh, 2048, 2048)),
    );
    p.run_until_idle(&mut hv);
    let order = Some(PAGE_ORDER_1G);
    assert_eq!(ept_writes_of(&p, 1), [(0, order), (1 << 18, order)]);
    assert!(p
        .hardware
        .contains(&HardwareCall::EptInvalidate { dom: d1() }));
}

#[test]
fn pv_guest_gets_no_ept_writes() {
    let (mut hv, mut p) = boot();
    p.inject(STime::ZERO, create_paused(1, guest(GuestType::Pv, 64, 64)));
    p.run_until_idle(&mut hv);
    assert!(ept_writes_of(&p, 1).is_empty());
}

#[test]
fn destroy_removes_every_ept_leaf() {
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 2048, 2048));
    let destroy = ToolstackOp::Destroy { dom: d1() };
    p.inject(
        p.now,
        CoreInput::Toolstack {
            job: JobId(2),
            op: destroy,
        },
    );
    p.run_until_idle(&mut hv);
    // Replayed in order, the writes leave no leaf behind.
    let mut leaves = alloc::collections::BTreeMap::new();
    for (gfn, entry) in ept_writes_of(&p, 1) {
        match entry {
            Some(order) => leaves.insert(gfn, order),
            None => leaves.remove(&gfn),
        };
    }
    assert!(leaves.is_empty(), "{} leaves left", leaves.len());
}

#[test]
fn access_beyond_memory_crashes_with_xen_lines() {
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 64, 64));
    // 64 MiB is GFNs 0..0x4000; 0x5000 is a hole past max_mapped_pfn 0x3fff.
    touch(&mut hv, &mut p, 0x5000, READ);
    let log = hv.console().read();
    assert!(log.contains(
        "(XEN) d1v0 EPT violation 0x1 (r--/---) gpa 0x00000005000000 \
         mfn 0xffffffffffffffff type 1\n\
         (XEN) d1v0 Walking EPT tables for GFN 5000:\n\
         (XEN) d1v0  gfn exceeds max_mapped_pfn 3fff\n\
         (XEN) domain_crash called from arch/x86/hvm/vmx/vmx.c:3809\n\
         (XEN) Domain 1 (vcpu#0) crashed on cpu#"
    ));
    let crashed = p.events.iter().any(|e| {
        matches!(e, TraceEvent::Shutdown { dom, reason } if *dom == d1()
            && *reason == crate::domain::ShutdownReason::Crash)
    });
    assert!(crashed);
}

#[test]
fn mapped_ram_access_is_spurious_and_charged() {
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 64, 64));
    touch(&mut hv, &mut p, 0x10, WRITE);
    assert_eq!(outcomes(&p), [super::npf::NpfOutcome::Spurious as u8]);
    // FakePlatform's cpu.ept_violation_ns is 1000.
    assert_eq!(p.stalls, [(ids::vcpu(1, 0), 1_000)]);
}

#[test]
fn pod_guest_is_built_with_a_cache_and_a_pod_physmap() {
    let (hv, _p) = paused_pod_guest();
    let pod = hv
        .memory()
        .dom(d1())
        .map(|m| (m.pod.count, m.pod.entry_count));
    assert_eq!(pod, Some((64 * MIB_PAGES, 128 * MIB_PAGES)));
    let entry = hv.memory().p2m_lookup(d1(), Gfn::new(5)).map(|e| e.ty);
    assert_eq!(entry, Some(P2mType::PopulateOnDemand));
}

#[test]
fn pod_first_touch_populates_a_2m_chunk_and_maps_it() {
    let (mut hv, mut p) = paused_pod_guest();
    touch(&mut hv, &mut p, 0x203, READ);
    let entry = hv.memory().p2m_lookup(d1(), Gfn::new(0x203));
    assert_eq!(
        entry.map(|e| (e.ty, e.leaf_order)),
        Some((P2mType::RamRw, 9))
    );
    assert_eq!(outcomes(&p), [super::npf::NpfOutcome::PodPopulated as u8]);
    // cpu.ept_violation_ns + mem.pod_fault_ns (1000 + 2000 in FakePlatform).
    assert_eq!(p.stalls, [(ids::vcpu(1, 0), 3_000)]);
}

#[test]
fn pod_guest_touching_beyond_target_without_ballooning_crashes() {
    // Created paused: its balloon driver never ran. Written pages are never zero, so
    // the sweep finds nothing once the 64 MiB cache is gone.
    let (mut hv, mut p) = paused_pod_guest();
    // 64 MiB in 2 MiB chunks, then one more.
    for chunk in 0..33u64 {
        touch(&mut hv, &mut p, chunk * 512, WRITE);
    }
    let log = hv.console().read();
    assert!(log.contains(
        "(XEN) p2m_pod_demand_populate: Dom1 out of PoD memory! (tot=16384 ents=16384 dom1)\n\
         (XEN) domain_crash called from arch/x86/mm/p2m-pod.c:1300\n"
    ));
    assert_eq!(
        outcomes(&p).last(),
        Some(&(super::npf::NpfOutcome::PodOutOfMemory as u8))
    );
}

#[test]
fn pod_guest_that_balloons_down_in_time_runs() {
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Hvm, 64, 128));
    // The balloon driver gave back all above its target: 64 MiB less libxl's 1 MiB
    // fudge and 8 MiB of video RAM, 55 MiB (27.5 chunks of 2 MiB).
    for chunk in 0..28u64 {
        touch(&mut hv, &mut p, chunk * 512, WRITE);
    }
    let log = hv.console().read();
    assert!(!log.contains("out of PoD memory"));
    let m = hv
        .memory()
        .dom(d1())
        .map(|m| (m.pod.entry_count <= m.pod.count, m.tot_pages));
    assert_eq!(m.map(|(covered, _)| covered), Some(true));
}

#[test]
fn logdirty_write_marks_the_page_and_makes_it_writable() {
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 64, 64));
    assert_eq!(hv.memory.logdirty_enable(d1()).ok(), Some(64 * MIB_PAGES));
    touch(&mut hv, &mut p, 0x21, WRITE);
    let entry = hv.memory().p2m_lookup(d1(), Gfn::new(0x21));
    assert_eq!(
        entry.map(|e| (e.ty, e.leaf_order)),
        Some((P2mType::RamRw, 0))
    );
    let report = hv.memory.logdirty_op(d1(), 64 * MIB_PAGES, true);
    let report = report.map(|r| (r.dirty_count, r.bitmap[0]));
    assert_eq!(report, Ok((1, 1 << 0x21)));
    let rearmed = hv.memory().p2m_lookup(d1(), Gfn::new(0x21)).map(|e| e.ty);
    assert_eq!(rearmed, Some(P2mType::RamLogdirty));
}

#[test]
fn pod_zero_chunk_read_earlier_is_reclaimed_by_eager_reclaim() {
    let (mut hv, mut p) = paused_pod_guest();
    // Reads bring in the whole 64 MiB cache as 32 zero chunks; the 33rd touch reclaims
    // the oldest recorded chunk (still zero) instead of crashing.
    for chunk in 0..33u64 {
        touch(&mut hv, &mut p, chunk * 512, READ);
    }
    assert!(!hv.console().read().contains("out of PoD memory"));
    let first = hv.memory().p2m_lookup(d1(), Gfn::new(0)).map(|e| e.ty);
    assert_eq!(first, Some(P2mType::PopulateOnDemand));
}

#[test]
fn domu_populate_physmap_of_a_1g_extent_does_nothing() {
    // A domU may ask for 2 MiB extents at most (CONFIG_DOMU_MAX_ORDER = 9).
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 64, 64));
    let done = hv.populate_physmap(d1(), d1(), &[1 << 18], PAGE_ORDER_1G, false);
    assert_eq!(done.rc, 0);
}

#[test]
fn decrease_reservation_of_another_domus_memory_is_eperm() {
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 64, 64));
    let rc = hv.decrease_reservation(ids::dom(2), d1(), &[0], 0);
    assert_eq!(rc, super::memory_op::EPERM);
}

#[test]
fn populate_physmap_stops_at_max_pages_and_returns_extents_done() {
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 64, 64));
    // Two pages out, then 259 asked back with room for 258: max_pages is 64 MiB plus
    // LIBXL_MAXMEM_CONSTANT's 256 pages.
    assert_eq!(hv.decrease_reservation(d1(), d1(), &[0x3ffe, 0x3fff], 0), 2);
    let mut gfns = alloc::vec![0x3ffe, 0x3fff];
    gfns.extend(0x5000..0x5000 + 257);
    let done = hv.populate_physmap(d1(), d1(), &gfns, 0, false);
    assert_eq!(done.rc, 258);
    assert_eq!(done.extents.len(), 258);
}

#[test]
fn logdirty_rounds_track_writes_and_off_restores_writable_superpages() {
    // Rounds of a pre-copy: enable, writes, CLEAN, more writes, PEEK, OFF.
    let (mut hv, mut p) = boot();
    create(&mut hv, &mut p, guest(GuestType::Pvh, 64, 64));
    let all = 64 * MIB_PAGES;
    let enabled = hv.shadow_op(d1(), ShadowOp::EnableLogDirty, &mut p);
    assert_eq!(enabled, Ok(None));
    // The 2 MiB leaves went read-only in the EPT (no 4 KiB leaf was written).
    let write_protected = p.hardware.iter().any(|call| match call {
        HardwareCall::EptWrite { entry: Some(e), .. } => e.order == 9 && !e.access.write,
        _ => false,
    });
    assert!(write_protected);
    touch(&mut hv, &mut p, 0x600, WRITE);
    touch(&mut hv, &mut p, 0x601, WRITE);
    let first = hv.shadow_op(d1(), ShadowOp::Clean { pages: all }, &mut p);
    assert_eq!(first.map(|r| r.map(|r| r.dirty_count)), Ok(Some(2)));
    touch(&mut hv, &mut p, 0x601, WRITE);
    let second = hv.shadow_op(d1(), ShadowOp::Peek { pages: all }, &mut p);
    let word = second.map(|r| r.map(|r| r.bitmap[0x601 / 64]));
    assert_eq!(word, Ok(Some(1 << (0x601 % 64))));
    assert_eq!(hv.shadow_op(d1(), ShadowOp::Off, &mut p), Ok(None));
    let after = hv.memory().p2m_lookup(d1(), Gfn::new(0x10)).map(|e| e.ty);
    assert_eq!(after, Some(P2mType::RamRw));
    assert_eq!(
        hv.shadow_op(d1(), ShadowOp::Off, &mut p),
        Err(crate::memory::MemError::LogDirtyState)
    );
}
