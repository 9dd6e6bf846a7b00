//! Sampling of scenario distributions (`specs/scenario.md` §6.2), integer-only and pinned.
//!
//! A [`Dist`] is drawn from its own named [`Stream`]. The routines below are part of the
//! replay contract: every platform and build profile gives the same draws, and the golden
//! snapshot `golden/distributions__first_1000_seed1.snap` shows any change in review.
//!
//! # Pinned algorithms
//!
//! - `const:V` → `V`; draws nothing from the stream.
//! - `uniform:A..B` → [`Stream::uniform_u64_inclusive`]`(A, B)` (rejection on `u64`).
//! - `exp:M` → `floor(M × E)`. One `u32` draw `k`; `U = (k + 1) / 2^32` in Q32.32;
//!   `E = −ln(U) = −log2(U) × ln 2`. `log2` normalises by the leading-zero count (integer
//!   part), then takes 32 fraction bits by squaring the Q32 mantissa in `[1, 2)`: each square
//!   is truncated to Q32 (`(m × m) >> 32`); when it reaches 2 the bit is 1 and `m` halves.
//!   `−log2(U)` in Q32.32 times `LN2_Q32 = 0xB172_17F8` (ln 2 × 2^32, rounded), `>> 32`.
//! - `lognormal:M,S` (S in thousandths) → `floor(M × exp(S × Z))`. `Z` = the sum of 12 `u32`
//!   draws read as Q32 uniforms in `[0, 1)`, minus 6 (Q32.32, signed). `x = floor(S_milli × Z
//!   / 1000)`; `y = floor(x × LOG2E_Q32 / 2^32)` with `LOG2E_Q32 = 6_196_328_019` (log2 e ×
//!   2^32, rounded); `exp(x) = 2^y`: integer part `floor(y)` as a shift, fraction `f` bit by
//!   bit: the Q32 mantissa starts at 1.0 and, for each set bit `i` (from 2^-1 down to 2^-32),
//!   is multiplied by the table entry `2^(2^-i)` in Q32 (rounded), truncating `>> 32`. The
//!   result is `(M × mantissa × 2^floor(y)) >> 32`.
//! - Products use `u128`; every sample is clamped to `[0, 2^62 − 1]` ([`SAMPLE_MAX`]).
//!
//! # Invariants
//!
//! - No floating point anywhere; all intermediate values fit their integer types.
//! - `exp` consumes exactly one `u32` per sample, `lognormal` exactly twelve.
//!
//! Left out: the parsing of distribution text (the scenario loader builds [`Dist`]).

use crate::rng::Stream;
use crate::scenario::model::Dist;
use chain_prefix::{chain_prefix, PREFIX_STEPS_MAX};

mod chain_prefix;

/// Largest value a sample takes (`2^62 − 1`, §6.2).
pub const SAMPLE_MAX: u64 = (1 << 62) - 1;

/// `ln 2 × 2^32`, rounded to nearest.
const LN2_Q32: u128 = 0xB172_17F8;

/// `log2 e × 2^32`, rounded to nearest.
const LOG2E_Q32: i128 = 6_196_328_019;

/// One in Q32.32.
const ONE_Q32: u64 = 1 << 32;

/// Uniforms summed for the approximately normal `Z` (Irwin–Hall, variance 1).
const NORMAL_TERMS: u32 = 12;

/// `2^(2^-i)` in Q32, rounded to nearest, for `i = 1..=32`.
const EXP2_FRACTION_TABLE_Q32: [u64; 32] = [
    0x1_6A09_E668,
    0x1_306F_E0A3,
    0x1_172B_83C8,
    0x1_0B55_86D0,
    0x1_059B_0D31,
    0x1_02C9_A3E7,
    0x1_0163_DAA0,
    0x1_00B1_AFA6,
    0x1_0058_C86E,
    0x1_002C_605E,
    0x1_0016_2F39,
    0x1_000B_175F,
    0x1_0005_8BA0,
    0x1_0002_C5CC,
    0x1_0001_62E5,
    0x1_0000_B172,
    0x1_0000_58B9,
    0x1_0000_2C5D,
    0x1_0000_162E,
    0x1_0000_0B17,
    0x1_0000_058C,
    0x1_0000_02C6,
    0x1_0000_0163,
    0x1_0000_00B1,
    0x1_0000_0059,
    0x1_0000_002C,
    0x1_0000_0016,
    0x1_0000_000B,
    0x1_0000_0006,
    0x1_0000_0003,
    0x1_0000_0001,
    0x1_0000_0001,
];

