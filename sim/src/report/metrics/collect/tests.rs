//! Tests of the metrics collector over synthetic core events.

use hypervisor_model::domain::vcpu::Runstate::{Blocked, Offline, Runnable, Running};
use hypervisor_model::trace::TraceEvent;

use super::super::synthetic::{collector, create, free, memory, rs, sched, switch, vcpu, HOST};
use super::DomainMeta;

/// Window start used where a test needs a warm-up.
const WARMUP_NS: u64 = 1_000;
/// Run end used by most tests.
const END_NS: u64 = 3_000;

#[test]
fn runstate_interval_across_window_start_is_clipped() {
    let v = vcpu(1, 0);
    let mut c = collector(WARMUP_NS);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 500, v, Offline, Runnable);
    rs(&mut c, 1_500, v, Runnable, Running);

    let m = c.finish(END_NS);

    let got = &m.domains[0].vcpus[0];
    // Offline [0, 500) and runnable [500, 1000) fall before the window.
    assert_eq!(got.offline_ns, 0);
    assert_eq!(got.runnable_ns, 500);
    assert_eq!(got.running_ns, 1_500);
    assert_eq!(got.dispatch_count, 1);
    // The wake at 500 started before the window: no sample.
    assert_eq!(got.wakeup_latency_ns.count, 0);
    assert_eq!(got.runq_wait_ns.count, 0);
}

#[test]
fn switch_overhead_is_taken_out_of_busy_time() {
    // Switches cost 100 ns (60 within a domain): d1v0 at 0, d1v1 at 1000, d2v0 at 2000.
    let costs = crate::machine::switch::SwitchCosts {
        vcpu_switch_ns: 100,
        same_dom_permille: 600,
        ipi_ns: 0,
    };
    let mut c = super::super::synthetic::collector_with_switch(0, costs);
    create(&mut c, 0, 1, "vm1", 2);
    create(&mut c, 0, 2, "vm2", 1);
    sched(&mut c, 0, 0, None, Some(vcpu(1, 0)));
    sched(&mut c, 1_000, 0, Some(vcpu(1, 0)), Some(vcpu(1, 1)));
    sched(&mut c, 2_000, 0, Some(vcpu(1, 1)), Some(vcpu(2, 0)));

    let m = c.finish(END_NS);

    let cpu0 = &m.hosts[0].pcpus[0];
    assert_eq!(cpu0.overhead_ns, 100 + 60 + 100);
    assert_eq!(cpu0.busy_ns, END_NS - 260);
    assert_eq!(cpu0.idle_ns, 0);
}

#[test]
fn wake_then_run_records_latency_sample() {
    let v = vcpu(1, 0);
    let mut c = collector(0);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 100, v, Offline, Runnable);
    rs(&mut c, 350, v, Runnable, Running);
    rs(&mut c, 1_000, v, Running, Blocked);
    rs(&mut c, 2_000, v, Blocked, Runnable);
    rs(&mut c, 2_100, v, Runnable, Running);

    let m = c.finish(END_NS);

    let got = &m.vcpus_of(0)[0];
    // Samples 250 (350 - 100) and 100 (2100 - 2000).
    assert_eq!(got.wakeup_latency_ns.count, 2);
    assert_eq!(got.wakeup_latency_ns.sum, 350);
    assert_eq!(got.wakeup_latency_ns.max, Some(250));
    assert_eq!(got.runq_wait_ns.count, 2);
    assert_eq!(got.blocked_ns, 1_000);
}

#[test]
fn wake_then_block_before_run_counts_abandoned() {
    let v = vcpu(1, 0);
    let mut c = collector(0);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 100, v, Offline, Runnable);
    rs(&mut c, 200, v, Runnable, Blocked);

    let m = c.finish(END_NS);

    let got = &m.vcpus_of(0)[0];
    assert_eq!(got.wake_abandoned_count, 1);
    assert_eq!(got.wakeup_latency_ns.count, 0);
    assert_eq!(got.runq_wait_ns.count, 0);
    assert_eq!(got.wakeup_latency_pending_count, 0);
}

#[test]
fn wake_pending_at_end_is_censored() {
    let v = vcpu(1, 0);
    let mut c = collector(0);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 2_900, v, Offline, Runnable);

    let m = c.finish(END_NS);

    let got = &m.vcpus_of(0)[0];
    assert_eq!(got.wakeup_latency_pending_count, 1);
    assert_eq!(got.wake_abandoned_count, 0);
    assert_eq!(got.wakeup_latency_ns.count, 0);
    assert_eq!(got.runnable_ns, 100);
}

#[test]
fn running_to_runnable_counts_preemption_and_runq_wait_only() {
    let v = vcpu(1, 0);
    let mut c = collector(0);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 0, v, Offline, Runnable);
    rs(&mut c, 0, v, Runnable, Running);
    rs(&mut c, 1_000, v, Running, Runnable);
    rs(&mut c, 1_400, v, Runnable, Running);

    let m = c.finish(END_NS);

    let got = &m.vcpus_of(0)[0];
    assert_eq!(got.preemption_count, 1);
    assert_eq!(got.yield_count, 0);
    // One wake sample (0 ns) at boot; the preemption gives no wake sample.
    assert_eq!(got.wakeup_latency_ns.count, 1);
    assert_eq!(got.runq_wait_ns.max, Some(400));
    assert_eq!(got.steal_ns, 400);
}

