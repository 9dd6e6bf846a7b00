//! The destroy job: `xl destroy` (or xl's monitor applying `on_poweroff` and the like)
//! tearing a domain down in virtual time: pause, the split devices' forced remove and
//! the wait for their backends, the device and XenStore removal, `domain_kill`'s
//! preemptible relinquish, and the final free (with a restart's new create).
//!
//! Follows tools/libs/light/libxl_domain.c (`libxl__destroy_domid`: pause, devices and
//! XenStore, `xc_domain_destroy` retried while Xen's `domain_kill` is preempted) and
//! libxl_device.c (`libxl__devices_destroy` with `force`).
//!
//! # Invariants
//! - At most one destroy job per domain.
//! - The directories go only after the drivers settled on the forced remove.

use alloc::boxed::Box;

use super::jobs::{finish, Job};
use crate::domain::Dying;
use crate::hypervisor::{Hypervisor, XenbusWait};
use crate::ids::DomId;
use crate::platform::Platform;
use crate::toolstack::config::DomainConfig;
use crate::toolstack::ops::{JobId, JobStepCode, ToolstackError, ToolstackOp, ToolstackReply};
use crate::trace::TraceEvent;

impl Hypervisor {
    /// True if a destroy job of `dom` is running.
    pub(crate) fn destroy_running(&self, dom: DomId) -> bool {
        self.jobs
            .values()
            .any(|j| matches!(j, Job::Destroy { dom: other, .. } if *other == dom))
    }

    pub(super) fn destroy_start<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        dom: DomId,
        restart: Option<Box<(DomainConfig, [u8; 16])>>,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        if dom == DomId::DOM0 {
            return Err(ToolstackError::NotPermitted);
        }
        let d = self.domains.get(dom).ok_or(ToolstackError::NoSuchDomain)?;
        if d.dying != Dying::Alive || self.destroy_running(dom) {
            return Err(ToolstackError::NotPermitted);
        }
        // libxl__destroy_domid: xc_domain_pause, the device model, then devices and
        // XenStore removal.
        self.domain_pause(dom, p);
        self.emunic_dm_gone(dom, p);
        self.stubdom_destroy(dom, p);
        self.jobs.insert(
            job,
            Job::Destroy {
                dom,
                unplugged: false,
                killing: false,
                restart,
            },
        );
        self.defer(job, self.costs.destroy_devices_ns, p);
        Ok(())
    }

    /// `libxl__devices_destroy`: each split device's forced remove (one transaction:
    /// frontend directory removed, backend `online = 0` and Closing), then the job waits
    /// until the backends closed on their watches (`libxl__ev_devstate_wait` for Closed).
    pub(super) fn destroy_unplug<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        dom: DomId,
        restart: Option<Box<(DomainConfig, [u8; 16])>>,
        p: &mut P,
    ) {
        p.trace(&TraceEvent::JobStep {
            job,
            step: JobStepCode::DestroyUnplug as u8,
        });
        let count = self.xenbus_unplug_all(dom);
        let xs_ns = self.xs_cost_ns(count);
        self.jobs.insert(
            job,
            Job::Destroy {
                dom,
                unplugged: true,
                killing: false,
                restart,
            },
        );
        if self.xenbus_wait_over(dom, XenbusWait::Settled, p) {
            self.defer(job, xs_ns, p);
        } else {
            self.xenbus_waiters.insert(job, (dom, XenbusWait::Settled));
            self.xenbus_changed();
        }
    }

    pub(super) fn destroy_step<P: Platform + ?Sized>(
        &mut self,
        job: JobId,
        dom: DomId,
        killing: bool,
        restart: Option<Box<(DomainConfig, [u8; 16])>>,
        p: &mut P,
    ) {
        if !killing {
            p.trace(&TraceEvent::JobStep {
                job,
                step: JobStepCode::DestroyDevices as u8,
            });
            let xs_ns = self.destroy_xs(dom);
            self.kill_io(dom);
            if let Some(d) = self.domains.get_mut(dom) {
                d.dying = Dying::Dying;
                self.xenbus_changed();
                p.trace(&TraceEvent::Dying {
                    dom,
                    state: Dying::Dying,
                });
            }
            self.jobs.insert(
                job,
                Job::Destroy {
                    dom,
                    unplugged: true,
                    killing: true,
                    restart,
                },
            );
            self.defer(job, self.costs.domctl_ns.saturating_add(xs_ns), p);
            return;
        }
        let tot_pages = self.domains.get(dom).map_or(0, |d| d.tot_pages);
        if tot_pages > 0 {
            // domain_relinquish_resources is preemptible: -EAGAIN, and libxl retries.
            let budget = tot_pages.min(self.costs.relinquish_batch_pages.max(1));
            let batch = self.relinquish_pages(dom, budget, p);
            p.trace(&TraceEvent::JobStep {
                job,
                step: JobStepCode::Relinquish as u8,
            });
            self.defer_pages(job, self.costs.relinquish_page_ns, batch, p);
            return;
        }
        if self.domains.get(dom).is_some_and(|d| d.is_running()) {
            // vcpu_sleep_sync: wait until the pause has taken every vCPU off its pCPU.
            self.defer(job, self.costs.domctl_ns, p);
            return;
        }
        self.jobs.remove(&job);
        self.free_domain(dom, p);
        p.trace(&TraceEvent::JobStep {
            job,
            step: JobStepCode::DestroyFinish as u8,
        });
        match restart {
            Some(boxed) => {
                let (config, uuid) = *boxed;
                // "Done. Rebooting now": the monitor creates the domain again.
                let create_job = self.internal_job_id();
                p.toolstack_reply(job, ToolstackReply::Done { result: Ok(()) });
                p.trace(&TraceEvent::JobDone { job, rc: 0 });
                let op = ToolstackOp::Create {
                    config: Box::new(config),
                    uuid,
                    paused: false,
                };
                let started = self.start_job(create_job, &op, p);
                debug_assert!(started.is_ok(), "internal job ids are unique");
            }
            None => finish(job, Ok(()), p),
        }
    }
}