/// Draws one value of `dist` from `stream` (pinned; see the module doc).
pub fn sample(dist: &Dist, stream: &mut Stream) -> u64 {
    let value = match *dist {
        Dist::Const(value) => value,
        Dist::Uniform { lo, hi } => stream.uniform_u64_inclusive(lo, hi),
        Dist::Exp { mean } => sample_exp(mean, stream),
        Dist::LogNormal {
            median,
            sigma_milli,
        } => sample_lognormal(median, sigma_milli, stream),
    };
    value.min(SAMPLE_MAX)
}

/// `floor(mean × −ln(U))`, `U = (k + 1) / 2^32`: the whole chain, one sample.
fn sample_exp(mean: u64, stream: &mut Stream) -> u64 {
    let unit_q32 = u64::from(stream.next_u32()) + 1;
    let ([neg_int_part], mut xs) = split_units_q32([unit_q32]);
    let mut fraction = [0u32];
    log2_fraction_steps(&mut xs, &mut fraction, FRACTION_BITS);
    exp_sample(mean, neg_int_part, u64::from(fraction[0]))
}

/// Lanes of [`ExpAhead::sample`]: eight independent squaring chains run side by side
/// (eight measured a little faster than four on `bench-64x512`).
pub const EXP_LANES: usize = 8;

/// Fraction bits of `log2` the squaring chain computes in full.
const FRACTION_BITS: u32 = 32;

/// Chain steps [`ExpAhead`] runs before it checks whether the rest can matter, above the
/// bit length of the mean: after `j` steps the bits left move `mean × −ln(U)` by at most
/// about `mean × ln 2 × 2^-j` (the `slack`), so with `j = bits(mean) + 3` a lane's sample
/// stays open, and its chain runs on, one time in 16 to 32 (the product's dropped 32 bits
/// fall below the slack). Only for means too long for [`chain_prefix`].
const EXP_STEPS_ABOVE_MEAN_BITS: u32 = 3;

/// [`chain_prefix`]'s bits before the check: `j = (bits(mean) + 31) / 2` balances the
/// lanes left open (about `2^(bits(mean) − j − 1)`) against the prefixes it cannot
/// certify (about `2^(j − 31)`); both run the whole chain. 24 bits for a mean of 100 us.
const EXP_PREFIX_STEPS_PLUS_MEAN_BITS: u32 = 31;

/// `exp:mean` drawn [`EXP_LANES`] at a time: the same values as that many [`sample`]
/// calls, in draw order, computed with the squaring chains interleaved (each chain is 32
/// dependent multiplications; side by side they overlap) and cut short where the bits
/// left cannot change a sample.
///
/// A sample is `floor(P / 2^32)` for the product `P = mean × floor(N × ln 2)` (Q32.32
/// fixed point, `N = −log2(U)`), and `P` only falls as the fraction bits of `log2(U)`
/// grow. Once the first `steps_first` of them are known, the largest `P` is the one with
/// the rest all zeros, and the rest can lower it by at most `slack_q32 = mean × (floor(
/// rest_max × ln 2) + 1)` (in Q32.32 units; a floor of a difference is at most one less
/// than the difference of the floors). When that largest `P`'s dropped 32 bits are at least
/// the slack, every value of the rest gives the same floor: the sample is known and the
/// rest of that lane's chain is skipped. Otherwise the lane's chain runs on alone.
///
/// Up to [`PREFIX_STEPS_MAX`] first bits, [`chain_prefix`] gives them without the chain
/// (a lane it cannot certify runs the whole chain, as an open one does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpAhead {
    mean: u64,
    /// Bits known before the check (at most [`FRACTION_BITS`]).
    steps_first: u32,
    /// How far the bits left after `steps_first` can lower the product `P`, Q32.32.
    slack_q32: u128,
    /// The first bits come from [`chain_prefix`] (`steps_first <= PREFIX_STEPS_MAX`).
    prefix: bool,
}

impl ExpAhead {
    /// The sampler of `exp:mean`.
    pub fn new(mean: u64) -> Self {
        let mean_bits = u64::BITS - mean.leading_zeros();
        let prefix_steps = (mean_bits + EXP_PREFIX_STEPS_PLUS_MEAN_BITS) / 2;
        if prefix_steps <= PREFIX_STEPS_MAX {
            return Self::with_steps_first(mean, prefix_steps);
        }
        let steps_first = (mean_bits + EXP_STEPS_ABOVE_MEAN_BITS).min(FRACTION_BITS);
        Self::with_steps_first(mean, steps_first)
    }

