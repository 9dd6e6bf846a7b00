//! The XenBus connect and close handshake of vif (netfront/netback) and vbd
//! (blkfront/blkback) devices: what each end of one device holds (its state, the ring
//! grants, the event-channel ports, the backend's mappings) and the keys each step writes
//! (spec `xenstore-io.md` §3.3–3.4, §4.3–4.5).
//!
//! Follows xen/include/public/io/netif.h and blkif.h (XenBus nodes), Linux
//! drivers/net/xen-netback/xenbus.c and xen-netfront.c, drivers/block/xen-blkback/xenbus.c
//! and xen-blkfront.c. The hypervisor layer (`hypervisor/xenbus_drive.rs`) runs the steps
//! against XenStore, the grant tables and the event channels.
//!
//! # Invariants
//! - `ring_refs` holds one ref per ring page the frontend granted (vif: TX and RX; vbd:
//!   one single-page ring) and `ring_handles` one dom0 handle per mapped ref, in order.
//! - `back_port` is set only while `front_port` is set (the backend binds to it).
//!
//! xensim differs / leaves out on purpose: single queue, single-page rings, no split
//! event channels, no control ring, no reconnect; `physical-sector-size` and `sectors`
//! are fixed stand-in values.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::xenbus::XenbusState;
use crate::grant::GrantHandle;
use crate::ids::{DomId, EvtchnPort, GrantRef};

/// Linux's `GNTTAB_NR_RESERVED_ENTRIES`: refs below this are the toolstack's (0 console,
/// 1 store); a frontend's first ref is the first free one at or above it.
pub const FIRST_DRIVER_GREF: u32 = 8;

/// Stand-in gfn of a device's first ring page in the guest: `RING_GFN_BASE + 4 * slot`
/// (`slot` counts the domain's ring devices). xensim differs: no guest allocator runs.
pub const RING_GFN_BASE: u64 = 0x8_0000;

/// Stand-in disk size in 512-byte sectors (10 GiB), written as `sectors`.
pub const VBD_SECTORS_512: u64 = 20_971_520;

/// The two split-device kinds whose drivers xensim runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeviceKind {
    /// netfront/netback.
    Vif,
    /// blkfront/blkback.
    Vbd,
}

impl DeviceKind {
    /// The device directory kind name, `None` for kinds without drivers here (console).
    pub fn from_name(kind: &str) -> Option<DeviceKind> {
        match kind {
            "vif" => Some(DeviceKind::Vif),
            "vbd" => Some(DeviceKind::Vbd),
            _ => None,
        }
    }

    /// Ring pages the frontend grants: TX and RX for a vif, one ring for a vbd.
    pub const fn ring_pages(self) -> u32 {
        match self {
            DeviceKind::Vif => 2,
            DeviceKind::Vbd => 1,
        }
    }
}

/// One device's two ends as the drivers see them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeviceConn {
    /// vif or vbd.
    pub kind: DeviceKind,
    /// The frontend (guest) domain.
    pub front_dom: DomId,
    /// The backend (driver) domain.
    pub back_dom: DomId,
    /// The frontend directory.
    pub front_path: String,
    /// The backend directory.
    pub back_path: String,
    /// What the frontend last wrote to its `state`.
    pub front_state: XenbusState,
    /// What the backend last wrote to its `state`.
    pub back_state: XenbusState,
    /// The frontend's ring grants (still granted by the frontend while non-empty).
    pub ring_refs: Vec<GrantRef>,
    /// The backend's maptrack handles for `ring_refs`.
    pub ring_handles: Vec<GrantHandle>,
    /// The frontend's port (unbound for the backend, then interdomain).
    pub front_port: Option<EvtchnPort>,
    /// The backend's bound port.
    pub back_port: Option<EvtchnPort>,
    /// The backend driver probed (it watches the frontend's `state`).
    pub back_probed: bool,
    /// The frontend driver probed (it watches the backend's `state`).
    pub front_probed: bool,
    /// A backend probe is scheduled.
    pub back_probe_pending: bool,
    /// A frontend probe is scheduled.
    pub front_probe_pending: bool,
}

impl DeviceConn {
    /// A device the toolstack just created: both ends at Initialising.
    pub fn new(
        kind: DeviceKind,
        front_dom: DomId,
        back_dom: DomId,
        front_path: String,
        back_path: String,
    ) -> DeviceConn {
        DeviceConn {
            kind,
            front_dom,
            back_dom,
            front_path,
            back_path,
            front_state: XenbusState::Initialising,
            back_state: XenbusState::Initialising,
            ring_refs: Vec::new(),
            ring_handles: Vec::new(),
            front_port: None,
            back_port: None,
            back_probed: false,
            front_probed: false,
            back_probe_pending: false,
            front_probe_pending: false,
        }
    }
}

fn kv(key: &str, value: &str) -> (String, String) {
    (String::from(key), String::from(value))
}

