//! `CpuMask` against a bit-by-bit model: every query and in-place operation, on one-word
//! masks (the one-word paths) and on wider inline and heap masks (the word loops), must
//! answer as a plain list of booleans does.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::{CpuMask, INLINE_CPUS_MAX};
use crate::ids::PcpuId;

/// An in-place operation of two masks (`and_with`, `or_with`, `and_not_with`).
type InPlace = fn(&mut CpuMask, &CpuMask);
/// The same operation on one pCPU's membership.
type ModelOp = fn(bool, bool) -> bool;

fn cpu(n: u32) -> PcpuId {
    PcpuId::new(n).expect("test cpu in range")
}

/// A mask and its model, one boolean per pCPU.
fn build(width: u32, bits: &[bool]) -> (CpuMask, Vec<bool>) {
    let model: Vec<bool> = (0..width)
        .map(|n| bits[usize::try_from(n).unwrap_or(0) % bits.len()])
        .collect();
    let mut mask = CpuMask::empty(width);
    for (n, set) in (0..width).zip(&model) {
        if *set {
            mask.set(cpu(n));
        }
    }
    (mask, model)
}

/// The pCPUs of a model in ascending order.
fn members(model: &[bool]) -> Vec<u32> {
    (0u32..)
        .zip(model)
        .filter_map(|(n, set)| set.then_some(n))
        .collect()
}

/// `cpumask_cycle` on a model: the first member after `start`, else the first.
fn model_cycle(model: &[bool], start: u32) -> Option<u32> {
    let all = members(model);
    all.iter()
        .copied()
        .find(|n| *n > start)
        .or_else(|| all.first().copied())
}

fn zip(a: &[bool], b: &[bool], op: impl Fn(bool, bool) -> bool) -> Vec<bool> {
    a.iter().zip(b).map(|(x, y)| op(*x, *y)).collect()
}

fn widths() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(1u32),
        Just(7),
        Just(63),
        Just(64),
        Just(65),
        Just(130),
        Just(INLINE_CPUS_MAX + 3),
    ]
}

fn bits() -> impl Strategy<Value = Vec<bool>> {
    prop_oneof![
        prop::collection::vec(any::<bool>(), 1..80),
        Just(alloc::vec![false]),
        Just(alloc::vec![true]),
    ]
}

proptest! {
    #[test]
    fn queries_match_the_bit_model(
        width in widths(), a_bits in bits(), b_bits in bits(), c_bits in bits(),
        start in 0u32..1100,
    ) {
        let (a, am) = build(width, &a_bits);
        let (b, bm) = build(width, &b_bits);
        let (c, cm) = build(width, &c_bits);
        let start_raw = start % width;
        let start = cpu(start_raw);
        let a_list = members(&am);
        prop_assert_eq!(a.iter().map(PcpuId::raw).collect::<Vec<_>>(), a_list.clone());
        prop_assert_eq!(a.is_empty(), a_list.is_empty());
        prop_assert_eq!(a.weight(), u32::try_from(a_list.len()).unwrap_or(0));
        prop_assert_eq!(a.first().map(PcpuId::raw), a_list.first().copied());
        prop_assert_eq!(a.cycle(start).map(PcpuId::raw), model_cycle(&am, start_raw));
        let ab = zip(&am, &bm, |x, y| x && y);
        prop_assert_eq!(a.first_and(&b).map(PcpuId::raw), members(&ab).first().copied());
        prop_assert_eq!(
            a.cycle_in_and(&b, start).map(PcpuId::raw),
            model_cycle(&ab, start_raw)
        );
        prop_assert_eq!(a.intersects(&b), ab.contains(&true));
        prop_assert_eq!(a.is_subset(&b), !zip(&am, &bm, |x, y| x && !y).contains(&true));
        let abc = zip(&ab, &cm, |x, y| x && y);
        prop_assert_eq!(a.intersects_and(&b, &c), abc.contains(&true));
        let ab_not_c = zip(&ab, &cm, |x, y| x && !y);
        prop_assert_eq!(a.intersects_and_not(&b, &c), ab_not_c.contains(&true));
        let f = |[x, y, z]: [u64; 3]| x & y & !z;
        prop_assert_eq!(
            CpuMask::combined([&a, &b, &c], f).iter().map(PcpuId::raw).collect::<Vec<_>>(),
            members(&ab_not_c)
        );
        prop_assert_eq!(CpuMask::any_combined([&a, &b, &c], f), ab_not_c.contains(&true));
        let expected = if ab_not_c[usize::try_from(start_raw).unwrap_or(0)] {
            Some(start_raw)
        } else {
            model_cycle(&ab_not_c, start_raw)
        };
        prop_assert_eq!(
            CpuMask::test_or_cycle_combined([&a, &b, &c], start, f).map(PcpuId::raw),
            expected
        );
    }

    #[test]
    fn set_clear_and_test_match_the_bit_model(
        width in widths(), a_bits in bits(), b_bits in bits(),
    ) {
        // `set`, `clear` and `test` index the words directly (an inline mask without a
        // bounds check): clearing the pCPUs of `b` from `a` must leave `a & !b`.
        let (mut a, am) = build(width, &a_bits);
        let (_, bm) = build(width, &b_bits);
        for n in members(&bm) {
            a.clear(cpu(n));
        }
        let expected = zip(&am, &bm, |x, y| x && !y);
        for (n, member) in (0..width).zip(&expected) {
            prop_assert_eq!(a.test(cpu(n)), *member);
        }
        prop_assert!(!a.test(cpu(width)), "a pCPU past the width");
        prop_assert_eq!(a.iter().map(PcpuId::raw).collect::<Vec<_>>(), members(&expected));
    }

    #[test]
    fn in_place_operations_match_the_bit_model(
        width in widths(), a_bits in bits(), b_bits in bits(),
    ) {
        let (a, am) = build(width, &a_bits);
        let (b, bm) = build(width, &b_bits);
        let cases: [(InPlace, ModelOp); 3] = [
            (CpuMask::and_with, |x, y| x && y),
            (CpuMask::or_with, |x, y| x || y),
            (CpuMask::and_not_with, |x, y| x && !y),
        ];
        let mut asked = Vec::new();
        let mut kept = a.clone();
        kept.retain(|c| {
            asked.push(c.raw());
            bm[usize::try_from(c.raw()).unwrap_or(0)]
        });
        prop_assert_eq!(&asked, &members(&am));
        prop_assert_eq!(
            kept.iter().map(PcpuId::raw).collect::<Vec<_>>(),
            members(&zip(&am, &bm, |x, y| x && y))
        );
        for (op, model_op) in cases {
            let mut out = a.clone();
            op(&mut out, &b);
            let expected = zip(&am, &bm, model_op);
            prop_assert_eq!(out.iter().map(PcpuId::raw).collect::<Vec<_>>(), members(&expected));
            prop_assert_eq!(out.clone(), build(width, &expected).0);
        }
    }
}
