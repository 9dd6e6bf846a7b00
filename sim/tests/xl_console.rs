//! `xensim xl FILE --at T -- console D`: what each guest of a bundled scenario wrote to
//! its PV console up to T (1 s here; snapshot `golden/quickstart__xl-console.snap`), and
//! xl's errors for domains that do not exist.

mod support;

#[cfg(test)]
mod tests {
    use super::support::repo_root;
    use xensim::app;

    fn console(at_ns: u64, args: &[&str]) -> String {
        let scenario = app::load(&repo_root().join("scenarios/quickstart.toml"), None, false)
            .expect("quickstart loads");
        let mut words = vec!["console".to_string()];
        words.extend(args.iter().map(|a| a.to_string()));
        let out = app::xl_at(&scenario, at_ns, None, &words).expect("xl console runs");
        let mut text = format!("## xl console {} (rc={})\n", args.join(" "), out.rc);
        text.push_str(&out.stdout);
        for line in out.stderr.lines() {
            text.push_str(&format!("stderr: {line}\n"));
        }
        text
    }

    #[test]
    fn quickstart_consoles_and_errors() {
        let at_ns = 1_000_000_000;
        let mut text = String::new();
        for args in [
            &["1"][..],
            &["vm1"],
            &["vm2"],
            &["-t", "pv", "2"],
            &["9"],
            &["nosuch"],
            &["0"],
            &["-t", "serial", "1"],
        ] {
            text.push_str(&console(at_ns, args));
        }
        insta::with_settings!({
            snapshot_path => "../../golden",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!("quickstart__xl-console", text);
        });
    }

    #[test]
    fn before_the_guest_runs_its_console_is_empty_or_absent() {
        // At time 0 no guest exists yet: xl reports the domid as unknown.
        let text = console(0, &["1"]);
        assert!(
            text.contains("unable to get domain type for domid=1"),
            "{text}"
        );
    }
}
