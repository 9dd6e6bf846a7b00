//! Frames between vifs, dom0's stacks, the external peer and the hosts: what the run loop
//! does with every frame netback hands its bridge (`Platform::net_transmit`), with the
//! frames an `io` workload over a vif sends, and with what netfront receives.
//!
//! A frame for a vif on the same host crosses the bridge at once; one for dom0's stack is
//! answered there; anything else leaves through the NIC onto the fabric (`machine/fabric.rs`)
//! towards another host's bridge or the external peer, which answers requests back over
//! the reverse link. Every frame that reaches a vif is a `CoreInput::NetDeliver`: at once
//! for a frame that stays on the host (the bridge runs in netback's softirq), else a
//! `NetArrive` event at its arrival time; an answer a guest's kernel owes (its peer is that
//! guest) is a `CoreInput::NetSend` from that guest's vCPU 0.
//!
//! A vif whose netback runs in a network driver domain (`backend=`) is on that domain's
//! own bridge, behind the NIC the driver domain was given (the frame's `back_dom` says
//! which bridge): dom0's bridge is not involved. Its frames reach the other vifs of that
//! bridge at once; everything else leaves through the driver domain's NIC. The host's
//! NIC (dom0's) and the driver domain's hang off the same rack switch: between them (dom0's
//! stack, vifs on dom0's bridge or another driver domain's) a frame takes the switch's
//! hairpin link `fabric.<h>.<h>`; to other hosts and the external peer it takes the host's
//! links. Frames from dom0's bridge to such a vif take the hairpin link the other way.
//!
//! # Invariants
//! - The directory maps each connected vif's MAC to exactly one (host, domain, vif).
//! - `vif_macs` holds (host, domain, vif) → MAC exactly for each entry of `directory`, each
//!   vif's MACs sorted and without duplicates (none empty).
//! - Every frame in `pending` has exactly one `NetArrive` event queued.
//! - Every frame that is lost, partitioned, too big or has no route is counted against the
//!   sending vif (`drops`), and every frame dropped by netfront or netback against its vif
//!   (those lost with a dead driver domain as `NoRoute`: the vif was not connected).
//! - A MAC is on at most one bridge: dom0's, or the driver domain's `backs` names.
//!
//! xensim differs: `pci=` passthrough is not modelled, so a driver domain's NIC is given to
//! it implicitly (as a disk's storage is reached through its `target=`): the first vif it
//! backs creates its bridge and NIC port. The two NICs share the host's uplink links.

use std::collections::BTreeMap;

