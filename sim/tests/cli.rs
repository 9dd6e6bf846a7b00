//! The `xensim` binary end to end: exit statuses (0 ok, 1 a check failed, 2 bad input),
//! replay of a recorded trace, and the first divergence of a tampered trace.

mod support;

#[cfg(test)]
mod tests {
    use super::support::{repo_root, scratch_dir, stderr, stdout, xensim};
    use std::path::PathBuf;
    use std::process::Command;

    fn scratch(name: &str) -> PathBuf {
        scratch_dir("cli", name)
    }

    #[test]
    fn run_into_a_closed_pipe_ends_quietly() {
        // `xensim run ... | head -1`: the reader goes away; xensim must not panic.
        let mut child = Command::new(env!("CARGO_BIN_EXE_xensim"))
            .args(["run", "scenarios/null-pools.toml"])
            .current_dir(repo_root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("xensim starts");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("xensim ends");
        assert_eq!(output.status.code(), Some(0));
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    }

    #[test]
    fn run_quickstart_exits_zero_and_prints_hash() {
        let output = xensim(&["run", "scenarios/quickstart.toml"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(stdout(&output).contains("run hash: "));
    }

    #[test]
    fn run_of_invalid_scenario_exits_two_with_location() {
        let dir = scratch("invalid");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[sim]\nseed = 1\nduration = \"1.5ms\"\n").expect("fixture");
        let output = xensim(&["run", file.to_str().expect("utf-8 path")]);
        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("bad.toml:3:"),
            "{}",
            stderr(&output)
        );
    }

    #[test]
    fn failed_expectation_exits_one_and_names_the_metric() {
        // vm1 runs about 1.17 s of 2 s; demanding 1.9 s must fail.
        let dir = scratch("expect");
        let text = std::fs::read_to_string(repo_root().join("scenarios/quickstart.toml"))
            .expect("quickstart")
            .replace("min = 1_000_000_000", "min = 1_900_000_000");
        let file = dir.join("tight.toml");
        std::fs::write(&file, text).expect("fixture");
        let output = xensim(&["run", file.to_str().expect("utf-8 path")]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stdout(&output).contains("domain.vm1.vcpus.0.running_ns"),
            "{}",
            stdout(&output)
        );
    }

    #[test]
    fn unknown_subcommand_argument_exits_two() {
        let output = xensim(&["run", "scenarios/quickstart.toml", "--seed", "minus-one"]);
        assert_eq!(output.status.code(), Some(2));
    }

    #[test]
    fn replay_of_recorded_trace_matches() {
        let trace = scratch("replay-ok").join("run.trace");
        let trace_arg = trace.to_str().expect("utf-8 path");
        let run = xensim(&[
            "run",
            "scenarios/null-overcommit.toml",
            "--trace",
            trace_arg,
        ]);
        assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
        let replay = xensim(&["replay", trace_arg]);
        assert_eq!(
            replay.status.code(),
            Some(0),
            "{}{}",
            stdout(&replay),
            stderr(&replay)
        );
        assert!(stdout(&replay).contains("replay matches"));
    }

    #[test]
    fn replay_of_tampered_trace_names_first_divergent_record() {
        let trace = scratch("replay-bad").join("run.trace");
        let trace_arg = trace.to_str().expect("utf-8 path");
        let run = xensim(&["run", "scenarios/quickstart.toml", "--trace", trace_arg]);
        assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
        // Flip one payload byte of the last record before the end marker (12 bytes from
        // the end: the u32 end marker and the u64 hash follow it).
        let mut bytes = std::fs::read(&trace).expect("trace readable");
        let index = bytes.len() - 13;
        bytes[index] ^= 0xff;
        std::fs::write(&trace, bytes).expect("trace written");
        let replay = xensim(&["replay", trace_arg]);
        assert_eq!(replay.status.code(), Some(1));
        assert!(
            stdout(&replay).contains("first divergence at record"),
            "{}",
            stdout(&replay)
        );
    }

    #[test]
    fn xl_query_at_time_prints_real_list_format() {
        let output = xensim(&["xl", "scenarios/lifecycle.toml", "--at", "1s", "--", "list"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let first = stdout(&output)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            first,
            "Name                                        ID   Mem VCPUs\tState\tTime(s)"
        );
    }

    #[test]
    fn xl_create_cannot_be_issued_outside_the_timeline() {
        let output = xensim(&["xl", "scenarios/lifecycle.toml", "--", "create", "x.cfg"]);
        assert_eq!(output.status.code(), Some(2));
    }

    #[test]
    fn xl_state_changing_command_runs_at_the_given_time_with_xl_output() {
        // Weight out of libxl's range: libxl's message and xl's exit status 1.
        let args = [
            "xl",
            "scenarios/credit2-overload.toml",
            "--at",
            "500ms",
            "--",
            "sched-credit2",
            "-d",
            "o1",
            "-w",
            "70000",
        ];
        let output = xensim(&args);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("Cpu weight out of range"));
        let set = xensim(
            &args[..9]
                .iter()
                .copied()
                .chain(["2000"])
                .collect::<Vec<_>>(),
        );
        assert_eq!(set.status.code(), Some(0), "{}", stderr(&set));
    }

    #[test]
    fn core_only_replay_of_recorded_trace_matches() {
        let trace = scratch("replay-core").join("run.trace");
        let trace_arg = trace.to_str().expect("utf-8 path");
        let run = xensim(&["run", "scenarios/two-hosts.toml", "--trace", trace_arg]);
        assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
        let replay = xensim(&["replay", "--core", trace_arg]);
        assert_eq!(
            replay.status.code(),
            Some(0),
            "{}{}",
            stdout(&replay),
            stderr(&replay)
        );
        assert!(stdout(&replay).contains("replay matches"));
    }

    #[test]
    fn xl_query_on_named_host_shows_that_hosts_domains() {
        let args = [
            "xl",
            "scenarios/two-hosts.toml",
            "--host",
            "h1",
            "--at",
            "1s",
            "--",
            "list",
        ];
        let output = xensim(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(stdout(&output).contains("\nback "), "{}", stdout(&output));
    }

    #[test]
    fn xl_query_on_unknown_host_exits_two() {
        let output = xensim(&[
            "xl",
            "scenarios/two-hosts.toml",
            "--host",
            "h9",
            "--",
            "list",
        ]);
        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("no such host"),
            "{}",
            stderr(&output)
        );
    }
}
