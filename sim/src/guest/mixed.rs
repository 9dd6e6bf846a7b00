//! The `mixed` workload (`specs/scenario.md` §6.1): pick an entry by weight, run its workload
//! for `span`, pick again.
//!
//! - The pick draws `r` uniform in `[0, Σ weight − 1]` from the stream
//!   `workload.<domain>.v<index>.mix` and takes the first entry whose cumulative weight
//!   exceeds `r` (entries in file order), so entry `k` has probability `weight_k / Σ weight`.
//! - `span` is drawn per pick from `...mix<k>.span` and is **virtual wall time** measured from
//!   the pick: the entry ends at `pick + span` whether the vCPU ran, waited or blocked
//!   meanwhile. While running, the demand reported is capped at the time left in the span;
//!   while blocked, the timer wake is capped at the span's end.
//! - At the span's end the next entry starts at once: runnable entries continue
//!   (`Continue`), blocked ones block (`Block`). A switch found by a wake leaves the vCPU
//!   runnable with 0 ns of demand when the new entry starts blocked, so the next demand-done
//!   blocks it (the guest wakes, switches task, and goes idle).
//! - Each entry keeps its streams (`...mix<k>.<field>`) and model across picks; a pick
//!   restarts the entry's workload at the pick instant (its draws continue where they were).
//! - An `io` entry runs the `io` loop (service, submit, block until the response, think)
//!   while its span lasts. A span that ends while a request is outstanding waits for it
//!   (an application does not abandon an outstanding read): the completion or answer ends
//!   the entry, and the next pick follows at once. Its I/O tags carry the entry's source
//!   (`guest/workload.rs`, `entry_source`), so completions reach the entry that asked.
//! - An entry's own `net`/`disk` streams run only during its spans (`guest/senders.rs`).
//!
//! # Invariants
//!
//! - `current_index < entries.len()` and `entries` is not empty (an empty mix is built as
//!   a blocked `idle` by the caller instead).
//! - `span_end_ns > pick instant` (spans are at least 1 ns).
//!
//! - `on_io` only while the current entry is an `io` one with a request outstanding.
//!
//! Left out: `mixed` and `periodic` entries are rejected by the loader; if present they run
//! as nested models (periodic releases counting from its first pick).

use hypervisor_model::io::vbd::IoDone;
use hypervisor_model::io::vif::NetPacket;

use crate::guest::workload::{
    entry_source, Behavior, Drawn, FieldStreams, GuestAction, GuestState,
};
use crate::rng::{RngStreams, Stream};
use crate::scenario::model::{Dist, MixEntry, WorkloadSpec};

/// One entry with its model.
#[derive(Debug, Clone)]
struct Entry {
    weight: u64,
    span: Drawn,
    behavior: Behavior,
}

/// The mixed model of one vCPU.
#[derive(Debug, Clone)]
pub(crate) struct MixedModel {
    picker: Stream,
    entries: Vec<Entry>,
    weight_total: u64,
    current_index: usize,
    span_end_ns: u64,
    /// The current entry's own state (it may be blocked while the vCPU is runnable).
    inner_state: GuestState,
    /// The current entry waits for an I/O or an answer (its span cannot end before).
    on_io: bool,
}

impl MixedModel {
    /// Builds every entry's model; an empty `mix` gets one blocked `idle` entry.
    pub(crate) fn new(mix: &[MixEntry], streams: FieldStreams<'_>) -> Self {
        let (root, prefix) = streams.parts();
        let mut entries: Vec<Entry> = mix
            .iter()
            .enumerate()
            .map(|(entry_index, entry)| build_entry(root, prefix, entry_index, entry))
            .collect();
        if entries.is_empty() {
            let idle = MixEntry {
                weight: 1,
                span: Dist::Const(u64::MAX),
                workload: WorkloadSpec::Idle {
                    tick: None,
                    tick_work: Dist::Const(0),
                },
            };
            entries.push(build_entry(root, prefix, 0, &idle));
        }
        let weight_total = entries.iter().map(|entry| entry.weight).sum();
        Self {
            picker: streams.field("mix"),
            entries,
            weight_total,
            current_index: 0,
            span_end_ns: 0,
            inner_state: GuestState::Runnable,
            on_io: false,
        }
    }

