//! Transactions: the per-transaction record of touched nodes, start, and commit with
//! generation-count conflict detection.
//!
//! Follows tools/xenstore/xenstored_transaction.c of Xen 4.17 (`struct transaction`,
//! `struct accessed_node`, `access_node`, `queue_watches`, `finalize_transaction`,
//! `do_transaction_start`, `do_transaction_end`, `transaction_fix_domains`).
//!
//! # Invariants
//! - Transaction ids are unique among a connection's open transactions and never 0.
//! - A node is recorded at most once per transaction; the first touch decides whether its
//!   generation is checked at commit (reads are, blind writes are not).
//! - A commit either applies every modified node and fires every queued watch, or applies
//!   nothing (`EAGAIN`, `ENOSPC`, `ENOMEM`).

use alloc::collections::{btree_map, BTreeMap};
use alloc::string::String;
use alloc::vec::Vec;

use super::access::Caller;
use super::path_map::path_key;
use super::perms::Perm;
use super::tree::Node;
use super::{XenStore, XsError};
use crate::ids::{XsConnId, XsTxId};

/// Entries a transaction's record starts with room for: a toolstack transaction touches
/// a few dozen nodes, and growing a vector of large entries copies them each time.
const ACCESSED_INITIAL_COUNT: usize = 32;

/// One node a transaction touched (`struct accessed_node`).
#[derive(Clone, Debug)]
pub(super) struct Accessed {
    pub path: String,
    /// Generation seen at the first touch; `None` = the node did not exist.
    pub generation: Option<u64>,
    /// The first touch was a read: compare the generation at commit.
    pub check_gen: bool,
    /// Written or deleted inside the transaction.
    pub modified: bool,
    /// The transaction's copy; `None` = absent or deleted in the transaction.
    pub node: Option<Node>,
    /// Permissions at the first touch (watch filtering at commit).
    pub orig_perms: Option<Vec<Perm>>,
    /// A watch event to fire at commit; `Some(exact)`.
    pub fire: Option<bool>,
}

/// One open transaction.
#[derive(Clone, Debug)]
pub(super) struct Transaction {
    /// Global generation at start.
    pub generation: u64,
    accessed: Vec<Accessed>,
    /// The newest entry of each path key (`path_map::path_key`); `chain[i]` is the next
    /// older entry whose path has the same key as entry `i`'s.
    heads: BTreeMap<u64, usize>,
    chain: Vec<Option<usize>>,
    /// A node was created (quota is checked at commit then).
    pub node_created: bool,
    /// An internal failure: commit returns `ENOMEM`.
    pub fail: bool,
    /// Node count changes per owner, applied at commit.
    changed_domains: Vec<(u32, i64)>,
}

impl Transaction {
    fn new(generation: u64) -> Transaction {
        Transaction {
            generation,
            accessed: Vec::with_capacity(ACCESSED_INITIAL_COUNT),
            heads: BTreeMap::new(),
            chain: Vec::with_capacity(ACCESSED_INITIAL_COUNT),
            node_created: false,
            fail: false,
            changed_domains: Vec::new(),
        }
    }

    /// The index of `path`'s entry in the chain that starts at `at`.
    fn find_from(&self, mut at: usize, path: &str) -> Option<usize> {
        loop {
            if self.accessed[at].path == path {
                return Some(at);
            }
            at = self.chain[at]?;
        }
    }

    fn find(&self, path: &str) -> Option<usize> {
        let head = *self.heads.get(&path_key(path))?;
        self.find_from(head, path)
    }

    pub(super) fn entry(&self, path: &str) -> Option<&Accessed> {
        self.find(path).map(|i| &self.accessed[i])
    }

    pub(super) fn entry_mut(&mut self, path: &str) -> Option<&mut Accessed> {
        let i = self.find(path)?;
        self.accessed.get_mut(i)
    }

    pub(super) fn push(&mut self, entry: Accessed) {
        // One search of the index: it both proves the first touch and chains the entry.
        let at = self.accessed.len();
        let older = match self.heads.entry(path_key(&entry.path)) {
            btree_map::Entry::Occupied(mut head) => {
                let older = *head.get();
                head.insert(at);
                Some(older)
            }
            btree_map::Entry::Vacant(slot) => {
                slot.insert(at);
                None
            }
        };
        if let Some(older) = older {
            let twice = self.find_from(older, &entry.path).is_some();
            assert!(!twice, "{} touched twice", entry.path);
        }
        self.chain.push(older);
        self.accessed.push(entry);
        debug_assert_eq!(self.chain.len(), self.accessed.len());
    }

    pub(super) fn accessed_count(&self) -> usize {
        self.accessed.len()
    }

