//! Many seeds of one scenario (`xensim sweep`, DESIGN.md "CLI"; `specs/metrics.md` §3):
//! the seed range `A..B` (inclusive), the shard `i/n` a batch engine hands one task (0-based,
//! as Slurm's `SLURM_ARRAY_TASK_ID` and Kubernetes' `JOB_COMPLETION_INDEX`), and the runner
//! that runs seeds on `-j` worker threads.
//!
//! Layers: this file (ranges, shards, the runner) → [`line`] (one seed's JSON result line) →
//! [`summary`] (the aggregate of lines) → [`files`] (shard files on disk and `sweep merge`).
//!
//! # Invariants
//! - One simulation is single-threaded; threads only run different seeds (DESIGN.md rule 4).
//!   These worker threads are the only threads xensim starts besides `serve`'s poll loop.
//! - Results are ordered by seed whatever the completion order, so `-j 1` and `-j 8` give
//!   the same lines.
//! - A shard is a fixed partition of the seed list: the seed at position `k` of `A..=B`
//!   belongs to shard `k mod n`. Every seed is in exactly one shard.
//! - The seed count is bounded by [`SEEDS_MAX`].

pub mod files;
pub mod line;
pub mod summary;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::app::{self, RunArgs};
use crate::scenario::Scenario;
use line::SeedResult;

/// Most seeds one sweep accepts (a bound on the result table and the merge).
pub const SEEDS_MAX: u64 = 1_000_000;

/// Everything that can go wrong in a sweep or a merge besides a run failing.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A result line failed to aggregate.
    #[error(transparent)]
    Aggregate(#[from] crate::report::aggregate::AggregateError),
    /// A shard file or directory is malformed.
    #[error("{path}:{line}: {message}")]
    BadFile {
        /// The file.
        path: String,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The shards given to `merge` do not make up one sweep.
    #[error("sweep merge: {0}")]
    Inconsistent(String),
    /// Reading or writing a file failed (the cause follows as the error's source).
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `--seeds` is not `A..B` with `A <= B`.
    #[error("--seeds {text}: {message}")]
    Range {
        /// As given.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// `--shard` is not `i/n` with `i < n`.
    #[error("--shard {text}: {message}")]
    Shard {
        /// As given.
        text: String,
        /// What is wrong.
        message: String,
    },
}

/// An inclusive seed range `first..last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedRange {
    /// First seed.
    pub first: u64,
    /// Last seed (inclusive).
    pub last: u64,
}

impl SeedRange {
    /// Parses `A..B` (inclusive, `A <= B`, at most [`SEEDS_MAX`] seeds).
    pub fn parse(text: &str) -> Result<SeedRange, SweepError> {
        let error = |message: &str| SweepError::Range {
            text: text.to_owned(),
            message: message.to_owned(),
        };
        let (a, b) = text
            .split_once("..")
            .ok_or_else(|| error("expected A..B (inclusive), e.g. 1..20"))?;
        let first: u64 = a
            .parse()
            .map_err(|_| error("the first seed is not an unsigned integer"))?;
        let last: u64 = b
            .parse()
            .map_err(|_| error("the last seed is not an unsigned integer"))?;
        if first > last {
            return Err(error("the first seed is after the last"));
        }
        if last - first >= SEEDS_MAX {
            return Err(error(&format!("more than {SEEDS_MAX} seeds")));
        }
        Ok(SeedRange { first, last })
    }

    /// Seeds in the range.
    pub fn count(self) -> u64 {
        self.last - self.first + 1
    }

    /// The seeds of `shard`, ascending.
    pub fn shard_seeds(self, shard: Shard) -> Vec<u64> {
        (self.first..=self.last)
            .filter(|s| (s - self.first) % shard.count == shard.index)
            .collect()
    }
}

impl std::fmt::Display for SeedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.first, self.last)
    }
}

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: u64,
    /// Number of shards (≥ 1).
    pub count: u64,
}