    /// The current entry and the end of its span.
    pub(crate) fn window(&self) -> (usize, u64) {
        (self.current_index, self.span_end_ns)
    }

    /// Every entry's model.
    pub(crate) fn behaviors_mut(&mut self) -> impl Iterator<Item = &mut Behavior> {
        self.entries.iter_mut().map(|entry| &mut entry.behavior)
    }

    /// Every entry's model.
    pub(crate) fn behaviors(&self) -> impl Iterator<Item = &Behavior> {
        self.entries.iter().map(|entry| &entry.behavior)
    }

    /// The current entry's model.
    pub(crate) fn current_mut(&mut self) -> &mut Behavior {
        &mut self.entries[self.current_index].behavior
    }

    /// The model of the entry whose I/O tags carry `source`.
    pub(crate) fn by_source_mut(&mut self, source: u32) -> Option<&mut Behavior> {
        let index = usize::try_from(source.checked_sub(2)? / 2).ok()?;
        let entry = self.entries.get_mut(index)?;
        (entry_source(index, false) == source).then_some(&mut entry.behavior)
    }

    /// blkfront completed `done` for an `io` entry: once its batch is complete, the
    /// entry's think timer, capped at the span's end (at or before now: the span ended
    /// during the request, and the next pick follows at once).
    pub(crate) fn io_done(&mut self, done: &IoDone, now_ns: u64, running: bool) -> Option<u64> {
        let source = crate::guest::workload::tag_source(done.tag);
        let Some(Behavior::Io(model)) = self.by_source_mut(source) else {
            return None;
        };
        let think_at_ns = model.io_done(done, now_ns, running)?;
        self.request_done(source, think_at_ns)
    }

    /// netfront received `packet` for a vif `io` entry: once it completes the answer, the
    /// entry's think timer, capped as for [`MixedModel::io_done`].
    pub(crate) fn net_received(
        &mut self,
        packet: &NetPacket,
        now_ns: u64,
        running: bool,
    ) -> Option<u64> {
        let source = crate::guest::workload::tag_source(packet.tag);
        let Some(Behavior::NetIo(model)) = self.by_source_mut(source) else {
            return None;
        };
        let think_at_ns = model.received(packet, now_ns, running)?;
        self.request_done(source, think_at_ns)
    }

    /// The request of the entry of `source` completed; its think timer is `think_at_ns`.
    fn request_done(&mut self, source: u32, think_at_ns: u64) -> Option<u64> {
        let current = entry_source(self.current_index, false) == source;
        assert!(current, "a request of an entry that is not the current one");
        assert!(self.on_io, "a completion while the entry waits for none");
        self.on_io = false;
        self.inner_state = GuestState::Blocked {
            wake_at_ns: Some(think_at_ns),
        };
        Some(think_at_ns.min(self.span_end_ns))
    }

    /// Picks the first entry at `now_ns`.
    pub(crate) fn start(&mut self, now_ns: u64) -> GuestState {
        self.switch(now_ns).state_after()
    }

    pub(crate) fn run_demand_ns(&self, now_ns: u64) -> Option<u64> {
        if self.inner_state != GuestState::Runnable {
            return Some(0);
        }
        let inner = self.entries[self.current_index]
            .behavior
            .run_demand_ns(now_ns);
        if self.on_io {
            // A retransmission of an outstanding request: the span waits for it.
            return inner;
        }
        let span_left_ns = self.span_end_ns.saturating_sub(now_ns);
        Some(inner.map_or(span_left_ns, |demand_ns| demand_ns.min(span_left_ns)))
    }

    pub(crate) fn account(&mut self, ran_ns: u64) {
        if self.inner_state == GuestState::Runnable {
            self.entries[self.current_index].behavior.account(ran_ns);
        }
    }

    pub(crate) fn on_demand_done(&mut self, now_ns: u64) -> GuestAction {
        if now_ns >= self.span_end_ns && !self.on_io {
            return self.switch(now_ns);
        }
        if let GuestState::Blocked { wake_at_ns } = self.inner_state {
            return self.capped_block(wake_at_ns);
        }
        let action = self.entries[self.current_index]
            .behavior
            .on_demand_done(now_ns);
        self.inner_state = action.state_after();
        match action {
            GuestAction::Block { wake_at_ns } => self.capped_block(wake_at_ns),
            GuestAction::Yield | GuestAction::Continue => action,
            GuestAction::BlockOnIo => {
                // No span-end cap: the request completes first.
                self.on_io = true;
                action
            }
        }
    }

