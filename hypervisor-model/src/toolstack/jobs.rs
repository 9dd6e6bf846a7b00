//! Toolstack jobs: multi-step operations that take virtual time, so that concurrent
//! creates and destroys interleave as they do on a real host.
//!
//! Follows tools/libs/light/libxl_create.c (`libxl__domain_make`: claim, createdomain with
//! the recently-destroyed-domid retry, max_vcpus; then populate, build, devices, the wait
//! for the split drivers, unpause) and tools/xl/xl_vmcontrol.c (the per-domain monitor
//! that applies `on_poweroff`/`on_reboot`/`on_crash`). The destroy job is in
//! `jobs_destroy.rs`.
//!
//! # Invariants
//! - A create job's claim plus its populated pages equal the pages it needs.
//! - A job finishes exactly once (`JobDone` is traced once per job).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::domain::{Domain, DomainIdentity, Dying, ShutdownReason};
use crate::hypervisor::{Hypervisor, InputError, XenbusWait, INTERNAL_JOB_BIT};
use crate::ids::{DomId, PcpuId, PoolId};
use crate::platform::Platform;
use crate::time::{STime, Span};
use crate::toolstack::config::{ConfigError, DomainConfig, ShutdownAction};
use crate::toolstack::ops::{
    GuestNotice, JobId, JobStepCode, ToolstackError, ToolstackOp, ToolstackReply,
};
use crate::trace::TraceEvent;

/// libxl refuses a domid destroyed less than this long ago (`LIBXL_DOMID_REUSE_TIMEOUT`).
const DOMID_REUSE_TIMEOUT: Span = Span::from_ms(60_000);

/// A toolstack operation in progress.
#[derive(Debug, Clone)]
pub enum Job {
    /// `xl create` building `dom`.
    Create {
        /// The domain being built.
        dom: DomId,
        /// Pages still to populate (claimed, not yet allocated).
        pages_left: u64,
        /// `-p`.
        paused: bool,
        /// Population done, the build step is next.
        built: bool,
        /// Built; the device directories are written (the unpause is next).
        devices_added: bool,
    },
    /// `xl destroy` (or a monitor's destroy) tearing `dom` down.
    Destroy {
        /// The domain.
        dom: DomId,
        /// The split devices' forced removes were started (the backends close on their
        /// watches); the job waits for them before it removes the directories.
        unplugged: bool,
        /// Devices and XenStore entries are gone; `domain_kill` is running.
        killing: bool,
        /// Create the domain again from this configuration afterwards (`restart`).
        restart: Option<Box<(DomainConfig, [u8; 16])>>,
    },
    /// A guest's balloon driver working towards its target (`mem_ops.rs`).
    Balloon {
        /// The domain.
        dom: DomId,
    },
}

/// Where a create job is after population.
#[derive(Clone, Copy, Debug)]
struct CreateStage {
    built: bool,
    devices_added: bool,
}

/// A create job's state.
fn create_state(dom: DomId, pages_left: u64, paused: bool, stage: CreateStage) -> Job {
    Job::Create {
        dom,
        pages_left,
        paused,
        built: stage.built,
        devices_added: stage.devices_added,
    }
}

fn pages_of_kib(kib: u64) -> u64 {
    kib.div_ceil(4)
}

