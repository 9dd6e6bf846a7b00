//! credit2 runqueues: how pCPUs are grouped into runqueues, the `runq` order, the `svc`
//! list and `max_weight`, the idle/tickled/smt_idle masks (their updates are in
//! `masks.rs`), and load tracking.
//!
//! Follows xen/common/sched/credit2.c of Xen 4.17: `cpu_runqueue_match`,
//! `cpu_runqueue_siblings_match`, `cpu_add_to_runqueue`, `init_cpu_runqueue`,
//! `csched2_deinit_pdata`, `csched2_free_pdata`, `update_max_weight`, `_runq_assign`,
//! `_runq_deassign`, `update_runq_load`, `update_svc_load`, `runq_insert`, `runq_remove`;
//! spec §2.2, §2.4, §2.13.
//!
//! # Invariants
//! - `runq` holds Xen's runq list reversed (its last entry is the head), and the list is
//!   sorted by credit, descending, equal credits keeping arrival order: so `runq` is sorted
//!   ascending, and among equal credits the later arrival comes first.
//! - `runq_credits[i]` is the credit of unit `runq[i]` (only `reset_credit` changes the
//!   credit of a waiting unit, and it refreshes the copy).
//! - `idle`, `tickled` and `smt_idle` are subsets of `active`; `smt_idle` of `idle`.
//! - `max_weight` is the largest weight in `svc` (1 when empty).
//!
//! xensim differs: `alloc_pdata` + `switch_sched` are one step (`add_pcpu`), and so are
//! `deinit_pdata` + `free_pdata` (`remove_pcpu`), so `refcnt == nr_cpus` always.

use alloc::format;
use alloc::vec::Vec;

use super::hint_order::{self, HintOrder};
use super::{printk, Credit2Scheduler, LOADAVG_GRANULARITY_SHIFT};
use crate::cpumask::CpuMask;
use crate::ids::PcpuId;
use crate::sched::params::Credit2Runqueue;
use crate::sched::SchedCtx;

/// One runqueue (`struct csched2_runqueue_data`).
// `repr(C)` keeps the fields every decision reads (weights, loads, the runq, then the
// tickled and idle masks) together at the front, in as few cache lines as can be.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Runqueue {
    /// Max weight of `svc`.
    pub max_weight: u32,
    /// Where the next placement search starts.
    pub pick_bias: PcpuId,
    /// pCPUs referencing it.
    pub refcnt: u32,
    /// pCPUs sharing it.
    pub nr_cpus: u32,
    /// Running plus waiting vCPUs.
    pub load: i64,
    /// Last load update, `now >> 10`.
    pub load_last_update: i64,
    /// Decaying load.
    pub avgload: i64,
    /// Decaying load as moved by balancing.
    pub b_avgload: i64,
    /// Waiting units, Xen's runq list reversed (the head last): taking the head, the usual
    /// pick, is a pop, and a waking vCPU, which has more credit than most waiters, moves
    /// only the few entries above it. Read it in Xen's order with [`Runqueue::waiters`].
    pub runq: Vec<usize>,
    /// The credit of each `runq` entry, in `runq` order: the sorted walk and the insertion
    /// search read this dense copy instead of one unit per step.
    pub runq_credits: Vec<i32>,
    /// Assigned units, in assignment order.
    pub svc: Vec<usize>,
    /// Id (the lowest unused when created).
    pub id: usize,
    /// pCPUs asked to reschedule.
    pub tickled: CpuMask,
    /// pCPUs running idle.
    pub idle: CpuMask,
    /// Fully idle and untickled cores.
    pub smt_idle: CpuMask,
    /// Its pCPUs.
    pub active: CpuMask,
    /// Its pCPUs in order of their `pcpu_curr` hint's entry time (the links are in the
    /// hint slots).
    pub(crate) hint_order: HintOrder,
}

impl Runqueue {
    /// The waiting units in Xen's runq order, head first.
    pub fn waiters(&self) -> impl Iterator<Item = usize> + Clone + '_ {
        self.runq.iter().rev().copied()
    }

    /// The credit of the runq's head (its first waiter), if any.
    pub fn head_credit(&self) -> Option<i32> {
        self.runq_credits.last().copied()
    }
}

