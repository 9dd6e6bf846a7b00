//! Latency distributions (`specs/metrics.md` §1.3): count, exact sum, min, floored mean and
//! nearest-rank percentiles p50, p90, p99, p99.9, max.
//!
//! Nearest rank: for `q = num/den` the 1-based rank is `k = max(1, ceil(num·N/den))`,
//! computed as `(num·N + den − 1) / den` in `u128`, and the value is `sorted[k − 1]`, so
//! every percentile is an observed sample.
//!
//! # Invariants
//! - `count == 0` exactly when every field except `count` and `sum` is `None`.
//! - `min <= p50 <= p90 <= p99 <= p999 <= max` otherwise.
//!
//! Left out: the `hdr_3sd` approximate method (`--approx-percentiles`).

use serde::Serialize;

/// One distribution object of the metrics JSON; the unit is in the field name that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Distribution {
    /// Number of samples.
    pub count: u64,
    /// Exact sum of the samples.
    pub sum: u64,
    /// Smallest sample.
    pub min: Option<u64>,
    /// `floor(sum / count)`.
    pub mean: Option<u64>,
    /// Nearest-rank median.
    pub p50: Option<u64>,
    /// Nearest-rank 90th percentile.
    pub p90: Option<u64>,
    /// Nearest-rank 99th percentile.
    pub p99: Option<u64>,
    /// Nearest-rank 99.9th percentile.
    pub p999: Option<u64>,
    /// Largest sample.
    pub max: Option<u64>,
}

impl Distribution {
    /// Builds the distribution of `samples` (any order); `metric` names it in overflow panics.
    pub fn from_samples(samples: &[u64], metric: &str) -> Distribution {
        Distribution::from_unordered(&mut samples.to_vec(), metric)
    }

    /// As [`Distribution::from_samples`], reordering `values` in place instead of copying
    /// them (narrow `u32` samples too).
    ///
    /// The quantiles are selected (`select_nth_unstable`, from the lowest rank up, each in
    /// the part above the previous one) rather than read from a full sort: the same values,
    /// in linear time (sorting every vCPU's samples cost 3% of `bench-64x512`).
    ///
    /// The selections also bound the extremes: the values below the median's rank are all
    /// at most the median, so the minimum is among them or is the median itself, and the
    /// maximum is at or above the last quantile's rank. Only the sum reads every value.
    pub fn from_unordered<T: Sample>(values: &mut [T], metric: &str) -> Distribution {
        let selected = select_ranks(values, QUANTILES);
        let (min, max) = match (selected[0], selected[QUANTILES.len() - 1]) {
            (Some((p50_index, p50)), Some((top_index, _))) => {
                let below_p50 = values[..p50_index].iter().copied().min();
                let min = below_p50.map_or(p50, |m| m.min(p50));
                (
                    Some(min.into()),
                    values[top_index..].iter().copied().max().map(Into::into),
                )
            }
            _ => (None, None),
        };
        let quantiles = selected.map(|q| q.map(|(_, value)| value.into()));
        let sum_wide = T::sum_wide(values);
        Distribution::with_quantiles(values.len(), sum_wide, metric, min, quantiles, max)
    }

    /// As [`Distribution::from_samples`] for narrow samples, left in place: the extremes
    /// and the sum in one pass each, the quantiles by histogram
    /// ([`super::select::select_sorted_indexes`]), the values a sort would give. The
    /// run's metrics call [`Distribution::from_narrow_stats`] with stats they already hold;
    /// the tests compare both with a sort.
    #[cfg(test)]
    pub fn from_narrow(values: &[u32], metric: &str) -> Distribution {
        Distribution::from_narrow_stats(values, NarrowStats::of(values), metric)
    }

    /// As [`Distribution::from_narrow`] for the samples of `parts` pooled in `values`: the
    /// extremes and the sum are the parts', not read again.
    pub(super) fn from_narrow_parts(
        values: &[u32],
        parts: &[&Distribution],
        metric: &str,
    ) -> Distribution {
        let narrow = |value: u64| u32::try_from(value).expect("a narrow sample fits u32");
        let min = parts.iter().filter_map(|p| p.min).min().map(narrow);
        let max = parts.iter().filter_map(|p| p.max).max().map(narrow);
        let sum_wide = parts.iter().map(|p| u128::from(p.sum)).sum();
        let stats = NarrowStats {
            extremes: min.zip(max),
            sum_wide,
        };
        Distribution::from_narrow_stats(values, stats, metric)
    }

