//! Memory behaviour through the whole core: claims in concurrent creates (spec §1.5),
//! superpage-backed population, and destroy handing every frame back.

use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::{DomId, Gfn};
use crate::memory::{Owner, PAGE_ORDER_1G};
use crate::sched::SchedKind;
use crate::testing::{create_paused, small_host, FakePlatform};
use crate::time::STime;
use crate::toolstack::config::{DomainConfig, GuestType};
use crate::toolstack::ops::{JobId, ToolstackError, ToolstackOp, ToolstackReply};
use crate::trace::TraceEvent;

/// The small host: one 8 GiB node, a 1 GiB dom0.
fn boot(claim_mode: bool) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut config = small_host(2, SchedKind::Null);
    config.claim_mode = claim_mode;
    let mut hv = Hypervisor::boot(config, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn pvh(name: &str, memory_mib: u64) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.guest_type = GuestType::Pvh;
    config.memory_kib = memory_mib * 1024;
    config.max_memory_kib = config.memory_kib;
    config
}

fn submit(p: &mut FakePlatform, job: u32, config: DomainConfig) {
    p.inject(STime::ZERO, create_paused(job, config));
}

fn result_of(p: &FakePlatform, job: u32) -> Option<Result<(), ToolstackError>> {
    p.replies.iter().find_map(|(id, reply)| match reply {
        ToolstackReply::Done { result } if *id == JobId(job) => Some(*result),
        _ => None,
    })
}

fn pages_given_to(p: &FakePlatform, dom: u16) -> i64 {
    p.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Memory {
                dom: d,
                delta_pages,
                ..
            } if d.raw() == dom && *delta_pages > 0 => Some(*delta_pages),
            _ => None,
        })
        .sum()
}

fn d(raw: u16) -> DomId {
    DomId::new(raw).expect("small domid")
}

#[test]
fn with_claims_second_racing_create_fails_before_populating() {
    // 4 GiB each; about 7 GiB is free beside dom0 and Xen: one fits.
    let (mut hv, mut p) = boot(true);
    submit(&mut p, 1, pvh("a", 4096));
    submit(&mut p, 2, pvh("b", 4096));
    p.run_until_idle(&mut hv);
    assert_eq!(result_of(&p, 1), Some(Ok(())));
    assert!(matches!(
        result_of(&p, 2),
        Some(Err(ToolstackError::OutOfMemory { .. }))
    ));
    assert_eq!(pages_given_to(&p, 2), 0);
}

#[test]
fn without_claims_second_racing_create_fails_late_and_frees_its_pages() {
    let (mut hv, mut p) = boot(false);
    let free_at_boot = hv.free_pages();
    submit(&mut p, 1, pvh("a", 4096));
    submit(&mut p, 2, pvh("b", 4096));
    p.run_until_idle(&mut hv);
    assert_eq!(result_of(&p, 1), Some(Ok(())));
    assert!(matches!(
        result_of(&p, 2),
        Some(Err(ToolstackError::OutOfMemory { .. }))
    ));
    // d2 populated part of its memory before the heap ran dry, then gave it back.
    assert!(pages_given_to(&p, 2) > 0);
    assert_eq!(hv.free_pages(), free_at_boot - 4096 * 256);
}

#[test]
fn claim_shows_in_outstanding_claims_until_population_ends() {
    let (mut hv, mut p) = boot(true);
    submit(&mut p, 1, pvh("a", 2048));
    // The create's first input stakes the claim; population has not started.
    let first = p.pending.pop_first().map(|(_, input)| input);
    let handled = first.map(|input| hv.handle(&input, &mut p));
    assert_eq!(handled, Some(Ok(())));
    assert_eq!(hv.outstanding_claim_pages(), 2048 * 256);
    assert_eq!(hv.domain_claim_pages(d(1)), 2048 * 256);
    p.run_until_idle(&mut hv);
    assert_eq!(hv.outstanding_claim_pages(), 0);
}

#[test]
fn pvh_guest_of_2_gib_is_two_1g_leaves() {
    let (mut hv, mut p) = boot(true);
    submit(&mut p, 1, pvh("a", 2048));
    p.run_until_idle(&mut hv);
    let entry = hv.memory().p2m_lookup(d(1), Gfn::new(0x40000 + 5));
    assert_eq!(entry.map(|e| e.leaf_order), Some(PAGE_ORDER_1G));
    let runs = hv.memory().dom(d(1)).map(|m| m.p2m.runs().count());
    assert!(runs <= Some(2), "{runs:?} runs for two 1 GiB leaves");
}

