//! Aggregation across seeds (`specs/metrics.md` §3): the exact rational mean of a metric's
//! per-seed values, its 95% confidence interval (Student t for `2 <= n < 30`, a fixed-key
//! percentile bootstrap for `n >= 30`), pooled nearest-rank percentiles, and the integer
//! formatting rules of the compare table (§4.2: fixed decimals, round half to even).
//!
//! # Invariants
//! - Integers only: means are rationals, interval bounds are integers in 10^-9 of the
//!   metric's unit, square roots are integer square roots; no float anywhere.
//! - The same values in the same (seed) order give the same interval, bit for bit: the
//!   bootstrap draws from ChaCha20 keyed with §3's fixed key, nothing else.
//! - `ci_low_nano <= mean·10^9 <= ci_high_nano` for the t interval.
//!
//! Overflow is reported as [`AggregateError::Overflow`] with the metric's name, never wraps.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

/// The fixed ChaCha20 key of the bootstrap (§3), in this byte order.
pub const BOOTSTRAP_KEY: [u8; 32] = [
    0x29, 0x40, 0xaa, 0x1d, 0xb1, 0x27, 0xf3, 0xe6, 0xde, 0xf7, 0xad, 0x17, 0xe1, 0xaa, 0xa6, 0x8a,
    0x7b, 0xc0, 0x11, 0x23, 0x7e, 0x88, 0x28, 0x0b, 0x21, 0x53, 0x9a, 0x43, 0x29, 0x00, 0x6d, 0xdc,
];
/// Bootstrap resamples (§3).
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// From this many seeds on, the interval is the bootstrap's; below, Student t's.
pub const BOOTSTRAP_MIN_SEEDS: usize = 30;
/// 10^9: interval bounds are in nano-units of the metric.
const NANO: i128 = 1_000_000_000;

/// Two-sided 95% Student t quantiles ×1000 for df = 1..=29 (NIST/SEMATECH table, §3).
const T_MILLI: [u32; 29] = [
    12706, 4303, 3182, 2776, 2571, 2447, 2365, 2306, 2262, 2228, 2201, 2179, 2160, 2145, 2131,
    2120, 2110, 2101, 2093, 2086, 2080, 2074, 2069, 2064, 2060, 2056, 2052, 2048, 2045,
];
const _: () = assert!(T_MILLI.len() + 1 == BOOTSTRAP_MIN_SEEDS);

/// Why an aggregate could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// An intermediate left `i128`.
    #[error("metric overflow while aggregating {metric}")]
    Overflow {
        /// The metric's name.
        metric: String,
    },
}

/// How the confidence interval was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CiMethod {
    /// Student t (`2 <= n < 30`).
    T,
    /// Percentile bootstrap (`n >= 30`).
    Bootstrap,
}

/// A 95% confidence interval, bounds in 10^-9 of the metric's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ci {
    /// Lower bound ×10^9.
    pub low_nano: i128,
    /// Upper bound ×10^9.
    pub high_nano: i128,
    /// t or bootstrap.
    pub method: CiMethod,
}

/// The mean of a metric over `n` seeds and its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    /// Seeds that had a value.
    pub n: u64,
    /// Reduced numerator of the exact mean.
    pub mean_num: i128,
    /// Reduced denominator of the exact mean (> 0).
    pub mean_den: i128,
    /// `None` for a single seed.
    pub ci: Option<Ci>,
}

impl Aggregate {
    /// The mean ×10^9, rounded half to even.
    pub fn mean_nano(&self) -> i128 {
        div_round_half_even(self.mean_num * NANO, self.mean_den)
    }
}

/// Aggregates the per-seed `values` (ordered by seed) of `metric`; `None` when empty.
pub fn aggregate(metric: &str, values: &[i64]) -> Result<Option<Aggregate>, AggregateError> {
    if values.is_empty() {
        return Ok(None);
    }
    let overflow = || AggregateError::Overflow {
        metric: metric.to_owned(),
    };
    let mut agg = mean_only(metric, values)?;
    let n = i128::try_from(values.len()).map_err(|_| overflow())?;
    let sum = values.iter().map(|&v| i128::from(v)).sum::<i128>();
    agg.ci = match values.len() {
        1 => None,
        len if len < BOOTSTRAP_MIN_SEEDS => Some(t_interval(values, sum, n).ok_or_else(overflow)?),
        _ => Some(bootstrap_interval(values).ok_or_else(overflow)?),
    };
    Ok(Some(agg))
}