impl Hypervisor {
    /// A toolstack operation arrives.
    pub(crate) fn start_job<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        op: &ToolstackOp,
        p: &mut P,
    ) -> Result<(), InputError> {
        if self.jobs.contains_key(&job) {
            return Err(InputError::DuplicateJob(job));
        }
        let result = match op {
            ToolstackOp::Create {
                config,
                uuid,
                paused,
            } => self.create_start(job, config, *uuid, *paused, p),
            ToolstackOp::Destroy { dom } => self.destroy_start(job, *dom, None, p),
            ToolstackOp::Pause { dom } => self
                .alive(*dom)
                .and_then(|()| self.controller_pause(*dom, p)),
            ToolstackOp::Unpause { dom } => self
                .alive(*dom)
                .and_then(|()| self.controller_unpause(*dom, p)),
            ToolstackOp::Shutdown { dom, reason } => self.request_shutdown(*dom, *reason, p),
            ToolstackOp::MemSet { dom, target_kib } => self
                .alive(*dom)
                .and_then(|()| self.mem_set(*dom, *target_kib, p)),
            ToolstackOp::MemMax { dom, max_kib } => self
                .alive(*dom)
                .and_then(|()| self.mem_max(*dom, *max_kib, p)),
            ToolstackOp::XsClient(cmd) => {
                let out = self.xs_client_run(cmd, p);
                p.toolstack_reply(job, ToolstackReply::XsOutput(out));
                Ok(())
            }
            ToolstackOp::VcpuAffinity {
                dom,
                vcpu,
                hard,
                soft,
            } => self
                .alive(*dom)
                .and_then(|()| self.set_affinity_op(*dom, *vcpu, hard.as_ref(), soft.as_ref(), p)),
            other => self.sched_op(other, p),
        };
        match result {
            Ok(()) if self.jobs.contains_key(&job) => {}
            other => finish(job, other, p),
        }
        Ok(())
    }

    fn alive(&self, dom: DomId) -> Result<(), ToolstackError> {
        if self.is_alive(dom) {
            Ok(())
        } else {
            Err(ToolstackError::NoSuchDomain)
        }
    }

    /// A deferred step of `job` is due.
    pub(crate) fn continue_job<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        p: &mut P,
    ) -> Result<(), InputError> {
        let state = self
            .jobs
            .get(&job)
            .cloned()
            .ok_or(InputError::UnknownJob(job))?;
        match state {
            Job::Create {
                dom,
                pages_left,
                paused,
                built,
                devices_added,
            } => {
                let stage = CreateStage {
                    built,
                    devices_added,
                };
                self.create_step(job, dom, pages_left, paused, stage, p)
            }
            Job::Balloon { dom } => self.balloon_step(job, dom, p),
            Job::Destroy {
                dom,
                unplugged,
                killing,
                restart,
            } => {
                if unplugged || killing {
                    self.destroy_step(job, dom, killing, restart, p);
                } else {
                    self.destroy_unplug(job, dom, restart, p);
                }
            }
        }
        Ok(())
    }

    pub(super) fn defer<P: Platform + ?Sized>(&mut self, job: JobId, cost_ns: i64, p: &mut P) {
        let deadline = p.now().after(Span::from_ns(cost_ns.max(0)));
        p.defer_toolstack(job, deadline);
    }

    fn create_start<P: Platform + ?Sized>(
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
                .values()
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

    fn create_step<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        dom: DomId,
        pages_left: u64,
        paused: bool,
        stage: CreateStage,
        p: &mut P,
    ) {
        let CreateStage {
            built,
            devices_added,
        } = stage;
        if !self.is_alive(dom) {
            // Destroyed while being built: libxl's create fails.
            self.jobs.remove(&job);
            self.create_stuck.remove(&job);
            finish(job, Err(ToolstackError::NoSuchDomain), p);
            return;
        }
        if pages_left > 0 && self.pod_enabled(dom) {
            self.create_pod_step(job, dom, pages_left, paused, stage, p);
        } else if pages_left > 0 {
            let needed = self.domain_needed_pages(dom);
            let gfn = needed.saturating_sub(pages_left);
            let batch_pages = self.costs.populate_batch_pages.max(1);
            let (batch, scrubbed) = match self.populate_batch(dom, gfn, pages_left, batch_pages, p)
            {
                Ok(done) => done,
                Err(_) => {
                    self.create_out_of_memory(job, dom, needed, p);
                    return;
                }
            };
            if batch == pages_left {
                // The builder cancels what is left of its claim (xc_domain_claim_pages 0).
                let cancelled = self.memory.claim_pages(dom, 0);
                debug_assert_eq!(cancelled, Ok(()));
            }
            let next = CreateStage {
                built,
                devices_added,
            };
            let state = create_state(dom, pages_left - batch, paused, next);
            self.enter_step(job, state, JobStepCode::Populate, p);
            // Dirty pages the heap handed out were scrubbed synchronously first.
            let scrub_ns = self
                .costs
                .scrub_page_ns
                .saturating_mul(i64::try_from(scrubbed).unwrap_or(i64::MAX));
            let populate_ns = self
                .costs
                .populate_page_ns
                .saturating_mul(i64::try_from(batch).unwrap_or(i64::MAX));
            self.defer(job, populate_ns.saturating_add(scrub_ns), p);
        } else if !built {
            let next = CreateStage {
                built: true,
                devices_added: false,
            };
            let state = create_state(dom, 0, paused, next);
            self.enter_step(job, state, JobStepCode::Build, p);
            let xs_ns = self.create_build_io(dom, p);
            self.defer(job, self.costs.build_ns.saturating_add(xs_ns), p);
        } else if !devices_added {
            let next = CreateStage {
                built: true,
                devices_added: true,
            };
            let state = create_state(dom, 0, paused, next);
            self.enter_step(job, state, JobStepCode::Devices, p);
            let xs_ns = self.create_devices_io(dom, p);
            self.stubdom_spawn(dom, p);
            let wait_ns = self.create_stuck_wait_ns(job, dom);
            self.defer(job, xs_ns.saturating_add(wait_ns), p);
        } else if let Some(error) = self.create_stuck.remove(&job) {
            // libxl__wait_device_connection timed out: the create fails and libxl
            // destroys the domain (xensim differs: xl's create returns at once, the
            // destroy runs as the toolstack's own job).
            self.jobs.remove(&job);
            let destroy = self.internal_job_id();
            let started = self.destroy_start(destroy, dom, None, p);
            debug_assert!(started.is_ok(), "{dom:?} is alive: {started:?}");
            finish(job, Err(error), p);
        } else if !self.xenbus_wait_over(dom, XenbusWait::BackendsReady, p) {
            // libxl__wait_device_connection: the job waits until every backend reached
            // InitWait (`xenbus_watch.rs` continues it then); the frontends connect later.
            self.xenbus_waiters
                .insert(job, (dom, XenbusWait::BackendsReady));
            self.xenbus_changed();
        } else if !self.xenbus_wait_over(dom, XenbusWait::DeviceModel, p) {
            // libxl waits for the device model before it unpauses the guest: with a stub
            // domain, until its vifs are up (`stubdom.rs`).
            self.xenbus_waiters
                .insert(job, (dom, XenbusWait::DeviceModel));
            self.xenbus_changed();
        } else if self.destroy_running(dom) {
            // A destroy unplugged the devices under the create: libxl's create fails.
            self.jobs.remove(&job);
            finish(job, Err(ToolstackError::NoSuchDomain), p);
        } else {
            self.jobs.remove(&job);
            // A guest waiting for this domain as its device model tests its create.
            self.xenbus_changed();
            p.trace(&TraceEvent::JobStep {
                job,
                step: JobStepCode::CreateFinish as u8,
            });
            // The domain was created paused by the controller; xl unpauses unless -p.
            let result = if paused {
                Ok(())
            } else {
                self.controller_unpause(dom, p)
            };
            if !paused && self.pod_enabled(dom) {
                // The guest boots and its balloon driver's watch fires: it balloons
                // down to `memory/target` before it may touch more (spec §4.1).
                self.balloon_kick(dom, p);
            }
            finish(job, result, p);
        }
    }

    /// A PoD guest's whole population step: its cache, then its PoD physmap.
    fn create_pod_step<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        dom: DomId,
        pages_left: u64,
        paused: bool,
        stage: CreateStage,
        p: &mut P,
    ) {
        let needed = self.domain_needed_pages(dom);
        let Ok(cached) = self.pod_build(dom, pages_left, p) else {
            self.create_out_of_memory(job, dom, needed, p);
            return;
        };
        let cancelled = self.memory.claim_pages(dom, 0);
        debug_assert_eq!(cancelled, Ok(()));
        let state = create_state(dom, 0, paused, stage);
        self.enter_step(job, state, JobStepCode::Populate, p);
        self.defer_pages(job, self.costs.populate_page_ns, cached, p);
    }

    /// `job` moves to `state` and starts step `code` (traced).
    fn enter_step<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        state: Job,
        code: JobStepCode,
        p: &mut P,
    ) {
        self.jobs.insert(job, state);
        p.trace(&TraceEvent::JobStep {
            job,
            step: code as u8,
        });
    }

    /// Defers `job` by the time `pages` pages take at `page_ns` each.
    pub(super) fn defer_pages<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        page_ns: i64,
        pages: u64,
        p: &mut P,
    ) {
        let cost_ns = page_ns.saturating_mul(i64::try_from(pages).unwrap_or(i64::MAX));
        self.defer(job, cost_ns, p);
    }

    /// Pages the create of `dom` populates (its `memory`).
    fn domain_needed_pages(&self, dom: DomId) -> u64 {
        let config = self.domains.get(dom).and_then(|d| d.config.as_ref());
        config.map_or(0, |c| pages_of_kib(c.memory_kib))
    }

    /// Population ran out of memory (no claim protected it): the build fails, libxl
    /// destroys the domain, and its pages go back to the heap.
    ///
    /// xensim differs: the pages are relinquished at once instead of in a destroy job.
    fn create_out_of_memory<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        dom: DomId,
        needed_pages: u64,
        p: &mut P,
    ) {
        let free_pages = self.memory.free_pages();
        self.jobs.remove(&job);
        self.relinquish_pages(dom, u64::MAX, p);
        self.free_domain(dom, p);
        let error = ToolstackError::OutOfMemory {
            needed_pages,
            free_pages,
        };
        finish(job, Err(error), p);
    }

    /// `DOMDYING_dead`, then the last reference goes: the struct and domid are freed.
    pub(super) fn free_domain<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        if let Some(d) = self.domains.get_mut(dom) {
            d.dying = Dying::Dead;
        }
        self.xenbus_changed();
        p.trace(&TraceEvent::Dying {
            dom,
            state: Dying::Dead,
        });
        self.remove_vcpus_from_scheduler(dom, p);
        self.free_io(dom);
        self.ioreq_forget(dom);
        self.balloons.remove(&dom);
        // The last relinquished leaves reach the EPT before the P2M goes.
        self.ept_flush(p);
        self.memory.remove_domain(dom);
        self.domains.remove(dom);
        self.recent_domids.push((dom, p.now()));
        p.trace(&TraceEvent::DomainFree { dom });
        p.guest_notify(dom, GuestNotice::Destroyed);
    }

    fn request_shutdown<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        reason: ShutdownReason,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        self.alive(dom)?;
        if dom == DomId::DOM0 {
            return Err(ToolstackError::NotPermitted);
        }
        // libxl writes control/shutdown; the guest kernel reacts with SCHEDOP_shutdown.
        p.guest_notify(dom, GuestNotice::ShutdownRequested(reason));
        Ok(())
    }

    pub(crate) fn internal_job_id(&mut self) -> JobId {
        self.next_internal_job += 1;
        assert!(
            self.next_internal_job < INTERNAL_JOB_BIT,
            "internal job ids exhausted"
        );
        JobId(INTERNAL_JOB_BIT | self.next_internal_job)
    }

    /// xl's per-domain monitor saw the domain shut down: apply `on_<reason>`.
    pub(crate) fn start_monitor<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        reason: ShutdownReason,
        p: &mut P,
    ) {
        let Some(config) = self.domains.get(dom).and_then(|d| d.config.clone()) else {
            return;
        };
        let uuid = self.domains.get(dom).map_or([0; 16], |d| d.uuid);
        let action = match reason {
            ShutdownReason::Poweroff => config.on_poweroff,
            ShutdownReason::Reboot => config.on_reboot,
            ShutdownReason::Crash => config.on_crash,
            ShutdownReason::Watchdog => config.on_watchdog,
            ShutdownReason::SoftReset => config.on_soft_reset,
            ShutdownReason::Suspend => return,
        };
        let job = self.internal_job_id();
        let result = match action {
            ShutdownAction::Destroy | ShutdownAction::CoredumpDestroy => {
                self.destroy_start(job, dom, None, p)
            }
            ShutdownAction::Restart | ShutdownAction::CoredumpRestart => {
                self.destroy_start(job, dom, Some(Box::new((config, uuid))), p)
            }
            // xensim differs: rename-restart and soft-reset are not modelled; the domain is
            // preserved as it is, which is what xl does when those actions fail.
            ShutdownAction::Preserve
            | ShutdownAction::RenameRestart
            | ShutdownAction::SoftReset => return,
        };
        debug_assert!(result.is_ok(), "monitor destroy of a live domain");
    }
}

pub(crate) fn finish<P: Platform + ?Sized>(
    job: JobId,
    result: Result<(), ToolstackError>,
    p: &mut P,
) {
    let rc = if result.is_ok() { 0 } else { 1 };
    p.trace(&TraceEvent::JobDone { job, rc });
    p.toolstack_reply(job, ToolstackReply::Done { result });
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
