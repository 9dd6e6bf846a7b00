//! Tests of the timeline capture on hand-made record streams: end reasons, overhead,
//! window clipping, migrations, queue counters and the record bound.

use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::{DomId, PcpuId, VcpuId, VcpuRef};
use hypervisor_model::sched::PickReason;
use hypervisor_model::time::Span;
use hypervisor_model::trace::TraceEvent;

use super::{TimelineCapture, TimelineOptions};
use crate::machine::switch::SwitchCosts;
use crate::report::metrics::{HostMeta, PoolMeta};
use crate::report::timeline::{
    EndReason, InstantKind, MigrateLevel, Slice, SliceKind, Timeline, Track,
};

/// Cost of a switch between domains: the first run of a vCPU starts this much later.
const SWITCH_NS: u64 = 100;

fn host_meta() -> HostMeta {
    HostMeta {
        name: "h0".to_owned(),
        // pCPU 0 on node 0, pCPU 1 on node 1.
        pcpu_nodes: vec![0, 1],
        pcpu_pools: vec![Some("Pool-0".to_owned()); 2],
        pools: vec![PoolMeta {
            name: "Pool-0".to_owned(),
            scheduler: "credit2".to_owned(),
        }],
        switch: SwitchCosts {
            vcpu_switch_ns: SWITCH_NS,
            same_dom_permille: 500,
            ipi_ns: 0,
        },
    }
}

fn v() -> VcpuRef {
    VcpuRef {
        dom: DomId::new(1).expect("d1"),
        vcpu: VcpuId::new(0).expect("v0"),
    }
}

fn pcpu(n: u32) -> PcpuId {
    PcpuId::new(n).expect("pCPU")
}

fn schedule(on: u32, prev: Option<VcpuRef>, next: Option<VcpuRef>) -> TraceEvent {
    TraceEvent::Schedule {
        pcpu: pcpu(on),
        prev,
        next,
        next_time: Span::from_ns(-1),
        reason: PickReason::Idle,
        credit_ns: None,
    }
}

fn rs(from: Runstate, to: Runstate) -> TraceEvent {
    TraceEvent::Runstate {
        vcpu: v(),
        from,
        to,
    }
}

/// d1v0 is created on pCPU 0, wakes at 0 and runs on pCPU `on` from 10 ns.
fn started(options: TimelineOptions, on: u32) -> TimelineCapture {
    let mut c = TimelineCapture::new(options, &[host_meta()]);
    c.event(
        0,
        0,
        &TraceEvent::Console {
            text: "Adding cpu 0 to runqueue 0".to_owned(),
        },
    );
    let created = TraceEvent::DomainCreate {
        dom: v().dom,
        name: "vm1".to_owned(),
    };
    c.event(0, 0, &created);
    let vcpu = TraceEvent::VcpuCreate {
        vcpu: v(),
        pcpu: pcpu(0),
        online: true,
    };
    c.event(0, 0, &vcpu);
    c.event(0, 0, &rs(Runstate::Offline, Runstate::Runnable));
    c.event(0, 10, &schedule(on, None, Some(v())));
    c.event(0, 10, &rs(Runstate::Runnable, Runstate::Running));
    c
}

fn runs(t: &Timeline) -> Vec<(u64, u64, EndReason)> {
    t.hosts[0]
        .slices
        .iter()
        .filter_map(|s: &Slice| match s.kind {
            SliceKind::Run { end, .. } => Some((s.start_ns, s.dur_ns, end)),
            SliceKind::Overhead => None,
        })
        .collect()
}

#[test]
fn run_ended_by_block_after_schedule_reports_block() {
    let mut c = started(TimelineOptions::default(), 0);
    c.event(0, 1_000, &schedule(0, Some(v()), None));
    c.event(0, 1_000, &rs(Runstate::Running, Runstate::Blocked));

    let t = c.finish(2_000);

    // The switch overhead [10, 110) comes first, then the run [110, 1000).
    assert_eq!(runs(&t), vec![(110, 890, EndReason::Block)]);
    assert_eq!(t.hosts[0].slices[0].kind, SliceKind::Overhead);
    assert_eq!(t.hosts[0].slices[0].dur_ns, SWITCH_NS);
}

#[test]
fn runstate_before_schedule_still_names_the_end() {
    let mut c = started(TimelineOptions::default(), 0);
    c.event(0, 1_000, &rs(Runstate::Running, Runstate::Offline));
    c.event(0, 1_000, &schedule(0, Some(v()), None));

    let t = c.finish(2_000);

    assert_eq!(runs(&t), vec![(110, 890, EndReason::Offline)]);
}

