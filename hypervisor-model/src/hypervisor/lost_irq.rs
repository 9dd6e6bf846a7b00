//! The `lost-interrupt` fault (scenario spec §7.1): the next `count` notifications sent to
//! one interdomain port of a domain are lost before the port goes pending, so the
//! receiver's handler does not run for them.
//!
//! Follows xen/common/event_channel.c (`evtchn_send` → `evtchn_port_set_pending` on the
//! remote end): a lost notification is one whose `set_pending` never happened, so no later
//! scan of the pending bitmap (another upcall on the same vCPU) can find it. Only a later
//! notification on the same port runs the handler again. For the split drivers that is:
//! - blkfront (`blkif_interrupt`): nothing. ring.h's `rsp_event` has already moved past
//!   the lost response, so blkback's later responses ask for no notification, and Linux's
//!   blk-mq gives blkfront no timeout handler (the request timer just re-arms). The vbd
//!   stays stalled until the device reconnects (`blkif_recover`), as on Linux.
//! - netfront (each queue has a TX and an RX channel when netback offers split channels,
//!   as xensim's netback does by default, else one for both; `net_glue/irq.rs`): with
//!   split channels only the next notification on the same port, which for the RX port
//!   never comes (as for blkfront, `rsp_event` already lies behind the unseen answers):
//!   the queue's RX stalls for good and its TX traffic does not make it good. On a lost
//!   TX-port notification the guest's next send reaps the completions
//!   (`xennet_start_xmit` calls `xennet_tx_buf_gc`). With one shared port the next TX
//!   completion (e.g. of a TCP retransmission after its RTO) polls RX too. Only the queue
//!   whose port it is stalls.
//! - the backends (blkback, netback): the next request whose push asks for a notification;
//!   netback's RX port (new buffers) also the next frame for the frontend, which kicks its
//!   RX thread.
//! - xenconsoled (its dom0 end of a console channel, `console_glue.rs`): the guest's next
//!   console write, since hvc_xen notifies after every write; the ring keeps the bytes.
//!
//! # Invariants
//! - Only interdomain ports of live domains have a count; `kill_io` drops the domain's.
//! - A count is never zero in the table.
//!
//! xensim leaves out on purpose: the store channel (its ring is polled by the modelled
//! xenstored), device (MSI) interrupts of passthrough devices (not modelled).

use crate::event::CoreInput;
use crate::evtchn::PortState;
use crate::ids::{DomId, EvtchnPort};
use crate::platform::Platform;
use crate::trace::TraceEvent;

use super::{Hypervisor, InputError};

impl Hypervisor {
    /// Arms the fault: `count` more notifications to `(dom, port)` will be lost. The port
    /// must be an interdomain port of `dom`.
    pub(crate) fn lose_interrupts(
        &mut self,
        dom: DomId,
        port: u32,
        count: u32,
    ) -> Result<(), InputError> {
        let table = self
            .evtchn
            .domain(dom)
            .ok_or(InputError::UnknownDomain(dom))?;
        let evtchn_port = EvtchnPort::new(port);
        let Some(PortState::Interdomain { .. }) = table.state(evtchn_port) else {
            return Err(InputError::UnboundPort(dom, port));
        };
        if count > 0 {
            let left = self.lost_irqs.entry((dom, evtchn_port)).or_insert(0);
            *left = left.saturating_add(count);
        }
        Ok(())
    }

    /// A notification is about to reach `(dom, port)`: true if the fault eats it (traced).
    pub(crate) fn take_lost_interrupt<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        port: EvtchnPort,
        p: &mut P,
    ) -> bool {
        let Some(left) = self.lost_irqs.get_mut(&(dom, port)) else {
            return false;
        };
        debug_assert!(
            *left > 0,
            "an exhausted lost-interrupt count stays in the table"
        );
        *left -= 1;
        let left = *left;
        if left == 0 {
            self.lost_irqs.remove(&(dom, port));
        }
        p.trace(&TraceEvent::InterruptLost {
            dom,
            port: port.raw(),
            left,
        });
        true
    }

    /// Whether `input` is the fault for a port this host can lose notifications on (the
    /// platform checks before it records the fault, so a bad target is an exit status).
    pub fn can_lose_interrupts(&self, input: &CoreInput) -> bool {
        let CoreInput::LostInterrupt { dom, port, .. } = input else {
            return false;
        };
        self.evtchn
            .domain(*dom)
            .and_then(|t| t.state(EvtchnPort::new(*port)))
            .is_some_and(|s| matches!(s, PortState::Interdomain { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_blk::{completions, submit, two_guests, TestDisk, XVDA};
    use super::super::InputError;
    use crate::event::CoreInput;
    use crate::io::vbd::{GuestIo, IoOp};
    use crate::testing::ids;
    use crate::trace::TraceEvent;

    fn read(tag: u64) -> GuestIo {
        GuestIo {
            tag,
            op: IoOp::Read,
            sector: tag * 8,
            sectors: 8,
            seed: 0,
        }
    }

    #[test]
    fn lost_blkfront_interrupt_stalls_every_later_completion() {
        // d1's blkfront port loses one notification: the first read's response is on the
        // ring unseen, and the second read's response asks for no notification.
        let (mut hv, mut p) = two_guests(0);
        let (front_port, _) = hv.blk.ports[&(ids::dom(1), XVDA)];
        let fault = CoreInput::LostInterrupt {
            dom: ids::dom(1),
            port: front_port.raw(),
            count: 1,
        };
        assert!(hv.can_lose_interrupts(&fault));
        assert_eq!(hv.handle(&fault, &mut p), Ok(()));
        submit(&mut hv, &mut p, 1, read(1));
        TestDisk::default().serve(&mut hv, &mut p);
        submit(&mut hv, &mut p, 1, read(2));
        TestDisk::default().serve(&mut hv, &mut p);
        assert!(completions(&p, 1).is_empty());
        let lost = p
            .events
            .iter()
            .filter(|e| matches!(e, TraceEvent::InterruptLost { .. }));
        assert_eq!(lost.count(), 1);
        assert!(hv.lost_irqs.is_empty());
    }

    #[test]
    fn other_guest_keeps_its_interrupts() {
        // The fault names d1's port: d2's reads complete.
        let (mut hv, mut p) = two_guests(0);
        let (front_port, _) = hv.blk.ports[&(ids::dom(1), XVDA)];
        let fault = CoreInput::LostInterrupt {
            dom: ids::dom(1),
            port: front_port.raw(),
            count: 1,
        };
        assert_eq!(hv.handle(&fault, &mut p), Ok(()));
        submit(&mut hv, &mut p, 2, read(1));
        TestDisk::default().serve(&mut hv, &mut p);
        assert_eq!(completions(&p, 2).len(), 1);
    }

    #[test]
    fn lost_interrupt_on_an_unbound_port_is_refused() {
        // Port 1000 was never allocated.
        let (mut hv, mut p) = two_guests(0);
        let fault = CoreInput::LostInterrupt {
            dom: ids::dom(1),
            port: 1000,
            count: 1,
        };
        assert!(!hv.can_lose_interrupts(&fault));
        let refused = hv.handle(&fault, &mut p);
        assert_eq!(refused, Err(InputError::UnboundPort(ids::dom(1), 1000)));
    }
}
