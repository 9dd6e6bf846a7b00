//! The `xensim compare` table (`specs/metrics.md` §4.2): a header, then one row per metric in
//! the order of the metrics spec (per domain: wakeup latency, wait, share, deadline misses,
//! migrations; then fairness per contended pool; then the whole machine: context
//! switches, scheduler decisions and their simulated cost, idle, schedulability), one value
//! column per scheduler, the first being the baseline of every later column's Δ.
//!
//! Values: a scalar is the exact mean over seeds with the half-width of its 95% interval
//! (§3); a percentile is the pooled nearest-rank percentile of all seeds' samples, with the
//! half-width of the per-seed percentile's interval; a ratio is pooled (`Σ num / Σ den`).
//! Formatting is integer-only: ns → µs with 3 decimals, ppm → % with 4 decimals, rates per
//! second with 3 decimals, each rounded half to even at the last digit; `Δ%` has 1 decimal
//! and is `n/a` against a zero baseline. `*` marks a column whose interval does not overlap
//! the baseline's; `!` marks a `max` row whose sample counts differ from the baseline's by
//! more than 10%; `—` marks a value that is not defined.
//!
//! Fairness (§1.4–1.6: share of entitlement, Jain's index, max deviation) exists for
//! contended pools ([`crate::report::fairness`]); an uncontended pool prints `—`.
//!
//! # Invariants
//! - Rows never depend on values (fixed order); the text depends only on the lines.

use super::{CompareResult, DeltaMode};
use crate::report::aggregate::{self, format_decimal, AggregateError};
use crate::sweep::line::SeedResult;
use crate::sweep::summary::{pooled_counts, pooled_quantile};

