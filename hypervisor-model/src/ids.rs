//! Newtypes for the numbers Xen hands around, so a domid can never be used as a vCPU index.
//!
//! Follows xen/include/public/xen.h (`domid_t`, the reserved `DOMID_*` values) and
//! xen/include/xen/sched.h (`vcpu_id`, `processor`).
//!
//! # Invariants
//! - A [`DomId`] is always below `DOMID_FIRST_RESERVED` (0x7FF0): the constructor checks it.
//! - A [`PcpuId`] is below [`crate::limits::NR_CPUS`].

use core::fmt;

use crate::limits::{DOMID_FIRST_RESERVED, MAX_VIRT_CPUS, NR_CPUS};

/// A domain id (`domid_t`), never one of the reserved ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(u16);

impl DomId {
    /// The control domain.
    pub const DOM0: DomId = DomId(0);

    /// A domain id, or `None` for a reserved or out-of-range value.
    pub const fn new(raw: u16) -> Option<DomId> {
        if raw < DOMID_FIRST_RESERVED {
            Some(DomId(raw))
        } else {
            None
        }
    }

    /// The raw `domid_t`.
    pub const fn raw(self) -> u16 {
        self.0
    }
}

/// A vCPU's index inside its domain (`struct vcpu::vcpu_id`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuId(u32);

impl VcpuId {
    /// A vCPU index, or `None` past Xen's `MAX_VIRT_CPUS`-style limit.
    pub const fn new(raw: u32) -> Option<VcpuId> {
        if raw < MAX_VIRT_CPUS {
            Some(VcpuId(raw))
        } else {
            None
        }
    }

    /// The raw index.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

/// A physical CPU (hardware thread) of one host.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PcpuId(u32);

impl PcpuId {
    /// A pCPU number, or `None` at or past `NR_CPUS`.
    pub const fn new(raw: u32) -> Option<PcpuId> {
        if raw < NR_CPUS {
            Some(PcpuId(raw))
        } else {
            None
        }
    }

    /// The raw number.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The number as a slice index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A cpupool id (`Pool-0` is 0).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PoolId(pub u32);

/// A guest frame number: a 4 KiB page of a domain's guest-physical address space.
/// No `Add`/`Sub`: every offset goes through `checked_add`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gfn(u64);

/// A machine frame number: a 4 KiB page of host memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mfn(u64);

macro_rules! frame_number {
    ($name:ident, $letter:literal) => {
        impl $name {
            /// The frame with this number.
            pub const fn new(raw: u64) -> $name {
                $name(raw)
            }

            /// The raw frame number.
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// `self + pages`, or `None` on overflow.
            pub const fn checked_add(self, pages: u64) -> Option<$name> {
                match self.0.checked_add(pages) {
                    Some(raw) => Some($name(raw)),
                    None => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($letter, "{:#x}"), self.0)
            }
        }
    };
}

frame_number!(Gfn, "gfn");
frame_number!(Mfn, "mfn");

/// An event-channel port of one domain (`evtchn_port_t`). Any `u32` a guest passes is
/// representable; the event-channel table decides whether it names a valid port.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvtchnPort(u32);

/// A grant reference (`grant_ref_t`): an index into the granting domain's grant table.
/// Any `u32` a guest passes is representable; the grant table bounds-checks it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(u32);

macro_rules! table_index {
    ($name:ident, $prefix:literal) => {
        impl $name {
            /// The value as the guest passed it.
            pub const fn new(raw: u32) -> $name {
                $name(raw)
            }

            /// The raw number.
            pub const fn raw(self) -> u32 {
                self.0
            }

            /// The number as a slice index.
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

table_index!(EvtchnPort, "port");
table_index!(GrantRef, "gref");

/// A PCI device address (segment, bus, device, function), as `0000:03:00.0`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PciBdf {
    /// PCI segment.
    pub segment: u16,
    /// Bus.
    pub bus: u8,
    /// Device (0..32).
    pub device: u8,
    /// Function (0..8).
    pub function: u8,
}

/// One vCPU of one domain: what the trace and the platform name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuRef {
    /// Owning domain.
    pub dom: DomId,
    /// Index inside the domain.
    pub vcpu: VcpuId,
}

/// A XenStore transaction id, as carried in the `tx_id` field of a wire header.
/// Never 0: on the wire 0 means "no transaction", which is `Option::<XsTxId>::None` here.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct XsTxId(core::num::NonZeroU32);

impl XsTxId {
    /// A transaction id, or `None` for the wire value 0 (no transaction).
    pub const fn new(raw: u32) -> Option<XsTxId> {
        match core::num::NonZeroU32::new(raw) {
            Some(id) => Some(XsTxId(id)),
            None => None,
        }
    }

    /// The raw wire value (never 0).
    pub const fn raw(self) -> u32 {
        self.0.get()
    }
}

/// One XenStore connection (a unix socket client or a domain's ring), numbered in the
/// order the store created them; watch events go to connections in this order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct XsConnId(pub(crate) u32);

impl XsConnId {
    /// The raw number (for traces and the socket server's bookkeeping).
    pub const fn raw(self) -> u32 {
        self.0
    }
}

/// One item of xenstored's work queue in dom0 (`hypervisor/xenstored.rs`): the requests of
/// one or more inputs, numbered in the order xenstored queued them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct XsWorkId(pub u64);

/// One item of blkback's work in dom0 (`hypervisor/blk_glue.rs`): a batch of requests it
/// consumed from one ring, numbered in the order blkback queued them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BackWorkId(pub u64);

/// One pending reaction of a split driver to a XenStore watch event
/// (`hypervisor/xenbus_watch.rs`), numbered in the order the events arrived.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct DriverWorkId(pub u32);

impl fmt::Debug for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for VcpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Debug for PcpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}

impl fmt::Debug for VcpuRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Xen's `%pv` rendering: d<domid>v<vcpu>.
        write!(f, "d{}v{}", self.dom.0, self.vcpu.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{DomId, PcpuId};

    #[test]
    fn domid_first_reserved_is_rejected() {
        assert!(DomId::new(0x7FF0).is_none());
        assert!(DomId::new(0x7FEF).is_some());
    }

    #[test]
    fn xs_tx_id_zero_means_no_transaction() {
        assert!(super::XsTxId::new(0).is_none());
        assert_eq!(super::XsTxId::new(7).map(super::XsTxId::raw), Some(7));
    }

    #[test]
    fn pcpu_at_nr_cpus_is_rejected() {
        assert!(PcpuId::new(crate::limits::NR_CPUS).is_none());
    }
}
