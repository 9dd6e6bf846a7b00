//! Snapshots of xl's output formats rendered from booted hosts (`golden/xl__*.snap`).
//! Review a change here against `fixtures/reference/` and tools/xl/xl_info.c.

#[macro_use]
mod support;

#[cfg(test)]
mod tests {
    use crate::support::{advance, block, boot, create, guest, two_node_host, xl_host};
    use hypervisor_model::domain::ShutdownReason;
    use hypervisor_model::event::CoreInput;
    use hypervisor_model::hypervisor::Hypervisor;
    use hypervisor_model::ids::DomId;
    use hypervisor_model::sched::SchedKind;
    use hypervisor_model::testing::{small_host, FakePlatform};
    use hypervisor_model::toolstack::config::ShutdownAction;
    use xensim::report::xl::{find_domain, xl_dmesg, xl_info, xl_list, ListOptions, XlOutput};

    /// A 4-pCPU null-scheduler host with three guests: `running` (on a pCPU), `idle` (its
    /// only vCPU blocked) and `held` (created with `-p`), then 1.5 s of virtual time.
    fn host_with_guests() -> (Hypervisor, FakePlatform) {
        let (mut hv, mut p) = boot(small_host(4, SchedKind::Null));
        create(&mut hv, &mut p, 1, guest("running", 1, 512), 0x11, false);
        create(&mut hv, &mut p, 2, guest("idle", 1, 256), 0x22, false);
        block(&mut hv, &mut p, 2, 0);
        create(&mut hv, &mut p, 3, guest("held", 2, 1024), 0x33, true);
        advance(&mut p, 1_500);
        (hv, p)
    }

    fn list(hv: &Hypervisor, p: &FakePlatform, options: ListOptions, args: &[&str]) -> XlOutput {
        let args: Vec<String> = args.iter().map(|a| String::from(*a)).collect();
        xl_list(&xl_host(hv, p.now), options, &args)
    }

    #[test]
    fn list_dom0_only_shows_running_dom0() {
        let (hv, p) = boot(small_host(4, SchedKind::Null));
        let out = list(&hv, &p, ListOptions::default(), &[]);
        assert_eq!(out.rc, 0);
        golden!("xl__list_dom0_only", out.stdout);
    }

    #[test]
    fn list_guests_shows_running_blocked_and_paused_states() {
        let (hv, p) = host_with_guests();
        let out = list(&hv, &p, ListOptions::default(), &[]);
        assert_eq!(out.rc, 0);
        golden!("xl__list_guests", out.stdout);
    }

    #[test]
    fn list_verbose_adds_uuid_reason_and_label() {
        let (hv, p) = host_with_guests();
        let options = ListOptions {
            verbose: true,
            ..ListOptions::default()
        };
        golden!("xl__list_verbose", list(&hv, &p, options, &[]).stdout);
    }

    #[test]
    fn list_cpupool_adds_pool_column() {
        let (hv, p) = host_with_guests();
        let options = ListOptions {
            cpupool: true,
            ..ListOptions::default()
        };
        golden!("xl__list_cpupool", list(&hv, &p, options, &[]).stdout);
    }

    #[test]
    fn list_numa_adds_node_affinity_column() {
        let (hv, p) = host_with_guests();
        let options = ListOptions {
            numa: true,
            ..ListOptions::default()
        };
        golden!("xl__list_numa", list(&hv, &p, options, &[]).stdout);
    }

    #[test]
    fn list_long_prints_json_configs() {
        let (hv, p) = host_with_guests();
        let options = ListOptions {
            long: true,
            ..ListOptions::default()
        };
        golden!("xl__list_long", list(&hv, &p, options, &[]).stdout);
    }

    #[test]
    fn list_verbose_crashed_preserved_guest_shows_reason_code() {
        // on_crash="preserve": the shut-down domain stays, `---sc-` with reason code 3.
        let (mut hv, mut p) = boot(small_host(4, SchedKind::Null));
        let mut config = guest("crashy", 1, 256);
        config.on_crash = ShutdownAction::Preserve;
        create(&mut hv, &mut p, 1, config, 0x55, false);
        advance(&mut p, 250);
        let dom = DomId::new(1).expect("domid 1");
        let crash = CoreInput::GuestShutdown {
            dom,
            reason: ShutdownReason::Crash,
        };
        assert_eq!(hv.handle(&crash, &mut p), Ok(()));
        p.run_until_idle(&mut hv);
        let options = ListOptions {
            verbose: true,
            ..ListOptions::default()
        };
        golden!(
            "xl__list_verbose_crashed",
            list(&hv, &p, options, &[]).stdout
        );
    }

