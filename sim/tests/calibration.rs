//! The calibration scenarios under `scenarios/calibration/` (`specs/cost-model.md` §8): each
//! runs with every `[[expect]]` band held (exit 0) and gives the run hash kept in
//! `golden/calibration/<name>.hash`. Re-bless after an intended change with
//! `XENSIM_BLESS=1 cargo test -p xensim --test calibration`.

mod support;

#[cfg(test)]
mod tests {
    use super::support::{repo_root, stdout, xensim};

    fn calibration_scenarios() -> Vec<std::path::PathBuf> {
        let dir = repo_root().join("scenarios").join("calibration");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .expect("scenarios/calibration/ is readable")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        files
    }

    fn run_hash(text: &str) -> Option<&str> {
        text.lines()
            .find_map(|line| line.strip_prefix("run hash: "))
            .map(str::trim)
    }

    #[test]
    fn calibration_scenarios_hold_their_bands_and_hashes() {
        let bless = std::env::var_os("XENSIM_BLESS").is_some();
        let golden = repo_root().join("golden").join("calibration");
        let scenarios = calibration_scenarios();
        assert!(scenarios.len() >= 2, "stubdom-net and syscall-heavy");
        for path in scenarios {
            let shown = path.display().to_string();
            let output = xensim(&["run", &shown]);
            let out = stdout(&output);
            assert_eq!(output.status.code(), Some(0), "{shown}: bands held\n{out}");
            let hash = run_hash(&out).unwrap_or_else(|| panic!("{shown}: a run hash"));
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("scenario");
            let file = golden.join(format!("{stem}.hash"));
            if bless {
                std::fs::create_dir_all(&golden).expect("create golden/calibration");
                std::fs::write(&file, format!("{hash}\n")).expect("write the hash");
            }
            let want = std::fs::read_to_string(&file).unwrap_or_default();
            assert_eq!(
                want.trim(),
                hash,
                "{shown}: run hash (XENSIM_BLESS=1 to re-bless)"
            );
        }
    }
}
