//! A fixed table of slots with a free list, as Linux blkfront keeps its `shadow[]` array
//! and `shadow_free` chain: blkfront's outstanding ring requests (the slot index is the
//! request id) and its guest I/Os on the ring (`vbd.rs`). One type serves both, so the
//! pop-a-free-slot, check-it-is-empty, fill, take-and-push-back steps are written once.
//!
//! Follows Linux drivers/block/xen-blkfront.c (`get_id_from_freelist`,
//! `add_id_to_freelist`).
//!
//! # Invariants
//! - Every slot is either used or on the free list, exactly once (but between
//!   [`FreeSlots::take_free`] and [`FreeSlots::fill`]).
//! - Free slots are handed out last freed first, and lowest index first at the start (the
//!   ids a guest sees on its ring depend on this order).

use alloc::vec::Vec;

/// `count` slots of `T`, each used or free.
#[derive(Clone, Debug)]
pub struct FreeSlots<T> {
    /// By index.
    slots: Vec<Option<T>>,
    /// Free indices; the last one is handed out next.
    free: Vec<u16>,
}

impl<T> FreeSlots<T> {
    /// `count` free slots.
    pub fn new(count: u16) -> Self {
        FreeSlots {
            slots: (0..count).map(|_| None).collect(),
            free: (0..count).rev().collect(),
        }
    }

    /// Puts `value` in a free slot: its index, or `None` (and `value` is dropped) when
    /// every slot is used.
    #[inline]
    pub fn insert(&mut self, value: T) -> Option<u16> {
        let index = self.take_free()?;
        self.fill(index, value);
        Some(index)
    }

    /// Takes a free slot off the free list, to be filled by [`Self::fill`] (until then it
    /// is neither used nor free); `None` when every slot is taken.
    #[inline]
    pub fn take_free(&mut self) -> Option<u16> {
        let index = self.free.pop()?;
        assert!(
            self.slots[usize::from(index)].is_none(),
            "free slot {index} in use"
        );
        Some(index)
    }

    /// The slot [`Self::take_free`] would hand out next, left free.
    #[inline]
    pub fn peek_free(&self) -> Option<u16> {
        self.free.last().copied()
    }

    /// Fills slot `index`, which [`Self::take_free`] handed out.
    #[inline]
    pub fn fill(&mut self, index: u16, value: T) {
        let slot = &mut self.slots[usize::from(index)];
        assert!(slot.is_none(), "slot {index} filled twice");
        *slot = Some(value);
    }

    /// Takes the value of slot `index` out and frees the slot; `None` if it is not used
    /// (or out of range).
    #[inline]
    pub fn remove(&mut self, index: u16) -> Option<T> {
        let value = self.slots.get_mut(usize::from(index))?.take()?;
        debug_assert!(self.free.len() < self.slots.len(), "more free than slots");
        self.free.push(index);
        Some(value)
    }

    /// The value of slot `index`, if used.
    #[inline]
    pub fn get(&self, index: u16) -> Option<&T> {
        self.slots.get(usize::from(index))?.as_ref()
    }

    /// The value of slot `index`, writable, if used.
    #[inline]
    pub fn get_mut(&mut self, index: u16) -> Option<&mut T> {
        self.slots.get_mut(usize::from(index))?.as_mut()
    }

    /// Every used value, by index.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// Slots in all.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table has no slot at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Free slots.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Used slots (O(n): for checks).
    pub fn used_count(&self) -> usize {
        self.iter().count()
    }

    /// True if the used and the free slots make up the table (O(n): for checks; false
    /// between [`Self::take_free`] and [`Self::fill`]).
    pub fn accounts_for_every_slot(&self) -> bool {
        self.used_count() + self.free_count() == self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::FreeSlots;

    #[test]
    fn fresh_table_hands_out_lowest_index_first() {
        let mut slots: FreeSlots<u8> = FreeSlots::new(3);

        let first = slots.insert(10);
        let second = slots.insert(11);

        assert_eq!((first, second), (Some(0), Some(1)));
        assert_eq!(slots.free_count(), 1);
    }

    #[test]
    fn freed_slot_is_handed_out_next() {
        let mut slots: FreeSlots<u8> = FreeSlots::new(3);
        let _ = slots.insert(10);
        let _ = slots.insert(11);

        assert_eq!(slots.remove(0), Some(10));
        let again = slots.insert(12);

        assert_eq!(again, Some(0));
        assert_eq!(slots.get(0), Some(&12));
    }

    #[test]
    fn full_table_refuses_and_unused_slot_removes_nothing() {
        let mut slots: FreeSlots<u8> = FreeSlots::new(1);
        let _ = slots.insert(10);

        assert_eq!(slots.insert(11), None);
        assert_eq!(slots.remove(1), None);
        assert_eq!(slots.remove(0), Some(10));
        assert_eq!(slots.remove(0), None);
        assert_eq!(slots.used_count(), 0);
    }
}
