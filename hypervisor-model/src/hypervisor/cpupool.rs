//! cpupools at run time: create, destroy, add and remove pCPUs, move a domain.
//!
//! Follows xen/common/sched/cpupool.c (`cpupool_create`, `cpupool_destroy`,
//! `cpupool_assign_cpu_locked`, `cpupool_unassign_cpu[_start]`, `cpupool_do_sysctl`) and
//! xen/common/sched/core.c (`sched_move_domain`, `cpu_disable_scheduler`), with libxl's
//! sequences from tools/libs/light/libxl_cpupool.c; spec `schedulers.md` §5.
//!
//! # Invariants
//! - At most `POOLS_PER_CPU_MAX * nr_cpus` pools exist; Pool-0 is never destroyed.
//! - A pCPU is in `cpu_pool` of pool P iff it is in P's mask, except while it leaves P
//!   inside [`Hypervisor::unassign_cpu`] (out of the mask first, as `res_valid` in Xen).
//! - pCPU 0 never leaves Pool-0; a pool with a live domain never loses its last pCPU.
//!
//! xensim differs: removing a pCPU and moving a domain are synchronous. Xen waits for a
//! running vCPU to be descheduled (`vcpu_sleep_sync`, `-EAGAIN` retries); xensim runs the
//! scheduler on that pCPU at once. "Breaking affinity for dXvY" is a `XENLOG_DEBUG` line,
//! below Debian's default `loglvl`, so it goes to the trace only, not to `xl dmesg`.
//! Guests never set a temporary pin, so the `-EADDRINUSE` / `-EBUSY` pin paths do not arise.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::cpumask::CpuMask;
use crate::domain::vcpu::VPF_MIGRATING;
use crate::ids::{DomId, PcpuId, PoolId, VcpuRef};
use crate::limits::{POOLS_PER_CPU_MAX, POOL_ID_MAX};
use crate::platform::Platform;
use crate::sched::{Pool, SchedKind};
use crate::toolstack::ops::{PoolError, ToolstackError};
use crate::trace::TraceEvent;

impl Hypervisor {
    /// `cpupool_create` with `CPUPOOLID_NONE`: the id after the highest one, or the first
    /// gap once the highest id is `CPUPOOLID_NONE - 1`.
    fn next_pool_id(&self) -> Option<PoolId> {
        let last = self.pools.last_id().map_or(0, |id| id.0);
        if last < POOL_ID_MAX {
            return Some(PoolId(last + 1));
        }
        (0..=POOL_ID_MAX)
            .map(PoolId)
            .find(|id| !self.pools.contains(*id))
    }

    fn pools_max(&self) -> usize {
        let max = self.host.nr_cpus().saturating_mul(POOLS_PER_CPU_MAX);
        usize::try_from(max).unwrap_or(usize::MAX)
    }

    /// A new pool with no pCPU: Pool-0 at boot, else the next id. `None` when
    /// `2 * nr_cpus` pools exist (`-ENOSPC`).
    pub(crate) fn insert_pool(&mut self, name: String, kind: SchedKind) -> Option<PoolId> {
        if self.pools.len() >= self.pools_max() {
            return None;
        }
        let id = if self.pools.is_empty() {
            PoolId(0)
        } else {
            self.next_pool_id()?
        };
        let sched = kind.instantiate(&self.sched_init());
        let pool = Pool {
            id,
            name,
            kind,
            cpus: CpuMask::empty(self.host.nr_cpus()),
            sched,
            timer: None,
        };
        let fresh = self.pools.insert(pool);
        assert!(fresh, "{id:?} allocated twice");
        Some(id)
    }

    /// `cpupool_assign_cpu_locked`: a free pCPU joins `pool` (`schedule_cpu_add`).
    pub(crate) fn assign_cpu<P: Platform + ?Sized>(
        &mut self,
        pool: PoolId,
        cpu: PcpuId,
        p: &mut P,
    ) {
        assert!(self.cpu_pool[cpu.index()].is_none(), "{cpu:?} is not free");
        self.cpu_pool[cpu.index()] = Some(pool);
        self.pool_mut(pool).cpus.set(cpu);
        p.trace(&TraceEvent::PoolCpu {
            pcpu: cpu,
            pool: Some(pool),
        });
        self.with_sched(pool, p, |s, ctx| s.add_pcpu(ctx, cpu));
    }

