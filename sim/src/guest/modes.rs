//! What a guest pays for being PV, HVM (no PV drivers), PVHVM or PVH: the per-mode cost
//! model of `specs/cost-model.md` §1.3, resolved from the cost table (§1.2, §3.1, §3.3,
//! §3.4) into the guest-side costs the workload models charge to the guest's vCPU.
//!
//! | Mechanism (default ns) | PV | HVM, no PV drivers | PVHVM | PVH |
//! |---|---|---|---|---|
//! | Hypercall | pv (300) | VM exit (585) | hvm (585) | hvm |
//! | Guest syscall, extra | bounce (250) | 0 | 0 | 0 |
//! | Page-table write | mmu_update (150) | 0 (HAP) | 0 | 0 |
//! | TLB miss | native (25) | 2-D (× 2000 ‰) | 2-D | 2-D |
//! | Timer/interrupt | upcall (300) | vLAPIC (1500) + EOI (697) | upcall + EOI | upcall + EOI |
//! | Disk I/O, guest | B + pv + upcall | B + 8 exits + EOI | B + hvm + upcall + EOI | as PVHVM |
//! | Disk I/O, elsewhere | blkback | 8 ioreqs to QEMU, then blkback | blkback | blkback |
//!
//! Keys: `cpu.pv_hypercall_rtt_ns`, `cpu.hvm_hypercall_rtt_ns`, `cpu.hvm_exit_rtt_ns`,
//! `cpu.pv_syscall_bounce_ns`, `cpu.pv_mmu_update_ns`, `mem.tlb_miss_native_ns`,
//! `mem.tlb_miss_2d_permille`, `io.evtchn_upcall_ns`, `cpu.timer_irq_to_guest_ns`,
//! `cpu.virq_eoi_ns`; B is the guest's block driver, `io.blkfront_req_ns` (1500); the 8 is
//! `io.emulated_disk_ioreqs`; an ioreq to QEMU costs `io.ioreq_dom0_rtt_ns` (25000) on a
//! dom0 vCPU, or `io.ioreq_stubdom_rtt_ns` (15000) on the stub domain's vCPU.
//!
//! The device-model side is charged by the core
//! (`hypervisor-model/src/hypervisor/ioreq.rs`); this file covers the guest's own vCPU.
//! What is charged today is the disk I/O rows (both columns). The syscall, page-table,
//! TLB and timer rows are the documented model for workloads that have such events; no
//! workload kind generates them yet, so they are not charged (and their keys not read).
//!
//! # Invariants
//! - A charge is a saturating sum of table rows (never wraps on scenario values).
//! - An HVM guest without the platform PCI device is the only mode with emulated disks.
//!
//! xensim differs, on purpose: a batch's notification hypercall and each completion's
//! upcall (and EOI) are charged with the I/O's submission, per I/O, rather than once per
//! ring push and at the interrupt; the totals are the same for a batch of one.

use std::collections::BTreeMap;

use hypervisor_model::toolstack::config::{DomainConfig, GuestType};

use crate::run::host::cost_ns;
use crate::scenario::model::CostValue;

/// How a guest reaches Xen and its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMode {
    /// Paravirtualised (`type = "pv"`).
    Pv,
    /// HVM with the platform PCI device: PV drivers over event channels (`type = "hvm"`).
    Pvhvm,
    /// HVM with `xen_platform_pci = 0`: emulated devices through the device model.
    HvmEmulated,
    /// PVH (`type = "pvh"`): no device model at all.
    Pvh,
}

impl GuestMode {
    /// The mode an xl.cfg selects.
    pub fn of(config: &DomainConfig) -> GuestMode {
        match config.guest_type {
            GuestType::Pv => GuestMode::Pv,
            GuestType::Pvh => GuestMode::Pvh,
            GuestType::Hvm if config.disks_emulated() => GuestMode::HvmEmulated,
            GuestType::Hvm => GuestMode::Pvhvm,
        }
    }
}

/// The cost-table rows the modes differ by, ns (‰ where named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeCosts {
    pv_hypercall_ns: u64,
    hvm_hypercall_ns: u64,
    hvm_exit_ns: u64,
    evtchn_upcall_ns: u64,
    virq_eoi_ns: u64,
    blkfront_req_ns: u64,
    emulated_disk_ioreqs: u64,
}

