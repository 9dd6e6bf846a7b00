//! Virtual time and the event queue.
//!
//! One queue carries every host of a scenario. Events are ordered by (time, sequence
//! number); the sequence number is assigned at push, so two events at the same instant run
//! in the order they were scheduled, never by address or hash.
//!
//! The heap holds 16-byte keys (time, sequence and the event's place in a slab) rather than
//! the events themselves, so its sifts move and compare one `u128`. A pop from the heap
//! leaves its key on top until the next push to that heap, or the next pop from it: a push
//! then overwrites it and sifts once from the top, where a pop and a push sifted twice (an
//! event taken from the heap, such as a guest's demand-done, mostly pushes the next one at
//! once). Meanwhile the heap's smallest pending key is the smaller of the top's two
//! children, so looking at the queue (a pop from another source, `push_now`) needs no sift
//! (a guest that blocks pushes its next event to the other heap, or none): where each look
//! popped the taken key first, `io-64-moderate`'s steady state took 1.8 M instructions
//! (0.12%) more.
//!
//! Slotted events (the pCPU scheduler timers) live outside the heap, at most one per slot: a
//! re-arm replaces the pending one, where a heap would keep every superseded timer until
//! its time came (97% of the timer events of `bench-64x512`). A cancel leaves the event in
//! its slot: the run loop drops it by its timer generation if it pops before a re-arm. The
//! slots keep their smallest key; `pop` takes the earlier of it and the heap's top by
//! (time, sequence), so the order of the events that do run is the same. A re-arm changes
//! the smallest key only if it sets a smaller one, or if it moves the slot that held it:
//! then a scan of the slots finds it again. A host's pCPUs rarely re-arm the earliest of
//! their timers (timers are re-armed at every `schedule()` and almost never fire), so a
//! re-arm mostly costs one comparison, where the tournament tree it replaces walked about
//! two of its levels (1% of `bench-64x512`'s instructions).
//!
//! Events whose callers push them in (time, sequence) order (every scheduler IPI of a host
//! arrives one fixed latency after it is sent) may wait in a FIFO lane instead of the heap
//! ([`EventQueue::push_in_order`]): appending and taking the front cost no sift. There are
//! [`LANES`] lanes, one per such source (a source with one fixed delay keeps its lane in
//! order). An event due before its lane's newest goes to the heap instead, so a lane stays
//! sorted whatever the callers do. The earliest of the lanes' fronts is kept up to date on
//! push and on a lane's pop, so `pop` compares one lane key with the heap's top and the
//! slots' (comparing every lane's front at each pop cost `bench-64x512` about 3% of its
//! CPU time).
//!
//! The keys without a slot or lane wait in [`HEAPS`] binary heaps, by the class the caller
//! names ([`EventQueue::push_to_heap`]): the run loop keeps its running vCPUs' demand-done
//! events (about one per pCPU, and more than half of the heap events of `bench-64x512`) in
//! a heap of their own, a few levels shallower than the one of the blocked vCPUs' wakes
//! beside them, so each of their sifts is shorter. `pop` takes the smaller of the heaps'
//! tops, as it does of the sources above.
//!
//! An event due now that nothing pending precedes (a blocked guest's zero-length run,
//! [`EventQueue::push_now`]) waits in a place of its own, `now_event`, and pops next,
//! without a key or a sift.
//!
//! Tried and left out (when the slots were a tournament tree): a slot per guest vCPU for
//! its demand-done and wake events (a tree of a thousand slots instead of a heap of five
//! hundred keys) measured
//! slower on `bench-64x512`; the tree and the events outgrew the L1 cache. Nor a slot per
//! pCPU for the demand-done event of the vCPU it runs (64 more leaves next to the timers;
//! no superseded demand-done events left to pop): on `bench-64x512` it took 2% more
//! instructions and more mispredicted branches (valgrind) than the heap it relieved.
//!
//! # Invariants
//! - Popped times never decrease (virtual time only moves forward).
//! - Sequence numbers are unique and increasing, shared by heap and slot events.
//! - Each heap key names an occupied slab place, and each occupied place one heap key;
//!   the exception is the top key of each heap `h` with `heap_top_taken[h]` (its event is
//!   popped); the smallest pending key of such a heap is the smaller of the top's children.
//! - Each lane's keys ascend from front to back; `lane_fronts[i]` is lane `i`'s front key
//!   (`EMPTY_KEY` when it is empty), and `lanes_first` the smallest of them and its lane.
//! - The slots' smallest key is the smallest of their keys; an empty slot's key is
//!   `EMPTY_KEY`, above every real key.
//! - `now_event`, when set, precedes every other pending event (it pops next).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Low bits of a heap key that hold the event's index in the slab.
const SLAB_INDEX_BITS: u32 = 24;
/// Most events pending in the heap at once (slab indexes fit [`SLAB_INDEX_BITS`]).
pub const HEAP_PENDING_MAX: usize = 1 << SLAB_INDEX_BITS;
/// Most events one queue may ever schedule (sequence numbers fit the rest of the low word).
pub const SEQ_MAX: u64 = 1 << (u64::BITS - SLAB_INDEX_BITS);

