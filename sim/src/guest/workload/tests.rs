//! Tests of the per-vCPU workload state machine: each kind's block/wake/yield cycle, the
//! spurious-wake rule, and the per-field random streams.

use super::*;
use crate::scenario::model::{Dist, MixEntry};

/// Any seed: these tests use constant distributions unless they check the streams.
const SEED: u64 = 1;
const DOMAIN: &str = "web";
const US: u64 = 1_000;
const MS: u64 = 1_000_000;

fn guest(spec: &WorkloadSpec) -> GuestVcpu {
    GuestVcpu::new(spec, &RngStreams::new(SEED), DOMAIN, 0, 0)
}

fn periodic_spec(phase_ns: u64, jitter_ns: u64) -> WorkloadSpec {
    WorkloadSpec::Periodic {
        period_ns: 10 * MS,
        wcet: Dist::Const(2 * MS),
        deadline_ns: 10 * MS,
        phase: Dist::Const(phase_ns),
        jitter: Dist::Const(jitter_ns),
    }
}

fn bursty_spec() -> WorkloadSpec {
    WorkloadSpec::Bursty {
        service: Dist::Const(MS),
        think: Dist::Const(10 * MS),
    }
}

fn single_mix(workload: WorkloadSpec, span: Dist) -> WorkloadSpec {
    WorkloadSpec::Mixed {
        mix: vec![MixEntry {
            weight: 1,
            span,
            workload,
        }],
    }
}

#[test]
fn idle_without_tick_starts_blocked_forever() {
    let spec = WorkloadSpec::Idle {
        tick: None,
        tick_work: Dist::Const(2 * US),
    };

    let vcpu = guest(&spec);

    assert_eq!(vcpu.state(), GuestState::Blocked { wake_at_ns: None });
}

#[test]
fn idle_with_tick_wakes_and_runs_tick_work_then_blocks_until_next_tick() {
    let spec = WorkloadSpec::Idle {
        tick: Some(Dist::Const(4 * MS)),
        tick_work: Dist::Const(2 * US),
    };
    let mut vcpu = guest(&spec);
    let initial = vcpu.state();

    vcpu.on_wake(4 * MS);
    let demand = vcpu.run_demand_ns(4 * MS);
    let action = vcpu.on_demand_done(4 * MS + 2 * US);

    assert_eq!(
        initial,
        GuestState::Blocked {
            wake_at_ns: Some(4 * MS)
        }
    );
    assert_eq!(demand, Some(2 * US));
    assert_eq!(
        action,
        GuestAction::Block {
            wake_at_ns: Some(8 * MS)
        }
    );
}

#[test]
fn idle_tick_work_finishing_after_next_tick_drops_missed_tick() {
    let spec = WorkloadSpec::Idle {
        tick: Some(Dist::Const(4 * MS)),
        tick_work: Dist::Const(2 * US),
    };
    let mut vcpu = guest(&spec);
    vcpu.on_wake(4 * MS);

    // The work ends at 9 ms, past the 8 ms tick: the next tick is one tick after now.
    let action = vcpu.on_demand_done(9 * MS);

    assert_eq!(
        action,
        GuestAction::Block {
            wake_at_ns: Some(13 * MS)
        }
    );
}

#[test]
fn idle_spurious_wake_runs_nothing_and_blocks_again() {
    let spec = WorkloadSpec::Idle {
        tick: None,
        tick_work: Dist::Const(2 * US),
    };
    let mut vcpu = guest(&spec);

    vcpu.on_wake(MS);
    let demand = vcpu.run_demand_ns(MS);
    let action = vcpu.on_demand_done(MS);

    assert_eq!(demand, Some(0));
    assert_eq!(action, GuestAction::Block { wake_at_ns: None });
}

#[test]
fn cpu_bound_without_yield_is_runnable_and_never_acts() {
    let spec = WorkloadSpec::CpuBound { yield_every: None };

    let mut vcpu = guest(&spec);

    assert_eq!(vcpu.state(), GuestState::Runnable);
    assert_eq!(vcpu.run_demand_ns(0), None);
}

