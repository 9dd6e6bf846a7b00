//! The vif's interrupts: a push that must notify sends on the queue's TX or RX channel, and
//! the receiving end runs the handler bound to that port. With split event channels (what
//! netback offers unless `xen_netback.separate_tx_rx_irq=0`) each port has its own handler,
//! which serves only its ring; with one shared port one handler serves both rings.
//!
//! - netfront TX port (`xennet_tx_interrupt` → `xennet_handle_tx`): `xennet_tx_buf_gc`
//!   reaps the TX responses and `xennet_maybe_wake_tx` lets the qdisc push its backlog.
//! - netfront RX port (`xennet_rx_interrupt` → `xennet_handle_rx`): schedules the NAPI
//!   poll, `xennet_poll`: the RX responses go up the stack, `xennet_alloc_rx_buffers`
//!   reposts the buffers and notifies netback's RX port if the ring asks for it.
//! - netfront shared port (`xennet_interrupt`): `xennet_handle_tx` then `xennet_handle_rx`.
//! - netback TX port (`xenvif_tx_interrupt`): schedules the TX NAPI poll
//!   (`xenvif_tx_action`) when requests are waiting.
//! - netback RX port (`xenvif_rx_interrupt`): kicks the queue's RX thread
//!   (`xenvif_rx_action`), which places queued frames in the buffers just posted.
//! - netback shared port (`xenvif_interrupt`): both.
//!
//! So a notification a `lost-interrupt` fault eats on a split RX port stalls that ring
//! until the next notification on the same port; TX traffic on the queue does not make it
//! good (with a shared port it does). netfront's next RX notification never comes by the
//! ring's rules (`rsp_event` already lies behind the unseen responses), so its RX stalls
//! for good, as on Linux. netback's RX is also woken by the next frame for the frontend
//! (`xenvif_start_xmit` kicks the RX thread, which reads `req_prod` itself).
//!
//! Follows Linux 6.1 drivers/net/xen-netfront.c (`setup_netfront_split`,
//! `setup_netfront_single`, the handlers above) and drivers/net/xen-netback/interface.c
//! (`xenvif_tx_interrupt`, `xenvif_rx_interrupt`, `xenvif_interrupt`,
//! `xenvif_connect_data`'s choice of handlers).
//!
//! # Invariants
//! - A handler serves only the rings its port carries ([`VifIrq`]); the checker's
//!   lost-wakeup rule excuses a ring only while its own handler missed a notification.
//!
//! xensim differs, on purpose: a handler and the NAPI poll or thread it schedules run at
//! once, when the event is sent (the backend's CPU is charged as netback work).

use alloc::vec::Vec;

use super::VifKey;
use crate::hypervisor::{trace_plain, Hypervisor};
use crate::io::vif::VifIrq;
use crate::platform::Platform;
use crate::toolstack::ops::GuestNotice;
use crate::trace::TraceEvent;

impl Hypervisor {
    /// The handler a notification on the TX (`rx` false) or RX channel of `key`'s queue
    /// runs: [`VifIrq::Shared`] when the queue has one port for both.
    #[cfg(test)]
    pub(in crate::hypervisor) fn net_irq_of(&self, key: VifKey, queue: usize, rx: bool) -> VifIrq {
        queue_irq(self.net.ports.get(&key).and_then(|q| q.get(queue)), rx)
    }

    /// `slots` were pushed on the TX ring of `key`'s queue by netfront (`rx` false) or on
    /// its RX ring by netback (`rx`): traced, and when the pushing end must notify, the
    /// other end's handler for that channel runs. `back` is the vif's backend domain and
    /// `queue_trace` the queue's trace field, as the caller found them on the vif.
    pub(super) fn net_pushed<P: Platform + ?Sized>(
        &mut self,
        (key, queue): (VifKey, usize),
        (back, queue_trace): (crate::ids::DomId, Option<u16>),
        rx: bool,
        (slots, notify): (u32, bool),
        p: &mut P,
    ) {
        if slots == 0 {
            return;
        }
        let event = TraceEvent::NetPush {
            dom: key.0,
            devid: key.1,
            queue: queue_trace,
            rx,
            slots,
            notify,
        };
        trace_plain(p, event);
        if !notify {
            return;
        }
        let Some(irq) = self.net_evtchn(key, queue, back, (rx, !rx), p) else {
            return;
        };
        if rx {
            self.netfront_irq(key, queue, irq, p);
        } else {
            self.netback_irq(key, queue, irq, p);
        }
    }

