//! The simulated machine: the hardware side of a host.
//!
//! - [`topology`]: pCPU numbering, sockets, cores, SMT siblings, NUMA nodes and distances.
//! - [`ept`]: second-level address translation as the core programs it (with INVEPT);
//!   [`ept_check`]: the checker comparing it with the core's P2M (I9).
//! - [`iommu`]: DMA remapping contexts, and device doorbell counts.
//! - [`disk`]: physical disks behind vbds: latency, queueing, write cache, contents.
//! - [`nic`]: dom0's bridge, its own stack and the external peer behind the NIC.
//! - [`fabric`]: the links between hosts (latency, bandwidth, loss, MTU, partitions).

pub mod disk;
pub mod ept;
pub mod ept_check;
pub mod fabric;
pub mod iommu;
pub mod nic;
pub mod switch;
pub mod topology;
