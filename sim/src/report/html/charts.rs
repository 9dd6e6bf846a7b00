//! The HTML report's small charts: wakeup-latency CDFs (one line per domain, log-x axis)
//! and fairness bars (a domain's CPU time against its entitlement, `metrics.md` §1.4).
//!
//! The log axis uses an integer log2 in 1/256 steps, interpolated linearly between powers
//! of two: monotonic, exact on powers of two, and the same on every machine (no floats).
//!
//! # Invariants
//! - A CDF path has at most [`CDF_POINTS_MAX`] steps, whatever the sample count.
//! - Coordinates are integers inside the plot.

use std::fmt::Write as _;

use super::{escape, format_time, scale, unit_for, Colours, LatencySeries, ShareBar};

/// Most points drawn per CDF line (ranks spread evenly over the samples).
pub const CDF_POINTS_MAX: u64 = 256;
/// Legend rows beside a CDF plot (more would run past its bottom).
const CDF_LEGEND_ROWS_MAX: usize = 16;
/// Plot width, px.
const PLOT_PX: u64 = 800;
/// CDF plot height, px.
const CDF_HEIGHT_PX: u64 = 240;
/// Left gutter, px.
const GUTTER_PX: u64 = 160;
/// Top margin, px.
const TOP_PX: u64 = 10;
/// Height of one fairness bar row, px.
const BAR_ROW_PX: u64 = 22;
/// Closest two labelled ticks may be, px.
const TICK_GAP_PX: u64 = 60;
/// Fixed-point steps per power of two in [`log2_fp`].
const LOG_STEPS: u64 = 256;

/// Appends the CDF SVG of `series` (one line per domain) to `out`.
pub fn render_cdf(out: &mut String, series: &[LatencySeries], colours: &Colours) {
    let drawn: Vec<&LatencySeries> = series.iter().filter(|s| !s.samples_ns.is_empty()).collect();
    let (Some(lo_ns), Some(hi_ns)) = (
        drawn.iter().filter_map(|s| s.samples_ns.first()).min(),
        drawn.iter().filter_map(|s| s.samples_ns.last()).max(),
    ) else {
        out.push_str("<p class=\"note\">No wakeup-latency samples.</p>\n");
        return;
    };
    let (lo_ns, hi_ns) = ((*lo_ns).max(1), (*hi_ns).max(1));
    for s in &drawn {
        assert!(
            s.samples_ns.windows(2).all(|w| w[0] <= w[1]),
            "latency samples of {} are not sorted",
            s.name
        );
    }
    let bottom = TOP_PX + CDF_HEIGHT_PX;
    let _ = writeln!(
        out,
        "<svg class=\"cdfs\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">",
        GUTTER_PX + PLOT_PX + 40,
        bottom + 30
    );
    let x_of = |ns: u64| log_x(ns.max(1), lo_ns, hi_ns);
    cdf_axes(out, lo_ns, hi_ns, bottom);
    for (index, s) in drawn.iter().enumerate() {
        let colour = colours.get(&s.name, index);
        let _ = writeln!(
            out,
            "<path class=\"cdf\" stroke=\"{colour}\" d=\"{}\"><title>{}</title></path>",
            cdf_path(&s.samples_ns, &x_of, bottom),
            escape(&s.name)
        );
        let y = TOP_PX + 12 + u64::try_from(index).unwrap_or(0) * 14;
        if index == CDF_LEGEND_ROWS_MAX {
            let more = drawn.len() - index;
            let _ = writeln!(out, "<text x=\"18\" y=\"{y}\">+{more} more</text>");
        }
        if index >= CDF_LEGEND_ROWS_MAX {
            continue;
        }
        let _ = writeln!(
            out,
            "<rect x=\"4\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"18\" y=\"{y}\">{} (n={})</text>",
            y - 9,
            escape(&s.name),
            s.samples_ns.len()
        );
    }
    out.push_str("</svg>\n");
}

/// A step path through at most [`CDF_POINTS_MAX`] ranks of `sorted`.
fn cdf_path(sorted: &[u64], x_of: &dyn Fn(u64) -> u64, bottom: u64) -> String {
    let n = u64::try_from(sorted.len()).unwrap_or(u64::MAX);
    let points = n.min(CDF_POINTS_MAX);
    let mut d = format!("M{} {bottom}", x_of(sorted[0]));
    for k in 1..=points {
        // Rank k·n/points rounded up (1-based), so the last point is the maximum.
        let rank = (k * n).div_ceil(points);
        let index = usize::try_from(rank - 1).unwrap_or(0);
        let x = x_of(sorted[index]);
        let y = bottom - scale(rank, CDF_HEIGHT_PX, n);
        let _ = write!(d, " H{x} V{y}");
    }
    d
}

