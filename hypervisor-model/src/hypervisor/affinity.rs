//! vCPU affinity changes: store the new hard/soft masks, tell the scheduler, and move the
//! vCPU where the scheduler now wants it.
//!
//! Follows xen/common/sched/core.c (`vcpu_affinity_domctl`, `vcpu_set_hard_affinity`,
//! `vcpu_set_soft_affinity`, `sched_set_affinity`, `vcpu_set_affinity`); spec
//! `schedulers.md` §6.
//!
//! xensim differs: guests never set a temporary pin (SCHEDOP_pin_override), so the
//! `affinity_broken` (EBUSY) path does not arise.

use super::Hypervisor;
use crate::cpumask::CpuMask;
use alloc::vec::Vec;

use crate::ids::{DomId, VcpuId, VcpuRef};
use crate::platform::Platform;
use crate::toolstack::ops::ToolstackError;

impl Hypervisor {
    /// `xl vcpu-pin`: one vCPU (`libxl_set_vcpuaffinity`) or each in turn
    /// (`libxl_set_vcpuaffinity_all`, which goes on past a failure and reports it at the end).
    pub(crate) fn set_affinity_op<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        vcpu: Option<VcpuId>,
        hard: Option<&CpuMask>,
        soft: Option<&CpuMask>,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let targets: Vec<VcpuRef> = match vcpu {
            Some(vcpu) => alloc::vec![VcpuRef { dom, vcpu }],
            None => self
                .domains
                .get(dom)
                .map(|d| d.vcpus.iter().map(|v| v.id).collect())
                .unwrap_or_default(),
        };
        let mut result = Ok(());
        for v in targets {
            if let Err(e) = self.vcpu_set_affinity(v, hard, soft, p) {
                result = Err(e);
            }
        }
        result
    }

    /// `XEN_DOMCTL_setvcpuaffinity` with HARD and/or SOFT: a hard mask must intersect the
    /// pool's pCPUs (`-EINVAL`, nothing changed); a soft mask is always accepted. Each
    /// change re-evaluates placement (`vcpu_migrate_start` / `_finish`).
    pub(crate) fn vcpu_set_affinity<P: Platform + ?Sized>(
        &mut self,
        v: VcpuRef,
        hard: Option<&CpuMask>,
        soft: Option<&CpuMask>,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let pool = self
            .domains
            .get(v.dom)
            .map(|d| d.pool)
            .ok_or(ToolstackError::NoSuchDomain)?;
        if self.domains.vcpu(v).is_none() {
            return Err(ToolstackError::NoSuchDomain);
        }
        if let Some(hard) = hard {
            let pool_cpus = &self.pool_ref(pool).cpus;
            if !hard.intersects(pool_cpus) {
                return Err(ToolstackError::EmptyAffinity);
            }
            self.store_affinity(v, Some(hard), None, p);
        }
        if let Some(soft) = soft {
            self.store_affinity(v, None, Some(soft), p);
        }
        Ok(())
    }

    /// `vcpu_set_affinity`: `sched_set_affinity` (store, `adjust_affinity`), then migrate.
    fn store_affinity<P: Platform + ?Sized>(
        &mut self,
        v: VcpuRef,
        hard: Option<&CpuMask>,
        soft: Option<&CpuMask>,
        p: &mut P,
    ) {
        let Some(pool) = self.domains.get(v.dom).map(|d| d.pool) else {
            return;
        };
        if let Some(vcpu) = self.domains.vcpu_mut(v) {
            if let Some(hard) = hard {
                vcpu.hard_affinity = hard.clone();
            }
            if let Some(soft) = soft {
                vcpu.soft_affinity = soft.clone();
            }
        }
        self.with_sched(pool, p, |s, ctx| s.affinity_changed(ctx, v));
        self.vcpu_migrate_start(v, p);
    }
}
