//! Queue order, deadlines, flags and tickle choices, on the standalone harness.

use alloc::vec;
use alloc::vec::Vec;

use super::harness::Harness;
use super::{cpu, params, vcpu};
use crate::domain::vcpu::VPF_BLOCKED;
use crate::ids::VcpuRef;
use crate::sched::rtds::server::Queue;
use crate::sched::{PickReason, Scheduler};
use crate::time::STime;

const MS: i64 = 1_000_000;

/// Harness time rounded up to the next multiple of `step_ns` plus `offset_ns`.
fn next_grid(h: &Harness, step_ns: i64, offset_ns: i64) -> i64 {
    (h.now.as_ns() / step_ns + 1) * step_ns + offset_ns
}

fn deadline(h: &Harness, v: VcpuRef) -> i64 {
    h.rt.servers.srv(v).cur_deadline.as_ns()
}

/// Moves `v`'s deadline in place, as no hook does, and tells the indexes that copy keys.
fn set_deadline(h: &mut Harness, v: VcpuRef, ns: i64) {
    h.rt.servers.srv_mut(v).cur_deadline = STime::from_ns(ns);
    h.rt.rekey(v);
}

fn runq(h: &Harness) -> Vec<VcpuRef> {
    h.rt.runq_iter().collect()
}

fn replq(h: &Harness) -> Vec<VcpuRef> {
    h.rt.replq.iter().collect()
}

fn block_before_insert(h: &mut Harness, v: VcpuRef) {
    h.hv.domains.vcpu_mut(v).expect("vcpu").pause_flags |= VPF_BLOCKED;
}

#[test]
fn insert_sets_first_deadline_to_next_multiple_of_period() {
    let mut h = Harness::new(2, &[1]);
    let t = next_grid(&h, 10 * MS, 3 * MS);
    h.at(t);
    h.insert(vcpu(1, 0), cpu(0));
    // Default period 10 ms: the deadline is the multiple of 10 ms after now.
    assert_eq!(deadline(&h, vcpu(1, 0)), t - 3 * MS + 10 * MS);
    assert_eq!(h.rt.servers.srv(vcpu(1, 0)).cur_budget_ns, 4 * MS);
    assert_eq!(runq(&h), vec![vcpu(1, 0)]);
    assert_eq!(replq(&h), vec![vcpu(1, 0)]);
}

#[test]
fn wake_after_deadline_gives_aligned_deadline_and_full_budget() {
    let mut h = Harness::new(1, &[1]);
    let v = vcpu(1, 0);
    let t = next_grid(&h, 10 * MS, 0);
    h.at(t);
    h.insert(v, cpu(0));
    assert_eq!(h.schedule(cpu(0)).next, Some(v));
    h.at(t + MS);
    h.block(v);
    // Asleep past two deadlines: woken at t + 27.5 ms, next deadline t + 30 ms.
    h.at(t + 27 * MS + MS / 2);
    h.wake(v);
    let s = h.rt.servers.srv(v);
    assert_eq!(s.cur_deadline.as_ns(), t + 30 * MS);
    assert_eq!(s.cur_budget_ns, 4 * MS);
    assert_eq!(s.priority_level, 0);
}

#[test]
fn wake_before_deadline_keeps_remaining_budget() {
    // Deferrable server: budget left when blocking is kept until the period ends.
    let mut h = Harness::new(1, &[1]);
    let v = vcpu(1, 0);
    let t = next_grid(&h, 10 * MS, 0);
    h.at(t);
    h.insert(v, cpu(0));
    h.schedule(cpu(0));
    h.at(t + MS);
    h.block(v);
    h.at(t + 5 * MS);
    h.wake(v);
    let s = h.rt.servers.srv(v);
    assert_eq!(s.cur_deadline.as_ns(), t + 10 * MS);
    assert_eq!(s.cur_budget_ns, 3 * MS);
}

#[test]
fn runq_orders_by_level_then_deadline_with_ties_fifo() {
    let mut h = Harness::new(1, &[3]);
    let (a, b, c) = (vcpu(1, 0), vcpu(1, 1), vcpu(1, 2));
    for v in [a, b, c] {
        h.insert(v, cpu(0));
    }
    // Same deadline for all: insertion order.
    assert_eq!(runq(&h), vec![a, b, c]);
    for v in [a, b, c] {
        h.rt.q_remove(v);
    }
    let base = deadline(&h, a);
    set_deadline(&mut h, a, base + 20 * MS);
    set_deadline(&mut h, b, base + 10 * MS);
    set_deadline(&mut h, c, base + 10 * MS);
    for v in [a, b, c] {
        h.rt.runq_insert(v);
    }
    assert_eq!(runq(&h), vec![b, c, a]);
    // One extratime level down loses to every level-0 server, whatever the deadline.
    h.rt.q_remove(b);
    h.rt.servers.srv_mut(b).priority_level = 1;
    h.rt.rekey(b);
    h.rt.runq_insert(b);
    assert_eq!(runq(&h), vec![c, a, b]);
}

