//! `SimPlatform`: the simulated machine as the core sees it, for one host during one input.
//!
//! Timers and IPIs become queue events; context switches drive the guest models (a vCPU
//! that starts running gets a demand-done event, one that stops is charged the time it
//! ran); xenstored's work becomes service demand of dom0's vCPU (`guests.rs`); driver
//! reactions become queue events; toolstack replies and guest notices are collected for
//! the run loop; every core event goes to the sinks (hash, trace file, decision log,
//! metrics).
//!
//! # Invariants
//! - A cancelled or replaced timer can never fire: each arm and each cancel bumps the
//!   pCPU's generation, and a timer event fires only if its generation is current. A
//!   re-arm replaces the pending event in the pCPU's queue slot; a cancel leaves it there
//!   (stale) for the next arm to replace.

use std::collections::BTreeMap;

use hypervisor_model::ids::{BackWorkId, DomId, DriverWorkId, PcpuId, PoolId, VcpuRef, XsWorkId};
use hypervisor_model::ids::{Gfn, Mfn, PciBdf};
use hypervisor_model::io::blkback::DiskInflight;
use hypervisor_model::io::spare::SpareBuffers;
use hypervisor_model::platform::{DiskCommand, Doorbell, EptEntry, IpiKind, MapAccess, Platform};
use hypervisor_model::time::STime;
use hypervisor_model::toolstack::ops::{GuestNotice, JobId, ToolstackReply};
use hypervisor_model::trace::TraceEvent;

use super::guests::{HostGuests, ServiceItem};
use super::{SimEvent, Sinks};
use crate::clock::EventQueue;
use crate::machine::disk::Disk;
use crate::machine::ept::EptTables;
use crate::machine::iommu::{Doorbells, IommuTables};
use crate::machine::switch::SwitchCosts;

/// Most emptied READ buffers a host keeps for its disks' next commands (a bound, not a
/// behaviour: past it a buffer is freed).
pub const DISK_SPARE_BUFFERS_MAX: usize = 64;

/// Per-host simulator state that outlives one input.
#[derive(Debug)]
pub struct HostSim {
    /// Index of this host in the scenario.
    pub host: u16,
    /// Generation of each pCPU's scheduler timer.
    pub timer_gen: Vec<u64>,
    /// The queue slot of pCPU 0's scheduler timer; pCPU `i` uses `timer_slot_base + i`.
    pub timer_slot_base: usize,
    /// Generation of each pool's scheduler timer, by pool id (grown on first arm).
    pub pool_timer_gen: Vec<u64>,
    /// Switch and IPI costs.
    pub switch: SwitchCosts,
    /// The last guest vCPU each pCPU ran (lazy context switch).
    pub last_vcpu: Vec<Option<VcpuRef>>,
    /// What xenstored wrote to socket clients since the serve loop last looked.
    pub xs_out: Vec<XsOut>,
    /// Guest models of every vCPU that has run.
    pub guests: HostGuests,
    /// Replies collected during the current input.
    pub replies: Vec<(JobId, ToolstackReply)>,
    /// Guest notices collected during the current input.
    pub notices: Vec<(DomId, GuestNotice)>,
    /// IPI delivery latency, ns.
    pub ipi_latency_ns: u64,
    /// EPT tables as the hardware walks them.
    pub ept: EptTables,
    /// The memory access streams of guests with a `memory` sub-table.
    pub access: crate::guest::access::AccessStreams,
    /// IOMMU contexts.
    pub iommu: IommuTables,
    /// Device doorbell counts.
    pub doorbells: Doorbells,
    /// The host's physical disks, in scenario order.
    pub disks: Vec<Disk>,
    /// Their names (a vbd whose target names one lives on it).
    pub disk_names: Vec<String>,
    /// Where each vbd lives: (frontend domain, vdev) → (disk index, volume index).
    pub vbd_volumes: BTreeMap<(DomId, u32), (usize, u32)>,
    /// Completed disk commands waiting for their `DiskDone` event: tag → (ok, data). The
    /// core hands out a host's tags in increasing order, so a window from the oldest tag
    /// waiting (blkback's `DiskInflight`), not a tree.
    pub disk_done: DiskInflight<(bool, Vec<u64>)>,
    /// Emptied READ buffers of delivered `DiskDone`s, for the next commands to fill.
    pub disk_spare: SpareBuffers<u64, DISK_SPARE_BUFFERS_MAX>,
    /// When a `host-crash` fault took the host down (no event reaches it afterwards).
    pub crashed_at_ns: Option<u64>,
    /// Frames netback handed the bridge during the current input (`run/net.rs` routes
    /// them after it).
    pub net_out: Vec<hypervisor_model::platform::NetFrame>,
}

