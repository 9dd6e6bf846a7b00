//! Scratch directories for the integration tests: `<tmp>/xensim-<prefix>-<pid>-<name>`, one
//! per test process, prefix and name. A test keeps its directory while it runs (a failing
//! test's files stay for a look); the next test process that asks for a scratch directory
//! removes those of test processes that have exited, so runs do not pile up in `/tmp`.
//!
//! Shared by `support` and `serve_support` (included by path).

#![allow(dead_code)] // Each test file uses a different subset.

use std::path::{Path, PathBuf};

/// Prefix of every scratch directory's name.
const ROOT_PREFIX: &str = "xensim-";

/// An empty scratch directory unique to this test process, `prefix` and `name`.
pub fn scratch_dir(prefix: &str, name: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!(
        "{ROOT_PREFIX}{prefix}-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Removes the scratch directories in `tmp` whose owning process has exited (Linux: no
/// `/proc/<pid>`). Elsewhere nothing is removed.
fn remove_stale(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in a scratch directory's name `xensim-<prefix>-<pid>-<name>` (the prefix may
/// hold dashes, never a bare number).
fn owner_pid(dir_name: &str) -> Option<u32> {
    let rest = dir_name.strip_prefix(ROOT_PREFIX)?;
    rest.split('-')
        .skip(1)
        .find_map(|part| part.parse::<u32>().ok())
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn owner_pid_reads_the_pid_after_the_prefix() {
        assert_eq!(owner_pid("xensim-cli-4242-run-twice"), Some(4242));
        assert_eq!(owner_pid("xensim-bench-gen-77-out"), Some(77));
        assert_eq!(owner_pid("xensim-cli"), None);
        assert_eq!(owner_pid("other-1-2"), None);
    }
}
