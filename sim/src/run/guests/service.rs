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

    /// `v`'s oldest item ran `ran_ns` more: what it has left.
    pub(super) fn charge_front(&mut self, v: &VcpuRef, ran_ns: u64) -> Option<u64> {
        let (_, left_ns) = dense_get_mut(&mut self.by_domain, v)?.front_mut()?;
        *left_ns = left_ns.saturating_sub(ran_ns);
        Some(*left_ns)
    }

    /// `v`'s oldest item ran `ran_ns` more and leaves the queue: it, with what it has left,
    /// and what the item behind it has left, if one is queued.
    pub(super) fn finish_front(
        &mut self,
        v: &VcpuRef,
        ran_ns: u64,
    ) -> Option<((ServiceItem, u64), Option<u64>)> {
        let items = dense_get_mut(&mut self.by_domain, v)?;
        let (item, left_ns) = items.pop_front()?;
        self.item_count -= 1;
        let next_left_ns = items.front().map(|&(_, next_left_ns)| next_left_ns);
        Some(((item, left_ns.saturating_sub(ran_ns)), next_left_ns))
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
    fn finish_front_charges_the_oldest_and_names_the_next_items_time_left() {
        let (first, second) = (ServiceItem::Xenstored(XsWorkId(1)), ServiceItem::Exit);
        let mut queues = ServiceQueues::default();
        queues.add(v3_2(), first, 10);
        queues.add(v3_2(), second, 7);
        // The oldest item ran 4 ns of its 10 before; the next one runs all its 7.
        let charged = queues.charge_front(&v3_2(), 4);

        let finished = [
            queues.finish_front(&v3_2(), 6),
            queues.finish_front(&v3_2(), 7),
        ];

        assert_eq!(charged, Some(6));
        assert_eq!(
            finished,
            [Some(((first, 0), Some(7))), Some(((second, 0), None))]
        );
        assert_eq!(queues.finish_front(&v3_2(), 0), None);
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
        assert_eq!(queues.finish_front(&v3_0(), 0), None);
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