    /// The sampler of `exp:mean` that checks after `steps_first` steps (tests try all).
    fn with_steps_first(mean: u64, steps_first: u32) -> Self {
        assert!(
            steps_first <= FRACTION_BITS,
            "more steps than fraction bits"
        );
        let rest_max = (1u128 << (FRACTION_BITS - steps_first)) - 1;
        let ln_span_q32 = ((rest_max * LN2_Q32) >> 32) + 1;
        Self {
            mean,
            steps_first,
            slack_q32: u128::from(mean) * ln_span_q32,
            prefix: steps_first <= PREFIX_STEPS_MAX,
        }
    }

    /// The next [`EXP_LANES`] samples from `stream`, in draw order.
    pub fn sample(&self, stream: &mut Stream) -> [u64; EXP_LANES] {
        let units_q32: [u64; EXP_LANES] =
            core::array::from_fn(|_| u64::from(stream.next_u32()) + 1);
        self.samples_of_units(units_q32)
    }

    /// The samples of the uniforms `units_q32` (each `k + 1` in Q32.32, `k` the draw).
    fn samples_of_units(&self, units_q32: [u64; EXP_LANES]) -> [u64; EXP_LANES] {
        let (neg_int_parts, mantissas) = split_units_q32(units_q32);
        let mut xs = mantissas;
        let mut fractions = [0u32; EXP_LANES];
        // Lanes whose first bits are not known yet (with the prefix only, rarely).
        let mut open = [false; EXP_LANES];
        if self.prefix {
            for ((fraction, open), &x) in fractions.iter_mut().zip(&mut open).zip(&mantissas) {
                match chain_prefix(x, self.steps_first) {
                    Some(prefix) => *fraction = prefix,
                    None => *open = true,
                }
            }
        } else {
            log2_fraction_steps(&mut xs, &mut fractions, self.steps_first);
        }
        let rest_bits = FRACTION_BITS - self.steps_first;
        let mut samples = [0u64; EXP_LANES];
        for (lane, sample) in samples.iter_mut().enumerate() {
            // The rest all zeros: the largest product.
            let known_q32 = u64::from(fractions[lane]) << rest_bits;
            let product_q32 = exp_product_q32(self.mean, neg_int_parts[lane], known_q32);
            open[lane] |= product_q32 & u128::from(u32::MAX) < self.slack_q32;
            *sample = sample_of_product(product_q32);
        }
        // Rare (a lane in 16 to 64): that lane's chain goes on alone; after a prefix,
        // whose chain state is unknown, from the start.
        for (lane, _) in open.iter().enumerate().filter(|(_, &open)| open) {
            let (mut x, mut fraction, steps) = match self.prefix {
                true => ([mantissas[lane]], [0u32], FRACTION_BITS),
                false => ([xs[lane]], [fractions[lane]], rest_bits),
            };
            log2_fraction_steps(&mut x, &mut fraction, steps);
            let product_q32 = exp_product_q32(self.mean, neg_int_parts[lane], fraction[0].into());
            samples[lane] = sample_of_product(product_q32);
        }
        samples
    }
}

/// The product `mean × −ln(U)` in Q32.32 (pinned) for `−log2(U) = neg_int_part −
/// fraction / 2^32`: below `2^64 × 2^37`.
fn exp_product_q32(mean: u64, neg_int_part: u64, fraction_q32: u64) -> u128 {
    // The fraction is 0 when the integer part is (U = 1); so is a prefix of it.
    let neg_log2_q32 = (neg_int_part << 32) - fraction_q32;
    let neg_ln_q32 = saturate_u64((u128::from(neg_log2_q32) * LN2_Q32) >> 32);
    u128::from(mean) * u128::from(neg_ln_q32)
}

/// The sample of a product of [`exp_product_q32`]: its floor, clamped to [`SAMPLE_MAX`].
fn sample_of_product(product_q32: u128) -> u64 {
    saturate_u64(product_q32 >> 32).min(SAMPLE_MAX)
}

/// `floor(mean × −ln(U))` from `−log2(U) = neg_int_part − fraction / 2^32` (pinned).
fn exp_sample(mean: u64, neg_int_part: u64, fraction_q32: u64) -> u64 {
    sample_of_product(exp_product_q32(mean, neg_int_part, fraction_q32))
}

/// `floor(median × exp(sigma × Z))`.
fn sample_lognormal(median: u64, sigma_milli: u32, stream: &mut Stream) -> u64 {
    let z_q32 = normal_q32(stream);
    let x_q32 = (i128::from(sigma_milli) * i128::from(z_q32)).div_euclid(1000);
    // Arithmetic shift: floor for negative values too.
    let y_q32 = (x_q32 * LOG2E_Q32) >> 32;
    scale_by_exp2(median, y_q32)
}

