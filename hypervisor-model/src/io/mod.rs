//! Split-driver I/O: XenBus device states (`xenbus.rs`) and the vif/vbd connect and close
//! handshake's per-device state and keys (`handshake.rs`; run by
//! `hypervisor/xenbus_drive.rs`), the generic shared ring (`ring.rs`), the vbd data path:
//! the blkif wire format (`blkif.rs`), one device's ring and pools (`vbd.rs`), blkfront
//! (`blkfront.rs`) and blkback (`blkback.rs`), run by `hypervisor/blk_glue.rs`; the vif data
//! path: the netif wire format (`netif.rs`), one vif's rings and pools (`vif.rs`), netfront
//! (`netfront.rs`) and netback (`netback.rs`), run by `hypervisor/net_glue.rs`; the guest
//! console ring and xenconsoled's per-domain buffers (`console.rs`); the free-running index
//! checks the XenStore and console rings share (`ring_index.rs`); the stand-in memory of
//! both data paths' pages (`page_store.rs`); the per-device tables both data paths look
//! their devices up in (`dev_map.rs`); the emptied buffers both data paths reuse
//! (`spare.rs`); blkfront's slot tables with free lists (`free_slots.rs`).
//!
//! Follows xen/include/public/io/xenbus.h; spec `xenstore-io.md` §4.

pub mod blkback;
pub mod blkfront;
pub mod blkif;
pub mod console;
pub mod dev_map;
pub mod free_slots;
pub mod handshake;
pub mod netback;
pub mod netfront;
pub mod netif;
pub mod page_store;
pub mod ring;
pub mod ring_index;
pub mod spare;
pub mod vbd;
pub mod vif;
pub mod xenbus;
