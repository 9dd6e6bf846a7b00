//! Emulated NICs of HVM guests without PV drivers (`xen_platform_pci = 0`): the guest's
//! NIC driver (rtl8139, libxl's default `model`, or e1000) programs QEMU's emulated card
//! with port-I/O and MMIO accesses that Xen forwards as ioreqs to the device model, QEMU
//! in dom0 or in the guest's stub domain. QEMU in dom0 moves the frames between the card
//! and its tap `vif<dom>.<devid>-emu` on the nic's bridge; QEMU in a stub domain moves
//! them through the stub domain's own vif (netfront in the stub domain, netback in the
//! nic's backend domain, real rings, grants and event channels: `net_glue.rs`). Where
//! and when the card is on the bridge is `emunic_port.rs`.
//!
//! TX: a guest frame (`CoreInput::NetSend`) is held until its batch's last frame; the
//! batch becomes CPU work on the device model's vCPU (`io.emulated_nic_tx_ioreqs` ×
//! the ioreq round trip per frame, as the disk's in `ioreq.rs`, plus `io.netfront_pkt_ns`
//! per frame in a stub domain, whose kernel's netfront takes the frame), traced as
//! [`TraceEvent::IoreqWork`]. QEMU in dom0 then writes the frames to its tap: they enter
//! the bridge ([`Platform::net_transmit`]) with no netback work. QEMU in a stub domain
//! sends them on the stub domain's vif (`net_send` from the stub domain's vCPU 0): its
//! netfront's TX queue and ring, netback's grant copies and CPU in the backend domain
//! ([`TraceEvent::NetbackWork`]), then the bridge, as for any vif.
//!
//! RX: a frame from the bridge for the card (`CoreInput::NetDeliver` to the guest's nic)
//! takes the reverse way: with a stub domain it enters netback's RX queue of the stub
//! domain's vif and reaches the stub domain's netfront through its RX ring; then the
//! device model's ioreqs (`io.emulated_nic_rx_ioreqs` per frame: the driver's interrupt
//! handling, plus `io.netfront_pkt_ns` in a stub domain), then the card's interrupt wakes
//! the guest's vCPU 0, whose driver makes those register accesses, each a VM exit, and
//! EOIs the interrupt: CPU work on that vCPU (`io.emulated_nic_rx_ioreqs` ×
//! `cpu.hvm_exit_rtt_ns` + `cpu.virq_eoi_ns` per frame, traced as
//! [`TraceEvent::IoreqWork`] with the guest as its own `dm`); when it ran, the driver hands
//! the frame up (`GuestNotice::NetReceived`). (TX's exits are charged by the guest's
//! workload model, `sim/src/guest/modes.rs`.)
//!
//! Follows tools/libs/light/libxl_dm.c (`-netdev type=tap,ifname=vif%d.%d-emu` for every
//! `LIBXL_NIC_TYPE_VIF_IOEMU` nic; `libxl__dm_vifs_from_hvm_guest_config`: the stub domain
//! gets each of the guest's nics as a PV vif of its own, `toolstack/stubdom.rs`),
//! libxl_nic.c (an HVM guest's nics default to `vif_ioemu`), and xen/arch/x86/hvm/ioreq.c
//! as `ioreq.rs` does.
//!
//! # Invariants
//! - Held frames belong to a TX batch whose last frame has not arrived yet; at most
//!   [`HELD_FRAMES_MAX`] per NIC.
//! - Every queued NIC job carries at least one frame (checked with the ioreq checks).
//! - A frame moves only while its card is on the bridge (else it is dropped as
//!   `NoDevice`); the stub domain's vif drops and queues as any vif.
//!
//! xensim differs, on purpose: the device model's ioreqs for a frame are paid before the
//! frame moves (the completion's accesses included), and for a received frame the
//! guest's exits after them rather than interleaved; QEMU's own CPU in the stub domain is
//! charged as one item per batch with its netfront's; `type=vif` on a guest without PV
//! drivers (no usable NIC on real Xen) is treated as the emulated NIC.

use alloc::vec::Vec;

use super::ioreq::{IoreqJob, IoreqWork};
use super::net_glue::{NetDropReason, VifKey};
use super::Hypervisor;
use crate::ids::{DomId, VcpuId, VcpuRef};
use crate::io::vif::NetPacket;
use crate::platform::{NetFrame, Platform};
use crate::toolstack::ops::GuestNotice;
use crate::trace::TraceEvent;

