//! One domain's event-channel state: the port array (grown in buckets), the 2-level
//! shared-info bits (`evtchn_pending`, `evtchn_mask`), each vCPU's `evtchn_pending_sel` and
//! `evtchn_upcall_pending`, and the per-vCPU `virq_to_evtchn` array.
//!
//! Follows xen/common/event_channel.c (`get_free_port`, `evtchn_allocate_port`,
//! `evtchn_free`, `evtchn_init`), xen/common/event_2l.c (`evtchn_2l_set_pending`,
//! `evtchn_2l_unmask`) and xen/arch/x86/domain.c (`vcpu_mark_events_pending`).
//!
//! # Invariants
//! - `channels.len()` (Xen's `valid_evtchns`) is a multiple of `EVTCHNS_PER_BUCKET` and at
//!   most the ABI limit; port 0 is `Reserved`.
//! - A free port has notify vCPU 0 and no pending bit.
//!
//! The guest-side helpers (`guest_*`) model what a guest writes into its shared-info page
//! (masking, acknowledging) so that tests and guest models can drive the bits.

use alloc::vec;
use alloc::vec::Vec;

use super::{
    Abi, EvtchnError, Notify, PortState, Virq, EVTCHNS_PER_BUCKET, EVTCHN_2L_WORD_BITS, NR_VIRQS,
};
use crate::ids::{DomId, EvtchnPort, VcpuId};

/// How a domain's event-channel table is built (`evtchn_init(d, max_port)` plus the facts
/// about the domain the checks need).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EvtchnDomainConfig {
    /// Highest port the domain may allocate (xl.cfg `max_event_channels`).
    pub max_evtchn_port: u32,
    /// Number of vCPUs (`d->max_vcpus`); at least 1.
    pub vcpu_count: u32,
    /// Whether the domain is privileged (dom0): XSM's dummy policy lets it act on others.
    pub privileged: bool,
}

/// One port (`struct evtchn`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Channel {
    pub(super) state: PortState,
    /// `notify_vcpu_id`.
    pub(super) notify_vcpu: VcpuId,
}

const FREE_CHANNEL: Channel = Channel {
    state: PortState::Free,
    notify_vcpu: VCPU0,
};

const VCPU0: VcpuId = match VcpuId::new(0) {
    Some(v) => v,
    None => panic!("vCPU 0 is always valid"),
};

/// Per-vCPU event state (`vcpu_info` fields and `virq_to_evtchn`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct VcpuEvtchn {
    /// `vcpu_info.evtchn_upcall_pending`.
    pub(super) upcall_pending: bool,
    /// `vcpu_info.evtchn_pending_sel`: one bit per word of the pending bitmap.
    pub(super) pending_sel: u64,
    /// `v->virq_to_evtchn[]`; global VIRQs live in vCPU 0's array.
    pub(super) virq_to_evtchn: [Option<EvtchnPort>; NR_VIRQS as usize],
}

/// One domain's event channels.
#[derive(Clone, Debug)]
pub struct DomainEvtchn {
    pub(super) dom: DomId,
    pub(super) channels: Vec<Channel>,
    pub(super) max_evtchn_port: u32,
    pub(super) abi: Abi,
    pending: Vec<u64>,
    mask: Vec<u64>,
    pub(super) vcpus: Vec<VcpuEvtchn>,
    pub(super) dying: bool,
    pub(super) privileged: bool,
}

