//! xl as a user sees it: command lines (`command.rs`) and cpu lists (`cpulist.rs`).

pub mod bitmap;
pub mod command;
pub mod cpulist;
