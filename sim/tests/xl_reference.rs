//! xensim's xl output against real Xen 4.17.5 output (`fixtures/reference/`), byte for
//! byte on a host configured like the reference machine (credit2, as the reference ran).
//! Only values that legitimately differ are masked: CPU times and `hw_caps` (xensim's
//! simulated CPU).

mod support;

#[cfg(test)]
mod tests {
    use crate::support::{advance, boot, reference_host, xl_host};
    use hypervisor_model::domain::Domain;
    use hypervisor_model::hypervisor::Hypervisor;
    use hypervisor_model::testing::FakePlatform;
    use xensim::report::xl::pools::{
        credit2_pool_line, credit2_row, xl_cpupool_list, xl_vcpu_list, CREDIT2_HEADER,
    };
    use xensim::report::xl::{
        domain_config, list_long_json, xl_info, xl_list, ListOptions, XlOutput,
    };

    const REF_INFO: &str = include_str!("fixtures/reference/xl_info.stdout");
    const REF_INFO_N: &str = include_str!("fixtures/reference/xl_info_n.stdout");
    const REF_LIST: &str = include_str!("fixtures/reference/xl_list.stdout");
    const REF_LIST_L: &str = include_str!("fixtures/reference/xl_list_l.stdout");
    const REF_LIST_V: &str = include_str!("fixtures/reference/xl_list_v.stdout");
    const REF_LIST_N: &str = include_str!("fixtures/reference/xl_list_n.stdout");
    const REF_LIST_C: &str = include_str!("fixtures/reference/xl_list_c.stdout");
    const REF_NOSUCH_STDERR: &str = include_str!("fixtures/reference/xl_list_nosuch.stderr");
    const REF_VCPU_LIST: &str = include_str!("fixtures/reference/xl_vcpu_list.stdout");
    const REF_CPUPOOL_LIST: &str = include_str!("fixtures/reference/xl_cpupool_list.stdout");
    const REF_CPUPOOL_LIST_C: &str = include_str!("fixtures/reference/xl_cpupool_list_c.stdout");
    const REF_SCHED_CREDIT2: &str = include_str!("fixtures/reference/xl_sched_credit2.stdout");

    /// Columns of `%8.1f` Time(s) in an `xl list` row: 40 name + 1 + 5 + 1 + 5 + 1 + 5 + 5
    /// spaces + 6 state letters + 2 spaces = 71, then 8 wide.
    const TIME_COLUMNS: std::ops::Range<usize> = 71..79;

    /// `xl info` keys whose values xensim does not take from the reference configuration.
    const INFO_MASKED_KEYS: [&str; 1] = ["hw_caps"];

    /// The reference host after 47 s of virtual time.
    fn reference() -> (Hypervisor, FakePlatform) {
        let (hv, mut p) = boot(reference_host());
        advance(&mut p, 47_000);
        (hv, p)
    }

    fn list(hv: &Hypervisor, p: &FakePlatform, options: ListOptions, args: &[&str]) -> XlOutput {
        let args: Vec<String> = args.iter().map(|a| String::from(*a)).collect();
        xl_list(&xl_host(hv, p.now), options, &args)
    }

