//! The `xensim` command line: parses arguments, calls `xensim::app`, prints, and exits with
//! 0 (ok), 1 (an expectation, invariant or replay check failed) or 2 (bad input).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use xensim::app::{self, AppError, RunArgs};
use xensim::compare;
use xensim::scenario::values::parse_duration;

#[derive(Parser, Debug)]
#[command(
    name = "xensim",
    version,
    about = "Deterministic full-system simulator of the Xen hypervisor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario; print the summary and the run hash.
    Run {
        /// Scenario file (TOML).
        file: PathBuf,
        /// Override `[sim] seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Check every invariant after every event.
        #[arg(long)]
        check: bool,
        /// Write the replay trace here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write the metrics JSON here.
        #[arg(long)]
        metrics: Option<PathBuf>,
        /// Write the readable decision log here.
        #[arg(long)]
        decision_log: Option<PathBuf>,
        /// Unknown xl.cfg / xl.conf keys are errors.
        #[arg(long)]
        strict: bool,
        /// Write the Chrome/Perfetto trace-event JSON here (open it in ui.perfetto.dev).
        #[arg(long)]
        perfetto: Option<PathBuf>,
        /// Write the self-contained HTML report here (Gantt, latency CDFs, summary).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Only this virtual-time window in the Perfetto export and the Gantt (`1s..2s`).
        #[arg(long, value_name = "A..B")]
        window: Option<String>,
        /// Pool-0's scheduler on every host (credit2, rtds, null), as `compare` runs it.
        #[arg(long)]
        scheduler: Option<String>,
    },
    /// Recompute a run's outputs from its replay trace, byte-identical to the run's: the
    /// run is re-simulated and every record and the hash are checked first.
    Report {
        /// Trace written by `xensim run --trace`.
        trace: PathBuf,
        /// Write the metrics JSON here.
        #[arg(long)]
        metrics: Option<PathBuf>,
        /// Write the Chrome/Perfetto trace-event JSON here.
        #[arg(long)]
        perfetto: Option<PathBuf>,
        /// Write the self-contained HTML report here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Only this virtual-time window in the Perfetto export and the Gantt (`1s..2s`);
        /// give the run's `--window` to get the run's bytes.
        #[arg(long, value_name = "A..B")]
        window: Option<String>,
    },
    /// Run the scenario under each scheduler (same seeds, same workload streams) and print
    /// one table: latency, wait, share, deadline misses, switches, idle (metrics.md §4.2).
    Compare(CompareCli),
    /// Run many seeds in parallel; one JSON result line per seed; `sweep merge DIR...`
    /// combines shard outputs into the same summary.
    Sweep(SweepCli),
    /// Re-run a replay trace and verify its hash; name the first divergent record.
    Replay {
        /// Trace written by `xensim run --trace`.
        trace: PathBuf,
        /// Feed the recorded core inputs to bare cores (no simulated machine or guests).
        #[arg(long)]
        core: bool,
    },
    /// Serve the scenario's XenStore on a unix socket to real clients (xenstore-ls, pyxs,
    /// libxenstore); Ctrl-C or SIGTERM ends the session and prints the run hash.
    Serve {
        /// Scenario file (TOML).
        file: PathBuf,
        /// The unix socket to create (clients: `XENSTORED_PATH=PATH xenstore-ls`).
        #[arg(long, value_name = "PATH")]
        xenstore_socket: PathBuf,
        /// Virtual time the timeline runs to before the socket opens (default: 0).
        #[arg(long)]
        at: Option<String>,
        /// Keep the timeline running with the wall clock (default: frozen at `--at`).
        #[arg(long)]
        run: bool,
        /// Which host's XenStore to serve (default: the first host).
        #[arg(long)]
        host: Option<String>,
        /// Write the replay trace here (`xensim replay` verifies it).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Override `[sim] seed`.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Answer an xl query (list, info, dmesg) for the simulated state at a virtual time.
    Xl {
        /// Scenario file (TOML).
        file: PathBuf,
        /// Virtual time (`500ms`, `2s`, ...; default: the end of the run).
        #[arg(long)]
        at: Option<String>,
        /// Override `[sim] seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Which host's dom0 runs xl (default: the first host).
        #[arg(long)]
        host: Option<String>,
        /// The xl command, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Reduce a failing scenario (fewer domains, [[at]] entries and expectations, a shorter
    /// duration, fewer vCPUs) while it still fails the same way; write FILE.min.toml.
    Shrink {
        /// Scenario file (TOML) whose run fails (exit status 1).
        file: PathBuf,
        /// Override `[sim] seed` (the minimal file gets this seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Check every invariant after every event (to shrink an invariant failure).
        #[arg(long)]
        check: bool,
        /// Most runs to spend, the original's included.
        #[arg(long, default_value_t = xensim::shrink::RUNS_MAX_DEFAULT)]
        max_runs: u32,
        /// Where to write the minimal scenario (default: FILE.min.toml beside FILE).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run reference performance scenarios (default: scenarios/bench/*.toml) and print
    /// records and events per wall second, the virtual-to-wall ratio, the charged decision
    /// cost, the peak RSS and the run hash. Build with --release.
    Bench {
        /// Scenario files (TOML).
        files: Vec<PathBuf>,
        /// Override `[sim] seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Write every reference scenario of specs/scenario.md section 11 into this
        /// directory (those this build cannot load yet included) instead of running.
        #[arg(long, value_name = "DIR")]
        generate: Option<PathBuf>,
    },
}

/// Writes to stdout; a closed pipe (`xensim run ... | head`) ends the process quietly.
fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(error) = std::io::stdout().lock().write_fmt(args) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        std::process::exit(2);
    }
}

