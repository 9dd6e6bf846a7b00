//! Engine throughput: the null scheduler at 64 pCPUs with 64 single-vCPU domains (dom0 and
//! 63 guests) running bursty block/wake workloads (`bench-64x64-null`'s shape), measured in
//! steady state: every guest is built and running before the timed span starts. Next to it,
//! in the same bench run, a bare `BinaryHeap` push+pop loop with the same number of pending
//! events and the same number of operations.
//!
//! Both report elements per second: an element is one queue event for the engine (one pop,
//! its core inputs and events, and the pushes it causes) and one pop+push pair for the heap.
//! Their ratio is the engine's cost over the bare queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xensim::record::Recorder;
use xensim::run::{RunOptions, World};
use xensim::scenario::{self, LoadOptions, Scenario};

/// Guests besides dom0 (64 pCPUs, one vCPU each).
const GUEST_COUNT: usize = 63;
/// Every guest is built and running by then (256 MiB populate ≈ 80 ms of virtual time).
const WARMUP_NS: u64 = 300_000_000;
/// Virtual time measured per iteration.
const SPAN_NS: u64 = 100_000_000;

fn scenario_text() -> String {
    let mut text = String::from(
        "[sim]\nseed = 1\nduration = \"10s\"\n\n\
         [host.h0]\ntopology = { sockets = 4, cores_per_socket = 16, threads_per_core = 1 }\n\
         memory = \"256GiB\"\nscheduler = \"null\"\n",
    );
    for index in 0..GUEST_COUNT {
        text.push_str(&format!(
            "\n[[domain]]\nname = \"g{index:04}\"\nxl = \"\"\"\nname = \"g{index:04}\"\n\
             type = \"pvh\"\nmemory = 256\nvcpus = 1\n\"\"\"\n\
             workload = {{ kind = \"bursty\", service = \"exp:100us\", think = \"exp:900us\" }}\n"
        ));
    }
    text
}

fn load() -> Scenario {
    let text = scenario_text();
    match scenario::load_str(
        "bench-null-64.toml",
        &text,
        Path::new("."),
        &LoadOptions::default(),
    ) {
        Ok(scenario) => scenario,
        Err(error) => panic!("bench scenario is valid: {}", error.render()),
    }
}

/// A world booted and run to the end of the warm-up.
fn warmed_up(scenario: &Scenario) -> World<'_> {
    let mut world = match World::boot(scenario, &RunOptions::default(), Recorder::new()) {
        Ok(world) => world,
        Err(error) => panic!("bench scenario boots: {error}"),
    };
    if let Err(error) = world.advance(WARMUP_NS, false) {
        panic!("warm-up runs: {error}");
    }
    world
}

fn measured_span(world: &mut World<'_>) -> u64 {
    match world.advance(WARMUP_NS + SPAN_NS, false) {
        Ok((events, _)) => events,
        Err(error) => panic!("bench span runs: {error}"),
    }
}

/// Pops the earliest of `pending` events and pushes one a little later, `operations` times.
fn heap_loop(pending: u64, operations: u64) -> u64 {
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    for i in 0..pending {
        heap.push(Reverse((i * 997 % 10_000, seq)));
        seq += 1;
    }
    let mut last = 0;
    for _ in 0..operations {
        if let Some(Reverse((time, _))) = heap.pop() {
            last = time;
            heap.push(Reverse((time + 1 + (seq * 7919) % 10_000, seq)));
            seq += 1;
        }
    }
    last
}

fn engine(c: &mut Criterion) {
    let scenario = load();
    let mut probe = warmed_up(&scenario);
    let pending = u64::try_from(probe.pending_events()).unwrap_or(u64::MAX);
    let records_before = probe.record_count();
    let events = measured_span(&mut probe);
    let records = probe.record_count() - records_before;
    eprintln!("span: {events} queue events, {records} trace records, {pending} pending at start");
    let mut group = c.benchmark_group("engine-null-64x64");
    group.sample_size(20);
    group.throughput(Throughput::Elements(events));
    group.bench_function("xensim-steady-state", |b| {
        b.iter_batched(
            || warmed_up(&scenario),
            |mut w| black_box(measured_span(&mut w)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("binaryheap-push-pop", |b| {
        b.iter(|| black_box(heap_loop(pending, events)))
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
