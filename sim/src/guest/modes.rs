//! What a guest pays for being PV, HVM (no PV drivers), PVHVM or PVH: the per-mode cost
//! model of `specs/cost-model.md` §1.3, resolved from the cost table (§1.2, §2.1, §3.1,
//! §3.3, §3.4) into the guest-side costs the workload models charge to the guest's vCPU.
//!
//! | Mechanism (default ns) | PV | HVM, no PV drivers | PVHVM | PVH |
//! |---|---|---|---|---|
//! | Hypercall | pv (300) | VM exit (585) | hvm (585) | hvm |
//! | Guest syscall, extra | bounce (250) | 0 | 0 | 0 |
//! | Page-table write, extra | mmu_update (150) | 0 (HAP) | 0 | 0 |
//! | TLB miss, extra | 0 (native walk) | 2-D − native (25) | 2-D − native | 2-D − native |
//! | Timer wake | T (1500) + upcall (300) | T + EOI (697) | T + upcall + EOI | as PVHVM |
//! | Disk I/O, guest | B + pv + upcall | B + 8 exits + EOI | B + hvm + upcall + EOI | as PVHVM |
//! | Disk I/O, elsewhere | blkback | 8 ioreqs to QEMU, then blkback | blkback | blkback |
//! | NIC TX frame, guest | N | N + 4 exits + EOI | N | N |
//! | NIC frame, elsewhere | netback | 4 (TX) / 6 (RX) ioreqs to QEMU | netback | netback |
//!
//! Keys: `cpu.pv_hypercall_rtt_ns`, `cpu.hvm_hypercall_rtt_ns`, `cpu.hvm_exit_rtt_ns`,
//! `cpu.pv_syscall_bounce_ns`, `cpu.pv_mmu_update_ns`, `mem.tlb_miss_native_ns`,
//! `mem.tlb_miss_2d_permille`, `io.evtchn_upcall_ns`, `cpu.timer_irq_to_guest_ns` (T),
//! `cpu.virq_eoi_ns`; B is the guest's block driver, `io.blkfront_req_ns` (1500); N the
//! guest's NIC driver per frame, `io.netfront_pkt_ns` (300, netfront's or the emulated
//! card driver's); the 8 is `io.emulated_disk_ioreqs`, the 4 and 6
//! `io.emulated_nic_tx_ioreqs` and `io.emulated_nic_rx_ioreqs`; an ioreq to QEMU costs
//! `io.ioreq_dom0_rtt_ns` (25000) on a dom0 vCPU, or `io.ioreq_stubdom_rtt_ns` (15000) on
//! the stub domain's vCPU, charged by the core (`hypervisor/ioreq.rs`, `emunic.rs`).
//!
//! The syscall, page-table, TLB and timer rows are charged to workloads with an `os`
//! sub-table (`scenario/workload_os.rs`: `syscall_rate`, `pt_update_rate`,
//! `tlb_miss_rate`, events per second of native run time): the first three stretch the
//! vCPU's run time by `1 + Σ rate × extra ns / 10^9` ([`ModeCosts::os_stretch_ppm`]);
//! each timer wake of the workload (bursty think, periodic release, idle tick, io think)
//! adds the timer row to the run that follows ([`ModeCosts::timer_wake_ns`]). Without
//! an `os` sub-table none of these rows is charged (nothing was charged for timer wakes
//! before either, so no run changes unless it asks for the guest-OS rows).
//!
//! # Invariants
//! - A charge is a saturating sum of table rows (never wraps on scenario values).
//! - An HVM guest without the platform PCI device is the only mode with emulated disks
//!   and NICs.
//! - A stretch is ≥ 10^6 ppm (the mode never makes work faster than native).
//!
//! xensim differs, on purpose: a batch's notification hypercall and each completion's
//! upcall (and EOI) are charged with the I/O's submission, per I/O, rather than once per
//! ring push and at the interrupt; the totals are the same for a batch of one. A received frame on
//! an emulated NIC is charged in the core instead (`hypervisor/emunic.rs`: its RX exits and
//! EOI run on the guest's vCPU 0 before the frame reaches the guest's stack).

use std::collections::BTreeMap;

use hypervisor_model::toolstack::config::{DomainConfig, GuestType};