/// Most frames held for one emulated NIC while its TX batch is handed over (the size of
/// netfront's TX queue stands in for the emulated card's TX ring).
pub const HELD_FRAMES_MAX: usize = 256;

/// Where a NIC job's frames are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NicStage {
    /// QEMU handles the driver's register accesses (ioreqs on the device model's vCPU).
    DeviceModel,
    /// RX only: the guest's vCPU 0 takes the card's interrupt, its driver's register
    /// accesses exit and it EOIs.
    GuestIrq,
}

/// Frames of one emulated NIC on their way through the device model.
#[derive(Clone, Debug)]
pub(crate) struct NicJob {
    pub(crate) devid: u32,
    pub(crate) frames: Vec<NetPacket>,
    /// Guest → bridge (else bridge → guest).
    pub(crate) tx: bool,
    pub(crate) stage: NicStage,
}

pub(super) fn vcpu0(dom: DomId) -> VcpuRef {
    VcpuRef {
        dom,
        vcpu: VcpuId::new(0).expect("vCPU 0"),
    }
}

impl Hypervisor {
    /// True when `dom`'s NICs are QEMU's emulated ones (the guest has no PV drivers).
    pub(crate) fn nic_emulated(&self, dom: DomId) -> bool {
        self.disks_emulated(dom)
    }

