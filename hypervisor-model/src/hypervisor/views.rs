//! Read-only views of a running hypervisor for the toolstack's reports (`xl list`,
//! `xl info`, `xl cpupool-list`), the simulator and tests: domains, pools, event channels,
//! grant tables, memory and claims, the console ring, and which vCPU runs where. Also the
//! invariant checker's entry point. Nothing here changes state but `clear_console`.

use alloc::vec::Vec;

use super::{
    boot::{HostInfo, XenBuild},
    check, Hypervisor,
};
use crate::console::Console;
use crate::cpumask::CpuMask;
use crate::domain::Domain;
use crate::evtchn::EventChannels;
use crate::grant::GrantTables;
use crate::ids::{DomId, PcpuId, PoolId, VcpuRef};
use crate::sched::{Pool, Violation};

impl Hypervisor {
    /// Runs every invariant check and returns what is broken (empty = consistent).
    pub fn check_invariants(&self) -> Vec<Violation> {
        check::check_all(self)
    }

    /// All domains in domid order (`libxl_list_domain`).
    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains.iter()
    }

    /// One domain.
    pub fn domain(&self, dom: DomId) -> Option<&Domain> {
        self.domains.get(dom)
    }

    /// Every domain's event channels.
    pub fn event_channels(&self) -> &EventChannels {
        &self.evtchn
    }

    /// Every domain's grant table.
    pub fn grant_tables(&self) -> &GrantTables {
        &self.grants
    }

    /// The pools in id order (`libxl_list_cpupool`).
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter()
    }

    /// One pool.
    pub fn pool(&self, pool: PoolId) -> Option<&Pool> {
        self.pools.get(pool)
    }

    /// A pool the core knows exists; panics otherwise (a bug in the core).
    pub(crate) fn pool_ref(&self, pool: PoolId) -> &Pool {
        match self.pools.get(pool) {
            Some(found) => found,
            None => panic!("{pool:?} does not exist"),
        }
    }

    /// Mutable [`Hypervisor::pool_ref`].
    pub(crate) fn pool_mut(&mut self, pool: PoolId) -> &mut Pool {
        match self.pools.get_mut(pool) {
            Some(found) => found,
            None => panic!("{pool:?} does not exist"),
        }
    }

    /// The machine.
    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// The Xen build and command line.
    pub fn xen(&self) -> &XenBuild {
        &self.xen
    }

    /// The console ring (`xl dmesg`).
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Empties the console ring (`xl dmesg -c`).
    pub fn clear_console(&mut self) {
        self.console.clear();
    }

    /// Free pages on the host (`physinfo.free_pages`, free-but-dirty included).
    pub fn free_pages(&self) -> u64 {
        self.memory.free_pages()
    }

    /// Free pages of each NUMA node (`xl info -n` memfree).
    pub fn node_free_pages(&self) -> Vec<u64> {
        self.memory.node_free_pages()
    }

    /// Pages claimed and not yet populated (`physinfo.outstanding_pages`).
    pub fn outstanding_claim_pages(&self) -> u64 {
        self.memory.outstanding_claims()
    }

    /// Pages claimed for domain `dom` and not yet populated (`d->outstanding_pages`, which
    /// `xl list` adds to the domain's memory).
    pub fn domain_claim_pages(&self, dom: DomId) -> u64 {
        self.memory.dom(dom).map_or(0, |m| m.outstanding_pages)
    }

    /// xl.conf `claim_mode`.
    pub fn claim_mode(&self) -> bool {
        self.claim_mode
    }

    /// The host's memory: heaps, frame owners, P2Ms and the M2P.
    pub fn memory(&self) -> &crate::memory::Memory {
        &self.memory
    }

    /// pCPUs in no pool.
    pub fn free_cpus(&self) -> CpuMask {
        let mut mask = CpuMask::empty(self.host.nr_cpus());
        for (index, pool) in self.cpu_pool.iter().enumerate() {
            if pool.is_none() {
                mask.set(PcpuId::new(u32::try_from(index).unwrap_or(u32::MAX)).expect("host pCPU"));
            }
        }
        mask
    }

    /// The vCPU running on `cpu` now.
    pub fn running_on(&self, cpu: PcpuId) -> Option<VcpuRef> {
        self.curr.get(cpu.index()).copied().flatten()
    }
}
