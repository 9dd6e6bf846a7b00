//! `xensim shrink FILE --seed N`: reduces a failing scenario while it still fails the same
//! way, and writes the minimal scenario next to it (`FILE.min.toml`).
//!
//! Passes, repeated until none changes anything (at most `ROUNDS_MAX` rounds): ddmin over
//! the `[[domain]]` entries, then the `[[at]]` entries, then the other `[[expect]]` entries;
//! halving the duration (never to or below the warmup, so the metrics window stays
//! non-empty); halving each inline xl.cfg's `vcpus`. A candidate counts only if it loads and
//! its run fails with the *target*: the first failure of the original run (an invariant, an
//! expectation path, an `expect_rc` command; `failure.rs`). Files: `ddmin.rs` (the search),
//! `edit.rs` (the TOML items and their rendering), `failure.rs` (failure keys).
//!
//! # Invariants
//! - Deterministic: the same file, seed and options give the same minimal file.
//! - At most `runs_max` runs (the original included).
//! - The written scenario loads and fails with the target (it is the last candidate that did).

pub mod ddmin;
pub mod edit;
pub mod failure;

use std::path::{Path, PathBuf};

use crate::app::{self, AppError};
use crate::record::Recorder;
use crate::run::{self, RunOptions};
use crate::scenario::{self, LoadOptions};
use ddmin::{ddmin, Budget};
use edit::{duration_text, Items, Plan};
use failure::{failures, FailureKey};

/// Rounds of all passes before the shrinker stops even if the last round changed something.
const ROUNDS_MAX: u32 = 4;

/// Default bound on runs (`--max-runs`).
pub const RUNS_MAX_DEFAULT: u32 = 300;

/// Errors of `xensim shrink`.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    /// Loading or running the original scenario failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The original run does not fail: there is nothing to shrink.
    #[error(
        "{file} does not fail with seed {seed} (no expectation, expect_rc or invariant \
         failed{hint}): nothing to shrink"
    )]
    Passes {
        /// The scenario file.
        file: String,
        /// The seed.
        seed: u64,
        /// A hint about `--check`.
        hint: &'static str,
    },
    /// The scenario is not TOML `toml_edit` can edit (the loader accepted it, so unlikely).
    #[error("{file}: {reason}")]
    Toml {
        /// The scenario file.
        file: String,
        /// The parse error.
        reason: String,
    },
    /// The output could not be written.
    #[error("writing {path}: {reason}")]
    Write {
        /// The output path.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// Options of `xensim shrink`.
#[derive(Debug, Clone)]
pub struct ShrinkArgs {
    /// `--seed` (default: the scenario's).
    pub seed: Option<u64>,
    /// `--check`: run the invariant checker (needed to reproduce an invariant failure).
    pub check: bool,
    /// `--max-runs`.
    pub runs_max: u32,
    /// `--out` (default: `FILE.min.toml` beside FILE).
    pub out: Option<PathBuf>,
}

/// What a shrink did.
#[derive(Debug, Clone)]
pub struct ShrinkReport {
    /// The failure kept.
    pub target: FailureKey,
    /// Its message in the original run.
    pub target_message: String,
    /// The seed used.
    pub seed: u64,
    /// Runs done, the original's included.
    pub budget: Budget,
    /// The file written.
    pub out: PathBuf,
    /// What was removed, shortened or lowered, one line each.
    pub removed: Vec<String>,
    /// Warnings about the written file (xl.cfg paths that resolve elsewhere).
    pub notes: Vec<String>,
}

/// The default output path: `dir/name.toml` -> `dir/name.min.toml`.
pub fn default_out(path: &Path) -> PathBuf {
    let stem = path.file_stem().map_or_else(
        || "scenario".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    path.with_file_name(format!("{stem}.min.toml"))
}

/// A candidate's test: does `text` load and fail with the target?
struct Tester<'a> {
    file_name: String,
    base_dir: &'a Path,
    seed: u64,
    check: bool,
    target: FailureKey,
}

impl Tester<'_> {
    fn run_failures(&self, text: &str) -> Option<Vec<(FailureKey, String)>> {
        let opts = LoadOptions {
            strict: false,
            seed_override: Some(self.seed),
        };
        let scenario = scenario::load_str(&self.file_name, text, self.base_dir, &opts).ok()?;
        let run_opts = RunOptions {
            check: self.check,
            ..RunOptions::default()
        };
        let outcome = run::run(&scenario, &run_opts, Recorder::new()).ok()?;
        Some(failures(&app::report(scenario, outcome)))
    }

    fn fails(&self, text: &str) -> bool {
        self.run_failures(text)
            .is_some_and(|found| found.iter().any(|(key, _)| *key == self.target))
    }
}