    /// [`Distribution::from_narrow`] given the extremes and the sum of `values`.
    pub(super) fn from_narrow_stats(
        values: &[u32],
        stats: NarrowStats,
        metric: &str,
    ) -> Distribution {
        debug_assert_eq!(stats, NarrowStats::of(values));
        let NarrowStats { extremes, sum_wide } = stats;
        let Some((min, max)) = extremes else {
            let none = [None; QUANTILES.len()];
            return Distribution::with_quantiles(0, sum_wide, metric, None, none, None);
        };
        let indexes = QUANTILES.map(|(num, den)| {
            rank_index(values.len(), num, den).expect("a rank of a non-empty sample")
        });
        let quantiles = super::select::select_sorted_indexes(values, (min, max), indexes)
            .map(|value| Some(u64::from(value)));
        let (min, max) = (Some(u64::from(min)), Some(u64::from(max)));
        Distribution::with_quantiles(values.len(), sum_wide, metric, min, quantiles, max)
    }

    /// As [`Distribution::from_samples`] for samples already in ascending order: the
    /// quantiles are read at their ranks, nothing is copied.
    pub fn from_sorted(sorted: &[u64], metric: &str) -> Distribution {
        debug_assert!(sorted.is_sorted(), "{metric}: samples not ascending");
        let quantiles = QUANTILES.map(|(num, den)| nearest_rank(sorted, num, den));
        let (min, max) = (sorted.first().copied(), sorted.last().copied());
        let sum_wide: u128 = sorted.iter().map(|&s| u128::from(s)).sum();
        Distribution::with_quantiles(sorted.len(), sum_wide, metric, min, quantiles, max)
    }

    fn with_quantiles(
        len: usize,
        sum_wide: u128,
        metric: &str,
        min: Option<u64>,
        [p50, p90, p99, p999]: [Option<u64>; 4],
        max: Option<u64>,
    ) -> Distribution {
        let count = u64::try_from(len).expect("sample count fits u64");
        let sum = u64::try_from(sum_wide)
            .unwrap_or_else(|_| panic!("metric overflow: {metric}.sum exceeds u64"));
        let mean = if count == 0 {
            None
        } else {
            Some(sum.checked_div(count).expect("count is non-zero"))
        };
        let dist = Distribution {
            count,
            sum,
            min,
            mean,
            p50,
            p90,
            p99,
            p999,
            max,
        };
        assert_eq!(dist.count == 0, dist.max.is_none());
        assert!(dist.min <= dist.p50 && dist.p999 <= dist.max);
        dist
    }
}

/// A sample type of [`Distribution::from_unordered`]: a nanosecond value of 32 bits (the
/// collector's narrow samples) or 64.
pub trait Sample: Copy + Ord + Into<u64> {
    /// The exact sum of `values`.
    fn sum_wide(values: &[Self]) -> u128;
}

impl Sample for u32 {
    /// Summed in `u64` by chunks of 2^31 values (no chunk can overflow it: 2^31 values
    /// below 2^32 sum below 2^63), which vectorizes where a `u128` sum does not.
    fn sum_wide(values: &[u32]) -> u128 {
        const CHUNK_VALUES: usize = 1 << 31;
        values
            .chunks(CHUNK_VALUES)
            .map(|chunk| u128::from(chunk.iter().map(|&v| u64::from(v)).sum::<u64>()))
            .sum()
    }
}

impl Sample for u64 {
    fn sum_wide(values: &[u64]) -> u128 {
        values.iter().map(|&v| u128::from(v)).sum()
    }
}

/// The extremes and the exact sum of narrow samples: what a distribution reads of every
/// value, kept apart so that a pool's are its parts' joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NarrowStats {
    /// `(min, max)`, `None` for no sample.
    extremes: Option<(u32, u32)>,
    sum_wide: u128,
}

impl NarrowStats {
    /// The stats of `values`: one pass each for the extremes and the sum.
    pub(super) fn of(values: &[u32]) -> NarrowStats {
        let extremes = values
            .iter()
            .copied()
            .min()
            .zip(values.iter().copied().max());
        NarrowStats {
            extremes,
            sum_wide: u32::sum_wide(values),
        }
    }

