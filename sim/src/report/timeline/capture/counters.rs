//! The counters of the timeline capture (`specs/metrics.md` §4.3): runqueue and
//! waitqueue lengths and free memory, sampled at the window start and then on change.
//!
//! # Invariants
//! - A counter never goes below 0: a vCPU gives back exactly the key it took.
//! - One sample per counter and instant: a second change at the same instant replaces it.

use hypervisor_model::ids::{PcpuId, VcpuRef};

use super::{pcpu_index, HostCapture, Limits};
use crate::report::timeline::{CounterSample, CounterTrack};

impl HostCapture {
    /// The queue counter of a new rtds or null pool, at 0.
    pub(super) fn pool_counter(
        &mut self,
        limits: &mut Limits,
        time_ns: u64,
        pool: &str,
        scheduler: &str,
    ) {
        let name = match scheduler {
            "rtds" => runq_name(pool, None),
            "null" => format!("waitq {pool}"),
            _ => return,
        };
        if !self.counter_index.contains_key(&name) {
            let counter = self.counter(&name, "len");
            self.counter_set(limits, time_ns, counter, 0);
        }
    }

    /// The counter a runnable vCPU waits in: its credit2 runqueue or its rtds pool's queue
    /// (null's waitqueue is counted from `NullWaitq`).
    pub(super) fn queue_counter(&mut self, v: VcpuRef, pcpu: PcpuId) -> Option<u32> {
        let pool = self.pool_of(v.dom);
        let name = match self.scheduler_of(pool) {
            "credit2" => {
                let cap = self.pcpus.get(pcpu_index(pcpu))?;
                if cap.pool.as_deref() == Some(pool) {
                    if let Some(counter) = cap.runq_counter {
                        return Some(counter);
                    }
                }
                runq_name(pool, None)
            }
            "rtds" => runq_name(pool, None),
            _ => return None,
        };
        Some(self.counter(&name, "len"))
    }

    /// null: `v` joined (`added`) or left its pool's waitqueue; it leaves the counter it
    /// joined, even if its domain moved pool in between.
    pub(super) fn null_waitq(
        &mut self,
        limits: &mut Limits,
        time_ns: u64,
        v: VcpuRef,
        added: bool,
    ) {
        let counter = if added {
            let name = format!("waitq {}", self.pool_of(v.dom));
            let counter = self.counter(&name, "len");
            let Some(cap) = self.vcpus.get_mut(&v) else {
                return;
            };
            assert!(cap.waitq.is_none(), "{v:?} joined the waitqueue twice");
            cap.waitq = Some(counter);
            counter
        } else {
            match self.vcpus.get_mut(&v).and_then(|c| c.waitq.take()) {
                Some(counter) => counter,
                None => return,
            }
        };
        self.counter_add(limits, time_ns, counter, added);
    }

    /// Samples every counter at the window start, once time reaches it (§4.3: counters
    /// are sampled at `t0`, then on change).
    pub(super) fn start_counters(&mut self, limits: &mut Limits, time_ns: u64) {
        if self.counters_started || time_ns < limits.start_ns || limits.start_ns >= limits.end_ns {
            return;
        }
        self.counters_started = true;
        let now: Vec<(u32, u64)> = (0u32..).zip(self.counter_values.clone()).collect();
        for (counter, value) in now {
            self.push_sample(limits, limits.start_ns, counter, value);
        }
    }

    /// The index of counter `name` with argument `key`, created at 0 (not yet sampled).
    pub(super) fn counter(&mut self, name: &str, key: &'static str) -> u32 {
        if let Some(&index) = self.counter_index.get(name) {
            return index;
        }
        let index = u32::try_from(self.out.counters.len()).expect("counters fit u32");
        self.out.counters.push(CounterTrack {
            name: name.to_owned(),
            key,
        });
        self.counter_index.insert(name.to_owned(), index);
        self.counter_values.push(0);
        index
    }

    /// One more (`up`) or one less in the length counter `counter`.
    pub(super) fn counter_add(
        &mut self,
        limits: &mut Limits,
        time_ns: u64,
        counter: u32,
        up: bool,
    ) {
        let value = self.counter_values[counter_slot(counter)];
        let value = if up {
            value + 1
        } else {
            assert!(value > 0, "counter {counter} would go below 0");
            value - 1
        };
        self.counter_set(limits, time_ns, counter, value);
    }

    /// Counter `counter` is `value` from `time_ns` on.
    pub(super) fn counter_set(
        &mut self,
        limits: &mut Limits,
        time_ns: u64,
        counter: u32,
        value: u64,
    ) {
        self.counter_values[counter_slot(counter)] = value;
        if self.counters_started && limits.contains(time_ns) {
            self.push_sample(limits, time_ns, counter, value);
        }
    }

    /// The current value of counter `counter`.
    pub(super) fn counter_value(&self, counter: u32) -> u64 {
        self.counter_values[counter_slot(counter)]
    }

    /// Appends a sample; a second change of one counter at the same instant replaces the
    /// first, so the file holds one value per counter and instant.
    fn push_sample(&mut self, limits: &mut Limits, time_ns: u64, counter: u32, value: u64) {
        let same = self
            .out
            .samples
            .iter_mut()
            .rev()
            .take_while(|s| s.time_ns == time_ns)
            .find(|s| s.counter == counter);
        if let Some(sample) = same {
            sample.value = value;
            return;
        }
        if !limits.take() {
            return;
        }
        let seq = self.next_seq();
        self.out.samples.push(CounterSample {
            time_ns,
            seq,
            counter,
            value,
        });
    }
}

fn counter_slot(counter: u32) -> usize {
    usize::try_from(counter).expect("counter index fits usize")
}

/// `runq rq0` for `Pool-0`'s credit2 runqueue 0, `runq pool1 rq0` in another pool, and
/// `runq Pool-0` for a pool-wide queue (rtds, or a pCPU whose runqueue is not known).
pub(super) fn runq_name(pool: &str, runq: Option<u32>) -> String {
    match runq {
        Some(rq) if pool == "Pool-0" => format!("runq rq{rq}"),
        Some(rq) => format!("runq {pool} rq{rq}"),
        None => format!("runq {pool}"),
    }
}
