//! What the CLI commands do, as library functions (the binary only parses arguments and
//! prints): run a scenario, replay a trace, recompute a run's outputs from its trace
//! (`xensim report`), answer an xl query at a virtual time, serve a scenario's XenStore on
//! a unix socket.

use std::path::{Component, Path, PathBuf};

use crate::record::{read_trace, record_fields, Divergence, Recorder, TraceError, TraceHeader};
use crate::report::html::{HtmlReport, LatencySeries, ReportRun};
use crate::report::metrics::{self, ExpectFailure};
use crate::report::perfetto::PerfettoMeta;
use crate::report::timeline::capture::TimelineOptions;
use crate::report::timeline::Timeline;
use crate::run::{self, RunError, RunOptions, RunOutcome};
use crate::scenario::{self, LoadError, LoadOptions, Scenario};
use crate::xl::command::XlCommand;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The scenario (or an xl.cfg) is invalid: exit 2.
    #[error("{}", .0.render())]
    Load(#[from] LoadError),
    /// The run could not proceed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A trace file problem.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// `xensim serve` failed.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    /// A bad argument: exit 2.
    #[error("{0}")]
    Usage(String),
    /// `xensim report`: the re-run did not reproduce the trace (exit 1).
    #[error("{0}")]
    Diverged(String),
    /// A sweep argument, shard file or merge problem: exit 2.
    #[error(transparent)]
    Sweep(#[from] crate::sweep::SweepError),
}

impl AppError {
    /// The exit status for this error: 2 for bad input, 1 when the run itself failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            // A trace that cannot be read or written is a bad argument, like a bad scenario.
            AppError::Load(_) | AppError::Usage(_) | AppError::Trace(_) => 2,
            AppError::Sweep(_) => 2,
            AppError::Run(RunError::Trace(_)) => 2,
            AppError::Run(_) | AppError::Diverged(_) => 1,
            AppError::Serve(e) if e.is_usage() => 2,
            AppError::Serve(crate::serve::ServeError::Run(RunError::Trace(_))) => 2,
            AppError::Serve(_) => 1,
        }
    }
}

/// A finished run with its metrics and expectation results.
#[derive(Debug)]
pub struct RunReport {
    /// The scenario that ran.
    pub scenario: Scenario,
    /// The run itself.
    pub outcome: RunOutcome,
    /// The metrics JSON (`--metrics`), as text.
    pub metrics_json: String,
    /// The human summary.
    pub summary: String,
    /// Failed `[[expect]]` entries.
    pub expect_failures: Vec<ExpectFailure>,
    /// Timeline commands whose exit status differed from `expect_rc`.
    pub rc_failures: Vec<String>,
    /// The captured timeline (`RunArgs::timeline` or `[sim.trace] perfetto`).
    pub timeline: Option<Timeline>,
}

impl RunReport {
    /// 0 if everything held, 1 if an expectation, `expect_rc` or invariant failed.
    pub fn exit_code(&self) -> i32 {
        let failed = !self.expect_failures.is_empty()
            || !self.rc_failures.is_empty()
            || self.outcome.invariant_failure.is_some();
        i32::from(failed)
    }
}

