//! Located diagnostics for scenario loading: every error and warning names a file, a 1-based
//! line and column, and is rendered with the source line and a caret under the column.
//!
//! Format (`specs/scenario.md` §9):
//! ```text
//! error: web.toml:14:13: [host.h0] topology.numa: expected "per-socket", ..., found "two"
//!    14 | topology = { sockets = 2, numa = "two" }
//!       |                                  ^
//! ```
//!
//! # Invariants
//! - Rendering is deterministic: no colours, no terminal width, no addresses.
//! - Diagnostics are reported in file order (file index, then byte offset), stable.
//! - At most [`ERRORS_PRINTED_MAX`] errors are printed; the rest are counted.

use std::cell::RefCell;

use super::model::SourceFile;

/// Errors printed before the rest are summarised (`specs/scenario.md` §9).
pub const ERRORS_PRINTED_MAX: usize = 50;

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Nothing runs.
    Error,
    /// Reported, the load continues.
    Warning,
}

/// One located message.
#[derive(Debug, Clone)]
pub struct Diag {
    /// Index into the source list.
    pub file_index: usize,
    /// Byte offset into that file's text.
    pub offset_bytes: usize,
    /// Error or warning.
    pub severity: Severity,
    /// The message after `file:line:col: `.
    pub message: String,
}

/// A place in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Index into the source list.
    pub file_index: usize,
    /// Byte offset into the file's text.
    pub offset_bytes: usize,
}

/// Where a piece of text (an xl.cfg, an inline string) sits in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOrigin {
    /// The file holding the text.
    pub file_index: usize,
    /// Byte offset of the text's first character in that file.
    pub base_offset_bytes: usize,
    /// True if offsets in the text map 1:1 to the file (no escapes in between); else every
    /// location falls back to the text's start.
    pub exact: bool,
}

impl TextOrigin {
    /// A whole file.
    pub fn file(file_index: usize) -> TextOrigin {
        TextOrigin {
            file_index,
            base_offset_bytes: 0,
            exact: true,
        }
    }

    /// The file location of byte `offset` of the text.
    pub fn loc(&self, offset_bytes: usize) -> Loc {
        let delta = if self.exact { offset_bytes } else { 0 };
        Loc {
            file_index: self.file_index,
            offset_bytes: self.base_offset_bytes + delta,
        }
    }
}

/// Collects diagnostics and the files they point into while a scenario loads.
#[derive(Debug, Default)]
pub struct Diags {
    sources: RefCell<Vec<SourceFile>>,
    diags: RefCell<Vec<Diag>>,
    strict: bool,
}

impl Diags {
    /// A collector; `strict` turns xl.cfg / xl.conf unknown-key warnings into errors.
    pub fn new(strict: bool) -> Diags {
        Diags {
            strict,
            ..Diags::default()
        }
    }

    /// Registers a source file and returns its index.
    pub fn add_source(&self, name: &str, text: &str) -> usize {
        let mut sources = self.sources.borrow_mut();
        sources.push(SourceFile {
            name: name.to_string(),
            text: text.to_string(),
        });
        sources.len() - 1
    }

    /// An error at `loc`.
    pub fn error(&self, loc: Loc, message: impl Into<String>) {
        self.push(loc, Severity::Error, message.into());
    }

    /// A warning at `loc`.
    pub fn warning(&self, loc: Loc, message: impl Into<String>) {
        self.push(loc, Severity::Warning, message.into());
    }

    /// A warning that `--strict` turns into an error (unknown xl.cfg / xl.conf keys).
    pub fn lenient(&self, loc: Loc, message: impl Into<String>) {
        let severity = if self.strict {
            Severity::Error
        } else {
            Severity::Warning
        };
        self.push(loc, severity, message.into());
    }

    fn push(&self, loc: Loc, severity: Severity, message: String) {
        self.diags.borrow_mut().push(Diag {
            file_index: loc.file_index,
            offset_bytes: loc.offset_bytes,
            severity,
            message,
        });
    }

    /// Number of errors so far.
    pub fn error_count(&self) -> usize {
        self.diags
            .borrow()
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// The files read so far.
    pub fn sources(&self) -> Vec<SourceFile> {
        self.sources.borrow().clone()
    }

    /// Rendered diagnostics of one severity, in file order.
    pub fn rendered(&self, severity: Severity) -> Vec<String> {
        let mut diags: Vec<Diag> = self
            .diags
            .borrow()
            .iter()
            .filter(|d| d.severity == severity)
            .cloned()
            .collect();
        diags.sort_by_key(|d| (d.file_index, d.offset_bytes));
        let sources = self.sources.borrow();
        diags.iter().map(|d| render_one(&sources, d)).collect()
    }
}

/// 1-based line and column (in characters) of `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn render_one(sources: &[SourceFile], diag: &Diag) -> String {
    let label = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let Some(source) = sources.get(diag.file_index) else {
        return format!("{label}: {}", diag.message);
    };
    let (line, col) = line_col(&source.text, diag.offset_bytes);
    let line_text = source.text.lines().nth(line - 1).unwrap_or("");
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    let caret_pad: String = line_text
        .chars()
        .take(col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!(
        "{label}: {}:{line}:{col}: {}\n {gutter} | {line_text}\n {pad} | {caret_pad}^",
        source.name, diag.message
    )
}

/// Why a scenario did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The scenario file could not be read.
    #[error("cannot read scenario file {path}: {reason}")]
    Io {
        /// The path given.
        path: String,
        /// The OS error text.
        reason: String,
    },
    /// The scenario or an xl.cfg it names has errors.
    #[error("{} error(s) in scenario {file_name}", rendered.len())]
    Invalid {
        /// The scenario file name.
        file_name: String,
        /// Every error, rendered, in file order.
        rendered: Vec<String>,
    },
}

impl LoadError {
    /// All located messages (at most [`ERRORS_PRINTED_MAX`]), one block per error.
    pub fn render(&self) -> String {
        match self {
            LoadError::Io { .. } => format!("error: {self}\n"),
            LoadError::Invalid { rendered, .. } => {
                let mut out = String::new();
                for block in rendered.iter().take(ERRORS_PRINTED_MAX) {
                    out.push_str(block);
                    out.push('\n');
                }
                if rendered.len() > ERRORS_PRINTED_MAX {
                    let rest = rendered.len() - ERRORS_PRINTED_MAX;
                    out.push_str(&format!("note: {rest} more error(s) not shown\n"));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{line_col, Diags, Loc};

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }

    #[test]
    fn rendered_errors_sorted_by_offset() {
        let diags = Diags::new(false);
        let file_index = diags.add_source("a.toml", "x = 1\ny = 2\n");
        diags.error(
            Loc {
                file_index,
                offset_bytes: 6,
            },
            "second",
        );
        diags.error(
            Loc {
                file_index,
                offset_bytes: 4,
            },
            "first",
        );
        let rendered = diags.rendered(super::Severity::Error);
        assert_eq!(
            rendered[0],
            "error: a.toml:1:5: first\n 1 | x = 1\n   |     ^"
        );
        assert!(rendered[1].starts_with("error: a.toml:2:1: second"));
    }
}
