//! Frames between vifs, dom0's stacks, the external peer and the hosts: what the run loop
//! does with every frame netback hands its bridge (`Platform::net_transmit`), with the
//! frames an `io` workload over a vif sends, and with what netfront receives.
//!
//! A frame for a vif on the same host crosses the bridge at once; one for dom0's stack is
//! answered there; anything else leaves through the NIC onto the fabric (`machine/fabric.rs`)
//! towards another host's bridge or the external peer, which answers requests back over
//! the reverse link. Every frame that reaches a vif is a `CoreInput::NetDeliver` event at
//! its arrival time; an answer a guest's kernel owes (its peer is that guest) is a
//! `CoreInput::NetSend` from that guest's vCPU 0.
//!
//! # Invariants
//! - The directory maps each connected vif's MAC to exactly one (host, domain, vif).
//! - Every frame in `pending` has exactly one `NetArrive` event queued.
//! - Every frame that is lost, partitioned, too big or has no route is counted against the
//!   sending vif (`drops`), and every frame dropped by netfront or netback against its vif.

use std::collections::BTreeMap;

use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::{DomId, VcpuId, VcpuRef};
use hypervisor_model::io::vif::{Mac, NetPacket};
use hypervisor_model::platform::NetFrame;

use super::{SimEvent, World};
use crate::machine::fabric::{Fabric, Transit, EXTERNAL};
use crate::machine::nic::{dom0_mac, external_mac, Bridge, Hop, Responder};
use crate::scenario::model::NetPeer;

/// Most frames on their way at once (a bound that turns a runaway into a drop).
pub const FRAMES_IN_FLIGHT_MAX: usize = 1 << 20;

/// Why a frame did not reach its vif.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// netfront's TX queue or netback's RX queue was full.
    RingFull,
    /// The link lost it.
    FabricLoss,
    /// The link was partitioned.
    Partition,
    /// Nothing answers to its destination, or it was larger than the MTU.
    NoRoute,
}

/// One dropped frame, as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDropRecord {
    /// The vif (`vif0`).
    pub dev: String,
    /// When, ns.
    pub at_ns: u64,
    /// Why.
    pub reason: DropReason,
}

/// A frame on its way to a vif.
#[derive(Debug, Clone, Copy)]
struct Pending {
    host: u16,
    dom: DomId,
    devid: u32,
    packet: NetPacket,
    /// Sent by that guest's kernel (an answer) rather than delivered to it.
    send: bool,
}

/// The network of a run.
#[derive(Debug)]
pub struct NetWorld {
    fabric: Fabric,
    bridges: Vec<Bridge>,
    external: Responder,
    /// Guest kernels answering requests, by (host, domain).
    kernels: BTreeMap<(u16, DomId), Responder>,
    /// Connected vifs by MAC.
    directory: BTreeMap<Mac, (u16, DomId, u32)>,
    pending: BTreeMap<u64, Pending>,
    next_frame: u64,
    /// Dropped frames by (host, domain).
    pub drops: BTreeMap<(u16, DomId), Vec<NetDropRecord>>,
    /// Requests whose vif or whose peer's vif is not connected yet (the interface is not
    /// up): sent when both are.
    waiting: Vec<Waiting>,
}

/// A request held until its vif and its peer's are connected.
#[derive(Debug, Clone)]
struct Waiting {
    host: u16,
    vcpu: VcpuRef,
    devid: u32,
    peer: NetPeer,
    frames: Vec<NetPacket>,
}

/// Most requests held for vifs that are not up yet.
pub const WAITING_MAX: usize = 4096;

