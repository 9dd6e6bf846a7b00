//! `xl mem-set` and `xl mem-max`, and the guest's balloon driver that follows the target.
//!
//! Follows tools/libs/light/libxl_mem.c (`libxl_set_memory_target` with enforce: the
//! target's checks against `static-max` and dom0's 128 MiB floor, `xc_domain_setmaxmem`
//! to the new target plus `LIBXL_MAXMEM_CONSTANT`, `memory/target` and `/vm/<uuid>/memory`
//! written; `libxl_domain_setmaxmem`: refused below the current target, then
//! `xc_domain_setmaxmem` and `memory/static-max`) and Linux drivers/xen/balloon.c (the
//! worker: `credit = target - current`, at most 512 pages per `decrease_reservation` or
//! `populate_physmap`, looping while the credit is not zero; pages come back LIFO).
//! Spec `memory-iommu-migration.md` §5.
//!
//! The guest side of inflation (spec §5.5): the guest's kernel tells its driver how low it
//! can go (`CoreInput::GuestMemFloor`: the pages it cannot give up, its non-swappable
//! memory); an inflate round that finds no page above that floor has failed, and the
//! worker backs off 2^n s after the n-th failed round in a row, giving up (`ECANCELED`,
//! traced as `BalloonGaveUp`) after `BALLOON_MAX_RETRY_COUNT`, so the guest stays above
//! its target until the target changes.
//!
//! # Invariants
//! - At most one balloon worker per domain; it stops when the credit is zero, when the
//!   domain dies, when Xen refuses pages, or when it gives up.
//! - A ballooned GFN is a hole in the domain's P2M until the worker gives it back.
//! - Inflation never takes the guest below its floor.
//!
//! xensim differs: the worker is woken directly when the toolstack writes the target (not
//! through a XenStore watch), one `io.xenbus_step_ns` later, and a new target does not cut
//! a back-off sleep short; a refused deflate stops the
//! worker instead of Linux's back-off and retries; the HVM `target_diff` correction is 0
//! (xensim's e820 has no holes, see `pod_build.rs` for the PoD guest's page count); the
//! guest balloons its highest GFNs. Each batch is one reservation hypercall
//! (`hypervisor/memory_op.rs`).

use alloc::vec::Vec;

use crate::encode::{DecodeError, Decoder, Encoder, FieldSink};
use crate::hypervisor::Hypervisor;
use crate::ids::DomId;
use crate::platform::Platform;
use crate::time::Span;
use crate::toolstack::config::GuestType;
use crate::toolstack::jobs::{finish, Job};
use crate::toolstack::ops::{JobId, ToolstackError, ToolstackOp};
use crate::toolstack::xs_tree;
use crate::trace::TraceEvent;

/// Encoding tag of `MemSet`.
pub(crate) const TAG_MEM_SET: u8 = 15;
/// Encoding tag of `MemMax`.
pub(crate) const TAG_MEM_MAX: u8 = 16;
/// `LIBXL_MAXMEM_CONSTANT`: libxl's extra KiB on top of `max_pages` (x86).
pub const LIBXL_MAXMEM_CONSTANT_KIB: u64 = 1024;
/// `LIBXL_MIN_DOM0_MEM`: dom0's target may not go below 128 MiB.
pub const LIBXL_MIN_DOM0_MEM_KIB: u64 = 128 * 1024;
/// Pages per balloon hypercall: `PAGE_SIZE / sizeof(xen_pfn_t)` (drivers/xen/balloon.c).
pub const BALLOON_BATCH_PAGES: u64 = 512;
/// Guest time per inflate batch (model parameter, spec §5.4: about 2 GiB/s).
const BALLOON_INFLATE_BATCH_NS: i64 = 1_000_000;
/// Guest time per deflate batch (model parameter, spec §5.4).
const BALLOON_DEFLATE_BATCH_NS: i64 = 500_000;
/// `max_retry_count`: failed rounds in a row before the driver gives up (Linux since the
/// XSA-300 fix).
pub const BALLOON_MAX_RETRY_COUNT: u32 = 4;
/// `max_schedule_delay`: the longest back-off sleep, seconds.
const BALLOON_MAX_SCHEDULE_DELAY_S: i64 = 32;

/// Why libxl refused a memory operation (each is one libxl log line; the xl message
/// follows in the sim).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MemOpError {
    /// `memory/target` is missing or not a number.
    NoTarget,
    /// `memory/static-max` is missing or not a number.
    NoStaticMax,
    /// `xl mem-max` below the current target.
    MaxBelowTarget,
    /// `xl mem-set` above `static-max` (`ERROR_INVAL`).
    TargetAboveMax,
    /// dom0's new target is below `LIBXL_MIN_DOM0_MEM` (`ERROR_INVAL`).
    Dom0BelowMinimum {
        /// The refused target, KiB.
        target_kib: u64,
    },
}

