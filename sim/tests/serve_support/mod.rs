//! Shared by the `serve*` tests: start `xensim serve` on a scratch socket, find Debian's
//! XenStore clients (skip when they are missing, fail in CI), stop the server with
//! SIGTERM and check that its trace replays.

#![allow(dead_code)]

#[path = "../support/scratch.rs"]
mod scratch;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch directory unique to this test process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    scratch::scratch_dir("serve", name)
}

/// True when running in CI, where a missing client is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `path` if it exists; otherwise `None` after saying why the test is skipped (and a panic
/// in CI, which installs every client).
pub fn client_or_skip(path: &Path, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path.to_path_buf());
    }
    let message = format!(
        "{what} not found at {}: install it (see .ci/run, step \"XenStore clients for the \
         serve tests\")",
        path.display()
    );
    assert!(!in_ci(), "CI=true and {message}");
    println!("SKIPPED: {message}");
    None
}

/// Where `.ci/run` extracts Xen's test-xenstore and its libraries.
pub fn xen_clients_dir() -> PathBuf {
    match std::env::var_os("XENSIM_XEN_CLIENTS") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target/xen-clients"),
    }
}

/// A running `xensim serve`.
pub struct ServeProcess {
    child: Option<Child>,
    pub socket: PathBuf,
    pub trace: PathBuf,
    pub banner: String,
}

impl ServeProcess {
    /// Starts `xensim serve scenario --xenstore-socket DIR/xs.sock --trace DIR/serve.trace`
    /// plus `extra` arguments, and waits until it listens.
    pub fn start(name: &str, scenario: &str, extra: &[&str]) -> ServeProcess {
        let dir = scratch(name);
        let socket = dir.join("xs.sock");
        let trace = dir.join("serve.trace");
        let mut child = Command::new(env!("CARGO_BIN_EXE_xensim"))
            .arg("serve")
            .arg(scenario)
            .arg("--xenstore-socket")
            .arg(&socket)
            .arg("--trace")
            .arg(&trace)
            .args(extra)
            .current_dir(repo_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("xensim serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout);
        let mut banner = String::new();
        // The banner comes once the scenario stands at `--at` and the socket listens.
        lines.read_line(&mut banner).expect("banner line");
        if !banner.contains("xensim serve:") {
            let output = child.wait_with_output().expect("server exits");
            panic!("serve did not start: {banner}{}", text(&output.stderr));
        }
        child.stdout = Some(lines.into_inner());
        ServeProcess {
            child: Some(child),
            socket,
            trace,
            banner,
        }
    }

    /// Sends SIGTERM and returns what the server printed after its banner.
    pub fn stop(mut self) -> Output {
        let child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        child.wait_with_output().expect("server exits")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // A test that panicked before `stop`: do not leave the server running.
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `program args` with `XENSTORED_PATH` pointing at `socket`.
pub fn client(program: &Path, args: &[&str], socket: &Path) -> Output {
    Command::new(program)
        .args(args)
        .env("XENSTORED_PATH", socket)
        .stdin(Stdio::null())
        .output()
        .expect("client runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The server stopped cleanly, printed its run hash, and its trace replays to that hash.
pub fn assert_stopped_and_replays(output: &Output, trace: &Path) {
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "serve exited {:?}: {stdout}{}",
        output.status,
        text(&output.stderr)
    );
    let hash_line = stdout
        .lines()
        .find(|l| l.starts_with("run hash: "))
        .unwrap_or_else(|| panic!("no run hash in {stdout:?}"));
    let replay = Command::new(env!("CARGO_BIN_EXE_xensim"))
        .arg("replay")
        .arg(trace)
        .output()
        .expect("replay runs");
    let replay_out = text(&replay.stdout);
    assert!(
        replay.status.success(),
        "replay failed: {replay_out}{}",
        text(&replay.stderr)
    );
    assert!(replay_out.contains("replay matches"), "{replay_out}");
    let hash = hash_line.trim_start_matches("run hash: ");
    assert!(
        replay_out.contains(&format!("recorded hash: {hash}")),
        "{replay_out}"
    );
}
