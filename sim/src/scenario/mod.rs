//! Scenario files (`specs/scenario.md`): the typed model (`model.rs`), the loader
//! (`load.rs`, `host.rs`, `workload.rs`, `timeline.rs`), xl.cfg parsing (`xlcfg*.rs`) and
//! located diagnostics (`diag.rs`).
//!
//! Entry points: [`load_file`] and [`load_str`]. Everything is read and checked before
//! anything runs; any error means no [`Scenario`] (exit status 2).

use std::path::Path;

pub mod diag;
pub mod host;
pub mod host_extra;
pub mod load;
pub mod model;
pub mod schema;
pub mod timeline;
pub mod timeline_net;
pub mod tree;
pub mod unsupported;
pub mod values;
pub mod workload;
pub mod workload_os;
pub mod xlcfg;
pub mod xlcfg_dev;
pub mod xlcfg_map;

pub use diag::LoadError;
pub use model::Scenario;

/// How to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--strict`: unknown xl.cfg / xl.conf keys are errors instead of warnings.
    pub strict: bool,
    /// `--seed N`: replaces `[sim] seed`.
    pub seed_override: Option<u64>,
}

/// Loads and validates the scenario at `path` (xl.cfg paths are relative to its directory).
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
    load_str(&file_name, &text, base_dir, opts)
}

/// Loads and validates scenario `text` named `file_name`; xl.cfg paths are relative to
/// `base_dir`.
pub fn load_str(
    file_name: &str,
    text: &str,
    base_dir: &Path,
    opts: &LoadOptions,
) -> Result<Scenario, LoadError> {
    load::load(file_name, text, base_dir, opts)
}
