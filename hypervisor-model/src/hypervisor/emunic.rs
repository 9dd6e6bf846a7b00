//! Emulated NICs of HVM guests without PV drivers (`xen_platform_pci = 0`): the guest's
//! NIC driver (rtl8139, libxl's default `model`, or e1000) programs QEMU's emulated card
//! with port-I/O and MMIO accesses that Xen forwards as ioreqs to the device model, QEMU
//! in dom0 or in the guest's stub domain; QEMU moves the frames between the card and its
//! tap `vif<dom>.<devid>-emu` on the vif's bridge.
//!
//! TX: a guest frame (`CoreInput::NetSend`) is held until its batch's last frame; the
//! batch becomes CPU work on the device model's vCPU (`io.emulated_nic_tx_ioreqs` ×
//! the ioreq round trip per frame, as the disk's in `ioreq.rs`), traced as
//! [`TraceEvent::IoreqWork`]. QEMU in dom0 then writes the frames to its tap: they enter
//! the bridge ([`Platform::net_transmit`]) with no netback work. QEMU in a stub domain
//! sends them through the stub domain's own netfront to netback in the vif's backend
//! domain first ([`TraceEvent::NetbackWork`], `io.netback_tx_pkt_ns` per frame).
//!
//! RX: a frame from the bridge for the vif (`CoreInput::NetDeliver`) takes the reverse
//! way: with a stub domain, netback's RX work in the backend (`io.netback_rx_pkt_ns`),
//! then the device model's ioreqs (`io.emulated_nic_rx_ioreqs` per frame: the driver's
//! interrupt handling), then the card's interrupt wakes the guest's vCPU 0, whose driver
//! makes those register accesses, each a VM exit, and EOIs the interrupt: CPU work on
//! that vCPU (`io.emulated_nic_rx_ioreqs` × `cpu.hvm_exit_rtt_ns` + `cpu.virq_eoi_ns` per
//! frame, traced as [`TraceEvent::IoreqWork`] with the guest as its own `dm`); when it ran,
//! the driver hands the frame up (`GuestNotice::NetReceived`). (TX's exits are charged by
//! the guest's workload model, `sim/src/guest/modes.rs`.)
//!
//! Follows tools/libs/light/libxl_dm.c (`-netdev type=tap,ifname=vif%d.%d-emu` for every
//! `LIBXL_NIC_TYPE_VIF_IOEMU` nic; `libxl__dm_vifs_from_hvm_guest_config`: the stub domain
//! gets each of the guest's nics as a PV vif of its own), libxl_nic.c (an HVM guest's nics
//! default to `vif_ioemu`), and xen/arch/x86/hvm/ioreq.c as `ioreq.rs` does.
//!
//! # Invariants
//! - Held frames belong to a TX batch whose last frame has not arrived yet; at most
//!   [`HELD_FRAMES_MAX`] per NIC.
//! - Every queued NIC job carries at least one frame (checked with the ioreq checks).
//!
//! xensim differs, on purpose: the emulated NIC joins the bridge with the MAC of the
//! guest's vif once that vif's XenBus handshake connects (libxl writes one vif entry for
//! both the emulated and the PV NIC); its frames never use the guest's vif rings. The stub
//! domain's own vif is charged as netback CPU on the guest vif's backend (its rings and
//! grants are not modelled); the device model's ioreqs for a frame are paid before the
//! frame moves (the completion's accesses included), and for a received frame the
//! guest's exits after them rather than interleaved; `type=vif` on a guest without PV
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
    /// The stub domain's vif carries the frames to or from the bridge (netback's CPU on
    /// the backend's vCPU 0).
    StubVif,
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

