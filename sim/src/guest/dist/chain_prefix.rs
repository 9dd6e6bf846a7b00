//! The first `j` bits of the pinned `log2` squaring chain (`guest/dist.rs`) without running
//! the chain: a table-and-series `log2` close enough to certify them, or `None` (rare)
//! when it cannot, and the caller runs the chain itself. Integer-only, like the rest.
//!
//! # Why the bits are certain
//!
//! Let `m0 = 1 + x / 2^32` be the mantissa, `T = 2^j × log2(m0)` (exact, real) and `F` the
//! chain's first `j` bits. Each chain step truncates the square (and its halving) by less
//! than `2^-32`, on a mantissa of at least 1: if `m` is the chain's mantissa and `M =
//! m0^(2^j) / 2^F` the exact value under the same bit decisions, `m = M × (1 − ε)` with
//! `0 ≤ ε ≤ (2^j − 1) × 2^-32` (`ε' ≤ 2ε + 2^-32`). As `1 ≤ m < 2`, `T − F = log2(M)` lies
//! in `[0, 1 + η)` with `η = −log2(1 − ε) ≤ 1.54 ε` (for `ε ≤ 2^-4`, i.e. `j ≤ 28`). So `F`
//! is `floor(T)`, or `floor(T) − 1` when `T`'s fraction is below `η`. In the `64 − j`
//! low bits of a Q64 `log2`, `η` is below `1.54 × 2^32` for every such `j`.
//!
//! [`log2_q64`] is within [`LOG2_ERROR_Q64`] of `2^64 × log2(m0)`. When its low `64 − j`
//! bits are at least [`LOW_GUARD_Q64`] (`η` plus the error) and at most the error below
//! the next integer, its top bits are `floor(T)` and `T`'s fraction is at least `η`: they
//! are `F`. Otherwise the answer is `None`.
//!
//! # Invariants
//! - A returned prefix equals the chain's (the `chain_prefix_*` tests check it against
//!   [`super::log2_fraction_steps`]; one of them walks every mantissa when asked).
//! - `steps` is at most [`PREFIX_STEPS_MAX`] (asserted).

/// Most chain steps a prefix is certified for (`ε ≤ 2^-4` above).
pub(super) const PREFIX_STEPS_MAX: u32 = 28;

/// Bound on `|log2_q64(x) − 2^64 × log2(1 + x / 2^32)|`: the series' dropped terms (below
/// `2^26.6`), the table's error (below `2^13`) and a few truncations.
const LOG2_ERROR_Q64: u64 = 1 << 28;

/// A Q64 `log2` whose fraction below the prefix is under this may belong to a chain that
/// lagged a bit (`1.54 × 2^32` for `η`, plus [`LOG2_ERROR_Q64`]).
const LOW_GUARD_Q64: u64 = 1 << 33;
const _: () = assert!(LOW_GUARD_Q64 >= 6_620_000_000 + LOG2_ERROR_Q64);
const _: () = assert!(LOW_GUARD_Q64 + LOG2_ERROR_Q64 < 1 << (64 - PREFIX_STEPS_MAX));

/// Mantissa bits that pick a table entry.
const TABLE_BITS: u32 = 8;
const TABLE_LEN: usize = 1 << TABLE_BITS;

/// `log2 e × 2^62`, rounded to nearest (below 2^63: products with it stay 64 × 64-bit).
const LOG2E_Q62: i128 = 6_653_256_548_922_161_246;
const _: () = assert!(LOG2E_Q62 < 1 << 63);

/// One entry per interval `[1 + i / 256, 1 + (i + 1) / 256)` of the mantissa.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// About `1 / (1 + (i + 1/2) / 256)`, Q63 (truncated).
    inv_q63: u64,
    /// `log2(2^63 / inv_q63)`, Q64, at most `2^-51` below it.
    log2_q64: u64,
}

const TABLE: [Entry; TABLE_LEN] = table();

