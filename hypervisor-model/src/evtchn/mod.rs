//! Event channels: per-domain port tables, interdomain binding, VIRQs, IPIs, and the 2-level
//! pending/mask/upcall bits that decide whether a send raises an upcall on a vCPU.
//!
//! Follows xen/common/event_channel.c (Xen 4.17: `get_free_port`, `evtchn_allocate_port`,
//! `evtchn_alloc_unbound`, `evtchn_bind_interdomain`, `evtchn_bind_virq`, `evtchn_bind_ipi`,
//! `evtchn_close`, `evtchn_send`, `evtchn_status`, `evtchn_bind_vcpu`, `evtchn_unmask`,
//! `evtchn_reset`, `evtchn_destroy`, `send_guest_vcpu_virq`, `send_guest_global_virq`),
//! xen/common/event_2l.c (set_pending, unmask), xen/arch/x86/domain.c
//! (`vcpu_mark_events_pending`), xen/include/public/event_channel.h and xen/include/public/xen.h
//! (VIRQ numbers); spec `xenstore-io.md` §6 and §9 (EC-*).
//!
//! Layers: [`EventChannels`] (ops.rs) is the host-wide table the hypervisor layer calls with
//! hypercall-level operations; [`table::DomainEvtchn`] (table.rs) is one domain's ports and
//! shared-info bits; check.rs holds the O(n) invariant checks.
//!
//! A send, a bind_interdomain or an unmask returns `Option<Notify>`: `Some` exactly when Xen's
//! `vcpu_mark_events_pending` found `evtchn_upcall_pending` clear and set it, i.e. when Xen
//! would kick the vCPU (PV) or assert its callback IRQ (HVM). The hypervisor layer turns each
//! [`Notify`] into a vCPU wake (unblock if blocked, IPI its pCPU if running).
//!
//! # Invariants
//! - Port 0 is always reserved; every allocated port is `<= max_evtchn_port` and below the
//!   ABI limit; allocation picks the lowest free port (EC-LIMIT).
//! - Interdomain ends point at each other (EC-PAIRING); closing one end leaves the other
//!   unbound towards the closer.
//! - Pending bits are never set on free or reserved ports.
//! - `virq_to_evtchn` and the VIRQ ports agree both ways.
//!
//! xensim differs / leaves out on purpose: PIRQs, Xen-consumer ports (`xen_consumer`),
//! XSM beyond the dummy policy's "self or privileged", `SCHEDOP_poll` pollers, hypercall
//! continuations (`-ERESTART`: every op completes at once), and the FIFO ABI's queues: a
//! domain can be switched to FIFO (`init_fifo`), which raises its port limit to 2^17, but
//! delivery keeps the 2-level rules (one pending and one mask bit per port, coalescing,
//! masking) without the selector word: the per-vCPU upcall flag alone decides. No event
//! words, queues, priorities or `EVTCHNOP_set_priority`/`expand_array`. Callers resolve
//! `DOMID_SELF` to the caller's domid first.

pub mod table;

mod check;
mod ops;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests_ops;

pub use ops::{Bound, EventChannels, PortStatus};
pub use table::{DomainEvtchn, EvtchnDomainConfig};

use crate::ids::{DomId, EvtchnPort, VcpuId};

/// Ports of the 2-level ABI for a 64-bit guest: `EVTCHN_2L_NR_CHANNELS` = 64 x 64
/// (xen/include/public/event_channel.h).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 64 * 64;
/// Ports of the FIFO ABI: `EVTCHN_FIFO_NR_CHANNELS` = 1 << `EVTCHN_FIFO_LINK_BITS` (17).
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << 17;
/// Ports per allocation bucket: `PAGE_SIZE / next_power_of_2(sizeof(struct evtchn))`, and
/// `struct evtchn` is 64-byte aligned (xen/include/xen/sched.h), so 4096 / 64.
pub const EVTCHNS_PER_BUCKET: u32 = 64;
/// Bits in one word of the 2-level pending/mask bitmaps and of `evtchn_pending_sel`
/// (`BITS_PER_EVTCHN_WORD` for a 64-bit guest).
pub const EVTCHN_2L_WORD_BITS: u32 = 64;
/// `max_event_channels` default of libxl for guests (tools/libs/light/libxl_create.c: 1023).
pub const MAX_EVTCHN_PORT_LIBXL_DEFAULT: u32 = 1023;
/// dom0's `max_evtchn_port`: Xen builds dom0 with -1, clamped to `INT_MAX`, so only the ABI
/// limit applies (xen/arch/x86/setup.c, `evtchn_init`).
pub const MAX_EVTCHN_PORT_UNLIMITED: u32 = 0x7FFF_FFFF;
/// Number of VIRQs, `NR_VIRQS` (xen/include/public/xen.h).
pub const NR_VIRQS: u32 = 24;

