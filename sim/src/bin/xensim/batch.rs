//! `xensim compare` and `xensim sweep`: their arguments, progress bars and output files.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use xensim::app::{self, AppError, RunArgs};
use xensim::compare::{self, CompareOptions, DeltaMode};
use xensim::report::html::{HtmlReport, LatencySeries, ReportRun, ShareBar};
use xensim::sweep::summary::{self, ReplayCommand};
use xensim::sweep::{self, files, RunnerOptions, SeedRange, Shard};

use crate::parse_window;

/// `xensim compare` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct CompareCli {
    /// Scenario file (TOML).
    file: PathBuf,
    /// Schedulers for Pool-0, baseline first: `credit2,rtds,null`.
    #[arg(long)]
    schedulers: String,
    /// Inclusive seed range `A..B` (default: the scenario's seed).
    #[arg(long)]
    seeds: Option<String>,
    /// Worker threads (default: available parallelism); each run is single-threaded.
    #[arg(short = 'j', long)]
    jobs: Option<std::num::NonZeroUsize>,
    /// Δ as `pct` (default) or `abs` (in the row's unit).
    #[arg(long, default_value = "pct")]
    delta: String,
    /// Check every invariant after every event of every run.
    #[arg(long)]
    check: bool,
    /// Write the self-contained HTML report here: the table, latency CDFs and fairness bars
    /// per scheduler, and each scheduler's Gantt from the first seed's run.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the first seed's Chrome/Perfetto trace-event JSON per scheduler, named
    /// `<stem>.<scheduler>.json` beside this path (`out.json` → `out.credit2.json`, ...).
    #[arg(long)]
    perfetto: Option<PathBuf>,
    /// Only this virtual-time window in the Perfetto export and the Gantt (`1s..2s`).
    #[arg(long, value_name = "A..B")]
    window: Option<String>,
}

