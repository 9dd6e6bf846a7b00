//! Behaviour tests of credit2 through the whole core (`Hypervisor` + `FakePlatform`):
//! weighted shares, caps, yield, ratelimit, soft affinity, tickles, and multi-runqueue
//! hosts, with every invariant checked after each event by `advance_to`.

extern crate std;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::event::CoreInput;
use crate::hypervisor::boot::{BootConfig, CpuTopo};
use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, PcpuId, PoolId, VcpuRef};
use crate::sched::params::{DomParams, SchedError};
use crate::sched::{PickReason, SchedKind};
use crate::testing::ids::{cpu, dom, vcpu};
use crate::testing::{small_host, FakePlatform};
use crate::time::{STime, Span};
use crate::toolstack::config::{AffinityCfg, DomainConfig};
use crate::toolstack::ops::{JobId, ToolstackOp};
use crate::trace::TraceEvent;

fn boot_config(config: BootConfig) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(config, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn boot(nr_cpus: u32) -> (Hypervisor, FakePlatform) {
    boot_config(small_host(nr_cpus, SchedKind::Credit2))
}

/// A host of `sockets` × `cores` single-thread pCPUs.
fn boot_sockets(sockets: u32, cores: u32) -> (Hypervisor, FakePlatform) {
    let mut config = small_host(sockets * cores, SchedKind::Credit2);
    config.host.cpus = (0..sockets * cores)
        .map(|n| CpuTopo {
            core: n % cores,
            socket: n / cores,
            node: 0,
        })
        .collect();
    config.host.cores_per_socket = cores;
    boot_config(config)
}

fn guest(name: &str, vcpus: u32, weight: u32, cpus: AffinityCfg) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vcpus = vcpus;
    config.max_vcpus = vcpus;
    config.memory_kib = 64 * 1024;
    config.max_memory_kib = 64 * 1024;
    config.weight = weight;
    config.cpus = cpus;
    config
}

fn only(nr_cpus: u32, n: u32) -> AffinityCfg {
    AffinityCfg::Same(CpuMask::single(nr_cpus, cpu(n)))
}

fn create(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, config: DomainConfig) {
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0; 16],
        paused: false,
    };
    let input = CoreInput::Toolstack {
        job: JobId(job),
        op,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

fn run_ns(hv: &Hypervisor, v: VcpuRef, now: STime) -> i64 {
    let d = hv.domain(v.dom).expect("domain exists");
    d.vcpus[v.vcpu.raw() as usize].running_ns_at(now)
}

fn advance(hv: &mut Hypervisor, p: &mut FakePlatform, span: Span) -> STime {
    let end = p.now.after(span);
    p.advance_to(hv, end);
    end
}

fn set_dom_params(
    hv: &mut Hypervisor,
    p: &mut FakePlatform,
    d: DomId,
    params: DomParams,
) -> Result<(), SchedError> {
    hv.with_sched(PoolId(0), p, |s, ctx| s.set_dom_params(ctx, d, &params))
}

fn decisions_on(p: &FakePlatform, pcpu: PcpuId) -> Vec<(Option<VcpuRef>, PickReason, Span)> {
    p.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Schedule {
                pcpu: at,
                next,
                reason,
                next_time,
                ..
            } if *at == pcpu => Some((*next, *reason, *next_time)),
            _ => None,
        })
        .collect()
}

#[test]
fn boot_runs_dom0_and_prints_runqueue_lines() {
    let (hv, _p) = boot(2);
    assert_eq!(hv.running_on(cpu(0)), Some(vcpu(0, 0)));
    let log = hv.console().read();
    assert!(log.contains("(XEN) Using scheduler: SMP Credit Scheduler rev2 (credit2)\n"));
    assert!(log.contains("(XEN) Adding cpu 1 to runqueue 0\n"));
}

#[test]
fn weighted_busy_vcpus_on_one_pcpu_get_shares_in_weight_order() {
    // Three always-busy guests of weights 256, 512 and 1024 pinned to pCPU 1, for 3 s.
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("w256", 1, 256, only(2, 1)));
    create(&mut hv, &mut p, 2, guest("w512", 1, 512, only(2, 1)));
    create(&mut hv, &mut p, 3, guest("w1024", 1, 1024, only(2, 1)));
    let start = p.now;
    let before: Vec<i64> = (1..=3).map(|d| run_ns(&hv, vcpu(d, 0), start)).collect();
    let end = advance(&mut hv, &mut p, Span::from_ms(3_000));
    let ran: Vec<i64> = (1..=3)
        .map(|d| run_ns(&hv, vcpu(d, 0), end) - before[usize::from(d) - 1])
        .collect();
    let total: i64 = ran.iter().sum();
    let permille: Vec<i64> = ran.iter().map(|r| r * 1000 / total).collect();
    std::println!("credit2 shares 256:512:1024 = {permille:?} per mille (ideal 143:286:571)");
    assert!(ran[0] < ran[1], "{permille:?}");
    assert!(ran[1] < ran[2], "{permille:?}");
}

