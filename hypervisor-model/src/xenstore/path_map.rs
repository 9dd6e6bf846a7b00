//! A map from XenStore paths to values that finds a path through a 64-bit key of its
//! bytes, so that a lookup compares integers on its way down the index and the path
//! only once at the end (a `BTreeMap<String, _>` compares long common prefixes such as
//! `/local/domain/12/device/vbd/51712/` at every step of its search).
//!
//! cxenstored finds a node by hashing its path too (4.17's TDB is a hash-indexed
//! database); this is the same idea with a deterministic index. It only changes how a
//! path is found: what is stored, and the sorted order [`PathMap::sorted`] hands out,
//! are a B-tree's.
//!
//! # Invariants
//! - Each stored path is in exactly one chain: the one [`path_key`] of it heads.
//! - A path is stored at most once; `len` counts the slots in use.
//! - A free slot is in no chain and is listed once in `free`.

use alloc::collections::{btree_map, BTreeMap};
use alloc::string::String;
use alloc::vec::Vec;

/// The multiplier of the key's mixing step (the 64-bit FxHash constant).
const KEY_MUL: u64 = 0x517c_c1b7_2722_0a95;

/// One mixing step: `state` after the 8-byte `word`.
fn key_step(state: u64, word: u64) -> u64 {
    (state.rotate_left(5) ^ word).wrapping_mul(KEY_MUL)
}

/// The index key of a path (see [`bytes_key`]).
pub(super) fn path_key(path: &str) -> u64 {
    bytes_key(path.as_bytes())
}

/// The index key of a byte string: its length, then its bytes eight at a time.
/// Different strings may share a key; users compare the strings themselves on a match.
pub(super) fn bytes_key(bytes: &[u8]) -> u64 {
    let mut state = key_step(0, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        state = key_step(state, u64::from_le_bytes(word));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        state = key_step(state, u64::from_le_bytes(word));
    }
    state
}

/// One stored path and its value.
#[derive(Clone, Debug)]
struct Slot<V> {
    path: String,
    value: V,
    /// The next slot whose path has the same key.
    next: Option<usize>,
}

