//! The rows of the `xensim compare` table (`specs/metrics.md` §4.2) and their cells: per
//! domain, per contended pool (fairness) and for the whole machine, each cell an exact
//! rational with its 95% interval, computed from the seeds' result lines (§3).
//!
//! # Invariants
//! - Rows never depend on values (fixed order).

use super::super::CompareResult;
use crate::report::aggregate::{self, AggregateError};
use crate::sweep::line::SeedResult;
use crate::sweep::summary::{pooled_counts, pooled_quantile};

/// The unit a row prints in, and how its base integer unit scales to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// Base ns, printed µs.
    Micros,
    /// Base ppm, printed %.
    Percent,
    /// Base milli-events per second, printed per second.
    PerSecond,
    /// Base ppm, printed as an index in [0, 1].
    Index,
    /// A plain count.
    Count,
    /// `k/n` runs.
    Runs,
}

impl Unit {
    pub(super) fn label(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::Percent => "%",
            Unit::PerSecond => "/s",
            Unit::Index => "\u{2014}",
            Unit::Count => "n",
            Unit::Runs => "runs",
        }
    }

    /// (decimal shift from the base unit, printed decimals).
    pub(super) fn scale(self) -> (u32, u32) {
        match self {
            Unit::Micros | Unit::PerSecond => (3, 3),
            Unit::Percent => (4, 4),
            Unit::Index => (6, 4),
            Unit::Count | Unit::Runs => (0, 0),
        }
    }
}

/// A rational in the row's base unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Num {
    pub(super) num: i128,
    pub(super) den: i128,
}

/// One scheduler's value in one row.
#[derive(Debug, Clone, Default)]
pub(super) struct Cell {
    pub(super) value: Option<Num>,
    /// 95% interval ×10^9 in the base unit.
    pub(super) ci_nano: Option<(i128, i128)>,
    /// Pooled sample count (`max` rows).
    pub(super) count: Option<u64>,
    /// Preformatted text (schedulability).
    pub(super) text: Option<String>,
}

#[derive(Debug)]
pub(super) struct Row {
    pub(super) label: String,
    pub(super) unit: Unit,
    pub(super) cells: Vec<Cell>,
    pub(super) is_max: bool,
}

/// A per-seed value of a line.
pub(super) type PerSeed<'f> = &'f dyn Fn(&SeedResult) -> Option<i64>;

pub(super) fn scalar(line: &SeedResult, path: &str) -> Option<i64> {
    line.scalars.get(path).copied()
}

/// Sum over hosts of `host.*.<field>`.
pub(super) fn host_sum(line: &SeedResult, field: &str) -> Option<i64> {
    let suffix = format!(".{field}");
    let values: Vec<i64> = line
        .scalars
        .iter()
        .filter(|(k, _)| k.starts_with("host.") && k.ends_with(&suffix))
        .map(|(_, &v)| v)
        .collect();
    (!values.is_empty()).then(|| values.iter().fold(0i64, |a, &v| a.saturating_add(v)))
}

/// `count` per second of the window, ×1000, floored.
pub(super) fn rate_milli(line: &SeedResult, count: Option<i64>) -> Option<i64> {
    let length_ns = i128::from(scalar(line, "window.length_ns")?);
    let milli = (i128::from(count?) * 1_000_000_000_000).checked_div(length_ns)?;
    i64::try_from(milli).ok()
}

/// `floor(10^6 · num / den)` of two per-seed integers.
pub(super) fn ppm(num: Option<i64>, den: Option<i64>) -> Option<i64> {
    let value = (i128::from(num?) * 1_000_000).checked_div(i128::from(den?))?;
    i64::try_from(value).ok()
}

pub(super) fn mean_cell(
    metric: &str,
    lines: &[&SeedResult],
    per_seed: PerSeed<'_>,
) -> Result<Cell, AggregateError> {
    let values: Vec<i64> = lines.iter().filter_map(|l| per_seed(l)).collect();
    Ok(match aggregate::aggregate(metric, &values)? {
        None => Cell::default(),
        Some(agg) => Cell {
            value: Some(Num {
                num: agg.mean_num,
                den: agg.mean_den,
            }),
            ci_nano: agg.ci.map(|c| (c.low_nano, c.high_nano)),
            ..Cell::default()
        },
    })
}