impl DomainEvtchn {
    /// `evtchn_init`: one bucket, port 0 reserved, 2-level ABI, every bit clear (Xen hands
    /// the guest a zeroed shared-info page, so nothing starts masked).
    pub(super) fn new(dom: DomId, config: EvtchnDomainConfig) -> DomainEvtchn {
        assert!(
            config.vcpu_count >= 1,
            "{dom:?}: a domain has at least one vCPU"
        );
        let vcpu = VcpuEvtchn {
            upcall_pending: false,
            pending_sel: 0,
            virq_to_evtchn: [None; NR_VIRQS as usize],
        };
        let words = bitmap_words(Abi::TwoLevel);
        let mut table = DomainEvtchn {
            dom,
            channels: vec![FREE_CHANNEL; EVTCHNS_PER_BUCKET as usize],
            max_evtchn_port: config.max_evtchn_port,
            abi: Abi::TwoLevel,
            pending: vec![0; words],
            mask: vec![0; words],
            vcpus: vec![vcpu; config.vcpu_count as usize],
            dying: false,
            privileged: config.privileged,
        };
        table.channels[0].state = PortState::Reserved;
        table
    }

    /// The vCPU with raw number `raw`, if the domain has it (`domain_vcpu`).
    pub(super) fn vcpu(&self, raw: u32) -> Option<VcpuId> {
        let vcpu = VcpuId::new(raw)?;
        (vcpu.raw() < self.vcpu_count()).then_some(vcpu)
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> u32 {
        u32::try_from(self.vcpus.len()).unwrap_or(u32::MAX)
    }

    /// `valid_evtchns`: ports below this have a `struct evtchn`.
    pub fn valid_ports(&self) -> u32 {
        u32::try_from(self.channels.len()).unwrap_or(u32::MAX)
    }

    /// The ABI in use.
    pub fn abi(&self) -> Abi {
        self.abi
    }

    /// Whether `evtchn_destroy` has run.
    pub fn is_dying(&self) -> bool {
        self.dying
    }

    /// The state of `port`, or `None` past `valid_evtchns`.
    pub fn state(&self, port: EvtchnPort) -> Option<PortState> {
        self.channels.get(port.index()).map(|c| c.state)
    }

    /// The notify vCPU of `port`, or `None` past `valid_evtchns`.
    pub fn notify_vcpu(&self, port: EvtchnPort) -> Option<VcpuId> {
        self.channels.get(port.index()).map(|c| c.notify_vcpu)
    }

    pub(super) fn channel(&self, port: EvtchnPort) -> Result<Channel, EvtchnError> {
        self.channels
            .get(port.index())
            .copied()
            .ok_or(EvtchnError::PortInvalid {
                dom: self.dom,
                port,
            })
    }

    pub(super) fn set_channel(&mut self, port: EvtchnPort, channel: Channel) {
        assert!(port.raw() != 0, "{:?}: port 0 stays reserved", self.dom);
        let slot = &mut self.channels[port.index()];
        *slot = channel;
    }

    /// Ports that are neither free nor reserved.
    pub fn active_count(&self) -> u32 {
        let count = self
            .channels
            .iter()
            .filter(|c| !matches!(c.state, PortState::Free | PortState::Reserved))
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// `get_free_port`: the lowest free port, growing the bucket array if the port lies past
    /// it. The port stays `Free` until the caller binds it.
    pub(super) fn get_free_port(&mut self) -> Result<EvtchnPort, EvtchnError> {
        if self.dying {
            return Err(EvtchnError::DomainDying { dom: self.dom });
        }
        let limit = self.abi.nr_channels();
        let last = self.max_evtchn_port.min(limit - 1);
        let found = self
            .channels
            .iter()
            .take(last as usize + 1)
            .position(|c| c.state == PortState::Free);
        let raw = match found {
            Some(index) => u32::try_from(index).unwrap_or(u32::MAX),
            None => self.valid_ports(),
        };
        if raw > last {
            return Err(EvtchnError::NoFreePort { dom: self.dom });
        }
        // Xen: evtchn_allocate_port() allocates every bucket up to the port.
        while raw >= self.valid_ports() {
            let grown = self.channels.len() + EVTCHNS_PER_BUCKET as usize;
            self.channels.resize(grown, FREE_CHANNEL);
        }
        assert!(self.valid_ports() <= limit);
        Ok(EvtchnPort::new(raw))
    }

    /// `evtchn_free`: clear the pending bit, back to free on vCPU 0.
    pub(super) fn free(&mut self, port: EvtchnPort) {
        clear_bit(&mut self.pending, port);
        self.set_channel(port, FREE_CHANNEL);
    }

    /// `evtchn_2l_set_pending` then `vcpu_mark_events_pending`: `Some` when the vCPU's
    /// upcall flag went from clear to set.
    pub(super) fn set_pending(&mut self, port: EvtchnPort, vcpu: VcpuId) -> Option<Notify> {
        assert!(
            !matches!(
                self.channels[port.index()].state,
                PortState::Free | PortState::Reserved
            ),
            "{:?}: set_pending on unbound {port:?}",
            self.dom
        );
        if test_and_set_bit(&mut self.pending, port) {
            return None; // Xen: events coalesce while the bit is set.
        }
        if test_bit(&self.mask, port) {
            return None;
        }
        self.select_and_mark(port, vcpu)
    }

    /// `evtchn_2l_unmask`: clear the mask bit; if it was set and the port is pending,
    /// raise the selector and the upcall on the notify vCPU.
    pub(super) fn unmask(&mut self, port: EvtchnPort) -> Option<Notify> {
        let vcpu = self.channels[port.index()].notify_vcpu;
        if !test_and_clear_bit(&mut self.mask, port) || !test_bit(&self.pending, port) {
            return None;
        }
        self.select_and_mark(port, vcpu)
    }

    fn select_and_mark(&mut self, port: EvtchnPort, vcpu: VcpuId) -> Option<Notify> {
        let word = port.raw() / EVTCHN_2L_WORD_BITS;
        let fifo = self.abi == Abi::Fifo;
        let v = &mut self.vcpus[vcpu.raw() as usize];
        // xensim differs: under FIFO there is no selector word (see the module doc of
        // `evtchn`); the upcall flag alone decides.
        if !fifo {
            assert!(
                word < EVTCHN_2L_WORD_BITS,
                "2-level port {port:?} past the bitmap"
            );
            let sel_bit = 1u64 << word;
            if v.pending_sel & sel_bit != 0 {
                return None;
            }
            v.pending_sel |= sel_bit;
        }
        if v.upcall_pending {
            return None;
        }
        v.upcall_pending = true;
        Some(Notify {
            dom: self.dom,
            vcpu,
        })
    }

    /// Whether `port`'s pending bit is set.
    pub fn is_pending(&self, port: EvtchnPort) -> bool {
        test_bit(&self.pending, port)
    }

    /// Whether `port`'s mask bit is set.
    pub fn is_masked(&self, port: EvtchnPort) -> bool {
        test_bit(&self.mask, port)
    }

    /// The vCPU's `evtchn_upcall_pending`, `None` for an unknown vCPU.
    pub fn upcall_pending(&self, vcpu: VcpuId) -> Option<bool> {
        self.vcpus
            .get(vcpu.raw() as usize)
            .map(|v| v.upcall_pending)
    }

    /// The guest sets or clears a mask bit in its shared-info page (a plain bit write:
    /// unmasking this way raises nothing, which is why guests use `EVTCHNOP_unmask`).
    pub fn guest_set_mask(&mut self, port: EvtchnPort, masked: bool) {
        if port.raw() >= self.abi.nr_channels() {
            return;
        }
        if masked {
            test_and_set_bit(&mut self.mask, port);
        } else {
            test_and_clear_bit(&mut self.mask, port);
        }
    }

    /// The guest's upcall handler on `vcpu` (Linux `evtchn_2l_handle_events`): clear
    /// `evtchn_upcall_pending`, take the selector, and test-and-clear every pending, unmasked
    /// port of the selected words whose notify vCPU is `vcpu`. Returns them in port order.
    pub fn guest_take_events(&mut self, vcpu: VcpuId) -> Vec<EvtchnPort> {
        let mut taken = Vec::new();
        let Some(v) = self.vcpus.get_mut(vcpu.raw() as usize) else {
            return taken;
        };
        v.upcall_pending = false;
        let sel = core::mem::take(&mut v.pending_sel);
        let words = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
        for word in 0..words {
            // Under FIFO every word is scanned (no selector).
            let selected = word < EVTCHN_2L_WORD_BITS && sel & (1u64 << word) != 0;
            if selected || (self.abi == Abi::Fifo && self.pending[word as usize] != 0) {
                self.take_word(word, vcpu, &mut taken);
            }
        }
        taken
    }

    /// A driver's interrupt handler on `vcpu` acknowledges `port` (Linux's
    /// `clear_evtchn` then the upcall's flag clear): its pending bit and the vCPU's
    /// `evtchn_upcall_pending` go; the selector bit goes with the last pending port of its
    /// word. True if the port was pending. O(1), unlike [`Self::guest_take_events`].
    pub fn guest_ack_port(&mut self, vcpu: VcpuId, port: EvtchnPort) -> bool {
        if port.raw() >= self.abi.nr_channels() {
            return false;
        }
        let was_pending = test_and_clear_bit(&mut self.pending, port);
        let word = port.raw() / EVTCHN_2L_WORD_BITS;
        let word_clear = self.pending.get(word as usize).is_some_and(|w| *w == 0);
        if let Some(v) = self.vcpus.get_mut(vcpu.raw() as usize) {
            v.upcall_pending = false;
            if word_clear && word < EVTCHN_2L_WORD_BITS {
                v.pending_sel &= !(1u64 << word);
            }
        }
        was_pending
    }

    fn take_word(&mut self, word: u32, vcpu: VcpuId, taken: &mut Vec<EvtchnPort>) {
        let index = word as usize;
        let ready = self.pending[index] & !self.mask[index];
        for bit in 0..EVTCHN_2L_WORD_BITS {
            let port = EvtchnPort::new(word * EVTCHN_2L_WORD_BITS + bit);
            let ours = self.notify_vcpu(port) == Some(vcpu);
            if ready & (1u64 << bit) != 0 && ours {
                self.pending[index] &= !(1u64 << bit);
                taken.push(port);
            }
        }
    }

    /// Switches to the FIFO ABI's limits (`evtchn_fifo_init_control`, first call).
    pub(super) fn switch_abi(&mut self, abi: Abi) {
        self.abi = abi;
        let words = bitmap_words(abi);
        self.pending.resize(words, 0);
        self.mask.resize(words, 0);
    }

    /// Ports whose pending bit is set, in order.
    pub fn pending_ports(&self) -> Vec<EvtchnPort> {
        let mut out = Vec::new();
        let words = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, word)| **word != 0);
        for (index, word) in words {
            for bit in 0..64u32 {
                if word & (1u64 << bit) != 0 {
                    let raw = u32::try_from(index).unwrap_or(u32::MAX) * 64 + bit;
                    out.push(EvtchnPort::new(raw));
                }
            }
        }
        out
    }

