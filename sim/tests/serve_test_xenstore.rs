//! Xen's own XenStore conformance program, `test-xenstore` from Debian's `xen-utils-4.17`
//! (source: tools/tests/xenstore/test-xenstore.c at RELEASE-4.17.5), against `xensim
//! serve`: every test once, then its random mode (30 s unless
//! `XENSIM_TEST_XENSTORE_RANDOM_S` says otherwise). `.ci/run` extracts the program and its
//! libraries (`libxenstore4`, `libxentoolcore1`) into `target/xen-clients/`. Skipped with
//! a message when it is missing; a failure in CI (`CI=true`).

mod serve_support;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use crate::serve_support::{
        assert_stopped_and_replays, client, client_or_skip, text, xen_clients_dir, ServeProcess,
    };

    /// The 12 tests of 4.17's `tests[]`, in order, as `-l` names them.
    const TEST_NAMES: [&str; 12] = [
        "read 1",
        "read 2000",
        "write 1",
        "write 2000",
        "dir",
        "rm node",
        "rm dir",
        "ta empty",
        "ta empty x",
        "ta rmw",
        "ta rmw x",
        "ta err",
    ];
    /// The random mode's run time the task asks for, seconds.
    const RANDOM_S_DEFAULT: u32 = 30;

    fn test_xenstore(binary: &Path, args: &[&str], socket: &Path) -> Output {
        let libs = xen_clients_dir().join("usr/lib/x86_64-linux-gnu");
        Command::new("timeout")
            .arg("300")
            .arg(binary)
            .args(args)
            .env("XENSTORED_PATH", socket)
            .env("LD_LIBRARY_PATH", libs)
            .output()
            .expect("test-xenstore runs")
    }

    fn binary() -> Option<PathBuf> {
        let path = xen_clients_dir().join("usr/lib/xen-4.17/bin/test-xenstore");
        client_or_skip(&path, "Xen's test-xenstore (xen-utils-4.17)")
    }

    /// Each test printed `<name padded to 10>: <n> ns` (call_test's success line).
    fn assert_every_test_passed(stdout: &str) {
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), TEST_NAMES.len(), "{stdout}");
        for (line, name) in lines.iter().zip(TEST_NAMES) {
            let prefix = format!("{name:<10}: ");
            assert!(
                line.starts_with(&prefix),
                "{line:?} is not a pass of {name}"
            );
            assert!(line.ends_with(" ns"), "{line:?} is not a pass of {name}");
        }
    }

    #[test]
    fn test_xenstore_passes_every_test_and_its_random_mode() {
        let Some(binary) = binary() else {
            return;
        };
        let server = ServeProcess::start("txs", "scenarios/quickstart.toml", &[]);
        let all = test_xenstore(&binary, &[], &server.socket);
        assert_eq!(text(&all.stderr), "");
        assert_every_test_passed(&text(&all.stdout));
        assert_eq!(all.status.code(), Some(0));
        let random_s = std::env::var("XENSIM_TEST_XENSTORE_RANDOM_S")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(RANDOM_S_DEFAULT)
            .to_string();
        let random = test_xenstore(&binary, &["-r", &random_s], &server.socket);
        // Random mode prints nothing on success (no timings), and "failed" on a failure.
        assert_eq!(text(&random.stdout), "", "{}", text(&random.stderr));
        assert_eq!(random.status.code(), Some(0));
        // Both runs cleaned up after themselves: the test root is gone again.
        let exists = Path::new("/usr/bin/xenstore-exists");
        if exists.exists() {
            let left = client(exists, &["/local/domain/0/xenstore-test"], &server.socket);
            assert_eq!(left.status.code(), Some(1));
        }
        let trace = server.trace.clone();
        let output = server.stop();
        assert_stopped_and_replays(&output, &trace);
    }
}