#[test]
fn cap_50_on_idle_pcpu_gives_half_the_pcpu() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("capped", 1, 256, only(2, 1)));
    let cap = DomParams::Credit2 { weight: 0, cap: 50 };
    assert_eq!(set_dom_params(&mut hv, &mut p, dom(1), cap), Ok(()));
    // Let the first period settle, then measure one second.
    advance(&mut hv, &mut p, Span::from_ms(20));
    let start = p.now;
    let before = run_ns(&hv, vcpu(1, 0), start);
    let end = advance(&mut hv, &mut p, Span::from_ms(1_000));
    let permille = (run_ns(&hv, vcpu(1, 0), end) - before) * 1000 / 1_000_000_000;
    std::println!("credit2 cap 50 share = {permille} per mille");
    assert!((490..=510).contains(&permille), "{permille}");
}

#[test]
fn cap_removal_unparks_and_runs_fully() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("capped", 2, 256, only(2, 1)));
    let cap = DomParams::Credit2 { weight: 0, cap: 20 };
    assert_eq!(set_dom_params(&mut hv, &mut p, dom(1), cap), Ok(()));
    advance(&mut hv, &mut p, Span::from_ms(55));
    let uncap = DomParams::Credit2 { weight: 0, cap: 0 };
    assert_eq!(set_dom_params(&mut hv, &mut p, dom(1), uncap), Ok(()));
    let start = p.now;
    let before = run_ns(&hv, vcpu(1, 0), start) + run_ns(&hv, vcpu(1, 1), start);
    let end = advance(&mut hv, &mut p, Span::from_ms(100));
    let after = run_ns(&hv, vcpu(1, 0), end) + run_ns(&hv, vcpu(1, 1), end);
    assert_eq!(after - before, 100_000_000);
}

#[test]
fn yield_hands_pcpu_to_waiting_vcpu() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("a", 1, 256, only(2, 1)));
    create(&mut hv, &mut p, 2, guest("b", 1, 256, only(2, 1)));
    advance(&mut hv, &mut p, Span::from_ms(5));
    let running = hv.running_on(cpu(1)).expect("a guest runs on pCPU 1");
    let other = if running == vcpu(1, 0) {
        vcpu(2, 0)
    } else {
        vcpu(1, 0)
    };
    assert_eq!(
        hv.handle(&CoreInput::VcpuYield { vcpu: running }, &mut p),
        Ok(())
    );
    assert_eq!(hv.running_on(cpu(1)), Some(other));
    let last = decisions_on(&p, cpu(1)).pop().expect("a decision");
    assert_eq!(last.1, PickReason::Yield);
}