const _: () = assert!(EVTCHN_2L_NR_CHANNELS < EVTCHN_FIFO_NR_CHANNELS);
const _: () = assert!(EVTCHN_2L_NR_CHANNELS == EVTCHN_2L_WORD_BITS * EVTCHN_2L_WORD_BITS);
const _: () = assert!(EVTCHN_2L_NR_CHANNELS.is_multiple_of(EVTCHNS_PER_BUCKET));
const _: () = assert!(EVTCHN_FIFO_NR_CHANNELS.is_multiple_of(EVTCHNS_PER_BUCKET));
const _: () = assert!(MAX_EVTCHN_PORT_LIBXL_DEFAULT < EVTCHN_2L_NR_CHANNELS);

/// A virtual IRQ number (`VIRQ_*`, xen/include/public/xen.h), always below [`NR_VIRQS`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Virq(u32);

impl Virq {
    /// `VIRQ_TIMER`: per-vCPU timebase update.
    pub const TIMER: Virq = Virq(0);
    /// `VIRQ_DEBUG`: per-vCPU debug request.
    pub const DEBUG: Virq = Virq(1);
    /// `VIRQ_CONSOLE`: global, emergency console input.
    pub const CONSOLE: Virq = Virq(2);
    /// `VIRQ_DOM_EXC`: global, a domain changed state (xenstored watches it).
    pub const DOM_EXC: Virq = Virq(3);
    /// `VIRQ_XENOPROF`: per-vCPU profiling sample.
    pub const XENOPROF: Virq = Virq(7);
    /// `VIRQ_CON_RING`: global, console ring has bytes.
    pub const CON_RING: Virq = Virq(8);
    /// `VIRQ_XENPMU`: per-vCPU PMC interrupt.
    pub const XENPMU: Virq = Virq(13);

    /// The VIRQ with this number, or `None` at or past [`NR_VIRQS`].
    pub const fn new(raw: u32) -> Option<Virq> {
        if raw < NR_VIRQS {
            Some(Virq(raw))
        } else {
            None
        }
    }

    /// The raw number.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Whether the VIRQ is domain-wide (bound on vCPU 0 only) rather than per-vCPU.
    /// Xen: event_channel.c, `virq_is_global()`; x86's `arch_virq_is_global()` is always true,
    /// so `VIRQ_ARCH_*` are global.
    pub const fn is_global(self) -> bool {
        !matches!(
            self,
            Virq::TIMER | Virq::DEBUG | Virq::XENOPROF | Virq::XENPMU
        )
    }
}

/// Which event-channel ABI a domain uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Abi {
    /// The 2-level ABI every domain starts on.
    TwoLevel,
    /// The FIFO ABI after `EVTCHNOP_init_control` (limits only; see the module doc).
    Fifo,
}

impl Abi {
    /// `max_evtchns(d)` (xen/common/event_channel.h).
    pub const fn nr_channels(self) -> u32 {
        match self {
            Abi::TwoLevel => EVTCHN_2L_NR_CHANNELS,
            Abi::Fifo => EVTCHN_FIFO_NR_CHANNELS,
        }
    }
}

/// The state of one port (`ECS_*`, xen/include/xen/sched.h).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortState {
    /// `ECS_FREE`.
    Free,
    /// `ECS_RESERVED`: port 0.
    Reserved,
    /// `ECS_UNBOUND`: waits for `remote` to bind.
    Unbound {
        /// The only domain allowed to bind (`u.unbound.remote_domid`).
        remote: DomId,
    },
    /// `ECS_INTERDOMAIN`: connected to `(remote, remote_port)`.
    Interdomain {
        /// Peer domain.
        remote: DomId,
        /// Peer port.
        remote_port: EvtchnPort,
    },
    /// `ECS_VIRQ`.
    Virq {
        /// The bound VIRQ.
        virq: Virq,
    },
    /// `ECS_IPI`.
    Ipi,
}

/// "Raise an event upcall on this vCPU": the result of a send that Xen would follow with
/// `vcpu_kick` (PV) or `hvm_assert_evtchn_irq` (HVM).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Notify {
    /// Domain of the vCPU.
    pub dom: DomId,
    /// The vCPU whose `evtchn_upcall_pending` went from 0 to 1.
    pub vcpu: VcpuId,
}

/// A Linux/Xen errno as the guest sees it (negated in the hypercall return value).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Errno {
    /// `EACCES` (13).
    Eacces,
    /// `EAGAIN` (11).
    Eagain,
    /// `EBUSY` (16).
    Ebusy,
    /// `EEXIST` (17).
    Eexist,
    /// `EINVAL` (22).
    Einval,
    /// `ENOENT` (2).
    Enoent,
    /// `ENOSPC` (28).
    Enospc,
    /// `EPERM` (1).
    Eperm,
    /// `ESRCH` (3).
    Esrch,
}

