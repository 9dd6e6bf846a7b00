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
//! - `ring_refs` holds one ref per ring page the frontend granted (vif: TX and RX of each
//!   queue in queue order; vbd: one single-page ring) and `ring_handles` one backend
//!   handle per mapped ref, in order.
//! - `back_port` is set only while `front_port` is set (the backend binds to it), and
//!   `more_back_ports[i]` is bound to `more_front_ports[i]`.
//! - A vif's ports are, in order, per queue its TX and RX port (split event channels) or
//!   its one port: `front_port` is queue 0's first, `more_front_ports` the rest.
//!
//! A vif frontend lays out its keys as Linux's `talk_to_netback` does: it writes
//! `multi-queue-num-queues = q` whenever the backend advertised `multi-queue-max-queues`
//! (so `1` for one queue), the ring and port keys flat for one queue and under
//! `queue-<i>/` for several, and a TX and an RX port (`event-channel-tx`/`-rx`) per queue
//! whenever the backend offers `feature-split-event-channels = 1`, else one shared
//! `event-channel` (netif.h, `setup_netfront`, `write_queue_xenstore_keys`). Its other keys
//! are `talk_to_netback`'s: `request-rx-copy`, `feature-rx-notify`, `feature-sg`,
//! `feature-gso-tcpv4`, `feature-gso-tcpv6`, `feature-ipv6-csum-offload`.
//!
//! XDP headroom (Linux >= 5.9): netback offers `feature-xdp-headroom` in its probe
//! (`provides_xdp_headroom`, default 1); netfront, when offered it, writes `xdp-headroom`
//! outside its transaction before it sets up its queues (`talk_to_netback_xdp`); netback
//! reads it at connect (`read_xenbus_frontend_xdp` from `read_xenbus_vif_flags`). xensim
//! models no XDP program, so netfront's headroom is always 0 ([`NETFRONT_XDP_HEADROOM`]).
//!
//! xensim differs / leaves out on purpose: single-page rings, no control ring, no XDP
//! (no program, no `Reconfiguring` round trip of `xennet_xdp_set`), no reconnect;
//! `physical-sector-size` and `sectors` are fixed stand-in values. Spec §3.3 lists
//! `feature-no-csum-offload = 0` and `request-multicast-control = 1` among the frontend's
//! keys and writes `multi-queue-num-queues` and split ports only with several queues;
//! Linux's netfront writes neither of those two keys and does the rest as above, and
//! xensim follows Linux.

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

/// Stand-in gfn of the ring pages of a vif's queues after the first:
/// `RING_MQ_GFN_BASE + 2 * (slot * VIF_QUEUES_MAX + queue) + page`.
pub const RING_MQ_GFN_BASE: u64 = 0x9_0000;

/// The stand-in gfn of ring page `page` of queue `queue` of the domain's device `slot`
/// (queue 0 keeps the single-queue layout).
pub fn ring_gfn(slot: usize, queue: u32, page: u32) -> u64 {
    let slot = u64::try_from(slot).unwrap_or(0);
    if queue == 0 {
        return RING_GFN_BASE + slot.saturating_mul(4) + u64::from(page);
    }
    let index = slot
        .saturating_mul(u64::from(crate::io::vif::VIF_QUEUES_MAX))
        .saturating_add(u64::from(queue));
    RING_MQ_GFN_BASE + index.saturating_mul(2) + u64::from(page)
}

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
    /// vif: the queues the frontend set up (0 before it published; a vbd's stays 0).
    pub queue_count: u32,
    /// vif: the frontend set up a TX and an RX port per queue.
    pub split_evtchn: bool,
    /// vif: the frontend's `xdp-headroom` as netback read it at connect (netback's
    /// `vif->xdp_headroom`: 0 when missing or not a number, at most
    /// [`XEN_NETIF_MAX_XDP_HEADROOM`]). xensim differs: netback places RX data at offset 0
    /// whatever it read (Linux starts the first slot's data after the headroom and adds an
    /// XDP extra-info slot); only a guest that rewrote its key behind netfront can make
    /// the two differ, since xensim's netfront writes 0.
    pub xdp_headroom_bytes: u16,
    /// The frontend's ports after `front_port`, in the order above.
    pub more_front_ports: Vec<EvtchnPort>,
    /// The backend's ports after `back_port`, one per entry of `more_front_ports`.
    pub more_back_ports: Vec<EvtchnPort>,
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
            queue_count: 0,
            split_evtchn: false,
            xdp_headroom_bytes: 0,
            more_front_ports: Vec::new(),
            more_back_ports: Vec::new(),
        }
    }

    /// Every port the frontend holds for the device, in order.
    pub fn front_ports(&self) -> Vec<EvtchnPort> {
        self.front_port
            .iter()
            .chain(&self.more_front_ports)
            .copied()
            .collect()
    }

    /// Every port the backend bound for the device, in order.
    pub fn back_ports(&self) -> Vec<EvtchnPort> {
        self.back_port
            .iter()
            .chain(&self.more_back_ports)
            .copied()
            .collect()
    }

    /// Takes every backend port (for the close).
    pub fn take_back_ports(&mut self) -> Vec<EvtchnPort> {
        let mut ports: Vec<EvtchnPort> = self.back_port.take().into_iter().collect();
        ports.append(&mut self.more_back_ports);
        ports
    }

    /// Takes every frontend port (for the close).
    pub fn take_front_ports(&mut self) -> Vec<EvtchnPort> {
        let mut ports: Vec<EvtchnPort> = self.front_port.take().into_iter().collect();
        ports.append(&mut self.more_front_ports);
        ports
    }
}

