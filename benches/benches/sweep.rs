//! Sweep throughput: 16 seeds of the bundled credit2-overload scenario (24 busy vCPUs on 8
//! pCPUs, 2 s of virtual time) through `xensim::sweep::run_seeds` at `-j 1` and `-j 2`. An
//! element is one seed run to its end and turned into its result line; the target
//! is `-j 2` ≥ 1.8× `-j 1` on 2 idle cores (each run stays single-threaded).

use std::num::NonZeroUsize;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xensim::sweep::{run_seeds, RunnerOptions};

/// Seeds per measured sweep.
const SEED_COUNT: u64 = 16;

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/credit2-overload.toml");
    let scenario = xensim::app::load(&path, None, false).expect("the bundled scenario loads");
    let seeds: Vec<u64> = (1..=SEED_COUNT).collect();
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SEED_COUNT));
    for jobs in [1usize, 2] {
        let runner = RunnerOptions {
            jobs: NonZeroUsize::new(jobs).expect("non-zero"),
            check: false,
        };
        group.bench_with_input(
            BenchmarkId::new("credit2-overload", jobs),
            &runner,
            |b, r| {
                b.iter(|| run_seeds(&scenario, &seeds, *r, &mut |_| {}));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
