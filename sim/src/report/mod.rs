//! Text reports: everything xensim prints for people. Renderers here are pure functions of
//! the core's state; they never change it.
//!
//! - [`xl`]: xl's own output formats (`xl list`, `xl info`, `xl dmesg`), byte for byte.

pub mod xl;