    /// The port bound to `virq` for `vcpu`'s array.
    pub fn virq_port(&self, vcpu: VcpuId, virq: Virq) -> Option<EvtchnPort> {
        let v = self.vcpus.get(vcpu.raw() as usize)?;
        v.virq_to_evtchn[virq.raw() as usize]
    }
}

fn bitmap_words(abi: Abi) -> usize {
    (abi.nr_channels() / 64) as usize
}

fn test_bit(map: &[u64], port: EvtchnPort) -> bool {
    let word = map.get(port.index() / 64).copied().unwrap_or(0);
    word & (1u64 << (port.raw() % 64)) != 0
}

fn test_and_set_bit(map: &mut [u64], port: EvtchnPort) -> bool {
    let bit = 1u64 << (port.raw() % 64);
    let Some(word) = map.get_mut(port.index() / 64) else {
        return true;
    };
    let old = *word & bit != 0;
    *word |= bit;
    old
}

fn test_and_clear_bit(map: &mut [u64], port: EvtchnPort) -> bool {
    let bit = 1u64 << (port.raw() % 64);
    let Some(word) = map.get_mut(port.index() / 64) else {
        return false;
    };
    let old = *word & bit != 0;
    *word &= !bit;
    old
}

fn clear_bit(map: &mut [u64], port: EvtchnPort) {
    test_and_clear_bit(map, port);
}

