//! Tests of the event queue (`clock.rs`): pop order against an ordered-map model, slots,
//! lanes, heaps and the event due now.

use std::collections::BTreeMap;

use proptest::prelude::*;

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
fn slot_event_interleaves_with_heap_events_by_push_order() {
    let mut queue = EventQueue::new();
    queue.push(10, 'a');
    queue.push_slot(3, 10, 'b');
    queue.push(10, 'c');
    assert_eq!(queue.len(), 3);
    assert_eq!(queue.pop(), Some((10, 'a')));
    assert_eq!(queue.pop(), Some((10, 'b')));
    assert_eq!(queue.pop(), Some((10, 'c')));
    assert!(queue.is_empty());
}

#[test]
fn push_after_a_heap_pop_takes_the_popped_key_place() {
    // 'a' pops; 'd' (due between 'b' and 'c') overwrites its key; 'b' pops before it
    // and 'c' after it, and the count never includes the popped 'a'.
    let mut queue = EventQueue::new();
    queue.push(10, 'a');
    queue.push(20, 'b');
    queue.push(40, 'c');
    let first = queue.pop();
    let after_pop_count = queue.len();
    queue.push(30, 'd');
    let order: Vec<char> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
    assert_eq!(first, Some((10, 'a')));
    assert_eq!(after_pop_count, 2);
    assert_eq!(order, vec!['b', 'd', 'c']);
}

#[test]
fn heaps_interleave_by_time_then_push_order() {
    // 'a' pops from heap 1; 'e' then takes its key's place there, 'd' goes on heap 0.
    let mut queue = EventQueue::new();
    queue.push_to_heap(1, 10, 'a');
    queue.push(20, 'b');
    queue.push_to_heap(1, 20, 'c');
    let first = queue.pop();
    queue.push(20, 'd');
    queue.push_to_heap(1, 15, 'e');
    assert_eq!(queue.len(), 4);
    let order: Vec<char> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
    assert_eq!(first, Some((10, 'a')));
    assert_eq!(order, vec!['e', 'b', 'c', 'd']);
}

#[test]
fn both_heaps_keep_taken_tops_while_other_sources_pop() {
    // 'a' pops from heap 1 and 'b' from heap 0: both popped keys stay on their tops while
    // the slot's 'x' pops (each heap's next key is one of its top's children), until a
    // push to each heap takes its place ('f' on heap 1) or the next pop from it ('c', 'e'
    // on heap 0).
    let mut queue = EventQueue::new();
    queue.push_to_heap(1, 10, 'a');
    queue.push(11, 'b');
    queue.push(40, 'c');
    queue.push(30, 'd');
    queue.push_to_heap(1, 50, 'e');
    queue.push_slot(0, 20, 'x');
    let firsts = [queue.pop(), queue.pop()];
    let taken_count = queue.len();
    let slot_first = queue.pop();
    queue.push_to_heap(1, 35, 'f');
    let order: Vec<char> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
    assert_eq!(firsts, [Some((10, 'a')), Some((11, 'b'))]);
    assert_eq!(taken_count, 4);
    assert_eq!(slot_first, Some((20, 'x')));
    assert_eq!(order, vec!['d', 'f', 'c', 'e']);
}

#[test]
fn push_now_pops_next_unless_an_event_is_due_now() {
    let mut queue = EventQueue::new();
    queue.push(10, 'a');
    queue.push(10, 'b');
    queue.push(20, 'c');
    let first = queue.pop();
    queue.push_now(1, 'd');
    queue.push(10, 'e');
    queue.push_now(0, 'f');
    let second = queue.pop();
    queue.push_now(1, 'g');
    queue.push_now(0, 'h');
    queue.push(10, 'i');
    let order: Vec<char> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
    assert_eq!(first, Some((10, 'a')));
    assert_eq!(second, Some((10, 'b')));
    assert_eq!(order, vec!['d', 'e', 'f', 'g', 'h', 'i', 'c']);
}

