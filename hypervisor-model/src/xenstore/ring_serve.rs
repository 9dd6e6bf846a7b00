//! xenstored's end of the domain rings: one turn of the daemon on a ring whose event
//! channel fired, as the main loop of tools/xenstore/xenstored_core.c (Xen 4.17) runs it
//! for a domain connection: `handle_input` while `domain_can_read`, then `handle_output`
//! (`write_messages`) while `domain_can_write`.
//!
//! A ring with bad indices gets the connection ignored with `XENSTORE_ERROR_RINGIDX`
//! written to the page's `error`; a protocol error (a header announcing more than 4096
//! bytes) with `XENSTORE_ERROR_PROTO`. Either way nothing more is read or written on that
//! ring until the domain is introduced again.
//!
//! # Invariants
//! - Response bytes leave in queue order; a frame is never interleaved with another
//!   (`ring_out` holds the one being copied, `ring_out_used` how much of it went). Like
//!   cxenstored's `out_list` head, it still counts for the duplicate-event check.
//! - An ignored connection's ring is never touched by the daemon.

use alloc::vec::Vec;

use super::ring::{RingPage, XENSTORE_ERROR_RINGIDX};
use super::{Verdict, XenStore};
use crate::ids::XsConnId;

/// What one turn of xenstored on a ring did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RingTurn {
    /// Request bytes consumed.
    pub read_bytes: usize,
    /// Response bytes produced.
    pub written_bytes: usize,
    /// Request frames handled.
    pub requests: u64,
    /// xenstored notifies the guest (`xenevtchn_notify` after a read or a write).
    pub notify: bool,
    /// The connection was ignored during this turn, with this `error` value.
    pub ignored: Option<u32>,
}

impl XenStore {
    /// The ring page of `domid`'s connection.
    pub fn ring(&self, domid: u32) -> Option<&RingPage> {
        let conn = self.domain_conn(domid)?;
        self.conns.get(&conn)?.ring.as_ref()
    }

    /// The ring page of `domid`'s connection, for the guest's end.
    pub fn ring_mut(&mut self, domid: u32) -> Option<&mut RingPage> {
        let conn = self.domain_conn(domid)?;
        self.conns.get_mut(&conn)?.ring.as_mut()
    }

    /// One turn of xenstored on `domid`'s ring (its event channel fired): every request
    /// byte there is goes through the connection's decoder and handlers, then queued
    /// replies and events are copied into the response ring until it is full.
    pub fn service_ring(&mut self, domid: u32) -> RingTurn {
        let mut turn = RingTurn::default();
        let Some(conn) = self.domain_conn(domid) else {
            return turn;
        };
        let before = self.requests_handled;
        self.ring_input(conn, &mut turn);
        self.ring_output(conn, &mut turn);
        turn.requests = self.requests_handled.wrapping_sub(before);
        turn
    }

    /// `handle_input` while the request ring has bytes.
    fn ring_input(&mut self, conn: XsConnId, turn: &mut RingTurn) {
        let mut bytes = Vec::new();
        loop {
            let Some(k) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(page) = k.ring.as_mut().filter(|_| !k.ignored) else {
                return;
            };
            if !page.server_can_read() {
                return;
            }
            bytes.clear();
            if page.server_read(&mut bytes, usize::MAX).is_err() {
                self.ignore_ring(conn, XENSTORE_ERROR_RINGIDX, turn);
                return;
            }
            turn.read_bytes += bytes.len();
            turn.notify = true;
            if let Verdict::Disconnect { ring_error } = self.feed(conn, &bytes) {
                self.ignore_ring(conn, ring_error, turn);
                return;
            }
        }
    }

