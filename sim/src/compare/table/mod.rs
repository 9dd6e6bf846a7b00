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

mod rows;

use rows::{domain_rows, fairness_rows, machine_rows, scalar, Cell, Row, Unit};

use super::{CompareResult, DeltaMode};
use crate::report::aggregate::{format_decimal, AggregateError};
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
    use super::rows::Num;
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
