//! netback's queued backend work on a host: the items `netback_queue` handed the backend's
//! vCPUs, by id, until `BackendWorkDone` names them (`net_glue.rs`).
//!
//! Item ids only grow, so the items are kept in a double-ended queue in id order: a new
//! item goes at the back, and the one a `BackendWorkDone` names is found by binary search
//! (usually near the front: the backend's vCPUs finish their items in about the order they
//! were queued). It behaves as the `BTreeMap<BackWorkId, NetWork>` it replaces, without
//! a tree node per item.
//!
//! # Invariants
//! - The ids are strictly increasing from front to back.
//! - At most [`NET_WORK_ITEMS_MAX`](super::NET_WORK_ITEMS_MAX) items (asserted by the
//!   caller before each push).
//!
//! xensim differs: nothing of Linux; this is bookkeeping of the model.

use alloc::collections::VecDeque;

use super::NetWork;
use crate::ids::{BackWorkId, DomId};

/// Why an item could not be taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(in crate::hypervisor) enum TakeError {
    /// No item has that id.
    Unknown,
    /// An older item of the same vCPU is still queued (items run in order per vCPU).
    NotOldest,
}

/// The queued items, in id order.
#[derive(Clone, Debug, Default)]
pub(in crate::hypervisor) struct WorkQueue {
    items: VecDeque<(BackWorkId, NetWork)>,
}

impl WorkQueue {
    /// Items queued.
    pub(in crate::hypervisor) fn len(&self) -> usize {
        self.items.len()
    }

    /// Queues `work` as `id`, which must be above every queued id.
    pub(in crate::hypervisor) fn push(&mut self, id: BackWorkId, work: NetWork) {
        assert!(
            self.items.back().is_none_or(|(last, _)| *last < id),
            "netback work ids out of order"
        );
        self.items.push_back((id, work));
    }

    /// Takes item `id` if it is the oldest item of its vCPU.
    #[inline]
    pub(in crate::hypervisor) fn take_oldest(
        &mut self,
        id: BackWorkId,
    ) -> Result<NetWork, TakeError> {
        // The common case: the oldest item of all (no older item of any vCPU).
        if self.items.front().is_some_and(|(front, _)| *front == id) {
            let (_, work) = self.items.pop_front().ok_or(TakeError::Unknown)?;
            return Ok(work);
        }
        self.take_younger(id)
    }

    /// [`WorkQueue::take_oldest`] of an item behind the front one.
    #[inline(never)]
    fn take_younger(&mut self, id: BackWorkId) -> Result<NetWork, TakeError> {
        let at = self
            .items
            .binary_search_by_key(&id, |(item, _)| *item)
            .map_err(|_| TakeError::Unknown)?;
        let vcpu = self.items[at].1.vcpu;
        let older = self.items.range(..at).any(|(_, w)| w.vcpu == vcpu);
        if older {
            return Err(TakeError::NotOldest);
        }
        let (taken, work) = self.items.remove(at).ok_or(TakeError::Unknown)?;
        debug_assert_eq!(taken, id);
        Ok(work)
    }

    /// Drops every item of `dom`'s vCPUs.
    pub(in crate::hypervisor) fn drop_domain(&mut self, dom: DomId) {
        self.items.retain(|(_, w)| w.vcpu.dom != dom);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::{TakeError, WorkQueue};
    use crate::hypervisor::net_glue::{NetWork, NetWorkKind};
    use crate::ids::{BackWorkId, DomId, VcpuId, VcpuRef};

    /// An RX item of queue 0 of d1's vif 0, run by vCPU `vcpu` of domain `dom`.
    fn item(dom: u16, vcpu: u32) -> NetWork {
        let front = DomId::new(1).expect("d1");
        NetWork {
            key: (front, 0),
            queue: 0,
            vcpu: VcpuRef {
                dom: DomId::new(dom).expect("domid"),
                vcpu: VcpuId::new(vcpu).expect("vcpu"),
            },
            kind: NetWorkKind::Rx,
        }
    }

    /// The straightforward version: the tree the queue replaces.
    fn tree_take(
        tree: &mut BTreeMap<BackWorkId, NetWork>,
        id: BackWorkId,
    ) -> Result<NetWork, TakeError> {
        let vcpu = tree.get(&id).map(|w| w.vcpu).ok_or(TakeError::Unknown)?;
        if tree.range(..id).any(|(_, w)| w.vcpu == vcpu) {
            return Err(TakeError::NotOldest);
        }
        tree.remove(&id).ok_or(TakeError::Unknown)
    }

    #[test]
    fn a_younger_item_of_a_busy_vcpu_is_refused_and_stays_queued() {
        let mut queue = WorkQueue::default();
        queue.push(BackWorkId(1), item(0, 0));
        queue.push(BackWorkId(2), item(0, 1));
        queue.push(BackWorkId(3), item(0, 0));

        assert_eq!(queue.take_oldest(BackWorkId(3)), Err(TakeError::NotOldest));
        assert_eq!(queue.take_oldest(BackWorkId(2)), Ok(item(0, 1)));
        assert_eq!(queue.take_oldest(BackWorkId(9)), Err(TakeError::Unknown));
        assert_eq!(queue.len(), 2);
    }

    /// One step of a random history: push the next id on (dom, vcpu), take an id, or
    /// drop a domain.
    #[derive(Clone, Debug)]
    enum Step {
        Push(u16, u32),
        Take(u64),
        DropDomain(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u16..3, 0u32..3).prop_map(|(d, v)| Step::Push(d, v)),
            4 => (0u64..40).prop_map(Step::Take),
            1 => (0u16..3).prop_map(Step::DropDomain),
        ]
    }

    proptest! {
        #[test]
        fn the_queue_answers_as_the_tree_it_replaces(
            steps in proptest::collection::vec(step(), 0..80),
        ) {
            let mut queue = WorkQueue::default();
            let mut tree = BTreeMap::new();
            let mut next = 0u64;
            for s in steps {
                match s {
                    Step::Push(dom, vcpu) => {
                        queue.push(BackWorkId(next), item(dom, vcpu));
                        tree.insert(BackWorkId(next), item(dom, vcpu));
                        next += 1;
                    }
                    Step::Take(id) => {
                        let id = BackWorkId(id);
                        prop_assert_eq!(queue.take_oldest(id), tree_take(&mut tree, id));
                    }
                    Step::DropDomain(dom) => {
                        let dom = DomId::new(dom).expect("domid");
                        queue.drop_domain(dom);
                        tree.retain(|_, w| w.vcpu.dom != dom);
                    }
                }
                prop_assert_eq!(queue.len(), tree.len());
                let ids: Vec<BackWorkId> = queue.items.iter().map(|(id, _)| *id).collect();
                let tree_ids: Vec<BackWorkId> = tree.keys().copied().collect();
                prop_assert_eq!(ids, tree_ids);
            }
        }
    }
}
