//! Scheduler-facing toolstack operations: dispatch of the cpupool operations, and the
//! per-domain, per-vCPU and per-pool scheduler parameters (`xl sched-credit2`,
//! `xl sched-rtds`, and the parameters `xl create` applies at build).
//!
//! Follows xen/common/sched/core.c (`sched_adjust`, `sched_adjust_global`),
//! xen/common/domctl.c (`XEN_DOMCTL_scheduler_op`) and tools/libs/light/libxl_sched.c
//! (`sched_credit2_domain_set`: the cap range check), libxl_dom.c (`libxl__build_pre`
//! sets the domain's scheduling parameters); spec `schedulers.md` §7.4–7.5.
//!
//! # Invariants
//! - A refused parameter change leaves every vCPU's parameters as they were, except for
//!   the vCPUs before the refused one in a per-vCPU list (Xen applies them in order).
//! - `Domain::weight`/`cap` follow what the credit2 scheduler accepted.

use alloc::vec::Vec;

use super::Hypervisor;
use crate::ids::{DomId, PoolId, VcpuId, VcpuRef};
use crate::platform::Platform;
use crate::sched::params::{DomParams, PoolParams, SchedError, VcpuParams};
use crate::sched::SchedKind;
use crate::toolstack::ops::{PoolError, ToolstackError, ToolstackOp};

impl Hypervisor {
    /// The cpupool and scheduler-parameter operations of [`ToolstackOp`].
    pub(crate) fn sched_op<P: Platform + ?Sized>(
        &mut self,
        op: &ToolstackOp,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        match op {
            ToolstackOp::CpupoolCreate { name, sched, cpus } => {
                self.cpupool_create(name, *sched, cpus, p).map(|_| ())
            }
            ToolstackOp::CpupoolDestroy { pool } => self.cpupool_destroy(*pool, p),
            ToolstackOp::CpupoolCpuAdd { pool, cpus } => self.cpupool_cpu_add(*pool, cpus, p),
            ToolstackOp::CpupoolCpuRemove { pool, cpus } => self.cpupool_cpu_remove(*pool, cpus, p),
            ToolstackOp::CpupoolMigrate { dom, pool } => {
                self.live_pool(*dom)?;
                self.cpupool_move_domain(*dom, *pool, p)
            }
            ToolstackOp::SchedDomParams { dom, params } => self.set_dom_params(*dom, params, p),
            ToolstackOp::SchedVcpuParams { dom, vcpus, params } => {
                self.set_vcpu_params(*dom, vcpus.as_deref(), params, p)
            }
            ToolstackOp::SchedPoolParams { pool, params } => {
                if !self.pools.contains(*pool) {
                    return Err(ToolstackError::Pool(PoolError::NotFound));
                }
                self.with_sched(*pool, p, |s, ctx| s.set_pool_params(ctx, params))
                    .map_err(ToolstackError::Sched)
            }
            // The domain operations are dispatched by `start_job` before this.
            _ => Err(ToolstackError::NotPermitted),
        }
    }

    /// The pool of a live domain (`-ESRCH` for a missing or dying one).
    fn live_pool(&self, dom: DomId) -> Result<PoolId, ToolstackError> {
        if !self.is_alive(dom) {
            return Err(ToolstackError::NoSuchDomain);
        }
        self.domains
            .get(dom)
            .map(|d| d.pool)
            .ok_or(ToolstackError::NoSuchDomain)
    }

    /// `XEN_DOMCTL_SCHEDOP_putinfo` on the domain's pool scheduler.
    pub(crate) fn set_dom_params<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        params: &DomParams,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let pool = self.live_pool(dom)?;
        self.with_sched(pool, p, |s, ctx| s.set_dom_params(ctx, dom, params))
            .map_err(ToolstackError::Sched)?;
        if let (DomParams::Credit2 { weight, cap }, Some(d)) = (params, self.domains.get_mut(dom)) {
            d.weight = u32::from(*weight);
            d.cap = u32::from(*cap);
        }
        Ok(())
    }

    /// `XEN_DOMCTL_SCHEDOP_putvcpuinfo`: each listed vCPU in order with its entry, or every
    /// vCPU with `params[0]`.
    pub(crate) fn set_vcpu_params<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        vcpus: Option<&[VcpuId]>,
        params: &[VcpuParams],
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let pool = self.live_pool(dom)?;
        let vcpu_count = self.domains.get(dom).map_or(0, |d| d.vcpus.len());
        let targets: Vec<(VcpuRef, VcpuParams)> = match vcpus {
            None => {
                let all = params
                    .first()
                    .ok_or(ToolstackError::Sched(SchedError::Invalid))?;
                self.domains
                    .get(dom)
                    .map(|d| d.vcpus.iter().map(|v| (v.id, *all)).collect())
                    .unwrap_or_default()
            }
            Some(ids) => {
                if ids.len() != params.len() {
                    return Err(ToolstackError::Sched(SchedError::Invalid));
                }
                let mut out = Vec::with_capacity(ids.len());
                for (id, entry) in ids.iter().zip(params) {
                    if usize::try_from(id.raw()).map_or(true, |i| i >= vcpu_count) {
                        return Err(ToolstackError::InvalidVcpu);
                    }
                    out.push((VcpuRef { dom, vcpu: *id }, *entry));
                }
                out
            }
        };
        for (v, entry) in targets {
            self.with_sched(pool, p, |s, ctx| s.set_vcpu_params(ctx, v, &entry))
                .map_err(ToolstackError::Sched)?;
        }
        Ok(())
    }

    /// `libxl__build_pre`'s `libxl_domain_sched_params_set` for a new domain: in a credit2
    /// pool, its `cpu_weight` and `cap` (libxl checks the cap against the vCPU count);
    /// other schedulers take their defaults.
    pub(crate) fn apply_create_sched_params<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let Some(d) = self.domains.get(dom) else {
            return Err(ToolstackError::NoSuchDomain);
        };
        if self.pool_ref(d.pool).kind != SchedKind::Credit2 {
            return Ok(());
        }
        let vcpu_count = u32::try_from(d.vcpus.len()).unwrap_or(u32::MAX);
        let cap_max = vcpu_count.saturating_mul(100);
        if d.cap > cap_max {
            return Err(ToolstackError::CapOutOfRange { cap_max });
        }
        let weight =
            u16::try_from(d.weight).map_err(|_| ToolstackError::Sched(SchedError::Invalid))?;
        let cap = u16::try_from(d.cap).map_err(|_| ToolstackError::CapOutOfRange { cap_max })?;
        self.set_dom_params(dom, &DomParams::Credit2 { weight, cap }, p)
    }

    /// The parameters `xl sched-*` would read for `dom` (`XEN_DOMCTL_SCHEDOP_getinfo`).
    pub fn dom_sched_params(&self, dom: DomId) -> Option<Result<DomParams, SchedError>> {
        let d = self.domains.get(dom)?;
        Some(self.pools.get(d.pool)?.sched.dom_params(dom))
    }

    /// `XEN_DOMCTL_SCHEDOP_getvcpuinfo` for one vCPU.
    pub fn vcpu_sched_params(&self, v: VcpuRef) -> Option<Result<VcpuParams, SchedError>> {
        let d = self.domains.get(v.dom)?;
        Some(self.pools.get(d.pool)?.sched.vcpu_params(v))
    }

    /// `XEN_SYSCTL_SCHEDOP_getinfo` for a pool.
    pub fn pool_sched_params(&self, pool: PoolId) -> Option<PoolParams> {
        Some(self.pools.get(pool)?.sched.pool_params())
    }
}
