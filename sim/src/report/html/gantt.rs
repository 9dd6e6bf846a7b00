//! The Gantt chart of the HTML report: one row per pCPU (over every host), time on the x
//! axis, a rect per stretch of pixel columns owned by one domain, coloured per domain, with
//! a legend and a time axis.
//!
//! Bounding: the plot is [`PLOT_WIDTH_PX`] columns wide whatever the window's length.
//! Each pixel column of a row shows what took most of its time: a domain (its runs summed),
//! the switch overhead, or nothing when the pCPU was mostly idle. Runs shorter than a pixel
//! are thus merged into their column, and consecutive columns with the same owner become
//! one rect, so a row has at most [`PLOT_WIDTH_PX`] rects. At most [`ROWS_MAX`] pCPUs are
//! drawn (the first ones, host by host); the chart says how many were left out. For a
//! closer look, capture a shorter window (`--window A..B`).
//!
//! # Invariants
//! - Rects of a row never overlap and stay inside the plot.
//! - Column arithmetic is integer (`u128` products), so the SVG is the same everywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{escape, format_time, scale, unit_for, Palette};
use crate::report::timeline::{HostTimeline, SliceKind, Timeline};

/// Width of the plot area, px (one column per pixel).
pub const PLOT_WIDTH_PX: u64 = 1000;
/// Most pCPU rows drawn.
pub const ROWS_MAX: usize = 64;
/// Left gutter for the row labels, px.
const GUTTER_PX: u64 = 120;
/// Height of one row, px.
const ROW_PX: u64 = 16;
/// Gap between rows, px.
const ROW_GAP_PX: u64 = 2;
/// Space above the rows for the legend, px.
const TOP_PX: u64 = 24;
/// Space below the rows for the axis labels, px.
const AXIS_PX: u64 = 28;
/// Room the legend keeps for one more entry (or its `+N more`), px.
const LEGEND_ENTRY_PX_MIN: u64 = 120;
/// Most ticks on the time axis.
const TICKS_MAX: u64 = 10;

/// Who owns a pixel column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Domain(u16),
    Overhead,
}

/// One row: a pCPU of a host.
struct Row<'a> {
    label: String,
    host: usize,
    pcpu: u32,
    timeline: &'a HostTimeline,
}

/// Time per owner in each pixel column of a row.
type Columns = Vec<BTreeMap<Owner, u64>>;

/// Appends the Gantt SVG of `timeline` to `out`.
pub fn render(out: &mut String, timeline: &Timeline) {
    let length_ns = timeline.end_ns.saturating_sub(timeline.start_ns);
    if length_ns == 0 {
        out.push_str("<p class=\"note\">The timeline window is empty.</p>\n");
        return;
    }
    let mut rows = Vec::new();
    let mut total_rows = 0usize;
    for (host_index, host) in timeline.hosts.iter().enumerate() {
        for pcpu in 0..host.pcpu_count {
            total_rows += 1;
            if rows.len() < ROWS_MAX {
                rows.push(Row {
                    label: format!("{} pCPU {pcpu}", host.name),
                    host: host_index,
                    pcpu,
                    timeline: host,
                });
            }
        }
    }
    let row_count = u64::try_from(rows.len()).unwrap_or(0);
    let plot_bottom = TOP_PX + row_count * (ROW_PX + ROW_GAP_PX);
    let _ = writeln!(
        out,
        "<svg class=\"gantt\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">",
        GUTTER_PX + PLOT_WIDTH_PX + 40,
        plot_bottom + AXIS_PX
    );
    let palette = Palette::of(timeline);
    legend(out, timeline, &palette);
    axis(out, timeline, plot_bottom);
    let columns = row_columns(timeline, &rows);
    for (index, (row, busy)) in rows.iter().zip(&columns).enumerate() {
        let y = TOP_PX + u64::try_from(index).unwrap_or(0) * (ROW_PX + ROW_GAP_PX);
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{}\">{}</text>",
            y + ROW_PX - 4,
            escape(&row.label)
        );
        let owners = column_owners(busy, timeline.end_ns - timeline.start_ns);
        row_rects(out, row, &owners, (y, &palette));
    }
    out.push_str("</svg>\n");
    if total_rows > rows.len() {
        let _ = writeln!(
            out,
            "<p class=\"note\">Showing {} of {total_rows} pCPUs.</p>",
            rows.len()
        );
    }
}

/// The time each owner spent in each pixel column, per row: one pass over each host's
/// slices.
fn row_columns(timeline: &Timeline, rows: &[Row<'_>]) -> Vec<Columns> {
    let start_ns = timeline.start_ns;
    let length_ns = timeline.end_ns - start_ns;
    let width = usize::try_from(PLOT_WIDTH_PX).unwrap_or(0);
    let mut out: Vec<Columns> = vec![vec![BTreeMap::new(); width]; rows.len()];
    let row_of: BTreeMap<(usize, u32), usize> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| ((row.host, row.pcpu), index))
        .collect();
    for (host_index, host) in timeline.hosts.iter().enumerate() {
        for slice in &host.slices {
            let Some(&row) = row_of.get(&(host_index, slice.pcpu)) else {
                continue;
            };
            let owner = match slice.kind {
                SliceKind::Run { dom, .. } => Owner::Domain(dom),
                SliceKind::Overhead => Owner::Overhead,
            };
            let lo = slice.start_ns - start_ns;
            let hi = lo + slice.dur_ns;
            let first = scale(lo, PLOT_WIDTH_PX, length_ns);
            let last = scale(hi - 1, PLOT_WIDTH_PX, length_ns).min(PLOT_WIDTH_PX - 1);
            for column in first..=last {
                let (c_lo, c_hi) = column_span(column, length_ns);
                let overlap_ns = hi.min(c_hi).saturating_sub(lo.max(c_lo));
                let index = usize::try_from(column).unwrap_or(0);
                *out[row][index].entry(owner).or_default() += overlap_ns;
            }
        }
    }
    out
}

