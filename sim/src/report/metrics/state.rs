//! The measurement window and the per-vCPU runstate machine of the metrics collector.
//!
//! Follows `specs/metrics.md` §0 (clipping to `[t0, t1)`), §1.1 (runstate times,
//! `dispatch_count`), §1.2 (wakeup latency, runqueue wait, abandoned and censored wakes),
//! §1.9 (preemptions) and §1.10 (pCPU and NUMA migrations).
//!
//! # Invariants
//! - A transition starts from the state held (`from == state`), so intervals tile the
//!   vCPU's life and the four runstate times sum to its in-window life.
//! - A pending wake (`woken`) and a runnable start exist only while runnable, and a
//!   pending wake's time is the runnable start (a woken vCPU is runnable from its wake).
//! - A latency sample is kept when its start is in the window; its end is always before
//!   `t1` because only events before the end of the run are observed.
//!
//! Left out: yields (not distinguishable from preemptions in the trace), parking (credit2).

use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::ids::PcpuId;

use hypervisor_model::sched::rtds::ServerStats;

use super::samples::{SampleLog, SlotSamples, VcpuSlots};
use super::VcpuMetrics;

/// `[start_ns, end_ns)`; while observing, `end_ns` is `u64::MAX` (every event is before it).
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
}

impl Window {
    pub(super) fn contains(self, t_ns: u64) -> bool {
        self.start_ns <= t_ns && t_ns < self.end_ns
    }

    /// [`Self::contains`] for an instant before the window's end: an observed event's
    /// time, or an earlier one (every event comes before the end of the run). One compare
    /// where `contains` needs two, on every `Runstate` and `Schedule`.
    #[inline(always)]
    pub(super) fn has_begun_by(self, t_ns: u64) -> bool {
        debug_assert!(
            t_ns < self.end_ns,
            "an observed instant at or after the window's end"
        );
        self.start_ns <= t_ns
    }

    /// In-window part of `[from_ns, to_ns)`.
    pub(super) fn clip(self, from_ns: u64, to_ns: u64) -> u64 {
        let lo = from_ns.max(self.start_ns);
        let hi = to_ns.min(self.end_ns);
        hi.saturating_sub(lo)
    }
}

/// `*acc += value`; overflow is a bug that aborts the report with the metric's name.
#[inline(always)]
pub(super) fn add(acc: &mut u64, value: u64, metric: &str) {
    match acc.checked_add(value) {
        Some(sum) => *acc = sum,
        // Out of line: the hot path does not even load the metric's name.
        None => overflow(metric),
    }
}

#[cold]
#[inline(never)]
fn overflow(metric: &str) -> ! {
    panic!("metric overflow: {metric}")
}

/// `*acc += 1` for a count of events. Checked in debug builds only: a run observes far
/// fewer than 2^64 events, so a count cannot reach `u64::MAX` (a release build spares the
/// compare and the panic path on every count).
#[inline(always)]
pub(super) fn bump(acc: &mut u64, metric: &str) {
    debug_assert!(*acc < u64::MAX, "metric overflow: {metric}");
    *acc = acc.wrapping_add(1);
}

/// The panic of a `Runstate` whose `from` is not the state held (out of line, the states
/// passed by value: the record path stores nothing for it).
#[cold]
#[inline(never)]
fn not_from_held_state(held: Runstate, from: Runstate) -> ! {
    panic!("runstate event does not start from the held state: held {held:?}, from {from:?}")
}

/// An optional instant in one word: `u64::MAX`, after every virtual time (which is below
/// 2^63 ns), stands for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OptNs(u64);

impl OptNs {
    const NONE: OptNs = OptNs(u64::MAX);

    fn some(time_ns: u64) -> OptNs {
        debug_assert_ne!(time_ns, u64::MAX, "virtual time past 2^63 ns");
        OptNs(time_ns)
    }

    fn get(self) -> Option<u64> {
        (self != OptNs::NONE).then_some(self.0)
    }

    fn take(&mut self) -> Option<u64> {
        std::mem::replace(self, OptNs::NONE).get()
    }

    fn is_none(self) -> bool {
        self == OptNs::NONE
    }
}

