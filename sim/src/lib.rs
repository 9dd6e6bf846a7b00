//! # xensim: the simulated machine around the hypervisor core
//!
//! Layers, top to bottom:
//! - `bin/xensim.rs`: the CLI; parses arguments and calls this library.
//! - [`scenario`]: scenario TOML and xl.cfg loading with located errors.
//! - [`xl`]: xl command lines.
//! - [`report`]: metrics, tables and other output computed from the trace.

#![deny(unsafe_code)]

pub mod guest;
pub mod machine;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod xl;
