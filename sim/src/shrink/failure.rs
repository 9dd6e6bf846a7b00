//! What "still fails" means to `xensim shrink`: a run's failures as keys, so a reduced
//! scenario counts only when it fails the *same* way (the same invariant, expectation path or
//! xl command), not merely in some way. An expectation's key also says what its path found:
//! a value out of bounds is not the same failure as a domain that no longer exists (`not
//! found`), which any run too short to create it would give.

use crate::app::RunReport;
use crate::report::metrics::{lookup, Lookup};

/// What an expectation's metric path found in the run's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Found {
    /// An integer outside the bounds.
    Value,
    /// `null` (no samples, an undefined ratio).
    Null,
    /// Nothing at the path (the entity does not exist).
    NotFound,
    /// Not an integer.
    NotInteger,
}

/// One way a run failed (exit status 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKey {
    /// The invariant checker found this invariant broken.
    Invariant(String),
    /// The `[[expect]]` with this metric path failed, finding that.
    Expect {
        /// The metric path.
        metric: String,
        /// What the path found.
        found: Found,
    },
    /// The timeline's `xl` command with this text exited other than its `expect_rc`.
    ExpectRc(String),
}

impl std::fmt::Display for FailureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKey::Invariant(name) => write!(f, "invariant {name}"),
            FailureKey::Expect { metric, found } => {
                let what = match found {
                    Found::Value => "out of bounds",
                    Found::Null => "null",
                    Found::NotFound => "not found",
                    Found::NotInteger => "not an integer",
                };
                write!(f, "expectation {metric} ({what})")
            }
            FailureKey::ExpectRc(command) => write!(f, "expect_rc of `xl {command}`"),
        }
    }
}

/// Every failure of `report`, in the order `xensim run` prints them, with its message.
pub fn failures(report: &RunReport) -> Vec<(FailureKey, String)> {
    let mut out = Vec::new();
    if let Some(failure) = &report.outcome.invariant_failure {
        if failure.violations.is_empty() {
            out.push((FailureKey::Invariant(String::new()), String::new()));
        }
        out.extend(failure.violations.iter().map(|v| {
            (
                FailureKey::Invariant(v.invariant.to_string()),
                format!("{}: {}", v.invariant, v.detail),
            )
        }));
    }
    let json: serde_json::Value =
        serde_json::from_str(&report.metrics_json).unwrap_or(serde_json::Value::Null);
    out.extend(report.expect_failures.iter().map(|e| {
        let found = match lookup(&json, &e.metric) {
            Lookup::Integer(_) => Found::Value,
            Lookup::Null => Found::Null,
            Lookup::NotFound => Found::NotFound,
            Lookup::NotInteger => Found::NotInteger,
        };
        let key = FailureKey::Expect {
            metric: e.metric.clone(),
            found,
        };
        (key, e.message.clone())
    }));
    out.extend(
        report
            .outcome
            .commands
            .iter()
            .filter(|c| c.expect_rc.is_some() && c.rc != c.expect_rc)
            .map(|c| {
                let got =
                    c.rc.map_or_else(|| "still running".to_string(), |rc| rc.to_string());
                let want = c.expect_rc.unwrap_or_default();
                let message = format!("`xl {}` exited {got}, want {want}", c.text);
                (FailureKey::ExpectRc(c.text.clone()), message)
            }),
    );
    assert_eq!(
        out.is_empty(),
        report.exit_code() == 0,
        "failure keys disagree with the exit status"
    );
    out
}
