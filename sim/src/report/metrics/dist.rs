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
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let count = u64::try_from(sorted.len()).expect("sample count fits u64");
        let sum_wide: u128 = sorted.iter().map(|&s| u128::from(s)).sum();
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
            min: sorted.first().copied(),
            mean,
            p50: nearest_rank(&sorted, 1, 2),
            p90: nearest_rank(&sorted, 9, 10),
            p99: nearest_rank(&sorted, 99, 100),
            p999: nearest_rank(&sorted, 999, 1000),
            max: sorted.last().copied(),
        };
        assert_eq!(dist.count == 0, dist.max.is_none());
        assert!(dist.min <= dist.p50 && dist.p999 <= dist.max);
        dist
    }
}

/// The nearest-rank `num/den` quantile of ascending `sorted`; `None` when it is empty.
pub fn nearest_rank(sorted: &[u64], num: u64, den: u64) -> Option<u64> {
    assert!(den > 0, "quantile denominator is zero");
    assert!(num <= den, "quantile above 1");
    if sorted.is_empty() {
        return None;
    }
    let n = u128::try_from(sorted.len()).expect("usize fits u128");
    // Same as the spec's `(num·N + den − 1) / den`.
    let rank = (u128::from(num) * n).div_ceil(u128::from(den));
    let rank = usize::try_from(rank.max(1)).expect("rank <= len fits usize");
    sorted.get(rank - 1).copied()
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
    fn distribution_unsorted_input_is_sorted_first() {
        let dist = Distribution::from_samples(&[30, 10, 20], "test");

        assert_eq!(dist.min, Some(10));
        assert_eq!(dist.p50, Some(20));
        assert_eq!(dist.max, Some(30));
    }
}