#[test]
fn depletedq_pushes_at_head() {
    let mut h = Harness::new(1, &[2]);
    let (a, b) = (vcpu(1, 0), vcpu(1, 1));
    for v in [a, b] {
        h.insert(v, cpu(0));
        h.rt.q_remove(v);
        let s = h.rt.servers.srv_mut(v);
        s.extratime = false;
        s.cur_budget_ns = 0;
        s.depleted = true;
    }
    h.rt.runq_insert(a);
    h.rt.runq_insert(b);
    assert_eq!(
        h.rt.depletedq.values().copied().collect::<Vec<_>>(),
        vec![b, a]
    );
    assert!(h.rt.runq.is_empty());
}

#[test]
fn wake_tickles_idle_pcpu_before_preempting() {
    let mut h = Harness::new(2, &[2]);
    let (a, b) = (vcpu(1, 0), vcpu(1, 1));
    h.insert(a, cpu(0));
    assert_eq!(h.schedule(cpu(0)).next, Some(a));
    block_before_insert(&mut h, b);
    h.insert(b, cpu(0));
    // b would beat a (equal deadline, a's tie is lost only in the runq), but cpu1 idles.
    h.wake(b);
    assert_eq!(h.take_tickles(), vec![cpu(1)]);
    assert!(h.rt.tickled.test(cpu(1)));
}

#[test]
fn wake_tickles_pcpu_of_lowest_priority_running_vcpu() {
    let mut h = Harness::new(2, &[3]);
    let (a, b, c) = (vcpu(1, 0), vcpu(1, 1), vcpu(1, 2));
    h.insert(a, cpu(0));
    h.insert(b, cpu(1));
    h.schedule(cpu(0));
    h.schedule(cpu(1));
    let base = deadline(&h, a);
    // cpu0 runs the latest deadline, cpu1 an earlier one; c beats only cpu0's vCPU.
    set_deadline(&mut h, a, base + 30 * MS);
    set_deadline(&mut h, b, base + 10 * MS);
    block_before_insert(&mut h, c);
    h.insert(c, cpu(1));
    set_deadline(&mut h, c, base + 20 * MS);
    h.wake(c);
    assert_eq!(h.take_tickles(), vec![cpu(0)]);
}

#[test]
fn wake_tickles_nobody_when_every_running_vcpu_wins() {
    let mut h = Harness::new(1, &[2]);
    let (a, b) = (vcpu(1, 0), vcpu(1, 1));
    h.insert(a, cpu(0));
    h.schedule(cpu(0));
    block_before_insert(&mut h, b);
    h.insert(b, cpu(0));
    // Equal deadlines: the running one is not strictly beaten.
    h.wake(b);
    assert!(h.take_tickles().is_empty());
    assert_eq!(runq(&h), vec![b]);
}

#[test]
fn schedule_tie_goes_to_queued_vcpu() {
    let mut h = Harness::new(1, &[2]);
    let (a, b) = (vcpu(1, 0), vcpu(1, 1));
    h.insert(a, cpu(0));
    h.insert(b, cpu(0));
    assert_eq!(h.schedule(cpu(0)).next, Some(a));
    h.at(h.now.as_ns() + 1_000);
    // Same level and deadline: a keeps the pCPU only if strictly better, so b runs.
    let d = h.schedule(cpu(0));
    assert_eq!(d.next, Some(b));
    assert_eq!(d.reason, PickReason::Runq);
    assert_eq!(runq(&h), vec![a]);
    assert_eq!(h.rt.servers.srv(a).cur_budget_ns, 4 * MS - 1_000);
}

#[test]
fn schedule_reports_extratime_and_continue_reasons() {
    let mut h = Harness::new(1, &[1]);
    let a = vcpu(1, 0);
    let t = next_grid(&h, 10 * MS, 0);
    h.at(t);
    h.insert(a, cpu(0));
    let first = h.schedule(cpu(0));
    assert_eq!(
        (first.reason, first.next_time.as_ns()),
        (PickReason::Runq, 4 * MS)
    );
    h.at(t + 4 * MS);
    // Budget gone with extratime: level 1, full refill, and it keeps running alone.
    let second = h.schedule(cpu(0));
    assert_eq!(second.reason, PickReason::Continue);
    assert_eq!(second.credit_ns, Some(4 * MS));
    assert_eq!(h.rt.servers.srv(a).priority_level, 1);
}

