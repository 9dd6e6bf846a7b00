//! The per-host tables the split-I/O path looks up several times per request or packet,
//! indexed by domain id instead of kept in trees of every domain or device of the host:
//! [`DevMap`], keyed by (frontend domain, device number): the connected vbds and vifs and
//! their event-channel ports (`hypervisor/blk_glue.rs`, `hypervisor/net_glue.rs`); and
//! [`DomMap`], keyed by domain: each domain's event channels (`evtchn/ops.rs`) and grant
//! table (`grant/ops.rs`), looked up at both ends of every notification and grant copy.
//!
//! Both are ordered maps with the interface of the `BTreeMap`s they replace: a lookup
//! indexes a vector by the domain id (and a [`DevMap`] then scans that domain's few
//! devices).
//!
//! # Invariants
//! - Each entry is stored in the slot of its own domain, and a domain's devices are
//!   sorted by device number with no duplicates, so iteration is in key order, as the
//!   `BTreeMap`'s was.
//!
//! xensim differs, on purpose: nothing of Xen; a table costs a vector slot per domain id
//! up to the largest one it ever held (at most 32 k ids).

use alloc::vec::Vec;

use crate::ids::DomId;

/// An ordered map from [`DomId`] to `V`, indexed by domain id.
#[derive(Clone, Debug)]
pub struct DomMap<V> {
    /// By raw domain id.
    by_id: Vec<Option<V>>,
}

impl<V> Default for DomMap<V> {
    fn default() -> Self {
        DomMap { by_id: Vec::new() }
    }
}

impl<V> DomMap<V> {
    /// The value of `dom`.
    #[inline]
    pub fn get(&self, dom: &DomId) -> Option<&V> {
        self.by_id.get(usize::from(dom.raw()))?.as_ref()
    }

    /// The value of `dom`, writable.
    #[inline]
    pub fn get_mut(&mut self, dom: &DomId) -> Option<&mut V> {
        self.by_id.get_mut(usize::from(dom.raw()))?.as_mut()
    }

    /// Whether `dom` has a value.
    #[inline]
    pub fn contains_key(&self, dom: &DomId) -> bool {
        self.get(dom).is_some()
    }

    /// Sets `dom`'s value; the previous one, if any.
    pub fn insert(&mut self, dom: DomId, value: V) -> Option<V> {
        let index = usize::from(dom.raw());
        if self.by_id.len() <= index {
            self.by_id.resize_with(index + 1, || None);
        }
        self.by_id[index].replace(value)
    }

    /// Takes `dom`'s value out.
    pub fn remove(&mut self, dom: &DomId) -> Option<V> {
        self.by_id.get_mut(usize::from(dom.raw()))?.take()
    }

    /// Every value, in domain id order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.by_id.iter().flatten()
    }
}

/// A device of a domain: (frontend domain, device number).
pub type DevKey = (DomId, u32);

/// An ordered map from [`DevKey`] to `V`, indexed by domain id.
#[derive(Clone, Debug)]
pub struct DevMap<V> {
    /// By raw domain id: that domain's entries, by device number.
    slots: Vec<Vec<(DevKey, V)>>,
}

impl<V> Default for DevMap<V> {
    fn default() -> Self {
        DevMap { slots: Vec::new() }
    }
}