/// `Z` in Q32.32: the sum of [`NORMAL_TERMS`] Q32 uniforms minus 6.
fn normal_q32(stream: &mut Stream) -> i64 {
    let sum: i64 = (0..NORMAL_TERMS)
        .map(|_| i64::from(stream.next_u32()))
        .sum();
    sum - (6_i64 << 32)
}

/// `−ln(unit)` in Q32.32 for `unit` in Q32.32, `1 <= unit <= 2^32` (i.e. `(0, 1]`).
#[cfg(test)]
fn neg_ln_unit_q32(unit_q32: u64) -> u64 {
    let ([neg_int_part], mut xs) = split_units_q32([unit_q32]);
    let mut fraction = [0u32];
    log2_fraction_steps(&mut xs, &mut fraction, FRACTION_BITS);
    let neg_log2_q32 = (neg_int_part << 32) - u64::from(fraction[0]);
    saturate_u64((u128::from(neg_log2_q32) * LN2_Q32) >> 32)
}

/// Each lane's unit `U` (Q32.32, `1 <= unit <= 2^32`, i.e. `(0, 1]`) split for `log2`:
/// the negated integer part, and the 32 fraction bits of the Q32 mantissa in `[1, 2)`
/// (`log2(U) = −neg_int_part + log2(mantissa)`; the mantissa is 1 when the part is 0).
fn split_units_q32<const N: usize>(units_q32: [u64; N]) -> ([u64; N], [u32; N]) {
    let mut neg_int_parts = [0u64; N];
    let mut mantissa_fractions = [0u32; N];
    for (lane, &unit_q32) in units_q32.iter().enumerate() {
        assert!(unit_q32 >= 1, "ln of zero");
        assert!(unit_q32 <= ONE_Q32, "ln argument above one");
        // Integer part of log2: the position of the highest set bit relative to bit 32.
        let msb_index = 63 - unit_q32.leading_zeros();
        neg_int_parts[lane] = u64::from(32 - msb_index);
        // The Q32 mantissa in [1, 2) is 1 + these 32 fraction bits.
        let mantissa_q32 = unit_q32 << (32 - msb_index);
        mantissa_fractions[lane] = u32::try_from(mantissa_q32 & (ONE_Q32 - 1)).unwrap_or(0);
    }
    (neg_int_parts, mantissa_fractions)
}

/// The 32 fraction bits of `log2(m)` for a Q32 mantissa `m` in `[1, 2)`, by squaring.
#[cfg(test)]
fn log2_fraction_q32(mantissa_q32: u64) -> u64 {
    assert!(mantissa_q32 >= ONE_Q32, "mantissa below one");
    assert!(mantissa_q32 < 2 * ONE_Q32, "mantissa not below two");
    let x = u32::try_from(mantissa_q32 - ONE_Q32).unwrap_or(0);
    let [fraction] = log2_fraction_q32_lanes([x]);
    u64::from(fraction)
}

/// [`log2_fraction_q32`] of each lane (all 32 steps of [`log2_fraction_steps`]).
#[cfg(test)]
fn log2_fraction_q32_lanes<const N: usize>(mantissa_fractions: [u32; N]) -> [u32; N] {
    let mut xs = mantissa_fractions;
    let mut fractions = [0u32; N];
    log2_fraction_steps(&mut xs, &mut fractions, FRACTION_BITS);
    fractions
}

