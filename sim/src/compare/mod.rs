//! `xensim compare` (`specs/metrics.md` §4.2): the same scenario, with the same seeds and so
//! the same workload streams, run once per listed scheduler, with Pool-0's scheduler on
//! every host replaced by the listed one (other cpupools keep theirs), then one table.
//!
//! Layers: this file (scheduler list, the override, the runs) → [`table`] (the §4.2 table).
//!
//! A scheduler that cannot run the scenario as written gives that run's own result: an xl
//! command the scheduler rejects fails its `expect_rc`, a null pool with more vCPUs than
//! pCPUs leaves the rest in the waitqueue (as Xen's null does), and a run that stops is a
//! failing seed with its error. Nothing here panics on a scenario.
//!
//! # Invariants
//! - Every scheduler runs exactly the same seed list; lines are ordered by seed.
//! - The first scheduler listed is the baseline of every Δ.

pub mod table;

use crate::scenario::model::SchedName;
use crate::scenario::Scenario;
use crate::sweep::line::SeedResult;
use crate::sweep::summary::{FailingSeed, ReplayCommand};
use crate::sweep::{self, RunnerOptions, SeedRange};

/// Most schedulers one compare lists (each is named once).
pub const SCHEDULERS_MAX: usize = 3;

/// A bad `--schedulers` or `--delta` argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    /// `--delta` is not `pct` or `abs`.
    #[error("--delta {0}: expected `pct` (the default) or `abs`")]
    Delta(String),
    /// A scheduler is listed twice.
    #[error("--schedulers: {0} is listed twice")]
    Duplicate(String),
    /// The list is empty.
    #[error("--schedulers: name at least one of credit2, rtds, null")]
    Empty,
    /// A name xensim does not model.
    #[error("--schedulers: unknown scheduler `{0}` (xensim models credit2, rtds and null)")]
    Unknown(String),
}

/// Parses one scheduler name as Xen spells it.
pub fn parse_scheduler(name: &str) -> Result<SchedName, CompareError> {
    match name.trim() {
        "credit2" => Ok(SchedName::Credit2),
        "rtds" => Ok(SchedName::Rtds),
        "null" => Ok(SchedName::Null),
        other => Err(CompareError::Unknown(other.to_owned())),
    }
}

/// Parses `credit2,rtds,null`: known names, each once, in the order given.
pub fn parse_schedulers(text: &str) -> Result<Vec<SchedName>, CompareError> {
    let mut out: Vec<SchedName> = Vec::new();
    for name in text.split(',').filter(|n| !n.trim().is_empty()) {
        let sched = parse_scheduler(name)?;
        if out.contains(&sched) {
            return Err(CompareError::Duplicate(sched.as_str().to_owned()));
        }
        out.push(sched);
    }
    if out.is_empty() {
        return Err(CompareError::Empty);
    }
    assert!(out.len() <= SCHEDULERS_MAX, "three distinct names at most");
    Ok(out)
}

/// How a later column's Δ against the baseline is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeltaMode {
    /// Δ% (the default).
    #[default]
    Percent,
    /// Δ in the row's unit (`--delta abs`).
    Absolute,
}

impl DeltaMode {
    /// Parses `pct` or `abs`.
    pub fn parse(text: &str) -> Result<DeltaMode, CompareError> {
        match text {
            "pct" => Ok(DeltaMode::Percent),
            "abs" => Ok(DeltaMode::Absolute),
            other => Err(CompareError::Delta(other.to_owned())),
        }
    }
}

/// Pool-0 of every host gets `sched`; extra cpupools keep theirs.
pub fn set_pool0_scheduler(scenario: &mut Scenario, sched: SchedName) {
    for host in &mut scenario.hosts {
        host.scheduler = sched;
    }
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The scenario as named on the command line (header and replay commands); empty: the
    /// scenario's file name.
    pub scenario_path: String,
    /// Schedulers, baseline first.
    pub schedulers: Vec<SchedName>,
    /// `--seeds`; `None`: the scenario's own seed only.
    pub seeds: Option<SeedRange>,
    /// Threads and `--check`.
    pub runner: RunnerOptions,
}