impl<V> DevMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries of `dom`, by device number.
    fn slot(&self, dom: DomId) -> &[(DevKey, V)] {
        self.slots
            .get(usize::from(dom.raw()))
            .map_or(&[], Vec::as_slice)
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &DevKey) -> Option<&V> {
        let slot = self.slot(key.0);
        // Most domains have one device of a kind: it is the first entry, found without
        // setting up a scan.
        let (first, rest) = slot.split_first()?;
        if first.0 .1 == key.1 {
            return Some(&first.1);
        }
        rest.iter().find(|(k, _)| k.1 == key.1).map(|(_, v)| v)
    }

    /// The value of `key`, writable.
    #[inline]
    pub fn get_mut(&mut self, key: &DevKey) -> Option<&mut V> {
        let slot = self.slots.get_mut(usize::from(key.0.raw()))?;
        let (first, rest) = slot.split_first_mut()?;
        if first.0 .1 == key.1 {
            return Some(&mut first.1);
        }
        rest.iter_mut().find(|(k, _)| k.1 == key.1).map(|(_, v)| v)
    }

    /// Whether `key` has a value.
    #[inline]
    pub fn contains_key(&self, key: &DevKey) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`'s value; the previous one, if any.
    pub fn insert(&mut self, key: DevKey, value: V) -> Option<V> {
        let index = usize::from(key.0.raw());
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Vec::new);
        }
        let slot = &mut self.slots[index];
        match slot.binary_search_by_key(&key.1, |(k, _)| k.1) {
            Ok(at) => Some(core::mem::replace(&mut slot[at].1, value)),
            Err(at) => {
                slot.insert(at, (key, value));
                None
            }
        }
    }

    /// Takes `key`'s value out.
    pub fn remove(&mut self, key: &DevKey) -> Option<V> {
        let slot = self.slots.get_mut(usize::from(key.0.raw()))?;
        let at = slot.iter().position(|(k, _)| k.1 == key.1)?;
        Some(slot.remove(at).1)
    }

    /// How many devices `dom` has.
    pub fn count_of(&self, dom: DomId) -> usize {
        self.slot(dom).len()
    }

    /// Every entry, in (domain, device) order.
    pub fn iter(&self) -> impl Iterator<Item = (&DevKey, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }
}

impl<V> core::ops::Index<&DevKey> for DevMap<V> {
    type Output = V;

    /// The value of `key`; panics if it has none (tests' shorthand, as `BTreeMap`'s).
    fn index(&self, key: &DevKey) -> &V {
        self.get(key).expect("no entry for the device")
    }
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;

    use super::*;

    fn dom(raw: u16) -> DomId {
        DomId::new(raw).expect("domid")
    }

    #[test]
    fn iterates_in_key_order_as_a_btreemap_does() {
        let mut map = DevMap::new();
        let mut reference = BTreeMap::new();
        let keys = [
            (5, 51728),
            (1, 0),
            (5, 51712),
            (3, 2),
            (1, 1),
            (0, 7),
            (3, 0),
        ];
        for (i, &(d, dev)) in keys.iter().enumerate() {
            assert_eq!(map.insert((dom(d), dev), i), None);
            reference.insert((dom(d), dev), i);
        }
        assert_eq!(
            map.insert((dom(3), 2), 99),
            reference.insert((dom(3), 2), 99)
        );
        assert_eq!(map.remove(&(dom(1), 0)), reference.remove(&(dom(1), 0)));
        assert_eq!(map.remove(&(dom(1), 0)), None);
        assert_eq!(map.remove(&(dom(40), 0)), None);
        let ours: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
        let theirs: Vec<_> = reference.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(ours, theirs);
        assert_eq!(map.count_of(dom(5)), 2);
        assert_eq!(map.count_of(dom(9)), 0);
        assert_eq!(map.get(&(dom(5), 51728)), Some(&0));
        assert!(!map.contains_key(&(dom(0), 8)));
        if let Some(v) = map.get_mut(&(dom(0), 7)) {
            *v = 42;
        }
        assert_eq!(map[&(dom(0), 7)], 42);
    }

    proptest::proptest! {
        /// `get` and `get_mut` (whose first entry is looked at before any scan) answer
        /// as the tree does, for domains with several devices.
        #[test]
        fn lookups_answer_as_a_btreemap_does(
            steps in proptest::collection::vec((proptest::bool::ANY, 0u16..3, 0u32..4), 0..40),
        ) {
            let mut map = DevMap::new();
            let mut reference = BTreeMap::new();
            for (insert, d, dev) in steps {
                if insert {
                    map.insert((dom(d), dev), u32::from(d) * 10 + dev);
                    reference.insert((dom(d), dev), u32::from(d) * 10 + dev);
                } else {
                    map.remove(&(dom(d), dev));
                    reference.remove(&(dom(d), dev));
                }
                for d in 0..4u16 {
                    for dev in 0..5u32 {
                        let key = (dom(d), dev);
                        proptest::prop_assert_eq!(map.get(&key), reference.get(&key));
                        let ours = map.get_mut(&key).copied();
                        proptest::prop_assert_eq!(ours, reference.get_mut(&key).copied());
                    }
                }
            }
        }
    }

    #[test]
    fn dom_map_iterates_in_domain_order_as_a_btreemap_does() {
        let mut map = DomMap::default();
        let mut reference = BTreeMap::new();
        for (i, d) in [7u16, 0, 3, 12, 1].into_iter().enumerate() {
            assert_eq!(map.insert(dom(d), i), reference.insert(dom(d), i));
        }
        assert_eq!(map.insert(dom(3), 9), reference.insert(dom(3), 9));
        assert_eq!(map.remove(&dom(12)), reference.remove(&dom(12)));
        assert_eq!(map.remove(&dom(12)), None);
        assert_eq!(map.remove(&dom(300)), None);
        let ours: Vec<_> = map.values().copied().collect();
        let theirs: Vec<_> = reference.values().copied().collect();
        assert_eq!(ours, theirs);
        assert!(map.contains_key(&dom(0)) && !map.contains_key(&dom(2)));
        if let Some(v) = map.get_mut(&dom(1)) {
            *v = 5;
        }
        assert_eq!(map.get(&dom(1)), Some(&5));
    }
}