/// Builds [`TABLE`] at compile time; each `log2` by the squaring chain in Q62 (52 bits,
/// off by at most one in the last: the argument above with `2^-62` truncations).
// The `as` casts: `index < 256` widens, and the asserted values fit `u64`; `try_from` is
// not available in a `const fn`.
#[allow(clippy::cast_possible_truncation)]
const fn table() -> [Entry; TABLE_LEN] {
    const LOG2_BITS: u32 = 52;
    let mut out = [Entry {
        inv_q63: 0,
        log2_q64: 0,
    }; TABLE_LEN];
    let mut index = 0;
    while index < TABLE_LEN {
        // 1 / (1 + (i + 1/2) / 256) = 512 / (512 + 2i + 1).
        let inv_q63 = (1u128 << 63) * 512 / (512 + 2 * index as u128 + 1);
        assert!(inv_q63 > 1 << 62);
        assert!(inv_q63 < 1 << 63);
        let mut mantissa_q62 = (1u128 << 125) / inv_q63;
        let mut fraction = 0u128;
        let mut step = 0;
        while step < LOG2_BITS {
            mantissa_q62 = (mantissa_q62 * mantissa_q62) >> 62;
            fraction <<= 1;
            if mantissa_q62 >= 2 << 62 {
                mantissa_q62 >>= 1;
                fraction |= 1;
            }
            step += 1;
        }
        let log2_q64 = fraction << (64 - LOG2_BITS);
        assert!(log2_q64 <= u64::MAX as u128);
        out[index] = Entry {
            inv_q63: inv_q63 as u64,
            log2_q64: log2_q64 as u64,
        };
        index += 1;
    }
    out
}

/// `2^64 × log2(1 + x / 2^32)` within [`LOG2_ERROR_Q64`], `None` outside `[0, 2^64)`.
///
/// `log2(m0) = log2(2^63 / inv) + log2(1 + r)` with `1 + r = m0 × inv / 2^63` (`|r| <
/// 2^-9`), and `ln(1 + r) ≈ r − r² / 2 + r³ / 3` (the rest is below `2^-38`).
#[inline]
pub(super) fn log2_q64(x: u32) -> Option<u64> {
    let entry = TABLE[usize::try_from(x >> (32 - TABLE_BITS)).unwrap_or(0)];
    let mantissa_q32 = (1u64 << 32) | u64::from(x);
    // `m0 × inv` in Q95, then `r` in Q64 (below 2^55 in magnitude; every value below
    // fits an `i64`, so each product is one 64 × 64-bit multiplication).
    let product_q95 = u128::from(mantissa_q32) * u128::from(entry.inv_q63);
    let r_q64 = i128::try_from(product_q95 >> 31).unwrap_or(0) - (1i128 << 64);
    debug_assert!(
        r_q64.unsigned_abs() < 1 << 55,
        "r beyond the table's interval"
    );
    let r_q64 = i64::try_from(r_q64).unwrap_or(0);
    let r2_q64 = i64::try_from(square_q64(r_q64)).unwrap_or(0);
    let r3_q64 = i64::try_from((i128::from(r2_q64) * i128::from(r_q64)) >> 64).unwrap_or(0);
    let ln_q64 = r_q64 - (r2_q64 >> 1) + r3_q64 / 3;
    let log2_q64 = i128::from(entry.log2_q64) + ((i128::from(ln_q64) * LOG2E_Q62) >> 62);
    u64::try_from(log2_q64).ok()
}

/// `(value × value) >> 64` (of a Q64 value: its square in Q64).
fn square_q64(value: i64) -> i128 {
    (i128::from(value) * i128::from(value)) >> 64
}

/// The first `steps` bits of the chain's `log2` fraction of the mantissa `1 + x / 2^32`
/// (what [`super::log2_fraction_steps`] leaves after `steps` steps from 0), or `None`
/// when [`log2_q64`] is too close to a boundary to certify them (see the module doc).
#[inline]
pub(super) fn chain_prefix(x: u32, steps: u32) -> Option<u32> {
    prefix_of_log2(log2_q64(x)?, steps)
}