/// The runs of one scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerRuns {
    /// The scheduler Pool-0 ran.
    pub scheduler: SchedName,
    /// One line per seed, by seed.
    pub lines: Vec<SeedResult>,
}

/// Everything a compare ran; the table and the HTML report are drawn from it.
#[derive(Debug, Clone)]
pub struct CompareResult {
    /// Scenario as named on the command line.
    pub scenario: String,
    /// The seeds every scheduler ran.
    pub seeds: Vec<u64>,
    /// The `--seeds` range, if given.
    pub range: Option<SeedRange>,
    /// Per scheduler, in the order given.
    pub runs: Vec<SchedulerRuns>,
    /// Domain names in report order: dom0, the scenario's domains, then any other.
    pub domains: Vec<String>,
}

/// Runs every scheduler over the seeds; `on_done` is called as each run finishes.
pub fn run(
    scenario: &Scenario,
    opts: &CompareOptions,
    on_done: &mut dyn FnMut(&SeedResult),
) -> CompareResult {
    assert!(
        !opts.schedulers.is_empty() && opts.schedulers.len() <= SCHEDULERS_MAX,
        "parse_schedulers gives one to three schedulers"
    );
    let seeds = match opts.seeds {
        Some(range) => range.shard_seeds(sweep::Shard::WHOLE),
        None => vec![scenario.sim.seed],
    };
    let runs: Vec<SchedulerRuns> = opts
        .schedulers
        .iter()
        .map(|&sched| {
            let mut variant = scenario.clone();
            set_pool0_scheduler(&mut variant, sched);
            SchedulerRuns {
                scheduler: sched,
                lines: sweep::run_seeds(&variant, &seeds, opts.runner, on_done),
            }
        })
        .collect();
    let domains = domain_order(scenario, &runs);
    let name = if opts.scenario_path.is_empty() {
        scenario.file_name.clone()
    } else {
        opts.scenario_path.clone()
    };
    CompareResult {
        scenario: name,
        seeds,
        range: opts.seeds,
        runs,
        domains,
    }
}

