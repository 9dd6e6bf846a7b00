//! The `[[at]]` faults of scenario spec §7.1 that act on a host or a domain (the network
//! ones are `FabricFault`s): `disk-error` (blkback fails a vbd's next requests),
//! `crash-domain` and `restart-domain` (the guest's kernel calls `SCHEDOP_shutdown` with
//! `SHUTDOWN_crash` or `SHUTDOWN_reboot`, then xl's monitor applies `on_crash` or
//! `on_reboot`), `lost-interrupt` (the core loses the next notifications to a port:
//! `hypervisor/lost_irq.rs` says what recovers each driver), `spurious-timer` (a pCPU's
//! scheduler timer interrupt arrives once now: Xen's `s_timer_fn` raises
//! `SCHEDULE_SOFTIRQ` and `schedule()` runs whether or not the timer was armed, so the
//! core gets the same `TimerExpired` as a real expiry) and `host-crash` (the host loses
//! power: its disks lose their volatile caches, no event reaches it afterwards and its
//! links are down, so peers' frames to it are dropped at the sender as `Partition` drops).
//!
//! # Invariants
//! - A fault sets its command's exit status: 0 when it found its target, 1 when not.
//! - A domain fault acts on the named domain on the entry's host, or else on whichever
//!   host runs it (a fault names its domain, not its host).
//!
//! xensim leaves out on purpose: a host coming back after a crash; `lost-interrupt` on a
//! passthrough device (refused at load).

use hypervisor_model::domain::{Dying, ShutdownReason};
use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::{DomId, PcpuId};

use super::World;

impl World<'_> {
    /// The live domain called `name`: on `host` if it runs there, else on the first other
    /// running host that has it.
    fn fault_target(&self, host: u16, name: &str) -> Option<(u16, DomId)> {
        let live = |h: &super::HostRuntime| {
            h.hv.domains()
                .find(|d| d.name == name && d.dying == Dying::Alive)
                .map(|d| d.id)
        };
        let hint = usize::from(host);
        let order = std::iter::once(hint).chain((0..self.hosts.len()).filter(|&i| i != hint));
        order
            .filter(|&i| self.hosts[i].sim.crashed_at_ns.is_none())
            .find_map(|i| Some((u16::try_from(i).ok()?, live(&self.hosts[i])?)))
    }

    /// A `crash-domain` or `restart-domain` fault: the domain's kernel panics or reboots,
    /// which reaches the core as its `SCHEDOP_shutdown(reason)`; exit status 1 if no such
    /// domain runs.
    pub(super) fn shutdown_domain(
        &mut self,
        host: u16,
        record: usize,
        domain: &str,
        reason: ShutdownReason,
    ) {
        let rc = match self.fault_target(host, domain) {
            Some((host, dom)) => {
                self.deliver(host, &CoreInput::GuestShutdown { dom, reason });
                0
            }
            None => 1,
        };
        self.commands[record].rc = Some(rc);
    }

    /// A `lost-interrupt` fault on an event-channel port: recorded as a core input; exit
    /// status 1 if no such domain runs or the port is not an interdomain port of it.
    pub(super) fn lost_interrupt(
        &mut self,
        host: u16,
        record: usize,
        domain: &str,
        port: u32,
        count: u32,
    ) {
        let target = self.fault_target(host, domain).and_then(|(host, dom)| {
            let input = CoreInput::LostInterrupt { dom, port, count };
            let hv = &self.hosts[usize::from(host)].hv;
            hv.can_lose_interrupts(&input).then_some((host, input))
        });
        let rc = match target {
            Some((host, input)) => {
                self.deliver(host, &input);
                0
            }
            None => 1,
        };
        self.commands[record].rc = Some(rc);
    }

    /// A `spurious-timer` fault: the pCPU's scheduler timer interrupt, now (the loader
    /// checked that the pCPU exists).
    pub(super) fn spurious_timer(&mut self, host: u16, record: usize, pcpu: u32) {
        let rc = match PcpuId::new(pcpu) {
            Some(pcpu) => {
                self.deliver(host, &CoreInput::TimerExpired { pcpu });
                0
            }
            None => 1,
        };
        self.commands[record].rc = Some(rc);
    }

    /// A `host-crash` fault: the named host loses power (its disks' caches are gone, its
    /// events are dropped from now on, its links go down); exit status 1 if no such host.
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
        self.cut_crashed_links();
        self.commands[record].rc = Some(rc);
    }

    /// Every link of a crashed host is down: frames towards it (or from it) are dropped
    /// at the sender as a partition drops them, and a `heal` does not bring it back.
    pub(super) fn cut_crashed_links(&mut self) {
        let (crashed, alive): (Vec<usize>, Vec<usize>) =
            (0..self.hosts.len()).partition(|&i| self.hosts[i].sim.crashed_at_ns.is_some());
        if crashed.is_empty() {
            return;
        }
        let others: Vec<usize> = alive
            .into_iter()
            .chain([crate::machine::fabric::EXTERNAL])
            .collect();
        self.net.fabric_mut().partition(&crashed, &others, true);
    }

    /// A `disk-error` fault: recorded as a core input for the domain's blkback; exit
    /// status 1 if no such domain runs.
    pub(super) fn disk_error(
        &mut self,
        host: u16,
        record: usize,
        domain: &str,
        vdev: u32,
        count: u32,
    ) {
        let rc = match self.fault_target(host, domain) {
            Some((host, dom)) => {
                self.deliver(host, &CoreInput::BlkFault { dom, vdev, count });
                0
            }
            None => 1,
        };
        self.commands[record].rc = Some(rc);
    }
}