fn vcpu0(dom: DomId) -> VcpuRef {
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

    /// `NetDeliver` for an emulated NIC: the frame goes to the guest through the stub
    /// domain's vif (if any) and the device model.
    pub(crate) fn emunic_deliver<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        packet: NetPacket,
        p: &mut P,
    ) {
        let stage = if self.ioreq.stubdom_of.contains_key(&key.0) {
            NicStage::StubVif
        } else {
            NicStage::DeviceModel
        };
        let job = NicJob {
            devid: key.1,
            frames: alloc::vec![packet],
            tx: false,
            stage,
        };
        self.emunic_queue(vcpu0(key.0), job, p);
    }

    /// Queues `job`'s current stage as CPU work where it runs; drops its frames when the
    /// NIC is not on a bridge, its device model is gone or the queue is full.
    fn emunic_queue<P: Platform + ?Sized>(&mut self, vcpu: VcpuRef, job: NicJob, p: &mut P) {
        let key = (vcpu.dom, job.devid);
        let back_dom = self.net.paths.get(&key).map(|path| path.params.back_dom);
        let Some(back_dom) = back_dom else {
            return self.emunic_drop(key, &job, NetDropReason::NoDevice, p);
        };
        let count = u32::try_from(job.frames.len()).unwrap_or(u32::MAX);
        let (on, work_ns) = match job.stage {
            NicStage::DeviceModel => {
                let (dm_vcpu, rtt_ns) = self.device_model_of(vcpu.dom);
                let per_frame = match job.tx {
                    true => self.costs.emulated_nic_tx_ioreqs,
                    false => self.costs.emulated_nic_rx_ioreqs,
                };
                let ioreqs = i64::from(per_frame).saturating_mul(i64::from(count));
                (dm_vcpu, rtt_ns.max(0).saturating_mul(ioreqs))
            }
            NicStage::StubVif => (vcpu0(back_dom), self.stub_vif_cost_ns(&job)),
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
        p.trace(&match job.stage {
            NicStage::DeviceModel | NicStage::GuestIrq => TraceEvent::IoreqWork {
                item,
                dom: vcpu.dom,
                dm: on.dom,
                ios: count,
                work_ns,
            },
            NicStage::StubVif => TraceEvent::NetbackWork {
                item,
                dom: key.0,
                devid: key.1,
                queue: None,
                rx: !job.tx,
                packets: count,
                work_ns,
            },
        });
        let job = IoreqJob::Nic(job);
        self.ioreq_enqueue(item, on, work_ns, IoreqWork { vcpu, job }, p);
    }

    /// netback's CPU for the stub domain's vif carrying `job`'s frames (grant copies, as
    /// `net_glue.rs` charges a guest's vif).
    fn stub_vif_cost_ns(&self, job: &NicJob) -> i64 {
        let c = &self.costs;
        let per_frame_ns = match job.tx {
            true => c.netback_tx_pkt_ns,
            false => c.netback_rx_pkt_ns,
        };
        job.frames.iter().fold(0i64, |sum, frame| {
            let extra = i64::from(frame.slots().saturating_sub(1));
            sum.saturating_add(per_frame_ns.max(0))
                .saturating_add(c.gnttab_copy_page_ns.max(0).saturating_mul(extra))
        })
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

    /// A stage of `job` has run: the next stage, or the frames arrive.
    pub(super) fn emunic_stage_done<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        mut job: NicJob,
        p: &mut P,
    ) {
        if !self.is_alive(vcpu.dom) {
            return;
        }
        let stub = self.ioreq.stubdom_of.contains_key(&vcpu.dom);
        match (job.tx, job.stage) {
            (true, NicStage::DeviceModel) if stub => {
                job.stage = NicStage::StubVif;
                self.emunic_queue(vcpu, job, p);
            }
            (true, _) => self.emunic_transmit(vcpu.dom, &job, p),
            (false, NicStage::StubVif) => {
                job.stage = NicStage::DeviceModel;
                self.emunic_queue(vcpu, job, p);
            }
            (false, NicStage::DeviceModel) => {
                // QEMU raises the card's interrupt (XEN_DMOP_set_isa_irq_level): Xen injects
                // it into vCPU 0, which wakes (as netfront's event channel wakes a PV
                // guest) and runs the driver's handler.
                job.stage = NicStage::GuestIrq;
                self.emunic_queue(vcpu, job, p);
            }
            (false, NicStage::GuestIrq) => {
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

    /// QEMU's tap (or the stub domain's netback) hands the frames to the bridge.
    fn emunic_transmit<P: Platform + ?Sized>(&mut self, dom: DomId, job: &NicJob, p: &mut P) {
        let key = (dom, job.devid);
        let Some(back_dom) = self.net.paths.get(&key).map(|path| path.params.back_dom) else {
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
