//! Emulated disk I/O of HVM guests without PV drivers (`xen_platform_pci = 0`): each
//! operation is a series of port-I/O exits that Xen forwards as ioreqs to the guest's
//! device model, QEMU in dom0 or in the guest's stub domain; QEMU then does the I/O
//! itself through the split drivers. The queue of device-model work is shared with the
//! emulated NICs (`emunic.rs`), whose jobs it hands back when they have run.
//!
//! A guest I/O (`CoreInput::BlkSubmit` from an emulated-disk guest) is held until the
//! batch's last I/O; the batch becomes CPU work on the device model's vCPU
//! (`io.emulated_disk_ioreqs` × `io.ioreq_dom0_rtt_ns` per I/O on dom0, or
//! × `io.ioreq_stubdom_rtt_ns` on the stub domain, [`Platform::backend_work`]), traced as
//! [`TraceEvent::IoreqWork`]. When that vCPU has run it (`BackendWorkDone` with
//! [`IOREQ_WORK_BIT`]), the I/Os enter the vbd's blkfront (`blk_glue.rs`), so blkback's
//! cost in dom0 and the disk's follow as for a PV guest. The guest's own exits are charged
//! to its vCPU by the platform's guest model (`sim/src/guest/modes.rs`).
//!
//! Follows xen/arch/x86/hvm/ioreq.c and xen/common/ioreq.c (`ioreq_send`: an ioreq to the
//! server's vCPU event channel, the guest vCPU waits for the response) and libxl_dm.c (the
//! stub domain `<name>-dm` runs QEMU for the guest).
//!
//! # Invariants
//! - At most [`IOREQ_WORK_ITEMS_MAX`] batches wait for their device model; each names a
//!   guest and a device-model domain.
//! - Held I/Os belong to a batch whose last I/O has not arrived yet.
//!
//! xensim differs, on purpose: QEMU's own I/O runs over the guest's vbd data path (the
//! same rings, blkback costs and disk) instead of over a vbd of the stub domain or dom0's
//! block layer; the ioreq round trip's crossings are charged as device-model CPU time;
//! every ioreq of an operation is paid before the I/O starts (the completion's status
//! read included). A guest whose device model is gone sees its I/Os fail.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::emunic::NicJob;
use super::Hypervisor;
use crate::ids::{BackWorkId, DomId, VcpuId, VcpuRef};
use crate::io::vbd::{GuestIo, IoDone};
use crate::io::vif::NetPacket;
use crate::platform::Platform;
use crate::toolstack::ops::GuestNotice;
use crate::trace::TraceEvent;

/// ioreq work ids have this bit set, so `BackendWorkDone` tells them from blkback's.
pub const IOREQ_WORK_BIT: u64 = 1 << 63;
/// Most ioreq batches waiting for their device model on a host (one per guest vCPU
/// batch in flight; xensim's bound).
pub const IOREQ_WORK_ITEMS_MAX: usize = 4096;
/// Most I/Os held for one vbd while its batch is being submitted (blkfront's backlog
/// bound).
const HELD_IOS_MAX: usize = crate::io::vbd::BACKLOG_IOS_MAX;

/// What a queued item carries.
#[derive(Clone, Debug)]
pub(super) enum IoreqJob {
    /// An emulated disk's I/Os on vbd `vdev`.
    Disk { vdev: u32, ios: Vec<GuestIo> },
    /// An emulated NIC's frames at one stage of their way (`emunic.rs`).
    Nic(NicJob),
}

/// One batch of emulated I/Os waiting for the device model (or, for a received frame, for
/// the guest's vCPU to take the card's interrupt).
#[derive(Clone, Debug)]
pub(super) struct IoreqWork {
    /// The guest vCPU that issued them.
    pub(super) vcpu: VcpuRef,
    pub(super) job: IoreqJob,
}

/// The device models of a host and their pending ioreq batches.
#[derive(Clone, Debug, Default)]
pub struct IoreqState {
    /// The stub domain that runs each guest's device model (absent: QEMU in dom0).
    pub(crate) stubdom_of: BTreeMap<DomId, DomId>,
    /// Batches queued on a device model, by work id.
    work: BTreeMap<BackWorkId, IoreqWork>,
    next_work: u64,
    /// I/Os of a batch still being submitted, per (guest, vdev).
    held: BTreeMap<(DomId, u32), Vec<GuestIo>>,
    /// Frames of an emulated NIC's TX batch still being handed over, per (guest, devid).
    pub(super) nic_held: BTreeMap<(DomId, u32), Vec<NetPacket>>,
    /// Emulated NICs on their bridge, per (guest, devid): the backend domain whose bridge
    /// it is (`emunic_port.rs`).
    pub(super) cards: BTreeMap<(DomId, u32), DomId>,
}