    /// One end of the TX (or RX) channel of `key`'s queue (whose backend domain is
    /// `back`) notifies the other (as `blk_send`). The handler the other end runs, or
    /// `None` when a `lost-interrupt` fault on that port ate the notification (the queue
    /// then remembers which handler missed it).
    #[inline]
    pub(super) fn net_evtchn<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        queue: usize,
        back: crate::ids::DomId,
        (rx, from_front): (bool, bool),
        p: &mut P,
    ) -> Option<VifIrq> {
        let ports = self.net.ports.get(&key).and_then(|q| q.get(queue)).copied();
        let irq = queue_irq(ports.as_ref(), rx);
        let Some(ports) = ports else {
            return Some(irq);
        };
        let pair = if rx { ports.rx } else { ports.tx };
        if self.ring_notify((key.0, back), pair, from_front, p) {
            return Some(irq);
        }
        if let Some(q) = self.net_queue(key, queue) {
            q.irq_lost.lost(!from_front, irq);
        }
        None
    }

    /// netback's handler `irq` for one queue (`xenvif_tx_interrupt`,
    /// `xenvif_rx_interrupt`, `xenvif_interrupt`): TX work unless a batch is queued, and
    /// the RX thread's flush into the buffers the frontend posted.
    pub(in crate::hypervisor) fn netback_irq<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        queue: usize,
        irq: VifIrq,
        p: &mut P,
    ) {
        let Some(q) = self.net_queue(key, queue) else {
            return;
        };
        q.irq_lost.ran(false, irq);
        if irq.serves_tx() && !q.back_busy {
            self.netback_tx_run(key, queue, p);
        }
        if irq.serves_rx() {
            self.netback_rx_flush(key, queue, p);
        }
    }

    /// netfront's handler `irq` for one queue (`xennet_tx_interrupt`,
    /// `xennet_rx_interrupt`, `xennet_interrupt`): TX completions and the backlog pushed
    /// after them; received frames to the guest and the buffers reposted. A queue that
    /// finds its ring broken stops the whole device (Linux's `info->broken`).
    pub(super) fn netfront_irq<P: Platform + ?Sized>(
        &mut self,
        key: VifKey,
        queue: usize,
        irq: VifIrq,
        p: &mut P,
    ) {
        let net = &mut self.net;
        let Some(path) = net.paths.get_mut(&key) else {
            return;
        };
        let Some(q) = path.queues.get_mut(queue) else {
            return;
        };
        q.irq_lost.ran(true, irq);
        let tx_ok = !irq.serves_tx() || q.front_tx_responses().is_ok();
        // The TX port's handler runs nothing between here and its push: with nothing
        // queued, that push would do nothing (`netfront_kick`).
        let tx_idle = irq == VifIrq::Tx && q.tx_backlog.is_empty();
        // The poll's frames go through the reused buffer (no allocation per poll); a
        // poll that finds the ring broken hands up nothing. The TX port's handler polls
        // nothing and leaves the buffer where it is.
        let mut rx = Vec::new();
        if irq.serves_rx() {
            rx = core::mem::take(&mut net.rx_polled);
            if q.front_rx_responses(&net.pages, &mut rx).is_err() {
                rx.clear();
            }
        }
        let failed = !tx_ok || q.front_failed;
        if failed {
            path.fail_front();
        }
        if irq.serves_rx() {
            for packet in rx.drain(..) {
                let notice = GuestNotice::NetReceived {
                    devid: key.1,
                    packet,
                };
                self.vif_notify(key, notice, p);
            }
            if self.net.rx_polled.is_empty() {
                self.net.rx_polled = rx;
            }
        }
        if failed {
            return;
        }
        if irq.serves_rx() {
            self.netfront_rx_refill(key, queue, p);
        }
        if irq.serves_tx() && !tx_idle {
            self.netfront_kick(key, queue, p);
        }
    }

    /// `xennet_alloc_rx_buffers` at the end of the poll: the queue's free RX slots get
    /// buffers again, and netback's RX handler runs if the ring asks for a notification.
    fn netfront_rx_refill<P: Platform + ?Sized>(&mut self, key: VifKey, queue: usize, p: &mut P) {
        let Some(path) = self.net.paths.get_mut(&key) else {
            return;
        };
        let back = path.params.back_dom;
        let Some(q) = path.queues.get_mut(queue) else {
            return;
        };
        let refill = q.front_rx_refill(&mut self.grants);
        if !refill.notify {
            return;
        }
        if let Some(irq) = self.net_evtchn(key, queue, back, (true, true), p) {
            self.netback_irq(key, queue, irq, p);
        }
    }
}