impl Errno {
    /// The hypercall return value: the negated errno (xen/include/public/errno.h).
    pub const fn value(self) -> i32 {
        match self {
            Errno::Eacces => -13,
            Errno::Eagain => -11,
            Errno::Ebusy => -16,
            Errno::Eexist => -17,
            Errno::Einval => -22,
            Errno::Enoent => -2,
            Errno::Enospc => -28,
            Errno::Eperm => -1,
            Errno::Esrch => -3,
        }
    }

    /// The symbolic name, as `EINVAL`.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::Eacces => "EACCES",
            Errno::Eagain => "EAGAIN",
            Errno::Ebusy => "EBUSY",
            Errno::Eexist => "EEXIST",
            Errno::Einval => "EINVAL",
            Errno::Enoent => "ENOENT",
            Errno::Enospc => "ENOSPC",
            Errno::Eperm => "EPERM",
            Errno::Esrch => "ESRCH",
        }
    }
}

/// Why an event-channel operation failed; [`EvtchnError::errno`] is what the guest sees.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EvtchnError {
    /// The domain is dying: no new ports (`get_free_port`, `-EINVAL`).
    DomainDying {
        /// The dying domain.
        dom: DomId,
    },
    /// The domain already has an event-channel table (`-EEXIST`).
    DomainExists {
        /// The domain.
        dom: DomId,
    },
    /// No such domain (`rcu_lock_domain_by_any_id` failed, `-ESRCH`).
    DomainUnknown {
        /// The domain asked for.
        dom: DomId,
    },
    /// No free port at or below `max_evtchn_port` and the ABI limit (`-ENOSPC`).
    NoFreePort {
        /// The domain.
        dom: DomId,
    },
    /// The caller may not act on that domain (XSM dummy `XSM_TARGET`, `-EPERM`).
    NotPermitted {
        /// The calling domain.
        caller: DomId,
        /// The target domain.
        dom: DomId,
    },
    /// The port is past the allocated buckets (`port_is_valid` false, `-EINVAL`).
    PortInvalid {
        /// The domain.
        dom: DomId,
        /// The port asked for.
        port: EvtchnPort,
    },
    /// The port's state does not allow the operation (`-EINVAL`).
    PortWrongState {
        /// The domain.
        dom: DomId,
        /// The port.
        port: EvtchnPort,
        /// Its state.
        state: PortState,
    },
    /// `EVTCHNOP_reset` of another domain that the controller has not paused (`-EINVAL`).
    ResetNotPaused {
        /// The domain.
        dom: DomId,
    },
    /// The vCPU does not exist (`domain_vcpu` is NULL, `-ENOENT`).
    VcpuUnknown {
        /// The domain.
        dom: DomId,
        /// The raw vCPU number asked for.
        vcpu: u32,
    },
    /// The VIRQ is already bound on that vCPU (`-EEXIST`).
    VirqBound {
        /// The domain.
        dom: DomId,
        /// The VIRQ.
        virq: Virq,
    },
    /// VIRQ number out of range, or a global VIRQ on a vCPU other than 0 (`-EINVAL`).
    VirqInvalid {
        /// The raw VIRQ number.
        virq: u32,
        /// The raw vCPU number.
        vcpu: u32,
    },
}

impl EvtchnError {
    /// The errno Xen returns for this failure.
    pub const fn errno(self) -> Errno {
        match self {
            EvtchnError::DomainDying { .. }
            | EvtchnError::PortInvalid { .. }
            | EvtchnError::PortWrongState { .. }
            | EvtchnError::ResetNotPaused { .. }
            | EvtchnError::VirqInvalid { .. } => Errno::Einval,
            EvtchnError::DomainExists { .. } | EvtchnError::VirqBound { .. } => Errno::Eexist,
            EvtchnError::DomainUnknown { .. } => Errno::Esrch,
            EvtchnError::NoFreePort { .. } => Errno::Enospc,
            EvtchnError::NotPermitted { .. } => Errno::Eperm,
            EvtchnError::VcpuUnknown { .. } => Errno::Enoent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Errno, EvtchnError, Virq, NR_VIRQS};
    use crate::ids::DomId;

    #[test]
    fn virq_timer_is_per_vcpu_and_dom_exc_is_global() {
        assert!(!Virq::TIMER.is_global());
        assert!(Virq::DOM_EXC.is_global());
    }

    #[test]
    fn virq_at_nr_virqs_is_rejected() {
        assert!(Virq::new(NR_VIRQS).is_none());
        assert!(Virq::new(NR_VIRQS - 1).is_some_and(Virq::is_global));
    }

    #[test]
    fn no_free_port_maps_to_enospc_minus_28() {
        let err = EvtchnError::NoFreePort { dom: DomId::DOM0 };
        assert_eq!(err.errno(), Errno::Enospc);
        assert_eq!(err.errno().value(), -28);
        assert_eq!(err.errno().name(), "ENOSPC");
    }
}
