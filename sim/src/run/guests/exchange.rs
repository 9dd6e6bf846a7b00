//! What a host's guests hand to the run loop and take from it between their runs: console
//! lines, block I/O submissions and completions, network frames (paced streams included),
//! and the I/O records and unacknowledged writes the metrics and durability checks read.
//! The workload models own the data; this file only moves it across `HostGuests`.

use hypervisor_model::ids::{DomId, VcpuId, VcpuRef};
use hypervisor_model::io::vbd::{GuestIo, IoDone};
use hypervisor_model::io::vif::NetPacket;

use super::{GuestStep, HostGuests, SimEvent};
use crate::clock::EventQueue;
use crate::guest::io_log::IoLog;
use crate::guest::workload::GuestVcpu;

/// What the run loop hands on for the guest after a demand-done, read from the slot
/// [`HostGuests::demand_done`] found (so the loop looks the slot up once per event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Nothing: the workload never prints or sends (`GuestVcpu::sends_or_prints`), its
    /// console is empty, or the step is a service item's.
    Nothing,
    /// The workload printed: its console lines go out (`World::console_flush`).
    Console,
    /// The workload has streams: they send what is due, then its console lines go out.
    Streams,
}

/// A demand-done's outcome ([`HostGuests::demand_done`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// What the guest does.
    pub step: GuestStep,
    /// What the run loop hands on for it first.
    pub handoff: Handoff,
}

impl Handoff {
    /// What `model` has for the run loop after its own step (not a service item's).
    #[inline]
    pub(super) fn of(model: &GuestVcpu) -> Handoff {
        if !model.sends_or_prints() {
            Handoff::Nothing
        } else if model.has_streams() {
            Handoff::Streams
        } else if model.console_pending() {
            Handoff::Console
        } else {
            Handoff::Nothing
        }
    }
}

/// What a guest submits when it blocks on I/O ([`HostGuests::take_io`]).
#[derive(Debug)]
pub enum IoBatch {
    /// `io` over a vif: the request's frames, their vif and peer.
    Net(u32, crate::scenario::model::NetPeer, Vec<NetPacket>),
    /// `io` over a vbd: the batch's I/Os and their vbd.
    Blk(u32, Vec<GuestIo>),
}

impl HostGuests {
    /// The kernel lines `v`'s workload printed since the last call.
    pub fn take_console(&mut self, v: VcpuRef) -> String {
        match self.slots.get_mut(&v) {
            Some(slot) => slot.model.take_console(),
            None => String::new(),
        }
    }

    /// `v`'s workload printed something [`Self::take_console`] would hand over (false
    /// without a model).
    #[inline]
    pub fn console_pending(&self, v: VcpuRef) -> bool {
        self.slots
            .get(&v)
            .is_some_and(|slot| slot.model.console_pending())
    }

    /// What `v`'s guest submits after its [`super::GuestStep::SubmitIo`]: an `io` request's
    /// frames over its vif, else a batch of I/Os on its vbd (one slot look-up for both).
    pub fn take_io(&mut self, v: VcpuRef) -> IoBatch {
        let Some(slot) = self.slots.get_mut(&v) else {
            return IoBatch::Blk(0, Vec::new());
        };
        match slot.model.take_net_frames() {
            Some((devid, peer, frames)) => IoBatch::Net(devid, peer, frames),
            None => {
                let (vdev, ios) = slot.model.take_submissions();
                IoBatch::Blk(vdev, ios)
            }
        }
    }

    /// Takes back the emptied buffer of a [`Self::take_submissions`] of `v` (an allocation
    /// per batch spared).
    pub fn reuse_submission_buffer(&mut self, v: VcpuRef, buffer: Vec<GuestIo>) {
        if let Some(slot) = self.slots.get_mut(&v) {
            slot.model.reuse_submission_buffer(buffer);
        }
    }

