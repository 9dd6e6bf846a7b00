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

use super::timeline::{
    CounterSample, HostTimeline, Instant, InstantKind, Slice, SliceKind, Timeline, Track, VcpuLabel,
};

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

/// The sort key of a non-metadata event: `(ts_ns, pid, tid, rank, seq)`.
type Key = (u64, u32, u32, u8, u64);

/// A non-metadata event of a host, before it is written.
#[derive(Clone, Copy)]
enum Event<'a> {
    Slice(&'a Slice),
    Instant(&'a Instant),
    Sample(&'a CounterSample),
}

/// Writes `timeline` as trace-event JSON.
pub fn write(timeline: &Timeline, meta: &PerfettoMeta) -> String {
    let mut metadata: Vec<((u32, u32, &'static str), String)> = Vec::new();
    let mut events: Vec<(Key, &HostTimeline, Event<'_>)> = Vec::new();
    for (index, host) in timeline.hosts.iter().enumerate() {
        let pid = u32::try_from(index + 1).expect("host count fits u32");
        host_metadata(&mut metadata, pid, host);
        host_events(&mut events, pid, host);
    }
    metadata.sort_by_key(|m| m.0);
    events.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(160 * (events.len() + metadata.len() + 4));
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
    out.push_str("},\"traceEvents\":[");
    let mut first = true;
    let mut separator = |out: &mut String| {
        out.push_str(if first { "\n" } else { ",\n" });
        first = false;
    };
    for (_, line) in &metadata {
        separator(&mut out);
        out.push_str(line);
    }
    for ((_, pid, tid, _, _), host, event) in events {
        separator(&mut out);
        match event {
            Event::Slice(slice) => write_slice(&mut out, pid, tid, slice),
            Event::Instant(instant) => write_instant(&mut out, pid, tid, instant),
            Event::Sample(sample) => write_sample(&mut out, pid, host, sample),
        }
    }
    out.push_str("\n]}\n");
    out
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
fn track_tid(track: Track, pcpu_count: u32) -> u32 {
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

fn host_events<'a>(
    out: &mut Vec<(Key, &'a HostTimeline, Event<'a>)>,
    pid: u32,
    host: &'a HostTimeline,
) {
    for slice in &host.slices {
        let key = (slice.start_ns, pid, slice.pcpu + 1, RANK_X, slice.seq);
        out.push((key, host, Event::Slice(slice)));
    }
    for instant in &host.instants {
        let tid = track_tid(instant.track, host.pcpu_count);
        let key = (instant.time_ns, pid, tid, RANK_I, instant.seq);
        out.push((key, host, Event::Instant(instant)));
    }
    for sample in &host.samples {
        let key = (sample.time_ns, pid, 0, RANK_C, sample.seq);
        out.push((key, host, Event::Sample(sample)));
    }
}

/// Appends `ns` as µs with exactly three decimals.
fn push_us(out: &mut String, ns: u64) {
    let _ = write!(out, "{}.{:03}", ns / 1000, ns % 1000);
}

fn write_slice(out: &mut String, pid: u32, tid: u32, slice: &Slice) {
    match slice.kind {
        SliceKind::Run { dom, vcpu, .. } => {
            let _ = write!(
                out,
                "{{\"ph\":\"X\",\"name\":\"d{dom} v{vcpu}\",\"cat\":\"vcpu\""
            );
        }
        SliceKind::Overhead => {
            out.push_str("{\"ph\":\"X\",\"name\":\"sched\",\"cat\":\"overhead\"")
        }
    }
    let _ = write!(out, ",\"pid\":{pid},\"tid\":{tid},\"ts\":");
    push_us(out, slice.start_ns);
    out.push_str(",\"dur\":");
    push_us(out, slice.dur_ns);
    match slice.kind {
        SliceKind::Run { dom, vcpu, end } => {
            let _ = write!(
                out,
                ",\"args\":{{\"dom\":{dom},\"vcpu\":{vcpu},\"end\":\"{}\"}}}}",
                end.name()
            );
        }
        SliceKind::Overhead => out.push_str(",\"args\":{}}"),
    }
}

fn write_sample(out: &mut String, pid: u32, host: &HostTimeline, sample: &CounterSample) {
    let track = &host.counters[usize::try_from(sample.counter).expect("index fits usize")];
    let _ = write!(
        out,
        "{{\"ph\":\"C\",\"name\":{},\"pid\":{pid},\"tid\":0,\"ts\":",
        json_str(&track.name)
    );
    push_us(out, sample.time_ns);
    let _ = write!(out, ",\"args\":{{\"{}\":{}}}}}", track.key, sample.value);
}

fn write_vcpu(out: &mut String, v: VcpuLabel) {
    let _ = write!(out, "\"dom\":{},\"vcpu\":{}", v.dom, v.vcpu);
}

fn write_instant(out: &mut String, pid: u32, tid: u32, instant: &Instant) {
    let (name, cat) = match &instant.kind {
        InstantKind::Wake(_) => ("\"wake\"".to_owned(), "sched"),
        InstantKind::Tickle { .. } => ("\"tickle\"".to_owned(), "sched"),
        InstantKind::Migrate { .. } => ("\"migrate\"".to_owned(), "sched"),
        InstantKind::Command(text) => (json_str(text), "toolstack"),
        InstantKind::XenstoredWork { .. } => ("\"xenstored work\"".to_owned(), "xenstore"),
        InstantKind::XenstoredDone { .. } => ("\"xenstored done\"".to_owned(), "xenstore"),
        InstantKind::XenbusEvent { .. } => ("\"xenbus event\"".to_owned(), "xenbus"),
        InstantKind::XenbusState { .. } => ("\"xenbus state\"".to_owned(), "xenbus"),
    };
    let scope = if instant.track == Track::Host {
        "p"
    } else {
        "t"
    };
    let _ = write!(
        out,
        "{{\"ph\":\"i\",\"name\":{name},\"cat\":\"{cat}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
    );
    push_us(out, instant.time_ns);
    let _ = write!(out, ",\"s\":\"{scope}\",\"args\":{{");
    write_instant_args(out, &instant.kind);
    out.push_str("}}");
}

fn write_instant_args(out: &mut String, kind: &InstantKind) {
    match kind {
        InstantKind::Wake(v) => write_vcpu(out, *v),
        InstantKind::Tickle { from_pcpu, vcpu } => {
            if let Some(from) = from_pcpu {
                let _ = write!(out, "\"from_pcpu\":{from}");
            }
            if let Some(v) = vcpu {
                if from_pcpu.is_some() {
                    out.push(',');
                }
                write_vcpu(out, *v);
            }
        }
        InstantKind::Migrate {
            vcpu,
            from_pcpu,
            to_pcpu,
            level,
        } => {
            write_vcpu(out, *vcpu);
            let _ = write!(
                out,
                ",\"from_pcpu\":{from_pcpu},\"to_pcpu\":{to_pcpu},\"level\":\"{}\"",
                level.name()
            );
        }
        InstantKind::Command(_) => {}
        InstantKind::XenstoredWork {
            item,
            requests,
            rings,
        } => {
            let _ = write!(
                out,
                "\"item\":{item},\"requests\":{requests},\"rings\":{rings}"
            );
        }
        InstantKind::XenstoredDone { item } => {
            let _ = write!(out, "\"item\":{item}");
        }
        InstantKind::XenbusEvent { path } => {
            let _ = write!(out, "\"path\":{}", json_str(path));
        }
        InstantKind::XenbusState { path, state } => {
            let _ = write!(out, "\"path\":{},\"state\":{state}", json_str(path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{json_str, push_us, write, PerfettoMeta};

    fn us(ns: u64) -> String {
        let mut out = String::new();
        push_us(&mut out, ns);
        out
    }
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
