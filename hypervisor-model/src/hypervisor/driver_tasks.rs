//! The table of pending driver reactions (`xenbus_watch.rs` schedules and runs them),
//! with a per-frontend-domain count kept beside it so that "is anything pending for this
//! domain" (asked for every waiting create and destroy job after every input) is a map
//! lookup instead of a scan of every pending reaction.
//!
//! # Invariants
//! - `per_dom[d]` is the number of reactions in `by_work` whose `front_dom` is `d`, and
//!   no entry is zero (the checker recounts).
//! - At most [`DRIVER_TASKS_MAX`] reactions are pending.

use alloc::collections::BTreeMap;

use super::xenbus_watch::DriverTask;
use crate::ids::{DomId, DriverWorkId};

/// Most driver reactions pending at once on a host (xensim's bound: a few per device end
/// in flight; reaching it means the drivers livelock).
pub const DRIVER_TASKS_MAX: usize = 1 << 16;

/// Pending driver reactions by id, counted per frontend domain.
#[derive(Clone, Debug, Default)]
pub(crate) struct DriverTasks {
    by_work: BTreeMap<DriverWorkId, DriverTask>,
    per_dom: BTreeMap<DomId, u32>,
    /// Reactions taken out since boot.
    removed: u64,
}

impl DriverTasks {
    /// Adds reaction `work`; panics past [`DRIVER_TASKS_MAX`] or on a reused id.
    pub(crate) fn insert(&mut self, work: DriverWorkId, task: DriverTask) {
        assert!(
            self.by_work.len() < DRIVER_TASKS_MAX,
            "driver reactions pile up"
        );
        let dom = task.front_dom;
        let old = self.by_work.insert(work, task);
        assert!(old.is_none(), "{work:?} reused");
        *self.per_dom.entry(dom).or_insert(0) += 1;
    }

    /// Takes reaction `work` out of the table.
    pub(crate) fn remove(&mut self, work: DriverWorkId) -> Option<DriverTask> {
        let task = self.by_work.remove(&work)?;
        self.removed = self.removed.wrapping_add(1);
        if let Some(n) = self.per_dom.get_mut(&task.front_dom) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_dom.remove(&task.front_dom);
            }
        }
        Some(task)
    }

    /// Reaction `work`, if pending.
    #[cfg(test)]
    pub(crate) fn get(&self, work: &DriverWorkId) -> Option<&DriverTask> {
        self.by_work.get(work)
    }

    /// How many reactions were taken out since boot.
    pub(crate) fn removed(&self) -> u64 {
        self.removed
    }

    /// True if a reaction for `dom`'s devices is pending.
    pub(crate) fn pending_for(&self, dom: DomId) -> bool {
        self.per_dom.contains_key(&dom)
    }

    /// The per-domain counts recounted from the table, and the kept ones (the checker
    /// compares the two).
    pub(crate) fn recount(&self) -> (BTreeMap<DomId, u32>, &BTreeMap<DomId, u32>) {
        let mut counted: BTreeMap<DomId, u32> = BTreeMap::new();
        for task in self.by_work.values() {
            *counted.entry(task.front_dom).or_insert(0) += 1;
        }
        (counted, &self.per_dom)
    }
}
