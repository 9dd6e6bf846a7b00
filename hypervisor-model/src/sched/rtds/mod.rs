//! The rtds scheduler: preemptive global EDF over the pCPUs of a pool, each vCPU a
//! deferrable server with a period, a budget and an optional extratime flag.
//!
//! Follows xen/common/sched/rt.c (Xen 4.17.5) hook by hook; spec `schedulers.md` §3 and
//! §8 (invariants 17–23). The files of this folder:
//! - `server.rs`: one server (`struct rt_unit`), `rt_update_deadline`, `burn_budget`,
//!   `compare_unit_priority`;
//! - `queues.rs`: runq, depletedq, replq, `runq_pick`, `runq_tickle`;
//! - `replq.rs`: the replenishment queue's storage (Xen's list order in blocks);
//! - `running.rs`: xensim's running index, which answers `runq_tickle` without
//!   walking every pCPU;
//! - `keytree.rs`: the max tree over the pCPUs that orders the running index by key;
//! - `hooks.rs`: `rt_schedule`, `rt_unit_wake`, `rt_unit_sleep`, `rt_context_saved`,
//!   `repl_timer_handler`, `rt_unit_insert`, `rt_unit_remove`, `rt_res_pick`;
//! - `params.rs`: `rt_dom_cntl` (domain and vCPU parameters);
//! - `account.rs`: xensim's server-period accounting for reports;
//! - `check.rs`: the invariant checker.
//!
//! # Invariants
//! - Every vCPU of the pool's domains has exactly one server here, from `insert_vcpu` to
//!   `remove_vcpu`.
//! - The pool timer is the deadline of the head of `replq` (`next_timer`).
//! - Every in-place change of a server's key (a burn that drops a level, a
//!   replenishment) goes through `rekey`, so the key copies of `replq` and of the
//!   running index stay equal to the servers' keys.
//!
//! Decision cost: Xen walks lists and pCPU masks; xensim keeps the same orders in
//! ordered maps and blocks (`runq` by key and arrival, `depletedq` by arrival, `replq` in
//! blocks with a largest key each, the running index by key and pCPU), so a decision costs
//! O(log n) to O(√n) instead of O(n), and debug builds check every answer against the
//! list walk it replaces.
//! xensim differs: context save is instantaneous, so `RTDS_scheduled` is set exactly
//! while a vCPU runs; there is no tasklet work; the replenishment timer has no home pCPU
//! (`rt_switch_sched`, `move_repl_timer`, `rt_deinit_pdata` only move Xen's timer);
//! the debug dumps (`rt_dump*`) and Xen's own trace records are left out.

mod account;
mod check;
mod hooks;
mod keytree;
mod params;
mod queues;
mod replq;
mod running;
mod server;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;

pub use account::ServerStats;

use super::params::{DomParams, SchedError, SchedInit, VcpuParams};
use super::{Decision, SchedCtx, Scheduler, Violation};
use crate::cpumask::CpuMask;
use crate::domain::DomainTable;
use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::time::STime;
use server::Server;

/// Dense per-vCPU storage: servers indexed by domid, then vCPU index.
#[derive(Debug, Default)]
struct Servers {
    by_dom: Vec<Vec<Option<Server>>>,
}

impl Servers {
    fn slot(&self, v: VcpuRef) -> Option<&Option<Server>> {
        let vcpu_index = usize::try_from(v.vcpu.raw()).ok()?;
        self.by_dom.get(usize::from(v.dom.raw()))?.get(vcpu_index)
    }

    fn get(&self, v: VcpuRef) -> Option<&Server> {
        self.slot(v).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, v: VcpuRef) -> Option<&mut Server> {
        let vcpu_index = usize::try_from(v.vcpu.raw()).ok()?;
        self.by_dom
            .get_mut(usize::from(v.dom.raw()))?
            .get_mut(vcpu_index)
            .and_then(Option::as_mut)
    }

    /// A server the scheduler must know; a miss is a bug in xensim.
    fn srv(&self, v: VcpuRef) -> &Server {
        match self.get(v) {
            Some(s) => s,
            None => panic!("rtds has no server for {v:?}"),
        }
    }