use crate::run::host::cost_ns;
use crate::scenario::model::{CostValue, OsRates};

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
    emulated_nic_tx_ioreqs: u64,
    pv_syscall_bounce_ns: u64,
    pv_mmu_update_ns: u64,
    tlb_miss_native_ns: u64,
    tlb_miss_2d_permille: u64,
    timer_irq_to_guest_ns: u64,
}

/// `io.emulated_disk_ioreqs` default (E): an IDE/AHCI DMA command is programmed and
/// completed with about eight port accesses QEMU handles (sector count, LBA bytes,
/// device, command; bus-master PRD address and start; status read and interrupt ack).
pub const EMULATED_DISK_IOREQS_DEFAULT: u64 = 8;

/// `io.emulated_nic_tx_ioreqs` default (E): Linux's 8139too sends a frame on QEMU's
/// rtl8139 (libxl's default `model`) with one `TxStatus` doorbell write; its TX-done
/// interrupt costs an `IntrStatus` read, the `IntrStatus` ack write and a `TxStatus`
/// read. (e1000 under e1000e-style drivers is similar: a `TDT` write, then `ICR` read,
/// `IMC`/`IMS` writes.) One frame per interrupt: an upper estimate when frames batch.
pub const EMULATED_NIC_TX_IOREQS_DEFAULT: u64 = 4;

/// `io.emulated_nic_rx_ioreqs` default (E): a received frame's interrupt costs an
/// `IntrStatus` read, an `IntrMask` write (NAPI masks), the `IntrStatus` ack, a `ChipCmd`
/// read (`RxBufEmpty`), the `RxBufPtr` (CAPR) write and the `IntrMask` write that unmasks.
pub const EMULATED_NIC_RX_IOREQS_DEFAULT: u64 = 6;

