//! What "still fails" means to `xensim shrink`: a run's failures as keys, so a reduced
//! scenario counts only when it fails the *same* way (the same invariant, expectation path or
//! xl command), not merely in some way.

use crate::app::RunReport;

/// One way a run failed (exit status 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKey {
    /// The invariant checker found this invariant broken.
    Invariant(String),
    /// The `[[expect]]` with this metric path failed.
    Expect(String),
    /// The timeline's `xl` command with this text exited other than its `expect_rc`.
    ExpectRc(String),
}

impl std::fmt::Display for FailureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKey::Invariant(name) => write!(f, "invariant {name}"),
            FailureKey::Expect(metric) => write!(f, "expectation {metric}"),
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
    out.extend(
        report
            .expect_failures
            .iter()
            .map(|e| (FailureKey::Expect(e.metric.clone()), e.message.clone())),
    );
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