#[test]
fn cpu_bound_with_yield_every_yields_and_draws_new_demand() {
    let spec = WorkloadSpec::CpuBound {
        yield_every: Some(Dist::Const(MS)),
    };
    let mut vcpu = guest(&spec);

    let action = vcpu.on_demand_done(MS);

    assert_eq!(action, GuestAction::Yield);
    assert_eq!(vcpu.state(), GuestState::Runnable);
    assert_eq!(vcpu.run_demand_ns(MS), Some(MS));
}

#[test]
fn cpu_bound_preempted_remembers_demand_left() {
    let spec = WorkloadSpec::CpuBound {
        yield_every: Some(Dist::Const(MS)),
    };
    let mut vcpu = guest(&spec);

    vcpu.account(300 * US);

    assert_eq!(vcpu.run_demand_ns(2 * MS), Some(700 * US));
    assert_eq!(vcpu.cpu_ns_total(), 300 * US);
}

#[test]
fn periodic_starts_blocked_until_phase() {
    let vcpu = guest(&periodic_spec(MS, 0));

    assert_eq!(
        vcpu.state(),
        GuestState::Blocked {
            wake_at_ns: Some(MS)
        }
    );
}

#[test]
fn periodic_job_done_records_completion_and_blocks_until_next_release() {
    let mut vcpu = guest(&periodic_spec(MS, 0));
    vcpu.on_wake(MS);

    let demand = vcpu.run_demand_ns(MS);
    let action = vcpu.on_demand_done(3 * MS);

    assert_eq!(demand, Some(2 * MS));
    assert_eq!(
        action,
        GuestAction::Block {
            wake_at_ns: Some(11 * MS)
        }
    );
    assert_eq!(
        vcpu.jobs()[0],
        JobRecord {
            job_index: 0,
            release_ns: MS,
            ready_ns: MS,
            deadline_ns: 11 * MS,
            demand_ns: 2 * MS,
            completion_ns: Some(3 * MS),
            first_run_ns: None,
        }
    );
}

#[test]
fn periodic_job_finishing_after_next_release_continues_with_queued_job() {
    let mut vcpu = guest(&periodic_spec(MS, 0));
    vcpu.on_wake(MS);

    // Job 0 finishes at 12 ms, after job 1's release at 11 ms: job 1 runs at once.
    let action = vcpu.on_demand_done(12 * MS);

    assert_eq!(action, GuestAction::Continue);
    assert_eq!(vcpu.run_demand_ns(12 * MS), Some(2 * MS));
    assert_eq!(vcpu.jobs()[1].release_ns, 11 * MS);
    assert_eq!(vcpu.jobs()[1].completion_ns, None);
}

#[test]
fn periodic_job_on_time_prints_nothing() {
    let mut vcpu = guest(&periodic_spec(MS, 0));
    vcpu.on_wake(MS);

    // Job 0's deadline is 11 ms: finishing exactly then meets it.
    vcpu.on_demand_done(11 * MS);

    assert_eq!(vcpu.take_console(), "");
}

#[test]
fn periodic_late_job_prints_its_lateness_in_microseconds() {
    let mut vcpu = guest(&periodic_spec(MS, 0));
    vcpu.on_wake(MS);

    // Job 0 (deadline 11 ms) finishes 2.5 ms late.
    vcpu.on_demand_done(13 * MS + 500 * US);

    assert_eq!(
        vcpu.take_console(),
        "job 0 missed its deadline by 2500 us\n"
    );
    assert_eq!(vcpu.take_console(), "", "taken once");
}

