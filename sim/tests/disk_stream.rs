//! End-to-end runs of a `disk.rate` stream (`specs/scenario.md` §6.1) through blkfront,
//! blkback and the host's disk: its IOPS follow the rate while the disk keeps up, a
//! disk slower than the rate fills the queue depth and defers the rest (never drops
//! them), and each I/O costs the guest the CPU the `io` kind charges per I/O.

#[cfg(test)]
mod tests {
    use std::path::Path;

    use xensim::app::{self, RunArgs, RunReport};
    use xensim::guest::modes::{GuestMode, ModeCosts};
    use xensim::report::metrics::expect::{lookup, Lookup};
    use xensim::scenario::{load_str, LoadOptions};

    /// A PVH guest idling next to a disk stream on a host disk of `model`; 300 ms with
    /// the first 100 ms left out of the metrics.
    fn scenario(model: &str, rate: &str, queue_depth: u32) -> String {
        format!(
            r#"
[sim]
seed = 3
duration = "300ms"
warmup = "100ms"
[host.h0]
topology = {{ sockets = 1, cores_per_socket = 2 }}
memory = "4GiB"
disks = [{{ name = "d0", model = "{model}" }}]
[[domain]]
name = "g"
xl = """
name = "g"
type = "pvh"
memory = 256
vcpus = 1
disk = ['format=raw, vdev=xvda, access=rw, target=/dev/vg/g']
"""
workload = {{ kind = "idle", disk = {{ rate = "{rate}", queue_depth = {queue_depth} }} }}
"#
        )
    }

    fn run(text: &str) -> RunReport {
        let scenario = load_str("stream.toml", text, Path::new("."), &LoadOptions::default())
            .expect("the scenario loads");
        let args = RunArgs {
            check: true,
            ..RunArgs::default()
        };
        let report = app::run_scenario(scenario, &args).expect("the scenario runs");
        assert!(report.outcome.invariant_failure.is_none());
        report
    }

    fn metric(report: &RunReport, path: &str) -> i128 {
        let json: serde_json::Value =
            serde_json::from_str(&report.metrics_json).expect("metrics JSON");
        match lookup(&json, path) {
            Lookup::Integer(value) => value,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn disk_stream_iops_follow_the_rate_while_the_disk_keeps_up() {
        // One 4 KiB read every 100 us on NVMe (~80 us each, depth 4): 10 000 IOPS.
        let report = run(&scenario("nvme", "100us", 4));

        let iops_milli = metric(&report, "domain.g.io.xvda.iops_milli");
        let deferred = metric(&report, "domain.g.io.xvda.io_deferred_count");

        // NVMe latency varies (70-110 us): a few I/Os find all four slots taken.
        assert!(
            (9_900_000..=10_100_000).contains(&iops_milli),
            "{iops_milli}"
        );
        assert!(deferred < 20, "{deferred}");
    }

    #[test]
    fn disk_stream_faster_than_the_disk_defers_and_keeps_the_queue_depth() {
        // A read every 100 us on a hard disk (milliseconds each) with depth 2: the disk
        // sets the pace, far below the rate's 10 000 IOPS, and the rest waits.
        let report = run(&scenario("hdd", "100us", 2));

        let iops_milli = metric(&report, "domain.g.io.xvda.iops_milli");
        let completed = metric(&report, "domain.g.io.xvda.io_completed_count");
        let deferred = metric(&report, "domain.g.io.xvda.io_deferred_count");

        assert!(iops_milli < 2_000_000, "{iops_milli}");
        assert!(deferred > 0);
        assert!(deferred <= completed);
    }

    #[test]
    fn disk_stream_charges_the_guest_cpu_per_io() {
        // The idle guest's only work is the stream: one PVH per-I/O charge per I/O.
        let report = run(&scenario("nvme", "1ms", 1));
        let per_io_ns = ModeCosts::from_table(&Default::default()).disk_io_guest_ns(GuestMode::Pvh);

        let running_ns = metric(&report, "domain.g.vcpus.0.running_ns");
        let completed = metric(&report, "domain.g.io.xvda.io_completed_count");

        // ~200 I/Os complete in the 200 ms window; an I/O submitted before the window
        // may complete in it (and the other way round at its end).
        assert!((198..=200).contains(&completed), "{completed}");
        let expected_ns = completed * i128::from(per_io_ns);
        assert!((running_ns - expected_ns).abs() <= 3 * i128::from(per_io_ns));
    }
}