/// A heap entry: `time << 64 | seq << 24 | slab index`. Sequence numbers are unique, so
/// ordering keys orders by (time, sequence); the index only says where the event waits.
type HeapKey = u128;

fn heap_key(time_ns: u64, seq: u64, index: usize) -> HeapKey {
    debug_assert!(seq < SEQ_MAX && index < HEAP_PENDING_MAX);
    let low = (seq << SLAB_INDEX_BITS) | u64::try_from(index).unwrap_or(u64::MAX);
    (HeapKey::from(time_ns) << 64) | HeapKey::from(low)
}

/// The (time, sequence) and the slab index of a heap key.
fn split_heap_key(key: HeapKey) -> ((u64, u64), usize) {
    let time_ns = key_time_ns(key);
    let low = u64::try_from(key & HeapKey::from(u64::MAX)).unwrap_or(u64::MAX);
    let index = usize::try_from(low & ((1 << SLAB_INDEX_BITS) - 1)).unwrap_or(usize::MAX);
    ((time_ns, low >> SLAB_INDEX_BITS), index)
}

/// The time of a heap key.
#[inline(always)]
fn key_time_ns(key: HeapKey) -> u64 {
    u64::try_from(key >> 64).unwrap_or(u64::MAX)
}

/// The key of an empty slot: after every real key.
const EMPTY_KEY: HeapKey = HeapKey::MAX;

/// Most slots (one per pCPU of every host).
pub const SLOTS_MAX: usize = 1 << 20;

// A slot number fits the index bits of a key.
const _: () = assert!(SLOTS_MAX <= HEAP_PENDING_MAX);

/// At most one pending event per slot, and the smallest of their keys.
///
/// Every key has the layout of the heap's (`time << 64 | seq << 24 | slot`), so a
/// comparison is one `u128` and the earliest slot's number is in its low bits.
///
/// # Invariants
/// - `keys[s]` is slot `s`'s key, [`EMPTY_KEY`] when the slot is empty.
/// - `min` is the smallest of `keys` ([`EMPTY_KEY`] when every slot is empty).
#[derive(Debug)]
struct Slots<E> {
    /// Each slot's key.
    keys: Vec<HeapKey>,
    /// The smallest of `keys`.
    min: HeapKey,
    /// The pending event per slot.
    events: Vec<Option<E>>,
    /// Occupied slots.
    live_count: usize,
}

impl<E> Slots<E> {
    fn new() -> Self {
        Slots {
            keys: Vec::new(),
            min: EMPTY_KEY,
            events: Vec::new(),
            live_count: 0,
        }
    }

    /// Makes room for `slot_count` slots (slots are created at boot).
    #[cold]
    fn grow(&mut self, slot_count: usize) {
        assert!(slot_count <= SLOTS_MAX, "more than {SLOTS_MAX} slots");
        self.keys.resize(slot_count, EMPTY_KEY);
        self.events.resize_with(slot_count, || None);
    }

    /// Sets slot `slot`'s key (its place exists) and keeps `min` the smallest key: a
    /// smaller key is the new smallest; if the slot held the smallest and its key grows,
    /// the slots are scanned for the new one.
    #[inline]
    fn update(&mut self, slot: usize, key: HeapKey) {
        let Some(place) = self.keys.get_mut(slot) else {
            return;
        };
        let old = std::mem::replace(place, key);
        if key < self.min {
            self.min = key;
        } else if old == self.min {
            self.min = self.keys.iter().copied().min().unwrap_or(EMPTY_KEY);
        }
        debug_assert_eq!(
            Some(self.min),
            self.keys.iter().copied().min().or(Some(EMPTY_KEY)),
            "the slots' smallest key is out of date"
        );
    }