    /// A wake at `now_ns`, at or after `min(inner wake, span end)`.
    pub(crate) fn on_wake(&mut self, now_ns: u64) {
        if self.on_io {
            // The request's retransmission timer (`io` over a vif).
            self.entries[self.current_index].behavior.on_wake(now_ns);
            self.inner_state = GuestState::Runnable;
            return;
        }
        if now_ns >= self.span_end_ns {
            // The new entry may start blocked: then the vCPU runs 0 ns and blocks.
            let _ = self.switch(now_ns);
            return;
        }
        assert!(
            matches!(self.inner_state, GuestState::Blocked { .. }),
            "mixed wake of a runnable entry before its span ended"
        );
        self.entries[self.current_index].behavior.on_wake(now_ns);
        self.inner_state = GuestState::Runnable;
    }

    /// Picks an entry, draws its span and starts it at `now_ns`.
    fn switch(&mut self, now_ns: u64) -> GuestAction {
        assert!(self.weight_total >= 1, "mixed workload without weight");
        let draw = self.picker.uniform_u64_inclusive(0, self.weight_total - 1);
        self.current_index = pick_index(&self.entries, draw);
        let entry = &mut self.entries[self.current_index];
        let span_ns = entry.span.draw_positive();
        self.span_end_ns = now_ns.saturating_add(span_ns);
        assert!(self.span_end_ns > now_ns, "span ends at its pick");
        self.inner_state = entry.behavior.start(now_ns);
        match self.inner_state {
            GuestState::Runnable => GuestAction::Continue,
            GuestState::Blocked { wake_at_ns } => self.capped_block(wake_at_ns),
        }
    }

    /// Blocks until the inner wake or the span's end, whichever is first.
    fn capped_block(&self, wake_at_ns: Option<u64>) -> GuestAction {
        let capped = wake_at_ns.map_or(self.span_end_ns, |at_ns| at_ns.min(self.span_end_ns));
        GuestAction::Block {
            wake_at_ns: Some(capped),
        }
    }
}

/// Builds entry `entry_index` with streams under `<prefix>.mix<k>`.
fn build_entry(root: &RngStreams, prefix: &str, entry_index: usize, entry: &MixEntry) -> Entry {
    let entry_prefix = format!("{prefix}.mix{entry_index}");
    let source = entry_source(entry_index, false);
    let streams = FieldStreams::new(root, &entry_prefix).with_source(source);
    Entry {
        // xensim differs: a zero weight (rejected by the loader) counts as 1.
        weight: u64::from(entry.weight.max(1)),
        span: Drawn::new(entry.span, &streams, "span"),
        behavior: Behavior::new(&entry.workload, streams),
    }
}

/// The entry whose cumulative weight first exceeds `draw`.
fn pick_index(entries: &[Entry], draw: u64) -> usize {
    let mut cumulative = 0u64;
    for (entry_index, entry) in entries.iter().enumerate() {
        cumulative = cumulative.saturating_add(entry.weight);
        if draw < cumulative {
            return entry_index;
        }
    }
    entries.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_with_weights(weights: &[u64]) -> Vec<Entry> {
        let streams = RngStreams::new(1);
        let field_streams = FieldStreams::new(&streams, "t");
        weights
            .iter()
            .map(|&weight| Entry {
                weight,
                span: Drawn::new(Dist::Const(1), &field_streams, "span"),
                behavior: Behavior::new(
                    &WorkloadSpec::CpuBound { yield_every: None },
                    field_streams,
                ),
            })
            .collect()
    }

    #[test]
    fn pick_index_draw_below_first_weight_picks_first() {
        let entries = entries_with_weights(&[1, 3]);

        let picked = pick_index(&entries, 0);

        assert_eq!(picked, 0);
    }

    #[test]
    fn pick_index_draws_past_first_weight_pick_second() {
        // Weights 1 and 3: draws 1, 2, 3 (three of four) pick entry 1.
        let entries = entries_with_weights(&[1, 3]);

        let low = pick_index(&entries, 1);
        let high = pick_index(&entries, 3);

        assert_eq!(low, 1);
        assert_eq!(high, 1);
    }
}
