//! The simulated IOMMU (DMA remapping) of one host: the mappings the core programs through
//! `Platform::iommu_write` and the translation a device's DMA sees.
//!
//! Follows the VT-d second-level translation model (`specs/memory-iommu-migration.md`
//! §8.1): per device context, a DMA frame maps to a machine frame with read/write rights;
//! a DMA to an unmapped frame, or a write without write rights, is a fault.
//!
//! # Invariants
//! - A DMA frame has at most one mapping per device.

use std::collections::BTreeMap;

use hypervisor_model::ids::{Mfn, PciBdf};
use hypervisor_model::platform::{Doorbell, MapAccess};

/// Why a device's DMA was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaFault {
    /// No mapping for the frame (VT-d fault reason 05/06 class: not present).
    NotPresent,
    /// A write to a read-only mapping.
    WriteDenied,
}

/// IOMMU contexts of every device of a host.
#[derive(Debug, Default)]
pub struct IommuTables {
    mappings: BTreeMap<(PciBdf, u64), (Mfn, MapAccess)>,
}

/// How often each device queue of a host was notified (`Platform::ring_doorbell`).
#[derive(Debug, Default)]
pub struct Doorbells {
    counts: BTreeMap<Doorbell, u64>,
}

impl Doorbells {
    /// Records a doorbell write.
    pub fn ring(&mut self, doorbell: Doorbell) {
        *self.counts.entry(doorbell).or_insert(0) += 1;
    }

    /// How often `doorbell` was rung.
    pub fn count(&self, doorbell: Doorbell) -> u64 {
        self.counts.get(&doorbell).copied().unwrap_or(0)
    }
}

impl IommuTables {
    /// Programs (`Some`) or removes (`None`) the mapping of `dfn` for `bdf`.
    pub fn write(&mut self, bdf: PciBdf, dfn: u64, entry: Option<(Mfn, MapAccess)>) {
        match entry {
            Some(mapping) => self.mappings.insert((bdf, dfn), mapping),
            None => self.mappings.remove(&(bdf, dfn)),
        };
    }

    /// The machine frame a DMA by `bdf` to `dfn` reaches, or the fault it raises.
    pub fn dma(&self, bdf: PciBdf, dfn: u64, write: bool) -> Result<Mfn, DmaFault> {
        let (mfn, access) = self.mappings.get(&(bdf, dfn)).ok_or(DmaFault::NotPresent)?;
        if write && !access.write {
            return Err(DmaFault::WriteDenied);
        }
        Ok(*mfn)
    }
}

#[cfg(test)]
mod tests {
    use super::{DmaFault, Doorbells, IommuTables};
    use hypervisor_model::ids::{Mfn, PciBdf};
    use hypervisor_model::platform::{Doorbell, MapAccess};

    const NIC: PciBdf = PciBdf {
        segment: 0,
        bus: 3,
        device: 0,
        function: 0,
    };
    const READ_ONLY: MapAccess = MapAccess {
        read: true,
        write: false,
        execute: false,
    };

    #[test]
    fn dma_write_to_read_only_mapping_faults() {
        let mut iommu = IommuTables::default();
        iommu.write(NIC, 0x10, Some((Mfn::new(0x500), READ_ONLY)));
        assert_eq!(iommu.dma(NIC, 0x10, false), Ok(Mfn::new(0x500)));
        assert_eq!(iommu.dma(NIC, 0x10, true), Err(DmaFault::WriteDenied));
    }

    #[test]
    fn dma_to_unmapped_frame_is_not_present() {
        let iommu = IommuTables::default();
        assert_eq!(iommu.dma(NIC, 0x10, false), Err(DmaFault::NotPresent));
    }

    #[test]
    fn doorbells_are_counted_per_queue() {
        let mut bells = Doorbells::default();
        bells.ring(Doorbell::DiskSubmit { disk: 0, queue: 1 });
        bells.ring(Doorbell::DiskSubmit { disk: 0, queue: 1 });
        assert_eq!(bells.count(Doorbell::DiskSubmit { disk: 0, queue: 1 }), 2);
        assert_eq!(bells.count(Doorbell::NicTx { nic: 0, queue: 0 }), 0);
    }
}