/// The handler a notification on the TX (`rx` false) or RX channel of a queue with
/// `ports` runs ([`VifIrq::Shared`] for one port for both, or no ports).
fn queue_irq(ports: Option<&super::QueuePorts>, rx: bool) -> VifIrq {
    VifIrq::of(ports.is_some_and(|ports| ports.tx != ports.rx), rx)
}

#[cfg(test)]
mod tests {
    use alloc::string::String;

    use super::super::super::tests_net::{packet, received, send, MAC_A, MAC_DOM0};
    use crate::event::CoreInput;
    use crate::hypervisor::Hypervisor;
    use crate::io::vif::{VifIrq, NET_RING_SLOTS, NET_RING_SLOTS_U32};
    use crate::sched::SchedKind;
    use crate::testing::{create_paused, ids, small_host, FakePlatform};
    use crate::toolstack::config::{DomainConfig, VifCfg};

    /// A 60-byte frame (`ETH_ZLEN`): one RX slot each.
    const SMALL_BYTES: u32 = 60;
    /// Frames that fill the one-page RX ring (256 slots) and leave one queued in netback.
    const RING_AND_ONE: u32 = NET_RING_SLOTS_U32 + 1;

    /// A host whose guest (MAC_A, one vCPU) has one single-queue vif: its backend is dom0
    /// (split ports, netback's default) or, when `shared`, a driver domain d1 whose netback
    /// has `xen_netback.separate_tx_rx_irq=0` (one port). Returns the guest's domid.
    fn one_guest(shared: bool) -> (Hypervisor, FakePlatform, u16) {
        let mut p = FakePlatform::default();
        let mut hv = Hypervisor::boot(small_host(4, SchedKind::Credit2), &mut p);
        p.run_until_idle(&mut hv);
        let mut guest = DomainConfig::with_defaults(String::from("a"));
        guest.vifs.push(VifCfg {
            mac: Some(String::from("00:16:3e:00:00:01")),
            ..VifCfg::default()
        });
        let mut dom = 1;
        if shared {
            let mut netdd = DomainConfig::with_defaults(String::from("netdd"));
            netdd.driver_domain = true;
            netdd.cmdline = Some(String::from("xen_netback.separate_tx_rx_irq=0"));
            assert_eq!(hv.handle(&create_paused(1, netdd), &mut p), Ok(()));
            p.run_until_idle(&mut hv);
            guest.vifs[0].backend = Some(String::from("netdd"));
            dom = 2;
        }
        assert_eq!(hv.handle(&create_paused(2, guest), &mut p), Ok(()));
        p.run_until_idle(&mut hv);
        let ports = hv.net.ports[&(ids::dom(dom), 0)][0];
        assert_eq!(ports.tx == ports.rx, shared);
        (hv, p, dom)
    }

    /// The next notification to `dom`'s `port` is lost.
    fn lose_one(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16, port: u32) {
        let fault = CoreInput::LostInterrupt {
            dom: ids::dom(dom),
            port,
            count: 1,
        };
        assert_eq!(hv.handle(&fault, p), Ok(()));
    }

    /// Frames `first..first + count` from dom0's stack for the guest.
    fn deliver(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16, first: u32, count: u32) {
        for seq in first..first + count {
            let input = CoreInput::NetDeliver {
                dom: ids::dom(dom),
                devid: 0,
                packet: packet(MAC_A, MAC_DOM0, seq, SMALL_BYTES),
            };
            assert_eq!(hv.handle(&input, p), Ok(()));
            p.run_until_idle(hv);
        }
    }

    /// The guest sends one frame to dom0's stack (TX traffic on its queue).
    fn send_out(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16, seq: u32) {
        send(hv, p, dom, packet(MAC_DOM0, MAC_A, seq, SMALL_BYTES));
    }

    fn unpolled_rx(hv: &Hypervisor, dom: u16) -> u32 {
        let q = &hv.vif_path(ids::dom(dom), 0).expect("the vif").queues[0];
        q.rx_front.unconsumed_responses(&q.rx_sring).unwrap_or(0)
    }

    fn backend_queued(hv: &Hypervisor, dom: u16) -> usize {
        hv.vif_path(ids::dom(dom), 0).expect("the vif").queues[0]
            .rx_queue
            .len()
    }

