//! A guest kernel's xenbus on its XenStore ring: requests go into the ring page's
//! request ring, xenstored takes its turn when the store event channel fires, replies and
//! watch events come back through the response ring (Linux
//! drivers/xen/xenbus/xenbus_comms.c `xb_write`/`xb_read`/`process_msg`, xenbus_xs.c
//! `xs_talkv`).
//!
//! Each end notifies the other over the store channel when Linux or xenstored would
//! (`RingPage::client_write`/`client_read`, `RingTurn::notify`); a notification is a real
//! `EVTCHNOP_send`, delivered at the end of the core input, and wakes the vCPU bound to
//! the receiving port. For a request, xenstored's turn runs at once and the reply comes
//! back in the same core step; every request it handles is charged to dom0 as xenstored's
//! CPU work (`xenstored.rs`). Watch events for the guest's in-process drivers are written
//! into the ring when that work is done ([`Hypervisor::xs_ring_driver_events`]).
//!
//! Errors: a ring with bad indices or a connection xenstored stopped serving is a
//! [`XsRingError`] for the caller, never a panic; the guest's xenbus is then failed until
//! the domain is introduced again.
//!
//! # Invariants
//! - `xs_guests[dom]` exists only for a domain xenstored knows as introduced.
//! - Replies are matched by `req_id`; watch events are kept in arrival order.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::xenstored::HeldEvent;
use super::Hypervisor;
use crate::evtchn::Notify;
use crate::ids::{DomId, EvtchnPort};
use crate::platform::Platform;
use crate::xenstore::ring::BadIndexes;
use crate::xenstore::wire::{DecodeError, Frame, FrameDecoder, MsgType};

/// Why a guest's XenStore request got no reply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum XsRingError {
    /// The domain has no ring connection (not introduced, or released).
    NotConnected,
    /// The guest found the response ring's indices bad (and reset them).
    BadIndexes(BadIndexes),
    /// xenstored stopped serving the ring; the page's `error` value.
    Ignored(u32),
    /// The response bytes did not decode.
    Decode(DecodeError),
    /// The ring went quiet before the reply arrived.
    NoReply,
}

/// The guest end: bytes not yet in the request ring, the response decoder, and what
/// arrived.
#[derive(Debug, Default)]
pub struct GuestXenbus {
    tx: Vec<u8>,
    rx: FrameDecoder,
    next_req_id: u32,
    replies: VecDeque<Frame>,
    events: VecDeque<Frame>,
    pub(super) failed: Option<XsRingError>,
}

