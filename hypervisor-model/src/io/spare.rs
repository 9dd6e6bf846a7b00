//! Emptied buffers kept for reuse, so that the data paths' per-batch and per-request work
//! does not allocate: netback's TX batches, blkback's batch outcomes and its requests'
//! segment lists. The pool's bound is not a behaviour: past it a buffer is freed, and a
//! buffer taken from the pool is empty either way.

use alloc::vec::Vec;

/// At most `MAX` emptied `Vec<T>`, handed out again by [`Self::take`].
#[derive(Clone, Debug)]
pub struct SpareBuffers<T, const MAX: usize> {
    buffers: Vec<Vec<T>>,
}

impl<T, const MAX: usize> Default for SpareBuffers<T, MAX> {
    fn default() -> Self {
        Self {
            buffers: Vec::new(),
        }
    }
}

impl<T, const MAX: usize> SpareBuffers<T, MAX> {
    /// An empty buffer: a kept one if there is one, else a new one (which allocates only
    /// when it is first filled).
    #[inline]
    pub fn take(&mut self) -> Vec<T> {
        let buffer = self.buffers.pop().unwrap_or_default();
        debug_assert!(buffer.is_empty(), "a kept buffer is empty");
        buffer
    }

    /// Keeps `buffer`, whose contents the caller has handled and removed, unless it never
    /// allocated or `MAX` buffers are kept already.
    #[inline]
    pub fn keep(&mut self, buffer: Vec<T>) {
        debug_assert!(buffer.is_empty(), "a buffer is emptied before it is kept");
        if buffer.capacity() > 0 && self.buffers.len() < MAX {
            self.buffers.push(buffer);
        }
    }

    /// How many buffers are kept.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// True if no buffer is kept.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::SpareBuffers;

    #[test]
    fn a_kept_buffer_comes_back_empty_with_its_capacity() {
        let mut spare: SpareBuffers<u32, 2> = SpareBuffers::default();
        let mut buffer = vec![1, 2, 3];
        buffer.clear();
        let capacity = buffer.capacity();

        spare.keep(buffer);
        let again = spare.take();

        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
        assert!(spare.is_empty());
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound_and_no_unallocated_buffer() {
        let mut spare: SpareBuffers<u8, 2> = SpareBuffers::default();

        spare.keep(Vec::new());
        for _ in 0..3 {
            spare.keep(Vec::with_capacity(4));
        }

        assert_eq!(spare.len(), 2);
    }
}
