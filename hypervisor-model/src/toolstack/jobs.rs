//! Toolstack jobs: multi-step operations that take virtual time, so that concurrent
//! creates and destroys interleave as they do on a real host.
//!
//! Follows tools/libs/light/libxl_create.c (`libxl__domain_make`: claim, createdomain with
//! the recently-destroyed-domid retry, max_vcpus; then populate, build, devices, the wait
//! for the split drivers, unpause) and tools/xl/xl_vmcontrol.c (the per-domain monitor
//! that applies `on_poweroff`/`on_reboot`/`on_crash`). The destroy job is in
//! `jobs_destroy.rs`; the first create step (`libxl__domain_make`) is in `jobs_create.rs`.
//!
//! # Invariants
//! - A create job's claim plus its populated pages equal the pages it needs.
//! - A job finishes exactly once (`JobDone` is traced once per job).

use alloc::boxed::Box;

use crate::domain::{Dying, ShutdownReason};
use crate::hypervisor::{Hypervisor, InputError, XenbusWait, INTERNAL_JOB_BIT};
use crate::ids::DomId;
use crate::platform::Platform;
use crate::time::Span;
use crate::toolstack::config::{DomainConfig, ShutdownAction};
use crate::toolstack::ops::{
    GuestNotice, JobId, JobStepCode, ToolstackError, ToolstackOp, ToolstackReply,
};
use crate::trace::TraceEvent;

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

pub(super) fn pages_of_kib(kib: u64) -> u64 {
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
