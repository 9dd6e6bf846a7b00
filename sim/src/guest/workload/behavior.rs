//! [`Behavior`]: the model of one workload kind (`guest/workload.rs` drives it through
//! `GuestVcpu`), and the routing of I/O to the model that owns it: a `mixed` workload's
//! entries are models of their own (`guest/mixed.rs`), so an `io` entry's requests,
//! completions and console lines go through the mixed model to that entry.
//!
//! # Invariants
//! - A `mixed` entry is never `mixed` itself, so the nesting is at most one level deep.

use super::simple::{BurstyModel, CpuBoundModel, IdleModel};
use super::{FieldStreams, GuestAction, GuestState};
use crate::guest::io::IoModel;
use crate::guest::io_log::IoLog;
use crate::guest::mixed::MixedModel;
use crate::guest::net::NetModel;
use crate::guest::periodic::{PeriodicModel, PeriodicParams};
use crate::scenario::model::WorkloadSpec;

/// A workload kind's model. Each follows the protocol of the module doc, without the
/// spurious-wake handling (done once in `GuestVcpu`).
#[derive(Debug, Clone)]
pub(crate) enum Behavior {
    Idle(IdleModel),
    CpuBound(CpuBoundModel),
    Periodic(PeriodicModel),
    Bursty(BurstyModel),
    Mixed(Box<MixedModel>),
    Io(Box<IoModel>),
    NetIo(Box<NetModel>),
}

impl Behavior {
    /// Builds the model of `spec` with its streams; `start` must follow.
    pub(crate) fn new(spec: &WorkloadSpec, streams: FieldStreams<'_>) -> Self {
        match spec {
            WorkloadSpec::Idle { tick, tick_work } => {
                Behavior::Idle(IdleModel::new(*tick, *tick_work, &streams))
            }
            WorkloadSpec::CpuBound { yield_every } => {
                Behavior::CpuBound(CpuBoundModel::new(*yield_every, &streams))
            }
            WorkloadSpec::Periodic {
                period_ns,
                wcet,
                deadline_ns,
                phase,
                jitter,
            } => {
                let params = PeriodicParams {
                    period_ns: *period_ns,
                    wcet: *wcet,
                    deadline_ns: *deadline_ns,
                    phase: *phase,
                    jitter: *jitter,
                };
                Behavior::Periodic(PeriodicModel::new(params, &streams))
            }
            WorkloadSpec::Bursty { service, think } => {
                Behavior::Bursty(BurstyModel::new(*service, *think, &streams))
            }
            WorkloadSpec::Mixed { mix } => Behavior::Mixed(Box::new(MixedModel::new(mix, streams))),
            WorkloadSpec::Io {
                service,
                think,
                disk,
            } => Behavior::Io(Box::new(IoModel::new(*service, *think, disk, &streams))),
            WorkloadSpec::NetIo {
                service,
                think,
                net,
            } => {
                let index = streams.vcpu_index();
                let model = NetModel::new(*service, *think, net, &streams, index);
                Behavior::NetIo(Box::new(model))
            }
            // The streams themselves belong to `GuestVcpu` (`guest/senders.rs`).
            WorkloadSpec::NetStream { base, .. } | WorkloadSpec::DiskStream { base, .. } => {
                Behavior::new(base, streams)
            }
        }
    }

    /// (Re)starts the workload at `now_ns`.
    pub(crate) fn start(&mut self, now_ns: u64) -> GuestState {
        match self {
            Behavior::Idle(model) => model.start(now_ns),
            Behavior::CpuBound(model) => model.start(),
            Behavior::Periodic(model) => model.start(now_ns),
            Behavior::Bursty(model) => model.start(),
            Behavior::Mixed(model) => model.start(now_ns),
            Behavior::Io(model) => model.start(),
            Behavior::NetIo(model) => model.start(),
        }
    }

    /// The demand of the current run (inlined: asked at every run start).
    #[inline]
    pub(crate) fn run_demand_ns(&self, now_ns: u64) -> Option<u64> {
        match self {
            Behavior::Idle(model) => Some(model.demand_ns_left),
            Behavior::CpuBound(model) => model.run_demand_ns(),
            Behavior::Periodic(model) => model.run_demand_ns(),
            Behavior::Bursty(model) => Some(model.demand_ns_left),
            Behavior::Mixed(model) => model.run_demand_ns(now_ns),
            Behavior::Io(model) => Some(model.demand_ns_left()),
            Behavior::NetIo(model) => Some(model.demand_ns_left()),
        }
    }

