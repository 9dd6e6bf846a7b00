//! Engine throughput: the null scheduler at 64 pCPUs with 64 single-vCPU domains (dom0 and
//! 63 guests) running bursty block/wake workloads (`bench-64x64-null`'s shape, shorter),
//! next to a bare `BinaryHeap` push+pop loop with the same number of pending events and the
//! same number of operations, measured in the same bench run.
//!
//! Both report elements per second, where an element is one queue event (one pop and the
//! pushes it causes) for the engine, and one pop+push pair for the heap. Their ratio is the
//! engine's cost over the bare queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xensim::record::Recorder;
use xensim::run::{self, RunOptions};
use xensim::scenario::{self, LoadOptions, Scenario};

/// Virtual length of one engine run.
const RUN_DURATION: &str = "200ms";
/// Guests besides dom0 (64 pCPUs, one vCPU each).
const GUEST_COUNT: usize = 63;

fn scenario_text() -> String {
    let mut text = format!(
        "[sim]\nseed = 1\nduration = \"{RUN_DURATION}\"\n\n\
         [host.h0]\ntopology = {{ sockets = 4, cores_per_socket = 16, threads_per_core = 1 }}\n\
         memory = \"256GiB\"\nscheduler = \"null\"\n"
    );
    for index in 0..GUEST_COUNT {
        text.push_str(&format!(
            "\n[[domain]]\nname = \"g{index:04}\"\nxl = \"\"\"\nname = \"g{index:04}\"\n\
             type = \"pvh\"\nmemory = 2048\nvcpus = 1\n\"\"\"\n\
             workload = {{ kind = \"bursty\", service = \"exp:100us\", think = \"exp:900us\" }}\n"
        ));
    }
    text
}

fn load() -> Scenario {
    let text = scenario_text();
    let opts = LoadOptions::default();
    match scenario::load_str("bench-null-64.toml", &text, Path::new("."), &opts) {
        Ok(scenario) => scenario,
        Err(error) => panic!("bench scenario is valid: {}", error.render()),
    }
}

fn engine_events(scenario: &Scenario) -> (u64, u64) {
    let outcome = match run::run(scenario, &RunOptions::default(), Recorder::new()) {
        Ok(outcome) => outcome,
        Err(error) => panic!("bench scenario runs: {error}"),
    };
    (outcome.event_count, outcome.record_count)
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
    let (events, records) = engine_events(&scenario);
    eprintln!("engine run: {events} queue events, {records} trace records per run");
    let mut group = c.benchmark_group("engine-null-64x64");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("xensim-run", |b| {
        b.iter(|| black_box(engine_events(black_box(&scenario))))
    });
    // One pending timer-like event per pCPU plus one guest event per vCPU.
    let pending = 128;
    group.bench_function("binaryheap-push-pop", |b| {
        b.iter(|| black_box(heap_loop(pending, events)))
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
