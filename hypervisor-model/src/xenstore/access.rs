//! Node access inside and outside transactions: the one place that reads, writes and
//! deletes node records, records what a transaction touched, and keeps the per-domain node
//! counts.
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17 (`read_node`, `write_node`,
//! `write_node_raw`, `get_node`, `ask_parents`, `errno_from_parents`) and
//! xenstored_transaction.c (`access_node`) and xenstored_domain.c (`domain_entry_inc`,
//! `domain_entry_dec`, `domain_adjust_node_perms`, `chk_domain_generation`).
//!
//! # Invariants
//! - Every modification takes a fresh global generation (`++generation`).
//! - Inside a transaction nothing here touches the committed tree: reads fall through to it
//!   for nodes the transaction has not touched yet, and the first touch copies the node.

use alloc::string::String;

use super::perms::{perm_for, Perm, Who, PERM_READ};
use super::tree::Node;
use super::txn::{Accessed, Transaction};
use super::{path, XenStore, XsError};
use crate::ids::{XsConnId, XsTxId};

/// Who runs an operation and in which transaction (`conn` and `conn->transaction`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Caller {
    /// `None` for the daemon itself (domain cleanup: cxenstored passes `conn = NULL`).
    pub conn: Option<XsConnId>,
    pub who: Who,
    pub tx: Option<u32>,
}

impl Caller {
    /// The daemon acting on its own.
    pub const DAEMON: Caller = Caller {
        conn: None,
        who: Who::PRIVILEGED,
        tx: None,
    };
}

/// What a delete access found (`access_node(..., NODE_ACCESS_DELETE)`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum DeleteAccess {
    Deleted,
    /// First touch inside a transaction: nothing to delete there.
    NothingToDelete,
}

impl XenStore {
    /// Builds the caller for a request on `conn` with header transaction `tx`
    /// (`transaction_lookup`: an unknown id is `ENOENT`).
    pub(super) fn caller(&self, conn: XsConnId, tx: Option<XsTxId>) -> Result<Caller, XsError> {
        let who = self.who(conn).ok_or(XsError::Enoent)?;
        let tx = tx.map(XsTxId::raw);
        if let Some(id) = tx {
            let open = self
                .conns
                .get(&conn)
                .is_some_and(|c| c.txs.contains_key(&id));
            if !open {
                return Err(XsError::Enoent);
            }
        }
        Ok(Caller {
            conn: Some(conn),
            who,
            tx,
        })
    }

    /// The connection's home for relative paths (`get_implicit_path`).
    pub(super) fn home(&self, c: &Caller) -> String {
        let domid = c
            .conn
            .and_then(|id| self.conns.get(&id))
            .and_then(|conn| conn.domid)
            .unwrap_or(super::PRIV_DOMID);
        path::domain_home(domid)
    }

    pub(super) fn txn(&self, c: &Caller) -> Option<&Transaction> {
        let conn = self.conns.get(&c.conn?)?;
        conn.txs.get(&c.tx?)
    }

    pub(super) fn txn_mut(&mut self, c: &Caller) -> Option<&mut Transaction> {
        let conn = self.conns.get_mut(&c.conn?)?;
        conn.txs.get_mut(&c.tx?)
    }

    /// The node as `c` sees it: its transaction's copy if it touched the node, else the
    /// committed one.
    pub(super) fn view(&self, c: &Caller, path: &str) -> Option<&Node> {
        if let Some(t) = self.txn(c) {
            if let Some(entry) = t.entry(path) {
                return entry.node.as_ref();
            }
        }
        self.tree.get(path)
    }

    /// Whether the domain named by a non-owner entry existed when a node of generation
    /// `node_gen` was written (`chk_domain_generation`).
    pub(super) fn entry_live(&self, p: &Perm, node_gen: u64) -> bool {
        self.domains
            .get(&p.domid)
            .is_some_and(|d| d.generation <= node_gen)
    }

    /// `perm_for_conn` on a node, with entries of younger or dead domains ignored.
    pub(super) fn perm_of(&self, who: &Who, perms: &[Perm], node_gen: u64) -> u8 {
        perm_for(who, perms, |p| self.entry_live(p, node_gen))
    }