/// Where `runq_insert` puts a unit of `credit` in a `runq` whose credits are `credits`.
/// Xen's list is sorted by credit, descending, and the unit goes before the first waiter
/// with strictly less credit (after those with as much). Reversed, that is after every
/// waiter with less credit. A woken unit usually has more credit than most waiters, so the
/// top [`INSERT_TOP_SCAN`] entries are looked at one by one first, then the rest bisected.
pub(crate) fn reversed_insert_index(credits: &[i32], credit: i32) -> usize {
    let mut pos = credits.len();
    for _ in 0..INSERT_TOP_SCAN {
        match pos.checked_sub(1).and_then(|below| credits.get(below)) {
            Some(c) if *c >= credit => pos -= 1,
            _ => return pos,
        }
    }
    // Every entry from `pos` up has at least `credit`: the answer is in `..=pos`.
    credits
        .get(..pos)
        .map_or(pos, |rest| rest.partition_point(|c| *c < credit))
}

/// Top `runq` entries [`reversed_insert_index`] compares one by one before bisecting.
const INSERT_TOP_SCAN: usize = 4;

/// One EWMA step of precision `p` and window `w` (shifts), for a delta `d`:
/// `avg + ((d * (inst << p)) >> w) - ((d * avg) >> w)`; a zero `d` (a second update within
/// the same 1024 ns) leaves `avg` as it is.
fn ewma_step(p: u32, w: u32, avg: i64, inst: i64, delta: i64) -> i64 {
    if delta == 0 {
        return avg;
    }
    avg + ((delta * (inst << p)) >> w) - ((delta * avg) >> w)
}

impl Credit2Scheduler {
    fn same_node(&self, a: PcpuId, b: PcpuId) -> bool {
        self.topo[a.index()].2 == self.topo[b.index()].2
    }

    fn same_socket(&self, a: PcpuId, b: PcpuId) -> bool {
        self.topo[a.index()].0 == self.topo[b.index()].0
    }

    fn same_core(&self, a: PcpuId, b: PcpuId) -> bool {
        self.same_socket(a, b) && self.topo[a.index()].1 == self.topo[b.index()].1
    }

    /// `cpu_runqueue_match`: judged against the runqueue's `pick_bias` pCPU.
    fn runqueue_match(&self, rq: &Runqueue, cpu: PcpuId) -> bool {
        let peer = rq.pick_bias;
        match self.opts.runqueue {
            Credit2Runqueue::All => true,
            Credit2Runqueue::Core => self.same_core(peer, cpu),
            Credit2Runqueue::Socket => self.same_socket(peer, cpu),
            Credit2Runqueue::Node => self.same_node(peer, cpu),
            Credit2Runqueue::Cpu => false,
        }
    }

    /// `cpu_runqueue_siblings_match`: `cpu`'s core plus the cores already in the runqueue
    /// fit in `max_cpus_runq`.
    fn siblings_match(&self, rq: &Runqueue, cpu: PcpuId, max_cpus_runq: u32) -> bool {
        let mut seen = CpuMask::empty(self.nr_cpus);
        let mut total = 0u32;
        for rcpu in rq.active.iter() {
            let sibs = &self.host_siblings[rcpu.index()];
            if !sibs.intersects(&seen) {
                seen = seen.or(sibs);
                total += sibs.weight();
            }
        }
        total + self.host_siblings[cpu.index()].weight() <= max_cpus_runq
    }