    fn srv_mut(&mut self, v: VcpuRef) -> &mut Server {
        match self.get_mut(v) {
            Some(s) => s,
            None => panic!("rtds has no server for {v:?}"),
        }
    }

    fn insert(&mut self, v: VcpuRef, server: Server) {
        let dom_index = usize::from(v.dom.raw());
        if self.by_dom.len() <= dom_index {
            self.by_dom.resize_with(dom_index + 1, Vec::new);
        }
        let vcpus = &mut self.by_dom[dom_index];
        let vcpu_index = usize::try_from(v.vcpu.raw()).unwrap_or(usize::MAX);
        assert!(vcpu_index < usize::MAX, "vCPU index out of range");
        if vcpus.len() <= vcpu_index {
            vcpus.resize_with(vcpu_index + 1, || None);
        }
        assert!(vcpus[vcpu_index].is_none(), "{v:?} inserted twice");
        vcpus[vcpu_index] = Some(server);
    }

    fn remove(&mut self, v: VcpuRef) -> Option<Server> {
        let vcpu_index = usize::try_from(v.vcpu.raw()).ok()?;
        self.by_dom
            .get_mut(usize::from(v.dom.raw()))?
            .get_mut(vcpu_index)?
            .take()
    }

    /// Every server with its vCPU, in (domid, vCPU) order.
    fn iter(&self) -> impl Iterator<Item = (VcpuRef, &Server)> {
        self.by_dom
            .iter()
            .enumerate()
            .flat_map(|(dom_index, vcpus)| {
                vcpus
                    .iter()
                    .enumerate()
                    .filter_map(move |(vcpu_index, slot)| {
                        let s = slot.as_ref()?;
                        let dom = DomId::new(u16::try_from(dom_index).ok()?)?;
                        let vcpu = crate::ids::VcpuId::new(u32::try_from(vcpu_index).ok()?)?;
                        Some((VcpuRef { dom, vcpu }, s))
                    })
            })
    }

    /// The servers of one domain's vCPUs.
    fn of_dom_mut(&mut self, dom: DomId) -> impl Iterator<Item = &mut Server> {
        self.by_dom
            .get_mut(usize::from(dom.raw()))
            .into_iter()
            .flat_map(|vcpus| vcpus.iter_mut().filter_map(Option::as_mut))
    }
}

impl replq::Locate for Servers {
    fn block_of(&self, v: VcpuRef) -> Option<u32> {
        self.srv(v).replq_block
    }

    fn set_block_of(&mut self, v: VcpuRef, block: Option<u32>) {
        self.srv_mut(v).replq_block = block;
    }
}

/// The rtds scheduler of one pool (`struct rt_private` and its `rt_unit`s).
#[derive(Debug)]
pub struct RtdsScheduler {
    servers: Servers,
    /// `runq`: servers with budget or extratime, most urgent first (by `Server::runq_at`).
    runq: BTreeMap<(u32, STime, u64), VcpuRef>,
    /// The next `runq`/`depletedq` sequence number.
    queue_seq: u64,
    /// `depletedq`: servers out of budget without extratime, newest first (by
    /// `Server::queue_seq`, so a removal is a lookup, not a scan).
    depletedq: BTreeMap<Reverse<u64>, VcpuRef>,
    /// `replq`: servers with a pending replenishment (runnable or running ones).
    replq: replq::ReplQueue,
    /// `tickled`: pCPUs tickled and not yet rescheduled.
    tickled: CpuMask,
    /// The replenishment handler's temporary list, kept to reuse its capacity.
    expired: Vec<VcpuRef>,
    /// xensim: what runs where, ordered for `runq_tickle` (`running.rs`).
    running: running::RunningIndex,
}

impl RtdsScheduler {
    /// `rt_init`: empty queues, no pCPU yet.
    pub fn new(init: &SchedInit<'_>) -> RtdsScheduler {
        RtdsScheduler {
            servers: Servers::default(),
            runq: BTreeMap::new(),
            queue_seq: 0,
            depletedq: BTreeMap::new(),
            replq: replq::ReplQueue::default(),
            tickled: CpuMask::empty(init.nr_cpus),
            expired: Vec::new(),
            running: running::RunningIndex::new(init.nr_cpus),
        }
    }

