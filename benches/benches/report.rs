//! The cost of the timeline outputs on `scenarios/credit2-overload.toml` (8 pCPUs, 24 busy
//! vCPUs, 2 s of virtual time): a run without and with the timeline capture (the capture's
//! overhead is their difference), then, on the captured run, the Perfetto JSON writer and
//! the HTML report renderer on their own.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use xensim::app::{self, RunArgs, RunReport};
use xensim::scenario::Scenario;

fn scenario_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/credit2-overload.toml")
}

fn load() -> Scenario {
    match app::load(&scenario_path(), None, false) {
        Ok(scenario) => scenario,
        Err(error) => panic!("bundled scenario loads: {error}"),
    }
}

fn run(scenario: &Scenario, timeline: bool) -> RunReport {
    let args = RunArgs {
        timeline,
        ..RunArgs::default()
    };
    match app::run_scenario(scenario.clone(), &args) {
        Ok(report) => report,
        Err(error) => panic!("bundled scenario runs: {error}"),
    }
}

fn report(c: &mut Criterion) {
    let scenario = load();
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.bench_function("run/no_timeline", |b| {
        b.iter(|| black_box(run(&scenario, false)))
    });
    group.bench_function("run/timeline", |b| {
        b.iter(|| black_box(run(&scenario, true)))
    });
    let captured = run(&scenario, true);
    group.bench_function("perfetto_write", |b| {
        b.iter(|| black_box(captured.perfetto_json()))
    });
    group.bench_function("html_render", |b| b.iter(|| black_box(captured.html())));
    group.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);
