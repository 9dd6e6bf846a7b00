//! Domains: identity, lifecycle, pause counting, memory accounting, and the table of all
//! domains of a host.
//!
//! Follows xen/common/domain.c (`domain_create`, `domain_pause`,
//! `domain_pause_by_systemcontroller`, `domain_shutdown`, `domain_kill`), xen/common/domctl.c
//! (`getdomaininfo` flags, the domid rover) and xen/include/public/sched.h (`SHUTDOWN_*`).
//!
//! # Invariants
//! - A domain's slot in the table is indexed by its domid; a freed slot is `None`.
//! - `controller_pause_count <= pause_count` (the controller's pauses are a subset).
//! - A dead domain has no vCPU running.
//!
//! xensim differs: memory is tracked as page counts until the frame allocator lands.

pub mod vcpu;

use alloc::string::String;
use alloc::vec::Vec;

use crate::ids::{DomId, PoolId, VcpuRef};
use crate::limits::DOMID_FIRST_RESERVED;
use crate::time::STime;
use crate::toolstack::config::{DomainConfig, GuestType};
use vcpu::Vcpu;

/// `SHUTDOWN_*` reason codes (xen/include/public/sched.h).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff`.
    Poweroff = 0,
    /// `SHUTDOWN_reboot`.
    Reboot = 1,
    /// `SHUTDOWN_suspend`.
    Suspend = 2,
    /// `SHUTDOWN_crash`.
    Crash = 3,
    /// `SHUTDOWN_watchdog`.
    Watchdog = 4,
    /// `SHUTDOWN_soft_reset`.
    SoftReset = 5,
}

impl ShutdownReason {
    /// The reason with `SHUTDOWN_*` code `code`, if any.
    pub const fn from_code(code: u8) -> Option<ShutdownReason> {
        match code {
            0 => Some(ShutdownReason::Poweroff),
            1 => Some(ShutdownReason::Reboot),
            2 => Some(ShutdownReason::Suspend),
            3 => Some(ShutdownReason::Crash),
            4 => Some(ShutdownReason::Watchdog),
            5 => Some(ShutdownReason::SoftReset),
            _ => None,
        }
    }

    /// The numeric code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The letter `xl list` shows in its fifth state column (`"-rscwS"[code]`).
    pub const fn xl_letter(self) -> char {
        match self {
            ShutdownReason::Poweroff => '-',
            ShutdownReason::Reboot => 'r',
            ShutdownReason::Suspend => 's',
            ShutdownReason::Crash => 'c',
            ShutdownReason::Watchdog => 'w',
            ShutdownReason::SoftReset => 'S',
        }
    }
}

/// `d->is_dying` (`DOMDYING_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dying {
    /// `DOMDYING_alive`.
    Alive,
    /// `DOMDYING_dying`: relinquishing resources.
    Dying,
    /// `DOMDYING_dead`: resources released, waiting for the last reference.
    Dead,
}

/// One domain.
// `repr(C)` keeps `vcpus` and `pause_count` (read together by every runnable check) at
// the front, in one cache line.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Domain {
    /// vCPUs, indexed by vCPU id.
    pub vcpus: Vec<Vcpu>,
    /// `d->pause_count`.
    pub pause_count: u32,
    /// Domain id.
    pub id: DomId,
    /// Name (`Domain-0` for dom0).
    pub name: String,
    /// `xen_domain_handle_t`, the UUID xl prints.
    pub uuid: [u8; 16],
    /// PV, PVH or HVM.
    pub guest_type: GuestType,
    /// The configuration it was created from (dom0 has none).
    pub config: Option<DomainConfig>,
    /// `is_privileged` (dom0).
    pub privileged: bool,
    /// Cpupool.
    pub pool: PoolId,
    /// Scheduler weight.
    pub weight: u32,
    /// Scheduler cap, percent.
    pub cap: u32,
    /// `d->controller_pause_count` (the toolstack's pauses).
    pub controller_pause_count: u32,
    /// `d->is_shutting_down`.
    pub is_shutting_down: bool,
    /// `d->is_shut_down`: every vCPU has stopped after a shutdown.
    pub is_shut_down: bool,
    /// `d->shutdown_code`.
    pub shutdown_reason: Option<ShutdownReason>,
    /// `d->is_dying`.
    pub dying: Dying,
    /// Pages the domain owns (`d->tot_pages`).
    pub tot_pages: u64,
    /// `d->max_pages`.
    pub max_pages: u64,
    /// Creation time.
    pub created_at: STime,
}

/// Who a new domain is: what `XEN_DOMCTL_createdomain` and libxl fix at creation.
#[derive(Clone, Debug)]
pub struct DomainIdentity {
    /// Domain id.
    pub id: DomId,
    /// Name.
    pub name: String,
    /// UUID.
    pub uuid: [u8; 16],
    /// PV, PVH or HVM.
    pub guest_type: GuestType,
    /// Cpupool.
    pub pool: PoolId,
    /// Scheduler weight.
    pub weight: u32,
    /// Scheduler cap, percent.
    pub cap: u32,
}

