//! Guest models: what the software inside each domain does.
//!
//! - [`dist`]: pinned integer sampling of scenario distributions (`specs/scenario.md` §6.2).
//! - [`workload`]: the per-vCPU workload state machine that drives vCPU block and wake
//!   (`specs/scenario.md` §6.1).
//! - [`io`], [`net`]: the `io` workload over a vbd and over a vif.

pub mod dist;
pub mod io;
mod mixed;
pub mod net;
mod periodic;
pub mod workload;