    /// Server-period counters of `v` (`metrics.md` §1.7), `None` if `v` is not here.
    pub fn server_stats(&self, v: VcpuRef) -> Option<ServerStats> {
        self.servers.get(v).map(|s| s.acct.stats())
    }
}

impl Scheduler for RtdsScheduler {
    fn opt_name(&self) -> &'static str {
        "rtds"
    }

    fn name(&self) -> &'static str {
        "SMP RTDS Scheduler"
    }

    fn init_messages(&self, out: &mut Vec<String>) {
        // rt_init: one printk of three lines.
        out.push("Initializing RTDS scheduler".into());
        out.push("WARNING: This is experimental software in development.".into());
        out.push("Use at your own risk.".into());
    }

    fn add_pcpu(&mut self, ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        // rt_switch_sched only (re)initialises Xen's timer on its first pCPU.
        assert!(cpu.raw() < self.tickled.width(), "{cpu:?} outside the host");
        let ours = ctx.curr_on(cpu).filter(|v| self.servers.get(*v).is_some());
        self.record_running(cpu, ours);
    }

    fn remove_pcpu(&mut self, _ctx: &mut SchedCtx<'_>, cpu: PcpuId) {
        // rt_deinit_pdata only moves Xen's timer; the tickled bit stays, as in Xen.
        assert!(cpu.raw() < self.tickled.width(), "{cpu:?} outside the host");
        self.record_running(cpu, None);
    }

    fn insert_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        self.unit_insert(ctx, v);
    }

    fn remove_vcpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        self.unit_remove(ctx, v);
    }

    fn wake(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        self.unit_wake(ctx, v);
    }

    fn sleep(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) {
        self.unit_sleep(ctx, v);
    }

    fn yield_vcpu(&mut self, _ctx: &mut SchedCtx<'_>, _v: VcpuRef) {
        // rt.c has no yield hook: the core reschedules, and the same vCPU may run on.
    }

    fn pick_cpu(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef) -> PcpuId {
        self.res_pick(ctx, v)
    }

    fn migrate(&mut self, ctx: &mut SchedCtx<'_>, v: VcpuRef, new_cpu: PcpuId) {
        // rt.c has no migrate hook: sched_migrate falls back to sched_set_res.
        ctx.set_processor(v, new_cpu);
    }

    fn do_schedule(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        cpu: PcpuId,
        prev: Option<VcpuRef>,
    ) -> Decision {
        self.schedule(ctx, cpu, prev)
    }

    fn context_saved(&mut self, ctx: &mut SchedCtx<'_>, prev: VcpuRef) {
        self.saved(ctx, prev);
    }

    fn dom_params(&self, dom: DomId) -> Result<DomParams, SchedError> {
        self.get_dom_params(dom)
    }

    fn set_dom_params(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        dom: DomId,
        params: &DomParams,
    ) -> Result<(), SchedError> {
        self.put_dom_params(ctx, dom, params)
    }

    fn vcpu_params(&self, v: VcpuRef) -> Result<VcpuParams, SchedError> {
        self.get_vcpu_params(v)
    }

    fn set_vcpu_params(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        v: VcpuRef,
        params: &VcpuParams,
    ) -> Result<(), SchedError> {
        self.put_vcpu_params(ctx, v, params)
    }

    fn pool_params(&self) -> super::params::PoolParams {
        super::params::PoolParams::Rtds
    }

    fn next_timer(&self) -> Option<STime> {
        // The head's key copy holds its deadline (every in-place key change goes through
        // `rekey`), so the server itself need not be read.
        let ((_, deadline), head) = self.replq.first_keyed()?;
        debug_assert_eq!(deadline, self.servers.srv(head).cur_deadline);
        Some(deadline)
    }

    fn timer_fired(&mut self, ctx: &mut SchedCtx<'_>) {
        self.repl_timer_handler(ctx);
    }

    fn server_stats(&self, v: VcpuRef) -> Option<ServerStats> {
        RtdsScheduler::server_stats(self, v)
    }

    fn check_invariants(
        &self,
        domains: &DomainTable,
        pool_cpus: &CpuMask,
        out: &mut Vec<Violation>,
    ) {
        check::check(self, domains, pool_cpus, out);
    }
}

#[cfg(test)]
mod tests;