impl NetWorld {
    /// The network of `scenario`'s hosts.
    pub fn new(
        scenario: &crate::scenario::model::Scenario,
        streams: &crate::rng::RngStreams,
    ) -> NetWorld {
        let names: Vec<String> = scenario.hosts.iter().map(|h| h.name.clone()).collect();
        let overhead = super::host::cost_ns(
            &scenario.costs,
            "dev.nic_frame_overhead_bytes",
            crate::machine::fabric::FRAME_OVERHEAD_BYTES,
        );
        NetWorld {
            fabric: Fabric::new(scenario.fabric.as_ref(), &names, overhead, streams),
            bridges: vec![Bridge::default(); names.len()],
            external: Responder::default(),
            kernels: BTreeMap::new(),
            directory: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_frame: 0,
            drops: BTreeMap::new(),
            waiting: Vec::new(),
        }
    }

    /// The fabric (faults change it).
    pub fn fabric_mut(&mut self) -> &mut Fabric {
        &mut self.fabric
    }

    /// Vif `devid` of `dom` on `host` connected with `mac`.
    pub fn attach(&mut self, host: u16, dom: DomId, devid: u32, mac: Mac) {
        if let Some((h, d, v)) = self.directory.insert(mac, (host, dom, devid)) {
            if let Some(bridge) = self.bridges.get_mut(usize::from(h)) {
                bridge.vifs.remove(&mac);
            }
            debug_assert!((h, d, v) == (host, dom, devid), "MAC given to two vifs");
        }
        if let Some(bridge) = self.bridges.get_mut(usize::from(host)) {
            bridge.vifs.insert(mac, (dom, devid));
        }
    }

    /// `dom` on `host` is gone: its vifs leave the bridge.
    pub fn detach_domain(&mut self, host: u16, dom: DomId) {
        self.directory
            .retain(|_, (h, d, _)| !(*h == host && *d == dom));
        if let Some(bridge) = self.bridges.get_mut(usize::from(host)) {
            bridge.vifs.retain(|_, (d, _)| *d != dom);
        }
        self.kernels.remove(&(host, dom));
    }

    /// The MAC of `dom`'s vif `devid` on `host`, if connected.
    pub fn mac_of(&self, host: u16, dom: DomId, devid: u32) -> Option<Mac> {
        let bridge = self.bridges.get(usize::from(host))?;
        bridge
            .vifs
            .iter()
            .find(|(_, v)| **v == (dom, devid))
            .map(|(mac, _)| *mac)
    }

    fn drop_frame(&mut self, host: u16, dom: DomId, devid: u32, at_ns: u64, reason: DropReason) {
        let record = NetDropRecord {
            dev: format!("vif{devid}"),
            at_ns,
            reason,
        };
        self.drops.entry((host, dom)).or_default().push(record);
    }

    /// The drop records of `dom` on `host` (taken).
    pub fn take_drops(&mut self, host: u16, dom: DomId) -> Vec<NetDropRecord> {
        self.drops.remove(&(host, dom)).unwrap_or_default()
    }
}