    pub(crate) fn account(&mut self, ran_ns: u64) {
        match self {
            Behavior::Idle(model) => {
                model.demand_ns_left = model.demand_ns_left.saturating_sub(ran_ns)
            }
            Behavior::CpuBound(model) => {
                model.demand_ns_left = model.demand_ns_left.saturating_sub(ran_ns);
            }
            Behavior::Periodic(model) => model.account(ran_ns),
            Behavior::Bursty(model) => {
                model.demand_ns_left = model.demand_ns_left.saturating_sub(ran_ns)
            }
            Behavior::Mixed(model) => model.account(ran_ns),
            Behavior::Io(model) => model.account(ran_ns),
            Behavior::NetIo(model) => model.account(ran_ns),
        }
    }

    pub(crate) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        match self {
            Behavior::Idle(model) => model.on_demand_done(now_ns),
            Behavior::CpuBound(model) => model.on_demand_done(),
            Behavior::Periodic(model) => model.on_demand_done(now_ns),
            Behavior::Bursty(model) => model.on_demand_done(now_ns),
            Behavior::Mixed(model) => model.on_demand_done(now_ns),
            Behavior::Io(model) => model.on_demand_done(now_ns),
            Behavior::NetIo(model) => model.on_demand_done(now_ns),
        }
    }

    /// A wake at or after the requested timer.
    pub(crate) fn on_wake(&mut self, now_ns: u64) {
        match self {
            Behavior::Idle(model) => model.on_wake(),
            Behavior::CpuBound(_) => {}
            Behavior::Periodic(model) => model.on_wake(now_ns),
            Behavior::Bursty(model) => model.on_wake(),
            Behavior::Mixed(model) => model.on_wake(now_ns),
            Behavior::Io(model) => model.on_wake(),
            Behavior::NetIo(model) => model.on_wake(),
        }
    }
}

impl Behavior {
    /// The models this one is made of: a `mixed` workload's entries, or itself. An
    /// iterator, not a vector: callers walk it on every run start and demand done.
    pub(crate) fn leaves_mut(&mut self) -> impl Iterator<Item = &mut Behavior> {
        let (entries, single) = match self {
            Behavior::Mixed(model) => (Some(model.behaviors_mut()), None),
            other => (None, Some(other)),
        };
        entries.into_iter().flatten().chain(single)
    }

    /// The models this one is made of: a `mixed` workload's entries, or itself.
    pub(crate) fn leaves(&self) -> impl Iterator<Item = &Behavior> {
        let (entries, single) = match self {
            Behavior::Mixed(model) => (Some(model.behaviors()), None),
            other => (None, Some(other)),
        };
        entries.into_iter().flatten().chain(single)
    }

    /// The model that runs now: a `mixed` workload's current entry, or itself.
    pub(crate) fn current_mut(&mut self) -> &mut Behavior {
        match self {
            Behavior::Mixed(model) => model.current_mut(),
            other => other,
        }
    }

    /// Takes the completed I/Os of every `io` and `net` model in it into `out` (one log
    /// per model with a record).
    pub(crate) fn take_io_logs(&mut self, out: &mut Vec<IoLog>) {
        for leaf in self.leaves_mut() {
            let log = match leaf {
                Behavior::Io(model) => model.queue.take_log(),
                Behavior::NetIo(model) => model.take_log(),
                _ => continue,
            };
            if !log.is_empty() {
                out.push(log);
            }
        }
    }

    /// The vCPU runs again at `now_ns`: its models see what completed meanwhile.
    pub(crate) fn on_run_start(&mut self, now_ns: u64) {
        if let Behavior::Periodic(model) = self {
            model.on_run_start(now_ns);
        }
        for leaf in self.leaves_mut() {
            match leaf {
                Behavior::Io(model) => model.queue.on_run_start(now_ns),
                Behavior::NetIo(model) => model.on_run_start(now_ns),
                _ => {}
            }
        }
    }

    /// The current `mixed` entry and its span end; `None` for other kinds.
    pub(crate) fn mix_window(&self) -> Option<(usize, u64)> {
        match self {
            Behavior::Mixed(model) => Some(model.window()),
            _ => None,
        }
    }
}
