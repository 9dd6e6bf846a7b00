//! Tidy: the mechanical rules of STYLE.md, checked on every source file of the workspace.
//! Files stay within 800 lines (tests not counted), lines within 100 columns, and no
//! `dbg!`, `todo!` or fix-me marker is left behind.

#[cfg(test)]
mod tests {

    use std::path::{Path, PathBuf};

    const FILE_LINES_MAX: usize = 800;
    const LINE_COLUMNS_MAX: usize = 100;

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn workspace_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for crate_dir in ["hypervisor-model/src", "sim/src", "sim/tests", "benches"] {
            rust_files(&root.join(crate_dir), &mut files);
        }
        files.sort();
        files
    }

    /// Lines before the first `#[cfg(test)]` (tests at the end of a file are not counted).
    fn code_lines(text: &str) -> usize {
        text.lines()
            .take_while(|line| !line.starts_with("#[cfg(test)]"))
            .count()
    }

    #[test]
    fn files_stay_within_800_lines() {
        let long: Vec<String> = workspace_files()
            .iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(path).ok()?;
                let lines = code_lines(&text);
                (lines > FILE_LINES_MAX).then(|| format!("{}: {lines} lines", path.display()))
            })
            .collect();
        assert!(long.is_empty(), "split these files: {long:#?}");
    }

    #[test]
    fn lines_stay_within_100_columns() {
        let mut wide = Vec::new();
        for path in workspace_files() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (index, line) in text.lines().enumerate() {
                if line.chars().count() > LINE_COLUMNS_MAX {
                    wide.push(format!("{}:{}", path.display(), index + 1));
                }
            }
        }
        assert!(
            wide.is_empty(),
            "lines over {LINE_COLUMNS_MAX} columns: {wide:#?}"
        );
    }

    #[test]
    fn no_debugging_leftovers() {
        let banned = [
            concat!("dbg", "!("),
            concat!("todo", "!("),
            concat!("FIX", "ME"),
        ];
        let mut found = Vec::new();
        for path in workspace_files() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for word in banned {
                if text.contains(word) {
                    found.push(format!("{}: {word}", path.display()));
                }
            }
        }
        assert!(found.is_empty(), "remove: {found:#?}");
    }
}
