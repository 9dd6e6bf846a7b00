//! The reference performance scenarios under `scenarios/bench/` are exactly what
//! `xensim::bench::scenarios` generates from `specs/scenario.md` §11, and every checked-in one
//! loads. Regenerate after a change of the generator with
//! `XENSIM_BLESS=1 cargo test -p xensim --test bench_scenarios`.
//!
//! The scenarios are only loaded here, never run: they are big (`xensim bench` runs them in
//! release). The hand-written performance scenarios under `scenarios/perf/` load too, and
//! each runs its first [`PERF_RUN_NS`] to the hash pinned in `golden/perf-<name>.hash`
//! (bless with `XENSIM_BLESS=1`), so they stay runnable.

mod support;

#[cfg(test)]
mod tests {
    use super::support::repo_root;

    use xensim::bench::scenarios::{all, render};

    /// How much of a perf scenario the test runs, ns: io-64's 64 guests are up and their
    /// vbds and vifs connected by about 550 ms, so this leaves about 150 ms of I/O (tens of
    /// thousands of requests under io-64's load), little enough for a debug build.
    const PERF_RUN_NS: u64 = 700_000_000;

    fn perf_scenarios() -> Vec<std::path::PathBuf> {
        let dir = repo_root().join("scenarios").join("perf");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
        paths.sort();
        paths
    }

    #[test]
    fn checked_in_bench_scenarios_match_the_generator() {
        let dir = repo_root().join("scenarios").join("bench");
        let bless = std::env::var_os("XENSIM_BLESS").is_some();
        for spec in all() {
            let path = dir.join(format!("{}.toml", spec.name));
            let want = render(&spec);
            if bless {
                std::fs::create_dir_all(&dir).expect("create scenarios/bench");
                std::fs::write(&path, &want).expect("write bench scenario");
            }
            let got = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                got == want,
                "{} differs from the generator: XENSIM_BLESS=1 cargo test -p xensim --test \
                 bench_scenarios",
                path.display()
            );
        }
    }

    #[test]
    fn checked_in_bench_scenarios_load() {
        let dir = repo_root().join("scenarios").join("bench");
        for spec in &all() {
            let path = dir.join(format!("{}.toml", spec.name));
            let scenario = xensim::app::load(&path, None, false)
                .unwrap_or_else(|e| panic!("{} loads: {e}", path.display()));
            assert_eq!(scenario.sim.seed, 1);
        }
    }

    #[test]
    fn perf_scenarios_run_to_their_pinned_hashes() {
        let paths = perf_scenarios();
        // io-64 (heavy) and io-64-moderate.
        assert!(paths.len() >= 2, "scenarios/perf/: {paths:?}");
        let bless = std::env::var_os("XENSIM_BLESS").is_some();
        for path in paths {
            let mut scenario = xensim::app::load(&path, None, false)
                .unwrap_or_else(|e| panic!("{} loads: {e}", path.display()));
            scenario.sim.duration_ns = scenario.sim.duration_ns.min(PERF_RUN_NS);
            let got = xensim::app::hash_of(&scenario)
                .unwrap_or_else(|e| panic!("{} runs: {e}", path.display()))
                .to_string();
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            let golden = repo_root()
                .join("golden")
                .join(format!("perf-{}.hash", stem.unwrap_or_default()));
            if bless {
                std::fs::write(&golden, format!("{got}\n")).expect("golden hash written");
                continue;
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
                panic!("missing {}: run with XENSIM_BLESS=1", golden.display())
            });
            assert_eq!(
                got,
                want.trim(),
                "{} changed its run hash (bless with XENSIM_BLESS=1 if intended)",
                path.display()
            );
        }
    }
}
