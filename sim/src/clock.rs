//! Virtual time and the event queue.
//!
//! One queue carries every host of a scenario. Events are ordered by (time, sequence
//! number); the sequence number is assigned at push, so two events at the same instant run
//! in the order they were scheduled, never by address or hash.
//!
//! # Invariants
//! - Popped times never decrease (virtual time only moves forward).
//! - Sequence numbers are unique and increasing.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// An event with its place in the order.
#[derive(Debug)]
struct Entry<E> {
    time_ns: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ns, self.seq) == (other.time_ns, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest (time, seq) first.
        (other.time_ns, other.seq).cmp(&(self.time_ns, self.seq))
    }
}

/// The event queue and the virtual clock.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
    now_ns: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            now_ns: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Current virtual time, ns since boot.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Schedules `event` at `time_ns` (not before now).
    pub fn push(&mut self, time_ns: u64, event: E) {
        assert!(
            time_ns >= self.now_ns,
            "event scheduled in the past: {time_ns} < {}",
            self.now_ns
        );
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry {
            time_ns,
            seq,
            event,
        });
    }

    /// Time of the earliest event.
    pub fn peek_time_ns(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.time_ns)
    }

    /// Removes the earliest event and moves the clock to its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let entry = self.heap.pop()?;
        assert!(entry.time_ns >= self.now_ns, "virtual time went backwards");
        self.now_ns = entry.time_ns;
        Some((entry.time_ns, entry.event))
    }

    /// Moves the clock forward to `time_ns` without popping anything: `xensim serve` uses it
    /// for a request's modelled cost and for the instant its frozen timeline stands at.
    /// Events pending before `time_ns` stay queued; the caller must not pop them (a frozen
    /// timeline never pops again; a running one pops everything before `time_ns` first).
    pub fn set_now(&mut self, time_ns: u64) {
        assert!(time_ns >= self.now_ns, "virtual time went backwards");
        self.now_ns = time_ns;
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::EventQueue;

    #[test]
    fn same_time_events_pop_in_push_order() {
        let mut queue = EventQueue::new();
        queue.push(10, 'a');
        queue.push(10, 'b');
        queue.push(5, 'c');
        assert_eq!(queue.pop(), Some((5, 'c')));
        assert_eq!(queue.pop(), Some((10, 'a')));
        assert_eq!(queue.pop(), Some((10, 'b')));
    }

    #[test]
    #[should_panic(expected = "in the past")]
    fn push_before_now_panics() {
        let mut queue = EventQueue::new();
        queue.push(10, ());
        let _ = queue.pop();
        queue.push(9, ());
    }
}