#[cfg(test)]
mod tests {
    use super::{DomainEvtchn, EvtchnDomainConfig, PortState};
    use crate::evtchn::{EvtchnError, EVTCHNS_PER_BUCKET};
    use crate::ids::{DomId, EvtchnPort, VcpuId};

    fn table(max_evtchn_port: u32) -> DomainEvtchn {
        let config = EvtchnDomainConfig {
            max_evtchn_port,
            vcpu_count: 2,
            privileged: false,
        };
        DomainEvtchn::new(DomId::DOM0, config)
    }

    fn bind_ipi(t: &mut DomainEvtchn) -> EvtchnPort {
        let port = t.get_free_port().expect("free port");
        let vcpu = t.vcpu(0).expect("vcpu 0");
        t.set_channel(
            port,
            super::Channel {
                state: PortState::Ipi,
                notify_vcpu: vcpu,
            },
        );
        port
    }

    #[test]
    fn new_table_reserves_port_0_and_allocates_port_1_first() {
        let mut t = table(1023);
        assert_eq!(t.state(EvtchnPort::new(0)), Some(PortState::Reserved));
        assert_eq!(t.get_free_port(), Ok(EvtchnPort::new(1)));
    }

    #[test]
    fn allocation_past_first_bucket_grows_valid_ports_by_one_bucket() {
        let mut t = table(1023);
        let before = t.valid_ports();
        for _ in 1..EVTCHNS_PER_BUCKET {
            bind_ipi(&mut t);
        }
        let port = bind_ipi(&mut t);
        assert_eq!(port, EvtchnPort::new(EVTCHNS_PER_BUCKET));
        assert_eq!(t.valid_ports(), before + EVTCHNS_PER_BUCKET);
    }