#[test]
fn destroy_hands_every_frame_back() {
    let (mut hv, mut p) = boot(true);
    let free_at_boot = hv.free_pages();
    submit(&mut p, 1, pvh("a", 1024));
    p.run_until_idle(&mut hv);
    let op = ToolstackOp::Destroy { dom: d(1) };
    p.inject(p.now, CoreInput::Toolstack { job: JobId(2), op });
    p.run_until_idle(&mut hv);
    assert_eq!(result_of(&p, 2), Some(Ok(())));
    assert_eq!(hv.free_pages(), free_at_boot);
    assert_eq!(hv.memory().frames().owned_pages(Owner::Dom(d(1))), 0);
    // Freed guest memory waits for scrubbing.
    assert_eq!(hv.memory().need_scrub_pages(), 1024 * 256);
}

fn mem_op(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, op: ToolstackOp) {
    p.inject(
        p.now,
        CoreInput::Toolstack {
            job: JobId(job),
            op,
        },
    );
    p.run_until_idle(hv);
}

fn built_1g_guest() -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = boot(true);
    submit(&mut p, 1, pvh("a", 1024));
    p.run_until_idle(&mut hv);
    (hv, p)
}

#[test]
fn create_sets_max_pages_to_target_plus_maxmem_constant() {
    // libxl__build_pre: max_pages = (memory + LIBXL_MAXMEM_CONSTANT) / 4, maxmem aside.
    let (mut hv, mut p) = boot(true);
    let mut config = pvh("a", 1024);
    config.max_memory_kib = 2048 * 1024;
    submit(&mut p, 1, config);
    p.run_until_idle(&mut hv);
    let max_pages = hv.domain(d(1)).map(|x| x.max_pages);
    assert_eq!(max_pages, Some((1024 * 1024 + 1024) / 4));
    assert_eq!(hv.memory().dom(d(1)).map(|m| m.max_pages), max_pages);
}

#[test]
fn mem_set_balloons_guest_down_to_target_and_back() {
    let (mut hv, mut p) = built_1g_guest();
    let target_kib = 512 * 1024;
    mem_op(
        &mut hv,
        &mut p,
        2,
        ToolstackOp::MemSet {
            dom: d(1),
            target_kib,
        },
    );
    assert_eq!(result_of(&p, 2), Some(Ok(())));
    let tot = hv.domain(d(1)).map(|x| x.tot_pages);
    assert_eq!(tot, Some(target_kib / 4));
    // Enforced: max_pages is the target plus LIBXL_MAXMEM_CONSTANT (1 MiB).
    assert_eq!(
        hv.domain(d(1)).map(|x| x.max_pages),
        Some((target_kib + 1024) / 4)
    );
    assert_eq!(hv.ballooned_pages(d(1)), 512 * 256);
    let back = ToolstackOp::MemSet {
        dom: d(1),
        target_kib: 1024 * 1024,
    };
    mem_op(&mut hv, &mut p, 3, back);
    assert_eq!(hv.domain(d(1)).map(|x| x.tot_pages), Some(1024 * 256));
    assert_eq!(hv.ballooned_pages(d(1)), 0);
}

/// The guest of `built_1g_guest` says it cannot go below 768 MiB, then `xl mem-set`
/// asks it for 512 MiB.
fn mem_set_512m_under_a_768m_floor(hv: &mut Hypervisor, p: &mut FakePlatform) {
    let floor = CoreInput::GuestMemFloor {
        dom: d(1),
        floor_pages: 768 * 256,
        oom_kill: false,
    };
    assert_eq!(hv.handle(&floor, p), Ok(()));
    let op = ToolstackOp::MemSet {
        dom: d(1),
        target_kib: 512 * 1024,
    };
    mem_op(hv, p, 2, op);
}

#[test]
fn balloon_stops_at_guest_floor_above_target() {
    let (mut hv, mut p) = built_1g_guest();
    mem_set_512m_under_a_768m_floor(&mut hv, &mut p);
    assert_eq!(hv.domain(d(1)).map(|x| x.tot_pages), Some(768 * 256));
    assert_eq!(hv.ballooned_pages(d(1)), 256 * 256);
}

