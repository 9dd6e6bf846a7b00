//! The simulated machine: the hardware side of a host.
//!
//! - [`topology`]: pCPU numbering, sockets, cores, SMT siblings, NUMA nodes and distances.

pub mod topology;