/// ppm of "native speed".
const PPM: u64 = 1_000_000;

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
            emulated_nic_tx_ioreqs: cost_ns(
                costs,
                "io.emulated_nic_tx_ioreqs",
                EMULATED_NIC_TX_IOREQS_DEFAULT,
            ),
            pv_syscall_bounce_ns: cost_ns(costs, "cpu.pv_syscall_bounce_ns", 250),
            pv_mmu_update_ns: cost_ns(costs, "cpu.pv_mmu_update_ns", 150),
            tlb_miss_native_ns: cost_ns(costs, "mem.tlb_miss_native_ns", 25),
            tlb_miss_2d_permille: cost_ns(costs, "mem.tlb_miss_2d_permille", 2_000),
            timer_irq_to_guest_ns: cost_ns(costs, "cpu.timer_irq_to_guest_ns", 1_500),
        }
    }

    /// Every row, in declaration order (the cost-table hash).
    pub fn hash_words(&self) -> [u64; 13] {
        [
            self.pv_hypercall_ns,
            self.hvm_hypercall_ns,
            self.hvm_exit_ns,
            self.evtchn_upcall_ns,
            self.virq_eoi_ns,
            self.blkfront_req_ns,
            self.emulated_disk_ioreqs,
            self.emulated_nic_tx_ioreqs,
            self.pv_syscall_bounce_ns,
            self.pv_mmu_update_ns,
            self.tlb_miss_native_ns,
            self.tlb_miss_2d_permille,
            self.timer_irq_to_guest_ns,
        ]
    }

    /// The guest vCPU's CPU per transmitted frame: its NIC driver (`driver_ns`,
    /// `io.netfront_pkt_ns`) and, on an emulated NIC, the exits of the driver's register
    /// accesses and the completion interrupt's EOI.
    pub fn net_frame_guest_ns(&self, mode: GuestMode, driver_ns: u64) -> u64 {
        match mode {
            GuestMode::HvmEmulated => driver_ns
                .saturating_add(self.emulated_nic_tx_ioreqs.saturating_mul(self.hvm_exit_ns))
                .saturating_add(self.virq_eoi_ns),
            GuestMode::Pv | GuestMode::Pvhvm | GuestMode::Pvh => driver_ns,
        }
    }

    /// The extra ns over native of one user syscall, one page-table write and one TLB miss.
    fn os_event_ns(&self, mode: GuestMode) -> [u64; 3] {
        match mode {
            GuestMode::Pv => [self.pv_syscall_bounce_ns, self.pv_mmu_update_ns, 0],
            GuestMode::HvmEmulated | GuestMode::Pvhvm | GuestMode::Pvh => {
                let walk_ns = self
                    .tlb_miss_native_ns
                    .saturating_mul(self.tlb_miss_2d_permille)
                    / 1_000;
                [0, 0, walk_ns.saturating_sub(self.tlb_miss_native_ns)]
            }
        }
    }

    /// How much longer a vCPU runs for its work in `mode` at `rates` (ppm, ≥ 10^6): each
    /// second of native run time has `rate` events of each row, each costing its extra ns.
    pub fn os_stretch_ppm(&self, mode: GuestMode, rates: &OsRates) -> u64 {
        let per_s = [
            rates.syscalls_per_s,
            rates.pt_updates_per_s,
            rates.tlb_misses_per_s,
        ];
        let extra_ns_per_s = per_s
            .iter()
            .zip(self.os_event_ns(mode))
            .fold(0u64, |sum, (rate, ns)| {
                sum.saturating_add(rate.saturating_mul(ns))
            });
        // ns per 10^9 ns of native run time, as ppm: ÷ 1000 (rounded up).
        PPM.saturating_add(extra_ns_per_s.div_ceil(1_000))
    }

    /// The guest vCPU's CPU for one timer wake: the timer interrupt's injection and its
    /// delivery (an event-channel upcall, a vLAPIC EOI, or both).
    pub fn timer_wake_ns(&self, mode: GuestMode) -> u64 {
        let delivery = match mode {
            GuestMode::Pv => [self.evtchn_upcall_ns, 0],
            GuestMode::HvmEmulated => [self.virq_eoi_ns, 0],
            GuestMode::Pvhvm | GuestMode::Pvh => [self.evtchn_upcall_ns, self.virq_eoi_ns],
        };
        delivery.iter().fold(self.timer_irq_to_guest_ns, |sum, ns| {
            sum.saturating_add(*ns)
        })
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
    fn emulated_nic_frame_costs_the_guest_its_exits() {
        let c = defaults();
        // netfront's 300 against 300 + 4 exits of 585 + an EOI of 697.
        assert_eq!(c.net_frame_guest_ns(GuestMode::Pvhvm, 300), 300);
        assert_eq!(c.net_frame_guest_ns(GuestMode::HvmEmulated, 300), 3_337);
    }

    #[test]
    fn pv_pays_syscalls_and_page_table_writes_hvm_pays_tlb_misses() {
        let c = defaults();
        // 400k syscalls x 250 + 300k PTE writes x 150 = 145 ms per s: +14.5% under PV.
        let rates = OsRates {
            syscalls_per_s: 400_000,
            pt_updates_per_s: 300_000,
            tlb_misses_per_s: 1_000_000,
        };
        assert_eq!(c.os_stretch_ppm(GuestMode::Pv, &rates), 1_145_000);
        // 1M TLB misses x (50 - 25) = 25 ms per s: +2.5% with 2-D walks.
        assert_eq!(c.os_stretch_ppm(GuestMode::Pvhvm, &rates), 1_025_000);
        assert_eq!(c.os_stretch_ppm(GuestMode::Pvh, &rates), 1_025_000);
        assert_eq!(c.os_stretch_ppm(GuestMode::HvmEmulated, &rates), 1_025_000);
    }

    #[test]
    fn no_os_events_is_native_speed() {
        let c = defaults();
        let none = OsRates::default();
        assert_eq!(c.os_stretch_ppm(GuestMode::Pv, &none), PPM);
        assert_eq!(c.os_stretch_ppm(GuestMode::Pvh, &none), PPM);
    }

    #[test]
    fn timer_wake_is_delivered_per_mode() {
        let c = defaults();
        // 1500 + upcall 300; 1500 + EOI 697; 1500 + 300 + 697.
        assert_eq!(c.timer_wake_ns(GuestMode::Pv), 1_800);
        assert_eq!(c.timer_wake_ns(GuestMode::HvmEmulated), 2_197);
        assert_eq!(c.timer_wake_ns(GuestMode::Pvhvm), 2_497);
        assert_eq!(c.timer_wake_ns(GuestMode::Pvh), 2_497);
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