/// The owner of each pixel column: the domain or overhead with the most time in it, unless
/// idle time is larger.
fn column_owners(busy: &Columns, length_ns: u64) -> Vec<Option<Owner>> {
    busy.iter()
        .enumerate()
        .map(|(column, owners)| {
            let (c_lo, c_hi) = column_span(u64::try_from(column).unwrap_or(0), length_ns);
            let total: u64 = owners.values().sum();
            let idle_ns = (c_hi - c_lo).saturating_sub(total);
            // The largest owner; ties go to the smaller key (BTreeMap order).
            let best =
                owners
                    .iter()
                    .fold(None, |best: Option<(Owner, u64)>, (&o, &ns)| match best {
                        Some((_, best_ns)) if best_ns >= ns => best,
                        _ => Some((o, ns)),
                    });
            best.filter(|&(_, ns)| ns > 0 && ns >= idle_ns)
                .map(|(o, _)| o)
        })
        .collect()
}

/// `[lo, hi)` of pixel column `column`, ns from the window start.
fn column_span(column: u64, length_ns: u64) -> (u64, u64) {
    (
        column_start(column, length_ns),
        column_start(column + 1, length_ns),
    )
}

/// Where pixel column `column` starts, ns from the window start (rounded up, so every ns
/// belongs to exactly the column `floor(ns · width / length)`).
fn column_start(column: u64, length_ns: u64) -> u64 {
    let product = u128::from(column) * u128::from(length_ns);
    let width = u128::from(PLOT_WIDTH_PX);
    u64::try_from(product.div_ceil(width)).unwrap_or(u64::MAX)
}

/// One rect per run of equal owners.
fn row_rects(out: &mut String, row: &Row<'_>, owners: &[Option<Owner>], at: (u64, &Palette)) {
    let (y, palette) = at;
    let mut column = 0;
    while column < owners.len() {
        let owner = owners[column];
        let mut end = column + 1;
        while end < owners.len() && owners[end] == owner {
            end += 1;
        }
        if let Some(owner) = owner {
            let (class, fill, title) = match owner {
                Owner::Domain(domid) => {
                    let name = row.timeline.domain_name(domid).unwrap_or("?");
                    let fill = palette.get(row.host, domid);
                    ("slice", fill, format!("d{domid} {name}"))
                }
                Owner::Overhead => ("slice overhead", "#555555", "switch overhead".to_owned()),
            };
            let _ = writeln!(
                out,
                "<rect class=\"{class}\" x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{ROW_PX}\" \
                 fill=\"{fill}\"><title>{}</title></rect>",
                GUTTER_PX + u64::try_from(column).unwrap_or(0),
                end - column,
                escape(&title)
            );
        }
        column = end;
    }
}

fn legend(out: &mut String, timeline: &Timeline, palette: &Palette) {
    // By domid, host, then name: a domid reused after a destroy is listed once per name;
    // with several hosts, each entry names its host.
    let multi_host = timeline.hosts.len() > 1;
    let mut seen = std::collections::BTreeSet::new();
    for (host, h) in timeline.hosts.iter().enumerate() {
        for d in &h.domains {
            let label = if multi_host {
                format!("{} d{} {}", h.name, d.domid, d.name)
            } else {
                format!("d{} {}", d.domid, d.name)
            };
            seen.insert((d.domid, host, label));
        }
    }
    let mut x = GUTTER_PX;
    let total = seen.len();
    for (index, (domid, host, label)) in seen.into_iter().enumerate() {
        if x + LEGEND_ENTRY_PX_MIN > GUTTER_PX + PLOT_WIDTH_PX {
            let _ = writeln!(
                out,
                "<text x=\"{x}\" y=\"13\">+{} more</text>",
                total - index
            );
            return;
        }
        let _ = writeln!(
            out,
            "<rect class=\"legend\" x=\"{x}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"13\">{}</text>",
            palette.get(host, domid),
            x + 14,
            escape(&label)
        );
        let width = u64::try_from(label.chars().count()).unwrap_or(0) * 7 + 30;
        x += width;
    }
}

/// The time axis: a line and up to [`TICKS_MAX`] labelled ticks at a 1-2-5 step.
fn axis(out: &mut String, timeline: &Timeline, bottom: u64) {
    let length_ns = timeline.end_ns - timeline.start_ns;
    let step_ns = tick_step(length_ns);
    let unit_ns = unit_for(step_ns);
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{GUTTER_PX}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>",
        GUTTER_PX + PLOT_WIDTH_PX
    );
    let mut tick_ns = timeline.start_ns.div_ceil(step_ns) * step_ns;
    while tick_ns <= timeline.end_ns {
        let x = GUTTER_PX + scale(tick_ns - timeline.start_ns, PLOT_WIDTH_PX, length_ns);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{TOP_PX}\" x2=\"{x}\" y2=\"{}\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 4,
            bottom + 18,
            format_time(tick_ns, unit_ns)
        );
        tick_ns += step_ns;
    }
}

/// The smallest 1-2-5 step giving at most [`TICKS_MAX`] ticks over `length_ns`.
fn tick_step(length_ns: u64) -> u64 {
    let mut decade = 1u64;
    loop {
        for factor in [1, 2, 5] {
            let step = decade.saturating_mul(factor);
            if length_ns / step <= TICKS_MAX {
                return step;
            }
        }
        decade = decade.saturating_mul(10);
    }
}
