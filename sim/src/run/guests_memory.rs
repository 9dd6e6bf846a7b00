//! The guest memory models of a host, tied to its vCPUs: which stretch a vCPU's workload
//! runs under, what each run segment did to the swap counters, and the domains whose
//! pages moved since the run loop last read them from the core.
//!
//! The run loop marks a domain when the core traces a `Memory` change for it
//! ([`HostGuests::memory_changed`]), and after the input reads the domain's `tot_pages`
//! and pages per node from the core ([`HostGuests::update_memory`]); a floor notice that
//! comes back is handed to the core as `CoreInput::GuestMemFloor`.
//!
//! # Invariants
//! - Only domains with a memory model have a stretch other than none; a slot's stretch is
//!   recomputed whenever its model starts running or gets new demand.

use hypervisor_model::ids::{DomId, VcpuRef};

use super::guests::HostGuests;
use crate::guest::memory::Stretch;
use crate::guest::memory::{FloorNotice, GuestMemory, MemoryCosts, MemoryStats, NumaView};
use crate::guest::modes::GuestMode;
use crate::scenario::model::{MemoryWorkload, OsRates};

impl HostGuests {
    /// The host's NUMA layout, the swap costs and the metrics window start.
    pub fn set_memory_params(&mut self, numa: NumaView, costs: MemoryCosts, window_ns: u64) {
        self.numa = numa;
        self.mem_costs = costs;
        self.window_start_ns = window_ns;
    }

    /// Domain `dom` was created with the memory model `spec`; the model boots when the
    /// guest first runs (its memory is populated by then).
    pub fn register_memory(&mut self, dom: DomId, spec: Option<MemoryWorkload>) {
        if let Some(spec) = spec {
            self.memories
                .insert(dom, GuestMemory::new(spec, self.window_start_ns));
        }
    }

    /// The core changed `dom`'s pages (its `Memory` trace event), or its guest started.
    pub fn memory_changed(&mut self, dom: DomId) {
        if self.memories.contains_key(&dom) && !self.memory_dirty.contains(&dom) {
            self.memory_dirty.push(dom);
        }
    }

    /// True if a domain was marked by [`HostGuests::memory_changed`] since the last
    /// [`HostGuests::take_memory_dirty`].
    #[inline]
    pub fn memory_dirty(&self) -> bool {
        !self.memory_dirty.is_empty()
    }

    /// Domains marked by [`HostGuests::memory_changed`] since the last call, in order.
    pub fn take_memory_dirty(&mut self) -> Vec<DomId> {
        std::mem::take(&mut self.memory_dirty)
    }

    /// `dom` now holds `tot_pages` (`node_pages` per node) at `now_ns`; nothing before its
    /// guest first ran.
    pub fn update_memory(
        &mut self,
        dom: DomId,
        tot_pages: u64,
        node_pages: &[u64],
        now_ns: u64,
    ) -> Option<FloorNotice> {
        if !self.has_run(dom) {
            return None;
        }
        self.memories
            .get_mut(&dom)?
            .set_resident(tot_pages, node_pages, now_ns)
    }

    /// The memory counters of `dom`, if it has a memory model.
    pub fn memory_stats(&self, dom: DomId) -> Option<MemoryStats> {
        self.memories.get(&dom).map(GuestMemory::stats)
    }

    /// The stretch of `v`'s model from its domain's memory and the node it runs on (none
    /// without a memory model).
    #[inline]
    pub(super) fn stretch_for(&self, v: VcpuRef) -> Stretch {
        // Called at every run start: a host without memory models (most) pays no call.
        if self.memories.is_empty() {
            return Stretch::NONE;
        }
        self.memory_stretch(v)
    }

    /// [`HostGuests::stretch_for`] on a host with memory models.
    fn memory_stretch(&self, v: VcpuRef) -> Stretch {
        match self.memories.get(&v.dom) {
            Some(memory) => {
                let node = self.slot_node(v);
                let numa = memory.numa_stretch_ppm(&self.numa, node, &self.mem_costs);
                Stretch::new(memory.swap_stretch_ppm(), numa)
            }
            None => Stretch::NONE,
        }
    }

    /// `v`'s model ran from `started_ns` to `now_ns`: the domain's counters learn it.
    /// Called at every demand-done and stop: on a host without memory models (most) it
    /// costs one test and no call, for a domain without one a map lookup.
    #[inline]
    pub(super) fn memory_ran(&mut self, v: VcpuRef, started_ns: u64, now_ns: u64) {
        if !self.memories.is_empty() {
            self.memory_ran_model(v, started_ns, now_ns);
        }
    }

    /// [`HostGuests::memory_ran`] on a host with memory models.
    fn memory_ran_model(&mut self, v: VcpuRef, started_ns: u64, now_ns: u64) {
        if !self.memories.contains_key(&v.dom) {
            return;
        }
        let Some(stretch) = self.slot_stretch(v) else {
            return;
        };
        if let Some(memory) = self.memories.get_mut(&v.dom) {
            let segment_ns = now_ns.saturating_sub(started_ns);
            memory.ran(segment_ns, started_ns, stretch, &self.mem_costs);
        }
    }
}

impl HostGuests {
    /// Domain `dom`'s workloads have the `os` rates `rates` (`guest/modes.rs` charges them).
    pub fn register_os(&mut self, dom: DomId, rates: Option<OsRates>) {
        match rates {
            Some(rates) => self.os_of.insert(dom, rates),
            None => self.os_of.remove(&dom),
        };
    }

    /// `dom`'s guest-OS costs in `mode` (PV if unset): the run-time stretch (ppm) and the
    /// CPU of one timer wake; `None` without an `os` sub-table.
    pub(super) fn os_costs(&self, dom: DomId, mode: Option<GuestMode>) -> Option<(u64, u64)> {
        let rates = self.os_of.get(&dom)?;
        let mode = mode.unwrap_or(GuestMode::Pv);
        let modes = self.mode_costs();
        Some((modes.os_stretch_ppm(mode, rates), modes.timer_wake_ns(mode)))
    }
}

/// Reads `dom`'s `tot_pages` and pages per node from the core.
fn core_pages(hv: &hypervisor_model::hypervisor::Hypervisor, dom: DomId) -> (u64, Vec<u64>) {
    hv.memory()
        .dom(dom)
        .map_or((0, Vec::new()), |m| (m.tot_pages, m.node_pages.clone()))
}

impl HostGuests {
    /// After a core input: every marked domain rereads its pages from the core; the floor
    /// notices to hand the core, in domain order of marking.
    pub fn refresh_memory(
        &mut self,
        hv: &hypervisor_model::hypervisor::Hypervisor,
        now_ns: u64,
    ) -> Vec<(DomId, FloorNotice)> {
        let mut notices = Vec::new();
        if self.memory_dirty.is_empty() {
            return notices;
        }
        for dom in self.take_memory_dirty() {
            let (tot_pages, node_pages) = core_pages(hv, dom);
            if let Some(notice) = self.update_memory(dom, tot_pages, &node_pages, now_ns) {
                notices.push((dom, notice));
            }
        }
        notices
    }
}

/// The host's NUMA layout from its boot configuration.
pub fn numa_view(host: &hypervisor_model::hypervisor::boot::HostInfo) -> NumaView {
    NumaView {
        cpu_node: host.cpus.iter().map(|c| c.node).collect(),
        distances: host.node_distances.clone(),
    }
}