/// Encodes the memory operations; false for any other.
pub(crate) fn encode(op: &ToolstackOp, out: &mut Vec<u8>) -> bool {
    let mut e = Encoder::new(out);
    match op {
        ToolstackOp::MemSet { dom, target_kib } => {
            e.u8(TAG_MEM_SET).dom(*dom).u64(*target_kib);
        }
        ToolstackOp::MemMax { dom, max_kib } => {
            e.u8(TAG_MEM_MAX).dom(*dom).u64(*max_kib);
        }
        _ => return false,
    }
    true
}

/// Decodes a memory operation after its tag.
pub(crate) fn decode(tag: u8, d: &mut Decoder<'_>) -> Result<ToolstackOp, DecodeError> {
    let dom = d.dom()?;
    let kib = d.u64()?;
    match tag {
        TAG_MEM_SET => Ok(ToolstackOp::MemSet {
            dom,
            target_kib: kib,
        }),
        _ => Ok(ToolstackOp::MemMax { dom, max_kib: kib }),
    }
}

/// Pages of `kib`, rounded down (`xc_domain_setmaxmem` shifts the KiB right).
fn pages_of_kib(kib: u64) -> u64 {
    kib / 4
}

/// A guest's ballooned GFNs, most recent last, as runs `(first GFN, pages)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ballooned(Vec<(u64, u64)>);

impl Ballooned {
    /// Pages ballooned out.
    pub fn pages(&self) -> u64 {
        self.0.iter().map(|(_, pages)| pages).sum()
    }

    fn push(&mut self, gfn: u64) {
        match self.0.last_mut() {
            Some((start, pages)) if *start == gfn + 1 => {
                *start = gfn;
                *pages += 1;
            }
            _ => self.0.push((gfn, 1)),
        }
    }

    fn pop(&mut self) -> Option<u64> {
        let (start, pages) = self.0.last_mut()?;
        let gfn = *start;
        *start += 1;
        *pages -= 1;
        if *pages == 0 {
            self.0.pop();
        }
        Some(gfn)
    }
}

/// One guest's balloon driver: what it holds and how far its kernel lets it inflate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BalloonDriver {
    /// Ballooned GFNs.
    pub ballooned: Ballooned,
    /// Pages the guest cannot give up (`GuestMemFloor`; 0 until the guest says).
    pub floor_pages: u64,
    /// Inflate rounds in a row that found nothing to give.
    pub failed_rounds: u32,
}

impl Hypervisor {
    /// `GuestMemFloor`: the guest's kernel tells its balloon driver how low it may go.
    pub(crate) fn guest_mem_floor(&mut self, dom: DomId, floor_pages: u64) {
        if self.is_alive(dom) {
            self.balloons.entry(dom).or_default().floor_pages = floor_pages;
        }
    }

    /// A KiB number in the domain's `memory/<key>`.
    fn memory_key_kib(&self, dom: DomId, key: &str) -> Option<u64> {
        let path = alloc::format!("{}/memory/{key}", xs_tree::dom_path(u32::from(dom.raw())));
        let node = self.xenstore.node(&path)?;
        core::str::from_utf8(node.value()).ok()?.parse().ok()
    }

    fn xs_write_str(&mut self, path: &str, value: &str) {
        let written = self
            .xenstore
            .write(self.xs_tool, None, path.as_bytes(), value.as_bytes());
        assert!(written.is_ok(), "toolstack write of {path}: {written:?}");
    }

    /// `xc_domain_setmaxmem(kib)`, mirrored into the domain table.
    fn set_max_kib(&mut self, dom: DomId, kib: u64) {
        let pages = pages_of_kib(kib);
        let set = self.memory.set_max_pages(dom, pages);
        assert_eq!(set, Ok(()), "{dom:?} has memory state");
        if let Some(d) = self.domains.get_mut(dom) {
            d.max_pages = pages;
        }
    }

