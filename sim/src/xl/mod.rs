//! xl as a user sees it: command lines (`command.rs`; the scheduler, cpupool and vCPU
//! commands in `sched_command.rs`, `xl console` in `console_command.rs`) and cpu lists
//! (`cpulist.rs`).

pub mod bitmap;
pub mod command;
pub mod console_command;
pub mod cpulist;
pub mod sched_command;
pub mod xs_command;