    /// `cpu_add_to_runqueue`: the runqueue `cpu` joins, created if needed. Returns its id.
    pub(crate) fn cpu_add_to_runqueue(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId) -> usize {
        // xensim differs: a zero limit (a division by zero in Xen) counts as 1.
        let limit = self.opts.max_cpus_runqueue.max(1);
        let online = self.nr_cpus.max(1);
        let min_rqs = (online - 1) / limit + 1;
        let max_cpus_runq = online / min_rqs;
        let mut rqi = 0usize;
        let mut rqi_unused = false;
        let mut valid: Option<usize> = None;
        for rq in self.rqs.iter().flatten() {
            if !rqi_unused && rq.id > rqi {
                rqi_unused = true;
            }
            if self.runqueue_match(rq, cpu) {
                if rq.active.intersects(&self.host_siblings[cpu.index()]) {
                    if rq.active.weight() >= self.opts.max_cpus_runqueue {
                        printk(
                            ctx,
                            format!(
                                "WARNING: cpu_add_to_runqueue: more than opt_max_cpus_runqueue \
                                 in a runqueue ({} vs {}), due to topology constraints.",
                                self.opts.max_cpus_runqueue,
                                rq.active.weight()
                            ),
                        );
                        printk(ctx, "Consider raising it!".into());
                    }
                    valid = Some(rq.id);
                    break;
                }
                let fits = self.opts.runqueue == Credit2Runqueue::All
                    || self.siblings_match(rq, cpu, max_cpus_runq);
                let fewer = valid.is_none_or(|v| rq.refcnt < self.rq(v).refcnt);
                if rq.refcnt < max_cpus_runq && fits && fewer {
                    valid = Some(rq.id);
                }
            }
            if !rqi_unused {
                rqi += 1;
            }
        }
        let id = match valid {
            Some(id) => id,
            None => {
                self.create_runqueue(rqi, cpu);
                rqi
            }
        };
        self.rq_mut(id).refcnt += 1;
        id
    }

    fn create_runqueue(&mut self, id: usize, cpu: PcpuId) {
        if self.rqs.len() <= id {
            self.rqs.resize(id + 1, None);
        }
        assert!(self.rqs[id].is_none(), "runqueue id {id} reused while live");
        self.rqs[id] = Some(Runqueue {
            id,
            refcnt: 0,
            nr_cpus: 0,
            load: 0,
            load_last_update: 0,
            avgload: 0,
            b_avgload: 0,
            active: CpuMask::empty(self.nr_cpus),
            smt_idle: CpuMask::empty(self.nr_cpus),
            tickled: CpuMask::empty(self.nr_cpus),
            idle: CpuMask::empty(self.nr_cpus),
            svc: Vec::new(),
            runq: Vec::new(),
            runq_credits: Vec::new(),
            max_weight: 1,
            pick_bias: cpu,
            hint_order: HintOrder::EMPTY,
        });
    }

    /// `init_cpu_runqueue`: `cpu` becomes an idle, active pCPU of runqueue `id`.
    pub(crate) fn init_cpu_runqueue(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId, id: usize) {
        assert!(!self.initialized.test(cpu), "{cpu:?} added twice");
        printk(ctx, format!("Adding cpu {} to runqueue {id}", cpu.raw()));
        if self.rq(id).nr_cpus == 0 {
            printk(ctx, " First cpu on runqueue, activating".into());
            let rq = self.rq_mut(id);
            assert!(rq.active.is_empty(), "inactive runqueue with pCPUs");
            rq.max_weight = 1;
            rq.svc.clear();
            rq.runq.clear();
            rq.runq_credits.clear();
        }
        let mut mine = CpuMask::single(self.nr_cpus, cpu);
        if self.rq(id).nr_cpus > 0 {
            let sibs = self.host_siblings[cpu.index()].clone();
            for rcpu in sibs.iter() {
                if self.rq(id).active.test(rcpu) {
                    self.pcpu_siblings[rcpu.index()].set(cpu);
                    mine.set(rcpu);
                }
            }
        }
        self.pcpu_siblings[cpu.index()] = mine;
        self.pcpu_rq[cpu.index()] = Some(id);
        self.initialized.set(cpu);
        let rq = match self.rqs.get_mut(id) {
            Some(Some(rq)) => rq,
            _ => panic!("credit2: no runqueue {id}"),
        };
        hint_order::join(&mut self.pcpu_curr, &mut rq.hint_order, cpu.raw());
        rq.idle.set(cpu);
        rq.active.set(cpu);
        rq.smt_idle.set(cpu);
        rq.nr_cpus += 1;
        assert_eq!(rq.active.weight(), rq.nr_cpus);
        if rq.nr_cpus == 1 {
            rq.pick_bias = cpu;
        }
    }