impl HostSim {
    /// True if the current input left something for the run loop's `after_input`: a
    /// toolstack reply, a guest notice, a frame for the bridge, or a domain whose memory
    /// the guest models must re-read. When false (and no xl command waits), `after_input`
    /// has nothing to do.
    #[inline]
    pub fn has_output(&self) -> bool {
        !(self.replies.is_empty()
            && self.notices.is_empty()
            && self.net_out.is_empty()
            && !self.guests.memory_dirty())
    }

    /// The vbds of a new domain: each lives on the host disk its target names (the
    /// first disk if none), as a volume named by the target.
    pub fn register_vbds(&mut self, dom: DomId, disks: &[(u32, String)]) {
        self.vbd_volumes.retain(|(d, _), _| *d != dom);
        for (vdev, target) in disks {
            let disk = self
                .disk_names
                .iter()
                .position(|name| target.contains(name.as_str()))
                .unwrap_or(0);
            let volume = self.disks.get_mut(disk).and_then(|d| d.volume(target));
            if let Some(volume) = volume {
                self.vbd_volumes.insert((dom, *vdev), (disk, volume));
            }
        }
    }
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

/// xenstored's output to one unix-socket client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsOut {
    /// Bytes to write.
    Send {
        /// Client number.
        client: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close the client's socket.
    Close {
        /// Client number.
        client: u32,
    },
}

fn stime(ns: u64) -> STime {
    STime::from_ns(i64::try_from(ns).expect("virtual time below 2^63 ns"))
}

/// A `Memory` record: the guest models re-read that domain's memory after the input.
#[cold]
#[inline(never)]
fn memory_changed(sim: &mut HostSim, dom: DomId) {
    sim.guests.memory_changed(dom);
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
        // One pending timer per pCPU: the re-arm replaces the superseded one in the queue.
        self.queue.push_slot(
            self.sim.timer_slot_base + pcpu.index(),
            at_ns,
            SimEvent::Timer {
                host: self.sim.host,
                pcpu,
                generation: *generation,
            },
        );
    }

    // The cancelled timer stays in its slot, stale: the pCPU's next arm replaces it
    // (99% of cancels in `io-64-moderate`: the pCPU idles until a wake), or it pops at
    // its time and the run loop drops it by its generation, as it drops a stale pool
    // timer. Taking it out of the slot's tree at each cancel cost more than both.
    fn cancel_timer(&mut self, pcpu: PcpuId) {
        self.sim.timer_gen[pcpu.index()] += 1;
    }

    fn set_pool_timer(&mut self, pool: PoolId, deadline: STime) {
        let slot = super::pool_slot(pool);
        if self.sim.pool_timer_gen.len() <= slot {
            self.sim.pool_timer_gen.resize(slot + 1, 0);
        }
        let generation = &mut self.sim.pool_timer_gen[slot];
        *generation += 1;
        let at_ns = ns_of(deadline).max(self.now_ns);
        self.queue.push(
            at_ns,
            SimEvent::PoolTimer {
                host: self.sim.host,
                pool,
                generation: *generation,
            },
        );
    }

    fn cancel_pool_timer(&mut self, pool: PoolId) {
        if let Some(generation) = self.sim.pool_timer_gen.get_mut(super::pool_slot(pool)) {
            *generation += 1;
        }
    }

