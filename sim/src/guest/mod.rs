//! Guest models: what the software inside each domain does.
//!
//! - [`access`]: the memory access stream of a `memory` sub-table (EPT walks, PoD,
//!   log-dirty).
//! - [`dist`]: pinned integer sampling of scenario distributions (`specs/scenario.md` §6.2).
//! - [`workload`]: the per-vCPU workload state machine that drives vCPU block and wake
//!   (`specs/scenario.md` §6.1).

pub mod access;
pub mod dist;
pub mod io;
mod mixed;
mod periodic;
pub mod workload;
