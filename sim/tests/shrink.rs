//! `xensim shrink`: a scenario whose expectation fails only because of one domain shrinks to
//! that domain (and the result loads and still fails the same way); an `expect_rc` failure
//! keeps its command; a scenario that passes is refused.

mod support;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use xensim::app::{self, RunArgs};
    use xensim::shrink::failure::{FailureKey, Found};
    use xensim::shrink::{shrink, ShrinkArgs, ShrinkError};

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// A scratch directory unique to this test process and `name`.
    fn scratch(name: &str) -> PathBuf {
        super::support::scratch_dir("shrink", name)
    }

    fn args(out: PathBuf) -> ShrinkArgs {
        ShrinkArgs {
            seed: None,
            check: false,
            runs_max: 300,
            out: Some(out),
        }
    }

    fn domain_names(path: &Path) -> Vec<String> {
        let scenario = app::load(path, None, false).expect("the minimal scenario loads");
        scenario.domains.iter().map(|d| d.name.clone()).collect()
    }

    #[test]
    fn expectation_failing_because_of_one_domain_shrinks_to_that_domain() {
        let file = repo_root().join("sim/tests/fixtures/shrink/one-hog.toml");
        let out = scratch("one-hog").join("one-hog.min.toml");

        let report = shrink(&file, &args(out.clone())).expect("shrinks");

        let target = FailureKey::Expect {
            metric: "host.h0.pcpus.2.busy_ns".to_string(),
            found: Found::Value,
        };
        assert_eq!(report.target, target);
        assert_eq!(domain_names(&out), vec!["hog".to_string()]);
        let text = std::fs::read_to_string(&out).expect("written");
        assert!(text.contains("# The culprit."), "comments stay: {text}");
        assert!(!text.contains("[[at]]"), "{text}");
    }

    #[test]
    fn shrunk_scenario_still_fails_the_same_expectation() {
        let file = repo_root().join("sim/tests/fixtures/shrink/one-hog.toml");
        let out = scratch("still-fails").join("one-hog.min.toml");
        shrink(&file, &args(out.clone())).expect("shrinks");

        let scenario = app::load(&out, Some(5), false).expect("loads");
        let report = app::run_scenario(scenario, &RunArgs::default()).expect("runs");

        assert_eq!(report.exit_code(), 1);
        let metrics: Vec<&str> = report
            .expect_failures
            .iter()
            .map(|f| f.metric.as_str())
            .collect();
        assert_eq!(metrics, vec!["host.h0.pcpus.2.busy_ns"]);
    }

    #[test]
    fn expect_rc_failure_keeps_its_command_and_drops_every_domain() {
        let dir = scratch("rc");
        let file = dir.join("rc.toml");
        let text = include_str!("fixtures/shrink/one-hog.toml").replace(
            "[[at]]\ntime = \"900ms\"\nxl = \"vcpu-list\"",
            "[[at]]\ntime = \"900ms\"\nxl = \"pause nosuch\"\nexpect_rc = 0",
        );
        let text = text.replace("max = 100_000_000", "max = 10_000_000_000");
        std::fs::write(&file, text).expect("write fixture");
        let out = dir.join("rc.min.toml");

        let report = shrink(&file, &args(out.clone())).expect("shrinks");

        assert_eq!(
            report.target,
            FailureKey::ExpectRc("pause nosuch".to_string())
        );
        assert!(domain_names(&out).is_empty());
        let minimal = std::fs::read_to_string(&out).expect("written");
        assert!(minimal.contains("xl = \"pause nosuch\""), "{minimal}");
    }

    #[test]
    fn shrinking_twice_writes_the_same_file() {
        let file = repo_root().join("sim/tests/fixtures/shrink/one-hog.toml");
        let dir = scratch("twice");
        let (first, second) = (dir.join("first.toml"), dir.join("second.toml"));

        let first_report = shrink(&file, &args(first.clone())).expect("shrinks");
        let second_report = shrink(&file, &args(second.clone())).expect("shrinks again");

        assert_eq!(first_report.budget, second_report.budget);
        let read = |p: &Path| std::fs::read_to_string(p).expect("written");
        assert_eq!(read(&first), read(&second));
    }

    #[test]
    fn run_budget_of_one_keeps_the_scenario_whole() {
        // The original's run is the only one allowed: nothing can be tried.
        let file = repo_root().join("sim/tests/fixtures/shrink/one-hog.toml");
        let out = scratch("budget").join("one-hog.min.toml");
        let mut one_run = args(out.clone());
        one_run.runs_max = 1;

        let report = shrink(&file, &one_run).expect("shrinks");

        assert!(report.removed.is_empty(), "{:?}", report.removed);
        assert_eq!(domain_names(&out).len(), 4);
    }

    #[test]
    fn expectation_on_a_value_is_not_shrunk_to_a_run_without_the_domain() {
        // running_ns >= 10^12 fails at any duration, but below the domain's creation time
        // the path finds nothing: the duration must stop above that.
        let dir = scratch("value");
        let file = dir.join("value.toml");
        let text = include_str!("fixtures/shrink/one-hog.toml").replace(
            "metric = \"host.h0.pcpus.2.busy_ns\"\nmax = 100_000_000",
            "metric = \"domain.hog.vcpus.0.running_ns\"\nmin = 1_000_000_000_000",
        );
        std::fs::write(&file, text).expect("write fixture");
        let out = dir.join("value.min.toml");

        shrink(&file, &args(out.clone())).expect("shrinks");

        let scenario = app::load(&out, None, false).expect("loads");
        let report = app::run_scenario(scenario, &RunArgs::default()).expect("runs");
        let messages: Vec<&str> = report
            .expect_failures
            .iter()
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("running_ns = "), "{messages:?}");
    }

    #[test]
    fn minimal_file_elsewhere_notes_its_relative_config_paths() {
        let dir = scratch("notes");
        std::fs::create_dir_all(dir.join("guests")).expect("guests dir");
        std::fs::write(
            dir.join("guests/small.cfg"),
            "name = \"small\"\ntype = \"pvh\"\nmemory = 256\nvcpus = 1\n",
        )
        .expect("write cfg");
        let scenario = "[sim]\nseed = 1\nduration = \"1s\"\n\n[host.h0]\n\
            topology = { sockets = 1, cores_per_socket = 2 }\nmemory = \"4GiB\"\n\n\
            [[domain]]\nname = \"small\"\nconfig = \"guests/small.cfg\"\n\n\
            [[expect]]\nmetric = \"domain.small.vcpus.0.running_ns\"\nmin = 999_999_999_999\n";
        let file = dir.join("cfg.toml");
        std::fs::write(&file, scenario).expect("write scenario");
        let elsewhere = scratch("notes-out").join("cfg.min.toml");

        let beside = shrink(&file, &args(dir.join("cfg.min.toml"))).expect("shrinks");
        let away = shrink(&file, &args(elsewhere)).expect("shrinks");

        assert!(beside.notes.is_empty(), "{:?}", beside.notes);
        assert_eq!(away.notes.len(), 1);
        assert!(away.notes[0].contains("relative path"), "{:?}", away.notes);
    }

    #[test]
    fn passing_scenario_is_refused() {
        let file = repo_root().join("scenarios/quickstart.toml");
        let out = scratch("passing").join("quickstart.min.toml");

        let error = shrink(&file, &args(out.clone())).expect_err("nothing to shrink");

        assert!(
            matches!(error, ShrinkError::Passes { seed: 42, .. }),
            "{error}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn cli_refuses_passing_scenario_with_exit_two() {
        let output = Command::new(env!("CARGO_BIN_EXE_xensim"))
            .args(["shrink", "scenarios/quickstart.toml", "--seed", "3"])
            .current_dir(repo_root())
            .output()
            .expect("xensim runs");

        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("does not fail with seed 3"), "{stderr}");
        assert!(stderr.contains("nothing to shrink"), "{stderr}");
    }

    #[test]
    fn cli_prints_removals_and_the_replay_command() {
        let out = scratch("cli").join("one-hog.min.toml");
        let out_text = out.display().to_string();

        let output = Command::new(env!("CARGO_BIN_EXE_xensim"))
            .args([
                "shrink",
                "sim/tests/fixtures/shrink/one-hog.toml",
                "--out",
                &out_text,
            ])
            .current_dir(repo_root())
            .output()
            .expect("xensim runs");

        assert_eq!(output.status.code(), Some(0));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("removed domains: web, db, quiet"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("replay: xensim run {out_text} --seed 5")),
            "{stdout}"
        );
    }
}
