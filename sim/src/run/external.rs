//! External inputs at the current virtual time: the seam `xensim serve` drives the World
//! through (spec `xenstore-io.md` §1.7).
//!
//! A serve session first runs the scenario to `--at`, then alternates between two moves:
//! a client's request is handed to the core at the current virtual time (recorded like
//! every core input) and virtual time then advances by xenstored's modelled cost; and,
//! with `--run`, the timeline catches up to a later instant. Both moves go through
//! [`World::advance_clock`], so what the timeline processed is a function of the clock
//! alone, which is what makes a session replayable from its recorded input times.
//!
//! # Invariants
//! - With [`Timeline::Running`], after every call here every queued event before
//!   `min(now, until_ns)` has been processed; with [`Timeline::Frozen`], none is processed.
//! - The clock never moves backwards.

use hypervisor_model::event::CoreInput;

use super::platform::XsOut;
use super::{RunError, RunOutcome, World};

/// Whether the scenario's own timeline moves while a serve session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline {
    /// Nothing but client requests moves time (the default of `xensim serve`).
    Frozen,
    /// The timeline runs with the clock, up to `until_ns` (the scenario's duration);
    /// past it, only requests move time.
    Running {
        /// The instant the timeline stops.
        until_ns: u64,
    },
}

impl World<'_> {
    /// Current virtual time, ns since boot.
    pub fn now_ns(&self) -> u64 {
        self.queue.now_ns()
    }

    /// Moves virtual time to `time_ns` (never backwards: an earlier time is a no-op). A
    /// running timeline first processes every event before it (bounded by `until_ns`); a
    /// frozen one processes nothing.
    pub fn advance_clock(&mut self, time_ns: u64, timeline: Timeline) -> Result<(), RunError> {
        if time_ns <= self.queue.now_ns() {
            return Ok(());
        }
        if let Timeline::Running { until_ns } = timeline {
            let (_events, _failure) = self.advance(time_ns.min(until_ns), false)?;
        }
        self.queue.set_now(time_ns);
        Ok(())
    }

    /// Hands an external input (a socket client's request or hang-up) to `host`'s core at
    /// the current virtual time, records it, then advances virtual time by `cost_ns`.
    /// Returns what xenstored wrote to socket clients meanwhile, in order.
    pub fn external_input(
        &mut self,
        host: u16,
        input: &CoreInput,
        cost_ns: u64,
        timeline: Timeline,
    ) -> Result<Vec<XsOut>, RunError> {
        assert!(
            matches!(
                input,
                CoreInput::XsSocketData { .. } | CoreInput::XsSocketClosed { .. }
            ),
            "only socket traffic comes from outside the simulation"
        );
        self.deliver(host, input);
        let out = std::mem::take(&mut self.hosts[usize::from(host)].sim.xs_out);
        let end_ns = self.queue.now_ns().saturating_add(cost_ns);
        self.advance_clock(end_ns, timeline)?;
        Ok(out)
    }

    /// Records a simulator mark (see `record::Recorder::mark`) at the current time.
    pub fn mark(&mut self, host: u16, payload: &[u8]) {
        let now_ns = self.queue.now_ns();
        self.sinks.recorder.mark(host, now_ns, payload);
    }

    /// Number of hosts.
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Ends the run at the current virtual time: hash, trace file, metrics.
    pub fn end(self) -> Result<RunOutcome, RunError> {
        let end_ns = self.queue.now_ns();
        self.finish(end_ns, 0, None)
    }
}