#[test]
fn ratelimit_keeps_running_vcpu_until_ratelimit_expires() {
    // b wakes 300 µs after a started running; a softirq then keeps a (ratelimit) for the
    // remaining 700 µs of the default 1 ms ratelimit.
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("a", 1, 256, only(2, 1)));
    create(&mut hv, &mut p, 2, guest("b", 1, 256, only(2, 1)));
    advance(&mut hv, &mut p, Span::from_ms(5));
    let a = hv.running_on(cpu(1)).expect("a guest runs");
    let b = if a == vcpu(1, 0) {
        vcpu(2, 0)
    } else {
        vcpu(1, 0)
    };
    // Block a and let b run, then block b so a runs alone from a known instant.
    assert_eq!(hv.handle(&CoreInput::VcpuBlock { vcpu: a }, &mut p), Ok(()));
    assert_eq!(hv.handle(&CoreInput::VcpuBlock { vcpu: b }, &mut p), Ok(()));
    assert_eq!(hv.handle(&CoreInput::VcpuWake { vcpu: a }, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert_eq!(hv.running_on(cpu(1)), Some(a));
    let started = p.now;
    p.inject(
        started.after(Span::from_us(300)),
        CoreInput::VcpuWake { vcpu: b },
    );
    p.inject(
        started.after(Span::from_us(300)),
        CoreInput::Softirq { pcpu: cpu(1) },
    );
    advance(&mut hv, &mut p, Span::from_us(300));
    assert_eq!(hv.running_on(cpu(1)), Some(a));
    let last = decisions_on(&p, cpu(1)).pop().expect("a decision");
    assert_eq!(last, (Some(a), PickReason::Ratelimit, Span::from_us(700)));
}

#[test]
fn soft_affinity_places_vcpu_on_idle_preferred_pcpu() {
    let (mut hv, mut p) = boot(4);
    let mut config = guest("soft", 1, 256, AffinityCfg::All);
    config.cpus_soft = AffinityCfg::Same(CpuMask::single(4, cpu(3)));
    create(&mut hv, &mut p, 1, config);
    advance(&mut hv, &mut p, Span::from_ms(1));
    assert_eq!(hv.running_on(cpu(3)), Some(vcpu(1, 0)));
}

#[test]
fn wake_tickles_idle_pcpu() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("a", 1, 256, only(2, 1)));
    assert_eq!(
        hv.handle(&CoreInput::VcpuBlock { vcpu: vcpu(1, 0) }, &mut p),
        Ok(())
    );
    assert_eq!(hv.running_on(cpu(1)), None);
    p.events.clear();
    assert_eq!(
        hv.handle(&CoreInput::VcpuWake { vcpu: vcpu(1, 0) }, &mut p),
        Ok(())
    );
    assert!(p.events.contains(&TraceEvent::Tickle { pcpu: cpu(1) }));
    p.run_until_idle(&mut hv);
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
}

#[test]
fn two_socket_host_with_busy_vcpus_keeps_invariants_and_uses_every_pcpu() {
    // 2 sockets × 2 cores = two runqueues; 6 busy vCPUs exercise reset, balance_load
    // and migration for 2 s, with all invariants checked after every event.
    let (mut hv, mut p) = boot_sockets(2, 2);
    create(&mut hv, &mut p, 1, guest("a", 3, 256, AffinityCfg::All));
    create(&mut hv, &mut p, 2, guest("b", 3, 512, AffinityCfg::All));
    advance(&mut hv, &mut p, Span::from_ms(2_000));
    let busy = (0..4).filter(|n| hv.running_on(cpu(*n)).is_some()).count();
    assert_eq!(busy, 4);
}

/// Every 1.3 ms, blocks the guest vCPU running on pCPU `1 + round % 3` (if any) and
/// wakes it 700 µs later.
fn churn(hv: &mut Hypervisor, p: &mut FakePlatform, rounds: u32) {
    for round in 0..rounds {
        advance(hv, p, Span::from_us(1_300));
        if let Some(v) = hv.running_on(cpu(1 + round % 3)) {
            assert_eq!(hv.handle(&CoreInput::VcpuBlock { vcpu: v }, p), Ok(()));
            p.inject(
                p.now.after(Span::from_us(700)),
                CoreInput::VcpuWake { vcpu: v },
            );
        }
    }
}

#[test]
fn blocking_and_waking_guests_on_two_sockets_keep_invariants() {
    let (mut hv, mut p) = boot_sockets(2, 2);
    create(&mut hv, &mut p, 1, guest("a", 4, 256, AffinityCfg::All));
    create(&mut hv, &mut p, 2, guest("b", 2, 768, AffinityCfg::All));
    churn(&mut hv, &mut p, 300);
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn imbalanced_runqueues_move_a_vcpu_to_the_other_socket() {
    // Five busy vCPUs start on socket 0 (soft affinity there); then soft affinity is
    // dropped and balance_load must move one to the idle socket 1.
    let (mut hv, mut p) = boot_sockets(2, 2);
    let mut config = guest("a", 5, 256, AffinityCfg::All);
    config.cpus_soft = AffinityCfg::Same(CpuMask::single(4, cpu(1)));
    create(&mut hv, &mut p, 1, config);
    let op = ToolstackOp::VcpuAffinity {
        dom: dom(1),
        vcpu: None,
        hard: None,
        soft: Some(CpuMask::full(4)),
    };
    assert_eq!(
        hv.handle(&CoreInput::Toolstack { job: JobId(9), op }, &mut p),
        Ok(())
    );
    advance(&mut hv, &mut p, Span::from_ms(500));
    let on_socket1 = p
        .switches
        .iter()
        .filter(|(c, _, to)| c.raw() >= 2 && to.is_some_and(|v| v.dom == dom(1)))
        .count();
    assert!(on_socket1 > 0);
}
