//! `xensim xl FILE --at T -- console D`: what each guest of a bundled scenario wrote to
//! its PV console up to T (1 s here; snapshot `golden/quickstart__xl-console.snap`), and
//! xl's errors for domains that do not exist; the `io` workload's kernel messages
//! (`vbd-io`, `io-modes`); a periodic guest's rate-limited deadline-miss lines.

mod support;

#[cfg(test)]
mod tests {
    use super::support::repo_root;
    use xensim::app;

    fn console(at_ns: u64, args: &[&str]) -> String {
        console_of("quickstart", at_ns, args)
    }

    fn console_of(name: &str, at_ns: u64, args: &[&str]) -> String {
        let path = repo_root().join(format!("scenarios/{name}.toml"));
        let scenario = app::load(&path, None, false).expect("scenario loads");
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

    #[test]
    fn io_guest_prints_its_driver_line_and_rate_limited_io_errors() {
        // vbd-io's disk-error fault fails 3 of bulk's requests at 300 ms.
        let text = console_of("vbd-io", 400_000_000, &["bulk"]);
        let blkfront = "] blkfront: xvda: flush diskcache: enabled; persistent grants: enabled; \
                        indirect descriptors: enabled; bounce buffer: disabled;";
        assert_eq!(text.matches(blkfront).count(), 1, "{text}");
        assert_eq!(
            text.matches("] I/O error, dev xvda, sector ").count(),
            3,
            "{text}"
        );
    }

    #[test]
    fn emulated_disk_guest_prints_the_ata_line_and_its_stub_domain_has_a_console() {
        let emu = console_of("io-modes", 300_000_000, &["-t", "pv", "emu"]);
        assert!(
            emu.contains("] ata1.00: ATA-7: QEMU HARDDISK, 2.5+, max UDMA/100\n"),
            "{emu}"
        );
        let stub = console_of("io-modes", 300_000_000, &["stub-dm"]);
        assert!(stub.contains("(rc=0)"), "{stub}");
        assert!(stub.contains("] Hypervisor detected: Xen PV\n"), "{stub}");
    }

    #[test]
    fn periodic_guest_prints_rate_limited_deadline_misses() {
        // periodic-miss: every job of `late` misses (about 50 a second); in 6 s the
        // application's /dev/kmsg lets 10 lines through in the first 5 s window and 10
        // in the next.
        let path = repo_root().join("sim/tests/fixtures/console/periodic-miss.toml");
        let scenario = app::load(&path, None, false).expect("fixture loads");
        let words = ["console".to_string(), "late".to_string()];
        let out = app::xl_at(&scenario, 6_000_000_000, None, &words).expect("xl console runs");
        let misses: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.contains("] job ") && l.contains(" missed its deadline by "))
            .collect();
        assert_eq!(out.rc, 0);
        assert_eq!(misses.len(), 20, "{}", out.stdout);
        // Job 0 completes at about 20 ms, 10 ms after its deadline.
        assert!(
            misses[0].ends_with("] job 0 missed its deadline by 10000 us"),
            "{}",
            misses[0]
        );
        // The second window opens with the first miss 5 s after the first line's (about
        // 240 misses later): its first line is stamped in the 6th second of uptime.
        let seconds = |line: &str| -> Option<u64> {
            let stamp = line.trim_start_matches('[').trim_start();
            stamp.split('.').next().and_then(|s| s.parse().ok())
        };
        assert_eq!(seconds(misses[9]), Some(0), "{misses:?}");
        assert_eq!(seconds(misses[10]), Some(5), "{misses:?}");
    }
}
