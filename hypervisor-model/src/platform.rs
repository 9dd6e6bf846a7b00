//! The only way the core reaches hardware or the world outside it.
//!
//! The core is a state machine: the platform hands it one input at a time
//! (`Hypervisor::handle`), and the core answers by calling these methods. The simulator
//! implements them on its machine model; the bare-metal harness on TSC, LAPIC and serial.
//! Methods only consume: the core never waits on the platform.
//!
//! The EPT hooks are driven by the P2M of every HVM/PVH domain (`hypervisor/ept_glue.rs`);
//! the IOMMU and doorbell hooks describe what the hardware is told, and their callers (the
//! passthrough and NIC models) arrive with those subsystems.

use alloc::vec::Vec;

use crate::ids::{
    BackWorkId, DomId, DriverWorkId, Gfn, Mfn, PciBdf, PcpuId, PoolId, VcpuRef, XsWorkId,
};
use crate::time::STime;
use crate::toolstack::ops::{GuestNotice, JobId, ToolstackReply};
use crate::trace::TraceEvent;

/// Why one pCPU interrupts another.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IpiKind {
    /// Raise `SCHEDULE_SOFTIRQ` on the target (a scheduler "tickle").
    Schedule,
}

/// Access rights of a second-level (EPT or IOMMU) mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapAccess {
    /// Reads allowed.
    pub read: bool,
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed (EPT only; the IOMMU ignores it).
    pub execute: bool,
}

/// One EPT leaf as the core writes it (`ept_set_entry`, xen/arch/x86/mm/p2m-ept.c): a
/// 4 KiB page (order 0), a 2 MiB superpage (order 9) or a 1 GiB superpage (order 18).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EptEntry {
    /// First machine frame of the mapping (aligned to the order).
    pub mfn: Mfn,
    /// Page order: 0, 9 or 18.
    pub order: u8,
    /// Access rights.
    pub access: MapAccess,
}

/// A device queue the core can notify.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Doorbell {
    /// A physical NIC's transmit queue (host-local NIC index, queue).
    NicTx {
        /// NIC index on the host.
        nic: u16,
        /// Queue index.
        queue: u16,
    },
    /// A physical disk's submission queue (host-local disk index, queue).
    DiskSubmit {
        /// Disk index on the host.
        disk: u16,
        /// Queue index.
        queue: u16,
    },
}

/// What a disk command asks of the device.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DiskOp {
    /// Read sectors (into the cache-or-medium contents).
    Read,
    /// Write sectors (into the volatile write cache).
    Write,
    /// Make every cached write durable (`REQ_PREFLUSH`).
    Flush,
    /// Drop the contents of sectors.
    Discard,
}

impl DiskOp {
    /// Stable code for the canonical encoding.
    pub const fn code(self) -> u8 {
        match self {
            DiskOp::Read => 0,
            DiskOp::Write => 1,
            DiskOp::Flush => 2,
            DiskOp::Discard => 3,
        }
    }
}

/// One command blkback submits to the physical disk behind a vbd (a bio reaching the
/// device queue); the platform answers with `CoreInput::DiskDone { tag }`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DiskCommand {
    /// The core's tag, echoed in the completion.
    pub tag: u64,
    /// The frontend domain whose vbd it serves (the platform picks the volume).
    pub dom: DomId,
    /// The vbd's `virtual-device` number.
    pub vdev: u32,
    /// What to do.
    pub op: DiskOp,
    /// First 512-byte sector of the volume.
    pub sector: u64,
    /// Sectors.
    pub sectors: u32,
    /// WRITE: one 8-byte stamp per sector (the content model).
    pub data: Vec<u64>,
}

/// Hardware and outside world, as the core sees them.
pub trait Platform {
    /// Current time on this host.
    fn now(&self) -> STime;

    /// Arms `pcpu`'s scheduler timer for `deadline`, replacing any armed deadline.
    fn set_timer(&mut self, pcpu: PcpuId, deadline: STime);

    /// Disarms `pcpu`'s scheduler timer (no-op if not armed).
    fn cancel_timer(&mut self, pcpu: PcpuId);

    /// Arms (replacing any earlier arm) the timer of pool `pool`'s scheduler; at `deadline`
    /// the platform hands the core `CoreInput::PoolTimer`.
    fn set_pool_timer(&mut self, pool: PoolId, deadline: STime);

    /// Cancels pool `pool`'s scheduler timer (a no-op if not armed).
    fn cancel_pool_timer(&mut self, pool: PoolId);