/// `mean ± t_{0.975,n−1} · s/√n` with §3's integer procedure; `None` on overflow.
fn t_interval(values: &[i64], sum: i128, n: i128) -> Option<Ci> {
    let df = usize::try_from(n - 1).ok()?;
    let t_milli = i128::from(*T_MILLI.get(df.checked_sub(1)?)?);
    let mut sum_sq: i128 = 0;
    for &v in values {
        sum_sq = sum_sq.checked_add(i128::from(v).checked_mul(i128::from(v))?)?;
    }
    let spread = n.checked_mul(sum_sq)?.checked_sub(sum.checked_mul(sum)?)?;
    assert!(spread >= 0, "n·Σm² >= (Σm)² (Cauchy–Schwarz)");
    let q6 = spread.checked_mul(1_000_000)? / n.checked_mul(n)?.checked_mul(n - 1)?;
    // half_width·10^6 = t_milli · isqrt(Q6), so half_width·10^9 is a thousand times that.
    let half_nano = t_milli
        .checked_mul(i128::try_from(isqrt(q6.unsigned_abs())).ok()?)?
        .checked_mul(1_000)?;
    let mean_nano = div_round_half_even(sum.checked_mul(NANO)?, n);
    Some(Ci {
        low_nano: mean_nano.checked_sub(half_nano)?,
        high_nano: mean_nano.checked_add(half_nano)?,
        method: CiMethod::T,
    })
}

/// The percentile bootstrap of §3 for one column; `None` on overflow.
fn bootstrap_interval(values: &[i64]) -> Option<Ci> {
    bootstrap_intervals(&[values]).pop()
}

/// The percentile bootstrap of §3 for columns of the same length `n`, in one pass: the
/// generator restarts from the fixed key for every metric, so every column of length `n`
/// draws the same index sequence, and sharing it changes no result.
fn bootstrap_intervals(columns: &[&[i64]]) -> Vec<Ci> {
    let Some(first) = columns.first() else {
        return Vec::new();
    };
    let n = u64::try_from(first.len()).expect("a column length fits u64");
    assert!(n >= 2, "the bootstrap needs at least two values");
    assert!(
        columns.iter().all(|c| c.len() == first.len()),
        "bootstrap columns share one length"
    );
    // Accept `x` only below the largest multiple of n that fits in 2^64 (no modulo bias).
    let zone = u128::from(n) * ((1u128 << 64) / u128::from(n));
    let mut rng = ChaCha20Rng::from_seed(BOOTSTRAP_KEY);
    let width = columns.len();
    let (by_seed, narrow) = seed_major(columns);
    // sums[c][b]: resample b of column c.
    let mut sums: Vec<Vec<i128>> = vec![Vec::with_capacity(BOOTSTRAP_RESAMPLES); width];
    let mut row_wide: Vec<i128> = vec![0; width];
    let mut row_narrow: Vec<i64> = vec![0; width];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        row_wide.iter_mut().for_each(|s| *s = 0);
        row_narrow.iter_mut().for_each(|s| *s = 0);
        for _ in 0..n {
            let index = loop {
                let x = rng.next_u64();
                if u128::from(x) < zone {
                    break usize::try_from(x % n).expect("an index below n fits usize");
                }
            };
            let values = &by_seed[index * width..(index + 1) * width];
            if narrow {
                row_narrow
                    .iter_mut()
                    .zip(values)
                    .for_each(|(s, &v)| *s += v);
            } else {
                row_wide
                    .iter_mut()
                    .zip(values)
                    .for_each(|(s, &v)| *s += i128::from(v));
            }
        }
        for c in 0..width {
            let sum = if narrow {
                i128::from(row_narrow[c])
            } else {
                row_wide[c]
            };
            sums[c].push(sum);
        }
    }
    let n_wide = i128::from(n);
    sums.into_iter()
        .map(|column_sums| percentile_interval(column_sums, n_wide))
        .collect()
}