/// One vCPU's life, from `VcpuCreate` (offline) to its domain's `DomainFree`.
///
/// Exactly two cache lines on a 128-byte boundary (`repr(C, align(128))`, the pair the
/// adjacent-line prefetcher fetches together) holding everything a `Runstate` or a
/// `Schedule` touches, hot fields first; what only the end of the run or a null or rtds
/// pool reads sits behind [`VcpuCold`]. The table of 512 vCPUs does not stay in L1: the
/// smaller it is, the more of it stays in L2.
#[derive(Debug)]
#[repr(C, align(128))]
pub(super) struct VcpuState {
    since_ns: u64,
    /// In-window time per `Runstate::index()`.
    time_ns: [u64; 4],
    dispatch_count: u64,
    preemption_count: u64,
    /// Where its wakeup latency and runqueue wait samples go in the host's log.
    pub(super) sample_slots: VcpuSlots,
    state: Runstate,
    /// The current runnable interval began with a wake (at `runnable_since_ns`), whose run
    /// is awaited.
    woken: bool,
    /// Start of the current runnable interval.
    runnable_since_ns: OptNs,
    /// End of life: `DomainFree` or the end of the run.
    closed_ns: OptNs,
    last_pcpu: Option<PcpuId>,
    wake_abandoned_count: u64,
    migration_pcpu_count: u64,
    migration_numa_count: u64,
    cold: Box<VcpuCold>,
}

/// The fields of a vCPU no `Runstate` or `Schedule` reads.
#[derive(Debug)]
struct VcpuCold {
    wakeup_latency_pending_count: u64,
    created_ns: u64,
    /// null: in-window time assigned to a pCPU, closed intervals only.
    null_assigned_ns: u64,
    /// null: start of the open assignment.
    null_assigned_since_ns: Option<u64>,
    /// null: ever assigned (so a null vCPU reports 0 rather than `None`).
    null_seen: bool,
    /// rtds server accounting, given by the run loop at the end.
    server: Option<ServerStats>,
    /// rtds `(budget_ns, period_ns)` at the end of the run.
    rtds_reservation_ns: Option<(u64, u64)>,
}

// The layout the struct's documentation promises.
const _: () = assert!(std::mem::size_of::<VcpuState>() == 128);

impl VcpuState {
    /// A vCPU created at `time_ns` whose samples go to `sample_slots`; Xen creates every
    /// vCPU offline.
    pub(super) fn new(time_ns: u64, sample_slots: VcpuSlots) -> VcpuState {
        VcpuState {
            state: Runstate::Offline,
            since_ns: time_ns,
            closed_ns: OptNs::NONE,
            time_ns: [0; 4],
            dispatch_count: 0,
            preemption_count: 0,
            migration_pcpu_count: 0,
            migration_numa_count: 0,
            wake_abandoned_count: 0,
            last_pcpu: None,
            woken: false,
            runnable_since_ns: OptNs::NONE,
            sample_slots,
            cold: Box::new(VcpuCold {
                wakeup_latency_pending_count: 0,
                created_ns: time_ns,
                null_assigned_ns: 0,
                null_assigned_since_ns: None,
                null_seen: false,
                server: None,
                rtds_reservation_ns: None,
            }),
        }
    }

    /// The rtds server accounting, given by the run loop at the end.
    pub(super) fn set_server(&mut self, stats: ServerStats) {
        self.cold.server = Some(stats);
    }

    /// The rtds `(budget_ns, period_ns)` at the end of the run.
    pub(super) fn set_rtds_reservation(&mut self, budget_ns: u64, period_ns: u64) {
        self.cold.rtds_reservation_ns = Some((budget_ns, period_ns));
    }

