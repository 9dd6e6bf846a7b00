//! The human summary table `xensim run` prints: per domain, then per vCPU, CPU time, wait
//! (`runnable_ns`), wakeup latency p50/p99 and dispatch count (`specs/metrics.md` §1.1,
//! §1.2, §4.2 formatting); then periodic-job results (§1.7); then vbd I/O (§2.1); then per
//! pCPU, busy, idle and switch-overhead time, utilization and context switches (§1.8,
//! §1.11, §1.12).
//!
//! Formatting uses integers only: times in ms with 3 decimals (the ns value rounded half
//! to even at the µs), latencies in µs with 3 decimals (exact), `-` for a null value.
//!
//! # Invariants
//! - Columns have fixed widths and numbers are right-aligned; a name longer than its column
//!   widens only its own row.
//! - The output depends only on [`Metrics`] (no terminal width, locale or clock).

use std::fmt::Write as _;

use super::{DomainMetrics, Metrics};

/// Nanoseconds per microsecond.
const NS_PER_US: u64 = 1_000;
/// Microseconds per millisecond.
const US_PER_MS: u64 = 1_000;

/// The summary table of `metrics`, one line per domain and per vCPU, newline-terminated.
pub fn render_summary(metrics: &Metrics) -> String {
    let mut out = String::new();
    let window = &metrics.window;
    let _ = writeln!(
        out,
        "window {} ms .. {} ms",
        ns_as_ms(window.start_ns),
        ns_as_ms(window.end_ns)
    );
    let _ = writeln!(
        out,
        "{:<16} {:>4} {:>6} {:>14} {:>14} {:>12} {:>12} {:>10}",
        "domain", "vcpu", "host", "cpu_ms", "wait_ms", "wake_p50_us", "wake_p99_us", "dispatch"
    );
    for domain in &metrics.domains {
        render_domain(&mut out, domain);
    }
    render_jobs(&mut out, metrics);
    render_io(&mut out, metrics);
    render_memory(&mut out, metrics);
    render_pcpus(&mut out, metrics);
    out
}

/// One line per domain with a guest memory model: swap-ins (major faults), swap-outs, the
/// run time lost to swapping, OOM kills, balloon give-ups and the useful work done (§2.2);
/// nothing when no domain has one.
fn render_memory(out: &mut String, metrics: &Metrics) {
    let rows: Vec<(&DomainMetrics, &super::memory::MemoryMetrics)> = metrics
        .domains
        .iter()
        .filter_map(|d| d.memory.as_ref().map(|m| (d, m)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{:<16} {:>10} {:>10} {:>12} {:>5} {:>7} {:>12}",
        "domain", "swap_in", "swap_out", "swap_ms", "oom", "gaveup", "work_ms"
    );
    for (domain, m) in rows {
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>10} {:>12} {:>5} {:>7} {:>12}",
            format!("{} (d{})", domain.name, domain.domid),
            m.swap_in_count,
            m.swap_out_count,
            ns_as_ms(m.swap_stall_ns),
            m.oom_kill_count,
            m.balloon_gave_up_count,
            ns_as_ms(m.work_ns),
        );
    }
}

/// One line per vbd with I/O: completions, IOPS, throughput, ring and guest latency
/// (§2.1); nothing when no domain did I/O.
fn render_io(out: &mut String, metrics: &Metrics) {
    let rows: Vec<(&DomainMetrics, &super::IoMetrics)> = metrics
        .domains
        .iter()
        .flat_map(|d| d.io.iter().map(move |io| (d, io)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>8} {:>12} {:>10} {:>12} {:>12} {:>12} {:>12}",
        "domain",
        "dev",
        "ios",
        "iops",
        "MiB/s",
        "ring_p50_us",
        "ring_p99_us",
        "guest_p50_us",
        "guest_p99_us"
    );
    for (domain, io) in rows {
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>8} {:>12} {:>10} {:>12} {:>12} {:>12} {:>12}",
            format!("{} (d{})", domain.name, domain.domid),
            io.dev,
            io.io_completed_count,
            format!("{}.{:03}", io.iops_milli / 1_000, io.iops_milli % 1_000),
            io.throughput_bps / (1 << 20),
            opt_ns_as_us(io.io_latency_ring_ns.p50),
            opt_ns_as_us(io.io_latency_ring_ns.p99),
            opt_ns_as_us(io.io_latency_guest_ns.p50),
            opt_ns_as_us(io.io_latency_guest_ns.p99),
        );
    }
}

/// One line per domain with a periodic workload: jobs, deadline misses, response time and
/// tardiness (§1.7); nothing when no domain has one.
fn render_jobs(out: &mut String, metrics: &Metrics) {
    let periodic: Vec<&DomainMetrics> = metrics
        .domains
        .iter()
        .filter(|d| d.jobs.job_count.is_some())
        .collect();
    if periodic.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{:<16} {:>8} {:>8} {:>8} {:>10} {:>12} {:>12}",
        "domain", "jobs", "decided", "missed", "miss_ppm", "resp_p99_us", "tardy_max_us"
    );
    for domain in periodic {
        let jobs = &domain.jobs;
        let count = |c: Option<u64>| c.map_or_else(|| "-".to_owned(), |c| c.to_string());
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>8} {:>8} {:>10} {:>12} {:>12}",
            format!("{} (d{})", domain.name, domain.domid),
            count(jobs.job_count),
            count(jobs.decided_job_count),
            count(jobs.deadline_miss_count),
            count(jobs.deadline_miss_ratio_ppm),
            opt_ns_as_us(jobs.response_ns.as_ref().and_then(|d| d.p99)),
            opt_ns_as_us(jobs.tardiness_ns.as_ref().and_then(|d| d.max)),
        );
    }
}

