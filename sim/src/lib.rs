//! # xensim: the simulated machine around the hypervisor core
//!
//! Layers, top to bottom:
//! - `bin/xensim.rs`: the CLI; parses arguments and calls this library.
//! - [`scenario`]: scenario TOML and xl.cfg loading with located errors.
//! - [`xl`]: xl command lines.
//! - [`report`]: text output, including xl's own formats byte for byte.

#![deny(unsafe_code)]

pub mod guest;
pub mod machine;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod xl;