#[test]
fn periodic_miss_lines_are_rate_limited_to_ten_per_five_seconds() {
    // wcet 20 ms every 10 ms: every job is late, one completes every 20 ms.
    let spec = WorkloadSpec::Periodic {
        period_ns: 10 * MS,
        wcet: Dist::Const(20 * MS),
        deadline_ns: 10 * MS,
        phase: Dist::Const(0),
        jitter: Dist::Const(0),
    };
    // Phase 0: job 0 is ready at the start, so the vCPU starts runnable.
    let mut vcpu = guest(&spec);
    // Jobs 0..12 complete at 20, 40, .., 240 ms: all inside one 5 s window.
    let completions_ns: Vec<u64> = (1..=12).map(|k| k * 20 * MS).collect();
    for now_ns in &completions_ns {
        vcpu.on_demand_done(*now_ns);
    }

    let text = vcpu.take_console();

    assert_eq!(text.lines().count(), 10, "{text}");
    assert!(
        text.starts_with("job 0 missed its deadline by 10000 us\n"),
        "{text}"
    );
    assert!(
        text.ends_with("job 9 missed its deadline by 100000 us\n"),
        "{text}"
    );
}

#[test]
fn periodic_jitter_delays_ready_but_not_release_or_deadline() {
    let mut vcpu = guest(&periodic_spec(MS, 500 * US));

    let jobs = vcpu.jobs_released_before(2 * MS).to_vec();

    assert_eq!(
        vcpu.state(),
        GuestState::Blocked {
            wake_at_ns: Some(1_500 * US)
        }
    );
    assert_eq!(jobs[0].release_ns, MS);
    assert_eq!(jobs[0].ready_ns, 1_500 * US);
    assert_eq!(jobs[0].deadline_ns, 11 * MS);
}

#[test]
fn periodic_jobs_released_before_lists_unfinished_jobs() {
    let mut vcpu = guest(&periodic_spec(0, 0));

    // Releases at 0, 10 and 20 ms are before 25 ms.
    let jobs = vcpu.jobs_released_before(25 * MS);

    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[2].release_ns, 20 * MS);
    assert_eq!(jobs[2].completion_ns, None);
}

#[test]
fn periodic_releases_count_from_start_instant() {
    let start_ns = 7 * MS;

    let vcpu = GuestVcpu::new(
        &periodic_spec(MS, 0),
        &RngStreams::new(SEED),
        DOMAIN,
        0,
        start_ns,
    );

    assert_eq!(
        vcpu.state(),
        GuestState::Blocked {
            wake_at_ns: Some(8 * MS)
        }
    );
}

#[test]
fn bursty_runs_service_then_blocks_for_think() {
    let mut vcpu = guest(&bursty_spec());
    let demand = vcpu.run_demand_ns(0);

    let action = vcpu.on_demand_done(2 * MS);

    assert_eq!(demand, Some(MS));
    assert_eq!(
        action,
        GuestAction::Block {
            wake_at_ns: Some(12 * MS)
        }
    );
}

#[test]
fn bursty_wake_after_think_draws_new_service() {
    let mut vcpu = guest(&bursty_spec());
    let _ = vcpu.on_demand_done(MS);

    vcpu.on_wake(11 * MS);

    assert_eq!(vcpu.run_demand_ns(11 * MS), Some(MS));
}

#[test]
fn bursty_service_is_drawn_from_its_named_stream() {
    let service = Dist::Exp { mean: MS };
    let spec = WorkloadSpec::Bursty {
        service,
        think: Dist::Const(MS),
    };
    let streams = RngStreams::new(SEED);
    let mut expected_stream = streams.stream("workload.web.v3.service");

    let mut vcpu = GuestVcpu::new(&spec, &streams, DOMAIN, 3, 0);

    let expected = crate::guest::dist::sample(&service, &mut expected_stream);
    assert_eq!(vcpu.run_demand_ns(0), Some(expected));
}

#[test]
fn mixed_span_caps_demand_of_cpu_bound_entry() {
    let spec = single_mix(
        WorkloadSpec::CpuBound { yield_every: None },
        Dist::Const(5 * MS),
    );
    let mut vcpu = guest(&spec);

    let demand_at_start = vcpu.run_demand_ns(0);
    let demand_later = vcpu.run_demand_ns(2 * MS);

    assert_eq!(demand_at_start, Some(5 * MS));
    assert_eq!(demand_later, Some(3 * MS));
}