    /// Domains whose `d->cpupool` is `pool`, dying ones included (`c->n_dom`).
    pub fn pool_domains(&self, pool: PoolId) -> impl Iterator<Item = DomId> + '_ {
        self.domains
            .iter()
            .filter(move |d| d.pool == pool)
            .map(|d| d.id)
    }

    /// `libxl_cpupool_create`: a pool with the next id, then its pCPUs. A pCPU that is not
    /// free fails the whole operation and leaves no pool behind.
    pub(crate) fn cpupool_create<P: Platform + ?Sized>(
        &mut self,
        name: &str,
        kind: SchedKind,
        cpus: &CpuMask,
        p: &mut P,
    ) -> Result<PoolId, ToolstackError> {
        if let Some(cpu) = cpus.iter().find(|c| self.add_cpu_check(*c).is_err()) {
            let error = self.add_cpu_check(cpu).err().unwrap_or(PoolError::NoDevice);
            return Err(ToolstackError::PoolCpu { cpu, error });
        }
        let id = self
            .insert_pool(String::from(name), kind)
            .ok_or(ToolstackError::Pool(PoolError::NoSpace))?;
        p.trace(&TraceEvent::PoolCreate {
            pool: id,
            name: String::from(name),
            sched: kind,
        });
        crate::hypervisor::banner::sched_init(self, p, kind);
        for cpu in cpus.iter() {
            self.assign_cpu(id, cpu, p);
        }
        Ok(id)
    }

    /// Why `cpu` cannot join a pool (`XEN_SYSCTL_CPUPOOL_OP_ADDCPU`), if it cannot.
    fn add_cpu_check(&self, cpu: PcpuId) -> Result<(), PoolError> {
        match self.cpu_pool.get(cpu.index()) {
            None => Err(PoolError::Invalid),
            Some(Some(_)) => Err(PoolError::NoDevice),
            Some(None) => Ok(()),
        }
    }

    /// `xc_cpupool_addcpu` for each pCPU of `cpus`, ascending; stops at the first failure.
    pub(crate) fn cpupool_cpu_add<P: Platform + ?Sized>(
        &mut self,
        pool: PoolId,
        cpus: &CpuMask,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        if !self.pools.contains(pool) {
            return Err(ToolstackError::Pool(PoolError::NotFound));
        }
        for cpu in cpus.iter() {
            self.add_cpu_check(cpu)
                .map_err(|error| ToolstackError::PoolCpu { cpu, error })?;
            self.assign_cpu(pool, cpu, p);
        }
        Ok(())
    }

    /// `xc_cpupool_removecpu` for each pCPU of `cpus`, ascending; stops at the first failure.
    pub(crate) fn cpupool_cpu_remove<P: Platform + ?Sized>(
        &mut self,
        pool: PoolId,
        cpus: &CpuMask,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        if !self.pools.contains(pool) {
            return Err(ToolstackError::Pool(PoolError::NotFound));
        }
        for cpu in cpus.iter() {
            self.unassign_cpu(pool, cpu, p)
                .map_err(|error| ToolstackError::PoolCpu { cpu, error })?;
        }
        Ok(())
    }

    /// `libxl_cpupool_destroy`: refused while the pool has domains; otherwise its pCPUs
    /// leave, then `cpupool_destroy`.
    pub(crate) fn cpupool_destroy<P: Platform + ?Sized>(
        &mut self,
        pool: PoolId,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let cpus = self
            .pools
            .get(pool)
            .map(|found| found.cpus.clone())
            .ok_or(ToolstackError::Pool(PoolError::NotFound))?;
        if self.pool_domains(pool).next().is_some() {
            return Err(ToolstackError::Pool(PoolError::HasDomains));
        }
        assert_ne!(pool, PoolId(0), "Pool-0 always holds dom0");
        self.cpupool_cpu_remove(pool, &cpus, p)?;
        let removed = self.pools.remove(pool);
        p.trace(&TraceEvent::PoolDestroy { pool });
        assert!(removed.as_ref().is_some_and(|gone| gone.cpus.is_empty()));
        if let Some(gone) = removed {
            if gone.timer.is_some() {
                p.cancel_pool_timer(pool);
            }
        }
        Ok(())
    }

    /// `cpupool_unassign_cpu`: checks, then the pCPU leaves the pool's mask, its vCPUs are
    /// sent elsewhere (`cpu_disable_scheduler`) and the scheduler lets it go.
    fn unassign_cpu<P: Platform + ?Sized>(
        &mut self,
        pool: PoolId,
        cpu: PcpuId,
        p: &mut P,
    ) -> Result<(), PoolError> {
        if cpu.index() >= self.cpu_pool.len() || (pool == PoolId(0) && cpu.raw() == 0) {
            return Err(PoolError::Invalid);
        }
        if !self.pool_ref(pool).cpus.test(cpu) {
            return Err(PoolError::NotInPool);
        }
        if self.pool_ref(pool).cpus.weight() == 1 {
            // The last pCPU: live domains keep it; dying ones go to Pool-0.
            let doms: Vec<DomId> = self.pool_domains(pool).collect();
            if doms.iter().any(|d| self.is_alive(*d)) {
                return Err(PoolError::Busy);
            }
            for dom in doms {
                self.sched_move_domain(dom, PoolId(0), p);
            }
        }
        self.disable_scheduler(pool, cpu, p);
        self.with_sched(pool, p, |s, ctx| s.remove_pcpu(ctx, cpu));
        self.cpu_pool[cpu.index()] = None;
        assert!(!self.pool_ref(pool).cpus.test(cpu));
        p.trace(&TraceEvent::PoolCpu {
            pcpu: cpu,
            pool: None,
        });
        Ok(())
    }

    /// `cpu_disable_scheduler` for a pCPU leaving `pool`: hard affinities left without a
    /// pool pCPU are reset to all pCPUs, and every vCPU placed on `cpu` is migrated.
    fn disable_scheduler<P: Platform + ?Sized>(&mut self, pool: PoolId, cpu: PcpuId, p: &mut P) {
        let nr_cpus = self.host.nr_cpus();
        let remaining = self
            .pool_ref(pool)
            .cpus
            .and_not(&CpuMask::single(nr_cpus, cpu));
        let doms: Vec<DomId> = self.pool_domains(pool).collect();
        let mut leaving: Vec<VcpuRef> = Vec::new();
        for dom in doms {
            for v in self.vcpu_list(dom) {
                let Some(vcpu) = self.domains.vcpu(v) else {
                    continue;
                };
                let hard = &vcpu.hard_affinity;
                if !hard.intersects(&remaining) && hard.test(cpu) {
                    self.break_affinity(pool, v, p);
                }
                if self.domains.vcpu(v).is_some_and(|x| x.processor == cpu) {
                    // sched_unit_migrate_start while `cpu` is still the pool's, so a tickle
                    // of the running vCPU's pCPU stays inside the pool.
                    if let Some(x) = self.domains.vcpu_mut(v) {
                        x.pause_flags |= VPF_MIGRATING;
                    }
                    self.vcpu_sleep_nosync(v, p);
                    leaving.push(v);
                }
            }
        }
        self.pool_mut(pool).cpus.clear(cpu);
        for v in leaving {
            if self.domains.vcpu(v).and_then(|x| x.running_on) == Some(cpu) {
                // vcpu_sleep_sync: switch it out now; the switch completes the migration.
                self.schedule(cpu, p);
            }
            self.vcpu_migrate_finish(v, p);
            assert!(
                self.domains.vcpu(v).is_none_or(|x| x.processor != cpu),
                "{v:?} still placed on leaving {cpu:?}"
            );
        }
    }

    /// `sched_set_affinity(unit, &cpumask_all, NULL)` with Xen's debug line.
    fn break_affinity<P: Platform + ?Sized>(&mut self, pool: PoolId, v: VcpuRef, p: &mut P) {
        let text = format!("Breaking affinity for d{}v{}", v.dom.raw(), v.vcpu.raw());
        p.trace(&TraceEvent::Console { text });
        let full = CpuMask::full(self.host.nr_cpus());
        if let Some(vcpu) = self.domains.vcpu_mut(v) {
            vcpu.hard_affinity = full;
        }
        self.with_sched(pool, p, |s, ctx| s.affinity_changed(ctx, v));
    }

    fn vcpu_list(&self, dom: DomId) -> Vec<VcpuRef> {
        self.domains
            .get(dom)
            .map(|d| d.vcpus.iter().map(|v| v.id).collect())
            .unwrap_or_default()
    }

    /// `XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN`: dom0 (the caller's own domain) cannot move;
    /// moving to the current pool does nothing; the target needs a pCPU.
    pub(crate) fn cpupool_move_domain<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        target: PoolId,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let current = self
            .domains
            .get(dom)
            .map(|d| d.pool)
            .ok_or(ToolstackError::NoSuchDomain)?;
        if dom == DomId::DOM0 {
            return Err(ToolstackError::Pool(PoolError::NotPermitted));
        }
        if current == target {
            return Ok(());
        }
        let has_cpus = self.pools.get(target).is_some_and(|t| !t.cpus.is_empty());
        if !has_cpus {
            return Err(ToolstackError::Pool(PoolError::NotFound));
        }
        self.sched_move_domain(dom, target, p);
        Ok(())
    }

    /// `sched_move_domain`: pause; every vCPU leaves the old scheduler, then the domain;
    /// the domain joins the new one; vCPU i goes to the i-th pool pCPU (cycling), with
    /// hard and soft affinity reset to all pCPUs, and is inserted; unpause.
    pub(crate) fn sched_move_domain<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        target: PoolId,
        p: &mut P,
    ) {
        let Some(old) = self.domains.get(dom).map(|d| d.pool) else {
            return;
        };
        let target_cpus = self.pool_ref(target).cpus.clone();
        assert!(!target_cpus.is_empty(), "moving into an empty pool");
        self.domain_pause(dom, p);
        self.deschedule_domain(dom, p);
        self.remove_vcpus_from_scheduler(dom, p);
        self.with_sched(old, p, |s, ctx| s.remove_domain(ctx, dom));
        if let Some(d) = self.domains.get_mut(dom) {
            d.pool = target;
        }
        p.trace(&TraceEvent::DomainPool { dom, pool: target });
        self.with_sched(target, p, |s, ctx| s.insert_domain(ctx, dom));
        let full = CpuMask::full(self.host.nr_cpus());
        let mut next = target_cpus.first();
        for v in self.vcpu_list(dom) {
            let Some(cpu) = next else { break };
            if let Some(vcpu) = self.domains.vcpu_mut(v) {
                vcpu.hard_affinity = full.clone();
                vcpu.soft_affinity = full.clone();
                vcpu.processor = cpu;
            }
            self.with_sched(target, p, |s, ctx| s.insert_vcpu(ctx, v));
            next = target_cpus.cycle(cpu);
        }
        self.domain_unpause(dom, p);
    }

    /// `vcpu_sleep_sync` for a paused domain: every pCPU still running one of its vCPUs
    /// reschedules now.
    fn deschedule_domain<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        for v in self.vcpu_list(dom) {
            if let Some(cpu) = self.domains.vcpu(v).and_then(|x| x.running_on) {
                self.schedule(cpu, p);
            }
            let running = self.domains.vcpu(v).and_then(|x| x.running_on);
            assert!(
                running.is_none(),
                "{v:?} still runs on {running:?} while paused"
            );
        }
    }
}