impl Hypervisor {
    /// One request of `dom`'s kernel (`xs_talkv`) over its ring: the reply frame, which may
    /// be an `XS_ERROR` frame. Watch events that arrive meanwhile are kept for
    /// [`Hypervisor::xs_guest_events`]; the store-channel notifications are delivered.
    pub fn xs_guest_request<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        msg_type: MsgType,
        tx_id: u32,
        payload: &[u8],
        p: &mut P,
    ) -> Result<Frame, XsRingError> {
        let reply = self.xs_guest_exchange(dom, msg_type, tx_id, payload);
        self.xs_deliver_notifies(p);
        reply
    }

    /// [`Hypervisor::xs_guest_request`] without delivering the notifications: they wait
    /// in `xs_notifies` for the end of the input.
    pub(crate) fn xs_guest_exchange(
        &mut self,
        dom: DomId,
        msg_type: MsgType,
        tx_id: u32,
        payload: &[u8],
    ) -> Result<Frame, XsRingError> {
        let raw = u32::from(dom.raw());
        if self.xenstore.ring(raw).is_none() {
            return Err(XsRingError::NotConnected);
        }
        let client = self.xs_guests.entry(dom).or_default();
        if let Some(e) = client.failed {
            return Err(e);
        }
        let req_id = client.next_req_id;
        client.next_req_id = client.next_req_id.wrapping_add(1);
        Frame::request(msg_type, req_id, tx_id, payload).encode_into(&mut client.tx);
        self.xs_ring_pump(dom)?;
        let client = self.xs_guests.entry(dom).or_default();
        let at = client
            .replies
            .iter()
            .position(|f| f.header.req_id == req_id);
        at.and_then(|i| client.replies.remove(i))
            .ok_or(XsRingError::NoReply)
    }

    /// Watch events `dom`'s xenbus received, oldest first.
    pub fn xs_guest_events(&mut self, dom: DomId) -> Vec<Frame> {
        self.xs_guests
            .get_mut(&dom)
            .map(|c| c.events.drain(..).collect())
            .unwrap_or_default()
    }

    /// xenstored's turn on `dom`'s ring once its work ran: what it queued goes into the
    /// ring, the guest reads it, and the events for the guest's in-process drivers (tokens
    /// starting with `prefix`) are handed over in arrival order; others stay with the
    /// guest's xenbus.
    pub(crate) fn xs_ring_driver_events(&mut self, dom: DomId, prefix: &[u8]) -> Vec<HeldEvent> {
        let raw = u32::from(dom.raw());
        let Some(conn) = self.xenstore.domain_conn(raw) else {
            return Vec::new();
        };
        // A failure is kept in the guest's xenbus and reported at its next request.
        let _ = self.xs_ring_pump(dom);
        let Some(client) = self.xs_guests.get_mut(&dom) else {
            return Vec::new();
        };
        let mut held = Vec::new();
        client.events.retain(|frame| {
            let mut parts = crate::xenstore::wire::split_strings(&frame.payload);
            let (Some(path), Some(token)) = (parts.next(), parts.next()) else {
                return true;
            };
            if !token.starts_with(prefix) {
                return true;
            }
            held.push(HeldEvent {
                conn,
                path: crate::xenstore::path::lossy_string(path),
                token: token.to_vec(),
            });
            false
        });
        held
    }

    /// Delivers the store-channel notifications the ring ends made during this input.
    pub(crate) fn xs_deliver_notifies<P: Platform + ?Sized>(&mut self, p: &mut P) {
        if self.xs_notifies.is_empty() {
            return;
        }
        for n in core::mem::take(&mut self.xs_notifies) {
            self.deliver_notify(Some(n), p);
        }
    }

    /// Moves bytes both ways until neither end can act: the guest writes what fits,
    /// xenstored takes its turn (its requests are charged to dom0), the guest reads what
    /// came back. Notifications wait in `xs_notifies`.
    fn xs_ring_pump(&mut self, dom: DomId) -> Result<(), XsRingError> {
        let raw = u32::from(dom.raw());
        let mut notes: Vec<Notify> = Vec::new();
        let result = loop {
            let wrote = match self.xs_guest_write(dom, &mut notes) {
                Ok(wrote) => wrote,
                Err(e) => break Err(e),
            };
            let turn = self.xenstore.service_ring(raw);
            self.xsd_count(u32::try_from(turn.requests).unwrap_or(u32::MAX));
            if turn.notify {
                notes.extend(self.store_send(dom, true));
            }
            if let Some(err) = turn.ignored {
                break Err(XsRingError::Ignored(err));
            }
            let read = match self.xs_guest_read(dom, &mut notes) {
                Ok(read) => read,
                Err(e) => break Err(e),
            };
            if !wrote && !read && turn.read_bytes == 0 && turn.written_bytes == 0 {
                break Ok(());
            }
        };
        self.xs_notifies.extend(notes);
        if let Err(e) = result {
            if let Some(client) = self.xs_guests.get_mut(&dom) {
                client.failed = Some(e);
                client.tx.clear();
            }
        }
        result
    }

    /// `xb_write` of the bytes waiting: true if any went in.
    fn xs_guest_write(&mut self, dom: DomId, notes: &mut Vec<Notify>) -> Result<bool, XsRingError> {
        let raw = u32::from(dom.raw());
        let client = self.xs_guests.entry(dom).or_default();
        if client.tx.is_empty() {
            return Ok(false);
        }
        let page = self
            .xenstore
            .ring_mut(raw)
            .ok_or(XsRingError::NotConnected)?;
        let copied = page
            .client_write(&client.tx)
            .map_err(XsRingError::BadIndexes)?;
        client.tx.drain(..copied.bytes);
        if copied.notify {
            notes.extend(self.store_send(dom, false));
        }
        Ok(copied.bytes > 0)
    }

    /// `xb_read` + `process_msg`: response bytes into frames, replies apart from events.
    /// True if any byte moved.
    fn xs_guest_read(&mut self, dom: DomId, notes: &mut Vec<Notify>) -> Result<bool, XsRingError> {
        let raw = u32::from(dom.raw());
        let mut bytes = Vec::new();
        let copied = match self.xenstore.ring_mut(raw) {
            Some(page) => page
                .client_read(&mut bytes)
                .map_err(XsRingError::BadIndexes)?,
            None => return Err(XsRingError::NotConnected),
        };
        if copied.notify {
            // Room again for xenstored.
            notes.extend(self.store_send(dom, false));
        }
        let client = self.xs_guests.entry(dom).or_default();
        client.rx.feed(&bytes);
        loop {
            match client.rx.next_frame() {
                Ok(Some(frame)) if frame.msg_type() == Some(MsgType::WatchEvent) => {
                    client.events.push_back(frame);
                }
                Ok(Some(frame)) => client.replies.push_back(frame),
                Ok(None) => return Ok(copied.bytes > 0),
                Err(e) => return Err(XsRingError::Decode(e)),
            }
        }
    }

    /// `EVTCHNOP_send` on the store channel: by the guest (`from_xenstored` false) on its
    /// store port, or by xenstored on dom0's end. `None` if the channel is not bound.
    fn store_send(&mut self, dom: DomId, from_xenstored: bool) -> Option<Notify> {
        let (sender, port) = if dom == DomId::DOM0 {
            // dom0's kernel and xenstored share a loopback channel (`xenbus_backend`).
            let (kernel, daemon) = self.dom0_store?;
            (
                DomId::DOM0,
                if from_xenstored { daemon } else { kernel }.raw(),
            )
        } else {
            let build = self.build_states.get(&dom)?;
            if from_xenstored {
                (DomId::DOM0, build.dom0_store_port?)
            } else {
                (dom, build.store_port)
            }
        };
        self.evtchn
            .send(sender, EvtchnPort::new(port))
            .ok()
            .flatten()
    }

    /// The domain was introduced again or released: its xenbus starts afresh.
    pub(crate) fn xs_guest_reset(&mut self, dom: DomId) {
        self.xs_guests.remove(&dom);
    }
}
