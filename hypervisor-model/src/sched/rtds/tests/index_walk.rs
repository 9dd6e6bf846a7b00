//! A seeded walk through the harness over more pCPUs than the running index skips before
//! it falls back to rt.c's walk, and more vCPUs than one `replq` block holds, with narrow
//! hard affinities and servers without extratime. Debug builds compare every tickle's
//! indexed answer with the walk and every `replq`/`runq` place with the list walk; the
//! invariant checker (running index and key copies included) runs after every step.

use alloc::vec::Vec;

use super::harness::Harness;
use super::params;
use crate::cpumask::CpuMask;
use crate::domain::vcpu::VPF_BLOCKED;
use crate::ids::VcpuRef;
use crate::sched::Scheduler;
use crate::testing::ids::{cpu, vcpu};
use crate::time::STime;

/// The walk's seed (any value; a failure names it).
const SEED: u64 = 0x7274_6473;
/// pCPUs: more than `VICTIM_VISITS_MAX` (64), so narrow affinities can force the fallback.
const CPU_COUNT: u32 = 80;
/// vCPUs per guest: the three guests hold three times what a `replq` block (64) holds.
const GUEST_VCPUS: u32 = 64;
/// Guest 2's vCPUs may only run on the top 20 pCPUs.
const PINNED_FIRST_CPU: u32 = 60;
/// Steps of the walk.
const STEPS: u32 = 4_000;
/// A millisecond, ns.
const MS: i64 = 1_000_000;
/// Most virtual time one step advances, ns.
const STEP_NS_MAX: u32 = 400_000;

fn next(state: &mut u64) -> u32 {
    u32::try_from(crate::testing::lcg_step(state) >> 33).expect("31 bits")
}

fn setup() -> (Harness, Vec<VcpuRef>) {
    let mut h = Harness::new(CPU_COUNT, &[GUEST_VCPUS; 3]);
    let all: Vec<VcpuRef> = (1..=3u16)
        .flat_map(|d| (0..GUEST_VCPUS).map(move |i| vcpu(d, i)))
        .collect();
    let mut pinned = CpuMask::empty(CPU_COUNT);
    for c in PINNED_FIRST_CPU..CPU_COUNT {
        pinned.set(cpu(c));
    }
    for (index, v) in all.iter().enumerate() {
        let spread = u32::try_from(index).expect("few vCPUs") % CPU_COUNT;
        if v.dom.raw() == 2 {
            h.hv.domains.vcpu_mut(*v).expect("vcpu").hard_affinity = pinned.clone();
        }
        h.insert(*v, cpu(spread));
        if v.dom.raw() == 3 {
            let no_extratime = params(5_000, 1_000, false);
            let set = h.with(|s, ctx| s.set_vcpu_params(ctx, *v, &no_extratime));
            assert_eq!(set, Ok(()));
        }
    }
    for c in 0..CPU_COUNT {
        h.schedule(cpu(c));
    }
    h.settle();
    (h, all)
}

#[test]
fn seeded_walk_keeps_running_index_and_queues_equal_to_xen_walks() {
    let (mut h, all) = setup();
    let mut state = SEED;
    for step in 0..STEPS {
        let r = next(&mut state);
        let c = cpu(r % CPU_COUNT);
        match (r / CPU_COUNT) % 5 {
            0 => {
                h.at(h.now.as_ns() + i64::from(r % STEP_NS_MAX));
                if h.rt.next_timer().is_some_and(|t| t <= h.now) {
                    h.fire_timer();
                }
            }
            1 => {
                h.schedule(c);
            }
            2 => {
                if let Some(v) = h.curr[c.index()] {
                    h.block(v);
                }
            }
            3 => {
                let v = all[usize::try_from(r).expect("31 bits") % all.len()];
                if h.hv.domains.vcpu(v).is_some_and(|x| x.is_blocked()) {
                    h.wake(v);
                }
            }
            _ => h.settle(),
        }
        let broken = h.violations();
        assert!(broken.is_empty(), "seed {SEED:#x} step {step}: {broken:?}");
    }
}

#[test]
fn wake_pinned_vcpu_preempts_lowest_priority_pcpu_of_its_affinity() {
    let mut h = Harness::new(4, &[5]);
    let running = [vcpu(1, 0), vcpu(1, 1), vcpu(1, 2), vcpu(1, 3)];
    let pinned = vcpu(1, 4);
    for (index, v) in running.iter().enumerate() {
        h.insert(*v, cpu(u32::try_from(index).expect("4 vCPUs")));
    }
    for c in 0..4 {
        h.schedule(cpu(c));
    }
    h.settle();
    let base = h.rt.servers.srv(running[0]).cur_deadline.as_ns();
    // cpu0 runs the latest deadline (the index's top), then cpu1, cpu2, cpu3 (deadlines
    // stay multiples of the 10 ms default period).
    for (c, later_ms) in [(0usize, 50), (1, 40), (2, 30), (3, 20)] {
        let v = h.curr[c].expect("every pCPU busy");
        h.rt.servers.srv_mut(v).cur_deadline = STime::from_ns(base + later_ms * MS);
        h.rt.rekey(v);
    }
    h.hv.domains.vcpu_mut(pinned).expect("vcpu").pause_flags |= VPF_BLOCKED;
    let mut cpus_1_2 = CpuMask::empty(4);
    cpus_1_2.set(cpu(1));
    cpus_1_2.set(cpu(2));
    h.hv.domains.vcpu_mut(pinned).expect("vcpu").hard_affinity = cpus_1_2;
    h.insert(pinned, cpu(2));
    h.rt.servers.srv_mut(pinned).cur_deadline = STime::from_ns(base + 10 * MS);
    h.take_tickles();
    h.wake(pinned);
    // cpu0 is outside the affinity; of cpu2 (30 ms) and cpu1 (40 ms), cpu1 runs lower.
    assert_eq!(h.take_tickles(), alloc::vec![cpu(1)]);
    assert!(h.violations().is_empty());
}
