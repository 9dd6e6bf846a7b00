//! Debian's pyxs (`python3-pyxs`, run by Debian's `/usr/bin/python3`) against `xensim
//! serve`: read/write/mkdir/list/walk/rm, permissions, a transaction that loses a
//! conflict with another connection and succeeds on retry, and a watch that fires. The
//! script is `fixtures/serve/pyxs_session.py`. Skipped with a message when pyxs is not
//! installed; a failure in CI (`CI=true`).

mod serve_support;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use crate::serve_support::{
        assert_stopped_and_replays, client_or_skip, repo_root, text, ServeProcess,
    };

    /// What the script prints against cxenstored semantics (spec §1-§2): children in
    /// creation order, dom0-owned nodes `n0`, one EAGAIN then a commit.
    const EXPECTED: &str = "\
read b'1' b'two'
list [b'a', b'b', b'd']
walk [(b'/py', b'', [b'a', b'b', b'd']), (b'/py/a', b'1', []), (b'/py/b', b'two', []), \
(b'/py/d', b'', [b'e']), (b'/py/d/e', b'', [])]
exists False True
read-missing ENOENT
perms [b'n0']
transaction attempts 2 counter b'11'
watch initial Event(path=b'/py/w', token=b'tok')
watch fired Event(path=b'/py/w/x', token=b'tok')
after rm False
";

    #[test]
    fn pyxs_reads_writes_retries_a_conflict_and_sees_a_watch() {
        let pyxs = Path::new("/usr/lib/python3/dist-packages/pyxs/client.py");
        let Some(_) = client_or_skip(pyxs, "python3-pyxs") else {
            return;
        };
        let server = ServeProcess::start("pyxs", "scenarios/quickstart.toml", &[]);
        let script = repo_root().join("sim/tests/fixtures/serve/pyxs_session.py");
        // `timeout`: a watch that never fires must fail the test, not hang it.
        let output = Command::new("timeout")
            .args(["60", "/usr/bin/python3"])
            .arg(&script)
            .arg(&server.socket)
            .output()
            .expect("python3 runs");
        assert_eq!(text(&output.stderr), "");
        assert_eq!(text(&output.stdout), EXPECTED);
        assert!(output.status.success());
        let trace = server.trace.clone();
        let output = server.stop();
        assert_stopped_and_replays(&output, &trace);
    }
}