/// Paths to values, found by key (see the module doc).
#[derive(Clone, Debug)]
pub(super) struct PathMap<V> {
    /// `None` = free (listed in `free`).
    slots: Vec<Option<Slot<V>>>,
    free: Vec<usize>,
    /// The first slot of each key's chain.
    heads: BTreeMap<u64, usize>,
    len: usize,
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        PathMap {
            slots: Vec::new(),
            free: Vec::new(),
            heads: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> PathMap<V> {
    fn slot(&self, at: usize) -> &Slot<V> {
        self.slots[at].as_ref().expect("a chained slot is in use")
    }

    fn slot_mut(&mut self, at: usize) -> &mut Slot<V> {
        self.slots[at].as_mut().expect("a chained slot is in use")
    }

    /// The slot holding `path` in the chain that starts at `at`.
    fn find_from(&self, mut at: usize, path: &str) -> Option<usize> {
        loop {
            let slot = self.slot(at);
            if slot.path == path {
                return Some(at);
            }
            at = slot.next?;
        }
    }

    fn find(&self, key: u64, path: &str) -> Option<usize> {
        let head = *self.heads.get(&key)?;
        self.find_from(head, path)
    }

    pub(super) fn get(&self, path: &str) -> Option<&V> {
        let at = self.find(path_key(path), path)?;
        Some(&self.slot(at).value)
    }

    pub(super) fn get_mut(&mut self, path: &str) -> Option<&mut V> {
        let at = self.find(path_key(path), path)?;
        Some(&mut self.slot_mut(at).value)
    }

    /// Stores `value` at `path`, replacing (and dropping) what was there.
    pub(super) fn insert(&mut self, path: &str, value: V) {
        self.insert_keyed(path_key(path), path, value);
    }

    /// [`Self::insert`] with the key given (tests force collisions through it).
    fn insert_keyed(&mut self, key: u64, path: &str, value: V) {
        let head = match self.heads.entry(key) {
            btree_map::Entry::Vacant(vacant) => {
                let at = Self::take_slot(&mut self.slots, &mut self.free, path, value, None);
                vacant.insert(at);
                self.len += 1;
                return;
            }
            btree_map::Entry::Occupied(occupied) => *occupied.get(),
        };
        if let Some(at) = self.find_from(head, path) {
            self.slot_mut(at).value = value;
            return;
        }
        let at = Self::take_slot(&mut self.slots, &mut self.free, path, value, Some(head));
        self.heads.insert(key, at);
        self.len += 1;
    }

    /// A free slot (or a new one) now holding `path`.
    fn take_slot(
        slots: &mut Vec<Option<Slot<V>>>,
        free: &mut Vec<usize>,
        path: &str,
        value: V,
        next: Option<usize>,
    ) -> usize {
        let slot = Some(Slot {
            path: String::from(path),
            value,
            next,
        });
        match free.pop() {
            Some(at) => {
                debug_assert!(slots[at].is_none(), "a free slot is empty");
                slots[at] = slot;
                at
            }
            None => {
                slots.push(slot);
                slots.len() - 1
            }
        }
    }

    /// Removes `path`, returning its value.
    pub(super) fn remove(&mut self, path: &str) -> Option<V> {
        self.remove_keyed(path_key(path), path)
    }

    fn remove_keyed(&mut self, key: u64, path: &str) -> Option<V> {
        let head = *self.heads.get(&key)?;
        let mut prev: Option<usize> = None;
        let mut at = head;
        while self.slot(at).path != path {
            prev = Some(at);
            at = self.slot(at).next?;
        }
        let gone = self.slots[at].take().expect("a chained slot is in use");
        match (prev, gone.next) {
            (Some(prev), next) => self.slot_mut(prev).next = next,
            (None, Some(next)) => {
                self.heads.insert(key, next);
            }
            (None, None) => {
                self.heads.remove(&key);
            }
        }
        self.free.push(at);
        self.len -= 1;
        Some(gone.value)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Every entry in ascending path order (as a `BTreeMap<String, V>` iterates).
    pub(super) fn sorted(&self) -> Vec<(&String, &V)> {
        let mut all: Vec<(&String, &V)> = self
            .slots
            .iter()
            .flatten()
            .map(|slot| (&slot.path, &slot.value))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One step of a random workload.
    #[derive(Clone, Debug)]
    enum Op {
        Insert(String, u32),
        Remove(String),
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        // Few short names, so that the same paths come back and prefixes are shared.
        prop::collection::vec(
            prop::sample::select(alloc::vec!["a", "bb", "local", "x9"]),
            0..4,
        )
        .prop_map(|parts| alloc::format!("/{}", parts.join("/")))
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            (path_strategy(), any::<u32>()).prop_map(|(p, v)| Op::Insert(p, v)),
            path_strategy().prop_map(Op::Remove),
        ]
    }

    #[test]
    fn colliding_paths_share_a_chain_and_stay_apart() {
        // One key for three paths: the chain alone tells them apart.
        const KEY: u64 = 7;
        let mut map: PathMap<u32> = PathMap::default();
        map.insert_keyed(KEY, "/a", 1);
        map.insert_keyed(KEY, "/b", 2);
        map.insert_keyed(KEY, "/c", 3);
        map.insert_keyed(KEY, "/b", 20);
        assert_eq!(map.len(), 3);
        assert_eq!(map.remove_keyed(KEY, "/b"), Some(20));
        assert_eq!(map.remove_keyed(KEY, "/c"), Some(3));
        assert_eq!(map.remove_keyed(KEY, "/b"), None);
        assert_eq!(map.find(KEY, "/a").map(|at| map.slot(at).value), Some(1));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn path_key_tells_a_tail_from_padding() {
        assert_ne!(path_key("/abcdefg"), path_key("/abcdefg\0"));
        assert_ne!(path_key(""), path_key("\0"));
    }

    proptest! {
        #[test]
        fn path_map_matches_btreemap(ops in prop::collection::vec(op_strategy(), 0..64)) {
            let mut map: PathMap<u32> = PathMap::default();
            let mut reference: BTreeMap<String, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(p, v) => {
                        map.insert(&p, v);
                        reference.insert(p, v);
                    }
                    Op::Remove(p) => {
                        prop_assert_eq!(map.remove(&p), reference.remove(&p));
                    }
                }
                prop_assert_eq!(map.len(), reference.len());
            }
            let sorted: Vec<(String, u32)> =
                map.sorted().into_iter().map(|(p, v)| (p.clone(), *v)).collect();
            let expected: Vec<(String, u32)> = reference.into_iter().collect();
            for (p, v) in &expected {
                prop_assert_eq!(map.get(p), Some(v));
            }
            prop_assert_eq!(sorted, expected);
        }
    }
}