#[test]
fn pcpu_busy_idle_split_follows_schedule_events() {
    let v = vcpu(1, 0);
    let mut c = collector(0);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 0, v, Offline, Runnable);
    switch(&mut c, 100, 0, None, Some(v));
    switch(&mut c, 400, 0, Some((v, Blocked)), None);

    let m = c.finish(1_000);

    let pcpu0 = &m.hosts[HOST].pcpus[0];
    assert_eq!(pcpu0.busy_ns, 300);
    assert_eq!(pcpu0.idle_ns, 700);
    assert_eq!(pcpu0.online_ns, 1_000);
    assert_eq!(pcpu0.utilization_ppm, Some(300_000));
    // pCPU 1 never ran anything, and the pool's capacity is both pCPUs.
    assert_eq!(m.hosts[HOST].pcpus[1].idle_ns, 1_000);
    assert_eq!(m.hosts[HOST].pools[0].capacity_ns, 2_000);
}

#[test]
fn context_switch_counts_idle_but_vcpu_switch_does_not() {
    let (a, b) = (vcpu(1, 0), vcpu(2, 0));
    let mut c = collector(0);
    create(&mut c, 0, 1, "vm1", 1);
    create(&mut c, 0, 2, "vm2", 1);
    rs(&mut c, 0, a, Offline, Runnable);
    rs(&mut c, 0, b, Offline, Runnable);
    switch(&mut c, 100, 0, None, Some(a));
    switch(&mut c, 200, 0, Some((a, Runnable)), Some(b));
    sched(&mut c, 300, 0, Some(b), Some(b));
    switch(&mut c, 400, 0, Some((b, Blocked)), None);

    let m = c.finish(END_NS);

    let pcpu0 = &m.hosts[HOST].pcpus[0];
    // idle→a, a→b, b→b (kept), b→idle.
    assert_eq!(pcpu0.sched_decision_count, 4);
    assert_eq!(pcpu0.context_switch_count, 3);
    assert_eq!(pcpu0.vcpu_switch_count, 1);
}

#[test]
fn consecutive_runs_on_other_node_count_pcpu_and_numa_migration() {
    let v = vcpu(1, 0);
    let mut c = collector(0);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 0, v, Offline, Runnable);
    switch(&mut c, 100, 0, None, Some(v));
    switch(&mut c, 200, 0, Some((v, Runnable)), None);
    switch(&mut c, 300, 1, None, Some(v));

    let m = c.finish(END_NS);

    let got = &m.vcpus_of(0)[0];
    assert_eq!(got.migration_pcpu_count, 1);
    assert_eq!(got.migration_numa_count, 1);
    assert_eq!(got.dispatch_count, 2);
}

#[test]
fn domid_reuse_produces_two_domain_entries() {
    let mut c = collector(0);
    create(&mut c, 0, 1, "first", 1);
    free(&mut c, 100, 1);
    create(&mut c, 200, 1, "second", 1);

    let m = c.finish(END_NS);

    assert_eq!(m.domains.len(), 2);
    assert_eq!(m.domains[0].name, "first");
    assert_eq!(m.domains[0].offline_ns, 100);
    assert_eq!(m.domains[1].name, "second");
    assert_eq!(m.domains[1].domid, 1);
    assert_eq!(m.domains[1].offline_ns, 2_800);
}

#[test]
fn domain_freed_before_window_is_not_reported() {
    let mut c = collector(WARMUP_NS);
    create(&mut c, 0, 1, "gone", 1);
    free(&mut c, 500, 1);
    create(&mut c, 600, 2, "kept", 1);

    let m = c.finish(END_NS);

    assert_eq!(m.domains.len(), 1);
    assert_eq!(m.domains[0].name, "kept");
}

#[test]
fn domain_meta_given_before_create_is_applied() {
    let meta = DomainMeta {
        pool: "Pool-0".to_owned(),
        weight: 512,
        cap: 50,
    };
    let mut c = collector(0);
    c.domain_meta(HOST, super::super::synthetic::dom(1), meta);
    create(&mut c, 0, 1, "vm1", 1);

    let m = c.finish(END_NS);

    assert_eq!(m.domains[0].pool.as_deref(), Some("Pool-0"));
    assert_eq!(m.domains[0].weight, Some(512));
    assert_eq!(m.domains[0].cap, Some(50));
}

#[test]
fn host_free_memory_min_includes_level_at_window_start() {
    // 100 pages before the window hold at its start; 300 pages later are the end level.
    let mut c = collector(WARMUP_NS);
    memory(&mut c, 0, 100);
    memory(&mut c, 2_000, 300);

    let m = c.finish(END_NS);

    assert_eq!(m.hosts[HOST].host_free_kib_min, Some(400));
    assert_eq!(m.hosts[HOST].host_free_kib_end, Some(1_200));
}