impl Domain {
    /// A domain as `domain_create` leaves it: no vCPUs, no pages, paused once by the
    /// controller (`controller_pause_count = 1`, xen/common/domain.c).
    pub fn new_paused(identity: DomainIdentity, now: STime) -> Domain {
        Domain {
            id: identity.id,
            name: identity.name,
            uuid: identity.uuid,
            guest_type: identity.guest_type,
            config: None,
            privileged: false,
            pool: identity.pool,
            weight: identity.weight,
            cap: identity.cap,
            vcpus: Vec::new(),
            pause_count: 1,
            controller_pause_count: 1,
            is_shutting_down: false,
            is_shut_down: false,
            shutdown_reason: None,
            dying: Dying::Alive,
            tot_pages: 0,
            max_pages: 0,
            created_at: now,
        }
    }

    /// Online vCPUs (`xl list` VCPUs column).
    pub fn online_vcpu_count(&self) -> u32 {
        let count = self.vcpus.iter().filter(|v| v.is_online()).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// `getdomaininfo`'s running flag: an online vCPU is on a pCPU.
    pub fn is_running(&self) -> bool {
        self.vcpus
            .iter()
            .any(|v| v.is_online() && v.running_on.is_some())
    }

    /// `getdomaininfo`'s blocked flag: every online vCPU is blocked (none online: false).
    pub fn is_blocked(&self) -> bool {
        let mut online = self.vcpus.iter().filter(|v| v.is_online()).peekable();
        online.peek().is_some() && online.all(|v| v.is_blocked())
    }

    /// The vCPU with index `index`.
    pub fn vcpu(&self, index: u32) -> Option<&Vcpu> {
        self.vcpus.get(usize::try_from(index).ok()?)
    }
}

/// Every domain of a host, indexed by domid, plus Xen's domid rover.
#[derive(Debug, Default)]
pub struct DomainTable {
    slots: Vec<Option<Domain>>,
    rover: u16,
}

impl DomainTable {
    /// An empty table.
    pub fn new() -> DomainTable {
        DomainTable::default()
    }

    /// The domain with id `dom`, if it exists.
    pub fn get(&self, dom: DomId) -> Option<&Domain> {
        self.slots
            .get(usize::from(dom.raw()))
            .and_then(Option::as_ref)
    }

    /// Mutable access to domain `dom`.
    pub fn get_mut(&mut self, dom: DomId) -> Option<&mut Domain> {
        self.slots
            .get_mut(usize::from(dom.raw()))
            .and_then(Option::as_mut)
    }

    /// The vCPU `v`, if its domain exists and has it.
    pub fn vcpu(&self, v: VcpuRef) -> Option<&Vcpu> {
        self.get(v.dom)?.vcpu(v.vcpu.raw())
    }

    /// Mutable access to vCPU `v`.
    pub fn vcpu_mut(&mut self, v: VcpuRef) -> Option<&mut Vcpu> {
        let index = usize::try_from(v.vcpu.raw()).ok()?;
        self.get_mut(v.dom)?.vcpus.get_mut(index)
    }

    /// Xen's `vcpu_runnable`: no pause flag, no vCPU pause, no domain pause.
    pub fn runnable(&self, v: VcpuRef) -> bool {
        self.vcpu_runnable(v).is_some_and(|(_, runnable)| runnable)
    }

    /// vCPU `v` and whether it is runnable ([`DomainTable::runnable`]), from one domain
    /// lookup.
    pub fn vcpu_runnable(&self, v: VcpuRef) -> Option<(&Vcpu, bool)> {
        let d = self.get(v.dom)?;
        let vcpu = d.vcpu(v.vcpu.raw())?;
        let runnable = vcpu.runnable_in(d.pause_count);
        Some((vcpu, runnable))
    }

    /// Mutable vCPU `v` and whether it is runnable, from one domain lookup (the switch and
    /// wake paths read both).
    pub fn vcpu_runnable_mut(&mut self, v: VcpuRef) -> Option<(&mut Vcpu, bool)> {
        let (vcpu, runnable, _) = self.vcpu_runnable_pool_mut(v)?;
        Some((vcpu, runnable))
    }

    /// [`DomainTable::vcpu_runnable_mut`] plus the domain's pool, from the same lookup (the
    /// wake path needs all three).
    pub fn vcpu_runnable_pool_mut(&mut self, v: VcpuRef) -> Option<(&mut Vcpu, bool, PoolId)> {
        let index = usize::try_from(v.vcpu.raw()).ok()?;
        let d = self.get_mut(v.dom)?;
        let (domain_pause_count, pool) = (d.pause_count, d.pool);
        let vcpu = d.vcpus.get_mut(index)?;
        let runnable = vcpu.runnable_in(domain_pause_count);
        Some((vcpu, runnable, pool))
    }

    /// Domains in ascending domid order.
    pub fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.slots.iter().filter_map(Option::as_ref)
    }

