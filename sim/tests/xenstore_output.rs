//! The xenstore-* clients on simulated hosts: dom0's tree against the real 4.17 reference,
//! the standard tree of the quickstart guests after their creates (`golden/xs__*.snap`), and
//! `[[at]] xenstore = "..."` timeline entries.

#[macro_use]
mod support;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use xensim::app::{self, RunArgs};
    use xensim::scenario::{load_str, LoadOptions, Scenario};

    fn scenarios_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
    }

    fn quickstart() -> Scenario {
        let text = include_str!("../../scenarios/quickstart.toml");
        load_str(
            "quickstart.toml",
            text,
            &scenarios_dir(),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}", e.render()))
    }

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    /// A 4-pCPU host with 1 GiB dom0 and no guests, as in the reference.
    fn dom0_only() -> Scenario {
        let text = "[sim]\nseed = 1\nduration = \"1s\"\n[host.h0]\n\
                    topology = { sockets = 1, cores_per_socket = 4 }\nmemory = \"3GiB\"\n\
                    scheduler = \"credit2\"\n";
        load_str("dom0.toml", text, Path::new("."), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}", e.render()))
    }

    #[test]
    fn dom0_tree_matches_the_reference_listing() {
        // Lines of `xenstore-ls -f` in reference/real-xen-4.17-dom0-only-cxenstored.txt.
        let want = "/tool = \"\"\n/tool/xenstored = \"\"\n/local = \"\"\n/local/domain = \"\"\n\
/local/domain/0 = \"\"\n/local/domain/0/control = \"\"\n\
/local/domain/0/control/feature-poweroff = \"1\"\n/local/domain/0/control/feature-reboot = \"1\"\n\
/local/domain/0/control/feature-suspend = \"1\"\n/local/domain/0/domid = \"0\"\n\
/local/domain/0/name = \"Domain-0\"\n/local/domain/0/memory = \"\"\n\
/local/domain/0/memory/target = \"1048576\"\n/local/domain/0/memory/static-max = \"1048576\"\n\
/local/pool = \"\"\n/local/pool/0 = \"\"\n/local/pool/0/name = \"Pool-0\"\n";
        let out = app::xl_at(&dom0_only(), 0, None, &words("xenstore-ls -f")).expect("query");
        assert_eq!(out.stdout, want);
        assert_eq!(out.rc, 0);
    }

    #[test]
    fn dom0_ls_p_pads_like_the_reference() {
        let out = app::xl_at(
            &dom0_only(),
            0,
            None,
            &words("xenstore-ls -p /local/domain/0"),
        )
        .expect("query");
        let first = out.stdout.lines().next().map(String::from);
        let want = "control = \"\" . . . . . . . . . . . . . . . . . . . . . . . .  (n0)";
        assert_eq!(first.as_deref(), Some(want));
    }

    #[test]
    fn quickstart_tree_after_creates() {
        // Both guests are built and their devices written well before 1 s.
        let out = app::xl_at(&quickstart(), 1_000_000_000, None, &words("xenstore-ls -f"))
            .expect("query");
        assert_eq!(out.rc, 0);
        golden!("xs__quickstart_ls_f", out.stdout);
    }

    #[test]
    fn quickstart_guest_home_with_permissions() {
        let line = "xenstore-ls -p /local/domain/1";
        let out = app::xl_at(&quickstart(), 1_000_000_000, None, &words(line)).expect("query");
        golden!("xs__quickstart_ls_p_dom1", out.stdout);
    }

    #[test]
    fn destroyed_guest_leaves_no_node() {
        // vm2 (domid 2) is destroyed at 1.5 s.
        let out = app::xl_at(&quickstart(), 1_900_000_000, None, &words("xenstore-ls -f"))
            .expect("query");
        assert!(!out.stdout.contains("/local/domain/2"), "{}", out.stdout);
        assert!(!out.stdout.contains("/libxl/2"), "{}", out.stdout);
        assert!(!out.stdout.contains("console/2"), "{}", out.stdout);
    }

    #[test]
    fn xl_at_refuses_a_write() {
        let result = app::xl_at(&quickstart(), 0, None, &words("xenstore-write /a 1"));
        let error = result.map(|out| out.stdout);
        assert!(matches!(error, Err(app::AppError::Usage(_))), "{error:?}");
    }

    #[test]
    fn timeline_write_then_read_prints_the_value() {
        let text = "[sim]\nseed = 1\nduration = \"1s\"\n[host.h0]\n\
                    topology = { sockets = 1, cores_per_socket = 2 }\nmemory = \"4GiB\"\n\
                    scheduler = \"credit2\"\n\
                    [[at]]\ntime = \"10ms\"\nxenstore = \"xenstore-write /t/v 'a\\\\tb'\"\n\
                    [[at]]\ntime = \"20ms\"\nxenstore = \"xenstore-read /t/v\"\n\
                    [[at]]\ntime = \"30ms\"\nxenstore = \"xenstore-read /nonexistent\"\n";
        let scenario = load_str("xs.toml", text, Path::new("."), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}", e.render()));
        let report = app::run_scenario(scenario, &RunArgs::default()).expect("run");
        let c = &report.outcome.commands;
        assert_eq!((c[0].rc, c[0].stdout.as_str()), (Some(0), ""));
        assert_eq!((c[1].rc, c[1].stdout.as_str()), (Some(0), "a\\tb\n"));
        let missing = "xenstore-read: couldn't read path /nonexistent\n";
        assert_eq!((c[2].rc, c[2].stderr.as_str()), (Some(1), missing));
    }

    #[test]
    fn timeline_bad_xenstore_command_is_located() {
        let text = "[sim]\nseed = 1\nduration = \"1s\"\n[host.h0]\n\
                    topology = { sockets = 1, cores_per_socket = 2 }\nmemory = \"4GiB\"\n\
                    scheduler = \"credit2\"\n\
                    [[at]]\ntime = \"10ms\"\nxenstore = \"xenstore-rm -f /a\"\n";
        let error = load_str("xs.toml", text, Path::new("."), &LoadOptions::default())
            .expect_err("-f is not an rm option");
        let rendered = error.render();
        assert!(rendered.contains("xs.toml:10:"), "{rendered}");
        assert!(
            rendered.contains("option -f is not valid here"),
            "{rendered}"
        );
    }
}