    /// blkfront completed `done` for `dom` at `now_ns` (its tag names the vCPU); once the
    /// vCPU's batch is complete, its think timer is armed.
    pub fn io_done(
        &mut self,
        dom: DomId,
        done: &IoDone,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) {
        let Some(vcpu) = u32::try_from(done.tag >> 40).ok().and_then(VcpuId::new) else {
            return;
        };
        let v = VcpuRef { dom, vcpu };
        self.completion(v, now_ns, host, queue, |model, running| {
            model.io_done(done, now_ns, running)
        });
    }

    /// `v`'s model takes a completion (`complete` gets it and whether `v` runs now);
    /// if that finished its request, its think timer is armed.
    fn completion(
        &mut self,
        v: VcpuRef,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
        complete: impl FnOnce(&mut GuestVcpu, bool) -> Option<u64>,
    ) {
        let wake_generation = self.generation();
        let Some(slot) = self.slots.get_mut(&v) else {
            return;
        };
        let running = slot.run_started_ns.is_some();
        if let Some(at_ns) = complete(&mut slot.model, running) {
            slot.wake_generation = wake_generation;
            super::push_guest_wake(queue, at_ns.max(now_ns), host, v, wake_generation);
        }
    }

    /// The domain called `name`, if it runs here.
    pub fn domid_of(&self, name: &str) -> Option<DomId> {
        self.domains
            .iter()
            .find(|(_, d)| d.name == name)
            .map(|(dom, _)| *dom)
    }

    /// Takes back the emptied buffer of a [`Self::take_net_frames`] of `v` (an allocation
    /// per request spared).
    pub fn reuse_net_frame_buffer(&mut self, v: VcpuRef, buffer: Vec<NetPacket>) {
        if let Some(slot) = self.slots.get_mut(&v) {
            slot.model.reuse_net_frame_buffer(buffer);
        }
    }

    /// The frames `v`'s `net.rate` streams send now, per vif, with the peer.
    pub fn take_stream_frames(
        &mut self,
        v: VcpuRef,
    ) -> Vec<(u32, crate::scenario::model::NetPeer, Vec<NetPacket>)> {
        match self.slots.get_mut(&v) {
            Some(slot) => slot.model.take_stream_frames(),
            None => Vec::new(),
        }
    }

    /// The I/Os `v`'s `disk.rate` streams submit now, per vbd.
    pub fn take_stream_submissions(&mut self, v: VcpuRef) -> Vec<(u32, Vec<GuestIo>)> {
        match self.slots.get_mut(&v) {
            Some(slot) => slot.model.take_stream_submissions(),
            None => Vec::new(),
        }
    }

    /// netfront of `dom` received `packet` at `now_ns` (its flow names the vCPU); once it
    /// completes that vCPU's answer, its think timer is armed.
    pub fn net_received(
        &mut self,
        dom: DomId,
        packet: &NetPacket,
        now_ns: u64,
        host: u16,
        queue: &mut EventQueue<SimEvent>,
    ) {
        let Some(vcpu) = VcpuId::new(packet.flow) else {
            return;
        };
        let v = VcpuRef { dom, vcpu };
        self.completion(v, now_ns, host, queue, |model, running| {
            model.net_received(packet, now_ns, running)
        });
    }

    /// Takes the completed I/Os of every vCPU of `dom` so far, in vCPU order: one log per
    /// source with a record (the run's end, or the domain's destruction).
    pub fn take_io_logs(&mut self, dom: DomId) -> Vec<IoLog> {
        let mut logs = Vec::new();
        for slot in self.slots.of_domain_mut(dom) {
            slot.model.take_io_logs(&mut logs);
        }
        logs
    }

    /// The writes every vCPU of `dom` submitted and has not seen complete.
    pub fn io_pending_writes(&self, dom: DomId) -> Vec<(u64, hypervisor_model::io::vbd::GuestIo)> {
        self.slots
            .of_domain(dom)
            .flat_map(|slot| slot.model.io_pending_writes())
            .collect()
    }
}