/// The unit a row prints in, and how its base integer unit scales to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
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
    fn label(self) -> &'static str {
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
    fn scale(self) -> (u32, u32) {
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
struct Num {
    num: i128,
    den: i128,
}

/// One scheduler's value in one row.
#[derive(Debug, Clone, Default)]
struct Cell {
    value: Option<Num>,
    /// 95% interval ×10^9 in the base unit.
    ci_nano: Option<(i128, i128)>,
    /// Pooled sample count (`max` rows).
    count: Option<u64>,
    /// Preformatted text (schedulability).
    text: Option<String>,
}

#[derive(Debug)]
struct Row {
    label: String,
    unit: Unit,
    cells: Vec<Cell>,
    is_max: bool,
}

/// A per-seed value of a line.
type PerSeed<'f> = &'f dyn Fn(&SeedResult) -> Option<i64>;

fn scalar(line: &SeedResult, path: &str) -> Option<i64> {
    line.scalars.get(path).copied()
}

/// Sum over hosts of `host.*.<field>`.
fn host_sum(line: &SeedResult, field: &str) -> Option<i64> {
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
fn rate_milli(line: &SeedResult, count: Option<i64>) -> Option<i64> {
    let length_ns = i128::from(scalar(line, "window.length_ns")?);
    let milli = (i128::from(count?) * 1_000_000_000_000).checked_div(length_ns)?;
    i64::try_from(milli).ok()
}

/// `floor(10^6 · num / den)` of two per-seed integers.
fn ppm(num: Option<i64>, den: Option<i64>) -> Option<i64> {
    let value = (i128::from(num?) * 1_000_000).checked_div(i128::from(den?))?;
    i64::try_from(value).ok()
}

fn mean_cell(
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
fn percentile_cell(
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
fn miss_ratio_cell(lines: &[&SeedResult], domain: &str) -> Result<Cell, AggregateError> {
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

fn schedulability_cell(lines: &[&SeedResult]) -> Cell {
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
fn row(
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

const PERCENTILES: [(&str, (u128, u128)); 4] = [
    ("p50", (1, 2)),
    ("p90", (9, 10)),
    ("p99", (99, 100)),
    ("max", (1, 1)),
];

fn domain_rows(result: &CompareResult, d: &str) -> Result<Vec<Row>, AggregateError> {
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
fn fairness_pools(result: &CompareResult) -> Vec<(String, String)> {
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
fn fairness_rows(result: &CompareResult) -> Result<Vec<Row>, AggregateError> {
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

fn machine_rows(result: &CompareResult) -> Result<Vec<Row>, AggregateError> {
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

/// The whole table, ready to print.
pub fn render(result: &CompareResult, delta: DeltaMode) -> Result<String, AggregateError> {
    let mut rows = Vec::new();
    for domain in &result.domains {
        rows.extend(domain_rows(result, domain)?);
    }
    rows.extend(fairness_rows(result)?);
    rows.extend(machine_rows(result)?);
    let mut out = header_line(result);
    out.push_str(&layout(result, &rows, delta));
    Ok(out)
}

fn header_line(result: &CompareResult) -> String {
    let seeds = match (result.range, result.seeds.as_slice()) {
        (Some(range), _) => format!("seeds {range}"),
        (None, [seed]) => format!("seed {seed}"),
        (None, _) => format!("seeds {}", result.seeds.len()),
    };
    let window = result
        .runs
        .first()
        .and_then(|r| {
            r.lines
                .iter()
                .find(|l| l.scalars.contains_key("window.end_ns"))
        })
        .map(|l| {
            let second = |key: &str| {
                let ns = i128::from(scalar(l, key).unwrap_or(0));
                format_decimal(ns, 1, 9, 1)
            };
            format!(
                "   window {} s .. {} s",
                second("window.start_ns"),
                second("window.end_ns")
            )
        })
        .unwrap_or_default();
    let baseline = result.runs.first().map_or("", |r| r.scheduler.as_str());
    format!(
        "xensim compare {}   {seeds}{window}   Δ against {baseline}\n",
        result.scenario
    )
}

/// The value text of a cell: `value ±half-width`, or `—`.
fn value_text(cell: &Cell, unit: Unit) -> String {
    if let Some(text) = &cell.text {
        return text.clone();
    }
    let Some(value) = cell.value else {
        return "\u{2014}".to_owned();
    };
    let (shift, decimals) = unit.scale();
    let mut text = format_decimal(value.num, value.den, shift, decimals);
    if let Some((low, high)) = cell.ci_nano {
        // The half-width of the interval, ×10^9 in the base unit, rounded at the last digit.
        text.push_str(&format!(
            " ±{}",
            format_decimal(high - low, 2, 9 + shift, decimals)
        ));
    }
    text
}

/// The Δ text of `cell` against `base` and its markers.
fn delta_text(
    base: &Cell,
    cell: &Cell,
    unit: Unit,
    mode: DeltaMode,
    is_max: bool,
) -> (String, String) {
    let (Some(b), Some(v)) = (base.value, cell.value) else {
        return ("\u{2014}".to_owned(), String::new());
    };
    let difference = v.num * b.den - b.num * v.den;
    let text = match mode {
        DeltaMode::Percent if b.num == 0 => "n/a".to_owned(),
        DeltaMode::Percent => {
            let (mut num, mut den) = (difference * 100, v.den * b.num);
            if den < 0 {
                (num, den) = (-num, -den);
            }
            signed(format_decimal(num, den, 0, 1)) + "%"
        }
        DeltaMode::Absolute => {
            let (shift, decimals) = unit.scale();
            signed(format_decimal(difference, v.den * b.den, shift, decimals))
        }
    };
    let mut markers = String::new();
    if let (Some((bl, bh)), Some((vl, vh))) = (base.ci_nano, cell.ci_nano) {
        if vh < bl || vl > bh {
            markers.push('*');
        }
    }
    if is_max {
        if let (Some(bc), Some(vc)) = (base.count, cell.count) {
            if u128::from(bc.abs_diff(vc)) * 10 > u128::from(bc) {
                markers.push('!');
            }
        }
    }
    (text, markers)
}

fn signed(text: String) -> String {
    if text.starts_with('\u{2212}') {
        text
    } else {
        format!("+{text}")
    }
}

/// A cell's printed parts: value, Δ, markers.
type CellText = (String, String, String);

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, width: usize) -> String {
    " ".repeat(width.saturating_sub(chars(s)))
}

/// The printed parts of every cell: the baseline and text cells have no Δ.
fn cell_texts(rows: &[Row], mode: DeltaMode) -> Vec<Vec<CellText>> {
    rows.iter()
        .map(|r| {
            let base = &r.cells[0];
            r.cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let value = value_text(c, r.unit);
                    if i == 0 || c.text.is_some() {
                        return (value, String::new(), String::new());
                    }
                    let (delta, markers) = delta_text(base, c, r.unit, mode, r.is_max);
                    (value, delta, markers)
                })
                .collect()
        })
        .collect()
}

/// Column widths: per scheduler the widest value, Δ and markers, and the whole column.
struct Widths {
    label: usize,
    parts: Vec<(usize, usize, usize)>,
    columns: Vec<usize>,
}

/// Width of the unit column.
const UNIT_WIDTH: usize = 5;

fn widths(result: &CompareResult, rows: &[Row], texts: &[Vec<CellText>]) -> Widths {
    let label = rows
        .iter()
        .map(|r| chars(&r.label))
        .max()
        .unwrap_or(0)
        .max(6);
    let mut parts = vec![(0usize, 0usize, 0usize); result.runs.len()];
    for row in texts {
        for (i, (v, d, m)) in row.iter().enumerate() {
            parts[i].0 = parts[i].0.max(chars(v));
            parts[i].1 = parts[i].1.max(chars(d));
            parts[i].2 = parts[i].2.max(chars(m));
        }
    }
    let columns = parts
        .iter()
        .zip(&result.runs)
        .enumerate()
        .map(|(i, (&(v, d, m), run))| {
            let w = if i == 0 { v } else { v + 2 + d + 1 + m };
            w.max(chars(run.scheduler.as_str()))
        })
        .collect();
    Widths {
        label,
        parts,
        columns,
    }
}

/// The two header lines: column names, then dashes.
fn header_rows(result: &CompareResult, w: &Widths) -> String {
    let mut out = format!(
        "metric{}  unit {}",
        pad("metric", w.label),
        pad("unit", UNIT_WIDTH - 1)
    );
    for (run, &width) in result.runs.iter().zip(&w.columns) {
        let name = run.scheduler.as_str();
        out.push_str(&format!("  {}{name}", pad(name, width)));
    }
    out = out.trim_end().to_owned() + "\n";
    out.push_str(&"-".repeat(w.label));
    out.push_str(&format!("  {}", "-".repeat(UNIT_WIDTH)));
    for &width in &w.columns {
        out.push_str(&format!("  {}", "-".repeat(width)));
    }
    out.push('\n');
    out
}

/// Lays the rows out in fixed-width columns, numbers right-aligned.
fn layout(result: &CompareResult, rows: &[Row], mode: DeltaMode) -> String {
    let texts = cell_texts(rows, mode);
    let w = widths(result, rows, &texts);
    let mut out = header_rows(result, &w);
    for (row, cells) in rows.iter().zip(&texts) {
        let unit = row.unit.label();
        let mut line = format!(
            "{}{}  {unit}{}",
            row.label,
            pad(&row.label, w.label),
            pad(unit, UNIT_WIDTH)
        );
        for (i, (v, d, m)) in cells.iter().enumerate() {
            let (vw, dw, mw) = w.parts[i];
            let cell = if i == 0 {
                format!("{}{v}", pad(v, vw))
            } else {
                format!("{}{v}  {}{d} {m}{}", pad(v, vw), pad(d, dw), pad(m, mw))
            };
            line.push_str(&format!("  {}{cell}", pad(&cell, w.columns[i])));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(num: i128, den: i128, ci: Option<(i128, i128)>, count: Option<u64>) -> Cell {
        Cell {
            value: Some(Num { num, den }),
            ci_nano: ci,
            count,
            text: None,
        }
    }

    /// 10^9: interval bounds are nano-units.
    const NANO: i128 = 1_000_000_000;

    #[test]
    fn delta_percent_has_one_decimal_and_a_sign() {
        // 21000 → 12250 ns: −41.666…% prints −41.7%; 100 → 176.4: +76.4%.
        let base = cell(21_000, 1, None, None);
        let later = cell(12_250, 1, None, None);
        let up = cell(1764, 10, None, None);

        let (down_text, _) = delta_text(&base, &later, Unit::Micros, DeltaMode::Percent, false);
        let base_100 = cell(100, 1, None, None);
        let (up_text, _) = delta_text(&base_100, &up, Unit::Micros, DeltaMode::Percent, false);

        assert_eq!(down_text, "\u{2212}41.7%");
        assert_eq!(up_text, "+76.4%");
    }

    #[test]
    fn delta_against_zero_baseline_is_n_a_and_undefined_is_a_dash() {
        let zero = cell(0, 1, None, None);
        let value = cell(5, 1, None, None);

        let (n_a, _) = delta_text(&zero, &value, Unit::Micros, DeltaMode::Percent, false);
        let (dash, _) = delta_text(
            &Cell::default(),
            &value,
            Unit::Micros,
            DeltaMode::Percent,
            false,
        );

        assert_eq!(n_a, "n/a");
        assert_eq!(dash, "\u{2014}");
        assert_eq!(value_text(&Cell::default(), Unit::Micros), "\u{2014}");
    }

    #[test]
    fn delta_abs_is_in_the_rows_unit() {
        // 3100 ns → 1000 ns is −2.100 µs.
        let base = cell(3_100, 1, None, None);
        let later = cell(1_000, 1, None, None);

        let (text, _) = delta_text(&base, &later, Unit::Micros, DeltaMode::Absolute, false);

        assert_eq!(text, "\u{2212}2.100");
    }

    #[test]
    fn star_marks_non_overlapping_intervals_only() {
        // Baseline [10, 12] µs; [13, 14] does not overlap it, [11.5, 13] does.
        let base = cell(11_000, 1, Some((10_000 * NANO, 12_000 * NANO)), None);
        let apart = cell(13_500, 1, Some((13_000 * NANO, 14_000 * NANO)), None);
        let overlapping = cell(12_000, 1, Some((11_500 * NANO, 13_000 * NANO)), None);

        let (_, star) = delta_text(&base, &apart, Unit::Micros, DeltaMode::Percent, false);
        let (_, none) = delta_text(&base, &overlapping, Unit::Micros, DeltaMode::Percent, false);

        assert_eq!(star, "*");
        assert_eq!(none, "");
    }

    #[test]
    fn bang_marks_max_rows_whose_counts_differ_by_more_than_ten_percent() {
        // 1000 vs 1100 samples is exactly 10% (no mark); 1000 vs 1101 is more.
        let base = cell(5, 1, None, Some(1_000));
        let same_ish = cell(5, 1, None, Some(1_100));
        let more = cell(5, 1, None, Some(1_101));

        let (_, quiet) = delta_text(&base, &same_ish, Unit::Micros, DeltaMode::Percent, true);
        let (_, bang) = delta_text(&base, &more, Unit::Micros, DeltaMode::Percent, true);
        let (_, not_max) = delta_text(&base, &more, Unit::Micros, DeltaMode::Percent, false);

        assert_eq!(quiet, "");
        assert_eq!(bang, "!");
        assert_eq!(not_max, "");
    }

    #[test]
    fn value_text_prints_exact_units_and_the_half_width() {
        // Mean 21000 ns with the interval [20588, 21412] ns: 21.000 ±0.412 µs.
        let latency = cell(21_000, 1, Some((20_588 * NANO, 21_412 * NANO)), None);
        // 3120 ppm is 0.3120%.
        let ratio = cell(3_120, 1, None, None);

        assert_eq!(value_text(&latency, Unit::Micros), "21.000 \u{b1}0.412");
        assert_eq!(value_text(&ratio, Unit::Percent), "0.3120");
    }
}