    /// One `Runstate { from, to }` event at `time_ns`; latency samples go to `samples`.
    /// Inlined into the sinks' `Runstate` arm: out of line, its call and register saves
    /// were about 20 of its 74 instructions.
    #[inline(always)]
    pub(super) fn transition(
        &mut self,
        window: Window,
        time_ns: u64,
        (from, to): (Runstate, Runstate),
        samples: &mut SampleLog,
    ) {
        if self.state != from {
            not_from_held_state(self.state, from);
        }
        // A closed vCPU's domain is no longer live, so the collector's lookup never finds
        // it: checked in debug builds only, as the time order `account` relies on (the
        // host's clock, asserted on every event, never goes backwards).
        debug_assert!(
            self.closed_ns.is_none(),
            "runstate event after the vCPU's end"
        );
        self.account(window, time_ns);
        self.state = to;
        let in_window = window.has_begun_by(time_ns);
        match (from, to) {
            (Runstate::Blocked | Runstate::Offline, Runstate::Runnable) => {
                self.woken = true;
            }
            (Runstate::Runnable, Runstate::Running) => {
                self.run_after_wait(window, time_ns, samples);
            }
            (Runstate::Runnable, Runstate::Blocked | Runstate::Offline) => {
                self.abandon_wake(window);
            }
            (Runstate::Running, Runstate::Runnable) if in_window => {
                // xensim differs: a yield is indistinguishable here (see `collect`).
                bump(&mut self.preemption_count, "preemption_count");
            }
            _ => {}
        }
        if to == Runstate::Runnable && from != Runstate::Runnable {
            self.runnable_since_ns = OptNs::some(time_ns);
        }
        if to == Runstate::Running && from != Runstate::Running && in_window {
            bump(&mut self.dispatch_count, "dispatch_count");
        }
        // Kept by the arms above (the inputs are checked by the asserts on entry).
        debug_assert!(self.state == Runstate::Runnable || !self.woken);
        debug_assert!(self.state == Runstate::Runnable || self.runnable_since_ns.is_none());
        debug_assert!(!self.woken || !self.runnable_since_ns.is_none());
    }

    /// The vCPU starts a running interval on `pcpu` (a `Schedule` naming it as `next`).
    #[inline(always)]
    pub(super) fn start_on(&mut self, window: Window, time_ns: u64, pcpu: PcpuId, nodes: &[u32]) {
        let previous = self.last_pcpu.replace(pcpu);
        let Some(previous) = previous.filter(|&p| p != pcpu) else {
            return;
        };
        if !window.has_begun_by(time_ns) {
            return;
        }
        bump(&mut self.migration_pcpu_count, "migration_pcpu_count");
        if nodes[previous.index()] != nodes[pcpu.index()] {
            bump(&mut self.migration_numa_count, "migration_numa_count");
        }
    }

    /// Ends the vCPU's life at `time_ns` (domain freed or end of run).
    pub(super) fn close(&mut self, window: Window, time_ns: u64) {
        assert!(self.closed_ns.is_none(), "vCPU closed twice");
        assert!(time_ns >= self.since_ns, "vCPU time went backwards");
        self.account(window, time_ns);
        self.closed_ns = OptNs::some(time_ns);
        if let Some(wake_ns) = self.take_wake() {
            if window.contains(wake_ns) && time_ns < window.end_ns {
                // Freed while still waiting to run: the wake can never complete.
                bump(&mut self.wake_abandoned_count, "wake_abandoned_count");
            } else if window.contains(wake_ns) {
                bump(
                    &mut self.cold.wakeup_latency_pending_count,
                    "wakeup_latency_pending_count",
                );
            }
        }
        self.runnable_since_ns = OptNs::NONE;
    }

    /// null assigned (`assigned`) or released the vCPU's pCPU at `time_ns`.
    pub(super) fn null_assign(&mut self, window: Window, time_ns: u64, assigned: bool) {
        let cold = &mut self.cold;
        cold.null_seen = true;
        match (assigned, cold.null_assigned_since_ns) {
            (true, None) => cold.null_assigned_since_ns = Some(time_ns),
            (false, Some(since_ns)) => {
                let spent_ns = window.clip(since_ns, time_ns);
                add(&mut cold.null_assigned_ns, spent_ns, "null_assigned_ns");
                cold.null_assigned_since_ns = None;
            }
            // An assignment straight to another pCPU keeps the vCPU assigned; a release of
            // a free vCPU changes nothing.
            (true, Some(_)) | (false, None) => {}
        }
    }