/// Shrinks the scenario at `path` (see the module doc) and writes the result.
pub fn shrink(path: &Path, args: &ShrinkArgs) -> Result<ShrinkReport, ShrinkError> {
    let original = app::load(path, args.seed, false)?;
    let seed = original.sim.seed;
    let file = path.display().to_string();
    let text = original
        .sources
        .first()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    let items = Items::parse(&text).map_err(|e| ShrinkError::Toml {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut budget = Budget::new(args.runs_max.max(1));
    budget.take();
    let Some((target, target_message)) = first_failure(original, args.check)? else {
        let hint = if args.check {
            ""
        } else {
            "; with --check the invariants are checked"
        };
        return Err(ShrinkError::Passes { file, seed, hint });
    };
    let tester = Tester {
        file_name: path
            .file_name()
            .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned()),
        base_dir,
        seed,
        check: args.check,
        target: target.clone(),
    };
    let mut search = Search {
        items: &items,
        tester: &tester,
        budget: &mut budget,
    };
    let plan = search.run(items.keep_all(seed));
    let out = args.out.clone().unwrap_or_else(|| default_out(path));
    let header = format!(
        "# Minimal scenario written by `xensim shrink {file} --seed {seed}`; it still fails \
         with {target}.\n"
    );
    std::fs::write(&out, header + &items.render(&plan)).map_err(|e| ShrinkError::Write {
        path: out.display().to_string(),
        reason: e.to_string(),
    })?;
    let notes = path_notes(&items, path, &out);
    Ok(ShrinkReport {
        target,
        target_message,
        seed,
        budget,
        out,
        removed: describe(&items, &plan),
        notes,
    })
}

/// A note when the minimal file is written to another directory than the scenario while it
/// names xl.cfg files by relative path (`config = ...`, `xl create PATH`): they resolve from
/// the file's own directory, as the loader reads them.
fn path_notes(items: &Items, scenario: &Path, out: &Path) -> Vec<String> {
    let dir = |p: &Path| {
        let parent = p.parent().unwrap_or_else(|| Path::new(""));
        std::fs::canonicalize(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
        .ok()
    };
    let names_files = items.names_config_files();
    if !names_files || dir(scenario) == dir(out) {
        return Vec::new();
    }
    vec![format!(
        "note: {} names xl.cfg files by relative path; they resolve from {}'s directory, \
         not {}'s: copy them there or write the minimal file beside the scenario",
        scenario.display(),
        out.display(),
        scenario.display()
    )]
}

/// The first failure of `scenario`'s run (the shrink's target) and its message, if it fails.
fn first_failure(
    scenario: crate::scenario::Scenario,
    check: bool,
) -> Result<Option<(FailureKey, String)>, ShrinkError> {
    let opts = RunOptions {
        check,
        ..RunOptions::default()
    };
    let outcome = run::run(&scenario, &opts, Recorder::new()).map_err(AppError::from)?;
    Ok(failures(&app::report(scenario, outcome)).into_iter().next())
}

/// The passes over one scenario.
struct Search<'a, 'b> {
    items: &'a Items,
    tester: &'a Tester<'b>,
    budget: &'a mut Budget,
}

impl Search<'_, '_> {
    fn fails(&mut self, plan: &Plan) -> bool {
        self.budget.take() && self.tester.fails(&self.items.render(plan))
    }

    fn run(&mut self, mut plan: Plan) -> Plan {
        for _ in 0..ROUNDS_MAX {
            let before = self.items.effective(&plan);
            plan = self.drop_domains(plan);
            plan = self.drop_ats(plan);
            plan = self.drop_expects(plan);
            plan = self.halve_duration(plan);
            plan = self.items.effective(&plan);
            plan = self.lower_vcpus(plan);
            if self.items.effective(&plan) == before || self.budget.spent() {
                break;
            }
        }
        self.items.effective(&plan)
    }

    /// ddmin over the kept entries of one list of `plan` (chosen by `list`), never trying
    /// to drop the indices in `protected`.
    fn ddmin_list(
        &mut self,
        plan: Plan,
        list: fn(&mut Plan) -> &mut Vec<bool>,
        protected: &[usize],
    ) -> Plan {
        let mut base = self.items.effective(&plan);
        let candidates: Vec<usize> = list(&mut base)
            .iter()
            .enumerate()
            .filter(|(i, keep)| **keep && !protected.contains(i))
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return base;
        }
        let with = |kept: &[usize]| {
            let mut p = base.clone();
            for (i, keep) in list(&mut p).iter_mut().enumerate() {
                if candidates.contains(&i) {
                    *keep = kept.contains(&i);
                }
            }
            p
        };
        let (items, tester) = (self.items, self.tester);
        let mut test = |kept: &[usize]| tester.fails(&items.render(&with(kept)));
        let kept = ddmin(&candidates, self.budget, &mut test);
        with(&kept)
    }

    fn drop_domains(&mut self, plan: Plan) -> Plan {
        self.ddmin_list(plan, |p| &mut p.domains, &[])
    }

    fn drop_ats(&mut self, plan: Plan) -> Plan {
        let protected: Vec<usize> = match &self.tester.target {
            FailureKey::ExpectRc(command) => (0..self.items.ats.len())
                .filter(|&i| self.items.ats[i].xl.as_deref() == Some(command.as_str()))
                .collect(),
            _ => Vec::new(),
        };
        self.ddmin_list(plan, |p| &mut p.ats, &protected)
    }

    fn drop_expects(&mut self, plan: Plan) -> Plan {
        let protected: Vec<usize> = match &self.tester.target {
            FailureKey::Expect { metric, .. } => (0..self.items.expects.len())
                .filter(|&i| self.items.expects[i] == *metric)
                .collect(),
            _ => Vec::new(),
        };
        self.ddmin_list(plan, |p| &mut p.expects, &protected)
    }

    /// Halves the duration while the run still fails and the halved duration stays above
    /// the warmup.
    fn halve_duration(&mut self, mut plan: Plan) -> Plan {
        loop {
            let half_ns = plan.duration_ns / 2;
            if half_ns <= self.items.warmup_ns || half_ns == 0 {
                return plan;
            }
            let candidate = Plan {
                duration_ns: half_ns,
                ..plan.clone()
            };
            if !self.fails(&candidate) {
                return plan;
            }
            plan = candidate;
        }
    }

    /// Halves each kept domain's vCPU count while the run still fails.
    fn lower_vcpus(&mut self, mut plan: Plan) -> Plan {
        for index in 0..self.items.domains.len() {
            let Some(original) = self.items.domains[index].vcpus else {
                continue;
            };
            while plan.domains[index] {
                let current = plan.vcpus[index].unwrap_or(original);
                if current <= 1 {
                    break;
                }
                let mut candidate = plan.clone();
                candidate.vcpus[index] = Some(current / 2);
                if !self.fails(&candidate) {
                    break;
                }
                plan = candidate;
            }
        }
        plan
    }
}

/// One line per removed or lowered item of `plan` against the original.
fn describe(items: &Items, plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    let dropped_domains: Vec<&str> = items
        .domains
        .iter()
        .zip(&plan.domains)
        .filter(|(_, keep)| !**keep)
        .map(|(d, _)| d.name.as_str())
        .collect();
    if !dropped_domains.is_empty() {
        lines.push(format!("removed domains: {}", dropped_domains.join(", ")));
    }
    for (at, _) in items.ats.iter().zip(&plan.ats).filter(|(_, keep)| !**keep) {
        let time = duration_text(at.time_ns);
        lines.push(format!("removed [[at]] {time} {}", at.label));
    }
    for (metric, _) in items
        .expects
        .iter()
        .zip(&plan.expects)
        .filter(|(_, k)| !**k)
    {
        lines.push(format!("removed [[expect]] {metric}"));
    }
    if plan.duration_ns != items.duration_ns {
        lines.push(format!(
            "shortened duration: {} -> {}",
            duration_text(items.duration_ns),
            duration_text(plan.duration_ns)
        ));
    }
    for ((domain, lowered), keep) in items.domains.iter().zip(&plan.vcpus).zip(&plan.domains) {
        if let (Some(from), Some(to), true) = (domain.vcpus, lowered, keep) {
            lines.push(format!("lowered vcpus of {}: {from} -> {to}", domain.name));
        }
    }
    lines
}
