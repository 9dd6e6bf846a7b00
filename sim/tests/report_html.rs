//! The HTML report in a real browser: headless Chromium (Debian's `chromium`) loads the
//! page from a file, with networking off, and its DOM must hold the Gantt's slice rects,
//! one CDF path per domain with samples and the fairness bars, with no error marker and no
//! refused load; a screenshot must be a PNG of the window's size with more in it than a
//! blank page's.
//!
//! Without chromium the tests print SKIPPED and pass, unless `CI=true`: then they fail
//! (`.ci/run` installs chromium when it runs as root).

mod support;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use xensim::app::{self, RunArgs};
    use xensim::report::html::{self, HtmlReport, LatencySeries, ReportRun, ShareBar};

    use super::support::repo_root;

    /// Browser window, px (the screenshot's size).
    const WINDOW: (u32, u32) = (1300, 1600);
    /// Seconds before a hung browser is killed (`timeout`), not a speed assertion.
    const BROWSER_TIMEOUT_S: &str = "120";

    /// The chromium binary, or `None` (after printing SKIPPED) when absent outside CI.
    fn chromium() -> Option<PathBuf> {
        let name = std::env::var("XENSIM_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let found = Command::new(&name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(PathBuf::from(name));
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {name} is missing (apt-get install chromium)"
        );
        println!("SKIPPED: {name} not found (apt-get install chromium)");
        None
    }

    fn scratch(name: &str) -> PathBuf {
        super::support::scratch_dir("html", name)
    }

    /// Runs headless chromium on `page` with `extra` arguments.
    fn browse(chromium: &Path, dir: &Path, page: &Path, extra: &[String]) -> Output {
        let profile = dir.join("profile");
        let out = Command::new("timeout")
            .arg(BROWSER_TIMEOUT_S)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium starts");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The DOM chromium built from `html`, and its log.
    fn dump_dom(chromium: &Path, dir: &Path, html: &str) -> (String, String) {
        let page = dir.join("report.html");
        std::fs::write(&page, html).expect("page");
        let out = browse(chromium, dir, &page, &["--dump-dom".to_owned()]);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Width, height and size of the PNG chromium writes for `html`.
    fn screenshot(chromium: &Path, dir: &Path, name: &str, html: &str) -> (u32, u32, u64) {
        let page = dir.join(format!("{name}.html"));
        let png = dir.join(format!("{name}.png"));
        std::fs::write(&page, html).expect("page");
        let extra = [
            format!("--screenshot={}", png.display()),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ];
        browse(chromium, dir, &page, &extra);
        let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        // IHDR: width and height are the first two big-endian words of its data.
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        (
            word(16),
            word(20),
            u64::try_from(bytes.len()).expect("size"),
        )
    }

    fn count(text: &str, needle: &str) -> usize {
        text.matches(needle).count()
    }

    /// The checks every rendered report must pass: charts present as in the source, no
    /// error marker in the DOM, nothing refused in the log.
    fn assert_loads_cleanly(source: &str, dom: &str, log: &str) {
        assert!(dom.contains("<h1 id=\"title\">"), "the page did not load");
        for marker in [
            "<rect class=\"slice\"",
            "<path class=\"cdf\"",
            "<rect class=\"share\"",
        ] {
            assert_eq!(
                count(dom, marker),
                count(source, marker),
                "{marker} differs"
            );
        }
        for error in ["NaN", "undefined", "parsererror", "Infinity"] {
            assert!(!dom.contains(error), "the DOM shows {error}");
        }
        for refused in ["Refused to", "Uncaught", "ERR_"] {
            assert!(
                !log.contains(refused),
                "the browser log has {refused}: {log}"
            );
        }
    }

    fn run(path: &str) -> app::RunReport {
        let path = repo_root().join(path);
        let scenario = app::load(&path, None, false).expect("scenario loads");
        let args = RunArgs {
            timeline: true,
            ..RunArgs::default()
        };
        app::run_scenario(scenario, &args).expect("scenario runs")
    }

    /// A compare-shaped report of two runs, with fairness bars of each domain's CPU time
    /// against an equal split of the run's busy time (a test input for the renderer).
    fn two_scheduler_report() -> HtmlReport {
        let runs = [
            "scenarios/credit2-overload.toml",
            "scenarios/rtds-overload.toml",
        ]
        .iter()
        .map(|path| {
            let r = run(path);
            let m = &r.outcome.sinks_report.metrics;
            let busy_ns: u64 = m.domains.iter().map(|d| d.running_ns).sum();
            let fair_ns = busy_ns / u64::try_from(m.domains.len()).expect("count");
            let shares = m
                .domains
                .iter()
                .map(|d| ShareBar {
                    name: d.name.clone(),
                    norm_share_ppm: i64::try_from(d.running_ns * 1_000_000 / fair_ns).expect("ppm"),
                    actual_ns: d.running_ns,
                    entitled_ns: fair_ns,
                })
                .collect();
            let latency = m
                .domains
                .iter()
                .map(|d| LatencySeries {
                    name: d.name.clone(),
                    samples_ns: d.wakeup_samples_ns.clone(),
                })
                .collect();
            ReportRun {
                label: (*path).to_owned(),
                timeline: r.timeline,
                latency,
                shares,
            }
        })
        .collect();
        HtmlReport {
            title: "xensim compare <two scenarios>".to_owned(),
            table: "scheduler  p99\ncredit2    1 & 2\n".to_owned(),
            runs,
        }
    }

    #[test]
    fn run_report_loads_in_chromium_with_gantt_and_cdfs() {
        let Some(chromium) = chromium() else { return };
        let dir = scratch("run");
        let report = run("scenarios/credit2-overload.toml");
        let source = report.html();
        let cdf_count = report
            .outcome
            .sinks_report
            .metrics
            .domains
            .iter()
            .filter(|d| !d.wakeup_samples_ns.is_empty())
            .count();

        let (dom, log) = dump_dom(&chromium, &dir, &source);

        let _ = std::fs::remove_dir_all(&dir);
        assert_loads_cleanly(&source, &dom, &log);
        assert!(
            count(&dom, "<rect class=\"slice\"") > 100,
            "too few Gantt rects"
        );
        assert_eq!(count(&dom, "<path class=\"cdf\""), cdf_count);
        // credit2-overload's Pool-0 is contended: the domains with an entitlement get bars.
        let line = xensim::sweep::line::SeedResult::from_report(&report);
        let names: Vec<String> = (report.outcome.sinks_report.metrics.domains.iter())
            .map(|d| d.name.clone())
            .collect();
        let bars = xensim::compare::shares_of(std::slice::from_ref(&line), &names).len();
        assert!(bars > 0, "no domain with an entitlement");
        assert_eq!(count(&dom, "<rect class=\"share\""), bars);
    }

    #[test]
    fn compare_cli_report_and_perfetto_files_load() {
        let dir = scratch("compare-cli");
        let page = dir.join("cmp.html");
        let perfetto = dir.join("cmp.json");
        let out = Command::new(env!("CARGO_BIN_EXE_xensim"))
            .current_dir(repo_root())
            .args(["compare", "scenarios/credit2-overload.toml"])
            .args(["--schedulers", "credit2,rtds", "--seeds", "1..2"])
            .arg("--report")
            .arg(&page)
            .arg("--perfetto")
            .arg(&perfetto)
            .output()
            .expect("xensim runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let source = std::fs::read_to_string(&page).expect("compare wrote the report");
        for sched in ["credit2", "rtds"] {
            let json = std::fs::read_to_string(dir.join(format!("cmp.{sched}.json")))
                .expect("one Perfetto file per scheduler");
            let value: serde_json::Value = serde_json::from_str(&json).expect("Perfetto JSON");
            let events = value["traceEvents"].as_array().map_or(0, Vec::len);
            assert!(events > 100, "{sched}: {events} trace events");
        }
        assert_eq!(count(&source, "<svg class=\"gantt\""), 2);
        assert!(
            count(&source, "<rect class=\"share\"") > 0,
            "no fairness bars"
        );
        assert!(count(&source, "<path class=\"cdf\"") > 0, "no latency CDFs");
        assert!(source.contains("seeds 1..2"), "the table is missing");
        let Some(chromium) = chromium() else {
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        let (dom, log) = dump_dom(&chromium, &dir, &source);
        let _ = std::fs::remove_dir_all(&dir);
        assert_loads_cleanly(&source, &dom, &log);
    }

    #[test]
    fn compare_report_loads_in_chromium_with_fairness_bars() {
        let Some(chromium) = chromium() else { return };
        let dir = scratch("compare");
        let report = two_scheduler_report();
        let bar_count: usize = report.runs.iter().map(|r| r.shares.len()).sum();
        let source = html::render(&report);

        let (dom, log) = dump_dom(&chromium, &dir, &source);

        let _ = std::fs::remove_dir_all(&dir);
        assert_loads_cleanly(&source, &dom, &log);
        assert_eq!(count(&dom, "<svg class=\"gantt\""), 2);
        assert_eq!(count(&dom, "<rect class=\"share\""), bar_count);
        assert_eq!(count(&dom, "<line class=\"entitled\""), bar_count);
        assert!(
            dom.contains("&lt;two scenarios&gt;"),
            "the title is not escaped"
        );
    }

    #[test]
    fn screenshot_of_the_report_is_a_png_with_more_than_a_blank_page() {
        let Some(chromium) = chromium() else { return };
        let dir = scratch("shot");
        let blank =
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body></body></html>";
        let source = html::render(&two_scheduler_report());

        let (blank_w, blank_h, blank_bytes) = screenshot(&chromium, &dir, "blank", blank);
        let (w, h, bytes) = screenshot(&chromium, &dir, "report", &source);

        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((blank_w, blank_h), WINDOW);
        assert_eq!((w, h), WINDOW);
        // A blank page compresses to almost nothing; the charts do not.
        assert!(
            bytes > 4 * blank_bytes,
            "{bytes} bytes vs {blank_bytes} blank"
        );
    }
}