#[test]
fn running_to_runnable_during_yield_input_is_yield() {
    let mut c = started(TimelineOptions::default(), 0);
    c.input(0, 1_000, &CoreInput::VcpuYield { vcpu: v() });
    c.event(0, 1_000, &schedule(0, Some(v()), None));
    c.event(0, 1_000, &rs(Runstate::Running, Runstate::Runnable));

    let t = c.finish(2_000);

    assert_eq!(runs(&t), vec![(110, 890, EndReason::Yield)]);
}

#[test]
fn window_clips_slices_and_marks_open_runs_window_end() {
    let options = TimelineOptions {
        window_ns: Some((500, 1_500)),
        ..TimelineOptions::default()
    };
    let c = started(options, 0);

    let t = c.finish(2_000);

    // Overhead [10, 110) is before the window; the run is cut to [500, 1500).
    assert_eq!(t.hosts[0].slices.len(), 1);
    assert_eq!(runs(&t), vec![(500, 1_000, EndReason::WindowEnd)]);
    assert_eq!((t.start_ns, t.end_ns), (500, 1_500));
}

#[test]
fn run_on_another_node_is_a_numa_migration() {
    let mut c = started(TimelineOptions::default(), 0);
    c.event(0, 1_000, &schedule(0, Some(v()), None));
    c.event(0, 1_000, &rs(Runstate::Running, Runstate::Runnable));
    c.event(0, 2_000, &schedule(1, None, Some(v())));

    let t = c.finish(3_000);

    let migrate = t.hosts[0]
        .instants
        .iter()
        .find(|i| matches!(i.kind, InstantKind::Migrate { .. }))
        .expect("a migrate instant");
    assert_eq!(migrate.track, Track::Pcpu(1));
    assert!(matches!(
        migrate.kind,
        InstantKind::Migrate {
            from_pcpu: 0,
            to_pcpu: 1,
            level: MigrateLevel::Numa,
            ..
        }
    ));
}

#[test]
fn runq_counter_is_sampled_at_start_and_follows_runnable_vcpus() {
    let c = started(TimelineOptions::default(), 0);

    let t = c.finish(2_000);

    let host = &t.hosts[0];
    let rq0 = host
        .counters
        .iter()
        .position(|c| c.name == "runq rq0")
        .expect("runq rq0 counter");
    let values: Vec<(u64, u64)> = host
        .samples
        .iter()
        .filter(|s| usize::try_from(s.counter).ok() == Some(rq0))
        .map(|s| (s.time_ns, s.value))
        .collect();
    // Woken at 0 (one sample per instant: the last value, 1), running at 10.
    assert_eq!(values, vec![(0, 1), (10, 0)]);
}

#[test]
fn full_timeline_counts_dropped_records() {
    let mut c = started(TimelineOptions::default(), 0);
    c.limits.kept_max = c.limits.kept_count;
    c.event(0, 1_000, &TraceEvent::Tickle { pcpu: pcpu(1) });
    c.event(0, 1_000, &TraceEvent::Tickle { pcpu: pcpu(0) });

    let t = c.finish(2_000);

    // Two tickles and the open run's two slices did not fit.
    assert_eq!(t.dropped_count, 4);
    assert!(t.hosts[0]
        .instants
        .iter()
        .all(|i| !matches!(i.kind, InstantKind::Tickle { .. })));
}

#[test]
fn vcpu_leaves_the_waitq_it_joined_after_a_pool_move() {
    use hypervisor_model::ids::PoolId;
    use hypervisor_model::sched::SchedKind;
    let mut c = started(TimelineOptions::default(), 0);
    let pool = PoolId(1);
    c.event(
        0,
        100,
        &TraceEvent::NullWaitq {
            vcpu: v(),
            added: true,
        },
    );
    let created = TraceEvent::PoolCreate {
        pool,
        name: "p1".to_owned(),
        sched: SchedKind::Null,
    };
    c.event(0, 150, &created);
    c.event(0, 150, &TraceEvent::DomainPool { dom: v().dom, pool });
    c.event(
        0,
        200,
        &TraceEvent::NullWaitq {
            vcpu: v(),
            added: false,
        },
    );

    let t = c.finish(1_000);

    let host = &t.hosts[0];
    let samples = |name: &str| -> Vec<(u64, u64)> {
        let index = host.counters.iter().position(|c| c.name == name);
        let index = index
            .and_then(|i| u32::try_from(i).ok())
            .expect("counter exists");
        host.samples
            .iter()
            .filter(|s| s.counter == index)
            .map(|s| (s.time_ns, s.value))
            .collect()
    };
    assert_eq!(samples("waitq Pool-0"), vec![(100, 1), (200, 0)]);
    assert_eq!(samples("waitq p1"), vec![(150, 0)]);
}