    /// `NetSend` from an emulated-NIC guest: hold the frame; at the batch's last one, the
    /// batch goes to the device model.
    pub(crate) fn emunic_send<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        devid: u32,
        packet: NetPacket,
        last: bool,
        p: &mut P,
    ) {
        let key = (vcpu.dom, devid);
        let held = self.ioreq.nic_held.entry(key).or_default();
        if held.len() >= HELD_FRAMES_MAX {
            self.net_dropped(key, NetDropReason::TxQueueFull, p);
        } else {
            held.push(packet);
        }
        if !last {
            return;
        }
        let frames = self.ioreq.nic_held.remove(&key).unwrap_or_default();
        if frames.is_empty() {
            return;
        }
        let job = NicJob {
            devid,
            frames,
            tx: true,
            stage: NicStage::DeviceModel,
        };
        self.emunic_queue(vcpu, job, p);
    }

    /// `NetDeliver` for an emulated NIC: with a stub domain the frame enters netback's RX
    /// queue of the stub domain's vif; else QEMU in dom0 reads it from its tap.
    pub(crate) fn emunic_deliver<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        packet: NetPacket,
        p: &mut P,
    ) {
        if !self.ioreq.cards.contains_key(&key) {
            return self.net_dropped(key, NetDropReason::NoDevice, p);
        }
        if let Some(stub) = self.ioreq.stubdom_of.get(&key.0).copied() {
            return self.net_deliver((stub, key.1), packet, p);
        }
        self.emunic_from_device_model(key, packet, p);
    }

    /// QEMU's card takes a received frame (from its tap, or from the stub domain's
    /// netfront): the device model's ioreqs come next.
    pub(super) fn emunic_from_device_model<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        packet: NetPacket,
        p: &mut P,
    ) {
        let job = NicJob {
            devid: key.1,
            frames: alloc::vec![packet],
            tx: false,
            stage: NicStage::DeviceModel,
        };
        self.emunic_queue(vcpu0(key.0), job, p);
    }

    /// Queues `job`'s current stage as CPU work where it runs; drops its frames when the
    /// card is not on a bridge, its device model is gone or the queue is full.
    fn emunic_queue<P: Platform + ?Sized>(&mut self, vcpu: VcpuRef, job: NicJob, p: &mut P) {
        let key = (vcpu.dom, job.devid);
        if !self.ioreq.cards.contains_key(&key) {
            return self.emunic_drop(key, &job, NetDropReason::NoDevice, p);
        }
        let count = u32::try_from(job.frames.len()).unwrap_or(u32::MAX);
        let (on, work_ns) = match job.stage {
            NicStage::DeviceModel => self.device_model_nic_work(vcpu.dom, job.tx, count),
            NicStage::GuestIrq => (vcpu0(vcpu.dom), self.guest_irq_cost_ns(count)),
        };
        if !self.is_alive(on.dom) || !self.ioreq_has_room() {
            let why = match job.tx {
                true => NetDropReason::TxQueueFull,
                false => NetDropReason::RxRingFull,
            };
            return self.emunic_drop(key, &job, why, p);
        }
        if job.stage == NicStage::GuestIrq && work_ns == 0 {
            // Nothing to charge: the interrupt still wakes the vCPU.
            let _ = self.vcpu_wake_event(on, p);
        }
        let item = self.ioreq_next_id();
        p.trace(&TraceEvent::IoreqWork {
            item,
            dom: vcpu.dom,
            dm: on.dom,
            ios: count,
            work_ns,
        });
        let job = IoreqJob::Nic(job);
        self.ioreq_enqueue(item, on, work_ns, IoreqWork { vcpu, job }, p);
    }

    /// The device model's vCPU and its CPU for `frames` frames of `guest`'s card: the
    /// ioreq round trips, and in a stub domain its netfront's per-frame work.
    fn device_model_nic_work(&self, guest: DomId, tx: bool, frames: u32) -> (VcpuRef, i64) {
        let c = &self.costs;
        let (dm_vcpu, rtt_ns) = self.device_model_of(guest);
        let per_frame = match tx {
            true => c.emulated_nic_tx_ioreqs,
            false => c.emulated_nic_rx_ioreqs,
        };
        let mut frame_ns = rtt_ns.max(0).saturating_mul(i64::from(per_frame));
        if self.ioreq.stubdom_of.contains_key(&guest) {
            frame_ns = frame_ns.saturating_add(c.netfront_pkt_ns.max(0));
        }
        (dm_vcpu, frame_ns.saturating_mul(i64::from(frames)))
    }

    /// The guest vCPU's CPU for `frames` received frames on an emulated NIC: per frame,
    /// the driver's `io.emulated_nic_rx_ioreqs` register accesses (one VM exit each) and
    /// the interrupt's EOI.
    fn guest_irq_cost_ns(&self, frames: u32) -> i64 {
        let c = &self.costs;
        let exits_ns = c
            .hvm_exit_rtt_ns
            .max(0)
            .saturating_mul(i64::from(c.emulated_nic_rx_ioreqs));
        exits_ns
            .saturating_add(c.virq_eoi_ns.max(0))
            .saturating_mul(i64::from(frames))
    }

    /// A stage of `job` has run: the next stage, or the frames leave the device model.
    pub(super) fn emunic_stage_done<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        mut job: NicJob,
        p: &mut P,
    ) {
        if !self.is_alive(vcpu.dom) {
            return;
        }
        let stub = self.ioreq.stubdom_of.get(&vcpu.dom).copied();
        match (job.tx, job.stage, stub) {
            (true, _, Some(stub)) => self.emunic_to_stub_vif(stub, &job, p),
            (true, _, None) => self.emunic_transmit(vcpu.dom, &job, p),
            (false, NicStage::DeviceModel, _) => {
                // QEMU raises the card's interrupt (XEN_DMOP_set_isa_irq_level): Xen injects
                // it into vCPU 0, which wakes (as netfront's event channel wakes a PV
                // guest) and runs the driver's handler.
                job.stage = NicStage::GuestIrq;
                self.emunic_queue(vcpu, job, p);
            }
            (false, NicStage::GuestIrq, _) => {
                for packet in job.frames {
                    let notice = GuestNotice::NetReceived {
                        devid: job.devid,
                        packet,
                    };
                    p.guest_notify(vcpu.dom, notice);
                }
            }
        }
    }

    /// QEMU in the stub domain writes the frames to its nic: the stub domain's netfront
    /// takes them as one batch (its drops count against the guest's nic, `emunic_port.rs`).
    fn emunic_to_stub_vif<P: Platform + ?Sized>(&mut self, stub: DomId, job: &NicJob, p: &mut P) {
        let count = job.frames.len();
        for (index, packet) in job.frames.iter().enumerate() {
            let last = index + 1 == count;
            self.net_send(vcpu0(stub), job.devid, *packet, last, p);
        }
    }

    /// QEMU's tap hands the frames to the bridge its card is on.
    fn emunic_transmit<P: Platform + ?Sized>(&mut self, dom: DomId, job: &NicJob, p: &mut P) {
        let key = (dom, job.devid);
        let Some(back_dom) = self.ioreq.cards.get(&key).copied() else {
            return self.emunic_drop(key, job, NetDropReason::NoDevice, p);
        };
        for packet in &job.frames {
            p.net_transmit(NetFrame {
                back_dom,
                dom,
                devid: job.devid,
                packet: *packet,
            });
        }
    }

    fn emunic_drop<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        job: &NicJob,
        why: NetDropReason,
        p: &mut P,
    ) {
        for _ in &job.frames {
            self.net_dropped(key, why, p);
        }
    }
}