    /// `handle_output`: queued frames into the response ring, in order, while it has room.
    fn ring_output(&mut self, conn: XsConnId, turn: &mut RingTurn) {
        loop {
            let Some(k) = self.conns.get_mut(&conn) else {
                return;
            };
            if k.ignored {
                return;
            }
            if k.ring_out_used == k.ring_out.len() {
                let Some(frame) = k.out.pop_front() else {
                    return;
                };
                k.ring_out.clear();
                k.ring_out_used = 0;
                frame.encode_into(&mut k.ring_out);
            }
            let Some(page) = k.ring.as_mut() else {
                return;
            };
            match page.server_write(&k.ring_out[k.ring_out_used..]) {
                Err(_) => {
                    self.ignore_ring(conn, XENSTORE_ERROR_RINGIDX, turn);
                    return;
                }
                Ok(0) => return,
                Ok(n) => {
                    k.ring_out_used += n;
                    turn.written_bytes += n;
                    turn.notify = true;
                }
            }
        }
    }

    /// `ignore_connection(conn, err)` for a ring: stop serving, record `err` on the page.
    fn ignore_ring(&mut self, conn: XsConnId, err: u32, turn: &mut RingTurn) {
        self.ignore_connection(conn);
        if let Some(page) = self.conns.get_mut(&conn).and_then(|k| k.ring.as_mut()) {
            page.error = err;
        }
        turn.ignored = Some(err);
    }

    /// The ring invariants of every domain connection.
    pub(super) fn check_rings(&self, out: &mut Vec<crate::sched::Violation>) {
        for (id, k) in &self.conns {
            if let (Some(page), Some(domid)) = (&k.ring, k.domid) {
                page.check(&alloc::format!("dom{domid} ring ({id:?})"), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::vec::Vec;

    use crate::xenstore::perms::{Perm, PERM_READ};
    use crate::xenstore::ring::{RingPage, XENSTORE_RING_SIZE};
    use crate::xenstore::wire::{FrameDecoder, MsgType};
    use crate::xenstore::{XenStore, XsConfig};

    /// Every frame a guest reads off `page`.
    fn drain(page: &mut RingPage, dec: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut bytes = Vec::new();
        page.client_read(&mut bytes).expect("good ring");
        dec.feed(&bytes);
        core::iter::from_fn(|| dec.next_frame().expect("frame"))
            .filter(|f| f.msg_type() == Some(MsgType::WatchEvent))
            .map(|f| f.payload)
            .collect()
    }

    #[test]
    fn an_event_half_way_into_the_ring_still_absorbs_its_duplicate() {
        let mut xs = XenStore::new(XsConfig::default());
        let d0 = xs.dom0_conn();
        xs.domain_created(3);
        let g = xs.introduce_domain(3, 1).expect("introduce");
        xs.write(d0, None, b"/w", b"").expect("write");
        let readable = [Perm::new(0, 0), Perm::new(3, PERM_READ)];
        xs.set_perms(d0, None, b"/w", &readable).expect("perms");
        xs.watch(g, b"/w", b"t").expect("watch");
        // Events the guest does not read fill its response ring; the last one is cut.
        let mut n = 0;
        while n < 200 {
            xs.write(d0, None, format!("/w/node{n}").as_bytes(), b"")
                .expect("write");
            n += 1;
            xs.service_ring(3);
            let ring = xs.ring(3).expect("ring");
            if ring.indices()[3] >= XENSTORE_RING_SIZE {
                break;
            }
        }
        let last = n - 1;
        let k = xs.conns.get(&g).expect("conn");
        assert!(
            k.ring_out_used < k.ring_out.len(),
            "the last event is half in"
        );
        // The same change again: its event is already pending and is dropped.
        xs.write(d0, None, format!("/w/node{last}").as_bytes(), b"x")
            .expect("write");
        let mut dec = FrameDecoder::new();
        let mut events = Vec::new();
        for _ in 0..4 {
            events.extend(drain(xs.ring_mut(3).expect("ring"), &mut dec));
            xs.service_ring(3);
        }
        let want = format!("/w/node{last}\0t\0").into_bytes();
        assert_eq!(events.iter().filter(|e| **e == want).count(), 1);
        assert_eq!(events.len(), n + 1, "the initial event and one per node");
    }
}
