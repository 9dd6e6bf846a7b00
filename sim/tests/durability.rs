//! Durability of acknowledged writes: a driver domain's crash loses none (the bundled
//! `driver-domain.toml` expects that), a host crash loses every write only the disk's
//! volatile cache held but none a completed flush covered, and a run without a crash
//! loses none.

mod support;

#[cfg(test)]
mod tests {
    use super::support::{scratch_dir, stderr, xensim};

    /// Runs `fixture` and returns web's xvda metrics (`domains[].io[0]`).
    fn web_xvda(fixture: &str, name: &str) -> serde_json::Value {
        let dir = scratch_dir("durability", name);
        let metrics = dir.join("metrics.json");
        let path = format!("sim/tests/fixtures/durability/{fixture}");
        let metrics_arg = metrics.to_str().expect("utf-8 path");
        let out = xensim(&["run", &path, "--check", "--metrics", metrics_arg]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = std::fs::read_to_string(&metrics).expect("metrics written");
        let json: serde_json::Value = serde_json::from_str(&text).expect("metrics JSON");
        let domains = json["domains"].as_array().expect("domains");
        let web = domains.iter().find(|d| d["name"] == "web").expect("web");
        web["io"][0].clone()
    }

    #[test]
    fn host_crash_loses_every_acknowledged_write_the_cache_held() {
        let io = web_xvda("host-crash.toml", "crash");
        let completed = io["io_completed_count"].as_u64().expect("count");
        // Every completed I/O is an acknowledged write, none was flushed.
        assert!(completed > 100, "{io}");
        assert_eq!(io["io_error_count"], 0);
        assert_eq!(io["lost_acked_write_count"].as_u64(), Some(completed));
    }

    #[test]
    fn host_crash_keeps_every_write_a_completed_flush_covered() {
        let io = web_xvda("host-crash-sync.toml", "sync");
        let completed = io["io_completed_count"].as_u64().expect("count");
        let lost = io["lost_acked_write_count"].as_u64().expect("lost");
        assert!(completed > 100, "{io}");
        // At most the last batch (4 writes queued behind its flush) is lost.
        assert!(lost <= 4, "{io}");
        assert_eq!(io["lost_flushed_write_count"], 0);
    }

    #[test]
    fn run_without_a_crash_loses_no_acknowledged_write() {
        let io = web_xvda("no-crash.toml", "none");
        assert!(
            io["io_completed_count"].as_u64().expect("count") > 100,
            "{io}"
        );
        assert_eq!(io["lost_acked_write_count"], 0);
        assert_eq!(io["reconnect_count"], 0);
    }
}