impl Hypervisor {
    /// True when `dom`'s disks are emulated (an HVM guest without the platform device).
    pub(crate) fn disks_emulated(&self, dom: DomId) -> bool {
        self.domains
            .get(dom)
            .and_then(|d| d.config.as_ref())
            .is_some_and(|c| c.disks_emulated())
    }

    /// The vCPU that runs `dom`'s device model and its ioreq round trip, ns: the stub
    /// domain's vCPU 0, or a dom0 vCPU: with n > 1 dom0 vCPUs, `1 + (dom − 1) mod (n − 1)`
    /// (vCPU 0 keeps blkback and xenstored), else vCPU 0.
    ///
    /// xensim differs: dom0's kernel would schedule each QEMU process on any of its
    /// vCPUs; xensim keeps it on one, spread by domid.
    pub(super) fn device_model_of(&self, dom: DomId) -> (VcpuRef, i64) {
        if let Some(stub) = self.ioreq.stubdom_of.get(&dom) {
            let vcpu = VcpuRef {
                dom: *stub,
                vcpu: VcpuId::new(0).expect("vCPU 0"),
            };
            return (vcpu, self.costs.ioreq_stubdom_rtt_ns);
        }
        let dom0_vcpus = self
            .domains
            .get(DomId::DOM0)
            .map_or(1, |d| u32::try_from(d.vcpus.len()).unwrap_or(1))
            .max(1);
        let index = match dom0_vcpus {
            1 => 0,
            n => 1 + u32::from(dom.raw()).saturating_sub(1) % (n - 1),
        };
        let vcpu = VcpuRef {
            dom: DomId::DOM0,
            vcpu: VcpuId::new(index).expect("a dom0 vCPU index"),
        };
        (vcpu, self.costs.ioreq_dom0_rtt_ns)
    }