/// One line per pCPU: busy and idle time, utilization, context switches (§1.8, §1.11).
fn render_pcpus(out: &mut String, metrics: &Metrics) {
    let _ = writeln!(
        out,
        "{:<8} {:>6} {:>10} {:>14} {:>14} {:>12} {:>9} {:>10} {:>10}",
        "host",
        "pcpu",
        "pool",
        "busy_ms",
        "idle_ms",
        "overhead_ms",
        "util_%",
        "ctx_sw",
        "decisions"
    );
    for host in &metrics.hosts {
        for pcpu in &host.pcpus {
            let _ = writeln!(
                out,
                "{:<8} {:>6} {:>10} {:>14} {:>14} {:>12} {:>9} {:>10} {:>10}",
                host.name,
                pcpu.id,
                pcpu.pool.as_deref().unwrap_or("-"),
                ns_as_ms(pcpu.busy_ns),
                ns_as_ms(pcpu.idle_ns),
                ns_as_ms(pcpu.overhead_ns),
                pcpu.utilization_ppm
                    .map_or_else(|| "-".to_string(), ppm_as_percent),
                pcpu.context_switch_count,
                pcpu.sched_decision_count
            );
        }
    }
}

/// Parts per million as a percentage with 2 decimals, truncated (integers only).
fn ppm_as_percent(ppm: u64) -> String {
    format!("{}.{:02}", ppm / 10_000, (ppm % 10_000) / 100)
}

fn render_domain(out: &mut String, domain: &DomainMetrics) {
    let mut dispatch_count: u64 = 0;
    for vcpu in &domain.vcpus {
        dispatch_count = dispatch_count.saturating_add(vcpu.dispatch_count);
    }
    let name = format!("{} (d{})", domain.name, domain.domid);
    let _ = writeln!(
        out,
        "{:<16} {:>4} {:>6} {:>14} {:>14} {:>12} {:>12} {:>10}",
        name,
        "all",
        domain.host,
        ns_as_ms(domain.running_ns),
        ns_as_ms(domain.runnable_ns),
        opt_ns_as_us(domain.wakeup_latency_ns.p50),
        opt_ns_as_us(domain.wakeup_latency_ns.p99),
        dispatch_count
    );
    for vcpu in &domain.vcpus {
        let _ = writeln!(
            out,
            "{:<16} {:>4} {:>6} {:>14} {:>14} {:>12} {:>12} {:>10}",
            "",
            vcpu.id,
            "",
            ns_as_ms(vcpu.running_ns),
            ns_as_ms(vcpu.runnable_ns),
            opt_ns_as_us(vcpu.wakeup_latency_ns.p50),
            opt_ns_as_us(vcpu.wakeup_latency_ns.p99),
            vcpu.dispatch_count
        );
    }
}

/// `ns` as milliseconds with 3 decimals, rounded half to even at the microsecond.
pub fn ns_as_ms(ns: u64) -> String {
    let whole_us = ns / NS_PER_US;
    let rest_ns = ns % NS_PER_US;
    let half_ns = NS_PER_US / 2;
    let round_up = rest_ns > half_ns || (rest_ns == half_ns && whole_us % 2 == 1);
    // Cannot overflow: whole_us <= u64::MAX / 1000.
    let us = whole_us + u64::from(round_up);
    format!("{}.{:03}", us / US_PER_MS, us % US_PER_MS)
}

/// `ns` as microseconds with 3 decimals (exact).
pub fn ns_as_us(ns: u64) -> String {
    format!("{}.{:03}", ns / NS_PER_US, ns % NS_PER_US)
}

fn opt_ns_as_us(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_owned(), ns_as_us)
}

#[cfg(test)]
mod tests {
    use super::{ns_as_ms, ns_as_us};

    #[test]
    fn ns_as_ms_half_microsecond_rounds_to_even() {
        // 1.5 µs rounds to 2 µs; 2.5 µs rounds to 2 µs; 2.501 µs rounds to 3 µs.
        assert_eq!(ns_as_ms(1_500), "0.002");
        assert_eq!(ns_as_ms(2_500), "0.002");
        assert_eq!(ns_as_ms(2_501), "0.003");
    }

    #[test]
    fn ns_as_ms_whole_seconds_print_three_decimals() {
        const TWO_SECONDS_NS: u64 = 2_000_000_000;

        assert_eq!(ns_as_ms(TWO_SECONDS_NS), "2000.000");
    }

    #[test]
    fn ns_as_us_is_exact() {
        assert_eq!(ns_as_us(1_234_567), "1234.567");
        assert_eq!(ns_as_us(7), "0.007");
    }
}