/// `xensim sweep` arguments.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct SweepCli {
    #[command(subcommand)]
    merge: Option<SweepCommand>,
    /// Scenario file (TOML).
    file: Option<PathBuf>,
    /// Inclusive seed range `A..B`.
    #[arg(long)]
    seeds: Option<String>,
    /// Worker threads (default: available parallelism); each run is single-threaded.
    #[arg(short = 'j', long)]
    jobs: Option<std::num::NonZeroUsize>,
    /// Run only shard `i/n` (0-based, e.g. `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`).
    #[arg(long)]
    shard: Option<String>,
    /// Write `shard-I-of-N.jsonl` and `summary.json` here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Check every invariant after every event of every run.
    #[arg(long)]
    check: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum SweepCommand {
    /// Combine the shard outputs of `sweep --out` directories into one summary.
    Merge {
        /// `--out` directories of the shards.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Write the summary JSON here (byte-identical to a one-machine `summary.json`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A progress bar on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {elapsed} (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

pub(crate) fn compare_cli(args: CompareCli) -> anyhow::Result<u8> {
    let mut opts = compare_options(
        &args.schedulers,
        args.seeds.as_deref(),
        args.jobs,
        args.check,
    )?;
    opts.scenario_path = args.file.display().to_string();
    let delta = DeltaMode::parse(&args.delta).map_err(|e| AppError::Usage(e.to_string()))?;
    let outputs = CompareOutputs {
        report: args.report,
        perfetto: args.perfetto,
        window_ns: args.window.as_deref().map(parse_window).transpose()?,
    };
    compare(&args.file, &opts, delta, &outputs)
}

pub(crate) fn sweep_cli(args: SweepCli) -> anyhow::Result<u8> {
    if let Some(SweepCommand::Merge { dirs, out }) = args.merge {
        return sweep_merge(&dirs, out.as_deref());
    }
    let file = args
        .file
        .ok_or_else(|| AppError::Usage("sweep: give FILE".to_owned()))?;
    let seeds = args
        .seeds
        .ok_or_else(|| AppError::Usage("sweep: give --seeds A..B".to_owned()))?;
    let range = SeedRange::parse(&seeds).map_err(AppError::from)?;
    let shard = match args.shard {
        Some(text) => Shard::parse(&text).map_err(AppError::from)?,
        None => Shard::WHOLE,
    };
    let runner = RunnerOptions {
        jobs: args.jobs.unwrap_or_else(sweep::default_jobs),
        check: args.check,
    };
    sweep_run(&file, range, shard, runner, args.out.as_deref())
}

fn compare_options(
    schedulers: &str,
    seeds: Option<&str>,
    jobs: Option<std::num::NonZeroUsize>,
    check: bool,
) -> anyhow::Result<CompareOptions> {
    let schedulers =
        compare::parse_schedulers(schedulers).map_err(|e| AppError::Usage(e.to_string()))?;
    let seeds = seeds
        .map(SeedRange::parse)
        .transpose()
        .map_err(AppError::from)?;
    Ok(CompareOptions {
        scenario_path: String::new(),
        schedulers,
        seeds,
        runner: RunnerOptions {
            jobs: jobs.unwrap_or_else(sweep::default_jobs),
            check,
        },
    })
}

/// The files `xensim compare` writes besides its table.
struct CompareOutputs {
    report: Option<PathBuf>,
    perfetto: Option<PathBuf>,
    window_ns: Option<(u64, u64)>,
}

fn compare(
    file: &std::path::Path,
    opts: &CompareOptions,
    delta: DeltaMode,
    outputs: &CompareOutputs,
) -> anyhow::Result<u8> {
    let scenario = app::load(file, None, false)?;
    for warning in &scenario.warnings {
        eprintln!("{}", warning.trim_end());
    }
    let seed_count = opts.seeds.map_or(1, |r| r.count());
    let total = usize::try_from(seed_count).unwrap_or(usize::MAX) * opts.schedulers.len();
    let bar = progress(total);
    let result = compare::run(&scenario, opts, &mut |_| bar.inc(1));
    bar.finish_and_clear();
    let table = compare::table::render(&result, delta)?;
    out!("{table}");
    if outputs.report.is_some() || outputs.perfetto.is_some() {
        write_compare_files(&scenario, opts, &result, &table, outputs)?;
    }
    for failing in result.failing() {
        outln!("failing seed {} (exit {}):", failing.seed, failing.exit);
        for failure in &failing.failures {
            outln!("  {failure}");
        }
        outln!("  replay: {}", failing.replay);
    }
    Ok(result.exit_code())
}

fn sweep_run(
    file: &std::path::Path,
    range: SeedRange,
    shard: Shard,
    runner: RunnerOptions,
    out_dir: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let scenario = app::load(file, None, false)?;
    for warning in &scenario.warnings {
        eprintln!("{}", warning.trim_end());
    }
    let seeds = range.shard_seeds(shard);
    let bar = progress(seeds.len());
    let lines = sweep::run_seeds(&scenario, &seeds, runner, &mut |_| bar.inc(1));
    bar.finish_and_clear();
    let replay = ReplayCommand {
        scenario: file.display().to_string(),
        extra: String::new(),
    };
    let summary = summary::summarize(&replay, &lines)?;
    if let Some(dir) = out_dir {
        let header = files::header(&scenario, range, shard, &replay);
        files::write_dir(dir, &header, shard, &lines, &summary).map_err(AppError::from)?;
    }
    out!("{}", summary.render());
    Ok(u8::from(!summary.failing_seeds.is_empty()))
}

fn sweep_merge(dirs: &[PathBuf], out_file: Option<&std::path::Path>) -> anyhow::Result<u8> {
    let summary = files::merge(dirs).map_err(AppError::from)?;
    if let Some(path) = out_file {
        std::fs::write(path, summary.to_json())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out!("{}", summary.render());
    Ok(u8::from(!summary.failing_seeds.is_empty()))
}

/// Re-runs the first seed of every scheduler with the timeline captured (the same run as the
/// sweep's, bit for bit) and writes the HTML report and the Perfetto files.
fn write_compare_files(
    scenario: &xensim::scenario::Scenario,
    opts: &CompareOptions,
    result: &compare::CompareResult,
    table: &str,
    outputs: &CompareOutputs,
) -> anyhow::Result<()> {
    let first_seed = result.seeds.first().copied().unwrap_or(scenario.sim.seed);
    let mut runs = Vec::new();
    for (index, sched_runs) in result.runs.iter().enumerate() {
        let mut variant = scenario.clone();
        compare::set_pool0_scheduler(&mut variant, sched_runs.scheduler);
        variant.sim.seed = first_seed;
        let args = RunArgs {
            check: opts.runner.check,
            timeline: true,
            window_ns: outputs.window_ns,
            ..RunArgs::default()
        };
        let report = app::run_scenario(variant, &args)?;
        let name = sched_runs.scheduler.as_str();
        if let (Some(path), Some(json)) = (&outputs.perfetto, report.perfetto_json()) {
            let path = per_scheduler_path(path, name);
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        }
        runs.push(ReportRun {
            label: name.to_owned(),
            timeline: report.timeline,
            latency: (result.domains.iter())
                .map(|d| LatencySeries {
                    name: d.clone(),
                    samples_ns: result.latency_samples(index, d),
                })
                .collect(),
            shares: (result.shares(index).into_iter())
                .map(|s| ShareBar {
                    name: s.name,
                    norm_share_ppm: s.norm_share_ppm,
                    actual_ns: s.actual_ns,
                    entitled_ns: s.entitled_ns,
                })
                .collect(),
        });
    }
    if let Some(path) = &outputs.report {
        let html = xensim::report::html::render(&HtmlReport {
            title: table
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_owned(),
            table: table.to_owned(),
            runs,
        });
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `dir/out.json` + `credit2` → `dir/out.credit2.json`.
fn per_scheduler_path(path: &std::path::Path, scheduler: &str) -> PathBuf {
    let stem = path.file_stem().map_or_else(
        || "perfetto".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let ext = path
        .extension()
        .map_or_else(|| "json".to_owned(), |e| e.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.{scheduler}.{ext}"))
}
