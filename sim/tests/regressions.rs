//! Regressions: inputs that once crashed xensim, each named for what it was.

mod support;

#[cfg(test)]
mod tests {
    use super::support::repo_root;
    use xensim::app;
    use xensim::record::{record_fields, Recorder};
    use xensim::replay_core::{replay_core, CoreReplayError};
    use xensim::run::{self, RunOptions};

    /// A corrupt trace whose input times go backwards once crashed the core-only replay
    /// with "runstate time goes backwards" (found by mutating quickstart's trace, seed 42).
    #[test]
    fn core_replay_of_input_going_back_in_time_is_a_record_error() {
        let path = repo_root().join("scenarios/quickstart.toml");
        let scenario = app::load(&path, None, false).expect("quickstart loads");
        let outcome =
            run::run(&scenario, &RunOptions::default(), Recorder::capturing()).expect("runs");
        let mut records = outcome.captured_records;
        // The last input record is moved back to time 0 (bytes 3..11 hold the time).
        let last_input = records
            .iter()
            .rposition(|r| record_fields(r).is_some_and(|(kind, _, _, _)| kind == "input"))
            .expect("the run has inputs");
        records[last_input][3..11].copy_from_slice(&0u64.to_le_bytes());
        let result = replay_core(&scenario, records);
        assert!(
            matches!(result, Err(CoreReplayError::Record { index, .. }) if index == last_input)
        );
    }
}