    #[test]
    fn a_lost_rx_port_interrupt_is_not_made_good_by_tx_completions() {
        let (mut hv, mut p, dom) = one_guest(false);
        let front_rx = hv.net.ports[&(ids::dom(dom), 0)][0].rx.0;
        lose_one(&mut hv, &mut p, dom, front_rx.raw());
        deliver(&mut hv, &mut p, dom, 1, 1);
        // The guest's own traffic: its TX completion runs only the TX port's handler.
        send_out(&mut hv, &mut p, dom, 1);
        assert_eq!(p.net_frames.len(), 1);
        // A later answer is pushed without a notification (rsp_event lies behind).
        deliver(&mut hv, &mut p, dom, 2, 1);
        assert!(received(&p, dom).is_empty());
        assert_eq!(unpolled_rx(&hv, dom), 2);
        let lost = hv.vif_path(ids::dom(dom), 0).expect("the vif").queues[0].irq_lost;
        assert!(lost.front_rx);
        assert!(!lost.front_tx);
        let violations = hv.check_invariants();
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn a_lost_shared_port_interrupt_is_made_good_by_the_next_tx_completion() {
        let (mut hv, mut p, dom) = one_guest(true);
        let port = hv.net.ports[&(ids::dom(dom), 0)][0].rx.0;
        lose_one(&mut hv, &mut p, dom, port.raw());
        deliver(&mut hv, &mut p, dom, 1, 1);
        assert!(received(&p, dom).is_empty());
        // `xennet_interrupt` on the TX completion polls RX as well.
        send_out(&mut hv, &mut p, dom, 1);
        let seqs: alloc::vec::Vec<u32> = received(&p, dom).iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [1]);
        assert_eq!(unpolled_rx(&hv, dom), 0);
        let lost = hv.vif_path(ids::dom(dom), 0).expect("the vif").queues[0].irq_lost;
        assert!(!lost.front_rx);
    }

    /// The guest's RX ring filled while its RX interrupt was lost, one frame waits in
    /// netback for a buffer, and netfront's poll (the RX handler, as the next RX-port
    /// notification would run it) reposts its buffers but the notification of netback's
    /// RX port is lost too.
    fn netback_waits_for_buffers(shared: bool) -> (Hypervisor, FakePlatform, u16) {
        let (mut hv, mut p, dom) = one_guest(shared);
        let ports = hv.net.ports[&(ids::dom(dom), 0)][0];
        lose_one(&mut hv, &mut p, dom, ports.rx.0.raw());
        deliver(&mut hv, &mut p, dom, 1, RING_AND_ONE);
        assert_eq!(backend_queued(&hv, dom), 1);
        let back = hv
            .vif_path(ids::dom(dom), 0)
            .expect("the vif")
            .params
            .back_dom;
        lose_one(&mut hv, &mut p, back.raw(), ports.rx.1.raw());
        let irq = if shared { VifIrq::Shared } else { VifIrq::Rx };
        hv.netfront_irq((ids::dom(dom), 0), 0, irq, &mut p);
        p.run_until_idle(&mut hv);
        assert_eq!(received(&p, dom).len(), NET_RING_SLOTS);
        assert_eq!(backend_queued(&hv, dom), 1);
        (hv, p, dom)
    }

    #[test]
    fn netback_rx_port_lost_interrupt_waits_for_the_next_frame_not_for_tx() {
        let (mut hv, mut p, dom) = netback_waits_for_buffers(false);
        // TX traffic runs netback's TX handler only: the frame still waits.
        send_out(&mut hv, &mut p, dom, 1);
        assert_eq!(backend_queued(&hv, dom), 1);
        let lost = hv.vif_path(ids::dom(dom), 0).expect("the vif").queues[0].irq_lost;
        assert!(lost.back_rx);
        assert!(!lost.back_tx);
        // The next frame for the guest kicks the RX thread, which finds the buffers.
        deliver(&mut hv, &mut p, dom, RING_AND_ONE + 1, 1);
        assert_eq!(backend_queued(&hv, dom), 0);
        assert_eq!(received(&p, dom).len(), NET_RING_SLOTS + 2);
    }

    #[test]
    fn netback_shared_port_lost_interrupt_is_made_good_by_tx() {
        let (mut hv, mut p, dom) = netback_waits_for_buffers(true);
        // `xenvif_interrupt` on the guest's TX request flushes RX as well.
        send_out(&mut hv, &mut p, dom, 1);
        assert_eq!(backend_queued(&hv, dom), 0);
        assert_eq!(received(&p, dom).len(), NET_RING_SLOTS + 1);
    }
}