#[test]
fn mixed_span_end_picks_again_and_continues_runnable_entry() {
    let spec = single_mix(
        WorkloadSpec::CpuBound { yield_every: None },
        Dist::Const(5 * MS),
    );
    let mut vcpu = guest(&spec);

    let action = vcpu.on_demand_done(5 * MS);

    assert_eq!(action, GuestAction::Continue);
    assert_eq!(vcpu.run_demand_ns(5 * MS), Some(5 * MS));
}

#[test]
fn mixed_blocked_entry_wake_is_capped_at_span_end() {
    let spec = single_mix(bursty_spec(), Dist::Const(5 * MS));
    let mut vcpu = guest(&spec);

    // Service ends at 1 ms; think would wake at 11 ms, but the span ends at 5 ms.
    let action = vcpu.on_demand_done(MS);

    assert_eq!(
        action,
        GuestAction::Block {
            wake_at_ns: Some(5 * MS)
        }
    );
}

#[test]
fn mixed_wake_at_span_end_into_blocked_entry_runs_nothing_then_blocks() {
    let idle = WorkloadSpec::Idle {
        tick: None,
        tick_work: Dist::Const(2 * US),
    };
    let spec = single_mix(idle, Dist::Const(5 * MS));
    let mut vcpu = guest(&spec);
    let initial = vcpu.state();

    vcpu.on_wake(5 * MS);
    let demand = vcpu.run_demand_ns(5 * MS);
    let action = vcpu.on_demand_done(5 * MS);

    assert_eq!(
        initial,
        GuestState::Blocked {
            wake_at_ns: Some(5 * MS)
        }
    );
    assert_eq!(demand, Some(0));
    assert_eq!(
        action,
        GuestAction::Block {
            wake_at_ns: Some(10 * MS)
        }
    );
}

#[test]
fn mixed_span_is_drawn_from_entry_stream() {
    let span = Dist::Exp { mean: 5 * MS };
    let spec = single_mix(WorkloadSpec::CpuBound { yield_every: None }, span);
    let streams = RngStreams::new(SEED);
    let mut expected_stream = streams.stream("workload.web.v0.mix0.span");

    let mut vcpu = GuestVcpu::new(&spec, &streams, DOMAIN, 0, 0);

    let expected = crate::guest::dist::sample(&span, &mut expected_stream).max(1);
    assert_eq!(vcpu.run_demand_ns(0), Some(expected));
}

#[test]
fn guest_same_seed_gives_same_demands() {
    let spec = WorkloadSpec::CpuBound {
        yield_every: Some(Dist::Exp { mean: MS }),
    };
    let mut first = guest(&spec);
    let mut second = guest(&spec);

    let _ = first.on_demand_done(MS);
    let _ = second.on_demand_done(MS);

    assert_eq!(first.run_demand_ns(MS), second.run_demand_ns(MS));
}

#[test]
fn guest_other_vcpu_index_gives_other_demands() {
    let spec = WorkloadSpec::CpuBound {
        yield_every: Some(Dist::Exp { mean: MS }),
    };
    let streams = RngStreams::new(SEED);

    let mut vcpu0 = GuestVcpu::new(&spec, &streams, DOMAIN, 0, 0);
    let mut vcpu1 = GuestVcpu::new(&spec, &streams, DOMAIN, 1, 0);

    assert_ne!(vcpu0.run_demand_ns(0), vcpu1.run_demand_ns(0));
}

#[test]
#[should_panic(expected = "wake of a runnable vCPU")]
fn guest_wake_of_runnable_vcpu_panics() {
    let mut vcpu = guest(&WorkloadSpec::CpuBound { yield_every: None });

    vcpu.on_wake(0);
}

