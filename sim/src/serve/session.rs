//! A serve session over the World, with no sockets: requests in, xenstored's output out,
//! every step recorded, and the replay of a recorded session (spec `xenstore-io.md` §1.7).
//!
//! The session records two marks around its requests: `serve` at `--at` (host, the
//! instant, frozen or running) and `serve-end` when it stops. A replay reads them back, boots
//! the same scenario, and hands the core the recorded socket inputs at their recorded
//! times; since what the timeline processed depends only on the clock (see
//! `run::external`), the replay produces the same records and hash.
//!
//! # Invariants
//! - Only `XsSocketData` and `XsSocketClosed` enter from outside; each is recorded before
//!   the core sees it, in arrival order.
//! - A request (data) advances virtual time by `io.xenstored_request_ns`; a hang-up is free.

use hypervisor_model::event::CoreInput;

use crate::record::{record_fields, Recorder};
use crate::run::platform::XsOut;
use crate::run::{self, RunError, RunOptions, RunOutcome, Timeline, World};
use crate::scenario::model::Scenario;

/// Cost-table key of xenstored's per-request cost (`specs/cost-model.md`).
pub const XENSTORED_REQUEST_COST_KEY: &str = "io.xenstored_request_ns";
/// Its default (E: a dom0 user-space daemon's wake-up, parse, lookup and reply).
pub const XENSTORED_REQUEST_NS_DEFAULT: u64 = 20_000;

const MARK_START: &[u8] = b"serve\0";
const MARK_END: &[u8] = b"serve-end\0";
/// Version of the start mark's layout.
const MARK_VERSION: u8 = 1;

/// How a session is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Index of the host whose XenStore is served.
    pub host: u16,
    /// Where the timeline stands when the socket opens.
    pub at_ns: u64,
    /// `--run`: the timeline continues after `at_ns`.
    pub run: bool,
}

/// Why a recorded session cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum SessionReplayError {
    /// The trace's serve marks are malformed or missing.
    #[error("record {index}: {reason}")]
    Record {
        /// Record index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The re-run failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A running serve session.
#[derive(Debug)]
pub struct ServeSession<'s> {
    world: World<'s>,
    host: u16,
    timeline: Timeline,
    request_cost_ns: u64,
    request_count: u64,
}

/// xenstored's per-request cost on `host`: the host's `[costs]`, then the scenario's.
pub fn request_cost_ns(scenario: &Scenario, host: u16) -> u64 {
    let spec = scenario.hosts.get(usize::from(host));
    let host_costs = spec.map(|h| &h.costs);
    match host_costs.filter(|c| c.contains_key(XENSTORED_REQUEST_COST_KEY)) {
        Some(costs) => run::host::cost_ns(costs, XENSTORED_REQUEST_COST_KEY, 0),
        None => run::host::cost_ns(
            &scenario.costs,
            XENSTORED_REQUEST_COST_KEY,
            XENSTORED_REQUEST_NS_DEFAULT,
        ),
    }
}

impl<'s> ServeSession<'s> {
    /// Boots `scenario`, runs it to `opts.at_ns` and records the start mark.
    pub fn start(
        scenario: &'s Scenario,
        opts: SessionOptions,
        recorder: Recorder,
    ) -> Result<ServeSession<'s>, RunError> {
        assert!(usize::from(opts.host) < scenario.hosts.len());
        let run_opts = RunOptions::default();
        let mut world = World::boot(scenario, &run_opts, recorder)?;
        let (_events, _failure) = world.advance(opts.at_ns, false)?;
        world.advance_clock(opts.at_ns, Timeline::Frozen)?;
        let timeline = if opts.run {
            Timeline::Running {
                until_ns: scenario.sim.duration_ns,
            }
        } else {
            Timeline::Frozen
        };
        let mut mark = MARK_START.to_vec();
        mark.push(MARK_VERSION);
        mark.extend_from_slice(&opts.at_ns.to_le_bytes());
        mark.push(u8::from(opts.run));
        world.mark(opts.host, &mark);
        Ok(ServeSession {
            world,
            host: opts.host,
            timeline,
            request_cost_ns: request_cost_ns(scenario, opts.host),
            request_count: 0,
        })
    }

    /// One whole request from socket client `client`. Returns xenstored's output.
    pub fn request(&mut self, client: u32, bytes: &[u8]) -> Result<Vec<XsOut>, RunError> {
        let input = CoreInput::XsSocketData {
            client,
            bytes: bytes.to_vec(),
        };
        self.request_count += 1;
        let cost_ns = self.request_cost_ns;
        self.world
            .external_input(self.host, &input, cost_ns, self.timeline)
    }

    /// Socket client `client` hung up.
    pub fn hangup(&mut self, client: u32) -> Result<Vec<XsOut>, RunError> {
        let input = CoreInput::XsSocketClosed { client };
        self.world
            .external_input(self.host, &input, 0, self.timeline)
    }

    /// With `--run`, lets the timeline catch up to `time_ns`; frozen, does nothing.
    pub fn catch_up(&mut self, time_ns: u64) -> Result<(), RunError> {
        match self.timeline {
            Timeline::Frozen => Ok(()),
            Timeline::Running { .. } => self.world.advance_clock(time_ns, self.timeline),
        }
    }

    /// Current virtual time.
    pub fn now_ns(&self) -> u64 {
        self.world.now_ns()
    }

    /// Requests handled so far.
    pub fn request_count(&self) -> u64 {
        self.request_count
    }

    /// Ends the session: the end mark, then the run's hash and trace.
    pub fn finish(mut self) -> Result<RunOutcome, RunError> {
        self.world.mark(self.host, MARK_END);
        self.world.end()
    }
}

