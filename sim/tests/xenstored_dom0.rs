//! xenstored's work is dom0 CPU time: the requests it handles run on dom0's vCPU 0, and a
//! dom0 that has to share its pCPU slows the XenBus handshake, whose watch events wait
//! for that work.

#[cfg(test)]
mod tests {
    use std::path::Path;

    use xensim::record::Recorder;
    use xensim::run::{self, RunOptions, RunOutcome};
    use xensim::scenario::{load_str, LoadOptions};

    /// xenstored's per-request cost in these scenarios (30 us, not the 20 us default, so the
    /// product below cannot match by accident).
    const REQUEST_NS: u64 = 30_000;

    fn run_text(text: &str) -> RunOutcome {
        let scenario = load_str("test.toml", text, Path::new("."), &LoadOptions::default())
            .expect("the test scenario is valid");
        let opts = RunOptions {
            decision_log: true,
            ..RunOptions::default()
        };
        run::run(&scenario, &opts, Recorder::new()).expect("the run finishes")
    }

    /// dom0's running time in the window, ns.
    fn dom0_running_ns(outcome: &RunOutcome) -> u64 {
        let metrics = &outcome.sinks_report.metrics;
        let dom0 = metrics.domains.iter().find(|d| d.domid == 0);
        dom0.expect("dom0 has metrics").running_ns
    }

    /// Virtual time of the last decision-log line containing `needle`, ns.
    fn last_line_time_ns(outcome: &RunOutcome, needle: &str) -> u64 {
        let log = outcome.sinks_report.decision_log.as_deref().unwrap_or("");
        let line = log.lines().rfind(|l| l.contains(needle));
        let stamp = line
            .and_then(|l| l.split(' ').next())
            .expect("the line exists");
        let (secs, nanos) = stamp.split_once('.').expect("S.NNNNNNNNN");
        secs.parse::<u64>().expect("seconds") * 1_000_000_000 + nanos.parse::<u64>().expect("ns")
    }

    /// One host, dom0 alone, context switches free; three one-key `xenstore-write`s.
    const THREE_WRITES: &str = r#"
    [sim]
    seed = 1
    duration = "100ms"

    [host.h0]
    topology = { sockets = 1, cores_per_socket = 2 }
    memory = "4GiB"

    [[at]]
    time = "10ms"
    xenstore = "xenstore-write /tool/a 1"

    [[at]]
    time = "20ms"
    xenstore = "xenstore-write /tool/b 2"

    [[at]]
    time = "30ms"
    xenstore = "xenstore-write /tool/c 3"

    [costs]
    "io.xenstored_request_ns" = 30000
    "cpu.vcpu_switch_ns" = 0
    "#;

    #[test]
    fn dom0_cpu_time_is_requests_times_the_request_cost() {
        let outcome = run_text(THREE_WRITES);
        let requests = outcome.hosts[0].hv.xenstored_charged_requests();
        // Three writes of one key each: three requests, nothing else in the run.
        assert_eq!(requests, 3);
        assert_eq!(dom0_running_ns(&outcome), requests * REQUEST_NS);
    }

    /// A guest with a vif and a disk created at 50 ms, and a `hog` pinned to dom0's pCPU 0
    /// whose workload is `{hog}`.
    fn handshake_scenario(hog: &str) -> String {
        format!(
            r#"
    [sim]
    seed = 7
    duration = "400ms"

    [host.h0]
    topology = {{ sockets = 1, cores_per_socket = 4 }}
    memory = "8GiB"

    [[domain]]
    name = "hog"
    xl = """
    name = "hog"
    type = "pvh"
    memory = 256
    vcpus = 1
    cpus = "0"
    """
    workload = {hog}

    [[domain]]
    name = "web"
    start = "50ms"
    xl = """
    name = "web"
    type = "pvh"
    memory = 256
    vcpus = 1
    cpus = "2"
    vif = ['mac=00:16:3e:00:00:01,bridge=xenbr0']
    disk = ['format=raw, vdev=xvda, access=rw, target=/dev/vg0/web']
    """
    workload = {{ kind = "idle" }}

    [costs]
    "io.xenstored_request_ns" = 30000
    "#
        )
    }

    #[test]
    fn dom0_sharing_its_pcpu_with_a_busy_guest_slows_the_handshake() {
        let quiet = run_text(&handshake_scenario(r#"{ kind = "idle" }"#));
        let busy = run_text(&handshake_scenario(r#"{ kind = "cpu_bound" }"#));
        // The last state write of the handshake: blkfront Connected.
        let quiet_ns = last_line_time_ns(&quiet, "device/vbd/51712/state = 4");
        let busy_ns = last_line_time_ns(&busy, "device/vbd/51712/state = 4");
        // The handshake's watch events each wait for xenstored's work, which waits for pCPU
        // 0; with the hog there, the handshake ends at least one request's work later.
        assert!(
            busy_ns >= quiet_ns + REQUEST_NS,
            "busy {busy_ns} ns, quiet {quiet_ns} ns"
        );
    }
}