use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::{DomId, VcpuId, VcpuRef};
use hypervisor_model::io::dev_map::DevMap;
use hypervisor_model::io::vif::{Mac, NetPacket, PacketKind};
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
    /// `directory` the other way round: (host, domain, vif) → its MACs, sorted, so that
    /// the MAC of a vif (asked for every request it sends) is one indexed lookup.
    vif_macs: VifMacs,
    /// Driver domains' bridges by (host, driver domain).
    driver_bridges: BTreeMap<(u16, DomId), Bridge>,
    /// The backend domain of each connected vif (whose bridge it is on).
    backs: BTreeMap<Mac, DomId>,
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
            vif_macs: VifMacs::default(),
            driver_bridges: BTreeMap::new(),
            backs: BTreeMap::new(),
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

    /// The bridge of backend `back` on `host`: dom0's, or a driver domain's (`None` if
    /// that domain has none).
    fn bridge_mut(&mut self, host: u16, back: DomId) -> Option<&mut Bridge> {
        if back == DomId::DOM0 {
            self.bridges.get_mut(usize::from(host))
        } else {
            self.driver_bridges.get_mut(&(host, back))
        }
    }

    /// Vif `devid` of `dom` on `host` connected with `mac`, its netback in `back`: it
    /// joins that backend's bridge (leaving the one it was on, if it moved).
    pub fn attach(&mut self, host: u16, dom: DomId, devid: u32, mac: Mac, back: DomId) {
        if let Some((h, d, v)) = self.directory.insert(mac, (host, dom, devid)) {
            self.vif_mac_remove((h, d, v), mac);
            let old_back = self.backs.get(&mac).copied().unwrap_or(DomId::DOM0);
            if let Some(bridge) = self.bridge_mut(h, old_back) {
                bridge.vifs.remove(&mac);
            }
            debug_assert!((h, d, v) == (host, dom, devid), "MAC given to two vifs");
        }
        let macs = self.vif_macs.entry((host, dom, devid));
        if let Err(at) = macs.binary_search(&mac) {
            macs.insert(at, mac);
        }
        if back != DomId::DOM0 {
            self.driver_bridges.entry((host, back)).or_default();
        }
        self.backs.insert(mac, back);
        if let Some(bridge) = self.bridge_mut(host, back) {
            bridge.vifs.insert(mac, (dom, devid));
        }
    }

    /// `dom` on `host` is gone: its vifs leave their bridges, and a driver domain's bridge
    /// goes with it (the vifs on it stay known until they connect elsewhere).
    pub fn detach_domain(&mut self, host: u16, dom: DomId) {
        let gone: Vec<Mac> = self
            .directory
            .iter()
            .filter(|(_, (h, d, _))| *h == host && *d == dom)
            .map(|(mac, _)| *mac)
            .collect();
        for mac in gone {
            if let Some((h, d, v)) = self.directory.remove(&mac) {
                self.vif_mac_remove((h, d, v), mac);
            }
            let back = self.backs.remove(&mac).unwrap_or(DomId::DOM0);
            if let Some(bridge) = self.bridge_mut(host, back) {
                bridge.vifs.remove(&mac);
            }
        }
        self.driver_bridges.remove(&(host, dom));
        self.kernels.remove(&(host, dom));
    }

    /// `dom`'s nic `devid` on `host` left its bridge (an emulated card whose device model
    /// went).
    pub fn detach_vif(&mut self, host: u16, dom: DomId, devid: u32) {
        let Some(mac) = self.mac_of(host, dom, devid) else {
            return;
        };
        self.directory.remove(&mac);
        self.vif_mac_remove((host, dom, devid), mac);
        let back = self.backs.remove(&mac).unwrap_or(DomId::DOM0);
        if let Some(bridge) = self.bridge_mut(host, back) {
            bridge.vifs.remove(&mac);
        }
    }

    /// The MAC of `dom`'s vif `devid` on `host`, if it connected (the lowest, should it have
    /// connected under two).
    pub fn mac_of(&self, host: u16, dom: DomId, devid: u32) -> Option<Mac> {
        let vif = (host, dom, devid);
        let found = self.vif_macs.get(vif)?.first().copied();
        debug_assert!(found.is_none_or(|mac| self.directory.get(&mac) == Some(&vif)));
        found
    }

    /// `mac` is no longer `vif`'s (a vif without MACs leaves `vif_macs`).
    fn vif_mac_remove(&mut self, vif: (u16, DomId, u32), mac: Mac) {
        self.vif_macs.remove(vif, mac);
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
        self.net_land(pending)
    }

    /// The frame reaches its vif's netback (or is sent by its guest's kernel) now.
    fn net_land(&mut self, pending: Pending) -> Option<u16> {
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
    /// Inlined into the run loop: most inputs hand the bridge nothing, and that check
    /// should not cost a call into the (large) routing code.
    #[inline]
    pub(crate) fn net_route(&mut self, host: u16) {
        if self.hosts[usize::from(host)].sim.net_out.is_empty() {
            return;
        }
        self.net_route_frames(host);
    }

    /// [`World::net_route`] when the bridge has frames.
    #[inline(never)]
    fn net_route_frames(&mut self, host: u16) {
        let slot = &mut self.hosts[usize::from(host)].sim.net_out;
        let mut frames = std::mem::take(slot);
        for frame in frames.drain(..) {
            self.net_route_one(host, frame);
        }
        // The emptied buffer goes back for the next input (no allocation per frame),
        // unless routing handed the bridge frames of its own meanwhile.
        let slot = &mut self.hosts[usize::from(host)].sim.net_out;
        if slot.is_empty() {
            *slot = frames;
        }
    }

    fn net_route_one(&mut self, host: u16, frame: NetFrame) {
        if frame.back_dom != DomId::DOM0 {
            return self.net_route_driver(host, frame);
        }
        let now_ns = self.queue.now_ns();
        let packet = frame.packet;
        let back = |dom: DomId, devid: u32, packet: NetPacket, send: bool| Pending {
            host,
            dom,
            devid,
            packet,
            send,
        };
        // A frame that stays on the host crosses the bridge (and dom0's stack) in the
        // softirq netback transmitted it from, as Linux's `netif_receive_skb` does: it
        // reaches its netback before that vCPU can go idle.
        match self.net.bridges[usize::from(host)].hop(host, packet.dst) {
            Hop::LocalVif(dom, devid) => {
                let _ = self.net_land(back(dom, devid, packet, false));
            }
            Hop::Dom0 => {
                let answer = self.net.bridges[usize::from(host)].dom0.answer_from(
                    Some(frame.dom),
                    dom0_mac(host),
                    &packet,
                );
                for a in answer.into_iter().flatten() {
                    let _ = self.net_land(back(frame.dom, frame.devid, a, false));
                }
            }
            Hop::Wire => self.net_wire(host, frame, now_ns),
        }
    }

    /// A frame from a vif on a driver domain's bridge: to a vif of that bridge at once,
    /// else out of the driver domain's NIC (dom0's stack over the switch's hairpin link).
    fn net_route_driver(&mut self, host: u16, frame: NetFrame) {
        let now_ns = self.queue.now_ns();
        let packet = frame.packet;
        let bridge = self.net.driver_bridges.get(&(host, frame.back_dom));
        if let Some(&(dom, devid)) = bridge.and_then(|b| b.vifs.get(&packet.dst)) {
            let pending = Pending {
                host,
                dom,
                devid,
                packet,
                send: false,
            };
            return self.net_arrive(now_ns, pending);
        }
        if packet.dst == dom0_mac(host) {
            return self.net_answered(host, &frame, usize::from(host), now_ns);
        }
        self.net_wire(host, frame, now_ns);
    }

    /// Out of `host`'s NIC (dom0's or a driver domain's): to a vif on another host or on
    /// another bridge of this one (the hairpin link), or to the external peer.
    fn net_wire(&mut self, host: u16, frame: NetFrame, now_ns: u64) {
        let packet = frame.packet;
        let Some(&(h, dom, devid)) = self.net.directory.get(&packet.dst) else {
            if packet.dst == external_mac(host) {
                return self.net_answered(host, &frame, EXTERNAL, now_ns);
            }
            let reason = DropReason::NoRoute;
            return self
                .net
                .drop_frame(host, frame.dom, frame.devid, now_ns, reason);
        };
        let to = usize::from(h);
        match self
            .net
            .fabric
            .send(usize::from(host), to, now_ns, packet.bytes)
        {
            Transit::Arrives(arrival) => {
                let pending = Pending {
                    host: h,
                    dom,
                    devid,
                    packet,
                    send: false,
                };
                self.net_arrive(arrival, pending);
            }
            other => {
                let reason = transit_reason(other);
                self.net
                    .drop_frame(host, frame.dom, frame.devid, now_ns, reason);
            }
        }
    }

    /// A request for the responder at `far` (the external peer, or dom0's stack reached
    /// from a driver domain's NIC over the hairpin link `far == host`) crosses the link
    /// there at `now_ns`; its answers come back over the reverse link.
    fn net_answered(&mut self, host: u16, frame: &NetFrame, far: usize, now_ns: u64) {
        let transit = self
            .net
            .fabric
            .send(usize::from(host), far, now_ns, frame.packet.bytes);
        match transit {
            Transit::Arrives(arrival) => self.net_answers_back(host, frame, far, arrival),
            other => {
                let reason = transit_reason(other);
                self.net
                    .drop_frame(host, frame.dom, frame.devid, now_ns, reason);
            }
        }
    }

    /// The responder at `far` answers `frame`'s request that reached it at `arrival`.
    fn net_answers_back(&mut self, host: u16, frame: &NetFrame, far: usize, arrival: u64) {
        let packet = frame.packet;
        let answers = if far == EXTERNAL {
            let sender = Some(frame.dom);
            self.net
                .external
                .answer_from(sender, external_mac(host), &packet)
        } else {
            self.net.bridges[usize::from(host)].dom0.answer_from(
                Some(frame.dom),
                dom0_mac(host),
                &packet,
            )
        };
        for answer in answers.into_iter().flatten() {
            let transit = self
                .net
                .fabric
                .send(far, usize::from(host), arrival, answer.bytes);
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
    /// filled in and each goes to netfront; the emptied buffer goes back to the workload.
    pub(crate) fn net_send_frames(
        &mut self,
        host: u16,
        vcpu: VcpuRef,
        devid: u32,
        peer: &NetPeer,
        mut frames: Vec<NetPacket>,
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
        for (index, mut packet) in frames.drain(..).enumerate() {
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
        let guests = &mut self.hosts[usize::from(host)].sim.guests;
        guests.reuse_net_frame_buffer(vcpu, frames);
    }

    /// A vif connected: requests waiting for it (or for it as a peer) go out, in order.
    pub(crate) fn net_vif_up(&mut self, host: u16, dom: DomId, devid: u32, mac: Mac) {
        let back = self.hosts[usize::from(host)]
            .hv
            .bridge_port_backend(dom, devid)
            .unwrap_or(DomId::DOM0);
        self.net.attach(host, dom, devid, mac, back);
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
        // Only a request is answered: the kernel's responder and the vif's MAC are not
        // looked up for anything else (most frames a guest receives are answers).
        if packet.kind != PacketKind::Request {
            return;
        }
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
        // 3: the vif is not connected; 4: in flight when its driver domain died.
        let reason = if code == 3 || code == 4 {
            DropReason::NoRoute
        } else {
            DropReason::RingFull
        };
        self.net.drop_frame(host, dom, devid, now_ns, reason);
    }
}

/// The MACs of each connected vif, by host, then by (domain, vif) in a [`DevMap`] (indexed
/// by domain id; a vif without MACs has no entry).
#[derive(Debug, Default)]
struct VifMacs {
    by_host: Vec<DevMap<Vec<Mac>>>,
}

impl VifMacs {
    /// The MACs of `vif`, if it has any.
    fn get(&self, (host, dom, devid): (u16, DomId, u32)) -> Option<&Vec<Mac>> {
        self.by_host.get(usize::from(host))?.get(&(dom, devid))
    }

    /// The MACs of `vif`, made empty if it had none.
    fn entry(&mut self, (host, dom, devid): (u16, DomId, u32)) -> &mut Vec<Mac> {
        let host = usize::from(host);
        if self.by_host.len() <= host {
            self.by_host.resize_with(host + 1, DevMap::new);
        }
        let vifs = &mut self.by_host[host];
        if !vifs.contains_key(&(dom, devid)) {
            vifs.insert((dom, devid), Vec::new());
        }
        vifs.get_mut(&(dom, devid))
            .expect("the vif's entry was made above")
    }

    /// `mac` leaves `vif`; a vif left without MACs goes.
    fn remove(&mut self, (host, dom, devid): (u16, DomId, u32), mac: Mac) {
        let Some(vifs) = self.by_host.get_mut(usize::from(host)) else {
            return;
        };
        let Some(macs) = vifs.get_mut(&(dom, devid)) else {
            return;
        };
        macs.retain(|m| *m != mac);
        if macs.is_empty() {
            vifs.remove(&(dom, devid));
        }
    }
}

fn transit_reason(transit: Transit) -> DropReason {
    match transit {
        Transit::Lost => DropReason::FabricLoss,
        Transit::Partitioned => DropReason::Partition,
        Transit::TooBig | Transit::Arrives(_) => DropReason::NoRoute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(raw: u16) -> DomId {
        DomId::new(raw).expect("domid")
    }

    proptest::proptest! {
        /// The indexed MACs answer as a tree keyed by (host, domain, vif) would: MACs
        /// joining (`true`) and leaving a few vifs.
        #[test]
        fn vif_macs_answer_as_a_tree_would(
            steps in proptest::collection::vec(
                (proptest::bool::ANY, (0u16..2, 0u16..3, 0u32..2), 0u8..3),
                0..60,
            ),
        ) {
            let mut macs = VifMacs::default();
            let mut tree: BTreeMap<(u16, DomId, u32), Vec<Mac>> = BTreeMap::new();
            for (join, (host, d, devid), last) in steps {
                let vif = (host, dom(d), devid);
                let mac = [0, 0x16, 0x3e, 0, 0, last];
                if join {
                    let list = macs.entry(vif);
                    if let Err(at) = list.binary_search(&mac) {
                        list.insert(at, mac);
                    }
                    let list = tree.entry(vif).or_default();
                    if let Err(at) = list.binary_search(&mac) {
                        list.insert(at, mac);
                    }
                } else {
                    macs.remove(vif, mac);
                    if let Some(list) = tree.get_mut(&vif) {
                        list.retain(|m| *m != mac);
                        if list.is_empty() {
                            tree.remove(&vif);
                        }
                    }
                }
                for h in 0..2 {
                    for d in 0..3 {
                        for devid in 0..2 {
                            let vif = (h, dom(d), devid);
                            proptest::prop_assert_eq!(macs.get(vif), tree.get(&vif));
                        }
                    }
                }
            }
        }
    }
}
