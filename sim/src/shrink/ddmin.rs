//! Delta debugging over a list (Zeller and Hildebrandt's ddmin, complement-only variant):
//! remove chunks of the kept items while the test still fails, halving the chunk size when
//! no chunk can go, within a bounded number of test runs.
//!
//! # Invariants
//! - The result is a subset of the input, in input order, on which the test failed (or the
//!   input itself).
//! - The order of tries depends only on the input: shrinking is deterministic.
//! - No try runs once the [`Budget`] is spent.

/// A bound on test runs, shared by every pass of one shrink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Runs done.
    pub runs_used: u32,
    /// Most runs allowed.
    pub runs_max: u32,
}

impl Budget {
    /// A budget of `runs_max` runs.
    pub fn new(runs_max: u32) -> Budget {
        Budget {
            runs_used: 0,
            runs_max,
        }
    }

    /// Takes one run; false when the budget is spent.
    pub fn take(&mut self) -> bool {
        if self.runs_used >= self.runs_max {
            return false;
        }
        self.runs_used += 1;
        true
    }

    /// True once every run is spent.
    pub fn spent(&self) -> bool {
        self.runs_used >= self.runs_max
    }
}

/// The smallest subset of `items` found on which `fails` holds, trying complements of
/// `n` chunks for n = 1, 2, 4, ... (`fails(items)` is assumed true).
pub fn ddmin<T: Clone>(
    items: &[T],
    budget: &mut Budget,
    fails: &mut dyn FnMut(&[T]) -> bool,
) -> Vec<T> {
    let mut kept: Vec<T> = items.to_vec();
    let mut chunk_count = 1usize;
    while !kept.is_empty() {
        let chunk_len = kept.len().div_ceil(chunk_count);
        match reduce_once(&kept, chunk_len, budget, fails) {
            Some(smaller) => {
                kept = smaller;
                chunk_count = chunk_count.saturating_sub(1).max(1);
            }
            None if chunk_len <= 1 || budget.spent() => break,
            None => chunk_count = (chunk_count * 2).min(kept.len()),
        }
    }
    assert!(kept.len() <= items.len(), "ddmin grew its input");
    kept
}

/// The first complement of a `chunk_len` chunk of `kept` on which `fails` holds.
fn reduce_once<T: Clone>(
    kept: &[T],
    chunk_len: usize,
    budget: &mut Budget,
    fails: &mut dyn FnMut(&[T]) -> bool,
) -> Option<Vec<T>> {
    assert!(chunk_len >= 1, "empty chunk");
    let mut start = 0;
    while start < kept.len() {
        let end = (start + chunk_len).min(kept.len());
        let candidate: Vec<T> = kept[..start].iter().chain(&kept[end..]).cloned().collect();
        if !budget.take() {
            return None;
        }
        if fails(&candidate) {
            return Some(candidate);
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{ddmin, Budget};

    #[test]
    fn ddmin_finds_the_two_items_that_fail_together() {
        let items: Vec<u32> = (0..16).collect();
        let mut budget = Budget::new(1000);

        let kept = ddmin(&items, &mut budget, &mut |c| {
            c.contains(&3) && c.contains(&11)
        });

        assert_eq!(kept, vec![3, 11]);
    }

    #[test]
    fn ddmin_drops_everything_when_nothing_is_needed() {
        let items: Vec<u32> = (0..5).collect();
        let mut budget = Budget::new(1000);

        let kept = ddmin(&items, &mut budget, &mut |_| true);

        assert!(kept.is_empty());
        assert_eq!(budget.runs_used, 1);
    }

    #[test]
    fn ddmin_stops_when_the_budget_is_spent() {
        let items: Vec<u32> = (0..64).collect();
        // Two runs: the empty set fails to fail, then one half-chunk try.
        let mut budget = Budget::new(2);

        let kept = ddmin(&items, &mut budget, &mut |c| c.contains(&63));

        assert_eq!(budget.runs_used, 2);
        assert_eq!(kept.len(), 32);
    }
}