    #[test]
    fn list_one_domain_by_name_prints_one_row() {
        let (hv, p) = host_with_guests();
        let out = list(&hv, &p, ListOptions::default(), &["idle"]);
        golden!("xl__list_by_name", out.stdout);
    }

    #[test]
    fn list_unknown_name_fails_with_invalid_identifier() {
        let (hv, p) = host_with_guests();
        let out = list(&hv, &p, ListOptions::default(), &["nosuch"]);
        assert_eq!(out.rc, 1);
        assert_eq!(out.stdout, "");
        golden!("xl__list_unknown_name_stderr", out.stderr);
    }

    #[test]
    fn list_unknown_id_fails_with_does_not_exist() {
        let (hv, p) = host_with_guests();
        let out = list(&hv, &p, ListOptions::default(), &["42"]);
        assert_eq!(out.rc, 1);
        assert_eq!(out.stdout, "");
        golden!("xl__list_unknown_id_stderr", out.stderr);
    }

    #[test]
    fn list_two_domains_prints_usage_and_fails() {
        let (hv, p) = host_with_guests();
        let out = list(&hv, &p, ListOptions::default(), &["0", "1"]);
        assert_eq!(out.rc, 1);
        golden!("xl__list_usage", out.stdout);
    }

    #[test]
    fn find_domain_empty_argument_is_dom0() {
        // Every byte of "" is a digit, and strtoul("") is 0.
        let (hv, _p) = host_with_guests();
        assert_eq!(find_domain(&hv, ""), Ok(0));
    }

    #[test]
    fn info_dom0_only_prints_every_key() {
        let (hv, p) = boot(small_host(4, SchedKind::Null));
        let out = xl_info(&xl_host(&hv, p.now), false, None);
        golden!("xl__info", out.stdout);
    }

    #[test]
    fn info_numa_on_two_nodes_prints_topology_tables() {
        let (mut hv, mut p) = boot(two_node_host());
        create(&mut hv, &mut p, 1, guest("big", 2, 5120), 0x44, false);
        let out = xl_info(&xl_host(&hv, p.now), true, None);
        golden!("xl__info_numa_two_nodes", out.stdout);
    }

    #[test]
    fn list_numa_on_two_nodes_shows_placement() {
        // dom0 (pinned to pCPU 0, memory from node 1) counts one vCPU on node 0: `a` goes
        // to node 1 (fewer vCPUs); then both nodes have one, and `b` takes node 0, which
        // has more free memory.
        let (mut hv, mut p) = boot(two_node_host());
        create(&mut hv, &mut p, 1, guest("a", 1, 512), 0x61, false);
        create(&mut hv, &mut p, 2, guest("b", 4, 1024), 0x62, false);
        let options = ListOptions {
            numa: true,
            ..ListOptions::default()
        };
        let out = list(&hv, &p, options, &[]);
        assert_eq!(out.rc, 0);
        golden!("xl__list_numa_two_nodes", out.stdout);
    }

    #[test]
    fn info_key_prefix_free_prints_two_values() {
        // "free" is a prefix of free_memory and free_cpus.
        let (hv, p) = boot(small_host(4, SchedKind::Null));
        let out = xl_info(&xl_host(&hv, p.now), false, Some("free"));
        golden!("xl__info_key_free", out.stdout);
    }

    #[test]
    fn info_key_with_numa_flag_is_ignored() {
        // main_info only sets info_name when -n is absent.
        let (hv, p) = boot(small_host(4, SchedKind::Null));
        let with_key = xl_info(&xl_host(&hv, p.now), true, Some("free"));
        let without_key = xl_info(&xl_host(&hv, p.now), true, None);
        assert_eq!(with_key, without_key);
    }

    #[test]
    fn dmesg_prints_console_ring_verbatim() {
        let (hv, p) = boot(small_host(4, SchedKind::Null));
        let out = xl_dmesg(&xl_host(&hv, p.now), false);
        assert_eq!(out.stdout, hv.console().read());
        golden!("xl__dmesg", out.stdout);
    }
}