/// `print!` that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::emit(format_args!($($arg)*)) };
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    () => { $crate::emit(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

mod batch;

use batch::{compare_cli, sweep_cli, CompareCli, SweepCli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = error
                .downcast_ref::<AppError>()
                .map_or(1, AppError::exit_code);
            eprintln!("{}", render_error(&error));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

fn render_error(error: &anyhow::Error) -> String {
    match error.downcast_ref::<AppError>() {
        Some(AppError::Load(load)) => load.render().trim_end().to_string(),
        _ => format!("error: {error:#}"),
    }
}

fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run {
            file,
            seed,
            check,
            trace,
            metrics,
            decision_log,
            strict,
            perfetto,
            report,
            window,
            scheduler,
        } => {
            let args = RunArgs {
                seed,
                check,
                trace,
                strict,
                decision_log: decision_log.is_some(),
                timeline: perfetto.is_some() || report.is_some(),
                window_ns: window.as_deref().map(parse_window).transpose()?,
            };
            let outputs = Outputs {
                metrics,
                perfetto,
                report,
            };
            run(&file, &args, &outputs, decision_log, scheduler.as_deref())
        }
        Command::Report {
            trace,
            metrics,
            perfetto,
            report,
            window,
        } => {
            let args = app::ReportArgs {
                timeline: perfetto.is_some() || report.is_some(),
                window_ns: window.as_deref().map(parse_window).transpose()?,
            };
            let outputs = Outputs {
                metrics,
                perfetto,
                report,
            };
            report_trace(&trace, &args, &outputs)
        }
        Command::Compare(args) => compare_cli(args),
        Command::Sweep(args) => sweep_cli(args),
        Command::Replay { trace, core } => replay(&trace, core),
        Command::Serve {
            file,
            xenstore_socket,
            at,
            run,
            host,
            trace,
            seed,
        } => {
            let at_ns = at.as_deref().map(parse_at).transpose()?;
            let args = app::ServeArgs {
                socket: xenstore_socket,
                at_ns,
                run,
                host,
                trace,
            };
            serve(&file, &args, seed)
        }
        Command::Xl {
            file,
            at,
            seed,
            host,
            command,
        } => xl(&file, at.as_deref(), seed, host.as_deref(), &command),
        Command::Shrink {
            file,
            seed,
            check,
            max_runs,
            out,
        } => {
            let args = xensim::shrink::ShrinkArgs {
                seed,
                check,
                runs_max: max_runs,
                out,
            };
            shrink(&file, &args)
        }
        Command::Bench {
            files,
            seed,
            generate,
        } => match generate {
            Some(dir) => bench_generate(&dir),
            None => bench(files, seed),
        },
    }
}

/// Where `run` and `report` write the run's outputs.
struct Outputs {
    metrics: Option<PathBuf>,
    perfetto: Option<PathBuf>,
    report: Option<PathBuf>,
}

/// Writes the outputs asked for; for `run`, `[sim.trace] perfetto` is the default Perfetto
/// path (`report` reads the scenario from the trace, so its paths point nowhere).
fn write_outputs(
    report: &app::RunReport,
    outputs: &Outputs,
    scenario_paths: bool,
) -> anyhow::Result<()> {
    let write = |path: &std::path::Path, text: &str| {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    if let Some(path) = &outputs.metrics {
        write(path, &report.metrics_json)?;
    }
    let scenario_perfetto = report
        .scenario
        .sim
        .perfetto_file
        .as_ref()
        .filter(|_| scenario_paths);
    let perfetto = outputs.perfetto.as_ref().or(scenario_perfetto);
    if let (Some(path), Some(json)) = (perfetto, report.perfetto_json()) {
        write(path, &json)?;
    }
    if let Some(path) = &outputs.report {
        write(path, &report.html())?;
    }
    if let Some(timeline) = report.timeline.as_ref().filter(|t| t.dropped_count > 0) {
        eprintln!(
            "warning: the timeline is full ({} records); {} later records were left out \
             (capture a shorter --window)",
            timeline.record_count(),
            timeline.dropped_count
        );
    }
    Ok(())
}

fn report_trace(
    trace: &std::path::Path,
    args: &app::ReportArgs,
    outputs: &Outputs,
) -> anyhow::Result<u8> {
    let report = app::report_trace(trace, args)?;
    write_outputs(&report, outputs, false)?;
    out!("{}", report.summary);
    outln!("records: {}", report.outcome.record_count);
    outln!("run hash: {} (matches the trace)", report.outcome.hash);
    Ok(0)
}

fn run(
    file: &std::path::Path,
    args: &RunArgs,
    outputs: &Outputs,
    decisions: Option<PathBuf>,
    scheduler: Option<&str>,
) -> anyhow::Result<u8> {
    let mut scenario = app::load(file, args.seed, args.strict)?;
    if let Some(name) = scheduler {
        let sched = compare::parse_scheduler(name)
            .map_err(|e| AppError::Usage(e.to_string().replace("--schedulers", "--scheduler")))?;
        compare::set_pool0_scheduler(&mut scenario, sched);
    }
    for warning in &scenario.warnings {
        eprintln!("{}", warning.trim_end());
    }
    // `[sim.trace] decision_log = true` without `--decision-log`: beside the scenario.
    let decisions = decisions.or_else(|| {
        scenario
            .sim
            .decision_log
            .then(|| file.with_extension("decisions.txt"))
    });
    let report = app::run_scenario(scenario, args)?;
    write_outputs(&report, outputs, true)?;
    if let (Some(path), Some(log)) = (decisions, &report.outcome.sinks_report.decision_log) {
        std::fs::write(&path, log).with_context(|| format!("writing {}", path.display()))?;
    }
    print_run(&report);
    Ok(u8::try_from(report.exit_code()).unwrap_or(1))
}

fn print_run(report: &app::RunReport) {
    let outcome = &report.outcome;
    for c in &outcome.commands {
        let rc =
            c.rc.map_or_else(|| "running".to_string(), |rc| rc.to_string());
        outln!(
            "[{} {}] xl {} (rc={rc})",
            xensim::run::decisions::seconds(c.time_ns),
            c.host,
            c.text
        );
        for line in c.stdout.lines() {
            outln!("  {line}");
        }
        for line in c.stderr.lines() {
            outln!("  stderr: {line}");
        }
    }
    out!("{}", report.summary);
    if let Some(failure) = &outcome.invariant_failure {
        outln!(
            "invariant violated after event {} at t={} ns on {}:",
            failure.event_index,
            failure.time_ns,
            failure.host
        );
        for v in &failure.violations {
            outln!("  {}: {}", v.invariant, v.detail);
        }
        outln!(
            "reproduce: xensim run {} --seed {} --check",
            report.scenario.file_name,
            report.scenario.sim.seed
        );
    }
    for failure in &report.expect_failures {
        outln!("{failure}");
    }
    for failure in &report.rc_failures {
        outln!("{failure}");
    }
    let expect_count = report.scenario.expects.len();
    if expect_count > 0 && report.expect_failures.is_empty() {
        outln!("expectations: all {expect_count} held");
    }
    outln!(
        "events: {}  records: {}  virtual time: {} s",
        outcome.event_count,
        outcome.record_count,
        xensim::run::decisions::seconds(outcome.end_ns)
    );
    outln!("run hash: {}", outcome.hash);
}

fn replay(trace: &std::path::Path, core_only: bool) -> anyhow::Result<u8> {
    let report = app::replay(trace, core_only)?;
    outln!("records: {}", report.record_count);
    outln!("recorded hash: {}", report.recorded);
    outln!("replayed hash: {}", report.replayed);
    match &report.divergence {
        Some(d) => {
            out!("{}", app::describe_divergence(d));
            Ok(1)
        }
        None if report.recorded != report.replayed => {
            outln!("hashes differ although every record matched (corrupt trace?)");
            Ok(1)
        }
        None => {
            outln!("replay matches");
            Ok(0)
        }
    }
}

fn xl(
    file: &std::path::Path,
    at: Option<&str>,
    seed: Option<u64>,
    host: Option<&str>,
    words: &[String],
) -> anyhow::Result<u8> {
    let scenario = app::load(file, seed, false)?;
    let at_ns = match at {
        Some(text) => {
            parse_duration(text).map_err(|e| AppError::Usage(format!("--at {text}: {e}")))?
        }
        None => scenario.sim.duration_ns,
    };
    let out = app::xl_at(&scenario, at_ns, host, words)?;
    out!("{}", out.stdout);
    eprint!("{}", out.stderr);
    Ok(u8::try_from(out.rc).unwrap_or(1))
}

/// `A..B` of two durations (`1s..2500ms`).
fn parse_window(text: &str) -> Result<(u64, u64), AppError> {
    let usage = |why: String| AppError::Usage(format!("--window {text}: {why}"));
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| usage("expected A..B, two durations such as 1s..2s".to_string()))?;
    let start_ns = parse_duration(a).map_err(|e| usage(e.to_string()))?;
    let end_ns = parse_duration(b).map_err(|e| usage(e.to_string()))?;
    if start_ns >= end_ns {
        return Err(usage("the window must start before it ends".to_string()));
    }
    Ok((start_ns, end_ns))
}

fn parse_at(text: &str) -> Result<u64, AppError> {
    parse_duration(text).map_err(|e| AppError::Usage(format!("--at {text}: {e}")))
}

fn serve(file: &std::path::Path, args: &app::ServeArgs, seed: Option<u64>) -> anyhow::Result<u8> {
    let scenario = app::load(file, seed, false)?;
    for warning in &scenario.warnings {
        eprintln!("{}", warning.trim_end());
    }
    let stop = xensim::serve::stop_on_signals().map_err(AppError::from)?;
    let mut listening = |host: &str, path: &std::path::Path| {
        outln!(
            "xensim serve: XenStore of host {host} on {} (Ctrl-C ends the session)",
            path.display()
        );
    };
    let report = app::serve(&scenario, args, &stop, &mut listening)?;
    outln!(
        "requests: {}  clients: {}  records: {}  virtual time: {} s",
        report.request_count,
        report.accepted_count,
        report.outcome.record_count,
        xensim::run::decisions::seconds(report.outcome.end_ns)
    );
    outln!("run hash: {}", report.outcome.hash);
    Ok(0)
}

fn bench(files: Vec<PathBuf>, seed: Option<u64>) -> anyhow::Result<u8> {
    use xensim::bench::measure;
    let files = if files.is_empty() {
        default_bench_files()?
    } else {
        files
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; bench numbers need `cargo build --release`");
    }
    outln!("{}", measure::TABLE_HEADER);
    for file in &files {
        let row = measure::run_one(file, seed)?;
        outln!("{}", measure::render_row(&row));
    }
    Ok(0)
}

/// `scenarios/bench/*.toml` in the current directory, sorted.
fn default_bench_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = std::path::Path::new("scenarios/bench");
    let entries = std::fs::read_dir(dir).map_err(|e| {
        AppError::Usage(format!(
            "{}: {e} (run from the repository root or name the files)",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

fn bench_generate(dir: &std::path::Path) -> anyhow::Result<u8> {
    use xensim::bench::scenarios;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for spec in scenarios::all() {
        let path = dir.join(format!("{}.toml", spec.name));
        std::fs::write(&path, scenarios::render(&spec))
            .with_context(|| format!("writing {}", path.display()))?;
        outln!("{}", path.display());
    }
    Ok(0)
}

fn shrink(file: &std::path::Path, args: &xensim::shrink::ShrinkArgs) -> anyhow::Result<u8> {
    use xensim::shrink::ShrinkError;
    let report = xensim::shrink::shrink(file, args).map_err(|e| match e {
        ShrinkError::App(app) => anyhow::Error::from(app),
        other => AppError::Usage(other.to_string()).into(),
    })?;
    outln!(
        "target: {} ({})",
        report.target,
        report.target_message.trim_end()
    );
    outln!(
        "runs: {} of at most {}",
        report.budget.runs_used,
        report.budget.runs_max
    );
    if report.removed.is_empty() {
        outln!("nothing could be removed");
    }
    for line in &report.removed {
        outln!("{line}");
    }
    outln!("wrote {}", report.out.display());
    for note in &report.notes {
        outln!("{note}");
    }
    let check = if args.check { " --check" } else { "" };
    outln!(
        "replay: xensim run {} --seed {}{check}",
        report.out.display(),
        report.seed
    );
    Ok(0)
}
