//! The reference performance scenarios under `scenarios/bench/` are exactly what
//! `xensim::bench::scenarios` generates from `specs/scenario.md` §11, and every checked-in one
//! loads. Regenerate after a change of the generator with
//! `XENSIM_BLESS=1 cargo test -p xensim --test bench_scenarios`.
//!
//! The scenarios are only loaded here, never run: they are big (`xensim bench` runs them in
//! release).

mod support;

#[cfg(test)]
mod tests {
    use super::support::repo_root;

    use xensim::bench::scenarios::{all, render};

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
}
