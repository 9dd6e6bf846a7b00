//! The service work queued on each vCPU of a host (`guests/mod.rs`), oldest first: dense,
//! indexed by domid then vCPU index as the guest slots are, so that the run loop's look-ups
//! (every service item is looked up several times, on any vCPU of any domain) are two
//! bounds checks instead of a tree search.
//!
//! # Invariants
//! - `item_count` is the number of items over every queue.
//! - A queue is never shrunk away while its domain lives; it may stay empty.

use std::collections::VecDeque;

use hypervisor_model::ids::{DomId, VcpuRef};

use super::{dense_entry, dense_get, dense_get_mut, ServiceItem};

/// One vCPU's queue: (item, ns left), oldest first.
pub(super) type ServiceQueue = VecDeque<(ServiceItem, u64)>;

/// Every vCPU's queue on a host.
#[derive(Debug, Default)]
pub(super) struct ServiceQueues {
    by_domain: Vec<Vec<ServiceQueue>>,
    /// Items over every queue: while it is 0 (most run starts), a starting vCPU need not
    /// look its queue up.
    item_count: usize,
}

impl ServiceQueues {
    /// Items queued over every vCPU.
    pub(super) fn item_count(&self) -> usize {
        debug_assert_eq!(
            self.item_count,
            self.by_domain
                .iter()
                .flatten()
                .map(VecDeque::len)
                .sum::<usize>()
        );
        self.item_count
    }

    /// `v`'s queue, if it ever had one.
    pub(super) fn get(&self, v: &VcpuRef) -> Option<&ServiceQueue> {
        dense_get(&self.by_domain, v)
    }

    /// `v`'s oldest item, mutably (its ns left may change; pop with [`Self::pop_front`]).
    pub(super) fn front_mut(&mut self, v: &VcpuRef) -> Option<&mut (ServiceItem, u64)> {
        dense_get_mut(&mut self.by_domain, v)?.front_mut()
    }

    /// Queues `work_ns` for `item` on `v`: the newest item grows when it is the same one.
    pub(super) fn add(&mut self, v: VcpuRef, item: ServiceItem, work_ns: u64) {
        let items = dense_entry(&mut self.by_domain, &v);
        match items.back_mut() {
            Some((newest, left_ns)) if *newest == item => *left_ns += work_ns,
            _ => {
                items.push_back((item, work_ns));
                self.item_count += 1;
            }
        }
    }

    /// Takes `v`'s oldest item; also says whether more are queued behind it.
    pub(super) fn pop_front(&mut self, v: &VcpuRef) -> Option<((ServiceItem, u64), bool)> {
        let items = dense_get_mut(&mut self.by_domain, v)?;
        let oldest = items.pop_front()?;
        self.item_count -= 1;
        Some((oldest, !items.is_empty()))
    }

    /// Drops every queue of `dom` (the domain is gone).
    pub(super) fn clear_domain(&mut self, dom: DomId) {
        let Some(queues) = self.by_domain.get_mut(usize::from(dom.raw())) else {
            return;
        };
        let dropped_count: usize = queues.iter().map(VecDeque::len).sum();
        queues.clear();
        self.item_count -= dropped_count;
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::ids::{VcpuId, XsWorkId};

    use super::*;

    /// A vCPU of domain 3 beyond index 0, so that the queues below it exist empty.
    fn v3_2() -> VcpuRef {
        VcpuRef {
            dom: DomId::new(3).expect("d3"),
            vcpu: VcpuId::new(2).expect("v2"),
        }
    }

    fn v3_0() -> VcpuRef {
        VcpuRef {
            vcpu: VcpuId::new(0).expect("v0"),
            ..v3_2()
        }
    }

    #[test]
    fn add_of_the_newest_item_grows_it_and_another_item_queues_behind() {
        let (first, second) = (ServiceItem::Xenstored(XsWorkId(1)), ServiceItem::Exit);
        let mut queues = ServiceQueues::default();

        queues.add(v3_2(), first, 10);
        queues.add(v3_2(), first, 5);
        queues.add(v3_2(), second, 7);

        let items: Vec<_> = queues.get(&v3_2()).into_iter().flatten().copied().collect();
        assert_eq!(items, vec![(first, 15), (second, 7)]);
        assert_eq!(queues.item_count(), 2);
    }

    #[test]
    fn pop_front_says_whether_more_items_wait() {
        let (first, second) = (ServiceItem::Xenstored(XsWorkId(1)), ServiceItem::Exit);
        let mut queues = ServiceQueues::default();
        queues.add(v3_2(), first, 10);
        queues.add(v3_2(), second, 7);

        let popped = [queues.pop_front(&v3_2()), queues.pop_front(&v3_2())];

        assert_eq!(
            popped,
            [Some(((first, 10), true)), Some(((second, 7), false))]
        );
        assert_eq!(queues.pop_front(&v3_2()), None);
        assert_eq!(queues.item_count(), 0);
    }

    #[test]
    fn vcpu_below_a_queued_one_has_an_empty_queue_and_unknown_domain_none() {
        let mut queues = ServiceQueues::default();
        queues.add(v3_2(), ServiceItem::Exit, 1);
        let unknown = VcpuRef {
            dom: DomId::new(9).expect("d9"),
            ..v3_2()
        };

        assert!(queues.get(&v3_0()).is_some_and(VecDeque::is_empty));
        assert!(queues.get(&unknown).is_none());
        assert_eq!(queues.pop_front(&v3_0()), None);
    }

    #[test]
    fn clear_domain_drops_its_items_from_the_count() {
        let mut queues = ServiceQueues::default();
        queues.add(v3_2(), ServiceItem::Exit, 1);
        queues.add(v3_0(), ServiceItem::Exit, 1);

        queues.clear_domain(v3_2().dom);

        assert_eq!(queues.item_count(), 0);
        assert!(queues.get(&v3_2()).is_none());
    }
}
