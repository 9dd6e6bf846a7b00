//! The split devices of each domain as the hypervisor layer keeps them: which device
//! directories the toolstack wrote, the destroy's forced remove of each split device
//! (the drivers then close on their watches, `xenbus_watch.rs`), and the removal of the
//! directories once they did. The drivers react to store changes made by xenstore-*
//! clients through the same watches.
//!
//! Follows tools/libs/light/libxl_device.c (`libxl__initiate_device_generic_remove` with
//! `force`: frontend path removed, backend `online = 0` and `state = 5` in one
//! transaction, then `libxl__ev_devstate_wait` for Closed; `libxl__device_destroy`: the
//! backend directory, the libxl copy, and the frontend directory are removed, then empty
//! parents via `libxl__xs_path_cleanup`).
//!
//! xensim differs: libxl's wait has a 10 s timeout (`LIBXL_DESTROY_TIMEOUT`) after which
//! it removes the device anyway; xensim's drivers always answer, so there is none.
//!
//! # Invariants
//! - `devices[dom]` lists exactly the device directories written for `dom` and not yet
//!   removed.

use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::ids::DomId;
use crate::io::xenbus::XenbusState;
use crate::toolstack::xs_tree::{DeviceAdd, Reqs, XsReq};

impl Hypervisor {
    /// The toolstack wrote these devices' directories.
    pub(crate) fn xenbus_devices_added<P: crate::platform::Platform + ?Sized>(
        &mut self,
        dom: DomId,
        devices: &[DeviceAdd],
        _p: &mut P,
    ) {
        self.devices
            .entry(dom)
            .or_default()
            .extend_from_slice(devices);
    }

    /// Removes every device directory of `dom` (backend, libxl copy, frontend) and the
    /// backend parents left empty. Returns the number of XenStore requests.
    pub(crate) fn xenbus_destroy(&mut self, dom: DomId) -> u32 {
        let devices = self.devices.remove(&dom).unwrap_or_default();
        let mut count = 0u32;
        for device in &devices {
            let mut reqs = Reqs::default();
            for path in [
                device.backend_path(),
                device.libxl_path(),
                device.frontend_path(),
            ] {
                reqs.0.push(XsReq::Rm { path });
            }
            count = count.saturating_add(super::xs_tool::run_reqs(
                &mut self.xenstore,
                self.xs_tool,
                None,
                &reqs,
            ));
            count = count.saturating_add(self.xs_path_cleanup(&device.backend_path()));
        }
        count
    }

    /// `libxl__xs_path_cleanup` after the leaf is gone: each parent with no children and
    /// no value goes, up to the backend domain's home. Returns the requests made.
    fn xs_path_cleanup(&mut self, leaf: &str) -> u32 {
        let mut count = 0u32;
        let mut path = String::from(leaf);
        while let Some(slash) = path.rfind('/') {
            path.truncate(slash);
            if path.matches('/').count() <= 3 {
                break; // `/local/domain/<B>` itself stays.
            }
            count = count.saturating_add(1);
            let empty = self
                .xenstore
                .node(&path)
                .is_some_and(|n| n.has_no_children() && n.value().is_empty());
            if !empty {
                break;
            }
            let conn = self.xs_tool;
            let removed = self.xenstore.rm(conn, None, path.as_bytes());
            assert!(removed.is_ok(), "cleanup of {path} failed: {removed:?}");
            count = count.saturating_add(1);
        }
        count
    }

    /// `libxl__initiate_device_generic_remove` with `force` for every split device of
    /// `dom`, each in one transaction: the frontend directory goes, the backend gets
    /// `online = 0` and, unless already Closed, `state = 5`. Returns the requests made.
    pub(crate) fn xenbus_unplug_all(&mut self, dom: DomId) -> u32 {
        let ends: Vec<(String, String)> = self
            .xenbus
            .get(&dom)
            .map(|conns| {
                conns
                    .iter()
                    .map(|c| (c.front_path.clone(), c.back_path.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut count = 0u32;
        for (front, back) in ends {
            let state = alloc::format!("{back}/state");
            let closed = self
                .xenstore
                .node(&state)
                .is_some_and(|n| XenbusState::parse(n.value()) == XenbusState::Closed);
            let mut reqs = Reqs::default();
            reqs.0.push(XsReq::Rm { path: front });
            reqs.0.push(XsReq::Write {
                path: alloc::format!("{back}/online"),
                value: b"0".to_vec(),
            });
            if !closed {
                reqs.0.push(XsReq::Write {
                    path: state,
                    value: b"5".to_vec(),
                });
            }
            // The transaction also reads the backend's state.
            let txn = super::xs_tool::run_txn(&mut self.xenstore, self.xs_tool, &reqs);
            count = count.saturating_add(txn).saturating_add(1);
        }
        count
    }

    /// Device directories of `dom` the toolstack wrote.
    pub fn devices_of(&self, dom: DomId) -> &[DeviceAdd] {
        self.devices.get(&dom).map_or(&[], Vec::as_slice)
    }
}