/// Keys the backend writes during probe, before `state = 2` (spec §3.3, §3.4). The
/// hotplug script's keys come first (`hotplug-status`, and a vbd's `physical-device`).
pub fn backend_probe_keys(kind: DeviceKind, max_queues: u32) -> Vec<(String, String)> {
    let queues = format!("{}", max_queues.max(1));
    match kind {
        DeviceKind::Vif => alloc::vec![
            kv("hotplug-status", "connected"),
            kv("feature-sg", "1"),
            kv("feature-gso-tcpv4", "1"),
            kv("feature-gso-tcpv6", "1"),
            kv("feature-ipv6-csum-offload", "1"),
            kv("feature-rx-copy", "1"),
            kv("feature-rx-flip", "0"),
            kv("feature-multicast-control", "1"),
            kv("feature-dynamic-multicast-control", "1"),
            kv("feature-split-event-channels", "1"),
            kv("multi-queue-max-queues", &queues),
            kv("feature-ctrl-ring", "1"),
        ],
        DeviceKind::Vbd => alloc::vec![
            kv("physical-device", "fe:0"),
            kv("physical-device-path", "/dev/dm-0"),
            kv("hotplug-status", "connected"),
            kv("max-ring-page-order", "4"),
            kv("multi-queue-max-queues", &queues),
            kv("feature-max-indirect-segments", "256"),
            kv("feature-persistent", "1"),
        ],
    }
}

/// Keys the frontend writes in its one transaction (spec §3.3, §3.4): the ring refs, the
/// port, then its features.
pub fn frontend_keys(
    kind: DeviceKind,
    refs: &[GrantRef],
    port: EvtchnPort,
) -> Vec<(String, String)> {
    let port = format!("{}", port.raw());
    let mut keys = Vec::new();
    match kind {
        DeviceKind::Vif => {
            let (tx, rx) = match refs {
                [tx, rx, ..] => (tx.raw(), rx.raw()),
                _ => panic!("a vif grants two ring pages, got {refs:?}"),
            };
            keys.push(kv("tx-ring-ref", &format!("{tx}")));
            keys.push(kv("rx-ring-ref", &format!("{rx}")));
            keys.push(kv("event-channel", &port));
            keys.push(kv("request-rx-copy", "1"));
            keys.push(kv("feature-rx-notify", "1"));
            keys.push(kv("feature-sg", "1"));
            keys.push(kv("feature-gso-tcpv4", "1"));
            keys.push(kv("feature-gso-tcpv6", "1"));
            keys.push(kv("feature-ipv6-csum-offload", "1"));
            keys.push(kv("feature-no-csum-offload", "0"));
            keys.push(kv("request-multicast-control", "1"));
        }
        DeviceKind::Vbd => {
            let Some(ring) = refs.first() else {
                panic!("a vbd grants one ring page");
            };
            keys.push(kv("ring-ref", &format!("{}", ring.raw())));
            keys.push(kv("event-channel", &port));
            keys.push(kv("protocol", "x86_64-abi"));
            keys.push(kv("feature-persistent", "1"));
        }
    }
    keys
}

/// Keys the backend writes on connect, before `state = 4`: a vbd's device properties and
/// request features (spec §3.4); a vif writes none.
pub fn backend_connect_keys(kind: DeviceKind, read_only: bool) -> Vec<(String, String)> {
    match kind {
        DeviceKind::Vif => Vec::new(),
        DeviceKind::Vbd => alloc::vec![
            kv("sectors", &format!("{VBD_SECTORS_512}")),
            kv("info", if read_only { "4" } else { "0" }),
            kv("sector-size", "512"),
            kv("physical-sector-size", "4096"),
            kv("feature-flush-cache", "1"),
            kv("feature-barrier", "0"),
            kv("feature-discard", if read_only { "0" } else { "1" }),
            kv("discard-granularity", "4096"),
            kv("discard-alignment", "0"),
            kv("discard-secure", "0"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_frontend_keys_name_both_rings_and_the_port() {
        let refs = [GrantRef::new(8), GrantRef::new(9)];
        let keys = frontend_keys(DeviceKind::Vif, &refs, EvtchnPort::new(5));
        assert_eq!(keys[0], kv("tx-ring-ref", "8"));
        assert_eq!(keys[1], kv("rx-ring-ref", "9"));
        assert_eq!(keys[2], kv("event-channel", "5"));
    }

    #[test]
    fn vbd_probe_keys_advertise_indirect_segments() {
        let keys = backend_probe_keys(DeviceKind::Vbd, 2);
        assert!(keys.contains(&kv("feature-max-indirect-segments", "256")));
        assert!(keys.contains(&kv("multi-queue-max-queues", "2")));
    }

    #[test]
    fn console_has_no_driver_here() {
        assert_eq!(DeviceKind::from_name("console"), None);
        assert_eq!(DeviceKind::from_name("vbd"), Some(DeviceKind::Vbd));
    }
}
