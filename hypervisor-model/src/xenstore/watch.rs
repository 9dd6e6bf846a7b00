//! Watches: registration, removal, and firing events to every connection whose watch
//! matches a modified path and who may see it.
//!
//! Follows tools/xenstore/xenstored_watch.c of Xen 4.17 (`do_watch`, `do_unwatch`,
//! `fire_watches`, `watch_permitted`, `check_watch_path`, `get_watch_path`) and
//! xenstored_core.c (`send_event`, duplicate suppression) and xenstored_domain.c
//! (`check_perms_special`, `domain_watch`).
//!
//! # Invariants
//! - A connection never holds two watches with the same path and token.
//! - Events go to connections in connection order, and within one connection in watch
//!   registration order; an event identical to one still queued is dropped unless its path
//!   is special (`@...`).
//!
//! Left out: 4.17 has no watch depth; a third `WATCH` argument is `EINVAL`.

use alloc::string::String;
use alloc::vec::Vec;

use super::access::Caller;
use super::perms::{perm_for, Perm, Who, PERM_READ};
use super::wire::{Frame, MsgType, HEADER_BYTES};
use super::{path, XenStore, XsError};
use crate::ids::XsConnId;

/// One registered watch (`struct watch`).
#[derive(Clone, Debug)]
pub(super) struct Watch {
    /// Canonical path (absolute or special).
    pub node: String,
    pub token: Vec<u8>,
    /// The home prefix to strip from event paths when registered relative.
    pub relative: Option<String>,
}

impl XenStore {
    /// `XS_WATCH` as a typed call: registers and queues the initial event.
    pub fn watch(&mut self, conn: XsConnId, path: &[u8], token: &[u8]) -> Result<(), XsError> {
        let (event_path, token) = self.add_watch(conn, path, token)?;
        self.send_event(conn, &event_path, &token);
        Ok(())
    }

    /// Registers a watch; returns the initial event's path and token (sent after the ack).
    pub(super) fn add_watch(
        &mut self,
        conn: XsConnId,
        raw: &[u8],
        token: &[u8],
    ) -> Result<(String, Vec<u8>), XsError> {
        let c = self.caller(conn, None)?;
        let (node, relative) = if path::is_special(raw) {
            if raw.len() > path::XENSTORE_REL_PATH_MAX {
                return Err(XsError::Einval);
            }
            (path::lossy_string(raw), None)
        } else {
            let canon = self.canon(&c, raw);
            let max = self.cfg.quotas.path_bytes_max as usize;
            if !path::is_valid_node_path(canon.as_bytes(), max) {
                return Err(XsError::Einval);
            }
            let rel = (raw.first() != Some(&b'/')).then(|| self.home(&c));
            (canon, rel)
        };
        let max = self.cfg.quotas.watches_count_max as usize;
        let k = self.conns.get_mut(&conn).ok_or(XsError::Enoent)?;
        if k.watches.iter().any(|w| w.node == node && w.token == token) {
            return Err(XsError::Eexist);
        }
        // Xen 4.17 answers E2BIG here and compares with `>` (one extra watch fits).
        if !c.who.privileged && max != 0 && k.watches.len() > max {
            return Err(XsError::E2big);
        }
        let event = String::from(path::event_path(&node, relative.as_deref()));
        self.watch_index.add(&node, conn);
        k.watches.push(Watch {
            node,
            token: token.to_vec(),
            relative,
        });
        Ok((event, token.to_vec()))
    }

    /// `XS_UNWATCH`: removes exactly the matching watch.
    pub fn unwatch(&mut self, conn: XsConnId, raw: &[u8], token: &[u8]) -> Result<(), XsError> {
        let c = self.caller(conn, None)?;
        let node = self.canon(&c, raw);
        let k = self.conns.get_mut(&conn).ok_or(XsError::Enoent)?;
        match k
            .watches
            .iter()
            .position(|w| w.node == node && w.token == token)
        {
            Some(i) => {
                let gone = k.watches.remove(i);
                self.watch_index.remove(&gone.node, conn);
                Ok(())
            }
            None => Err(XsError::Enoent),
        }
    }

    /// `XS_RESET_WATCHES`: drops every watch and open transaction of the connection.
    pub fn reset_watches(&mut self, conn: XsConnId) -> Result<(), XsError> {
        if !self.conns.contains_key(&conn) {
            return Err(XsError::Enoent);
        }
        self.drop_conn_state(conn);
        Ok(())
    }