    /// Number of live domain structs.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if no domain exists.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    fn is_free(&self, raw: u16) -> bool {
        DomId::new(raw).is_some_and(|d| self.get(d).is_none())
    }

    /// Picks a domid as `XEN_DOMCTL_createdomain` does (xen/common/domctl.c): an explicit
    /// free id, or the first free id after the rover, wrapping from `DOMID_FIRST_RESERVED`
    /// to 1. `None` when no id is free (`-ENOMEM`) or the explicit id is taken (`-EEXIST`).
    pub fn allocate_id(&mut self, requested: Option<DomId>) -> Option<DomId> {
        if let Some(dom) = requested.filter(|d| d.raw() > 0) {
            return self.is_free(dom.raw()).then_some(dom);
        }
        let mut candidate = self.rover.wrapping_add(1);
        while candidate != self.rover {
            if candidate >= DOMID_FIRST_RESERVED {
                candidate = 1;
                if candidate == self.rover {
                    break;
                }
            }
            if self.is_free(candidate) {
                self.rover = candidate;
                return DomId::new(candidate);
            }
            candidate += 1;
        }
        None
    }

    /// Puts `domain` into its slot; the slot must be free.
    pub fn insert(&mut self, domain: Domain) {
        let index = usize::from(domain.id.raw());
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        assert!(
            self.slots[index].is_none(),
            "domid {} already in use",
            domain.id.raw()
        );
        self.slots[index] = Some(domain);
    }

    /// Removes domain `dom` (the last reference dropped).
    pub fn remove(&mut self, dom: DomId) -> Option<Domain> {
        self.slots
            .get_mut(usize::from(dom.raw()))
            .and_then(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::vcpu::{Vcpu, VPF_BLOCKED};
    use super::{Domain, DomainIdentity, DomainTable};
    use crate::cpumask::CpuMask;
    use crate::ids::{DomId, PcpuId, PoolId, VcpuId, VcpuRef};
    use crate::time::STime;
    use crate::toolstack::config::GuestType;

    fn table_with_one_vcpu() -> (DomainTable, VcpuRef) {
        let dom = DomId::new(1).expect("domid");
        let v = VcpuRef {
            dom,
            vcpu: VcpuId::new(0).expect("vcpu id"),
        };
        let identity = DomainIdentity {
            id: dom,
            name: "d1".into(),
            uuid: [0; 16],
            guest_type: GuestType::Pvh,
            pool: PoolId(0),
            weight: 256,
            cap: 0,
        };
        let mut d = Domain::new_paused(identity, STime::ZERO);
        let cpu = PcpuId::new(0).expect("pcpu");
        let mask = CpuMask::full(4);
        d.vcpus
            .push(Vcpu::new(v, cpu, mask.clone(), mask, STime::ZERO));
        let mut table = DomainTable::new();
        table.insert(d);
        (table, v)
    }

    #[test]
    fn vcpu_runnable_mut_agrees_with_vcpu_runnable() {
        let (mut table, v) = table_with_one_vcpu();
        let read = |t: &mut DomainTable| {
            let shared = t.vcpu_runnable(v).map(|(_, r)| r);
            let mutable = t.vcpu_runnable_mut(v).map(|(_, r)| r);
            assert_eq!(shared, mutable);
            let with_pool = t.vcpu_runnable_pool_mut(v).map(|(_, r, pool)| (r, pool));
            assert_eq!(with_pool, mutable.map(|r| (r, PoolId(0))));
            mutable
        };
        // Created paused by the controller.
        assert_eq!(read(&mut table), Some(false));
        table.get_mut(v.dom).expect("domain").pause_count = 0;
        assert_eq!(read(&mut table), Some(true));
        table.vcpu_mut(v).expect("vcpu").pause_flags |= VPF_BLOCKED;
        assert_eq!(read(&mut table), Some(false));
        table.vcpu_mut(v).expect("vcpu").pause_flags = 0;
        table.vcpu_mut(v).expect("vcpu").pause_count = 1;
        assert_eq!(read(&mut table), Some(false));
        let other = VcpuRef {
            dom: v.dom,
            vcpu: VcpuId::new(1).expect("vcpu id"),
        };
        assert!(table.vcpu_runnable_mut(other).is_none());
        assert!(table.vcpu_runnable_pool_mut(other).is_none());
    }

    #[test]
    fn allocate_id_starts_after_rover_at_one() {
        let mut table = DomainTable::new();
        assert_eq!(table.allocate_id(None), DomId::new(1));
    }

    #[test]
    fn allocate_id_explicit_zero_falls_back_to_rover() {
        // domctl.c only honours an explicit id when it is > 0.
        let mut table = DomainTable::new();
        assert_eq!(table.allocate_id(DomId::new(0)), DomId::new(1));
    }

    #[test]
    fn allocate_id_does_not_reuse_freed_id_before_wrapping() {
        let mut table = DomainTable::new();
        let first = table.allocate_id(None);
        let second = table.allocate_id(None);
        assert_eq!((first, second), (DomId::new(1), DomId::new(2)));
    }
}
