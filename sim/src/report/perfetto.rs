//! The Chrome / Perfetto trace-event JSON export of a [`Timeline`] (`specs/metrics.md`
//! §4.3): the JSON Object Format of Google's Trace Event Format, which Perfetto and
//! `chrome://tracing` import.
//!
//! Mapping: host `I` is process `pid = I + 1`; pCPU `N` is thread `tid = N + 1`; two more
//! threads per host carry xenstored's work (`tid = pCPUs + 1`) and the XenBus events
//! (`tid = pCPUs + 2`). vCPU runs and switch overhead are complete (`X`) slices, wakes,
//! tickles, migrations and XenStore/XenBus events are thread instants, toolstack commands
//! are process instants (`"s":"p"`, `tid` 0) and runqueue lengths and free memory are
//! counters (`C`, `tid` 0).
//!
//! # Invariants
//! - Hand-written JSON with a fixed key order; `ts`/`dur` are exact decimals of µs made
//!   from integer ns (`1234567 ns → 1234.567`), never through `f64`.
//! - All `M` events come first (by pid, tid, name), then the rest sorted by
//!   `(ts_ns, pid, tid, phase rank X < i < C, capture seq)`; one event per line.
//! - The same timeline and meta give the same bytes.

use std::fmt::Write as _;

use super::timeline::{HostTimeline, Instant, InstantKind, SliceKind, Timeline, Track, VcpuLabel};

/// What identifies the run in `otherData`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerfettoMeta {
    /// `xensim` version (`CARGO_PKG_VERSION`).
    pub xensim_version: String,
    /// Scenario file name.
    pub scenario: String,
    /// The run's seed.
    pub seed: u64,
    /// The run hash, rendered.
    pub trace_hash: String,
}

/// Phase ranks of the sort key: slices before instants before counters.
const RANK_X: u8 = 0;
const RANK_I: u8 = 1;
const RANK_C: u8 = 2;

/// One event line with its sort key `(ts_ns, pid, tid, rank, seq)`.
type Line = ((u64, u32, u32, u8, u64), String);