/// A PV guest's stretch for 400k syscalls and 1M page-table writes per second (+25%).
const OS_STRETCH_PPM: u64 = 1_250_000;
/// A PV guest's timer wake: 1500 ns of injection and a 300 ns upcall.
const TIMER_WAKE_NS: u64 = 1_800;

#[test]
fn os_stretch_lengthens_the_run_time_of_each_demand() {
    let mut vcpu = guest(&bursty_spec());

    vcpu.set_os_costs(OS_STRETCH_PPM, TIMER_WAKE_NS);

    assert_eq!(vcpu.run_demand_ns(0), Some(MS + MS / 4));
}

#[test]
fn timer_wake_runs_its_cost_before_the_work() {
    let mut vcpu = guest(&bursty_spec());
    vcpu.set_os_costs(1_000_000, TIMER_WAKE_NS);
    let _ = vcpu.on_demand_done(MS);

    vcpu.on_wake(11 * MS);
    let demand = vcpu.run_demand_ns(11 * MS);
    vcpu.account(TIMER_WAKE_NS);

    assert_eq!(demand, Some(MS + TIMER_WAKE_NS));
    assert_eq!(vcpu.run_demand_ns(11 * MS), Some(MS));
}

#[test]
fn spurious_wake_charges_no_timer_row() {
    let mut vcpu = guest(&bursty_spec());
    vcpu.set_os_costs(1_000_000, TIMER_WAKE_NS);
    let _ = vcpu.on_demand_done(MS);

    vcpu.on_wake(5 * MS);

    assert_eq!(vcpu.run_demand_ns(5 * MS), Some(0));
}

fn streaming(base: WorkloadSpec, gap_ns: u64) -> WorkloadSpec {
    WorkloadSpec::NetStream {
        base: Box::new(base),
        net: crate::scenario::model::NetWorkload {
            vif: 0,
            peer: crate::scenario::model::NetPeer::Dom0,
            tx_size: Dist::Const(1000),
            rx_size: Dist::Const(0),
        },
        rate: Dist::Const(gap_ns),
    }
}

#[test]
fn cpu_bound_stream_cuts_its_run_at_each_send_and_goes_on() {
    // cpu_bound never acts on its own; a 100 us stream gap cuts its run there.
    let mut vcpu = guest(&streaming(
        WorkloadSpec::CpuBound { yield_every: None },
        100 * US,
    ));

    let demand = vcpu.run_demand_ns(0);
    let action = vcpu.on_demand_done(100 * US);

    assert_eq!(demand, Some(100 * US));
    assert_eq!(action, GuestAction::Continue);
    assert_eq!(frame_counts(&mut vcpu), [1]);
    assert_eq!(vcpu.run_demand_ns(100 * US), Some(100 * US));
}

#[test]
fn blocked_workload_is_woken_for_a_send_and_blocks_again_with_its_own_timer() {
    // bursty: 1 ms of service, then 10 ms of think (until 11 ms); the stream's gap is 3 ms.
    let mut vcpu = guest(&streaming(bursty_spec(), 3 * MS));
    let first = vcpu.run_demand_ns(0);
    vcpu.account(MS);
    assert_eq!(first, Some(MS));
    let action = vcpu.on_demand_done(MS);
    assert_eq!(
        action,
        GuestAction::Block {
            wake_at_ns: Some(3 * MS)
        }
    );

    vcpu.on_wake(3 * MS);
    let spurious = vcpu.run_demand_ns(3 * MS);
    let again = vcpu.on_demand_done(3 * MS);

    assert_eq!(spurious, Some(0));
    assert_eq!(
        again,
        GuestAction::Block {
            wake_at_ns: Some(6 * MS)
        }
    );
    assert_eq!(frame_counts(&mut vcpu), [1]);
}

/// The number of frames per vif the streams send now.
fn frame_counts(vcpu: &mut GuestVcpu) -> Vec<usize> {
    let sends = vcpu.take_stream_frames();
    sends.iter().map(|(_, _, frames)| frames.len()).collect()
}