fn cdf_axes(out: &mut String, lo_ns: u64, hi_ns: u64, bottom: u64) {
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{GUTTER_PX}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>\
         <line class=\"axis\" x1=\"{GUTTER_PX}\" y1=\"{TOP_PX}\" x2=\"{GUTTER_PX}\" \
         y2=\"{bottom}\"/>",
        GUTTER_PX + PLOT_PX
    );
    for percent in [0u64, 50, 90, 100] {
        let y = bottom - scale(percent, CDF_HEIGHT_PX, 100);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{GUTTER_PX}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{percent}%</text>",
            GUTTER_PX + PLOT_PX,
            GUTTER_PX - 4,
            y + 4
        );
    }
    // A tick at every power of ten inside [lo, hi], and at both ends.
    let mut ticks = vec![lo_ns];
    let mut decade = 1u64;
    while decade <= hi_ns {
        if decade > lo_ns && decade < hi_ns {
            ticks.push(decade);
        }
        match decade.checked_mul(10) {
            Some(next) => decade = next,
            None => break,
        }
    }
    if hi_ns > lo_ns {
        ticks.push(hi_ns);
    }
    let mut last_x: Option<u64> = None;
    for (index, &tick) in ticks.iter().enumerate() {
        let x = log_x(tick, lo_ns, hi_ns);
        // Labels closer than TICK_GAP_PX collide: drop the inner one (the ends stay).
        let next_x = ticks.get(index + 1).map(|&t| log_x(t, lo_ns, hi_ns));
        let crowded = |other: Option<u64>| other.is_some_and(|o| x.abs_diff(o) < TICK_GAP_PX);
        let is_end = index == 0 || index + 1 == ticks.len();
        if !is_end && (crowded(last_x) || (index + 2 == ticks.len() && crowded(next_x))) {
            continue;
        }
        last_x = Some(x);
        let unit = unit_for(tick);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{TOP_PX}\" x2=\"{x}\" y2=\"{}\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 4,
            bottom + 18,
            format_time(round_to_3_digits(tick, unit), unit)
        );
    }
}

/// `ns` cut to at most three significant decimals of `unit_ns`, for axis labels.
fn round_to_3_digits(ns: u64, unit_ns: u64) -> u64 {
    let step = (unit_ns / 1000).max(1);
    ns / step * step
}

/// The x pixel of `ns` on a log axis from `lo_ns` to `hi_ns` (both ≥ 1).
fn log_x(ns: u64, lo_ns: u64, hi_ns: u64) -> u64 {
    let (lo, hi, v) = (log2_fp(lo_ns), log2_fp(hi_ns), log2_fp(ns));
    if hi == lo {
        return GUTTER_PX + PLOT_PX / 2;
    }
    GUTTER_PX + scale(v.clamp(lo, hi) - lo, PLOT_PX, hi - lo)
}

/// `log2(v)` in 1/256 steps, linear between powers of two (`v` ≥ 1).
fn log2_fp(v: u64) -> u64 {
    assert!(v >= 1, "log of 0");
    let whole = u64::from(v.ilog2());
    let base = 1u128 << whole;
    let frac = (u128::from(v) - base) * u128::from(LOG_STEPS) / base;
    whole * LOG_STEPS + u64::try_from(frac).unwrap_or(0)
}

/// Appends the fairness bars: per domain a bar of its CPU time and a mark at its
/// entitlement, both on one scale, labelled with the normalised share.
pub fn render_shares(out: &mut String, bars: &[ShareBar], colours: &Colours) {
    if bars.is_empty() {
        out.push_str("<p class=\"note\">No entitlement computed for this run.</p>\n");
        return;
    }
    let max_ns = bars
        .iter()
        .map(|b| b.actual_ns.max(b.entitled_ns))
        .max()
        .unwrap_or(0)
        .max(1);
    let rows = u64::try_from(bars.len()).unwrap_or(0);
    let _ = writeln!(
        out,
        "<svg class=\"shares\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">",
        GUTTER_PX + PLOT_PX + 160,
        rows * BAR_ROW_PX + 8
    );
    for (index, bar) in bars.iter().enumerate() {
        let y = 4 + u64::try_from(index).unwrap_or(0) * BAR_ROW_PX;
        let width = scale(bar.actual_ns, PLOT_PX, max_ns);
        let mark = GUTTER_PX + scale(bar.entitled_ns, PLOT_PX, max_ns);
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{}\">{}</text>\
             <rect class=\"share\" x=\"{GUTTER_PX}\" y=\"{y}\" width=\"{width}\" height=\"16\" \
             fill=\"{}\"><title>actual {} ns, entitled {} ns</title></rect>\
             <line class=\"entitled\" x1=\"{mark}\" y1=\"{}\" x2=\"{mark}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            y + 12,
            escape(&bar.name),
            colours.get(&bar.name, index),
            bar.actual_ns,
            bar.entitled_ns,
            y.saturating_sub(1),
            y + 17,
            GUTTER_PX + PLOT_PX + 8,
            y + 12,
            ppm_percent(bar.norm_share_ppm)
        );
    }
    out.push_str("</svg>\n");
}

/// `norm_share_ppm` as a percentage with two decimals (`982500` → `98.25%`), truncated.
fn ppm_percent(ppm: i64) -> String {
    let sign = if ppm < 0 { "-" } else { "" };
    let magnitude = ppm.unsigned_abs();
    format!(
        "{sign}{}.{:02}% of entitlement",
        magnitude / 10_000,
        magnitude % 10_000 / 100
    )
}

#[cfg(test)]
mod tests {
    use super::{log2_fp, ppm_percent};

    #[test]
    fn log2_fp_is_exact_on_powers_of_two() {
        assert_eq!(log2_fp(1), 0);
        assert_eq!(log2_fp(1024), 10 * 256);
    }

    #[test]
    fn log2_fp_interpolates_between_powers_of_two() {
        // 3 is halfway between 2 and 4.
        assert_eq!(log2_fp(3), 256 + 128);
    }

    #[test]
    fn ppm_percent_renders_two_decimals_and_sign() {
        assert_eq!(ppm_percent(982_500), "98.25% of entitlement");
        assert_eq!(ppm_percent(-5_000), "-0.50% of entitlement");
    }
}