/// `steps` more steps of [`log2_fraction_q32`] in each lane, the lanes' chains
/// interleaved: a lane's `x` is the current mantissa's 32 fraction bits (the mantissa is
/// `1 + x / 2^32`), and each step appends its bit to the lane's `fraction` (so after `j`
/// steps from 0 it holds the first `j` bits, and more steps continue the same chain).
///
/// One step of the pinned algorithm squares the Q32 mantissa and truncates:
/// `s = (m × m) >> 32 = 2^32 + t` with `t = 2x + h` and `h = (x × x) >> 32` (exact: the
/// dropped bits are those of `x × x`). The bit is `s ≥ 2^33`, i.e. `t ≥ 2^32`; then the
/// mantissa halves: `x' = (s >> 1) − 2^32 = u − 2^31` with `u = t >> 1 = x + (h >> 1)`;
/// else `x' = t`. Since `h < 2^32`, `t < 3 × 2^32` and `u < 1.5 × 2^32`.
///
/// Every lane value is a `u32`, so LLVM keeps four lanes to an SSE2 register (the one
/// widening product, `h`, becomes two `pmuludq`). In 32-bit arithmetic (mod 2^32):
/// - the bit is `u ≥ 2^31`: `x ≥ 2^31` gives it; else `u < 2^31 + 2^30` does not wrap and
///   the bit is `u`'s top bit; so it is the top bit of `x | u`, as an all-ones mask;
/// - with the bit, `x' = u − 2^31 = u ^ 2^31` (both are `u` with bit 31 flipped, mod 2^32);
/// - without it, `x' = t = x + x + h` (below 2^32, so the wrapping sum is exact).
///
/// Branch-free: the mask selects the next `x`. The `branching_reference` tests check it
/// against one truncated `u128` square per bit.
// Not inlined: inlined into `ExpAhead::sample`, LLVM kept the eight lanes in scalar
// registers (a third more instructions per step than the two SSE2 vectors it uses here).
#[inline(never)]
fn log2_fraction_steps<const N: usize>(xs: &mut [u32; N], fractions: &mut [u32; N], steps: u32) {
    // `h >> 1` with a shift amount LLVM cannot see: with a literal 1, it folds the shift
    // into the product (`(x × x) >> 33`) and computes that second, wider product apart
    // from `h` (a third more instructions per step, measured on the loop alone). The
    // value is the same either way.
    let one = core::hint::black_box(1u32);
    for _ in 0..steps {
        for (x, fraction) in xs.iter_mut().zip(fractions.iter_mut()) {
            let square_high = u32::try_from((u64::from(*x) * u64::from(*x)) >> 32);
            let h = square_high.unwrap_or(u32::MAX);
            let u = x.wrapping_add(h.wrapping_shr(one));
            let t = x.wrapping_add(*x).wrapping_add(h);
            // All ones when the square reached 2 (the bit is 1), else zero.
            let mask = 0u32.wrapping_sub((*x | u) >> 31);
            let halved = u ^ HIGH_BIT;
            *x = t ^ ((t ^ halved) & mask);
            // fraction × 2 + bit (the mask is −bit).
            *fraction = fraction.wrapping_add(*fraction).wrapping_sub(mask);
        }
    }
}

/// Bit 31 of a lane.
const HIGH_BIT: u32 = 1 << 31;

/// `2^f` in Q32 for a 32-bit fraction `f` (Q0.32), by the pinned table.
fn exp2_fraction_q32(fraction: u32) -> u64 {
    let mut mantissa = ONE_Q32;
    for (bit_index, factor) in EXP2_FRACTION_TABLE_Q32.iter().enumerate() {
        if fraction & (1 << (31 - bit_index)) != 0 {
            mantissa = saturate_u64((u128::from(mantissa) * u128::from(*factor)) >> 32);
        }
    }
    mantissa
}

/// `floor(value × 2^y)` for `y` in signed Q32.32, clamped to [`SAMPLE_MAX`].
fn scale_by_exp2(value: u64, y_q32: i128) -> u64 {
    let int_part = y_q32 >> 32;
    let fraction = y_q32 - (int_part << 32);
    let fraction = u32::try_from(fraction).expect("a Q32 fraction fits in 32 bits");
    let mantissa_q32 = exp2_fraction_q32(fraction);
    // product < 2^64 × 2^33 = 2^97.
    let product = u128::from(value) * u128::from(mantissa_q32);
    if product == 0 {
        return 0;
    }
    let shift = int_part - 32;
    if shift >= 0 {
        let headroom = i128::from(product.leading_zeros());
        if shift >= headroom {
            return SAMPLE_MAX;
        }
        return saturate_u64(product << shift).min(SAMPLE_MAX);
    }
    let right = -shift;
    if right >= 128 {
        return 0;
    }
    saturate_u64(product >> right).min(SAMPLE_MAX)
}

