//! Scenario files: the typed model (`model.rs`), the loader and validation.

pub mod diag;
pub mod model;
pub mod tree;
pub mod unsupported;
pub mod values;
pub mod xlcfg;
pub mod xlcfg_dev;
pub mod xlcfg_map;
