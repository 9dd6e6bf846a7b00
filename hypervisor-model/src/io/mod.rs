//! Split-driver I/O: XenBus device states (`xenbus.rs`) and the vif/vbd connect and close
//! handshake's per-device state and keys (`handshake.rs`; run by
//! `hypervisor/xenbus_drive.rs`). Shared rings and the data path come later.
//!
//! Follows xen/include/public/io/xenbus.h; spec `xenstore-io.md` §4.

pub mod handshake;
pub mod xenbus;