/// Pooled percentile `q` of `domain`'s wakeup latency, with the per-seed interval of `field`.
pub(super) fn percentile_cell(
    lines: &[&SeedResult],
    domain: &str,
    q: (u128, u128),
    field: &str,
) -> Result<Cell, AggregateError> {
    let path = format!("domain.{domain}.wakeup_latency_ns");
    let counts = pooled_counts(lines, &path);
    let per_seed_path = format!("{path}.{field}");
    let spread = mean_cell(&per_seed_path, lines, &|l| scalar(l, &per_seed_path))?;
    let value = if field == "max" {
        counts.keys().next_back().copied()
    } else {
        pooled_quantile(&counts, q.0, q.1)
    };
    Ok(Cell {
        value: value.map(|v| Num {
            num: i128::from(v),
            den: 1,
        }),
        ci_nano: spread.ci_nano,
        count: Some(counts.values().fold(0u64, |a, &c| a.saturating_add(c))),
        text: None,
    })
}

/// The pooled deadline-miss ratio of `domain` in ppm, with the per-seed ratio's interval.
pub(super) fn miss_ratio_cell(lines: &[&SeedResult], domain: &str) -> Result<Cell, AggregateError> {
    let miss = format!("domain.{domain}.deadline_miss_count");
    let decided = format!("domain.{domain}.decided_job_count");
    let (mut num, mut den) = (0i128, 0i128);
    for line in lines {
        if let (Some(m), Some(d)) = (scalar(line, &miss), scalar(line, &decided)) {
            num += i128::from(m);
            den += i128::from(d);
        }
    }
    let name = format!("domain.{domain}.deadline_miss_ratio_ppm");
    let spread = mean_cell(&name, lines, &|l| {
        ppm(scalar(l, &miss), scalar(l, &decided))
    })?;
    Ok(Cell {
        value: (den > 0).then_some(Num {
            num: num * 1_000_000,
            den,
        }),
        ci_nano: spread.ci_nano,
        ..Cell::default()
    })
}

pub(super) fn schedulability_cell(lines: &[&SeedResult]) -> Cell {
    let mut runs = 0;
    let mut ok = 0;
    for line in lines {
        let misses: Vec<i64> = line
            .scalars
            .iter()
            .filter(|(k, _)| k.ends_with(".deadline_miss_count"))
            .map(|(_, &v)| v)
            .collect();
        if !misses.is_empty() {
            runs += 1;
            ok += u32::from(misses.iter().all(|&m| m == 0));
        }
    }
    Cell {
        text: (runs > 0).then(|| format!("{ok}/{runs}")),
        ..Cell::default()
    }
}

/// Builds one row by asking `cell` for each scheduler's cell.
pub(super) fn row(
    result: &CompareResult,
    label: String,
    unit: Unit,
    cell: &dyn Fn(&[&SeedResult]) -> Result<Cell, AggregateError>,
) -> Result<Row, AggregateError> {
    let mut cells = Vec::with_capacity(result.runs.len());
    for run in &result.runs {
        let lines: Vec<&SeedResult> = run.lines.iter().collect();
        cells.push(cell(&lines)?);
    }
    Ok(Row {
        is_max: label.ends_with(" max"),
        label,
        unit,
        cells,
    })
}

pub(super) const PERCENTILES: [(&str, (u128, u128)); 4] = [
    ("p50", (1, 2)),
    ("p90", (9, 10)),
    ("p99", (99, 100)),
    ("max", (1, 1)),
];

