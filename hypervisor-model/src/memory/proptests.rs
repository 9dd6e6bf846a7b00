//! Random sequences of allocations, frees, balloon-outs, claims and domain lifetimes on a
//! small two-node host (checked frame by frame) and on a large one (checked per changed
//! extent): every invariant holds after every step, nothing panics, and the free-page
//! count matches a reference model that only adds and subtracts.

use alloc::format;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::heap::AllocFlags;
use super::{MemError, Memory};
use crate::ids::{DomId, Gfn};

/// Domains 1..=3 come and go.
const DOMAIN_COUNT: u16 = 3;

#[derive(Clone, Debug)]
enum Op {
    Create { dom: u16, max_pages: u64 },
    Populate { dom: u16, gfn: u64, order: u8 },
    Decrease { dom: u16, gfn: u64, order: u8 },
    Claim { dom: u16, pages: u64 },
    Relinquish { dom: u16, budget_pages: u64 },
    Destroy { dom: u16 },
    ExactNode { dom: u16, gfn: u64, node: u32 },
}

fn op(gfn_max: u64, pages_max: u64) -> impl Strategy<Value = Op> {
    let d = 1..=DOMAIN_COUNT;
    let g = 0..gfn_max;
    let order = prop_oneof![Just(0u8), Just(1), Just(4), Just(9), Just(18)];
    prop_oneof![
        (d.clone(), 0..pages_max).prop_map(|(dom, max_pages)| Op::Create { dom, max_pages }),
        (d.clone(), g.clone(), order.clone()).prop_map(|(dom, gfn, order)| Op::Populate {
            dom,
            gfn,
            order
        }),
        (d.clone(), g.clone(), order).prop_map(|(dom, gfn, order)| Op::Decrease {
            dom,
            gfn,
            order
        }),
        (d.clone(), 0..pages_max).prop_map(|(dom, pages)| Op::Claim { dom, pages }),
        (d.clone(), 0..pages_max / 4)
            .prop_map(|(dom, budget_pages)| Op::Relinquish { dom, budget_pages }),
        d.clone().prop_map(|dom| Op::Destroy { dom }),
        (d, g, 0u32..2).prop_map(|(dom, gfn, node)| Op::ExactNode { dom, gfn, node }),
    ]
}

fn dom(raw: u16) -> DomId {
    DomId::new(raw).expect("small domid")
}

/// Aligns `gfn` down to the extent order, as a caller of populate must.
fn aligned(gfn: u64, order: u8) -> Gfn {
    Gfn::new(gfn & !((1u64 << order) - 1))
}

/// Applies one operation; returns the change of free pages the reference model expects.
fn apply(mem: &mut Memory, op: &Op) -> i128 {
    match *op {
        Op::Create { dom: d, max_pages } => {
            if mem.dom(dom(d)).is_none() {
                mem.add_domain(dom(d));
                assert_eq!(mem.set_max_pages(dom(d), max_pages), Ok(()));
            }
            0
        }
        Op::Populate { dom: d, gfn, order } => {
            let result = mem.populate(dom(d), aligned(gfn, order), order, AllocFlags::default());
            result.map_or(0, |_| -(1i128 << order))
        }
        Op::ExactNode { dom: d, gfn, node } => {
            let flags = AllocFlags {
                node: Some(node),
                exact_node: true,
                ..AllocFlags::default()
            };
            let result = mem.populate(dom(d), Gfn::new(gfn), 0, flags);
            if let Ok(got) = result {
                assert_eq!(got.node, node, "exact node request served elsewhere");
            }
            result.map_or(0, |_| -1)
        }
        Op::Decrease { dom: d, gfn, order } => {
            let tot_before = mem.dom(dom(d)).map_or(0, |m| m.tot_pages);
            let _ = mem.decrease(dom(d), aligned(gfn, order), order);
            let tot_after = mem.dom(dom(d)).map_or(0, |m| m.tot_pages);
            i128::from(tot_before - tot_after)
        }
        Op::Claim { dom: d, pages } => {
            let unclaimed = mem.free_pages() - mem.outstanding_claims();
            let result = mem.claim_pages(dom(d), pages);
            if result == Err(MemError::ClaimNoMemory) {
                let tot = mem.dom(dom(d)).map_or(0, |m| m.tot_pages);
                assert!(pages - tot > unclaimed, "claim refused with memory free");
            }
            0
        }
        Op::Relinquish {
            dom: d,
            budget_pages,
        } => i128::from(mem.relinquish(dom(d), budget_pages)),
        Op::Destroy { dom: d } => {
            let freed = mem.relinquish(dom(d), u64::MAX);
            mem.remove_domain(dom(d));
            i128::from(freed)
        }
    }
}

fn run(mem: &mut Memory, ops: &[Op]) -> Result<(), TestCaseError> {
    for op in ops {
        mem.clear_journal();
        let before = i128::from(mem.free_pages());
        let delta = apply(mem, op);
        prop_assert_eq!(i128::from(mem.free_pages()), before + delta, "{:?}", op);
        let tot: Vec<(DomId, u64)> = (1..=DOMAIN_COUNT)
            .filter_map(|d| mem.dom(dom(d)).map(|m| (dom(d), m.tot_pages)))
            .collect();
        let mut out = Vec::new();
        mem.check_invariants(&tot, &mut out);
        prop_assert!(out.is_empty(), "after {:?}: {}", op, format!("{out:?}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn small_host_keeps_every_invariant_frame_by_frame(
        ops in proptest::collection::vec(op(2048, 3000), 1..60)
    ) {
        // Two nodes of 4 and 6 MiB (1024 + 1536 pages); Xen keeps 100 pages.
        let mut mem = Memory::new(&[1024, 1536], 100);
        run(&mut mem, &ops)?;
    }

    #[test]
    fn large_host_keeps_every_invariant_per_extent(
        ops in proptest::collection::vec(op(1 << 21, 1 << 21), 1..40)
    ) {
        // Two nodes of 8 GiB each: past the frame-by-frame sweep size.
        let mut mem = Memory::new(&[1 << 21, 1 << 21], 1 << 12);
        run(&mut mem, &ops)?;
    }
}
