//! The XenStore invariant checker (spec `xenstore-io.md` §9, XS-TREE, XS-PATH, XS-QUOTA,
//! XS-TX-IDS, XS-GEN, XS-NO-INHERIT, XS-PAYLOAD): O(n) checks over the whole store, run
//! after every step in tests and on `CONTROL check`.
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17 (`check_store`) in spirit; the
//! checks themselves are xensim's.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{path, XenStore, PRIV_DOMID};
use crate::sched::Violation;

fn push(out: &mut Vec<Violation>, invariant: &'static str, detail: String) {
    out.push(Violation { invariant, detail });
}

impl XenStore {
    /// Appends every broken XenStore invariant to `out`.
    pub fn check_invariants(&self, out: &mut Vec<Violation>) {
        self.check_tree(out);
        self.check_accounting(out);
        self.check_conns(out);
        self.check_watch_index(out);
        self.check_rings(out);
    }

    /// The watch index names every registered watch (one entry each), so that
    /// `fire_watches` visits every connection a change may concern.
    fn check_watch_index(&self, out: &mut Vec<Violation>) {
        let mut watches_count = 0;
        for (id, k) in &self.conns {
            watches_count += k.watches.len();
            for w in &k.watches {
                let same = k.watches.iter().filter(|o| o.node == w.node).count();
                if self.watch_index.count_of(&w.node, *id) < same {
                    let detail = format!("{id:?}: watch on {} not indexed", w.node);
                    push(out, "xs.watch.index", detail);
                }
            }
        }
        if self.watch_index.entries_count() != watches_count {
            let detail = format!(
                "{} index entries for {watches_count} watches",
                self.watch_index.entries_count()
            );
            push(out, "xs.watch.index", detail);
        }
    }

    /// XS-TREE, XS-PATH, XS-GEN: parent/child consistency, valid paths, generations not
    /// ahead of the global counter.
    fn check_tree(&self, out: &mut Vec<Violation>) {
        if self.tree.get("/").is_none() {
            push(
                out,
                "xs.tree.root",
                String::from("the root node is missing"),
            );
        }
        for (p, node) in self.tree.iter() {
            if !path::is_valid_node_path(p.as_bytes(), usize::MAX / 2) {
                push(
                    out,
                    "xs.path.valid",
                    format!("stored path {p:?} is invalid"),
                );
            }
            if node.generation > self.generation {
                push(
                    out,
                    "xs.gen.bounded",
                    format!("{p}: gen {} > global", node.generation),
                );
            }
            if node.perms.is_empty() {
                push(out, "xs.perms.nonempty", format!("{p} has no owner entry"));
            }
            if p != "/" {
                let parent = path::parent(p);
                let listed = self
                    .tree
                    .get(parent)
                    .map(|n| n.children().filter(|c| *c == path::basename(p)).count());
                if listed != Some(1) {
                    push(
                        out,
                        "xs.tree.parent",
                        format!("{p}: listed {listed:?} times"),
                    );
                }
            }
            for c in node.children() {
                if self.tree.get(&path::child(p, c)).is_none() {
                    push(out, "xs.tree.child", format!("{p} lists missing child {c}"));
                }
            }
        }
    }

    /// XS-QUOTA and XS-NO-INHERIT: node counts equal a recount of owners; every owner has
    /// a domain record.
    fn check_accounting(&self, out: &mut Vec<Violation>) {
        let mut owned: BTreeMap<u32, i64> = BTreeMap::new();
        for (p, node) in self.tree.iter() {
            *owned.entry(node.owner()).or_insert(0) += 1;
            if !self.domains.contains_key(&node.owner()) {
                push(
                    out,
                    "xs.owner.known",
                    format!("{p} owned by unknown d{}", node.owner()),
                );
            }
            let max = self.cfg.quotas.perms_count_max as usize;
            if node.owner() != PRIV_DOMID && max != 0 && node.perms.len() > max + 1 {
                push(
                    out,
                    "xs.quota.perms",
                    format!("{p}: {} entries", node.perms.len()),
                );
            }
        }
        for (domid, d) in &self.domains {
            let counted = owned.get(domid).copied().unwrap_or(0);
            if counted != d.nodes_count {
                let detail = format!("d{domid}: counter {} recount {counted}", d.nodes_count);
                push(out, "xs.quota.nodes_recount", detail);
            }
            if d.introduced != d.conn.is_some() {
                push(
                    out,
                    "xs.domain.conn",
                    format!("d{domid}: introduced without a ring"),
                );
            }
            if let Some(conn) = d.conn {
                if self.conns.get(&conn).and_then(|k| k.domid) != Some(*domid) {
                    push(
                        out,
                        "xs.domain.conn",
                        format!("d{domid}: ring {conn:?} not its own"),
                    );
                }
            }
        }
    }

    /// XS-TX-IDS, XS-PAYLOAD, released domains: per-connection bookkeeping.
    fn check_conns(&self, out: &mut Vec<Violation>) {
        for (id, k) in &self.conns {
            if k.txs.contains_key(&0) {
                push(out, "xs.tx.id_nonzero", format!("{id:?} has transaction 0"));
            }
            for (tx, t) in &k.txs {
                if t.generation > self.generation {
                    push(out, "xs.tx.gen", format!("{id:?} tx {tx} from the future"));
                }
            }
            if let Some(domid) = k.domid {
                let mine = self.domains.get(&domid).and_then(|d| d.conn) == Some(*id);
                if !mine {
                    push(
                        out,
                        "xs.watch.released",
                        format!("{id:?}: d{domid} not introduced"),
                    );
                }
            }
            if k.ignored && (!k.watches.is_empty() || !k.txs.is_empty()) {
                push(
                    out,
                    "xs.conn.ignored",
                    format!("{id:?} ignored but holds state"),
                );
            }
            for f in k.out.iter() {
                if f.payload.len() > super::wire::XENSTORE_PAYLOAD_MAX {
                    push(
                        out,
                        "xs.payload",
                        format!("{id:?}: {} bytes", f.payload.len()),
                    );
                }
            }
        }
    }
}
