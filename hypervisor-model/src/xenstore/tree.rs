//! The node records and the committed tree, keyed by absolute path (cxenstored keeps the
//! same records in TDB, keyed the same way).
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17 (`struct node`, `write_node_raw`'s
//! record layout, `add_child`, `remove_child_entry`, `setup_structure`).
//!
//! # Invariants
//! - Children are kept in insertion order; a name appears at most once.
//! - The child list is stored as `DIRECTORY` sends it (each name followed by a NUL), and
//!   no name contains a NUL.
//! - `record_bytes` is the size cxenstored's TDB record would have; the `node-size` quota is
//!   checked against it.

use alloc::string::String;
use alloc::vec::Vec;

use super::path_map::PathMap;
use super::perms::Perm;

/// `sizeof(struct xs_tdb_record_hdr)`: u64 generation, three u32 counts, padded to 8.
pub const NODE_HEADER_BYTES: usize = 24;
/// `sizeof(struct xs_permissions)`.
pub const PERM_ENTRY_BYTES: usize = 8;

/// One node: value, children (in insertion order), permissions, generation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Node {
    pub(super) value: Vec<u8>,
    /// Child names in insertion order, each followed by a NUL: one allocation however
    /// many children, so that copying a node does not copy each name on its own.
    children: String,
    pub(super) perms: Vec<Perm>,
    pub(super) generation: u64,
}

impl Node {
    /// The value bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Child names, in insertion order.
    pub fn children(&self) -> core::str::SplitTerminator<'_, char> {
        self.children.split_terminator('\0')
    }

    /// The child list as stored: each name followed by a NUL.
    pub(super) fn children_packed(&self) -> &str {
        &self.children
    }

    /// Whether the node has no child.
    pub fn has_no_children(&self) -> bool {
        self.children.is_empty()
    }

    /// The child list and the byte offset just past `name`'s entry, `None` if `name` is
    /// not listed.
    fn child_end(&self, name: &str) -> Option<(usize, usize)> {
        let mut at = 0;
        for child in self.children() {
            let end = at + child.len() + 1;
            if child == name {
                return Some((at, end));
            }
            at = end;
        }
        None
    }

    /// A copy whose child list has room for one more name of `name_bytes` (a parent
    /// about to get a child: `add_child` then does not reallocate). Equal to `clone`.
    pub(super) fn clone_for_child(&self, name_bytes: usize) -> Node {
        let mut children = String::with_capacity(self.children.len() + name_bytes + 1);
        children.push_str(&self.children);
        Node {
            value: self.value.clone(),
            children,
            perms: self.perms.clone(),
            generation: self.generation,
        }
    }

    /// The permission list (owner first).
    pub fn perms(&self) -> &[Perm] {
        &self.perms
    }

    /// The generation of the last modification.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The owner's domid.
    pub fn owner(&self) -> u32 {
        self.perms.first().map_or(0, |p| p.domid)
    }

    /// Bytes of the child list on the wire: each name and its NUL (`childlen`).
    pub fn child_list_bytes(&self) -> usize {
        self.children.len()
    }

    /// The child list as `DIRECTORY` sends it.
    pub fn child_list(&self) -> Vec<u8> {
        self.children.as_bytes().to_vec()
    }

    /// Size of the node's TDB record (`data.dsize` in `write_node_raw`).
    pub fn record_bytes(&self) -> usize {
        NODE_HEADER_BYTES
            + self.perms.len() * PERM_ENTRY_BYTES
            + self.value.len()
            + self.child_list_bytes()
    }

    pub(super) fn new(perms: Vec<Perm>) -> Node {
        assert!(!perms.is_empty(), "a node needs an owner entry");
        Node {
            value: Vec::new(),
            children: String::new(),
            perms,
            generation: 0,
        }
    }

    /// `add_child`: appends `name` to the child list. Like cxenstored it does not look for
    /// the name: a transaction copy can list a child twice when another connection created
    /// it meanwhile, and that transaction then always fails its commit with `EAGAIN`.
    pub(super) fn add_child(&mut self, name: &str) {
        assert!(!name.contains('\0'), "a child name holds no NUL");
        self.children.push_str(name);
        self.children.push('\0');
    }

    /// `remove_child_entry`: drops `name`, keeping the others' order. `false` if absent.
    pub(super) fn remove_child(&mut self, name: &str) -> bool {
        match self.child_end(name) {
            Some((at, end)) => {
                self.children.replace_range(at..end, "");
                true
            }
            None => false,
        }
    }
}

/// The committed store (cxenstored's TDB without transaction copies), found by path key
/// (`path_map.rs`).
#[derive(Debug, Default)]
pub(super) struct Tree {
    nodes: PathMap<Node>,
}

impl Tree {
    pub(super) fn new() -> Tree {
        Tree::default()
    }

    pub(super) fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub(super) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }

    pub(super) fn insert(&mut self, path: &str, node: Node) {
        self.nodes.insert(path, node);
    }

    pub(super) fn remove(&mut self, path: &str) -> Option<Node> {
        self.nodes.remove(path)
    }

    /// Every node in ascending path order (sorts: for the invariant checks only).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.sorted().into_iter()
    }

    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_bytes_counts_header_perms_value_and_children() {
        let mut n = Node::new(alloc::vec![Perm::new(0, 0)]);
        n.value = alloc::vec![b'x'; 10];
        n.add_child("ab");
        // 24 header + 8 per perm + 10 value + "ab\0".
        assert_eq!(n.record_bytes(), 24 + 8 + 10 + 3);
    }

    #[test]
    fn remove_child_keeps_order_of_others() {
        let mut n = Node::new(alloc::vec![Perm::new(0, 0)]);
        n.add_child("a");
        n.add_child("b");
        n.add_child("c");
        assert!(n.remove_child("b"));
        assert!(!n.remove_child("b"));
        assert_eq!(n.child_list(), b"a\0c\0");
    }

    #[test]
    fn packed_children_match_a_name_list() {
        let names = ["front", "", "fr", "front-id", "state"];
        let mut n = Node::new(alloc::vec![Perm::new(0, 0)]);
        let mut list: Vec<String> = Vec::new();
        for name in names {
            n.add_child(name);
            list.push(String::from(name));
        }
        assert!(n.remove_child("fr"));
        list.retain(|c| c != "fr");
        assert!(n.children().eq(list.iter().map(String::as_str)));
        assert!(n.children().rev().eq(list.iter().rev().map(String::as_str)));
        let bytes: usize = list.iter().map(|c| c.len() + 1).sum();
        assert_eq!(n.child_list_bytes(), bytes);
    }
}
