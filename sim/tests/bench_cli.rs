//! `xensim bench` end to end on a small scenario: the table's run hash is the one `xensim run`
//! prints (a bench measures the same run), and `--generate` writes every §11 scenario.

mod support;

#[cfg(test)]
mod tests {
    use super::support::{stdout, xensim};

    fn run_hash(text: &str) -> Option<String> {
        let line = text.lines().find(|l| l.starts_with("run hash: "))?;
        Some(line.trim_start_matches("run hash: ").to_string())
    }

    #[test]
    fn bench_row_hash_equals_run_hash() {
        let run = xensim(&["run", "scenarios/quickstart.toml"]);
        let hash = run_hash(&stdout(&run)).expect("run prints its hash");

        let bench = xensim(&["bench", "scenarios/quickstart.toml"]);

        assert_eq!(bench.status.code(), Some(0));
        let table = stdout(&bench);
        let row = table
            .lines()
            .find(|l| l.starts_with("quickstart.toml"))
            .unwrap_or_else(|| panic!("a row for quickstart: {table}"));
        assert!(row.ends_with(&hash), "{row} should end with {hash}");
        assert!(row.contains(" null "), "{row}");
    }

    #[test]
    fn bench_of_missing_file_exits_two() {
        let output = xensim(&["bench", "scenarios/no-such-bench.toml"]);

        assert_eq!(output.status.code(), Some(2));
    }

    #[test]
    fn bench_generate_writes_the_eight_reference_scenarios() {
        let dir = super::support::scratch_dir("bench-gen", "out");
        let dir_text = dir.display().to_string();

        let output = xensim(&["bench", "--generate", &dir_text]);

        assert_eq!(output.status.code(), Some(0));
        let written = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let _ = std::fs::remove_dir_all(&dir);
        // §11's seven scheduler scenarios and mem-1t-100.
        assert_eq!(written, 8);
    }
}
