//! Every bundled scenario runs with the invariant checker after every event and meets its
//! `[[expect]]` bounds. Its golden snapshots live under `golden/<scenario>__<view>.snap`:
//! `summary` (the run summary), `xl-list` (the output of every timeline xl command and a
//! final `xl list`), and `decisions` (the decision log of the first 400 ms of virtual time,
//! at most its first 3000 lines).
//! Review a changed snapshot like code: its commit must say why decisions changed.

mod support;

#[cfg(test)]
mod tests {
    use super::support::bundled_scenarios;

    use xensim::app::{self, RunArgs};
    use xensim::run::decisions::seconds;

    /// Virtual time covered by the decisions snapshot.
    const DECISIONS_WINDOW_NS: u64 = 400_000_000;
    /// Most lines of the decisions snapshot (busy scenarios log ~1 M lines a second).
    const DECISIONS_LINES_MAX: usize = 3_000;

    fn snapshot(name: &str, text: &str) {
        insta::with_settings!({
            snapshot_path => "../../golden",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name.to_string(), text);
        });
    }

    fn xl_views(report: &app::RunReport) -> String {
        let mut out = String::new();
        for c in &report.outcome.commands {
            let rc =
                c.rc.map_or_else(|| "running".to_string(), |rc| rc.to_string());
            out.push_str(&format!(
                "## t={} {}: xl {} (rc={rc})\n",
                seconds(c.time_ns),
                c.host,
                c.text
            ));
            out.push_str(&c.stdout);
            for line in c.stderr.lines() {
                out.push_str(&format!("stderr: {line}\n"));
            }
        }
        out
    }

    /// Virtual time of a decision-log line (`S.NNNNNNNNN host ...`), ns.
    fn line_time_ns(line: &str) -> Option<u64> {
        let (secs, nanos) = line.split(' ').next()?.split_once('.')?;
        Some(secs.parse::<u64>().ok()? * 1_000_000_000 + nanos.parse::<u64>().ok()?)
    }

    fn decisions_prefix(log: &str) -> String {
        log.lines()
            .take_while(|line| line_time_ns(line).is_some_and(|t| t < DECISIONS_WINDOW_NS))
            .take(DECISIONS_LINES_MAX)
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn bundled_scenarios_match_their_snapshots() {
        for path in bundled_scenarios() {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let scenario =
                app::load(&path, None, false).unwrap_or_else(|e| panic!("{stem} loads: {e}"));
            let args = RunArgs {
                decision_log: true,
                ..RunArgs::default()
            };
            let report = app::run_scenario(scenario.clone(), &args)
                .unwrap_or_else(|e| panic!("{stem} runs: {e}"));
            let failure = &report.outcome.invariant_failure;
            assert!(failure.is_none(), "{stem}: invariant broken: {failure:?}");
            assert!(
                report.expect_failures.is_empty(),
                "{stem}: {:?}",
                report.expect_failures
            );
            snapshot(&format!("{stem}__summary"), &report.summary);
            let mut at_end = String::new();
            for host in &scenario.hosts {
                let words = ["list".to_string()];
                let end_ns = scenario.sim.duration_ns;
                let out = app::xl_at(&scenario, end_ns, Some(&host.name), &words)
                    .unwrap_or_else(|e| panic!("{stem} xl list on {}: {e}", host.name));
                at_end.push_str(&format!("## end: xl list on {}\n{}", host.name, out.stdout));
            }
            snapshot(
                &format!("{stem}__xl-list"),
                &format!("{}{at_end}", xl_views(&report)),
            );
            let log = report
                .outcome
                .sinks_report
                .decision_log
                .as_deref()
                .unwrap_or("");
            snapshot(&format!("{stem}__decisions"), &decisions_prefix(log));
        }
    }
}