/// `value` as `u64`, saturating (callers keep values in range; this only avoids `as`).
fn saturate_u64(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::rng::RngStreams;

    /// The scenario seed the golden snapshot is pinned to.
    const GOLDEN_SEED: u64 = 1;
    /// Draws per kind in the golden snapshot (§6.2).
    const GOLDEN_DRAW_COUNT: usize = 1000;
    /// 1 ms in ns: a round mean/median for the statistical checks.
    const ONE_MS_NS: u64 = 1_000_000;
    /// Draws for the statistical checks: the sample mean of an exponential has a relative
    /// standard error of 1/sqrt(10_000) = 1 %, so a 4 % band is four standard errors.
    const STAT_DRAW_COUNT: usize = 10_000;

    fn draws(dist: &Dist, name: &str, count: usize) -> Vec<u64> {
        let mut stream = RngStreams::new(GOLDEN_SEED).stream(name);
        (0..count).map(|_| sample(dist, &mut stream)).collect()
    }

    #[test]
    fn sample_const_returns_value_without_drawing() {
        let streams = RngStreams::new(GOLDEN_SEED);
        let mut used = streams.stream("s");
        let mut fresh = streams.stream("s");

        let value = sample(&Dist::Const(1234), &mut used);

        assert_eq!(value, 1234);
        assert_eq!(used.next_u64(), fresh.next_u64());
    }

    #[test]
    fn sample_const_above_max_is_clamped() {
        let mut stream = RngStreams::new(GOLDEN_SEED).stream("s");

        let value = sample(&Dist::Const(u64::MAX), &mut stream);

        assert_eq!(value, SAMPLE_MAX);
    }

    #[test]
    fn sample_uniform_stays_within_inclusive_bounds_and_hits_them() {
        // Range of 5 values over 1000 draws: each bound is hit with overwhelming probability.
        let dist = Dist::Uniform { lo: 10, hi: 14 };

        let values = draws(&dist, "uniform", GOLDEN_DRAW_COUNT);

        assert_eq!(values.iter().min(), Some(&10));
        assert_eq!(values.iter().max(), Some(&14));
    }

    #[test]
    fn sample_exp_mean_is_within_four_percent_of_m() {
        let dist = Dist::Exp { mean: ONE_MS_NS };

        let values = draws(&dist, "exp", STAT_DRAW_COUNT);
        let mean_ns = values.iter().sum::<u64>() / u64::try_from(values.len()).unwrap_or(1);

        assert!(mean_ns > ONE_MS_NS * 96 / 100, "mean {mean_ns}");
        assert!(mean_ns < ONE_MS_NS * 104 / 100, "mean {mean_ns}");
    }

    /// The pinned squaring loop as first written (a branch per bit): the reference the
    /// branch-free [`log2_fraction_q32`] must match bit for bit.
    fn log2_fraction_q32_reference(mantissa_q32: u64) -> u64 {
        let mut mantissa = mantissa_q32;
        let mut fraction = 0u64;
        for bit_index in 0..32u32 {
            let squared = u128::from(mantissa) * u128::from(mantissa);
            mantissa = saturate_u64(squared >> 32);
            if mantissa >= 2 * ONE_Q32 {
                mantissa >>= 1;
                fraction |= 1 << (31 - bit_index);
            }
        }
        fraction
    }

    /// The mantissa `neg_ln_unit_q32` squares for the draw `k`.
    fn mantissa_of_draw(k: u32) -> u64 {
        let unit_q32 = u64::from(k) + 1;
        let msb_index = 63 - unit_q32.leading_zeros();
        unit_q32 << (32 - msb_index)
    }

    #[test]
    fn log2_fraction_matches_the_branching_reference_on_a_spread_of_draws() {
        // Every 65_521st draw (a prime stride, so low and high bits both vary), plus the
        // extremes: k = 0 (U = 2^-32), the largest, and powers of two and their neighbours.
        let strided = (0..=u32::MAX).step_by(65_521);
        let edges = (0..32).flat_map(|s| {
            let p = 1u32 << s;
            [p - 1, p, p.saturating_add(1)]
        });
        for k in strided.chain(edges).chain([u32::MAX, u32::MAX - 1]) {
            let m = mantissa_of_draw(k);
            assert_eq!(
                log2_fraction_q32(m),
                log2_fraction_q32_reference(m),
                "k = {k}"
            );
        }
    }

    proptest::proptest! {
        /// Eight lanes side by side (as `ExpAhead::sample` runs them) give each lane the
        /// reference's bits.
        #[test]
        fn log2_fraction_lanes_match_the_branching_reference(draws: [u32; EXP_LANES]) {
            let mantissas = draws.map(mantissa_of_draw);
            let lanes = mantissas.map(|m| u32::try_from(m - ONE_Q32).unwrap_or(0));

            let fractions = log2_fraction_q32_lanes(lanes);

            let expected = mantissas.map(log2_fraction_q32_reference);
            proptest::prop_assert_eq!(fractions.map(u64::from), expected);
        }
    }

    /// All 2^32 draws, eight lanes at a time as `ExpAhead::sample` runs them (the
    /// reference's `u128` squares take most of the time: about ten CPU minutes in release):
    /// `cargo test --release -p xensim --lib log2_fraction_matches_on_every_draw -- --ignored`.
    #[test]
    #[ignore = "exhaustive; run in release when the sampler changes"]
    fn log2_fraction_matches_on_every_draw() {
        let mismatch = (0..=u32::MAX).step_by(EXP_LANES).find(|&first| {
            let mantissas: [u64; EXP_LANES] = core::array::from_fn(|lane| {
                // `first` is a multiple of 8 below 2^32: no lane wraps.
                mantissa_of_draw(first.wrapping_add(u32::try_from(lane).unwrap_or(0)))
            });
            let lanes = mantissas.map(|m| u32::try_from(m - ONE_Q32).unwrap_or(0));
            let fractions = log2_fraction_q32_lanes(lanes).map(u64::from);
            fractions != mantissas.map(log2_fraction_q32_reference)
        });
        assert_eq!(mismatch, None);
    }

    #[test]
    fn exp_ahead_gives_the_draws_of_single_samples_in_order() {
        // 125 batches of 8 = the 1000 draws of the golden snapshot.
        let dist = Dist::Exp { mean: ONE_MS_NS };
        let single = draws(&dist, "exp", GOLDEN_DRAW_COUNT);
        let mut stream = RngStreams::new(GOLDEN_SEED).stream("exp");
        let exp = ExpAhead::new(ONE_MS_NS);

        let ahead: Vec<u64> = (0..GOLDEN_DRAW_COUNT / EXP_LANES)
            .flat_map(|_| exp.sample(&mut stream))
            .collect();

        assert_eq!(ahead, single);
    }

    /// The whole chain for each lane, one sample at a time: what [`ExpAhead`] must give.
    fn exp_samples_reference(mean: u64, draws: [u32; EXP_LANES]) -> [u64; EXP_LANES] {
        draws.map(|k| {
            let ([neg_int_part], mut xs) = split_units_q32([u64::from(k) + 1]);
            let mut fraction = [0u32];
            log2_fraction_steps(&mut xs, &mut fraction, FRACTION_BITS);
            exp_sample(mean, neg_int_part, u64::from(fraction[0]))
        })
    }

    #[test]
    fn exp_ahead_takes_a_prefix_for_short_means_and_the_chain_for_long_ones() {
        // 100 us has 17 bits: a prefix of (17 + 31) / 2 = 24. 2^26 ns has 27 bits: a
        // prefix of 29 is too long, so the chain runs 27 + 3 = 30 steps. 2^40 ns would need
        // 44 steps, more than there are.
        let short = ExpAhead::new(100_000);
        let middle = ExpAhead::new(1 << 26);
        let long = ExpAhead::new(1 << 40);

        assert_eq!((short.steps_first, short.prefix), (24, true));
        assert_eq!((middle.steps_first, middle.prefix), (30, false));
        assert_eq!((long.steps_first, long.prefix), (FRACTION_BITS, false));
    }

    #[test]
    fn exp_ahead_matches_single_samples_over_a_range_of_means() {
        // The workloads' means (100 us service, 900 us think, 50 us, 2 ms) and the ends of
        // the range, 4096 batches each from one stream.
        let means = [
            0,
            1,
            1_000,
            50_000,
            100_000,
            900_000,
            2_000_000,
            1 << 40,
            u64::MAX,
        ];
        for mean in means {
            let name = format!("exp{mean}");
            let single = draws(&Dist::Exp { mean }, &name, 4096 * EXP_LANES);
            let mut stream = RngStreams::new(GOLDEN_SEED).stream(&name);
            let exp = ExpAhead::new(mean);

            let ahead: Vec<u64> = (0..4096).flat_map(|_| exp.sample(&mut stream)).collect();

            assert_eq!(ahead, single, "mean {mean}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Cut after any number of steps, for any mean (small ones resolve at the check,
        /// large ones run the rest), the samples are those of the whole chain.
        #[test]
        fn exp_ahead_cut_anywhere_matches_the_whole_chain(
            mean_bits in 0u32..=64,
            mean_low: u64,
            steps_first in 0u32..=FRACTION_BITS,
            draws: [u32; EXP_LANES],
        ) {
            let mean = mean_low.checked_shr(64 - mean_bits).unwrap_or(0);
            let exp = ExpAhead::with_steps_first(mean, steps_first);
            let units_q32 = draws.map(|k| u64::from(k) + 1);

            let samples = exp.samples_of_units(units_q32);

            proptest::prop_assert_eq!(samples, exp_samples_reference(mean, draws));
        }

        /// The check's own choice of steps, on draws near `U = 1` and `U = 2^-32` too.
        #[test]
        fn exp_ahead_matches_the_whole_chain_at_the_extremes(
            mean_bits in 0u32..=64,
            mean_low: u64,
            near_top: [bool; EXP_LANES],
            offsets: [u8; EXP_LANES],
        ) {
            let mean = mean_low.checked_shr(64 - mean_bits).unwrap_or(0);
            let draws: [u32; EXP_LANES] = core::array::from_fn(|lane| {
                let offset = u32::from(offsets[lane]);
                if near_top[lane] { u32::MAX - offset } else { offset }
            });
            let exp = ExpAhead::new(mean);

            let samples = exp.samples_of_units(draws.map(|k| u64::from(k) + 1));

            proptest::prop_assert_eq!(samples, exp_samples_reference(mean, draws));
        }
    }

    #[test]
    fn sample_exp_largest_is_about_22_times_mean() {
        // k = 0 gives U = 2^-32 and E = 32 ln 2 = 22.18.
        let neg_ln_q32 = neg_ln_unit_q32(1);

        let e_milli = (u128::from(neg_ln_q32) * 1000) >> 32;

        assert_eq!(e_milli, 22_180);
    }

    #[test]
    fn neg_ln_unit_q32_of_one_is_zero() {
        let value = neg_ln_unit_q32(ONE_Q32);

        assert_eq!(value, 0);
    }

    #[test]
    fn neg_ln_unit_q32_of_half_is_ln2() {
        let value = neg_ln_unit_q32(ONE_Q32 / 2);

        assert_eq!(u128::from(value), LN2_Q32);
    }

    #[test]
    fn exp2_fraction_q32_of_half_is_sqrt2() {
        let value = exp2_fraction_q32(1 << 31);

        assert_eq!(value, EXP2_FRACTION_TABLE_Q32[0]);
    }

    #[test]
    fn scale_by_exp2_of_minus_one_halves() {
        let value = scale_by_exp2(1000, -(1 << 32));

        assert_eq!(value, 500);
    }

    #[test]
    fn scale_by_exp2_of_huge_exponent_clamps() {
        let value = scale_by_exp2(1, 100 << 32);

        assert_eq!(value, SAMPLE_MAX);
    }

    #[test]
    fn sample_lognormal_median_is_within_five_percent_of_m() {
        // sigma 0.5: the sample median of 10_000 draws is within a few percent of M.
        let dist = Dist::LogNormal {
            median: ONE_MS_NS,
            sigma_milli: 500,
        };

        let mut values = draws(&dist, "lognormal", STAT_DRAW_COUNT);
        values.sort_unstable();
        let median_ns = values[STAT_DRAW_COUNT / 2];

        assert!(median_ns > ONE_MS_NS * 95 / 100, "median {median_ns}");
        assert!(median_ns < ONE_MS_NS * 105 / 100, "median {median_ns}");
    }

    #[test]
    fn sample_lognormal_zero_sigma_returns_median() {
        let dist = Dist::LogNormal {
            median: ONE_MS_NS,
            sigma_milli: 0,
        };

        let values = draws(&dist, "lognormal", 3);

        assert_eq!(values, vec![ONE_MS_NS; 3]);
    }

    #[test]
    fn sample_lognormal_huge_sigma_saturates_without_overflow() {
        // sigma ≈ 4.3 million: exp(S × Z) is far outside u64 unless Z is within ~1e-5 of 0.
        let dist = Dist::LogNormal {
            median: ONE_MS_NS,
            sigma_milli: u32::MAX,
        };

        let values = draws(&dist, "lognormal", 8);

        assert!(
            values.iter().all(|&v| v == 0 || v == SAMPLE_MAX),
            "{values:?}"
        );
    }

    #[test]
    fn sample_same_seed_gives_same_sequence() {
        let dist = Dist::Exp { mean: ONE_MS_NS };

        let first = draws(&dist, "exp", 100);
        let second = draws(&dist, "exp", 100);

        assert_eq!(first, second);
    }

    /// Renders the golden text: one section per kind, one decimal number per line.
    fn render_golden() -> String {
        let kinds: [(&str, Dist); 3] = [
            (
                "uniform:1us..100us",
                Dist::Uniform {
                    lo: 1_000,
                    hi: 100_000,
                },
            ),
            ("exp:1ms", Dist::Exp { mean: ONE_MS_NS }),
            (
                "lognormal:1ms,0.5",
                Dist::LogNormal {
                    median: ONE_MS_NS,
                    sigma_milli: 500,
                },
            ),
        ];
        let mut text = String::new();
        for (label, dist) in kinds {
            let stream_name = format!("golden.{label}");
            let _ = writeln!(text, "# {label} seed {GOLDEN_SEED} stream {stream_name}");
            for value in draws(&dist, &stream_name, GOLDEN_DRAW_COUNT) {
                let _ = writeln!(text, "{value}");
            }
        }
        text
    }

    #[test]
    fn sample_first_1000_seed1_match_golden() {
        let text = render_golden();

        // This file is sim/src/guest/dist.rs; the snapshots live in the repository's golden/.
        insta::with_settings!({
            snapshot_path => "../../../golden",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!("distributions__first_1000_seed1", text);
        });
    }
}
