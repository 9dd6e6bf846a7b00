//! The Perfetto export (`specs/metrics.md` §4.3) under a strict Trace Event Format check:
//! every bundled scenario's export parses, every event has exactly the keys its phase
//! allows, `ts`/`dur` are exact three-decimal µs, `M` events come first, the rest are
//! sorted by `(ts, pid, tid, phase rank)`, every pid/tid is declared by metadata, and `X`
//! slices on one thread never overlap. The checker is tested on broken files too.
//!
//! `xensim report TRACE` is tested here as well: it must write the run's bytes.

mod support;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use serde_json::Value;
    use xensim::app::{self, RunArgs};
    use xensim::report::timeline::SliceKind;

    use super::support::{bundled_scenarios, repo_root};

    /// What the checker counted in a valid file.
    #[derive(Debug, Default)]
    struct Counts {
        slices: usize,
        instants: usize,
        counters: usize,
    }

    /// An exact three-decimal µs number (`1234.567`) as ns.
    fn exact_us(raw: &str) -> Result<u64, String> {
        let (whole, frac) = raw
            .split_once('.')
            .ok_or_else(|| format!("{raw}: not a three-decimal µs value"))?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = whole.len() > 1 && whole.starts_with('0');
        if !digits(whole) || leading_zero || frac.len() != 3 || !digits(frac) {
            return Err(format!("{raw}: not a three-decimal µs value"));
        }
        let whole: u64 = whole.parse().map_err(|e| format!("{raw}: {e}"))?;
        let frac: u64 = frac.parse().map_err(|e| format!("{raw}: {e}"))?;
        whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| format!("{raw}: out of range"))
    }

    /// The raw text of the number after `"key":` in one event line.
    fn raw_number<'a>(line: &'a str, key: &str) -> Result<&'a str, String> {
        let pattern = format!("\"{key}\":");
        let start = line
            .find(&pattern)
            .ok_or_else(|| format!("no {key} in {line}"))?
            + pattern.len();
        let rest = &line[start..];
        let end = rest
            .find([',', '}'])
            .ok_or_else(|| format!("unterminated {key} in {line}"))?;
        Ok(&rest[..end])
    }

    fn keys_are(event: &Value, allowed: &[&str], line: &str) -> Result<(), String> {
        let object = event
            .as_object()
            .ok_or_else(|| format!("not an object: {line}"))?;
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = allowed.iter().copied().collect();
        if keys == want {
            Ok(())
        } else {
            Err(format!("keys {keys:?}, want {want:?}: {line}"))
        }
    }

    fn int(event: &Value, key: &str, line: &str) -> Result<u64, String> {
        event[key]
            .as_u64()
            .ok_or_else(|| format!("{key} is not an unsigned integer: {line}"))
    }

    fn string<'a>(event: &'a Value, key: &str, line: &str) -> Result<&'a str, String> {
        event[key]
            .as_str()
            .ok_or_else(|| format!("{key} is not a string: {line}"))
    }

    /// Checks the Trace Event Format rules xensim's export promises.
    fn check(text: &str) -> Result<Counts, String> {
        let whole: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        keys_are(
            &whole,
            &["displayTimeUnit", "otherData", "traceEvents"],
            "top level",
        )?;
        if whole["displayTimeUnit"] != "ns" {
            return Err("displayTimeUnit is not ns".into());
        }
        let other = whole["otherData"]
            .as_object()
            .ok_or("otherData is not an object")?;
        for key in [
            "xensim_version",
            "scenario",
            "seed",
            "trace_hash",
            "window_ns",
        ] {
            if !other.get(key).is_some_and(Value::is_string) {
                return Err(format!("otherData.{key} is missing or not a string"));
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        let (first, last) = (lines.first().copied(), lines.last().copied());
        if !first.is_some_and(|l| l.ends_with("\"traceEvents\":[")) || last != Some("]}") {
            return Err("not one event per line between the header and ]}".into());
        }
        let events = &lines[1..lines.len() - 1];
        let count = whole["traceEvents"].as_array().map_or(0, Vec::len);
        if count != events.len() {
            return Err(format!("{count} events but {} event lines", events.len()));
        }
        let mut state = CheckState::default();
        for (index, raw) in events.iter().enumerate() {
            let line = raw.strip_suffix(',').unwrap_or(raw);
            if (index + 1 < events.len()) != raw.ends_with(',') {
                return Err(format!("bad separator on line {}", index + 2));
            }
            let event: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
            state.event(&event, line)?;
        }
        Ok(state.counts)
    }

    #[derive(Default)]
    struct CheckState {
        metadata_done: bool,
        processes: BTreeSet<u64>,
        threads: BTreeSet<(u64, u64)>,
        last_key: Option<(u64, u64, u64, u8)>,
        last_metadata: Option<(u64, u64, String)>,
        slice_end_ns: BTreeMap<(u64, u64), u64>,
        counts: Counts,
    }

    impl CheckState {
        fn event(&mut self, event: &Value, line: &str) -> Result<(), String> {
            let ph = string(event, "ph", line)?;
            if ph == "M" {
                return self.metadata(event, line);
            }
            self.metadata_done = true;
            let (pid, tid) = (int(event, "pid", line)?, int(event, "tid", line)?);
            let ts_ns = exact_us(raw_number(line, "ts")?)?;
            if !self.processes.contains(&pid) {
                return Err(format!("pid {pid} not declared: {line}"));
            }
            string(event, "name", line)?;
            if !event["args"].is_object() {
                return Err(format!("args is not an object: {line}"));
            }
            let rank = match ph {
                "X" => {
                    keys_are(
                        event,
                        &["ph", "name", "cat", "pid", "tid", "ts", "dur", "args"],
                        line,
                    )?;
                    self.slice(event, (pid, tid), ts_ns, line)?;
                    0
                }
                "i" => {
                    keys_are(
                        event,
                        &["ph", "name", "cat", "pid", "tid", "ts", "s", "args"],
                        line,
                    )?;
                    self.instant(event, (pid, tid), line)?;
                    1
                }
                "C" => {
                    keys_are(event, &["ph", "name", "pid", "tid", "ts", "args"], line)?;
                    counter(event, tid, line)?;
                    self.counts.counters += 1;
                    2
                }
                other => return Err(format!("unexpected phase {other}: {line}")),
            };
            let key = (ts_ns, pid, tid, rank);
            if self.last_key.is_some_and(|last| last > key) {
                return Err(format!("out of order: {line}"));
            }
            self.last_key = Some(key);
            Ok(())
        }

        fn metadata(&mut self, event: &Value, line: &str) -> Result<(), String> {
            if self.metadata_done {
                return Err(format!("M event after other events: {line}"));
            }
            keys_are(event, &["ph", "name", "pid", "tid", "ts", "args"], line)?;
            if raw_number(line, "ts")? != "0.000" {
                return Err(format!("M event ts is not 0: {line}"));
            }
            let (pid, tid) = (int(event, "pid", line)?, int(event, "tid", line)?);
            let name = string(event, "name", line)?;
            let key = (pid, tid, name.to_owned());
            if self.last_metadata.as_ref().is_some_and(|last| *last >= key) {
                return Err(format!("M events not sorted by pid, tid, name: {line}"));
            }
            self.last_metadata = Some(key);
            match name {
                "process_name" | "thread_name" => {
                    string(&event["args"], "name", line)?;
                }
                "process_sort_index" | "thread_sort_index" => {
                    int(&event["args"], "sort_index", line)?;
                }
                other => return Err(format!("unknown metadata {other}: {line}")),
            }
            let process_level = name.starts_with("process_");
            if process_level != (tid == 0) {
                return Err(format!("metadata on the wrong tid: {line}"));
            }
            match name {
                "process_name" => {
                    self.processes.insert(pid);
                }
                "thread_name" => {
                    self.threads.insert((pid, tid));
                }
                _ => {}
            }
            Ok(())
        }

        fn slice(
            &mut self,
            event: &Value,
            thread: (u64, u64),
            ts_ns: u64,
            line: &str,
        ) -> Result<(), String> {
            if !self.threads.contains(&thread) {
                return Err(format!("tid {} not declared: {line}", thread.1));
            }
            let dur_ns = exact_us(raw_number(line, "dur")?)?;
            if dur_ns == 0 {
                return Err(format!("zero-length slice: {line}"));
            }
            if let Some(&end_ns) = self.slice_end_ns.get(&thread) {
                if ts_ns < end_ns {
                    return Err(format!("slice overlaps the previous one: {line}"));
                }
            }
            self.slice_end_ns.insert(thread, ts_ns + dur_ns);
            match string(event, "cat", line)? {
                "vcpu" => {
                    let end = string(&event["args"], "end", line)?;
                    let ends = ["preempt", "yield", "block", "offline", "window_end"];
                    if !ends.contains(&end) {
                        return Err(format!("unknown end {end}: {line}"));
                    }
                    int(&event["args"], "dom", line)?;
                    int(&event["args"], "vcpu", line)?;
                }
                "overhead" => {}
                other => return Err(format!("unknown slice category {other}: {line}")),
            }
            self.counts.slices += 1;
            Ok(())
        }

        fn instant(&mut self, event: &Value, thread: (u64, u64), line: &str) -> Result<(), String> {
            string(event, "cat", line)?;
            match (string(event, "s", line)?, thread.1) {
                ("p", 0) => {}
                ("t", _) if self.threads.contains(&thread) => {}
                _ => return Err(format!("instant scope and tid disagree: {line}")),
            }
            self.counts.instants += 1;
            Ok(())
        }
    }

    fn counter(event: &Value, tid: u64, line: &str) -> Result<(), String> {
        let args = event["args"].as_object().ok_or("counter args")?;
        if tid != 0 || args.len() != 1 || !args.values().all(Value::is_u64) {
            return Err(format!("a counter has tid 0 and one integer value: {line}"));
        }
        Ok(())
    }

    fn run_report(path: &Path, args: &RunArgs) -> app::RunReport {
        let scenario = app::load(path, None, false)
            .unwrap_or_else(|e| panic!("{} loads: {e}", path.display()));
        app::run_scenario(scenario, args).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn export(path: &Path, window_ns: Option<(u64, u64)>) -> String {
        let args = RunArgs {
            timeline: true,
            window_ns,
            ..RunArgs::default()
        };
        run_report(path, &args)
            .perfetto_json()
            .expect("the timeline was captured")
    }

    fn scratch(name: &str) -> PathBuf {
        super::support::scratch_dir("perfetto", name)
    }

    #[test]
    fn every_bundled_scenario_export_passes_the_strict_check() {
        for path in bundled_scenarios() {
            let json = export(&path, None);

            let counts = check(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));

            assert!(counts.slices > 0, "{}: no vCPU ran", path.display());
            assert!(counts.instants > 0, "{}: no instant", path.display());
            assert!(counts.counters > 0, "{}: no counter", path.display());
        }
    }

    #[test]
    fn timeline_slices_add_up_to_each_pcpus_busy_and_overhead_time() {
        for path in bundled_scenarios() {
            let scenario = app::load(&path, None, false).expect("loads");
            // The metrics window: from the warm-up to the end of the run.
            let window_ns = Some((scenario.sim.warmup_ns, scenario.sim.duration_ns));
            let args = RunArgs {
                timeline: true,
                window_ns,
                ..RunArgs::default()
            };
            let report = app::run_scenario(scenario, &args).expect("runs");
            let timeline = report.timeline.as_ref().expect("captured");
            let metrics = &report.outcome.sinks_report.metrics;

            for (host, host_metrics) in timeline.hosts.iter().zip(&metrics.hosts) {
                for pcpu in &host_metrics.pcpus {
                    let (mut run_ns, mut overhead_ns) = (0, 0);
                    for slice in host.slices.iter().filter(|s| s.pcpu == pcpu.id) {
                        match slice.kind {
                            SliceKind::Run { .. } => run_ns += slice.dur_ns,
                            SliceKind::Overhead => overhead_ns += slice.dur_ns,
                        }
                    }
                    let at = format!("{} {} pCPU {}", path.display(), host.name, pcpu.id);
                    assert_eq!(run_ns, pcpu.busy_ns, "{at}: busy");
                    assert_eq!(overhead_ns, pcpu.overhead_ns, "{at}: overhead");
                }
            }
        }
    }

    #[test]
    fn windowed_export_passes_the_check_and_stays_in_the_window() {
        let path = repo_root().join("scenarios/credit2-overload.toml");
        // 1.0 s .. 1.05 s of a 2 s run.
        let (start_ns, end_ns) = (1_000_000_000, 1_050_000_000);

        let json = export(&path, Some((start_ns, end_ns)));

        check(&json).unwrap_or_else(|e| panic!("{e}"));
        for line in json.lines().filter(|l| l.starts_with("{\"ph\":\"X\"")) {
            let ts_ns = exact_us(raw_number(line, "ts").expect("ts")).expect("exact ts");
            let dur_ns = exact_us(raw_number(line, "dur").expect("dur")).expect("exact dur");
            assert!(ts_ns >= start_ns && ts_ns + dur_ns <= end_ns, "{line}");
        }
        assert!(json.contains("\"window_ns\":\"1000000000..1050000000\""));
    }

    #[test]
    fn export_is_byte_identical_run_to_run() {
        let path = repo_root().join("scenarios/pools-mixed.toml");

        assert_eq!(export(&path, None), export(&path, None));
    }

    #[test]
    fn checker_rejects_overlapping_slices() {
        let json = export(&repo_root().join("scenarios/quickstart.toml"), None);
        // Stretch the first vCPU run far past the next slice of its pCPU.
        let line = json
            .lines()
            .find(|l| l.contains("\"cat\":\"vcpu\""))
            .expect("a vCPU slice");
        let dur = raw_number(line, "dur").expect("dur");
        let broken = json.replacen(line, &line.replacen(dur, "1999999.000", 1), 1);

        let error = check(&broken).expect_err("overlap must be rejected");

        assert!(error.contains("overlaps"), "{error}");
    }

    #[test]
    fn checker_rejects_float_style_timestamps() {
        let json = export(&repo_root().join("scenarios/quickstart.toml"), None);
        let broken = json.replacen("\"ts\":1050.000", "\"ts\":1.05e3", 1);

        let error = check(&broken).expect_err("a float ts must be rejected");

        assert!(error.contains("three-decimal"), "{error}");
    }

    #[test]
    fn checker_rejects_slices_on_undeclared_threads() {
        let json = export(&repo_root().join("scenarios/quickstart.toml"), None);
        let line = json
            .lines()
            .find(|l| l.contains("\"cat\":\"vcpu\""))
            .expect("a vCPU slice");
        // The quickstart host has 4 pCPUs: tids 1-4, and 5-6 for xenstored and xenbus.
        let tid = raw_number(line, "tid").expect("tid");
        let moved = line.replacen(&format!("\"tid\":{tid},"), "\"tid\":50,", 1);
        let broken = json.replacen(line, &moved, 1);

        let error = check(&broken).expect_err("an undeclared tid must be rejected");

        assert!(error.contains("not declared"), "{error}");
    }

    #[test]
    fn report_from_trace_writes_the_runs_bytes() {
        let dir = scratch("report");
        let trace = dir.join("run.trace");
        let path = repo_root().join("scenarios/credit2-ratelimit-yield.toml");
        let run = run_report(
            &path,
            &RunArgs {
                trace: Some(trace.clone()),
                timeline: true,
                ..RunArgs::default()
            },
        );

        let again = app::report_trace(
            &trace,
            &app::ReportArgs {
                timeline: true,
                window_ns: None,
            },
        )
        .unwrap_or_else(|e| panic!("report: {e}"));

        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(run.metrics_json, again.metrics_json);
        assert_eq!(run.perfetto_json(), again.perfetto_json());
        assert_eq!(run.html(), again.html());
    }

    #[test]
    fn report_of_a_trace_that_does_not_replay_fails_with_exit_1() {
        let dir = scratch("corrupt");
        let trace = dir.join("run.trace");
        let path = repo_root().join("scenarios/quickstart.toml");
        let args = RunArgs {
            trace: Some(trace.clone()),
            ..RunArgs::default()
        };
        run_report(&path, &args);
        // The header's seed follows the magic (8 bytes), two format words (4 + 4) and the
        // hash algorithm's name (u32 length + text). Seed 7 re-simulates another run than
        // the records hold.
        let seed_offset = 8 + 4 + 4 + 4 + xensim::record::HASH_ALGORITHM.len();
        let mut bytes = std::fs::read(&trace).expect("trace");
        bytes[seed_offset..seed_offset + 8].copy_from_slice(&7u64.to_le_bytes());
        std::fs::write(&trace, bytes).expect("write");

        let result = app::report_trace(&trace, &app::ReportArgs::default());

        let _ = std::fs::remove_dir_all(&dir);
        let error = result.expect_err("a trace that does not replay must fail");
        assert!(matches!(error, app::AppError::Diverged(_)), "{error}");
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn scenario_perfetto_key_writes_the_export_and_report_cli_matches_it() {
        let dir = scratch("cli");
        let quickstart = std::fs::read_to_string(repo_root().join("scenarios/quickstart.toml"))
            .expect("quickstart");
        let scenario = quickstart.replacen(
            "duration = \"2s\"\n",
            "duration = \"2s\"\n\n[sim.trace]\nperfetto = \"from-key.json\"\n",
            1,
        );
        let file = dir.join("keyed.toml");
        std::fs::write(&file, scenario).expect("scenario");
        let xensim = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_xensim"))
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("xensim runs");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };

        xensim(&[
            "run",
            "keyed.toml",
            "--trace",
            "t.trace",
            "--report",
            "run.html",
        ]);
        xensim(&[
            "report",
            "t.trace",
            "--perfetto",
            "again.json",
            "--report",
            "again.html",
        ]);

        let read =
            |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (exported, again) = (read("from-key.json"), read("again.json"));
        let (html, html_again) = (read("run.html"), read("again.html"));
        let _ = std::fs::remove_dir_all(&dir);
        check(&String::from_utf8_lossy(&exported)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(exported, again);
        assert_eq!(html, html_again);
    }
}
