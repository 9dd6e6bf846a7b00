//! Tests of the guests' run-state machine: demand, preemption, service work before the
//! model, the memory stretch, and forgotten domains.

use hypervisor_model::ids::{DomId, VcpuId, VcpuRef};

use super::{GuestStep, HostGuests};
use crate::clock::EventQueue;
use crate::rng::RngStreams;
use crate::run::SimEvent;
use crate::scenario::model::{Dist, WorkloadSpec};

const HOST: u16 = 0;

fn v0() -> VcpuRef {
    VcpuRef {
        dom: DomId::new(1).expect("d1"),
        vcpu: VcpuId::new(0).expect("v0"),
    }
}

fn guests_with(workload: WorkloadSpec) -> HostGuests {
    let mut guests = HostGuests::new(RngStreams::new(1));
    guests.register_domain(v0().dom, "g", vec![workload]);
    guests
}

fn demand_done_generation(queue: &mut EventQueue<SimEvent>) -> (u64, u64) {
    match queue.pop() {
        Some((at_ns, SimEvent::DemandDone { generation, .. })) => (at_ns, generation),
        other => panic!("expected a demand-done event, got {other:?}"),
    }
}

#[test]
fn idle_guest_blocks_as_soon_as_it_runs() {
    let mut guests = guests_with(WorkloadSpec::Idle {
        tick: None,
        tick_work: Dist::Const(0),
    });
    let mut queue = EventQueue::new();
    guests.start_running(v0(), 0, 100, 0, HOST, &mut queue);
    let (at_ns, generation) = demand_done_generation(&mut queue);
    assert_eq!(at_ns, 100);
    assert_eq!(
        guests
            .demand_done(v0(), generation, 100, HOST, &mut queue)
            .map(|d| d.step),
        Some(GuestStep::Block)
    );
}

#[test]
fn demand_done_after_preemption_is_stale() {
    // service 50 us: the planned action at 50 us is void once the vCPU stops at 20 us.
    let bursty = WorkloadSpec::Bursty {
        service: Dist::Const(50_000),
        think: Dist::Const(1_000),
    };
    let mut guests = guests_with(bursty);
    let mut queue = EventQueue::new();
    guests.start_running(v0(), 0, 0, 0, HOST, &mut queue);
    let (_, generation) = demand_done_generation(&mut queue);
    guests.stop_running(v0(), 20_000);
    assert_eq!(
        guests
            .demand_done(v0(), generation, 50_000, HOST, &mut queue)
            .map(|d| d.step),
        None
    );
}

#[test]
fn preempted_guest_resumes_with_remaining_demand() {
    // 50 us of service, 20 us done before preemption: 30 us remain at the next run.
    let bursty = WorkloadSpec::Bursty {
        service: Dist::Const(50_000),
        think: Dist::Const(1_000),
    };
    let mut guests = guests_with(bursty);
    let mut queue = EventQueue::new();
    guests.start_running(v0(), 0, 0, 0, HOST, &mut queue);
    let _ = demand_done_generation(&mut queue);
    guests.stop_running(v0(), 20_000);
    guests.start_running(v0(), 0, 100_000, 0, HOST, &mut queue);
    assert_eq!(demand_done_generation(&mut queue).0, 130_000);
}

#[test]
fn service_work_runs_before_the_model_and_the_model_resumes() {
    // 50 us of service; at 20 us, 10 us of xenstored work arrive: it finishes at 30 us,
    // then the 30 us of service left run to 60 us.
    let bursty = WorkloadSpec::Bursty {
        service: Dist::Const(50_000),
        think: Dist::Const(1_000),
    };
    let mut guests = guests_with(bursty);
    let mut queue = EventQueue::new();
    guests.start_running(v0(), 0, 0, 0, HOST, &mut queue);
    let item = super::ServiceItem::Xenstored(hypervisor_model::ids::XsWorkId(4));
    guests.add_service(v0(), item, 10_000, 20_000, HOST, &mut queue);
    let (at_ns, generation) = demand_done_generation(&mut queue);
    assert_eq!(at_ns, 30_000);
    let step = guests
        .demand_done(v0(), generation, at_ns, HOST, &mut queue)
        .map(|d| d.step);
    assert_eq!(step, Some(GuestStep::ServiceDone(item)));
    // The plan made before the work came (50 us) is stale; the model's rest ends at 60.
    let (stale_ns, stale) = demand_done_generation(&mut queue);
    assert_eq!(stale_ns, 50_000);
    assert_eq!(
        guests
            .demand_done(v0(), stale, stale_ns, HOST, &mut queue)
            .map(|d| d.step),
        None
    );
    assert_eq!(demand_done_generation(&mut queue).0, 60_000);
}

#[test]
fn service_queued_while_descheduled_runs_first_when_the_vcpu_runs() {
    // 5 us of work queued while the vCPU is off: it runs first at 100 us.
    let mut guests = guests_with(WorkloadSpec::Idle {
        tick: None,
        tick_work: Dist::Const(0),
    });
    let mut queue = EventQueue::new();
    let item = super::ServiceItem::Xenstored(hypervisor_model::ids::XsWorkId(0));
    guests.add_service(v0(), item, 5_000, 0, HOST, &mut queue);
    guests.start_running(v0(), 0, 100_000, 0, HOST, &mut queue);
    let (at_ns, generation) = demand_done_generation(&mut queue);
    assert_eq!(at_ns, 105_000);
    let step = guests
        .demand_done(v0(), generation, at_ns, HOST, &mut queue)
        .map(|d| d.step);
    assert_eq!(step, Some(GuestStep::ServiceDone(item)));
}

#[test]
fn half_resident_working_set_doubles_the_run_time_of_the_demand() {
    // 50 us of service over a 2 GiB working set with 1 GiB resident (stretch 2x): the
    // run that starts at 100 us, after the model booted, ends at 200 us.
    const GIB_PAGES: u64 = 262_144;
    let bursty = WorkloadSpec::Bursty {
        service: Dist::Const(50_000),
        think: Dist::Const(1_000),
    };
    let mut guests = guests_with(bursty);
    let memory = crate::scenario::model::MemoryWorkload {
        working_set_bytes: 2 << 30,
        page_cache_bytes: 0,
        dirty_pages_per_s: 0,
        hot_ppm: 1_000_000,
        hot_set_bytes: 2 << 30,
        floor_ppm: 500_000,
    };
    guests.register_memory(v0().dom, Some(memory));
    let mut queue = EventQueue::new();
    guests.start_running(v0(), 0, 0, 0, HOST, &mut queue);
    let _ = demand_done_generation(&mut queue);
    let notice = guests.update_memory(v0().dom, GIB_PAGES, &[GIB_PAGES], 0);
    assert_eq!(notice.map(|n| n.floor_pages), Some(GIB_PAGES));
    guests.stop_running(v0(), 0);
    guests.start_running(v0(), 0, 100_000, 0, HOST, &mut queue);
    assert_eq!(demand_done_generation(&mut queue).0, 200_000);
}

#[test]
fn forgotten_domain_ignores_its_pending_events() {
    let mut guests = guests_with(WorkloadSpec::CpuBound {
        yield_every: Some(Dist::Const(10)),
    });
    let mut queue = EventQueue::new();
    guests.start_running(v0(), 0, 0, 0, HOST, &mut queue);
    let (_, generation) = demand_done_generation(&mut queue);
    guests.forget_domain(v0().dom);
    assert_eq!(
        guests
            .demand_done(v0(), generation, 10, HOST, &mut queue)
            .map(|d| d.step),
        None
    );
    assert!(!guests.wake(v0(), generation, 10));
}
