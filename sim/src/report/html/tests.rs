//! Tests of the HTML report: escaping, time labels, the Gantt's bounds and merging, and
//! byte-identical output.

use super::{escape, format_time, render, HtmlReport, LatencySeries, ReportRun, ShareBar};
use crate::report::timeline::{DomainLabel, EndReason, HostTimeline, Slice, SliceKind, Timeline};

/// Window of the synthetic timelines: 1 ms, so one Gantt pixel column is 1 µs.
const WINDOW_NS: u64 = 1_000_000;

fn run_slice(pcpu: u32, start_ns: u64, dur_ns: u64, dom: u16) -> Slice {
    Slice {
        pcpu,
        start_ns,
        dur_ns,
        seq: start_ns,
        kind: SliceKind::Run {
            dom,
            vcpu: 0,
            end: EndReason::Preempt,
        },
    }
}

fn timeline(slices: Vec<Slice>) -> Timeline {
    Timeline {
        start_ns: 0,
        end_ns: WINDOW_NS,
        hosts: vec![HostTimeline {
            name: "h0".to_owned(),
            pcpu_count: 2,
            domains: vec![
                DomainLabel {
                    domid: 0,
                    name: "Domain-0".to_owned(),
                },
                DomainLabel {
                    domid: 1,
                    name: "<web>".to_owned(),
                },
            ],
            slices,
            instants: Vec::new(),
            counters: Vec::new(),
            samples: Vec::new(),
        }],
        dropped_count: 0,
    }
}

fn report(slices: Vec<Slice>) -> HtmlReport {
    HtmlReport {
        title: "xensim run t.toml".to_owned(),
        table: "a < b & c".to_owned(),
        runs: vec![ReportRun {
            label: "credit2".to_owned(),
            timeline: Some(timeline(slices)),
            latency: vec![LatencySeries {
                name: "web".to_owned(),
                samples_ns: vec![1_000, 2_000, 50_000],
            }],
            shares: vec![ShareBar {
                name: "web".to_owned(),
                norm_share_ppm: 500_000,
                actual_ns: 100,
                entitled_ns: 200,
            }],
        }],
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn escape_replaces_markup_characters() {
    assert_eq!(
        escape("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn format_time_prints_needed_decimals_only() {
    assert_eq!(format_time(1_500_000, 1_000_000), "1.5 ms");
    assert_eq!(format_time(2_000_000_000, 1_000_000_000), "2 s");
    assert_eq!(format_time(1_001, 1_000), "1.001 µs");
}

#[test]
fn render_escapes_names_and_table() {
    let page = render(&report(vec![run_slice(0, 0, 500_000, 1)]));

    assert!(page.contains("d1 &lt;web&gt;"));
    assert!(page.contains("<pre id=\"table\">a &lt; b &amp; c</pre>"));
    assert!(!page.contains("<web>"));
}

#[test]
fn gantt_slice_wider_than_pixels_is_one_rect() {
    // 0.5 ms of d1 on pCPU 0: 500 columns of one owner make one rect.
    let page = render(&report(vec![run_slice(0, 0, 500_000, 1)]));

    assert_eq!(count(&page, "<rect class=\"slice\""), 1);
    assert!(page.contains("width=\"500\""));
}

#[test]
fn gantt_slices_below_a_pixel_merge_into_their_column() {
    // 1000 runs of 300 ns, alternating d0 and d1, every µs: each 1 µs column holds one
    // run of 300 ns and 700 ns idle, so the pCPU is drawn idle: no rect at all.
    let sparse: Vec<Slice> = (0..1000u64)
        .map(|i| run_slice(0, i * 1_000, 300, u16::from(i % 2 == 1)))
        .collect();
    // Runs of 600 ns every µs: the domain owns each column; equal neighbours merge.
    let dense: Vec<Slice> = (0..1000u64)
        .map(|i| run_slice(1, i * 1_000, 600, 1))
        .collect();

    let page = render(&report(sparse.into_iter().chain(dense).collect()));

    assert_eq!(count(&page, "<rect class=\"slice\""), 1);
    assert!(page.contains("width=\"1000\""));
}

#[test]
fn render_is_byte_identical_for_the_same_report() {
    let slices = vec![run_slice(0, 10, 400_000, 0), run_slice(1, 7, 3, 1)];

    assert_eq!(render(&report(slices.clone())), render(&report(slices)));
}

#[test]
fn render_draws_one_cdf_path_per_domain_with_samples() {
    let mut r = report(Vec::new());
    r.runs[0].latency.push(LatencySeries {
        name: "empty".to_owned(),
        samples_ns: Vec::new(),
    });

    let page = render(&r);

    assert_eq!(count(&page, "<path class=\"cdf\""), 1);
    assert_eq!(count(&page, "<rect class=\"share\""), 1);
}

#[test]
fn same_domid_on_two_hosts_gets_two_colours() {
    let mut t = timeline(vec![run_slice(0, 0, 500_000, 1)]);
    let mut second = t.hosts[0].clone();
    second.name = "h1".to_owned();
    t.hosts.push(second);

    let palette = super::Palette::of(&t);

    // Pairs by (domid, host): (0, h0), (0, h1), (1, h0), (1, h1) take colours 0 to 3.
    assert_ne!(palette.get(0, 1), palette.get(1, 1));
    assert_eq!(palette.get(0, 1), super::DOMAIN_COLOURS[2]);
}