    /// Replaces the Time(s) field of every row (not the header) with `#`.
    fn mask_times(text: &str) -> String {
        let mut out = String::new();
        for (index, line) in text.lines().enumerate() {
            if index > 0 && line.len() >= TIME_COLUMNS.end {
                out.push_str(&line[..TIME_COLUMNS.start]);
                out.push_str(&"#".repeat(TIME_COLUMNS.len()));
                out.push_str(&line[TIME_COLUMNS.end..]);
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }

    /// Replaces the value of each `xl info` line whose key is in `INFO_MASKED_KEYS`.
    fn mask_info(text: &str) -> String {
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            let key = line.split(':').next().unwrap_or("").trim_end();
            if INFO_MASKED_KEYS.contains(&key) {
                out.push_str(&format!("{key:<23}: <masked>\n"));
            } else {
                out.push_str(line);
            }
        }
        out
    }

    #[test]
    fn list_matches_reference_except_time() {
        let (hv, p) = reference();
        let out = list(&hv, &p, ListOptions::default(), &[]);
        assert_eq!(mask_times(&out.stdout), mask_times(REF_LIST));
    }

    #[test]
    fn list_time_column_matches_reference_at_same_cpu_time() {
        // The reference's dom0 had run 47.7 s; after 47.7 s of virtual time, so has ours.
        let (hv, mut p) = boot(reference_host());
        advance(&mut p, 47_700);
        assert_eq!(list(&hv, &p, ListOptions::default(), &[]).stdout, REF_LIST);
    }

    #[test]
    fn list_verbose_matches_reference_except_time() {
        let (hv, p) = reference();
        let options = ListOptions {
            verbose: true,
            ..ListOptions::default()
        };
        let out = list(&hv, &p, options, &[]);
        assert_eq!(mask_times(&out.stdout), mask_times(REF_LIST_V));
    }

    #[test]
    fn list_cpupool_matches_reference_except_time() {
        let (hv, p) = reference();
        let options = ListOptions {
            cpupool: true,
            ..ListOptions::default()
        };
        let out = list(&hv, &p, options, &[]);
        assert_eq!(mask_times(&out.stdout), mask_times(REF_LIST_C));
    }

    #[test]
    fn list_numa_matches_reference_except_time() {
        let (hv, p) = reference();
        let options = ListOptions {
            numa: true,
            ..ListOptions::default()
        };
        let out = list(&hv, &p, options, &[]);
        assert_eq!(mask_times(&out.stdout), mask_times(REF_LIST_N));
    }

    #[test]
    fn list_unknown_name_matches_reference_stderr_and_rc() {
        let (hv, p) = reference();
        let out = list(&hv, &p, ListOptions::default(), &["nosuch"]);
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str(), out.rc),
            ("", REF_NOSUCH_STDERR, 1)
        );
    }

    #[test]
    fn list_long_dom0_matches_reference() {
        let (hv, _p) = reference();
        let dom0: &Domain = hv.domains().next().expect("dom0 exists");
        let config = domain_config(&hv, dom0);
        assert_eq!(list_long_json(&[config]), REF_LIST_L);
    }

    #[test]
    fn vcpu_list_matches_reference_except_time() {
        // Time(s) is the `%9.1f` field: columns 56..65 of a row.
        let (hv, p) = reference();
        let out = xl_vcpu_list(&xl_host(&hv, p.now), &[]);
        let mask = |text: &str| -> String {
            text.lines()
                .map(|l| match l.get(56..65) {
                    Some(_) if !l.starts_with("Name") => format!("{}#{}\n", &l[..56], &l[65..]),
                    _ => format!("{l}\n"),
                })
                .collect()
        };
        assert_eq!(mask(&out.stdout), mask(REF_VCPU_LIST));
    }

    #[test]
    fn cpupool_list_matches_reference() {
        let (hv, _p) = reference();
        assert_eq!(xl_cpupool_list(&hv, false, None).stdout, REF_CPUPOOL_LIST);
        assert_eq!(xl_cpupool_list(&hv, true, None).stdout, REF_CPUPOOL_LIST_C);
    }

    #[test]
    fn sched_credit2_matches_reference() {
        let (hv, _p) = reference();
        let pool0 = hv.pools().next().expect("Pool-0");
        let dom0: &Domain = hv.domains().next().expect("dom0 exists");
        let out = format!(
            "{}{}{}",
            credit2_pool_line(&hv, pool0),
            CREDIT2_HEADER,
            credit2_row(&hv, dom0).expect("dom0 is in a credit2 pool")
        );
        assert_eq!(out, REF_SCHED_CREDIT2);
    }

    #[test]
    fn info_matches_reference_except_cpu() {
        let (hv, p) = reference();
        let out = xl_info(&xl_host(&hv, p.now), false, None);
        assert_eq!(mask_info(&out.stdout), mask_info(REF_INFO));
    }

    #[test]
    fn info_numa_matches_reference_except_cpu() {
        let (hv, p) = reference();
        let out = xl_info(&xl_host(&hv, p.now), true, None);
        assert_eq!(mask_info(&out.stdout), mask_info(REF_INFO_N));
    }
}
