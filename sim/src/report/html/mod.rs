//! The HTML report (`--report out.html`): one self-contained page with inline CSS and SVG,
//! no script and no external resource (a Content-Security-Policy forbids any fetch). Per
//! run (one per scheduler for `xensim compare`, one for `xensim run`): a Gantt chart of
//! vCPUs on pCPUs ([`gantt`]), wakeup-latency CDFs per domain and fairness bars
//! ([`charts`]); then the plain-text table.
//!
//! # Invariants
//! - All coordinates are integers computed with integer arithmetic, so the page is
//!   byte-identical for the same input on every machine.
//! - Every text from the run (names, commands, the table) is escaped.
//! - The page is bounded whatever the run's length: the Gantt has at most
//!   [`gantt::ROWS_MAX`] rows of at most [`gantt::PLOT_WIDTH_PX`] rects, a CDF at most
//!   [`charts::CDF_POINTS_MAX`] points per domain.

pub mod charts;
pub mod gantt;

use std::fmt::Write as _;

use super::timeline::Timeline;

/// A whole report page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HtmlReport {
    /// First line of the page, e.g. `xensim compare quickstart.toml   seeds 1..4`.
    pub title: String,
    /// The plain-text table (compare table §4.2 or the run summary), shown monospaced.
    pub table: String,
    /// One per scheduler (compare), or one (run).
    pub runs: Vec<ReportRun>,
}

/// The charts of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRun {
    /// Scheduler name (`credit2`).
    pub label: String,
    /// One run's timeline for the Gantt; `None` = no chart.
    pub timeline: Option<Timeline>,
    /// Wakeup-latency CDFs, one per domain.
    pub latency: Vec<LatencySeries>,
    /// Fairness bars, one per domain.
    pub shares: Vec<ShareBar>,
}

/// The pooled wakeup-latency samples of one domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencySeries {
    /// Domain name.
    pub name: String,
    /// Samples, sorted ascending, pooled over vCPUs (and seeds).
    pub samples_ns: Vec<u64>,
}

/// A domain's CPU share against its entitlement (`specs/metrics.md` §1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareBar {
    /// Domain name.
    pub name: String,
    /// `actual · 10^6 / entitled`.
    pub norm_share_ppm: i64,
    /// CPU time received, ns.
    pub actual_ns: u64,
    /// CPU time entitled to, ns.
    pub entitled_ns: u64,
}

/// Fill colours of domains (Tableau 10, colour-blind friendly); see [`Palette`].
const DOMAIN_COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The page's style sheet.
const STYLE: &str = "body{font-family:sans-serif;margin:16px;color:#222}\
h1{font-size:18px}h2{font-size:16px;margin-top:24px}h3{font-size:14px}\
svg{display:block;margin:8px 0}svg text{font-family:sans-serif;font-size:11px;fill:#222}\
.axis{stroke:#444;stroke-width:1}.grid{stroke:#ddd;stroke-width:1}\
.cdf{fill:none;stroke-width:2}.entitled{stroke:#222;stroke-width:2}\
pre{background:#f6f6f6;padding:8px;overflow-x:auto}.note{color:#666;font-size:12px}";

/// Renders `report` as one HTML page.
pub fn render(report: &HtmlReport) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&report.title));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<h1 id=\"title\">{}</h1>", escape(&report.title));
    for (index, run) in report.runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "<section class=\"run\" id=\"run-{index}\">\n<h2>{}</h2>",
            escape(&run.label)
        );
        match &run.timeline {
            Some(timeline) => {
                out.push_str("<h3>vCPUs on pCPUs</h3>\n");
                gantt::render(&mut out, timeline);
            }
            None => out.push_str("<p class=\"note\">No timeline captured for this run.</p>\n"),
        }
        let colours = Colours::of(run.timeline.as_ref());
        out.push_str("<h3>Wakeup latency (CDF per domain)</h3>\n");
        charts::render_cdf(&mut out, &run.latency, &colours);
        out.push_str("<h3>CPU share against entitlement</h3>\n");
        charts::render_shares(&mut out, &run.shares, &colours);
        out.push_str("</section>\n");
    }
    let _ = writeln!(
        out,
        "<h2>Table</h2>\n<pre id=\"table\">{}</pre>\n</body>\n</html>",
        escape(&report.table)
    );
    out
}

