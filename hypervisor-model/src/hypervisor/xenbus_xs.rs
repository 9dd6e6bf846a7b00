//! The split drivers' XenStore calls, made by the driver's kernel over its ring page
//! (`xs_ring.rs`): a backend's through dom0's ring (dom0's kernel talks to the local
//! xenstored over a ring and a loopback store channel), a frontend's through its guest's,
//! as Linux's xenbus does (`xenbus_read`, `xenbus_write`,
//! `xenbus_transaction_start/end`, `register_xenbus_watch`). A guest that was never
//! introduced (a create that failed before `XS_INTRODUCE`) has no ring; its frontend is
//! then served on the toolstack's connection.
//!
//! Every call is one request xenstored handles and charges to dom0 (`xenstored.rs`):
//! typed calls count themselves here, ring requests are counted by xenstored's turn.
//!
//! # Invariants
//! - A driver's request reaches xenstored as wire bytes through its kernel's ring whenever
//!   that kernel is introduced (dom0 always is); only the toolstack fallback for a guest
//!   never introduced uses typed calls.

use alloc::vec::Vec;

use super::xs_ring::XsRingError;
use super::Hypervisor;
use crate::ids::{DomId, XsConnId, XsTxId};
use crate::xenstore::wire::MsgType;
use crate::xenstore::XsError;

/// Where a driver's XenStore requests go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DriverXs {
    /// dom0's kernel (its backends), over dom0's ring.
    Dom0,
    /// This guest's kernel (its frontends, or a driver domain's backends), over its ring.
    Guest(DomId),
}

impl DriverXs {
    /// The xenbus of `dom`'s kernel: dom0's, or a guest's (a frontend, or a driver
    /// domain's backend).
    pub(crate) fn of(dom: DomId) -> DriverXs {
        if dom == DomId::DOM0 {
            DriverXs::Dom0
        } else {
            DriverXs::Guest(dom)
        }
    }

    /// The kernel whose xenbus makes the request.
    fn kernel(self) -> DomId {
        match self {
            DriverXs::Dom0 => DomId::DOM0,
            DriverXs::Guest(dom) => dom,
        }
    }
}

/// `path\0` (or `path\0value` for a write).
fn args(parts: &[&[u8]], last_nul: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        out.extend_from_slice(part);
        if i + 1 < parts.len() || last_nul {
            out.push(0);
        }
    }
    out
}

impl Hypervisor {
    /// The connection of a typed call: the toolstack's for a guest without a ring. `None`
    /// if the driver's kernel has a ring (dom0 always has): its requests go through it.
    fn driver_typed_conn(&self, who: DriverXs) -> Option<XsConnId> {
        let raw = u32::from(who.kernel().raw());
        match self.xenstore.ring(raw) {
            Some(_) => None,
            None => Some(self.xs_tool),
        }
    }

    /// One wire request of a guest's frontend over its ring: the reply payload, or the
    /// error xenstored (or the ring) gave.
    fn driver_ring_request(
        &mut self,
        dom: DomId,
        msg: MsgType,
        tx: Option<XsTxId>,
        payload: &[u8],
    ) -> Result<Vec<u8>, XsError> {
        let tx_id = tx.map_or(0, XsTxId::raw);
        let reply = self
            .xs_guest_exchange(dom, msg, tx_id, payload)
            // A broken ring or an ignored connection: the driver's call fails with EIO.
            .map_err(|_: XsRingError| XsError::Eio)?;
        if reply.msg_type() == Some(MsgType::Error) {
            return Err(XsError::from_wire_payload(&reply.payload).unwrap_or(XsError::Eio));
        }
        Ok(reply.payload)
    }

    /// `xenbus_read`.
    pub(crate) fn driver_read(&mut self, who: DriverXs, path: &str) -> Result<Vec<u8>, XsError> {
        match self.driver_typed_conn(who) {
            Some(conn) => {
                self.xsd_count(1);
                self.xenstore.read(conn, None, path.as_bytes())
            }
            None => self.driver_ring_request(
                who.kernel(),
                MsgType::Read,
                None,
                &args(&[path.as_bytes()], true),
            ),
        }
    }

    /// `xenbus_write`.
    pub(crate) fn driver_write(
        &mut self,
        who: DriverXs,
        tx: Option<XsTxId>,
        path: &str,
        value: &[u8],
    ) -> Result<(), XsError> {
        match self.driver_typed_conn(who) {
            Some(conn) => {
                self.xsd_count(1);
                self.xenstore.write(conn, tx, path.as_bytes(), value)
            }
            None => {
                let payload = args(&[path.as_bytes(), value], false);
                self.driver_ring_request(who.kernel(), MsgType::Write, tx, &payload)
                    .map(|_| ())
            }
        }
    }

    /// `xenbus_transaction_start`.
    pub(crate) fn driver_tx_start(&mut self, who: DriverXs) -> Result<XsTxId, XsError> {
        match self.driver_typed_conn(who) {
            Some(conn) => {
                self.xsd_count(1);
                self.xenstore.transaction_start(conn, None)
            }
            None => {
                let reply =
                    self.driver_ring_request(who.kernel(), MsgType::TransactionStart, None, b"\0")?;
                let text = reply.strip_suffix(b"\0").unwrap_or(&reply);
                let id = crate::cnum::c_strtol(text, 10).0;
                u32::try_from(id)
                    .ok()
                    .and_then(XsTxId::new)
                    .ok_or(XsError::Eio)
            }
        }
    }

    /// `xenbus_transaction_end`.
    pub(crate) fn driver_tx_end(
        &mut self,
        who: DriverXs,
        tx: XsTxId,
        commit: bool,
    ) -> Result<(), XsError> {
        match self.driver_typed_conn(who) {
            Some(conn) => {
                self.xsd_count(1);
                self.xenstore.transaction_end(conn, Some(tx), commit)
            }
            None => {
                let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
                self.driver_ring_request(who.kernel(), MsgType::TransactionEnd, Some(tx), arg)
                    .map(|_| ())
            }
        }
    }

    /// `register_xenbus_watch` (`XS_WATCH`); `unwatch` for `unregister_xenbus_watch`.
    pub(crate) fn driver_watch(
        &mut self,
        who: DriverXs,
        path: &str,
        token: &[u8],
        unwatch: bool,
    ) -> Result<(), XsError> {
        match self.driver_typed_conn(who) {
            Some(conn) => {
                self.xsd_count(1);
                if unwatch {
                    self.xenstore.unwatch(conn, path.as_bytes(), token)
                } else {
                    self.xenstore.watch(conn, path.as_bytes(), token)
                }
            }
            None => {
                let msg = if unwatch {
                    MsgType::Unwatch
                } else {
                    MsgType::Watch
                };
                let payload = args(&[path.as_bytes(), token], true);
                self.driver_ring_request(who.kernel(), msg, None, &payload)
                    .map(|_| ())
            }
        }
    }
}
