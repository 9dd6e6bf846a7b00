//! The running index of one rtds pool: which vCPU rtds put on each pCPU, the idle
//! untickled pCPUs as a mask, and the busy untickled pCPUs ordered by the priority key of
//! the vCPU they run, so `runq_tickle` finds its idle pCPU and its lowest-priority victim
//! without walking every pCPU.
//!
//! Follows nothing in Xen: rt.c's `runq_tickle` walks the pool's pCPUs
//! (`cpumask_test_or_cycle`, then `cpumask_cycle`) and reads `curr_on_cpu` of each; this is
//! xensim's index over the same facts, and `queues.rs` answers from it exactly what the
//! walk answers (debug builds compare the two on every tickle).
//!
//! # Invariants
//! - `on_cpu[c] == Some(v)` iff the core runs `v` on `c` and `v` is a server of this pool
//!   (rtds records every decision it returns, and vCPUs inserted while running).
//! - `free` holds exactly the pCPUs with `on_cpu` unset that are not tickled.
//! - `by_key` holds the key of `c` for exactly the busy pCPUs `c` that are not tickled,
//!   the key of the running server as of its last change (every in-place key change of a
//!   running server is reported through `rekey`); it is a max tree over the pCPUs
//!   (`keytree.rs`), so a change costs a walk up the tree and no allocation.
//!
//! Left out: nothing Xen decides depends on this module; it only caches.

use alloc::vec::Vec;

use super::keytree::KeyTree;
use crate::cpumask::CpuMask;
use crate::ids::{PcpuId, VcpuRef};
use crate::time::STime;

/// A server's `(priority_level, cur_deadline)`; larger is less urgent.
pub type Key = (u32, STime);

/// See the module doc.
#[derive(Debug)]
pub struct RunningIndex {
    /// The vCPU rtds put on each pCPU of the host, with its indexed key.
    on_cpu: Vec<Option<(VcpuRef, Key)>>,
    /// pCPUs with `on_cpu` unset and not tickled (`runq_tickle`'s idle candidates).
    free: CpuMask,
    /// The key of each busy pCPU that is not tickled (`None` for the others).
    by_key: KeyTree,
}

impl RunningIndex {
    /// An empty index for a host of `nr_cpus` pCPUs.
    pub fn new(nr_cpus: u32) -> RunningIndex {
        let slots = usize::try_from(nr_cpus).unwrap_or(0);
        RunningIndex {
            on_cpu: alloc::vec![None; slots],
            free: CpuMask::full(nr_cpus),
            by_key: KeyTree::new(slots),
        }
    }

    /// The vCPU recorded on `cpu`.
    pub fn vcpu_on(&self, cpu: PcpuId) -> Option<VcpuRef> {
        self.on_cpu
            .get(cpu.index())
            .copied()
            .flatten()
            .map(|(v, _)| v)
    }

    /// The key recorded for `cpu`'s vCPU.
    pub fn key_on(&self, cpu: PcpuId) -> Option<Key> {
        self.on_cpu
            .get(cpu.index())
            .copied()
            .flatten()
            .map(|(_, k)| k)
    }

    /// pCPUs with no recorded vCPU that are not tickled.
    pub fn free(&self) -> &CpuMask {
        &self.free
    }

    /// Number of entries ordered by key (for the checker).
    pub fn keyed_count(&self) -> usize {
        self.by_key.count()
    }

    /// True if `cpu` is ordered by key with `key`.
    pub fn keyed(&self, cpu: PcpuId, key: Key) -> bool {
        self.by_key.get(cpu.index()) == Some(key)
    }

    /// True if the key tree keeps its own invariants (for the checker; O(n)).
    pub fn well_formed(&self) -> bool {
        self.by_key.well_formed()
    }

    /// Records `running` (with its key) on `cpu`, replacing what was there. `tickled`:
    /// `cpu` is tickled, so it is out of the key order.
    pub fn set(&mut self, cpu: PcpuId, running: Option<(VcpuRef, Key)>, tickled: bool) {
        assert!(cpu.index() < self.on_cpu.len(), "{cpu:?} outside the host");
        let keyed = running.filter(|_| !tickled).map(|(_, key)| key);
        self.by_key.put(cpu.index(), keyed);
        if running.is_some() || tickled {
            self.free.clear(cpu);
        } else {
            self.free.set(cpu);
        }
        self.on_cpu[cpu.index()] = running;
    }