    /// The metrics of a closed vCPU with index `id`; `samples` are the host's by tag.
    pub(super) fn metrics(&self, id: u32, window: Window, samples: &SlotSamples) -> VcpuMetrics {
        let closed_ns = self.closed_ns.get().expect("vCPU closed before reporting");
        let cold = &self.cold;
        let [running_ns, runnable_ns, blocked_ns, offline_ns] = self.time_ns;
        let mut exist_ns = 0;
        for spent_ns in self.time_ns {
            add(&mut exist_ns, spent_ns, "exist_ns");
        }
        assert_eq!(exist_ns, window.clip(cold.created_ns, closed_ns));
        let mut steal_ns = runnable_ns;
        add(&mut steal_ns, offline_ns, "steal_ns");
        let (wakeup_latency_ns, runq_wait_ns) = samples.vcpu_distributions(self.sample_slots);
        VcpuMetrics {
            id,
            running_ns,
            runnable_ns,
            blocked_ns,
            offline_ns,
            steal_ns,
            dispatch_count: self.dispatch_count,
            preemption_count: self.preemption_count,
            yield_count: 0,
            migration_pcpu_count: self.migration_pcpu_count,
            migration_numa_count: self.migration_numa_count,
            wake_abandoned_count: self.wake_abandoned_count,
            wakeup_latency_pending_count: cold.wakeup_latency_pending_count,
            wakeup_latency_ns,
            runq_wait_ns,
            server_period_count: cold.server.map(|s| s.period_count),
            server_underserved_count: cold.server.map(|s| s.underserved_count),
            server_shortfall_ns: cold.server.map(|s| s.shortfall_ns),
            rtds_reservation_ns: cold.rtds_reservation_ns,
            null_assigned_ns: cold.null_seen.then(|| {
                let open_ns = cold
                    .null_assigned_since_ns
                    .map_or(0, |since_ns| window.clip(since_ns, closed_ns));
                let mut total_ns = cold.null_assigned_ns;
                add(&mut total_ns, open_ns, "null_assigned_ns");
                total_ns
            }),
        }
    }

    /// Adds `[since_ns, time_ns)` to the held state's time. `time_ns` is not before
    /// `since_ns`: an event's time is not before the host's last one, which `since_ns` is
    /// at most (checked on every event by the collector, and here in debug builds).
    #[inline(always)]
    fn account(&mut self, window: Window, time_ns: u64) {
        debug_assert!(time_ns >= self.since_ns, "vCPU time went backwards");
        let spent_ns = window.clip(self.since_ns, time_ns);
        add(
            &mut self.time_ns[self.state.index()],
            spent_ns,
            "runstate time",
        );
        self.since_ns = time_ns;
    }

    /// The runnable interval ends in a run at `time_ns`: its wait is one sample, a wakeup
    /// latency too if it began with a wake (the wake's time is the interval's start).
    #[inline(always)]
    fn run_after_wait(&mut self, window: Window, time_ns: u64, samples: &mut SampleLog) {
        let woken = std::mem::replace(&mut self.woken, false);
        if let Some(since_ns) = self
            .runnable_since_ns
            .take()
            .filter(|&s| window.has_begun_by(s))
        {
            samples.push(self.sample_slots, woken, time_ns - since_ns);
        }
    }

    fn abandon_wake(&mut self, window: Window) {
        if let Some(wake_ns) = self.take_wake() {
            if window.has_begun_by(wake_ns) {
                bump(&mut self.wake_abandoned_count, "wake_abandoned_count");
            }
        }
        self.runnable_since_ns = OptNs::NONE;
    }

    /// Takes the pending wake: its time (the runnable interval's start), if there is one.
    fn take_wake(&mut self) -> Option<u64> {
        if !std::mem::replace(&mut self.woken, false) {
            return None;
        }
        let wake_ns = self.runnable_since_ns.get();
        debug_assert!(wake_ns.is_some(), "a pending wake without a runnable start");
        wake_ns
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn has_begun_by_equals_contains_before_the_end() {
        // An observing window (no end yet) and a closed one, and instants on both sides
        // of the start, up to just before the end.
        const START_NS: u64 = 500;
        const END_NS: u64 = 2_000;
        let windows = [
            Window {
                start_ns: START_NS,
                end_ns: u64::MAX,
            },
            Window {
                start_ns: START_NS,
                end_ns: END_NS,
            },
        ];
        let instants_ns = [0, START_NS - 1, START_NS, START_NS + 1, END_NS - 1];

        let begun: Vec<bool> = windows
            .iter()
            .flat_map(|w| instants_ns.map(|t| w.has_begun_by(t)))
            .collect();

        let contained: Vec<bool> = windows
            .iter()
            .flat_map(|w| instants_ns.map(|t| w.contains(t)))
            .collect();
        assert_eq!(begun, contained);
    }
}
