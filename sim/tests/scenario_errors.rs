//! Snapshots of the rendered load errors for bad scenario files (`specs/scenario.md` §9),
//! plus the quickstart scenario of §10.1 loading into the expected model.

#[cfg(test)]
mod errors {
    use std::path::Path;

    use xensim::scenario::{load_str, LoadOptions};

    /// Loads a fixture that must fail and returns the rendered errors.
    fn rendered_errors(file_name: &str, text: &str) -> String {
        match load_str(file_name, text, Path::new("."), &LoadOptions::default()) {
            Ok(_) => panic!("{file_name} must not load"),
            Err(error) => error.render(),
        }
    }

    macro_rules! snapshot_case {
    ($case:ident) => {
        #[test]
        fn $case() {
            let file = concat!(stringify!($case), ".toml");
            let rendered =
                rendered_errors(
                    file,
                    include_str!(concat!("fixtures/bad/", stringify!($case), ".toml")),
                );
            insta::with_settings!({
                snapshot_path => "../../golden",
                prepend_module_to_snapshot => false,
            }, {
                insta::assert_snapshot!(concat!("scenario_errors__", stringify!($case)), rendered);
            });
        }
    };
}
    snapshot_case!(at_after_end);
    snapshot_case!(bad_distribution);
    snapshot_case!(bad_duration);
    snapshot_case!(bad_expect_path);
    snapshot_case!(bad_faults);
    snapshot_case!(bad_numa);
    snapshot_case!(bad_stream);
    snapshot_case!(bad_xl_command);
    snapshot_case!(cpus_outside_host);
    snapshot_case!(duplicate_domain);
    snapshot_case!(float_integer);
    snapshot_case!(io_bad_vbd);
    snapshot_case!(io_dom0);
    snapshot_case!(memory_models_differ);
    snapshot_case!(os_bad_rates);
    snapshot_case!(pool_cpu0);
    snapshot_case!(tmem);
    snapshot_case!(unknown_host);
    snapshot_case!(unknown_key);
    snapshot_case!(unsupported_outputs);
    snapshot_case!(unmodelled_scheduler);
    snapshot_case!(vcpus_above_max);
    snapshot_case!(xlcfg_python);
}

#[cfg(test)]
mod quickstart {
    use std::path::Path;

    use hypervisor_model::toolstack::config::GuestType;
    use xensim::scenario::model::{AtAction, Dist, Dom0Vcpus, SchedName, WorkloadSpec};
    use xensim::scenario::{load_str, LoadOptions};
    use xensim::xl::command::XlCommand;

    #[test]
    fn quickstart_loads_expected_model() {
        let text = include_str!("../../scenarios/quickstart.toml");
        let scenario = load_str(
            "quickstart.toml",
            text,
            Path::new("."),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}", e.render()));
        assert_eq!(scenario.sim.seed, 42);
        assert_eq!(scenario.sim.duration_ns, 2_000_000_000);
        let host = &scenario.hosts[0];
        assert_eq!(host.name, "h0");
        assert_eq!(host.scheduler, SchedName::Null);
        assert_eq!(host.topology.numa_nodes, 1);
        assert_eq!(host.node_memory_bytes, [8 << 30]);
        assert_eq!(host.dom0.vcpus, Dom0Vcpus::Count(1));
        assert_eq!(host.dom0.memory_bytes, 1 << 30);
        let vm1 = &scenario.domains[0];
        assert_eq!(vm1.config.guest_type, GuestType::Pvh);
        assert_eq!(vm1.config.memory_kib, 1024 * 1024);
        assert_eq!(vm1.vcpu_workloads.len(), 2);
        let vm2 = &scenario.domains[1];
        assert_eq!(
            vm2.vcpu_workloads[0],
            WorkloadSpec::Bursty {
                service: Dist::Exp { mean: 200_000 },
                think: Dist::Uniform {
                    lo: 1_000_000,
                    hi: 3_000_000
                }
            }
        );
        let times: Vec<u64> = scenario.timeline.iter().map(|a| a.time_ns).collect();
        assert_eq!(times, [500_000_000, 1_000_000_000, 1_500_000_000]);
        let first = &scenario.timeline[0].action;
        assert!(matches!(first, AtAction::Xl(XlCommand::Pause(name)) if name == "vm1"));
        assert_eq!(scenario.expects.len(), 2);
        assert!(scenario.warnings.is_empty());
    }

    #[test]
    fn quickstart_seed_override_wins() {
        let text = include_str!("../../scenarios/quickstart.toml");
        let opts = LoadOptions {
            strict: true,
            seed_override: Some(7),
        };
        let scenario = load_str("quickstart.toml", text, Path::new("."), &opts)
            .unwrap_or_else(|e| panic!("{}", e.render()));
        assert_eq!(scenario.sim.seed, 7);
    }
}

#[cfg(test)]
mod config_file {
    use std::path::Path;

    use xensim::scenario::{load_str, LoadOptions};

    #[test]
    fn config_file_error_is_located_in_cfg_file() {
        let text = "[sim]\nseed = 1\nduration = \"2s\"\n[host.h0]\n\
                    topology = { sockets = 1, cores_per_socket = 4 }\nmemory = \"8GiB\"\n\
                    scheduler = \"null\"\n[[domain]]\nname = \"web\"\n\
                    config = \"guests/bad-web.cfg\"\n";
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let error = load_str("web.toml", text, &base, &LoadOptions::default())
            .expect_err("vcpus > maxvcpus");
        assert!(
            error
                .render()
                .starts_with("error: guests/bad-web.cfg:3:9: vcpus: vcpus (3) is larger"),
            "{}",
            error.render()
        );
    }
}