impl World<'_> {
    /// Queues `packet` for `dom`'s vif `devid` on `host` at `at_ns`.
    fn net_arrive(&mut self, at_ns: u64, pending: Pending) {
        let net = &mut self.net;
        if net.pending.len() >= FRAMES_IN_FLIGHT_MAX {
            return net.drop_frame(
                pending.host,
                pending.dom,
                pending.devid,
                at_ns,
                DropReason::RingFull,
            );
        }
        let id = net.next_frame;
        net.next_frame += 1;
        net.pending.insert(id, pending);
        self.queue.push(at_ns, SimEvent::NetArrive { frame: id });
    }

    /// `NetArrive`: the frame reaches its vif's netback (or is sent by its guest's kernel).
    pub(crate) fn net_arrived(&mut self, frame: u64) -> Option<u16> {
        let pending = self.net.pending.remove(&frame)?;
        let input = if pending.send {
            let vcpu = VcpuRef {
                dom: pending.dom,
                vcpu: VcpuId::new(0)?,
            };
            CoreInput::NetSend {
                vcpu,
                devid: pending.devid,
                packet: pending.packet,
                last: true,
            }
        } else {
            CoreInput::NetDeliver {
                dom: pending.dom,
                devid: pending.devid,
                packet: pending.packet,
            }
        };
        let to = &self.hosts[usize::from(pending.host)].sim;
        // A frame for a host a `host-crash` took down is lost with it.
        if to.crashed_at_ns.is_some() {
            return None;
        }
        if to.guests.knows(pending.dom) {
            self.deliver(pending.host, &input);
        }
        Some(pending.host)
    }

    /// Routes every frame `host`'s netbacks handed the bridge during the last input.
    pub(crate) fn net_route(&mut self, host: u16) {
        let frames = std::mem::take(&mut self.hosts[usize::from(host)].sim.net_out);
        for frame in frames {
            self.net_route_one(host, frame);
        }
    }

    fn net_route_one(&mut self, host: u16, frame: NetFrame) {
        let now_ns = self.queue.now_ns();
        let packet = frame.packet;
        let back = |dom: DomId, devid: u32, packet: NetPacket, send: bool| Pending {
            host,
            dom,
            devid,
            packet,
            send,
        };
        match self.net.bridges[usize::from(host)].hop(host, packet.dst) {
            Hop::LocalVif(dom, devid) => self.net_arrive(now_ns, back(dom, devid, packet, false)),
            Hop::Dom0 => {
                let answer = self.net.bridges[usize::from(host)]
                    .dom0
                    .answer(dom0_mac(host), &packet);
                for a in answer.into_iter().flatten() {
                    self.net_arrive(now_ns, back(frame.dom, frame.devid, a, false));
                }
            }
            Hop::Wire => self.net_wire(host, frame, now_ns),
        }
    }

    /// Out of `host`'s NIC: to another host's vif or the external peer.
    fn net_wire(&mut self, host: u16, frame: NetFrame, now_ns: u64) {
        let packet = frame.packet;
        let (to, target) = match self.net.directory.get(&packet.dst) {
            Some(&(h, dom, devid)) if h != host => (usize::from(h), Some((h, dom, devid))),
            _ if packet.dst == external_mac(host) => (EXTERNAL, None),
            _ => {
                let reason = DropReason::NoRoute;
                return self
                    .net
                    .drop_frame(host, frame.dom, frame.devid, now_ns, reason);
            }
        };
        let arrival = match self
            .net
            .fabric
            .send(usize::from(host), to, now_ns, packet.bytes)
        {
            Transit::Arrives(at_ns) => at_ns,
            other => {
                let reason = transit_reason(other);
                return self
                    .net
                    .drop_frame(host, frame.dom, frame.devid, now_ns, reason);
            }
        };
        if let Some((h, dom, devid)) = target {
            let pending = Pending {
                host: h,
                dom,
                devid,
                packet,
                send: false,
            };
            return self.net_arrive(arrival, pending);
        }
        let answers = self.net.external.answer(external_mac(host), &packet);
        for answer in answers.into_iter().flatten() {
            let transit = self
                .net
                .fabric
                .send(EXTERNAL, usize::from(host), arrival, answer.bytes);
            match transit {
                Transit::Arrives(at_ns) => {
                    let pending = Pending {
                        host,
                        dom: frame.dom,
                        devid: frame.devid,
                        packet: answer,
                        send: false,
                    };
                    self.net_arrive(at_ns, pending);
                }
                other => {
                    let reason = transit_reason(other);
                    self.net
                        .drop_frame(host, frame.dom, frame.devid, arrival, reason);
                }
            }
        }
    }

    /// A guest's `io` workload sends `frames` on its vif `devid` to `peer`: the MACs are
    /// filled in and each goes to netfront.
    pub(crate) fn net_send_frames(
        &mut self,
        host: u16,
        vcpu: VcpuRef,
        devid: u32,
        peer: &NetPeer,
        frames: Vec<NetPacket>,
    ) {
        let src = self.net.mac_of(host, vcpu.dom, devid);
        let dst = self.peer_mac(host, peer);
        let (Some(src), Some(dst)) = (src, dst) else {
            if self.net.waiting.len() >= WAITING_MAX {
                let now_ns = self.queue.now_ns();
                self.net
                    .drop_frame(host, vcpu.dom, devid, now_ns, DropReason::NoRoute);
                return;
            }
            let peer = peer.clone();
            let waiting = Waiting {
                host,
                vcpu,
                devid,
                peer,
                frames,
            };
            return self.net.waiting.push(waiting);
        };
        let count = frames.len();
        for (index, mut packet) in frames.into_iter().enumerate() {
            packet.src = src;
            packet.dst = dst;
            let input = CoreInput::NetSend {
                vcpu,
                devid,
                packet,
                last: index + 1 == count,
            };
            self.deliver(host, &input);
        }
    }

    /// `vcpu`'s `net.rate` stream sends the frames its last demand-done made, if any.
    pub(crate) fn stream_send(&mut self, host: u16, vcpu: VcpuRef) {
        let guests = &mut self.hosts[usize::from(host)].sim.guests;
        if let Some((devid, peer, frames)) = guests.take_stream_frames(vcpu) {
            self.net_send_frames(host, vcpu, devid, &peer, frames);
        }
    }

    /// A vif connected: requests waiting for it (or for it as a peer) go out, in order.
    pub(crate) fn net_vif_up(&mut self, host: u16, dom: DomId, devid: u32, mac: Mac) {
        self.net.attach(host, dom, devid, mac);
        let waiting = std::mem::take(&mut self.net.waiting);
        for w in waiting {
            self.net_send_frames(w.host, w.vcpu, w.devid, &w.peer, w.frames);
        }
    }

    fn peer_mac(&self, host: u16, peer: &NetPeer) -> Option<Mac> {
        match peer {
            NetPeer::Dom0 => Some(dom0_mac(host)),
            NetPeer::External => Some(external_mac(host)),
            NetPeer::Domain(name) => {
                let spec = self.scenario.domains.iter().find(|d| &d.name == name)?;
                let peer_host = u16::try_from(spec.host_index).ok()?;
                let dom = self.hosts[spec.host_index].sim.guests.domid_of(name)?;
                self.net.mac_of(peer_host, dom, 0)
            }
        }
    }

    /// netfront of `dom` on `host` received `packet`: the workload sees it, and a request
    /// is answered by the guest's kernel.
    pub(crate) fn net_received(&mut self, host: u16, dom: DomId, devid: u32, packet: NetPacket) {
        let now_ns = self.queue.now_ns();
        let guests = &mut self.hosts[usize::from(host)].sim.guests;
        guests.net_received(dom, &packet, now_ns, host, &mut self.queue);
        let me = self.net.mac_of(host, dom, devid).unwrap_or(packet.dst);
        let kernel = self.net.kernels.entry((host, dom)).or_default();
        for answer in kernel.answer(me, &packet).into_iter().flatten() {
            let pending = Pending {
                host,
                dom,
                devid,
                packet: answer,
                send: true,
            };
            self.net_arrive(now_ns, pending);
        }
    }

    /// A frame of `dom`'s vif `devid` was dropped by its netfront or netback
    /// (`NetDropReason` code: 3 is a vif that is not connected).
    pub(crate) fn net_ring_drop(&mut self, host: u16, dom: DomId, devid: u32, code: u8) {
        let now_ns = self.queue.now_ns();
        let reason = if code == 3 {
            DropReason::NoRoute
        } else {
            DropReason::RingFull
        };
        self.net.drop_frame(host, dom, devid, now_ns, reason);
    }
}

fn transit_reason(transit: Transit) -> DropReason {
    match transit {
        Transit::Lost => DropReason::FabricLoss,
        Transit::Partitioned => DropReason::Partition,
        Transit::TooBig | Transit::Arrives(_) => DropReason::NoRoute,
    }
}