    /// The stats of the samples of `self` and `other` together.
    pub(super) fn join(self, other: NarrowStats) -> NarrowStats {
        let extremes = match (self.extremes, other.extremes) {
            (Some((a_min, a_max)), Some((b_min, b_max))) => {
                Some((a_min.min(b_min), a_max.max(b_max)))
            }
            (one, None) | (None, one) => one,
        };
        NarrowStats {
            extremes,
            sum_wide: self.sum_wide + other.sum_wide,
        }
    }
}

/// The reported quantiles p50, p90, p99 and p99.9 as `(num, den)`.
const QUANTILES: [(u64, u64); 4] = [(1, 2), (9, 10), (99, 100), (999, 1000)];

/// The nearest-rank `num/den` quantile of ascending `sorted`; `None` when it is empty.
pub fn nearest_rank(sorted: &[u64], num: u64, den: u64) -> Option<u64> {
    sorted.get(rank_index(sorted.len(), num, den)?).copied()
}

/// The 0-based index of the nearest-rank `num/den` quantile among `len` sorted values.
fn rank_index(len: usize, num: u64, den: u64) -> Option<usize> {
    assert!(den > 0, "quantile denominator is zero");
    assert!(num <= den, "quantile above 1");
    if len == 0 {
        return None;
    }
    let n = u128::try_from(len).expect("usize fits u128");
    // Same as the spec's `(num·N + den − 1) / den`.
    let rank = (u128::from(num) * n).div_ceil(u128::from(den));
    let rank = usize::try_from(rank.max(1)).expect("rank <= len fits usize");
    Some(rank - 1)
}

/// The nearest-rank quantiles `(num, den)` of `values` (ascending quantiles) with their
/// sorted indexes, reordering `values` as selection does: each rank's value is placed at
/// its sorted index, and each selection moves only values at or above the previous rank.
fn select_ranks<T: Copy + Ord, const N: usize>(
    values: &mut [T],
    quantiles: [(u64, u64); N],
) -> [Option<(usize, T)>; N] {
    let mut low = 0;
    quantiles.map(|(num, den)| {
        let index = rank_index(values.len(), num, den)?;
        assert!(index >= low, "quantiles not ascending");
        // Everything at or above `low` is at least the previous quantile's value.
        values[low..].select_nth_unstable(index - low);
        low = index;
        Some((index, values[index]))
    })
}

#[cfg(test)]
mod tests {
    use super::{nearest_rank, Distribution};

    #[test]
    fn nearest_rank_p99_of_100_samples_is_the_99th_value() {
        // Samples 1..=100: rank ceil(99·100/100) = 99, so the value is 99.
        let samples: Vec<u64> = (1..=100).collect();

        let dist = Distribution::from_samples(&samples, "test");

        assert_eq!(dist.p99, Some(99));
        assert_eq!(dist.p50, Some(50));
        assert_eq!(dist.p90, Some(90));
        // ceil(999·100/1000) = ceil(99.9) = 100.
        assert_eq!(dist.p999, Some(100));
        assert_eq!(dist.sum, 5050);
        assert_eq!(dist.mean, Some(50));
    }

    #[test]
    fn nearest_rank_single_sample_is_that_sample() {
        const ONLY_SAMPLE_NS: u64 = 7;

        let value = nearest_rank(&[ONLY_SAMPLE_NS], 1, 2);

        assert_eq!(value, Some(ONLY_SAMPLE_NS));
    }

    #[test]
    fn distribution_empty_has_nulls_but_zero_count_and_sum() {
        let dist = Distribution::from_samples(&[], "test");

        assert_eq!(dist.count, 0);
        assert_eq!(dist.sum, 0);
        assert_eq!(dist.min, None);
        assert_eq!(dist.mean, None);
        assert_eq!(dist.p99, None);
        assert_eq!(dist.max, None);
    }

