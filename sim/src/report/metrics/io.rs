//! I/O metrics of a domain per vbd (`specs/metrics.md` §2.1), from the guest models' I/O
//! records: submitted at `t_s` (blkfront pushes), completed on the ring at `t_c`, seen by
//! the guest at `t_g` (its vCPU ran after `t_c`).
//!
//! An I/O belongs to the window if `t_s <= t_c` and `start <= t_c < end`.
//! `iops_milli = count · 10^12 / W`, `throughput_bps = bytes · 10^9 / W` (floors, u128).
//!
//! The ring counters come from the trace (`BlkPush`, `BlkResponse` in the window): how many
//! pushes and responses there were, and how many of them notified the other end.
//!
//! The collector keeps, per domain, the guest models' logs of completed I/Os as they are
//! ([`IoLog`]: one per source, 40 bytes per I/O, each device named once).
//!
//! # Invariants
//! - `io_error_count <= io_completed_count`; `io_latency_ring_ns.count ==
//!   io_completed_count`; `io_latency_guest_ns.count <= io_completed_count` (an I/O whose
//!   guest has not run again by the end has no `t_g`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::dist::Distribution;
use crate::guest::io_log::{IoLog, IoSample};
use crate::run::net::{DropReason, NetDropRecord};

/// One entry of `domains[].io`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IoMetrics {
    /// The device (`xvda`); the path selector of `[[expect]]`.
    pub dev: String,
    /// `vbd` or `vif`.
    pub kind: String,
    /// I/Os whose ring completion is in the window (errors included).
    pub io_completed_count: u64,
    /// Of those, answered with an error status.
    pub io_error_count: u64,
    /// Bytes of the successful ones.
    pub io_bytes: u64,
    /// IOPS × 1000.
    pub iops_milli: u64,
    /// Bytes per second.
    pub throughput_bps: u64,
    /// `t_c − t_s`.
    pub io_latency_ring_ns: Distribution,
    /// `t_g − t_s`.
    pub io_latency_guest_ns: Distribution,
    /// Ring requests blkfront pushed (a guest I/O may take several).
    pub ring_request_count: u64,
    /// blkfront's pushes (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub ring_push_count: u64,
    /// Of those, the ones that notified blkback (the rest the event index let it skip).
    pub ring_push_notify_count: u64,
    /// Responses blkback pushed.
    pub ring_response_count: u64,
    /// Of those, the ones that notified blkfront.
    pub ring_response_notify_count: u64,
    /// Writes acknowledged with `BLKIF_RSP_OKAY` (over the whole run) whose data is not
    /// on the disk at the end (`run/durability.rs`); 0 for a domain destroyed before.
    pub lost_acked_write_count: u64,
    /// Of those, the ones a flush that completed covered: a broken flush (must be 0).
    pub lost_flushed_write_count: u64,
    /// Reconnects of blkfront or netfront to a re-created backend (a driver domain's
    /// restart).
    pub reconnect_count: u64,
    /// vif: frames dropped because netfront's TX queue or netback's RX queue was full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_ring_full_count: Option<u64>,
    /// vif: frames the fabric lost (`loss_ppm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_fabric_loss_count: Option<u64>,
    /// vif: frames dropped at a partitioned link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_partition_count: Option<u64>,
    /// vif: frames with no route (no such peer, larger than the MTU, vif not connected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_no_route_count: Option<u64>,
    /// vbd with a `disk.rate` stream: of the completed I/Os, those that waited for a free
    /// slot because the stream's `queue_depth` was reached (`guest/disk_stream.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_deferred_count: Option<u64>,
}

/// The end-of-run checks of one vbd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VbdChecks {
    /// Acknowledged writes whose data is gone.
    pub lost_acked_write_count: u64,
    /// Of those, the ones a completed flush covered (must stay 0).
    pub lost_flushed_write_count: u64,
    /// Reconnects to a re-created backend.
    pub reconnect_count: u64,
}

/// In-window ring traffic of one vbd, counted from the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounts {
    /// Ring requests pushed.
    pub requests_pushed: u64,
    /// Pushes.
    pub push_count: u64,
    /// Pushes that notified.
    pub push_notify_count: u64,
    /// Responses pushed.
    pub response_count: u64,
    /// Responses that notified.
    pub response_notify_count: u64,
}

/// The xl name of a `virtual-device` number: `xvd<letter>` for 202:(16·n), else `vbd<n>`.
pub fn vdev_name(vdev: u32) -> String {
    let disk = vdev.wrapping_sub(202 << 8) >> 4;
    let partition = vdev & 0xf;
    match u8::try_from(disk) {
        Ok(d) if d < 26 && partition == 0 && vdev >> 8 == 202 => {
            format!("xvd{}", char::from(b'a' + d))
        }
        _ => format!("vbd{vdev}"),
    }
}

