//! The simple workload kinds of `guest/workload.rs`: `idle` (with an optional tick),
//! `cpu_bound` (with an optional yield) and `bursty` (see that file's module doc for their
//! semantics and streams).
//!
//! # Invariants
//! - Each model's `demand_ns_left` is what its current run still needs, ns.

use super::{Drawn, FieldStreams, GuestAction, GuestState};
use crate::scenario::model::Dist;

/// `idle`, optionally with a tick.
#[derive(Debug, Clone)]
pub(crate) struct IdleModel {
    tick: Option<Drawn>,
    tick_work: Drawn,
    /// The planned instant of the tick being served or awaited.
    tick_at_ns: u64,
    pub(super) demand_ns_left: u64,
}

impl IdleModel {
    pub(super) fn new(tick: Option<Dist>, tick_work: Dist, streams: &FieldStreams<'_>) -> Self {
        Self {
            tick: tick.map(|dist| Drawn::new(dist, streams, "tick")),
            tick_work: Drawn::new(tick_work, streams, "tick_work"),
            tick_at_ns: 0,
            demand_ns_left: 0,
        }
    }

    pub(super) fn start(&mut self, now_ns: u64) -> GuestState {
        self.demand_ns_left = 0;
        let Some(tick) = self.tick.as_mut() else {
            return GuestState::Blocked { wake_at_ns: None };
        };
        self.tick_at_ns = now_ns.saturating_add(tick.draw_positive());
        GuestState::Blocked {
            wake_at_ns: Some(self.tick_at_ns),
        }
    }

    pub(super) fn on_wake(&mut self) {
        self.demand_ns_left = self.tick_work.draw();
    }

    pub(super) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        self.demand_ns_left = 0;
        let Some(tick) = self.tick.as_mut() else {
            return GuestAction::Block { wake_at_ns: None };
        };
        // The next tick follows the previous planned one (a periodic timer); ticks missed
        // while the vCPU waited for a pCPU are dropped, as Linux's hrtimer_forward() does.
        let tick_ns = tick.draw_positive();
        let next_at_ns = self.tick_at_ns.saturating_add(tick_ns);
        self.tick_at_ns = if next_at_ns > now_ns {
            next_at_ns
        } else {
            now_ns.saturating_add(tick_ns)
        };
        GuestAction::Block {
            wake_at_ns: Some(self.tick_at_ns),
        }
    }
}

/// `cpu_bound`, optionally yielding.
#[derive(Debug, Clone)]
pub(crate) struct CpuBoundModel {
    yield_every: Option<Drawn>,
    pub(super) demand_ns_left: u64,
}

impl CpuBoundModel {
    pub(super) fn new(yield_every: Option<Dist>, streams: &FieldStreams<'_>) -> Self {
        Self {
            yield_every: yield_every.map(|dist| Drawn::new(dist, streams, "yield_every")),
            demand_ns_left: 0,
        }
    }

    pub(super) fn start(&mut self) -> GuestState {
        self.demand_ns_left = self.yield_every.as_mut().map_or(0, Drawn::draw_positive);
        GuestState::Runnable
    }

    pub(super) fn run_demand_ns(&self) -> Option<u64> {
        self.yield_every.as_ref().map(|_| self.demand_ns_left)
    }

    pub(super) fn on_demand_done(&mut self) -> GuestAction {
        match self.yield_every.as_mut() {
            Some(yield_every) => {
                self.demand_ns_left = yield_every.draw_positive();
                GuestAction::Yield
            }
            // Never planned (no demand-done without yield_every); stay runnable.
            None => GuestAction::Continue,
        }
    }
}

/// `bursty`: service, think, repeat.
#[derive(Debug, Clone)]
pub(crate) struct BurstyModel {
    service: Drawn,
    think: Drawn,
    service_ns_last: u64,
    pub(super) demand_ns_left: u64,
}

impl BurstyModel {
    pub(super) fn new(service: Dist, think: Dist, streams: &FieldStreams<'_>) -> Self {
        Self {
            service: Drawn::new(service, streams, "service"),
            think: Drawn::new(think, streams, "think"),
            service_ns_last: 0,
            demand_ns_left: 0,
        }
    }

    pub(super) fn start(&mut self) -> GuestState {
        self.on_wake();
        GuestState::Runnable
    }

    pub(super) fn on_wake(&mut self) {
        self.service_ns_last = self.service.draw();
        self.demand_ns_left = self.service_ns_last;
    }

    pub(super) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        self.demand_ns_left = 0;
        let mut think_ns = self.think.draw();
        if self.service_ns_last == 0 {
            think_ns = think_ns.max(1);
        }
        GuestAction::Block {
            wake_at_ns: Some(now_ns.saturating_add(think_ns)),
        }
    }
}
