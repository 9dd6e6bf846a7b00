//! A connection's queue of frames waiting for the transport, which also counts the watch
//! events in it by a key of their payload: `send_event`'s duplicate check (an event equal
//! to one still queued is dropped) scans the queue only when an event with the same key
//! is queued, instead of on every event (a client that reads rarely has a long queue).
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17 (`struct connection`'s `out_list`
//! and the duplicate check in `send_event`). The check's answer is the full scan's: a key
//! only rules frames out, and a match is confirmed by comparing the frames.
//!
//! # Invariants
//! - `events[k]` is the number of queued frames of type `WATCH_EVENT` whose payload has
//!   key `k`; no entry is zero.

use alloc::collections::{BTreeMap, VecDeque};

use super::path_map::bytes_key;
use super::wire::{Frame, MsgType};

/// Frames waiting for the transport, in order, with their watch events counted.
#[derive(Debug, Default)]
pub(super) struct OutQueue {
    frames: VecDeque<Frame>,
    /// Queued `WATCH_EVENT` frames by payload key: how many.
    events: BTreeMap<u64, u32>,
}

/// Whether `frame` is counted in `events`.
fn is_event(frame: &Frame) -> bool {
    frame.header.msg_type == MsgType::WatchEvent.raw()
}

impl OutQueue {
    pub(super) fn push_back(&mut self, frame: Frame) {
        if is_event(&frame) {
            *self.events.entry(bytes_key(&frame.payload)).or_insert(0) += 1;
        }
        self.frames.push_back(frame);
    }

    pub(super) fn pop_front(&mut self) -> Option<Frame> {
        let frame = self.frames.pop_front()?;
        if is_event(&frame) {
            self.uncount(bytes_key(&frame.payload));
        }
        Some(frame)
    }

    fn uncount(&mut self, key: u64) {
        let count = self
            .events
            .get_mut(&key)
            .expect("a queued event is counted");
        *count -= 1;
        if *count == 0 {
            self.events.remove(&key);
        }
    }

    pub(super) fn clear(&mut self) {
        self.frames.clear();
        self.events.clear();
    }

    /// Empties the queue, oldest frame first.
    pub(super) fn drain(&mut self) -> alloc::collections::vec_deque::Drain<'_, Frame> {
        self.events.clear();
        self.frames.drain(..)
    }

    pub(super) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(super) fn iter(&self) -> alloc::collections::vec_deque::Iter<'_, Frame> {
        self.frames.iter()
    }

    /// Whether a `WATCH_EVENT` frame with this payload is queued.
    pub(super) fn holds_event(&self, payload: &[u8]) -> bool {
        if !self.events.contains_key(&bytes_key(payload)) {
            return false;
        }
        self.frames
            .iter()
            .any(|f| is_event(f) && f.payload == payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// One step on the queue.
    #[derive(Clone, Debug)]
    enum Op {
        /// A watch event with path and token from a small set (repeats are likely).
        Event(u8, u8),
        /// A reply frame of another type with the same payload shape.
        Reply(u8),
        Pop,
        Clear,
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3, 0u8..2).prop_map(|(p, t)| Op::Event(p, t)),
            1 => (0u8..3).prop_map(Op::Reply),
            3 => Just(Op::Pop),
            1 => Just(Op::Clear),
        ]
    }

    fn event(path: u8, token: u8) -> Frame {
        let path = alloc::format!("/p{path}");
        Frame::watch_event(path.as_bytes(), &[b'a' + token]).expect("fits")
    }

    fn reply(path: u8) -> Frame {
        let mut frame = event(path, 0);
        frame.header.msg_type = MsgType::Read.raw();
        frame
    }

    proptest! {
        #[test]
        fn holds_event_matches_a_full_scan(ops in prop::collection::vec(op_strategy(), 0..40)) {
            let mut queue = OutQueue::default();
            let mut plain: VecDeque<Frame> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Event(p, t) => {
                        queue.push_back(event(p, t));
                        plain.push_back(event(p, t));
                    }
                    Op::Reply(p) => {
                        queue.push_back(reply(p));
                        plain.push_back(reply(p));
                    }
                    Op::Pop => prop_assert_eq!(queue.pop_front(), plain.pop_front()),
                    Op::Clear => {
                        queue.clear();
                        plain.clear();
                    }
                }
                for (p, t) in [(0, 0), (0, 1), (1, 0), (2, 1)] {
                    let probe = event(p, t).payload;
                    let scan = plain.iter().any(|f| is_event(f) && f.payload == probe);
                    prop_assert_eq!(queue.holds_event(&probe), scan);
                }
            }
            let drained: Vec<Frame> = queue.drain().collect();
            prop_assert_eq!(drained, plain.into_iter().collect::<Vec<_>>());
            prop_assert!(queue.events.is_empty());
        }
    }
}