/// What a trace's serve marks and socket inputs say.
#[derive(Debug)]
struct Recorded {
    opts: SessionOptions,
    inputs: Vec<(u64, CoreInput)>,
    end_ns: u64,
}

/// True if `records` were written by a serve session (they hold a start mark).
pub fn is_session(records: &[Vec<u8>]) -> bool {
    records.iter().any(|r| {
        record_fields(r)
            .is_some_and(|(kind, _, _, payload)| kind == "mark" && payload.starts_with(MARK_START))
    })
}

fn parse_start(
    index: usize,
    host: u16,
    payload: &[u8],
) -> Result<SessionOptions, SessionReplayError> {
    let bad = |reason: &str| SessionReplayError::Record {
        index,
        reason: reason.to_string(),
    };
    let rest = &payload[MARK_START.len()..];
    let (&version, rest) = rest.split_first().ok_or_else(|| bad("short serve mark"))?;
    if version != MARK_VERSION {
        return Err(bad("serve mark of another version"));
    }
    let at: [u8; 8] = rest
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("short serve mark"))?;
    let run = match rest.get(8) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(bad("bad serve mark flag")),
    };
    Ok(SessionOptions {
        host,
        at_ns: u64::from_le_bytes(at),
        run,
    })
}

fn scan(records: &[Vec<u8>]) -> Result<Recorded, SessionReplayError> {
    let mut opts = None;
    let mut inputs = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let bad = |reason: &str| SessionReplayError::Record {
            index,
            reason: reason.to_string(),
        };
        let (kind, host, time_ns, payload) = record_fields(record).ok_or_else(|| bad("short"))?;
        match kind {
            "mark" if payload.starts_with(MARK_START) => {
                opts = Some(parse_start(index, host, payload)?);
            }
            "mark" if payload == MARK_END => {
                let opts = opts.ok_or_else(|| bad("serve-end before serve"))?;
                let end_ns = time_ns;
                return Ok(Recorded {
                    opts,
                    inputs,
                    end_ns,
                });
            }
            "input" if opts.is_some() => {
                let input = CoreInput::decode(payload).map_err(|_| bad("undecodable input"))?;
                if matches!(
                    input,
                    CoreInput::XsSocketData { .. } | CoreInput::XsSocketClosed { .. }
                ) {
                    inputs.push((time_ns, input));
                }
            }
            _ => {}
        }
    }
    Err(SessionReplayError::Record {
        index: records.len(),
        reason: "the trace has no serve-end mark".to_string(),
    })
}

/// Re-runs a recorded serve session and compares every record with `records`.
pub fn replay(
    scenario: &Scenario,
    records: Vec<Vec<u8>>,
) -> Result<RunOutcome, SessionReplayError> {
    let recorded = scan(&records)?;
    if usize::from(recorded.opts.host) >= scenario.hosts.len() {
        return Err(SessionReplayError::Record {
            index: 0,
            reason: format!("host {} is not in the scenario", recorded.opts.host),
        });
    }
    let mut session = ServeSession::start(scenario, recorded.opts, Recorder::checking(records))?;
    let timeline = session.timeline;
    for (time_ns, input) in recorded.inputs {
        session.world.advance_clock(time_ns, timeline)?;
        let _out = match input {
            CoreInput::XsSocketData { client, bytes } => session.request(client, &bytes)?,
            CoreInput::XsSocketClosed { client } => session.hangup(client)?,
            _ => Vec::new(),
        };
    }
    session.world.advance_clock(recorded.end_ns, timeline)?;
    Ok(session.finish()?)
}
