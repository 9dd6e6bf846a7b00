//! The sweep summary (`"schema": "xensim.sweep"`, `specs/metrics.md` §3 and §4.1), computed
//! from seed result lines alone: per scalar the exact mean and its 95% interval, per sample
//! set the pooled nearest-rank percentiles, pooled ratios, schedulability, and the failing
//! seeds with the command that replays each.
//!
//! # Invariants
//! - The summary depends only on the set of lines, not on their order or on how seeds were
//!   split into shards: lines are sorted by seed first, every map is a `BTreeMap`.
//! - Integers and strings only; the JSON ends with a newline.

use std::collections::BTreeMap;

use serde::Serialize;

use super::line::SeedResult;
use crate::report::aggregate::{self, format_decimal, AggregateError, CiMethod};

/// `schema` of the sweep summary.
pub const SCHEMA_NAME: &str = "xensim.sweep";
/// `schema_version` of the sweep summary.
pub const SCHEMA_VERSION: u32 = 1;

/// Pooled ratios: (name suffix, numerator scalar suffix, denominator scalar suffix).
const RATIOS: [(&str, &str, &str); 3] = [
    (
        "deadline_miss_ratio",
        "deadline_miss_count",
        "decided_job_count",
    ),
    ("idle_ratio", "idle_ns", "online_ns"),
    ("overhead_ratio", "overhead_ns", "online_ns"),
];

/// A seed that failed, and how to replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingSeed {
    /// The seed.
    pub seed: u64,
    /// Its exit status.
    pub exit: u8,
    /// What failed.
    pub failures: Vec<String>,
    /// The command that replays it exactly.
    pub replay: String,
}

/// Mean and interval of one scalar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalarSummary {
    /// Metric path.
    pub name: String,
    /// Seeds with a value.
    pub n: u64,
    /// Exact mean numerator (reduced; may exceed 64 bits).
    pub mean_num: i128,
    /// Exact mean denominator (reduced, > 0).
    pub mean_den: i128,
    /// Lower 95% bound ×10^9, `null` for one seed.
    pub ci_low_nano: Option<i128>,
    /// Upper 95% bound ×10^9, `null` for one seed.
    pub ci_high_nano: Option<i128>,
    /// `t` or `bootstrap`, `null` for one seed.
    pub method: Option<CiMethod>,
}

/// Pooled nearest-rank percentiles of one sample set (one sample, one weight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PooledSummary {
    /// Distribution path.
    pub name: String,
    /// Samples over all seeds.
    pub count: u64,
    /// Pooled p50.
    pub p50: Option<u64>,
    /// Pooled p90.
    pub p90: Option<u64>,
    /// Pooled p99.
    pub p99: Option<u64>,
    /// Pooled p99.9.
    pub p999: Option<u64>,
    /// Pooled max.
    pub max: Option<u64>,
    /// Seed-to-seed spread: the mean of the per-seed p99s, ns rounded half to even.
    pub p99_seed_mean_ns: Option<i128>,
    /// The 95% interval of that mean, `[low, high]` in ns rounded half to even; `null` for
    /// one seed.
    pub p99_seed_ci_ns: Option<[i128; 2]>,
}

/// A pooled ratio `Σ numerators / Σ denominators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RatioSummary {
    /// Ratio path.
    pub name: String,
    /// Σ numerators.
    pub num: u64,
    /// Σ denominators.
    pub den: u64,
    /// `floor(10^6 · num / den)`, `null` when `den` is 0.
    pub ppm: Option<u64>,
}

/// The whole summary, in JSON field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    /// `xensim.sweep`.
    pub schema: &'static str,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Scenario file as given.
    pub scenario: String,
    /// Every seed, ascending.
    pub seeds: Vec<u64>,
    /// Seeds whose run failed.
    pub failing_seeds: Vec<FailingSeed>,
    /// Seeds with zero deadline misses over seeds with periodic jobs (§1.7), if any.
    pub schedulability: Option<[u64; 2]>,
    /// Per-scalar means and intervals, by name.
    pub scalars: Vec<ScalarSummary>,
    /// Pooled percentiles, by name.
    pub pooled: Vec<PooledSummary>,
    /// Pooled ratios, by name.
    pub ratios: Vec<RatioSummary>,
}