#[test]
fn push_now_with_nothing_pending_waits_outside_the_heaps() {
    let mut queue = EventQueue::new();
    queue.push(5, 'a');
    let _ = queue.pop();
    queue.push_now(1, 'b');
    queue.push(5, 'c');
    assert!(queue.now_event.is_some());
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.pop_before(5), None);
    assert_eq!(queue.peek_time_ns(), Some(5));
    assert_eq!(queue.pop_before(6), Some((5, 'b')));
    assert_eq!(queue.pop(), Some((5, 'c')));
    assert!(queue.is_empty());
}

#[test]
fn rearmed_slot_keeps_only_the_latest_event() {
    let mut queue = EventQueue::new();
    queue.push_slot(0, 5, 'a');
    queue.push_slot(0, 20, 'b');
    queue.push(10, 'c');
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.peek_time_ns(), Some(10));
    assert_eq!(queue.pop(), Some((10, 'c')));
    assert_eq!(queue.pop(), Some((20, 'b')));
    assert_eq!(queue.pop(), None);
}

#[test]
fn rearming_the_earliest_slot_later_hands_the_lead_to_the_next() {
    // Slot 2 leads at 10 and moves to 40: slot 0 (30) leads; slot 1 moves to 5 and
    // leads at once.
    let mut queue = EventQueue::new();
    for (slot, time_ns) in [(0, 30), (1, 50), (2, 10)] {
        queue.push_slot(slot, time_ns, slot);
    }
    queue.push_slot(2, 40, 2);
    let after_later = queue.peek_time_ns();
    queue.push_slot(1, 5, 1);
    let order: Vec<usize> = std::iter::from_fn(|| queue.pop().map(|(_, s)| s)).collect();
    assert_eq!(after_later, Some(30));
    assert_eq!(order, vec![1, 0, 2]);
}

#[test]
fn earliest_of_many_slots_pops_first() {
    let mut queue = EventQueue::new();
    for (slot, time_ns) in [(0, 50), (1, 30), (2, 40), (5, 10), (9, 20)] {
        queue.push_slot(slot, time_ns, slot);
    }
    let order: Vec<usize> = std::iter::from_fn(|| queue.pop().map(|(_, s)| s)).collect();
    assert_eq!(order, vec![5, 9, 1, 2, 0]);
}

#[test]
fn in_order_lane_interleaves_with_heap_and_slot_events_by_push_order() {
    let mut queue = EventQueue::new();
    queue.push_in_order(0, 10, 'a');
    queue.push(10, 'b');
    queue.push_in_order(0, 10, 'c');
    queue.push_slot(0, 10, 'd');
    queue.push_in_order(0, 20, 'e');
    // Earlier than the lane's newest: waits in the heap, still in time order.
    queue.push_in_order(0, 15, 'f');
    queue.push(5, 'g');
    // Another lane keeps its own order.
    queue.push_in_order(1, 12, 'h');
    queue.push_in_order(1, 30, 'i');
    assert_eq!(queue.len(), 9);
    let order: Vec<char> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
    assert_eq!(order, vec!['g', 'a', 'b', 'c', 'd', 'h', 'f', 'e', 'i']);
    assert!(queue.is_empty());
}

