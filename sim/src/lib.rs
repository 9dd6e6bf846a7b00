//! # xensim: the simulated machine around the hypervisor core
//!
//! Layers, top to bottom:
//! - `bin/xensim/`: the CLI; parses arguments and calls this library.
//! - [`scenario`]: scenario TOML and xl.cfg loading with located errors.
//! - [`app`]: what each CLI command does (run, replay, report from a trace, xl queries).
//! - [`compare`]: one scenario under several schedulers, one table (`xensim compare`).
//! - [`sweep`]: many seeds in parallel, shards and their merge (`xensim sweep`).
//! - [`mod@bench`]: the reference performance scenarios and `xensim bench`.
//! - [`shrink`]: `xensim shrink`, the minimal scenario that still fails the same way.
//! - [`serve`]: the XenStore on a unix socket for real clients (`xensim serve`).
//! - [`run`]: the event loop, the simulated platform, guest models, the xl timeline.
//! - [`record`]: the replay trace and the run hash.
//! - [`replay_core`]: feeding a trace's core inputs to bare cores (no simulator).
//! - [`report`]: xl output formats, metrics, summaries, the timeline, Perfetto JSON, HTML.
//! - [`guest`], [`machine`], [`rng`]: workloads, host topology, seeded random streams.
//! - [`clock`]: virtual time and the event queue.
//! - [`xl`]: xl command lines and cpu lists.

#![deny(unsafe_code)]

pub mod app;
pub mod bench;
pub mod clock;
pub mod compare;
pub mod guest;
pub mod machine;
pub mod record;
pub mod replay_core;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod shrink;
pub mod sweep;
pub mod xl;