    fn xs_socket_send(&mut self, client: u32, bytes: &[u8]) {
        self.sim.xs_out.push(XsOut::Send {
            client,
            bytes: bytes.to_vec(),
        });
    }

    fn xs_socket_close(&mut self, client: u32) {
        self.sim.xs_out.push(XsOut::Close { client });
    }

    fn send_ipi(&mut self, target: PcpuId, kind: IpiKind) {
        assert_eq!(kind, IpiKind::Schedule, "only scheduler IPIs exist");
        let at_ns = self.now_ns + self.sim.ipi_latency_ns;
        // A fixed latency after now: in time order, so no heap sift (`clock.rs`).
        self.queue.push_in_order(
            super::LANE_IPI,
            at_ns,
            SimEvent::Softirq {
                host: self.sim.host,
                pcpu: target,
            },
        );
    }

    fn context_switch(&mut self, pcpu: PcpuId, from: Option<VcpuRef>, to: Option<VcpuRef>) {
        if let Some(v) = from {
            self.sim.guests.stop_running(v, self.now_ns);
        }
        if let Some(v) = to {
            let last = self.sim.last_vcpu.get_mut(pcpu.index());
            let overhead_ns = match last {
                Some(last) => {
                    let cost = self.sim.switch.switch_overhead_ns(*last, v);
                    *last = Some(v);
                    cost
                }
                None => 0,
            };
            self.sim.guests.start_running(
                v,
                pcpu.index(),
                self.now_ns,
                overhead_ns,
                self.sim.host,
                self.queue,
            );
        }
    }

    fn defer_toolstack(&mut self, job: JobId, deadline: STime) {
        let at_ns = ns_of(deadline).max(self.now_ns);
        self.queue.push(
            at_ns,
            SimEvent::ToolstackContinue {
                host: self.sim.host,
                job,
            },
        );
    }

    fn toolstack_reply(&mut self, job: JobId, reply: ToolstackReply) {
        self.sim.replies.push((job, reply));
    }

    fn xenstored_work(&mut self, vcpu: VcpuRef, item: XsWorkId, work_ns: i64) {
        let work_ns = u64::try_from(work_ns).unwrap_or(0);
        self.sim.guests.add_service(
            vcpu,
            ServiceItem::Xenstored(item),
            work_ns,
            self.now_ns,
            self.sim.host,
            self.queue,
        );
    }

    fn defer_driver(&mut self, work: DriverWorkId, deadline: STime) {
        let at_ns = ns_of(deadline).max(self.now_ns);
        self.queue.push(
            at_ns,
            SimEvent::DriverWork {
                host: self.sim.host,
                work,
            },
        );
    }

    fn guest_notify(&mut self, dom: DomId, notice: GuestNotice) {
        self.sim.notices.push((dom, notice));
    }

    // Called for every record: the memory note is out of line, so the common path is a
    // tag test and a jump to the sinks, with no registers to save.
    #[inline(always)]
    fn trace(&mut self, event: &TraceEvent) {
        if let TraceEvent::Memory { dom, .. } = event {
            memory_changed(self.sim, *dom);
        }
        self.sinks.event(self.sim.host, self.now_ns, event);
    }

    fn ept_write(&mut self, dom: DomId, gfn: Gfn, entry: Option<EptEntry>) {
        if let Err(error) = self.sim.ept.write(dom, gfn, entry) {
            panic!(
                "the core programmed a bad EPT entry for d{}: {error}",
                dom.raw()
            );
        }
    }

    fn ept_invalidate(&mut self, dom: DomId) {
        if let Err(error) = self.sim.ept.invalidate(dom) {
            panic!(
                "the core left an inconsistent EPT for d{}: {error}",
                dom.raw()
            );
        }
    }

    fn vcpu_stall(&mut self, vcpu: VcpuRef, work_ns: i64) {
        let work_ns = u64::try_from(work_ns).unwrap_or(0);
        self.sim.guests.add_service(
            vcpu,
            ServiceItem::Exit,
            work_ns,
            self.now_ns,
            self.sim.host,
            self.queue,
        );
    }