/// How to print the replay command of a failing seed.
#[derive(Debug, Clone)]
pub struct ReplayCommand {
    /// The scenario path as given on the command line.
    pub scenario: String,
    /// Extra arguments after `--seed N` (`--scheduler rtds`), may be empty.
    pub extra: String,
}

impl ReplayCommand {
    /// `xensim run FILE --seed N [extra] --check`.
    pub fn for_seed(&self, seed: u64) -> String {
        let extra = if self.extra.is_empty() {
            String::new()
        } else {
            format!(" {}", self.extra)
        };
        format!("xensim run {} --seed {seed}{extra} --check", self.scenario)
    }
}

/// Summarizes `lines` (any order; seeds must be distinct).
pub fn summarize(
    replay: &ReplayCommand,
    lines: &[SeedResult],
) -> Result<SweepSummary, AggregateError> {
    let mut sorted: Vec<&SeedResult> = lines.iter().collect();
    sorted.sort_by_key(|l| l.seed);
    let failing_seeds = sorted
        .iter()
        .filter(|l| l.exit != 0)
        .map(|l| FailingSeed {
            seed: l.seed,
            exit: l.exit,
            failures: l.failures.clone(),
            replay: replay.for_seed(l.seed),
        })
        .collect();
    Ok(SweepSummary {
        schema: SCHEMA_NAME,
        schema_version: SCHEMA_VERSION,
        scenario: replay.scenario.clone(),
        seeds: sorted.iter().map(|l| l.seed).collect(),
        failing_seeds,
        schedulability: schedulability(&sorted),
        scalars: scalar_summaries(&sorted)?,
        pooled: pooled_summaries(&sorted)?,
        ratios: ratio_summaries(&sorted),
    })
}

/// Per-seed values of every scalar, in seed order.
pub fn scalar_values(lines: &[&SeedResult]) -> BTreeMap<String, Vec<i64>> {
    let mut values: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in lines {
        for (name, &value) in &line.scalars {
            values.entry(name.clone()).or_default().push(value);
        }
    }
    values
}

fn scalar_summaries(lines: &[&SeedResult]) -> Result<Vec<ScalarSummary>, AggregateError> {
    let metrics: Vec<(String, Vec<i64>)> = scalar_values(lines).into_iter().collect();
    let aggregates = aggregate::aggregate_all(&metrics)?;
    let mut out = Vec::new();
    for ((name, _), agg) in metrics.into_iter().zip(aggregates) {
        let Some(agg) = agg else {
            continue;
        };
        out.push(ScalarSummary {
            name,
            n: agg.n,
            mean_num: agg.mean_num,
            mean_den: agg.mean_den,
            ci_low_nano: agg.ci.map(|c| c.low_nano),
            ci_high_nano: agg.ci.map(|c| c.high_nano),
            method: agg.ci.map(|c| c.method),
        });
    }
    Ok(out)
}

/// Pooled `value → count` of one sample path over `lines`.
pub fn pooled_counts(lines: &[&SeedResult], path: &str) -> BTreeMap<u64, u64> {
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for line in lines {
        for &[value, count] in line.samples.get(path).map_or(&[][..], Vec::as_slice) {
            let slot = counts.entry(value).or_insert(0);
            *slot = slot.saturating_add(count);
        }
    }
    counts
}

/// Nearest-rank quantile `num/den` of pooled counts (§1.3), `None` when empty.
pub fn pooled_quantile(counts: &BTreeMap<u64, u64>, num: u128, den: u128) -> Option<u64> {
    let total: u128 = counts.values().map(|&c| u128::from(c)).sum();
    if total == 0 {
        return None;
    }
    let rank = (num * total).div_ceil(den).max(1);
    let mut seen: u128 = 0;
    for (&value, &count) in counts {
        seen += u128::from(count);
        if seen >= rank {
            return Some(value);
        }
    }
    unreachable!("the rank is at most the total count")
}