#[test]
fn run_cut_before_its_warm_up_reports_an_empty_window() {
    // An invariant broke at 500 ns under --check, before the 1000 ns warm-up ended.
    let v = vcpu(1, 0);
    let mut c = collector(WARMUP_NS);
    create(&mut c, 0, 1, "vm1", 1);
    rs(&mut c, 100, v, Offline, Runnable);
    rs(&mut c, 200, v, Runnable, Running);

    let m = c.finish(501);

    assert_eq!((m.window.start_ns, m.window.length_ns), (501, 0));
    let mut vcpus = m.domains.iter().flat_map(|d| &d.vcpus);
    assert!(vcpus.all(|v| v.running_ns == 0 && v.dispatch_count == 0));
}

#[test]
fn pcpu_moved_between_pools_counts_its_time_in_each() {
    use hypervisor_model::ids::PoolId;
    use hypervisor_model::sched::SchedKind;
    use hypervisor_model::trace::TraceEvent;

    use super::super::synthetic::pcpu;

    let rt = PoolId(1);
    let mut c = collector(0);
    let created = TraceEvent::PoolCreate {
        pool: rt,
        name: "rt".to_owned(),
        sched: SchedKind::Rtds,
    };
    c.observe(HOST, 0, &created);
    let moved = |pool| TraceEvent::PoolCpu {
        pcpu: pcpu(1),
        pool,
    };
    c.observe(HOST, 400, &moved(Some(rt)));
    c.observe(HOST, 700, &moved(None));

    let m = c.finish(1_000);

    let host = &m.hosts[HOST];
    // pCPU 0 all along and pCPU 1 for [0, 400) in Pool-0; pCPU 1 for [400, 700) in rt.
    assert_eq!(host.pools[0].capacity_ns, 1_000 + 400);
    assert_eq!(host.pools[1].name, "rt");
    assert_eq!(host.pools[1].capacity_ns, 300);
    assert_eq!(host.pcpus[1].online_ns, 700);
    assert_eq!(host.pcpus[1].pool, None);
}

/// Feeds `events` to `c`, the frequent kinds through the direct entry points the run
/// loop's sinks use (`direct`) or all through `observe`.
fn feed(c: &mut super::MetricsCollector, events: &[(u64, TraceEvent)], direct: bool) {
    for (time_ns, event) in events {
        match (direct, event) {
            (true, TraceEvent::Runstate { vcpu, from, to }) => {
                c.runstate(HOST, *time_ns, *vcpu, (*from, *to));
            }
            (
                true,
                TraceEvent::Schedule {
                    pcpu, prev, next, ..
                },
            ) => {
                c.schedule(HOST, *time_ns, *pcpu, (*prev, *next));
            }
            _ => c.observe(HOST, *time_ns, event),
        }
    }
}

#[test]
fn direct_runstate_and_schedule_fold_as_observe() {
    let costs = crate::machine::switch::SwitchCosts {
        vcpu_switch_ns: 100,
        same_dom_permille: 600,
        ipi_ns: 0,
    };
    let (a, b) = (vcpu(1, 0), vcpu(1, 1));
    let schedule = |pcpu: u32, prev, next| TraceEvent::Schedule {
        pcpu: super::super::synthetic::pcpu(pcpu),
        prev,
        next,
        next_time: hypervisor_model::time::Span::from_ns(-1),
        reason: hypervisor_model::sched::PickReason::Assigned,
        credit_ns: Some(5),
    };
    let runstate = |vcpu, from, to| TraceEvent::Runstate { vcpu, from, to };
    // Two vCPUs waking, running on both pCPUs (a migration), preempted and blocking,
    // across the window start at 1000.
    let events = [
        (500, runstate(a, Offline, Runnable)),
        (600, runstate(b, Offline, Runnable)),
        (700, schedule(0, None, Some(a))),
        (700, runstate(a, Runnable, Running)),
        (1_200, schedule(1, None, Some(b))),
        (1_200, runstate(b, Runnable, Running)),
        (1_500, schedule(0, Some(a), None)),
        (1_500, runstate(a, Running, Runnable)),
        (1_800, schedule(1, Some(b), Some(a))),
        (1_800, runstate(b, Running, Blocked)),
        (1_800, runstate(a, Runnable, Running)),
        (2_100, schedule(1, Some(a), Some(a))),
        (2_400, runstate(b, Blocked, Runnable)),
        (2_600, schedule(0, None, Some(b))),
        (2_600, runstate(b, Runnable, Running)),
    ];
    let run = |direct| {
        let mut c = super::super::synthetic::collector_with_switch(WARMUP_NS, costs);
        create(&mut c, 0, 1, "vm1", 2);
        feed(&mut c, &events, direct);
        c.finish(END_NS)
    };

    let (observed, direct) = (run(false), run(true));

    assert_eq!(direct, observed);
    assert_eq!(observed.domains[0].vcpus[0].migration_pcpu_count, 1);
    assert_eq!(observed.hosts[0].pcpus[1].vcpu_switch_count, 1);
}