    fn iommu_write(&mut self, bdf: PciBdf, dfn: u64, entry: Option<(Mfn, MapAccess)>) {
        self.sim.iommu.write(bdf, dfn, entry);
    }

    fn ring_doorbell(&mut self, doorbell: Doorbell) {
        self.sim.doorbells.ring(doorbell);
    }

    fn disk_submit(&mut self, cmd: DiskCommand) {
        let place = self.sim.vbd_volumes.get(&(cmd.dom, cmd.vdev)).copied();
        let buffer = self.sim.disk_spare.take();
        let done = place.and_then(|(disk, volume)| {
            let disk = self.sim.disks.get_mut(disk)?;
            Some(disk.submit(volume, &cmd, self.now_ns, buffer))
        });
        // A vbd on no disk (a host without disks) fails at once.
        let (at_ns, ok, data) = match done {
            Some(c) => (c.done_ns, true, c.data),
            None => (self.now_ns, false, Vec::new()),
        };
        // Tags only grow (`blk_glue.rs` hands them out one by one).
        self.sim.disk_done.insert(cmd.tag, (ok, data));
        let event = SimEvent::DiskDone {
            host: self.sim.host,
            tag: cmd.tag,
        };
        // Mostly one constant service time after now: in time order (`clock.rs`).
        self.queue.push_in_order(super::LANE_DISK, at_ns, event);
    }

    fn backend_work(&mut self, vcpu: VcpuRef, item: BackWorkId, work_ns: i64) {
        let work_ns = u64::try_from(work_ns).unwrap_or(0);
        let item = ServiceItem::Blkback(item);
        self.sim
            .guests
            .add_service(vcpu, item, work_ns, self.now_ns, self.sim.host, self.queue);
    }