#[test]
fn depleted_vcpu_returns_to_runq_at_replenishment_and_is_tickled() {
    let mut h = Harness::new(1, &[1]);
    let a = vcpu(1, 0);
    let t = next_grid(&h, 10 * MS, 0);
    h.at(t);
    h.insert(a, cpu(0));
    h.with(|s, ctx| s.set_vcpu_params(ctx, a, &params(10_000, 4_000, false)))
        .expect("valid");
    h.schedule(cpu(0));
    h.at(t + 4 * MS);
    assert_eq!(h.schedule(cpu(0)).next, None);
    assert_eq!(h.rt.servers.srv(a).queue, Queue::Depleted);
    assert_eq!(h.rt.next_timer(), Some(STime::from_ns(t + 10 * MS)));
    h.at(t + 10 * MS);
    h.fire_timer();
    assert_eq!(runq(&h), vec![a]);
    assert_eq!(h.take_tickles(), vec![cpu(0)]);
    assert!(!h.rt.servers.srv(a).depleted);
    assert_eq!(h.rt.next_timer(), Some(STime::from_ns(t + 20 * MS)));
}

#[test]
fn replenishment_tickles_in_reverse_expiry_order() {
    let mut h = Harness::new(2, &[2]);
    let (x, y) = (vcpu(1, 0), vcpu(1, 1));
    let t = next_grid(&h, 10 * MS, 0);
    h.at(t);
    h.insert(x, cpu(0));
    h.insert(y, cpu(0));
    for v in [x, y] {
        h.with(|s, ctx| s.set_vcpu_params(ctx, v, &params(10_000, 4_000, false)))
            .expect("valid");
    }
    // The runq head x goes to the first pCPU that schedules.
    assert_eq!(h.schedule(cpu(0)).next, Some(x));
    assert_eq!(h.schedule(cpu(1)).next, Some(y));
    h.at(t + 4 * MS);
    h.schedule(cpu(0));
    h.schedule(cpu(1));
    assert_eq!(replq(&h), vec![x, y]);
    // context_saved tickled for the depleted vCPUs too (Xen does); deliver those.
    h.settle();
    assert!(h.rt.tickled.is_empty());
    h.at(t + 10 * MS);
    h.fire_timer();
    // The temporary list reverses [x, y]: y (last on cpu1) is tickled for first, then x
    // (cpu0); in expiry order it would be cpu0 first.
    assert_eq!(h.take_tickles(), vec![cpu(1), cpu(0)]);
}

#[test]
fn extratime_set_on_depleted_vcpu_waits_for_replenishment() {
    // Xen 4.17: the flag changes and nothing else; the refill came in later Xen.
    let mut h = Harness::new(1, &[1]);
    let a = vcpu(1, 0);
    let t = next_grid(&h, 10 * MS, 0);
    h.at(t);
    h.insert(a, cpu(0));
    h.with(|s, ctx| s.set_vcpu_params(ctx, a, &params(10_000, 4_000, false)))
        .expect("valid");
    h.schedule(cpu(0));
    h.at(t + 4 * MS);
    h.schedule(cpu(0));
    h.with(|s, ctx| s.set_vcpu_params(ctx, a, &params(10_000, 4_000, true)))
        .expect("valid");
    let s = h.rt.servers.srv(a);
    assert_eq!(
        (s.queue, s.cur_budget_ns, s.priority_level),
        (Queue::Depleted, 0, 0)
    );
    assert_eq!(h.schedule(cpu(0)).next, None);
    assert!(h.violations().is_empty());
}

#[test]
fn check_invariants_catches_unsorted_runq_and_budget_in_depletedq() {
    let mut h = Harness::new(1, &[3]);
    let (a, b, c) = (vcpu(1, 0), vcpu(1, 1), vcpu(1, 2));
    for v in [a, b, c] {
        h.insert(v, cpu(0));
    }
    assert!(h.violations().is_empty());
    let base = deadline(&h, a);
    set_deadline(&mut h, a, base + 10 * MS);
    h.rt.q_remove(c);
    h.rt.depletedq_push(c);
    let names: Vec<&str> = h.violations().iter().map(|v| v.invariant).collect();
    assert!(names.contains(&"rtds.runq_sorted"), "{names:?}");
    assert!(names.contains(&"rtds.depletedq_empty_budget"), "{names:?}");
}

#[test]
fn check_invariants_catches_blocked_vcpu_left_on_replq() {
    let mut h = Harness::new(1, &[1]);
    let a = vcpu(1, 0);
    h.insert(a, cpu(0));
    h.rt.q_remove(a);
    h.hv.domains.vcpu_mut(a).expect("vcpu").pause_flags |= VPF_BLOCKED;
    let names: Vec<&str> = h.violations().iter().map(|v| v.invariant).collect();
    assert_eq!(names, vec!["rtds.replq_exactly_runnable"]);
}
