//! Split-driver I/O: XenBus device states (`xenbus.rs`). Shared rings, netfront/back and
//! blkfront/back come later; the handshake that drives these states through XenStore is
//! not modelled yet.
//!
//! Follows xen/include/public/io/xenbus.h; spec `xenstore-io.md` §4.

pub mod xenbus;