#[test]
fn balloon_gives_up_after_four_failed_rounds() {
    let (mut hv, mut p) = built_1g_guest();
    mem_set_512m_under_a_768m_floor(&mut hv, &mut p);
    let gave_up: Vec<u64> = p
        .events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::BalloonGaveUp { dom, tot_pages } if *dom == d(1) => Some(*tot_pages),
            _ => None,
        })
        .collect();
    assert_eq!(gave_up, [768 * 256]);
    // Back-off 2 + 4 + 8 s between the four failed rounds.
    assert!(p.now >= STime::from_ns(14_000_000_000));
}

#[test]
fn mem_set_above_static_max_is_refused() {
    let (mut hv, mut p) = built_1g_guest();
    let op = ToolstackOp::MemSet {
        dom: d(1),
        target_kib: 2048 * 1024,
    };
    mem_op(&mut hv, &mut p, 2, op);
    let expected = ToolstackError::Mem(crate::toolstack::mem_ops::MemOpError::TargetAboveMax);
    assert_eq!(result_of(&p, 2), Some(Err(expected)));
}

#[test]
fn mem_max_below_target_is_refused_and_above_raises_max_pages() {
    let (mut hv, mut p) = built_1g_guest();
    mem_op(
        &mut hv,
        &mut p,
        2,
        ToolstackOp::MemMax {
            dom: d(1),
            max_kib: 1024,
        },
    );
    let expected = ToolstackError::Mem(crate::toolstack::mem_ops::MemOpError::MaxBelowTarget);
    assert_eq!(result_of(&p, 2), Some(Err(expected)));
    let max_kib = 4096 * 1024;
    mem_op(
        &mut hv,
        &mut p,
        3,
        ToolstackOp::MemMax { dom: d(1), max_kib },
    );
    assert_eq!(result_of(&p, 3), Some(Ok(())));
    assert_eq!(
        hv.domain(d(1)).map(|x| x.max_pages),
        Some((max_kib + 1024) / 4)
    );
}

#[test]
fn dom0_target_below_128_mib_is_refused() {
    let (mut hv, mut p) = boot(true);
    let op = ToolstackOp::MemSet {
        dom: DomId::DOM0,
        target_kib: 64 * 1024,
    };
    mem_op(&mut hv, &mut p, 1, op);
    assert!(matches!(
        result_of(&p, 1),
        Some(Err(ToolstackError::Mem(
            crate::toolstack::mem_ops::MemOpError::Dom0BelowMinimum { .. }
        )))
    ));
}

/// Builds a 7040 MiB guest on the 8 GiB host (7094 MiB free) and destroys it, with the
/// idle loops scrubbing `idle_scrub_pages_per_ms`.
fn after_big_destroy(idle_scrub_pages_per_ms: u64) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut config = small_host(2, SchedKind::Null);
    config.costs.idle_scrub_pages_per_ms = idle_scrub_pages_per_ms;
    let mut hv = Hypervisor::boot(config, &mut p);
    p.run_until_idle(&mut hv);
    submit(&mut p, 1, pvh("big", 7040));
    p.run_until_idle(&mut hv);
    p.inject(
        p.now,
        CoreInput::Toolstack {
            job: JobId(2),
            op: ToolstackOp::Destroy { dom: d(1) },
        },
    );
    p.run_until_idle(&mut hv);
    (hv, p)
}

#[test]
fn create_into_dirty_memory_scrubs_it_synchronously() {
    // No idle time for scrubbing: every freed page is still dirty.
    let (mut hv, mut p) = after_big_destroy(0);
    p.inject(p.now, create_op(pvh("next", 7040)));
    p.run_until_idle(&mut hv);
    // Only 54 MiB of clean memory is left: the new guest gets dirty pages.
    let scrubbed = hv.memory().dom(d(2)).map_or(0, |m| m.scrubbed_pages);
    assert!(scrubbed > 0, "no clean memory was left for d2");
}

#[test]
fn idle_scrubbing_cleans_freed_memory_given_time() {
    // 17 GB/s (4150 pages/ms) keeps up with the relinquish (300 ns/page); the second
    // the test waits leaves nothing dirty either way.
    let (mut hv, mut p) = after_big_destroy(4_150);
    let later = p.now.after(crate::time::Span::from_ms(1000));
    p.inject(later, create_op(pvh("next", 7040)));
    p.run_until_idle(&mut hv);
    assert_eq!(hv.memory().dom(d(2)).map(|m| m.scrubbed_pages), Some(0));
    assert_eq!(hv.memory().need_scrub_pages(), 0);
}

fn create_op(config: DomainConfig) -> CoreInput {
    create_paused(3, config)
}
