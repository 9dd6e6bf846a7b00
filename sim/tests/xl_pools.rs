//! `xensim xl FILE --at T -- ...` for the cpupool, vCPU and scheduler commands, on the
//! bundled `scenarios/cpupool-move.toml` (null pools), snapshotted under `golden/`.

#[macro_use]
mod support;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use xensim::app;
    use xensim::report::xl::XlOutput;

    fn xl_at(at_ns: u64, line: &str) -> XlOutput {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/cpupool-move.toml");
        let scenario = app::load(&path, None, false).expect("bundled scenario loads");
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        app::xl_at(&scenario, at_ns, None, &words).expect("query runs")
    }

    /// After the move and the pins (600 ms): vCPUs of both domains.
    const AFTER_PIN_NS: u64 = 650_000_000;

    #[test]
    fn vcpu_list_after_move_and_pin() {
        let out = xl_at(AFTER_PIN_NS, "vcpu-list");
        assert_eq!(out.rc, 0);
        golden!("xl__vcpu_list_after_pin", out.stdout);
    }

    #[test]
    fn cpupool_list_one_pool_and_cpu_list() {
        let out = xl_at(AFTER_PIN_NS, "cpupool-list batch");
        let cpus = xl_at(AFTER_PIN_NS, "cpupool-list -c");
        assert_eq!(out.rc, 0);
        golden!("xl__cpupool_list_batch", [out.stdout, cpus.stdout].concat());
    }

    #[test]
    fn cpupool_list_unknown_pool_fails() {
        let out = xl_at(AFTER_PIN_NS, "cpupool-list nope");
        assert_eq!(out.rc, 1);
        assert_eq!(out.stderr, "Pool 'nope' does not exist\n");
        assert_eq!(out.stdout, "");
    }

    #[test]
    fn vcpu_list_unknown_domain_prints_header_then_fails() {
        let out = xl_at(AFTER_PIN_NS, "vcpu-list nope");
        assert_eq!(out.rc, 1);
        assert!(out.stdout.starts_with("Name "));
        assert_eq!(out.stderr, "nope is an invalid domain identifier (rc=-6)\n");
    }

    #[test]
    fn sched_credit2_on_null_domain_reports_its_scheduler() {
        let out = xl_at(AFTER_PIN_NS, "sched-credit2 -d web");
        assert_eq!(out.rc, 1);
        assert_eq!(
            out.stdout,
            "Name                                ID Weight  Cap\n"
        );
        assert_eq!(
            out.stderr,
            "libxl_domain_sched_params_get returned null not credit2.\n"
        );
    }

    #[test]
    fn sched_credit2_listing_has_no_credit2_pool_to_show() {
        // Every pool is null: xl prints nothing and succeeds.
        let out = xl_at(AFTER_PIN_NS, "sched-credit2");
        assert_eq!((out.rc, out.stdout.as_str()), (0, ""));
    }
}
