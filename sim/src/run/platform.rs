//! `SimPlatform`: the simulated machine as the core sees it, for one host during one input.
//!
//! Timers and IPIs become queue events; context switches drive the guest models (a vCPU
//! that starts running gets a demand-done event, one that stops is charged the time it
//! ran); toolstack replies and guest notices are collected for the run loop; every core
//! event goes to the sinks (hash, trace file, decision log, metrics).
//!
//! # Invariants
//! - A cancelled or replaced timer can never fire: each arm bumps the pCPU's generation and
//!   a timer event fires only if its generation is current.

use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::{DomId, PcpuId, VcpuRef};
use hypervisor_model::platform::{IpiKind, Platform};
use hypervisor_model::time::STime;
use hypervisor_model::toolstack::ops::{GuestNotice, JobId, ToolstackReply};
use hypervisor_model::trace::TraceEvent;

use super::guests::HostGuests;
use super::{SimEvent, Sinks};
use crate::clock::EventQueue;

/// Per-host simulator state that outlives one input.
#[derive(Debug)]
pub struct HostSim {
    /// Index of this host in the scenario.
    pub host: u16,
    /// Generation of each pCPU's scheduler timer.
    pub timer_gen: Vec<u64>,
    /// Guest models of every vCPU that has run.
    pub guests: HostGuests,
    /// Replies collected during the current input.
    pub replies: Vec<(JobId, ToolstackReply)>,
    /// Guest notices collected during the current input.
    pub notices: Vec<(DomId, GuestNotice)>,
    /// IPI delivery latency, ns.
    pub ipi_latency_ns: u64,
}

/// The platform handed to `Hypervisor::handle` for one input.
#[derive(Debug)]
pub struct SimPlatform<'a> {
    /// Current virtual time.
    pub now_ns: u64,
    /// The event queue.
    pub queue: &'a mut EventQueue<SimEvent>,
    /// This host's simulator state.
    pub sim: &'a mut HostSim,
    /// Where core events go.
    pub sinks: &'a mut Sinks,
}

fn stime(ns: u64) -> STime {
    STime::from_ns(i64::try_from(ns).expect("virtual time below 2^63 ns"))
}

fn ns_of(t: STime) -> u64 {
    u64::try_from(t.as_ns()).expect("core asked for a time before boot")
}

impl Platform for SimPlatform<'_> {
    fn now(&self) -> STime {
        stime(self.now_ns)
    }

    fn set_timer(&mut self, pcpu: PcpuId, deadline: STime) {
        let generation = &mut self.sim.timer_gen[pcpu.index()];
        *generation += 1;
        let at_ns = ns_of(deadline).max(self.now_ns);
        self.queue.push(
            at_ns,
            SimEvent::Timer {
                host: self.sim.host,
                pcpu,
                generation: *generation,
            },
        );
    }

    fn cancel_timer(&mut self, pcpu: PcpuId) {
        self.sim.timer_gen[pcpu.index()] += 1;
    }

    fn send_ipi(&mut self, target: PcpuId, kind: IpiKind) {
        assert_eq!(kind, IpiKind::Schedule, "only scheduler IPIs exist");
        let at_ns = self.now_ns + self.sim.ipi_latency_ns;
        self.queue.push(
            at_ns,
            SimEvent::Input {
                host: self.sim.host,
                input: CoreInput::Softirq { pcpu: target },
            },
        );
    }

    fn context_switch(&mut self, _pcpu: PcpuId, from: Option<VcpuRef>, to: Option<VcpuRef>) {
        if let Some(v) = from {
            self.sim.guests.stop_running(v, self.now_ns);
        }
        if let Some(v) = to {
            self.sim
                .guests
                .start_running(v, self.now_ns, self.sim.host, self.queue);
        }
    }

    fn defer_toolstack(&mut self, job: JobId, deadline: STime) {
        let at_ns = ns_of(deadline).max(self.now_ns);
        self.queue.push(
            at_ns,
            SimEvent::Input {
                host: self.sim.host,
                input: CoreInput::ToolstackContinue { job },
            },
        );
    }

    fn toolstack_reply(&mut self, job: JobId, reply: ToolstackReply) {
        self.sim.replies.push((job, reply));
    }

    fn guest_notify(&mut self, dom: DomId, notice: GuestNotice) {
        self.sim.notices.push((dom, notice));
    }

    fn trace(&mut self, event: &TraceEvent) {
        self.sinks.event(self.sim.host, self.now_ns, event);
    }
}