    /// `csched2_deinit_pdata` then `csched2_free_pdata`.
    pub(crate) fn deinit_pcpu(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        assert!(self.initialized.test(cpu), "{cpu:?} not in the pool");
        let id = self.c2rqd(cpu);
        printk(
            ctx,
            format!("Removing cpu {} from runqueue {id}", cpu.raw()),
        );
        // A pCPU back in the pool later starts without a running-unit hint.
        let rq = match self.rqs.get_mut(id) {
            Some(Some(rq)) => rq,
            _ => panic!("credit2: no runqueue {id}"),
        };
        hint_order::leave(&mut self.pcpu_curr, &mut rq.hint_order, cpu.raw());
        self.pcpu_curr[cpu.index()] = super::hint::HintSlot::NONE;
        self.pcpu_prev[cpu.index()] = None;
        rq.idle.clear(cpu);
        rq.smt_idle.clear(cpu);
        rq.active.clear(cpu);
        rq.tickled.clear(cpu);
        let others = rq.active.clone();
        for rcpu in others.iter() {
            self.pcpu_siblings[rcpu.index()].clear(cpu);
        }
        let rq = self.rq_mut(id);
        rq.nr_cpus -= 1;
        assert_eq!(rq.active.weight(), rq.nr_cpus);
        if rq.nr_cpus == 0 {
            printk(ctx, " No cpus left on runqueue, disabling".into());
        } else if rq.pick_bias == cpu {
            if let Some(first) = rq.active.first() {
                rq.pick_bias = first;
            }
        }
        self.initialized.clear(cpu);
        self.pcpu_rq[cpu.index()] = None;
        let rq = self.rq_mut(id);
        rq.refcnt -= 1;
        if rq.refcnt == 0 {
            assert!(rq.runq.is_empty(), "runqueue {id} freed with waiters");
            assert!(rq.hint_order.is_empty(), "runqueue {id} freed with pCPUs");
            self.rqs[id] = None;
        }
    }

    /// `update_max_weight`.
    pub(crate) fn update_max_weight(&mut self, id: usize, new_weight: u32, old_weight: u32) {
        let max = self.rq(id).max_weight;
        if new_weight > max {
            self.rq_mut(id).max_weight = new_weight;
        } else if old_weight == max {
            let rescanned = self
                .rq(id)
                .svc
                .iter()
                .map(|idx| self.u(*idx).weight)
                .fold(1, u32::max);
            self.rq_mut(id).max_weight = rescanned;
        }
    }

    /// `_runq_assign`.
    pub(crate) fn runq_assign(&mut self, idx: usize, id: usize) {
        assert!(self.u(idx).rqd.is_none(), "unit {idx} assigned twice");
        let (weight, avgload) = {
            let unit = self.u_mut(idx);
            unit.rqd = Some(id);
            (unit.weight, unit.avgload)
        };
        self.rq_mut(id).svc.push(idx);
        self.update_max_weight(id, weight, 0);
        self.rq_mut(id).b_avgload += avgload;
    }

    /// `_runq_deassign`.
    pub(crate) fn runq_deassign(&mut self, idx: usize) {
        let unit = self.u(idx);
        assert!(!unit.on_runq, "unit {idx} deassigned while waiting");
        let (weight, avgload) = (unit.weight, unit.avgload);
        let Some(id) = unit.rqd else {
            panic!("unit {idx} deassigned without a runqueue")
        };
        let rq = self.rq_mut(id);
        let pos = rq.svc.iter().position(|x| *x == idx);
        match pos {
            Some(pos) => {
                rq.svc.remove(pos);
            }
            None => panic!("unit {idx} missing from the svc list of runqueue {id}"),
        }
        self.update_max_weight(id, 0, weight);
        let rq = self.rq_mut(id);
        rq.b_avgload = (rq.b_avgload - avgload).max(0);
        self.u_mut(idx).rqd = None;
    }

