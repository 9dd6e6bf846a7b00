//! The toolstack's side of populate-on-demand: a pre-ballooned HVM/PVH guest is built
//! with its cache and a PoD physmap, `xl mem-set` moves the PoD target, and the guest's
//! balloon driver starts ballooning down as soon as the guest runs.
//!
//! Follows tools/libs/light/libxl_create.c (`pod_enabled = type != PV && target_memkb <
//! max_memkb`), tools/libs/guest/xg_dom_x86.c (`meminit_hvm` with
//! `XENMEMF_populate_on_demand`: `xc_domain_set_pod_target` to the target first, then the
//! physmap up to `maxmem` in 1 GiB, 2 MiB and 4 KiB extents), tools/libs/light/libxl_mem.c
//! (`libxl_set_memory_target`: `xc_domain_set_pod_target((new_target + 1024) / 4)` for
//! every non-PV domU) and Linux drivers/xen/balloon.c (`balloon_init` counts an HVM
//! guest's pages from its e820, i.e. `maxmem`). Spec §4.1, §4.5, §5.2.
//!
//! # Invariants
//! - A PoD guest's physmap is PoD or RAM from GFN 0 to `maxmem` at the end of its build.
//!
//! xensim differs: the VGA hole is not left out of the target (as in `populate.rs`); the
//! libxl refusals of PoD with passthrough, vNUMA or altp2m cannot arise, since xensim's
//! xl.cfg model has none of them yet.

use crate::hypervisor::Hypervisor;
use crate::ids::DomId;
use crate::memory::{MemError, PAGE_ORDER_1G, PAGE_ORDER_2M, PAGE_ORDER_4K};
use crate::platform::Platform;
use crate::toolstack::config::GuestType;

fn pages_of_kib(kib: u64) -> u64 {
    kib.div_ceil(4)
}

impl Hypervisor {
    /// libxl's `pod_enabled` for `dom`'s configuration.
    pub(crate) fn pod_enabled(&self, dom: DomId) -> bool {
        let config = self.domains.get(dom).and_then(|d| d.config.as_ref());
        config.is_some_and(|c| c.guest_type != GuestType::Pv && c.memory_kib < c.max_memory_kib)
    }

    /// `meminit_hvm` in PoD mode: the cache of `target_pages`, then PoD entries over the
    /// physmap up to `maxmem`. Returns the pages allocated (the cache).
    pub(crate) fn pod_build<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        target_pages: u64,
        p: &mut P,
    ) -> Result<u64, MemError> {
        self.scrub_catch_up(p.now());
        let max_pages = self
            .domains
            .get(dom)
            .and_then(|d| d.config.as_ref())
            .map_or(0, |c| pages_of_kib(c.max_memory_kib));
        let result = self.memory.pod_set_target(dom, target_pages);
        let cached = self.memory.dom(dom).map_or(0, |m| m.pod.count);
        self.memory_changed(dom, i64::try_from(cached).unwrap_or(i64::MAX), p);
        result?;
        let mut gfn = 0;
        while gfn < max_pages {
            let order = [PAGE_ORDER_1G, PAGE_ORDER_2M]
                .into_iter()
                .find(|order| {
                    let size = 1u64 << order;
                    gfn & (size - 1) == 0 && max_pages - gfn >= size
                })
                .unwrap_or(PAGE_ORDER_4K);
            self.memory.pod_mark(dom, gfn, order)?;
            gfn += 1u64 << order;
        }
        Ok(cached)
    }

    /// `xc_domain_set_pod_target` from `xl mem-set` (a no-op for a domain not using PoD).
    pub(crate) fn mem_set_pod_target<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        target_pages: u64,
        p: &mut P,
    ) {
        let before = self.memory.dom(dom).map_or(0, |m| m.tot_pages);
        // A failure (no memory for a bigger cache) leaves what was allocated; libxl
        // logs it and carries on.
        let _partial = self.memory.pod_set_target(dom, target_pages);
        let after = self.memory.dom(dom).map_or(0, |m| m.tot_pages);
        let delta = i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(0);
        self.memory_changed(dom, delta, p);
    }

    /// The pages the guest kernel believes it has (`balloon_stats.current_pages`): for a
    /// PoD guest its e820 (`maxmem`) less what it ballooned out; otherwise `tot_pages`.
    pub(crate) fn balloon_current_pages(&self, dom: DomId) -> u64 {
        if self.pod_enabled(dom) {
            let max_pages = self
                .domains
                .get(dom)
                .and_then(|d| d.config.as_ref())
                .map_or(0, |c| pages_of_kib(c.max_memory_kib));
            max_pages.saturating_sub(self.ballooned_pages(dom))
        } else {
            self.memory.dom(dom).map_or(0, |m| m.tot_pages)
        }
    }
}