    /// The key of the earliest slot, [`EMPTY_KEY`] when no slot is occupied.
    #[inline(always)]
    fn min_key(&self) -> HeapKey {
        self.min
    }

    /// The key of the earliest slot, if any slot is occupied.
    fn first_key(&self) -> Option<HeapKey> {
        let key = self.min_key();
        (key != EMPTY_KEY).then_some(key)
    }

    fn set(&mut self, slot: usize, (time_ns, seq): (u64, u64), event: E) {
        if slot >= self.events.len() {
            self.grow(slot + 1);
        }
        if self.events[slot].is_none() {
            self.live_count += 1;
        }
        self.events[slot] = Some(event);
        self.update(slot, heap_key(time_ns, seq, slot));
    }

    fn take(&mut self, slot: usize) -> Option<E> {
        let event = self.events.get_mut(slot)?.take()?;
        self.live_count -= 1;
        self.update(slot, EMPTY_KEY);
        Some(event)
    }
}

/// Number of FIFO lanes ([`EventQueue::push_in_order`]).
pub const LANES: usize = 3;

/// Number of heaps ([`EventQueue::push_to_heap`]); heap 0 takes [`EventQueue::push`].
pub const HEAPS: usize = 2;

/// Where the earliest pending event waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The heap of that index.
    Heap(usize),
    Slot,
    /// The FIFO lane of that index.
    Lane(usize),
}