/// The `io` entries of the records in `logs`, `rings` and the vif `drops` over
/// `[start_ns, end_ns)`, with the run's end vbd `checks`, by device name.
pub fn io_metrics(
    logs: &[IoLog],
    rings: &[(u32, RingCounts)],
    checks: &BTreeMap<String, VbdChecks>,
    drops: &[NetDropRecord],
    start_ns: u64,
    end_ns: u64,
) -> Vec<IoMetrics> {
    let rings: BTreeMap<String, RingCounts> =
        rings.iter().map(|(v, c)| (vdev_name(*v), *c)).collect();
    let mut by_dev: BTreeMap<&str, Vec<&IoSample>> = BTreeMap::new();
    for log in logs {
        group_in_window(log, start_ns, end_ns, &mut by_dev);
    }
    let mut drops_by_dev: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for drop in drops {
        if start_ns <= drop.at_ns && drop.at_ns < end_ns {
            by_dev.entry(&drop.dev).or_default();
            let counts = drops_by_dev.entry(&drop.dev).or_default();
            counts[drop_slot(drop.reason)] += 1;
        }
    }
    // Every device named by a record (in the window or not).
    for dev in logs.iter().flat_map(IoLog::devs) {
        if dev.starts_with("vif") {
            drops_by_dev.entry(dev).or_default();
        }
    }
    let window_ns = u128::from(end_ns.saturating_sub(start_ns).max(1));
    by_dev
        .into_iter()
        .map(|(dev, ios)| {
            let count = ios.len() as u64;
            let bytes: u64 = ios.iter().map(|r| r.bytes).sum();
            let mut ring_ns: Vec<u64> = ios.iter().map(|r| r.ring_done_ns - r.submit_ns).collect();
            let mut guest: Vec<u64> = ios
                .iter()
                .filter_map(|r| r.guest_done_ns().map(|g| g - r.submit_ns))
                .collect();
            let per_s = |n: u64, scale: u128| {
                u64::try_from(u128::from(n) * scale / window_ns).unwrap_or(u64::MAX)
            };
            let ring = rings.get(dev).copied().unwrap_or_default();
            let check = checks.get(dev).copied().unwrap_or_default();
            let drops = drops_by_dev.get(dev).copied();
            let drop = |slot: usize| drops.map(|d| d[slot]);
            IoMetrics {
                dev: dev.to_string(),
                kind: if drops.is_some() { "vif" } else { "vbd" }.to_string(),
                io_completed_count: count,
                io_error_count: ios.iter().filter(|r| !r.ok).count() as u64,
                io_bytes: bytes,
                iops_milli: per_s(count, 1_000_000_000_000),
                throughput_bps: per_s(bytes, 1_000_000_000),
                io_latency_ring_ns: Distribution::from_unordered(
                    &mut ring_ns,
                    "io_latency_ring_ns",
                ),
                io_latency_guest_ns: Distribution::from_unordered(
                    &mut guest,
                    "io_latency_guest_ns",
                ),
                ring_request_count: ring.requests_pushed,
                ring_push_count: ring.push_count,
                ring_push_notify_count: ring.push_notify_count,
                ring_response_count: ring.response_count,
                ring_response_notify_count: ring.response_notify_count,
                lost_acked_write_count: check.lost_acked_write_count,
                lost_flushed_write_count: check.lost_flushed_write_count,
                reconnect_count: check.reconnect_count,
                drop_ring_full_count: drop(0),
                drop_fabric_loss_count: drop(1),
                drop_partition_count: drop(2),
                drop_no_route_count: drop(3),
                io_deferred_count: deferred_count(&ios),
            }
        })
        .collect()
}

/// Adds the in-window samples of `log` to `by_dev`, each run of one device's samples
/// with one map lookup (a log is one source's, mostly of one device), in log order.
fn group_in_window<'a>(
    log: &'a IoLog,
    start_ns: u64,
    end_ns: u64,
    by_dev: &mut BTreeMap<&'a str, Vec<&'a IoSample>>,
) {
    let mut run: Option<(&str, Vec<&IoSample>)> = None;
    for (dev, io) in log.samples() {
        if !(start_ns <= io.ring_done_ns && io.ring_done_ns < end_ns) {
            continue;
        }
        match &mut run {
            // The same device name: its one `Arc<str>` in the log, compared by address.
            Some((run_dev, ios)) if std::ptr::eq(*run_dev, dev) => ios.push(io),
            _ => {
                if let Some((run_dev, ios)) = run.replace((dev, vec![io])) {
                    append_run(by_dev, run_dev, ios);
                }
            }
        }
    }
    if let Some((run_dev, ios)) = run {
        append_run(by_dev, run_dev, ios);
    }
}