    #[test]
    fn selected_quantiles_equal_those_of_the_sorted_samples() {
        // 10_007 samples with many duplicates, in a scrambled order (i·7919 mod 10_007 is a
        // permutation, reduced mod 500 for the duplicates).
        let samples: Vec<u64> = (0..10_007u64).map(|i| (i * 7919 % 10_007) % 500).collect();
        let mut sorted = samples.clone();
        sorted.sort_unstable();

        let dist = Distribution::from_samples(&samples, "test");

        assert_eq!(dist.p50, nearest_rank(&sorted, 1, 2));
        assert_eq!(dist.p90, nearest_rank(&sorted, 9, 10));
        assert_eq!(dist.p99, nearest_rank(&sorted, 99, 100));
        assert_eq!(dist.p999, nearest_rank(&sorted, 999, 1000));
        assert_eq!(dist.min, sorted.first().copied());
        assert_eq!(dist.max, sorted.last().copied());
    }

    #[test]
    fn from_sorted_equals_from_samples() {
        let mut samples: Vec<u64> = (0..3_001u64).map(|i| (i * 7919 % 3_001) % 97).collect();
        let scrambled = Distribution::from_samples(&samples, "test");
        samples.sort_unstable();

        let sorted = Distribution::from_sorted(&samples, "test");

        assert_eq!(sorted, scrambled);
        assert_eq!(
            Distribution::from_sorted(&[], "test"),
            Distribution::from_samples(&[], "test")
        );
    }

    #[test]
    fn narrow_samples_of_every_small_length_equal_the_sorted_distribution() {
        // Lengths 1..=40 cover every rank index being 0 (the median's rank is the first
        // for 1 or 2 samples), and duplicated minima and maxima (values mod 5, reversed).
        const LENGTH_MAX: u32 = 40;
        for len in 1..=LENGTH_MAX {
            let mut narrow: Vec<u32> = (0..len).rev().map(|i| i * 7 % 5 + 1_000).collect();
            let mut sorted: Vec<u64> = narrow.iter().map(|&v| u64::from(v)).collect();
            sorted.sort_unstable();

            let selected = Distribution::from_unordered(&mut narrow, "test");

            assert_eq!(
                selected,
                Distribution::from_sorted(&sorted, "test"),
                "{len}"
            );
        }
    }

    #[test]
    fn narrow_in_place_equals_the_sorted_distribution() {
        // Past the sorting size of one selection level, scrambled, with duplicates; and
        // empty.
        let narrow: Vec<u32> = (0..5_003u32).map(|i| (i * 7_919 % 5_003) % 1_301).collect();
        let mut sorted: Vec<u64> = narrow.iter().map(|&v| u64::from(v)).collect();
        sorted.sort_unstable();

        let dist = Distribution::from_narrow(&narrow, "test");

        assert_eq!(dist, Distribution::from_sorted(&sorted, "test"));
        assert_eq!(
            Distribution::from_narrow(&[], "test"),
            Distribution::from_sorted(&[], "test")
        );
    }

    #[test]
    fn narrow_pooled_from_parts_equals_the_pooled_samples() {
        // Two parts with distinct extremes, and an empty one.
        let a: Vec<u32> = (0..300u32).map(|i| (i * 7_919) % 1_000 + 50).collect();
        let b: Vec<u32> = (0..200u32).map(|i| (i * 104_729) % 5_000 + 10).collect();
        let pooled: Vec<u32> = a.iter().chain(&b).copied().collect();
        let parts = [
            Distribution::from_narrow(&a, "test"),
            Distribution::from_narrow(&b, "test"),
            Distribution::from_narrow(&[], "test"),
        ];

        let dist = Distribution::from_narrow_parts(&pooled, &parts.each_ref(), "test");

        assert_eq!(dist, Distribution::from_narrow(&pooled, "test"));
        assert_eq!(dist.min, Some(10));
    }

    #[test]
    fn narrow_sums_past_u32_are_exact() {
        // Three values of u32::MAX sum past 2^33.
        let mut narrow = vec![u32::MAX; 3];

        let dist = Distribution::from_unordered(&mut narrow, "test");

        assert_eq!(dist.sum, 3 * u64::from(u32::MAX));
        assert_eq!(dist.min, Some(u64::from(u32::MAX)));
    }

    #[test]
    fn distribution_unsorted_input_is_sorted_first() {
        let dist = Distribution::from_samples(&[30, 10, 20], "test");

        assert_eq!(dist.min, Some(10));
        assert_eq!(dist.p50, Some(20));
        assert_eq!(dist.max, Some(30));
    }
}
