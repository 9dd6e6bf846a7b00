//! Invariant I9 (spec §13): the EPT the hardware walks equals the core's P2M — for every
//! HAP domain, the committed leaves are exactly the P2M's present leaves (same first
//! frame, order, machine frame and the R/W/X its type gives), and no leaf is left for a
//! domain the core no longer has or that does not use HAP.
//!
//! Follows spec `memory-iommu-migration.md` §2.3 and §13 (I9).
//!
//! # Invariants
//! - Checked after every input: the ranges the input's INVEPTs changed, or every leaf
//!   when the host holds at most [`FULL_CHECK_LEAVES_MAX`] of them.
//!
//! xensim differs: pending (not yet invalidated) writes are not looked at: the core
//! invalidates at the end of every input that changed a P2M.

use hypervisor_model::ids::{DomId, Gfn};
use hypervisor_model::memory::hap::ept_access;
use hypervisor_model::memory::Memory;
use hypervisor_model::sched::Violation;

use super::ept::EptTables;

/// Hosts with at most this many committed leaves are compared whole after every input.
pub const FULL_CHECK_LEAVES_MAX: usize = 4096;

/// The I9 violations of `ept` against `memory`.
pub fn check_ept(ept: &EptTables, memory: &Memory) -> Vec<Violation> {
    let mut out = Vec::new();
    let (touched, overflow) = ept.touched();
    if ept.leaf_count() <= FULL_CHECK_LEAVES_MAX {
        let mut doms = ept.domains();
        for (dom, _, _) in touched {
            doms.push(*dom);
        }
        doms.sort();
        doms.dedup();
        for dom in doms {
            check_range(ept, memory, dom, Gfn::new(0), u64::MAX, &mut out);
        }
        return out;
    }
    for (dom, gfn, pages) in touched {
        check_range(ept, memory, *dom, *gfn, *pages, &mut out);
    }
    for dom in overflow {
        check_range(ept, memory, *dom, Gfn::new(0), u64::MAX, &mut out);
    }
    out
}

/// Compares the leaves of `dom` covering `[gfn, gfn + pages)`.
fn check_range(
    ept: &EptTables,
    memory: &Memory,
    dom: DomId,
    gfn: Gfn,
    pages: u64,
    out: &mut Vec<Violation>,
) {
    let actual = ept.leaves_in(dom, gfn, pages);
    let expected: Vec<(u64, u64, u8, _)> = match memory.dom(dom) {
        Some(d) if memory.is_hap(dom) => d
            .p2m
            .leaves_in(gfn.raw(), pages)
            .into_iter()
            .filter_map(|(g, e)| ept_access(e.ty).map(|a| (g, e.mfn, e.leaf_order, a)))
            .collect(),
        _ => Vec::new(),
    };
    let actual: Vec<(u64, u64, u8, _)> = actual
        .into_iter()
        .map(|(g, e)| (g.raw(), e.mfn.raw(), e.order, e.access))
        .collect();
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(&expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    let detail = format!(
        "d{} from gfn {:#x}: EPT {:?} != P2M {:?} (of {} and {} leaves)",
        dom.raw(),
        gfn.raw(),
        actual.get(first).map(|l| (l.0, l.1, l.2)),
        expected.get(first).map(|l| (l.0, l.1, l.2)),
        actual.len(),
        expected.len()
    );
    out.push(Violation {
        invariant: "ept.p2m_equal",
        detail,
    });
}

#[cfg(test)]
mod tests {
    use super::check_ept;
    use crate::machine::ept::EptTables;
    use hypervisor_model::ids::{DomId, Gfn, Mfn};
    use hypervisor_model::memory::hap::ept_access;
    use hypervisor_model::memory::heap::AllocFlags;
    use hypervisor_model::memory::p2m::P2mType;
    use hypervisor_model::memory::Memory;
    use hypervisor_model::platform::EptEntry;

    fn d1() -> DomId {
        DomId::new(1).expect("domid")
    }

    /// A 64 MiB host whose HAP d1 holds one 2 MiB extent at GFN 0; returns its MFN.
    fn host() -> (Memory, u64) {
        let mut mem = Memory::new(&[1 << 14], 256);
        mem.add_domain(d1());
        assert_eq!(mem.set_max_pages(d1(), 1024), Ok(()));
        assert_eq!(mem.set_hap(d1()), Ok(()));
        let got = mem.populate(d1(), Gfn::new(0), 9, AllocFlags::default());
        (mem, got.map_or(0, |g| g.mfn.raw()))
    }

    fn leaf(mfn: u64) -> Option<EptEntry> {
        ept_access(P2mType::RamRw).map(|access| EptEntry {
            mfn: Mfn::new(mfn),
            order: 9,
            access,
        })
    }

    #[test]
    fn ept_matching_the_p2m_passes() {
        let (mem, mfn) = host();
        let mut ept = EptTables::default();
        assert_eq!(ept.write(d1(), Gfn::new(0), leaf(mfn)), Ok(()));
        assert_eq!(ept.invalidate(d1()), Ok(()));
        assert!(check_ept(&ept, &mem).is_empty());
    }

    #[test]
    fn ept_leaf_on_the_wrong_frame_is_caught() {
        // The leaf points 2 MiB past the frames the P2M maps.
        let (mem, mfn) = host();
        let mut ept = EptTables::default();
        assert_eq!(ept.write(d1(), Gfn::new(0), leaf(mfn + 512)), Ok(()));
        assert_eq!(ept.invalidate(d1()), Ok(()));
        let broken: Vec<&str> = check_ept(&ept, &mem).iter().map(|v| v.invariant).collect();
        assert_eq!(broken, ["ept.p2m_equal"]);
    }

    #[test]
    fn missing_ept_leaf_is_caught() {
        let (mem, _) = host();
        let mut ept = EptTables::default();
        // A write elsewhere makes d1 a touched domain; its 2 MiB leaf was never written.
        assert_eq!(ept.write(d1(), Gfn::new(0x1000), None), Ok(()));
        assert_eq!(ept.invalidate(d1()), Ok(()));
        assert_eq!(check_ept(&ept, &mem).len(), 1);
    }
}