fn domain_order(scenario: &Scenario, runs: &[SchedulerRuns]) -> Vec<String> {
    let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for run in runs {
        for line in &run.lines {
            for name in line.scalars.keys() {
                if let Some(domain) = name
                    .strip_prefix("domain.")
                    .and_then(|n| n.strip_suffix(".running_ns"))
                {
                    seen.insert(domain.to_owned());
                }
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    let preferred =
        std::iter::once("Domain-0").chain(scenario.domains.iter().map(|d| d.name.as_str()));
    for name in preferred {
        if seen.remove(name) {
            order.push(name.to_owned());
        }
    }
    order.extend(seen);
    order
}

impl CompareResult {
    /// Failing runs, by scheduler then seed, each with its replay command.
    pub fn failing(&self) -> Vec<FailingSeed> {
        let mut out = Vec::new();
        for run in &self.runs {
            let replay = ReplayCommand {
                scenario: self.scenario.clone(),
                extra: format!("--scheduler {}", run.scheduler.as_str()),
            };
            for line in run.lines.iter().filter(|l| l.exit != 0) {
                out.push(FailingSeed {
                    seed: line.seed,
                    exit: line.exit,
                    failures: line.failures.clone(),
                    replay: replay.for_seed(line.seed),
                });
            }
        }
        out
    }

    /// 0 when every run held, 1 when any expectation, `expect_rc` or invariant failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.runs.iter().flat_map(|r| &r.lines).any(|l| l.exit != 0))
    }

    /// The pooled wakeup-latency samples of `domain` under run `run_index`, ascending (the
    /// HTML report's latency CDFs).
    pub fn latency_samples(&self, run_index: usize, domain: &str) -> Vec<u64> {
        let path = format!("domain.{domain}.wakeup_latency_ns");
        let mut samples: Vec<u64> = self.runs[run_index]
            .lines
            .iter()
            .flat_map(|l| l.sample_values(&path))
            .collect();
        samples.sort_unstable();
        samples
    }

    /// The fairness bars of run `run_index` (the HTML report's `ShareBar`s); see
    /// [`shares_of`].
    pub fn shares(&self, run_index: usize) -> Vec<ShareData> {
        shares_of(&self.runs[run_index].lines, &self.domains)
    }
}

/// `path` summed over the lines that have it.
fn scalar_total(lines: &[SeedResult], path: &str) -> Option<u64> {
    let values: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.scalars.get(path))
        .map(|&v| u64::try_from(v).unwrap_or(0))
        .collect();
    (!values.is_empty()).then(|| values.iter().fold(0u64, |a, &v| a.saturating_add(v)))
}

/// Fairness bars: per domain of `domains` with an entitlement (a contended pool), the time
/// fairness compares (running time; rtds: capped at the reservation) and the entitled time,
/// summed over `lines` (seeds), and their pooled ratio in ppm. `xensim run --report` passes
/// its one run's line.
pub fn shares_of(lines: &[SeedResult], domains: &[String]) -> Vec<ShareData> {
    domains
        .iter()
        .filter_map(|name| {
            let entitled_ns = scalar_total(lines, &format!("domain.{name}.entitled_ns"))?;
            let actual_ns =
                scalar_total(lines, &format!("domain.{name}.fair_actual_ns")).unwrap_or(0);
            let ratio = (u128::from(actual_ns) * 1_000_000).checked_div(u128::from(entitled_ns));
            Some(ShareData {
                name: name.clone(),
                norm_share_ppm: ratio.map_or(0, |r| i64::try_from(r).unwrap_or(i64::MAX)),
                actual_ns,
                entitled_ns,
            })
        })
        .collect()
}

/// One domain's CPU time against its entitlement, summed over seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareData {
    /// Domain name.
    pub name: String,
    /// `actual_ns · 10^6 / entitled_ns`.
    pub norm_share_ppm: i64,
    /// Running time.
    pub actual_ns: u64,
    /// Entitlement (§1.4).
    pub entitled_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_list_keeps_order_and_rejects_repeats() {
        assert_eq!(
            parse_schedulers("rtds,credit2").unwrap(),
            vec![SchedName::Rtds, SchedName::Credit2]
        );
        assert_eq!(
            parse_schedulers("null,null"),
            Err(CompareError::Duplicate("null".to_owned()))
        );
        assert_eq!(
            parse_schedulers("credit"),
            Err(CompareError::Unknown("credit".to_owned()))
        );
        assert_eq!(parse_schedulers(","), Err(CompareError::Empty));
    }

    #[test]
    fn shares_sum_seeds_and_skip_domains_without_entitlement() {
        // Seed 1: 300 of 400 ns entitled; seed 2: 500 of 600: pooled 800/1000 = 800000 ppm.
        let mut one = SeedResult::stopped(1, "");
        one.scalars.insert("domain.a.fair_actual_ns".into(), 300);
        one.scalars.insert("domain.a.entitled_ns".into(), 400);
        one.scalars.insert("domain.b.running_ns".into(), 7);
        let mut two = SeedResult::stopped(2, "");
        two.scalars.insert("domain.a.fair_actual_ns".into(), 500);
        two.scalars.insert("domain.a.entitled_ns".into(), 600);
        let result = CompareResult {
            scenario: "s.toml".into(),
            seeds: vec![1, 2],
            range: None,
            runs: vec![SchedulerRuns {
                scheduler: SchedName::Credit2,
                lines: vec![one, two],
            }],
            domains: vec!["a".into(), "b".into()],
        };

        let shares = result.shares(0);

        assert_eq!(
            shares,
            vec![ShareData {
                name: "a".into(),
                norm_share_ppm: 800_000,
                actual_ns: 800,
                entitled_ns: 1_000,
            }]
        );
    }

    #[test]
    fn delta_mode_parses_pct_and_abs_only() {
        assert_eq!(DeltaMode::parse("abs"), Ok(DeltaMode::Absolute));
        assert_eq!(DeltaMode::parse("pct"), Ok(DeltaMode::Percent));
        DeltaMode::parse("%").unwrap_err();
    }
}
