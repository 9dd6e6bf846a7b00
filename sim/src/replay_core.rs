//! Core-only replay: feeds the core inputs recorded in a trace straight into fresh
//! hypervisor cores, with no simulated machine, guests or toolstack around them, and checks
//! that the cores emit exactly the recorded core events. This is the property the
//! bare-metal harness relies on: the trace holds every input the core ever received, and
//! the core's decisions depend on nothing else.
//!
//! The replay platform answers `now` with the time of the record being replayed and ignores
//! the core's requests for future work (timers, IPIs, toolstack steps): their consequences
//! are already in the trace as later inputs.

use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{
    DomId, DriverWorkId, Gfn, Mfn, PciBdf, PcpuId, PoolId, VcpuRef, XsWorkId,
};
use hypervisor_model::platform::{Doorbell, EptEntry, IpiKind, MapAccess, Platform};
use hypervisor_model::time::STime;
use hypervisor_model::toolstack::ops::{GuestNotice, JobId, ToolstackReply};
use hypervisor_model::trace::TraceEvent;

use crate::record::{record_fields, Divergence, Recorder, RunHash, TraceError};
use crate::run::host::{self, HostError};
use crate::scenario::model::Scenario;

/// Why a core-only replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum CoreReplayError {
    /// A host's boot configuration could not be built.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A record is malformed or names a host the scenario does not have.
    #[error("record {index}: {reason}")]
    Record {
        /// Record index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Finishing the recorder failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// What a core-only replay found.
#[derive(Debug)]
pub struct CoreReplayReport {
    /// Hash of the records the cores produced (with the replayed inputs).
    pub hash: RunHash,
    /// The first record that differs from the trace, if any.
    pub divergence: Option<Divergence>,
}

struct ReplayPlatform<'a> {
    host: u16,
    now_ns: u64,
    recorder: &'a mut Recorder,
}

impl std::fmt::Debug for ReplayPlatform<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ReplayPlatform(host {} at {} ns)",
            self.host, self.now_ns
        )
    }
}

impl Platform for ReplayPlatform<'_> {
    fn now(&self) -> STime {
        STime::from_ns(i64::try_from(self.now_ns).unwrap_or(i64::MAX))
    }

    // Requests for later work: their results are the trace's later inputs.
    fn set_timer(&mut self, _pcpu: PcpuId, _deadline: STime) {}

    fn cancel_timer(&mut self, _pcpu: PcpuId) {}

    fn set_pool_timer(&mut self, _pool: PoolId, _deadline: STime) {}

    fn cancel_pool_timer(&mut self, _pool: PoolId) {}

    fn xs_socket_send(&mut self, _client: u32, _bytes: &[u8]) {}

    fn xs_socket_close(&mut self, _client: u32) {}

    fn send_ipi(&mut self, _target: PcpuId, _kind: IpiKind) {}

    fn context_switch(&mut self, _pcpu: PcpuId, _from: Option<VcpuRef>, _to: Option<VcpuRef>) {}

    fn defer_toolstack(&mut self, _job: JobId, _deadline: STime) {}

    fn xenstored_work(&mut self, _vcpu: VcpuRef, _item: XsWorkId, _work_ns: i64) {}

    fn defer_driver(&mut self, _work: DriverWorkId, _deadline: STime) {}

    fn toolstack_reply(&mut self, _job: JobId, _reply: ToolstackReply) {}

    fn guest_notify(&mut self, _dom: DomId, _notice: GuestNotice) {}

    fn trace(&mut self, event: &TraceEvent) {
        self.recorder.event(self.host, self.now_ns, event);
    }

    // No simulated hardware: what the core programs has no effect on its decisions.
    fn ept_write(&mut self, _dom: DomId, _gfn: Gfn, _entry: Option<EptEntry>) {}

    fn ept_invalidate(&mut self, _dom: DomId) {}

    fn vcpu_stall(&mut self, _vcpu: VcpuRef, _work_ns: i64) {}

    fn iommu_write(&mut self, _bdf: PciBdf, _dfn: u64, _entry: Option<(Mfn, MapAccess)>) {}

    fn ring_doorbell(&mut self, _doorbell: Doorbell) {}

    fn disk_submit(&mut self, _cmd: hypervisor_model::platform::DiskCommand) {}

    fn net_transmit(&mut self, _frame: hypervisor_model::platform::NetFrame) {}

    fn backend_work(
        &mut self,
        _vcpu: VcpuRef,
        _item: hypervisor_model::ids::BackWorkId,
        _work_ns: i64,
    ) {
    }
}

/// One replayed step: a core input to feed, or a simulator mark to copy (a serve
/// session's start and end; the core never sees them).
enum Step {
    Input(Box<CoreInput>),
    Mark(Vec<u8>),
}

/// Boots one core per host of `scenario` and feeds it the inputs among `records`,
/// comparing every record the cores produce with `records`.
pub fn replay_core(
    scenario: &Scenario,
    records: Vec<Vec<u8>>,
) -> Result<CoreReplayReport, CoreReplayError> {
    let steps: Vec<(usize, u16, u64, Step)> = records
        .iter()
        .enumerate()
        .filter_map(|(index, record)| decode_step(index, record).transpose())
        .collect::<Result<_, _>>()?;
    let mut recorder = Recorder::checking(records);
    let mut cores = Vec::new();
    for (index, spec) in scenario.hosts.iter().enumerate() {
        let config = host::boot_config(spec, &scenario.costs)?;
        let host = u16::try_from(index).unwrap_or(u16::MAX);
        let mut platform = ReplayPlatform {
            host,
            now_ns: 0,
            recorder: &mut recorder,
        };
        cores.push(Hypervisor::boot(config, &mut platform));
    }
    let mut last_time_ns = 0u64;
    for (index, host, time_ns, step) in steps {
        // A trace's inputs are in time order; a corrupt one must not drive the core back.
        if time_ns < last_time_ns {
            let reason = format!("time goes backwards ({time_ns} ns after {last_time_ns} ns)");
            return Err(CoreReplayError::Record { index, reason });
        }
        last_time_ns = time_ns;
        let core = cores
            .get_mut(usize::from(host))
            .ok_or_else(|| CoreReplayError::Record {
                index,
                reason: format!("host {host} is not in the scenario"),
            })?;
        let input = match step {
            Step::Input(input) => input,
            Step::Mark(payload) => {
                recorder.mark(host, time_ns, &payload);
                continue;
            }
        };
        recorder.input(host, time_ns, &input);
        let mut platform = ReplayPlatform {
            host,
            now_ns: time_ns,
            recorder: &mut recorder,
        };
        // A refused input changes nothing; the recording refused it the same way.
        let _refused = core.handle(&input, &mut platform);
        if recorder.diverged() {
            break;
        }
    }
    let (hash, divergence) = recorder.finish()?;
    Ok(CoreReplayReport { hash, divergence })
}

fn decode_step(
    index: usize,
    record: &[u8],
) -> Result<Option<(usize, u16, u64, Step)>, CoreReplayError> {
    let bad = |reason: String| CoreReplayError::Record { index, reason };
    let (kind, host, time_ns, payload) =
        record_fields(record).ok_or_else(|| bad("too short".to_string()))?;
    let step = match kind {
        "input" => {
            Step::Input(Box::new(CoreInput::decode(payload).map_err(|e| {
                bad(format!("byte {}: expected {}", e.offset, e.what))
            })?))
        }
        "mark" => Step::Mark(payload.to_vec()),
        _ => return Ok(None),
    };
    Ok(Some((index, host, time_ns, step)))
}