    /// The vCPU on `cpu` changed key in place (it keeps running).
    pub fn rekey(&mut self, cpu: PcpuId, key: Key, tickled: bool) {
        let Some((v, _)) = self.slot(cpu) else {
            panic!("rekey of idle {cpu:?}");
        };
        self.set(cpu, Some((v, key)), tickled);
    }

    /// `cpu` was tickled: out of the key order until it schedules.
    pub fn tickled(&mut self, cpu: PcpuId) {
        self.by_key.put(cpu.index(), None);
        self.free.clear(cpu);
    }

    /// `cpu` is no longer tickled: back in the key order if busy, else free.
    pub fn untickled(&mut self, cpu: PcpuId) {
        match self.slot(cpu) {
            Some((_, key)) => self.by_key.put(cpu.index(), Some(key)),
            None => self.free.set(cpu),
        }
    }

    fn slot(&self, cpu: PcpuId) -> Option<(VcpuRef, Key)> {
        match self.on_cpu.get(cpu.index()) {
            Some(slot) => *slot,
            None => panic!("{cpu:?} outside the host"),
        }
    }

    /// The first pCPU of [`Self::victims_from`], found with two tree descents, if its key
    /// is above `floor` (else no pCPU of the order is).
    pub fn first_victim_above(&self, floor: Key, start: PcpuId) -> Option<PcpuId> {
        let top = self.by_key.max()?;
        if top <= floor {
            return None;
        }
        let cpus = self.by_key.cpus();
        let first = self
            .by_key
            .first_eq_in(start.index(), cpus, top)
            .or_else(|| self.by_key.first_eq_in(0, cpus, top))?;
        PcpuId::new(u32::try_from(first).ok()?)
    }

    /// The keyed pCPUs in `runq_tickle`'s victim order: key descending, and inside one key
    /// in `cpumask_cycle` order from `start` (`start` and up, then below it).
    pub fn victims_from(&self, start: PcpuId) -> impl Iterator<Item = (Key, PcpuId)> + '_ {
        let cpus = self.by_key.cpus();
        let start = start.index().min(cpus);
        let mut group = self.by_key.max();
        // Next pCPU to look at in the group, and whether the walk wrapped below `start`.
        let mut at = start;
        let mut wrapped = false;
        core::iter::from_fn(move || loop {
            let key = group?;
            let end = if wrapped { start } else { cpus };
            match self.by_key.first_eq_in(at, end, key) {
                Some(cpu) => {
                    at = cpu + 1;
                    return Some((key, PcpuId::new(u32::try_from(cpu).ok()?)?));
                }
                None if !wrapped => {
                    wrapped = true;
                    at = 0;
                }
                None => {
                    group = self.by_key.max_below(key);
                    at = start;
                    wrapped = false;
                }
            }
        })
    }
}

impl super::RtdsScheduler {
    /// Records what `do_schedule` on `cpu` returned (the core runs it right away).
    pub(super) fn record_running(&mut self, cpu: PcpuId, next: Option<VcpuRef>) {
        if let Some(old) = self.running.vcpu_on(cpu) {
            if let Some(s) = self.servers.get_mut(old) {
                s.running_cpu = None;
            }
        }
        let entry = next.map(|n| {
            let s = self.servers.srv_mut(n);
            assert!(s.running_cpu.is_none_or(|c| c == cpu), "{n:?} on two pCPUs");
            s.running_cpu = Some(cpu);
            (n, s.key())
        });
        let tickled = self.tickled.test(cpu);
        self.running.set(cpu, entry, tickled);
    }

    /// `v`'s key changed in place: refresh the copies of the running index and `replq`
    /// (neither moves it: in Xen's lists an entry stays where it is).
    pub(super) fn rekey(&mut self, v: VcpuRef) {
        let s = self.servers.srv(v);
        let key = s.key();
        if let Some(cpu) = s.running_cpu {
            let tickled = self.tickled.test(cpu);
            self.running.rekey(cpu, key, tickled);
        }
        self.replq.rekey(&self.servers, v, key);
    }

    /// Marks `cpu` tickled (`cpumask_set_cpu(cpu, &prv->tickled)`).
    pub(super) fn set_tickled(&mut self, cpu: PcpuId) {
        if !self.tickled.test(cpu) {
            self.tickled.set(cpu);
            self.running.tickled(cpu);
        }
    }

    /// Clears `cpu`'s tickled bit (`rt_schedule`).
    pub(super) fn clear_tickled(&mut self, cpu: PcpuId) {
        if self.tickled.test(cpu) {
            self.tickled.clear(cpu);
            self.running.untickled(cpu);
        }
    }
}