fn pooled_summaries(lines: &[&SeedResult]) -> Result<Vec<PooledSummary>, AggregateError> {
    let paths: std::collections::BTreeSet<&String> =
        lines.iter().flat_map(|l| l.samples.keys()).collect();
    paths
        .into_iter()
        .map(|path| {
            let counts = pooled_counts(lines, path);
            let count: u64 = counts.values().fold(0u64, |a, &c| a.saturating_add(c));
            let p99_path = format!("{path}.p99");
            let p99s: Vec<i64> = lines
                .iter()
                .filter_map(|l| l.scalars.get(&p99_path).copied())
                .collect();
            let spread = aggregate::aggregate(&p99_path, &p99s)?;
            let ns = |nano: i128| aggregate::div_round_half_even(nano, 1_000_000_000);
            Ok(PooledSummary {
                name: path.clone(),
                count,
                p50: pooled_quantile(&counts, 1, 2),
                p90: pooled_quantile(&counts, 9, 10),
                p99: pooled_quantile(&counts, 99, 100),
                p999: pooled_quantile(&counts, 999, 1000),
                max: counts.keys().next_back().copied(),
                p99_seed_mean_ns: spread.map(|a| ns(a.mean_nano())),
                p99_seed_ci_ns: spread
                    .and_then(|a| a.ci)
                    .map(|c| [ns(c.low_nano), ns(c.high_nano)]),
            })
        })
        .collect()
}

fn ratio_summaries(lines: &[&SeedResult]) -> Vec<RatioSummary> {
    let mut sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in lines {
        for (name, &num) in &line.scalars {
            for (ratio, num_suffix, den_suffix) in RATIOS {
                let Some(prefix) = name.strip_suffix(&format!(".{num_suffix}")) else {
                    continue;
                };
                let Some(&den) = line.scalars.get(&format!("{prefix}.{den_suffix}")) else {
                    continue;
                };
                let slot = sums.entry(format!("{prefix}.{ratio}")).or_insert((0, 0));
                slot.0 = slot.0.saturating_add(u64::try_from(num).unwrap_or(0));
                slot.1 = slot.1.saturating_add(u64::try_from(den).unwrap_or(0));
            }
        }
    }
    sums.into_iter()
        .map(|(name, (num, den))| RatioSummary {
            name,
            num,
            den,
            ppm: (u128::from(num) * 1_000_000)
                .checked_div(u128::from(den))
                .map(|p| u64::try_from(p).unwrap_or(u64::MAX)),
        })
        .collect()
}

/// `[k, n]`: seeds with zero misses among the `n` seeds that had decided periodic jobs.
fn schedulability(lines: &[&SeedResult]) -> Option<[u64; 2]> {
    let mut runs = 0u64;
    let mut ok = 0u64;
    for line in lines {
        let misses: Vec<i64> = line
            .scalars
            .iter()
            .filter(|(name, _)| name.ends_with(".deadline_miss_count"))
            .map(|(_, &v)| v)
            .collect();
        if misses.is_empty() {
            continue;
        }
        runs += 1;
        if misses.iter().all(|&m| m == 0) {
            ok += 1;
        }
    }
    (runs > 0).then_some([ok, runs])
}

impl SweepSummary {
    /// The summary JSON, pretty-printed, with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a summary holds integers and strings");
        text.push('\n');
        text
    }

    /// A human summary: seeds, failing seeds with replay commands, then one line per scalar.
    pub fn render(&self) -> String {
        let mut out = format!(
            "xensim sweep {}   seeds: {}   failing: {}\n",
            self.scenario,
            self.seeds.len(),
            self.failing_seeds.len()
        );
        if let Some([ok, n]) = self.schedulability {
            out.push_str(&format!("schedulability: {ok}/{n} runs\n"));
        }
        let width = self.scalars.iter().map(|s| s.name.len()).max().unwrap_or(6);
        out.push_str(&format!(
            "{:<width$}  {:>4}  {:>22}  {:>20}  method\n",
            "metric", "n", "mean", "95% CI half-width"
        ));
        for s in &self.scalars {
            out.push_str(&format!(
                "{:<width$}  {:>4}  {:>22}  {:>20}  {}\n",
                s.name,
                s.n,
                mean_text(s),
                half_width_text(s),
                s.method.map_or("-", |m| match m {
                    CiMethod::T => "t",
                    CiMethod::Bootstrap => "bootstrap",
                })
            ));
        }
        for p in &self.pooled {
            let value = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
            out.push_str(&format!(
                "{} pooled: count {}  p50 {}  p90 {}  p99 {}  max {} ns\n",
                p.name,
                p.count,
                value(p.p50),
                value(p.p90),
                value(p.p99),
                value(p.max)
            ));
        }
        for r in &self.ratios {
            let ppm = r
                .ppm
                .map_or("-".to_owned(), |p| format_decimal(i128::from(p), 1, 4, 4));
            out.push_str(&format!(
                "{} pooled: {}/{} = {ppm}%\n",
                r.name, r.num, r.den
            ));
        }
        for f in &self.failing_seeds {
            out.push_str(&format!("failing seed {} (exit {}):\n", f.seed, f.exit));
            for failure in &f.failures {
                out.push_str(&format!("  {failure}\n"));
            }
            out.push_str(&format!("  replay: {}\n", f.replay));
        }
        out
    }
}

