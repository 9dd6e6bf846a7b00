//! The node requests: read, directory, directory part, get/set permissions, write, mkdir
//! and rm, as typed methods that the wire dispatcher and the toolstack both call.
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17 (`do_read`, `send_directory`,
//! `send_directory_part`, `do_get_perms`, `do_set_perms`, `do_write`, `do_mkdir`, `do_rm`,
//! `construct_node`, `create_node`, `rm_node`, `delnode_sub`, `walk_node_tree`) and
//! xenstored_domain.c (`domain_alloc_permrefs`, `set_perms_special`).
//!
//! # Invariants
//! - Implicitly created ancestors copy their parent's permissions; an unprivileged creator
//!   becomes their owner. Either every missing node is created or none is.
//! - `rm` removes a subtree children first, firing exact events for descendants and a
//!   subtree event for the removed root, as `walk_node_tree` with an exit callback does.

use alloc::string::String;
use alloc::vec::Vec;

use super::access::Caller;
use super::perms::{Perm, PERM_OWNER, PERM_READ, PERM_WRITE};
use super::tree::Node;
use super::{path, XenStore, XsError};
use crate::ids::{XsConnId, XsTxId};

impl XenStore {
    /// `canonicalize` for the caller.
    pub(super) fn canon(&self, c: &Caller, raw: &[u8]) -> String {
        if raw.first() == Some(&b'/') || path::is_special(raw) {
            path::lossy_string(raw)
        } else {
            path::canonicalize(&self.home(c), raw)
        }
    }

    /// `XS_READ`: the value of a node `conn` may read.
    pub fn read(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        path: &[u8],
    ) -> Result<Vec<u8>, XsError> {
        let c = self.caller(conn, tx)?;
        let name = self.canon(&c, path);
        self.get_node(&c, &name, PERM_READ)?;
        Ok(self
            .view(&c, &name)
            .map(|n| n.value.clone())
            .unwrap_or_default())
    }

    /// `XS_DIRECTORY`: the child names, in insertion order.
    pub fn directory(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        path: &[u8],
    ) -> Result<Vec<String>, XsError> {
        let c = self.caller(conn, tx)?;
        let name = self.canon(&c, path);
        self.get_node(&c, &name, PERM_READ)?;
        Ok(self
            .view(&c, &name)
            .map(|n| n.children().map(String::from).collect())
            .unwrap_or_default())
    }

    /// The `XS_DIRECTORY` reply payload.
    pub(super) fn directory_wire(&mut self, c: &Caller, raw: &[u8]) -> Result<Vec<u8>, XsError> {
        let name = self.canon(c, raw);
        self.get_node(c, &name, PERM_READ)?;
        Ok(self
            .view(c, &name)
            .map(Node::child_list)
            .unwrap_or_default())
    }

    /// `XS_DIRECTORY_PART`: generation, then whole child names from byte `offset` of the
    /// child list that fit, with an extra NUL when the list ends in this chunk.
    pub fn directory_part(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        path: &[u8],
        offset: u32,
    ) -> Result<Vec<u8>, XsError> {
        let c = self.caller(conn, tx)?;
        let name = self.canon(&c, path);
        self.get_node(&c, &name, PERM_READ)?;
        let Some(node) = self.view(&c, &name) else {
            return Err(XsError::Enoent);
        };
        Ok(directory_chunk(
            node.generation,
            &node.child_list(),
            offset as usize,
        ))
    }

    /// `XS_GET_PERMS`: the permission list (entries of dead domains included).
    pub fn get_perms(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        path: &[u8],
    ) -> Result<Vec<Perm>, XsError> {
        let c = self.caller(conn, tx)?;
        let name = self.canon(&c, path);
        self.get_node(&c, &name, PERM_READ)?;
        Ok(self
            .view(&c, &name)
            .map(|n| n.perms.clone())
            .unwrap_or_default())
    }

    /// `XS_WRITE`: sets a node's value, creating it and missing ancestors.
    pub fn write(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), XsError> {
        let c = self.caller(conn, tx)?;
        let name = self.canon(&c, path);
        let (perms, gen) = match self.get_node(&c, &name, PERM_WRITE) {
            Ok(()) if c.tx.is_none() => self.write_in_place(&c, &name, value)?,
            Ok(()) => {
                let mut node = self.view(&c, &name).cloned().ok_or(XsError::Eio)?;
                node.value = value.to_vec();
                self.write_node(&c, &name, node, false)?;
                let n = self.view(&c, &name).ok_or(XsError::Eio)?;
                (n.perms.clone(), n.generation)
            }
            Err(XsError::Enoent) => self.create_node(&c, &name, value)?,
            Err(e) => return Err(e),
        };
        self.fire_watches(&c, &name, Some((&perms, gen)), false, None);
        Ok(())
    }

    /// `write_node` of a new value into an existing committed node, without copying it.
    fn write_in_place(
        &mut self,
        c: &Caller,
        name: &str,
        value: &[u8],
    ) -> Result<(Vec<Perm>, u64), XsError> {
        let node = self.tree.get(name).ok_or(XsError::Eio)?;
        let old_gen = node.generation;
        let mut perms = node.perms.clone();
        let size = node.record_bytes() - node.value.len() + value.len();
        self.adjust_perms(&mut perms, old_gen);
        let gen = self.next_generation();
        self.adjust_perms(&mut perms, gen);
        let max = self.cfg.quotas.node_bytes_max as usize;
        if !c.who.privileged && max != 0 && size >= max {
            return Err(XsError::Enospc);
        }
        let node = self.tree.get_mut(name).ok_or(XsError::Eio)?;
        node.value.clear();
        node.value.extend_from_slice(value);
        node.perms.clone_from(&perms);
        node.generation = gen;
        Ok((perms, gen))
    }

    /// `XS_MKDIR`: creates a node with an empty value; an existing node is left alone.
    pub fn mkdir(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        path: &[u8],
    ) -> Result<(), XsError> {
        let c = self.caller(conn, tx)?;
        let name = self.canon(&c, path);
        match self.get_node(&c, &name, PERM_WRITE) {
            Ok(()) => Ok(()),
            Err(XsError::Enoent) => {
                let (perms, gen) = self.create_node(&c, &name, &[])?;
                self.fire_watches(&c, &name, Some((&perms, gen)), false, None);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `XS_RM`: removes a subtree; a missing node is fine when its parent exists.
    pub fn rm(&mut self, conn: XsConnId, tx: Option<XsTxId>, path: &[u8]) -> Result<(), XsError> {
        let c = self.caller(conn, tx)?;
        let name = self.canon(&c, path);
        match self.get_node(&c, &name, PERM_WRITE) {
            Ok(()) if name == "/" => Err(XsError::Einval),
            Ok(()) => self.rm_node(&c, &name),
            Err(XsError::Enoent) => {
                let parent = String::from(path::parent(&name));
                match self.read_node(&c, &parent)? {
                    Some(_) => Ok(()),
                    None => Err(XsError::Enoent),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `XS_SET_PERMS` with a parsed list (owner first).
    pub fn set_perms(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        path: &[u8],
        perms: &[Perm],
    ) -> Result<(), XsError> {
        let c = self.caller(conn, tx)?;
        let max = self.cfg.quotas.perms_count_max as usize;
        if perms.is_empty() {
            return Err(XsError::Einval);
        }
        if !c.who.privileged && max != 0 && perms.len() > max {
            return Err(XsError::Enospc);
        }
        let mut perms = perms.to_vec();
        // `domain_alloc_permrefs`: entries naming unknown domains never count.
        for p in &mut perms {
            p.ignore = p.ignore || !self.domains.contains_key(&p.domid);
        }
        if perms[0].ignore {
            return Err(XsError::Enoent);
        }
        if path::is_special(path) {
            return self.set_perms_special(&c, path, perms);
        }
        let name = self.canon(&c, path);
        self.get_node(&c, &name, PERM_WRITE | PERM_OWNER)?;
        let mut node = self.view(&c, &name).cloned().ok_or(XsError::Eio)?;
        let old = core::mem::replace(&mut node.perms, perms.clone());
        // do_set_perms: read_node adjusted the old entries; the new ones are checked only
        // against the generation the write gives the node (a domain younger than the node
        // may be named). Generation 0 makes `write_node` skip the check at the old one.
        node.generation = 0;
        if !c.who.privileged && perms[0].domid != old[0].domid {
            return Err(XsError::Eperm);
        }
        self.entry_dec(&c, old[0].domid);
        self.entry_inc(&c, perms[0].domid);
        if let Err(e) = self.write_node(&c, &name, node, false) {
            self.entry_dec(&c, perms[0].domid);
            self.entry_inc(&c, old[0].domid);
            return Err(e);
        }
        let gen = self.view(&c, &name).map_or(0, |n| n.generation);
        self.fire_watches(&c, &name, Some((&perms, gen)), false, Some(&old));
        Ok(())
    }

    /// `set_perms_special`: only `@releaseDomain` and `@introduceDomain` exist.
    fn set_perms_special(
        &mut self,
        c: &Caller,
        raw: &[u8],
        perms: Vec<Perm>,
    ) -> Result<(), XsError> {
        let slot = match raw {
            b"@releaseDomain" => &self.release_perms,
            b"@introduceDomain" => &self.introduce_perms,
            _ => return Err(XsError::Einval),
        };
        let need = PERM_WRITE | PERM_OWNER;
        if super::perms::perm_for(&c.who, slot, |_| true) & need != need {
            return Err(XsError::Eacces);
        }
        match raw {
            b"@releaseDomain" => self.release_perms = perms,
            _ => self.introduce_perms = perms,
        }
        Ok(())
    }

    /// `construct_node` + `create_node`: creates `name` and its missing ancestors.
    /// Returns the new node's permissions and generation.
    fn create_node(
        &mut self,
        c: &Caller,
        name: &str,
        value: &[u8],
    ) -> Result<(Vec<Perm>, u64), XsError> {
        // The missing ancestors are prefixes of `name`: no path is copied.
        let mut missing = alloc::vec![name];
        let mut parent = path::parent(name);
        loop {
            if self.read_node(c, parent)?.is_some() {
                break;
            }
            if parent == "/" {
                return Err(XsError::Enoent);
            }
            missing.push(parent);
            parent = path::parent(parent);
        }
        if let Some(t) = self.txn_mut(c) {
            t.node_created = true;
        }
        // `missing` ends with the node right below `parent`: the child `above` gets first.
        let first_bytes = missing.last().map_or(0, |p| path::basename(p).len());
        let above = self.view(c, parent).map(|n| n.clone_for_child(first_bytes));
        let mut above = above.ok_or(XsError::Eio)?;
        let above_gen = above.generation;
        self.adjust_perms(&mut above.perms, above_gen);
        // Top-down: each new node joins its parent and inherits its permissions.
        let mut chain: Vec<(&str, Node, bool)> = Vec::with_capacity(missing.len() + 1);
        let mut above_path = parent;
        for new_path in missing.into_iter().rev() {
            above.add_child(path::basename(new_path));
            let mut perms = above.perms.clone();
            if !c.who.privileged {
                perms[0].domid = c.who.domid;
            }
            let node = Node::new(perms);
            let done = core::mem::replace(&mut above, node);
            let is_new = !chain.is_empty();
            chain.push((core::mem::replace(&mut above_path, new_path), done, is_new));
        }
        above.value = value.to_vec();
        chain.push((above_path, above, true));
        let result = (chain[chain.len() - 1].1.perms.clone(), 0);
        self.write_chain(c, chain)?;
        let gen = self.view(c, name).map_or(result.1, |n| n.generation);
        Ok((result.0, gen))
    }

    /// Writes the nodes of `create_node` bottom-up; on failure removes what was written.
    fn write_chain(&mut self, c: &Caller, chain: Vec<(&str, Node, bool)>) -> Result<(), XsError> {
        let max = i64::from(self.cfg.quotas.nodes_count_max);
        let mut written: Vec<(&str, u32)> = Vec::new();
        for (node_path, node, is_new) in chain.into_iter().rev() {
            let owner = node.owner();
            let over = is_new && !c.who.privileged && max != 0 && self.entry_count(c) >= max;
            let res = if over {
                Err(XsError::Enospc)
            } else {
                self.write_node(c, node_path, node, false)
            };
            if let Err(e) = res {
                for (done, done_owner) in written {
                    // `destroy_node`: failures here fail the transaction.
                    let _ = self.delete_node(c, done);
                    self.entry_dec(c, done_owner);
                    if let Some(t) = self.txn_mut(c) {
                        t.fail = true;
                    }
                }
                return Err(e);
            }
            if is_new {
                self.entry_inc(c, owner);
                written.push((node_path, owner));
            }
        }
        Ok(())
    }

    /// `rm_node`: removes `name`'s subtree, then its entry in the parent.
    pub(super) fn rm_node(&mut self, c: &Caller, name: &str) -> Result<(), XsError> {
        let parent = String::from(path::parent(name));
        if self.read_node(c, &parent)?.is_none() {
            return Err(XsError::Einval);
        }
        self.delete_subtree(c, name)?;
        let mut node = self.view(c, &parent).cloned().ok_or(XsError::Eio)?;
        if !node.remove_child(path::basename(name)) {
            return Err(XsError::Eio);
        }
        self.write_node(c, &parent, node, true)
    }

    /// `walk_node_tree` with `delnode_sub` as exit callback, without recursion.
    fn delete_subtree(&mut self, c: &Caller, root: &str) -> Result<(), XsError> {
        struct Level {
            path: String,
            /// The child list (each name NUL-terminated) and the offset of the next name.
            children: String,
            next_at: usize,
            perms: Vec<Perm>,
            generation: u64,
        }
        let enter = |xs: &mut XenStore, p: String| -> Result<Level, XsError> {
            let node = xs.read_node(c, &p)?.ok_or(XsError::Eio)?;
            Ok(Level {
                children: String::from(node.children_packed()),
                perms: node.perms.clone(),
                generation: node.generation,
                path: p,
                next_at: 0,
            })
        };
        let first = enter(self, String::from(root))?;
        let mut stack = alloc::vec![first];
        while let Some(top) = stack.last_mut() {
            let next = top.children.get(top.next_at..);
            if let Some(name) = next.and_then(|rest| rest.split_terminator('\0').next()) {
                let child = path::child(&top.path, name);
                top.next_at += name.len() + 1;
                let level = enter(self, child)?;
                stack.push(level);
                continue;
            }
            let Some(done) = stack.pop() else { break };
            let is_root = stack.is_empty();
            self.delete_node(c, &done.path)?;
            let perms = (&done.perms[..], done.generation);
            self.fire_watches(c, &done.path, Some(perms), !is_root, None);
            self.entry_dec(c, done.perms[0].domid);
            if let Some(up) = stack.last() {
                let up_path = up.path.clone();
                let mut node = self.view(c, &up_path).cloned().ok_or(XsError::Eio)?;
                node.remove_child(path::basename(&done.path));
                self.write_node(c, &up_path, node, true)?;
            }
        }
        Ok(())
    }

    /// The committed node at an absolute path, for read-only queries (no permission check).
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.tree.get(path)
    }

    /// Number of nodes in the committed tree.
    pub fn node_count(&self) -> usize {
        self.tree.len()
    }
}

/// The `XS_DIRECTORY_PART` payload for a child list (`send_directory_part`).
pub(super) fn directory_chunk(generation: u64, list: &[u8], offset: usize) -> Vec<u8> {
    let mut out = Vec::new();
    super::perms::push_decimal(&mut out, i64::try_from(generation).unwrap_or(i64::MAX));
    out.push(0);
    let gen_bytes = out.len();
    if offset >= list.len() {
        out.push(0);
        return out;
    }
    let max_bytes = super::wire::XENSTORE_PAYLOAD_MAX - gen_bytes - 1;
    let mut len = 0;
    loop {
        let rest = &list[offset + len..];
        let name_bytes = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if len + name_bytes >= max_bytes {
            break;
        }
        len += name_bytes + 1;
        if offset + len >= list.len() {
            break;
        }
    }
    let end = (offset + len).min(list.len());
    out.extend_from_slice(&list[offset..end]);
    if end == list.len() {
        out.push(0);
    }
    out
}
