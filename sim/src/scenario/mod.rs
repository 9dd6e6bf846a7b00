//! Scenario files: the typed model (`model.rs`), the loader and validation.

pub mod model;
