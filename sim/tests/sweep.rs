//! `xensim sweep`, `xensim sweep merge` and `xensim compare` end to end: shards merge into
//! the one-machine summary byte for byte, thread count never changes a result, failing seeds
//! are listed with the command that replays them, and bad arguments exit 2.

#[cfg(test)]
#[macro_use]
mod support;

#[cfg(test)]
mod tests {
    use super::support::{repo_root, scratch_dir, stderr, stdout, xensim};
    use std::num::NonZeroUsize;
    use std::path::{Path, PathBuf};
    use std::process::Output;

    use xensim::sweep::summary::{summarize, ReplayCommand};
    use xensim::sweep::{files, run_seeds, RunnerOptions, SeedRange, Shard};

    /// quickstart's vm2 (bursty) runs 114–127 ms depending on the seed; at least 120 ms
    /// fails seeds 2 and 3 of 1..4 (117.4 ms, 114.1 ms) and holds for seeds 1 and 4.
    const VM2_MIN_EXPECT: &str = "[[expect]]\nmetric = \"domain.vm2.running_ns\"\n\
                                  min = 120_000_000\n";

    fn scratch(name: &str) -> PathBuf {
        scratch_dir("sweep", name)
    }

    fn jobs(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).expect("non-zero")
    }

    fn quickstart() -> xensim::scenario::Scenario {
        xensim::app::load(&repo_root().join("scenarios/quickstart.toml"), None, false)
            .expect("quickstart loads")
    }

    /// Runs `shard` of `range` in-process and writes its output directory.
    fn write_shard(dir: &Path, range: SeedRange, shard: Shard, threads: usize) {
        let scenario = quickstart();
        let replay = ReplayCommand {
            scenario: "scenarios/quickstart.toml".to_owned(),
            extra: String::new(),
        };
        let runner = RunnerOptions {
            jobs: jobs(threads),
            check: false,
        };
        let lines = run_seeds(&scenario, &range.shard_seeds(shard), runner, &mut |_| {});
        let summary = summarize(&replay, &lines).expect("summary");
        let header = files::header(&scenario, range, shard, &replay);
        files::write_dir(dir, &header, shard, &lines, &summary).expect("write");
    }

    #[test]
    fn one_shard_and_four_shards_merge_to_byte_identical_summaries() {
        let range = SeedRange::parse("1..6").expect("range");
        let whole = scratch("whole");
        write_shard(&whole, range, Shard::WHOLE, 2);
        let shard_dirs: Vec<PathBuf> = (0..4)
            .map(|index| {
                let dir = scratch(&format!("shard{index}"));
                write_shard(&dir, range, Shard { index, count: 4 }, 1);
                dir
            })
            .collect();

        let merged = files::merge(&shard_dirs).expect("merge").to_json();
        let merged_whole = files::merge(std::slice::from_ref(&whole)).expect("merge");

        let one_machine = std::fs::read_to_string(whole.join("summary.json")).expect("summary");
        assert_eq!(merged, one_machine);
        assert_eq!(merged_whole.to_json(), one_machine);
        assert!(one_machine.contains("\"schema\": \"xensim.sweep\""));
        assert!(one_machine.contains("\"mean_num\""));
        assert!(one_machine.contains("\"ci_low_nano\""));
    }

    #[test]
    fn result_lines_are_identical_at_one_and_eight_threads() {
        let scenario = quickstart();
        let seeds: Vec<u64> = (1..=6).collect();
        let run = |threads| {
            let runner = RunnerOptions {
                jobs: jobs(threads),
                check: false,
            };
            run_seeds(&scenario, &seeds, runner, &mut |_| {})
        };

        let serial = run(1);
        let parallel = run(8);

        assert_eq!(serial, parallel);
        let order: Vec<u64> = parallel.iter().map(|l| l.seed).collect();
        assert_eq!(order, seeds);
    }

    #[test]
    fn sweep_line_hash_equals_the_run_hash_of_that_seed() {
        let output = xensim(&["run", "scenarios/quickstart.toml", "--seed", "3"]);
        let scenario = quickstart();
        let runner = RunnerOptions {
            jobs: jobs(1),
            check: false,
        };

        let lines = run_seeds(&scenario, &[3], runner, &mut |_| {});

        let expected = format!("run hash: {}", lines[0].trace_hash);
        assert!(stdout(&output).contains(&expected), "{}", stdout(&output));
    }

    #[test]
    fn sweep_of_thirty_seeds_switches_to_the_bootstrap_interval() {
        // §3: from n = 30 the interval is the fixed-key bootstrap's, below it Student t's.
        let dir = scratch("thirty");
        let out = dir.to_str().expect("utf-8");
        let args = [
            "sweep",
            "scenarios/quickstart.toml",
            "--seeds",
            "1..30",
            "--out",
            out,
        ];

        let output = xensim(&args);

        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let summary = std::fs::read_to_string(dir.join("summary.json")).expect("summary");
        assert!(summary.contains("\"method\": \"bootstrap\""), "{summary}");
        assert!(!summary.contains("\"method\": \"t\""));
    }

    #[test]
    fn merge_with_a_missing_shard_exits_two_and_names_it() {
        let range = SeedRange::parse("1..4").expect("range");
        let dir = scratch("missing");
        write_shard(&dir, range, Shard { index: 0, count: 2 }, 1);

        let output = xensim(&["sweep", "merge", dir.to_str().expect("utf-8")]);

        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("shard 1/2 is missing"),
            "{}",
            stderr(&output)
        );
    }

    #[test]
    fn merge_of_a_corrupt_line_exits_two_with_file_and_line() {
        let range = SeedRange::parse("1..2").expect("range");
        let dir = scratch("corrupt");
        write_shard(&dir, range, Shard::WHOLE, 1);
        let path = dir.join("shard-0-of-1.jsonl");
        let text = std::fs::read_to_string(&path).expect("shard");
        std::fs::write(&path, format!("{text}{{\"seed\": \"x\"}}\n")).expect("tamper");

        let output = xensim(&["sweep", "merge", dir.to_str().expect("utf-8")]);

        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("shard-0-of-1.jsonl:4:"),
            "{}",
            stderr(&output)
        );
    }

    #[test]
    fn sweep_shard_out_of_range_exits_two() {
        let output = xensim(&[
            "sweep",
            "scenarios/quickstart.toml",
            "--seeds",
            "1..4",
            "--shard",
            "4/4",
        ]);

        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("--shard 4/4"),
            "{}",
            stderr(&output)
        );
    }

    #[test]
    fn sweep_lists_failing_seeds_with_replay_commands_and_exits_one() {
        let dir = scratch("failing");
        let text = std::fs::read_to_string(repo_root().join("scenarios/quickstart.toml"))
            .expect("quickstart");
        let file = dir.join("tight.toml");
        std::fs::write(&file, format!("{text}\n{VM2_MIN_EXPECT}")).expect("fixture");
        let file_arg = file.to_str().expect("utf-8");

        let output = xensim(&["sweep", file_arg, "--seeds", "1..4", "-j", "2"]);

        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(text.contains("failing: 2"), "{text}");
        assert!(text.contains(&format!("replay: xensim run {file_arg} --seed 2 --check")));
        assert!(text.contains(&format!("replay: xensim run {file_arg} --seed 3 --check")));
        assert!(!text.contains("--seed 1 --check"), "{text}");
    }

    #[test]
    fn sweep_cli_shards_merge_like_the_one_machine_sweep() {
        let root = scratch("cli");
        let whole = root.join("whole");
        let scenario = "scenarios/quickstart.toml";
        let whole_arg = whole.to_str().expect("utf-8");
        let single = xensim(&["sweep", scenario, "--seeds", "1..4", "--out", whole_arg]);
        assert_eq!(single.status.code(), Some(0), "{}", stderr(&single));
        let mut dirs = Vec::new();
        for index in 0..2 {
            let dir = root.join(format!("shard_{index}"));
            let shard = format!("{index}/2");
            let out = dir.to_str().expect("utf-8");
            let args = [
                "sweep", scenario, "--seeds", "1..4", "--shard", &shard, "--out", out,
            ];
            assert_eq!(xensim(&args).status.code(), Some(0));
            dirs.push(out.to_owned());
        }
        let merged = root.join("merged.json");

        let mut args = vec!["sweep", "merge"];
        args.extend(dirs.iter().map(String::as_str));
        args.extend(["--out", merged.to_str().expect("utf-8")]);
        let output = xensim(&args);

        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let merged = std::fs::read(merged).expect("merged");
        assert_eq!(
            merged,
            std::fs::read(whole.join("summary.json")).expect("summary")
        );
    }

    #[test]
    fn compare_prints_one_column_per_scheduler_with_deltas() {
        let output = xensim(&[
            "compare",
            "scenarios/credit2-overload.toml",
            "--schedulers",
            "credit2,rtds,null",
            "--seeds",
            "1..2",
        ]);

        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        let first = text.lines().next().expect("header");
        assert!(first.contains("seeds 1..2"), "{first}");
        assert!(first.contains("\u{394} against credit2"), "{first}");
        let columns = text.lines().nth(1).expect("column names");
        assert!(
            columns.contains("credit2") && columns.contains("rtds"),
            "{columns}"
        );
        assert!(text.contains("o0 wait"), "{text}");
        // Pool-0 is contended under all three: each column has a Jain's index (the only
        // `—` on the row is its unit, an index has none).
        let jain = text.lines().find(|l| l.starts_with("Pool-0 jain (vCPU)"));
        assert_eq!(
            jain.map(|l| l.matches('\u{2014}').count()),
            Some(1),
            "{text}"
        );
        assert!(text.contains("pCPU idle (all)"), "{text}");
        assert!(text.contains('%'), "{text}");
    }

    #[test]
    fn compare_with_a_failing_expectation_exits_one_and_prints_replays() {
        let dir = scratch("compare-failing");
        let text = std::fs::read_to_string(repo_root().join("scenarios/quickstart.toml"))
            .expect("quickstart");
        let file = dir.join("tight.toml");
        std::fs::write(&file, format!("{text}\n{VM2_MIN_EXPECT}")).expect("fixture");
        let file_arg = file.to_str().expect("utf-8");

        let args = [
            "compare",
            file_arg,
            "--schedulers",
            "null,credit2",
            "--seeds",
            "1..4",
        ];
        let output = xensim(&args);

        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let replay = format!("xensim run {file_arg} --seed 2 --scheduler credit2 --check");
        assert!(stdout(&output).contains(&replay), "{}", stdout(&output));
    }

    #[test]
    fn compare_table_of_credit2_weights_matches_golden() {
        // One contended credit2 pCPU (weights 256/512/1024) against null, three seeds: the
        // snapshot pins the §4.2 layout, the fairness rows and every formatting rule.
        let scenario = xensim::app::load(
            &repo_root().join("scenarios/credit2-weights.toml"),
            None,
            false,
        )
        .expect("credit2-weights loads");
        let opts = xensim::compare::CompareOptions {
            scenario_path: "credit2-weights.toml".to_owned(),
            schedulers: xensim::compare::parse_schedulers("credit2,null").expect("names"),
            seeds: Some(SeedRange::parse("1..3").expect("range")),
            runner: RunnerOptions {
                jobs: jobs(2),
                check: true,
            },
        };

        let result = xensim::compare::run(&scenario, &opts, &mut |_| {});
        let table = xensim::compare::table::render(&result, xensim::compare::DeltaMode::Percent)
            .expect("table");

        assert_eq!(result.exit_code(), 0);
        golden!("compare__credit2-weights", table);
    }

    #[test]
    fn compare_reports_reservation_fairness_of_an_overloaded_rtds_pool() {
        // rtds-overload's pool "rt" (rtds) cannot honour every reservation: its fairness rows
        // hold values, not `—`, whatever Pool-0 runs.
        let args = [
            "compare",
            "scenarios/rtds-overload.toml",
            "--schedulers",
            "null",
        ];

        let output = xensim(&args);

        let text = stdout(&output);
        let row = text.lines().find(|l| l.starts_with("rt max deviation"));
        let row = row.unwrap_or_else(|| panic!("no rt fairness row:\n{text}"));
        assert!(row.contains('%') && !row.contains('\u{2014}'), "{row}");
    }

    #[test]
    fn compare_unknown_scheduler_exits_two() {
        let args = [
            "compare",
            "scenarios/quickstart.toml",
            "--schedulers",
            "credit,rtds",
        ];

        let output = xensim(&args);

        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("unknown scheduler `credit`"),
            "{}",
            stderr(&output)
        );
    }

    #[test]
    fn run_with_scheduler_override_replays_a_compare_column() {
        // credit2-overload under null: 24 busy vCPUs on 8 pCPUs, so 16 wait in null's
        // waitqueue for the whole run and the hash differs from credit2's.
        let base = xensim(&["run", "scenarios/credit2-overload.toml"]);
        let null = xensim(&[
            "run",
            "scenarios/credit2-overload.toml",
            "--scheduler",
            "null",
        ]);

        assert_eq!(null.status.code(), Some(0), "{}", stderr(&null));
        let hash = |o: &Output| {
            let text = stdout(o);
            text.lines()
                .find(|l| l.starts_with("run hash:"))
                .map(str::to_owned)
        };
        assert_ne!(hash(&base), hash(&null));
    }
}