    #[test]
    fn max_evtchn_port_3_allows_exactly_three_ports() {
        // Ports 1, 2, 3 are allocatable; port 0 is reserved.
        let mut t = table(3);
        bind_ipi(&mut t);
        bind_ipi(&mut t);
        bind_ipi(&mut t);
        assert_eq!(
            t.get_free_port(),
            Err(EvtchnError::NoFreePort { dom: DomId::DOM0 })
        );
    }

    #[test]
    fn second_set_pending_coalesces_without_a_notify() {
        let mut t = table(1023);
        let port = bind_ipi(&mut t);
        let vcpu = VcpuId::new(0).expect("vcpu 0");
        assert!(t.set_pending(port, vcpu).is_some());
        assert!(t.set_pending(port, vcpu).is_none());
    }

    #[test]
    fn guest_take_events_clears_pending_and_upcall() {
        let mut t = table(1023);
        let port = bind_ipi(&mut t);
        let vcpu = VcpuId::new(0).expect("vcpu 0");
        t.set_pending(port, vcpu);
        assert_eq!(t.guest_take_events(vcpu), [port]);
        assert!(!t.is_pending(port));
        assert_eq!(t.upcall_pending(vcpu), Some(false));
    }

    #[test]
    fn guest_ack_port_lets_the_next_send_notify_again() {
        let mut t = table(1023);
        let port = bind_ipi(&mut t);
        let vcpu = VcpuId::new(0).expect("vcpu 0");
        t.set_pending(port, vcpu);
        assert!(t.guest_ack_port(vcpu, port));
        assert_eq!(t.upcall_pending(vcpu), Some(false));
        assert!(t.set_pending(port, vcpu).is_some());
    }
}
