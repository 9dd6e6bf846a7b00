//! Typed core events: every decision and state change the core makes, in the order it
//! makes them. They are hashed (run hash), written to the replay trace, and are the only
//! source the metrics and the decision log are computed from.
//!
//! # Invariants
//! - Each variant has a unique tag byte; tags are never reused (the encoding is pinned,
//!   see [`crate::encode`]).

use alloc::string::String;
use alloc::vec::Vec;

use crate::domain::vcpu::Runstate;
use crate::domain::{Dying, ShutdownReason};
use crate::encode::{encode_fixed, Encoder, FieldSink};
use crate::ids::{BackWorkId, DomId, DriverWorkId, PcpuId, PoolId, VcpuRef, XsWorkId};
use crate::sched::{PickReason, SchedKind};
use crate::time::{STime, Span};
use crate::toolstack::ops::JobId;

/// Bytes of the window an event is encoded into first (the longest event with no text,
/// bytes or list, a `Schedule` with both vCPUs and a credit, is 37).
const FIXED_RECORD_BYTES: usize = 64;

/// One core event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TraceEvent {
    /// A vCPU changed runstate (`vcpu_runstate_change`).
    Runstate {
        /// The vCPU.
        vcpu: VcpuRef,
        /// Old state.
        from: Runstate,
        /// New state.
        to: Runstate,
    },
    /// A scheduler decision on a pCPU (`do_schedule` result), `None` = idle.
    Schedule {
        /// The pCPU.
        pcpu: PcpuId,
        /// What ran before.
        prev: Option<VcpuRef>,
        /// What runs now.
        next: Option<VcpuRef>,
        /// Scheduler timer, relative; negative = none.
        next_time: Span,
        /// Why the scheduler chose `next`.
        reason: PickReason,
        /// `next`'s credit (credit2) or remaining budget (rtds), ns.
        credit_ns: Option<i64>,
    },
    /// `SCHEDULE_SOFTIRQ` raised on a pCPU (a tickle).
    Tickle {
        /// The target pCPU.
        pcpu: PcpuId,
    },
    /// A pool scheduler's own timer (cap or deadline replenishment) was armed (`Some`) or
    /// cancelled (`None`).
    PoolTimerSet {
        /// The pool.
        pool: PoolId,
        /// Absolute deadline.
        deadline: Option<STime>,
    },
    /// xenstored wrote to a unix-socket client (replies and watch events, in order).
    XsSocketSend {
        /// The platform's client number.
        client: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// xenstored dropped a unix-socket client (a protocol violation).
    XsSocketDrop {
        /// The platform's client number.
        client: u32,
    },
    /// A cpupool was created at run time (`xl cpupool-create`).
    PoolCreate {
        /// Its id.
        pool: PoolId,
        /// Its name.
        name: String,
        /// Its scheduler.
        sched: SchedKind,
    },
    /// A cpupool was destroyed.
    PoolDestroy {
        /// Its id.
        pool: PoolId,
    },
    /// A pCPU joined a pool (`Some`) or left its pool (`None`).
    PoolCpu {
        /// The pCPU.
        pcpu: PcpuId,
        /// Its pool now.
        pool: Option<PoolId>,
    },
    /// A domain moved to another pool (`sched_move_domain`).
    DomainPool {
        /// The domain.
        dom: DomId,
        /// Its pool now.
        pool: PoolId,
    },
    /// The scheduler timer of a pCPU was armed.
    TimerSet {
        /// The pCPU.
        pcpu: PcpuId,
        /// Absolute deadline.
        deadline: STime,
    },
    /// null: a vCPU was assigned to (or released from) a pCPU.
    NullAssign {
        /// The vCPU.
        vcpu: VcpuRef,
        /// The pCPU.
        pcpu: PcpuId,
        /// True for assign, false for deassign.
        assigned: bool,
    },
    /// null: a vCPU entered (or left) the waitqueue.
    NullWaitq {
        /// The vCPU.
        vcpu: VcpuRef,
        /// True when added.
        added: bool,
    },
    /// A domain struct was created (`domain_create`).
    DomainCreate {
        /// The new domain.
        dom: DomId,
        /// Its name.
        name: String,
    },
    /// A vCPU was created (`vcpu_create`) on its initial pCPU.
    VcpuCreate {
        /// The vCPU.
        vcpu: VcpuRef,
        /// Initial `processor`.
        pcpu: PcpuId,
        /// False if it starts down (`VPF_down`).
        online: bool,
    },
    /// Pages were given to (positive) or taken from (negative) a domain.
    Memory {
        /// The domain.
        dom: DomId,
        /// Page delta.
        delta_pages: i64,
        /// Host free pages afterwards.
        free_pages: u64,
    },
    /// Extents a populate step handed to a domain, in order, so that the run hash covers
    /// which machine frames each guest frame got (spec §13 I30).
    Extents {
        /// The domain.
        dom: DomId,
        /// `(first GFN, first MFN, order)` of each extent.
        extents: Vec<(u64, u64, u8)>,
    },
    /// `XEN_DOMCTL_max_mem` set a domain's `max_pages`.
    MaxPages {
        /// The domain.
        dom: DomId,
        /// `d->max_pages` afterwards.
        max_pages: u64,
    },
    /// A domain's pause count changed.
    Pause {
        /// The domain.
        dom: DomId,
        /// `d->pause_count` afterwards.
        pause_count: u32,
        /// `d->controller_pause_count` afterwards.
        controller_pause_count: u32,
    },
    /// A domain started shutting down (`domain_shutdown`).
    Shutdown {
        /// The domain.
        dom: DomId,
        /// The reason.
        reason: ShutdownReason,
    },
    /// A domain's dying state advanced (`domain_kill`).
    Dying {
        /// The domain.
        dom: DomId,
        /// New state.
        state: Dying,
    },
    /// A domain's struct was freed; its id may be reused.
    DomainFree {
        /// The domain.
        dom: DomId,
    },
    /// A toolstack job made a step (`step` is the job's own step code).
    JobStep {
        /// The job.
        job: JobId,
        /// Step code, stable per job kind (see `toolstack::ops::JobStepCode`).
        step: u8,
    },
    /// A toolstack job finished with xl's exit status.
    JobDone {
        /// The job.
        job: JobId,
        /// Exit status (0 = success).
        rc: i32,
    },
    /// xenstored queued `requests` requests as CPU work on dom0, in work item `item` (a new
    /// item or the newest), which will also write the queued output of `rings` more domain
    /// rings (their drivers' watch events) when done.
    XenstoredWork {
        /// The work item.
        item: XsWorkId,
        /// Requests added to it.
        requests: u32,
        /// Domain rings it now serves in addition.
        rings: u32,
    },
    /// A watch event reached a split driver; its reaction `work` runs one
    /// `io.xenbus_step_ns` later.
    XenbusEvent {
        /// The reaction.
        work: DriverWorkId,
        /// The event's path.
        path: String,
    },
    /// A split driver wrote its XenBus `state` (`xenbus_switch_state`).
    XenbusState {
        /// The `state` key.
        path: String,
        /// The state number written.
        state: u8,
    },
    /// A line was written to the hypervisor console ring.
    Console {
        /// The text, without the `(XEN) ` prefix and newline.
        text: String,
    },
    /// blkback queued a batch of consumed requests as dom0 CPU work.
    BlkbackWork {
        /// The work item.
        item: BackWorkId,
        /// The frontend domain.
        dom: DomId,
        /// Its vbd.
        vdev: u32,
        /// Requests in the batch.
        requests: u32,
        /// dom0 CPU time asked for, ns.
        work_ns: i64,
    },
    /// An emulated-disk (or emulated-NIC) guest's batch of I/Os went to its device model
    /// as ioreqs; with `dm == dom`, the guest's own vCPU handles an emulated NIC's
    /// interrupt for received frames (its driver's exits, `hypervisor/emunic.rs`).
    IoreqWork {
        /// The work item on the device model's (or the guest's) vCPU.
        item: BackWorkId,
        /// The guest.
        dom: DomId,
        /// The device model's domain (dom0 or the stub domain), or the guest itself.
        dm: DomId,
        /// I/Os in the batch.
        ios: u32,
        /// Device-model CPU time asked for, ns.
        work_ns: i64,
    },
    /// blkback submitted a command to the disk.
    DiskSubmit {
        /// The command's tag.
        tag: u64,
        /// The frontend domain.
        dom: DomId,
        /// Its vbd.
        vdev: u32,
        /// `DiskOp` code.
        op: u8,
        /// First sector.
        sector: u64,
        /// Sectors.
        sectors: u32,
    },
    /// blkback pushed a response.
    BlkResponse {
        /// The frontend domain.
        dom: DomId,
        /// Its vbd.
        vdev: u32,
        /// The request id.
        id: u64,
        /// `BLKIF_RSP_*`.
        status: i16,
        /// blkfront was notified.
        notify: bool,
    },
    /// blkback refused a request (the kernel log line Linux prints, as a code).
    BlkReject {
        /// The frontend domain.
        dom: DomId,
        /// Its vbd.
        vdev: u32,
        /// The request id as the slot claimed it.
        id: u64,
        /// `BlkReqError::code`.
        reason: u8,
        /// The grant status for a grant failure, else 0.
        gntst: i16,
    },
    /// A ring end saw a producer index that cannot be right and stopped serving the ring
    /// ("Frontend provided bogus ring requests").
    BlkRingHalted {
        /// The frontend domain.
        dom: DomId,
        /// Its vbd.
        vdev: u32,
        /// True for blkback (bogus `req_prod`), false for blkfront (bogus `rsp_prod`).
        backend: bool,
        /// The producer index found.
        prod: u32,
        /// The private index it was measured from.
        base: u32,
    },
    /// An EPT violation of a guest access was resolved (`hvm_hap_nested_page_fault`).
    EptViolation {
        /// The faulting vCPU.
        vcpu: VcpuRef,
        /// The guest frame.
        gfn: u64,
        /// The access: bit 0 read, 1 write, 2 fetch (the exit qualification's low bits).
        access: u8,
        /// What the core did ([`crate::hypervisor::npf::NpfOutcome`] code).
        outcome: u8,
    },
    /// blkfront pushed requests.
    BlkPush {
        /// The frontend domain.
        dom: DomId,
        /// Its vbd.
        vdev: u32,
        /// Requests pushed.
        requests: u32,
        /// blkback was notified.
        notify: bool,
    },
    /// A guest's balloon driver gave up (`ECANCELED`) after failed inflate rounds: the
    /// guest stays above its target.
    BalloonGaveUp {
        /// The domain.
        dom: DomId,
        /// Its `tot_pages` where it stopped.
        tot_pages: u64,
    },
    /// netfront pushed TX slots (`rx = false`) or netback pushed RX responses (`rx`).
    NetPush {
        /// The frontend domain.
        dom: DomId,
        /// Its vif.
        devid: u32,
        /// The queue, for a vif with several (`None`: single-queue encoding).
        queue: Option<u16>,
        /// RX ring (netback's responses) rather than TX (netfront's requests).
        rx: bool,
        /// Slots pushed.
        slots: u32,
        /// The other end was notified.
        notify: bool,
    },
    /// netback queued a batch as CPU work on the backend domain.
    NetbackWork {
        /// The work item.
        item: BackWorkId,
        /// The frontend domain.
        dom: DomId,
        /// Its vif.
        devid: u32,
        /// The queue, for a vif with several (`None`: single-queue encoding).
        queue: Option<u16>,
        /// An RX packet rather than a TX batch.
        rx: bool,
        /// Packets in the batch.
        packets: u32,
        /// Backend CPU time asked for, ns.
        work_ns: i64,
    },
    /// A frame was dropped at a vif (`NetDropReason` code).
    NetDrop {
        /// The frontend domain.
        dom: DomId,
        /// Its vif.
        devid: u32,
        /// Why.
        reason: u8,
    },
    /// netback answered a TX packet with `NETIF_RSP_ERROR` (the line Linux logs, as a code).
    NetTxReject {
        /// The frontend domain.
        dom: DomId,
        /// Its vif.
        devid: u32,
        /// The queue, for a vif with several (`None`: single-queue encoding).
        queue: Option<u16>,
        /// The first slot's id.
        id: u16,
        /// `TxError::code`.
        reason: u8,
        /// The grant status of a failed copy, else 0.
        gntst: i16,
    },
    /// netback disabled a vif on a fatal ring error (`xenvif_fatal_tx_err`).
    VifDisabled {
        /// The frontend domain.
        dom: DomId,
        /// Its vif.
        devid: u32,
        /// The queue, for a vif with several (`None`: single-queue encoding).
        queue: Option<u16>,
        /// `TxError::code`.
        reason: u8,
        /// The producer index found.
        prod: u32,
        /// The consumer index then.
        cons: u32,
    },
    /// A notification to `dom`'s `port` was lost (the `lost-interrupt` fault): the port
    /// did not go pending and its handler did not run.
    InterruptLost {
        /// The receiving domain.
        dom: DomId,
        /// Its port.
        port: u32,
        /// Notifications still to lose on it.
        left: u32,
    },
    /// A driver gave up on a device (`xenbus_dev_fatal`): the message it wrote to the
    /// device's error node, before going Closing.
    XenbusFatal {
        /// The driver's device directory.
        path: String,
        /// `"<errno> <message>"`.
        message: String,
    },
}