pub(super) fn domain_rows(result: &CompareResult, d: &str) -> Result<Vec<Row>, AggregateError> {
    let mut rows = Vec::new();
    let path = |field: &str| format!("domain.{d}.{field}");
    for (name, q) in PERCENTILES {
        let label = format!("{d} wakeup_latency {name}");
        rows.push(row(result, label, Unit::Micros, &|l| {
            percentile_cell(l, d, q, name)
        })?);
    }
    // §3: pooling weights seeds by sample count, so both sides' total counts are printed.
    let samples = path("wakeup_latency_ns");
    rows.push(row(
        result,
        format!("{d} wakeup_latency count"),
        Unit::Count,
        &|l| {
            let total = pooled_counts(l, &samples)
                .values()
                .fold(0u64, |a, &c| a.saturating_add(c));
            Ok(Cell {
                value: Some(Num {
                    num: i128::from(total),
                    den: 1,
                }),
                ..Cell::default()
            })
        },
    )?);
    let wait = path("runnable_ns");
    rows.push(row(result, format!("{d} wait"), Unit::Micros, &|l| {
        mean_cell(&wait, l, &|s| scalar(s, &wait))
    })?);
    let share = path("share_ppm");
    rows.push(row(result, format!("{d} share"), Unit::Percent, &|l| {
        mean_cell(&share, l, &|s| scalar(s, &share))
    })?);
    if result
        .runs
        .iter()
        .flat_map(|r| &r.lines)
        .any(|l| l.scalars.contains_key(&path("decided_job_count")))
    {
        rows.push(row(
            result,
            format!("{d} deadline_miss_ratio"),
            Unit::Percent,
            &|l| miss_ratio_cell(l, d),
        )?);
    }
    let norm = path("norm_share_ppm");
    rows.push(row(
        result,
        format!("{d} share of entitlement"),
        Unit::Percent,
        &|l| mean_cell(&norm, l, &|s| scalar(s, &norm)),
    )?);
    let migrations = path("migration_pcpu_count");
    rows.push(row(
        result,
        format!("{d} migrations"),
        Unit::PerSecond,
        &|l| mean_cell(&migrations, l, &|s| rate_milli(s, scalar(s, &migrations))),
    )?);
    Ok(rows)
}

/// Pools with a fairness value in any run, as `(key prefix, label)`, by key.
pub(super) fn fairness_pools(result: &CompareResult) -> Vec<(String, String)> {
    let mut keys = std::collections::BTreeSet::new();
    for line in result.runs.iter().flat_map(|r| &r.lines) {
        for name in line.scalars.keys() {
            if let Some(pool) = name.strip_suffix(".jain_ppm") {
                keys.insert(pool.to_owned());
            }
        }
    }
    let hosts: std::collections::BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("pool.")?.split('.').next())
        .collect();
    keys.iter()
        .map(|key| {
            let host_pool = key.strip_prefix("pool.").unwrap_or(key);
            let label = match host_pool.split_once('.') {
                Some((_, pool)) if hosts.len() == 1 => pool.to_owned(),
                Some((host, pool)) => format!("{host}/{pool}"),
                None => host_pool.to_owned(),
            };
            (key.clone(), label)
        })
        .collect()
}

/// §1.5–1.6 per contended pool; `—` where a run has none (the pool was uncontended).
pub(super) fn fairness_rows(result: &CompareResult) -> Result<Vec<Row>, AggregateError> {
    let mut rows = Vec::new();
    for (key, label) in fairness_pools(result) {
        let fields = [
            ("jain (vCPU)", "jain_ppm", Unit::Index),
            ("jain (domain)", "jain_domain_ppm", Unit::Index),
            ("max deviation", "max_rel_dev_ppm", Unit::Percent),
        ];
        for (name, field, unit) in fields {
            let metric = format!("{key}.{field}");
            rows.push(row(result, format!("{label} {name}"), unit, &|l| {
                mean_cell(&metric, l, &|s| scalar(s, &metric))
            })?);
        }
    }
    Ok(rows)
}

pub(super) fn machine_rows(result: &CompareResult) -> Result<Vec<Row>, AggregateError> {
    let mut rows = Vec::new();
    let rates = [
        ("context switches (all)", "context_switch_count"),
        ("sched decisions (all)", "sched_decision_count"),
    ];
    for (label, field) in rates {
        let metric = format!("host.{field}");
        rows.push(row(result, label.to_owned(), Unit::PerSecond, &|l| {
            mean_cell(&metric, l, &|s| rate_milli(s, host_sum(s, field)))
        })?);
    }
    let shares = [
        ("sched overhead (all)", "overhead_ns"),
        ("pCPU idle (all)", "idle_ns"),
    ];
    for (label, field) in shares {
        let metric = format!("host.{field}");
        rows.push(row(result, label.to_owned(), Unit::Percent, &|l| {
            mean_cell(&metric, l, &|s| {
                ppm(host_sum(s, field), host_sum(s, "online_ns"))
            })
        })?);
    }
    let periodic = result.runs.iter().flat_map(|r| &r.lines).any(|l| {
        l.scalars
            .keys()
            .any(|k| k.ends_with(".deadline_miss_count"))
    });
    if periodic {
        rows.push(row(
            result,
            "schedulability".to_owned(),
            Unit::Runs,
            &|l| Ok(schedulability_cell(l)),
        )?);
    }
    Ok(rows)
}