/// One step of a random schedule: a heap push, an in-order push (a random delay, or the
/// lane's own fixed delay, which keeps it in order), a slot re-arm, a slot clear or a
/// pop, with a delay from now.
#[derive(Debug, Clone)]
enum Op {
    Push(u64),
    PushToHeap(usize, u64),
    PushInOrder(usize, u64),
    PushInOrderFixed(usize),
    PushSlot(usize, u64),
    PushNow(usize),
    Pop,
    PopBefore(u64),
    Peek,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..50u64).prop_map(Op::Push),
        (0..super::HEAPS, 0..50u64).prop_map(|(heap, delay)| Op::PushToHeap(heap, delay)),
        (0..super::LANES, 0..50u64).prop_map(|(lane, delay)| Op::PushInOrder(lane, delay)),
        (0..super::LANES).prop_map(Op::PushInOrderFixed),
        (0..40usize, 0..50u64).prop_map(|(slot, delay)| Op::PushSlot(slot, delay)),
        (0..super::HEAPS).prop_map(Op::PushNow),
        (0..super::HEAPS).prop_map(Op::PushNow),
        (0..20u64).prop_map(Op::PopBefore),
        Just(Op::Pop),
        Just(Op::Pop),
        Just(Op::Peek),
    ]
}

proptest! {
    /// The queue pops what a plain ordered map of (time, push order) would: every heap
    /// and lane event, and the latest event of each slot, in (time,
    /// sequence) order.
    #[test]
    fn pops_match_an_ordered_map_model(ops in proptest::collection::vec(op(), 1..400)) {
        let mut queue = EventQueue::new();
        let mut model: BTreeMap<(u64, u64), u32> = BTreeMap::new();
        let mut slot_keys: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        let (mut seq, mut now_ns) = (0u64, 0u64);
        for (id, op) in (0u32..).zip(ops) {
            match op {
                Op::Push(delay) => {
                    queue.push(now_ns + delay, id);
                    model.insert((now_ns + delay, seq), id);
                    seq += 1;
                }
                Op::PushToHeap(heap, delay) => {
                    queue.push_to_heap(heap, now_ns + delay, id);
                    model.insert((now_ns + delay, seq), id);
                    seq += 1;
                }
                Op::PushInOrder(lane, delay) => {
                    queue.push_in_order(lane, now_ns + delay, id);
                    model.insert((now_ns + delay, seq), id);
                    seq += 1;
                }
                Op::PushInOrderFixed(lane) => {
                    let delay = 7 * u64::try_from(lane).unwrap_or(0);
                    queue.push_in_order(lane, now_ns + delay, id);
                    model.insert((now_ns + delay, seq), id);
                    seq += 1;
                }
                Op::PushSlot(slot, delay) => {
                    queue.push_slot(slot, now_ns + delay, id);
                    if let Some(old) = slot_keys.insert(slot, (now_ns + delay, seq)) {
                        model.remove(&old);
                    }
                    model.insert((now_ns + delay, seq), id);
                    seq += 1;
                }
                Op::PushNow(heap) => {
                    queue.push_now(heap, id);
                    model.insert((now_ns, seq), id);
                    seq += 1;
                }
                Op::PopBefore(delay) => {
                    let end_ns = now_ns + delay;
                    let expected = match model.first_key_value() {
                        Some((&(t, _), _)) if t < end_ns => model.pop_first(),
                        _ => None,
                    };
                    if let Some((key, _)) = expected {
                        slot_keys.retain(|_, k| *k != key);
                        now_ns = key.0;
                    }
                    let popped = queue.pop_before(end_ns);
                    prop_assert_eq!(popped, expected.map(|((t, _), id)| (t, id)));
                }
                Op::Pop => {
                    let expected = model.pop_first();
                    if let Some((key, _)) = expected {
                        slot_keys.retain(|_, k| *k != key);
                        now_ns = key.0;
                    }
                    prop_assert_eq!(queue.pop(), expected.map(|((t, _), id)| (t, id)));
                }
                Op::Peek => {
                    let expected = model.first_key_value().map(|(&(t, _), _)| t);
                    prop_assert_eq!(queue.peek_time_ns(), expected);
                }
            }
            prop_assert_eq!(queue.len(), model.len());
        }
    }
}

#[test]
#[should_panic(expected = "in the past")]
fn push_before_now_panics() {
    let mut queue = EventQueue::new();
    queue.push(10, ());
    let _ = queue.pop();
    queue.push(9, ());
}
