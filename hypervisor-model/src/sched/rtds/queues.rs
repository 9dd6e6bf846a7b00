//! The rtds queues of one pool and the walks over them: `runq` (sorted by priority),
//! `depletedq` (unsorted, pushed at the head), `replq` (replenishment events), picking
//! from the runq, and tickling (`runq_tickle`).
//!
//! Storage: `runq` is a map by `(key, arrival)` and `depletedq` a map by arrival (newest
//! first), so an insertion or a removal is a lookup; `replq` lives in `replq.rs`; tickling
//! asks the running index (`running.rs`) and keeps rt.c's walk over the pool's pCPUs as
//! the fallback for narrow affinities and as the debug-build check.
//!
//! Follows xen/common/sched/rt.c (Xen 4.17): `deadline_queue_insert`,
//! `deadline_queue_remove`, `q_remove`, `replq_remove`, `runq_insert`, `replq_insert`,
//! `replq_reinsert`, `runq_pick`, `runq_tickle`; spec `schedulers.md` §3.2, §3.6, §9.5.
//!
//! # Invariants
//! - A server is on at most one of `runq`/`depletedq`, as its `queue` tag says, and on
//!   `replq` iff `on_replq` (outside the replenishment handler).
//! - Sorted insertion goes before the first entry the new one strictly beats, so ties
//!   stay first-come first-served.
//!
//! xensim differs: Xen reprograms the replenishment timer inside these helpers; here the
//! timer is always the head of `replq`, which `next_timer` reports after every hook, and
//! that is the deadline Xen's helpers arm in every case.
//!
//! Xen quirk kept: `replq` is ordered with the same comparison as the runq, so it takes
//! the priority level into account, and levels of running servers change in place. The
//! queue is therefore not always sorted by deadline, and a server behind one with a
//! higher level can be replenished late.

use core::cmp::{Ordering, Reverse};

use super::server::{compare, Queue};
use super::RtdsScheduler;
use crate::ids::{PcpuId, VcpuRef};
use crate::sched::SchedCtx;
use crate::time::STime;

/// Most busy pCPUs outside the candidates `tickle_target_indexed` skips before it leaves
/// the answer to the walk (a few in unit tests, so that their hosts reach the fallback).
const VICTIM_VISITS_MAX: usize = if cfg!(test) { 4 } else { 64 };

impl RtdsScheduler {
    /// Where `deadline_queue_insert` puts `v` in a list: before the first entry it
    /// strictly beats (current keys). The reference the indexed queues are checked against.
    fn insert_position(&self, queue: impl Iterator<Item = VcpuRef>, v: VcpuRef) -> usize {
        let new = self.servers.srv(v);
        let mut count = 0usize;
        for w in queue {
            if compare(new, self.servers.srv(w)) == Ordering::Greater {
                break;
            }
            count += 1;
        }
        count
    }

