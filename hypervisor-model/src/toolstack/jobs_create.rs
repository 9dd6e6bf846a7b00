//! The first step of `xl create`: `libxl__domain_make` and the checks before any page is
//! populated (pool, affinity, NUMA placement, backends named by the disks and vifs, the
//! claim), then the create job that `jobs.rs` steps on.
//!
//! Follows tools/libs/light/libxl_create.c (`libxl__domain_make`, the recently-destroyed
//! domid retry) and libxl_device.c (`libxl__resolve_domid` for `backend=`).
//!
//! # Invariants
//! - A create that fails here leaves no domain behind (`free_domain` on every error path
//!   after the domain is inserted).

use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::domain::{Domain, DomainIdentity, Dying};
use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, PcpuId, PoolId};
use crate::platform::Platform;
use crate::time::{STime, Span};
use crate::toolstack::config::{ConfigError, DomainConfig};
use crate::toolstack::jobs::{pages_of_kib, Job};
use crate::toolstack::ops::{JobId, JobStepCode, ToolstackError, ToolstackReply};
use crate::trace::TraceEvent;

/// libxl refuses a domid destroyed less than this long ago (`LIBXL_DOMID_REUSE_TIMEOUT`).
const DOMID_REUSE_TIMEOUT: Span = Span::from_ms(60_000);