/// Writes `timeline` as trace-event JSON.
pub fn write(timeline: &Timeline, meta: &PerfettoMeta) -> String {
    let mut lines: Vec<Line> = Vec::new();
    let mut metadata: Vec<((u32, u32, &'static str), String)> = Vec::new();
    for (index, host) in timeline.hosts.iter().enumerate() {
        let pid = u32::try_from(index + 1).expect("host count fits u32");
        host_metadata(&mut metadata, pid, host);
        host_events(&mut lines, pid, host);
    }
    metadata.sort_by_key(|a| a.0);
    lines.sort_by_key(|a| a.0);
    let mut out = String::with_capacity(64 * (lines.len() + metadata.len() + 4));
    out.push_str("{\"displayTimeUnit\":\"ns\",\"otherData\":{");
    let _ = write!(
        out,
        "\"xensim_version\":{},\"scenario\":{},\"seed\":\"{}\",\"trace_hash\":{},\
         \"window_ns\":\"{}..{}\"",
        json_str(&meta.xensim_version),
        json_str(&meta.scenario),
        meta.seed,
        json_str(&meta.trace_hash),
        timeline.start_ns,
        timeline.end_ns
    );
    if timeline.dropped_count > 0 {
        let _ = write!(out, ",\"dropped_records\":\"{}\"", timeline.dropped_count);
    }
    out.push_str("},\"traceEvents\":[\n");
    let all: Vec<&String> = metadata
        .iter()
        .map(|m| &m.1)
        .chain(lines.iter().map(|l| &l.1))
        .collect();
    for (index, line) in all.iter().enumerate() {
        out.push_str(line);
        out.push_str(if index + 1 < all.len() { ",\n" } else { "\n" });
    }
    out.push_str("]}\n");
    out
}

/// `ns` as µs with exactly three decimals.
pub fn us(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// `text` as a JSON string literal.
pub fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The tid of a track on a host with `pcpu_count` pCPUs.
pub fn track_tid(track: Track, pcpu_count: u32) -> u32 {
    match track {
        Track::Pcpu(n) => n + 1,
        Track::Xenstored => pcpu_count + 1,
        Track::Xenbus => pcpu_count + 2,
        Track::Host => 0,
    }
}

fn host_metadata(out: &mut Vec<((u32, u32, &'static str), String)>, pid: u32, host: &HostTimeline) {
    let mut meta = |tid: u32, name: &'static str, args: String| {
        let line = format!(
            "{{\"ph\":\"M\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":0.000,\
             \"args\":{{{args}}}}}"
        );
        out.push(((pid, tid, name), line));
    };
    let host_name = json_str(&format!("host {}", host.name));
    meta(0, "process_name", format!("\"name\":{host_name}"));
    meta(
        0,
        "process_sort_index",
        format!("\"sort_index\":{}", pid - 1),
    );
    let mut thread = |tid: u32, name: String, sort_index: u32| {
        meta(tid, "thread_name", format!("\"name\":{}", json_str(&name)));
        meta(
            tid,
            "thread_sort_index",
            format!("\"sort_index\":{sort_index}"),
        );
    };
    for n in 0..host.pcpu_count {
        thread(n + 1, format!("pCPU {n}"), n);
    }
    let tid = track_tid(Track::Xenstored, host.pcpu_count);
    thread(tid, "xenstored".to_owned(), tid - 1);
    let tid = track_tid(Track::Xenbus, host.pcpu_count);
    thread(tid, "xenbus".to_owned(), tid - 1);
}

fn host_events(out: &mut Vec<Line>, pid: u32, host: &HostTimeline) {
    for slice in &host.slices {
        let tid = slice.pcpu + 1;
        let (name, cat, args) = match slice.kind {
            SliceKind::Run { dom, vcpu, end } => (
                format!("d{dom} v{vcpu}"),
                "vcpu",
                format!("\"dom\":{dom},\"vcpu\":{vcpu},\"end\":\"{}\"", end.name()),
            ),
            SliceKind::Overhead => ("sched".to_owned(), "overhead", String::new()),
        };
        let line = format!(
            "{{\"ph\":\"X\",\"name\":\"{name}\",\"cat\":\"{cat}\",\"pid\":{pid},\"tid\":{tid},\
             \"ts\":{},\"dur\":{},\"args\":{{{args}}}}}",
            us(slice.start_ns),
            us(slice.dur_ns)
        );
        out.push(((slice.start_ns, pid, tid, RANK_X, slice.seq), line));
    }
    for instant in &host.instants {
        out.push(instant_line(pid, host.pcpu_count, instant));
    }
    for sample in &host.samples {
        let track = &host.counters[usize::try_from(sample.counter).expect("index fits usize")];
        let line = format!(
            "{{\"ph\":\"C\",\"name\":{},\"pid\":{pid},\"tid\":0,\"ts\":{},\
             \"args\":{{\"{}\":{}}}}}",
            json_str(&track.name),
            us(sample.time_ns),
            track.key,
            sample.value
        );
        out.push(((sample.time_ns, pid, 0, RANK_C, sample.seq), line));
    }
}

fn vcpu_args(v: VcpuLabel) -> String {
    format!("\"dom\":{},\"vcpu\":{}", v.dom, v.vcpu)
}

fn instant_line(pid: u32, pcpu_count: u32, instant: &Instant) -> Line {
    let tid = track_tid(instant.track, pcpu_count);
    let (name, cat, args) = match &instant.kind {
        InstantKind::Wake(v) => ("wake".to_owned(), "sched", vcpu_args(*v)),
        InstantKind::Tickle { from_pcpu, vcpu } => {
            let mut args = Vec::new();
            if let Some(from) = from_pcpu {
                args.push(format!("\"from_pcpu\":{from}"));
            }
            if let Some(v) = vcpu {
                args.push(vcpu_args(*v));
            }
            ("tickle".to_owned(), "sched", args.join(","))
        }
        InstantKind::Migrate {
            vcpu,
            from_pcpu,
            to_pcpu,
            level,
        } => (
            "migrate".to_owned(),
            "sched",
            format!(
                "{},\"from_pcpu\":{from_pcpu},\"to_pcpu\":{to_pcpu},\"level\":\"{}\"",
                vcpu_args(*vcpu),
                level.name()
            ),
        ),
        InstantKind::Command(text) => (text.clone(), "toolstack", String::new()),
        InstantKind::XenstoredWork {
            item,
            requests,
            rings,
        } => (
            "xenstored work".to_owned(),
            "xenstore",
            format!("\"item\":{item},\"requests\":{requests},\"rings\":{rings}"),
        ),
        InstantKind::XenstoredDone { item } => (
            "xenstored done".to_owned(),
            "xenstore",
            format!("\"item\":{item}"),
        ),
        InstantKind::XenbusEvent { path } => (
            "xenbus event".to_owned(),
            "xenbus",
            format!("\"path\":{}", json_str(path)),
        ),
        InstantKind::XenbusState { path, state } => (
            "xenbus state".to_owned(),
            "xenbus",
            format!("\"path\":{},\"state\":{state}", json_str(path)),
        ),
    };
    let scope = if instant.track == Track::Host {
        "p"
    } else {
        "t"
    };
    let line = format!(
        "{{\"ph\":\"i\",\"name\":{},\"cat\":\"{cat}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{},\
         \"s\":\"{scope}\",\"args\":{{{args}}}}}",
        json_str(&name),
        us(instant.time_ns)
    );
    ((instant.time_ns, pid, tid, RANK_I, instant.seq), line)
}

#[cfg(test)]
mod tests {
    use super::{json_str, us, write, PerfettoMeta};
    use crate::report::timeline::{
        EndReason, HostTimeline, Instant, InstantKind, Slice, SliceKind, Timeline, Track, VcpuLabel,
    };

    /// A one-pCPU host with a slice and a wake instant both at 2 µs (the instant captured
    /// first), and a command at 1 µs.
    fn tied() -> Timeline {
        let v = VcpuLabel { dom: 1, vcpu: 0 };
        let instant = |time_ns, seq, track, kind| Instant {
            time_ns,
            seq,
            track,
            kind,
        };
        Timeline {
            start_ns: 0,
            end_ns: 10_000,
            hosts: vec![HostTimeline {
                name: "h0".to_owned(),
                pcpu_count: 1,
                domains: Vec::new(),
                slices: vec![Slice {
                    pcpu: 0,
                    start_ns: 2_000,
                    dur_ns: 1_500,
                    seq: 2,
                    kind: SliceKind::Run {
                        dom: 1,
                        vcpu: 0,
                        end: EndReason::Block,
                    },
                }],
                instants: vec![
                    instant(2_000, 1, Track::Pcpu(0), InstantKind::Wake(v)),
                    instant(
                        1_000,
                        3,
                        Track::Host,
                        InstantKind::Command("xl list".into()),
                    ),
                ],
                counters: Vec::new(),
                samples: Vec::new(),
            }],
            dropped_count: 0,
        }
    }

    fn meta() -> PerfettoMeta {
        PerfettoMeta {
            xensim_version: "0.1.0".to_owned(),
            scenario: "t.toml".to_owned(),
            seed: 1,
            trace_hash: "00".to_owned(),
        }
    }

    #[test]
    fn events_sort_by_time_then_slice_before_instant() {
        let json = write(&tied(), &meta());

        let order: Vec<&str> = json
            .lines()
            .filter(|l| !l.contains("\"ph\":\"M\""))
            .filter_map(|l| l.split("\"name\":").nth(1)?.split(',').next())
            .collect();
        // The command (1 µs), then at 2 µs the slice before the wake although the wake was
        // captured first.
        assert_eq!(order, ["\"xl list\"", "\"d1 v0\"", "\"wake\""]);
    }

    #[test]
    fn metadata_comes_first_and_names_every_track() {
        let json = write(&tied(), &meta());

        let lines: Vec<&str> = json.lines().skip(1).collect();
        let metadata_count = lines
            .iter()
            .take_while(|l| l.contains("\"ph\":\"M\""))
            .count();
        // Process name and sort index, then name and sort index of pCPU 0, xenstored, xenbus.
        assert_eq!(metadata_count, 8);
        assert!(json.contains("\"args\":{\"name\":\"pCPU 0\"}"));
        assert!(!lines[metadata_count..]
            .iter()
            .any(|l| l.contains("\"ph\":\"M\"")));
    }

    #[test]
    fn us_of_1234567_ns_is_exact_decimal() {
        assert_eq!(us(1_234_567), "1234.567");
        assert_eq!(us(5), "0.005");
        assert_eq!(us(0), "0.000");
    }

    #[test]
    fn us_of_u64_max_keeps_every_digit() {
        // 2^64 - 1 ns: an f64 would round the last digits away.
        assert_eq!(us(u64::MAX), "18446744073709551.615");
    }

    #[test]
    fn json_str_escapes_quotes_backslashes_and_controls() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