impl TraceEvent {
    /// Appends the pinned canonical encoding of this event.
    ///
    /// Written first into a window of [`FIXED_RECORD_BYTES`] (every fixed-shape event
    /// fits), and only an event with longer text or bytes again through a growing
    /// [`Encoder`]: the same field writers, so the same bytes either way.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        if !encode_fixed::<FIXED_RECORD_BYTES>(out, |e| self.encode_fields(e)) {
            self.encode_fields(&mut Encoder::new(out));
        }
    }

    /// The same encoding through any field sink (the recorder writes its record header
    /// and the event into one window). Inlined into each caller, so a fixed window's
    /// position stays in a register and a fixed-shape event's offsets are constants.
    #[inline(always)]
    pub fn encode_fields<E: FieldSink>(&self, e: &mut E) {
        match self {
            TraceEvent::Runstate { vcpu, from, to } => {
                e.u8(1).vcpu(*vcpu).u8(from.code()).u8(to.code());
            }
            TraceEvent::Schedule {
                pcpu,
                prev,
                next,
                next_time,
                reason,
                credit_ns,
            } => {
                e.u8(2)
                    .pcpu(*pcpu)
                    .opt_vcpu(*prev)
                    .opt_vcpu(*next)
                    .span(*next_time)
                    .u8(reason.code());
                match credit_ns {
                    Some(credit) => e.u8(1).i64(*credit),
                    None => e.u8(0),
                };
            }
            TraceEvent::Tickle { pcpu } => {
                e.u8(3).pcpu(*pcpu);
            }
            TraceEvent::PoolTimerSet { pool, deadline } => {
                e.u8(17).u32(pool.0);
                match deadline {
                    Some(t) => e.u8(1).time(*t),
                    None => e.u8(0),
                };
            }
            TraceEvent::XsSocketSend { client, bytes } => {
                e.u8(18).u32(*client).bytes(bytes);
            }
            TraceEvent::XsSocketDrop { client } => {
                e.u8(19).u32(*client);
            }
            TraceEvent::PoolCreate { pool, name, sched } => {
                e.u8(20).u32(pool.0).str(name).u32(sched.sched_id());
            }
            TraceEvent::PoolDestroy { pool } => {
                e.u8(21).u32(pool.0);
            }
            TraceEvent::PoolCpu { pcpu, pool } => {
                e.u8(22).pcpu(*pcpu);
                match pool {
                    Some(p) => e.u8(1).u32(p.0),
                    None => e.u8(0),
                };
            }
            TraceEvent::DomainPool { dom, pool } => {
                e.u8(23).dom(*dom).u32(pool.0);
            }
            TraceEvent::TimerSet { pcpu, deadline } => {
                e.u8(4).pcpu(*pcpu).time(*deadline);
            }
            TraceEvent::NullAssign {
                vcpu,
                pcpu,
                assigned,
            } => {
                e.u8(5).vcpu(*vcpu).pcpu(*pcpu).bool(*assigned);
            }
            TraceEvent::NullWaitq { vcpu, added } => {
                e.u8(6).vcpu(*vcpu).bool(*added);
            }
            TraceEvent::DomainCreate { dom, name } => {
                e.u8(7).dom(*dom).str(name);
            }
            TraceEvent::VcpuCreate { vcpu, pcpu, online } => {
                e.u8(8).vcpu(*vcpu).pcpu(*pcpu).bool(*online);
            }
            TraceEvent::Memory {
                dom,
                delta_pages,
                free_pages,
            } => {
                e.u8(9).dom(*dom).i64(*delta_pages).u64(*free_pages);
            }
            TraceEvent::Pause {
                dom,
                pause_count,
                controller_pause_count,
            } => {
                e.u8(10)
                    .dom(*dom)
                    .u32(*pause_count)
                    .u32(*controller_pause_count);
            }
            TraceEvent::Shutdown { dom, reason } => {
                e.u8(11).dom(*dom).u8(reason.code());
            }
            TraceEvent::Dying { dom, state } => {
                e.u8(12).dom(*dom).u8(dying_code(*state));
            }
            TraceEvent::DomainFree { dom } => {
                e.u8(13).dom(*dom);
            }
            TraceEvent::JobStep { job, step } => {
                e.u8(14).u32(job.0).u8(*step);
            }
            TraceEvent::JobDone { job, rc } => {
                e.u8(15).u32(job.0).i64(i64::from(*rc));
            }
            TraceEvent::Console { text } => {
                e.u8(16).str(text);
            }
            TraceEvent::XenstoredWork {
                item,
                requests,
                rings,
            } => {
                e.u8(24).u64(item.0).u32(*requests).u32(*rings);
            }
            TraceEvent::XenbusEvent { work, path } => {
                e.u8(25).u32(work.0).str(path);
            }
            TraceEvent::XenbusState { path, state } => {
                e.u8(26).str(path).u8(*state);
            }
            TraceEvent::MaxPages { dom, max_pages } => {
                e.u8(28).dom(*dom).u64(*max_pages);
            }
            TraceEvent::EptViolation {
                vcpu,
                gfn,
                access,
                outcome,
            } => {
                e.u8(37).vcpu(*vcpu).u64(*gfn).u8(*access).u8(*outcome);
            }
            TraceEvent::Extents { dom, extents } => {
                let count = u32::try_from(extents.len()).unwrap_or(u32::MAX);
                e.u8(27).dom(*dom).u32(count);
                for (gfn, mfn, order) in extents {
                    e.u64(*gfn).u64(*mfn).u8(*order);
                }
            }
            TraceEvent::BlkbackWork {
                item,
                dom,
                vdev,
                requests,
                work_ns,
            } => {
                e.u8(29).u64(item.0).dom(*dom).u32(*vdev).u32(*requests);
                e.i64(*work_ns);
            }
            TraceEvent::IoreqWork {
                item,
                dom,
                dm,
                ios,
                work_ns,
            } => {
                e.u8(36).u64(item.0).dom(*dom).dom(*dm).u32(*ios);
                e.i64(*work_ns);
            }
            TraceEvent::DiskSubmit {
                tag,
                dom,
                vdev,
                op,
                sector,
                sectors,
            } => {
                e.u8(30).u64(*tag).dom(*dom).u32(*vdev).u8(*op);
                e.u64(*sector).u32(*sectors);
            }
            TraceEvent::BlkResponse {
                dom,
                vdev,
                id,
                status,
                notify,
            } => {
                e.u8(31).dom(*dom).u32(*vdev).u64(*id);
                e.u16(u16::from_le_bytes(status.to_le_bytes()));
                e.bool(*notify);
            }
            TraceEvent::BlkReject {
                dom,
                vdev,
                id,
                reason,
                gntst,
            } => {
                e.u8(32).dom(*dom).u32(*vdev).u64(*id).u8(*reason);
                e.u16(u16::from_le_bytes(gntst.to_le_bytes()));
            }
            TraceEvent::BlkRingHalted {
                dom,
                vdev,
                backend,
                prod,
                base,
            } => {
                e.u8(33)
                    .dom(*dom)
                    .u32(*vdev)
                    .bool(*backend)
                    .u32(*prod)
                    .u32(*base);
            }
            TraceEvent::BlkPush {
                dom,
                vdev,
                requests,
                notify,
            } => {
                e.u8(34).dom(*dom).u32(*vdev).u32(*requests).bool(*notify);
            }
            TraceEvent::BalloonGaveUp { dom, tot_pages } => {
                e.u8(35).dom(*dom).u64(*tot_pages);
            }
            TraceEvent::NetPush {
                dom,
                devid,
                queue,
                rx,
                slots,
                notify,
            } => {
                e.u8(38).dom(*dom).u32(*devid).bool(*rx).u32(*slots);
                e.bool(*notify);
                queue_ext(e, *queue);
            }
            TraceEvent::NetbackWork {
                item,
                dom,
                devid,
                queue,
                rx,
                packets,
                work_ns,
            } => {
                e.u8(39).u64(item.0).dom(*dom).u32(*devid).bool(*rx);
                e.u32(*packets).i64(*work_ns);
                queue_ext(e, *queue);
            }
            TraceEvent::NetDrop { dom, devid, reason } => {
                e.u8(40).dom(*dom).u32(*devid).u8(*reason);
            }
            TraceEvent::NetTxReject {
                dom,
                devid,
                queue,
                id,
                reason,
                gntst,
            } => {
                e.u8(41).dom(*dom).u32(*devid).u16(*id).u8(*reason);
                e.u16(u16::from_le_bytes(gntst.to_le_bytes()));
                queue_ext(e, *queue);
            }
            TraceEvent::VifDisabled {
                dom,
                devid,
                queue,
                reason,
                prod,
                cons,
            } => {
                e.u8(42).dom(*dom).u32(*devid).u8(*reason);
                e.u32(*prod).u32(*cons);
                queue_ext(e, *queue);
            }
            TraceEvent::InterruptLost { dom, port, left } => {
                e.u8(43).dom(*dom).u32(*port).u32(*left);
            }
            TraceEvent::XenbusFatal { path, message } => {
                e.u8(44).str(path).str(message);
            }
        }
    }
}

/// A vif event's queue as a trailing field, only for a vif with several queues: a
/// single-queue vif's records keep the encoding they had before multi-queue.
fn queue_ext<E: FieldSink>(e: &mut E, queue: Option<u16>) {
    if let Some(queue) = queue {
        e.u16(queue);
    }
}

const fn dying_code(state: Dying) -> u8 {
    match state {
        Dying::Alive => 0,
        Dying::Dying => 1,
        Dying::Dead => 2,
    }
}
