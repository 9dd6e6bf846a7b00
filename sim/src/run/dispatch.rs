//! One event's handling: which host it belongs to and what runs for it (the core, a guest
//! model, the toolstack, the network or a fault), split from the run loop in `mod.rs`.
//!
//! # Invariants
//! - An event of a host a `host-crash` took down is dropped, never half handled.
//! - `host_crashed` is true once any host has crashed: a crash is an `[[at]]` command
//!   (`faults.rs`), so the flag is brought up to date after each one.

use super::guests::{Done, Handoff, IoBatch};
use super::{pool_slot, GuestStep, ServiceItem, SimEvent, World, ACCESS_TICK_NS};
use std::mem::ManuallyDrop;

use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::VcpuRef;

impl World<'_> {
    /// Handles one event; returns the host it touched. An event of a host a `host-crash`
    /// took down is dropped: nothing runs there any more.
    pub(super) fn dispatch(&mut self, event: SimEvent) -> Option<u16> {
        let now_ns = self.queue.now_ns();
        // No host has crashed in most runs: the event's host is not looked up then.
        if self.host_crashed {
            if let Some(host) = self.event_host(&event) {
                if self.hosts[usize::from(host)].sim.crashed_at_ns.is_some() {
                    return None;
                }
            }
        }
        debug_assert!(
            self.host_crashed || self.hosts.iter().all(|h| h.sim.crashed_at_ns.is_none()),
            "a host crashed outside an `[[at]]` command"
        );
        match event {
            SimEvent::Softirq { host, pcpu } => {
                self.deliver_plain(host, CoreInput::Softirq { pcpu });
                Some(host)
            }
            SimEvent::ToolstackContinue { host, job } => {
                self.deliver_plain(host, CoreInput::ToolstackContinue { job });
                Some(host)
            }
            SimEvent::DriverWork { host, work } => {
                self.deliver_plain(host, CoreInput::DriverWork { work });
                Some(host)
            }
            SimEvent::Timer {
                host,
                pcpu,
                generation,
            } => {
                let current = self.hosts[usize::from(host)].sim.timer_gen[pcpu.index()];
                if generation == current {
                    self.deliver_plain(host, CoreInput::TimerExpired { pcpu });
                }
                Some(host)
            }
            SimEvent::PoolTimer {
                host,
                pool,
                generation,
            } => {
                let gens = &self.hosts[usize::from(host)].sim.pool_timer_gen;
                if gens.get(pool_slot(pool)) == Some(&generation) {
                    self.deliver_plain(host, CoreInput::PoolTimer { pool });
                }
                Some(host)
            }
            SimEvent::DemandDone {
                host,
                vcpu,
                generation,
            } => {
                let done = self.hosts[usize::from(host)].sim.guests.demand_done(
                    vcpu,
                    generation,
                    now_ns,
                    host,
                    &mut self.queue,
                );
                if let Some(done) = done {
                    self.guest_step(host, vcpu, done, now_ns);
                }
                Some(host)
            }
            SimEvent::GuestWake {
                host,
                vcpu,
                generation,
            } => {
                if self.hosts[usize::from(host)]
                    .sim
                    .guests
                    .wake(vcpu, generation, now_ns)
                {
                    self.deliver_plain(host, CoreInput::VcpuWake { vcpu });
                }
                Some(host)
            }
            SimEvent::MemoryTick {
                host,
                dom,
                generation,
            } => {
                if self.hosts[usize::from(host)]
                    .sim
                    .access
                    .is_current(dom, generation)
                {
                    self.memory_tick(host, dom, now_ns);
                    let tick = SimEvent::MemoryTick {
                        host,
                        dom,
                        generation,
                    };
                    self.queue.push(now_ns + ACCESS_TICK_NS, tick);
                }
                Some(host)
            }
            SimEvent::GuestShutdown { host, dom, reason } => {
                if self.hosts[usize::from(host)].sim.guests.knows(dom) {
                    self.deliver_plain(host, CoreInput::GuestShutdown { dom, reason });
                }
                Some(host)
            }
            SimEvent::GuestMemFloor { host, dom, notice } => {
                if self.hosts[usize::from(host)].sim.guests.knows(dom) {
                    let input = CoreInput::GuestMemFloor {
                        dom,
                        floor_pages: notice.floor_pages,
                        oom_kill: notice.oom_kill,
                    };
                    self.deliver_plain(host, input);
                }
                Some(host)
            }
            SimEvent::DiskDone { host, tag } => {
                let done = self.hosts[usize::from(host)].sim.disk_done.remove(tag);
                if let Some((ok, data)) = done {
                    let mut input = ManuallyDrop::new(CoreInput::DiskDone { tag, ok, data });
                    self.deliver(host, &input);
                    // The READ buffer goes back to the host's spares for the next command
                    // to fill: no free and allocation per command. Taken out in place (no
                    // move of the input), the input owns nothing left to drop.
                    if let CoreInput::DiskDone { data, .. } = &mut *input {
                        let mut data = std::mem::take(data);
                        data.clear();
                        self.hosts[usize::from(host)].sim.disk_spare.keep(data);
                    }
                }
                Some(host)
            }
            SimEvent::NetArrive { frame } => self.net_arrived(frame),
            SimEvent::DomainStart { index } => Some(self.start_domain(index)),
            SimEvent::Command { index } => {
                let host = self.run_command(index);
                self.host_crashed = self.hosts.iter().any(|h| h.sim.crashed_at_ns.is_some());
                Some(host)
            }
        }
    }

    /// The guest of `vcpu` took step `done` at `now_ns` (a live demand-done): what it
    /// hands on goes out first, then the core sees the step.
    #[inline]
    fn guest_step(&mut self, host: u16, vcpu: VcpuRef, done: Done, now_ns: u64) {
        match done.handoff {
            Handoff::Nothing => {}
            // A periodic application's deadline-miss lines (`guest/periodic.rs`), an `io`
            // workload's block driver lines.
            Handoff::Console => self.console_write(host, vcpu),
            Handoff::Streams => {
                // `net.rate` / `disk.rate` streams send what is due while the vCPU runs.
                self.stream_send(host, vcpu);
                self.console_flush(host, vcpu);
            }
        }
        match done.step {
            GuestStep::Block => self.deliver_plain(host, CoreInput::VcpuBlock { vcpu }),
            GuestStep::SubmitIo => {
                match self.hosts[usize::from(host)].sim.guests.take_io(vcpu) {
                    IoBatch::Net(devid, peer, frames) => {
                        self.net_send_frames(host, vcpu, devid, &peer, frames);
                    }
                    IoBatch::Blk(vdev, ios) => self.blk_submit(host, vcpu, vdev, ios),
                }
                self.deliver_plain(host, CoreInput::VcpuBlock { vcpu });
            }
            GuestStep::Yield => {
                self.deliver_plain(host, CoreInput::VcpuYield { vcpu });
                let guests = &mut self.hosts[usize::from(host)].sim.guests;
                guests.rearm(vcpu, now_ns, host, &mut self.queue);
            }
            GuestStep::Continue => {
                let guests = &mut self.hosts[usize::from(host)].sim.guests;
                guests.rearm(vcpu, now_ns, host, &mut self.queue);
            }
            GuestStep::ServiceDone(ServiceItem::Xenstored(item)) => {
                self.deliver_plain(host, CoreInput::XenstoredDone { item });
            }
            GuestStep::ServiceDone(ServiceItem::Blkback(item)) => {
                self.deliver_plain(host, CoreInput::BackendWorkDone { item });
            }
            GuestStep::ServiceDone(ServiceItem::Exit) => {}
        }
    }

    /// What `vcpu`'s workload printed since its last look goes to the guest's console
    /// (`ConsoleWrite`, which the core stamps and hands to xenconsoled over the ring).
    /// Mostly nothing was printed: a look at the model then, inline, and no take.
    #[inline]
    pub(super) fn console_flush(&mut self, host: u16, vcpu: VcpuRef) {
        if self.hosts[usize::from(host)]
            .sim
            .guests
            .console_pending(vcpu)
        {
            self.console_write(host, vcpu);
        }
    }

    /// [`Self::console_flush`] once something was printed.
    #[inline(never)]
    fn console_write(&mut self, host: u16, vcpu: VcpuRef) {
        let guests = &mut self.hosts[usize::from(host)].sim.guests;
        let text = guests.take_console(vcpu).into_bytes();
        debug_assert!(!text.is_empty(), "console_pending without text");
        self.deliver(host, &CoreInput::ConsoleWrite { vcpu, text });
    }

    /// The host an event belongs to (`None`: domain starts, which name theirs later).
    fn event_host(&self, event: &SimEvent) -> Option<u16> {
        match event {
            SimEvent::Softirq { host, .. }
            | SimEvent::ToolstackContinue { host, .. }
            | SimEvent::DriverWork { host, .. }
            | SimEvent::Timer { host, .. }
            | SimEvent::PoolTimer { host, .. }
            | SimEvent::DemandDone { host, .. }
            | SimEvent::GuestWake { host, .. }
            | SimEvent::GuestShutdown { host, .. }
            | SimEvent::GuestMemFloor { host, .. }
            | SimEvent::MemoryTick { host, .. }
            | SimEvent::DiskDone { host, .. } => Some(*host),
            SimEvent::Command { index } => {
                let entry = self.scenario.timeline.get(*index)?;
                u16::try_from(entry.host_index).ok()
            }
            SimEvent::DomainStart { .. } | SimEvent::NetArrive { .. } => None,
        }
    }
}