    /// One EWMA step with this instance's shifts (see [`ewma_step`]).
    pub(crate) fn ewma(&self, avg: i64, inst: i64, delta: i64) -> i64 {
        ewma_step(
            self.opts.precision_shift,
            self.opts.window_shift,
            avg,
            inst,
            delta,
        )
    }

    /// `update_runq_load` when it is a second update within the same 1024 ns (a block's
    /// `schedule`, then its `context_saved`): the window test fails and both `ewma`s see a
    /// zero delta, so the averages stay and only the load moves. Returns false, having
    /// done nothing, for an update at a later instant.
    #[inline(always)]
    pub(crate) fn update_runq_load_same_instant(
        &mut self,
        id: usize,
        change: i64,
        now_ns: i64,
    ) -> bool {
        let rq = self.rq_mut(id);
        if rq.load_last_update != now_ns >> LOADAVG_GRANULARITY_SHIFT {
            return false;
        }
        rq.load += change;
        assert!(rq.avgload >= 0 && rq.b_avgload >= 0, "negative load");
        true
    }

    /// `update_runq_load`.
    pub(crate) fn update_runq_load(&mut self, id: usize, change: i64, now_ns: i64) {
        if self.update_runq_load_same_instant(id, change, now_ns) {
            return;
        }
        let (p, w) = (self.opts.precision_shift, self.opts.window_shift);
        let window = 1i64 << w;
        let now = now_ns >> LOADAVG_GRANULARITY_SHIFT;
        let rq = self.rq_mut(id);
        let (load, last) = (rq.load, rq.load_last_update);
        let (avg, b_avg) = if last + window < now {
            (load << p, load << p)
        } else {
            let delta = (now - last).max(0);
            (
                ewma_step(p, w, rq.avgload, load, delta),
                ewma_step(p, w, rq.b_avgload, load, delta),
            )
        };
        rq.avgload = avg;
        rq.b_avgload = b_avg;
        rq.load += change;
        rq.load_last_update = now;
        assert!(rq.avgload >= 0 && rq.b_avgload >= 0, "negative load");
    }

    /// `update_svc_load`.
    pub(crate) fn update_svc_load(&mut self, idx: usize, change: i64, runnable: bool, now_ns: i64) {
        let p = self.opts.precision_shift;
        let window = 1i64 << self.opts.window_shift;
        let now = now_ns >> LOADAVG_GRANULARITY_SHIFT;
        let inst = match change {
            -1 => 1,
            1 => 0,
            _ => i64::from(runnable),
        };
        let unit = self.u(idx);
        let avg = if unit.load_last_update + window < now {
            inst << p
        } else {
            let delta = (now - unit.load_last_update).max(0);
            self.ewma(unit.avgload, inst, delta)
        };
        let unit = self.u_mut(idx);
        unit.avgload = avg;
        unit.load_last_update = now;
        assert!(unit.avgload >= 0, "negative unit load");
    }

    /// `update_load`.
    pub(crate) fn update_load(
        &mut self,
        ctx: &SchedCtx<'_>,
        id: usize,
        idx: Option<usize>,
        change: i64,
    ) {
        let runnable = match idx {
            Some(idx) if change == 0 => ctx.runnable(self.u(idx).v),
            _ => false,
        };
        self.update_load_known(ctx.now.as_ns(), id, idx, change, runnable);
    }

    /// `update_load` when the caller already knows whether the unit's vCPU may run (only
    /// read when `change == 0`).
    pub(crate) fn update_load_known(
        &mut self,
        now_ns: i64,
        id: usize,
        idx: Option<usize>,
        change: i64,
        runnable: bool,
    ) {
        self.update_runq_load(id, change, now_ns);
        if let Some(idx) = idx {
            self.update_svc_load(idx, change, change == 0 && runnable, now_ns);
        }
    }

