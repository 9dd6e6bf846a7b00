//! The rtds invariant checker (spec `schedulers.md` §8, invariants 17–23), run after
//! every event in tests and under `--check`.
//!
//! Checked here:
//! - 17: `runq` is sorted by `(priority_level, cur_deadline)`; each entry has budget or
//!   extratime (Xen 4.17 queues a zero-budget server that got extratime while depleted).
//! - 18: `depletedq` entries have `cur_budget == 0` and are marked depleted.
//! - 19: `replq` holds each server at most once, and exactly the runnable or running
//!   vCPUs; every queued server has a replenishment event; the pool timer is the head's
//!   deadline by construction (`next_timer`).
//! - 20: a vCPU without extratime has run at most `budget` in its current period
//!   (measured by `account.rs`, up to the last scheduling event).
//! - 22, 23: deadlines are in the future of the last replenishment, multiples of the
//!   period while the period never changed.
//! - Queue tags match the queues; a running vCPU is on no queue and `RTDS_scheduled`;
//!   the delayed-add flag is only set while scheduled (context save is instantaneous).
//! - The running index (`running.rs`) mirrors the core: each recorded vCPU runs on its
//!   pCPU with the recorded key, each vCPU of the pool running on a pool pCPU is recorded,
//!   and exactly the busy untickled pCPUs are ordered by key.
//!
//! Not checked per event, on purpose:
//! - `replq` order by deadline: Xen sorts it with the level-aware comparison while levels
//!   of running servers change in place (see `queues.rs`), so no order holds at all times.
//! - 21 and 31 (no level-0 server waits while a pCPU idles or runs lower priority): Xen's
//!   `runq_tickle` tickles one pCPU per insertion and skips tickled ones, so two wakes
//!   before the softirq can leave such a wait; tests measure work conservation instead.

use alloc::format;
use alloc::vec::Vec;
use core::cmp::Reverse;

use super::server::{compare, Queue, Server};
use super::RtdsScheduler;
use crate::cpumask::CpuMask;
use crate::domain::DomainTable;
use crate::ids::{PcpuId, VcpuRef};
use crate::sched::Violation;

pub(super) fn check(
    s: &RtdsScheduler,
    domains: &DomainTable,
    pool_cpus: &CpuMask,
    out: &mut Vec<Violation>,
) {
    check_runq(s, out);
    check_depletedq(s, out);
    check_replq(s, out);
    check_running_index(s, domains, out);
    for (v, server) in s.servers.iter() {
        check_server(s, domains, v, server, out);
        check_server_indexed(s, domains, pool_cpus, v, server, out);
    }
}

fn push(out: &mut Vec<Violation>, invariant: &'static str, detail: alloc::string::String) {
    out.push(Violation { invariant, detail });
}

fn check_runq(s: &RtdsScheduler, out: &mut Vec<Violation>) {
    let runq: Vec<VcpuRef> = s.runq_iter().collect();
    for pair in runq.windows(2) {
        let (a, b) = (s.servers.get(pair[0]), s.servers.get(pair[1]));
        if let (Some(a), Some(b)) = (a, b) {
            if compare(a, b).is_lt() {
                push(
                    out,
                    "rtds.runq_sorted",
                    format!("{:?} before {:?}", pair[0], pair[1]),
                );
            }
        }
    }
    for (at, v) in &s.runq {
        match s.servers.get(*v) {
            None => push(out, "rtds.queued_server_exists", format!("runq {v:?}")),
            Some(x) if x.queue != Queue::Runq || x.runq_at != *at => {
                push(
                    out,
                    "rtds.queue_tag",
                    format!("{v:?} on runq tagged {:?}", x.queue),
                );
            }
            Some(x) if x.cur_budget_ns <= 0 && !x.extratime => {
                push(
                    out,
                    "rtds.runq_has_budget",
                    format!("{v:?}: {}", x.cur_budget_ns),
                );
            }
            Some(_) => {}
        }
    }
}

fn check_depletedq(s: &RtdsScheduler, out: &mut Vec<Violation>) {
    for (seq, v) in &s.depletedq {
        match s.servers.get(*v) {
            None => push(out, "rtds.queued_server_exists", format!("depletedq {v:?}")),
            Some(x) if x.queue != Queue::Depleted || x.runq_at.2 != seq.0 => {
                push(
                    out,
                    "rtds.queue_tag",
                    format!("{v:?} on depletedq tagged {:?}", x.queue),
                );
            }
            Some(x) if x.cur_budget_ns != 0 || !x.depleted => push(
                out,
                "rtds.depletedq_empty_budget",
                format!("{v:?}: budget {} depleted {}", x.cur_budget_ns, x.depleted),
            ),
            Some(_) => {}
        }
    }
}

fn check_replq(s: &RtdsScheduler, out: &mut Vec<Violation>) {
    let mut seen = alloc::collections::BTreeSet::new();
    for (key, v) in s.replq.iter_keyed() {
        if !seen.insert(v) {
            push(out, "rtds.replq_unique", format!("{v:?}"));
        }
        let server = s.servers.get(v);
        if !server.is_some_and(|x| x.on_replq && x.replq_block.is_some()) {
            push(out, "rtds.replq_tag", format!("{v:?} on replq untagged"));
        }
        if server.is_some_and(|x| x.key() != key) {
            push(out, "rtds.replq_key_copy", format!("{v:?} copied {key:?}"));
        }
    }
    if !s.replq.well_formed() {
        push(
            out,
            "rtds.replq_blocks",
            format!("{} entries", s.replq.len()),
        );
    }
    if seen.len() != s.replq.len() {
        push(out, "rtds.replq_len", format!("{} counted", s.replq.len()));
    }
}