    /// `domain_adjust_node_perms`: flags entries whose domain is gone as ignored.
    pub(super) fn adjust_perms(&self, perms: &mut [Perm], node_gen: u64) {
        for p in perms.iter_mut().skip(1) {
            if !p.ignore && !self.entry_live(p, node_gen) {
                p.ignore = true;
            }
        }
    }

    /// Records a read of `path` in the caller's transaction (`access_node` for a read):
    /// the first touch remembers the generation seen and copies the node.
    pub(super) fn touch_read(&mut self, c: &Caller, path: &str) -> Result<(), XsError> {
        let Some(t) = self.txn(c) else {
            return Ok(());
        };
        if t.entry(path).is_some() {
            return Ok(());
        }
        self.check_tx_nodes_quota(c)?;
        let node = self.tree.get(path).cloned().map(|mut n| {
            let gen = n.generation;
            self.adjust_perms(&mut n.perms, gen);
            n
        });
        let entry = Accessed {
            path: String::from(path),
            generation: node.as_ref().map(|n| n.generation),
            check_gen: true,
            modified: false,
            orig_perms: node.as_ref().map(|n| n.perms.clone()),
            node,
            fire: None,
        };
        if let Some(t) = self.txn_mut(c) {
            t.push(entry);
        }
        Ok(())
    }

    fn check_tx_nodes_quota(&mut self, c: &Caller) -> Result<(), XsError> {
        let max = self.cfg.quotas.transaction_nodes_count_max as usize;
        let unprivileged = !c.who.privileged;
        if let Some(t) = self.txn_mut(c) {
            if unprivileged && max != 0 && t.accessed_count() >= max {
                t.fail = true;
                return Err(XsError::Enospc);
            }
        }
        Ok(())
    }

    /// `read_node`: records the access and returns the node, `Ok(None)` if absent.
    pub(super) fn read_node(&mut self, c: &Caller, path: &str) -> Result<Option<&Node>, XsError> {
        self.touch_read(c, path)?;
        Ok(self.view(c, path))
    }

    /// `write_node`: gives `node` a new generation and stores it (in the transaction when
    /// there is one). The `node-size` quota applies to unprivileged callers.
    pub(super) fn write_node(
        &mut self,
        c: &Caller,
        path: &str,
        mut node: Node,
        no_quota_check: bool,
    ) -> Result<(), XsError> {
        // cxenstored flags entries of dead domains when it reads a node, against the
        // generation it had; a node built here (generation 0) gets that at its new one.
        if node.generation != 0 {
            let old = node.generation;
            self.adjust_perms(&mut node.perms, old);
        }
        node.generation = self.next_generation();
        if self.txn(c).is_some() {
            self.touch_write(c, path, &node)?;
        }
        let gen = node.generation;
        self.adjust_perms(&mut node.perms, gen);
        let max = self.cfg.quotas.node_bytes_max as usize;
        if !no_quota_check && !c.who.privileged && max != 0 && node.record_bytes() >= max {
            if let Some(t) = self.txn_mut(c) {
                t.fail = true;
            }
            return Err(XsError::Enospc);
        }
        match self.txn_mut(c) {
            Some(t) => {
                let entry = t.entry_mut(path).expect("touch_write added the entry");
                entry.node = Some(node);
            }
            None => self.tree.insert(path, node),
        }
        Ok(())
    }

    fn touch_write(&mut self, c: &Caller, path: &str, node: &Node) -> Result<(), XsError> {
        let known = self.txn(c).is_some_and(|t| t.entry(path).is_some());
        if !known {
            self.check_tx_nodes_quota(c)?;
            let entry = Accessed {
                path: String::from(path),
                generation: None,
                check_gen: false,
                modified: false,
                orig_perms: Some(node.perms.clone()),
                node: None,
                fire: None,
            };
            if let Some(t) = self.txn_mut(c) {
                t.push(entry);
            }
        }
        if let Some(entry) = self.txn_mut(c).and_then(|t| t.entry_mut(path)) {
            entry.modified = true;
        }
        Ok(())
    }