fn kv(key: &str, value: &str) -> (String, String) {
    (String::from(key), String::from(value))
}

/// What a backend offers in its probe: its kernel's module parameters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BackendOffer {
    /// `multi-queue-max-queues` (netback's `max_queues`; blkback's online vCPUs).
    pub queues_max: u32,
    /// netback's `separate_tx_rx_irq`: `feature-split-event-channels` (a vbd ignores it).
    pub split_evtchn: bool,
    /// netback's `provides_xdp_headroom`: `feature-xdp-headroom` (a vbd ignores it).
    pub xdp_headroom: bool,
}

/// Keys the backend writes during probe, before `state = 2` (spec §3.3, §3.4). The
/// hotplug script's keys come first (`hotplug-status`, and a vbd's `physical-device`);
/// a vif's then follow `netback_probe`: its transaction (`feature-sg` .. `feature-rx-copy`,
/// `feature-xdp-headroom`, `feature-rx-flip`, the multicast keys), then
/// `feature-split-event-channels`, `multi-queue-max-queues` and `feature-ctrl-ring`.
pub fn backend_probe_keys(kind: DeviceKind, offer: BackendOffer) -> Vec<(String, String)> {
    let queues = format!("{}", offer.queues_max.max(1));
    let flag = |on: bool| if on { "1" } else { "0" };
    match kind {
        DeviceKind::Vif => alloc::vec![
            kv("hotplug-status", "connected"),
            kv("feature-sg", "1"),
            kv("feature-gso-tcpv4", "1"),
            kv("feature-gso-tcpv6", "1"),
            kv("feature-ipv6-csum-offload", "1"),
            kv("feature-rx-copy", "1"),
            kv("feature-xdp-headroom", flag(offer.xdp_headroom)),
            kv("feature-rx-flip", "0"),
            kv("feature-multicast-control", "1"),
            kv("feature-dynamic-multicast-control", "1"),
            kv("feature-split-event-channels", flag(offer.split_evtchn)),
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

/// How netfront sets up a vif (`talk_to_netback`); a vbd uses [`VifLayout::SINGLE`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VifLayout {
    /// Queues: `min(backend's multi-queue-max-queues (1 when absent), own max_queues)`.
    pub queues: u32,
    /// A TX and an RX port per queue: the backend offers `feature-split-event-channels`.
    pub split: bool,
    /// The backend advertised `multi-queue-max-queues`: `multi-queue-num-queues` is
    /// written, even for one queue.
    pub count_key: bool,
    /// The backend offers `feature-xdp-headroom` (non-zero): netfront writes its
    /// `xdp-headroom` ([`NETFRONT_XDP_HEADROOM`]) before it sets up its queues.
    pub xdp_headroom: bool,
}

/// The `xdp-headroom` netfront writes: `XDP_PACKET_HEADROOM` (256) with an XDP program
/// attached, else 0. xensim's guests attach no XDP program, so it is always 0.
pub const NETFRONT_XDP_HEADROOM: u16 = 0;

/// netif.h's `XEN_NETIF_MAX_XDP_HEADROOM`: netback clamps the frontend's `xdp-headroom`
/// to it (`read_xenbus_frontend_xdp`).
pub const XEN_NETIF_MAX_XDP_HEADROOM: u16 = 0x7fff;

impl VifLayout {
    /// One queue, one shared port, no queue count (a vbd, or a backend without the
    /// multi-queue and split features).
    pub const SINGLE: VifLayout = VifLayout {
        queues: 1,
        split: false,
        count_key: false,
        xdp_headroom: false,
    };

    /// Event-channel ports per queue.
    pub const fn ports_per_queue(self) -> u32 {
        if self.split {
            2
        } else {
            1
        }
    }
}

/// Keys the frontend writes in its one transaction (spec §3.3, §3.4): the ring refs and
/// ports (a vif's per queue, see the module doc), then its features. `ports` holds a vif's
/// ports in queue order, two per queue when `layout.split`.
pub fn frontend_keys(
    kind: DeviceKind,
    refs: &[GrantRef],
    ports: &[EvtchnPort],
    layout: VifLayout,
) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    match kind {
        DeviceKind::Vif => {
            vif_queue_keys(refs, ports, layout, &mut keys);
            keys.push(kv("request-rx-copy", "1"));
            keys.push(kv("feature-rx-notify", "1"));
            keys.push(kv("feature-sg", "1"));
            keys.push(kv("feature-gso-tcpv4", "1"));
            keys.push(kv("feature-gso-tcpv6", "1"));
            keys.push(kv("feature-ipv6-csum-offload", "1"));
        }
        DeviceKind::Vbd => {
            let (Some(ring), Some(port)) = (refs.first(), ports.first()) else {
                panic!("a vbd grants one ring page and allocates one port");
            };
            keys.push(kv("ring-ref", &format!("{}", ring.raw())));
            keys.push(kv("event-channel", &format!("{}", port.raw())));
            keys.push(kv("protocol", "x86_64-abi"));
            keys.push(kv("feature-persistent", "1"));
        }
    }
    keys
}

/// A vif's ring and port keys (`talk_to_netback`, `write_queue_xenstore_keys`): the queue
/// count if the backend asked for it, then flat for one queue, under `queue-<i>/` for
/// several.
fn vif_queue_keys(
    refs: &[GrantRef],
    ports: &[EvtchnPort],
    layout: VifLayout,
    keys: &mut Vec<(String, String)>,
) {
    let queues = refs.len() / 2;
    let per_queue = usize::try_from(layout.ports_per_queue()).unwrap_or(1);
    assert!(
        queues >= 1,
        "a vif grants two ring pages per queue, got {refs:?}"
    );
    assert_eq!(refs.len(), 2 * queues, "TX and RX ring per queue");
    assert_eq!(ports.len(), per_queue * queues, "ports per queue");
    assert!(
        queues == 1 || layout.count_key,
        "several queues need the backend's offer"
    );
    if layout.count_key {
        keys.push(kv("multi-queue-num-queues", &format!("{queues}")));
    }
    for q in 0..queues {
        let dir = if queues > 1 {
            format!("queue-{q}/")
        } else {
            String::new()
        };
        let ring = |i: usize| format!("{}", refs[2 * q + i].raw());
        let port = |i: usize| format!("{}", ports[per_queue * q + i].raw());
        keys.push((format!("{dir}tx-ring-ref"), ring(0)));
        keys.push((format!("{dir}rx-ring-ref"), ring(1)));
        if layout.split {
            keys.push((format!("{dir}event-channel-tx"), port(0)));
            keys.push((format!("{dir}event-channel-rx"), port(1)));
        } else {
            keys.push((format!("{dir}event-channel"), port(0)));
        }
    }
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
    fn vif_frontend_keys_without_backend_features_name_both_rings_and_one_port() {
        let refs = [GrantRef::new(8), GrantRef::new(9)];
        let ports = [EvtchnPort::new(5)];
        let keys = frontend_keys(DeviceKind::Vif, &refs, &ports, VifLayout::SINGLE);
        assert_eq!(keys[0], kv("tx-ring-ref", "8"));
        assert_eq!(keys[1], kv("rx-ring-ref", "9"));
        assert_eq!(keys[2], kv("event-channel", "5"));
        assert_eq!(keys[3], kv("request-rx-copy", "1"));
    }

    #[test]
    fn one_queue_vif_keys_with_backend_features_count_and_split_flat() {
        // Rings 8/9, TX port 5, RX port 6; the backend offered queues and split ports.
        let refs = [GrantRef::new(8), GrantRef::new(9)];
        let ports = [EvtchnPort::new(5), EvtchnPort::new(6)];
        let layout = VifLayout {
            queues: 1,
            split: true,
            count_key: true,
            xdp_headroom: true,
        };
        let keys = frontend_keys(DeviceKind::Vif, &refs, &ports, layout);
        assert_eq!(keys[0], kv("multi-queue-num-queues", "1"));
        assert_eq!(keys[1], kv("tx-ring-ref", "8"));
        assert_eq!(keys[2], kv("rx-ring-ref", "9"));
        assert_eq!(keys[3], kv("event-channel-tx", "5"));
        assert_eq!(keys[4], kv("event-channel-rx", "6"));
        assert_eq!(keys[5], kv("request-rx-copy", "1"));
    }

    #[test]
    fn two_queue_vif_keys_go_under_queue_dirs_with_split_ports() {
        // Queue 0: rings 8/9, ports 5/6; queue 1: rings 10/11, ports 7/8.
        let refs = [8, 9, 10, 11].map(GrantRef::new);
        let ports = [5, 6, 7, 8].map(EvtchnPort::new);
        let layout = VifLayout {
            queues: 2,
            split: true,
            count_key: true,
            xdp_headroom: true,
        };
        let keys = frontend_keys(DeviceKind::Vif, &refs, &ports, layout);
        assert_eq!(keys[0], kv("multi-queue-num-queues", "2"));
        assert_eq!(keys[1], kv("queue-0/tx-ring-ref", "8"));
        assert_eq!(keys[3], kv("queue-0/event-channel-tx", "5"));
        assert_eq!(keys[4], kv("queue-0/event-channel-rx", "6"));
        assert_eq!(keys[6], kv("queue-1/rx-ring-ref", "11"));
        assert_eq!(keys[8], kv("queue-1/event-channel-rx", "8"));
        assert!(!keys
            .iter()
            .any(|(k, _)| k == "tx-ring-ref" || k == "event-channel"));
    }

    #[test]
    fn vbd_probe_keys_advertise_indirect_segments() {
        let offer = BackendOffer {
            queues_max: 2,
            split_evtchn: true,
            xdp_headroom: true,
        };
        let keys = backend_probe_keys(DeviceKind::Vbd, offer);
        assert!(keys.contains(&kv("feature-max-indirect-segments", "256")));
        assert!(keys.contains(&kv("multi-queue-max-queues", "2")));
        assert!(!keys.iter().any(|(k, _)| k == "feature-xdp-headroom"));
    }

    #[test]
    fn vif_probe_offers_xdp_headroom_between_rx_copy_and_rx_flip() {
        // netback_probe's transaction order; `provides_xdp_headroom` off writes 0.
        let offer = BackendOffer {
            queues_max: 1,
            split_evtchn: true,
            xdp_headroom: false,
        };
        let keys = backend_probe_keys(DeviceKind::Vif, offer);
        let at = keys.iter().position(|(k, _)| k == "feature-xdp-headroom");
        let around: Vec<&str> = at
            .map(|i| {
                keys[i - 1..=i + 1]
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            around,
            ["feature-rx-copy", "feature-xdp-headroom", "feature-rx-flip"]
        );
        assert!(keys.contains(&kv("feature-xdp-headroom", "0")));
    }

    #[test]
    fn console_has_no_driver_here() {
        assert_eq!(DeviceKind::from_name("console"), None);
        assert_eq!(DeviceKind::from_name("vbd"), Some(DeviceKind::Vbd));
    }
}