fn check_server(
    s: &RtdsScheduler,
    domains: &DomainTable,
    v: VcpuRef,
    server: &Server,
    out: &mut Vec<Violation>,
) {
    let Some(vcpu) = domains.vcpu(v) else {
        push(out, "rtds.server_vcpu_exists", format!("{v:?}"));
        return;
    };
    let running = vcpu.running_on.is_some();
    let runnable = domains.runnable(v);
    let listed = match server.queue {
        Queue::None => true,
        Queue::Runq => s.runq.get(&server.runq_at) == Some(&v),
        Queue::Depleted => s.depletedq.get(&Reverse(server.runq_at.2)) == Some(&v),
    };
    if !listed {
        push(
            out,
            "rtds.queue_tag",
            format!("{v:?} tagged {:?}", server.queue),
        );
    }
    if server.on_replq != server.replq_block.is_some() {
        push(
            out,
            "rtds.replq_tag",
            format!("{v:?} tag {}", server.on_replq),
        );
    }
    if running && server.queue != Queue::None {
        push(out, "rtds.running_not_queued", format!("{v:?}"));
    }
    if running != server.scheduled {
        push(
            out,
            "rtds.scheduled_while_running",
            format!("{v:?} running {running}"),
        );
    }
    if server.delayed_runq_add && !server.scheduled {
        push(out, "rtds.delayed_add_only_mid_switch", format!("{v:?}"));
    }
    if server.on_replq != (runnable || running) {
        push(
            out,
            "rtds.replq_exactly_runnable",
            format!(
                "{v:?}: on replq {} runnable {runnable} running {running}",
                server.on_replq
            ),
        );
    }
    if server.queue != Queue::None && !server.on_replq {
        push(out, "rtds.queued_has_replenishment", format!("{v:?}"));
    }
    check_server_time(v, server, out);
}

fn check_server_time(v: VcpuRef, server: &Server, out: &mut Vec<Violation>) {
    if server.cur_deadline.as_ns() <= 0 {
        push(out, "rtds.deadline_set", format!("{v:?}"));
    }
    if !server.period_changed && server.cur_deadline.as_ns() % server.period_ns != 0 {
        push(
            out,
            "rtds.deadline_aligned",
            format!(
                "{v:?}: {:?} period {}",
                server.cur_deadline, server.period_ns
            ),
        );
    }
    if server.cur_budget_ns < 0 {
        push(
            out,
            "rtds.budget_nonnegative",
            format!("{v:?}: {}", server.cur_budget_ns),
        );
    }
    if let Some((served_ns, budget_ns)) = server.acct.served_checkable() {
        if !server.extratime && served_ns > budget_ns {
            push(
                out,
                "rtds.budget_not_exceeded",
                format!("{v:?}: ran {served_ns} ns of a {budget_ns} ns budget"),
            );
        }
    }
}

fn check_running_index(s: &RtdsScheduler, domains: &DomainTable, out: &mut Vec<Violation>) {
    let mut keyed_count = 0usize;
    for raw in 0..s.tickled.width() {
        let Some(cpu) = PcpuId::new(raw) else { break };
        let tickled = s.tickled.test(cpu);
        let (Some(v), Some(key)) = (s.running.vcpu_on(cpu), s.running.key_on(cpu)) else {
            if s.running.free().test(cpu) == tickled {
                push(
                    out,
                    "rtds.running_index",
                    format!("{cpu:?} idle, free while tickled {tickled}"),
                );
            }
            continue;
        };
        let runs_there = domains.vcpu(v).is_some_and(|x| x.running_on == Some(cpu));
        let server = s.servers.get(v);
        let back = server.is_some_and(|x| x.running_cpu == Some(cpu));
        let fresh = server.is_some_and(|x| x.key() == key);
        if !runs_there || !back || !fresh || s.running.free().test(cpu) {
            push(
                out,
                "rtds.running_index",
                format!("{v:?} on {cpu:?}: runs {runs_there} back {back} key {fresh}"),
            );
        }
        if s.running.keyed(cpu, key) == tickled {
            push(
                out,
                "rtds.running_index",
                format!("{cpu:?} keyed while tickled {tickled}"),
            );
        }
        keyed_count += usize::from(!tickled);
    }
    if keyed_count != s.running.keyed_count() {
        push(
            out,
            "rtds.running_index",
            format!("{} keyed, {keyed_count} expected", s.running.keyed_count()),
        );
    }
    if !s.running.well_formed() {
        push(
            out,
            "rtds.running_index",
            "key tree maxima out of date".into(),
        );
    }
}

fn check_server_indexed(
    s: &RtdsScheduler,
    domains: &DomainTable,
    pool_cpus: &CpuMask,
    v: VcpuRef,
    server: &Server,
    out: &mut Vec<Violation>,
) {
    let on = domains.vcpu(v).and_then(|x| x.running_on);
    if let Some(cpu) = on.filter(|c| pool_cpus.test(*c)) {
        if s.running.vcpu_on(cpu) != Some(v) {
            push(
                out,
                "rtds.running_index",
                format!("{v:?} runs on {cpu:?} unrecorded"),
            );
        }
    }
    if let Some(cpu) = server.running_cpu {
        if s.running.vcpu_on(cpu) != Some(v) {
            push(
                out,
                "rtds.running_index",
                format!("{v:?} points at {cpu:?}"),
            );
        }
    }
}