    /// The runq in order (head first).
    pub(super) fn runq_iter(&self) -> impl Iterator<Item = VcpuRef> + '_ {
        self.runq.values().copied()
    }

    /// `runq_insert`: the runq if it has budget or extratime, else the head of
    /// `depletedq`. The runq is sorted whenever something is inserted (only a dequeued
    /// server's key changes), so the entries `v` strictly beats are exactly those after
    /// its `(key, sequence)` place; debug builds check it against the linear walk.
    pub(super) fn runq_insert(&mut self, v: VcpuRef) {
        let s = self.servers.srv(v);
        assert_eq!(s.queue, Queue::None, "{v:?} queued twice");
        assert!(s.on_replq, "{v:?} queued without a replenishment event");
        if s.cur_budget_ns > 0 || s.extratime {
            let (level, deadline) = s.key();
            let at = (level, deadline, self.queue_seq);
            self.queue_seq += 1;
            debug_assert_eq!(
                self.runq.range(..at).count(),
                self.insert_position(self.runq_iter(), v),
                "runq unsorted"
            );
            let old = self.runq.insert(at, v);
            assert!(old.is_none(), "runq place of {v:?} taken");
            let s = self.servers.srv_mut(v);
            s.runq_at = at;
            s.queue = Queue::Runq;
        } else {
            self.depletedq_push(v);
        }
    }

    /// Puts `v` at the head of `depletedq` (Xen's `list_add`).
    pub(super) fn depletedq_push(&mut self, v: VcpuRef) {
        let seq = self.queue_seq;
        self.queue_seq += 1;
        let old = self.depletedq.insert(Reverse(seq), v);
        assert!(old.is_none(), "depletedq place of {v:?} taken");
        let s = self.servers.srv_mut(v);
        s.runq_at = (0, STime::ZERO, seq);
        s.queue = Queue::Depleted;
    }

    /// `q_remove`.
    pub(super) fn q_remove(&mut self, v: VcpuRef) {
        match self.servers.srv(v).queue {
            Queue::Runq => {
                let at = self.servers.srv(v).runq_at;
                match self.runq.remove(&at) {
                    Some(w) => assert_eq!(w, v, "runq place of {v:?} holds {w:?}"),
                    None => panic!("{v:?} tagged runq but not on it"),
                }
            }
            Queue::Depleted => {
                let (_, _, seq) = self.servers.srv(v).runq_at;
                match self.depletedq.remove(&Reverse(seq)) {
                    Some(w) => assert_eq!(w, v, "depletedq place of {v:?} holds {w:?}"),
                    None => panic!("{v:?} tagged depletedq but not on it"),
                }
            }
            Queue::None => panic!("{v:?} removed from no queue"),
        }
        self.servers.srv_mut(v).queue = Queue::None;
    }

    /// True if `v` is on `runq` or `depletedq` (`unit_on_q`).
    pub(super) fn on_q(&self, v: VcpuRef) -> bool {
        self.servers.srv(v).queue != Queue::None
    }

    /// `replq_insert`: by the blocks of `replq.rs`; debug builds check the place against
    /// the linear walk.
    pub(super) fn replq_insert(&mut self, v: VcpuRef) {
        assert!(!self.servers.srv(v).on_replq, "{v:?} on replq twice");
        #[cfg(debug_assertions)]
        let expected = self.insert_position(self.replq.iter(), v);
        let key = self.servers.srv(v).key();
        self.replq.insert(&mut self.servers, v, key);
        #[cfg(debug_assertions)]
        debug_assert_eq!(
            self.replq.iter().position(|w| w == v),
            Some(expected),
            "replq place of {v:?}"
        );
        self.servers.srv_mut(v).on_replq = true;
    }

    /// `replq_remove`.
    pub(super) fn replq_remove(&mut self, v: VcpuRef) {
        assert!(self.servers.srv(v).on_replq, "{v:?} not on replq");
        self.replq.remove(&mut self.servers, v);
        self.servers.srv_mut(v).on_replq = false;
    }

    /// `replq_reinsert`: its deadline moved, so its place may have.
    pub(super) fn replq_reinsert(&mut self, v: VcpuRef) {
        self.replq_remove(v);
        self.replq_insert(v);
    }

    /// `runq_pick`: the first runq server whose hard affinity and pool hold `cpu`.
    pub(super) fn runq_pick(&self, ctx: &SchedCtx<'_>, cpu: PcpuId) -> Option<VcpuRef> {
        if !ctx.pool_cpus.test(cpu) {
            return None;
        }
        let (_, &head) = self.runq.first_key_value()?;
        if ctx.vcpu(head).hard_affinity.test(cpu) {
            return Some(head);
        }
        self.runq_iter()
            .find(|w| ctx.vcpu(*w).hard_affinity.test(cpu))
    }

    /// `runq_tickle`: an idle pCPU where `new` may run (its own first, then cycling up),
    /// else the pCPU of the lowest-priority running server if `new` beats it.
    pub(super) fn runq_tickle(&mut self, ctx: &mut SchedCtx<'_>, new: VcpuRef) {
        let target = self.tickle_target(ctx, new);
        if let Some(cpu) = target {
            self.set_tickled(cpu);
            ctx.tickle(cpu);
        }
    }

    /// The pCPU `runq_tickle` kicks for `new`: from the running index, or from the walk
    /// when the index gives up (see [`Self::tickle_target_indexed`]). Debug builds check
    /// the index against the walk every time.
    fn tickle_target(&self, ctx: &SchedCtx<'_>, new: VcpuRef) -> Option<PcpuId> {
        let found = match self.tickle_target_indexed(ctx, new) {
            Some(found) => found,
            None => self.tickle_target_walk(ctx, new),
        };
        debug_assert_eq!(
            found,
            self.tickle_target_walk(ctx, new),
            "running index disagrees with runq_tickle's walk for {new:?}"
        );
        found
    }

    /// The walk's answer from the running index: the first idle candidate in cycle order
    /// from `new`'s pCPU (one pass over the mask words), else the candidate running the
    /// highest key (first in cycle order among equal keys) if `new` beats it. `None` if
    /// more than [`VICTIM_VISITS_MAX`] busy pCPUs outside `new`'s hard affinity or the
    /// pool come first (a narrow affinity: the walk is short then).
    fn tickle_target_indexed(&self, ctx: &SchedCtx<'_>, new: VcpuRef) -> Option<Option<PcpuId>> {
        let start = ctx.processor(new);
        let hard = &ctx.vcpu(new).hard_affinity;
        let free = self.running.free();
        let idle = if ctx.pool_cpus.is_subset(hard) {
            free.test_or_cycle_and(ctx.pool_cpus, start)
        } else {
            ctx.pool_cpus.and(hard).test_or_cycle_and(free, start)
        };
        if let Some(cpu) = idle {
            return Some(Some(cpu));
        }
        let new_key = self.servers.srv(new).key();
        let Some(top_cpu) = self.running.first_victim_above(new_key, start) else {
            // No busy untickled pCPU runs anything less urgent than `new`.
            return Some(None);
        };
        if ctx.pool_cpus.test(top_cpu) && hard.test(top_cpu) {
            let victim = self.running.vcpu_on(top_cpu)?;
            return Some(Some(ctx.processor(victim)));
        }
        let mut visits = 0usize;
        for (key, cpu) in self.running.victims_from(start) {
            if key <= new_key {
                // Every remaining candidate runs something at least as urgent as `new`.
                return Some(None);
            }
            if ctx.pool_cpus.test(cpu) && hard.test(cpu) {
                let victim = self.running.vcpu_on(cpu)?;
                return Some(Some(ctx.processor(victim)));
            }
            visits += 1;
            if visits >= VICTIM_VISITS_MAX {
                return None;
            }
        }
        Some(None)
    }

    /// `runq_tickle`'s walk over the candidate pCPUs, as rt.c does it.
    fn tickle_target_walk(&self, ctx: &SchedCtx<'_>, new: VcpuRef) -> Option<PcpuId> {
        let start = ctx.processor(new);
        let mut candidates = ctx.pool_cpus.clone();
        candidates.and_with(&ctx.vcpu(new).hard_affinity);
        candidates.and_not_with(&self.tickled);
        let mut lowest: Option<VcpuRef> = None;
        // Xen: test_or_cycle from new's pCPU, then cycle, each candidate once: the set
        // pCPUs from `start` up, then those below it.
        let from_start = candidates.iter().skip_while(|c| c.raw() < start.raw());
        let below_start = candidates.iter().take_while(|c| c.raw() < start.raw());
        for cpu in from_start.chain(below_start) {
            let Some(running) = ctx.curr_on(cpu) else {
                return Some(cpu);
            };
            let lower = lowest.is_none_or(|l| {
                compare(self.servers.srv(running), self.servers.srv(l)) == Ordering::Less
            });
            if lower {
                lowest = Some(running);
            }
        }
        let victim = lowest?;
        let beaten = compare(self.servers.srv(victim), self.servers.srv(new)) == Ordering::Less;
        beaten.then(|| ctx.processor(victim))
    }
}