    /// `xl mem-max`: `libxl_domain_setmaxmem`.
    pub(crate) fn mem_max<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        max_kib: u64,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        let target_kib = self.memory_key_kib(dom, "target");
        let _ = self.xs_cost_ns(1);
        let target_kib = target_kib.ok_or(ToolstackError::Mem(MemOpError::NoTarget))?;
        if max_kib < target_kib {
            return Err(ToolstackError::Mem(MemOpError::MaxBelowTarget));
        }
        self.set_max_kib(dom, max_kib + LIBXL_MAXMEM_CONSTANT_KIB);
        let path = alloc::format!(
            "{}/memory/static-max",
            xs_tree::dom_path(u32::from(dom.raw()))
        );
        self.xs_write_str(&path, &alloc::format!("{max_kib}"));
        let _ = self.xs_cost_ns(1);
        p.trace(&TraceEvent::MaxPages {
            dom,
            max_pages: self.memory.dom(dom).map_or(0, |m| m.max_pages),
        });
        Ok(())
    }

    /// `xl mem-set`: `libxl_set_memory_target` with enforce, then the guest's balloon
    /// driver is woken.
    pub(crate) fn mem_set<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        target_kib: u64,
        p: &mut P,
    ) -> Result<(), ToolstackError> {
        // One transaction: start, three reads, two writes, commit.
        let _ = self.xs_cost_ns(7);
        let current = self.memory_key_kib(dom, "target");
        current.ok_or(ToolstackError::Mem(MemOpError::NoTarget))?;
        let static_max = self.memory_key_kib(dom, "static-max");
        let static_max = static_max.ok_or(ToolstackError::Mem(MemOpError::NoStaticMax))?;
        let videoram = self.memory_key_kib(dom, "videoram").unwrap_or(0);
        let new_target = target_kib.saturating_sub(videoram);
        if new_target > static_max {
            return Err(ToolstackError::Mem(MemOpError::TargetAboveMax));
        }
        if dom == DomId::DOM0 && new_target < LIBXL_MIN_DOM0_MEM_KIB {
            let error = MemOpError::Dom0BelowMinimum {
                target_kib: new_target,
            };
            return Err(ToolstackError::Mem(error));
        }
        self.set_max_kib(dom, new_target + videoram + LIBXL_MAXMEM_CONSTANT_KIB);
        p.trace(&TraceEvent::MaxPages {
            dom,
            max_pages: self.memory.dom(dom).map_or(0, |m| m.max_pages),
        });
        let home = xs_tree::dom_path(u32::from(dom.raw()));
        self.xs_write_str(
            &alloc::format!("{home}/memory/target"),
            &alloc::format!("{new_target}"),
        );
        let uuid = self.domains.get(dom).map_or([0; 16], |d| d.uuid);
        let vm_memory = alloc::format!("{}/memory", xs_tree::vm_path(&uuid));
        self.xs_write_str(&vm_memory, &alloc::format!("{}", new_target / 1024));
        if self
            .domains
            .get(dom)
            .is_some_and(|d| d.guest_type != GuestType::Pv)
        {
            let pod_pages = (new_target + LIBXL_MAXMEM_CONSTANT_KIB) / 4;
            self.mem_set_pod_target(dom, pod_pages, p);
        }
        self.balloon_kick(dom, p);
        Ok(())
    }

    /// The guest's balloon driver sees the new target (its watch fires): its worker runs
    /// one `io.xenbus_step_ns` later, unless it is running already.
    pub(crate) fn balloon_kick<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        let running = self
            .jobs
            .values()
            .any(|j| matches!(j, Job::Balloon { dom: d } if *d == dom));
        if running {
            return;
        }
        let job = self.internal_job_id();
        self.jobs.insert(job, Job::Balloon { dom });
        let deadline = p
            .now()
            .after(Span::from_ns(self.costs.xenbus_step_ns.max(0)));
        p.defer_toolstack(job, deadline);
    }

    /// One round of the balloon worker (`balloon_process`).
    pub(crate) fn balloon_step<P: Platform + ?Sized>(&mut self, job: JobId, dom: DomId, p: &mut P) {
        // A shut-down (or crashed) guest's kernel no longer runs its balloon thread.
        let shut_down = self.domains.get(dom).is_some_and(|d| d.is_shutting_down);
        let alive = self.is_alive(dom) && !self.destroy_running(dom) && !shut_down;
        let target_pages = self.memory_key_kib(dom, "target").map(pages_of_kib);
        let current = self.balloon_current_pages(dom);
        let (Some(target_pages), true) = (target_pages, alive) else {
            self.jobs.remove(&job);
            finish(job, Ok(()), p);
            return;
        };
        let floor_pages = self.balloons.get(&dom).map_or(0, |b| b.floor_pages);
        let moved = if target_pages < current {
            let available = current.saturating_sub(floor_pages);
            let pages = (current - target_pages)
                .min(BALLOON_BATCH_PAGES)
                .min(available);
            let moved = self.balloon_inflate(dom, pages, p);
            if moved == 0 && pages == 0 {
                self.balloon_failed_round(job, dom, p);
                return;
            }
            moved
        } else if target_pages > current {
            self.balloon_deflate(dom, (target_pages - current).min(BALLOON_BATCH_PAGES), p)
        } else {
            0
        };
        if moved == 0 {
            self.jobs.remove(&job);
            finish(job, Ok(()), p);
            return;
        }
        if let Some(b) = self.balloons.get_mut(&dom) {
            b.failed_rounds = 0;
        }
        let batch_ns = if target_pages < current {
            BALLOON_INFLATE_BATCH_NS
        } else {
            BALLOON_DEFLATE_BATCH_NS
        };
        self.defer(job, batch_ns, p);
    }

    /// An inflate round found no page above the guest's floor (`BP_EAGAIN`): sleep 2^n s
    /// after the n-th such round in a row, or give up after `BALLOON_MAX_RETRY_COUNT`.
    fn balloon_failed_round<P: Platform + ?Sized>(&mut self, job: JobId, dom: DomId, p: &mut P) {
        let b = self.balloons.entry(dom).or_default();
        b.failed_rounds += 1;
        let failed_rounds = b.failed_rounds;
        if failed_rounds >= BALLOON_MAX_RETRY_COUNT {
            b.failed_rounds = 0;
            let tot_pages = self.memory.dom(dom).map_or(0, |m| m.tot_pages);
            p.trace(&TraceEvent::BalloonGaveUp { dom, tot_pages });
            self.jobs.remove(&job);
            finish(job, Ok(()), p);
            return;
        }
        let delay_s = (1i64 << failed_rounds).min(BALLOON_MAX_SCHEDULE_DELAY_S);
        self.defer(job, delay_s * 1_000_000_000, p);
    }

    /// `decrease_reservation` of `pages` of the guest's highest GFNs (4 KiB extents, one
    /// hypercall for the batch).
    fn balloon_inflate<P: Platform + ?Sized>(&mut self, dom: DomId, pages: u64, p: &mut P) -> u64 {
        self.scrub_catch_up(p.now());
        let before = self.memory.dom(dom).map_or(0, |m| m.tot_pages);
        let gfns = self
            .memory
            .dom(dom)
            .map_or_else(Vec::new, |m| m.p2m.highest_mapped(pages));
        let done = self.decrease_reservation(dom, dom, &gfns, 0);
        let freed = u64::try_from(done).unwrap_or(0);
        for gfn in gfns.iter().take(usize::try_from(freed).unwrap_or(0)) {
            self.balloons.entry(dom).or_default().ballooned.push(*gfn);
        }
        // A dropped PoD entry or a page moved into the PoD cache leaves tot_pages alone.
        let after = self.memory.dom(dom).map_or(0, |m| m.tot_pages);
        let delta = i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(0);
        self.memory_changed(dom, delta, p);
        freed
    }

    /// `populate_physmap` of up to `pages` ballooned GFNs, most recent first (one
    /// hypercall for the batch); the GFNs Xen refuses stay ballooned.
    fn balloon_deflate<P: Platform + ?Sized>(&mut self, dom: DomId, pages: u64, p: &mut P) -> u64 {
        self.scrub_catch_up(p.now());
        let mut gfns = Vec::new();
        while u64::try_from(gfns.len()).unwrap_or(u64::MAX) < pages {
            let Some(gfn) = self.balloons.get_mut(&dom).and_then(|b| b.ballooned.pop()) else {
                break;
            };
            gfns.push(gfn);
        }
        let done = self.populate_physmap(dom, dom, &gfns, 0, false);
        let given = u64::try_from(done.rc).unwrap_or(0);
        for gfn in gfns.iter().skip(usize::try_from(given).unwrap_or(0)).rev() {
            // Pushed back in reverse, so the next pop order is unchanged.
            self.balloons.entry(dom).or_default().ballooned.push(*gfn);
        }
        if !done.extents.is_empty() {
            p.trace(&TraceEvent::Extents {
                dom,
                extents: done.extents,
            });
        }
        self.memory_changed(dom, i64::try_from(given).unwrap_or(i64::MAX), p);
        given
    }

    /// Pages the guest's balloon driver holds (ballooned out).
    pub fn ballooned_pages(&self, dom: DomId) -> u64 {
        self.balloons.get(&dom).map_or(0, |b| b.ballooned.pages())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballooned_pages_come_back_most_recent_first() {
        let mut b = Ballooned::default();
        b.push(100);
        b.push(99);
        b.push(50);
        assert_eq!(b.pop(), Some(50));
        assert_eq!(b.pop(), Some(99));
        assert_eq!(b.pages(), 1);
    }

    #[test]
    fn descending_pushes_make_one_run() {
        let mut b = Ballooned::default();
        for gfn in (10..20).rev() {
            b.push(gfn);
        }
        assert_eq!(b.0, [(10, 10)]);
    }
}