/// Options of `xensim run`.
#[derive(Debug, Default, Clone)]
pub struct RunArgs {
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--check`.
    pub check: bool,
    /// `--trace`.
    pub trace: Option<PathBuf>,
    /// `--strict`.
    pub strict: bool,
    /// Keep the decision log.
    pub decision_log: bool,
    /// Capture the timeline (`--perfetto`, `--report`).
    pub timeline: bool,
    /// `--window A..B`: the timeline's window, ns (default: `[sim.trace] perfetto_window`,
    /// else the whole run).
    pub window_ns: Option<(u64, u64)>,
}

/// Loads a scenario file.
pub fn load(path: &Path, seed: Option<u64>, strict: bool) -> Result<Scenario, AppError> {
    Ok(scenario::load_file(
        path,
        &LoadOptions {
            strict,
            seed_override: seed,
        },
    )?)
}

pub(crate) fn header_of(scenario: &Scenario) -> TraceHeader {
    TraceHeader {
        seed: scenario.sim.seed,
        scenario_name: scenario.file_name.clone(),
        sources: scenario
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.text.clone()))
            .collect(),
        costs_hash: run::host::cost_table_hash(scenario),
    }
}

/// Runs a loaded scenario and evaluates its expectations.
pub fn run_scenario(scenario: Scenario, args: &RunArgs) -> Result<RunReport, AppError> {
    let trace_path = args
        .trace
        .clone()
        .or_else(|| scenario.sim.trace_file.clone());
    let recorder = match &trace_path {
        Some(path) => Recorder::to_file(path, &header_of(&scenario))?,
        None => Recorder::new(),
    };
    let opts = RunOptions {
        check: args.check,
        stop_at_ns: None,
        decision_log: args.decision_log || scenario.sim.decision_log,
        timeline: timeline_options(&scenario, args.timeline, args.window_ns)?,
    };
    let outcome = run::run(&scenario, &opts, recorder)?;
    Ok(report(scenario, outcome))
}

/// What the timeline captures: `None` unless asked for (`wanted`) or the scenario names a
/// Perfetto file; the window is `window_ns`, else the scenario's `perfetto_window`.
fn timeline_options(
    scenario: &Scenario,
    wanted: bool,
    window_ns: Option<(u64, u64)>,
) -> Result<Option<TimelineOptions>, AppError> {
    if !wanted && scenario.sim.perfetto_file.is_none() {
        return Ok(None);
    }
    let window_ns = window_ns.or(scenario.sim.perfetto_window_ns);
    if let Some((start_ns, end_ns)) = window_ns {
        if start_ns >= end_ns || start_ns >= scenario.sim.duration_ns {
            return Err(AppError::Usage(format!(
                "timeline window {start_ns}..{end_ns} ns (--window or [sim.trace] \
                 perfetto_window): it must start before it ends and before the end of the run \
                 ({} ns)",
                scenario.sim.duration_ns
            )));
        }
    }
    let counters = &scenario.sim.perfetto_counters;
    Ok(Some(TimelineOptions {
        window_ns,
        runq_counters: counters.iter().any(|c| c == "runq"),
        free_memory_counter: counters.iter().any(|c| c == "free_memory"),
    }))
}

/// The report of a finished run: metrics, expectation and `expect_rc` results.
pub(crate) fn report(scenario: Scenario, mut outcome: RunOutcome) -> RunReport {
    let run = metrics::RunInfo {
        scenario: scenario.file_name.clone(),
        seed: scenario.sim.seed,
        trace_hash: outcome.hash.to_string(),
    };
    let metrics_value = outcome.sinks_report.metrics.to_json_value(&run);
    let metrics_json = outcome.sinks_report.metrics.to_json_string(&run);
    let expect_failures = metrics::check_expectations(&metrics_value, &scenario.expects);
    let summary = metrics::render_summary(&outcome.sinks_report.metrics);
    let rc_failures = outcome
        .commands
        .iter()
        .filter_map(|c| match (c.expect_rc, c.rc) {
            (Some(want), got) if got != Some(want) => Some(format!(
                "expect_rc failed: at {} ns `xl {}` exited {}, want {want}",
                c.time_ns,
                c.text,
                got.map_or_else(|| "(still running)".to_string(), |rc| rc.to_string())
            )),
            _ => None,
        })
        .collect();
    let timeline = outcome.sinks_report.timeline.take();
    RunReport {
        scenario,
        outcome,
        metrics_json,
        summary,
        expect_failures,
        rc_failures,
        timeline,
    }
}

impl RunReport {
    /// The Perfetto JSON export of the run (`--perfetto`), if its timeline was captured.
    pub fn perfetto_json(&self) -> Option<String> {
        let meta = PerfettoMeta {
            xensim_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: self.scenario.file_name.clone(),
            seed: self.scenario.sim.seed,
            trace_hash: self.outcome.hash.to_string(),
        };
        Some(crate::report::perfetto::write(
            self.timeline.as_ref()?,
            &meta,
        ))
    }

    /// The HTML report of the run (`--report`): its timeline's Gantt, the wakeup-latency
    /// CDF of every domain, the fairness bars of domains in contended pools (`metrics.md`
    /// §1.4, as `xensim compare` computes them), and the summary.
    pub fn html(&self) -> String {
        let metrics = &self.outcome.sinks_report.metrics;
        let multi_host = self.scenario.hosts.len() > 1;
        let latency = metrics
            .domains
            .iter()
            .map(|d| LatencySeries {
                name: if multi_host {
                    format!("{}/{}", d.host, d.name)
                } else {
                    d.name.clone()
                },
                samples_ns: d.wakeup_samples_ns.clone(),
            })
            .collect();
        let mut schedulers: Vec<&str> = metrics
            .hosts
            .iter()
            .flat_map(|h| h.pools.iter().map(|p| p.scheduler.as_str()))
            .collect();
        schedulers.sort_unstable();
        schedulers.dedup();
        let report = HtmlReport {
            title: format!(
                "xensim run {}   seed {}",
                self.scenario.file_name, self.scenario.sim.seed
            ),
            table: self.summary.clone(),
            runs: vec![ReportRun {
                label: schedulers.join(" + "),
                timeline: self.timeline.clone(),
                latency,
                shares: self.share_bars(),
            }],
        };
        crate::report::html::render(&report)
    }

    /// Fairness bars of the domains with an entitlement; none on a multi-host run, whose
    /// domain names may repeat across hosts.
    fn share_bars(&self) -> Vec<crate::report::html::ShareBar> {
        if self.scenario.hosts.len() > 1 {
            return Vec::new();
        }
        let line = crate::sweep::line::SeedResult::from_report(self);
        let names: Vec<String> = (self.outcome.sinks_report.metrics.domains.iter())
            .map(|d| d.name.clone())
            .collect();
        crate::compare::shares_of(std::slice::from_ref(&line), &names)
            .into_iter()
            .map(|s| crate::report::html::ShareBar {
                name: s.name,
                norm_share_ppm: s.norm_share_ppm,
                actual_ns: s.actual_ns,
                entitled_ns: s.entitled_ns,
            })
            .collect()
    }
}

/// Options of `xensim report TRACE`.
#[derive(Debug, Default, Clone)]
pub struct ReportArgs {
    /// Capture the timeline (`--perfetto`, `--report`).
    pub timeline: bool,
    /// `--window A..B`, ns.
    pub window_ns: Option<(u64, u64)>,
}

/// `xensim report TRACE`: re-simulates the run a trace recorded (from the scenario and
/// xl.cfg texts it carries, as `replay` does), checks every record and the hash, and
/// returns the run's report, whose outputs are byte-identical to the original run's.
pub fn report_trace(trace: &Path, args: &ReportArgs) -> Result<RunReport, AppError> {
    let file = read_trace(trace)?;
    if crate::serve::session::is_session(&file.records) {
        return Err(AppError::Usage(format!(
            "{}: a `xensim serve` session trace; `xensim report` reads traces of \
             `xensim run --trace` (use `xensim replay` for sessions)",
            trace.display()
        )));
    }
    let dir = std::env::temp_dir().join(format!("xensim-report-{}", std::process::id()));
    let scenario = materialize_and_load(&file.header, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = scenario?;
    if run::host::cost_table_hash(&scenario) != file.header.costs_hash {
        return Err(AppError::Usage(format!(
            "{}: recorded with another cost table than this xensim's; the re-run would diverge",
            trace.display()
        )));
    }
    let opts = RunOptions {
        check: false,
        stop_at_ns: None,
        decision_log: false,
        timeline: timeline_options(&scenario, args.timeline, args.window_ns)?,
    };
    let outcome = run::run(&scenario, &opts, Recorder::checking(file.records))?;
    if let Some(d) = &outcome.divergence {
        return Err(AppError::Diverged(format!(
            "{}: the re-run does not reproduce the trace\n{}",
            trace.display(),
            describe_divergence(d)
        )));
    }
    if outcome.hash != file.hash {
        return Err(AppError::Diverged(format!(
            "{}: recorded hash {} but the re-run hashes to {}",
            trace.display(),
            file.hash,
            outcome.hash
        )));
    }
    Ok(report(scenario, outcome))
}

/// Runs the scenario once with a given seed and returns only the hash (tests, sweeps).
pub fn hash_of(scenario: &Scenario) -> Result<crate::record::RunHash, AppError> {
    let outcome = run::run(scenario, &RunOptions::default(), Recorder::new())?;
    Ok(outcome.hash)
}

/// The result of `xensim replay`.
#[derive(Debug)]
pub struct ReplayReport {
    /// Hash recorded in the trace.
    pub recorded: crate::record::RunHash,
    /// Hash of the re-run.
    pub replayed: crate::record::RunHash,
    /// Records in the trace.
    pub record_count: usize,
    /// The first record that differs.
    pub divergence: Option<Divergence>,
}

fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then(|| path.to_path_buf())
}

/// Re-runs a trace from the scenario and xl.cfg texts it carries and compares records:
/// the whole simulation, or (`core_only`) only the cores, fed the recorded core inputs.
pub fn replay(trace: &Path, core_only: bool) -> Result<ReplayReport, AppError> {
    let file = read_trace(trace)?;
    let dir = std::env::temp_dir().join(format!("xensim-replay-{}", std::process::id()));
    let scenario = materialize_and_load(&file.header, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = scenario?;
    if run::host::cost_table_hash(&scenario) != file.header.costs_hash {
        return Err(AppError::Usage(format!(
            "{}: recorded with another cost table than this xensim's; replay would diverge",
            trace.display()
        )));
    }
    let record_count = file.records.len();
    if !core_only && crate::serve::session::is_session(&file.records) {
        let outcome =
            crate::serve::session::replay(&scenario, file.records).map_err(|e| match e {
                crate::serve::session::SessionReplayError::Run(run) => AppError::Run(run),
                record => AppError::Usage(format!("{}: {record}", trace.display())),
            })?;
        return Ok(ReplayReport {
            recorded: file.hash,
            replayed: outcome.hash,
            record_count,
            divergence: outcome.divergence,
        });
    }
    if core_only {
        let report = crate::replay_core::replay_core(&scenario, file.records)
            .map_err(|e| AppError::Usage(format!("{}: {e}", trace.display())))?;
        return Ok(ReplayReport {
            recorded: file.hash,
            replayed: report.hash,
            record_count,
            divergence: report.divergence,
        });
    }
    let outcome = run::run(
        &scenario,
        &RunOptions::default(),
        Recorder::checking(file.records),
    )?;
    Ok(ReplayReport {
        recorded: file.hash,
        replayed: outcome.hash,
        record_count,
        divergence: outcome.divergence,
    })
}

fn materialize_and_load(header: &TraceHeader, dir: &Path) -> Result<Scenario, AppError> {
    let io = |e: std::io::Error| AppError::Usage(format!("{}: {e}", dir.display()));
    for (name, text) in &header.sources {
        let relative = safe_relative(name).ok_or_else(|| {
            AppError::Usage(format!("trace names an unsafe source path {name:?}"))
        })?;
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    let scenario_path = dir.join(&header.scenario_name);
    Ok(scenario::load_file(
        &scenario_path,
        &LoadOptions {
            strict: false,
            seed_override: Some(header.seed),
        },
    )?)
}

/// Renders a divergence for humans: index, time and both encodings in hex.
pub fn describe_divergence(d: &Divergence) -> String {
    let side = |bytes: &Option<Vec<u8>>| match bytes {
        None => "(none: the stream ended)".to_string(),
        Some(b) => match record_fields(b) {
            Some((kind, host, time_ns, payload)) => {
                format!("{kind} host={host} t={time_ns}ns payload={}", hex(payload))
            }
            None => format!("malformed record {}", hex(b)),
        },
    };
    let time = d
        .time_ns
        .map_or_else(|| "end of run".to_string(), |t| format!("t={t}ns"));
    format!(
        "first divergence at record {} ({time})\n  recorded: {}\n  replayed: {}\n",
        d.index,
        side(&d.expected),
        side(&d.actual)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `xensim xl FILE [--host H] --at TIME -- <command>`: run to `at_ns`, then answer the query
/// on host `H` (default: the first).
pub fn xl_at(
    scenario: &Scenario,
    at_ns: u64,
    host: Option<&str>,
    words: &[String],
) -> Result<crate::report::xl::XlOutput, AppError> {
    let host_index = host_index(scenario, host)?;
    if crate::xl::xs_command::is_xenstore(words) {
        return xenstore_at(scenario, at_ns, host_index, words);
    }
    let command =
        XlCommand::parse(words).map_err(|e| AppError::Usage(format!("xl: {}", e.message)))?;
    if matches!(command, XlCommand::Create { .. }) {
        return Err(AppError::Usage(format!(
            "xensim xl cannot read new xl.cfg files; `{}`: put the create in the scenario's \
             [[at]] timeline",
            words.join(" ")
        )));
    }
    let opts = at_options(scenario, at_ns)?;
    if command.is_query() {
        return Ok(run::query_at(scenario, &opts, host_index, &command)?);
    }
    let text = words.join(" ");
    Ok(run::command_at(
        scenario, &opts, host_index, &text, &command,
    )?)
}

/// The run options of a query at `at_ns`, which must be within the scenario.
fn at_options(scenario: &Scenario, at_ns: u64) -> Result<RunOptions, AppError> {
    if at_ns > scenario.sim.duration_ns {
        return Err(AppError::Usage(format!(
            "--at {at_ns} ns is past the scenario's duration ({} ns)",
            scenario.sim.duration_ns
        )));
    }
    Ok(RunOptions {
        check: false,
        stop_at_ns: Some(at_ns),
        decision_log: false,
        timeline: None,
    })
}

/// `xensim xl FILE --at TIME -- xenstore-ls ...`: a read-only xenstore client on the host's
/// store at `at_ns` (writes belong in the timeline, as `[[at]] xenstore = "..."`).
fn xenstore_at(
    scenario: &Scenario,
    at_ns: u64,
    host_index: u16,
    words: &[String],
) -> Result<crate::report::xl::XlOutput, AppError> {
    let command = crate::xl::xs_command::parse(words).map_err(|e| AppError::Usage(e.message))?;
    if !command.is_query() {
        return Err(AppError::Usage(format!(
            "xensim xl answers queries; `{}` changes the store: put it in the scenario's \
             [[at]] timeline as xenstore = \"...\"",
            words.join(" ")
        )));
    }
    let opts = at_options(scenario, at_ns)?;
    Ok(run::xs_query_at(scenario, &opts, host_index, &command)?)
}

/// The index of host `name` (default: the first host).
pub fn host_index(scenario: &Scenario, name: Option<&str>) -> Result<u16, AppError> {
    let index = match name {
        None => 0,
        Some(name) => scenario
            .hosts
            .iter()
            .position(|h| h.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = scenario.hosts.iter().map(|h| h.name.as_str()).collect();
                AppError::Usage(format!(
                    "--host {name}: no such host (hosts: {})",
                    known.join(", ")
                ))
            })?,
    };
    Ok(u16::try_from(index).unwrap_or(u16::MAX))
}

/// Options of `xensim serve`.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// `--xenstore-socket`.
    pub socket: PathBuf,
    /// `--at` (default: right after boot, time 0).
    pub at_ns: Option<u64>,
    /// `--run`.
    pub run: bool,
    /// `--host` (default: the first host).
    pub host: Option<String>,
    /// `--trace`.
    pub trace: Option<PathBuf>,
}

/// What a serve session did.
#[derive(Debug)]
pub struct ServeReport {
    /// The run (hash, records, end time).
    pub outcome: RunOutcome,
    /// Requests handled.
    pub request_count: u64,
    /// Clients accepted.
    pub accepted_count: u32,
}

/// `xensim serve`: boots `scenario`, runs it to `--at`, binds the socket, calls
/// `listening` with the host name and the socket path, and serves until `stop` is set.
pub fn serve(
    scenario: &Scenario,
    args: &ServeArgs,
    stop: &std::sync::atomic::AtomicBool,
    listening: &mut dyn FnMut(&str, &Path),
) -> Result<ServeReport, AppError> {
    use crate::serve::{ServeSession, Server, SessionOptions};
    let host = host_index(scenario, args.host.as_deref())?;
    let at_ns = args.at_ns.unwrap_or(0);
    if at_ns > scenario.sim.duration_ns {
        return Err(AppError::Usage(format!(
            "--at {at_ns} ns is past the scenario's duration ({} ns)",
            scenario.sim.duration_ns
        )));
    }
    let recorder = match &args.trace {
        Some(path) => Recorder::to_file(path, &header_of(scenario))?,
        None => Recorder::new(),
    };
    let mut server = Server::bind(&args.socket)?;
    let opts = SessionOptions {
        host,
        at_ns,
        run: args.run,
    };
    let mut session = ServeSession::start(scenario, opts, recorder)?;
    listening(&scenario.hosts[usize::from(host)].name, server.path());
    // The wall clock only paces where `--run`'s timeline has caught up between requests;
    // every request's virtual time is recorded, so replays never consult it.
    #[allow(clippy::disallowed_types)]
    let started = std::time::Instant::now();
    let mut clock_ns = || {
        let elapsed_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        args.run.then(|| at_ns.saturating_add(elapsed_ns))
    };
    let stats = server.run(&mut session, stop, &mut clock_ns)?;
    let request_count = session.request_count();
    let outcome = session.finish()?;
    Ok(ServeReport {
        outcome,
        request_count,
        accepted_count: stats.accepted_count,
    })
}