/// The chain prefix of `steps` bits that a [`log2_q64`] value certifies, if any.
#[inline]
fn prefix_of_log2(log2_q64: u64, steps: u32) -> Option<u32> {
    assert!(steps <= PREFIX_STEPS_MAX, "prefix longer than certified");
    let low_bits = 64 - steps;
    // The bits below the prefix; with `steps = 0` all of them (no shift by 64 below).
    let below_mask = u64::MAX >> steps;
    let below_q64 = log2_q64 & below_mask;
    let certain = below_q64 >= LOW_GUARD_Q64 && below_q64 <= below_mask - LOG2_ERROR_Q64;
    let prefix = log2_q64.checked_shr(low_bits).unwrap_or(0);
    certain.then(|| u32::try_from(prefix).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::super::{log2_fraction_steps, FRACTION_BITS};
    use super::*;

    /// The chain's 32 bits for the mantissa fraction `x` (one lane).
    fn chain_fraction(x: u32) -> u32 {
        let mut xs = [x];
        let mut fractions = [0u32];
        log2_fraction_steps(&mut xs, &mut fractions, FRACTION_BITS);
        fractions[0]
    }

    /// Every certified prefix of `x` (each step count) is the chain's; returns how many
    /// were not certified.
    fn check_every_prefix(x: u32) -> u32 {
        check_prefixes_of(x, chain_fraction(x))
    }

    /// [`check_every_prefix`] against `full`, the chain's 32 bits for `x`.
    fn check_prefixes_of(x: u32, full: u32) -> u32 {
        let Some(log2) = log2_q64(x) else {
            return PREFIX_STEPS_MAX + 1;
        };
        let mut uncertain = 0;
        for steps in 0..=PREFIX_STEPS_MAX {
            match prefix_of_log2(log2, steps) {
                Some(prefix) => assert_eq!(
                    u64::from(prefix),
                    u64::from(full)
                        .checked_shr(FRACTION_BITS - steps)
                        .unwrap_or(0),
                    "x = {x}, steps = {steps}"
                ),
                None => uncertain += 1,
            }
        }
        uncertain
    }

    #[test]
    fn log2_q64_of_one_is_near_zero() {
        // x = 0 is the mantissa 1: log2 is 0, and the approximation may land just below.
        let value = log2_q64(0);

        assert!(value.is_none_or(|v| v < LOG2_ERROR_Q64), "{value:?}");
    }

    #[test]
    fn log2_q64_of_one_and_a_half_is_within_the_error() {
        // log2(1.5) × 2^64 = 10_790_653_543_520_307_103.6, rounded.
        const LOG2_THREE_HALVES_Q64: u64 = 10_790_653_543_520_307_104;

        let value = log2_q64(1 << 31).unwrap_or(0);

        assert!(
            value.abs_diff(LOG2_THREE_HALVES_Q64) < LOG2_ERROR_Q64,
            "{value}"
        );
    }

    #[test]
    fn chain_prefix_matches_the_chain_on_a_spread_of_mantissas() {
        // Every 65_521st mantissa (a prime stride), plus the ends and the table's edges.
        let strided = (0..=u32::MAX).step_by(65_521);
        let edges = (0..TABLE_LEN).flat_map(|i| {
            let start = u32::try_from(i << (32 - TABLE_BITS)).unwrap_or(0);
            [start, start.wrapping_sub(1), start.wrapping_add(1)]
        });
        let mut uncertain = 0u64;
        let mut checked = 0u64;
        for x in strided.chain(edges).chain([u32::MAX, u32::MAX - 1]) {
            uncertain += u64::from(check_every_prefix(x));
            checked += u64::from(PREFIX_STEPS_MAX) + 1;
        }
        // Most prefixes are certified (about 2^(steps − 31) are not).
        assert!(
            uncertain * 50 < checked,
            "{uncertain} of {checked} uncertain"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        #[test]
        fn chain_prefix_matches_the_chain(x: u32) {
            check_every_prefix(x);
        }
    }

    /// Every mantissa, every step count (the chains eight lanes at a time; about ten CPU
    /// minutes in release):
    /// `cargo test --release -p xensim --lib chain_prefix_matches_on_every_mantissa --
    /// --ignored`.
    #[test]
    #[ignore = "exhaustive; run in release when the prefix or the chain changes"]
    fn chain_prefix_matches_on_every_mantissa() {
        const LANES: usize = 8;
        for first in (0..=u32::MAX).step_by(LANES) {
            // `first` is a multiple of 8 below 2^32: no lane wraps.
            let xs: [u32; LANES] =
                core::array::from_fn(|lane| first + u32::try_from(lane).unwrap_or(0));
            let mut chain_xs = xs;
            let mut fractions = [0u32; LANES];
            log2_fraction_steps(&mut chain_xs, &mut fractions, FRACTION_BITS);
            for (&x, &full) in xs.iter().zip(&fractions) {
                check_prefixes_of(x, full);
            }
        }
    }
}
