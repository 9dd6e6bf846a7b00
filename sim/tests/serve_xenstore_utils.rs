//! Debian's `xenstore-utils` (`xenstore-ls/-read/-write/-rm/-list/-exists/-chmod`) against
//! `xensim serve`, with `XENSTORED_PATH` pointing at its socket. The expected text is what
//! the same commands printed against Xen 4.17's C xenstored
//! (`shared/reference/real-xen-4.17-dom0-only-cxenstored.txt`, "PHASE 1b: xenstore client
//! formats"), byte for byte. Skipped with a message when the clients are not installed;
//! a failure in CI (`CI=true`).

mod serve_support;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::{Command, Output};

    use crate::serve_support::{assert_stopped_and_replays, client_or_skip, text, ServeProcess};

    /// `xenstore-ls` writes `/t/long`'s 100 x's truncated at 80 columns (spec §5.2).
    const LONG_VALUE: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
                              xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

    fn sh(script: &str, socket: &Path) -> Output {
        Command::new("sh")
            .args(["-c", script])
            .env("XENSTORED_PATH", socket)
            .output()
            .expect("sh runs")
    }

    fn assert_out(output: &Output, stdout: &str, stderr: &str, rc: i32) {
        assert_eq!(text(&output.stdout), stdout);
        assert_eq!(text(&output.stderr), stderr);
        assert_eq!(output.status.code(), Some(rc));
    }

    /// The reference's phase 1b, command by command.
    fn phase_1b(socket: &Path) {
        let out = sh(
            r"xenstore-write /t/v 'a\tb\x01'; xenstore-read /t/v",
            socket,
        );
        assert_out(&out, "a\\tb\\001\n", "", 0);
        let out = sh(r"xenstore-write /t/w '\x7f'; xenstore-read /t/w", socket);
        assert_out(&out, "\\x7f\n", "", 0);
        let out = sh("xenstore-read -R /t/v | od -c", socket);
        assert_out(&out, "0000000   a  \\t   b 001\n0000004\n", "", 0);
        let out = sh("xenstore-read /nonexistent", socket);
        assert_out(
            &out,
            "",
            "xenstore-read: couldn't read path /nonexistent\n",
            1,
        );
        let out = sh("xenstore-ls /nonexistent", socket);
        let enoent = "xenstore-ls: xs_directory (/nonexistent): No such file or directory\n";
        assert_out(&out, "", enoent, 1);
        let out = sh(
            &format!("xenstore-write /t/long {LONG_VALUE}; xenstore-ls /t"),
            socket,
        );
        let ls = "v = \"a\\tb\\001\"\nw = \"\\x7f\"\nlong = \"\
                  xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\...\"\n";
        assert_out(&out, ls, "", 0);
        let out = sh("xenstore-ls -p /t", socket);
        let ls_p = "v = \"a\\tb\\001\" . . . . . . . . . . . . . . . . . . . . . . .  (n0)\n\
                    w = \"\\x7f\" . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)\n\
                    long = \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
                    \\...\"  (n0)\n";
        assert_out(&out, ls_p, "", 0);
        let out = sh("xenstore-chmod /t/v n0 r1; xenstore-ls -fp /t", socket);
        let ls_fp = format!(
            "/t/v = \"a\\tb\\001\"   (n0,r1)\n/t/w = \"\\x7f\"   (n0)\n\
             /t/long = \"{LONG_VALUE}\"   (n0)\n"
        );
        assert_out(&out, &ls_fp, "", 0);
        let out = sh(
            "xenstore-rm /t; xenstore-exists /t; echo exists-rc=$?",
            socket,
        );
        assert_out(&out, "exists-rc=1\n", "", 0);
    }

    /// List, tidy removal and the root listing of Debian's 4.17 client (`//tool`).
    fn listing(socket: &Path) {
        let out = sh("xenstore-ls -fp /tool", socket);
        assert_out(&out, "/tool/xenstored = \"\"   (n0)\n", "", 0);
        let out = sh(
            "xenstore-write /a/b/c 1 /a/b/d 2; xenstore-list /a/b",
            socket,
        );
        assert_out(&out, "c\nd\n", "", 0);
        let out = sh(
            "xenstore-list -p /a/b; xenstore-list -p / | head -1",
            socket,
        );
        assert_out(&out, "/a/b/c\n/a/b/d\n//tool\n", "", 0);
        let out = sh("xenstore-rm -t /a/b/c /a/b/d; xenstore-exists /a", socket);
        assert_out(&out, "", "", 1);
    }

    #[test]
    fn xenstore_utils_print_what_they_print_against_cxenstored() {
        let Some(_) = client_or_skip(Path::new("/usr/bin/xenstore-ls"), "xenstore-utils") else {
            return;
        };
        let server = ServeProcess::start("utils", "scenarios/quickstart.toml", &[]);
        phase_1b(&server.socket);
        listing(&server.socket);
        let trace = server.trace.clone();
        let output = server.stop();
        assert_stopped_and_replays(&output, &trace);
    }
}