/// A seed-major copy of equal-length `columns`, so one draw adds one contiguous row to the
/// accumulators, and whether every resample sum fits `i64` (at most `n · max|v|`; else the
/// sums run in `i128`, where an `i64` sum of at most `SEEDS_MAX` values always fits).
fn seed_major(columns: &[&[i64]]) -> (Vec<i64>, bool) {
    let width = columns.len();
    let n = columns.first().map_or(0, |c| c.len());
    let mut by_seed: Vec<i64> = vec![0; width * n];
    for (c, column) in columns.iter().enumerate() {
        for (seed_index, &v) in column.iter().enumerate() {
            by_seed[seed_index * width + c] = v;
        }
    }
    let magnitude_max = by_seed.iter().map(|v| u128::from(v.unsigned_abs())).max();
    let n_wide = u128::try_from(n).unwrap_or(u128::MAX);
    let narrow = magnitude_max.unwrap_or(0) * n_wide <= u128::from(i64::MAX.unsigned_abs());
    (by_seed, narrow)
}

/// The nearest-rank 2.5th and 97.5th percentiles of the resample sums, divided by `n`.
fn percentile_interval(mut sums: Vec<i128>, n: i128) -> Ci {
    sums.sort_unstable();
    let low = *nearest_rank(&sums, 25, 1000).expect("B > 0 resamples");
    let high = *nearest_rank(&sums, 975, 1000).expect("B > 0 resamples");
    Ci {
        low_nano: div_round_half_even(low * NANO, n),
        high_nano: div_round_half_even(high * NANO, n),
        method: CiMethod::Bootstrap,
    }
}

/// [`aggregate`] of many metrics at once (the same results); the bootstraps of metrics with
/// the same seed count share one pass over the generator.
pub fn aggregate_all(
    metrics: &[(String, Vec<i64>)],
) -> Result<Vec<Option<Aggregate>>, AggregateError> {
    let mut out = Vec::with_capacity(metrics.len());
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (index, (name, values)) in metrics.iter().enumerate() {
        if values.len() >= BOOTSTRAP_MIN_SEEDS {
            // The mean now; the interval is filled in below, per seed count.
            by_len.entry(values.len()).or_default().push(index);
            out.push(Some(mean_only(name, values)?));
        } else {
            out.push(aggregate(name, values)?);
        }
    }
    for indices in by_len.values() {
        let columns: Vec<&[i64]> = indices.iter().map(|&i| metrics[i].1.as_slice()).collect();
        for (&index, ci) in indices.iter().zip(bootstrap_intervals(&columns)) {
            if let Some(agg) = out[index].as_mut() {
                agg.ci = Some(ci);
            }
        }
    }
    Ok(out)
}

/// The exact mean of non-empty `values`, without an interval.
fn mean_only(metric: &str, values: &[i64]) -> Result<Aggregate, AggregateError> {
    assert!(!values.is_empty(), "a mean needs a value");
    let overflow = || AggregateError::Overflow {
        metric: metric.to_owned(),
    };
    let n = i128::try_from(values.len()).map_err(|_| overflow())?;
    let sum = values.iter().map(|&v| i128::from(v)).sum::<i128>();
    let divisor =
        i128::try_from(gcd(sum.unsigned_abs(), n.unsigned_abs())).map_err(|_| overflow())?;
    Ok(Aggregate {
        n: u64::try_from(values.len()).map_err(|_| overflow())?,
        mean_num: sum / divisor,
        mean_den: n / divisor,
        ci: None,
    })
}

/// Nearest-rank quantile `num/den` of ascending `sorted` (§1.3); `None` when empty.
pub fn nearest_rank<T>(sorted: &[T], num: u128, den: u128) -> Option<&T> {
    assert!(num <= den, "a quantile is at most 1");
    let len = u128::try_from(sorted.len()).ok()?;
    if len == 0 {
        return None;
    }
    let rank = (num * len).div_ceil(den).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?)
}

/// The two-sided 95% t quantile ×1000 for `df` degrees of freedom (1..=29).
pub fn t_milli(df: usize) -> Option<u32> {
    T_MILLI.get(df.checked_sub(1)?).copied()
}