/// `text` with `& < > " '` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The colours of a timeline's domains: each (host, domid) pair gets the palette colour of
/// its rank among the timeline's pairs ordered by (domid, host), so one host's domains
/// follow domid order and the same domid on two hosts gets two colours.
#[derive(Debug, Default)]
pub struct Palette {
    by_key: std::collections::BTreeMap<(usize, u16), &'static str>,
}

impl Palette {
    fn of(timeline: &Timeline) -> Palette {
        let mut keys = std::collections::BTreeSet::new();
        for (host, h) in timeline.hosts.iter().enumerate() {
            keys.extend(h.domains.iter().map(|d| (d.domid, host)));
        }
        let by_key = keys
            .into_iter()
            .enumerate()
            .map(|(rank, (domid, host))| ((host, domid), palette_colour(rank)))
            .collect();
        Palette { by_key }
    }

    /// The colour of domain `domid` on host `host`.
    fn get(&self, host: usize, domid: u16) -> &'static str {
        self.by_key
            .get(&(host, domid))
            .copied()
            .unwrap_or(palette_colour(usize::from(domid)))
    }
}

/// Colours of domains by name, so a domain has the same colour in the Gantt and in the
/// charts: its [`Palette`] colour when the run's timeline names it, else by position.
#[derive(Debug, Default)]
pub struct Colours {
    by_name: std::collections::BTreeMap<String, &'static str>,
}

impl Colours {
    fn of(timeline: Option<&Timeline>) -> Colours {
        let mut by_name = std::collections::BTreeMap::new();
        if let Some(timeline) = timeline {
            let palette = Palette::of(timeline);
            for (index, host) in timeline.hosts.iter().enumerate() {
                for d in &host.domains {
                    let colour = palette.get(index, d.domid);
                    by_name.entry(d.name.clone()).or_insert(colour);
                    by_name.insert(format!("{}/{}", host.name, d.name), colour);
                }
            }
        }
        Colours { by_name }
    }

    /// The colour of the domain `name`, drawn as the `index`th of its chart.
    fn get(&self, name: &str, index: usize) -> &'static str {
        self.by_name
            .get(name)
            .copied()
            .unwrap_or(palette_colour(index))
    }
}

/// The `index`th palette colour (the palette repeats).
fn palette_colour(index: usize) -> &'static str {
    DOMAIN_COLOURS[index % DOMAIN_COLOURS.len()]
}

/// `time_ns` in the unit of `unit_ns` (1, 10^3, 10^6 or 10^9), with the decimals it needs:
/// `format_time(1_500_000, 1_000_000)` is `1.5 ms`.
fn format_time(time_ns: u64, unit_ns: u64) -> String {
    let unit = match unit_ns {
        1 => "ns",
        1_000 => "µs",
        1_000_000 => "ms",
        _ => "s",
    };
    let whole = time_ns / unit_ns;
    let mut frac = time_ns % unit_ns;
    if frac == 0 {
        return format!("{whole} {unit}");
    }
    let mut digits = unit_ns.ilog10();
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    let width = usize::try_from(digits).unwrap_or(0);
    format!("{whole}.{frac:0width$} {unit}")
}

/// The largest of ns, µs, ms, s not above `step_ns`.
fn unit_for(step_ns: u64) -> u64 {
    match step_ns {
        0..=999 => 1,
        1_000..=999_999 => 1_000,
        1_000_000..=999_999_999 => 1_000_000,
        _ => 1_000_000_000,
    }
}

/// `a · b / c` in `u128`, for coordinates (`c` > 0; the result fits by construction).
fn scale(a: u64, b: u64, c: u64) -> u64 {
    assert!(c > 0, "scale by zero");
    let value = u128::from(a) * u128::from(b) / u128::from(c);
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