    /// Deletes one node record (`access_node` for a delete, then `do_tdb_delete`).
    pub(super) fn delete_node(&mut self, c: &Caller, path: &str) -> Result<DeleteAccess, XsError> {
        self.next_generation();
        if self.txn(c).is_none() {
            self.tree.remove(path);
            return Ok(DeleteAccess::Deleted);
        }
        let known = self.txn(c).is_some_and(|t| t.entry(path).is_some());
        if !known {
            self.check_tx_nodes_quota(c)?;
            if let Some(t) = self.txn_mut(c) {
                t.push(Accessed {
                    path: String::from(path),
                    generation: None,
                    check_gen: false,
                    modified: true,
                    orig_perms: None,
                    node: None,
                    fire: None,
                });
            }
            return Ok(DeleteAccess::NothingToDelete);
        }
        if let Some(entry) = self.txn_mut(c).and_then(|t| t.entry_mut(path)) {
            entry.modified = true;
            entry.node = None;
        }
        Ok(DeleteAccess::Deleted)
    }

    /// `domain_entry_inc`: one more node owned by `owner` (deferred inside a transaction).
    pub(super) fn entry_inc(&mut self, c: &Caller, owner: u32) {
        self.entry_add(c, owner, 1);
    }

    /// `domain_entry_dec`.
    pub(super) fn entry_dec(&mut self, c: &Caller, owner: u32) {
        self.entry_add(c, owner, -1);
    }

    fn entry_add(&mut self, c: &Caller, owner: u32, delta: i64) {
        if let Some(t) = self.txn_mut(c) {
            t.change_domain(owner, delta);
            return;
        }
        let d = self.domain_rec_or_alloc(owner);
        d.nodes_count += delta;
        assert!(
            d.nodes_count >= 0,
            "d{owner} owns a negative number of nodes"
        );
    }

    /// `domain_entry`: nodes owned by an unprivileged caller's domain, 0 otherwise.
    pub(super) fn entry_count(&self, c: &Caller) -> i64 {
        if c.who.privileged {
            return 0;
        }
        self.domains.get(&c.who.domid).map_or(0, |d| d.nodes_count)
    }

    /// `get_node`: a valid path whose node exists and grants `perm`; otherwise the error
    /// cxenstored reports, hiding `ENOENT` behind `EACCES` when the nearest existing
    /// ancestor does not grant `perm` either.
    pub(super) fn get_node(&mut self, c: &Caller, path: &str, perm: u8) -> Result<(), XsError> {
        let max = self.cfg.quotas.path_bytes_max as usize;
        if !path::is_valid_node_path(path.as_bytes(), max) {
            return Err(XsError::Einval);
        }
        self.touch_read(c, path)?;
        let err = match self.view(c, path) {
            Some(node) => {
                if self.perm_of(&c.who, &node.perms, node.generation) & perm == perm {
                    return Ok(());
                }
                XsError::Eacces
            }
            None => XsError::Enoent,
        };
        Err(self.errno_from_parents(c, path, err, perm)?)
    }

    /// `errno_from_parents` (via `ask_parents`).
    fn errno_from_parents(
        &mut self,
        c: &Caller,
        node_path: &str,
        err: XsError,
        perm: u8,
    ) -> Result<XsError, XsError> {
        // Every ancestor is a prefix of `node_path` (or `/`): no path is copied.
        let mut name = node_path;
        loop {
            let parent = path::parent(name);
            self.touch_read(c, parent)?;
            if let Some(node) = self.view(c, parent) {
                let parent_perm = self.perm_of(&c.who, &node.perms, node.generation);
                return Ok(if parent_perm & perm != 0 {
                    err
                } else {
                    XsError::Eacces
                });
            }
            if parent == "/" {
                // No root: cxenstored reports corruption and answers with no rights.
                return Ok(XsError::Eacces);
            }
            name = parent;
        }
    }

    /// Whether `who` may read the node at `path` in the committed tree.
    pub(super) fn can_read_committed(&self, who: &Who, path: &str) -> Option<bool> {
        let node = self.tree.get(path)?;
        Some(self.perm_of(who, &node.perms, node.generation) & PERM_READ != 0)
    }
}