impl Hypervisor {
    pub(super) fn create_start<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        config: &DomainConfig,
        uuid: [u8; 16],
        paused: bool,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        config.validate().map_err(ToolstackError::Config)?;
        let pool = self.pool_by_name(config.pool.as_deref())?;
        if self.pool_ref(pool).cpus.is_empty() {
            // cpupool_add_domain: a pool without pCPUs takes no domain (-ENODEV).
            return Err(ToolstackError::Pool(
                crate::toolstack::ops::PoolError::NoDevice,
            ));
        }
        let (hard, mut soft) = self.affinity_masks(config, pool)?;
        // libxl__build_pre: automatic NUMA placement sets every vCPU's soft affinity to
        // the chosen nodes' pCPUs and the domain's node affinity to those nodes.
        let placement = self.numa_place(config, pool);
        if let Some(chosen) = &placement {
            let width = self.host.nr_cpus();
            let mut node_cpus = CpuMask::empty(width);
            for (cpu, topo) in self.host.cpus.iter().enumerate() {
                let on_node = chosen.nodemap >> topo.node & 1 == 1;
                if let Some(id) = u32::try_from(cpu).ok().and_then(PcpuId::new) {
                    if on_node {
                        node_cpus.set(id);
                    }
                }
            }
            soft.iter_mut().for_each(|mask| *mask = node_cpus.clone());
        }
        let dom = self
            .allocate_domid(p.now())
            .ok_or(ToolstackError::NoFreeDomid)?;
        let domain = new_domain(dom, config, uuid, pool, p.now());
        let max_pages = domain.max_pages;
        self.insert_domain(domain, p);
        let max_set = self.memory.set_max_pages(dom, max_pages);
        debug_assert_eq!(max_set, Ok(()));
        if let Some(chosen) = &placement {
            let set = self.memory.set_node_affinity(dom, chosen.nodemap);
            debug_assert_eq!(set, Ok(()));
        }
        self.create_vcpus(dom, &hard, &soft, config.vcpus, p);
        p.trace(&TraceEvent::JobStep {
            job,
            step: JobStepCode::CreateDomain as u8,
        });
        p.toolstack_reply(job, ToolstackReply::Created { dom });
        // libxl__domain_make names the new domain only after createdomain: a name that
        // another live domain holds fails there, and libxl destroys the new domain.
        let name_taken = self
            .domains
            .iter()
            .any(|d| d.id != dom && d.dying == Dying::Alive && d.name == config.name);
        if name_taken {
            self.free_domain(dom, p);
            return Err(ToolstackError::NameInUse);
        }
        if let Err(e) = self.apply_create_sched_params(dom, p) {
            self.free_domain(dom, p);
            return Err(e);
        }
        // libxl__device_disk_setdefault: each `backend=` names a domain. xensim differs:
        // the check runs before the home is written (libxl's runs just after).
        if let Some(index) = config
            .disks
            .iter()
            .position(|disk| self.disk_backend(disk).is_none())
        {
            self.free_domain(dom, p);
            let disk_index = u32::try_from(index).unwrap_or(u32::MAX);
            return Err(ToolstackError::NoSuchBackend { disk_index });
        }
        // libxl__device_nic_setdefault, when domcreate_attach_devices adds the vifs: a
        // `backend=` that names no domain fails them. xensim differs: checked here too.
        if config
            .vifs
            .iter()
            .any(|vif| self.vif_backend(vif).is_none())
        {
            self.free_domain(dom, p);
            return Err(ToolstackError::NoSuchVifBackend);
        }
        let xs_ns = self.create_make_io(dom, config, &uuid);
        let needed_pages = pages_of_kib(config.memory_kib);
        let available = self
            .memory
            .free_pages()
            .saturating_sub(self.memory.outstanding_claims());
        // meminit_pv/meminit_hvm: with claim_mode, XENMEM_claim_pages stakes the whole
        // size first; when it fails, the build fails at once and libxl destroys the domain.
        if self.claim_mode && self.memory.claim_pages(dom, needed_pages).is_err() {
            self.free_domain(dom, p);
            return Err(ToolstackError::OutOfMemory {
                needed_pages,
                free_pages: available,
            });
        }
        self.jobs.insert(
            job,
            Job::Create {
                dom,
                pages_left: needed_pages,
                paused,
                built: false,
                devices_added: false,
            },
        );
        self.defer(job, self.costs.domctl_ns.saturating_add(xs_ns), p);
        Ok(())
    }

    /// `libxl__resolve_domid` for a disk: dom0 without `backend=`, else the live domain
    /// of that name.
    pub(crate) fn disk_backend(&self, disk: &crate::toolstack::config::DiskCfg) -> Option<DomId> {
        self.backend_named(disk.backend.as_deref())
    }

    /// `libxl__resolve_domid` for a vif (`libxl__device_nic_setdefault`): the same rule.
    pub(crate) fn vif_backend(&self, vif: &crate::toolstack::config::VifCfg) -> Option<DomId> {
        self.backend_named(vif.backend.as_deref())
    }

    /// dom0 for no `backend=`, else the live domain called `name`. xensim differs: an
    /// all-digit name is looked up as a name too (libxl takes it as a domid unchecked).
    fn backend_named(&self, name: Option<&str>) -> Option<DomId> {
        let Some(name) = name else {
            return Some(DomId::DOM0);
        };
        self.domains
            .iter()
            .find(|d| d.dying == Dying::Alive && d.name == name)
            .map(|d| d.id)
    }

    fn pool_by_name(&self, name: Option<&str>) -> Result<PoolId, ToolstackError> {
        match name {
            None => Ok(PoolId(0)),
            Some(name) => self
                .pools
                .iter()
                .find(|pool| pool.name == name)
                .map(|pool| pool.id)
                .ok_or(ToolstackError::NoSuchPool),
        }
    }

    fn affinity_masks(
        &self,
        config: &DomainConfig,
        pool: PoolId,
    ) -> Result<(Vec<CpuMask>, Vec<CpuMask>), ToolstackError> {
        let width = self.host.nr_cpus();
        let pool_cpus = &self.pool_ref(pool).cpus;
        let count = usize::try_from(config.max_vcpus).unwrap_or(0);
        let hard: Vec<CpuMask> = (0..count).map(|i| config.cpus.for_vcpu(i, width)).collect();
        let soft: Vec<CpuMask> = (0..count)
            .map(|i| config.cpus_soft.for_vcpu(i, width))
            .collect();
        if hard.iter().chain(&soft).any(|mask| mask.width() != width) {
            return Err(ToolstackError::Config(ConfigError::CpumaskWidth));
        }
        if hard.iter().any(|h| !h.intersects(pool_cpus)) {
            return Err(ToolstackError::EmptyAffinity);
        }
        Ok((hard, soft))
    }

    /// createdomain's rover, retried while libxl finds the id recently destroyed.
    fn allocate_domid(&mut self, now: STime) -> Option<DomId> {
        self.recent_domids
            .retain(|(_, at)| now.since(*at) < DOMID_REUSE_TIMEOUT);
        for _attempt in 0..crate::limits::DOMID_MAX_ALLOC {
            let dom = self.domains.allocate_id(None)?;
            if !self.recent_domids.iter().any(|(d, _)| *d == dom) {
                return Some(dom);
            }
        }
        None
    }
}

fn new_domain(
    dom: DomId,
    config: &DomainConfig,
    uuid: [u8; 16],
    pool: PoolId,
    now: STime,
) -> Domain {
    let identity = DomainIdentity {
        id: dom,
        name: String::from(config.name.as_str()),
        uuid,
        guest_type: config.guest_type,
        pool,
        weight: config.weight,
        cap: config.cap,
    };
    let mut domain = Domain::new_paused(identity, now);
    domain.config = Some(config.clone());
    // Xen: libxl__build_pre sets max_pages from the *target* plus the arch extra
    // (`xc_domain_setmaxmem(target_memkb + LIBXL_MAXMEM_CONSTANT)`), not from `maxmem`:
    // a guest built below its static-max can grow only after `xl mem-set`/`mem-max`.
    let max_kib = config.memory_kib + crate::toolstack::mem_ops::LIBXL_MAXMEM_CONSTANT_KIB;
    domain.max_pages = pages_of_kib(max_kib);
    domain
}