    pub(super) fn change_domain(&mut self, domid: u32, delta: i64) {
        match self.changed_domains.iter_mut().find(|(d, _)| *d == domid) {
            Some((_, n)) => *n += delta,
            None => self.changed_domains.push((domid, delta)),
        }
    }

    /// `queue_watches`: an event to fire at commit; a subtree event replaces an exact one.
    pub(super) fn queue_watch(&mut self, path: &str, exact: bool) {
        match self.entry_mut(path) {
            Some(entry) => {
                entry.fire = Some(match entry.fire {
                    Some(prev) => prev && exact,
                    None => exact,
                });
            }
            None => self.fail = true,
        }
    }
}

impl XenStore {
    /// `XS_TRANSACTION_START` on `conn`; `tx` is the request header's transaction (a
    /// transaction cannot nest: `EBUSY`).
    pub fn transaction_start(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
    ) -> Result<XsTxId, XsError> {
        let c = self.caller(conn, tx)?;
        if c.tx.is_some() {
            return Err(XsError::Ebusy);
        }
        let max = self.cfg.quotas.transactions_count_max as usize;
        let open = self.conns.get(&conn).map_or(0, |k| k.txs.len());
        // Xen 4.17 compares with `>`, so one more than the quota may be open.
        if !c.who.privileged && max != 0 && open > max {
            return Err(XsError::Enospc);
        }
        let generation = self.next_generation();
        let k = self.conns.get_mut(&conn).ok_or(XsError::Enoent)?;
        let id = loop {
            let candidate = k.next_tx_id;
            k.next_tx_id = k.next_tx_id.wrapping_add(1);
            if candidate != 0 && !k.txs.contains_key(&candidate) {
                break candidate;
            }
        };
        k.txs.insert(id, Transaction::new(generation));
        Ok(XsTxId::new(id).expect("transaction ids skip 0"))
    }

    /// `XS_TRANSACTION_END`: commit (`true`) or abort. The id is gone afterwards whatever
    /// the outcome.
    pub fn transaction_end(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        commit: bool,
    ) -> Result<(), XsError> {
        let c = self.caller(conn, tx)?;
        let Some(id) = c.tx else {
            return Err(XsError::Enoent);
        };
        let k = self.conns.get_mut(&conn).ok_or(XsError::Enoent)?;
        let t = k.txs.remove(&id).ok_or(XsError::Enoent)?;
        if !commit {
            return Ok(());
        }
        if t.fail {
            return Err(XsError::Enomem);
        }
        let check_quota = t.node_created && !c.who.privileged;
        self.fix_domains(&t, check_quota)?;
        let outside = Caller { tx: None, ..c };
        self.finalize(&outside, t)
    }

    /// `transaction_fix_domains(..., update = false)`: would any owner exceed its quota?
    fn fix_domains(&mut self, t: &Transaction, check_quota: bool) -> Result<(), XsError> {
        let max = i64::from(self.cfg.quotas.nodes_count_max);
        for &(domid, delta) in &t.changed_domains {
            let count = (self.domain_rec_or_alloc(domid).nodes_count + delta).max(0);
            let unprivileged = domid != super::PRIV_DOMID;
            if check_quota && unprivileged && max != 0 && count >= max {
                return Err(XsError::Enospc);
            }
        }
        Ok(())
    }

    /// `finalize_transaction`: conflict check, then apply and fire in touch order.
    fn finalize(&mut self, c: &Caller, t: Transaction) -> Result<(), XsError> {
        for entry in &t.accessed {
            if entry.check_gen {
                let now = self.tree.get(&entry.path).map(|n| n.generation);
                if now != entry.generation {
                    return Err(XsError::Eagain);
                }
            }
        }
        for entry in t.accessed.into_iter().filter(|e| e.modified) {
            match entry.node {
                Some(mut node) => {
                    node.generation = self.next_generation();
                    self.tree.insert(&entry.path, node);
                }
                None => {
                    if entry.generation.is_some() {
                        self.tree.remove(&entry.path);
                    }
                }
            }
            if let Some(exact) = entry.fire {
                let old = entry.orig_perms.as_deref();
                self.fire_watches(c, &entry.path, None, exact, old);
            }
        }
        for &(domid, delta) in &t.changed_domains {
            let d = self.domain_rec_or_alloc(domid);
            d.nodes_count = (d.nodes_count + delta).max(0);
        }
        Ok(())
    }

    /// Open transactions of a connection (ids in ascending order).
    pub fn open_transactions(&self, conn: XsConnId) -> Vec<XsTxId> {
        self.conns
            .get(&conn)
            .map(|k| k.txs.keys().filter_map(|&id| XsTxId::new(id)).collect())
            .unwrap_or_default()
    }
}
