//! Determinism of every bundled scenario: two runs in one process give the same hash, a run
//! on another thread (while another scenario runs concurrently) gives the same hash, the
//! hash matches `golden/<scenario>.hash`, and another seed gives another hash.
//!
//! To bless new golden hashes after an intended change: `XENSIM_BLESS=1 cargo test`, then
//! review the diff of `golden/*.hash` and say in the commit why decisions changed.

mod support;

#[cfg(test)]
mod tests {
    use super::support::{bundled_scenarios, repo_root};

    use std::path::Path;

    use xensim::app;

    fn hash(path: &Path, seed: Option<u64>) -> String {
        let scenario = app::load(path, seed, false)
            .unwrap_or_else(|e| panic!("{} loads: {e}", path.display()));
        let hash =
            app::hash_of(&scenario).unwrap_or_else(|e| panic!("{} runs: {e}", path.display()));
        hash.to_string()
    }

    fn stem(path: &Path) -> String {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn bundled_scenarios_exist() {
        assert!(
            bundled_scenarios().len() >= 3,
            "expected the bundled scenarios under scenarios/"
        );
    }

    #[test]
    fn every_scenario_gives_the_same_hash_twice() {
        for path in bundled_scenarios() {
            let first = hash(&path, None);
            let second = hash(&path, None);
            assert_eq!(
                first,
                second,
                "{} is not deterministic: xensim run {} --seed <its seed>",
                stem(&path),
                path.display()
            );
        }
    }

    #[test]
    fn every_scenario_matches_its_golden_hash() {
        for path in bundled_scenarios() {
            let got = hash(&path, None);
            let golden = repo_root()
                .join("golden")
                .join(format!("{}.hash", stem(&path)));
            if std::env::var_os("XENSIM_BLESS").is_some() {
                std::fs::write(&golden, format!("{got}\n")).expect("golden hash written");
                continue;
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
                panic!("missing {}: run with XENSIM_BLESS=1", golden.display())
            });
            assert_eq!(
                got,
                want.trim(),
                "{} changed its run hash: xensim run {} (bless with XENSIM_BLESS=1 if intended)",
                stem(&path),
                path.display()
            );
        }
    }

    #[test]
    fn hash_is_the_same_on_other_threads_running_concurrently() {
        let paths = bundled_scenarios();
        let here: Vec<String> = paths.iter().map(|p| hash(p, None)).collect();
        let threaded: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .iter()
                .map(|p| scope.spawn(move || hash(p, None)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("run thread finished"))
                .collect()
        });
        assert_eq!(here, threaded);
    }

    #[test]
    fn another_seed_changes_the_hash() {
        let quickstart = repo_root().join("scenarios/quickstart.toml");
        let seed_42 = hash(&quickstart, Some(42));
        let seed_43 = hash(&quickstart, Some(43));
        assert_ne!(seed_42, seed_43);
    }

    #[test]
    fn every_scenario_replays_from_its_core_inputs_alone() {
        for path in bundled_scenarios() {
            let scenario = app::load(&path, None, false).unwrap_or_else(|e| panic!("loads: {e}"));
            let opts = xensim::run::RunOptions::default();
            let recorder = xensim::record::Recorder::capturing();
            let outcome = xensim::run::run(&scenario, &opts, recorder).expect("runs");
            let report = xensim::replay_core::replay_core(&scenario, outcome.captured_records)
                .unwrap_or_else(|e| panic!("{} core replay: {e}", stem(&path)));
            assert_eq!(
                report.divergence,
                None,
                "{}: the core saw an unrecorded input",
                stem(&path)
            );
            assert_eq!(report.hash, outcome.hash);
        }
    }
}
