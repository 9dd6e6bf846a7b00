//! The emulated NIC's port on its nic's bridge, and the stub domain's own vif as the
//! guest's card sees it: when the card joins and leaves the bridge, and what the stub
//! domain's netfront reports on the guest's behalf.
//!
//! Joining: libxl runs a nic's hotplug script (`vif-bridge`) once the nic's backend
//! reached InitWait (`libxl__wait_device_connection`, then `device_hotplug`). For an HVM
//! nic of type `vif_ioemu` whose QEMU runs in dom0 it runs it twice, for netback's
//! `vif<dom>.<devid>` and for QEMU's tap `vif<dom>.<devid>-emu` (`type_if=tap`), which
//! QEMU created when it started; for a guest with a stub domain it skips the tap, and the
//! stub domain's own vif (type `vif`) joins the bridge at its own backend's InitWait. In
//! both cases the guest's emulated card is then on the bridge with the guest nic's MAC
//! (`GuestNotice::VifConnected` for the guest's nic), before and without any PV
//! handshake of the guest: a guest without the platform PCI device has no netfront, so
//! its kernel never probes its vif (its backend waits in InitWait).
//!
//! Leaving: when the device model goes (QEMU in dom0 at its guest's destroy,
//! `libxl__destroy_device_model`; a stub domain at its own destroy, when its vif's
//! hotplug runs `offline`), the card leaves the bridge (`GuestNotice::VifGone`).
//!
//! The stub domain's vif stands for the guest's card: a frame its netfront received goes
//! on to QEMU (`emunic.rs`), a frame its netfront or netback dropped counts against the
//! guest's nic, and its connect tells the bridge nothing new.
//!
//! Follows tools/libs/light/libxl_linux.c (`libxl__get_hotplug_script_info`,
//! `libxl__hotplug_nic`), libxl_device.c (`device_hotplug` after the backend's InitWait),
//! libxl_domain.c (`libxl__destroy_domid`: the device model first) and
//! tools/hotplug/Linux/vif-bridge (`online`/`add`: `add_to_bridge`; `offline`: the port
//! goes with its device).
//!
//! # Invariants
//! - A card is on a bridge only while its guest is alive and not being destroyed and,
//!   with a stub domain, while that domain is too (checked: `emunic.card_domain`).
//!
//! xensim differs: the hotplug script's own time is not charged; a PVHVM guest (the
//! platform PCI device present) has only its PV vif on the bridge (Xen's QEMU would still
//! put the tap there, unused once the guest unplugged the emulated card).

use alloc::vec::Vec;

use super::net_glue::VifKey;
use super::Hypervisor;
use crate::ids::DomId;
use crate::io::handshake::{DeviceConn, DeviceKind};
use crate::io::xenbus::XenbusState;
use crate::platform::Platform;
use crate::toolstack::ops::GuestNotice;

impl Hypervisor {
    /// The guest whose device model runs in `stub`, if `stub` is a stub domain.
    pub(crate) fn stubdom_guest(&self, stub: DomId) -> Option<DomId> {
        let mut guests = self.ioreq.stubdom_of.iter();
        guests.find(|(_, s)| **s == stub).map(|(guest, _)| *guest)
    }

    /// True when the frontend of `conn` has no driver in its guest's kernel: a vif of a
    /// guest whose NICs are emulated (no netfront without the platform PCI device).
    pub(crate) fn netfront_absent(&self, conn: &DeviceConn) -> bool {
        conn.kind == DeviceKind::Vif && self.nic_emulated(conn.front_dom)
    }

    /// The backend domain whose bridge `dom`'s nic `devid` is on: its vif's, or its
    /// emulated card's.
    pub fn bridge_port_backend(&self, dom: DomId, devid: u32) -> Option<DomId> {
        let vif = self.net.paths.get(&(dom, devid));
        let vif_back = vif.map(|path| path.params.back_dom);
        vif_back.or_else(|| self.ioreq.cards.get(&(dom, devid)).copied())
    }

    /// The backend domain of `dom`'s emulated card `devid` while it is on its bridge.
    pub fn emulated_card(&self, dom: DomId, devid: u32) -> Option<DomId> {
        self.ioreq.cards.get(&(dom, devid)).copied()
    }

    /// A vif backend reached InitWait and libxl ran its hotplug: QEMU's tap (a dom0 device
    /// model's guest nic) or the stub domain's vif joins the bridge as the guest's card.
    pub(crate) fn emunic_hotplug_online<P: Platform + ?Sized>(
        &mut self,
        conn: &DeviceConn,
        p: &mut P,
    ) {
        let Some((front, devid)) = Self::vif_key(conn) else {
            return;
        };
        if conn.back_state != XenbusState::InitWait {
            return;
        }
        let guest = match self.stubdom_guest(front) {
            Some(guest) => guest,
            None if !self.ioreq.stubdom_of.contains_key(&front) => front,
            // A stub domain's guest: libxl runs no tap hotplug for its nic.
            None => return,
        };
        if !self.nic_emulated(guest) || !self.is_alive(guest) {
            return;
        }
        let mac = self.vif_front_mac(conn);
        let before = self.ioreq.cards.insert((guest, devid), conn.back_dom);
        if before == Some(conn.back_dom) {
            return; // Already on that bridge.
        }
        p.guest_notify(guest, GuestNotice::VifConnected { devid, mac });
    }

    /// `dom` is being destroyed: if it is a guest with emulated cards or a stub domain,
    /// the device model goes and the cards leave their bridges.
    pub(crate) fn emunic_dm_gone<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        let guest = self.stubdom_guest(dom).unwrap_or(dom);
        let devids: Vec<u32> = self
            .ioreq
            .cards
            .range((guest, 0)..=(guest, u32::MAX))
            .map(|(key, _)| key.1)
            .collect();
        for devid in devids {
            self.ioreq.cards.remove(&(guest, devid));
            p.guest_notify(guest, GuestNotice::VifGone { devid });
        }
    }

    /// What netfront or netback tells the kernel of `key`'s frontend: a stub domain's vif
    /// speaks for its guest's card, any other vif for its own domain.
    pub(crate) fn vif_notify<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        notice: GuestNotice,
        p: &mut P,
    ) {
        let Some(guest) = self.stubdom_guest(key.0) else {
            return p.guest_notify(key.0, notice);
        };
        match notice {
            GuestNotice::NetReceived { packet, .. } => {
                self.emunic_from_device_model((guest, key.1), packet, p);
            }
            GuestNotice::NetDropped { reason, .. } => {
                let devid = key.1;
                p.guest_notify(guest, GuestNotice::NetDropped { devid, reason });
            }
            // The card joined the bridge at the hotplug already.
            GuestNotice::VifConnected { .. } => {}
            other => p.guest_notify(key.0, other),
        }
    }

    /// The card checks: every card's guest (and stub domain) is alive and not being
    /// destroyed.
    pub(crate) fn emunic_port_check(&self, out: &mut Vec<crate::sched::Violation>) {
        let up = |dom: DomId| self.is_alive(dom) && !self.destroy_running(dom);
        for (guest, devid) in self.ioreq.cards.keys() {
            let stub = self.ioreq.stubdom_of.get(guest).copied();
            if !up(*guest) || !stub.is_none_or(up) {
                let detail = alloc::format!("d{} card {devid}", guest.raw());
                let invariant = "emunic.card_domain";
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
    }
}