    /// `conn_delete_all_watches` + `conn_delete_all_transactions`.
    pub(super) fn drop_conn_state(&mut self, conn: XsConnId) {
        if let Some(k) = self.conns.get_mut(&conn) {
            for w in k.watches.drain(..) {
                self.watch_index.remove(&w.node, conn);
            }
            k.txs.clear();
        }
    }

    /// Watches of a connection as (path as the client registered it, token).
    pub fn watches(&self, conn: XsConnId) -> Vec<(String, Vec<u8>)> {
        let Some(k) = self.conns.get(&conn) else {
            return Vec::new();
        };
        k.watches
            .iter()
            .map(|w| {
                let p = match &w.relative {
                    Some(home) => path::event_path(&w.node, Some(home)),
                    None => &w.node,
                };
                (String::from(p), w.token.clone())
            })
            .collect()
    }

    /// `fire_watches`: inside a transaction the event waits for commit; otherwise every
    /// matching watch of every permitted connection gets one event. `node` is the modified
    /// node's permissions and generation when the caller still has them (a removed node);
    /// `old` the permissions before a `SET_PERMS`.
    pub(super) fn fire_watches(
        &mut self,
        c: &Caller,
        name: &str,
        node: Option<(&[Perm], u64)>,
        exact: bool,
        old: Option<&[Perm]>,
    ) {
        if let Some(t) = self.txn_mut(c) {
            t.queue_watch(name, exact);
            return;
        }
        let mut events: Vec<(XsConnId, String, Vec<u8>)> = Vec::new();
        // Only connections the index names can hold a matching watch; they come in
        // ascending order, as the walk over every connection visited them.
        let mut candidates = Vec::new();
        self.watch_index.conns_for(name, exact, &mut candidates);
        for id in candidates {
            let Some(k) = self.conns.get(&id) else {
                continue;
            };
            let mut permitted = None;
            for w in &k.watches {
                let hit = if exact {
                    w.node == name
                } else {
                    path::is_at_or_below(name, &w.node)
                };
                if !hit {
                    continue;
                }
                let ok = *permitted.get_or_insert_with(|| self.may_see(id, name, node, old));
                if ok {
                    let p = path::event_path(name, w.relative.as_deref());
                    events.push((id, String::from(p), w.token.clone()));
                }
            }
        }
        for (id, p, token) in events {
            self.send_event(id, &p, &token);
        }
    }

    /// `watch_permitted` / `check_perms_special` for connection `id`.
    fn may_see(
        &self,
        id: XsConnId,
        name: &str,
        node: Option<(&[Perm], u64)>,
        old: Option<&[Perm]>,
    ) -> bool {
        let Some(who) = self.who(id) else {
            return false;
        };
        if path::is_special(name.as_bytes()) {
            return self.special_readable(&who, name);
        }
        if let Some(old) = old {
            if self.perm_of(&who, old, u64::MAX) & PERM_READ != 0 {
                return true;
            }
        }
        let own = match node {
            Some((perms, gen)) => Some(self.perm_of(&who, perms, gen) & PERM_READ != 0),
            None => self.can_read_committed(&who, name),
        };
        match own {
            None => false,
            Some(true) => true,
            Some(false) => self
                .can_read_committed(&who, path::parent(name))
                .unwrap_or(false),
        }
    }

    fn special_readable(&self, who: &Who, name: &str) -> bool {
        let perms = match name {
            "@releaseDomain" => &self.release_perms,
            "@introduceDomain" => &self.introduce_perms,
            _ => return false,
        };
        perm_for(who, perms, |_| true) & PERM_READ != 0
    }

    /// `send_event`: queues `path|token|` unless too long or a duplicate of a queued one.
    pub(super) fn send_event(&mut self, conn: XsConnId, path_str: &str, token: &[u8]) {
        let Some(frame) = Frame::watch_event(path_str.as_bytes(), token) else {
            return;
        };
        let Some(k) = self.conns.get_mut(&conn) else {
            return;
        };
        if !path::is_special(path_str.as_bytes()) {
            let event = MsgType::WatchEvent.raw();
            // The frame half-way into a ring is still pending, as in cxenstored.
            let in_ring = k.ring_out_used < k.ring_out.len()
                && k.ring_out.get(..4) == Some(&event.to_le_bytes()[..])
                && k.ring_out.get(HEADER_BYTES..) == Some(&frame.payload[..]);
            let dup = in_ring || k.out.holds_event(&frame.payload);
            if dup {
                return;
            }
        }
        k.out.push_back(frame);
        self.mark_output(conn);
    }
}
