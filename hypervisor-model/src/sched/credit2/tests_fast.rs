//! Tests of `fast.rs`: two schedulers driven through the same random workload, one
//! deciding with `schedule` (short paths on) and one with `schedule_plain` (the general
//! path only), must agree after every step on the decision, the whole scheduler state,
//! the vCPUs, and the tickles and trace events. The driver switches like the core's
//! `schedule` (runstates, `curr`, then `context_saved`).

extern crate std;

use alloc::format;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::tests_rules::{topo, vref, Fixture};
use crate::cpumask::CpuMask;
use crate::domain::vcpu::{Runstate, VPF_BLOCKED};
use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::sched::params::DomParams;
use crate::sched::params::SchedOpts;
use crate::sched::{Decision, PickReason, Scheduler};
use crate::testing::ids::cpu;
use crate::time::Span;

/// pCPUs of the test host (one runqueue: no load balancing between runqueues).
const CPUS: u32 = 4;
/// Guest vCPUs: domain 1 has the first three, domain 2 the rest.
const VCPUS: u32 = 6;
/// Domain 1's vCPUs.
const DOM1_VCPUS: u32 = 3;

/// One step of the workload.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Wake guest vCPU `n` if it is blocked.
    Wake(u32),
    /// The vCPU running on pCPU `n`, if any, blocks and the pCPU reschedules.
    Block(u32),
    /// pCPU `n` reschedules (a timer or a stray softirq).
    Schedule(u32),
    /// Every tickled pCPU reschedules, in tickle order.
    Softirqs,
    /// Time passes, µs.
    Advance(u32),
    /// Domain 2 gets a cap, percent (0 lifts it).
    Cap(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..VCPUS).prop_map(Step::Wake),
        3 => (0..CPUS).prop_map(Step::Block),
        1 => (0..CPUS).prop_map(Step::Schedule),
        3 => Just(Step::Softirqs),
        2 => (1u32..3_000).prop_map(Step::Advance),
        1 => prop_oneof![Just(0u16), Just(10u16), Just(50u16)].prop_map(Step::Cap),
    ]
}

fn guest(n: u32) -> VcpuRef {
    if n < DOM1_VCPUS {
        vref(1, n)
    } else {
        vref(2, n - DOM1_VCPUS)
    }
}

/// A mask of the host from the low bits of `bits`, `cpu` 0 added when empty.
fn mask(bits: u8) -> CpuMask {
    let mut out = CpuMask::empty(CPUS);
    for n in (0..CPUS).filter(|n| bits >> n & 1 != 0) {
        out.set(cpu(n));
    }
    if out.is_empty() {
        out.set(cpu(0));
    }
    out
}

/// The host, of single-thread cores or of two-thread cores (`smt`): domain 1 (weight
/// 256) and domain 2 (weight 512), each vCPU with the `(hard, soft)` affinity bits given,
/// all woken once.
fn host(affinity: &[(u8, u8)], smt: bool) -> Fixture {
    let threads = if smt { 2 } else { 1 };
    let mut f = Fixture::new(&topo(1, CPUS / threads, threads), SchedOpts::default());
    let masks: Vec<(CpuMask, CpuMask)> =
        affinity.iter().map(|(h, s)| (mask(*h), mask(*s))).collect();
    let split = usize::try_from(DOM1_VCPUS).expect("small");
    f.domain_with_masks(1, &masks[..split], 256);
    f.domain_with_masks(2, &masks[split..], 512);
    for n in 0..VCPUS {
        f.with(|s, ctx| s.wake(ctx, guest(n)));
    }
    f
}

/// `schedule()` of the core on `cpu`, deciding with the short paths on or off.
fn decide(f: &mut Fixture, cpu: PcpuId, short: bool) -> Decision {
    let prev = f.curr[cpu.index()];
    let decision = f.with(|s, ctx| {
        if short {
            s.schedule(ctx, cpu, prev)
        } else {
            s.schedule_plain(ctx, cpu, prev)
        }
    });
    if decision.next != prev {
        switch(f, cpu, prev, decision.next);
    }
    decision
}