    fn net_transmit(&mut self, frame: hypervisor_model::platform::NetFrame) {
        self.sim.net_out.push(frame);
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::ids::{DomId, Gfn, Mfn, PciBdf};
    use hypervisor_model::platform::{Doorbell, EptEntry, MapAccess, Platform};

    use super::{HostSim, SimPlatform, SwitchCosts};
    use crate::clock::EventQueue;
    use crate::record::Recorder;
    use crate::rng::RngStreams;
    use crate::run::guests::HostGuests;
    use crate::run::{SimEvent, Sinks};

    const RW: MapAccess = MapAccess {
        read: true,
        write: true,
        execute: false,
    };

    fn host_sim() -> HostSim {
        HostSim {
            host: 0,
            timer_gen: vec![0; 2],
            timer_slot_base: 0,
            pool_timer_gen: Vec::new(),
            switch: SwitchCosts::free(),
            last_vcpu: vec![None; 2],
            xs_out: Vec::new(),
            guests: HostGuests::new(RngStreams::new(1)),
            replies: Vec::new(),
            notices: Vec::new(),
            ipi_latency_ns: 0,
            ept: Default::default(),
            access: Default::default(),
            iommu: Default::default(),
            doorbells: Default::default(),
            disks: Vec::new(),
            disk_names: Vec::new(),
            vbd_volumes: std::collections::BTreeMap::new(),
            disk_done: Default::default(),
            disk_spare: Default::default(),
            crashed_at_ns: None,
            net_out: Vec::new(),
        }
    }

    /// Runs `act` on a platform over `queue` and `sim` at time 0, with sinks that only hash.
    fn with_platform(
        queue: &mut EventQueue<SimEvent>,
        sim: &mut HostSim,
        act: impl FnOnce(&mut SimPlatform<'_>),
    ) {
        let mut sinks = Sinks::new(Recorder::new(), Vec::new(), false, 0);
        act(&mut SimPlatform {
            now_ns: 0,
            queue,
            sim,
            sinks: &mut sinks,
        });
    }

    #[test]
    fn ept_write_reaches_the_walker_after_invalidate() {
        let (mut queue, mut sim) = (EventQueue::new(), host_sim());
        let d1 = DomId::new(1).expect("d1");
        let leaf = EptEntry {
            mfn: Mfn::new(0x8000),
            order: 9,
            access: RW,
        };
        with_platform(&mut queue, &mut sim, |p| {
            p.ept_write(d1, Gfn::new(0x400), Some(leaf));
            p.ept_invalidate(d1);
        });
        let walk = sim.ept.translate(d1, Gfn::new(0x401)).map(|t| t.mfn);
        assert_eq!(walk, Some(Mfn::new(0x8001)));
        assert_eq!(sim.ept.invalidation_count(), 1);
    }

    #[test]
    fn iommu_write_and_doorbell_reach_the_machine() {
        let (mut queue, mut sim) = (EventQueue::new(), host_sim());
        let nic = PciBdf {
            segment: 0,
            bus: 3,
            device: 0,
            function: 0,
        };
        let bell = Doorbell::NicTx { nic: 0, queue: 0 };
        with_platform(&mut queue, &mut sim, |p| {
            p.iommu_write(nic, 0x20, Some((Mfn::new(0x900), RW)));
            p.ring_doorbell(bell);
        });
        assert_eq!(sim.iommu.dma(nic, 0x20, true), Ok(Mfn::new(0x900)));
        assert_eq!(sim.doorbells.count(bell), 1);
    }

    /// The generation a popped pCPU timer event carries.
    fn popped_timer_generation(queue: &mut EventQueue<SimEvent>) -> Option<u64> {
        match queue.pop() {
            Some((_, SimEvent::Timer { generation, .. })) => Some(generation),
            _ => None,
        }
    }

    #[test]
    fn has_output_is_false_until_the_core_hands_the_loop_something() {
        // A fresh host has nothing for `after_input`; a toolstack reply is something.
        let (mut queue, mut sim) = (EventQueue::new(), host_sim());
        let quiet = sim.has_output();
        let job = hypervisor_model::toolstack::ops::JobId(7);
        with_platform(&mut queue, &mut sim, |p| {
            let reply = hypervisor_model::toolstack::ops::ToolstackReply::Done { result: Ok(()) };
            p.toolstack_reply(job, reply);
        });
        assert!(!quiet);
        assert!(sim.has_output());
    }

    #[test]
    fn cancelled_timer_pops_stale() {
        // An armed timer's event carries generation 1; a cancel moves the pCPU to
        // generation 2, so the event left in the queue pops stale (the run loop drops it).
        let (mut queue, mut sim) = (EventQueue::new(), host_sim());
        let cpu = hypervisor_model::ids::PcpuId::new(1).expect("cpu1");
        with_platform(&mut queue, &mut sim, |p| {
            p.set_timer(cpu, hypervisor_model::time::STime::from_ns(500));
            p.cancel_timer(cpu);
        });
        assert_eq!(sim.timer_gen[1], 2);
        assert_eq!(popped_timer_generation(&mut queue), Some(1));
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn rearm_after_cancel_leaves_one_current_timer() {
        // Arm at 500, cancel, arm at 900: one event, at 900, with the current generation 3
        // (what a cancel that emptied the slot would leave too).
        let (mut queue, mut sim) = (EventQueue::new(), host_sim());
        let cpu = hypervisor_model::ids::PcpuId::new(1).expect("cpu1");
        with_platform(&mut queue, &mut sim, |p| {
            p.set_timer(cpu, hypervisor_model::time::STime::from_ns(500));
            p.cancel_timer(cpu);
            p.set_timer(cpu, hypervisor_model::time::STime::from_ns(900));
        });
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.peek_time_ns(), Some(900));
        assert_eq!(popped_timer_generation(&mut queue), Some(sim.timer_gen[1]));
    }

    #[test]
    fn rearmed_timer_replaces_the_pending_one() {
        let (mut queue, mut sim) = (EventQueue::new(), host_sim());
        let cpu = hypervisor_model::ids::PcpuId::new(1).expect("cpu1");
        with_platform(&mut queue, &mut sim, |p| {
            p.set_timer(cpu, hypervisor_model::time::STime::from_ns(500));
            p.set_timer(cpu, hypervisor_model::time::STime::from_ns(900));
        });
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.peek_time_ns(), Some(900));
    }
}