    /// `BlkSubmit` from an emulated-disk guest: hold the I/O; at the batch's last one,
    /// queue the batch's ioreqs on the device model.
    pub(crate) fn ioreq_submit<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        vdev: u32,
        io: GuestIo,
        last: bool,
        p: &mut P,
    ) {
        let held = self.ioreq.held.entry((vcpu.dom, vdev)).or_default();
        if held.len() >= HELD_IOS_MAX {
            return ioreq_fail(vcpu.dom, vdev, io, p);
        }
        held.push(io);
        if !last {
            return;
        }
        let ios = self
            .ioreq
            .held
            .remove(&(vcpu.dom, vdev))
            .unwrap_or_default();
        let (dm_vcpu, rtt_ns) = self.device_model_of(vcpu.dom);
        let dm = dm_vcpu.dom;
        if !self.is_alive(dm) || self.ioreq.work.len() >= IOREQ_WORK_ITEMS_MAX {
            // No device model answers: the guest's emulated disk reports errors.
            for io in ios {
                ioreq_fail(vcpu.dom, vdev, io, p);
            }
            return;
        }
        let ioreqs = i64::from(self.costs.emulated_disk_ioreqs);
        let count = i64::try_from(ios.len()).unwrap_or(i64::MAX);
        let work_ns = rtt_ns.max(0).saturating_mul(ioreqs).saturating_mul(count);
        let id = self.ioreq_next_id();
        p.trace(&TraceEvent::IoreqWork {
            item: id,
            dom: vcpu.dom,
            dm,
            ios: u32::try_from(ios.len()).unwrap_or(u32::MAX),
            work_ns,
        });
        let job = IoreqJob::Disk { vdev, ios };
        self.ioreq_enqueue(id, dm_vcpu, work_ns, IoreqWork { vcpu, job }, p);
    }

    /// A fresh ioreq work id.
    pub(super) fn ioreq_next_id(&mut self) -> BackWorkId {
        let id = BackWorkId(IOREQ_WORK_BIT | self.ioreq.next_work);
        self.ioreq.next_work += 1;
        id
    }

    /// True when another item fits in the queue.
    pub(super) fn ioreq_has_room(&self) -> bool {
        self.ioreq.work.len() < IOREQ_WORK_ITEMS_MAX
    }

    /// `work` becomes `work_ns` of CPU work on `on` (done at once when free).
    pub(super) fn ioreq_enqueue<P: Platform + ?Sized>(
        &mut self,
        id: BackWorkId,
        on: VcpuRef,
        work_ns: i64,
        work: IoreqWork,
        p: &mut P,
    ) {
        if work_ns == 0 {
            return self.ioreq_finish(work, p);
        }
        assert!(self.ioreq_has_room(), "ioreq work full");
        self.ioreq.work.insert(id, work);
        p.backend_work(on, id, work_ns);
        let _ = self.vcpu_wake_event(on, p);
    }

    fn ioreq_finish<P: Platform + ?Sized>(&mut self, work: IoreqWork, p: &mut P) {
        match work.job {
            IoreqJob::Disk { vdev, ios } => self.ioreq_forward(work.vcpu, vdev, ios, p),
            IoreqJob::Nic(job) => self.emunic_stage_done(work.vcpu, job, p),
        }
    }

    /// `BackendWorkDone` of an ioreq batch: QEMU has handled the ioreqs and does the I/Os.
    pub(crate) fn ioreq_work_done<P: Platform + ?Sized>(
        &mut self,
        item: BackWorkId,
        p: &mut P,
    ) -> Result<(), super::InputError> {
        let work = self
            .ioreq
            .work
            .remove(&item)
            .ok_or(super::InputError::UnknownBackWork(item))?;
        self.ioreq_finish(work, p);
        Ok(())
    }

    /// The device model's own I/O: the batch enters blkfront (the guest's vbd path).
    fn ioreq_forward<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        vdev: u32,
        ios: Vec<GuestIo>,
        p: &mut P,
    ) {
        if !self.is_alive(vcpu.dom) {
            return;
        }
        let count = ios.len();
        for (index, io) in ios.into_iter().enumerate() {
            self.blk_submit(vcpu, vdev, io, index + 1 == count, p);
        }
    }

    /// `dom` is gone: its held I/Os and device-model link go (batches already queued are
    /// dropped when they finish, as the guest is not alive then).
    pub(crate) fn ioreq_forget(&mut self, dom: DomId) {
        self.ioreq.stubdom_of.remove(&dom);
        self.ioreq.held.retain(|(d, _), _| *d != dom);
        self.ioreq.nic_held.retain(|(d, _), _| *d != dom);
        self.ioreq.cards.retain(|(d, _), _| *d != dom);
    }

    /// The ioreq checks: bounds, and every held batch belongs to a live guest.
    pub(crate) fn ioreq_check(&self, out: &mut Vec<crate::sched::Violation>) {
        if self.ioreq.work.len() > IOREQ_WORK_ITEMS_MAX {
            let detail = alloc::format!("{} batches", self.ioreq.work.len());
            let invariant = "ioreq.work_bound";
            out.push(crate::sched::Violation { invariant, detail });
        }
        for (dom, _) in self.ioreq.held.keys().chain(self.ioreq.nic_held.keys()) {
            if self.domains.get(*dom).is_none() {
                let detail = alloc::format!("d{} holds ioreq I/Os", dom.raw());
                let invariant = "ioreq.held_domain";
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
        self.emunic_port_check(out);
        for work in self.ioreq.work.values() {
            let empty = match &work.job {
                IoreqJob::Disk { ios, .. } => ios.is_empty(),
                IoreqJob::Nic(job) => job.frames.is_empty(),
            };
            if empty {
                let detail = alloc::format!("d{} empty batch", work.vcpu.dom.raw());
                let invariant = "ioreq.batch_empty";
                out.push(crate::sched::Violation { invariant, detail });
            }
        }
    }
}

/// The emulated disk reports an error for `io` at once.
fn ioreq_fail<P: Platform + ?Sized>(dom: DomId, vdev: u32, io: GuestIo, p: &mut P) {
    let done = IoDone {
        tag: io.tag,
        status: crate::io::blkif::BLKIF_RSP_ERROR,
        digest: crate::io::vbd::DIGEST_INIT,
        bytes: 0,
    };
    p.guest_notify(dom, GuestNotice::BlkDone { vdev, done });
}
