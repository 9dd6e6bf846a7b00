//! Random sequences of populates, balloon-outs, PoD marks, targets and faults, log-dirty
//! rounds and relinquishes on one HAP domain: replaying the P2M's leaf log in order always
//! gives exactly the P2M's leaves (what the EPT would hold), and every memory invariant
//! (I10 and the log-dirty one included) holds after every step.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::heap::AllocFlags;
use super::p2m::{LeafChange, P2mType};
use super::Memory;
use crate::ids::{DomId, Gfn};

#[derive(Clone, Debug)]
enum Op {
    Populate { gfn: u64, order: u8 },
    Decrease { gfn: u64 },
    PodMark { gfn: u64, order: u8 },
    PodTarget { pages: u64 },
    Fault { gfn: u64, write: bool },
    LogDirty { on: bool },
    Clean,
    Relinquish { budget_pages: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..4096u64;
    let order = prop_oneof![Just(0u8), Just(9)];
    prop_oneof![
        (g.clone(), order.clone()).prop_map(|(gfn, order)| Op::Populate { gfn, order }),
        g.clone().prop_map(|gfn| Op::Decrease { gfn }),
        (g.clone(), order).prop_map(|(gfn, order)| Op::PodMark { gfn, order }),
        (0..3000u64).prop_map(|pages| Op::PodTarget { pages }),
        (g, any::<bool>()).prop_map(|(gfn, write)| Op::Fault { gfn, write }),
        any::<bool>().prop_map(|on| Op::LogDirty { on }),
        Just(Op::Clean),
        (0..2048u64).prop_map(|budget_pages| Op::Relinquish { budget_pages }),
    ]
}

fn d1() -> DomId {
    DomId::new(1).expect("small domid")
}

fn apply(mem: &mut Memory, op: &Op) {
    let align = |gfn: u64, order: u8| gfn & !((1u64 << order) - 1);
    match *op {
        Op::Populate { gfn, order } => {
            let _ = mem.populate(
                d1(),
                Gfn::new(align(gfn, order)),
                order,
                AllocFlags::default(),
            );
        }
        Op::Decrease { gfn } => {
            let _ = mem.decrease(d1(), Gfn::new(gfn), 0);
        }
        Op::PodMark { gfn, order } => {
            let _ = mem.pod_mark(d1(), align(gfn, order), order);
        }
        Op::PodTarget { pages } => {
            let _ = mem.pod_set_target(d1(), pages);
        }
        Op::Fault { gfn, write } => {
            let ty = mem.p2m_lookup(d1(), Gfn::new(gfn)).map(|e| e.ty);
            if ty == Some(P2mType::PopulateOnDemand) {
                for _retry in 0..4 {
                    let fill = mem.pod_demand_populate(d1(), gfn, write);
                    if fill != Ok(super::pod::PodFill::Remapped) {
                        break;
                    }
                }
            } else if write && ty == Some(P2mType::RamLogdirty) {
                assert!(mem.logdirty_write_fault(d1(), gfn));
            }
        }
        Op::LogDirty { on: true } => {
            let _ = mem.logdirty_enable(d1());
        }
        Op::LogDirty { on: false } => {
            let _ = mem.logdirty_disable(d1());
        }
        Op::Clean => {
            let _ = mem.logdirty_op(d1(), 4096, true);
        }
        Op::Relinquish { budget_pages } => {
            let _ = mem.relinquish(d1(), budget_pages);
        }
    }
}

/// Replays the leaf log into `ept`; a `Gone` must name a leaf that is there.
fn replay(
    mem: &mut Memory,
    ept: &mut BTreeMap<u64, (u64, u8, P2mType)>,
) -> Result<(), TestCaseError> {
    for (_dom, log) in mem.take_leaf_changes() {
        for change in log {
            match change {
                LeafChange::Gone { gfn, order, ty } => {
                    let old = ept.remove(&gfn);
                    prop_assert_eq!(old.map(|(_, o, t)| (o, t)), Some((order, ty)));
                }
                LeafChange::New {
                    gfn,
                    mfn,
                    order,
                    ty,
                } => {
                    ept.insert(gfn, (mfn, order, ty));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    // Each step sweeps the 64 MiB host frame by frame: 32 cases keep it quick.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn leaf_log_replays_to_the_p2m_and_invariants_hold(
        ops in proptest::collection::vec(op(), 1..50)
    ) {
        // A 64 MiB host; the guest may hold 3000 pages.
        let mut mem = Memory::new(&[1 << 14], 256);
        mem.add_domain(d1());
        prop_assert_eq!(mem.set_max_pages(d1(), 3000), Ok(()));
        prop_assert_eq!(mem.set_hap(d1()), Ok(()));
        let mut ept = BTreeMap::new();
        for op in &ops {
            mem.clear_journal();
            apply(&mut mem, op);
            replay(&mut mem, &mut ept)?;
            let p2m: BTreeMap<u64, (u64, u8, P2mType)> = mem
                .dom(d1())
                .map(|d| d.p2m.leaves_in(0, u64::MAX))
                .unwrap_or_default()
                .into_iter()
                .map(|(g, e)| (g, (e.mfn, e.leaf_order, e.ty)))
                .collect();
            prop_assert_eq!(&ept, &p2m, "after {:?}", op);
            let tot = mem.dom(d1()).map_or(0, |m| m.tot_pages);
            let mut out = Vec::new();
            mem.check_invariants(&[(d1(), tot)], &mut out);
            prop_assert!(out.is_empty(), "after {:?}: {}", op, format!("{out:?}"));
        }
    }
}