    /// `runq_insert`: before the first waiter with strictly less credit.
    pub(crate) fn runq_insert(&mut self, idx: usize) {
        // One lookup of the unit: it is marked queued first (nothing below reads that).
        let unit = self.u_mut(idx);
        assert!(!unit.on_runq, "unit {idx} queued twice");
        assert!(
            unit.flags & super::FLAG_SCHEDULED == 0,
            "scheduled unit {idx} queued"
        );
        unit.on_runq = true;
        let credit = unit.credit;
        let Some(id) = unit.rqd else {
            panic!("unit {idx} queued without a runqueue")
        };
        debug_assert!(
            self.runq_credits_agree(id),
            "runqueue {id}: stale credit copy"
        );
        let rq = self.rq_mut(id);
        debug_assert!(
            rq.runq_credits.windows(2).all(|pair| pair[0] <= pair[1]),
            "runqueue {id} not sorted by credit"
        );
        let pos = reversed_insert_index(&rq.runq_credits, credit);
        if pos == rq.runq.len() {
            // The new head (the usual waker): a push, with no shift to call.
            rq.runq.push(idx);
            rq.runq_credits.push(credit);
        } else {
            rq.runq.insert(pos, idx);
            rq.runq_credits.insert(pos, credit);
        }
    }

    /// True if `runq_credits` holds the credit of every `runq` entry, in order.
    pub(crate) fn runq_credits_agree(&self, id: usize) -> bool {
        let rq = self.rq(id);
        rq.runq.len() == rq.runq_credits.len()
            && rq
                .runq
                .iter()
                .zip(&rq.runq_credits)
                .all(|(idx, credit)| self.u(*idx).credit == *credit)
    }

    /// Copies the credits of the waiting units into `runq_credits` again (after a reset
    /// changed them all).
    pub(crate) fn refresh_runq_credits(&mut self, id: usize) {
        let mut credits = core::mem::take(&mut self.rq_mut(id).runq_credits);
        credits.clear();
        credits.extend(self.rq(id).runq.iter().map(|idx| self.u(*idx).credit));
        self.rq_mut(id).runq_credits = credits;
    }

    /// `runq_remove`.
    pub(crate) fn runq_remove(&mut self, idx: usize) {
        let unit = self.u(idx);
        assert!(unit.on_runq, "unit {idx} removed but not queued");
        let Some(id) = unit.rqd else {
            panic!("queued unit {idx} without a runqueue")
        };
        let rq = self.rq_mut(id);
        match rq.runq.iter().position(|w| *w == idx) {
            Some(pos) => {
                rq.runq.remove(pos);
                rq.runq_credits.remove(pos);
            }
            None => panic!("unit {idx} flagged queued but missing from runqueue {id}"),
        }
        self.u_mut(idx).on_runq = false;
    }

    /// `runq_remove` of the unit the caller found at index `pos` of the `runq` of its
    /// runqueue `id` (no search), which `schedule` then marks scheduled
    /// (`CSFLAG_scheduled`): one lookup of the unit for both.
    #[inline(always)]
    pub(crate) fn runq_take_scheduled(&mut self, idx: usize, id: usize, pos: usize) {
        let unit = self.u_mut(idx);
        assert!(unit.on_runq, "unit {idx} removed but not queued");
        assert_eq!(unit.rqd, Some(id), "picked a unit of another runqueue");
        unit.on_runq = false;
        unit.flags |= super::FLAG_SCHEDULED;
        let rq = self.rq_mut(id);
        assert_eq!(rq.runq.get(pos), Some(&idx), "unit {idx} not at runq {pos}");
        if pos + 1 == rq.runq.len() {
            // The head (the usual pick): a pop, with no shift to call.
            rq.runq.pop();
            rq.runq_credits.pop();
        } else {
            rq.runq.remove(pos);
            rq.runq_credits.remove(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::reversed_insert_index;

    proptest! {
        #[test]
        fn reversed_insert_index_matches_bisection(
            mut credits in proptest::collection::vec(-6i32..6, 0..40),
            credit in -7i32..7,
        ) {
            credits.sort_unstable();
            let sorted: Vec<i32> = credits;
            let plain = sorted.partition_point(|c| *c < credit);
            prop_assert_eq!(reversed_insert_index(&sorted, credit), plain);
        }
    }
}
