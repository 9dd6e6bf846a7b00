//! The `[[at]]` faults that run (scenario spec §7.1): `disk-error` (blkback fails a vbd's
//! next requests), `crash-domain` (the domain's kernel panics: `SCHEDOP_shutdown` with
//! `SHUTDOWN_crash`, then xl's monitor applies `on_crash`) and `host-crash` (the host
//! loses power: its disks' volatile caches are gone and no event reaches it afterwards).
//!
//! # Invariants
//! - A fault sets its command's exit status: 0 when it found its target, 1 when not.
//!
//! xensim leaves out on purpose: a crashed host's links (no fabric yet), a host coming
//! back after a crash.

use hypervisor_model::domain::{Dying, ShutdownReason};
use hypervisor_model::event::CoreInput;

use super::World;

impl World<'_> {
    /// A `host-crash` fault: the named host loses power (its disks' caches are gone, its
    /// events are dropped from now on); exit status 1 if no such host.
    pub(super) fn host_crash(&mut self, record: usize, name: &str) {
        let now_ns = self.queue.now_ns();
        let rc = match self.hosts.iter_mut().find(|h| h.name == name) {
            Some(h) => {
                h.sim
                    .disks
                    .iter_mut()
                    .for_each(crate::machine::disk::Disk::power_loss);
                h.sim.crashed_at_ns = Some(now_ns);
                0
            }
            None => 1,
        };
        self.commands[record].rc = Some(rc);
    }

    /// A `crash-domain` fault: the domain's kernel panics, which reaches the core as its
    /// `SCHEDOP_shutdown(SHUTDOWN_crash)`; exit status 1 if no such domain runs.
    pub(super) fn crash_domain(&mut self, host: u16, record: usize, domain: &str) {
        let dom = self.hosts[usize::from(host)]
            .hv
            .domains()
            .find(|d| d.name == domain && d.dying == Dying::Alive)
            .map(|d| d.id);
        let rc = match dom {
            Some(dom) => {
                let reason = ShutdownReason::Crash;
                self.deliver(host, &CoreInput::GuestShutdown { dom, reason });
                0
            }
            None => 1,
        };
        self.commands[record].rc = Some(rc);
    }

    /// A `disk-error` fault: recorded as a core input for the domain's blkback; exit
    /// status 1 if no such domain runs on the host.
    pub(super) fn disk_error(
        &mut self,
        host: u16,
        record: usize,
        domain: &str,
        vdev: u32,
        count: u32,
    ) {
        let dom = self.hosts[usize::from(host)]
            .hv
            .domains()
            .find(|d| d.name == domain)
            .map(|d| d.id);
        let rc = match dom {
            Some(dom) => {
                self.deliver(host, &CoreInput::BlkFault { dom, vdev, count });
                0
            }
            None => 1,
        };
        self.commands[record].rc = Some(rc);
    }
}