fn mean_text(s: &ScalarSummary) -> String {
    format_decimal(s.mean_num, s.mean_den, 0, 3)
}

fn half_width_text(s: &ScalarSummary) -> String {
    let (Some(low), Some(high)) = (s.ci_low_nano, s.ci_high_nano) else {
        return "-".to_owned();
    };
    format!("±{}", format_decimal(high - low, 2, 9, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seed: u64, running_ns: i64, wake: Vec<[u64; 2]>) -> SeedResult {
        let mut l = SeedResult::stopped(seed, "");
        l.exit = 0;
        l.failures.clear();
        l.scalars
            .insert("domain.a.running_ns".to_owned(), running_ns);
        l.samples
            .insert("domain.a.wakeup_latency_ns".to_owned(), wake);
        l
    }

    fn replay() -> ReplayCommand {
        ReplayCommand {
            scenario: "s.toml".to_owned(),
            extra: String::new(),
        }
    }

    #[test]
    fn summary_does_not_depend_on_line_order() {
        let a = line(1, 10, vec![[5, 1]]);
        let b = line(2, 20, vec![[7, 2]]);

        let forward = summarize(&replay(), &[a.clone(), b.clone()]).unwrap();
        let backward = summarize(&replay(), &[b, a]).unwrap();

        assert_eq!(forward.to_json(), backward.to_json());
    }

    #[test]
    fn pooled_percentiles_weight_each_sample_once() {
        // Seed 1: one sample 5; seed 2: three samples 7. Pooled p50 is 7 (rank 2 of 4),
        // where a median of per-seed medians would say 6.
        let lines = [line(1, 0, vec![[5, 1]]), line(2, 0, vec![[7, 3]])];

        let s = summarize(&replay(), &lines).unwrap();

        assert_eq!(s.pooled[0].count, 4);
        assert_eq!(s.pooled[0].p50, Some(7));
        assert_eq!(s.pooled[0].max, Some(7));
    }

    #[test]
    fn failing_seed_lists_its_replay_command() {
        let failed = SeedResult::stopped(9, "livelock");

        let s = summarize(&replay(), &[failed]).unwrap();

        assert_eq!(
            s.failing_seeds[0].replay,
            "xensim run s.toml --seed 9 --check"
        );
    }

    #[test]
    fn deadline_miss_ratio_is_pooled_over_seeds() {
        // 1 miss of 10 and 0 of 30: pooled 1/40 = 25000 ppm (the mean of ratios is 50000).
        let mut a = line(1, 0, vec![]);
        a.scalars.insert("domain.a.deadline_miss_count".into(), 1);
        a.scalars.insert("domain.a.decided_job_count".into(), 10);
        let mut b = line(2, 0, vec![]);
        b.scalars.insert("domain.a.deadline_miss_count".into(), 0);
        b.scalars.insert("domain.a.decided_job_count".into(), 30);

        let s = summarize(&replay(), &[a, b]).unwrap();

        let ratio = s
            .ratios
            .iter()
            .find(|r| r.name == "domain.a.deadline_miss_ratio");
        assert_eq!(ratio.unwrap().ppm, Some(25_000));
        assert_eq!(s.schedulability, Some([1, 2]));
    }
}