/// The event queue and the virtual clock.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// Keys of the events without a slot or lane, by heap; the smallest on each top.
    heaps: [BinaryHeap<Reverse<HeapKey>>; HEAPS],
    /// Events pushed in key order ([`EventQueue::push_in_order`]), with their keys (index
    /// bits 0); the earliest at each lane's front.
    lanes: [VecDeque<(HeapKey, E)>; LANES],
    /// The key at each lane's front ([`EMPTY_KEY`]: empty).
    lane_fronts: [HeapKey; LANES],
    /// The smallest of `lane_fronts`, and its lane.
    lanes_first: (HeapKey, usize),
    /// The events the heap's keys point at, and the free places among them.
    slab: Vec<Option<E>>,
    slab_free: Vec<usize>,
    /// The heaps whose top key belongs to an event already popped: the key is left in
    /// place for the next push to that heap to overwrite ([`EventQueue::push_to_heap`]).
    heap_top_taken: [bool; HEAPS],
    slots: Slots<E>,
    /// An event of [`EventQueue::push_now`]: it precedes every other pending event, so it
    /// waits outside the heaps, without a key.
    now_event: Option<E>,
    /// Its time.
    now_event_ns: u64,
    next_seq: u64,
    now_ns: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heaps: std::array::from_fn(|_| BinaryHeap::new()),
            lanes: std::array::from_fn(|_| VecDeque::new()),
            lane_fronts: [EMPTY_KEY; LANES],
            lanes_first: (EMPTY_KEY, 0),
            slab: Vec::new(),
            slab_free: Vec::new(),
            heap_top_taken: [false; HEAPS],
            slots: Slots::new(),
            now_event: None,
            now_event_ns: 0,
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

    /// Schedules `event` at `time_ns` (not before now), in heap 0.
    #[inline(always)]
    pub fn push(&mut self, time_ns: u64, event: E) {
        self.push_to_heap(0, time_ns, event);
    }

    /// Schedules `event` at `time_ns` (not before now) in heap `heap` (below [`HEAPS`]).
    /// Any heap gives the same order; a class of events that is pushed and popped often
    /// and has few pending at once sifts less in a heap of its own. Always inlined: called
    /// on its own, the copy of the event from the caller's stack into the slab stood out
    /// in profiles of `bench-64x512` (about 5% of the run).
    #[inline(always)]
    pub fn push_to_heap(&mut self, heap: usize, time_ns: u64, event: E) {
        let key = self.slab_key(time_ns, event);
        self.heap_push(heap, key);
    }

    /// Puts `key` on heap `heap`: in place of a taken top key, one sift down from the top
    /// (dropping the `PeekMut`) instead of a pop's sift and a push's. (Pushing a key due
    /// after the top's children once the taken key is popped measured 2.2 M instructions
    /// more on `io-64-moderate`'s steady state than this overwrite.)
    #[inline(always)]
    fn heap_push(&mut self, heap: usize, key: Reverse<HeapKey>) {
        if self.heap_top_taken[heap] {
            self.heap_top_taken[heap] = false;
            let mut top = self.heaps[heap]
                .peek_mut()
                .expect("a taken top key stays on the heap");
            *top = key;
        } else {
            self.heaps[heap].push(key);
        }
    }

    /// Puts `event`, due at `time_ns` (not before now), in a slab place: its heap key.
    #[inline(always)]
    fn slab_key(&mut self, time_ns: u64, event: E) -> Reverse<HeapKey> {
        assert!(
            time_ns >= self.now_ns,
            "event scheduled in the past: {time_ns} < {}",
            self.now_ns
        );
        let seq = self.next_seq();
        let index = match self.slab_free.pop() {
            Some(index) => {
                self.slab[index] = Some(event);
                index
            }
            None => {
                assert!(
                    self.slab.len() < HEAP_PENDING_MAX,
                    "more than {HEAP_PENDING_MAX} events pending"
                );
                self.slab.push(Some(event));
                self.slab.len() - 1
            }
        };
        Reverse(heap_key(time_ns, seq, index))
    }

    /// Schedules `event` at `time_ns` (not before now) as [`Self::push`] does, in FIFO lane
    /// `lane` (below [`LANES`]) when it is due no earlier than that lane's newest event
    /// (callers whose events come in time order, such as a host's IPIs, never reach the
    /// heap).
    #[inline(always)]
    pub fn push_in_order(&mut self, lane: usize, time_ns: u64, event: E) {
        let fifo = &self.lanes[lane];
        let in_order = match fifo.back() {
            Some(&(newest, _)) => split_heap_key(newest).0 .0 <= time_ns,
            None => true,
        };
        if !in_order || fifo.len() >= HEAP_PENDING_MAX {
            self.push(time_ns, event);
            return;
        }
        assert!(
            time_ns >= self.now_ns,
            "event scheduled in the past: {time_ns} < {}",
            self.now_ns
        );
        let key = heap_key(time_ns, self.next_seq(), 0);
        let fifo = &mut self.lanes[lane];
        if fifo.is_empty() {
            self.lane_fronts[lane] = key;
            if key < self.lanes_first.0 {
                self.lanes_first = (key, lane);
            }
        }
        fifo.push_back((key, event));
    }

    /// The next sequence number.
    #[inline]
    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        assert!(seq < SEQ_MAX, "more than {SEQ_MAX} events scheduled");
        self.next_seq += 1;
        seq
    }

    /// Schedules `event` at `time_ns` in `slot`, replacing the event pending there.
    pub fn push_slot(&mut self, slot: usize, time_ns: u64, event: E) {
        assert!(
            time_ns >= self.now_ns,
            "event scheduled in the past: {time_ns} < {}",
            self.now_ns
        );
        let seq = self.next_seq();
        self.slots.set(slot, (time_ns, seq), event);
    }

    /// Schedules `event` now, after every event pending now: a guest's zero-length run
    /// (a blocked model's block, about a quarter of `io-64-moderate`'s events), which
    /// mostly pops next. When nothing is pending at or before now, and no other event
    /// waits here, it waits outside the heaps: it will be the next event popped (every
    /// later push has a later key), so it needs no key, no sift and no slab place. Else it
    /// goes to heap `heap` as [`Self::push_to_heap`] would put it. The order of the events
    /// is the same either way; only the sequence numbers of later pushes differ (by one),
    /// and they order nothing but these events.
    #[inline]
    pub fn push_now(&mut self, heap: usize, event: E) {
        let now_ns = self.now_ns;
        if self.now_event.is_none() && self.first().is_none_or(|(t, _)| t > now_ns) {
            self.now_event = Some(event);
            self.now_event_ns = now_ns;
        } else {
            let key = self.slab_key(now_ns, event);
            self.heap_push(heap, key);
        }
    }

    /// Time of the earliest event.
    pub fn peek_time_ns(&mut self) -> Option<u64> {
        if self.now_event.is_some() {
            return Some(self.now_event_ns);
        }
        self.first().map(|(time_ns, _)| time_ns)
    }

    /// The earliest event's time, and where it waits. Heap, slot and lane keys share a
    /// layout and sequence numbers are unique, so comparing the keys compares (time,
    /// sequence). An empty place counts as [`EMPTY_KEY`], after every real key.
    ///
    /// Most events wait in the heaps (three in four on `bench-64x512`): the smaller top,
    /// then one test of its key against the other two names it, where picking the
    /// smallest of three (key, source) pairs in turn cost about 23 instructions per pop.
    #[inline(always)]
    fn first(&self) -> Option<(u64, Source)> {
        const _: () = assert!(HEAPS == 2, "first() compares the tops of two heaps");
        let (main, second) = (self.heap_first(0), self.heap_first(1));
        let (heap, heap_index) = if main < second {
            (main, 0)
        } else {
            (second, 1)
        };
        let slot = self.slots.min_key();
        let (lane_key, lane) = self.lanes_first;
        let (key, source) = if heap < slot && heap < lane_key {
            (heap, Source::Heap(heap_index))
        } else if slot < lane_key {
            (slot, Source::Slot)
        } else {
            (lane_key, Source::Lane(lane))
        };
        (key != EMPTY_KEY).then(|| (key_time_ns(key), source))
    }

    /// The smallest pending key of heap `heap` ([`EMPTY_KEY`]: none): its top, or, when
    /// the top's event was taken, the smaller of the top's children (every other key of a
    /// binary heap is below one of them).
    #[inline(always)]
    fn heap_first(&self, heap: usize) -> HeapKey {
        let keys = self.heaps[heap].as_slice();
        let key_at = |index: usize| keys.get(index).map_or(EMPTY_KEY, |k| k.0);
        if self.heap_top_taken[heap] {
            key_at(1).min(key_at(2))
        } else {
            key_at(0)
        }
    }

    /// Removes the earliest event and moves the clock to its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        if self.now_event.is_some() {
            return self.take_now_event(u64::MAX);
        }
        let first = self.first()?;
        self.take_first(first)
    }

    /// Removes the earliest event if it is due before `end_ns`, and moves the clock to its
    /// time.
    pub fn pop_before(&mut self, end_ns: u64) -> Option<(u64, E)> {
        if self.now_event.is_some() {
            return self.take_now_event(end_ns);
        }
        let first = self.first().filter(|&(time_ns, _)| time_ns < end_ns)?;
        self.take_first(first)
    }

    /// Takes the [`Self::push_now`] event waiting outside the heaps if it is due before
    /// `end_ns` (it precedes every other event).
    fn take_now_event(&mut self, end_ns: u64) -> Option<(u64, E)> {
        let time_ns = self.now_event_ns;
        if time_ns >= end_ns {
            return None;
        }
        assert!(time_ns >= self.now_ns, "virtual time went backwards");
        self.now_event.take().map(|event| (time_ns, event))
    }

    /// Removes the earliest event, which [`Self::first`] named.
    fn take_first(&mut self, (time_ns, source): (u64, Source)) -> Option<(u64, E)> {
        let event = match source {
            Source::Heap(heap) => {
                // The key stays on top until the next push to this heap overwrites it or
                // the next pop from it pops it first: most events popped from a heap (a
                // guest's demand-done) push the next one at once.
                let heaps = self.heaps.get_mut(heap)?;
                if std::mem::replace(&mut self.heap_top_taken[heap], true) {
                    let _ = heaps.pop();
                }
                let &Reverse(key) = heaps.peek()?;
                let (_, index) = split_heap_key(key);
                let event = self.slab.get_mut(index)?.take()?;
                self.slab_free.push(index);
                event
            }
            Source::Slot => {
                let (_, slot) = split_heap_key(self.slots.first_key()?);
                self.slots.take(slot)?
            }
            Source::Lane(lane) => {
                let fifo = &mut self.lanes[lane];
                let (_, event) = fifo.pop_front()?;
                self.lane_fronts[lane] = fifo.front().map_or(EMPTY_KEY, |&(key, _)| key);
                self.lanes_first = (EMPTY_KEY, 0);
                for (lane, &front) in self.lane_fronts.iter().enumerate() {
                    if front < self.lanes_first.0 {
                        self.lanes_first = (front, lane);
                    }
                }
                event
            }
        };
        assert!(time_ns >= self.now_ns, "virtual time went backwards");
        self.now_ns = time_ns;
        Some((time_ns, event))
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
        let in_lanes: usize = self.lanes.iter().map(VecDeque::len).sum();
        let in_heaps: usize = self.heaps.iter().map(BinaryHeap::len).sum();
        let taken_count = self.heap_top_taken.iter().filter(|&&taken| taken).count();
        let in_heap = in_heaps - taken_count;
        in_heap + self.slots.live_count + in_lanes + usize::from(self.now_event.is_some())
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
