//! The only way the core reaches hardware or the world outside it.
//!
//! The core is a state machine: the platform hands it one input at a time
//! (`Hypervisor::handle`), and the core answers by calling these methods. The simulator
//! implements them on its machine model; the bare-metal harness on TSC, LAPIC and serial.
//! Methods only consume: the core never waits on the platform.
//!
//! Later subsystems add their hooks here together with their callers (EPT and IOMMU
//! programming with the memory and passthrough models, NIC and disk doorbells with the
//! split drivers); a hook without a caller would be dead code.

use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::time::STime;
use crate::toolstack::ops::{GuestNotice, JobId, ToolstackReply};
use crate::trace::TraceEvent;

/// Why one pCPU interrupts another.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IpiKind {
    /// Raise `SCHEDULE_SOFTIRQ` on the target (a scheduler "tickle").
    Schedule,
}

/// Hardware and outside world, as the core sees them.
pub trait Platform {
    /// Current time on this host.
    fn now(&self) -> STime;

    /// Arms `pcpu`'s scheduler timer for `deadline`, replacing any armed deadline.
    fn set_timer(&mut self, pcpu: PcpuId, deadline: STime);

    /// Disarms `pcpu`'s scheduler timer (no-op if not armed).
    fn cancel_timer(&mut self, pcpu: PcpuId);

    /// Sends an IPI; the platform later delivers it as `CoreInput::Softirq`.
    fn send_ipi(&mut self, target: PcpuId, kind: IpiKind);

    /// `pcpu` stops running `from` and starts running `to` (`None` = the idle vCPU).
    fn context_switch(&mut self, pcpu: PcpuId, from: Option<VcpuRef>, to: Option<VcpuRef>);

    /// Asks to be handed `CoreInput::ToolstackContinue { job }` at `deadline`: the
    /// toolstack's next step (a hypercall batch, a device set-up) starts then.
    fn defer_toolstack(&mut self, job: JobId, deadline: STime);

    /// A toolstack operation finished (or made visible progress).
    fn toolstack_reply(&mut self, job: JobId, reply: ToolstackReply);

    /// Something the guest kernel of `dom` sees through XenStore or an event channel
    /// (a shutdown request, its vCPUs being created or torn down).
    fn guest_notify(&mut self, dom: DomId, notice: GuestNotice);

    /// Records one core event (every decision and state change goes through here).
    fn trace(&mut self, event: &TraceEvent);
}