/// Appends a run of `dev`'s samples to its entry (the run itself when it is the first).
fn append_run<'a>(
    by_dev: &mut BTreeMap<&'a str, Vec<&'a IoSample>>,
    dev: &'a str,
    mut ios: Vec<&'a IoSample>,
) {
    let entry = by_dev.entry(dev).or_default();
    if entry.is_empty() {
        *entry = ios;
    } else {
        entry.append(&mut ios);
    }
}

/// The stream I/Os that waited for a slot; `None` without stream I/O.
fn deferred_count(ios: &[&IoSample]) -> Option<u64> {
    let stream: Vec<bool> = ios.iter().filter_map(|r| r.deferred).collect();
    (!stream.is_empty()).then(|| stream.iter().filter(|&&waited| waited).count() as u64)
}

fn drop_slot(reason: DropReason) -> usize {
    match reason {
        DropReason::RingFull => 0,
        DropReason::FabricLoss => 1,
        DropReason::Partition => 2,
        DropReason::NoRoute => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of one 4 KiB read of `xvda` per (submit, ring completion, guest run at).
    fn log(ios: &[(u64, u64, Option<u64>)]) -> Vec<IoLog> {
        let xvda: std::sync::Arc<str> = std::sync::Arc::from("xvda");
        let mut log = IoLog::default();
        for &(submit_ns, ring_done_ns, guest_done_ns) in ios {
            let io = crate::guest::io_log::Completed {
                submit_ns,
                ring_done_ns,
                running: false,
                bytes: 4096,
                ok: true,
                deferred: None,
            };
            log.push(&xvda, io);
            if let Some(at_ns) = guest_done_ns {
                log.on_run_start(at_ns);
            }
        }
        vec![log]
    }

    #[test]
    fn two_ios_in_one_second_are_two_iops() {
        // 1 s window: 2 I/Os of 4 KiB = 2000 milli-IOPS, 8192 B/s.
        let logs = log(&[(0, 100, Some(150)), (200, 500, None)]);
        let m = io_metrics(&logs, &[], &BTreeMap::new(), &[], 0, 1_000_000_000);
        assert_eq!(m[0].iops_milli, 2_000);
        assert_eq!(m[0].throughput_bps, 8_192);
        assert_eq!(m[0].io_latency_ring_ns.max, Some(300));
        assert_eq!(m[0].io_latency_guest_ns.count, 1);
    }

    #[test]
    fn completion_after_the_window_is_left_out() {
        let logs = log(&[(0, 2_000, Some(2_000))]);
        let m = io_metrics(&logs, &[], &BTreeMap::new(), &[], 0, 1_000);
        assert!(m.is_empty());
    }

    #[test]
    fn interleaved_devices_group_as_one_sample_at_a_time() {
        let (xvda, xvdb): (std::sync::Arc<str>, std::sync::Arc<str>) =
            (std::sync::Arc::from("xvda"), std::sync::Arc::from("xvdb"));
        // Runs of each device, one sample outside the window, over two logs.
        let mut logs = vec![IoLog::default(), IoLog::default()];
        let plan = [
            (0, &xvda, 10),
            (0, &xvda, 20),
            (0, &xvdb, 30),
            (0, &xvda, 5_000),
        ];
        let plan = plan
            .into_iter()
            .chain([(0, &xvda, 40), (1, &xvdb, 50), (1, &xvda, 60)]);
        for (i, (log, dev, ring_done_ns)) in plan.enumerate() {
            let io = crate::guest::io_log::Completed {
                submit_ns: 0,
                ring_done_ns,
                running: false,
                bytes: 512 << i,
                ok: true,
                deferred: None,
            };
            logs[log].push(dev, io);
        }

        let mut by_dev = BTreeMap::new();
        for log in &logs {
            group_in_window(log, 0, 1_000, &mut by_dev);
        }

        // The straightforward grouping: one lookup per sample.
        let mut want: BTreeMap<&str, Vec<&IoSample>> = BTreeMap::new();
        for (dev, io) in logs.iter().flat_map(IoLog::samples) {
            if io.ring_done_ns < 1_000 {
                want.entry(dev).or_default().push(io);
            }
        }
        let bytes = |m: &BTreeMap<&str, Vec<&IoSample>>| -> Vec<(String, Vec<u64>)> {
            let rows = m
                .iter()
                .map(|(d, ios)| (d.to_string(), ios.iter().map(|r| r.bytes)));
            rows.map(|(d, b)| (d, b.collect())).collect()
        };
        assert_eq!(bytes(&by_dev), bytes(&want));
        assert_eq!(by_dev["xvda"].len(), 4);
    }

    #[test]
    fn vdev_numbers_name_xen_disks() {
        assert_eq!(vdev_name(51712), "xvda");
        assert_eq!(vdev_name(51728), "xvdb");
        assert_eq!(vdev_name(51713), "vbd51713");
    }
}