impl Shard {
    /// The whole sweep as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/n` with `0 <= i < n`.
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let error = |message: &str| SweepError::Shard {
            text: text.to_owned(),
            message: message.to_owned(),
        };
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| error("expected i/n with a 0-based index, e.g. 0/4"))?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| error("the index is not an unsigned integer"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| error("the shard count is not an unsigned integer"))?;
        if count == 0 || count > SEEDS_MAX {
            return Err(error(&format!("the shard count must be 1..={SEEDS_MAX}")));
        }
        if index >= count {
            return Err(error(
                "the index must be below the count (0-based, as SLURM_ARRAY_TASK_ID)",
            ));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How the runner runs each seed.
#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    /// Worker threads.
    pub jobs: NonZeroUsize,
    /// Run the invariant checker after every event (`--check`).
    pub check: bool,
}

/// The default `-j`: the machine's available parallelism (1 if unknown).
pub fn default_jobs() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Runs one seed of `scenario` and returns its result line.
pub fn run_seed(scenario: &Scenario, seed: u64, check: bool) -> SeedResult {
    let mut scenario = scenario.clone();
    scenario.sim.seed = seed;
    // Seeds run side by side: no run writes the scenario's own trace or decision log.
    scenario.sim.trace_file = None;
    scenario.sim.decision_log = false;
    let args = RunArgs {
        check,
        ..RunArgs::default()
    };
    match app::run_scenario(scenario, &args) {
        Ok(report) => SeedResult::from_report(&report),
        Err(error) => SeedResult::stopped(seed, &error.to_string()),
    }
}

/// Runs `seeds` of `scenario` on `opts.jobs` threads; calls `on_done` on the calling thread
/// as each seed finishes (completion order) and returns the lines in `seeds` order.
pub fn run_seeds(
    scenario: &Scenario,
    seeds: &[u64],
    opts: RunnerOptions,
    on_done: &mut dyn FnMut(&SeedResult),
) -> Vec<SeedResult> {
    let next = AtomicUsize::new(0);
    let workers = opts.jobs.get().min(seeds.len().max(1));
    let (sender, receiver) = crossbeam::channel::bounded::<(usize, SeedResult)>(workers);
    let mut slots: Vec<Option<SeedResult>> = vec![None; seeds.len()];
    crossbeam::scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move |_| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(index) else {
                    break;
                };
                let result = run_seed(scenario, seed, opts.check);
                if sender.send((index, result)).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        for (index, result) in receiver.iter() {
            on_done(&result);
            assert!(slots[index].is_none(), "each seed runs once");
            slots[index] = Some(result);
        }
    })
    .unwrap_or_else(|_| panic!("a sweep worker panicked"));
    slots
        .into_iter()
        .map(|slot| slot.expect("every seed produced a result"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_range_is_inclusive() {
        let range = SeedRange::parse("3..6").unwrap();

        assert_eq!(range.count(), 4);
        assert_eq!(range.shard_seeds(Shard::WHOLE), vec![3, 4, 5, 6]);
    }

    #[test]
    fn shards_partition_the_seeds_round_robin() {
        let range = SeedRange::parse("1..10").unwrap();

        let shards: Vec<Vec<u64>> = (0..4)
            .map(|index| range.shard_seeds(Shard { index, count: 4 }))
            .collect();

        assert_eq!(shards[0], vec![1, 5, 9]);
        assert_eq!(shards[3], vec![4, 8]);
        let mut all: Vec<u64> = shards.concat();
        all.sort_unstable();
        assert_eq!(all, (1..=10).collect::<Vec<u64>>());
    }

    #[test]
    fn bad_ranges_and_shards_are_errors() {
        SeedRange::parse("5..1").unwrap_err();
        SeedRange::parse("1-5").unwrap_err();
        SeedRange::parse("0..1000000").unwrap_err();
        Shard::parse("4/4").unwrap_err();
        Shard::parse("0/0").unwrap_err();
        Shard::parse("x/2").unwrap_err();
        assert_eq!(Shard::parse("3/4").unwrap(), Shard { index: 3, count: 4 });
    }
}
