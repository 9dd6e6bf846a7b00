//! The credit2 per-domain data of one pool, indexed densely by domid.
//!
//! Xen reaches `csched2_dom` through `d->sched_priv` in O(1); a map keyed by domid would
//! add a tree search to every lookup of a unit (each decision makes several), so the
//! table is a vector indexed by domid, like the core's `DomainTable`.
//!
//! # Invariants
//! - Slot `i` holds the data of domid `i`, or `None`.
//! - Iteration is in ascending domid order (what the previous `BTreeMap` gave).

use alloc::vec::Vec;

use super::Dom;
use crate::ids::DomId;

/// Per-domain data by domid.
#[derive(Debug, Default)]
pub(crate) struct DomSlots {
    slots: Vec<Option<Dom>>,
}

impl DomSlots {
    /// The data of `dom`, if it is in the pool.
    pub(crate) fn get(&self, dom: &DomId) -> Option<&Dom> {
        self.slots.get(usize::from(dom.raw()))?.as_ref()
    }

    /// Mutable data of `dom`.
    pub(crate) fn get_mut(&mut self, dom: &DomId) -> Option<&mut Dom> {
        self.slots.get_mut(usize::from(dom.raw()))?.as_mut()
    }

    /// True if `dom` has data here.
    pub(crate) fn contains_key(&self, dom: &DomId) -> bool {
        self.get(dom).is_some()
    }

    /// Stores the data of `dom`, which must have none yet.
    pub(crate) fn insert(&mut self, dom: DomId, data: Dom) {
        let index = usize::from(dom.raw());
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        assert!(self.slots[index].is_none(), "d{} data twice", dom.raw());
        self.slots[index] = Some(data);
    }

    /// Takes the data of `dom` out.
    pub(crate) fn remove(&mut self, dom: &DomId) -> Option<Dom> {
        self.slots.get_mut(usize::from(dom.raw()))?.take()
    }

    /// Every domain's data in domid order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (DomId, &Dom)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let dom = DomId::new(u16::try_from(index).ok()?)?;
            Some((dom, slot.as_ref()?))
        })
    }
}
