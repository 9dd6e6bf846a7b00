//! How the collector finds the state an event names: live domains by domid, and each
//! domain's vCPUs by index as positions in the host's vCPU arena.
//!
//! Every `Runstate` and every `Schedule` looks a vCPU up, so the common case is two
//! dependent loads: the live domain's entry (a dense table by domid) and the vCPU's state.
//! A domain whose vCPUs were created in index order at consecutive arena positions (as
//! Xen's domain creation does) finds vCPU `i` at `first + i`; any other domain goes through
//! its own position table.
//!
//! # Invariants
//! - A live entry that is not `scattered` holds exactly the domain's vCPUs `0..count`, at
//!   positions `first..first + count`, and no other.
//! - A position is handed out once and names one vCPU state for the whole run.

use hypervisor_model::ids::DomId;

/// A `VcpuTable::positions` entry with no vCPU.
const NO_VCPU: u32 = u32::MAX;

/// A domain's vCPUs by index: their positions in the host's vCPU arena.
#[derive(Debug, Default)]
pub(super) struct VcpuTable {
    /// Position of each vCPU index; [`NO_VCPU`] where none was created.
    positions: Vec<u32>,
}

impl VcpuTable {
    /// The position of vCPU `id`, if it exists.
    pub(super) fn get(&self, id: u32) -> Option<usize> {
        let position = *self.positions.get(usize::try_from(id).ok()?)?;
        (position != NO_VCPU).then(|| usize::try_from(position).ok())?
    }

    /// Adds vCPU `id` at `position`; false (and no change) if it exists already.
    fn insert(&mut self, id: u32, position: u32) -> bool {
        let index = usize::try_from(id).expect("vCPU index fits usize");
        if self.positions.len() <= index {
            self.positions.resize(index + 1, NO_VCPU);
        }
        if self.positions[index] != NO_VCPU {
            return false;
        }
        self.positions[index] = position;
        true
    }

    /// The vCPU indexes and positions, in index order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        (0u32..).zip(&self.positions).filter_map(|(id, &position)| {
            (position != NO_VCPU).then(|| Some((id, usize::try_from(position).ok()?)))?
        })
    }

    /// The positions, in index order.
    pub(super) fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.iter().map(|(_, position)| position)
    }
}

/// Where a live domain's vCPUs sit in the arena: vCPU `i` at `first + i` for `i < count`
/// (a contiguous run, `count` 0 when it has none), or, when `scattered`, in the domain's
/// [`VcpuTable`]. Two compares find a vCPU, no dispatch on a kind.
#[derive(Clone, Copy, Debug)]
struct LiveDomain {
    /// Index into the host's domains.
    index: usize,
    first: u32,
    /// vCPUs in the contiguous run; 0 when scattered.
    count: u32,
    /// The vCPUs are not one run from index 0: look them up in the table.
    scattered: bool,
}

/// Live domains by domid: a dense table, as the core keeps them (a domid is below 0x7FF0).
#[derive(Debug, Default)]
pub(super) struct LiveDomains {
    slots: Vec<Option<LiveDomain>>,
}

impl LiveDomains {
    /// The index of live domain `dom` among the host's domains.
    pub(super) fn get(&self, dom: &DomId) -> Option<&usize> {
        Some(&self.slot(*dom)?.index)
    }

    pub(super) fn contains_key(&self, dom: &DomId) -> bool {
        self.slot(*dom).is_some()
    }

    /// Domain `dom` is live at `index`, with no vCPU yet.
    pub(super) fn insert(&mut self, dom: DomId, index: usize) {
        let slot = usize::from(dom.raw());
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        self.slots[slot] = Some(LiveDomain {
            index,
            first: 0,
            count: 0,
            scattered: false,
        });
    }

    /// Domain `dom` is no longer live; its index.
    pub(super) fn remove(&mut self, dom: &DomId) -> Option<usize> {
        let live = self.slots.get_mut(usize::from(dom.raw()))?.take()?;
        Some(live.index)
    }

    /// Adds vCPU `id` of live domain `dom` (whose table is `table`) at arena `position`;
    /// false (and no change) if it exists already.
    pub(super) fn add_vcpu(
        &mut self,
        dom: DomId,
        table: &mut VcpuTable,
        id: u32,
        position: usize,
    ) -> bool {
        let position = u32::try_from(position)
            .ok()
            .filter(|&p| p != NO_VCPU)
            .expect("metrics: fewer than 2^32 - 1 vCPUs per host");
        if !table.insert(id, position) {
            return false;
        }
        let live = self
            .slots
            .get_mut(usize::from(dom.raw()))
            .and_then(Option::as_mut)
            .expect("vCPU created in a live domain");
        let extends_run = !live.scattered
            && id == live.count
            && (live.count == 0 || live.first.checked_add(live.count) == Some(position));
        if extends_run {
            if live.count == 0 {
                live.first = position;
            }
            live.count += 1;
        } else {
            live.count = 0;
            live.scattered = true;
        }
        true
    }

    /// The arena position of vCPU `id` of live domain `dom`; `tables(index)` is the
    /// position table of the domain at `index` (read only for a scattered domain).
    #[inline]
    pub(super) fn vcpu_position<'a>(
        &self,
        dom: DomId,
        id: u32,
        tables: impl FnOnce(usize) -> &'a VcpuTable,
    ) -> Option<usize> {
        let live = self.slot(dom)?;
        if id < live.count {
            let position = live.first + id;
            debug_assert_eq!(tables(live.index).get(id), usize::try_from(position).ok());
            return usize::try_from(position).ok();
        }
        if live.scattered {
            tables(live.index).get(id)
        } else {
            None
        }
    }

    fn slot(&self, dom: DomId) -> Option<&LiveDomain> {
        self.slots.get(usize::from(dom.raw()))?.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::ids::DomId;

    use super::{LiveDomains, VcpuTable};

    #[test]
    fn vcpus_in_order_and_out_of_order_are_found() {
        let mut live = LiveDomains::default();
        let dom = |raw| DomId::new(raw).expect("test domid is valid");
        let (a, b) = (dom(1), dom(2));
        let (mut ta, mut tb) = (VcpuTable::default(), VcpuTable::default());
        live.insert(a, 0);
        live.insert(b, 1);
        // a: vCPUs 0 and 1 at 0 and 1 (contiguous); b: vCPU 1 at 2, then 0 at 3.
        assert!(live.add_vcpu(a, &mut ta, 0, 0));
        assert!(live.add_vcpu(a, &mut ta, 1, 1));
        assert!(live.add_vcpu(b, &mut tb, 1, 2));
        assert!(live.add_vcpu(b, &mut tb, 0, 3));
        assert!(!live.add_vcpu(b, &mut tb, 0, 4));
        {
            let tables = [&ta, &tb];
            let find = |dom, id| live.vcpu_position(dom, id, |index| tables[index]);
            assert_eq!(
                (find(a, 0), find(a, 1), find(a, 2)),
                (Some(0), Some(1), None)
            );
            assert_eq!((find(b, 0), find(b, 1)), (Some(3), Some(2)));
            assert_eq!(find(dom(3), 0), None);
        }

        // a's vCPU 2 away from the end of its run: a is looked up by table from now on.
        assert!(live.add_vcpu(a, &mut ta, 2, 5));
        let tables = [&ta, &tb];
        let find = |dom, id| live.vcpu_position(dom, id, |index| tables[index]);

        assert_eq!(
            (find(a, 0), find(a, 1), find(a, 2)),
            (Some(0), Some(1), Some(5))
        );
        assert_eq!(tb.iter().collect::<Vec<_>>(), vec![(0, 3), (1, 2)]);
    }
}
