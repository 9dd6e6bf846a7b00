//! Machine memory at scale (spec `memory-iommu-migration.md` §1.7, `scenario.md`
//! `mem-1t-100`):
//! - `mem_1t_100`: the checked-in `scenarios/bench/mem-1t-100.toml` (as the generator
//!   `xensim::bench::scenarios` renders it): a 1 TiB host (2 sockets × 16 cores, credit2)
//!   with 100 PVH guests of 2–16 GiB (884 GiB in all, 1 GiB superpages), each running a
//!   bursty workload over a 1 GiB working set, boots, builds every guest and runs 1 s of
//!   virtual time past the last build; the process's peak RSS (`VmHWM`) is printed after
//!   the first run, before the other benches allocate anything;
//! - `p2m_lookup`: `p2m_get_entry` at random GFNs of a 16 GiB guest on that host, backed
//!   by 1 GiB leaves, and of the same guest after 1 GiB of it was ballooned out page by
//!   page (4 KiB and 2 MiB leaves around the hole); one element = one lookup;
//! - `balloon_out_1g`: `decrease_reservation` of 1 GiB in 4 KiB pages (262144 calls,
//!   each splitting, unmapping, updating the M2P and merging buddies); one element = one
//!   page.

// The one-off wall-clock print of the 1 TiB run is a bench measurement, not a run input.
#![allow(clippy::disallowed_types)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hypervisor_model::ids::{DomId, Gfn};
use hypervisor_model::memory::heap::AllocFlags;
use hypervisor_model::memory::{Memory, PAGE_ORDER_1G};
use xensim::record::Recorder;
use xensim::run::RunOptions;
use xensim::scenario::{self, LoadOptions, Scenario};

/// Pages per GiB.
const GIB_PAGES: u64 = 1 << 18;
/// Lookups per measured iteration.
const LOOKUPS: u64 = 1024;

/// `scenarios/bench/mem-1t-100.toml`, from the generator.
fn mem_1t_100_text() -> String {
    let spec = xensim::bench::scenarios::all()
        .into_iter()
        .find(|s| s.name == "mem-1t-100");
    match spec {
        Some(spec) => xensim::bench::scenarios::render(&spec),
        None => panic!("the generator has mem-1t-100"),
    }
}

fn load() -> Scenario {
    let text = mem_1t_100_text();
    match scenario::load_str(
        "mem-1t-100.toml",
        &text,
        Path::new("."),
        &LoadOptions::default(),
    ) {
        Ok(scenario) => scenario,
        Err(error) => panic!("mem-1t-100 is valid: {}", error.render()),
    }
}

/// Boots the host and runs it; returns (events, guests built, GiB owned by guests).
fn run_mem_1t_100(scenario: &Scenario) -> (u64, usize, u64) {
    let opts = RunOptions::default();
    let outcome = match xensim::run::run(scenario, &opts, Recorder::new()) {
        Ok(outcome) => outcome,
        Err(error) => panic!("mem-1t-100 runs: {error}"),
    };
    let hv = &outcome.hosts[0].hv;
    let built = hv.domains().filter(|d| d.id != DomId::DOM0).count();
    let guest_pages: u64 = hv
        .domains()
        .filter(|d| d.id != DomId::DOM0)
        .map(|d| d.tot_pages)
        .sum();
    (outcome.event_count, built, guest_pages / GIB_PAGES)
}

/// `VmHWM` of this process, KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mem_1t_100(c: &mut Criterion) {
    let scenario = load();
    let started = std::time::Instant::now();
    let (events, built, guest_gib) = run_mem_1t_100(&scenario);
    println!(
        "mem-1t-100: {built} guests built, {guest_gib} GiB owned by guests, {events} events \
         in {:.2} s wall; peak RSS (VmHWM) {} MiB",
        started.elapsed().as_secs_f64(),
        peak_rss_kib() / 1024
    );
    assert_eq!(built, 100, "every guest is built");
    let mut group = c.benchmark_group("memory");
    group.sample_size(10);
    group.bench_function("mem_1t_100_boot_and_run", |b| {
        b.iter(|| black_box(run_mem_1t_100(&scenario)));
    });
    group.finish();
}

fn dom() -> DomId {
    DomId::new(1).unwrap_or(DomId::DOM0)
}

/// A 1 TiB host (two 512 GiB nodes) with d1 owning 16 GiB in 1 GiB extents.
fn host_with_16g_guest() -> Memory {
    let node_pages = 512 * GIB_PAGES;
    let mut mem = Memory::new(&[node_pages, node_pages], 8 * GIB_PAGES + 2560);
    mem.add_domain(dom());
    let _ = mem.set_max_pages(dom(), 16 * GIB_PAGES);
    for index in 0..16 {
        let gfn = Gfn::new(index * GIB_PAGES);
        let populated = mem.populate(dom(), gfn, PAGE_ORDER_1G, AllocFlags::default());
        assert!(populated.is_ok(), "16 GiB fits");
    }
    mem
}

/// Balloons 1 GiB out of the guest's second GiB, page by page.
fn balloon_out_1g(mem: &mut Memory) -> u64 {
    let mut freed = 0;
    for page in 0..GIB_PAGES {
        let gfn = Gfn::new(GIB_PAGES + page);
        freed += mem.decrease(dom(), gfn, 0).unwrap_or(0);
    }
    freed
}

/// GFNs spread over the guest's 16 GiB (a fixed xorshift: the bench's own inputs).
fn probe_gfns() -> Vec<Gfn> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..LOOKUPS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Gfn::new(state % (16 * GIB_PAGES))
        })
        .collect()
}

fn p2m_lookup(c: &mut Criterion) {
    let superpages = host_with_16g_guest();
    let mut ballooned = host_with_16g_guest();
    assert_eq!(balloon_out_1g(&mut ballooned), GIB_PAGES);
    let gfns = probe_gfns();
    let mut group = c.benchmark_group("memory");
    group.throughput(Throughput::Elements(LOOKUPS));
    for (name, mem) in [
        ("p2m_lookup_1g_leaves", &superpages),
        ("p2m_lookup_after_balloon", &ballooned),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for gfn in &gfns {
                    black_box(mem.p2m_lookup(dom(), *gfn));
                }
            });
        });
    }
    group.finish();
}

fn balloon(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory");
    group.sample_size(10);
    group.throughput(Throughput::Elements(GIB_PAGES));
    group.bench_function("balloon_out_1g_4k_pages", |b| {
        b.iter_batched(
            host_with_16g_guest,
            |mut mem| black_box(balloon_out_1g(&mut mem)),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, mem_1t_100, p2m_lookup, balloon);
criterion_main!(benches);