/// `io.emulated_disk_ioreqs` default (E): an IDE/AHCI DMA command is programmed and
/// completed with about eight port accesses QEMU handles (sector count, LBA bytes,
/// device, command; bus-master PRD address and start; status read and interrupt ack).
pub const EMULATED_DISK_IOREQS_DEFAULT: u64 = 8;

impl ModeCosts {
    /// The rows from a host's merged cost table (defaults: `specs/cost-model.md`).
    pub fn from_table(costs: &BTreeMap<String, CostValue>) -> ModeCosts {
        ModeCosts {
            pv_hypercall_ns: cost_ns(costs, "cpu.pv_hypercall_rtt_ns", 300),
            hvm_hypercall_ns: cost_ns(costs, "cpu.hvm_hypercall_rtt_ns", 585),
            hvm_exit_ns: cost_ns(costs, "cpu.hvm_exit_rtt_ns", 585),
            evtchn_upcall_ns: cost_ns(costs, "io.evtchn_upcall_ns", 300),
            virq_eoi_ns: cost_ns(costs, "cpu.virq_eoi_ns", 697),
            blkfront_req_ns: cost_ns(
                costs,
                "io.blkfront_req_ns",
                crate::run::host::BLKFRONT_REQ_NS_DEFAULT,
            ),
            emulated_disk_ioreqs: cost_ns(
                costs,
                "io.emulated_disk_ioreqs",
                EMULATED_DISK_IOREQS_DEFAULT,
            ),
        }
    }

    /// Every row, in declaration order (the cost-table hash).
    pub fn hash_words(&self) -> [u64; 7] {
        [
            self.pv_hypercall_ns,
            self.hvm_hypercall_ns,
            self.hvm_exit_ns,
            self.evtchn_upcall_ns,
            self.virq_eoi_ns,
            self.blkfront_req_ns,
            self.emulated_disk_ioreqs,
        ]
    }

    /// The guest vCPU's CPU per disk I/O: its block driver, the notification (hypercall
    /// or port-I/O exits) and the completion interrupt.
    pub fn disk_io_guest_ns(&self, mode: GuestMode) -> u64 {
        let parts = match mode {
            GuestMode::Pv => [self.pv_hypercall_ns, self.evtchn_upcall_ns, 0],
            GuestMode::HvmEmulated => [
                self.emulated_disk_ioreqs.saturating_mul(self.hvm_exit_ns),
                self.virq_eoi_ns,
                0,
            ],
            GuestMode::Pvhvm | GuestMode::Pvh => [
                self.hvm_hypercall_ns,
                self.evtchn_upcall_ns,
                self.virq_eoi_ns,
            ],
        };
        parts
            .iter()
            .fold(self.blkfront_req_ns, |sum, ns| sum.saturating_add(*ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ModeCosts {
        ModeCosts::from_table(&BTreeMap::new())
    }

    #[test]
    fn emulated_disk_io_costs_the_guest_more_than_pv_drivers() {
        let c = defaults();
        // 1500 + 8 x 585 + 697 against 1500 + 300 + 300 and 1500 + 585 + 300 + 697.
        assert_eq!(c.disk_io_guest_ns(GuestMode::HvmEmulated), 6_877);
        assert_eq!(c.disk_io_guest_ns(GuestMode::Pv), 2_100);
        assert_eq!(c.disk_io_guest_ns(GuestMode::Pvhvm), 3_082);
        assert_eq!(c.disk_io_guest_ns(GuestMode::Pvh), 3_082);
    }

    #[test]
    fn mode_follows_type_and_platform_pci() {
        let mut config = DomainConfig::with_defaults("g".to_string());
        assert_eq!(GuestMode::of(&config), GuestMode::Pv);
        config.guest_type = GuestType::Hvm;
        assert_eq!(GuestMode::of(&config), GuestMode::Pvhvm);
        config.device_model.platform_pci = false;
        assert_eq!(GuestMode::of(&config), GuestMode::HvmEmulated);
    }
}