    /// xenstored writes `bytes` to unix-socket client `client`.
    fn xs_socket_send(&mut self, client: u32, bytes: &[u8]);

    /// xenstored drops unix-socket client `client` (the platform closes the socket).
    fn xs_socket_close(&mut self, client: u32);

    /// Sends an IPI; the platform later delivers it as `CoreInput::Softirq`.
    fn send_ipi(&mut self, target: PcpuId, kind: IpiKind);

    /// `pcpu` stops running `from` and starts running `to` (`None` = the idle vCPU).
    fn context_switch(&mut self, pcpu: PcpuId, from: Option<VcpuRef>, to: Option<VcpuRef>);

    /// Asks to be handed `CoreInput::ToolstackContinue { job }` at `deadline`: the
    /// toolstack's next step (a hypercall batch, a device set-up) starts then.
    fn defer_toolstack(&mut self, job: JobId, deadline: STime);

    /// xenstored (a process in dom0) needs `work_ns` more CPU time on dom0's vCPU `vcpu`
    /// for work item `item`: the platform adds it to what that vCPU runs, before the
    /// guest's own workload, and hands the core `CoreInput::XenstoredDone { item }` once the
    /// vCPU has run that long. A second call for the newest item extends it. Items finish
    /// in the order they were first asked for.
    fn xenstored_work(&mut self, vcpu: VcpuRef, item: XsWorkId, work_ns: i64);

    /// Asks to be handed `CoreInput::DriverWork { work }` at `deadline`: a split driver's
    /// reaction to a XenStore watch event runs then.
    fn defer_driver(&mut self, work: DriverWorkId, deadline: STime);

    /// A toolstack operation finished (or made visible progress).
    fn toolstack_reply(&mut self, job: JobId, reply: ToolstackReply);

    /// Something the guest kernel of `dom` sees through XenStore or an event channel
    /// (a shutdown request, its vCPUs being created or torn down).
    fn guest_notify(&mut self, dom: DomId, notice: GuestNotice);

    /// Records one core event (every decision and state change goes through here).
    fn trace(&mut self, event: &TraceEvent);

    /// Writes (`Some`) or removes (`None`) the EPT leaf of `dom` that maps `gfn` (the first
    /// frame of the leaf, aligned to its order). Takes effect for walks after the next
    /// [`Platform::ept_invalidate`] of `dom` (INVEPT), as on hardware.
    fn ept_write(&mut self, dom: DomId, gfn: Gfn, entry: Option<EptEntry>);

    /// INVEPT for `dom`: cached translations are dropped and later walks see every write.
    fn ept_invalidate(&mut self, dom: DomId);

    /// Xen spent `work_ns` handling an exit of `vcpu` (an EPT violation): the guest on
    /// it makes no progress for that long, as if the time were taken from its workload.
    fn vcpu_stall(&mut self, vcpu: VcpuRef, work_ns: i64);

    /// Writes (`Some`) or removes (`None`) the IOMMU mapping of device `bdf` for DMA frame
    /// `dfn` (`iommu_map`/`iommu_unmap`, xen/drivers/passthrough/iommu.c).
    fn iommu_write(&mut self, bdf: PciBdf, dfn: u64, entry: Option<(Mfn, MapAccess)>);

    /// Notifies a device queue that new descriptors are ready.
    fn ring_doorbell(&mut self, doorbell: Doorbell);

    /// Submits `cmd` to the disk behind a vbd; the platform hands the core
    /// `CoreInput::DiskDone { tag }` when the device completes it.
    fn disk_submit(&mut self, cmd: DiskCommand);

    /// blkback (a kernel thread in dom0) needs `work_ns` of CPU on dom0's vCPU `vcpu` for
    /// item `item`; as [`Platform::xenstored_work`], the platform runs it before the
    /// vCPU's own workload and hands the core `CoreInput::BackendWorkDone { item }`.
    fn backend_work(&mut self, vcpu: VcpuRef, item: BackWorkId, work_ns: i64);

    /// netback hands a frame a guest sent to the backend domain's bridge; the platform
    /// forwards it (to a vif of this host with `CoreInput::NetDeliver`, the physical NIC,
    /// or the backend's own stack).
    fn net_transmit(&mut self, frame: NetFrame);
}

/// A frame netback forwards from a guest's vif to the bridge.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NetFrame {
    /// The backend domain whose bridge receives it.
    pub back_dom: DomId,
    /// The sending guest.
    pub dom: DomId,
    /// Its vif.
    pub devid: u32,
    /// The frame.
    pub packet: crate::io::vif::NetPacket,
}