/// `floor(√x)`.
pub fn isqrt(x: u128) -> u128 {
    if x < 2 {
        return x;
    }
    // Newton's iteration from an upper bound: decreases monotonically to floor(√x).
    let mut guess = 1u128 << (128 - x.leading_zeros()).div_ceil(2);
    loop {
        let next = (guess + x / guess) / 2;
        if next >= guess {
            assert!(guess * guess <= x, "isqrt undershoots");
            return guess;
        }
        guess = next;
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// `num / den` rounded to the nearest integer, ties to even; `den > 0`.
pub fn div_round_half_even(num: i128, den: i128) -> i128 {
    assert!(den > 0, "rounding divides by a positive denominator");
    let quotient = num.div_euclid(den);
    let twice_rest = 2 * num.rem_euclid(den);
    match twice_rest.cmp(&den) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal if quotient % 2 == 0 => quotient,
        std::cmp::Ordering::Equal => quotient + 1,
    }
}

/// The rational `num / den` of a unit scaled down by `10^shift` (ns → µs: 3), printed with
/// `decimals` digits after the point, rounded half to even at the last digit; `−` for
/// negatives (as the compare table prints them).
pub fn format_decimal(num: i128, den: i128, shift: u32, decimals: u32) -> String {
    assert!(den > 0, "a formatted rational has a positive denominator");
    let scaled = div_round_half_even(num * 10i128.pow(decimals), den * 10i128.pow(shift));
    let unit = 10i128.pow(decimals);
    let sign = if scaled < 0 { "\u{2212}" } else { "" };
    let magnitude = scaled.unsigned_abs();
    let unit = unit.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{magnitude}");
    }
    let width = usize::try_from(decimals).unwrap_or(0);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = width
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_interval_of_known_list_matches_hand_computation() {
        // 10, 12, 14, 16: Σ = 52, Σm² = 696, n = 4, df = 3, t_milli = 3182.
        // Q6 = floor((4·696 − 52²) · 10^6 / (16 · 3)) = floor(80·10^6 / 48) = 1666666;
        // isqrt(1666666) = 1290; half·10^6 = 3182·1290 = 4104780 → half = 4.104780.
        let agg = aggregate("m", &[10, 12, 14, 16]).unwrap().unwrap();

        assert_eq!((agg.mean_num, agg.mean_den), (13, 1));
        let ci = agg.ci.unwrap();
        assert_eq!(ci.method, CiMethod::T);
        assert_eq!(ci.low_nano, 13_000_000_000 - 4_104_780_000);
        assert_eq!(ci.high_nano, 13_000_000_000 + 4_104_780_000);
    }

    #[test]
    fn mean_is_an_exact_reduced_rational() {
        // 1 + 2 = 3 over 2 seeds: 3/2, kept exact; 2 + 4 = 6/2 reduces to 3/1.
        let odd = aggregate("m", &[1, 2]).unwrap().unwrap();
        let even = aggregate("m", &[2, 4]).unwrap().unwrap();

        assert_eq!((odd.mean_num, odd.mean_den), (3, 2));
        assert_eq!(odd.mean_nano(), 1_500_000_000);
        assert_eq!((even.mean_num, even.mean_den), (3, 1));
    }

    #[test]
    fn single_seed_has_no_interval_and_empty_has_no_aggregate() {
        let one = aggregate("m", &[7]).unwrap().unwrap();

        assert_eq!(one.ci, None);
        assert_eq!(aggregate("m", &[]).unwrap(), None);
    }

    #[test]
    fn constant_values_have_a_zero_width_t_interval() {
        let agg = aggregate("m", &[5, 5, 5]).unwrap().unwrap();

        let ci = agg.ci.unwrap();
        assert_eq!((ci.low_nano, ci.high_nano), (5 * NANO, 5 * NANO));
    }

    #[test]
    fn bootstrap_from_thirty_seeds_is_deterministic_and_brackets_the_mean() {
        // 30 values 0..29: mean 14.5; the interval is the bootstrap's and the same each time.
        let values: Vec<i64> = (0..30).collect();

        let first = aggregate("m", &values).unwrap().unwrap().ci.unwrap();
        let second = aggregate("m", &values).unwrap().unwrap().ci.unwrap();

        assert_eq!(first, second);
        assert_eq!(first.method, CiMethod::Bootstrap);
        assert!(first.low_nano < 14_500_000_000);
        assert!(first.high_nano > 14_500_000_000);
        // Bounds are resample sums divided by n = 30: multiples of 10^9/30 rounded.
        assert!(first.high_nano - first.low_nano < 12 * NANO);
    }

    #[test]
    fn aggregate_all_equals_one_by_one() {
        // Two 30-seed columns share one bootstrap pass; a 3-seed column takes the t path.
        let metrics = vec![
            ("a".to_owned(), (0..30).collect::<Vec<i64>>()),
            ("b".to_owned(), (0..30).map(|v| v * v % 17).collect()),
            ("c".to_owned(), vec![1, 5, 9]),
        ];

        let together = aggregate_all(&metrics).unwrap();

        for ((name, values), agg) in metrics.iter().zip(together) {
            assert_eq!(agg, aggregate(name, values).unwrap());
        }
    }

    #[test]
    fn bootstrap_of_huge_values_takes_the_wide_sums_and_agrees_with_small_ones() {
        // The same values scaled by 2^58 (29·2^58 < 2^63) overflow i64 sums over 30 draws;
        // the interval scales exactly by 2^58 (the resample indices ignore the values).
        let small: Vec<i64> = (0..30).collect();
        let huge: Vec<i64> = small.iter().map(|v| v << 58).collect();

        let small_ci = aggregate("m", &small).unwrap().unwrap().ci.unwrap();
        let huge_ci = aggregate("m", &huge).unwrap().unwrap().ci.unwrap();

        // Bounds are sums·10^9/30 rounded; compare the sums behind them instead.
        let sum = |nano: i128| div_round_half_even(nano * 30, NANO);
        assert_eq!(sum(huge_ci.low_nano), sum(small_ci.low_nano) << 58);
        assert_eq!(sum(huge_ci.high_nano), sum(small_ci.high_nano) << 58);
    }

    #[test]
    fn bootstrap_of_constant_values_is_that_value() {
        let values = vec![9i64; 40];

        let ci = aggregate("m", &values).unwrap().unwrap().ci.unwrap();

        assert_eq!((ci.low_nano, ci.high_nano), (9 * NANO, 9 * NANO));
    }

    #[test]
    fn bootstrap_first_draw_uses_the_fixed_chacha20_key() {
        // The generator keyed with §3's bytes: the first word is fixed forever.
        let mut rng = ChaCha20Rng::from_seed(BOOTSTRAP_KEY);
        let mut again = ChaCha20Rng::from_seed(BOOTSTRAP_KEY);

        assert_eq!(rng.next_u64(), again.next_u64());
        assert_eq!(BOOTSTRAP_KEY[0], 0x29);
        assert_eq!(BOOTSTRAP_KEY[31], 0xdc);
    }

    #[test]
    fn t_table_matches_nist_at_both_ends() {
        assert_eq!(t_milli(1), Some(12706));
        assert_eq!(t_milli(29), Some(2045));
        assert_eq!(t_milli(0), None);
        assert_eq!(t_milli(30), None);
    }

    #[test]
    fn isqrt_is_the_floor_of_the_square_root() {
        assert_eq!(isqrt(0), 0);
        assert_eq!(isqrt(15), 3);
        assert_eq!(isqrt(16), 4);
        assert_eq!(isqrt(1_666_666), 1290);
        assert_eq!(isqrt(u128::MAX), u128::from(u64::MAX));
    }

    #[test]
    fn rounding_ties_go_to_even() {
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(7, 2), 4);
        assert_eq!(div_round_half_even(-5, 2), -2);
        assert_eq!(div_round_half_even(-7, 2), -4);
        assert_eq!(div_round_half_even(11, 4), 3);
    }

    #[test]
    fn decimal_formatting_is_exact_and_rounds_half_even() {
        // 21000 ns → "21.000" µs exactly; 0.00025 at 4 decimals is a tie → 0.0002.
        assert_eq!(format_decimal(21_000, 1, 3, 3), "21.000");
        assert_eq!(format_decimal(5, 2, 4, 4), "0.0002");
        assert_eq!(format_decimal(15, 2, 4, 4), "0.0008");
        assert_eq!(format_decimal(-1_500, 1, 3, 1), "\u{2212}1.5");
        assert_eq!(format_decimal(12_345, 1, 0, 0), "12345");
    }

    #[test]
    fn overflowing_values_report_the_metric() {
        let values = [i64::MAX, i64::MAX, i64::MIN];

        let error = aggregate("domain.x.running_ns", &values).unwrap_err();

        assert_eq!(
            error,
            AggregateError::Overflow {
                metric: "domain.x.running_ns".to_owned()
            }
        );
    }

    #[test]
    fn nearest_rank_matches_section_1_3() {
        let sorted = [1u64, 2, 3, 4, 5, 6, 7, 8, 9, 10];

        assert_eq!(nearest_rank(&sorted, 1, 2), Some(&5));
        assert_eq!(nearest_rank(&sorted, 99, 100), Some(&10));
        assert_eq!(nearest_rank(&[] as &[u64], 1, 2), None);
    }
}
