//! Which connections hold a watch on which node: the index `fire_watches` consults so that
//! it looks only at the connections that may have a matching watch instead of every
//! watch of every connection.
//!
//! cxenstored has no such index (`fire_watches` walks every connection's watch list); this
//! one only prunes that walk. The match itself is still decided watch by watch, in
//! connection order and registration order, exactly as before.
//!
//! # Invariants
//! - The index holds one entry per registered watch: `(key of its node, its connection)`.
//! - It may only over-report: a key collision or a stale entry makes `fire_watches` look
//!   at a connection with nothing matching, never skip one that has a match.
//!
//! Left out: the node strings themselves (a 64-bit FNV-1a key stands for each), so a
//! lookup compares integers, not paths.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::ids::XsConnId;

/// FNV-1a's 64-bit offset basis: the key of the empty path.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One FNV-1a step: `state` after `byte`.
fn fnv_step(state: u64, byte: u8) -> u64 {
    (state ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// The key of a watch node (FNV-1a of its bytes).
fn key_of(node: &str) -> u64 {
    node.bytes().fold(FNV_OFFSET, fnv_step)
}

/// The watches of every connection by the key of their node, one entry per watch.
#[derive(Debug, Default)]
pub(super) struct WatchIndex {
    by_key: BTreeMap<u64, Vec<XsConnId>>,
    /// Entries over all keys (one per registered watch).
    entries_count: usize,
}

impl WatchIndex {
    /// `conn` registered a watch on `node`.
    pub(super) fn add(&mut self, node: &str, conn: XsConnId) {
        self.by_key.entry(key_of(node)).or_default().push(conn);
        self.entries_count += 1;
    }

    /// `conn` dropped one watch on `node` (one entry goes; a missing one is a bug).
    pub(super) fn remove(&mut self, node: &str, conn: XsConnId) {
        let key = key_of(node);
        let Some(conns) = self.by_key.get_mut(&key) else {
            debug_assert!(false, "no watch indexed on {node}");
            return;
        };
        let Some(at) = conns.iter().position(|c| *c == conn) else {
            debug_assert!(false, "{conn:?} has no watch indexed on {node}");
            return;
        };
        conns.swap_remove(at);
        self.entries_count -= 1;
        if conns.is_empty() {
            self.by_key.remove(&key);
        }
    }

    /// Entries over all keys (one per registered watch).
    pub(super) fn entries_count(&self) -> usize {
        self.entries_count
    }

    /// How many watches of `conn` are indexed under `node`'s key.
    pub(super) fn count_of(&self, node: &str, conn: XsConnId) -> usize {
        self.by_key
            .get(&key_of(node))
            .map_or(0, |conns| conns.iter().filter(|c| **c == conn).count())
    }

    /// Sets `out` to every connection, ascending and without duplicates, that may hold
    /// a watch matching a change of `name`: on `name` itself when `exact`, else on `name`,
    /// on any ancestor of it (every prefix that ends where a `/` follows, the empty one
    /// included) or on `/` (`path::is_at_or_below`).
    pub(super) fn conns_for(&self, name: &str, exact: bool, out: &mut Vec<XsConnId>) {
        out.clear();
        if exact {
            self.extend_with(key_of(name), out);
        } else {
            self.extend_with(key_of("/"), out);
            let mut state = FNV_OFFSET;
            for &byte in name.as_bytes() {
                if byte == b'/' {
                    self.extend_with(state, out);
                }
                state = fnv_step(state, byte);
            }
            self.extend_with(state, out);
        }
        out.sort_unstable();
        out.dedup();
    }

    fn extend_with(&self, key: u64, out: &mut Vec<XsConnId>) {
        if let Some(conns) = self.by_key.get(&key) {
            out.extend_from_slice(conns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::path::is_at_or_below;
    use alloc::string::String;
    use proptest::prelude::*;

    fn node_strategy() -> impl Strategy<Value = String> {
        // Few names at few levels, relative-looking and special ones too, so that
        // ancestors, siblings with common prefixes and `/` all occur.
        prop::collection::vec(prop::sample::select(alloc::vec!["a", "ab", "b", ""]), 0..4)
            .prop_map(|parts| alloc::format!("/{}", parts.join("/")))
    }

    proptest! {
        #[test]
        fn conns_for_covers_every_matching_watch(
            watches in prop::collection::vec((node_strategy(), 0u32..4), 0..12),
            name in node_strategy(),
            exact in any::<bool>(),
        ) {
            let mut index = WatchIndex::default();
            for (node, conn) in &watches {
                index.add(node, XsConnId(*conn));
            }
            let mut found = Vec::new();
            index.conns_for(&name, exact, &mut found);
            for (node, conn) in &watches {
                let hit = if exact { *node == name } else { is_at_or_below(&name, node) };
                prop_assert!(!hit || found.contains(&XsConnId(*conn)), "{} on {}", conn, node);
            }
            prop_assert!(found.windows(2).all(|w| w[0] < w[1]));
        }
    }

    /// Two arbitrary connection ids.
    const A: XsConnId = XsConnId(3);
    const B: XsConnId = XsConnId(7);

    #[test]
    fn conns_for_subtree_change_finds_ancestor_and_root_watchers() {
        let mut index = WatchIndex::default();
        index.add("/local/domain/1", B);
        index.add("/", A);
        let mut out = Vec::new();
        index.conns_for("/local/domain/1/device/vif/0", false, &mut out);
        assert_eq!(out, [A, B]);
    }

    #[test]
    fn conns_for_skips_sibling_with_common_prefix() {
        let mut index = WatchIndex::default();
        index.add("/local/domain/1", A);
        let mut out = Vec::new();
        index.conns_for("/local/domain/12/device", false, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn conns_for_exact_change_ignores_ancestors() {
        let mut index = WatchIndex::default();
        index.add("/local", A);
        index.add("@releaseDomain", B);
        let mut out = Vec::new();
        index.conns_for("@releaseDomain", true, &mut out);
        assert_eq!(out, [B]);
    }

    #[test]
    fn remove_drops_one_entry_of_a_repeated_watch() {
        let mut index = WatchIndex::default();
        index.add("/a", A);
        index.add("/a", A);
        index.remove("/a", A);
        assert_eq!(index.count_of("/a", A), 1);
        assert_eq!(index.entries_count(), 1);
    }
}