/// The core's switch from `prev` to `next` on `cpu`, then `context_saved(prev)`.
fn switch(f: &mut Fixture, cpu: PcpuId, prev: Option<VcpuRef>, next: Option<VcpuRef>) {
    let now = f.now;
    if let Some(v) = prev {
        let (vcpu, runnable) = f.domains.vcpu_runnable_mut(v).expect("running vCPU");
        vcpu.running_on = None;
        let to = if vcpu.is_blocked() {
            Runstate::Blocked
        } else if runnable {
            Runstate::Runnable
        } else {
            Runstate::Offline
        };
        vcpu.runstate_change(to, now);
    }
    if let Some(v) = next {
        let vcpu = f.domains.vcpu_mut(v).expect("picked vCPU");
        vcpu.running_on = Some(cpu);
        vcpu.runstate_change(Runstate::Running, now);
    }
    f.curr[cpu.index()] = next;
    if let Some(v) = prev {
        f.with(|s, ctx| s.context_saved(ctx, v));
    }
}

/// Runs `step` on `f`, returning the decisions it made.
fn run(f: &mut Fixture, step: Step, short: bool) -> Vec<Decision> {
    let mut decisions = Vec::new();
    match step {
        Step::Wake(n) => {
            let v = guest(n);
            let now = f.now;
            let (vcpu, _) = f.domains.vcpu_runnable_mut(v).expect("guest vCPU");
            if vcpu.pause_flags & VPF_BLOCKED != 0 {
                // The core's `vcpu_unblock`: a parked vCPU becomes offline, not runnable.
                vcpu.pause_flags &= !VPF_BLOCKED;
                let (vcpu, runnable) = f.domains.vcpu_runnable_mut(v).expect("guest vCPU");
                if runnable {
                    vcpu.runstate_change(Runstate::Runnable, now);
                    f.with(|s, ctx| s.wake(ctx, v));
                } else {
                    vcpu.runstate_change(Runstate::Offline, now);
                }
            }
        }
        Step::Block(n) => {
            if let Some(v) = f.curr[cpu(n).index()] {
                f.domains.vcpu_mut(v).expect("running vCPU").pause_flags |= VPF_BLOCKED;
                decisions.push(decide(f, cpu(n), short));
            }
        }
        Step::Schedule(n) => decisions.push(decide(f, cpu(n), short)),
        Step::Softirqs => {
            for target in core::mem::take(&mut f.tickles) {
                decisions.push(decide(f, target, short));
            }
        }
        Step::Advance(us) => {
            f.now = f.now.after(Span::from_us(i64::from(us)));
            if f.sched.next_timer().is_some_and(|at| at <= f.now) {
                f.with(|s, ctx| s.timer_fired(ctx));
            }
        }
        Step::Cap(cap) => {
            let params = DomParams::Credit2 { weight: 0, cap };
            let dom = DomId::new(2).expect("test domid");
            let set = f.with(|s, ctx| s.set_dom_params(ctx, dom, &params));
            assert_eq!(set, Ok(()));
        }
    }
    decisions
}

/// Everything the two runs must agree on, as text.
fn state(f: &Fixture) -> std::string::String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        f.sched, f.domains, f.curr, f.tickles, f.events
    )
}

proptest! {
    #[test]
    fn short_paths_decide_as_the_general_path(
        affinity in proptest::collection::vec((any::<u8>(), any::<u8>()), 6),
        smt in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let mut short = host(&affinity, smt);
        let mut plain = host(&affinity, smt);
        for step in steps {
            let fast = run(&mut short, step, true);
            let general = run(&mut plain, step, false);
            prop_assert_eq!(fast, general, "decisions after {:?}", step);
            prop_assert_eq!(state(&short), state(&plain), "state after {:?}", step);
        }
    }
}

#[test]
fn block_with_empty_runq_goes_idle_and_a_wake_is_taken_by_the_tickled_pcpu() {
    // One vCPU on an idle host: it runs, blocks (idle, short path a), wakes and is
    // taken by its tickled pCPU (short path b).
    let all = u8::MAX;
    let mut f = host(&[(all, all); 6], false);
    for n in 1..VCPUS {
        let v = guest(n);
        f.domains.vcpu_mut(v).expect("guest vCPU").pause_flags |= VPF_BLOCKED;
        f.with(|s, ctx| s.sleep(ctx, v));
    }
    let first = run(&mut f, Step::Softirqs, true);
    let running = first.iter().find_map(|d| d.next).expect("a vCPU runs");
    let home = f.domains.vcpu(running).expect("guest vCPU").processor;
    let blocked = run(&mut f, Step::Block(home.raw()), true);
    assert_eq!(blocked, [Decision::idle()]);
    let index = (0..VCPUS).find(|n| guest(*n) == running).expect("a guest");
    run(&mut f, Step::Wake(index), true);
    let picked = run(&mut f, Step::Softirqs, true);
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0].next, Some(running));
    assert_eq!(picked[0].reason, PickReason::Runq);
}
